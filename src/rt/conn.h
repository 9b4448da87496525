/* Internal: the runtime shared by the server and the client.
 *
 * A rt_ctx is what one server (or one client) owns on a loop: the config,
 * the shared read buffer, the list of connections, the dirty list flushed by
 * one uv_check handle, and the one sweep timer checking every timeout.
 * The runtime is split by mechanism, one concern a file:
 *   conn.c     a connection's lifecycle and the close state machine
 *   read.c     the read path: shared buffer, decoder, delivery
 *   write.c    the write path: queue, coalescing, backpressure, sends
 *   sweep.c    the one timer for every timeout
 *   rt.c       the rt's handles, its log, its end
 *   readbuf.c  the read buffer shared by every rt on a loop
 *   drive.c    carries out the protocol engine's decisions (src/core/
 *              endpoint.c: sessions, rates, error packets, config checks)
 *   config.c   the configs' defaults, and the checks of gmud_limits
 *   resolve.c  getaddrinfo, for the server, the client and gmud_sync
 *   budget.c   the server's buffer budget: what all connections hold
 *              together, and the largest holders closed past it
 *   shape.c    rate shaping: input the buckets cannot pay for yet held,
 *              reading stopped, and presented again on a timer
 * server.c and client.c only accept or connect and hand connections on;
 * sync.c is the blocking client, on plain sockets. */
#ifndef GMUD_CONN_H
#define GMUD_CONN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "endpoint.h"
#include "seam.h"
#include "gmud/server.h"

typedef struct rt_ctx rt_ctx;
typedef struct rt_readbuf rt_readbuf; /* readbuf.c: one per loop */

struct rt_ctx {
    uv_loop_t *loop;
    gmud_frame_config frame;
    gmud_payload payload;
    gmud_json_limits json;
    gmud_limits limits;
    gmud_session_config session; /* as given; the engine's copy is ep */
    gmud_callbacks cb;
    gmud_log_fn log;
    void *log_user;
    gmud_log_level log_level;
    gmud_stats stats;

    gmud_server *server;    /* NULL for a client */
    gmud_iplimit *addr_limit; /* server: per-address limits; NULL if off */
    void *owner;            /* the server or client embedding this rt */
    /* Called after a connection has been freed (its on_close done). */
    void (*conn_gone)(rt_ctx *rt);
    /* Client: connect conn's fresh handle to the next address. */
    void (*reopen)(gmud_conn *conn);
    /* Called once every handle of the rt is closed, to free the owner. */
    void (*free_owner)(rt_ctx *rt);

    uv_check_t check;       /* flushes the dirty list after each turn's I/O */
    uv_idle_t idle;         /* keeps poll from blocking while dirty */
    uv_timer_t sweep;       /* timeouts, lingering closes, shrinking */
    int handles_open;       /* of check, idle, sweep (and the owner's) */
    int closing;            /* rt_close called */
    int flushing_armed;

    rt_readbuf *readbuf;  /* shared by every rt on this loop */
    byte_buf scratch;       /* JSON text being serialised */
    byte_buf frames;        /* a frame encoded once for a broadcast */
    ep_config ep;           /* the protocol engine's rules, one for all conns */
    seam_factory seams;     /* makes each connection's seam; create NULL: none */
    struct tls_ctx_owned *tls; /* with TLS: what seams.arg points into */
    size_t handshaking;     /* connections whose seam is not ready yet */
    uint32_t hs_timeout_ms; /* a handshake's deadline; GMUD_OFF: none */
    uint32_t hs_max;        /* server: handshakes at once; 0: unbounded */
    byte_buf seam_plain;    /* with seams: one read's plaintext */
    byte_buf shape_spare;   /* shape.c: a held-input buffer between uses */

    gmud_conn *conns;       /* all connections, newest first */
    gmud_conn *dirty;       /* connections with output to flush */
    uint64_t next_id;
    size_t open;            /* connections handed to the application */
    size_t refusing;        /* refused connections still closing */
    uint64_t budget_trip;   /* stats.buffered_total over this runs a budget
                               pass (budget.c); UINT64_MAX: no budget */
};

