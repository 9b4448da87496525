/* The protocol engine of one connection. See endpoint.h. */
#include "endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame_head.h"
#include "gmud/limits.h"

/* What committing a packet does to the session. */
enum spend {
    SPEND_NONE = 0, /* mode off, and bare error packets before a session
                       (0: ep_send_commit's inline test in endpoint.h) */
    SPEND_SEQ,      /* mode on: the sequence in its header */
    SPEND_COUNT,    /* lecture server: its data packets are counted (the
                       client's replies count them too), until exhausted */
    SPEND_WELCOME   /* the welcome: the session begins */
};

/* ---- The config --------------------------------------------------------- */

size_t ep_max_payload(const ep_config *cfg)
{
    size_t room = frame_room(&cfg->frame);
    /* Sessions need EP_WELCOME_MAX bytes of room (ep_config_ready): this
     * leaves 34 or more. */
    return cfg->mode == GMUD_SESSION_ON ? room - GMUD_SESSION_HEADER_SIZE : room;
}

static int check_mode(const ep_config *cfg, gmud_error *err)
{
    gmud_framing framing = cfg->frame.framing;
    switch (cfg->mode) {
    case GMUD_SESSION_OFF:
        return GMUD_OK;
    case GMUD_SESSION_ON:
        /* Binary-safe framings with message boundaries only: the header of
         * sequence 10 starts with "\n", and raw reads have no boundaries. */
        if (framing != GMUD_FRAMING_LENGTH && framing != GMUD_FRAMING_GMUD &&
            framing != GMUD_FRAMING_FIXED)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "session mode on needs length, gmud or fixed framing, not %s",
                                  gmud_framing_name(framing));
        break;
    case GMUD_SESSION_LECTURE:
        if (framing == GMUD_FRAMING_RAW)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "session mode lecture needs a framing other than raw");
        /* The server reads the replies' fields; a client replies to any
         * packet, whatever it holds. */
        if (cfg->role == EP_SERVER && !cfg->json)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "session mode lecture needs json payload on the server");
        break;
    default:
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "unknown session mode %d",
                              (int)cfg->mode);
    }
    if (frame_room(&cfg->frame) < EP_WELCOME_MAX)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "sessions need messages of at least %d bytes (the welcome), "
                              "not %zu",
                              EP_WELCOME_MAX, frame_room(&cfg->frame));
    return GMUD_OK;
}

/* Client, lecture mode: copies the reply data and makes room for its
 * replies, then writes the longest one this session could need (the
 * largest id and sequence) to check the data and that every reply fits. */
static int take_reply_data(ep_config *cfg, gmud_error *err)
{
    const char *data = cfg->reply_data ? cfg->reply_data : GMUD_SESSION_LECTURE_DATA;
    size_t len = strlen(data), room = frame_room(&cfg->frame);
    if (len > room)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "reply data of %zu bytes cannot fit a %zu-byte message", len,
                              room);
    if ((cfg->reply_text = malloc(len + 1)) == NULL || buf_reserve(&cfg->out, 6 * len + 80) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for the lecture's replies");
    memcpy(cfg->reply_text, data, len + 1);
    cfg->reply_len = len;
    gmud_error e;
    ptrdiff_t n = gmud_session_lecture_reply(GMUD_SESSION_ID_MAX, GMUD_SEQ_EXHAUSTED - 1, data,
                                             len, cfg->out.data, cfg->out.cap, &e);
    if (n < 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, e.offset, "bad reply data: %s", e.message);
    if ((size_t)n > room)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "a reply carrying this data takes up to %td bytes, over the "
                              "%zu-byte message",
                              n, room);
    cfg->reply_data = cfg->reply_text; /* the caller's pointer may go */
    return GMUD_OK;
}

