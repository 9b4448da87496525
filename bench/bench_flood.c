/* bench_flood: honest round-trip latency beside a flood that the server
 * shapes, and beside connections that stall, against the same honest
 * clients with no flood, in one run.
 *
 * The server (bench_load.h) is a gmud echo server in a child process: gmud
 * framing, JSON payload, sessions off (the clients are raw sockets), and
 * the default limits: 100 msg/s (burst 200) and 256 KiB/s per connection,
 * shaped (GMUD_RATE_SHAPE), 64 connections and 20 new a second (burst 40)
 * per address, rate_close_ms 10 s, a buffer budget of 256 MiB. Phases are
 * kept shorter than rate_close_ms (connect + WARM_MS + measure, under 6 s by
 * default), so no flooder is closed for its rate; the closes[rate_limited]
 * column shows it.
 *
 * Honest side (this process): 10 connections, from 127.0.0.2..11, each one
 * round trip every PERIOD_MS (20 ms: 50 msg/s, half the message rate),
 * staggered, one at a time: a 64-byte JSON message, timed from its write to
 * the whole echo. A round trip still out when its next slot comes skips that
 * slot (counted as "late").
 * Flooders (a child process per phase): N connections, 20 per source
 * address in 127.<10+phase>.x.y, each writing valid 64-byte JSON frames as
 * fast as its non-blocking socket takes them and reading (discarding) the
 * echoes, so that only their rate holds them back.
 * Stalled connections (a child process per phase), built as bench_memory's
 * stall case: N connections, 40 per source address in 127.<20+k>.x.y (within
 * the 64 at once and the burst of 40 new), each with SO_RCVBUF 4 KiB, never
 * reading; once all N are in, each writes valid frames of a 4 KiB payload
 * while its socket takes them, until it has written STALL_BYTES (1 MiB,
 * whole frames). The server echoes into its queues until reading pauses
 * (read_high_water, 512 KiB), and the buffer budget closes the largest
 * holders.
 *
 * Phases 0-3, one server for all, the honest clients connected throughout:
 * no flood (baseline), 50 flooders, 500 flooders, no flood again (drift
 * check). Each: WARM_MS of unrecorded round trips with the flood running,
 * then the measured stretch. After each the server reports gmud_stats and
 * its VmRSS; the RSS column is VmRSS minus VmRSS once the honest clients
 * were connected (what the flood adds).
 * Phases 4-5, 2,000 and 10,000 stalled connections (cut to what
 * RLIMIT_NOFILE allows, printed): a fresh server for each, as bench_memory
 * has, so that its budget_closes, buffered_peak (a peak since the server
 * started), VmHWM and RSS are that phase's alone. Its payload is text (the
 * frames hold JSON, unparsed): 10,000 stalled peers write some 4 GB and
 * the server takes in 2 GB of it before the budget and the pauses stop it,
 * which jansson would parse for many seconds, past the send timeout; the
 * honest messages are 64 bytes, whose parse is a microsecond of a round
 * trip. The honest clients connect to it and make
 * STALL_PRE_MS of round trips (its own no-stall p50, printed beside); then
 * the stalled connections connect, and once every one has begun writing the
 * honest clients run WARM_MS and the measured stretch. The warm-up is
 * recorded too, in a row of its own ("4 warm"): the server takes in the
 * stall's first gigabytes then, and the round trips begun in it wait
 * seconds (its one round trip per client and its late count show how
 * long). The report comes some 6-9 s after the writes began, under
 * send_timeout_ms (10 s) on a quiet machine: the seconds are printed, and
 * beside them the
 * closes for slow consumers other than the budget's (send timeout,
 * max_queued), the closes for any other reason, and the server's CPU time
 * over the stall (/proc/<pid>/stat). Ratios are to phase 0.
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
    FLOOD_PHASES = 4,
    STALL_PHASES = 2,
    PHASES = FLOOD_PHASES + STALL_PHASES,
    INBUF = 8192,
    FLOOD_SECONDS = 30,
    STALL_PER_ADDR = 40,
    STALL_AHEAD = 2000, /* connects begun, not yet accepted, at most */
    STALL_PAYLOAD = 4096,
    STALL_BYTES = 1024 * 1024,
    STALL_RCVBUF = 4096,
    STALL_PRE_MS = 500,
    STALL_CONNECT_MS = 20000,
    STALL_SECONDS = 60
};

