/* programs/app.c: the server applications' pure logic. See app.h. */
#include "app.h"

#include <stdio.h>
#include <string.h>

static const char *const app_names[] = {"echo", "clock", "chat"};

const char *app_kind_name(app_kind kind)
{
    return (unsigned)kind < sizeof app_names / sizeof app_names[0] ? app_names[kind] : "?";
}

int app_kind_parse(const char *name, app_kind *out)
{
    for (size_t i = 0; i < sizeof app_names / sizeof app_names[0]; i++) {
        if (strcmp(name, app_names[i]) == 0) {
            *out = (app_kind)i;
            return 0;
        }
    }
    return -1;
}

/* snprintf's result as "length written, or -1 if it did not fit". */
static int fitted(int n, size_t cap)
{
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int app_ctime(time_t t, char *out, size_t cap)
{
    /* Names by hand rather than strftime("%a %b"): Python's ctime is English
     * in every locale, and so must ours be. */
    static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11)
        return -1;
    /* CPython's _asctime: "%s %s%3d %.2d:%.2d:%.2d %d". */
    return fitted(snprintf(out, cap, "%s %s%3d %.2d:%.2d:%.2d %lld", wday[tm.tm_wday],
                           mon[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                           1900LL + tm.tm_year),
                  cap);
}

int app_clock_text(unsigned long long n, time_t t, char *out, size_t cap)
{
    char when[64];
    if (app_ctime(t, when, sizeof when) < 0)
        return -1;
    return fitted(snprintf(out, cap, "%llu:%s", n, when), cap);
}

int app_clock_json(unsigned long long n, time_t t, char *out, size_t cap)
{
    char when[64];
    if (app_ctime(t, when, sizeof when) < 0)
        return -1;
    /* ctime holds only letters, digits, spaces and colons: nothing to escape.
     * The separators are json.dumps' defaults, ", " and ": ". */
    return fitted(snprintf(out, cap,
                           "{\"time\": \"%s\", \"message\": \"%llu:%s\", \"value\": %llu}", when,
                           n, when, n),
                  cap);
}

json_t *app_chat_tag(const json_t *msg, uint64_t from)
{
    /* json_copy takes a non-const pointer but does not modify its argument. */
    json_t *out = json_copy((json_t *)msg);
    if (out == NULL)
        return NULL;
    if (json_object_set_new(out, "from", json_integer((json_int_t)from)) != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

size_t app_chat_mark_len(uint64_t from)
{
    size_t digits = 1;
    for (; from >= 10; from /= 10)
        digits++;
    return digits + 2;
}

ptrdiff_t app_chat_mark(uint64_t from, const void *line, size_t len, size_t max, char *out,
                        size_t cap)
{
    size_t mark = app_chat_mark_len(from);
    size_t room = max < cap ? max : cap;
    if (mark > room || len > room - mark)
        return -1;
    /* The digits from the right, then ": ". */
    char *p = out + mark - 2;
    do {
        *--p = (char)('0' + from % 10);
        from /= 10;
    } while (from != 0);
    out[mark - 2] = ':';
    out[mark - 1] = ' ';
    if (len > 0)
        memcpy(out + mark, line, len);
    return (ptrdiff_t)(mark + len);
}

/* Appends text to out[*at..room), printable, each '"' and '\\' escaped if
 * json, as much as fits whole. */
static void put_clean(char *out, size_t *at, size_t room, const char *text, int json)
{
    for (; *text != '\0'; text++) {
        char c = *text >= 0x20 && *text < 0x7f ? *text : '?';
        int esc = json && (c == '"' || c == '\\');
        if (*at + 1 + (size_t)esc > room)
            return;
        if (esc)
            out[(*at)++] = '\\';
        out[(*at)++] = c;
    }
}

static void put(char *out, size_t *at, const char *text)
{
    size_t n = strlen(text);
    memcpy(out + *at, text, n);
    *at += n;
}

ptrdiff_t app_error_text(const char *code, const char *sentence, size_t max, char *out,
                         size_t cap)
{
    size_t room = max < cap ? max : cap, at = 0;
    if (strlen("error ") + strlen(code) + strlen(": ") > room)
        return -1;
    put(out, &at, "error ");
    put(out, &at, code);
    put(out, &at, ": ");
    put_clean(out, &at, room, sentence, 0);
    return (ptrdiff_t)at;
}

ptrdiff_t app_error_json(const char *code, const char *sentence, size_t max, char *out,
                         size_t cap)
{
    static const char head[] = "{\"error\":\"", mid[] = "\",\"code\":\"", tail[] = "\"}";
    size_t room = max < cap ? max : cap, at = 0;
    size_t after = strlen(mid) + strlen(code) + strlen(tail); /* what follows the sentence */
    if (strlen(head) + after > room)
        return -1;
    put(out, &at, head);
    put_clean(out, &at, room - after, sentence, 1);
    put(out, &at, mid);
    put(out, &at, code);
    put(out, &at, tail);
    return (ptrdiff_t)at;
}
