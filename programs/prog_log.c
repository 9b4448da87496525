/* programs/prog_log.c: the programs' log lines and process setup. */
#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void prog_log(void *user, const gmud_log_event *ev)
{
    const prog_options *o = user;
    if (o != NULL && ev->level > o->conn.log_level)
        return;
    struct timespec ts;
    struct tm tm;
    char when[32] = "?";
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm) != NULL) {
        size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    }
    /* One fprintf per line: stderr is unbuffered, and a line written in one
     * call is not interleaved with another process's. */
    fprintf(stderr, "%s %s %s %s%s%s\n", when, gmud_log_level_name(ev->level),
            ev->peer != NULL && ev->peer[0] != '\0' ? ev->peer : "-", ev->event,
            ev->reason != NULL && ev->reason[0] != '\0' ? ": " : "",
            ev->reason != NULL ? ev->reason : "");
}

void prog_logf(const prog_options *o, gmud_log_level level, const char *peer, const char *event,
               const char *fmt, ...)
{
    if (level > o->conn.log_level)
        return;
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    gmud_log_event ev = {level, peer != NULL ? peer : "-", event, reason};
    prog_log((void *)o, &ev);
}

void prog_process_setup(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        /* open() takes the lowest free descriptor: this very fd. */
        int nul = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (nul != fd && nul >= 0)
            close(nul);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}
