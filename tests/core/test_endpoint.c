/* The protocol engine (src/core/endpoint.c), sans I/O: two endpoints, a
 * server and a client, joined by hand. A packet is taken from one side's
 * EP_SEND or ep_send_begin, its head and body laid end to end as the frame's
 * payload (zero-padded to N under fixed:N, as the decoder hands it over),
 * committed, and fed to the other side's ep_on_frame at a time read from a
 * fake clock. Every table names what is fed and what the engine must say:
 * which bits, which kind, which close, which error code, which words.
 *
 * Cases marked "Found here" pin bugs these tables found in the engine when
 * they were written (since fixed): what PROTOCOL.md or the engine's header
 * says, which the engine then did not do. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "endpoint.h"
#include "frame_head.h"
#include "gmud/json.h"
#include "gmud/limits.h"
#include "gmud/session.h"

/* The fake clock's origin (ms): not 0, so that no deadline passes by
 * accident at the start of time. */
#define T0 UINT64_C(1000000)

enum { R = EP_REFUSED, S = EP_SEND, W = EP_WELCOMED, D = EP_DELIVER, T = EP_THROTTLE,
       C = EP_CLOSE, H = EP_HOLD };

/* ---- Helpers ------------------------------------------------------------ */

/* A config with every public field set, for role, framing (as the programs
 * spell it) and mode; JSON payloads and JSON error packets if json. Callers
 * change fields, then ready() it. */
static void fill(ep_config *cfg, ep_role role, const char *framing, gmud_session_mode mode,
                 int json)
{
    gmud_error err;
    memset(cfg, 0, sizeof *cfg);
    cfg->role = role;
    CHECK_EQ_INT(gmud_frame_config_parse(&cfg->frame, framing, &err), 0);
    cfg->mode = mode;
    cfg->json = json;
    cfg->json_errors = json;
    cfg->keep_padding = 0;
    cfg->carry_on = 0;
    cfg->reply_data = NULL;
    gmud_json_default_config(&cfg->json_limits);
    cfg->max_bad_messages = 5;
    cfg->rate_close_ms = 1000;
    cfg->welcome_timeout_ms = 1000;
}

static void ready(ep_config *cfg)
{
    gmud_error err = {0};
    int rc = ep_config_ready(cfg, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        fprintf(stderr, "  ep_config_ready: %s\n", err.message);
}

/* A server and a client with the same rules. */
typedef struct pair {
    ep_config scfg, ccfg;
    endpoint srv, cli;
    uint64_t id; /* the session's id, once welcomed */
} pair;

static void pair_fill(pair *p, const char *framing, gmud_session_mode mode, int json)
{
    fill(&p->scfg, EP_SERVER, framing, mode, json);
    fill(&p->ccfg, EP_CLIENT, framing, mode, json);
    p->id = 0;
}

/* pkt as the frame payload the peer's decoder would hand over: head, body,
 * and under fixed:N the zero padding up to N (from's framing). */
static gmud_slice flat(const endpoint *from, const ep_packet *pkt, uint8_t *buf, size_t cap)
{
    size_t n = pkt->head_len + pkt->body_len;
    const gmud_frame_config *f = &from->cfg->frame;
    size_t total = f->framing == GMUD_FRAMING_FIXED && n < f->fixed_size ? f->fixed_size : n;
    CHECK(pkt->head_len <= GMUD_SESSION_HEADER_SIZE && total <= cap);
    if (pkt->head_len > GMUD_SESSION_HEADER_SIZE || total > cap)
        return (gmud_slice){buf, 0};
    memcpy(buf, pkt->head, pkt->head_len);
    if (pkt->body_len > 0)
        memcpy(buf + pkt->head_len, pkt->body, pkt->body_len);
    memset(buf + n, 0, total - n);
    return (gmud_slice){buf, total};
}

/* One frame into ep at now. r is filled with junk first, so a field the
 * engine leaves unset shows. */
static unsigned feed(endpoint *ep, gmud_slice s, uint64_t now, ep_result *r)
{
    memset(r, 0xa5, sizeof *r);
    ep_on_frame(ep, s, now, r);
    return r->what;
}

/* feed, keeping only the bits. */
static unsigned feed_bits(endpoint *ep, gmud_slice s, uint64_t now)
{
    ep_result r;
    unsigned what = feed(ep, s, now, &r);
    json_decref(r.json);
    return what;
}

/* Readies both configs, starts both endpoints at now and, in a session
 * mode, passes the server's welcome to the client. */
static void pair_open(pair *p, uint64_t now)
{
    ready(&p->scfg);
    ready(&p->ccfg);
    ep_init(&p->srv, &p->scfg, now);
    ep_init(&p->cli, &p->ccfg, now);
    if (p->scfg.mode == GMUD_SESSION_OFF)
        return;
    ep_packet pkt;
    gmud_error err;
    uint8_t buf[256];
    int rc = ep_welcome(&p->srv, &pkt, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        return;
    gmud_slice w = flat(&p->srv, &pkt, buf, sizeof buf);
    ep_send_commit(&p->srv, &pkt);
    ep_result r;
    CHECK_EQ_INT(feed(&p->cli, w, now, &r), EP_WELCOMED);
    p->id = pkt.id;
}

static void pair_free(pair *p)
{
    ep_config_free(&p->scfg);
    ep_config_free(&p->ccfg);
}

/* r carries bit (a check of its own): only then may the fields that go with
 * it (pkt with EP_SEND, msg with EP_DELIVER) be read, so that a broken
 * engine shows as failed checks rather than a crash. */
static int has(const ep_result *r, unsigned bit)
{
    CHECK(r->what & bit);
    return (r->what & bit) != 0;
}

static gmud_slice text(const char *s)
{
    return (gmud_slice){(const uint8_t *)s, strlen(s)};
}

/* The application's data through ep_send_begin and ep_send_commit: the
 * frame payload the peer receives. */
static gmud_slice send_data(endpoint *ep, const void *data, size_t len, uint8_t *buf, size_t cap)
{
    ep_packet pkt;
    gmud_error err;
    int rc = ep_send_begin(ep, data, len, &pkt, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        return (gmud_slice){buf, 0};
    gmud_slice s = flat(ep, &pkt, buf, cap);
    ep_send_commit(ep, &pkt);
    return s;
}

static gmud_slice send_text(endpoint *ep, const char *data, uint8_t *buf, size_t cap)
{
    return send_data(ep, data, strlen(data), buf, cap);
}

/* A mode-on packet made by hand: the header (id, seq), then data. */
static gmud_slice forge(uint64_t id, uint64_t seq, const char *data, uint8_t *buf)
{
    gmud_session_header_put(buf, id, seq);
    memcpy(buf + GMUD_SESSION_HEADER_SIZE, data, strlen(data));
    return (gmud_slice){buf, GMUD_SESSION_HEADER_SIZE + strlen(data)};
}

/* Another valid session id than id. */
static uint64_t other_id(uint64_t id)
{
    return id < GMUD_SESSION_ID_MAX ? id + 1 : id - 1;
}

/* A packet's body as a C string (cut to cap - 1). */
static const char *body_text(const ep_packet *pkt, char *out, size_t cap)
{
    size_t n = pkt->body_len < cap - 1 ? pkt->body_len : cap - 1;
    if (n > 0)
        memcpy(out, pkt->body, n);
    out[n] = '\0';
    return out;
}

/* pkt's header is the session's (id, seq). */
static void check_head(const ep_packet *pkt, uint64_t id, uint64_t seq)
{
    uint8_t want[GMUD_SESSION_HEADER_SIZE];
    gmud_session_header_put(want, id, seq);
    CHECK_MEM(pkt->head, pkt->head_len, want, sizeof want);
}

/* pkt's body is an error packet for code: {"error": ..., "code": "<name>"}
 * with json, else "error <name>: ...". */
static void check_error_body(const ep_packet *pkt, int json, int code)
{
    char body[1200], want[64];
    body_text(pkt, body, sizeof body);
    if (json) {
        snprintf(want, sizeof want, "\"code\":\"%s\"", gmud_err_name(code));
        CHECK_CONTAINS(body, want);
        gmud_json_limits lim;
        gmud_json_default_config(&lim);
        json_t *v = NULL;
        gmud_error e, got = {0};
        CHECK_EQ_INT(gmud_json_parse(pkt->body, pkt->body_len, &lim, &v, &e), 0);
        CHECK_EQ_INT(gmud_json_error_packet(v, &got), 1);
        CHECK_EQ_INT(got.code, code);
        json_decref(v);
    } else {
        snprintf(want, sizeof want, "error %s: ", gmud_err_name(code));
        CHECK_CONTAINS(body, want);
        CHECK(strncmp(body, want, strlen(want)) == 0);
    }
}

/* ---- 1. Config checks ----------------------------------------------------- */

/* ep_config_ready refuses the rules that cannot work together, with
 * GMUD_ERR_INVALID and a sentence naming why, and takes the rest; a refused
 * config holds nothing to free (ASan's leak check in the clang build). */
static void test_config_table(void)
{
    static char too_long[102], twenty[21], nineteen[20];
    memset(too_long, 'x', sizeof too_long - 1);
    memset(twenty, 'x', sizeof twenty - 1);
    memset(nineteen, 'x', sizeof nineteen - 1);
    enum { LIM_OK, LIM_DEPTH0, LIM_KEYS0, LIM_DEPTH_HUGE, FRAME_BAD };
    const struct {
        const char *name;
        ep_role role;
        const char *framing;
        gmud_session_mode mode;
        int json;
        const char *reply_data;
        int tweak;
        int rc;
        const char *msg; /* in err.message */
    } cases[] = {
        {"on over line", EP_SERVER, "line", GMUD_SESSION_ON, 1, NULL, LIM_OK, GMUD_ERR_INVALID,
         "session mode on needs length, gmud or fixed framing, not line"},
        {"on over raw", EP_CLIENT, "raw", GMUD_SESSION_ON, 1, NULL, LIM_OK, GMUD_ERR_INVALID,
         "not raw"},
        {"on over line, client", EP_CLIENT, "line", GMUD_SESSION_ON, 0, NULL, LIM_OK,
         GMUD_ERR_INVALID, "not line"},
        {"on over length", EP_SERVER, "length", GMUD_SESSION_ON, 0, NULL, LIM_OK, 0, NULL},
        {"on over gmud", EP_CLIENT, "gmud", GMUD_SESSION_ON, 1, NULL, LIM_OK, 0, NULL},
        {"lecture over raw", EP_SERVER, "raw", GMUD_SESSION_LECTURE, 1, NULL, LIM_OK,
         GMUD_ERR_INVALID, "lecture needs a framing other than raw"},
        {"lecture over raw, client", EP_CLIENT, "raw", GMUD_SESSION_LECTURE, 1, NULL, LIM_OK,
         GMUD_ERR_INVALID, "other than raw"},
        {"lecture over line", EP_SERVER, "line", GMUD_SESSION_LECTURE, 1, NULL, LIM_OK, 0, NULL},
        {"lecture server, text", EP_SERVER, "gmud", GMUD_SESSION_LECTURE, 0, NULL, LIM_OK,
         GMUD_ERR_INVALID, "needs json payload on the server"},
        {"lecture client, text", EP_CLIENT, "gmud", GMUD_SESSION_LECTURE, 0, NULL, LIM_OK, 0, NULL},
        {"on, fixed:49", EP_SERVER, "fixed:49", GMUD_SESSION_ON, 1, NULL, LIM_OK, GMUD_ERR_INVALID,
         "at least 50 bytes (the welcome), not 49"},
        {"on, fixed:49, client", EP_CLIENT, "fixed:49", GMUD_SESSION_ON, 1, NULL, LIM_OK,
         GMUD_ERR_INVALID, "at least 50"},
        {"on, fixed:50", EP_SERVER, "fixed:50", GMUD_SESSION_ON, 1, NULL, LIM_OK, 0, NULL},
        {"lecture server, fixed:49", EP_SERVER, "fixed:49", GMUD_SESSION_LECTURE, 1, NULL, LIM_OK,
         GMUD_ERR_INVALID, "at least 50"},
        {"lecture server, fixed:50", EP_SERVER, "fixed:50", GMUD_SESSION_LECTURE, 1, NULL, LIM_OK,
         0, NULL},
        {"off, fixed:1", EP_SERVER, "fixed:1", GMUD_SESSION_OFF, 0, NULL, LIM_OK, 0, NULL},
        {"off over raw", EP_CLIENT, "raw", GMUD_SESSION_OFF, 0, NULL, LIM_OK, 0, NULL},
        /* The longest reply with the default data is 98 bytes (id 2^53-1,
         * sequence 2^64-2): a lecture client needs room for it. */
        {"lecture client, fixed:50", EP_CLIENT, "fixed:50", GMUD_SESSION_LECTURE, 0, NULL, LIM_OK,
         GMUD_ERR_INVALID, "a reply carrying this data takes up to 98 bytes"},
        {"lecture client, fixed:98", EP_CLIENT, "fixed:98", GMUD_SESSION_LECTURE, 0, NULL, LIM_OK,
         0, NULL},
        {"reply data not UTF-8", EP_CLIENT, "gmud", GMUD_SESSION_LECTURE, 0, "ab\xff", LIM_OK,
         GMUD_ERR_INVALID, "bad reply data: reply data is not UTF-8 at byte 2"},
        {"reply data longer than the frame", EP_CLIENT, "fixed:100", GMUD_SESSION_LECTURE, 0,
         too_long, LIM_OK, GMUD_ERR_INVALID,
         "reply data of 101 bytes cannot fit a 100-byte message"},
        {"reply with data over the frame", EP_CLIENT, "fixed:100", GMUD_SESSION_LECTURE, 0, twenty,
         LIM_OK, GMUD_ERR_INVALID, "takes up to 101 bytes, over the 100-byte message"},
        {"reply with data that just fits", EP_CLIENT, "fixed:100", GMUD_SESSION_LECTURE, 0,
         nineteen, LIM_OK, 0, NULL},
        {"reply data on a server: unused", EP_SERVER, "gmud", GMUD_SESSION_LECTURE, 1, "ab\xff",
         LIM_OK, 0, NULL},
        {"unknown mode", EP_SERVER, "gmud", (gmud_session_mode)7, 1, NULL, LIM_OK,
         GMUD_ERR_INVALID, "unknown session mode 7"},
        {"json depth 0", EP_SERVER, "gmud", GMUD_SESSION_OFF, 1, NULL, LIM_DEPTH0,
         GMUD_ERR_INVALID, "JSON limits must be positive"},
        {"json keys 0, mode on", EP_CLIENT, "gmud", GMUD_SESSION_ON, 0, NULL, LIM_KEYS0,
         GMUD_ERR_INVALID, "JSON limits must be positive"},
        {"json depth past jansson's", EP_SERVER, "gmud", GMUD_SESSION_LECTURE, 1, NULL,
         LIM_DEPTH_HUGE, GMUD_ERR_INVALID, "depth below"},
        /* Limits nothing reads are not checked. */
        {"json limits unused", EP_SERVER, "gmud", GMUD_SESSION_OFF, 0, NULL, LIM_DEPTH0, 0, NULL},
        {"bad frame config", EP_SERVER, "gmud", GMUD_SESSION_OFF, 0, NULL, FRAME_BAD,
         GMUD_ERR_INVALID, "max message 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ep_config cfg;
        fill(&cfg, cases[i].role, cases[i].framing, cases[i].mode, cases[i].json);
        cfg.reply_data = cases[i].reply_data;
        if (cases[i].tweak == LIM_DEPTH0)
            cfg.json_limits.max_depth = 0;
        else if (cases[i].tweak == LIM_KEYS0)
            cfg.json_limits.max_keys = 0;
        else if (cases[i].tweak == LIM_DEPTH_HUGE)
            cfg.json_limits.max_depth = 100000;
        else if (cases[i].tweak == FRAME_BAD)
            cfg.frame.max_message = 0;
        gmud_error err = {0};
        int rc = ep_config_ready(&cfg, &err);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc != cases[i].rc)
            fprintf(stderr, "  case \"%s\": %s\n", cases[i].name, err.message);
        if (cases[i].rc != 0) {
            CHECK_EQ_INT(err.code, cases[i].rc);
            CHECK_CONTAINS(err.message, cases[i].msg);
            /* Nothing left to free: no buffer, no copy of the reply data. */
            CHECK(cfg.out.data == NULL && cfg.out.cap == 0);
            CHECK(cfg.reply_text == NULL);
            CHECK(cfg.reply_data == cases[i].reply_data); /* the caller's, untouched */
        }
        if (rc == 0) {
            /* The buffer for the engine's own packets is the lecture
             * client's from the start (it replies to every packet); others
             * take it with their first packet, so an idle client does not
             * carry it. */
            int lecture_client =
                cases[i].role == EP_CLIENT && cases[i].mode == GMUD_SESSION_LECTURE;
            CHECK((cfg.out.data != NULL) == lecture_client);
            if (!lecture_client) {
                endpoint ep;
                ep_packet pkt;
                ep_init(&ep, &cfg, T0);
                CHECK_EQ_INT(ep_error_packet(&ep, "bad_json", "x", &pkt, NULL), 0);
                CHECK(cfg.out.data != NULL && cfg.out.cap >= 1024);
            }
            if (lecture_client) {
                /* The reply data is copied: the caller's pointer may go. */
                const char *want = cases[i].reply_data ? cases[i].reply_data
                                                       : GMUD_SESSION_LECTURE_DATA;
                CHECK(cfg.reply_text != NULL && cfg.reply_text != cases[i].reply_data);
                CHECK(cfg.reply_text && strcmp(cfg.reply_text, want) == 0);
                CHECK_EQ_INT(cfg.reply_len, strlen(want));
            }
            ep_config_free(&cfg);
            CHECK(cfg.out.data == NULL && cfg.reply_text == NULL);
        }
    }
}

/* ep_max_payload: the frame's room, less the header in mode on; and
 * max_bad_messages 0 is taken as 1. */
static void test_config_derived(void)
{
    static const struct {
        const char *framing;
        gmud_session_mode mode;
        size_t want;
    } cases[] = {
        {"gmud", GMUD_SESSION_OFF, 65535},    {"gmud", GMUD_SESSION_ON, 65519},
        {"length", GMUD_SESSION_ON, 65519},   {"fixed:50", GMUD_SESSION_ON, 34},
        {"fixed:100", GMUD_SESSION_OFF, 100}, {"fixed:100", GMUD_SESSION_LECTURE, 100},
        {"line", GMUD_SESSION_OFF, 65535},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ep_config cfg;
        fill(&cfg, EP_SERVER, cases[i].framing, cases[i].mode, 1);
        ready(&cfg);
        CHECK_EQ_INT(ep_max_payload(&cfg), cases[i].want);
        ep_config_free(&cfg);
    }
    ep_config cfg;
    /* No bad-message limit is refused where payloads are parsed, and
     * unused where they are not. */
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_OFF, 1);
    cfg.max_bad_messages = 0;
    CHECK_EQ_INT(ep_config_ready(&cfg, NULL), GMUD_ERR_INVALID);
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_OFF, 0);
    cfg.max_bad_messages = 0;
    ready(&cfg);
    ep_config_free(&cfg);
    /* Freeing twice, or a config that was never readied, is harmless. */
    ep_config_free(&cfg);
    memset(&cfg, 0, sizeof cfg);
    ep_config_free(&cfg);
}

/* Found here: ep_config_ready took limits that gmud_limits_check refuses
 * and that the engine cannot carry out: a rate without a burst (ep_init's
 * gmud_bucket_init then failed unseen and left the bucket zeroed, its first
 * refill dividing by zero), more than 255 bad messages (the count is a
 * uint8_t: it wrapped and never reached the limit), and rate_close_ms 0
 * (taken as 1 ms). Each case passes if the config is refused, or if the
 * engine then does what the rule says. */
static void test_config_limits(void)
{
    static const struct {
        const char *name;
        uint32_t msg_rate, msg_burst, byte_rate, byte_burst;
    } rates[] = {
        {"message rate, burst 0", 10, 0, 0, 0},
        {"byte rate, burst 0", 0, 0, 1000, 0},
    };
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        ep_config cfg;
        fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_OFF, 0);
        cfg.msg_rate = rates[i].msg_rate;
        cfg.msg_burst = rates[i].msg_burst;
        cfg.byte_rate = rates[i].byte_rate;
        cfg.byte_burst = rates[i].byte_burst;
        gmud_error err;
        int rc = ep_config_ready(&cfg, &err);
        CHECK_EQ_INT(rc, GMUD_ERR_INVALID); /* running it would divide by zero */
        if (rc != GMUD_ERR_INVALID)
            fprintf(stderr, "  case \"%s\" accepted\n", rates[i].name);
        if (rc == 0)
            ep_config_free(&cfg);
    }

    /* 256 bad payloads with max_bad_messages 256: the 256th closes. */
    ep_config cfg;
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_OFF, 1);
    cfg.max_bad_messages = 256;
    gmud_error err;
    if (ep_config_ready(&cfg, &err) == 0) {
        endpoint ep;
        ep_init(&ep, &cfg, T0);
        int closed_at = 0;
        for (int n = 1; n <= 300 && closed_at == 0; n++)
            if (feed_bits(&ep, text("nope"), T0) & EP_CLOSE)
                closed_at = n;
        CHECK_EQ_INT(closed_at, 256);
        ep_config_free(&cfg);
    }

    /* rate_close_ms 0: refused, or never closes (GMUD_OFF, limits.h). */
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_OFF, 0);
    cfg.msg_rate = 1;
    cfg.msg_burst = 1;
    cfg.rate_close_ms = 0;
    if (ep_config_ready(&cfg, &err) == 0) {
        endpoint ep;
        ep_init(&ep, &cfg, T0);
        unsigned closes = 0;
        for (uint64_t t = 0; t < 3000; t += 10)
            closes |= feed_bits(&ep, text("m"), T0 + t) & EP_CLOSE;
        CHECK_EQ_INT(closes, 0);
        ep_config_free(&cfg);
    }
}

