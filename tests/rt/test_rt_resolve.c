/* The event client tries every address a name resolves to, in turn, on the
 * same gmud_conn (queued sends survive). A name resolving to a refusing
 * address first is common: "localhost" may give ::1 before 127.0.0.1 while
 * a server listens on 127.0.0.1 only. This test defines its own
 * getaddrinfo(), which the statically linked library then calls:
 * "two.test" resolves to a refusing port first, then the real one. The
 * server, the event client and the blocking client all resolve through
 * src/resolve.c. */
#include <netdb.h>

#include "rt_util.h"

static int refusing_port;

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    (void)hints;
    int port = atoi(service);
    int n = node != NULL && strcmp(node, "two.test") == 0 ? 2 : 1;
    struct addrinfo *head = NULL, **tail = &head;
    for (int i = 0; i < n; i++) {
        struct addrinfo *ai = calloc(1, sizeof *ai);
        struct sockaddr_in *a = calloc(1, sizeof *a);
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons((uint16_t)(n == 2 && i == 0 ? refusing_port : port));
        ai->ai_family = AF_INET;
        ai->ai_socktype = SOCK_STREAM;
        ai->ai_addr = (struct sockaddr *)a;
        ai->ai_addrlen = sizeof *a;
        *tail = ai;
        tail = &ai->ai_next;
    }
    *res = head;
    return 0;
}

void freeaddrinfo(struct addrinfo *ai)
{
    while (ai != NULL) {
        struct addrinfo *next = ai->ai_next;
        free(ai->ai_addr);
        free(ai);
        ai = next;
    }
}

typedef struct state_t {
    int connected;
    int closed;
    int reason;
    int server_got;
    char detail[160];
} state_t;

static void s_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)c;
    (void)j;
    state_t *s = u;
    if (n == 5 && memcmp(d, "early", 5) == 0)
        s->server_got++;
}

static void c_connect(gmud_conn *c, void *u)
{
    (void)c;
    ((state_t *)u)->connected = 1;
}

static void c_close(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *u)
{
    (void)c;
    state_t *s = u;
    s->closed = 1;
    s->reason = (int)r;
    snprintf(s->detail, sizeof s->detail, "%s", d ? d->message : "");
}

static int got_early(void *p)
{
    return ((state_t *)p)->server_got == 1;
}

int main(void)
{
    rt_ignore_sigpipe();
    /* A bound socket that never listens: its port refuses. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    refusing_port = ntohs(a.sin_port);

    uv_loop_t loop;
    uv_loop_init(&loop);
    state_t st;
    memset(&st, 0, sizeof st);
    gmud_server_config scfg;
    rt_server_config(&scfg, "gmud", GMUD_PAYLOAD_TEXT);
    scfg.conn.cb.on_message = s_message;
    scfg.conn.cb.user = &st;
    gmud_server *srv = gmud_server_create(&loop, &scfg, NULL);
    CHECK(srv != NULL);

    gmud_client_config ccfg;
    rt_client_config(&ccfg, &scfg, gmud_server_port(srv));
    ccfg.host = "two.test";
    ccfg.conn.cb.on_connect = c_connect;
    ccfg.conn.cb.on_close = c_close;
    ccfg.conn.cb.user = &st;
    gmud_client *cli = gmud_client_create(&loop, &ccfg, NULL);
    gmud_conn *early = gmud_client_conn(cli);
    CHECK_EQ_INT(gmud_conn_send(early, "early", 5, NULL), 0);
    CHECK(rt_run_until(&loop, got_early, &st, 3000));
    CHECK_EQ_INT(st.connected, 1);
    CHECK(gmud_client_conn(cli) == early); /* the same connection throughout */
    CHECK(rt_log_find("trying the next address", NULL) != NULL);
    gmud_client_close(cli);
    CHECK(rt_run_until(&loop, rt_int_set, &st.closed, 3000));
    CHECK_EQ_INT(st.reason, GMUD_CLOSE_LOCAL);
    gmud_client_destroy(cli);

    /* Every address refuses: one on_close, with the last reason. */
    memset(&st, 0, sizeof st);
    ccfg.port = (uint16_t)refusing_port;
    cli = gmud_client_create(&loop, &ccfg, NULL);
    CHECK(rt_run_until(&loop, rt_int_set, &st.closed, 3000));
    CHECK_EQ_INT(st.connected, 0);
    CHECK_EQ_INT(st.reason, GMUD_CLOSE_CONNECT_FAILED);
    CHECK_CONTAINS(st.detail, "refused");
    gmud_client_destroy(cli);

    /* The blocking client resolves through the same helper: it too tries
     * the refusing address, then the next (connect() on loopback completes
     * in the kernel, so the server need not run for it), and says which
     * host and port it could not reach when all refuse. */
    gmud_frame_config fc;
    gmud_frame_default_config(&fc, GMUD_FRAMING_GMUD);
    gmud_error err;
    gmud_sync *s = gmud_sync_connect("two.test", gmud_server_port(srv), &fc, 2000, &err);
    CHECK(s != NULL);
    gmud_sync_destroy(s);
    s = gmud_sync_connect("two.test", (unsigned)refusing_port, &fc, 2000, &err);
    CHECK(s == NULL);
    if (s == NULL) {
        CHECK_EQ_INT(err.code, GMUD_ERR_IO);
        CHECK_CONTAINS(err.message, "cannot connect to two.test port");
    }

    rt_server_end(&loop, srv);
    rt_loop_finish(&loop);
    close(fd);
    return check_report("test_rt_resolve");
}
