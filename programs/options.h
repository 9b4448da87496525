/* programs/options.h: command-line options shared by gmud-server and
 * gmud-client. Parsing only wires text to settings; the programs pass those
 * to the library. One table drives both the parser and --help, so the help
 * always lists every option a program takes, with its default.
 */
#ifndef GMUD_PROGRAMS_OPTIONS_H
#define GMUD_PROGRAMS_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "app.h"
#include "gmud/cluster.h"
#include "gmud/frame.h"
#include "gmud/log.h"
#include "gmud/server.h"

typedef enum prog_kind { PROG_SERVER = 1, PROG_CLIENT = 2 } prog_kind;

/* The defaults only the programs have. Every other default is the
 * library's: prog_options_parse() copies it from gmud_server_default_config()
 * or gmud_client_default_config() (the values are in gmud/limits.h). */
enum {
    PROG_DEFAULT_INTERVAL_MS = 1000,   /* clock: time between messages */
    PROG_DEFAULT_WAIT_MS = 1000,       /* client: wait after stdin ends */
    PROG_DEFAULT_LOG_REPEAT = 5        /* log lines a second per event and address */
};

/* --listen [tls:]ADDR:PORT, repeated or comma-separated: the addresses,
 * each with its host copied out of the text. */
typedef struct prog_listen {
    size_t n;
    gmud_listen_config at[GMUD_MAX_LISTENERS];
    char host[GMUD_MAX_LISTENERS][64];
} prog_listen;

typedef struct prog_options {
    const char *prog;            /* "gmud-server" or "gmud-client", for messages */
    prog_kind kind;
    const char *host;            /* an address literal or a host name */
    int port;                    /* 0..65535; 0 lets the server pick one */
    gmud_conn_config conn;       /* what the program's connections are
                                    configured with: framing, payload, limits
                                    (max_connections: server), session (mode,
                                    server: carry_on, client: reply_data and
                                    welcome timeout), log level. From the
                                    library's defaults for the program (a
                                    client's limits never pause reading nor
                                    limit rates: gmud/client.h); the callbacks
                                    and the log function are the program's to
                                    set */
    gmud_iplimit_config addr;    /* server: per-address limits */
    uint32_t shutdown_ms;        /* server: flush time on SIGINT/SIGTERM, > 0 */
    uint32_t log_repeat;         /* log lines a second one event from one
                                    address writes, the rest counted; 0: all */
    int parsed;                  /* prog_options_parse has decided everything */
    int session_set;             /* --session given (else conn.session.mode is
                                    on for gmud framing with json, else off) */
    /* server */
    app_kind app;
    uint32_t interval_ms;        /* clock: > 0 */
    unsigned long long count;    /* clock messages to send; 0 means no limit */
    int tls_port;                /* server: a second listener, with TLS; -1: none */
    prog_listen listen;          /* server: --listen's addresses; none: --host, --port */
    int reuseport;               /* server: SO_REUSEPORT */
    int proxy_protocol;          /* server: every listener expects a PROXY header */
    const char *proxy_from;      /* server: its trusted senders */
    uint32_t proxy_timeout_ms;   /* server: the header's deadline, > 0 */
    prog_listen metrics;         /* server: --metrics, n 0 (off) or 1 */
    const char *cluster;         /* server: --cluster redis://HOST[:PORT]; NULL: off */
    const char *node;            /* server: --node; NULL: the host name */
    const char *cluster_secret_file; /* server: NULL: no MAC */
    uint32_t cluster_ttl_ms;     /* server: presence TTL, > 0 */
    int log_json;                /* --log-format json */
    /* client */
    uint32_t wait_ms;
} prog_options;

/* What prog_options_parse() decided. */
enum { PROG_RUN = 0, PROG_EXIT_OK = 1, PROG_EXIT_USAGE = 2 };

/* Fills o with the defaults for kind, then applies argv[1..argc). Returns
 * PROG_RUN; PROG_EXIT_OK after printing --help on stdout; PROG_EXIT_USAGE
 * after printing on stderr why an option or value was refused. Strings in o
 * point into argv or static storage. */
int prog_options_parse(prog_options *o, prog_kind kind, int argc, char **argv);

/* The framing options every program takes (--framing, --label, --delim,
 * --max-message), gathered in any order and applied together: --framing
 * resets the label and delimiter to its defaults, so it goes first. */
typedef struct prog_framing_args {
    const char *framing, *label, *delim, *max_message;
} prog_framing_args;

/* Applies p to frame in that fixed order and checks the result; 0, or -1
 * after printing "<prog>: <option>: <why>" on stderr. */
int prog_framing_apply(const char *prog, gmud_frame_config *frame, const prog_framing_args *p);

/* Prints the usage and every option the program takes, with defaults. */
void prog_options_help(prog_kind kind, FILE *out);

/* Logs the effective configuration, every option's value ("config"). */
void prog_options_log(const prog_options *o);

/* frame's line delimiter as --delim takes it, C escapes for the bytes that
 * need them ("\\n" for the default), in buf[0..n); for help texts. */
void prog_delim_text(const gmud_frame_config *frame, char *buf, size_t n);

/* Process setup both programs need before anything else: stdin, stdout and
 * stderr opened on /dev/null if closed (else the first socket would become
 * fd 0 and be taken for stdin), and SIGPIPE ignored (a vanished peer must
 * give EPIPE, not end the process). */
void prog_process_setup(void);

/* A gmud_log_fn: one line on stderr per event, "<time> <level> <peer>
 * <event>: <reason>", time in ISO 8601 UTC with milliseconds. user is the
 * program's prog_options; events above its log_level are dropped. It never
 * waits for stderr once prog_log_start() has run: the line joins a buffer
 * of 1 MiB that a thread writes out, and a line finding it full is dropped
 * and counted ("N log lines dropped" follows when stderr takes lines
 * again). Lines of WARN and below with the same event from the same
 * address (the peer without its port) are written log_repeat a second at
 * most; the rest are counted, and "... and N more like it" follows. */
void prog_log(void *user, const gmud_log_event *ev);

/* Starts the thread that writes the log lines; once the options are parsed.
 * Before it, or if it cannot start, each line is written as it comes. */
void prog_log_start(void);

/* Before the program exits: writes out what is buffered (and the summaries
 * and drop counts due), waiting at most about 1 s for stderr, so that a
 * stuck log sink cannot hang the exit. */
void prog_log_finish(void);

/* A line of the program's own ("gmud-client: line 3 not sent: ..."), as
 * printf() formats it, without its "\n": on stderr in order with the log
 * lines, the same way (never summarised). */
void prog_log_text(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* The programs' own events, through prog_log. peer NULL means "-". */
void prog_logf(const prog_options *o, gmud_log_level level, const char *peer, const char *event,
               const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#endif
