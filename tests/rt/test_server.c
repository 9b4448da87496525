/* Runtime end to end over real loopback sockets: echo in every framing,
 * coalescing, shutdown flushing, IPv6, the event client's failures and a
 * peer's half-close, and the read buffer each loop's servers and clients
 * share (two loops in two threads). The server's loop runs in this thread;
 * raw peers run in a second thread with blocking sockets. */
#include "rt_util.h" /* and conn.h, to see that idle connections give their buffers back */

/* ---- Echo through the event client ------------------------------------ */

typedef struct echo_t {
    gmud_client *cli;
    const char *const *msgs;
    int n;
    int got;
    int mismatches;
    int client_closed;
    int client_reason;
    int server_reason;
    int server_closed;
    char server_peer[64];
} echo_t;

static void srv_echo_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)u;
    if (j != NULL)
        CHECK_EQ_INT(gmud_conn_send_json(c, j, NULL), 0);
    else
        CHECK_EQ_INT(gmud_conn_send(c, d, n, NULL), 0);
}

static void srv_echo_connect(gmud_conn *c, void *u)
{
    echo_t *e = u;
    snprintf(e->server_peer, sizeof e->server_peer, "%s", gmud_conn_peer(c));
}

static void srv_echo_close(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *u)
{
    (void)c;
    (void)d;
    echo_t *e = u;
    e->server_closed++;
    e->server_reason = (int)r;
}

static void cli_echo_connect(gmud_conn *c, void *u)
{
    echo_t *e = u;
    /* All sent in one turn: they leave together. */
    for (int i = 0; i < e->n; i++)
        CHECK_EQ_INT(gmud_conn_send(c, e->msgs[i], strlen(e->msgs[i]), NULL), 0);
}

static void cli_echo_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)c;
    echo_t *e = u;
    if (e->got >= e->n) {
        e->mismatches++;
        return;
    }
    const char *want = e->msgs[e->got++];
    if (j != NULL) {
        json_t *w = json_loads(want, 0, NULL);
        if (!json_equal(w, j))
            e->mismatches++;
        json_decref(w);
    } else if (n != strlen(want) || memcmp(d, want, n) != 0) {
        fprintf(stderr, "echo mismatch: got %.*s want %s\n", (int)n, (const char *)d, want);
        e->mismatches++;
    }
    if (e->got == e->n)
        gmud_client_close(e->cli);
}

static void cli_echo_close(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *u)
{
    (void)c;
    echo_t *e = u;
    e->client_closed = 1;
    e->client_reason = (int)r;
    if (d != NULL)
        fprintf(stderr, "client closed: %s\n", d->message);
}

static int echo_done(void *p)
{
    echo_t *e = p;
    return e->client_closed && e->server_closed;
}

static void run_echo(const char *framing, gmud_payload payload, const char *host,
                     const char *const *msgs, int n)
{
    rt_fixture fx;
    rt_fx_init(&fx, framing, payload);
    echo_t e;
    memset(&e, 0, sizeof e);
    e.msgs = msgs;
    e.n = n;
    fx.cfg.host = host;
    if (rt_fx_serve(&fx, (gmud_callbacks){.on_message = srv_echo_message,
                                          .on_connect = srv_echo_connect,
                                          .on_close = srv_echo_close,
                                          .user = &e}) == NULL) {
        fprintf(stderr, "(the server on %s)\n", host);
        rt_fx_end(&fx);
        return;
    }
    gmud_client_config ccfg;
    rt_fx_client_config(&fx, &ccfg);
    ccfg.host = host;
    e.cli = rt_fx_client(&fx, &ccfg,
                         (gmud_callbacks){.on_connect = cli_echo_connect,
                                          .on_message = cli_echo_message,
                                          .on_close = cli_echo_close,
                                          .user = &e});
    CHECK(rt_run_until(&fx.loop, echo_done, &e, 3000));
    CHECK_EQ_INT(e.got, n);
    CHECK_EQ_INT(e.mismatches, 0);
    CHECK_EQ_INT(e.client_reason, GMUD_CLOSE_LOCAL);
    CHECK_EQ_INT(e.server_reason, GMUD_CLOSE_PEER);
    if (strchr(host, ':') != NULL)
        CHECK(strncmp(e.server_peer, "[::1]:", 6) == 0);
    else
        CHECK(strncmp(e.server_peer, "127.0.0.1:", 10) == 0);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.messages_in, n);
    CHECK_EQ_INT(st.accepted, 1);
    CHECK_EQ_INT(st.active, 0);
    CHECK_EQ_INT(st.closes[GMUD_CLOSE_PEER], 1);
    rt_fx_end(&fx);
}

