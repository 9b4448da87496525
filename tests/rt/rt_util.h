/* Helpers for the runtime tests: a log capture, a bounded loop runner and
 * blocking-socket helpers for peers run in a second thread. Every wait here
 * is bounded in time. */
#ifndef GMUD_TEST_RT_UTIL_H
#define GMUD_TEST_RT_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "check.h"
#include "gmud/gmud.h"

/* What gmud/server.h asks of every application using the runtime: a write
 * to a peer that has gone must be EPIPE, not the end of the test. Each
 * runtime test calls this first. */
static inline void rt_ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}

/* ---- Log capture ------------------------------------------------------ */

static char rt_logbuf[1 << 17];
static size_t rt_loglen;

static inline void rt_log(void *user, const gmud_log_event *ev)
{
    (void)user;
    char line[512];
    int n = snprintf(line, sizeof line, "%s %s %s %s\n", gmud_log_level_name(ev->level), ev->peer,
                     ev->event, ev->reason);
    if (n > 0 && rt_loglen + (size_t)n < sizeof rt_logbuf) {
        memcpy(rt_logbuf + rt_loglen, line, (size_t)n);
        rt_loglen += (size_t)n;
        rt_logbuf[rt_loglen] = '\0';
    }
    if (getenv("GMUD_TEST_VERBOSE") != NULL)
        fputs(line, stderr);
}

static inline void rt_log_clear(void)
{
    rt_loglen = 0;
    rt_logbuf[0] = '\0';
}

/* The first log line holding both needles, or NULL. */
static inline const char *rt_log_find(const char *a, const char *b)
{
    static char line[512];
    const char *p = rt_logbuf;
    while (*p != '\0') {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= sizeof line)
            n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        if (strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL))
            return line;
        p += n + (end ? 1 : 0);
    }
    return NULL;
}

/* ---- Time and the loop ------------------------------------------------ */

static inline int64_t rt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void rt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct rt_wait {
    int (*cond)(void *arg);
    void *arg;
    int64_t deadline;
} rt_wait;

static inline void rt_tick(uv_timer_t *t)
{
    rt_wait *w = t->data;
    if ((w->cond != NULL && w->cond(w->arg)) || rt_now_ms() >= w->deadline)
        uv_stop(t->loop);
}

/* Runs loop until cond(arg) holds (checked every 2 ms) or ms elapse.
 * Returns cond's final value (1 when cond is NULL). */
static inline int rt_run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, int ms)
{
    rt_wait w = {cond, arg, rt_now_ms() + ms};
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &w;
    uv_timer_start(&t, rt_tick, 2, 2);
    if (cond == NULL || !cond(arg))
        uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return cond == NULL || cond(arg);
}

static inline int rt_flag(void *p)
{
    return atomic_load((atomic_int *)p) != 0;
}

static inline int rt_int_set(void *p)
{
    return *(int *)p != 0;
}

/* Frees everything left on the loop and checks that nothing is left. */
static inline void rt_loop_finish(uv_loop_t *loop)
{
    rt_run_until(loop, NULL, NULL, 50);
    for (int i = 0; i < 10; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(loop);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        uv_print_all_handles(loop, stderr);
}

/* ---- Blocking sockets (for peer threads) ------------------------------- */

/* Connects to ip:port; rcvbuf > 0 shrinks the receive buffer first (so a
 * peer that does not read backs the sender up quickly). -1 on failure. */
/* A socket listening on 127.0.0.1 at a free port (*port); -1 on failure. */
static inline int rt_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static inline int rt_connect(const char *ip, int port, int rcvbuf)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &a->sin6_addr);
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &a->sin_addr);
        len = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static inline int rt_send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One recv within ms: bytes read, 0 at end of stream, -1 on error, -2 on
 * timeout. */
static inline ssize_t rt_recv(int fd, void *buf, size_t cap, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, ms);
    if (n == 0)
        return -2;
    if (n < 0)
        return -1;
    return recv(fd, buf, cap, 0);
}

/* Reads until end of stream (or ms pass); returns bytes read into buf
 * (at most cap), and sets *eof. */
static inline size_t rt_recv_to_eof(int fd, uint8_t *buf, size_t cap, int ms, int *eof)
{
    int64_t deadline = rt_now_ms() + ms;
    size_t got = 0;
    *eof = 0;
    while (rt_now_ms() < deadline) {
        uint8_t tmp[4096];
        ssize_t r = rt_recv(fd, tmp, sizeof tmp, (int)(deadline - rt_now_ms()));
        if (r == 0 || r == -1) {
            *eof = 1;
            break;
        }
        if (r < 0)
            continue;
        size_t take = (size_t)r < cap - got ? (size_t)r : cap - got;
        memcpy(buf + got, tmp, take);
        got += take;
    }
    return got;
}

/* ---- Configs ---------------------------------------------------------- */

static inline void rt_server_config(gmud_server_config *cfg, const char *framing,
                                    gmud_payload payload)
{
    gmud_server_default_config(cfg);
    cfg->port = 0;
    gmud_frame_config_parse(&cfg->conn.frame, framing, NULL);
    cfg->conn.payload = payload;
    cfg->conn.session.mode = GMUD_SESSION_OFF; /* plain frames unless a test asks */
    cfg->conn.log = rt_log;
    cfg->conn.log_level = GMUD_LOG_DEBUG;
}

/* For tests whose point is a flood (backpressure, a proxy pushing
 * hundreds of messages): the default spam limits would drop most of it. */
static inline void rt_no_rate_limits(gmud_server_config *cfg)
{
    cfg->conn.limits.msg_rate = 0;
    cfg->conn.limits.byte_rate = 0;
}

static inline void rt_client_config(gmud_client_config *cfg, const gmud_server_config *scfg,
                                    int port)
{
    gmud_client_default_config(cfg);
    cfg->port = (uint16_t)port;
    cfg->conn.frame = scfg->conn.frame;
    cfg->conn.payload = scfg->conn.payload;
    cfg->conn.session.mode = scfg->conn.session.mode;
    cfg->conn.log = rt_log;
    cfg->conn.log_level = GMUD_LOG_DEBUG;
}

/* A fresh log capture, then the server; on failure says why and fails
 * the CHECK (the caller gets NULL). */
static inline gmud_server *rt_server_create(uv_loop_t *loop, const gmud_server_config *cfg)
{
    rt_log_clear();
    gmud_error err;
    gmud_server *srv = gmud_server_create(loop, cfg, &err);
    if (srv == NULL)
        fprintf(stderr, "server: %s\n", err.message);
    CHECK(srv != NULL);
    return srv;
}

static inline void rt_shutdown_done(gmud_server *server, void *user)
{
    (void)server;
    *(int *)user = 1;
}

/* Shuts server down (bounded), destroys it and drains the loop. */
static inline void rt_server_end(uv_loop_t *loop, gmud_server *server)
{
    int done = 0;
    gmud_server_shutdown(server, 1000, rt_shutdown_done, &done);
    CHECK(rt_run_until(loop, rt_int_set, &done, 4000));
    gmud_server_destroy(server);
}

#endif
