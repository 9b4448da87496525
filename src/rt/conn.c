/* The runtime's connections: bytes between libuv and the framing core.
 *
 * Writes: a send encodes its frame onto the connection's pending buffer and
 * puts the connection on the dirty list; a uv_check handle, which runs after
 * the turn's I/O callbacks and timers, flushes each dirty connection with
 * one write (uv_try_write first, uv_write for the rest). While a write is in
 * flight new sends go to the other buffer; the two swap on completion.
 *
 * Reads: one 64 KiB buffer per rt is handed to whichever connection is
 * reading (on Unix libuv calls read_cb right after alloc_cb); the decoder
 * copies only a frame that straddles two reads.
 *
 * Timeouts: one sweep timer per rt walks the connection list.
 */
#include "conn.h"
#include "frame_head.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[] = {
    "peer closed",    "closed locally", "shutdown",              "slow consumer",
    "frame timeout",  "idle timeout",   "protocol error",        "too many bad messages",
    "server full",    "io error",       "connect failed",        "session violation",
    "rate limited",   "address limit",
};

const char *gmud_close_reason_name(gmud_close_reason reason)
{
    if ((int)reason < 0 || reason >= GMUD_CLOSE_REASON_COUNT_)
        return "unknown";
    return reason_names[reason];
}

/* ---- Limits ----------------------------------------------------------- */

void gmud_limits_default_config(gmud_limits *lim)
{
    lim->max_queued = GMUD_MAX_QUEUED_DEFAULT;
    lim->read_high_water = GMUD_READ_HIGH_WATER_DEFAULT;
    lim->read_low_water = GMUD_READ_LOW_WATER_DEFAULT;
    lim->frame_timeout_ms = GMUD_FRAME_TIMEOUT_MS_DEFAULT;
    lim->idle_timeout_ms = GMUD_IDLE_TIMEOUT_MS_DEFAULT;
    lim->linger_ms = GMUD_LINGER_MS_DEFAULT;
    lim->sweep_ms = GMUD_SWEEP_MS_DEFAULT;
    lim->max_bad_messages = GMUD_MAX_BAD_MESSAGES_DEFAULT;
    lim->max_connections = GMUD_MAX_CONNECTIONS_DEFAULT;
    lim->msg_rate = GMUD_RATE_MSGS_DEFAULT;
    lim->msg_burst = GMUD_RATE_MSGS_BURST_DEFAULT;
    lim->byte_rate = GMUD_RATE_BYTES_DEFAULT;
    lim->byte_burst = GMUD_RATE_BYTES_BURST_DEFAULT;
    lim->rate_close_ms = GMUD_RATE_CLOSE_AFTER_MS_DEFAULT;
}

static int check_rate(uint32_t rate, uint32_t burst, const char *what, gmud_error *err)
{
    if (rate != 0 && burst == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "%s rate %u needs a positive burst", what, (unsigned)rate);
    return GMUD_OK;
}

int gmud_limits_check(const gmud_limits *lim, gmud_error *err)
{
    if (lim->max_queued == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "max queued bytes must be positive");
    if (lim->read_high_water == 0 || lim->read_low_water >= lim->read_high_water)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "read water marks must satisfy 0 <= low (%zu) < high (%zu)",
                              lim->read_low_water, lim->read_high_water);
    if (lim->frame_timeout_ms == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "frame timeout must be positive");
    if (lim->linger_ms == 0 || lim->sweep_ms == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "linger and sweep periods must be positive");
    if (lim->max_bad_messages == 0 || lim->max_bad_messages > 255)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "max bad messages must be 1..255");
    if (lim->max_connections == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "max connections must be positive");
    if (check_rate(lim->msg_rate, lim->msg_burst, "message", err) != GMUD_OK ||
        check_rate(lim->byte_rate, lim->byte_burst, "byte", err) != GMUD_OK)
        return GMUD_ERR_INVALID;
    if (lim->rate_close_ms == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "rate close period must be positive");
    return GMUD_OK;
}

/* ---- Logging ---------------------------------------------------------- */

