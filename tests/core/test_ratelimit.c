/* Token buckets and over-limit tracking, driven by a fake clock (ms). */
#include <stdint.h>

#include "check.h"
#include "gmud/ratelimit.h"

/* Tries one take every step_ms from `from` to `to` (exclusive); returns how
 * many were allowed. */
static uint64_t drain(gmud_bucket *b, uint64_t cost, uint64_t from, uint64_t to, uint64_t step)
{
    uint64_t n = 0;
    for (uint64_t t = from; t < to; t += step)
        n += (uint64_t)gmud_bucket_take(b, cost, t);
    return n;
}

static void test_init(void)
{
    static const struct {
        uint64_t rate, burst;
        int rc;
    } cases[] = {
        {100, 200, 0},
        {1, 1, 0},
        {GMUD_BUCKET_MAX, GMUD_BUCKET_MAX, 0},
        {0, 200, GMUD_ERR_INVALID},
        {100, 0, GMUD_ERR_INVALID},
        {GMUD_BUCKET_MAX + 1, 1, GMUD_ERR_INVALID},
        {1, GMUD_BUCKET_MAX + 1, GMUD_ERR_INVALID},
        {1, UINT64_MAX, GMUD_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_bucket b;
        CHECK_EQ_INT(gmud_bucket_init(&b, cases[i].rate, cases[i].burst, 0), cases[i].rc);
        if (cases[i].rc == 0)
            CHECK(gmud_bucket_tokens(&b) == cases[i].burst);
    }
}

static void test_burst_then_rate(void)
{
    gmud_bucket b;
    CHECK_EQ_INT(
        gmud_bucket_init(&b, GMUD_RATE_MSGS_DEFAULT, GMUD_RATE_MSGS_BURST_DEFAULT, 5000), 0);
    uint64_t n = 0;
    for (int i = 0; i < 1000; i++)
        n += (uint64_t)gmud_bucket_take(&b, 1, 5000);
    CHECK_EQ_INT(n, 200);
    /* Then exactly one every 10 ms, at 10 ms and not before. */
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 5009), 0);
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 5010), 1);
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 5010), 0);
    CHECK_EQ_INT(drain(&b, 1, 5011, 5011 + 60000, 1), 6000);

    /* A rate that does not divide 1000: no drift in 1000 s. */
    gmud_bucket_init(&b, 3, 2, 0);
    CHECK_EQ_INT(gmud_bucket_take(&b, 2, 0), 1);
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 333), 0);
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 334), 1);
    CHECK_EQ_INT(drain(&b, 1, 335, 1000 * 1000 + 335, 1), 3000);
    CHECK_EQ_INT(b.level, 2); /* the 2 milli-tokens left at 334, still there */

    /* Bytes: a cost per take, at the default byte rate. */
    gmud_bucket_init(&b, GMUD_RATE_BYTES_DEFAULT, GMUD_RATE_BYTES_BURST_DEFAULT, 0);
    for (int i = 0; i < 16; i++) /* the burst: sixteen 64 KiB messages */
        CHECK_EQ_INT(gmud_bucket_take(&b, 65536, 0), 1);
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 0), 0);
    CHECK_EQ_INT(gmud_bucket_take(&b, 65536, 249), 0);
    CHECK_EQ_INT(gmud_bucket_take(&b, 65536, 250), 1); /* 256 KiB/s: 64 KiB per 250 ms */
}

