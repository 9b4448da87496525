/* bench_clients: memory per event client, for many clients on one loop,
 * beside bare libuv clients in the same run.
 *
 * A gmud_server (forked child, per-address limits off) waits for N
 * connections, then broadcasts one message of GMUD_BENCH_MSG bytes (16 KiB
 * by default, in one gmud frame) to all of them, and ends when they have
 * all closed. Two client processes, one after the other, each with its own
 * server and one loop:
 *   libuv   N malloc'd uv_tcp_t, uv_tcp_connect, uv_read_start with one
 *           static 64 KiB buffer for all (what a careful bare libuv program
 *           needs): the baseline;
 *   gmud    N gmud_client (gmud framing, text payload, default config).
 * Each client process measures its own heap in use (mallinfo2) and RSS
 * before the clients exist and once every client has the whole message:
 * (after - before) / N bytes per client. The message makes every client
 * read a good part of a read buffer, so a buffer per client would show in
 * RSS. All processes raise RLIMIT_NOFILE to the hard limit.
 *
 * Environment: GMUD_BENCH_CLIENTS (default 2000), GMUD_BENCH_MSG (default
 * 16384, at most 60000).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench_net.h"
#include "bench_server.h"
#include "bench_util.h"
#include "gmud/client.h"
#include "gmud/server.h"

enum { CHILD_SECONDS = 60, WAIT_MS = 30000, FRAME_HEAD = 6 /* "GMUD" + length */ };

static size_t g_clients, g_msg;

/* ---- The server (child) ------------------------------------------------- */

typedef struct srv_state {
    bench_server srv; /* first: the callbacks' user */
    size_t connected;
} srv_state;

static void srv_connect(gmud_conn *c, void *user)
{
    (void)c;
    srv_state *s = user;
    if (++s->connected != g_clients)
        return;
    uint8_t *msg = bench_xmalloc(g_msg);
    memset(msg, 'm', g_msg);
    gmud_error err;
    if (gmud_server_broadcast(s->srv.server, msg, g_msg, NULL, &err) != (int)g_clients)
        bench_fail("broadcast: %s", err.message);
    free(msg);
}

static void srv_close(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *user)
{
    (void)c;
    bench_server_closed(&((srv_state *)user)->srv, r, d);
}

static void server_main(int port_fd)
{
    static srv_state s;
    gmud_server_config cfg;
    bench_server_config(&cfg, g_clients);
    cfg.conn.payload = GMUD_PAYLOAD_TEXT;
    cfg.conn.cb.on_connect = srv_connect;
    cfg.conn.cb.on_close = srv_close;
    cfg.conn.cb.user = &s;
    bench_server_start(&s.srv, "server", g_clients, &cfg, port_fd);
    uv_run(&s.srv.loop, UV_RUN_DEFAULT);
    bench_server_finish(&s.srv);
    _exit(0);
}

/* ---- Clients (children) ------------------------------------------------- */

typedef struct usage {
    double heap, rss; /* bytes per client */
} usage;

typedef struct client_run {
    uv_loop_t loop;
    size_t done;      /* clients with the whole message */
    uv_timer_t guard; /* gives up after WAIT_MS */
    int timed_out;
} client_run;

static void on_guard(uv_timer_t *t)
{
    client_run *r = t->data;
    r->timed_out = 1;
    uv_stop(&r->loop);
}

static void run_until_done(client_run *r)
{
    uv_timer_init(&r->loop, &r->guard);
    r->guard.data = r;
    uv_timer_start(&r->guard, on_guard, WAIT_MS, 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&r->guard);
    if (r->timed_out)
        bench_fail("only %zu of %zu clients got the message in time", r->done, g_clients);
}

static void got_all(client_run *r)
{
    if (++r->done == g_clients)
        uv_stop(&r->loop);
}

/* libuv: each connection counts its bytes; all read into one buffer. */
typedef struct uv_client {
    uv_tcp_t tcp;
    uv_connect_t req;
    client_run *run;
    size_t got;
} uv_client;

static char uv_shared_buf[65536];

static void uvc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    *b = uv_buf_init(uv_shared_buf, sizeof uv_shared_buf);
}

static void uvc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    uv_client *c = s->data;
    if (n < 0)
        bench_fail("libuv client: read: %s", uv_strerror((int)n));
    size_t before = c->got;
    c->got += (size_t)n;
    if (before < FRAME_HEAD + g_msg && c->got >= FRAME_HEAD + g_msg)
        got_all(c->run);
}

static void uvc_connected(uv_connect_t *req, int status)
{
    uv_client *c = req->data;
    if (status != 0)
        bench_fail("libuv client: connect: %s", uv_strerror(status));
    uv_read_start((uv_stream_t *)&c->tcp, uvc_alloc, uvc_read);
}

