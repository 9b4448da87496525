/* gmud-server: the lecture's server on gmud's runtime.
 *
 *   gmud-server [--app echo|clock|chat] [--framing ...] [--payload ...] ...
 *
 * Options, wiring and the three applications' plumbing; the messages
 * themselves are made in app.c, every byte on the wire by the library.
 * SIGINT/SIGTERM: stop accepting, flush (at most --shutdown-timeout), exit 0.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "chat.h"
#include "gmud/metrics.h"
#include "gmud/server.h"
#include "options.h"
#include "sd_notify.h"

enum { APP_SIGNALS = 3 };

typedef struct server_app {
    prog_options opt;
    uv_loop_t loop;
    gmud_server *server;           /* on --port, and on --tls-port if given */
    gmud_timer *clock;             /* clock app: running from the first connection */
    unsigned long long clock_n;    /* the next clock message's number */
    uv_signal_t sig[APP_SIGNALS];  /* SIGINT, SIGTERM, SIGHUP */
    int stopping;
    sdn notify;                    /* systemd: READY, the watchdog, STOPPING */
    gmud_timer *watchdog;          /* feeds systemd's watchdog from the loop */
    gmud_metrics *metrics;         /* --metrics */
    gmud_cluster *cluster;         /* --cluster */
    chat *chat;                    /* the chat app */
    uint8_t secret[256];           /* --cluster-secret-file's bytes */
    size_t secret_len;
    char redis_host[64];           /* --cluster's HOST, */
    uint16_t redis_port;           /* and PORT */
    char node[GMUD_CLUSTER_NAME_MAX + 1]; /* --node, or the host name's name bytes */
} server_app;

static int broadcast(server_app *app, const void *data, size_t len, const json_t *json,
                     const gmud_conn *except, gmud_error *err)
{
    return json != NULL ? gmud_server_broadcast_json(app->server, json, except, err)
                        : gmud_server_broadcast(app->server, data, len, except, err);
}

/* ---- --cluster ----------------------------------------------------------- */

static void on_remote(gmud_cluster *c, const gmud_cluster_msg *msg, void *user)
{
    (void)c;
    chat_remote(((server_app *)user)->chat, msg);
}

static void on_presence(gmud_cluster *c, const gmud_cluster_player *p, int joined, void *user)
{
    (void)c;
    chat_presence(((server_app *)user)->chat, p, joined);
}

static void on_link(gmud_cluster *c, int up, const gmud_error *why, void *user)
{
    /* The library logs the details; this is the line operators look for. */
    (void)c;
    server_app *app = user;
    prog_logf(&app->opt, up ? GMUD_LOG_INFO : GMUD_LOG_WARN, NULL, "cluster",
              up ? "linked: chat crosses nodes" : "unlinked (%s): local chat only; cross-node "
                                                  "messages are dropped and counted until "
                                                  "the link is back",
              up ? "" : why->message);
}

/* redis://HOST[:PORT], HOST an address ([v6] allowed), into host and port. */
static int parse_redis_url(const char *url, char *host, size_t cap, uint16_t *port)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return -1;
    const char *h = url + sizeof scheme - 1, *end, *colon;
    if (*h == '[') {
        end = strchr(h, ']');
        if (end == NULL)
            return -1;
        h++;
        colon = end[1] == ':' ? end + 1 : NULL;
        if (end[1] != '\0' && colon == NULL)
            return -1;
    } else {
        colon = strchr(h, ':');
        end = colon != NULL ? colon : h + strlen(h);
    }
    size_t n = (size_t)(end - h);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = 6379;
    if (colon != NULL) {
        char *stop;
        unsigned long p = strtoul(colon + 1, &stop, 10);
        if (colon[1] == '\0' || *stop != '\0' || p == 0 || p > 65535)
            return -1;
        *port = (uint16_t)p;
    }
    return 0;
}

