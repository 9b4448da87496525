/* Session ids and sequence numbers. See include/gmud/session.h. */
#include "gmud/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gmud/json.h"
#include "rand.h"

/* ---- Ids -------------------------------------------------------------- */

int gmud_session_new_id(uint64_t *out, gmud_error *err)
{
    uint64_t id;
    do {
        uint8_t b[8];
        int rc = rand_bytes(b, sizeof b, err);
        if (rc != GMUD_OK)
            return rc;
        id = 0;
        for (size_t i = 0; i < sizeof b; i++)
            id = id << 8 | b[i];
        /* Keep 53 bits: every value 0..2^53-1 equally likely; rejecting 0
         * (and drawing again) leaves 1..2^53-1 uniform. */
        id >>= 64 - 53;
    } while (id == 0);
    *out = id;
    return GMUD_OK;
}

/* ---- State ------------------------------------------------------------ */

void gmud_session_init(gmud_session *s)
{
    gmud_session_start(s, 0, 0, 0);
}

void gmud_session_start(gmud_session *s, uint64_t id, uint64_t next_send, uint64_t next_recv)
{
    s->id = id;
    s->send_seq = next_send;
    s->recv_seq = next_recv;
}

void gmud_session_start_lecture(gmud_session *s, uint64_t id)
{
    gmud_session_start(s, id, 1, 1);
}

/* Sequences are compared as plain unsigned values, never through a
 * difference taken before the order is known: got - expected wraps to a huge
 * "ahead" when got is behind. Serial-number arithmetic (RFC 1982) is not
 * needed because counters never wrap: they stop at GMUD_SEQ_EXHAUSTED. Each
 * difference below is taken only on the side where it cannot wrap. */
int gmud_session_check_seq(const gmud_session *s, uint64_t got_session, uint64_t got_seq,
                           gmud_error *err)
{
    uint64_t want = s->recv_seq;
    if (s->id == 0)
        return gmud_error_set(err, GMUD_ERR_NOT_WELCOMED, 0,
                              "packet (session %" PRIu64 ", sequence %" PRIu64
                              ") before the welcome",
                              got_session, got_seq);
    if (got_session != s->id)
        return gmud_error_set(err, GMUD_ERR_BAD_SESSION, 0,
                              "wrong session: expected %" PRIu64 ", got %" PRIu64, s->id,
                              got_session);
    if (want == GMUD_SEQ_EXHAUSTED)
        return gmud_error_set(err, GMUD_ERR_SEQ_EXHAUSTED, 0,
                              "sequence numbers exhausted (got %" PRIu64 ")", got_seq);
    if (got_seq < want)
        return gmud_error_set(err, GMUD_ERR_REPLAYED, 0,
                              "replayed: expected sequence %" PRIu64 ", got %" PRIu64
                              " (%" PRIu64 " behind)",
                              want, got_seq, want - got_seq);
    if (got_seq > want)
        return gmud_error_set(err, GMUD_ERR_SKIPPED, 0,
                              "skipped: expected sequence %" PRIu64 ", got %" PRIu64
                              " (%" PRIu64 " ahead)",
                              want, got_seq, got_seq - want);
    return GMUD_OK;
}

int gmud_session_commit_seq(gmud_session *s, uint64_t seq, gmud_error *err)
{
    if (seq != s->recv_seq || seq == GMUD_SEQ_EXHAUSTED)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "commit of sequence %" PRIu64 " when %" PRIu64 " is expected",
                              seq, s->recv_seq);
    s->recv_seq = seq + 1; /* at most UINT64_MAX: the exhausted mark, no wrap */
    return GMUD_OK;
}

int gmud_session_next_send(gmud_session *s, uint64_t *seq, gmud_error *err)
{
    if (s->send_seq == GMUD_SEQ_EXHAUSTED)
        return gmud_error_set(err, GMUD_ERR_SEQ_EXHAUSTED, 0,
                              "no sequence numbers left to send with");
    *seq = s->send_seq++;
    return GMUD_OK;
}

/* ---- The lecture's messages, as Python's json.dumps writes them ------- */

/* An output cursor: once out of room it stays full and writes nothing. */
typedef struct text_out {
    uint8_t *p;
    size_t cap, len;
    int full;
} text_out;

