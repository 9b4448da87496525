/* programs/options.c: one option table for gmud-server and gmud-client; it
 * drives both the parser and --help. See options.h. */
#include "options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdarg.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef enum opt_type {
    T_HELP,
    T_HOST,
    T_PORT,
    T_FRAMING,
    T_PAYLOAD,
    T_LABEL,
    T_DELIM,
    T_MAX_MESSAGE,
    T_LOG_LEVEL,
    T_APP,
    T_SIZE,        /* size_t at off, >= 1, k/m suffixes (KiB, MiB) */
    T_UINT,        /* unsigned at off, 1..255 */
    T_ULL,         /* unsigned long long at off, >= 1 */
    T_MS,          /* seconds given, uint32_t milliseconds at off, >= 0 */
    T_MS_POS,      /* the same, at least 1 ms */
    T_U32,         /* uint32_t at off, 0 allowed, k/m suffixes */
    T_FLAG,        /* int at off set to 1; takes no value */
    T_STRING,      /* const char * at off */
    T_SESSION      /* the session mode */
} opt_type;

typedef struct opt_spec {
    const char *name;
    unsigned who; /* PROG_SERVER | PROG_CLIENT */
    opt_type type;
    size_t off;   /* field in prog_options, for the generic types */
    const char *metavar;
    const char *help;
} opt_spec;

#define BOTH (PROG_SERVER | PROG_CLIENT)
#define AT(field) offsetof(prog_options, field)

static const opt_spec specs[] = {
    {"--host", BOTH, T_HOST, 0, "ADDR", "IPv4 or IPv6 address or host name (server: to listen on)"},
    {"--port", BOTH, T_PORT, 0, "PORT", "TCP port (server: 0 picks a free one and logs it)"},
    {"--framing", BOTH, T_FRAMING, 0, "F", "raw|line|fixed:N|length|gmud"},
    {"--payload", BOTH, T_PAYLOAD, 0, "P", "text|json (json: each message is a JSON object)"},
    {"--label", BOTH, T_LABEL, 0, "XXXX", "gmud framing: the 4-byte packet label"},
    {"--delim", BOTH, T_DELIM, 0, "TEXT", "line framing: delimiter, C escapes allowed"},
    {"--max-message", BOTH, T_MAX_MESSAGE, 0, "BYTES", "largest payload accepted or sent"},
    {"--app", PROG_SERVER, T_APP, 0, "APP",
     "echo: back to the sender; clock: the lecture's timed messages, "
     "from the first connection on; chat: to every other client"},
    {"--interval", PROG_SERVER, T_MS, AT(interval_ms), "SECONDS",
     "clock: time between messages (fractions allowed; 0 only in lecture mode, where "
     "each reply is answered at once)"},
    {"--count", PROG_SERVER, T_ULL, AT(count), "N",
     "clock: stop after N messages, then shut down and exit 0"},
    {"--session", BOTH, T_SESSION, 0, "MODE",
     "off|lecture|on: lecture is the lecture's approach 6 (json payload; the server "
     "runs the clock app); on is gmud's own, a 16-byte session header on every packet "
     "(length, gmud or fixed framing). Both ends must agree"},
    {"--session-carry-on", PROG_SERVER, T_FLAG, AT(carry_on), NULL,
     "lecture mode: a bad reply is logged, counted and printed, and the connection "
     "stays open, as the lecture's server does"},
    {"--reply-data", PROG_CLIENT, T_STRING, AT(reply_data), "TEXT",
     "lecture mode: the data field of each reply"},
    {"--welcome-timeout", PROG_CLIENT, T_MS_POS, AT(welcome_ms), "SECONDS",
     "lecture and on modes: give up if the server sends no welcome within this "
     "time"},
    {"--rate-msgs", PROG_SERVER, T_U32, AT(limits.msg_rate), "N",
     "messages a second one peer may send (0: no limit); more are dropped, with a "
     "warning packet a second"},
    {"--rate-msgs-burst", PROG_SERVER, T_U32, AT(limits.msg_burst), "N",
     "messages one peer may send at once"},
    {"--rate-bytes", PROG_SERVER, T_U32, AT(limits.byte_rate), "BYTES",
     "payload bytes a second one peer may send (0: no limit)"},
    {"--rate-bytes-burst", PROG_SERVER, T_U32, AT(limits.byte_burst), "BYTES",
     "payload bytes one peer may send at once"},
    {"--max-per-addr", PROG_SERVER, T_U32, AT(addr.max_per_addr), "N",
     "connections at once from one IP address (0: no limit)"},
    {"--new-per-addr", PROG_SERVER, T_U32, AT(addr.new_per_sec), "N",
     "new connections a second from one IP address (0: no limit)"},
    {"--new-per-addr-burst", PROG_SERVER, T_U32, AT(addr.new_burst), "N",
     "new connections one IP address may open at once"},
    {"--rate-close-after", PROG_SERVER, T_MS_POS, AT(limits.rate_close_ms), "SECONDS",
     "a peer over its rate this long is closed"},
    {"--wait", PROG_CLIENT, T_MS, AT(wait_ms), "SECONDS",
     "after stdin ends, wait this long for replies, then close"},
    {"--max-queued", BOTH, T_SIZE, AT(limits.max_queued), "BYTES",
     "outgoing bytes queued to one peer before it is closed (slow consumer)"},
    {"--frame-timeout", BOTH, T_MS_POS, AT(limits.frame_timeout_ms), "SECONDS",
     "a frame begun must be complete within this time"},
    {"--idle-timeout", BOTH, T_MS, AT(limits.idle_timeout_ms), "SECONDS",
     "close a peer silent this long (0: off)"},
    {"--max-connections", PROG_SERVER, T_SIZE, AT(limits.max_connections), "N",
     "connections at once; one more gets an error packet, then the close"},
    {"--max-bad-messages", BOTH, T_UINT, AT(limits.max_bad_messages), "N",
     "json payloads that do not parse before the peer is closed"},
    {"--shutdown-timeout", PROG_SERVER, T_MS_POS, AT(shutdown_ms), "SECONDS",
     "on SIGINT/SIGTERM, time to flush queued messages before closing"},
    {"--log-level", BOTH, T_LOG_LEVEL, 0, "LEVEL", "error|warn|info|debug (logs go to stderr)"},
    {"--help", BOTH, T_HELP, 0, NULL, "print this help and exit"},
};

