/* bench/bench_load.h: what bench_flood and bench_memory share.
 *
 *   bench_load_spawn()   a gmud echo server (gmud framing, JSON payload,
 *                        sessions off so that raw sockets can speak to it,
 *                        the default limits unless the caller's tune()
 *                        changes them) in a forked child, driven over two
 *                        pipes: 'R' asks for a report (gmud_stats, RSS,
 *                        VmRSS/VmHWM, heap), 'Q' (or EOF) ends it;
 *   bench_load_socket()  a non-blocking TCP socket to 127.0.0.1:port from a
 *                        chosen 127.x.y.z source address (the server's
 *                        per-address limits see distinct clients);
 *   bench_load_frames()  a buffer of whole gmud frames to write cyclically;
 *   bench_load_sockstat() the kernel's TCP memory (pages, all sockets).
 * Benchmarks only. Failures end the program (bench_fail).
 */
#ifndef GMUD_BENCH_LOAD_H
#define GMUD_BENCH_LOAD_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <uv.h>

#include "bench_net.h"
#include "gmud/frame.h"
#include "gmud/server.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

typedef struct bench_load_report {
    gmud_stats st;
    long long rss;             /* bytes, /proc/self/statm */
    long long vmrss_kb;        /* /proc/self/status */
    long long vmhwm_kb;
    long long heap;            /* mallinfo2 uordblks + hblkhd, -1 if none */
    unsigned long long conns;  /* gmud_server_connections */
    unsigned long long send_failed;
} bench_load_report;

/* Counters in shared memory the server child advances. */
typedef struct bench_load_shared {
    atomic_ulong accepted;
    atomic_ulong closed;
} bench_load_shared;

typedef void (*bench_load_tune_fn)(gmud_server_config *cfg, void *arg);

typedef struct bench_load_child {
    uv_loop_t loop;
    gmud_server *server;
    uv_poll_t cmd;
    int cmd_fd, rep_fd;
    bench_load_shared *sh;
    unsigned long long send_failed;
    int done;
} bench_load_child;

static bench_load_child bench_load_c;

static inline long long bench_load_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kl = strlen(key);
    long long v = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* The kernel's TCP memory now, in pages (all sockets on the machine). */
static inline long long bench_load_sockstat_pages(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    char line[256];
    long long mem = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        const char *m = strstr(line, " mem ");
        if (strncmp(line, "TCP:", 4) == 0 && m != NULL) {
            mem = strtoll(m + 5, NULL, 10);
            break;
        }
    }
    fclose(f);
    return mem;
}

static void bench_load_on_connect(gmud_conn *conn, void *user)
{
    (void)conn;
    bench_load_child *c = user;
    atomic_fetch_add(&c->sh->accepted, 1);
}

static void bench_load_on_message(gmud_conn *conn, const uint8_t *data, size_t len,
                                  json_t *json, void *user)
{
    (void)json;
    bench_load_child *c = user;
    gmud_error err;
    /* A connection being closed (budget, send timeout) refuses: counted. */
    if (gmud_conn_send(conn, data, len, &err) != 0)
        c->send_failed++;
}

static void bench_load_on_close(gmud_conn *conn, gmud_close_reason reason,
                                const gmud_error *detail, void *user)
{
    (void)conn;
    (void)reason;
    (void)detail;
    bench_load_child *c = user;
    atomic_fetch_add(&c->sh->closed, 1);
}

static void bench_load_report_now(bench_load_child *c)
{
    bench_load_report r;
    memset(&r, 0, sizeof r);
    gmud_server_stats(c->server, &r.st);
    r.rss = bench_rss_bytes();
    r.vmrss_kb = bench_load_status_kb("VmRSS");
    r.vmhwm_kb = bench_load_status_kb("VmHWM");
    r.heap = bench_heap_bytes();
    r.conns = gmud_server_connections(c->server);
    r.send_failed = c->send_failed;
    bench_pipe_write(c->rep_fd, &r, sizeof r);
}

static void bench_load_shutdown_done(gmud_server *server, void *user)
{
    (void)server;
    bench_load_child *c = user;
    c->done = 1;
    uv_stop(&c->loop);
}

static void bench_load_on_cmd(uv_poll_t *p, int status, int events)
{
    (void)events;
    bench_load_child *c = p->data;
    char cmd = 'Q';
    if (status == 0) {
        ssize_t r = read(c->cmd_fd, &cmd, 1);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            return;
        if (r != 1)
            cmd = 'Q';
    }
    if (cmd == 'R') {
        bench_load_report_now(c);
        return;
    }
    uv_poll_stop(p);
    gmud_server_shutdown(c->server, GMUD_OFF, bench_load_shutdown_done, c);
}

