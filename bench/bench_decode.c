/* bench_decode: throughput of gmud_frame_decode() beside memcpy.
 *
 * For each framing, a stream of frames is encoded in memory with
 * gmud_frame_encode(), then cut into chunks of 32..96 KiB at places drawn
 * from a fixed-seed PRNG (so frames straddle chunk edges, as they straddle
 * recv() calls). Each round times, over the same chunks and the same bytes:
 *   baseline  memcpy of every chunk into one 96 KiB buffer (what recv() into
 *             a user buffer costs at least);
 *   decode    gmud_frame_decode() over every chunk, taking every message out
 *             (counting them and summing their lengths).
 * Rounds alternate which of the two runs first. The figures are the best and
 * the median round; the ratio decode GB/s / memcpy GB/s is what to compare
 * between machines, not the raw numbers.
 *
 * Both read the stream from RAM (it is far bigger than any cache); memcpy's
 * destination stays in L1/L2. The decoder hands out slices and copies only
 * frames that straddle two chunks, so it reads each header and writes almost
 * nothing; what it costs is per frame, not per byte.
 *
 * Environment: GMUD_BENCH_MB (stream MiB per case, default 64),
 * GMUD_BENCH_ROUNDS (default 25: a few seconds in all; best-of needs a few
 * quiet rounds on a shared machine), GMUD_BENCH_ONLY (run one case, named as
 * printed, e.g. "gmud 64B": for profiling). Exits 1 if any decoded stream
 * differs from what was encoded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "gmud/frame.h"

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define BENCH_HAVE_MALLINFO2 1
#endif

enum {
    CHUNK_MIN = 32 * 1024,
    CHUNK_MAX = 96 * 1024,
    CHUNK_SEED = 0x67d0d5eu /* any fixed value: the cuts must not vary between runs */
};

/* ---- Allocation counting ------------------------------------------------ */

/* With GNU ld or lld, bench/CMakeLists.txt links with --wrap=malloc (and
 * calloc, realloc, free), which reroutes every call from this program and
 * from libgmud.a through these counters: an exact count of the decoder's
 * allocations with no hook API and no change to src/. */
static size_t g_allocs; /* malloc + calloc + realloc calls */

#ifdef GMUD_BENCH_WRAP_MALLOC
void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
    g_allocs++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    g_allocs++;
    return __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
    g_allocs++;
    return __real_realloc(p, n);
}
#endif

typedef struct heap_delta {
    long long allocs;  /* calls counted by the wrappers; -1 if not linked in */
    long long in_use;  /* mallinfo2 uordblks after - before (bytes) */
    long long arena;   /* mallinfo2 arena after - before (bytes) */
    int have_info;
} heap_delta;

typedef struct heap_mark {
    size_t allocs, in_use, arena;
} heap_mark;

static heap_mark heap_now(void)
{
    heap_mark m = {g_allocs, 0, 0};
#ifdef BENCH_HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    m.in_use = mi.uordblks;
    m.arena = mi.arena;
#endif
    return m;
}

static heap_delta heap_since(heap_mark a)
{
    heap_mark b = heap_now();
    heap_delta d = {-1, 0, 0, 0};
#ifdef GMUD_BENCH_WRAP_MALLOC
    d.allocs = (long long)(b.allocs - a.allocs);
#endif
#ifdef BENCH_HAVE_MALLINFO2
    d.have_info = 1;
    d.in_use = (long long)b.in_use - (long long)a.in_use;
    d.arena = (long long)b.arena - (long long)a.arena;
#endif
    return d;
}

/* ---- The stream --------------------------------------------------------- */

typedef struct bench_case {
    const char *framing; /* as gmud_frame_config_parse() takes it */
    size_t payload;      /* bytes per message */
} bench_case;

