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
#include "endpoint.h"
#include "frame_head.h"
#include "resolve.h"
#include "seamed.h"
#include "tls_ctx.h"
#include "gmud/limits.h"

/* Deadlines are nanoseconds on CLOCK_MONOTONIC (the time since boot, so
 * never 0 or negative), or one of these. */
enum { NO_WAIT = 0, FOREVER = -1 };

struct gmud_sync {
    int fd;
    ep_config rules;         /* the protocol engine's, for this connection */
    endpoint ep;             /* its session */
    gmud_frame_decoder *dec;
    byte_buf out;            /* one encoded frame, reused */
    uint8_t *in;             /* GMUD_READ_BUFFER_SIZE bytes read */
    const uint8_t *src;      /* in, or the seam's plaintext of it: src[off..len)
                                not yet decoded */
    size_t off, len;
    seam *seam;              /* between socket and framing; NULL: plain TCP */
    struct tls_ctx_owned *tls; /* with TLS: the context the seam uses */
    byte_buf plain, wire;    /* with a seam: plaintext of a read; its bytes out */
    int eof;
    int bad_stream;          /* the decoder refused the stream */
    int64_t rcvtimeo_ms;     /* the socket's SO_RCVTIMEO now; 0 = none (block for ever) */
    gmud_error broken;       /* the sticky session error; code 0 while the session holds */
    gmud_error seam_failed;  /* the seam refused a record after the plaintext still
                                buffered: broken once that is read (bytes_in) */
    gmud_error peer_said;    /* the peer's last error packet; code -1 if none */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The engine's clock: milliseconds on the same clock. */
static uint64_t now_ms(void)
{
    return (uint64_t)now_ns() / 1000000;
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

/* ---- The transport seam: bytes out, bytes in --------------------------- */

/* The one place bytes leave: p[0..n) whole to the socket, one send() unless
 * the kernel takes only part. */
static int send_all(gmud_sync *s, const uint8_t *p, size_t n, gmud_error *err)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(s->fd, p + done, n - done, MSG_NOSIGNAL);
        if (w > 0)
            done += (size_t)w;
        else if (w < 0 && errno != EINTR)
            return sys_error(err, "send failed", errno);
        else if (w == 0)
            return sys_error(err, "send failed", EPIPE);
    }
    return GMUD_OK;
}

/* Frames p[0..n) out: as they are, or through the seam. */
static int send_frames(gmud_sync *s, const uint8_t *p, size_t n, gmud_error *err)
{
    if (s->seam == NULL)
        return send_all(s, p, n, err);
    s->wire.len = 0;
    int rc = s->seam->ops->output(s->seam, p, n, &s->wire, err);
    return rc != GMUD_OK ? rc : send_all(s, s->wire.data, s->wire.len, err);
}

/* The one place bytes enter: n bytes just read into s->in become what is
 * decoded next, as they are or through the seam (whose replies to the
 * peer go out at once). A seam that fails breaks the connection for good:
 * the failure is sticky, as a session's. */
static int bytes_in(gmud_sync *s, size_t n, gmud_error *err)
{
    s->off = 0;
    s->src = s->in;
    s->len = n;
    if (s->seam == NULL || n == 0)
        return GMUD_OK;
    s->plain.len = 0;
    s->wire.len = 0;
    gmud_error e;
    int rc = s->seam->ops->input(s->seam, s->in, n, &s->plain, &s->wire, &e);
    if (rc == GMUD_OK && s->wire.len > 0)
        rc = send_all(s, s->wire.data, s->wire.len, &e);
    s->src = s->plain.data;
    s->len = s->plain.len;
    if (rc != GMUD_OK && s->len > 0) {
        /* The records before the refused one are delivered first; the
         * next read reports the failure (read_more). */
        s->seam_failed = e;
        return GMUD_OK;
    }
    if (rc != GMUD_OK) {
        s->broken = e;
        if (err != NULL)
            *err = e;
    }
    return rc;
}

static int read_more(gmud_sync *s, int64_t deadline, int64_t first_ms, gmud_error *err);

/* The seam's own first bytes (a TLS hello) out, then its handshake read
 * through by deadline; what the last read held past it stays buffered for
 * the decoder (a welcome may share it). */
