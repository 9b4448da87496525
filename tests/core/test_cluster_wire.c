/* The cluster bus envelope (src/core/cluster_wire.c, PROTOCOL.md 10): one
 * envelope byte for byte, round trips of every kind with and without a
 * MAC, and every refusal: each rule, every truncation, a flipped byte at
 * every position under a MAC, the size bound. */
#include <stdlib.h>

#include "check.h"
#include "cluster_wire.h"

static const uint8_t key[] = "sixteen-byte-key!";
#define KEYLEN (sizeof key - 1)

static cw_msg message(void)
{
    return (cw_msg){.kind = CW_MESSAGE, .json = 1, .node = "n1", .node_len = 2,
                    .incarnation = 0x0102030405060708ULL, .seq = 5, .version = 3,
                    .room = "tavern", .room_len = 6, .player = 7,
                    .payload = (const uint8_t *)"{\"a\":1}", .payload_len = 7};
}

static void test_known_bytes(void)
{
    static const uint8_t want[] = {
        'G', 'M', 'C', '1', 'M', 0x02, 2, 'n', '1',
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* incarnation */
        5, 0, 0, 0, 0, 0, 0, 0,                         /* seq */
        3, 0, 0, 0, 0, 0, 0, 0,                         /* version */
        6, 't', 'a', 'v', 'e', 'r', 'n',
        7, 0, 0, 0, 0, 0, 0, 0,                         /* player */
        7, 0, 0, 0, '{', '"', 'a', '"', ':', '1', '}'};
    cw_msg m = message();
    uint8_t out[256];
    gmud_error err;
    ptrdiff_t n = cw_encode(&m, NULL, 0, out, sizeof out, &err);
    CHECK_MEM(out, (size_t)(n > 0 ? n : 0), want, sizeof want);
    CHECK_EQ_INT(cw_size(&m, 0), sizeof want);
    cw_msg d;
    CHECK_EQ_INT(cw_decode(want, sizeof want, NULL, 0, &d, &err), CW_OK);
    CHECK(d.kind == CW_MESSAGE && d.json && d.seq == 5 && d.version == 3 && d.player == 7);
    CHECK_MEM(d.node, d.node_len, "n1", 2);
    CHECK_MEM(d.room, d.room_len, "tavern", 6);
    CHECK_MEM(d.payload, d.payload_len, "{\"a\":1}", 7);
}

static void round_trip(cw_msg m, const uint8_t *secret)
{
    uint8_t out[512];
    gmud_error err;
    ptrdiff_t n = cw_encode(&m, secret, KEYLEN, out, sizeof out, &err);
    CHECK(n > 0);
    if (n <= 0)
        return;
    CHECK_EQ_INT(n, cw_size(&m, secret != NULL));
    cw_msg d;
    CHECK_EQ_INT(cw_decode(out, (size_t)n, secret, KEYLEN, &d, &err), CW_OK);
    CHECK(d.kind == m.kind && d.incarnation == m.incarnation && d.seq == m.seq &&
          d.version == m.version && d.player == m.player && d.json == m.json);
    CHECK_MEM(d.payload, d.payload_len, m.payload, m.payload_len);
    /* The other side's view of the MAC. */
    CHECK_EQ_INT(cw_decode(out, (size_t)n, secret ? NULL : key, KEYLEN, &d, &err), CW_BAD_MAC);
}

static void test_round_trips(void)
{
    cw_msg m = message();
    round_trip(m, NULL);
    round_trip(m, key);
    cw_msg j = {.kind = CW_JOIN, .node = "a", .node_len = 1, .incarnation = 1, .seq = 1,
                .version = 9, .room = "x", .room_len = 1, .player = 3};
    round_trip(j, NULL);
    j.kind = CW_LEAVE;
    round_trip(j, key);
    cw_msg h = {.kind = CW_HEARTBEAT, .node = "a", .node_len = 1, .incarnation = 1, .seq = 2,
                .payload = (const uint8_t *)"12345678", .payload_len = 8};
    round_trip(h, key);
    cw_msg b = {.kind = CW_BYE, .node = "a-b.c_d", .node_len = 7, .incarnation = 1, .seq = 3};
    round_trip(b, NULL);
}

/* Each rule broken by encoding a good envelope and changing one byte. */
static void expect_refused(const uint8_t *p, size_t n, cw_refusal want, const char *what)
{
    cw_msg d;
    gmud_error err = {0};
    cw_refusal r = cw_decode(p, n, NULL, 0, &d, &err);
    if (r != want)
        fprintf(stderr, "%s: got %s (%s)\n", what, cw_refusal_name(r), err.message);
    CHECK_EQ_INT(r, want);
    CHECK(r == CW_OK || err.message[0] != '\0');
}

