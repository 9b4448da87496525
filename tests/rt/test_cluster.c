/* gmud/cluster.h against a real redis-server on a free loopback port: two
 * nodes on one loop exchange messages and presence; garbage, forgeries,
 * replays and unsigned envelopes published by another Redis client are
 * refused and counted, and so are the keys it writes too big to read; a paused Redis (SIGSTOP) times the links out,
 * bounds the publishes, and the nodes come back on their own; a Redis
 * killed and started again (empty) gets the presence registered again. */
#include <hiredis/hiredis.h>

#include "cluster_wire.h"
#include "redis_util.h"
#include "rt_util.h"

#define ROUNDS 200

typedef struct node {
    gmud_cluster *c;
    int up, downs;
    uint64_t got, next;         /* messages, and the number the next must carry */
    int order_ok, json_ok;
    int joins, leaves;
    char last_join[80];
} node;

static test_redis redis;

static void on_message(gmud_cluster *c, const gmud_cluster_msg *m, void *user)
{
    node *n = user;
    (void)c;
    unsigned long long k = 0;
    if (m->json) {
        json_t *v = json_object_get(m->value, "n");
        n->json_ok &= json_is_integer(v) && strcmp(m->room, "tavern") == 0;
        k = (unsigned long long)json_integer_value(v);
    } else if (sscanf((const char *)m->data, "line %llu", &k) != 1) {
        n->order_ok = 0;
    }
    if (k != n->next)
        n->order_ok = 0;
    n->next = k + 1;
    n->got++;
}

static void on_presence(gmud_cluster *c, const gmud_cluster_player *p, int joined, void *user)
{
    node *n = user;
    (void)c;
    if (joined) {
        n->joins++;
        snprintf(n->last_join, sizeof n->last_join, "%s/%llu/%s", p->node,
                 (unsigned long long)p->player, p->room);
    } else {
        n->leaves++;
    }
}

static void on_link(gmud_cluster *c, int up, const gmud_error *why, void *user)
{
    node *n = user;
    (void)c;
    (void)why;
    n->up = up;
    if (!up)
        n->downs++;
}

static void node_start(uv_loop_t *loop, node *n, const char *name, const char *prefix,
                       const char *secret)
{
    memset(n, 0, sizeof *n);
    n->order_ok = n->json_ok = 1;
    gmud_cluster_config cfg;
    gmud_cluster_default_config(&cfg);
    cfg.port = (uint16_t)redis.port;
    cfg.node = name;
    cfg.prefix = prefix;
    cfg.ttl_ms = 1200;
    cfg.timeout_ms = 400;
    cfg.backoff_max_ms = 300;
    cfg.max_pending = 64 * 1024;
    if (secret != NULL) {
        cfg.secret = (const uint8_t *)secret;
        cfg.secret_len = strlen(secret);
    }
    cfg.cb = (gmud_cluster_callbacks){on_message, on_presence, on_link, n};
    cfg.log = rt_log;
    gmud_error err;
    n->c = gmud_cluster_create(loop, &cfg, &err);
    CHECK(n->c != NULL);
    if (n->c == NULL)
        fprintf(stderr, "gmud_cluster_create: %s\n", err.message);
}

typedef struct pair {
    node *a, *b;
} pair;

static int both_up(void *p)
{
    pair *x = p;
    return x->a->up && x->b->up;
}

static int both_down(void *p)
{
    pair *x = p;
    return !x->a->up && !x->b->up;
}

static uint64_t want_got;
static int got_all(void *p)
{
    return ((node *)p)->got >= want_got;
}

static size_t who(node *n, const char *room)
{
    return gmud_cluster_who(n->c, room, NULL, NULL, NULL);
}

typedef struct who_wait {
    node *n;
    const char *room;
    size_t want;
} who_wait;

static int who_is(void *p)
{
    who_wait *w = p;
    return who(w->n, w->room) == w->want;
}

static gmud_cluster_stats stats(node *n)
{
    gmud_cluster_stats st;
    gmud_cluster_stats_get(n->c, &st);
    return st;
}

/* A second Redis client, as anyone who can reach Redis is. */
static void raw_publish(const char *chan, const void *data, size_t len)
{
    redisContext *r = redisConnect("127.0.0.1", (int)redis.port);
    CHECK(r != NULL && r->err == 0);
    if (r == NULL)
        return;
    redisReply *rep = redisCommand(r, "PUBLISH %s %b", chan, data, len);
    CHECK(rep != NULL && rep->type == REDIS_REPLY_INTEGER);
    freeReplyObject(rep);
    redisFree(r);
}

