/* The event-driven server: listen, accept, broadcast, shut down; and the
 * application timers. Connections themselves live in conn.c,
 * read.c and write.c. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cidr.h"
#include "conn.h"
#include "seamed.h"
#include "resolve.h"
#include "tls_ctx.h"

/* Linux's (since 3.9); not in POSIX, so not declared under _POSIX_C_SOURCE. */
#ifndef SO_REUSEPORT
#define SO_REUSEPORT 15
#endif

/* One address the server listens on; its connections go through seams
 * (TLS, or a test's seam) or none. */
typedef struct listener {
    uv_tcp_t tcp;              /* tcp.data == this */
    gmud_server *server;
    const seam_factory *seams; /* &server->rt.seams, or NULL: plain TCP */
    char *host;
    uint16_t port;
    uint8_t proxy;             /* a PROXY protocol header comes first */
} listener;

struct gmud_server {
    rt_ctx rt; /* first: the rt's handles point here */
    listener lis[GMUD_MAX_LISTENERS];
    size_t nlis;               /* listeners made */
    size_t lis_open;           /* their handles not yet closed */
    uint8_t shutting;
    uint8_t done_called;
    uint8_t destroyed;
    uint32_t flush_ms;
    uint32_t proxy_timeout_ms;
    cidr_list proxy_from;      /* who may send a PROXY header */
    void (*done)(gmud_server *server, void *user);
    void *done_user;
};

void gmud_server_default_config(gmud_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = GMUD_HOST_DEFAULT;
    cfg->port = GMUD_PORT_DEFAULT;
    cfg->backlog = GMUD_BACKLOG_DEFAULT;
    cfg->proxy_timeout_ms = GMUD_PROXY_TIMEOUT_DEFAULT;
    gmud_frame_default_config(&cfg->conn.frame, GMUD_FRAMING_GMUD);
    cfg->conn.payload = GMUD_PAYLOAD_JSON;
    gmud_json_default_config(&cfg->conn.json);
    gmud_limits_default_config(&cfg->conn.limits);
    gmud_iplimit_default_config(&cfg->addr);
    gmud_session_default_config(&cfg->conn.session);
    gmud_tls_default_config(&cfg->conn.tls);
    cfg->conn.log_level = GMUD_LOG_INFO;
}

static void maybe_done(gmud_server *server)
{
    if (!server->shutting || server->lis_open > 0 || server->rt.conns != NULL ||
        server->done_called)
        return;
    server->done_called = 1;
    rt_logf(&server->rt, GMUD_LOG_INFO, NULL, "shutdown", "all connections closed");
    if (server->done != NULL)
        server->done(server, server->done_user);
}

static void server_conn_gone(rt_ctx *rt)
{
    maybe_done((gmud_server *)rt->owner);
}

static void server_free(rt_ctx *rt)
{
    gmud_server *server = rt->owner;
    gmud_iplimit_destroy(rt->addr_limit);
    for (size_t i = 0; i < server->nlis; i++)
        free(server->lis[i].host);
    free(server);
}

/* Resolves host:port and binds a listening-ready socket; the fd or -1. A
 * plain socket keeps every failure here synchronous and leak-free. */
