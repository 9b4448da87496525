/* gmud/sync.h: a small blocking client, in the lecture's style.
 *
 * Plain sockets and poll(): connect, send one message, receive one message
 * (with a timeout), close. No libuv, no threads. TCP_NODELAY is on and each
 * message leaves in one send() of the whole frame.
 *
 * Threads: one gmud_sync belongs to one thread at a time. SIGPIPE is not
 * raised (MSG_NOSIGNAL): a closed peer gives an error return instead.
 *
 * Errors: functions return a negative gmud_err code and fill err (may be
 * NULL). System failures (resolve, connect, socket errors) are GMUD_ERR_IO
 * with the system's reason in err->message; a connect that takes too long
 * is GMUD_ERR_TIMEOUT; the peer closing the stream between frames is
 * GMUD_ERR_CLOSED, inside a frame GMUD_ERR_TRUNCATED.
 */
#ifndef GMUD_SYNC_H
#define GMUD_SYNC_H

#include <stddef.h>

#include "gmud/error.h"
#include "gmud/frame.h"

typedef struct gmud_sync gmud_sync;

/* Connects to host:port (literal or name) within timeout_ms (< 0: no
 * timeout beyond the kernel's). cfg is copied. Returns the connection, or
 * NULL with err filled (GMUD_ERR_INVALID: bad config; GMUD_ERR_IO:
 * unresolvable host, refused; GMUD_ERR_TIMEOUT; GMUD_ERR_NOMEM). */
gmud_sync *gmud_sync_connect(const char *host, unsigned port, const gmud_frame_config *cfg,
                             int timeout_ms, gmud_error *err);

/* Encodes data[0..len) as one frame and sends it whole (blocking until the
 * kernel has taken every byte). 0, GMUD_ERR_UNENCODABLE (nothing sent), or
 * GMUD_ERR_IO on a socket error. */
int gmud_sync_send(gmud_sync *s, const void *data, size_t len, gmud_error *err);

/* Waits up to timeout_ms (< 0: forever; 0: only what has arrived) for one
 * whole message. Returns 1 with *msg set (valid until the next call on s;
 * for fixed framing the whole packet, padding included), 0 on timeout, or a
 * negative code: a framing error from the decoder (the stream is then out of
 * sync: close), GMUD_ERR_CLOSED when the peer closed between frames,
 * GMUD_ERR_TRUNCATED inside one, GMUD_ERR_IO on a socket error. */
int gmud_sync_recv(gmud_sync *s, int timeout_ms, gmud_slice *msg, gmud_error *err);

/* The socket, for callers that poll() several things; do not read it. */
int gmud_sync_fd(const gmud_sync *s);

/* Closes and frees; NULL is a no-op. */
void gmud_sync_close(gmud_sync *s);

#endif
