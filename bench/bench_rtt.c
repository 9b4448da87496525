/* bench_rtt: request/response latency, 64-byte payloads, beside a raw
 * blocking-socket ping-pong measured in the same run.
 *
 * Clients in this process, echo servers in child processes:
 *   raw    write() of the 70-byte gmud frame, read() until 70 bytes are
 *          back, against a blocking raw echo server (read, write back): the
 *          baseline;
 *   sync   gmud_sync_send() + gmud_sync_recv() (the blocking client API)
 *          against a gmud_server whose on_message sends the message back;
 *   event  gmud_client (libuv): the next request is sent from on_message
 *          of the previous response, against the same gmud_server;
 *   and the mixed pairs raw -> gmud_server and gmud_sync -> raw echo, which
 *   split gmud's cost between its server and its client.
 * Each sample is one round trip timed with CLOCK_MONOTONIC. After 500
 * uncounted warm-up round trips each, the clients take turns in blocks of
 * GMUD_BENCH_BLOCK round trips, so that a slow spell of a shared machine
 * (other processes taking the CPU for milliseconds) hits all of them alike.
 *
 * Three placements, the same for every pair: unpinned (the scheduler
 * chooses, and on this 2-vCPU VM its choice moves p50 by ~10 us: a server
 * woken on the client's vCPU answers in ~18 us, one woken on the other,
 * idle vCPU in ~28-35 us, and it does not choose alike for a task asleep in
 * read() and one asleep in epoll_wait()), pinned (this process and the
 * servers all on CPU 0) and split (client on CPU 0, servers on CPU 1), the
 * last two via sched_setaffinity.
 * Figures: p50, p99 and mean in microseconds; ratios to raw (goals: p50
 * within 1.1x, p99 within 1.5x).
 *
 * Environment: GMUD_BENCH_SAMPLES (round trips per client and placement,
 * default 20000), GMUD_BENCH_BLOCK (default 10).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench_net.h"
#include "bench_util.h"
#include "gmud/client.h"
#include "gmud/frame.h"
#include "gmud/server.h"
#include "gmud/sync.h"

enum {
    PAYLOAD = 64,
    MAX_FRAME = 128,
    CHILD_SECONDS = 40,
    IO_TIMEOUT_MS = 5000,
    WARMUP = 500 /* round trips per client before any is counted */
};

/* ---- Servers (children) ------------------------------------------------- */

/* Blocking echo: whatever arrives goes straight back, until end of stream. */
static void raw_echo_main(int lfd, int port_fd, uint16_t port)
{
    bench_pipe_write(port_fd, &port, sizeof port);
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        bench_fail("accept: %s", strerror(errno));
    bench_nodelay(fd);
    uint8_t buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        bench_write_all(fd, buf, (size_t)r);
    }
    _exit(0);
}

typedef struct echo {
    uv_loop_t loop;
    gmud_server *server;
    int clients, closed, done;
} echo;

static void echo_on_message(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                            void *user)
{
    (void)json;
    (void)user;
    gmud_error err;
    if (gmud_conn_send(conn, data, len, &err) != 0)
        bench_fail("echo: gmud_conn_send: %s", err.message);
}

static void echo_shutdown_done(gmud_server *server, void *user)
{
    (void)server;
    echo *e = user;
    e->done = 1;
    uv_stop(&e->loop);
}

static void echo_on_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                          void *user)
{
    (void)conn;
    echo *e = user;
    if (reason != GMUD_CLOSE_PEER && reason != GMUD_CLOSE_SHUTDOWN)
        bench_fail("echo: connection closed: %s%s%s", gmud_close_reason_name(reason),
                   detail ? ": " : "", detail ? detail->message : "");
    if (++e->closed == e->clients)
        gmud_server_shutdown(e->server, 1000, echo_shutdown_done, e);
}