/* ---- 2. Mode on: the handshake and the exchange --------------------------- */

/* The welcome is the lecture's JSON, bare; the client takes it (EP_WELCOMED,
 * not delivered); then the client sends sequences 0, 1, ... and the server
 * 1, 2, ..., each delivered without its 16-byte header, in every framing
 * mode on allows. */
static void test_handshake(void)
{
    static const struct {
        const char *framing;
        int json;
    } cases[] = {{"gmud", 1}, {"length", 0}, {"fixed:100", 1}, {"fixed:50", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pair p;
        pair_fill(&p, cases[i].framing, GMUD_SESSION_ON, cases[i].json);
        ready(&p.scfg);
        ready(&p.ccfg);
        ep_init(&p.srv, &p.scfg, T0);
        ep_init(&p.cli, &p.ccfg, T0);
        CHECK(ep_awaiting_welcome(&p.cli));
        CHECK(!ep_awaiting_welcome(&p.srv));

        ep_packet pkt;
        gmud_error err;
        uint8_t buf[256], want[64];
        CHECK_EQ_INT(ep_welcome(&p.srv, &pkt, &err), 0);
        CHECK_EQ_INT(pkt.head_len, 0);
        CHECK(pkt.id >= 1 && pkt.id <= GMUD_SESSION_ID_MAX);
        ptrdiff_t n = gmud_session_lecture_welcome(pkt.id, want, sizeof want, &err);
        CHECK_MEM(pkt.body, pkt.body_len, want, n);
        CHECK(p.srv.sess.id == 0); /* nothing starts until it is queued */
        gmud_slice w = flat(&p.srv, &pkt, buf, sizeof buf);
        ep_send_commit(&p.srv, &pkt);
        CHECK(p.srv.sess.id == pkt.id && p.srv.sess.send_seq == 1 && p.srv.sess.recv_seq == 0);

        ep_result r;
        CHECK_EQ_INT(feed(&p.cli, w, T0, &r), EP_WELCOMED);
        CHECK(r.json == NULL);
        CHECK(!ep_awaiting_welcome(&p.cli));
        CHECK(p.cli.sess.id == pkt.id && p.cli.sess.send_seq == 0 && p.cli.sess.recv_seq == 1);
        p.id = pkt.id;

        for (uint64_t k = 0; k < 4; k++) {
            char msg[32];
            snprintf(msg, sizeof msg, "{\"n\":%d}", (int)k);
            /* client -> server, sequence k */
            gmud_slice s = send_text(&p.cli, msg, buf, sizeof buf);
            uint8_t head[GMUD_SESSION_HEADER_SIZE];
            gmud_session_header_put(head, p.id, k);
            CHECK(s.len >= 16 && memcmp(s.data, head, 16) == 0);
            CHECK_EQ_INT(feed(&p.srv, s, T0, &r), EP_DELIVER);
            if (has(&r, EP_DELIVER)) {
                CHECK_MEM(r.msg.data, r.msg.len, msg, strlen(msg));
                CHECK(r.msg.data == s.data + 16); /* a slice of the frame, no copy */
            }
            CHECK((r.json != NULL) == (cases[i].json != 0));
            if (r.json)
                CHECK_EQ_INT(json_integer_value(json_object_get(r.json, "n")), k);
            json_decref(r.json);
            CHECK(p.srv.sess.recv_seq == k + 1);
            /* server -> client, sequence k + 1 */
            s = send_text(&p.srv, msg, buf, sizeof buf);
            gmud_session_header_put(head, p.id, k + 1);
            CHECK(s.len >= 16 && memcmp(s.data, head, 16) == 0);
            CHECK_EQ_INT(feed(&p.cli, s, T0, &r), EP_DELIVER);
            if (has(&r, EP_DELIVER))
                CHECK_MEM(r.msg.data, r.msg.len, msg, strlen(msg));
            json_decref(r.json);
            CHECK(p.cli.sess.recv_seq == k + 2);
        }
        CHECK(p.cli.sess.send_seq == 4 && p.srv.sess.send_seq == 5);
        pair_free(&p);
    }
}

/* ---- 3. Mode on: every session violation at the receiver ----------------- */

enum forgery { F_REPLAY, F_SKIP, F_OTHER_ID, F_SHORT, F_EXHAUSTED };

static const struct {
    const char *name;
    enum forgery how;
    int code;
    const char *why; /* in the refusal's sentence */
} violations[] = {
    {"replayed", F_REPLAY, GMUD_ERR_REPLAYED, "(1 behind)"},
    {"skipped", F_SKIP, GMUD_ERR_SKIPPED, "(1 ahead)"},
    {"another session", F_OTHER_ID, GMUD_ERR_BAD_SESSION, "wrong session"},
    {"shorter than the header", F_SHORT, GMUD_ERR_MISSING_FIELD,
     "shorter than the 16-byte session header"},
    {"sequences exhausted", F_EXHAUSTED, GMUD_ERR_SEQ_EXHAUSTED, "exhausted"},
};

/* Once each side has sent one message, the receiver (server or client) gets
 * the forged packet: it is refused (EP_KIND_SESSION, the code), answered
 * with an error packet under the refusing side's header and next sequence,
 * and the connection closes (EP_CLOSE_SESSION); nothing is delivered and
 * the expected sequence does not move. The genuine peer, whose state is
 * intact, accepts the error packet. Every later frame is ignored. */
static void violation(ep_role at, int json, size_t vi, size_t short_len)
{
    pair p;
    uint8_t buf[256], forged[256];
    ep_result r;
    pair_fill(&p, "gmud", GMUD_SESSION_ON, json);
    pair_open(&p, T0);
    const char *msg = json ? "{\"move\":\"north\"}" : "move north";
    CHECK_EQ_INT(feed_bits(&p.srv, send_text(&p.cli, msg, buf, sizeof buf), T0), EP_DELIVER);
    CHECK_EQ_INT(feed_bits(&p.cli, send_text(&p.srv, msg, buf, sizeof buf), T0), EP_DELIVER);
    endpoint *rx = at == EP_SERVER ? &p.srv : &p.cli, *tx = at == EP_SERVER ? &p.cli : &p.srv;
    uint64_t want = rx->sess.recv_seq; /* server 1, client 2 */
    gmud_slice bad;
    switch (violations[vi].how) {
    case F_REPLAY:
        bad = forge(p.id, want - 1, msg, forged);
        break;
    case F_SKIP:
        bad = forge(p.id, want + 1, msg, forged);
        break;
    case F_OTHER_ID:
        bad = forge(other_id(p.id), want, msg, forged);
        break;
    case F_SHORT:
        bad = forge(p.id, want, msg, forged);
        bad.len = short_len;
        break;
    default:
        rx->sess.recv_seq = GMUD_SEQ_EXHAUSTED;
        bad = forge(p.id, want, msg, forged);
        break;
    }
    uint64_t send_before = rx->sess.send_seq, recv_before = rx->sess.recv_seq;
    int code = violations[vi].code;

    CHECK_EQ_INT(feed(rx, bad, T0, &r), R | S | C);
    CHECK_EQ_INT(r.kind, EP_KIND_SESSION);
    CHECK_EQ_INT(r.why.code, code);
    CHECK_CONTAINS(r.why.message, violations[vi].why);
    CHECK_EQ_INT(r.close, EP_CLOSE_SESSION);
    CHECK_EQ_INT(r.detail.code, code);
    CHECK(r.json == NULL);
    CHECK(rx->sess.recv_seq == recv_before);
    if (has(&r, EP_SEND)) {
        check_head(&r.pkt, p.id, send_before);
        check_error_body(&r.pkt, json, code);
        /* Queued: it spends the refusing side's sequence, and the peer reads
         * it as its next packet. */
        gmud_slice e = flat(rx, &r.pkt, buf, sizeof buf);
        ep_send_commit(rx, &r.pkt);
        CHECK(rx->sess.send_seq == send_before + 1);
        ep_result pr;
        /* Delivered, and known for the peer's error packet it is. */
        CHECK_EQ_INT(feed(tx, e, T0, &pr), EP_DELIVER | EP_PEER_ERROR);
        if (has(&pr, EP_PEER_ERROR)) {
            CHECK_EQ_INT(pr.why.code, code);
            CHECK_CONTAINS(pr.why.message, gmud_err_name(code));
        }
        if (has(&pr, EP_DELIVER) && e.len >= 16)
            CHECK_MEM(pr.msg.data, pr.msg.len, e.data + 16, e.len - 16);
        if (json)
            CHECK_EQ_INT(gmud_json_error_packet(pr.json, NULL), 1);
        json_decref(pr.json);
    }

    /* Closed: the peer's genuine next packet, and the forgery again, are
     * ignored, and so is the clock. */
    CHECK_EQ_INT(feed_bits(rx, send_text(tx, msg, buf, sizeof buf), T0), 0);
    CHECK_EQ_INT(feed_bits(rx, bad, T0), 0);
    ep_on_tick(rx, T0 + 100000, &r);
    CHECK_EQ_INT(r.what, 0);
    pair_free(&p);
}

static void test_violations(void)
{
    for (int role = 0; role < 2; role++)
        for (int json = 0; json < 2; json++)
            for (size_t vi = 0; vi < sizeof violations / sizeof violations[0]; vi++) {
                int before = check_failures;
                if (violations[vi].how == F_SHORT)
                    for (size_t len = 0; len < GMUD_SESSION_HEADER_SIZE; len++)
                        violation(role ? EP_CLIENT : EP_SERVER, json, vi, len);
                else
                    violation(role ? EP_CLIENT : EP_SERVER, json, vi, 0);
                if (check_failures != before)
                    fprintf(stderr, "  violation \"%s\" at the %s, json %d\n", violations[vi].name,
                            role ? "client" : "server", json);
            }
}

/* Before the welcome is queued, a mode-on server has no session: any packet
 * is refused as not_welcomed, and its error packet goes out bare. */
static void test_before_welcome(void)
{
    ep_config cfg;
    endpoint ep;
    uint8_t buf[64];
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_ON, 1);
    ready(&cfg);
    ep_init(&ep, &cfg, T0);
    ep_result r;
    CHECK_EQ_INT(feed(&ep, forge(7, 0, "{}", buf), T0, &r), R | S | C);
    CHECK_EQ_INT(r.kind, EP_KIND_SESSION);
    CHECK_EQ_INT(r.why.code, GMUD_ERR_NOT_WELCOMED);
    if (has(&r, EP_SEND)) {
        CHECK_EQ_INT(r.pkt.head_len, 0);
        check_error_body(&r.pkt, 1, GMUD_ERR_NOT_WELCOMED);
    }
    ep_config_free(&cfg);
}

