/* Rate shaping over real loopback sockets (gmud_limits.rate_policy
 * GMUD_RATE_SHAPE, the default): a sender over its rates is slowed, never
 * cut. The server (an echo, text payload, gmud framing, sessions off) runs
 * on the loop in this thread; each peer is a raw socket in a peer thread
 * that numbers its messages, so that a gap or a reordering is seen in the
 * echoes. The unit tables of the engine's holds are in test_endpoint. */
#include <fcntl.h>
#include <poll.h>

#include "rt_util.h"

enum { MSG_LEN = 8, FRAME_LEN = 6 + MSG_LEN };

/* Message i: "m%07d", eight bytes. */
static size_t put_msg(uint8_t *out, int i)
{
    char text[16];
    snprintf(text, sizeof text, "m%07d", i % 10000000);
    memcpy(out, "GMUD", 4);
    out[4] = MSG_LEN;
    out[5] = 0;
    memcpy(out + 6, text, MSG_LEN);
    return FRAME_LEN;
}

static const char warn_head[] = "error rate_limited: ";
static const char drop_head[] = "error rate_dropped: "; /* the drop policy's */

/* What a peer saw: echoes (in order, or not), rate_limited packets, the
 * last of them, and when the echoes and the end came. */
typedef struct tally {
    int echoes;
    int out_of_order;
    int warnings;
    int other;
    int eof;
    char last_error[256];
    int64_t last_echo_ms;
    int64_t eof_ms;
} tally;

/* One frame read by the peer into t: echo number t->echoes expected. */
static void take(tally *t, const uint8_t *buf, size_t n, int64_t t0)
{
    char want[16];
    snprintf(want, sizeof want, "m%07d", t->echoes % 10000000);
    if (n == MSG_LEN && memcmp(buf, want, MSG_LEN) == 0) {
        t->echoes++;
        t->last_echo_ms = rt_now_ms() - t0;
    } else if ((n >= sizeof warn_head - 1 && memcmp(buf, warn_head, sizeof warn_head - 1) == 0) ||
               (n >= sizeof drop_head - 1 && memcmp(buf, drop_head, sizeof drop_head - 1) == 0)) {
        t->warnings++;
        snprintf(t->last_error, sizeof t->last_error, "%.*s", (int)n, (const char *)buf);
    } else if (n == MSG_LEN && buf[0] == 'm') {
        t->out_of_order++;
    } else {
        t->other++;
    }
}

/* Reads frames on fd until want echoes, the end of stream, or ms. */
static void read_until(int fd, tally *t, int want, int ms, int64_t t0)
{
    int64_t end = rt_now_ms() + ms;
    while (t->echoes < want && !t->eof && rt_now_ms() < end) {
        uint8_t buf[1024];
        size_t n = 0;
        int rc = rt_recv_frame(fd, 0, buf, sizeof buf, &n, (int)(end - rt_now_ms()));
        if (rc == 1)
            take(t, buf, n, t0);
        else if (rc == 0 || rc == -1) {
            t->eof = 1;
            t->eof_ms = rt_now_ms() - t0;
        }
    }
}

/* ---- The server -------------------------------------------------------- */

typedef struct srv_t {
    int closes;
    int reason;
} srv_t;

static void srv_echo(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)j;
    (void)u;
    gmud_conn_send(c, d, n, NULL);
}

static void srv_close(gmud_conn *c, gmud_close_reason why, const gmud_error *d, void *u)
{
    (void)c;
    (void)d;
    srv_t *s = u;
    s->closes++;
    s->reason = (int)why;
}

static void serve(rt_fixture *fx, srv_t *s)
{
    memset(s, 0, sizeof *s);
    s->reason = -1;
    rt_fx_serve(fx, (gmud_callbacks){.on_message = srv_echo, .on_close = srv_close, .user = s});
}

/* ---- 1. A burst over the default limits -------------------------------- */

enum { BURST_MSGS = 300 };

