/* bench/bench_cluster.c: what the Redis hop costs (issue 13).
 *
 * Starts redis-server and two gmud-server nodes (--app chat --cluster) and
 * three clients, all in the room "bench": S sends on node n1, L listens on
 * n1 (the same room on one node: the baseline) and R on n2 (across the
 * cluster). In the same run:
 *
 *   1. deliveries per second: S sends as fast as the slower listener takes
 *      (at most 2000 messages ahead of it); L's rate and R's, and their
 *      ratio; R's rate is the cross-node rate (R hears after L);
 *   2. latency: S sends one message every 400 us stamped with the monotonic
 *      clock; L's and R's one-way latency, p50 and p99. The hop is R - L.
 *      Beside it, the floor: PUBLISH to a SUBSCRIBE client through the same
 *      Redis with hiredis alone, paced the same;
 *   3. nodes per Redis: K gmud_cluster instances in this process (K = 2 to
 *      16), each publishing 500 messages a second, while Redis's own CPU
 *      time (INFO cpu) is read. Redis's cost, its idle cost taken off, is
 *      reported per publish: gmud's nodes at a real load;
 *   4. Redis's ceiling: PUBLISH pipelined as fast as Redis answers, to 2, 8
 *      and 32 subscribers that only read; a publish's cost is fitted as
 *      a + b per subscriber, and the node count at which Redis would be 80%
 *      busy is estimated from it for 100, 1000 and 10000 messages a second
 *      per node.
 *
 * Usage: bench_cluster PATH/TO/gmud-server. redis-server must be on PATH
 * (scripts/install-deps.sh). Loopback only; about forty seconds.
 */
#include <hiredis/hiredis.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../tests/redis_util.h"
#include "bench_net.h"
#include "bench_util.h"
#include "gmud/cluster.h"
#include "gmud/sync.h"

enum {
    BURST_N = 100000,     /* phase 1 messages */
    BURST_WINDOW = 2000,  /* sent and not yet received, at most */
    LAT_N = 5000,         /* phase 2 messages */
    LAT_GAP_US = 400,     /* between them */
    NODES_RATE = 500,     /* phase 3: messages a second per node (5 per 10 ms) */
    NODES_SECONDS = 3,
    NODES_MAX = 16
};

/* ---- Processes ------------------------------------------------------------ */

