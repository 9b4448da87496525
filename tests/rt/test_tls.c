/* TLS over real loopback sockets: the event server and client, and the
 * blocking client, in each framing's JSON form and with sessions; the
 * three ways a client verifies (CA and name, pin, insecure) and their
 * failures; a refusal that travels inside TLS; the handshake limits
 * (timeout, number in progress); plaintext, garbage and a silent peer on
 * the TLS port; close_notify. Certificates are made at start with
 * openssl(1) in a temporary directory. */
#include "rt_util.h"

#include <sys/stat.h>

#define PCHECK(p, cond) RT_PCHECK(&(p)->rt, cond)

static char dir[64];
static char cert[96], key[96], other_cert[96], other_key[96];
static char pin[GMUD_TLS_PIN_LEN + 1], other_pin[GMUD_TLS_PIN_LEN + 1];

static int make_cert(const char *c, const char *k, const char *cn)
{
    char cmd[768];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-keyout %s -out %s -subj /CN=%s "
             "-addext subjectAltName=DNS:%s,IP:127.0.0.1 2>/dev/null",
             k, c, cn, cn);
    return system(cmd);
}

static int setup_certs(void)
{
    snprintf(dir, sizeof dir, "/tmp/gmud-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(other_cert, sizeof other_cert, "%s/other-cert.pem", dir);
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", dir);
    gmud_error e;
    if (make_cert(cert, key, "localhost") != 0 || make_cert(other_cert, other_key, "other") != 0 ||
        gmud_tls_pin_file(cert, pin, sizeof pin, &e) != GMUD_OK ||
        gmud_tls_pin_file(other_cert, other_pin, sizeof other_pin, &e) != GMUD_OK)
        return -1;
    return 0;
}

static void remove_certs(void)
{
    const char *files[] = {cert, key, other_cert, other_key};
    for (int i = 0; i < 4; i++)
        unlink(files[i]);
    rmdir(dir);
}

/* ---- A server and clients that record what they saw ---------------------- */

typedef struct side_t {
    int connects, closes, reason, code, msgs;
    char detail[200];
    char last[128];
} side_t;

static void side_init(side_t *s)
{
    memset(s, 0, sizeof *s);
    s->reason = -1;
}

static void on_connect(gmud_conn *c, void *u)
{
    (void)c;
    ((side_t *)u)->connects++;
}

static void on_close(gmud_conn *c, gmud_close_reason r, const gmud_error *d, void *u)
{
    (void)c;
    side_t *s = u;
    s->closes++;
    s->reason = (int)r;
    s->code = d != NULL ? d->code : 0;
    snprintf(s->detail, sizeof s->detail, "%s", d != NULL ? d->message : "");
}

static void srv_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    side_t *s = u;
    s->msgs++;
    if (j != NULL)
        gmud_conn_send_json(c, j, NULL);
    else
        gmud_conn_send(c, d, n, NULL);
}

static void cli_message(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)c;
    (void)j;
    side_t *s = u;
    s->msgs++;
    snprintf(s->last, sizeof s->last, "%.*s", (int)n, (const char *)d);
}

/* The client sends three messages once connected (welcomed). */
static void cli_connect(gmud_conn *c, void *u)
{
    on_connect(c, u);
    for (int i = 0; i < 3; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "{\"n\":%d}", i);
        gmud_conn_send(c, m, (size_t)n, NULL);
    }
}

static void tls_server(rt_fixture *fx, side_t *srv)
{
    fx->cfg.conn.tls.enabled = 1;
    fx->cfg.conn.tls.cert_file = cert;
    fx->cfg.conn.tls.key_file = key;
    side_init(srv);
    rt_fx_serve(fx, (gmud_callbacks){.on_connect = on_connect,
                                     .on_message = srv_message,
                                     .on_close = on_close,
                                     .user = srv});
}

static void tls_client_config(const rt_fixture *fx, gmud_client_config *c)
{
    rt_fx_client_config(fx, c);
    c->host = "127.0.0.1";
    c->conn.tls.enabled = 1;
    c->conn.tls.ca_file = cert;
    c->conn.tls.server_name = "localhost";
}

