/* Spam, over real loopback sockets: one client sends valid frames as fast as
 * it can while ten honest clients do paced echo round trips. The honest
 * clients' p99 latency with the spammer stays within 2x of their p99
 * without it; the spammer is throttled (held and not read while its
 * buckets refill, under the default shaping; its packets dropped under
 * the drop policy; a rate_limited warning sent back either way), then
 * closed as "rate limited". Both policies are run.
 *
 * Threads: the server's loop runs here; a driver thread runs the honest
 * clients and the phases; the spammer has a thread of its own. The ten
 * honest clients are plain sockets multiplexed with poll() in the driver
 * thread rather than ten gmud_sync threads: on a 2-core machine, with the
 * spammer and the server each keeping a core busy, ten more threads would
 * measure the scheduler's run queue more than the server; one thread
 * waking per reply adds the least noise of our own.
 *
 * Noise: an attempt is a baseline phase then a phase under spam, back to
 * back, so both see the same machine; up to ATTEMPTS are run and the test
 * passes if one of them meets the bound. Every number goes to stderr. */
#include <fcntl.h>

#include "rt_util.h"

enum {
    HONEST = 10,
    ROUNDS = 200,         /* round trips per honest client per phase */
    PERIOD_US = 5000,     /* each honest client: one round trip every 5 ms */
    PAYLOAD = 64,         /* bytes of every message, honest or spam */
    /* Honest clients send 200 messages/s each, over the default 100/s: the
     * message bucket is raised so that they stay well under it (half of
     * it) while the spammer, at hundreds of thousands a second, is far
     * over. The byte bucket keeps its default (256 KiB/s against 12.8 KB/s
     * of honest traffic). */
    MSG_RATE = 400,
    MSG_BURST = 800,
    /* Long enough that a phase under spam (about 1 s) ends before the
     * close, short enough that every attempt sees its spammer closed. */
    RATE_CLOSE_MS = 2000,
    /* The baseline p99 is taken as at least 2 ms, so the bound is at least
     * 4 ms. The attacker, the server and the ten clients share the test
     * machine's cores (two, on the machine this was written on, busy with
     * other builds): there the baseline p99 alone ranged from 0.3 to 6.6 ms
     * between runs, a scheduler's noise, not the server's. A server that
     * lets the flood through still fails by far: reading and dropping it
     * at line rate gave an honest p99 of 12 to 40 ms, with rate limits
     * off 36 to 96 ms. */
    FLOOR_US = 2000,
    /* The floor must not hide a server that is slower all through: the
     * median is held to 2x as well, with a floor of 0.5 ms. Noise barely
     * moves it (0.08 to 0.25 ms without spam here, 0.4 ms under ASan),
     * while reading the flood at line rate took it to 3 to 12 ms. */
    P50_FLOOR_US = 500,
    ATTEMPTS = 3,
    SPAM_BATCH = 1024,    /* frames per send buffer of the spammer */
    FLOOD_BYTES = 1 << 20, /* the spammer's bytes before measuring: 15000 frames */
    PHASE_MS = 6000,      /* a phase gives up after this */
    SPAM_MAX_MS = 10000   /* a spammer gives up after this */
};

/* ---- The server (this thread) ---------------------------------------- */

/* Who a server-side connection is: honest, or the spammer of an attempt. */
enum { ROLE_HONEST = 1, ROLE_SPAM = 2 }; /* ROLE_SPAM + attempt */

typedef struct srv_t {
    atomic_int connects;
    atomic_int attempt;         /* set by the driver before each spammer */
    atomic_int ending;          /* the driver is closing the honest clients */
    atomic_int spam_reason[ATTEMPTS]; /* close reason + 1, 0 while open */
    int honest_rejects;
    int honest_early_closes;
    int spam_rejects[ATTEMPTS];
} srv_t;

static intptr_t role_of(gmud_conn *c)
{
    return (intptr_t)gmud_conn_data(c);
}

