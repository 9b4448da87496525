/* fuzz/fuzz_frame.c: one libFuzzer target per framing.
 *
 * Built five times, with FUZZ_FRAMING set to each GMUD_FRAMING_* value.
 *
 * Input layout (FUZZ_HDR bytes of setup, then the stream):
 *   [0..1]  max_message: bit 15 set -> 65535, else 1 + value % 300
 *   [2]     line: delimiter length 1 + b % 3; fixed: size low byte (the size
 *           is 1 + value % min(max_message, 8192));
 *           gmud: bit 0 set -> label from [3..6], else "GMUD"
 *   [3..6]  line: delimiter bytes; fixed: [3] is the size's high byte;
 *           gmud: the label
 *   [7]     how the stream is cut into chunks (see next_chunk)
 *   [8..9]  seed for the chunk sizes
 *
 * Checks, on the rest of the input taken as a stream:
 *   - consumed never exceeds what was passed; 0 means all was absorbed
 *     (pending grew by exactly that much); pending never exceeds one frame;
 *   - every message is at most max_message bytes (fixed: exactly N);
 *   - after an error every later call, and finish, returns the same code;
 *   - finish says 0 exactly when nothing is pending, else TRUNCATED;
 *   - fed whole, fed byte by byte and fed in pseudo-random chunks, the
 *     stream gives the same messages and the same final result (raw: each
 *     chunk is its own message, by definition);
 *   - a reset decoder behaves like a new one.
 * And, taking the rest as [len][payload]... records, a write-then-read round
 * trip: gmud_frame_encode each payload (checking exactly which ones it must
 * refuse and the bytes it writes), then decode the concatenation in the same
 * three ways and get the payloads back.
 */
#include "fuzz_common.h"

#include "gmud/frame.h"

#ifndef FUZZ_FRAMING
#error "compile with -DFUZZ_FRAMING=GMUD_FRAMING_<name>"
#endif

/* FUZZ_WIRE_MAX bounds the round trip's encoded stream: fixed:N with a large
 * N turns every empty payload into N bytes, and byte-at-a-time decoding of
 * hundreds of megabytes would stall the fuzzer. */
enum { FUZZ_HDR = 10, FUZZ_SMALL_MAX = 300, FUZZ_WIRE_MAX = 1 << 13 };

static const gmud_framing framing = FUZZ_FRAMING;

/* ---- Setup ------------------------------------------------------------- */

typedef struct setup {
    gmud_frame_config cfg;
    unsigned mode;
    uint32_t seed;
} setup;

static void read_setup(const uint8_t *h, setup *s)
{
    gmud_frame_default_config(&s->cfg, framing);
    unsigned m = h[0] | (unsigned)h[1] << 8;
    s->cfg.max_message = (m & 0x8000) ? GMUD_MAX_MESSAGE_DEFAULT : 1 + m % FUZZ_SMALL_MAX;
    if (framing == GMUD_FRAMING_LINE) {
        s->cfg.delim_len = 1 + h[2] % 3;
        memcpy(s->cfg.delim, h + 3, s->cfg.delim_len);
    } else if (framing == GMUD_FRAMING_FIXED) {
        /* At most 8 KiB: larger packets exercise nothing new, and every
         * round-trip payload would cost a whole packet of padding. */
        size_t most = s->cfg.max_message < 8192 ? s->cfg.max_message : 8192;
        s->cfg.fixed_size = 1 + (h[2] | (size_t)h[3] << 8) % most;
    } else if (framing == GMUD_FRAMING_GMUD && (h[2] & 1)) {
        memcpy(s->cfg.label, h + 3, GMUD_LABEL_SIZE);
    }
    s->mode = h[7];
    s->seed = (uint32_t)h[7] << 16 | (uint32_t)h[8] << 8 | h[9];
}

static size_t header_bytes(void)
{
    return framing == GMUD_FRAMING_GMUD ? 2 + GMUD_LABEL_SIZE
         : framing == GMUD_FRAMING_LENGTH ? 2
                                          : 0;
}

/* Most bytes a decoder may hold as a partial frame. */
static size_t max_pending(const gmud_frame_config *cfg)
{
    switch (framing) {
    case GMUD_FRAMING_RAW:
        return 0;
    case GMUD_FRAMING_LINE:
        return cfg->max_message + cfg->delim_len - 1;
    case GMUD_FRAMING_FIXED:
        return cfg->fixed_size - 1;
    default:
        return header_bytes() + cfg->max_message - 1;
    }
}

