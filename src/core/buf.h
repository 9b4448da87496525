/* Internal: a growable byte buffer, reused rather than reallocated: it
 * grows geometrically and keeps its capacity when emptied. */
#ifndef GMUD_BUF_H
#define GMUD_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct byte_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} byte_buf;

/* The slow path of buf_reserve. */
int buf_grow(byte_buf *b, size_t extra);

/* Makes room for extra more bytes after len. 0, or -1 on no memory (the
 * buffer is unchanged). Inline: it runs once per message sent. */
static inline int buf_reserve(byte_buf *b, size_t extra)
{
    return extra <= b->cap - b->len ? 0 : buf_grow(b, extra);
}

/* Appends p[0..n). 0, or -1 on no memory (nothing appended). */
int buf_append(byte_buf *b, const void *p, size_t n);

/* Frees the storage; the buffer is empty and usable again. */
void buf_free(byte_buf *b);

#endif
