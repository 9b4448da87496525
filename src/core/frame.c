/* The framing core: encoder and incremental decoder for every framing.
 * No I/O here; see include/gmud/frame.h for the contract. */
#include "gmud/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame_head.h"
#include "wire.h"

struct gmud_frame_decoder {
    gmud_frame_config cfg;
    size_t hdr;          /* header bytes of this framing (0 for raw/line/fixed) */
    uint8_t *buf;        /* one partial frame; NULL until a frame straddles */
    size_t len;          /* bytes of it held */
    size_t cap;
    size_t need;         /* whole frame bytes, once the header is known; else 0 */
    uint64_t frame_pos;  /* stream offset where the current frame began */
    int sticky;              /* error code once the stream has lost sync, else 0 */
    gmud_error *sticky_err;  /* its detail, taken only when it happens (NULL if
                                that allocation failed): idle decoders stay small */
};

static size_t header_size(gmud_framing framing)
{
    return frame_head_size(framing);
}

/* ---- Config ----------------------------------------------------------- */

void gmud_frame_default_config(gmud_frame_config *cfg, gmud_framing framing)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->framing = framing;
    cfg->max_message = GMUD_MAX_MESSAGE_DEFAULT;
    cfg->fixed_size = GMUD_FIXED_SIZE_DEFAULT;
    cfg->delim[0] = '\n';
    cfg->delim_len = 1;
    memcpy(cfg->label, "GMUD", GMUD_LABEL_SIZE);
}

int gmud_frame_config_check(const gmud_frame_config *cfg, gmud_error *err)
{
    if (cfg->framing < GMUD_FRAMING_RAW || cfg->framing > GMUD_FRAMING_GMUD)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "unknown framing %d", (int)cfg->framing);
    if (cfg->max_message == 0 || cfg->max_message > GMUD_MAX_MESSAGE_CEILING)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "max message %zu is outside 1..%d",
                              cfg->max_message, GMUD_MAX_MESSAGE_CEILING);
    switch (cfg->framing) {
    case GMUD_FRAMING_LENGTH:
    case GMUD_FRAMING_GMUD:
        if (cfg->max_message > GMUD_MAX_MESSAGE_16BIT)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "max message %zu exceeds the 2-byte length field (65535)",
                                  cfg->max_message);
        break;
    case GMUD_FRAMING_FIXED:
        if (cfg->fixed_size == 0 || cfg->fixed_size > cfg->max_message)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "fixed packet size %zu is outside 1..%zu (max message)",
                                  cfg->fixed_size, cfg->max_message);
        break;
    case GMUD_FRAMING_LINE:
        if (cfg->delim_len == 0 || cfg->delim_len > GMUD_DELIM_MAX)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0, "delimiter length %zu is outside 1..%d",
                                  cfg->delim_len, GMUD_DELIM_MAX);
        break;
    default:
        break;
    }
    return GMUD_OK;
}

static const char *const framing_names[] = {"raw", "line", "fixed", "length", "gmud"};

const char *gmud_framing_name(gmud_framing framing)
{
    if (framing < GMUD_FRAMING_RAW || framing > GMUD_FRAMING_GMUD)
        return "unknown";
    return framing_names[framing];
}

static int parse_fixed_size(const char *text, size_t *out, gmud_error *err)
{
    size_t n = 0;
    if (*text == '\0')
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "fixed:N needs a size after the colon");
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || n > GMUD_MAX_MESSAGE_CEILING)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "fixed packet size '%s' is not a number from 1 to %d", text,
                                  GMUD_MAX_MESSAGE_CEILING);
        n = n * 10 + (size_t)(*p - '0');
    }
    if (n == 0 || n > GMUD_MAX_MESSAGE_CEILING)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "fixed packet size '%s' is not a number from 1 to %d", text,
                              GMUD_MAX_MESSAGE_CEILING);
    *out = n;
    return GMUD_OK;
}

