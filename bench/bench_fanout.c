/* bench_fanout: one server sending a 100-byte message to 1,000 clients,
 * M times over, beside raw write()s of the same bytes in the same run.
 *
 * The receivers are the same in every round: a child process running 1,000
 * gmud_client event clients on one libuv loop, each counting its messages;
 * on the M-th it sends "done" back. The senders, in this process, take turns:
 *   raw      1,000 accepted blocking sockets (TCP_NODELAY, as gmud sets it);
 *            for each of the M messages, one write() of the 106-byte gmud
 *            frame to each socket in turn;
 *   gmud x1  a gmud_server calling gmud_server_broadcast() once per loop
 *            turn (one write per connection per message, like raw);
 *   gmud x16 the same with up to 16 broadcasts per loop turn, which the
 *            runtime coalesces into one write per connection (the
 *            library's design).
 * gmud rounds never queue more than GMUD_BENCH_AHEAD messages per connection
 * on average ahead of the kernel (server stats: frames queued vs bytes
 * written), so the slow-consumer limit is never what stops them; that bound
 * also caps how many messages x16 can put in one write.
 *
 * The clock starts when all 1,000 are connected and stops when the last
 * "done" has arrived: deliveries/s = 1,000 * M / that time. Also: the time
 * until the sender had handed everything to the kernel, and the sender's CPU
 * time (user + system) per delivery, which is what the server pays whatever
 * the receivers' speed. The receivers' process also reports how much its RSS
 * grew from before the 1,000 clients existed to the last message (the
 * memory cost of many event clients on one loop). Each variant runs
 * GMUD_BENCH_ROUNDS times, in alternating order; best and median. No new
 * round starts once
 * GMUD_BENCH_BUDGET_S seconds have passed (the first of each always runs).
 *
 * Environment: GMUD_BENCH_CLIENTS (default 1000), GMUD_BENCH_M (default
 * 100), GMUD_BENCH_ROUNDS (default 3), GMUD_BENCH_AHEAD (default 8),
 * GMUD_BENCH_BUDGET_S (default 15).
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
#include "gmud/frame.h"
#include "gmud/server.h"

enum {
    PAYLOAD = 100,
    BACKLOG = 4096,
    CHILD_SECONDS = 30,
    VARIANTS = 3,
    DONE_LEN = 4
};

static const char DONE[DONE_LEN] = "done";

typedef struct variant {
    const char *name;
    int raw;
    int per_turn;
} variant;

static const variant variants[VARIANTS] = {
    {"raw write()", 1, 1},
    {"gmud x1/turn", 0, 1},
    {"gmud x16/turn", 0, 16},
};

typedef struct params {
    size_t clients;
    size_t m;
    size_t ahead;
    gmud_frame_config fcfg;
    uint8_t payload[PAYLOAD];
    uint8_t frame[PAYLOAD + 16];
    size_t flen;
} params;

typedef struct figures {
    double total_s;  /* all connected .. last "done" */
    double sent_s;   /* all connected .. everything handed to the kernel */
    double cpu_s;    /* sender's CPU over total_s */
    double writes;   /* write calls (gmud: server stats; raw: one per message) */
    double rx_rss;   /* the receivers' RSS growth from before the clients to all done (bytes) */
} figures;

/* ---- Receivers (child) -------------------------------------------------- */

typedef struct receiver receiver;

typedef struct rx_client {
    receiver *rx;
    gmud_client *client;
    size_t count;
} rx_client;

struct receiver {
    uv_loop_t loop;
    const params *p;
    rx_client *c;
    size_t closed, finished, bad;
    long long rss0, rss1;
};

static void rx_on_message(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                          void *user)
{
    (void)data;
    (void)json;
    rx_client *c = user;
    receiver *rx = c->rx;
    if (len != PAYLOAD)
        rx->bad++;
    if (++c->count == rx->p->m) {
        gmud_error err;
        if (gmud_conn_send(conn, DONE, DONE_LEN, &err) != 0)
            bench_fail("receiver: done: %s", err.message);
        if (++rx->finished == rx->p->clients)
            rx->rss1 = bench_rss_bytes();
    }
}

static void rx_on_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                        void *user)
{
    (void)conn;
    rx_client *c = user;
    receiver *rx = c->rx;
    if (reason != GMUD_CLOSE_PEER || c->count != rx->p->m)
        bench_fail("receiver: client closed after %zu of %zu messages: %s%s%s", c->count,
                   rx->p->m, gmud_close_reason_name(reason), detail ? ": " : "",
                   detail ? detail->message : "");
    if (++rx->closed == rx->p->clients)
        uv_stop(&rx->loop);
}

