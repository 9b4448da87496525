/* gmud/sync.h: a small blocking client, in the lecture's style.
 *
 * Plain sockets: connect, send one message, receive one message (with a
 * timeout), close. No libuv, no threads. TCP_NODELAY is on and each message
 * leaves in one send() of the whole frame. Once connected the socket is in
 * blocking mode: a receive waits inside recv() itself, with SO_RCVTIMEO
 * bounding the wait (set only when the timeout changes), rather than in
 * recv() (EAGAIN), poll() and recv() again: one system call per message
 * instead of three (bench/bench_rtt.c measures it).
 *
 * Threads: one gmud_sync belongs to one thread at a time. SIGPIPE is not
 * raised (MSG_NOSIGNAL): a closed peer gives an error return instead. A
 * signal that interrupts a wait does not end it early: the wait resumes for
 * the time that is left.
 *
 * Errors: functions return a negative gmud_err code and fill err (may be
 * NULL). System failures (resolve, connect, socket errors) are GMUD_ERR_IO
 * with the system's reason in err->message; a connect that takes too long
 * is GMUD_ERR_TIMEOUT; the peer closing the stream between frames is
 * GMUD_ERR_CLOSED, inside a frame GMUD_ERR_TRUNCATED.
 *
 * Sessions (docs/PROTOCOL.md, section 6; the lecture's approach 6), chosen
 * with gmud_sync_config.session:
 *
 *   off      no sessions: messages are the frames' payloads, as they are.
 *
 *   on       gmud's own. The server's first frame is the welcome, the JSON
 *            text {"session_id": <id>, "sequence_id": 0} with no header;
 *            every later frame, both ways, carries <SESSION_ID.8 LE>
 *            <SEQUENCE.8 LE> and then the application's bytes, inside the
 *            frame's payload (fixed:N: inside the N bytes, padding after
 *            the application's bytes). The client numbers what it sends
 *            0, 1, 2, ...; it accepts from the server 1, 2, ... (the welcome
 *            was the server's 0). gmud_sync_send() adds the header and
 *            gmud_sync_recv() checks it and hands out only what follows.
 *            Needs length, gmud or fixed framing (the header is binary).
 *
 *   lecture  the lecture's approach 6, byte for byte. The welcome as above;
 *            then the server's data packets are plain JSON (no header, not
 *            checked), and after each one gmud_sync_recv() answers by
 *            itself with {"session_id": <id>, "sequence_id": <data packets
 *            received so far>, "data": <reply_data>} exactly as Python's
 *            json.dumps writes it, before it returns the packet. The
 *            lecture's server checks every packet it gets against that
 *            count, so the application sends nothing: gmud_sync_send() is
 *            refused. Any framing but raw.
 *
 * In both session modes gmud_sync_create() reads the welcome before it
 * returns, within the connect's timeout, and frames must hold at least 50
 * bytes (the longest welcome). A first frame that is not a welcome (not a
 * JSON object, or a missing, mistyped or out-of-range field, or a
 * sequence_id other than 0) fails the open with GMUD_ERR_NOT_WELCOMED, the
 * message saying which, once the server has been sent a bare not_welcomed
 * error packet saying the same; an error packet ({"error": ...,
 * "code": ...}, the server refusing the connection) with the server's code
 * (GMUD_ERR_SERVER_FULL, GMUD_ERR_ADDR_LIMITED; GMUD_ERR_NOT_WELCOMED for a
 * name gmud does not know).
 *
 * Sticky session errors: a server packet that fails the session check in
 * mode on (GMUD_ERR_REPLAYED, GMUD_ERR_SKIPPED, GMUD_ERR_BAD_SESSION,
 * GMUD_ERR_MISSING_FIELD for one shorter than the header, ...) is not
 * delivered, is answered with one error packet naming the code (JSON,
 * {"error": ..., "code": ...}, inside the session), and leaves the session
 * broken: that gmud_sync_recv() and every later gmud_sync_send() and
 * gmud_sync_recv() return the same code and message, and send nothing
 * more. A framing error from the decoder is answered and sticks the same
 * way (the error packet is text in mode off). A send that fails in a
 * session mode breaks the session too: its sequence is not spent, but part
 * of the frame may be out. In mode lecture a reply that cannot be sent
 * does too, but the packet it answered is still delivered; the next call
 * reports the failure. Either way, close the connection. These decisions
 * are the protocol engine's, the same as the event runtime's.
 */
