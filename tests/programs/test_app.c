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
    test_kinds();
    return check_report("test_app");
}