/* A gmud_server echoing to `clients` connections; ends when they have gone. */
static void gmud_echo_main(int port_fd, int clients)
{
    echo e;
    memset(&e, 0, sizeof e);
    e.clients = clients;
    if (uv_loop_init(&e.loop) != 0)
        bench_fail("uv_loop_init");
    gmud_server_config cfg;
    gmud_server_default_config(&cfg);
    /* Throughput is the measure: no spam limits. */
    cfg.limits.msg_rate = 0;
    cfg.limits.byte_rate = 0;
    cfg.port = 0;
    cfg.payload = GMUD_PAYLOAD_TEXT;
    cfg.cb.on_message = echo_on_message;
    cfg.cb.on_close = echo_on_close;
    cfg.cb.user = &e;
    gmud_error err;
    e.server = gmud_server_create(&e.loop, &cfg, &err);
    if (e.server == NULL)
        bench_fail("gmud_server_create: %s", err.message);
    uint16_t port = gmud_server_port(e.server);
    bench_pipe_write(port_fd, &port, sizeof port);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    if (!e.done)
        bench_fail("echo: loop ended before shutdown");
    gmud_server_destroy(e.server);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    _exit(0);
}

/* Forks a server; returns its pid and sets *port once it listens. */
static pid_t start_server(int gmud, uint16_t *port)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        bench_fail("pipe: %s", strerror(errno));
    int lfd = -1;
    uint16_t raw_port = 0;
    if (!gmud)
        lfd = bench_listen(16, &raw_port);
    pid_t pid = bench_fork(CHILD_SECONDS);
    if (pid == 0) {
        close(pfd[0]);
        if (gmud)
            gmud_echo_main(pfd[1], 3); /* sync, event and raw clients */
        raw_echo_main(lfd, pfd[1], raw_port);
    }
    close(pfd[1]);
    if (lfd >= 0)
        close(lfd);
    if (bench_pipe_read(pfd[0], port, sizeof *port, IO_TIMEOUT_MS) != 0)
        bench_fail("%s echo server did not start", gmud ? "gmud" : "raw");
    close(pfd[0]);
    return pid;
}

/* ---- Clients ------------------------------------------------------------ */

typedef struct samples {
    double *us;
    size_t n, cap;
} samples;

static void samples_add(samples *s, uint64_t ns)
{
    if (s->n < s->cap)
        s->us[s->n++] = (double)ns / 1e3;
}

static uint8_t g_payload[PAYLOAD];

static void raw_block(int fd, const uint8_t *frame, size_t flen, size_t count, samples *out)
{
    uint8_t back[MAX_FRAME];
    for (size_t i = 0; i < count; i++) {
        uint64_t t0 = bench_now_ns();
        bench_write_all(fd, frame, flen);
        if (bench_read_full(fd, back, flen) != 0)
            bench_fail("raw echo closed");
        uint64_t t1 = bench_now_ns();
        if (out != NULL)
            samples_add(out, t1 - t0);
    }
    if (memcmp(back, frame, flen) != 0)
        bench_fail("raw echo returned other bytes");
}

static void sync_block(gmud_sync *s, size_t count, samples *out)
{
    gmud_error err;
    gmud_slice msg;
    for (size_t i = 0; i < count; i++) {
        uint64_t t0 = bench_now_ns();
        if (gmud_sync_send(s, g_payload, PAYLOAD, &err) != 0)
            bench_fail("gmud_sync_send: %s", err.message);
        int r = gmud_sync_recv(s, IO_TIMEOUT_MS, &msg, &err);
        if (r != 1)
            bench_fail("gmud_sync_recv: %s", r == 0 ? "timed out" : err.message);
        uint64_t t1 = bench_now_ns();
        if (msg.len != PAYLOAD)
            bench_fail("gmud echo returned %zu bytes", msg.len);
        if (out != NULL)
            samples_add(out, t1 - t0);
    }
}

typedef struct event_client {
    uv_loop_t loop;
    gmud_client *client;
    gmud_conn *conn;
    uv_timer_t guard;   /* a block that takes too long stops the loop */
    samples *out;
    size_t left;
    uint64_t t0;
    int connected, closed, failed;
} event_client;

static void ev_send(event_client *c)
{
    gmud_error err;
    c->t0 = bench_now_ns();
    if (gmud_conn_send(c->conn, g_payload, PAYLOAD, &err) != 0)
        bench_fail("gmud_conn_send: %s", err.message);
}

static void ev_on_connect(gmud_conn *conn, void *user)
{
    event_client *c = user;
    c->conn = conn;
    c->connected = 1;
    uv_stop(&c->loop);
}

static void ev_on_message(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                          void *user)
{
    (void)conn;
    (void)data;
    (void)json;
    event_client *c = user;
    uint64_t t1 = bench_now_ns();
    if (len != PAYLOAD)
        bench_fail("gmud echo returned %zu bytes", len);
    if (c->out != NULL)
        samples_add(c->out, t1 - c->t0);
    if (--c->left > 0)
        ev_send(c);
    else
        uv_stop(&c->loop);
}

