/* src/rt/cluster.c: gmud/cluster.h on hiredis's async API and its libuv
 * adapter. The envelope is src/core/cluster_wire.c's, the mirror of the
 * cluster's presence src/core/presence.c's; this file moves bytes between
 * them and Redis, and bounds every request with its own clock, as the
 * packaged hiredis (0.14) has no timeouts in its libuv adapter.
 *
 * Two links: `cmd` for commands (PUBLISH, the presence hash, the poll) and
 * `sub`, subscribed to the bus. Both come up together and go down
 * together. Replies on `cmd` come in the order the requests went, so a
 * FIFO of send times says how old the oldest unanswered one is; `sub`
 * hears this node's own heartbeat once per tick when it is alive.
 *
 * hiredis frees a context itself when the connection drops or a connect
 * fails (after the callback), and must not be freed from inside its own
 * callbacks: failures found there are marked and torn down from the tick.
 */
#include "gmud/cluster.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_wire.h"
#include "gmud/json.h"
#include "gmud/server.h"
#include "presence.h"
#include "rand.h"

enum {
    TICK_MS = 25,            /* the timeout check's period */
    BACKOFF_MIN_MS = 50,
    FIFO_MAX = 1 << 16,      /* unanswered commands at most */
    HOLD_MAX = 64,           /* envelopes of a not yet verified node, held */
    HOLD_BYTES_MAX = 1 << 18,
    PEERS_MAX = 256,         /* remote nodes tracked for sequence numbers */
    KEY_MAX = GMUD_CLUSTER_NAME_MAX * 2 + 16
};

typedef enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_REGISTERING, LINK_UP } link_state;

/* What a command's reply is for (privdata). */
typedef enum req_kind { REQ_PLAIN, REQ_PUBLISH, REQ_EXEC, REQ_MEMBERS, REQ_HEAD, REQ_ALL } req_kind;

typedef struct req {
    req_kind kind;
    uint32_t bytes;                       /* REQ_PUBLISH: counted in pending */
    uint64_t inc, ver;                    /* REQ_ALL: what REQ_HEAD saw */
    char node[GMUD_CLUSTER_NAME_MAX + 1]; /* REQ_HEAD, REQ_ALL */
} req;

typedef struct peer {                      /* a remote node's envelope stream */
    char name[GMUD_CLUSTER_NAME_MAX + 1];
    uint64_t inc, seq;
} peer;

typedef struct held {                      /* an envelope waiting for its node's check */
    uint8_t *data;
    size_t len;
    char node[GMUD_CLUSTER_NAME_MAX + 1];  /* the node it claims to come from */
} held;

struct gmud_cluster {
    uv_loop_t *loop;
    gmud_cluster_config cfg;
    char node[GMUD_CLUSTER_NAME_MAX + 1];
    char host[64];
    char prefix[GMUD_CLUSTER_NAME_MAX + 1];
    uint8_t *secret;
    char chan[KEY_MAX], key[KEY_MAX], nodes_key[KEY_MAX];
    uint64_t inc, seq, ver;
    uint64_t reg_ver;                      /* the version the last registration wrote */
    redisAsyncContext *cmd, *sub;
    int cmd_ok, sub_ok;                    /* connected */
    link_state state;
    int broken;                            /* tear down at the next tick */
    const char *why;                       /* and why */
    uint64_t since_ms;                     /* the state's start */
    uint64_t backoff_ms, retry_at;
    int ever_up;
    gmud_timer *tick;
    uint64_t next_round;                   /* refresh, heartbeat and poll */
    uint64_t heard_ms;                     /* our own heartbeat last came back */
    uint64_t *fifo;                        /* send times of unanswered commands */
    size_t fifo_head, fifo_n;
    size_t pending;                        /* bytes of unacknowledged publishes */
    pres *mirror;
    peer peers[PEERS_MAX];
    size_t npeers;
    held hold[HOLD_MAX];
    size_t nhold, hold_bytes;
    int polling;                           /* a poll is answered piece by piece */
    int poll_soon;
    uint8_t *env;                          /* one envelope, CW_MAX bytes */
    gmud_json_limits jlim;
    gmud_cluster_stats st;
};

/* ---- Logging ---------------------------------------------------------- */

static void clog_(gmud_cluster *c, gmud_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void clog_(gmud_cluster *c, gmud_log_level level, const char *event, const char *fmt, ...)
{
    if (c->cfg.log == NULL)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    gmud_log_field f[] = {{"node", c->node, 0}};
    gmud_log_event ev = {level, "-", event, line, f, 1};
    c->cfg.log(c->cfg.log_user, &ev);
}

/* ---- Configuration ------------------------------------------------------ */

void gmud_cluster_default_config(gmud_cluster_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 6379;
    cfg->prefix = "gmud";
    cfg->ttl_ms = GMUD_CLUSTER_TTL_DEFAULT;
    cfg->timeout_ms = GMUD_CLUSTER_TIMEOUT_DEFAULT;
    cfg->backoff_max_ms = GMUD_CLUSTER_BACKOFF_MAX_DEFAULT;
    cfg->max_pending = 1u << 20;
    cfg->max_players = 200000;
}

int gmud_cluster_name_ok(const char *name)
{
    return name != NULL && cw_name_ok(name, strlen(name));
}

static int config_check(const gmud_cluster_config *cfg, gmud_error *err)
{
    if (!gmud_cluster_name_ok(cfg->node))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "cluster node name must be 1 to %d of A-Z a-z 0-9 . _ -",
                              GMUD_CLUSTER_NAME_MAX);
    if (!gmud_cluster_name_ok(cfg->prefix))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "cluster prefix must be a name");
    if (cfg->host == NULL || strlen(cfg->host) >= 64)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "cluster host: an address literal");
    if (cfg->port == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "cluster port must not be 0");
    if (cfg->secret != NULL && cfg->secret_len < GMUD_CLUSTER_SECRET_MIN)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "cluster secret: at least %d bytes",
                              GMUD_CLUSTER_SECRET_MIN);
    if (cfg->ttl_ms < 400)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "cluster ttl_ms: at least 400");
    if (cfg->timeout_ms == 0 || cfg->backoff_max_ms == 0 || cfg->max_pending == 0 ||
        cfg->max_players == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "cluster timeout, backoff, max_pending and max_players must be > 0");
    return 0;
}