static void publish_n(node *n, int from, int count, int json)
{
    char msg[64];
    for (int i = from; i < from + count; i++) {
        int len = json ? snprintf(msg, sizeof msg, "{\"n\":%d}", i)
                       : snprintf(msg, sizeof msg, "line %d", i);
        gmud_error err;
        CHECK_EQ_INT(gmud_cluster_publish(n->c, "tavern", 7, msg, (size_t)len, json, &err), 0);
    }
}

static void test_exchange(uv_loop_t *loop, node *a, node *b)
{
    gmud_error err;
    CHECK_EQ_INT(gmud_cluster_set_room(a->c, 7, "tavern", &err), 0);
    CHECK_EQ_INT(gmud_cluster_set_room(b->c, 5, "tavern", &err), 0);
    CHECK_EQ_INT(gmud_cluster_set_room(b->c, 6, "cellar", &err), 0);
    who_wait w = {a, "tavern", 2};
    CHECK(rt_run_until(loop, who_is, &w, 3000));
    w = (who_wait){b, "tavern", 2};
    CHECK(rt_run_until(loop, who_is, &w, 3000));
    CHECK_EQ_INT(who(a, "cellar"), 1);
    CHECK(strcmp(a->last_join, "b/6/cellar") == 0 || strcmp(a->last_join, "b/5/tavern") == 0);
    /* Messages: whole and in order, text then JSON. */
    publish_n(a, 0, ROUNDS, 0);
    want_got = ROUNDS;
    CHECK(rt_run_until(loop, got_all, b, 3000));
    publish_n(a, ROUNDS, ROUNDS, 1);
    want_got = 2 * ROUNDS;
    CHECK(rt_run_until(loop, got_all, b, 3000));
    CHECK_EQ_INT(b->got, 2 * ROUNDS);
    CHECK(b->order_ok && b->json_ok);
    CHECK_EQ_INT(a->got, 0); /* its own are not echoed to itself */
    CHECK_EQ_INT(stats(b).lost, 0);
    /* A move, then a leave: b sees both. */
    int leaves = b->leaves;
    CHECK_EQ_INT(gmud_cluster_set_room(a->c, 7, "cellar", &err), 0);
    w = (who_wait){b, "cellar", 2};
    CHECK(rt_run_until(loop, who_is, &w, 3000));
    CHECK_EQ_INT(who(b, "tavern"), 1);
    CHECK_EQ_INT(gmud_cluster_set_room(a->c, 7, NULL, &err), 0);
    w = (who_wait){b, "cellar", 1};
    CHECK(rt_run_until(loop, who_is, &w, 3000));
    CHECK(b->leaves >= leaves + 2);
    CHECK_EQ_INT(gmud_cluster_set_room(a->c, 7, "bad room", &err), GMUD_ERR_INVALID);
    CHECK_EQ_INT(gmud_cluster_set_room(a->c, 7, "tavern", &err), 0);
}

static uint64_t refused(node *n)
{
    gmud_cluster_stats st = stats(n);
    return st.refused_malformed + st.refused_oversize + st.refused_unknown + st.refused_mac +
           st.refused_replay;
}

typedef struct refusal_wait {
    node *n;
    uint64_t want;
} refusal_wait;

static int refused_reached(void *p)
{
    refusal_wait *w = p;
    return refused(w->n) >= w->want;
}

