/* The cluster presence mirror (src/core/presence.c), in memory with a fake
 * clock: changes and their callbacks in order, versions and incarnations,
 * whole-node replacement by difference, expiry, the bound, many players. */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "presence.h"

static char seen[4096];

static void record(const pres_player *p, int joined, void *user)
{
    (void)user;
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof seen - n, "%s%s/%llu/%s ", joined ? "+" : "-", p->node,
             (unsigned long long)p->player, p->room);
}

#define EXPECT(s)                                                         \
    do {                                                                  \
        CHECK(strcmp(seen, s) == 0);                                      \
        if (strcmp(seen, s) != 0)                                         \
            fprintf(stderr, "  got \"%s\", want \"%s\"\n", seen, s);     \
        seen[0] = '\0';                                                   \
    } while (0)

static void collect(const pres_player *p, void *user)
{
    char *out = user;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%s/%llu ", p->node, (unsigned long long)p->player);
}

static void test_changes(void)
{
    pres *p = pres_create(100);
    CHECK_EQ_INT(pres_apply(p, "a", 1, 1, 7, "tavern", 0, record, NULL), PRES_STALE); /* new */
    EXPECT("+a/7/tavern ");
    CHECK_EQ_INT(pres_apply(p, "a", 1, 2, 8, "tavern", 0, record, NULL), PRES_APPLIED);
    CHECK_EQ_INT(pres_apply(p, "a", 1, 3, 7, "cellar", 0, record, NULL), PRES_APPLIED);
    EXPECT("+a/8/tavern -a/7/tavern +a/7/cellar ");
    CHECK_EQ_INT(pres_apply(p, "a", 1, 3, 9, "x", 0, record, NULL), PRES_APPLIED); /* old */
    EXPECT("");
    CHECK_EQ_INT(pres_apply(p, "a", 1, 6, 8, NULL, 0, record, NULL), PRES_STALE); /* a gap */
    EXPECT("-a/8/tavern ");
    CHECK_EQ_INT(pres_apply(p, "a", 1, 7, 1, "bad room", 0, record, NULL), PRES_INVALID);
    CHECK_EQ_INT(pres_apply(p, "b c", 1, 7, 1, "x", 0, record, NULL), PRES_INVALID);
    EXPECT("");
    const char *room;
    CHECK(pres_room_of(p, "a", 7, &room) && strcmp(room, "cellar") == 0);
    CHECK(!pres_room_of(p, "a", 8, &room));
    /* A restarted node (new incarnation) lost its players. */
    CHECK_EQ_INT(pres_apply(p, "a", 2, 1, 1, "tavern", 0, record, NULL), PRES_STALE);
    EXPECT("-a/7/cellar +a/1/tavern ");
    pres_node_info info;
    CHECK(pres_node_get(p, "a", &info) && info.incarnation == 2 && info.version == 1 &&
          info.players == 1);
    CHECK_EQ_INT(pres_who(p, "cellar", NULL, NULL), 0);
    pres_destroy(p);
}

static void test_replace_and_who(void)
{
    pres *p = pres_create(100);
    pres_player was[] = {{NULL, 1, "t"}, {NULL, 2, "t"}, {NULL, 3, "c"}};
    CHECK_EQ_INT(pres_replace(p, "b", 5, 3, was, 3, 10, record, NULL), 0);
    EXPECT("+b/1/t +b/2/t +b/3/c ");
    pres_apply(p, "a", 1, 1, 9, "t", 10, NULL, NULL);
    pres_player now[] = {{NULL, 2, "t"}, {NULL, 3, "t"}, {NULL, 4, "c"}, {NULL, 5, "no room"}};
    CHECK_EQ_INT(pres_replace(p, "b", 5, 9, now, 4, 20, record, NULL), 1); /* the bad room */
    EXPECT("-b/3/c +b/3/t +b/4/c -b/1/t ");
    char out[256] = "";
    CHECK_EQ_INT(pres_who(p, "t", collect, out), 3);
    CHECK(strcmp(out, "b/2 a/9 b/3 ") == 0); /* the order they entered */
    pres_node_info info;
    CHECK(pres_node_get(p, "b", &info) && info.version == 9 && info.seen_ms == 20);
    /* Expiry: b seen at 20, a at 10; at 1015 with 1000 ms a goes, then b. */
    CHECK_EQ_INT(pres_expire(p, 1015, 1000, NULL, record, NULL), 1);
    EXPECT("-a/9/t ");
    pres_touch(p, "b", 500);
    CHECK_EQ_INT(pres_expire(p, 1400, 1000, NULL, record, NULL), 0);
    CHECK_EQ_INT(pres_expire(p, 1600, 1000, "b", record, NULL), 0); /* kept */
    pres_drop(p, "b", record, NULL);
    EXPECT("-b/2/t -b/3/t -b/4/c ");
    CHECK_EQ_INT(pres_count(p), 0);
    CHECK(!pres_node_get(p, "b", &info));
    pres_destroy(p);
}

static void test_bound(void)
{
    pres *p = pres_create(3);
    for (uint64_t i = 1; i <= 3; i++)
        CHECK(pres_apply(p, "a", 1, i, i, "r", 0, NULL, NULL) != PRES_FULL);
    CHECK_EQ_INT(pres_apply(p, "a", 1, 4, 4, "r", 0, record, NULL), PRES_FULL);
    EXPECT("");
    pres_player four[] = {{NULL, 1, "r"}, {NULL, 2, "r"}, {NULL, 3, "r"}, {NULL, 4, "r"}};
    CHECK_EQ_INT(pres_replace(p, "b", 1, 1, four, 4, 0, NULL, NULL), 4);
    pres_apply(p, "a", 1, 5, 1, NULL, 0, NULL, NULL);
    CHECK_EQ_INT(pres_apply(p, "a", 1, 6, 4, "r", 0, NULL, NULL), PRES_APPLIED);
    CHECK_EQ_INT(pres_count(p), 3);
    pres_destroy(p);
}

static void test_many(void)
{
    pres *p = pres_create(200000);
    char node[8], room[8];
    for (int n = 0; n < 10; n++) {
        snprintf(node, sizeof node, "n%d", n);
        for (uint64_t i = 1; i <= 10000; i++) {
            snprintf(room, sizeof room, "r%d", (int)(i % 50));
            CHECK(pres_apply(p, node, 1, i, i, room, 0, NULL, NULL) != PRES_FULL);
        }
    }
    CHECK_EQ_INT(pres_count(p), 100000);
    CHECK_EQ_INT(pres_who(p, "r7", NULL, NULL), 2000);
    for (int n = 0; n < 10; n++) {
        snprintf(node, sizeof node, "n%d", n);
        for (uint64_t i = 1; i <= 10000; i++)
            pres_apply(p, node, 1, 10000 + i, i, NULL, 0, NULL, NULL);
    }
    CHECK_EQ_INT(pres_count(p), 0);
    CHECK_EQ_INT(pres_who(p, "r7", NULL, NULL), 0);
    pres_destroy(p); /* LeakSanitizer: rooms and entries all freed */
}

int main(void)
{
    test_changes();
    test_replace_and_who();
    test_bound();
    test_many();
    return check_report("test_presence");
}
