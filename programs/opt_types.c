/* programs/opt_types.c: the types of value an option takes, each with all
 * its handlers in one place (see opt_types.h): reading and checking a
 * value, and writing its default for --help. */
#include "opt_types.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

int parse_ull(const char *text, int suffix, unsigned long long max, unsigned long long *out)
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

const opt_type t_help = {.take = take_nothing, .show = show_nothing};

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

const opt_type t_host = {.take = take_host, .show = show_host};

/* A TCP port, an int at off; 0 (pick one) for the server only; a default
 * below 0 is none. */
static int take_port(opt_take *t)
{
    unsigned long long u = 0, least = t->o->kind == PROG_SERVER ? 0 : 1;
    if (parse_ull(t->val, 0, 65535, &u) != 0 || u < least)
        return refuse(t, "is not a port number (%d..65535)", (int)least);
    *(int *)field(t) = (int)u;
    return 0;
}

static void show_port(opt_show *w)
{
    int port = *(const int *)default_field(w);
    if (port >= 0)
        put(w, "%d", port);
}

const opt_type t_port = {.take = take_port, .show = show_port};

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

const opt_type t_framing = {.take = take_framing_arg, .show = show_framing};
const opt_type t_label = {.take = take_framing_arg, .show = show_label};
const opt_type t_delim = {.take = take_framing_arg, .show = show_delim};
const opt_type t_max_message = {.take = take_framing_arg, .show = show_max_message};

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

const opt_type t_payload = {.take = take_payload, .show = show_payload};

/* shape or drop, at o->conn.limits.rate_policy. */
static int take_rate_policy(opt_take *t)
{
    if (strcmp(t->val, "shape") != 0 && strcmp(t->val, "drop") != 0)
        return refuse(t, "is not a rate policy; use shape or drop");
    t->o->conn.limits.rate_policy = strcmp(t->val, "drop") == 0 ? GMUD_RATE_DROP
                                                                : GMUD_RATE_SHAPE;
    return 0;
}

static void show_rate_policy(opt_show *w)
{
    put(w, "%s", w->d->conn.limits.rate_policy == GMUD_RATE_DROP ? "drop" : "shape");
}

const opt_type t_rate_policy = {.take = take_rate_policy, .show = show_rate_policy};

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

const opt_type t_log_level = {.take = take_log_level, .show = show_log_level};

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

const opt_type t_app = {.take = take_app, .show = show_app};

/* The session mode, at o->conn.session.mode; left alone, it follows the
 * framing and the payload (check_session). */
static int take_session(opt_take *t)
{
    t->o->session_set = 1;
    if (gmud_session_mode_parse(t->val, &t->o->conn.session.mode, NULL) == 0)
        return 0;
    return refuse(t, "is not a session mode; use off, lecture or on");
}

/* Before parsing (--help) the default depends on the framing; after it
 * (the effective configuration) the mode is decided. */
static void show_session(opt_show *w)
{
    if (w->d->prog != NULL && w->d->parsed)
        put(w, "%s", gmud_session_mode_name(w->d->conn.session.mode));
    else
        put(w, "on for gmud framing with json payload, else off");
}

const opt_type t_session = {.take = take_session, .show = show_session};

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

const opt_type t_reply_data = {.take = take_reply_data, .show = show_reply_data};

/* A file name or other text: a const char * at off; no default shown
 * (NULL reads as the option's help says). */
static void show_none(opt_show *w)
{
    const char *v = *(const char *const *)default_field(w);
    if (v != NULL)
        put(w, "%s", v);
}

const opt_type t_text = {.take = take_reply_data, .show = show_none};