/* The limits the engine enforces, as gmud_limits_check has them. */
static int check_limits(const ep_config *cfg, gmud_error *err)
{
    if ((cfg->msg_rate != 0 && cfg->msg_burst == 0) ||
        (cfg->byte_rate != 0 && cfg->byte_burst == 0))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "a rate needs a positive burst");
    if ((cfg->msg_rate != 0 || cfg->byte_rate != 0) && cfg->rate_close_ms == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "rate close period must be positive");
    /* Shaping waits until a message can be paid for: each must fit the
     * byte burst, or it would wait for ever. */
    if (!cfg->rate_drop && cfg->byte_rate != 0 && cfg->mode != GMUD_SESSION_LECTURE &&
        cfg->byte_burst < ep_max_payload(cfg))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "byte burst %u is under the largest message (%zu bytes), which "
                              "shaping could never let through: raise the burst, lower "
                              "--max-message, or drop",
                              (unsigned)cfg->byte_burst, ep_max_payload(cfg));
    /* Only payloads that are parsed can be bad. */
    if (cfg->json && (cfg->max_bad_messages == 0 || cfg->max_bad_messages > 255))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "max bad messages must be 1..255");
    return GMUD_OK;
}

static int prepare(ep_config *cfg, gmud_error *err)
{
    int rc = gmud_frame_config_check(&cfg->frame, err);
    if (rc == GMUD_OK)
        rc = check_mode(cfg, err);
    /* The JSON limits, checked now rather than on the first message. */
    if (rc == GMUD_OK && (cfg->json || cfg->mode != GMUD_SESSION_OFF))
        rc = gmud_json_check_bounds((const uint8_t *)"{}", 2, &cfg->json_limits, err);
    if (rc == GMUD_OK)
        rc = check_limits(cfg, err);
    if (rc != GMUD_OK)
        return rc;
    /* Two codes, so that a peer can tell being slowed (nothing lost) from
     * losing messages without reading the text. */
    gmud_error_set(&cfg->rate_error, cfg->rate_drop ? GMUD_ERR_RATE_DROPPED : GMUD_ERR_RATE_LIMITED, 0,
                   "over the rate limit (%u messages/s burst %u, %u bytes/s burst %u): %s",
                   (unsigned)cfg->msg_rate, (unsigned)cfg->msg_burst, (unsigned)cfg->byte_rate,
                   (unsigned)cfg->byte_burst,
                   cfg->rate_drop ? "messages are dropped"
                                  : "slowed down, nothing dropped (reading paused)");
    if (cfg->mode == GMUD_SESSION_LECTURE && cfg->role == EP_CLIENT)
        return take_reply_data(cfg, err);
    return GMUD_OK;
}

int ep_config_ready(ep_config *cfg, gmud_error *err)
{
    cfg->reply_text = NULL;
    cfg->reply_len = 0;
    cfg->out = (byte_buf){NULL, 0, 0};
    int rc = prepare(cfg, err);
    if (rc != GMUD_OK)
        ep_config_free(cfg);
    return rc;
}

void ep_config_free(ep_config *cfg)
{
    if (cfg->reply_data == cfg->reply_text)
        cfg->reply_data = NULL;
    free(cfg->reply_text);
    cfg->reply_text = NULL;
    buf_free(&cfg->out);
}

/* ---- The connection ----------------------------------------------------- */

void ep_init(endpoint *ep, ep_config *cfg, uint64_t now)
{
    ep->cfg = cfg;
    gmud_session_init(&ep->sess);
    /* The rates were checked with the config: these cannot fail. */
    if (cfg->msg_rate != 0)
        gmud_bucket_init(&ep->msg_bucket, cfg->msg_rate, cfg->msg_burst, now);
    if (cfg->byte_rate != 0)
        gmud_bucket_init(&ep->byte_bucket, cfg->byte_rate, cfg->byte_burst, now);
    /* rate_close_ms > 0 whenever a rate is on (checked); unused otherwise. */
    gmud_overlimit_init(&ep->over, cfg->rate_close_ms ? cfg->rate_close_ms : 1);
    ep->bad_messages = 0;
    ep->peer_erred = EP_PEER_QUIET;
    ep->welcome_due = cfg->welcome_timeout_ms == GMUD_OFF ? UINT64_MAX
                                                          : now + cfg->welcome_timeout_ms;
    ep->state = cfg->mode != GMUD_SESSION_OFF && cfg->role == EP_CLIENT ? EP_AWAIT_WELCOME
                                                                         : EP_OPEN;
}