static void uv_clients(uint16_t port, client_run *r, void (*measure)(void))
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_client **c = bench_xmalloc(g_clients * sizeof *c);
    for (size_t i = 0; i < g_clients; i++) {
        c[i] = bench_xmalloc(sizeof *c[i]);
        memset(c[i], 0, sizeof *c[i]);
        c[i]->run = r;
        uv_tcp_init(&r->loop, &c[i]->tcp);
        c[i]->tcp.data = c[i];
        c[i]->req.data = c[i];
        if (uv_tcp_connect(&c[i]->req, &c[i]->tcp, (const struct sockaddr *)&a,
                           uvc_connected) != 0)
            bench_fail("libuv client: uv_tcp_connect");
    }
    run_until_done(r);
    measure();
    for (size_t i = 0; i < g_clients; i++)
        uv_close((uv_handle_t *)&c[i]->tcp, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < g_clients; i++)
        free(c[i]);
    free(c);
}

/* gmud: each client counts whole messages. */
static void gc_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *user)
{
    (void)c;
    (void)d;
    (void)j;
    if (n != g_msg)
        bench_fail("gmud client: a message of %zu bytes", n);
    got_all(user);
}

static void gmud_clients(uint16_t port, client_run *r, void (*measure)(void))
{
    gmud_client_config cfg;
    gmud_client_default_config(&cfg);
    cfg.port = port;
    cfg.conn.payload = GMUD_PAYLOAD_TEXT;
    cfg.conn.session.mode = GMUD_SESSION_OFF; /* as the server's */
    cfg.conn.cb.on_message = gc_message;
    cfg.conn.cb.user = r;
    gmud_client **c = bench_xmalloc(g_clients * sizeof *c);
    gmud_error err;
    for (size_t i = 0; i < g_clients; i++)
        if ((c[i] = gmud_client_create(&r->loop, &cfg, &err)) == NULL)
            bench_fail("gmud_client_create: %s", err.message);
    run_until_done(r);
    measure();
    for (size_t i = 0; i < g_clients; i++)
        gmud_client_destroy(c[i]);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    free(c);
}

static long long g_heap0, g_rss0;
static usage g_use;

static void measure(void)
{
    g_use.heap = (double)(bench_heap_bytes() - g_heap0) / (double)g_clients;
    g_use.rss = (double)(bench_rss_bytes() - g_rss0) / (double)g_clients;
}

/* Runs one kind of client in a child against a fresh server child. */
static usage run_kind(int gmud)
{
    int sp[2], up[2];
    if (pipe(sp) != 0 || pipe(up) != 0)
        bench_fail("pipe: %s", strerror(errno));
    pid_t srv = bench_fork(CHILD_SECONDS);
    if (srv == 0) {
        close(sp[0]);
        server_main(sp[1]);
    }
    close(sp[1]);
    uint16_t port;
    if (bench_pipe_read(sp[0], &port, sizeof port, 5000) != 0)
        bench_fail("the server did not start");
    close(sp[0]);
    pid_t cli = bench_fork(CHILD_SECONDS);
    if (cli == 0) {
        close(up[0]);
        bench_raise_nofile();
        static client_run r;
        uv_loop_init(&r.loop);
        uv_run(&r.loop, UV_RUN_NOWAIT);
        g_heap0 = bench_heap_bytes();
        g_rss0 = bench_rss_bytes();
        if (gmud)
            gmud_clients(port, &r, measure);
        else
            uv_clients(port, &r, measure);
        bench_pipe_write(up[1], &g_use, sizeof g_use);
        uv_close((uv_handle_t *)&r.guard, NULL);
        uv_run(&r.loop, UV_RUN_DEFAULT);
        _exit(uv_loop_close(&r.loop) == 0 ? 0 : 1);
    }
    close(up[1]);
    usage u;
    if (bench_pipe_read(up[0], &u, sizeof u, WAIT_MS + 10000) != 0)
        bench_fail("the %s clients did not report", gmud ? "gmud" : "libuv");
    close(up[0]);
    if (bench_wait(cli, 10000) != 0 || bench_wait(srv, 10000) != 0)
        bench_fail("a child failed");
    return u;
}

int main(void)
{
    bench_prog = "bench_clients";
    bench_ignore_sigpipe();
    bench_raise_nofile();
    g_clients = (size_t)bench_env_long("GMUD_BENCH_CLIENTS", 2000, 10, 9000);
    g_msg = (size_t)bench_env_long("GMUD_BENCH_MSG", 16384, 1, 60000);
    bench_time_bound(150);
    printf("bench_clients: %zu event clients on one loop, each receiving one %zu-byte gmud "
           "frame; heap (mallinfo2) and RSS per client once all have it\n",
           g_clients, g_msg);
    usage base = run_kind(0);
    usage g = run_kind(1);
    printf("| clients | heap B/client | RSS B/client |\n|---|---|---|\n");
    printf("| bare libuv (one shared 64 KiB buffer) | %.0f | %.0f |\n", base.heap, base.rss);
    printf("| gmud_client | %.0f | %.0f |\n", g.heap, g.rss);
    printf("| gmud's own (difference) | %.0f | %.0f |\n", g.heap - base.heap, g.rss - base.rss);
    return 0;
}
