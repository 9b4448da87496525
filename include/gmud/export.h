/* gmud/export.h: what leaves the shared library.
 *
 * libgmud is built with -fvisibility=hidden: a function is exported only if
 * its declaration in a public header carries GMUD_API, so the runtime's
 * internals (src/) never become part of the ABI by accident.
 * tests/api/test_exports.py checks the library's dynamic symbols against the
 * headers in both directions. */
#ifndef GMUD_EXPORT_H
#define GMUD_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define GMUD_API __attribute__((visibility("default")))
#else
#define GMUD_API
#endif

#endif