#define N_SPECS (sizeof specs / sizeof specs[0])

/* Framing settings are gathered and applied together at the end
 * (prog_framing_apply), whatever their order on the command line. */
typedef prog_framing_args pending;

static const char *prog_name(prog_kind kind)
{
    return kind == PROG_SERVER ? "gmud-server" : "gmud-client";
}

static void set_defaults(prog_options *o, prog_kind kind)
{
    memset(o, 0, sizeof *o);
    o->prog = prog_name(kind);
    o->kind = kind;
    o->host = PROG_DEFAULT_HOST;
    o->port = PROG_DEFAULT_PORT;
    gmud_frame_default_config(&o->frame, GMUD_FRAMING_GMUD);
    o->json = 1;
    o->log_level = GMUD_LOG_INFO;
    gmud_limits_default_config(&o->limits);
    gmud_iplimit_default_config(&o->addr);
    o->shutdown_ms = GMUD_SHUTDOWN_FLUSH_MS_DEFAULT;
    o->app = APP_CHAT;
    o->interval_ms = PROG_DEFAULT_INTERVAL_MS;
    o->count = 0;
    o->wait_ms = PROG_DEFAULT_WAIT_MS;
    o->session = GMUD_SESSION_ON; /* as the default framing and payload want */
    o->welcome_ms = GMUD_WELCOME_TIMEOUT_MS_DEFAULT;
}

/* An unsigned decimal with an optional k or m suffix (KiB, MiB) if allowed.
 * 0 on success, -1 if not a number or out of range. */
