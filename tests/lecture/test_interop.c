/* Interop: gmud's framing core against Python peers written the lecture's
 * way (tests/lecture/lecture_peer.py), byte for byte, over a real stream
 * socket.
 *
 * For each framing (fixed, length, json, gmud):
 *   a) Python sends lecture messages; C decodes them from small reads of
 *      varying sizes and checks every byte against what it computes itself.
 *   b) C encodes lecture messages, many frames glued into one send(), and
 *      Python prints what it received; the lines must match.
 *   c) C sends payloads across the 16-bit length range (0, 255, 256, 65535,
 *      ...) and Python echoes them back: this is what catches a byte-order
 *      slip, since every lecture message is shorter than 256 bytes.
 * And the label checks of approach 5:
 *   d) C sends a packet labelled XXXX; Python prints "Invalid Packet" and
 *      exits non-zero without reading on.
 *   e) Python sends a stream with one corrupted label; the C decoder reports
 *      GMUD_ERR_BAD_LABEL with the bytes it saw and then refuses everything.
 *
 * Every blocking call is bounded: socket timeouts, poll() on the peer's
 * stdout, a bounded waitpid(), and alarm() as a watchdog for the whole run.
 * The peer's socket is one end of a socketpair, inherited by fd number.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "gmud/frame.h"
#include "gmud/json.h"

#ifndef GMUD_PYTHON
#error "GMUD_PYTHON must name the python3 interpreter (tests/CMakeLists.txt sets it)"
#endif
#ifndef GMUD_PEER_SCRIPT
#error "GMUD_PEER_SCRIPT must name tests/lecture/lecture_peer.py (tests/CMakeLists.txt sets it)"
#endif

/* time.asctime(time.gmtime(1553946050)): the peer's fixed timestamp. */
#define CTIME "Sat Mar 30 11:40:50 2019"

enum {
    IO_TIMEOUT_S = 10,   /* any one socket call, pipe read or child exit */
    WATCHDOG_S = 60,     /* the whole test */
    FD_SCAN = 256,       /* fds checked for leaks */
    LECTURE_COUNT = 200, /* messages per direction and framing */
    OUT_CAP = 64 * 1024, /* peer stdout kept */
    MSG_CAP = 256        /* one lecture message, generously */
};

typedef struct framing_case {
    const char *name;      /* the peer's name for it */
    gmud_framing framing;
    int is_json;           /* payload is the lecture's JSON object */
} framing_case;

static const framing_case framing_cases[] = {
    {"fixed", GMUD_FRAMING_FIXED, 0},
    {"length", GMUD_FRAMING_LENGTH, 0},
    {"json", GMUD_FRAMING_LENGTH, 1},
    {"gmud", GMUD_FRAMING_GMUD, 1},
};

/* A running peer: its pid, our end of the socket, its stdout. */
typedef struct peer {
    pid_t pid;
    int sock;
    int out;
} peer;

/* pid_t is an int on every platform this runs on; sig_atomic_t keeps the
 * handler's read of it well defined. */
static volatile sig_atomic_t watchdog_child;

static void on_watchdog(int sig)
{
    static const char text[] = "test_interop: watchdog expired, giving up\n";
    (void)sig;
    if (watchdog_child > 0)
        kill((pid_t)watchdog_child, SIGKILL);
    ssize_t w = write(STDERR_FILENO, text, sizeof text - 1);
    (void)w;
    _exit(1);
}

static void start_watchdog(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(WATCHDOG_S);
}

/* ---- Expected bytes ------------------------------------------------------ */

static size_t lecture_text(int n, char *out, size_t cap)
{
    return (size_t)snprintf(out, cap, "%d:%s", n, CTIME);
}

/* Exactly what Python's json.dumps() gives for the lecture's object: default
 * separators ", " and ": ", keys in insertion order. */
static size_t lecture_json(int n, char *out, size_t cap)
{
    return (size_t)snprintf(out, cap, "{\"time\": \"%s\", \"message\": \"%d:%s\", \"value\": %d}",
                            CTIME, n, CTIME, n);
}

/* What the peer prints for message n: json.dumps(obj, sort_keys=True) or the
 * text. */
static size_t lecture_line(const framing_case *fc, int n, char *out, size_t cap)
{
    if (fc->is_json)
        return (size_t)snprintf(out, cap,
                                "{\"message\": \"%d:%s\", \"time\": \"%s\", \"value\": %d}\n", n,
                                CTIME, CTIME, n);
    return (size_t)snprintf(out, cap, "%d:%s\n", n, CTIME);
}

