/* bench_flood: honest round-trip latency beside a flood that the server
 * shapes, against the same honest clients with no flood, in one run.
 *
 * The server (bench_load.h) is a gmud echo server in a child process: gmud
 * framing, JSON payload, sessions off (the clients are raw sockets), and
 * the default limits: 100 msg/s (burst 200) and 256 KiB/s per connection,
 * shaped (GMUD_RATE_SHAPE), 64 connections and 20 new a second per address,
 * rate_close_ms 10 s. Phases are kept shorter than rate_close_ms (connect +
 * WARM_MS + measure, under 6 s by default), so no flooder is closed for its
 * rate; the closes[rate_limited] column shows it.
 *
 * Honest side (this process): 10 connections, from 127.0.0.2..11, each one
 * round trip every PERIOD_MS (20 ms: 50 msg/s, half the message rate),
 * staggered, one at a time: a 64-byte JSON message, timed from its write to
 * the whole echo. A round trip still out when its next slot comes skips that
 * slot (counted as "late").
 * Flooders (a child process per phase): N connections, 20 per source
 * address in 127.<phase>.x.y, each writing valid 64-byte JSON frames as fast
 * as its non-blocking socket takes them and reading (discarding) the echoes,
 * so that only their rate holds them back.
 *
 * Phases: no flood (baseline), 50 flooders, 500 flooders, no flood again
 * (drift check). Each: WARM_MS of unrecorded round trips with the flood
 * running, then the measured stretch. After each the server reports
 * gmud_stats and its VmRSS; the RSS column is VmRSS minus VmRSS once the
 * honest clients were connected (what the flood adds).
 *
 * Environment: GMUD_BENCH_MEASURE_MS (default 4000, at most 8000).
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "bench_echo.h"
#include "bench_load.h"
#include "bench_net.h"
#include "bench_util.h"

enum {
    HONEST = 10,
    PERIOD_MS = 20,
    WARM_MS = 1000,
    PER_ADDR = 20,
    PHASES = 4,
    INBUF = 8192,
    FLOOD_SECONDS = 30
};

static const unsigned phase_flood[PHASES] = {0, 50, 500, 0};

typedef struct honest {
    int fd;
    uint8_t in[INBUF];
    size_t in_len;
    uint64_t due, t0;
    int outstanding;
    unsigned seq;
} honest;

typedef struct phase_out {
    unsigned flooders;
    size_t trips, late, errors;
    bench_rtt_stats rtt;
    double max_us;
    bench_load_report start, rep;
    long long tcp_pages;       /* the kernel's TCP memory at the phase's end */
    unsigned long long flood_bytes;
    unsigned flood_closed;
} phase_out;

/* ---- The flooders (a child) ------------------------------------------------ */

typedef struct flood_result {
    unsigned long long written;
    unsigned connected, closed;
} flood_result;

static void flood_main(unsigned n, uint16_t port, unsigned block, int ready_fd, int stop_fd)
{
    bench_raise_nofile();
    static uint8_t sink[65536];
    size_t cyc_len;
    uint8_t *cyc = bench_load_frames(
        "{\"flood\": 1, \"pad\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", 65536, &cyc_len);
    int *fds = bench_xmalloc(n * sizeof *fds);
    size_t *off = bench_xmalloc(n * sizeof *off);
    char *up = calloc(n, 1);
    if (up == NULL)
        bench_fail("flood: no memory");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        bench_fail("epoll_create1: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd, &ev);
    for (unsigned i = 0; i < n; i++) {
        fds[i] = bench_load_socket(bench_load_addr(block, i / PER_ADDR), port, 0, 0);
        off[i] = 0;
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.u64 = i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0)
            bench_fail("epoll_ctl: %s", strerror(errno));
    }
    flood_result fr = {0, 0, 0};
    int ready = 0, stop = 0;
    uint64_t connect_end = bench_now_ns() + 5000000000u;
    while (!stop) {
        struct epoll_event evs[512];
        int k = epoll_wait(ep, evs, 512, 50);
        if (k < 0 && errno != EINTR)
            bench_fail("epoll_wait: %s", strerror(errno));
        for (int j = 0; j < k; j++) {
            uint64_t i = evs[j].data.u64;
            if (i == UINT64_MAX) {
                stop = 1;
                continue;
            }
            int fd = fds[i];
            if (fd < 0)
                continue;
            if (evs[j].events & (EPOLLERR | EPOLLHUP)) {
                close(fd);
                fds[i] = -1;
                fr.closed++;
                continue;
            }
            if (evs[j].events & EPOLLOUT) {
                if (!up[i]) {
                    up[i] = 1;
                    fr.connected++;
                }
                ssize_t w = write(fd, cyc + off[i], cyc_len - off[i]);
                if (w > 0) {
                    fr.written += (unsigned long long)w;
                    off[i] = (off[i] + (size_t)w) % cyc_len;
                }
            }
            if (evs[j].events & EPOLLIN) {
                ssize_t r = read(fd, sink, sizeof sink);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    close(fd);
                    fds[i] = -1;
                    fr.closed++;
                }
            }
        }
        if (!ready && fr.connected + fr.closed == n) {
            ready = 1;
            bench_pipe_write(ready_fd, "r", 1);
        }
        if (!ready && bench_now_ns() > connect_end)
            bench_fail("flood: %u of %u connected in 5 s", fr.connected, n);
    }
    bench_pipe_write(ready_fd, &fr, sizeof fr);
    _exit(0);
}

