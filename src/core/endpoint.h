/* Internal: the protocol engine of one connection, sans I/O.
 *
 * Everything gmud decides about a connection's traffic, once, for every
 * transport: the session in each mode (the welcome, gmud's header, the
 * lecture's replies and their check), the rate decisions, the count of bad
 * payloads, the bytes of error packets, and the checks of a config. It
 * takes whole frames (from the decoder) and the time, and says what to do:
 * deliver this slice, send this packet, count and report this refusal,
 * close for this reason. It never touches a socket, a clock, a log or a
 * callback: the event runtime (src/rt/drive.c) and the blocking client
 * (src/rt/sync.c) carry its decisions out, each with its own mechanism.
 *
 * Sending is two-phase: ep_send_begin() reserves the next sequence and
 * writes the session header; ep_send_commit() spends it once the whole
 * frame is queued. A send that fails to queue leaves the session as it was,
 * so the peer never sees a gap.
 *
 * An ep_config is shared by every endpoint of one server, client or
 * blocking connection: the rules, plus one scratch buffer in which the
 * engine writes the packets it makes itself (error packets, the welcome,
 * the lecture's replies). A packet there is valid until the next call on
 * any endpoint of that config: queue it first. One thread at a time. */
#ifndef GMUD_CORE_ENDPOINT_H
#define GMUD_CORE_ENDPOINT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "gmud/error.h"
#include "gmud/frame.h"
#include "gmud/json.h"
#include "gmud/ratelimit.h"
#include "gmud/session.h"

/* The longest welcome, {"session_id": 9007199254740991, "sequence_id": 0}:
 * with sessions, every frame must have room for at least this much. */
#define EP_WELCOME_MAX 50

typedef enum ep_role { EP_SERVER, EP_CLIENT } ep_role;

/* Why the engine closes a connection; the runtime maps these onto
 * gmud_close_reason, the blocking client onto a sticky error. */
typedef enum ep_close {
    EP_CLOSE_NONE,
    EP_CLOSE_SESSION,      /* a session check failed, or no welcome */
    EP_CLOSE_PROTOCOL,     /* a framing error, or the server's refusal */
    EP_CLOSE_BAD_MESSAGES, /* max_bad_messages payloads did not parse */
    EP_CLOSE_RATE_LIMITED, /* over the rates for rate_close_ms */
    EP_CLOSE_REFUSED       /* the peer refused us: its error packet, then its
                              end (or its refusal in place of the welcome) */
} ep_close;

/* What a refused input was, for the runtime's counters and log lines. */
typedef enum ep_kind {
    EP_KIND_SESSION,  /* session check or welcome: a security event */
    EP_KIND_RATE,     /* over the rate limits */
    EP_KIND_PAYLOAD,  /* a payload that does not parse */
    EP_KIND_FRAMING,  /* a framing error from the decoder */
    EP_KIND_REFUSAL,  /* client: the server refused us (not counted) */
    EP_KIND_TIMEOUT,  /* client: no welcome in time */
    EP_KIND_UNWELCOMED /* client: the server ended the stream before its welcome */
} ep_kind;

typedef struct ep_config {
    /* The rules: fill these, then ep_config_ready(). */
    ep_role role;
    gmud_frame_config frame;
    gmud_session_mode mode;
    int json;                  /* parse each message as JSON */
    int json_errors;           /* write error packets as JSON; else text */
    int keep_padding;          /* fixed:N: deliver the whole packet (gmud_sync) */
    int carry_on;              /* server, lecture: a bad reply is reported,
                                  the connection kept */
    const char *reply_data;    /* client, lecture: the replies' data; NULL: the
                                  lecture's; copied by ep_config_ready */
    gmud_json_limits json_limits;
    unsigned max_bad_messages; /* > 0 */
    uint32_t msg_rate, msg_burst, byte_rate, byte_burst; /* rate 0: off */
    uint32_t rate_close_ms;
    int rate_drop;             /* over the rates: refuse (drop) the message;
                                  0: hold it until the buckets can pay */
    uint32_t welcome_timeout_ms; /* client, session modes; GMUD_OFF: none */

    /* Derived and owned (ep_config_free). */
    char *reply_text;
    size_t reply_len;
    byte_buf out;              /* the engine's own packet being written */
    gmud_error rate_error;     /* what a message over the rates is told */
} ep_config;