static void receivers_main(const params *p, uint16_t port, int rss_fd)
{
    bench_raise_nofile();
    receiver rx;
    memset(&rx, 0, sizeof rx);
    rx.p = p;
    rx.rss0 = bench_rss_bytes();
    rx.c = calloc(p->clients, sizeof *rx.c);
    if (rx.c == NULL || uv_loop_init(&rx.loop) != 0)
        bench_fail("receiver: setup");
    gmud_client_config cfg;
    gmud_client_default_config(&cfg);
    cfg.port = port;
    cfg.conn.payload = GMUD_PAYLOAD_TEXT;
    cfg.conn.session.mode = GMUD_SESSION_OFF; /* as the server's */
    cfg.conn.cb.on_message = rx_on_message;
    cfg.conn.cb.on_close = rx_on_close;
    for (size_t i = 0; i < p->clients; i++) {
        gmud_error err;
        rx.c[i].rx = &rx;
        cfg.conn.cb.user = &rx.c[i];
        rx.c[i].client = gmud_client_create(&rx.loop, &cfg, &err);
        if (rx.c[i].client == NULL)
            bench_fail("gmud_client_create: %s", err.message);
    }
    uv_run(&rx.loop, UV_RUN_DEFAULT);
    if (rx.closed != p->clients || rx.bad != 0)
        bench_fail("receiver: %zu of %zu clients closed, %zu bad messages", rx.closed,
                   p->clients, rx.bad);
    double grew = (double)(rx.rss1 - rx.rss0);
    bench_pipe_write(rss_fd, &grew, sizeof grew);
    for (size_t i = 0; i < p->clients; i++)
        gmud_client_destroy(rx.c[i].client);
    uv_run(&rx.loop, UV_RUN_DEFAULT);
    _exit(uv_loop_close(&rx.loop) == 0 ? 0 : 1);
}

/* Forks the receivers; *rss_fd gets the pipe their RSS growth comes on. */
static pid_t start_receivers(const params *p, uint16_t port, int *rss_fd)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        bench_fail("pipe: %s", strerror(errno));
    pid_t pid = bench_fork(CHILD_SECONDS);
    if (pid == 0) {
        close(pfd[0]);
        receivers_main(p, port, pfd[1]);
    }
    close(pfd[1]);
    *rss_fd = pfd[0];
    return pid;
}

static double receivers_wait(pid_t pid, int rss_fd)
{
    double grew = 0;
    if (bench_pipe_read(rss_fd, &grew, sizeof grew, 10000) != 0 || bench_wait(pid, 10000) != 0)
        bench_fail("the receivers failed");
    close(rss_fd);
    return grew;
}

/* ---- raw sender ----------------------------------------------------------- */

static figures raw_round(const params *p)
{
    uint16_t port;
    int lfd = bench_listen(BACKLOG, &port);
    int rss_fd;
    pid_t pid = start_receivers(p, port, &rss_fd);
    int *fds = bench_xmalloc(p->clients * sizeof *fds);
    for (size_t i = 0; i < p->clients; i++) {
        fds[i] = accept(lfd, NULL, NULL);
        if (fds[i] < 0)
            bench_fail("accept: %s", strerror(errno));
        bench_nodelay(fds[i]);
    }
    close(lfd);

    figures f;
    double cpu0 = bench_cpu_seconds();
    uint64_t t0 = bench_now_ns();
    for (size_t j = 0; j < p->m; j++) {
        for (size_t i = 0; i < p->clients; i++)
            bench_write_all(fds[i], p->frame, p->flen);
    }
    uint64_t t1 = bench_now_ns();
    uint8_t done[64];
    size_t dlen = gmud_frame_encoded_size(&p->fcfg, DONE_LEN);
    for (size_t i = 0; i < p->clients; i++) {
        if (bench_read_full(fds[i], done, dlen) != 0)
            bench_fail("raw: receiver %zu closed before its done", i);
    }
    uint64_t t2 = bench_now_ns();
    f.cpu_s = bench_cpu_seconds() - cpu0;
    f.sent_s = (double)(t1 - t0) / 1e9;
    f.total_s = (double)(t2 - t0) / 1e9;
    f.writes = (double)(p->clients * p->m);
    for (size_t i = 0; i < p->clients; i++)
        close(fds[i]);
    free(fds);
    f.rx_rss = receivers_wait(pid, rss_fd);
    return f;
}

/* ---- gmud sender ---------------------------------------------------------- */

typedef struct sender {
    uv_loop_t loop;
    const params *p;
    int per_turn;
    gmud_server *server;
    uv_check_t pump;
    size_t connected, dones, left;
    uint64_t t0, t_sent, t_done;
    double cpu0, cpu;
    uint64_t writes0;
    int pumping, stopped;
} sender;

