/* The cluster bus envelope (src/core/cluster_wire.c, docs/PROTOCOL.md
 * section 10): the spec's example byte for byte, round trips of every kind
 * with and without a MAC, and every refusal with its own input: each rule,
 * every truncation, a flipped byte at every position under a MAC, the size
 * bound, the other secret. Every decode reads from a heap block of exactly
 * the input's size, so that ASan sees any read past the end. */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hex_util.h"
#include "cluster_wire.h"

/* The example of PROTOCOL.md 10.4, secret "example-secret" (also read from
 * the document itself, below). */
static const char EXAMPLE_HEX[] =
    "47 4d 43 31 4d 03 02 6e 31"
    " 08 07 06 05 04 03 02 01  05 00 00 00 00 00 00 00  03 00 00 00 00 00 00 00"
    " 06 74 61 76 65 72 6e  07 00 00 00 00 00 00 00  07 00 00 00 7b 22 61 22 3a 31 7d"
    " 98 fa 9d 49 41 32 d1 d7 ff 1b 1f 95 01 01 16 81"
    " b2 c0 ed bd 3d 86 0a 36 bf b8 84 15 d8 8d 98 f5";
static const uint8_t SECRET[] = "example-secret";
#define SECRET_LEN (sizeof SECRET - 1)
static const uint8_t OTHER[] = "another-secret";
#define OTHER_LEN (sizeof OTHER - 1)

/* The bytes of the `gmud-cluster-example` block of docs/PROTOCOL.md (the
 * leading hex pairs of each line; the rest of a line is its annotation). */
static size_t spec_example(uint8_t *out, size_t cap)
{
    const char *dir = getenv("GMUD_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/PROTOCOL.md", dir != NULL ? dir : ".");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return 0;
    }
    char line[512];
    int in = 0;
    size_t n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (!in) {
            in = strcmp(line, "```gmud-cluster-example") == 0;
            continue;
        }
        if (strcmp(line, "```") == 0)
            break;
        for (const char *p = line; n < cap; p += 3) {
            unsigned v;
            if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) ||
                (p[2] != ' ' && p[2] != '\0') || sscanf(p, "%2x", &v) != 1)
                break;
            out[n++] = (uint8_t)v;
            if (p[2] == '\0')
                break;
        }
    }
    fclose(f);
    return n;
}

static cw_msg example(void)
{
    return (cw_msg){.kind = CW_MESSAGE, .json = 1, .node = "n1", .node_len = 2,
                    .incarnation = 0x0102030405060708ULL, .seq = 5, .version = 3,
                    .room = "tavern", .room_len = 6, .player = 7,
                    .payload = (const uint8_t *)"{\"a\":1}", .payload_len = 7};
}

/* cw_decode on an exact-size heap copy of p[0..n). */
static cw_refusal decode(const uint8_t *p, size_t n, const uint8_t *secret, size_t secret_len,
                         gmud_error *err)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (n > 0)
        memcpy(copy, p, n);
    cw_msg d;
    memset(err, 0, sizeof *err);
    cw_refusal r = cw_decode(copy, n, secret, secret_len, &d, err);
    free(copy);
    return r;
}

/* Raw bytes of m with the given flags and nothing checked: the way to
 * write an envelope the encoder would refuse. Returns the length. */
static size_t raw(const cw_msg *m, int flags, uint8_t *out)
{
    size_t k = 0;
    memcpy(out, "GMC1", 4);
    k = 4;
    out[k++] = (uint8_t)m->kind;
    out[k++] = (uint8_t)flags;
    out[k++] = (uint8_t)m->node_len;
    memcpy(out + k, m->node, m->node_len);
    k += m->node_len;
    uint64_t v[3] = {m->incarnation, m->seq, m->version};
    for (int f = 0; f < 3; f++)
        for (int i = 0; i < 8; i++)
            out[k++] = (uint8_t)(v[f] >> (8 * i));
    out[k++] = (uint8_t)m->room_len;
    memcpy(out + k, m->room, m->room_len);
    k += m->room_len;
    for (int i = 0; i < 8; i++)
        out[k++] = (uint8_t)(m->player >> (8 * i));
    for (int i = 0; i < 4; i++)
        out[k++] = (uint8_t)(m->payload_len >> (8 * i));
    if (m->payload_len > 0)
        memcpy(out + k, m->payload, m->payload_len);
    return k + m->payload_len;
}