/* ---- 4. Truncation -------------------------------------------------------- */

/* Every prefix of a valid mode-on packet is refused, each on a fresh
 * endpoint. Under 16 bytes the header is short: a session violation, which
 * closes, and the whole packet is then ignored. From 16 bytes the header is
 * whole and spends its sequence; the cut JSON is a bad payload, the
 * connection stays open, and the client's next packet (the next sequence)
 * is delivered. */
static void test_truncation(void)
{
    const char *msg = "{\"move\":\"north\"}";
    uint8_t whole[64];
    for (size_t len = 0; len < GMUD_SESSION_HEADER_SIZE + strlen(msg); len++) {
        pair p;
        uint8_t buf[64];
        ep_result r;
        pair_fill(&p, "gmud", GMUD_SESSION_ON, 1);
        pair_open(&p, T0);
        gmud_slice s = send_text(&p.cli, msg, whole, sizeof whole);
        s.len = len;
        unsigned what = feed(&p.srv, s, T0, &r);
        CHECK(what & EP_REFUSED);
        CHECK(!(what & EP_DELIVER));
        CHECK(r.json == NULL);
        if (len < GMUD_SESSION_HEADER_SIZE) {
            CHECK_EQ_INT(what, R | S | C);
            CHECK_EQ_INT(r.kind, EP_KIND_SESSION);
            CHECK_EQ_INT(r.why.code, GMUD_ERR_MISSING_FIELD);
            CHECK(p.srv.sess.recv_seq == 0);
            s.len = GMUD_SESSION_HEADER_SIZE + strlen(msg);
            CHECK_EQ_INT(feed_bits(&p.srv, s, T0), 0);
        } else {
            CHECK_EQ_INT(what, R | S);
            CHECK_EQ_INT(r.kind, EP_KIND_PAYLOAD);
            CHECK_EQ_INT(r.why.code, GMUD_ERR_BAD_JSON);
            CHECK(p.srv.sess.recv_seq == 1);
            CHECK_EQ_INT(feed_bits(&p.srv, send_text(&p.cli, msg, buf, sizeof buf), T0),
                         EP_DELIVER);
        }
        pair_free(&p);
    }
    /* The whole packet, on a fresh endpoint: delivered. */
    pair p;
    pair_fill(&p, "gmud", GMUD_SESSION_ON, 1);
    pair_open(&p, T0);
    CHECK_EQ_INT(feed_bits(&p.srv, send_text(&p.cli, msg, whole, sizeof whole), T0), EP_DELIVER);
    pair_free(&p);
}

/* ---- 5. The client's first packet ----------------------------------------- */

/* Any first packet that is not a welcome, in mode on and in lecture mode:
 * refused as not_welcomed (EP_KIND_SESSION), answered with a bare error
 * packet, closed; the client stays without a session, and a genuine welcome
 * afterwards is ignored. */
static void test_bad_welcomes(void)
{
    static uint8_t headed[128];
    gmud_slice with_header = forge(42, 0, "{\"session_id\": 42, \"sequence_id\": 0}", headed);
    const struct {
        const char *name;
        gmud_slice first;
        const char *why; /* in the sentence, after "not a welcome" */
    } cases[] = {
        {"not JSON", text("hello"), "not valid JSON"},
        {"empty", text(""), NULL},
        {"a JSON array", text("[42, 0]"), "not an object"},
        {"no session_id", text("{\"sequence_id\": 0}"), "no \"session_id\" field"},
        {"no sequence_id", text("{\"session_id\": 42}"), "no \"sequence_id\" field"},
        {"string id", text("{\"session_id\": \"42\", \"sequence_id\": 0}"),
         "\"session_id\" is not an integer"},
        {"real id", text("{\"session_id\": 42.0, \"sequence_id\": 0}"), "not an integer"},
        {"id 0", text("{\"session_id\": 0, \"sequence_id\": 0}"), "outside 1..2^53-1"},
        {"id 2^53", text("{\"session_id\": 9007199254740992, \"sequence_id\": 0}"),
         "outside 1..2^53-1"},
        {"negative id", text("{\"session_id\": -42, \"sequence_id\": 0}"), "negative"},
        {"negative sequence", text("{\"session_id\": 42, \"sequence_id\": -1}"),
         "\"sequence_id\" is negative (-1)"},
        {"sequence 1", text("{\"session_id\": 42, \"sequence_id\": 1}"),
         "expected sequence 0, got 1"},
        {"a mode-on header in front", with_header, NULL},
        {"an error packet with a third member",
         text("{\"error\": \"full\", \"code\": \"server_full\", \"x\": 1}"), "no \"session_id\""},
        {"error and code not strings", text("{\"error\": 1, \"code\": 2}"), "no \"session_id\""},
    };
    static const gmud_session_mode modes[] = {GMUD_SESSION_ON, GMUD_SESSION_LECTURE};
    for (size_t m = 0; m < 2; m++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int before = check_failures;
            ep_config cfg;
            endpoint ep;
            ep_result r;
            uint8_t welcome[64];
            gmud_error err;
            fill(&cfg, EP_CLIENT, "gmud", modes[m], 1);
            ready(&cfg);
            ep_init(&ep, &cfg, T0);
            CHECK_EQ_INT(feed(&ep, cases[i].first, T0, &r), R | S | C);
            CHECK_EQ_INT(r.kind, EP_KIND_SESSION);
            CHECK_EQ_INT(r.why.code, GMUD_ERR_NOT_WELCOMED);
            CHECK_CONTAINS(r.why.message, "the first packet is not a welcome");
            if (cases[i].why)
                CHECK_CONTAINS(r.why.message, cases[i].why);
            CHECK_EQ_INT(r.close, EP_CLOSE_SESSION);
            CHECK_EQ_INT(r.detail.code, GMUD_ERR_NOT_WELCOMED);
            if (has(&r, EP_SEND)) {
                CHECK_EQ_INT(r.pkt.head_len, 0);
                check_error_body(&r.pkt, 1, GMUD_ERR_NOT_WELCOMED);
            }
            CHECK(r.json == NULL);
            CHECK(ep.sess.id == 0 && ep.sess.send_seq == 0 && ep.sess.recv_seq == 0);
            CHECK(!ep_awaiting_welcome(&ep));
            ptrdiff_t n = gmud_session_lecture_welcome(42, welcome, sizeof welcome, &err);
            CHECK_EQ_INT(feed_bits(&ep, (gmud_slice){welcome, (size_t)n}, T0), 0);
            ep_config_free(&cfg);
            if (check_failures != before)
                fprintf(stderr, "  bad welcome \"%s\", mode %s\n", cases[i].name,
                        gmud_session_mode_name(modes[m]));
        }
}

