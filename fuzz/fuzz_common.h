/* fuzz/fuzz_common.h: helpers shared by the libFuzzer targets.
 *
 * A violated invariant prints what broke and calls abort(): libFuzzer then
 * saves the input as a crash artifact. Everything here is static inline so a
 * target that uses only part of it compiles without unused-function warnings.
 */
#ifndef GMUD_FUZZ_COMMON_H
#define GMUD_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmud/error.h"
#include "gmud/json.h"

#define FUZZ_CHECK(cond, ...)                                                             \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: invariant failed: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Allocation failure is not what we are fuzzing: stop loudly. */
static inline void *fuzz_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    FUZZ_CHECK(p != NULL, "out of memory asking for %zu bytes", n);
    return p;
}

/* A copy of p[0..n) in a block of exactly n bytes, so that ASan reports any
 * read past the end of what the caller handed over. */
static inline uint8_t *fuzz_dup(const uint8_t *p, size_t n)
{
    uint8_t *q = fuzz_alloc(n);
    if (n > 0)
        memcpy(q, p, n);
    return q;
}

/* A growable byte string. */
typedef struct fuzz_bytes {
    uint8_t *p;
    size_t len;
    size_t cap;
} fuzz_bytes;

static inline void fuzz_bytes_add(fuzz_bytes *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        FUZZ_CHECK(q != NULL, "out of memory growing to %zu bytes", cap);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static inline void fuzz_bytes_free(fuzz_bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Deterministic pseudo-random numbers from the input (xorshift32). */
static inline uint32_t fuzz_rand(uint32_t *state)
{
    uint32_t x = *state ? *state : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* A filled-in gmud_error must carry the code returned, a non-empty
 * NUL-terminated sentence and an offset inside the input. */
static inline void fuzz_check_error(const gmud_error *err, int code, size_t input_len)
{
    FUZZ_CHECK(code < 0 && code > GMUD_ERR_LAST_, "code %d is not a gmud error", code);
    FUZZ_CHECK(err->code == code, "err.code %d but %d returned", err->code, code);
    size_t mlen = strnlen(err->message, sizeof err->message);
    FUZZ_CHECK(mlen > 0 && mlen < sizeof err->message, "error message empty or unterminated (%s)",
               gmud_err_name(code));
    FUZZ_CHECK(err->offset <= input_len, "error offset %zu beyond the %zu-byte input: %s",
               err->offset, input_len, err->message);
    FUZZ_CHECK(gmud_strerror(code)[0] != '\0' && gmud_err_name(code)[0] != '\0',
               "code %d has no description", code);
}

static inline int fuzz_json_code_documented(int rc)
{
    switch (rc) {
    case GMUD_ERR_BAD_JSON:
    case GMUD_ERR_BAD_UTF8:
    case GMUD_ERR_NOT_OBJECT:
    case GMUD_ERR_TOO_DEEP:
    case GMUD_ERR_TOO_MANY_KEYS:
    case GMUD_ERR_STRING_TOO_LONG:
    case GMUD_ERR_DUPLICATE_KEY:
    case GMUD_ERR_NOMEM:
    case GMUD_ERR_INVALID:
        return 1;
    default:
        return 0;
    }
}

/* Dumps v, checks the exact-fit and one-short buffer cases, parses the dump
 * again under the same limits and checks it is the same value and that
 * dumping it again gives the same bytes. */
static inline void fuzz_json_dump_round_trip(const json_t *v, const gmud_json_limits *lim)
{
    gmud_error err;
    /* gmud_json_dump takes any value (JSON_ENCODE_ANY), scalars included. */
    size_t need = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    FUZZ_CHECK(need > 0, "jansson cannot dump an accepted value");
    uint8_t *buf = fuzz_alloc(need);
    ptrdiff_t r = gmud_json_dump(v, buf, need - 1, &err);
    FUZZ_CHECK(r == GMUD_ERR_UNENCODABLE, "dump into %zu bytes (one short) returned %td", need - 1,
               r);
    r = gmud_json_dump(v, buf, need, &err);
    FUZZ_CHECK(r == (ptrdiff_t)need, "dump into exactly %zu bytes returned %td", need, r);

    json_t *again = NULL;
    int rc = gmud_json_parse(buf, need, lim, &again, &err);
    FUZZ_CHECK(rc == GMUD_OK, "the dump of an accepted value is refused (%s): %.*s", err.message,
               (int)need, (const char *)buf);
    FUZZ_CHECK(json_equal(v, again), "dump re-parses to a different value: %.*s", (int)need,
               (const char *)buf);
    uint8_t *buf2 = fuzz_alloc(need);
    r = gmud_json_dump(again, buf2, need, &err);
    FUZZ_CHECK(r == (ptrdiff_t)need && memcmp(buf, buf2, need) == 0,
               "dumping the re-parsed value gives different bytes: %.*s", (int)need,
               (const char *)buf);
    json_decref(again);
    free(buf2);
    free(buf);
}

/* Parses p[0..n) under lim and checks the parse contract: on failure a
 * documented code, no value, a filled error, and the bounds pass agreeing
 * when it is the pass that refused; on success the dump round trip. Returns
 * the parse result; *keep (if not NULL) receives the value on success,
 * otherwise the value is freed here. */
static inline int fuzz_json_check(const uint8_t *p, size_t n, const gmud_json_limits *lim,
                                  json_t **keep)
{
    json_t *v = (json_t *)(uintptr_t)1; /* must be reset to NULL on failure */
    gmud_error err;
    memset(&err, 0x5a, sizeof err);
    int rc = gmud_json_parse(p, n, lim, &v, &err);

    gmud_error berr;
    memset(&berr, 0x5a, sizeof berr);
    int brc = gmud_json_check_bounds(p, n, lim, &berr);

    if (rc != GMUD_OK) {
        FUZZ_CHECK(v == NULL, "parse failed (%d) but *out is not NULL", rc);
        FUZZ_CHECK(fuzz_json_code_documented(rc), "undocumented parse error %d", rc);
        fuzz_check_error(&err, rc, n);
        /* The offset names the offending byte: for bad UTF-8, a byte that
         * is not ASCII. */
        FUZZ_CHECK(rc != GMUD_ERR_BAD_UTF8 || (err.offset < n && p[err.offset] >= 0x80),
                   "bad UTF-8 reported at byte %zu of %zu, which is ASCII or past the end",
                   err.offset, n);
        if (brc != GMUD_OK) {
            FUZZ_CHECK(brc == rc && berr.offset == err.offset,
                       "bounds pass says %d at %zu, parse says %d at %zu", brc, berr.offset, rc,
                       err.offset);
            fuzz_check_error(&berr, brc, n);
        }
        if (keep != NULL)
            *keep = NULL;
        return rc;
    }
    FUZZ_CHECK(v != NULL, "parse succeeded without a value");
    /* RFC 8259 allows no raw control byte anywhere but the four whitespace
     * ones outside strings: an accepted payload holding one (a NUL, say) is
     * text other JSON parsers, the lecture's Python among them, refuse. */
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(p[i] >= 0x20 || p[i] == '\t' || p[i] == '\n' || p[i] == '\r',
                   "accepted a payload with raw control byte 0x%02x at %zu", p[i], i);
    FUZZ_CHECK(brc == GMUD_OK, "parse accepted what the bounds pass refuses: %s", berr.message);
    FUZZ_CHECK(!lim->require_object || json_is_object(v), "an object was required");
    fuzz_json_dump_round_trip(v, lim);
    /* Any accepted value may arrive where an error packet could: reading
     * it as one is safe, and says yes only for the documented shape. */
    gmud_error pe;
    if (gmud_json_error_packet(v, &pe))
        FUZZ_CHECK(json_object_size(v) == 2 && pe.message[0] != '\0' &&
                       (pe.code == GMUD_OK || gmud_err_name(pe.code)[0] != '\0'),
                   "error packet read from a value of another shape");
    if (keep != NULL)
        *keep = v;
    else
        json_decref(v);
    return rc;
}

#endif