static size_t lecture_payload(const framing_case *fc, int n, char *out, size_t cap)
{
    return fc->is_json ? lecture_json(n, out, cap) : lecture_text(n, out, cap);
}

static void hex_text(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 4 < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, i ? " %02x" : "%02x", p[i]);
}

/* ---- The peer process ---------------------------------------------------- */

static void set_cloexec(int fd, int on)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0)
        fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

/* The interpreter to run. CMake may have found a launcher (a pyenv shim
 * costs a second per start on a busy machine), so resolve_python() asks it
 * once for the real binary. */
static const char *python_path = GMUD_PYTHON;
static char python_resolved[4096];

/* Forks argv[0] with stdout on a pipe (p->out) and, if child_sock >= 0,
 * that fd left open across exec. Closes child_sock in the parent. 0 or -1. */
static int spawn(peer *p, const char *const *argv, int child_sock)
{
    int out[2];
    p->pid = -1;
    p->out = -1;
    if (pipe(out) != 0) {
        perror("pipe");
        if (child_sock >= 0)
            close(child_sock);
        return -1;
    }
    /* Our ends must not reach the child: it would never see end of stream. */
    set_cloexec(out[0], 1);
    if (p->sock >= 0)
        set_cloexec(p->sock, 1);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        /* Child: async-signal-safe calls only until exec. */
        close(out[0]);
        if (p->sock >= 0)
            close(p->sock);
        if (out[1] != STDOUT_FILENO) {
            if (dup2(out[1], STDOUT_FILENO) < 0)
                _exit(127);
            close(out[1]);
        }
        if (child_sock >= 0)
            set_cloexec(child_sock, 0);
        execv(argv[0], (char *const *)argv);
        static const char text[] = "test_interop: cannot exec the python interpreter\n";
        ssize_t w = write(STDERR_FILENO, text, sizeof text - 1);
        (void)w;
        _exit(127);
    }
    close(out[1]);
    if (child_sock >= 0)
        close(child_sock);
    if (pid < 0) {
        perror("fork");
        close(out[0]);
        return -1;
    }
    p->pid = pid;
    p->out = out[0];
    watchdog_child = (sig_atomic_t)pid;
    return 0;
}

/* Starts `python3 -I -S lecture_peer.py mode framing <fd> count [extra...]`
 * on one end of a fresh socketpair. 0 on success, -1 (with a message) if
 * not. -I -S: the peer uses the standard library only, so nothing from the
 * environment or site-packages may change what it does. */
static int peer_start(peer *p, const char *mode, const char *framing, int count,
                      const char *extra1, const char *extra2)
{
    int sv[2];
    p->pid = -1;
    p->sock = -1;
    p->out = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        return -1;
    }
    char fd_text[16], count_text[16];
    snprintf(fd_text, sizeof fd_text, "%d", sv[1]);
    snprintf(count_text, sizeof count_text, "%d", count);
    const char *argv[] = {python_path, "-I",       "-S",   GMUD_PEER_SCRIPT, mode, framing,
                          fd_text,     count_text, extra1, extra2,           NULL};
    p->sock = sv[0];
    if (spawn(p, argv, sv[1]) != 0) {
        close(sv[0]);
        p->sock = -1;
        return -1;
    }

    struct timeval tv = {IO_TIMEOUT_S, 0};
    if (setsockopt(p->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(p->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
        perror("setsockopt");
    return 0;
}

/* Reads the pipe to end of file, each wait bounded. Returns bytes kept (at
 * most cap), or -1 on a timeout or error. */
static ptrdiff_t read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int ready = poll(&pfd, 1, IO_TIMEOUT_S * 1000);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0) {
            fprintf(stderr, "test_interop: peer stdout: %s\n",
                    ready == 0 ? "nothing for the timeout" : strerror(errno));
            return -1;
        }
        char scratch[512];
        char *dst = len < cap ? buf + len : scratch;
        size_t room = len < cap ? cap - len : sizeof scratch;
        ssize_t n = read(fd, dst, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return (ptrdiff_t)len;
        if (dst != scratch)
            len += (size_t)n;
    }
}

