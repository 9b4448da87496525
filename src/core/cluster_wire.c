/* src/core/cluster_wire.c: the cluster bus envelope. See cluster_wire.h. */
#include "cluster_wire.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <limits.h>
#include <string.h>

static const uint8_t magic[4] = {'G', 'M', 'C', '1'};

static int name_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

int cw_name_ok(const char *s, size_t n)
{
    if (s == NULL || n == 0 || n > CW_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_byte((unsigned char)s[i]))
            return 0;
    return 1;
}

const char *cw_refusal_name(cw_refusal r)
{
    switch (r) {
    case CW_OK:
        return "ok";
    case CW_MALFORMED:
        return "malformed";
    case CW_OVERSIZE:
        return "oversize";
    case CW_BAD_MAC:
        return "bad_mac";
    }
    return "?";
}

size_t cw_size(const cw_msg *m, int mac)
{
    return CW_FIXED + m->node_len + m->room_len + m->payload_len + (mac ? CW_MAC_LEN : 0);
}

static int kind_known(int k)
{
    return k == CW_MESSAGE || k == CW_JOIN || k == CW_LEAVE || k == CW_HEARTBEAT || k == CW_BYE;
}

static int has_room(cw_kind k)
{
    return k == CW_MESSAGE || k == CW_JOIN || k == CW_LEAVE;
}

/* The rules past the structure, shared by encode and decode. off says where
 * each field starts, for the error's offset. */
typedef struct cw_offsets {
    size_t node, inc, seq, room, player, payload;
} cw_offsets;

static int bad_name(const char *what, const char *s, size_t n, size_t off, gmud_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!name_byte((unsigned char)s[i]))
            return gmud_error_set(err, GMUD_ERR_INVALID, off + i,
                                  "%s name byte %zu is 0x%02x, not a name byte", what, i,
                                  (unsigned char)s[i]);
    return 0;
}

static int semantics(const cw_msg *m, const cw_offsets *o, gmud_error *err)
{
    if (!kind_known(m->kind))
        return gmud_error_set(err, GMUD_ERR_INVALID, 4, "unknown envelope kind 0x%02x",
                              (unsigned)m->kind);
    if (m->json && m->kind != CW_MESSAGE)
        return gmud_error_set(err, GMUD_ERR_INVALID, 5, "the JSON flag on a '%c' envelope",
                              (char)m->kind);
    if (m->node_len == 0 || m->node_len > CW_NAME_MAX)
        return gmud_error_set(err, GMUD_ERR_INVALID, 6, "node name of %zu bytes, not 1 to %d",
                              m->node_len, CW_NAME_MAX);
    if (bad_name("node", m->node, m->node_len, o->node, err) != 0)
        return err->code;
    if (m->incarnation == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, o->inc, "incarnation 0");
    if (m->seq == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, o->seq, "sequence number 0");
    size_t room_min = has_room(m->kind) ? 1 : 0, room_max = has_room(m->kind) ? CW_NAME_MAX : 0;
    if (m->room_len < room_min || m->room_len > room_max)
        return gmud_error_set(err, GMUD_ERR_INVALID, o->room - 1,
                              "room name of %zu bytes in a '%c' envelope, not %zu to %zu",
                              m->room_len, (char)m->kind, room_min, room_max);
    if (bad_name("room", m->room, m->room_len, o->room, err) != 0)
        return err->code;
    if ((m->kind == CW_HEARTBEAT || m->kind == CW_BYE) && m->player != 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, o->player, "player %llu in a '%c' envelope",
                              (unsigned long long)m->player, (char)m->kind);
    size_t want = m->kind == CW_HEARTBEAT ? 8 : 0;
    if (m->kind == CW_MESSAGE ? m->payload_len > CW_PAYLOAD_MAX : m->payload_len != want)
        return gmud_error_set(err, GMUD_ERR_INVALID, o->payload - 4,
                              "payload of %zu bytes in a '%c' envelope", m->payload_len,
                              (char)m->kind);
    return 0;
}

