/* Sessions (the lecture's approach 6, and gmud's mode on) and the spam
 * limits, end to end over real loopback sockets. The library's server and
 * client run on a loop in this thread; hostile or hand-written peers (and
 * a fake server) run in a second thread on blocking sockets, and speak the
 * bytes themselves: frames, session headers and JSON are built and parsed
 * here, not by the library, so what is asserted is what is on the wire. */
#include "rt_util.h"
#include "conn.h" /* to wind a session's counter to its end */

#include <inttypes.h>

enum { MAXC = 32, MAXM = 64, MSGCAP = 1024 };

/* ---- Bytes, written and read by hand ------------------------------------ */

/* One frame of p[0..n) into out: gmud framing ("GMUD", 2-byte LE length)
 * when fixed is 0, else fixed:N (the bytes, then zeros up to N). Returns
 * the bytes written. */
static size_t put_frame(uint8_t *out, size_t fixed, const void *p, size_t n)
{
    if (fixed != 0) {
        memcpy(out, p, n);
        memset(out + n, 0, fixed - n);
        return fixed;
    }
    memcpy(out, "GMUD", 4);
    out[4] = (uint8_t)(n & 0xff);
    out[5] = (uint8_t)(n >> 8);
    memcpy(out + 6, p, n);
    return 6 + n;
}

/* One mode-on frame: <SESSION_ID.8 LE><SEQUENCE.8 LE>, then the app's text. */
static size_t put_on(uint8_t *out, size_t fixed, uint64_t id, uint64_t seq, const char *app)
{
    uint8_t payload[MSGCAP];
    size_t n = strlen(app);
    rt_le64_put(payload, id);
    rt_le64_put(payload + 8, seq);
    memcpy(payload + 16, app, n);
    return put_frame(out, fixed, payload, 16 + n);
}

static size_t trim_zeros(const uint8_t *p, size_t n)
{
    while (n > 0 && p[n - 1] == 0)
        n--;
    return n;
}

/* 1 if p[0..n) is exactly the welcome, {"session_id": <id>, "sequence_id": 0}
 * as Python's json.dumps writes it, with id in 1..2^53-1. */
static int parse_welcome(const uint8_t *p, size_t n, uint64_t *id)
{
    char text[128], want[128];
    if (n >= sizeof text)
        return 0;
    memcpy(text, p, n);
    text[n] = '\0';
    unsigned long long v = 0;
    if (sscanf(text, "{\"session_id\": %llu,", &v) != 1)
        return 0;
    snprintf(want, sizeof want, "{\"session_id\": %llu, \"sequence_id\": 0}", v);
    if (strcmp(text, want) != 0 || v == 0 || v > GMUD_SESSION_ID_MAX)
        return 0;
    *id = v;
    return 1;
}

/* 1 if p[0..n) is an error packet {"error": <text>, "code": code}. */
static int is_error(const uint8_t *p, size_t n, const char *code)
{
    json_t *v = json_loadb((const char *)p, n, 0, NULL);
    const char *got = json_string_value(json_object_get(v, "code"));
    int ok = json_is_object(v) && json_object_size(v) == 2 && got != NULL &&
             strcmp(got, code) == 0 && json_is_string(json_object_get(v, "error"));
    json_decref(v);
    return ok;
}

/* The approach-4 object, as the lecture's server writes it (json.dumps). */
static size_t clock_text(int value, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "{\"time\": \"Sat Mar 30 11:40:50 2019\", \"message\": "
                     "\"%d:Sat Mar 30 11:40:50 2019\", \"value\": %d}",
                     value, value);
    return (size_t)n;
}

/* The lecture client's reply, as json.dumps writes it. */
static size_t reply_text(uint64_t id, uint64_t seq, const char *data_json, char *out,
                         size_t cap)
{
    int n = snprintf(out, cap, "{\"session_id\": %" PRIu64 ", \"sequence_id\": %" PRIu64
                               ", \"data\": %s}",
                     id, seq, data_json);
    return (size_t)n;
}

/* ---- The peer thread --------------------------------------------------- */

typedef struct peer_t {
    rt_peer rt;            /* rt.ready: it reached a point main checks;
                              rt.release: main lets it go on */
    size_t fixed;          /* 0: gmud framing, else fixed:N */
    int nlocal;
    char local[12][64];    /* each connection's address, as the server logs it */
    uint64_t ids[12];      /* the session id each connection was given */
    int64_t ms[4];         /* timings the test reports */
    int count[4];          /* tallies the test reports */
} peer_t;

/* A check made in the peer thread (counted into the report at the join). */
#define PCHECK(p, cond) RT_PCHECK(&(p)->rt, cond)

static void peer_init(peer_t *p, size_t fixed)
{
    memset(p, 0, sizeof *p);
    p->fixed = fixed;
}

/* Connects and notes the address; -1 on failure. */
static int peer_connect(peer_t *p)
{
    char *local = p->nlocal < 12 ? p->local[p->nlocal] : NULL;
    int fd = rt_peer_raw(&p->rt, NULL, 0, local, sizeof p->local[0]);
    if (fd >= 0 && local != NULL)
        p->nlocal++;
    return fd;
}

/* Connects and reads the welcome, which must come unasked and be exact;
 * the id goes to p->ids. -1 on failure. */
static int peer_welcomed(peer_t *p, uint64_t *id)
{
    int fd = peer_connect(p);
    if (!PCHECK(p, fd >= 0))
        return -1;
    uint8_t buf[MSGCAP];
    size_t n = 0;
    int ok = PCHECK(p, rt_recv_frame(fd, p->fixed, buf, sizeof buf, &n, 2000) == 1);
    size_t text = p->fixed ? trim_zeros(buf, n) : n;
    ok = ok && PCHECK(p, parse_welcome(buf, text, id));
    if (!ok) {
        close(fd);
        return -1;
    }
    p->ids[p->nlocal - 1] = *id;
    return fd;
}

/* Mode on: reads the next frame (within 2 s), which must carry the header
 * (id, seq); the application's bytes are buf[16..*n) (buf holds MSGCAP
 * bytes). 1 if so, 0 if the header is wrong, -1 if no frame came. */
static int peer_read_on(peer_t *p, int fd, uint64_t id, uint64_t seq, uint8_t *buf, size_t *n)
{
    int rc = rt_recv_frame(fd, p->fixed, buf, MSGCAP, n, 2000);
    if (!PCHECK(p, rc == 1)) {
        fprintf(stderr, "  no packet (%d)\n", rc);
        return -1;
    }
    if (p->fixed != 0)
        *n = trim_zeros(buf, *n);
    int ok = PCHECK(p, *n >= 16);
    ok = ok && PCHECK(p, rt_le64_get(buf) == id);
    return ok && PCHECK(p, rt_le64_get(buf + 8) == seq);
}

/* Mode on: the next frame carries (id, seq) and app exactly. */
static int peer_expect_on(peer_t *p, int fd, uint64_t id, uint64_t seq, const char *app)
{
    uint8_t buf[MSGCAP];
    size_t n = 0;
    int rc = peer_read_on(p, fd, id, seq, buf, &n);
    if (rc < 0)
        return 0;
    int ok = rc && PCHECK(p, n - 16 == strlen(app) && memcmp(buf + 16, app, n - 16) == 0);
    if (!ok)
        fprintf(stderr, "  wanted %s, got %zu bytes: %.*s\n", app, n,
                n > 16 ? (int)(n - 16) : 0, (const char *)buf + 16);
    return ok;
}

/* Mode on: an error packet with the header (id, seq) and code, then the
 * end of stream. */
static int peer_expect_error_on(peer_t *p, int fd, uint64_t id, uint64_t seq, const char *code)
{
    uint8_t buf[MSGCAP];
    size_t n = 0;
    int rc = peer_read_on(p, fd, id, seq, buf, &n);
    if (rc < 0)
        return 0;
    int ok = rc && PCHECK(p, is_error(buf + 16, n - 16, code));
    if (!ok)
        fprintf(stderr, "  wanted code %s, got %.*s\n", code, n > 16 ? (int)(n - 16) : 0,
                (const char *)buf + 16);
    return PCHECK(p, rt_recv_frame(fd, p->fixed, buf, sizeof buf, &n, 3000) == 0) && ok;
}

/* ---- The library's server, recording what its application sees -------- */

typedef struct msg_t {
    uint64_t conn;
    size_t len;
    uint8_t data[MSGCAP];
} msg_t;

