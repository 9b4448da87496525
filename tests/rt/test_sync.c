/* The blocking client (gmud_sync).
 *
 * Against the event server (its loop here, the client in a thread): echo in
 * each framing, timeouts, the peer's close, refused connects, unencodable
 * messages, and both session modes end to end.
 *
 * Against a fake server written with plain sockets (a thread here, the
 * client in the main thread), which writes and checks the protocol's bytes
 * by hand: mode on's header both ways and every refusal, with its sticky
 * error; mode lecture's replies, byte for byte as Python's json.dumps writes
 * them; every kind of bad welcome; and the receive path's waits (0, bounded,
 * for ever; partial frames; signals). Every wait is bounded. */
#include <fcntl.h>
#include <signal.h>
#include <sys/time.h>

#include "rt_util.h"

typedef struct sync_case {
    rt_peer rt;
    gmud_frame_config cfg;
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
    gmud_sync *s = gmud_sync_connect("127.0.0.1", (unsigned)t->rt.port, &t->cfg, 2000, &err);
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
    gmud_sync_destroy(s);
    return NULL;
}

static void run_sync(const char *framing)
{
    rt_fixture fx;
    rt_fx_init(&fx, framing, GMUD_PAYLOAD_TEXT);
    rt_fx_serve(&fx, (gmud_callbacks){.on_message = echo});
    sync_case t;
    memset(&t, 0, sizeof t);
    t.cfg = fx.cfg.conn.frame;
    rt_fx_run_peer(&fx, &t.rt, sync_client, &t, 6000);
    if (!t.ok)
        fprintf(stderr, "%s: %s\n", framing, t.note);
    CHECK(t.ok);
    CHECK(t.timeout_ms >= 140 && t.timeout_ms < 1000);
    CHECK_EQ_INT(t.closed_rc, GMUD_ERR_CLOSED);
    rt_fx_end(&fx);
}