static const unsigned phase_flood[FLOOD_PHASES] = {0, 50, 500, 0};
static const unsigned phase_stall[STALL_PHASES] = {2000, 10000};

typedef struct honest {
    int fd;
    uint8_t in[INBUF];
    size_t in_len;
    uint64_t due, t0;
    int outstanding;
    unsigned seq;
} honest;

typedef struct phase_out {
    unsigned flooders, stalled;
    size_t trips, late, errors;
    bench_rtt_stats rtt;
    double max_us;
    bench_load_report start, rep;
    long long tcp_pages;       /* the kernel's TCP memory at the phase's end */
    unsigned long long flood_bytes;
    unsigned flood_closed;
    /* Stall phases: the server's own report once the honest clients were
     * connected (reference VmRSS), their p50 then, and the stall's side. */
    bench_load_report ref;
    double own_p50;
    double connect_s;          /* first stalled connect to the last accepted */
    double started_s;          /* first stalled write to every one begun */
    double report_s;           /* first stalled write to the report */
    unsigned long on_close_ran;
    double server_cpu_s;       /* the server child's CPU time over the stall */
    unsigned long long stall_bytes;
    unsigned stall_closed, stall_full;
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

/* ---- The stalled connections (a child) ------------------------------------- */

typedef struct stall_ready {
    uint64_t first_connect_ns, all_in_ns, all_started_ns; /* CLOCK_MONOTONIC */
} stall_ready;

typedef struct stall_result {
    unsigned long long written;
    unsigned closed; /* by the server: reset or end of stream */
    unsigned full;   /* wrote all STALL_BYTES */
} stall_result;

typedef struct stall_client {
    int fd;
    uint8_t begun; /* wrote, or was closed first */
    size_t off, sent;
} stall_client;

/* Frames of a 4 KiB JSON payload, cyclically (*cyc_len bytes, >= 64 KiB),
 * and the bytes each connection writes: STALL_BYTES rounded up to whole
 * frames, so that no stream ends inside a frame (*total). */
static uint8_t *stall_frames(size_t *cyc_len, size_t *total)
{
    char *big = bench_xmalloc(STALL_PAYLOAD + 32);
    int k = snprintf(big, 32, "{\"stall\": 1, \"pad\": \"");
    memset(big + k, 'x', STALL_PAYLOAD - (size_t)k - 2);
    memcpy(big + STALL_PAYLOAD - 2, "\"}", 3);
    uint8_t one[STALL_PAYLOAD + 64];
    size_t flen = bench_load_frame(big, STALL_PAYLOAD, one, sizeof one);
    uint8_t *cyc = bench_load_frames(big, 65536, cyc_len);
    free(big);
    *total = (STALL_BYTES + flen - 1) / flen * flen;
    return cyc;
}

static void stall_close(int ep, stall_client *c, unsigned *begun, stall_result *sr)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    sr->closed++;
    if (!c->begun) {
        c->begun = 1;
        (*begun)++;
    }
}

/* Opens n connections (no more than STALL_AHEAD beyond what the server has
 * accepted: its backlog is 4096), and once all are accepted turns writing
 * on for all at once; reports on ready_fd when every one has begun, and the
 * totals once stop_fd is readable (closed). */
