/* gmud/server.h: the libuv runtime: connections, the event-driven server,
 * and timers for applications.
 *
 * The runtime moves bytes between the sans-I/O core (gmud/frame.h,
 * gmud/json.h) and libuv; it never blocks the loop. Sends are coalesced:
 * everything queued on a connection during one loop turn leaves in one
 * write, after the turn's I/O callbacks and timers have run.
 *
 * Threads: a server, its connections and its timers belong to the thread
 * running their uv_loop_t. Call every function here from that thread (from
 * a callback, or before/after uv_run). Callbacks run on that thread.
 *
 * Lifetimes: a gmud_conn is owned by the library. It is valid from
 * on_connect until on_close returns; after that the pointer is dangling.
 * Every callback may call any function here, gmud_conn_close() and
 * gmud_server_shutdown() included; on_close is never called from inside
 * another call (closing is completed later in the loop).
 *
 * SIGPIPE: the application's to set. libuv writes with write(2), and on
 * Linux no socket option stops a write to a peer that has vanished from
 * raising SIGPIPE, whose default action ends the process. The library never
 * changes a process-wide signal disposition, so before the first server or
 * client writes, ignore the signal:
 *     signal(SIGPIPE, SIG_IGN);   (or a sigaction with SIG_IGN)
 * A failed write is then an error (EPIPE), and the connection closes as
 * GMUD_CLOSE_IO. gmud's programs do this at start. (gmud_sync sends with
 * MSG_NOSIGNAL and needs nothing.)
 */
#ifndef GMUD_SERVER_H
#define GMUD_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gmud/error.h"
#include "gmud/frame.h"
#include "gmud/iplimit.h"
#include "gmud/json.h"
#include "gmud/limits.h"
#include "gmud/log.h"
#include "gmud/ratelimit.h"
#include "gmud/session.h"
#include "gmud/tls.h"
#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gmud_conn gmud_conn;
typedef struct gmud_server gmud_server;

/* What a message's bytes are. With JSON each incoming message is parsed once
 * (bounded by gmud_json_limits) and the application gets the parsed value as
 * well as the bytes; a message that does not parse gets an error packet and
 * never reaches the application. */
typedef enum gmud_payload {
    GMUD_PAYLOAD_TEXT,
    GMUD_PAYLOAD_JSON
} gmud_payload;

/* Why a connection closed. gmud_close_reason_name() gives the stable phrase
 * logs print ("slow consumer", ...). */
typedef enum gmud_close_reason {
    GMUD_CLOSE_PEER,           /* "peer closed": end of stream from the peer */
    GMUD_CLOSE_LOCAL,          /* "closed locally": gmud_conn_close/gmud_client_close */
    GMUD_CLOSE_SHUTDOWN,       /* "shutdown": gmud_server_shutdown */
    GMUD_CLOSE_SLOW_CONSUMER,  /* "slow consumer": queued output over max_queued,
                                  stalled (send_timeout_ms), or among the
                                  largest holders over max_buffered_total */
    GMUD_CLOSE_FRAME_TIMEOUT,  /* "frame timeout": a begun frame did not complete */
    GMUD_CLOSE_IDLE_TIMEOUT,   /* "idle timeout": nothing received for too long */
    GMUD_CLOSE_PROTOCOL,       /* "protocol error": a framing error (detail says which) */
    GMUD_CLOSE_BAD_MESSAGES,   /* "too many bad messages": repeated bad payloads */
    GMUD_CLOSE_SERVER_FULL,    /* "server full": over max_connections */
    GMUD_CLOSE_IO,             /* "io error": a socket error (detail says which) */
    GMUD_CLOSE_CONNECT_FAILED, /* "connect failed": client could not connect */
    GMUD_CLOSE_SESSION,        /* "session violation": replayed, injected or
                                  out-of-order packet (detail says which) */
    GMUD_CLOSE_RATE_LIMITED,   /* "rate limited": over its rate for too long */
    GMUD_CLOSE_ADDR_LIMITED,   /* "address limit": too many connections, or
                                  new connections, from its address */
    GMUD_CLOSE_REFUSED,        /* "refused by the peer": its error packet, then
                                  its close (the server full, an address
                                  limit, ...); detail holds the peer's code
                                  and sentence */
    GMUD_CLOSE_TLS,            /* "tls failed": the handshake failed or timed
                                  out, too many were in progress, or a record
                                  was refused (detail says which) */
    GMUD_CLOSE_PROXY,          /* "proxy refused": a listener expecting a PROXY
                                  protocol header met an untrusted sender, a
                                  bad header, or none in time */
    GMUD_CLOSE_REASON_COUNT_
} gmud_close_reason;

