/* Streaming more than a connection may queue: every client that connects is
 * sent a world map of TILES JSON messages (about 6 MB), far over the 1 MiB
 * that max_queued lets sit unsent. The server queues up to BATCH bytes,
 * asks for on_drain, and goes on from there, so a slow client (or one
 * stopped with Ctrl-Z) holds the stream back instead of being closed as a
 * slow consumer. Memory stays bounded by BATCH per client.
 * Build: cc stream_server.c $(pkg-config --cflags --libs gmud)  (or see
 * examples/CMakeLists.txt). Run: stream_server [PORT]; try it with
 * gmud-client --port 8222 --wait 5 < /dev/null | wc -l */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "gmud/server.h"

enum { TILES = 50000, BATCH = 256 * 1024 };

/* Sends tiles from where this connection is up to, while under BATCH. */
static void send_tiles(gmud_conn *conn)
{
    unsigned *next = gmud_conn_data(conn);
    while (*next < TILES && gmud_conn_queued(conn) < BATCH) {
        json_t *tile = json_pack("{s:i, s:i, s:s}", "tile", (int)*next, "height",
                                 (int)(*next * 7919 % 100), "terrain",
                                 "grass grass grass water water rock rock rock sand sand");
        gmud_error err;
        int rc = gmud_conn_send_json(conn, tile, &err);
        json_decref(tile);
        if (rc != 0) {
            fprintf(stderr, "%s: not sent: %s\n", gmud_conn_peer(conn), err.message);
            return;
        }
        ++*next;
    }
    if (*next < TILES)
        gmud_conn_want_drain(conn); /* on_drain: the kernel has it all */
}

static void on_connect(gmud_conn *conn, void *user)
{
    (void)user;
    unsigned *next = calloc(1, sizeof *next);
    if (next == NULL) {
        gmud_conn_close(conn);
        return;
    }
    gmud_conn_set_data(conn, next);
    send_tiles(conn);
}

static void on_drain(gmud_conn *conn, void *user)
{
    (void)user;
    send_tiles(conn);
}

static void on_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                     void *user)
{
    (void)user;
    unsigned *next = gmud_conn_data(conn);
    fprintf(stderr, "%s: %s after %u tiles%s%s\n", gmud_conn_peer(conn),
            gmud_close_reason_name(reason), next ? *next : 0, detail ? ": " : "",
            detail ? detail->message : "");
    free(next);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* see gmud/server.h: the application decides */
    gmud_server_config cfg;
    gmud_server_default_config(&cfg); /* 127.0.0.1:8222, gmud framing, JSON */
    if (argc > 1)
        cfg.port = (uint16_t)atoi(argv[1]); /* 0: any free port */
    cfg.conn.cb.on_connect = on_connect;
    cfg.conn.cb.on_drain = on_drain;
    cfg.conn.cb.on_close = on_close;

    gmud_error err;
    gmud_server *server = gmud_server_create(uv_default_loop(), &cfg, &err);
    if (server == NULL) {
        fprintf(stderr, "stream_server: %s\n", err.message);
        return 1;
    }
    fprintf(stderr, "listening on 127.0.0.1:%u\n", (unsigned)gmud_server_port(server));
    return uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}