/* ---- The honest clients ---------------------------------------------------- */

static void honest_send(honest *h, size_t idx, uint64_t now)
{
    char msg[128];
    uint8_t frame[160];
    int n = snprintf(msg, sizeof msg, "{\"c\": %zu, \"seq\": %10u, \"pad\": \"honest-xxxxxxxxx\"}",
                     idx, h->seq++);
    size_t flen = bench_load_frame(msg, (size_t)n, frame, sizeof frame);
    ssize_t w = write(h->fd, frame, flen);
    if (w != (ssize_t)flen)
        bench_fail("honest client %zu: short write (%zd)", idx, w);
    h->t0 = now;
    h->outstanding = 1;
}

/* Reads what h's socket has; one echo (or error packet) ends the round
 * trip. 1 if a round trip completed (its time in *ns), -1 on an error
 * packet. */
static int honest_read(honest *h, size_t idx, uint64_t *ns)
{
    ssize_t r = read(h->fd, h->in + h->in_len, sizeof h->in - h->in_len);
    if (r == 0)
        bench_fail("honest client %zu: the server closed it", idx);
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        bench_fail("honest client %zu: read: %s", idx, strerror(errno));
    }
    uint64_t t1 = bench_now_ns();
    h->in_len += (size_t)r;
    int got = 0;
    while (h->in_len >= 6) {
        if (memcmp(h->in, "GMUD", 4) != 0)
            bench_fail("honest client %zu: bad frame from the server", idx);
        size_t len = (size_t)h->in[4] | ((size_t)h->in[5] << 8);
        if (h->in_len < 6 + len)
            break;
        int err = memmem(h->in + 6, len, "\"error\"", 7) != NULL;
        memmove(h->in, h->in + 6 + len, h->in_len - 6 - len);
        h->in_len -= 6 + len;
        if (err) {
            got = -1;
            continue;
        }
        if (h->outstanding) {
            h->outstanding = 0;
            *ns = t1 - h->t0;
            if (got == 0)
                got = 1;
        }
    }
    return got;
}

