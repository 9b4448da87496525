/* fuzz/fuzz_proxy.c: the PROXY protocol header decoder (pp_decode) and the
 * address-range parser (cidr_list_parse), both fed by whoever connects.
 *
 * Input: the bytes a connection begins with. Checked for pp_decode:
 *   - the result is > 0 (a header's length, at most n and PP_MAX), 0 (more
 *     is needed: only while n < PP_MAX), or GMUD_ERR_PROXY with a message;
 *   - a header found carries an IPv4 or IPv6 source unless it is local;
 *   - decoding is a function of the header's own bytes: in[0..len) alone
 *     gives the same length and addresses, and every shorter prefix asks
 *     for more or fails (never a different header);
 * Then the input, as text, is parsed as a range list; a list that parses
 * must match each of its ranges' own network address.
 */
#include "fuzz_common.h"

#include <arpa/inet.h>

#include "cidr.h"
#include "proxyproto.h"

static void check_decode(const uint8_t *in, size_t n)
{
    pp_header h;
    gmud_error e;
    e.message[0] = '\0';
    int r = pp_decode(in, n, &h, &e);
    FUZZ_CHECK(r == GMUD_ERR_PROXY || r >= 0, "pp_decode returned %d", r);
    if (r == GMUD_ERR_PROXY) {
        FUZZ_CHECK(e.message[0] != '\0', "an error without a message");
        return;
    }
    if (r == 0) {
        FUZZ_CHECK(n < PP_MAX, "asked for more after %zu bytes", n);
        return;
    }
    FUZZ_CHECK((size_t)r <= n && r <= PP_MAX, "header of %d bytes in %zu", r, n);
    FUZZ_CHECK(h.version == 1 || h.version == 2, "version %d", h.version);
    if (!h.local)
        FUZZ_CHECK(h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6,
                   "source family %d", (int)h.src.ss_family);
    pp_header again;
    FUZZ_CHECK(pp_decode(in, (size_t)r, &again, &e) == r, "the header alone decodes otherwise");
    FUZZ_CHECK(again.local == h.local && memcmp(&again.src, &h.src, sizeof h.src) == 0,
               "the header alone carries another address");
    for (size_t k = 0; k < (size_t)r; k++) {
        int p = pp_decode(in, k, &again, &e);
        FUZZ_CHECK(p == 0 || p == GMUD_ERR_PROXY, "a prefix of %zu gave %d", k, p);
    }
}

static void check_cidr(const uint8_t *in, size_t n)
{
    char text[256];
    size_t len = n < sizeof text - 1 ? n : sizeof text - 1;
    memcpy(text, in, len);
    text[len] = '\0';
    cidr_list list;
    gmud_error e;
    if (cidr_list_parse(&list, text, &e) != GMUD_OK) {
        FUZZ_CHECK(e.code == GMUD_ERR_INVALID && e.message[0] != '\0', "a bad error");
        return;
    }
    FUZZ_CHECK(list.n <= CIDR_MAX, "%zu ranges", list.n);
    for (size_t i = 0; i < list.n; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        if (list.v[i].v6) {
            struct sockaddr_in6 a;
            memset(&a, 0, sizeof a);
            a.sin6_family = AF_INET6;
            memcpy(&a.sin6_addr, list.v[i].addr, 16);
            memcpy(&ss, &a, sizeof a);
        } else {
            struct sockaddr_in a;
            memset(&a, 0, sizeof a);
            a.sin_family = AF_INET;
            memcpy(&a.sin_addr, list.v[i].addr, 4);
            memcpy(&ss, &a, sizeof a);
        }
        FUZZ_CHECK(cidr_list_match(&list, (const struct sockaddr *)&ss),
                   "range %zu does not match its own network", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_decode(data, size);
    check_cidr(data, size);
    return 0;
}
