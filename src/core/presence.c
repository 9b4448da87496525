/* src/core/presence.c: the cluster presence mirror. See presence.h.
 *
 * Each player is one entry on three lists: its hash bucket (by node and
 * id), its room's list and its node's list. Rooms are interned, counted,
 * and freed with their last player; nodes are few (a cluster's size) and
 * kept on one list. */
#include "presence.h"

#include <stdlib.h>
#include <string.h>

#include "cluster_wire.h"

typedef struct pnode pnode;
typedef struct proom proom;

typedef struct pent {
    pnode *node;
    proom *room;
    uint64_t player;
    uint64_t gen;                 /* pres_replace: seen in this snapshot */
    struct pent *hnext;           /* hash bucket */
    struct pent *rprev, *rnext;   /* the room's players */
    struct pent *nprev, *nnext;   /* the node's players */
} pent;

struct proom {
    char name[CW_NAME_MAX + 1];
    size_t players;
    pent *head, *tail;
    proom *hnext;
};

struct pnode {
    char name[CW_NAME_MAX + 1];
    uint64_t incarnation, version, seen_ms, gen;
    size_t players;
    pent *head, *tail;
    pnode *next;
};

struct pres {
    size_t max, count;
    pent **buckets;               /* players, by node and id */
    size_t nbuckets;
    proom **rooms;                /* rooms, by name */
    size_t nrooms_buckets, nrooms;
    pnode *nodes;
};

enum { BUCKETS_MIN = 64 };

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t ent_hash(const pnode *n, uint64_t player)
{
    return (size_t)mix(player ^ mix((uint64_t)(uintptr_t)n));
}

static size_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static int name_ok(const char *s)
{
    return s != NULL && cw_name_ok(s, strnlen(s, CW_NAME_MAX + 1));
}

pres *pres_create(size_t max_players)
{
    pres *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->max = max_players;
    p->nbuckets = p->nrooms_buckets = BUCKETS_MIN;
    p->buckets = calloc(p->nbuckets, sizeof *p->buckets);
    p->rooms = calloc(p->nrooms_buckets, sizeof *p->rooms);
    if (p->buckets == NULL || p->rooms == NULL) {
        pres_destroy(p);
        return NULL;
    }
    return p;
}

void pres_destroy(pres *p)
{
    if (p == NULL)
        return;
    for (pnode *n = p->nodes, *next; n != NULL; n = next) {
        next = n->next;
        for (pent *e = n->head, *en; e != NULL; e = en) {
            en = e->nnext;
            free(e);
        }
        free(n);
    }
    for (size_t i = 0; p->rooms != NULL && i < p->nrooms_buckets; i++)
        for (proom *r = p->rooms[i], *rn; r != NULL; r = rn) {
            rn = r->hnext;
            free(r);
        }
    free(p->buckets);
    free(p->rooms);
    free(p);
}

/* ---- Nodes ------------------------------------------------------------- */

