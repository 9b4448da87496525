/* The framing core: round trips, every split point, every error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gmud/frame.h"

#define MAX_MSGS 1024

/* Messages collected from a decoder, copied out of its slices. */
typedef struct collected {
    size_t count;
    size_t len[MAX_MSGS];
    uint8_t *data[MAX_MSGS];
    int rc;           /* last negative code, or 0 */
    gmud_error err;
} collected;

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->data[i]);
    memset(c, 0, sizeof *c);
}

/* Feeds one chunk, draining every message it completes. */
static void feed(gmud_frame_decoder *dec, const uint8_t *p, size_t n, collected *c)
{
    while (n > 0 && c->rc == 0) {
        gmud_slice msg;
        ptrdiff_t used = gmud_frame_decode(dec, p, n, &msg, &c->err);
        if (used < 0) {
            c->rc = (int)used;
            return;
        }
        if (used == 0)
            return;
        CHECK((size_t)used <= n);
        if (c->count < MAX_MSGS) {
            c->data[c->count] = malloc(msg.len ? msg.len : 1);
            memcpy(c->data[c->count], msg.data, msg.len);
            c->len[c->count++] = msg.len;
        }
        p += used;
        n -= (size_t)used;
    }
}

/* Decodes data cut at the given points (ascending, within len). */
static void decode_cut(const gmud_frame_config *cfg, const uint8_t *data, size_t len,
                       const size_t *cuts, size_t ncuts, collected *c)
{
    memset(c, 0, sizeof *c);
    gmud_frame_decoder *dec = gmud_frame_decoder_create(cfg, NULL);
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        feed(dec, data + from, to - from, c);
        from = to;
    }
    if (c->rc == 0)
        c->rc = gmud_frame_decoder_finish(dec, &c->err);
    gmud_frame_decoder_destroy(dec);
}

static int same(const collected *a, const collected *b)
{
    if (a->count != b->count || a->rc != b->rc)
        return 0;
    for (size_t i = 0; i < a->count; i++)
        if (a->len[i] != b->len[i] || memcmp(a->data[i], b->data[i], a->len[i]) != 0)
            return 0;
    return 1;
}

static size_t encode_all(const gmud_frame_config *cfg, uint8_t *out, size_t cap,
                         uint8_t *const *msgs, const size_t *lens, size_t n)
{
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        ptrdiff_t w = gmud_frame_encode(cfg, msgs[i], lens[i], out + used, cap - used, NULL);
        CHECK(w >= 0);
        if (w < 0)
            return used;
        used += (size_t)w;
    }
    return used;
}

static void fill(uint8_t *p, size_t n, unsigned seed, const gmud_frame_config *cfg)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
        /* Text framings cannot carry their terminator (line) and the
         * fixed round trip compares after padding, so keep bytes non-zero
         * and off the delimiter there. */
        if (cfg->framing == GMUD_FRAMING_LINE || cfg->framing == GMUD_FRAMING_FIXED)
            p[i] = (uint8_t)('a' + p[i] % 26);
    }
}

static const char *const all_specs[] = {"raw", "line", "fixed:100", "length", "gmud"};

/* Sizes 0, 1, typical and the maximum survive encode + decode, and a frame
 * whole in the input comes back as a slice of it (no copy). */
static void test_round_trip_sizes(void)
{
    for (size_t s = 0; s < 5; s++) {
        gmud_frame_config cfg;
        CHECK_EQ_INT(gmud_frame_config_parse(&cfg, all_specs[s], NULL), 0);
        size_t max = cfg.framing == GMUD_FRAMING_FIXED ? cfg.fixed_size : cfg.max_message;
        size_t sizes[] = {0, 1, 89, max};
        size_t cap = gmud_frame_encoded_size(&cfg, max);
        uint8_t *payload = malloc(max), *wire = malloc(cap);
        for (size_t k = 0; k < 4; k++) {
            size_t n = sizes[k];
            if (cfg.framing == GMUD_FRAMING_RAW && n == 0)
                continue; /* raw has no frame for "nothing" */
            fill(payload, n, (unsigned)(k + 7), &cfg);
            ptrdiff_t w = gmud_frame_encode(&cfg, payload, n, wire, cap, NULL);
            CHECK_EQ_INT(w, (ptrdiff_t)gmud_frame_encoded_size(&cfg, n));
            gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, NULL);
            gmud_slice msg = {0};
            CHECK_EQ_INT(gmud_frame_decode(dec, wire, (size_t)w, &msg, NULL), w);
            if (cfg.framing == GMUD_FRAMING_FIXED) {
                CHECK_EQ_INT(msg.len, cfg.fixed_size);
                msg = gmud_frame_trim_padding(msg);
            }
            CHECK_MEM(msg.data, msg.len, payload, n);
            CHECK(n == 0 || (msg.data >= wire && msg.data < wire + w));
            CHECK_EQ_INT(gmud_frame_decoder_finish(dec, NULL), 0);
            gmud_frame_decoder_destroy(dec);
        }
        free(payload);
        free(wire);
    }
}

