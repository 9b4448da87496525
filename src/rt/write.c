/* The write path: a send encodes its frame onto the connection's pending
 * buffer and puts the connection on the dirty list; a uv_check handle, which
 * runs after the turn's I/O callbacks and timers, flushes each dirty
 * connection with one write (uv_try_write first, uv_write for the rest).
 * While a write is in flight new sends go to the other buffer; the two swap
 * on completion. Also the queue bound and the read backpressure it drives. */
#include "conn.h"
#include "frame_head.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Writing ---------------------------------------------------------- */

static void on_check(uv_check_t *handle);
static void on_idle(uv_idle_t *handle);

void conn_mark_dirty(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    conn->flags |= CONN_ACTIVE;
    if (conn->flags & CONN_DIRTY)
        return;
    conn->flags |= CONN_DIRTY;
    conn->dirty_next = rt->dirty;
    rt->dirty = conn;
    if (!rt->flushing_armed) {
        /* The idle handle only stops poll from blocking when a send was made
         * outside the I/O phase (in a close callback, say); the check
         * handle does the flushing and disarms both. */
        uv_check_start(&rt->check, on_check);
        uv_idle_start(&rt->idle, on_idle);
        rt->flushing_armed = 1;
    }
}

static void on_idle(uv_idle_t *handle)
{
    (void)handle;
}

static void on_check(uv_check_t *handle)
{
    rt_ctx *rt = handle->data;
    /* Each connection flushes at most once a turn; a write completing later
     * puts it back on the list. */
    gmud_conn *list = rt->dirty;
    rt->dirty = NULL;
    while (list != NULL) {
        gmud_conn *conn = list;
        list = conn->dirty_next;
        conn->flags &= (uint16_t)~CONN_DIRTY;
        conn_flush(conn);
    }
    if (rt->dirty == NULL && rt->flushing_armed) {
        uv_check_stop(&rt->check);
        uv_idle_stop(&rt->idle);
        rt->flushing_armed = 0;
    }
}

/* Stops reading above the high-water mark and resumes at the low one, so
 * echo to a peer that never reads leaves the peer's data in the kernel. */
static void backpressure_turn(gmud_conn *conn, size_t q);

static inline void backpressure(gmud_conn *conn)
{
    /* The common case inline: reading, and below the high-water mark. */
    size_t q = conn_queued_bytes(conn);
    if (!(conn->flags & CONN_PAUSED) && q < conn->rt->limits.read_high_water)
        return;
    backpressure_turn(conn, q);
}

static void backpressure_turn(gmud_conn *conn, size_t q)
{
    if (conn->state != CONN_OPEN)
        return;
    const gmud_limits *lim = &conn->rt->limits;
    if (!(conn->flags & CONN_PAUSED) && q >= lim->read_high_water) {
        conn_stop_reading(conn);
        conn->flags |= CONN_PAUSED;
        conn->rt->stats.read_pauses++;
    } else if ((conn->flags & CONN_PAUSED) && q <= lim->read_low_water) {
        conn->flags &= (uint16_t)~CONN_PAUSED;
        conn_start_reading(conn);
    }
}

void conn_io_error(gmud_conn *conn, const char *what, int status)
{
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_IO, 0, "%s: %s", what, uv_strerror(status));
    conn_close_now(conn, GMUD_CLOSE_IO, &e);
}

/* Calls on_drain once the queue is empty, if the application asked
 * (gmud_conn_want_drain). Only while open: a closing connection owes
 * on_close instead. The callback may send or close: callers return at once
 * after this. */
static void drained(gmud_conn *conn)
{
    if (!(conn->flags & CONN_WANT_DRAIN) || conn_queued_bytes(conn) != 0 || conn->state != CONN_OPEN)
        return;
    conn->flags &= (uint16_t)~CONN_WANT_DRAIN;
    rt_ctx *rt = conn->rt;
    if (rt->cb.on_drain != NULL)
        rt->cb.on_drain(conn, rt->cb.user);
}

static void on_write(uv_write_t *req, int status)
{
    gmud_conn *conn = req->data;
    conn_io *io = conn->io;
    byte_buf *done = &io->out[io->pending ^ 1];
    io->writing = 0;
    done->len = 0;
    if (status < 0) {
        io->inflight = 0;
        if (conn->state != CONN_CLOSED)
            conn_io_error(conn, "write failed", status);
        return;
    }
    conn->rt->stats.bytes_out += io->inflight;
    conn->bytes_out += io->inflight;
    io->inflight = 0;
    conn_recount(conn);
    conn->last_tx = uv_now(conn->rt->loop); /* progress: the send timeout restarts */
    if (io->out[io->pending].len > 0 || io->plain.len > 0)
        conn_mark_dirty(conn);
    backpressure(conn);
    conn_finish_closing(conn);
    drained(conn);
}

/* With a seam: the frames queued this turn go through it together, onto
 * the buffer to write. 0, or the connection is closed. */
