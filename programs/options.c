/* programs/options.c: one option table for gmud-server and gmud-client; it
 * drives both the parser and --help. Each type of value has its handlers in
 * one place, an opt_type: how a value is taken and checked, and how its
 * default reads in --help; each option names its type. The defaults are the
 * library's (gmud_server_default_config, gmud_client_default_config) but for
 * the few only the programs have, PROG_DEFAULT_* in options.h. */
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

#include "gmud/client.h"

/* Framing settings are gathered and applied together at the end
 * (prog_framing_apply), whatever their order on the command line. */
typedef prog_framing_args pending;

typedef struct opt_spec opt_spec;

/* Taking one value: the options filled in, the framing settings gathered,
 * the option and its value, and why the value was refused. */
typedef struct opt_take {
    prog_options *o;
    pending p;
    const opt_spec *s;
    const char *val;
    char why[200];
} opt_take;

/* Showing one option's default in --help: the defaults, the option, the
 * text. */
typedef struct opt_show {
    const prog_options *d;
    const opt_spec *s;
    char text[64];
} opt_show;

/* A whole-number type (take_whole, show_whole): the values taken, whether
 * with k and m suffixes (KiB, MiB), the field's size, what a refusal says
 * after the value, and what a default of 0 reads as (NULL: "0"). */
typedef struct opt_whole {
    unsigned long long least, most;
    int suffix;
    size_t size;
    const char *why;
    const char *zero;
} opt_whole;

/* A type of value: take stores t->val (0) or refuses it (-1, with t->why
 * saying what is wrong); show writes the default, as text. Everything about
 * a type is in its functions, and a new type is one more opt_type. */
typedef struct opt_type {
    int (*take)(opt_take *t);
    void (*show)(opt_show *w);
    int flag;              /* takes no value */
    const opt_whole *whole; /* the whole-number types' */
} opt_type;

struct opt_spec {
    const char *name;
    unsigned who;         /* PROG_SERVER | PROG_CLIENT */
    const opt_type *type;
    size_t off;           /* the field in prog_options (for the framing
                             types: in prog_framing_args) */
    const char *metavar;
    const char *help;
};

static void *field(const opt_take *t)
{
    return (char *)t->o + t->s->off;
}

static const void *default_field(const opt_show *w)
{
    return (const char *)w->d + w->s->off;
}

/* Refuses t->val: why is "'<val>' " and then fmt. -1. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int refuse(opt_take *t, const char *fmt, ...)
{
    int n = snprintf(t->why, sizeof t->why, "'%s' ", t->val);
    if (n < 0 || (size_t)n >= sizeof t->why)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->why + n, sizeof t->why - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(opt_show *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->text, sizeof w->text, fmt, ap);
    va_end(ap);
}

/* ---- Reading values ----------------------------------------------------- */

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

/* ---- The types ---------------------------------------------------------- */

/* --help: prog_options_parse answers it before any taking; no default. */
static int take_nothing(opt_take *t)
{
    (void)t;
    return 0;
}

static void show_nothing(opt_show *w)
{
    w->text[0] = '\0';
}

static const opt_type t_help = {.take = take_nothing, .show = show_nothing};

/* An address literal or a host name, at o->host. */
static int take_host(opt_take *t)
{
    t->o->host = t->val;
    if (check_host(t->val) == 0)
        return 0;
    return refuse(t, "is not an IPv4 or IPv6 address or a host name");
}

static void show_host(opt_show *w)
{
    put(w, "%s", w->d->host);
}

static const opt_type t_host = {.take = take_host, .show = show_host};

/* A TCP port at o->port; 0 (pick one) for the server only. */
static int take_port(opt_take *t)
{
    unsigned long long u = 0, least = t->o->kind == PROG_SERVER ? 0 : 1;
    if (parse_ull(t->val, 0, 65535, &u) != 0 || u < least)
        return refuse(t, "is not a port number (%d..65535)", (int)least);
    t->o->port = (int)u;
    return 0;
}

static void show_port(opt_show *w)
{
    put(w, "%d", w->d->port);
}

static const opt_type t_port = {.take = take_port, .show = show_port};

/* The framing options: the text is kept in prog_framing_args at off, for
 * prog_framing_apply to check; each shows its part of o->conn.frame. */
