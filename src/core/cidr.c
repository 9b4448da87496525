/* Address ranges: parse a list, match an address (cidr.h). */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

/* One range, text[0..len). */
static int parse_one(cidr *c, const char *text, size_t len, gmud_error *err)
{
    char buf[64];
    if (len >= sizeof buf)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "address range too long: %.40s...", text);
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash != NULL) {
        char *end;
        *slash = '\0';
        bits = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || bits < 0)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0, "bad prefix length in '%.*s'",
                                  (int)len, text);
    }
    char *host = buf;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        host++;
    }
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, host, c->addr) == 1) {
        c->v6 = 0;
    } else if (inet_pton(AF_INET6, host, c->addr) == 1) {
        c->v6 = 1;
    } else {
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "'%.*s' is not an IPv4 or IPv6 address or range", (int)len, text);
    }
    long max = c->v6 ? 128 : 32;
    if (bits > max)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "prefix length %ld over %ld in '%.*s'",
                              bits, max, (int)len, text);
    c->bits = (uint8_t)(bits < 0 ? max : bits);
    /* Clear the host bits, so that matching compares networks. */
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = c->bits > i * 8 ? c->bits - i * 8 : 0;
        if (keep < 8)
            c->addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    return GMUD_OK;
}

int cidr_list_parse(cidr_list *list, const char *text, gmud_error *err)
{
    list->n = 0;
    if (text == NULL)
        return GMUD_OK;
    const char *p = text;
    for (;;) {
        while (is_sep(*p))
            p++;
        if (*p == '\0')
            return GMUD_OK;
        size_t len = 0;
        while (p[len] != '\0' && !is_sep(p[len]))
            len++;
        if (list->n == CIDR_MAX)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0, "more than %d address ranges",
                                  CIDR_MAX);
        int rc = parse_one(&list->v[list->n], p, len, err);
        if (rc != GMUD_OK)
            return rc;
        list->n++;
        p += len;
    }
}

static int in_range(const cidr *c, const uint8_t *addr)
{
    unsigned full = c->bits / 8u, rest = c->bits % 8u;
    if (memcmp(c->addr, addr, full) != 0)
        return 0;
    return rest == 0 || ((addr[full] ^ c->addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

int cidr_list_match(const cidr_list *list, const struct sockaddr *sa)
{
    uint8_t a4[4], a6[16];
    int have4 = 0, have6 = 0;
    if (sa->sa_family == AF_INET) {
        memcpy(a4, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        have4 = 1;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(a6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        have6 = 1;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a6, mapped, 12) == 0) {
            memcpy(a4, a6 + 12, 4);
            have4 = 1;
        }
    }
    for (size_t i = 0; i < list->n; i++) {
        const cidr *c = &list->v[i];
        if ((c->v6 && have6 && in_range(c, a6)) || (!c->v6 && have4 && in_range(c, a4)))
            return 1;
    }
    return 0;
}