/* waitpid() bounded by IO_TIMEOUT_S; a peer that overstays is killed and
 * reaped, so no zombie is left either way. 0 if it exited by itself. */
static int wait_bounded(pid_t pid, int *status)
{
    for (int i = 0; i < IO_TIMEOUT_S * 100; i++) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "test_interop: peer %d did not exit, killing it\n", (int)pid);
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    return -1;
}

/* Closes our socket end (the peer sees end of stream), collects its stdout
 * and its exit status. Returns the exit code, or -1 if it did not exit
 * normally. *out_len is the stdout length (or -1). */
static int peer_finish(peer *p, char *out, size_t cap, ptrdiff_t *out_len)
{
    if (p->sock >= 0)
        close(p->sock);
    p->sock = -1;
    ptrdiff_t n = read_all(p->out, out, cap);
    if (out_len != NULL)
        *out_len = n;
    close(p->out);
    p->out = -1;
    int status = 0;
    int waited = wait_bounded(p->pid, &status);
    watchdog_child = 0;
    p->pid = -1;
    if (waited != 0 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void resolve_python(void)
{
    const char *argv[] = {GMUD_PYTHON, "-I", "-S", "-c",
                          "import sys; sys.stdout.write(sys.executable)", NULL};
    peer p = {-1, -1, -1};
    if (spawn(&p, argv, -1) != 0)
        return;
    ptrdiff_t n = 0;
    int status = peer_finish(&p, python_resolved, sizeof python_resolved - 1, &n);
    if (status == 0 && n > 0 && (size_t)n < sizeof python_resolved - 1) {
        python_resolved[n] = '\0';
        if (python_resolved[0] == '/' && access(python_resolved, X_OK) == 0)
            python_path = python_resolved;
    }
}

/* ---- Socket I/O ---------------------------------------------------------- */

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            perror("send");
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* recv() with the asked size rotating through 1, 7, 100 and 4096 bytes, so
 * frames straddle reads at every position. 0 at end of stream, -1 on error
 * or timeout. */
static ptrdiff_t recv_rotating(int fd, uint8_t *buf, unsigned *turn)
{
    static const size_t sizes[] = {1, 7, 100, 4096};
    size_t want = sizes[(*turn)++ % (sizeof sizes / sizeof sizes[0])];
    for (;;) {
        ssize_t n = recv(fd, buf, want, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            fprintf(stderr, "test_interop: recv: nothing from the peer for %d s\n", IO_TIMEOUT_S);
        else if (n < 0)
            perror("recv");
        return n;
    }
}

static gmud_frame_decoder *decoder_for(const framing_case *fc)
{
    gmud_frame_config cfg;
    gmud_error err;
    gmud_frame_default_config(&cfg, fc->framing);
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&cfg, &err);
    if (dec == NULL)
        fprintf(stderr, "decoder for %s: %s\n", fc->name, err.message);
    return dec;
}

/* ---- a) Python sends, C decodes ----------------------------------------- */

static void check_json_message(const gmud_slice *msg, int n, const char *text)
{
    gmud_json_limits lim;
    gmud_error err;
    json_t *v = NULL;
    gmud_json_default_config(&lim);
    int rc = gmud_json_parse(msg->data, msg->len, &lim, &v, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  message %d: %s\n", n, err.message);
        return;
    }
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "value")), n);
    const char *message = json_string_value(json_object_get(v, "message"));
    const char *when = json_string_value(json_object_get(v, "time"));
    CHECK(message != NULL && strcmp(message, text) == 0);
    CHECK(when != NULL && strcmp(when, CTIME) == 0);
    json_decref(v);
}

/* Checks message n as decoded against the bytes the peer must have sent. */
static void check_lecture_message(const framing_case *fc, int n, gmud_slice msg)
{
    char want[MSG_CAP], text[MSG_CAP];
    size_t want_len = lecture_payload(fc, n, want, sizeof want);
    lecture_text(n, text, sizeof text);
    if (fc->framing == GMUD_FRAMING_FIXED) {
        uint8_t packet[GMUD_FIXED_SIZE_DEFAULT] = {0};
        memcpy(packet, want, want_len);
        CHECK_MEM(msg.data, msg.len, packet, sizeof packet);
        gmud_slice trimmed = gmud_frame_trim_padding(msg);
        CHECK_MEM(trimmed.data, trimmed.len, want, want_len);
    } else {
        CHECK_MEM(msg.data, msg.len, want, want_len);
    }
    if (fc->is_json)
        check_json_message(&msg, n, text);
}