static void test_example(void)
{
    uint8_t want[128], out[128];
    size_t wn = test_hex(EXAMPLE_HEX, want, sizeof want, 0);
    CHECK_EQ_INT(wn, 91);
    /* The same bytes as the spec's example. */
    uint8_t doc[128];
    size_t dn = spec_example(doc, sizeof doc);
    CHECK_MEM(doc, dn, want, wn);
    cw_msg m = example();
    gmud_error err;
    ptrdiff_t n = cw_encode(&m, SECRET, SECRET_LEN, out, sizeof out, &err);
    CHECK_MEM(out, (size_t)(n > 0 ? n : 0), want, wn);
    CHECK_EQ_INT(cw_size(&m, 1), wn);
    /* Without the MAC: flags 0x02 and the same 59 bytes before it. */
    n = cw_encode(&m, NULL, 0, out, sizeof out, &err);
    CHECK_EQ_INT(n, wn - CW_MAC_LEN);
    CHECK_EQ_INT(out[5], 0x02);
    CHECK_MEM(out + 6, (size_t)(n > 6 ? n - 6 : 0), want + 6, wn - CW_MAC_LEN - 6);
    CHECK_EQ_INT(cw_size(&m, 0), wn - CW_MAC_LEN);

    cw_msg d;
    CHECK_EQ_INT(cw_decode(want, wn, SECRET, SECRET_LEN, &d, &err), CW_OK);
    CHECK(d.kind == CW_MESSAGE && d.json == 1);
    CHECK(d.incarnation == 0x0102030405060708ULL && d.seq == 5 && d.version == 3 &&
          d.player == 7);
    CHECK_MEM(d.node, d.node_len, "n1", 2);
    CHECK_MEM(d.room, d.room_len, "tavern", 6);
    CHECK_MEM(d.payload, d.payload_len, "{\"a\":1}", 7);
    /* The slices point into the input. */
    CHECK(d.node == (const char *)want + 7 && d.room == (const char *)want + 34 &&
          d.payload == want + 52);
}

static void round_trip(cw_msg m, const uint8_t *secret, size_t secret_len)
{
    uint8_t out[512];
    gmud_error err;
    ptrdiff_t n = cw_encode(&m, secret, secret_len, out, sizeof out, &err);
    CHECK(n > 0);
    if (n <= 0) {
        fprintf(stderr, "  '%c' not encoded: %s\n", m.kind, err.message);
        return;
    }
    CHECK_EQ_INT(n, cw_size(&m, secret != NULL));
    cw_msg d;
    CHECK_EQ_INT(cw_decode(out, (size_t)n, secret, secret_len, &d, &err), CW_OK);
    CHECK(d.kind == m.kind && d.json == (m.json != 0) && d.incarnation == m.incarnation &&
          d.seq == m.seq && d.version == m.version && d.player == m.player);
    CHECK_MEM(d.node, d.node_len, m.node, m.node_len);
    CHECK_MEM(d.room, d.room_len, m.room, m.room_len);
    CHECK_MEM(d.payload, d.payload_len, m.payload, m.payload_len);
    /* The other side of the MAC: no secret where one was used, and back. */
    CHECK_EQ_INT(decode(out, (size_t)n, secret ? NULL : SECRET, SECRET_LEN, &err), CW_BAD_MAC);
}