/* ---- The FIFO of unanswered commands --------------------------------- */

static uint64_t now_ms(const gmud_cluster *c)
{
    return uv_now(c->loop);
}

static int fifo_push(gmud_cluster *c)
{
    if (c->fifo_n == FIFO_MAX)
        return -1;
    c->fifo[(c->fifo_head + c->fifo_n++) % FIFO_MAX] = now_ms(c);
    return 0;
}

static void fifo_pop(gmud_cluster *c)
{
    if (c->fifo_n == 0)
        return;
    c->fifo_head = (c->fifo_head + 1) % FIFO_MAX;
    c->fifo_n--;
}

/* ---- Commands --------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

static void fail(gmud_cluster *c, const char *why)
{
    if (!c->broken) {
        c->broken = 1;
        c->why = why;
    }
}

/* Sends one command on cmd; 0, or -1 (the link is failing). */
static int command(gmud_cluster *c, req *rq, int argc, const char **argv, const size_t *lens)
{
    if (c->cmd == NULL || c->broken || fifo_push(c) != 0) {
        free(rq);
        return -1;
    }
    if (redisAsyncCommandArgv(c->cmd, on_reply, rq, argc, argv, lens) != REDIS_OK) {
        c->fifo_n--;
        free(rq);
        fail(c, "a command could not be sent");
        return -1;
    }
    return 0;
}

static req *req_new(req_kind kind)
{
    req *rq = calloc(1, sizeof *rq);
    if (rq != NULL)
        rq->kind = kind;
    return rq;
}

static int plain(gmud_cluster *c, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    req *rq = req_new(REQ_PLAIN);
    return rq == NULL ? -1 : command(c, rq, argc, argv, lens);
}

/* ---- Envelopes out ------------------------------------------------------ */

static int publish(gmud_cluster *c, cw_msg *m, gmud_error *err)
{
    if (c->state != LINK_UP || c->broken)
        return gmud_error_set(err, GMUD_ERR_CLOSED, 0, "cluster link is down");
    m->node = c->node;
    m->node_len = strlen(c->node);
    m->incarnation = c->inc;
    m->seq = c->seq + 1;
    m->version = m->version != 0 ? m->version : c->ver;
    ptrdiff_t n = cw_encode(m, c->secret, c->cfg.secret_len, c->env, CW_MAX, err);
    if (n < 0)
        return (int)n;
    if (c->pending + (size_t)n > c->cfg.max_pending)
        return gmud_error_set(err, GMUD_ERR_SLOW_CONSUMER, 0,
                              "cluster: %zu bytes unacknowledged by Redis, the bound", c->pending);
    req *rq = req_new(REQ_PUBLISH);
    if (rq == NULL)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory");
    rq->bytes = (uint32_t)n;
    const char *argv[3] = {"PUBLISH", c->chan, (const char *)c->env};
    size_t lens[3] = {7, strlen(c->chan), (size_t)n};
    if (command(c, rq, 3, argv, lens) != 0)
        return gmud_error_set(err, GMUD_ERR_CLOSED, 0, "cluster link is failing");
    c->seq++;
    c->pending += (size_t)n;
    return 0;
}

int gmud_cluster_publish(gmud_cluster *c, const char *room, uint64_t player, const void *data,
                         size_t len, int json, gmud_error *err)
{
    if (!gmud_cluster_name_ok(room) || len > GMUD_CLUSTER_PAYLOAD_MAX)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "cluster: a bad room or %zu bytes", len);
    cw_msg m = {.kind = CW_MESSAGE, .json = json != 0, .room = room, .room_len = strlen(room),
                .player = player, .payload = data, .payload_len = len};
    int rc = publish(c, &m, err);
    if (rc == GMUD_ERR_CLOSED || rc == GMUD_ERR_SLOW_CONSUMER || rc == GMUD_ERR_NOMEM)
        c->st.publish_dropped++;
    return rc;
}

static void heartbeat(gmud_cluster *c)
{
    uint8_t t[8];
    uint64_t us = uv_hrtime() / 1000;
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(us >> (8 * i));
    cw_msg m = {.kind = CW_HEARTBEAT, .payload = t, .payload_len = 8};
    gmud_error err;
    publish(c, &m, &err); /* a lost heartbeat is noticed by its absence */
}

/* ---- Presence: this node's hash ------------------------------------ */

static void u64s(uint64_t v, char *out)
{
    snprintf(out, 24, "%" PRIu64, v);
}