typedef struct rec_t {
    gmud_conn *conn;   /* while open */
    char peer[64];
    int connected;
    int reason;        /* -1 while open */
    int rejects;
    int reject_code;
    int msgs;
    int sent;          /* lecture: data packets sent */
} rec_t;

typedef enum app_kind { APP_RECORD, APP_ECHO, APP_RELAY, APP_LECTURE } app_kind;

typedef struct srv_t {
    gmud_server *srv;
    app_kind kind;
    int lecture_first;   /* lecture: data packets sent on connect */
    int lecture_total;   /* lecture: at most this many per connection */
    int send_on_reject;  /* lecture: a refused reply is answered too, as the
                            lecture's loop sends on whatever came back */
    rec_t recs[MAXC];
    msg_t msgs[MAXM];
    int nmsgs;
} srv_t;

static rec_t *rec_of(srv_t *s, const gmud_conn *c)
{
    uint64_t id = gmud_conn_id(c);
    return &s->recs[id < MAXC ? id : 0];
}

static rec_t *rec_by_peer(srv_t *s, const char *peer)
{
    for (int i = 1; i < MAXC; i++) {
        if (s->recs[i].connected && strcmp(s->recs[i].peer, peer) == 0)
            return &s->recs[i];
    }
    return &s->recs[0]; /* connected 0: every check on it fails */
}

static void lecture_send(srv_t *s, gmud_conn *c)
{
    rec_t *r = rec_of(s, c);
    char text[256];
    size_t n = clock_text(r->sent, text, sizeof text);
    CHECK_EQ_INT(gmud_conn_send(c, text, n, NULL), 0);
    r->sent++;
}

static void s_connect(gmud_conn *c, void *u)
{
    srv_t *s = u;
    rec_t *r = rec_of(s, c);
    r->conn = c;
    r->connected = 1;
    snprintf(r->peer, sizeof r->peer, "%s", gmud_conn_peer(c));
    if (s->kind == APP_LECTURE)
        for (int i = 0; i < s->lecture_first; i++)
            lecture_send(s, c);
}

static void s_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)j;
    srv_t *s = u;
    rec_t *r = rec_of(s, c);
    r->msgs++;
    if (s->nmsgs < MAXM && n <= MSGCAP) {
        msg_t *m = &s->msgs[s->nmsgs++];
        m->conn = gmud_conn_id(c);
        m->len = n;
        memcpy(m->data, d, n);
    }
    switch (s->kind) {
    case APP_ECHO:
        CHECK_EQ_INT(gmud_conn_send(c, d, n, NULL), 0);
        break;
    case APP_RELAY:
        CHECK(gmud_server_broadcast(s->srv, d, n, c, NULL) >= 0);
        break;
    case APP_LECTURE:
        if (r->sent < s->lecture_total)
            lecture_send(s, c);
        break;
    default:
        break;
    }
}

static void s_close(gmud_conn *c, gmud_close_reason why, const gmud_error *d, void *u)
{
    (void)d;
    rec_t *r = rec_of(u, c);
    r->reason = (int)why;
    r->conn = NULL;
}

static void s_reject(gmud_conn *c, const gmud_error *why, void *u)
{
    srv_t *s = u;
    rec_t *r = rec_of(s, c);
    r->rejects++;
    r->reject_code = why->code;
    if (s->kind == APP_LECTURE && s->send_on_reject && r->sent < s->lecture_total)
        lecture_send(s, c);
}

/* rt_fx_init, with the server's session mode. */
static void fx_init(rt_fixture *fx, const char *framing, gmud_payload payload,
                    gmud_session_mode mode)
{
    rt_fx_init(fx, framing, payload);
    fx->cfg.conn.session.mode = mode;
}

/* fx's server, running the application kind and recording into s. */
static gmud_server *start(rt_fixture *fx, srv_t *s, app_kind kind)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < MAXC; i++)
        s->recs[i].reason = -1;
    s->kind = kind;
    s->srv = rt_fx_serve(fx, (gmud_callbacks){.on_connect = s_connect,
                                              .on_message = s_message,
                                              .on_close = s_close,
                                              .on_reject = s_reject,
                                              .user = s});
    return s->srv;
}

/* fx_init, then start. */
static gmud_server *serve(rt_fixture *fx, srv_t *s, const char *framing, gmud_payload payload,
                          gmud_session_mode mode, app_kind kind)
{
    fx_init(fx, framing, payload, mode);
    return start(fx, s, kind);
}

/* A lecture server (gmud framing, JSON) that sends one data packet on
 * connect and one per reply, `total` in all. */
static void lecture_serve(rt_fixture *fx, srv_t *s, int total)
{
    serve(fx, s, "gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_LECTURE, APP_LECTURE);
    s->lecture_first = 1;
    s->lecture_total = total;
}

static int none_open(void *arg)
{
    return gmud_server_connections(((srv_t *)arg)->srv) == 0;
}

/* Peer fn (with framing fixed, as peer_init) against s's server, run to its
 * end (at most ms); then every connection is closed. */
static void run_peer(rt_fixture *fx, srv_t *s, peer_t *p, size_t fixed, void *(*fn)(void *),
                     int ms)
{
    peer_init(p, fixed);
    rt_fx_run_peer(fx, &p->rt, fn, p, ms);
    CHECK(rt_run_until(&fx->loop, none_open, s, 3000));
}

static int rec_closed(void *arg)
{
    return ((rec_t *)arg)->reason >= 0;
}

static int only_client_open(void *arg)
{
    return gmud_server_connections(((srv_t *)arg)->srv) == 1;
}

/* The message the application got i-th is text. */
static int msg_is(const srv_t *s, int i, const char *text)
{
    return i < s->nmsgs && s->msgs[i].len == strlen(text) &&
           memcmp(s->msgs[i].data, text, s->msgs[i].len) == 0;
}

/* ---- The library's client ---------------------------------------------- */

typedef struct cli_t {
    gmud_client *cli;
    int connected;
    int welcomed_first;   /* the welcome was logged before on_connect */
    int reason;           /* -1 while open */
    int rejects;
    int reject_code;
    int try_send;         /* on_message tries a send (lecture: refused) */
    int send_rc;          /* and what it returned */
    const char *to_send[4];
    int nsend;
    int nmsgs;
    msg_t msgs[MAXM];
} cli_t;

static void c_connect(gmud_conn *c, void *u)
{
    cli_t *k = u;
    k->connected++;
    k->welcomed_first = rt_log_find(" session ", "welcomed") != NULL;
    for (int i = 0; i < k->nsend; i++)
        CHECK_EQ_INT(gmud_conn_send(c, k->to_send[i], strlen(k->to_send[i]), NULL), 0);
}

static void c_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)j;
    cli_t *k = u;
    if (k->nmsgs < MAXM && n <= MSGCAP) {
        k->msgs[k->nmsgs].len = n;
        memcpy(k->msgs[k->nmsgs].data, d, n);
        k->nmsgs++;
    }
    if (k->try_send)
        k->send_rc = gmud_conn_send(c, "{}", 2, NULL);
}

static void c_close(gmud_conn *c, gmud_close_reason why, const gmud_error *d, void *u)
{
    (void)c;
    (void)d;
    ((cli_t *)u)->reason = (int)why;
}

static void c_reject(gmud_conn *c, const gmud_error *why, void *u)
{
    (void)c;
    cli_t *k = u;
    k->rejects++;
    k->reject_code = why->code;
}

/* A client of the server's framing and payload in session mode `mode`
 * (lecture: with reply_data, NULL for the default), recording into k. */
static gmud_client *client_start(rt_fixture *fx, gmud_session_mode mode, const char *reply_data,
                                 cli_t *k)
{
    gmud_client_config cfg;
    rt_fx_client_config(fx, &cfg);
    cfg.conn.session.mode = mode;
    if (reply_data != NULL)
        cfg.conn.session.reply_data = reply_data;
    k->reason = -1;
    k->cli = rt_fx_client(fx, &cfg,
                          (gmud_callbacks){.on_connect = c_connect,
                                           .on_message = c_message,
                                           .on_close = c_close,
                                           .on_reject = c_reject,
                                           .user = k});
    return k->cli;
}

static int cli_closed(void *arg)
{
    return ((cli_t *)arg)->reason >= 0;
}

