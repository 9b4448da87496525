/* programs/sd_notify.c: see sd_notify.h. The protocol: each message is one
 * datagram of "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@'). */
#include "sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un notify_addr;
static socklen_t notify_len;

static int set_addr(const char *path)
{
    size_t n = strlen(path);
    if (n < 2 || n >= sizeof notify_addr.sun_path || (path[0] != '/' && path[0] != '@'))
        return -1;
    memset(&notify_addr, 0, sizeof notify_addr);
    notify_addr.sun_family = AF_UNIX;
    memcpy(notify_addr.sun_path, path, n);
    if (path[0] == '@')
        notify_addr.sun_path[0] = '\0'; /* the abstract namespace */
    notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    return 0;
}

/* WATCHDOG_USEC applies to us only if WATCHDOG_PID is absent or ours. */
static uint64_t watchdog_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (usec == NULL)
        return 0;
    if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    unsigned long long us = strtoull(usec, NULL, 10);
    return us / 1000;
}

void sdn_open(sdn *n)
{
    n->fd = -1;
    n->watchdog_ms = 0;
    const char *path = getenv("NOTIFY_SOCKET");
    if (path != NULL && set_addr(path) == 0) {
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        n->watchdog_ms = n->fd >= 0 ? watchdog_ms() : 0;
    }
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

void sdn_send(const sdn *n, const char *state)
{
    if (n->fd < 0)
        return;
    ssize_t rc;
    do
        rc = sendto(n->fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
                    (const struct sockaddr *)&notify_addr, notify_len);
    while (rc < 0 && errno == EINTR);
}

void sdn_close(sdn *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