/* ---- Chunking ---------------------------------------------------------- */

typedef enum cut { CUT_WHOLE, CUT_BYTES, CUT_RANDOM, CUT_LIST } cut;

typedef struct chunker {
    cut how;
    unsigned mode;       /* CUT_RANDOM */
    uint32_t rng;        /* CUT_RANDOM */
    const size_t *sizes; /* CUT_LIST */
    size_t nsizes, next;
} chunker;

static size_t next_chunk(chunker *c, size_t left, size_t frame)
{
    size_t n;
    uint32_t r;
    switch (c->how) {
    case CUT_WHOLE:
        return left;
    case CUT_BYTES:
        return left ? 1 : 0;
    case CUT_LIST:
        return c->next < c->nsizes ? c->sizes[c->next++] : left;
    default:
        break;
    }
    r = fuzz_rand(&c->rng);
    switch (c->mode & 3) {
    case 0: /* small pieces: splits headers and delimiters */
        n = 1 + r % 8;
        break;
    case 1: /* around a frame: straddles one boundary at a time */
        n = 1 + r % (2 * frame + 1);
        break;
    case 2: /* mostly single bytes, now and then a big piece */
        n = (r & 7) == 0 ? 1 + (r >> 3) % (4 * frame + 1) : 1;
        break;
    default: /* big pieces: many frames per call */
        n = 1 + r % 4096;
        break;
    }
    return n < left ? n : left;
}

/* ---- Decoding ---------------------------------------------------------- */

/* What one decoding of a stream gave. */
typedef struct run {
    fuzz_bytes bytes; /* the messages, concatenated */
    size_t *lens;
    size_t count, lcap;
    int code;         /* first error, else finish's result */
    size_t offset;    /* err.offset of code */
} run;

static void run_add(run *out, gmud_slice msg)
{
    if (out->count == out->lcap) {
        out->lcap = out->lcap ? 2 * out->lcap : 16;
        size_t *l = realloc(out->lens, out->lcap * sizeof *l);
        FUZZ_CHECK(l != NULL, "out of memory");
        out->lens = l;
    }
    out->lens[out->count++] = msg.len;
    fuzz_bytes_add(&out->bytes, msg.data, msg.len);
}

static void run_free(run *r)
{
    fuzz_bytes_free(&r->bytes);
    free(r->lens);
    memset(r, 0, sizeof *r);
}

static void check_message(const gmud_frame_config *cfg, gmud_slice msg, const uint8_t *chunk,
                          size_t pos, size_t n, ptrdiff_t used)
{
    if (framing == GMUD_FRAMING_FIXED)
        FUZZ_CHECK(msg.len == cfg->fixed_size, "fixed message of %zu bytes, not %zu", msg.len,
                   cfg->fixed_size);
    else
        FUZZ_CHECK(msg.len <= cfg->max_message, "message of %zu bytes over max_message %zu",
                   msg.len, cfg->max_message);
    FUZZ_CHECK(msg.data != NULL || msg.len == 0, "message without data");
    /* A slice into the caller's data must lie inside what this call consumed. */
    if (msg.data >= chunk + pos && msg.data < chunk + n)
        FUZZ_CHECK(msg.data + msg.len <= chunk + pos + (size_t)used,
                   "message runs past the %td bytes consumed", used);
    if (framing == GMUD_FRAMING_RAW) {
        /* The chunk, cut at max_message (the rest is the next message). */
        size_t want = n - pos < cfg->max_message ? n - pos : cfg->max_message;
        FUZZ_CHECK(used == (ptrdiff_t)want && msg.data == chunk + pos && msg.len == want,
                   "raw: the message is not the chunk cut at max_message");
    }
}

/* Once out->code is set, every call must return it, whatever it is given. */
static void check_sticky(gmud_frame_decoder *dec, const run *out, const uint8_t *p, size_t n)
{
    gmud_slice msg = {NULL, 0};
    gmud_error err;
    memset(&err, 0, sizeof err);
    ptrdiff_t r = gmud_frame_decode(dec, p, n, &msg, &err);
    FUZZ_CHECK(r == out->code, "error %d not sticky: a later call returned %td", out->code, r);
    FUZZ_CHECK(err.code == out->code && err.offset == out->offset,
               "sticky error reported as %d at %zu, first as %d at %zu", err.code, err.offset,
               out->code, out->offset);
    /* A NULL err must be tolerated too. */
    r = gmud_frame_decode(dec, p, n, &msg, NULL);
    FUZZ_CHECK(r == out->code, "error %d not sticky with err == NULL: %td", out->code, r);
}

