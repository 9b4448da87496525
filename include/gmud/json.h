/* gmud/json.h: untrusted JSON payloads, checked and bounded.
 *
 * gmud parses JSON with jansson (docs/DESIGN.md says why). Before jansson
 * sees a payload, a single cheap pass enforces gmud's bounds (nesting depth,
 * keys, string length), so a hostile payload costs bounded time and memory.
 * jansson then rejects invalid UTF-8, bad syntax, duplicate keys, "\u0000"
 * in strings and numbers out of range. Every error names the byte offset.
 *
 * Threads: all functions are reentrant; a parsed json_t belongs to the
 * caller's thread (jansson's reference counts are not atomic by default).
 */
#ifndef GMUD_JSON_H
#define GMUD_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gmud/error.h"
#include "gmud/limits.h"
#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gmud_json_limits {
    size_t max_depth;   /* levels of arrays/objects; 1..JSON_PARSER_MAX_DEPTH-1 (2047) */
    size_t max_keys;    /* object keys in the whole document, >= 1 */
    size_t max_string;  /* bytes between a string's quotes, escapes as sent, >= 1 */
    int require_object; /* nonzero: the top-level value must be an object */
} gmud_json_limits;

/* depth 32, 1024 keys, 65535-byte strings, object required. */
GMUD_API void gmud_json_default_config(gmud_json_limits *lim);

/* Parses p[0..n) into a new jansson value (*out, owned by the caller:
 * json_decref() it). Returns 0, or a negative code with err->offset at the
 * offending byte: GMUD_ERR_BAD_JSON, GMUD_ERR_BAD_UTF8, GMUD_ERR_NOT_OBJECT,
 * GMUD_ERR_TOO_DEEP, GMUD_ERR_TOO_MANY_KEYS, GMUD_ERR_STRING_TOO_LONG,
 * GMUD_ERR_DUPLICATE_KEY, GMUD_ERR_NOMEM, GMUD_ERR_INVALID (bad limits). */
GMUD_API int gmud_json_parse(const uint8_t *p, size_t n, const gmud_json_limits *lim, json_t **out,
                    gmud_error *err);

/* Checks only the bounds (depth, keys, string length) without parsing: the
 * first pass of gmud_json_parse, exposed for tests and callers that parse
 * elsewhere. 0 or one of the bound errors, or GMUD_ERR_BAD_JSON for a raw
 * NUL byte outside a string (jansson 2.14 would silently skip one after a
 * number or literal). */
GMUD_API int gmud_json_check_bounds(const uint8_t *p, size_t n, const gmud_json_limits *lim,
                           gmud_error *err);

/* Serialises v (any JSON value) compactly (no spaces, keys in insertion
 * order) into out[0..cap).
 * Returns bytes written (no terminating NUL), or GMUD_ERR_UNENCODABLE if it
 * does not fit or v cannot be encoded. */
GMUD_API ptrdiff_t gmud_json_dump(const json_t *v, uint8_t *out, size_t cap, gmud_error *err);

/* Is msg (borrowed; may be NULL) an error packet as docs/PROTOCOL.md
 * section 5 defines it: an object with exactly two members, the strings
 * "error" and "code"? Returns 1 and fills err (if not NULL) with the code
 * the name maps to, or 0 for a name this gmud does not know (a newer peer),
 * and the message "<code>: <sentence>" (cut to fit); returns 0 for anything
 * else. Error packets travel in the same stream as messages: an
 * application that sends objects of this very shape makes them ambiguous. */
GMUD_API int gmud_json_error_packet(const json_t *msg, gmud_error *err);

#ifdef __cplusplus
}
#endif

#endif
