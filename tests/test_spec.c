/* Checks every `gmud-example` block of docs/PROTOCOL.md: the payload encodes
 * to exactly the listed bytes, and the bytes decode (whole and one byte at a
 * time) to the payload or to the listed error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gmud/frame.h"

typedef struct example {
    int line; /* where the block starts, for messages */
    gmud_frame_config cfg;
    char payload[512];
    int has_payload;
    uint8_t wire[512];
    size_t wire_len;
    char error[32];
    char encode_error[32];
} example;

static size_t parse_hex(const char *s, uint8_t *out, size_t cap, size_t n)
{
    unsigned v;
    int used;
    while (n < cap && sscanf(s, " %2x%n", &v, &used) == 1) {
        out[n++] = (uint8_t)v;
        s += used;
    }
    return n;
}

static const char *error_name_of(int code)
{
    return code == 0 ? "ok" : gmud_err_name(code);
}

/* Decodes ex->wire whole, then byte by byte; both must agree with ex. */
static void check_decode(const example *ex, size_t step)
{
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&ex->cfg, NULL);
    gmud_error err = {0};
    int rc = 0, got_msg = 0;
    for (size_t at = 0; at < ex->wire_len && rc == 0;) {
        size_t n = step && step < ex->wire_len - at ? step : ex->wire_len - at;
        gmud_slice msg;
        ptrdiff_t used = gmud_frame_decode(dec, ex->wire + at, n, &msg, &err);
        if (used < 0) {
            rc = (int)used;
            break;
        }
        at += used ? (size_t)used : n;
        if (used > 0) {
            got_msg++;
            if (ex->cfg.framing == GMUD_FRAMING_FIXED)
                msg = gmud_frame_trim_padding(msg);
            if (ex->has_payload)
                CHECK_MEM(msg.data, msg.len, ex->payload, strlen(ex->payload));
        }
    }
    if (rc == 0)
        rc = gmud_frame_decoder_finish(dec, &err);
    const char *want = ex->error[0] ? ex->error : "ok";
    if (strcmp(error_name_of(rc), want) != 0) {
        fprintf(stderr, "PROTOCOL.md:%d: decoding (step %zu) gave %s (%s), example says %s\n",
                ex->line, step, error_name_of(rc), err.message, want);
        CHECK(0);
    }
    if (ex->has_payload)
        CHECK_EQ_INT(got_msg, 1);
    gmud_frame_decoder_destroy(dec);
}

static void check_example(const example *ex)
{
    uint8_t out[1024];
    gmud_error err = {0};
    if (ex->has_payload) {
        ptrdiff_t n = gmud_frame_encode(&ex->cfg, ex->payload, strlen(ex->payload), out,
                                        sizeof out, &err);
        if (ex->encode_error[0]) {
            CHECK(n < 0 && strcmp(error_name_of((int)n), ex->encode_error) == 0);
        } else if (n < 0 || (size_t)n != ex->wire_len || memcmp(out, ex->wire, ex->wire_len) != 0) {
            fprintf(stderr, "PROTOCOL.md:%d: encoding does not give the listed bytes (%s)\n",
                    ex->line, n < 0 ? err.message : "bytes differ");
            CHECK(0);
        }
    }
    if (ex->wire_len > 0) {
        check_decode(ex, 0);
        check_decode(ex, 1);
    }
}

/* Applies one "key: value" line of a block. */
static void apply(example *ex, const char *key, const char *val)
{
    gmud_error err;
    int rc = 0;
    if (strcmp(key, "framing") == 0) {
        rc = gmud_frame_config_parse(&ex->cfg, val, &err);
    } else if (strcmp(key, "label") == 0) {
        rc = gmud_frame_config_set_label(&ex->cfg, val, &err);
    } else if (strcmp(key, "delim") == 0) {
        rc = gmud_frame_config_set_delim(&ex->cfg, val, &err);
    } else if (strcmp(key, "max") == 0) {
        ex->cfg.max_message = (size_t)strtoul(val, NULL, 10);
    } else if (strcmp(key, "payload") == 0) {
        snprintf(ex->payload, sizeof ex->payload, "%s", val);
        ex->has_payload = 1;
    } else if (strcmp(key, "error") == 0) {
        snprintf(ex->error, sizeof ex->error, "%s", val);
    } else if (strcmp(key, "encode-error") == 0) {
        snprintf(ex->encode_error, sizeof ex->encode_error, "%s", val);
    } else if (strcmp(key, "wire") != 0) {
        fprintf(stderr, "PROTOCOL.md:%d: unknown key '%s'\n", ex->line, key);
        CHECK(0);
    }
    if (rc != 0) {
        fprintf(stderr, "PROTOCOL.md:%d: %s\n", ex->line, err.message);
        CHECK(0);
    }
}

int main(void)
{
    const char *dir = getenv("GMUD_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/PROTOCOL.md", dir ? dir : ".");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    char line[1024];
    int lineno = 0, in_block = 0, examples = 0;
    example ex;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (!in_block && strcmp(line, "```gmud-example") == 0) {
            memset(&ex, 0, sizeof ex);
            gmud_frame_default_config(&ex.cfg, GMUD_FRAMING_GMUD);
            ex.line = lineno;
            in_block = 1;
        } else if (in_block && strcmp(line, "```") == 0) {
            check_example(&ex);
            examples++;
            in_block = 0;
        } else if (in_block && line[0] == ' ') {
            ex.wire_len = parse_hex(line, ex.wire, sizeof ex.wire, ex.wire_len);
        } else if (in_block) {
            char *colon = strchr(line, ':');
            CHECK(colon != NULL);
            if (colon == NULL)
                continue;
            *colon = '\0';
            apply(&ex, line, colon[1] == ' ' ? colon + 2 : colon + 1);
        }
    }
    fclose(f);
    CHECK(!in_block);
    CHECK(examples >= 10);
    printf("test_spec: %d examples from %s\n", examples, path);
    return check_report("test_spec");
}