int gmud_frame_config_parse(gmud_frame_config *cfg, const char *spec, gmud_error *err)
{
    for (int f = GMUD_FRAMING_RAW; f <= GMUD_FRAMING_GMUD; f++) {
        size_t n = strlen(framing_names[f]);
        if (strncmp(spec, framing_names[f], n) != 0)
            continue;
        if (spec[n] == '\0') {
            gmud_frame_default_config(cfg, (gmud_framing)f);
            return GMUD_OK;
        }
        if (f == GMUD_FRAMING_FIXED && spec[n] == ':') {
            size_t size = 0;
            int rc = parse_fixed_size(spec + n + 1, &size, err);
            if (rc != GMUD_OK)
                return rc;
            gmud_frame_default_config(cfg, GMUD_FRAMING_FIXED);
            cfg->fixed_size = size;
            if (size > cfg->max_message)
                cfg->max_message = size;
            return GMUD_OK;
        }
    }
    return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                          "unknown framing '%s' (expected raw, line, fixed:N, length or gmud)", spec);
}

int gmud_frame_config_set_label(gmud_frame_config *cfg, const char *label, gmud_error *err)
{
    if (strlen(label) != GMUD_LABEL_SIZE)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "label '%s' must be exactly %d bytes",
                              label, GMUD_LABEL_SIZE);
    memcpy(cfg->label, label, GMUD_LABEL_SIZE);
    return GMUD_OK;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one escape after a backslash; returns characters used, 0 if bad. */
static size_t unescape_one(const char *p, uint8_t *out)
{
    switch (p[0]) {
    case 'n': *out = '\n'; return 1;
    case 'r': *out = '\r'; return 1;
    case 't': *out = '\t'; return 1;
    case '0': *out = '\0'; return 1;
    case '\\': *out = '\\'; return 1;
    case 'x': {
        int hi = hex_value(p[1]);
        int lo = hi < 0 ? -1 : hex_value(p[2]);
        if (lo < 0)
            return 0;
        *out = (uint8_t)(hi * 16 + lo);
        return 3;
    }
    default:
        return 0;
    }
}

int gmud_frame_config_set_delim(gmud_frame_config *cfg, const char *text, gmud_error *err)
{
    uint8_t delim[GMUD_DELIM_MAX];
    size_t n = 0;
    for (const char *p = text; *p != '\0'; n++) {
        if (n == GMUD_DELIM_MAX)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "delimiter '%s' is longer than %d bytes", text, GMUD_DELIM_MAX);
        if (*p != '\\') {
            delim[n] = (uint8_t)*p++;
            continue;
        }
        size_t used = unescape_one(p + 1, &delim[n]);
        if (used == 0)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "delimiter '%s' has a bad escape (use \\n \\r \\t \\0 \\\\ \\xHH)",
                                  text);
        p += 1 + used;
    }
    if (n == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "delimiter must not be empty");
    memcpy(cfg->delim, delim, n);
    cfg->delim_len = n;
    return GMUD_OK;
}

/* ---- Encoder ---------------------------------------------------------- */

size_t gmud_frame_encoded_size(const gmud_frame_config *cfg, size_t len)
{
    switch (cfg->framing) {
    case GMUD_FRAMING_LINE:
        return len + cfg->delim_len;
    case GMUD_FRAMING_FIXED:
        return cfg->fixed_size;
    default:
        return header_size(cfg->framing) + len;
    }
}

/* First offset of the delimiter in p[0..n), or n if absent. */
static size_t find_delim(const uint8_t *p, size_t n, const uint8_t *delim, size_t dlen)
{
    if (dlen == 1) {
        const uint8_t *hit = memchr(p, delim[0], n);
        return hit ? (size_t)(hit - p) : n;
    }
    for (size_t i = 0; i + dlen <= n; i++) {
        const uint8_t *hit = memchr(p + i, delim[0], n - i - dlen + 1);
        if (hit == NULL)
            break;
        i = (size_t)(hit - p);
        if (memcmp(hit, delim, dlen) == 0)
            return i;
    }
    return n;
}

