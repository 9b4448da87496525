/* gmud/version.h: the library's version.
 *
 * The macros are the version of the headers a program was compiled with;
 * gmud_version() is that of the library it runs against, so a program can
 * tell the two apart after a shared-library upgrade. The shared library's
 * soname carries the major version. CMakeLists.txt reads the three numbers
 * from here: this is the one place the version is written. */
#ifndef GMUD_VERSION_H
#define GMUD_VERSION_H

#include "gmud/export.h"

#define GMUD_VERSION_MAJOR 0
#define GMUD_VERSION_MINOR 1
#define GMUD_VERSION_PATCH 0

/* One number that orders versions: 0x00MMmmpp. */
#define GMUD_VERSION_HEX \
    ((GMUD_VERSION_MAJOR << 16) | (GMUD_VERSION_MINOR << 8) | GMUD_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The running library's version as "MAJOR.MINOR.PATCH"; static storage. */
GMUD_API const char *gmud_version(void);

/* The running library's version as GMUD_VERSION_HEX computes it. */
GMUD_API unsigned gmud_version_number(void);

#ifdef __cplusplus
}
#endif

#endif
