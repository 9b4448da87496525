/* The cluster presence mirror (src/core/presence.c) with a fake clock:
 * callbacks in order, versions and incarnations, whole-node replacement
 * by difference, expiry and keep, drop, who's order, the bound, invalid
 * names, and 100k players in and out (run under ASan for the leaks). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "presence.h"

/* Every change as "+node/player/room " or "-node/player/room ". */
static char seen[8192];

static const uint64_t KEY[2] = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};

static void record(const pres_player *p, int joined, void *user)
{
    (void)user;
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof seen - n, "%s%s/%llu/%s ", joined ? "+" : "-", p->node,
             (unsigned long long)p->player, p->room);
}

#define EXPECT(want)                                                      \
    do {                                                                  \
        CHECK(strcmp(seen, want) == 0);                                   \
        if (strcmp(seen, want) != 0)                                      \
            fprintf(stderr, "  got \"%s\"\n want \"%s\"\n", seen, want); \
        seen[0] = '\0';                                                   \
    } while (0)

typedef struct text {
    char s[1024];
} text;

static void collect(const pres_player *p, void *user)
{
    text *t = user;
    size_t n = strlen(t->s);
    snprintf(t->s + n, sizeof t->s - n, "%s/%llu ", p->node, (unsigned long long)p->player);
}

static void collect_node(const char *node, const pres_node_info *info, void *user)
{
    text *t = user;
    size_t n = strlen(t->s);
    snprintf(t->s + n, sizeof t->s - n, "%s:%llu:%llu:%zu ", node,
             (unsigned long long)info->version, (unsigned long long)info->seen_ms,
             info->players);
}

static void test_join_move_leave(void)
{
    pres *p = pres_create(100, KEY);
    CHECK(p != NULL);
    CHECK_EQ_INT(pres_apply(p, "a", 1, 1, 7, "tavern", 5, record, NULL), PRES_STALE); /* unknown */
    EXPECT("+a/7/tavern ");
    CHECK_EQ_INT(pres_apply(p, "a", 1, 2, 8, "tavern", 6, record, NULL), PRES_APPLIED);
    EXPECT("+a/8/tavern ");
    CHECK_EQ_INT(pres_apply(p, "a", 1, 3, 7, "cellar", 7, record, NULL), PRES_APPLIED);
    EXPECT("-a/7/tavern +a/7/cellar ");
    CHECK_EQ_INT(pres_apply(p, "a", 1, 4, 7, "cellar", 8, record, NULL), PRES_APPLIED);
    EXPECT(""); /* the same room: no change to announce */
    CHECK_EQ_INT(pres_apply(p, "a", 1, 5, 8, NULL, 9, record, NULL), PRES_APPLIED);
    EXPECT("-a/8/tavern ");
    CHECK_EQ_INT(pres_apply(p, "a", 1, 6, 99, NULL, 10, record, NULL), PRES_APPLIED);
    EXPECT(""); /* an unknown player leaving */
    CHECK_EQ_INT(pres_apply(p, "a", 1, 7, 9, "tavern", 11, NULL, NULL), PRES_APPLIED); /* fn NULL */
    const char *room = NULL;
    CHECK(pres_room_of(p, "a", 7, &room) && strcmp(room, "cellar") == 0);
    CHECK(pres_room_of(p, "a", 9, &room) && strcmp(room, "tavern") == 0);
    CHECK(!pres_room_of(p, "a", 8, &room));
    CHECK(!pres_room_of(p, "zz", 7, &room));
    CHECK_EQ_INT(pres_who(p, "tavern", NULL, NULL), 1);
    pres_node_info info;
    CHECK(pres_node_get(p, "a", &info));
    CHECK_EQ_INT(info.version, 7);
    CHECK_EQ_INT(info.seen_ms, 11);
    CHECK_EQ_INT(info.players, 2);
    CHECK_EQ_INT(info.incarnation, 1);
    CHECK_EQ_INT(pres_count(p), 2);
    pres_destroy(p);
    pres_destroy(NULL);
}

