/* bench_rtt: request/response latency, 64-byte payloads, beside a raw
 * blocking-socket ping-pong measured in the same run.
 *
 * Clients in this process, echo servers in child processes:
 *   raw    write() of the 70-byte gmud frame, read() until 70 bytes are
 *          back, against a blocking raw echo server (read, write back): the
 *          baseline;
 *   the floors: the same raw client against the same echo written on bare
 *          epoll (level-triggered, as libuv registers its sockets) and on
 *          bare libuv (uv_read_start, uv_try_write), with no gmud code. They
 *          show what any server that waits in epoll_wait() pays, and what
 *          libuv's loop turn adds, before gmud does anything;
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
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <uv.h>

#include "bench_echo.h"
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

/* Tells the parent the port, then takes the one connection a blocking or
 * epoll echo serves. */
static int accept_one(int lfd, int port_fd, uint16_t port)
{
    bench_pipe_write(port_fd, &port, sizeof port);
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        bench_fail("accept: %s", strerror(errno));
    bench_nodelay(fd);
    return fd;
}

/* Blocking echo: whatever arrives goes straight back, until end of stream. */
static void raw_echo_main(int lfd, int port_fd, uint16_t port)
{
    int fd = accept_one(lfd, port_fd, port);
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

/* The floors under any event-loop server: the same echo written straight
 * on epoll (level-triggered, as libuv registers), and on bare libuv
 * (uv_read_start, uv_try_write), with no gmud code at all. The difference
 * raw echo -> epoll echo is what waiting in epoll_wait() costs the kernel;
 * epoll echo -> libuv echo is libuv's loop turn; libuv echo -> gmud_server
 * is gmud's own. */
static void epoll_echo_main(int lfd, int port_fd, uint16_t port)
{
    int fd = accept_one(lfd, port_fd, port);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
        bench_fail("fcntl: %s", strerror(errno));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        bench_fail("epoll: %s", strerror(errno));
    uint8_t buf[4096];
    for (;;) {
        struct epoll_event got[8];
        int n = epoll_wait(ep, got, 8, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            bench_fail("epoll_wait: %s", strerror(errno));
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
        bench_write_all(fd, buf, (size_t)r); /* 70 bytes: never short here */
    }
    _exit(0);
}

typedef struct uv_echo {
    uv_tcp_t server, conn;
    uint8_t buf[65536];
} uv_echo;

static void uv_echo_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    uv_echo *e = h->data;
    *b = uv_buf_init((char *)e->buf, sizeof e->buf);
}

static void uv_echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        return;
    }
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    if (n > 0 && uv_try_write(s, &out, 1) != n)
        bench_fail("libuv echo: short uv_try_write");
}

static void uv_echo_accept(uv_stream_t *srv, int status)
{
    uv_echo *e = srv->data;
    if (status != 0 || uv_tcp_init(srv->loop, &e->conn) != 0 ||
        uv_accept(srv, (uv_stream_t *)&e->conn) != 0)
        bench_fail("libuv echo: accept");
    e->conn.data = e;
    uv_tcp_nodelay(&e->conn, 1);
    uv_read_start((uv_stream_t *)&e->conn, uv_echo_alloc, uv_echo_read);
    uv_close((uv_handle_t *)srv, NULL); /* one client, as the raw echo */
}

static void uv_echo_main(int lfd, int port_fd, uint16_t port)
{
    static uv_echo e;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0 || uv_tcp_init(&loop, &e.server) != 0 ||
        uv_tcp_open(&e.server, lfd) != 0)
        bench_fail("libuv echo: init");
    e.server.data = &e;
    if (uv_listen((uv_stream_t *)&e.server, 16, uv_echo_accept) != 0)
        bench_fail("libuv echo: listen");
    bench_pipe_write(port_fd, &port, sizeof port);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

enum server_kind { SERVER_RAW, SERVER_EPOLL, SERVER_UV, SERVER_GMUD };

/* Forks a server; returns its pid and sets *port once it listens. */
static pid_t start_server(enum server_kind kind, uint16_t *port)
{
    int gmud = kind == SERVER_GMUD;
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
            bench_echo_main(pfd[1], 3, GMUD_SESSION_OFF); /* sync, event and raw clients */
        if (kind == SERVER_EPOLL)
            epoll_echo_main(lfd, pfd[1], raw_port);
        if (kind == SERVER_UV)
            uv_echo_main(lfd, pfd[1], raw_port);
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

static uint8_t g_payload[PAYLOAD];

static void raw_block(int fd, const uint8_t *frame, size_t flen, size_t count, bench_samples *out)
{
    uint8_t back[MAX_FRAME];
    for (size_t i = 0; i < count; i++) {
        uint64_t t0 = bench_now_ns();
        bench_write_all(fd, frame, flen);
        if (bench_read_full(fd, back, flen) != 0)
            bench_fail("raw echo closed");
        uint64_t t1 = bench_now_ns();
        if (out != NULL)
            bench_samples_add(out, t1 - t0);
    }
    if (memcmp(back, frame, flen) != 0)
        bench_fail("raw echo returned other bytes");
}

static void sync_block(gmud_sync *s, size_t count, bench_samples *out)
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
            bench_samples_add(out, t1 - t0);
    }
}

/* ---- Report ------------------------------------------------------------- */

enum { PAIRS = 7 };

/* Who talks to whom; the first pair is the baseline. raw -> epoll echo and
 * raw -> libuv echo are the floors under any server on an event loop; the
 * mixed pairs raw -> gmud_server and gmud_sync -> raw echo split gmud's cost
 * between its server and its client. */