static void test_echo_framings(void)
{
    static const char *const text[] = {"hello", "x", "a longer message with spaces",
                                       "0:Sat Mar 30 11:28:34 2019"};
    static const char *const one[] = {"a single raw message"};
#define LECTURE_JSON                                                                   \
    "{\"time\":\"Sat Mar 30 11:40:50 2019\",\"message\":\"2:Sat Mar 30 11:40:50 2019\"," \
    "\"value\":2}"
    static const char *const json[] = {LECTURE_JSON, "{\"a\":[1,2,{\"b\":null}]}", "{}"};
    run_echo("raw", GMUD_PAYLOAD_TEXT, "127.0.0.1", one, 1);
    run_echo("line", GMUD_PAYLOAD_TEXT, "127.0.0.1", text, 4);
    run_echo("fixed:100", GMUD_PAYLOAD_TEXT, "127.0.0.1", text, 4);
    run_echo("length", GMUD_PAYLOAD_TEXT, "127.0.0.1", text, 4);
    run_echo("gmud", GMUD_PAYLOAD_TEXT, "127.0.0.1", text, 4);
    run_echo("gmud", GMUD_PAYLOAD_JSON, "127.0.0.1", json, 3);
    run_echo("length", GMUD_PAYLOAD_JSON, "127.0.0.1", json, 3);
    run_echo("line", GMUD_PAYLOAD_JSON, "127.0.0.1", json, 3);
}

static void test_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    rt_close_fd(fd);
    if (!ok) {
        printf("test_ipv6: ::1 unavailable here, skipped\n");
        return;
    }
    static const char *const text[] = {"over", "IPv6"};
    run_echo("gmud", GMUD_PAYLOAD_TEXT, "::1", text, 2);
}

/* ---- Coalescing ------------------------------------------------------- */

enum { COALESCE_N = 200 };

typedef struct peer_t {
    rt_peer rt;
    int messages;
    int reads;
    int eof;
    size_t bytes;
    int64_t start_ms;
} peer_t;

static void srv_send_burst(gmud_conn *c, void *u)
{
    (void)u;
    char msg[32];
    for (int i = 0; i < COALESCE_N; i++) {
        int n = snprintf(msg, sizeof msg, "message %d", i);
        gmud_conn_send(c, msg, (size_t)n, NULL);
    }
}

static void *peer_count_reads(void *arg)
{
    peer_t *p = arg;
    int fd = rt_peer_raw(&p->rt, NULL, 0, NULL, 0);
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_GMUD);
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, NULL);
    int64_t deadline = rt_now_ms() + 3000;
    while (fd >= 0 && p->messages < COALESCE_N && rt_now_ms() < deadline) {
        uint8_t buf[65536];
        ssize_t r = rt_recv(fd, buf, sizeof buf, 500);
        if (r == -2)
            continue;
        if (r <= 0)
            break;
        p->reads++;
        const uint8_t *q = buf;
        size_t left = (size_t)r;
        gmud_slice m;
        ptrdiff_t used;
        while (left > 0 && (used = gmud_frame_decode(dec, q, left, &m, NULL)) > 0) {
            char want[32];
            int n = snprintf(want, sizeof want, "message %d", p->messages);
            if (m.len == (size_t)n && memcmp(m.data, want, m.len) == 0)
                p->messages++;
            q += used;
            left -= (size_t)used;
        }
    }
    gmud_frame_decoder_destroy(dec);
    rt_close_fd(fd);
    return NULL;
}

static void test_coalescing(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    rt_fx_serve(&fx, (gmud_callbacks){.on_connect = srv_send_burst});
    peer_t p;
    memset(&p, 0, sizeof p);
    rt_fx_run_peer(&fx, &p.rt, peer_count_reads, &p, 5000);
    CHECK_EQ_INT(p.messages, COALESCE_N);
    /* 200 sends in one turn: one write, and the peer sees few reads. */
    CHECK(p.reads >= 1 && p.reads <= 4);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.messages_out, COALESCE_N);
    CHECK(st.writes >= 1 && st.writes <= 2);
    rt_fx_end(&fx);
}

/* ---- Shutdown flushes what is queued ---------------------------------- */

enum { FLUSH_MSGS = 40, FLUSH_SIZE = 8000 };

typedef struct flush_t {
    gmud_server *srv;
    int done;
    int closed_reason;
    int closed;
} flush_t;

static void srv_flush_done(gmud_server *s, void *u)
{
    (void)s;
    ((flush_t *)u)->done = 1;
}

static void srv_queue_then_shutdown(gmud_conn *c, void *u)
{
    flush_t *f = u;
    static uint8_t msg[FLUSH_SIZE];
    for (int i = 0; i < FLUSH_MSGS; i++) {
        memset(msg, 'a' + i % 26, sizeof msg);
        CHECK_EQ_INT(gmud_conn_send(c, msg, sizeof msg, NULL), 0);
    }
    gmud_server_shutdown(f->srv, 3000, srv_flush_done, f);
}

static void srv_flush_close(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *u)
{
    (void)c;
    (void)d;
    flush_t *f = u;
    f->closed = 1;
    f->closed_reason = (int)r;
}