static void test_round_trips(void)
{
    const uint8_t *secrets[2] = {NULL, SECRET};
    for (int s = 0; s < 2; s++) {
        const uint8_t *k = secrets[s];
        cw_msg m = example();
        round_trip(m, k, SECRET_LEN);
        m.json = 0;
        m.payload = (const uint8_t *)"plain words";
        m.payload_len = 11;
        round_trip(m, k, SECRET_LEN);
        m.payload_len = 0; /* an empty message is a message */
        round_trip(m, k, SECRET_LEN);
        cw_msg j = {.kind = CW_JOIN, .node = "node-2", .node_len = 6, .incarnation = 1,
                    .seq = 1, .version = 9, .room = "x", .room_len = 1, .player = 3};
        round_trip(j, k, SECRET_LEN);
        j.kind = CW_LEAVE;
        j.version = 10;
        round_trip(j, k, SECRET_LEN);
        cw_msg h = {.kind = CW_HEARTBEAT, .node = "a", .node_len = 1, .incarnation = UINT64_MAX,
                    .seq = UINT64_MAX, .version = 4,
                    .payload = (const uint8_t *)"\x01\x02\x03\x04\x05\x06\x07\x08",
                    .payload_len = 8};
        round_trip(h, k, SECRET_LEN);
        cw_msg b = {.kind = CW_BYE, .node = "a-b.c_D9", .node_len = 8, .incarnation = 1,
                    .seq = 3, .version = 4};
        round_trip(b, k, SECRET_LEN);
    }
    /* An empty secret is a secret (HMAC takes any key length). */
    cw_msg b = {.kind = CW_BYE, .node = "a", .node_len = 1, .incarnation = 1, .seq = 1};
    round_trip(b, (const uint8_t *)"", 0);
}

/* One broken rule: decoding p[0..n) gives want, with a message containing
 * say (if not NULL) and, if at is not (size_t)-1, that offset. */
static void refused(const char *what, const uint8_t *p, size_t n, const uint8_t *secret,
                    cw_refusal want, const char *say, size_t at)
{
    gmud_error err;
    cw_refusal r = decode(p, n, secret, secret ? SECRET_LEN : 0, &err);
    if (r != want || (say != NULL && strstr(err.message, say) == NULL) ||
        (at != (size_t)-1 && err.offset != at))
        fprintf(stderr, "  %s: got %s at %zu (%s)\n", what, cw_refusal_name(r), err.offset,
                err.message);
    CHECK_EQ_INT(r, want);
    CHECK(err.message[0] != '\0');
    if (say != NULL)
        CHECK_CONTAINS(err.message, say);
    if (at != (size_t)-1)
        CHECK_EQ_INT(err.offset, at);
}

#define ANY ((size_t)-1)

static void test_structure_rules(void)
{
    uint8_t b[256];
    cw_msg m = example();
    size_t n = raw(&m, 0x02, b);
    refused("empty", b, 0, NULL, CW_MALFORMED, "shorter than any envelope", ANY);
    refused("6 bytes", b, 6, NULL, CW_MALFORMED, "shorter than any envelope", ANY);
    b[3] = '2';
    refused("magic", b, n, NULL, CW_MALFORMED, "GMC1", 0);
    b[3] = '1';
    for (int bit = 2; bit < 8; bit++) {
        b[5] = (uint8_t)(0x02 | 1 << bit);
        refused("unknown flag bit", b, n, NULL, CW_MALFORMED, "unknown flags", 5);
    }
    b[5] = 0x02;
    /* Trailing bytes, with and without a MAC. */
    memset(b + n, 0, 12);
    refused("trailing", b, n + 12, NULL, CW_MALFORMED, "12 bytes after the payload", n);
    uint8_t mb[256];
    cw_msg e = example();
    gmud_error err;
    size_t mn = (size_t)cw_encode(&e, SECRET, SECRET_LEN, mb, sizeof mb, &err);
    mb[mn] = 0;
    refused("trailing after MAC", mb, mn + 1, SECRET, CW_MALFORMED, "1 bytes after the MAC", mn);
    /* Every truncation, with and without a MAC, with and without a secret. */
    for (size_t k = 0; k < n; k++)
        refused("truncated", b, k, NULL, CW_MALFORMED, NULL, ANY);
    for (size_t k = 0; k < mn; k++) {
        refused("truncated, MAC", mb, k, SECRET, CW_MALFORMED, NULL, ANY);
        refused("truncated, MAC, no secret", mb, k, NULL, CW_MALFORMED, NULL, ANY);
    }
    /* A message payload length over 65,535 (the bytes are there). */
    uint8_t *big = calloc(1, CW_MAX + 64), *pl = calloc(1, CW_PAYLOAD_MAX + 1);
    m.payload = pl;
    m.payload_len = CW_PAYLOAD_MAX + 1;
    size_t bn = raw(&m, 0, big);
    refused("payload 65536", big, bn, NULL, CW_MALFORMED, "payload length 65536, over 65535",
            48);
    free(big);
    free(pl);
}

