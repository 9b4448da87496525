/* gmud/session.h: session ids and sequence numbers, the sans-I/O core.
 *
 * The lecture's answer to replay (approach 6): the server picks a session id
 * on accept and sends it in a welcome; each side numbers the packets it sends
 * and the receiver accepts only the next number of its own session. TCP
 * delivers in order, so any other number means replay or injection.
 *
 * Nothing here touches a socket or the clock. Session ids come from
 * getrandom(2), the one system call in this module.
 *
 * Threads: a gmud_session belongs to one thread at a time (its connection's);
 * every other function is pure or reentrant and may be called from any
 * thread.
 */
#ifndef GMUD_SESSION_H
#define GMUD_SESSION_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gmud/error.h"
#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Session ids are 1..2^53-1: exact as JSON numbers (IEEE doubles). 0 means
 * "no session yet". */
#define GMUD_SESSION_ID_MAX ((UINT64_C(1) << 53) - 1)

/* Sequences count from 0; UINT64_MAX is never a valid sequence: a counter
 * that reaches it is exhausted, and every later use is GMUD_ERR_SEQ_EXHAUSTED
 * rather than a silent wrap to 0 (which would make old packets new again). */
#define GMUD_SEQ_EXHAUSTED UINT64_MAX

/* The lecture's default reply data. */
#define GMUD_SESSION_LECTURE_DATA "this is test data"

/* One connection's session state: small and plain, to embed by value. */
typedef struct gmud_session {
    uint64_t id;        /* this session's id; 0 until welcomed */
    uint64_t send_seq;  /* sequence the next packet we send carries */
    uint64_t recv_seq;  /* sequence the next packet we accept must carry */
} gmud_session;

/* Draws a fresh session id into *out: 53 bits from getrandom(2), uniform in
 * 1..GMUD_SESSION_ID_MAX. Returns 0, or GMUD_ERR_IO if getrandom fails or
 * reads short (never a weaker fallback). */
GMUD_API int gmud_session_new_id(uint64_t *out, gmud_error *err);

/* No session yet: id 0, both sequences 0. Checks say GMUD_ERR_NOT_WELCOMED. */
GMUD_API void gmud_session_init(gmud_session *s);

/* Starts session id with the given next sequences to send and to accept. */
GMUD_API void gmud_session_start(gmud_session *s, uint64_t id, uint64_t next_send,
                                 uint64_t next_recv);

/* ---- Receiving: decide cheaply first, commit late --------------------- */

/* Checks a received packet's session id and sequence WITHOUT changing s.
 * Returns 0 if it is the next packet of this session, else (with expected
 * and got values in err):
 *   GMUD_ERR_NOT_WELCOMED   s has no session yet;
 *   GMUD_ERR_BAD_SESSION    got_session is not s's id;
 *   GMUD_ERR_SEQ_EXHAUSTED  s accepted sequence UINT64_MAX - 1 already;
 *   GMUD_ERR_REPLAYED       got_seq below the expected one: repeated or old;
 *   GMUD_ERR_SKIPPED        got_seq above it: packets skipped or injected.
 * Call it before any expensive work on the packet. */
GMUD_API int gmud_session_check_seq(const gmud_session *s, uint64_t got_session, uint64_t got_seq,
                           gmud_error *err);

/* Accepts seq: advances the expected sequence past it. Call only once the
 * packet has passed gmud_session_check_seq() AND every later check (parsing,
 * authentication), just before it is delivered, so a forged or malformed
 * packet never moves the window. Returns 0, or GMUD_ERR_INVALID (s unchanged)
 * if seq is not the expected one or the counter is exhausted. */
GMUD_API int gmud_session_commit_seq(gmud_session *s, uint64_t seq, gmud_error *err);

/* ---- Sending ---------------------------------------------------------- */

/* Takes the sequence for the next packet we send into *seq and advances the
 * counter. Returns 0, or GMUD_ERR_SEQ_EXHAUSTED (s unchanged). */
GMUD_API int gmud_session_next_send(gmud_session *s, uint64_t *seq, gmud_error *err);