static int cli_got3(void *arg)
{
    return ((cli_t *)arg)->nmsgs >= 3;
}

/* Closes k's client gracefully and waits for its on_close. */
static void client_end(rt_fixture *fx, cli_t *k)
{
    if (k->reason < 0) {
        gmud_client_close(k->cli);
        CHECK(rt_run_until(&fx->loop, cli_closed, k, 3000));
        CHECK_EQ_INT(k->reason, GMUD_CLOSE_LOCAL);
    }
    rt_fx_client_destroy(fx, k->cli);
}

/* gmud_conn_send on k's connection; 1 (no code has it) once it is gone. */
static int cli_send(const cli_t *k, const char *text, size_t len)
{
    gmud_conn *c = gmud_client_conn(k->cli);
    return c != NULL ? gmud_conn_send(c, text, len, NULL) : 1;
}

static int cli_msg_is(const cli_t *k, int i, const char *text)
{
    return i < k->nmsgs && k->msgs[i].len == strlen(text) &&
           memcmp(k->msgs[i].data, text, k->msgs[i].len) == 0;
}

/* ==== 1. Mode on: the event client, and the welcome on the wire ========= */

static const char *const ECHO_MSGS[3] = {"{\"n\":1}", "{\"n\":2,\"s\":\"two\"}",
                                         "{\"n\":3,\"t\":[1,2]}"};

/* A mode-on client k that sends ECHO_MSGS once welcomed. */
static void echo_client(rt_fixture *fx, cli_t *k)
{
    memset(k, 0, sizeof *k);
    k->nsend = 3;
    memcpy(k->to_send, ECHO_MSGS, sizeof ECHO_MSGS);
    client_start(fx, GMUD_SESSION_ON, NULL, k);
}

/* Waits for k's three echoes; k was welcomed once, and it and the server's
 * application got ECHO_MSGS exactly. */
static void check_echoes(rt_fixture *fx, const srv_t *s, cli_t *k)
{
    CHECK(rt_run_until(&fx->loop, cli_got3, k, 3000));
    CHECK_EQ_INT(k->connected, 1);
    for (int i = 0; i < 3; i++) {
        CHECK(cli_msg_is(k, i, ECHO_MSGS[i]));
        CHECK(msg_is(s, i, ECHO_MSGS[i]));
    }
}

static void *peer_two_welcomes(void *arg)
{
    peer_t *p = arg;
    uint64_t a = 0, b = 0;
    int fa = peer_welcomed(p, &a);
    int fb = peer_welcomed(p, &b);
    PCHECK(p, fa >= 0 && fb >= 0 && a != b);
    if (fa >= 0 && fb >= 0) {
        /* The server's data packets count from 1 (the welcome was its 0). */
        uint8_t out[256];
        size_t n = put_on(out, p->fixed, a, 0, "{\"raw\":0}");
        n += put_on(out + n, p->fixed, a, 1, "{\"raw\":1}");
        PCHECK(p, rt_send_all(fa, out, n) == 0);
        peer_expect_on(p, fa, a, 1, "{\"raw\":0}");
        peer_expect_on(p, fa, a, 2, "{\"raw\":1}");
    }
    rt_close_fd(fa);
    rt_close_fd(fb);
    return NULL;
}

static void test_on_client_echo(void)
{
    rt_fixture fx;
    srv_t s;
    serve(&fx, &s, "gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON, APP_ECHO);

    cli_t k;
    echo_client(&fx, &k);
    /* No session yet: refused, nothing queued. */
    CHECK_EQ_INT(cli_send(&k, "{}", 2), GMUD_ERR_NOT_WELCOMED);
    check_echoes(&fx, &s, &k);
    CHECK(k.welcomed_first);
    CHECK_EQ_INT(k.nmsgs, 3);
    CHECK_EQ_INT(s.nmsgs, 3);
    CHECK_EQ_INT(k.rejects, 0);

    peer_t p;
    peer_init(&p, 0);
    rt_fx_run_peer(&fx, &p.rt, peer_two_welcomes, &p, 5000);
    CHECK(p.ids[0] != p.ids[1]);
    CHECK(p.ids[0] >= 1 && p.ids[0] <= GMUD_SESSION_ID_MAX);
    CHECK(p.ids[1] >= 1 && p.ids[1] <= GMUD_SESSION_ID_MAX);
    CHECK(rt_run_until(&fx.loop, only_client_open, &s, 2000));
    client_end(&fx, &k);
    CHECK(rt_run_until(&fx.loop, none_open, &s, 2000));
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.security, 0);
    CHECK_EQ_INT(st.messages_in, 5);
    rt_fx_end(&fx);
}

/* ==== 2. Mode on: the server refuses replayed, skipped and foreign packets */

typedef struct violation_t {
    const char *kind;
    int code;
    const char *valid_first;   /* sent with sequence 0 first, or NULL */
    const char *logged;        /* the security line says this too */
} violation_t;

static const violation_t VIOLATIONS[] = {
    {"replayed", GMUD_ERR_REPLAYED, "{\"a\":0}", "expected sequence 1, got 0"},
    {"skipped", GMUD_ERR_SKIPPED, "{\"b\":0}", "expected sequence 1, got 2"},
    {"bad_session", GMUD_ERR_BAD_SESSION, NULL, "expected"},
    {"missing_field", GMUD_ERR_MISSING_FIELD, NULL, "10 bytes"},
};
enum { NVIOL = sizeof VIOLATIONS / sizeof VIOLATIONS[0] };

static void *peer_violations(void *arg)
{
    peer_t *p = arg;
    for (int i = 0; i < NVIOL; i++) {
        uint64_t id = 0;
        int fd = peer_welcomed(p, &id);
        if (fd < 0)
            break;
        uint8_t out[512];
        size_t n = 0;
        if (VIOLATIONS[i].valid_first != NULL) {
            n = put_on(out, 0, id, 0, VIOLATIONS[i].valid_first);
            PCHECK(p, rt_send_all(fd, out, n) == 0);
        }
        switch (VIOLATIONS[i].code) {
        case GMUD_ERR_REPLAYED:
            /* The replay, then the right next packet in the same write:
             * nothing after a violation is delivered. */
            n = put_on(out, 0, id, 0, "{\"a\":1}");
            n += put_on(out + n, 0, id, 1, "{\"a\":2}");
            break;
        case GMUD_ERR_SKIPPED:
            n = put_on(out, 0, id, 2, "{\"b\":2}");
            break;
        case GMUD_ERR_BAD_SESSION:
            n = put_on(out, 0, id % GMUD_SESSION_ID_MAX + 1, 0, "{\"c\":0}");
            break;
        default:
            n = put_frame(out, 0, "0123456789", 10);
            break;
        }
        PCHECK(p, rt_send_all(fd, out, n) == 0);
        peer_expect_error_on(p, fd, id, 1, VIOLATIONS[i].kind);
        close(fd);
    }
    return NULL;
}

static void test_on_violations(void)
{
    rt_fixture fx;
    srv_t s;
    serve(&fx, &s, "gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON, APP_RECORD);
    peer_t p;
    run_peer(&fx, &s, &p, 0, peer_violations, 10000);
    CHECK_EQ_INT(p.nlocal, NVIOL);
    for (int i = 0; i < NVIOL && i < p.nlocal; i++) {
        const violation_t *v = &VIOLATIONS[i];
        rec_t *r = rec_by_peer(&s, p.local[i]);
        CHECK_EQ_INT(r->reason, GMUD_CLOSE_SESSION);
        CHECK_EQ_INT(r->rejects, 1);
        CHECK_EQ_INT(r->reject_code, v->code);
        CHECK_EQ_INT(r->msgs, v->valid_first != NULL ? 1 : 0);
        const char *line = rt_log_find(p.local[i], " security ");
        CHECK(line != NULL);
        if (line != NULL) {
            CHECK_CONTAINS(line, v->kind);
            CHECK_CONTAINS(line, v->logged);
        }
        line = rt_log_find(p.local[i], " close ");
        CHECK(line != NULL);
        if (line != NULL)
            CHECK_CONTAINS(line, "session violation");
    }
    /* Only the valid packets reached the application. */
    CHECK_EQ_INT(s.nmsgs, 2);
    CHECK(msg_is(&s, 0, "{\"a\":0}"));
    CHECK(msg_is(&s, 1, "{\"b\":0}"));
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.security, NVIOL);
    CHECK_EQ_INT(st.messages_in, 2);
    CHECK_EQ_INT(st.closes[GMUD_CLOSE_SESSION], NVIOL);
    for (int i = 0; i < NVIOL; i++)
        CHECK_EQ_INT(st.rejects[-VIOLATIONS[i].code], 1);
    rt_fx_end(&fx);
}