static int check_encodable(const gmud_frame_config *cfg, size_t len, gmud_error *err)
{
    size_t limit = frame_room(cfg);
    if (len > limit)
        return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0,
                              "message of %zu bytes exceeds the %s framing's maximum of %zu", len,
                              gmud_framing_name(cfg->framing), limit);
    return GMUD_OK;
}

ptrdiff_t gmud_frame_encode(const gmud_frame_config *cfg, const void *payload, size_t len,
                            uint8_t *out, size_t cap, gmud_error *err)
{
    return gmud_frame_encode_prefixed(cfg, NULL, 0, payload, len, out, cap, err);
}

ptrdiff_t gmud_frame_encode_prefixed(const gmud_frame_config *cfg, const void *prefix,
                                     size_t plen, const void *payload, size_t len, uint8_t *out,
                                     size_t cap, gmud_error *err)
{
    if (plen > cfg->max_message) /* keeps plen + len from wrapping */
        return check_encodable(cfg, plen, err);
    size_t whole = plen + len;
    int rc = check_encodable(cfg, whole, err);
    if (rc != GMUD_OK)
        return rc;
    size_t total = gmud_frame_encoded_size(cfg, whole);
    if (total > cap)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "output buffer too small: frame needs %zu bytes, %zu available",
                              total, cap);
    gmud_wire w = gmud_wire_writer(out, cap);
    w.pos = frame_head_put(cfg, out, whole); /* fits: total <= cap */
    gmud_wire_put(&w, prefix, plen);
    gmud_wire_put(&w, payload, len);
    if (cfg->framing == GMUD_FRAMING_FIXED)
        gmud_wire_put_zeros(&w, cfg->fixed_size - whole);
    if (cfg->framing == GMUD_FRAMING_LINE) {
        gmud_wire_put(&w, cfg->delim, cfg->delim_len);
        /* The first delimiter in payload + delimiter must be the one we
         * appended, or the receiver would cut the message short. */
        size_t at = find_delim(out, total, cfg->delim, cfg->delim_len);
        if (at != whole)
            return gmud_error_set(err, GMUD_ERR_UNENCODABLE, at,
                                  "message holds the line delimiter at byte %zu", at);
    }
    return (ptrdiff_t)w.pos;
}

/* ---- Decoder ---------------------------------------------------------- */

gmud_frame_decoder *gmud_frame_decoder_create(const gmud_frame_config *cfg, gmud_error *err)
{
    if (gmud_frame_config_check(cfg, err) != GMUD_OK)
        return NULL;
    gmud_frame_decoder *dec = calloc(1, sizeof *dec);
    if (dec == NULL) {
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory creating a decoder");
        return NULL;
    }
    dec->cfg = *cfg;
    dec->hdr = header_size(cfg->framing);
    return dec;
}

void gmud_frame_decoder_destroy(gmud_frame_decoder *dec)
{
    if (dec == NULL)
        return;
    free(dec->buf);
    free(dec->sticky_err);
    free(dec);
}

void gmud_frame_decoder_reset(gmud_frame_decoder *dec)
{
    dec->len = 0;
    dec->need = 0;
    dec->frame_pos = 0;
    free(dec->sticky_err);
    dec->sticky_err = NULL;
    dec->sticky = 0;
}

void gmud_frame_decoder_shrink(gmud_frame_decoder *dec)
{
    if (dec->len != 0)
        return;
    free(dec->buf);
    dec->buf = NULL;
    dec->cap = 0;
}

size_t gmud_frame_decoder_pending(const gmud_frame_decoder *dec)
{
    return dec->len;
}

/* Largest frame this decoder can ever hold, delimiter or header included. */
static size_t max_frame(const gmud_frame_decoder *dec)
{
    switch (dec->cfg.framing) {
    case GMUD_FRAMING_FIXED:
        return dec->cfg.fixed_size;
    case GMUD_FRAMING_LINE:
        return dec->cfg.max_message + dec->cfg.delim_len;
    default:
        return dec->hdr + dec->cfg.max_message;
    }
}