static int take_framing_arg(opt_take *t)
{
    *(const char **)(void *)((char *)&t->p + t->s->off) = t->val;
    return 0;
}

static void show_framing(opt_show *w)
{
    put(w, "%s", gmud_framing_name(w->d->conn.frame.framing));
}

static void show_label(opt_show *w)
{
    put(w, "%.*s", (int)sizeof w->d->conn.frame.label, (const char *)w->d->conn.frame.label);
}

static void show_delim(opt_show *w)
{
    prog_delim_text(&w->d->conn.frame, w->text, sizeof w->text);
}

static void show_max_message(opt_show *w)
{
    put(w, "%zu", w->d->conn.frame.max_message);
}

static const opt_type t_framing = {.take = take_framing_arg, .show = show_framing};
static const opt_type t_label = {.take = take_framing_arg, .show = show_label};
static const opt_type t_delim = {.take = take_framing_arg, .show = show_delim};
static const opt_type t_max_message = {.take = take_framing_arg, .show = show_max_message};

/* text or json, at o->conn.payload. */
static int take_payload(opt_take *t)
{
    if (strcmp(t->val, "text") != 0 && strcmp(t->val, "json") != 0)
        return refuse(t, "is not a payload; use text or json");
    t->o->conn.payload = strcmp(t->val, "json") == 0 ? GMUD_PAYLOAD_JSON : GMUD_PAYLOAD_TEXT;
    return 0;
}

static void show_payload(opt_show *w)
{
    put(w, "%s", w->d->conn.payload == GMUD_PAYLOAD_JSON ? "json" : "text");
}

static const opt_type t_payload = {.take = take_payload, .show = show_payload};

/* A log level, at o->conn.log_level. */
static int take_log_level(opt_take *t)
{
    if (gmud_log_level_parse(t->val, &t->o->conn.log_level) == 0)
        return 0;
    return refuse(t, "is not a level; use error, warn, info or debug");
}

static void show_log_level(opt_show *w)
{
    put(w, "%s", gmud_log_level_name(w->d->conn.log_level));
}

static const opt_type t_log_level = {.take = take_log_level, .show = show_log_level};

/* The server's application, at o->app. */
static int take_app(opt_take *t)
{
    if (app_kind_parse(t->val, &t->o->app) == 0)
        return 0;
    return refuse(t, "is not an application; use echo, clock or chat");
}

static void show_app(opt_show *w)
{
    put(w, "%s", app_kind_name(w->d->app));
}

static const opt_type t_app = {.take = take_app, .show = show_app};

/* The session mode, at o->conn.session.mode; left alone, it follows the
 * framing and the payload (check_session). */
static int take_session(opt_take *t)
{
    t->o->session_set = 1;
    if (gmud_session_mode_parse(t->val, &t->o->conn.session.mode, NULL) == 0)
        return 0;
    return refuse(t, "is not a session mode; use off, lecture or on");
}

static void show_session(opt_show *w)
{
    put(w, "on for gmud framing with json payload, else off");
}

static const opt_type t_session = {.take = take_session, .show = show_session};

/* The lecture replies' data: a const char * at off; NULL is the lecture's. */
static int take_reply_data(opt_take *t)
{
    *(const char **)field(t) = t->val;
    return 0;
}

static void show_reply_data(opt_show *w)
{
    const char *data = *(const char *const *)default_field(w);
    put(w, "%s", data != NULL ? data : GMUD_SESSION_LECTURE_DATA);
}

static const opt_type t_reply_data = {.take = take_reply_data, .show = show_reply_data};

/* A flag: the int at off set to 1; it takes no value. */
static int take_flag(opt_take *t)
{
    *(int *)field(t) = 1;
    return 0;
}

static void show_flag(opt_show *w)
{
    put(w, "%s", *(const int *)default_field(w) ? "on" : "off");
}

static const opt_type t_flag = {.take = take_flag, .show = show_flag, .flag = 1};

/* The whole numbers' fields are of unsigned types of 32 or 64 bits (size_t,
 * uint32_t, unsigned, unsigned long long): each is read and written as the
 * integer of its size. */