static int parse_ull(const char *text, int suffix, unsigned long long max, unsigned long long *out)
{
    char *end;
    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    unsigned long long mul = 1;
    if (suffix && (*end == 'k' || *end == 'K'))
        mul = 1024, end++;
    else if (suffix && (*end == 'm' || *end == 'M'))
        mul = 1024 * 1024, end++;
    if (*end != '\0' || v > max / mul)
        return -1;
    *out = v * mul;
    return 0;
}

/* Seconds: a decimal number, fractions allowed, rounded to milliseconds;
 * the limits hold milliseconds in 32 bits, so at most PROG_MAX_SECONDS. */
#define PROG_MAX_SECONDS 4294967.0 /* UINT32_MAX ms, about 49 days */

static int parse_seconds(const char *text, int positive, uint32_t *out_ms)
{
    char *end;
    if ((text[0] < '0' || text[0] > '9') && text[0] != '.')
        return -1;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0 || v > PROG_MAX_SECONDS ||
        (positive && v < 0.0005))
        return -1;
    *out_ms = (uint32_t)llround(v * 1000.0);
    return 0;
}

/* An address literal, or something that may be a host name (the library
 * resolves it): letters, digits, '-' and '.', at most 253 bytes. */
static int check_host(const char *text)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, text, addr) == 1 || inet_pton(AF_INET6, text, addr) == 1)
        return 0;
    size_t n = strlen(text);
    if (n == 0 || n > 253 || text[0] == '-' || text[0] == '.')
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return -1;
    }
    return 0;
}

/* Applies one value; 0, or -1 with why[] saying what is wrong. */
static int apply(prog_options *o, pending *p, const opt_spec *s, const char *val, char *why,
                 size_t whylen)
{
    char *field = (char *)o + s->off;
    unsigned long long u = 0;
    switch (s->type) {
    case T_HELP:
        return 0;
    case T_HOST:
        o->host = val;
        if (check_host(val) == 0)
            return 0;
        snprintf(why, whylen, "'%s' is not an IPv4 or IPv6 address or a host name", val);
        return -1;
    case T_PORT:
        if (parse_ull(val, 0, 65535, &u) == 0 && (u > 0 || o->kind == PROG_SERVER)) {
            o->port = (int)u;
            return 0;
        }
        snprintf(why, whylen, "'%s' is not a port number (%d..65535)", val,
                 o->kind == PROG_SERVER ? 0 : 1);
        return -1;
    case T_FRAMING:
        p->framing = val;
        return 0;
    case T_LABEL:
        p->label = val;
        return 0;
    case T_DELIM:
        p->delim = val;
        return 0;
    case T_MAX_MESSAGE:
        p->max_message = val;
        return 0;
    case T_PAYLOAD:
        if (strcmp(val, "text") == 0 || strcmp(val, "json") == 0) {
            o->json = strcmp(val, "json") == 0;
            return 0;
        }
        snprintf(why, whylen, "'%s' is not a payload; use text or json", val);
        return -1;
    case T_LOG_LEVEL:
        if (gmud_log_level_parse(val, &o->log_level) == 0)
            return 0;
        snprintf(why, whylen, "'%s' is not a level; use error, warn, info or debug", val);
        return -1;
    case T_SESSION:
        o->session_set = 1;
        if (gmud_session_mode_parse(val, &o->session, NULL) == 0)
            return 0;
        snprintf(why, whylen, "'%s' is not a session mode; use off, lecture or on", val);
        return -1;
    case T_FLAG:
        *(int *)(void *)field = 1;
        return 0;
    case T_STRING:
        *(const char **)(void *)field = val;
        return 0;
    case T_U32:
        if (parse_ull(val, 1, UINT32_MAX, &u) == 0) {
            *(uint32_t *)(void *)field = (uint32_t)u;
            return 0;
        }
        snprintf(why, whylen, "'%s' is not a whole number from 0 to %u (k and m allowed)", val,
                 (unsigned)UINT32_MAX);
        return -1;
    case T_APP:
        if (app_kind_parse(val, &o->app) == 0)
            return 0;
        snprintf(why, whylen, "'%s' is not an application; use echo, clock or chat", val);
        return -1;
    case T_SIZE:
        if (parse_ull(val, 1, SIZE_MAX, &u) == 0 && u > 0) {
            *(size_t *)(void *)field = (size_t)u;
            return 0;
        }
        break;
    case T_UINT:
        if (parse_ull(val, 0, 255, &u) == 0 && u > 0) {
            *(unsigned *)(void *)field = (unsigned)u;
            return 0;
        }
        snprintf(why, whylen, "'%s' is not a whole number from 1 to 255", val);
        return -1;
    case T_ULL:
        if (parse_ull(val, 0, ULLONG_MAX, &u) == 0 && u > 0) {
            *(unsigned long long *)(void *)field = u;
            return 0;
        }
        break;
    case T_MS:
    case T_MS_POS:
        if (parse_seconds(val, s->type == T_MS_POS, (uint32_t *)(void *)field) == 0)
            return 0;
        snprintf(why, whylen, "'%s' is not a number of seconds (%s, at most %.0f)", val,
                 s->type == T_MS_POS ? "at least 0.001" : "0 or more", PROG_MAX_SECONDS);
        return -1;
    }
    snprintf(why, whylen, "'%s' is not a positive whole number%s", val,
             s->type == T_SIZE ? " (k and m suffixes allowed)" : "");
    return -1;
}