/* The stable phrase for reason; "unknown" for values out of range. */
GMUD_API const char *gmud_close_reason_name(gmud_close_reason reason);

/* Per-connection limits, and the server's budget for all its connections;
 * gmud_limits_default_config() fills the defaults of gmud/limits.h. Zero
 * is refused, except where GMUD_OFF is named. */
/* What a message over the rate limits meets (gmud_limits.rate_policy). */
typedef enum gmud_rate_policy {
    GMUD_RATE_SHAPE = 0, /* held until the buckets can pay: the sender is
                            slowed by TCP's flow control, nothing dropped */
    GMUD_RATE_DROP       /* dropped, and counted (stats.rate_dropped) */
} gmud_rate_policy;

typedef struct gmud_limits {
    size_t max_queued;          /* outgoing bytes queued per connection; over it:
                                   "slow consumer". > 0 */
    size_t read_high_water;     /* stop reading while queued output >= this; > 0 */
    size_t read_low_water;      /* resume reading when queued output <= this;
                                   < read_high_water */
    uint32_t frame_timeout_ms;  /* a begun frame must complete within; > 0 */
    uint32_t idle_timeout_ms;   /* no input for this long closes; GMUD_OFF */
    uint32_t send_timeout_ms;   /* queued output that makes no progress this long
                                   closes ("slow consumer"); GMUD_OFF */
    uint32_t linger_ms;         /* a closing connection waits this long at most
                                   for its output to drain and the peer's end
                                   of stream; > 0 */
    uint32_t sweep_ms;          /* period of the one timer checking all
                                   timeouts; > 0 */
    unsigned max_bad_messages;  /* payload errors before the close; > 0 */
    size_t max_connections;     /* server only: concurrent connections; > 0 */
    /* Spam, per connection, on what it receives (docs/PROTOCOL.md, section
     * 7): token buckets on messages and on payload bytes. A message either
     * bucket cannot pay for is held (rate_policy GMUD_RATE_SHAPE, the
     * default): nothing more is read from the connection until the buckets
     * can pay, so TCP slows the sender and nothing is lost; or it is
     * dropped (GMUD_RATE_DROP). Either way the peer gets at most one
     * warning packet a second, and a connection over its rate for
     * rate_close_ms on end is closed. A rate of 0 turns that bucket off (a
     * client's default: a client does not throttle its server). Shaping
     * needs byte_burst >= the largest message, or that message could never
     * pass. */
    uint32_t msg_rate;          /* messages/s; GMUD_OFF: no limit */
    uint32_t msg_burst;         /* messages at once; > 0 if msg_rate is on */
    uint32_t byte_rate;         /* payload bytes/s; GMUD_OFF: no limit */
    uint32_t byte_burst;        /* bytes at once; > 0 if byte_rate is on */
    uint32_t rate_close_ms;     /* over the rate this long closes; > 0 */
    gmud_rate_policy rate_policy; /* held (the default, 0) or dropped */
    /* Server only (a client ignores it): the bytes all connections hold
     * together, queued output (as gmud_conn_queued counts it), partial
     * input frames and input held by rate shaping alike. A send or a read that takes the total over it
     * closes the connections holding the most, largest first, as "slow
     * consumer" (the detail names the budget), until the total is back
     * under 90% of it; those holding little are served throughout.
     * GMUD_OFF: no budget. */
    size_t max_buffered_total;
} gmud_limits;

GMUD_API void gmud_limits_default_config(gmud_limits *lim);

/* 0 if usable, else GMUD_ERR_INVALID naming the bad field. */
GMUD_API int gmud_limits_check(const gmud_limits *lim, gmud_error *err);