static int seam_handshake(gmud_sync *s, int64_t deadline, gmud_error *err)
{
    if (s->seam == NULL || s->seam->ops->start == NULL)
        return GMUD_OK;
    s->wire.len = 0;
    int rc = s->seam->ops->start(s->seam, &s->wire, err);
    if (rc == GMUD_OK)
        rc = send_all(s, s->wire.data, s->wire.len, err);
    while (rc == GMUD_OK && !seam_ready(s->seam)) {
        int got = read_more(s, deadline, -1, err);
        if (got < 0)
            return got;
        if (got == 0)
            return gmud_error_set(err, GMUD_ERR_TIMEOUT, 0, "TLS handshake timed out");
        if (s->eof)
            return gmud_error_set(err, GMUD_ERR_TLS, 0,
                                  "the server closed the connection during the TLS handshake");
    }
    return rc;
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
    if (s->seam_failed.code != GMUD_OK) {
        s->broken = s->seam_failed;
        if (err != NULL)
            *err = s->broken;
        return s->broken.code;
    }
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
            s->eof = r == 0;
            int in = bytes_in(s, (size_t)r, err);
            return in != GMUD_OK ? in : 1;
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
    ptrdiff_t used = gmud_frame_decode(s->dec, s->src + s->off, n, msg, err);
    if (used < 0) {
        s->bad_stream = 1;
        return (int)used;
    }
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
            gmud_error e;
            if (s->seam != NULL && s->seam->ops->end(s->seam, &e) != GMUD_OK)
                return gmud_error_set(err, GMUD_ERR_CLOSED, 0,
                                      "connection closed by the peer, uncleanly: %s",
                                      e.message);
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
    const gmud_frame_config *f = &s->rules.frame;
    size_t size = gmud_frame_encoded_size(f, plen + len);
    s->out.len = 0;
    if (buf_reserve(&s->out, size) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory encoding a message");
    ptrdiff_t n = gmud_frame_encode_prefixed(f, prefix, plen, payload, len, s->out.data,
                                             s->out.cap, err);
    return n < 0 ? (int)n : send_frames(s, s->out.data, (size_t)n, err);
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

/* Sends a packet the engine prepared and, once it is out whole, spends its
 * sequence. With sessions a failed send breaks the session for good: part
 * of the frame may be out, and the two ends are out of step. */
static int send_packet(gmud_sync *s, const ep_packet *pkt, gmud_error *err)
{
    gmud_error e;
    int rc = send_frame(s, pkt->head, pkt->head_len, pkt->body, pkt->body_len, &e);
    if (rc == GMUD_OK) {
        ep_send_commit(&s->ep, pkt);
        return GMUD_OK;
    }
    if (err != NULL)
        *err = e;
    return s->rules.mode != GMUD_SESSION_OFF ? session_broken(s, &e) : rc;
}

int gmud_sync_send(gmud_sync *s, const void *data, size_t len, gmud_error *err)
{
    if (s->broken.code != GMUD_OK)
        return still_broken(s, err);
    ep_packet pkt;
    gmud_error e;
    int rc = ep_send_begin(&s->ep, data, len, &pkt, &e);
    if (rc == GMUD_ERR_SEQ_EXHAUSTED)
        session_broken(s, &e); /* nothing more can be sent: PROTOCOL.md 6.3 */
    if (rc != GMUD_OK) {
        if (err != NULL)
            *err = e;
        return rc;
    }
    const gmud_frame_config *f = &s->rules.frame;
    if (len > f->max_message || pkt.head_len + len > f->max_message)
        return (int)gmud_frame_encode_prefixed(f, pkt.head, pkt.head_len, data, len, NULL, 0,
                                               err); /* the encoder says why */
    return send_packet(s, &pkt, err);
}

/* ---- Receiving ---------------------------------------------------------- */

/* Carries out the engine's decision on a frame: its packet (a lecture
 * reply, an error packet) goes out first; a close breaks the session for
 * good. 1 with *msg to deliver, 0 if the frame was consumed with nothing
 * to deliver, or the error. A reply that cannot be sent breaks the
 * session, but the packet is still delivered (it may be the server's error
 * packet, which says why): the next call reports the failure. */
static int act(gmud_sync *s, const ep_result *r, gmud_slice *msg, gmud_error *err)
{
    gmud_error refused;
    if (r->what & EP_SEND)
        send_packet(s, &r->pkt, NULL);
    if (r->what & EP_PEER_ERROR)
        s->peer_said = r->why;
    if ((r->what & EP_CLOSE) && r->close == EP_CLOSE_REFUSED && r->detail.code == GMUD_OK) {
        /* The peer's error packet, then its end: its code is the error. */
        gmud_error_set(&refused, s->peer_said.code != GMUD_OK ? s->peer_said.code
                                                              : GMUD_ERR_CLOSED,
                       0, "the peer closed the connection after its error packet: %s",
                       s->peer_said.message);
        if (err != NULL)
            *err = refused;
        return session_broken(s, &refused);
    }
    if (r->what & EP_CLOSE) {
        const gmud_error *why = r->detail.code != GMUD_OK ? &r->detail : &r->why;
        if (err != NULL)
            *err = *why;
        if (s->broken.code == GMUD_OK)
            session_broken(s, why);
        return why->code;
    }
    if (r->what & EP_REFUSED) {
        if (err != NULL)
            *err = r->why;
        return r->why.code;
    }
    if (r->what & EP_DELIVER) {
        *msg = r->msg;
        return 1;
    }
    return 0;
}

/* The next message the engine lets through by deadline (or, awaiting the
 * welcome, the welcome taken): 1, 0 (timeout) or an error. */
static int next_message(gmud_sync *s, int64_t deadline, int64_t first_ms, gmud_slice *msg,
                        gmud_error *err)
{
    for (;;) {
        gmud_slice frame;
        gmud_error e;
        ep_result r;
        int rc = next_frame(s, deadline, first_ms, &frame, &e);
        if (rc < 0 && s->bad_stream) {
            /* The peer hears why, as from the event runtime. */
            ep_on_framing_error(&s->ep, &e, &r);
            return act(s, &r, msg, err);
        }
        if (rc == GMUD_ERR_CLOSED) {
            ep_on_end(&s->ep, &r); /* before the welcome, that is an error of its own */
            if (r.what != 0)
                return act(s, &r, msg, err);
        }
        if (rc != 1) {
            if (rc < 0 && err != NULL)
                *err = e;
            return rc;
        }
        ep_on_frame(&s->ep, frame, now_ms(), &r);
        if ((rc = act(s, &r, msg, err)) != 0)
            return rc;
        if (r.what & EP_WELCOMED)
            return 1;
        first_ms = -1;
    }
}

int gmud_sync_recv(gmud_sync *s, int timeout_ms, gmud_slice *msg, gmud_error *err)
{
    if (s->broken.code != GMUD_OK)
        return still_broken(s, err);
    return next_message(s, deadline_in(timeout_ms), timeout_ms, msg, err);
}

/* ---- Opening ------------------------------------------------------------ */

void gmud_sync_default_config(gmud_sync_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    gmud_frame_default_config(&cfg->frame, GMUD_FRAMING_GMUD);
    cfg->session = GMUD_SESSION_DEFAULT;
    cfg->reply_data = NULL;
    gmud_json_default_config(&cfg->json);
    gmud_tls_default_config(&cfg->tls);
}

/* The engine's rules for a blocking client: no limits of its own (the
 * caller paces itself), messages delivered as they are, padding included.
 * Its error packets are JSON with sessions (the modes that speak JSON: the
 * welcome is), text without. */
static int take_rules(gmud_sync *s, const gmud_sync_config *cfg, gmud_error *err)
{
    ep_config *c = &s->rules;
    memset(c, 0, sizeof *c);
    c->role = EP_CLIENT;
    c->frame = cfg->frame;
    c->mode = cfg->session;
    c->keep_padding = 1;
    c->json_errors = cfg->session != GMUD_SESSION_OFF;
    c->reply_data = cfg->reply_data;
    c->json_limits = cfg->json;
    return ep_config_ready(c, err);
}

/* Reads the welcome, the first frame, by deadline: the engine starts the
 * session, or says why not (a refusal from the server keeps its code). */
static int read_welcome(gmud_sync *s, int64_t deadline, gmud_error *err)
{
    gmud_slice msg;
    int rc = next_message(s, deadline, -1, &msg, err);
    if (rc == 0)
        return gmud_error_set(err, GMUD_ERR_TIMEOUT, 0, "no welcome from the server in time");
    return rc < 0 ? rc : GMUD_OK;
}

gmud_sync *gmud_sync_create(const char *host, unsigned port, const gmud_sync_config *cfg,
                            int timeout_ms, gmud_error *err)
{
    return sync_create_seamed(host, port, cfg, timeout_ms, NULL, err);
}

gmud_sync *sync_create_seamed(const char *host, unsigned port, const gmud_sync_config *cfg,
                              int timeout_ms, const seam_factory *seams, gmud_error *err)
{
    gmud_sync *s = calloc(1, sizeof *s);
    if (s == NULL || (s->in = malloc(GMUD_READ_BUFFER_SIZE)) == NULL) {
        free(s);
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for a connection");
        return NULL;
    }
    s->fd = -1;
    if (take_rules(s, cfg, err) != GMUD_OK) {
        free(s->in);
        free(s);
        return NULL;
    }
    ep_init(&s->ep, &s->rules, now_ms());
    s->src = s->in;
    seam_factory tls_seams;
    if (cfg->tls.enabled && seams == NULL) {
        if ((s->tls = tls_ctx_create(&cfg->tls, 0, host, err)) == NULL)
            goto fail;
        tls_seams = (seam_factory){tls_seam_create, &s->tls->ctx};
        seams = &tls_seams;
    }
    if (seams != NULL && seams->create != NULL &&
        (s->seam = seams->create(seams->arg, 0, err)) == NULL)
        goto fail;
    int64_t deadline = deadline_in(timeout_ms);
    if (port == 0 || port > 65535) {
        gmud_error_set(err, GMUD_ERR_INVALID, 0, "port %u is outside 1..65535", port);
        goto fail;
    }
    if ((s->dec = gmud_frame_decoder_create(&s->rules.frame, err)) == NULL)
        goto fail;
    if ((s->fd = open_socket(host, port, deadline, err)) < 0)
        goto fail;
    if (seam_handshake(s, deadline, err) != GMUD_OK)
        goto fail;
    if (ep_awaiting_welcome(&s->ep) && read_welcome(s, deadline, err) != GMUD_OK)
        goto fail;
    return s;

fail:
    gmud_sync_destroy(s);
    return NULL;
}

gmud_sync *gmud_sync_connect(const char *host, unsigned port, const gmud_frame_config *cfg,
                             int timeout_ms, gmud_error *err)
{
    gmud_sync_config c;
    gmud_sync_default_config(&c);
    c.frame = *cfg;
    c.session = GMUD_SESSION_OFF;
    return gmud_sync_create(host, port, &c, timeout_ms, err);
}

uint64_t gmud_sync_session_id(const gmud_sync *s)
{
    return s->ep.sess.id;
}

int gmud_sync_fd(const gmud_sync *s)
{
    return s->fd;
}

void gmud_sync_destroy(gmud_sync *s)
{
    if (s == NULL)
        return;
    /* Our close_notify, if the socket takes it now: never waited for. */
    s->wire.len = 0;
    if (s->fd >= 0 && s->seam != NULL && s->seam->ops->close != NULL &&
        seam_ready(s->seam) && s->seam->ops->close(s->seam, &s->wire, NULL) == GMUD_OK &&
        s->wire.len > 0)
        (void)!send(s->fd, s->wire.data, s->wire.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (s->fd >= 0)
        close(s->fd);
    gmud_frame_decoder_destroy(s->dec);
    if (s->seam != NULL)
        s->seam->ops->destroy(s->seam);
    tls_ctx_destroy(s->tls);
    buf_free(&s->plain);
    buf_free(&s->wire);
    buf_free(&s->out);
    ep_config_free(&s->rules);
    free(s->in);
    free(s);
}
