/* Internal: the one bounds-checked place wire bytes are read and written.
 * Little-endian fields are assembled with explicit shifts, never by casting a
 * struct onto the bytes. A cursor that would run past its end sets `bad` and
 * stops moving, so callers may check once after a run of calls. */
#ifndef GMUD_WIRE_H
#define GMUD_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct gmud_wire {
    uint8_t *w;        /* NULL for a reader */
    const uint8_t *r;  /* NULL for a writer */
    size_t cap;
    size_t pos;
    int bad;
} gmud_wire;

static inline gmud_wire gmud_wire_writer(uint8_t *p, size_t cap)
{
    gmud_wire c = {p, NULL, cap, 0, 0};
    return c;
}

static inline gmud_wire gmud_wire_reader(const uint8_t *p, size_t len)
{
    gmud_wire c = {NULL, p, len, 0, 0};
    return c;
}

static inline int gmud_wire_room(gmud_wire *c, size_t n)
{
    if (c->bad || n > c->cap - c->pos) {
        c->bad = 1;
        return 0;
    }
    return 1;
}

static inline void gmud_wire_put(gmud_wire *c, const void *p, size_t n)
{
    if (n == 0 || !gmud_wire_room(c, n))
        return;
    memcpy(c->w + c->pos, p, n);
    c->pos += n;
}

static inline void gmud_wire_put_zeros(gmud_wire *c, size_t n)
{
    if (n == 0 || !gmud_wire_room(c, n))
        return;
    memset(c->w + c->pos, 0, n);
    c->pos += n;
}

static inline void gmud_wire_put_u16le(gmud_wire *c, uint16_t v)
{
    if (!gmud_wire_room(c, 2))
        return;
    c->w[c->pos] = (uint8_t)(v & 0xff);
    c->w[c->pos + 1] = (uint8_t)(v >> 8);
    c->pos += 2;
}

static inline uint16_t gmud_wire_get_u16le(gmud_wire *c)
{
    if (!gmud_wire_room(c, 2))
        return 0;
    uint16_t v = (uint16_t)(c->r[c->pos] | (unsigned)c->r[c->pos + 1] << 8);
    c->pos += 2;
    return v;
}

static inline void gmud_wire_skip(gmud_wire *c, size_t n)
{
    if (gmud_wire_room(c, n))
        c->pos += n;
}

#endif
