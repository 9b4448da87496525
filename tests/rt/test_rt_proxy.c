/* A proxy between the event client and the server splits and merges the
 * byte stream at random points, both ways: every framing must deliver the
 * same messages in the same order. The proxy is a thread with blocking
 * sockets and poll(); client and server share the loop in this thread. */
#include "rt_util.h"

enum { MSGS = 400, BURST = 25 };

/* xorshift32: a fixed seed per run, so a failure can be replayed. */
static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* ---- The proxy -------------------------------------------------------- */

typedef struct proxy_t {
    rt_peer rt;             /* rt.listen_fd: where the client comes in */
    int upstream_port;
    uint32_t seed;
    size_t forwarded;
    int splits;
} proxy_t;

typedef struct side_t {
    int from, to;
    uint8_t buf[65536];
    size_t len;
    int eof;
} side_t;

/* Sends buf in random pieces, one send() each, sometimes pausing so the
 * pieces arrive in separate reads. */
static int flush_split(proxy_t *p, side_t *s)
{
    size_t off = 0;
    while (off < s->len) {
        size_t piece = 1 + next_rand(&p->seed) % 700;
        if (piece > s->len - off)
            piece = s->len - off;
        if (rt_send_all(s->to, s->buf + off, piece) != 0)
            return -1;
        off += piece;
        p->splits++;
        if (next_rand(&p->seed) % 4 == 0)
            rt_sleep_ms(1);
    }
    p->forwarded += s->len;
    s->len = 0;
    return 0;
}

static void *proxy_main(void *arg)
{
    proxy_t *p = arg;
    int down = rt_accept_within(p->rt.listen_fd, 3000);
    int up = rt_connect("127.0.0.1", p->upstream_port, 0);
    static side_t sides[2];
    sides[0] = (side_t){.from = down, .to = up};
    sides[1] = (side_t){.from = up, .to = down};
    int64_t deadline = rt_now_ms() + 8000;
    while (down >= 0 && up >= 0 && !(sides[0].eof && sides[1].eof) &&
           rt_now_ms() < deadline) {
        struct pollfd pf[2] = {{down, POLLIN, 0}, {up, POLLIN, 0}};
        int n = poll(pf, 2, 2);
        for (int i = 0; i < 2; i++) {
            side_t *s = &sides[i];
            if (n == 0 || s->eof) { /* quiet: let merged bytes go */
                flush_split(p, s);
                continue;
            }
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            size_t want = 1 + next_rand(&p->seed) % 2048;
            if (want > sizeof s->buf - s->len)
                want = sizeof s->buf - s->len;
            ssize_t r = want ? recv(s->from, s->buf + s->len, want, 0) : 0;
            if (r <= 0 && want) {
                s->eof = 1;
                flush_split(p, s);
                shutdown(s->to, SHUT_WR);
                continue;
            }
            s->len += (size_t)r;
            /* Half the time hold the bytes back, to merge with the next. */
            if (next_rand(&p->seed) % 2 == 0 || s->len > 32768)
                flush_split(p, s);
        }
    }
    rt_close_fd(down);
    rt_close_fd(up);
    return NULL;
}

/* ---- Client and server ------------------------------------------------ */

typedef struct run_t {
    gmud_client *cli;
    gmud_payload payload;
    size_t max_len;
    uint32_t seed;
    char *msgs[MSGS];
    int total;              /* messages to send: MSGS, or fewer */
    int per_tick;           /* sent a millisecond */
    int sent;
    int got;
    int bad;
    int warnings;           /* the server's rate_limited packets */
    int up;                 /* on_connect: welcomed, when sessions are on */
    int closed;
    gmud_timer *timer;
} run_t;

static void srv_echo(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)u;
    if (j != NULL)
        gmud_conn_send_json(c, j, NULL);
    else
        gmud_conn_send(c, d, n, NULL);
}

/* Message i: printable, no newline, no trailing zero; random length. */
static char *make_msg(run_t *r, int i)
{
    size_t len = 1 + next_rand(&r->seed) % r->max_len;
    char *m = malloc(len + 32);
    if (r->payload == GMUD_PAYLOAD_JSON) {
        int n = snprintf(m, len + 32, "{\"i\":%d,\"s\":\"", i);
        size_t body = len > 32 ? len - 32 : 1;
        for (size_t k = 0; k < body; k++)
            m[n + (int)k] = (char)('a' + next_rand(&r->seed) % 26);
        strcpy(m + n + body, "\"}");
        return m;
    }
    for (size_t k = 0; k < len; k++)
        m[k] = (char)(' ' + 1 + next_rand(&r->seed) % 90);
    m[len] = '\0';
    return m;
}

static void send_burst(gmud_timer *t, void *u)
{
    run_t *r = u;
    gmud_conn *c = gmud_client_conn(r->cli);
    if (!r->up)
        return;
    for (int k = 0; k < r->per_tick && r->sent < r->total && c != NULL; k++) {
        r->msgs[r->sent] = make_msg(r, r->sent);
        gmud_conn_send(c, r->msgs[r->sent], strlen(r->msgs[r->sent]), NULL);
        r->sent++;
    }
    if (r->sent == r->total) {
        gmud_timer_destroy(t);
        r->timer = NULL;
    }
}