/* ==== 3. A recorded connection replayed on another ===================== */

static const char *const A_MSGS[3] = {"{\"say\":\"one\"}", "{\"say\":\"two\"}",
                                      "{\"say\":\"three\"}"};
#define MARKER "{\"say\":\"marker\"}"

static void *peer_replay(void *arg)
{
    peer_t *p = arg;
    uint64_t ido = 0, ida = 0, idb = 0, ida2 = 0;
    int fo = peer_welcomed(p, &ido);
    int fa = peer_welcomed(p, &ida);
    static uint8_t recorded[1024];
    size_t rec = 0;
    if (fo >= 0 && fa >= 0) {
        for (int i = 0; i < 3; i++) {
            size_t n = put_on(recorded + rec, 0, ida, (uint64_t)i, A_MSGS[i]);
            PCHECK(p, rt_send_all(fa, recorded + rec, n) == 0);
            rec += n;
        }
        /* The observer gets A's messages under its own session. */
        for (int i = 0; i < 3; i++)
            peer_expect_on(p, fo, ido, (uint64_t)i + 1, A_MSGS[i]);
    }
    rt_close_fd(fa);
    int fb = peer_welcomed(p, &idb);
    if (fb >= 0) {
        PCHECK(p, idb != ida);
        PCHECK(p, rt_send_all(fb, recorded, rec) == 0);
        peer_expect_error_on(p, fb, idb, 1, "bad_session");
        close(fb);
    }
    /* A fresh, honest connection: the observer's next message is its
     * marker, so nothing of B's came in between. */
    int fa2 = peer_welcomed(p, &ida2);
    if (fa2 >= 0 && fo >= 0) {
        uint8_t out[128];
        size_t n = put_on(out, 0, ida2, 0, MARKER);
        PCHECK(p, rt_send_all(fa2, out, n) == 0);
        peer_expect_on(p, fo, ido, 4, MARKER);
    }
    rt_close_fd(fa2);
    rt_close_fd(fo);
    return NULL;
}

static void test_on_replay(void)
{
    rt_fixture fx;
    srv_t s;
    serve(&fx, &s, "gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON, APP_RELAY);
    peer_t p;
    run_peer(&fx, &s, &p, 0, peer_replay, 10000);
    CHECK_EQ_INT(p.nlocal, 4);
    rec_t *a = rec_by_peer(&s, p.local[1]);
    rec_t *b = rec_by_peer(&s, p.local[2]);
    CHECK_EQ_INT(a->msgs, 3);
    CHECK_EQ_INT(a->reason, GMUD_CLOSE_PEER);
    CHECK_EQ_INT(b->msgs, 0);
    CHECK_EQ_INT(b->reason, GMUD_CLOSE_SESSION);
    CHECK_EQ_INT(b->reject_code, GMUD_ERR_BAD_SESSION);
    CHECK_EQ_INT(s.nmsgs, 4);
    for (int i = 0; i < 3; i++)
        CHECK(msg_is(&s, i, A_MSGS[i]));
    CHECK(msg_is(&s, 3, MARKER));
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.security, 1);
    CHECK(rt_log_find(p.local[2], "bad_session") != NULL);
    rt_fx_end(&fx);
}

/* ==== 4. Mode on, client side: a fake server ============================ */

/* A fake server for the client tests, in mode on: fn runs in a thread with
 * p set up (p->rt.listen_fd listening on fx's port, where fx's clients go). */
