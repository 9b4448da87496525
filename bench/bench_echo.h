/* bench/bench_echo.h: the gmud sides of a round-trip benchmark, shared by
 * bench_rtt and bench_session.
 *
 *   bench_echo_main()  a gmud_server (run in a forked child) that echoes
 *                      every message and ends once `clients` connections
 *                      have come and gone;
 *   bench_ev_*         an event client (gmud_client) doing one round trip
 *                      at a time, each timed from the send to the echo;
 *   bench_samples, bench_rtt_summarise()  the latencies and their p50,
 *                      p99 and mean.
 * Text payload, any session mode, spam limits off. Every wait is bounded;
 * failures end the program (bench_fail).
 */
#ifndef GMUD_BENCH_ECHO_H
#define GMUD_BENCH_ECHO_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench_net.h"
#include "bench_server.h"
#include "bench_tls.h"
#include "bench_util.h"
#include "gmud/client.h"
#include "gmud/server.h"

/* How long one block of round trips, a connect or a close may take. */
enum { BENCH_EV_TIMEOUT_MS = 5000 };

/* ---- Latencies ---------------------------------------------------------- */

typedef struct bench_samples {
    double *us;
    size_t n, cap;
} bench_samples;

static inline void bench_samples_add(bench_samples *s, uint64_t ns)
{
    if (s->n < s->cap)
        s->us[s->n++] = (double)ns / 1e3;
}

typedef struct bench_rtt_stats {
    double p50, p99, mean;
} bench_rtt_stats;

/* Sorts s and reads its p50, p99 and mean (all 0 when empty). */
static inline bench_rtt_stats bench_rtt_summarise(bench_samples *s)
{
    bench_rtt_stats st = {0, 0, 0};
    if (s->n == 0)
        return st;
    qsort(s->us, s->n, sizeof *s->us, bench_cmp_double);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += s->us[i];
    st.mean = sum / (double)s->n;
    st.p50 = s->us[(s->n - 1) / 2];
    st.p99 = s->us[(size_t)((double)(s->n - 1) * 0.99)];
    return st;
}

/* ---- The echo server ---------------------------------------------------- */

static inline void bench_echo_on_message(gmud_conn *conn, const uint8_t *data, size_t len,
                                         json_t *json, void *user)
{
    (void)json;
    (void)user;
    gmud_error err;
    if (gmud_conn_send(conn, data, len, &err) != 0)
        bench_fail("echo: gmud_conn_send: %s", err.message);
}

static inline void bench_echo_on_close(gmud_conn *conn, gmud_close_reason reason,
                                       const gmud_error *detail, void *user)
{
    (void)conn;
    bench_server_closed(user, reason, detail);
}

/* Listens on a free port, writes it to port_fd, echoes to `clients`
 * connections in turn or at once, exits when they have all closed. */
static inline void bench_echo_main_tls(int port_fd, int clients, gmud_session_mode mode,
                                       const bench_tls *tls)
{
    static bench_server e;
    gmud_server_config cfg;
    bench_server_config(&cfg, (size_t)clients);
    cfg.conn.payload = GMUD_PAYLOAD_TEXT;
    cfg.conn.session.mode = mode;
    if (tls != NULL)
        bench_tls_server(tls, &cfg.conn.tls);
    cfg.conn.cb.on_message = bench_echo_on_message;
    cfg.conn.cb.on_close = bench_echo_on_close;
    cfg.conn.cb.user = &e;
    bench_server_start(&e, "echo", (size_t)clients, &cfg, port_fd);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    bench_server_finish(&e);
    _exit(0);
}

static inline void bench_echo_main(int port_fd, int clients, gmud_session_mode mode)
{
    bench_echo_main_tls(port_fd, clients, mode, NULL);
}

/* ---- The event client --------------------------------------------------- */

typedef struct bench_ev {
    uv_loop_t loop;
    gmud_client *client;
    gmud_conn *conn;
    uv_timer_t guard; /* a block that takes too long stops the loop */
    const uint8_t *msg;
    size_t len;
    bench_samples *out;
    size_t left;
    uint64_t t0;
    int connected, closed, failed;
} bench_ev;