/* Feeds one chunk, which the caller has copied into a block of exactly its
 * size (see decode_stream). */
static void feed(gmud_frame_decoder *dec, const gmud_frame_config *cfg, const uint8_t *chunk,
                 size_t n, size_t stream_len, run *out)
{
    size_t pos = 0;
    if (out->code != 0) {
        check_sticky(dec, out, chunk, n);
        return;
    }
    if (n == 0) {
        size_t before = gmud_frame_decoder_pending(dec);
        gmud_slice msg = {NULL, 0};
        ptrdiff_t r = gmud_frame_decode(dec, chunk, 0, &msg, NULL);
        FUZZ_CHECK(r == 0 && gmud_frame_decoder_pending(dec) == before,
                   "an empty call returned %td or changed pending", r);
    }
    while (pos < n) {
        size_t before = gmud_frame_decoder_pending(dec);
        gmud_slice msg = {NULL, 0};
        gmud_error err;
        memset(&err, 0, sizeof err);
        ptrdiff_t r = gmud_frame_decode(dec, chunk + pos, n - pos, &msg, &err);
        size_t after = gmud_frame_decoder_pending(dec);
        if (r < 0) {
            fuzz_check_error(&err, (int)r, stream_len);
            FUZZ_CHECK(r == GMUD_ERR_TOO_LONG || r == GMUD_ERR_BAD_LABEL || r == GMUD_ERR_NOMEM,
                       "decoder returned unexpected %s", gmud_err_name((int)r));
            FUZZ_CHECK(r != GMUD_ERR_BAD_LABEL || framing == GMUD_FRAMING_GMUD,
                       "bad label without labels");
            FUZZ_CHECK(framing != GMUD_FRAMING_RAW, "raw framing refused a chunk");
            out->code = (int)r;
            out->offset = err.offset;
            check_sticky(dec, out, chunk + pos, n - pos);
            check_sticky(dec, out, chunk, 0);
            break;
        }
        FUZZ_CHECK(after <= max_pending(cfg), "%zu bytes pending, over one frame (%zu)", after,
                   max_pending(cfg));
        if (r == 0) {
            FUZZ_CHECK(after == before + (n - pos),
                       "returned 0 (all absorbed) but pending went %zu -> %zu for %zu bytes",
                       before, after, n - pos);
            break;
        }
        FUZZ_CHECK((size_t)r <= n - pos, "consumed %td of %zu bytes", r, n - pos);
        FUZZ_CHECK(after == 0, "a message came out but %zu bytes are still pending", after);
        check_message(cfg, msg, chunk, pos, n, r);
        run_add(out, msg);
        pos += (size_t)r;
    }
}

static void finish(gmud_frame_decoder *dec, size_t stream_len, run *out)
{
    gmud_error err;
    memset(&err, 0, sizeof err);
    size_t pending = gmud_frame_decoder_pending(dec);
    int rc = gmud_frame_decoder_finish(dec, &err);
    if (out->code != 0) {
        FUZZ_CHECK(rc == out->code && err.code == rc, "finish returned %d after error %d", rc,
                   out->code);
        return;
    }
    if (pending == 0) {
        FUZZ_CHECK(rc == GMUD_OK, "finish returned %d with nothing pending", rc);
    } else {
        FUZZ_CHECK(rc == GMUD_ERR_TRUNCATED, "finish returned %d with %zu bytes pending", rc,
                   pending);
        fuzz_check_error(&err, rc, stream_len);
        FUZZ_CHECK(err.offset == stream_len - pending,
                   "truncated frame said to start at %zu, not %zu", err.offset,
                   stream_len - pending);
        out->offset = err.offset;
    }
    out->code = rc;
    FUZZ_CHECK(gmud_frame_decoder_finish(dec, NULL) == rc, "finish is not repeatable");
}

/* Decodes p[0..n) cut as c says, on dec if given (it must be fresh or
 * reset), else on a new decoder. */
