/* The event-driven client: one connection, connected asynchronously. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "seamed.h"
#include "resolve.h"
#include "gmud/client.h"

struct gmud_client {
    rt_ctx rt; /* first: the rt's handles point here */
    gmud_conn *conn;
    uv_connect_t req;
    int destroyed;
    int next_addr;
    net_addrs addrs; /* what the host resolved to, tried in order */
};

void gmud_client_default_config(gmud_client_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = GMUD_HOST_DEFAULT;
    cfg->port = GMUD_PORT_DEFAULT;
    cfg->connect_timeout_ms = GMUD_CONNECT_TIMEOUT_MS_DEFAULT;
    gmud_frame_default_config(&cfg->conn.frame, GMUD_FRAMING_GMUD);
    cfg->conn.payload = GMUD_PAYLOAD_JSON;
    gmud_json_default_config(&cfg->conn.json);
    gmud_limits_default_config(&cfg->conn.limits);
    /* A client does not stop reading while its output is backed up: if the
     * server did the same, each would wait for the other to read. Its
     * memory stays bounded by max_queued. */
    cfg->conn.limits.read_high_water = SIZE_MAX;
    cfg->conn.limits.read_low_water = SIZE_MAX - 1;
    /* Nor does it throttle what its server sends. */
    cfg->conn.limits.msg_rate = 0;
    cfg->conn.limits.byte_rate = 0;
    gmud_session_default_config(&cfg->conn.session);
    gmud_tls_default_config(&cfg->conn.tls);
    cfg->conn.log_level = GMUD_LOG_INFO;
}

static void client_conn_gone(rt_ctx *rt)
{
    gmud_client *client = rt->owner;
    client->conn = NULL;
}

static void client_free(rt_ctx *rt)
{
    free(rt->owner);
}

static void on_connect(uv_connect_t *req, int status);

/* Connects conn to the next address; 0 or a libuv error. */
static int connect_next(gmud_client *client)
{
    gmud_conn *conn = client->conn;
    const struct sockaddr *addr = net_addr(&client->addrs, client->next_addr++);
    conn_set_peer(conn, addr);
    client->req.data = client;
    return uv_tcp_connect(&client->req, &conn->tcp, addr, on_connect);
}

static void reopen(gmud_conn *conn)
{
    gmud_client *client = conn->rt->owner;
    int rc = connect_next(client);
    if (rc != 0) {
        gmud_error e;
        gmud_error_set(&e, GMUD_ERR_IO, 0, "cannot connect to %s: %s", conn->peer,
                       uv_strerror(rc));
        conn_close_now(conn, GMUD_CLOSE_CONNECT_FAILED, &e);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    gmud_client *client = req->data;
    gmud_conn *conn = client->conn;
    if (status == UV_ECANCELED || conn == NULL || conn->state != CONN_CONNECTING)
        return;
    rt_ctx *rt = &client->rt;
    if (status < 0 && client->next_addr < client->addrs.n) {
        rt_logf(rt, GMUD_LOG_DEBUG, conn->peer, "connect", "%s; trying the next address",
                uv_strerror(status));
        conn_retry(conn);
        return;
    }
    if (status < 0) {
        gmud_error e;
        gmud_error_set(&e, GMUD_ERR_IO, 0, "cannot connect to %s: %s", conn->peer,
                       uv_strerror(status));
        rt_logf(rt, GMUD_LOG_WARN, conn->peer, "connect", "%s", e.message);
        conn_close_now(conn, GMUD_CLOSE_CONNECT_FAILED, &e);
        return;
    }
    rt_logf(rt, GMUD_LOG_INFO, conn->peer, "connect", "connected");
    conn_start(conn, 1);
}

gmud_client *gmud_client_create(uv_loop_t *loop, const gmud_client_config *cfg, gmud_error *err)
{
    return client_create_seamed(loop, cfg, NULL, err);
}

gmud_client *client_create_seamed(uv_loop_t *loop, const gmud_client_config *cfg,
                                  const seam_factory *seams, gmud_error *err)
{
    const char *host = cfg->host ? cfg->host : GMUD_HOST_DEFAULT;
    if (gmud_frame_config_check(&cfg->conn.frame, err) != GMUD_OK ||
        gmud_limits_check(&cfg->conn.limits, err) != GMUD_OK)
        return NULL;
    gmud_client *client = calloc(1, sizeof *client);
    if (client == NULL) {
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory creating a client");
        return NULL;
    }
    if (net_resolve(host, cfg->port, 0, &client->addrs, err) != GMUD_OK) {
        free(client);
        return NULL;
    }
    rt_ctx *rt = &client->rt;
    rt_take_config(rt, &cfg->conn);
    if (seams != NULL)
        rt->seams = *seams;
    rt->owner = client;
    rt->conn_gone = client_conn_gone;
    rt->reopen = reopen;
    rt->free_owner = client_free;
    if (rt_tls_setup(rt, &cfg->conn.tls, host, err) != GMUD_OK ||
        rt_init(rt, loop, err) != GMUD_OK) {
        rt_tls_free(rt);
        free(client);
        return NULL;
    }
    /* From here on handles exist: failures clean up as the loop runs. */
    client->conn = conn_new(rt, err);
    if (client->conn == NULL) {
        rt_close(rt);
        return NULL;
    }
    gmud_conn *conn = client->conn;
    conn->flags |= CONN_NOTIFY; /* a failed connect is reported too */
    if (cfg->connect_timeout_ms != 0)
        conn->deadline = uv_now(loop) + cfg->connect_timeout_ms;
    int rc = connect_next(client);
    if (rc != 0) {
        gmud_error_set(err, GMUD_ERR_IO, 0, "cannot connect to %s: %s", conn->peer,
                       uv_strerror(rc));
        client->conn = NULL;
        rt_close(rt);
        return NULL;
    }
    return client;
}

gmud_conn *gmud_client_conn(const gmud_client *client)
{
    return client->conn;
}

void gmud_client_close(gmud_client *client)
{
    gmud_conn *conn = client->conn;
    if (conn != NULL && (conn->flags & CONN_RETRY)) {
        /* Between two addresses: let the socket's close be the last. */
        conn->flags &= (uint16_t)~CONN_RETRY;
        conn->reason = GMUD_CLOSE_LOCAL;
        return;
    }
    if (conn != NULL)
        gmud_conn_close(conn);
}

void gmud_client_destroy(gmud_client *client)
{
    if (client == NULL || client->destroyed)
        return;
    client->destroyed = 1;
    client->conn = NULL;
    rt_close(&client->rt);
}
