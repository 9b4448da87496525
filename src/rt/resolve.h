/* Internal: host name resolution, once for every transport.
 *
 * The server (to bind), the event client and the blocking client (to
 * connect) each need every address a host resolves to, tried in order: a
 * name like "localhost" may give ::1 first while the server listens on
 * 127.0.0.1 only. One getaddrinfo call here, with one error sentence. */
#ifndef GMUD_RESOLVE_H
#define GMUD_RESOLVE_H

#include <sys/socket.h>

#include "gmud/error.h"

enum { NET_ADDRS_MAX = 8 }; /* addresses kept of what a host resolves to */

typedef struct net_addrs {
    int n;
    socklen_t len[NET_ADDRS_MAX];
    struct sockaddr_storage addr[NET_ADDRS_MAX];
} net_addrs;

/* Resolves host:port to TCP addresses (for bind() if passive, else for
 * connect()), the first NET_ADDRS_MAX in the resolver's order. 0, or
 * GMUD_ERR_IO with err saying why ("cannot resolve host ...", "host ... has
 * no usable address"). Blocks in getaddrinfo: a literal address does not
 * wait; a name may. */
int net_resolve(const char *host, unsigned port, int passive, net_addrs *out, gmud_error *err);

static inline const struct sockaddr *net_addr(const net_addrs *a, int i)
{
    return (const struct sockaddr *)&a->addr[i];
}

#endif
