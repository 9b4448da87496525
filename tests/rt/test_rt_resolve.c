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
    int fd;
    refusing_port = rt_refusing_port(&fd);

    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    state_t st;
    memset(&st, 0, sizeof st);
    rt_fx_serve(&fx, (gmud_callbacks){.on_message = s_message, .user = &st});

    gmud_client_config ccfg;
    rt_fx_client_config(&fx, &ccfg);
    ccfg.host = "two.test";
    gmud_callbacks ccb = {.on_connect = c_connect, .on_close = c_close, .user = &st};
    gmud_client *cli = rt_fx_client(&fx, &ccfg, ccb);
    gmud_conn *early = gmud_client_conn(cli);
    CHECK_EQ_INT(gmud_conn_send(early, "early", 5, NULL), 0);
    CHECK(rt_run_until(&fx.loop, got_early, &st, 3000));
    CHECK_EQ_INT(st.connected, 1);
    CHECK(gmud_client_conn(cli) == early); /* the same connection throughout */
    CHECK(rt_log_find("trying the next address", NULL) != NULL);
    gmud_client_close(cli);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &st.closed, 3000));
    CHECK_EQ_INT(st.reason, GMUD_CLOSE_LOCAL);
    rt_fx_client_destroy(&fx, cli);

    /* Every address refuses: one on_close, with the last reason. */
    memset(&st, 0, sizeof st);
    ccfg.port = (uint16_t)refusing_port;
    cli = rt_fx_client(&fx, &ccfg, ccb);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &st.closed, 3000));
    CHECK_EQ_INT(st.connected, 0);
    CHECK_EQ_INT(st.reason, GMUD_CLOSE_CONNECT_FAILED);
    CHECK_CONTAINS(st.detail, "refused");
    rt_fx_client_destroy(&fx, cli);

    /* The blocking client resolves through the same helper: it too tries
     * the refusing address, then the next (connect() on loopback completes
     * in the kernel, so the server need not run for it), and says which
     * host and port it could not reach when all refuse. */
    gmud_frame_config fc;
    gmud_frame_default_config(&fc, GMUD_FRAMING_GMUD);
    gmud_error err;
    gmud_sync *s = gmud_sync_connect("two.test", (unsigned)fx.port, &fc, 2000, &err);
    CHECK(s != NULL);
    gmud_sync_destroy(s);
    s = gmud_sync_connect("two.test", (unsigned)refusing_port, &fc, 2000, &err);
    CHECK(s == NULL);
    if (s == NULL) {
        CHECK_EQ_INT(err.code, GMUD_ERR_IO);
        CHECK_CONTAINS(err.message, "cannot connect to two.test port");
    }

    rt_fx_end(&fx);
    close(fd);
    return check_report("test_rt_resolve");
}