static void test_semantic_rules(void)
{
    uint8_t b[512];
    cw_msg m;
    char name65[65];
    memset(name65, 'r', sizeof name65);

    m = example();
    m.kind = (cw_kind)'Z';
    refused("unknown kind", b, raw(&m, 0x02, b), NULL, CW_MALFORMED, "kind 0x5a", 4);
    m.kind = (cw_kind)0;
    refused("kind 0", b, raw(&m, 0, b), NULL, CW_MALFORMED, "kind 0x00", 4);

    const cw_kind not_m[] = {CW_JOIN, CW_LEAVE, CW_HEARTBEAT, CW_BYE};
    for (size_t i = 0; i < 4; i++) {
        cw_msg k = {.kind = not_m[i], .node = "a", .node_len = 1, .incarnation = 1, .seq = 1,
                    .room = "x", .room_len = i < 2 ? 1 : 0, .player = i < 2 ? 3 : 0,
                    .payload = (const uint8_t *)"12345678", .payload_len = i == 2 ? 8 : 0};
        refused("json flag off a message", b, raw(&k, 0x02, b), NULL, CW_MALFORMED,
                "JSON flag", 5);
        CHECK_EQ_INT(decode(b, raw(&k, 0, b), NULL, 0, &(gmud_error){0}), CW_OK);
    }

    m = example();
    m.node_len = 0;
    refused("node length 0", b, raw(&m, 2, b), NULL, CW_MALFORMED, "node name of 0 bytes", 6);
    m.node = name65;
    m.node_len = 65;
    refused("node length 65", b, raw(&m, 2, b), NULL, CW_MALFORMED, "node name of 65 bytes", 6);
    m.node = "nod e";
    m.node_len = 5;
    refused("node byte", b, raw(&m, 2, b), NULL, CW_MALFORMED,
            "node name byte 3 is 0x20, not a name byte", 10);
    m.node = "n\xff";
    m.node_len = 2;
    refused("node byte 0xff", b, raw(&m, 2, b), NULL, CW_MALFORMED, "byte 1 is 0xff", 8);

    m = example();
    m.incarnation = 0;
    refused("incarnation 0", b, raw(&m, 2, b), NULL, CW_MALFORMED, "incarnation 0", 9);
    m = example();
    m.seq = 0;
    refused("seq 0", b, raw(&m, 2, b), NULL, CW_MALFORMED, "sequence number 0", 17);

    const cw_kind roomed[] = {CW_MESSAGE, CW_JOIN, CW_LEAVE};
    for (size_t i = 0; i < 3; i++) {
        m = example();
        m.kind = roomed[i];
        m.json = 0;
        m.payload_len = 0;
        m.room_len = 0;
        refused("room length 0", b, raw(&m, 0, b), NULL, CW_MALFORMED, "room name of 0 bytes",
                33);
        m.room = name65;
        m.room_len = 65;
        refused("room length 65", b, raw(&m, 0, b), NULL, CW_MALFORMED,
                "room name of 65 bytes", 33);
        m.room = "tav/rn";
        m.room_len = 6;
        refused("room byte", b, raw(&m, 0, b), NULL, CW_MALFORMED,
                "room name byte 3 is 0x2f", 37);
    }

    cw_msg h = {.kind = CW_HEARTBEAT, .node = "a", .node_len = 1, .incarnation = 1, .seq = 1,
                .payload = (const uint8_t *)"123456789", .payload_len = 8};
    size_t base = 7 + 1 + 24; /* h's room_len */
    h.room = "x";
    h.room_len = 1;
    refused("room on a heartbeat", b, raw(&h, 0, b), NULL, CW_MALFORMED,
            "room name of 1 bytes in a 'H'", base);
    h.room_len = 0;
    h.player = 1;
    refused("player on a heartbeat", b, raw(&h, 0, b), NULL, CW_MALFORMED, "player 1", base + 1);
    h.player = 0;
    h.payload_len = 7;
    refused("heartbeat of 7", b, raw(&h, 0, b), NULL, CW_MALFORMED, "payload of 7 bytes",
            base + 9);
    h.payload_len = 9;
    refused("heartbeat of 9", b, raw(&h, 0, b), NULL, CW_MALFORMED, "payload of 9 bytes", ANY);
    h.payload_len = 0;
    refused("heartbeat of 0", b, raw(&h, 0, b), NULL, CW_MALFORMED, "payload of 0 bytes", ANY);

    cw_msg y = {.kind = CW_BYE, .node = "a", .node_len = 1, .incarnation = 1, .seq = 1};
    y.room = "x";
    y.room_len = 1;
    refused("room on a bye", b, raw(&y, 0, b), NULL, CW_MALFORMED, "in a 'B'", base);
    y.room_len = 0;
    y.player = 5;
    refused("player on a bye", b, raw(&y, 0, b), NULL, CW_MALFORMED, "player 5", base + 1);
    y.player = 0;
    y.payload = (const uint8_t *)"x";
    y.payload_len = 1;
    refused("payload on a bye", b, raw(&y, 0, b), NULL, CW_MALFORMED, "payload of 1 bytes",
            ANY);

    const cw_kind jl[] = {CW_JOIN, CW_LEAVE};
    for (size_t i = 0; i < 2; i++) {
        cw_msg k = {.kind = jl[i], .node = "a", .node_len = 1, .incarnation = 1, .seq = 1,
                    .room = "x", .room_len = 1, .player = 3,
                    .payload = (const uint8_t *)"x", .payload_len = 1};
        refused("payload on a join or leave", b, raw(&k, 0, b), NULL, CW_MALFORMED,
                "payload of 1 bytes", ANY);
        k.payload_len = 0;
        k.player = 0; /* player 0 is a player on J/L: the rule is only for H and B */
        CHECK_EQ_INT(decode(b, raw(&k, 0, b), NULL, 0, &(gmud_error){0}), CW_OK);
    }
}

