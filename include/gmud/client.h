/* gmud/client.h: the event-driven client on libuv.
 *
 * A client is one connection (a gmud_conn, with the whole connection API of
 * gmud/server.h) opened asynchronously to host:port, with the same
 * callbacks, limits and coalesced writes as the server.
 *
 * Threads: as gmud/server.h: everything on the loop's thread.
 */
#ifndef GMUD_CLIENT_H
#define GMUD_CLIENT_H

#include "gmud/server.h"
#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gmud_client gmud_client;

typedef struct gmud_client_config {
    const char *host;             /* literal or name; copied. GMUD_HOST_DEFAULT */
    uint16_t port;                /* 8222 */
    uint32_t connect_timeout_ms;  /* GMUD_OFF: the kernel's timeout. 10000 */
    gmud_conn_config conn;        /* as a server's (gmud/server.h), but
                                     conn.limits: max_connections unused,
                                     read_high_water SIZE_MAX (a client never
                                     stops reading: two peers that both stop
                                     reading while backed up would deadlock;
                                     max_queued still bounds its memory), and
                                     no rate limits */
} gmud_client_config;

/* Fills cfg with the defaults listed above. */
GMUD_API void gmud_client_default_config(gmud_client_config *cfg);

/* Resolves host (synchronously) and starts connecting on loop; the config
 * is copied. Each address the host resolves to is tried in turn (the same
 * gmud_conn throughout). on_connect follows when connected, or on_close
 * with GMUD_CLOSE_CONNECT_FAILED and the last reason. Returns the client,
 * or NULL with err filled (GMUD_ERR_INVALID: bad config; GMUD_ERR_IO:
 * unresolvable host, or the socket refused at once; GMUD_ERR_NOMEM). After a failure that
 * left handles on the loop, their memory is released as the loop runs. */
GMUD_API gmud_client *gmud_client_create(uv_loop_t *loop, const gmud_client_config *cfg,
                                         gmud_error *err);

/* The client's connection, owned by the client: usable from create (sends
 * made before the connect completes are queued and go out on connect)
 * until on_close returns; NULL afterwards. */
GMUD_API gmud_conn *gmud_client_conn(const gmud_client *client);

/* Closes gracefully: what is queued is sent (within linger_ms), then the
 * connection closes and on_close follows with GMUD_CLOSE_LOCAL. Does nothing
 * once the connection is closing or closed. */
GMUD_API void gmud_client_close(gmud_client *client);

/* Frees the client. Call at any time (NULL is a no-op); if the connection is
 * still open it is closed at once, queued data dropped and on_close NOT
 * called. Memory is released as the loop runs on: run the loop until it
 * returns before uv_loop_close. */
GMUD_API void gmud_client_destroy(gmud_client *client);

#ifdef __cplusplus
}
#endif

#endif