/* The server's refusal in place of the welcome (an error packet, exactly
 * {"error", "code"}): reported with its code (EP_KIND_REFUSAL, closed as a
 * protocol matter), not answered. A code gmud does not know is
 * not_welcomed. */
static void test_refusals(void)
{
    static const struct {
        const char *first;
        int code;
    } cases[] = {
        {"{\"error\": \"full\", \"code\": \"server_full\"}", GMUD_ERR_SERVER_FULL},
        {"{\"error\":\"too many connections from 192.0.2.7\",\"code\":\"addr_limited\"}",
         GMUD_ERR_ADDR_LIMITED},
        {"{\"code\": \"no_such_code\", \"error\": \"go away\"}", GMUD_ERR_NOT_WELCOMED},
    };
    static const gmud_session_mode modes[] = {GMUD_SESSION_ON, GMUD_SESSION_LECTURE};
    for (size_t m = 0; m < 2; m++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            ep_config cfg;
            endpoint ep;
            ep_result r;
            fill(&cfg, EP_CLIENT, "gmud", modes[m], 1);
            ready(&cfg);
            ep_init(&ep, &cfg, T0);
            CHECK_EQ_INT(feed(&ep, text(cases[i].first), T0, &r), C);
            CHECK_EQ_INT(r.kind, EP_KIND_REFUSAL);
            CHECK_EQ_INT(r.close, EP_CLOSE_REFUSED);
            CHECK_EQ_INT(r.detail.code, cases[i].code);
            CHECK_CONTAINS(r.detail.message, "the server refused the connection");
            CHECK(r.json == NULL);
            CHECK(ep.sess.id == 0);
            CHECK_EQ_INT(feed_bits(&ep, text("{\"session_id\": 5, \"sequence_id\": 0}"), T0), 0);
            ep_config_free(&cfg);
        }
}

/* An end of stream after the peer's error packets: a refusal if one of
 * them closes (any code but a warning's), or if a warning was the last
 * thing before the end (the server's last rate_limited, then its close);
 * clean if something else came after a warning. Both payload types. */
static void test_end_after_errors(void)
{
    static const struct {
        const char *name;
        const char *pkts[3];
        int refused;
    } cases[] = {
        {"nothing", {"hello"}, 0},
        {"a refusal", {"error server_full: full"}, 1},
        {"a refusal, then a message", {"error server_full: full", "hello"}, 1},
        {"a warning last", {"hello", "error rate_limited: slow down"}, 1},
        {"a warning, then a message", {"error rate_limited: slow down", "hello"}, 0},
        {"rate_dropped, then a message", {"error rate_dropped: lost", "hello"}, 0},
        {"unencodable, then a message", {"error unencodable: too long", "hello"}, 0},
        {"a warning, a refusal, a message",
         {"error rate_limited: x", "error timeout: idle", "hello"}, 1},
    };
    for (int json = 0; json < 2; json++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int before = check_failures;
            ep_config cfg;
            endpoint ep;
            ep_result r;
            fill(&cfg, EP_CLIENT, "gmud", GMUD_SESSION_OFF, json);
            ready(&cfg);
            ep_init(&ep, &cfg, T0);
            for (int k = 0; k < 3 && cases[i].pkts[k] != NULL; k++) {
                char buf[128];
                const char *p = cases[i].pkts[k];
                if (json && strncmp(p, "error ", 6) == 0) { /* error CODE: TEXT */
                    const char *colon = strchr(p, ':');
                    snprintf(buf, sizeof buf, "{\"error\":\"%s\",\"code\":\"%.*s\"}", colon + 2,
                             (int)(colon - p - 6), p + 6);
                } else {
                    snprintf(buf, sizeof buf, json ? "{\"say\":\"%s\"}" : "%s", p);
                }
                unsigned what = feed(&ep, text(buf), T0, &r);
                CHECK(what & EP_DELIVER);
                json_decref(r.json);
            }
            memset(&r, 0xa5, sizeof r);
            ep_on_end(&ep, &r);
            if (cases[i].refused) {
                CHECK_EQ_INT(r.what, C);
                CHECK_EQ_INT(r.close, EP_CLOSE_REFUSED);
            } else {
                CHECK_EQ_INT(r.what, 0);
            }
            if (check_failures != before)
                fprintf(stderr, "  end after \"%s\", %s\n", cases[i].name, json ? "json" : "text");
            ep_config_free(&cfg);
        }
}

/* Welcomes in another spelling are welcomes: any spacing, any member order,
 * other members, and under fixed:N the zero padding; the session starts with
 * each mode's counters. */
static void test_good_welcomes(void)
{
    static const struct {
        const char *framing;
        const char *first;
        uint64_t id;
    } cases[] = {
        {"gmud", "{\"session_id\": 42, \"sequence_id\": 0}", 42},
        {"gmud", "{\"sequence_id\":0,\"x\":[1],\"session_id\":9007199254740991}",
         GMUD_SESSION_ID_MAX},
        {"length", " { \"session_id\" : 1 , \"sequence_id\" : 0 } ", 1},
        {"fixed:100", "{\"session_id\": 1311768467750121, \"sequence_id\": 0}",
         UINT64_C(1311768467750121)},
        {"fixed:50", "{\"session_id\": 1311768467750121, \"sequence_id\": 0}",
         UINT64_C(1311768467750121)},
    };
    static const gmud_session_mode modes[] = {GMUD_SESSION_ON, GMUD_SESSION_LECTURE};
    for (size_t m = 0; m < 2; m++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            ep_config cfg;
            endpoint ep;
            ep_result r;
            uint8_t frame[128] = {0};
            size_t len = strlen(cases[i].first);
            memcpy(frame, cases[i].first, len);
            fill(&cfg, EP_CLIENT, cases[i].framing, modes[m], 0);
            if (modes[m] == GMUD_SESSION_LECTURE && strcmp(cases[i].framing, "fixed:50") == 0)
                continue; /* a lecture client's replies need 98 bytes */
            ready(&cfg);
            ep_init(&ep, &cfg, T0);
            if (cfg.frame.framing == GMUD_FRAMING_FIXED)
                len = cfg.frame.fixed_size; /* padding and all */
            CHECK_EQ_INT(feed(&ep, (gmud_slice){frame, len}, T0, &r), W);
            CHECK(ep.sess.id == cases[i].id);
            CHECK_EQ_INT(ep.sess.send_seq, modes[m] == GMUD_SESSION_ON ? 0 : 1);
            CHECK_EQ_INT(ep.sess.recv_seq, 1);
            ep_config_free(&cfg);
        }
}

/* ---- 6. The welcome timeout ----------------------------------------------- */

/* A client in a session mode without its welcome closes at init +
 * welcome_timeout_ms, not a millisecond before (EP_KIND_TIMEOUT,
 * not_welcomed); a welcomed client, a server and a client in mode off never
 * time out, nor does one whose timeout is GMUD_OFF. */
/* A client in mode whose welcome is due: cfg readied, ep begun at T0. */
static void awaiting(ep_config *cfg, endpoint *ep, gmud_session_mode mode)
{
    fill(cfg, EP_CLIENT, "gmud", mode, 1);
    ready(cfg);
    ep_init(ep, cfg, T0);
}

static void test_welcome_timeout(void)
{
    static const struct {
        uint64_t at; /* ms after init */
        unsigned what;
    } ticks[] = {{0, 0}, {1, 0}, {999, 0}, {1000, C}, {1001, 0}, {5000, 0}};
    static const gmud_session_mode modes[] = {GMUD_SESSION_ON, GMUD_SESSION_LECTURE};
    for (size_t m = 0; m < 2; m++) {
        ep_config cfg;
        endpoint ep;
        ep_result r;
        awaiting(&cfg, &ep, modes[m]);
        for (size_t i = 0; i < sizeof ticks / sizeof ticks[0]; i++) {
            memset(&r, 0xa5, sizeof r);
            ep_on_tick(&ep, T0 + ticks[i].at, &r);
            CHECK_EQ_INT(r.what, ticks[i].what);
            CHECK(r.json == NULL);
            if (r.what == C) {
                CHECK_EQ_INT(r.kind, EP_KIND_TIMEOUT);
                CHECK_EQ_INT(r.close, EP_CLOSE_SESSION);
                CHECK_EQ_INT(r.detail.code, GMUD_ERR_NOT_WELCOMED);
                CHECK_CONTAINS(r.detail.message, "no welcome within 1000 ms");
            }
        }
        /* Timed out: a late welcome is ignored too. */
        CHECK_EQ_INT(feed_bits(&ep, text("{\"session_id\": 5, \"sequence_id\": 0}"), T0 + 5000),
                     0);
        ep_config_free(&cfg);
    }

    /* Welcomed in time: never. */
    pair p;
    pair_fill(&p, "gmud", GMUD_SESSION_ON, 1);
    pair_open(&p, T0);
    ep_result r;
    ep_on_tick(&p.cli, T0 + 1000, &r);
    CHECK_EQ_INT(r.what, 0);
    ep_on_tick(&p.cli, T0 + 1000000000, &r);
    CHECK_EQ_INT(r.what, 0);
    /* A server: never (it sends the welcome). */
    ep_on_tick(&p.srv, T0 + 1000000000, &r);
    CHECK_EQ_INT(r.what, 0);
    pair_free(&p);

    /* Mode off, and a timeout of GMUD_OFF: never. */
    static const struct {
        gmud_session_mode mode;
        uint32_t timeout;
    } nevers[] = {{GMUD_SESSION_OFF, 1000}, {GMUD_SESSION_ON, GMUD_OFF},
                  {GMUD_SESSION_LECTURE, GMUD_OFF}};
    for (size_t i = 0; i < sizeof nevers / sizeof nevers[0]; i++) {
        ep_config cfg;
        endpoint ep;
        fill(&cfg, EP_CLIENT, "gmud", nevers[i].mode, 1);
        cfg.welcome_timeout_ms = nevers[i].timeout;
        ready(&cfg);
        ep_init(&ep, &cfg, T0);
        ep_on_tick(&ep, T0 + 1000, &r);
        CHECK_EQ_INT(r.what, 0);
        ep_on_tick(&ep, UINT64_MAX - 1, &r);
        CHECK_EQ_INT(r.what, 0);
        ep_config_free(&cfg);
    }
}

/* The peer's end of stream: for a client awaiting its welcome, the server
 * went away without one, a close (not_welcomed, EP_KIND_UNWELCOMED) and no
 * error packet; for everyone else an ordinary end with nothing to decide. */
static void test_end_before_welcome(void)
{
    static const gmud_session_mode modes[] = {GMUD_SESSION_ON, GMUD_SESSION_LECTURE};
    for (size_t m = 0; m < 2; m++) {
        ep_config cfg;
        endpoint ep;
        ep_result r;
        awaiting(&cfg, &ep, modes[m]);
        memset(&r, 0xa5, sizeof r);
        ep_on_end(&ep, &r);
        CHECK_EQ_INT(r.what, C);
        CHECK_EQ_INT(r.kind, EP_KIND_UNWELCOMED);
        CHECK_EQ_INT(r.close, EP_CLOSE_SESSION);
        CHECK_EQ_INT(r.detail.code, GMUD_ERR_NOT_WELCOMED);
        CHECK_CONTAINS(r.detail.message, "closed the connection before its welcome");
        ep_config_free(&cfg);
    }
    pair p;
    ep_result r;
    pair_fill(&p, "gmud", GMUD_SESSION_ON, 1);
    pair_open(&p, T0);
    ep_on_end(&p.cli, &r);
    CHECK_EQ_INT(r.what, 0);
    ep_on_end(&p.srv, &r);
    CHECK_EQ_INT(r.what, 0);
    pair_free(&p);
    ep_config cfg;
    endpoint ep;
    fill(&cfg, EP_CLIENT, "gmud", GMUD_SESSION_OFF, 1);
    ready(&cfg);
    ep_init(&ep, &cfg, T0);
    ep_on_end(&ep, &r);
    CHECK_EQ_INT(r.what, 0);
    ep_config_free(&cfg);
}

/* ---- 7. Lecture mode ------------------------------------------------------ */

/* The server's next data packet through the client, which must answer it
 * (EP_SEND) and deliver it (EP_DELIVER): the reply's bytes, committed. */
static gmud_slice lecture_round(pair *p, const char *data, uint8_t *buf, size_t cap)
{
    uint8_t pk[256];
    ep_result r;
    gmud_slice d = send_text(&p->srv, data, pk, sizeof pk);
    CHECK_EQ_INT(feed(&p->cli, d, T0, &r), S | D);
    json_decref(r.json);
    if (has(&r, EP_DELIVER))
        CHECK_MEM(r.msg.data, r.msg.len, data, strlen(data));
    if (!(r.what & S))
        return (gmud_slice){buf, 0};
    CHECK_EQ_INT(r.pkt.head_len, 0);
    gmud_slice reply = flat(&p->cli, &r.pkt, buf, cap);
    ep_send_commit(&p->cli, &r.pkt);
    return reply;
}