/* Records a framing error as sticky and returns it. */
static int fail(gmud_frame_decoder *dec, gmud_error *err)
{
    dec->sticky = err->code;
    dec->sticky_err = malloc(sizeof *dec->sticky_err);
    if (dec->sticky_err != NULL)
        *dec->sticky_err = *err;
    return err->code;
}

/* Repeats the sticky error into err. */
static int sticky_error(const gmud_frame_decoder *dec, gmud_error *err)
{
    if (dec->sticky_err == NULL)
        return gmud_error_set(err, dec->sticky, 0, "%s (the stream is out of sync)",
                              gmud_strerror(dec->sticky));
    if (err != NULL)
        *err = *dec->sticky_err;
    return dec->sticky;
}

/* Makes the partial buffer hold at least want bytes (want <= max_frame).
 * Grows geometrically so a stream of straddling frames stops allocating. */
static int reserve(gmud_frame_decoder *dec, size_t want, gmud_error *err)
{
    if (want <= dec->cap)
        return GMUD_OK;
    size_t cap = dec->cap ? dec->cap : 256;
    while (cap < want)
        cap *= 2;
    if (cap > max_frame(dec))
        cap = max_frame(dec);
    uint8_t *p = realloc(dec->buf, cap);
    if (p == NULL) {
        /* The input is lost, so the stream is out of sync: sticky. */
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory buffering a %zu-byte frame", want);
        return fail(dec, err);
    }
    dec->buf = p;
    dec->cap = cap;
    return GMUD_OK;
}

static int absorb(gmud_frame_decoder *dec, const uint8_t *data, size_t n, gmud_error *err)
{
    int rc = reserve(dec, dec->len + n, err);
    if (rc != GMUD_OK)
        return rc;
    memcpy(dec->buf + dec->len, data, n);
    dec->len += n;
    return GMUD_OK;
}

static void hex_bytes(char *out, size_t cap, const uint8_t *p, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 4 < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, i ? " %02x" : "%02x", p[i]);
}

/* Error paths are kept out of line so the functions that call them need
 * no stack frame on success (GCC and clang; a no-op elsewhere). */
#if defined(__GNUC__)
#define GMUD_COLD __attribute__((noinline, cold))
#define GMUD_NOINLINE __attribute__((noinline))
#else
#define GMUD_COLD
#define GMUD_NOINLINE
#endif

static GMUD_COLD int bad_label(gmud_frame_decoder *dec, const uint8_t *seen, size_t n,
                               gmud_error *err)
{
    char want[16], got[16];
    hex_bytes(want, sizeof want, dec->cfg.label, GMUD_LABEL_SIZE);
    hex_bytes(got, sizeof got, seen, n);
    gmud_error_set(err, GMUD_ERR_BAD_LABEL, (size_t)dec->frame_pos,
                   "bad packet label at stream byte %llu: expected %s (\"%.4s\"), got %s",
                   (unsigned long long)dec->frame_pos, want, (const char *)dec->cfg.label, got);
    return fail(dec, err);
}

/* Compares the label bytes seen so far (seen <= 4). */
static int check_label(gmud_frame_decoder *dec, const uint8_t *seen, size_t n, gmud_error *err)
{
    if (n > GMUD_LABEL_SIZE)
        n = GMUD_LABEL_SIZE;
    if (memcmp(seen, dec->cfg.label, n) == 0)
        return GMUD_OK;
    return bad_label(dec, seen, n, err);
}

/* Reads a complete header at h; sets dec->need or fails. */
static int parse_header(gmud_frame_decoder *dec, const uint8_t *h, gmud_error *err)
{
    gmud_wire r = gmud_wire_reader(h, dec->hdr);
    if (dec->cfg.framing == GMUD_FRAMING_GMUD) {
        /* Constant size: compiled to one 4-byte compare, no call. */
        if (memcmp(h, dec->cfg.label, GMUD_LABEL_SIZE) != 0)
            return bad_label(dec, h, GMUD_LABEL_SIZE, err);
        gmud_wire_skip(&r, GMUD_LABEL_SIZE);
    }
    size_t n = gmud_wire_get_u16le(&r);
    /* Refuse before waiting for (or buffering) the body. */
    if (n > dec->cfg.max_message) {
        gmud_error_set(err, GMUD_ERR_TOO_LONG, (size_t)dec->frame_pos,
                       "frame at stream byte %llu announces %zu bytes, over the maximum of %zu",
                       (unsigned long long)dec->frame_pos, n, dec->cfg.max_message);
        return fail(dec, err);
    }
    dec->need = dec->hdr + n;
    return GMUD_OK;
}