/* Application callbacks; any may be NULL. `user` is passed to each.
 *   on_connect  a connection is ready (server: accepted; client: connected).
 *   on_message  one whole message. data[0..len) is valid only during the
 *               call (for fixed framing the zero padding is already
 *               removed). json is the parsed value with GMUD_PAYLOAD_JSON,
 *               else NULL; it is borrowed: json_incref() it to keep it.
 *   on_close    the connection is gone; detail (may be NULL) says why for
 *               protocol, bad-message, io and connect errors; valid only
 *               during the call. A client whose connect failed gets only
 *               on_close (GMUD_CLOSE_CONNECT_FAILED), never on_connect. */
typedef struct gmud_callbacks {
    void (*on_connect)(gmud_conn *conn, void *user);
    void (*on_message)(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                       void *user);
    void (*on_close)(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                     void *user);
    /* A received packet was refused by the session or rate checks and
     * dropped (why says which: replayed, rate_limited, ...), before the
     * error packet and any close. For printing or counting; the packet
     * never reaches on_message. A packet held by rate shaping is not
     * refused (it reaches on_message late): only GMUD_RATE_DROP reports
     * rate_limited here. */
    void (*on_reject)(gmud_conn *conn, const gmud_error *why, void *user);
    /* Everything queued on conn has been handed to the kernel, after the
     * application asked with gmud_conn_want_drain(): once per request, from
     * the loop. Send more from here to stream without tripping max_queued. */
    void (*on_drain)(gmud_conn *conn, void *user);
    void *user;
} gmud_callbacks;

/* Sessions (docs/PROTOCOL.md, section 6). With mode on or lecture the
 * server sends each connection a welcome before on_connect; a client's
 * on_connect waits for the welcome, and its sends before that are refused
 * (GMUD_ERR_NOT_WELCOMED). Mode on adds and checks a 16-byte header on
 * every later packet, both ways: the application sends and receives its
 * bytes only, at most max_message - 16 of them. Mode lecture is the
 * lecture's approach 6: the client library answers each data packet with
 * the lecture's reply and the application may not send; the server checks
 * each reply and hands it to on_message whole (so a lecture server needs
 * GMUD_PAYLOAD_JSON; a lecture client may take either, as it replies to
 * every packet whatever it holds). A packet that fails a check
 * is dropped, logged (event "security"), counted (gmud_stats.security),
 * passed to on_reject, answered with an error packet, and the connection
 * closes as GMUD_CLOSE_SESSION. */
typedef struct gmud_session_config {
    gmud_session_mode mode;  /* GMUD_SESSION_DEFAULT (on; see gmud/session.h) */
    int carry_on;            /* server, lecture mode: a bad reply is logged,
                                counted and dropped, and the connection stays
                                open (the lecture's own server prints and
                                carries on). 0 */
    const char *reply_data;  /* client, lecture mode: the replies' data,
                                UTF-8; copied. NULL: "this is test data" */
    uint32_t welcome_timeout_ms; /* client: no welcome this long after the
                                connect closes the connection (session
                                violation, not_welcomed); GMUD_OFF: wait
                                for ever. GMUD_WELCOME_TIMEOUT_MS_DEFAULT */
} gmud_session_config;

/* Fills cfg with the defaults listed above. */
GMUD_API void gmud_session_default_config(gmud_session_config *cfg);

/* ---- Connections ------------------------------------------------------ */

/* Encodes one frame of data[0..len) onto conn's output (copied; the caller
 * keeps data). It leaves with everything else queued this loop turn.
 * Returns 0, or a negative code with err filled:
 *   GMUD_ERR_UNENCODABLE  the framing cannot carry it (too long, holds the
 *                         line delimiter); nothing is queued;
 *   GMUD_ERR_CLOSED       the connection is closing; nothing is queued;
 *   GMUD_ERR_NOMEM        out of memory.
 * If the queue would exceed max_queued, nothing is queued, the connection is
 * closed as "slow consumer" (on_close comes later) and
 * GMUD_ERR_SLOW_CONSUMER is returned. */
GMUD_API int gmud_conn_send(gmud_conn *conn, const void *data, size_t len, gmud_error *err);

/* Serialises v compactly (gmud_json_dump) and sends it as one message.
 * v stays the caller's. Returns as gmud_conn_send. */
GMUD_API int gmud_conn_send_json(gmud_conn *conn, const json_t *v, gmud_error *err);