static void decode_stream(const setup *s, gmud_frame_decoder *dec, const uint8_t *p, size_t n,
                          chunker *c, run *out)
{
    gmud_error err;
    gmud_frame_decoder *own = NULL;
    if (dec == NULL) {
        own = dec = gmud_frame_decoder_create(&s->cfg, &err);
        FUZZ_CHECK(dec != NULL, "create refused a valid config: %s", err.message);
    }
    static const uint8_t nothing[1];
    if (p == NULL) /* an empty wire buffer: p + 0 on NULL is undefined */
        p = nothing;
    memset(out, 0, sizeof *out);
    size_t frame = max_pending(&s->cfg) + 1;
    uint32_t shrink_rng = s->seed ^ 0x5bd1e995u;
    size_t pos = 0;
    /* Each chunk goes to the decoder in a heap block of exactly its size, so
     * that ASan reports a read past its end; a new block whenever the size
     * changes (the old one freed), so that ASan also reports a decoder that
     * keeps a pointer into data it was given earlier. Equal sizes in a row
     * (byte at a time) reuse one block: a malloc per byte would slow the
     * fuzzer tenfold. */
    uint8_t *block = NULL;
    size_t block_len = 0;
    do {
        size_t k = next_chunk(c, n - pos, frame);
        if (block == NULL || k != block_len) {
            free(block);
            block = fuzz_alloc(k);
            block_len = k;
        }
        if (k > 0)
            memcpy(block, p + pos, k);
        feed(dec, &s->cfg, block, k, n, out);
        pos += k;
        /* Giving back the buffer between reads must change nothing. */
        if ((fuzz_rand(&shrink_rng) & 3) == 0)
            gmud_frame_decoder_shrink(dec);
    } while (pos < n);
    free(block);
    finish(dec, n, out);
    gmud_frame_decoder_destroy(own);
}

static void same_runs(const run *a, const run *b, const char *what)
{
    FUZZ_CHECK(a->count == b->count, "%s: %zu messages against %zu", what, a->count, b->count);
    for (size_t i = 0; i < a->count; i++)
        FUZZ_CHECK(a->lens[i] == b->lens[i], "%s: message %zu is %zu bytes against %zu", what, i,
                   a->lens[i], b->lens[i]);
    FUZZ_CHECK(a->bytes.len == b->bytes.len &&
                   (a->bytes.len == 0 || memcmp(a->bytes.p, b->bytes.p, a->bytes.len) == 0),
               "%s: message bytes differ", what);
    FUZZ_CHECK(a->code == b->code, "%s: final result %s against %s", what, gmud_err_name(a->code),
               gmud_err_name(b->code));
    FUZZ_CHECK(a->code == 0 || a->offset == b->offset, "%s: error offset %zu against %zu", what,
               a->offset, b->offset);
}

/* ---- The stream -------------------------------------------------------- */

static void fuzz_stream(const setup *s, const uint8_t *p, size_t n)
{
    chunker whole = {CUT_WHOLE, 0, 0, NULL, 0, 0};
    chunker bytes = {CUT_BYTES, 0, 0, NULL, 0, 0};
    chunker random = {CUT_RANDOM, s->mode, s->seed, NULL, 0, 0};
    run a, b, c;
    decode_stream(s, NULL, p, n, &whole, &a);
    decode_stream(s, NULL, p, n, &random, &c);
    if (framing != GMUD_FRAMING_RAW) {
        /* Raw framing has no stream semantics: its messages are the chunks,
         * which feed() already checks. Every other framing must not care. */
        decode_stream(s, NULL, p, n, &bytes, &b);
        same_runs(&a, &b, "whole vs byte-at-a-time");
        same_runs(&a, &c, "whole vs random chunks");
        run_free(&b);
    }

    /* A reset decoder, after whatever state the last run left, is new. */
    gmud_error err;
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&s->cfg, &err);
    FUZZ_CHECK(dec != NULL, "create refused a valid config: %s", err.message);
    random.rng = s->seed;
    decode_stream(s, dec, p, n / 2, &random, &b);
    run_free(&b);
    gmud_frame_decoder_reset(dec);
    FUZZ_CHECK(gmud_frame_decoder_pending(dec) == 0, "pending after reset");
    decode_stream(s, dec, p, n, &whole, &b);
    same_runs(&a, &b, "new vs reset decoder");
    gmud_frame_decoder_destroy(dec);

    run_free(&a);
    run_free(&b);
    run_free(&c);
}

/* ---- The round trip ---------------------------------------------------- */

/* Whether a line payload can be sent: the first delimiter in
 * payload + delimiter must be the appended one. Deliberately naive. */