/* A stream of many frames decodes identically however it is cut: whole,
 * at every single point, byte by byte, and at random points. */
static void check_all_cuts(const gmud_frame_config *cfg)
{
    enum { N = 40 };
    uint8_t *msgs[N];
    size_t lens[N];
    for (size_t i = 0; i < N; i++) {
        size_t max = cfg->framing == GMUD_FRAMING_FIXED ? cfg->fixed_size : 300;
        lens[i] = (i * 37 + 3) % (max + 1);
        msgs[i] = malloc(lens[i] + 1);
        fill(msgs[i], lens[i], (unsigned)i, cfg);
    }
    size_t cap = N * gmud_frame_encoded_size(cfg, 400);
    uint8_t *wire = malloc(cap);
    size_t len = encode_all(cfg, wire, cap, msgs, lens, N);

    collected whole, other;
    decode_cut(cfg, wire, len, NULL, 0, &whole);
    CHECK_EQ_INT(whole.rc, 0);
    CHECK_EQ_INT(whole.count, N);
    for (size_t i = 0; i < whole.count && i < N; i++) {
        size_t n = whole.len[i];
        if (cfg->framing == GMUD_FRAMING_FIXED)
            n = gmud_frame_trim_padding((gmud_slice){whole.data[i], n}).len;
        CHECK_MEM(whole.data[i], n, msgs[i], lens[i]);
    }
    int all_same = 1;
    for (size_t cut = 1; cut < len; cut++) {
        decode_cut(cfg, wire, len, &cut, 1, &other);
        all_same &= same(&whole, &other);
        collected_free(&other);
    }
    CHECK(all_same);

    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    decode_cut(cfg, wire, len, cuts, len - 1, &other);
    CHECK(same(&whole, &other));
    collected_free(&other);

    srand(1234);
    for (int round = 0; round < 50; round++) {
        size_t n = 0;
        for (size_t at = (size_t)rand() % 64 + 1; at < len; at += (size_t)rand() % 200 + 1)
            cuts[n++] = at;
        decode_cut(cfg, wire, len, cuts, n, &other);
        all_same &= same(&whole, &other);
        collected_free(&other);
    }
    CHECK(all_same);
    free(cuts);
    collected_free(&whole);
    free(wire);
    for (size_t i = 0; i < N; i++)
        free(msgs[i]);
}

static void test_every_cut(void)
{
    const char *specs[] = {"line", "fixed:100", "fixed:1", "length", "gmud"};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        gmud_frame_config cfg;
        gmud_frame_config_parse(&cfg, specs[s], NULL);
        check_all_cuts(&cfg);
    }
    /* Multi-byte delimiters straddle cuts in every possible way. */
    const char *delims[] = {"\\r\\n", "END", "\\x00\\xff\\x00"};
    for (size_t d = 0; d < 3; d++) {
        gmud_frame_config cfg;
        gmud_frame_default_config(&cfg, GMUD_FRAMING_LINE);
        CHECK_EQ_INT(gmud_frame_config_set_delim(&cfg, delims[d], NULL), 0);
        check_all_cuts(&cfg);
    }
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_GMUD);
    gmud_frame_config_set_label(&cfg, "MUD2", NULL);
    check_all_cuts(&cfg);
}