/* Structure first, then the MAC, then the kind's rules: a structurally
 * broken envelope is malformed whatever its MAC; a well-built one with a
 * semantic fault and a wrong MAC is bad_mac; with the right MAC, malformed. */
static void test_order(void)
{
    uint8_t b[256];
    cw_msg m = example();
    m.seq = 0;
    size_t n = raw(&m, 0x03, b);
    memset(b + n, 0xaa, CW_MAC_LEN);
    refused("semantic fault, wrong MAC", b, n + CW_MAC_LEN, SECRET, CW_BAD_MAC, "MAC", ANY);
    unsigned len = CW_MAC_LEN;
    HMAC(EVP_sha256(), SECRET, (int)SECRET_LEN, b, n, b + n, &len);
    refused("semantic fault, right MAC", b, n + CW_MAC_LEN, SECRET, CW_MALFORMED,
            "sequence number 0", 17);
    b[0] = 'X';
    refused("bad magic, with a secret", b, n + CW_MAC_LEN, SECRET, CW_MALFORMED, "GMC1", 0);
    /* Oversize is checked before anything is read. */
    uint8_t *big = calloc(1, CW_MAX + 1);
    refused("oversize garbage", big, CW_MAX + 1, SECRET, CW_OVERSIZE, "over the largest", 0);
    free(big);
}