static ptrdiff_t done(gmud_frame_decoder *dec, size_t consumed, gmud_slice *msg,
                      const uint8_t *p, size_t n)
{
    msg->data = p;
    msg->len = n;
    dec->frame_pos += consumed;
    return (ptrdiff_t)consumed;
}

/* Partial frame already held: complete it from data if possible. */
static ptrdiff_t decode_sized_partial(gmud_frame_decoder *dec, const uint8_t *data, size_t len,
                                      gmud_slice *msg, gmud_error *err)
{
    size_t used = 0;
    int rc;
    if (dec->need == 0) {
        size_t take = dec->hdr - dec->len;
        if (take > len)
            take = len;
        if ((rc = absorb(dec, data, take, err)) != GMUD_OK)
            return rc;
        used = take;
        if (dec->cfg.framing == GMUD_FRAMING_GMUD &&
            (rc = check_label(dec, dec->buf, dec->len, err)) != GMUD_OK)
            return rc;
        if (dec->len < dec->hdr)
            return 0;
        if ((rc = parse_header(dec, dec->buf, err)) != GMUD_OK)
            return rc;
    }
    size_t take = dec->need - dec->len;
    if (take > len - used)
        take = len - used;
    if ((rc = absorb(dec, data + used, take, err)) != GMUD_OK)
        return rc;
    used += take;
    if (dec->len < dec->need)
        return 0;
    size_t held = dec->len;
    dec->len = 0;
    dec->need = 0;
    dec->frame_pos += held;
    msg->data = dec->buf + dec->hdr;
    msg->len = held - dec->hdr;
    return (ptrdiff_t)used;
}

/* fixed, length and gmud: the frame size is known from the header. */
static ptrdiff_t decode_sized(gmud_frame_decoder *dec, const uint8_t *data, size_t len,
                              gmud_slice *msg, gmud_error *err)
{
    if (dec->len > 0)
        return decode_sized_partial(dec, data, len, msg, err);
    int rc;
    if (dec->cfg.framing == GMUD_FRAMING_FIXED) {
        dec->need = dec->cfg.fixed_size;
    } else if (len < dec->hdr) {
        if (dec->cfg.framing == GMUD_FRAMING_GMUD &&
            (rc = check_label(dec, data, len, err)) != GMUD_OK)
            return rc;
    } else if ((rc = parse_header(dec, data, err)) != GMUD_OK) {
        return rc;
    }
    if (dec->need != 0 && len >= dec->need) {
        size_t n = dec->need;
        dec->need = 0;
        return done(dec, n, msg, data + dec->hdr, n - dec->hdr);
    }
    if ((rc = absorb(dec, data, len, err)) != GMUD_OK)
        return rc;
    return 0;
}

static int line_too_long(gmud_frame_decoder *dec, size_t at_least, gmud_error *err)
{
    gmud_error_set(err, GMUD_ERR_TOO_LONG, (size_t)dec->frame_pos,
                   "line at stream byte %llu is longer than the maximum of %zu bytes "
                   "(%zu bytes and no delimiter yet)",
                   (unsigned long long)dec->frame_pos, dec->cfg.max_message, at_least);
    return fail(dec, err);
}

/* Without a delimiter in the first total bytes, the line holds at least
 * total - (delim_len - 1) bytes: the tail may be the start of a delimiter. */
static int check_unterminated(gmud_frame_decoder *dec, size_t total, gmud_error *err)
{
    if (total < dec->cfg.delim_len)
        return GMUD_OK;
    size_t at_least = total - (dec->cfg.delim_len - 1);
    if (at_least > dec->cfg.max_message)
        return line_too_long(dec, at_least, err);
    return GMUD_OK;
}