/* A lecture pair: a JSON server and a client of client_json. */
static void lecture_open(pair *p, int client_json, const char *reply_data, int carry_on)
{
    pair_fill(p, "gmud", GMUD_SESSION_LECTURE, 1);
    p->ccfg.json = client_json;
    p->ccfg.reply_data = reply_data;
    p->scfg.carry_on = carry_on;
    p->scfg.json_limits.require_object = 0; /* see test_lecture_not_object */
    pair_open(p, T0);
}

/* The exchange: the server's data packets pass unchanged and are counted;
 * the client answers each with exactly the reply gmud_session_lecture_reply
 * writes for the packets it has had (1, 2, ...) and its reply data; the
 * server takes each reply (EP_DELIVER, whole, parsed). */
static void test_lecture_exchange(void)
{
    static const struct {
        int client_json;
        const char *reply_data;
    } cases[] = {{0, NULL}, {1, NULL}, {0, "x"}, {1, "q\"b\\ \xc3\xa9"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pair p;
        lecture_open(&p, cases[i].client_json, cases[i].reply_data, 0);
        CHECK(p.srv.sess.send_seq == 1 && p.srv.sess.recv_seq == 1);
        CHECK(p.cli.sess.send_seq == 1 && p.cli.sess.recv_seq == 1);
        const char *data = cases[i].reply_data ? cases[i].reply_data : GMUD_SESSION_LECTURE_DATA;
        for (uint64_t k = 1; k <= 4; k++) {
            char msg[32];
            uint8_t buf[256], want[256];
            gmud_error err;
            ep_result r;
            snprintf(msg, sizeof msg, "{\"time\":%d}", (int)k);
            gmud_slice reply = lecture_round(&p, msg, buf, sizeof buf);
            CHECK(p.srv.sess.send_seq == k + 1);
            CHECK(p.cli.sess.send_seq == k + 1);
            ptrdiff_t n = gmud_session_lecture_reply(p.id, k, data, strlen(data), want,
                                                     sizeof want, &err);
            CHECK_MEM(reply.data, reply.len, want, n);
            CHECK_EQ_INT(feed(&p.srv, reply, T0, &r), D);
            if (has(&r, EP_DELIVER))
                CHECK_MEM(r.msg.data, r.msg.len, want, n);
            CHECK(r.json != NULL);
            CHECK_EQ_INT(json_integer_value(json_object_get(r.json, "sequence_id")), k);
            json_decref(r.json);
            CHECK(p.srv.sess.recv_seq == k + 1);
        }
        pair_free(&p);
    }
}

/* The replies a lecture server refuses, once it has sent data packets 1 and
 * 2 and accepted the replies up to `accepted`: a session violation
 * (EP_KIND_SESSION) answered with a bare error packet and closed; with
 * carry_on, only reported: no error packet, no close, and the server moves
 * on to the next reply number, so that the reply to its next packet is
 * taken. */
static void test_lecture_refusals(void)
{
    static const struct {
        const char *name;
        int accepted;       /* replies taken before the bad one */
        int id_delta;       /* a reply with id + id_delta and sequence seq, */
        uint64_t seq;
        const char *bytes;  /* or these bytes */
        int code;
        const char *why;
        int next_taken;     /* carry_on: the genuine reply to packet 3 is taken */
    } cases[] = {
        {"another session", 1, 1, 2, NULL, GMUD_ERR_BAD_SESSION, "wrong session", 1},
        {"replayed", 1, 0, 1, NULL, GMUD_ERR_REPLAYED, "expected sequence 2, got 1", 1},
        {"skipped", 1, 0, 3, NULL, GMUD_ERR_SKIPPED, "expected sequence 2, got 3", 1},
        /* Carrying on, every refused reply takes a reply number, as in the
         * lecture's loop (PROTOCOL.md 6.5: "as if the reply had been
         * valid"), even one that stands for no packet: an extra reply, once
         * all were taken, or one beyond the packets sent. The server then
         * expects reply 4, so the genuine reply to packet 3 is refused as
         * replayed, and so is every later one (reported as surprising). */
        {"replayed, all taken", 2, 0, 2, NULL, GMUD_ERR_REPLAYED, "expected sequence 3, got 2",
         0},
        {"beyond the packets sent", 2, 0, 3, NULL, GMUD_ERR_SKIPPED,
         "reply 3, but only 2 data packets were sent", 0},
        {"not an object", 1, 0, 0, "[1311768467750121, 2]", GMUD_ERR_NOT_OBJECT, "not an object",
         1},
        {"no session_id", 1, 0, 0, "{\"sequence_id\": 2, \"data\": \"x\"}",
         GMUD_ERR_MISSING_FIELD, "no \"session_id\" field", 1},
        {"no sequence_id", 1, 0, 0, "{\"session_id\": 5}", GMUD_ERR_MISSING_FIELD,
         "no \"sequence_id\" field", 1},
        {"string sequence", 1, 0, 0, "{\"session_id\": 5, \"sequence_id\": \"2\"}",
         GMUD_ERR_BAD_FIELD, "not an integer", 1},
        {"negative sequence", 1, 0, 0, "{\"session_id\": 5, \"sequence_id\": -1}",
         GMUD_ERR_BAD_FIELD, "negative", 1},
    };
    for (int carry_on = 0; carry_on < 2; carry_on++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int before = check_failures;
            pair p;
            uint8_t r1[256], r2[256], r3[256], bad[256];
            ep_result r;
            gmud_error err;
            lecture_open(&p, 0, "x", carry_on);
            gmud_slice reply1 = lecture_round(&p, "{\"time\":1}", r1, sizeof r1);
            gmud_slice reply2 = lecture_round(&p, "{\"time\":2}", r2, sizeof r2);
            CHECK_EQ_INT(feed_bits(&p.srv, reply1, T0), D);
            if (cases[i].accepted == 2)
                CHECK_EQ_INT(feed_bits(&p.srv, reply2, T0), D);
            gmud_slice b;
            if (cases[i].bytes) {
                b = text(cases[i].bytes);
            } else {
                ptrdiff_t n = gmud_session_lecture_reply(p.id + (uint64_t)cases[i].id_delta,
                                                         cases[i].seq, "x", 1, bad, sizeof bad,
                                                         &err);
                b = (gmud_slice){bad, n > 0 ? (size_t)n : 0};
            }
            uint64_t want = p.srv.sess.recv_seq, sent = p.srv.sess.send_seq;
            unsigned what = feed(&p.srv, b, T0, &r);
            CHECK_EQ_INT(what, carry_on ? R : R | S | C);
            CHECK_EQ_INT(r.kind, EP_KIND_SESSION);
            CHECK_EQ_INT(r.why.code, cases[i].code);
            CHECK_CONTAINS(r.why.message, cases[i].why);
            CHECK(r.json == NULL);
            CHECK(p.srv.sess.send_seq == sent);
            if (!carry_on) {
                CHECK_EQ_INT(r.close, EP_CLOSE_SESSION);
                CHECK_EQ_INT(r.detail.code, cases[i].code);
                if (has(&r, EP_SEND)) {
                    CHECK_EQ_INT(r.pkt.head_len, 0); /* a lecture server adds nothing */
                    check_error_body(&r.pkt, 1, cases[i].code);
                }
                CHECK(p.srv.sess.recv_seq == want);
                CHECK_EQ_INT(feed_bits(&p.srv, reply2, T0), 0);
            } else {
                CHECK(p.srv.sess.recv_seq == want + 1);
                gmud_slice reply3 = lecture_round(&p, "{\"time\":3}", r3, sizeof r3);
                what = feed(&p.srv, reply3, T0, &r);
                json_decref(r.json);
                if (cases[i].next_taken) {
                    CHECK_EQ_INT(what, D);
                } else {
                    CHECK_EQ_INT(what, R);
                    CHECK_EQ_INT(r.why.code, GMUD_ERR_REPLAYED);
                }
            }
            pair_free(&p);
            if (check_failures != before)
                fprintf(stderr, "  lecture refusal \"%s\", carry_on %d\n", cases[i].name,
                        carry_on);
        }
}

/* Found here: PROTOCOL.md 5 and 6.5 make a reply that is JSON but not an
 * object a session error in lecture mode (not_object: error packet and
 * close). With the JSON limits the runtime passes (the default,
 * require_object on) the engine's parse refused it first, as a bad payload
 * (EP_KIND_PAYLOAD), and the connection stayed open. */
static void test_lecture_not_object(void)
{
    pair p;
    uint8_t r1[256];
    ep_result r;
    pair_fill(&p, "gmud", GMUD_SESSION_LECTURE, 1);
    p.ccfg.json = 0;
    pair_open(&p, T0); /* default limits: require_object = 1 */
    lecture_round(&p, "{\"time\":1}", r1, sizeof r1);
    CHECK_EQ_INT(feed(&p.srv, text("[1311768467750121, 1]"), T0, &r), R | S | C);
    CHECK_EQ_INT(r.kind, EP_KIND_SESSION);
    CHECK_EQ_INT(r.why.code, GMUD_ERR_NOT_OBJECT);
    CHECK_EQ_INT(r.close, EP_CLOSE_SESSION);
    json_decref(r.json);
    pair_free(&p);
}

/* Found here: a lecture client answers every data packet (PROTOCOL.md 6.4:
 * its sequence counts the data packets received). With JSON payloads, a
 * data packet that did not parse was refused as a bad payload and not
 * answered, so the server (which counted it) waited for a reply that never
 * came, and the client's later replies were one behind. */
static void test_lecture_client_bad_json(void)
{
    pair p;
    uint8_t pk[64], buf[256], want[256];
    ep_result r;
    gmud_error err;
    lecture_open(&p, 1, "x", 0);
    unsigned what = feed(&p.cli, send_text(&p.srv, "not json", pk, sizeof pk), T0, &r);
    CHECK(what & EP_REFUSED);
    CHECK_EQ_INT(r.kind, EP_KIND_PAYLOAD);
    CHECK(what & EP_SEND); /* the reply to packet 1 */
    if (what & EP_SEND)
        ep_send_commit(&p.cli, &r.pkt);
    json_decref(r.json);
    gmud_slice reply = lecture_round(&p, "{\"time\":2}", buf, sizeof buf);
    ptrdiff_t n = gmud_session_lecture_reply(p.id, 2, "x", 1, want, sizeof want, &err);
    CHECK_MEM(reply.data, reply.len, want, n);
    pair_free(&p);
}

/* What a lecture client may not do: send (it only replies:
 * GMUD_ERR_INVALID), or write an error packet once welcomed (the server
 * would read it as a bad reply); before the welcome its error packet is
 * bare. A framing error on a welcomed lecture client is therefore refused
 * and closed without one. */
static void test_lecture_client_limits(void)
{
    pair p;
    ep_packet pkt;
    ep_result r;
    gmud_error err = {0};
    ep_config cfg;
    endpoint fresh;
    fill(&cfg, EP_CLIENT, "gmud", GMUD_SESSION_LECTURE, 1);
    ready(&cfg);
    ep_init(&fresh, &cfg, T0);
    CHECK_EQ_INT(ep_error_packet(&fresh, "bad_json", "before the welcome", &pkt, &err), 0);
    CHECK_EQ_INT(pkt.head_len, 0);
    check_error_body(&pkt, 1, GMUD_ERR_BAD_JSON);
    ep_config_free(&cfg);

    lecture_open(&p, 1, NULL, 0);
    CHECK_EQ_INT(ep_send_begin(&p.cli, "{}", 2, &pkt, &err), GMUD_ERR_INVALID);
    CHECK_CONTAINS(err.message, "only replies");
    CHECK_EQ_INT(ep_error_packet(&p.cli, "bad_json", "x", &pkt, &err), GMUD_ERR_INVALID);
    CHECK(p.cli.sess.send_seq == 1);
    gmud_error fe;
    gmud_error_set(&fe, GMUD_ERR_BAD_LABEL, 0, "bad packet label");
    memset(&r, 0xa5, sizeof r);
    ep_on_framing_error(&p.cli, &fe, &r);
    CHECK_EQ_INT(r.what, R | C);
    CHECK_EQ_INT(r.kind, EP_KIND_FRAMING);
    CHECK_EQ_INT(r.close, EP_CLOSE_PROTOCOL);
    pair_free(&p);
}

/* Found here: a lecture client with no sequence left to reply with closed
 * (seq_exhausted) without saying what kind of close it is: ep_result.kind
 * was left as it was, though endpoint.h has it set with every EP_CLOSE
 * (the runtime reads it to choose a hard or a soft close). */
static void test_lecture_client_exhausted(void)
{
    pair p;
    uint8_t pk[64];
    ep_result r;
    lecture_open(&p, 0, NULL, 0);
    p.cli.sess.send_seq = GMUD_SEQ_EXHAUSTED;
    unsigned what = feed(&p.cli, send_text(&p.srv, "{\"time\":1}", pk, sizeof pk), T0, &r);
    CHECK(what & EP_CLOSE);
    CHECK(!(what & EP_SEND));
    CHECK_EQ_INT(r.close, EP_CLOSE_SESSION);
    CHECK_EQ_INT(r.detail.code, GMUD_ERR_SEQ_EXHAUSTED);
    CHECK_EQ_INT(r.kind, EP_KIND_SESSION);
    json_decref(r.json);
    pair_free(&p);
}

/* ---- 8. Rates -------------------------------------------------------------- */

/* One step of a rate scenario: n messages of len bytes at T0 + t, each
 * answered with what (and warned, for a refusal). */
typedef struct rate_step {
    uint64_t t;
    int n;
    size_t len;
    unsigned what;
    int warned;
} rate_step;

/* Runs steps against a fresh mode-off text server with the given rates,
 * dropping what they cannot pay for (rate_drop). */
static void rate_run(const char *name, uint32_t msg_rate, uint32_t msg_burst, uint32_t byte_rate,
                     uint32_t byte_burst, const rate_step *steps, size_t nsteps)
{
    ep_config cfg;
    endpoint ep;
    static uint8_t data[1024];
    memset(data, 'm', sizeof data);
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_OFF, 0);
    cfg.msg_rate = msg_rate;
    cfg.msg_burst = msg_burst;
    cfg.byte_rate = byte_rate;
    cfg.byte_burst = byte_burst;
    cfg.rate_close_ms = 1000;
    cfg.rate_drop = 1;
    ready(&cfg);
    ep_init(&ep, &cfg, T0);
    for (size_t i = 0; i < nsteps; i++)
        for (int k = 0; k < steps[i].n; k++) {
            int before = check_failures;
            ep_result r;
            unsigned what = feed(&ep, (gmud_slice){data, steps[i].len}, T0 + steps[i].t, &r);
            CHECK_EQ_INT(what, steps[i].what);
            if (what & EP_DELIVER)
                CHECK_EQ_INT(r.msg.len, steps[i].len);
            if (what & EP_REFUSED) {
                CHECK_EQ_INT(r.kind, EP_KIND_RATE);
                CHECK_EQ_INT(r.why.code, GMUD_ERR_RATE_DROPPED);
                CHECK_CONTAINS(r.why.message, "over the rate limit");
                CHECK_EQ_INT(r.warned, steps[i].warned);
            }
            if (what & EP_SEND) {
                CHECK_EQ_INT(r.pkt.head_len, 0);
                /* The warnings say messages are lost; the close, why. */
                check_error_body(&r.pkt, 0,
                                 what & EP_CLOSE ? GMUD_ERR_RATE_LIMITED : GMUD_ERR_RATE_DROPPED);
            }
            if (what & EP_CLOSE) {
                CHECK_EQ_INT(r.close, EP_CLOSE_RATE_LIMITED);
                CHECK_EQ_INT(r.detail.code, GMUD_ERR_RATE_LIMITED);
                CHECK_CONTAINS(r.detail.message, "over the rate limit for 1000 ms");
                /* The close is told in the warning's place. */
                char body[1200];
                body_text(&r.pkt, body, sizeof body);
                CHECK_CONTAINS(body, "over the rate limit for 1000 ms");
            }
            if (check_failures != before)
                fprintf(stderr, "  rates \"%s\": step %zu, message %d\n", name, i, k);
        }
    ep_config_free(&cfg);
}