/* ---- Packets the engine writes ------------------------------------------ */

/* Error text may quote the peer's bytes (jansson's "near '...'"): keep it
 * printable ASCII, so it is valid UTF-8 and holds no line delimiter. */
static void printable(char *out, size_t cap, const char *in)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < cap; i++)
        out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
    out[i] = '\0';
}

/* The engine's own packets are rare (an error, a server's welcomes): their
 * buffer is taken when the first is written, not with the config, so that
 * a client (one connection to a config) does not carry it idle. Room for
 * any error packet (its text cut to 200 printable bytes, each escaped to at
 * most 2) and the welcome. */
enum { OWN_ROOM = 1024 };

static int own_room(ep_config *cfg, gmud_error *err)
{
    if (buf_reserve(&cfg->out, OWN_ROOM) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for a packet");
    return GMUD_OK;
}

/* {"error": text, "code": code} dumped into cfg->out; its length, or -1. */
static ptrdiff_t dump_error(ep_config *cfg, const char *code, const char *text)
{
    json_t *v = json_pack("{s:s, s:s}", "error", text, "code", code);
    size_t size = v ? json_dumpb(v, (char *)cfg->out.data, cfg->out.cap, JSON_COMPACT) : 0;
    json_decref(v);
    return size == 0 || size > cfg->out.cap ? -1 : (ptrdiff_t)size;
}

/* {"error": text, "code": code} into cfg->out, within max bytes: the
 * longest start of text whose escaped form fits beside the code, which is
 * never cut. text is printable ASCII (printable()), which JSON escapes only
 * at '"' and '\\', to two bytes. Its length, or -1. */
static ptrdiff_t error_json(ep_config *cfg, const char *code, const char *text, size_t max)
{
    ptrdiff_t bare = dump_error(cfg, code, "");
    if (bare < 0 || (size_t)bare > max)
        return -1;
    size_t room = max - (size_t)bare, used = 0, n = 0;
    for (; text[n] != '\0'; n++) {
        size_t w = text[n] == '"' || text[n] == '\\' ? 2 : 1;
        if (used + w > room)
            break;
        used += w;
    }
    char cut[256];
    snprintf(cut, sizeof cut, "%.*s", (int)n, text);
    ptrdiff_t size = dump_error(cfg, code, cut);
    return size >= 0 && (size_t)size <= max ? size : -1;
}

/* "error <code>: <text>" into cfg->out, cut to max bytes. */
static ptrdiff_t error_text(ep_config *cfg, const char *code, const char *text, size_t max)
{
    int n = snprintf((char *)cfg->out.data, cfg->out.cap, "error %s: %s", code, text);
    size_t len = n < 0 ? 0 : (size_t)n < cfg->out.cap ? (size_t)n : cfg->out.cap - 1;
    return (ptrdiff_t)(len < max ? len : max);
}

/* A packet of the engine's own body, with the session's header, or bare
 * before a session exists. */
static void own_packet(endpoint *ep, size_t len, ep_packet *pkt)
{
    ep_config *cfg = ep->cfg;
    pkt->head_len = 0;
    pkt->body = cfg->out.data;
    pkt->body_len = len;
    pkt->spend = SPEND_NONE;
    if (ep->sess.id == 0)
        return;
    if (cfg->mode == GMUD_SESSION_ON) {
        gmud_session_header_put(pkt->head, ep->sess.id, ep->sess.send_seq);
        pkt->head_len = GMUD_SESSION_HEADER_SIZE;
        pkt->spend = SPEND_SEQ;
    } else if (cfg->mode == GMUD_SESSION_LECTURE) {
        pkt->spend = SPEND_COUNT;
    }
}

int ep_error_packet(endpoint *ep, const char *code, const char *text, ep_packet *pkt,
                    gmud_error *err)
{
    ep_config *cfg = ep->cfg;
    gmud_session_mode mode = cfg->mode;
    if (ep->sess.id != 0 && mode == GMUD_SESSION_LECTURE && cfg->role == EP_CLIENT)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "a lecture client sends only replies: no error packet");
    if (ep->sess.id != 0 && mode == GMUD_SESSION_ON && ep->sess.send_seq == GMUD_SEQ_EXHAUSTED)
        return gmud_error_set(err, GMUD_ERR_SEQ_EXHAUSTED, 0,
                              "no sequence numbers left to send with");
    if (own_room(cfg, err) != GMUD_OK)
        return GMUD_ERR_NOMEM;
    size_t max = frame_room(&cfg->frame);
    if (ep->sess.id != 0 && mode == GMUD_SESSION_ON)
        max -= GMUD_SESSION_HEADER_SIZE;
    char clean[200];
    printable(clean, sizeof clean, text);
    ptrdiff_t n = cfg->json_errors ? error_json(cfg, code, clean, max)
                            : error_text(cfg, code, clean, max);
    if (n < 0)
        return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0,
                              "error packet %s does not fit a %zu-byte message", code, max);
    own_packet(ep, (size_t)n, pkt);
    return GMUD_OK;
}

