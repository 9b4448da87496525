/* bench/bench_net.h: helpers the runtime benchmarks share (bench_stream,
 * bench_rtt, bench_conns, bench_fanout).
 *
 * Benchmarks only. Everything runs on loopback (127.0.0.1). Every benchmark
 * forks its peer into a child process so that the two sides do not share a
 * malloc arena, a loop or a core's run queue by accident; each child dies
 * with its parent (PR_SET_PDEATHSIG) and has its own alarm(), so nothing
 * outlives a run or runs longer than its bound.
 */
#ifndef GMUD_BENCH_NET_H
#define GMUD_BENCH_NET_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define BENCH_NET_HAVE_MALLINFO2 1
#endif

#include "bench_util.h"

/* The program's name for messages; each main() sets it first. */
static const char *bench_prog = "bench";

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
static inline void bench_fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s[%ld]: %s\n", bench_prog, (long)getpid(), msg);
    fflush(stderr);
    _exit(1); /* _exit: a child must not flush the parent's stdio buffers */
}

static inline void *bench_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        bench_fail("out of memory (%zu bytes)", n);
    return p;
}

/* ---- Bounds in time ----------------------------------------------------- */

static void bench_on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "bench: time bound reached, giving up\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

/* The whole process ends with status 3 after `seconds`, whatever it is doing. */
static inline void bench_time_bound(unsigned seconds)
{
    signal(SIGALRM, bench_on_alarm);
    alarm(seconds);
}

/* Writes to a peer that has gone must give EPIPE, not kill the process
 * (libuv does not ignore SIGPIPE for us). */
static inline void bench_ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}

/* ---- Processes ---------------------------------------------------------- */

/* fork() whose child dies with the parent and gets its own time bound.
 * Returns the pid in the parent, 0 in the child. stdout is flushed first so
 * that the child does not print the parent's buffered lines again. */
static inline pid_t bench_fork(unsigned child_seconds)
{
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        bench_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1); /* the parent died before prctl */
        bench_time_bound(child_seconds);
    }
    return pid;
}

/* Waits up to timeout_ms for pid; kills it if it is still running then.
 * Returns its exit status, or -1 if it had to be killed or died of a signal.
 * With cpu_s, the child's CPU time (user + system, seconds) goes to *cpu_s;
 * with maxrss_kb, its peak resident set size (KiB). */
static inline int bench_wait_usage(pid_t pid, int timeout_ms, double *cpu_s, long *maxrss_kb)
{
    uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int st = 0;
        struct rusage ru;
        pid_t r = wait4(pid, &st, WNOHANG, &ru);
        if (r == pid && cpu_s != NULL)
            *cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        if (r == pid && maxrss_kb != NULL)
            *maxrss_kb = ru.ru_maxrss;
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (bench_now_ns() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fprintf(stderr, "%s: child %ld did not stop in time; killed\n", bench_prog,
                    (long)pid);
            return -1;
        }
        usleep(1000);
    }
}

static inline int bench_wait_cpu(pid_t pid, int timeout_ms, double *cpu_s)
{
    return bench_wait_usage(pid, timeout_ms, cpu_s, NULL);
}

static inline int bench_wait(pid_t pid, int timeout_ms)
{
    return bench_wait_usage(pid, timeout_ms, NULL, NULL);
}

/* Reads exactly n bytes from a pipe within timeout_ms; 0, or -1 on EOF,
 * error or timeout. */
static inline int bench_pipe_read(int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *p = buf;
    uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (n > 0) {
        uint64_t now = bench_now_ns();
        if (now >= end)
            return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)((end - now) / 1000000u) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static inline void bench_pipe_write(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            bench_fail("pipe write: %s", strerror(errno));
        p += r;
        n -= (size_t)r;
    }
}

/* ---- CPU placement and descriptors ------------------------------------- */

/* Pins the calling process to cpu (inherited by children forked later), or
 * with cpu < 0 lets it run on every online CPU again. */
static inline void bench_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu >= 0) {
        CPU_SET(cpu, &set);
    } else {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        for (long i = 0; i < n && i < CPU_SETSIZE; i++)
            CPU_SET((int)i, &set);
    }
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        bench_fail("sched_setaffinity: %s", strerror(errno));
}

/* Raises RLIMIT_NOFILE's soft limit to the hard one; returns the new limit. */
static inline long bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        bench_fail("getrlimit: %s", strerror(errno));
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        bench_fail("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)rl.rlim_max,
                   strerror(errno));
    return (long)rl.rlim_cur;
}

/* ---- Raw sockets -------------------------------------------------------- */

static inline void bench_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        bench_fail("TCP_NODELAY: %s", strerror(errno));
}

/* A listening socket on 127.0.0.1 with a kernel-chosen port (*port). */
static inline int bench_listen(int backlog, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        bench_fail("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        bench_fail("bind/listen on 127.0.0.1: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    return fd;
}

/* A blocking connection to 127.0.0.1:port, TCP_NODELAY on if nodelay. */
static inline int bench_connect(uint16_t port, int nodelay)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        bench_fail("socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    while (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINTR)
            bench_fail("connect to 127.0.0.1:%u: %s", port, strerror(errno));
    }
    if (nodelay)
        bench_nodelay(fd);
    return fd;
}

static inline void bench_write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            bench_fail("write: %s", strerror(errno));
        p += r;
        n -= (size_t)r;
    }
}

/* Reads exactly n bytes (blocking); 0, or -1 if the peer closed first. */
static inline int bench_read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            bench_fail("read: %s", strerror(errno));
        if (r == 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- Memory ------------------------------------------------------------- */

/* Resident set size of this process, from /proc/self/statm (bytes). */
static inline long long bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, resident = 0;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (long long)sysconf(_SC_PAGESIZE);
}

/* Heap bytes in use: malloc'd chunks in the arenas plus mmap'd chunks
 * (large ones, e.g. libuv's watcher array, bypass the arena); -1 if
 * mallinfo2 is unavailable. */
static inline long long bench_heap_bytes(void)
{
#ifdef BENCH_NET_HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    return (long long)(mi.uordblks + mi.hblkhd);
#else
    return -1;
#endif
}

/* CPU time (user + system) this process has used (seconds). */
static inline double bench_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

#endif
