/* programs/roomset.c: rooms and their members. See roomset.h.
 *
 * A chained hash table of rooms, grown by doubling when it holds as many
 * rooms as buckets (and never shrunk: its size follows the peak number of
 * rooms, at most one a connection). Each room keeps a doubly linked list
 * of the members embedded in the players' records.
 */
#include "roomset.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rand.h"
#include "rooms.h"
#include "siphash.h"

enum { RSET_BUCKETS_MIN = 64 };

struct rset_room {
    rset_room *hnext;
    uint64_t hash;
    rset_member *head, *tail;
    size_t members;
    char name[ROOM_NAME_MAX + 1];
};

struct rset {
    uint64_t key[2];
    rset_room **b;
    size_t nb, rooms;
};

rset *rset_create(void)
{
    rset *s = calloc(1, sizeof *s);
    uint8_t seed[16];
    gmud_error err;
    if (s == NULL || (s->b = calloc(RSET_BUCKETS_MIN, sizeof *s->b)) == NULL) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    if (rand_bytes(seed, sizeof seed, &err) != 0) {
        free(s->b);
        free(s);
        errno = EIO;
        return NULL;
    }
    sip_key(s->key, seed);
    s->nb = RSET_BUCKETS_MIN;
    return s;
}

void rset_destroy(rset *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nb; i++)
        for (rset_room *r = s->b[i], *next; r != NULL; r = next) {
            next = r->hnext;
            free(r);
        }
    free(s->b);
    free(s);
}

static uint64_t hash_of(const rset *s, const char *name)
{
    return sip13(s->key, name, strlen(name));
}

static rset_room *find(const rset *s, const char *name, uint64_t h)
{
    for (rset_room *r = s->b[h & (s->nb - 1)]; r != NULL; r = r->hnext)
        if (r->hash == h && strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

/* Doubles the buckets; on no memory the chains just grow longer. */
static void grow(rset *s)
{
    size_t nb = 2 * s->nb;
    rset_room **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < s->nb; i++)
        for (rset_room *r = s->b[i], *next; r != NULL; r = next) {
            next = r->hnext;
            r->hnext = b[r->hash & (nb - 1)];
            b[r->hash & (nb - 1)] = r;
        }
    free(s->b);
    s->b = b;
    s->nb = nb;
}

static rset_room *room_get(rset *s, const char *name)
{
    uint64_t h = hash_of(s, name);
    rset_room *r = find(s, name, h);
    if (r != NULL)
        return r;
    if ((r = calloc(1, sizeof *r)) == NULL)
        return NULL;
    r->hash = h;
    snprintf(r->name, sizeof r->name, "%s", name);
    if (s->rooms + 1 > s->nb)
        grow(s);
    r->hnext = s->b[h & (s->nb - 1)];
    s->b[h & (s->nb - 1)] = r;
    s->rooms++;
    return r;
}

static void room_free(rset *s, rset_room *r)
{
    rset_room **at = &s->b[r->hash & (s->nb - 1)];
    while (*at != r)
        at = &(*at)->hnext;
    *at = r->hnext;
    s->rooms--;
    free(r);
}

static void leave(rset *s, rset_member *m)
{
    rset_room *r = m->room;
    if (r == NULL)
        return;
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        r->head = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    else
        r->tail = m->prev;
    m->room = NULL;
    m->prev = m->next = NULL;
    if (--r->members == 0)
        room_free(s, r);
}

int rset_move(rset *s, rset_member *m, const char *room)
{
    if (room == NULL) {
        leave(s, m);
        return 0;
    }
    if (m->room != NULL && strcmp(m->room->name, room) == 0)
        return 0;
    rset_room *r = room_get(s, room);
    if (r == NULL)
        return -1;
    leave(s, m);
    m->room = r;
    m->prev = r->tail;
    m->next = NULL;
    if (r->tail != NULL)
        r->tail->next = m;
    else
        r->head = m;
    r->tail = m;
    r->members++;
    return 0;
}

const char *rset_name(const rset_member *m)
{
    return m->room != NULL ? m->room->name : "";
}

size_t rset_size(const rset *s, const char *room)
{
    const rset_room *r = find(s, room, hash_of(s, room));
    return r != NULL ? r->members : 0;
}

void rset_each(const rset *s, const char *room, void (*fn)(void *owner, void *user), void *user)
{
    const rset_room *r = find(s, room, hash_of(s, room));
    for (rset_member *m = r != NULL ? r->head : NULL, *next; m != NULL; m = next) {
        next = m->next;
        fn(m->owner, user);
    }
}