enum gmud_conn_state {
    CONN_CONNECTING,        /* client: waiting for connect */
    CONN_OPEN,
    CONN_CLOSING,           /* flushing, then FIN, then waiting for the peer's */
    CONN_CLOSED             /* uv_close called; freed in its callback */
};

/* Output: two buffers, sends append to out[pending] while out[!pending] is
 * in flight; taken only while a connection is busy and given back when it
 * has been idle for a sweep period. */
typedef struct conn_io {
    uv_write_t req;
    uv_shutdown_t shut;
    byte_buf out[2];
    byte_buf plain;         /* with a seam: frames queued this turn, not yet
                               through it (write.c seals them at flush) */
    size_t inflight;        /* bytes of out[!pending] handed to uv_write */
    uint8_t pending;
    uint8_t writing;
} conn_io;

struct gmud_conn {
    uv_tcp_t tcp;           /* tcp.data == this */
    rt_ctx *rt;
    gmud_conn *prev, *next; /* rt->conns */
    gmud_conn *dirty_next;
    gmud_frame_decoder *dec;
    conn_io *io;
    gmud_error *detail;     /* why it closed, when there is a detail */
    endpoint ep;            /* the protocol engine's state: session, rates */
    seam *seam;             /* between socket and framing; NULL: plain TCP */
    struct conn_shape *shape; /* shape.c: taken at its first hold, kept to the close */
    struct conn_proxy *proxy; /* proxy.c: while a PROXY header is awaited; else NULL */
    struct sockaddr_in6 addr; /* server: the peer, for the per-address count
                                 (an IPv4 peer is stored as sockaddr_in) */
    void *data;
    uint64_t id;
    uint64_t frame_start;   /* loop ms when the pending partial frame began; 0 none */
    uint64_t last_rx;       /* loop ms of the last input */
    uint64_t last_tx;       /* loop ms the queue last moved (or began); the
                               send timeout counts from it */
    uint64_t opened;        /* loop ms it was accepted or began to connect */
    uint64_t bytes_in;      /* its share of the stats, for its close line */
    uint64_t bytes_out;
    uint32_t msgs_in;
    uint32_t msgs_out;
    uint64_t deadline;      /* CLOSING/CONNECTING: loop ms after which to close
                               hard; OPEN with a seam not ready: the
                               handshake's (0: none) */
    uint8_t state;
    uint8_t reason;
    uint16_t flags;
    uint32_t held;          /* bytes counted for conn in stats.buffered_total
                               (budget.c; in what was padding: no cost) */
    char peer[56];
};

enum gmud_conn_flags {
    CONN_DIRTY = 1 << 0,     /* on rt->dirty */
    CONN_READING = 1 << 1,   /* uv_read_start in effect */
    CONN_PAUSED = 1 << 2,    /* reading stopped for backpressure */
    CONN_ACTIVE = 1 << 3,    /* did I/O since the last sweep */
    CONN_NOTIFY = 1 << 4,    /* on_close is owed to the application */
    CONN_COUNTED = 1 << 5,   /* counted in rt->open and stats.active */
    CONN_EOF = 1 << 6,       /* the peer's end of stream has arrived */
    CONN_FIN = 1 << 7,       /* our shutdown (FIN) has been requested */
    CONN_REJECTED = 1 << 8,  /* refused at accept (server full) */
    CONN_FIN_DONE = 1 << 9,  /* our shutdown has completed */
    CONN_RETRY = 1 << 10,    /* closing only to connect again (client) */
    CONN_PEER_DETAIL = 1 << 11,  /* detail holds the peer's own error packet */
    CONN_ADDR_COUNTED = 1 << 12, /* counted by rt->addr_limit until closed */
    CONN_THROTTLED = 1 << 13,    /* over its rate: not read until the next sweep */
    CONN_WANT_DRAIN = 1 << 14,   /* on_drain is owed once the queue is empty */
    CONN_HELD = 1 << 15          /* shaping: input held for the rates, not read
                                    until its timer (shape.c) */
};

/* Copies the settings gmud_server_config and gmud_client_config share
 * (their gmud_conn_config) into rt. */
void rt_take_config(rt_ctx *rt, const gmud_conn_config *cfg);

