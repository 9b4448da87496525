/* Internal: the mirror of a cluster's presence: for every node its
 * incarnation, its presence version, when it was last confirmed alive,
 * and its players, each in one room. Bounded (max_players in all), looked
 * up in O(1) by (node, player), listed by room in O(players in the room).
 * Every effective change (a player appears in a room, moves, goes) is
 * reported to a callback, which must not modify the table. No socket, no
 * clock: the caller passes now_ms. */
#ifndef GMUD_CORE_PRESENCE_H
#define GMUD_CORE_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pres pres;

typedef struct pres_player {
    const char *node;
    uint64_t player;
    const char *room;
} pres_player;

/* joined 1: p is now in p->room; 0: p left p->room. A move is a leave of
 * the old room, then a join of the new one. Strings valid during the call. */
typedef void (*pres_change_fn)(const pres_player *p, int joined, void *user);

typedef struct pres_node_info {
    uint64_t incarnation, version, seen_ms;
    size_t players;
} pres_node_info;

enum { PRES_APPLIED = 0, PRES_STALE = 1, PRES_FULL = 2, PRES_INVALID = 3 };

pres *pres_create(size_t max_players);
void pres_destroy(pres *p);

/* 1 and *out if node is known, else 0. */
int pres_node_get(const pres *p, const char *node, pres_node_info *out);

/* One change from node: player now in room (NULL: gone). Marks the node
 * seen. PRES_APPLIED: the next version of a known incarnation, or an old
 * one (version <= known: already reflected, nothing changes). PRES_STALE:
 * an unknown node, a new incarnation (the old one's players leave first),
 * or a version past known + 1: applied all the same, and the caller
 * should read the node whole. PRES_FULL: not stored (max_players).
 * PRES_INVALID: a bad node or room name; nothing changed. */
int pres_apply(pres *p, const char *node, uint64_t incarnation, uint64_t version,
               uint64_t player, const char *room, uint64_t now_ms, pres_change_fn fn,
               void *user);

/* node's whole state (players[i].node is ignored) in place of what was
 * known, each difference reported. Returns how many were not stored (the
 * bound, or a bad room name). */
size_t pres_replace(pres *p, const char *node, uint64_t incarnation, uint64_t version,
                    const pres_player *players, size_t n, uint64_t now_ms, pres_change_fn fn,
                    void *user);

void pres_touch(pres *p, const char *node, uint64_t now_ms);

/* node is gone: a leave for each of its players, then it is forgotten. */
void pres_drop(pres *p, const char *node, pres_change_fn fn, void *user);

/* Drops every node but keep whose seen_ms + max_age_ms < now_ms; returns
 * how many. */
size_t pres_expire(pres *p, uint64_t now_ms, uint64_t max_age_ms, const char *keep,
                   pres_change_fn fn, void *user);

/* Every player in room, in the order they entered it; the count. fn may be
 * NULL. */
size_t pres_who(const pres *p, const char *room, void (*fn)(const pres_player *pl, void *user),
                void *user);

/* Every player of node, in the order they arrived. */
void pres_node_each(const pres *p, const char *node, void (*fn)(const pres_player *pl, void *user),
                    void *user);

size_t pres_count(const pres *p);

/* 1 and *room (valid until the next change) if node's player is known. */
int pres_room_of(const pres *p, const char *node, uint64_t player, const char **room);

#endif