static void test_mac(void)
{
    uint8_t good[128], bad[128];
    size_t n = test_hex(EXAMPLE_HEX, good, sizeof good, 0);
    gmud_error err;
    /* Every flipped byte fails. Outside the bytes that place the fields
     * (magic, flags, the three lengths) the structure holds and the MAC
     * is what refuses. */
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, good, n);
            bad[i] ^= (uint8_t)(1 << bit);
            cw_refusal r = decode(bad, n, SECRET, SECRET_LEN, &err);
            int placing = i < 4 || i == 5 || i == 6 || i == 33 || (i >= 48 && i < 52);
            CHECK(r != CW_OK);
            if (!placing)
                CHECK_EQ_INT(r, CW_BAD_MAC);
            if (r == CW_OK || (!placing && r != CW_BAD_MAC))
                fprintf(stderr, "  byte %zu bit %d: %s\n", i, bit, cw_refusal_name(r));
        }
    }
    refused("other secret", good, n, OTHER, CW_BAD_MAC, "does not match", n - CW_MAC_LEN);
    gmud_error e2;
    CHECK_EQ_INT(decode(good, n, OTHER, OTHER_LEN, &e2), CW_BAD_MAC);
    CHECK_EQ_INT(decode(good, n, SECRET, SECRET_LEN - 1, &e2), CW_BAD_MAC);
    refused("MAC flag, no secret", good, n, NULL, CW_BAD_MAC, "no secret", 5);
    /* The MAC flag cleared and the MAC cut off: well built, but unsigned. */
    memcpy(bad, good, n);
    bad[5] = 0x02;
    refused("no MAC, secret", bad, n - CW_MAC_LEN, SECRET, CW_BAD_MAC, "no MAC", 5);
    CHECK_EQ_INT(decode(bad, n - CW_MAC_LEN, NULL, 0, &e2), CW_OK);
}

static void test_bound(void)
{
    uint8_t *big = malloc(CW_MAX + 1), *payload = malloc(CW_PAYLOAD_MAX + 1);
    memset(payload, 0xee, CW_PAYLOAD_MAX + 1);
    char node[CW_NAME_MAX], room[CW_NAME_MAX];
    memset(node, 'n', sizeof node);
    memset(room, 'r', sizeof room);
    cw_msg m = {.kind = CW_MESSAGE, .node = node, .node_len = CW_NAME_MAX, .incarnation = 1,
                .seq = 1, .room = room, .room_len = CW_NAME_MAX, .player = 1,
                .payload = payload, .payload_len = CW_PAYLOAD_MAX};
    CHECK_EQ_INT(CW_MAX, 65739);
    CHECK_EQ_INT(cw_size(&m, 1), CW_MAX);
    gmud_error err;
    ptrdiff_t n = cw_encode(&m, SECRET, SECRET_LEN, big, CW_MAX, &err);
    CHECK_EQ_INT(n, CW_MAX);
    CHECK_EQ_INT(decode(big, CW_MAX, SECRET, SECRET_LEN, &err), CW_OK);
    big[CW_MAX] = 0;
    CHECK_EQ_INT(decode(big, CW_MAX + 1, SECRET, SECRET_LEN, &err), CW_OVERSIZE);
    CHECK_EQ_INT(err.code, GMUD_ERR_TOO_LONG);
    CHECK_CONTAINS(err.message, "65740 bytes");
    CHECK_EQ_INT(cw_encode(&m, SECRET, SECRET_LEN, big, CW_MAX - 1, &err), GMUD_ERR_UNENCODABLE);
    m.payload_len = CW_PAYLOAD_MAX + 1;
    CHECK_EQ_INT(cw_encode(&m, NULL, 0, big, CW_MAX + 1, &err), GMUD_ERR_INVALID);
    free(big);
    free(payload);
}

