/* The PROXY protocol decoder (src/core/proxyproto.c) and the address
 * ranges it is trusted by (src/core/cidr.c), in memory: every header form
 * HAProxy's specification gives, fed whole and a byte at a time, and the
 * malformed ones, each with its message. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cidr.h"
#include "proxyproto.h"

static const uint8_t SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* "ip:port" of a decoded address. */
static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in a;
        memcpy(&a, ss, sizeof a);
        inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
        port = ntohs(a.sin_port);
    } else if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 a;
        memcpy(&a, ss, sizeof a);
        inet_ntop(AF_INET6, &a.sin6_addr, ip, sizeof ip);
        port = ntohs(a.sin6_port);
    }
    snprintf(out, cap, "%s:%u", ip, port);
}

/* Decodes in whole, then checks that every proper prefix asks for more. */
static int decode_all(const uint8_t *in, size_t n, pp_header *h, gmud_error *e)
{
    for (size_t k = 0; k < n; k++) {
        pp_header part;
        gmud_error pe;
        int r = pp_decode(in, k, &part, &pe);
        if (r != 0 && r != GMUD_ERR_PROXY && !(r > 0 && (size_t)r <= k)) {
            CHECK(0);
            fprintf(stderr, "  prefix of %zu bytes gave %d\n", k, r);
        }
        if (r == GMUD_ERR_PROXY)
            return r; /* an error shows as early as it can; the caller checks it */
    }
    return pp_decode(in, n, h, e);
}

static void expect_ok(const void *in, size_t n, size_t want_len, int version, const char *src,
                      const char *dst)
{
    pp_header h;
    gmud_error e = {0};
    int r = decode_all(in, n, &h, &e);
    if (r != (int)want_len)
        fprintf(stderr, "  header of %zu bytes: got %d (%s)\n", n, r, e.message);
    CHECK_EQ_INT(r, (int)want_len);
    CHECK_EQ_INT(h.version, version);
    if (src == NULL) {
        CHECK_EQ_INT(h.local, 1);
        return;
    }
    CHECK_EQ_INT(h.local, 0);
    char s[80], d[80];
    addr_text(&h.src, s, sizeof s);
    addr_text(&h.dst, d, sizeof d);
    if (strcmp(s, src) != 0 || strcmp(d, dst) != 0)
        fprintf(stderr, "  got %s -> %s, want %s -> %s\n", s, d, src, dst);
    CHECK(strcmp(s, src) == 0 && strcmp(d, dst) == 0);
}

static void expect_bad(const void *in, size_t n, const char *says)
{
    pp_header h;
    gmud_error e = {0};
    int r = decode_all(in, n, &h, &e);
    if (r == GMUD_ERR_PROXY && e.message[0] == '\0')
        pp_decode(in, n, &h, &e); /* an early prefix failed: its message */
    CHECK_EQ_INT(r, GMUD_ERR_PROXY);
    CHECK_CONTAINS(e.message, says);
}

