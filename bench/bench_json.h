/* bench/bench_json.h: what bench_json.c needs from the json-c and cJSON
 * halves of the benchmark.
 *
 * jansson and json-c cannot share a translation unit (both declare
 * json_object, json_type, json_object_get, ... with different meanings), so
 * each library's code lives in its own file and speaks only plain C types.
 */
#ifndef GMUD_BENCH_JSON_H
#define GMUD_BENCH_JSON_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* A strictness verdict: did the library accept the input, and what it made
 * of it (the value re-serialised by the same library) or its error. */
enum { VERDICT_REJECT = 'R', VERDICT_ACCEPT = 'A', VERDICT_PREFIX = 'P', VERDICT_CRASH = 'C' };

typedef struct bench_verdict {
    char code;      /* one of VERDICT_* */
    char note[120];
} bench_verdict;

/* The lecture's object in p[0..n): parse, read time, message and value;
 * returns strlen(time) + strlen(message) + value, or 0 on any failure. */
size_t bench_jsonc_parse(const char *p, size_t n);
size_t bench_cjson_parse(const char *p, size_t n);

/* Builds {"time": time, "message": message, "value": value} and writes it
 * compactly into out[0..cap); returns bytes written, or 0 on failure. */
size_t bench_jsonc_build(const char *time, const char *message, long value, char *out,
                         size_t cap);
size_t bench_cjson_build(const char *time, const char *message, long value, char *out,
                         size_t cap);

/* The strictness probe: parses p[0..n) as a peer's payload would be. */
bench_verdict bench_jsonc_try(const char *p, size_t n, int strict);
bench_verdict bench_cjson_try(const char *p, size_t n);

const char *bench_jsonc_version(void);
const char *bench_cjson_version(void);
void bench_jsonc_init(void);
void bench_jsonc_fini(void);

/* s[0..n) made printable, other bytes as \xNN, cut with "..." to fit cap. */
static inline void bench_show(char *out, size_t cap, const char *s, size_t n)
{
    size_t used = 0, i = 0;
    for (; i < n && used + 8 < cap; i++) { /* 8: one escape plus "..." and NUL */
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            out[used++] = (char)c;
        else
            used += (size_t)snprintf(out + used, cap - used, "\\x%02x", c);
    }
    if (i < n) {
        memcpy(out + used, "...", 3);
        used += 3;
    }
    out[used] = '\0';
}

/* Appends "; stopped at byte end of n" to a note. */
static inline void bench_note_stop(bench_verdict *v, size_t end, size_t n)
{
    size_t used = strlen(v->note);
    snprintf(v->note + used, sizeof v->note - used, "; stopped at byte %zu of %zu", end, n);
}

#endif
