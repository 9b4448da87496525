/* bench_json's cJSON half (see bench_json.h). */
#include <cjson/cJSON.h>

#include "bench_json.h"

const char *bench_cjson_version(void)
{
    return cJSON_Version();
}

size_t bench_cjson_parse(const char *p, size_t n)
{
    cJSON *v = cJSON_ParseWithLength(p, n);
    if (v == NULL)
        return 0;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "time");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, "message");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(v, "value");
    size_t sum = 0;
    if (cJSON_IsString(t) && cJSON_IsString(m) && cJSON_IsNumber(k))
        sum = strlen(t->valuestring) + strlen(m->valuestring) + (size_t)k->valueint;
    cJSON_Delete(v);
    return sum;
}

/* cJSON_PrintPreallocated writes into the caller's buffer, as json_dumpb
 * does. cJSON keeps every number as a double; 2 prints as "2". */
size_t bench_cjson_build(const char *time, const char *message, long value, char *out,
                         size_t cap)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return 0;
    size_t n = 0;
    if (cJSON_AddStringToObject(o, "time", time) != NULL &&
        cJSON_AddStringToObject(o, "message", message) != NULL &&
        cJSON_AddNumberToObject(o, "value", (double)value) != NULL &&
        cJSON_PrintPreallocated(o, out, (int)cap, 0))
        n = strlen(out);
    cJSON_Delete(o);
    return n;
}

/* cJSON_ParseWithLength(p, n) is cJSON_ParseWithLengthOpts(p, n, NULL, 0);
 * asking for the parse end too changes nothing but says where it stopped. */
bench_verdict bench_cjson_try(const char *p, size_t n)
{
    bench_verdict v = {VERDICT_REJECT, ""};
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(p, n, &end, 0);
    if (o == NULL) {
        if (end != NULL)
            snprintf(v.note, sizeof v.note, "error at byte %zu", (size_t)(end - p));
        return v;
    }
    size_t stop = end ? (size_t)(end - p) : n;
    char *s = cJSON_PrintUnformatted(o);
    v.code = stop < n ? VERDICT_PREFIX : VERDICT_ACCEPT;
    bench_show(v.note, 48, s ? s : "(cannot print)", s ? strlen(s) : 14);
    if (stop < n)
        bench_note_stop(&v, stop, n);
    cJSON_free(s);
    cJSON_Delete(o);
    return v;
}
