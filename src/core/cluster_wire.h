/* Internal: the cluster bus envelope (docs/PROTOCOL.md section 10), bytes
 * in and out, with bounds and an optional HMAC-SHA256. Anyone who can
 * reach the cluster's Redis can publish on its bus, so the decoder takes
 * nothing on trust: structure, then the MAC, then the rules of each kind.
 * No socket, no clock: every function is pure and may be called from any
 * thread. */
#ifndef GMUD_CORE_CLUSTER_WIRE_H
#define GMUD_CORE_CLUSTER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "gmud/error.h"

enum {
    CW_NAME_MAX = 64,       /* bytes of a node or room name */
    CW_PAYLOAD_MAX = 65535, /* bytes of a message's payload */
    CW_MAC_LEN = 32,        /* bytes of HMAC-SHA256 */
    /* magic, kind, flags, node_len, incarnation, seq, version, room_len,
     * player, payload_len: everything but the names, payload and MAC */
    CW_FIXED = 4 + 1 + 1 + 1 + 8 + 8 + 8 + 1 + 8 + 4,
    /* the largest valid envelope, 65,739 bytes */
    CW_MAX = CW_FIXED + 2 * CW_NAME_MAX + CW_PAYLOAD_MAX + CW_MAC_LEN
};

enum { CW_FLAG_MAC = 0x01, CW_FLAG_JSON = 0x02 };

typedef enum cw_kind {
    CW_MESSAGE = 'M',   /* a player said something in a room */
    CW_JOIN = 'J',      /* a player is now in room */
    CW_LEAVE = 'L',     /* a player left room (the room it left) */
    CW_HEARTBEAT = 'H', /* payload: the sender's clock, 8 bytes */
    CW_BYE = 'B'        /* the node leaves the cluster */
} cw_kind;

/* One envelope. Decoded, node, room and payload point into the input (not
 * NUL-terminated). */
typedef struct cw_msg {
    cw_kind kind;
    int json;
    const char *node;
    size_t node_len;
    uint64_t incarnation, seq, version;
    const char *room;
    size_t room_len;
    uint64_t player;
    const uint8_t *payload;
    size_t payload_len;
} cw_msg;

typedef enum cw_refusal { CW_OK = 0, CW_MALFORMED, CW_OVERSIZE, CW_BAD_MAC } cw_refusal;

/* 1..64 bytes of [A-Za-z0-9._-]. */
int cw_name_ok(const char *s, size_t n);

/* The exact encoded size of m, with (mac != 0) or without the MAC; m is
 * not checked (cw_encode does that). */
size_t cw_size(const cw_msg *m, int mac);

/* Writes m to out[0..cap), with a MAC keyed by secret unless it is NULL.
 * The bytes written, or GMUD_ERR_INVALID (m breaks a rule decoding
 * enforces), GMUD_ERR_UNENCODABLE (cap too small). */
ptrdiff_t cw_encode(const cw_msg *m, const uint8_t *secret, size_t secret_len, uint8_t *out,
                    size_t cap, gmud_error *err);

/* Reads one envelope from in[0..n). CW_OVERSIZE for n over CW_MAX (nothing
 * read); CW_BAD_MAC with a secret when the MAC is missing or wrong, and
 * without one when a MAC is present; CW_MALFORMED for every other rule
 * broken. err says which, with the byte offset. Checked in this order:
 * the size, the structure (magic, flags, lengths, nothing after), the MAC,
 * then the rules of each kind. On CW_OK, *out's slices point into in;
 * otherwise *out is untouched. */
cw_refusal cw_decode(const uint8_t *in, size_t n, const uint8_t *secret, size_t secret_len,
                     cw_msg *out, gmud_error *err);

/* "ok", "malformed", "oversize", "bad_mac". */
const char *cw_refusal_name(cw_refusal r);

#endif