static void test_versions(void)
{
    pres *p = pres_create(100, KEY);
    pres_node_info info;
    CHECK_EQ_INT(pres_apply(p, "a", 9, 10, 1, "r", 0, record, NULL), PRES_STALE);
    CHECK_EQ_INT(pres_apply(p, "a", 9, 11, 2, "r", 0, record, NULL), PRES_APPLIED);
    CHECK_EQ_INT(pres_apply(p, "a", 9, 12, 3, "r", 0, record, NULL), PRES_APPLIED);
    EXPECT("+a/1/r +a/2/r +a/3/r ");
    /* Duplicates and old news: nothing changes, but the node was heard. */
    CHECK_EQ_INT(pres_apply(p, "a", 9, 12, 4, "r", 50, record, NULL), PRES_APPLIED);
    CHECK_EQ_INT(pres_apply(p, "a", 9, 11, 1, NULL, 60, record, NULL), PRES_APPLIED);
    CHECK_EQ_INT(pres_apply(p, "a", 9, 0, 1, "x", 70, record, NULL), PRES_APPLIED);
    EXPECT("");
    CHECK(pres_node_get(p, "a", &info) && info.version == 12 && info.seen_ms == 70 &&
          info.players == 3);
    /* A gap: applied, the version taken, the caller told to reload. */
    CHECK_EQ_INT(pres_apply(p, "a", 9, 15, 2, NULL, 80, record, NULL), PRES_STALE);
    EXPECT("-a/2/r ");
    CHECK(pres_node_get(p, "a", &info) && info.version == 15 && info.players == 2);
    CHECK_EQ_INT(pres_apply(p, "a", 9, 16, 2, "s", 90, record, NULL), PRES_APPLIED);
    EXPECT("+a/2/s ");
    /* The top of the counter: no wrap in the comparisons. */
    CHECK_EQ_INT(pres_apply(p, "a", 9, UINT64_MAX, 5, "s", 0, record, NULL), PRES_STALE);
    CHECK_EQ_INT(pres_apply(p, "a", 9, 3, 6, "s", 0, record, NULL), PRES_APPLIED);
    EXPECT("+a/5/s ");
    pres_destroy(p);
}

static void test_incarnation(void)
{
    pres *p = pres_create(100, KEY);
    pres_apply(p, "a", 1, 1, 7, "cellar", 0, NULL, NULL);
    pres_apply(p, "a", 1, 2, 8, "tavern", 0, NULL, NULL);
    pres_apply(p, "b", 4, 1, 7, "tavern", 0, NULL, NULL);
    /* a restarted: its old players leave (in arrival order), then the change. */
    CHECK_EQ_INT(pres_apply(p, "a", 2, 1, 1, "tavern", 3, record, NULL), PRES_STALE);
    EXPECT("-a/7/cellar -a/8/tavern +a/1/tavern ");
    pres_node_info info;
    CHECK(pres_node_get(p, "a", &info) && info.incarnation == 2 && info.version == 1 &&
          info.players == 1 && info.seen_ms == 3);
    CHECK_EQ_INT(pres_who(p, "cellar", NULL, NULL), 0);
    CHECK_EQ_INT(pres_who(p, "tavern", NULL, NULL), 2);
    CHECK_EQ_INT(pres_count(p), 2);
    /* Even a "leave" from a new incarnation clears the old one's players. */
    CHECK_EQ_INT(pres_apply(p, "b", 5, 1, 7, NULL, 3, record, NULL), PRES_STALE);
    EXPECT("-b/7/tavern ");
    CHECK(pres_node_get(p, "b", &info) && info.incarnation == 5 && info.players == 0);
    pres_destroy(p);
}

