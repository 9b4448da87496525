/* fuzz/fuzz_json.c: the untrusted-JSON path (gmud_json_parse and friends).
 *
 * Input: one byte that picks tiny limits, then the payload. The payload is
 * parsed under the default limits and under the tiny ones. For each parse
 * (fuzz_json_check in fuzz_common.h): never a crash or a leak; a failure
 * names a documented code, a non-empty message and an offset inside the
 * payload (for bad UTF-8, a non-ASCII byte), and agrees with
 * gmud_json_check_bounds; a success never holds a raw control byte other
 * than JSON whitespace (a NUL, say: tests/core/test_fuzz_regress.c), dumps, the dump
 * parses again under the same limits to an equal value, and dumping that
 * gives the same bytes, and reading it as an error packet
 * (gmud_json_error_packet) is safe. Across the two parses: the tiny limits are all
 * within the defaults, so what they accept (as an object) the defaults
 * accept too, as the same value.
 */
#include "fuzz_common.h"

/* ---- Generated JSON ----------------------------------------------------
 * jansson is a system library without coverage instrumentation, so libFuzzer
 * cannot see progress inside it and rarely builds deep valid JSON by itself.
 * So the payload is also read as a recipe for a mostly valid document
 * (objects, arrays, duplicate-prone keys, escapes, raw and broken UTF-8,
 * big numbers, now and then a stray byte), which goes through the same
 * checks. */

typedef struct recipe {
    const uint8_t *p;
    size_t n, at;
} recipe;

static uint8_t take(recipe *r)
{
    return r->at < r->n ? r->p[r->at++] : 0;
}

static void put(fuzz_bytes *o, const char *text)
{
    fuzz_bytes_add(o, text, strlen(text));
}

static void gen_string(recipe *r, fuzz_bytes *o)
{
    static const char *const pieces[] = {"\\\"", "\\\\", "\\u00e9", "\\ud83d\\ude00",
                                         "\\u0000", "\xc3\xa9", "\\n", "\\/"};
    size_t len = take(r) % 24;
    put(o, "\"");
    for (size_t i = 0; i < len; i++) {
        uint8_t x = take(r);
        if (x % 16 < 8)
            put(o, pieces[x % 16]);
        else if (x % 16 == 8)
            fuzz_bytes_add(o, &x, 1); /* any byte: quotes, controls, bad UTF-8 */
        else
            fuzz_bytes_add(o, &"ab"[x & 1], 1); /* tiny alphabet: duplicate keys */
    }
    put(o, "\"");
}

static void gen_value(recipe *r, fuzz_bytes *o, unsigned depth);

static void gen_container(recipe *r, fuzz_bytes *o, unsigned depth, int obj)
{
    if (depth >= 40) {
        put(o, "0");
        return;
    }
    size_t n = take(r) % 5;
    put(o, obj ? "{" : "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            put(o, ",");
        if (obj) {
            gen_string(r, o);
            put(o, ":");
        }
        gen_value(r, o, depth + 1);
    }
    put(o, obj ? "}" : "]");
}

static void gen_value(recipe *r, fuzz_bytes *o, unsigned depth)
{
    char num[64];
    uint8_t b = take(r);
    switch (b % 8) {
    case 0:
    case 1:
        gen_container(r, o, depth, b % 8 == 0);
        break;
    case 2:
        gen_string(r, o);
        break;
    case 3:
        snprintf(num, sizeof num, "%d", (int8_t)take(r));
        put(o, num);
        break;
    case 4: {
        /* Separate statements: argument evaluation order is unspecified. */
        int whole = (int8_t)take(r);
        unsigned frac = take(r);
        int exp = (int8_t)take(r);
        snprintf(num, sizeof num, "%d.%ue%d", whole, frac, exp);
        put(o, num);
        break;
    }
    case 5:
        put(o, b & 8 ? "true" : b & 16 ? "false" : "null");
        break;
    case 6:
        put(o, b & 8 ? "1e400" : b & 16 ? "9223372036854775808" : "-0");
        break;
    default: { /* a stray byte, then a value */
        uint8_t x = take(r);
        fuzz_bytes_add(o, &x, 1);
        gen_value(r, o, depth);
        break;
    }
    }
}

/* ---- Checks ------------------------------------------------------------ */

/* Limits byte: bits 0-1 depth 1..4, bits 2-3 keys 1..4, bits 4-6 string
 * length 1..29, bit 7 object required. */
static void tiny_limits(uint8_t b, gmud_json_limits *lim)
{
    lim->max_depth = 1 + (b & 3u);
    lim->max_keys = 1 + (b >> 2 & 3u);
    lim->max_string = 1 + (size_t)(b >> 4 & 7u) * 4;
    lim->require_object = b >> 7;
}

static void check_payload(const uint8_t *data, size_t n, const gmud_json_limits *tiny)
{
    gmud_json_limits deflt;
    gmud_json_default_config(&deflt);

    /* The payload in a block of its own size: an over-read is caught. */
    uint8_t *p = fuzz_dup(data, n);

    json_t *big = NULL, *small = NULL;
    int rc_big = fuzz_json_check(p, n, &deflt, &big);
    int rc_small = fuzz_json_check(p, n, tiny, &small);
    if (rc_small == GMUD_OK && json_is_object(small)) {
        FUZZ_CHECK(rc_big == GMUD_OK, "tiny limits accept what the defaults refuse (%s)",
                   gmud_err_name(rc_big));
        FUZZ_CHECK(json_equal(big, small), "the two parses give different values");
    }
    json_decref(big);
    json_decref(small);

    /* Limits that are not usable are refused, whatever the payload. */
    gmud_json_limits bad = *tiny;
    bad.max_keys = 0;
    json_t *v = NULL;
    gmud_error err;
    int rc = gmud_json_parse(p, n, &bad, &v, &err);
    FUZZ_CHECK(rc == GMUD_ERR_INVALID && v == NULL, "zero max_keys gave %d", rc);
    fuzz_check_error(&err, rc, n);
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    gmud_json_limits tiny;
    tiny_limits(data[0], &tiny);
    check_payload(data + 1, size - 1, &tiny);

    recipe r = {data + 1, size - 1, 0};
    fuzz_bytes doc = {NULL, 0, 0};
    /* Top level: an object unless the first recipe byte has bit 7 set, as
     * gmud payloads are objects. */
    if ((take(&r) & 0x80) == 0)
        gen_container(&r, &doc, 0, 1);
    else
        gen_value(&r, &doc, 0);
    check_payload(doc.p ? doc.p : (const uint8_t *)"", doc.len, &tiny);
    fuzz_bytes_free(&doc);
    return 0;
}