/* Hundreds of frames in one 64 KiB read come out one call each. */
static void test_big_read(void)
{
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_GMUD);
    static uint8_t wire[65536];
    uint8_t payload[64];
    memset(payload, 'x', sizeof payload);
    size_t used = 0, frames = 0;
    while (used + 70 <= sizeof wire) {
        used += (size_t)gmud_frame_encode(&cfg, payload, 64, wire + used, sizeof wire - used, NULL);
        frames++;
    }
    collected c;
    decode_cut(&cfg, wire, used, NULL, 0, &c);
    CHECK_EQ_INT(c.rc, 0);
    CHECK_EQ_INT(c.count, frames);
    CHECK(frames > 900);
    collected_free(&c);
}

static void test_bad_label(void)
{
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_GMUD);
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, NULL);
    const uint8_t good[] = {'G', 'M', 'U', 'D', 1, 0, 'a'};
    const uint8_t bad[] = {'X', 'M', 'U', 'D', 1, 0, 'b'};
    gmud_slice msg;
    gmud_error err;
    CHECK_EQ_INT(gmud_frame_decode(dec, good, sizeof good, &msg, &err), 7);
    CHECK_EQ_INT(gmud_frame_decode(dec, bad, sizeof bad, &msg, &err), GMUD_ERR_BAD_LABEL);
    CHECK_EQ_INT(err.code, GMUD_ERR_BAD_LABEL);
    CHECK_EQ_INT(err.offset, 7);
    CHECK_CONTAINS(err.message, "expected 47 4d 55 44");
    CHECK_CONTAINS(err.message, "got 58 4d 55 44");
    CHECK_CONTAINS(err.message, "stream byte 7");
    /* Sticky: the good frame after it is refused, not resynchronised on. */
    CHECK_EQ_INT(gmud_frame_decode(dec, good, sizeof good, &msg, &err), GMUD_ERR_BAD_LABEL);
    CHECK_EQ_INT(gmud_frame_decoder_finish(dec, &err), GMUD_ERR_BAD_LABEL);
    gmud_frame_decoder_reset(dec);
    CHECK_EQ_INT(gmud_frame_decode(dec, good, sizeof good, &msg, &err), 7);

    /* Detected on the first wrong byte, before the rest arrives. */
    gmud_frame_decoder_reset(dec);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"G", 1, &msg, &err), 0);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"E", 1, &msg, &err), GMUD_ERR_BAD_LABEL);
    CHECK_CONTAINS(err.message, "got 47 45");
    gmud_frame_decoder_destroy(dec);
}

/* An over-long length field is refused from the header alone. */
static void test_too_long_header(void)
{
    const char *specs[] = {"length", "gmud"};
    for (int s = 0; s < 2; s++) {
        gmud_frame_config cfg;
        gmud_frame_config_parse(&cfg, specs[s], NULL);
        cfg.max_message = 1000;
        gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, NULL);
        uint8_t hdr[6] = {'G', 'M', 'U', 'D', 0xe9, 0x03}; /* 1001 */
        const uint8_t *h = s == 0 ? hdr + 4 : hdr;
        size_t hl = s == 0 ? 2 : 6;
        gmud_slice msg;
        gmud_error err;
        /* Split in the middle of the header too. */
        CHECK_EQ_INT(gmud_frame_decode(dec, h, hl - 1, &msg, &err), 0);
        CHECK_EQ_INT(gmud_frame_decode(dec, h + hl - 1, 1, &msg, &err), GMUD_ERR_TOO_LONG);
        CHECK_CONTAINS(err.message, "announces 1001 bytes, over the maximum of 1000");
        CHECK_EQ_INT(gmud_frame_decoder_pending(dec), hl);
        gmud_frame_decoder_destroy(dec);
    }
}

/* A line with no delimiter is refused once it passes the maximum, without
 * waiting for (or buffering beyond) it. */
