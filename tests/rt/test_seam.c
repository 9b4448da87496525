/* The transport seam (src/core/seam.h), over real sockets: every byte a
 * connection sends or receives passes through its seam, in the event
 * runtime and in the blocking client alike, so that TLS can go in there
 * once. The seam here is a test's: a small record layer that hides the
 * bytes (XOR) and answers pings on its own, as TLS hides records and
 * answers handshakes and key updates. Records:
 *   'D' <LEN.1> <DATA XOR 0x5a>   data, 1..255 bytes
 *   'P' 0                         ping: the other seam answers with a pong
 *   'Q' 0                         pong: swallowed
 * Anything else is refused, and the connection closed. */
#define _GNU_SOURCE /* memmem */
#include <stdatomic.h>

#include "conn.h"
#include "rt_util.h"
#include "seamed.h"

enum { KEY = 0x5a, REC_MAX = 255, IO_MS = 5000 };

/* ---- The test's seam ---------------------------------------------------- */

typedef struct rec_seam {
    seam base;
    uint8_t part[2 + REC_MAX]; /* a record split across reads */
    size_t part_len;
    int server;
} rec_seam;

/* Counted across every seam, to show what went through them. */
static atomic_int seams_live, pings_answered, outputs, ends_unclean;

static size_t rec_size(const uint8_t *p)
{
    return 2 + (size_t)p[1];
}

/* One whole record: plaintext, a pong owed, or an error. */
static int take_record(const uint8_t *r, byte_buf *plain, byte_buf *wire, gmud_error *err)
{
    if (r[0] == 'D' && r[1] > 0) {
        if (buf_reserve(plain, r[1]) != 0)
            return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "no memory");
        for (size_t i = 0; i < r[1]; i++)
            plain->data[plain->len++] = r[2 + i] ^ KEY;
        return GMUD_OK;
    }
    if (r[0] == 'P' && r[1] == 0) {
        atomic_fetch_add(&pings_answered, 1);
        return buf_append(wire, "Q", 2) == 0 ? GMUD_OK
                                             : gmud_error_set(err, GMUD_ERR_NOMEM, 0, "no memory");
    }
    if (r[0] == 'Q' && r[1] == 0)
        return GMUD_OK;
    return gmud_error_set(err, GMUD_ERR_INVALID, 0, "bad record type 0x%02x", r[0]);
}

static int rec_input(seam *s, const uint8_t *in, size_t n, byte_buf *plain, byte_buf *wire,
                     gmud_error *err)
{
    rec_seam *rs = (rec_seam *)s;
    for (size_t i = 0; i < n;) {
        rs->part[rs->part_len++] = in[i++];
        if (rs->part_len < 2 || rs->part_len < rec_size(rs->part))
            continue;
        rs->part_len = 0;
        int rc = take_record(rs->part, plain, wire, err);
        if (rc != GMUD_OK)
            return rc;
    }
    return GMUD_OK;
}

static int rec_output(seam *s, const uint8_t *p, size_t n, byte_buf *wire, gmud_error *err)
{
    (void)s;
    atomic_fetch_add(&outputs, 1);
    for (size_t at = 0; at < n;) {
        size_t len = n - at < REC_MAX ? n - at : REC_MAX;
        if (buf_reserve(wire, 2 + len) != 0)
            return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "no memory");
        wire->data[wire->len++] = 'D';
        wire->data[wire->len++] = (uint8_t)len;
        for (size_t i = 0; i < len; i++)
            wire->data[wire->len++] = p[at + i] ^ KEY;
        at += len;
    }
    return GMUD_OK;
}

static int rec_end(seam *s, gmud_error *err)
{
    rec_seam *rs = (rec_seam *)s;
    if (rs->part_len == 0)
        return GMUD_OK;
    atomic_fetch_add(&ends_unclean, 1);
    return gmud_error_set(err, GMUD_ERR_TRUNCATED, 0, "%zu bytes of a record", rs->part_len);
}

static void rec_destroy(seam *s)
{
    atomic_fetch_sub(&seams_live, 1);
    free(s);
}

static const seam_ops rec_ops = {
    .name = "records", .input = rec_input, .output = rec_output, .end = rec_end, .destroy = rec_destroy};

static seam *rec_create(void *arg, int server, gmud_error *err)
{
    (void)arg;
    rec_seam *rs = calloc(1, sizeof *rs);
    if (rs == NULL) {
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "no memory for a seam");
        return NULL;
    }
    rs->base.ops = &rec_ops;
    rs->server = server;
    atomic_fetch_add(&seams_live, 1);
    return &rs->base;
}

static const seam_factory records = {rec_create, NULL};

/* ---- A server with the seam, on a loop of its own thread --------------- */

typedef struct srv_thread {
    pthread_t tid;
    uv_loop_t loop;
    gmud_server *srv;
    int port;
    atomic_int stop;
    atomic_int ready;
    atomic_int messages;
} srv_thread;