static void key_expire(gmud_cluster *c)
{
    char ms[24];
    u64s((uint64_t)c->cfg.ttl_ms * 3 / 4, ms);
    const char *argv[3] = {"PEXPIRE", c->key, ms};
    plain(c, 3, argv);
}

/* The change of one local player in Redis, and on the bus. */
static void presence_out(gmud_cluster *c, uint64_t player, const char *room, const char *left)
{
    char id[24], ver[24];
    u64s(player, id);
    u64s(c->ver, ver);
    if (room != NULL) {
        const char *argv[6] = {"HSET", c->key, id, room, "#ver", ver};
        plain(c, 6, argv);
    } else {
        const char *del[3] = {"HDEL", c->key, id};
        plain(c, 3, del);
        const char *argv[4] = {"HSET", c->key, "#ver", ver};
        plain(c, 4, argv);
    }
    key_expire(c);
    const char *r = room != NULL ? room : left;
    cw_msg m = {.kind = room != NULL ? CW_JOIN : CW_LEAVE, .room = r, .room_len = strlen(r),
                .player = player, .version = c->ver};
    gmud_error err;
    publish(c, &m, &err); /* others notice the version when they poll */
}

int gmud_cluster_set_room(gmud_cluster *c, uint64_t player, const char *room, gmud_error *err)
{
    if (room != NULL && !gmud_cluster_name_ok(room))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "cluster: a bad room name");
    const char *was = NULL;
    char left[GMUD_CLUSTER_NAME_MAX + 1] = "";
    if (pres_room_of(c->mirror, c->node, player, &was)) {
        if (room != NULL && strcmp(was, room) == 0)
            return 0;
        snprintf(left, sizeof left, "%s", was);
    } else if (room == NULL) {
        return 0;
    }
    c->ver++;
    int rc = pres_apply(c->mirror, c->node, c->inc, c->ver, player, room, now_ms(c), NULL, NULL);
    if (rc == PRES_FULL) {
        c->st.presence_dropped++;
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "cluster: presence table full");
    }
    if (c->state == LINK_UP)
        presence_out(c, player, room, left);
    return 0;
}

/* Registers this node whole, in one transaction: the hash replaced by
 * what the mirror holds for this node, its TTL, its name in the set. */
typedef struct reg_args {
    const char **argv;
    char (*ids)[24];
    size_t n, k;
} reg_args;

static void reg_add(const pres_player *p, void *user)
{
    reg_args *a = user;
    u64s(p->player, a->ids[a->k]);
    a->argv[a->n++] = a->ids[a->k++];
    a->argv[a->n++] = p->room;
}

static int register_hash(gmud_cluster *c, size_t players)
{
    size_t max = 6 + 2 * players;
    reg_args a = {malloc(max * sizeof *a.argv), malloc((players + 1) * sizeof *a.ids), 0, 0};
    size_t *lens = malloc(max * sizeof *lens);
    req *rq = req_new(REQ_PLAIN);
    int rc = -1;
    if (a.argv != NULL && a.ids != NULL && lens != NULL && rq != NULL) {
        char inc[24], ver[24];
        u64s(c->inc, inc);
        u64s(c->ver, ver);
        const char *head[6] = {"HSET", c->key, "#inc", inc, "#ver", ver};
        memcpy(a.argv, head, sizeof head);
        a.n = 6;
        pres_node_each(c->mirror, c->node, reg_add, &a);
        for (size_t i = 0; i < a.n; i++)
            lens[i] = strlen(a.argv[i]);
        rc = command(c, rq, (int)a.n, a.argv, lens);
        rq = NULL;
    }
    free(rq);
    free(a.argv);
    free(a.ids);
    free(lens);
    return rc;
}

static int register_node(gmud_cluster *c)
{
    pres_node_info info = {0};
    pres_node_get(c->mirror, c->node, &info);
    const char *multi[1] = {"MULTI"}, *del[2] = {"DEL", c->key}, *exec[1] = {"EXEC"};
    const char *sadd[3] = {"SADD", c->nodes_key, c->node};
    size_t elen[1] = {4};
    c->reg_ver = c->ver;
    if (plain(c, 1, multi) != 0 || plain(c, 2, del) != 0 || register_hash(c, info.players) != 0)
        return -1;
    key_expire(c);
    plain(c, 3, sadd);
    req *ex = req_new(REQ_EXEC);
    return ex == NULL ? -1 : command(c, ex, 1, exec, elen);
}

/* ---- The poll: the other nodes' presence, read from Redis ------------ */

/* Anyone who can write to Redis can fill the set or a hash, and hiredis
 * holds a whole reply before gmud sees it: so every read is a script that
 * checks sizes inside Redis and answers a number instead of anything over
 * the bounds (ARGV[1] elements, each at most ARGV[2] bytes). A name is at
 * most 64 bytes, a number 20. */
static const char SCRIPT_MEMBERS[] =
    "local n = redis.call('SCARD', KEYS[1]) "
    "if n > tonumber(ARGV[1]) then return n end "
    "local m = redis.call('SMEMBERS', KEYS[1]) "
    "for i = 1, #m do if #m[i] > tonumber(ARGV[2]) then return -i end end "
    "return m";
static const char SCRIPT_HEAD[] =
    "local i = redis.call('HGET', KEYS[1], '#inc') "
    "local v = redis.call('HGET', KEYS[1], '#ver') "
    "if not i or not v then return {} end "
    "if #i > 20 or #v > 20 then return -1 end "
    "return {i, v}";