static void test_python_sends(const framing_case *fc)
{
    peer p;
    gmud_frame_decoder *dec = decoder_for(fc);
    CHECK(dec != NULL);
    if (dec == NULL || peer_start(&p, "send", fc->name, LECTURE_COUNT, NULL, NULL) != 0) {
        CHECK(0);
        gmud_frame_decoder_destroy(dec);
        return;
    }
    uint8_t buf[4096];
    unsigned turn = 0;
    int got = 0, failed = 0;
    gmud_error err;
    while (!failed) {
        ptrdiff_t n = recv_rotating(p.sock, buf, &turn);
        if (n <= 0) {
            CHECK_EQ_INT(n, 0);
            break;
        }
        for (size_t off = 0; off < (size_t)n;) {
            gmud_slice msg;
            ptrdiff_t used = gmud_frame_decode(dec, buf + off, (size_t)n - off, &msg, &err);
            if (used < 0) {
                fprintf(stderr, "%s: decode: %s\n", fc->name, err.message);
                CHECK(0);
                failed = 1;
                break;
            }
            if (used == 0)
                break;
            check_lecture_message(fc, got++, msg);
            off += (size_t)used;
        }
    }
    CHECK_EQ_INT(got, LECTURE_COUNT);
    CHECK_EQ_INT(gmud_frame_decoder_finish(dec, &err), 0);
    CHECK_EQ_INT(gmud_frame_decoder_pending(dec), 0);
    char out[OUT_CAP];
    ptrdiff_t out_len = 0;
    CHECK_EQ_INT(peer_finish(&p, out, sizeof out, &out_len), 0);
    CHECK_EQ_INT(out_len, 0); /* send mode prints nothing */
    gmud_frame_decoder_destroy(dec);
    printf("  %-6s python -> C: %d messages\n", fc->name, got);
}

/* ---- b) C encodes, Python receives --------------------------------------- */

/* Message n's payload. For JSON, odd n go through jansson and
 * gmud_json_dump() (compact, no spaces); even n are Python's own spelling.
 * A lecture receiver takes both. */
static size_t c_payload(const framing_case *fc, int n, char *out, size_t cap)
{
    if (!fc->is_json || n % 2 == 0)
        return lecture_payload(fc, n, out, cap);
    char text[MSG_CAP];
    gmud_error err;
    lecture_text(n, text, sizeof text);
    json_t *v = json_pack("{s:s, s:s, s:i}", "time", CTIME, "message", text, "value", n);
    ptrdiff_t len = v ? gmud_json_dump(v, (uint8_t *)out, cap, &err) : -1;
    json_decref(v);
    CHECK(len > 0);
    return len > 0 ? (size_t)len : 0;
}

/* Sends stream[0..len): the first half as runs of whole frames glued into
 * one send() each (frame_ends marks where frames end), the rest in chunks
 * that cut frames anywhere. */
static int send_glued(int fd, const uint8_t *stream, size_t len, const size_t *frame_ends,
                      int frames)
{
    static const int run[] = {1, 2, 3, 5, 8};
    static const size_t cut[] = {13, 1, 250, 7, 4096};
    size_t pos = 0;
    int f = 0, turn = 0;
    while (f < frames / 2) {
        f += run[turn++ % 5];
        if (f > frames / 2)
            f = frames / 2;
        if (send_all(fd, stream + pos, frame_ends[f - 1] - pos) != 0)
            return -1;
        pos = frame_ends[f - 1];
    }
    while (pos < len) {
        size_t n = cut[turn++ % 5];
        if (n > len - pos)
            n = len - pos;
        if (send_all(fd, stream + pos, n) != 0)
            return -1;
        pos += n;
    }
    return 0;
}