/* Initialises rt's handles on loop (cfg fields must be filled first).
 * 0 or GMUD_ERR_NOMEM/GMUD_ERR_INVALID with err filled. */
int rt_init(rt_ctx *rt, uv_loop_t *loop, gmud_error *err);

/* Closes rt's handles and every connection without callbacks; when the last
 * handle is closed rt->free_owner(rt) runs. */
void rt_close(rt_ctx *rt);

/* Read buffers (one per loop) not yet given back: 0 once every server and
 * client has been destroyed and its loop run to the end. For tests. */
size_t rt_readbufs_live(void);

/* Close callback for the rt's (and the owner's) handles: counts down
 * handles_open; handle->data must be the rt. */
void rt_handle_closed(uv_handle_t *handle);

/* Raises one log event if level is enabled. */
void rt_logf(rt_ctx *rt, gmud_log_level level, const char *peer, const char *event,
             const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* The same, with the event's details as fields (gmud_log_event.fields). */
void rt_logf_fields(rt_ctx *rt, gmud_log_level level, const char *peer, const char *event,
                    const gmud_log_field *fields, size_t nfields, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;

/* A new connection (uv_tcp_init done, on rt->conns, not yet reading).
 * NULL on no memory. */
gmud_conn *conn_new(rt_ctx *rt, gmud_error *err);

/* Fills conn->peer from the socket's peer address (or from addr if given). */
void conn_set_peer(gmud_conn *conn, const struct sockaddr *addr);

/* The connection is up: TCP_NODELAY, start reading, flush anything queued,
 * count it and call on_connect (if announce). */
void conn_start(gmud_conn *conn, int announce);

/* Appends already-encoded frames; enforces max_queued and backpressure. */
int conn_append(gmud_conn *conn, const uint8_t *bytes, size_t n, gmud_error *err);

/* drive.c: server, session modes: draws conn's session id and queues the
 * welcome, before conn_start. 0, or an error (the caller closes conn). */
int conn_welcome(gmud_conn *conn, gmud_error *err);

/* drive.c: the engine's rules from rt's config, checked (the framings a
 * session mode can use, the reply data, ...). 0 or GMUD_ERR_INVALID /
 * GMUD_ERR_NOMEM. */
int rt_engine_init(rt_ctx *rt, gmud_error *err);

/* drive.c: carries out what the engine decided about conn: counts and
 * logs a refusal (on_reject), queues its packet, announces a welcomed
 * client, delivers the message, throttles, closes. */
void conn_act(gmud_conn *conn, ep_result *r);

/* conn.c: the peer's error packet, kept as the detail its close will be
 * reported with (a local reason found later replaces it). */
void conn_peer_said(gmud_conn *conn, const gmud_error *e);

/* The message of r to the application (then its JSON is let go). Inline:
 * read.c calls it itself for the common decision, "deliver" alone. */
static inline void conn_deliver(gmud_conn *conn, ep_result *r)
{
    rt_ctx *rt = conn->rt;
    rt->stats.messages_in++;
    conn->msgs_in++;
    if (rt->cb.on_message != NULL)
        rt->cb.on_message(conn, r->msg.data, r->msg.len, r->json, rt->cb.user);
    json_decref(r->json);
}

/* Sends an error packet: {"error": message, "code": code} with json
 * payload, "error <code>: <message>" as text. Best effort. */
void conn_send_error(gmud_conn *conn, const char *code, const char *message);

/* Graceful close: flush (bounded by deadline_ms from now), FIN, wait for
 * the peer's end of stream, close. detail may be NULL. */
void conn_close_soft(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                     uint64_t deadline_ms);

/* A connect failed and another address is left: closes the socket and,
 * once closed, re-initialises it and calls rt->reopen(conn). The
 * connection (its queued output, its user data) carries on. */
void conn_retry(gmud_conn *conn);

/* Immediate close: queued output is dropped. Keeps an earlier reason. */
void conn_close_now(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail);

/* Serialises v into rt->scratch; returns its length or a negative code. */
ptrdiff_t rt_dump_json(rt_ctx *rt, const json_t *v, gmud_error *err);

/* ---- Between the runtime's files (conn.c, read.c, write.c, sweep.c,
 * rt.c, readbuf.c, drive.c) ------------------------------------------ */

/* Bytes queued on conn and not yet handed to the kernel (inline: the send
 * path asks on every message). */
static inline size_t conn_queued_bytes(const gmud_conn *conn)
{
    const conn_io *io = conn->io;
    return io ? io->out[io->pending].len + io->inflight + io->plain.len : 0;
}

/* conn now holds held bytes (queued output and partial input), and the
 * rt's total follows: the one place both change. Clamped to 32 bits, which
 * keeps the total exact (a connection adds and takes away the same count)
 * and conn no larger. Inline: the send path calls it on every message. */
static inline void conn_hold(gmud_conn *conn, size_t held)
{
    gmud_stats *st = &conn->rt->stats;
    uint32_t h = held < UINT32_MAX ? (uint32_t)held : UINT32_MAX;
    st->buffered_total = st->buffered_total - conn->held + h;
    conn->held = h;
    if (st->buffered_total > st->buffered_peak)
        st->buffered_peak = st->buffered_total;
}

/* budget.c: conn's count brought up to date (its queue, its decoder's
 * partial frame; nothing once closed: a hard close drops both); and the
 * pass that closes the largest holders, largest first, until the total is
 * under 90% of the budget (two walks over the connections, once per tenth
 * of the budget filled). */
void conn_recount(gmud_conn *conn);
void rt_budget_pass(rt_ctx *rt);

/* After the total grew: a pass if it is over the trip (the budget; after a
 * pass that could not get under it, a tenth of the budget above that). */
static inline void rt_budget_check(rt_ctx *rt)
{
    if (rt->stats.buffered_total > rt->budget_trip)
        rt_budget_pass(rt);
}

/* conn.c: reading on and off (not while throttled and open); the
 * application hears of conn (counted, on_connect); the output buffers
 * given back; a closing connection with nothing left to write sends its
 * FIN. */
void conn_start_reading(gmud_conn *conn);
void conn_stop_reading(gmud_conn *conn);
void conn_announce(gmud_conn *conn);
void conn_free_io(gmud_conn *conn);
/* conn.c: gives back the empty output buffers over 64 KiB, and sweep.c
 * calls it on busy connections too: capacity a queue once needed is not
 * kept by a connection that keeps talking (the budget counts bytes held,
 * not capacity). */
void conn_trim_io(gmud_conn *conn);
void conn_finish_closing(gmud_conn *conn);

/* handshake.c: TLS made from the config (rt_tls_setup, before rt_init;
 * rt_tls_free when the rt goes). A connection's seam: attached from seams
 * (its listener's or the client's; NULL or none made: plain TCP; a
 * server's after its admission; 0 if refused for max_handshakes, conn closed),
 * started when the connection opens (0: failed, closed), failed (closed
 * as GMUD_CLOSE_TLS with e), ready (the queue goes out), gone (freed).
 * conn_handshake_late: the sweep's check of the deadline (1: closed).
 * conn_seam_close: our close_notify queued before the FIN (1: bytes to
 * write first). */
int rt_tls_setup(rt_ctx *rt, const gmud_tls_config *cfg, const char *host, gmud_error *err);
void rt_tls_free(rt_ctx *rt);
int conn_attach_seam(gmud_conn *conn, const seam_factory *seams);
int conn_seam_start(gmud_conn *conn);
void conn_seam_failed(gmud_conn *conn, const gmud_error *e);
void conn_seam_became_ready(gmud_conn *conn);
void conn_seam_gone(gmud_conn *conn);
int conn_handshake_late(gmud_conn *conn, uint64_t now);

/* proxy.c: a PROXY protocol listener's connection, before its header.
 *   conn_proxy_begin: conn (started, not announced) awaits its header
 *     until timeout_ms from now; l is its listener, handed back to
 *     server_admit. 0, or GMUD_ERR_NOMEM (the caller closes conn).
 *   conn_proxy_in: bytes read, p[0..n). Returns -1 while the header is not
 *     complete or was refused (conn is then closing); else the offset in p
 *     of the client's first byte, the header having been taken: conn's
 *     address is the carried one, and server_admit has run (it may have
 *     refused conn).
 *   conn_proxy_late: the sweep's deadline check (1: refused).
 *   conn_proxy_ended: the peer ended the stream before a whole header.
 *   conn_proxy_drop: frees what is held (at the close). */
struct listener;
int conn_proxy_begin(gmud_conn *conn, const struct listener *l, uint32_t timeout_ms);
ptrdiff_t conn_proxy_in(gmud_conn *conn, const uint8_t *p, size_t n);
int conn_proxy_late(gmud_conn *conn, uint64_t now);
void conn_proxy_ended(gmud_conn *conn);
void conn_proxy_drop(gmud_conn *conn);

/* server.c: a connection whose address is known (at accept, or from its
 * PROXY header): the per-address limits, max_connections, the seam, the
 * welcome, then on_connect. */
void server_admit(gmud_conn *conn, const struct listener *l);
int conn_seam_close(gmud_conn *conn);

/* read.c: libuv's allocation and read callbacks for every connection. */
void conn_on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf);
void conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* write.c: puts conn on the dirty list (flushed in the check phase);
 * writes what is queued now; closes conn for a socket error; encodes
 * prefix + data as one frame onto conn's output, and one frame as the
 * session mode wants it (header, counting). */
void conn_mark_dirty(gmud_conn *conn);
void conn_flush(gmud_conn *conn);
void conn_io_error(gmud_conn *conn, const char *what, int status);
int conn_send_payload(gmud_conn *conn, const void *prefix, size_t plen, const void *data,
                      size_t len, gmud_error *err);
int conn_send_frame(gmud_conn *conn, const void *data, size_t len, gmud_error *err);

/* write.c, for a seam's own bytes (a handshake's): the buffer they go on,
 * written as they are (NULL on no memory); then, once n bytes were added,
 * the queue bound and a flush (an error: conn is closed). */
byte_buf *conn_wire_buf(gmud_conn *conn, gmud_error *err);
int conn_wire_added(gmud_conn *conn, size_t n, gmud_error *err);

/* read.c: one whole frame to the engine and on, rest[0..n) being the input
 * after it; 1 if the engine held it for the rates (then frame and rest
 * were kept by conn_hold_input, and nothing more may be decoded now). And
 * input to decode and deliver, frame by frame. */
int conn_frame_in(gmud_conn *conn, gmud_slice frame, const uint8_t *rest, size_t n);
void conn_decode(gmud_conn *conn, const uint8_t *p, size_t n);

/* shape.c: keeps frame and rest[0..n) (copied), stops reading and presents
 * them again wait_ms from now (a failure to keep them closes conn); drops
 * what is held (a closing connection reads only for the end of stream);
 * the bytes held (counted in the budget); the shape's end with conn's; a
 * read's size for conn (smaller once it has been shaped, which bounds what
 * a hold copies); and what an idle sweep gives back. */
void conn_hold_input(gmud_conn *conn, gmud_slice frame, const uint8_t *rest, size_t n,
                     uint64_t wait_ms);
void conn_unhold(gmud_conn *conn);
size_t conn_held_input(const gmud_conn *conn);
void conn_shape_close(gmud_conn *conn);
size_t conn_read_size(const gmud_conn *conn);
void conn_shape_shrink(gmud_conn *conn);

/* rt.c: counts a refused input by its code; frees the rt once it is
 * closing and everything on it has closed. sweep.c: the sweep timer's
 * callback. */
void rt_count_reject(rt_ctx *rt, int code);
void rt_maybe_free(rt_ctx *rt);
void rt_on_sweep(uv_timer_t *timer);

/* readbuf.c: one 64 KiB read buffer per loop. busy is set while libuv
 * holds it (between the allocation and the read callback). */
struct rt_readbuf {
    struct rt_readbuf *next;
    const uv_loop_t *loop;
    size_t users;           /* rts on this loop */
    int busy;               /* handed to libuv, its read callback not yet run */
    uint8_t data[GMUD_READ_BUFFER_SIZE];
};

/* The loop's buffer, created for its first rt; NULL on no memory. */
rt_readbuf *rt_readbuf_take(const uv_loop_t *loop);
/* Gives back one rt's use; the last one frees the buffer. */
void rt_readbuf_give(rt_readbuf *rb);

#endif