static void stall_main(unsigned n, const bench_load_handle *srv, unsigned block, int ready_fd,
                       int stop_fd)
{
    bench_raise_nofile();
    size_t cyc_len, total;
    uint8_t *cyc = stall_frames(&cyc_len, &total);
    stall_client *cl = calloc(n, sizeof *cl);
    if (cl == NULL)
        bench_fail("stall: no memory for %u clients", n);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        bench_fail("epoll_create1: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd, &ev);
    unsigned long acc0 = atomic_load(&srv->sh->accepted);
    unsigned opened = 0, begun = 0;
    stall_ready rd = {bench_now_ns(), 0, 0};
    stall_result sr = {0, 0, 0};
    int stop = 0;
    while (!stop) {
        uint64_t now = bench_now_ns();
        unsigned long acc = atomic_load(&srv->sh->accepted) - acc0;
        while (opened < n && opened - acc < STALL_AHEAD) {
            stall_client *c = &cl[opened];
            c->fd = bench_load_socket(bench_load_addr(block, opened / STALL_PER_ADDR), srv->port,
                                      STALL_RCVBUF, 0);
            /* No writes until every connection is in, so that the connects
             * do not wait behind the server's work on the first ones. */
            ev.events = 0;
            ev.data.u64 = opened;
            if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
                bench_fail("epoll_ctl: %s", strerror(errno));
            opened++;
        }
        if (rd.all_in_ns == 0 && opened == n && acc >= n) {
            rd.all_in_ns = now;
            for (unsigned i = 0; i < n; i++) {
                ev.events = EPOLLOUT;
                ev.data.u64 = i;
                if (cl[i].fd >= 0)
                    epoll_ctl(ep, EPOLL_CTL_MOD, cl[i].fd, &ev);
            }
        }
        if (rd.all_in_ns == 0 && now > rd.first_connect_ns + STALL_CONNECT_MS * 1000000ull)
            bench_fail("stall: %lu accepted of %u in %d ms", acc, n, STALL_CONNECT_MS);
        struct epoll_event evs[1024];
        int k = epoll_wait(ep, evs, 1024, 10);
        if (k < 0 && errno != EINTR)
            bench_fail("epoll_wait: %s", strerror(errno));
        for (int j = 0; j < k; j++) {
            uint64_t i = evs[j].data.u64;
            if (i == UINT64_MAX) {
                stop = 1;
                continue;
            }
            stall_client *c = &cl[i];
            if (c->fd < 0)
                continue;
            if (evs[j].events & (EPOLLERR | EPOLLHUP)) {
                stall_close(ep, c, &begun, &sr);
                continue;
            }
            if (!(evs[j].events & EPOLLOUT))
                continue;
            size_t want = cyc_len - c->off;
            if (want > total - c->sent)
                want = total - c->sent;
            ssize_t w = write(c->fd, cyc + c->off, want);
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                stall_close(ep, c, &begun, &sr);
                continue;
            }
            if (w <= 0)
                continue;
            sr.written += (unsigned long long)w;
            c->sent += (size_t)w;
            c->off = (c->off + (size_t)w) % cyc_len;
            if (!c->begun) {
                c->begun = 1;
                begun++;
            }
            if (c->sent == total) {
                /* Level-triggered until here: it wrote while its socket
                 * had room. Now silent, and still never reading. */
                sr.full++;
                ev.events = 0;
                ev.data.u64 = i;
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
        if (rd.all_in_ns != 0 && rd.all_started_ns == 0 && begun == n) {
            rd.all_started_ns = bench_now_ns();
            bench_pipe_write(ready_fd, &rd, sizeof rd);
        }
    }
    bench_pipe_write(ready_fd, &sr, sizeof sr);
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
        /* A stall's first seconds hold round trips for seconds: not a
         * hang, so the bound is wide. */
        if (now >= end + 10000000000u)
            bench_fail("honest clients: round trips still out 10 s after the phase");
        /* ppoll, to the nanosecond: poll's whole milliseconds spun with a
         * zero timeout for the last fraction of each 2 ms gap, a core of a
         * two-core machine taken from the server. */
        uint64_t wait = now >= end ? 10000000u : next > now ? next - now : 0;
        struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        for (size_t i = 0; i < HONEST; i++)
            pfd[i] = (struct pollfd){hs[i].fd, POLLIN, 0};
        int k = ppoll(pfd, HONEST, &ts, NULL);
        if (k < 0 && errno != EINTR)
            bench_fail("ppoll: %s", strerror(errno));
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

/* HONEST connections to port, from 127.0.0.2.., connected. */
static void honest_connect(honest *hs, uint16_t port)
{
    memset(hs, 0, HONEST * sizeof *hs);
    for (size_t i = 0; i < HONEST; i++) {
        hs[i].fd = bench_load_socket((127u << 24) | (unsigned)(2 + i), port, 0, 0);
        struct pollfd p = {hs[i].fd, POLLOUT, 0};
        if (poll(&p, 1, 2000) != 1)
            bench_fail("honest client %zu did not connect", i);
    }
}

static void honest_close(honest *hs)
{
    for (size_t i = 0; i < HONEST; i++)
        close(hs[i].fd);
}

static void samples_init(bench_samples *s, size_t cap)
{
    s->us = bench_xmalloc(cap * sizeof(double));
    s->n = 0;
    s->cap = cap;
}

/* CPU time (user + system, seconds) process pid has used, from
 * /proc/<pid>/stat; -1 if unreadable. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After the name's closing parenthesis: state is field 3, utime and
     * stime fields 14 and 15. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Text payload for the stall phases' servers: see the header. */
static void tune_text(gmud_server_config *cfg, void *arg)
{
    (void)arg;
    cfg->conn.payload = GMUD_PAYLOAD_TEXT;
}

/* Phases 0-3: one server, the honest clients connected throughout. */
static void run_flood_phases(phase_out *po, bench_samples *smp, unsigned measure_ms,
                             bench_load_report *rep0)
{
    bench_load_handle srv = bench_load_spawn(1000, 90, NULL, NULL);
    honest hs[HONEST];
    honest_connect(hs, srv.port);
    /* A few round trips before the reference RSS: buffers taken once. */
    phase_out scratch;
    memset(&scratch, 0, sizeof scratch);
    honest_run(hs, 200, NULL, &scratch);
    *rep0 = bench_load_get(&srv);

    for (int p = 0; p < FLOOD_PHASES; p++) {
        po[p].flooders = phase_flood[p];
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
    }
    honest_close(hs);
    int st = bench_load_stop(&srv);
    if (st != 0)
        bench_fail("server child exited with %d", st);
}

/* One stall phase (4, 5): a fresh server, its own honest clients. */
static void run_stall_phase(phase_out *po, bench_samples *smp, phase_out *warm,
                            bench_samples *warm_smp, unsigned measure_ms, unsigned block)
{
    unsigned n = po->stalled;
    bench_load_handle srv = bench_load_spawn(n + HONEST, STALL_SECONDS, tune_text, NULL);
    honest hs[HONEST];
    honest_connect(hs, srv.port);
    phase_out scratch;
    memset(&scratch, 0, sizeof scratch);
    honest_run(hs, 200, NULL, &scratch);
    bench_samples own;
    samples_init(&own, (size_t)HONEST * (STALL_PRE_MS / PERIOD_MS + 2));
    honest_run(hs, STALL_PRE_MS, &own, &scratch);
    po->own_p50 = bench_rtt_summarise(&own).p50;
    free(own.us);
    po->ref = po->start = bench_load_get(&srv);
    double cpu0 = proc_cpu_s(srv.pid);

    int rd[2], stop[2];
    if (pipe(rd) != 0 || pipe(stop) != 0)
        bench_fail("pipe: %s", strerror(errno));
    pid_t spid = bench_fork(STALL_SECONDS);
    if (spid == 0) {
        close(rd[0]);
        close(stop[1]);
        close(srv.cmd_fd);
        close(srv.rep_fd);
        honest_close(hs);
        stall_main(n, &srv, block, rd[1], stop[0]);
    }
    close(rd[1]);
    close(stop[0]);
    stall_ready ready;
    if (bench_pipe_read(rd[0], &ready, sizeof ready, STALL_CONNECT_MS + 10000) != 0)
        bench_fail("%u stalled connections did not connect and begin writing", n);
    po->connect_s = (double)(ready.all_in_ns - ready.first_connect_ns) / 1e9;
    po->started_s = (double)(ready.all_started_ns - ready.all_in_ns) / 1e9;
    /* The warm-up is recorded apart: the server takes in the stall's
     * first bytes then, and its round trips are the worst. */
    honest_run(hs, WARM_MS, warm_smp, warm);
    honest_run(hs, measure_ms, smp, po);
    po->rep = bench_load_get(&srv);
    po->report_s = (double)(bench_now_ns() - ready.all_in_ns) / 1e9;
    po->server_cpu_s = proc_cpu_s(srv.pid) - cpu0;
    po->on_close_ran = atomic_load(&srv.sh->closed);
    po->tcp_pages = bench_load_sockstat_pages();
    close(stop[1]);
    stall_result sr;
    if (bench_pipe_read(rd[0], &sr, sizeof sr, 5000) != 0)
        bench_fail("stalled connections: no result");
    close(rd[0]);
    bench_wait(spid, 10000);
    po->stall_bytes = sr.written;
    po->stall_closed = sr.closed;
    po->stall_full = sr.full;
    honest_close(hs);
    int st = bench_load_stop(&srv);
    if (st != 0)
        bench_fail("stall server child exited with %d", st);
}

static unsigned long long delta(const phase_out *po, size_t reason)
{
    return (unsigned long long)(po->rep.st.closes[reason] - po->start.st.closes[reason]);
}

static void print_latency_row(const char *phase, const phase_out *x, const phase_out *base)
{
    char load[32];
    if (x->stalled > 0)
        snprintf(load, sizeof load, "stall %u", x->stalled);
    else if (x->flooders > 0)
        snprintf(load, sizeof load, "flood %u", x->flooders);
    else
        snprintf(load, sizeof load, "none");
    printf("| %-6s | %-11s | %11zu | %4zu | %8zu | %10.1f | %10.1f | %9.0f | %10.2f | %10.2f |\n",
           phase, load, x->trips, x->late, x->errors, x->rtt.p50, x->rtt.p99, x->max_us,
           ratio(x->rtt.p50, base->rtt.p50), ratio(x->rtt.p99, base->rtt.p99));
}

/* Phases 0-5; before each stall phase its warm-up ("4 warm": the round
 * trips begun in the WARM_MS after every stalled connection had begun). */
static void print_latency(const phase_out *po, const phase_out *warm)
{
    printf("\n| phase  | load        | round trips | late | err pkts |     p50 us |     p99 us |    max us | "
           "p50 / base | p99 / base |\n");
    printf("|--------|-------------|-------------|------|----------|------------|------------|-----------|"
           "------------|------------|\n");
    for (int p = 0; p < PHASES; p++) {
        char name[16];
        if (p >= FLOOD_PHASES) {
            snprintf(name, sizeof name, "%d warm", p);
            print_latency_row(name, &warm[p - FLOOD_PHASES], &po[0]);
        }
        snprintf(name, sizeof name, "%d", p);
        print_latency_row(name, &po[p], &po[0]);
    }
}

static void print_flood_server(const phase_out *po, const bench_load_report *rep0)
{
    printf("\nserver, phases 0-3 (counters as deltas from the phase's start, flooders' connect "
           "included; conns, peak and RSS at its end; RSS + = VmRSS - %lld KiB, the VmRSS with "
           "the honest clients only; kernel TCP MiB = /proc/net/sockstat TCP mem, every socket "
           "of both sides)\n",
           rep0->vmrss_kb);
    printf("| phase | flooders | msgs in | flood MB written | rate_held | rate_dropped | "
           "closes rate/slow | flooders closed | conns | buffered_total | buffered_peak | RSS + KiB | "
           "VmHWM KiB | kernel TCP MiB |\n");
    printf("|-------|----------|---------|------------------|-----------|--------------|"
           "------------------|-----------------|-------|----------------|---------------|-----------|"
           "-----------|----------------|\n");
    for (int p = 0; p < FLOOD_PHASES; p++) {
        const bench_load_report *r = &po[p].rep, *prev = &po[p].start;
        printf("| %5d | %8u | %7llu | %16.1f | %9llu | %12llu | %7llu/%-8llu | %15u | %5llu | %14llu | "
               "%13llu | %9lld | %9lld | %14.1f |\n",
               p, po[p].flooders,
               (unsigned long long)(r->st.messages_in - prev->st.messages_in),
               (double)po[p].flood_bytes / 1e6,
               (unsigned long long)(r->st.rate_held - prev->st.rate_held),
               (unsigned long long)(r->st.rate_dropped - prev->st.rate_dropped),
               delta(&po[p], GMUD_CLOSE_RATE_LIMITED), delta(&po[p], GMUD_CLOSE_SLOW_CONSUMER),
               po[p].flood_closed, r->conns, (unsigned long long)r->st.buffered_total,
               (unsigned long long)r->st.buffered_peak, r->vmrss_kb - rep0->vmrss_kb,
               r->vmhwm_kb, (double)po[p].tcp_pages * (double)sysconf(_SC_PAGESIZE) / 1048576.0);
    }
}

static void print_stall_server(const phase_out *po)
{
    printf("\nserver, phases 4-5 (a fresh server each, text payload; own p50 = the honest p50 "
           "on it before the stall; connect s = first stalled connect to all accepted; begun s = "
           "writes on to every one begun; report s = writes on to the report, under "
           "send_timeout_ms 10 s; server CPU s = the server's user + system time over the stall; closes as deltas over the stall: budget = budget_closes, slow "
           "other = slow-consumer closes not the budget's (send timeout, max_queued), other = "
           "all other reasons; on_close = the server's on_close calls by the report; clients "
           "closed / full = stalled clients the server closed / that wrote all %d KiB; "
           "buffered_peak since the server started; RSS + = VmRSS - VmRSS with the honest "
           "clients only)\n",
           STALL_BYTES / 1024);
    printf("| phase | stalled | own p50 us | connect s | begun s | report s | server CPU s | msgs in | "
           "read_pauses | budget | slow other | other | on_close | open | clients closed/full | "
           "client MB written | buffered_total | buffered_peak | RSS + KiB | VmHWM KiB | "
           "kernel TCP MiB |\n");
    printf("|-------|---------|------------|-----------|---------|----------|--------------|---------|"
           "-------------|--------|------------|-------|----------|------|---------------------|"
           "-------------------|----------------|---------------|-----------|-----------|"
           "----------------|\n");
    for (int p = FLOOD_PHASES; p < PHASES; p++) {
        const phase_out *x = &po[p];
        const bench_load_report *r = &x->rep, *prev = &x->start;
        unsigned long long all = 0;
        for (size_t k = 0; k < GMUD_CLOSE_REASON_COUNT_; k++)
            all += delta(x, k);
        unsigned long long budget = (unsigned long long)(r->st.budget_closes -
                                                         prev->st.budget_closes);
        unsigned long long slow = delta(x, GMUD_CLOSE_SLOW_CONSUMER);
        printf("| %5d | %7u | %10.1f | %9.2f | %7.2f | %8.2f | %12.2f | %7llu | %11llu | %6llu | %10llu | "
               "%5llu | %8lu | %4llu | %9u/%-9u | %17.1f | %14llu | %13llu | %9lld | %9lld | "
               "%14.1f |\n",
               p, x->stalled, x->own_p50, x->connect_s, x->started_s, x->report_s, x->server_cpu_s,
               (unsigned long long)(r->st.messages_in - prev->st.messages_in),
               (unsigned long long)(r->st.read_pauses - prev->st.read_pauses), budget,
               slow - budget, all - slow, x->on_close_ran, r->conns, x->stall_closed,
               x->stall_full, (double)x->stall_bytes / 1e6,
               (unsigned long long)r->st.buffered_total, (unsigned long long)r->st.buffered_peak,
               r->vmrss_kb - x->ref.vmrss_kb, r->vmhwm_kb,
               (double)x->tcp_pages * (double)sysconf(_SC_PAGESIZE) / 1048576.0);
    }
}

int main(void)
{
    bench_prog = "bench_flood";
    bench_ignore_sigpipe();
    long limit = bench_raise_nofile();
    unsigned measure_ms = (unsigned)bench_env_long("GMUD_BENCH_MEASURE_MS", 4000, 500, 8000);
    bench_time_bound(150);

    printf("bench_flood: %d honest clients, one 64-byte JSON round trip each every %d ms "
           "(%d msg/s each), beside N flooders shaped by the server's default rates, or N "
           "stalled connections\n",
           HONEST, PERIOD_MS, 1000 / PERIOD_MS);
    printf("  server: gmud echo in a child process, gmud framing, JSON, sessions off, "
           "default limits (100 msg/s burst 200, 256 KiB/s, shape, rate_close 10 s, "
           "budget 256 MiB)\n");
    printf("  each flood phase: flooders connect, %d ms warm-up, %u ms measured (under "
           "rate_close_ms: no rate closes expected)\n",
           WARM_MS, measure_ms);
    printf("  each stall phase: a fresh server (text payload), %d ms of its own no-stall round "
           "trips, N connections (SO_RCVBUF %d, never read) write %d KiB of 4 KiB frames; once "
           "all have begun, %d ms warm-up, %u ms measured (under send_timeout_ms, 10 s)\n",
           STALL_PRE_MS, STALL_RCVBUF, STALL_BYTES / 1024, WARM_MS, measure_ms);
    bench_print_load();

    phase_out po[PHASES], warm[STALL_PHASES];
    bench_samples smp[PHASES], warm_smp[STALL_PHASES];
    size_t cap = (size_t)HONEST * (measure_ms / PERIOD_MS + 2);
    for (int p = 0; p < PHASES; p++) {
        memset(&po[p], 0, sizeof po[p]);
        samples_init(&smp[p], cap);
    }
    for (int k = 0; k < STALL_PHASES; k++) {
        memset(&warm[k], 0, sizeof warm[k]);
        samples_init(&warm_smp[k], (size_t)HONEST * (WARM_MS / PERIOD_MS + 2));
    }
    for (int k = 0; k < STALL_PHASES; k++) {
        unsigned n = phase_stall[k];
        /* The stalled side holds n descriptors, the server n + HONEST. */
        if ((long)n + 64 > limit) {
            n = limit > 128 ? (unsigned)(limit - 64) : 64;
            printf("  RLIMIT_NOFILE's hard limit is %ld: %u stalled connections, not %u\n",
                   limit, n, phase_stall[k]);
        }
        po[FLOOD_PHASES + k].stalled = warm[k].stalled = n;
    }
    fflush(stdout);

    bench_load_report rep0;
    run_flood_phases(po, smp, measure_ms, &rep0);
    for (int k = 0; k < STALL_PHASES; k++)
        run_stall_phase(&po[FLOOD_PHASES + k], &smp[FLOOD_PHASES + k], &warm[k], &warm_smp[k],
                        measure_ms, (unsigned)(20 + k));
    for (int p = 0; p < PHASES; p++) {
        po[p].trips = smp[p].n;
        po[p].rtt = bench_rtt_summarise(&smp[p]);
    }
    for (int k = 0; k < STALL_PHASES; k++) {
        warm[k].trips = warm_smp[k].n;
        warm[k].rtt = bench_rtt_summarise(&warm_smp[k]);
    }

    print_latency(po, warm);
    print_flood_server(po, &rep0);
    print_stall_server(po);
    for (int p = 0; p < PHASES; p++)
        free(smp[p].us);
    for (int k = 0; k < STALL_PHASES; k++)
        free(warm_smp[k].us);
    return 0;
}