static pid_t spawn(char *const argv[])
{
    pid_t pid = bench_fork(120);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static pid_t start_node(const char *server, const char *name, unsigned port, unsigned redis)
{
    char p[16], url[64];
    snprintf(p, sizeof p, "%u", port);
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", redis);
    char *argv[] = {(char *)server, "--app", "chat", "--port", p, "--cluster", url, "--node",
                    (char *)name, "--session", "off", "--rate-msgs", "0", "--rate-bytes", "0",
                    "--log-level", "warn", NULL};
    pid_t pid = spawn(argv);
    for (int i = 0; i < 500; i++) {
        if (test_redis_accepts(port))
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            bench_fail("%s exited at start", server);
        usleep(10000);
    }
    bench_fail("node %s did not listen on %u", name, port);
    return -1;
}

/* ---- Clients ------------------------------------------------------------------ */

static gmud_sync *player(unsigned port)
{
    gmud_frame_config f;
    gmud_frame_default_config(&f, GMUD_FRAMING_GMUD);
    gmud_error err;
    gmud_sync *s = gmud_sync_connect("127.0.0.1", port, &f, 3000, &err);
    if (s == NULL)
        bench_fail("connect to %u: %s", port, err.message);
    static const char join[] = "{\"cmd\":\"join\",\"room\":\"bench\"}";
    if (gmud_sync_send(s, join, sizeof join - 1, &err) != 0)
        bench_fail("join: %s", err.message);
    return s;
}

static void say(gmud_sync *s, const char *msg)
{
    gmud_error err;
    if (gmud_sync_send(s, msg, strlen(msg), &err) != 0)
        bench_fail("send: %s", err.message);
}

/* A number after "key": in a relayed message; 0 if absent. */
static uint64_t field(const uint8_t *p, size_t n, const char *key)
{
    char pat[16];
    int k = snprintf(pat, sizeof pat, "\"%s\":", key);
    for (size_t i = 0; i + (size_t)k < n; i++)
        if (memcmp(p + i, pat, (size_t)k) == 0)
            return strtoull((const char *)p + i + k, NULL, 10);
    return 0;
}

typedef struct listener {
    gmud_sync *s;
    pthread_t thread;
    volatile int stop;
    volatile int warm;          /* a warm-up message came */
    volatile size_t burst;      /* phase 1 messages received */
    volatile uint64_t burst_last_ns;
    volatile int out_of_order;
    uint64_t next_k;
    double lat_us[LAT_N + 1]; /* by k, 1..LAT_N; 0: not received */
    volatile size_t lat_n;
} listener;

static void heard(listener *l, const uint8_t *p, size_t n, uint64_t now)
{
    uint64_t ph = field(p, n, "ph"), k = field(p, n, "k");
    if (ph == 9) {
        l->warm = 1;
    } else if (ph == 1) {
        if (k < l->next_k)
            l->out_of_order = 1;
        l->next_k = k + 1;
        l->burst++;
        l->burst_last_ns = now;
    } else if (ph == 2 && k >= 1 && k <= LAT_N) {
        uint64_t t = field(p, n, "t");
        l->lat_us[k] = (double)(now - t) / 1e3;
        l->lat_n++;
    }
}

static void *listen_loop(void *arg)
{
    listener *l = arg;
    while (!l->stop) {
        gmud_slice m;
        gmud_error err;
        int rc = gmud_sync_recv(l->s, 100, &m, &err);
        if (rc < 0)
            bench_fail("listener: %s", err.message);
        if (rc == 1)
            heard(l, m.data, m.len, bench_now_ns());
    }
    return NULL;
}

static double pct(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, bench_cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static void pace(uint64_t deadline_ns)
{
    while (bench_now_ns() < deadline_ns) {
        uint64_t left = deadline_ns - bench_now_ns();
        if (left > 60000) {
            struct timespec ts = {0, (long)(left - 50000)};
            nanosleep(&ts, NULL);
        }
    }
}

/* ---- Phases 1 and 2 -------------------------------------------------------------- */

static void warm_up(gmud_sync *s, listener *l, listener *r)
{
    for (int i = 0; i < 200 && !(l->warm && r->warm); i++) {
        say(s, "{\"ph\":9}");
        usleep(50000);
    }
    if (!(l->warm && r->warm))
        bench_fail("the cluster did not carry a message within 10 s");
    usleep(200000);
}

static void burst(gmud_sync *s, listener *l, listener *r)
{
    char msg[64];
    uint64_t t0 = bench_now_ns();
    for (size_t k = 1; k <= BURST_N; k++) {
        /* At most BURST_WINDOW ahead of the slower listener: the server
         * closes a client that lets 1 MiB queue up (a slow consumer). */
        uint64_t waited = bench_now_ns();
        while (k - (l->burst < r->burst ? l->burst : r->burst) > BURST_WINDOW) {
            if (bench_now_ns() - waited > 1000000000ULL)
                bench_fail("phase 1: no progress for 1 s at message %zu", k);
            sched_yield();
        }
        snprintf(msg, sizeof msg, "{\"ph\":1,\"k\":%zu}", k);
        say(s, msg);
    }
    uint64_t sent = bench_now_ns();
    size_t lb = 0, rb = 0;
    for (int idle = 0; idle < 20 && (l->burst < BURST_N || r->burst < BURST_N);) {
        usleep(100000);
        idle = l->burst == lb && r->burst == rb ? idle + 1 : 0;
        lb = l->burst;
        rb = r->burst;
    }
    double ls = (double)(l->burst_last_ns - t0) / 1e9, rs = (double)(r->burst_last_ns - t0) / 1e9;
    double lr = (double)l->burst / ls, rr = (double)r->burst / rs;
    printf("1. deliveries, %d messages, at most %d ahead of the slower listener (%.0f msg/s "
           "sent)\n",
           BURST_N, BURST_WINDOW, BURST_N / ((double)(sent - t0) / 1e9));
    printf("   %-34s %10.0f msg/s  (%zu received%s)\n", "same room, same node (baseline)", lr,
           (size_t)l->burst, l->out_of_order ? ", OUT OF ORDER" : ", in order");
    printf("   %-34s %10.0f msg/s  (%zu received%s)\n", "same room, across the cluster", rr,
           (size_t)r->burst, r->out_of_order ? ", OUT OF ORDER" : ", in order");
    printf("   ratio cross-node / same-node: %.2f; not received across: %zu\n", rr / lr,
           (size_t)(BURST_N - r->burst));
}

static void latency(gmud_sync *s, listener *l, listener *r, double *out_p99_hop)
{
    char msg[96];
    uint64_t next = bench_now_ns();
    for (size_t k = 1; k <= LAT_N; k++) {
        next += LAT_GAP_US * 1000ULL;
        pace(next);
        snprintf(msg, sizeof msg, "{\"ph\":2,\"k\":%zu,\"t\":%llu}", k,
                 (unsigned long long)bench_now_ns());
        say(s, msg);
    }
    for (int i = 0; i < 30 && (l->lat_n < LAT_N || r->lat_n < LAT_N); i++)
        usleep(100000);
    /* The hop, message by message: R's latency less L's for the same k. */
    static double lv[LAT_N], rv[LAT_N], hop[LAT_N];
    size_t n = 0;
    for (size_t k = 1; k <= LAT_N; k++)
        if (l->lat_us[k] > 0 && r->lat_us[k] > 0) {
            lv[n] = l->lat_us[k];
            rv[n] = r->lat_us[k];
            hop[n] = rv[n] - lv[n];
            n++;
        }
    double l50 = pct(lv, n, 0.5), l99 = pct(lv, n, 0.99);
    double r50 = pct(rv, n, 0.5), r99 = pct(rv, n, 0.99);
    double h50 = pct(hop, n, 0.5), h99 = pct(hop, n, 0.99);
    printf("2. one-way latency, %d messages, one every %d us\n", LAT_N, LAT_GAP_US);
    printf("   %-34s p50 %7.1f us  p99 %7.1f us  (%zu)\n", "same node (baseline)", l50, l99,
           (size_t)l->lat_n);
    printf("   %-34s p50 %7.1f us  p99 %7.1f us  (%zu)\n", "across the cluster", r50, r99,
           (size_t)r->lat_n);
    printf("   added by the Redis hop (R's latency less L's, message by message): p50 %.1f us, "
           "p99 %.1f us (goal p99 <= 2000 us)\n",
           h50, h99);
    *out_p99_hop = h99;
}

/* ---- The floor: Redis pub/sub alone ------------------------------------------- */

typedef struct raw_sub {
    redisContext *c;
    double lat_us[LAT_N];
    size_t n;
} raw_sub;

static void *raw_listen(void *arg)
{
    raw_sub *s = arg;
    while (s->n < LAT_N) {
        redisReply *r = NULL;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK || r == NULL)
            break;
        uint64_t now = bench_now_ns();
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING)
            s->lat_us[s->n++] = (double)(now - strtoull(r->element[2]->str, NULL, 10)) / 1e3;
        freeReplyObject(r);
    }
    return NULL;
}