static int seal(gmud_conn *conn)
{
    conn_io *io = conn->io;
    if (conn->seam == NULL || io->plain.len == 0 || conn->state == CONN_CLOSED ||
        !seam_ready(conn->seam))
        return 0; /* during a handshake the frames wait in plain */
    gmud_error e;
    int rc = conn->seam->ops->output(conn->seam, io->plain.data, io->plain.len,
                                     &io->out[io->pending], &e);
    io->plain.len = 0;
    if (rc != GMUD_OK) {
        rt_logf(conn->rt, GMUD_LOG_WARN, conn->peer, "seam", "%s output failed: %s",
                conn->seam->ops->name, e.message);
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return -1;
    }
    conn_recount(conn); /* the plaintext is out, its sealed bytes in */
    return 0;
}

void conn_flush(gmud_conn *conn)
{
    conn_io *io = conn->io;
    if (io == NULL) {
        drained(conn);
        return;
    }
    if (conn->state == CONN_CONNECTING || conn->state == CONN_CLOSED || seal(conn) != 0 ||
        io->writing)
        return;
    byte_buf *b = &io->out[io->pending];
    if (b->len == 0) {
        conn_finish_closing(conn);
        drained(conn);
        return;
    }
    rt_ctx *rt = conn->rt;
    /* At most GMUD_WRITE_CHUNK bytes a write() call, as long as the kernel
     * takes them whole: one large write() to a loopback peer held the
     * socket for so long that the reader stalled (bench_stream, 64-byte
     * messages with 256 KiB queued: 23-26 M msg/s in 256 KiB writes, 44-46 M
     * in 64 KiB ones). */
    size_t sent = 0;
    while (sent < b->len) {
        size_t chunk = b->len - sent < GMUD_WRITE_CHUNK ? b->len - sent : GMUD_WRITE_CHUNK;
        uv_buf_t cb = uv_buf_init((char *)b->data + sent, (unsigned)chunk);
        int n = uv_try_write((uv_stream_t *)&conn->tcp, &cb, 1);
        rt->stats.writes++;
        if (n < 0 && n != UV_EAGAIN) {
            conn_io_error(conn, "write failed", n);
            return;
        }
        if (n <= 0)
            break;
        conn->last_tx = uv_now(rt->loop);
        sent += (size_t)n;
        rt->stats.bytes_out += (size_t)n;
        conn->bytes_out += (size_t)n;
        if ((size_t)n < chunk)
            break;
    }
    if (sent == b->len) {
        b->len = 0;
        conn_recount(conn);
        backpressure(conn);
        conn_finish_closing(conn);
        drained(conn);
        return;
    }
    /* The kernel is full: the rest goes in flight from this buffer while new
     * sends fill the other one. */
    io->pending ^= 1;
    io->inflight = b->len - sent;
    io->writing = 1;
    conn_recount(conn);
    io->req.data = conn;
    uv_buf_t ub = uv_buf_init((char *)b->data + sent, (unsigned)io->inflight);
    rt->stats.writes++;
    int rc = uv_write(&io->req, (uv_stream_t *)&conn->tcp, &ub, 1, on_write);
    if (rc < 0) {
        io->writing = 0;
        io->inflight = 0;
        b->len = 0;
        conn_io_error(conn, "write failed", rc);
    }
}

void gmud_conn_want_drain(gmud_conn *conn)
{
    if (conn->state != CONN_OPEN)
        return;
    conn->flags |= CONN_WANT_DRAIN;
    /* Through the check phase even when the queue is empty now: on_drain is
     * never called from inside this call. */
    conn_mark_dirty(conn);
}

static int closing_error(gmud_conn *conn, gmud_error *err)
{
    return gmud_error_set(err, GMUD_ERR_CLOSED, 0, "connection %llu (%s) is closing",
                          (unsigned long long)conn->id, conn->peer);
}

/* Where a send's frame goes: straight onto the buffer to write, or, with a
 * seam, onto the turn's plaintext (sealed at flush). */
static inline byte_buf *queue_buf(gmud_conn *conn)
{
    return conn->seam ? &conn->io->plain : &conn->io->out[conn->io->pending];
}

static int ensure_io(gmud_conn *conn, gmud_error *err)
{
    if (conn->io == NULL && (conn->io = calloc(1, sizeof *conn->io)) == NULL)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for output buffers");
    return GMUD_OK;
}

/* Refuses n more bytes if they would take the queue over the bound; the
 * connection is then closed at once, without delaying anyone else. Past
 * the server's buffer budget, a pass closes the largest holders first. */
static int slow_consumer(gmud_conn *conn, size_t q, size_t n, gmud_error *err);
static int over_budget(gmud_conn *conn, gmud_error *err);

static inline int check_queue(gmud_conn *conn, size_t n, gmud_error *err)
{
    size_t q = conn_queued_bytes(conn);
    const rt_ctx *rt = conn->rt;
    size_t max = rt->limits.max_queued;
    if (n > max || q > max - n)
        return slow_consumer(conn, q, n, err);
    if (rt->stats.buffered_total + n > rt->budget_trip)
        return over_budget(conn, err);
    return GMUD_OK;
}