static void put(text_out *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_str(text_out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u64(text_out *o, uint64_t v)
{
    char buf[24];
    put(o, buf, (size_t)snprintf(buf, sizeof buf, "%" PRIu64, v));
}

/* Python's ensure_ascii escape of one code point: \" \\ \n \r \t \b \f, other
 * characters outside ' '..'~' as \u with 4 lowercase hex digits, astral ones
 * as a surrogate pair. */
static void put_escaped(text_out *o, uint32_t cp)
{
    static const char shorts[][3] = {['\b'] = "\\b", ['\t'] = "\\t", ['\n'] = "\\n",
                                     ['\f'] = "\\f", ['\r'] = "\\r"};
    char buf[16];
    if (cp == '"' || cp == '\\') {
        buf[0] = '\\', buf[1] = (char)cp;
        put(o, buf, 2);
    } else if (cp >= ' ' && cp <= '~') {
        buf[0] = (char)cp;
        put(o, buf, 1);
    } else if (cp < sizeof shorts / sizeof shorts[0] && shorts[cp][0]) {
        put(o, shorts[cp], 2);
    } else if (cp >= 0x10000) {
        cp -= 0x10000;
        put(o, buf, (size_t)snprintf(buf, sizeof buf, "\\u%04x\\u%04x",
                                     (unsigned)(0xd800 + (cp >> 10)),
                                     (unsigned)(0xdc00 + (cp & 0x3ff))));
    } else {
        put(o, buf, (size_t)snprintf(buf, sizeof buf, "\\u%04x", (unsigned)cp));
    }
}

/* Decodes one UTF-8 character at p[0..n); returns its length (0 if the bytes
 * are not UTF-8: truncated, overlong, a surrogate or above U+10FFFF). */
static size_t utf8_next(const uint8_t *p, size_t n, uint32_t *cp)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len = p[0] < 0x80         ? 1
                 : p[0] >> 5 == 0x6  ? 2
                 : p[0] >> 4 == 0xe  ? 3
                 : p[0] >> 3 == 0x1e ? 4
                                     : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t c = len == 1 ? p[0] : p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if (p[i] >> 6 != 2)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

static int put_string(text_out *o, const char *s, size_t n, gmud_error *err)
{
    const uint8_t *p = (const uint8_t *)s;
    put(o, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_next(p + i, n - i, &cp);
        if (len == 0)
            return gmud_error_set(err, GMUD_ERR_BAD_UTF8, i,
                                  "reply data is not UTF-8 at byte %zu", i);
        if (cp == 0)
            return gmud_error_set(err, GMUD_ERR_UNENCODABLE, i,
                                  "reply data holds a NUL at byte %zu", i);
        put_escaped(o, cp);
        i += len;
    }
    put(o, "\"", 1);
    return GMUD_OK;
}

static ptrdiff_t finish(const text_out *o, gmud_error *err)
{
    if (o->full)
        return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0,
                              "session message does not fit in %zu bytes", o->cap);
    return (ptrdiff_t)o->len;
}

ptrdiff_t gmud_session_lecture_welcome(uint64_t id, uint8_t *out, size_t cap, gmud_error *err)
{
    text_out o = {out, cap, 0, 0};
    put_str(&o, "{\"session_id\": ");
    put_u64(&o, id);
    put_str(&o, ", \"sequence_id\": 0}");
    return finish(&o, err);
}

ptrdiff_t gmud_session_lecture_reply(uint64_t id, uint64_t seq, const char *data, size_t len,
                                     uint8_t *out, size_t cap, gmud_error *err)
{
    text_out o = {out, cap, 0, 0};
    put_str(&o, "{\"session_id\": ");
    put_u64(&o, id);
    put_str(&o, ", \"sequence_id\": ");
    put_u64(&o, seq);
    put_str(&o, ", \"data\": ");
    int rc = put_string(&o, data, len, err);
    if (rc != GMUD_OK)
        return rc;
    put_str(&o, "}");
    return finish(&o, err);
}

/* ---- Checking the lecture's messages ---------------------------------- */

/* Reads msg's integer field name, >= 0, into *v. */
static int get_field(const json_t *msg, const char *name, uint64_t *v, gmud_error *err)
{
    const json_t *f = json_object_get(msg, name);
    if (f == NULL)
        return gmud_error_set(err, GMUD_ERR_MISSING_FIELD, 0, "no \"%s\" field", name);
    if (!json_is_integer(f))
        return gmud_error_set(err, GMUD_ERR_BAD_FIELD, 0, "\"%s\" is not an integer", name);
    json_int_t i = json_integer_value(f);
    if (i < 0)
        return gmud_error_set(err, GMUD_ERR_BAD_FIELD, 0,
                              "\"%s\" is negative (%" JSON_INTEGER_FORMAT ")", name, i);
    *v = (uint64_t)i;
    return GMUD_OK;
}

static int get_fields(const json_t *msg, uint64_t *id, uint64_t *seq, gmud_error *err)
{
    if (!json_is_object(msg))
        return gmud_error_set(err, GMUD_ERR_NOT_OBJECT, 0, "session message is not an object");
    int rc = get_field(msg, "session_id", id, err);
    return rc != GMUD_OK ? rc : get_field(msg, "sequence_id", seq, err);
}

int gmud_session_lecture_check(const gmud_session *s, const json_t *msg, gmud_error *err)
{
    uint64_t id = 0, seq = 0; /* set by get_fields on success; zeroed for -O3 flow analysis */
    int rc = get_fields(msg, &id, &seq, err);
    return rc != GMUD_OK ? rc : gmud_session_check_seq(s, id, seq, err);
}

int gmud_session_welcomed(gmud_session *s, gmud_session_mode mode, const json_t *msg,
                          gmud_error *err)
{
    if (mode != GMUD_SESSION_ON && mode != GMUD_SESSION_LECTURE)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "no welcome in session mode %s",
                              gmud_session_mode_name(mode));
    uint64_t id = 0, seq = 0; /* set by get_fields on success; zeroed for -O3 flow analysis */
    int rc = get_fields(msg, &id, &seq, err);
    if (rc != GMUD_OK)
        return rc;
    if (id == 0 || id > GMUD_SESSION_ID_MAX)
        return gmud_error_set(err, GMUD_ERR_BAD_FIELD, 0,
                              "welcome session id %" PRIu64 " is outside 1..2^53-1", id);
    if (seq != 0)
        return gmud_error_set(err, GMUD_ERR_SKIPPED, 0,
                              "welcome: expected sequence 0, got %" PRIu64, seq);
    if (mode == GMUD_SESSION_LECTURE)
        gmud_session_start_lecture(s, id);
    else
        gmud_session_start(s, id, 0, 1);
    return GMUD_OK;
}

