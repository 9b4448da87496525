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

#include "conn.h"
#include "seamed.h"
#include "resolve.h"

struct gmud_server {
    rt_ctx rt; /* first: listener.data and the rt's handles point here */
    uv_tcp_t listener;
    char *host;
    uint16_t port;
    uint8_t shutting;
    uint8_t listen_closed;
    uint8_t done_called;
    uint8_t destroyed;
    uint32_t flush_ms;
    void (*done)(gmud_server *server, void *user);
    void *done_user;
};

void gmud_server_default_config(gmud_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = GMUD_HOST_DEFAULT;
    cfg->port = GMUD_PORT_DEFAULT;
    cfg->backlog = GMUD_BACKLOG_DEFAULT;
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
    if (!server->shutting || !server->listen_closed || server->rt.conns != NULL ||
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
    free(server->host);
    free(server);
}

/* Resolves host:port and binds a listening-ready socket; the fd or -1. A
 * plain socket keeps every failure here synchronous and leak-free. */
static int bind_socket(const char *host, uint16_t port, gmud_error *err)
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
static void refuse(gmud_server *server, gmud_conn *conn, int code, gmud_close_reason reason,
                   const char *msg)
{
    rt_ctx *rt = &server->rt;
    conn->flags |= CONN_REJECTED;
    rt->refusing++;
    rt_logf(rt, GMUD_LOG_WARN, conn->peer, "reject", "%s", msg);
    if (rt->refusing > GMUD_MAX_REFUSING) {
        conn_close_now(conn, reason, NULL);
        return;
    }
    /* Over TLS the refusal travels once the handshake is done (within the
     * linger); a flood of refusals gets no TLS state, as above. */
    if (!conn_attach_seam(conn))
        return;
    conn_start(conn, 0);
    conn_send_error(conn, gmud_err_name(code), msg);
    conn_close_soft(conn, reason, NULL, rt->limits.linger_ms);
}

static void reject_full(gmud_server *server, gmud_conn *conn)
{
    char msg[96];
    snprintf(msg, sizeof msg, "server full: %zu connections open, the maximum",
             server->rt.open);
    server->rt.stats.rejected_full++;
    refuse(server, conn, GMUD_ERR_SERVER_FULL, GMUD_CLOSE_SERVER_FULL, msg);
}

/* Per-address limits; 1 if conn may go on (it is then counted). */
static int admit_addr(gmud_server *server, gmud_conn *conn)
{
    rt_ctx *rt = &server->rt;
    if (rt->addr_limit == NULL)
        return 1;
    int len = (int)sizeof conn->addr;
    struct sockaddr *sa = (struct sockaddr *)&conn->addr;
    if (uv_tcp_getpeername(&conn->tcp, sa, &len) != 0)
        return 1; /* no address to count (the peer is gone already) */
    gmud_error e;
    if (gmud_iplimit_admit(rt->addr_limit, sa, uv_now(rt->loop), &e) == GMUD_OK) {
        conn->flags |= CONN_ADDR_COUNTED;
        return 1;
    }
    rt->stats.rejected_addr++;
    refuse(server, conn, GMUD_ERR_ADDR_LIMITED, GMUD_CLOSE_ADDR_LIMITED, e.message);
    return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    gmud_server *server = listener->data;
    rt_ctx *rt = &server->rt;
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
    int rc = uv_accept(listener, (uv_stream_t *)&conn->tcp);
    if (rc != 0) {
        gmud_error_set(&e, GMUD_ERR_IO, 0, "accept failed: %s", uv_strerror(rc));
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return;
    }
    conn_set_peer(conn, NULL);
    if (!admit_addr(server, conn))
        return;
    if (rt->open >= rt->limits.max_connections) {
        reject_full(server, conn);
        return;
    }
    if (!conn_attach_seam(conn))
        return;
    if (rt->session.mode != GMUD_SESSION_OFF && conn_welcome(conn, &e) != GMUD_OK) {
        rt_logf(rt, GMUD_LOG_ERROR, conn->peer, "accept", "no session: %s", e.message);
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return;
    }
    rt_logf(rt, GMUD_LOG_INFO, conn->peer, "accept", "connection %llu accepted (%zu open)",
            (unsigned long long)conn->id, rt->open + 1);
    conn_start(conn, 1);
}

gmud_server *gmud_server_create(uv_loop_t *loop, const gmud_server_config *cfg, gmud_error *err)
{
    return server_create_seamed(loop, cfg, NULL, err);
}

gmud_server *server_create_seamed(uv_loop_t *loop, const gmud_server_config *cfg,
                                  const seam_factory *seams, gmud_error *err)
{
    gmud_server *server = calloc(1, sizeof *server);
    const char *host = cfg->host ? cfg->host : GMUD_HOST_DEFAULT;
    if (server == NULL || (server->host = strdup(host)) == NULL) {
        free(server);
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
    int fd = -1;
    if (gmud_frame_config_check(&rt->frame, err) != GMUD_OK ||
        gmud_limits_check(&rt->limits, err) != GMUD_OK ||
        rt_tls_setup(rt, &cfg->conn.tls, NULL, err) != GMUD_OK)
        goto fail;
    if ((cfg->addr.max_per_addr != 0 || cfg->addr.new_per_sec != 0) &&
        (rt->addr_limit = gmud_iplimit_create(&cfg->addr, err)) == NULL)
        goto fail;
    if ((fd = bind_socket(server->host, cfg->port, err)) < 0)
        goto fail;
    server->port = bound_port(fd);
    if (rt_init(rt, loop, err) != GMUD_OK)
        goto fail;
    /* From here on cleanup is asynchronous: handles exist. */
    uv_tcp_init(loop, &server->listener);
    server->listener.data = server;
    rt->handles_open++;
    int rc = uv_tcp_open(&server->listener, fd);
    if (rc != 0)
        close(fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server->listener, cfg->backlog > 0 ? cfg->backlog : GMUD_BACKLOG_DEFAULT,
                       on_connection);
    if (rc != 0) {
        gmud_error_set(err, GMUD_ERR_IO, 0, "cannot listen on %s:%u: %s", server->host,
                       (unsigned)cfg->port, uv_strerror(rc));
        server->shutting = 1;
        server->listen_closed = 1;
        uv_close((uv_handle_t *)&server->listener, rt_handle_closed);
        rt_close(rt);
        return NULL;
    }
    rt_logf(rt, GMUD_LOG_INFO, NULL, "listen", "listening on %s port %u (%s framing, %s%s)",
            server->host, (unsigned)server->port, gmud_framing_name(rt->frame.framing),
            rt->payload == GMUD_PAYLOAD_JSON ? "json" : "text", rt->tls ? ", TLS" : "");
    return server;

fail:
    if (fd >= 0)
        close(fd);
    rt_tls_free(rt);
    gmud_iplimit_destroy(rt->addr_limit);
    free(server->host);
    free(server);
    return NULL;
}

uint16_t gmud_server_port(const gmud_server *server)
{
    return server->port;
}

size_t gmud_server_connections(const gmud_server *server)
{
    return server->rt.open;
}

void gmud_server_stats(const gmud_server *server, gmud_stats *out)
{
    *out = server->rt.stats;
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

static void on_listener_closed(uv_handle_t *handle)
{
    gmud_server *server = handle->data;
    server->listen_closed = 1;
    if (server->rt.closing) {
        rt_handle_closed(handle); /* may free the server */
        return;
    }
    server->rt.handles_open--;
    maybe_done(server);
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
    uv_close((uv_handle_t *)&server->listener, on_listener_closed);
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
        uv_close((uv_handle_t *)&server->listener, on_listener_closed);
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