typedef struct stream {
    gmud_frame_config cfg;
    uint8_t *bytes;
    size_t len;
    size_t frames;
    size_t payload;
    size_t *cut;  /* chunk i is bytes[cut[i] .. cut[i+1]) */
    size_t chunks;
} stream;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_decode: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        die("out of memory", NULL);
    return p;
}

/* Payload of message number index: bytes that vary from message to message
 * and within each one. Line framing gets printable bytes (no newline). */
static void fill_payload(uint8_t *p, size_t n, size_t index, int printable)
{
    uint32_t x = (uint32_t)index * 2654435761u + 1u;
    for (size_t j = 0; j < n; j++) {
        x = x * 1103515245u + 12345u;
        uint8_t b = (uint8_t)(x >> 24);
        p[j] = printable ? (uint8_t)(0x20 + b % 95) : b;
    }
}

static void stream_build(stream *s, const bench_case *c, size_t target)
{
    gmud_error err;
    memset(s, 0, sizeof *s);
    if (gmud_frame_config_parse(&s->cfg, c->framing, &err) != GMUD_OK)
        die("bad framing", err.message);
    if (s->cfg.framing == GMUD_FRAMING_FIXED && s->cfg.fixed_size != c->payload)
        die("fixed:N cases must fill the packet (payload == N)", c->framing);
    size_t frame = gmud_frame_encoded_size(&s->cfg, c->payload);
    s->payload = c->payload;
    s->frames = target / frame;
    s->len = s->frames * frame;
    s->bytes = xmalloc(s->len);
    uint8_t *msg = xmalloc(c->payload);
    int printable = s->cfg.framing == GMUD_FRAMING_LINE;
    size_t at = 0;
    for (size_t i = 0; i < s->frames; i++) {
        fill_payload(msg, c->payload, i, printable);
        ptrdiff_t n = gmud_frame_encode(&s->cfg, msg, c->payload, s->bytes + at, s->len - at, &err);
        if (n <= 0)
            die("gmud_frame_encode failed", err.message);
        at += (size_t)n;
    }
    free(msg);

    /* Chunk sizes uniform in CHUNK_MIN..CHUNK_MAX; the last takes the rest. */
    s->cut = xmalloc((s->len / CHUNK_MIN + 2) * sizeof *s->cut);
    uint64_t rng = CHUNK_SEED;
    size_t pos = 0;
    s->cut[0] = 0;
    while (pos < s->len) {
        size_t n = CHUNK_MIN + (size_t)(bench_rand(&rng) % (CHUNK_MAX - CHUNK_MIN + 1));
        pos += n < s->len - pos ? n : s->len - pos;
        s->cut[++s->chunks] = pos;
    }
}

static void stream_free(stream *s)
{
    free(s->bytes);
    free(s->cut);
}

/* ---- The two timed loops ------------------------------------------------ */

static volatile unsigned g_sink; /* keeps results observable */

static double time_memcpy(const stream *s, uint8_t *dst)
{
    unsigned acc = 0;
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < s->chunks; i++) {
        size_t n = s->cut[i + 1] - s->cut[i];
        memcpy(dst, s->bytes + s->cut[i], n);
        bench_escape(dst);
        acc += dst[n - 1];
    }
    uint64_t t1 = bench_now_ns();
    g_sink = acc;
    return (double)(t1 - t0) / 1e9;
}

/* For the header only: memcpy when source and destination both sit in
 * L1/L2 (one 64 KiB chunk copied over and over), to show how far the
 * RAM-sourced baseline is from cache speed. Best of a few runs, GB/s. */
static double cached_memcpy_gbps(uint8_t *dst)
{
    enum { SIZE = 64 * 1024, REPEAT = 2048 };
    uint8_t *src = xmalloc(SIZE);
    memset(src, 0x5a, SIZE);
    double best = 0;
    unsigned acc = 0;
    for (int run = 0; run < 5; run++) {
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < REPEAT; i++) {
            memcpy(dst, src, SIZE);
            bench_escape(dst);
            acc += dst[i % SIZE];
        }
        double gbps = (double)SIZE * REPEAT / (double)(bench_now_ns() - t0);
        if (gbps > best)
            best = gbps;
    }
    g_sink = acc;
    free(src);
    return best;
}

