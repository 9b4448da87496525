/* programs/log_writer.c: the programs' log lines on their way to stderr,
 * without the event loop ever waiting for it.
 *
 * The loop thread formats a line and appends it to a ring of
 * LOG_BUFFER_SIZE bytes: a lock, a memcpy, a signal. A writer thread takes
 * whole lines out and writes them to fd 2 with ordinary blocking write(2)
 * calls. A sink that stops taking them (a pipe nobody reads) blocks the
 * writer only: once the ring is full, new lines are dropped and counted,
 * and when the writer has caught up a line says how many. fd 2 is never
 * made non-blocking: O_NONBLOCK belongs to the open file description, which
 * the terminal or the pipe shares with other processes.
 *
 * Before prog_log_start() (and if its thread cannot start) the calling
 * thread writes each line itself, as gmud-codec and the tests do.
 */
#include "log_writer.h"
#include "options.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;          /* for the writer: lines in, or stop */
    pthread_cond_t ended;         /* for prog_log_finish: the writer is done */
    pthread_t thread;
    int running;                  /* the writer thread takes the lines */
    int stopping;                 /* write what is left, then end */
    int done;                     /* the writer has ended */
    int json;                     /* --log-format json: one object a line */
    size_t head, used;            /* the ring's first byte and bytes waiting */
    unsigned long long dropped;   /* lines that found the ring full */
    log_summary summary;
    char ring[LOG_BUFFER_SIZE];
} lw = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* An absolute time ms from now on the monotonic clock, for timed waits. */
static struct timespec deadline(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += ms % 1000 * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

/* The "\n" after the n bytes snprintf put in out[LOG_LINE_MAX - 1] (n is
 * what it returned: the text may have been cut); the line's length. */
static size_t end_line(char out[LOG_LINE_MAX], int n)
{
    size_t len = n < 0 ? 0 : (size_t)n < LOG_LINE_MAX - 1 ? (size_t)n : LOG_LINE_MAX - 2;
    out[len++] = '\n';
    return len;
}

/* A JSON string of text, whatever its bytes: any that are not valid UTF-8
 * (a peer's, quoted in a reason) become '?'. */
static json_t *json_text(const char *text)
{
    json_t *s = json_string(text);
    if (s != NULL)
        return s;
    char clean[LOG_LINE_MAX];
    size_t i = 0;
    for (; text[i] != '\0' && i < sizeof clean - 1; i++)
        clean[i] = (unsigned char)text[i] < 0x80 ? text[i] : '?';
    clean[i] = '\0';
    return json_string(clean);
}

/* The line as one JSON object: time, level, peer, event, message and the
 * event's fields; its length, or 0 if it does not fit. */
static size_t format_json(char out[LOG_LINE_MAX], const char *when, gmud_log_level level,
                          const char *peer, const char *event, const char *reason,
                          const gmud_log_field *fields, size_t nfields)
{
    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "level", json_string(gmud_log_level_name(level)));
    json_object_set_new(o, "peer", json_text(peer));
    json_object_set_new(o, "event", json_text(event));
    json_object_set_new(o, "message", json_text(reason));
    for (size_t i = 0; i < nfields; i++)
        json_object_set_new(o, fields[i].key, fields[i].text != NULL
                                                  ? json_text(fields[i].text)
                                                  : json_integer(fields[i].num));
    size_t n = json_dumpb(o, out, LOG_LINE_MAX - 1, JSON_COMPACT);
    json_decref(o);
    return n <= LOG_LINE_MAX - 2 ? end_line(out, (int)n) : 0;
}

/* "<time> <level> <peer> <event>: <reason>\n" in out, cut to fit, or with
 * --log-format json one object (time, level, peer, event, message, and
 * the fields); its length. Time in ISO 8601 UTC with milliseconds. */