static const char SCRIPT_ALL[] =
    "local n = redis.call('HLEN', KEYS[1]) "
    "if n > tonumber(ARGV[1]) then return n end "
    "local a = redis.call('HGETALL', KEYS[1]) "
    "for i = 1, #a do if #a[i] > tonumber(ARGV[2]) then return -i end end "
    "return a";

/* EVAL script 1 key [max_elements max_bytes]. */
static int eval(gmud_cluster *c, req *rq, const char *script, const char *key, uint64_t max_n)
{
    char n[24], bytes[24];
    u64s(max_n, n);
    u64s(GMUD_CLUSTER_NAME_MAX, bytes);
    const char *argv[6] = {"EVAL", script, "1", key, n, bytes};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    return command(c, rq, max_n != 0 ? 6 : 4, argv, lens);
}

static void presence_changed(const pres_player *p, int joined, void *user)
{
    gmud_cluster *c = user;
    if (strcmp(p->node, c->node) == 0 || c->cfg.cb.on_presence == NULL)
        return;
    gmud_cluster_player cp = {p->node, p->player, p->room};
    c->cfg.cb.on_presence(c, &cp, joined, c->cfg.cb.user);
}

static void poll_start(gmud_cluster *c)
{
    if (c->polling || c->state != LINK_UP)
        return;
    req *rq = req_new(REQ_MEMBERS);
    if (rq != NULL && eval(c, rq, SCRIPT_MEMBERS, c->nodes_key, PEERS_MAX) == 0)
        c->polling = 1;
    c->poll_soon = 0;
}

static void ask_head(gmud_cluster *c, const char *node)
{
    char key[KEY_MAX];
    snprintf(key, sizeof key, "%s:node:%s", c->prefix, node);
    req *rq = req_new(REQ_HEAD);
    if (rq == NULL)
        return;
    snprintf(rq->node, sizeof rq->node, "%s", node);
    eval(c, rq, SCRIPT_HEAD, key, 0);
}

static int reply_u64(const redisReply *r, uint64_t *out)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(r->str[i] - '0');
    }
    *out = v;
    return 0;
}

static void drop_node(gmud_cluster *c, const char *node, const char *why)
{
    if (pres_node_get(c->mirror, node, NULL))
        clog_(c, GMUD_LOG_INFO, "cluster", "node %s left the cluster: %s", node, why);
    pres_drop(c->mirror, node, presence_changed, c);
    const char *argv[3] = {"SREM", c->nodes_key, node};
    plain(c, 3, argv);
}

typedef struct unlisted {
    gmud_cluster *c;
    const redisReply *members;
} unlisted;

static int listed(const redisReply *members, const char *node)
{
    size_t n = strlen(node);
    for (size_t i = 0; i < members->elements; i++) {
        const redisReply *e = members->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len == n && memcmp(e->str, node, n) == 0)
            return 1;
    }
    return 0;
}

/* A node the mirror holds but the set no longer lists (another node saw its
 * key expire and removed it) is asked about all the same: the answer, not
 * the set, says it is gone. */
static void ask_unlisted(const char *node, const pres_node_info *info, void *user)
{
    unlisted *u = user;
    (void)info;
    if (strcmp(node, u->c->node) != 0 && !listed(u->members, node))
        ask_head(u->c, node);
}

static void on_members(gmud_cluster *c, const redisReply *r)
{
    c->polling = 0;
    if (r->type == REDIS_REPLY_INTEGER)
        clog_(c, GMUD_LOG_WARN, "cluster",
              "%s %s: not read (over %d names, or a name over %d bytes): the cluster's presence "
              "is what it was",
              c->nodes_key, r->integer > 0 ? "is too big" : "holds a bad name", PEERS_MAX,
              GMUD_CLUSTER_NAME_MAX);
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    unlisted u = {c, r};
    pres_nodes(c->mirror, ask_unlisted, &u);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len > GMUD_CLUSTER_NAME_MAX)
            continue;
        char name[GMUD_CLUSTER_NAME_MAX + 1];
        memcpy(name, e->str, e->len);
        name[e->len] = '\0';
        if (gmud_cluster_name_ok(name) && strcmp(name, c->node) != 0)
            ask_head(c, name);
    }
}

/* A node's incarnation and version: the same as the mirror's, or its whole
 * hash is read (returns 1: the answer comes later), or it is gone. */
static int on_head(gmud_cluster *c, req *rq, const redisReply *r)
{
    uint64_t inc, ver;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || reply_u64(r->element[0], &inc) ||
        reply_u64(r->element[1], &ver)) {
        int gone = r->type == REDIS_REPLY_ARRAY && r->elements == 0;
        drop_node(c, rq->node, gone ? "its key expired" : "its key holds no valid #inc and #ver");
        return 0;
    }
    pres_node_info info;
    if (pres_node_get(c->mirror, rq->node, &info) && info.incarnation == inc &&
        info.version == ver) {
        pres_touch(c->mirror, rq->node, now_ms(c));
        return 0;
    }
    char key[KEY_MAX];
    snprintf(key, sizeof key, "%s:node:%s", c->prefix, rq->node);
    req *all = req_new(REQ_ALL);
    if (all == NULL)
        return 0;
    snprintf(all->node, sizeof all->node, "%s", rq->node);
    /* The players, #inc and #ver: at most max_players + 2 fields. */
    return eval(c, all, SCRIPT_ALL, key, (uint64_t)c->cfg.max_players + 2) == 0;
}