/* The secret: the file's bytes, a trailing newline dropped. */
static int read_secret(server_app *app, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        prog_log_text("gmud-server: --cluster-secret-file %s: cannot open it", path);
        return -1;
    }
    /* One byte more than the longest secret with its newline: too long is
     * refused, not cut. */
    uint8_t buf[sizeof app->secret + 2];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    /* One trailing newline (an editor's, or echo's) is not part of it. */
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    int more = n > sizeof app->secret;
    if (more || n < GMUD_CLUSTER_SECRET_MIN) {
        prog_log_text("gmud-server: --cluster-secret-file %s: the secret must be %d to %zu "
                      "bytes",
                      path, GMUD_CLUSTER_SECRET_MIN, sizeof app->secret);
        memset(buf, 0, sizeof buf);
        return -1;
    }
    memcpy(app->secret, buf, n);
    memset(buf, 0, sizeof buf);
    app->secret_len = n;
    return 0;
}

/* The host name, reduced to name bytes: --node's default. */
static void default_node(char *out, size_t cap)
{
    char h[256] = "";
    gethostname(h, sizeof h - 1);
    size_t k = 0;
    for (size_t i = 0; h[i] != '\0' && k + 1 < cap && k < GMUD_CLUSTER_NAME_MAX; i++) {
        char ch = h[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '_' || ch == '-')
            out[k++] = ch;
    }
    out[k] = '\0';
}

/* --cluster, --node and --cluster-secret-file checked and read before
 * anything listens: a bad one is exit status 2, with the reason. */
static int prepare_cluster(server_app *app)
{
    const prog_options *o = &app->opt;
    if (parse_redis_url(o->cluster, app->redis_host, sizeof app->redis_host,
                        &app->redis_port) != 0) {
        prog_log_text("gmud-server: --cluster %s: not redis://HOST[:PORT] (HOST an IP address, "
                      "[v6] for IPv6)",
                      o->cluster);
        return -1;
    }
    if (o->node != NULL)
        snprintf(app->node, sizeof app->node, "%s", o->node);
    else
        default_node(app->node, sizeof app->node);
    if (o->node == NULL && app->node[0] == '\0') {
        prog_log_text("gmud-server: --node: the host name holds none of A-Z a-z 0-9 . _ -: "
                      "give the node a name with --node");
        return -1;
    }
    if (o->node != NULL && (strlen(o->node) > GMUD_CLUSTER_NAME_MAX ||
                            !gmud_cluster_name_ok(o->node))) {
        prog_log_text("gmud-server: --node %s: a node's name is 1 to %d of A-Z a-z 0-9 . _ -",
                      o->node, GMUD_CLUSTER_NAME_MAX);
        return -1;
    }
    if (o->cluster_secret_file != NULL && read_secret(app, o->cluster_secret_file) != 0)
        return -1;
    return 0;
}

static int start_cluster(server_app *app)
{
    const prog_options *o = &app->opt;
    gmud_cluster_config cc;
    gmud_cluster_default_config(&cc);
    cc.host = app->redis_host;
    cc.port = app->redis_port;
    cc.node = app->node;
    cc.ttl_ms = o->cluster_ttl_ms;
    cc.secret = app->secret_len > 0 ? app->secret : NULL;
    cc.secret_len = app->secret_len;
    cc.cb = (gmud_cluster_callbacks){on_remote, on_presence, on_link, app};
    cc.log = prog_log; /* as cfg.conn.log: the program's logger */
    cc.log_user = &app->opt;
    gmud_error err;
    app->cluster = gmud_cluster_create(&app->loop, &cc, &err);
    if (app->cluster == NULL) {
        prog_log_text("gmud-server: --cluster: %s", err.message);
        return err.code == GMUD_ERR_INVALID ? 2 : 1;
    }
    const char *host = app->redis_host;
    int v6 = strchr(host, ':') != NULL;
    prog_logf(o, GMUD_LOG_INFO, NULL, "cluster", "node %s of the cluster on redis://%s%s%s:%u%s",
              app->node, v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)cc.port,
              cc.secret != NULL ? ", messages signed" : "");
    return 0;
}

