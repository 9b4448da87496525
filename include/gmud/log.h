/* gmud/log.h: the library never prints by itself. Every event worth a log
 * line (connection opened or closed, every rejected input with its reason)
 * goes to a callback the application installs; programs print one line per
 * event on stderr.
 *
 * Threads: the callback runs on the loop thread that raised the event. */
#ifndef GMUD_LOG_H
#define GMUD_LOG_H

#include <stddef.h>

#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gmud_log_level {
    GMUD_LOG_ERROR = 0,
    GMUD_LOG_WARN = 1,
    GMUD_LOG_INFO = 2,
    GMUD_LOG_DEBUG = 3
} gmud_log_level;

/* A detail of an event, for structured logs: a number (text NULL) or a
 * text. The same facts are in the event's sentence, for people. */
typedef struct gmud_log_field {
    const char *key;           /* "session", "bytes_in", ...: stable names */
    const char *text;          /* NULL: the value is num */
    long long num;
} gmud_log_field;

/* One event. peer is "address:port" ("[v6]:port") or "-" when none; event is
 * a short stable word ("accept", "close", "reject", ...); reason a sentence
 * or "". fields: nfields details (NULL and 0 for most events). Those of
 * "close": id, reason, detail (if any), session (if any), duration_ms,
 * bytes_in, bytes_out, messages_in, messages_out; of "accept": id; of
 * "security": kind, id, session, and expected and got where the check
 * compared two numbers. All strings are valid only during the call. */
typedef struct gmud_log_event {
    gmud_log_level level;
    const char *peer;
    const char *event;
    const char *reason;
    const gmud_log_field *fields;
    size_t nfields;
} gmud_log_event;

typedef void (*gmud_log_fn)(void *user, const gmud_log_event *ev);

/* "error", "warn", "info", "debug". */
GMUD_API const char *gmud_log_level_name(gmud_log_level level);

/* Parses a level name; 0 or GMUD_ERR_INVALID (see gmud/error.h). */
GMUD_API int gmud_log_level_parse(const char *name, gmud_log_level *out);

#ifdef __cplusplus
}
#endif

#endif