/* Checks the rules against each other (the framings a session mode can
 * use, room for the welcome and the longest reply, the reply data, the
 * JSON limits) and prepares the derived fields. 0 or GMUD_ERR_INVALID /
 * GMUD_ERR_NOMEM with err filled; on failure nothing is left to free. */
int ep_config_ready(ep_config *cfg, gmud_error *err);
void ep_config_free(ep_config *cfg);

/* The largest application payload one packet carries: the frame's room,
 * less the session header in mode on. */
size_t ep_max_payload(const ep_config *cfg);

enum ep_state {
    EP_AWAIT_WELCOME,      /* client, session modes: the first packet is due */
    EP_OPEN,
    EP_DONE                /* the engine closed it: every later frame is ignored */
};

/* endpoint.peer_erred: what the peer's error packets say of an end of
 * stream that follows. A refusal (any code but a warning's) makes it a
 * refusal whatever came between; a warning (rate_limited, rate_dropped,
 * unencodable: the connection stays) only while nothing else has come
 * since, as when the server sends its last rate_limited and closes. */
enum { EP_PEER_QUIET = 0, EP_PEER_WARNED = 1, EP_PEER_REFUSED = 2 };

typedef struct endpoint {
    ep_config *cfg;
    gmud_session sess;
    gmud_bucket msg_bucket;
    gmud_bucket byte_bucket;
    gmud_overlimit over;
    uint64_t welcome_due;      /* EP_AWAIT_WELCOME: ms by which it must come */
    uint8_t state;
    uint8_t bad_messages;
    uint8_t peer_erred;        /* the peer sent an error packet: EP_PEER_* */
} endpoint;

/* A packet to queue as the connection's next frame: head[0..head_len) then
 * body[0..body_len), encoded as one frame. */
typedef struct ep_packet {
    uint8_t head[GMUD_SESSION_HEADER_SIZE];
    size_t head_len;
    const uint8_t *body;
    size_t body_len;
    uint8_t spend;             /* commit: the kind of sequence it spends */
    uint64_t id;               /* the welcome's session id */
} ep_packet;

/* What to do, as bits of ep_result.what, in this order. */
enum ep_what {
    EP_REFUSED = 1 << 0,   /* an input was refused: why, kind (count, log,
                              on_reject) */
    EP_SEND = 1 << 1,      /* queue pkt, then ep_send_commit() it */
    EP_WELCOMED = 1 << 2,  /* client: the session has begun (announce it) */
    EP_DELIVER = 1 << 3,   /* msg (and json, the caller's to json_decref) to
                              the application */
    EP_THROTTLE = 1 << 4,  /* over the rates: stop reading for a while */
    EP_CLOSE = 1 << 5,     /* close (after what is queued): close, detail */
    EP_PEER_ERROR = 1 << 6, /* with EP_DELIVER: the message is the peer's error
                              packet; why holds its code and "<code>: <text>"
                              (keep it: the peer's close that follows is
                              reported with it) */
    EP_HOLD = 1 << 7       /* shaping: the buckets cannot pay for this frame
                              yet. Nothing was consumed: keep the frame (and
                              the input after it), read no more, and present
                              it again wait_ms from now. May come with
                              EP_SEND, the period's warning (warned) */
};

typedef struct ep_result {
    unsigned what;
    gmud_slice msg;
    json_t *json;
    ep_packet pkt;
    ep_kind kind;              /* with EP_REFUSED or EP_CLOSE */
    ep_close close;
    int warned;                /* EP_KIND_RATE, EP_HOLD: pkt is the period's warning */
    uint64_t wait_ms;          /* EP_HOLD: ms until the buckets can pay (>= 1) */
    gmud_error why;            /* EP_REFUSED: what was refused and why */
    int compared;              /* EP_KIND_SESSION: the check compared two numbers: */
    uint64_t expected, got;    /* the session id or sequence wanted, and the packet's */
    gmud_error detail;         /* EP_CLOSE: why it closes */
} ep_result;

