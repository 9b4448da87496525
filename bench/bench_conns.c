/* bench_conns: a server's own memory per idle connection, for 10,000
 * concurrent connections, beside two bare servers in the same run.
 *
 * Three servers, each in its own child process, one after the other:
 *   epoll   a plain epoll loop: accept4, EPOLLIN, reads into one static
 *           buffer. Nothing per connection in user space but the fd: the
 *           floor (the kernel's socket memory is not in RSS or the heap).
 *   libuv   a bare libuv server: one malloc'd uv_tcp_t per connection,
 *           uv_read_start with an alloc_cb handing out one static 64-byte
 *           buffer (the "tiny alloc").
 *   gmud    a gmud_server with its default config (gmud framing, JSON
 *           payload), max_connections and backlog raised.
 * This process (the clients) opens N connections with blocking connect(),
 * in steps that never leave more than GMUD_BENCH_AHEAD connections waiting
 * in the accept queue (somaxconn is 4096 here), and sends one small gmud
 * message ({"n": 1}) on each, which every server echoes back (gmud with
 * gmud_conn_send, the bare ones with write()/uv_try_write and no memory),
 * so that every server has read from and written to every connection once;
 * then the connections stay idle (the clients never read the replies).
 *
 * Each server measures itself: RSS (/proc/self/statm) and heap in use
 * (mallinfo2: uordblks + hblkhd, so mmap'd blocks count too) after it has
 * started listening, when the last message has arrived ("loaded": gmud
 * still holds the output buffers of the replies), and after a further
 * GMUD_BENCH_SETTLE_MS of idleness ("idle": gmud gives back a connection's
 * buffers once it has been idle for a sweep period). Figures: (after -
 * before) / N bytes per connection, and gmud minus each bare server. Both processes raise RLIMIT_NOFILE to the
 * hard limit (20000 here): N connections take N descriptors on each side.
 *
 * Environment: GMUD_BENCH_CONNS (default 10000), GMUD_BENCH_SETTLE_MS
 * (default 1000), GMUD_BENCH_AHEAD (default 2000).
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <uv.h>

#include "bench_net.h"
#include "bench_server.h"
#include "bench_util.h"
#include "gmud/frame.h"
#include "gmud/server.h"

enum {
    SERVER_EPOLL,
    SERVER_LIBUV,
    SERVER_GMUD,
    SERVER_KINDS,
    BACKLOG = 4096,
    CHILD_SECONDS = 40,
    TINY = 64
};

static const char *const kind_names[SERVER_KINDS] = {"epoll", "libuv", "gmud"};
static const char MESSAGE[] = "{\"n\": 1}";

/* Counters the server child advances and the client parent watches. */
typedef struct shared {
    atomic_ulong accepted;
    atomic_ulong received;   /* messages (gmud) or bytes (bare servers) */
} shared;

typedef struct mem_mark {
    long long rss, heap;
} mem_mark;

typedef struct result {
    mem_mark before, loaded, settled;
    unsigned long accepted;
} result;

static mem_mark mem_now(void)
{
    mem_mark m = {bench_rss_bytes(), bench_heap_bytes()};
    return m;
}

/* What every server child shares: the parameters and the reporting. */
typedef struct child {
    shared *sh;
    int result_fd;
    unsigned long n;          /* connections expected */
    unsigned long want;       /* value of sh->received meaning "all in" */
    unsigned settle_ms;
    result res;
    int loaded;
} child;

static void child_loaded(child *c)
{
    c->res.loaded = mem_now();
    c->loaded = 1;
}

static void child_report(child *c)
{
    c->res.settled = mem_now();
    c->res.accepted = atomic_load(&c->sh->accepted);
    bench_pipe_write(c->result_fd, &c->res, sizeof c->res);
    /* The clients close their ends once they have the figures; exiting
     * closes ours. */
    _exit(0);
}

/* ---- epoll ---------------------------------------------------------------- */

