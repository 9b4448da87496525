/* A connection's lifecycle: created, started, and the close state machine
 * (graceful: flush, FIN, wait for the peer's; or at once), and its
 * accessors. The read path is read.c, the write path write.c, the timeouts
 * sweep.c. */
#include "conn.h"
#include "frame_head.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[] = {
    "peer closed",    "closed locally", "shutdown",              "slow consumer",
    "frame timeout",  "idle timeout",   "protocol error",        "too many bad messages",
    "server full",    "io error",       "connect failed",        "session violation",
    "rate limited",   "address limit",  "refused by the peer", "tls failed",
    "proxy refused",
};

const char *gmud_close_reason_name(gmud_close_reason reason)
{
    if ((int)reason < 0 || reason >= GMUD_CLOSE_REASON_COUNT_)
        return "unknown";
    return reason_names[reason];
}


/* ---- Accessors -------------------------------------------------------- */

void gmud_conn_set_data(gmud_conn *conn, void *data)
{
    conn->data = data;
}

void *gmud_conn_data(const gmud_conn *conn)
{
    return conn->data;
}

uint64_t gmud_conn_id(const gmud_conn *conn)
{
    return conn->id;
}

const char *gmud_conn_peer(const gmud_conn *conn)
{
    return conn->peer;
}


size_t gmud_conn_queued(const gmud_conn *conn)
{
    return conn_queued_bytes(conn);
}

size_t gmud_conn_max_payload(const gmud_conn *conn)
{
    return ep_max_payload(&conn->rt->ep);
}

int gmud_conn_reading_paused(const gmud_conn *conn)
{
    return (conn->flags & CONN_PAUSED) != 0;
}

gmud_server *gmud_conn_server(const gmud_conn *conn)
{
    return conn->rt->server;
}


/* ---- Lifecycle -------------------------------------------------------- */



gmud_conn *conn_new(rt_ctx *rt, gmud_error *err)
{
    gmud_conn *conn = calloc(1, sizeof *conn);
    if (conn == NULL) {
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for a connection");
        return NULL;
    }
    conn->dec = gmud_frame_decoder_create(&rt->frame, err);
    if (conn->dec == NULL) {
        free(conn);
        return NULL;
    }
    int rc = uv_tcp_init(rt->loop, &conn->tcp);
    if (rc != 0) {
        gmud_frame_decoder_destroy(conn->dec);
        free(conn);
        gmud_error_set(err, GMUD_ERR_IO, 0, "cannot create a socket: %s", uv_strerror(rc));
        return NULL;
    }
    conn->tcp.data = conn;
    conn->rt = rt;
    conn->id = ++rt->next_id;
    conn->state = CONN_CONNECTING;
    conn->last_rx = uv_now(rt->loop);
    conn->last_tx = conn->last_rx;
    conn->opened = conn->last_rx;
    strcpy(conn->peer, "-");
    ep_init(&conn->ep, &rt->ep, conn->last_rx);
    conn->next = rt->conns;
    if (rt->conns != NULL)
        rt->conns->prev = conn;
    rt->conns = conn;
    return conn;
}

void conn_set_peer(gmud_conn *conn, const struct sockaddr *addr)
{
    struct sockaddr_storage ss;
    if (addr == NULL) {
        int len = (int)sizeof ss;
        if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) != 0)
            return;
        addr = (const struct sockaddr *)&ss;
    }
    char ip[46] = "?"; /* INET6_ADDRSTRLEN: the peer string always fits */
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
        uv_ip6_name(a6, ip, sizeof ip);
        snprintf(conn->peer, sizeof conn->peer, "[%s]:%u", ip, (unsigned)ntohs(a6->sin6_port));
    } else if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
        uv_ip4_name(a4, ip, sizeof ip);
        snprintf(conn->peer, sizeof conn->peer, "%s:%u", ip, (unsigned)ntohs(a4->sin_port));
    }
}

void conn_start_reading(gmud_conn *conn)
{
    if ((conn->flags & CONN_READING) ||
        ((conn->flags & (CONN_THROTTLED | CONN_HELD)) && conn->state == CONN_OPEN))
        return;
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, conn_on_alloc, conn_on_read);
    if (rc == 0)
        conn->flags |= CONN_READING;
}