static void test_line_too_long(void)
{
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_LINE);
    cfg.max_message = 10;
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, NULL);
    gmud_slice msg;
    gmud_error err;
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"0123456789\n", 11, &msg, &err), 11);
    CHECK_EQ_INT(msg.len, 10);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"0123456789", 10, &msg, &err), 0);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"a", 1, &msg, &err), GMUD_ERR_TOO_LONG);
    CHECK_CONTAINS(err.message, "line at stream byte 11 is longer than the maximum of 10");
    CHECK(gmud_frame_decoder_pending(dec) <= 11);
    gmud_frame_decoder_destroy(dec);

    /* In one big read, too: the search stops at the maximum. */
    dec = gmud_frame_decoder_create(&cfg, NULL);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"0123456789abcdef\n", 17, &msg, &err),
                 GMUD_ERR_TOO_LONG);
    gmud_frame_decoder_destroy(dec);

    /* A two-byte delimiter: 10 bytes then "\r" may still end well. */
    gmud_frame_config_set_delim(&cfg, "\\r\\n", NULL);
    dec = gmud_frame_decoder_create(&cfg, NULL);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"0123456789\r", 11, &msg, &err), 0);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"\n", 1, &msg, &err), 1);
    CHECK_MEM(msg.data, msg.len, "0123456789", 10);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"0123456789\rx", 12, &msg, &err),
                 GMUD_ERR_TOO_LONG);
    gmud_frame_decoder_destroy(dec);
}

static void test_raw(void)
{
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_RAW);
    cfg.max_message = 8;
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, NULL);
    gmud_slice msg;
    gmud_error err;
    /* Each chunk is one message: two glued sends come out as one. */
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"0:a1:b", 6, &msg, &err), 6);
    CHECK_MEM(msg.data, msg.len, "0:a1:b", 6);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"", 0, &msg, &err), 0);
    /* A chunk over the maximum is cut, not refused (PROTOCOL.md 2.1). */
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"123456789", 9, &msg, &err), 8);
    CHECK_MEM(msg.data, msg.len, "12345678", 8);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"9", 1, &msg, &err), 1);
    CHECK_MEM(msg.data, msg.len, "9", 1);
    gmud_frame_decoder_destroy(dec);
}

static void check_truncated(const char *spec, const char *input, size_t n, const char *want)
{
    gmud_frame_config cfg;
    gmud_frame_config_parse(&cfg, spec, NULL);
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, NULL);
    gmud_slice msg;
    gmud_error err;
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)input, n, &msg, &err), 0);
    CHECK_EQ_INT(gmud_frame_decoder_finish(dec, &err), GMUD_ERR_TRUNCATED);
    CHECK_CONTAINS(err.message, want);
    gmud_frame_decoder_destroy(dec);
}

static void test_truncated(void)
{
    check_truncated("gmud", "GMU", 3, "inside a frame header at stream byte 0: 3 of 6 header bytes");
    check_truncated("gmud", "GMUD\x05\x00" "abc", 9, "9 of 11 bytes received, 2 missing");
    check_truncated("length", "\x05", 1, "1 of 2 header bytes");
    check_truncated("length", "\x05\x00" "a", 3, "3 of 7 bytes received, 4 missing");
    check_truncated("fixed:100", "hello", 5, "5 of 100 bytes received, 95 missing");
    check_truncated("line", "no newline", 10, "inside a line at stream byte 0: 10 bytes");
}

static void test_encode_refusals(void)
{
    static uint8_t big[70000], out[70010];
    gmud_error err;
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_LENGTH);
    CHECK_EQ_INT(gmud_frame_encode(&cfg, big, 65535, out, sizeof out, &err), 65537);
    CHECK_EQ_INT(gmud_frame_encode(&cfg, big, 65536, out, sizeof out, &err), GMUD_ERR_UNENCODABLE);
    CHECK_CONTAINS(err.message, "65536 bytes exceeds the length framing's maximum of 65535");
    gmud_frame_default_config(&cfg, GMUD_FRAMING_GMUD);
    CHECK_EQ_INT(gmud_frame_encode(&cfg, big, 65536, out, sizeof out, &err), GMUD_ERR_UNENCODABLE);
    CHECK_EQ_INT(gmud_frame_encode(&cfg, big, 10, out, 15, &err), GMUD_ERR_INVALID);
    CHECK_CONTAINS(err.message, "needs 16 bytes, 15 available");

    gmud_frame_config_parse(&cfg, "fixed:100", NULL);
    CHECK_EQ_INT(gmud_frame_encode(&cfg, big, 100, out, sizeof out, &err), 100);
    CHECK_EQ_INT(gmud_frame_encode(&cfg, big, 101, out, sizeof out, &err), GMUD_ERR_UNENCODABLE);

    gmud_frame_default_config(&cfg, GMUD_FRAMING_LINE);
    CHECK_EQ_INT(gmud_frame_encode(&cfg, "a\nb", 3, out, sizeof out, &err), GMUD_ERR_UNENCODABLE);
    CHECK_CONTAINS(err.message, "delimiter at byte 1");
    /* "x" + "aa": a payload ending in the delimiter's first byte would be
     * cut short by the receiver. */
    gmud_frame_config_set_delim(&cfg, "aa", NULL);
    CHECK_EQ_INT(gmud_frame_encode(&cfg, "xa", 2, out, sizeof out, &err), GMUD_ERR_UNENCODABLE);
    CHECK_EQ_INT(gmud_frame_encode(&cfg, "xb", 2, out, sizeof out, &err), 4);
}