typedef struct burst_peer {
    rt_peer rt;
    tally t;
    int msgs;
    int want;           /* echoes to wait for; 0: msgs */
} burst_peer;

/* Writes all its messages at once, then reads every echo. */
static void *peer_burst(void *arg)
{
    burst_peer *p = arg;
    int fd = rt_peer_raw(&p->rt, NULL, 0, NULL, 0);
    if (RT_PCHECK(&p->rt, fd >= 0)) {
        static uint8_t out[BURST_MSGS * FRAME_LEN];
        size_t n = 0;
        for (int i = 0; i < p->msgs; i++)
            n += put_msg(out + n, i);
        int64_t t0 = rt_now_ms();
        RT_PCHECK(&p->rt, rt_send_all(fd, out, n) == 0);
        int want = p->want != 0 ? p->want : p->msgs;
        read_until(fd, &p->t, want, 8000, t0);
        read_until(fd, &p->t, want + 1, 200, t0); /* and nothing more */
        close(fd);
    }
    return NULL;
}

/* The case: 300 messages in one write against the defaults (100
 * a second, a burst of 200). The 200 pass at once, the other 100 are held
 * and let through as tokens come, about a second; every one is echoed, in
 * order, none dropped, the peer warned (once, twice if the second warning
 * falls due) and not closed. */
static void test_burst(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    CHECK_EQ_INT(fx.cfg.conn.limits.rate_policy, GMUD_RATE_SHAPE);
    srv_t s;
    serve(&fx, &s);
    burst_peer p;
    memset(&p, 0, sizeof p);
    p.msgs = BURST_MSGS;
    rt_fx_run_peer(&fx, &p.rt, peer_burst, &p, 10000);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(p.t.echoes, BURST_MSGS);
    CHECK_EQ_INT(p.t.out_of_order, 0);
    CHECK_EQ_INT(p.t.other, 0);
    CHECK(p.t.warnings >= 1 && p.t.warnings <= 2);
    CHECK_CONTAINS(p.t.last_error, "nothing dropped");
    /* 100 over the burst at 100 a second: the last cannot be sooner. */
    CHECK(p.t.last_echo_ms >= 900);
    CHECK(st.messages_in == BURST_MSGS);
    CHECK(st.rate_dropped == 0);
    CHECK(st.rate_held >= 1);
    CHECK(st.closes[GMUD_CLOSE_RATE_LIMITED] == 0);
    CHECK(rt_log_find("rate", "slowed down, nothing dropped") != NULL);
    printf("burst: %d messages back in order in %lld ms, %llu holds, %d warnings\n",
           p.t.echoes, (long long)p.t.last_echo_ms, (unsigned long long)st.rate_held,
           p.t.warnings);
    rt_fx_end(&fx);
}

/* ---- 2. A sender over its rate for good -------------------------------- */

typedef struct flood_peer {
    rt_peer rt;
    tally t;
    int sent;
} flood_peer;

/* Sends numbered messages as fast as the socket takes them (non-blocking:
 * the server stops reading, and the kernel's buffers fill) while reading
 * what comes back, until the server closes or 6 s. */
static void *peer_flood(void *arg)
{
    flood_peer *p = arg;
    int fd = rt_peer_raw(&p->rt, NULL, 0, NULL, 0);
    if (!RT_PCHECK(&p->rt, fd >= 0))
        return NULL;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int64_t t0 = rt_now_ms();
    uint8_t out[64 * FRAME_LEN], in[4096];
    size_t out_len = 0, out_off = 0, in_len = 0;
    while (!p->t.eof && rt_now_ms() - t0 < 6000) {
        if (out_off == out_len) {
            out_len = out_off = 0;
            for (int k = 0; k < 64; k++)
                out_len += put_msg(out + out_len, p->sent++);
        }
        ssize_t w = send(fd, out + out_off, out_len - out_off, MSG_NOSIGNAL);
        if (w > 0)
            out_off += (size_t)w;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, w > 0 ? 0 : 5) <= 0)
            continue;
        ssize_t r = recv(fd, in + in_len, sizeof in - in_len, 0);
        if (r <= 0) {
            p->t.eof = 1;
            p->t.eof_ms = rt_now_ms() - t0;
            break;
        }
        in_len += (size_t)r;
        size_t off = 0;
        while (in_len - off >= 6) {
            size_t n = (size_t)in[off + 4] | (size_t)in[off + 5] << 8;
            if (in_len - off < 6 + n)
                break;
            take(&p->t, in + off + 6, n, t0);
            off += 6 + n;
        }
        memmove(in, in + off, in_len - off);
        in_len -= off;
    }
    close(fd);
    return NULL;
}