static inline void bench_ev_send(bench_ev *c)
{
    gmud_error err;
    c->t0 = bench_now_ns();
    if (gmud_conn_send(c->conn, c->msg, c->len, &err) != 0)
        bench_fail("gmud_conn_send: %s", err.message);
}

static inline void bench_ev_on_connect(gmud_conn *conn, void *user)
{
    bench_ev *c = user;
    c->conn = conn;
    c->connected = 1;
    uv_stop(&c->loop);
}

static inline void bench_ev_on_message(gmud_conn *conn, const uint8_t *data, size_t len,
                                       json_t *json, void *user)
{
    (void)conn;
    (void)data;
    (void)json;
    bench_ev *c = user;
    uint64_t t1 = bench_now_ns();
    if (len != c->len)
        bench_fail("gmud echo returned %zu bytes", len);
    if (c->out != NULL)
        bench_samples_add(c->out, t1 - c->t0);
    if (--c->left > 0)
        bench_ev_send(c);
    else
        uv_stop(&c->loop);
}

static inline void bench_ev_on_close(gmud_conn *conn, gmud_close_reason reason,
                                     const gmud_error *detail, void *user)
{
    (void)conn;
    bench_ev *c = user;
    if (reason != GMUD_CLOSE_LOCAL)
        bench_fail("event client closed: %s%s%s", gmud_close_reason_name(reason),
                   detail ? ": " : "", detail ? detail->message : "");
    c->closed = 1;
    uv_stop(&c->loop);
}

static inline void bench_ev_on_guard(uv_timer_t *t)
{
    bench_ev *c = t->data;
    c->failed = 1;
    uv_stop(&c->loop);
}

/* Runs the loop until uv_stop; bounded by the guard timer. */
static inline void bench_ev_run(bench_ev *c, const char *what)
{
    uv_timer_start(&c->guard, bench_ev_on_guard, BENCH_EV_TIMEOUT_MS, 0);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&c->guard);
    if (c->failed)
        bench_fail("event client: %s timed out", what);
}

/* Connects to 127.0.0.1:port to echo msg[0..len) (kept by the caller);
 * with a session mode, returns once the welcome is in (on_connect). */
static inline void bench_ev_open_tls(bench_ev *c, gmud_session_mode mode, uint16_t port,
                                     const uint8_t *msg, size_t len, const bench_tls *tls)
{
    memset(c, 0, sizeof *c);
    c->msg = msg;
    c->len = len;
    if (uv_loop_init(&c->loop) != 0)
        bench_fail("uv_loop_init");
    uv_timer_init(&c->loop, &c->guard);
    c->guard.data = c;
    gmud_client_config cfg;
    gmud_client_default_config(&cfg);
    cfg.port = port;
    cfg.conn.payload = GMUD_PAYLOAD_TEXT;
    cfg.conn.session.mode = mode;
    if (tls != NULL)
        bench_tls_client(tls, &cfg.conn.tls);
    cfg.conn.cb.on_connect = bench_ev_on_connect;
    cfg.conn.cb.on_message = bench_ev_on_message;
    cfg.conn.cb.on_close = bench_ev_on_close;
    cfg.conn.cb.user = c;
    gmud_error err;
    c->client = gmud_client_create(&c->loop, &cfg, &err);
    if (c->client == NULL)
        bench_fail("gmud_client_create: %s", err.message);
    bench_ev_run(c, "connect");
    if (!c->connected)
        bench_fail("event client did not connect");
}

static inline void bench_ev_open(bench_ev *c, gmud_session_mode mode, uint16_t port,
                                 const uint8_t *msg, size_t len)
{
    bench_ev_open_tls(c, mode, port, msg, len, NULL);
}

/* count round trips, one at a time; their latencies into out (may be NULL). */
static inline void bench_ev_block(bench_ev *c, size_t count, bench_samples *out)
{
    c->out = out;
    c->left = count;
    bench_ev_send(c);
    bench_ev_run(c, "round trip");
    if (c->left != 0)
        bench_fail("event client stopped with %zu round trips left", c->left);
}

static inline void bench_ev_close(bench_ev *c)
{
    gmud_client_close(c->client);
    bench_ev_run(c, "close");
    gmud_client_destroy(c->client);
    uv_close((uv_handle_t *)&c->guard, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&c->loop) != 0)
        bench_fail("event client loop still has handles");
}

#endif