/* Adds the error packet for e to r, if one can be sent. */
static void add_error_packet(endpoint *ep, const gmud_error *e, ep_result *r)
{
    if (ep_error_packet(ep, gmud_err_name(e->code), e->message, &r->pkt, NULL) == GMUD_OK)
        r->what |= EP_SEND;
}

static void add_close(endpoint *ep, ep_kind kind, ep_close close, const gmud_error *detail,
                      ep_result *r)
{
    ep->state = EP_DONE;
    r->what |= EP_CLOSE;
    r->kind = kind;
    r->close = close;
    if (detail != NULL)
        r->detail = *detail;
    else
        r->detail.code = GMUD_OK;
}

static void add_refused(ep_kind kind, const gmud_error *why, ep_result *r)
{
    r->what |= EP_REFUSED;
    r->kind = kind;
    r->why = *why;
    r->compared = 0;
}

int ep_welcome(endpoint *ep, ep_packet *pkt, gmud_error *err)
{
    uint64_t id;
    int rc = gmud_session_new_id(&id, err);
    if (rc == GMUD_OK)
        rc = own_room(ep->cfg, err);
    if (rc != GMUD_OK)
        return rc;
    ptrdiff_t n = gmud_session_lecture_welcome(id, ep->cfg->out.data, ep->cfg->out.cap, err);
    if (n < 0)
        return (int)n;
    pkt->head_len = 0;
    pkt->body = ep->cfg->out.data;
    pkt->body_len = (size_t)n;
    pkt->spend = SPEND_WELCOME;
    pkt->id = id;
    return GMUD_OK;
}

/* ---- Sending ------------------------------------------------------------ */

int ep_send_begin_session(endpoint *ep, const void *data, size_t len, ep_packet *pkt,
                          gmud_error *err)
{
    const ep_config *cfg = ep->cfg;
    pkt->head_len = 0;
    pkt->body = data;
    pkt->body_len = len;
    pkt->spend = SPEND_NONE;
    switch (cfg->mode) {
    case GMUD_SESSION_ON:
        if (ep->sess.id == 0)
            return gmud_error_set(err, GMUD_ERR_NOT_WELCOMED, 0,
                                  "no session yet: send once on_connect has run");
        if (ep->sess.send_seq == GMUD_SEQ_EXHAUSTED) {
            ep->state = EP_DONE;
            return gmud_error_set(err, GMUD_ERR_SEQ_EXHAUSTED, 0,
                                  "no sequence numbers left to send with");
        }
        if (len > ep_max_payload(cfg))
            return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0,
                                  "message of %zu bytes over the %zu the framing leaves "
                                  "beside the session header",
                                  len, ep_max_payload(cfg));
        gmud_session_header_put(pkt->head, ep->sess.id, ep->sess.send_seq);
        pkt->head_len = GMUD_SESSION_HEADER_SIZE;
        pkt->spend = SPEND_SEQ;
        return GMUD_OK;
    case GMUD_SESSION_LECTURE:
        if (cfg->role == EP_CLIENT)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "in lecture mode the client only replies (the library does)");
        if (ep->sess.id == 0)
            return gmud_error_set(err, GMUD_ERR_NOT_WELCOMED, 0,
                                  "no session yet: the welcome goes first");
        pkt->spend = SPEND_COUNT;
        return GMUD_OK;
    default:
        return GMUD_OK;
    }
}