int prog_framing_apply(const char *prog, gmud_frame_config *frame, const prog_framing_args *p)
{
    gmud_error err = {0};
    const char *opt = "--framing";
    int rc = GMUD_OK;
    if (p->framing != NULL)
        rc = gmud_frame_config_parse(frame, p->framing, &err);
    if (rc == GMUD_OK && p->label != NULL) {
        opt = "--label";
        rc = gmud_frame_config_set_label(frame, p->label, &err);
    }
    if (rc == GMUD_OK && p->delim != NULL) {
        opt = "--delim";
        rc = gmud_frame_config_set_delim(frame, p->delim, &err);
    }
    if (rc == GMUD_OK && p->max_message != NULL) {
        unsigned long long u;
        opt = "--max-message";
        if (parse_ull(p->max_message, 1, GMUD_MAX_MESSAGE_CEILING, &u) != 0 || u == 0)
            rc = gmud_error_set(&err, GMUD_ERR_INVALID, 0,
                                "'%s' is not a size from 1 to %d bytes", p->max_message,
                                (int)GMUD_MAX_MESSAGE_CEILING);
        else
            frame->max_message = (size_t)u;
    }
    if (rc == GMUD_OK) {
        opt = "framing";
        rc = gmud_frame_config_check(frame, &err);
    }
    if (rc == GMUD_OK)
        return 0;
    fprintf(stderr, "%s: %s: %s\n", prog, opt, err.message);
    return -1;
}

/* The session mode's default and the combinations that cannot work; 0 or
 * -1 after printing why. (The library checks the framing itself.) */
static int check_session(prog_options *o)
{
    if (!o->session_set)
        o->session = o->frame.framing == GMUD_FRAMING_GMUD && o->json ? GMUD_SESSION_ON
                                                                       : GMUD_SESSION_OFF;
    const char *opt = "--session", *why = NULL;
    if (o->addr.new_per_sec != 0 && o->addr.new_burst == 0)
        opt = "--new-per-addr-burst", why = "must be positive while --new-per-addr is on";
    else if (o->kind == PROG_SERVER && o->interval_ms == 0 && o->session != GMUD_SESSION_LECTURE)
        opt = "--interval", why = "0 is for lecture mode only (--session lecture)";
    else if (o->session == GMUD_SESSION_LECTURE && !o->json)
        why = "lecture mode needs --payload json";
    else if (o->session == GMUD_SESSION_LECTURE && o->kind == PROG_SERVER && o->app != APP_CLOCK)
        why = "lecture mode needs --app clock (the client replies to every packet: echo "
              "or chat would answer each reply forever)";
    else if (o->session == GMUD_SESSION_ON && o->frame.framing != GMUD_FRAMING_LENGTH &&
             o->frame.framing != GMUD_FRAMING_GMUD && o->frame.framing != GMUD_FRAMING_FIXED)
        why = "mode on needs length, gmud or fixed framing (or --session off)";
    if (why == NULL)
        return 0;
    fprintf(stderr, "%s: %s: %s\n", o->prog, opt, why);
    return -1;
}