static void test_python_receives(const framing_case *fc)
{
    enum { FRAME_MAX = GMUD_FIXED_SIZE_DEFAULT + MSG_CAP };
    static uint8_t stream[LECTURE_COUNT * FRAME_MAX];
    static char want[LECTURE_COUNT * MSG_CAP];
    size_t frame_ends[LECTURE_COUNT];
    size_t len = 0, want_len = 0;
    gmud_frame_config cfg;
    gmud_error err;
    gmud_frame_default_config(&cfg, fc->framing);
    for (int n = 0; n < LECTURE_COUNT; n++) {
        char payload[MSG_CAP];
        size_t plen = c_payload(fc, n, payload, sizeof payload);
        ptrdiff_t w =
            gmud_frame_encode(&cfg, payload, plen, stream + len, sizeof stream - len, &err);
        CHECK(w > 0);
        if (w <= 0) {
            fprintf(stderr, "%s: encode: %s\n", fc->name, err.message);
            return;
        }
        len += (size_t)w;
        frame_ends[n] = len;
        want_len += lecture_line(fc, n, want + want_len, sizeof want - want_len);
    }

    peer p;
    if (peer_start(&p, "recv", fc->name, LECTURE_COUNT, NULL, NULL) != 0) {
        CHECK(0);
        return;
    }
    CHECK_EQ_INT(send_glued(p.sock, stream, len, frame_ends, LECTURE_COUNT), 0);
    static char out[OUT_CAP];
    ptrdiff_t out_len = 0;
    CHECK_EQ_INT(peer_finish(&p, out, sizeof out, &out_len), 0);
    CHECK_MEM(out, out_len < 0 ? 0 : (size_t)out_len, want, want_len);
    printf("  %-6s C -> python: %d messages, %zu bytes\n", fc->name, LECTURE_COUNT, len);
}

/* ---- c) Python echoes across the length range ---------------------------- */

/* A payload of exactly size bytes. Text framings get arbitrary bytes, zero
 * and 0xff included (nothing in length framing looks inside), except fixed,
 * whose packets the peer would not change anyway. JSON framings get the
 * lecture's object with the message padded out with 'x' (0 if size is too
 * small for the object). */
static size_t sized_payload(const framing_case *fc, int n, size_t size, uint8_t *out)
{
    if (!fc->is_json) {
        for (size_t i = 0; i < size; i++)
            out[i] = (uint8_t)(fc->framing == GMUD_FRAMING_FIXED ? 'a' + (i + (size_t)n) % 26
                                                                : (i * 7 + (size_t)n) % 256);
        return size;
    }
    char head[MSG_CAP];
    size_t base = lecture_json(n, head, sizeof head);
    if (size < base)
        return 0;
    /* {"time": "...", "message": "n:ctime<pad>", "value": n} */
    int upto = snprintf((char *)out, size + 1, "{\"time\": \"%s\", \"message\": \"%d:%s", CTIME, n,
                        CTIME);
    size_t pos = (size_t)upto;
    memset(out + pos, 'x', size - base);
    pos += size - base;
    pos += (size_t)snprintf((char *)out + pos, size + 1 - pos, "\", \"value\": %d}", n);
    return pos;
}

/* Reads until the decoder yields one message; copies it to out. Returns its
 * length or -1. Nothing may follow it: the peer answers one message at a
 * time. */
static ptrdiff_t recv_one(int fd, gmud_frame_decoder *dec, uint8_t *out, size_t cap,
                          unsigned *turn)
{
    uint8_t buf[4096];
    gmud_error err;
    for (;;) {
        ptrdiff_t n = recv_rotating(fd, buf, turn);
        if (n <= 0) {
            fprintf(stderr, "echo: stream ended before the reply\n");
            return -1;
        }
        gmud_slice msg;
        ptrdiff_t used = gmud_frame_decode(dec, buf, (size_t)n, &msg, &err);
        if (used < 0) {
            fprintf(stderr, "echo: decode: %s\n", err.message);
            return -1;
        }
        if (used == 0)
            continue;
        CHECK_EQ_INT(used, n);
        if (msg.len > cap)
            return -1;
        memcpy(out, msg.data, msg.len);
        return (ptrdiff_t)msg.len;
    }
}