void rt_logf(rt_ctx *rt, gmud_log_level level, const char *peer, const char *event,
                 const char *fmt, ...)
{
    if (rt->log == NULL || level > rt->log_level)
        return;
    char reason[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    gmud_log_event ev = {level, peer ? peer : "-", event, reason};
    rt->log(rt->log_user, &ev);
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

/* Inlined on the send path; gmud_conn_queued is the public face. */
static inline size_t queued(const gmud_conn *conn)
{
    const conn_io *io = conn->io;
    return io ? io->out[io->pending].len + io->inflight : 0;
}

size_t gmud_conn_queued(const gmud_conn *conn)
{
    return queued(conn);
}

size_t gmud_conn_max_payload(const gmud_conn *conn)
{
    const gmud_frame_config *f = &conn->rt->frame;
    size_t max = f->max_message;
    if (f->framing == GMUD_FRAMING_FIXED && f->fixed_size < max)
        max = f->fixed_size;
    /* Mode on: the session header shares the frame. Sessions need at least
     * 50 bytes of room (checked with the config), so this leaves 34 or more. */
    if (conn->rt->session.mode == GMUD_SESSION_ON)
        max -= GMUD_SESSION_HEADER_SIZE;
    return max;
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

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf);
static void flush(gmud_conn *conn);
static void announce_conn(gmud_conn *conn);

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
    strcpy(conn->peer, "-");
    gmud_session_init(&conn->sess);
    /* The rates were checked with the config: these cannot fail. */
    const gmud_limits *lim = &rt->limits;
    if (lim->msg_rate != 0)
        gmud_bucket_init(&conn->msg_bucket, lim->msg_rate, lim->msg_burst, conn->last_rx);
    if (lim->byte_rate != 0)
        gmud_bucket_init(&conn->byte_bucket, lim->byte_rate, lim->byte_burst, conn->last_rx);
    gmud_overlimit_init(&conn->over, lim->rate_close_ms);
    if (rt->session.mode != GMUD_SESSION_OFF && rt->server == NULL)
        conn->flags |= CONN_AWAIT_WELCOME;
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

static void start_reading(gmud_conn *conn)
{
    if ((conn->flags & CONN_READING) ||
        ((conn->flags & CONN_THROTTLED) && conn->state == CONN_OPEN))
        return;
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (rc == 0)
        conn->flags |= CONN_READING;
}

static void stop_reading(gmud_conn *conn)
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
    start_reading(conn);
    if (queued(conn) > 0)
        flush(conn);
    if (conn->flags & CONN_AWAIT_WELCOME) {
        uint32_t wait = rt->session.welcome_timeout_ms;
        conn->deadline = conn->last_rx + (wait ? wait : GMUD_WELCOME_TIMEOUT_MS_DEFAULT);
    } else if (announce) {
        announce_conn(conn);
    }
}

/* The application hears of conn: counted, then on_connect. */
static void announce_conn(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    conn->flags |= CONN_COUNTED | CONN_NOTIFY;
    rt->open++;
    rt->stats.accepted++;
    rt->stats.active++;
    if (rt->cb.on_connect != NULL)
        rt->cb.on_connect(conn, rt->cb.user);
}

static void free_io(gmud_conn *conn)
{
    if (conn->io == NULL)
        return;
    buf_free(&conn->io->out[0]);
    buf_free(&conn->io->out[1]);
    free(conn->io);
    conn->io = NULL;
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
    gmud_frame_decoder_destroy(conn->dec);
    free_io(conn);
    free(conn->detail);
    free(conn);
}

static void rt_maybe_free(rt_ctx *rt);

static void log_close(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    gmud_close_reason reason = (gmud_close_reason)conn->reason;
    int quiet = reason == GMUD_CLOSE_PEER || reason == GMUD_CLOSE_LOCAL ||
                reason == GMUD_CLOSE_SHUTDOWN;
    rt_logf(rt, quiet ? GMUD_LOG_INFO : GMUD_LOG_WARN, conn->peer, "close",
                "connection %llu closed: %s%s%s", (unsigned long long)conn->id,
                gmud_close_reason_name(reason), conn->detail ? ": " : "",
                conn->detail ? conn->detail->message : "");
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

static void set_reason(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail)
{
    conn->reason = (uint8_t)reason;
    if (detail != NULL && conn->detail == NULL) {
        conn->detail = malloc(sizeof *conn->detail);
        if (conn->detail != NULL)
            *conn->detail = *detail;
    }
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
    uv_close((uv_handle_t *)&conn->tcp, on_closed);
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
static void finish_closing(gmud_conn *conn)
{
    if (conn->state != CONN_CLOSING || (conn->flags & CONN_FIN) || queued(conn) > 0)
        return;
    if (conn->io != NULL && conn->io->writing)
        return;
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
    if (!(conn->flags & CONN_EOF))
        start_reading(conn);
    finish_closing(conn);
}

void gmud_conn_close(gmud_conn *conn)
{
    conn_close_soft(conn, GMUD_CLOSE_LOCAL, NULL, conn->rt->limits.linger_ms);
}

/* ---- Read buffers: one per loop --------------------------------------- */

/* Every server and client on one loop reads into the same 64 KiB: libuv
 * reads one stream at a time, and a read's bytes are decoded (a partial
 * frame copied out) before the read callback returns. Without sharing, a
 * thousand clients on one loop held 64 MB of buffers, and RSS grew to it
 * as bursts touched their pages. Buffers are found by loop under a lock,
 * taken only when an rt is created or freed, never per read. */
struct rt_readbuf {
    struct rt_readbuf *next;
    const uv_loop_t *loop;
    size_t users;           /* rts on this loop */
    int busy;               /* handed to libuv, its read callback not yet run */
    uint8_t data[GMUD_READ_BUFFER_SIZE];
};

static pthread_mutex_t readbufs_lock = PTHREAD_MUTEX_INITIALIZER;
static rt_readbuf *readbufs;

/* The loop's buffer, created for its first rt; NULL on no memory. */
static rt_readbuf *readbuf_take(const uv_loop_t *loop)
{
    pthread_mutex_lock(&readbufs_lock);
    rt_readbuf *rb = readbufs;
    while (rb != NULL && rb->loop != loop)
        rb = rb->next;
    if (rb == NULL && (rb = malloc(sizeof *rb)) != NULL) {
        rb->loop = loop;
        rb->users = 0;
        rb->busy = 0;
        rb->next = readbufs;
        readbufs = rb;
    }
    if (rb != NULL)
        rb->users++;
    pthread_mutex_unlock(&readbufs_lock);
    return rb;
}

/* Gives back one rt's use; the last one frees the buffer. */
static void readbuf_give(rt_readbuf *rb)
{
    pthread_mutex_lock(&readbufs_lock);
    if (--rb->users == 0) {
        rt_readbuf **at = &readbufs;
        while (*at != rb)
            at = &(*at)->next;
        *at = rb->next;
        free(rb);
    }
    pthread_mutex_unlock(&readbufs_lock);
}

size_t rt_readbufs_live(void)
{
    size_t n = 0;
    pthread_mutex_lock(&readbufs_lock);
    for (const rt_readbuf *rb = readbufs; rb != NULL; rb = rb->next)
        n++;
    pthread_mutex_unlock(&readbufs_lock);
    return n;
}

/* ---- Writing ---------------------------------------------------------- */

static void on_check(uv_check_t *handle);
static void on_idle(uv_idle_t *handle);

static void mark_dirty(gmud_conn *conn)
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
        flush(conn);
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
    size_t q = queued(conn);
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
        stop_reading(conn);
        conn->flags |= CONN_PAUSED;
        conn->rt->stats.read_pauses++;
    } else if ((conn->flags & CONN_PAUSED) && q <= lim->read_low_water) {
        conn->flags &= (uint16_t)~CONN_PAUSED;
        start_reading(conn);
    }
}

static void io_error(gmud_conn *conn, const char *what, int status)
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
    if (!(conn->flags & CONN_WANT_DRAIN) || queued(conn) != 0 || conn->state != CONN_OPEN)
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
            io_error(conn, "write failed", status);
        return;
    }
    conn->rt->stats.bytes_out += io->inflight;
    io->inflight = 0;
    if (io->out[io->pending].len > 0)
        mark_dirty(conn);
    backpressure(conn);
    finish_closing(conn);
    drained(conn);
}