void ep_send_commit_session(endpoint *ep, const ep_packet *pkt)
{
    gmud_session *s = &ep->sess;
    switch (pkt->spend) {
    case SPEND_SEQ:
        s->send_seq++; /* begin refused an exhausted counter */
        break;
    case SPEND_COUNT:
        if (s->send_seq != GMUD_SEQ_EXHAUSTED)
            s->send_seq++;
        break;
    case SPEND_WELCOME:
        if (ep->cfg->mode == GMUD_SESSION_ON)
            gmud_session_start_on_server(s, pkt->id);
        else
            gmud_session_start_lecture(s, pkt->id);
        break;
    default:
        break;
    }
}

/* ---- Receiving: the refusals -------------------------------------------- */

/* A packet failed a session check: refused, then (unless the lecture's
 * carry-on is asked for) error packet and close. */
static void session_reject(endpoint *ep, const gmud_error *e, ep_result *r)
{
    const ep_config *cfg = ep->cfg;
    add_refused(EP_KIND_SESSION, e, r);
    if (cfg->carry_on && cfg->mode == GMUD_SESSION_LECTURE && cfg->role == EP_SERVER)
        return;
    add_error_packet(ep, e, r);
    add_close(ep, EP_KIND_SESSION, EP_CLOSE_SESSION, e, r);
}

/* Mode on: the header at msg is not the next packet's: says why. */
static void header_refused(endpoint *ep, gmud_slice msg, ep_result *r)
{
    uint64_t seq = 0;
    gmud_error e;
    if (gmud_session_header_check(&ep->sess, msg.data, msg.len, &seq, &e) == GMUD_OK)
        gmud_error_set(&e, GMUD_ERR_INVALID, 0, "session check disagrees with itself");
    session_reject(ep, &e, r);
    if (msg.len < GMUD_SESSION_HEADER_SIZE)
        return;
    /* What was compared, for the log: the session id, else the sequence. */
    uint64_t sid = gmud_session_le64(msg.data), got_seq = gmud_session_le64(msg.data + 8);
    r->compared = 1;
    r->expected = sid != ep->sess.id ? ep->sess.id : ep->sess.recv_seq;
    r->got = sid != ep->sess.id ? sid : got_seq;
}

/* The rates apply: a bucket is on, and the mode is not the lecture's. In
 * lecture mode the server paces its client (one reply per packet it sent,
 * and a reply beyond those closes the connection), so holding or dropping
 * a reply would only stall the exchange: no limits there. */
static int rates_on(const ep_config *cfg)
{
    return (cfg->msg_rate != 0 || cfg->byte_rate != 0) && cfg->mode != GMUD_SESSION_LECTURE;
}

/* Over the rates once more, whether the message is held or dropped: a
 * warning packet at most once a period; past rate_close_ms of it, the
 * close, whose own error packet (how long) is sent in the warning's place.
 * 1 if it closes. */
static int over_rate(endpoint *ep, uint64_t now, ep_result *r)
{
    int what = gmud_overlimit_refused(&ep->over, now);
    r->warned = 0;
    if (what & GMUD_OVERLIMIT_CLOSE) {
        gmud_error e;
        gmud_error_set(&e, GMUD_ERR_RATE_LIMITED, 0, "over the rate limit for %llu ms",
                       (unsigned long long)gmud_overlimit_duration(&ep->over, now));
        add_error_packet(ep, &e, r);
        add_close(ep, EP_KIND_RATE, EP_CLOSE_RATE_LIMITED, &e, r);
        return 1;
    }
    if (what & GMUD_OVERLIMIT_WARN) {
        add_error_packet(ep, &ep->cfg->rate_error, r);
        r->warned = (r->what & EP_SEND) != 0;
    }
    return 0;
}

