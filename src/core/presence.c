/* src/core/presence.c: the cluster presence mirror. See presence.h.
 *
 * Each player is one entry on three lists: a hash bucket keyed by (node,
 * player), its room's list and its node's list, so a lookup is O(1), a
 * room listing O(its players) and a node's removal O(its players). Rooms
 * and nodes are interned in name tables (chained, grown by doubling); a
 * room lives while it has players. Nodes also sit on one list sorted by
 * name, for pres_nodes; they are a cluster's size, so the O(nodes) insert
 * is paid once per node start. Freed entries are kept on a spare list
 * (never more than the peak, at most max_players) so the join/leave path
 * stops allocating once warm. */
#include "presence.h"

#include <stdlib.h>
#include <string.h>

#include "cluster_wire.h"
#include "siphash.h"

enum {
    PRES_ENT_BUCKETS_MIN = 64,  /* entry buckets at creation; doubled at load 1 */
    PRES_NAME_BUCKETS_MIN = 16  /* room and node buckets at creation; likewise */
};

/* ---- Name tables ------------------------------------------------------- */

typedef struct pname {
    struct pname *hnext;
    uint64_t hash;
    char s[CW_NAME_MAX + 1];
} pname;

typedef struct ptab {
    pname **b;
    size_t nb, n;
} ptab;

/* Names and player ids come from players and from whoever can write to
 * Redis: every bucket is chosen by SipHash under the table's secret key
 * (siphash.h), so no one can fill one chain. */
static uint64_t str_hash(const uint64_t key[2], const char *s)
{
    return sip13(key, s, strlen(s));
}

/* Reads at most CW_NAME_MAX + 1 bytes: s need not be short to be refused. */
static int name_ok(const char *s)
{
    if (s == NULL)
        return 0;
    size_t n = 0;
    while (n <= CW_NAME_MAX && s[n] != '\0')
        n++;
    return cw_name_ok(s, n);
}

static int tab_init(ptab *t, size_t nb)
{
    t->b = calloc(nb, sizeof *t->b);
    t->nb = nb;
    t->n = 0;
    return t->b != NULL;
}

static pname *tab_find(const ptab *t, const char *s, uint64_t hash)
{
    for (pname *e = t->b[hash & (t->nb - 1)]; e != NULL; e = e->hnext)
        if (e->hash == hash && strcmp(e->s, s) == 0)
            return e;
    return NULL;
}