static void flush(gmud_conn *conn)
{
    conn_io *io = conn->io;
    if (io == NULL) {
        drained(conn);
        return;
    }
    if (io->writing || conn->state == CONN_CONNECTING || conn->state == CONN_CLOSED)
        return;
    byte_buf *b = &io->out[io->pending];
    if (b->len == 0) {
        finish_closing(conn);
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
            io_error(conn, "write failed", n);
            return;
        }
        if (n <= 0)
            break;
        sent += (size_t)n;
        rt->stats.bytes_out += (size_t)n;
        if ((size_t)n < chunk)
            break;
    }
    if (sent == b->len) {
        b->len = 0;
        backpressure(conn);
        finish_closing(conn);
        drained(conn);
        return;
    }
    /* The kernel is full: the rest goes in flight from this buffer while new
     * sends fill the other one. */
    io->pending ^= 1;
    io->inflight = b->len - sent;
    io->writing = 1;
    io->req.data = conn;
    uv_buf_t ub = uv_buf_init((char *)b->data + sent, (unsigned)io->inflight);
    rt->stats.writes++;
    int rc = uv_write(&io->req, (uv_stream_t *)&conn->tcp, &ub, 1, on_write);
    if (rc < 0) {
        io->writing = 0;
        io->inflight = 0;
        b->len = 0;
        io_error(conn, "write failed", rc);
    }
}

void gmud_conn_want_drain(gmud_conn *conn)
{
    if (conn->state != CONN_OPEN)
        return;
    conn->flags |= CONN_WANT_DRAIN;
    /* Through the check phase even when the queue is empty now: on_drain is
     * never called from inside this call. */
    mark_dirty(conn);
}

static int closing_error(gmud_conn *conn, gmud_error *err)
{
    return gmud_error_set(err, GMUD_ERR_CLOSED, 0, "connection %llu (%s) is closing",
                          (unsigned long long)conn->id, conn->peer);
}

static int ensure_io(gmud_conn *conn, gmud_error *err)
{
    if (conn->io == NULL && (conn->io = calloc(1, sizeof *conn->io)) == NULL)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for output buffers");
    return GMUD_OK;
}

/* Refuses n more bytes if they would take the queue over the bound; the
 * connection is then closed at once, without delaying anyone else. */
static int slow_consumer(gmud_conn *conn, size_t q, size_t n, gmud_error *err);

static inline int check_queue(gmud_conn *conn, size_t n, gmud_error *err)
{
    size_t q = queued(conn);
    size_t max = conn->rt->limits.max_queued;
    if (n <= max && q <= max - n)
        return GMUD_OK;
    return slow_consumer(conn, q, n, err);
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

int conn_append(gmud_conn *conn, const uint8_t *bytes, size_t n, gmud_error *err)
{
    if (conn->state != CONN_OPEN && conn->state != CONN_CONNECTING)
        return closing_error(conn, err);
    int rc = check_queue(conn, n, err);
    if (rc == GMUD_OK)
        rc = ensure_io(conn, err);
    if (rc != GMUD_OK)
        return rc;
    if (buf_append(&conn->io->out[conn->io->pending], bytes, n) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory queueing %zu bytes", n);
    conn->rt->stats.messages_out++;
    mark_dirty(conn);
    backpressure(conn);
    return GMUD_OK;
}

/* Encodes prefix + data as one frame onto conn's output. */
static int send_payload(gmud_conn *conn, const void *prefix, size_t plen, const void *data,
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
    byte_buf *b = &conn->io->out[conn->io->pending];
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
    conn->rt->stats.messages_out++;
    mark_dirty(conn);
    backpressure(conn);
    return GMUD_OK;
}

/* Mode on: the session header, then data; the sequence is spent only if
 * the packet is queued, so the peer never sees a gap. */
static int send_on(gmud_conn *conn, const void *data, size_t len, gmud_error *err)
{
    if (conn->state != CONN_OPEN && conn->state != CONN_CONNECTING)
        return closing_error(conn, err);
    if (conn->sess.id == 0)
        return gmud_error_set(err, GMUD_ERR_NOT_WELCOMED, 0,
                              "no session yet: send once on_connect has run");
    if (conn->sess.send_seq == GMUD_SEQ_EXHAUSTED)
        return gmud_error_set(err, GMUD_ERR_SEQ_EXHAUSTED, 0,
                              "no sequence numbers left to send with");
    uint8_t hdr[GMUD_SESSION_HEADER_SIZE];
    gmud_session_header_put(hdr, conn->sess.id, conn->sess.send_seq);
    int rc = send_payload(conn, hdr, sizeof hdr, data, len, err);
    if (rc == GMUD_OK)
        conn->sess.send_seq++;
    return rc;
}

/* Mode lecture: the server's packets go out unchanged and are counted (the
 * client's replies count them too); the client only replies. */
static int send_lecture(gmud_conn *conn, const void *data, size_t len, gmud_error *err)
{
    if (conn->rt->server == NULL)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "in lecture mode the client only replies (the library does)");
    int rc = send_payload(conn, NULL, 0, data, len, err);
    if (rc == GMUD_OK && conn->sess.send_seq != GMUD_SEQ_EXHAUSTED)
        conn->sess.send_seq++;
    return rc;
}

static int send_frame(gmud_conn *conn, const void *data, size_t len, gmud_error *err)
{
    switch (conn->rt->session.mode) {
    case GMUD_SESSION_ON:
        return send_on(conn, data, len, err);
    case GMUD_SESSION_LECTURE:
        return send_lecture(conn, data, len, err);
    default:
        return send_payload(conn, NULL, 0, data, len, err);
    }
}

int gmud_conn_send(gmud_conn *conn, const void *data, size_t len, gmud_error *err)
{
    return send_frame(conn, data, len, err);
}

int conn_welcome(gmud_conn *conn, gmud_error *err)
{
    uint64_t id;
    int rc = gmud_session_new_id(&id, err);
    if (rc != GMUD_OK)
        return rc;
    uint8_t text[64];
    ptrdiff_t n = gmud_session_lecture_welcome(id, text, sizeof text, err);
    if (n < 0)
        return (int)n;
    rc = send_payload(conn, NULL, 0, text, (size_t)n, err);
    if (rc != GMUD_OK)
        return rc;
    if (conn->rt->session.mode == GMUD_SESSION_ON)
        gmud_session_start_on_server(&conn->sess, id);
    else
        gmud_session_start_lecture(&conn->sess, id);
    return GMUD_OK;
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

int gmud_conn_send_json(gmud_conn *conn, const json_t *v, gmud_error *err)
{
    ptrdiff_t n = rt_dump_json(conn->rt, v, err);
    if (n < 0)
        return (int)n;
    return send_frame(conn, conn->rt->scratch.data, (size_t)n, err);
}

/* Error text may quote the peer's bytes (jansson's "near '...'"): keep it
 * printable ASCII so it is valid UTF-8 and holds no line delimiter. */
static void printable(char *out, size_t cap, const char *in)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < cap; i++)
        out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
    out[i] = '\0';
}

