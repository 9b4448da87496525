/* programs/roomset.h: the chat's rooms on this server, each with its
 * members, so that a relay visits the room's members and nobody else
 * (O(members), not O(connections)).
 *
 * A member is embedded in the caller's own record (no allocation per
 * player); a room exists while it has members. Room names are chosen by
 * players, so the table is hashed with SipHash under a random key
 * (src/core/siphash.h): no one can pile rooms into one chain.
 *
 * Threads: one set belongs to one thread (the server's loop).
 */
#ifndef GMUD_PROGRAMS_ROOMSET_H
#define GMUD_PROGRAMS_ROOMSET_H

#include <stddef.h>

typedef struct rset rset;
typedef struct rset_room rset_room;

typedef struct rset_member {
    rset_room *room;                  /* NULL: in no room */
    struct rset_member *prev, *next;  /* the room's members, oldest first */
    void *owner;                      /* the caller's, handed to rset_each's fn */
} rset_member;

/* An empty set with a fresh random key; NULL (with errno) on failure. */
rset *rset_create(void);

/* Frees the set and its rooms; members still in one are left dangling, so
 * the caller moves them out first. NULL is a no-op. */
void rset_destroy(rset *s);

/* m (zeroed, or in a room) goes to room (a name the caller has checked;
 * NULL: out of every room). 0, or -1 with no memory for a new room, m
 * then where it was. */
int rset_move(rset *s, rset_member *m, const char *room);

/* m's room: its name, or "" in none. */
const char *rset_name(const rset_member *m);

/* How many are in room (0 for a room no one is in). */
size_t rset_size(const rset *s, const char *room);

/* fn(owner, user) for each member of room, oldest first. fn may take its
 * own member out (the next is read before), nobody else's. */
void rset_each(const rset *s, const char *room, void (*fn)(void *owner, void *user), void *user);

#endif