/* A delimiter that began in the held bytes and ends in data: returns how
 * many of its bytes lie in data (0 if none straddles). Tries the earliest
 * start first. */
static size_t straddling_delim(const gmud_frame_decoder *dec, const uint8_t *data, size_t len)
{
    size_t dlen = dec->cfg.delim_len;
    for (size_t k = dlen - 1; k >= 1; k--) { /* k = delimiter bytes in buf */
        if (k > dec->len || dlen - k > len)
            continue;
        if (memcmp(dec->buf + dec->len - k, dec->cfg.delim, k) == 0 &&
            memcmp(data, dec->cfg.delim + k, dlen - k) == 0)
            return dlen - k;
    }
    return 0;
}

static ptrdiff_t decode_line_partial(gmud_frame_decoder *dec, const uint8_t *data, size_t len,
                                     gmud_slice *msg, gmud_error *err)
{
    size_t dlen = dec->cfg.delim_len;
    size_t tail = dlen > 1 ? straddling_delim(dec, data, len) : 0;
    if (tail > 0) {
        size_t line = dec->len - (dlen - tail);
        if (line > dec->cfg.max_message)
            return line_too_long(dec, line, err);
        dec->len = 0;
        dec->frame_pos += line + dlen;
        msg->data = dec->buf;
        msg->len = line;
        return (ptrdiff_t)tail;
    }
    /* Only the bytes that can still end a legal line need searching. */
    size_t room = dec->cfg.max_message + dlen - dec->len;
    size_t window = len < room ? len : room;
    size_t at = find_delim(data, window, dec->cfg.delim, dlen);
    int rc;
    if (at == window) {
        if ((rc = check_unterminated(dec, dec->len + len, err)) != GMUD_OK)
            return rc;
        return (rc = absorb(dec, data, len, err)) != GMUD_OK ? rc : 0;
    }
    /* The window guarantees dec->len + at <= max_message here. */
    if ((rc = absorb(dec, data, at, err)) != GMUD_OK)
        return rc;
    size_t line = dec->len;
    dec->len = 0;
    dec->frame_pos += line + dlen;
    msg->data = dec->buf;
    msg->len = line;
    return (ptrdiff_t)(at + dlen);
}

static ptrdiff_t decode_line(gmud_frame_decoder *dec, const uint8_t *data, size_t len,
                             gmud_slice *msg, gmud_error *err)
{
    if (dec->len > 0)
        return decode_line_partial(dec, data, len, msg, err);
    size_t dlen = dec->cfg.delim_len;
    size_t room = dec->cfg.max_message + dlen;
    size_t window = len < room ? len : room;
    size_t at = find_delim(data, window, dec->cfg.delim, dlen);
    int rc;
    if (at == window) {
        if ((rc = check_unterminated(dec, len, err)) != GMUD_OK)
            return rc;
        return (rc = absorb(dec, data, len, err)) != GMUD_OK ? rc : 0;
    }
    return done(dec, at + dlen, msg, data, at);
}

static ptrdiff_t decode_raw(gmud_frame_decoder *dec, const uint8_t *data, size_t len,
                            gmud_slice *msg, gmud_error *err)
{
    /* A chunk is a message, cut at the maximum: raw framing has no
     * boundaries to break, and a read (64 KiB) may exceed a message
     * (65535 bytes), so refusing would fail an honest write by timing. */
    (void)err;
    if (len > dec->cfg.max_message)
        len = dec->cfg.max_message;
    return done(dec, len, msg, data, len);
}

static GMUD_NOINLINE ptrdiff_t decode_slow(gmud_frame_decoder *dec, const uint8_t *data,
                                           size_t len, gmud_slice *msg, gmud_error *err)
{
    gmud_error scratch;
    if (err == NULL)
        err = &scratch;
    if (dec->sticky != 0)
        return sticky_error(dec, err);
    if (len == 0)
        return 0;
    switch (dec->cfg.framing) {
    case GMUD_FRAMING_RAW:
        return decode_raw(dec, data, len, msg, err);
    case GMUD_FRAMING_LINE:
        return decode_line(dec, data, len, msg, err);
    default:
        return decode_sized(dec, data, len, msg, err);
    }
}

