/* The Prometheus text format and a bounded HTTP request parser: prom.h. */
#include "prom.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- Exposition ---------------------------------------------------------- */

static int put(byte_buf *out, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int put(byte_buf *out, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return GMUD_ERR_INVALID; /* every line here is short: a bug */
    return buf_append(out, line, (size_t)n) == 0 ? GMUD_OK : GMUD_ERR_NOMEM;
}

static int head(byte_buf *out, const char *name, const char *type, const char *help)
{
    return put(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int one(byte_buf *out, const char *name, const char *type, const char *help,
               unsigned long long v)
{
    int rc = head(out, name, type, help);
    return rc != GMUD_OK ? rc : put(out, "%s %llu\n", name, v);
}

/* A close reason as a label value: "slow consumer" -> "slow_consumer". */
static void snake(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < cap; i++)
        out[i] = in[i] == ' ' ? '_' : in[i];
    out[i] = '\0';
}

static int closes(byte_buf *out, const gmud_stats *st)
{
    int rc = head(out, "gmud_connections_closed_total", "counter",
                  "Connections closed, by reason (gmud_close_reason_name, spaces as _).");
    for (int r = 0; rc == GMUD_OK && r < GMUD_CLOSE_REASON_COUNT_; r++) {
        char label[48];
        snake(gmud_close_reason_name((gmud_close_reason)r), label, sizeof label);
        rc = put(out, "gmud_connections_closed_total{reason=\"%s\"} %llu\n", label,
                 (unsigned long long)st->closes[r]);
    }
    return rc;
}

/* Every error code a peer's input can be refused with (rejects[]), zeros
 * included, so that a series exists before its first refusal. */
static int rejects(byte_buf *out, const gmud_stats *st)
{
    int rc = head(out, "gmud_rejected_total", "counter",
                  "Inputs refused, by error code (docs/PROTOCOL.md section 5): framing, "
                  "oversize, bad JSON, each session violation, rate limits.");
    for (int code = 1; rc == GMUD_OK && code < -GMUD_ERR_LAST_ && code < GMUD_STATS_CODES; code++)
        rc = put(out, "gmud_rejected_total{code=\"%s\"} %llu\n", gmud_err_name(-code),
                 (unsigned long long)st->rejects[code]);
    return rc;
}

static int refused(byte_buf *out, const gmud_stats *st)
{
    int rc = head(out, "gmud_connections_refused_total", "counter",
                  "Connections refused before the application saw them, by reason.");
    const struct {
        const char *reason;
        uint64_t v;
    } r[] = {
        {"server_full", st->rejected_full}, {"addr_limited", st->rejected_addr},
        {"tls_failed", st->tls_failed},     {"tls_busy", st->tls_busy},
        {"proxy", st->proxy_refused},
    };
    for (size_t i = 0; rc == GMUD_OK && i < sizeof r / sizeof r[0]; i++)
        rc = put(out, "gmud_connections_refused_total{reason=\"%s\"} %llu\n", r[i].reason,
                 (unsigned long long)r[i].v);
    return rc;
}

static int lag(byte_buf *out, const prom_gauges *g)
{
    int rc = head(out, "gmud_loop_lag_seconds", "gauge",
                  "How late the event loop ran a 100 ms timer, at the last probe.");
    if (rc == GMUD_OK)
        rc = put(out, "gmud_loop_lag_seconds %.6f\n", g->loop_lag_s);
    if (rc == GMUD_OK)
        rc = head(out, "gmud_loop_lag_max_seconds", "gauge",
                  "The most the loop's timer was late since the previous scrape.");
    if (rc == GMUD_OK)
        rc = put(out, "gmud_loop_lag_max_seconds %.6f\n", g->loop_lag_max_s);
    return rc;
}

int prom_write(byte_buf *out, const gmud_stats *st, const prom_gauges *g)
{
    typedef unsigned long long ull;
    const struct {
        const char *name, *type, *help;
        ull v;
    } s[] = {
        {"gmud_connections", "gauge", "Connections open now.", (ull)g->connections},
        {"gmud_connections_accepted_total", "counter",
         "Connections handed to the application.", (ull)st->accepted},
        {"gmud_messages_received_total", "counter", "Messages delivered to the application.",
         (ull)st->messages_in},
        {"gmud_messages_sent_total", "counter", "Frames queued to peers (each copy).",
         (ull)st->messages_out},
        {"gmud_bytes_received_total", "counter", "Bytes read from sockets.", (ull)st->bytes_in},
        {"gmud_bytes_sent_total", "counter", "Bytes written to sockets.", (ull)st->bytes_out},
        {"gmud_security_refused_total", "counter",
         "Packets refused by a session check (replay, injection, reordering).",
         (ull)st->security},
        {"gmud_rate_held_total", "counter",
         "Times a connection's input was held for its rate limits (shaping).",
         (ull)st->rate_held},
        {"gmud_rate_dropped_total", "counter", "Packets dropped over a rate limit (drop policy).",
         (ull)st->rate_dropped},
        {"gmud_queued_bytes", "gauge",
         "Bytes held by all connections now: queued output and partial input.",
         (ull)st->buffered_total},
        {"gmud_queued_peak_bytes", "gauge", "The most bytes held at once since the start.",
         (ull)st->buffered_peak},
        {"gmud_budget_closes_total", "counter",
         "Connections closed to get back under the buffer budget.", (ull)st->budget_closes},
        {"gmud_read_pauses_total", "counter", "Times reading stopped for backpressure.",
         (ull)st->read_pauses},
        {"gmud_tls_handshakes_total", "counter", "TLS handshakes completed.",
         (ull)st->tls_handshakes},
        {"gmud_tls_handshakes_failed_total", "counter",
         "TLS handshakes failed: version, certificate, garbage, plaintext, timeout.",
         (ull)st->tls_failed},
        {"gmud_tls_unclean_ends_total", "counter", "TLS streams ended without close_notify.",
         (ull)st->tls_unclean},
        {"gmud_proxy_headers_total", "counter", "PROXY protocol headers accepted.",
         (ull)st->proxy_accepted},
        {"gmud_metrics_scrapes_total", "counter", "Requests for /metrics answered.",
         (ull)g->scrapes},
    };
    int rc = GMUD_OK;
    for (size_t i = 0; rc == GMUD_OK && i < sizeof s / sizeof s[0]; i++)
        rc = one(out, s[i].name, s[i].type, s[i].help, s[i].v);
    if (rc == GMUD_OK)
        rc = closes(out, st);
    if (rc == GMUD_OK)
        rc = rejects(out, st);
    if (rc == GMUD_OK)
        rc = refused(out, st);
    if (rc == GMUD_OK)
        rc = lag(out, g);
    return rc;
}

/* ---- The request ---------------------------------------------------------- */

/* The end of the headers (the offset past CRLF CRLF, or LF LF), or 0. */
static size_t headers_end(const uint8_t *in, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (in[i] == '\n' && in[i + 1] == '\n')
            return i + 2;
        if (i + 3 < n && memcmp(in + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    }
    return 0;
}

/* 1 if a header line announces a body (Content-Length other than 0, or
 * Transfer-Encoding): a GET has none, and gmud will not read one. */
static int has_body(const char *line, size_t len)
{
    static const char cl[] = "content-length:", te[] = "transfer-encoding:";
    char low[32];
    size_t k = len < sizeof low ? len : sizeof low;
    for (size_t i = 0; i < k; i++)
        low[i] = (char)(line[i] >= 'A' && line[i] <= 'Z' ? line[i] + 32 : line[i]);
    if (k >= sizeof te - 1 && memcmp(low, te, sizeof te - 1) == 0)
        return 1;
    if (k < sizeof cl - 1 || memcmp(low, cl, sizeof cl - 1) != 0)
        return 0;
    for (size_t i = sizeof cl - 1; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '0' && line[i] != '\r')
            return 1;
    return 0;
}

int http_request_parse(const uint8_t *in, size_t n, int *head)
{
    *head = 0;
    size_t end = headers_end(in, n < HTTP_MAX_REQUEST ? n : HTTP_MAX_REQUEST);
    if (end == 0)
        return n < HTTP_MAX_REQUEST ? 0 : 431;
    for (size_t i = 0; i < end; i++)
        if ((in[i] < 0x20 && in[i] != '\r' && in[i] != '\n' && in[i] != '\t') || in[i] == 0x7f)
            return 400;
    const char *p = (const char *)in;
    size_t line = 0;
    while (line < end && p[line] != '\n')
        line++;
    size_t ll = line > 0 && p[line - 1] == '\r' ? line - 1 : line;
    /* METHOD SP TARGET SP HTTP/1.x */
    const char *sp1 = memchr(p, ' ', ll);
    const char *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - p)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1 ||
        memchr(sp2 + 1, ' ', ll - (size_t)(sp2 + 1 - p)) != NULL)
        return 400;
    size_t vl = ll - (size_t)(sp2 + 1 - p);
    if (vl != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return vl >= 5 && memcmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400;
    if (sp2[8] != '0' && sp2[8] != '1')
        return 505;
    for (size_t at = line + 1; at < end;) {
        size_t e = at;
        while (e < end && p[e] != '\n')
            e++;
        if (has_body(p + at, e - at))
            return 400;
        at = e + 1;
    }
    size_t ml = (size_t)(sp1 - p), tl = (size_t)(sp2 - sp1 - 1);
    const char *target = sp1 + 1;
    int get = ml == 3 && memcmp(p, "GET", 3) == 0;
    *head = ml == 4 && memcmp(p, "HEAD", 4) == 0;
    if (!get && !*head)
        return 405;
    static const char path[] = "/metrics";
    if (tl >= sizeof path - 1 && memcmp(target, path, sizeof path - 1) == 0 &&
        (tl == sizeof path - 1 || target[sizeof path - 1] == '?'))
        return 200;
    return 404;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

int http_response(byte_buf *out, int status, const char *type, const void *body, size_t len,
                  int head)
{
    char h[256];
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, reason_of(status), type, len,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof h)
        return GMUD_ERR_INVALID;
    if (buf_append(out, h, (size_t)n) != 0 || (!head && len > 0 && buf_append(out, body, len) != 0))
        return GMUD_ERR_NOMEM;
    return GMUD_OK;
}

int prom_write_cluster(byte_buf *out, const gmud_cluster_stats *cs)
{
    typedef unsigned long long ull;
    const struct {
        const char *name, *type, *help;
        ull v;
    } s[] = {
        {"gmud_cluster_up", "gauge", "1 while subscribed and registered in Redis.", (ull)cs->up},
        {"gmud_cluster_messages_sent_total", "counter",
         "Envelopes published to the other nodes and acknowledged by Redis.",
         (ull)cs->published},
        {"gmud_cluster_messages_received_total", "counter",
         "Messages from other nodes delivered to this node's players.", (ull)cs->received},
        {"gmud_cluster_publish_dropped_total", "counter",
         "Messages not published: the link was down or over its pending bound.",
         (ull)cs->publish_dropped},
        {"gmud_cluster_lost_total", "counter",
         "Envelopes from other nodes missed: gaps in their sequence numbers.", (ull)cs->lost},
        {"gmud_cluster_presence_dropped_total", "counter",
         "Players not mirrored: over the presence table's bound.", (ull)cs->presence_dropped},
        {"gmud_cluster_reconnects_total", "counter", "Redis links made again after a failure.",
         (ull)cs->reconnects},
        {"gmud_cluster_timeouts_total", "counter", "Redis requests that timed out.",
         (ull)cs->timeouts},
        {"gmud_cluster_remote_players", "gauge", "Other nodes' players in the mirror now.",
         (ull)cs->remote_players},
    };
    int rc = GMUD_OK;
    for (size_t i = 0; rc == GMUD_OK && i < sizeof s / sizeof s[0]; i++)
        rc = one(out, s[i].name, s[i].type, s[i].help, s[i].v);
    const struct {
        const char *reason;
        uint64_t v;
    } r[] = {{"malformed", cs->refused_malformed}, {"oversize", cs->refused_oversize},
             {"unknown_node", cs->refused_unknown}, {"bad_mac", cs->refused_mac},
             {"replay", cs->refused_replay}};
    if (rc == GMUD_OK)
        rc = head(out, "gmud_cluster_refused_total", "counter",
                  "Envelopes from the bus refused, by reason.");
    for (size_t i = 0; rc == GMUD_OK && i < sizeof r / sizeof r[0]; i++)
        rc = put(out, "gmud_cluster_refused_total{reason=\"%s\"} %llu\n", r[i].reason,
                 (ull)r[i].v);
    if (rc == GMUD_OK)
        rc = head(out, "gmud_cluster_redis_rtt_seconds", "summary",
                  "Round trips through Redis: this node's heartbeat, published and heard back.");
    if (rc == GMUD_OK)
        rc = put(out, "gmud_cluster_redis_rtt_seconds_sum %.6f\ngmud_cluster_redis_rtt_seconds_count %llu\n",
                 (double)cs->rtt_us_sum / 1e6, (ull)cs->rtt_count);
    if (rc == GMUD_OK)
        rc = head(out, "gmud_cluster_redis_rtt_last_seconds", "gauge",
                  "The last round trip through Redis.");
    if (rc == GMUD_OK)
        rc = put(out, "gmud_cluster_redis_rtt_last_seconds %.6f\n", (double)cs->rtt_us_last / 1e6);
    return rc;
}
