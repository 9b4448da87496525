#include "gmud/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *gmud_strerror(int code)
{
    switch (code) {
    case GMUD_OK:
        return "success";
#define GMUD_ERR_TEXT_(c, v, name, text) \
    case c:                              \
        return text;
        GMUD_ERRORS(GMUD_ERR_TEXT_)
#undef GMUD_ERR_TEXT_
    default:
        return "unknown error";
    }
}

const char *gmud_err_name(int code)
{
    switch (code) {
    case GMUD_OK:
        return "ok";
#define GMUD_ERR_NAME_(c, v, name, text) \
    case c:                              \
        return name;
        GMUD_ERRORS(GMUD_ERR_NAME_)
#undef GMUD_ERR_NAME_
    default:
        return "unknown";
    }
}

int gmud_err_from_name(const char *name)
{
#define GMUD_ERR_FROM_NAME_(c, v, n, text) \
    if (strcmp(name, n) == 0)              \
        return c;
    GMUD_ERRORS(GMUD_ERR_FROM_NAME_)
#undef GMUD_ERR_FROM_NAME_
    return GMUD_OK;
}

int gmud_text_error_packet(const uint8_t *p, size_t n, gmud_error *err)
{
    if (n <= 6 || memcmp(p, "error ", 6) != 0)
        return 0;
    const char *name = (const char *)p + 6, *end = (const char *)p + n;
    const char *colon = memchr(name, ':', (size_t)(end - name));
    char buf[40];
    if (colon == NULL || colon == name || (size_t)(colon - name) >= sizeof buf)
        return 0;
    memcpy(buf, name, (size_t)(colon - name));
    buf[colon - name] = '\0';
    gmud_error_set(err, gmud_err_from_name(buf), 0, "%.*s", (int)(end - name), name);
    return 1;
}

int gmud_error_set(gmud_error *err, int code, size_t offset, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    err->offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}
