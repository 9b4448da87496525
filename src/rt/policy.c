/* What the runtime decides about a connection's traffic today: the session
 * checks and the welcome, the lecture's replies, the rate decisions, the
 * bytes of error packets, and the checks of a config. Kept apart from the
 * mechanism (read.c, write.c) because it is the part the sans-I/O protocol
 * engine of issue 9 takes over, for the event runtime and the blocking
 * client at once. */
#include "conn.h"
#include "policy.h"
#include "frame_head.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        return conn_send_payload(conn, NULL, 0, data, len, err);
    return conn_send_frame(conn, data, len, err);
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


/* ---- Sessions and spam limits on receipt ------------------------------ */

/* A packet failed a session check: security event, then (unless the
 * lecture's carry-on is asked for) error packet and close. */
void policy_session_reject(gmud_conn *conn, const gmud_error *e)
{
    rt_ctx *rt = conn->rt;
    rt->stats.security++;
    rt_count_reject(rt, e->code);
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
void policy_take_welcome(gmud_conn *conn, gmud_slice msg)
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
        policy_session_reject(conn, &w);
        return;
    }
    rt_logf(rt, GMUD_LOG_INFO, conn->peer, "session", "welcomed: session %llu, %s mode",
            (unsigned long long)conn->sess.id, gmud_session_mode_name(rt->session.mode));
    conn->flags &= (uint16_t)~CONN_AWAIT_WELCOME;
    conn_announce(conn);
}


void policy_header_refused(gmud_conn *conn, gmud_slice msg)
{
    uint64_t seq = 0;
    gmud_error e;
    if (gmud_session_header_check(&conn->sess, msg.data, msg.len, &seq, &e) == GMUD_OK)
        gmud_error_set(&e, GMUD_ERR_INVALID, 0, "session check disagrees with itself");
    policy_session_reject(conn, &e);
}

/* Mode lecture, server: the reply's fields against what was sent. */
int policy_check_reply(gmud_conn *conn, const json_t *json)
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
    policy_session_reject(conn, &e);
    /* Carrying on, as the lecture's server does: the next reply is expected
     * to answer the next packet. */
    if (conn->state == CONN_OPEN && sess->recv_seq < GMUD_SEQ_EXHAUSTED - 1)
        sess->recv_seq++;
    return 0;
}

/* Mode lecture, client: the reply to the data packet just delivered. */
void policy_send_reply(gmud_conn *conn)
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
        n = conn_send_payload(conn, NULL, 0, rt->reply.data, (size_t)n, &e);
    if (n < 0)
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "session", "cannot reply: %s", e.message);
}

/* A refused message: counted; a warning at most once a period; closed once
 * over the limit for long. */
void policy_rate_refused(gmud_conn *conn, uint64_t now)
{
    rt_ctx *rt = conn->rt;
    const gmud_limits *lim = &rt->limits;
    rt->stats.rate_dropped++;
    rt_count_reject(rt, GMUD_ERR_RATE_LIMITED);
    /* A spammer's whole read is dropped frame by frame: keep this cheap (the
     * sentence was written once, at init), and stop reading from it until
     * the next sweep, so that it cannot keep the loop busy decoding what
     * will be dropped while honest connections wait. The kernel holds the
     * rest; TCP pushes back on the sender. */
    if (!(conn->flags & CONN_THROTTLED) && conn->state == CONN_OPEN) {
        conn->flags |= CONN_THROTTLED;
        conn_stop_reading(conn);
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



/* The largest welcome: {"session_id": 9007199254740991, "sequence_id": 0}. */
enum { WELCOME_MAX = 50 };

static int session_framing_check(const rt_ctx *rt, gmud_error *err)
{
    const gmud_frame_config *f = &rt->frame;
    gmud_session_mode mode = rt->session.mode;
    size_t room = frame_room(f);
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
    size_t room = frame_room(f);
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