static int bind_socket(const char *host, uint16_t port, int reuseport, gmud_error *err)
{
    net_addrs addrs;
    if (net_resolve(host, port, 1, &addrs, err) != GMUD_OK)
        return -1;
    int fd = -1, last = 0;
    for (int i = 0; i < addrs.n && fd < 0; i++) {
        const struct sockaddr *sa = net_addr(&addrs, i);
        fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
            last = errno;
            close(fd);
            fd = -1;
            continue;
        }
        if (bind(fd, sa, addrs.len[i]) != 0) {
            last = errno;
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0)
        gmud_error_set(err, GMUD_ERR_IO, 0, "cannot bind %s:%u: %s", host, (unsigned)port,
                       strerror(last));
    return fd;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A connection refused at accept: an error packet if few others are being
 * refused at once (else a plain close, so a flood costs bounded memory),
 * then the close. It never reaches the application. */
static void refuse(const listener *l, gmud_conn *conn, int code, gmud_close_reason reason,
                   const char *msg)
{
    rt_ctx *rt = &l->server->rt;
    conn->flags |= CONN_REJECTED;
    rt->refusing++;
    rt_logf(rt, GMUD_LOG_WARN, conn->peer, "reject", "%s", msg);
    if (rt->refusing > GMUD_MAX_REFUSING) {
        conn_close_now(conn, reason, NULL);
        return;
    }
    /* Over TLS the refusal travels once the handshake is done (within the
     * linger); a flood of refusals gets no TLS state, as above. */
    if (!conn_attach_seam(conn, l->seams))
        return;
    conn_start(conn, 0);
    conn_send_error(conn, gmud_err_name(code), msg);
    conn_close_soft(conn, reason, NULL, rt->limits.linger_ms);
}

static void reject_full(const listener *l, gmud_conn *conn)
{
    gmud_server *server = l->server;
    char msg[96];
    snprintf(msg, sizeof msg, "server full: %zu connections open, the maximum",
             server->rt.open);
    server->rt.stats.rejected_full++;
    refuse(l, conn, GMUD_ERR_SERVER_FULL, GMUD_CLOSE_SERVER_FULL, msg);
}

/* Per-address limits on conn->addr (the peer's, or the one its PROXY
 * header carried); 1 if conn may go on (it is then counted). */
static int admit_addr(const listener *l, gmud_conn *conn)
{
    rt_ctx *rt = &l->server->rt;
    const struct sockaddr *sa = (const struct sockaddr *)&conn->addr;
    if (rt->addr_limit == NULL || sa->sa_family == AF_UNSPEC)
        return 1; /* no limits, or no address to count (the peer is gone already) */
    gmud_error e;
    if (gmud_iplimit_admit(rt->addr_limit, sa, uv_now(rt->loop), &e) == GMUD_OK) {
        conn->flags |= CONN_ADDR_COUNTED;
        return 1;
    }
    rt->stats.rejected_addr++;
    refuse(l, conn, GMUD_ERR_ADDR_LIMITED, GMUD_CLOSE_ADDR_LIMITED, e.message);
    return 0;
}

void server_admit(gmud_conn *conn, const listener *l)
{
    rt_ctx *rt = &l->server->rt;
    gmud_error e;
    if (!admit_addr(l, conn))
        return;
    if (rt->open >= rt->limits.max_connections) {
        reject_full(l, conn);
        return;
    }
    if (!conn_attach_seam(conn, l->seams))
        return;
    /* Over TLS the welcome waits for the handshake (handshake.c). */
    if (rt->session.mode != GMUD_SESSION_OFF && seam_ready(conn->seam) &&
        conn_welcome(conn, &e) != GMUD_OK) {
        rt_logf(rt, GMUD_LOG_ERROR, conn->peer, "accept", "no session: %s", e.message);
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return;
    }
    rt_logf(rt, GMUD_LOG_INFO, conn->peer, "accept", "connection %llu accepted (%zu open)",
            (unsigned long long)conn->id, rt->open + 1);
    conn_start(conn, 1);
}

/* A PROXY listener's connection: only from a trusted sender, and then read
 * for its header before anything else (proxy.c), in plaintext. */
static void proxy_accept(const listener *l, gmud_conn *conn)
{
    gmud_server *server = l->server;
    rt_ctx *rt = &server->rt;
    if (!cidr_list_match(&server->proxy_from, (const struct sockaddr *)&conn->addr)) {
        char msg[128];
        snprintf(msg, sizeof msg, "PROXY protocol: %s is not a trusted sender (proxy_from)",
                 conn->peer);
        rt->stats.proxy_refused++;
        refuse(l, conn, GMUD_ERR_PROXY, GMUD_CLOSE_PROXY, msg);
        return;
    }
    if (conn_proxy_begin(conn, l, server->proxy_timeout_ms) != GMUD_OK) {
        gmud_error e;
        gmud_error_set(&e, GMUD_ERR_NOMEM, 0, "out of memory for a PROXY header");
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return;
    }
    conn_start(conn, 0);
}

static void on_connection(uv_stream_t *stream, int status)
{
    const listener *l = stream->data;
    rt_ctx *rt = &l->server->rt;
    if (status < 0) {
        rt_logf(rt, GMUD_LOG_WARN, NULL, "accept", "accept failed: %s", uv_strerror(status));
        return;
    }
    gmud_error e;
    gmud_conn *conn = conn_new(rt, &e);
    if (conn == NULL) {
        rt_logf(rt, GMUD_LOG_ERROR, NULL, "accept", "%s", e.message);
        return;
    }
    int rc = uv_accept(stream, (uv_stream_t *)&conn->tcp);
    if (rc != 0) {
        gmud_error_set(&e, GMUD_ERR_IO, 0, "accept failed: %s", uv_strerror(rc));
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return;
    }
    int len = (int)sizeof conn->addr;
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&conn->addr, &len) != 0)
        memset(&conn->addr, 0, sizeof conn->addr); /* gone already: AF_UNSPEC */
    conn_set_peer(conn, NULL);
    if (l->proxy)
        proxy_accept(l, conn);
    else
        server_admit(conn, l);
}

