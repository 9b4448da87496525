/* bench_json's json-c half (see bench_json.h for why it is apart). */
#include <json-c/json.h>
#include <stdlib.h>

#include "bench_json.h"

/* One tokener, reset before each parse, as a server would keep one. */
static json_tokener *g_tok;

void bench_jsonc_init(void)
{
    g_tok = json_tokener_new();
    if (g_tok == NULL) {
        fprintf(stderr, "bench_json: json_tokener_new failed\n");
        exit(1);
    }
}

void bench_jsonc_fini(void)
{
    json_tokener_free(g_tok);
    g_tok = NULL;
}

const char *bench_jsonc_version(void)
{
    return json_c_version();
}

size_t bench_jsonc_parse(const char *p, size_t n)
{
    json_tokener_reset(g_tok);
    json_object *v = json_tokener_parse_ex(g_tok, p, (int)n);
    if (v == NULL)
        return 0;
    json_object *t, *m, *k;
    size_t sum = 0;
    if (json_object_object_get_ex(v, "time", &t) && json_object_is_type(t, json_type_string) &&
        json_object_object_get_ex(v, "message", &m) && json_object_is_type(m, json_type_string) &&
        json_object_object_get_ex(v, "value", &k) && json_object_is_type(k, json_type_int))
        sum = (size_t)json_object_get_string_len(t) + (size_t)json_object_get_string_len(m) +
              (size_t)json_object_get_int64(k);
    json_object_put(v);
    return sum;
}

/* json-c prints into a buffer inside the object; the copy out puts it on
 * the same footing as jansson and cJSON, which write into the caller's. */
size_t bench_jsonc_build(const char *time, const char *message, long value, char *out,
                         size_t cap)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return 0;
    size_t n = 0;
    if (json_object_object_add(o, "time", json_object_new_string(time)) == 0 &&
        json_object_object_add(o, "message", json_object_new_string(message)) == 0 &&
        json_object_object_add(o, "value", json_object_new_int64(value)) == 0) {
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
        if (s == NULL || n > cap)
            n = 0;
        else
            memcpy(out, s, n);
    }
    json_object_put(o);
    return n;
}

bench_verdict bench_jsonc_try(const char *p, size_t n, int strict)
{
    bench_verdict v = {VERDICT_REJECT, ""};
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return v;
    if (strict)
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, p, (int)n);
    enum json_tokener_error e = json_tokener_get_error(tok);
    if (o == NULL || e != json_tokener_success) {
        const char *d = json_tokener_error_desc(e);
        bench_show(v.note, 48, d, strlen(d));
    } else {
        /* Success with bytes left over is json-c's documented behaviour:
         * the caller must compare the parse end with the length itself. */
        size_t end = json_tokener_get_parse_end(tok), len = 0;
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
        v.code = end < n ? VERDICT_PREFIX : VERDICT_ACCEPT;
        bench_show(v.note, 48, s, len);
        if (end < n)
            bench_note_stop(&v, end, n);
    }
    json_object_put(o);
    json_tokener_free(tok);
    return v;
}
