/* Internal: the PROXY protocol header (HAProxy's specification, versions 1
 * and 2), which a load balancer sends before the client's bytes to say
 * whom the connection is really from. Sans I/O: bytes in, the addresses
 * out. docs/PROTOCOL.md section 9 says what gmud accepts. */
#ifndef GMUD_CORE_PROXYPROTO_H
#define GMUD_CORE_PROXYPROTO_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gmud/error.h"

enum {
    PP_V1_MAX = 107,  /* a version 1 line, CRLF included (the spec's bound) */
    PP_MAX = 1024     /* any header gmud accepts: v2's 16 bytes + addresses + TLVs */
};

typedef struct pp_header {
    int version;                  /* 1 or 2 */
    int local;                    /* 1: no addresses carried (v1 UNKNOWN, v2 LOCAL or
                                     AF_UNSPEC/AF_UNIX): the connection's own stand */
    struct sockaddr_storage src;  /* the client, when !local */
    struct sockaddr_storage dst;  /* the address it connected to, when !local */
} pp_header;

/* Decodes the header at in[0..n). Returns its length (> 0: the bytes that
 * follow are the client's), 0 if in is a correct beginning of a header
 * that is not complete yet (n < PP_MAX), or GMUD_ERR_PROXY with err
 * saying what is wrong. Never reads past in[n-1]. */
int pp_decode(const uint8_t *in, size_t n, pp_header *h, gmud_error *err);

#endif