/* Closes conn gracefully: stops delivering its messages, sends what is
 * queued (bounded by linger_ms), then closes; on_close follows later with
 * GMUD_CLOSE_LOCAL. Further calls, and calls on a closing conn, do nothing. */
GMUD_API void gmud_conn_close(gmud_conn *conn);

/* The application's pointer for conn (NULL until set). */
GMUD_API void gmud_conn_set_data(gmud_conn *conn, void *data);
GMUD_API void *gmud_conn_data(const gmud_conn *conn);

/* A number unique among one server's connections (from 1, never reused). */
GMUD_API uint64_t gmud_conn_id(const gmud_conn *conn);

/* The peer's address: "127.0.0.1:5555" or "[::1]:5555"; owned by conn. */
GMUD_API const char *gmud_conn_peer(const gmud_conn *conn);

/* The longest message gmud_conn_send() takes on conn: the framing's
 * maximum (for fixed:N, N), less the 16-byte session header in mode on. A
 * longer one is GMUD_ERR_UNENCODABLE. For line framing the payload must
 * also hold no delimiter. */
GMUD_API size_t gmud_conn_max_payload(const gmud_conn *conn);

/* Bytes queued on conn and not yet handed to the kernel. */
GMUD_API size_t gmud_conn_queued(const gmud_conn *conn);

/* Asks for one on_drain call once nothing is queued on conn (now, or when
 * the kernel has taken the backlog). The call comes from the loop, never
 * from inside this function, even if the queue is already empty; asking
 * again before it comes asks once. A connection that closes first gets
 * on_close and no on_drain. Does nothing unless conn is open (from
 * on_connect until it starts to close).
 * The streaming pattern: send while gmud_conn_queued() is under a bound of
 * your choosing (well under max_queued), then ask, and go on in on_drain. */
GMUD_API void gmud_conn_want_drain(gmud_conn *conn);
/* Nonzero while the runtime has stopped reading from conn because its
 * output is backed up (above read_high_water). */
GMUD_API int gmud_conn_reading_paused(const gmud_conn *conn);

/* The server conn belongs to; NULL for a client's connection. */
GMUD_API gmud_server *gmud_conn_server(const gmud_conn *conn);

/* ---- Server ----------------------------------------------------------- */

/* What the connections of a server and of a client are configured with,
 * alike: the same struct in both configs (gmud_server_config.conn,
 * gmud_client_config.conn). */
typedef struct gmud_conn_config {
    gmud_frame_config frame;   /* gmud framing, defaults */
    gmud_payload payload;      /* GMUD_PAYLOAD_JSON */
    gmud_json_limits json;     /* gmud_json_default_config */
    gmud_limits limits;        /* gmud_limits_default_config (a client's differ:
                                  see gmud/client.h) */
    gmud_session_config session; /* gmud_session_default_config: mode on */
    gmud_tls_config tls;       /* gmud_tls_default_config: off (gmud/tls.h) */
    gmud_callbacks cb;         /* all NULL */
    gmud_log_fn log;           /* NULL: no logging */
    void *log_user;
    gmud_log_level log_level;  /* events above this level are not raised. INFO */
} gmud_conn_config;

/* A further address a server listens on (gmud_server_config.listen). Its
 * connections are the server's like any other: one set of callbacks,
 * connection ids, limits, budget and counters for all its listeners. */
typedef struct gmud_listen_config {
    const char *host;          /* as gmud_server_config.host; NULL: that host */
    uint16_t port;             /* 0 picks a free port (gmud_server_listen_port) */
    int tls;                   /* nonzero: TLS, with conn.tls's certificate and
                                  settings (conn.tls.enabled need not be set:
                                  that says whether host:port is TLS) */
    int proxy;                 /* nonzero: every connection begins with a PROXY
                                  protocol header (v1 or v2) from one of
                                  proxy_from (below); its client address is the
                                  connection's from then on */
} gmud_listen_config;

enum { GMUD_MAX_LISTENERS = 16 }; /* host:port and listen[] together */