/* 10 messages a second, a burst of 5: five at once, then one a 100 ms; the
 * first refusal warns (and not again within a second); refusals less than a
 * second apart for a second close, with the warning then due. */
static void test_rate_messages(void)
{
    static const rate_step steps[] = {
        {0, 5, 1, D, 0},
        {0, 1, 1, R | S | T, 1},
        {0, 2, 1, R | T, 0},
        {50, 1, 1, R | T, 0},       /* half a token */
        {100, 1, 1, D, 0},          /* one token a 100 ms */
        {100, 1, 1, R | T, 0},
        {300, 2, 1, D, 0},
        {300, 1, 1, R | T, 0},
        {800, 5, 1, D, 0},          /* full again, never more than the burst */
        {800, 1, 1, R | T, 0},
        {1000, 2, 1, D, 0},
        {1000, 1, 1, R | S | T | C, 0}, /* a second over the limit: the close's packet */
        {1000, 1, 1, 0, 0},
        {5000, 1, 1, 0, 0},
    };
    rate_run("messages", 10, 5, 0, 0, steps, sizeof steps / sizeof steps[0]);
}

/* A refusal a second or more after the last one starts a new stretch (and
 * may warn again); messages let through in between do not end one. */
static void test_rate_stretches(void)
{
    static const rate_step steps[] = {
        {0, 1, 1, D, 0},
        {0, 1, 1, R | S | T, 1},
        {1500, 1, 1, D, 0},
        {1500, 1, 1, R | S | T, 1}, /* quiet for 1.5 s: a new stretch, a new warning */
        {2400, 1, 1, D, 0},
        {2400, 1, 1, R | T, 0},
        {2499, 1, 1, R | T, 0},
        {2500, 1, 1, D, 0},
        {2500, 1, 1, R | S | T | C, 0}, /* 1000 ms since 1500 */
    };
    rate_run("stretches", 10, 1, 0, 0, steps, sizeof steps / sizeof steps[0]);
}

/* 100 bytes a second, a burst of 50: a message costs its length; one longer
 * than the burst is never let through. */
static void test_rate_bytes(void)
{
    static const rate_step steps[] = {
        {0, 2, 20, D, 0},
        {0, 1, 20, R | S | T, 1},   /* 10 left */
        {0, 1, 10, D, 0},
        {0, 1, 1, R | T, 0},
        {0, 1, 0, D, 0},            /* an empty message costs nothing */
        {100, 1, 10, D, 0},         /* a byte a 10 ms */
        {100, 1, 1, R | T, 0},
        {600, 1, 51, R | T, 0},     /* over the burst, with the bucket full */
        {600, 1, 50, D, 0},
    };
    rate_run("bytes", 0, 0, 100, 50, steps, sizeof steps / sizeof steps[0]);
    /* Both buckets: a message either pays both or neither. */
    static const rate_step both[] = {
        {0, 1, 60, R | S | T, 1},   /* over the byte burst: no message token taken */
        {0, 5, 10, D, 0},           /* so all five message tokens are there */
        {0, 1, 0, R | T, 0},        /* and now none */
    };
    rate_run("both", 10, 5, 100, 50, both, sizeof both / sizeof both[0]);
}

/* Mode on: the byte cost is the data after the header; a packet the
 * buckets refuse has spent its sequence (the client's next one is
 * taken), and the warning carries the server's header. */
static void test_rate_mode_on(void)
{
    pair p;
    uint8_t buf[128];
    ep_result r;
    char twenty[21];
    memset(twenty, 't', 20);
    twenty[20] = '\0';
    pair_fill(&p, "gmud", GMUD_SESSION_ON, 0);
    p.scfg.byte_rate = 100;
    p.scfg.byte_burst = 20;
    p.scfg.rate_drop = 1;
    pair_open(&p, T0);
    CHECK_EQ_INT(feed_bits(&p.srv, send_text(&p.cli, twenty, buf, sizeof buf), T0), D);
    CHECK_EQ_INT(feed(&p.srv, send_text(&p.cli, "x", buf, sizeof buf), T0, &r), R | S | T);
    CHECK_EQ_INT(r.kind, EP_KIND_RATE);
    CHECK(p.srv.sess.recv_seq == 2);
    if (has(&r, EP_SEND)) {
        check_head(&r.pkt, p.id, 1);
        check_error_body(&r.pkt, 0, GMUD_ERR_RATE_DROPPED);
        gmud_slice warn = flat(&p.srv, &r.pkt, buf, sizeof buf);
        ep_send_commit(&p.srv, &r.pkt);
        CHECK_EQ_INT(feed_bits(&p.cli, warn, T0), D | EP_PEER_ERROR); /* the peer's warning */
    }
    CHECK_EQ_INT(feed_bits(&p.srv, send_text(&p.cli, "y", buf, sizeof buf), T0 + 10), D);
    pair_free(&p);
}

/* Lecture mode: no rates, on either side, however tight. */
static void test_rate_lecture(void)
{
    pair p;
    pair_fill(&p, "gmud", GMUD_SESSION_LECTURE, 1);
    p.ccfg.json = 0;
    p.scfg.msg_rate = p.ccfg.msg_rate = 1;
    p.scfg.msg_burst = p.ccfg.msg_burst = 1;
    p.scfg.byte_rate = p.ccfg.byte_rate = 1;
    p.scfg.byte_burst = p.ccfg.byte_burst = 1;
    pair_open(&p, T0);
    for (int k = 0; k < 5; k++) {
        uint8_t buf[256];
        gmud_slice reply = lecture_round(&p, "{\"time\":0}", buf, sizeof buf);
        CHECK_EQ_INT(feed_bits(&p.srv, reply, T0), D);
    }
    pair_free(&p);
}

/* ---- 8b. Shaping: held, not dropped (rate_drop 0, the default) ------------ */

/* One step of a shaping scenario: n messages of len bytes at T0 + t, each
 * answered with what; wait is a hold's wait_ms. A held message consumed
 * nothing: the runtime presents it again, as a later step does here. */
typedef struct shape_step {
    uint64_t t;
    int n;
    size_t len;
    unsigned what;
    uint64_t wait;
} shape_step;

static void shape_run(const char *name, uint32_t msg_rate, uint32_t msg_burst, uint32_t byte_rate,
                      uint32_t byte_burst, const shape_step *steps, size_t nsteps)
{
    ep_config cfg;
    endpoint ep;
    static uint8_t data[64];
    memset(data, 'm', sizeof data);
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_OFF, 0);
    cfg.frame.max_message = 50; /* each message fits the byte burst */
    cfg.msg_rate = msg_rate;
    cfg.msg_burst = msg_burst;
    cfg.byte_rate = byte_rate;
    cfg.byte_burst = byte_burst;
    cfg.rate_close_ms = 1000;
    ready(&cfg);
    CHECK_CONTAINS(cfg.rate_error.message, "slowed down, nothing dropped");
    ep_init(&ep, &cfg, T0);
    for (size_t i = 0; i < nsteps; i++)
        for (int k = 0; k < steps[i].n; k++) {
            int before = check_failures;
            ep_result r;
            unsigned what = feed(&ep, (gmud_slice){data, steps[i].len}, T0 + steps[i].t, &r);
            CHECK_EQ_INT(what, steps[i].what);
            if (what & EP_DELIVER)
                CHECK_EQ_INT(r.msg.len, steps[i].len);
            if (what & EP_CLOSE)
                CHECK_CONTAINS(r.detail.message, "over the rate limit for 1000 ms");
            if (what & EP_HOLD) {
                CHECK_EQ_INT(r.kind, EP_KIND_RATE);
                CHECK_EQ_INT(r.wait_ms, steps[i].wait);
                CHECK_EQ_INT(r.warned, (what & EP_SEND) != 0);
            }
            if (what & EP_SEND) {
                char body[1200];
                check_error_body(&r.pkt, 0, GMUD_ERR_RATE_LIMITED);
                body_text(&r.pkt, body, sizeof body);
                /* Cut to the 50-byte frame: the start of what it says. */
                const char *said = what & EP_CLOSE ? r.detail.message : cfg.rate_error.message;
                size_t head = strlen("error rate_limited: ");
                CHECK(strlen(body) > head && strncmp(body + head, said, strlen(body) - head) == 0);
            }
            if (what & EP_CLOSE) {
                CHECK_EQ_INT(r.close, EP_CLOSE_RATE_LIMITED);
                CHECK_EQ_INT(r.detail.code, GMUD_ERR_RATE_LIMITED);
            }
            if (check_failures != before)
                fprintf(stderr, "  shaping \"%s\": step %zu, message %d\n", name, i, k);
        }
    ep_config_free(&cfg);
}

/* 10 messages a second, a burst of 5: the sixth waits until its token is
 * there (the first hold warns, the next not within a second), and passes
 * when presented then; held without a break for a second, it closes, the
 * close's own packet sent. */
static void test_shape_messages(void)
{
    static const shape_step steps[] = {
        {0, 5, 1, D, 0},
        {0, 1, 1, H | S, 100},
        {0, 1, 1, H, 100},          /* the same message again, too early */
        {60, 1, 1, H, 40},
        {100, 1, 1, D, 0},          /* its token has come */
        {100, 1, 1, H, 100},
        {199, 1, 1, H, 1},
        {200, 1, 1, D, 0},
        {200, 1, 1, H, 100},
        {300, 1, 1, D, 0}, {300, 1, 1, H, 100},
        {500, 2, 1, D, 0}, {500, 1, 1, H, 100},
        {900, 4, 1, D, 0}, {900, 1, 1, H, 100},
        {1000, 1, 1, D, 0},
        {1000, 1, 1, S | C, 0},     /* a second held: closed */
        {1000, 1, 1, 0, 0},
        {5000, 1, 1, 0, 0},
    };
    shape_run("messages", 10, 5, 0, 0, steps, sizeof steps / sizeof steps[0]);
    /* Quiet for a second or more: a new stretch, and a new warning. */
    static const shape_step stretches[] = {
        {0, 1, 1, D, 0},
        {0, 1, 1, H | S, 100},
        {100, 1, 1, D, 0},
        {1500, 1, 1, D, 0},
        {1500, 1, 1, H | S, 100},
        {1600, 1, 1, D, 0},
    };
    shape_run("stretches", 10, 1, 0, 0, stretches, sizeof stretches / sizeof stretches[0]);
}

