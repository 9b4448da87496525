/* gmud/error.h: one error enum for the whole library.
 *
 * 0 is success and every error is negative. gmud_strerror() describes a code
 * in a sentence; gmud_err_name() gives its short name, the one logs, counters
 * and error packets carry. Where an error needs detail (the bytes seen, an
 * offset), functions also fill a caller's gmud_error.
 *
 * Everything here is pure and may be called from any thread.
 */
#ifndef GMUD_ERROR_H
#define GMUD_ERROR_H

#include <stddef.h>
#include <stdint.h>
#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X-macro: code, short name, description. Keep the names stable: they are
 * part of the wire protocol (the "code" field of error packets). */
#define GMUD_ERRORS(X)                                                        \
    X(GMUD_ERR_INVALID, -1, "invalid", "invalid argument or configuration")  \
    X(GMUD_ERR_NOMEM, -2, "no_memory", "out of memory")                      \
    X(GMUD_ERR_TOO_LONG, -3, "too_long", "message longer than the maximum")  \
    X(GMUD_ERR_BAD_LABEL, -4, "bad_label", "packet label is not the expected one") \
    X(GMUD_ERR_TRUNCATED, -5, "truncated", "stream ended inside a frame")    \
    X(GMUD_ERR_OUT_OF_SYNC, -6, "out_of_sync",                               \
      "stream out of sync after an earlier framing error")                   \
    X(GMUD_ERR_UNENCODABLE, -7, "unencodable",                               \
      "the framing cannot carry this message")                               \
    X(GMUD_ERR_BAD_JSON, -8, "bad_json", "payload is not valid JSON")        \
    X(GMUD_ERR_BAD_UTF8, -9, "bad_utf8", "payload is not valid UTF-8")       \
    X(GMUD_ERR_NOT_OBJECT, -10, "not_object", "JSON payload is not an object") \
    X(GMUD_ERR_TOO_DEEP, -11, "too_deep", "JSON nested deeper than the maximum") \
    X(GMUD_ERR_TOO_MANY_KEYS, -12, "too_many_keys",                          \
      "JSON object keys exceed the maximum")                                 \
    X(GMUD_ERR_STRING_TOO_LONG, -13, "string_too_long",                      \
      "JSON string longer than the maximum")                                 \
    X(GMUD_ERR_DUPLICATE_KEY, -14, "duplicate_key",                          \
      "JSON object has a duplicate key")                                     \
    X(GMUD_ERR_IO, -15, "io", "a socket or system call failed")              \
    X(GMUD_ERR_TIMEOUT, -16, "timeout", "timed out")                         \
    X(GMUD_ERR_CLOSED, -17, "closed", "the connection is closed or closing") \
    X(GMUD_ERR_SLOW_CONSUMER, -18, "slow_consumer",                          \
      "the peer does not read: its queue is over the bound")                 \
    X(GMUD_ERR_SERVER_FULL, -19, "server_full",                              \
      "the server is at its connection limit")                               \
    X(GMUD_ERR_BAD_SESSION, -20, "bad_session",                              \
      "packet carries another session's id")                                 \
    X(GMUD_ERR_REPLAYED, -21, "replayed",                                    \
      "sequence number repeated or old: a replayed packet")                  \
    X(GMUD_ERR_SKIPPED, -22, "skipped",                                      \
      "sequence number ahead of the next expected: skipped or injected")     \
    X(GMUD_ERR_SEQ_EXHAUSTED, -23, "seq_exhausted",                          \
      "sequence numbers exhausted: the counter would wrap")                  \
    X(GMUD_ERR_NOT_WELCOMED, -24, "not_welcomed",                            \
      "packet before the session's welcome")                                 \
    X(GMUD_ERR_MISSING_FIELD, -25, "missing_field",                          \
      "a required session field is missing")                                 \
    X(GMUD_ERR_BAD_FIELD, -26, "bad_field",                                  \
      "a session field has the wrong type or is out of range")               \
    X(GMUD_ERR_RATE_LIMITED, -27, "rate_limited",                            \
      "over the connection's rate limit")                                    \
    X(GMUD_ERR_ADDR_LIMITED, -28, "addr_limited",                            \
      "too many connections, or new connections, from one address")          \
    X(GMUD_ERR_RATE_DROPPED, -29, "rate_dropped",                            \
      "over the connection's rate limit: messages were dropped")             \
    X(GMUD_ERR_TLS, -30, "tls",                                              \
      "TLS failed: a handshake, a certificate or a record")                  \
    X(GMUD_ERR_TLS_REQUIRED, -31, "tls_required",                            \
      "this port speaks TLS, and the peer sent plaintext")                   \
    X(GMUD_ERR_PROXY, -32, "proxy",                                          \
      "a PROXY protocol header was refused: missing, malformed, late, or "   \
      "from an untrusted sender")

enum gmud_err {
    GMUD_OK = 0,
#define GMUD_ERR_ENUM_(code, value, name, text) code = value,
    GMUD_ERRORS(GMUD_ERR_ENUM_)
#undef GMUD_ERR_ENUM_
    GMUD_ERR_LAST_ = -33
};

/* Detail for one error: the code, a byte offset where one applies (else 0),
 * and a complete human-readable sentence. */
typedef struct gmud_error {
    int code;
    size_t offset;
    char message[160];
} gmud_error;

/* A sentence describing code; never NULL (unknown codes get a generic one). */
GMUD_API const char *gmud_strerror(int code);

/* The short stable name of code ("too_long", ...); "ok" for 0. */
GMUD_API const char *gmud_err_name(int code);

/* The code whose short name is name (an error packet's "code"), or 0 if no
 * code has that name. */
GMUD_API int gmud_err_from_name(const char *name);

/* Is p[0..n) an error packet of the text payload type (docs/PROTOCOL.md
 * section 5), "error <name>: <sentence>", with a name of 1 to 39 bytes?
 * Returns 1 and fills err (if not NULL) with the code the name maps to (0
 * for a name this gmud does not know) and the message "<name>: <sentence>"
 * (cut to fit); else 0. The text twin of gmud_json_error_packet(). */
GMUD_API int gmud_text_error_packet(const uint8_t *p, size_t n, gmud_error *err);

/* Fills err (if not NULL) with code, offset and a printf-style message, and
 * returns code, so that `return gmud_error_set(err, ...)` reads naturally. */
GMUD_API int gmud_error_set(gmud_error *err, int code, size_t offset, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#ifdef __cplusplus
}
#endif

#endif