/* A new connection at time now (ms): no session, full buckets; a client in
 * a session mode awaits the welcome until now + welcome_timeout_ms. */
void ep_init(endpoint *ep, ep_config *cfg, uint64_t now);

/* The rates apply to ep and shape: the runtime then reads in small
 * slices, so that a hold copies little (a read can carry more messages
 * than any burst: the first hold must be small too). */
int ep_shapes(const endpoint *ep);

static inline int ep_awaiting_welcome(const endpoint *ep)
{
    return ep->state == EP_AWAIT_WELCOME;
}

/* ---- Receiving ---------------------------------------------------------- */

/* One whole frame's payload, as the decoder gave it, at time now. The
 * result's msg points into msg's bytes (or the config's buffer), so it is
 * valid as long as they are. */
void ep_on_frame(endpoint *ep, gmud_slice msg, uint64_t now, ep_result *r);

/* The decoder refused the stream with e: an error packet, then the close. */
void ep_on_framing_error(endpoint *ep, const gmud_error *e, ep_result *r);

/* The peer ended its stream between frames. A client still awaiting its
 * welcome closes with not_welcomed (the server went away without one: full,
 * refusing the address, or running no sessions). A peer that sent an error
 * packet and then ended refused us: EP_CLOSE_REFUSED, its words being the
 * ones EP_PEER_ERROR gave (detail.code 0 here). Else nothing to decide
 * (what 0: an ordinary end). */
void ep_on_end(endpoint *ep, ep_result *r);

/* Time passes: a client still without its welcome at its deadline closes. */
void ep_on_tick(endpoint *ep, uint64_t now, ep_result *r);

/* ---- Sending ------------------------------------------------------------ */

/* Prepares the application's data[0..len) as the next packet: checks that
 * it may be sent now and fits, reserves the next sequence, writes the
 * header (mode on). 0, or GMUD_ERR_NOT_WELCOMED (no session yet),
 * GMUD_ERR_SEQ_EXHAUSTED (the session can send no more: the endpoint is
 * done, and the connection must close, PROTOCOL.md 6.3), GMUD_ERR_INVALID
 * (a lecture client only
 * replies), GMUD_ERR_UNENCODABLE (longer than ep_max_payload; the
 * encoder's own checks say why in mode off). */
int ep_send_begin_session(endpoint *ep, const void *data, size_t len, ep_packet *pkt,
                          gmud_error *err);

static inline int ep_send_begin(endpoint *ep, const void *data, size_t len, ep_packet *pkt,
                                gmud_error *err)
{
    /* Mode off, the common case, inline: a send per message pays no call. */
    if (ep->cfg->mode != GMUD_SESSION_OFF)
        return ep_send_begin_session(ep, data, len, pkt, err);
    pkt->head_len = 0;
    pkt->body = data;
    pkt->body_len = len;
    pkt->spend = 0;
    return GMUD_OK;
}

/* pkt has been queued whole: spends its sequence, or for the welcome
 * starts the session. (Inline: nothing to do for most packets.) */
void ep_send_commit_session(endpoint *ep, const ep_packet *pkt);

static inline void ep_send_commit(endpoint *ep, const ep_packet *pkt)
{
    if (pkt->spend != 0)
        ep_send_commit_session(ep, pkt);
}

/* Server, session modes: draws the session id and writes the welcome.
 * Queue pkt before anything else, then ep_send_commit(). */
int ep_welcome(endpoint *ep, ep_packet *pkt, gmud_error *err);

/* An error packet, {"error": text, "code": code} (JSON) or
 * "error <code>: <text>" (text), cut to fit a packet. Before a session it
 * goes out bare, as PROTOCOL.md 6.5 and 7.2 show it. 0, or the reason it
 * cannot be sent (a lecture client after the welcome: the server would
 * take it for a bad reply). */
int ep_error_packet(endpoint *ep, const char *code, const char *text, ep_packet *pkt,
                    gmud_error *err);

#endif