static void raw_floor(unsigned port)
{
    static raw_sub sub;
    struct timeval tv = {5, 0};
    sub.c = redisConnectWithTimeout("127.0.0.1", (int)port, tv);
    redisContext *pub = redisConnectWithTimeout("127.0.0.1", (int)port, tv);
    if (sub.c == NULL || sub.c->err || pub == NULL || pub->err)
        bench_fail("hiredis connect to %u", port);
    redisSetTimeout(sub.c, tv);
    redisReply *r = redisCommand(sub.c, "SUBSCRIBE floor");
    freeReplyObject(r);
    pthread_t t;
    pthread_create(&t, NULL, raw_listen, &sub);
    uint64_t next = bench_now_ns();
    for (size_t k = 1; k <= LAT_N; k++) {
        next += LAT_GAP_US * 1000ULL;
        pace(next);
        r = redisCommand(pub, "PUBLISH floor %llu", (unsigned long long)bench_now_ns());
        if (r == NULL)
            bench_fail("PUBLISH failed");
        freeReplyObject(r);
    }
    pthread_join(t, NULL);
    double p50 = pct(sub.lat_us, sub.n, 0.5), p99 = pct(sub.lat_us, sub.n, 0.99);
    printf("   floor, PUBLISH to a subscriber with hiredis alone: p50 %.1f us  p99 %.1f us (%zu)\n",
           p50, p99, sub.n);
    redisFree(sub.c);
    redisFree(pub);
}

/* ---- Phase 3: nodes per Redis ------------------------------------------------- */

typedef struct fleet {
    uv_loop_t loop;
    uv_timer_t tick;
    gmud_cluster *node[NODES_MAX];
    size_t k, up, ticks, ticks_max;
    uint64_t delivered, published;
    int linked;
} fleet;

