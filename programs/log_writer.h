/* programs/log_writer.h: internal to the programs' logging (prog_log.c,
 * log_writer.c, log_summary.c): the bounds of the log writer, and the table
 * that summarises repeated lines.
 *
 * A log line never makes the event loop wait for stderr: it goes into a
 * bounded buffer that a writer thread drains (log_writer.c); lines that
 * find it full are dropped and counted. Lines that repeat (the same event
 * from the same address, WARN and below) are written a few a second and the
 * rest counted (log_summary.c), so one noisy peer cannot fill the buffer.
 */
#ifndef GMUD_PROG_LOG_WRITER_H
#define GMUD_PROG_LOG_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "gmud/log.h"

enum {
    LOG_BUFFER_SIZE = 1024 * 1024, /* bytes of lines waiting for stderr */
    LOG_LINE_MAX = 1024,           /* one line at most, its "\n" included */
    LOG_WRITE_MAX = 4096,          /* bytes of whole lines per write(2): PIPE_BUF
                                      on Linux, so a line is never split in a pipe
                                      shared with other processes */
    LOG_FLUSH_MS = 1000,           /* at exit, the longest wait for stderr */
    LOG_POLL_MS = 250,             /* the writer's look at summaries due */
    LOG_KEYS = 256,                /* (event, address) pairs followed at once */
    LOG_KEY_WINDOW_MS = 1000,      /* a pair writes --log-repeat lines in one */
    LOG_EVENT_MAX = 24,            /* an event's name kept for its key, NUL included */
    LOG_HOST_MAX = 56              /* an address kept for its key, NUL included */
};

/* One (event, address) pair: lines written and held back in its window. */
typedef struct log_key {
    uint32_t hash;               /* of event and host, looked at first */
    uint8_t used;
    gmud_log_level level;        /* the most severe of the lines held back */
    uint64_t start_ms;           /* the window's start */
    uint64_t last_ms;            /* the last line: the oldest pair makes room */
    unsigned shown;              /* lines written in the window */
    unsigned long long held;     /* lines held back in it */
    char event[LOG_EVENT_MAX];
    char host[LOG_HOST_MAX];
} log_key;

/* Every pair followed; a fixed table, the oldest pair replaced by a new one. */
typedef struct log_summary {
    log_key keys[LOG_KEYS];
    size_t pending;              /* pairs with lines held back */
} log_summary;

/* A summary to write: "<host> <event>: ... and <held> more like it". held
 * is 0 when there is none. */
typedef struct log_due {
    gmud_log_level level;
    unsigned long long held;
    char event[LOG_EVENT_MAX];
    char host[LOG_HOST_MAX];
} log_due;

/* A line of level, from peer ("1.2.3.4:5678", "[::1]:5678" or "-"), for
 * event, at now_ms (a monotonic clock), when a pair may write lines a
 * window (0: no limit): 1 if it is to be written, 0 if it is held back
 * (counted). ERROR lines are always written. due is filled with a summary
 * to write before the line: its pair's last window ended with lines held
 * back, or the pair replaced to make room had some. */
int log_summary_admit(log_summary *s, gmud_log_level level, const char *peer, const char *event,
                      unsigned lines, uint64_t now_ms, log_due *due);

/* One event's line, from the programs' prog_log(): held back if its pair
 * has written its lines (--log-repeat) in the window, else into the buffer
 * (dropped and counted if full) for the writer thread; before
 * prog_log_start() it is written at once. peer, event and reason are never
 * NULL. */
void log_writer_event(gmud_log_level level, const char *peer, const char *event,
                      const char *reason, const gmud_log_field *fields, size_t nfields,
                      unsigned lines);

/* --log-format json: every line from now on is one JSON object. */
void log_writer_set_json(int on);

/* Pair i's summary, if its window is over at now_ms (UINT64_MAX: every
 * window is) with lines held back: 1 and due filled, else 0. */
int log_summary_take(log_summary *s, size_t i, uint64_t now_ms, log_due *due);

#endif
