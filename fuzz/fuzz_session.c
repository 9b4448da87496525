/* fuzz/fuzz_session.c: the session decoders (gmud/session.h), fed what a
 * hostile peer can send.
 *
 * Input: 17 bytes that set up the receiving side's session (8 bytes of id,
 * 8 of the next expected sequence, 1 of flags), then the packet. The packet
 * is read four ways, each with its invariants:
 *   - mode on: gmud_session_header_check() and the inline fast path
 *     gmud_session_header_accept() agree exactly (accepted iff the check
 *     says 0, and then the expected sequence moved by one and nothing else
 *     did); a refusal changes nothing and names a session code; a packet
 *     the check accepts has the header gmud_session_header_put() writes;
 *   - a welcome, for each mode: gmud_session_welcomed() succeeds only for
 *     an object whose session_id is in 1..2^53-1 and sequence_id is 0, and
 *     then starts the session with that id; else the session is unchanged;
 *   - a lecture reply: gmud_session_lecture_check() never changes the
 *     session, and says 0 only for the expected id and sequence;
 *   - reply text: gmud_session_lecture_reply() with the packet as data
 *     writes valid JSON (parsed back, data equal) or refuses non-UTF-8 or a
 *     NUL with the documented codes.
 * Never a crash, a leak, or a read past the packet (it is copied into a
 * block of its exact size).
 */
#include "fuzz_common.h"

#include "gmud/session.h"

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int session_code(int rc)
{
    return rc == GMUD_ERR_MISSING_FIELD || rc == GMUD_ERR_BAD_SESSION ||
           rc == GMUD_ERR_REPLAYED || rc == GMUD_ERR_SKIPPED || rc == GMUD_ERR_SEQ_EXHAUSTED ||
           rc == GMUD_ERR_NOT_WELCOMED;
}

static int same(const gmud_session *a, const gmud_session *b)
{
    return a->id == b->id && a->send_seq == b->send_seq && a->recv_seq == b->recv_seq;
}

static void check_header(const gmud_session *s, const uint8_t *p, size_t n)
{
    gmud_session checked = *s, fast = *s;
    uint64_t seq = 0;
    gmud_error err;
    int rc = gmud_session_header_check(&checked, p, n, &seq, &err);
    FUZZ_CHECK(same(&checked, s), "header_check changed the session");
    int took = gmud_session_header_accept(&fast, p, n);
    FUZZ_CHECK(took == (rc == GMUD_OK), "fast path %d, check %d", took, rc);
    if (rc != GMUD_OK) {
        fuzz_check_error(&err, rc, n);
        FUZZ_CHECK(session_code(rc), "header refusal with code %s", gmud_err_name(rc));
        FUZZ_CHECK(same(&fast, s), "a refused header moved the session");
        return;
    }
    FUZZ_CHECK(seq == s->recv_seq && fast.recv_seq == s->recv_seq + 1 && fast.id == s->id &&
                   fast.send_seq == s->send_seq,
               "accepted header: sequence %llu, window %llu -> %llu",
               (unsigned long long)seq, (unsigned long long)s->recv_seq,
               (unsigned long long)fast.recv_seq);
    uint8_t h[GMUD_SESSION_HEADER_SIZE];
    gmud_session_header_put(h, s->id, seq);
    FUZZ_CHECK(memcmp(h, p, sizeof h) == 0, "accepted bytes are not the header put writes");
    FUZZ_CHECK(le64(p) == s->id && le64(p + 8) == seq, "fields read back differently");
    /* check then commit says the same as the fast path */
    FUZZ_CHECK(gmud_session_commit_seq(&checked, seq, NULL) == GMUD_OK && same(&checked, &fast),
               "commit after check differs from the fast path");
}

