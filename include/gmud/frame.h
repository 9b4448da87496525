/* gmud/frame.h: the sans-I/O framing core.
 *
 * Bytes in, whole messages out. Nothing here touches a socket, a file or the
 * clock, so every transport and every test drives the same code.
 *
 * Framings (docs/PROTOCOL.md has each byte by byte):
 *   raw      no framing: each chunk given to the decoder is one message
 *            (the lecture's broken starting point, kept to show the problem)
 *   line     data, then a delimiter (default "\n", up to 8 bytes)
 *   fixed:N  exactly N bytes: data, then zero bytes up to N (default 100)
 *   length   <LENGTH.2 little-endian unsigned><DATA.LENGTH>
 *   gmud     <LABEL.4 default "GMUD"><LENGTH.2 little-endian><DATA.LENGTH>
 *
 * Threads: a decoder belongs to one thread at a time; the encode functions
 * and config helpers are pure and may be called from any thread.
 */
#ifndef GMUD_FRAME_H
#define GMUD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "gmud/error.h"
#include "gmud/limits.h"
#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gmud_framing {
    GMUD_FRAMING_RAW,
    GMUD_FRAMING_LINE,
    GMUD_FRAMING_FIXED,
    GMUD_FRAMING_LENGTH,
    GMUD_FRAMING_GMUD
} gmud_framing;

typedef struct gmud_frame_config {
    gmud_framing framing;
    size_t max_message;                /* payload bytes; 1..GMUD_MAX_MESSAGE_CEILING */
    size_t fixed_size;                 /* fixed: packet bytes, 1..max_message */
    uint8_t delim[GMUD_DELIM_MAX];     /* line: delimiter bytes */
    size_t delim_len;                  /* line: 1..GMUD_DELIM_MAX */
    uint8_t label[GMUD_LABEL_SIZE];    /* gmud: the 4-byte packet label */
} gmud_frame_config;

/* A view of bytes owned by someone else; see each function for how long it
 * stays valid. */
typedef struct gmud_slice {
    const uint8_t *data;
    size_t len;
} gmud_slice;

/* Fills cfg with the defaults for framing: max_message 65535, fixed size 100,
 * delimiter "\n", label "GMUD". */
GMUD_API void gmud_frame_default_config(gmud_frame_config *cfg, gmud_framing framing);

/* Checks a config; 0 if usable, else GMUD_ERR_INVALID with the reason. */
GMUD_API int gmud_frame_config_check(const gmud_frame_config *cfg, gmud_error *err);

/* Parses a framing name as the programs take it: "raw", "line", "fixed",
 * "fixed:N", "length" or "gmud". Resets cfg to that framing's defaults (then
 * fixed_size = N). 0 or GMUD_ERR_INVALID. */
GMUD_API int gmud_frame_config_parse(gmud_frame_config *cfg, const char *spec, gmud_error *err);

/* Sets the gmud label from exactly 4 bytes of text. 0 or GMUD_ERR_INVALID. */
GMUD_API int gmud_frame_config_set_label(gmud_frame_config *cfg, const char *label,
                                         gmud_error *err);

/* Sets the line delimiter from text with C escapes (\n \r \t \0 \\ \xHH),
 * e.g. "\\r\\n". 0 or GMUD_ERR_INVALID. */
GMUD_API int gmud_frame_config_set_delim(gmud_frame_config *cfg, const char *text, gmud_error *err);

/* The framing's name as gmud_frame_config_parse() takes it ("fixed" for
 * fixed:N). */
GMUD_API const char *gmud_framing_name(gmud_framing framing);

/* ---- Encoder ---------------------------------------------------------- */

/* Bytes one frame of a payload of len bytes takes on the wire, header and
 * delimiter or padding included. No check that len is encodable. */
GMUD_API size_t gmud_frame_encoded_size(const gmud_frame_config *cfg, size_t len);

/* Writes one whole frame (header, payload, delimiter or padding) into
 * out[0..cap). Returns the bytes written (> 0, or 0 only for an empty raw
 * message), or a negative code:
 *   GMUD_ERR_UNENCODABLE  payload over max_message, over 65535 for
 *                         length/gmud, over N for fixed:N, or holding the
 *                         delimiter for line framing;
 *   GMUD_ERR_INVALID      cap too small (nothing is written).
 * Frames appended one after another form a stream: one write can carry many. */
GMUD_API ptrdiff_t gmud_frame_encode(const gmud_frame_config *cfg, const void *payload, size_t len,
                            uint8_t *out, size_t cap, gmud_error *err);

/* As gmud_frame_encode, with prefix[0..plen) then payload[0..len) as the
 * frame's payload: one frame, no copy of the two parts into one buffer
 * first (the session header of docs/PROTOCOL.md, then the application's
 * bytes). The limits apply to plen + len. */
GMUD_API ptrdiff_t gmud_frame_encode_prefixed(const gmud_frame_config *cfg, const void *prefix,
                                     size_t plen, const void *payload, size_t len, uint8_t *out,
                                     size_t cap, gmud_error *err);

/* ---- Decoder ---------------------------------------------------------- */

typedef struct gmud_frame_decoder gmud_frame_decoder;

/* A decoder for cfg (copied). NULL with err filled on a bad config or no
 * memory. Memory: a small struct; a buffer for one partial frame is taken
 * only when a frame straddles two inputs, and never exceeds one frame. */
GMUD_API gmud_frame_decoder *gmud_frame_decoder_create(const gmud_frame_config *cfg,
                                                       gmud_error *err);

/* Frees the decoder; NULL is a no-op. */
GMUD_API void gmud_frame_decoder_destroy(gmud_frame_decoder *dec);

/* Feeds data[0..len). Returns:
 *   > 0  bytes of data consumed; one whole message is in *msg. Call again
 *        with the rest of data for further messages.
 *     0  all of data was absorbed (kept as a partial frame); more is needed.
 *   < 0  a framing error; err says which and why. Errors are sticky: the
 *        stream has lost sync, and every later call returns the same code
 *        until gmud_frame_decoder_reset().
 * msg->data points into data when the frame lay whole in it, else into the
 * decoder's own buffer; either way it is valid until the next call on dec,
 * or until the caller's data is gone. For fixed framing the message is the
 * whole N-byte packet, padding included (see gmud_frame_trim_padding()).
 * For raw framing the message is data, cut at max_message (the rest is the
 * next call's message). */
GMUD_API ptrdiff_t gmud_frame_decode(gmud_frame_decoder *dec, const uint8_t *data, size_t len,
                            gmud_slice *msg, gmud_error *err);

/* Call when the stream ends. 0 if it ended between frames, else
 * GMUD_ERR_TRUNCATED saying how many bytes were missing (or the sticky
 * error, if one is pending). */
GMUD_API int gmud_frame_decoder_finish(gmud_frame_decoder *dec, gmud_error *err);

/* Bytes of a partial frame held now (0 between frames). */
GMUD_API size_t gmud_frame_decoder_pending(const gmud_frame_decoder *dec);

/* Forgets any partial frame and sticky error: a fresh stream. */
GMUD_API void gmud_frame_decoder_reset(gmud_frame_decoder *dec);

/* Gives back the partial-frame buffer if no partial frame is held; for
 * servers with many idle connections. The next straddling frame takes one
 * again. */
GMUD_API void gmud_frame_decoder_shrink(gmud_frame_decoder *dec);

/* The message without the zero bytes that pad fixed-size packets. */
GMUD_API gmud_slice gmud_frame_trim_padding(gmud_slice msg);

#ifdef __cplusplus
}
#endif

#endif