static void *peer_slow_reader(void *arg)
{
    peer_t *p = arg;
    int fd = rt_peer_raw(&p->rt, NULL, 4096, NULL, 0);
    rt_sleep_ms(300); /* the server shuts down while all of it is queued */
    static uint8_t buf[FLUSH_MSGS * (FLUSH_SIZE + 6) + 100];
    int eof = 0;
    if (fd >= 0) {
        p->bytes = rt_recv_to_eof(fd, buf, sizeof buf, 3000, &eof);
        close(fd);
    }
    p->eof = eof;
    /* Check the content: every frame whole and in order. */
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_GMUD);
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, NULL);
    const uint8_t *q = buf;
    size_t left = p->bytes;
    gmud_slice m;
    ptrdiff_t used;
    while (left > 0 && (used = gmud_frame_decode(dec, q, left, &m, NULL)) > 0) {
        if (m.len == FLUSH_SIZE && m.data[0] == 'a' + p->messages % 26 &&
            m.data[FLUSH_SIZE - 1] == m.data[0])
            p->messages++;
        q += used;
        left -= (size_t)used;
    }
    gmud_frame_decoder_destroy(dec);
    return NULL;
}

static void test_shutdown_flushes(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    flush_t f;
    memset(&f, 0, sizeof f);
    f.srv = rt_fx_serve(&fx, (gmud_callbacks){.on_connect = srv_queue_then_shutdown,
                                              .on_close = srv_flush_close,
                                              .user = &f});
    peer_t p;
    memset(&p, 0, sizeof p);
    rt_fx_peer(&fx, &p.rt, peer_slow_reader, &p);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &f.done, 5000));
    rt_fx_join(&fx, &p.rt, 5000);
    CHECK_EQ_INT(p.messages, FLUSH_MSGS);
    CHECK_EQ_INT(p.eof, 1);
    CHECK_EQ_INT(f.closed, 1);
    CHECK_EQ_INT(f.closed_reason, GMUD_CLOSE_SHUTDOWN);
    rt_fx_server_destroy(&fx); /* the test shut it down */
    rt_fx_end(&fx);
}

/* ---- Half-close: replies still go out --------------------------------- */

static void *peer_half_close(void *arg)
{
    peer_t *p = arg;
    int fd = rt_peer_raw(&p->rt, NULL, 0, NULL, 0);
    uint8_t frame[64];
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_LINE);
    ptrdiff_t n = gmud_frame_encode(&cfg, "ping", 4, frame, sizeof frame, NULL);
    if (fd >= 0 && n > 0 && rt_send_all(fd, frame, (size_t)n) == 0) {
        shutdown(fd, SHUT_WR);
        uint8_t buf[64];
        int eof = 0;
        p->bytes = rt_recv_to_eof(fd, buf, sizeof buf, 2000, &eof);
        p->eof = eof;
        p->messages = p->bytes == 5 && memcmp(buf, "ping\n", 5) == 0;
    }
    rt_close_fd(fd);
    return NULL;
}

static void test_half_close(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "line", GMUD_PAYLOAD_TEXT);
    echo_t e;
    memset(&e, 0, sizeof e);
    rt_fx_serve(&fx, (gmud_callbacks){.on_message = srv_echo_message,
                                      .on_close = srv_echo_close,
                                      .user = &e});
    peer_t p;
    memset(&p, 0, sizeof p);
    rt_fx_run_peer(&fx, &p.rt, peer_half_close, &p, 4000);
    CHECK_EQ_INT(p.messages, 1);
    CHECK_EQ_INT(p.eof, 1);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &e.server_closed, 2000));
    CHECK_EQ_INT(e.server_reason, GMUD_CLOSE_PEER);
    rt_fx_end(&fx);
}

/* ---- Client failures and queued sends --------------------------------- */

static void test_connect_failed(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    int fd;
    fx.port = rt_refusing_port(&fd); /* no server: the client goes there */
    echo_t e;
    memset(&e, 0, sizeof e);
    gmud_client_config ccfg;
    rt_fx_client_config(&fx, &ccfg);
    ccfg.conn.cb = (gmud_callbacks){.on_connect = cli_echo_connect,
                                    .on_close = cli_echo_close,
                                    .user = &e};
    gmud_client *cli = rt_fx_client(&fx, &ccfg, ccfg.conn.cb);
    CHECK(gmud_client_conn(cli) != NULL);
    CHECK_EQ_INT(gmud_conn_send(gmud_client_conn(cli), "early", 5, NULL), 0);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &e.client_closed, 3000));
    CHECK_EQ_INT(e.client_reason, GMUD_CLOSE_CONNECT_FAILED);
    CHECK(gmud_client_conn(cli) == NULL);
    CHECK(rt_log_find("connect", "refused") != NULL);
    rt_fx_client_destroy(&fx, cli);
    close(fd);

    /* A name that does not resolve fails at create. */
    gmud_error err;
    ccfg.host = "no-such-host.invalid";
    CHECK(gmud_client_create(&fx.loop, &ccfg, &err) == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_IO);
    /* Destroying a client still connecting calls nothing. */
    ccfg.host = "127.0.0.1";
    ccfg.port = 9; /* discard: refused or not, the destroy comes first */
    e.client_closed = 0;
    cli = gmud_client_create(&fx.loop, &ccfg, NULL);
    gmud_client_destroy(cli);
    rt_fx_end(&fx);
    CHECK_EQ_INT(e.client_closed, 0);
}