static int three_back(void *u)
{
    side_t *s = u;
    return s->msgs >= 3 || s->closes > 0;
}

static int closed(void *u)
{
    return ((side_t *)u)->closes > 0;
}

/* ---- Echo ---------------------------------------------------------------- */

static void echo_with(const char *framing, gmud_session_mode mode, int pinned, int insecure)
{
    rt_fixture fx;
    rt_fx_init(&fx, framing, GMUD_PAYLOAD_JSON);
    fx.cfg.conn.session.mode = mode;
    side_t srv, cli;
    tls_server(&fx, &srv);
    gmud_client_config cc;
    tls_client_config(&fx, &cc);
    if (pinned) {
        cc.conn.tls.ca_file = NULL;
        cc.conn.tls.server_name = NULL;
        cc.conn.tls.pin = pin;
    }
    cc.conn.tls.insecure = insecure;
    side_init(&cli);
    gmud_client *k = rt_fx_client(&fx, &cc, (gmud_callbacks){.on_connect = cli_connect,
                                                              .on_message = cli_message,
                                                              .on_close = on_close,
                                                              .user = &cli});
    CHECK(rt_run_until(&fx.loop, three_back, &cli, 3000));
    CHECK_EQ_INT(cli.msgs, 3);
    CHECK_CONTAINS(cli.last, "\"n\":2");
    CHECK_EQ_INT(cli.closes, 0);
    gmud_stats st = rt_fx_stats(&fx);
    CHECK_EQ_INT((int)st.tls_handshakes, 1);
    CHECK_EQ_INT((int)st.tls_failed, 0);
    /* Our close sends close_notify: the server sees a clean end. */
    gmud_client_close(k);
    CHECK(rt_run_until(&fx.loop, closed, &srv, 3000));
    CHECK_EQ_INT(srv.reason, GMUD_CLOSE_PEER);
    st = rt_fx_stats(&fx);
    CHECK_EQ_INT((int)st.tls_unclean, 0);
    CHECK(rt_log_find("listen", "TLS") != NULL);
    if (check_failures)
        fprintf(stderr, "  echo over TLS: %s framing, mode %s, %s\n", framing,
                gmud_session_mode_name(mode), pinned ? "pinned" : insecure ? "insecure" : "CA");
    rt_fx_end(&fx);
}

static void test_echo(void)
{
    echo_with("gmud", GMUD_SESSION_ON, 0, 0);
    echo_with("gmud", GMUD_SESSION_OFF, 0, 0);
    echo_with("line", GMUD_SESSION_OFF, 0, 0);
    echo_with("length", GMUD_SESSION_OFF, 0, 0);
    echo_with("gmud", GMUD_SESSION_ON, 1, 0);
    echo_with("gmud", GMUD_SESSION_ON, 0, 1);
}

/* ---- Verification failures ----------------------------------------------- */

/* The client refuses the server; both sides close as GMUD_CLOSE_TLS or see
 * the peer go, and the client's detail says why. */
static void refused_with(const char *what, void (*adjust)(gmud_client_config *), const char *why)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
    side_t srv, cli;
    tls_server(&fx, &srv);
    gmud_client_config cc;
    tls_client_config(&fx, &cc);
    adjust(&cc);
    side_init(&cli);
    rt_fx_client(&fx, &cc, (gmud_callbacks){.on_connect = on_connect, .on_close = on_close,
                                            .user = &cli});
    CHECK(rt_run_until(&fx.loop, closed, &cli, 3000));
    CHECK_EQ_INT(cli.reason, GMUD_CLOSE_TLS);
    CHECK_EQ_INT(cli.code, GMUD_ERR_TLS);
    CHECK_CONTAINS(cli.detail, why);
    CHECK_EQ_INT(cli.connects, 0);
    CHECK_EQ_INT(srv.connects, 0); /* the application never heard of it */
    if (check_failures)
        fprintf(stderr, "  refused: %s\n", what);
    rt_fx_end(&fx);
}

static void wrong_ca(gmud_client_config *c)
{
    c->conn.tls.ca_file = other_cert;
}

static void wrong_name(gmud_client_config *c)
{
    c->conn.tls.server_name = "example.org";
}