static void test_echo(const framing_case *fc)
{
    static const size_t sizes_16bit[] = {0,    1,    2,    255,   256,   257,
                                         511,  4095, 4096, 4097,  65534, 65535};
    static const size_t sizes_json[] = {255, 256, 257, 1000, 4096, 65280, 65535};
    static const size_t sizes_fixed[] = {0, 1, 99, 100};
    const size_t *sizes = sizes_16bit;
    int count = (int)(sizeof sizes_16bit / sizeof sizes_16bit[0]);
    if (fc->is_json) {
        sizes = sizes_json;
        count = (int)(sizeof sizes_json / sizeof sizes_json[0]);
    } else if (fc->framing == GMUD_FRAMING_FIXED) {
        sizes = sizes_fixed;
        count = (int)(sizeof sizes_fixed / sizeof sizes_fixed[0]);
    }
    enum { CAP = 65535 + 6 };
    uint8_t *payload = malloc(CAP + 1), *frame = malloc(CAP), *back = malloc(CAP);
    gmud_frame_decoder *dec = decoder_for(fc);
    peer p;
    if (payload == NULL || frame == NULL || back == NULL || dec == NULL ||
        peer_start(&p, "echo", fc->name, count, NULL, NULL) != 0) {
        CHECK(0);
        goto out;
    }
    gmud_frame_config cfg;
    gmud_error err;
    gmud_frame_default_config(&cfg, fc->framing);
    unsigned turn = 0;
    int echoed = 0;
    for (int i = 0; i < count; i++) {
        size_t plen = sized_payload(fc, i, sizes[i], payload);
        CHECK_EQ_INT(plen, sizes[i]);
        ptrdiff_t w = gmud_frame_encode(&cfg, payload, plen, frame, CAP, &err);
        CHECK(w > 0);
        if (w <= 0 || send_all(p.sock, frame, (size_t)w) != 0)
            break;
        ptrdiff_t got = recv_one(p.sock, dec, back, CAP, &turn);
        CHECK(got >= 0);
        if (got < 0)
            break;
        if (fc->framing == GMUD_FRAMING_FIXED) {
            CHECK_EQ_INT(got, GMUD_FIXED_SIZE_DEFAULT);
            gmud_slice t = gmud_frame_trim_padding((gmud_slice){back, (size_t)got});
            CHECK_MEM(t.data, t.len, payload, plen);
        } else {
            CHECK_MEM(back, (size_t)got, payload, plen);
        }
        echoed++;
    }
    CHECK_EQ_INT(echoed, count);
    CHECK_EQ_INT(gmud_frame_decoder_finish(dec, &err), 0);
    char out[OUT_CAP];
    ptrdiff_t out_len = 0;
    CHECK_EQ_INT(peer_finish(&p, out, sizeof out, &out_len), 0);
    CHECK_EQ_INT(out_len, 0);
    printf("  %-6s echo: %d payloads, up to %zu bytes\n", fc->name, echoed, sizes[count - 1]);
out:
    gmud_frame_decoder_destroy(dec);
    free(payload);
    free(frame);
    free(back);
}

/* ---- d) C sends a wrong label, Python says Invalid Packet ---------------- */

static void test_python_rejects_label(void)
{
    const framing_case *fc = &framing_cases[3];
    gmud_frame_config good, bad;
    gmud_error err;
    gmud_frame_default_config(&good, GMUD_FRAMING_GMUD);
    bad = good;
    CHECK_EQ_INT(gmud_frame_config_set_label(&bad, "XXXX", &err), 0);

    /* A good packet, a foreign one, a good one: all in one send(). */
    uint8_t stream[3 * MSG_CAP];
    size_t len = 0;
    for (int n = 0; n < 3; n++) {
        char payload[MSG_CAP];
        size_t plen = lecture_json(n, payload, sizeof payload);
        ptrdiff_t w = gmud_frame_encode(n == 1 ? &bad : &good, payload, plen, stream + len,
                                        sizeof stream - len, &err);
        CHECK(w > 0);
        if (w <= 0)
            return;
        len += (size_t)w;
    }
    char want[2 * MSG_CAP];
    size_t want_len = lecture_line(fc, 0, want, sizeof want);
    want_len += (size_t)snprintf(want + want_len, sizeof want - want_len, "Invalid Packet\n");

    peer p;
    if (peer_start(&p, "recv", "gmud", 3, NULL, NULL) != 0) {
        CHECK(0);
        return;
    }
    CHECK_EQ_INT(send_all(p.sock, stream, len), 0);
    char out[OUT_CAP];
    ptrdiff_t out_len = 0;
    int status = peer_finish(&p, out, sizeof out, &out_len);
    CHECK(status > 0); /* exited by itself, non-zero */
    CHECK_MEM(out, out_len < 0 ? 0 : (size_t)out_len, want, want_len);
    printf("  gmud   C -> python, label XXXX: peer printed Invalid Packet, exit %d\n", status);
}

/* ---- e) Python sends a corrupted label, C refuses it for good ------------ */