static gmud_frame_decoder *decoder_new(const stream *s)
{
    gmud_error err;
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&s->cfg, &err);
    if (dec == NULL)
        die("gmud_frame_decoder_create failed", err.message);
    return dec;
}

static void check_end(const stream *s, gmud_frame_decoder *dec, size_t count, size_t sum)
{
    gmud_error err;
    char what[160];
    if (gmud_frame_decoder_finish(dec, &err) != GMUD_OK)
        die("stream did not end between frames", err.message);
    if (count != s->frames || sum != s->frames * s->payload) {
        snprintf(what, sizeof what, "%zu messages / %zu bytes, expected %zu / %zu", count, sum,
                 s->frames, s->frames * s->payload);
        die("decoded the wrong number of messages", what);
    }
}

/* Times one decode of the whole stream; *heap gets the allocations made
 * inside the timed loop (decoder creation is outside it). */
static double time_decode(const stream *s, heap_delta *heap)
{
    gmud_frame_decoder *dec = decoder_new(s);
    gmud_error err;
    gmud_slice msg;
    size_t count = 0, sum = 0;
    heap_mark mark = heap_now();
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < s->chunks; i++) {
        const uint8_t *p = s->bytes + s->cut[i];
        size_t n = s->cut[i + 1] - s->cut[i];
        while (n > 0) {
            ptrdiff_t r = gmud_frame_decode(dec, p, n, &msg, &err);
            if (r < 0)
                die("gmud_frame_decode failed", err.message);
            if (r == 0)
                break; /* the rest was absorbed as a partial frame */
            count++;
            sum += msg.len;
            p += r;
            n -= (size_t)r;
        }
    }
    uint64_t t1 = bench_now_ns();
    *heap = heap_since(mark);
    check_end(s, dec, count, sum);
    gmud_frame_decoder_destroy(dec);
    return (double)(t1 - t0) / 1e9;
}

/* Untimed: every message must be exactly the payload that was encoded. */
static void verify_contents(const stream *s)
{
    gmud_frame_decoder *dec = decoder_new(s);
    uint8_t *want = xmalloc(s->payload);
    int printable = s->cfg.framing == GMUD_FRAMING_LINE;
    gmud_error err;
    gmud_slice msg;
    size_t count = 0, sum = 0;
    for (size_t i = 0; i < s->chunks; i++) {
        const uint8_t *p = s->bytes + s->cut[i];
        size_t n = s->cut[i + 1] - s->cut[i];
        ptrdiff_t r;
        while (n > 0 && (r = gmud_frame_decode(dec, p, n, &msg, &err)) != 0) {
            if (r < 0)
                die("gmud_frame_decode failed", err.message);
            fill_payload(want, s->payload, count, printable);
            if (msg.len != s->payload || memcmp(msg.data, want, s->payload) != 0) {
                char what[64];
                snprintf(what, sizeof what, "message %zu", count);
                die("decoded payload differs from the encoded one", what);
            }
            count++;
            sum += msg.len;
            p += r;
            n -= (size_t)r;
        }
    }
    check_end(s, dec, count, sum);
    gmud_frame_decoder_destroy(dec);
    free(want);
}

/* ---- Reporting ---------------------------------------------------------- */

