/* The read buffers: one per libuv loop, shared by every server and client
 * on it. */
#include "conn.h"
#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Read buffers: one per loop --------------------------------------- */

/* Every server and client on one loop reads into the same 64 KiB: libuv
 * reads one stream at a time, and a read's bytes are decoded (a partial
 * frame copied out) before the read callback returns. Without sharing, a
 * thousand clients on one loop held 64 MB of buffers, and RSS grew to it
 * as bursts touched their pages. Buffers are found by loop under a lock,
 * taken only when an rt is created or freed, never per read. */

static pthread_mutex_t readbufs_lock = PTHREAD_MUTEX_INITIALIZER;
static rt_readbuf *readbufs;

rt_readbuf *rt_readbuf_take(const uv_loop_t *loop)
{
    pthread_mutex_lock(&readbufs_lock);
    rt_readbuf *rb = readbufs;
    while (rb != NULL && rb->loop != loop)
        rb = rb->next;
    if (rb == NULL && (rb = malloc(sizeof *rb)) != NULL) {
        rb->loop = loop;
        rb->users = 0;
        rb->busy = 0;
        rb->next = readbufs;
        readbufs = rb;
    }
    if (rb != NULL)
        rb->users++;
    pthread_mutex_unlock(&readbufs_lock);
    return rb;
}

void rt_readbuf_give(rt_readbuf *rb)
{
    pthread_mutex_lock(&readbufs_lock);
    if (--rb->users == 0) {
        rt_readbuf **at = &readbufs;
        while (*at != rb)
            at = &(*at)->next;
        *at = rb->next;
        free(rb);
    }
    pthread_mutex_unlock(&readbufs_lock);
}

size_t rt_readbufs_live(void)
{
    size_t n = 0;
    pthread_mutex_lock(&readbufs_lock);
    for (const rt_readbuf *rb = readbufs; rb != NULL; rb = rb->next)
        n++;
    pthread_mutex_unlock(&readbufs_lock);
    return n;
}