/* An error packet goes out as the connection's next frame; but before a
 * session exists (a server refusing a connection in place of the welcome, a
 * client refusing a bad first packet) there is no header to give it, and it
 * goes out bare, as PROTOCOL.md 6.5 and 7.2 show it. Without this the
 * session layer refused to send it and the peer saw only the close. */
static int send_error_frame(gmud_conn *conn, const void *data, size_t len, gmud_error *err)
{
    if (conn->rt->session.mode != GMUD_SESSION_OFF && conn->sess.id == 0)
        return send_payload(conn, NULL, 0, data, len, err);
    return send_frame(conn, data, len, err);
}

static void send_error_json(gmud_conn *conn, const char *code, const char *text, size_t max)
{
    /* Cut the sentence until the whole object fits: escapes may lengthen
     * it, so measure rather than guess. The code is never cut. */
    size_t room = strlen(text);
    for (int tries = 0; tries < 4; tries++) {
        char cut[256];
        snprintf(cut, sizeof cut, "%.*s", (int)room, text);
        json_t *v = json_pack("{s:s, s:s}", "error", cut, "code", code);
        size_t size = v ? json_dumpb(v, NULL, 0, JSON_COMPACT) : 0;
        gmud_error e;
        ptrdiff_t n = size > 0 && size <= max ? rt_dump_json(conn->rt, v, &e) : -1;
        if (n >= 0 && send_error_frame(conn, conn->rt->scratch.data, (size_t)n, &e) != GMUD_OK)
            rt_logf(conn->rt, GMUD_LOG_DEBUG, conn->peer, "error",
                        "error packet %s not sent: %s", code, e.message);
        json_decref(v);
        if (size == 0 || size <= max || size - max > room)
            return;
        room -= size - max;
    }
}

void conn_send_error(gmud_conn *conn, const char *code, const char *message)
{
    rt_ctx *rt = conn->rt;
    /* A small maximum message (or fixed packet) may not hold the whole
     * sentence: the message is cut to what fits. */
    size_t max = gmud_conn_max_payload(conn);
    char clean[200];
    printable(clean, sizeof clean, message);
    if (rt->payload == GMUD_PAYLOAD_JSON) {
        send_error_json(conn, code, clean, max);
        return;
    }
    char text[256];
    int n = snprintf(text, sizeof text, "error %s: %s", code, clean);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    send_error_frame(conn, text, len < max ? len : max, NULL);
}

/* ---- Reading ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    gmud_conn *conn = handle->data;
    rt_readbuf *rb = conn->rt->readbuf;
    if (rb->busy) { /* not on Unix; libuv then reports UV_ENOBUFS */
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    rb->busy = 1;
    *buf = uv_buf_init((char *)rb->data, GMUD_READ_BUFFER_SIZE);
}

static void count_reject(rt_ctx *rt, int code)
{
    rt->stats.rejects[-code > 0 && -code < GMUD_STATS_CODES ? -code : 0]++;
}

static void reject_payload(gmud_conn *conn, const gmud_error *e)
{
    rt_ctx *rt = conn->rt;
    count_reject(rt, e->code);
    rt_logf(rt, GMUD_LOG_WARN, conn->peer, "reject", "bad payload (%s): %s",
                gmud_err_name(e->code), e->message);
    conn_send_error(conn, gmud_err_name(e->code), e->message);
    if (++conn->bad_messages >= rt->limits.max_bad_messages)
        conn_close_soft(conn, GMUD_CLOSE_BAD_MESSAGES, e, rt->limits.linger_ms);
}

static void reject_framing(gmud_conn *conn, const gmud_error *e)
{
    rt_ctx *rt = conn->rt;
    count_reject(rt, e->code);
    rt_logf(rt, GMUD_LOG_WARN, conn->peer, "reject", "framing error (%s): %s",
                gmud_err_name(e->code), e->message);
    conn_send_error(conn, gmud_err_name(e->code), e->message);
    conn_close_soft(conn, GMUD_CLOSE_PROTOCOL, e, rt->limits.linger_ms);
}