int gmud_session_refusal(const json_t *msg, gmud_error *err)
{
    gmud_error e;
    if (!gmud_json_error_packet(msg, &e))
        return GMUD_OK;
    return gmud_error_set(err, e.code != GMUD_OK ? e.code : GMUD_ERR_NOT_WELCOMED, 0,
                          "the server refused the connection: %.120s", e.message);
}

int gmud_session_lecture_welcomed(gmud_session *s, const json_t *msg, gmud_error *err)
{
    return gmud_session_welcomed(s, GMUD_SESSION_LECTURE, msg, err);
}

/* ---- Modes and gmud's header ------------------------------------------ */

static const char *const mode_names[] = {"off", "lecture", "on"};

const char *gmud_session_mode_name(gmud_session_mode mode)
{
    return (unsigned)mode < 3 ? mode_names[mode] : "unknown";
}

int gmud_session_mode_parse(const char *name, gmud_session_mode *out, gmud_error *err)
{
    for (unsigned i = 0; i < 3; i++) {
        if (strcmp(name, mode_names[i]) == 0) {
            *out = (gmud_session_mode)i;
            return GMUD_OK;
        }
    }
    return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                          "unknown session mode '%.40s' (off, lecture or on)", name);
}

static void put_le64(uint8_t *out, uint64_t v)
{
#if GMUD_SESSION_LE_HOST_
    memcpy(out, &v, 8); /* see gmud_session_le64 in session.h */
#else
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (8 * i));
#endif
}

static uint64_t get_le64(const uint8_t *p)
{
    return gmud_session_le64(p);
}

void gmud_session_header_put(uint8_t *out, uint64_t id, uint64_t seq)
{
    put_le64(out, id);
    put_le64(out + 8, seq);
}

int gmud_session_header_check(const gmud_session *s, const uint8_t *p, size_t len,
                              uint64_t *seq, gmud_error *err)
{
    if (len < GMUD_SESSION_HEADER_SIZE)
        return gmud_error_set(err, GMUD_ERR_MISSING_FIELD, 0,
                              "packet of %zu bytes is shorter than the %d-byte session header",
                              len, GMUD_SESSION_HEADER_SIZE);
    uint64_t got = get_le64(p + 8);
    int rc = gmud_session_check_seq(s, get_le64(p), got, err);
    if (rc == GMUD_OK)
        *seq = got;
    return rc;
}

void gmud_session_start_on_server(gmud_session *s, uint64_t id)
{
    gmud_session_start(s, id, 1, 0);
}
