/* Untrusted JSON: a bounds pass, then jansson. See include/gmud/json.h. */
#include "gmud/json.h"

void gmud_json_default_config(gmud_json_limits *lim)
{
    lim->max_depth = GMUD_JSON_MAX_DEPTH_DEFAULT;
    lim->max_keys = GMUD_JSON_MAX_KEYS_DEFAULT;
    lim->max_string = GMUD_JSON_MAX_STRING_DEFAULT;
    lim->require_object = 1;
}

/* jansson recurses once per level and stops itself at JSON_PARSER_MAX_DEPTH;
 * our bound must stay below that so ours is the one that fires. */
static int check_limits(const gmud_json_limits *lim, gmud_error *err)
{
    if (lim->max_depth == 0 || lim->max_depth >= JSON_PARSER_MAX_DEPTH || lim->max_keys == 0 ||
        lim->max_string == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "JSON limits must be positive (depth below %d)",
                              JSON_PARSER_MAX_DEPTH);
    return GMUD_OK;
}

/* Skips a string whose opening quote is at p[i]; returns the offset just past
 * its closing quote (or n if it never closes: jansson reports that). */
static size_t skip_string(const uint8_t *p, size_t n, size_t i, const gmud_json_limits *lim,
                          gmud_error *err, int *rc)
{
    size_t start = i++;
    while (i < n && p[i] != '"')
        i += p[i] == '\\' ? 2 : 1;
    size_t body = (i < n ? i : n) - start - 1;
    if (body > lim->max_string)
        *rc = gmud_error_set(err, GMUD_ERR_STRING_TOO_LONG, start,
                             "JSON string at byte %zu is %zu bytes long, over the maximum of %zu",
                             start, body, lim->max_string);
    return i < n ? i + 1 : n;
}

int gmud_json_check_bounds(const uint8_t *p, size_t n, const gmud_json_limits *lim,
                           gmud_error *err)
{
    int rc = check_limits(lim, err);
    size_t depth = 0, keys = 0;
    for (size_t i = 0; i < n && rc == GMUD_OK;) {
        switch (p[i]) {
        case '"':
            i = skip_string(p, n, i, lim, err, &rc);
            continue;
        case '{':
        case '[':
            if (++depth > lim->max_depth)
                rc = gmud_error_set(err, GMUD_ERR_TOO_DEEP, i,
                                    "JSON nested deeper than %zu levels at byte %zu",
                                    lim->max_depth, i);
            break;
        case '}':
        case ']':
            depth -= depth > 0;
            break;
        case '\0':
            /* No JSON text holds a raw NUL, but jansson 2.14 drops one that
             * directly follows a number or literal ({"a":1<NUL>} parses), so
             * refuse it here. Inside strings jansson refuses it itself. */
            rc = gmud_error_set(err, GMUD_ERR_BAD_JSON, i,
                                "%s at byte %zu: a NUL byte outside a string",
                                gmud_strerror(GMUD_ERR_BAD_JSON), i);
            break;
        case ':': /* one per key in any JSON that parses */
            if (++keys > lim->max_keys)
                rc = gmud_error_set(err, GMUD_ERR_TOO_MANY_KEYS, i,
                                    "JSON has more than %zu object keys (at byte %zu)",
                                    lim->max_keys, i);
            break;
        default:
            break;
        }
        i++;
    }
    return rc;
}

static int map_jansson_error(const json_error_t *je)
{
    switch (json_error_code(je)) {
    case json_error_invalid_utf8:
        return GMUD_ERR_BAD_UTF8;
    case json_error_duplicate_key:
        return GMUD_ERR_DUPLICATE_KEY;
    case json_error_out_of_memory:
        return GMUD_ERR_NOMEM;
    case json_error_stack_overflow:
        return GMUD_ERR_TOO_DEEP;
    default:
        return GMUD_ERR_BAD_JSON;
    }
}

int gmud_json_parse(const uint8_t *p, size_t n, const gmud_json_limits *lim, json_t **out,
                    gmud_error *err)
{
    *out = NULL;
    int rc = gmud_json_check_bounds(p, n, lim, err);
    if (rc != GMUD_OK)
        return rc;
    json_error_t je;
    json_t *v = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (v == NULL) {
        size_t at = je.position > 0 ? (size_t)je.position : 0;
        rc = map_jansson_error(&je);
        /* jansson's position is the count of bytes it read, one past the
         * offending byte, except for bad UTF-8 where it is that byte. */
        if (at > 0 && rc != GMUD_ERR_BAD_UTF8)
            at--;
        return gmud_error_set(err, rc, at, "%s at byte %zu: %s", gmud_strerror(rc), at, je.text);
    }
    if (lim->require_object && !json_is_object(v)) {
        json_decref(v);
        return gmud_error_set(err, GMUD_ERR_NOT_OBJECT, 0,
                              "JSON payload at byte 0 is not an object");
    }
    *out = v;
    return GMUD_OK;
}

ptrdiff_t gmud_json_dump(const json_t *v, uint8_t *out, size_t cap, gmud_error *err)
{
    size_t need = json_dumpb(v, (char *)out, cap, JSON_COMPACT | JSON_ENCODE_ANY);
    if (need == 0)
        return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0, "value cannot be serialised as JSON");
    if (need > cap)
        return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0,
                              "JSON text needs %zu bytes, %zu available", need, cap);
    return (ptrdiff_t)need;
}

int gmud_json_error_packet(const json_t *msg, gmud_error *err)
{
    if (json_object_size(msg) != 2)
        return 0;
    const char *code = json_string_value(json_object_get(msg, "code"));
    const char *text = json_string_value(json_object_get(msg, "error"));
    if (code == NULL || text == NULL)
        return 0;
    if (err != NULL)
        gmud_error_set(err, gmud_err_from_name(code), 0, "%.40s: %s", code, text);
    return 1;
}