static void fake_server_start(rt_fixture *fx, peer_t *p, void *(*fn)(void *))
{
    fx_init(fx, "gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON);
    rt_fx_listen(fx);
    peer_init(p, 0);
    rt_fx_peer(fx, &p->rt, fn, p);
}

/* First packets that are not a welcome: a session violation, except the
 * server's own refusal (an error packet), which is a protocol close and
 * no security event. */
typedef struct not_welcome_t {
    const char *text;  /* a frame's payload; NULL: a mode-on data packet */
    int reason;
    int rejects;
} not_welcome_t;

static const not_welcome_t NOT_WELCOMES[] = {
    {"{\"hello\": 1}", GMUD_CLOSE_SESSION, 1},
    {"hello", GMUD_CLOSE_SESSION, 1},
    {"{\"session_id\": 7, \"sequence_id\": 1}", GMUD_CLOSE_SESSION, 1},
    {"{\"session_id\": 0, \"sequence_id\": 0}", GMUD_CLOSE_SESSION, 1},
    {"{\"session_id\": 9007199254740992, \"sequence_id\": 0}", GMUD_CLOSE_SESSION, 1},
    {"{\"session_id\": \"7\", \"sequence_id\": 0}", GMUD_CLOSE_SESSION, 1},
    {NULL, GMUD_CLOSE_SESSION, 1},
    {"{\"error\": \"server full\", \"code\": \"server_full\"}", GMUD_CLOSE_REFUSED, 0},
    /* No first packet at all: the server closed at once. An error too (the
     * client expected a welcome), though nothing to refuse or answer. */
    {"", GMUD_CLOSE_SESSION, 0},
};
enum { NNOTW = sizeof NOT_WELCOMES / sizeof NOT_WELCOMES[0] };

static void *fake_not_welcome(void *arg)
{
    peer_t *p = arg;
    for (int i = 0; i < NNOTW; i++) {
        int fd = rt_accept_within(p->rt.listen_fd, 3000);
        if (!PCHECK(p, fd >= 0))
            break;
        uint8_t out[256];
        size_t n = NOT_WELCOMES[i].text
                       ? put_frame(out, 0, NOT_WELCOMES[i].text, strlen(NOT_WELCOMES[i].text))
                       : put_on(out, 0, 7, 0, "{}");
        if (NOT_WELCOMES[i].text != NULL && NOT_WELCOMES[i].text[0] == '\0') {
            close(fd);
            continue;
        }
        PCHECK(p, rt_send_all(fd, out, n) == 0);
        /* A refused first packet is answered with an error packet, bare
         * (there is no session to give it a header: PROTOCOL.md 6.5), then
         * the close. The server's own refusal gets nothing back. */
        uint8_t buf[512];
        int eof = 0;
        size_t got = rt_recv_to_eof(fd, buf, sizeof buf - 1, 3000, &eof);
        PCHECK(p, eof);
        if (NOT_WELCOMES[i].rejects) {
            size_t len = got >= 6 ? (size_t)(buf[4] | buf[5] << 8) : 0;
            buf[got] = '\0';
            PCHECK(p, got >= 6 && memcmp(buf, "GMUD", 4) == 0 && len == got - 6);
            PCHECK(p, strstr((const char *)buf + 6, "\"code\":\"not_welcomed\"") != NULL);
            PCHECK(p, buf[6] == '{'); /* JSON at once: no session header before it */
        } else {
            PCHECK(p, got == 0);
        }
        close(fd);
    }
    return NULL;
}

static void test_client_not_welcomed(void)
{
    rt_fixture fx;
    peer_t p;
    fake_server_start(&fx, &p, fake_not_welcome);
    for (int i = 0; i < NNOTW; i++) {
        cli_t k;
        memset(&k, 0, sizeof k);
        if (client_start(&fx, GMUD_SESSION_ON, NULL, &k) == NULL)
            break;
        CHECK(rt_run_until(&fx.loop, cli_closed, &k, 4000));
        const not_welcome_t *w = &NOT_WELCOMES[i];
        if (k.connected != 0 || k.reason != w->reason)
            fprintf(stderr, "not a welcome, case %d: %s\n", i,
                    w->text ? w->text : "(data packet)");
        CHECK_EQ_INT(k.connected, 0);
        CHECK_EQ_INT(k.reason, w->reason);
        CHECK_EQ_INT(k.rejects, w->rejects);
        CHECK_EQ_INT(k.reject_code, w->rejects ? GMUD_ERR_NOT_WELCOMED : 0);
        CHECK_EQ_INT(k.nmsgs, 0);
        rt_fx_client_destroy(&fx, k.cli);
    }
    rt_fx_join(&fx, &p.rt, 5000);
    const char *line = rt_log_find(" security ", "not_welcomed");
    CHECK(line != NULL);
    if (line != NULL)
        CHECK_CONTAINS(line, "not a welcome");
    CHECK(rt_log_find(" session ", "refused the connection: server_full") != NULL);
    CHECK(rt_log_find(" session ", "closed the connection before its welcome") != NULL);
    CHECK(rt_log_find(" security ", "server full") == NULL);
    rt_fx_end(&fx);
}

enum { FAKE_ID = 4242 };

static void *fake_late_welcome(void *arg)
{
    peer_t *p = arg;
    int fd = rt_accept_within(p->rt.listen_fd, 3000);
    atomic_store(&p->rt.ready, 1);
    if (PCHECK(p, fd >= 0) && PCHECK(p, rt_wait_flag(&p->rt.release, 3000))) {
        uint8_t out[512];
        const char *w = "{\"session_id\": 4242, \"sequence_id\": 0}";
        size_t n = put_frame(out, 0, w, strlen(w));
        n += put_on(out + n, 0, FAKE_ID, 1, "{\"good\":1}");
        n += put_on(out + n, 0, FAKE_ID, 1, "{\"bad\":1}"); /* sequence 1 again */
        PCHECK(p, rt_send_all(fd, out, n) == 0);
        /* The client's own packets carry its sequences 0, 1, ...: what it
         * sent on connect, then its error packet. */
        peer_expect_on(p, fd, FAKE_ID, 0, "{\"hi\":1}");
        peer_expect_error_on(p, fd, FAKE_ID, 1, "replayed");
    }
    rt_close_fd(fd);
    return NULL;
}

static int connected_not_welcomed(void *arg)
{
    peer_t *p = arg;
    return atomic_load(&p->rt.ready) && rt_log_find(" connect ", "connected") != NULL;
}

static void test_client_replay(void)
{
    rt_fixture fx;
    peer_t p;
    fake_server_start(&fx, &p, fake_late_welcome);
    cli_t k;
    memset(&k, 0, sizeof k);
    k.to_send[0] = "{\"hi\":1}";
    k.nsend = 1;
    client_start(&fx, GMUD_SESSION_ON, NULL, &k);
    CHECK_EQ_INT(cli_send(&k, "{}", 2), GMUD_ERR_NOT_WELCOMED);
    /* Connected, but no welcome yet: no on_connect, and sends refused. */
    CHECK(rt_run_until(&fx.loop, connected_not_welcomed, &p, 3000));
    /* Nothing should happen now: a short look for an early on_connect. */
    rt_run_until(&fx.loop, NULL, NULL, 20);
    CHECK_EQ_INT(k.connected, 0);
    CHECK_EQ_INT(cli_send(&k, "{}", 2), GMUD_ERR_NOT_WELCOMED);
    atomic_store(&p.rt.release, 1);
    CHECK(rt_run_until(&fx.loop, cli_closed, &k, 4000));
    CHECK_EQ_INT(k.connected, 1);
    CHECK(k.welcomed_first);
    CHECK_EQ_INT(k.reason, GMUD_CLOSE_SESSION);
    CHECK_EQ_INT(k.nmsgs, 1);
    CHECK(cli_msg_is(&k, 0, "{\"good\":1}"));
    CHECK_EQ_INT(k.rejects, 1);
    CHECK_EQ_INT(k.reject_code, GMUD_ERR_REPLAYED);
    const char *line = rt_log_find(" security ", "replayed");
    CHECK(line != NULL);
    if (line != NULL)
        CHECK_CONTAINS(line, "expected sequence 2, got 1");
    rt_fx_join(&fx, &p.rt, 5000);
    rt_fx_end(&fx);
}

/* ==== 5. Mode lecture ==================================================== */

static int lecture_done(void *arg)
{
    srv_t *s = arg;
    return s->nmsgs >= 6;
}

/* The i-th reply connection conn sent is the lecture's, byte for byte, for
 * sequence seq with data (as JSON text); *sid is the session id it carries. */
static int reply_is(const srv_t *s, uint64_t conn, int i, uint64_t *sid, uint64_t seq,
                    const char *data_json)
{
    const msg_t *m = NULL;
    for (int j = 0; j < s->nmsgs && m == NULL; j++) {
        if (s->msgs[j].conn == conn && i-- == 0)
            m = &s->msgs[j];
    }
    if (m == NULL)
        return 0;
    json_t *v = json_loadb((const char *)m->data, m->len, 0, NULL);
    json_int_t id = json_integer_value(json_object_get(v, "session_id"));
    json_decref(v);
    if (id <= 0 || (uint64_t)id > GMUD_SESSION_ID_MAX)
        return 0;
    *sid = (uint64_t)id;
    char want[256];
    size_t n = reply_text(*sid, seq, data_json, want, sizeof want);
    return m->len == n && memcmp(m->data, want, n) == 0;
}

static void test_lecture_client(void)
{
    rt_fixture fx;
    srv_t s;
    lecture_serve(&fx, &s, 3);
    cli_t k, u;
    memset(&k, 0, sizeof k);
    memset(&u, 0, sizeof u);
    k.try_send = 1;
    client_start(&fx, GMUD_SESSION_LECTURE, NULL, &k);
    CHECK(rt_run_until(&fx.loop, cli_got3, &k, 3000));
    /* A second client with its own reply data: escaped as json.dumps does. */
    char data[] = "caf\xc3\xa9 \"x\"\n\xf0\x9f\x98\x80";
    client_start(&fx, GMUD_SESSION_LECTURE, data, &u);
    data[0] = 'X'; /* copied at create */
    CHECK(rt_run_until(&fx.loop, lecture_done, &s, 3000));
    CHECK(rt_run_until(&fx.loop, cli_got3, &u, 3000));

    CHECK_EQ_INT(s.nmsgs, 6);
    uint64_t sid[6] = {0};
    for (int i = 0; i < 3; i++)
        CHECK(reply_is(&s, 1, i, &sid[i], (uint64_t)i + 1, "\"this is test data\""));
    for (int i = 3; i < 6; i++)
        CHECK(reply_is(&s, 2, i - 3, &sid[i], (uint64_t)i - 2,
                       "\"caf\\u00e9 \\\"x\\\"\\n\\ud83d\\ude00\""));
    CHECK(sid[0] == sid[1] && sid[1] == sid[2] && sid[3] == sid[4] && sid[4] == sid[5]);
    CHECK(sid[0] != sid[3]);
    /* The clients got the data packets unchanged, and may not send. */
    for (int i = 0; i < 3; i++) {
        char text[256];
        clock_text(i, text, sizeof text);
        CHECK(cli_msg_is(&k, i, text));
        CHECK(cli_msg_is(&u, i, text));
    }
    CHECK_EQ_INT(k.nmsgs, 3);
    CHECK_EQ_INT(k.send_rc, GMUD_ERR_INVALID);
    CHECK_EQ_INT(cli_send(&k, "{}", 2), GMUD_ERR_INVALID);
    CHECK_EQ_INT(k.connected, 1);
    CHECK_EQ_INT(k.rejects, 0);
    client_end(&fx, &k);
    client_end(&fx, &u);
    CHECK(rt_run_until(&fx.loop, none_open, &s, 2000));
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.security, 0);
    rt_fx_end(&fx);
}

/* A raw lecture peer: one case a connection. `replies` valid replies, then
 * the bad one (NULL: none), whose code is expected back unless carry_on. */
typedef struct lecture_case_t {
    int valid;             /* correct replies first */
    uint64_t bad_seq;      /* then a reply with this sequence_id */
    int id_delta;          /* added to the session id in it */
    int no_id;             /* it has no session_id at all */
    const char *code;
    int err;
} lecture_case_t;

static const lecture_case_t LECTURE_CASES[] = {
    {1, 5, 0, 0, "skipped", GMUD_ERR_SKIPPED},
    {1, 1, 0, 0, "replayed", GMUD_ERR_REPLAYED},
    {0, 1, 1, 0, "bad_session", GMUD_ERR_BAD_SESSION},
    {0, 1, 0, 1, "missing_field", GMUD_ERR_MISSING_FIELD},
    /* Every packet answered; one more reply answers nothing. */
    {3, 4, 0, 0, "skipped", GMUD_ERR_SKIPPED},
};
enum { NLECT = sizeof LECTURE_CASES / sizeof LECTURE_CASES[0] };

