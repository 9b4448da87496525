/* Internal: the transport seam, the one place a connection's bytes pass
 * between its socket and its framing.
 *
 * Plain TCP has no seam (a NULL seam pointer): the socket's bytes go to the
 * decoder as they are read, and the encoder's frames are what is written,
 * with no copy. A seam (TLS, next) sits in between, sans I/O:
 *
 *   socket bytes in  -> input()  -> plaintext for the decoder
 *                                -> bytes owed to the peer (handshake,
 *                                   alerts, tickets), written at once
 *   queued frames    -> output() -> bytes for the socket
 *
 * The event runtime (src/rt/read.c, write.c) and the blocking client
 * (src/rt/sync.c) each call these in one place: read.c's bytes_in and
 * write.c's seal for the one, read_more and send_all for the other. The
 * event runtime hands output() everything queued during a loop turn at
 * once, so that many small frames share one record.
 *
 * A seam belongs to one connection and one thread. Its functions append
 * to the caller's buffers and return 0 or a negative gmud_err code with
 * err filled; after an error the connection is closed. */
#ifndef GMUD_CORE_SEAM_H
#define GMUD_CORE_SEAM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "gmud/error.h"

typedef struct seam seam;

typedef struct seam_ops {
    const char *name;
    /* Bytes read from the socket, in[0..n): appends plaintext to *plain and
     * whatever must go back to the peer to *wire. On an error *plain still
     * holds the plaintext of the records before the refused one: the peer
     * did send it, so the caller delivers it before closing. */
    int (*input)(seam *s, const uint8_t *in, size_t n, byte_buf *plain, byte_buf *wire,
                 gmud_error *err);
    /* Frames to send, p[0..n): appends their bytes for the socket to *wire. */
    int (*output)(seam *s, const uint8_t *p, size_t n, byte_buf *wire, gmud_error *err);
    /* The peer ended the stream: 0 if that is a clean end for this seam
     * (for TLS: after close_notify), else why it is not. */
    int (*end)(seam *s, gmud_error *err);
    void (*destroy)(seam *s);
    /* Optional (NULL: nothing to do, always ready). start: the connection
     * is open; appends what this side sends first (a client's hello).
     * ready: 1 once output() may be called (the handshake is done); until
     * then the caller keeps the frames. close: we end the stream; appends
     * the last bytes before our FIN (close_notify). */
    int (*start)(seam *s, byte_buf *wire, gmud_error *err);
    int (*ready)(const seam *s);
    int (*close)(seam *s, byte_buf *wire, gmud_error *err);
} seam_ops;


/* Implementations embed this first. */
struct seam {
    const seam_ops *ops;
};

/* 1 if frames may go through s now (none: always). */
static inline int seam_ready(const seam *s)
{
    return s == NULL || s->ops->ready == NULL || s->ops->ready(s);
}

/* Makes a connection's seam: server is 1 on the accepting side. NULL with
 * err filled if it cannot. */
typedef struct seam_factory {
    seam *(*create)(void *arg, int server, gmud_error *err);
    void *arg;
} seam_factory;

#endif