void conn_stop_reading(gmud_conn *conn)
{
    if (!(conn->flags & CONN_READING))
        return;
    uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->flags &= (uint16_t)~CONN_READING;
}

void conn_start(gmud_conn *conn, int announce)
{
    rt_ctx *rt = conn->rt;
    uv_tcp_nodelay(&conn->tcp, 1);
    conn->state = CONN_OPEN;
    conn->last_rx = uv_now(rt->loop);
    /* A server's seam came with its admission; a client's comes now. */
    if ((rt->server == NULL && !conn_attach_seam(conn, &rt->seams)) || !conn_seam_start(conn))
        return;
    conn_start_reading(conn);
    if (conn_queued_bytes(conn) > 0)
        conn_flush(conn);
    /* The first write (a server's welcome) can fail, a peer that reset at
     * once: then there is no connection to announce or to count. */
    if (conn->state != CONN_OPEN)
        return;
    /* A client in a session mode announces once welcomed (conn_act). */
    if (ep_awaiting_welcome(&conn->ep))
        ep_init(&conn->ep, &rt->ep, conn->last_rx); /* its clock starts now */
    else if (announce && seam_ready(conn->seam))
        conn_announce(conn); /* else once the handshake is done */
}

/* The application hears of conn: counted, then on_connect. */
void conn_announce(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    conn->flags |= CONN_COUNTED | CONN_NOTIFY;
    rt->open++;
    rt->stats.accepted++;
    rt->stats.active++;
    if (rt->cb.on_connect != NULL)
        rt->cb.on_connect(conn, rt->cb.user);
}

/* A hard close drops the queued output: its memory goes now, not when
 * libuv calls on_closed, which under load can be a long loop turn later
 * (bench_memory: 9,000 connections the budget closed held 2 GB for
 * seconds). Safe once uv_close has run: libuv writes nothing more, and a
 * write in flight only gets its callback, with UV_ECANCELED, which reads
 * the io struct, kept, not the bytes. */
static void drop_output(gmud_conn *conn)
{
    conn_io *io = conn->io;
    if (io == NULL)
        return;
    buf_free(&io->out[0]);
    buf_free(&io->out[1]);
    buf_free(&io->plain);
    io->inflight = 0;
}

void conn_free_io(gmud_conn *conn)
{
    if (conn->io == NULL)
        return;
    drop_output(conn);
    free(conn->io);
    conn->io = NULL;
}

/* An output buffer keeps what it grew to; past this, an empty one is given
 * back at the sweep even while the connection is busy. */
enum { IO_KEEP = 64 * 1024 };

void conn_trim_io(gmud_conn *conn)
{
    conn_io *io = conn->io;
    if (io == NULL || io->writing)
        return;
    for (int i = 0; i < 2; i++)
        if (io->out[i].len == 0 && io->out[i].cap > IO_KEEP)
            buf_free(&io->out[i]);
    if (io->plain.len == 0 && io->plain.cap > IO_KEEP)
        buf_free(&io->plain);
}

static void unlink_dirty(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    for (gmud_conn **p = &rt->dirty; *p != NULL; p = &(*p)->dirty_next) {
        if (*p == conn) {
            *p = conn->dirty_next;
            break;
        }
    }
    conn->flags &= (uint16_t)~CONN_DIRTY;
}

static void unlink_conn(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    if (conn->flags & CONN_DIRTY)
        unlink_dirty(conn);
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        rt->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
}

static void destroy_conn(gmud_conn *conn)
{
    conn_hold(conn, 0); /* none left in the total (a client's retry kept its count) */
    gmud_frame_decoder_destroy(conn->dec);
    conn_seam_gone(conn);
    conn_free_io(conn);
    free(conn->detail);
    free(conn);
}



