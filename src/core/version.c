/* The library's version. See include/gmud/version.h. */
#include "gmud/version.h"

#define GMUD_STR_(x) #x
#define GMUD_STR(x) GMUD_STR_(x)

const char *gmud_version(void)
{
    return GMUD_STR(GMUD_VERSION_MAJOR) "." GMUD_STR(GMUD_VERSION_MINOR) "." GMUD_STR(
        GMUD_VERSION_PATCH);
}

unsigned gmud_version_number(void)
{
    return GMUD_VERSION_HEX;
}
