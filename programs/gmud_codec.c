/* gmud-codec: the framing core at work, from the command line.
 *
 *   gmud-codec demo                       the lecture's problem and each framing's answer
 *   gmud-codec encode [options]           stdin lines -> framed bytes on stdout
 *   gmud-codec decode [options]           framed bytes on stdin -> one message a line
 *
 * Options only wire arguments to the library; all framing is in src/core/frame.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmud/frame.h"
#include "gmud/json.h"
#include "gmud/version.h"
#include "options.h"

/* The defaults shown are the library's (gmud_frame_default_config). */
static void usage(FILE *out)
{
    gmud_frame_config d;
    char delim[4 * GMUD_DELIM_MAX + 1];
    gmud_frame_default_config(&d, GMUD_FRAMING_GMUD);
    prog_delim_text(&d, delim, sizeof delim);
    fprintf(out,
            "usage: gmud-codec demo\n"
            "       gmud-codec encode [options] < lines > frames\n"
            "       gmud-codec decode [options] < frames > lines\n"
            "options:\n"
            "  --framing raw|line|fixed:N|length|gmud   (default %s)\n"
            "  --label XXXX        gmud framing label (default %.*s)\n"
            "  --delim TEXT        line delimiter, C escapes allowed (default %s)\n"
            "  --max-message N     largest payload in bytes (default %zu)\n"
            "  --json              payloads must be JSON objects (checked both ways)\n"
            "  --help              this text\n"
            "  --version           the gmud library's version\n",
            gmud_framing_name(d.framing), (int)sizeof d.label, (const char *)d.label, delim,
            d.max_message);
}

typedef struct options {
    gmud_frame_config frame;
    int json;
} options;

/* Returns 0, or 2 after printing why (exit status 2 for bad usage). The
 * framing options are the other programs' (options.c): gathered, then
 * applied together, so --label X --framing gmud keeps the label. */
static int parse_options(int argc, char **argv, options *opt)
{
    prog_framing_args fa = {0};
    gmud_frame_default_config(&opt->frame, GMUD_FRAMING_GMUD);
    opt->json = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--json") == 0) {
            opt->json = 1;
            continue;
        }
        if (val == NULL) {
            fprintf(stderr, "gmud-codec: %s needs a value (or is unknown); see --help\n", arg);
            return 2;
        }
        if (strcmp(arg, "--framing") == 0) {
            fa.framing = val;
        } else if (strcmp(arg, "--label") == 0) {
            fa.label = val;
        } else if (strcmp(arg, "--delim") == 0) {
            fa.delim = val;
        } else if (strcmp(arg, "--max-message") == 0) {
            fa.max_message = val;
        } else {
            fprintf(stderr, "gmud-codec: unknown option %s; see --help\n", arg);
            return 2;
        }
        i++;
    }
    return prog_framing_apply("gmud-codec", &opt->frame, &fa) == 0 ? 0 : 2;
}

static int check_json(const options *opt, const uint8_t *p, size_t n, gmud_error *err)
{
    if (!opt->json)
        return GMUD_OK;
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    json_t *v;
    int rc = gmud_json_parse(p, n, &lim, &v, err);
    json_decref(v);
    return rc;
}

static int run_encode(const options *opt)
{
    size_t cap = gmud_frame_encoded_size(&opt->frame, opt->frame.max_message);
    uint8_t *out = malloc(cap);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    int status = 0;
    gmud_error err = {0};
    if (out == NULL)
        return 1;
    for (unsigned long lineno = 1; (n = getline(&line, &line_cap, stdin)) >= 0; lineno++) {
        if (n > 0 && line[n - 1] == '\n')
            n--;
        ptrdiff_t w = check_json(opt, (const uint8_t *)line, (size_t)n, &err);
        if (w == GMUD_OK)
            w = gmud_frame_encode(&opt->frame, line, (size_t)n, out, cap, &err);
        if (w < 0) {
            fprintf(stderr, "gmud-codec: line %lu not sent: %s\n", lineno, err.message);
            status = 1;
            continue;
        }
        fwrite(out, 1, (size_t)w, stdout);
    }
    free(line);
    free(out);
    return status;
}

static void print_message(const options *opt, gmud_slice msg)
{
    if (opt->frame.framing == GMUD_FRAMING_FIXED)
        msg = gmud_frame_trim_padding(msg);
    fwrite(msg.data, 1, msg.len, stdout);
    fputc('\n', stdout);
}