/* Doubles the buckets; on no memory the chains just grow longer. */
static void tab_grow(ptab *t)
{
    size_t nb = t->nb * 2;
    pname **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < t->nb; i++)
        for (pname *e = t->b[i], *next; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

/* e->s must hold a checked name. */
static void tab_insert(ptab *t, pname *e, uint64_t hash)
{
    if (t->n >= t->nb)
        tab_grow(t);
    e->hash = hash;
    e->hnext = t->b[hash & (t->nb - 1)];
    t->b[hash & (t->nb - 1)] = e;
    t->n++;
}

static void tab_remove(ptab *t, pname *e)
{
    pname **at = &t->b[e->hash & (t->nb - 1)];
    while (*at != e)
        at = &(*at)->hnext;
    *at = e->hnext;
    t->n--;
}

/* ---- The table ----------------------------------------------------------- */

typedef struct pnode pnode;
typedef struct proom proom;

typedef struct pent {
    pnode *node;
    proom *room;
    uint64_t player;
    uint64_t gen;                 /* pres_replace: == node->gen when in the snapshot */
    struct pent *hnext;           /* hash bucket; the spare list when free */
    struct pent *rprev, *rnext;   /* the room's players */
    struct pent *nprev, *nnext;   /* the node's players */
} pent;

struct proom {
    pname key; /* first: a pname * is a proom * */
    size_t players;
    pent *head, *tail;
};

struct pnode {
    pname key; /* first: a pname * is a pnode * */
    uint64_t incarnation, version, seen_ms, gen;
    size_t players;
    pent *head, *tail;
    pnode *prev, *next; /* all nodes, by name */
};

struct pres {
    uint64_t key[2]; /* SipHash's, the creator's secret */
    size_t max, count;
    pent **buckets; /* entries by (node, player) */
    size_t nbuckets;
    pent *spare;    /* freed entries, reused */
    ptab rooms, nodes;
    pnode *first;   /* the node list, by name */
};

pres *pres_create(size_t max_players, const uint64_t key[2])
{
    pres *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->key[0] = key[0];
    p->key[1] = key[1];
    p->max = max_players;
    p->nbuckets = PRES_ENT_BUCKETS_MIN;
    p->buckets = calloc(p->nbuckets, sizeof *p->buckets);
    int ok = p->buckets != NULL;
    ok = tab_init(&p->rooms, PRES_NAME_BUCKETS_MIN) && ok;
    ok = tab_init(&p->nodes, PRES_NAME_BUCKETS_MIN) && ok;
    if (!ok) {
        pres_destroy(p);
        return NULL;
    }
    return p;
}

static void free_chain(pent *e, int by_node)
{
    while (e != NULL) {
        pent *next = by_node ? e->nnext : e->hnext;
        free(e);
        e = next;
    }
}

void pres_destroy(pres *p)
{
    if (p == NULL)
        return;
    for (pnode *n = p->first, *next; n != NULL; n = next) {
        next = n->next;
        free_chain(n->head, 1);
        free(n);
    }
    free_chain(p->spare, 0);
    for (size_t i = 0; p->rooms.b != NULL && i < p->rooms.nb; i++)
        for (pname *r = p->rooms.b[i], *next; r != NULL; r = next) {
            next = r->hnext;
            free(r);
        }
    free(p->rooms.b);
    free(p->nodes.b);
    free(p->buckets);
    free(p);
}

/* ---- Nodes ------------------------------------------------------------- */

static pnode *node_find(const pres *p, const char *name)
{
    return (pnode *)tab_find(&p->nodes, name, str_hash(p->key, name));
}

static void node_link_sorted(pres *p, pnode *n)
{
    pnode *prev = NULL, *at = p->first;
    while (at != NULL && strcmp(at->key.s, n->key.s) < 0) {
        prev = at;
        at = at->next;
    }
    n->prev = prev;
    n->next = at;
    if (at != NULL)
        at->prev = n;
    if (prev != NULL)
        prev->next = n;
    else
        p->first = n;
}

/* name is checked. */
static pnode *node_new(pres *p, const char *name, uint64_t incarnation)
{
    pnode *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    memcpy(n->key.s, name, strlen(name) + 1);
    n->incarnation = incarnation;
    tab_insert(&p->nodes, &n->key, str_hash(p->key, name));
    node_link_sorted(p, n);
    return n;
}

static void node_info(const pnode *n, pres_node_info *out)
{
    *out = (pres_node_info){n->incarnation, n->version, n->seen_ms, n->players};
}

int pres_node_get(const pres *p, const char *node, pres_node_info *out)
{
    const pnode *n = name_ok(node) ? node_find(p, node) : NULL;
    if (n == NULL)
        return 0;
    if (out != NULL)
        node_info(n, out);
    return 1;
}

/* ---- Rooms ------------------------------------------------------------- */

static proom *room_find(const pres *p, const char *name)
{
    return (proom *)tab_find(&p->rooms, name, str_hash(p->key, name));
}

/* The room called name (checked), made if new; NULL on no memory. */
static proom *room_get(pres *p, const char *name)
{
    uint64_t h = str_hash(p->key, name);
    proom *r = (proom *)tab_find(&p->rooms, name, h);
    if (r != NULL)
        return r;
    if ((r = calloc(1, sizeof *r)) == NULL)
        return NULL;
    memcpy(r->key.s, name, strlen(name) + 1);
    tab_insert(&p->rooms, &r->key, h);
    return r;
}

/* Frees r if it has no players left. */
static void room_put(pres *p, proom *r)
{
    if (r->players > 0)
        return;
    tab_remove(&p->rooms, &r->key);
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

/* ---- Entries ------------------------------------------------------------ */

static size_t ent_bucket(const pres *p, size_t nbuckets, const pnode *n, uint64_t player)
{
    /* Node records never move while they hold entries: their address is a key. */
    uint64_t k[2] = {player, (uint64_t)(uintptr_t)n};
    return (size_t)(sip13(p->key, k, sizeof k) & (nbuckets - 1));
}

static pent **ent_slot(const pres *p, const pnode *n, uint64_t player)
{
    pent **at = &p->buckets[ent_bucket(p, p->nbuckets, n, player)];
    while (*at != NULL && ((*at)->node != n || (*at)->player != player))
        at = &(*at)->hnext;
    return at;
}

static void ent_grow(pres *p)
{
    size_t nb = p->nbuckets * 2;
    pent **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < p->nbuckets; i++)
        for (pent *e = p->buckets[i], *next; e != NULL; e = next) {
            next = e->hnext;
            size_t h = ent_bucket(p, nb, e->node, e->player);
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
    pres_player pl = {e->node->key.s, e->player, e->room->key.s};
    fn(&pl, joined, user);
}

static pent *ent_alloc(pres *p)
{
    pent *e = p->spare;
    if (e != NULL) {
        p->spare = e->hnext;
        return e;
    }
    return malloc(sizeof *e);
}

static void node_link(pnode *n, pent *e)
{
    e->nnext = NULL;
    e->nprev = n->tail;
    if (n->tail != NULL)
        n->tail->nnext = e;
    else
        n->head = e;
    n->tail = e;
    n->players++;
}

static void node_unlink(pent *e)
{
    pnode *n = e->node;
    if (e->nprev != NULL)
        e->nprev->nnext = e->nnext;
    else
        n->head = e->nnext;
    if (e->nnext != NULL)
        e->nnext->nprev = e->nprev;
    else
        n->tail = e->nprev;
    n->players--;
}

/* A new entry for player (not yet stored) in room: PRES_APPLIED or
 * PRES_FULL (the bound, or no memory; nothing changed then). */
static int ent_add(pres *p, pnode *n, uint64_t player, const char *room, pres_change_fn fn,
                   void *user)
{
    if (p->count >= p->max)
        return PRES_FULL;
    proom *r = room_get(p, room);
    pent *e = r != NULL ? ent_alloc(p) : NULL;
    if (e == NULL) {
        if (r != NULL)
            room_put(p, r);
        return PRES_FULL;
    }
    if (p->count >= p->nbuckets)
        ent_grow(p);
    e->node = n;
    e->player = player;
    e->gen = n->gen;
    pent **slot = &p->buckets[ent_bucket(p, p->nbuckets, n, player)];
    e->hnext = *slot;
    *slot = e;
    room_link(r, e);
    node_link(n, e);
    p->count++;
    report(fn, user, e, 1);
    return PRES_APPLIED;
}

/* The leave is reported first, while e->room still names the room. */
static void ent_remove(pres *p, pent *e, pres_change_fn fn, void *user)
{
    report(fn, user, e, 0);
    *ent_slot(p, e->node, e->player) = e->hnext;
    proom *r = e->room;
    room_unlink(e);
    room_put(p, r);
    node_unlink(e);
    p->count--;
    e->hnext = p->spare;
    p->spare = e;
}

/* e into room: a leave then a join, or nothing for the same room.
 * PRES_FULL (nothing changed) if the new room cannot be made. */
static int ent_move(pres *p, pent *e, const char *room, pres_change_fn fn, void *user)
{
    if (strcmp(e->room->key.s, room) == 0)
        return PRES_APPLIED;
    proom *r = room_get(p, room); /* before the unlink: the old room stays alive */
    if (r == NULL)
        return PRES_FULL;
    report(fn, user, e, 0);
    proom *old = e->room;
    room_unlink(e);
    room_put(p, old);
    room_link(r, e);
    report(fn, user, e, 1);
    return PRES_APPLIED;
}

/* player of n into room (checked; NULL: gone). */
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
    return ent_move(p, e, room, fn, user);
}

static void node_clear(pres *p, pnode *n, pres_change_fn fn, void *user)
{
    while (n->head != NULL)
        ent_remove(p, n->head, fn, user);
}

static void node_free(pres *p, pnode *n, pres_change_fn fn, void *user)
{
    node_clear(p, n, fn, user);
    tab_remove(&p->nodes, &n->key);
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        p->first = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    free(n);
}

/* ---- Changes ------------------------------------------------------------ */

/* node's record for a change from incarnation: made if unknown, emptied if
 * the incarnation differs (*stale set for both); NULL on no memory. */
static pnode *node_for(pres *p, const char *node, uint64_t incarnation, pres_change_fn fn,
                       void *user, int *stale)
{
    pnode *n = node_find(p, node);
    if (n == NULL) {
        *stale = 1;
        return node_new(p, node, incarnation);
    }
    if (n->incarnation != incarnation) {
        node_clear(p, n, fn, user); /* a restarted node lost its players */
        n->incarnation = incarnation;
        n->version = 0;
        *stale = 1;
    }
    return n;
}

int pres_apply(pres *p, const char *node, uint64_t incarnation, uint64_t version,
               uint64_t player, const char *room, uint64_t now_ms, pres_change_fn fn,
               void *user)
{
    if (!name_ok(node) || (room != NULL && !name_ok(room)))
        return PRES_INVALID;
    int stale = 0;
    pnode *n = node_for(p, node, incarnation, fn, user, &stale);
    if (n == NULL)
        return PRES_FULL;
    n->seen_ms = now_ms;
    if (!stale && version <= n->version)
        return PRES_APPLIED; /* already reflected */
    /* version > n->version here unless stale, so the difference cannot wrap. */
    if (!stale && version - n->version != 1)
        stale = 1;
    if (ent_set(p, n, player, room, fn, user) == PRES_FULL)
        return PRES_FULL; /* version kept: the next change is a gap, then a reload */
    n->version = version;
    return stale ? PRES_STALE : PRES_APPLIED;
}

/* Marks with n->gen every stored player that players[] keeps. */
static void replace_mark(pres *p, pnode *n, const pres_player *players, size_t count)
{
    n->gen++;
    for (size_t i = 0; i < count; i++) {
        if (!name_ok(players[i].room))
            continue;
        pent *e = *ent_slot(p, n, players[i].player);
        if (e != NULL)
            e->gen = n->gen;
    }
}

size_t pres_replace(pres *p, const char *node, uint64_t incarnation, uint64_t version,
                    const pres_player *players, size_t n, uint64_t now_ms, pres_change_fn fn,
                    void *user)
{
    if (!name_ok(node))
        return n;
    int stale = 0;
    pnode *nd = node_for(p, node, incarnation, fn, user, &stale);
    if (nd == NULL)
        return n;
    nd->version = version;
    nd->seen_ms = now_ms;
    /* The gone leave first, so the room they free is there for newcomers. */
    replace_mark(p, nd, players, n);
    for (pent *e = nd->head, *next; e != NULL; e = next) {
        next = e->nnext;
        if (e->gen != nd->gen)
            ent_remove(p, e, fn, user);
    }
    size_t missed = 0;
    for (size_t i = 0; i < n; i++)
        if (!name_ok(players[i].room) ||
            ent_set(p, nd, players[i].player, players[i].room, fn, user) != PRES_APPLIED)
            missed++;
    return missed;
}

void pres_touch(pres *p, const char *node, uint64_t now_ms)
{
    pnode *n = name_ok(node) ? node_find(p, node) : NULL;
    if (n != NULL)
        n->seen_ms = now_ms;
}

void pres_drop(pres *p, const char *node, pres_change_fn fn, void *user)
{
    pnode *n = name_ok(node) ? node_find(p, node) : NULL;
    if (n != NULL)
        node_free(p, n, fn, user);
}

size_t pres_expire(pres *p, uint64_t now_ms, uint64_t max_age_ms, const char *keep,
                   pres_change_fn fn, void *user)
{
    size_t dropped = 0;
    for (pnode *n = p->first, *next; n != NULL; n = next) {
        next = n->next;
        if (keep != NULL && strcmp(n->key.s, keep) == 0)
            continue;
        /* seen_ms + max_age_ms < now_ms, written so that neither side wraps. */
        if (now_ms > n->seen_ms && now_ms - n->seen_ms > max_age_ms) {
            node_free(p, n, fn, user);
            dropped++;
        }
    }
    return dropped;
}

/* ---- Queries ------------------------------------------------------------ */

void pres_nodes(const pres *p, void (*fn)(const char *node, const pres_node_info *info, void *user),
                void *user)
{
    for (const pnode *n = p->first; n != NULL; n = n->next) {
        pres_node_info info;
        node_info(n, &info);
        fn(n->key.s, &info, user);
    }
}

static int who_cmp(const void *a, const void *b)
{
    const pent *x = *(const pent *const *)a, *y = *(const pent *const *)b;
    if (x->node != y->node)
        return strcmp(x->node->key.s, y->node->key.s);
    return x->player < y->player ? -1 : x->player > y->player;
}

static void who_emit(const pent *e, void (*fn)(const pres_player *pl, void *user), void *user)
{
    pres_player pl = {e->node->key.s, e->player, e->room->key.s};
    fn(&pl, user);
}

size_t pres_who(const pres *p, const char *room, void (*fn)(const pres_player *pl, void *user),
                void *user)
{
    const proom *r = name_ok(room) ? room_find(p, room) : NULL;
    if (r == NULL)
        return 0;
    if (fn == NULL)
        return r->players;
    /* A query, not the join/leave path: one allocation is allowed here. */
    const pent **v = malloc(r->players * sizeof *v);
    if (v == NULL) {
        for (const pent *e = r->head; e != NULL; e = e->rnext)
            who_emit(e, fn, user); /* unsorted, but complete */
        return r->players;
    }
    size_t k = 0;
    for (const pent *e = r->head; e != NULL; e = e->rnext)
        v[k++] = e;
    qsort(v, k, sizeof *v, who_cmp);
    for (size_t i = 0; i < k; i++)
        who_emit(v[i], fn, user);
    free(v);
    return k;
}

void pres_node_each(const pres *p, const char *node, void (*fn)(const pres_player *pl, void *user),
                    void *user)
{
    const pnode *n = name_ok(node) ? node_find(p, node) : NULL;
    for (const pent *e = n != NULL ? n->head : NULL; e != NULL; e = e->nnext) {
        pres_player pl = {n->key.s, e->player, e->room->key.s};
        fn(&pl, user);
    }
}

size_t pres_count(const pres *p)
{
    return p->count;
}

int pres_room_of(const pres *p, const char *node, uint64_t player, const char **room)
{
    const pnode *n = name_ok(node) ? node_find(p, node) : NULL;
    const pent *e = n != NULL ? *ent_slot(p, n, player) : NULL;
    if (e == NULL)
        return 0;
    if (room != NULL)
        *room = e->room->key.s;
    return 1;
}