_Static_assert(sizeof(unsigned) == sizeof(uint32_t) &&
                   (sizeof(size_t) == sizeof(uint32_t) || sizeof(size_t) == sizeof(uint64_t)) &&
                   sizeof(unsigned long long) == sizeof(uint64_t),
               "whole-number fields are 32 or 64 bits");

static void store_whole(void *p, size_t size, unsigned long long v)
{
    if (size == sizeof(uint32_t)) {
        uint32_t v32 = (uint32_t)v;
        memcpy(p, &v32, sizeof v32);
    } else {
        uint64_t v64 = v;
        memcpy(p, &v64, sizeof v64);
    }
}

static unsigned long long load_whole(const void *p, size_t size)
{
    if (size == sizeof(uint32_t)) {
        uint32_t v32;
        memcpy(&v32, p, sizeof v32);
        return v32;
    }
    uint64_t v64;
    memcpy(&v64, p, sizeof v64);
    return v64;
}

static int take_whole(opt_take *t)
{
    const opt_whole *n = t->s->type->whole;
    unsigned long long u = 0;
    if (parse_ull(t->val, n->suffix, n->most, &u) != 0 || u < n->least)
        return refuse(t, "%s", n->why);
    store_whole(field(t), n->size, u);
    return 0;
}

static void show_whole(opt_show *w)
{
    const opt_whole *n = w->s->type->whole;
    unsigned long long v = load_whole(default_field(w), n->size);
    if (v == 0 && n->zero != NULL)
        put(w, "%s", n->zero);
    else
        put(w, "%llu", v);
}

/* A whole-number type: its field's C type, then opt_whole's members. */
#define WHOLE(type, least, most, suffix, why, zero)                                        \
    {.take = take_whole, .show = show_whole,                                               \
     .whole = &(const opt_whole){least, most, suffix, sizeof(type), why, zero}}

static const opt_type t_size = WHOLE(size_t, 1, SIZE_MAX, 1,
    "is not a positive whole number (k and m suffixes allowed)", NULL);
static const opt_type t_uint = WHOLE(unsigned, 1, 255, 0,
    "is not a whole number from 1 to 255", NULL);
static const opt_type t_count = WHOLE(unsigned long long, 1, ULLONG_MAX, 0,
    "is not a positive whole number", "no limit");
static const opt_type t_u32 = WHOLE(uint32_t, 0, UINT32_MAX, 1,
    "is not a whole number from 0 to 4294967295 (k and m allowed)", NULL);

/* Seconds given, uint32_t milliseconds at off: 0 or more (t_ms; t_ms_off
 * where 0 is off), or at least 1 ms (t_ms_pos). */
static int take_seconds(opt_take *t, int positive)
{
    if (parse_seconds(t->val, positive, field(t)) == 0)
        return 0;
    return refuse(t, "is not a number of seconds (%s, at most %.0f)",
                  positive ? "at least 0.001" : "0 or more", PROG_MAX_SECONDS);
}

static int take_ms(opt_take *t)
{
    return take_seconds(t, 0);
}

static int take_ms_pos(opt_take *t)
{
    return take_seconds(t, 1);
}

static void show_ms(opt_show *w)
{
    put(w, "%g", *(const uint32_t *)default_field(w) / 1000.0);
}

static void show_ms_off(opt_show *w)
{
    uint32_t ms = *(const uint32_t *)default_field(w);
    put(w, "%g%s", ms / 1000.0, ms == GMUD_OFF ? ", off" : "");
}

static const opt_type t_ms = {.take = take_ms, .show = show_ms};
static const opt_type t_ms_off = {.take = take_ms, .show = show_ms_off};
static const opt_type t_ms_pos = {.take = take_ms_pos, .show = show_ms};

/* ---- The options -------------------------------------------------------- */

#define BOTH (PROG_SERVER | PROG_CLIENT)
#define AT(field) offsetof(prog_options, field)
#define FRAMING_ARG(field) offsetof(prog_framing_args, field)