static void epoll_main(child *c, int port_fd)
{
    static uint8_t buf[64 * 1024];
    uint16_t port;
    int lfd = bench_listen(BACKLOG, &port);
    if (fcntl(lfd, F_SETFL, O_NONBLOCK) != 0) /* accept4 in a loop until EAGAIN */
        bench_fail("fcntl: %s", strerror(errno));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        bench_fail("epoll_create1: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
        bench_fail("epoll_ctl: %s", strerror(errno));
    c->res.before = mem_now();
    bench_pipe_write(port_fd, &port, sizeof port);

    uint64_t settle_end = 0;
    for (;;) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 10);
        if (k < 0 && errno != EINTR)
            bench_fail("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev) != 0)
                        bench_fail("epoll_ctl: %s", strerror(errno));
                    atomic_fetch_add(&c->sh->accepted, 1);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r > 0) {
                /* The reply fits the empty socket buffer: no partial write. */
                if (write(fd, buf, (size_t)r) != r)
                    bench_fail("epoll echo: short write");
                atomic_fetch_add(&c->sh->received, (unsigned long)r);
            }
            else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                close(fd);
        }
        if (!c->loaded && atomic_load(&c->sh->received) >= c->want) {
            child_loaded(c);
            settle_end = bench_now_ns() + (uint64_t)c->settle_ms * 1000000u;
        }
        if (c->loaded && bench_now_ns() >= settle_end)
            child_report(c);
    }
}

/* ---- bare libuv ------------------------------------------------------------ */

static child *g_child; /* the libuv callbacks' context */
static uv_timer_t g_settle;

static void bare_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char tiny[TINY];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(tiny, sizeof tiny);
}

static void bare_free(uv_handle_t *h)
{
    free(h);
}

static void bare_settled(uv_timer_t *t)
{
    (void)t;
    child_report(g_child);
}

static void bare_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread > 0) {
        /* Echo without a write request: the reply fits the empty socket
         * buffer, so uv_try_write takes it all and nothing is allocated. */
        uv_buf_t reply = uv_buf_init(buf->base, (unsigned)nread);
        if (uv_try_write(s, &reply, 1) != nread)
            bench_fail("libuv echo: short write");
        unsigned long got = atomic_fetch_add(&g_child->sh->received, (unsigned long)nread);
        if (!g_child->loaded && got + (unsigned long)nread >= g_child->want) {
            child_loaded(g_child);
            uv_timer_start(&g_settle, bare_settled, g_child->settle_ms, 0);
        }
    } else if (nread < 0) {
        uv_close((uv_handle_t *)s, bare_free);
    }
}

static void bare_connection(uv_stream_t *server, int status)
{
    if (status != 0)
        bench_fail("libuv listen: %s", uv_strerror(status));
    uv_tcp_t *t = bench_xmalloc(sizeof *t);
    uv_tcp_init(server->loop, t);
    if (uv_accept(server, (uv_stream_t *)t) != 0) {
        uv_close((uv_handle_t *)t, bare_free);
        return;
    }
    atomic_fetch_add(&g_child->sh->accepted, 1);
    uv_read_start((uv_stream_t *)t, bare_alloc, bare_read);
}

static void libuv_main(child *c, int port_fd)
{
    static uv_loop_t loop;
    static uv_tcp_t server;
    g_child = c;
    if (uv_loop_init(&loop) != 0)
        bench_fail("uv_loop_init");
    uv_timer_init(&loop, &g_settle);
    uv_tcp_init(&loop, &server);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&a, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, BACKLOG, bare_connection);
    if (r != 0)
        bench_fail("libuv bind/listen: %s", uv_strerror(r));
    int alen = sizeof a;
    uv_tcp_getsockname(&server, (struct sockaddr *)&a, &alen);
    uint16_t port = ntohs(a.sin_port);
    c->res.before = mem_now();
    bench_pipe_write(port_fd, &port, sizeof port);
    uv_run(&loop, UV_RUN_DEFAULT);
    bench_fail("libuv loop ended");
}

/* ---- gmud ------------------------------------------------------------------ */

static uv_loop_t g_gmud_loop;

static void gmud_settled(gmud_timer *t, void *user)
{
    (void)t;
    child_report(user);
}

static void gmud_on_connect(gmud_conn *conn, void *user)
{
    (void)conn;
    child *c = user;
    atomic_fetch_add(&c->sh->accepted, 1);
}