static void cli_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    run_t *r = u;
    gmud_error e;
    if (j != NULL ? gmud_json_error_packet(j, &e) : gmud_text_error_packet(d, n, &e)) {
        r->warnings += e.code == GMUD_ERR_RATE_LIMITED;
        r->bad += e.code != GMUD_ERR_RATE_LIMITED;
        return;
    }
    const char *want = r->got < r->sent ? r->msgs[r->got] : "";
    if (n != strlen(want) || memcmp(d, want, n) != 0)
        r->bad++;
    if (++r->got == r->total)
        gmud_conn_close(c);
}

static void cli_connect(gmud_conn *c, void *u)
{
    (void)c;
    ((run_t *)u)->up = 1;
}

static void cli_close(gmud_conn *c, gmud_close_reason why, const gmud_error *d, void *u)
{
    (void)c;
    (void)why;
    if (d != NULL)
        fprintf(stderr, "client closed: %s\n", d->message);
    ((run_t *)u)->closed = 1;
}

/* total messages, per_tick of them a millisecond, through the proxy and
 * back; shaped: with the server's default rate limits (and sessions, as a
 * server has them by default, where the framing can carry them), else
 * with none. */
static void run(const char *framing, gmud_payload payload, size_t max_len, uint32_t seed,
                int total, int per_tick, int shaped)
{
    rt_fixture fx;
    rt_fx_init(&fx, framing, payload);
    if (shaped && strcmp(framing, "line") != 0)
        fx.cfg.conn.session.mode = GMUD_SESSION_DEFAULT;
    if (!shaped)
        rt_no_rate_limits(&fx.cfg);
    rt_fx_serve(&fx, (gmud_callbacks){.on_message = srv_echo});
    proxy_t p;
    memset(&p, 0, sizeof p);
    p.upstream_port = fx.port;
    p.seed = seed;
    rt_fx_listen(&fx); /* the proxy's: from here on fx.port, where the client goes */
    rt_fx_peer(&fx, &p.rt, proxy_main, &p);

    run_t r;
    memset(&r, 0, sizeof r);
    r.payload = payload;
    r.max_len = max_len;
    r.seed = seed * 7 + 1;
    r.total = total;
    r.per_tick = per_tick;
    r.cli = rt_fx_client(&fx, NULL,
                         (gmud_callbacks){.on_connect = cli_connect, .on_message = cli_message,
                                          .on_close = cli_close,
                                          .user = &r});
    r.timer = gmud_timer_create(&fx.loop, 1, 1, send_burst, &r);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &r.closed, 15000));
    gmud_timer_destroy(r.timer);
    rt_fx_join(&fx, &p.rt, 3000);
    CHECK_EQ_INT(r.got, total);
    CHECK_EQ_INT(r.bad, 0);
    CHECK(p.splits > total / 4); /* the stream really was cut up */
    gmud_stats st = rt_fx_stats(&fx);
    if (shaped) /* over the burst: slowed, not cut, and told */
        CHECK(st.rate_held > 0 && st.rate_dropped == 0 && r.warnings >= 1);
    else
        CHECK_EQ_INT(r.warnings, 0);
    printf("proxy %s/%s%s: %d messages through %d random pieces (%zu bytes), %llu holds\n",
           framing, payload == GMUD_PAYLOAD_JSON ? "json" : "text", shaped ? " shaped" : "",
           r.got, p.splits, p.forwarded, (unsigned long long)st.rate_held);
    for (int i = 0; i < r.sent; i++)
        free(r.msgs[i]);
    rt_fx_end(&fx);
}

static void run_proxy(const char *framing, gmud_payload payload, size_t max_len, uint32_t seed)
{
    run(framing, payload, max_len, seed, MSGS, BURST, 0);
}

int main(void)
{
    rt_ignore_sigpipe();
    run_proxy("line", GMUD_PAYLOAD_TEXT, 600, 1);
    run_proxy("fixed:300", GMUD_PAYLOAD_TEXT, 300, 2);
    run_proxy("length", GMUD_PAYLOAD_TEXT, 3000, 3);
    run_proxy("gmud", GMUD_PAYLOAD_TEXT, 3000, 4);
    run_proxy("gmud", GMUD_PAYLOAD_JSON, 1500, 5);
    run_proxy("line", GMUD_PAYLOAD_JSON, 500, 6);
    /* Issue 10's burst: 300 at once against the default limits (a burst of
     * 200, then 100 a second): every one back, whole and in order. */
    run("gmud", GMUD_PAYLOAD_JSON, 1500, 7, 300, 300, 1);
    run("line", GMUD_PAYLOAD_TEXT, 600, 8, 300, 300, 1);
    return check_report("test_rt_proxy");
}
