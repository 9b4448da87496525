/* gmud-client: stdin lines out as messages, messages in as stdout lines.
 *
 *   gmud-client [--host ADDR] [--port PORT] [--framing ...] [--payload ...] < lines
 *
 * Everything runs on one libuv loop: the connection, stdin and the timers.
 * stdin may be a terminal, a pipe, a socket or a regular file; the last
 * cannot be polled, so it is read in bounded chunks from an idle handle.
 * Reading stdin pauses while too much output is queued on the connection,
 * so a large input costs bounded memory.
 *
 * Exit status, one per kind of failure (README.md lists them):
 *   0  a clean close: ours after stdin ended and --wait passed, or the
 *      server's end of stream with nothing wrong before it;
 *   1  could not connect, the connection broke (an I/O error, a local
 *      limit), or a line could not be sent, was refused, or was dropped
 *      by the server over its rate limit (rate_dropped);
 *   2  bad usage: a bad option, or a configuration that cannot work;
 *   3  refused by the server: its error packet, then its close (server
 *      full, an address limit, not welcomed, ...);
 *   4  a protocol or session violation: a framing error, a packet that
 *      fails its session check, no welcome.
 * The most specific failure wins: a refused line (1) followed by the
 * server's refusal (3) exits 3.
 */
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmud/client.h"
#include "gmud/json.h"
#include "options.h"

enum {
    STDIN_CHUNK = 64 * 1024    /* bytes read from a regular file per loop turn */
};

enum exit_status {
    EXIT_CLEAN = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_REFUSED = 3,
    EXIT_VIOLATION = 4
};

typedef enum input_kind { IN_NONE, IN_STREAM, IN_FILE } input_kind;

typedef struct client_app {
    prog_options opt;
    uv_loop_t loop;
    gmud_client *client;
    gmud_conn *conn;            /* from on_connect until on_close */

    input_kind in_kind;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tty_t tty;
        uv_pipe_t pipe;
        uv_tcp_t tcp;
        uv_idle_t idle;         /* IN_FILE: reads a chunk each turn */
    } in;
    int in_open;                /* the stdin handle is initialised, not yet closed */
    int in_reading;
    int in_done;                /* end of stdin seen */
    int got_first;              /* a message has arrived */
    char *chunk;                /* IN_FILE: the read buffer */

    char *line;                 /* the line being assembled */
    size_t line_len, line_cap;  /* line_cap = max_message + 1, for a "\r" */
    int line_too_long;          /* dropping the rest of an overlong line */
    unsigned long lineno;

    gmud_timer *wait_timer;     /* after end of stdin: --wait, then close */
    int paused;                 /* stdin waits for on_drain */
    const char *rest;           /* while paused: the unread part of chunk */
    size_t rest_len;
    int send_closed;            /* a send found the connection closing */
    uv_prepare_t flusher;       /* flushes stdout once per loop turn */

    int status;                 /* exit status so far */
} client_app;

