/* gmud/ratelimit.h: token buckets against spam, the sans-I/O core.
 *
 * The caller passes the time (milliseconds from any monotonic origin) into
 * every call; nothing here reads a clock. Arithmetic is integer only: a
 * bucket holds milli-tokens and gains exactly `rate` of them per elapsed
 * millisecond, so there is no rounding drift however long it runs, and
 * neither a time jump of days nor a cost in the gigabytes can overflow.
 *
 * Threads: a bucket or tracker belongs to one thread at a time.
 */
#ifndef GMUD_RATELIMIT_H
#define GMUD_RATELIMIT_H

#include <stdint.h>

#include "gmud/error.h"
#include "gmud/limits.h"
#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest rate (tokens/s) and burst (tokens) a bucket takes: burst * 1000
 * milli-tokens must fit in 64 bits. */
#define GMUD_BUCKET_MAX (UINT64_MAX / 1000)

typedef struct gmud_bucket {
    uint64_t rate;    /* tokens per second; also milli-tokens per ms */
    uint64_t cap;     /* burst, in milli-tokens */
    uint64_t level;   /* milli-tokens held now */
    uint64_t last_ms; /* time of the last refill */
} gmud_bucket;

/* A full bucket: rate tokens per second, at most burst at once, as of now_ms.
 * Returns 0, or GMUD_ERR_INVALID (b unchanged) if rate or burst is 0 or over
 * GMUD_BUCKET_MAX. */
GMUD_API int gmud_bucket_init(gmud_bucket *b, uint64_t rate, uint64_t burst, uint64_t now_ms);

/* Refills b for the time up to now_ms, then takes cost tokens if it holds
 * them. Returns 1 (taken) or 0 (refused, nothing taken). A cost over the
 * burst is always refused. Time that goes backwards adds nothing, and the
 * lost interval is not counted twice when the clock catches up. */
GMUD_API int gmud_bucket_take(gmud_bucket *b, uint64_t cost, uint64_t now_ms);

/* Both or neither: takes cost_a from a and cost_b from b only if both hold
 * them (a message that costs one message token and its bytes). 1 or 0. */
GMUD_API int gmud_bucket_take_both(gmud_bucket *a, uint64_t cost_a, gmud_bucket *b, uint64_t cost_b,
                          uint64_t now_ms);

/* Whole tokens b holds as of its last refill. */
GMUD_API uint64_t gmud_bucket_tokens(const gmud_bucket *b);

/* How long from now_ms until b can pay cost (ms): 0 if it can now, the
 * shortest wait after which gmud_bucket_take(b, cost, now_ms + wait) takes
 * it, or GMUD_BUCKET_NEVER for a cost over the burst. b is not changed:
 * for shaping, a sender is slowed until then rather than refused. */
#define GMUD_BUCKET_NEVER UINT64_MAX
GMUD_API uint64_t gmud_bucket_wait(const gmud_bucket *b, uint64_t cost, uint64_t now_ms);

/* ---- Over the limit: warnings and closing ----------------------------- */

/* Tracks one connection's refusals. An over-limit stretch begins at a
 * refusal and lasts while refusals keep coming less than GMUD_RATE_QUIET_MS
 * apart, allowed messages in between or not (a spammer's bucket refills a
 * little all the time). */
typedef struct gmud_overlimit {
    uint64_t close_after_ms; /* a stretch this long closes the connection */
    uint64_t since_ms;       /* when the current stretch began */
    uint64_t last_refused_ms;
    uint64_t last_warn_ms;
    int over;   /* nonzero once a refusal has been noted */
    int warned; /* nonzero once a warning has been given */
} gmud_overlimit;

enum {
    GMUD_OVERLIMIT_WARN = 1,  /* send the peer a warning now */
    GMUD_OVERLIMIT_CLOSE = 2  /* over the limit for close_after_ms: close */
};

/* No refusals yet; close after close_after_ms (ms) over the limit (the
 * default is GMUD_RATE_CLOSE_AFTER_MS_DEFAULT). Returns 0, or
 * GMUD_ERR_INVALID if close_after_ms is 0. */
GMUD_API int gmud_overlimit_init(gmud_overlimit *o, uint64_t close_after_ms);

/* Notes a refused message at now_ms. Returns a mask: GMUD_OVERLIMIT_WARN at
 * most once per GMUD_RATE_WARN_MS, GMUD_OVERLIMIT_CLOSE once the stretch has
 * lasted close_after_ms. */
GMUD_API int gmud_overlimit_refused(gmud_overlimit *o, uint64_t now_ms);

/* Milliseconds the connection has been over its limit as of now_ms: 0 if it
 * is not (no refusal within GMUD_RATE_QUIET_MS). */
GMUD_API uint64_t gmud_overlimit_duration(const gmud_overlimit *o, uint64_t now_ms);

#ifdef __cplusplus
}
#endif

#endif
