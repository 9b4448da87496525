/* Per-address connection limits, driven by a fake clock (ms). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "check.h"
#include "gmud/iplimit.h"
#include "gmud/ratelimit.h"

/* ---- Helpers ------------------------------------------------------------ */

typedef struct sockaddr_storage addr_t;
#define SA(a) ((const struct sockaddr *)&(a))

/* The addresses are built in their own types and copied into the storage:
 * writing a sockaddr_storage through a sockaddr_in pointer breaks C's
 * aliasing rules, and gcc -O2 did miscompile this test that way. */
static addr_t from4(const struct sockaddr_in *in4)
{
    addr_t a;
    memset(&a, 0, sizeof a);
    memcpy(&a, in4, sizeof *in4);
    return a;
}

static addr_t from6(const struct sockaddr_in6 *in6)
{
    addr_t a;
    memset(&a, 0, sizeof a);
    memcpy(&a, in6, sizeof *in6);
    return a;
}

/* text is IPv4 if it parses as such, else IPv6; at port. */
static addr_t ip_port(const char *text, uint16_t port)
{
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    memset(&in4, 0, sizeof in4);
    memset(&in6, 0, sizeof in6);
    if (inet_pton(AF_INET, text, &in4.sin_addr) == 1) {
        in4.sin_family = AF_INET;
        in4.sin_port = htons(port);
        return from4(&in4);
    }
    if (inet_pton(AF_INET6, text, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(port);
        return from6(&in6);
    }
    fprintf(stderr, "bad address in test: %s\n", text);
    return from4(&in4);
}

static addr_t ip(const char *text)
{
    return ip_port(text, 4000);
}

/* 10.a.b.c for n < 2^24: distinct for distinct n. */
static addr_t ip4n(uint32_t n)
{
    struct sockaddr_in in4;
    memset(&in4, 0, sizeof in4);
    in4.sin_family = AF_INET;
    in4.sin_addr.s_addr = htonl(0x0a000000u | (n & 0xffffffu));
    return from4(&in4);
}

static gmud_iplimit *make6(uint32_t max_per_addr, uint32_t rate, uint32_t burst,
                           uint32_t tracked, uint32_t prefix6)
{
    gmud_iplimit_config cfg = {max_per_addr, rate, burst, tracked, prefix6, NULL};
    gmud_error err = {0};
    gmud_iplimit *l = gmud_iplimit_create(&cfg, &err);
    if (l == NULL)
        fprintf(stderr, "create: %s\n", err.message);
    return l;
}

/* Every IPv6 address its own (/128), as most tests here want. */
static gmud_iplimit *make(uint32_t max_per_addr, uint32_t rate, uint32_t burst, uint32_t tracked)
{
    return make6(max_per_addr, rate, burst, tracked, 128);
}

/* admit's return code, with err's message copied into msg (if not NULL). */
static int admit(gmud_iplimit *l, addr_t a, uint64_t now, char *msg)
{
    gmud_error err = {0};
    int rc = gmud_iplimit_admit(l, SA(a), now, &err);
    if (msg != NULL)
        strcpy(msg, rc == 0 ? "" : err.message);
    if (rc != 0 && err.code != rc)
        fprintf(stderr, "admit: err.code %d but returned %d\n", err.code, rc);
    return rc;
}

static void release(gmud_iplimit *l, addr_t a)
{
    gmud_iplimit_release(l, SA(a));
}

/* ---- Configuration ------------------------------------------------------ */

static void test_config(void)
{
    gmud_iplimit_config d;
    gmud_iplimit_default_config(&d);
    CHECK_EQ_INT(d.max_per_addr, GMUD_IPLIMIT_MAX_PER_ADDR_DEFAULT);
    CHECK_EQ_INT(d.new_per_sec, GMUD_IPLIMIT_NEW_PER_SEC_DEFAULT);
    CHECK_EQ_INT(d.new_burst, GMUD_IPLIMIT_NEW_BURST_DEFAULT);
    CHECK_EQ_INT(d.max_tracked, GMUD_IPLIMIT_MAX_TRACKED_DEFAULT);
    CHECK_EQ_INT(d.max_per_addr, 64);
    CHECK_EQ_INT(d.new_per_sec, 20);
    CHECK_EQ_INT(d.new_burst, 40);
    CHECK_EQ_INT(d.max_tracked, 16384);

    static const struct {
        gmud_iplimit_config cfg;
        int rc;
        const char *says; /* part of the message, for errors */
    } cases[] = {
        {{64, 20, 40, 16384, 64, NULL}, 0, NULL},
        {{0, 0, 0, 1, 64, NULL}, 0, NULL},          /* both limits off */
        {{1, 0, 7, 1, 64, NULL}, 0, NULL},          /* a burst without a rate: ignored */
        {{0, 1, 1, 1, 64, NULL}, 0, NULL},
        {{UINT32_MAX, UINT32_MAX, UINT32_MAX, 2, 64, NULL}, 0, NULL},
        {{0, 0, 0, 0, 64, NULL}, GMUD_ERR_INVALID, "max_tracked 0"}, /* zeroed: refused */
        {{64, 20, 40, 0, 64, NULL}, GMUD_ERR_INVALID, "max_tracked 0"},
        {{64, 20, 40, GMUD_IPLIMIT_MAX_TRACKED_CEILING + 1, 64, NULL}, GMUD_ERR_INVALID, "max_tracked"},
        {{64, 20, 40, UINT32_MAX, 64, NULL}, GMUD_ERR_INVALID, "max_tracked"},
        {{64, 20, 0, 16, 64, NULL}, GMUD_ERR_INVALID, "new_burst"},
        {{0, 1, 0, 16, 64, NULL}, GMUD_ERR_INVALID, "new_burst"},
        {{64, 20, 40, 16, 0, NULL}, GMUD_ERR_INVALID, "prefix6 0 is not within 1..128"},
        {{64, 20, 40, 16, 129, NULL}, GMUD_ERR_INVALID, "prefix6 129"},
        {{64, 20, 40, 16, 1, NULL}, 0, NULL},
        {{64, 20, 40, 16, 128, NULL}, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_error err = {0};
        gmud_iplimit *l = gmud_iplimit_create(&cases[i].cfg, &err);
        if (cases[i].rc == 0) {
            CHECK(l != NULL);
            if (l != NULL)
                CHECK_EQ_INT(gmud_iplimit_tracked(l), 0);
        } else {
            CHECK(l == NULL);
            CHECK_EQ_INT(err.code, cases[i].rc);
            CHECK_CONTAINS(err.message, cases[i].says);
        }
        gmud_iplimit_destroy(l);
    }
    gmud_error err = {0};
    CHECK(gmud_iplimit_create(NULL, &err) == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    gmud_iplimit_config zeroed = {0, 0, 0, 0, 0, NULL};
    CHECK(gmud_iplimit_create(&zeroed, NULL) == NULL); /* err may be NULL */
    gmud_iplimit_destroy(NULL);
}

/* ---- Concurrent connections --------------------------------------------- */

static void test_concurrent(void)
{
    gmud_iplimit *l = make(3, 0, 0, 16);
    if (l == NULL)
        return;
    addr_t a = ip("10.0.0.1"), b = ip("10.0.0.2");
    char msg[160];
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(admit(l, a, 0, NULL), 0);
    CHECK_EQ_INT(admit(l, a, 0, msg), GMUD_ERR_ADDR_LIMITED);
    CHECK(strcmp(msg, "3 connections from 10.0.0.1 already (limit 3)") == 0);
    CHECK_EQ_INT(admit(l, a, 99999, NULL), GMUD_ERR_ADDR_LIMITED); /* time does not help */
    CHECK_EQ_INT(admit(l, b, 0, NULL), 0); /* another address is not affected */
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 2);

    /* Release one, and exactly one more is admitted. */
    gmud_iplimit_release(l, SA(a));
    CHECK_EQ_INT(admit(l, a, 1, NULL), 0);
    CHECK_EQ_INT(admit(l, a, 1, NULL), GMUD_ERR_ADDR_LIMITED);

    /* Releasing all, then more than were admitted: no underflow (a count
     * wrapped to 2^32-1 would refuse the next admit). With the rate off an
     * address without connections carries nothing and is forgotten. */
    for (int i = 0; i < 3; i++)
        gmud_iplimit_release(l, SA(a));
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 1);
    for (int i = 0; i < 5; i++)
        gmud_iplimit_release(l, SA(a));
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(admit(l, a, 2, NULL), 0);
    CHECK_EQ_INT(admit(l, a, 2, NULL), GMUD_ERR_ADDR_LIMITED);

    /* Releasing unknown addresses and other families changes nothing. */
    addr_t unknown = ip("192.0.2.9"), unknown6 = ip("2001:db8::9");
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, "/tmp/gmud.sock");
    gmud_iplimit_release(l, SA(unknown));
    gmud_iplimit_release(l, SA(unknown6));
    gmud_iplimit_release(l, (const struct sockaddr *)&un);
    gmud_iplimit_release(l, NULL);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 2);
    CHECK_EQ_INT(admit(l, a, 3, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(admit(l, b, 3, NULL), 0);
    CHECK_EQ_INT(admit(l, b, 3, NULL), 0);
    CHECK_EQ_INT(admit(l, b, 3, NULL), GMUD_ERR_ADDR_LIMITED);

    /* Other families are admitted and not tracked; no address is invalid. */
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(gmud_iplimit_admit(l, (const struct sockaddr *)&un, 3, NULL), 0);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 2);
    gmud_error err = {0};
    CHECK_EQ_INT(gmud_iplimit_admit(l, NULL, 3, &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    gmud_iplimit_destroy(l);
}

/* ---- New connections per second ----------------------------------------- */

static void test_rate(void)
{
    gmud_iplimit *l = make(0, 10, 5, 16);
    if (l == NULL)
        return;
    addr_t a = ip("10.0.0.1");
    char msg[160];
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(admit(l, a, 1000, NULL), 0);
    CHECK_EQ_INT(admit(l, a, 1000, msg), GMUD_ERR_ADDR_LIMITED); /* the burst + 1-th */
    CHECK(strcmp(msg, "new connections from 10.0.0.1 over 10 a second (burst 5)") == 0);
    CHECK_EQ_INT(admit(l, ip("10.0.0.2"), 1000, NULL), 0);
    CHECK_EQ_INT(admit(l, a, 1099, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(admit(l, a, 1100, NULL), 0); /* 1000 / rate ms later */
    CHECK_EQ_INT(admit(l, a, 1100, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(admit(l, a, 1199, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(admit(l, a, 1200, NULL), 0);
    /* A quiet second refills the whole burst, and no more. */
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(admit(l, a, 60000, NULL), 0);
    CHECK_EQ_INT(admit(l, a, 60000, NULL), GMUD_ERR_ADDR_LIMITED);
    gmud_iplimit_destroy(l);

    /* Both limits: a connection refused for concurrency takes no token. */
    l = make(2, 10, 5, 16);
    if (l == NULL)
        return;
    CHECK_EQ_INT(admit(l, a, 0, NULL), 0);
    CHECK_EQ_INT(admit(l, a, 0, NULL), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(admit(l, a, 0, msg), GMUD_ERR_ADDR_LIMITED);
    CHECK(strcmp(msg, "2 connections from 10.0.0.1 already (limit 2)") == 0);
    gmud_iplimit_release(l, SA(a));
    gmud_iplimit_release(l, SA(a));
    CHECK_EQ_INT(admit(l, a, 0, NULL), 0);
    CHECK_EQ_INT(admit(l, a, 0, NULL), 0);
    gmud_iplimit_release(l, SA(a));
    gmud_iplimit_release(l, SA(a));
    CHECK_EQ_INT(admit(l, a, 0, NULL), 0); /* the burst's fifth */
    CHECK_EQ_INT(admit(l, a, 0, msg), GMUD_ERR_ADDR_LIMITED);
    CHECK_CONTAINS(msg, "over 10 a second (burst 5)");
    /* Released, its bucket not full again: still remembered, still limited. */
    gmud_iplimit_release(l, SA(a));
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 1);
    CHECK_EQ_INT(admit(l, a, 99, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(admit(l, a, 100, NULL), 0);
    gmud_iplimit_destroy(l);
}

/* ---- Address families --------------------------------------------------- */

static void test_mapped(void)
{
    gmud_iplimit *l = make(2, 0, 0, 16);
    if (l == NULL)
        return;
    addr_t v4 = ip("10.1.2.3"), mapped = ip("::ffff:10.1.2.3");
    char msg[160];
    CHECK_EQ_INT(admit(l, v4, 0, NULL), 0);
    CHECK_EQ_INT(admit(l, mapped, 0, NULL), 0);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 1);
    CHECK_EQ_INT(admit(l, mapped, 0, msg), GMUD_ERR_ADDR_LIMITED);
    CHECK(strcmp(msg, "2 connections from 10.1.2.3 already (limit 2)") == 0); /* shown as IPv4 */
    CHECK_EQ_INT(admit(l, v4, 0, NULL), GMUD_ERR_ADDR_LIMITED);
    gmud_iplimit_release(l, SA(mapped)); /* released in the other form */
    CHECK_EQ_INT(admit(l, v4, 0, NULL), 0);
    CHECK_EQ_INT(admit(l, v4, 0, NULL), GMUD_ERR_ADDR_LIMITED);

    /* Only the mapped prefix is IPv4: the old "compatible" form ::a.b.c.d
     * and NAT64's 64:ff9b::a.b.c.d are other addresses. */
    CHECK_EQ_INT(admit(l, ip("::10.1.2.3"), 0, NULL), 0);
    CHECK_EQ_INT(admit(l, ip("64:ff9b::10.1.2.3"), 0, NULL), 0);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 3);
    gmud_iplimit_destroy(l);
}

static void test_v6(void)
{
    gmud_iplimit *l = make(1, 0, 0, 16);
    if (l == NULL)
        return;
    /* Pairs that differ in the last byte, the first byte, and one middle
     * bit: each address is its own. */
    static const char *const addrs[] = {"2001:db8::1", "2001:db8::2", "3001:db8::1",
                                        "2001:db8:0:0:8000::1"};
    char msg[160];
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ_INT(admit(l, ip(addrs[i]), 0, NULL), 0);
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ_INT(admit(l, ip(addrs[i]), 0, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 4);
    CHECK_EQ_INT(admit(l, ip("2001:db8::1"), 0, msg), GMUD_ERR_ADDR_LIMITED);
    CHECK(strcmp(msg, "1 connection from 2001:db8::1 already (limit 1)") == 0);
    release(l, ip("2001:db8::2"));
    CHECK_EQ_INT(admit(l, ip("2001:db8::1"), 0, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(admit(l, ip("2001:db8::2"), 0, NULL), 0);
    /* The port is not part of the address. */
    addr_t other_port = ip_port("3001:db8::1", 5555);
    CHECK_EQ_INT(admit(l, other_port, 0, NULL), GMUD_ERR_ADDR_LIMITED);
    gmud_iplimit_destroy(l);
}

/* IPv6 by prefix: addresses that agree in their first prefix6 bits are one
 * "address" (a host holds a whole /64); IPv4, mapped or not, stays per
 * address whatever the prefix; the refusal names the prefix. */
static void test_v6_prefix(void)
{
    static const struct {
        uint32_t prefix;
        const char *a, *b;
        int shared;
    } cases[] = {
        {64, "2001:db8:1:2::1", "2001:db8:1:2::2", 1},
        {64, "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", 1},
        {64, "2001:db8:1:2::1", "2001:db8:1:3::1", 0},
        {64, "2001:db8:1:2::1", "3001:db8:1:2::1", 0},
        {48, "2001:db8:1:2::1", "2001:db8:1:ffff::1", 1},
        {48, "2001:db8:1::1", "2001:db8:2::1", 0},
        {57, "2001:db8:1:2::", "2001:db8:1:7f::", 1},    /* differ past bit 57 */
        {57, "2001:db8:1:2::", "2001:db8:1:80::", 0},    /* bit 56 (the 57th) differs */
        {1, "2001::1", "7fff::1", 1},
        {1, "2001::1", "8001::1", 0},
        {128, "2001:db8::1", "2001:db8::2", 0},
        {1, "10.0.0.1", "10.0.0.2", 0},                  /* IPv4: per address */
        {1, "::ffff:10.0.0.1", "::ffff:10.0.0.2", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_iplimit *l = make6(1, 0, 0, 16, cases[i].prefix);
        if (l == NULL)
            continue;
        char msg[160];
        CHECK_EQ_INT(admit(l, ip(cases[i].a), 0, NULL), 0);
        int rc = admit(l, ip(cases[i].b), 0, msg);
        CHECK_EQ_INT(rc, cases[i].shared ? GMUD_ERR_ADDR_LIMITED : 0);
        if (rc != (cases[i].shared ? GMUD_ERR_ADDR_LIMITED : 0))
            fprintf(stderr, "  /%u: %s and %s\n", (unsigned)cases[i].prefix, cases[i].a,
                    cases[i].b);
        CHECK_EQ_INT(gmud_iplimit_tracked(l), cases[i].shared ? 1 : 2);
        gmud_iplimit_destroy(l);
    }
    gmud_iplimit *l = make6(1, 0, 0, 16, 64);
    if (l == NULL)
        return;
    char msg[160];
    CHECK_EQ_INT(admit(l, ip("2001:db8:1:2::1"), 0, NULL), 0);
    CHECK_EQ_INT(admit(l, ip("2001:db8:1:2::99"), 0, msg), GMUD_ERR_ADDR_LIMITED);
    CHECK(strcmp(msg, "1 connection from 2001:db8:1:2::/64 already (limit 1)") == 0);
    release(l, ip("2001:db8:1:2::42")); /* another host of the same /64 releases it */
    CHECK_EQ_INT(admit(l, ip("2001:db8:1:2::99"), 0, NULL), 0);
    gmud_iplimit_destroy(l);
    /* The default is /64. */
    gmud_iplimit_config cfg;
    gmud_iplimit_default_config(&cfg);
    CHECK_EQ_INT(cfg.prefix6, 64);
}

/* ---- Limits off --------------------------------------------------------- */

static void test_off(void)
{
    addr_t a = ip("10.0.0.1");
    gmud_iplimit *l = make(0, 0, 0, 1);
    if (l == NULL)
        return;
    int refused = 0;
    for (int i = 0; i < 100000; i++)
        refused += admit(l, a, 0, NULL) != 0;
    CHECK_EQ_INT(refused, 0);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 0);
    CHECK_EQ_INT(admit(l, ip("10.0.0.2"), 0, NULL), 0); /* a one-entry table is not full */
    gmud_iplimit_destroy(l);

    /* Only the rate on: concurrency is not counted, so 100000 connections
     * at one a millisecond (the rate) are all admitted and one entry does. */
    l = make(0, 1000, 1, 1);
    if (l == NULL)
        return;
    refused = 0;
    for (uint64_t t = 0; t < 100000; t++)
        refused += admit(l, a, t, NULL) != 0;
    CHECK_EQ_INT(refused, 0);
    CHECK_EQ_INT(admit(l, a, 99999, NULL), GMUD_ERR_ADDR_LIMITED); /* and the rate holds */
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 1);
    /* Nor does an open connection pin its address: once the bucket is full
     * again (1 ms after the last take) the one entry may go to another. */
    CHECK_EQ_INT(admit(l, ip("10.0.0.2"), 99999, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(admit(l, ip("10.0.0.2"), 100000, NULL), 0);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 1);
    gmud_iplimit_destroy(l);

    /* Only the concurrency limit on: 100000 at once, then refused. */
    l = make(100000, 0, 0, 1);
    if (l == NULL)
        return;
    refused = 0;
    for (int i = 0; i < 100000; i++)
        refused += admit(l, a, 0, NULL) != 0;
    CHECK_EQ_INT(refused, 0);
    CHECK_EQ_INT(admit(l, a, 0, NULL), GMUD_ERR_ADDR_LIMITED);
    gmud_iplimit_destroy(l);
}

/* ---- The table's bound -------------------------------------------------- */

static void test_table_bound(void)
{
    gmud_iplimit_config cfg;
    gmud_iplimit_default_config(&cfg); /* 64 per address, 20/s burst 40 */
    cfg.max_tracked = 64;
    char msg[160];

    /* 10000 addresses, one a millisecond, each closing at once. A bucket
     * that gave one token is full again 1000 / 20 = 50 ms later, so the
     * addresses of the last 50 ms are remembered, never more. */
    gmud_iplimit *l = gmud_iplimit_create(&cfg, NULL);
    CHECK(l != NULL);
    if (l == NULL)
        return;
    size_t peak = 0;
    int refused = 0;
    for (uint32_t i = 0; i < 10000; i++) {
        refused += admit(l, ip4n(i), 1000 + i, NULL) != 0;
        release(l, ip4n(i));
        size_t n = gmud_iplimit_tracked(l);
        peak = n > peak ? n : peak;
    }
    CHECK_EQ_INT(refused, 0);
    CHECK_EQ_INT(peak, 50);
    gmud_iplimit_destroy(l);

    /* The same flood within one millisecond: 64 are admitted, the rest
     * refused as the table is full, until the first buckets are full again. */
    l = gmud_iplimit_create(&cfg, NULL);
    CHECK(l != NULL);
    if (l == NULL)
        return;
    int admitted = 0;
    peak = 0;
    for (uint32_t i = 0; i < 10000; i++) {
        int rc = admit(l, ip4n(i), 1000, i == 9999 ? msg : NULL);
        admitted += rc == 0;
        if (rc == 0)
            release(l, ip4n(i));
        size_t n = gmud_iplimit_tracked(l);
        peak = n > peak ? n : peak;
    }
    CHECK_EQ_INT(admitted, 64);
    CHECK_EQ_INT(peak, 64);
    CHECK(strcmp(msg, "address table full: all 64 addresses hold connections or connected "
                      "recently; refusing 10.0.39.15") == 0);
    CHECK_EQ_INT(admit(l, ip("192.0.2.1"), 1049, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(admit(l, ip("2001:db8::1"), 1049, msg), GMUD_ERR_ADDR_LIMITED);
    CHECK_CONTAINS(msg, "refusing 2001:db8::/64"); /* the default config: by /64 */
    admitted = 0;
    for (uint32_t i = 10000; i < 20000; i++) { /* time has passed: fresh ones get in */
        admitted += admit(l, ip4n(i), 1050, NULL) == 0;
        release(l, ip4n(i));
        CHECK(gmud_iplimit_tracked(l) <= 64);
    }
    CHECK_EQ_INT(admitted, 64); /* the 64 due entries make room for 64 */
    gmud_iplimit_destroy(l);

    /* 64 addresses each holding a connection: nothing may be forgotten,
     * however long; the table refuses a 65th address (fail closed) while
     * the 64 may still open more. */
    l = gmud_iplimit_create(&cfg, NULL);
    CHECK(l != NULL);
    if (l == NULL)
        return;
    for (uint32_t i = 0; i < 64; i++)
        CHECK_EQ_INT(admit(l, ip4n(i), 0, NULL), 0);
    CHECK_EQ_INT(admit(l, ip("192.0.2.65"), 0, msg), GMUD_ERR_ADDR_LIMITED);
    CHECK_CONTAINS(msg, "address table full");
    CHECK_CONTAINS(msg, "192.0.2.65");
    CHECK_EQ_INT(admit(l, ip("192.0.2.65"), 3600 * 1000, msg), GMUD_ERR_ADDR_LIMITED);
    CHECK_CONTAINS(msg, "address table full");
    CHECK_EQ_INT(admit(l, ip4n(7), 3600 * 1000, NULL), 0);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 64);
    /* One address closes its only connection: its entry may go. */
    release(l, ip4n(3));
    CHECK_EQ_INT(admit(l, ip("192.0.2.65"), 3600 * 1000, NULL), 0);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 64);
    CHECK_EQ_INT(admit(l, ip("192.0.2.66"), 3600 * 1000, NULL), GMUD_ERR_ADDR_LIMITED);
    gmud_iplimit_destroy(l);

    /* Rate off: an address is forgotten with its last connection. */
    l = make(4, 0, 0, 64);
    if (l == NULL)
        return;
    for (uint32_t i = 0; i < 10000; i++) {
        CHECK_EQ_INT(admit(l, ip4n(i), 0, NULL), 0);
        CHECK_EQ_INT(gmud_iplimit_tracked(l), 1);
        release(l, ip4n(i));
    }
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 0);
    gmud_iplimit_destroy(l);
}

/* ---- Against a model ---------------------------------------------------- */

/* The limiter against a plain model of its rules: per address a count and
 * a bucket; an address is remembered while it holds a connection or its
 * bucket is not full; a new one is refused when max_tracked are remembered.
 * Random admits and releases over 300 addresses (IPv4 ones also in their
 * mapped form) and a 64-entry table churn the index (deletions by backward
 * shift) and the idle heap; any lost or duplicated entry shows as a
 * different answer. */
enum { M_ADDRS = 300, M_TRACKED = 64, M_MAX = 3, M_RATE = 3, M_BURST = 2 };

typedef struct model {
    uint32_t count[M_ADDRS];
    gmud_bucket bucket[M_ADDRS];
    int known[M_ADDRS];
} model;

static int m_remembered(model *m, int i, uint64_t now)
{
    if (!m->known[i])
        return 0;
    if (m->count[i] > 0)
        return 1;
    gmud_bucket b = m->bucket[i];
    gmud_bucket_take(&b, 0, now); /* refill only */
    return gmud_bucket_tokens(&b) < M_BURST;
}

static int m_admit(model *m, int i, uint64_t now)
{
    if (!m_remembered(m, i, now)) {
        int n = 0;
        for (int j = 0; j < M_ADDRS; j++)
            n += m_remembered(m, j, now);
        if (n >= M_TRACKED)
            return GMUD_ERR_ADDR_LIMITED;
        m->known[i] = 1;
        m->count[i] = 0;
        gmud_bucket_init(&m->bucket[i], M_RATE, M_BURST, now);
    }
    if (m->count[i] >= M_MAX || !gmud_bucket_take(&m->bucket[i], 1, now))
        return GMUD_ERR_ADDR_LIMITED;
    m->count[i]++;
    return 0;
}

static addr_t m_addr(int i, int form)
{
    char text[64];
    if (i < M_ADDRS / 2) /* IPv4, or the same address mapped */
        snprintf(text, sizeof text, form ? "::ffff:198.51.100.%d" : "198.51.100.%d", i);
    else
        snprintf(text, sizeof text, "2001:db8:%x::%x", i * 7919 % 65536, i);
    return ip(text);
}

static void test_model(void)
{
    gmud_iplimit *l = make(M_MAX, M_RATE, M_BURST, M_TRACKED);
    if (l == NULL)
        return;
    static model m;
    memset(&m, 0, sizeof m);
    uint64_t rng = 0x9e3779b97f4a7c15u, now = 5000;
    int mismatches = 0, over = 0, full = 0, conc = 0, rate = 0, admitted = 0;
    for (int step = 0; step < 200000; step++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        uint32_t r = (uint32_t)(rng >> 33);
        now += r % 4 == 0 ? r % 7 : 0; /* mostly the same ms, sometimes later */
        int i = (int)(r / 8 % M_ADDRS), form = (int)(r >> 20 & 1);
        /* Phases that open more than they close, and the other way. */
        unsigned admit_pct = step / 5000 % 2 ? 35 : 70;
        if (r / 16 % 100 < admit_pct) {
            char msg[160];
            int want = m_admit(&m, i, now), got = admit(l, m_addr(i, form), now, msg);
            mismatches += want != got;
            admitted += got == 0;
            full += strstr(msg, "table full") != NULL;
            conc += strstr(msg, "already") != NULL;
            rate += strstr(msg, "a second") != NULL;
        } else {
            while (m.count[i] == 0 && i < M_ADDRS - 1) /* close a connection that is open */
                i++;
            if (m.count[i] > 0)
                m.count[i]--;
            release(l, m_addr(i, form));
        }
        over += gmud_iplimit_tracked(l) > M_TRACKED;
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK_EQ_INT(over, 0);
    /* Every rule was exercised, and the model was not only refusing. */
    printf("model: %d admitted, refused: %d table full, %d concurrent, %d rate\n", admitted,
           full, conc, rate);
    CHECK(admitted > 10000);
    CHECK(full > 1000);
    CHECK(conc > 1000);
    CHECK(rate > 1000);
    gmud_iplimit_destroy(l);
}

/* Exempt addresses are admitted past every limit and never counted; the
 * others are limited as before; a bad list is refused at create. */
static void test_exempt(void)
{
    gmud_iplimit_config cfg = {1, 1, 1, 16, 64, "192.0.2.7, 10.1.0.0/16 [2001:db8::]/32"};
    gmud_error err = {0};
    gmud_iplimit *l = gmud_iplimit_create(&cfg, &err);
    CHECK(l != NULL);
    if (l == NULL)
        return;
    const char *exempt[] = {"192.0.2.7", "10.1.200.3", "::ffff:10.1.0.9", "2001:db8:1::5"};
    for (size_t i = 0; i < sizeof exempt / sizeof exempt[0]; i++)
        for (int k = 0; k < 5; k++)
            CHECK_EQ_INT(admit(l, ip(exempt[i]), 0, NULL), 0);
    CHECK_EQ_INT(gmud_iplimit_tracked(l), 0);
    addr_t ex = ip("192.0.2.7");
    gmud_iplimit_release(l, SA(ex)); /* nothing to release: no effect */
    CHECK_EQ_INT(admit(l, ip("192.0.2.8"), 0, NULL), 0);
    CHECK_EQ_INT(admit(l, ip("192.0.2.8"), 0, NULL), GMUD_ERR_ADDR_LIMITED);
    CHECK_EQ_INT(admit(l, ip("10.2.0.1"), 0, NULL), 0);
    CHECK_EQ_INT(admit(l, ip("10.2.0.1"), 0, NULL), GMUD_ERR_ADDR_LIMITED);
    gmud_iplimit_destroy(l);
    cfg.exempt = "10.0.0.0/33";
    CHECK(gmud_iplimit_create(&cfg, &err) == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    CHECK(strstr(err.message, "exempt addresses: prefix length 33 over 32") != NULL);
}

int main(void)
{
    test_config();
    test_exempt();
    test_concurrent();
    test_rate();
    test_mapped();
    test_v6();
    test_v6_prefix();
    test_off();
    test_table_bound();
    test_model();
    return check_report("test_iplimit");
}