static void fail_as(client_app *app, enum exit_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Says why on stderr, in order with the log lines, and sets the exit
 * status: a more specific one (2 and up) replaces a general one (1). */
static void fail_as(client_app *app, enum exit_status status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    prog_log_text("gmud-client: %s", msg);
    if (app->status == EXIT_CLEAN || app->status == EXIT_FAILED)
        app->status = status;
}

#define fail(app, ...) fail_as(app, EXIT_FAILED, __VA_ARGS__)

/* The exit status a close of this reason means (see the top). */
static enum exit_status close_status(gmud_close_reason reason)
{
    switch (reason) {
    case GMUD_CLOSE_REFUSED:
    case GMUD_CLOSE_SERVER_FULL:
    case GMUD_CLOSE_ADDR_LIMITED:
        return EXIT_REFUSED;
    case GMUD_CLOSE_PROTOCOL:
    case GMUD_CLOSE_SESSION:
    case GMUD_CLOSE_BAD_MESSAGES:
        return EXIT_VIOLATION;
    default:
        return EXIT_FAILED;
    }
}

/* ---- Receiving ---------------------------------------------------------- */

/* A session welcome, {"session_id": <n>, "sequence_id": 0}, and nothing
 * else: what a server running sessions sends first. */
static int is_welcome(const json_t *v)
{
    json_t *seq = json_object_get(v, "sequence_id");
    return json_object_size(v) == 2 && json_is_integer(json_object_get(v, "session_id")) &&
           json_is_integer(seq) && json_integer_value(seq) == 0;
}

static void on_message(gmud_conn *conn, const uint8_t *data, size_t len, json_t *json,
                       void *user)
{
    client_app *app = user;
    (void)conn;
    int first = !app->got_first;
    app->got_first = 1;
    /* Nothing on the wire names the session mode: say what the welcome
     * means rather than let every later packet fail to parse. */
    if (first && json != NULL && app->opt.conn.session.mode == GMUD_SESSION_OFF &&
        is_welcome(json))
        fail(app, "the server sent a session welcome: it runs sessions; use --session on "
                  "(or lecture) to talk to it");
    gmud_error e;
    int erred = json == NULL ? gmud_text_error_packet(data, len, &e)
                             : gmud_json_error_packet(json, &e);
    /* The server's warning that we send over its rates: we are slowed,
     * nothing is lost, so it is no failure and not a message for stdout.
     * Should the server close us for it, that close says so. */
    if (erred && e.code == GMUD_ERR_RATE_LIMITED) {
        prog_log_text("gmud-client: warning from the server: %s", e.message);
        return;
    }
    /* A server that drops what is over its rates: lines were lost, which
     * is a failure, though the connection goes on. */
    if (erred && e.code == GMUD_ERR_RATE_DROPPED) {
        fail(app, "the server dropped lines: %s", e.message);
        return;
    }
    if (json == NULL)
        fwrite(data, 1, len, stdout);
    else /* straight to stdout: no buffer to size for re-serialised numbers */
        json_dumpf(json, stdout, JSON_COMPACT | JSON_ENCODE_ANY);
    fputc('\n', stdout);
    if (erred)
        fail(app, "error from the server: %s", e.message);
}

/* Output is flushed once per loop turn, before the loop waits: one write for
 * a burst of messages, and nothing held back while the loop sleeps. */
static void flush_stdout(uv_prepare_t *h)
{
    client_app *app = h->data;
    if (fflush(stdout) != 0 && app->status == 0) {
        fail(app, "cannot write to stdout: %s", strerror(errno));
        gmud_client_close(app->client);
    }
}

/* ---- Sending stdin lines ------------------------------------------------ */

static void send_line(client_app *app, const char *line, size_t len)
{
    gmud_error err = {0};
    app->lineno++;
    if (app->opt.conn.payload == GMUD_PAYLOAD_JSON) {
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
            i++;
        if (i == len) /* blank lines carry no object; skip them quietly */
            return;
        gmud_json_limits lim;
        json_t *v = NULL;
        gmud_json_default_config(&lim);
        int rc = gmud_json_parse((const uint8_t *)line, len, &lim, &v, &err);
        json_decref(v);
        if (rc != GMUD_OK) {
            fail(app, "line %lu not sent: %s", app->lineno, err.message);
            return;
        }
    }
    /* The line goes as typed: its bytes, not a re-serialisation. */
    int rc = gmud_conn_send(app->conn, line, len, &err);
    if (rc == GMUD_OK)
        return;
    fail(app, "line %lu not sent: %s", app->lineno, err.message);
    /* The connection is going: say so once, not once a line. */
    if (rc == GMUD_ERR_CLOSED || rc == GMUD_ERR_SLOW_CONSUMER)
        app->send_closed = 1;
}

/* A line ends with "\n" or "\r\n"; neither is part of the message. */
static void end_line(client_app *app, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (app->conn == NULL)
        return;
    size_t max = gmud_conn_max_payload(app->conn);
    if (len > max) {
        app->lineno++;
        fail(app, "line %lu not sent: longer than the maximum message of %zu bytes",
             app->lineno, max);
        return;
    }
    send_line(app, line, len);
}

static void input_start(client_app *app);
static void input_stop(client_app *app);

/* Backpressure, line by line: once half of max_queued is unsent, stdin
 * pauses until the runtime has handed it all to the kernel (on_drain).
 * Nonzero when paused. */
static int backlog_full(client_app *app)
{
    if (app->paused)
        return 1;
    if (app->conn == NULL || gmud_conn_queued(app->conn) < app->opt.conn.limits.max_queued / 2)
        return 0;
    input_stop(app);
    app->paused = 1;
    gmud_conn_want_drain(app->conn);
    return 1;
}

/* Splits data into lines; a line over max_message is refused whole. Lines
 * lying whole in data go straight from it; only a line cut by the end of a
 * read is copied. Returns the bytes taken: fewer than len when the backlog
 * paused input after a line, and the rest waits for on_drain. */
static size_t take_input(client_app *app, const char *data, size_t len)
{
    size_t max = app->opt.conn.frame.max_message;
    const char *start = data;
    while (len > 0 && app->conn != NULL && !app->send_closed) {
        const char *nl = memchr(data, '\n', len);
        size_t part = nl != NULL ? (size_t)(nl - data) : len;
        if (nl != NULL && app->line_len == 0 && !app->line_too_long && part <= max + 1) {
            end_line(app, data, part);
            data += part + 1;
            len -= part + 1;
            if (backlog_full(app))
                break;
            continue;
        }
        if (!app->line_too_long && app->line_len + part > max + 1) {
            app->lineno++;
            fail(app, "line %lu not sent: longer than the maximum message of %zu bytes",
                 app->lineno, max);
            app->line_too_long = 1;
        }
        if (!app->line_too_long) {
            memcpy(app->line + app->line_len, data, part);
            app->line_len += part;
        }
        if (nl == NULL)
            return (size_t)(data - start) + len;
        if (!app->line_too_long)
            end_line(app, app->line, app->line_len);
        app->line_len = 0;
        app->line_too_long = 0;
        data += part + 1;
        len -= part + 1;
        if (backlog_full(app))
            break;
    }
    return (size_t)(data - start);
}

/* A chunk read from stdin; what the backlog leaves is kept for on_drain. */
static void consume(client_app *app, const char *data, size_t len)
{
    size_t used = take_input(app, data, len);
    app->rest = data + used;
    app->rest_len = app->paused ? len - used : 0;
    if (app->send_closed)
        input_stop(app);
}

/* The backlog is in the kernel's hands: the rest of the chunk, then stdin. */
static void on_drain(gmud_conn *conn, void *user)
{
    client_app *app = user;
    (void)conn;
    if (!app->paused)
        return;
    app->paused = 0;
    if (app->rest_len > 0)
        consume(app, app->rest, app->rest_len);
    if (!app->paused && !app->send_closed)
        input_start(app);
}


static void wait_over(gmud_timer *timer, void *user)
{
    client_app *app = user;
    gmud_timer_destroy(timer);
    app->wait_timer = NULL;
    gmud_client_close(app->client);
}

static void input_closed(uv_handle_t *h)
{
    (void)h;
}

static void input_close(client_app *app)
{
    if (!app->in_open)
        return;
    app->in_open = 0;
    app->in_reading = 0;
    uv_close(&app->in.handle, input_closed);
}

/* End of stdin: send a last unterminated line, then wait for replies. */
static void input_ended(client_app *app)
{
    app->in_done = 1;
    input_close(app);
    if (app->conn == NULL)
        return;
    if (app->line_len > 0 && !app->line_too_long)
        end_line(app, app->line, app->line_len);
    app->line_len = 0;
    app->wait_timer = gmud_timer_create(&app->loop, app->opt.wait_ms, 0, wait_over, app);
    if (app->wait_timer == NULL)
        gmud_client_close(app->client);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client_app *app = h->data;
    (void)suggested;
    buf->base = app->chunk;
    buf->len = STDIN_CHUNK;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    client_app *app = s->data;
    if (nread > 0) {
        consume(app, buf->base, (size_t)nread);
    } else if (nread == UV_EOF) {
        input_ended(app);
    } else if (nread < 0) {
        fail(app, "cannot read stdin: %s", uv_strerror((int)nread));
        input_ended(app);
    }
}

/* A regular file (or /dev/null) cannot be polled; it never blocks either,
 * so read one bounded chunk per loop turn. */
static void file_read_cb(uv_idle_t *h)
{
    client_app *app = h->data;
    ssize_t n = read(STDIN_FILENO, app->chunk, STDIN_CHUNK);
    if (n < 0 && errno == EINTR)
        return;
    if (n > 0) {
        consume(app, app->chunk, (size_t)n);
        return;
    }
    if (n < 0)
        fail(app, "cannot read stdin: %s", strerror(errno));
    input_ended(app);
}

static void input_start(client_app *app)
{
    if (!app->in_open || app->in_reading)
        return;
    int rc = app->in_kind == IN_FILE ? uv_idle_start(&app->in.idle, file_read_cb)
                                     : uv_read_start(&app->in.stream, alloc_cb, read_cb);
    if (rc != 0) {
        fail(app, "cannot read stdin: %s", uv_strerror(rc));
        input_ended(app);
        return;
    }
    app->in_reading = 1;
}

static void input_stop(client_app *app)
{
    if (!app->in_open || !app->in_reading)
        return;
    if (app->in_kind == IN_FILE)
        uv_idle_stop(&app->in.idle);
    else
        uv_read_stop(&app->in.stream);
    app->in_reading = 0;
}

/* Opens stdin as whatever it is; 0, or a libuv error code. */
static int input_open(client_app *app)
{
    int rc;
    uv_handle_type type = uv_guess_handle(STDIN_FILENO);
    app->in_kind = IN_STREAM;
    switch (type) {
    case UV_TTY:
        rc = uv_tty_init(&app->loop, &app->in.tty, STDIN_FILENO, 1);
        break;
    case UV_NAMED_PIPE:
        rc = uv_pipe_init(&app->loop, &app->in.pipe, 0);
        if (rc == 0 && (rc = uv_pipe_open(&app->in.pipe, STDIN_FILENO)) != 0)
            uv_close(&app->in.handle, input_closed);
        break;
    case UV_TCP:
        rc = uv_tcp_init(&app->loop, &app->in.tcp);
        if (rc == 0 && (rc = uv_tcp_open(&app->in.tcp, STDIN_FILENO)) != 0)
            uv_close(&app->in.handle, input_closed);
        break;
    case UV_FILE:
        app->in_kind = IN_FILE;
        rc = uv_idle_init(&app->loop, &app->in.idle);
        break;
    default: /* no stdin at all (closed): as if empty */
        app->in_kind = IN_NONE;
        return 0;
    }
    if (rc != 0)
        return rc;
    app->in.handle.data = app;
    app->in_open = 1;
    return 0;
}

/* ---- The connection ----------------------------------------------------- */

static void on_connect(gmud_conn *conn, void *user)
{
    client_app *app = user;
    app->conn = conn;
    if (app->opt.conn.session.mode == GMUD_SESSION_LECTURE) {
        /* The library answers each packet with the lecture's reply; stdin
         * has nothing to send. The server's close ends the run. */
        return;
    }
    int rc = input_open(app);
    if (rc != 0) {
        fail(app, "cannot read stdin: %s", uv_strerror(rc));
        input_ended(app);
    } else if (app->in_kind == IN_NONE) {
        input_ended(app);
    } else {
        input_start(app);
    }
}

static void on_close(gmud_conn *conn, gmud_close_reason reason, const gmud_error *detail,
                     void *user)
{
    client_app *app = user;
    const prog_options *o = &app->opt;
    (void)conn;
    app->conn = NULL;
    input_close(app);
    gmud_timer_destroy(app->wait_timer);
    app->wait_timer = NULL;
    app->paused = 0;
    uv_prepare_stop(&app->flusher);
    fflush(stdout);
    const char *why = detail != NULL && detail->message[0] != '\0' ? detail->message : "";
    switch (reason) {
    case GMUD_CLOSE_LOCAL:
    case GMUD_CLOSE_PEER: /* a clean end of stream, between frames */
        break;
    case GMUD_CLOSE_CONNECT_FAILED:
        if (why[0] != '\0')
            fail(app, "%s", why);
        else
            fail(app, "cannot connect to %s port %d", o->host, o->port);
        break;
    default:
        fail_as(app, close_status(reason), "connection closed: %s%s%s",
                gmud_close_reason_name(reason), why[0] ? ": " : "", why);
        break;
    }
}

static int run(client_app *app)
{
    gmud_client_config cfg;
    gmud_error err = {0};
    const prog_options *o = &app->opt;
    gmud_client_default_config(&cfg);
    cfg.host = o->host;
    cfg.port = (uint16_t)o->port;
    /* o->conn.limits are a client's (gmud_client_default_config): it never
     * stops reading the socket because its own output is backed up
     * (against an echo server that would deadlock, each side waiting for
     * the other to read; its output is bounded instead by pausing stdin,
     * above), nor rate-limits what its server sends. */
    cfg.conn = o->conn;
    cfg.conn.cb.on_connect = on_connect;
    cfg.conn.cb.on_message = on_message;
    cfg.conn.cb.on_close = on_close;
    cfg.conn.cb.on_drain = on_drain;
    cfg.conn.cb.user = app;
    cfg.conn.log = prog_log;
    cfg.conn.log_user = &app->opt;
    app->line_cap = o->conn.frame.max_message + 1; /* room for a "\r" before the "\n" */
    app->line = malloc(app->line_cap);
    app->chunk = malloc(STDIN_CHUNK);
    if (app->line == NULL || app->chunk == NULL) {
        fail(app, "out of memory");
        return 1;
    }
    uv_prepare_init(&app->loop, &app->flusher);
    app->flusher.data = app;
    uv_prepare_start(&app->flusher, flush_stdout);
    uv_unref((uv_handle_t *)&app->flusher); /* it alone must not keep the loop alive */
    app->client = gmud_client_create(&app->loop, &cfg, &err);
    if (app->client == NULL) {
        if (err.code == GMUD_ERR_INVALID) /* the config, not the network */
            fail_as(app, EXIT_USAGE, "%s", err.message);
        else
            fail(app, "cannot connect to %s port %d: %s", o->host, o->port, err.message);
        return app->status;
    }
    uv_run(&app->loop, UV_RUN_DEFAULT);
    return app->status;
}

int main(int argc, char **argv)
{
    static client_app app; /* static: zeroed, and off the stack */
    prog_process_setup();
    int rc = prog_options_parse(&app.opt, PROG_CLIENT, argc, argv);
    if (rc != PROG_RUN)
        return rc == PROG_EXIT_OK ? 0 : 2;
    if (uv_loop_init(&app.loop) != 0) {
        fprintf(stderr, "gmud-client: cannot start the event loop\n");
        return 1;
    }
    prog_log_start();
    int status = run(&app);
    gmud_client_destroy(app.client);
    input_close(&app);
    if (app.flusher.data != NULL) /* initialised */
        uv_close((uv_handle_t *)&app.flusher, NULL);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    fflush(stdout);
    free(app.line);
    free(app.chunk);
    prog_log_finish();
    return status;
}