/* ---- The lecture's approach 6 ----------------------------------------- */
/*
 * Server: draw an id, send gmud_session_lecture_welcome(id), then
 * gmud_session_start_lecture(). After each data packet it sends, read the
 * reply, gmud_session_lecture_check() it, then gmud_session_commit_seq() it.
 * Client: gmud_session_init(), then gmud_session_lecture_welcomed() on the
 * first packet; after each data packet, gmud_session_next_send() and send
 * gmud_session_lecture_reply() with that sequence.
 */

/* The lecture's counters once the welcome (its sequence 0) is out: the
 * replies count data packets, so both sides' next sequence is 1. */
GMUD_API void gmud_session_start_lecture(gmud_session *s, uint64_t id);

/* Writes the welcome exactly as Python's json.dumps does,
 * {"session_id": <id>, "sequence_id": 0}, into out[0..cap) (no NUL).
 * Returns bytes written, or GMUD_ERR_UNENCODABLE if it does not fit. */
GMUD_API ptrdiff_t gmud_session_lecture_welcome(uint64_t id, uint8_t *out, size_t cap,
                                                gmud_error *err);

/* Writes the client's reply exactly as Python's json.dumps does (ASCII only;
 * a non-ASCII character becomes a \u escape with four lowercase hex digits,
 * e.g. \u00e9 for an e acute), {"session_id": <id>, "sequence_id": <seq>,
 * "data": <data>}, into out[0..cap). data[0..len) is UTF-8 text, not
 * NUL-terminated; at most 6 * len + 80 bytes are needed. Returns bytes
 * written, or GMUD_ERR_BAD_UTF8 (data is not UTF-8), GMUD_ERR_UNENCODABLE
 * (data holds a NUL, which gmud's JSON reader refuses, or out is too small). */
GMUD_API ptrdiff_t gmud_session_lecture_reply(uint64_t id, uint64_t seq, const char *data,
                                              size_t len,
                                     uint8_t *out, size_t cap, gmud_error *err);

/* Checks a parsed reply (msg, borrowed) against s without changing s: the
 * integer fields session_id and sequence_id, as gmud_session_check_seq().
 * (jansson reads integers up to INT64_MAX; larger ones fail to parse.)
 * Other fields are the caller's. Returns 0 or GMUD_ERR_NOT_OBJECT,
 * GMUD_ERR_MISSING_FIELD,
 * GMUD_ERR_BAD_FIELD (not an integer, or negative), or a
 * gmud_session_check_seq() error. Commit with gmud_session_commit_seq(). */
GMUD_API int gmud_session_lecture_check(const gmud_session *s, const json_t *msg, gmud_error *err);

/* Client: takes a parsed welcome (msg, borrowed): an integer session_id in
 * 1..GMUD_SESSION_ID_MAX and sequence_id 0. On success starts s with
 * gmud_session_start_lecture() and returns 0; else s is unchanged and the
 * return is GMUD_ERR_NOT_OBJECT, GMUD_ERR_MISSING_FIELD, GMUD_ERR_BAD_FIELD,
 * or GMUD_ERR_SKIPPED
 * (sequence_id not 0). */
GMUD_API int gmud_session_lecture_welcomed(gmud_session *s, const json_t *msg, gmud_error *err);

/* ---- Modes ------------------------------------------------------------ */

/* off: no sessions. lecture: the lecture's approach 6, exactly (JSON fields,
 * the server checks the client's replies). on: gmud's own, both directions
 * checked, the fields in a binary header after the frame's length (see
 * docs/PROTOCOL.md, "Sessions"). */
typedef enum gmud_session_mode {
    GMUD_SESSION_OFF = 0,
    GMUD_SESSION_LECTURE = 1,
    GMUD_SESSION_ON = 2
} gmud_session_mode;

/* The default mode of every config, the library's and the programs'
 * alike: on, for the default gmud framing (and, in the runtime, JSON
 * payload). A session stops replayed and injected packets for 16 bytes a
 * packet and one welcome, and an honest peer never notices it, so it is
 * on unless asked off. Off is for plain frames: the lecture's approaches
 * 1 to 5 and the peers written that way. A config whose framing mode on
 * cannot use (raw, line) must say off too: it is refused, not changed
 * behind the caller's back. (gmud's programs pick off themselves for
 * those framings, and for text payload, when --session is not given.) */
