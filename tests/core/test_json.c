/* Untrusted JSON payloads: accepted, refused with the right code and offset. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gmud/json.h"

static int parse(const char *text, size_t n, gmud_error *err)
{
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    json_t *v = (json_t *)1;
    int rc = gmud_json_parse((const uint8_t *)text, n, &lim, &v, err);
    CHECK(rc == 0 ? v != NULL : v == NULL);
    json_decref(v);
    return rc;
}

#define PARSE(lit, err) parse((lit), sizeof(lit) - 1, (err))

static void test_lecture_object(void)
{
    const char *text = "{\"time\": \"Sat Mar 30 11:40:50 2019\", \"message\": "
                       "\"2:Sat Mar 30 11:40:50 2019\", \"value\": 2}";
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    json_t *v;
    gmud_error err;
    CHECK_EQ_INT(gmud_json_parse((const uint8_t *)text, strlen(text), &lim, &v, &err), 0);
    CHECK(strcmp(json_string_value(json_object_get(v, "message")), "2:Sat Mar 30 11:40:50 2019") == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "value")), 2);
    uint8_t out[256];
    ptrdiff_t n = gmud_json_dump(v, out, sizeof out, &err);
    const char *compact = "{\"time\":\"Sat Mar 30 11:40:50 2019\",\"message\":"
                          "\"2:Sat Mar 30 11:40:50 2019\",\"value\":2}";
    CHECK_MEM(out, n, compact, strlen(compact));
    CHECK_EQ_INT(gmud_json_dump(v, out, 10, &err), GMUD_ERR_UNENCODABLE);
    json_decref(v);
    json_t *five = json_integer(5); /* any value, as parse gives with require_object = 0 */
    CHECK_EQ_INT(gmud_json_dump(five, out, sizeof out, &err), 1);
    CHECK(out[0] == '5');
    json_decref(five);
}