static void test_garbage(uv_loop_t *loop, node *a, node *b)
{
    uint64_t got = b->got, before = refused(b);
    gmud_cluster_stats s0 = stats(b);
    raw_publish("gmud:bus", "hello", 5);
    /* A well-formed envelope from a node that never registered. */
    uint8_t env[256];
    cw_msg m = {.kind = CW_MESSAGE, .node = "ghost", .node_len = 5, .incarnation = 9, .seq = 1,
                .room = "tavern", .room_len = 6, .player = 1, .payload = (const uint8_t *)"hi",
                .payload_len = 2};
    gmud_error err;
    ptrdiff_t n = cw_encode(&m, NULL, 0, env, sizeof env, &err);
    CHECK(n > 0);
    raw_publish("gmud:bus", env, (size_t)n);
    /* One that claims to be a, with an incarnation a does not have. */
    m.node = "a";
    m.node_len = 1;
    n = cw_encode(&m, NULL, 0, env, sizeof env, &err);
    raw_publish("gmud:bus", env, (size_t)n);
    /* A MAC on a bus without a secret. */
    uint8_t key[16] = {1};
    m.node = "ghost";
    m.node_len = 5;
    n = cw_encode(&m, key, sizeof key, env, sizeof env, &err);
    raw_publish("gmud:bus", env, (size_t)n);
    refusal_wait w = {b, before + 4};
    CHECK(rt_run_until(loop, refused_reached, &w, 3000));
    gmud_cluster_stats s1 = stats(b);
    CHECK_EQ_INT(s1.refused_malformed - s0.refused_malformed, 1);
    CHECK_EQ_INT(s1.refused_unknown - s0.refused_unknown, 2);
    CHECK_EQ_INT(s1.refused_mac - s0.refused_mac, 1);
    CHECK_EQ_INT(b->got, got); /* nothing reached the application */
    CHECK(rt_log_find("bus envelope refused", "malformed") != NULL);
    (void)a;
}

/* Another Redis client writes keys the nodes read: a hash with a field too
 * long, one with too many fields, a set with a bad name. Nothing of them
 * is read into the node (the scripts answer a number instead), it says so,
 * and the real nodes' presence is untouched. */
static void redis_do(redisContext *r, const char *fmt, const char *arg)
{
    redisReply *rep = redisCommand(r, fmt, arg);
    CHECK(rep != NULL && rep->type != REDIS_REPLY_ERROR);
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "  %s: %s\n", fmt, rep->str);
    freeReplyObject(rep);
}

typedef struct dropped_wait {
    node *n;
    uint64_t want;
} dropped_wait;

static int dropped_reached(void *p)
{
    dropped_wait *w = p;
    return stats(w->n).presence_dropped >= w->want;
}

static int logged(void *p)
{
    const char **ab = p;
    return rt_log_find(ab[0], ab[1]) != NULL;
}

static void test_rogue_keys(uv_loop_t *loop, node *a, node *b)
{
    redisContext *r = redisConnect("127.0.0.1", (int)redis.port);
    CHECK(r != NULL && r->err == 0);
    if (r == NULL)
        return;
    size_t before = who(b, "tavern");
    uint64_t remote = stats(b).remote_players;
    static char big[1 << 20];
    memset(big, 'x', sizeof big - 1);
    redis_do(r, "HSET gmud:node:ghost2 #inc 5 #ver 1 1 %s", big);
    redis_do(r, "SADD gmud:nodes %s", "ghost2");
    dropped_wait w = {b, stats(b).presence_dropped + 1};
    CHECK(rt_run_until(loop, dropped_reached, &w, 3000));
    const char *long_field[2] = {"ghost2's key not read", "a field over 64 bytes"};
    CHECK(logged(long_field));
    /* Past max_players fields: filled by a script, in one call. */
    redis_do(r, "DEL gmud:node:ghost2%s", "");
    const char *fill[4] = {"EVAL",
                           ("redis.call('HSET', KEYS[1], '#inc', 5, '#ver', 1) "
                            "for i = 1, 200001 do redis.call('HSET', KEYS[1], i, 'r') end"),
                           "1", "gmud:node:ghost2"};
    redisReply *rep = redisCommandArgv(r, 4, fill, NULL);
    CHECK(rep != NULL && rep->type != REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    w.want = stats(b).presence_dropped + 1;
    CHECK(rt_run_until(loop, dropped_reached, &w, 3000));
    const char *many[2] = {"ghost2's key not read", "more players than max_players"};
    CHECK(logged(many));
    CHECK_EQ_INT(who(b, "tavern"), before);
    CHECK_EQ_INT(stats(b).remote_players, remote); /* a's players, no more */
    /* A name too long in the set: the set is not read, and says why. */
    char name[100];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    redis_do(r, "SADD gmud:nodes %s", name);
    const char *bad_name[2] = {"gmud:nodes holds a bad name", "not read"};
    CHECK(rt_run_until(loop, logged, bad_name, 3000));
    redis_do(r, "SREM gmud:nodes %s", name);
    redis_do(r, "DEL gmud:node:ghost2%s", "");
    redis_do(r, "SREM gmud:nodes %s", "ghost2");
    redisFree(r);
    CHECK(a->up && b->up);
}

/* A replay: an envelope a really sent, captured and published again. */
static void test_replay(uv_loop_t *loop, node *a, node *b)
{
    redisContext *r = redisConnect("127.0.0.1", (int)redis.port);
    CHECK(r != NULL && r->err == 0);
    if (r == NULL)
        return;
    redisReply *rep = redisCommand(r, "SUBSCRIBE gmud:bus");
    freeReplyObject(rep);
    struct timeval tv = {2, 0};
    redisSetTimeout(r, tv);
    publish_n(a, 0, 1, 1);
    b->next = 0;
    want_got = b->got + 1;
    CHECK(rt_run_until(loop, got_all, b, 3000)); /* out, and in the subscriber's socket */
    uint8_t copy[512];
    size_t len = 0;
    for (int i = 0; i < 20 && len == 0; i++) {
        void *v = NULL;
        if (redisGetReply(r, &v) != REDIS_OK)
            break;
        rep = v;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
            rep->element[2]->type == REDIS_REPLY_STRING && rep->element[2]->len > 5 &&
            rep->element[2]->str[4] == 'M' && rep->element[2]->len < sizeof copy) {
            len = rep->element[2]->len;
            memcpy(copy, rep->element[2]->str, len);
        }
        freeReplyObject(rep);
    }
    redisFree(r);
    CHECK(len > 0);
    uint64_t got = b->got, replays = stats(b).refused_replay;
    raw_publish("gmud:bus", copy, len);
    refusal_wait w = {b, refused(b) + 1};
    CHECK(rt_run_until(loop, refused_reached, &w, 3000));
    CHECK_EQ_INT(stats(b).refused_replay, replays + 1);
    CHECK_EQ_INT(b->got, got);
}