static void fleet_msg(gmud_cluster *c, const gmud_cluster_msg *m, void *user)
{
    (void)c;
    (void)m;
    ((fleet *)user)->delivered++;
}

static void fleet_link(gmud_cluster *c, int up, const gmud_error *why, void *user)
{
    (void)c;
    (void)why;
    fleet *f = user;
    f->up += up ? 1 : (size_t)-1;
}

static void fleet_tick(uv_timer_t *t)
{
    fleet *f = t->data;
    if (!f->linked) {
        if (f->up == f->k && ++f->ticks > 100) { /* a second for every node to meet */
            f->linked = 1;
            f->ticks = 0;
            f->delivered = 0;
            f->published = 0;
        }
        return;
    }
    if (f->ticks++ == f->ticks_max) {
        uv_stop(&f->loop);
        return;
    }
    static const char text[] = "a line of chat about the size players send, some 60 bytes";
    for (size_t i = 0; i < f->k; i++)
        for (int j = 0; j < NODES_RATE / 100; j++)
            f->published +=
                gmud_cluster_publish(f->node[i], "bench", 1, text, sizeof text - 1, 0, NULL) == 0;
}

/* Redis's own CPU seconds (user + system), from INFO cpu. */
static double redis_cpu(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "INFO cpu");
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        bench_fail("INFO cpu failed");
    const char *u = strstr(r->str, "used_cpu_user:"), *y = strstr(r->str, "used_cpu_sys:");
    double cpu = (u ? strtod(u + 14, NULL) : 0) + (y ? strtod(y + 13, NULL) : 0);
    freeReplyObject(r);
    return cpu;
}

typedef struct nodes_point {
    double pub_s, del_s, cpu;
} nodes_point;

static nodes_point nodes_run(size_t k, unsigned port, redisContext *rc)
{
    static fleet f;
    memset(&f, 0, sizeof f);
    f.k = k;
    f.ticks_max = NODES_SECONDS * 100;
    uv_loop_init(&f.loop);
    for (size_t i = 0; i < k; i++) {
        gmud_cluster_config cc;
        gmud_cluster_default_config(&cc);
        char name[48];
        snprintf(name, sizeof name, "k%zu-%zu", k, i);
        cc.port = (uint16_t)port;
        cc.node = name;
        cc.cb.on_message = fleet_msg;
        cc.cb.on_link = fleet_link;
        cc.cb.user = &f;
        gmud_error err;
        if ((f.node[i] = gmud_cluster_create(&f.loop, &cc, &err)) == NULL)
            bench_fail("cluster: %s", err.message);
    }
    uv_timer_init(&f.loop, &f.tick);
    f.tick.data = &f;
    uv_timer_start(&f.tick, fleet_tick, 10, 10);
    /* The CPU is read once the fleet is linked: from the first publish. */
    double cpu0 = 0;
    uint64_t t0 = 0;
    while (!f.linked)
        uv_run(&f.loop, UV_RUN_ONCE);
    cpu0 = redis_cpu(rc);
    t0 = bench_now_ns();
    uv_run(&f.loop, UV_RUN_DEFAULT);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    nodes_point pt = {(double)f.published / secs, (double)f.delivered / secs,
                      (redis_cpu(rc) - cpu0) / secs};
    for (size_t i = 0; i < k; i++)
        gmud_cluster_destroy(f.node[i]);
    uv_close((uv_handle_t *)&f.tick, NULL);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uv_loop_close(&f.loop);
    return pt;
}