/* ---- Sessions and spam limits on receipt ------------------------------ */

/* A packet failed a session check: security event, then (unless the
 * lecture's carry-on is asked for) error packet and close. */
static void session_reject(gmud_conn *conn, const gmud_error *e)
{
    rt_ctx *rt = conn->rt;
    rt->stats.security++;
    count_reject(rt, e->code);
    rt_logf(rt, GMUD_LOG_WARN, conn->peer, "security", "%s: connection %llu, session %llu: %s",
                gmud_err_name(e->code), (unsigned long long)conn->id,
                (unsigned long long)conn->sess.id, e->message);
    if (rt->cb.on_reject != NULL)
        rt->cb.on_reject(conn, e, rt->cb.user);
    if (rt->session.carry_on && rt->session.mode == GMUD_SESSION_LECTURE && rt->server != NULL)
        return;
    conn_send_error(conn, gmud_err_name(e->code), e->message);
    conn_close_soft(conn, GMUD_CLOSE_SESSION, e, rt->limits.linger_ms);
}

/* Client: an error packet in place of the welcome (server full, address
 * limit) is the server's refusal, not an attack: reported with its code. */
static int refused_by_server(gmud_conn *conn, const json_t *json)
{
    gmud_error e;
    if (gmud_session_refusal(json, &e) == GMUD_OK)
        return 0;
    rt_logf(conn->rt, GMUD_LOG_WARN, conn->peer, "session", "%s", e.message);
    conn_close_soft(conn, GMUD_CLOSE_PROTOCOL, &e, conn->rt->limits.linger_ms);
    return 1;
}

/* Client: the first packet must be the welcome; then the application hears
 * of the connection. */
static void take_welcome(gmud_conn *conn, gmud_slice msg)
{
    rt_ctx *rt = conn->rt;
    if (rt->frame.framing == GMUD_FRAMING_FIXED)
        msg = gmud_frame_trim_padding(msg);
    json_t *json = NULL;
    gmud_error e;
    int rc = gmud_json_parse(msg.data, msg.len, &rt->json, &json, &e);
    if (rc == GMUD_OK && refused_by_server(conn, json)) {
        json_decref(json);
        return;
    }
    if (rc == GMUD_OK)
        rc = gmud_session_welcomed(&conn->sess, rt->session.mode, json, &e);
    json_decref(json);
    if (rc != GMUD_OK) {
        gmud_error w;
        gmud_error_set(&w, GMUD_ERR_NOT_WELCOMED, 0, "the first packet is not a welcome (%s)",
                       e.message);
        session_reject(conn, &w);
        return;
    }
    rt_logf(rt, GMUD_LOG_INFO, conn->peer, "session", "welcomed: session %llu, %s mode",
                (unsigned long long)conn->sess.id, gmud_session_mode_name(rt->session.mode));
    conn->flags &= (uint16_t)~CONN_AWAIT_WELCOME;
    announce_conn(conn);
}

/* Mode on: checks and strips the session header. 1 if msg may go on. */
static int open_on(gmud_conn *conn, gmud_slice *msg)
{
    /* Accepted (committed) before the payload is parsed: a packet that
     * passed the check is the peer's next one whatever it holds, and the
     * stream stays in step if its JSON is then refused. */
    if (!gmud_session_header_accept(&conn->sess, msg->data, msg->len)) {
        uint64_t seq = 0;
        gmud_error e;
        if (gmud_session_header_check(&conn->sess, msg->data, msg->len, &seq, &e) == GMUD_OK)
            gmud_error_set(&e, GMUD_ERR_INVALID, 0, "session check disagrees with itself");
        session_reject(conn, &e);
        return 0;
    }
    msg->data += GMUD_SESSION_HEADER_SIZE;
    msg->len -= GMUD_SESSION_HEADER_SIZE;
    return 1;
}

/* Mode lecture, server: the reply's fields against what was sent. */
static int check_reply(gmud_conn *conn, const json_t *json)
{
    gmud_session *sess = &conn->sess;
    gmud_error e;
    int rc = gmud_session_lecture_check(sess, json, &e);
    uint64_t sent = sess->send_seq - 1; /* data packets: the welcome was 0 */
    if (rc == GMUD_OK && sess->recv_seq > sent)
        rc = gmud_error_set(&e, GMUD_ERR_SKIPPED, 0,
                            "reply %llu, but only %llu data packets were sent",
                            (unsigned long long)sess->recv_seq, (unsigned long long)sent);
    if (rc == GMUD_OK) {
        gmud_session_commit_seq(sess, sess->recv_seq, NULL);
        return 1;
    }
    session_reject(conn, &e);
    /* Carrying on, as the lecture's server does: the next reply is expected
     * to answer the next packet. */
    if (conn->state == CONN_OPEN && sess->recv_seq < GMUD_SEQ_EXHAUSTED - 1)
        sess->recv_seq++;
    return 0;
}

/* Mode lecture, client: the reply to the data packet just delivered. */
static void send_reply(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    uint64_t seq;
    gmud_error e;
    if (conn->state != CONN_OPEN)
        return;
    ptrdiff_t n = gmud_session_next_send(&conn->sess, &seq, &e);
    if (n == GMUD_OK)
        n = gmud_session_lecture_reply(conn->sess.id, seq, rt->reply_text,
                                       strlen(rt->reply_text), rt->reply.data, rt->reply.cap,
                                       &e);
    if (n >= 0)
        n = send_payload(conn, NULL, 0, rt->reply.data, (size_t)n, &e);
    if (n < 0)
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "session", "cannot reply: %s", e.message);
}

/* A refused message: counted; a warning at most once a period; closed once
 * over the limit for long. */