/* The child: never returns. */
static inline void bench_load_child_main(int cmd_fd, int rep_fd, bench_load_shared *sh,
                                         size_t max_conns, bench_load_tune_fn tune,
                                         void *arg)
{
    bench_load_child *c = &bench_load_c;
    c->cmd_fd = cmd_fd;
    c->rep_fd = rep_fd;
    c->sh = sh;
    bench_raise_nofile();
    if (uv_loop_init(&c->loop) != 0)
        bench_fail("server: uv_loop_init");
    gmud_server_config cfg;
    gmud_server_default_config(&cfg);
    cfg.port = 0;
    cfg.backlog = 4096;
    cfg.conn.payload = GMUD_PAYLOAD_JSON;
    cfg.conn.session.mode = GMUD_SESSION_OFF; /* raw sockets speak plain gmud frames */
    if (max_conns + 16 > cfg.conn.limits.max_connections)
        cfg.conn.limits.max_connections = max_conns + 16;
    cfg.conn.cb.on_connect = bench_load_on_connect;
    cfg.conn.cb.on_message = bench_load_on_message;
    cfg.conn.cb.on_close = bench_load_on_close;
    cfg.conn.cb.user = c;
    if (tune != NULL)
        tune(&cfg, arg);
    gmud_error err;
    c->server = gmud_server_create(&c->loop, &cfg, &err);
    if (c->server == NULL)
        bench_fail("server: gmud_server_create: %s", err.message);
    uv_poll_init(&c->loop, &c->cmd, cmd_fd);
    c->cmd.data = c;
    uv_poll_start(&c->cmd, UV_READABLE, bench_load_on_cmd);
    uint16_t port = gmud_server_port(c->server);
    bench_pipe_write(rep_fd, &port, sizeof port);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    if (!c->done)
        bench_fail("server: loop ended before shutdown");
    uv_close((uv_handle_t *)&c->cmd, NULL);
    gmud_server_destroy(c->server);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    _exit(0);
}

typedef struct bench_load_handle {
    pid_t pid;
    int cmd_fd, rep_fd;
    uint16_t port;
    bench_load_shared *sh;
} bench_load_handle;

static inline bench_load_handle bench_load_spawn(size_t max_conns, unsigned child_seconds,
                                                 bench_load_tune_fn tune, void *arg)
{
    bench_load_handle h;
    int cmd[2], rep[2];
    h.sh = mmap(NULL, sizeof *h.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (h.sh == MAP_FAILED)
        bench_fail("mmap: %s", strerror(errno));
    atomic_init(&h.sh->accepted, 0);
    atomic_init(&h.sh->closed, 0);
    if (pipe(cmd) != 0 || pipe(rep) != 0)
        bench_fail("pipe: %s", strerror(errno));
    h.pid = bench_fork(child_seconds);
    if (h.pid == 0) {
        close(cmd[1]);
        close(rep[0]);
        bench_load_child_main(cmd[0], rep[1], h.sh, max_conns, tune, arg);
    }
    close(cmd[0]);
    close(rep[1]);
    h.cmd_fd = cmd[1];
    h.rep_fd = rep[0];
    if (bench_pipe_read(h.rep_fd, &h.port, sizeof h.port, 5000) != 0)
        bench_fail("server child did not start");
    return h;
}

static inline bench_load_report bench_load_get(const bench_load_handle *h)
{
    bench_load_report r;
    bench_pipe_write(h->cmd_fd, "R", 1);
    if (bench_pipe_read(h->rep_fd, &r, sizeof r, 30000) != 0)
        bench_fail("server child: no report");
    return r;
}

/* Ends the server child; its exit status (0 is a clean shutdown). */
static inline int bench_load_stop(bench_load_handle *h)
{
    bench_pipe_write(h->cmd_fd, "Q", 1);
    close(h->cmd_fd);
    int st = bench_wait(h->pid, 15000);
    close(h->rep_fd);
    munmap(h->sh, sizeof *h->sh);
    return st;
}

/* 127.<block>.<i / 250>.<i % 250 + 1>: source address number i of a block. */
static inline uint32_t bench_load_addr(unsigned block, unsigned i)
{
    return (127u << 24) | ((block & 0xffu) << 16) | (((i / 250u) & 0xffu) << 8) | (i % 250u + 1u);
}

/* A non-blocking socket from src (host order) to 127.0.0.1:port, the
 * connect begun (EINPROGRESS is normal); rcvbuf/sndbuf > 0 set those. */
static inline int bench_load_socket(uint32_t src, uint16_t port, int rcvbuf, int sndbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        bench_fail("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(src);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        bench_fail("bind to %u.%u.%u.%u: %s", src >> 24, (src >> 16) & 255, (src >> 8) & 255,
                   src & 255, strerror(errno));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
        bench_fail("connect: %s", strerror(errno));
    return fd;
}

/* One gmud frame of payload[0..len) into out; its length. */
static inline size_t bench_load_frame(const void *payload, size_t len, uint8_t *out, size_t cap)
{
    gmud_frame_config fcfg;
    gmud_frame_default_config(&fcfg, GMUD_FRAMING_GMUD);
    gmud_error err;
    ptrdiff_t n = gmud_frame_encode(&fcfg, payload, len, out, cap, &err);
    if (n <= 0)
        bench_fail("gmud_frame_encode: %s", err.message);
    return (size_t)n;
}

/* A malloc'd buffer of whole frames of payload, at least min_bytes long
 * (*out_len): written cyclically it is a valid stream. */
static inline uint8_t *bench_load_frames(const char *payload, size_t min_bytes, size_t *out_len)
{
    size_t plen = strlen(payload);
    uint8_t *one = bench_xmalloc(plen + 64);
    size_t flen = bench_load_frame(payload, plen, one, plen + 64);
    size_t k = (min_bytes + flen - 1) / flen;
    uint8_t *buf = bench_xmalloc(k * flen);
    for (size_t i = 0; i < k; i++)
        memcpy(buf + i * flen, one, flen);
    free(one);
    *out_len = k * flen;
    return buf;
}

#endif