/* Decodes every message in data[0..len); returns 0 or the error code. */
static int decode_chunk(const options *opt, gmud_frame_decoder *dec, const uint8_t *data,
                        size_t len, gmud_error *err)
{
    while (len > 0) {
        gmud_slice msg;
        ptrdiff_t used = gmud_frame_decode(dec, data, len, &msg, err);
        if (used < 0)
            return (int)used;
        if (used == 0)
            break;
        int rc = check_json(opt, msg.data, msg.len, err);
        if (rc != GMUD_OK)
            fprintf(stderr, "gmud-codec: message skipped: %s\n", err->message);
        else
            print_message(opt, msg);
        data += used;
        len -= (size_t)used;
    }
    return 0;
}

static int run_decode(const options *opt)
{
    gmud_error err = {0};
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&opt->frame, &err);
    if (dec == NULL) {
        fprintf(stderr, "gmud-codec: %s\n", err.message);
        return 1;
    }
    static uint8_t buf[65536];
    int rc = 0;
    ssize_t n;
    while (rc == 0 && (n = read(STDIN_FILENO, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("gmud-codec: read");
            rc = 1;
            break;
        }
        rc = decode_chunk(opt, dec, buf, (size_t)n, &err);
    }
    if (rc == 0)
        rc = gmud_frame_decoder_finish(dec, &err);
    if (rc < 0)
        fprintf(stderr, "gmud-codec: %s\n", err.message);
    gmud_frame_decoder_destroy(dec);
    return rc == 0 ? 0 : 1;
}

static void hexdump(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%s%02x%s", i % 16 == 0 ? "    " : "", p[i], (i + 1) % 16 == 0 || i + 1 == n ? "\n" : " ");
}

/* The lecture's clock messages, glued as one recv() would see them, then
 * each framing delivering them one by one, fed a single byte at a time. */
static int run_demo(void)
{
    static const char *const msgs[] = {
        "{\"time\": \"Sat Mar 30 11:40:50 2019\", \"message\": \"0:Sat Mar 30 11:40:50 2019\", "
        "\"value\": 0}",
        "{\"time\": \"Sat Mar 30 11:40:51 2019\", \"message\": \"1:Sat Mar 30 11:40:51 2019\", "
        "\"value\": 1}",
    };
    static const char *const framings[] = {"line", "fixed:100", "length", "gmud"};
    printf("TCP is a byte stream: two sends of %zu bytes each may arrive as one recv():\n  %s%s\n\n",
           strlen(msgs[0]), msgs[0], msgs[1]);
    for (size_t f = 0; f < sizeof framings / sizeof framings[0]; f++) {
        gmud_frame_config cfg;
        gmud_error err = {0};
        uint8_t wire[512];
        size_t used = 0;
        gmud_frame_config_parse(&cfg, framings[f], &err);
        for (size_t m = 0; m < 2; m++) {
            ptrdiff_t w = gmud_frame_encode(&cfg, msgs[m], strlen(msgs[m]), wire + used,
                                            sizeof wire - used, &err);
            if (w < 0) {
                fprintf(stderr, "gmud-codec: %s\n", err.message);
                return 1;
            }
            used += (size_t)w;
        }
        printf("%s framing, %zu bytes on the wire; the first frame:\n", framings[f], used);
        hexdump(wire, gmud_frame_encoded_size(&cfg, strlen(msgs[0])));
        gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, &err);
        if (dec == NULL)
            return 1;
        int count = 0;
        for (size_t i = 0; i < used; i++) {
            gmud_slice msg;
            if (gmud_frame_decode(dec, wire + i, 1, &msg, &err) > 0)
                printf("  message %d decoded, %zu bytes\n", ++count,
                       (cfg.framing == GMUD_FRAMING_FIXED ? gmud_frame_trim_padding(msg) : msg).len);
        }
        gmud_frame_decoder_destroy(dec);
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("gmud-codec %s\n", gmud_version());
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    options opt;
    int rc = parse_options(argc - 2, argv + 2, &opt);
    if (rc != 0)
        return rc;
    if (strcmp(argv[1], "demo") == 0)
        return run_demo();
    if (strcmp(argv[1], "encode") == 0)
        return run_encode(&opt);
    if (strcmp(argv[1], "decode") == 0)
        return run_decode(&opt);
    fprintf(stderr, "gmud-codec: unknown command '%s'; see --help\n", argv[1]);
    return 2;
}