static double nodes_per_redis(unsigned port)
{
    static const size_t ks[] = {2, 4, 8, 16};
    nodes_point pts[4];
    struct timeval tv = {5, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", (int)port, tv);
    if (rc == NULL || rc->err)
        bench_fail("hiredis connect to %u", port);
    double c0 = redis_cpu(rc);
    uint64_t t0 = bench_now_ns();
    sleep(1);
    double idle = (redis_cpu(rc) - c0) / ((double)(bench_now_ns() - t0) / 1e9);
    printf("3. nodes per Redis, each node publishing %d messages a second for %d s (Redis idle: "
           "%.2f%% CPU)\n",
           NODES_RATE, NODES_SECONDS, 100 * idle);
    printf("   %5s %12s %14s %12s %12s %14s\n", "nodes", "publishes/s", "deliveries/s",
           "(expected)", "Redis CPU", "us per publish");
    for (size_t i = 0; i < 4; i++) {
        pts[i] = nodes_run(ks[i], port, rc);
        pts[i].cpu -= idle;
        printf("   %5zu %12.0f %14.0f %12.0f %11.1f%% %14.1f\n", ks[i], pts[i].pub_s, pts[i].del_s,
               pts[i].pub_s * (double)(ks[i] - 1), 100 * pts[i].cpu,
               1e6 * pts[i].cpu / pts[i].pub_s);
    }
    redisFree(rc);
    return pts[3].cpu / pts[3].pub_s; /* Redis seconds per publish at 16 nodes */
}

/* ---- Phase 4: Redis's ceiling ----------------------------------------------------- */

enum { CAP_PAYLOAD = 150, CAP_BATCH = 100, CAP_WINDOW = 8, CAP_SECONDS = 2 };

typedef struct cap_subs {
    int fd[64];
    size_t k;
    volatile int stop;
    uint64_t bytes;
} cap_subs;

/* Reads and discards what Redis pushes to k subscribers, counting bytes. */
static void *cap_read(void *arg)
{
    cap_subs *c = arg;
    static uint8_t buf[1 << 18];
    struct pollfd pf[64];
    for (size_t i = 0; i < c->k; i++)
        pf[i] = (struct pollfd){.fd = c->fd[i], .events = POLLIN};
    while (!c->stop) {
        if (poll(pf, c->k, 100) <= 0)
            continue;
        for (size_t i = 0; i < c->k; i++) {
            if (!(pf[i].revents & POLLIN))
                continue;
            ssize_t n = recv(pf[i].fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0)
                c->bytes += (uint64_t)n;
        }
    }
    return NULL;
}

static size_t resp_publish(char *out, size_t cap, const char *chan, const char *payload)
{
    int n = snprintf(out, cap, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(chan),
                     chan, strlen(payload), payload);
    return (size_t)n;
}

/* Publishes as fast as Redis acknowledges, k subscribers listening: the
 * publishes per second and Redis's CPU share. */
static void cap_run(unsigned port, redisContext *rc, size_t k, double *pub_s, double *cpu)
{
    static cap_subs subs;
    memset(&subs, 0, sizeof subs);
    subs.k = k;
    static const char sub_cmd[] = "*2\r\n$9\r\nSUBSCRIBE\r\n$8\r\ngmud:cap\r\n";
    char ack[64];
    for (size_t i = 0; i < k; i++) {
        subs.fd[i] = bench_connect((uint16_t)port, 1);
        bench_write_all(subs.fd[i], sub_cmd, sizeof sub_cmd - 1);
        ssize_t n = recv(subs.fd[i], ack, sizeof ack, 0); /* the subscribe confirmation */
        (void)n;
    }
    char payload[CAP_PAYLOAD + 1];
    memset(payload, 'x', CAP_PAYLOAD);
    payload[CAP_PAYLOAD] = '\0';
    static char batch[CAP_BATCH * 256];
    size_t one = resp_publish(batch, 256, "gmud:cap", payload), len = 0;
    for (size_t i = 0; i < CAP_BATCH; i++)
        len += resp_publish(batch + len, sizeof batch - len, "gmud:cap", payload);
    (void)one;
    pthread_t t;
    pthread_create(&t, NULL, cap_read, &subs);
    int fd = bench_connect((uint16_t)port, 1);
    double c0 = redis_cpu(rc);
    uint64_t t0 = bench_now_ns(), end = t0 + CAP_SECONDS * 1000000000ULL;
    uint64_t sent = 0, acked = 0;
    static uint8_t in[1 << 16];
    while (bench_now_ns() < end || acked < sent) {
        if (bench_now_ns() < end && sent - acked < CAP_WINDOW * CAP_BATCH) {
            bench_write_all(fd, batch, len);
            sent += CAP_BATCH;
            continue;
        }
        ssize_t n = recv(fd, in, sizeof in, 0);
        if (n <= 0)
            bench_fail("Redis closed the publisher");
        for (ssize_t i = 0; i < n; i++)
            acked += in[i] == '\n'; /* one ":N\r\n" a publish */
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    *cpu = (redis_cpu(rc) - c0) / secs;
    *pub_s = (double)acked / secs;
    usleep(200000);
    subs.stop = 1;
    pthread_join(t, NULL);
    close(fd);
    for (size_t i = 0; i < k; i++)
        close(subs.fd[i]);
}

/* The node count at which Redis is 80% busy, from its ceiling: a second of
 * Redis serves P(k) publishes to k subscribers, so a publish costs
 * 1 / P(k) = a + b k; k nodes each publishing r a second need
 * k r (a + b k) <= 0.8. */
static double nodes_at(double r, double a, double b)
{
    double q = r * b, p = r * a;
    return q > 0 ? (-p + sqrt(p * p + 4 * q * 0.8)) / (2 * q) : p > 0 ? 0.8 / p : 0;
}

static void ceiling(unsigned port, double unbatched)
{
    static const size_t ks[] = {2, 8, 32};
    double x[3], y[3];
    struct timeval tv = {5, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", (int)port, tv);
    if (rc == NULL || rc->err)
        bench_fail("hiredis connect to %u", port);
    printf("4. Redis's ceiling: PUBLISH of %d-byte messages, pipelined, as fast as Redis "
           "answers\n",
           CAP_PAYLOAD);
    printf("   %12s %12s %14s %10s\n", "subscribers", "publishes/s", "deliveries/s", "Redis CPU");
    for (size_t i = 0; i < 3; i++) {
        double pub, cpu;
        cap_run(port, rc, ks[i], &pub, &cpu);
        printf("   %12zu %12.0f %14.0f %9.0f%%\n", ks[i], pub, pub * (double)ks[i], 100 * cpu);
        x[i] = (double)ks[i];
        y[i] = cpu / pub; /* Redis seconds per publish */
    }
    redisFree(rc);
    double mx = (x[0] + x[1] + x[2]) / 3, my = (y[0] + y[1] + y[2]) / 3, sxy = 0, sxx = 0;
    for (size_t i = 0; i < 3; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
    }
    double b = sxy / sxx, a = my - b * mx;
    printf("   fit: a publish costs Redis %.2f us + %.3f us per subscribed node\n", a * 1e6,
           b * 1e6);
    /* Pipelined publishes are Redis's best case; gmud's, one by one at a
     * light load (3.), its worst: the estimate is given for both. */
    /* 3.'s cost at 16 nodes, its fan-out taken off: what a publish costs
     * Redis when it comes alone. */
    double alone = unbatched - 16 * b > a ? unbatched - 16 * b : a;
    printf("   Redis 80%% busy at about this many nodes (publishes one by one, at the %.2f us "
           "3. shows\n   less its fan-out, to batched as above):\n",
           alone * 1e6);
    static const double rates[] = {100, 1000, 10000};
    for (size_t i = 0; i < 3; i++)
        printf("   each node sending %5.0f cross-node messages/s: %4.0f to %4.0f nodes\n",
               rates[i], nodes_at(rates[i], alone, b), nodes_at(rates[i], a, b));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/gmud-server\n", argv[0]);
        return 2;
    }
    bench_ignore_sigpipe();
    bench_time_bound(180);
    bench_print_load();
    test_redis redis = {0, 0};
    if (test_redis_start(&redis) != 0)
        bench_fail("redis-server did not start (scripts/install-deps.sh installs it)");
    unsigned p1 = test_redis_free_port(), p2 = test_redis_free_port();
    pid_t n1 = start_node(argv[1], "n1", p1, redis.port);
    pid_t n2 = start_node(argv[1], "n2", p2, redis.port);
    usleep(300000);
    static listener l, r;
    l.s = player(p1);
    r.s = player(p2);
    gmud_sync *s = player(p1);
    pthread_create(&l.thread, NULL, listen_loop, &l);
    pthread_create(&r.thread, NULL, listen_loop, &r);
    warm_up(s, &l, &r);
    burst(s, &l, &r);
    double hop99;
    latency(s, &l, &r, &hop99);
    raw_floor(redis.port);
    l.stop = r.stop = 1;
    pthread_join(l.thread, NULL);
    pthread_join(r.thread, NULL);
    gmud_slice m;
    gmud_sync *all[] = {s, l.s, r.s};
    for (size_t i = 0; i < 3; i++)
        while (gmud_sync_recv(all[i], 200, &m, NULL) == 1)
            ; /* what is left: read, so that the close is clean */
    gmud_sync_destroy(s);
    gmud_sync_destroy(l.s);
    gmud_sync_destroy(r.s);
    kill(n1, SIGTERM);
    kill(n2, SIGTERM);
    bench_wait(n1, 5000);
    bench_wait(n2, 5000);
    double unbatched = nodes_per_redis(redis.port);
    ceiling(redis.port, unbatched);
    test_redis_stop(&redis);
    return 0;
}
