/* bench_memory: a gmud server's memory per connection under 10,000
 * connections that are idle (the baseline), flooding (shaped), or stalled
 * (sending requests, never reading the answers), in one run.
 *
 * The server (bench_load.h): a gmud echo server in a child process of its
 * own for each case (a fresh process, so each figure starts from the same
 * heap): gmud framing, text payload (the frames hold JSON, unparsed: see
 * tune_text), sessions off (the clients are raw sockets), default limits except max_connections (N + 16). The default
 * per-address limits stay on: the clients come from 40 connections per
 * source address (127.<20+case>.x.y), within 64 at once and the burst of
 * 40 new. The server measures itself when asked: RSS (statm), heap
 * (mallinfo2) and gmud_stats. The clients are this process: plain
 * non-blocking sockets on one epoll, so their memory is not in the figure.
 *
 *   idle    each connection sends one 14-byte message, reads the echo, then
 *           stays silent; measured SETTLE_MS after the last connect (the
 *           idle sweep has given back the output buffers).
 *   flood   each writes valid 64-byte frames as fast as its socket takes
 *           them and reads (discards) the echoes: the server shapes every
 *           one (100 msg/s); measured FLOOD_MS after the last connect,
 *           under rate_close_ms (10 s), so none is closed for its rate.
 *   stall   each has SO_RCVBUF 4 KiB and never reads; it writes 4 KiB-payload
 *           frames (the 200-message burst is 800 KiB, over read_high_water,
 *           512 KiB) until it has written STALL_BYTES or the socket stops
 *           taking them. The echoes queue in the server until reading
 *           pauses, and the buffer budget (256 MiB) closes the largest
 *           holders. The writes start once all N are connected; measured
 *           STALL_MS later, before the send timeout (10 s).
 * Figures: (RSS at the measure - RSS once listening) / N, and the ratio to
 * idle; the same by the connections still open; the budget's counters; the
 * kernel's TCP memory (/proc/net/sockstat, both sides, all sockets).
 *
 * RLIMIT_NOFILE: both processes raise it to the hard limit; N defaults to
 * 10,000 and is cut to what fits (printed).
 * Environment: GMUD_BENCH_CONNS (default 10000), GMUD_BENCH_STALL_MS (default
 * 5000, at most 9500: the stall case's wait before the measure).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "bench_load.h"
#include "bench_net.h"
#include "bench_util.h"

enum {
    MODE_IDLE,
    MODE_FLOOD,
    MODE_STALL,
    MODES,
    PER_ADDR = 40,
    AHEAD = 2000,
    SETTLE_MS = 1500,
    FLOOD_MS = 5000,
    STALL_MS = 5000,
    STALL_BYTES = 1024 * 1024,
    STALL_RCVBUF = 4096
};

static const char *const mode_names[MODES] = {"idle", "flood", "stall"};

typedef struct client {
    int fd;
    uint8_t up, quiet;
    size_t off;
    size_t sent;
} client;

typedef struct result {
    bench_load_report before, at;
    long long tcp_before, tcp_at;
    double connect_s;
    unsigned long closed_by_server; /* seen by the clients: reset, end of stream */
    unsigned long on_close_ran;     /* the server's on_close calls */
    unsigned long long written;
} result;

static uint8_t sink[65536];
static unsigned stall_ms = STALL_MS; /* GMUD_BENCH_STALL_MS */

/* Text payload: 10,000 stalled peers push some 5 GB before reading pauses,
 * which jansson would take tens of seconds to parse on this machine; the
 * memory held is the same either way. */
static void tune_text(gmud_server_config *cfg, void *arg)
{
    (void)arg;
    cfg->conn.payload = GMUD_PAYLOAD_TEXT;
}

