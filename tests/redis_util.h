/* A redis-server for one test: started on a free loopback port, without
 * persistence, stopped (or paused, or killed and started again) by the
 * test. Every wait is bounded. */
#ifndef GMUD_TEST_REDIS_UTIL_H
#define GMUD_TEST_REDIS_UTIL_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct test_redis {
    pid_t pid;
    unsigned port;
} test_redis;

/* A port the kernel says is free now. */
static inline unsigned test_redis_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline int test_redis_accepts(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts redis-server on r->port (a free one if 0); 0 once it accepts,
 * -1 if it did not within 5 s (or is not installed). */
static inline int test_redis_start(test_redis *r)
{
    if (r->port == 0)
        r->port = test_redis_free_port();
    char port[16];
    snprintf(port, sizeof port, "%u", r->port);
    r->pid = fork();
    if (r->pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; r->pid > 0 && i < 500; i++) {
        if (test_redis_accepts(r->port))
            return 0;
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            fprintf(stderr, "redis-server exited at start (is it installed? "
                            "scripts/install-deps.sh)\n");
            r->pid = 0;
            return -1;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* SIGKILL, and reaped. */
static inline void test_redis_stop(test_redis *r)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGCONT);
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

#endif
