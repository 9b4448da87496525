/* gmud/cluster.h: several servers ("nodes") share rooms, messages and
 * presence through one Redis, on the server's own libuv loop.
 *
 * Each player stays connected to one node. A node publishes what its
 * players say in a room on the cluster's bus (one Redis channel), and
 * every node relays what it hears from the others to its own players in
 * that room. Presence (which player is on which node, in which room) is a
 * hash per node in Redis with a TTL the node refreshes: a node that dies
 * drops out within ttl_ms, and every node keeps a bounded mirror of the
 * whole cluster's presence, so gmud_cluster_who() answers at once.
 *
 * Nothing here waits on Redis: publish and set_room return at once; a
 * message that cannot leave (the link is down, or more than max_pending
 * bytes are unacknowledged) is dropped and counted, never queued without
 * bound. Every Redis request is bounded by timeout_ms (the packaged
 * hiredis has no timeouts of its own); a link that times out or fails is
 * torn down and made again with backoff, and then the node subscribes and
 * registers again. docs/PROTOCOL.md section 10 gives the keys, the
 * channel and the envelope byte by byte; docs/DESIGN.md the reasons.
 *
 * Threads: as gmud/server.h: everything on the loop's thread.
 */
#ifndef GMUD_CLUSTER_H
#define GMUD_CLUSTER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gmud/error.h"
#include "gmud/export.h"
#include "gmud/log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gmud_cluster gmud_cluster;

enum {
    GMUD_CLUSTER_NAME_MAX = 64,      /* node and room names: 1..64 of [A-Za-z0-9._-] */
    GMUD_CLUSTER_PAYLOAD_MAX = 65535, /* the longest message any framing carries */
    GMUD_CLUSTER_TTL_DEFAULT = 3000,       /* ms */
    GMUD_CLUSTER_TIMEOUT_DEFAULT = 1000,   /* ms, each Redis request */
    GMUD_CLUSTER_BACKOFF_MAX_DEFAULT = 2000, /* ms; from 50, doubling */
    GMUD_CLUSTER_SECRET_MIN = 16           /* bytes */
};

/* A message from another node's player. Valid only during the callback. */
typedef struct gmud_cluster_msg {
    const char *node;       /* the sending node */
    const char *room;       /* the room it was said in */
    uint64_t player;        /* the sender's connection id on its node */
    const uint8_t *data;    /* the payload as the sender's node published it */
    size_t len;
    int json;               /* 1: data is JSON text; 0: a text line */
    json_t *value;          /* json: data parsed (within gmud_json_limits'
                               defaults), borrowed: copy it to keep it */
} gmud_cluster_msg;

/* A player somewhere in the cluster. */
typedef struct gmud_cluster_player {
    const char *node;
    uint64_t player;
    const char *room;
} gmud_cluster_player;

typedef struct gmud_cluster_callbacks {
    /* A message from another node, in the order its node sent it. */
    void (*on_message)(gmud_cluster *c, const gmud_cluster_msg *msg, void *user);
    /* Another node's player entered (joined 1) or left (0) p->room: by its
     * own move, its disconnect, or its node dropping out. */
    void (*on_presence)(gmud_cluster *c, const gmud_cluster_player *p, int joined, void *user);
    /* The link to Redis came up (up 1: subscribed and registered) or went
     * down (0, why says how). */
    void (*on_link)(gmud_cluster *c, int up, const gmud_error *why, void *user);
    void *user;
} gmud_cluster_callbacks;

typedef struct gmud_cluster_config {
    const char *host;          /* Redis: an IPv4 or IPv6 literal. "127.0.0.1" */
    uint16_t port;             /* 6379 */
    const char *node;          /* this node's name; required, unique in the cluster */
    const char *prefix;        /* key and channel prefix, a name as above. "gmud" */
    const uint8_t *secret;     /* NULL: no MAC. Else HMAC-SHA256 on every envelope, */
    size_t secret_len;         /* at least GMUD_CLUSTER_SECRET_MIN bytes, same on all nodes */
    uint32_t ttl_ms;           /* presence TTL: a dead node's players leave within it */
    uint32_t timeout_ms;       /* each Redis request (connect included) */
    uint32_t backoff_max_ms;   /* the longest wait between reconnects */
    size_t max_pending;        /* bytes published and not yet acknowledged. 1 MiB */
    size_t max_players;        /* the mirror's bound, all nodes. 200000 */
    gmud_cluster_callbacks cb;
    gmud_log_fn log;           /* NULL: silent */
    void *log_user;
} gmud_cluster_config;