static void snd_stop_pump(sender *s)
{
    if (s->pumping) {
        uv_check_stop(&s->pump);
        s->pumping = 0;
    }
}

/* Runs once per loop turn from a uv_check handle: broadcasts up to per_turn
 * messages if the backlog allows, and notes when the kernel has taken
 * everything. A broadcast arms the runtime's own idle handle, so the next
 * turn does not sleep in poll; with the backlog full the loop sleeps until
 * a write completes. */
static void snd_pump(sender *s)
{
    const params *p = s->p;
    gmud_stats st;
    gmud_server_stats(s->server, &st);
    uint64_t queued = st.messages_out * p->flen - st.bytes_out;
    uint64_t bound = (uint64_t)p->ahead * p->clients * p->flen;
    for (int k = 0; k < s->per_turn && s->left > 0 && queued <= bound; k++) {
        gmud_error err;
        int n = gmud_server_broadcast(s->server, p->payload, PAYLOAD, NULL, &err);
        if (n != (int)p->clients)
            bench_fail("gmud_server_broadcast reached %d of %zu: %s", n, p->clients,
                       n < 0 ? err.message : "connections lost");
        s->left--;
        queued += (uint64_t)p->clients * p->flen;
    }
    if (s->left == 0 && queued == 0) {
        s->t_sent = bench_now_ns();
        snd_stop_pump(s);
    }
}

static void snd_on_check(uv_check_t *h)
{
    snd_pump(h->data);
}

static void snd_on_connect(gmud_conn *conn, void *user)
{
    (void)conn;
    sender *s = user;
    if (++s->connected != s->p->clients)
        return;
    gmud_stats st;
    gmud_server_stats(s->server, &st);
    s->writes0 = st.writes;
    s->cpu0 = bench_cpu_seconds();
    s->t0 = bench_now_ns();
    s->pumping = 1;
    uv_check_start(&s->pump, snd_on_check);
    snd_pump(s);
}

static void snd_shutdown_done(gmud_server *server, void *user)
{
    (void)server;
    sender *s = user;
    s->stopped = 1;
    uv_stop(&s->loop);
}

static void snd_on_message(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                           void *user)
{
    (void)conn;
    (void)json;
    sender *s = user;
    if (len != DONE_LEN || memcmp(data, DONE, DONE_LEN) != 0)
        bench_fail("gmud: unexpected message from a receiver");
    if (++s->dones == s->p->clients) {
        s->t_done = bench_now_ns();
        s->cpu = bench_cpu_seconds() - s->cpu0;
        if (s->t_sent == 0) /* the last write's completion and the dones crossed */
            s->t_sent = s->t_done;
        snd_stop_pump(s);
        gmud_server_shutdown(s->server, 2000, snd_shutdown_done, s);
    }
}

static void snd_on_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                         void *user)
{
    (void)conn;
    (void)user;
    if (reason != GMUD_CLOSE_SHUTDOWN && reason != GMUD_CLOSE_PEER)
        bench_fail("gmud: connection closed: %s%s%s", gmud_close_reason_name(reason),
                   detail ? ": " : "", detail ? detail->message : "");
}

static figures gmud_round(const params *p, int per_turn)
{
    sender s;
    memset(&s, 0, sizeof s);
    s.p = p;
    s.per_turn = per_turn;
    s.left = p->m;
    if (uv_loop_init(&s.loop) != 0)
        bench_fail("uv_loop_init");
    uv_check_init(&s.loop, &s.pump);
    s.pump.data = &s;
    gmud_server_config cfg;
    bench_server_config(&cfg, p->clients);
    cfg.conn.payload = GMUD_PAYLOAD_TEXT;
    cfg.conn.cb.on_connect = snd_on_connect;
    cfg.conn.cb.on_message = snd_on_message;
    cfg.conn.cb.on_close = snd_on_close;
    cfg.conn.cb.user = &s;
    gmud_error err;
    s.server = gmud_server_create(&s.loop, &cfg, &err);
    if (s.server == NULL)
        bench_fail("gmud_server_create: %s", err.message);
    int rss_fd;
    pid_t pid = start_receivers(p, gmud_server_port(s.server), &rss_fd);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    if (!s.stopped)
        bench_fail("gmud: loop ended before shutdown (%zu connected, %zu done)", s.connected,
                   s.dones);
    gmud_stats st;
    gmud_server_stats(s.server, &st);
    gmud_server_destroy(s.server);
    uv_close((uv_handle_t *)&s.pump, NULL);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s.loop) != 0)
        bench_fail("gmud: loop still has handles");
    figures f;
    f.rx_rss = receivers_wait(pid, rss_fd);
    f.total_s = (double)(s.t_done - s.t0) / 1e9;
    f.sent_s = (double)(s.t_sent - s.t0) / 1e9;
    f.cpu_s = s.cpu;
    f.writes = (double)(st.writes - s.writes0);
    return f;
}

