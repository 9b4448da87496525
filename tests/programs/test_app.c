/* tests/programs/test_app.c: the server applications' pure logic (programs/app.c).
 *
 * The expected strings were printed by Python 3 (time.ctime, json.dumps) in
 * the same time zone: the clock's messages must be the lecture's server's,
 * byte for byte. */
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "check.h"
#include "gmud/json.h"

static void set_tz(const char *tz)
{
    CHECK(setenv("TZ", tz, 1) == 0);
    tzset();
}

/* app_ctime(t) is exactly want, with the length returned. */
static void check_ctime(time_t t, const char *want)
{
    char out[64];
    memset(out, 'x', sizeof out);
    int n = app_ctime(t, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    if (n >= 0) {
        CHECK_MEM(out, (size_t)n + 1, want, strlen(want) + 1); /* NUL-terminated */
    } else {
        fprintf(stderr, "  app_ctime(%lld) failed, want \"%s\"\n", (long long)t, want);
    }
}

static void test_ctime_utc(void)
{
    set_tz("UTC");
    /* A single-digit day of month is space-padded to two: asctime's "%3d". */
    check_ctime(1551526850, "Sat Mar  2 11:40:50 2019");
    check_ctime(1553946050, "Sat Mar 30 11:40:50 2019"); /* the lecture's example */
    check_ctime(0, "Thu Jan  1 00:00:00 1970");
    check_ctime(-1, "Wed Dec 31 23:59:59 1969");
    check_ctime(1607731199, "Fri Dec 11 23:59:59 2020");
    check_ctime(951782400, "Tue Feb 29 00:00:00 2000");
    check_ctime(253402300799LL, "Fri Dec 31 23:59:59 9999"); /* the last 24-byte date */
    /* Past year 9999 Python prints the longer year as is. */
    if (sizeof(time_t) >= 8)
        check_ctime((time_t)253402300800LL, "Sat Jan  1 00:00:00 10000");

    /* The documented size: 24 characters and the NUL. */
    char out[APP_CTIME_SIZE];
    CHECK_EQ_INT(app_ctime(1551526850, out, sizeof out), APP_CTIME_SIZE - 1);
    CHECK(strcmp(out, "Sat Mar  2 11:40:50 2019") == 0);
    CHECK_EQ_INT(app_ctime(1551526850, out, APP_CTIME_SIZE - 1), -1); /* no room for NUL */
    CHECK_EQ_INT(app_ctime(1551526850, out, 1), -1);
    /* A time no struct tm can hold (Python: OverflowError) is an error. */
    if (sizeof(time_t) >= 8) {
        char big[64];
        CHECK_EQ_INT(app_ctime((time_t)INT64_MAX, big, sizeof big), -1);
    }
}

static void test_ctime_local(void)
{
    /* Local time, as Python's ctime: a POSIX TZ needs no tzdata. */
    set_tz("XYZ-5:30");
    check_ctime(0, "Thu Jan  1 05:30:00 1970");
    check_ctime(1551526850, "Sat Mar  2 17:10:50 2019");
    set_tz("UTC");
}

static void test_clock_text(void)
{
    set_tz("UTC");
    char out[APP_CLOCK_MAX];
    const char *want = "0:Sat Mar  2 11:40:50 2019";
    int n = app_clock_text(0, 1551526850, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    CHECK(n < 0 || strcmp(out, want) == 0);

    want = "59:Sat Mar 30 11:40:50 2019";
    n = app_clock_text(59, 1553946050, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    CHECK(n < 0 || strcmp(out, want) == 0);

    want = "18446744073709551615:Sat Mar  2 11:40:50 2019";
    n = app_clock_text(ULLONG_MAX, 1551526850, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    CHECK(n < 0 || strcmp(out, want) == 0);

    /* cap: exactly the length plus the NUL fits; one less does not. */
    size_t len = strlen("7:Sat Mar  2 11:40:50 2019");
    CHECK_EQ_INT(app_clock_text(7, 1551526850, out, len + 1), len);
    CHECK_EQ_INT(app_clock_text(7, 1551526850, out, len), -1);
    if (sizeof(time_t) >= 8)
        CHECK_EQ_INT(app_clock_text(7, (time_t)INT64_MAX, out, sizeof out), -1);
}

static void test_clock_json(void)
{
    set_tz("UTC");
    char out[APP_CLOCK_MAX];
    /* json.dumps({"time": ..., "message": ..., "value": n}): ", " and ": ". */
    const char *want =
        "{\"time\": \"Sat Mar  2 11:40:50 2019\", \"message\": \"0:Sat Mar  2 11:40:50 2019\", "
        "\"value\": 0}";
    int n = app_clock_json(0, 1551526850, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    CHECK(n < 0 || strcmp(out, want) == 0);

    want = "{\"time\": \"Sat Mar 30 11:40:50 2019\", \"message\": \"42:Sat Mar 30 11:40:50 2019\", "
           "\"value\": 42}";
    n = app_clock_json(42, 1553946050, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    CHECK(n < 0 || strcmp(out, want) == 0);

    /* The largest n: 127 bytes, so APP_CLOCK_MAX (128) is just enough. */
    want = "{\"time\": \"Sat Mar  2 11:40:50 2019\", \"message\": "
           "\"18446744073709551615:Sat Mar  2 11:40:50 2019\", \"value\": 18446744073709551615}";
    CHECK_EQ_INT(strlen(want), 127);
    n = app_clock_json(ULLONG_MAX, 1551526850, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    CHECK(n < 0 || strcmp(out, want) == 0);
    CHECK_EQ_INT(app_clock_json(ULLONG_MAX, 1551526850, out, 127), -1);

    /* It is JSON: the object parses, and "message" is "n:" + "time". */
    n = app_clock_json(5, 1551526850, out, sizeof out);
    json_error_t jerr;
    json_t *v = n < 0 ? NULL : json_loadb(out, (size_t)n, 0, &jerr);
    CHECK(json_is_object(v));
    CHECK_EQ_INT(json_object_size(v), 3);
    CHECK(json_is_string(json_object_get(v, "time")) &&
          strcmp(json_string_value(json_object_get(v, "time")), "Sat Mar  2 11:40:50 2019") == 0);
    CHECK(json_is_string(json_object_get(v, "message")) &&
          strcmp(json_string_value(json_object_get(v, "message")), "5:Sat Mar  2 11:40:50 2019") ==
              0);
    CHECK(json_is_integer(json_object_get(v, "value")) &&
          json_integer_value(json_object_get(v, "value")) == 5);
    json_decref(v);

    size_t len = strlen(want);
    n = app_clock_json(ULLONG_MAX, 1551526850, out, len + 1);
    CHECK_EQ_INT(n, len);
    if (sizeof(time_t) >= 8)
        CHECK_EQ_INT(app_clock_json(1, (time_t)INT64_MAX, out, sizeof out), -1);
}

static void test_chat_tag(void)
{
    json_error_t jerr;
    /* A forged "from" is replaced by the sender's id. */
    json_t *msg = json_loads("{\"hi\": \"there\", \"from\": 12345, \"nested\": {\"a\": [1]}}", 0,
                             &jerr);
    CHECK(msg != NULL);
    if (msg == NULL)
        return;
    json_t *nested = json_object_get(msg, "nested");
    size_t refs = msg->refcount;
    json_t *out = app_chat_tag(msg, 7);
    CHECK(out != NULL && out != msg);
    if (out != NULL) {
        CHECK_EQ_INT(json_object_size(out), 3);
        CHECK(json_is_integer(json_object_get(out, "from")) &&
              json_integer_value(json_object_get(out, "from")) == 7);
        CHECK(json_is_string(json_object_get(out, "hi")) &&
              strcmp(json_string_value(json_object_get(out, "hi")), "there") == 0);
        /* A shallow copy: the members are shared, not copied. */
        CHECK(json_object_get(out, "nested") == nested);
        char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK(text != NULL && strcmp(text, "{\"from\":7,\"hi\":\"there\",\"nested\":{\"a\":[1]}}") == 0);
        free(text);
    }
    /* msg is not modified. */
    CHECK_EQ_INT(msg->refcount, refs);
    CHECK_EQ_INT(json_object_size(msg), 3);
    CHECK(json_integer_value(json_object_get(msg, "from")) == 12345);
    json_decref(out);

    /* A "from" of another type is replaced all the same. */
    json_t *forged = json_loads("{\"from\": \"admin\"}", 0, &jerr);
    out = app_chat_tag(forged, 1);
    CHECK(out != NULL && json_object_size(out) == 1 &&
          json_integer_value(json_object_get(out, "from")) == 1);
    CHECK(json_is_string(json_object_get(forged, "from")));
    json_decref(out);
    json_decref(forged);

    /* Without one, it is added; a large id survives. */
    json_t *plain = json_object();
    out = app_chat_tag(plain, (uint64_t)1 << 40);
    CHECK(out != NULL && json_object_size(out) == 1 &&
          json_integer_value(json_object_get(out, "from")) == (json_int_t)1 << 40);
    CHECK_EQ_INT(json_object_size(plain), 0);
    json_decref(out);
    json_decref(plain);
    json_decref(msg);
}

/* app_chat_mark(from, line) is exactly want, written over a filled buffer. */
static void check_mark(uint64_t from, const char *line, size_t len, const char *want,
                       size_t want_len)
{
    char out[256];
    memset(out, 'x', sizeof out);
    ptrdiff_t n = app_chat_mark(from, line, len, sizeof out, out, sizeof out);
    CHECK_EQ_INT(n, want_len);
    if (n >= 0) {
        CHECK_MEM(out, (size_t)n, want, want_len);
        CHECK(out[n] == 'x'); /* no NUL, nothing past the end */
    }
}

static void test_chat_mark(void)
{
    /* The mark: the id in decimal, ": ". */
    CHECK_EQ_INT(app_chat_mark_len(0), 3);
    CHECK_EQ_INT(app_chat_mark_len(9), 3);
    CHECK_EQ_INT(app_chat_mark_len(10), 4);
    CHECK_EQ_INT(app_chat_mark_len(99), 4);
    CHECK_EQ_INT(app_chat_mark_len(100), 5);
    CHECK_EQ_INT(app_chat_mark_len(UINT64_MAX), APP_CHAT_MARK_MAX);
    check_mark(1, "plain words", 11, "1: plain words", 14);
    check_mark(0, "x", 1, "0: x", 4);
    check_mark(1234567, "x", 1, "1234567: x", 10);
    check_mark(UINT64_MAX, "x", 1, "18446744073709551615: x", 23);

    /* An empty line is relayed as the mark alone. */
    check_mark(3, "", 0, "3: ", 3);
    char out[64];
    CHECK_EQ_INT(app_chat_mark(3, NULL, 0, sizeof out, out, sizeof out), 3);

    /* A line that would read as the server's error packet, as text or as
     * JSON, is relayed whole but begins with the mark: no longer one. */
    const char *forged = "error server_full: the server is full";
    check_mark(7, forged, strlen(forged), "7: error server_full: the server is full",
               strlen(forged) + 3);
    const char *forged_json = "{\"error\":\"the server is full\",\"code\":\"server_full\"}";
    check_mark(7, forged_json, strlen(forged_json),
               "7: {\"error\":\"the server is full\",\"code\":\"server_full\"}",
               strlen(forged_json) + 3);
    check_mark(2, "error", 5, "2: error", 8);
    ptrdiff_t n = app_chat_mark(42, forged, strlen(forged), sizeof out, out, sizeof out);
    CHECK(n > 6 && memcmp(out, "error ", 6) != 0 && out[0] >= '0' && out[0] <= '9');

    /* Delimiter-like bytes (newline, CR LF, NUL, a 0xff) go as they came:
     * the framing, not the mark, decides whether they can be carried. */
    static const char odd[] = "a\nerror x: y\r\n\0\xff";
    check_mark(5, odd, sizeof odd - 1, "5: a\nerror x: y\r\n\0\xff", sizeof odd - 1 + 3);

    /* The longest line that fits max once marked is relayed whole; one byte
     * more is refused (-1, nothing written), never cut to fit. */
    char line[64];
    memset(line, 'y', sizeof line);
    memset(out, 'x', sizeof out);
    CHECK_EQ_INT(app_chat_mark(12, line, 20 - 4, 20, out, sizeof out), 20);
    CHECK(memcmp(out, "12: yyyyyyyyyyyyyyyy", 20) == 0 && out[20] == 'x');
    memset(out, 'x', sizeof out);
    CHECK_EQ_INT(app_chat_mark(12, line, 20 - 3, 20, out, sizeof out), -1);
    CHECK(out[0] == 'x');
    /* A line that fits max unmarked (max itself) does not once marked. */
    CHECK_EQ_INT(app_chat_mark(1, line, 20, 20, out, sizeof out), -1);
    /* cap binds as max does. */
    CHECK_EQ_INT(app_chat_mark(1, line, 7, 100, out, 10), 10);
    CHECK_EQ_INT(app_chat_mark(1, line, 8, 100, out, 10), -1);
    /* Not even the mark fits. */
    CHECK_EQ_INT(app_chat_mark(1, "", 0, 2, out, sizeof out), -1);
    CHECK_EQ_INT(app_chat_mark(UINT64_MAX, "", 0, APP_CHAT_MARK_MAX, out, sizeof out),
                 APP_CHAT_MARK_MAX);
    CHECK_EQ_INT(app_chat_mark(UINT64_MAX, "", 0, APP_CHAT_MARK_MAX - 1, out, sizeof out), -1);
    /* A length near SIZE_MAX does not wrap into fitting. */
    CHECK_EQ_INT(app_chat_mark(1, line, SIZE_MAX - 1, SIZE_MAX, out, sizeof out), -1);
    CHECK_EQ_INT(app_chat_mark(1, line, SIZE_MAX, SIZE_MAX, out, SIZE_MAX), -1);
}

/* JSON has no such hole: the relay's "from" makes three members, and an
 * error packet is exactly two (gmud_json_error_packet). */
static void test_chat_tag_not_error(void)
{
    json_error_t jerr;
    json_t *forged =
        json_loads("{\"error\": \"the server is full\", \"code\": \"server_full\"}", 0, &jerr);
    CHECK(forged != NULL && gmud_json_error_packet(forged, NULL));
    json_t *out = app_chat_tag(forged, 9);
    CHECK(out != NULL && json_object_size(out) == 3);
    CHECK(out != NULL && !gmud_json_error_packet(out, NULL));
    json_decref(out);
    /* With a "from" of its own, replaced: still three. */
    json_t *with_from = json_loads(
        "{\"error\": \"x\", \"code\": \"server_full\", \"from\": 0}", 0, &jerr);
    out = app_chat_tag(with_from, 9);
    CHECK(out != NULL && json_object_size(out) == 3 && !gmud_json_error_packet(out, NULL));
    json_decref(out);
    json_decref(with_from);
    json_decref(forged);
}

static void test_error_text(void)
{
    char out[64];
    memset(out, 'x', sizeof out);
    const char *want = "error unencodable: not relayed";
    ptrdiff_t n = app_error_text("unencodable", "not relayed", sizeof out, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    CHECK(n < 0 || (memcmp(out, want, (size_t)n) == 0 && out[n] == 'x'));
    /* The sentence is cut to max; the head must fit whole. */
    n = app_error_text("unencodable", "not relayed", 24, out, sizeof out);
    CHECK_EQ_INT(n, 24);
    CHECK(n < 0 || memcmp(out, "error unencodable: not r", 24) == 0);
    CHECK_EQ_INT(app_error_text("unencodable", "not relayed", 19, out, sizeof out), 19);
    CHECK_EQ_INT(app_error_text("unencodable", "not relayed", 18, out, sizeof out), -1);
    CHECK_EQ_INT(app_error_text("unencodable", "not relayed", 100, out, 20), 20);
    CHECK_EQ_INT(app_error_text("x", "", sizeof out, out, sizeof out), 9);
    /* No byte of the sentence can end the line or the packet early. */
    n = app_error_text("x", "a\nb\r\xff\"", sizeof out, out, sizeof out);
    CHECK_EQ_INT(n, 15);
    CHECK(n < 0 || memcmp(out, "error x: a?b??\"", 15) == 0);
}

/* app_error_json() parses as the error packet it says, with this sentence. */
static void check_error_json(const char *sentence, size_t max, const char *want)
{
    char out[128];
    memset(out, 'x', sizeof out);
    ptrdiff_t n = app_error_json("unencodable", sentence, max, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    if (n < 0)
        return;
    CHECK(memcmp(out, want, (size_t)n) == 0 && out[n] == 'x');
    CHECK((size_t)n <= max);
    json_error_t jerr;
    json_t *v = json_loadb(out, (size_t)n, 0, &jerr);
    gmud_error e;
    CHECK(v != NULL && gmud_json_error_packet(v, &e));
    CHECK(v != NULL && e.code == GMUD_ERR_UNENCODABLE);
    json_decref(v);
}

static void test_error_json(void)
{
    check_error_json("not relayed", 128, "{\"error\":\"not relayed\",\"code\":\"unencodable\"}");
    /* Quotes and backslashes escaped; other odd bytes made '?'. */
    check_error_json("with \"from\" \\ \n\xff", 128,
                     "{\"error\":\"with \\\"from\\\" \\\\ ??\",\"code\":\"unencodable\"}");
    /* Cut to max, never inside an escape. */
    const char *bare = "{\"error\":\"\",\"code\":\"unencodable\"}";
    size_t b = strlen(bare);
    check_error_json("not relayed", b, bare);
    check_error_json("not relayed", b + 3, "{\"error\":\"not\",\"code\":\"unencodable\"}");
    check_error_json("\"q", b + 1, bare); /* \" needs 2 */
    check_error_json("\"q", b + 2, "{\"error\":\"\\\"\",\"code\":\"unencodable\"}");
    char out[64];
    CHECK_EQ_INT(app_error_json("unencodable", "x", b - 1, out, sizeof out), -1);
    CHECK_EQ_INT(app_error_json("unencodable", "x", sizeof out, out, b), b);
}

static void test_kinds(void)
{
    static const char *const names[] = {"echo", "clock", "chat"};
    static const app_kind kinds[] = {APP_ECHO, APP_CLOCK, APP_CHAT};
    for (size_t i = 0; i < 3; i++) {
        app_kind k = (app_kind)-1;
        CHECK_EQ_INT(app_kind_parse(names[i], &k), 0);
        CHECK_EQ_INT(k, kinds[i]);
        CHECK(strcmp(app_kind_name(kinds[i]), names[i]) == 0);
    }
    app_kind k = APP_CHAT;
    CHECK_EQ_INT(app_kind_parse("Echo", &k), -1);
    CHECK_EQ_INT(app_kind_parse("", &k), -1);
    CHECK_EQ_INT(app_kind_parse("chatter", &k), -1);
    CHECK_EQ_INT(k, APP_CHAT); /* untouched on failure */
    CHECK(strcmp(app_kind_name((app_kind)99), "?") == 0);
}

int main(void)
{
    test_ctime_utc();
    test_ctime_local();
    test_clock_text();
    test_clock_json();
    test_chat_tag();
    test_chat_mark();
    test_chat_tag_not_error();
    test_error_text();
    test_error_json();
    test_kinds();
    return check_report("test_app");
}