/* One line per connection closed: why, and what it carried. */
static void log_close(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    gmud_close_reason reason = (gmud_close_reason)conn->reason;
    int quiet = reason == GMUD_CLOSE_PEER || reason == GMUD_CLOSE_LOCAL ||
                reason == GMUD_CLOSE_SHUTDOWN;
    gmud_log_level level = quiet ? GMUD_LOG_INFO : GMUD_LOG_WARN;
    if (rt->log == NULL || level > rt->log_level)
        return;
    uint64_t ms = uv_now(rt->loop) - conn->opened;
    const char *detail = conn->detail ? conn->detail->message : NULL;
    gmud_log_field f[9] = {
        {"id", NULL, (long long)conn->id},
        {"reason", gmud_close_reason_name(reason), 0},
        {"duration_ms", NULL, (long long)ms},
        {"bytes_in", NULL, (long long)conn->bytes_in},
        {"bytes_out", NULL, (long long)conn->bytes_out},
        {"messages_in", NULL, (long long)conn->msgs_in},
        {"messages_out", NULL, (long long)conn->msgs_out},
    };
    size_t n = 7;
    if (conn->ep.sess.id != 0)
        f[n++] = (gmud_log_field){"session", NULL, (long long)conn->ep.sess.id};
    if (detail != NULL)
        f[n++] = (gmud_log_field){"detail", detail, 0};
    char sess[40] = "";
    if (conn->ep.sess.id != 0)
        snprintf(sess, sizeof sess, ", session %llu", (unsigned long long)conn->ep.sess.id);
    rt_logf_fields(rt, level, conn->peer, "close", f, n,
                   "connection %llu closed: %s%s%s (%.1f s%s; in %u messages, %llu bytes; "
                   "out %u messages, %llu bytes)",
                   (unsigned long long)conn->id, gmud_close_reason_name(reason),
                   detail ? ": " : "", detail ? detail : "", (double)ms / 1000.0, sess,
                   (unsigned)conn->msgs_in, (unsigned long long)conn->bytes_in,
                   (unsigned)conn->msgs_out, (unsigned long long)conn->bytes_out);
}

static void on_closed(uv_handle_t *handle)
{
    gmud_conn *conn = handle->data;
    rt_ctx *rt = conn->rt;
    if ((conn->flags & CONN_RETRY) && !rt->closing && rt->reopen != NULL) {
        /* Not the end: the same connection tries the next address. */
        conn->flags &= (uint16_t)~CONN_RETRY;
        conn->state = CONN_CONNECTING;
        uv_tcp_init(rt->loop, &conn->tcp);
        conn->tcp.data = conn;
        rt->reopen(conn);
        return;
    }
    unlink_conn(conn);
    rt->stats.closes[conn->reason]++;
    if (conn->flags & CONN_COUNTED) {
        rt->open--;
        rt->stats.active--;
    }
    if (conn->flags & CONN_REJECTED)
        rt->refusing--;
    if (conn->flags & CONN_ADDR_COUNTED)
        gmud_iplimit_release(rt->addr_limit, (const struct sockaddr *)&conn->addr);
    log_close(conn);
    if ((conn->flags & CONN_NOTIFY) && rt->cb.on_close != NULL)
        rt->cb.on_close(conn, (gmud_close_reason)conn->reason, conn->detail, rt->cb.user);
    destroy_conn(conn);
    if (rt->conn_gone != NULL)
        rt->conn_gone(rt);
    rt_maybe_free(rt);
}

static void keep_detail(gmud_conn *conn, const gmud_error *detail)
{
    if (conn->detail == NULL)
        conn->detail = malloc(sizeof *conn->detail);
    if (conn->detail != NULL)
        *conn->detail = *detail;
}

/* A clean end of stream (the endpoint found no refusal before it) says
 * nothing of a warning the peer sent earlier: that is no reason. */
static void set_reason(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail)
{
    conn->reason = (uint8_t)reason;
    if (reason == GMUD_CLOSE_PEER && (conn->flags & CONN_PEER_DETAIL)) {
        free(conn->detail);
        conn->detail = NULL;
        conn->flags &= (uint16_t)~CONN_PEER_DETAIL;
    }
    if (detail != NULL && (conn->detail == NULL || (conn->flags & CONN_PEER_DETAIL))) {
        keep_detail(conn, detail);
        conn->flags &= (uint16_t)~CONN_PEER_DETAIL;
    }
}

