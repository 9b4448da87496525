/* gmud/log.h: the library never prints by itself. Every event worth a log
 * line (connection opened or closed, every rejected input with its reason)
 * goes to a callback the application installs; programs print one line per
 * event on stderr.
 *
 * Threads: the callback runs on the loop thread that raised the event. */
#ifndef GMUD_LOG_H
#define GMUD_LOG_H

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

/* One event. peer is "address:port" ("[v6]:port") or "-" when none; event is
 * a short stable word ("accept", "close", "reject", ...); reason a sentence
 * or "" . All strings are valid only during the call. */
typedef struct gmud_log_event {
    gmud_log_level level;
    const char *peer;
    const char *event;
    const char *reason;
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