/* Sends made before the connect completes go out on connect. */
typedef struct early_t {
    int got;
    int closed;
} early_t;

static void cli_early_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)j;
    early_t *e = u;
    if (n == 5 && memcmp(d, "early", 5) == 0)
        e->got++;
    if (e->got == 2)
        gmud_conn_close(c);
}

static void cli_early_close(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *u)
{
    (void)c;
    (void)r;
    (void)d;
    ((early_t *)u)->closed = 1;
}

static void test_send_before_connect(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "length", GMUD_PAYLOAD_TEXT);
    rt_fx_serve(&fx, (gmud_callbacks){.on_message = srv_echo_message});
    early_t e = {0, 0};
    gmud_client *cli = rt_fx_client(&fx, NULL,
                                    (gmud_callbacks){.on_message = cli_early_message,
                                                     .on_close = cli_early_close,
                                                     .user = &e});
    CHECK_EQ_INT(gmud_conn_send(gmud_client_conn(cli), "early", 5, NULL), 0);
    CHECK_EQ_INT(gmud_conn_send(gmud_client_conn(cli), "early", 5, NULL), 0);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &e.closed, 3000));
    CHECK_EQ_INT(e.got, 2);
    rt_fx_end(&fx);
}

/* ---- Bad configs and the API's small promises ------------------------- */

static void test_api_edges(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    gmud_server_config *scfg = &fx.cfg;
    gmud_error err;
    scfg->conn.limits.max_queued = 0;
    CHECK(gmud_server_create(&fx.loop, scfg, &err) == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    rt_server_config(scfg, "gmud", GMUD_PAYLOAD_TEXT);
    scfg->host = "256.1.1.1.bad";
    CHECK(gmud_server_create(&fx.loop, scfg, &err) == NULL);
    /* The port is taken: bind fails with a clear reason. */
    rt_server_config(scfg, "gmud", GMUD_PAYLOAD_TEXT);
    rt_fx_serve(&fx, (gmud_callbacks){0});
    scfg->port = (uint16_t)fx.port;
    CHECK(gmud_server_create(&fx.loop, scfg, &err) == NULL);
    CHECK_CONTAINS(err.message, "cannot bind");
    CHECK_EQ_INT(err.code, GMUD_ERR_IO);
    gmud_server_destroy(NULL);
    gmud_client_destroy(NULL);
    gmud_timer_destroy(NULL);
    CHECK(strcmp(gmud_close_reason_name(GMUD_CLOSE_SLOW_CONSUMER), "slow consumer") == 0);
    CHECK(strcmp(gmud_close_reason_name(GMUD_CLOSE_BAD_MESSAGES), "too many bad messages") == 0);
    CHECK(strcmp(gmud_close_reason_name((gmud_close_reason)99), "unknown") == 0);
    gmud_log_level lvl;
    CHECK_EQ_INT(gmud_log_level_parse("debug", &lvl), 0);
    CHECK_EQ_INT(lvl, GMUD_LOG_DEBUG);
    CHECK_EQ_INT(gmud_log_level_parse("loud", &lvl), GMUD_ERR_INVALID);
    CHECK(strcmp(gmud_log_level_name(GMUD_LOG_WARN), "warn") == 0);
    /* Destroy without shutdown is allowed too. */
    rt_fx_server_destroy(&fx);
    rt_fx_end(&fx);
}

/* gmud_conn_max_payload: what gmud_conn_send takes, for each framing and
 * session mode; one byte more is refused. A client's connection exists
 * from create, so no peer is needed. */
static void check_max_payload(rt_fixture *fx, const char *framing, gmud_session_mode mode,
                              size_t want)
{
    rt_server_config(&fx->cfg, framing, GMUD_PAYLOAD_TEXT);
    gmud_client_config ccfg;
    rt_fx_client_config(fx, &ccfg);
    ccfg.conn.session.mode = mode;
    ccfg.conn.limits.max_queued = 1 << 20;
    gmud_error err;
    gmud_client *cli = rt_fx_client(fx, &ccfg, (gmud_callbacks){0});
    if (cli == NULL)
        return;
    gmud_conn *conn = gmud_client_conn(cli);
    CHECK_EQ_INT(gmud_conn_max_payload(conn), want);
    if (mode == GMUD_SESSION_OFF) { /* with sessions, sends wait for the welcome */
        static uint8_t big[70000];
        CHECK_EQ_INT(gmud_conn_send(conn, big, want, &err), 0);
        CHECK_EQ_INT(gmud_conn_send(conn, big, want + 1, &err), GMUD_ERR_UNENCODABLE);
    }
    rt_fx_client_destroy(fx, cli);
}

static void test_max_payload(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    fx.port = 1; /* no server: the clients never get to connect */
    check_max_payload(&fx, "gmud", GMUD_SESSION_OFF, 65535);
    check_max_payload(&fx, "length", GMUD_SESSION_OFF, 65535);
    check_max_payload(&fx, "fixed:100", GMUD_SESSION_OFF, 100);
    check_max_payload(&fx, "gmud", GMUD_SESSION_ON, 65535 - 16);
    check_max_payload(&fx, "fixed:100", GMUD_SESSION_ON, 100 - 16);
    check_max_payload(&fx, "line", GMUD_SESSION_OFF, 65535);
    rt_fx_end(&fx);
}

/* ---- Timers ----------------------------------------------------------- */

static void on_tick(gmud_timer *t, void *u)
{
    int *n = u;
    if (++*n == 3)
        gmud_timer_destroy(t);
}

static void test_timer(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT);
    int n = 0;
    gmud_timer *t = gmud_timer_create(&fx.loop, 5, 5, on_tick, &n);
    CHECK(t != NULL);
    rt_run_until(&fx.loop, NULL, NULL, 100);
    CHECK_EQ_INT(n, 3);
    rt_fx_end(&fx);
}