#define GMUD_SESSION_DEFAULT GMUD_SESSION_ON

/* "off", "lecture", "on"; "unknown" out of range. */
GMUD_API const char *gmud_session_mode_name(gmud_session_mode mode);

/* Parses one of the names above into *out. 0, or GMUD_ERR_INVALID. */
GMUD_API int gmud_session_mode_parse(const char *name, gmud_session_mode *out, gmud_error *err);

/* ---- gmud's own mode: the session header ------------------------------ */
/*
 * In mode on every packet after the welcome begins with
 * <SESSION_ID.8 LE><SEQUENCE.8 LE>, then the application's bytes. The
 * welcome (the server's sequence 0) is the lecture's JSON text with no
 * header: the client does not know the id before it. The server's data
 * packets therefore carry sequences 1, 2, ...; the client's 0, 1, ....
 */
#define GMUD_SESSION_HEADER_SIZE 16

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define GMUD_SESSION_LE_HOST_ 1
#else
#define GMUD_SESSION_LE_HOST_ 0
#endif

/* The little-endian 64-bit value at p. On a little-endian host one 8-byte
 * load: GCC 12 at -O3 compiles the portable byte loop (and the unrolled
 * shifts) into 16 byte loads, which cost more than the rest of a session
 * check (measured in bench/bench_session). */
static inline uint64_t gmud_session_le64(const uint8_t *p)
{
    uint64_t v = 0;
#if GMUD_SESSION_LE_HOST_
    memcpy(&v, p, 8);
#else
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
#endif
    return v;
}

/* The receive fast path, inline: if p[0..len) starts with the header of
 * s's next packet, accepts it (as check + commit would) and returns 1; else
 * returns 0 and changes nothing: call gmud_session_header_check() for the
 * reason. */
static inline int gmud_session_header_accept(gmud_session *s, const uint8_t *p, size_t len)
{
    if (len < GMUD_SESSION_HEADER_SIZE || s->id == 0 || s->recv_seq == GMUD_SEQ_EXHAUSTED ||
        gmud_session_le64(p) != s->id || gmud_session_le64(p + 8) != s->recv_seq)
        return 0;
    s->recv_seq++;
    return 1;
}

/* Writes the header for (id, seq) into out[0..16). */
GMUD_API void gmud_session_header_put(uint8_t *out, uint64_t id, uint64_t seq);

/* Checks the header at the start of a received payload p[0..len) against s
 * WITHOUT changing s; on success *seq is its sequence (commit it with
 * gmud_session_commit_seq() just before delivering p + 16). Returns 0, or
 * GMUD_ERR_MISSING_FIELD (shorter than a header), or a
 * gmud_session_check_seq() error. */
GMUD_API int gmud_session_header_check(const gmud_session *s, const uint8_t *p, size_t len,
                              uint64_t *seq, gmud_error *err);

/* Server, mode on, once the welcome (its sequence 0) is queued: sends from
 * 1, accepts from 0. */
GMUD_API void gmud_session_start_on_server(gmud_session *s, uint64_t id);

/* Client: is msg (borrowed), the packet where the welcome should be, the
 * server's error packet {"error": <text>, "code": <name>} (server full, an
 * address limit; gmud_json_error_packet() says)? If so fills err ("the
 * server refused the connection: <name>: <text>") and returns the code
 * named, or GMUD_ERR_NOT_WELCOMED for a name gmud does not know; else
 * returns 0. */
GMUD_API int gmud_session_refusal(const json_t *msg, gmud_error *err);

/* Client: takes the welcome (msg, borrowed) for mode (GMUD_SESSION_ON or
 * GMUD_SESSION_LECTURE): the checks of gmud_session_lecture_welcomed(), then
 * starts s with that mode's counters (on: sends from 0, accepts from 1). */
GMUD_API int gmud_session_welcomed(gmud_session *s, gmud_session_mode mode, const json_t *msg,
                          gmud_error *err);

#ifdef __cplusplus
}
#endif

#endif