/* ---- Report --------------------------------------------------------------- */

static int cmp_total(const void *a, const void *b)
{
    const figures *x = a, *y = b;
    return (x->total_s > y->total_s) - (x->total_s < y->total_s);
}

int main(void)
{
    bench_prog = "bench_fanout";
    bench_ignore_sigpipe();
    bench_raise_nofile();
    params p;
    memset(&p, 0, sizeof p);
    p.clients = (size_t)bench_env_long("GMUD_BENCH_CLIENTS", 1000, 1, 8000);
    p.m = (size_t)bench_env_long("GMUD_BENCH_M", 100, 1, 100000);
    p.ahead = (size_t)bench_env_long("GMUD_BENCH_AHEAD", 8, 1, 1000);
    int rounds = (int)bench_env_long("GMUD_BENCH_ROUNDS", 3, 1, 9);
    long budget_s = bench_env_long("GMUD_BENCH_BUDGET_S", 15, 1, 40);
    bench_time_bound(55);
    gmud_frame_default_config(&p.fcfg, GMUD_FRAMING_GMUD);
    for (size_t i = 0; i < PAYLOAD; i++)
        p.payload[i] = (uint8_t)('a' + i % 26);
    gmud_error err;
    ptrdiff_t n = gmud_frame_encode(&p.fcfg, p.payload, PAYLOAD, p.frame, sizeof p.frame, &err);
    if (n <= 0)
        bench_fail("gmud_frame_encode: %s", err.message);
    p.flen = (size_t)n;

    printf("bench_fanout: %zu clients (gmud_client, one loop, child process), %zu messages of "
           "%d bytes (%zu-byte gmud frames) to each, up to %d rounds per variant\n",
           p.clients, p.m, PAYLOAD, p.flen, rounds);
    printf("  raw: blocking write() of each frame to each socket in turn; gmud: "
           "gmud_server_broadcast, 1 or 16 per loop turn\n");
    printf("  deliveries/s = clients * M / (all connected .. last \"done\"); sent = until "
           "the kernel had every byte; CPU = sender's user+sys\n\n");
    printf("| sender        | Mdeliv/s best | Mdeliv/s median | ratio (median) | sent s | "
           "CPU us/delivery | writes/delivery |\n");
    printf("|---------------|---------------|-----------------|----------------|--------|"
           "-----------------|-----------------|\n");

    figures *f[VARIANTS];
    for (int v = 0; v < VARIANTS; v++)
        f[v] = bench_xmalloc((size_t)rounds * sizeof *f[v]);
    /* On a busy machine a round can take seconds: later rounds are skipped
     * once the budget is spent, the first one of each variant never is. */
    uint64_t start = bench_now_ns();
    int done_rounds = 0;
    for (int r = 0; r < rounds; r++) {
        if (r > 0 && bench_now_ns() - start > (uint64_t)budget_s * 1000000000u)
            break;
        for (int k = 0; k < VARIANTS; k++) {
            int v = r % 2 == 0 ? k : VARIANTS - 1 - k;
            f[v][r] = variants[v].raw ? raw_round(&p) : gmud_round(&p, variants[v].per_turn);
        }
        done_rounds++;
    }
    rounds = done_rounds;
    double deliveries = (double)(p.clients * p.m), raw_median = 0;
    double rx_rss = f[0][0].rx_rss;
    for (int v = 0; v < VARIANTS; v++) {
        qsort(f[v], (size_t)rounds, sizeof *f[v], cmp_total);
        const figures *best = &f[v][0], *med = &f[v][(rounds - 1) / 2];
        double median_s = rounds % 2 ? med->total_s : (med->total_s + f[v][rounds / 2].total_s) / 2;
        if (v == 0)
            raw_median = median_s;
        printf("| %-13s | %13.3f | %15.3f | %14.2f | %6.3f | %15.2f | %15.3f |\n",
               variants[v].name, deliveries / best->total_s / 1e6, deliveries / median_s / 1e6,
               raw_median / median_s, med->sent_s, med->cpu_s / deliveries * 1e6,
               med->writes / deliveries);
        free(f[v]);
    }
    printf("\n%d round(s) per variant ran; ratio = deliveries/s / raw's (medians)\n", rounds);
    printf("receivers: %zu gmud_clients on one loop; their process grew by %.1f MiB of RSS "
           "(%.1f KiB per client) from before the clients to all done\n",
           p.clients, rx_rss / 1048576, rx_rss / 1024 / (double)p.clients);
    return 0;
}
