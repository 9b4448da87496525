/* A connection's seam from open to ready: made after the server's
 * admission checks (so that a refused flood costs no TLS state), bounded
 * in number while handshakes are in progress, given a deadline, and, once
 * the handshake is done, the frames queued meanwhile go out. The TLS
 * context is made here from the config, once per server or client. */
#include "conn.h"
#include "tls_ctx.h"

int rt_tls_setup(rt_ctx *rt, const gmud_tls_config *cfg, const char *host, gmud_error *err)
{
    if (!cfg->enabled)
        return GMUD_OK;
    if (rt->seams.create != NULL)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "TLS and another seam at once");
    rt->tls = tls_ctx_create(cfg, rt->server != NULL, host, err);
    if (rt->tls == NULL)
        return GMUD_ERR_TLS;
    rt->seams.create = tls_seam_create;
    rt->seams.arg = &rt->tls->ctx;
    rt->hs_timeout_ms = cfg->handshake_timeout_ms;
    rt->hs_max = rt->server != NULL ? cfg->max_handshakes : 0;
    return GMUD_OK;
}

void rt_tls_free(rt_ctx *rt)
{
    tls_ctx_destroy(rt->tls);
    rt->tls = NULL;
}

static void handshake_refused(gmud_conn *conn, const char *why)
{
    rt_ctx *rt = conn->rt;
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_TLS, 0, "%s", why);
    rt_logf(rt, GMUD_LOG_WARN, conn->peer, "tls", "%s", why);
    conn_close_now(conn, GMUD_CLOSE_TLS, &e);
}

int conn_attach_seam(gmud_conn *conn, const seam_factory *seams)
{
    rt_ctx *rt = conn->rt;
    if (seams == NULL || seams->create == NULL || conn->seam != NULL)
        return 1;
    if (rt->hs_max != 0 && rt->handshaking >= rt->hs_max) {
        char why[96];
        snprintf(why, sizeof why, "refused: %zu TLS handshakes in progress, the maximum",
                 rt->handshaking);
        rt->stats.tls_busy++;
        handshake_refused(conn, why);
        return 0;
    }
    gmud_error e;
    conn->seam = seams->create(seams->arg, rt->server != NULL, &e);
    if (conn->seam == NULL) {
        rt_logf(rt, GMUD_LOG_ERROR, conn->peer, "tls", "%s", e.message);
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return 0;
    }
    if (!seam_ready(conn->seam))
        rt->handshaking++;
    return 1;
}

int conn_seam_start(gmud_conn *conn)
{
    seam *sm = conn->seam;
    if (sm == NULL)
        return 1;
    rt_ctx *rt = conn->rt;
    if (!seam_ready(sm))
        conn->deadline = rt->hs_timeout_ms != GMUD_OFF ? uv_now(rt->loop) + rt->hs_timeout_ms : 0;
    if (sm->ops->start == NULL)
        return 1;
    gmud_error e;
    byte_buf *wire = conn_wire_buf(conn, &e);
    size_t before = wire != NULL ? wire->len : 0;
    if (wire == NULL || sm->ops->start(sm, wire, &e) != GMUD_OK ||
        conn_wire_added(conn, wire->len - before, &e) != GMUD_OK) {
        conn_seam_failed(conn, &e);
        return 0;
    }
    return 1;
}

/* Plaintext on a TLS port: the peer cannot read TLS, so it is told in
 * plaintext, in its framing and mode (no welcome was sent: see
 * conn_seam_became_ready), within the bound on refusals at once. */
static void refuse_in_plaintext(gmud_conn *conn, const gmud_error *e)
{
    rt_ctx *rt = conn->rt;
    conn_seam_gone(conn);
    conn->deadline = 0;
    conn->flags |= CONN_REJECTED;
    rt->refusing++;
    conn_send_error(conn, gmud_err_name(GMUD_ERR_TLS_REQUIRED),
                    "this port speaks TLS: connect with TLS (gmud-client --tls)");
    conn_close_soft(conn, GMUD_CLOSE_TLS, e, rt->limits.linger_ms);
}

void conn_seam_failed(gmud_conn *conn, const gmud_error *e)
{
    rt_ctx *rt = conn->rt;
    if (conn->state == CONN_CLOSED)
        return;
    if (!seam_ready(conn->seam))
        rt->stats.tls_failed++;
    rt_logf(rt, GMUD_LOG_WARN, conn->peer, rt->tls != NULL ? "tls" : "seam", "%s", e->message);
    if (e->code == GMUD_ERR_TLS_REQUIRED && conn->state == CONN_OPEN &&
        rt->refusing < GMUD_MAX_REFUSING) {
        refuse_in_plaintext(conn, e);
        return;
    }
    conn_close_now(conn, GMUD_CLOSE_TLS, e);
}

void conn_seam_became_ready(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    rt->handshaking--;
    rt->stats.tls_handshakes++;
    conn->deadline = 0;
    if (rt->tls != NULL && rt->log_level >= GMUD_LOG_DEBUG) {
        char what[96];
        tls_seam_describe(conn->seam, what, sizeof what);
        rt_logf(rt, GMUD_LOG_DEBUG, conn->peer, "tls", "handshake done: %s", what);
    }
    /* A server welcomes once the connection is secure, and the
     * application hears of it then (a client in a session mode: once
     * welcomed, as without TLS). What was queued meanwhile (a refusal, a
     * client's first messages) goes out this turn. */
    int fresh = conn->state == CONN_OPEN && !(conn->flags & (CONN_COUNTED | CONN_REJECTED));
    gmud_error e;
    if (fresh && rt->server != NULL && rt->session.mode != GMUD_SESSION_OFF &&
        conn_welcome(conn, &e) != GMUD_OK) {
        rt_logf(rt, GMUD_LOG_ERROR, conn->peer, "accept", "no session: %s", e.message);
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return;
    }
    if (fresh && !ep_awaiting_welcome(&conn->ep))
        conn_announce(conn);
    if (conn_queued_bytes(conn) > 0)
        conn_mark_dirty(conn);
}

void conn_seam_gone(gmud_conn *conn)
{
    if (conn->seam == NULL)
        return;
    if (!seam_ready(conn->seam))
        conn->rt->handshaking--;
    conn->seam->ops->destroy(conn->seam);
    conn->seam = NULL;
}

int conn_handshake_late(gmud_conn *conn, uint64_t now)
{
    if (conn->seam == NULL || conn->deadline == 0 || now < conn->deadline ||
        seam_ready(conn->seam))
        return 0;
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_TIMEOUT, 0, "TLS handshake not done after %u ms",
                   (unsigned)conn->rt->hs_timeout_ms);
    conn_seam_failed(conn, &e);
    return 1;
}

int conn_seam_close(gmud_conn *conn)
{
    seam *sm = conn->seam;
    if (sm == NULL || sm->ops->close == NULL || !seam_ready(sm))
        return 0;
    gmud_error e;
    byte_buf *wire = conn_wire_buf(conn, &e);
    if (wire == NULL)
        return 0;
    size_t before = wire->len;
    if (sm->ops->close(sm, wire, &e) != GMUD_OK || wire->len == before)
        return 0;
    conn_hold(conn, (size_t)conn->held + (wire->len - before));
    return 1;
}