/* --metrics: on the server's loop; its port logged, as the server's is. */
static int start_metrics(server_app *app)
{
    const prog_options *o = &app->opt;
    gmud_metrics_config mc;
    gmud_metrics_default_config(&mc);
    mc.host = o->metrics.at[0].host;
    mc.port = o->metrics.at[0].port;
    mc.cluster = app->cluster;
    gmud_error err;
    app->metrics = gmud_metrics_create(&app->loop, app->server, &mc, &err);
    if (app->metrics == NULL) {
        prog_log_text("gmud-server: --metrics: %s", err.message);
        return -1;
    }
    prog_logf(o, GMUD_LOG_INFO, NULL, "metrics", "metrics on http://%s%s%s:%u/metrics",
              strchr(mc.host, ':') ? "[" : "", mc.host, strchr(mc.host, ':') ? "]" : "",
              (unsigned)gmud_metrics_port(app->metrics));
    return 0;
}

static void shutdown_done(gmud_server *server, void *user)
{
    /* The runtime logs it; the loop ends once the last handle is closed. */
    (void)server;
    (void)user;
}

static void signal_closed(uv_handle_t *h)
{
    (void)h;
}

/* Stops everything that would keep the loop running: the clock, the signal
 * watchers, then the server, which flushes and closes its connections. */
static void app_stop(server_app *app, const char *why)
{
    if (app->stopping)
        return;
    app->stopping = 1;
    prog_logf(&app->opt, GMUD_LOG_INFO, NULL, "shutdown", "%s; flushing for at most %gs", why,
              app->opt.shutdown_ms / 1000.0);
    gmud_timer_destroy(app->clock);
    app->clock = NULL;
    gmud_metrics_destroy(app->metrics);
    app->metrics = NULL;
    chat_detach_cluster(app->chat);
    gmud_cluster_destroy(app->cluster); /* a goodbye to the other nodes */
    app->cluster = NULL;
    gmud_timer_destroy(app->watchdog);
    app->watchdog = NULL;
    sdn_send(&app->notify, "STOPPING=1");
    /* Closing the watchers restores the default action: a second Ctrl-C
     * while the flush runs ends the process at once. */
    for (size_t i = 0; i < APP_SIGNALS; i++)
        uv_close((uv_handle_t *)&app->sig[i], signal_closed);
    if (app->server != NULL)
        gmud_server_shutdown(app->server, app->opt.shutdown_ms, shutdown_done, app);
}

/* SIGHUP: the TLS certificate and key read again (the library logs how
 * it went; a failure keeps the old ones). */
static void reload(server_app *app)
{
    gmud_error err;
    if (!app->opt.conn.tls.enabled) {
        prog_logf(&app->opt, GMUD_LOG_INFO, NULL, "reload",
                  "SIGHUP: no TLS certificate to reload; nothing else is reread");
        return;
    }
    if (app->server != NULL)
        gmud_server_reload_tls(app->server, &err);
}