static void wrong_pin(gmud_client_config *c)
{
    c->conn.tls.pin = other_pin;
}

static void test_verify_failures(void)
{
    refused_with("another CA", wrong_ca, "certificate verify failed");
    refused_with("another name", wrong_name, "certificate verify failed");
    refused_with("another pin", wrong_pin, "not the pinned");
}

static void test_bad_configs(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    gmud_server_config sc;
    gmud_server_default_config(&sc);
    sc.port = 0;
    sc.conn.tls.enabled = 1;
    sc.conn.tls.cert_file = cert;
    sc.conn.tls.key_file = other_key;
    gmud_error e;
    CHECK(gmud_server_create(&loop, &sc, &e) == NULL);
    CHECK_CONTAINS(e.message, "cannot load the TLS key");
    sc.conn.tls.key_file = "/nonexistent/key.pem";
    CHECK(gmud_server_create(&loop, &sc, &e) == NULL);
    CHECK_CONTAINS(e.message, "/nonexistent/key.pem");
    gmud_client_config cc;
    gmud_client_default_config(&cc);
    cc.host = "127.0.0.1";
    cc.conn.tls.enabled = 1;
    cc.conn.tls.pin = "sha256:1234";
    CHECK(gmud_client_create(&loop, &cc, &e) == NULL);
    CHECK_CONTAINS(e.message, "64 hex digits");
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* ---- Refusals and limits ------------------------------------------------- */

/* A refusal travels inside TLS: the server full, an address over its
 * limit (the second client's refusal, read as the server's code), and an
 * idle timeout (the only client, silent). */
static void refusal_with(const char *what, int clients, void (*limit)(rt_fixture *), int code)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
    limit(&fx);
    side_t srv, a, b;
    tls_server(&fx, &srv);
    gmud_client_config cc;
    tls_client_config(&fx, &cc);
    side_init(&a);
    side_init(&b);
    rt_fx_client(&fx, &cc, (gmud_callbacks){.on_connect = on_connect, .on_close = on_close,
                                            .user = &a});
    CHECK(rt_run_until(&fx.loop, rt_int_set, &a.connects, 3000));
    side_t *refused = &a;
    if (clients == 2) {
        rt_fx_client(&fx, &cc, (gmud_callbacks){.on_connect = on_connect, .on_close = on_close,
                                                .user = &b});
        refused = &b;
    }
    CHECK(rt_run_until(&fx.loop, closed, refused, 3000));
    CHECK_EQ_INT(refused->reason, GMUD_CLOSE_REFUSED);
    CHECK_EQ_INT(refused->code, code);
    if (clients == 2)
        CHECK_EQ_INT(a.closes, 0);
    if (check_failures)
        fprintf(stderr, "  refusal in TLS: %s\n", what);
    rt_fx_end(&fx);
}

static void one_connection(rt_fixture *fx)
{
    fx->cfg.conn.limits.max_connections = 1;
}

static void one_per_addr(rt_fixture *fx)
{
    fx->cfg.addr.max_per_addr = 1;
}

static void short_idle(rt_fixture *fx)
{
    fx->cfg.conn.limits.idle_timeout_ms = 300;
    fx->cfg.conn.limits.sweep_ms = 50;
}

static void test_refusal_in_tls(void)
{
    refusal_with("server full", 2, one_connection, GMUD_ERR_SERVER_FULL);
    refusal_with("address limit", 2, one_per_addr, GMUD_ERR_ADDR_LIMITED);
    refusal_with("idle timeout", 1, short_idle, GMUD_ERR_TIMEOUT);
}

/* Raw peers on the TLS port: plaintext, garbage, silence. */
typedef struct raw_t {
    rt_peer rt;
    int mode;        /* 0 plaintext gmud frame, 1 garbage, 2 silent */
    int hold;        /* silent: how many sockets, kept open until released */
    int closed_by_server;
    uint8_t first[256]; /* what the first socket got before the close */
    size_t first_len;
} raw_t;