static void run_mode(int mode, unsigned long n, result *res)
{
    memset(res, 0, sizeof *res);
    bench_load_handle srv = bench_load_spawn(n, 80, tune_text, NULL);
    res->before = bench_load_get(&srv);
    res->tcp_before = bench_load_sockstat_pages();

    const char *payload = "{\"n\": 1}";
    char *big = NULL;
    if (mode == MODE_FLOOD)
        payload = "{\"flood\": 1, \"pad\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
    if (mode == MODE_STALL) {
        big = bench_xmalloc(4096 + 32);
        int k = snprintf(big, 32, "{\"stall\": 1, \"pad\": \"");
        memset(big + k, 'x', 4096 - (size_t)k - 2);
        memcpy(big + 4096 - 2, "\"}", 3);
        payload = big;
    }
    size_t cyc_len;
    uint8_t *cyc = bench_load_frames(payload, mode == MODE_IDLE ? 1 : 65536, &cyc_len);
    size_t one_len = mode == MODE_IDLE ? cyc_len : 0;
    free(big);

    client *cl = calloc(n, sizeof *cl);
    if (cl == NULL)
        bench_fail("no memory for %lu clients", n);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        bench_fail("epoll_create1: %s", strerror(errno));
    unsigned long opened = 0;
    uint64_t t0 = bench_now_ns(), all_in = 0;
    uint64_t connect_end = t0 + 20000000000u;
    uint64_t hold_ns = (uint64_t)(mode == MODE_IDLE    ? SETTLE_MS
                                  : mode == MODE_FLOOD ? FLOOD_MS
                                                       : stall_ms) *
                       1000000u;
    for (;;) {
        uint64_t now = bench_now_ns();
        unsigned long acc = atomic_load(&srv.sh->accepted);
        while (opened < n && opened - acc < AHEAD) {
            client *c = &cl[opened];
            c->fd = bench_load_socket(bench_load_addr((unsigned)(20 + mode),
                                                      (unsigned)(opened / PER_ADDR)),
                                      srv.port, mode == MODE_STALL ? STALL_RCVBUF : 0, 0);
            /* stall: no writes until every connection is in, so the connects
             * do not wait behind the server's work on the first ones. */
            struct epoll_event ev = {.events = mode == MODE_STALL ? 0 : EPOLLOUT,
                                     .data.u64 = opened};
            if (mode == MODE_FLOOD)
                ev.events |= EPOLLIN;
            if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
                bench_fail("epoll_ctl: %s", strerror(errno));
            opened++;
        }
        if (all_in == 0 && opened == n && acc >= n) {
            all_in = now;
            res->connect_s = (double)(now - t0) / 1e9;
            for (unsigned long i = 0; mode == MODE_STALL && i < n; i++) {
                struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = i};
                if (cl[i].fd >= 0)
                    epoll_ctl(ep, EPOLL_CTL_MOD, cl[i].fd, &ev);
            }
        }
        if (all_in == 0 && now > connect_end)
            bench_fail("%s: %lu accepted of %lu in 20 s", mode_names[mode], acc, n);
        if (all_in != 0 && now - all_in >= hold_ns)
            break;
        struct epoll_event evs[1024];
        int k = epoll_wait(ep, evs, 1024, 10);
        if (k < 0 && errno != EINTR)
            bench_fail("epoll_wait: %s", strerror(errno));
        for (int j = 0; j < k; j++) {
            client *c = &cl[evs[j].data.u64];
            if (c->fd < 0)
                continue;
            uint32_t e = evs[j].events;
            if (e & (EPOLLERR | EPOLLHUP)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                res->closed_by_server++;
                continue;
            }
            if ((e & EPOLLOUT) && !c->quiet) {
                c->up = 1;
                size_t want = mode == MODE_IDLE ? one_len : cyc_len - c->off;
                ssize_t w = write(c->fd, cyc + c->off, want);
                if (w > 0) {
                    res->written += (unsigned long long)w;
                    c->sent += (size_t)w;
                    c->off = (c->off + (size_t)w) % cyc_len;
                }
                int stop = (mode == MODE_IDLE && c->sent >= one_len) ||
                           (mode == MODE_STALL && c->sent >= STALL_BYTES);
                if (w < 0 && errno == EAGAIN && mode == MODE_STALL && c->sent > 0)
                    stop = 0; /* level-triggered: wait for room, bounded by STALL_BYTES */
                if (stop) {
                    c->quiet = 1;
                    struct epoll_event ev = {.events = mode == MODE_IDLE ? EPOLLIN : 0,
                                             .data.u64 = evs[j].data.u64};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (e & EPOLLIN) {
                ssize_t r = read(c->fd, sink, sizeof sink);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->fd = -1;
                    res->closed_by_server++;
                }
            }
        }
    }
    fprintf(stderr, "  %s: %lu connected in %.2f s, measuring\n", mode_names[mode], n,
            res->connect_s);
    res->at = bench_load_get(&srv);
    res->on_close_ran = atomic_load(&srv.sh->closed);
    res->tcp_at = bench_load_sockstat_pages();
    for (unsigned long i = 0; i < n; i++)
        if (cl[i].fd >= 0)
            close(cl[i].fd);
    close(ep);
    free(cl);
    free(cyc);
    int st = bench_load_stop(&srv);
    if (st != 0)
        bench_fail("%s: server child exited with %d", mode_names[mode], st);
}