static const char *const pair_names[PAIRS] = {
    "raw -> raw echo (baseline)", "raw -> epoll echo (floor)", "raw -> libuv echo",
    "raw -> gmud_server",         "gmud_sync -> gmud_server",  "gmud_client -> gmud_server",
    "gmud_sync -> raw echo",
};

static void print_row(const char *place, int k, const bench_rtt_stats *x,
                      const bench_rtt_stats *base)
{
    if (k == 0)
        printf("| %-8s | %-26s | %7.1f | %7.1f | %7.1f |      -      |      -      |\n", place,
               pair_names[k], x->p50, x->p99, x->mean);
    else
        printf("| %-8s | %-26s | %7.1f | %7.1f | %7.1f | %5.2f (1.1) | %5.2f (1.5) |\n", place,
               pair_names[k], x->p50, x->p99, x->mean, x->p50 / base->p50, x->p99 / base->p99);
}

/* One client of each pair and the servers behind them. */
typedef struct rtt_peers {
    pid_t pids[5];
    int raw_fd, epoll_fd, uv_fd, gmud_fd; /* raw clients */
    gmud_sync *sync_gmud, *sync_raw;
    bench_ev ev;
} rtt_peers;

static void peers_open(rtt_peers *p, const gmud_frame_config *fcfg, int client_cpu,
                       int server_cpu)
{
    bench_pin(server_cpu);
    /* One raw, epoll or libuv echo server per connection: each serves one. */
    uint16_t port[5];
    static const enum server_kind kinds[5] = {SERVER_RAW, SERVER_RAW, SERVER_EPOLL, SERVER_UV,
                                              SERVER_GMUD};
    for (int i = 0; i < 5; i++)
        p->pids[i] = start_server(kinds[i], &port[i]);
    bench_pin(client_cpu);

    gmud_error err;
    p->raw_fd = bench_connect(port[0], 1);
    p->sync_raw = gmud_sync_connect("127.0.0.1", port[1], fcfg, IO_TIMEOUT_MS, &err);
    p->epoll_fd = bench_connect(port[2], 1);
    p->uv_fd = bench_connect(port[3], 1);
    p->gmud_fd = bench_connect(port[4], 1);
    p->sync_gmud = gmud_sync_connect("127.0.0.1", port[4], fcfg, IO_TIMEOUT_MS, &err);
    if (p->sync_gmud == NULL || p->sync_raw == NULL)
        bench_fail("gmud_sync_connect: %s", err.message);
    bench_ev_open(&p->ev, GMUD_SESSION_OFF, port[4], g_payload, PAYLOAD);
}

static void peers_close(rtt_peers *p)
{
    close(p->raw_fd);
    close(p->epoll_fd);
    close(p->uv_fd);
    close(p->gmud_fd);
    gmud_sync_destroy(p->sync_gmud);
    gmud_sync_destroy(p->sync_raw);
    bench_ev_close(&p->ev);
    for (int i = 0; i < 5; i++)
        if (bench_wait(p->pids[i], IO_TIMEOUT_MS) != 0)
            bench_fail("an echo server failed");
}

/* n round trips of pair k; out NULL for the warm-up. */
static void pair_block(rtt_peers *p, int k, const uint8_t *frame, size_t flen, size_t n,
                       bench_samples *out)
{
    switch (k) {
    case 0: raw_block(p->raw_fd, frame, flen, n, out); break;
    case 1: raw_block(p->epoll_fd, frame, flen, n, out); break;
    case 2: raw_block(p->uv_fd, frame, flen, n, out); break;
    case 3: raw_block(p->gmud_fd, frame, flen, n, out); break;
    case 4: sync_block(p->sync_gmud, n, out); break;
    case 5: bench_ev_block(&p->ev, n, out); break;
    default: sync_block(p->sync_raw, n, out); break;
    }
}

/* cpu < 0: any CPU. The servers are forked while this process has the
 * servers' placement (children inherit it), then this process takes the
 * client's. */
static void run_placement(const char *name, int client_cpu, int server_cpu, size_t total,
                          size_t block)
{
    gmud_frame_config fcfg;
    gmud_frame_default_config(&fcfg, GMUD_FRAMING_GMUD);
    uint8_t frame[MAX_FRAME];
    gmud_error err;
    ptrdiff_t flen = gmud_frame_encode(&fcfg, g_payload, PAYLOAD, frame, sizeof frame, &err);
    if (flen <= 0)
        bench_fail("gmud_frame_encode: %s", err.message);
    rtt_peers p;
    peers_open(&p, &fcfg, client_cpu, server_cpu);

    bench_samples sm[PAIRS];
    for (int k = 0; k < PAIRS; k++) {
        sm[k].us = bench_xmalloc(total * sizeof(double));
        sm[k].n = 0;
        sm[k].cap = total;
    }
    /* Warm-up, then take turns. */
    for (int k = 0; k < PAIRS; k++)
        pair_block(&p, k, frame, (size_t)flen, WARMUP, NULL);
    for (size_t done = 0; done < total; done += block) {
        size_t n = total - done < block ? total - done : block;
        for (int k = 0; k < PAIRS; k++)
            pair_block(&p, k, frame, (size_t)flen, n, &sm[k]);
    }
    peers_close(&p);

    bench_rtt_stats st[PAIRS];
    for (int k = 0; k < PAIRS; k++)
        st[k] = bench_rtt_summarise(&sm[k]);
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
    printf("  raw -> epoll echo and raw -> libuv echo: the floors, the same echo on bare epoll "
           "and on bare libuv, no gmud code\n");
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