static void test_rules(void)
{
    cw_msg m = message();
    uint8_t good[256], bad[260];
    gmud_error err;
    size_t n = (size_t)cw_encode(&m, NULL, 0, good, sizeof good, &err);
    struct {
        size_t at;
        uint8_t v;
        const char *what;
    } flips[] = {{0, 'X', "magic"},      {4, 'Z', "kind"},          {5, 0x04, "flag bit"},
                 {6, 0, "node length 0"}, {7, ' ', "node byte"},   {9, 0, "incarnation 0"},
                 {17, 0, "seq 0"},       {34, '/', "room byte"},    {33, 0, "room length 0"}};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(bad, good, n);
        bad[flips[i].at] = flips[i].v;
        if (flips[i].at == 9)
            memset(bad + 9, 0, 8);
        if (flips[i].at == 17)
            memset(bad + 17, 0, 8);
        expect_refused(bad, n, CW_MALFORMED, flips[i].what);
    }
    /* JSON flag on a join; a player on a heartbeat; wrong heartbeat payload. */
    cw_msg j = {.kind = CW_JOIN, .node = "a", .node_len = 1, .incarnation = 1, .seq = 1,
                .room = "x", .room_len = 1, .player = 3};
    CHECK_EQ_INT(cw_encode(&j, NULL, 0, bad, sizeof bad, &err), (int)(cw_size(&j, 0)));
    bad[5] = CW_FLAG_JSON;
    expect_refused(bad, cw_size(&j, 0), CW_MALFORMED, "json flag on a join");
    cw_msg h = {.kind = CW_HEARTBEAT, .node = "a", .node_len = 1, .incarnation = 1, .seq = 2,
                .player = 1, .payload = (const uint8_t *)"12345678", .payload_len = 8};
    CHECK_EQ_INT(cw_encode(&h, NULL, 0, bad, sizeof bad, &err), GMUD_ERR_INVALID);
    h.player = 0;
    h.payload_len = 7;
    CHECK_EQ_INT(cw_encode(&h, NULL, 0, bad, sizeof bad, &err), GMUD_ERR_INVALID);
    cw_msg nr = message();
    nr.room_len = 0;
    CHECK_EQ_INT(cw_encode(&nr, NULL, 0, bad, sizeof bad, &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(cw_encode(&m, NULL, 0, bad, 10, &err), GMUD_ERR_UNENCODABLE);
    /* Trailing bytes; every truncation. */
    memcpy(bad, good, n);
    bad[n] = 0;
    expect_refused(bad, n + 1, CW_MALFORMED, "a byte after");
    for (size_t k = 0; k < n; k++)
        expect_refused(good, k, CW_MALFORMED, "truncated");
    CHECK(cw_name_ok("a", 1) && !cw_name_ok("", 0) && !cw_name_ok("a b", 3));
}

static void test_mac(void)
{
    cw_msg m = message();
    uint8_t good[256], bad[256];
    gmud_error err;
    size_t n = (size_t)cw_encode(&m, key, KEYLEN, good, sizeof good, &err);
    cw_msg d;
    for (size_t i = 0; i < n; i++) {
        memcpy(bad, good, n);
        bad[i] ^= 0x01;
        cw_refusal r = cw_decode(bad, n, key, KEYLEN, &d, &err);
        CHECK(r != CW_OK);
        if (r == CW_OK)
            fprintf(stderr, "a flipped byte %zu passed\n", i);
    }
    static const uint8_t other[] = "another-key-of-16+";
    CHECK_EQ_INT(cw_decode(good, n, other, sizeof other - 1, &d, &err), CW_BAD_MAC);
    CHECK(strstr(err.message, "MAC") != NULL);
}

static void test_bound(void)
{
    uint8_t *big = malloc(CW_MAX + 1), *payload = calloc(1, CW_PAYLOAD_MAX);
    char name[CW_NAME_MAX];
    memset(name, 'n', sizeof name);
    cw_msg m = {.kind = CW_MESSAGE, .node = name, .node_len = CW_NAME_MAX, .incarnation = 1,
                .seq = 1, .room = name, .room_len = CW_NAME_MAX, .player = 1,
                .payload = payload, .payload_len = CW_PAYLOAD_MAX};
    gmud_error err;
    ptrdiff_t n = cw_encode(&m, key, KEYLEN, big, CW_MAX + 1, &err);
    CHECK_EQ_INT(n, CW_MAX);
    cw_msg d;
    CHECK_EQ_INT(cw_decode(big, (size_t)n, key, KEYLEN, &d, &err), CW_OK);
    CHECK_EQ_INT(cw_decode(big, CW_MAX + 1, key, KEYLEN, &d, &err), CW_OVERSIZE);
    m.payload_len = CW_PAYLOAD_MAX + 1;
    CHECK_EQ_INT(cw_encode(&m, NULL, 0, big, CW_MAX + 1, &err), GMUD_ERR_INVALID);
    free(big);
    free(payload);
}

int main(void)
{
    test_known_bytes();
    test_round_trips();
    test_rules();
    test_mac();
    test_bound();
    return check_report("test_cluster_wire");
}