static void offsets(size_t node_len, size_t room_len, cw_offsets *o)
{
    o->node = 7;
    o->inc = o->node + node_len;
    o->seq = o->inc + 8;
    o->room = o->seq + 16 + 1; /* past seq, version and room_len */
    o->player = o->room + room_len;
    o->payload = o->player + 8 + 4;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* 0 with the MAC in out, -1 if OpenSSL could not compute it (then out is
 * not to be trusted, and no envelope may pass on it). */
static int mac_of(const uint8_t *secret, size_t secret_len, const uint8_t *p, size_t n,
                  uint8_t out[CW_MAC_LEN])
{
    unsigned int len = CW_MAC_LEN;
    if (secret_len > INT_MAX)
        return -1;
    if (HMAC(EVP_sha256(), secret, (int)secret_len, p, n, out, &len) == NULL ||
        len != CW_MAC_LEN)
        return -1;
    return 0;
}

/* A length with no bytes behind it would be read through NULL. */
static int slices_ok(const cw_msg *m, gmud_error *err)
{
    if ((m->node_len > 0 && m->node == NULL) || (m->room_len > 0 && m->room == NULL) ||
        (m->payload_len > 0 && m->payload == NULL))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "a node, room or payload length without its bytes (NULL)");
    return 0;
}

ptrdiff_t cw_encode(const cw_msg *m, const uint8_t *secret, size_t secret_len, uint8_t *out,
                    size_t cap, gmud_error *err)
{
    cw_offsets o;
    offsets(m->node_len, m->room_len, &o);
    int rc = slices_ok(m, err);
    if (rc == 0)
        rc = semantics(m, &o, err);
    if (rc != 0)
        return rc;
    if (secret != NULL && secret_len > INT_MAX)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "a secret of %zu bytes, over %d",
                              secret_len, INT_MAX);
    size_t n = cw_size(m, secret != NULL);
    if (n > cap)
        return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0, "envelope of %zu bytes, room for %zu",
                              n, cap);
    memcpy(out, magic, 4);
    out[4] = (uint8_t)m->kind;
    out[5] = (uint8_t)((secret != NULL ? CW_FLAG_MAC : 0) | (m->json ? CW_FLAG_JSON : 0));
    out[6] = (uint8_t)m->node_len;
    memcpy(out + o.node, m->node, m->node_len);
    put64(out + o.inc, m->incarnation);
    put64(out + o.seq, m->seq);
    put64(out + o.seq + 8, m->version);
    out[o.room - 1] = (uint8_t)m->room_len;
    if (m->room_len > 0)
        memcpy(out + o.room, m->room, m->room_len);
    put64(out + o.player, m->player);
    for (int i = 0; i < 4; i++)
        out[o.payload - 4 + (size_t)i] = (uint8_t)(m->payload_len >> (8 * i));
    if (m->payload_len > 0)
        memcpy(out + o.payload, m->payload, m->payload_len);
    if (secret != NULL && mac_of(secret, secret_len, out, n - CW_MAC_LEN, out + n - CW_MAC_LEN) != 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, n - CW_MAC_LEN,
                              "HMAC-SHA256 failed in OpenSSL");
    return (ptrdiff_t)n;
}

