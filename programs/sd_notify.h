/* programs/sd_notify.h: telling systemd how the service is doing, the
 * sd_notify(3) protocol written by hand (a datagram to $NOTIFY_SOCKET), so
 * that gmud-server needs no libsystemd. Without $NOTIFY_SOCKET (not run by
 * systemd, or not Type=notify) every call does nothing. */
#ifndef GMUD_PROG_SD_NOTIFY_H
#define GMUD_PROG_SD_NOTIFY_H

#include <stdint.h>

typedef struct sdn {
    int fd;                  /* -1: not under systemd */
    uint64_t watchdog_ms;    /* WatchdogSec= as given to us; 0: none */
} sdn;

/* Reads and unsets NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (so that
 * children do not inherit them) and opens the socket. */
void sdn_open(sdn *n);

/* Sends state ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=..."),
 * without blocking: if the socket is full the message is dropped, as the
 * loop never waits. */
void sdn_send(const sdn *n, const char *state);

void sdn_close(sdn *n);

#endif