static void on_signal(uv_signal_t *h, int signum)
{
    if (signum == SIGHUP)
        reload(h->data);
    else
        app_stop(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- The clock in lecture mode: one exchange at a time per connection -- */
/*
 * The lecture's server sends a packet, waits for the reply, checks it and
 * sends the next: each connection has its own count from 0. With
 * --interval 0 the next packet follows the reply at once, as in the
 * lecture's loop; otherwise the clock's tick sends it to each connection
 * whose reply is in.
 */
typedef struct lecture_peer {
    unsigned long long n; /* the next message's number */
    int waiting;          /* a packet is out and its reply not yet in */
} lecture_peer;

static int lecture(const server_app *app)
{
    return app->opt.conn.session.mode == GMUD_SESSION_LECTURE;
}

static void lecture_send(server_app *app, gmud_conn *conn)
{
    lecture_peer *p = gmud_conn_data(conn);
    if (p == NULL || p->waiting || app->stopping)
        return;
    if (app->opt.count != 0 && p->n >= app->opt.count) {
        gmud_conn_close(conn);
        return;
    }
    char msg[APP_CLOCK_MAX];
    gmud_error err = {0};
    int len = app_clock_json(p->n, time(NULL), msg, sizeof msg);
    if (len < 0 || gmud_conn_send(conn, msg, (size_t)len, &err) != GMUD_OK) {
        prog_logf(&app->opt, GMUD_LOG_ERROR, gmud_conn_peer(conn), "clock",
                  "message %llu not sent: %s", p->n, len < 0 ? "cannot format" : err.message);
        return;
    }
    p->n++;
    p->waiting = 1;
}

static void lecture_send_each(gmud_conn *conn, void *user)
{
    lecture_send(user, conn);
}

/* The lecture's server prints one line per reply. */
static void lecture_reply(server_app *app, gmud_conn *conn)
{
    lecture_peer *p = gmud_conn_data(conn);
    printf("Client valid\n");
    fflush(stdout);
    if (p == NULL)
        return;
    p->waiting = 0;
    if (app->opt.count != 0 && p->n >= app->opt.count) {
        /* The last exchange is done: as the plain clock does after --count
         * messages, stop. */
        app_stop(app, "clock count reached");
        return;
    }
    if (app->opt.interval_ms == 0)
        lecture_send(app, conn);
}

static void on_reject(gmud_conn *conn, const gmud_error *why, void *user)
{
    server_app *app = user;
    if (!lecture(app) || why->code == GMUD_ERR_RATE_LIMITED || why->code == GMUD_ERR_RATE_DROPPED)
        return;
    /* The lecture's words: a wrong id is "Invalid Packet", a wrong
     * sequence a replay. A reply refused is still an exchange done. */
    int seq = why->code == GMUD_ERR_REPLAYED || why->code == GMUD_ERR_SKIPPED;
    printf("%s\n", seq ? "Session data wrong - replay hack?" : "Invalid Packet");
    fflush(stdout);
    lecture_peer *p = gmud_conn_data(conn);
    if (p != NULL && app->opt.conn.session.carry_on) {
        p->waiting = 0;
        if (app->opt.interval_ms == 0)
            lecture_send(app, conn);
    }
}

static void on_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                     void *user)
{
    server_app *app = user;
    (void)reason;
    (void)detail;
    if (app->opt.app == APP_CHAT)
        chat_close(app->chat, conn); /* announced to its room, and to the cluster */
    free(gmud_conn_data(conn));
    gmud_conn_set_data(conn, NULL);
}

static void clock_tick(gmud_timer *timer, void *user)
{
    server_app *app = user;
    char msg[APP_CLOCK_MAX];
    gmud_error err = {0};
    (void)timer;
    if (lecture(app)) {
        gmud_server_foreach(app->server, lecture_send_each, app);
        return;
    }
    time_t now = time(NULL);
    int len = app->opt.conn.payload == GMUD_PAYLOAD_JSON
                  ? app_clock_json(app->clock_n, now, msg, sizeof msg)
                  : app_clock_text(app->clock_n, now, msg, sizeof msg);
    if (len < 0) {
        prog_logf(&app->opt, GMUD_LOG_ERROR, NULL, "clock", "cannot format message %llu",
                  app->clock_n);
    } else {
        int sent = broadcast(app, msg, (size_t)len, NULL, NULL, &err);
        if (sent < 0)
            prog_logf(&app->opt, GMUD_LOG_ERROR, NULL, "clock", "message %llu not sent: %s",
                      app->clock_n, err.message);
        else
            prog_logf(&app->opt, GMUD_LOG_DEBUG, NULL, "clock", "message %llu sent to %d",
                      app->clock_n, sent);
    }
    app->clock_n++;
    if (app->opt.count != 0 && app->clock_n >= app->opt.count)
        app_stop(app, "clock count reached");
}

static void on_connect(gmud_conn *conn, void *user)
{
    server_app *app = user;
    if (app->opt.app == APP_CHAT)
        chat_connect(app->chat, conn);
    if (app->opt.app == APP_CLOCK && lecture(app)) {
        lecture_peer *p = calloc(1, sizeof *p);
        if (p == NULL) {
            prog_logf(&app->opt, GMUD_LOG_ERROR, gmud_conn_peer(conn), "clock", "out of memory");
            gmud_conn_close(conn);
            return;
        }
        gmud_conn_set_data(conn, p);
        lecture_send(app, conn);
    }
    if (app->opt.app != APP_CLOCK || app->clock != NULL || app->stopping)
        return;
    if (lecture(app) && app->opt.interval_ms == 0)
        return; /* replies pace the exchange; no timer */
    /* The lecture's server starts counting when its client connects. */
    app->clock = gmud_timer_create(&app->loop, 0, app->opt.interval_ms, clock_tick, app);
    if (app->clock == NULL)
        prog_logf(&app->opt, GMUD_LOG_ERROR, gmud_conn_peer(conn), "clock", "out of memory");
}

static void on_message(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                       void *user)
{
    server_app *app = user;
    gmud_error err = {0};
    switch (app->opt.app) {
    case APP_ECHO:
        if (gmud_conn_send(conn, data, len, &err) < 0)
            prog_logf(&app->opt, GMUD_LOG_WARN, gmud_conn_peer(conn), "echo", "not sent: %s",
                      err.message);
        break;
    case APP_CHAT:
        chat_message(app->chat, conn, data, len, json);
        break;
    case APP_CLOCK:
        if (lecture(app)) {
            lecture_reply(app, conn);
            break;
        }
        prog_logf(&app->opt, GMUD_LOG_DEBUG, gmud_conn_peer(conn), "ignored",
                  "the clock takes no messages (%zu bytes)", len);
        break;
    }
}

/* systemd's watchdog, fed from a loop timer at half its period: a loop
 * that stops turning stops feeding it, and systemd restarts the service. */
static void feed_watchdog(gmud_timer *timer, void *user)
{
    (void)timer;
    sdn_send(&((server_app *)user)->notify, "WATCHDOG=1");
}

/* Listening: tell systemd (Type=notify), and start the watchdog if it
 * asked for one. */
static void notify_ready(server_app *app)
{
    char status[96];
    snprintf(status, sizeof status, "READY=1\nSTATUS=serving on port %u",
             (unsigned)gmud_server_port(app->server));
    sdn_send(&app->notify, status);
    uint64_t period = app->notify.watchdog_ms / 2;
    if (period == 0)
        return;
    app->watchdog = gmud_timer_create(&app->loop, period, period, feed_watchdog, app);
    prog_logf(&app->opt, GMUD_LOG_INFO, NULL, "systemd", "watchdog: fed every %llu ms",
              (unsigned long long)period);
}

static int run(server_app *app)
{
    gmud_server_config cfg;
    gmud_error err = {0};
    const prog_options *o = &app->opt;
    gmud_server_default_config(&cfg);
    cfg.host = o->host;
    cfg.port = (uint16_t)o->port;
    cfg.conn = o->conn;
    cfg.addr = o->addr;
    cfg.conn.cb.on_connect = on_connect;
    cfg.conn.cb.on_message = on_message;
    cfg.conn.cb.on_close = on_close;
    cfg.conn.cb.on_reject = on_reject;
    cfg.conn.cb.user = app;
    cfg.conn.log = prog_log;
    cfg.conn.log_user = &app->opt;
    /* Signals first: once "listen" is logged, SIGTERM must find its handler. */
    static const int signums[APP_SIGNALS] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < APP_SIGNALS; i++) {
        uv_signal_init(&app->loop, &app->sig[i]);
        app->sig[i].data = app;
        uv_signal_start(&app->sig[i], on_signal, signums[i]);
    }
    /* With --tls-port, --port stays plain TCP and a second listener of the
     * same server serves TLS; without it, --port serves TLS if a
     * certificate is given. */
    gmud_listen_config tls_listen = {.host = o->host, .port = (uint16_t)o->tls_port, .tls = 1,
                                     .proxy = o->proxy_protocol};
    if (o->tls_port >= 0) {
        cfg.conn.tls.enabled = 0;
        cfg.listen = &tls_listen;
        cfg.listen_count = 1;
    }
    /* --listen: the first address in the place of --host and --port. */
    gmud_listen_config lis[GMUD_MAX_LISTENERS];
    for (size_t i = 0; i < o->listen.n; i++) {
        lis[i] = o->listen.at[i];
        lis[i].proxy = o->proxy_protocol; /* --proxy-protocol: on every listener */
    }
    if (o->listen.n > 0) {
        cfg.host = lis[0].host;
        cfg.port = lis[0].port;
        cfg.conn.tls.enabled = lis[0].tls;
        cfg.listen = &lis[1];
        cfg.listen_count = o->listen.n - 1;
    }
    cfg.reuseport = o->reuseport;
    cfg.proxy_protocol = o->proxy_protocol;
    cfg.proxy_from = o->proxy_from;
    cfg.proxy_timeout_ms = o->proxy_timeout_ms;
    prog_options_log(o);
    app->server = gmud_server_create(&app->loop, &cfg, &err);
    if (app->server == NULL) {
        prog_log_text("gmud-server: %s", err.message);
        for (size_t k = 0; k < APP_SIGNALS; k++)
            uv_close((uv_handle_t *)&app->sig[k], signal_closed);
        return 1;
    }
    int rc = o->cluster != NULL ? start_cluster(app) : 0;
    if (rc == 0 && o->app == APP_CHAT && (app->chat = chat_create(app->server, o, app->cluster)) == NULL) {
        prog_log_text("gmud-server: out of memory");
        rc = 1;
    }
    if (rc == 0 && o->metrics.n > 0 && start_metrics(app) != 0)
        rc = 1;
    if (rc != 0) {
        for (size_t k = 0; k < APP_SIGNALS; k++)
            uv_close((uv_handle_t *)&app->sig[k], signal_closed);
        gmud_cluster_destroy(app->cluster);
        app->cluster = NULL;
        return rc;
    }
    /* The runtime logs "listen" with the address and the port it bound. */
    if (o->app == APP_CLOCK)
        prog_logf(o, GMUD_LOG_INFO, NULL, "app",
                  "clock: a message every %gs from the first connection on, %llu in all%s",
                  o->interval_ms / 1000.0, o->count, o->count == 0 ? " (no limit)" : "");
    else
        prog_logf(o, GMUD_LOG_INFO, NULL, "app", "%s", app_kind_name(o->app));
    notify_ready(app);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    return 0;
}