static size_t format_event(char out[LOG_LINE_MAX], gmud_log_level level, const char *peer,
                           const char *event, const char *reason,
                           const gmud_log_field *fields, size_t nfields)
{
    struct timespec ts;
    struct tm tm;
    char when[32] = "?";
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm) != NULL) {
        size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    }
    size_t len = 0;
    if (lw.json && (len = format_json(out, when, level, peer, event, reason, fields,
                                      nfields)) == 0)
        len = format_json(out, when, level, peer, event, "(the line was too long)", NULL, 0);
    if (len > 0)
        return len;
    int n = snprintf(out, LOG_LINE_MAX - 1, "%s %s %s %s%s%s", when, gmud_log_level_name(level),
                     peer, event, reason[0] != '\0' ? ": " : "", reason);
    return end_line(out, n);
}

static size_t format_line(char out[LOG_LINE_MAX], gmud_log_level level, const char *peer,
                          const char *event, const char *reason)
{
    return format_event(out, level, peer, event, reason, NULL, 0);
}

void log_writer_set_json(int on)
{
    lw.json = on;
}

/* ---- The ring (every function here with lw.mu held) --------------------- */

static void ring_put(const char *line, size_t len)
{
    if (len > LOG_BUFFER_SIZE - lw.used) {
        lw.dropped++;
        return;
    }
    size_t at = (lw.head + lw.used) % LOG_BUFFER_SIZE;
    size_t first = len < LOG_BUFFER_SIZE - at ? len : LOG_BUFFER_SIZE - at;
    memcpy(lw.ring + at, line, first);
    memcpy(lw.ring, line + first, len - first);
    lw.used += len;
}

/* Takes whole lines, at most cap bytes of them, into out; their length. */
static size_t ring_take(char *out, size_t cap)
{
    size_t n = lw.used < cap ? lw.used : cap;
    size_t first = n < LOG_BUFFER_SIZE - lw.head ? n : LOG_BUFFER_SIZE - lw.head;
    memcpy(out, lw.ring + lw.head, first);
    memcpy(out + first, lw.ring, n - first);
    while (n > 0 && out[n - 1] != '\n')
        n--;
    lw.head = (lw.head + n) % LOG_BUFFER_SIZE;
    lw.used -= n;
    return n;
}

static void put_summary(const log_due *d)
{
    char line[LOG_LINE_MAX], reason[64];
    snprintf(reason, sizeof reason, "... and %llu more like it", d->held);
    ring_put(line, format_line(line, d->level, d->host, d->event, reason));
}

/* The summaries whose windows are over at now, and the count of lines
 * dropped once the ring has room again (half of it free). */
static void put_due(uint64_t now)
{
    log_due d;
    for (size_t i = 0; i < LOG_KEYS && lw.summary.pending > 0; i++)
        if (log_summary_take(&lw.summary, i, now, &d))
            put_summary(&d);
    if (lw.dropped == 0 || lw.used > LOG_BUFFER_SIZE / 2)
        return;
    char line[LOG_LINE_MAX], reason[96];
    snprintf(reason, sizeof reason, "%llu log lines dropped: the log sink was not taking them",
             lw.dropped);
    lw.dropped = 0;
    ring_put(line, format_line(line, GMUD_LOG_WARN, "-", "log", reason));
}

/* ---- Writing ------------------------------------------------------------ */

/* All of buf to fd 2, or as much as it takes: a sink that fails (a closed
 * pipe, a full disk) loses the lines rather than stop the writer. */
static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Another process made the shared description non-blocking. */
            struct pollfd p = {STDERR_FILENO, POLLOUT, 0};
            poll(&p, 1, LOG_POLL_MS);
        } else if (n == 0 || errno != EINTR) {
            return; /* (EINTR: again) */
        }
    }
}

/* With lw.mu held and no writer thread: this thread writes the ring out. */
static void write_here(void)
{
    char chunk[LOG_WRITE_MAX];
    size_t n;
    while ((n = ring_take(chunk, sizeof chunk)) > 0)
        write_all(chunk, n);
}