/* The encoder refuses what the decoder refuses, and a short buffer. */
static void test_encode_rules(void)
{
    uint8_t out[256];
    gmud_error err;
    char name65[65];
    memset(name65, 'a', sizeof name65);
    struct {
        const char *what;
        cw_msg m;
    } bad[] = {
        {"unknown kind", {.kind = (cw_kind)'Q', .node = "a", .node_len = 1, .incarnation = 1,
                          .seq = 1, .room = "x", .room_len = 1}},
        {"json join", {.kind = CW_JOIN, .json = 1, .node = "a", .node_len = 1, .incarnation = 1,
                       .seq = 1, .room = "x", .room_len = 1}},
        {"no node", {.kind = CW_BYE, .node = "", .node_len = 0, .incarnation = 1, .seq = 1}},
        {"node 65", {.kind = CW_BYE, .node = name65, .node_len = 65, .incarnation = 1, .seq = 1}},
        {"node byte", {.kind = CW_BYE, .node = "a:b", .node_len = 3, .incarnation = 1, .seq = 1}},
        {"incarnation 0", {.kind = CW_BYE, .node = "a", .node_len = 1, .seq = 1}},
        {"seq 0", {.kind = CW_BYE, .node = "a", .node_len = 1, .incarnation = 1}},
        {"no room", {.kind = CW_LEAVE, .node = "a", .node_len = 1, .incarnation = 1, .seq = 1}},
        {"room on a bye", {.kind = CW_BYE, .node = "a", .node_len = 1, .incarnation = 1,
                           .seq = 1, .room = "x", .room_len = 1}},
        {"player on a bye", {.kind = CW_BYE, .node = "a", .node_len = 1, .incarnation = 1,
                             .seq = 1, .player = 2}},
        {"short heartbeat", {.kind = CW_HEARTBEAT, .node = "a", .node_len = 1, .incarnation = 1,
                             .seq = 1, .payload = (const uint8_t *)"1234", .payload_len = 4}},
        {"payload on a join", {.kind = CW_JOIN, .node = "a", .node_len = 1, .incarnation = 1,
                               .seq = 1, .room = "x", .room_len = 1,
                               .payload = (const uint8_t *)"1", .payload_len = 1}},
        {"NULL node", {.kind = CW_BYE, .node = NULL, .node_len = 1, .incarnation = 1, .seq = 1}},
        {"NULL payload", {.kind = CW_MESSAGE, .node = "a", .node_len = 1, .incarnation = 1,
                          .seq = 1, .room = "x", .room_len = 1, .payload_len = 3}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        ptrdiff_t r = cw_encode(&bad[i].m, SECRET, SECRET_LEN, out, sizeof out, &err);
        if (r != GMUD_ERR_INVALID)
            fprintf(stderr, "  encode %s: %td\n", bad[i].what, r);
        CHECK_EQ_INT(r, GMUD_ERR_INVALID);
        CHECK(err.code == GMUD_ERR_INVALID && err.message[0] != '\0');
    }
    cw_msg m = example();
    size_t need = cw_size(&m, 1);
    for (size_t cap = 0; cap < need; cap++)
        CHECK_EQ_INT(cw_encode(&m, SECRET, SECRET_LEN, out, cap, &err), GMUD_ERR_UNENCODABLE);
    CHECK_EQ_INT(cw_encode(&m, SECRET, SECRET_LEN, out, need, &err), need);
}

static void test_names(void)
{
    char s[CW_NAME_MAX + 1];
    memset(s, 'z', sizeof s);
    CHECK(cw_name_ok(s, CW_NAME_MAX));
    CHECK(!cw_name_ok(s, CW_NAME_MAX + 1));
    CHECK(!cw_name_ok(s, 0));
    CHECK(!cw_name_ok(NULL, 1));
    int allowed = 0;
    for (int c = 0; c < 256; c++) {
        char one = (char)c;
        allowed += cw_name_ok(&one, 1);
    }
    CHECK_EQ_INT(allowed, 26 + 26 + 10 + 3);
    CHECK(cw_name_ok("A-z_0.9", 7));
    CHECK(strcmp(cw_refusal_name(CW_OK), "ok") == 0);
    CHECK(strcmp(cw_refusal_name(CW_MALFORMED), "malformed") == 0);
    CHECK(strcmp(cw_refusal_name(CW_OVERSIZE), "oversize") == 0);
    CHECK(strcmp(cw_refusal_name(CW_BAD_MAC), "bad_mac") == 0);
}

int main(void)
{
    test_example();
    test_round_trips();
    test_structure_rules();
    test_semantic_rules();
    test_order();
    test_mac();
    test_bound();
    test_encode_rules();
    test_names();
    return check_report("test_cluster_wire");
}