#ifndef GMUD_SYNC_H
#define GMUD_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "gmud/error.h"
#include "gmud/frame.h"
#include "gmud/json.h"
#include "gmud/session.h"
#include "gmud/tls.h"
#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gmud_sync gmud_sync;

typedef struct gmud_sync_config {
    gmud_frame_config frame;   /* the framing; the server's */
    gmud_session_mode session; /* GMUD_SESSION_OFF, _LECTURE or _ON.
                                  GMUD_SESSION_DEFAULT (on) */
    const char *reply_data;    /* lecture: the replies' data, UTF-8 text without NUL;
                                * NULL = GMUD_SESSION_LECTURE_DATA. Copied by open. */
    gmud_json_limits json;     /* bounds for parsing the welcome */
    gmud_tls_config tls;       /* off; with enabled, the handshake is done
                                  within the open's timeout (gmud/tls.h) */
} gmud_sync_config;

/* Fills cfg: gmud framing with its defaults, session mode on (as
 * gmud_session.h's GMUD_SESSION_DEFAULT says why), the lecture's reply
 * data, the default JSON limits. */
GMUD_API void gmud_sync_default_config(gmud_sync_config *cfg);

/* Connects to host:port (literal or name) and, in a session mode, reads the
 * welcome, all within timeout_ms (< 0: no timeout beyond the kernel's, and
 * the welcome is awaited for ever). cfg is copied. Returns the connection,
 * or NULL with err filled: GMUD_ERR_INVALID (bad config: a bad framing, an
 * unknown mode, a framing the mode cannot use, frames under 50 bytes with
 * sessions, bad JSON limits, reply_data that is not UTF-8, holds a NUL or
 * makes replies too long for a frame), GMUD_ERR_IO (unresolvable host,
 * refused), GMUD_ERR_TIMEOUT (connect or welcome), GMUD_ERR_NOMEM,
 * GMUD_ERR_NOT_WELCOMED (closed between frames before the welcome) or
 * GMUD_ERR_TRUNCATED (inside one), or a welcome error (above). */
GMUD_API gmud_sync *gmud_sync_create(const char *host, unsigned port, const gmud_sync_config *cfg,
                          int timeout_ms, gmud_error *err);

/* gmud_sync_create() with sessions off and the framing cfg (copied). */
GMUD_API gmud_sync *gmud_sync_connect(const char *host, unsigned port, const gmud_frame_config *cfg,
                             int timeout_ms, gmud_error *err);

/* Encodes data[0..len) (in mode on: behind the session header, with the next
 * sequence) as one frame and sends it whole, blocking until the kernel has
 * taken every byte. 0, GMUD_ERR_UNENCODABLE (nothing sent; in mode on the
 * limit is 16 bytes less than the framing's), GMUD_ERR_INVALID in mode
 * lecture, GMUD_ERR_IO on a socket error, or the sticky session error. */
GMUD_API int gmud_sync_send(gmud_sync *s, const void *data, size_t len, gmud_error *err);

/* Waits up to timeout_ms (< 0: forever; 0: only what has arrived) for one
 * whole message; a wait never ends before timeout_ms. Returns 1 with *msg
 * set (valid until the next call on s; for fixed framing the packet's bytes
 * to its end, padding included; in mode on without the session header), 0 on
 * timeout, or a negative code: a framing error from the decoder (the stream
 * is then out of sync: close), the code of the peer's error packet when
 * the peer closed after one (GMUD_ERR_CLOSED for a code gmud does not
 * know; the message quotes it), GMUD_ERR_CLOSED when the peer closed between
 * frames, GMUD_ERR_TRUNCATED inside one, GMUD_ERR_IO on a socket error, or a
 * sticky session error (above). In mode lecture the reply has been sent when
 * it returns 1. */
GMUD_API int gmud_sync_recv(gmud_sync *s, int timeout_ms, gmud_slice *msg, gmud_error *err);

/* The session id the server gave in its welcome; 0 in mode off. */
GMUD_API uint64_t gmud_sync_session_id(const gmud_sync *s);

/* The socket, for callers that poll() several things; do not read it, and
 * leave it in blocking mode. */
GMUD_API int gmud_sync_fd(const gmud_sync *s);

/* Closes and frees; NULL is a no-op. */
GMUD_API void gmud_sync_destroy(gmud_sync *s);

#ifdef __cplusplus
}
#endif

#endif
