/* The runtime's side of the PROXY protocol: a connection on a PROXY
 * listener is read into a small buffer until its header is whole (the
 * decoding is the core's, proxyproto.c), within a deadline and PP_MAX
 * bytes; then it takes the carried address and is admitted as if it had
 * just been accepted from there (server.c's server_admit). Refusals are
 * plaintext error packets: nothing else has been said on the connection. */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "proxyproto.h"

typedef struct conn_proxy {
    const struct listener *l;
    size_t len;
    uint8_t buf[PP_MAX];
} conn_proxy;

int conn_proxy_begin(gmud_conn *conn, const struct listener *l, uint32_t timeout_ms)
{
    conn_proxy *px = malloc(sizeof *px);
    if (px == NULL)
        return GMUD_ERR_NOMEM;
    px->l = l;
    px->len = 0;
    conn->proxy = px;
    conn->deadline = uv_now(conn->rt->loop) + timeout_ms;
    return GMUD_OK;
}

void conn_proxy_drop(gmud_conn *conn)
{
    free(conn->proxy);
    conn->proxy = NULL;
}

/* An error packet in the listener's framing, then the close; a plain close
 * once GMUD_MAX_REFUSING connections are being refused at once. */
static void refuse(gmud_conn *conn, const gmud_error *e)
{
    rt_ctx *rt = conn->rt;
    conn_proxy_drop(conn);
    conn->deadline = 0;
    rt->stats.proxy_refused++;
    rt_logf(rt, GMUD_LOG_WARN, conn->peer, "proxy", "%s", e->message);
    conn->flags |= CONN_REJECTED;
    rt->refusing++;
    if (rt->refusing > GMUD_MAX_REFUSING) {
        conn_close_now(conn, GMUD_CLOSE_PROXY, e);
        return;
    }
    conn_send_error(conn, gmud_err_name(GMUD_ERR_PROXY), e->message);
    conn_close_soft(conn, GMUD_CLOSE_PROXY, e, rt->limits.linger_ms);
}

/* The header is taken: conn is from its client now. */
static void take(gmud_conn *conn, const pp_header *h)
{
    rt_ctx *rt = conn->rt;
    char via[sizeof conn->peer];
    memcpy(via, conn->peer, sizeof via);
    rt->stats.proxy_accepted++;
    conn->deadline = 0;
    if (!h->local) {
        size_t len = h->src.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        memset(&conn->addr, 0, sizeof conn->addr);
        memcpy(&conn->addr, &h->src, len);
        conn_set_peer(conn, (const struct sockaddr *)&h->src);
    }
    rt_logf(rt, GMUD_LOG_DEBUG, conn->peer, "proxy", "PROXY v%d header from %s%s", h->version,
            via, h->local ? ": no address carried (LOCAL or UNKNOWN), the balancer's stands" : "");
}

ptrdiff_t conn_proxy_in(gmud_conn *conn, const uint8_t *p, size_t n)
{
    conn_proxy *px = conn->proxy;
    size_t before = px->len;
    size_t take_n = n < PP_MAX - before ? n : PP_MAX - before;
    memcpy(px->buf + before, p, take_n);
    px->len += take_n;
    pp_header h;
    gmud_error e;
    int used = pp_decode(px->buf, px->len, &h, &e);
    if (used == 0 && px->len == PP_MAX)
        used = gmud_error_set(&e, GMUD_ERR_PROXY, 0, "PROXY protocol: no whole header in %d bytes",
                              PP_MAX);
    if (used < 0) {
        refuse(conn, &e);
        return -1;
    }
    if (used == 0)
        return -1;
    /* Every earlier read was header: what follows it is all in p. */
    const struct listener *l = px->l;
    conn_proxy_drop(conn);
    take(conn, &h);
    server_admit(conn, l);
    return (ptrdiff_t)((size_t)used - before);
}

int conn_proxy_late(gmud_conn *conn, uint64_t now)
{
    if (conn->proxy == NULL || now < conn->deadline)
        return 0;
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_PROXY, 0, "PROXY protocol: no whole header within %llu ms",
                   (unsigned long long)(now - conn->opened));
    refuse(conn, &e);
    return 1;
}

void conn_proxy_ended(gmud_conn *conn)
{
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_PROXY, 0,
                   "PROXY protocol: the stream ended after %zu bytes, before a whole header",
                   conn->proxy->len);
    refuse(conn, &e);
}