/* Shaping: how long until the buckets can pay for a message of len bytes;
 * 0 if they can now. GMUD_BUCKET_NEVER (a cost over a burst) cannot come:
 * ep_config_ready refuses a byte burst under the largest payload. */
static uint64_t rate_wait(const endpoint *ep, size_t len, uint64_t now)
{
    const ep_config *cfg = ep->cfg;
    uint64_t w = cfg->msg_rate != 0 ? gmud_bucket_wait(&ep->msg_bucket, 1, now) : 0;
    if (cfg->byte_rate != 0) {
        uint64_t b = gmud_bucket_wait(&ep->byte_bucket, len, now);
        if (b > w)
            w = b;
    }
    return w;
}

int ep_shapes(const endpoint *ep)
{
    return !ep->cfg->rate_drop && rates_on(ep->cfg);
}

/* Shaping: 1 if a message of len bytes must wait for the buckets (r says
 * how long, or that the connection closes); nothing of it is consumed. */
static int rate_holds(endpoint *ep, size_t len, uint64_t now, ep_result *r)
{
    if (!ep_shapes(ep))
        return 0;
    uint64_t wait = rate_wait(ep, len, now);
    if (wait == 0 || wait == GMUD_BUCKET_NEVER)
        return 0; /* NEVER: left to rate_allows, which refuses it */
    if (!over_rate(ep, now, r)) {
        r->what |= EP_HOLD;
        r->kind = EP_KIND_RATE;
        r->wait_ms = wait;
    }
    return 1;
}


/* 1 if the buckets pay for a message of len bytes; else it is refused
 * (dropped), and the reader throttled. Shaping asked rate_wait first, so
 * there this pays. */
static int rate_allows(endpoint *ep, size_t len, uint64_t now, ep_result *r)
{
    const ep_config *cfg = ep->cfg;
    if (!rates_on(cfg))
        return 1;
    int ok;
    if (cfg->msg_rate != 0 && cfg->byte_rate != 0)
        ok = gmud_bucket_take_both(&ep->msg_bucket, 1, &ep->byte_bucket, len, now);
    else if (cfg->msg_rate != 0)
        ok = gmud_bucket_take(&ep->msg_bucket, 1, now);
    else
        ok = gmud_bucket_take(&ep->byte_bucket, len, now);
    if (!ok) {
        add_refused(EP_KIND_RATE, &cfg->rate_error, r);
        r->what |= EP_THROTTLE;
        over_rate(ep, now, r);
    }
    return ok;
}

static void bad_payload(endpoint *ep, const gmud_error *e, ep_result *r)
{
    add_refused(EP_KIND_PAYLOAD, e, r);
    add_error_packet(ep, e, r);
    if (++ep->bad_messages >= ep->cfg->max_bad_messages)
        add_close(ep, EP_KIND_PAYLOAD, EP_CLOSE_BAD_MESSAGES, e, r);
}

void ep_on_framing_error(endpoint *ep, const gmud_error *e, ep_result *r)
{
    r->what = 0;
    r->json = NULL;
    if (ep->state == EP_DONE)
        return;
    add_refused(EP_KIND_FRAMING, e, r);
    add_error_packet(ep, e, r);
    add_close(ep, EP_KIND_FRAMING, EP_CLOSE_PROTOCOL, e, r);
}

void ep_on_end(endpoint *ep, ep_result *r)
{
    r->what = 0;
    r->json = NULL;
    if (ep->state == EP_OPEN && ep->peer_erred != EP_PEER_QUIET) {
        add_close(ep, EP_KIND_REFUSAL, EP_CLOSE_REFUSED, NULL, r);
        return;
    }
    if (ep->state != EP_AWAIT_WELCOME)
        return;
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_NOT_WELCOMED, 0,
                   "the server closed the connection before its welcome (is it full, "
                   "refusing this address, or running no sessions?)");
    add_close(ep, EP_KIND_UNWELCOMED, EP_CLOSE_SESSION, &e, r);
}

