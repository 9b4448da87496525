/* The event runtime's side of the protocol engine (src/core/endpoint.c):
 * the engine decides, this file carries each decision out with the
 * runtime's mechanisms: counters, log lines, callbacks, the output queue,
 * reading on and off, the close state machine. No policy of its own. */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rt_engine_init(rt_ctx *rt, gmud_error *err)
{
    ep_config *c = &rt->ep;
    const gmud_limits *lim = &rt->limits;
    memset(c, 0, sizeof *c);
    c->role = rt->server != NULL ? EP_SERVER : EP_CLIENT;
    c->frame = rt->frame;
    c->mode = rt->session.mode;
    c->json = rt->payload == GMUD_PAYLOAD_JSON;
    c->json_errors = c->json;
    c->carry_on = rt->session.carry_on;
    c->reply_data = rt->session.reply_data;
    c->json_limits = rt->json;
    c->max_bad_messages = lim->max_bad_messages;
    c->msg_rate = lim->msg_rate;
    c->msg_burst = lim->msg_burst;
    c->byte_rate = lim->byte_rate;
    c->byte_burst = lim->byte_burst;
    c->rate_close_ms = lim->rate_close_ms;
    c->rate_drop = lim->rate_policy == GMUD_RATE_DROP;
    c->welcome_timeout_ms = rt->session.welcome_timeout_ms;
    rt->session.reply_data = NULL; /* the caller's pointer; the engine copied it */
    return ep_config_ready(c, err);
}

/* ---- Sending through the engine ----------------------------------------- */

/* Queues pkt as conn's next frame and, once it is queued whole, spends its
 * sequence: a packet that fails to queue leaves no gap. */
static int queue_packet(gmud_conn *conn, const ep_packet *pkt, gmud_error *err)
{
    int rc = conn_send_payload(conn, pkt->head, pkt->head_len, pkt->body, pkt->body_len, err);
    if (rc == GMUD_OK)
        ep_send_commit(&conn->ep, pkt);
    return rc;
}

/* The session can send no more: as PROTOCOL.md 6.3 has it, nothing more is
 * sent, seq_exhausted is logged, and the connection closes. */
static void exhausted(gmud_conn *conn, const gmud_error *e)
{
    rt_count_reject(conn->rt, e->code);
    rt_logf(conn->rt, GMUD_LOG_WARN, conn->peer, "session", "%s: connection %llu: %s",
            gmud_err_name(e->code), (unsigned long long)conn->id, e->message);
    conn_close_soft(conn, GMUD_CLOSE_SESSION, e, conn->rt->limits.linger_ms);
}

int conn_send_frame(gmud_conn *conn, const void *data, size_t len, gmud_error *err)
{
    ep_packet pkt;
    gmud_error e;
    int rc = ep_send_begin(&conn->ep, data, len, &pkt, &e);
    if (rc == GMUD_ERR_SEQ_EXHAUSTED)
        exhausted(conn, &e);
    if (rc != GMUD_OK) {
        if (err != NULL)
            *err = e;
        return rc;
    }
    return queue_packet(conn, &pkt, err);
}

int gmud_conn_send(gmud_conn *conn, const void *data, size_t len, gmud_error *err)
{
    return conn_send_frame(conn, data, len, err);
}

int gmud_conn_send_json(gmud_conn *conn, const json_t *v, gmud_error *err)
{
    ptrdiff_t n = rt_dump_json(conn->rt, v, err);
    if (n < 0)
        return (int)n;
    return conn_send_frame(conn, conn->rt->scratch.data, (size_t)n, err);
}

void conn_send_error(gmud_conn *conn, const char *code, const char *message)
{
    ep_packet pkt;
    gmud_error e;
    if (ep_error_packet(&conn->ep, code, message, &pkt, &e) != GMUD_OK ||
        queue_packet(conn, &pkt, &e) != GMUD_OK)
        rt_logf(conn->rt, GMUD_LOG_DEBUG, conn->peer, "error", "error packet %s not sent: %s",
                code, e.message);
}

int conn_welcome(gmud_conn *conn, gmud_error *err)
{
    ep_packet pkt;
    int rc = ep_welcome(&conn->ep, &pkt, err);
    return rc != GMUD_OK ? rc : queue_packet(conn, &pkt, err);
}

/* ---- Carrying out a decision -------------------------------------------- */