static void gmud_on_message(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                            void *user)
{
    child *c = user;
    if (json == NULL)
        bench_fail("gmud server: message from %s without its JSON value", gmud_conn_peer(conn));
    gmud_error err;
    if (gmud_conn_send(conn, data, len, &err) != 0)
        bench_fail("gmud echo: %s", err.message);
    unsigned long got = atomic_fetch_add(&c->sh->received, 1) + 1;
    if (!c->loaded && got >= c->want) {
        child_loaded(c);
        if (gmud_timer_create(&g_gmud_loop, c->settle_ms, 0, gmud_settled, c) == NULL)
            bench_fail("gmud_timer_create: no memory");
    }
}

static void gmud_on_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                          void *user)
{
    (void)user;
    bench_fail("gmud server: %s closed early: %s%s%s", gmud_conn_peer(conn),
               gmud_close_reason_name(reason), detail ? ": " : "", detail ? detail->message : "");
}

static void gmud_main(child *c, int port_fd)
{
    uv_loop_t *loop = &g_gmud_loop;
    if (uv_loop_init(loop) != 0)
        bench_fail("uv_loop_init");
    gmud_server_config cfg;
    bench_server_config(&cfg, c->n);
    cfg.conn.cb.on_connect = gmud_on_connect;
    cfg.conn.cb.on_message = gmud_on_message;
    cfg.conn.cb.on_close = gmud_on_close;
    cfg.conn.cb.user = c;
    gmud_error err;
    gmud_server *server = gmud_server_create(loop, &cfg, &err);
    if (server == NULL)
        bench_fail("gmud_server_create: %s", err.message);
    uint16_t port = gmud_server_port(server);
    c->res.before = mem_now();
    bench_pipe_write(port_fd, &port, sizeof port);
    uv_run(loop, UV_RUN_DEFAULT);
    bench_fail("gmud loop ended");
}

/* ---- The clients (parent) and the report ---------------------------------- */

/* Waits (bounded) until the server has accepted all but `ahead` of `opened`. */
static void throttle(shared *sh, unsigned long opened, unsigned long ahead)
{
    uint64_t end = bench_now_ns() + 10000000000u;
    while (opened > ahead && atomic_load(&sh->accepted) < opened - ahead) {
        if (bench_now_ns() > end)
            bench_fail("server stuck at %lu accepted of %lu", atomic_load(&sh->accepted),
                       opened);
        usleep(200);
    }
}