/* A flag: the int at off set to 1; it takes no value. */
/* A flag alone is on; --flag=VALUE (and the environment) says which. */
static int take_flag(opt_take *t)
{
    static const char *const on[] = {"", "1", "true", "yes", "on"},
                             *const off[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        if (strcmp(t->val, on[i]) == 0) {
            *(int *)field(t) = 1;
            return 0;
        }
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        if (strcmp(t->val, off[i]) == 0) {
            *(int *)field(t) = 0;
            return 0;
        }
    return refuse(t, "is not a flag's value: 1, true, yes, on, or 0, false, no, off");
}

static void show_flag(opt_show *w)
{
    put(w, "%s", *(const int *)default_field(w) ? "on" : "off");
}

const opt_type t_flag = {.take = take_flag, .show = show_flag, .flag = 1};

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

const opt_type t_size = WHOLE(size_t, 1, SIZE_MAX, 1,
    "is not a positive whole number (k and m suffixes allowed)", NULL);
const opt_type t_size_off = WHOLE(size_t, 0, SIZE_MAX, 1,
    "is not a whole number (k and m suffixes allowed; 0: off)", "0, off");
const opt_type t_uint = WHOLE(unsigned, 1, 255, 0,
    "is not a whole number from 1 to 255", NULL);
const opt_type t_count = WHOLE(unsigned long long, 1, ULLONG_MAX, 0,
    "is not a positive whole number", "no limit");
const opt_type t_u32 = WHOLE(uint32_t, 0, UINT32_MAX, 1,
    "is not a whole number from 0 to 4294967295 (k and m allowed)", NULL);
const opt_type t_prefix6 = WHOLE(uint32_t, 1, 128, 0,
    "is not a prefix length from 1 to 128", NULL);

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

const opt_type t_ms = {.take = take_ms, .show = show_ms};
const opt_type t_ms_off = {.take = take_ms, .show = show_ms_off};
const opt_type t_ms_pos = {.take = take_ms_pos, .show = show_ms};

/* --listen: [tls:]ADDR:PORT, an IPv6 address in brackets, several with
 * commas or by repeating the option; a prog_listen at off. */
static int take_one_listen(opt_take *t, prog_listen *l, const char *text, size_t len)
{
    if (l->n >= GMUD_MAX_LISTENERS)
        return refuse(t, "more than %d addresses", GMUD_MAX_LISTENERS);
    gmud_listen_config *at = &l->at[l->n];
    memset(at, 0, sizeof *at);
    if (len > 4 && strncmp(text, "tls:", 4) == 0) {
        at->tls = 1;
        text += 4;
        len -= 4;
    }
    const char *colon = len > 0 ? memchr(text, ']', len) : NULL;
    size_t host_start = 0, host_len;
    if (len > 0 && text[0] == '[') {
        if (colon == NULL || (size_t)(colon - text) + 1 >= len || colon[1] != ':')
            return refuse(t, "needs [ADDR]:PORT for an IPv6 address");
        host_start = 1;
        host_len = (size_t)(colon - text) - 1;
        colon++;
    } else {
        colon = NULL;
        for (size_t i = len; i-- > 0 && colon == NULL;)
            if (text[i] == ':')
                colon = text + i;
        if (colon == NULL)
            return refuse(t, "needs ADDR:PORT ([ADDR]:PORT for IPv6; tls: before it for TLS)");
        host_len = (size_t)(colon - text);
    }
    char port[8], *host = l->host[l->n];
    size_t port_len = len - (size_t)(colon + 1 - text);
    unsigned long long p = 0;
    if (port_len == 0 || port_len >= sizeof port || host_len == 0 || host_len >= 64)
        return refuse(t, "needs ADDR:PORT with a port and an address");
    memcpy(port, colon + 1, port_len);
    port[port_len] = '\0';
    memcpy(host, text + host_start, host_len);
    host[host_len] = '\0';
    if (parse_ull(port, 0, 65535, &p) != 0)
        return refuse(t, "'%s' is not a port number (0..65535)", port);
    if (check_host(host) != 0)
        return refuse(t, "'%s' is not an IPv4 or IPv6 address or a host name", host);
    at->host = host;
    at->port = (uint16_t)p;
    l->n++;
    return 0;
}

static int take_listen(opt_take *t)
{
    prog_listen *l = field(t);
    for (const char *p = t->val; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (take_one_listen(t, l, p, len) != 0)
            return -1;
        p += len;
        p += *p == ',';
    }
    return 0;
}

static void show_listen(opt_show *w)
{
    const prog_listen *l = default_field(w);
    size_t used = 0;
    for (size_t i = 0; i < l->n && used + 1 < sizeof w->text; i++) {
        const gmud_listen_config *at = &l->at[i];
        int v6 = strchr(at->host, ':') != NULL;
        int k = snprintf(w->text + used, sizeof w->text - used, "%s%s%s%s%s:%u", i ? "," : "",
                         at->tls ? "tls:" : "", v6 ? "[" : "", at->host, v6 ? "]" : "",
                         (unsigned)at->port);
        used += k > 0 ? (size_t)k : 0;
    }
}

const opt_type t_listen = {.take = take_listen, .show = show_listen};

/* --metrics: [ADDR:]PORT, a prog_listen at off holding one address; a bare
 * port is on loopback (the counters are not for everyone). */
static int take_metrics(opt_take *t)
{
    prog_listen *l = field(t);
    l->n = 0;
    if (t->val[0] != '\0' && strspn(t->val, "0123456789") == strlen(t->val)) {
        unsigned long long p = 0;
        if (parse_ull(t->val, 0, 65535, &p) != 0)
            return refuse(t, "'%s' is not a port number (0..65535)", t->val);
        strcpy(l->host[0], "127.0.0.1");
        l->at[0].host = l->host[0];
        l->at[0].port = (uint16_t)p;
        l->n = 1;
        return 0;
    }
    if (strncmp(t->val, "tls:", 4) == 0 || strchr(t->val, ',') != NULL)
        return refuse(t, "takes one [ADDR:]PORT, without tls:");
    return take_one_listen(t, l, t->val, strlen(t->val));
}

static void show_metrics(opt_show *w)
{
    const prog_listen *l = default_field(w);
    if (l->n == 0)
        snprintf(w->text, sizeof w->text, "off");
    else
        show_listen(w);
}

const opt_type t_metrics = {.take = take_metrics, .show = show_metrics};

/* text or json, an int at off (1: json). */
static int take_log_format(opt_take *t)
{
    if (strcmp(t->val, "text") != 0 && strcmp(t->val, "json") != 0)
        return refuse(t, "is not a log format; use text or json");
    *(int *)field(t) = strcmp(t->val, "json") == 0;
    return 0;
}

static void show_log_format(opt_show *w)
{
    put(w, "%s", *(const int *)default_field(w) ? "json" : "text");
}

const opt_type t_log_format = {.take = take_log_format, .show = show_log_format};