static int slow_consumer(gmud_conn *conn, size_t q, size_t n, gmud_error *err)
{
    size_t max = conn->rt->limits.max_queued;
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_SLOW_CONSUMER, 0,
                   "%zu bytes queued and %zu more would exceed the bound of %zu", q, n, max);
    rt_logf(conn->rt, GMUD_LOG_WARN, conn->peer, "reject", "slow consumer: %s", e.message);
    conn_close_now(conn, GMUD_CLOSE_SLOW_CONSUMER, &e);
    if (err != NULL)
        *err = e;
    return GMUD_ERR_SLOW_CONSUMER;
}

/* The pass may choose conn itself: then nothing is queued, as over
 * max_queued. */
static int over_budget(gmud_conn *conn, gmud_error *err)
{
    rt_budget_pass(conn->rt);
    if (conn->state != CONN_CLOSED)
        return GMUD_OK;
    return gmud_error_set(err, GMUD_ERR_SLOW_CONSUMER, 0, "%s",
                          conn->detail ? conn->detail->message : "server buffer budget exceeded");
}

/* A frame of n bytes was queued: counted, flushed this turn, and the
 * read backpressure. */
static inline int queued(gmud_conn *conn, size_t n)
{
    conn_hold(conn, (size_t)conn->held + n);
    conn->rt->stats.messages_out++;
    conn->msgs_out++;
    conn_mark_dirty(conn);
    backpressure(conn);
    return GMUD_OK;
}

byte_buf *conn_wire_buf(gmud_conn *conn, gmud_error *err)
{
    return ensure_io(conn, err) == GMUD_OK ? &conn->io->out[conn->io->pending] : NULL;
}

int conn_wire_added(gmud_conn *conn, size_t n, gmud_error *err)
{
    if (n == 0)
        return GMUD_OK;
    conn_hold(conn, (size_t)conn->held + n); /* the read checks the budget after */
    size_t q = conn_queued_bytes(conn), max = conn->rt->limits.max_queued;
    if (q > max)
        return slow_consumer(conn, q - n, n, err);
    conn_mark_dirty(conn);
    return GMUD_OK;
}

int conn_append(gmud_conn *conn, const uint8_t *bytes, size_t n, gmud_error *err)
{
    if (conn->state != CONN_OPEN && conn->state != CONN_CONNECTING)
        return closing_error(conn, err);
    int rc = check_queue(conn, n, err);
    if (rc == GMUD_OK)
        rc = ensure_io(conn, err);
    if (rc != GMUD_OK)
        return rc;
    if (buf_append(queue_buf(conn), bytes, n) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory queueing %zu bytes", n);
    return queued(conn, n);
}

/* Encodes prefix + data as one frame onto conn's output. */
int conn_send_payload(gmud_conn *conn, const void *prefix, size_t plen, const void *data,
                        size_t len, gmud_error *err)
{
    const gmud_frame_config *cfg = &conn->rt->frame;
    if (conn->state != CONN_OPEN && conn->state != CONN_CONNECTING)
        return closing_error(conn, err);
    /* Refuse an unencodable payload before reserving room for it. */
    if (len > cfg->max_message || plen + len > cfg->max_message)
        return (int)gmud_frame_encode_prefixed(cfg, prefix, plen, data, len, NULL, 0, err);
    size_t head = frame_head_size(cfg->framing);
    size_t size = head != 0 ? head + plen + len : gmud_frame_encoded_size(cfg, plen + len);
    int rc = check_queue(conn, size, err);
    if (rc == GMUD_OK)
        rc = ensure_io(conn, err);
    if (rc != GMUD_OK)
        return rc;
    byte_buf *b = queue_buf(conn);
    if (buf_reserve(b, size) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory queueing %zu bytes", size);
    uint8_t *p = b->data + b->len;
    if (head != 0) {
        frame_head_put(cfg, p, plen + len);
        /* length and gmud: the header, then the parts, in place (the
         * lengths were checked above; max_message <= 65535 for these). */
        if (plen > 0)
            memcpy(p + head, prefix, plen);
        if (len > 0)
            memcpy(p + head + plen, data, len);
        b->len += size;
    } else {
        ptrdiff_t n = gmud_frame_encode_prefixed(cfg, prefix, plen, data, len, p,
                                                 b->cap - b->len, err);
        if (n < 0)
            return (int)n;
        b->len += (size_t)n;
    }
    return queued(conn, (size_t)(b->data + b->len - p));
}

ptrdiff_t rt_dump_json(rt_ctx *rt, const json_t *v, gmud_error *err)
{
    size_t max = rt->frame.max_message;
    if (rt->scratch.cap < 1024 && buf_reserve(&rt->scratch, 1024) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory serialising JSON");
    size_t need = json_dumpb(v, (char *)rt->scratch.data, rt->scratch.cap, JSON_COMPACT);
    if (need > rt->scratch.cap && need <= max) {
        if (buf_reserve(&rt->scratch, need) != 0)
            return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory serialising JSON");
    }
    if (need > max)
        return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0,
                              "JSON text of %zu bytes exceeds the maximum message of %zu", need,
                              max);
    return gmud_json_dump(v, rt->scratch.data, rt->scratch.cap, err);
}