static const opt_spec *find_spec(prog_kind kind, const char *name, size_t len)
{
    for (size_t i = 0; i < N_SPECS; i++)
        if ((specs[i].who & kind) && strlen(specs[i].name) == len &&
            strncmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

int prog_options_parse(prog_options *o, prog_kind kind, int argc, char **argv)
{
    pending p = {0};
    set_defaults(o, kind);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            prog_options_help(kind, stdout);
            return PROG_EXIT_OK;
        }
        /* --name value, or --name=value */
        const char *eq = strchr(arg, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const opt_spec *s = strncmp(arg, "--", 2) == 0 ? find_spec(kind, arg, name_len) : NULL;
        if (s == NULL) {
            fprintf(stderr, "%s: unknown option or argument '%s'; see --help\n", o->prog, arg);
            return PROG_EXIT_USAGE;
        }
        const char *val = s->type == T_FLAG ? "" : eq != NULL ? eq + 1
                          : i + 1 < argc ? argv[++i] : NULL;
        if (val == NULL) {
            fprintf(stderr, "%s: %s needs a value (%s); see --help\n", o->prog, s->name,
                    s->metavar);
            return PROG_EXIT_USAGE;
        }
        char why[200];
        if (apply(o, &p, s, val, why, sizeof why) != 0) {
            fprintf(stderr, "%s: %s: %s\n", o->prog, s->name, why);
            return PROG_EXIT_USAGE;
        }
    }
    if (prog_framing_apply(o->prog, &o->frame, &p) != 0 || check_session(o) != 0)
        return PROG_EXIT_USAGE;
    /* Reading pauses at the high-water mark of queued output, well before
     * the close at max_queued; keep that order when max_queued is lowered. */
    gmud_limits *lim = &o->limits;
    if (lim->read_high_water >= lim->max_queued) {
        lim->read_high_water = lim->max_queued / 2 > 0 ? lim->max_queued / 2 : 1;
        lim->read_low_water = lim->read_high_water / 4;
    }
    gmud_error err = {0};
    if (gmud_limits_check(lim, &err) != GMUD_OK) {
        fprintf(stderr, "%s: limits: %s\n", o->prog, err.message);
        return PROG_EXIT_USAGE;
    }
    return PROG_RUN;
}


/* The default of one option, as text. */
static void show_default(const prog_options *d, const opt_spec *s, char *buf, size_t n)
{
    const char *field = (const char *)d + s->off;
    switch (s->type) {
    case T_HELP:
        buf[0] = '\0';
        return;
    case T_HOST:
        snprintf(buf, n, "%s", d->host);
        return;
    case T_PORT:
        snprintf(buf, n, "%d", d->port);
        return;
    case T_FRAMING:
        snprintf(buf, n, "%s", gmud_framing_name(d->frame.framing));
        return;
    case T_PAYLOAD:
        snprintf(buf, n, "%s", d->json ? "json" : "text");
        return;
    case T_LABEL:
        snprintf(buf, n, "%.4s", (const char *)d->frame.label);
        return;
    case T_DELIM:
        snprintf(buf, n, "\\n");
        return;
    case T_MAX_MESSAGE:
        snprintf(buf, n, "%zu", d->frame.max_message);
        return;
    case T_LOG_LEVEL:
        snprintf(buf, n, "%s", gmud_log_level_name(d->log_level));
        return;
    case T_APP:
        snprintf(buf, n, "%s", app_kind_name(d->app));
        return;
    case T_SESSION:
        snprintf(buf, n, "on for gmud framing with json payload, else off");
        return;
    case T_FLAG:
        snprintf(buf, n, "off");
        return;
    case T_STRING:
        snprintf(buf, n, "%s", GMUD_SESSION_LECTURE_DATA);
        return;
    case T_U32:
        snprintf(buf, n, "%u", (unsigned)*(const uint32_t *)(const void *)field);
        return;
    case T_SIZE:
        snprintf(buf, n, "%zu", *(const size_t *)(const void *)field);
        return;
    case T_UINT:
        snprintf(buf, n, "%u", *(const unsigned *)(const void *)field);
        return;
    case T_ULL:
        if (*(const unsigned long long *)(const void *)field == 0)
            snprintf(buf, n, "no limit");
        else
            snprintf(buf, n, "%llu", *(const unsigned long long *)(const void *)field);
        return;
    case T_MS:
    case T_MS_POS: {
        uint32_t ms = *(const uint32_t *)(const void *)field;
        int off = s->off == AT(limits.idle_timeout_ms) && ms == 0;
        snprintf(buf, n, "%g%s", ms / 1000.0, off ? ", off" : "");
        return;
    }
    }
}

/* Prints text after column `indent` (where the cursor is), each word after
 * a space, wrapped before column `width`; continuation lines are indented
 * the same. */
static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
    int col = indent;
    while (*text != '\0') {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + (int)word > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        }
        fprintf(out, " %.*s", (int)word, text);
        col += 1 + (int)word;
        text += word;
        text += strspn(text, " ");
    }
    fputc('\n', out);
}