static void test_replace(void)
{
    pres *p = pres_create(100, KEY);
    pres_player first[] = {{NULL, 1, "t"}, {NULL, 2, "t"}, {NULL, 3, "c"}};
    CHECK_EQ_INT(pres_replace(p, "b", 5, 3, first, 3, 10, record, NULL), 0);
    EXPECT("+b/1/t +b/2/t +b/3/c ");
    /* players[].node is ignored; gone first, then moves and newcomers. */
    pres_player now[] = {{"x", 2, "t"}, {"y", 3, "t"}, {NULL, 4, "c"}, {NULL, 5, "no room"}};
    CHECK_EQ_INT(pres_replace(p, "b", 5, 9, now, 4, 20, record, NULL), 1);
    EXPECT("-b/1/t -b/3/c +b/3/t +b/4/c ");
    pres_node_info info;
    CHECK(pres_node_get(p, "b", &info) && info.version == 9 && info.seen_ms == 20 &&
          info.players == 3 && info.incarnation == 5);
    /* The same again: nothing to report. */
    CHECK_EQ_INT(pres_replace(p, "b", 5, 9, now, 3, 30, record, NULL), 0);
    EXPECT("");
    /* A player whose room turns bad in the snapshot is gone. */
    pres_player bad[] = {{NULL, 2, "t"}, {NULL, 3, ""}};
    CHECK_EQ_INT(pres_replace(p, "b", 5, 10, bad, 2, 30, record, NULL), 1);
    EXPECT("-b/3/t -b/4/c ");
    /* A new incarnation: every old player leaves, even one listed again. */
    pres_player again[] = {{NULL, 2, "t"}};
    CHECK_EQ_INT(pres_replace(p, "b", 6, 1, again, 1, 40, record, NULL), 0);
    EXPECT("-b/2/t +b/2/t ");
    /* Empty: all leave, the node stays known. */
    CHECK_EQ_INT(pres_replace(p, "b", 6, 2, NULL, 0, 50, record, NULL), 0);
    EXPECT("-b/2/t ");
    CHECK(pres_node_get(p, "b", &info) && info.players == 0 && info.version == 2);
    CHECK_EQ_INT(pres_count(p), 0);
    /* Bad node name: nothing stored. */
    CHECK_EQ_INT(pres_replace(p, "b b", 1, 1, first, 3, 0, record, NULL), 3);
    EXPECT("");
    pres_destroy(p);
}

static void test_expire_and_drop(void)
{
    pres *p = pres_create(100, KEY);
    pres_apply(p, "a", 1, 1, 9, "t", 10, NULL, NULL);
    pres_apply(p, "b", 1, 1, 2, "t", 20, NULL, NULL);
    pres_apply(p, "b", 1, 2, 4, "c", 20, NULL, NULL);
    pres_replace(p, "c", 1, 1, NULL, 0, 0, NULL, NULL); /* no players */
    /* Exactly max_age old is still alive: only "< now" expires. */
    CHECK_EQ_INT(pres_expire(p, 1010, 1000, NULL, record, NULL), 1);
    EXPECT("");
    CHECK(!pres_node_get(p, "c", NULL));
    CHECK_EQ_INT(pres_expire(p, 1015, 1000, NULL, record, NULL), 1);
    EXPECT("-a/9/t ");
    CHECK(!pres_node_get(p, "a", NULL));
    pres_touch(p, "b", 500);
    pres_touch(p, "nobody", 500); /* no-op */
    CHECK(!pres_node_get(p, "nobody", NULL));
    CHECK_EQ_INT(pres_expire(p, 1400, 1000, NULL, record, NULL), 0);
    CHECK_EQ_INT(pres_expire(p, 1600, 1000, "b", record, NULL), 0); /* kept */
    EXPECT("");
    CHECK(pres_node_get(p, "b", NULL));
    /* No overflow: a huge age never expires, a clock behind never expires. */
    CHECK_EQ_INT(pres_expire(p, UINT64_MAX, UINT64_MAX, NULL, record, NULL), 0);
    CHECK_EQ_INT(pres_expire(p, 0, 0, NULL, record, NULL), 0);
    pres_drop(p, "b", record, NULL);
    EXPECT("-b/2/t -b/4/c ");
    CHECK_EQ_INT(pres_count(p), 0);
    CHECK(!pres_node_get(p, "b", NULL));
    CHECK_EQ_INT(pres_who(p, "t", NULL, NULL), 0);
    pres_drop(p, "b", record, NULL); /* unknown: nothing */
    EXPECT("");
    /* Expiry sees the others while it drops some. */
    pres_apply(p, "m", 1, 1, 1, "t", 100, NULL, NULL);
    pres_apply(p, "n", 1, 1, 1, "t", 900, NULL, NULL);
    pres_apply(p, "o", 1, 1, 1, "t", 100, NULL, NULL);
    CHECK_EQ_INT(pres_expire(p, 1000, 500, "zzz", record, NULL), 2);
    EXPECT("-m/1/t -o/1/t ");
    CHECK_EQ_INT(pres_count(p), 1);
    pres_destroy(p);
}