static int line_sendable(const gmud_frame_config *cfg, const uint8_t *p, size_t len)
{
    size_t d = cfg->delim_len;
    for (size_t i = 0; i < len; i++) {
        size_t k = 0;
        while (k < d) {
            uint8_t b = i + k < len ? p[i + k] : cfg->delim[i + k - len];
            if (b != cfg->delim[k])
                break;
            k++;
        }
        if (k == d)
            return 0;
    }
    return 1;
}

static int sendable(const gmud_frame_config *cfg, const uint8_t *p, size_t len)
{
    switch (framing) {
    case GMUD_FRAMING_FIXED:
        return len <= cfg->fixed_size;
    case GMUD_FRAMING_LINE:
        return len <= cfg->max_message && line_sendable(cfg, p, len);
    default:
        return len <= cfg->max_message;
    }
}

/* The bytes gmud_frame_encode must have written, rebuilt by hand. */
static void check_wire(const gmud_frame_config *cfg, const uint8_t *w, size_t wlen,
                       const uint8_t *p, size_t len)
{
    size_t h = header_bytes();
    size_t want = framing == GMUD_FRAMING_FIXED  ? cfg->fixed_size
                : framing == GMUD_FRAMING_LINE ? len + cfg->delim_len
                                                 : h + len;
    FUZZ_CHECK(wlen == want, "encoded %zu bytes, expected %zu", wlen, want);
    FUZZ_CHECK(gmud_frame_encoded_size(cfg, len) == want, "encoded_size disagrees");
    if (framing == GMUD_FRAMING_GMUD)
        FUZZ_CHECK(memcmp(w, cfg->label, GMUD_LABEL_SIZE) == 0, "label not written");
    if (h > 0)
        FUZZ_CHECK(w[h - 2] == (len & 0xff) && w[h - 1] == (len >> 8),
                   "length field %02x %02x for %zu bytes", w[h - 2], w[h - 1], len);
    FUZZ_CHECK(len == 0 || memcmp(w + h, p, len) == 0, "payload not copied");
    if (framing == GMUD_FRAMING_LINE)
        FUZZ_CHECK(memcmp(w + len, cfg->delim, cfg->delim_len) == 0, "delimiter not written");
    if (framing == GMUD_FRAMING_FIXED)
        for (size_t i = len; i < wlen; i++)
            FUZZ_CHECK(w[i] == 0, "padding byte %zu is %02x", i, w[i]);
}

/* Encodes one payload, checking the refusals; appends the frame to wire and
 * returns 1 if it was sendable. */
static int encode_one(const gmud_frame_config *cfg, const uint8_t *p, size_t len,
                      fuzz_bytes *wire)
{
    int ok = sendable(cfg, p, len);
    size_t want = gmud_frame_encoded_size(cfg, len);
    gmud_error err;
    uint8_t *out;
    ptrdiff_t r;
    if (ok && want > 0) {
        /* One byte short: refused, and nothing written. */
        out = fuzz_alloc(want);
        memset(out, 0xa5, want);
        r = gmud_frame_encode(cfg, p, len, out, want - 1, &err);
        FUZZ_CHECK(r == GMUD_ERR_INVALID, "encode into one byte short returned %td", r);
        fuzz_check_error(&err, (int)r, 0);
        for (size_t i = 0; i < want; i++)
            FUZZ_CHECK(out[i] == 0xa5, "encode wrote byte %zu of a too-small buffer", i);
        free(out);
    }
    out = fuzz_alloc(want);
    r = gmud_frame_encode(cfg, p, len, out, want, &err);
    if (!ok) {
        FUZZ_CHECK(r == GMUD_ERR_UNENCODABLE, "encode of an unsendable %zu-byte payload gave %td",
                   len, r);
        fuzz_check_error(&err, (int)r, len);
        free(out);
        return 0;
    }
    FUZZ_CHECK(r >= 0, "encode refused a sendable %zu-byte payload: %s", len, err.message);
    check_wire(cfg, out, (size_t)r, p, len);
    fuzz_bytes_add(wire, out, (size_t)r);
    free(out);
    return 1;
}

