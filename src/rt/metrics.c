/* The metrics endpoint's runtime half (gmud/metrics.h): a TCP listener on
 * the server's loop, a bounded buffer per scrape, and one 100 ms timer
 * that both probes the loop's lag and ends scrapes past their deadline.
 * The parsing and the format are the core's (src/core/prom.c). */
#include "gmud/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "prom.h"

enum { TICK_MS = 100 };

typedef struct scrape {
    uv_tcp_t tcp;              /* tcp.data == this */
    uv_write_t wr;
    struct gmud_metrics *m;
    struct scrape *next;       /* m->scrapes */
    uint64_t deadline;         /* loop ms */
    size_t len;
    int answered, closing;
    byte_buf out;
    uint8_t in[HTTP_MAX_REQUEST];
} scrape;

struct gmud_metrics {
    uv_tcp_t listener;
    uv_timer_t tick;
    gmud_server *server;
    gmud_metrics_config cfg;
    scrape *scrapes;
    uint32_t active;
    uint32_t handles;          /* open, listener and timer included */
    int destroyed;
    uint16_t port;
    uint64_t last_tick_ns;
    double lag_s, lag_max_s;
    uint64_t scrapes_answered;
    byte_buf body;             /* reused: the exposition of one scrape */
};

void gmud_metrics_default_config(gmud_metrics_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->timeout_ms = GMUD_METRICS_TIMEOUT_DEFAULT;
    cfg->max_clients = GMUD_METRICS_MAX_CLIENTS_DEFAULT;
}

static void maybe_free(gmud_metrics *m)
{
    if (m->destroyed && m->handles == 0) {
        buf_free(&m->body);
        free(m);
    }
}

static void own_closed(uv_handle_t *h)
{
    gmud_metrics *m = h->data;
    m->handles--;
    maybe_free(m);
}

/* ---- One scrape ------------------------------------------------------------ */

static void scrape_closed(uv_handle_t *h)
{
    scrape *s = h->data;
    gmud_metrics *m = s->m;
    for (scrape **p = &m->scrapes; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    buf_free(&s->out);
    free(s);
    m->active--;
    m->handles--;
    maybe_free(m);
}

static void scrape_close(scrape *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->tcp, scrape_closed);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    scrape_close(req->data);
}

static void answer(scrape *s, int status, int head)
{
    gmud_metrics *m = s->m;
    s->answered = 1;
    uv_read_stop((uv_stream_t *)&s->tcp);
    int rc;
    if (status == 200) {
        gmud_stats st;
        gmud_server_stats(m->server, &st);
        m->scrapes_answered++;
        prom_gauges g = {gmud_server_connections(m->server), m->lag_s, m->lag_max_s,
                         m->scrapes_answered};
        m->lag_max_s = m->lag_s; /* the window starts again */
        m->body.len = 0;
        rc = prom_write(&m->body, &st, &g);
        if (rc == GMUD_OK && m->cfg.cluster != NULL) {
            gmud_cluster_stats cs;
            gmud_cluster_stats_get(m->cfg.cluster, &cs);
            rc = prom_write_cluster(&m->body, &cs);
        }
        if (rc == GMUD_OK)
            rc = http_response(&s->out, 200, "text/plain; version=0.0.4; charset=utf-8",
                               m->body.data, m->body.len, head);
    } else {
        static const char msg[] = "gmud serves only GET /metrics here\n";
        rc = http_response(&s->out, status, "text/plain; charset=utf-8", msg, sizeof msg - 1,
                           head);
    }
    if (rc != GMUD_OK) {
        scrape_close(s);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)s->out.data, (unsigned)s->out.len);
    s->wr.data = s;
    if (uv_write(&s->wr, (uv_stream_t *)&s->tcp, &b, 1, on_written) != 0)
        scrape_close(s);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    scrape *s = h->data;
    *b = uv_buf_init((char *)s->in + s->len, (unsigned)(sizeof s->in - s->len));
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    scrape *s = stream->data;
    if (s->answered || s->closing)
        return;
    if (n < 0) {
        scrape_close(s);
        return;
    }
    s->len += (size_t)n;
    int head = 0;
    int status = http_request_parse(s->in, s->len, &head);
    if (status != 0)
        answer(s, status, head);
}

