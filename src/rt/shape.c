/* Rate shaping (gmud_limits.rate_policy GMUD_RATE_SHAPE): when the engine
 * says a frame must wait for the connection's buckets (EP_HOLD), the frame
 * and the rest of the input it came with are kept here, reading stops, and
 * a one-shot timer at the time the buckets can pay presents the frame
 * again, then decodes the rest. While nothing is read the kernel's receive
 * buffer fills, TCP's window closes, and the sender is slowed: an honest
 * burst arrives late, never cut.
 *
 * Bounds: a connection holds at most one frame (max_message) and the rest
 * of one read. Under shaping every read is SHAPED_READ bytes at most (a
 * connection's throughput is bounded by its byte rate anyway), so that
 * rest stays small; the bytes held count in the server's buffer
 * budget. The timer and buffer are taken at the connection's first hold
 * (an honest connection that never meets its rates has neither) and kept
 * until it closes, except that an idle sweep gives the buffer back. */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

/* A shaped connection's largest read. At the default byte rate (256 KiB/s)
 * that is 64 reads a second at most, nothing beside the messages. */
enum { SHAPED_READ = 4096 };

typedef struct conn_shape {
    uv_timer_t timer;   /* timer.data == this */
    rt_ctx *rt;
    gmud_conn *conn;    /* NULL once the connection is gone */
    byte_buf held;      /* the frame, then the input after it */
    size_t frame_len;   /* the frame's bytes, at the start of held */
} conn_shape;

static void shape_closed(uv_handle_t *handle)
{
    conn_shape *sh = handle->data;
    rt_ctx *rt = sh->rt;
    buf_free(&sh->held);
    free(sh);
    rt->handles_open--; /* counted at create: the rt outlives the timer */
    rt_maybe_free(rt);
}

/* The connection may read again unless something else stops it. */
static void resume(gmud_conn *conn)
{
    if (conn->state == CONN_OPEN && !(conn->flags & CONN_PAUSED))
        conn_start_reading(conn);
}

/* The timer: the held frame again, then the rest, as if just read. Either
 * may be held once more (the frame, if the loop's clock is behind the
 * buckets'; a later frame of the rest, once the burst is spent): then the
 * new hold is built in a buffer of its own, so the bytes being replayed
 * are never overwritten while read. */
static void on_due(uv_timer_t *timer)
{
    conn_shape *sh = timer->data;
    gmud_conn *conn = sh->conn;
    rt_ctx *rt = sh->rt;
    if (conn == NULL || conn->state != CONN_OPEN || !(conn->flags & CONN_HELD))
        return;
    byte_buf b = sh->held;
    size_t frame_len = sh->frame_len;
    sh->held = rt->shape_spare;
    rt->shape_spare = (byte_buf){NULL, 0, 0};
    conn->flags &= (uint16_t)~CONN_HELD;
    conn->flags |= CONN_ACTIVE;
    gmud_slice frame = {b.data, frame_len};
    if (!conn_frame_in(conn, frame, b.data + frame_len, b.len - frame_len))
        conn_decode(conn, b.data + frame_len, b.len - frame_len);
    b.len = 0;
    if (rt->shape_spare.data == NULL)
        rt->shape_spare = b;
    else
        buf_free(&b);
    if (!(conn->flags & CONN_HELD))
        resume(conn);
    conn_recount(conn);
    rt_budget_check(rt);
}

static conn_shape *shape_of(gmud_conn *conn)
{
    if (conn->shape != NULL)
        return conn->shape;
    conn_shape *sh = calloc(1, sizeof *sh);
    if (sh == NULL)
        return NULL;
    uv_timer_init(conn->rt->loop, &sh->timer);
    sh->timer.data = sh;
    sh->rt = conn->rt;
    sh->conn = conn;
    conn->rt->handles_open++;
    conn->shape = sh;
    return sh;
}

void conn_hold_input(gmud_conn *conn, gmud_slice frame, const uint8_t *rest, size_t n,
                     uint64_t wait_ms)
{
    conn_shape *sh = shape_of(conn);
    gmud_error e;
    if (sh == NULL || buf_reserve(&sh->held, frame.len + n) != 0) {
        gmud_error_set(&e, GMUD_ERR_NOMEM, 0, "out of memory holding %zu bytes for the rates",
                       frame.len + n);
        conn_close_now(conn, GMUD_CLOSE_IO, &e);
        return;
    }
    /* held is empty here: on_due moved the bytes it replays out of it. */
    memcpy(sh->held.data, frame.data, frame.len);
    if (n > 0)
        memcpy(sh->held.data + frame.len, rest, n);
    sh->held.len = frame.len + n;
    sh->frame_len = frame.len;
    conn->flags |= CONN_HELD;
    conn_stop_reading(conn);
    conn->rt->stats.rate_held++;
    uv_timer_start(&sh->timer, on_due, wait_ms, 0);
}

void conn_unhold(gmud_conn *conn)
{
    conn_shape *sh = conn->shape;
    conn->flags &= (uint16_t)~CONN_HELD;
    if (sh == NULL)
        return;
    uv_timer_stop(&sh->timer);
    sh->held.len = 0;
}

size_t conn_held_input(const gmud_conn *conn)
{
    return conn->shape != NULL ? conn->shape->held.len : 0;
}

void conn_shape_close(gmud_conn *conn)
{
    conn_shape *sh = conn->shape;
    if (sh == NULL)
        return;
    conn->shape = NULL;
    conn->flags &= (uint16_t)~CONN_HELD;
    sh->conn = NULL;
    buf_free(&sh->held); /* now: the timer's close can be a long turn away */
    uv_close((uv_handle_t *)&sh->timer, shape_closed);
}

size_t conn_read_size(const gmud_conn *conn)
{
    return ep_shapes(&conn->ep) ? SHAPED_READ : GMUD_READ_BUFFER_SIZE;
}

void conn_shape_shrink(gmud_conn *conn)
{
    if (conn->shape != NULL && !(conn->flags & CONN_HELD))
        buf_free(&conn->shape->held);
}
