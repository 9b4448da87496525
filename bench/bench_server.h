/* bench/bench_server.h: the gmud_server in a benchmark's child process,
 * shared by bench_echo.h (the echo), bench_pump.h (the sink),
 * bench_clients, bench_conns and bench_fanout.
 *
 *   bench_server_config()  the defaults, with every limit that would get in
 *                          a benchmark's way off;
 *   bench_server_start()   creates the server and tells the parent its port;
 *   bench_server_closed()  from on_close: only the peer's close or the
 *                          shutdown are expected, and once `clients`
 *                          connections have closed the server shuts down;
 *   bench_server_finish()  after uv_run: checks the shutdown came, destroys
 *                          the server and runs the loop out.
 * Failures end the program (bench_fail).
 */
#ifndef GMUD_BENCH_SERVER_H
#define GMUD_BENCH_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "bench_net.h"
#include "gmud/server.h"

enum { BENCH_SERVER_BACKLOG = 4096 /* somaxconn here */ };

typedef struct bench_server {
    uv_loop_t loop;
    gmud_server *server;
    const char *what;  /* "echo", "sink", ...: names its failures */
    size_t clients;    /* connections to serve before shutting down */
    size_t closed;
    int done;          /* the shutdown has completed */
} bench_server;

/* Defaults for up to `clients` connections, all from 127.0.0.1, port 0.
 * Throughput and latency are the measures, so no spam limits and no
 * per-address limits. */
static inline void bench_server_config(gmud_server_config *cfg, size_t clients)
{
    gmud_server_default_config(cfg);
    cfg->port = 0;
    cfg->backlog = BENCH_SERVER_BACKLOG;
    cfg->conn.limits.msg_rate = 0;
    cfg->conn.limits.byte_rate = 0;
    cfg->conn.session.mode = GMUD_SESSION_OFF; /* the framing is measured */
    cfg->conn.limits.max_connections = clients + 16;
    cfg->addr.max_per_addr = 0;
    cfg->addr.new_per_sec = 0;
}

/* Initialises s's loop, creates the server on it from cfg and writes its
 * port to port_fd; the caller runs the loop. */
static inline void bench_server_start(bench_server *s, const char *what, size_t clients,
                                      const gmud_server_config *cfg, int port_fd)
{
    s->what = what;
    s->clients = clients;
    if (uv_loop_init(&s->loop) != 0)
        bench_fail("%s: uv_loop_init", what);
    gmud_error err;
    s->server = gmud_server_create(&s->loop, cfg, &err);
    if (s->server == NULL)
        bench_fail("%s: gmud_server_create: %s", what, err.message);
    uint16_t port = gmud_server_port(s->server);
    bench_pipe_write(port_fd, &port, sizeof port);
}

static inline void bench_server_shutdown_done(gmud_server *server, void *user)
{
    (void)server;
    bench_server *s = user;
    s->done = 1;
    uv_stop(&s->loop);
}

static inline void bench_server_closed(bench_server *s, gmud_close_reason reason,
                                       const gmud_error *detail)
{
    if (reason != GMUD_CLOSE_PEER && reason != GMUD_CLOSE_SHUTDOWN)
        bench_fail("%s: connection closed: %s%s%s", s->what, gmud_close_reason_name(reason),
                   detail ? ": " : "", detail ? detail->message : "");
    if (++s->closed == s->clients)
        gmud_server_shutdown(s->server, 1000, bench_server_shutdown_done, s);
}

static inline void bench_server_finish(bench_server *s)
{
    if (!s->done)
        bench_fail("%s: loop ended before shutdown", s->what);
    gmud_server_destroy(s->server);
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

#endif