/* The default rates (100 messages a second, 200 at once), closed after a
 * second over them:
 * what was let through is every message up to a point, in order (none
 * dropped in between), about a second's worth; the close's own
 * rate_limited packet says how long; and what the server held for the
 * connection stayed within a 4 KiB read and a frame, though one 64 KiB
 * read would carry far more than the burst (the kernel holds the rest). */
static void test_flood(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    fx.cfg.conn.limits.rate_close_ms = 1000; /* the default rates: 100/s, 200 at once */
    srv_t s;
    serve(&fx, &s);
    flood_peer p;
    memset(&p, 0, sizeof p);
    rt_fx_run_peer(&fx, &p.rt, peer_flood, &p, 10000);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &s.closes, 2000));
    gmud_stats st = rt_fx_stats(&fx);
    CHECK(p.t.eof);
    CHECK_EQ_INT(s.reason, GMUD_CLOSE_RATE_LIMITED);
    CHECK_EQ_INT(p.t.out_of_order, 0);
    CHECK_EQ_INT(p.t.other, 0);
    /* 200 at once, then 100 a second for the second before the close. */
    CHECK(p.t.echoes >= 250 && p.t.echoes <= 400);
    CHECK(p.t.warnings >= 2); /* the warning, then the close's */
    CHECK_CONTAINS(p.t.last_error, "over the rate limit for");
    CHECK(p.t.eof_ms >= 900 && p.t.eof_ms < 4000);
    CHECK(st.rate_dropped == 0);
    CHECK(st.messages_in == (uint64_t)p.t.echoes);
    /* Shaped reads are 4 KiB: a hold keeps a frame and the rest of one of
     * those; beside it, echoes not yet written (64 KiB reads gave 64 KiB). */
    CHECK(st.buffered_peak <= 8192);
    CHECK(st.buffered_total == 0);
    printf("flood: %d sent, %d let through in order, closed after %lld ms; held at most %llu "
           "bytes\n",
           p.sent, p.t.echoes, (long long)p.t.eof_ms, (unsigned long long)st.buffered_peak);
    rt_fx_end(&fx);
}

/* ---- 3. Held is not idle ----------------------------------------------- */

/* 5 a second, a burst of 1, and timeouts far shorter than the wait: six
 * messages at once take a second to pass, and neither the frame timeout
 * nor the idle timeout closes the connection meanwhile (the server stopped
 * reading, not the peer). The held bytes count in the buffer budget. */
static void test_clocks(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    fx.cfg.conn.limits.msg_rate = 5;
    fx.cfg.conn.limits.msg_burst = 1;
    fx.cfg.conn.limits.rate_close_ms = 5000;
    fx.cfg.conn.limits.frame_timeout_ms = 150;
    fx.cfg.conn.limits.idle_timeout_ms = 250;
    fx.cfg.conn.limits.sweep_ms = 20;
    srv_t s;
    serve(&fx, &s);
    burst_peer p;
    memset(&p, 0, sizeof p);
    p.msgs = 6;
    rt_fx_run_peer(&fx, &p.rt, peer_burst, &p, 5000);
    CHECK_EQ_INT(p.t.echoes, 6);
    CHECK_EQ_INT(p.t.eof, 0);
    CHECK(p.t.last_echo_ms >= 900);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &s.closes, 2000));
    CHECK_EQ_INT(s.reason, GMUD_CLOSE_PEER);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK(st.closes[GMUD_CLOSE_FRAME_TIMEOUT] == 0 && st.closes[GMUD_CLOSE_IDLE_TIMEOUT] == 0);
    /* Four frames held whole behind the first held one's payload. */
    CHECK(st.buffered_peak >= 4 * FRAME_LEN + MSG_LEN);
    rt_fx_end(&fx);
}