static void echo(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json, void *user)
{
    (void)json;
    srv_thread *t = user;
    atomic_fetch_add(&t->messages, 1);
    gmud_conn_send(conn, data, len, NULL);
}

static int stop_asked(void *p)
{
    return atomic_load(&((srv_thread *)p)->stop);
}

static void *srv_main(void *arg)
{
    srv_thread *t = arg;
    uv_loop_init(&t->loop);
    gmud_server_config cfg;
    rt_server_config(&cfg, "gmud", GMUD_PAYLOAD_TEXT);
    cfg.conn.session.mode = GMUD_SESSION_ON;
    rt_no_rate_limits(&cfg);
    cfg.conn.cb.on_message = echo;
    cfg.conn.cb.user = t;
    gmud_error err;
    t->srv = server_create_seamed(&t->loop, &cfg, &records, &err);
    if (t->srv == NULL) {
        fprintf(stderr, "server: %s\n", err.message);
        atomic_store(&t->ready, -1);
        return NULL;
    }
    t->port = gmud_server_port(t->srv);
    atomic_store(&t->ready, 1);
    rt_run_until(&t->loop, stop_asked, t, 30000);
    rt_server_end(&t->loop, t->srv);
    rt_loop_finish(&t->loop);
    return NULL;
}

static int srv_start(srv_thread *t)
{
    memset(t, 0, sizeof *t);
    rt_log_clear();
    if (pthread_create(&t->tid, NULL, srv_main, t) != 0)
        return 0;
    for (int i = 0; i < 2000 && atomic_load(&t->ready) == 0; i++)
        rt_sleep_ms(1);
    return atomic_load(&t->ready) == 1;
}

static void srv_stop(srv_thread *t)
{
    atomic_store(&t->stop, 1);
    pthread_join(t->tid, NULL);
}

/* ---- The blocking client through the seam ------------------------------ */

/* Mode on, gmud framing, messages from 1 byte to 60000 (many records each,
 * split across reads): the welcome and every echo arrive whole through
 * both seams, and the server saw each message once. */
static void test_sync_through_seam(void)
{
    srv_thread t;
    CHECK(srv_start(&t));
    gmud_sync_config cfg;
    gmud_sync_default_config(&cfg);
    cfg.session = GMUD_SESSION_ON;
    gmud_error err;
    gmud_sync *s = sync_create_seamed("127.0.0.1", (unsigned)t.port, &cfg, IO_MS, &records, &err);
    if (s == NULL)
        fprintf(stderr, "sync: %s\n", err.message);
    CHECK(s != NULL);
    static const size_t sizes[] = {1, 2, 254, 255, 256, 511, 4000, 60000};
    static uint8_t msg[60000];
    for (size_t i = 0; s != NULL && i < sizeof sizes / sizeof sizes[0]; i++) {
        for (size_t j = 0; j < sizes[i]; j++)
            msg[j] = (uint8_t)(j * 7 + i);
        CHECK_EQ_INT(gmud_sync_send(s, msg, sizes[i], &err), 0);
        gmud_slice m;
        CHECK_EQ_INT(gmud_sync_recv(s, IO_MS, &m, &err), 1);
        CHECK_MEM(m.data, m.len, msg, sizes[i]);
    }
    CHECK(s == NULL || gmud_sync_session_id(s) != 0);
    gmud_sync_destroy(s);
    srv_stop(&t);
    CHECK_EQ_INT(atomic_load(&t.messages), 8);
    CHECK_EQ_INT(atomic_load(&seams_live), 0);
}

/* ---- The event client through the seam ---------------------------------- */

typedef struct burst {
    int sent, echoed, closed;
} burst;

enum { BURST = 200 };

/* Welcomed: the whole burst is queued in this one callback, so the seam
 * should see it in a few output calls, not one per frame. */
static void burst_connect(gmud_conn *conn, void *user)
{
    burst *b = user;
    char text[32];
    for (int i = 0; i < BURST; i++) {
        int n = snprintf(text, sizeof text, "message %d", i);
        if (gmud_conn_send(conn, text, (size_t)n, NULL) == 0)
            b->sent++;
    }
}

static void burst_message(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                          void *user)
{
    (void)conn, (void)json;
    burst *b = user;
    char want[32];
    int n = snprintf(want, sizeof want, "message %d", b->echoed);
    CHECK_MEM(data, len, want, (size_t)n);
    if (++b->echoed == BURST)
        gmud_conn_close(conn);
}

static void burst_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                        void *user)
{
    (void)conn, (void)reason, (void)detail;
    ((burst *)user)->closed = 1;
}

static int burst_closed(void *p)
{
    return ((burst *)p)->closed;
}