void prog_options_help(prog_kind kind, FILE *out)
{
    prog_options d;
    set_defaults(&d, kind);
    if (kind == PROG_SERVER)
        fprintf(out, "usage: gmud-server [options]\n"
                     "Serves gmud messages over TCP: the lecture's clock, an echo, or a chat.\n"
                     "SIGINT or SIGTERM: stop accepting, flush, close, exit 0.\n");
    else
        fprintf(out, "usage: gmud-client [options] < lines\n"
                     "Connects to a gmud server, sends each stdin line as one message (json\n"
                     "payload: each non-blank line must be a JSON object) and prints each\n"
                     "message received as one line (json: compact, one object a line).\n"
                     "Exit 0 on a clean close, 1 on any error.\n");
    fprintf(out, "options [default]:\n");
    for (size_t i = 0; i < N_SPECS; i++) {
        const opt_spec *s = &specs[i];
        if (!(s->who & kind))
            continue;
        char left[40], def[64];
        snprintf(left, sizeof left, "%s%s%s", s->name, s->metavar ? " " : "",
                 s->metavar ? s->metavar : "");
        show_default(&d, s, def, sizeof def);
        char text[400];
        snprintf(text, sizeof text, "%s%s%s%s", s->help, def[0] ? " [" : "", def,
                 def[0] ? "]" : "");
        fprintf(out, "  %-26s", left);
        print_wrapped(out, text, 28, 79);
    }
}

void prog_log(void *user, const gmud_log_event *ev)
{
    const prog_options *o = user;
    if (o != NULL && ev->level > o->log_level)
        return;
    struct timespec ts;
    struct tm tm;
    char when[32] = "?";
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm) != NULL) {
        size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    }
    /* One fprintf per line: stderr is unbuffered, and a line written in one
     * call is not interleaved with another process's. */
    fprintf(stderr, "%s %s %s %s%s%s\n", when, gmud_log_level_name(ev->level),
            ev->peer != NULL && ev->peer[0] != '\0' ? ev->peer : "-", ev->event,
            ev->reason != NULL && ev->reason[0] != '\0' ? ": " : "",
            ev->reason != NULL ? ev->reason : "");
}

void prog_logf(const prog_options *o, gmud_log_level level, const char *peer, const char *event,
               const char *fmt, ...)
{
    if (level > o->log_level)
        return;
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    gmud_log_event ev = {level, peer != NULL ? peer : "-", event, reason};
    prog_log((void *)o, &ev);
}

void prog_process_setup(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        /* open() takes the lowest free descriptor: this very fd. */
        int nul = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (nul != fd && nul >= 0)
            close(nul);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}