static void test_failures(void)
{
    gmud_frame_config cfg;
    gmud_frame_default_config(&cfg, GMUD_FRAMING_GMUD);
    gmud_error err;
    /* A bound socket that does not listen refuses. */
    int fd;
    int port = rt_refusing_port(&fd);
    CHECK(gmud_sync_connect("127.0.0.1", (unsigned)port, &cfg, 1000, &err) == NULL);
    CHECK_CONTAINS(err.message, "refused");
    close(fd);
    CHECK(gmud_sync_connect("no-such-host.invalid", 8222, &cfg, 1000, &err) == NULL);
    CHECK_CONTAINS(err.message, "resolve");
    CHECK_EQ_INT(err.code, GMUD_ERR_IO);
    CHECK(gmud_sync_connect("127.0.0.1", 0, &cfg, 1000, &err) == NULL);
    cfg.max_message = 0;
    CHECK(gmud_sync_connect("127.0.0.1", 8222, &cfg, 1000, &err) == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    gmud_sync_destroy(NULL);
}

/* ---- Sessions against the event server --------------------------------- */

typedef struct session_case {
    rt_peer rt;
    gmud_frame_config frame;
    gmud_session_mode mode;
    int ok;
    uint64_t id;
    char note[200];
} session_case;

static int g_lecture_replies; /* replies the lecture server's application got */

static void lecture_next(gmud_conn *c)
{
    char text[64];
    int n = snprintf(text, sizeof text, "{\"value\": %d}", g_lecture_replies);
    gmud_conn_send(c, text, (size_t)n, NULL);
}

static void lecture_on_connect(gmud_conn *c, void *u)
{
    (void)u;
    lecture_next(c);
}

/* Each reply arrives whole; after the third, the server closes. */
static void lecture_on_reply(gmud_conn *c, const uint8_t *d, size_t n, json_t *j, void *u)
{
    (void)d;
    (void)n;
    (void)j;
    (void)u;
    if (++g_lecture_replies == 3)
        gmud_conn_close(c);
    else
        lecture_next(c);
}

static void *session_client(void *arg)
{
    session_case *t = arg;
    gmud_error err;
    gmud_slice m;
    int ok = 1;
    gmud_sync *s = rt_peer_sync(&t->rt, &t->frame, t->mode, NULL, &err);
    if (s == NULL) {
        snprintf(t->note, sizeof t->note, "open: %s", err.message);
        ok = 0;
    } else {
        t->id = gmud_sync_session_id(s);
    }
    static const char *const msgs[] = {"first", "second message", "3"};
    for (int i = 0; ok && i < 3; i++) {
        if (t->mode == GMUD_SESSION_ON)
            ok = gmud_sync_send(s, msgs[i], strlen(msgs[i]), &err) == 0 &&
                 gmud_sync_recv(s, 2000, &m, &err) == 1 && m.len == strlen(msgs[i]) &&
                 memcmp(m.data, msgs[i], m.len) == 0;
        else
            ok = gmud_sync_recv(s, 2000, &m, &err) == 1 && m.len == 12 &&
                 memcmp(m.data, "{\"value\": ", 10) == 0 && m.data[10] == '0' + i;
        if (!ok)
            snprintf(t->note, sizeof t->note, "message %d: %s", i, err.message);
    }
    if (ok && t->mode == GMUD_SESSION_LECTURE) {
        ok = gmud_sync_recv(s, 2000, &m, &err) == GMUD_ERR_CLOSED;
        if (!ok)
            snprintf(t->note, sizeof t->note, "not closed after 3 replies: %s", err.message);
    }
    t->ok = ok;
    gmud_sync_destroy(s);
    return NULL;
}

/* gmud_sync in mode on (echo) and lecture (three data packets, three
 * replies checked by the server, then its close) against gmud_server. */
static void run_session(gmud_session_mode mode)
{
    rt_fixture fx;
    rt_fx_init(&fx, "gmud", mode == GMUD_SESSION_ON ? GMUD_PAYLOAD_TEXT : GMUD_PAYLOAD_JSON);
    fx.cfg.conn.session.mode = mode;
    g_lecture_replies = 0;
    rt_fx_serve(&fx, mode == GMUD_SESSION_ON
                         ? (gmud_callbacks){.on_message = echo}
                         : (gmud_callbacks){.on_connect = lecture_on_connect,
                                            .on_message = lecture_on_reply});
    session_case t;
    memset(&t, 0, sizeof t);
    t.frame = fx.cfg.conn.frame; /* gmud framing, as gmud_sync's default */
    t.mode = mode;
    rt_fx_run_peer(&fx, &t.rt, session_client, &t, 6000);
    if (!t.ok)
        fprintf(stderr, "session %s: %s\n", gmud_session_mode_name(mode), t.note);
    CHECK(t.ok);
    CHECK(t.id >= 1 && t.id <= GMUD_SESSION_ID_MAX);
    CHECK_EQ_INT(rt_fx_stats(&fx).security, 0);
    if (mode == GMUD_SESSION_LECTURE)
        CHECK_EQ_INT(g_lecture_replies, 3);
    rt_fx_end(&fx);
}

/* ---- A fake server: plain sockets, one connection, in a thread --------- */

enum {
    SESSION = 4242,   /* 0x1092: the fake server's session id */
    IO_MS = 3000,     /* the fake server's bound on every read and accept */
    MAX_FRAMES = 8,
    FRAME_KEEP = 128  /* wire bytes kept of each frame the fake reads */
};

typedef struct fake fake;

struct fake {
    rt_fixture fx;                        /* no server: fx.port is the fake's */
    rt_peer rt;                           /* the fake's thread */
    pthread_t client;                     /* for the signals of the "kick" command */
    void (*script)(fake *f, int fd);
    gmud_framing framing;                 /* GMUD, FIXED (fixed_size) or LINE */
    size_t fixed_size;
    int kind;                             /* the script's variant */
    const char *first;                    /* welcome cases: the first packet */
    size_t first_len;
    /* What the fake read from the client, frame by frame. */
    uint8_t wire[MAX_FRAMES][FRAME_KEEP]; /* each frame as sent, framing included */
    size_t wire_len[MAX_FRAMES];          /* its whole length on the wire */
    size_t payload_len[MAX_FRAMES];
    int frames;
    size_t after;                         /* bytes read after the script's frames */
    uint8_t tail[512];                    /* the first of them, NUL-terminated */
    int eof;                              /* the client closed */
};

static uint8_t fake_buf[70000];

static int read_exact(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Sends payload[0..len) as one frame of the fake's framing, by hand. */
static void fake_frame(fake *f, int fd, const void *payload, size_t len)
{
    static uint8_t out[70016];
    size_t n = 0;
    if (f->framing == GMUD_FRAMING_GMUD) {
        memcpy(out, "GMUD", 4);
        out[4] = (uint8_t)(len & 0xff);
        out[5] = (uint8_t)(len >> 8);
        n = 6;
    }
    memcpy(out + n, payload, len);
    n += len;
    if (f->framing == GMUD_FRAMING_FIXED) {
        memset(out + n, 0, f->fixed_size - len);
        n = f->fixed_size;
    } else if (f->framing == GMUD_FRAMING_LINE) {
        out[n++] = '\n';
    }
    rt_send_all(fd, out, n);
}

static void fake_welcome(fake *f, int fd)
{
    static const char w[] = "{\"session_id\": 4242, \"sequence_id\": 0}";
    fake_frame(f, fd, w, sizeof w - 1);
}

/* A mode-on packet: the header (id, seq), then text. */
static void fake_on(fake *f, int fd, uint64_t id, uint64_t seq, const char *text)
{
    uint8_t p[256];
    size_t n = strlen(text);
    rt_le64_put(p, id);
    rt_le64_put(p + 8, seq);
    memcpy(p + 16, text, n);
    fake_frame(f, fd, p, 16 + n);
}

/* Reads one frame into f->wire[]; its payload stays in fake_buf. The
 * payload's length, or -1. */
static ptrdiff_t fake_read(fake *f, int fd)
{
    uint8_t *p = fake_buf;
    size_t n;
    if (f->framing == GMUD_FRAMING_GMUD) {
        if (read_exact(fd, p, 6) != 0 || memcmp(p, "GMUD", 4) != 0)
            return -1;
        n = 6 + (size_t)(p[4] | p[5] << 8);
        if (read_exact(fd, p + 6, n - 6) != 0)
            return -1;
    } else if (f->framing == GMUD_FRAMING_FIXED) {
        n = f->fixed_size;
        if (read_exact(fd, p, n) != 0)
            return -1;
    } else {
        for (n = 0; n == 0 || p[n - 1] != '\n'; n++)
            if (n == sizeof fake_buf || read_exact(fd, p + n, 1) != 0)
                return -1;
    }
    size_t hdr = f->framing == GMUD_FRAMING_GMUD ? 6 : 0;
    size_t plen = n - hdr - (f->framing == GMUD_FRAMING_LINE ? 1 : 0);
    if (f->frames < MAX_FRAMES) {
        memcpy(f->wire[f->frames], p, n < FRAME_KEEP ? n : FRAME_KEEP);
        f->wire_len[f->frames] = n;
        f->payload_len[f->frames] = plen;
        f->frames++;
    }
    memmove(p, p + hdr, plen);
    return (ptrdiff_t)plen;
}

/* Reads to the client's close, counting what arrives. */
static void fake_drain(fake *f, int fd)
{
    uint8_t tmp[4096];
    ssize_t r;
    while ((r = recv(fd, tmp, sizeof tmp, 0)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0) {
            size_t keep = f->after < sizeof f->tail - 1 ? sizeof f->tail - 1 - f->after : 0;
            memcpy(f->tail + f->after, tmp, (size_t)r < keep ? (size_t)r : keep);
            f->after += (size_t)r;
        }
    f->eof = r == 0;
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    int fd = rt_accept_within(f->rt.listen_fd, IO_MS);
    if (fd >= 0) {
        struct timeval tv = {IO_MS / 1000, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        f->script(f, fd);
        close(fd);
    }
    return NULL;
}

/* Listens on 127.0.0.1 (a free port: f->fx.port) and runs script on the
 * first connection, in a thread. */
static void fake_start(fake *f, void (*script)(fake *, int), const char *framing)
{
    f->script = script;
    f->client = pthread_self();
    rt_fx_init(&f->fx, framing, GMUD_PAYLOAD_TEXT);
    f->framing = f->fx.cfg.conn.frame.framing;
    f->fixed_size = f->fx.cfg.conn.frame.fixed_size;
    rt_fx_listen(&f->fx);
    rt_fx_peer(&f->fx, &f->rt, fake_main, f);
}

/* Waits for the fake to finish (bounded: its every read and accept is),
 * and ends its fixture. */
static void fake_join(fake *f)
{
    rt_fx_join(&f->fx, &f->rt, 4 * IO_MS);
    rt_fx_end(&f->fx);
}

/* fake_start, then a gmud_sync of the same framing to the fake, in session
 * mode (with reply_data for lecture; NULL: the default); CHECKed: NULL,
 * with err, if it failed. */
static gmud_sync *fake_open(fake *f, void (*script)(fake *, int), const char *framing,
                            gmud_session_mode mode, const char *reply_data, gmud_error *err)
{
    fake_start(f, script, framing);
    gmud_sync *s = rt_peer_sync(&f->rt, &f->fx.cfg.conn.frame, mode, reply_data, err);
    if (s == NULL)
        fprintf(stderr, "open: %s\n", err->message);
    CHECK(s != NULL);
    return s;
}

/* ---- Mode on, byte by byte ---------------------------------------------- */

static void script_on_exchange(fake *f, int fd)
{
    fake_welcome(f, fd);
    for (int i = 0; i < 4; i++)
        fake_read(f, fd);
    fake_on(f, fd, SESSION, 1, "hello");
    fake_on(f, fd, SESSION, 2, "");
    fake_drain(f, fd);
}

static void test_on_exchange(void)
{
    fake f;
    memset(&f, 0, sizeof f);
    gmud_error err;
    gmud_slice m;
    gmud_sync *s = fake_open(&f, script_on_exchange, "gmud", GMUD_SESSION_ON, NULL, &err);
    if (s == NULL) {
        fake_join(&f);
        return;
    }
    CHECK_EQ_INT(gmud_sync_session_id(s), SESSION);
    CHECK_EQ_INT(gmud_sync_send(s, "a", 1, &err), 0);
    CHECK_EQ_INT(gmud_sync_send(s, "bb", 2, &err), 0);
    CHECK_EQ_INT(gmud_sync_send(s, "ccc", 3, &err), 0);
    /* The largest message: 65535 - 16 bytes; one more is refused, unsent. */
    static uint8_t big[65520];
    memset(big, 'x', sizeof big);
    CHECK_EQ_INT(gmud_sync_send(s, big, 65520, &err), GMUD_ERR_UNENCODABLE);
    CHECK_EQ_INT(gmud_sync_send(s, big, 65519, &err), 0);
    CHECK_EQ_INT(gmud_sync_recv(s, 2000, &m, &err), 1);
    CHECK_MEM(m.data, m.len, "hello", 5);
    CHECK_EQ_INT(gmud_sync_recv(s, 2000, &m, &err), 1);
    CHECK_EQ_INT(m.len, 0);
    CHECK_EQ_INT(gmud_sync_recv(s, 0, &m, &err), 0);
    gmud_sync_destroy(s);
    fake_join(&f);

    /* What the fake read: the first frame whole, then the headers. */
    static const uint8_t first[] = {
        'G', 'M', 'U', 'D', 17, 0,           /* label, length 16 + 1 */
        0x92, 0x10, 0, 0, 0, 0, 0, 0,         /* session 4242 */
        0, 0, 0, 0, 0, 0, 0, 0,               /* sequence 0 */
        'a'};
    CHECK_EQ_INT(f.frames, 4);
    CHECK_MEM(f.wire[0], f.wire_len[0], first, sizeof first);
    static const char *const data[] = {"a", "bb", "ccc"};
    for (int i = 0; i < 4 && i < f.frames; i++) {
        CHECK_EQ_INT(rt_le64_get(f.wire[i] + 6), SESSION);
        CHECK_EQ_INT(rt_le64_get(f.wire[i] + 14), i);
        if (i < 3)
            CHECK_MEM(f.wire[i] + 22, f.payload_len[i] - 16, data[i], strlen(data[i]));
    }
    CHECK_EQ_INT(f.payload_len[3], 65535);
    CHECK_EQ_INT(f.after, 0);
    CHECK(f.eof);
}

/* The ways a server packet fails mode on's check, each followed by a packet
 * that would have been fine: the error must stick anyway. */
enum { BAD_REPEAT, BAD_SKIP, BAD_ID, BAD_SHORT, BAD_SEQ0 };

static void script_on_bad(fake *f, int fd)
{
    fake_welcome(f, fd);
    uint64_t next = 1;
    switch (f->kind) {
    case BAD_REPEAT:
        fake_on(f, fd, SESSION, 1, "x");
        fake_on(f, fd, SESSION, 1, "y");
        next = 2;
        break;
    case BAD_SKIP:
        fake_on(f, fd, SESSION, 2, "x");
        break;
    case BAD_ID:
        fake_on(f, fd, SESSION + 1, 1, "x");
        break;
    case BAD_SHORT: {
        uint8_t p[16];
        rt_le64_put(p, SESSION);
        rt_le64_put(p + 8, 1);
        fake_frame(f, fd, p, 10);
        break;
    }
    case BAD_SEQ0:
        fake_on(f, fd, SESSION, 0, "x");
        break;
    }
    fake_on(f, fd, SESSION, next, "fine");
    fake_drain(f, fd);
}

static void test_on_refusals(void)
{
    static const struct {
        int kind;
        int code;
        const char *says;
    } cases[] = {
        {BAD_REPEAT, GMUD_ERR_REPLAYED, "expected sequence 2, got 1"},
        {BAD_SKIP, GMUD_ERR_SKIPPED, "expected sequence 1, got 2"},
        {BAD_ID, GMUD_ERR_BAD_SESSION, "expected 4242, got 4243"},
        {BAD_SHORT, GMUD_ERR_MISSING_FIELD, "10 bytes"},
        {BAD_SEQ0, GMUD_ERR_REPLAYED, "expected sequence 1, got 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake f;
        memset(&f, 0, sizeof f);
        f.kind = cases[i].kind;
        gmud_error err, again;
        gmud_slice m;
        gmud_sync *s = fake_open(&f, script_on_bad, "gmud", GMUD_SESSION_ON, NULL, &err);
        if (s == NULL) {
            fake_join(&f);
            continue;
        }
        if (cases[i].kind == BAD_REPEAT) {
            CHECK_EQ_INT(gmud_sync_recv(s, 2000, &m, &err), 1);
            CHECK_MEM(m.data, m.len, "x", 1);
        }
        CHECK_EQ_INT(gmud_sync_recv(s, 2000, &m, &err), cases[i].code);
        CHECK_EQ_INT(err.code, cases[i].code);
        CHECK_CONTAINS(err.message, cases[i].says);
        /* Sticky: the valid packet behind it is never delivered, and
         * nothing more is sent than the one error packet below. */
        rt_sleep_ms(20);
        for (int t = 0; t < 3; t++) {
            int timeout = t == 0 ? 0 : t == 1 ? 100 : -1;
            CHECK_EQ_INT(gmud_sync_recv(s, timeout, &m, &again), cases[i].code);
            CHECK_EQ_INT(again.code, cases[i].code);
            CHECK(strcmp(again.message, err.message) == 0);
        }
        CHECK_EQ_INT(gmud_sync_send(s, "z", 1, &again), cases[i].code);
        CHECK(strcmp(again.message, err.message) == 0);
        CHECK_EQ_INT(gmud_sync_recv(s, 0, &m, NULL), cases[i].code);
        gmud_sync_destroy(s);
        fake_join(&f);
        /* The server hears why: one error packet, in the session (the
         * client's sequence 0), naming the code; then nothing. */
        char code[64];
        snprintf(code, sizeof code, "\"code\":\"%s\"", gmud_err_name(cases[i].code));
        CHECK(f.after > 22 && memcmp(f.tail, "GMUD", 4) == 0);
        CHECK_EQ_INT(f.after, 6 + (size_t)(f.tail[4] | f.tail[5] << 8));
        CHECK_EQ_INT(rt_le64_get(f.tail + 6), SESSION);
        CHECK_EQ_INT(rt_le64_get(f.tail + 14), 0);
        CHECK_CONTAINS((const char *)f.tail + 22, code);
    }
}

/* fixed:64: the header inside the 64 bytes, padding after the message. */
static void script_on_fixed(fake *f, int fd)
{
    fake_welcome(f, fd);
    fake_read(f, fd);
    fake_read(f, fd);
    fake_on(f, fd, SESSION, 1, "hi");
    fake_drain(f, fd);
}

static void test_on_fixed(void)
{
    fake f;
    memset(&f, 0, sizeof f);
    gmud_error err;
    gmud_slice m;
    gmud_sync *s = fake_open(&f, script_on_fixed, "fixed:64", GMUD_SESSION_ON, NULL, &err);
    if (s != NULL) {
        uint8_t msg[49];
        memset(msg, 'A', sizeof msg);
        CHECK_EQ_INT(gmud_sync_send(s, msg, 49, &err), GMUD_ERR_UNENCODABLE);
        CHECK_EQ_INT(gmud_sync_send(s, msg, 48, &err), 0);
        CHECK_EQ_INT(gmud_sync_send(s, "hi", 2, &err), 0);
        CHECK_EQ_INT(gmud_sync_recv(s, 2000, &m, &err), 1);
        CHECK_EQ_INT(m.len, 48); /* padding included, header not */
        gmud_slice t = gmud_frame_trim_padding(m);
        CHECK_MEM(t.data, t.len, "hi", 2);
        gmud_sync_destroy(s);
    }
    fake_join(&f);
    CHECK_EQ_INT(f.frames, 2);
    uint8_t want[64];
    memset(want, 0, sizeof want);
    rt_le64_put(want, SESSION);
    memset(want + 16, 'A', 48);
    CHECK_MEM(f.wire[0], f.wire_len[0], want, 64);
    memset(want + 16, 0, 48);
    rt_le64_put(want + 8, 1);
    memcpy(want + 16, "hi", 2);
    CHECK_MEM(f.wire[1], f.wire_len[1], want, 64);
}

/* A welcome and a data packet in one segment: the open reads only the
 * welcome, and the packet is the first message. */
static void script_glued(fake *f, int fd)
{
    static const char w[] = "{\"session_id\": 4242, \"sequence_id\": 0}";
    uint8_t p[128];
    size_t n = 0;
    memcpy(p, "GMUD", 4);
    p[4] = sizeof w - 1;
    p[5] = 0;
    memcpy(p + 6, w, sizeof w - 1);
    n = 6 + sizeof w - 1;
    memcpy(p + n, "GMUD", 4);
    p[n + 4] = 20;
    p[n + 5] = 0;
    rt_le64_put(p + n + 6, SESSION);
    rt_le64_put(p + n + 14, 1);
    memcpy(p + n + 22, "more", 4);
    rt_send_all(fd, p, n + 26);
    fake_drain(f, fd);
}

static void test_on_glued(void)
{
    fake f;
    memset(&f, 0, sizeof f);
    gmud_error err;
    gmud_slice m;
    gmud_sync *s = fake_open(&f, script_glued, "gmud", GMUD_SESSION_ON, NULL, &err);
    if (s != NULL) {
        rt_sleep_ms(20);
        CHECK_EQ_INT(gmud_sync_recv(s, 0, &m, &err), 1);
        CHECK_MEM(m.data, m.len, "more", 4);
        gmud_sync_destroy(s);
    }
    fake_join(&f);
}

static void script_welcome_only(fake *f, int fd)
{
    fake_welcome(f, fd);
}

/* A send that fails has spent its sequence: the session is broken. */
static void test_on_send_fails(void)
{
    fake f;
    memset(&f, 0, sizeof f);
    gmud_error err, again;
    gmud_slice m;
    gmud_sync *s = fake_open(&f, script_welcome_only, "gmud", GMUD_SESSION_ON, NULL, &err);
    fake_join(&f);
    if (s == NULL)
        return;
    rt_sleep_ms(50);
    CHECK_EQ_INT(gmud_sync_send(s, "a", 1, &err), 0); /* draws the reset */
    rt_sleep_ms(50);
    CHECK_EQ_INT(gmud_sync_send(s, "b", 1, &err), GMUD_ERR_IO);
    CHECK_CONTAINS(err.message, "send failed");
    CHECK_EQ_INT(gmud_sync_send(s, "c", 1, &again), GMUD_ERR_IO);
    CHECK(strcmp(again.message, err.message) == 0);
    CHECK_EQ_INT(gmud_sync_recv(s, 0, &m, &again), GMUD_ERR_IO);
    CHECK(strcmp(again.message, err.message) == 0);
    gmud_sync_destroy(s);
}

/* ---- Mode lecture, byte by byte ----------------------------------------- */

static const char *const lecture_data[] = {
    "{\"time\": \"Sat Mar 30 11:40:50 2019\", \"message\": \"0:Sat Mar 30 11:40:50 2019\", "
    "\"value\": 0}",
    "{\"time\": \"Sat Mar 30 11:40:51 2019\", \"message\": \"1:Sat Mar 30 11:40:51 2019\", "
    "\"value\": 1}",
    "{\"time\": \"Sat Mar 30 11:40:52 2019\", \"message\": \"2:Sat Mar 30 11:40:52 2019\", "
    "\"value\": 2}",
};

/* Sends kind data packets (1..3), reading the reply after each. */
static void script_lecture(fake *f, int fd)
{
    fake_welcome(f, fd);
    for (int i = 0; i < f->kind; i++) {
        fake_frame(f, fd, lecture_data[i], strlen(lecture_data[i]));
        fake_read(f, fd);
    }
    fake_drain(f, fd);
}

/* Python: json.dumps({"session_id": 4242, "sequence_id": n, "data": d}). */
static const char *const lecture_replies[] = {
    "{\"session_id\": 4242, \"sequence_id\": 1, \"data\": \"this is test data\"}",
    "{\"session_id\": 4242, \"sequence_id\": 2, \"data\": \"this is test data\"}",
    "{\"session_id\": 4242, \"sequence_id\": 3, \"data\": \"this is test data\"}",
};

static void run_lecture(const char *framing)
{
    fake f;
    memset(&f, 0, sizeof f);
    f.kind = 3;
    gmud_error err;
    gmud_slice m;
    gmud_sync *s = fake_open(&f, script_lecture, framing, GMUD_SESSION_LECTURE, NULL, &err);
    if (s != NULL) {
        CHECK_EQ_INT(gmud_sync_session_id(s), SESSION);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(gmud_sync_recv(s, 2000, &m, &err), 1);
            if (f.framing == GMUD_FRAMING_FIXED)
                m = gmud_frame_trim_padding(m);
            CHECK_MEM(m.data, m.len, lecture_data[i], strlen(lecture_data[i]));
        }
        CHECK_EQ_INT(gmud_sync_send(s, "x", 1, &err), GMUD_ERR_INVALID);
        CHECK_CONTAINS(err.message, "in lecture mode the client only replies");
        gmud_sync_destroy(s);
    }
    fake_join(&f);
    CHECK_EQ_INT(f.frames, 3);
    for (int i = 0; i < 3 && i < f.frames; i++) {
        size_t hdr = f.framing == GMUD_FRAMING_GMUD ? 6 : 0;
        gmud_slice r = {f.wire[i] + hdr, f.payload_len[i]};
        if (f.framing == GMUD_FRAMING_FIXED)
            r = gmud_frame_trim_padding(r);
        CHECK_MEM(r.data, r.len, lecture_replies[i], strlen(lecture_replies[i]));
    }
    CHECK_EQ_INT(f.after, 0);
    CHECK(f.eof);
}

/* Other reply data, escaped as Python escapes it. */
static void test_lecture_reply_data(void)
{
    fake f;
    memset(&f, 0, sizeof f);
    f.kind = 1;
    gmud_error err;
    gmud_slice m;
    gmud_sync *s = fake_open(&f, script_lecture, "gmud", GMUD_SESSION_LECTURE,
                             "h\xc3\xa9llo \"x\"\n\xf0\x9f\x98\x80", &err);
    if (s != NULL) {
        CHECK_EQ_INT(gmud_sync_recv(s, 2000, &m, &err), 1);
        gmud_sync_destroy(s);
    }
    fake_join(&f);
    /* json.dumps({"session_id": 4242, "sequence_id": 1,
     *             "data": "h\u00e9llo \"x\"\n\U0001F600"}) */
    static const char want[] = "{\"session_id\": 4242, \"sequence_id\": 1, \"data\": "
                               "\"h\\u00e9llo \\\"x\\\"\\n\\ud83d\\ude00\"}";
    CHECK_EQ_INT(f.frames, 1);
    CHECK_MEM(f.wire[0] + 6, f.payload_len[0], want, sizeof want - 1);
}

/* The welcome and two data packets in one segment, then the close: the
 * client reads all three at once, and its second reply meets the reset. */
static void script_lecture_gone(fake *f, int fd)
{
    (void)f;
    static uint8_t p[512];
    static const char w[] = "{\"session_id\": 4242, \"sequence_id\": 0}";
    const char *const parts[] = {w, lecture_data[0], lecture_data[1]};
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(parts[i]);
        memcpy(p + n, "GMUD", 4);
        p[n + 4] = (uint8_t)len;
        p[n + 5] = 0;
        memcpy(p + n + 6, parts[i], len);
        n += 6 + len;
    }
    rt_send_all(fd, p, n);
}

/* A reply that cannot be sent: the packet it answers is still delivered,
 * and the failure sticks from the next call on. */
static void test_lecture_reply_fails(void)
{
    fake f;
    memset(&f, 0, sizeof f);
    gmud_error err, again;
    gmud_slice m;
    gmud_sync *s = fake_open(&f, script_lecture_gone, "gmud", GMUD_SESSION_LECTURE, NULL, &err);
    fake_join(&f);
    if (s == NULL)
        return;
    rt_sleep_ms(50);
    CHECK_EQ_INT(gmud_sync_recv(s, 1000, &m, &err), 1); /* its reply draws the reset */
    CHECK_MEM(m.data, m.len, lecture_data[0], strlen(lecture_data[0]));
    rt_sleep_ms(50);
    CHECK_EQ_INT(gmud_sync_recv(s, 1000, &m, &err), 1);
    CHECK_MEM(m.data, m.len, lecture_data[1], strlen(lecture_data[1]));
    CHECK_EQ_INT(gmud_sync_recv(s, 1000, &m, &err), GMUD_ERR_IO);
    CHECK_CONTAINS(err.message, "send failed");
    CHECK_EQ_INT(gmud_sync_recv(s, 0, &m, &again), GMUD_ERR_IO);
    CHECK(strcmp(again.message, err.message) == 0);
    CHECK_EQ_INT(gmud_sync_send(s, "x", 1, &again), GMUD_ERR_IO);
    gmud_sync_destroy(s);
}

/* ---- Welcomes that are not ---------------------------------------------- */

enum { FIRST_FRAME, FIRST_RAW, FIRST_SILENCE };

static void script_first(fake *f, int fd)
{
    if (f->kind == FIRST_RAW) { /* these bytes, then the close */
        rt_send_all(fd, f->first, f->first_len);
        return;
    }
    if (f->kind == FIRST_FRAME)
        fake_frame(f, fd, f->first, f->first_len);
    fake_drain(f, fd); /* silence: until the client gives up */
}

static void test_bad_welcomes(void)
{
    static const char on_hdr[] = "\x92\x10\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
                                 "{\"session_id\": 4242, \"sequence_id\": 0}";
    static const struct {
        int kind;
        const char *first;
        size_t len; /* 0: strlen */
        int code;
        const char *says;
    } cases[] = {
        /* Every bad first packet is not_welcomed (PROTOCOL.md 6.2); the
         * sentence says why. */
        {FIRST_FRAME, "hello", 0, GMUD_ERR_NOT_WELCOMED, "not a welcome"},
        {FIRST_FRAME, "[1, 2]", 0, GMUD_ERR_NOT_WELCOMED, "not a welcome"},
        {FIRST_FRAME, "{\"session_id\": 4242}", 0, GMUD_ERR_NOT_WELCOMED, "sequence_id"},
        {FIRST_FRAME, "{\"sequence_id\": 0}", 0, GMUD_ERR_NOT_WELCOMED, "session_id"},
        {FIRST_FRAME, "{\"session_id\": \"4242\", \"sequence_id\": 0}", 0, GMUD_ERR_NOT_WELCOMED,
         "session_id"},
        {FIRST_FRAME, "{\"session_id\": 0, \"sequence_id\": 0}", 0, GMUD_ERR_NOT_WELCOMED,
         "outside"},
        {FIRST_FRAME, "{\"session_id\": 9007199254740992, \"sequence_id\": 0}", 0,
         GMUD_ERR_NOT_WELCOMED, "outside"},
        {FIRST_FRAME, "{\"session_id\": 4242, \"sequence_id\": -1}", 0, GMUD_ERR_NOT_WELCOMED,
         "negative"},
        {FIRST_FRAME, "{\"session_id\": 4242, \"sequence_id\": 1}", 0, GMUD_ERR_NOT_WELCOMED,
         "expected sequence 0"},
        {FIRST_FRAME, on_hdr, sizeof on_hdr - 1, GMUD_ERR_NOT_WELCOMED, "not a welcome"},
        {FIRST_FRAME, "{\"error\": \"the server is full\", \"code\": \"server_full\"}", 0,
         GMUD_ERR_SERVER_FULL, "server_full: the server is full"},
        {FIRST_FRAME, "{\"error\": \"go away\", \"code\": \"no_such_code\"}", 0,
         GMUD_ERR_NOT_WELCOMED, "no_such_code: go away"},
        {FIRST_RAW, "", 0, GMUD_ERR_NOT_WELCOMED, "closed the connection before its welcome"},
        {FIRST_RAW, "GMUD\x30\0{\"session", 0, GMUD_ERR_TRUNCATED, ""},
        {FIRST_SILENCE, NULL, 0, GMUD_ERR_TIMEOUT, "no welcome"},
    };
    for (int mode = GMUD_SESSION_LECTURE; mode <= GMUD_SESSION_ON; mode++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            fake f;
            memset(&f, 0, sizeof f);
            f.kind = cases[i].kind;
            f.first = cases[i].first;
            f.first_len = cases[i].len ? cases[i].len : f.first ? strlen(f.first) : 0;
            fake_start(&f, script_first, "gmud");
            gmud_sync_config cfg;
            gmud_sync_default_config(&cfg);
            cfg.session = (gmud_session_mode)mode;
            gmud_error err;
            int64_t t0 = rt_now_us();
            gmud_sync *s = gmud_sync_create("127.0.0.1", (unsigned)f.fx.port, &cfg, 200, &err);
            int64_t took = rt_now_us() - t0;
            CHECK(s == NULL);
            if (s == NULL && err.code != cases[i].code)
                fprintf(stderr, "bad welcome %zu (%s): %s\n", i,
                        gmud_session_mode_name((gmud_session_mode)mode), err.message);
            CHECK_EQ_INT(err.code, cases[i].code);
            CHECK_CONTAINS(err.message, cases[i].says);
            if (cases[i].kind == FIRST_SILENCE)
                CHECK(took >= 200000 && took < 1000000);
            gmud_sync_destroy(s);
            fake_join(&f);
            if (cases[i].kind != FIRST_RAW)
                CHECK(f.eof); /* the failed open closed its socket */
            /* A bad welcome is answered with one bare not_welcomed packet
             * (PROTOCOL.md 6.5); a refusal, a close or silence with
             * nothing. */
            if (cases[i].kind == FIRST_FRAME && cases[i].code == GMUD_ERR_NOT_WELCOMED &&
                strstr(cases[i].says, "no_such_code") == NULL) {
                CHECK(f.after > 6 && memcmp(f.tail, "GMUD", 4) == 0);
                CHECK_EQ_INT(f.after, 6 + (size_t)(f.tail[4] | f.tail[5] << 8));
                CHECK_CONTAINS((const char *)f.tail + 6, "\"code\":\"not_welcomed\"");
            } else {
                CHECK_EQ_INT(f.after, 0);
            }
        }
    }
}

/* Configs refused before any connect (port 9 would refuse: the codes show
 * that nothing was tried). */
static void test_bad_configs(void)
{
    static const struct {
        const char *framing;
        int mode;
        const char *reply;
        const char *says;
    } cases[] = {
        {"line", GMUD_SESSION_ON, NULL, "not line"},
        {"raw", GMUD_SESSION_ON, NULL, "not raw"},
        {"raw", GMUD_SESSION_LECTURE, NULL, "other than raw"},
        {"fixed:49", GMUD_SESSION_ON, NULL, "at least 50"},
        {"fixed:49", GMUD_SESSION_LECTURE, NULL, "at least 50"},
        {"fixed:90", GMUD_SESSION_LECTURE, NULL, "98 bytes"},
        {"gmud", GMUD_SESSION_LECTURE, "\xff", "bad reply data"},
        {"gmud", GMUD_SESSION_LECTURE, "\xc3", "bad reply data"},
        {"gmud", 3, NULL, "unknown session mode 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gmud_sync_config cfg;
        gmud_sync_default_config(&cfg);
        gmud_frame_config_parse(&cfg.frame, cases[i].framing, NULL);
        cfg.session = (gmud_session_mode)cases[i].mode;
        cfg.reply_data = cases[i].reply;
        gmud_error err;
        CHECK(gmud_sync_create("127.0.0.1", 9, &cfg, 1000, &err) == NULL);
        CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
        CHECK_CONTAINS(err.message, cases[i].says);
    }
    /* Bad JSON limits are refused at the open, not on the welcome.
     * (fixed:100 holds the longest reply: run_lecture uses it.) */
    gmud_sync_config cfg;
    gmud_sync_default_config(&cfg);
    cfg.session = GMUD_SESSION_ON;
    cfg.json.max_depth = 0;
    gmud_error err;
    CHECK(gmud_sync_create("127.0.0.1", 9, &cfg, 1000, &err) == NULL);
    CHECK_EQ_INT(err.code, GMUD_ERR_INVALID);
    CHECK_CONTAINS(err.message, "JSON limits");
}

/* ---- The receive path's waits ------------------------------------------- */

static volatile sig_atomic_t g_kicks;

static void on_kick(int sig)
{
    (void)sig;
    g_kicks++;
}

/* Mode off. Each request from the client is a command: "wait N" (send
 * "late" after N ms), "split N" (send one frame in two halves N ms apart),
 * "kick N" (signal the client twice, N ms apart), "kick N late" (signal it
 * after N ms, then send "late" N ms later). */
static void script_paced(fake *f, int fd)
{
    ptrdiff_t n;
    while ((n = fake_read(f, fd)) >= 0) {
        char cmd[64] = "";
        int ms = 0;
        snprintf(cmd, sizeof cmd, "%.*s", (int)n, (const char *)fake_buf);
        f->frames = 0;
        if (sscanf(cmd, "wait %d", &ms) == 1) {
            rt_sleep_ms(ms);
            fake_frame(f, fd, "late", 4);
        } else if (sscanf(cmd, "split %d", &ms) == 1) {
            static const uint8_t frame[] = "GMUD\x0d\0split message";
            rt_send_all(fd, frame, 9);
            rt_sleep_ms(ms);
            rt_send_all(fd, frame + 9, sizeof frame - 1 - 9);
        } else if (sscanf(cmd, "kick %d", &ms) == 1) {
            rt_sleep_ms(ms);
            pthread_kill(f->client, SIGUSR1);
            rt_sleep_ms(ms);
            if (strstr(cmd, "late") != NULL)
                fake_frame(f, fd, "late", 4);
            else
                pthread_kill(f->client, SIGUSR1);
        }
    }
}

/* Sends cmd, then receives with timeout_ms; the result, and *took_us. */
static int ask(gmud_sync *s, const char *cmd, int timeout_ms, gmud_slice *m, int64_t *took_us)
{
    gmud_error err;
    if (cmd != NULL && gmud_sync_send(s, cmd, strlen(cmd), &err) != 0)
        return -1000;
    int64_t t0 = rt_now_us();
    int rc = gmud_sync_recv(s, timeout_ms, m, &err);
    *took_us = rt_now_us() - t0;
    return rc;
}

static void test_waits(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_kick; /* no SA_RESTART: the wait sees EINTR */
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    sigaction(SIGUSR1, &sa, &old);
    fake f;
    memset(&f, 0, sizeof f);
    fake_start(&f, script_paced, "gmud");
    gmud_frame_config fc;
    gmud_frame_default_config(&fc, GMUD_FRAMING_GMUD);
    gmud_error err;
    gmud_slice m;
    int64_t took;
    gmud_sync *s = gmud_sync_connect("127.0.0.1", (unsigned)f.fx.port, &fc, 2000, &err);
    CHECK(s != NULL);
    if (s == NULL) {
        fake_join(&f);
        sigaction(SIGUSR1, &old, NULL);
        return;
    }
    CHECK_EQ_INT(gmud_sync_session_id(s), 0);
    CHECK((fcntl(gmud_sync_fd(s), F_GETFL) & O_NONBLOCK) == 0);
    /* 0: only what has arrived. */
    CHECK_EQ_INT(ask(s, NULL, 0, &m, &took), 0);
    CHECK(took < 50000);
    /* Bounded, never short: a poll()-sized wait, then one long enough for
     * SO_RCVTIMEO and a precise tail. */
    CHECK_EQ_INT(ask(s, NULL, 150, &m, &took), 0);
    CHECK(took >= 150000 && took < 1000000);
    CHECK_EQ_INT(ask(s, NULL, 700, &m, &took), 0);
    CHECK(took >= 700000 && took < 1500000);
    /* A message within the bound, within no bound, and one late in a wait
     * long enough for SO_RCVTIMEO (its 880 ms part). */
    CHECK_EQ_INT(ask(s, "wait 100", 5000, &m, &took), 1);
    CHECK_MEM(m.data, m.len, "late", 4);
    CHECK(took >= 90000 && took < 2000000);
    CHECK_EQ_INT(ask(s, "wait 100", -1, &m, &took), 1);
    CHECK_MEM(m.data, m.len, "late", 4);
    CHECK_EQ_INT(ask(s, "wait 600", 1000, &m, &took), 1);
    CHECK_MEM(m.data, m.len, "late", 4);
    /* Half a frame, then the rest: one message. */
    CHECK_EQ_INT(ask(s, "split 50", 2000, &m, &took), 1);
    CHECK_MEM(m.data, m.len, "split message", 13);
    CHECK(took >= 40000);
    /* Half a frame is not a message for a wait of 0, and is kept. */
    CHECK_EQ_INT(gmud_sync_send(s, "split 100", 9, &err), 0);
    rt_sleep_ms(50);
    CHECK_EQ_INT(ask(s, NULL, 0, &m, &took), 0);
    CHECK_EQ_INT(ask(s, NULL, 2000, &m, &took), 1);
    CHECK_MEM(m.data, m.len, "split message", 13);
    /* A message already here is taken by a wait of 0. */
    CHECK_EQ_INT(gmud_sync_send(s, "wait 0", 6, &err), 0);
    rt_sleep_ms(50);
    CHECK_EQ_INT(ask(s, NULL, 0, &m, &took), 1);
    CHECK_MEM(m.data, m.len, "late", 4);
    /* Signals do not end a wait early. */
    g_kicks = 0;
    CHECK_EQ_INT(ask(s, "kick 50", 400, &m, &took), 0);
    CHECK(took >= 400000 && took < 1500000);
    CHECK_EQ_INT(g_kicks, 2);
    CHECK_EQ_INT(ask(s, "kick 50 late", -1, &m, &took), 1);
    CHECK_MEM(m.data, m.len, "late", 4);
    CHECK_EQ_INT(g_kicks, 3);
    g_kicks = 0;
    CHECK_EQ_INT(ask(s, "kick 50 late", 1000, &m, &took), 1);
    CHECK_MEM(m.data, m.len, "late", 4);
    CHECK_EQ_INT(g_kicks, 1);
    gmud_sync_destroy(s);
    fake_join(&f);
    sigaction(SIGUSR1, &old, NULL);
}

int main(void)
{
    rt_ignore_sigpipe();
    run_sync("line");
    run_sync("fixed:100");
    run_sync("length");
    run_sync("gmud");
    test_failures();
    run_session(GMUD_SESSION_ON);
    run_session(GMUD_SESSION_LECTURE);
    test_on_exchange();
    test_on_refusals();
    test_on_fixed();
    test_on_glued();
    test_on_send_fails();
    run_lecture("gmud");
    run_lecture("line");
    run_lecture("fixed:100");
    test_lecture_reply_data();
    test_lecture_reply_fails();
    test_bad_welcomes();
    test_bad_configs();
    test_waits();
    return check_report("test_sync");
}