static void *raw_peer(void *arg)
{
    raw_t *p = arg;
    int fds[8];
    int n = p->mode == 2 ? p->hold : 1;
    for (int i = 0; i < n; i++) {
        fds[i] = rt_connect("127.0.0.1", p->rt.port, 0);
        PCHECK(p, fds[i] >= 0);
    }
    static const char plain[] = "GMUD\x07\x00{\"n\":1}", junk[] = "\x16\x03\x01\x00\x05hello";
    if (p->mode == 0)
        rt_send_all(fds[0], plain, sizeof plain - 1);
    else if (p->mode == 1)
        rt_send_all(fds[0], junk, sizeof junk - 1);
    atomic_store(&p->rt.ready, 1);
    /* Each is closed by the server: end of stream (or a reset). */
    for (int i = 0; i < n; i++) {
        uint8_t buf[256];
        int eof = 0;
        size_t got = rt_recv_to_eof(fds[i], buf, sizeof buf, 3000, &eof);
        if (i == 0) {
            memcpy(p->first, buf, got);
            p->first_len = got;
        }
        p->closed_by_server += eof;
        close(fds[i]);
    }
    return NULL;
}

static void raw_run(int mode, int hold, uint32_t timeout_ms, uint32_t max_hs, gmud_stats *st,
                    raw_t *out)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
    fx.cfg.conn.tls.handshake_timeout_ms = timeout_ms;
    fx.cfg.conn.tls.max_handshakes = max_hs;
    side_t srv;
    tls_server(&fx, &srv);
    raw_t p;
    memset(&p, 0, sizeof p);
    p.mode = mode;
    p.hold = hold;
    rt_fx_run_peer(&fx, &p.rt, raw_peer, &p, 5000);
    CHECK_EQ_INT(p.closed_by_server, mode == 2 ? hold : 1);
    *st = rt_fx_stats(&fx);
    CHECK_EQ_INT(srv.connects, 0);
    if (out != NULL)
        *out = p;
    rt_fx_end(&fx);
}

/* Plaintext on the TLS port is answered in plaintext: the error packet
 * tls_required in the server's framing (mode on, no welcome before it),
 * then the close. Garbage that starts as a TLS record is a failed
 * handshake, closed with no answer a plaintext peer could read. */
static void test_not_tls(void)
{
    gmud_stats st;
    raw_t p;
    raw_run(0, 1, 2000, 16, &st, &p);
    CHECK_EQ_INT((int)st.tls_failed, 1);
    CHECK_EQ_INT((int)st.closes[GMUD_CLOSE_TLS], 1);
    CHECK(rt_log_find("tls", "not TLS: the peer's first byte is 0x47 'G'") != NULL);
    static const char want[] = "{\"error\":\"this port speaks TLS: connect with TLS "
                               "(gmud-client --tls)\",\"code\":\"tls_required\"}";
    CHECK_EQ_INT(p.first_len, 6 + sizeof want - 1);
    CHECK(memcmp(p.first, "GMUD", 4) == 0 && p.first[4] == sizeof want - 1 && p.first[5] == 0);
    CHECK(p.first_len >= 6 && memcmp(p.first + 6, want, p.first_len - 6) == 0);
    raw_run(1, 1, 2000, 16, &st, &p);
    CHECK_EQ_INT((int)st.tls_failed, 1);
    CHECK(rt_log_find("tls", "TLS handshake failed") != NULL);
    CHECK_EQ_INT(p.first_len, 0);
}

/* Silent peers: closed at the handshake timeout; over max_handshakes,
 * closed at once (no TLS state). */
static void test_handshake_limits(void)
{
    gmud_stats st;
    int64_t t0 = rt_now_ms();
    raw_run(2, 3, 300, 16, &st, NULL);
    int64_t took = rt_now_ms() - t0;
    CHECK_EQ_INT((int)st.tls_failed, 3);
    CHECK(rt_log_find("tls", "TLS handshake not done after 300 ms") != NULL);
    CHECK(took >= 300 && took < 2500);
    raw_run(2, 4, 300, 2, &st, NULL);
    CHECK_EQ_INT((int)st.tls_busy, 2);
    CHECK_EQ_INT((int)st.tls_failed, 2);
    CHECK(rt_log_find("tls", "2 TLS handshakes in progress, the maximum") != NULL);
}

/* ---- Modification on the path ---------------------------------------------- */

