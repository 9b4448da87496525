/* The one timer per rt that checks every timeout: frames begun and not
 * finished (slowloris), idle connections, closes past their linger, the
 * welcome a client waits for, idle buffers to give back, and a buffer
 * budget still exceeded. */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The sweep -------------------------------------------------------- */

/* Output queued and none of it taken for the send timeout: a peer that
 * stopped reading. Closed as a slow consumer, before it holds its queue
 * (and, with reading paused, the kernel's buffers) for ever. */
static int stalled(gmud_conn *conn, uint64_t now)
{
    const gmud_limits *lim = &conn->rt->limits;
    size_t q = conn_queued_bytes(conn);
    if (q == 0) {
        conn->last_tx = now; /* the clock counts from when output waits */
        return 0;
    }
    if (lim->send_timeout_ms == GMUD_OFF || now - conn->last_tx < lim->send_timeout_ms)
        return 0;
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_SLOW_CONSUMER, 0,
                   "%zu bytes queued and none taken for %llu ms (send timeout %u ms)", q,
                   (unsigned long long)(now - conn->last_tx), (unsigned)lim->send_timeout_ms);
    rt_logf(conn->rt, GMUD_LOG_WARN, conn->peer, "reject", "slow consumer: %s", e.message);
    conn_close_now(conn, GMUD_CLOSE_SLOW_CONSUMER, &e);
    return 1;
}

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
    if (stalled(conn, now) || conn_handshake_late(conn, now) || conn_proxy_late(conn, now))
        return;
    if (ep_awaiting_welcome(&conn->ep)) {
        ep_result r;
        ep_on_tick(&conn->ep, now, &r);
        conn_act(conn, &r);
        if (conn->state != CONN_OPEN)
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
            conn_start_reading(conn);
        return;
    }
    if (conn->flags & (CONN_PAUSED | CONN_HELD)) {
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
        /* Closes the server decides on its own are told, as refusals are:
         * the error packet, then the close (bounded by the linger). */
        conn_send_error(conn, gmud_err_name(e.code), e.message);
        conn_close_soft(conn, GMUD_CLOSE_FRAME_TIMEOUT, &e, lim->linger_ms);
        return;
    }
    if (lim->idle_timeout_ms != 0 && now - conn->last_rx >= lim->idle_timeout_ms) {
        gmud_error e;
        gmud_error_set(&e, GMUD_ERR_TIMEOUT, 0, "nothing received for %u ms",
                       lim->idle_timeout_ms);
        rt_logf(rt, GMUD_LOG_INFO, conn->peer, "timeout", "%s", e.message);
        conn_send_error(conn, gmud_err_name(e.code), e.message);
        conn_close_soft(conn, GMUD_CLOSE_IDLE_TIMEOUT, &e, lim->linger_ms);
        return;
    }
    /* Idle since the last sweep: give back the buffers. Busy: give back
     * what only a past peak needed. */
    if (!(conn->flags & CONN_ACTIVE) && conn_queued_bytes(conn) == 0 &&
        (conn->io == NULL || !conn->io->writing)) {
        gmud_frame_decoder_shrink(conn->dec);
        conn_free_io(conn);
        conn_shape_shrink(conn);
    } else {
        conn_trim_io(conn);
        if (gmud_frame_decoder_pending(conn->dec) == 0)
            gmud_frame_decoder_shrink(conn->dec);
    }
    conn->flags &= (uint16_t)~CONN_ACTIVE;
}

void rt_on_sweep(uv_timer_t *timer)
{
    rt_ctx *rt = timer->data;
    uint64_t now = uv_now(rt->loop);
    /* Closing only calls uv_close; connections leave the list later, in
     * on_closed, so walking it here is safe. */
    for (gmud_conn *c = rt->conns; c != NULL; c = c->next) {
        if (c->state != CONN_CLOSED)
            sweep_one(c, now);
    }
    /* Still over the buffer budget (a pass could not close enough at
     * once, and nothing has grown since): the next pass. */
    if (rt->budget_trip != UINT64_MAX && rt->stats.buffered_total > rt->limits.max_buffered_total)
        rt_budget_pass(rt);
}