typedef struct gmud_server_config {
    const char *host;          /* IPv4/IPv6 literal or name; copied. "127.0.0.1" */
    uint16_t port;             /* 0 picks a free port (see gmud_server_port). 8222 */
    const gmud_listen_config *listen; /* further listeners, copied; NULL */
    size_t listen_count;       /* how many; 1 + listen_count <= GMUD_MAX_LISTENERS */
    int backlog;               /* listen() backlog. 511 */
    int reuseport;             /* nonzero: SO_REUSEPORT on every listener, so
                                  that several processes share a port (the
                                  kernel spreads new connections). 0 */
    gmud_conn_config conn;     /* the connections' settings, as above */
    gmud_iplimit_config addr;  /* per-address limits: gmud_iplimit_default_config.
                                  A connection over them gets an error packet
                                  (addr_limited), no welcome, and the close
                                  (GMUD_CLOSE_ADDR_LIMITED); with both limits
                                  GMUD_OFF no table is kept */
    /* The PROXY protocol (HAProxy's, versions 1 and 2; docs/PROTOCOL.md 9):
     * behind a load balancer, the client's address comes in a header the
     * balancer sends first, and that address is the one logs, per-address
     * limits and gmud_conn_peer() use. proxy_protocol: host:port expects
     * it (listen[].proxy for the others). proxy_from: the trusted senders,
     * "10.0.0.0/8,[fd00::]/8,192.0.2.1" (commas or spaces; copied),
     * required with any proxy listener: a connection from anywhere else, a
     * bad header, or none within proxy_timeout_ms gets an error packet
     * (proxy) and the close (GMUD_CLOSE_PROXY), before any TLS state, welcome
     * or on_connect. GMUD_PROXY_TIMEOUT_DEFAULT ms; > 0. */
    int proxy_protocol;
    const char *proxy_from;
    uint32_t proxy_timeout_ms;
} gmud_server_config;

enum { GMUD_PROXY_TIMEOUT_DEFAULT = 5000 };

/* Counters since create. closes[] is by gmud_close_reason; rejects[] by
 * error code: rejects[-code] counts inputs refused with that gmud_err code
 * (framing errors, payload errors); server-full refusals are counted in
 * rejected_full. */
enum { GMUD_STATS_CODES = 48 }; /* room past GMUD_ERR_LAST_ */
typedef struct gmud_stats {
    uint64_t accepted;         /* connections handed to the application */
    uint64_t active;           /* open now */
    uint64_t rejected_full;    /* refused: over max_connections */
    uint64_t messages_in;      /* delivered to on_message */
    uint64_t bytes_in;         /* read from sockets */
    uint64_t messages_out;     /* frames queued (a broadcast counts each copy) */
    uint64_t bytes_out;        /* written to sockets */
    uint64_t writes;           /* write calls (uv_try_write/uv_write) */
    uint64_t read_pauses;      /* times reading stopped for backpressure */
    uint64_t security;         /* packets refused by a session check */
    uint64_t rate_dropped;     /* packets dropped over a rate limit (drop) */
    uint64_t rate_held;        /* times a connection's input was held for its
                                  rates (shaping): each a pause of reading */
    uint64_t rejected_addr;    /* connections refused by a per-address limit */
    uint64_t closes[GMUD_CLOSE_REASON_COUNT_];
    uint64_t rejects[GMUD_STATS_CODES];
    /* The buffer budget (gmud_limits.max_buffered_total): bytes held by
     * all connections now, the most held at once since create, and
     * connections closed to get back under the budget (also counted in
     * closes[GMUD_CLOSE_SLOW_CONSUMER]). */
    uint64_t buffered_total;
    uint64_t buffered_peak;
    uint64_t budget_closes;
    /* TLS (gmud/tls.h): handshakes completed, failed (a bad version or
     * certificate, garbage, plaintext, a timeout; also in
     * closes[GMUD_CLOSE_TLS]), refused because max_handshakes were in
     * progress, and ends of stream without close_notify. */
    uint64_t tls_handshakes;
    uint64_t tls_failed;
    uint64_t tls_busy;
    uint64_t tls_unclean;
    /* PROXY protocol listeners: headers accepted, and connections refused
     * (an untrusted sender, a bad or late header; also in
     * closes[GMUD_CLOSE_PROXY]). */
    uint64_t proxy_accepted;
    uint64_t proxy_refused;
} gmud_stats;

/* Fills cfg with the defaults listed above. */
GMUD_API void gmud_server_default_config(gmud_server_config *cfg);

