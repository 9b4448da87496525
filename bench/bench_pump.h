/* bench/bench_pump.h: the gmud sides of a streaming benchmark, shared by
 * bench_stream and bench_session.
 *
 *   bench_pump_sink_main()  a gmud_server (run in a forked child) that
 *                           counts the messages, checks each one, and
 *                           answers the last with BENCH_ACK;
 *   bench_pump_writer()     an event client (gmud_client) that calls
 *                           gmud_conn_send() once per message, topping its
 *                           queue up to the backlog once per loop turn (the
 *                           runtime writes a turn's messages together), and
 *                           times on_connect to the ack.
 * Any framing, payload type and session mode, in plain TCP or TLS; the spam limits are off
 * (throughput is what is measured). Failures end the program (bench_fail).
 */
#ifndef GMUD_BENCH_PUMP_H
#define GMUD_BENCH_PUMP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "bench_net.h"
#include "bench_server.h"
#include "bench_tls.h"
#include "bench_util.h"
#include "gmud/client.h"
#include "gmud/server.h"

/* The sink's answer to the last message: a JSON object, so that a client
 * with JSON payload takes it too. */
#define BENCH_ACK "{\"ok\":1}"
#define BENCH_ACK_LEN (sizeof BENCH_ACK - 1)

typedef struct bench_pump {
    gmud_frame_config frame;
    gmud_payload payload;   /* of both ends */
    gmud_session_mode mode; /* of both ends */
    const uint8_t *msg;     /* one message, sent again and again */
    size_t len;
    size_t frame_bytes;     /* on the wire per message, headers included */
    size_t messages;
    size_t backlog;         /* bytes the writer keeps queued */
    const bench_tls *tls;   /* NULL: plain TCP; else both ends in TLS 1.3 */
} bench_pump;

/* ---- The sink ----------------------------------------------------------- */

typedef struct bench_sink {
    bench_server srv; /* first: the callbacks' user */
    const bench_pump *p;
    size_t count, bad;
} bench_sink;

static inline void bench_sink_on_message(gmud_conn *conn, const uint8_t *data, size_t len,
                                         json_t *json, void *user)
{
    (void)data;
    bench_sink *k = user;
    /* With json the parsed value must be there; nothing more is read from
     * it (bench_session's baseline reads nothing from json_loadb's value). */
    if (len != k->p->len || (k->p->payload == GMUD_PAYLOAD_JSON && !json_is_object(json)))
        k->bad++;
    if (++k->count == k->p->messages) {
        gmud_error err;
        if (gmud_conn_send(conn, BENCH_ACK, BENCH_ACK_LEN, &err) != 0)
            bench_fail("sink: ack: %s", err.message);
    }
}

static inline void bench_sink_on_close(gmud_conn *conn, gmud_close_reason reason,
                                       const gmud_error *detail, void *user)
{
    (void)conn;
    bench_server_closed(&((bench_sink *)user)->srv, reason, detail);
}

/* Listens on a free port, writes it to port_fd, serves one writer, exits. */
static inline void bench_pump_sink_main(const bench_pump *p, int port_fd)
{
    static bench_sink k;
    k.p = p;
    gmud_server_config cfg;
    bench_server_config(&cfg, 1);
    cfg.conn.frame = p->frame;
    cfg.conn.payload = p->payload;
    cfg.conn.session.mode = p->mode;
    if (p->tls != NULL)
        bench_tls_server(p->tls, &cfg.conn.tls);
    cfg.conn.cb.on_message = bench_sink_on_message;
    cfg.conn.cb.on_close = bench_sink_on_close;
    cfg.conn.cb.user = &k;
    bench_server_start(&k.srv, "sink", 1, &cfg, port_fd);
    uv_run(&k.srv.loop, UV_RUN_DEFAULT);
    if (k.count != p->messages || k.bad != 0)
        bench_fail("sink: %zu of %zu messages, %zu of them wrong", k.count, p->messages, k.bad);
    gmud_stats st;
    gmud_server_stats(k.srv.server, &st);
    if (st.security != 0)
        bench_fail("sink: %llu packets refused by the session check",
                   (unsigned long long)st.security);
    bench_server_finish(&k.srv);
    _exit(0);
}

/* ---- The writer --------------------------------------------------------- */

typedef struct bench_source {
    uv_loop_t loop;
    const bench_pump *p;
    gmud_client *client;
    gmud_conn *conn;
    uv_check_t pump;
    size_t left;
    uint64_t t0, t1;
    double cpu0, cpu;
    int pumping, acked, closed;
} bench_source;

