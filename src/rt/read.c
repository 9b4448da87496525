/* The read path: the loop's shared buffer in, whole frames out of the
 * decoder, each message through the checks to the application. A read's
 * bytes are decoded before the read callback returns (the decoder copies
 * only a frame that straddles two reads). */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Reading ---------------------------------------------------------- */

void conn_on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    gmud_conn *conn = handle->data;
    rt_readbuf *rb = conn->rt->readbuf;
    if (rb->busy) { /* not on Unix; libuv then reports UV_ENOBUFS */
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    rb->busy = 1;
    *buf = uv_buf_init((char *)rb->data, (unsigned)conn_read_size(conn));
}

void rt_count_reject(rt_ctx *rt, int code)
{
    rt->stats.rejects[-code > 0 && -code < GMUD_STATS_CODES ? -code : 0]++;
}

/* The one place a whole frame goes: to the protocol engine, whose decision
 * (deliver, refuse, answer, hold, close) conn_act carries out. */
int conn_frame_in(gmud_conn *conn, gmud_slice frame, const uint8_t *rest, size_t n)
{
    ep_result r;
    ep_on_frame(&conn->ep, frame, uv_now(conn->rt->loop), &r);
    if (r.what == EP_DELIVER) {
        conn_deliver(conn, &r);
        return 0;
    }
    conn_act(conn, &r);
    if (!(r.what & EP_HOLD) || conn->state != CONN_OPEN)
        return 0;
    conn_hold_input(conn, frame, rest, n, r.wait_ms);
    return 1;
}

static void reject_framing(gmud_conn *conn, const gmud_error *e)
{
    ep_result r;
    ep_on_framing_error(&conn->ep, e, &r);
    conn_act(conn, &r);
}

void conn_decode(gmud_conn *conn, const uint8_t *p, size_t n)
{
    int completed = 0;
    while (n > 0 && conn->state == CONN_OPEN) {
        gmud_slice msg;
        gmud_error e;
        ptrdiff_t used = gmud_frame_decode(conn->dec, p, n, &msg, &e);
        if (used < 0) {
            reject_framing(conn, &e);
            return;
        }
        if (used == 0)
            break;
        p += used;
        n -= (size_t)used;
        completed = 1;
        if (conn_frame_in(conn, msg, p, n)) {
            conn->frame_start = 0; /* held whole: the decoder is between frames */
            return;
        }
    }
    /* A frame that began in this read starts its own clock. */
    if (gmud_frame_decoder_pending(conn->dec) == 0)
        conn->frame_start = 0;
    else if (completed || conn->frame_start == 0)
        conn->frame_start = uv_now(conn->rt->loop);
}

/* The one place a connection's bytes enter from its socket: to the decoder
 * as they are, or through the connection's seam first (whose replies to
 * the peer, a handshake's, go out at once). */
static void bytes_in(gmud_conn *conn, const uint8_t *p, size_t n)
{
    if (conn->proxy != NULL) {
        /* A PROXY header first; what follows it goes on below, to the
         * seam its admission attached (a refusal's handshake too). */
        ptrdiff_t at = conn_proxy_in(conn, p, n);
        if (at < 0 || (size_t)at == n || conn->state == CONN_CLOSED ||
            (conn->state != CONN_OPEN && (conn->seam == NULL || seam_ready(conn->seam))))
            return;
        p += at;
        n -= (size_t)at;
    }
    seam *sm = conn->seam;
    if (sm == NULL) {
        conn_decode(conn, p, n);
        return;
    }
    rt_ctx *rt = conn->rt;
    byte_buf *plain = &rt->seam_plain;
    gmud_error e;
    byte_buf *wire = conn_wire_buf(conn, &e);
    plain->len = 0;
    if (wire == NULL) {
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return;
    }
    size_t before = wire->len;
    int was_ready = seam_ready(sm);
    int rc = sm->ops->input(sm, p, n, plain, wire, &e);
    /* Ready even if a record after the handshake, in the same read, was
     * then refused: the handshake did complete. */
    if (!was_ready && seam_ready(sm))
        conn_seam_became_ready(conn);
    if (rc != GMUD_OK) {
        /* The records before the refused one were authentic: what the
         * peer sent in them is delivered, then the connection closes. */
        if (conn->state == CONN_OPEN && plain->len > 0)
            conn_decode(conn, plain->data, plain->len);
        conn_seam_failed(conn, &e);
        return;
    }
    /* Closing: the seam still reads (a handshake must finish for a
     * refusal to go out), the plaintext is not decoded. */
    if (conn_wire_added(conn, wire->len - before, &e) == GMUD_OK && conn->state == CONN_OPEN)
        conn_decode(conn, plain->data, plain->len);
}

static void on_eof(gmud_conn *conn)
{
    rt_ctx *rt = conn->rt;
    conn->flags |= CONN_EOF;
    conn_stop_reading(conn);
    if (conn->state != CONN_OPEN) {
        /* Closing: once our FIN is out both ends are done; before that,
         * on_shutdown sees CONN_EOF and closes. */
        if (conn->flags & CONN_FIN_DONE)
            conn_close_now(conn, GMUD_CLOSE_PEER, NULL);
        return;
    }
    gmud_error e;
    if (conn->proxy != NULL) {
        conn_proxy_ended(conn);
        return;
    }
    if (conn->seam != NULL && !seam_ready(conn->seam)) {
        conn->seam->ops->end(conn->seam, &e); /* a handshake cut short */
        conn_seam_failed(conn, &e);
        return;
    }
    if (conn->seam != NULL && conn->seam->ops->end(conn->seam, &e) != GMUD_OK) {
        rt->stats.tls_unclean += rt->tls != NULL;
        rt_logf(rt, GMUD_LOG_INFO, conn->peer, "seam", "unclean end of %s: %s",
                conn->seam->ops->name, e.message);
    }
    if (gmud_frame_decoder_finish(conn->dec, &e) != GMUD_OK) {
        /* The peer only stopped sending: it still reads. It gets what was
         * queued for the messages it completed, then the error packet. */
        reject_framing(conn, &e);
        return;
    }
    ep_result r;
    ep_on_end(&conn->ep, &r);
    if (r.what != 0) {
        conn_act(conn, &r);
        return;
    }
    /* The peer may only have shut down its side: what we queued still goes
     * out before we close. */
    conn_close_soft(conn, GMUD_CLOSE_PEER, NULL, rt->limits.linger_ms);
}

void conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
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
        conn_io_error(conn, "read failed", (int)nread);
        return;
    }
    rt->stats.bytes_in += (uint64_t)nread;
    conn->bytes_in += (uint64_t)nread;
    if (conn->state != CONN_OPEN) {
        /* Closing: read only to see the peer's end of stream, and to finish
         * a handshake that what we queued waits for. */
        if (conn->seam != NULL && !seam_ready(conn->seam))
            bytes_in(conn, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    conn->last_rx = uv_now(rt->loop);
    conn->flags |= CONN_ACTIVE;
    bytes_in(conn, (const uint8_t *)buf->base, (size_t)nread);
    conn_recount(conn); /* the decoder's partial frame, and the replies queued */
    rt_budget_check(rt);
}