static void test_client_through_seam(void)
{
    srv_thread t;
    CHECK(srv_start(&t));
    uv_loop_t loop;
    uv_loop_init(&loop);
    gmud_server_config scfg;
    rt_server_config(&scfg, "gmud", GMUD_PAYLOAD_TEXT);
    scfg.conn.session.mode = GMUD_SESSION_ON;
    gmud_client_config cfg;
    rt_client_config(&cfg, &scfg, t.port);
    burst b = {0, 0, 0};
    cfg.conn.cb.on_connect = burst_connect;
    cfg.conn.cb.on_message = burst_message;
    cfg.conn.cb.on_close = burst_close;
    cfg.conn.cb.user = &b;
    atomic_store(&outputs, 0);
    gmud_client *c = client_create_seamed(&loop, &cfg, &records, NULL);
    CHECK(c != NULL);
    rt_run_until(&loop, burst_closed, &b, IO_MS);
    gmud_client_destroy(c);
    rt_loop_finish(&loop);
    srv_stop(&t);
    CHECK_EQ_INT(b.sent, BURST);
    CHECK_EQ_INT(b.echoed, BURST);
    /* One loop turn's frames go through the seam together: the client's
     * burst is one call, the server's echoes a few (one per read). */
    int calls = atomic_load(&outputs);
    CHECK(calls >= 2 && calls < BURST / 4);
    CHECK_EQ_INT(atomic_load(&seams_live), 0);
}

/* ---- What is on the wire ------------------------------------------------ */

/* Reads one record from fd into r (2 + REC_MAX bytes); 1, or 0. */
static int read_record(int fd, uint8_t *r)
{
    size_t got = 0, want = 2;
    while (got < want) {
        ssize_t n = rt_recv(fd, r + got, want - got, IO_MS);
        if (n <= 0)
            return 0;
        got += (size_t)n;
        if (got == 2)
            want = rec_size(r);
    }
    return 1;
}

/* A raw peer sees only records: the welcome is in them, hidden; a ping is
 * answered by the seam without reaching the application; a record the
 * seam refuses closes the connection, logged. */
static void test_wire(void)
{
    srv_thread t;
    CHECK(srv_start(&t));
    atomic_store(&pings_answered, 0);
    int fd = rt_connect("127.0.0.1", t.port, 0);
    CHECK(fd >= 0);
    uint8_t r[2 + REC_MAX];
    CHECK(read_record(fd, r));
    CHECK_EQ_INT(r[0], 'D');
    uint8_t plain[REC_MAX];
    for (size_t i = 0; i < r[1]; i++)
        plain[i] = r[2 + i] ^ KEY;
    /* The plaintext is the welcome frame: "GMUD", length, JSON. */
    CHECK(r[1] > 6 && memcmp(plain, "GMUD", 4) == 0);
    CHECK_EQ_INT(plain[4] | plain[5] << 8, r[1] - 6);
    CHECK(memmem(plain, r[1], "\"session_id\": ", 14) != NULL);
    CHECK(memmem(r, rec_size(r), "session_id", 10) == NULL); /* hidden on the wire */
    CHECK_EQ_INT(rt_send_all(fd, "P", 2), 0);
    CHECK(read_record(fd, r));
    CHECK(r[0] == 'Q' && r[1] == 0);
    CHECK_EQ_INT(atomic_load(&pings_answered), 1);
    CHECK_EQ_INT(rt_send_all(fd, "Z\0", 2), 0);
    uint8_t buf[64];
    CHECK_EQ_INT(rt_recv(fd, buf, sizeof buf, IO_MS), 0); /* closed */
    close(fd);
    srv_stop(&t);
    CHECK(rt_log_find("seam", "bad record type 0x5a") != NULL);
    CHECK_EQ_INT(atomic_load(&t.messages), 0);
    CHECK_EQ_INT(atomic_load(&seams_live), 0);
}

/* A peer that stops inside a record: the seam says the end was unclean,
 * and the runtime logs it. */
static void test_unclean_end(void)
{
    srv_thread t;
    CHECK(srv_start(&t));
    atomic_store(&ends_unclean, 0);
    int fd = rt_connect("127.0.0.1", t.port, 0);
    CHECK(fd >= 0);
    uint8_t r[2 + REC_MAX];
    CHECK(read_record(fd, r)); /* the welcome */
    CHECK_EQ_INT(rt_send_all(fd, "D\x05" "ab", 4), 0);
    shutdown(fd, SHUT_WR);
    uint8_t buf[64];
    CHECK_EQ_INT(rt_recv(fd, buf, sizeof buf, IO_MS), 0);
    close(fd);
    srv_stop(&t);
    CHECK_EQ_INT(atomic_load(&ends_unclean), 1);
    CHECK(rt_log_find("unclean end of records", "4 bytes of a record") != NULL);
}

int main(void)
{
    rt_ignore_sigpipe();
    test_sync_through_seam();
    test_client_through_seam();
    test_wire();
    test_unclean_end();
    CHECK_EQ_INT(rt_readbufs_live(), 0);
    return check_report("test_seam");
}
