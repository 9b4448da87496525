/* Sessions: ids, sequence checks (replay, skip, wrong session, wrap), and the
 * lecture's approach-6 messages byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gmud/json.h"
#include "gmud/session.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_ids(void)
{
    enum { N = 100000 };
    uint64_t *ids = malloc(N * sizeof *ids);
    gmud_error err;
    size_t high = 0, low = 0, bad = 0;
    for (size_t i = 0; i < N; i++) {
        if (gmud_session_new_id(&ids[i], &err) != 0)
            bad++;
        bad += ids[i] == 0 || ids[i] > GMUD_SESSION_ID_MAX;
        high += ids[i] > (UINT64_C(1) << 52);
        low += ids[i] < (UINT64_C(1) << 52);
    }
    CHECK_EQ_INT(bad, 0);
    /* Half should be above 2^52; far from both ends means all 53 bits move. */
    CHECK(high > N / 2 - N / 50 && high < N / 2 + N / 50);
    CHECK(low > 0);
    qsort(ids, N, sizeof *ids, cmp_u64);
    size_t dups = 0;
    for (size_t i = 1; i < N; i++)
        dups += ids[i] == ids[i - 1];
    CHECK_EQ_INT(dups, 0);
    free(ids);
}

static void test_check_table(void)
{
    static const struct {
        uint64_t id, want;       /* the session's state */
        uint64_t got_id, got_seq;
        int rc;
        const char *text;        /* the error message names these */
    } cases[] = {
        {77, 0, 77, 0, 0, NULL},
        {77, 5, 77, 5, 0, NULL},
        {77, 5, 77, 4, GMUD_ERR_REPLAYED, "expected sequence 5, got 4 (1 behind)"},
        {77, 5, 77, 0, GMUD_ERR_REPLAYED, "expected sequence 5, got 0 (5 behind)"},
        {77, 5, 77, 6, GMUD_ERR_SKIPPED, "expected sequence 5, got 6 (1 ahead)"},
        {77, 0, 77, UINT64_MAX, GMUD_ERR_SKIPPED, "got 18446744073709551615"},
        {77, UINT64_MAX - 1, 77, 0, GMUD_ERR_REPLAYED, "(18446744073709551614 behind)"},
        {77, 5, 78, 5, GMUD_ERR_BAD_SESSION, "expected 77, got 78"},
        {77, 5, 0, 5, GMUD_ERR_BAD_SESSION, "expected 77, got 0"},
        {0, 0, 0, 0, GMUD_ERR_NOT_WELCOMED, "before the welcome"},
        {77, UINT64_MAX, 77, UINT64_MAX, GMUD_ERR_SEQ_EXHAUSTED, "exhausted"},
        {77, UINT64_MAX, 77, 0, GMUD_ERR_SEQ_EXHAUSTED, "exhausted"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_session s;
        gmud_session_start(&s, cases[i].id, 0, cases[i].want);
        gmud_error err = {0};
        CHECK_EQ_INT(gmud_session_check_seq(&s, cases[i].got_id, cases[i].got_seq, &err),
                     cases[i].rc);
        if (cases[i].text)
            CHECK_CONTAINS(err.message, cases[i].text);
        CHECK(s.recv_seq == cases[i].want); /* checking never moves the window */
    }
}

static void test_commit(void)
{
    gmud_session s;
    gmud_error err;
    gmud_session_start(&s, 9, 0, 0);
    for (uint64_t seq = 0; seq < 3; seq++) {
        CHECK_EQ_INT(gmud_session_check_seq(&s, 9, seq, &err), 0);
        CHECK_EQ_INT(gmud_session_check_seq(&s, 9, seq, &err), 0); /* still not advanced */
        CHECK_EQ_INT(gmud_session_commit_seq(&s, seq, &err), 0);
        CHECK_EQ_INT(gmud_session_check_seq(&s, 9, seq, &err), GMUD_ERR_REPLAYED);
    }
    CHECK_EQ_INT(s.recv_seq, 3);
    CHECK_EQ_INT(gmud_session_commit_seq(&s, 2, &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_session_commit_seq(&s, 4, &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(s.recv_seq, 3);

    /* The last sequence is UINT64_MAX - 1; accepting it exhausts the session
     * instead of wrapping to 0, where every old packet would be new again. */
    gmud_session_start(&s, 9, UINT64_MAX - 1, UINT64_MAX - 1);
    CHECK_EQ_INT(gmud_session_check_seq(&s, 9, UINT64_MAX - 1, &err), 0);
    CHECK_EQ_INT(gmud_session_commit_seq(&s, UINT64_MAX - 1, &err), 0);
    CHECK(s.recv_seq == GMUD_SEQ_EXHAUSTED);
    CHECK_EQ_INT(gmud_session_check_seq(&s, 9, 0, &err), GMUD_ERR_SEQ_EXHAUSTED);
    CHECK_EQ_INT(gmud_session_commit_seq(&s, UINT64_MAX, &err), GMUD_ERR_INVALID);
    CHECK(s.recv_seq == GMUD_SEQ_EXHAUSTED);

    uint64_t seq = 0;
    CHECK_EQ_INT(gmud_session_next_send(&s, &seq, &err), 0);
    CHECK(seq == UINT64_MAX - 1);
    CHECK_EQ_INT(gmud_session_next_send(&s, &seq, &err), GMUD_ERR_SEQ_EXHAUSTED);
    CHECK(s.send_seq == GMUD_SEQ_EXHAUSTED);
    gmud_session_init(&s);
    CHECK_EQ_INT(gmud_session_next_send(&s, &seq, &err), 0);
    CHECK_EQ_INT(seq, 0);
    CHECK_EQ_INT(gmud_session_next_send(&s, &seq, &err), 0);
    CHECK_EQ_INT(seq, 1);
}

/* Expected texts from Python 3, e.g.
 *   python3 -c 'import json; print(json.dumps({"session_id": 42,
 *     "sequence_id": 1, "data": "this is test data"}))'
 * and for the escapes, with print(json.dumps(json.dumps({...}))) to get a C
 * literal: "data": "q\"b\\s/ \b\f\n\r\t\x01\x1f\x7f \u00e9\u20ac\u2028\uffff\U0001F600~" */
static void test_lecture_texts(void)
{
    uint8_t out[512];
    gmud_error err;
    ptrdiff_t n = gmud_session_lecture_welcome(GMUD_SESSION_ID_MAX, out, sizeof out, &err);
    const char *welcome = "{\"session_id\": 9007199254740991, \"sequence_id\": 0}";
    CHECK_MEM(out, n, welcome, strlen(welcome));
    for (size_t cap = 0; cap < strlen(welcome); cap++)
        CHECK_EQ_INT(gmud_session_lecture_welcome(GMUD_SESSION_ID_MAX, out, cap, &err),
                     GMUD_ERR_UNENCODABLE);

    static const struct {
        uint64_t id, seq;
        const char *data, *want;
    } replies[] = {
        {42, 1, GMUD_SESSION_LECTURE_DATA,
         "{\"session_id\": 42, \"sequence_id\": 1, \"data\": \"this is test data\"}"},
        {7, 3, "", "{\"session_id\": 7, \"sequence_id\": 3, \"data\": \"\"}"},
        {1, INT64_MAX, /* the largest jansson reads back */
         "q\"b\\s/ \b\f\n\r\t\x01\x1f\x7f \xc3\xa9\xe2\x82\xac\xe2\x80\xa8\xef\xbf\xbf"
         "\xf0\x9f\x98\x80~",
         "{\"session_id\": 1, \"sequence_id\": 9223372036854775807, \"data\": \"q\\\"b\\\\s/ "
         "\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f \\u00e9\\u20ac\\u2028\\uffff\\ud83d\\ude00~\"}"},
    };
    for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
        const char *d = replies[i].data, *want = replies[i].want;
        n = gmud_session_lecture_reply(replies[i].id, replies[i].seq, d, strlen(d), out,
                                       sizeof out, &err);
        CHECK_MEM(out, n, want, strlen(want));
        CHECK(6 * strlen(d) + 80 >= strlen(want));
        for (size_t cap = 0; cap < strlen(want); cap++)
            CHECK_EQ_INT(gmud_session_lecture_reply(replies[i].id, replies[i].seq, d, strlen(d),
                                                    out, cap, &err),
                         GMUD_ERR_UNENCODABLE);
        /* gmud's own reader gets the data back. */
        json_t *v = NULL;
        gmud_json_limits lim;
        gmud_json_default_config(&lim);
        CHECK_EQ_INT(gmud_json_parse((const uint8_t *)want, strlen(want), &lim, &v, &err), 0);
        CHECK(v && strcmp(json_string_value(json_object_get(v, "data")), d) == 0);
        json_decref(v);
    }
}

static void test_reply_refusals(void)
{
    static const struct {
        const char *data;
        size_t len;
        int rc;
        size_t offset;
    } cases[] = {
        {"ab\xff", 3, GMUD_ERR_BAD_UTF8, 2},
        {"\xc0\xaf", 2, GMUD_ERR_BAD_UTF8, 0},         /* overlong '/' */
        {"x\xed\xa0\x80", 4, GMUD_ERR_BAD_UTF8, 1},    /* surrogate */
        {"\xf4\x90\x80\x80", 4, GMUD_ERR_BAD_UTF8, 0}, /* above U+10FFFF */
        {"\xe2\x82", 2, GMUD_ERR_BAD_UTF8, 0},         /* truncated */
        {"\x80", 1, GMUD_ERR_BAD_UTF8, 0},             /* lone continuation */
        {"a\0b", 3, GMUD_ERR_UNENCODABLE, 1},
    };
    uint8_t out[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_error err = {0};
        CHECK_EQ_INT(gmud_session_lecture_reply(1, 1, cases[i].data, cases[i].len, out,
                                                sizeof out, &err),
                     cases[i].rc);
        CHECK_EQ_INT(err.offset, cases[i].offset);
    }
}

static int check_text(gmud_session *s, const char *text, int welcome, gmud_error *err)
{
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    lim.require_object = 0;
    json_t *v = NULL;
    int rc = gmud_json_parse((const uint8_t *)text, strlen(text), &lim, &v, err);
    CHECK_EQ_INT(rc, 0);
    rc = welcome ? gmud_session_lecture_welcomed(s, v, err) : gmud_session_lecture_check(s, v, err);
    json_decref(v);
    return rc;
}

static void test_lecture_check(void)
{
    static const struct {
        const char *text;
        int rc;
        const char *msg;
    } cases[] = {
        {"{\"session_id\": 5, \"sequence_id\": 3, \"data\": \"x\"}", 0, NULL},
        {"{\"sequence_id\": 3, \"session_id\": 5}", 0, NULL},
        {"{\"sequence_id\": 3}", GMUD_ERR_MISSING_FIELD, "\"session_id\""},
        {"{\"session_id\": 5}", GMUD_ERR_MISSING_FIELD, "\"sequence_id\""},
        {"{}", GMUD_ERR_MISSING_FIELD, "\"session_id\""},
        {"{\"session_id\": \"5\", \"sequence_id\": 3}", GMUD_ERR_BAD_FIELD, "not an integer"},
        {"{\"session_id\": 5.0, \"sequence_id\": 3}", GMUD_ERR_BAD_FIELD, "not an integer"},
        {"{\"session_id\": 5, \"sequence_id\": true}", GMUD_ERR_BAD_FIELD, "\"sequence_id\""},
        {"{\"session_id\": 5, \"sequence_id\": null}", GMUD_ERR_BAD_FIELD, "not an integer"},
        {"{\"session_id\": 5, \"sequence_id\": [3]}", GMUD_ERR_BAD_FIELD, "not an integer"},
        {"{\"session_id\": 5, \"sequence_id\": -1}", GMUD_ERR_BAD_FIELD, "negative (-1)"},
        {"{\"session_id\": 6, \"sequence_id\": 3}", GMUD_ERR_BAD_SESSION, "expected 5, got 6"},
        {"{\"session_id\": 5, \"sequence_id\": 2}", GMUD_ERR_REPLAYED,
         "expected sequence 3, got 2"},
        {"{\"session_id\": 5, \"sequence_id\": 9}", GMUD_ERR_SKIPPED, "expected sequence 3, got 9"},
        {"[5, 3]", GMUD_ERR_NOT_OBJECT, "not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_session s;
        gmud_session_start(&s, 5, 0, 3);
        gmud_error err = {0};
        CHECK_EQ_INT(check_text(&s, cases[i].text, 0, &err), cases[i].rc);
        if (cases[i].msg)
            CHECK_CONTAINS(err.message, cases[i].msg);
        CHECK_EQ_INT(s.recv_seq, 3);
    }
}

static void test_lecture_welcomed(void)
{
    static const struct {
        const char *text;
        int rc;
    } cases[] = {
        {"{\"session_id\": 9007199254740991, \"sequence_id\": 0}", 0},
        {"{\"session_id\": 9007199254740992, \"sequence_id\": 0}", GMUD_ERR_BAD_FIELD},
        {"{\"session_id\": 0, \"sequence_id\": 0}", GMUD_ERR_BAD_FIELD},
        {"{\"session_id\": 12, \"sequence_id\": 1}", GMUD_ERR_SKIPPED},
        {"{\"session_id\": 12}", GMUD_ERR_MISSING_FIELD},
        {"{\"session_id\": 12, \"sequence_id\": \"0\"}", GMUD_ERR_BAD_FIELD},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_session s;
        gmud_session_init(&s);
        gmud_error err;
        CHECK_EQ_INT(check_text(&s, cases[i].text, 1, &err), cases[i].rc);
        CHECK(cases[i].rc == 0 ? s.id == GMUD_SESSION_ID_MAX && s.send_seq == 1 && s.recv_seq == 1
                               : s.id == 0 && s.send_seq == 0 && s.recv_seq == 0);
    }
}

/* The lecture's loop: welcome, then data and reply strictly alternating. */
static void test_lecture_exchange(void)
{
    gmud_session server, client;
    gmud_error err;
    uint64_t id;
    uint8_t buf[256];
    CHECK_EQ_INT(gmud_session_new_id(&id, &err), 0);
    ptrdiff_t n = gmud_session_lecture_welcome(id, buf, sizeof buf - 1, &err);
    buf[n] = '\0';
    gmud_session_start_lecture(&server, id);
    gmud_session_init(&client);
    CHECK_EQ_INT(check_text(&client, (const char *)buf, 1, &err), 0);
    CHECK(client.id == id);
    char first[256] = "";
    for (int round = 1; round <= 5; round++) {
        /* (the server sends data packet `round`; the client counts it) */
        uint64_t seq;
        CHECK_EQ_INT(gmud_session_next_send(&client, &seq, &err), 0);
        CHECK_EQ_INT(seq, round);
        n = gmud_session_lecture_reply(client.id, seq, "hi", 2, buf, sizeof buf - 1, &err);
        buf[n] = '\0';
        if (round == 1)
            memcpy(first, buf, (size_t)n + 1);
        CHECK_EQ_INT(check_text(&server, (const char *)buf, 0, &err), 0);
        CHECK_EQ_INT(gmud_session_commit_seq(&server, seq, &err), 0);
    }
    /* The first reply, replayed, is refused. */
    CHECK_EQ_INT(check_text(&server, first, 0, &err), GMUD_ERR_REPLAYED);
    CHECK_CONTAINS(err.message, "expected sequence 6, got 1");
}

/* gmud's own header: the bytes, the inline fast path and the full check
 * agree on every case, and a refusal changes nothing. */
static void test_header(void)
{
    uint8_t h[GMUD_SESSION_HEADER_SIZE];
    gmud_session_header_put(h, 0x0004a90be58c3ce9ULL, 7);
    static const uint8_t want[16] = {0xe9, 0x3c, 0x8c, 0xe5, 0x0b, 0xa9, 0x04, 0x00,
                                     7,    0,    0,    0,    0,    0,    0,    0};
    CHECK(memcmp(h, want, sizeof want) == 0);
    CHECK(gmud_session_le64(h) == 0x0004a90be58c3ce9ULL);

    gmud_session s;
    gmud_session_start(&s, 0x0004a90be58c3ce9ULL, 1, 7);
    struct {
        uint64_t id, seq;
        size_t len;
        int code;
    } cases[] = {
        {0x0004a90be58c3ce9ULL, 7, 16, GMUD_OK},
        {0x0004a90be58c3ce9ULL, 7, 15, GMUD_ERR_MISSING_FIELD},
        {0x0004a90be58c3ce9ULL, 6, 16, GMUD_ERR_REPLAYED},
        {0x0004a90be58c3ce9ULL, 8, 16, GMUD_ERR_SKIPPED},
        {0x0004a90be58c3ce8ULL, 7, 16, GMUD_ERR_BAD_SESSION},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_session_header_put(h, cases[i].id, cases[i].seq);
        gmud_session copy = s;
        uint64_t seq = 0;
        gmud_error err;
        int rc = gmud_session_header_check(&s, h, cases[i].len, &seq, &err);
        CHECK_EQ_INT(rc, cases[i].code);
        int fast = gmud_session_header_accept(&copy, h, cases[i].len);
        CHECK_EQ_INT(fast, cases[i].code == GMUD_OK);
        CHECK(copy.recv_seq == (fast ? 8u : 7u) && copy.id == s.id && copy.send_seq == 1);
    }
    /* No session yet, or the counter spent: never accepted. */
    gmud_session none;
    gmud_session_init(&none);
    gmud_session_header_put(h, 0, 0);
    CHECK_EQ_INT(gmud_session_header_accept(&none, h, 16), 0);
    gmud_session spent;
    gmud_session_start(&spent, 5, 0, GMUD_SEQ_EXHAUSTED);
    gmud_session_header_put(h, 5, GMUD_SEQ_EXHAUSTED);
    CHECK_EQ_INT(gmud_session_header_accept(&spent, h, 16), 0);
    CHECK(spent.recv_seq == GMUD_SEQ_EXHAUSTED);
}

static void test_error_names(void)
{
    CHECK(strcmp(gmud_err_name(GMUD_ERR_REPLAYED), "replayed") == 0);
    CHECK(strcmp(gmud_err_name(GMUD_ERR_RATE_LIMITED), "rate_limited") == 0);
    CHECK(GMUD_ERR_LAST_ < GMUD_ERR_RATE_LIMITED);
    for (int code = -1; code > GMUD_ERR_LAST_; code--)
        CHECK_EQ_INT(gmud_err_from_name(gmud_err_name(code)), code);
    CHECK_EQ_INT(gmud_err_from_name("no_such_code"), GMUD_OK);
}

/* An error packet where the welcome should be is the server's refusal. */
static void test_refusal(void)
{
    gmud_error err;
    json_t *v = json_loads("{\"error\": \"full\", \"code\": \"server_full\"}", 0, NULL);
    CHECK_EQ_INT(gmud_session_refusal(v, &err), GMUD_ERR_SERVER_FULL);
    CHECK_CONTAINS(err.message, "refused the connection: server_full: full");
    json_decref(v);
    v = json_loads("{\"error\": \"go\", \"code\": \"no_such_code\"}", 0, NULL);
    CHECK_EQ_INT(gmud_session_refusal(v, &err), GMUD_ERR_NOT_WELCOMED);
    json_decref(v);
    v = json_loads("{\"session_id\": 4242, \"sequence_id\": 0}", 0, NULL);
    CHECK_EQ_INT(gmud_session_refusal(v, &err), GMUD_OK);
    json_decref(v);
    v = json_loads("{\"error\": 1, \"code\": \"server_full\"}", 0, NULL);
    CHECK_EQ_INT(gmud_session_refusal(v, &err), GMUD_OK);
    json_decref(v);
}

int main(void)
{
    test_ids();
    test_check_table();
    test_commit();
    test_lecture_texts();
    test_reply_refusals();
    test_lecture_check();
    test_lecture_welcomed();
    test_lecture_exchange();
    test_header();
    test_refusal();
    test_error_names();
    return check_report("test_session");
}