/* The structure: lengths that place every field, and nothing after. */
static int structure(const uint8_t *in, size_t n, cw_msg *m, cw_offsets *o, int *mac,
                     gmud_error *err)
{
    if (n < 7)
        return gmud_error_set(err, GMUD_ERR_INVALID, n, "%zu bytes, shorter than any envelope",
                              n);
    if (memcmp(in, magic, 4) != 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "not an envelope: no \"GMC1\"");
    if (in[5] & ~(CW_FLAG_MAC | CW_FLAG_JSON))
        return gmud_error_set(err, GMUD_ERR_INVALID, 5, "unknown flags 0x%02x", in[5]);
    *mac = (in[5] & CW_FLAG_MAC) != 0;
    size_t node_len = in[6];
    if (n < 7 + node_len + 24 + 1)
        return gmud_error_set(err, GMUD_ERR_INVALID, n, "%zu bytes: ends before the room", n);
    size_t room_len = in[7 + node_len + 24];
    offsets(node_len, room_len, o);
    if (n < o->payload)
        return gmud_error_set(err, GMUD_ERR_INVALID, n, "%zu bytes: ends before the payload", n);
    size_t payload_len = 0;
    for (int i = 0; i < 4; i++)
        payload_len |= (size_t)in[o->payload - 4 + (size_t)i] << (8 * i);
    /* Bounded before it is added to anything: no sum below can wrap. */
    if (payload_len > CW_PAYLOAD_MAX)
        return gmud_error_set(err, GMUD_ERR_INVALID, o->payload - 4,
                              "payload length %zu, over %d", payload_len, CW_PAYLOAD_MAX);
    size_t want = o->payload + payload_len + (*mac ? CW_MAC_LEN : 0);
    if (n < want)
        return gmud_error_set(err, GMUD_ERR_INVALID, n,
                              "%zu bytes: ends inside the payload of %zu%s", n, payload_len,
                              *mac ? " and its MAC" : "");
    if (n > want)
        return gmud_error_set(err, GMUD_ERR_INVALID, want, "%zu bytes after the %s", n - want,
                              *mac ? "MAC" : "payload");
    *m = (cw_msg){.kind = (cw_kind)in[4], .json = (in[5] & CW_FLAG_JSON) != 0,
                  .node = (const char *)in + o->node, .node_len = node_len,
                  .incarnation = get64(in + o->inc), .seq = get64(in + o->seq),
                  .version = get64(in + o->seq + 8), .room = (const char *)in + o->room,
                  .room_len = room_len, .player = get64(in + o->player),
                  .payload = in + o->payload, .payload_len = payload_len};
    return 0;
}

cw_refusal cw_decode(const uint8_t *in, size_t n, const uint8_t *secret, size_t secret_len,
                     cw_msg *out, gmud_error *err)
{
    if (n > CW_MAX) {
        gmud_error_set(err, GMUD_ERR_TOO_LONG, 0, "%zu bytes, over the largest envelope (%d)", n,
                       CW_MAX);
        return CW_OVERSIZE;
    }
    cw_msg m;
    cw_offsets o;
    int mac = 0;
    if (structure(in, n, &m, &o, &mac, err) != 0)
        return CW_MALFORMED;
    if (secret == NULL && mac) {
        gmud_error_set(err, GMUD_ERR_INVALID, 5, "a MAC, and this cluster has no secret");
        return CW_BAD_MAC;
    }
    if (secret != NULL) {
        uint8_t want[CW_MAC_LEN];
        if (!mac) {
            gmud_error_set(err, GMUD_ERR_INVALID, 5, "no MAC, and this cluster has a secret");
            return CW_BAD_MAC;
        }
        if (mac_of(secret, secret_len, in, n - CW_MAC_LEN, want) != 0) {
            gmud_error_set(err, GMUD_ERR_INVALID, n - CW_MAC_LEN,
                           "the MAC cannot be checked: HMAC-SHA256 failed in OpenSSL");
            return CW_BAD_MAC;
        }
        if (CRYPTO_memcmp(want, in + n - CW_MAC_LEN, CW_MAC_LEN) != 0) {
            gmud_error_set(err, GMUD_ERR_INVALID, n - CW_MAC_LEN,
                           "the MAC does not match: forged, altered, or another secret");
            return CW_BAD_MAC;
        }
    }
    if (semantics(&m, &o, err) != 0)
        return CW_MALFORMED;
    *out = m;
    return CW_OK;
}
