/* Helpers for the runtime tests: a log capture, a bounded loop runner,
 * blocking-socket helpers for peers run in a second thread, and the one
 * fixture (rt_fixture, at the end) that holds a test's loop, server,
 * clients and peer threads and tears them all down. Every wait here is
 * bounded in time. */
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
#include "conn.h" /* rt_readbufs_live: the fixture's teardown checks it */
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

static inline int64_t rt_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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

/* For threads without a loop: waits until *f is set or ms pass (checked
 * every millisecond); whether it is set. */
static inline int rt_wait_flag(atomic_int *f, int ms)
{
    int64_t deadline = rt_now_ms() + ms;
    while (!atomic_load(f) && rt_now_ms() < deadline)
        rt_sleep_ms(1);
    return atomic_load(f) != 0;
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

/* Closes fd unless it is -1 (a socket that failed to open). */
static inline void rt_close_fd(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* A socket bound to 127.0.0.1 at a free port (*port), listening unless
 * backlog < 0; -1 on failure. */
static inline int rt_bound(int *port, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        (backlog >= 0 && listen(fd, backlog) != 0) ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        rt_close_fd(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A socket listening on 127.0.0.1 at a free port (*port); -1 on failure. */
static inline int rt_listen(int *port)
{
    return rt_bound(port, 4);
}

/* A port on 127.0.0.1 that refuses connections: a bound socket that never
 * listens, kept in *fd so that nothing else takes the port (close it when
 * done). The port, or 0 on failure (CHECKed: call it from main). */
static inline int rt_refusing_port(int *fd)
{
    int port = 0;
    *fd = rt_bound(&port, -1);
    CHECK(*fd >= 0);
    return port;
}

/* A connection accepted on lfd within ms; -1 on timeout or failure. */
static inline int rt_accept_within(int lfd, int ms)
{
    struct pollfd pf = {lfd, POLLIN, 0};
    if (poll(&pf, 1, ms) != 1)
        return -1;
    return accept(lfd, NULL, NULL);
}

/* ip (IPv4, or IPv6 if it has a colon) and port as a socket address; its
 * length. */
static inline socklen_t rt_sockaddr(const char *ip, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &a->sin6_addr);
        return sizeof *a;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    return sizeof *a;
}

/* Connects to ip:port from the address src (NULL: the kernel's choice; a
 * 127.0.0.x for a peer that must look like another address); rcvbuf > 0
 * shrinks the receive buffer first (so a peer that does not read backs the
 * sender up quickly). -1 on failure. */
static inline int rt_connect_from(const char *src, const char *ip, int port, int rcvbuf)
{
    struct sockaddr_storage to, from;
    socklen_t len = rt_sockaddr(ip, port, &to);
    int fd = socket(to.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if ((src != NULL && bind(fd, (struct sockaddr *)&from, rt_sockaddr(src, 0, &from)) != 0) ||
        connect(fd, (struct sockaddr *)&to, len) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static inline int rt_connect(const char *ip, int port, int rcvbuf)
{
    return rt_connect_from(NULL, ip, port, rcvbuf);
}

/* fd's own address as the server logs its peer: "127.0.0.1:40000". */
static inline void rt_local_name(int fd, char *out, size_t cap)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(a.sin_port));
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

/* Reads exactly n bytes by deadline (rt_now_ms): 1, 0 at end of stream
 * before any byte, -1 on an error or an end inside, -2 on timeout. */
static inline int rt_recv_exact(int fd, uint8_t *b, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        int64_t left = deadline - rt_now_ms();
        if (left <= 0)
            return -2;
        ssize_t r = rt_recv(fd, b + got, n - got, (int)left);
        if (r == -2)
            return -2;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return got == 0 && r == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

/* ---- Frames and bytes by hand ------------------------------------------ */

/* Written and read here, not by the library, so that what a test asserts
 * is what is on the wire. */

static inline void rt_le64_put(uint8_t *out, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t rt_le64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* One frame within ms: gmud framing ("GMUD", 2-byte LE length) when fixed
 * is 0, else fixed:N. 1 with buf[0..*len) (fixed: the whole packet,
 * padding included), 0 at end of stream, -1 error or a bad label, -2
 * timeout. */
static inline int rt_recv_frame(int fd, size_t fixed, uint8_t *buf, size_t cap, size_t *len,
                                int ms)
{
    int64_t deadline = rt_now_ms() + ms;
    if (fixed != 0) {
        int rc = fixed <= cap ? rt_recv_exact(fd, buf, fixed, deadline) : -1;
        if (rc == 1)
            *len = fixed;
        return rc;
    }
    uint8_t h[6];
    int rc = rt_recv_exact(fd, h, sizeof h, deadline);
    if (rc != 1)
        return rc;
    size_t n = (size_t)h[4] | (size_t)h[5] << 8;
    if (memcmp(h, "GMUD", 4) != 0 || n > cap)
        return -1;
    rc = rt_recv_exact(fd, buf, n, deadline);
    if (rc == 1)
        *len = n;
    return rc == 0 ? -1 : rc;
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

/* ---- Peer threads ------------------------------------------------------ */

/* What every peer thread's state holds (as its member rt): a peer talks to
 * the fixture's server (or is a fake server itself) from a second thread
 * with blocking sockets, while the loop runs in the main thread. done is
 * set when the peer's function returns; a peer that must wait for main
 * sets ready, and main sets release to let it go on or finish (the join
 * sets it too). The harness's counters are the main thread's: the
 * thread's RT_PCHECKs are counted in rt_peer and added at the join. */
typedef struct rt_peer {
    int port;            /* the fixture's: its server's, or its fake's */
    int listen_fd;       /* a fake server's listening socket (the fixture's), or -1 */
    atomic_int done;
    atomic_int ready;
    atomic_int release;
    int checks;
    int failed;
    int running;         /* started and not yet joined */
    void *(*fn)(void *);
    void *arg;
    pthread_t th;
} rt_peer;

static inline void *rt_peer_main(void *arg)
{
    rt_peer *p = arg;
    p->fn(p->arg);
    atomic_store(&p->done, 1);
    return NULL;
}

#define RT_PCHECK(p, cond) rt_peer_check((p), (cond) != 0, __FILE__, __LINE__, #cond)

static inline int rt_peer_check(rt_peer *p, int ok, const char *file, int line, const char *what)
{
    p->checks++;
    if (!ok) {
        p->failed++;
        fprintf(stderr, "%s:%d: peer CHECK failed: %s\n", file, line, what);
    }
    return ok;
}

/* A raw socket from the peer to its port on 127.0.0.1, from src (NULL:
 * 127.0.0.1 as the kernel picks it); rcvbuf as rt_connect_from. local
 * (cap bytes), when not NULL, gets the socket's address as the server
 * logs it. -1 on failure. */
static inline int rt_peer_raw(const rt_peer *p, const char *src, int rcvbuf, char *local,
                              size_t cap)
{
    int fd = rt_connect_from(src, "127.0.0.1", p->port, rcvbuf);
    if (fd >= 0 && local != NULL)
        rt_local_name(fd, local, cap);
    return fd;
}

/* A gmud_sync from the peer to its port on 127.0.0.1, in session mode
 * (with reply_data for lecture; NULL: the default) and frame, within 2 s. */
static inline gmud_sync *rt_peer_sync(const rt_peer *p, const gmud_frame_config *frame,
                                      gmud_session_mode mode, const char *reply_data,
                                      gmud_error *err)
{
    gmud_sync_config sc;
    gmud_sync_default_config(&sc);
    sc.frame = *frame;
    sc.session = mode;
    sc.reply_data = reply_data;
    return gmud_sync_create("127.0.0.1", (unsigned)p->port, &sc, 2000, err);
}

/* ---- The fixture ------------------------------------------------------- */

/* One test's loop, its server (optional), the event clients on the loop,
 * a fake server's listening socket (optional) and its peer threads; all
 * torn down, and checked for leaks, by rt_fx_end. Use:
 *
 *     rt_fixture fx;
 *     rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
 *     fx.cfg.conn.limits.... = ...;     (any setting)
 *     rt_fx_serve(&fx, (gmud_callbacks){.on_message = ..., .user = ...});
 *     rt_fx_client(&fx, NULL, (gmud_callbacks){...});
 *     rt_fx_run_peer(&fx, &p.rt, peer_main, &p, 5000);
 *     ... CHECKs ...
 *     rt_fx_end(&fx);
 */
enum { RT_FX_CLIENTS = 16, RT_FX_PEERS = 4 };

typedef struct rt_fixture {
    uv_loop_t loop;
    gmud_server_config cfg;  /* the server's; clients take its framing, payload and mode */
    gmud_server *srv;        /* from rt_fx_serve; NULL before, and once ended */
    int port;                /* where clients and peers connect: the server's or the fake's */
    int listen_fd;           /* rt_fx_listen's, or -1 */
    gmud_client *cli[RT_FX_CLIENTS];
    rt_peer *peer[RT_FX_PEERS]; /* started, not yet joined */
} rt_fixture;

/* A fresh loop and log capture, and cfg as rt_server_config makes it. */
static inline void rt_fx_init(rt_fixture *fx, const char *framing, gmud_payload payload)
{
    memset(fx, 0, sizeof *fx);
    CHECK_EQ_INT(uv_loop_init(&fx->loop), 0);
    rt_server_config(&fx->cfg, framing, payload);
    fx->listen_fd = -1;
    rt_log_clear();
}

/* The server from fx->cfg with the callbacks cb (rt_server_create: a
 * fresh log, CHECKed). */
static inline gmud_server *rt_fx_serve(rt_fixture *fx, gmud_callbacks cb)
{
    fx->cfg.conn.cb = cb;
    fx->srv = rt_server_create(&fx->loop, &fx->cfg);
    fx->port = fx->srv != NULL ? gmud_server_port(fx->srv) : 0;
    return fx->srv;
}

/* For a fake server in a peer thread: a socket listening on a free port,
 * which becomes fx->port (and the peers' listen_fd). */
static inline int rt_fx_listen(rt_fixture *fx)
{
    fx->listen_fd = rt_listen(&fx->port);
    CHECK(fx->listen_fd >= 0);
    return fx->listen_fd;
}

/* A client config for fx->port with the server's framing, payload and mode
 * (rt_client_config), for a test to adjust and give to rt_fx_client. */
static inline void rt_fx_client_config(const rt_fixture *fx, gmud_client_config *ccfg)
{
    rt_client_config(ccfg, &fx->cfg, fx->port);
}

/* An event client on the loop from ccfg (NULL: rt_fx_client_config's) with
 * the callbacks cb; CHECKed, and kept for rt_fx_end. */
static inline gmud_client *rt_fx_client(rt_fixture *fx, const gmud_client_config *ccfg,
                                        gmud_callbacks cb)
{
    gmud_client_config c;
    if (ccfg != NULL)
        c = *ccfg;
    else
        rt_fx_client_config(fx, &c);
    c.conn.cb = cb;
    gmud_error err;
    gmud_client *cli = gmud_client_create(&fx->loop, &c, &err);
    if (cli == NULL)
        fprintf(stderr, "client: %s\n", err.message);
    int kept = 0;
    for (int i = 0; i < RT_FX_CLIENTS && cli != NULL && !kept; i++)
        if (fx->cli[i] == NULL) {
            fx->cli[i] = cli;
            kept = 1;
        }
    CHECK(cli != NULL && kept);
    return cli;
}

/* Destroys one of fx's clients before rt_fx_end. */
static inline void rt_fx_client_destroy(rt_fixture *fx, gmud_client *cli)
{
    for (int i = 0; i < RT_FX_CLIENTS; i++)
        if (fx->cli[i] == cli && cli != NULL)
            fx->cli[i] = NULL;
    gmud_client_destroy(cli);
}

/* Starts fn(arg) in a peer thread (CHECKed); p (arg's rt) is set for fx's
 * port and listening socket. Join it with rt_fx_join (or rt_fx_run_peer
 * for both at once), or rt_fx_end does. */
static inline void rt_fx_peer(rt_fixture *fx, rt_peer *p, void *(*fn)(void *), void *arg)
{
    p->port = fx->port;
    p->listen_fd = fx->listen_fd;
    atomic_store(&p->done, 0);
    atomic_store(&p->ready, 0);
    atomic_store(&p->release, 0);
    p->checks = 0;
    p->failed = 0;
    p->fn = fn;
    p->arg = arg;
    int slot = -1;
    for (int i = 0; i < RT_FX_PEERS && slot < 0; i++)
        if (fx->peer[i] == NULL)
            slot = i;
    p->running = slot >= 0 && pthread_create(&p->th, NULL, rt_peer_main, p) == 0;
    CHECK(p->running);
    if (p->running)
        fx->peer[slot] = p;
}

/* Releases p, joins it and counts its checks in (no loop run). */
static inline void rt_fx_peer_end(rt_fixture *fx, rt_peer *p)
{
    for (int i = 0; i < RT_FX_PEERS; i++)
        if (fx->peer[i] == p)
            fx->peer[i] = NULL;
    if (!p->running)
        return;
    p->running = 0;
    atomic_store(&p->release, 1);
    pthread_join(p->th, NULL);
    check_count += p->checks;
    check_failures += p->failed;
}

/* Runs the loop until peer p is done (CHECKed, at most ms), then
 * rt_fx_peer_end. */
static inline void rt_fx_join(rt_fixture *fx, rt_peer *p, int ms)
{
    CHECK(rt_run_until(&fx->loop, rt_flag, &p->done, ms));
    rt_fx_peer_end(fx, p);
}

/* rt_fx_peer, then rt_fx_join. */
static inline void rt_fx_run_peer(rt_fixture *fx, rt_peer *p, void *(*fn)(void *), void *arg,
                                  int ms)
{
    rt_fx_peer(fx, p, fn, arg);
    rt_fx_join(fx, p, ms);
}

/* The server's counters now. */
static inline gmud_stats rt_fx_stats(const rt_fixture *fx)
{
    gmud_stats st;
    gmud_server_stats(fx->srv, &st);
    return st;
}

/* Shuts the server down (bounded, CHECKed: rt_server_end) before
 * rt_fx_end, which then leaves it be. */
static inline void rt_fx_server_end(rt_fixture *fx)
{
    rt_server_end(&fx->loop, fx->srv);
    fx->srv = NULL;
}

/* Destroys the server at once, without a shutdown. */
static inline void rt_fx_server_destroy(rt_fixture *fx)
{
    gmud_server_destroy(fx->srv);
    fx->srv = NULL;
}

/* Joins the peers left (released; no wait), destroys the clients left,
 * shuts the server down (rt_server_end), closes the listening socket, runs
 * the loop to its end (rt_loop_finish) and checks that every read buffer
 * was given back: nothing of the test is left. */
static inline void rt_fx_end(rt_fixture *fx)
{
    for (int i = 0; i < RT_FX_PEERS; i++)
        if (fx->peer[i] != NULL)
            rt_fx_peer_end(fx, fx->peer[i]);
    for (int i = 0; i < RT_FX_CLIENTS; i++)
        rt_fx_client_destroy(fx, fx->cli[i]);
    if (fx->srv != NULL)
        rt_fx_server_end(fx);
    if (fx->listen_fd >= 0)
        close(fx->listen_fd);
    fx->listen_fd = -1;
    rt_loop_finish(&fx->loop);
    CHECK_EQ_INT(rt_readbufs_live(), 0);
}

#endif
