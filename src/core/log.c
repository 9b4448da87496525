/* Log level names; the library never prints (see include/gmud/log.h). */
#include "gmud/log.h"

#include <string.h>

#include "gmud/error.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *gmud_log_level_name(gmud_log_level level)
{
    if (level < GMUD_LOG_ERROR || level > GMUD_LOG_DEBUG)
        return "unknown";
    return level_names[level];
}

int gmud_log_level_parse(const char *name, gmud_log_level *out)
{
    for (int l = GMUD_LOG_ERROR; l <= GMUD_LOG_DEBUG; l++) {
        if (strcmp(name, level_names[l]) == 0) {
            *out = (gmud_log_level)l;
            return GMUD_OK;
        }
    }
    /* "warning" is what people type as often as "warn". */
    if (strcmp(name, "warning") == 0) {
        *out = GMUD_LOG_WARN;
        return GMUD_OK;
    }
    return GMUD_ERR_INVALID;
}