static void run_case(const bench_case *c, size_t target, int rounds, uint8_t *dst)
{
    char label[32];
    snprintf(label, sizeof label, "%s %zuB", c->framing, c->payload);
    const char *only = getenv("GMUD_BENCH_ONLY");
    if (only != NULL && strcmp(only, label) != 0)
        return;
    stream s;
    stream_build(&s, c, target);
    verify_contents(&s);

    double *tm = xmalloc((size_t)rounds * sizeof *tm);
    double *td = xmalloc((size_t)rounds * sizeof *td);
    heap_delta heap = {0, 0, 0, 0}, h;
    for (int r = 0; r < rounds; r++) {
        /* Alternate the order so neither side always runs on a warm cache. */
        if (r % 2 == 0) {
            tm[r] = time_memcpy(&s, dst);
            td[r] = time_decode(&s, &h);
        } else {
            td[r] = time_decode(&s, &h);
            tm[r] = time_memcpy(&s, dst);
        }
        if (r == 0 || h.allocs > heap.allocs || h.in_use > heap.in_use || h.arena > heap.arena)
            heap = h; /* report the worst round */
    }
    double mb, mm, db, dm;
    bench_best_median(tm, (size_t)rounds, &mb, &mm);
    bench_best_median(td, (size_t)rounds, &db, &dm);

    double bytes = (double)s.len, frames = (double)s.frames;
    printf("%-12s %7zu frames | memcpy best %5.2f GB/s %5.1f Mfr/s, median %5.2f GB/s %5.1f "
           "Mfr/s | decode best %6.2f GB/s %5.1f Mfr/s, median %6.2f GB/s %5.1f Mfr/s "
           "| ratio best %.3f median %.3f | loop allocs ",
           label, s.frames, bytes / mb / 1e9, frames / mb / 1e6, bytes / mm / 1e9,
           frames / mm / 1e6, bytes / db / 1e9, frames / db / 1e6, bytes / dm / 1e9,
           frames / dm / 1e6, mb / db, mm / dm);
    if (heap.allocs >= 0)
        printf("%lld", heap.allocs);
    else
        printf("n/a");
    if (heap.have_info)
        printf(", heap in use %+lld B, arena %+lld B", heap.in_use, heap.arena);
    printf("\n");
    fflush(stdout);
    free(tm);
    free(td);
    stream_free(&s);
}

int main(void)
{
    static const bench_case cases[] = {
        {"gmud", 64}, {"length", 64}, {"line", 64}, {"fixed:64", 64}, {"gmud", 1024},
    };
    long mib = bench_env_long("GMUD_BENCH_MB", 64, 1, 4096);
    int rounds = (int)bench_env_long("GMUD_BENCH_ROUNDS", 25, 1, 1000);
    size_t target = (size_t)mib * 1024 * 1024;

    uint8_t *dst = xmalloc(CHUNK_MAX);
    memset(dst, 0, CHUNK_MAX); /* fault its pages in before any timing */

#ifdef GMUD_BENCH_WRAP_MALLOC
    const char *counted = "";
#else
    const char *counted = ", n/a: not linked with --wrap=malloc";
#endif
    printf("bench_decode: %ld MiB stream per case, chunks %d..%d KiB (fixed seed), %d rounds, "
           "memcpy and decode alternating\n",
           mib, CHUNK_MIN / 1024, CHUNK_MAX / 1024, rounds);
    printf("  baseline: memcpy of each chunk into one %d KiB buffer (the source comes from RAM "
           "when the stream outgrows the caches,\n            as 64 MiB does; the destination "
           "stays in L1/L2)\n",
           CHUNK_MAX / 1024);
    printf("            for scale: memcpy of one 64 KiB chunk with both ends in cache runs at "
           "%.1f GB/s here\n",
           cached_memcpy_gbps(dst));
    printf("  decode:   gmud_frame_decode over the same chunks, every message taken out; "
           "ratio = decode GB/s / memcpy GB/s\n");
    printf("  loop allocs: malloc/calloc/realloc calls inside the timed decode loop (worst round; "
           "decoder creation is outside it)%s;\n  heap: glibc mallinfo2 bytes in use and arena "
           "size, after the loop minus before\n",
           counted);
    bench_print_load();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], target, rounds, dst);
    free(dst);
    return 0;
}
