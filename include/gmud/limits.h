/* gmud/limits.h: every limit gmud enforces, with its unit and default.
 *
 * Each default is bounded: no limit means "unlimited". Zero has one meaning
 * in every config and call: GMUD_OFF, "none". A limit, rate or timeout that
 * may be off is off at GMUD_OFF (the field's comment says so); one that may
 * not is refused at 0 by the code that takes it, so a zeroed struct can
 * never switch a limit off by accident. Zero never means "the default": the
 * defaults are the GMUD_*_DEFAULT values below, which the *_default_config()
 * functions fill in.
 */
#ifndef GMUD_LIMITS_H
#define GMUD_LIMITS_H

#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Zero: off, none, no timeout (where a field allows it). */
#define GMUD_OFF 0

/* Where a server listens and a client connects unless told: loopback, and
 * the lecture's port. */
#define GMUD_HOST_DEFAULT "127.0.0.1"

enum {
    GMUD_PORT_DEFAULT = 8222,

    /* Server: the listen() backlog; client: how long a connect may take
     * (ms). */
    GMUD_BACKLOG_DEFAULT = 511,
    GMUD_CONNECT_TIMEOUT_MS_DEFAULT = 10000,

    /* Largest payload any framing carries (bytes). length/gmud frames hold a
     * 16-bit unsigned length, so 65535 is also their hard ceiling. */
    GMUD_MAX_MESSAGE_DEFAULT = 65535,
    GMUD_MAX_MESSAGE_16BIT = 65535,

    /* Hard ceiling for max_message on framings without a length field
     * (raw, line, fixed): 16 MiB. Keeps one connection's buffer bounded even
     * if a caller asks for more. */
    GMUD_MAX_MESSAGE_CEILING = 16 * 1024 * 1024,

    /* fixed:N packet size (bytes), the lecture's 100. */
    GMUD_FIXED_SIZE_DEFAULT = 100,

    /* line framing delimiter length (bytes), at most. Default is "\n". */
    GMUD_DELIM_MAX = 8,

    /* gmud framing label length (bytes); the default label is "GMUD". */
    GMUD_LABEL_SIZE = 4,

    /* Untrusted JSON: nesting depth of arrays/objects (levels). */
    GMUD_JSON_MAX_DEPTH_DEFAULT = 32,

    /* Untrusted JSON: object keys in one document, all levels together. */
    GMUD_JSON_MAX_KEYS_DEFAULT = 1024,

    /* Untrusted JSON: one string or key, as encoded bytes between quotes.
     * As large as the default framing's largest payload, so that any object
     * a lecture-style peer can send in one frame is accepted; it bounds
     * strings when max_message is raised for line or fixed framing. */
    GMUD_JSON_MAX_STRING_DEFAULT = 65535,

    /* Runtime: outgoing bytes queued on one connection, at most (1 MiB).
     * Over it the connection is closed as a slow consumer. */
    GMUD_MAX_QUEUED_DEFAULT = 1024 * 1024,

    /* Runtime, server: bytes buffered by all connections together, at most
     * (256 MiB): queued output and partial input frames. Over it the
     * connections holding the most are closed as slow consumers. The bound
     * per connection alone lets 10,000 connections queue 1 MiB each, 10 GiB;
     * 256 MiB fits a small machine (a quarter of a 1 GiB VPS) and is 256
     * connections at their full queue, while an honest one (it reads)
     * holds a few KiB at a time. */
    GMUD_MAX_BUFFERED_TOTAL_DEFAULT = 256 * 1024 * 1024,

    /* Runtime: a server stops reading from a connection whose queued output
     * reaches the high-water mark (bytes, half of max queued) and resumes at
     * or below the low-water mark (bytes). */
    GMUD_READ_HIGH_WATER_DEFAULT = 512 * 1024,
    GMUD_READ_LOW_WATER_DEFAULT = 128 * 1024,

    /* Runtime: a frame that has begun must complete within (ms): slowloris. */
    GMUD_FRAME_TIMEOUT_MS_DEFAULT = 10000,

    /* Runtime: queued output that makes no progress for this long (ms) closes
     * the connection as a slow consumer (nginx's send_timeout): a peer that
     * stops reading is reclaimed even while its queue is under max_queued. */
    GMUD_SEND_TIMEOUT_MS_DEFAULT = 10000,

    /* Runtime: idle timeout (ms). The one limit that is off (0) by default:
     * the lecture's clients may stay silent for as long as they like. */
    GMUD_IDLE_TIMEOUT_MS_DEFAULT = 0,

    /* Runtime: a closing connection waits at most this long (ms) for its
     * output to drain and for the peer's end of stream. */
    GMUD_LINGER_MS_DEFAULT = 2000,

    /* Runtime: once a closing connection's FIN is out, how long (ms) at most
     * it waits for the peer's, reading (and dropping) what still arrives so
     * that the close does not become a reset. Bounded by linger too. */
    GMUD_FIN_WAIT_MS = 500,

    /* Runtime: period (ms) of the one timer that checks every connection's
     * timeouts. */
    GMUD_SWEEP_MS_DEFAULT = 250,

    /* Runtime: payloads that fail to parse on one connection before it is
     * closed ("too many bad messages"). */
    GMUD_MAX_BAD_MESSAGES_DEFAULT = 5,

    /* Runtime: concurrent connections one server accepts. */
    GMUD_MAX_CONNECTIONS_DEFAULT = 10000,

    /* Runtime: connections refused as "server full" that may be sending
     * their error packet at once; beyond this a refused connection is
     * closed without one, so a connection flood costs bounded memory. */
    GMUD_MAX_REFUSING = 64,

    /* Runtime: shutdown waits at most this long (ms) for queued output. */
    GMUD_SHUTDOWN_FLUSH_MS_DEFAULT = 5000,

    /* Runtime: the read buffer one server (or client) shares among all its
     * connections (bytes). */
    GMUD_READ_BUFFER_SIZE = 64 * 1024,

    /* Runtime: bytes handed to one write() call at most; a connection's
     * queued output goes out in such calls while the kernel takes them. */
    GMUD_WRITE_CHUNK = 64 * 1024,

    /* Sessions: a client whose server sends no welcome within this time
     * (ms) after the connect gives up (a server without sessions waits for
     * the client to speak first: without this both would wait for ever). */
    GMUD_WELCOME_TIMEOUT_MS_DEFAULT = 5000,

    /* Spam: per connection, messages received per second (messages/s), and
     * the burst a quiet connection may send at once (messages). */
    GMUD_RATE_MSGS_DEFAULT = 100,
    GMUD_RATE_MSGS_BURST_DEFAULT = 200,

    /* Spam: per connection, payload bytes received per second (256 KiB/s,
     * 2.6 KB a message at the default message rate) and the burst (1 MiB:
     * sixteen largest 16-bit-length messages at once). */
    GMUD_RATE_BYTES_DEFAULT = 256 * 1024,
    GMUD_RATE_BYTES_BURST_DEFAULT = 1024 * 1024,

    /* Spam: a connection over its rate limit for this long (ms) is closed. */
    GMUD_RATE_CLOSE_AFTER_MS_DEFAULT = 10000,

    /* Spam: at most one warning per this period (ms) to a connection over
     * its limit. */
    GMUD_RATE_WARN_MS = 1000,

    /* Spam: a connection with no refused message for this long (ms) is back
     * under its limit; its next refusal starts a new over-limit stretch. */
    GMUD_RATE_QUIET_MS = 1000
};

#ifdef __cplusplus
}
#endif

#endif