gmud_server *gmud_server_create(uv_loop_t *loop, const gmud_server_config *cfg, gmud_error *err)
{
    return server_create_seamed(loop, cfg, NULL, err);
}

/* Listener i's address and whether it is TLS, from the config. */
static const char *lis_host(const gmud_server_config *cfg, size_t i)
{
    const char *host = i == 0 ? cfg->host : cfg->listen[i - 1].host;
    if (host == NULL)
        host = cfg->host != NULL ? cfg->host : GMUD_HOST_DEFAULT;
    return host;
}

static int lis_tls(const gmud_server_config *cfg, size_t i)
{
    return i == 0 ? cfg->conn.tls.enabled : cfg->listen[i - 1].tls != 0;
}

static void on_listener_closed(uv_handle_t *handle)
{
    gmud_server *server = ((listener *)handle->data)->server;
    rt_ctx *rt = &server->rt;
    server->lis_open--;
    rt->handles_open--;
    if (rt->closing)
        rt_maybe_free(rt); /* may free the server */
    else
        maybe_done(server);
}

static int lis_proxy(const gmud_server_config *cfg, size_t i)
{
    return i == 0 ? cfg->proxy_protocol != 0 : cfg->listen[i - 1].proxy != 0;
}

/* The trusted senders, required as soon as one listener expects a header. */
static int proxy_setup(gmud_server *server, const gmud_server_config *cfg, gmud_error *err)
{
    int any = 0;
    for (size_t i = 0; i <= cfg->listen_count; i++)
        any |= lis_proxy(cfg, i);
    gmud_error why;
    if (cidr_list_parse(&server->proxy_from, cfg->proxy_from, &why) != GMUD_OK)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "proxy_from: %s", why.message);
    if (any && server->proxy_from.n == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "a PROXY protocol listener needs proxy_from: the addresses of "
                              "the load balancers that send the header");
    if (any && cfg->proxy_timeout_ms == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "proxy_timeout_ms must be > 0");
    server->proxy_timeout_ms = cfg->proxy_timeout_ms;
    return GMUD_OK;
}

/* The config's own checks, and TLS made once for every TLS listener. */
static int server_setup(gmud_server *server, const gmud_server_config *cfg, gmud_error *err)
{
    rt_ctx *rt = &server->rt;
    if (cfg->listen_count > GMUD_MAX_LISTENERS - 1 || (cfg->listen_count > 0 && cfg->listen == NULL))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "listen: %zu further listeners given, "
                              "at most %d", cfg->listen_count, GMUD_MAX_LISTENERS - 1);
    gmud_tls_config tls = cfg->conn.tls;
    for (size_t i = 0; i <= cfg->listen_count; i++)
        tls.enabled |= lis_tls(cfg, i);
    if (gmud_frame_config_check(&rt->frame, err) != GMUD_OK ||
        gmud_limits_check(&rt->limits, err) != GMUD_OK ||
        rt_tls_setup(rt, &tls, NULL, err) != GMUD_OK)
        return err->code;
    if ((cfg->addr.max_per_addr != 0 || cfg->addr.new_per_sec != 0) &&
        (rt->addr_limit = gmud_iplimit_create(&cfg->addr, err)) == NULL)
        return err->code;
    return proxy_setup(server, cfg, err);
}

/* Binds every listener's socket (fds[i]); on failure closes those bound. */
static int bind_all(gmud_server *server, const gmud_server_config *cfg, int *fds, gmud_error *err)
{
    server->nlis = 1 + cfg->listen_count;
    for (size_t i = 0; i < server->nlis; i++) {
        listener *l = &server->lis[i];
        l->server = server;
        /* TLS where asked for; a test's own seam on every listener. */
        int seamed = server->rt.tls != NULL ? lis_tls(cfg, i) : 1;
        l->seams = seamed && server->rt.seams.create != NULL ? &server->rt.seams : NULL;
        l->proxy = (uint8_t)lis_proxy(cfg, i);
        fds[i] = -1;
        if ((l->host = strdup(lis_host(cfg, i))) == NULL)
            gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory creating a server");
        else
            fds[i] = bind_socket(l->host, i == 0 ? cfg->port : cfg->listen[i - 1].port,
                                 cfg->reuseport, err);
        if (fds[i] < 0) {
            while (i-- > 0)
                close(fds[i]);
            return err->code;
        }
        l->port = bound_port(fds[i]);
    }
    return GMUD_OK;
}

/* Hands each bound socket to libuv and listens; 0 or a libuv error, after
 * which the listeners made are closed with the rt. */