typedef struct gmud_cluster_stats {
    uint64_t published;        /* envelopes Redis acknowledged */
    uint64_t publish_dropped;  /* messages not published: link down or max_pending */
    uint64_t received;         /* remote messages delivered to on_message */
    uint64_t lost;             /* remote envelopes missed: gaps in a node's sequence */
    uint64_t refused_malformed; /* envelopes that do not decode */
    uint64_t refused_oversize; /* over the largest envelope */
    uint64_t refused_unknown;  /* from a node not registered in the cluster */
    uint64_t refused_mac;      /* a MAC missing, wrong, or not expected */
    uint64_t refused_replay;   /* a sequence number already seen */
    uint64_t presence_dropped; /* remote players not mirrored: over max_players */
    uint64_t reconnects;       /* links made again after a failure */
    uint64_t timeouts;         /* Redis requests that timed out */
    uint64_t rtt_count;        /* Redis round trips measured, */
    uint64_t rtt_us_sum;       /* their sum, */
    uint64_t rtt_us_last;      /* and the last */
    uint64_t remote_players;   /* in the mirror now */
    int up;                    /* subscribed and registered now */
} gmud_cluster_stats;

GMUD_API void gmud_cluster_default_config(gmud_cluster_config *cfg);

/* Starts connecting (the link comes up later: on_link). NULL with err
 * filled for a bad config (GMUD_ERR_INVALID, naming the field) or no
 * memory. An unreachable Redis is not an error here: the node retries. */
GMUD_API gmud_cluster *gmud_cluster_create(uv_loop_t *loop, const gmud_cluster_config *cfg,
                                           gmud_error *err);

/* Publishes data[0..len) said by local player in room to the other nodes.
 * 0 once handed to Redis; GMUD_ERR_CLOSED (link down) or
 * GMUD_ERR_SLOW_CONSUMER (max_pending reached): dropped and counted;
 * GMUD_ERR_INVALID (a bad room name, len over GMUD_CLUSTER_PAYLOAD_MAX). */
GMUD_API int gmud_cluster_publish(gmud_cluster *c, const char *room, uint64_t player,
                                  const void *data, size_t len, int json, gmud_error *err);

/* Local player is now in room (NULL: gone, at its disconnect). Updates
 * this node's presence in Redis and tells the other nodes; while the link
 * is down the change is kept and registered when it comes back. 0, or
 * GMUD_ERR_INVALID (a bad room name), GMUD_ERR_NOMEM. */
GMUD_API int gmud_cluster_set_room(gmud_cluster *c, uint64_t player, const char *room,
                                   gmud_error *err);

/* Calls fn for every player in room known to the mirror, this node's
 * included, and returns how many. partial (if not NULL) is set to 1 when
 * the link is down: other nodes' players may have moved since. */
GMUD_API size_t gmud_cluster_who(gmud_cluster *c, const char *room,
                                 void (*fn)(const gmud_cluster_player *p, void *user), void *user,
                                 int *partial);

GMUD_API const char *gmud_cluster_node(const gmud_cluster *c);
GMUD_API void gmud_cluster_stats_get(const gmud_cluster *c, gmud_cluster_stats *out);

/* Is name a valid node or room name? */
GMUD_API int gmud_cluster_name_ok(const char *name);

/* Deregisters (best effort: the TTL cleans up after a node that cannot)
 * and frees; the memory of libuv handles goes once the loop has run their
 * close callbacks. NULL is a no-op. */
GMUD_API void gmud_cluster_destroy(gmud_cluster *c);

#ifdef __cplusplus
}
#endif

#endif