static void test_who_and_nodes(void)
{
    pres *p = pres_create(100, KEY);
    /* Entered out of order on purpose. */
    pres_apply(p, "zeta", 1, 1, 30, "hall", 1, NULL, NULL);
    pres_apply(p, "alpha", 1, 1, 20, "hall", 2, NULL, NULL);
    pres_apply(p, "zeta", 1, 2, 4, "hall", 3, NULL, NULL);
    pres_apply(p, "alpha", 1, 2, 3, "hall", 4, NULL, NULL);
    pres_apply(p, "mid", 1, 1, 1000, "hall", 5, NULL, NULL);
    pres_apply(p, "alpha", 1, 3, 100, "hall", 6, NULL, NULL);
    pres_apply(p, "mid", 1, 2, 7, "yard", 7, NULL, NULL);
    text t = {""};
    CHECK_EQ_INT(pres_who(p, "hall", collect, &t), 6);
    CHECK(strcmp(t.s, "alpha/3 alpha/20 alpha/100 mid/1000 zeta/4 zeta/30 ") == 0);
    t.s[0] = '\0';
    CHECK_EQ_INT(pres_who(p, "yard", collect, &t), 1);
    CHECK(strcmp(t.s, "mid/7 ") == 0);
    t.s[0] = '\0';
    CHECK_EQ_INT(pres_who(p, "nowhere", collect, &t), 0);
    CHECK_EQ_INT(pres_who(p, "bad name", collect, &t), 0);
    CHECK_EQ_INT(pres_who(p, NULL, collect, &t), 0);
    CHECK(t.s[0] == '\0');
    /* A move updates both rooms. */
    pres_apply(p, "alpha", 1, 4, 20, "yard", 8, NULL, NULL);
    CHECK_EQ_INT(pres_who(p, "hall", NULL, NULL), 5);
    CHECK_EQ_INT(pres_who(p, "yard", collect, &t), 2);
    CHECK(strcmp(t.s, "alpha/20 mid/7 ") == 0);
    t.s[0] = '\0';
    pres_nodes(p, collect_node, &t);
    CHECK(strcmp(t.s, "alpha:4:8:3 mid:2:7:2 zeta:2:3:2 ") == 0);
    if (strcmp(t.s, "alpha:4:8:3 mid:2:7:2 zeta:2:3:2 ") != 0)
        fprintf(stderr, "  nodes: %s\n", t.s);
    pres_destroy(p);
}

/* A callback may read the table: the leaver is still there, the joiner is
 * already there. */
typedef struct probe {
    pres *p;
    int ok;
} probe;

static void reader(const pres_player *pl, int joined, void *user)
{
    probe *pr = user;
    const char *room = NULL;
    if (!pres_room_of(pr->p, pl->node, pl->player, &room) || strcmp(room, pl->room) != 0)
        pr->ok = 0;
    if (pres_who(pr->p, pl->room, NULL, NULL) == 0)
        pr->ok = 0;
    (void)joined;
}