static void on_connection(uv_stream_t *server, int status)
{
    gmud_metrics *m = server->data;
    if (status < 0 || m->destroyed)
        return;
    scrape *s = calloc(1, sizeof *s);
    if (s == NULL)
        return;
    s->m = m;
    uv_tcp_init(server->loop, &s->tcp);
    s->tcp.data = s;
    s->next = m->scrapes;
    m->scrapes = s;
    m->active++;
    m->handles++;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0 || m->active > m->cfg.max_clients) {
        scrape_close(s); /* over the bound: closed at once, nothing read */
        return;
    }
    s->deadline = uv_now(server->loop) + m->cfg.timeout_ms;
    if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) != 0)
        scrape_close(s);
}

/* ---- The tick: the loop's lag, and the deadlines ------------------------------ */

static void on_tick(uv_timer_t *t)
{
    gmud_metrics *m = t->data;
    uint64_t now_ns = uv_hrtime();
    double late = ((double)(now_ns - m->last_tick_ns) - TICK_MS * 1e6) / 1e9;
    m->last_tick_ns = now_ns;
    m->lag_s = late > 0 ? late : 0;
    if (m->lag_s > m->lag_max_s)
        m->lag_max_s = m->lag_s;
    uint64_t now = uv_now(t->loop);
    for (scrape *s = m->scrapes; s != NULL; s = s->next)
        if (!s->closing && now >= s->deadline)
            scrape_close(s); /* slow: read or written too slowly */
}

/* ---- Create and destroy --------------------------------------------------------- */

static int bind_addr(const gmud_metrics_config *cfg, struct sockaddr_storage *ss, gmud_error *err)
{
    memset(ss, 0, sizeof *ss);
    const char *host = cfg->host != NULL ? cfg->host : "127.0.0.1";
    if (uv_ip4_addr(host, cfg->port, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(host, cfg->port, (struct sockaddr_in6 *)ss) == 0)
        return GMUD_OK;
    return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                          "metrics: '%s' is not an IPv4 or IPv6 address", host);
}

gmud_metrics *gmud_metrics_create(uv_loop_t *loop, gmud_server *server,
                                  const gmud_metrics_config *cfg, gmud_error *err)
{
    struct sockaddr_storage ss;
    if (cfg->timeout_ms == 0 || cfg->max_clients == 0) {
        gmud_error_set(err, GMUD_ERR_INVALID, 0, "metrics: timeout_ms and max_clients must be > 0");
        return NULL;
    }
    if (bind_addr(cfg, &ss, err) != GMUD_OK)
        return NULL;
    gmud_metrics *m = calloc(1, sizeof *m);
    if (m == NULL) {
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "metrics: out of memory");
        return NULL;
    }
    m->server = server;
    m->cfg = *cfg;
    m->cfg.host = NULL; /* the caller's: not kept */
    uv_tcp_init(loop, &m->listener);
    m->listener.data = m;
    uv_timer_init(loop, &m->tick);
    m->tick.data = m;
    m->handles = 2;
    int rc = uv_tcp_bind(&m->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->listener, 64, on_connection);
    if (rc != 0) {
        gmud_error_set(err, GMUD_ERR_IO, 0, "metrics: cannot listen on %s port %u: %s",
                       cfg->host != NULL ? cfg->host : "127.0.0.1", (unsigned)cfg->port,
                       uv_strerror(rc));
        gmud_metrics_destroy(m);
        return NULL;
    }
    struct sockaddr_storage got;
    int len = (int)sizeof got;
    uv_tcp_getsockname(&m->listener, (struct sockaddr *)&got, &len);
    m->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                              : ((struct sockaddr_in *)&got)->sin_port);
    m->last_tick_ns = uv_hrtime();
    uv_timer_start(&m->tick, on_tick, TICK_MS, TICK_MS);
    return m;
}

uint16_t gmud_metrics_port(const gmud_metrics *m)
{
    return m->port;
}

void gmud_metrics_destroy(gmud_metrics *m)
{
    if (m == NULL || m->destroyed)
        return;
    m->destroyed = 1;
    for (scrape *s = m->scrapes; s != NULL; s = s->next)
        scrape_close(s);
    uv_close((uv_handle_t *)&m->listener, own_closed);
    uv_close((uv_handle_t *)&m->tick, own_closed);
}
