/* Internal: the header of a `length` or `gmud` frame, written in place.
 *
 * Shared by the encoder (frame.c) and the runtime's send path (src/rt/write.c),
 * which writes a frame straight into a connection's output buffer: one
 * place knows the header's bytes; and the room a frame has, which the
 * encoder, the runtime and the blocking client all check against. */
#ifndef GMUD_FRAME_HEAD_H
#define GMUD_FRAME_HEAD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gmud/frame.h"

/* The largest payload one frame of a checked cfg carries: N for fixed:N,
 * else max_message (gmud_frame_config_check holds fixed_size <= it). */
static inline size_t frame_room(const gmud_frame_config *cfg)
{
    return cfg->framing == GMUD_FRAMING_FIXED ? cfg->fixed_size : cfg->max_message;
}

/* Header bytes of framing: 2 for length, 6 for gmud, 0 for the others. */
static inline size_t frame_head_size(gmud_framing framing)
{
    return framing == GMUD_FRAMING_GMUD     ? 2 + GMUD_LABEL_SIZE
           : framing == GMUD_FRAMING_LENGTH ? 2
                                            : 0;
}

/* Writes the header of a len-byte payload at out (room for
 * frame_head_size(cfg->framing) bytes; len <= 65535, checked by the
 * caller) and returns its size. */
static inline size_t frame_head_put(const gmud_frame_config *cfg, uint8_t *out, size_t len)
{
    size_t at = 0;
    if (cfg->framing == GMUD_FRAMING_GMUD) {
        memcpy(out, cfg->label, GMUD_LABEL_SIZE);
        at = GMUD_LABEL_SIZE;
    } else if (cfg->framing != GMUD_FRAMING_LENGTH) {
        return 0;
    }
    out[at] = (uint8_t)(len & 0xff);
    out[at + 1] = (uint8_t)(len >> 8);
    return at + 2;
}

#endif