/* Redis paused: the links time out, publishes are refused at once and
 * counted, local state is kept; resumed: both come back by themselves. */
static void test_pause(uv_loop_t *loop, node *a, node *b)
{
    pair p = {a, b};
    gmud_cluster_stats a0 = stats(a);
    kill(redis.pid, SIGSTOP);
    /* Before the timeout: the pending bound, not memory, takes the load. */
    static char big[4096];
    memset(big, 'x', sizeof big);
    int accepted = 0, bounded = 0;
    for (int i = 0; i < 100; i++) {
        gmud_error err;
        int rc = gmud_cluster_publish(a->c, "tavern", 7, big, sizeof big, 0, &err);
        accepted += rc == 0;
        bounded += rc == GMUD_ERR_SLOW_CONSUMER;
    }
    CHECK(accepted > 0 && accepted <= 16);
    CHECK(bounded >= 84);
    CHECK(rt_run_until(loop, both_down, &p, 3000));
    gmud_error err;
    CHECK_EQ_INT(gmud_cluster_publish(a->c, "tavern", 7, "x", 1, 0, &err), GMUD_ERR_CLOSED);
    int partial = 0;
    gmud_cluster_who(a->c, "tavern", NULL, NULL, &partial);
    CHECK_EQ_INT(partial, 1);
    gmud_cluster_stats a1 = stats(a);
    CHECK(a1.timeouts > a0.timeouts);
    CHECK(a1.publish_dropped >= a0.publish_dropped + 85);
    CHECK_EQ_INT(a1.up, 0);
    rt_run_until(loop, NULL, NULL, 500);
    kill(redis.pid, SIGCONT);
    CHECK(rt_run_until(loop, both_up, &p, 5000));
    CHECK(stats(a).reconnects > a0.reconnects);
    /* The big ones sent before the pause may or may not have got through;
     * what is sent now does. */
    b->next = 0;
    uint64_t got = b->got;
    publish_n(a, 0, 10, 1);
    want_got = got + 10;
    CHECK(rt_run_until(loop, got_all, b, 3000));
    who_wait w = {b, "tavern", 2};
    CHECK(rt_run_until(loop, who_is, &w, 3000));
}

/* Redis killed and started again, empty: the nodes register again, and
 * each sees the other's players. */
