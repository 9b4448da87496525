/* Token buckets and over-limit tracking. See include/gmud/ratelimit.h. */
#include "gmud/ratelimit.h"

/* now - then, or 0 if the clock went backwards: unsigned subtraction would
 * otherwise wrap to an enormous interval. */
static uint64_t elapsed(uint64_t then, uint64_t now)
{
    return now > then ? now - then : 0;
}

int gmud_bucket_init(gmud_bucket *b, uint64_t rate, uint64_t burst, uint64_t now_ms)
{
    if (rate == 0 || burst == 0 || rate > GMUD_BUCKET_MAX || burst > GMUD_BUCKET_MAX)
        return GMUD_ERR_INVALID;
    b->rate = rate;
    b->cap = burst * 1000;
    b->level = b->cap;
    b->last_ms = now_ms;
    return GMUD_OK;
}

static void refill(gmud_bucket *b, uint64_t now_ms)
{
    if (now_ms <= b->last_ms)
        return; /* keep last_ms: a clock that steps back gains nothing twice */
    uint64_t dt = now_ms - b->last_ms, room = b->cap - b->level;
    b->last_ms = now_ms;
    /* dt * rate overflows after a long enough gap; dividing first cannot.
     * dt <= room / rate implies dt * rate <= room, which fits. */
    if (dt > room / b->rate)
        b->level = b->cap;
    else
        b->level += dt * b->rate;
}

/* cost <= burst is checked before multiplying, so cost * 1000 fits. */
static int holds(const gmud_bucket *b, uint64_t cost)
{
    return cost <= b->cap / 1000 && cost * 1000 <= b->level;
}

int gmud_bucket_take(gmud_bucket *b, uint64_t cost, uint64_t now_ms)
{
    refill(b, now_ms);
    if (!holds(b, cost))
        return 0;
    b->level -= cost * 1000;
    return 1;
}

int gmud_bucket_take_both(gmud_bucket *a, uint64_t cost_a, gmud_bucket *b, uint64_t cost_b,
                          uint64_t now_ms)
{
    refill(a, now_ms);
    refill(b, now_ms);
    if (!holds(a, cost_a) || !holds(b, cost_b))
        return 0;
    a->level -= cost_a * 1000;
    b->level -= cost_b * 1000;
    return 1;
}

uint64_t gmud_bucket_tokens(const gmud_bucket *b)
{
    return b->level / 1000;
}

uint64_t gmud_bucket_wait(const gmud_bucket *b, uint64_t cost, uint64_t now_ms)
{
    if (cost > b->cap / 1000)
        return GMUD_BUCKET_NEVER;
    gmud_bucket now = *b;
    refill(&now, now_ms);
    uint64_t need = cost * 1000;
    if (need <= now.level)
        return 0;
    /* The level grows by rate milli-tokens a ms from last_ms on (later than
     * now_ms if the clock stepped back): round the deficit up. */
    uint64_t deficit = need - now.level;
    uint64_t behind = now_ms < now.last_ms ? now.last_ms - now_ms : 0;
    return behind + deficit / now.rate + (deficit % now.rate != 0);
}

/* ---- Over the limit --------------------------------------------------- */

int gmud_overlimit_init(gmud_overlimit *o, uint64_t close_after_ms)
{
    if (close_after_ms == 0)
        return GMUD_ERR_INVALID;
    *o = (gmud_overlimit){.close_after_ms = close_after_ms};
    return GMUD_OK;
}

static int in_stretch(const gmud_overlimit *o, uint64_t now_ms)
{
    return o->over && elapsed(o->last_refused_ms, now_ms) < GMUD_RATE_QUIET_MS;
}

int gmud_overlimit_refused(gmud_overlimit *o, uint64_t now_ms)
{
    int flags = 0;
    if (!in_stretch(o, now_ms))
        o->since_ms = now_ms;
    o->over = 1;
    o->last_refused_ms = now_ms;
    if (!o->warned || elapsed(o->last_warn_ms, now_ms) >= GMUD_RATE_WARN_MS) {
        o->warned = 1;
        o->last_warn_ms = now_ms;
        flags |= GMUD_OVERLIMIT_WARN;
    }
    if (elapsed(o->since_ms, now_ms) >= o->close_after_ms)
        flags |= GMUD_OVERLIMIT_CLOSE;
    return flags;
}

uint64_t gmud_overlimit_duration(const gmud_overlimit *o, uint64_t now_ms)
{
    return in_stretch(o, now_ms) ? elapsed(o->since_ms, now_ms) : 0;
}