static void check_json_forms(const gmud_session *s, const uint8_t *p, size_t n)
{
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    lim.require_object = 0; /* the session functions must refuse non-objects themselves */
    json_t *v = NULL;
    gmud_error err;
    if (gmud_json_parse(p, n, &lim, &v, &err) != GMUD_OK)
        return;
    static const gmud_session_mode modes[2] = {GMUD_SESSION_ON, GMUD_SESSION_LECTURE};
    for (int i = 0; i < 2; i++) {
        gmud_session w = *s;
        int rc = gmud_session_welcomed(&w, modes[i], v, &err);
        json_t *id = json_object_get(v, "session_id");
        json_t *sq = json_object_get(v, "sequence_id");
        int good = json_is_object(v) && json_is_integer(id) && json_is_integer(sq) &&
                   json_integer_value(id) >= 1 &&
                   (uint64_t)json_integer_value(id) <= GMUD_SESSION_ID_MAX &&
                   json_integer_value(sq) == 0;
        FUZZ_CHECK((rc == GMUD_OK) == good, "welcome judged %d, fields say %d", rc, good);
        if (rc == GMUD_OK)
            FUZZ_CHECK(w.id == (uint64_t)json_integer_value(id) && w.recv_seq == 1,
                       "welcome started the wrong session");
        else
            FUZZ_CHECK(same(&w, s), "a refused welcome changed the session");
    }
    gmud_session r = *s;
    int rc = gmud_session_lecture_check(&r, v, &err);
    FUZZ_CHECK(same(&r, s), "lecture_check changed the session");
    if (rc == GMUD_OK) {
        json_t *id = json_object_get(v, "session_id"), *sq = json_object_get(v, "sequence_id");
        FUZZ_CHECK((uint64_t)json_integer_value(id) == s->id &&
                       (uint64_t)json_integer_value(sq) == s->recv_seq,
                   "lecture reply accepted with the wrong fields");
    } else {
        fuzz_check_error(&err, rc, SIZE_MAX);
    }
    json_decref(v);
}

static void check_reply_text(const gmud_session *s, const uint8_t *p, size_t n)
{
    size_t cap = 6 * n + 80;
    uint8_t *out = fuzz_alloc(cap);
    gmud_error err;
    /* jansson reads integers up to INT64_MAX only (session.h): a lecture
     * session would need 2^63 packets to get there. */
    uint64_t seq = s->recv_seq & (UINT64_MAX >> 1);
    ptrdiff_t len = gmud_session_lecture_reply(s->id, seq, (const char *)p, n, out, cap, &err);
    if (len < 0) {
        FUZZ_CHECK(len == GMUD_ERR_BAD_UTF8 || len == GMUD_ERR_UNENCODABLE,
                   "reply refused with %s", gmud_err_name((int)len));
        fuzz_check_error(&err, (int)len, n);
        free(out);
        return;
    }
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    lim.max_string = (size_t)len;
    json_t *v = NULL;
    int rc = gmud_json_parse(out, (size_t)len, &lim, &v, &err);
    FUZZ_CHECK(rc == GMUD_OK, "a reply gmud wrote does not parse: %s", err.message);
    const char *data = json_string_value(json_object_get(v, "data"));
    FUZZ_CHECK(data != NULL && json_string_length(json_object_get(v, "data")) == n &&
                   memcmp(data, p, n) == 0,
               "the reply's data differs from what was given");
    json_decref(v);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 17)
        return 0;
    gmud_session s;
    uint64_t id = le64(data) & GMUD_SESSION_ID_MAX;
    uint64_t next = le64(data + 8);
    /* Small sequences most of the time, so that packets can match them;
     * now and then the edge (exhausted, the last one). */
    if (data[16] & 1)
        next &= 0xff;
    if (data[16] & 2)
        id = 0; /* no session yet */
    gmud_session_start(&s, id, data[16] >> 2, next);
    uint8_t *p = fuzz_dup(data + 17, size - 17);
    size_t n = size - 17;
    check_header(&s, p, n);
    check_json_forms(&s, p, n);
    check_reply_text(&s, p, n < 4096 ? n : 4096);
    free(p);
    return 0;
}