static void test_restart(uv_loop_t *loop, node *a, node *b)
{
    pair p = {a, b};
    test_redis_stop(&redis);
    CHECK(rt_run_until(loop, both_down, &p, 3000));
    CHECK_EQ_INT(test_redis_start(&redis), 0);
    CHECK(rt_run_until(loop, both_up, &p, 5000));
    redisContext *r = redisConnect("127.0.0.1", (int)redis.port);
    redisReply *rep = r != NULL ? redisCommand(r, "HGET gmud:node:b 5") : NULL;
    CHECK(rep != NULL && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "tavern") == 0);
    freeReplyObject(rep);
    rep = r != NULL ? redisCommand(r, "PTTL gmud:node:b") : NULL;
    CHECK(rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0 &&
          rep->integer <= 1200);
    freeReplyObject(rep);
    redisFree(r);
    who_wait w = {a, "tavern", 2};
    CHECK(rt_run_until(loop, who_is, &w, 3000));
}

/* b leaves the cluster: a sees its players go at once (its goodbye). */
static void test_goodbye(uv_loop_t *loop, node *a, node *b)
{
    gmud_cluster_destroy(b->c);
    b->c = NULL;
    who_wait w = {a, "tavern", 1};
    CHECK(rt_run_until(loop, who_is, &w, 2000));
    CHECK_EQ_INT(who(a, "cellar"), 0);
}

/* With a secret: the nodes talk; an unsigned or wrongly keyed envelope is
 * refused. */
static void test_secret(uv_loop_t *loop)
{
    node c, d;
    const char *secret = "0123456789abcdef-shared";
    node_start(loop, &c, "c", "sec", secret);
    node_start(loop, &d, "d", "sec", secret);
    pair p = {&c, &d};
    CHECK(rt_run_until(loop, both_up, &p, 3000));
    publish_n(&c, 0, 5, 0);
    want_got = 5;
    CHECK(rt_run_until(loop, got_all, &d, 3000));
    uint8_t env[256];
    cw_msg m = {.kind = CW_HEARTBEAT, .node = "c", .node_len = 1, .incarnation = 3, .seq = 9,
                .payload = (const uint8_t *)"12345678", .payload_len = 8};
    gmud_error err;
    ptrdiff_t n = cw_encode(&m, NULL, 0, env, sizeof env, &err);
    raw_publish("sec:bus", env, (size_t)n);
    n = cw_encode(&m, (const uint8_t *)"another-secret-16b", 18, env, sizeof env, &err);
    raw_publish("sec:bus", env, (size_t)n);
    refusal_wait w = {&d, 2};
    CHECK(rt_run_until(loop, refused_reached, &w, 3000));
    CHECK_EQ_INT(stats(&d).refused_mac, 2);
    CHECK_EQ_INT(d.got, 5);
    gmud_cluster_destroy(c.c);
    gmud_cluster_destroy(d.c);
}

static void test_config(void)
{
    gmud_cluster_config cfg;
    gmud_cluster_default_config(&cfg);
    gmud_error err;
    uv_loop_t loop;
    uv_loop_init(&loop);
    CHECK(gmud_cluster_create(&loop, &cfg, &err) == NULL && err.code == GMUD_ERR_INVALID);
    cfg.node = "a b";
    CHECK(gmud_cluster_create(&loop, &cfg, &err) == NULL && strstr(err.message, "node") != NULL);
    cfg.node = "a";
    cfg.secret = (const uint8_t *)"short";
    cfg.secret_len = 5;
    CHECK(gmud_cluster_create(&loop, &cfg, &err) == NULL && strstr(err.message, "secret") != NULL);
    rt_loop_finish(&loop);
}

int main(void)
{
    rt_ignore_sigpipe();
    test_config();
    if (test_redis_start(&redis) != 0) {
        fprintf(stderr, "cannot start redis-server\n");
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    node a, b;
    node_start(&loop, &a, "a", "gmud", NULL);
    node_start(&loop, &b, "b", "gmud", NULL);
    pair p = {&a, &b};
    CHECK(rt_run_until(&loop, both_up, &p, 3000));
    if (a.c != NULL && b.c != NULL && a.up && b.up) {
        test_exchange(&loop, &a, &b);
        test_garbage(&loop, &a, &b);
        test_rogue_keys(&loop, &a, &b);
        test_replay(&loop, &a, &b);
        test_pause(&loop, &a, &b);
        test_restart(&loop, &a, &b);
        test_goodbye(&loop, &a, &b);
        test_secret(&loop);
    }
    gmud_cluster_destroy(a.c);
    gmud_cluster_destroy(b.c);
    rt_loop_finish(&loop);
    test_redis_stop(&redis);
    return check_report("test_cluster");
}