/* ---- Broadcast, foreach, and idle connections giving back memory ----- */

typedef struct chat_t {
    gmud_server *srv;
    gmud_client *cli[3];
    int connected;
    int got[3];
    int wrong;
    int closed;
} chat_t;

static void chat_relay(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)d;
    (void)n;
    chat_t *t = u;
    json_object_set_new(j, "from", json_integer((json_int_t)gmud_conn_id(c)));
    CHECK_EQ_INT(gmud_server_broadcast_json(t->srv, j, c, NULL), 2);
}

static void chat_connected(gmud_conn *c, void *u)
{
    (void)c;
    chat_t *t = u;
    if (++t->connected == 3) /* the first client speaks once all are in */
        CHECK_EQ_INT(gmud_conn_send(gmud_client_conn(t->cli[0]), "{\"m\":1}", 7, NULL), 0);
}

static void chat_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    chat_t *t = u;
    int who = -1;
    for (int i = 0; i < 3; i++)
        if (gmud_client_conn(t->cli[i]) == c)
            who = i;
    if (who <= 0 || json_integer_value(json_object_get(j, "m")) != 1 ||
        !json_is_integer(json_object_get(j, "from")))
        t->wrong++;
    else
        t->got[who]++;
    (void)d;
    (void)n;
}

static void chat_closed(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *u)
{
    (void)c;
    (void)r;
    (void)d;
    ((chat_t *)u)->closed++;
}

static int chat_delivered(void *p)
{
    chat_t *t = p;
    return t->got[1] == 1 && t->got[2] == 1;
}

static int chat_all_closed(void *p)
{
    return ((chat_t *)p)->closed == 3;
}

static void count_conn(gmud_conn *c, void *u)
{
    size_t *n = u;
    /* idle: the output buffers and the decoder's partial buffer are gone */
    if (c->io == NULL && gmud_frame_decoder_pending(c->dec) == 0)
        (*n)++;
}

static void test_broadcast(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
    chat_t t;
    memset(&t, 0, sizeof t);
    fx.cfg.conn.limits.sweep_ms = 20;
    t.srv = rt_fx_serve(&fx, (gmud_callbacks){.on_message = chat_relay, .user = &t});
    for (int i = 0; i < 3; i++)
        t.cli[i] = rt_fx_client(&fx, NULL,
                                (gmud_callbacks){.on_connect = chat_connected,
                                                 .on_message = chat_message,
                                                 .on_close = chat_closed,
                                                 .user = &t});
    CHECK(rt_run_until(&fx.loop, chat_delivered, &t, 3000));
    rt_run_until(&fx.loop, NULL, NULL, 100);
    CHECK_EQ_INT(t.got[0], 0);
    CHECK_EQ_INT(t.wrong, 0);
    CHECK_EQ_INT(gmud_server_connections(t.srv), 3);
    /* After a few sweeps of silence every connection holds no buffers. */
    size_t idle = 0;
    gmud_server_foreach(t.srv, count_conn, &idle);
    CHECK_EQ_INT(idle, 3);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.messages_in, 1);
    CHECK_EQ_INT(st.messages_out, 2);
    /* Shutdown closes the clients' connections too. */
    rt_fx_server_end(&fx);
    CHECK(rt_run_until(&fx.loop, chat_all_closed, &t, 3000));
    rt_fx_end(&fx);
}

/* ---- Raw framing: a read over the maximum is cut, not rejected ------- */

typedef struct raw_t {
    size_t bytes;
    size_t longest;
    int messages;
} raw_t;

static void raw_count(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)c;
    (void)d;
    (void)j;
    raw_t *r = u;
    r->bytes += n;
    r->messages++;
    if (n > r->longest)
        r->longest = n;
}

