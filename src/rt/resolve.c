/* Host name resolution. See resolve.h. */
#include "resolve.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

int net_resolve(const char *host, unsigned port, int passive, net_addrs *out, gmud_error *err)
{
    char service[16];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return gmud_error_set(err, GMUD_ERR_IO, 0, "cannot resolve host '%s': %s", host,
                              gai_strerror(rc));
    out->n = 0;
    for (const struct addrinfo *ai = res; ai != NULL && out->n < NET_ADDRS_MAX;
         ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out->addr[0])
            continue;
        memcpy(&out->addr[out->n], ai->ai_addr, ai->ai_addrlen);
        out->len[out->n++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    if (out->n == 0)
        return gmud_error_set(err, GMUD_ERR_IO, 0, "host '%s' has no usable address", host);
    return GMUD_OK;
}