static void held_replay(gmud_cluster *c, const char *node);
static int held_from(const gmud_cluster *c, const char *node);

static void on_all(gmud_cluster *c, req *rq, const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        c->st.presence_dropped++;
        clog_(c, GMUD_LOG_WARN, "cluster",
              "node %s's key not read (%s): its players are what they were", rq->node,
              r->integer > 0 ? "more players than max_players" : "a field over 64 bytes");
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return;
    uint64_t inc = 0, ver = 0;
    size_t n = 0;
    pres_player *pl = malloc((r->elements / 2 + 1) * sizeof *pl);
    char(*rooms)[GMUD_CLUSTER_NAME_MAX + 1] = malloc((r->elements / 2 + 1) * sizeof *rooms);
    if (pl == NULL || rooms == NULL) {
        free(pl);
        free(rooms);
        return;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (k->len == 4 && memcmp(k->str, "#inc", 4) == 0) {
            reply_u64(v, &inc);
        } else if (k->len == 4 && memcmp(k->str, "#ver", 4) == 0) {
            reply_u64(v, &ver);
        } else if (reply_u64(k, &pl[n].player) == 0 && v->len <= GMUD_CLUSTER_NAME_MAX) {
            memcpy(rooms[n], v->str, v->len);
            rooms[n][v->len] = '\0';
            pl[n].room = rooms[n];
            pl[n].node = rq->node;
            n++;
        }
    }
    if (inc != 0) {
        size_t lost = pres_replace(c->mirror, rq->node, inc, ver, pl, n, now_ms(c),
                                   presence_changed, c);
        c->st.presence_dropped += lost;
    }
    free(pl);
    free(rooms);
}

/* ---- Envelopes in ------------------------------------------------------ */

