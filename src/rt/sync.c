/* The blocking client: plain sockets. See include/gmud/sync.h. */
#include "gmud/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "frame_head.h"
#include "resolve.h"
#include "gmud/limits.h"

/* Deadlines are nanoseconds on CLOCK_MONOTONIC (the time since boot, so
 * never 0 or negative), or one of these. */
enum { NO_WAIT = 0, FOREVER = -1 };

struct gmud_sync {
    int fd;
    gmud_frame_config cfg;
    gmud_session_mode mode;
    gmud_session sess;       /* id 0 in mode off */
    gmud_json_limits json;
    char *reply_data;        /* lecture: our copy of the replies' data */
    size_t reply_len;
    gmud_frame_decoder *dec;
    byte_buf body;           /* lecture: the reply, reused */
    byte_buf out;            /* one encoded frame, reused */
    uint8_t *in;             /* GMUD_READ_BUFFER_SIZE bytes read, in[off..len) not yet decoded */
    size_t off, len;
    int eof;
    int64_t rcvtimeo_ms;     /* the socket's SO_RCVTIMEO now; 0 = none (block for ever) */
    gmud_error broken;       /* the sticky session error; code 0 while the session holds */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A deadline timeout_ms from now. */
static int64_t deadline_in(int timeout_ms)
{
    return timeout_ms < 0 ? FOREVER : timeout_ms == 0 ? NO_WAIT
                                                      : now_ns() + (int64_t)timeout_ms * 1000000;
}

/* Milliseconds left until a deadline, rounded up so that a wait on them
 * never ends before it; FOREVER gives -1, as poll() takes it. */
static int ms_left(int64_t deadline)
{
    if (deadline == FOREVER)
        return -1;
    if (deadline == NO_WAIT)
        return 0;
    int64_t left = deadline - now_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > 1000000000 ? 1000000000 : (int)left;
}

static int sys_error(gmud_error *err, const char *what, int code)
{
    return gmud_error_set(err, code == ETIMEDOUT ? GMUD_ERR_TIMEOUT : GMUD_ERR_IO, 0, "%s: %s",
                          what, strerror(code));
}

/* ---- Connecting --------------------------------------------------------- */

/* Connects fd to addr within deadline. 0 or an errno value. */
static int connect_within(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline)
{
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    struct pollfd p = {fd, POLLOUT, 0};
    int n;
    while ((n = poll(&p, 1, ms_left(deadline))) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return errno;
    if (n == 0)
        return ETIMEDOUT;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    return soerr;
}

/* A connected socket in blocking mode, TCP_NODELAY on; -1 with err filled. */
static int open_socket(const char *host, unsigned port, int64_t deadline, gmud_error *err)
{
    net_addrs addrs;
    if (net_resolve(host, port, 0, &addrs, err) != GMUD_OK)
        return -1;
    int fd = -1, last = 0;
    for (int i = 0; i < addrs.n && fd < 0; i++) {
        const struct sockaddr *sa = net_addr(&addrs, i);
        /* Non-blocking while connecting, so the connect has a deadline. */
        fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if ((last = connect_within(fd, sa, addrs.len[i], deadline)) != 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        char what[300];
        snprintf(what, sizeof what, "cannot connect to %s port %u", host, port);
        sys_error(err, what, last);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Blocking from here on: a receive then waits inside recv(), one system
     * call per message instead of recv() (EAGAIN), poll(), recv(). */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        sys_error(err, "cannot make the socket blocking", errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- Waiting and reading ------------------------------------------------ */

/* Sets the socket's SO_RCVTIMEO to ms (0: none), unless it is set so already:
 * a caller that always passes the same timeout pays for this once. */
static int set_rcvtimeo(gmud_sync *s, int64_t ms, gmud_error *err)
{
    if (s->rcvtimeo_ms == ms)
        return GMUD_OK;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        return sys_error(err, "cannot set the receive timeout", errno);
    s->rcvtimeo_ms = ms;
    return GMUD_OK;
}

/* How long a wait of left_ms may block in recv() under SO_RCVTIMEO; 0 means
 * wait in poll() instead. SO_RCVTIMEO runs on the kernel's timer wheel,
 * which may end a wait one tick early (at most 10 ms, at HZ 100) or up to
 * an eighth of it late (its coarser levels round expiries up); poll() has a
 * precise timer. So recv() blocks for a part that cannot overrun left_ms,
 * and poll() waits out whatever is left of it, if the message is late. */
static int64_t coarse_wait_ms(int64_t left_ms)
{
    enum { TICK_MS = 10, MIN_MS = 20 };
    int64_t ms = (left_ms - TICK_MS) * 8 / 9;
    return ms >= MIN_MS ? ms : 0;
}

/* Reads what the socket has into s->in, waiting until deadline. first_ms,
 * if >= 0, is the wait left now (the caller's timeout on its first read,
 * exact, so that the same timeout each call keeps the same SO_RCVTIMEO).
 * Returns 1 when bytes arrived or the stream ended (s->eof), 0 when the
 * deadline passed first, or an error. */
static int read_more(gmud_sync *s, int64_t deadline, int64_t first_ms, gmud_error *err)
{
    for (;;) {
        int flags = 0, rc;
        if (deadline == NO_WAIT) {
            flags = MSG_DONTWAIT;
        } else if (deadline == FOREVER) {
            if ((rc = set_rcvtimeo(s, 0, err)) != GMUD_OK)
                return rc;
        } else {
            int64_t left = first_ms >= 0 ? first_ms : (int64_t)ms_left(deadline);
            int64_t coarse = coarse_wait_ms(left);
            first_ms = -1;
            if (coarse > 0) {
                if ((rc = set_rcvtimeo(s, coarse, err)) != GMUD_OK)
                    return rc;
            } else {
                /* The precise tail; a poll() that ends early (a signal) just
                 * comes round again. */
                struct pollfd p = {s->fd, POLLIN, 0};
                if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
                    return sys_error(err, "poll failed", errno);
                flags = MSG_DONTWAIT;
            }
        }
        ssize_t r = recv(s->fd, s->in, GMUD_READ_BUFFER_SIZE, flags);
        if (r >= 0) {
            s->off = 0;
            s->len = (size_t)r;
            s->eof = r == 0;
            return 1;
        }
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return sys_error(err, "recv failed", errno);
        /* Interrupted, or a timer ran out: done only once the deadline has
         * passed (SO_RCVTIMEO may end a tick early). */
        if (deadline == NO_WAIT || (deadline != FOREVER && now_ns() >= deadline))
            return 0;
    }
}

/* Decodes from what has been read; 1 with a message, 0 if more is needed. */
static int decode_buffered(gmud_sync *s, gmud_slice *msg, gmud_error *err)
{
    if (s->off == s->len)
        return 0;
    size_t n = s->len - s->off;
    /* Raw framing: a read is a message, cut at the maximum message size. */
    if (s->cfg.framing == GMUD_FRAMING_RAW && n > s->cfg.max_message)
        n = s->cfg.max_message;
    ptrdiff_t used = gmud_frame_decode(s->dec, s->in + s->off, n, msg, err);
    if (used < 0)
        return (int)used;
    if (used == 0) { /* all absorbed into the decoder */
        s->off = s->len = 0;
        return 0;
    }
    s->off += (size_t)used;
    return 1;
}

/* The next whole frame's payload by deadline: 1, 0 (timeout) or an error. */
static int next_frame(gmud_sync *s, int64_t deadline, int64_t first_ms, gmud_slice *msg,
                      gmud_error *err)
{
    for (;;) {
        int rc = decode_buffered(s, msg, err);
        if (rc != 0)
            return rc;
        if (s->eof) {
            rc = gmud_frame_decoder_finish(s->dec, err);
            if (rc != GMUD_OK)
                return rc;
            return gmud_error_set(err, GMUD_ERR_CLOSED, 0,
                                  "connection closed by the peer (between frames)");
        }
        s->off = s->len = 0;
        if ((rc = read_more(s, deadline, first_ms, err)) <= 0)
            return rc;
        first_ms = -1;
    }
}

/* ---- Sending ------------------------------------------------------------ */

/* Encodes prefix[0..plen) then payload[0..len) as one frame into s->out and
 * sends it whole: one send() unless the kernel takes only part. */
static int send_frame(gmud_sync *s, const void *prefix, size_t plen, const void *payload,
                      size_t len, gmud_error *err)
{
    size_t size = gmud_frame_encoded_size(&s->cfg, plen + len);
    s->out.len = 0;
    if (buf_reserve(&s->out, size) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory encoding a message");
    ptrdiff_t n = gmud_frame_encode_prefixed(&s->cfg, prefix, plen, payload, len, s->out.data,
                                             s->out.cap, err);
    if (n < 0)
        return (int)n;
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = send(s->fd, s->out.data + done, (size_t)n - done, MSG_NOSIGNAL);
        if (w > 0)
            done += (size_t)w;
        else if (w < 0 && errno != EINTR)
            return sys_error(err, "send failed", errno);
        else if (w == 0)
            return sys_error(err, "send failed", EPIPE);
    }
    return GMUD_OK;
}

/* Remembers a session failure: this and every later call returns it. */
static int session_broken(gmud_sync *s, const gmud_error *why)
{
    s->broken = *why;
    return why->code;
}

/* The sticky session error, copied to err. */
static int still_broken(const gmud_sync *s, gmud_error *err)
{
    if (err != NULL)
        *err = s->broken;
    return s->broken.code;
}

static int send_on(gmud_sync *s, const void *data, size_t len, gmud_error *err)
{
    size_t limit = frame_room(&s->cfg) - GMUD_SESSION_HEADER_SIZE;
    if (len > limit)
        return gmud_error_set(err, GMUD_ERR_UNENCODABLE, 0,
                              "message of %zu bytes over the %zu the framing leaves beside "
                              "the session header",
                              len, limit);
    uint64_t seq;
    int rc = gmud_session_next_send(&s->sess, &seq, err);
    if (rc != GMUD_OK)
        return rc;
    uint8_t hdr[GMUD_SESSION_HEADER_SIZE];
    gmud_session_header_put(hdr, s->sess.id, seq);
    gmud_error e;
    rc = send_frame(s, hdr, sizeof hdr, data, len, &e);
    if (rc == GMUD_OK)
        return GMUD_OK;
    /* The sequence is spent and part of the frame may be out: the two ends
     * are out of step for good. */
    if (err != NULL)
        *err = e;
    return session_broken(s, &e);
}

int gmud_sync_send(gmud_sync *s, const void *data, size_t len, gmud_error *err)
{
    if (s->broken.code != GMUD_OK)
        return still_broken(s, err);
    switch (s->mode) {
    case GMUD_SESSION_ON:
        return send_on(s, data, len, err);
    case GMUD_SESSION_LECTURE:
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "in lecture mode the client only replies");
    default:
        break;
    }
    if (len > s->cfg.max_message) /* the encoder says why */
        return (int)gmud_frame_encode(&s->cfg, data, len, NULL, 0, err);
    return send_frame(s, NULL, 0, data, len, err);
}

/* ---- Receiving ---------------------------------------------------------- */

/* Mode on: checks the header, commits its sequence, and leaves *msg on the
 * application's bytes. */
static int take_on(gmud_sync *s, gmud_slice *msg, gmud_error *err)
{
    /* The next packet of the session, almost always: accepted inline. */
    if (!gmud_session_header_accept(&s->sess, msg->data, msg->len)) {
        gmud_error e;
        uint64_t seq = 0;
        int rc = gmud_session_header_check(&s->sess, msg->data, msg->len, &seq, &e);
        if (rc == GMUD_OK) /* cannot be: accept refused it */
            rc = gmud_error_set(&e, GMUD_ERR_INVALID, 0, "session check disagrees with itself");
        if (err != NULL)
            *err = e;
        return session_broken(s, &e);
    }
    msg->data += GMUD_SESSION_HEADER_SIZE;
    msg->len -= GMUD_SESSION_HEADER_SIZE;
    return 1;
}

/* Mode lecture: one more data packet received; sends the reply counting it.
 * The reply goes through s->body and s->out, so the message (in s->in or
 * the decoder) stays valid. A reply that cannot be sent breaks the session,
 * but the packet is still delivered (it may be the server's error packet,
 * which says why): the next call reports the failure. */
static int reply_lecture(gmud_sync *s)
{
    gmud_error e;
    uint64_t seq;
    int rc = gmud_session_next_send(&s->sess, &seq, &e);
    if (rc == GMUD_OK) {
        ptrdiff_t n = gmud_session_lecture_reply(s->sess.id, seq, s->reply_data, s->reply_len,
                                                 s->body.data, s->body.cap, &e);
        rc = n < 0 ? (int)n : send_frame(s, NULL, 0, s->body.data, (size_t)n, &e);
    }
    if (rc != GMUD_OK)
        session_broken(s, &e);
    return 1;
}

int gmud_sync_recv(gmud_sync *s, int timeout_ms, gmud_slice *msg, gmud_error *err)
{
    if (s->broken.code != GMUD_OK)
        return still_broken(s, err);
    int rc = next_frame(s, deadline_in(timeout_ms), timeout_ms, msg, err);
    if (rc != 1)
        return rc;
    switch (s->mode) {
    case GMUD_SESSION_ON:
        return take_on(s, msg, err);
    case GMUD_SESSION_LECTURE:
        return reply_lecture(s);
    default:
        return 1;
    }
}

/* ---- Opening ------------------------------------------------------------ */

void gmud_sync_default_config(gmud_sync_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    gmud_frame_default_config(&cfg->frame, GMUD_FRAMING_GMUD);
    cfg->session = GMUD_SESSION_OFF;
    cfg->reply_data = NULL;
    gmud_json_default_config(&cfg->json);
}

/* The longest welcome, {"session_id": 9007199254740991, "sequence_id": 0}:
 * a session's frames must hold at least this much. */
enum { WELCOME_MAX = 50 };

static int check_config(const gmud_sync_config *cfg, gmud_error *err)
{
    int rc = gmud_frame_config_check(&cfg->frame, err);
    if (rc != GMUD_OK)
        return rc;
    gmud_framing framing = cfg->frame.framing;
    switch (cfg->session) {
    case GMUD_SESSION_OFF:
        return GMUD_OK;
    case GMUD_SESSION_ON:
        /* Binary-safe framings with message boundaries only: the header of
         * sequence 10 starts with "\n", and raw reads have no boundaries. */
        if (framing != GMUD_FRAMING_LENGTH && framing != GMUD_FRAMING_GMUD &&
            framing != GMUD_FRAMING_FIXED)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "session mode on needs length, gmud or fixed framing, not %s",
                                  gmud_framing_name(framing));
        break;
    case GMUD_SESSION_LECTURE:
        if (framing == GMUD_FRAMING_RAW)
            return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                                  "session mode lecture needs a framing other than raw");
        break;
    default:
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "unknown session mode %d",
                              (int)cfg->session);
    }
    if (frame_room(&cfg->frame) < WELCOME_MAX)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "sessions need messages of at least %d bytes (the welcome), "
                              "not %zu",
                              (int)WELCOME_MAX, frame_room(&cfg->frame));
    /* The limits, checked now rather than on the welcome. */
    return gmud_json_check_bounds((const uint8_t *)"{}", 2, &cfg->json, err);
}

/* Lecture mode: copies the reply data and makes room for its replies, then
 * writes the longest one this session could need (the largest id and
 * sequence) to check the data and that every reply fits a frame. */
static int prepare_replies(gmud_sync *s, const char *data, gmud_error *err)
{
    if (data == NULL)
        data = GMUD_SESSION_LECTURE_DATA;
    s->reply_len = strlen(data);
    if ((s->reply_data = malloc(s->reply_len + 1)) == NULL ||
        buf_reserve(&s->body, 6 * s->reply_len + 80) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for the lecture's replies");
    memcpy(s->reply_data, data, s->reply_len + 1);
    gmud_error e;
    ptrdiff_t n = gmud_session_lecture_reply(GMUD_SESSION_ID_MAX, GMUD_SEQ_EXHAUSTED - 1,
                                             s->reply_data, s->reply_len, s->body.data,
                                             s->body.cap, &e);
    if (n < 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, e.offset, "bad reply data: %s", e.message);
    if ((size_t)n > frame_room(&s->cfg))
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "a reply carrying this data takes up to %td bytes, over the "
                              "framing's %zu",
                              n, frame_room(&s->cfg));
    return GMUD_OK;
}

/* Reads the welcome, the first frame, by deadline and starts the session. */
static int read_welcome(gmud_sync *s, int64_t deadline, gmud_error *err)
{
    gmud_slice msg;
    int rc = next_frame(s, deadline, -1, &msg, err);
    if (rc == 0)
        return gmud_error_set(err, GMUD_ERR_TIMEOUT, 0, "no welcome from the server in time");
    if (rc < 0)
        return rc;
    if (s->cfg.framing == GMUD_FRAMING_FIXED)
        msg = gmud_frame_trim_padding(msg);
    json_t *json = NULL;
    gmud_error e;
    if (gmud_json_parse(msg.data, msg.len, &s->json, &json, &e) != GMUD_OK)
        return gmud_error_set(err, GMUD_ERR_NOT_WELCOMED, e.offset,
                              "the first packet is not a welcome: %s", e.message);
    if (!json_is_object(json))
        rc = gmud_error_set(err, GMUD_ERR_NOT_WELCOMED, 0,
                            "the first packet is not a welcome: not a JSON object");
    else if ((rc = gmud_session_refusal(json, err)) == GMUD_OK &&
             (rc = gmud_session_welcomed(&s->sess, s->mode, json, &e)) != GMUD_OK)
        /* One code for every bad first packet, as PROTOCOL.md 6.2 says and
         * the event client reports; the sentence keeps the reason. */
        rc = gmud_error_set(err, GMUD_ERR_NOT_WELCOMED, 0,
                            "the first packet is not a welcome: %s", e.message);
    json_decref(json);
    return rc;
}

gmud_sync *gmud_sync_open(const char *host, unsigned port, const gmud_sync_config *cfg,
                          int timeout_ms, gmud_error *err)
{
    if (check_config(cfg, err) != GMUD_OK)
        return NULL;
    if (port == 0 || port > 65535) {
        gmud_error_set(err, GMUD_ERR_INVALID, 0, "port %u is outside 1..65535", port);
        return NULL;
    }
    gmud_sync *s = calloc(1, sizeof *s);
    if (s == NULL || (s->in = malloc(GMUD_READ_BUFFER_SIZE)) == NULL) {
        free(s);
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for a connection");
        return NULL;
    }
    s->fd = -1;
    s->cfg = cfg->frame;
    s->mode = cfg->session;
    s->json = cfg->json;
    gmud_session_init(&s->sess);
    int64_t deadline = deadline_in(timeout_ms);
    if ((s->dec = gmud_frame_decoder_create(&s->cfg, err)) == NULL)
        goto fail;
    if (s->mode == GMUD_SESSION_LECTURE && prepare_replies(s, cfg->reply_data, err) != GMUD_OK)
        goto fail;
    if ((s->fd = open_socket(host, port, deadline, err)) < 0)
        goto fail;
    if (s->mode != GMUD_SESSION_OFF && read_welcome(s, deadline, err) != GMUD_OK)
        goto fail;
    return s;

fail:
    gmud_sync_close(s);
    return NULL;
}

gmud_sync *gmud_sync_connect(const char *host, unsigned port, const gmud_frame_config *cfg,
                             int timeout_ms, gmud_error *err)
{
    gmud_sync_config c;
    gmud_sync_default_config(&c);
    c.frame = *cfg;
    return gmud_sync_open(host, port, &c, timeout_ms, err);
}

uint64_t gmud_sync_session_id(const gmud_sync *s)
{
    return s->sess.id;
}

int gmud_sync_fd(const gmud_sync *s)
{
    return s->fd;
}

void gmud_sync_close(gmud_sync *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0)
        close(s->fd);
    gmud_frame_decoder_destroy(s->dec);
    buf_free(&s->body);
    buf_free(&s->out);
    free(s->reply_data);
    free(s->in);
    free(s);
}
