/* programs/prog_log.c: the programs' log events and process setup. The
 * lines go to stderr through log_writer.c. */
#include "log_writer.h"
#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void prog_log(void *user, const gmud_log_event *ev)
{
    const prog_options *o = user;
    if (o != NULL && ev->level > o->conn.log_level)
        return;
    log_writer_event(ev->level, ev->peer != NULL && ev->peer[0] != '\0' ? ev->peer : "-",
                     ev->event, ev->reason != NULL ? ev->reason : "", ev->fields, ev->nfields,
                     o != NULL ? o->log_repeat : PROG_DEFAULT_LOG_REPEAT);
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
    gmud_log_event ev = {level, peer != NULL ? peer : "-", event, reason, NULL, 0};
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