static pnode *node_find(const pres *p, const char *name)
{
    for (pnode *n = p->nodes; n != NULL; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static pnode *node_add(pres *p, const char *name)
{
    pnode *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    strcpy(n->name, name); /* checked: at most CW_NAME_MAX */
    n->next = p->nodes;
    p->nodes = n;
    return n;
}

int pres_node_get(const pres *p, const char *node, pres_node_info *out)
{
    const pnode *n = node != NULL ? node_find(p, node) : NULL;
    if (n == NULL)
        return 0;
    if (out != NULL)
        *out = (pres_node_info){n->incarnation, n->version, n->seen_ms, n->players};
    return 1;
}

/* ---- Rooms ------------------------------------------------------------- */

static proom *room_find(const pres *p, const char *name)
{
    for (proom *r = p->rooms[str_hash(name) & (p->nrooms_buckets - 1)]; r != NULL; r = r->hnext)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

static void rooms_grow(pres *p)
{
    size_t nb = p->nrooms_buckets * 2;
    proom **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < p->nrooms_buckets; i++)
        for (proom *r = p->rooms[i], *rn; r != NULL; r = rn) {
            rn = r->hnext;
            size_t h = str_hash(r->name) & (nb - 1);
            r->hnext = b[h];
            b[h] = r;
        }
    free(p->rooms);
    p->rooms = b;
    p->nrooms_buckets = nb;
}

static proom *room_get(pres *p, const char *name)
{
    proom *r = room_find(p, name);
    if (r != NULL)
        return r;
    if (p->nrooms >= p->nrooms_buckets)
        rooms_grow(p);
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    strcpy(r->name, name);
    size_t h = str_hash(name) & (p->nrooms_buckets - 1);
    r->hnext = p->rooms[h];
    p->rooms[h] = r;
    p->nrooms++;
    return r;
}

static void room_put(pres *p, proom *r)
{
    if (r->players > 0)
        return;
    proom **at = &p->rooms[str_hash(r->name) & (p->nrooms_buckets - 1)];
    while (*at != r)
        at = &(*at)->hnext;
    *at = r->hnext;
    p->nrooms--;
    free(r);
}

static void room_link(proom *r, pent *e)
{
    e->room = r;
    e->rnext = NULL;
    e->rprev = r->tail;
    if (r->tail != NULL)
        r->tail->rnext = e;
    else
        r->head = e;
    r->tail = e;
    r->players++;
}

static void room_unlink(pent *e)
{
    proom *r = e->room;
    if (e->rprev != NULL)
        e->rprev->rnext = e->rnext;
    else
        r->head = e->rnext;
    if (e->rnext != NULL)
        e->rnext->rprev = e->rprev;
    else
        r->tail = e->rprev;
    r->players--;
}

/* ---- Entries ------------------------------------------------------------- */

static pent **ent_slot(const pres *p, const pnode *n, uint64_t player)
{
    pent **at = &p->buckets[ent_hash(n, player) & (p->nbuckets - 1)];
    while (*at != NULL && ((*at)->node != n || (*at)->player != player))
        at = &(*at)->hnext;
    return at;
}

static void buckets_grow(pres *p)
{
    size_t nb = p->nbuckets * 2;
    pent **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < p->nbuckets; i++)
        for (pent *e = p->buckets[i], *en; e != NULL; e = en) {
            en = e->hnext;
            size_t h = ent_hash(e->node, e->player) & (nb - 1);
            e->hnext = b[h];
            b[h] = e;
        }
    free(p->buckets);
    p->buckets = b;
    p->nbuckets = nb;
}

static void report(pres_change_fn fn, void *user, const pent *e, int joined)
{
    if (fn == NULL)
        return;
    pres_player pl = {e->node->name, e->player, e->room->name};
    fn(&pl, joined, user);
}

/* A new entry; PRES_FULL or PRES_APPLIED. */
static int ent_add(pres *p, pnode *n, uint64_t player, const char *room, pres_change_fn fn,
                   void *user)
{
    if (p->count >= p->max)
        return PRES_FULL;
    if (p->count >= p->nbuckets)
        buckets_grow(p);
    pent *e = calloc(1, sizeof *e);
    proom *r = e != NULL ? room_get(p, room) : NULL;
    if (r == NULL) {
        free(e);
        return PRES_FULL;
    }
    e->node = n;
    e->player = player;
    e->gen = n->gen;
    pent **slot = &p->buckets[ent_hash(n, player) & (p->nbuckets - 1)];
    e->hnext = *slot;
    *slot = e;
    room_link(r, e);
    e->nprev = n->tail;
    if (n->tail != NULL)
        n->tail->nnext = e;
    else
        n->head = e;
    n->tail = e;
    n->players++;
    p->count++;
    report(fn, user, e, 1);
    return PRES_APPLIED;
}

static void ent_remove(pres *p, pent *e, pres_change_fn fn, void *user)
{
    report(fn, user, e, 0);
    pnode *n = e->node;
    *ent_slot(p, n, e->player) = e->hnext;
    proom *r = e->room;
    room_unlink(e);
    room_put(p, r);
    if (e->nprev != NULL)
        e->nprev->nnext = e->nnext;
    else
        n->head = e->nnext;
    if (e->nnext != NULL)
        e->nnext->nprev = e->nprev;
    else
        n->tail = e->nprev;
    n->players--;
    p->count--;
    free(e);
}

/* Moves e to room: a leave, then a join. PRES_FULL if the room cannot be
 * made (e is then gone). */
static int ent_move(pres *p, pent *e, const char *room, pres_change_fn fn, void *user)
{
    if (strcmp(e->room->name, room) == 0)
        return PRES_APPLIED;
    report(fn, user, e, 0);
    proom *old = e->room;
    room_unlink(e);
    proom *r = room_get(p, room);
    if (r == NULL) {
        room_link(old, e);
        ent_remove(p, e, NULL, NULL);
        return PRES_FULL;
    }
    room_put(p, old);
    room_link(r, e);
    report(fn, user, e, 1);
    return PRES_APPLIED;
}

/* Sets player's room (NULL: removes it). */
static int ent_set(pres *p, pnode *n, uint64_t player, const char *room, pres_change_fn fn,
                   void *user)
{
    pent *e = *ent_slot(p, n, player);
    if (e == NULL)
        return room == NULL ? PRES_APPLIED : ent_add(p, n, player, room, fn, user);
    if (room == NULL) {
        ent_remove(p, e, fn, user);
        return PRES_APPLIED;
    }
    e->gen = n->gen;
    return ent_move(p, e, room, fn, user);
}

static void node_clear(pres *p, pnode *n, pres_change_fn fn, void *user)
{
    while (n->head != NULL)
        ent_remove(p, n->head, fn, user);
}

/* ---- Changes --------------------------------------------------------------- */

int pres_apply(pres *p, const char *node, uint64_t incarnation, uint64_t version,
               uint64_t player, const char *room, uint64_t now_ms, pres_change_fn fn,
               void *user)
{
    if (!name_ok(node) || (room != NULL && !name_ok(room)))
        return PRES_INVALID;
    pnode *n = node_find(p, node);
    int stale = 0;
    if (n == NULL) {
        if ((n = node_add(p, node)) == NULL)
            return PRES_FULL;
        n->incarnation = incarnation;
        stale = 1;
    } else if (n->incarnation != incarnation) {
        node_clear(p, n, fn, user); /* a restarted node lost its players */
        n->incarnation = incarnation;
        stale = 1;
    } else if (version <= n->version) {
        n->seen_ms = now_ms;
        return PRES_APPLIED; /* old news */
    } else if (version != n->version + 1) {
        stale = 1;
    }
    n->version = version;
    n->seen_ms = now_ms;
    int rc = ent_set(p, n, player, room, fn, user);
    return rc != PRES_APPLIED ? rc : stale ? PRES_STALE : PRES_APPLIED;
}

size_t pres_replace(pres *p, const char *node, uint64_t incarnation, uint64_t version,
                    const pres_player *players, size_t n, uint64_t now_ms, pres_change_fn fn,
                    void *user)
{
    if (!name_ok(node))
        return n;
    pnode *nd = node_find(p, node);
    if (nd == NULL && (nd = node_add(p, node)) == NULL)
        return n;
    if (nd->incarnation != incarnation)
        node_clear(p, nd, fn, user);
    nd->incarnation = incarnation;
    nd->version = version;
    nd->seen_ms = now_ms;
    nd->gen++;
    size_t missed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!name_ok(players[i].room) || ent_set(p, nd, players[i].player, players[i].room, fn,
                                                 user) != PRES_APPLIED)
            missed++;
    }
    for (pent *e = nd->head, *en; e != NULL; e = en) {
        en = e->nnext;
        if (e->gen != nd->gen)
            ent_remove(p, e, fn, user);
    }
    return missed;
}