static void *peer_raw_burst(void *arg)
{
    peer_t *p = arg;
    int fd = rt_peer_raw(&p->rt, NULL, 0, NULL, 0);
    static uint8_t burst[250];
    memset(burst, 'r', sizeof burst);
    if (fd >= 0) {
        rt_send_all(fd, burst, sizeof burst);
        rt_sleep_ms(100);
        close(fd);
    }
    return NULL;
}

static int raw_all(void *p)
{
    return ((raw_t *)p)->bytes == 250;
}

static void test_raw_cut(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "raw", GMUD_PAYLOAD_TEXT);
    raw_t r = {0, 0, 0};
    fx.cfg.conn.frame.max_message = 100;
    rt_fx_serve(&fx, (gmud_callbacks){.on_message = raw_count, .user = &r});
    peer_t p;
    memset(&p, 0, sizeof p);
    rt_fx_peer(&fx, &p.rt, peer_raw_burst, &p);
    CHECK(rt_run_until(&fx.loop, raw_all, &r, 3000));
    rt_fx_join(&fx, &p.rt, 3000);
    CHECK_EQ_INT(r.bytes, 250);
    CHECK(r.longest <= 100);
    CHECK(r.messages >= 3);
    CHECK_EQ_INT(rt_fx_stats(&fx).closes[GMUD_CLOSE_PROTOCOL], 0);
    rt_fx_end(&fx);
}

/* ---- Re-entrancy: closing from on_message, destroying with clients ---- */

typedef struct reent_t {
    int server_msgs;
    int server_closes;
    int client_msgs;
    int client_closed;
    int client_reason;
} reent_t;

static void reent_server_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)j;
    reent_t *r = u;
    r->server_msgs++;
    gmud_conn_send(c, d, n, NULL);
    if (n == 5 && memcmp(d, "close", 5) == 0) {
        gmud_conn_close(c);
        gmud_conn_close(c); /* twice is harmless */
        CHECK(gmud_conn_send(c, "late", 4, NULL) == GMUD_ERR_CLOSED);
    }
}

static void reent_server_close(gmud_conn *c, gmud_close_reason w, const gmud_error *d, void *u)
{
    (void)d;
    (void)w;
    ((reent_t *)u)->server_closes++;
    gmud_conn_close(c); /* closing from on_close does nothing */
}

static void reent_client_connect(gmud_conn *c, void *u)
{
    (void)u;
    static const char *const m[] = {"a", "close", "b", "c"};
    for (int i = 0; i < 4; i++)
        gmud_conn_send(c, m[i], strlen(m[i]), NULL);
}

static void reent_client_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)c;
    (void)d;
    (void)n;
    (void)j;
    ((reent_t *)u)->client_msgs++;
}

static void reent_client_close(gmud_conn *c, gmud_close_reason w, const gmud_error *d, void *u)
{
    (void)c;
    (void)d;
    reent_t *r = u;
    r->client_closed = 1;
    r->client_reason = (int)w;
}

static void test_reentrancy(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "line", GMUD_PAYLOAD_TEXT);
    reent_t r;
    memset(&r, 0, sizeof r);
    rt_fx_serve(&fx, (gmud_callbacks){.on_message = reent_server_message,
                                      .on_close = reent_server_close,
                                      .user = &r});
    gmud_callbacks ccb = {.on_connect = reent_client_connect,
                          .on_message = reent_client_message,
                          .on_close = reent_client_close,
                          .user = &r};
    gmud_client *cli = rt_fx_client(&fx, NULL, ccb);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &r.client_closed, 3000));
    /* Nothing after "close" reached the application; the replies sent
     * before it, and "close" itself, did reach the client. */
    CHECK_EQ_INT(r.server_msgs, 2);
    CHECK_EQ_INT(r.client_msgs, 2);
    CHECK_EQ_INT(r.client_reason, GMUD_CLOSE_PEER);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &r.server_closes, 2000));
    rt_fx_client_destroy(&fx, cli);

    /* Destroying a server with a client still connected: the client sees
     * the end of stream; the server's on_close is not called. */
    memset(&r, 0, sizeof r);
    ccb.on_connect = NULL;
    rt_fx_client(&fx, NULL, ccb);
    CHECK(rt_run_until(&fx.loop, NULL, NULL, 100));
    CHECK_EQ_INT(gmud_server_connections(fx.srv), 1);
    rt_fx_server_destroy(&fx);
    CHECK(rt_run_until(&fx.loop, rt_int_set, &r.client_closed, 3000));
    CHECK_EQ_INT(r.client_reason, GMUD_CLOSE_PEER);
    CHECK_EQ_INT(r.server_closes, 0);
    rt_fx_end(&fx);
}

/* ---- One read buffer per loop ----------------------------------------- */

/* Every server and client on a loop reads into the loop's one buffer. Two
 * loops in two threads at once, each a server and SHARE_CLIENTS clients
 * echoing messages of up to 60 KB (reads that fill much of the buffer):
 * every byte must come back right, and half the clients are destroyed
 * midway while the rest go on reading through the same buffer (ASan sees a
 * buffer freed too early). No CHECK in the threads: they count, and the
 * main thread checks. */
