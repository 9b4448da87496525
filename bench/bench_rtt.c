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
            bench_echo_main(pfd[1], 3, GMUD_SESSION_OFF); /* sync, event and raw clients */
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

enum { PAIRS = 5 };

/* Who talks to whom; the first pair is the baseline, the last two split
 * gmud's cost between its client and its server. */
static const char *const pair_names[PAIRS] = {
    "raw -> raw echo (baseline)", "gmud_sync -> gmud_server", "gmud_client -> gmud_server",
    "raw -> gmud_server", "gmud_sync -> raw echo",
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
    bench_ev ev;
    bench_ev_open(&ev, GMUD_SESSION_OFF, gmud_port, g_payload, PAYLOAD);

    bench_samples sm[PAIRS];
    for (int k = 0; k < PAIRS; k++) {
        sm[k].us = bench_xmalloc(total * sizeof(double));
        sm[k].n = 0;
        sm[k].cap = total;
    }
    /* Warm-up, then take turns. */
    raw_block(fd, frame, (size_t)flen, WARMUP, NULL);
    sync_block(s, WARMUP, NULL);
    bench_ev_block(&ev, WARMUP, NULL);
    raw_block(fd_g, frame, (size_t)flen, WARMUP, NULL);
    sync_block(s_r, WARMUP, NULL);
    for (size_t done = 0; done < total; done += block) {
        size_t n = total - done < block ? total - done : block;
        raw_block(fd, frame, (size_t)flen, n, &sm[0]);
        sync_block(s, n, &sm[1]);
        bench_ev_block(&ev, n, &sm[2]);
        raw_block(fd_g, frame, (size_t)flen, n, &sm[3]);
        sync_block(s_r, n, &sm[4]);
    }

    close(fd);
    close(fd_g);
    gmud_sync_close(s);
    gmud_sync_close(s_r);
    bench_ev_close(&ev);
    if (bench_wait(raw_pid, IO_TIMEOUT_MS) != 0 || bench_wait(raw_pid2, IO_TIMEOUT_MS) != 0 ||
        bench_wait(gmud_pid, IO_TIMEOUT_MS) != 0)
        bench_fail("an echo server failed");

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