void ep_on_tick(endpoint *ep, uint64_t now, ep_result *r)
{
    r->what = 0;
    r->json = NULL;
    if (ep->state != EP_AWAIT_WELCOME || now < ep->welcome_due)
        return;
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_NOT_WELCOMED, 0,
                   "no welcome within %u ms: does the server run sessions (%s mode), "
                   "and TLS only if this client does?",
                   (unsigned)ep->cfg->welcome_timeout_ms, gmud_session_mode_name(ep->cfg->mode));
    add_close(ep, EP_KIND_TIMEOUT, EP_CLOSE_SESSION, &e, r);
}

/* ---- Receiving: the sessions --------------------------------------------- */

/* Client: the first packet must be the welcome, or the server's refusal
 * (server full, an address limit), which is reported with its code. */
static void take_welcome(endpoint *ep, gmud_slice msg, ep_result *r)
{
    ep_config *cfg = ep->cfg;
    if (cfg->frame.framing == GMUD_FRAMING_FIXED)
        msg = gmud_frame_trim_padding(msg);
    json_t *json = NULL;
    gmud_error e;
    int rc = gmud_json_parse(msg.data, msg.len, &cfg->json_limits, &json, &e);
    if (rc == GMUD_OK && gmud_session_refusal(json, &e) != GMUD_OK) {
        json_decref(json);
        add_close(ep, EP_KIND_REFUSAL, EP_CLOSE_REFUSED, &e, r);
        return;
    }
    if (rc == GMUD_OK)
        rc = gmud_session_welcomed(&ep->sess, cfg->mode, json, &e);
    json_decref(json);
    if (rc != GMUD_OK) {
        gmud_error w;
        gmud_error_set(&w, GMUD_ERR_NOT_WELCOMED, e.offset,
                       "the first packet is not a welcome (%s)", e.message);
        session_reject(ep, &w, r);
        return;
    }
    ep->state = EP_OPEN;
    r->what |= EP_WELCOMED;
}

/* Server, lecture mode: a reply refused by its checks. Carrying on, as the
 * lecture's server does, the next reply is expected to answer the next
 * packet. */
static void reply_refused(endpoint *ep, const gmud_error *e, ep_result *r)
{
    gmud_session *sess = &ep->sess;
    session_reject(ep, e, r);
    if (ep->state == EP_OPEN && sess->recv_seq < GMUD_SEQ_EXHAUSTED - 1)
        sess->recv_seq++;
}

/* Server, lecture mode: the reply's fields against what was sent; 1 if it
 * may be delivered. */
static int check_reply(endpoint *ep, const json_t *json, ep_result *r)
{
    gmud_session *sess = &ep->sess;
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
    reply_refused(ep, &e, r);
    return 0;
}

/* Client, lecture mode: the reply to the data packet being delivered. */
static void add_reply(endpoint *ep, ep_result *r)
{
    ep_config *cfg = ep->cfg;
    gmud_error e;
    if (ep->sess.send_seq == GMUD_SEQ_EXHAUSTED) {
        gmud_error_set(&e, GMUD_ERR_SEQ_EXHAUSTED, 0, "no sequence numbers left to reply with");
        add_close(ep, EP_KIND_SESSION, EP_CLOSE_SESSION, &e, r);
        return;
    }
    /* The longest reply was written at ep_config_ready: this fits. */
    ptrdiff_t n = gmud_session_lecture_reply(ep->sess.id, ep->sess.send_seq, cfg->reply_text,
                                             cfg->reply_len, cfg->out.data, cfg->out.cap, &e);
    if (n < 0)
        return;
    r->pkt.head_len = 0;
    r->pkt.body = cfg->out.data;
    r->pkt.body_len = (size_t)n;
    r->pkt.spend = SPEND_COUNT;
    r->what |= EP_SEND;
}

/* Is msg the peer's error packet (PROTOCOL.md 5): with JSON the object of
 * exactly "error" and "code"; as text "error <code>: <sentence>". An
 * endpoint that parses no JSON (gmud_sync) reads a JSON one only if it
 * begins as gmud and Python write it, {"error". 1 with e filled: the
 * code's number (0 for a name gmud does not know) and "<code>: <text>". */