/* A proxy between client and server that changes the client's first
 * application data record (its second encrypted record: the first is its
 * Finished): it flips one bit in its last byte, or inserts a forged record
 * (a well-formed header, made-up ciphertext) before it, or sends it twice. */
enum { TAMPER_FLIP, TAMPER_INJECT, TAMPER_DUPLICATE };

typedef struct tamper_t {
    rt_peer rt;
    int lfd, server_port;
    int mode;
    int done;               /* the change was made */
    uint8_t hdr[5];
    size_t hlen, left;
    int records;            /* client records of outer type 23 so far */
    uint8_t rec[5 + 16384 + 256]; /* the record being changed, for a duplicate */
    size_t rec_len;
} tamper_t;

static int tamper_target(const tamper_t *t)
{
    return t->hdr[0] == 23 && t->records == 2 && !t->done;
}

/* Copies b[0..n) to out, changed; returns the bytes in out. A header is
 * held back until whole, so that a record can be put before it. */
static size_t tamper_scan(tamper_t *t, const uint8_t *b, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t x = b[i];
        if (t->left == 0) {
            t->hdr[t->hlen++] = x;
            if (t->hlen < 5)
                continue;
            t->hlen = 0;
            t->left = (size_t)t->hdr[3] << 8 | t->hdr[4];
            t->records += t->hdr[0] == 23;
            if (tamper_target(t) && t->mode == TAMPER_INJECT) {
                static const uint8_t forged[5] = {23, 3, 3, 0, 48};
                memcpy(out + o, forged, 5);
                for (size_t k = 0; k < 48; k++) /* any bytes: without the key none pass */
                    out[o + 5 + k] = (uint8_t)(k * 37 + 11);
                o += 53;
                t->done = 1;
            }
            memcpy(out + o, t->hdr, 5);
            o += 5;
            if (tamper_target(t)) {
                memcpy(t->rec, t->hdr, 5);
                t->rec_len = 5;
            }
            continue;
        }
        if (tamper_target(t) && t->mode == TAMPER_FLIP && t->left == 1) {
            x ^= 1;
            t->done = 1;
        }
        out[o++] = x;
        if (tamper_target(t) && t->mode == TAMPER_DUPLICATE) {
            t->rec[t->rec_len++] = x;
            if (t->left == 1) {
                memcpy(out + o, t->rec, t->rec_len);
                o += t->rec_len;
                t->done = 1;
            }
        }
        t->left--;
    }
    return o;
}