static peer *peer_of(gmud_cluster *c, const char *name)
{
    for (size_t i = 0; i < c->npeers; i++)
        if (strcmp(c->peers[i].name, name) == 0)
            return &c->peers[i];
    if (c->npeers == PEERS_MAX)
        return NULL;
    peer *p = &c->peers[c->npeers++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

static void hold(gmud_cluster *c, const uint8_t *data, size_t len, const char *node)
{
    if (c->nhold == HOLD_MAX || c->hold_bytes + len > HOLD_BYTES_MAX) {
        c->st.refused_unknown++;
        return;
    }
    uint8_t *copy = malloc(len);
    if (copy == NULL) {
        c->st.refused_unknown++;
        return;
    }
    memcpy(copy, data, len);
    int asked = held_from(c, node);
    held *h = &c->hold[c->nhold++];
    h->data = copy;
    h->len = len;
    snprintf(h->node, sizeof h->node, "%s", node);
    c->hold_bytes += len;
    if (!asked)
        ask_head(c, node); /* its answer replays what node's envelopes are held */
}

static void deliver(gmud_cluster *c, const cw_msg *m, const char *node);

/* An envelope whose node is checked: its sequence, then what it says. */
static void accept_env(gmud_cluster *c, const cw_msg *m, const char *node)
{
    peer *p = peer_of(c, node);
    if (p == NULL) {
        c->st.refused_unknown++;
        return;
    }
    if (p->inc != m->incarnation) {
        p->inc = m->incarnation;
        p->seq = m->seq - 1;
    }
    if (m->seq <= p->seq) {
        c->st.refused_replay++;
        clog_(c, GMUD_LOG_WARN, "cluster", "envelope %" PRIu64 " from %s again: refused", m->seq,
              node);
        return;
    }
    c->st.lost += m->seq - p->seq - 1;
    p->seq = m->seq;
    deliver(c, m, node);
}

static void deliver_message(gmud_cluster *c, const cw_msg *m, const char *node)
{
    char room[GMUD_CLUSTER_NAME_MAX + 1];
    memcpy(room, m->room, m->room_len);
    room[m->room_len] = '\0';
    json_t *v = NULL;
    if (m->json) {
        gmud_error err;
        if (gmud_json_parse(m->payload, m->payload_len, &c->jlim, &v, &err) != 0) {
            c->st.refused_malformed++;
            clog_(c, GMUD_LOG_WARN, "cluster", "message from %s refused: %s", node, err.message);
            return;
        }
    }
    c->st.received++;
    gmud_cluster_msg msg = {node, room, m->player, m->payload, m->payload_len, m->json, v};
    if (c->cfg.cb.on_message != NULL)
        c->cfg.cb.on_message(c, &msg, c->cfg.cb.user);
    json_decref(v);
}

static void deliver(gmud_cluster *c, const cw_msg *m, const char *node)
{
    char room[GMUD_CLUSTER_NAME_MAX + 1];
    memcpy(room, m->room, m->room_len);
    room[m->room_len] = '\0';
    switch (m->kind) {
    case CW_MESSAGE:
        deliver_message(c, m, node);
        break;
    case CW_JOIN:
    case CW_LEAVE: {
        int rc = pres_apply(c->mirror, node, m->incarnation, m->version, m->player,
                            m->kind == CW_JOIN ? room : NULL, now_ms(c), presence_changed, c);
        if (rc == PRES_FULL)
            c->st.presence_dropped++;
        else if (rc == PRES_STALE)
            c->poll_soon = 1;
        break;
    }
    case CW_BYE:
        drop_node(c, node, "it said goodbye");
        break;
    case CW_HEARTBEAT:
        pres_touch(c->mirror, node, now_ms(c));
        break;
    }
}

static void own_heartbeat(gmud_cluster *c, const cw_msg *m)
{
    if (m->kind != CW_HEARTBEAT || m->incarnation != c->inc)
        return;
    uint64_t sent = 0;
    for (int i = 0; i < 8; i++)
        sent |= (uint64_t)m->payload[i] << (8 * i);
    uint64_t us = uv_hrtime() / 1000;
    c->heard_ms = now_ms(c);
    if (us >= sent) {
        c->st.rtt_count++;
        c->st.rtt_us_last = us - sent;
        c->st.rtt_us_sum += us - sent;
    }
}

static void on_envelope(gmud_cluster *c, const uint8_t *data, size_t len, int replay)
{
    cw_msg m;
    gmud_error err;
    cw_refusal r = cw_decode(data, len, c->secret, c->cfg.secret_len, &m, &err);
    if (r != CW_OK) {
        if (r == CW_OVERSIZE)
            c->st.refused_oversize++;
        else if (r == CW_BAD_MAC)
            c->st.refused_mac++;
        else
            c->st.refused_malformed++;
        clog_(c, GMUD_LOG_WARN, "cluster", "bus envelope refused (%s): %s", cw_refusal_name(r),
              err.message);
        return;
    }
    char node[GMUD_CLUSTER_NAME_MAX + 1];
    memcpy(node, m.node, m.node_len);
    node[m.node_len] = '\0';
    if (strcmp(node, c->node) == 0) {
        own_heartbeat(c, &m);
        return;
    }
    pres_node_info info;
    int known = pres_node_get(c->mirror, node, &info) && info.incarnation == m.incarnation;
    if (known)
        accept_env(c, &m, node);
    else if (replay) {
        c->st.refused_unknown++;
        clog_(c, GMUD_LOG_WARN, "cluster", "envelope from %s, not in the cluster: refused", node);
    } else {
        hold(c, data, len, node);
    }
}

/* After a node's presence is read: what it held goes through again, and
 * what is still unknown is refused. Only when no check is outstanding for
 * another node... each replay re-holds nothing (replay = 1). */
/* The held envelopes of node (NULL: of every node), in the order they
 * came, now that Redis has answered for it; the others stay held. */
static void held_replay(gmud_cluster *c, const char *node)
{
    held copy[HOLD_MAX];
    size_t n = 0, kept = 0;
    for (size_t i = 0; i < c->nhold; i++) {
        if (node == NULL || strcmp(c->hold[i].node, node) == 0) {
            copy[n++] = c->hold[i];
            c->hold_bytes -= c->hold[i].len;
        } else {
            c->hold[kept++] = c->hold[i];
        }
    }
    c->nhold = kept;
    for (size_t i = 0; i < n; i++) {
        on_envelope(c, copy[i].data, copy[i].len, 1);
        free(copy[i].data);
    }
}

static int held_from(const gmud_cluster *c, const char *node)
{
    for (size_t i = 0; i < c->nhold; i++)
        if (strcmp(c->hold[i].node, node) == 0)
            return 1;
    return 0;
}

/* ---- Replies ---------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    gmud_cluster *c = ac->data;
    req *rq = privdata;
    const redisReply *reply = r;
    if (c == NULL) {
        free(rq);
        return;
    }
    fifo_pop(c);
    if (rq->kind == REQ_PUBLISH)
        c->pending -= rq->bytes < c->pending ? rq->bytes : c->pending;
    if (reply == NULL) {
        fail(c, "the Redis link failed");
        free(rq);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        clog_(c, GMUD_LOG_WARN, "cluster", "Redis refused a command: %.*s", (int)reply->len,
              reply->str);
        if (rq->kind == REQ_EXEC)
            fail(c, "registration refused");
        if (rq->kind == REQ_HEAD || rq->kind == REQ_ALL)
            held_replay(c, rq->node);
        free(rq);
        return;
    }
    switch (rq->kind) {
    case REQ_PUBLISH:
        c->st.published++;
        break;
    case REQ_EXEC:
        if (c->state == LINK_REGISTERING) {
            c->state = LINK_UP;
            c->backoff_ms = 0;
            c->heard_ms = now_ms(c);
            c->next_round = 0;
            if (c->ever_up)
                c->st.reconnects++;
            c->ever_up = 1;
            clog_(c, GMUD_LOG_INFO, "cluster", "up: subscribed and registered on %s:%u",
                  c->host, (unsigned)c->cfg.port);
            if (c->cfg.cb.on_link != NULL)
                c->cfg.cb.on_link(c, 1, NULL, c->cfg.cb.user);
        }
        if (c->ver != c->reg_ver && register_node(c) != 0)
            fail(c, "registration could not be sent"); /* moves while registering */
        break;
    case REQ_MEMBERS:
        on_members(c, reply);
        break;
    case REQ_HEAD:
        if (!on_head(c, rq, reply))
            held_replay(c, rq->node); /* known as it was, or gone: decided now */
        break;
    case REQ_ALL:
        on_all(c, rq, reply);
        held_replay(c, rq->node);
        break;
    case REQ_PLAIN:
        break;
    }
    free(rq);
}