int main(void)
{
    bench_prog = "bench_memory";
    bench_ignore_sigpipe();
    long limit = bench_raise_nofile();
    unsigned long n = (unsigned long)bench_env_long("GMUD_BENCH_CONNS", 10000, 1, 1000000);
    if ((long)n + 64 > limit) {
        n = (unsigned long)(limit - 64);
        printf("bench_memory: RLIMIT_NOFILE's hard limit is %ld: %lu connections\n", limit, n);
    }
    stall_ms = (unsigned)bench_env_long("GMUD_BENCH_STALL_MS", STALL_MS, 500, 9500);
    bench_time_bound(115);
    printf("bench_memory: %lu connections per case, a fresh gmud echo server (child process, "
           "text payload, default limits, max_connections N + 16) each; RLIMIT_NOFILE %ld\n",
           n, limit);
    printf("  idle: one message each, measured %d ms after the last connect; flood: 64-byte "
           "frames as fast as the socket takes, shaped, measured after %d ms; stall: 4 KiB "
           "frames, never reads, measured after %d ms\n",
           SETTLE_MS, FLOOD_MS, stall_ms);
    printf("  (rate_close_ms and send_timeout_ms are 10 s: each case is measured before them)\n");
    bench_print_load();
    result r[MODES];
    for (int m = 0; m < MODES; m++) {
        run_mode(m, n, &r[m]);
        fflush(stdout);
    }
    double page = (double)sysconf(_SC_PAGESIZE);
    double idle_rss = (double)(r[MODE_IDLE].at.rss - r[MODE_IDLE].before.rss) / (double)n;
    printf("\n| case  | connect s | open at measure | RSS B/conn | / idle | RSS B/open conn | "
           "heap B/conn | buffered_total | buffered_peak | budget_closes | slow/rate/io closes "
           "| read_pauses | rate_held | client MB written | kernel TCP MiB |\n");
    printf("|-------|-----------|-----------------|------------|--------|-----------------|"
           "-------------|----------------|---------------|---------------|--------------------"
           "-|-------------|-----------|------------------|----------------|\n");
    for (int m = 0; m < MODES; m++) {
        const result *x = &r[m];
        double rss = (double)(x->at.rss - x->before.rss);
        double heap = (double)(x->at.heap - x->before.heap);
        unsigned long long open = x->at.conns;
        printf("| %-5s | %9.2f | %15llu | %10.0f | %6.2f | %15.0f | %11.0f | %14llu | %13llu | "
               "%13llu | %6llu/%llu/%-6llu | %11llu | %9llu | %16.1f | %14.1f |\n",
               mode_names[m], x->connect_s, open, rss / (double)n,
               idle_rss > 0 ? rss / (double)n / idle_rss : 0,
               open ? rss / (double)open : 0, heap / (double)n,
               (unsigned long long)x->at.st.buffered_total,
               (unsigned long long)x->at.st.buffered_peak,
               (unsigned long long)x->at.st.budget_closes,
               (unsigned long long)x->at.st.closes[GMUD_CLOSE_SLOW_CONSUMER],
               (unsigned long long)x->at.st.closes[GMUD_CLOSE_RATE_LIMITED],
               (unsigned long long)x->at.st.closes[GMUD_CLOSE_IO],
               (unsigned long long)x->at.st.read_pauses, (unsigned long long)x->at.st.rate_held,
               (double)x->written / 1e6,
               (double)(x->tcp_at - x->tcp_before) * page / 1048576.0);
    }
    printf("\nserver VmHWM (KiB) per case:");
    for (int m = 0; m < MODES; m++)
        printf(" %s %lld;", mode_names[m], r[m].at.vmhwm_kb);
    printf(" messages in:");
    for (int m = 0; m < MODES; m++)
        printf(" %s %llu;", mode_names[m], (unsigned long long)r[m].at.st.messages_in);
    printf(" on_close calls:");
    for (int m = 0; m < MODES; m++)
        printf(" %s %lu;", mode_names[m], r[m].on_close_ran);
    printf(" closes the clients saw:");
    for (int m = 0; m < MODES; m++)
        printf(" %s %lu;", mode_names[m], r[m].closed_by_server);
    printf(" echo sends refused:");
    for (int m = 0; m < MODES; m++)
        printf(" %s %llu;", mode_names[m], r[m].at.send_failed);
    printf("\n");
    return 0;
}