static void test_idle_and_jumps(void)
{
    gmud_bucket b;
    gmud_bucket_init(&b, 100, 200, 0);
    CHECK_EQ_INT(gmud_bucket_take(&b, 200, 0), 1);
    CHECK_EQ_INT(gmud_bucket_tokens(&b), 0);
    /* An hour idle refills to the burst, no more. */
    CHECK_EQ_INT(gmud_bucket_take(&b, 201, 3600 * 1000), 0);
    CHECK_EQ_INT(gmud_bucket_tokens(&b), 200);
    CHECK_EQ_INT(gmud_bucket_take(&b, 200, 3600 * 1000), 1);

    static const struct {
        uint64_t rate, burst, t0, t1;
    } jumps[] = {
        {1, 1, 0, 3ull * 86400 * 1000},                           /* days */
        {100, 200, 0, UINT64_MAX},                                /* the whole clock */
        {GMUD_BUCKET_MAX, GMUD_BUCKET_MAX, 0, UINT64_MAX},        /* and the largest bucket */
        {GMUD_BUCKET_MAX, GMUD_BUCKET_MAX, UINT64_MAX - 1000, UINT64_MAX}, /* 1 s: full */
        {GMUD_BUCKET_MAX, 1, 7, 8},
        {1, GMUD_BUCKET_MAX, 0, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof jumps / sizeof jumps[0]; i++) {
        gmud_bucket_init(&b, jumps[i].rate, jumps[i].burst, jumps[i].t0);
        CHECK_EQ_INT(gmud_bucket_take(&b, jumps[i].burst, jumps[i].t0), 1);
        CHECK(gmud_bucket_tokens(&b) == 0);
        CHECK_EQ_INT(gmud_bucket_take(&b, 1, jumps[i].t0), 0);
        CHECK_EQ_INT(gmud_bucket_take(&b, 0, jumps[i].t1), 1);
        CHECK(gmud_bucket_tokens(&b) == jumps[i].burst);
        CHECK_EQ_INT(gmud_bucket_take(&b, jumps[i].burst, jumps[i].t1), 1);
    }
}

static void test_costs(void)
{
    gmud_bucket b;
    gmud_bucket_init(&b, 1000, 1000, 0);
    static const uint64_t too_big[] = {1001, GMUD_BUCKET_MAX, GMUD_BUCKET_MAX + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof too_big / sizeof too_big[0]; i++) {
        CHECK_EQ_INT(gmud_bucket_take(&b, too_big[i], 0), 0);
        CHECK_EQ_INT(gmud_bucket_take(&b, too_big[i], UINT64_MAX / 2), 0);
        CHECK_EQ_INT(gmud_bucket_tokens(&b), 1000);
    }
    CHECK_EQ_INT(gmud_bucket_take(&b, 1000, UINT64_MAX / 2), 1);
}

static void test_clock_backwards(void)
{
    gmud_bucket b;
    gmud_bucket_init(&b, 100, 1, 1000);
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 1000), 1);
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 0), 0);    /* back: nothing gained */
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 1009), 0); /* and nothing counted twice */
    CHECK_EQ_INT(gmud_bucket_take(&b, 1, 1010), 1);
}

static void test_take_both(void)
{
    gmud_bucket msgs, bytes;
    gmud_bucket_init(&msgs, 100, 2, 0);
    gmud_bucket_init(&bytes, 1000, 1000, 0);
    CHECK_EQ_INT(gmud_bucket_take_both(&msgs, 1, &bytes, 900, 0), 1);
    CHECK_EQ_INT(gmud_bucket_take_both(&msgs, 1, &bytes, 200, 0), 0); /* bytes short */
    CHECK_EQ_INT(gmud_bucket_tokens(&msgs), 1);                       /* message not taken */
    CHECK_EQ_INT(gmud_bucket_take_both(&msgs, 1, &bytes, 100, 0), 1);
    CHECK_EQ_INT(gmud_bucket_take_both(&msgs, 1, &bytes, 0, 0), 0); /* messages short */
    CHECK_EQ_INT(gmud_bucket_tokens(&bytes), 0);
}

static void test_overlimit(void)
{
    gmud_overlimit o;
    CHECK_EQ_INT(gmud_overlimit_init(&o, 0), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_overlimit_init(&o, GMUD_RATE_CLOSE_AFTER_MS_DEFAULT), 0);
    CHECK_EQ_INT(gmud_overlimit_duration(&o, 0), 0);
    /* Refusals every 5 ms from t = 100: one warning per second, closed at
     * 10 s into the stretch. */
    int warns = 0, closed_at = -1;
    for (int t = 100; t < 100 + 12000 && closed_at < 0; t += 5) {
        int f = gmud_overlimit_refused(&o, (uint64_t)t);
        if (f & GMUD_OVERLIMIT_WARN) {
            CHECK_EQ_INT((t - 100) % 1000, 0);
            warns++;
        }
        if (f & GMUD_OVERLIMIT_CLOSE)
            closed_at = t;
        if (t == 5100)
            CHECK_EQ_INT(gmud_overlimit_duration(&o, 5100), 5000);
    }
    CHECK_EQ_INT(closed_at, 10100);
    CHECK_EQ_INT(warns, 11); /* t = 100, 1100, ..., 10100 */

    /* A quiet second ends the stretch; the next refusal starts a new one. */
    gmud_overlimit_init(&o, 10000);
    CHECK_EQ_INT(gmud_overlimit_refused(&o, 0), GMUD_OVERLIMIT_WARN);
    CHECK_EQ_INT(gmud_overlimit_refused(&o, 999), 0);
    CHECK_EQ_INT(gmud_overlimit_duration(&o, 1500), 1500);
    CHECK_EQ_INT(gmud_overlimit_duration(&o, 999 + GMUD_RATE_QUIET_MS), 0);
    CHECK_EQ_INT(gmud_overlimit_refused(&o, 999 + GMUD_RATE_QUIET_MS), GMUD_OVERLIMIT_WARN);
    CHECK_EQ_INT(gmud_overlimit_duration(&o, 2500), 501);
    CHECK_EQ_INT(gmud_overlimit_refused(&o, 2500), 0); /* warned at 1999 */
}

/* A spammer against the default limits: throttled at once, closed 10 s on,
 * even though its bucket lets one message through every 10 ms. An honest
 * client at half the rate is never refused. */