static void report(gmud_conn *conn, const ep_result *r)
{
    rt_ctx *rt = conn->rt;
    const gmud_error *e = &r->why;
    rt_count_reject(rt, e->code);
    switch (r->kind) {
    case EP_KIND_SESSION: {
        rt->stats.security++;
        gmud_log_field f[5] = {
            {"kind", gmud_err_name(e->code), 0},
            {"id", NULL, (long long)conn->id},
            {"session", NULL, (long long)conn->ep.sess.id},
            {"expected", NULL, (long long)r->expected},
            {"got", NULL, (long long)r->got},
        };
        rt_logf_fields(rt, GMUD_LOG_WARN, conn->peer, "security", f, r->compared ? 5 : 3,
                       "%s: connection %llu, session %llu: %s", gmud_err_name(e->code),
                       (unsigned long long)conn->id, (unsigned long long)conn->ep.sess.id,
                       e->message);
        break;
    }
    case EP_KIND_RATE:
        rt->stats.rate_dropped++;
        if (r->warned)
            rt_logf(rt, GMUD_LOG_WARN, conn->peer, "rate", "%s", e->message);
        break;
    case EP_KIND_PAYLOAD:
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "reject", "bad payload (%s): %s",
                gmud_err_name(e->code), e->message);
        return;
    default:
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "reject", "framing error (%s): %s",
                gmud_err_name(e->code), e->message);
        return;
    }
    if (rt->cb.on_reject != NULL)
        rt->cb.on_reject(conn, e, rt->cb.user);
}

/* A spammer's whole read is refused frame by frame: stop reading from it
 * until the next sweep, so that it cannot keep the loop busy decoding what
 * will be dropped while honest connections wait. The kernel holds the
 * rest; TCP pushes back on the sender. */
static void throttle(gmud_conn *conn)
{
    if (!(conn->flags & CONN_THROTTLED) && conn->state == CONN_OPEN) {
        conn->flags |= CONN_THROTTLED;
        conn_stop_reading(conn);
    }
}

static const gmud_close_reason close_reasons[] = {
    [EP_CLOSE_NONE] = GMUD_CLOSE_PROTOCOL,
    [EP_CLOSE_SESSION] = GMUD_CLOSE_SESSION,
    [EP_CLOSE_PROTOCOL] = GMUD_CLOSE_PROTOCOL,
    [EP_CLOSE_BAD_MESSAGES] = GMUD_CLOSE_BAD_MESSAGES,
    [EP_CLOSE_RATE_LIMITED] = GMUD_CLOSE_RATE_LIMITED,
    [EP_CLOSE_REFUSED] = GMUD_CLOSE_REFUSED,
};

static void close_for(gmud_conn *conn, const ep_result *r)
{
    rt_ctx *rt = conn->rt;
    const gmud_error *d = r->detail.code != GMUD_OK ? &r->detail : NULL;
    gmud_close_reason reason = close_reasons[r->close];
    if (r->close == EP_CLOSE_RATE_LIMITED)
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "rate", "closing: %s", r->detail.message);
    else if (!(r->what & EP_REFUSED) && d != NULL)
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "session", "%s", r->detail.message);
    /* Nothing came from a server that never welcomed us: nothing to wait
     * for either. */
    int unwelcomed = r->kind == EP_KIND_TIMEOUT || r->kind == EP_KIND_UNWELCOMED;
    if (!(r->what & EP_REFUSED) && unwelcomed)
        conn_close_now(conn, reason, d);
    else
        conn_close_soft(conn, reason, d, rt->limits.linger_ms);
}

void conn_act(gmud_conn *conn, ep_result *r)
{
    unsigned what = r->what;
    if (what & EP_REFUSED)
        report(conn, r);
    if (what & EP_SEND) {
        gmud_error e;
        if (queue_packet(conn, &r->pkt, &e) != GMUD_OK)
            rt_logf(conn->rt, GMUD_LOG_DEBUG, conn->peer, "error", "packet not sent: %s",
                    e.message);
    }
    if (what & EP_WELCOMED) {
        rt_logf(conn->rt, GMUD_LOG_INFO, conn->peer, "session", "welcomed: session %llu, %s mode",
                (unsigned long long)conn->ep.sess.id, gmud_session_mode_name(conn->ep.cfg->mode));
        conn_announce(conn);
    }
    if (what & EP_PEER_ERROR)
        conn_peer_said(conn, &r->why);
    if (what & EP_DELIVER)
        conn_deliver(conn, r);
    if (what & EP_THROTTLE)
        throttle(conn);
    if ((what & EP_HOLD) && r->warned) /* the caller holds the input */
        rt_logf(conn->rt, GMUD_LOG_WARN, conn->peer, "rate", "%s",
                conn->ep.cfg->rate_error.message);
    if (what & EP_CLOSE)
        close_for(conn, r);
}