enum { SHARE_CLIENTS = 12, SHARE_ROUND = 8 };

typedef struct share_cli {
    struct share_loop *sl;
    gmud_client *cli;
    int idx, sent, got, bad;
} share_cli;

typedef struct share_loop {
    uv_loop_t loop;
    gmud_server *srv;
    share_cli c[SHARE_CLIENTS];
    int connected, failures;
    uint8_t msg[60000];
} share_loop;

/* Message k of client i: its length and every byte depend on (i, k). */
static size_t share_msg(share_loop *sl, int i, int k)
{
    size_t len = 100 + ((size_t)(i * 7919 + k * 104729) % 59000);
    for (size_t b = 0; b < len; b++)
        sl->msg[b] = (uint8_t)(i * 31 + k * 17 + b);
    return len;
}

static void share_srv_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)j;
    if (gmud_conn_send(c, d, n, NULL) != 0)
        ((share_loop *)u)->failures++;
}

static void share_send_round(share_cli *sc)
{
    gmud_conn *conn = gmud_client_conn(sc->cli);
    for (int r = 0; r < SHARE_ROUND; r++, sc->sent++) {
        size_t len = share_msg(sc->sl, sc->idx, sc->sent);
        if (conn == NULL || gmud_conn_send(conn, sc->sl->msg, len, NULL) != 0)
            sc->sl->failures++;
    }
}

static void share_cli_connect(gmud_conn *c, void *u)
{
    (void)c;
    ((share_cli *)u)->sl->connected++;
}

static void share_cli_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)c;
    (void)j;
    share_cli *sc = u;
    size_t len = share_msg(sc->sl, sc->idx, sc->got++);
    if (n != len || memcmp(d, sc->sl->msg, n) != 0)
        sc->bad++;
}

static int share_all_connected(void *p)
{
    return ((share_loop *)p)->connected == SHARE_CLIENTS;
}

static int share_caught_up(void *p)
{
    share_loop *sl = p;
    for (int i = 0; i < SHARE_CLIENTS; i++)
        if (sl->c[i].cli != NULL && sl->c[i].got < sl->c[i].sent)
            return 0;
    return 1;
}

static void *share_run(void *arg)
{
    share_loop *sl = arg;
    uv_loop_init(&sl->loop);
    gmud_server_config scfg;
    rt_server_config(&scfg, "length", GMUD_PAYLOAD_TEXT);
    rt_no_rate_limits(&scfg);
    scfg.conn.log = NULL; /* the log capture is the main thread's */
    scfg.conn.cb.on_message = share_srv_message;
    scfg.conn.cb.user = sl;
    sl->srv = gmud_server_create(&sl->loop, &scfg, NULL);
    if (sl->srv == NULL) {
        sl->failures++;
        return NULL;
    }
    gmud_client_config ccfg;
    rt_client_config(&ccfg, &scfg, gmud_server_port(sl->srv));
    ccfg.conn.log = NULL;
    ccfg.conn.cb.on_connect = share_cli_connect;
    ccfg.conn.cb.on_message = share_cli_message;
    for (int i = 0; i < SHARE_CLIENTS; i++) {
        sl->c[i].sl = sl;
        sl->c[i].idx = i;
        ccfg.conn.cb.user = &sl->c[i];
        sl->c[i].cli = gmud_client_create(&sl->loop, &ccfg, NULL);
        sl->failures += sl->c[i].cli == NULL;
    }
    if (!rt_run_until(&sl->loop, share_all_connected, sl, 5000))
        sl->failures++;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < SHARE_CLIENTS; i++)
            if (sl->c[i].cli != NULL)
                share_send_round(&sl->c[i]);
        if (!rt_run_until(&sl->loop, share_caught_up, sl, 10000))
            sl->failures++;
        if (round == 0) /* the even half goes; the odd half reads on */
            for (int i = 0; i < SHARE_CLIENTS; i += 2) {
                gmud_client_destroy(sl->c[i].cli);
                sl->c[i].cli = NULL;
            }
    }
    for (int i = 1; i < SHARE_CLIENTS; i += 2)
        gmud_client_destroy(sl->c[i].cli);
    int done = 0;
    gmud_server_shutdown(sl->srv, 1000, rt_shutdown_done, &done);
    if (!rt_run_until(&sl->loop, rt_int_set, &done, 4000))
        sl->failures++;
    gmud_server_destroy(sl->srv);
    rt_run_until(&sl->loop, NULL, NULL, 50);
    sl->failures += uv_loop_close(&sl->loop) != 0;
    return NULL;
}