static void s_connect(gmud_conn *c, void *u)
{
    srv_t *s = u;
    int n = atomic_load(&s->connects);
    intptr_t role = n < HONEST ? ROLE_HONEST : ROLE_SPAM + atomic_load(&s->attempt);
    gmud_conn_set_data(c, (void *)role);
    atomic_store(&s->connects, n + 1);
}

static void s_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)j;
    (void)u;
    gmud_conn_send(c, d, n, NULL); /* the echo application */
}

static void s_reject(gmud_conn *c, const gmud_error *why, void *u)
{
    (void)why;
    srv_t *s = u;
    intptr_t role = role_of(c);
    if (role == ROLE_HONEST)
        s->honest_rejects++;
    else if (role >= ROLE_SPAM && role < ROLE_SPAM + ATTEMPTS)
        s->spam_rejects[role - ROLE_SPAM]++;
}

static void s_close(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *u)
{
    (void)d;
    srv_t *s = u;
    intptr_t role = role_of(c);
    if (role == ROLE_HONEST && !atomic_load(&s->ending))
        s->honest_early_closes++;
    else if (role >= ROLE_SPAM && role < ROLE_SPAM + ATTEMPTS)
        atomic_store(&s->spam_reason[role - ROLE_SPAM], (int)r + 1);
}

/* ---- Messages --------------------------------------------------------- */

/* A JSON object of exactly PAYLOAD bytes naming client c's round n. */
static void make_payload(uint8_t *out, int c, int n)
{
    int h = snprintf((char *)out, PAYLOAD, "{\"c\":%d,\"n\":%d,\"p\":\"", c, n);
    memset(out + h, 'x', (size_t)(PAYLOAD - 2 - h));
    out[PAYLOAD - 2] = '"';
    out[PAYLOAD - 1] = '}';
}

/* 1 if msg is an error packet with this code. */
static int is_error(gmud_slice msg, const char *code)
{
    if (msg.len < 9 || memcmp(msg.data, "{\"error\"", 8) != 0)
        return 0;
    json_t *v = json_loadb((const char *)msg.data, msg.len, 0, NULL);
    const char *got = json_string_value(json_object_get(v, "code"));
    int ok = got != NULL && strcmp(got, code) == 0;
    json_decref(v);
    return ok;
}

/* ---- The spammer (its own thread) ------------------------------------- */

typedef struct spam_t {
    int port;
    gmud_frame_config frame;
    atomic_int stop;            /* the driver ends a spammer never closed */
    atomic_int flooding;        /* it has sent FLOOD_BYTES, or been warned */
    atomic_int closed;          /* end of stream or reset */
    int64_t t_start_ms, t_warn_ms, t_closed_ms;
    uint64_t sent_bytes;
    int warnings;
    int echoes;                 /* packets that were not warnings */
    char local[64];
    char note[160];
} spam_t;