static void test_c_rejects_label(int count, int bad_index, const char *bad_label)
{
    const framing_case *fc = &framing_cases[3];
    char index_text[16];
    snprintf(index_text, sizeof index_text, "%d", bad_index);

    /* Where the bad packet starts, and what the error must quote: at least
     * the label bytes up to the first wrong one, however the reads fell. */
    size_t bad_at = 0;
    for (int n = 0; n < bad_index; n++) {
        char payload[MSG_CAP];
        bad_at += GMUD_LABEL_SIZE + 2 + lecture_json(n, payload, sizeof payload);
    }
    size_t first_wrong = 0;
    while (first_wrong < GMUD_LABEL_SIZE && bad_label[first_wrong] == "GMUD"[first_wrong])
        first_wrong++;
    char seen_hex[32];
    hex_text((const uint8_t *)bad_label, first_wrong + 1, seen_hex, sizeof seen_hex);

    gmud_frame_decoder *dec = decoder_for(fc);
    peer p;
    if (dec == NULL || peer_start(&p, "send", "gmud", count, index_text, bad_label) != 0) {
        CHECK(0);
        gmud_frame_decoder_destroy(dec);
        return;
    }
    uint8_t buf[4096];
    unsigned turn = 0;
    int got = 0, errors = 0, after_error = 0;
    gmud_error err, first;
    memset(&first, 0, sizeof first);
    for (;;) {
        ptrdiff_t n = recv_rotating(p.sock, buf, &turn);
        if (n <= 0) {
            CHECK_EQ_INT(n, 0);
            break;
        }
        for (size_t off = 0; off < (size_t)n;) {
            gmud_slice msg;
            ptrdiff_t used = gmud_frame_decode(dec, buf + off, (size_t)n - off, &msg, &err);
            if (used < 0) {
                if (errors++ == 0)
                    first = err;
                else
                    after_error += err.code == first.code;
                break; /* the rest of this read, and every later one, must fail too */
            }
            if (used == 0)
                break;
            CHECK(errors == 0);
            check_lecture_message(fc, got++, msg);
            off += (size_t)used;
        }
    }
    CHECK_EQ_INT(got, bad_index);
    CHECK_EQ_INT(first.code, GMUD_ERR_BAD_LABEL);
    CHECK_EQ_INT(first.offset, bad_at);
    CHECK_CONTAINS(first.message, seen_hex);
    CHECK_EQ_INT(after_error, errors - 1); /* later reads, if any, were refused */
    /* Sticky: even a well-formed empty packet is refused, with the same
     * report. */
    gmud_slice msg;
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(gmud_frame_decode(dec, (const uint8_t *)"GMUD\0\0", 6, &msg, &err),
                 GMUD_ERR_BAD_LABEL);
    CHECK(strcmp(err.message, first.message) == 0);
    CHECK_EQ_INT(gmud_frame_decoder_finish(dec, &err), GMUD_ERR_BAD_LABEL);
    char out[OUT_CAP];
    ptrdiff_t out_len = 0;
    CHECK_EQ_INT(peer_finish(&p, out, sizeof out, &out_len), 0);
    gmud_frame_decoder_destroy(dec);
    printf("  gmud   python -> C, label %s at packet %d: %s\n", bad_label, bad_index,
           first.message);
}

/* ---- Housekeeping -------------------------------------------------------- */

static void open_fds(unsigned char *open_now)
{
    for (int fd = 0; fd < FD_SCAN; fd++)
        open_now[fd] = fcntl(fd, F_GETFD) != -1;
}

int main(void)
{
    unsigned char fds_before[FD_SCAN], fds_after[FD_SCAN];
    start_watchdog();
    open_fds(fds_before);
    resolve_python();
    printf("  python: %s\n", python_path);

    for (size_t i = 0; i < sizeof framing_cases / sizeof framing_cases[0]; i++) {
        test_python_sends(&framing_cases[i]);
        test_python_receives(&framing_cases[i]);
        test_echo(&framing_cases[i]);
    }
    test_python_rejects_label();
    test_c_rejects_label(8, 3, "GMUX");
    test_c_rejects_label(4, 0, "XXXX");

    open_fds(fds_after);
    CHECK(memcmp(fds_before, fds_after, sizeof fds_before) == 0); /* no fd leaked */
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD); /* no child left */
    alarm(0);
    return check_report("test_interop");
}
