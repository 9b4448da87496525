/* Internal: the metrics endpoint's sans-I/O half. The Prometheus text
 * exposition format (version 0.0.4) of a server's counters, and the one
 * HTTP request the endpoint understands, parsed from bytes with bounds.
 * No socket, no clock: src/rt/metrics.c moves the bytes and reads the
 * clock. */
#ifndef GMUD_CORE_PROM_H
#define GMUD_CORE_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "gmud/cluster.h"
#include "gmud/server.h"

/* What the runtime measures besides gmud_stats. */
typedef struct prom_gauges {
    size_t connections;        /* open now (gmud_server_connections) */
    double loop_lag_s;         /* the loop's lag at the last probe */
    double loop_lag_max_s;     /* the most since the previous scrape */
    uint64_t scrapes;          /* requests answered with 200, this one included */
} prom_gauges;

/* Appends the exposition of st and g to out: every series with its HELP
 * and TYPE lines, counters ending in _total. 0, or GMUD_ERR_NOMEM. */
int prom_write(byte_buf *out, const gmud_stats *st, const prom_gauges *g);

/* Appends the cluster link's series (gmud_cluster_*). 0, or GMUD_ERR_NOMEM. */
int prom_write_cluster(byte_buf *out, const gmud_cluster_stats *cs);

enum {
    HTTP_MAX_REQUEST = 4096 /* request line and headers, CRLF CRLF included */
};

/* Reads an HTTP/1.x request from in[0..n). Returns 0 while its headers
 * are incomplete and n < HTTP_MAX_REQUEST, else the status to answer:
 * 200 for GET or HEAD of /metrics (a query string allowed; *head is set
 * for a HEAD, whatever the answer, as its response has no body),
 * 404 for another path, 405 for another method, 400 for a malformed
 * request (a bad request line, a control byte, a body announced), 431 for
 * headers over HTTP_MAX_REQUEST, 505 for another HTTP version. */
int http_request_parse(const uint8_t *in, size_t n, int *head);

/* Appends a whole response: status line, Content-Type, Content-Length,
 * Connection: close, then body[0..len) unless head. 0 or GMUD_ERR_NOMEM. */
int http_response(byte_buf *out, int status, const char *type, const void *body, size_t len,
                  int head);

#endif