static void test_callbacks_read(void)
{
    pres *p = pres_create(10, KEY);
    probe pr = {p, 1};
    pres_apply(p, "a", 1, 1, 1, "r", 0, reader, &pr);
    pres_apply(p, "a", 1, 2, 1, "s", 0, reader, &pr);
    pres_apply(p, "a", 1, 3, 1, NULL, 0, reader, &pr);
    pres_apply(p, "a", 1, 4, 2, "r", 0, reader, &pr);
    pres_drop(p, "a", reader, &pr);
    CHECK(pr.ok);
    pres_destroy(p);
}

static void test_bound(void)
{
    pres *p = pres_create(3, KEY);
    for (uint64_t i = 1; i <= 3; i++)
        CHECK(pres_apply(p, "a", 1, i, i, "r", 0, NULL, NULL) != PRES_FULL);
    CHECK_EQ_INT(pres_apply(p, "a", 1, 4, 4, "r", 0, record, NULL), PRES_FULL);
    EXPECT("");
    CHECK_EQ_INT(pres_count(p), 3);
    pres_node_info info;
    CHECK(pres_node_get(p, "a", &info) && info.version == 3); /* not advanced */
    /* A move needs no new slot. */
    CHECK_EQ_INT(pres_apply(p, "a", 1, 4, 1, "s", 0, record, NULL), PRES_APPLIED);
    EXPECT("-a/1/r +a/1/s ");
    /* A new node that cannot store: refused, but known. */
    CHECK_EQ_INT(pres_apply(p, "b", 1, 1, 1, "r", 0, record, NULL), PRES_FULL);
    CHECK(pres_node_get(p, "b", &info) && info.version == 0 && info.players == 0);
    pres_player four[] = {{NULL, 1, "r"}, {NULL, 2, "r"}, {NULL, 3, "r"}, {NULL, 4, "r"}};
    CHECK_EQ_INT(pres_replace(p, "b", 1, 1, four, 4, 0, record, NULL), 4);
    EXPECT("");
    /* Freeing makes room. */
    CHECK_EQ_INT(pres_apply(p, "a", 1, 5, 2, NULL, 0, record, NULL), PRES_APPLIED);
    EXPECT("-a/2/r ");
    CHECK_EQ_INT(pres_apply(p, "a", 1, 6, 4, "r", 0, record, NULL), PRES_APPLIED);
    EXPECT("+a/4/r ");
    CHECK_EQ_INT(pres_count(p), 3);
    /* A replace frees its own gone players before storing its newcomers. */
    pres_player swap[] = {{NULL, 10, "q"}, {NULL, 11, "q"}, {NULL, 12, "q"}};
    CHECK_EQ_INT(pres_replace(p, "a", 1, 7, swap, 3, 0, record, NULL), 0);
    EXPECT("-a/1/s -a/3/r -a/4/r +a/10/q +a/11/q +a/12/q ");
    CHECK_EQ_INT(pres_replace(p, "b", 1, 1, four, 4, 0, NULL, NULL), 4);
    pres_drop(p, "a", NULL, NULL);
    CHECK_EQ_INT(pres_replace(p, "b", 1, 1, four, 4, 0, record, NULL), 1);
    EXPECT("+b/1/r +b/2/r +b/3/r ");
    /* max 0 stores nothing. */
    pres *z = pres_create(0, KEY);
    CHECK_EQ_INT(pres_apply(z, "a", 1, 1, 1, "r", 0, NULL, NULL), PRES_FULL);
    CHECK_EQ_INT(pres_count(z), 0);
    pres_destroy(z);
    pres_destroy(p);
}