static void *spammer(void *arg)
{
    spam_t *sp = arg;
    uint8_t batch[SPAM_BATCH * (PAYLOAD + 6)];
    uint8_t payload[PAYLOAD];
    make_payload(payload, 99, 0);
    size_t blen = 0;
    for (int i = 0; i < SPAM_BATCH; i++)
        blen += (size_t)gmud_frame_encode(&sp->frame, payload, PAYLOAD, batch + blen,
                                          sizeof batch - blen, NULL);
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&sp->frame, NULL);
    sp->t_start_ms = rt_now_ms();
    int fd = rt_connect("127.0.0.1", sp->port, 0);
    if (fd < 0 || dec == NULL) {
        snprintf(sp->note, sizeof sp->note, "spammer cannot connect");
        goto out;
    }
    rt_local_name(fd, sp->local, sizeof sp->local);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t off = 0; /* into batch: the stream stays whole frames */
    uint8_t in[64 * 1024];
    while (!atomic_load(&sp->stop) && rt_now_ms() - sp->t_start_ms < SPAM_MAX_MS) {
        for (;;) { /* send until the socket is full */
            ssize_t w = send(fd, batch + off, blen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0)
                break;
            sp->sent_bytes += (uint64_t)w;
            off = (off + (size_t)w) % blen;
            if (sp->sent_bytes >= FLOOD_BYTES)
                atomic_store(&sp->flooding, 1);
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break; /* reset or broken pipe: closed */
        struct pollfd p = {fd, POLLIN | POLLOUT, 0};
        if (poll(&p, 1, 50) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t r = recv(fd, in, sizeof in, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            break;
        const uint8_t *q = in;
        size_t left = r > 0 ? (size_t)r : 0;
        while (left > 0) {
            gmud_slice m;
            ptrdiff_t used = gmud_frame_decode(dec, q, left, &m, NULL);
            if (used <= 0)
                break;
            q += used;
            left -= (size_t)used;
            if (is_error(m, "rate_limited")) {
                if (sp->warnings++ == 0) {
                    sp->t_warn_ms = rt_now_ms();
                    atomic_store(&sp->flooding, 1);
                }
            } else {
                sp->echoes++;
            }
        }
    }
    if (!atomic_load(&sp->stop) && rt_now_ms() - sp->t_start_ms < SPAM_MAX_MS) {
        sp->t_closed_ms = rt_now_ms();
        atomic_store(&sp->closed, 1);
    }
out:
    rt_close_fd(fd);
    gmud_frame_decoder_destroy(dec);
    return NULL;
}

/* ---- The honest clients (the driver thread) --------------------------- */

typedef struct phase_t {
    uint32_t lat_us[HONEST * ROUNDS];
    size_t n;                   /* round trips answered */
    int64_t t0_ms, t1_ms;
    char note[160];             /* the first thing that went wrong */
} phase_t;

typedef struct honest_t {
    int fd[HONEST];
    gmud_frame_decoder *dec[HONEST];
    gmud_frame_config frame;
} honest_t;

/* Every client does ROUNDS round trips, one every PERIOD_US (the next
 * leaves PERIOD_US after the last one left, or at once if its reply came
 * later), staggered so that the ten do not send together. Latency is from
 * just before send() to the whole reply decoded. 1 if every round trip was
 * answered with its own bytes. */
static int honest_phase(honest_t *h, phase_t *ph)
{
    int64_t due[HONEST], sent[HONEST];
    int done[HONEST];
    uint8_t expect[HONEST][PAYLOAD];
    int64_t start = rt_now_us();
    for (int i = 0; i < HONEST; i++) {
        due[i] = start + (int64_t)i * PERIOD_US / HONEST;
        sent[i] = 0;
        done[i] = 0;
    }
    ph->n = 0;
    ph->note[0] = '\0';
    ph->t0_ms = rt_now_ms();
    int finished = 0;
    while (finished < HONEST && ph->note[0] == '\0') {
        int64_t now = rt_now_us();
        if (now - start > (int64_t)PHASE_MS * 1000) {
            snprintf(ph->note, sizeof ph->note, "phase not done in %d ms", PHASE_MS);
            break;
        }
        int64_t next = now + 100000;
        for (int i = 0; i < HONEST; i++) {
            if (sent[i] != 0 || done[i] == ROUNDS)
                continue;
            if (due[i] <= now) {
                uint8_t frame[PAYLOAD + 16];
                make_payload(expect[i], i, done[i]);
                ptrdiff_t fl = gmud_frame_encode(&h->frame, expect[i], PAYLOAD, frame,
                                                 sizeof frame, NULL);
                sent[i] = rt_now_us();
                if (fl <= 0 || rt_send_all(h->fd[i], frame, (size_t)fl) != 0) {
                    snprintf(ph->note, sizeof ph->note, "client %d: send failed", i);
                    break;
                }
            } else if (due[i] < next) {
                next = due[i];
            }
        }
        struct pollfd p[HONEST];
        for (int i = 0; i < HONEST; i++)
            p[i] = (struct pollfd){h->fd[i], sent[i] != 0 ? POLLIN : 0, 0};
        int wait_ms = (int)((next - rt_now_us() + 999) / 1000);
        if (poll(p, HONEST, wait_ms < 0 ? 0 : wait_ms) <= 0)
            continue;
        for (int i = 0; i < HONEST && ph->note[0] == '\0'; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            uint8_t in[4096];
            ssize_t r = recv(h->fd[i], in, sizeof in, 0);
            if (r <= 0) {
                snprintf(ph->note, sizeof ph->note, "client %d: closed by the server", i);
                break;
            }
            const uint8_t *q = in;
            size_t left = (size_t)r;
            while (left > 0) {
                gmud_slice m;
                ptrdiff_t used = gmud_frame_decode(h->dec[i], q, left, &m, NULL);
                if (used <= 0)
                    break;
                q += used;
                left -= (size_t)used;
                if (sent[i] == 0 || m.len != PAYLOAD || memcmp(m.data, expect[i], PAYLOAD) != 0) {
                    snprintf(ph->note, sizeof ph->note, "client %d round %d: got %.*s", i,
                             done[i], (int)(m.len < 100 ? m.len : 100), (const char *)m.data);
                    break;
                }
                ph->lat_us[ph->n++] = (uint32_t)(rt_now_us() - sent[i]);
                due[i] = sent[i] + PERIOD_US;
                sent[i] = 0;
                if (++done[i] == ROUNDS)
                    finished++;
            }
        }
    }
    ph->t1_ms = rt_now_ms();
    return ph->note[0] == '\0' && ph->n == HONEST * ROUNDS;
}

/* ---- The driver ------------------------------------------------------- */

typedef struct attempt_t {
    phase_t base, spam;
    int base_ok, spam_ok;
    uint32_t base_p99, spam_p99, base_p50, spam_p50;
    int covered;                /* the spammer was still open when the phase ended */
    int passed;
    spam_t sp;
} attempt_t;

typedef struct driver_t {
    rt_peer rt;                 /* the driver is the main thread's peer */
    srv_t *srv;
    gmud_frame_config frame;
    int attempts;               /* run */
    int connect_failed;
    attempt_t at[ATTEMPTS];
} driver_t;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of lat[0..n) (nearest rank), in microseconds. */
static uint32_t nth_us(const uint32_t *lat, size_t n, double q)
{
    static uint32_t tmp[HONEST * ROUNDS];
    if (n == 0)
        return 0;
    memcpy(tmp, lat, n * sizeof *lat);
    qsort(tmp, n, sizeof *tmp, cmp_u32);
    size_t k = (size_t)(q * (double)n + 0.999999);
    return tmp[(k < 1 ? 1 : k) - 1];
}

static uint32_t p99_us(const uint32_t *lat, size_t n)
{
    return nth_us(lat, n, 0.99);
}

static void run_attempt(driver_t *d, honest_t *h, int k)
{
    attempt_t *a = &d->at[k];
    a->base_ok = honest_phase(h, &a->base);

    spam_t *sp = &a->sp;
    sp->port = d->rt.port;
    sp->frame = d->frame;
    atomic_store(&d->srv->attempt, k);
    pthread_t th;
    pthread_create(&th, NULL, spammer, sp);
    /* Measure once the flood is on, well past any burst. */
    if (rt_wait_flag(&sp->flooding, 3000)) {
        a->spam_ok = honest_phase(h, &a->spam);
        a->covered = !atomic_load(&sp->closed);
    } else {
        snprintf(a->spam.note, sizeof a->spam.note, "the spammer did not get going in 3 s");
    }
    /* The close is due RATE_CLOSE_MS after the first refusal. */
    rt_wait_flag(&sp->closed, RATE_CLOSE_MS + 3000);
    atomic_store(&sp->stop, 1);
    pthread_join(th, NULL);
    rt_wait_flag(&d->srv->spam_reason[k], 3000);

    a->base_p99 = p99_us(a->base.lat_us, a->base.n);
    a->base_p50 = nth_us(a->base.lat_us, a->base.n, 0.5);
    a->spam_p99 = p99_us(a->spam.lat_us, a->spam.n);
    a->spam_p50 = nth_us(a->spam.lat_us, a->spam.n, 0.5);
    uint32_t bound = 2 * (a->base_p99 > FLOOR_US ? a->base_p99 : FLOOR_US);
    uint32_t bound50 = 2 * (a->base_p50 > P50_FLOOR_US ? a->base_p50 : P50_FLOOR_US);
    a->passed = a->base_ok && a->spam_ok && a->covered && a->spam_p99 <= bound &&
                a->spam_p50 <= bound50;
    fprintf(stderr,
            "spam attempt %d: baseline p50 %u us p99 %u us (%zu round trips, %lld ms); "
            "under spam p50 %u us p99 %u us (%zu round trips, %lld ms); "
            "bounds p50 %u us p99 %u us: %s\n",
            k + 1, a->base_p50, a->base_p99, a->base.n,
            (long long)(a->base.t1_ms - a->base.t0_ms), a->spam_p50, a->spam_p99, a->spam.n,
            (long long)(a->spam.t1_ms - a->spam.t0_ms), bound50, bound,
            a->passed ? "pass" : "FAIL");
    fprintf(stderr,
            "  spammer: %.1f MB sent, %d warnings, %d other packets, first warning after "
            "%lld ms, closed after %lld ms%s%s%s\n",
            (double)sp->sent_bytes / 1e6, sp->warnings, sp->echoes,
            (long long)(sp->t_warn_ms ? sp->t_warn_ms - sp->t_start_ms : -1),
            (long long)(sp->t_closed_ms ? sp->t_closed_ms - sp->t_start_ms : -1),
            a->covered ? "" : "; closed before the phase ended", sp->note[0] ? "; " : "",
            sp->note);
}

static void *driver(void *arg)
{
    driver_t *d = arg;
    honest_t h;
    memset(&h, 0, sizeof h);
    h.frame = d->frame;
    for (int i = 0; i < HONEST; i++) {
        h.fd[i] = rt_peer_raw(&d->rt, NULL, 0, NULL, 0);
        h.dec[i] = gmud_frame_decoder_create(&d->frame, NULL);
        if (h.fd[i] < 0 || h.dec[i] == NULL)
            d->connect_failed = 1;
    }
    /* All ten are the server's first connections (roles go by order). */
    int64_t end = rt_now_ms() + 3000;
    while (atomic_load(&d->srv->connects) < HONEST && rt_now_ms() < end)
        rt_sleep_ms(2);
    if (atomic_load(&d->srv->connects) != HONEST)
        d->connect_failed = 1;
    for (int k = 0; k < ATTEMPTS && !d->connect_failed; k++) {
        d->attempts = k + 1;
        run_attempt(d, &h, k);
        if (d->at[k].passed)
            break;
    }
    atomic_store(&d->srv->ending, 1);
    for (int i = 0; i < HONEST; i++) {
        rt_close_fd(h.fd[i]);
        gmud_frame_decoder_destroy(h.dec[i]);
    }
    return NULL;
}

/* ---- The test --------------------------------------------------------- */

static void test_spam(gmud_rate_policy policy)
{
    int drop = policy == GMUD_RATE_DROP;
    rt_fixture fx;
    /* JSON payload: every delivered message is parsed, the work a flood
     * would multiply; the buckets come before the parse. */
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
    fx.cfg.conn.log_level = GMUD_LOG_INFO;
    fx.cfg.conn.limits.msg_rate = MSG_RATE;
    fx.cfg.conn.limits.msg_burst = MSG_BURST;
    fx.cfg.conn.limits.rate_close_ms = RATE_CLOSE_MS;
    fx.cfg.conn.limits.rate_policy = policy;
    static srv_t s;
    memset(&s, 0, sizeof s);
    if (rt_fx_serve(&fx, (gmud_callbacks){.on_connect = s_connect,
                                          .on_message = s_message,
                                          .on_reject = s_reject,
                                          .on_close = s_close,
                                          .user = &s}) == NULL) {
        rt_fx_end(&fx);
        return;
    }
    static driver_t d;
    memset(&d, 0, sizeof d);
    d.srv = &s;
    d.frame = fx.cfg.conn.frame;
    int64_t t0 = rt_now_ms();
    rt_fx_run_peer(&fx, &d.rt, driver, &d, 45000);
    int64_t took = rt_now_ms() - t0;

    CHECK_EQ_INT(d.connect_failed, 0);
    CHECK(d.attempts >= 1);
    int passed = 0;
    for (int k = 0; k < d.attempts; k++) {
        attempt_t *a = &d.at[k];
        passed |= a->passed;
        /* Whatever the latencies, every honest round trip was answered. */
        if (!a->base_ok || !a->spam_ok)
            fprintf(stderr, "attempt %d: %s%s\n", k + 1, a->base.note, a->spam.note);
        CHECK(a->base_ok);
        CHECK(a->spam_ok);
        CHECK_EQ_INT(a->spam.n, HONEST * ROUNDS);
        /* The spammer was throttled: held (shaping: not read, nothing of
         * it refused) or dropped, warned, then closed as rate limited, no
         * sooner than RATE_CLOSE_MS after it began and not much later. */
        spam_t *sp = &a->sp;
        CHECK(drop ? s.spam_rejects[k] > 0 : s.spam_rejects[k] == 0);
        CHECK(sp->warnings >= 1);
        /* What it was let through, and echoed: the burst, then the rate
         * (a tenth of a second's worth of slack for the clocks' rounding). */
        CHECK(sp->echoes >= MSG_BURST);
        CHECK(sp->echoes <= MSG_BURST + MSG_RATE / 10 +
                                MSG_RATE * (sp->t_closed_ms - sp->t_start_ms) / 1000);
        CHECK_EQ_INT(atomic_load(&sp->closed), 1);
        /* libuv's loop time may come from a coarse clock, a tick behind. */
        CHECK(sp->t_closed_ms - sp->t_start_ms >= RATE_CLOSE_MS - 50);
        CHECK(sp->t_closed_ms - sp->t_start_ms <= RATE_CLOSE_MS + 2500);
        CHECK_EQ_INT(atomic_load(&s.spam_reason[k]), GMUD_CLOSE_RATE_LIMITED + 1);
        const char *line = rt_log_find(sp->local, "closing: over the rate limit");
        CHECK(line != NULL);
        if (line != NULL)
            CHECK_CONTAINS(line, " rate ");
        CHECK(rt_log_find(sp->local, drop ? "messages are dropped" : "nothing dropped") != NULL);
    }
    CHECK(passed);
    /* The honest clients were never refused nor closed. */
    CHECK_EQ_INT(s.honest_rejects, 0);
    CHECK_EQ_INT(s.honest_early_closes, 0);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK(drop ? st.rate_dropped > 0 && st.rate_held == 0
               : st.rate_dropped == 0 && st.rate_held > 0);
    CHECK_EQ_INT(st.closes[GMUD_CLOSE_RATE_LIMITED], d.attempts);
    CHECK_EQ_INT(st.rejects[-GMUD_ERR_BAD_JSON], 0);
    printf("spam (%s): %d attempt(s), %s; %llu packets dropped, %llu holds; %lld ms\n",
           drop ? "drop" : "shape", d.attempts,
           passed ? "honest p50, p99 within 2x" : "honest p50, p99 NOT within 2x",
           (unsigned long long)st.rate_dropped, (unsigned long long)st.rate_held,
           (long long)took);
    rt_fx_end(&fx);
}

int main(void)
{
    rt_ignore_sigpipe();
    test_spam(GMUD_RATE_SHAPE);
    test_spam(GMUD_RATE_DROP);
    return check_report("test_spam");
}