static void test_config(void)
{
    gmud_frame_config cfg;
    gmud_error err;
    CHECK_EQ_INT(gmud_frame_config_parse(&cfg, "fixed:64", &err), 0);
    CHECK_EQ_INT(cfg.fixed_size, 64);
    CHECK_EQ_INT(gmud_frame_config_parse(&cfg, "fixed", &err), 0);
    CHECK_EQ_INT(cfg.fixed_size, 100);
    CHECK_EQ_INT(gmud_frame_config_parse(&cfg, "fixed:0", &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_frame_config_parse(&cfg, "fixed:", &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_frame_config_parse(&cfg, "fixed:12x", &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_frame_config_parse(&cfg, "fixed:99999999999999999999", &err),
                 GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_frame_config_parse(&cfg, "lines", &err), GMUD_ERR_INVALID);
    CHECK_CONTAINS(err.message, "unknown framing 'lines'");
    CHECK_EQ_INT(gmud_frame_config_set_label(&cfg, "GMUDX", &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_frame_config_set_delim(&cfg, "\\q", &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_frame_config_set_delim(&cfg, "123456789", &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_frame_config_set_delim(&cfg, "", &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_frame_config_set_delim(&cfg, "\\r\\n\\x00\\t\\\\", &err), 0);
    CHECK_MEM(cfg.delim, cfg.delim_len, "\r\n\0\t\\", 5);
    gmud_frame_default_config(&cfg, GMUD_FRAMING_LENGTH);
    cfg.max_message = 65536;
    CHECK_EQ_INT(gmud_frame_config_check(&cfg, &err), GMUD_ERR_INVALID);
    CHECK(gmud_frame_decoder_create(&cfg, &err) == NULL);
    cfg.max_message = 0;
    CHECK_EQ_INT(gmud_frame_config_check(&cfg, &err), GMUD_ERR_INVALID);
    CHECK(strcmp(gmud_err_name(GMUD_ERR_BAD_LABEL), "bad_label") == 0);
    CHECK(strcmp(gmud_strerror(12345), "unknown error") == 0);
}

/* The partial buffer is released on request and never outgrows a frame. */
static void test_memory(void)
{
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_LENGTH);
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, NULL);
    gmud_slice msg;
    uint8_t frame[2 + 300] = {0x2c, 0x01};
    CHECK_EQ_INT(gmud_frame_decode(dec, frame, 100, &msg, NULL), 0);
    CHECK_EQ_INT(gmud_frame_decoder_pending(dec), 100);
    gmud_frame_decoder_shrink(dec); /* refused while a frame is held */
    CHECK_EQ_INT(gmud_frame_decode(dec, frame + 100, sizeof frame - 100, &msg, NULL), 202);
    CHECK_EQ_INT(msg.len, 300);
    CHECK_EQ_INT(gmud_frame_decoder_pending(dec), 0);
    gmud_frame_decoder_shrink(dec);
    CHECK_EQ_INT(gmud_frame_decode(dec, frame, sizeof frame, &msg, NULL), 302);
    gmud_frame_decoder_destroy(dec);
    gmud_frame_decoder_destroy(NULL);
}

int main(void)
{
    test_round_trip_sizes();
    test_every_cut();
    test_big_read();
    test_bad_label();
    test_too_long_header();
    test_line_too_long();
    test_raw();
    test_truncated();
    test_encode_refusals();
    test_config();
    test_memory();
    return check_report("test_frame");
}