static void ev_on_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                        void *user)
{
    (void)conn;
    event_client *c = user;
    if (reason != GMUD_CLOSE_LOCAL)
        bench_fail("event client closed: %s%s%s", gmud_close_reason_name(reason),
                   detail ? ": " : "", detail ? detail->message : "");
    c->closed = 1;
    uv_stop(&c->loop);
}

static void ev_on_guard(uv_timer_t *t)
{
    event_client *c = t->data;
    c->failed = 1;
    uv_stop(&c->loop);
}

/* Runs the loop until uv_stop; bounded by the guard timer. */
static void ev_run(event_client *c, const char *what)
{
    uv_timer_start(&c->guard, ev_on_guard, IO_TIMEOUT_MS, 0);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&c->guard);
    if (c->failed)
        bench_fail("event client: %s timed out", what);
}

static void ev_open(event_client *c, uint16_t port)
{
    memset(c, 0, sizeof *c);
    if (uv_loop_init(&c->loop) != 0)
        bench_fail("uv_loop_init");
    uv_timer_init(&c->loop, &c->guard);
    c->guard.data = c;
    gmud_client_config cfg;
    gmud_client_default_config(&cfg);
    cfg.port = port;
    cfg.payload = GMUD_PAYLOAD_TEXT;
    cfg.cb.on_connect = ev_on_connect;
    cfg.cb.on_message = ev_on_message;
    cfg.cb.on_close = ev_on_close;
    cfg.cb.user = c;
    gmud_error err;
    c->client = gmud_client_create(&c->loop, &cfg, &err);
    if (c->client == NULL)
        bench_fail("gmud_client_create: %s", err.message);
    ev_run(c, "connect");
    if (!c->connected)
        bench_fail("event client did not connect");
}

static void ev_block(event_client *c, size_t count, samples *out)
{
    c->out = out;
    c->left = count;
    ev_send(c);
    ev_run(c, "round trip");
    if (c->left != 0)
        bench_fail("event client stopped with %zu round trips left", c->left);
}

static void ev_close(event_client *c)
{
    gmud_client_close(c->client);
    ev_run(c, "close");
    gmud_client_destroy(c->client);
    uv_close((uv_handle_t *)&c->guard, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&c->loop) != 0)
        bench_fail("event client loop still has handles");
}

/* ---- Report ------------------------------------------------------------- */

typedef struct stats {
    double p50, p99, mean;
} stats;