static void on_bus(redisAsyncContext *ac, void *r, void *privdata)
{
    gmud_cluster *c = ac->data;
    const redisReply *reply = r;
    (void)privdata;
    if (c == NULL)
        return;
    if (reply == NULL) {
        fail(c, "the Redis subscription failed");
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *what = reply->element[0], *body = reply->element[2];
    if (what->len == 9 && memcmp(what->str, "subscribe", 9) == 0) {
        if (c->state == LINK_CONNECTING) {
            c->state = LINK_REGISTERING;
            if (register_node(c) != 0)
                fail(c, "registration could not be sent");
        }
        return;
    }
    if (what->len == 7 && memcmp(what->str, "message", 7) == 0 &&
        body->type == REDIS_REPLY_STRING)
        on_envelope(c, (const uint8_t *)body->str, body->len, 0);
}

/* ---- The links: up, down, and back up --------------------------------- */

static void on_connected(const redisAsyncContext *ac, int status)
{
    gmud_cluster *c = ac->data;
    if (c == NULL)
        return;
    int is_cmd = ac == c->cmd;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this call. */
        if (is_cmd)
            c->cmd = NULL;
        else
            c->sub = NULL;
        fail(c, "cannot connect to Redis");
        return;
    }
    if (is_cmd)
        c->cmd_ok = 1;
    else
        c->sub_ok = 1;
    if (c->cmd_ok && c->sub_ok && c->state == LINK_CONNECTING) {
        const char *argv[2] = {"SUBSCRIBE", c->chan};
        size_t lens[2] = {9, strlen(c->chan)};
        if (redisAsyncCommandArgv(c->sub, on_bus, NULL, 2, argv, lens) != REDIS_OK)
            fail(c, "cannot subscribe");
    }
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
    gmud_cluster *c = ac->data;
    (void)status;
    if (c == NULL)
        return;
    /* hiredis frees the context after this call. */
    if (ac == c->cmd)
        c->cmd = NULL;
    if (ac == c->sub)
        c->sub = NULL;
    fail(c, "Redis closed the connection");
}

static redisAsyncContext *link_open(gmud_cluster *c)
{
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->cfg.port);
    if (ac == NULL)
        return NULL;
    if (ac->err != 0 || redisLibuvAttach(ac, c->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connected);
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    return ac;
}

static void link_free(gmud_cluster *c, redisAsyncContext **pac)
{
    redisAsyncContext *ac = *pac;
    *pac = NULL;
    if (ac == NULL)
        return;
    ac->data = NULL; /* the callbacks redisAsyncFree makes find no cluster */
    redisAsyncFree(ac);
    (void)c;
}

static void link_down(gmud_cluster *c, const char *why)
{
    int was_up = c->state == LINK_UP;
    link_free(c, &c->cmd);
    link_free(c, &c->sub);
    c->cmd_ok = c->sub_ok = 0;
    c->fifo_n = 0;
    c->pending = 0;
    c->polling = 0;
    c->broken = 0;
    held_replay(c, NULL);
    c->state = LINK_DOWN;
    c->backoff_ms = c->backoff_ms == 0 ? BACKOFF_MIN_MS : c->backoff_ms * 2;
    if (c->backoff_ms > c->cfg.backoff_max_ms)
        c->backoff_ms = c->cfg.backoff_max_ms;
    c->retry_at = now_ms(c) + c->backoff_ms;
    clog_(c, was_up ? GMUD_LOG_WARN : GMUD_LOG_DEBUG, "cluster",
          "down: %s; again in %" PRIu64 " ms", why, c->backoff_ms);
    if (was_up && c->cfg.cb.on_link != NULL) {
        gmud_error err;
        gmud_error_set(&err, GMUD_ERR_IO, 0, "cluster link down: %s", why);
        c->cfg.cb.on_link(c, 0, &err, c->cfg.cb.user);
    }
}

static void link_up(gmud_cluster *c)
{
    c->cmd = link_open(c);
    c->sub = link_open(c);
    c->state = LINK_CONNECTING;
    c->since_ms = now_ms(c);
    if (c->cmd == NULL || c->sub == NULL)
        fail(c, "cannot start connecting to Redis");
}

/* ---- The tick ----------------------------------------------------------- */

static void round_trip(gmud_cluster *c, uint64_t now)
{
    uint64_t period = c->cfg.ttl_ms / 4;
    if (now < c->next_round && !c->poll_soon)
        return;
    if (now >= c->next_round) {
        c->next_round = now + period;
        key_expire(c);
        heartbeat(c);
    }
    poll_start(c);
}

static void check_deadlines(gmud_cluster *c, uint64_t now)
{
    uint64_t t = c->cfg.timeout_ms;
    if (c->state == LINK_CONNECTING || c->state == LINK_REGISTERING) {
        if (now - c->since_ms > t) {
            c->st.timeouts++;
            fail(c, "Redis did not answer the connect in time");
        }
        return;
    }
    if (c->fifo_n > 0 && now - c->fifo[c->fifo_head] > t) {
        c->st.timeouts++;
        fail(c, "a Redis request timed out");
    } else if (now - c->heard_ms > c->cfg.ttl_ms / 4 + t) {
        c->st.timeouts++;
        fail(c, "our heartbeat did not come back through the bus");
    }
}

