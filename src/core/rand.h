/* Internal: random bytes from the kernel, for session ids (session.c) and
 * the per-address table's hash key (iplimit.c). */
#ifndef GMUD_RAND_H
#define GMUD_RAND_H

#include <stddef.h>

#include "gmud/error.h"

/* Fills buf[0..n) from getrandom(2) (n <= 256: one call, never short),
 * retrying on EINTR. 0, or GMUD_ERR_IO naming the system's reason. */
int rand_bytes(void *buf, size_t n, gmud_error *err);

#endif