/* 100 bytes a second, a burst of 50: a message waits until its bytes are
 * there; with both buckets, until both can pay (the longer wait). */
static void test_shape_bytes(void)
{
    static const shape_step steps[] = {
        {0, 2, 20, D, 0},
        {0, 1, 20, H | S, 100},     /* 10 there, 10 more in 100 ms */
        {100, 1, 20, D, 0},
        {100, 1, 50, H, 500},       /* the whole burst: from empty */
        {599, 1, 50, H, 1},
        {600, 1, 50, D, 0},
        {600, 1, 0, D, 0},          /* an empty message costs nothing */
    };
    shape_run("bytes", 0, 0, 100, 50, steps, sizeof steps / sizeof steps[0]);
    static const shape_step both[] = {
        {0, 5, 10, D, 0},           /* both buckets empty */
        {0, 1, 10, H | S, 100},     /* a token in 100 ms, 10 bytes in 100 ms */
        {0, 1, 30, H, 300},         /* a token in 100 ms, 30 bytes in 300 */
        {300, 1, 30, D, 0},
    };
    shape_run("both", 10, 5, 100, 50, both, sizeof both / sizeof both[0]);
}

/* Shaping needs every message to fit the byte burst, or one could wait
 * for ever: a burst under the largest payload is refused, naming both;
 * dropping, or the lecture's mode (no rates), takes it. */
static void test_shape_config(void)
{
    ep_config cfg;
    gmud_error err = {0};
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_ON, 0);
    cfg.byte_rate = 1000;
    cfg.byte_burst = 1000;
    CHECK_EQ_INT(ep_config_ready(&cfg, &err), GMUD_ERR_INVALID);
    CHECK_CONTAINS(err.message, "byte burst 1000 is under the largest message (65519 bytes)");
    cfg.rate_drop = 1;
    ready(&cfg);
    ep_config_free(&cfg);
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_ON, 0);
    cfg.byte_rate = 1000;
    cfg.byte_burst = 65519; /* exactly the largest payload beside the header */
    ready(&cfg);
    ep_config_free(&cfg);
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_LECTURE, 1);
    cfg.byte_rate = 1000;
    cfg.byte_burst = 1000;
    ready(&cfg);
    ep_config_free(&cfg);
}

/* Mode on: a held packet has not been through the session check, so it
 * spends no sequence; presented again it is the next packet still. One
 * whose header is wrong is held like any other and refused, as a session
 * violation, only once the rates let it through. */
static void test_shape_mode_on(void)
{
    pair p;
    uint8_t buf[128], keep[128];
    ep_result r;
    pair_fill(&p, "gmud", GMUD_SESSION_ON, 0);
    p.scfg.msg_rate = 10;
    p.scfg.msg_burst = 1;
    pair_open(&p, T0);
    uint64_t seq = p.srv.sess.recv_seq;
    CHECK_EQ_INT(feed_bits(&p.srv, send_text(&p.cli, "a", buf, sizeof buf), T0), D);
    gmud_slice b = send_text(&p.cli, "b", buf, sizeof buf);
    memcpy(keep, b.data, b.len);
    b.data = keep;
    CHECK_EQ_INT(feed(&p.srv, b, T0, &r), H | S);
    CHECK(p.srv.sess.recv_seq == seq + 1);
    if (has(&r, EP_SEND)) {
        check_head(&r.pkt, p.id, 1); /* the warning: the server's next packet */
        ep_send_commit(&p.srv, &r.pkt);
    }
    CHECK_EQ_INT(feed_bits(&p.srv, b, T0 + 50), H);
    CHECK(p.srv.sess.recv_seq == seq + 1);
    CHECK_EQ_INT(feed(&p.srv, b, T0 + 100, &r), D);
    CHECK(p.srv.sess.recv_seq == seq + 2);
    /* The same bytes once more: a replay, held first, refused when paid. */
    CHECK_EQ_INT(feed_bits(&p.srv, b, T0 + 100), H);
    CHECK_EQ_INT(feed(&p.srv, b, T0 + 200, &r), R | S | C);
    CHECK_EQ_INT(r.kind, EP_KIND_SESSION);
    CHECK_EQ_INT(r.why.code, GMUD_ERR_REPLAYED);
    pair_free(&p);
}

/* ---- 9. Bad payloads ------------------------------------------------------ */

/* With JSON payloads each message that does not parse is refused
 * (EP_KIND_PAYLOAD) and answered with an error packet; the
 * max_bad_messages-th closes. A valid one is delivered parsed. */
static void test_bad_payloads(void)
{
    static const struct {
        const char *payload;
        unsigned what;
        int code;
    } steps[] = {
        {"{\"a\":1}", D, 0},
        {"nope", R | S, GMUD_ERR_BAD_JSON},
        {"[1]", R | S, GMUD_ERR_NOT_OBJECT},
        {"{\"a\":2}", D, 0}, /* good messages do not reset the count */
        {"\xff", R | S | C, GMUD_ERR_BAD_UTF8},
        {"{\"a\":3}", 0, 0},
    };
    ep_config cfg;
    endpoint ep;
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_OFF, 1);
    cfg.max_bad_messages = 3;
    ready(&cfg);
    ep_init(&ep, &cfg, T0);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        ep_result r;
        unsigned what = feed(&ep, text(steps[i].payload), T0, &r);
        CHECK_EQ_INT(what, steps[i].what);
        if (what & EP_DELIVER) {
            CHECK(r.json != NULL);
            if (r.json)
            CHECK_EQ_INT(json_integer_value(json_object_get(r.json, "a")), i == 0 ? 1 : 2);
            CHECK_MEM(r.msg.data, r.msg.len, steps[i].payload, strlen(steps[i].payload));
        } else {
            CHECK(r.json == NULL);
        }
        if (what & EP_REFUSED) {
            CHECK_EQ_INT(r.kind, EP_KIND_PAYLOAD);
            CHECK_EQ_INT(r.why.code, steps[i].code);
        }
        if (what & EP_SEND) {
            CHECK_EQ_INT(r.pkt.head_len, 0);
            check_error_body(&r.pkt, 1, steps[i].code);
        }
        if (what & EP_CLOSE) {
            CHECK_EQ_INT(r.close, EP_CLOSE_BAD_MESSAGES);
            CHECK_EQ_INT(r.detail.code, steps[i].code);
        }
        json_decref(r.json);
    }
    ep_config_free(&cfg);
}

/* Mode on: a packet whose header passed spends its sequence even if its
 * JSON is bad; the error packet carries the server's header, and the
 * client's next packet, with the next sequence, is taken. */
static void test_bad_payload_mode_on(void)
{
    pair p;
    uint8_t buf[256];
    ep_result r;
    pair_fill(&p, "gmud", GMUD_SESSION_ON, 1);
    pair_open(&p, T0);
    CHECK_EQ_INT(feed(&p.srv, send_text(&p.cli, "{bad", buf, sizeof buf), T0, &r), R | S);
    CHECK_EQ_INT(r.kind, EP_KIND_PAYLOAD);
    CHECK_EQ_INT(r.why.code, GMUD_ERR_BAD_JSON);
    CHECK(p.srv.sess.recv_seq == 1);
    if (has(&r, EP_SEND)) {
        check_head(&r.pkt, p.id, 1);
        check_error_body(&r.pkt, 1, GMUD_ERR_BAD_JSON);
        gmud_slice e = flat(&p.srv, &r.pkt, buf, sizeof buf);
        ep_send_commit(&p.srv, &r.pkt);
        CHECK_EQ_INT(feed_bits(&p.cli, e, T0), D | EP_PEER_ERROR);
    }
    CHECK_EQ_INT(feed_bits(&p.srv, send_text(&p.cli, "{\"ok\":1}", buf, sizeof buf), T0), D);
    CHECK(p.srv.sess.recv_seq == 2);
    pair_free(&p);
}

/* ---- 10. Two-phase sends --------------------------------------------------- */

/* ep_send_begin reserves nothing until ep_send_commit: begun twice, the
 * same sequence; a begun send that is never committed leaves no gap. */
static void test_send_phases(void)
{
    pair p;
    ep_packet a, b;
    gmud_error err;
    uint8_t buf[64];
    pair_fill(&p, "gmud", GMUD_SESSION_ON, 0);
    pair_open(&p, T0);
    CHECK_EQ_INT(ep_send_begin(&p.cli, "one", 3, &a, &err), 0);
    CHECK_EQ_INT(ep_send_begin(&p.cli, "two", 3, &b, &err), 0);
    CHECK(p.cli.sess.send_seq == 0);
    CHECK_MEM(a.head, a.head_len, b.head, b.head_len);
    check_head(&a, p.id, 0);
    CHECK(a.body_len == 3 && memcmp(a.body, "one", 3) == 0);
    gmud_slice s = flat(&p.cli, &b, buf, sizeof buf);
    ep_send_commit(&p.cli, &b);
    CHECK(p.cli.sess.send_seq == 1);
    CHECK_EQ_INT(feed_bits(&p.srv, s, T0), D); /* "one" never went: no gap */
    CHECK_EQ_INT(ep_send_begin(&p.cli, "three", 5, &a, &err), 0);
    check_head(&a, p.id, 1);
    pair_free(&p);
}