/* Binds host:port and each of cfg->listen (names are resolved synchronously
 * here) and listens on loop. The config is copied. Returns the server, or NULL with err filled
 * (GMUD_ERR_INVALID for a bad config; GMUD_ERR_IO for an unresolvable host
 * or a bind/listen failure, with the system's reason; GMUD_ERR_NOMEM). Failures are
 * synchronous and leave nothing behind, except a failing listen(), whose
 * handles are released as the loop runs. */
GMUD_API gmud_server *gmud_server_create(uv_loop_t *loop, const gmud_server_config *cfg,
                                         gmud_error *err);

/* The bound port (useful after port 0). */
GMUD_API uint16_t gmud_server_port(const gmud_server *server);

/* The port listener i bound: 0 is host:port (as gmud_server_port), 1 to
 * listen_count are listen[0..]. 0 for i out of range. */
GMUD_API uint16_t gmud_server_listen_port(const gmud_server *server, size_t i);

/* Connections handed to the application whose on_close has not yet run
 * (closing ones included): what max_connections counts. */
GMUD_API size_t gmud_server_connections(const gmud_server *server);

/* Encodes data once and queues it on every open connection except `except`
 * (may be NULL). Returns the number of connections it was queued on, or a
 * negative code (GMUD_ERR_UNENCODABLE, GMUD_ERR_NOMEM) with err filled.
 * A connection it would push over max_queued is closed as "slow consumer";
 * the others are not delayed. */
GMUD_API int gmud_server_broadcast(gmud_server *server, const void *data, size_t len,
                          const gmud_conn *except, gmud_error *err);

/* As gmud_server_broadcast, serialising v once. */
GMUD_API int gmud_server_broadcast_json(gmud_server *server, const json_t *v,
                                        const gmud_conn *except,
                               gmud_error *err);

/* Calls fn for each open connection (closing ones are skipped). fn may send
 * and may close the connection it is given. */
GMUD_API void gmud_server_foreach(gmud_server *server, void (*fn)(gmud_conn *conn, void *user),
                         void *user);

/* Copies the counters into *out. */
GMUD_API void gmud_server_stats(const gmud_server *server, gmud_stats *out);

/* Reads the TLS certificate chain and key files of conn.tls again (the
 * same paths) and, if both load and match, new handshakes use them;
 * connections already open, and handshakes under way, keep theirs. On
 * failure (a file missing, unreadable, or a key that does not match)
 * nothing changes and err says why. GMUD_ERR_INVALID if the server has no
 * TLS listener. */
GMUD_API int gmud_server_reload_tls(gmud_server *server, gmud_error *err);

/* Stops accepting, lets every connection send what is queued for at most
 * flush_timeout_ms (GMUD_OFF: no wait, queued output is dropped;
 * GMUD_SHUTDOWN_FLUSH_MS_DEFAULT is what the programs use), closes them all
 * (on_close with GMUD_CLOSE_SHUTDOWN), then calls done(server, user) from
 * the loop. Call once; later calls do nothing. */
GMUD_API void gmud_server_shutdown(gmud_server *server, uint32_t flush_timeout_ms,
                          void (*done)(gmud_server *server, void *user), void *user);

/* Frees the server. Only after shutdown's done callback has run (memory of
 * the last handles is released when the loop runs on, so run the loop until
 * it returns before uv_loop_close). NULL is a no-op. */
GMUD_API void gmud_server_destroy(gmud_server *server);

/* ---- Timers ----------------------------------------------------------- */

typedef struct gmud_timer gmud_timer;

/* Calls cb(timer, user) after first_ms, then every repeat_ms (0: once).
 * The timer owns its memory: stop every timer exactly once with
 * gmud_timer_destroy, one-shot timers too, also from inside cb. A timer keeps
 * the loop alive until stopped. NULL on no memory. */
GMUD_API gmud_timer *gmud_timer_create(uv_loop_t *loop, uint64_t first_ms, uint64_t repeat_ms,
                             void (*cb)(gmud_timer *timer, void *user), void *user);

/* Stops and frees the timer (the memory goes when the loop runs on). NULL
 * is a no-op. */
GMUD_API void gmud_timer_destroy(gmud_timer *timer);

#ifdef __cplusplus
}
#endif

#endif