static stats summarise(samples *s)
{
    stats st = {0, 0, 0};
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

enum { PAIRS = 5 };

/* Who talks to whom; the first pair is the baseline, the last two split
 * gmud's cost between its client and its server. */
static const char *const pair_names[PAIRS] = {
    "raw -> raw echo (baseline)", "gmud_sync -> gmud_server", "gmud_client -> gmud_server",
    "raw -> gmud_server", "gmud_sync -> raw echo",
};

static void print_row(const char *place, int k, const stats *x, const stats *base)
{
    if (k == 0)
        printf("| %-8s | %-26s | %7.1f | %7.1f | %7.1f |      -      |      -      |\n", place,
               pair_names[k], x->p50, x->p99, x->mean);
    else
        printf("| %-8s | %-26s | %7.1f | %7.1f | %7.1f | %5.2f (1.1) | %5.2f (1.5) |\n", place,
               pair_names[k], x->p50, x->p99, x->mean, x->p50 / base->p50, x->p99 / base->p99);
}

/* cpu < 0: any CPU. The servers are forked while this process has the
 * servers' placement (children inherit it), then this process takes the
 * client's. */
static void run_placement(const char *name, int client_cpu, int server_cpu, size_t total,
                          size_t block)
{
    bench_pin(server_cpu);
    /* One raw echo server per raw-served connection: each serves exactly one. */
    uint16_t raw_port, raw_port2, gmud_port;
    pid_t raw_pid = start_server(0, &raw_port);
    pid_t raw_pid2 = start_server(0, &raw_port2);
    pid_t gmud_pid = start_server(1, &gmud_port);
    bench_pin(client_cpu);

    gmud_frame_config fcfg;
    gmud_frame_default_config(&fcfg, GMUD_FRAMING_GMUD);
    uint8_t frame[MAX_FRAME];
    gmud_error err;
    ptrdiff_t flen = gmud_frame_encode(&fcfg, g_payload, PAYLOAD, frame, sizeof frame, &err);
    if (flen <= 0)
        bench_fail("gmud_frame_encode: %s", err.message);
    int fd = bench_connect(raw_port, 1);
    int fd_g = bench_connect(gmud_port, 1);
    gmud_sync *s = gmud_sync_connect("127.0.0.1", gmud_port, &fcfg, IO_TIMEOUT_MS, &err);
    gmud_sync *s_r = gmud_sync_connect("127.0.0.1", raw_port2, &fcfg, IO_TIMEOUT_MS, &err);
    if (s == NULL || s_r == NULL)
        bench_fail("gmud_sync_connect: %s", err.message);
    event_client ev;
    ev_open(&ev, gmud_port);

    samples sm[PAIRS];
    for (int k = 0; k < PAIRS; k++) {
        sm[k].us = bench_xmalloc(total * sizeof(double));
        sm[k].n = 0;
        sm[k].cap = total;
    }
    /* Warm-up, then take turns. */
    raw_block(fd, frame, (size_t)flen, WARMUP, NULL);
    sync_block(s, WARMUP, NULL);
    ev_block(&ev, WARMUP, NULL);
    raw_block(fd_g, frame, (size_t)flen, WARMUP, NULL);
    sync_block(s_r, WARMUP, NULL);
    for (size_t done = 0; done < total; done += block) {
        size_t n = total - done < block ? total - done : block;
        raw_block(fd, frame, (size_t)flen, n, &sm[0]);
        sync_block(s, n, &sm[1]);
        ev_block(&ev, n, &sm[2]);
        raw_block(fd_g, frame, (size_t)flen, n, &sm[3]);
        sync_block(s_r, n, &sm[4]);
    }

    close(fd);
    close(fd_g);
    gmud_sync_close(s);
    gmud_sync_close(s_r);
    ev_close(&ev);
    if (bench_wait(raw_pid, IO_TIMEOUT_MS) != 0 || bench_wait(raw_pid2, IO_TIMEOUT_MS) != 0 ||
        bench_wait(gmud_pid, IO_TIMEOUT_MS) != 0)
        bench_fail("an echo server failed");

    stats st[PAIRS];
    for (int k = 0; k < PAIRS; k++)
        st[k] = summarise(&sm[k]);
    for (int k = 0; k < PAIRS; k++) {
        print_row(name, k, &st[k], &st[0]);
        free(sm[k].us);
    }
    fflush(stdout);
}

int main(void)
{
    bench_prog = "bench_rtt";
    bench_ignore_sigpipe();
    size_t total = (size_t)bench_env_long("GMUD_BENCH_SAMPLES", 20000, 100, 1000000);
    size_t block = (size_t)bench_env_long("GMUD_BENCH_BLOCK", 10, 1, 100000);
    bench_time_bound(55);
    for (size_t i = 0; i < PAYLOAD; i++)
        g_payload[i] = (uint8_t)('A' + i % 26);

    printf("bench_rtt: %zu round trips per client and placement, 64-byte payload (70-byte gmud "
           "frame), blocks of %zu taking turns after %d warm-up round trips each\n",
           total, block, WARMUP);
    printf("  raw:         blocking write(70) + read(70) against a blocking raw echo server\n");
    printf("  gmud_sync:   gmud_sync_send + gmud_sync_recv against a gmud_server echo\n");
    printf("  gmud_client: libuv event client (next request from on_message) against the "
           "same gmud_server\n");
    printf("  raw -> gmud_server and gmud_sync -> raw echo: the mixed pairs, splitting gmud's "
           "cost between server and client\n");
    printf("  placements (sched_setaffinity, the same for every pair): unpinned; pinned = client "
           "and servers all on CPU 0;\n              split = client on CPU 0, servers on CPU 1. "
           "Ratios to raw, goal in brackets.\n\n");
    printf("| place    | client -> server           | p50 us  | p99 us  | mean us | p50 ratio   | "
           "p99 ratio   |\n");
    printf("|----------|----------------------------|---------|---------|---------|-------------|"
           "-------------|\n");
    run_placement("unpinned", -1, -1, total, block);
    run_placement("pinned", 0, 0, total, block);
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
        run_placement("split", 0, 1, total, block);
    return 0;
}