static inline void bench_source_stop_pump(bench_source *c)
{
    if (c->pumping) {
        uv_check_stop(&c->pump);
        c->pumping = 0;
    }
}

/* Tops the queue up to the backlog, one gmud_conn_send per message. Runs
 * once per loop turn from a uv_check handle: a send arms the runtime's own
 * idle handle, so the next turn does not sleep in poll and the runtime's
 * check flushes the turn's messages; with the backlog full the loop sleeps
 * until a write completes. */
static inline void bench_source_fill(bench_source *c)
{
    const bench_pump *p = c->p;
    size_t queued = gmud_conn_queued(c->conn);
    gmud_error err;
    while (c->left > 0 && queued + p->frame_bytes <= p->backlog) {
        if (gmud_conn_send(c->conn, p->msg, p->len, &err) != 0)
            bench_fail("gmud_conn_send: %s", err.message);
        queued += p->frame_bytes;
        c->left--;
    }
    if (c->left == 0)
        bench_source_stop_pump(c);
}

static inline void bench_source_on_check(uv_check_t *h)
{
    bench_source_fill(h->data);
}

/* With a session mode this runs once the welcome has arrived: sends before
 * it are refused. */
static inline void bench_source_on_connect(gmud_conn *conn, void *user)
{
    bench_source *c = user;
    c->conn = conn;
    c->cpu0 = bench_cpu_seconds();
    c->t0 = bench_now_ns();
    c->pumping = 1;
    uv_check_start(&c->pump, bench_source_on_check);
    bench_source_fill(c);
}

static inline void bench_source_on_message(gmud_conn *conn, const uint8_t *data, size_t len,
                                           json_t *json, void *user)
{
    (void)conn;
    (void)json;
    bench_source *c = user;
    if (len == BENCH_ACK_LEN && memcmp(data, BENCH_ACK, BENCH_ACK_LEN) == 0 && c->left == 0) {
        c->t1 = bench_now_ns();
        c->cpu = bench_cpu_seconds() - c->cpu0;
        c->acked = 1;
        gmud_client_close(c->client);
    }
}

static inline void bench_source_on_close(gmud_conn *conn, gmud_close_reason reason,
                                         const gmud_error *detail, void *user)
{
    (void)conn;
    bench_source *c = user;
    if (!c->acked)
        bench_fail("client closed before the ack: %s%s%s", gmud_close_reason_name(reason),
                   detail ? ": " : "", detail ? detail->message : "");
    c->closed = 1;
    bench_source_stop_pump(c);
    uv_stop(&c->loop);
}

/* Streams p->messages to 127.0.0.1:port; *wall_s from the connection (the
 * welcome, with sessions) to the ack, *cpu_s this process's CPU meanwhile. */
static inline void bench_pump_writer(const bench_pump *p, uint16_t port, double *wall_s,
                                     double *cpu_s)
{
    bench_source c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.left = p->messages;
    if (uv_loop_init(&c.loop) != 0)
        bench_fail("uv_loop_init");
    uv_check_init(&c.loop, &c.pump);
    c.pump.data = &c;

    gmud_client_config cfg;
    gmud_client_default_config(&cfg);
    cfg.port = port;
    cfg.conn.frame = p->frame;
    cfg.conn.payload = p->payload;
    cfg.conn.session.mode = p->mode;
    if (p->tls != NULL)
        bench_tls_client(p->tls, &cfg.conn.tls);
    /* Room for the backlog and more: the sender itself keeps the queue at
     * the backlog, so the slow-consumer limit is never the brake. */
    cfg.conn.limits.max_queued = 4 * p->backlog + 4 * p->frame_bytes;
    cfg.conn.limits.read_high_water = 2 * p->backlog + 2 * p->frame_bytes;
    cfg.conn.limits.read_low_water = p->backlog;
    cfg.conn.cb.on_connect = bench_source_on_connect;
    cfg.conn.cb.on_message = bench_source_on_message;
    cfg.conn.cb.on_close = bench_source_on_close;
    cfg.conn.cb.user = &c;
    gmud_error err;
    c.client = gmud_client_create(&c.loop, &cfg, &err);
    if (c.client == NULL)
        bench_fail("gmud_client_create: %s", err.message);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    if (!c.closed)
        bench_fail("client loop ended early");
    gmud_client_destroy(c.client);
    uv_close((uv_handle_t *)&c.pump, NULL);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&c.loop) != 0)
        bench_fail("client loop still has handles");
    *wall_s = (double)(c.t1 - c.t0) / 1e9;
    *cpu_s = c.cpu;
}

#endif