/* Error packets that leave the connection open. */
static int is_warning(int code)
{
    return code == GMUD_ERR_RATE_LIMITED || code == GMUD_ERR_RATE_DROPPED ||
           code == GMUD_ERR_UNENCODABLE;
}

static int peer_error(const endpoint *ep, gmud_slice msg, const json_t *json, gmud_error *e)
{
    if (json != NULL)
        return gmud_json_error_packet(json, e);
    if (gmud_text_error_packet(msg.data, msg.len, e))
        return 1;
    if (ep->cfg->json || msg.len < 9 || memcmp(msg.data, "{\"error\"", 8) != 0)
        return 0;
    json_t *v = NULL;
    int is = gmud_json_parse(msg.data, msg.len, &ep->cfg->json_limits, &v, NULL) == GMUD_OK &&
             gmud_json_error_packet(v, e);
    json_decref(v);
    return is;
}

/* The order: the session check (cheap, and it must see every packet to
 * stay in step), the rate limits, the payload's parse, the lecture's
 * reply check, delivery. A packet that passed the header check is the
 * peer's next one whatever it holds, so it is committed before the parse:
 * the stream stays in step if its JSON is then refused. */
void ep_on_frame(endpoint *ep, gmud_slice msg, uint64_t now, ep_result *r)
{
    ep_config *cfg = ep->cfg;
    r->what = 0;
    r->json = NULL;
    if (ep->state != EP_OPEN) {
        if (ep->state == EP_AWAIT_WELCOME)
            take_welcome(ep, msg, r);
        return;
    }
    gmud_slice payload = msg;
    if (cfg->mode == GMUD_SESSION_ON && payload.len >= GMUD_SESSION_HEADER_SIZE) {
        payload.data += GMUD_SESSION_HEADER_SIZE;
        payload.len -= GMUD_SESSION_HEADER_SIZE;
    }
    if (cfg->frame.framing == GMUD_FRAMING_FIXED && !cfg->keep_padding)
        payload = gmud_frame_trim_padding(payload);
    /* A held frame is presented again whole: nothing may change before. */
    if (rate_holds(ep, payload.len, now, r))
        return;
    if (cfg->mode == GMUD_SESSION_ON && !gmud_session_header_accept(&ep->sess, msg.data, msg.len)) {
        header_refused(ep, msg, r);
        return;
    }
    msg = payload;
    if (!rate_allows(ep, msg.len, now, r))
        return;
    int lecture = cfg->mode == GMUD_SESSION_LECTURE;
    /* A lecture client answers every data packet, whatever it holds: the
     * server counted it. */
    if (lecture && cfg->role == EP_CLIENT)
        add_reply(ep, r);
    if (cfg->json) {
        gmud_error e;
        if (gmud_json_parse(msg.data, msg.len, &cfg->json_limits, &r->json, &e) != GMUD_OK) {
            /* A reply that is JSON but not an object is a bad reply (a
             * session error, PROTOCOL.md 6.5), not a bad payload. */
            if (lecture && cfg->role == EP_SERVER && e.code == GMUD_ERR_NOT_OBJECT)
                reply_refused(ep, &e, r);
            else
                bad_payload(ep, &e, r);
            return;
        }
    }
    if (lecture && cfg->role == EP_SERVER && !check_reply(ep, r->json, r)) {
        json_decref(r->json);
        r->json = NULL;
        return;
    }
    r->what |= EP_DELIVER;
    r->msg = msg;
    if (peer_error(ep, msg, r->json, &r->why)) {
        uint8_t now_erred = is_warning(r->why.code) ? EP_PEER_WARNED : EP_PEER_REFUSED;
        if (now_erred > ep->peer_erred)
            ep->peer_erred = now_erred;
        r->what |= EP_PEER_ERROR;
    } else if (ep->peer_erred == EP_PEER_WARNED) {
        ep->peer_erred = EP_PEER_QUIET;
    }
}