static void rate_refused(gmud_conn *conn, uint64_t now)
{
    rt_ctx *rt = conn->rt;
    const gmud_limits *lim = &rt->limits;
    rt->stats.rate_dropped++;
    count_reject(rt, GMUD_ERR_RATE_LIMITED);
    /* A spammer's whole read is dropped frame by frame: keep this cheap (the
     * sentence was written once, at init), and stop reading from it until
     * the next sweep, so that it cannot keep the loop busy decoding what
     * will be dropped while honest connections wait. The kernel holds the
     * rest; TCP pushes back on the sender. */
    if (!(conn->flags & CONN_THROTTLED) && conn->state == CONN_OPEN) {
        conn->flags |= CONN_THROTTLED;
        stop_reading(conn);
    }
    int what = gmud_overlimit_refused(&conn->over, now);
    if (rt->cb.on_reject != NULL)
        rt->cb.on_reject(conn, &rt->rate_error, rt->cb.user);
    if (what & GMUD_OVERLIMIT_WARN) {
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "rate", "%s", rt->rate_error.message);
        conn_send_error(conn, gmud_err_name(GMUD_ERR_RATE_LIMITED), rt->rate_error.message);
    }
    if (what & GMUD_OVERLIMIT_CLOSE) {
        gmud_error e;
        gmud_error_set(&e, GMUD_ERR_RATE_LIMITED, 0, "over the rate limit for %llu ms",
                       (unsigned long long)gmud_overlimit_duration(&conn->over, now));
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "rate", "closing: %s", e.message);
        conn_close_soft(conn, GMUD_CLOSE_RATE_LIMITED, &e, lim->linger_ms);
    }
}

/* 1 if the connection's buckets pay for a message of len bytes. */
static int rate_allows(gmud_conn *conn, size_t len)
{
    const gmud_limits *lim = &conn->rt->limits;
    /* In lecture mode the server paces its client: one reply per packet it
     * sent, and a reply beyond those closes the connection. Dropping a
     * reply would only stall the exchange. */
    if ((lim->msg_rate == 0 && lim->byte_rate == 0) ||
        conn->rt->session.mode == GMUD_SESSION_LECTURE)
        return 1;
    uint64_t now = uv_now(conn->rt->loop);
    int ok;
    if (lim->msg_rate != 0 && lim->byte_rate != 0)
        ok = gmud_bucket_take_both(&conn->msg_bucket, 1, &conn->byte_bucket, len, now);
    else if (lim->msg_rate != 0)
        ok = gmud_bucket_take(&conn->msg_bucket, 1, now);
    else
        ok = gmud_bucket_take(&conn->byte_bucket, len, now);
    if (!ok)
        rate_refused(conn, now);
    return ok;
}

/* The one place a whole message goes to the application. In order: the
 * session check (cheap, and it must see every packet to stay in step), the
 * rate limits, the payload's parse, the application. */
static void deliver(gmud_conn *conn, gmud_slice msg)
{
    rt_ctx *rt = conn->rt;
    gmud_session_mode mode = rt->session.mode;
    if (mode != GMUD_SESSION_OFF && conn->sess.id == 0) {
        take_welcome(conn, msg);
        return;
    }
    if (mode == GMUD_SESSION_ON && !open_on(conn, &msg))
        return;
    if (rt->frame.framing == GMUD_FRAMING_FIXED)
        msg = gmud_frame_trim_padding(msg);
    if (!rate_allows(conn, msg.len))
        return;
    json_t *json = NULL;
    if (rt->payload == GMUD_PAYLOAD_JSON) {
        gmud_error e;
        if (gmud_json_parse(msg.data, msg.len, &rt->json, &json, &e) != GMUD_OK) {
            reject_payload(conn, &e);
            return;
        }
    }
    if (mode == GMUD_SESSION_LECTURE && rt->server != NULL && !check_reply(conn, json)) {
        json_decref(json);
        return;
    }
    rt->stats.messages_in++;
    if (rt->cb.on_message != NULL)
        rt->cb.on_message(conn, msg.data, msg.len, json, rt->cb.user);
    json_decref(json);
    if (mode == GMUD_SESSION_LECTURE && rt->server == NULL)
        send_reply(conn);
}

static void decode_all(gmud_conn *conn, const uint8_t *p, size_t n)
{
    int completed = 0;
    /* Raw framing: a read is a message, but a read may exceed the maximum
     * message (64 KiB against 65535 bytes); cut it rather than reject it. */
    size_t cut = conn->rt->frame.framing == GMUD_FRAMING_RAW ? conn->rt->frame.max_message
                                                              : SIZE_MAX;
    while (n > 0 && conn->state == CONN_OPEN) {
        gmud_slice msg;
        gmud_error e;
        ptrdiff_t used = gmud_frame_decode(conn->dec, p, n < cut ? n : cut, &msg, &e);
        if (used < 0) {
            reject_framing(conn, &e);
            return;
        }
        if (used == 0)
            break;
        p += used;
        n -= (size_t)used;
        completed = 1;
        deliver(conn, msg);
    }
    /* A frame that began in this read starts its own clock. */
    if (gmud_frame_decoder_pending(conn->dec) == 0)
        conn->frame_start = 0;
    else if (completed || conn->frame_start == 0)
        conn->frame_start = uv_now(conn->rt->loop);
}