/* Line framing's common case: a one-byte delimiter within reach. Apart so
 * its memchr() call does not give gmud_frame_decode() a stack frame. */
static GMUD_NOINLINE ptrdiff_t decode_line_fast(gmud_frame_decoder *dec, const uint8_t *data,
                                               size_t len, gmud_slice *msg, gmud_error *err)
{
    if (dec->cfg.delim_len == 1) {
        size_t room = dec->cfg.max_message + 1;
        const uint8_t *hit = memchr(data, dec->cfg.delim[0], len < room ? len : room);
        if (hit != NULL)
            return done(dec, (size_t)(hit - data) + 1, msg, data, (size_t)(hit - data));
    }
    return decode_slow(dec, data, len, msg, err);
}

/* The common case on a busy stream, kept small so it needs no stack frame:
 * no partial frame held, no sticky error, a whole sized frame at data.
 * Anything else (including every error) takes decode_slow(), which
 * repeats these checks and reports. */
ptrdiff_t gmud_frame_decode(gmud_frame_decoder *dec, const uint8_t *data, size_t len,
                            gmud_slice *msg, gmud_error *err)
{
    if (dec->len == 0 && dec->sticky == 0 && len >= dec->hdr) {
        size_t frame = 0;
        if (dec->cfg.framing == GMUD_FRAMING_GMUD) {
            if (memcmp(data, dec->cfg.label, GMUD_LABEL_SIZE) == 0) {
                gmud_wire r = gmud_wire_reader(data + GMUD_LABEL_SIZE, 2);
                size_t n = gmud_wire_get_u16le(&r);
                if (n <= dec->cfg.max_message)
                    frame = dec->hdr + n;
            }
        } else if (dec->cfg.framing == GMUD_FRAMING_LENGTH) {
            gmud_wire r = gmud_wire_reader(data, 2);
            size_t n = gmud_wire_get_u16le(&r);
            if (n <= dec->cfg.max_message)
                frame = dec->hdr + n;
        } else if (dec->cfg.framing == GMUD_FRAMING_FIXED) {
            frame = dec->cfg.fixed_size;
        } else if (dec->cfg.framing == GMUD_FRAMING_LINE) {
            return decode_line_fast(dec, data, len, msg, err); /* a tail call: no frame here */
        }
        if (frame != 0 && len >= frame)
            return done(dec, frame, msg, data + dec->hdr, frame - dec->hdr);
    }
    return decode_slow(dec, data, len, msg, err);
}

int gmud_frame_decoder_finish(gmud_frame_decoder *dec, gmud_error *err)
{
    if (dec->sticky != 0)
        return sticky_error(dec, err);
    if (dec->len == 0)
        return GMUD_OK;
    unsigned long long at = (unsigned long long)dec->frame_pos;
    if (dec->cfg.framing == GMUD_FRAMING_LINE)
        return gmud_error_set(err, GMUD_ERR_TRUNCATED, dec->frame_pos,
                              "stream ended inside a line at stream byte %llu: %zu bytes and no "
                              "delimiter",
                              at, dec->len);
    if (dec->need == 0)
        return gmud_error_set(err, GMUD_ERR_TRUNCATED, dec->frame_pos,
                              "stream ended inside a frame header at stream byte %llu: %zu of %zu "
                              "header bytes received",
                              at, dec->len, dec->hdr);
    return gmud_error_set(err, GMUD_ERR_TRUNCATED, dec->frame_pos,
                          "stream ended inside a frame at stream byte %llu: %zu of %zu bytes "
                          "received, %zu missing",
                          at, dec->len, dec->need, dec->need - dec->len);
}

gmud_slice gmud_frame_trim_padding(gmud_slice msg)
{
    while (msg.len > 0 && msg.data[msg.len - 1] == 0)
        msg.len--;
    return msg;
}