void pres_touch(pres *p, const char *node, uint64_t now_ms)
{
    pnode *n = node != NULL ? node_find(p, node) : NULL;
    if (n != NULL)
        n->seen_ms = now_ms;
}

static void node_free(pres *p, pnode *n, pres_change_fn fn, void *user)
{
    node_clear(p, n, fn, user);
    pnode **at = &p->nodes;
    while (*at != n)
        at = &(*at)->next;
    *at = n->next;
    free(n);
}

void pres_drop(pres *p, const char *node, pres_change_fn fn, void *user)
{
    pnode *n = node != NULL ? node_find(p, node) : NULL;
    if (n != NULL)
        node_free(p, n, fn, user);
}

size_t pres_expire(pres *p, uint64_t now_ms, uint64_t max_age_ms, const char *keep,
                   pres_change_fn fn, void *user)
{
    size_t dropped = 0;
    for (pnode *n = p->nodes, *next; n != NULL; n = next) {
        next = n->next;
        if ((keep == NULL || strcmp(n->name, keep) != 0) && n->seen_ms + max_age_ms < now_ms) {
            node_free(p, n, fn, user);
            dropped++;
        }
    }
    return dropped;
}

/* ---- Queries ----------------------------------------------------------- */

size_t pres_who(const pres *p, const char *room, void (*fn)(const pres_player *pl, void *user),
                void *user)
{
    const proom *r = name_ok(room) ? room_find(p, room) : NULL;
    if (r == NULL)
        return 0;
    for (const pent *e = r->head; fn != NULL && e != NULL; e = e->rnext) {
        pres_player pl = {e->node->name, e->player, r->name};
        fn(&pl, user);
    }
    return r->players;
}

void pres_node_each(const pres *p, const char *node, void (*fn)(const pres_player *pl, void *user),
                    void *user)
{
    const pnode *n = node != NULL ? node_find(p, node) : NULL;
    for (const pent *e = n != NULL ? n->head : NULL; e != NULL; e = e->nnext) {
        pres_player pl = {n->name, e->player, e->room->name};
        fn(&pl, user);
    }
}

size_t pres_count(const pres *p)
{
    return p->count;
}

int pres_room_of(const pres *p, const char *node, uint64_t player, const char **room)
{
    const pnode *n = node != NULL ? node_find(p, node) : NULL;
    const pent *e = n != NULL ? *ent_slot(p, n, player) : NULL;
    if (e == NULL)
        return 0;
    *room = e->room->name;
    return 1;
}
