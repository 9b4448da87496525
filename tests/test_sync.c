/* The blocking client (gmud_sync) against the event server: echo in each
 * framing, timeouts, the peer's close, refused connects, unencodable
 * messages. The server's loop runs here; the blocking client in a thread. */
#include "rt_util.h"

typedef struct sync_case {
    int port;
    gmud_frame_config cfg;
    atomic_int done;
    int ok;
    int64_t timeout_ms;
    int closed_rc;
    char note[200];
} sync_case;

static void echo(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)j;
    (void)u;
    if (n == 4 && memcmp(d, "quit", 4) == 0) {
        gmud_conn_close(c);
        return;
    }
    gmud_conn_send(c, d, n, NULL);
}

static void *sync_client(void *arg)
{
    sync_case *t = arg;
    gmud_error err;
    gmud_slice m;
    int ok = 1;
    gmud_sync *s = gmud_sync_connect("127.0.0.1", (unsigned)t->port, &t->cfg, 2000, &err);
    if (s == NULL) {
        snprintf(t->note, sizeof t->note, "connect: %s", err.message);
        ok = 0;
    }
    static const char *const msgs[] = {"first", "second message", "3"};
    for (int i = 0; ok && i < 3; i++)
        ok = gmud_sync_send(s, msgs[i], strlen(msgs[i]), &err) == 0;
    for (int i = 0; ok && i < 3; i++) {
        ok = gmud_sync_recv(s, 2000, &m, &err) == 1;
        if (ok && t->cfg.framing == GMUD_FRAMING_FIXED) {
            ok = m.len == t->cfg.fixed_size; /* padding included */
            m = gmud_frame_trim_padding(m);
        }
        ok = ok && m.len == strlen(msgs[i]) && memcmp(m.data, msgs[i], m.len) == 0;
        if (!ok)
            snprintf(t->note, sizeof t->note, "message %d wrong", i);
    }
    if (ok) {
        /* Nothing more is coming: a timeout, on time. */
        int64_t t0 = rt_now_ms();
        ok = gmud_sync_recv(s, 150, &m, &err) == 0;
        t->timeout_ms = rt_now_ms() - t0;
        ok = ok && gmud_sync_recv(s, 0, &m, &err) == 0;
    }
    if (ok && t->cfg.framing == GMUD_FRAMING_LINE)
        ok = gmud_sync_send(s, "two\nlines", 9, &err) == GMUD_ERR_UNENCODABLE;
    if (ok) {
        static char huge[70000];
        ok = gmud_sync_send(s, huge, sizeof huge, &err) == GMUD_ERR_UNENCODABLE;
    }
    if (ok) {
        ok = gmud_sync_send(s, "quit", 4, &err) == 0;
        t->closed_rc = gmud_sync_recv(s, 2000, &m, &err);
        /* and it stays closed */
        ok = ok && gmud_sync_recv(s, 100, &m, &err) == GMUD_ERR_CLOSED;
    }
    t->ok = ok;
    gmud_sync_close(s);
    atomic_store(&t->done, 1);
    return NULL;
}

static void run_sync(const char *framing)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    gmud_server_config cfg;
    rt_server_config(&cfg, framing, GMUD_PAYLOAD_TEXT);
    cfg.cb.on_message = echo;
    gmud_server *srv = gmud_server_create(&loop, &cfg, NULL);
    CHECK(srv != NULL);
    sync_case t;
    memset(&t, 0, sizeof t);
    t.port = gmud_server_port(srv);
    t.cfg = cfg.frame;
    pthread_t th;
    pthread_create(&th, NULL, sync_client, &t);
    CHECK(rt_run_until(&loop, rt_flag, &t.done, 6000));
    pthread_join(th, NULL);
    if (!t.ok)
        fprintf(stderr, "%s: %s\n", framing, t.note);
    CHECK(t.ok);
    CHECK(t.timeout_ms >= 140 && t.timeout_ms < 1000);
    CHECK_EQ_INT(t.closed_rc, GMUD_ERR_CLOSED);
    rt_server_end(&loop, srv);
    rt_loop_finish(&loop);
}

static void test_failures(void)
{
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_GMUD);
    gmud_error err;
    /* A bound socket that does not listen refuses. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    CHECK(gmud_sync_connect("127.0.0.1", ntohs(a.sin_port), &cfg, 1000, &err) == NULL);
    CHECK_CONTAINS(err.message, "refused");
    close(fd);
    CHECK(gmud_sync_connect("no-such-host.invalid", 8222, &cfg, 1000, &err) == NULL);
    CHECK_CONTAINS(err.message, "resolve");
    CHECK_EQ_INT(err.code, GMUD_ERR_IO);
    CHECK(gmud_sync_connect("127.0.0.1", 0, &cfg, 1000, &err) == NULL);
    cfg.max_message = 0;
    CHECK(gmud_sync_connect("127.0.0.1", 8222, &cfg, 1000, &err) == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    gmud_sync_close(NULL);
}

int main(void)
{
    run_sync("line");
    run_sync("fixed:100");
    run_sync("length");
    run_sync("gmud");
    test_failures();
    return check_report("test_sync");
}