static const opt_spec specs[] = {
    {"--host", BOTH, &t_host, AT(host), "ADDR",
     "IPv4 or IPv6 address or host name (server: to listen on)"},
    {"--port", BOTH, &t_port, AT(port), "PORT",
     "TCP port (server: 0 picks a free one and logs it)"},
    {"--framing", BOTH, &t_framing, FRAMING_ARG(framing), "F", "raw|line|fixed:N|length|gmud"},
    {"--payload", BOTH, &t_payload, AT(conn.payload), "P",
     "text|json (json: each message is a JSON object)"},
    {"--label", BOTH, &t_label, FRAMING_ARG(label), "XXXX",
     "gmud framing: the 4-byte packet label"},
    {"--delim", BOTH, &t_delim, FRAMING_ARG(delim), "TEXT",
     "line framing: delimiter, C escapes allowed"},
    {"--max-message", BOTH, &t_max_message, FRAMING_ARG(max_message), "BYTES",
     "largest payload accepted or sent"},
    {"--app", PROG_SERVER, &t_app, AT(app), "APP",
     "echo: back to the sender; clock: the lecture's timed messages, "
     "from the first connection on; chat: to every other client"},
    {"--interval", PROG_SERVER, &t_ms, AT(interval_ms), "SECONDS",
     "clock: time between messages (fractions allowed; 0 only in lecture mode, where "
     "each reply is answered at once)"},
    {"--count", PROG_SERVER, &t_count, AT(count), "N",
     "clock: stop after N messages, then shut down and exit 0"},
    {"--session", BOTH, &t_session, AT(conn.session.mode), "MODE",
     "off|lecture|on: lecture is the lecture's approach 6 (json payload; the server "
     "runs the clock app); on is gmud's own, a 16-byte session header on every packet "
     "(length, gmud or fixed framing). Both ends must agree"},
    {"--session-carry-on", PROG_SERVER, &t_flag, AT(conn.session.carry_on), NULL,
     "lecture mode: a bad reply is logged, counted and printed, and the connection "
     "stays open, as the lecture's server does"},
    {"--reply-data", PROG_CLIENT, &t_reply_data, AT(conn.session.reply_data), "TEXT",
     "lecture mode: the data field of each reply"},
    {"--welcome-timeout", PROG_CLIENT, &t_ms_pos, AT(conn.session.welcome_timeout_ms), "SECONDS",
     "lecture and on modes: give up if the server sends no welcome within this "
     "time"},
    {"--rate-msgs", PROG_SERVER, &t_u32, AT(conn.limits.msg_rate), "N",
     "messages a second one peer may send (0: no limit); more are dropped, with a "
     "warning packet a second"},
    {"--rate-msgs-burst", PROG_SERVER, &t_u32, AT(conn.limits.msg_burst), "N",
     "messages one peer may send at once"},
    {"--rate-bytes", PROG_SERVER, &t_u32, AT(conn.limits.byte_rate), "BYTES",
     "payload bytes a second one peer may send (0: no limit)"},
    {"--rate-bytes-burst", PROG_SERVER, &t_u32, AT(conn.limits.byte_burst), "BYTES",
     "payload bytes one peer may send at once"},
    {"--max-per-addr", PROG_SERVER, &t_u32, AT(addr.max_per_addr), "N",
     "connections at once from one IP address (0: no limit)"},
    {"--new-per-addr", PROG_SERVER, &t_u32, AT(addr.new_per_sec), "N",
     "new connections a second from one IP address (0: no limit)"},
    {"--new-per-addr-burst", PROG_SERVER, &t_u32, AT(addr.new_burst), "N",
     "new connections one IP address may open at once"},
    {"--rate-close-after", PROG_SERVER, &t_ms_pos, AT(conn.limits.rate_close_ms), "SECONDS",
     "a peer over its rate this long is closed"},
    {"--wait", PROG_CLIENT, &t_ms, AT(wait_ms), "SECONDS",
     "after stdin ends, wait this long for replies, then close"},
    {"--max-queued", BOTH, &t_size, AT(conn.limits.max_queued), "BYTES",
     "outgoing bytes queued to one peer before it is closed (slow consumer)"},
    {"--frame-timeout", BOTH, &t_ms_pos, AT(conn.limits.frame_timeout_ms), "SECONDS",
     "a frame begun must be complete within this time"},
    {"--idle-timeout", BOTH, &t_ms_off, AT(conn.limits.idle_timeout_ms), "SECONDS",
     "close a peer silent this long (0: off)"},
    {"--send-timeout", BOTH, &t_ms_off, AT(conn.limits.send_timeout_ms), "SECONDS",
     "close a peer whose queued output makes no progress this long: it stopped "
     "reading (slow consumer; 0: off)"},
    {"--max-connections", PROG_SERVER, &t_size, AT(conn.limits.max_connections), "N",
     "connections at once; one more gets an error packet, then the close"},
    {"--max-bad-messages", BOTH, &t_uint, AT(conn.limits.max_bad_messages), "N",
     "json payloads that do not parse before the peer is closed"},
    {"--shutdown-timeout", PROG_SERVER, &t_ms_pos, AT(shutdown_ms), "SECONDS",
     "on SIGINT/SIGTERM, time to flush queued messages before closing"},
    {"--log-level", BOTH, &t_log_level, AT(conn.log_level), "LEVEL",
     "error|warn|info|debug (logs go to stderr)"},
    {"--help", BOTH, &t_help, 0, NULL, "print this help and exit"},
};

