/* A minimal gmud client: connects to a server on this machine, sends JSON
 * messages and prints the server's reply to each. It uses the blocking
 * client (gmud/sync.h): no event loop and no threads, the simplest way to
 * talk to a gmud server from a tool, a test or a bot.
 * Build: cc client.c $(pkg-config --cflags --libs gmud)  (or see
 * examples/CMakeLists.txt). Run against examples/echo_server.c:
 *   echo_server 8222 &
 *   client 8222 '{"say": "hi"}' '{"say": "again"}'
 *   printf '{"n": 1}\n{"n": 2}\n' | client 8222     (one message a line)
 * Exit status: 0 if every message got its reply, 1 if not, 2 for bad usage. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* getline() */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmud/sync.h"

#define TIMEOUT_MS 5000 /* for connecting, and for each reply */

/* Sends one message, waits for one reply and prints it. 0, or -1 (said why). */
static int round_trip(gmud_sync *s, const char *text)
{
    gmud_error err;
    if (gmud_sync_send(s, text, strlen(text), &err) != 0) {
        fprintf(stderr, "client: send: %s\n", err.message);
        return -1;
    }
    gmud_slice reply; /* points into s: valid until the next call on s */
    int rc = gmud_sync_recv(s, TIMEOUT_MS, &reply, &err);
    if (rc == 0) {
        fprintf(stderr, "client: no reply within %d ms\n", TIMEOUT_MS);
        return -1;
    }
    if (rc < 0) { /* the server closed, refused the message, or the socket failed */
        fprintf(stderr, "client: %s\n", err.message);
        return -1;
    }
    fwrite(reply.data, 1, reply.len, stdout);
    putchar('\n');
    fflush(stdout); /* a reply is seen as soon as it comes, even through a pipe */
    return 0;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    unsigned long port = argc > 1 ? strtoul(argv[1], &end, 10) : 0;
    if (argc < 2 || *end != '\0' || port == 0 || port > 65535) {
        fprintf(stderr, "usage: client PORT [JSON...]  (no JSON: one message per line of stdin)\n");
        return 2;
    }

    gmud_sync_config cfg;
    gmud_sync_default_config(&cfg); /* gmud framing, sessions on: the server defaults */
    gmud_error err;
    gmud_sync *s = gmud_sync_create("127.0.0.1", (unsigned)port, &cfg, TIMEOUT_MS, &err);
    if (s == NULL) { /* refused, timed out, or the server sent no welcome */
        fprintf(stderr, "client: 127.0.0.1:%lu: %s\n", port, err.message);
        return 1;
    }

    int status = 0;
    if (argc > 2) {
        for (int i = 2; i < argc && status == 0; i++)
            status = round_trip(s, argv[i]) == 0 ? 0 : 1;
    } else {
        char *line = NULL;
        size_t cap = 0;
        while (status == 0 && getline(&line, &cap, stdin) != -1) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0] != '\0') /* blank lines are skipped */
                status = round_trip(s, line) == 0 ? 0 : 1;
        }
        free(line);
    }
    gmud_sync_destroy(s); /* closes the connection */
    return status;
}
