/* The blocking client: plain sockets and poll(). See include/gmud/sync.h. */
#include "gmud/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "gmud/limits.h"

struct gmud_sync {
    int fd;
    gmud_frame_config cfg;
    gmud_frame_decoder *dec;
    gmud_buf out;      /* one encoded frame, reused */
    uint8_t *in;       /* GMUD_READ_BUFFER_SIZE bytes read, in[off..len) not yet decoded */
    size_t off, len;
    int eof;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline for poll(); -1 waits forever. */
static int remaining(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - now_ms();
    return left < 0 ? 0 : left > 1000000000 ? 1000000000 : (int)left;
}

static int sys_error(gmud_error *err, const char *what, int code)
{
    return gmud_error_set(err, code == ETIMEDOUT ? GMUD_ERR_TIMEOUT : GMUD_ERR_IO, 0, "%s: %s", what,
                          strerror(code));
}

/* Connects fd to addr within deadline. 0 or an errno value. */
static int connect_within(int fd, const struct addrinfo *ai, int64_t deadline)
{
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    struct pollfd p = {fd, POLLOUT, 0};
    int n;
    while ((n = poll(&p, 1, remaining(deadline))) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return errno;
    if (n == 0)
        return ETIMEDOUT;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    return soerr;
}

static int open_socket(const char *host, unsigned port, int timeout_ms, gmud_error *err)
{
    char service[16];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        gmud_error_set(err, GMUD_ERR_IO, 0, "cannot resolve host '%s': %s", host,
                       gai_strerror(rc));
        return -1;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int fd = -1, last = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if ((last = connect_within(fd, ai, deadline)) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        char what[300];
        snprintf(what, sizeof what, "cannot connect to %s port %u", host, port);
        sys_error(err, what, last);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

gmud_sync *gmud_sync_connect(const char *host, unsigned port, const gmud_frame_config *cfg,
                             int timeout_ms, gmud_error *err)
{
    if (gmud_frame_config_check(cfg, err) != GMUD_OK)
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
    s->cfg = *cfg;
    if ((s->dec = gmud_frame_decoder_create(cfg, err)) == NULL)
        goto fail;
    if ((s->fd = open_socket(host, port, timeout_ms, err)) < 0)
        goto fail;
    return s;

fail:
    gmud_sync_close(s);
    return NULL;
}

int gmud_sync_send(gmud_sync *s, const void *data, size_t len, gmud_error *err)
{
    if (len > s->cfg.max_message)
        return (int)gmud_frame_encode(&s->cfg, data, len, NULL, 0, err);
    size_t size = gmud_frame_encoded_size(&s->cfg, len);
    s->out.len = 0;
    if (gmud_buf_reserve(&s->out, size) != 0)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory encoding a message");
    ptrdiff_t n = gmud_frame_encode(&s->cfg, data, len, s->out.data, s->out.cap, err);
    if (n < 0)
        return (int)n;
    /* One send() of the whole frame; loop only if the kernel takes part. */
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = send(s->fd, s->out.data + done, (size_t)n - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {s->fd, POLLOUT, 0};
            if (poll(&p, 1, -1) < 0 && errno != EINTR)
                return sys_error(err, "poll failed", errno);
            continue;
        }
        return sys_error(err, "send failed", w < 0 ? errno : EPIPE);
    }
    return GMUD_OK;
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

int gmud_sync_recv(gmud_sync *s, int timeout_ms, gmud_slice *msg, gmud_error *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
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
        ssize_t r = recv(s->fd, s->in, GMUD_READ_BUFFER_SIZE, 0);
        if (r > 0) {
            s->len = (size_t)r;
            continue;
        }
        if (r == 0) {
            s->eof = 1;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return sys_error(err, "recv failed", errno);
        struct pollfd p = {s->fd, POLLIN, 0};
        int n = poll(&p, 1, remaining(deadline));
        if (n < 0 && errno != EINTR)
            return sys_error(err, "poll failed", errno);
        if (n == 0)
            return 0;
    }
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
    gmud_buf_free(&s->out);
    free(s->in);
    free(s);
}