/* The messages of r must be the payloads, in order. */
static void check_payloads(const gmud_frame_config *cfg, const run *r, const fuzz_bytes *want,
                           const size_t *lens, size_t count, const char *what)
{
    FUZZ_CHECK(r->code == GMUD_OK, "%s: decoding encoded frames failed: %s", what,
               gmud_err_name(r->code));
    FUZZ_CHECK(r->count == count, "%s: %zu messages back from %zu", what, r->count, count);
    size_t at = 0, wat = 0;
    for (size_t i = 0; i < count; i++) {
        /* All messages empty leaves bytes.p NULL, and NULL + 0 is undefined. */
        const uint8_t *got = r->bytes.p ? r->bytes.p + at : NULL;
        if (framing == GMUD_FRAMING_FIXED) {
            FUZZ_CHECK(r->lens[i] == cfg->fixed_size, "%s: packet %zu is %zu bytes", what, i,
                       r->lens[i]);
            for (size_t k = lens[i]; k < r->lens[i]; k++)
                FUZZ_CHECK(got[k] == 0, "%s: packet %zu padding byte %zu is %02x", what, i, k,
                           got[k]);
            gmud_slice t = gmud_frame_trim_padding((gmud_slice){got, r->lens[i]});
            FUZZ_CHECK(t.data == got && t.len <= lens[i] && (t.len == 0 || got[t.len - 1] != 0),
                       "%s: trim_padding gave %zu bytes", what, t.len);
        } else {
            FUZZ_CHECK(r->lens[i] == lens[i], "%s: message %zu is %zu bytes, sent %zu", what, i,
                       r->lens[i], lens[i]);
        }
        FUZZ_CHECK(lens[i] == 0 || memcmp(got, want->p + wat, lens[i]) == 0,
                   "%s: message %zu differs from what was sent", what, i);
        at += r->lens[i];
        wat += lens[i];
    }
}

static void fuzz_round_trip(const setup *s, const uint8_t *p, size_t n)
{
    fuzz_bytes wire = {NULL, 0, 0}, sent = {NULL, 0, 0};
    size_t *lens = fuzz_alloc(n * sizeof *lens + sizeof *lens);
    size_t *sizes = fuzz_alloc(n * sizeof *sizes + sizeof *sizes);
    size_t count = 0;
    while (n > 0 && wire.len < FUZZ_WIRE_MAX) {
        size_t len = p[0];
        size_t skip = 1;
        if (len == 255 && n >= 3) { /* room for payloads over 254 bytes */
            len = p[1] | (size_t)p[2] << 8;
            skip = 3;
        }
        p += skip;
        n -= skip;
        if (len > n)
            len = n;
        size_t before = wire.len;
        /* raw: an empty message is no frame at all (encode returns 0). */
        if (encode_one(&s->cfg, p, len, &wire) && (framing != GMUD_FRAMING_RAW || len > 0)) {
            fuzz_bytes_add(&sent, p, len);
            sizes[count] = wire.len - before;
            lens[count++] = len;
        }
        p += len;
        n -= len;
    }

    chunker whole = {CUT_WHOLE, 0, 0, NULL, 0, 0};
    chunker bytes = {CUT_BYTES, 0, 0, NULL, 0, 0};
    chunker random = {CUT_RANDOM, s->mode, s->seed, NULL, 0, 0};
    chunker frames = {CUT_LIST, 0, 0, sizes, count, 0};
    run r;
    if (framing == GMUD_FRAMING_RAW) {
        /* Raw works only when each write arrives as one read. */
        decode_stream(s, NULL, wire.p, wire.len, &frames, &r);
        check_payloads(&s->cfg, &r, &sent, lens, count, "raw, one read per frame");
        run_free(&r);
    } else {
        decode_stream(s, NULL, wire.p, wire.len, &whole, &r);
        check_payloads(&s->cfg, &r, &sent, lens, count, "whole");
        run_free(&r);
        decode_stream(s, NULL, wire.p, wire.len, &bytes, &r);
        check_payloads(&s->cfg, &r, &sent, lens, count, "byte at a time");
        run_free(&r);
        decode_stream(s, NULL, wire.p, wire.len, &random, &r);
        check_payloads(&s->cfg, &r, &sent, lens, count, "random chunks");
        run_free(&r);
    }
    fuzz_bytes_free(&wire);
    fuzz_bytes_free(&sent);
    free(lens);
    free(sizes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_HDR)
        return 0;
    setup s;
    read_setup(data, &s);
    gmud_error err;
    FUZZ_CHECK(gmud_frame_config_check(&s.cfg, &err) == GMUD_OK, "setup built a bad config: %s",
               err.message);
    fuzz_stream(&s, data + FUZZ_HDR, size - FUZZ_HDR);
    fuzz_round_trip(&s, data + FUZZ_HDR, size - FUZZ_HDR);
    return 0;
}