/* Paced round trips for duration_ms; samples into out if not NULL. */
static void honest_run(honest *hs, unsigned duration_ms, bench_samples *out, phase_out *po)
{
    uint64_t start = bench_now_ns(), end = start + (uint64_t)duration_ms * 1000000u;
    for (size_t i = 0; i < HONEST; i++)
        hs[i].due = start + (uint64_t)i * PERIOD_MS * 1000000u / HONEST;
    struct pollfd pfd[HONEST];
    for (;;) {
        uint64_t now = bench_now_ns();
        uint64_t next = UINT64_MAX;
        int any_out = 0;
        for (size_t i = 0; i < HONEST; i++) {
            honest *h = &hs[i];
            if (now < end && now >= h->due) {
                if (h->outstanding) {
                    if (out != NULL)
                        po->late++;
                } else {
                    honest_send(h, i, now);
                }
                while (h->due <= now)
                    h->due += (uint64_t)PERIOD_MS * 1000000u;
            }
            if (h->due < next)
                next = h->due;
            any_out |= h->outstanding;
        }
        if (now >= end && !any_out)
            break;
        if (now >= end + 2000000000u)
            bench_fail("honest clients: round trips still out 2 s after the phase");
        int timeout = now >= end ? 10 : next > now ? (int)((next - now) / 1000000u) : 0;
        for (size_t i = 0; i < HONEST; i++)
            pfd[i] = (struct pollfd){hs[i].fd, POLLIN, 0};
        int k = poll(pfd, HONEST, timeout);
        if (k < 0 && errno != EINTR)
            bench_fail("poll: %s", strerror(errno));
        for (size_t i = 0; k > 0 && i < HONEST; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            uint64_t ns = 0;
            int g = honest_read(&hs[i], i, &ns);
            if (g < 0 && out != NULL)
                po->errors++;
            if (g == 1 && out != NULL) {
                bench_samples_add(out, ns);
                if ((double)ns / 1e3 > po->max_us)
                    po->max_us = (double)ns / 1e3;
            }
        }
    }
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

int main(void)
{
    bench_prog = "bench_flood";
    bench_ignore_sigpipe();
    bench_raise_nofile();
    unsigned measure_ms = (unsigned)bench_env_long("GMUD_BENCH_MEASURE_MS", 4000, 500, 8000);
    bench_time_bound(100);

    printf("bench_flood: %d honest clients, one 64-byte JSON round trip each every %d ms "
           "(%d msg/s each), beside N flooders shaped by the server's default rates\n",
           HONEST, PERIOD_MS, 1000 / PERIOD_MS);
    printf("  server: gmud echo in a child process, gmud framing, JSON, sessions off, "
           "default limits (100 msg/s burst 200, 256 KiB/s, shape, rate_close 10 s)\n");
    printf("  each phase: flooders connect, %d ms warm-up, %u ms measured (under "
           "rate_close_ms: no rate closes expected)\n",
           WARM_MS, measure_ms);
    bench_print_load();

    bench_load_handle srv = bench_load_spawn(1000, 90, NULL, NULL);
    honest hs[HONEST];
    memset(hs, 0, sizeof hs);
    for (size_t i = 0; i < HONEST; i++) {
        hs[i].fd = bench_load_socket((127u << 24) | (unsigned)(2 + i), srv.port, 0, 0);
        struct pollfd p = {hs[i].fd, POLLOUT, 0};
        if (poll(&p, 1, 2000) != 1)
            bench_fail("honest client %zu did not connect", i);
    }
    /* A few round trips before the reference RSS: buffers taken once. */
    phase_out scratch;
    memset(&scratch, 0, sizeof scratch);
    honest_run(hs, 200, NULL, &scratch);
    bench_load_report rep0 = bench_load_get(&srv);

    phase_out po[PHASES];
    size_t cap = (size_t)HONEST * (measure_ms / PERIOD_MS + 2);
    bench_samples smp[PHASES];
    for (int p = 0; p < PHASES; p++) {
        memset(&po[p], 0, sizeof po[p]);
        po[p].flooders = phase_flood[p];
        smp[p].us = bench_xmalloc(cap * sizeof(double));
        smp[p].n = 0;
        smp[p].cap = cap;
        po[p].start = bench_load_get(&srv);
        pid_t fpid = -1;
        int rd[2] = {-1, -1}, stop[2] = {-1, -1};
        if (phase_flood[p] > 0) {
            if (pipe(rd) != 0 || pipe(stop) != 0)
                bench_fail("pipe: %s", strerror(errno));
            fpid = bench_fork(FLOOD_SECONDS);
            if (fpid == 0) {
                close(rd[0]);
                close(stop[1]);
                close(srv.cmd_fd);
                close(srv.rep_fd);
                flood_main(phase_flood[p], srv.port, (unsigned)(10 + p), rd[1], stop[0]);
            }
            close(rd[1]);
            close(stop[0]);
            char c;
            if (bench_pipe_read(rd[0], &c, 1, 6000) != 0)
                bench_fail("flooders did not connect");
        }
        honest_run(hs, WARM_MS, NULL, &po[p]);
        honest_run(hs, measure_ms, &smp[p], &po[p]);
        po[p].rep = bench_load_get(&srv);
        po[p].tcp_pages = bench_load_sockstat_pages();
        if (fpid > 0) {
            close(stop[1]);
            flood_result fr;
            if (bench_pipe_read(rd[0], &fr, sizeof fr, 5000) != 0)
                bench_fail("flooders: no result");
            close(rd[0]);
            bench_wait(fpid, 5000);
            po[p].flood_bytes = fr.written;
            po[p].flood_closed = fr.closed;
            /* Let the server see the closes before the next phase. */
            uint64_t until = bench_now_ns() + 3000000000u;
            while (bench_load_get(&srv).conns > HONEST && bench_now_ns() < until)
                usleep(20000);
        }
        po[p].trips = smp[p].n;
        po[p].rtt = bench_rtt_summarise(&smp[p]);
    }
    for (size_t i = 0; i < HONEST; i++)
        close(hs[i].fd);
    int st = bench_load_stop(&srv);

    printf("\n| phase | flooders | round trips | late | err pkts | p50 us | p99 us | max us | "
           "p50 / base | p99 / base |\n");
    printf("|-------|----------|-------------|------|----------|--------|--------|--------|"
           "------------|------------|\n");
    for (int p = 0; p < PHASES; p++)
        printf("| %d | %8u | %11zu | %4zu | %8zu | %6.1f | %6.1f | %6.0f | %10.2f | %10.2f |\n",
               p, po[p].flooders, po[p].trips, po[p].late, po[p].errors, po[p].rtt.p50,
               po[p].rtt.p99, po[p].max_us, ratio(po[p].rtt.p50, po[0].rtt.p50),
               ratio(po[p].rtt.p99, po[0].rtt.p99));
    printf("\nserver, per phase (counters as deltas from the phase's start, flooders' connect "
           "included; conns, peak and RSS at its end; RSS + = VmRSS - %lld KiB, the VmRSS with "
           "the honest clients only; kernel TCP MiB = /proc/net/sockstat TCP mem, every socket "
           "of both sides)\n",
           rep0.vmrss_kb);
    printf("| phase | flooders | msgs in | flood MB written | rate_held | rate_dropped | "
           "closes rate/slow | flooders closed | conns | buffered_total | buffered_peak | RSS + KiB | "
           "VmHWM KiB | kernel TCP MiB |\n");
    printf("|-------|----------|---------|------------------|-----------|--------------|"
           "------------------|-----------------|-------|----------------|---------------|-----------|"
           "-----------|----------------|\n");
    for (int p = 0; p < PHASES; p++) {
        const bench_load_report *r = &po[p].rep, *prev = &po[p].start;
        printf("| %d | %8u | %7llu | %16.1f | %9llu | %12llu | %7llu/%-8llu | %15u | %5llu | %14llu | "
               "%13llu | %9lld | %9lld | %14.1f |\n",
               p, po[p].flooders,
               (unsigned long long)(r->st.messages_in - prev->st.messages_in),
               (double)po[p].flood_bytes / 1e6,
               (unsigned long long)(r->st.rate_held - prev->st.rate_held),
               (unsigned long long)(r->st.rate_dropped - prev->st.rate_dropped),
               (unsigned long long)(r->st.closes[GMUD_CLOSE_RATE_LIMITED] -
                                    prev->st.closes[GMUD_CLOSE_RATE_LIMITED]),
               (unsigned long long)(r->st.closes[GMUD_CLOSE_SLOW_CONSUMER] -
                                    prev->st.closes[GMUD_CLOSE_SLOW_CONSUMER]),
               po[p].flood_closed, r->conns, (unsigned long long)r->st.buffered_total,
               (unsigned long long)r->st.buffered_peak, r->vmrss_kb - rep0.vmrss_kb,
               r->vmhwm_kb, (double)po[p].tcp_pages * (double)sysconf(_SC_PAGESIZE) / 1048576.0);
    }
    if (st != 0)
        bench_fail("server child exited with %d", st);
    for (int p = 0; p < PHASES; p++)
        free(smp[p].us);
    return 0;
}