/* Reads data packet `value` (plain JSON, exactly the server's text). */
static int peer_expect_clock(peer_t *p, int fd, int value)
{
    uint8_t buf[MSGCAP];
    size_t n = 0;
    char want[256];
    size_t wn = clock_text(value, want, sizeof want);
    if (!PCHECK(p, rt_recv_frame(fd, 0, buf, sizeof buf, &n, 2000) == 1))
        return 0;
    int ok = PCHECK(p, n == wn && memcmp(buf, want, n) == 0);
    if (!ok)
        fprintf(stderr, "  wanted data packet %d, got %.*s\n", value, (int)n, (const char *)buf);
    return ok;
}

static int peer_reply(peer_t *p, int fd, uint64_t id, uint64_t seq)
{
    char text[256];
    uint8_t out[300];
    size_t n = reply_text(id, seq, "\"this is test data\"", text, sizeof text);
    n = put_frame(out, 0, text, n);
    return PCHECK(p, rt_send_all(fd, out, n) == 0);
}

static void *peer_lecture(void *arg)
{
    peer_t *p = arg;
    for (int i = 0; i < NLECT; i++) {
        const lecture_case_t *c = &LECTURE_CASES[i];
        uint64_t id = 0;
        int fd = peer_welcomed(p, &id);
        if (fd < 0)
            break;
        for (int v = 0; v < c->valid; v++) {
            peer_expect_clock(p, fd, v);
            peer_reply(p, fd, id, (uint64_t)v + 1);
        }
        if (c->valid < 3)
            peer_expect_clock(p, fd, c->valid);
        char text[256];
        uint8_t out[300];
        size_t tn = c->no_id ? (size_t)snprintf(text, sizeof text,
                                                "{\"sequence_id\": %" PRIu64 ", \"data\": \"x\"}",
                                                c->bad_seq)
                             : reply_text(id + (uint64_t)c->id_delta, c->bad_seq,
                                          "\"this is test data\"", text, sizeof text);
        size_t n = put_frame(out, 0, text, tn);
        PCHECK(p, rt_send_all(fd, out, n) == 0);
        /* The lecture's error packet has no header. */
        uint8_t buf[MSGCAP];
        size_t bn = 0;
        if (PCHECK(p, rt_recv_frame(fd, 0, buf, sizeof buf, &bn, 2000) == 1) &&
            !PCHECK(p, is_error(buf, bn, c->code)))
            fprintf(stderr, "  wanted %s, got %.*s\n", c->code, (int)bn, (const char *)buf);
        PCHECK(p, rt_recv_frame(fd, 0, buf, sizeof buf, &bn, 3000) == 0);
        close(fd);
    }
    return NULL;
}

static void test_lecture_raw(void)
{
    rt_fixture fx;
    srv_t s;
    lecture_serve(&fx, &s, 3);
    peer_t p;
    run_peer(&fx, &s, &p, 0, peer_lecture, 10000);
    CHECK_EQ_INT(p.nlocal, NLECT);
    int delivered = 0;
    for (int i = 0; i < NLECT && i < p.nlocal; i++) {
        const lecture_case_t *c = &LECTURE_CASES[i];
        rec_t *r = rec_by_peer(&s, p.local[i]);
        CHECK_EQ_INT(r->reason, GMUD_CLOSE_SESSION);
        CHECK_EQ_INT(r->msgs, c->valid);
        CHECK_EQ_INT(r->rejects, 1);
        CHECK_EQ_INT(r->reject_code, c->err);
        const char *line = rt_log_find(p.local[i], " security ");
        CHECK(line != NULL);
        if (line != NULL)
            CHECK_CONTAINS(line, c->code);
        /* The valid replies reached the application whole. */
        for (int v = 0; v < c->valid; v++) {
            char want[256];
            reply_text(p.ids[i], (uint64_t)v + 1, "\"this is test data\"", want, sizeof want);
            CHECK(msg_is(&s, delivered + v, want));
        }
        delivered += c->valid;
    }
    CHECK_EQ_INT(s.nmsgs, delivered);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.security, NLECT);
    CHECK_EQ_INT(st.closes[GMUD_CLOSE_SESSION], NLECT);
    rt_fx_end(&fx);
}

/* carry_on: the bad reply is dropped, the connection stays, and the reply
 * to the next packet (one sequence further) is taken. */
static void *peer_lecture_carry_on(void *arg)
{
    peer_t *p = arg;
    uint64_t id = 0;
    int fd = peer_welcomed(p, &id);
    if (fd >= 0) {
        peer_expect_clock(p, fd, 0);
        peer_reply(p, fd, id, 1);
        peer_expect_clock(p, fd, 1);
        peer_reply(p, fd, id, 1); /* replayed: packet 2's reply is 2 */
        /* No error packet: the next thing is data packet 3. */
        peer_expect_clock(p, fd, 2);
        peer_reply(p, fd, id, 3);
        peer_expect_clock(p, fd, 3);
        peer_reply(p, fd, id, 4);
        close(fd);
    }
    return NULL;
}

static void test_lecture_carry_on(void)
{
    rt_fixture fx;
    fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_LECTURE);
    fx.cfg.conn.session.carry_on = 1;
    srv_t s;
    start(&fx, &s, APP_LECTURE);
    s.lecture_first = 1;
    s.lecture_total = 4;
    s.send_on_reject = 1;
    peer_t p;
    run_peer(&fx, &s, &p, 0, peer_lecture_carry_on, 5000);
    rec_t *r = rec_by_peer(&s, p.local[0]);
    CHECK_EQ_INT(r->reason, GMUD_CLOSE_PEER);
    CHECK_EQ_INT(r->rejects, 1);
    CHECK_EQ_INT(r->reject_code, GMUD_ERR_REPLAYED);
    CHECK_EQ_INT(r->msgs, 3);
    const uint64_t seqs[3] = {1, 3, 4};
    for (int i = 0; i < 3; i++) {
        char want[256];
        reply_text(p.ids[0], seqs[i], "\"this is test data\"", want, sizeof want);
        CHECK(msg_is(&s, i, want));
    }
    CHECK(rt_log_find(p.local[0], " security ") != NULL);
    CHECK(rt_log_find(p.local[0], "replayed") != NULL);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.security, 1);
    CHECK_EQ_INT(st.closes[GMUD_CLOSE_SESSION], 0);
    rt_fx_end(&fx);
}

/* Lecture and the rate limit: the server paces its client (one reply per
 * data packet, and a reply beyond those is a violation), so replies are
 * not rate limited: dropping one would only stall the exchange, or put the
 * session out of step. 8 data packets at once against a burst of 5: all 8
 * replies are taken. */
static int eight_replies(void *arg)
{
    srv_t *s = arg;
    return s->nmsgs >= 8 || s->recs[1].reason >= 0;
}

static void test_lecture_rate(void)
{
    rt_fixture fx;
    fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_LECTURE);
    fx.cfg.conn.limits.msg_rate = 10;
    fx.cfg.conn.limits.msg_burst = 5;
    srv_t s;
    start(&fx, &s, APP_LECTURE);
    s.lecture_first = 8;
    s.lecture_total = 8;
    cli_t k;
    memset(&k, 0, sizeof k);
    client_start(&fx, GMUD_SESSION_LECTURE, NULL, &k);
    CHECK(rt_run_until(&fx.loop, eight_replies, &s, 3000));
    CHECK_EQ_INT(s.nmsgs, 8);
    uint64_t sid = 0;
    for (int i = 0; i < 8; i++)
        CHECK(reply_is(&s, 1, i, &sid, (uint64_t)i + 1, "\"this is test data\""));
    CHECK_EQ_INT(k.nmsgs, 8);
    CHECK_EQ_INT(s.recs[1].reason, -1);
    CHECK_EQ_INT(s.recs[1].rejects, 0);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.rate_dropped, 0);
    CHECK_EQ_INT(st.security, 0);
    client_end(&fx, &k);
    rt_fx_end(&fx);
}

/* ==== 6. Rate limits ===================================================== */

/* Counts what arrives on fd within ms (or until the end of stream): echoes
 * (count[0]) and rate_limited error packets (count[1]); 1 at end of
 * stream. */
