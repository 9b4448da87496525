/* A minimal test harness: CHECK records a failure and carries on, so one run
 * shows every broken case; main returns check_report(). */
#ifndef GMUD_TEST_CHECK_H
#define GMUD_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                              \
    do {                                                                         \
        check_count++;                                                           \
        if (!(cond)) {                                                           \
            check_failures++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                       \
    do {                                                                         \
        long long a_ = (long long)(a), b_ = (long long)(b);                      \
        check_count++;                                                           \
        if (a_ != b_) {                                                          \
            check_failures++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, \
                    __LINE__, #a, #b, a_, b_);                                   \
        }                                                                        \
    } while (0)

#define CHECK_MEM(p, n, q, m)                                                    \
    do {                                                                         \
        size_t n_ = (size_t)(n), m_ = (size_t)(m);                               \
        check_count++;                                                           \
        if (n_ != m_ || (n_ > 0 && memcmp((p), (q), n_) != 0)) {                 \
            check_failures++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: bytes %s (%zu) != %s (%zu)\n", \
                    __FILE__, __LINE__, #p, n_, #q, m_);                         \
        }                                                                        \
    } while (0)

#define CHECK_CONTAINS(haystack, needle)                                         \
    do {                                                                         \
        check_count++;                                                           \
        if (strstr((haystack), (needle)) == NULL) {                              \
            check_failures++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: \"%s\" does not contain \"%s\"\n", \
                    __FILE__, __LINE__, (haystack), (needle));                   \
        }                                                                        \
    } while (0)

static inline int check_report(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures == 0 ? 0 : 1;
}

#endif