static void on_tick(gmud_timer *timer, void *user)
{
    gmud_cluster *c = user;
    uint64_t now = now_ms(c);
    (void)timer;
    if (c->state != LINK_DOWN && !c->broken)
        check_deadlines(c, now);
    if (c->broken) {
        link_down(c, c->why);
    } else if (c->state == LINK_DOWN) {
        if (now >= c->retry_at)
            link_up(c);
    } else if (c->state == LINK_UP) {
        round_trip(c, now);
    }
    /* Other nodes not heard of for a TTL are gone, link or no link. */
    size_t gone = pres_expire(c->mirror, now, c->cfg.ttl_ms, c->node, presence_changed, c);
    if (gone > 0)
        clog_(c, GMUD_LOG_INFO, "cluster", "%zu node(s) left the cluster: not heard of for %u ms",
              gone, (unsigned)c->cfg.ttl_ms);
}

/* ---- Life ----------------------------------------------------------------- */

static int keys(gmud_cluster *c, gmud_error *err)
{
    int a = snprintf(c->chan, sizeof c->chan, "%s:bus", c->prefix);
    int b = snprintf(c->key, sizeof c->key, "%s:node:%s", c->prefix, c->node);
    int d = snprintf(c->nodes_key, sizeof c->nodes_key, "%s:nodes", c->prefix);
    if (a < 0 || b < 0 || d < 0 || (size_t)b >= sizeof c->key)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "cluster: names too long");
    return 0;
}

gmud_cluster *gmud_cluster_create(uv_loop_t *loop, const gmud_cluster_config *cfg,
                                  gmud_error *err)
{
    if (config_check(cfg, err) != 0)
        return NULL;
    gmud_cluster *c = calloc(1, sizeof *c);
    if (c == NULL) {
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->cfg = *cfg;
    snprintf(c->node, sizeof c->node, "%s", cfg->node);
    snprintf(c->host, sizeof c->host, "%s", cfg->host);
    snprintf(c->prefix, sizeof c->prefix, "%s", cfg->prefix);
    c->cfg.node = c->node;
    c->cfg.host = c->host;
    c->cfg.prefix = c->prefix;
    gmud_json_default_config(&c->jlim);
    uint64_t hash_key[2];
    if (keys(c, err) != 0 || rand_bytes(&c->inc, sizeof c->inc, err) != 0 ||
        rand_bytes(hash_key, sizeof hash_key, err) != 0) {
        free(c);
        return NULL;
    }
    c->inc |= 1; /* never 0 */
    c->fifo = malloc(FIFO_MAX * sizeof *c->fifo);
    c->env = malloc(CW_MAX);
    c->mirror = pres_create(cfg->max_players, hash_key);
    if (cfg->secret != NULL && (c->secret = malloc(cfg->secret_len)) != NULL)
        memcpy(c->secret, cfg->secret, cfg->secret_len);
    c->tick = gmud_timer_create(loop, 0, TICK_MS, on_tick, c);
    if (c->fifo == NULL || c->env == NULL || c->mirror == NULL || c->tick == NULL ||
        (cfg->secret != NULL && c->secret == NULL)) {
        gmud_cluster_destroy(c);
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory");
        return NULL;
    }
    c->cfg.secret = c->secret;
    /* This node is in its own mirror from the start, so who counts it. */
    pres_replace(c->mirror, c->node, c->inc, c->ver, NULL, 0, now_ms(c), NULL, NULL);
    return c;
}

/* Best effort: what is written now leaves now; the TTL does the rest. */
static void say_goodbye(gmud_cluster *c)
{
    if (c->state != LINK_UP || c->broken || c->cmd == NULL)
        return;
    cw_msg m = {.kind = CW_BYE};
    gmud_error err;
    publish(c, &m, &err);
    const char *del[2] = {"DEL", c->key};
    const char *srem[3] = {"SREM", c->nodes_key, c->node};
    plain(c, 2, del);
    plain(c, 3, srem);
    int done = 0;
    redisBufferWrite(&c->cmd->c, &done);
}

void gmud_cluster_destroy(gmud_cluster *c)
{
    if (c == NULL)
        return;
    say_goodbye(c);
    gmud_timer_destroy(c->tick);
    link_free(c, &c->cmd);
    link_free(c, &c->sub);
    for (size_t i = 0; i < c->nhold; i++)
        free(c->hold[i].data);
    pres_destroy(c->mirror);
    free(c->fifo);
    free(c->env);
    free(c->secret);
    free(c);
}

/* ---- Queries ----------------------------------------------------------- */

typedef struct who_args {
    void (*fn)(const gmud_cluster_player *p, void *user);
    void *user;
} who_args;

static void who_one(const pres_player *p, void *user)
{
    who_args *a = user;
    gmud_cluster_player cp = {p->node, p->player, p->room};
    a->fn(&cp, a->user);
}

size_t gmud_cluster_who(gmud_cluster *c, const char *room,
                        void (*fn)(const gmud_cluster_player *p, void *user), void *user,
                        int *partial)
{
    if (partial != NULL)
        *partial = c->state != LINK_UP;
    who_args a = {fn, user};
    return pres_who(c->mirror, room, fn != NULL ? who_one : NULL, &a);
}

const char *gmud_cluster_node(const gmud_cluster *c)
{
    return c->node;
}

void gmud_cluster_stats_get(const gmud_cluster *c, gmud_cluster_stats *out)
{
    *out = c->st;
    pres_node_info info = {0};
    pres_node_get(c->mirror, c->node, &info);
    out->remote_players = pres_count(c->mirror) - info.players;
    out->up = c->state == LINK_UP;
}