/* Until lines come in, or the next look at summaries due. */
static void writer_wait(void)
{
    if (lw.summary.pending == 0) {
        pthread_cond_wait(&lw.wake, &lw.mu);
        return;
    }
    struct timespec until = deadline(LOG_POLL_MS);
    pthread_cond_timedwait(&lw.wake, &lw.mu, &until);
}

static void *writer_main(void *arg)
{
    char chunk[LOG_WRITE_MAX];
    (void)arg;
    pthread_mutex_lock(&lw.mu);
    for (;;) {
        put_due(lw.stopping ? UINT64_MAX : now_ms());
        size_t n = ring_take(chunk, sizeof chunk);
        if (n == 0 && lw.stopping)
            break;
        if (n == 0) {
            writer_wait();
            continue;
        }
        pthread_mutex_unlock(&lw.mu);
        write_all(chunk, n);
        pthread_mutex_lock(&lw.mu);
    }
    lw.done = 1;
    pthread_cond_signal(&lw.ended);
    pthread_mutex_unlock(&lw.mu);
    return NULL;
}

/* What was just put in the ring to the writer; or, without one, written
 * out at once. */
static void hand_over(void)
{
    if (lw.running)
        pthread_cond_signal(&lw.wake);
    else
        write_here();
}

/* ---- The programs' side ------------------------------------------------- */

void log_writer_event(gmud_log_level level, const char *peer, const char *event,
                      const char *reason, const gmud_log_field *fields, size_t nfields,
                      unsigned lines)
{
    char line[LOG_LINE_MAX];
    size_t len = format_event(line, level, peer, event, reason, fields, nfields);
    log_due due;
    pthread_mutex_lock(&lw.mu);
    int keep = log_summary_admit(&lw.summary, level, peer, event, lines, now_ms(), &due);
    if (due.held > 0)
        put_summary(&due);
    if (keep)
        ring_put(line, len);
    if (keep || due.held > 0)
        hand_over();
    pthread_mutex_unlock(&lw.mu);
}

void prog_log_text(const char *fmt, ...)
{
    char line[LOG_LINE_MAX], text[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t len = end_line(line, vsnprintf(line, LOG_LINE_MAX - 1, fmt, ap));
    va_end(ap);
    if (lw.json) { /* a fatal message, as an event like the others */
        memcpy(text, line, len - 1);
        text[len - 1] = '\0';
        len = format_line(line, GMUD_LOG_ERROR, "-", "error", text);
    }
    pthread_mutex_lock(&lw.mu);
    ring_put(line, len);
    hand_over();
    pthread_mutex_unlock(&lw.mu);
}

static int init_conds(void)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0 && (rc = pthread_cond_init(&lw.wake, &ca)) == 0 &&
        (rc = pthread_cond_init(&lw.ended, &ca)) != 0)
        pthread_cond_destroy(&lw.wake);
    pthread_condattr_destroy(&ca);
    return rc == 0 ? 0 : -1;
}

void prog_log_start(void)
{
    if (lw.running || init_conds() != 0)
        return;
    /* Signals are the loop's: the writer blocks them all, from its start. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&lw.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_lock(&lw.mu);
    lw.running = rc == 0;
    pthread_mutex_unlock(&lw.mu);
}

void prog_log_finish(void)
{
    pthread_mutex_lock(&lw.mu);
    if (!lw.running || lw.stopping) {
        pthread_mutex_unlock(&lw.mu);
        return;
    }
    lw.stopping = 1;
    pthread_cond_signal(&lw.wake);
    struct timespec until = deadline(LOG_FLUSH_MS);
    while (!lw.done && pthread_cond_timedwait(&lw.ended, &lw.mu, &until) != ETIMEDOUT)
        ;
    int done = lw.done;
    /* A writer stuck in write(2) stays so, holding nothing: the process
     * ends around it. Lines logged from now on join the ring. */
    lw.running = !done;
    pthread_mutex_unlock(&lw.mu);
    if (done)
        pthread_join(lw.thread, NULL);
    else
        pthread_detach(lw.thread);
}