/* ---- 4. Ends while held ------------------------------------------------ */

static void *peer_hold_then_wait(void *arg)
{
    burst_peer *p = arg;
    int fd = rt_peer_raw(&p->rt, NULL, 0, NULL, 0);
    if (RT_PCHECK(&p->rt, fd >= 0)) {
        uint8_t out[10 * FRAME_LEN];
        size_t n = 0;
        for (int i = 0; i < 10; i++)
            n += put_msg(out + n, i);
        RT_PCHECK(&p->rt, rt_send_all(fd, out, n) == 0);
        read_until(fd, &p->t, 1, 2000, rt_now_ms());
        atomic_store(&p->rt.ready, 1);
        read_until(fd, &p->t, 10, 3000, rt_now_ms()); /* until the server goes */
        close(fd);
    }
    return NULL;
}

static int one_held(void *arg)
{
    gmud_stats st;
    gmud_server_stats(arg, &st);
    return st.rate_held > 0;
}

/* A connection holding input when the server shuts down, or is destroyed
 * outright: its timer and buffer go with it (the sanitizers and the
 * fixture's check of what is left say so), and the peer sees the end. */
static void test_end_while_held(int destroy)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    fx.cfg.conn.limits.msg_rate = 1;
    fx.cfg.conn.limits.msg_burst = 1;
    srv_t s;
    serve(&fx, &s);
    burst_peer p;
    memset(&p, 0, sizeof p);
    rt_fx_peer(&fx, &p.rt, peer_hold_then_wait, &p);
    CHECK(rt_run_until(&fx.loop, rt_flag, &p.rt.ready, 3000));
    CHECK(rt_run_until(&fx.loop, one_held, fx.srv, 2000));
    if (destroy)
        rt_fx_server_destroy(&fx);
    else
        rt_fx_server_end(&fx);
    rt_fx_join(&fx, &p.rt, 5000);
    CHECK(p.t.eof);
    CHECK(p.t.echoes >= 1 && p.t.echoes < 10);
    rt_fx_end(&fx);
}

/* ---- 5. Dropping, when asked ------------------------------------------- */

/* --rate-policy drop keeps the old behaviour: what the buckets cannot pay
 * for is dropped (counted), nothing is held. */
static void test_drop_policy(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    fx.cfg.conn.limits.rate_policy = GMUD_RATE_DROP;
    fx.cfg.conn.limits.msg_rate = 10;
    fx.cfg.conn.limits.msg_burst = 20;
    srv_t s;
    serve(&fx, &s);
    burst_peer p;
    memset(&p, 0, sizeof p);
    p.msgs = 30;
    p.want = 20;
    rt_fx_run_peer(&fx, &p.rt, peer_burst, &p, 5000);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(p.t.echoes, 20);
    CHECK(st.rate_dropped == 10);
    CHECK(st.rate_held == 0);
    CHECK_CONTAINS(p.t.last_error, "messages are dropped");
    CHECK(strncmp(p.t.last_error, drop_head, sizeof drop_head - 1) == 0); /* its own code */
    rt_fx_end(&fx);
}

int main(void)
{
    rt_ignore_sigpipe();
    test_burst();
    test_flood();
    test_clocks();
    test_end_while_held(0);
    test_end_while_held(1);
    test_drop_policy();
    return check_report("test_shape");
}
