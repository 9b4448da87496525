/* bench/bench_util.h: the few helpers both benchmarks share.
 *
 * Benchmarks only: never used by tests (tests are never timed). Every figure
 * a benchmark prints is set beside a baseline measured in the same run, so
 * the ratio survives a noisy or slow machine better than the raw numbers.
 */
#ifndef GMUD_BENCH_UTIL_H
#define GMUD_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic nanoseconds: immune to wall-clock steps during a run. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime(CLOCK_MONOTONIC)");
        exit(2);
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A positive integer from the environment, or def when unset. A value that
 * is set but unusable stops the run: silently benchmarking something else
 * than asked would be worse. */
static inline long bench_env_long(const char *name, long def, long lo, long hi)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return def;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "%s=%s: expected an integer in %ld..%ld\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Best (smallest) and median of v[0..n); sorts v. */
static inline void bench_best_median(double *v, size_t n, double *best, double *median)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    *best = v[0];
    *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Keeps the compiler from proving a buffer's contents dead, so a copy into
 * it cannot be elided. The volatile sink alone would keep one byte alive;
 * the empty asm with a memory clobber keeps all of them (GCC and clang). */
static inline void bench_escape(const void *p)
{
#if defined(__GNUC__)
    __asm__ volatile("" : : "r"(p) : "memory");
#else
    (void)p;
#endif
}

/* Prints the 1-minute load average where the system shows one (Linux's
 * /proc/loadavg): a busy machine explains a noisy run. Silent elsewhere. */
static inline void bench_print_load(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double load1;
    if (f == NULL)
        return;
    if (fscanf(f, "%lf", &load1) == 1)
        printf("  load average (1 min) at start: %.2f\n", load1);
    fclose(f);
}

/* 64-bit PRNG (splitmix64): fixed seed in, the same sequence on every
 * machine, so every run cuts the stream at the same places. */
static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

#endif