/* What ep_send_begin refuses, and what it leaves to the encoder. */
static void test_send_refusals(void)
{
    static uint8_t big[70000];
    enum { ST_FRESH, ST_WELCOME_BEGUN, ST_WELCOMED, ST_EXHAUSTED };
    static const struct {
        const char *name;
        ep_role role;
        const char *framing;
        gmud_session_mode mode;
        int state;
        size_t len;
        int rc;
        const char *msg;
    } cases[] = {
        {"server before the welcome", EP_SERVER, "gmud", GMUD_SESSION_ON, ST_FRESH, 1,
         GMUD_ERR_NOT_WELCOMED, "no session yet"},
        {"server, welcome not committed", EP_SERVER, "gmud", GMUD_SESSION_ON, ST_WELCOME_BEGUN, 1,
         GMUD_ERR_NOT_WELCOMED, "no session yet"},
        {"client before the welcome", EP_CLIENT, "gmud", GMUD_SESSION_ON, ST_FRESH, 1,
         GMUD_ERR_NOT_WELCOMED, "no session yet"},
        {"exhausted", EP_CLIENT, "gmud", GMUD_SESSION_ON, ST_EXHAUSTED, 1, GMUD_ERR_SEQ_EXHAUSTED,
         "no sequence numbers left"},
        {"exhausted server", EP_SERVER, "gmud", GMUD_SESSION_ON, ST_EXHAUSTED, 1,
         GMUD_ERR_SEQ_EXHAUSTED, "no sequence numbers left"},
        {"the largest", EP_CLIENT, "gmud", GMUD_SESSION_ON, ST_WELCOMED, 65519, 0, NULL},
        {"one byte over", EP_CLIENT, "gmud", GMUD_SESSION_ON, ST_WELCOMED, 65520,
         GMUD_ERR_UNENCODABLE, "65520 bytes over the 65519"},
        {"fixed:50, the largest", EP_SERVER, "fixed:50", GMUD_SESSION_ON, ST_WELCOMED, 34, 0,
         NULL},
        {"fixed:50, over", EP_SERVER, "fixed:50", GMUD_SESSION_ON, ST_WELCOMED, 35,
         GMUD_ERR_UNENCODABLE, "over the 34"},
        {"empty", EP_CLIENT, "gmud", GMUD_SESSION_ON, ST_WELCOMED, 0, 0, NULL},
        /* Mode off: the encoder's checks, not the engine's. */
        {"mode off, too long", EP_SERVER, "gmud", GMUD_SESSION_OFF, ST_FRESH, 70000, 0, NULL},
        {"mode off client", EP_CLIENT, "gmud", GMUD_SESSION_OFF, ST_FRESH, 1, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int before = check_failures;
        pair p;
        ep_packet pkt, w;
        gmud_error err = {0};
        pair_fill(&p, cases[i].framing, cases[i].mode, 0);
        if (cases[i].state == ST_FRESH || cases[i].state == ST_WELCOME_BEGUN) {
            ready(&p.scfg);
            ready(&p.ccfg);
            ep_init(&p.srv, &p.scfg, T0);
            ep_init(&p.cli, &p.ccfg, T0);
            if (cases[i].state == ST_WELCOME_BEGUN)
                CHECK_EQ_INT(ep_welcome(&p.srv, &w, &err), 0);
        } else {
            pair_open(&p, T0);
        }
        endpoint *ep = cases[i].role == EP_SERVER ? &p.srv : &p.cli;
        if (cases[i].state == ST_EXHAUSTED)
            ep->sess.send_seq = GMUD_SEQ_EXHAUSTED;
        uint64_t seq = ep->sess.send_seq;
        int rc = ep_send_begin(ep, big, cases[i].len, &pkt, &err);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (cases[i].msg)
            CHECK_CONTAINS(err.message, cases[i].msg);
        if (rc == 0) {
            CHECK_EQ_INT(pkt.head_len, cases[i].mode == GMUD_SESSION_ON ? 16 : 0);
            CHECK(pkt.body == big && pkt.body_len == cases[i].len);
            ep_send_commit(ep, &pkt);
            CHECK(ep->sess.send_seq == (cases[i].mode == GMUD_SESSION_ON ? seq + 1 : seq));
        } else {
            CHECK(ep->sess.send_seq == seq);
        }
        if (cases[i].state == ST_EXHAUSTED) {
            /* Nor an error packet: no sequence to put on it. */
            CHECK_EQ_INT(ep_error_packet(ep, "replayed", "x", &pkt, &err), GMUD_ERR_SEQ_EXHAUSTED);
            /* And the endpoint is done (PROTOCOL.md 6.3: the connection
             * closes): a valid frame from the peer is not taken. */
            CHECK_EQ_INT(ep->state, EP_DONE);
            CHECK_EQ_INT(feed_bits(ep, text("anything"), T0), 0);
        }
        pair_free(&p);
        if (check_failures != before)
            fprintf(stderr, "  send \"%s\"\n", cases[i].name);
    }
}

/* ---- 11. Error packets ---------------------------------------------------- */

/* ep_error_packet: {"error": text, "code": code} or "error <code>: <text>",
 * the text made printable ('?' for any other byte) and cut so that the
 * whole packet fits ep_max_payload (in mode on, beside the header); the
 * code is never cut. With a session in mode on it carries the header;
 * before a session, in mode off and in lecture mode it goes out bare. */
static void test_error_packets(void)
{
    static char as[151], quotes[151], slashes[151];
    memset(as, 'a', 150);
    memset(quotes, '"', 150);
    memset(slashes, '\\', 150);
    static const struct {
        const char *name;
        const char *framing;
        gmud_session_mode mode;
        int welcomed;
        int json;
        const char *code;
        const char *text;
        int rc;
        size_t head_len;
        size_t room;    /* the body's bytes at most */
        int exact;      /* and exactly: the cut wastes nothing */
    } cases[] = {
        {"long text, JSON", "fixed:60", GMUD_SESSION_ON, 1, 1, "replayed", as, 0, 16, 44, 1},
        {"long text, text", "fixed:60", GMUD_SESSION_ON, 1, 0, "replayed", as, 0, 16, 44, 1},
        {"long text, bare", "fixed:60", GMUD_SESSION_ON, 0, 1, "server_full", as, 0, 0, 60, 1},
        {"long text, mode off", "fixed:60", GMUD_SESSION_OFF, 0, 1, "bad_json", as, 0, 0, 60, 1},
        {"long text, lecture", "fixed:60", GMUD_SESSION_LECTURE, 1, 1, "bad_json", as, 0, 0, 60,
         1},
        {"short text", "gmud", GMUD_SESSION_ON, 1, 1, "skipped", "expected 1, got 2", 0, 16,
         65519, 0},
        /* Found here: a text whose escapes take more bytes than the text
         * has characters was refused (unencodable) rather than cut, though
         * 7 quotes fit. */
        {"long text of quotes", "fixed:60", GMUD_SESSION_ON, 1, 1, "replayed", quotes, 0, 16, 44,
         0},
        {"long text of backslashes", "fixed:60", GMUD_SESSION_OFF, 0, 1, "bad_json", slashes, 0,
         0, 60, 0},
        {"long text of quotes, as text", "fixed:60", GMUD_SESSION_ON, 1, 0, "replayed", quotes, 0,
         16, 44, 1},
        /* The code alone does not fit beside the header. */
        {"no room for the code", "fixed:50", GMUD_SESSION_ON, 1, 1, "seq_exhausted", "x",
         GMUD_ERR_UNENCODABLE, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int before = check_failures;
        ep_config cfg;
        endpoint ep;
        ep_packet pkt;
        gmud_error err = {0};
        fill(&cfg, EP_SERVER, cases[i].framing, cases[i].mode, 1);
        cfg.json_errors = cases[i].json;
        ready(&cfg);
        ep_init(&ep, &cfg, T0);
        if (cases[i].welcomed) {
            ep_packet w;
            CHECK_EQ_INT(ep_welcome(&ep, &w, &err), 0);
            ep_send_commit(&ep, &w);
        }
        int rc = ep_error_packet(&ep, cases[i].code, cases[i].text, &pkt, &err);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc != 0 && cases[i].rc == 0)
            fprintf(stderr, "  %s\n", err.message);
        if (rc == 0) {
            CHECK_EQ_INT(pkt.head_len, cases[i].head_len);
            if (pkt.head_len)
                check_head(&pkt, ep.sess.id, 1);
            CHECK(pkt.body_len <= cases[i].room);
            CHECK(pkt.head_len + pkt.body_len <= frame_room(&cfg.frame));
            if (cases[i].exact)
                CHECK_EQ_INT(pkt.body_len, cases[i].room);
            check_error_body(&pkt, cases[i].json, gmud_err_from_name(cases[i].code));
            /* What is left of the text is its beginning. */
            char body[1200];
            body_text(&pkt, body, sizeof body);
            const char *kept = NULL;
            json_t *v = NULL;
            if (cases[i].json) {
                v = json_loadb(body, strlen(body), 0, NULL);
                kept = json_string_value(json_object_get(v, "error"));
            } else if (strchr(body, ':')) {
                kept = strchr(body, ':') + 2;
            }
            CHECK(kept != NULL && strncmp(kept, cases[i].text, strlen(kept)) == 0);
            json_decref(v);
        }
        ep_config_free(&cfg);
        if (check_failures != before)
            fprintf(stderr, "  error packet \"%s\"\n", cases[i].name);
    }
}

/* Bytes outside printable ASCII become '?' (so the text is valid UTF-8 and
 * holds no line delimiter), in both forms. */
static void test_error_printable(void)
{
    static const char *in = "a\x01" "b\nc\x7f" "d\xc3\xa9" "e\t";
    static const char *want = "a?b?c?d??e?";
    for (int json = 0; json < 2; json++) {
        ep_config cfg;
        endpoint ep;
        ep_packet pkt;
        gmud_error err;
        char body[256], expect[256];
        fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_OFF, 1);
        cfg.json_errors = json;
        ready(&cfg);
        ep_init(&ep, &cfg, T0);
        CHECK_EQ_INT(ep_error_packet(&ep, "bad_json", in, &pkt, &err), 0);
        body_text(&pkt, body, sizeof body);
        if (json)
            snprintf(expect, sizeof expect, "{\"error\":\"%s\",\"code\":\"bad_json\"}", want);
        else
            snprintf(expect, sizeof expect, "error bad_json: %s", want);
        CHECK_MEM(body, strlen(body), expect, strlen(expect));
        ep_config_free(&cfg);
    }
}

/* ---- 12. Fixed framing: the padding --------------------------------------- */

/* Under fixed:100 the decoder hands over the whole packet: the engine
 * removes the zero padding (after the header, in mode on: a header that
 * ends in zero bytes is not padding) unless keep_padding asks for the
 * packet as it came. */
static void test_padding(void)
{
    static const struct {
        gmud_session_mode mode;
        int keep;
        const char *data;
        size_t want;
    } cases[] = {
        {GMUD_SESSION_OFF, 0, "look", 4},
        {GMUD_SESSION_OFF, 1, "look", 100},
        {GMUD_SESSION_ON, 0, "look", 4},
        {GMUD_SESSION_ON, 1, "look", 84},
        {GMUD_SESSION_ON, 0, "", 0}, /* header of sequence 0, then zeros only */
        {GMUD_SESSION_ON, 1, "", 84},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pair p;
        uint8_t buf[128];
        ep_result r;
        pair_fill(&p, "fixed:100", cases[i].mode, 0);
        p.scfg.keep_padding = cases[i].keep;
        pair_open(&p, T0);
        gmud_slice s = send_text(&p.cli, cases[i].data, buf, sizeof buf);
        CHECK_EQ_INT(s.len, 100);
        CHECK_EQ_INT(feed(&p.srv, s, T0, &r), D);
        if (has(&r, EP_DELIVER)) {
            CHECK_EQ_INT(r.msg.len, cases[i].want);
            size_t n = strlen(cases[i].data);
            int inside = r.msg.len >= n && r.msg.len <= s.len;
            CHECK(inside && memcmp(r.msg.data, cases[i].data, n) == 0);
            for (size_t k = n; inside && k < r.msg.len; k++)
                CHECK_EQ_INT(r.msg.data[k], 0);
        }
        pair_free(&p);
    }
}

/* ---- 13. Framing errors ---------------------------------------------------- */

/* The decoder's error: refused (EP_KIND_FRAMING, its code), answered with
 * an error packet (under the header once a mode-on session runs, bare
 * before), closed as a protocol error; later frames are ignored. */
/* A lecture server, too, sends nothing before its welcome. */
static void test_lecture_send_before_welcome(void)
{
    ep_config cfg;
    endpoint ep;
    ep_packet pkt;
    gmud_error err = {0};
    fill(&cfg, EP_SERVER, "gmud", GMUD_SESSION_LECTURE, 1);
    ready(&cfg);
    ep_init(&ep, &cfg, T0);
    CHECK_EQ_INT(ep_send_begin(&ep, "x", 1, &pkt, &err), GMUD_ERR_NOT_WELCOMED);
    CHECK_CONTAINS(err.message, "welcome goes first");
    CHECK_EQ_INT(ep_welcome(&ep, &pkt, &err), 0);
    ep_send_commit(&ep, &pkt);
    CHECK_EQ_INT(ep_send_begin(&ep, "x", 1, &pkt, &err), 0);
    ep_config_free(&cfg);
}

static void test_framing_error(void)
{
    static const struct {
        const char *name;
        ep_role role;
        gmud_session_mode mode;
        int welcomed;
        size_t head_len;
    } cases[] = {
        {"server, mode off", EP_SERVER, GMUD_SESSION_OFF, 0, 0},
        {"server, mode on", EP_SERVER, GMUD_SESSION_ON, 1, 16},
        {"client, mode on", EP_CLIENT, GMUD_SESSION_ON, 1, 16},
        {"client awaiting the welcome", EP_CLIENT, GMUD_SESSION_ON, 0, 0},
        {"lecture server", EP_SERVER, GMUD_SESSION_LECTURE, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int before = check_failures;
        pair p;
        ep_result r;
        pair_fill(&p, "gmud", cases[i].mode, 1);
        if (cases[i].welcomed) {
            pair_open(&p, T0);
        } else {
            ready(&p.scfg);
            ready(&p.ccfg);
            ep_init(&p.srv, &p.scfg, T0);
            ep_init(&p.cli, &p.ccfg, T0);
        }
        endpoint *ep = cases[i].role == EP_SERVER ? &p.srv : &p.cli;
        uint64_t seq = ep->sess.send_seq;
        gmud_error fe;
        gmud_error_set(&fe, GMUD_ERR_BAD_LABEL, 0, "bad packet label at stream byte 0");
        memset(&r, 0xa5, sizeof r);
        ep_on_framing_error(ep, &fe, &r);
        CHECK_EQ_INT(r.what, R | S | C);
        CHECK(r.json == NULL);
        CHECK_EQ_INT(r.kind, EP_KIND_FRAMING);
        CHECK_EQ_INT(r.why.code, GMUD_ERR_BAD_LABEL);
        CHECK_EQ_INT(r.close, EP_CLOSE_PROTOCOL);
        CHECK_EQ_INT(r.detail.code, GMUD_ERR_BAD_LABEL);
        CHECK_CONTAINS(r.detail.message, "bad packet label");
        if (has(&r, EP_SEND)) {
            CHECK_EQ_INT(r.pkt.head_len, cases[i].head_len);
            if (r.pkt.head_len)
                check_head(&r.pkt, p.id, seq);
            check_error_body(&r.pkt, 1, GMUD_ERR_BAD_LABEL);
        }
        CHECK_EQ_INT(feed_bits(ep, text("{\"x\":1}"), T0), 0); /* closed: ignored */
        /* A second framing error on a closed endpoint asks for nothing. */
        memset(&r, 0xa5, sizeof r);
        ep_on_framing_error(ep, &fe, &r);
        CHECK_EQ_INT(r.what, 0);
        pair_free(&p);
        if (check_failures != before)
            fprintf(stderr, "  framing error \"%s\"\n", cases[i].name);
    }
}

int main(void)
{
    test_config_table();
    test_config_derived();
    test_config_limits();
    test_handshake();
    test_violations();
    test_before_welcome();
    test_truncation();
    test_bad_welcomes();
    test_refusals();
    test_end_after_errors();
    test_good_welcomes();
    test_welcome_timeout();
    test_end_before_welcome();
    test_lecture_exchange();
    test_lecture_refusals();
    test_lecture_not_object();
    test_lecture_client_bad_json();
    test_lecture_client_limits();
    test_lecture_client_exhausted();
    test_rate_messages();
    test_rate_stretches();
    test_rate_bytes();
    test_rate_mode_on();
    test_rate_lecture();
    test_shape_messages();
    test_shape_bytes();
    test_shape_config();
    test_shape_mode_on();
    test_bad_payloads();
    test_bad_payload_mode_on();
    test_send_phases();
    test_send_refusals();
    test_error_packets();
    test_error_printable();
    test_padding();
    test_lecture_send_before_welcome();
    test_framing_error();
    return check_report("test_endpoint");
}
