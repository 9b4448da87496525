/* A complete gmud echo server in one page: every JSON object a client sends
 * in a GMUD packet comes back to it, with an "echo" count added.
 * Build: cc echo_server.c $(pkg-config --cflags --libs gmud)  (or see
 * examples/CMakeLists.txt). Run: echo_server [PORT]; try it with
 * gmud-client --port 8222 (sessions on, as gmud-client has them by default). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "gmud/server.h"

static void on_message(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                       void *user)
{
    (void)data, (void)len;
    unsigned long *count = user;
    json_t *reply = json_deep_copy(json); /* json is borrowed: copy to change */
    json_object_set_new(reply, "echo", json_integer((json_int_t)++*count));
    gmud_error err;
    if (gmud_conn_send_json(conn, reply, &err) != 0)
        fprintf(stderr, "%s: not sent: %s\n", gmud_conn_peer(conn), err.message);
    json_decref(reply);
}

static void on_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                     void *user)
{
    (void)user;
    fprintf(stderr, "%s: %s%s%s\n", gmud_conn_peer(conn), gmud_close_reason_name(reason),
            detail ? ": " : "", detail ? detail->message : "");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* see gmud/server.h: the application decides */
    unsigned long count = 0;
    gmud_server_config cfg;
    gmud_server_default_config(&cfg); /* 127.0.0.1:8222, gmud framing, JSON */
    if (argc > 1)
        cfg.port = (uint16_t)atoi(argv[1]); /* 0: any free port */
    cfg.conn.cb.on_message = on_message;
    cfg.conn.cb.on_close = on_close;
    cfg.conn.cb.user = &count;

    gmud_error err;
    gmud_server *server = gmud_server_create(uv_default_loop(), &cfg, &err);
    if (server == NULL) {
        fprintf(stderr, "echo_server: %s\n", err.message);
        return 1;
    }
    fprintf(stderr, "listening on 127.0.0.1:%u\n", (unsigned)gmud_server_port(server));
    return uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}
