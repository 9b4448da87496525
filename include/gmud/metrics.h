/* gmud/metrics.h: a server's counters for Prometheus, over HTTP, on the
 * server's own libuv loop.
 *
 * gmud_metrics_create() listens on host:port (loopback unless told
 * otherwise: the counters say a lot about a server) and answers
 * GET /metrics with the Prometheus text exposition format (0.0.4): the
 * connections, messages and bytes each way, refusals by reason and error
 * code, queued bytes, TLS handshakes, PROXY headers and the loop's lag
 * (README "Metrics" lists the series). Everything else gets a 4xx and the
 * close: a malformed request 400, a path other than /metrics 404, a
 * method other than GET and HEAD 405, headers over 4 KiB 431. A request
 * must be read and answered within timeout_ms, and at most max_clients
 * are served at once (more are closed at accept): a scraper, slow or
 * hostile, costs bounded memory (max_clients x about 12 KiB) and never
 * holds up the game's connections, as nothing here blocks.
 */
#ifndef GMUD_METRICS_H
#define GMUD_METRICS_H

#include <stdint.h>
#include <uv.h>

#include "gmud/cluster.h"
#include "gmud/error.h"
#include "gmud/server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gmud_metrics gmud_metrics;

enum {
    GMUD_METRICS_TIMEOUT_DEFAULT = 5000,  /* ms */
    GMUD_METRICS_MAX_CLIENTS_DEFAULT = 8
};

typedef struct gmud_metrics_config {
    const char *host;       /* an IPv4 or IPv6 literal; "127.0.0.1" */
    uint16_t port;          /* 0 picks a free one (gmud_metrics_port) */
    uint32_t timeout_ms;    /* per request, read and answered; > 0 */
    uint32_t max_clients;   /* requests in progress at once; > 0 */
    gmud_cluster *cluster;  /* NULL; else its link's series too (gmud_cluster_*),
                               and it must outlive the metrics */
} gmud_metrics_config;

GMUD_API void gmud_metrics_default_config(gmud_metrics_config *cfg);

/* Serves server's counters on loop (the server's). NULL with err filled:
 * GMUD_ERR_INVALID (a host that is not an address literal, a zero bound),
 * GMUD_ERR_IO (bind or listen failed, with the system's reason),
 * GMUD_ERR_NOMEM. The server must outlive it. */
GMUD_API gmud_metrics *gmud_metrics_create(uv_loop_t *loop, gmud_server *server,
                                           const gmud_metrics_config *cfg, gmud_error *err);

/* The port it listens on. */
GMUD_API uint16_t gmud_metrics_port(const gmud_metrics *m);

/* Stops listening and closes the scrapes in progress; the memory goes once
 * the loop has run the handles' close callbacks. NULL is a no-op. */
GMUD_API void gmud_metrics_destroy(gmud_metrics *m);

#ifdef __cplusplus
}
#endif

#endif