static void *tamper_main(void *arg)
{
    tamper_t *t = arg;
    int c = rt_accept_within(t->lfd, 3000);
    int s = c >= 0 ? rt_connect("127.0.0.1", t->server_port, 0) : -1;
    PCHECK(t, c >= 0 && s >= 0);
    atomic_store(&t->rt.ready, 1);
    int64_t until = rt_now_ms() + 3000;
    while (c >= 0 && s >= 0 && rt_now_ms() < until) {
        struct pollfd pf[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
        if (poll(pf, 2, 50) <= 0)
            continue;
        static uint8_t buf[16384], out[sizeof buf + sizeof t->rec + 64];
        int from = pf[0].revents ? c : s, to = from == c ? s : c;
        ssize_t n = recv(from, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        if (from == c)
            rt_send_all(to, out, tamper_scan(t, buf, (size_t)n, out));
        else
            rt_send_all(to, buf, (size_t)n);
    }
    if (c >= 0)
        close(c);
    if (s >= 0)
        close(s);
    return NULL;
}

/* The server refuses the changed record and closes as tls failed; the
 * messages in it, and after it, never reach the application. A flipped bit
 * or a forged record comes before the three messages: none arrives. A
 * record sent twice: the three arrive once, and the copy is refused (its
 * sequence number, part of the nonce, is the next one's, so it fails to
 * authenticate). */
static void tamper_run(int mode, int want_msgs)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
    side_t srv, cli;
    tls_server(&fx, &srv);
    static tamper_t t;
    memset(&t, 0, sizeof t);
    t.mode = mode;
    int proxy_port = 0;
    t.lfd = rt_listen(&proxy_port);
    t.server_port = fx.port;
    CHECK(t.lfd >= 0);
    rt_fx_peer(&fx, &t.rt, tamper_main, &t);
    gmud_client_config cc;
    tls_client_config(&fx, &cc);
    cc.port = (uint16_t)proxy_port;
    side_init(&cli);
    rt_fx_client(&fx, &cc, (gmud_callbacks){.on_connect = cli_connect,
                                            .on_message = cli_message,
                                            .on_close = on_close,
                                            .user = &cli});
    CHECK(rt_run_until(&fx.loop, closed, &srv, 3000));
    CHECK(t.done);
    CHECK_EQ_INT(srv.reason, GMUD_CLOSE_TLS);
    CHECK_EQ_INT(srv.msgs, want_msgs);
    CHECK_CONTAINS(srv.detail, "TLS record refused");
    CHECK(rt_run_until(&fx.loop, closed, &cli, 3000));
    CHECK(cli.msgs <= want_msgs);
    rt_fx_end(&fx);
    close(t.lfd);
}

static void test_tampered(void)
{
    tamper_run(TAMPER_FLIP, 0);
    tamper_run(TAMPER_INJECT, 0);
    tamper_run(TAMPER_DUPLICATE, 3);
}

/* ---- The blocking client ------------------------------------------------- */

typedef struct sync_peer {
    rt_peer rt;
    const char *pin;       /* NULL: by CA and name */
    int echoed;            /* messages back */
    char err[200];         /* the create's error, if it failed */
} sync_peer;

static void *sync_main(void *arg)
{
    sync_peer *p = arg;
    gmud_sync_config c;
    gmud_sync_default_config(&c);
    c.tls.enabled = 1;
    c.tls.ca_file = p->pin ? NULL : cert;
    c.tls.server_name = p->pin ? NULL : "localhost";
    c.tls.pin = p->pin;
    gmud_error e;
    gmud_sync *k = gmud_sync_create("127.0.0.1", (unsigned)p->rt.port, &c, 3000, &e);
    if (k == NULL) {
        snprintf(p->err, sizeof p->err, "%s", e.message);
        return NULL;
    }
    for (int i = 0; i < 5; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "{\"k\":%d}", i);
        gmud_slice got;
        if (gmud_sync_send(k, m, (size_t)n, &e) == GMUD_OK &&
            gmud_sync_recv(k, 3000, &got, &e) == 1 && got.len == (size_t)n &&
            memcmp(got.data, m, got.len) == 0)
            p->echoed++;
    }
    gmud_sync_destroy(k);
    return NULL;
}

static void sync_run(sync_peer *p, side_t *srv)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", GMUD_PAYLOAD_JSON);
    fx.cfg.conn.session.mode = GMUD_SESSION_ON; /* the blocking client's default */
    tls_server(&fx, srv);
    rt_fx_run_peer(&fx, &p->rt, sync_main, p, 8000);
    CHECK(rt_run_until(&fx.loop, closed, srv, 3000) || p->err[0] != '\0');
    rt_fx_end(&fx);
}

/* With sessions on (the welcome read through TLS), then a wrong pin. The
 * server sees a clean end: gmud_sync_destroy sent close_notify. */
static void test_sync(void)
{
    sync_peer p;
    side_t srv;
    memset(&p, 0, sizeof p);
    sync_run(&p, &srv);
    if (p.err[0] != '\0')
        fprintf(stderr, "  sync over TLS: %s\n", p.err);
    CHECK(p.err[0] == '\0');
    CHECK_EQ_INT(p.echoed, 5);
    CHECK_EQ_INT(srv.reason, GMUD_CLOSE_PEER);
    memset(&p, 0, sizeof p);
    p.pin = other_pin;
    sync_run(&p, &srv);
    CHECK_CONTAINS(p.err, "not the pinned");
    CHECK_EQ_INT(p.echoed, 0);
    CHECK_EQ_INT(srv.connects, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (setup_certs() != 0) {
        fprintf(stderr, "test_tls: cannot make certificates with openssl(1)\n");
        return 1;
    }
    test_echo();
    test_verify_failures();
    test_bad_configs();
    test_refusal_in_tls();
    test_not_tls();
    test_handshake_limits();
    test_sync();
    test_tampered();
    remove_certs();
    return check_report("test_tls");
}