static void test_spammer(void)
{
    gmud_bucket spam, honest;
    gmud_overlimit o;
    gmud_bucket_init(&spam, GMUD_RATE_MSGS_DEFAULT, GMUD_RATE_MSGS_BURST_DEFAULT, 0);
    gmud_bucket_init(&honest, GMUD_RATE_MSGS_DEFAULT, GMUD_RATE_MSGS_BURST_DEFAULT, 0);
    gmud_overlimit_init(&o, GMUD_RATE_CLOSE_AFTER_MS_DEFAULT);
    uint64_t first_refusal = 0, closed_at = 0, allowed = 0, honest_refused = 0;
    for (uint64_t t = 0; t < 60000 && closed_at == 0; t++) {
        for (int i = 0; i < 10; i++) { /* 10 000 messages/s */
            if (gmud_bucket_take(&spam, 1, t)) {
                allowed++;
                continue;
            }
            first_refusal = first_refusal ? first_refusal : t + 1;
            if (gmud_overlimit_refused(&o, t) & GMUD_OVERLIMIT_CLOSE)
                closed_at = t;
        }
        if (t % 20 == 0)
            honest_refused += !gmud_bucket_take(&honest, 1, t);
    }
    /* At 10 a ms the burst of 200, with a token every 10 ms, lasts 20 ms. */
    CHECK_EQ_INT(first_refusal, 20 + 1);
    CHECK_EQ_INT(closed_at, 20 + GMUD_RATE_CLOSE_AFTER_MS_DEFAULT);
    CHECK_EQ_INT(allowed, 200 + 10020 / 10); /* burst, then 100/s until closed */
    CHECK_EQ_INT(honest_refused, 0);
}

/* gmud_bucket_wait: the shortest wait after which the cost is paid, for
 * every rate, burst, cost and level tried: a take one ms earlier is
 * refused, one at the wait succeeds. A cost over the burst never. */
static void test_wait(void)
{
    static const struct {
        uint64_t rate, burst, drain, cost, at;
    } cases[] = {
        {10, 5, 5, 1, 0},      {10, 5, 5, 5, 0},   {10, 5, 5, 1, 50},  {10, 5, 3, 3, 0},
        {1, 1, 1, 1, 0},       {3, 7, 7, 2, 1},    {1000, 10, 10, 1, 0}, {7, 100, 100, 99, 13},
        {250000, 1000000, 1000000, 1, 0}, {10, 5, 0, 5, 0}, {10, 5, 2, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_bucket b;
        CHECK_EQ_INT(gmud_bucket_init(&b, cases[i].rate, cases[i].burst, 1000), 0);
        for (uint64_t k = 0; k < cases[i].drain; k++)
            gmud_bucket_take(&b, 1, 1000);
        uint64_t now = 1000 + cases[i].at;
        uint64_t w = gmud_bucket_wait(&b, cases[i].cost, now);
        gmud_bucket early = b, on_time = b;
        if (w > 0)
            CHECK_EQ_INT(gmud_bucket_take(&early, cases[i].cost, now + w - 1), 0);
        CHECK_EQ_INT(gmud_bucket_take(&on_time, cases[i].cost, now + w), 1);
        if (check_failures != 0)
            fprintf(stderr, "  wait case %zu: %llu ms\n", i, (unsigned long long)w);
    }
    gmud_bucket b;
    gmud_bucket_init(&b, 10, 5, 0);
    CHECK_EQ_INT(gmud_bucket_wait(&b, 0, 0), 0);
    CHECK_EQ_INT(gmud_bucket_wait(&b, 5, 0), 0);
    CHECK(gmud_bucket_wait(&b, 6, 0) == GMUD_BUCKET_NEVER);
    /* Five taken at 0: one more token 100 ms on; the wait does not take. */
    for (int k = 0; k < 5; k++)
        gmud_bucket_take(&b, 1, 0);
    CHECK_EQ_INT(gmud_bucket_wait(&b, 1, 0), 100);
    CHECK_EQ_INT(gmud_bucket_wait(&b, 1, 40), 60);
    CHECK_EQ_INT(gmud_bucket_wait(&b, 2, 0), 200);
    CHECK_EQ_INT(gmud_bucket_tokens(&b), 0);
    /* A clock that stepped back waits until it has caught up, then more. */
    gmud_bucket_take(&b, 5, 500); /* refilled to 5 at 500, all taken */
    uint64_t w = gmud_bucket_wait(&b, 1, 400);
    CHECK_EQ_INT(w, 200); /* 100 ms to catch up with 500, then 100 for a token */
    gmud_bucket early = b, late = b;
    CHECK_EQ_INT(gmud_bucket_take(&early, 1, 400 + w - 1), 0);
    CHECK_EQ_INT(gmud_bucket_take(&late, 1, 400 + w), 1);
}

int main(void)
{
    test_init();
    test_burst_then_rate();
    test_idle_and_jumps();
    test_costs();
    test_clock_backwards();
    test_take_both();
    test_wait();
    test_overlimit();
    test_spammer();
    return check_report("test_ratelimit");
}