static void on_eof(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    conn->flags |= CONN_EOF;
    stop_reading(conn);
    if (conn->state != CONN_OPEN) {
        /* Closing: once our FIN is out both ends are done; before that,
         * on_shutdown sees CONN_EOF and closes. */
        if (conn->flags & CONN_FIN_DONE)
            conn_close_now(conn, GMUD_CLOSE_PEER, NULL);
        return;
    }
    gmud_error e;
    if (gmud_frame_decoder_finish(conn->dec, &e) != GMUD_OK) {
        count_reject(rt, e.code);
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "reject", "truncated frame: %s", e.message);
        conn_close_now(conn, GMUD_CLOSE_PROTOCOL, &e);
        return;
    }
    /* The peer may only have shut down its side: what we queued still goes
     * out before we close. */
    conn_close_soft(conn, GMUD_CLOSE_PEER, NULL, rt->limits.linger_ms);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    gmud_conn *conn = stream->data;
    rt_ctx *rt = conn->rt;
    if (buf->base == (char *)rt->readbuf->data)
        rt->readbuf->busy = 0;
    if (nread == 0 || conn->state == CONN_CLOSED)
        return;
    if (nread == UV_EOF) {
        on_eof(conn);
        return;
    }
    if (nread < 0) {
        io_error(conn, "read failed", (int)nread);
        return;
    }
    rt->stats.bytes_in += (uint64_t)nread;
    if (conn->state != CONN_OPEN)
        return; /* closing: read only to see the peer's end of stream */
    conn->last_rx = uv_now(rt->loop);
    conn->flags |= CONN_ACTIVE;
    decode_all(conn, (const uint8_t *)buf->base, (size_t)nread);
}

/* ---- The sweep -------------------------------------------------------- */

static void sweep_one(gmud_conn *conn, uint64_t now)
{
    rt_ctx *rt = conn->rt;
    const gmud_limits *lim = &rt->limits;
    if (conn->state == CONN_CLOSING) {
        if (now >= conn->deadline)
            conn_close_now(conn, GMUD_CLOSE_IO, NULL); /* keeps its reason */
        return;
    }
    if (conn->state == CONN_CONNECTING) {
        if (conn->deadline != 0 && now >= conn->deadline) {
            gmud_error e;
            gmud_error_set(&e, GMUD_ERR_TIMEOUT, 0, "connect to %s timed out", conn->peer);
            conn_close_now(conn, GMUD_CLOSE_CONNECT_FAILED, &e);
        }
        return;
    }
    if ((conn->flags & CONN_AWAIT_WELCOME) && now >= conn->deadline) {
        gmud_error e;
        uint32_t wait = rt->session.welcome_timeout_ms;
        gmud_error_set(&e, GMUD_ERR_NOT_WELCOMED, 0,
                       "no welcome within %u ms: does the server run sessions (%s mode)?",
                       (unsigned)(wait ? wait : GMUD_WELCOME_TIMEOUT_MS_DEFAULT),
                       gmud_session_mode_name(rt->session.mode));
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "session", "%s", e.message);
        conn_close_now(conn, GMUD_CLOSE_SESSION, &e);
        return;
    }
    if (conn->flags & CONN_THROTTLED) {
        /* Over its rate at the last read: reading resumes now, its clocks
         * restarted (we stopped reading, not the peer). */
        conn->flags &= (uint16_t)~CONN_THROTTLED;
        if (conn->frame_start != 0)
            conn->frame_start = now;
        conn->last_rx = now;
        if (!(conn->flags & CONN_PAUSED))
            start_reading(conn);
        return;
    }
    if (conn->flags & CONN_PAUSED) {
        /* We stopped reading, not the peer: its clocks restart on resume. */
        if (conn->frame_start != 0)
            conn->frame_start = now;
        conn->last_rx = now;
        return;
    }
    if (conn->frame_start != 0 && now - conn->frame_start >= lim->frame_timeout_ms) {
        gmud_error e;
        gmud_error_set(&e, GMUD_ERR_TRUNCATED, 0,
                       "%zu bytes of a frame and no more for %llu ms (limit %u ms)",
                       gmud_frame_decoder_pending(conn->dec),
                       (unsigned long long)(now - conn->frame_start), lim->frame_timeout_ms);
        rt->stats.rejects[-GMUD_ERR_TRUNCATED]++;
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "reject", "frame timeout: %s", e.message);
        conn_close_now(conn, GMUD_CLOSE_FRAME_TIMEOUT, &e);
        return;
    }
    if (lim->idle_timeout_ms != 0 && now - conn->last_rx >= lim->idle_timeout_ms) {
        rt_logf(rt, GMUD_LOG_INFO, conn->peer, "timeout", "nothing received for %u ms",
                    lim->idle_timeout_ms);
        conn_close_soft(conn, GMUD_CLOSE_IDLE_TIMEOUT, NULL, lim->linger_ms);
        return;
    }
    /* Idle since the last sweep: give back the buffers. */
    if (!(conn->flags & CONN_ACTIVE) && queued(conn) == 0 &&
        (conn->io == NULL || !conn->io->writing)) {
        gmud_frame_decoder_shrink(conn->dec);
        free_io(conn);
    }
    conn->flags &= (uint16_t)~CONN_ACTIVE;
}

static void on_sweep(uv_timer_t *timer)
{
    rt_ctx *rt = timer->data;
    uint64_t now = uv_now(rt->loop);
    /* Closing only calls uv_close; connections leave the list later, in
     * on_closed, so walking it here is safe. */
    for (gmud_conn *c = rt->conns; c != NULL; c = c->next) {
        if (c->state != CONN_CLOSED)
            sweep_one(c, now);
    }
}

/* ---- The rt ----------------------------------------------------------- */

int rt_init(rt_ctx *rt, uv_loop_t *loop, gmud_error *err)
{
    int rc = gmud_frame_config_check(&rt->frame, err);
    if (rc == GMUD_OK)
        rc = gmud_limits_check(&rt->limits, err);
    if (rc != GMUD_OK)
        return rc;
    if (rt->payload != GMUD_PAYLOAD_TEXT && rt->payload != GMUD_PAYLOAD_JSON)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "unknown payload %d", (int)rt->payload);
    rc = rt_session_init(rt, err);
    if (rc != GMUD_OK)
        return rc;
    const gmud_limits *lim = &rt->limits;
    gmud_error_set(&rt->rate_error, GMUD_ERR_RATE_LIMITED, 0,
                   "over the rate limit (%u messages/s burst %u, %u bytes/s burst %u): "
                   "messages are dropped",
                   (unsigned)lim->msg_rate, (unsigned)lim->msg_burst, (unsigned)lim->byte_rate,
                   (unsigned)lim->byte_burst);
    rt->readbuf = readbuf_take(loop);
    if (rt->readbuf == NULL) {
        free(rt->reply_text);
        buf_free(&rt->reply);
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for the read buffer");
    }
    rt->loop = loop;
    uv_check_init(loop, &rt->check);
    uv_idle_init(loop, &rt->idle);
    uv_timer_init(loop, &rt->sweep);
    rt->check.data = rt;
    rt->idle.data = rt;
    rt->sweep.data = rt;
    rt->handles_open = 3;
    uv_timer_start(&rt->sweep, on_sweep, rt->limits.sweep_ms, rt->limits.sweep_ms);
    /* The sweep alone must not keep the loop alive. */
    uv_unref((uv_handle_t *)&rt->sweep);
    return GMUD_OK;
}