static void test_invalid(void)
{
    pres *p = pres_create(10, KEY);
    char long65[66], long64[65];
    memset(long65, 'n', 65);
    long65[65] = '\0';
    memset(long64, 'n', 64);
    long64[64] = '\0';
    const char *bad[] = {"", "a b", "caf\xc3\xa9", "a/b", "a:b", long65, "\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(pres_apply(p, bad[i], 1, 1, 1, "r", 0, record, NULL), PRES_INVALID);
        CHECK_EQ_INT(pres_apply(p, "a", 1, 1, 1, bad[i], 0, record, NULL), PRES_INVALID);
        CHECK(!pres_node_get(p, bad[i], NULL));
    }
    CHECK_EQ_INT(pres_apply(p, NULL, 1, 1, 1, "r", 0, record, NULL), PRES_INVALID);
    EXPECT("");
    CHECK(!pres_node_get(p, "a", NULL)); /* an invalid room did not create the node */
    CHECK_EQ_INT(pres_count(p), 0);
    /* The edges that are fine: 64 bytes, every allowed class. */
    CHECK_EQ_INT(pres_apply(p, long64, 1, 1, 1, long64, 0, record, NULL), PRES_STALE);
    CHECK_EQ_INT(pres_apply(p, "Az09._-", 1, 1, 1, "x", 0, NULL, NULL), PRES_STALE);
    seen[0] = '\0';
    CHECK_EQ_INT(pres_who(p, long64, NULL, NULL), 1);
    CHECK_EQ_INT(pres_who(p, long65, NULL, NULL), 0);
    pres_destroy(p);
}

static void test_many(void)
{
    enum { NODES = 10, EACH = 10000, ROOMS = 50 };
    pres *p = pres_create(NODES * EACH, KEY);
    char node[16], room[16];
    int full = 0;
    for (int n = 0; n < NODES; n++) {
        snprintf(node, sizeof node, "node-%d", n);
        for (uint64_t i = 1; i <= EACH; i++) {
            snprintf(room, sizeof room, "r%d", (int)(i % ROOMS));
            full += pres_apply(p, node, 1, i, i * 7919, room, 0, NULL, NULL) == PRES_FULL;
        }
    }
    CHECK_EQ_INT(full, 0);
    CHECK_EQ_INT(pres_count(p), NODES * EACH);
    CHECK_EQ_INT(pres_apply(p, "node-0", 1, EACH + 1, 1, "r1", 0, NULL, NULL), PRES_FULL);
    CHECK_EQ_INT(pres_who(p, "r7", NULL, NULL), NODES * EACH / ROOMS);
    const char *r = NULL;
    CHECK(pres_room_of(p, "node-3", 77 * 7919, &r) && strcmp(r, "r27") == 0);
    /* Half leave one by one, the others with their node. */
    for (int n = 0; n < NODES / 2; n++) {
        snprintf(node, sizeof node, "node-%d", n);
        for (uint64_t i = 1; i <= EACH; i++)
            pres_apply(p, node, 1, EACH + i, i * 7919, NULL, 0, NULL, NULL);
    }
    CHECK_EQ_INT(pres_count(p), NODES / 2 * EACH);
    for (int n = NODES / 2; n < NODES; n++) {
        snprintf(node, sizeof node, "node-%d", n);
        pres_drop(p, node, NULL, NULL);
    }
    CHECK_EQ_INT(pres_count(p), 0);
    CHECK_EQ_INT(pres_who(p, "r7", NULL, NULL), 0);
    /* And the spare entries are taken again. */
    CHECK_EQ_INT(pres_apply(p, "node-0", 1, 2 * EACH + 1, 1, "r1", 0, NULL, NULL), PRES_APPLIED);
    pres_destroy(p); /* LeakSanitizer: every room, node and entry freed */
}

int main(void)
{
    test_join_move_leave();
    test_versions();
    test_incarnation();
    test_replace();
    test_expire_and_drop();
    test_who_and_nodes();
    test_callbacks_read();
    test_bound();
    test_invalid();
    test_many();
    return check_report("test_presence");
}