int main(int argc, char **argv)
{
    static server_app app; /* static: zeroed, and off the stack */
    prog_process_setup();
    int rc = prog_options_parse(&app.opt, PROG_SERVER, argc, argv);
    if (rc != PROG_RUN)
        return rc == PROG_EXIT_OK ? 0 : 2;
    if (app.opt.proxy_protocol && (app.opt.proxy_from == NULL || app.opt.proxy_from[0] == '\0')) {
        fprintf(stderr, "gmud-server: --proxy-protocol needs --proxy-from: the addresses of the "
                        "load balancers that send the header\n");
        return 2;
    }
    if (app.opt.cluster != NULL && app.opt.app != APP_CHAT) {
        fprintf(stderr, "gmud-server: --cluster shares the chat's rooms: it needs --app chat\n");
        return 2;
    }
    if (uv_loop_init(&app.loop) != 0) {
        fprintf(stderr, "gmud-server: cannot start the event loop\n");
        return 1;
    }
    prog_log_start();
    if (app.opt.cluster != NULL && prepare_cluster(&app) != 0) {
        prog_log_finish();
        uv_loop_close(&app.loop);
        return 2;
    }
    sdn_open(&app.notify);
    int status = run(&app);
    gmud_server_destroy(app.server);
    chat_destroy(app.chat);
    /* The last handles' memory is released as the loop runs on. */
    uv_run(&app.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&app.loop) != 0)
        prog_logf(&app.opt, GMUD_LOG_WARN, NULL, "exit", "event loop still had handles");
    sdn_close(&app.notify);
    prog_log_finish();
    return status;
}