static int peer_tally(peer_t *p, int fd, int ms, int stop_at_echoes, int stop_at_errors)
{
    int64_t deadline = rt_now_ms() + ms;
    while (rt_now_ms() < deadline) {
        if (p->count[0] >= stop_at_echoes && p->count[1] >= stop_at_errors)
            return 0;
        uint8_t buf[MSGCAP];
        size_t n = 0;
        int rc = rt_recv_frame(fd, 0, buf, sizeof buf, &n, (int)(deadline - rt_now_ms()));
        if (rc == 0)
            return 1;
        if (rc == -2)
            return 0;
        if (!PCHECK(p, rc == 1))
            return 1;
        /* rate_dropped: the warnings; rate_limited: the close's packet */
        if (is_error(buf, n, "rate_dropped") || is_error(buf, n, "rate_limited")) {
            if (p->count[1]++ == 0)
                p->ms[0] = rt_now_ms();
        } else if (n >= 3 && memcmp(buf, "{\"i", 3) == 0) {
            p->count[0]++;
        } else {
            PCHECK(p, !"unexpected packet");
            fprintf(stderr, "  got %.*s\n", (int)n, (const char *)buf);
        }
    }
    return 0;
}

static void *peer_spammer(void *arg)
{
    peer_t *p = arg;
    int fd = peer_connect(p);
    if (PCHECK(p, fd >= 0)) {
        uint8_t out[1024];
        size_t n = 0;
        for (int i = 0; i < 20; i++) {
            char text[16];
            snprintf(text, sizeof text, "{\"i\":%d}", i);
            n += put_frame(out + n, 0, text, strlen(text));
        }
        int64_t t0 = rt_now_ms();
        PCHECK(p, rt_send_all(fd, out, n) == 0);
        /* 5 echoes and one warning. */
        PCHECK(p, peer_tally(p, fd, 2000, 5, 1) == 0);
        p->ms[0] = p->count[1] > 0 ? p->ms[0] - t0 : -1;
        atomic_store(&p->rt.ready, 1);
        /* Main has looked at the counters; now a message every 50 ms
         * (twice the rate) until the server gives up. */
        if (PCHECK(p, rt_wait_flag(&p->rt.release, 3000))) {
            int64_t t1 = rt_now_ms();
            int eof = 0;
            for (int i = 20; i < 60 && !eof; i++) {
                char text[16];
                snprintf(text, sizeof text, "{\"i\":%d}", i);
                n = put_frame(out, 0, text, strlen(text));
                if (rt_send_all(fd, out, n) != 0)
                    break;
                eof = peer_tally(p, fd, 50, 1000, 1000);
            }
            if (!eof)
                eof = peer_tally(p, fd, 1000, 1000, 1000);
            PCHECK(p, eof);
            p->ms[1] = rt_now_ms() - t1;
            p->ms[2] = rt_now_ms() - t0;
        }
        close(fd);
    }
    return NULL;
}

typedef struct honest_t {
    cli_t *k;
    int sent;
} honest_t;

static void on_honest(gmud_timer *t, void *u)
{
    (void)t;
    honest_t *h = u;
    if (h->k->connected && h->k->reason < 0) {
        char text[32];
        snprintf(text, sizeof text, "{\"h\":%d}", h->sent);
        if (gmud_conn_send(gmud_client_conn(h->k->cli), text, strlen(text), NULL) == 0)
            h->sent++;
    }
}

static int honest_caught_up(void *arg)
{
    honest_t *h = arg;
    return h->k->nmsgs >= h->sent;
}

static int honest_connected(void *arg)
{
    return ((cli_t *)arg)->connected != 0;
}

static void test_rate_messages(void)
{
    rt_fixture fx;
    fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_OFF);
    fx.cfg.conn.limits.msg_rate = 10;
    fx.cfg.conn.limits.msg_burst = 5;
    fx.cfg.conn.limits.rate_close_ms = 400;
    fx.cfg.conn.limits.rate_policy = GMUD_RATE_DROP;
    srv_t s;
    start(&fx, &s, APP_ECHO);
    cli_t k;
    memset(&k, 0, sizeof k);
    client_start(&fx, GMUD_SESSION_OFF, NULL, &k);
    CHECK(rt_run_until(&fx.loop, honest_connected, &k, 2000));

    peer_t p;
    peer_init(&p, 0);
    rt_fx_peer(&fx, &p.rt, peer_spammer, &p);
    CHECK(rt_run_until(&fx.loop, rt_flag, &p.rt.ready, 4000));
    rec_t *r = rec_by_peer(&s, p.local[0]);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(r->msgs, 5);
    CHECK_EQ_INT(st.rate_dropped, 15);
    CHECK_EQ_INT(r->rejects, 15);
    CHECK_EQ_INT(r->reject_code, GMUD_ERR_RATE_DROPPED);
    CHECK_EQ_INT(p.count[0], 5);
    CHECK_EQ_INT(p.count[1], 1);
    CHECK(p.ms[0] >= 0 && p.ms[0] < 300);
    CHECK_EQ_INT(r->reason, -1);

    honest_t h = {&k, 0};
    gmud_timer *t = gmud_timer_create(&fx.loop, 0, 150, on_honest, &h);
    atomic_store(&p.rt.release, 1);
    rt_fx_join(&fx, &p.rt, 5000);
    gmud_timer_destroy(t);
    CHECK(rt_run_until(&fx.loop, honest_caught_up, &h, 2000));
    CHECK(rt_run_until(&fx.loop, rec_closed, r, 2000));
    /* The spammer: closed once refused for rate_close_ms; one warning (a
     * second would be due only after a second), then the close's own
     * error packet. */
    CHECK_EQ_INT(r->reason, GMUD_CLOSE_RATE_LIMITED);
    CHECK_EQ_INT(p.count[1], 2);
    CHECK(p.ms[2] >= 390 && p.ms[2] < 1500);
    const char *line = rt_log_find(p.local[0], " rate closing");
    CHECK(line != NULL);
    if (line != NULL)
        CHECK_CONTAINS(line, "over the rate limit for");
    CHECK(rt_log_find(p.local[0], "rate limited") != NULL);
    /* The honest client was served as usual meanwhile. */
    CHECK(h.sent >= 3);
    CHECK_EQ_INT(k.nmsgs, h.sent);
    CHECK_EQ_INT(k.reason, -1);
    for (int i = 1; i < MAXC; i++) {
        if (s.recs[i].connected && &s.recs[i] != r)
            CHECK_EQ_INT(s.recs[i].rejects, 0);
    }
    st = rt_fx_stats(&fx);
    CHECK_EQ_INT(st.closes[GMUD_CLOSE_RATE_LIMITED], 1);
    printf("rate: warning after %lld ms; closed %lld ms after the first burst (%lld ms "
           "into the steady spam)\n",
           (long long)p.ms[0], (long long)p.ms[2], (long long)p.ms[1]);
    client_end(&fx, &k);
    rt_fx_end(&fx);
}

static void *peer_bytes(void *arg)
{
    peer_t *p = arg;
    int fd = peer_connect(p);
    if (PCHECK(p, fd >= 0)) {
        static uint8_t big[600], out[1300];
        memset(big, 'x', sizeof big);
        size_t n = put_frame(out, 0, big, sizeof big);
        n += put_frame(out + n, 0, big, sizeof big);
        PCHECK(p, rt_send_all(fd, out, n) == 0);
        uint8_t buf[MSGCAP];
        size_t bn = 0;
        /* The echo of the first, then the warning (text payload). */
        PCHECK(p, rt_recv_frame(fd, 0, buf, sizeof buf, &bn, 2000) == 1 && bn == 600 &&
                      memcmp(buf, big, 600) == 0);
        const char *want = "error rate_dropped: ";
        PCHECK(p, rt_recv_frame(fd, 0, buf, sizeof buf, &bn, 2000) == 1 && bn > strlen(want) &&
                      memcmp(buf, want, strlen(want)) == 0);
        PCHECK(p, rt_recv_frame(fd, 0, buf, sizeof buf, &bn, 100) == -2);
        close(fd);
    }
    return NULL;
}

static void test_rate_bytes(void)
{
    rt_fixture fx;
    fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT, GMUD_SESSION_OFF);
    fx.cfg.conn.limits.msg_rate = 0;
    fx.cfg.conn.limits.byte_rate = 1000;
    fx.cfg.conn.limits.byte_burst = 1000;
    fx.cfg.conn.limits.rate_policy = GMUD_RATE_DROP;
    srv_t s;
    start(&fx, &s, APP_ECHO);
    peer_t p;
    peer_init(&p, 0);
    rt_fx_run_peer(&fx, &p.rt, peer_bytes, &p, 5000);
    CHECK(rt_run_until(&fx.loop, none_open, &s, 2000));
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT(s.nmsgs, 1);
    CHECK_EQ_INT(st.rate_dropped, 1);
    CHECK_EQ_INT(st.messages_in, 1);
    CHECK(rt_log_find(" rate ", "1000 bytes/s burst 1000") != NULL);
    rt_fx_end(&fx);
}