static void test_v1(void)
{
    static const char t4[] = "PROXY TCP4 203.0.113.7 192.0.2.1 51000 8222\r\nGMUD";
    expect_ok(t4, sizeof t4 - 1, sizeof t4 - 5, 1, "203.0.113.7:51000", "192.0.2.1:8222");
    static const char t6[] = "PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n";
    expect_ok(t6, sizeof t6 - 1, sizeof t6 - 1, 1, "2001:db8::7:65535", "2001:db8::1:0");
    static const char unk[] = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
    expect_ok(unk, sizeof unk - 1, sizeof unk - 1, 1, NULL, NULL);
    static const char unk0[] = "PROXY UNKNOWN\r\n";
    expect_ok(unk0, sizeof unk0 - 1, sizeof unk0 - 1, 1, NULL, NULL);
    /* The longest line the spec allows, 107 bytes with CRLF. */
    static const char longest[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    CHECK_EQ_INT((int)sizeof longest - 1, 104);
    expect_ok(longest, sizeof longest - 1, 104, 1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:65535",
              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:65535");

    expect_bad("GET / HTTP/1.1\r\n", 16, "does not begin with a PROXY header");
    expect_bad("GMUD\x05\x00hello", 11, "does not begin with a PROXY header");
    expect_bad("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 32, "not TCP4, TCP6 or UNKNOWN");
    expect_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 30, "not 'PROXY TCP4|TCP6");
    expect_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", 33, "not 'PROXY TCP4|TCP6");
    expect_bad("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 33, "not 'PROXY TCP4|TCP6");
    expect_bad("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", 34, "bad TCP4 address or port");
    expect_bad("PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", 36, "bad TCP4 address or port");
    expect_bad("PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n", 36, "bad TCP6 address or port");
    expect_bad("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 36, "bad TCP4 address or port");
    expect_bad("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 33, "bad TCP4 address or port");
    expect_bad("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", 33, "bad TCP4 address or port");
    expect_bad("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", 32, "not printable ASCII");
    /* No CRLF within 107 bytes: refused at the 107th, not waited for. */
    uint8_t endless[200];
    memcpy(endless, "PROXY TCP4 ", 11);
    memset(endless + 11, '1', sizeof endless - 11);
    pp_header h;
    gmud_error e;
    CHECK_EQ_INT(pp_decode(endless, 106, &h, &e), 0);
    CHECK_EQ_INT(pp_decode(endless, 107, &h, &e), GMUD_ERR_PROXY);
    CHECK_CONTAINS(e.message, "without its CRLF within 107 bytes");
}

/* A v2 header: signature, ver_cmd, fam, then body (len bytes). */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, size_t len)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    if (len > 0)
        memcpy(out + 16, body, len);
    return 16 + len;
}

static void test_v2(void)
{
    uint8_t buf[2048], body[1100];
    /* TCP over IPv4: 203.0.113.7:51000 -> 192.0.2.1:8222, then a TLV. */
    static const uint8_t a4[] = {203, 0, 113, 7, 192, 0, 2, 1, 0xc7, 0x38, 0x20, 0x1e,
                                 0x04, 0x00, 0x01, 0x00}; /* PP2_TYPE_NOOP, 1 byte */
    size_t n = v2(buf, 0x21, 0x11, a4, sizeof a4);
    memcpy(buf + n, "GMUD", 4);
    expect_ok(buf, n + 4, n, 2, "203.0.113.7:51000", "192.0.2.1:8222");
    /* TCP over IPv6. */
    memset(body, 0, 36);
    body[0] = 0x20, body[1] = 0x01, body[2] = 0x0d, body[3] = 0xb8, body[15] = 7;
    body[16] = 0x20, body[17] = 0x01, body[18] = 0x0d, body[19] = 0xb8, body[31] = 1;
    body[32] = 0x12, body[33] = 0x34, body[34] = 0x00, body[35] = 0x50;
    n = v2(buf, 0x21, 0x21, body, 36);
    expect_ok(buf, n, n, 2, "2001:db8::7:4660", "2001:db8::1:80");
    /* LOCAL (a health check): no address, whatever the family says. */
    n = v2(buf, 0x20, 0x11, a4, 12);
    expect_ok(buf, n, n, 2, NULL, NULL);
    n = v2(buf, 0x20, 0x00, NULL, 0);
    expect_ok(buf, n, n, 2, NULL, NULL);
    /* PROXY over AF_UNSPEC and AF_UNIX: no address gmud can use. */
    n = v2(buf, 0x21, 0x00, NULL, 0);
    expect_ok(buf, n, n, 2, NULL, NULL);
    memset(body, 'u', 216);
    n = v2(buf, 0x21, 0x31, body, 216);
    expect_ok(buf, n, n, 2, NULL, NULL);
    /* TLVs up to gmud's bound of PP_MAX bytes in all. */
    memcpy(body, a4, 12);
    memset(body + 12, 0, PP_MAX - 16 - 12);
    n = v2(buf, 0x21, 0x11, body, PP_MAX - 16);
    expect_ok(buf, n, PP_MAX, 2, "203.0.113.7:51000", "192.0.2.1:8222");

    n = v2(buf, 0x21, 0x11, body, PP_MAX - 15);
    expect_bad(buf, n, "a version 2 header of 1025 bytes, over gmud's bound of 1024");
    n = v2(buf, 0x11, 0x11, a4, 12);
    expect_bad(buf, n, "version 2 signature with another version");
    n = v2(buf, 0x22, 0x11, a4, 12);
    expect_bad(buf, n, "a command other than LOCAL or PROXY");
    n = v2(buf, 0x21, 0x12, a4, 12);
    expect_bad(buf, n, "not a stream (TCP) connection");
    n = v2(buf, 0x21, 0x11, a4, 11);
    expect_bad(buf, n, "an IPv4 address block under 12 bytes");
    n = v2(buf, 0x21, 0x21, body, 35);
    expect_bad(buf, n, "an IPv6 address block under 36 bytes");
    n = v2(buf, 0x21, 0x41, a4, 12);
    expect_bad(buf, n, "an unknown address family");
    /* A signature that goes wrong part way is refused at once. */
    memcpy(buf, SIG, 12);
    buf[5] = 'X';
    expect_bad(buf, 12, "does not begin with a PROXY header");
}

static struct sockaddr_storage sa_of(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, text, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        memcpy(&ss, &a4, sizeof a4);
    } else if (inet_pton(AF_INET6, text, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        memcpy(&ss, &a6, sizeof a6);
    }
    return ss;
}

static int in_list(const cidr_list *l, const char *text)
{
    struct sockaddr_storage ss = sa_of(text);
    return cidr_list_match(l, (const struct sockaddr *)&ss);
}

static void test_cidr(void)
{
    cidr_list l;
    gmud_error e;
    CHECK_EQ_INT(cidr_list_parse(&l, "10.0.0.0/8,192.0.2.1 [2001:db8::]/33, ::1, 172.16.5.9/12",
                                 &e), 0);
    CHECK_EQ_INT((int)l.n, 5);
    CHECK(in_list(&l, "10.255.1.2"));
    CHECK(!in_list(&l, "11.0.0.1"));
    CHECK(in_list(&l, "192.0.2.1"));
    CHECK(!in_list(&l, "192.0.2.2"));
    CHECK(in_list(&l, "2001:db8:7fff::1"));
    CHECK(!in_list(&l, "2001:db8:8000::1")); /* /33: the 33rd bit differs */
    CHECK(in_list(&l, "::1"));
    CHECK(in_list(&l, "172.31.255.255")); /* host bits of 172.16.5.9/12 cleared */
    CHECK(!in_list(&l, "172.32.0.0"));
    CHECK(in_list(&l, "::ffff:10.1.2.3")); /* IPv4-mapped: as the IPv4 address */
    CHECK(!in_list(&l, "::ffff:11.1.2.3"));
    CHECK_EQ_INT(cidr_list_parse(&l, "0.0.0.0/0", &e), 0);
    CHECK(in_list(&l, "8.8.8.8"));
    CHECK(!in_list(&l, "2001:db8::1")); /* all IPv4 is not IPv6 */
    CHECK_EQ_INT(cidr_list_parse(&l, "", &e), 0);
    CHECK_EQ_INT((int)l.n, 0);
    CHECK(!in_list(&l, "127.0.0.1"));
    CHECK_EQ_INT(cidr_list_parse(&l, NULL, &e), 0);

    static const struct {
        const char *text, *says;
    } bad[] = {
        {"10.0.0.0/33", "prefix length 33 over 32"},
        {"::/129", "prefix length 129 over 128"},
        {"10.0.0.0/", "bad prefix length"},
        {"10.0.0.0/x", "bad prefix length"},
        {"10.0.0.0/-1", "bad prefix length"},
        {"localhost", "'localhost' is not an IPv4 or IPv6 address"},
        {"10.0.0.1, 300.0.0.1", "'300.0.0.1' is not"},
        {"[10.0.0.1", "is not an IPv4 or IPv6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(cidr_list_parse(&l, bad[i].text, &e), GMUD_ERR_INVALID);
        CHECK_CONTAINS(e.message, bad[i].says);
    }
    char many[CIDR_MAX * 4 + 16] = "";
    for (int i = 0; i <= CIDR_MAX; i++)
        strcat(many, "::1,");
    CHECK_EQ_INT(cidr_list_parse(&l, many, &e), GMUD_ERR_INVALID);
    CHECK_CONTAINS(e.message, "more than 64 address ranges");
}

int main(void)
{
    test_v1();
    test_v2();
    test_cidr();
    return check_report("test_proxyproto");
}