#define N_SPECS (sizeof specs / sizeof specs[0])

/* ---- Defaults ----------------------------------------------------------- */

static const char *prog_name(prog_kind kind)
{
    return kind == PROG_SERVER ? "gmud-server" : "gmud-client";
}

/* The library's defaults for the program (its config's host, port and
 * connection settings), and the programs' own. */
static void set_defaults(prog_options *o, prog_kind kind)
{
    memset(o, 0, sizeof *o);
    o->prog = prog_name(kind);
    o->kind = kind;
    if (kind == PROG_SERVER) {
        gmud_server_config cfg;
        gmud_server_default_config(&cfg);
        o->host = cfg.host;
        o->port = cfg.port;
        o->conn = cfg.conn;
        o->addr = cfg.addr;
    } else {
        gmud_client_config cfg;
        gmud_client_default_config(&cfg);
        o->host = cfg.host;
        o->port = cfg.port;
        o->conn = cfg.conn;
    }
    o->shutdown_ms = GMUD_SHUTDOWN_FLUSH_MS_DEFAULT;
    o->app = APP_CHAT;
    o->interval_ms = PROG_DEFAULT_INTERVAL_MS;
    o->count = 0;
    o->wait_ms = PROG_DEFAULT_WAIT_MS;
}

void prog_delim_text(const gmud_frame_config *frame, char *buf, size_t n)
{
    static const char special[] = "\n\r\t\\", letter[] = "nrt\\";
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < frame->delim_len && used < n; i++) {
        unsigned char c = frame->delim[i];
        const char *sp = c != 0 ? strchr(special, c) : NULL;
        int w;
        if (c == 0)
            w = snprintf(buf + used, n - used, "\\0");
        else if (sp != NULL)
            w = snprintf(buf + used, n - used, "\\%c", letter[sp - special]);
        else if (c >= 0x20 && c < 0x7f)
            w = snprintf(buf + used, n - used, "%c", c);
        else
            w = snprintf(buf + used, n - used, "\\x%02x", c);
        used += (size_t)w;
    }
}

/* ---- Parsing ------------------------------------------------------------ */

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
    gmud_framing framing = o->conn.frame.framing;
    int json = o->conn.payload == GMUD_PAYLOAD_JSON;
    gmud_session_mode *mode = &o->conn.session.mode;
    if (!o->session_set)
        *mode = framing == GMUD_FRAMING_GMUD && json ? GMUD_SESSION_ON : GMUD_SESSION_OFF;
    const char *opt = "--session", *why = NULL;
    if (o->addr.new_per_sec != 0 && o->addr.new_burst == 0)
        opt = "--new-per-addr-burst", why = "must be positive while --new-per-addr is on";
    else if (o->kind == PROG_SERVER && o->interval_ms == 0 && *mode != GMUD_SESSION_LECTURE)
        opt = "--interval", why = "0 is for lecture mode only (--session lecture)";
    else if (*mode == GMUD_SESSION_LECTURE && !json)
        why = "lecture mode needs --payload json";
    else if (*mode == GMUD_SESSION_LECTURE && o->kind == PROG_SERVER && o->app != APP_CLOCK)
        why = "lecture mode needs --app clock (the client replies to every packet: echo "
              "or chat would answer each reply forever)";
    else if (*mode == GMUD_SESSION_ON && framing != GMUD_FRAMING_LENGTH &&
             framing != GMUD_FRAMING_GMUD && framing != GMUD_FRAMING_FIXED)
        why = "mode on needs length, gmud or fixed framing (or --session off)";
    if (why == NULL)
        return 0;
    fprintf(stderr, "%s: %s: %s\n", o->prog, opt, why);
    return -1;
}

