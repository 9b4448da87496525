/* The PROXY protocol header, versions 1 (text) and 2 (binary): proxyproto.h. */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

static int bad(gmud_error *err, const char *what)
{
    return gmud_error_set(err, GMUD_ERR_PROXY, 0, "PROXY protocol: %s", what);
}

/* 1 if in[0..n) could still become sig[0..len): it agrees as far as it goes. */
static int prefix_of(const uint8_t *in, size_t n, const void *sig, size_t len)
{
    return memcmp(in, sig, n < len ? n : len) == 0;
}

/* ---- Version 1: "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n" -------------- */

/* A decimal port, 0..65535, no sign, no leading zero (the spec's form). */
static int v1_port(const char *s, uint16_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int v1_addr(int v6, const char *ip, const char *port, struct sockaddr_storage *ss)
{
    uint16_t p;
    memset(ss, 0, sizeof *ss);
    if (v1_port(port, &p) != 0)
        return -1;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(p);
        return inet_pton(AF_INET6, ip, &a->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(p);
    return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
}

static int v1_decode(const uint8_t *in, size_t n, pp_header *h, gmud_error *err)
{
    size_t end = 0;
    while (end + 1 < n && end + 2 <= PP_V1_MAX && !(in[end] == '\r' && in[end + 1] == '\n'))
        end++;
    if (end + 1 >= n || in[end] != '\r' || in[end + 1] != '\n') {
        if (n < PP_V1_MAX)
            return 0;
        return bad(err, "a version 1 header without its CRLF within 107 bytes");
    }
    char line[PP_V1_MAX + 1];
    memcpy(line, in, end);
    line[end] = '\0';
    for (size_t i = 0; i < end; i++)
        if (line[i] < 0x20 || line[i] > 0x7e)
            return bad(err, "a version 1 header with a byte that is not printable ASCII");
    h->version = 1;
    /* Fields separated by single spaces: PROXY, protocol, then 4 more. */
    char *field[7];
    int nf = 0;
    char *p = line;
    while (nf < 7) {
        field[nf++] = p;
        char *sp = strchr(p, ' ');
        if (sp == NULL)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    if (nf >= 2 && strcmp(field[1], "UNKNOWN") == 0) {
        h->local = 1; /* the rest of the line is to be ignored */
        return (int)(end + 2);
    }
    int v6 = nf >= 2 && strcmp(field[1], "TCP6") == 0;
    if (nf < 2 || (!v6 && strcmp(field[1], "TCP4") != 0))
        return bad(err, "version 1: the protocol is not TCP4, TCP6 or UNKNOWN");
    if (nf != 6)
        return bad(err, "version 1: not 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'");
    h->local = 0;
    if (v1_addr(v6, field[2], field[4], &h->src) != 0 ||
        v1_addr(v6, field[3], field[5], &h->dst) != 0)
        return bad(err, v6 ? "version 1: a bad TCP6 address or port"
                           : "version 1: a bad TCP4 address or port");
    return (int)(end + 2);
}

/* ---- Version 2: signature, ver/cmd, family, length, addresses, TLVs ------ */

static int v2_decode(const uint8_t *in, size_t n, pp_header *h, gmud_error *err)
{
    if (n < 16)
        return 0;
    size_t len = (size_t)in[14] << 8 | in[15];
    if (16 + len > PP_MAX) {
        char why[96];
        snprintf(why, sizeof why, "a version 2 header of %zu bytes, over gmud's bound of %d",
                 16 + len, PP_MAX);
        return bad(err, why);
    }
    if ((in[12] & 0xf0) != 0x20)
        return bad(err, "version 2 signature with another version");
    unsigned cmd = in[12] & 0x0f;
    if (cmd > 1)
        return bad(err, "version 2: a command other than LOCAL or PROXY");
    if (n < 16 + len)
        return 0;
    h->version = 2;
    unsigned fam = in[13] >> 4, proto = in[13] & 0x0f;
    const uint8_t *a = in + 16;
    memset(&h->src, 0, sizeof h->src);
    memset(&h->dst, 0, sizeof h->dst);
    /* LOCAL (the balancer's own health check), AF_UNSPEC and AF_UNIX carry
     * no address gmud can use: the connection stands as itself. */
    if (cmd == 0 || fam == 0 || fam == 3) {
        h->local = 1;
        return (int)(16 + len);
    }
    if (proto != 1)
        return bad(err, "version 2: not a stream (TCP) connection");
    if (fam == 1) {
        if (len < 12)
            return bad(err, "version 2: an IPv4 address block under 12 bytes");
        struct sockaddr_in *s = (struct sockaddr_in *)&h->src, *d = (struct sockaddr_in *)&h->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
    } else if (fam == 2) {
        if (len < 36)
            return bad(err, "version 2: an IPv6 address block under 36 bytes");
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src,
                            *d = (struct sockaddr_in6 *)&h->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
    } else {
        return bad(err, "version 2: an unknown address family");
    }
    h->local = 0;
    return (int)(16 + len); /* TLVs after the addresses are skipped */
}

int pp_decode(const uint8_t *in, size_t n, pp_header *h, gmud_error *err)
{
    memset(h, 0, sizeof *h);
    if (n == 0)
        return 0;
    if (prefix_of(in, n, v2_sig, sizeof v2_sig)) {
        if (n < sizeof v2_sig)
            return 0;
        return v2_decode(in, n, h, err);
    }
    if (prefix_of(in, n, v1_sig, sizeof v1_sig - 1)) {
        if (n < sizeof v1_sig - 1)
            return 0;
        return v1_decode(in, n, h, err);
    }
    return bad(err, "the connection does not begin with a PROXY header (version 1 or 2)");
}