/* ==== 7. Configuration =================================================== */

static void expect_server_refused(const char *framing, gmud_payload payload,
                                  gmud_session_mode mode, const char *says)
{
    rt_fixture fx;
    fx_init(&fx, framing, payload, mode);
    gmud_error err;
    memset(&err, 0, sizeof err);
    fx.srv = gmud_server_create(&fx.loop, &fx.cfg, &err); /* rt_fx_end ends it, if any */
    CHECK(fx.srv == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    CHECK_CONTAINS(err.message, says);
    rt_fx_end(&fx);
}

static void expect_client_refused(const char *framing, gmud_payload payload,
                                  gmud_session_mode mode, const char *reply_data,
                                  const char *says)
{
    rt_fixture fx;
    fx_init(&fx, framing, payload, mode);
    fx.port = 9; /* no server: nothing is tried */
    gmud_client_config cfg;
    rt_fx_client_config(&fx, &cfg);
    cfg.conn.session.mode = mode;
    cfg.conn.session.reply_data = reply_data;
    gmud_error err;
    memset(&err, 0, sizeof err);
    gmud_client *cli = gmud_client_create(&fx.loop, &cfg, &err);
    CHECK(cli == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    CHECK_CONTAINS(err.message, says);
    gmud_client_destroy(cli);
    rt_fx_end(&fx);
}

/* ---- Running out of sequences (PROTOCOL.md 6.3) --------------------- */

typedef struct exhaust_t {
    int send_rc;
    int closed;
    int reason;
} exhaust_t;

/* As after 2^64 - 1 packets: the next send has no sequence to use. */
static void exhaust_connect(gmud_conn *c, void *u)
{
    exhaust_t *x = u;
    c->ep.sess.send_seq = GMUD_SEQ_EXHAUSTED;
    x->send_rc = gmud_conn_send(c, "{\"a\":1}", 7, NULL);
}

static void exhaust_close(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *u)
{
    (void)c, (void)d;
    exhaust_t *x = u;
    x->closed = 1;
    x->reason = (int)r;
}

static int exhaust_closed(void *p)
{
    return ((exhaust_t *)p)->closed;
}

/* A server out of sequences sends nothing more, logs seq_exhausted and
 * closes the connection (session violation). */
static void test_seq_exhausted(void)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
    fx.cfg.conn.session.mode = GMUD_SESSION_ON;
    exhaust_t x = {0, 0, -1};
    rt_fx_serve(&fx, (gmud_callbacks){.on_connect = exhaust_connect,
                                      .on_close = exhaust_close,
                                      .user = &x});
    rt_fx_client(&fx, NULL, (gmud_callbacks){0});
    CHECK(rt_run_until(&fx.loop, exhaust_closed, &x, 3000));
    CHECK_EQ_INT(x.send_rc, GMUD_ERR_SEQ_EXHAUSTED);
    CHECK_EQ_INT(x.reason, GMUD_CLOSE_SESSION);
    CHECK(rt_log_find("seq_exhausted", "no sequence numbers left") != NULL);
    rt_fx_end(&fx);
}

static void test_config(void)
{
    expect_server_refused("line", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON, "line");
    expect_server_refused("raw", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON, "raw");
    expect_server_refused("gmud", GMUD_PAYLOAD_TEXT, GMUD_SESSION_LECTURE, "json");
    expect_server_refused("raw", GMUD_PAYLOAD_JSON, GMUD_SESSION_LECTURE, "raw");
    expect_server_refused("fixed:40", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON, "welcome");
    expect_server_refused("fixed:40", GMUD_PAYLOAD_JSON, GMUD_SESSION_LECTURE, "welcome");
    expect_client_refused("line", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON, NULL, "line");
    expect_client_refused("fixed:40", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON, NULL, "welcome");
    /* A lecture client replies to any packet, whatever it holds: text
     * payload is refused only on the server, which reads the replies. */
    {
        rt_fixture fx;
        fx_init(&fx, "gmud", GMUD_PAYLOAD_TEXT, GMUD_SESSION_LECTURE);
        fx.port = 9;
        rt_fx_client(&fx, NULL, (gmud_callbacks){0}); /* destroyed by rt_fx_end */
        rt_fx_end(&fx);
    }
    expect_client_refused("gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_LECTURE, "ab\xff", "UTF-8");
    expect_client_refused("gmud", GMUD_PAYLOAD_JSON, GMUD_SESSION_LECTURE, "\xc3\x28",
                          "UTF-8");
    /* A reply that could not fit the frame. */
    static char big[200];
    memset(big, 'd', sizeof big - 1);
    expect_client_refused("fixed:100", GMUD_PAYLOAD_JSON, GMUD_SESSION_LECTURE, big, "bytes");
    /* An unknown mode. */
    expect_server_refused("gmud", GMUD_PAYLOAD_JSON, (gmud_session_mode)7, "mode");
}

/* fixed:100 with mode on: the header inside the 100 bytes, padding after
 * the application's bytes (trimmed on receipt); error packets must fit. */
static void *peer_fixed(void *arg)
{
    peer_t *p = arg;
    uint64_t id = 0;
    int fd = peer_welcomed(p, &id);
    if (fd >= 0) {
        uint8_t out[128];
        size_t n = put_on(out, 100, id, 0, "{\"f\":1}");
        PCHECK(p, n == 100);
        PCHECK(p, rt_send_all(fd, out, n) == 0);
        peer_expect_on(p, fd, id, 1, "{\"f\":1}");
        /* A foreign header with the largest numbers: the longest
         * bad_session sentence. Its error packet must still come. */
        n = put_on(out, 100, UINT64_MAX, UINT64_MAX, "{}");
        PCHECK(p, rt_send_all(fd, out, n) == 0);
        peer_expect_error_on(p, fd, id, 2, "bad_session");
        close(fd);
    }
    return NULL;
}

static void test_fixed_on(void)
{
    rt_fixture fx;
    srv_t s;
    serve(&fx, &s, "fixed:100", GMUD_PAYLOAD_JSON, GMUD_SESSION_ON, APP_ECHO);
    cli_t k;
    echo_client(&fx, &k);
    check_echoes(&fx, &s, &k);
    /* The largest application message: 100 - 16 bytes. */
    char most[85], over[86];
    snprintf(most, sizeof most, "{\"p\":\"%76s\"}", "");
    snprintf(over, sizeof over, "{\"p\":\"%77s\"}", "");
    CHECK_EQ_INT(strlen(most), 84);
    CHECK_EQ_INT(strlen(over), 85);
    CHECK_EQ_INT(cli_send(&k, most, 84), 0);
    CHECK_EQ_INT(cli_send(&k, over, 85), GMUD_ERR_UNENCODABLE);
    client_end(&fx, &k);
    CHECK(rt_run_until(&fx.loop, none_open, &s, 2000));
    CHECK(msg_is(&s, 3, most));

    peer_t p;
    run_peer(&fx, &s, &p, 100, peer_fixed, 5000);
    rec_t *r = rec_by_peer(&s, p.local[0]);
    CHECK_EQ_INT(r->reason, GMUD_CLOSE_SESSION);
    CHECK_EQ_INT(r->reject_code, GMUD_ERR_BAD_SESSION);
    CHECK(msg_is(&s, 4, "{\"f\":1}"));
    rt_fx_end(&fx);
}

int main(void)
{
    rt_ignore_sigpipe();
    int64_t t0 = rt_now_ms();
    test_on_client_echo();
    test_on_violations();
    test_on_replay();
    test_client_not_welcomed();
    test_client_replay();
    test_lecture_client();
    test_lecture_raw();
    test_lecture_carry_on();
    test_lecture_rate();
    test_rate_messages();
    test_rate_bytes();
    test_seq_exhausted();
    test_config();
    test_fixed_on();
    printf("test_session_rt: %lld ms\n", (long long)(rt_now_ms() - t0));
    return check_report("test_session_rt");
}