static void test_shared_read_buffer(void)
{
    static share_loop sl[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        memset(&sl[k], 0, sizeof sl[k]);
        CHECK_EQ_INT(pthread_create(&th[k], NULL, share_run, &sl[k]), 0);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(sl[k].failures, 0);
        for (int i = 0; i < SHARE_CLIENTS; i++) {
            /* Even clients took one round, odd ones all three. */
            CHECK_EQ_INT(sl[k].c[i].got, SHARE_ROUND * (i % 2 ? 3 : 1));
            CHECK_EQ_INT(sl[k].c[i].bad, 0);
        }
    }
}

/* ---- Several listeners, one server --------------------------------------- */

typedef struct lis_t {
    uint64_t ids[3];
    int connects;
    int clients_up;
} lis_t;

static void lis_srv_connect(gmud_conn *c, void *u)
{
    lis_t *t = u;
    if (t->connects < 3)
        t->ids[t->connects] = gmud_conn_id(c);
    t->connects++;
}

static void lis_cli_connect(gmud_conn *c, void *u)
{
    (void)c;
    ((lis_t *)u)->clients_up++;
}

static int lis_all_up(void *p)
{
    lis_t *t = p;
    return t->connects == 3 && t->clients_up == 3;
}

/* host:port plus two further listeners (::1 and a second IPv4 port): one
 * client on each, all one server's (ids, counts); a listener that cannot
 * bind, or too many, fail the whole create. */
static void test_listeners(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
    lis_t t;
    memset(&t, 0, sizeof t);
    gmud_listen_config more[2] = {{.host = "::1", .port = 0}, {.host = NULL, .port = 0}};
    fx.cfg.listen = more;
    fx.cfg.listen_count = 2;
    gmud_server *srv = rt_fx_serve(&fx, (gmud_callbacks){.on_connect = lis_srv_connect, .user = &t});
    if (srv == NULL) {
        rt_fx_end(&fx);
        return;
    }
    uint16_t ports[3];
    for (size_t i = 0; i < 3; i++) {
        ports[i] = gmud_server_listen_port(srv, i);
        CHECK(ports[i] != 0);
    }
    CHECK_EQ_INT(ports[0], gmud_server_port(srv));
    CHECK(ports[1] != ports[0] && ports[2] != ports[0]);
    CHECK_EQ_INT(gmud_server_listen_port(srv, 3), 0);
    static const char *const hosts[3] = {"127.0.0.1", "::1", "127.0.0.1"};
    for (size_t i = 0; i < 3; i++) {
        gmud_client_config ccfg;
        rt_fx_client_config(&fx, &ccfg);
        ccfg.host = hosts[i];
        ccfg.port = ports[i];
        rt_fx_client(&fx, &ccfg, (gmud_callbacks){.on_connect = lis_cli_connect, .user = &t});
    }
    CHECK(rt_run_until(&fx.loop, lis_all_up, &t, 3000));
    CHECK(t.ids[0] != t.ids[1] && t.ids[1] != t.ids[2] && t.ids[0] != t.ids[2]);
    CHECK_EQ_INT(gmud_server_connections(srv), 3);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.accepted, 3);
    /* A second server whose last listener wants a port in use. */
    gmud_server_config cfg = fx.cfg;
    gmud_listen_config taken[2] = {{.host = NULL, .port = 0}, {.host = NULL, .port = ports[2]}};
    cfg.listen = taken;
    cfg.port = 0;
    gmud_error err;
    CHECK(gmud_server_create(&fx.loop, &cfg, &err) == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_IO);
    CHECK_CONTAINS(err.message, "cannot bind");
    cfg.listen_count = GMUD_MAX_LISTENERS;
    CHECK(gmud_server_create(&fx.loop, &cfg, &err) == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    CHECK_CONTAINS(err.message, "listen");
    /* SO_REUSEPORT: two servers on one port only if both ask for it. */
    cfg.listen_count = 0;
    cfg.reuseport = 1;
    gmud_server *a = gmud_server_create(&fx.loop, &cfg, &err);
    CHECK(a != NULL);
    if (a != NULL) {
        cfg.port = gmud_server_port(a);
        gmud_server *b = gmud_server_create(&fx.loop, &cfg, &err);
        CHECK(b != NULL);
        cfg.reuseport = 0;
        CHECK(gmud_server_create(&fx.loop, &cfg, &err) == NULL);
        CHECK_CONTAINS(err.message, "cannot bind");
        if (b != NULL)
            rt_server_end(&fx.loop, b);
        rt_server_end(&fx.loop, a);
    }
    rt_fx_end(&fx);
}

int main(void)
{
    rt_ignore_sigpipe();
    test_shared_read_buffer();
    test_echo_framings();
    test_ipv6();
    test_coalescing();
    test_shutdown_flushes();
    test_half_close();
    test_connect_failed();
    test_send_before_connect();
    test_api_edges();
    test_max_payload();
    test_timer();
    test_broadcast();
    test_raw_cut();
    test_reentrancy();
    test_listeners();
    /* Every server and client above gave its loop's read buffer back (the
     * list keeps one alive, so LeakSanitizer would not see a lost one). */
    CHECK_EQ_INT(rt_readbufs_live(), 0);
    return check_report("test_server");
}