static result run_server(int kind, shared *sh, unsigned long n, unsigned settle_ms,
                         unsigned long ahead, double *connect_s)
{
    atomic_store(&sh->accepted, 0);
    atomic_store(&sh->received, 0);
    gmud_frame_config fcfg;
    gmud_frame_default_config(&fcfg, GMUD_FRAMING_GMUD);
    uint8_t frame[64];
    gmud_error err;
    ptrdiff_t flen =
        gmud_frame_encode(&fcfg, MESSAGE, sizeof MESSAGE - 1, frame, sizeof frame, &err);
    if (flen <= 0)
        bench_fail("gmud_frame_encode: %s", err.message);

    int port_pipe[2], res_pipe[2];
    if (pipe(port_pipe) != 0 || pipe(res_pipe) != 0)
        bench_fail("pipe: %s", strerror(errno));
    pid_t pid = bench_fork(CHILD_SECONDS);
    if (pid == 0) {
        close(port_pipe[0]);
        close(res_pipe[0]);
        bench_raise_nofile();
        child c;
        memset(&c, 0, sizeof c);
        c.sh = sh;
        c.result_fd = res_pipe[1];
        c.n = n;
        c.want = kind == SERVER_GMUD ? n : n * (unsigned long)flen;
        c.settle_ms = settle_ms;
        if (kind == SERVER_EPOLL)
            epoll_main(&c, port_pipe[1]);
        else if (kind == SERVER_LIBUV)
            libuv_main(&c, port_pipe[1]);
        else
            gmud_main(&c, port_pipe[1]);
        _exit(1);
    }
    close(port_pipe[1]);
    close(res_pipe[1]);
    uint16_t port;
    if (bench_pipe_read(port_pipe[0], &port, sizeof port, 5000) != 0)
        bench_fail("%s server did not start", kind_names[kind]);
    close(port_pipe[0]);

    int *fds = bench_xmalloc(n * sizeof *fds);
    uint64_t t0 = bench_now_ns();
    for (unsigned long i = 0; i < n; i++) {
        if (i % 256 == 0)
            throttle(sh, i, ahead);
        fds[i] = bench_connect(port, 1);
        bench_write_all(fds[i], frame, (size_t)flen);
    }
    *connect_s = (double)(bench_now_ns() - t0) / 1e9;

    result res;
    if (bench_pipe_read(res_pipe[0], &res, sizeof res, 20000) != 0)
        bench_fail("%s server: no figures (accepted %lu, received %lu)", kind_names[kind],
                   atomic_load(&sh->accepted), atomic_load(&sh->received));
    close(res_pipe[0]);
    for (unsigned long i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    if (bench_wait(pid, 5000) != 0)
        bench_fail("%s server failed", kind_names[kind]);
    if (res.accepted != n)
        bench_fail("%s server accepted %lu of %lu", kind_names[kind], res.accepted, n);
    return res;
}

static double per_conn(long long after, long long before, unsigned long n)
{
    return (double)(after - before) / (double)n;
}

int main(void)
{
    bench_prog = "bench_conns";
    bench_ignore_sigpipe();
    long limit = bench_raise_nofile();
    unsigned long n = (unsigned long)bench_env_long("GMUD_BENCH_CONNS", 10000, 1, 1000000);
    unsigned settle_ms = (unsigned)bench_env_long("GMUD_BENCH_SETTLE_MS", 1000, 0, 10000);
    unsigned long ahead = (unsigned long)bench_env_long("GMUD_BENCH_AHEAD", 2000, 1, 100000);
    if ((long)n + 64 > limit)
        bench_fail("%lu connections need more descriptors than RLIMIT_NOFILE's hard limit %ld",
                   n, limit);
    bench_time_bound(55);
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    if (sh == MAP_FAILED)
        bench_fail("mmap: %s", strerror(errno));

    printf("bench_conns: %lu concurrent connections, each sends one 14-byte gmud message, the "
           "server echoes it, then idle; servers in a child process, RLIMIT_NOFILE %ld\n",
           n, limit);
    printf("  per connection = (after - before) / %lu; before = listening, loaded = last "
           "message read, idle = %u ms later\n",
           n, settle_ms);
    printf("  RSS from /proc/self/statm; heap = mallinfo2 uordblks + hblkhd; kernel socket "
           "memory is in neither\n\n");
    printf("| server       | connect s | RSS B/conn loaded | RSS B/conn idle | heap B/conn loaded "
           "| heap B/conn idle |\n");
    printf("|--------------|-----------|-------------------|-----------------|--------------------"
           "|------------------|\n");
    result r[SERVER_KINDS];
    for (int k = 0; k < SERVER_KINDS; k++) {
        double cs;
        r[k] = run_server(k, sh, n, settle_ms, ahead, &cs);
        printf("| %-12s | %9.2f | %17.0f | %15.0f | %18.0f | %16.0f |\n", kind_names[k], cs,
               per_conn(r[k].loaded.rss, r[k].before.rss, n),
               per_conn(r[k].settled.rss, r[k].before.rss, n),
               per_conn(r[k].loaded.heap, r[k].before.heap, n),
               per_conn(r[k].settled.heap, r[k].before.heap, n));
        fflush(stdout);
    }
    const result *g = &r[SERVER_GMUD];
    for (int k = SERVER_EPOLL; k <= SERVER_LIBUV; k++) {
        char name[16];
        snprintf(name, sizeof name, "gmud - %s", kind_names[k]);
        printf("| %-12s |           | %17.0f | %15.0f | %18.0f | %16.0f |\n", name,
               per_conn(g->loaded.rss - g->before.rss, r[k].loaded.rss - r[k].before.rss, n),
               per_conn(g->settled.rss - g->before.rss, r[k].settled.rss - r[k].before.rss, n),
               per_conn(g->loaded.heap - g->before.heap, r[k].loaded.heap - r[k].before.heap,
                        n),
               per_conn(g->settled.heap - g->before.heap,
                        r[k].settled.heap - r[k].before.heap, n));
    }
    printf("\ngoal: gmud's own state <= 1024 B/connection (the gmud - libuv idle figures)\n");
    munmap(sh, sizeof *sh);
    return 0;
}