static int listen_all(gmud_server *server, const gmud_server_config *cfg, int *fds,
                      gmud_error *err)
{
    rt_ctx *rt = &server->rt;
    int backlog = cfg->backlog > 0 ? cfg->backlog : GMUD_BACKLOG_DEFAULT;
    int rc = 0;
    for (size_t i = 0; i < server->nlis; i++) {
        listener *l = &server->lis[i];
        if (rc != 0) {
            close(fds[i]);
            continue;
        }
        uv_tcp_init(rt->loop, &l->tcp);
        l->tcp.data = l;
        rt->handles_open++;
        server->lis_open++;
        rc = uv_tcp_open(&l->tcp, fds[i]);
        if (rc != 0)
            close(fds[i]);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&l->tcp, backlog, on_connection);
        if (rc != 0)
            gmud_error_set(err, GMUD_ERR_IO, 0, "cannot listen on %s:%u: %s", l->host,
                           (unsigned)l->port, uv_strerror(rc));
    }
    return rc;
}

static void close_listeners(gmud_server *server)
{
    for (size_t i = 0; i < server->nlis; i++) {
        uv_handle_t *h = (uv_handle_t *)&server->lis[i].tcp;
        if (h->data != NULL && !uv_is_closing(h))
            uv_close(h, on_listener_closed);
    }
}

gmud_server *server_create_seamed(uv_loop_t *loop, const gmud_server_config *cfg,
                                  const seam_factory *seams, gmud_error *err)
{
    gmud_server *server = calloc(1, sizeof *server);
    if (server == NULL) {
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory creating a server");
        return NULL;
    }
    rt_ctx *rt = &server->rt;
    rt_take_config(rt, &cfg->conn);
    if (seams != NULL)
        rt->seams = *seams;
    rt->server = server;
    rt->owner = server;
    rt->conn_gone = server_conn_gone;
    rt->free_owner = server_free;
    int fds[GMUD_MAX_LISTENERS];
    if (server_setup(server, cfg, err) != GMUD_OK || bind_all(server, cfg, fds, err) != GMUD_OK)
        goto fail;
    if (rt_init(rt, loop, err) != GMUD_OK) {
        for (size_t i = 0; i < server->nlis; i++)
            close(fds[i]);
        goto fail;
    }
    /* From here on cleanup is asynchronous: handles exist. */
    if (listen_all(server, cfg, fds, err) != 0) {
        server->shutting = 1;
        close_listeners(server);
        rt_close(rt);
        return NULL;
    }
    for (size_t i = 0; i < server->nlis; i++)
        rt_logf(rt, GMUD_LOG_INFO, NULL, "listen", "listening on %s port %u (%s framing, %s%s%s)",
                server->lis[i].host, (unsigned)server->lis[i].port,
                gmud_framing_name(rt->frame.framing),
                rt->payload == GMUD_PAYLOAD_JSON ? "json" : "text",
                server->lis[i].seams != NULL && rt->tls != NULL ? ", TLS" : "",
                server->lis[i].proxy ? ", PROXY protocol" : "");
    return server;

fail:
    rt_tls_free(rt);
    gmud_iplimit_destroy(rt->addr_limit);
    for (size_t i = 0; i < server->nlis; i++)
        free(server->lis[i].host);
    free(server);
    return NULL;
}

uint16_t gmud_server_port(const gmud_server *server)
{
    return server->lis[0].port;
}

uint16_t gmud_server_listen_port(const gmud_server *server, size_t i)
{
    return i < server->nlis ? server->lis[i].port : 0;
}

size_t gmud_server_connections(const gmud_server *server)
{
    return server->rt.open;
}

void gmud_server_stats(const gmud_server *server, gmud_stats *out)
{
    *out = server->rt.stats;
}

int gmud_server_reload_tls(gmud_server *server, gmud_error *err)
{
    rt_ctx *rt = &server->rt;
    if (rt->tls == NULL)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "the server has no TLS listener");
    int rc = tls_ctx_reload(rt->tls, err);
    if (rc == GMUD_OK)
        rt_logf(rt, GMUD_LOG_INFO, NULL, "tls", "certificate and key reloaded from %s and %s",
                rt->tls->cert_file, rt->tls->key_file);
    else
        rt_logf(rt, GMUD_LOG_WARN, NULL, "tls", "reload failed, the old certificate stays: %s",
                err->message);
    return rc;
}

static int can_receive(const gmud_conn *c, const gmud_conn *except)
{
    return c != except && c->state == CONN_OPEN && !(c->flags & CONN_REJECTED);
}

/* With sessions each connection's copy carries its own header or count:
 * encoded once per connection. */