/* The largest welcome: {"session_id": 9007199254740991, "sequence_id": 0}. */
enum { WELCOME_MAX = 50 };

static int session_framing_check(const rt_ctx *rt, gmud_error *err)
{
    const gmud_frame_config *f = &rt->frame;
    gmud_session_mode mode = rt->session.mode;
    size_t room = f->framing == GMUD_FRAMING_FIXED ? f->fixed_size : f->max_message;
    if (mode == GMUD_SESSION_ON && f->framing != GMUD_FRAMING_LENGTH &&
        f->framing != GMUD_FRAMING_GMUD && f->framing != GMUD_FRAMING_FIXED)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "session mode on needs length, gmud or fixed framing, not %s",
                              gmud_framing_name(f->framing));
    if (mode == GMUD_SESSION_LECTURE &&
        (rt->payload != GMUD_PAYLOAD_JSON || f->framing == GMUD_FRAMING_RAW))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "session mode lecture needs json payload and a framing other "
                              "than raw");
    if (room < WELCOME_MAX)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "sessions need messages of at least %d bytes (the welcome), "
                              "not %zu",
                              (int)WELCOME_MAX, room);
    return GMUD_OK;
}

/* Client, lecture mode: copies the reply data and makes room for the
 * longest reply; refuses data that is not UTF-8 or would not fit. */
static int take_reply_data(rt_ctx *rt, const char *data, gmud_error *err)
{
    const gmud_frame_config *f = &rt->frame;
    size_t room = f->framing == GMUD_FRAMING_FIXED ? f->fixed_size : f->max_message;
    size_t len = strlen(data);
    if (len > room)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "reply data of %zu bytes cannot fit a %zu-byte message", len,
                              room);
    rt->reply_text = strdup(data);
    if (rt->reply_text == NULL || buf_reserve(&rt->reply, 6 * len + 80) != 0) {
        free(rt->reply_text);
        rt->reply_text = NULL;
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for the reply data");
    }
    /* The longest reply this session can write: the largest id and
     * sequence. */
    ptrdiff_t n = gmud_session_lecture_reply(GMUD_SESSION_ID_MAX, GMUD_SEQ_EXHAUSTED - 1, data,
                                             len, rt->reply.data, rt->reply.cap, err);
    int rc = n < 0 ? (int)n : GMUD_OK;
    if (rc == GMUD_OK && (size_t)n > room)
        rc = gmud_error_set(err, GMUD_ERR_INVALID, 0,
                            "a reply carrying this data takes %td bytes, over the %zu-byte "
                            "message",
                            n, room);
    if (rc != GMUD_OK) {
        free(rt->reply_text);
        rt->reply_text = NULL;
        buf_free(&rt->reply);
        if (err != NULL && err->code != GMUD_ERR_INVALID)
            gmud_error_set(err, GMUD_ERR_INVALID, 0, "bad reply data: %s", err->message);
        return GMUD_ERR_INVALID;
    }
    return GMUD_OK;
}

int rt_session_init(rt_ctx *rt, gmud_error *err)
{
    gmud_session_mode mode = rt->session.mode;
    const char *data = rt->session.reply_data ? rt->session.reply_data : GMUD_SESSION_LECTURE_DATA;
    rt->session.reply_data = NULL; /* the caller's pointer; reply_text is the copy */
    if (mode == GMUD_SESSION_OFF)
        return GMUD_OK;
    if (mode != GMUD_SESSION_ON && mode != GMUD_SESSION_LECTURE)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "unknown session mode %d", (int)mode);
    int rc = session_framing_check(rt, err);
    if (rc != GMUD_OK || mode != GMUD_SESSION_LECTURE || rt->server != NULL)
        return rc;
    rc = take_reply_data(rt, data, err);
    rt->session.reply_data = rt->reply_text;
    return rc;
}

/* Frees the rt's memory (and its owner) once it is closing and every
 * handle, connections included, has had its close callback. */
static void rt_maybe_free(rt_ctx *rt)
{
    if (!rt->closing || rt->handles_open > 0 || rt->conns != NULL)
        return;
    readbuf_give(rt->readbuf);
    free(rt->reply_text);
    buf_free(&rt->reply);
    buf_free(&rt->scratch);
    buf_free(&rt->frames);
    rt->free_owner(rt);
}

void rt_handle_closed(uv_handle_t *handle)
{
    rt_ctx *rt = handle->data;
    rt->handles_open--;
    rt_maybe_free(rt);
}

void rt_close(rt_ctx *rt)
{
    rt->conn_gone = NULL;
    rt->closing = 1;
    for (gmud_conn *c = rt->conns; c != NULL; c = c->next) {
        c->flags &= (uint16_t)~CONN_NOTIFY;
        conn_close_now(c, GMUD_CLOSE_SHUTDOWN, NULL);
    }
    uv_close((uv_handle_t *)&rt->check, rt_handle_closed);
    uv_close((uv_handle_t *)&rt->idle, rt_handle_closed);
    uv_close((uv_handle_t *)&rt->sweep, rt_handle_closed);
}
