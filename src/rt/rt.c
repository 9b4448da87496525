/* One rt per server or client: its handles on the loop, its log, and its
 * end once every handle and connection has closed. */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Logging ---------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 7, 0)))
#endif
static void log_v(rt_ctx *rt, gmud_log_level level, const char *peer, const char *event,
                  const gmud_log_field *fields, size_t nfields, const char *fmt, va_list ap)
{
    char reason[320];
    vsnprintf(reason, sizeof reason, fmt, ap);
    gmud_log_event ev = {level, peer ? peer : "-", event, reason, fields, nfields};
    rt->log(rt->log_user, &ev);
}

void rt_logf(rt_ctx *rt, gmud_log_level level, const char *peer, const char *event,
             const char *fmt, ...)
{
    if (rt->log == NULL || level > rt->log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(rt, level, peer, event, NULL, 0, fmt, ap);
    va_end(ap);
}

void rt_logf_fields(rt_ctx *rt, gmud_log_level level, const char *peer, const char *event,
                    const gmud_log_field *fields, size_t nfields, const char *fmt, ...)
{
    if (rt->log == NULL || level > rt->log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(rt, level, peer, event, fields, nfields, fmt, ap);
    va_end(ap);
}


/* ---- The rt ----------------------------------------------------------- */

void rt_take_config(rt_ctx *rt, const gmud_conn_config *cfg)
{
    rt->frame = cfg->frame;
    rt->payload = cfg->payload;
    rt->json = cfg->json;
    rt->limits = cfg->limits;
    rt->session = cfg->session;
    rt->cb = cfg->cb;
    rt->log = cfg->log;
    rt->log_user = cfg->log_user;
    rt->log_level = cfg->log_level;
}

int rt_init(rt_ctx *rt, uv_loop_t *loop, gmud_error *err)
{
    int rc = gmud_frame_config_check(&rt->frame, err);
    if (rc == GMUD_OK)
        rc = gmud_limits_check(&rt->limits, err);
    if (rc != GMUD_OK)
        return rc;
    if (rt->payload != GMUD_PAYLOAD_TEXT && rt->payload != GMUD_PAYLOAD_JSON)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "unknown payload %d", (int)rt->payload);
    rc = rt_engine_init(rt, err);
    if (rc != GMUD_OK)
        return rc;
    rt->readbuf = rt_readbuf_take(loop);
    if (rt->readbuf == NULL) {
        ep_config_free(&rt->ep);
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for the read buffer");
    }
    rt->loop = loop;
    /* The buffer budget is a server's (a client has one connection). */
    if (rt->server == NULL)
        rt->limits.max_buffered_total = GMUD_OFF;
    rt->budget_trip = rt->limits.max_buffered_total != GMUD_OFF
                          ? rt->limits.max_buffered_total : UINT64_MAX;
    uv_check_init(loop, &rt->check);
    uv_idle_init(loop, &rt->idle);
    uv_timer_init(loop, &rt->sweep);
    rt->check.data = rt;
    rt->idle.data = rt;
    rt->sweep.data = rt;
    rt->handles_open = 3;
    uv_timer_start(&rt->sweep, rt_on_sweep, rt->limits.sweep_ms, rt->limits.sweep_ms);
    /* The sweep alone must not keep the loop alive. */
    uv_unref((uv_handle_t *)&rt->sweep);
    return GMUD_OK;
}


/* Frees the rt's memory (and its owner) once it is closing and every
 * handle, connections included, has had its close callback. */
void rt_maybe_free(rt_ctx *rt)
{
    if (!rt->closing || rt->handles_open > 0 || rt->conns != NULL)
        return;
    rt_readbuf_give(rt->readbuf);
    ep_config_free(&rt->ep);
    buf_free(&rt->seam_plain);
    rt_tls_free(rt);
    buf_free(&rt->shape_spare);
    buf_free(&rt->scratch);
    buf_free(&rt->frames);
    rt->free_owner(rt);
}

void rt_handle_closed(uv_handle_t *handle)
{
    rt_ctx *rt = handle->data;
    rt->handles_open--;
    rt_maybe_free(rt);
}

void rt_close(rt_ctx *rt)
{
    rt->conn_gone = NULL;
    rt->closing = 1;
    for (gmud_conn *c = rt->conns; c != NULL; c = c->next) {
        c->flags &= (uint16_t)~CONN_NOTIFY;
        conn_close_now(c, GMUD_CLOSE_SHUTDOWN, NULL);
    }
    uv_close((uv_handle_t *)&rt->check, rt_handle_closed);
    uv_close((uv_handle_t *)&rt->idle, rt_handle_closed);
    uv_close((uv_handle_t *)&rt->sweep, rt_handle_closed);
}