void conn_peer_said(gmud_conn *conn, const gmud_error *e)
{
    if (conn->detail != NULL && !(conn->flags & CONN_PEER_DETAIL))
        return; /* a reason of our own is already set */
    keep_detail(conn, e);
    conn->flags |= CONN_PEER_DETAIL;
}

void conn_close_now(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail)
{
    if (conn->state == CONN_CLOSED)
        return;
    /* A graceful close already chose the reason; a late hard close (the
     * linger ran out, the peer reset) does not change what the app hears. */
    if (conn->state != CONN_CLOSING)
        set_reason(conn, reason, detail);
    conn->state = CONN_CLOSED;
    conn->flags &= (uint16_t)~(CONN_READING | CONN_PAUSED);
    conn_shape_close(conn);
    conn_proxy_drop(conn);
    conn_hold(conn, 0); /* what it held is dropped: out of the total now */
    uv_close((uv_handle_t *)&conn->tcp, on_closed);
    drop_output(conn);
}

void conn_retry(gmud_conn *conn)
{
    if (conn->state != CONN_CONNECTING)
        return;
    conn->state = CONN_CLOSED;
    conn->flags |= CONN_RETRY;
    uv_close((uv_handle_t *)&conn->tcp, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    gmud_conn *conn = req->data;
    if (conn->state != CONN_CLOSING)
        return; /* closed meanwhile (status is UV_ECANCELED) */
    conn->flags |= CONN_FIN_DONE;
    if (status < 0 || (conn->flags & CONN_EOF)) {
        conn_close_now(conn, GMUD_CLOSE_IO, NULL);
        return;
    }
    /* Our FIN is out; wait briefly for the peer's so that bytes it still
     * sends are read, not answered with a reset that could destroy the data
     * we sent last. A peer that never closes costs at most this long. */
    uint64_t soon = uv_now(conn->rt->loop) + GMUD_FIN_WAIT_MS;
    if (soon < conn->deadline)
        conn->deadline = soon;
}

/* CLOSING and nothing left to write: send our FIN. */
void conn_finish_closing(gmud_conn *conn)
{
    if (conn->state != CONN_CLOSING || (conn->flags & CONN_FIN) || conn_queued_bytes(conn) > 0)
        return;
    if (conn->io != NULL && conn->io->writing)
        return;
    if (conn_seam_close(conn)) { /* close_notify first, then this again */
        conn_flush(conn);
        return;
    }
    if (conn->io == NULL) {
        conn->io = calloc(1, sizeof *conn->io);
        if (conn->io == NULL) {
            conn_close_now(conn, GMUD_CLOSE_IO, NULL);
            return;
        }
    }
    conn->flags |= CONN_FIN;
    conn->io->shut.data = conn;
    if (uv_shutdown(&conn->io->shut, (uv_stream_t *)&conn->tcp, on_shutdown) != 0)
        conn_close_now(conn, GMUD_CLOSE_IO, NULL);
}

void conn_close_soft(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                     uint64_t deadline_ms)
{
    if (conn->state == CONN_CONNECTING) {
        conn_close_now(conn, reason, detail);
        return;
    }
    if (conn->state != CONN_OPEN)
        return;
    set_reason(conn, reason, detail);
    conn->state = CONN_CLOSING;
    conn->deadline = uv_now(conn->rt->loop) + deadline_ms;
    /* Keep reading (and discarding) so the peer's end of stream is seen. */
    conn->flags &= (uint16_t)~(CONN_PAUSED | CONN_THROTTLED);
    conn_unhold(conn); /* what it sent after is not read either */
    conn_recount(conn);
    if (!(conn->flags & CONN_EOF))
        conn_start_reading(conn);
    conn_finish_closing(conn);
}

void gmud_conn_close(gmud_conn *conn)
{
    conn_close_soft(conn, GMUD_CLOSE_LOCAL, NULL, conn->rt->limits.linger_ms);
}
