/* Internal: the mirror of a cluster's presence. For every node: its
 * incarnation (random per process start), its presence version (+1 per
 * change the node makes), when it was last confirmed alive, and its
 * players, each in one room. Bounded (max_players in all); (node, player)
 * is found in O(1), a room's players listed in O(players in the room).
 *
 * Every effective change is reported to a pres_change_fn, which may read
 * the table but must not modify it. Sans-I/O and clock-free: the caller
 * passes now_ms. Not thread-safe: one thread (the cluster's loop) owns a
 * table. Node and room names: 1..64 bytes of [A-Za-z0-9._-]. */
#ifndef GMUD_CORE_PRESENCE_H
#define GMUD_CORE_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pres pres;

/* Strings NUL-terminated, owned by the table, valid during the callback. */
typedef struct pres_player {
    const char *node;
    uint64_t player;
    const char *room;
} pres_player;

/* joined 1: p is now in p->room; 0: p left p->room. A move is a leave of
 * the old room, then a join of the new one. */
typedef void (*pres_change_fn)(const pres_player *p, int joined, void *user);

typedef struct pres_node_info {
    uint64_t incarnation, version, seen_ms;
    size_t players;
} pres_node_info;

enum { PRES_APPLIED = 0, PRES_STALE = 1, PRES_FULL = 2, PRES_INVALID = 3 };

/* A table holding at most max_players players; NULL on no memory. key is
 * the SipHash key of its hash tables (siphash.h): random and secret, since
 * the names in the table are chosen by players. */
pres *pres_create(size_t max_players, const uint64_t key[2]);
/* Frees p and everything in it; NULL is a no-op. No callbacks. */
void pres_destroy(pres *p);

/* 1 and *out (if out is not NULL) when node is known, else 0. */
int pres_node_get(const pres *p, const char *node, pres_node_info *out);

/* One change from node: player is now in room (NULL: gone). Marks the node
 * seen at now_ms; fn (may be NULL) hears each effect.
 * PRES_APPLIED: version == known + 1 of the known incarnation, or
 *   version <= known (already reflected: nothing changes).
 * PRES_STALE: the node was unknown, had another incarnation (its old
 *   players leave first: a restarted node lost them) or version skipped
 *   ahead; the change is applied all the same and the node takes version.
 *   The caller should read the node whole (pres_replace).
 * PRES_FULL: the player could not be stored (max_players, or no memory).
 *   The node's version is then not advanced, so its next change reads as
 *   a gap (PRES_STALE) and the caller reloads it.
 * PRES_INVALID: a bad node or room name; nothing changed. */
int pres_apply(pres *p, const char *node, uint64_t incarnation, uint64_t version,
               uint64_t player, const char *room, uint64_t now_ms, pres_change_fn fn,
               void *user);

/* node's whole state (players[i].node is ignored) replaces what was known,
 * whatever the versions; a new incarnation first loses all old players.
 * Reported in this order: a leave for each player gone (or with a bad
 * room name), then in players[] order a leave + join for each move and a
 * join for each newcomer; the unchanged are silent. Returns how many of
 * players[] were not stored (the bound, a bad room name); n for a bad
 * node name. O(n + the node's previous players). */
size_t pres_replace(pres *p, const char *node, uint64_t incarnation, uint64_t version,
                    const pres_player *players, size_t n, uint64_t now_ms, pres_change_fn fn,
                    void *user);

/* node is confirmed alive at now_ms; no-op for an unknown node. */
void pres_touch(pres *p, const char *node, uint64_t now_ms);

/* node is gone: a leave for each of its players, then it is forgotten. */
void pres_drop(pres *p, const char *node, pres_change_fn fn, void *user);

/* Drops (as pres_drop) every node but keep (may be NULL) not seen for more
 * than max_age_ms, i.e. seen_ms + max_age_ms < now_ms without overflow;
 * returns how many nodes were dropped. */
size_t pres_expire(pres *p, uint64_t now_ms, uint64_t max_age_ms, const char *keep,
                   pres_change_fn fn, void *user);

/* Every known node, empty ones included, by name (strcmp order). fn must
 * not modify the table. */
void pres_nodes(const pres *p, void (*fn)(const char *node, const pres_node_info *info, void *user),
                void *user);

/* The players in room: the count, and (fn not NULL) each in order of node
 * name (strcmp), then ascending player id. Sorted at query time: O(k log k)
 * for k players in the room, with one allocation of k pointers; if that
 * allocation fails they come in the order they entered the room. */
size_t pres_who(const pres *p, const char *room, void (*fn)(const pres_player *pl, void *user),
                void *user);

/* Every player of node, in the order they arrived (beyond the brief's API:
 * src/rt/cluster.c writes its own node's hash from it). */
void pres_node_each(const pres *p, const char *node, void (*fn)(const pres_player *pl, void *user),
                    void *user);

/* Players stored, all nodes together. */
size_t pres_count(const pres *p);

/* 1 and *room (owned by the table, valid until its next change) when
 * node's player is known, else 0. */
int pres_room_of(const pres *p, const char *node, uint64_t player, const char **room);

#endif
