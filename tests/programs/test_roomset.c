/* The chat's room index (programs/roomset.c), in memory: moves, sizes,
 * order, rooms that vanish when empty, taking oneself out during a walk,
 * and 20,000 players in 5,000 rooms (run under ASan for the leaks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "roomset.h"

typedef struct walk {
    char s[256];
    rset *set;
    rset_member *drop; /* taken out when met */
} walk;

/* Owners are the members themselves here, named by index. */
static rset_member pl[8];

static int index_of(const void *owner)
{
    return (int)((const rset_member *)owner - pl);
}

static void ids(void *owner, void *user)
{
    walk *w = user;
    size_t n = strlen(w->s);
    snprintf(w->s + n, sizeof w->s - n, "%d ", index_of(owner));
    if (owner == w->drop)
        rset_move(w->set, owner, NULL);
}

static void test_moves(void)
{
    rset *s = rset_create();
    CHECK(s != NULL);
    for (int i = 0; i < 8; i++) {
        memset(&pl[i], 0, sizeof pl[i]);
        pl[i].owner = &pl[i];
    }
    CHECK(strcmp(rset_name(&pl[0]), "") == 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(rset_move(s, &pl[i], "lobby"), 0);
    CHECK_EQ_INT(rset_size(s, "lobby"), 4);
    CHECK_EQ_INT(rset_move(s, &pl[1], "tavern"), 0);
    CHECK_EQ_INT(rset_move(s, &pl[3], "tavern"), 0);
    CHECK_EQ_INT(rset_move(s, &pl[3], "tavern"), 0); /* already there */
    CHECK_EQ_INT(rset_size(s, "lobby"), 2);
    CHECK_EQ_INT(rset_size(s, "tavern"), 2);
    CHECK(strcmp(rset_name(&pl[3]), "tavern") == 0);
    walk w = {"", s, NULL};
    rset_each(s, "lobby", ids, &w);
    CHECK(strcmp(w.s, "0 2 ") == 0); /* oldest first */
    w.s[0] = '\0';
    rset_each(s, "nowhere", ids, &w);
    CHECK(strcmp(w.s, "") == 0);
    CHECK_EQ_INT(rset_size(s, "nowhere"), 0);
    /* Out of every room; the last one out takes the room with it. */
    rset_move(s, &pl[1], NULL);
    rset_move(s, &pl[3], NULL);
    CHECK_EQ_INT(rset_size(s, "tavern"), 0);
    CHECK(strcmp(rset_name(&pl[1]), "") == 0);
    rset_move(s, &pl[1], NULL); /* in none: nothing */
    /* A member may leave while the room is walked, the last one too. */
    rset_move(s, &pl[4], "lobby");
    w = (walk){"", s, &pl[2]};
    rset_each(s, "lobby", ids, &w);
    CHECK(strcmp(w.s, "0 2 4 ") == 0);
    CHECK_EQ_INT(rset_size(s, "lobby"), 2);
    rset_move(s, &pl[0], NULL);
    w = (walk){"", s, &pl[4]};
    rset_each(s, "lobby", ids, &w);
    CHECK(strcmp(w.s, "4 ") == 0);
    CHECK_EQ_INT(rset_size(s, "lobby"), 0);
    rset_destroy(s);
    rset_destroy(NULL);
}

/* Many rooms: the table grows and every size stays right. */
static void test_many(void)
{
    enum { PLAYERS = 20000, ROOMS = 5000 };
    rset *s = rset_create();
    rset_member *m = calloc(PLAYERS, sizeof *m);
    CHECK(s != NULL && m != NULL);
    if (s == NULL || m == NULL)
        return;
    char name[32];
    for (int i = 0; i < PLAYERS; i++) {
        snprintf(name, sizeof name, "room-%d", i % ROOMS);
        CHECK(rset_move(s, &m[i], name) == 0);
    }
    int right = 1;
    for (int r = 0; r < ROOMS; r++) {
        snprintf(name, sizeof name, "room-%d", r);
        right &= rset_size(s, name) == PLAYERS / ROOMS;
    }
    CHECK(right);
    for (int i = 0; i < PLAYERS; i += 2)
        rset_move(s, &m[i], "big");
    CHECK_EQ_INT(rset_size(s, "big"), PLAYERS / 2);
    CHECK_EQ_INT(rset_size(s, "room-0"), 0);           /* 0, 5000, ...: all even */
    CHECK_EQ_INT(rset_size(s, "room-1"), PLAYERS / ROOMS); /* 1, 5001, ...: all odd */
    for (int i = 0; i < PLAYERS; i++)
        rset_move(s, &m[i], NULL);
    CHECK_EQ_INT(rset_size(s, "big"), 0);
    rset_destroy(s);
    free(m);
}

int main(void)
{
    test_moves();
    test_many();
    return check_report("test_roomset");
}