/* A server's reading pauses at the high-water mark of queued output, well
 * before the close at max_queued; keep that order when max_queued is
 * lowered. (A client never pauses: its mark is SIZE_MAX, gmud/client.h.) */
static void keep_water_marks(prog_options *o)
{
    gmud_limits *lim = &o->conn.limits;
    if (o->kind != PROG_SERVER || lim->read_high_water < lim->max_queued)
        return;
    lim->read_high_water = lim->max_queued / 2 > 0 ? lim->max_queued / 2 : 1;
    lim->read_low_water = lim->read_high_water / 4;
}

/* The checks of the whole, once every option is in; PROG_RUN, or
 * PROG_EXIT_USAGE after printing why. */
static int finish(prog_options *o, const pending *p)
{
    if (prog_framing_apply(o->prog, &o->conn.frame, p) != 0 || check_session(o) != 0)
        return PROG_EXIT_USAGE;
    keep_water_marks(o);
    gmud_error err = {0};
    if (gmud_limits_check(&o->conn.limits, &err) != GMUD_OK) {
        fprintf(stderr, "%s: limits: %s\n", o->prog, err.message);
        return PROG_EXIT_USAGE;
    }
    return PROG_RUN;
}

static const opt_spec *find_spec(prog_kind kind, const char *name, size_t len)
{
    for (size_t i = 0; i < N_SPECS; i++)
        if ((specs[i].who & kind) && strlen(specs[i].name) == len &&
            strncmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

/* Takes argv[*i], "--name value" (moving *i on to the value) or
 * "--name=value"; 0, or -1 after printing why. */
static int take_arg(opt_take *t, int argc, char **argv, int *i)
{
    const char *arg = argv[*i], *prog = t->o->prog;
    const char *eq = strchr(arg, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    t->s = strncmp(arg, "--", 2) == 0 ? find_spec(t->o->kind, arg, name_len) : NULL;
    if (t->s == NULL) {
        fprintf(stderr, "%s: unknown option or argument '%s'; see --help\n", prog, arg);
        return -1;
    }
    t->val = t->s->type->flag ? "" : eq != NULL ? eq + 1 : *i + 1 < argc ? argv[++*i] : NULL;
    if (t->val == NULL) {
        fprintf(stderr, "%s: %s needs a value (%s); see --help\n", prog, t->s->name,
                t->s->metavar);
        return -1;
    }
    if (t->s->type->take(t) == 0)
        return 0;
    fprintf(stderr, "%s: %s: %s\n", prog, t->s->name, t->why);
    return -1;
}

int prog_options_parse(prog_options *o, prog_kind kind, int argc, char **argv)
{
    opt_take t = {.o = o};
    set_defaults(o, kind);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            prog_options_help(kind, stdout);
            return PROG_EXIT_OK;
        }
        if (take_arg(&t, argc, argv, &i) != 0)
            return PROG_EXIT_USAGE;
    }
    return finish(o, &t.p);
}

/* ---- Help --------------------------------------------------------------- */

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

/* One option's lines: "--name METAVAR", its help and its default. */
static void print_option(FILE *out, const prog_options *d, const opt_spec *s)
{
    opt_show w = {d, s, ""};
    char left[40], text[400];
    snprintf(left, sizeof left, "%s%s%s", s->name, s->metavar ? " " : "",
             s->metavar ? s->metavar : "");
    s->type->show(&w);
    snprintf(text, sizeof text, "%s%s%s%s", s->help, w.text[0] ? " [" : "", w.text,
             w.text[0] ? "]" : "");
    fprintf(out, "  %-26s", left);
    print_wrapped(out, text, 28, 79);
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
    for (size_t i = 0; i < N_SPECS; i++)
        if (specs[i].who & kind)
            print_option(out, &d, &specs[i]);
}

/* ---- Logging and process setup ---------------------------------------- */

void prog_log(void *user, const gmud_log_event *ev)
{
    const prog_options *o = user;
    if (o != NULL && ev->level > o->conn.log_level)
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
    if (level > o->conn.log_level)
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