static int broadcast_each(gmud_server *server, const void *data, size_t len,
                          const gmud_conn *except, gmud_error *err)
{
    int count = 0;
    gmud_error e;
    for (gmud_conn *c = server->rt.conns; c != NULL; c = c->next) {
        if (!can_receive(c, except))
            continue;
        int rc = gmud_conn_send(c, data, len, &e);
        if (rc == GMUD_OK)
            count++;
        else if (rc == GMUD_ERR_UNENCODABLE || rc == GMUD_ERR_NOMEM) {
            if (err != NULL)
                *err = e;
            return rc;
        }
    }
    return count;
}

int gmud_server_broadcast(gmud_server *server, const void *data, size_t len,
                          const gmud_conn *except, gmud_error *err)
{
    rt_ctx *rt = &server->rt;
    if (rt->session.mode != GMUD_SESSION_OFF)
        return broadcast_each(server, data, len, except, err);
    if (len > rt->frame.max_message)
        return (int)gmud_frame_encode(&rt->frame, data, len, NULL, 0, err);
    size_t size = gmud_frame_encoded_size(&rt->frame, len);
    rt->frames.len = 0;
    if (buf_reserve(&rt->frames, size) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory encoding a broadcast");
    ptrdiff_t n = gmud_frame_encode(&rt->frame, data, len, rt->frames.data, rt->frames.cap, err);
    if (n < 0)
        return (int)n;
    int count = 0;
    for (gmud_conn *c = rt->conns; c != NULL; c = c->next) {
        if (!can_receive(c, except))
            continue;
        if (conn_append(c, rt->frames.data, (size_t)n, NULL) == GMUD_OK)
            count++;
    }
    return count;
}

int gmud_server_broadcast_json(gmud_server *server, const json_t *v, const gmud_conn *except,
                               gmud_error *err)
{
    ptrdiff_t n = rt_dump_json(&server->rt, v, err);
    if (n < 0)
        return (int)n;
    return gmud_server_broadcast(server, server->rt.scratch.data, (size_t)n, except, err);
}

void gmud_server_foreach(gmud_server *server, void (*fn)(gmud_conn *conn, void *user),
                         void *user)
{
    for (gmud_conn *c = server->rt.conns; c != NULL; c = c->next) {
        if (c->state == CONN_OPEN && !(c->flags & CONN_REJECTED))
            fn(c, user);
    }
}

void gmud_server_shutdown(gmud_server *server, uint32_t flush_timeout_ms,
                          void (*done)(gmud_server *server, void *user), void *user)
{
    if (server->shutting)
        return;
    rt_ctx *rt = &server->rt;
    server->shutting = 1;
    server->done = done;
    server->done_user = user;
    server->flush_ms = flush_timeout_ms;
    rt_logf(rt, GMUD_LOG_INFO, NULL, "shutdown", "stopping: %zu connections to close",
            rt->open);
    close_listeners(server);
    for (gmud_conn *c = rt->conns; c != NULL; c = c->next) {
        if (server->flush_ms == GMUD_OFF)
            conn_close_now(c, GMUD_CLOSE_SHUTDOWN, NULL);
        else
            conn_close_soft(c, GMUD_CLOSE_SHUTDOWN, NULL, server->flush_ms);
    }
}

void gmud_server_destroy(gmud_server *server)
{
    if (server == NULL || server->destroyed)
        return;
    server->destroyed = 1;
    server->done = NULL;
    if (!server->shutting) {
        server->shutting = 1;
        close_listeners(server);
    }
    rt_close(&server->rt);
}

/* ---- Timers ----------------------------------------------------------- */

struct gmud_timer {
    uv_timer_t handle;
    void (*cb)(gmud_timer *timer, void *user);
    void *user;
};

static void on_timer(uv_timer_t *handle)
{
    gmud_timer *t = handle->data;
    t->cb(t, t->user);
}

gmud_timer *gmud_timer_create(uv_loop_t *loop, uint64_t first_ms, uint64_t repeat_ms,
                             void (*cb)(gmud_timer *timer, void *user), void *user)
{
    gmud_timer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    uv_timer_init(loop, &t->handle);
    t->handle.data = t;
    t->cb = cb;
    t->user = user;
    uv_timer_start(&t->handle, on_timer, first_ms, repeat_ms);
    return t;
}

static void on_timer_closed(uv_handle_t *handle)
{
    free(handle->data);
}

void gmud_timer_destroy(gmud_timer *timer)
{
    if (timer == NULL)
        return;
    uv_timer_stop(&timer->handle);
    uv_close((uv_handle_t *)&timer->handle, on_timer_closed);
}