static void test_syntax(void)
{
    gmud_error err;
    CHECK_EQ_INT(PARSE("{\"a\": 1,}", &err), GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(err.offset, 8);
    CHECK_CONTAINS(err.message, "at byte 8");
    CHECK_EQ_INT(PARSE("{} x", &err), GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(err.offset, 3);
    CHECK_EQ_INT(PARSE("", &err), GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(PARSE("{\"a\": \"\\u0000\"}", &err), GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(PARSE("{\"a\": 1e999}", &err), GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(PARSE("{\"a\": 99999999999999999999}", &err), GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(PARSE("{\"a\": 1}\0", &err), GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(PARSE("{\"a\": \"\\ud800\"}", &err), GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(PARSE("{'a': 1}", &err), GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(PARSE("{\"a\": NaN}", &err), GMUD_ERR_BAD_JSON);
}

static void test_utf8(void)
{
    gmud_error err;
    CHECK_EQ_INT(PARSE("{\"a\": \"\xff\xfe\"}", &err), GMUD_ERR_BAD_UTF8);
    CHECK_EQ_INT(err.offset, 7);
    CHECK_EQ_INT(PARSE("{\"a\": \"\xc0\xaf\"}", &err), GMUD_ERR_BAD_UTF8); /* overlong '/' */
    CHECK_EQ_INT(PARSE("{\"a\": \"\xed\xa0\x80\"}", &err), GMUD_ERR_BAD_UTF8); /* surrogate */
    CHECK_EQ_INT(PARSE("{\"\xc3\xa9t\xc3\xa9\": \"\xe2\x82\xac\"}", &err), 0);
}

static void test_not_object(void)
{
    gmud_error err;
    CHECK_EQ_INT(PARSE("[1, 2]", &err), GMUD_ERR_NOT_OBJECT);
    CHECK_EQ_INT(PARSE("\"x\"", &err), GMUD_ERR_NOT_OBJECT);
    CHECK_EQ_INT(PARSE("5", &err), GMUD_ERR_NOT_OBJECT);
    CHECK_CONTAINS(err.message, "not an object");
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    lim.require_object = 0;
    json_t *v;
    CHECK_EQ_INT(gmud_json_parse((const uint8_t *)"[1]", 3, &lim, &v, &err), 0);
    json_decref(v);
}

static char *nested(size_t depth)
{
    char *s = malloc(6 * depth + 16);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++)
        s[n++] = i % 2 ? '[' : '{', n += i % 2 ? 0 : (size_t)sprintf(s + n, "\"k\":");
    for (size_t i = depth; i-- > 0;)
        s[n++] = i % 2 ? ']' : '}';
    s[n] = '\0';
    return s;
}

static void test_depth(void)
{
    gmud_error err;
    char *ok = nested(32), *deep = nested(33), *huge = nested(100000);
    CHECK_EQ_INT(parse(ok, strlen(ok), &err), 0);
    CHECK_EQ_INT(parse(deep, strlen(deep), &err), GMUD_ERR_TOO_DEEP);
    CHECK_CONTAINS(err.message, "deeper than 32 levels");
    CHECK_EQ_INT(parse(huge, strlen(huge), &err), GMUD_ERR_TOO_DEEP);
    free(ok);
    free(deep);
    free(huge);
    /* Brackets inside strings are not nesting. */
    CHECK_EQ_INT(PARSE("{\"a\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}", &err), 0);
}

static void test_keys_and_strings(void)
{
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    lim.max_keys = 3;
    lim.max_string = 8;
    gmud_error err;
    json_t *v;
    const char *three = "{\"a\": 1, \"b\": {\"c\": \"x:y:z\"}}";
    CHECK_EQ_INT(gmud_json_parse((const uint8_t *)three, strlen(three), &lim, &v, &err), 0);
    json_decref(v);
    const char *four = "{\"a\": 1, \"b\": {\"c\": 2, \"d\": 3}}";
    CHECK_EQ_INT(gmud_json_parse((const uint8_t *)four, strlen(four), &lim, &v, &err),
                 GMUD_ERR_TOO_MANY_KEYS);
    CHECK_EQ_INT(err.offset, 26);
    const char *longs = "{\"a\": \"123456789\"}";
    CHECK_EQ_INT(gmud_json_parse((const uint8_t *)longs, strlen(longs), &lim, &v, &err),
                 GMUD_ERR_STRING_TOO_LONG);
    CHECK_EQ_INT(err.offset, 6);
    const char *escaped = "{\"a\": \"\\\"\\\"\\\"\\\"\"}"; /* 8 bytes as sent */
    CHECK_EQ_INT(gmud_json_parse((const uint8_t *)escaped, strlen(escaped), &lim, &v, &err), 0);
    json_decref(v);
    lim.max_depth = 0;
    CHECK_EQ_INT(gmud_json_parse((const uint8_t *)"{}", 2, &lim, &v, &err), GMUD_ERR_INVALID);
}

static void test_duplicates(void)
{
    gmud_error err;
    CHECK_EQ_INT(PARSE("{\"a\": 1, \"a\": 2}", &err), GMUD_ERR_DUPLICATE_KEY);
    CHECK_CONTAINS(err.message, "duplicate");
    CHECK_EQ_INT(PARSE("{\"a\": {\"a\": 1}}", &err), 0);
}

/* Error packets (PROTOCOL.md section 5) told apart from messages by shape. */
static void test_error_packet(void)
{
    static const struct {
        const char *text;
        int is_error;
        int code;
    } cases[] = {
        {"{\"error\": \"slow down\", \"code\": \"rate_limited\"}", 1, GMUD_ERR_RATE_LIMITED},
        {"{\"code\": \"bad_json\", \"error\": \"at byte 3\"}", 1, GMUD_ERR_BAD_JSON},
        {"{\"error\": \"new\", \"code\": \"from_the_future\"}", 1, GMUD_OK},
        /* A chat relay adds "from": an application message, not an error. */
        {"{\"error\": \"x\", \"code\": \"bad_json\", \"from\": 2}", 0, 0},
        {"{\"error\": \"x\"}", 0, 0},
        {"{\"error\": 1, \"code\": \"bad_json\"}", 0, 0},
        {"{\"error\": \"x\", \"code\": null}", 0, 0},
        {"{\"error\": \"x\", \"kind\": \"bad_json\"}", 0, 0},
        {"[\"error\", \"code\"]", 0, 0},
        {"\"error\"", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_loads(cases[i].text, JSON_DECODE_ANY, NULL);
        CHECK(v != NULL);
        gmud_error err;
        memset(&err, 0, sizeof err);
        err.code = 99;
        CHECK_EQ_INT(gmud_json_error_packet(v, &err), cases[i].is_error);
        if (cases[i].is_error)
            CHECK_EQ_INT(err.code, cases[i].code);
        else
            CHECK_EQ_INT(err.code, 99); /* untouched */
        json_decref(v);
    }
    json_t *v = json_loads("{\"error\": \"slow down\", \"code\": \"rate_limited\"}", 0, NULL);
    gmud_error err;
    CHECK_EQ_INT(gmud_json_error_packet(v, &err), 1);
    CHECK(strcmp(err.message, "rate_limited: slow down") == 0);
    CHECK_EQ_INT(gmud_json_error_packet(v, NULL), 1);
    json_decref(v);
    CHECK_EQ_INT(gmud_json_error_packet(NULL, NULL), 0);
}

/* The text twin: "error <name>: <sentence>", a known name or not; anything
 * else (no colon, an empty or over-long name, another start) is a message. */
static void test_text_error_packet(void)
{
    static const struct {
        const char *text;
        int is, code;
        const char *msg;
    } cases[] = {
        {"error server_full: the server is full", 1, GMUD_ERR_SERVER_FULL,
         "server_full: the server is full"},
        {"error no_such: later gmud", 1, 0, "no_such: later gmud"},
        {"error x:", 1, 0, "x:"},
        {"error : empty name", 0, 0, NULL},
        {"error no colon at all", 0, 0, NULL},
        {"error ", 0, 0, NULL},
        {"Error server_full: case", 0, 0, NULL},
        {"2: error server_full: relayed", 0, 0, NULL},
        {"error aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: too long a name", 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_error e = {0};
        int is = gmud_text_error_packet((const uint8_t *)cases[i].text, strlen(cases[i].text), &e);
        CHECK_EQ_INT(is, cases[i].is);
        if (is) {
            CHECK_EQ_INT(e.code, cases[i].code);
            CHECK(strcmp(e.message, cases[i].msg) == 0);
        }
    }
    CHECK_EQ_INT(gmud_text_error_packet((const uint8_t *)"error x: y", 10, NULL), 1);
}

int main(void)
{
    test_lecture_object();
    test_syntax();
    test_utf8();
    test_not_object();
    test_depth();
    test_keys_and_strings();
    test_duplicates();
    test_error_packet();
    test_text_error_packet();
    return check_report("test_json");
}
