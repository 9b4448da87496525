/* Hex text to bytes, for tests that read byte blocks out of docs/PROTOCOL.md:
 * the pairs of s, whitespace between them skipped, appended to out[n..cap)
 * until something else comes. The new length. */
#ifndef GMUD_TEST_HEX_UTIL_H
#define GMUD_TEST_HEX_UTIL_H

#include <stdint.h>
#include <stdio.h>

static inline size_t test_hex(const char *s, uint8_t *out, size_t cap, size_t n)
{
    unsigned v;
    int used;
    while (n < cap && sscanf(s, " %2x%n", &v, &used) == 1) {
        out[n++] = (uint8_t)v;
        s += used;
    }
    return n;
}

#endif
