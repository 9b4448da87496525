/* programs/options.c: one option table for gmud-server and gmud-client; it
 * drives both the parser and --help. Each option names its type of value
 * (opt_types.c), which holds everything about that type. The defaults are
 * the library's (gmud_server_default_config, gmud_client_default_config)
 * but for the few only the programs have, PROG_DEFAULT_* in options.h. */
#include "options.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "log_writer.h"
#include "gmud/client.h"
#include "gmud/version.h"
#include "opt_types.h"

/* ---- The options -------------------------------------------------------- */

#define BOTH (PROG_SERVER | PROG_CLIENT)
#define AT(field) offsetof(prog_options, field)
#define FRAMING_ARG(field) offsetof(prog_framing_args, field)

static const opt_spec specs[] = {
    {"--host", BOTH, &t_host, AT(host), "ADDR",
     "IPv4 or IPv6 address or host name (server: to listen on)"},
    {"--port", BOTH, &t_port, AT(port), "PORT",
     "TCP port (server: 0 picks a free one and logs it)"},
    {"--framing", BOTH, &t_framing, FRAMING_ARG(framing), "F", "raw|line|fixed:N|length|gmud"},
    {"--payload", BOTH, &t_payload, AT(conn.payload), "P",
     "text|json (json: each message is a JSON object)"},
    {"--label", BOTH, &t_label, FRAMING_ARG(label), "XXXX",
     "gmud framing: the 4-byte packet label"},
    {"--delim", BOTH, &t_delim, FRAMING_ARG(delim), "TEXT",
     "line framing: delimiter, C escapes allowed"},
    {"--max-message", BOTH, &t_max_message, FRAMING_ARG(max_message), "BYTES",
     "largest payload accepted or sent"},
    {"--app", PROG_SERVER, &t_app, AT(app), "APP",
     "echo: back to the sender; clock: the lecture's timed messages, "
     "from the first connection on; chat: to every other client"},
    {"--interval", PROG_SERVER, &t_ms, AT(interval_ms), "SECONDS",
     "clock: time between messages (fractions allowed; 0 only in lecture mode, where "
     "each reply is answered at once)"},
    {"--count", PROG_SERVER, &t_count, AT(count), "N",
     "clock: stop after N messages, then shut down and exit 0"},
    {"--session", BOTH, &t_session, AT(conn.session.mode), "MODE",
     "off|lecture|on: lecture is the lecture's approach 6 (json payload; the server "
     "runs the clock app); on is gmud's own, a 16-byte session header on every packet "
     "(length, gmud or fixed framing). Both ends must agree"},
    {"--session-carry-on", PROG_SERVER, &t_flag, AT(conn.session.carry_on), NULL,
     "lecture mode: a bad reply is logged, counted and printed, and the connection "
     "stays open, as the lecture's server does"},
    {"--reply-data", PROG_CLIENT, &t_reply_data, AT(conn.session.reply_data), "TEXT",
     "lecture mode: the data field of each reply"},
    {"--welcome-timeout", PROG_CLIENT, &t_ms_pos, AT(conn.session.welcome_timeout_ms), "SECONDS",
     "lecture and on modes: give up if the server sends no welcome within this "
     "time"},
    {"--rate-msgs", PROG_SERVER, &t_u32, AT(conn.limits.msg_rate), "N",
     "messages a second one peer may send (0: no limit); beyond it the peer is slowed "
     "(or its messages dropped: --rate-policy), with a warning packet a second"},
    {"--rate-msgs-burst", PROG_SERVER, &t_u32, AT(conn.limits.msg_burst), "N",
     "messages one peer may send at once"},
    {"--rate-bytes", PROG_SERVER, &t_u32, AT(conn.limits.byte_rate), "BYTES",
     "payload bytes a second one peer may send (0: no limit)"},
    {"--rate-bytes-burst", PROG_SERVER, &t_u32, AT(conn.limits.byte_burst), "BYTES",
     "payload bytes one peer may send at once"},
    {"--max-per-addr", PROG_SERVER, &t_u32, AT(addr.max_per_addr), "N",
     "connections at once from one IP address (0: no limit)"},
    {"--new-per-addr", PROG_SERVER, &t_u32, AT(addr.new_per_sec), "N",
     "new connections a second from one IP address (0: no limit)"},
    {"--new-per-addr-burst", PROG_SERVER, &t_u32, AT(addr.new_burst), "N",
     "new connections one IP address may open at once"},
    {"--addr-prefix6", PROG_SERVER, &t_prefix6, AT(addr.prefix6), "BITS",
     "IPv6 peers count as one address per this prefix (a host holds a /64)"},
    {"--rate-policy", PROG_SERVER, &t_rate_policy, 0, "POLICY",
     "shape: a peer over its rates is not read until its buckets refill, so TCP slows "
     "it and nothing is lost; drop: what it sends over them is dropped"},
    {"--rate-close-after", PROG_SERVER, &t_ms_pos, AT(conn.limits.rate_close_ms), "SECONDS",
     "a peer over its rate this long is closed"},
    {"--listen", PROG_SERVER, &t_listen, AT(listen), "[tls:]ADDR:PORT",
     "listen here instead of on --host and --port: repeat it, or give several with commas; "
     "[ADDR] for IPv6 ([::]:8222: every IPv6 and, on Linux, IPv4 address); tls: for TLS "
     "(needs --tls-cert and --tls-key)"},
    {"--reuseport", PROG_SERVER, &t_flag, AT(reuseport), NULL,
     "SO_REUSEPORT: several gmud-server processes may listen on one port, the kernel "
     "spreading connections among them"},
    {"--proxy-protocol", PROG_SERVER, &t_flag, AT(proxy_protocol), NULL,
     "behind a load balancer: every connection begins with a PROXY protocol header (v1 or "
     "v2, HAProxy's), whose client address logs and per-address limits use; only from "
     "--proxy-from"},
    {"--proxy-from", PROG_SERVER, &t_text, AT(proxy_from), "CIDR,...",
     "the load balancers' addresses (10.0.0.0/8,[fd00::]/8,192.0.2.1): a connection from "
     "anywhere else is refused; needed with --proxy-protocol"},
    {"--proxy-timeout", PROG_SERVER, &t_ms_pos, AT(proxy_timeout_ms), "SECONDS",
     "a PROXY header must be whole within this time of the accept"},
    {"--addr-exempt", PROG_SERVER, &t_text, AT(addr.exempt), "CIDR,...",
     "addresses the per-address limits do not apply to (a monitoring host, a test rig) "
     "[default: none]"},
    {"--metrics", PROG_SERVER, &t_metrics, AT(metrics), "[ADDR:]PORT",
     "serve Prometheus metrics over HTTP at /metrics here, on the server's loop (a port "
     "alone: on 127.0.0.1; 0 picks a free port and logs it)"},
    {"--cluster", PROG_SERVER, &t_text, AT(cluster), "redis://HOST[:PORT]",
     "chat: one node of several sharing rooms, chat and presence through this Redis (HOST an "
     "address; [v6] allowed; port 6379 unless given) [default: off]"},
    {"--node", PROG_SERVER, &t_text, AT(node), "NAME",
     "with --cluster: this node's name, unique in the cluster (1 to 64 of A-Z a-z 0-9 . _ -) "
     "[default: the host name]"},
    {"--cluster-secret-file", PROG_SERVER, &t_text, AT(cluster_secret_file), "FILE",
     "with --cluster: a file holding the secret (16 bytes or more, the same on every node) "
     "that signs every cross-node message, so that no other client of the Redis can inject "
     "chat [default: none]"},
    {"--cluster-ttl", PROG_SERVER, &t_ms_pos, AT(cluster_ttl_ms), "SECONDS",
     "with --cluster: a node that dies leaves the others' presence within this time"},
    {"--tls-cert", PROG_SERVER, &t_text, AT(conn.tls.cert_file), "FILE",
     "serve TLS with this PEM certificate chain (with --tls-key): on --port, or on "
     "--tls-port beside plain TCP on --port"},
    {"--tls-key", PROG_SERVER, &t_text, AT(conn.tls.key_file), "FILE",
     "the certificate's PEM private key"},
    {"--tls-port", PROG_SERVER, &t_port, AT(tls_port), "PORT",
     "listen with TLS on this port as well, --port staying plain TCP"},
    {"--tls", PROG_CLIENT, &t_flag, AT(conn.tls.enabled), NULL,
     "connect with TLS, verifying the server by --ca and its name, or by --pin"},
    {"--ca", PROG_CLIENT, &t_text, AT(conn.tls.ca_file), "FILE",
     "TLS: trust the CA certificates in this PEM file [default: the system's store]"},
    {"--server-name", PROG_CLIENT, &t_text, AT(conn.tls.server_name), "NAME",
     "TLS: the name (or address) the certificate must carry [default: --host]"},
    {"--pin", PROG_CLIENT, &t_text, AT(conn.tls.pin), "sha256:HEX",
     "TLS: trust only a server whose public key has this SHA-256 (gmud-keygen prints it), "
     "whatever signed it"},
    {"--insecure", PROG_CLIENT, &t_flag, AT(conn.tls.insecure), NULL,
     "TLS without verifying the server: anyone on the path can read and change the "
     "traffic (tests only; warned about)"},
    {"--tls12", BOTH, &t_flag, AT(conn.tls.allow_tls12), NULL,
     "TLS: accept TLS 1.2 as well as 1.3 (never renegotiated)"},
    {"--handshake-timeout", BOTH, &t_ms_off, AT(conn.tls.handshake_timeout_ms), "SECONDS",
     "TLS: close a connection whose handshake is not done within this time (0: off)"},
    {"--max-handshakes", PROG_SERVER, &t_u32, AT(conn.tls.max_handshakes), "N",
     "TLS: handshakes in progress at once; one more is closed before any TLS state is "
     "made (0: no limit)"},
    {"--wait", PROG_CLIENT, &t_ms, AT(wait_ms), "SECONDS",
     "after stdin ends, wait this long for replies, then close"},
    {"--max-queued", BOTH, &t_size, AT(conn.limits.max_queued), "BYTES",
     "outgoing bytes queued to one peer before it is closed (slow consumer)"},
    {"--frame-timeout", BOTH, &t_ms_pos, AT(conn.limits.frame_timeout_ms), "SECONDS",
     "a frame begun must be complete within this time"},
    {"--idle-timeout", BOTH, &t_ms_off, AT(conn.limits.idle_timeout_ms), "SECONDS",
     "close a peer silent this long (0: off)"},
    {"--send-timeout", BOTH, &t_ms_off, AT(conn.limits.send_timeout_ms), "SECONDS",
     "close a peer whose queued output makes no progress this long: it stopped "
     "reading (slow consumer; 0: off)"},
    {"--max-buffered-total", PROG_SERVER, &t_size_off, AT(conn.limits.max_buffered_total),
     "BYTES", "queued output and partial frames of all peers together; past it the peers "
     "holding the most are closed (slow consumer; 0: off)"},
    {"--max-connections", PROG_SERVER, &t_size, AT(conn.limits.max_connections), "N",
     "connections at once; one more gets an error packet, then the close"},
    {"--max-bad-messages", BOTH, &t_uint, AT(conn.limits.max_bad_messages), "N",
     "json payloads that do not parse before the peer is closed"},
    {"--shutdown-timeout", PROG_SERVER, &t_ms_pos, AT(shutdown_ms), "SECONDS",
     "on SIGINT/SIGTERM, time to flush queued messages before closing"},
    {"--log-level", BOTH, &t_log_level, AT(conn.log_level), "LEVEL",
     "error|warn|info|debug (logs go to stderr)"},
    {"--log-format", BOTH, &t_log_format, AT(log_json), "FORMAT",
     "text: one line an event, for people; json: one JSON object a line (time, level, "
     "peer, event, message and the event's fields: a connection's bytes and messages, "
     "a security event's expected and got), for journald and log shippers"},
    {"--log-repeat", BOTH, &t_u32, AT(log_repeat), "N",
     "log lines a second one event from one address may write; the rest are counted (0: all)"},
    {"--help", BOTH, &t_help, 0, NULL, "print this help and exit"},
    {"--version", BOTH, &t_help, 0, NULL, "print the gmud library's version and exit"},
};

#define N_SPECS (sizeof specs / sizeof specs[0])

/* ---- Defaults ----------------------------------------------------------- */

static const char *prog_name(prog_kind kind)
{
    return kind == PROG_SERVER ? "gmud-server" : "gmud-client";
}

/* The library's defaults for the program (its config's host, port and
 * connection settings), and the programs' own. */
static void set_defaults(prog_options *o, prog_kind kind)
{
    memset(o, 0, sizeof *o);
    o->prog = prog_name(kind);
    o->kind = kind;
    if (kind == PROG_SERVER) {
        gmud_server_config cfg;
        gmud_server_default_config(&cfg);
        o->host = cfg.host;
        o->port = cfg.port;
        o->conn = cfg.conn;
        o->addr = cfg.addr;
    } else {
        gmud_client_config cfg;
        gmud_client_default_config(&cfg);
        o->host = cfg.host;
        o->port = cfg.port;
        o->conn = cfg.conn;
    }
    o->shutdown_ms = GMUD_SHUTDOWN_FLUSH_MS_DEFAULT;
    o->tls_port = -1;
    o->proxy_timeout_ms = GMUD_PROXY_TIMEOUT_DEFAULT;
    o->cluster_ttl_ms = GMUD_CLUSTER_TTL_DEFAULT;
    o->app = APP_CHAT;
    o->interval_ms = PROG_DEFAULT_INTERVAL_MS;
    o->count = 0;
    o->wait_ms = PROG_DEFAULT_WAIT_MS;
    o->log_repeat = PROG_DEFAULT_LOG_REPEAT;
}

void prog_delim_text(const gmud_frame_config *frame, char *buf, size_t n)
{
    static const char special[] = "\n\r\t\\", letter[] = "nrt\\";
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < frame->delim_len && used < n; i++) {
        unsigned char c = frame->delim[i];
        const char *sp = c != 0 ? strchr(special, c) : NULL;
        int w;
        if (c == 0)
            w = snprintf(buf + used, n - used, "\\0");
        else if (sp != NULL)
            w = snprintf(buf + used, n - used, "\\%c", letter[sp - special]);
        else if (c >= 0x20 && c < 0x7f)
            w = snprintf(buf + used, n - used, "%c", c);
        else
            w = snprintf(buf + used, n - used, "\\x%02x", c);
        used += (size_t)w;
    }
}

/* ---- Parsing ------------------------------------------------------------ */

int prog_framing_apply(const char *prog, gmud_frame_config *frame, const prog_framing_args *p)
{
    gmud_error err = {0};
    const char *opt = "--framing";
    int rc = GMUD_OK;
    if (p->framing != NULL)
        rc = gmud_frame_config_parse(frame, p->framing, &err);
    if (rc == GMUD_OK && p->label != NULL) {
        opt = "--label";
        rc = gmud_frame_config_set_label(frame, p->label, &err);
    }
    if (rc == GMUD_OK && p->delim != NULL) {
        opt = "--delim";
        rc = gmud_frame_config_set_delim(frame, p->delim, &err);
    }
    if (rc == GMUD_OK && p->max_message != NULL) {
        unsigned long long u;
        opt = "--max-message";
        if (parse_ull(p->max_message, 1, GMUD_MAX_MESSAGE_CEILING, &u) != 0 || u == 0)
            rc = gmud_error_set(&err, GMUD_ERR_INVALID, 0,
                                "'%s' is not a size from 1 to %d bytes", p->max_message,
                                (int)GMUD_MAX_MESSAGE_CEILING);
        else
            frame->max_message = (size_t)u;
    }
    if (rc == GMUD_OK) {
        opt = "framing";
        rc = gmud_frame_config_check(frame, &err);
    }
    if (rc == GMUD_OK)
        return 0;
    fprintf(stderr, "%s: %s: %s\n", prog, opt, err.message);
    return -1;
}

/* The session mode's default and the combinations that cannot work; 0 or
 * -1 after printing why. (The library checks the framing itself.) */
/* The clock's messages must fit a packet, or the server would start and
 * then fail on every tick (fixed:N with a small N). Checked: the last one
 * with --count, else the first (ctime's width is fixed until year 9999;
 * the number grows the message by two bytes a digit, so fixed:100 holds a
 * million of them, 11 days at one a second: past that each tick that does
 * not fit is logged). NULL if it fits, else why not, in why[0..n). */
static const char *clock_unfit(const prog_options *o, char *why, size_t n)
{
    const gmud_frame_config *f = &o->conn.frame;
    size_t room = f->framing == GMUD_FRAMING_FIXED ? f->fixed_size : f->max_message;
    if (o->conn.session.mode == GMUD_SESSION_ON)
        room = room > GMUD_SESSION_HEADER_SIZE ? room - GMUD_SESSION_HEADER_SIZE : 0;
    unsigned long long last = o->count != 0 ? o->count : 1;
    time_t t = (time_t)253402300799LL; /* 9999-12-31 23:59:59 UTC */
    char msg[APP_CLOCK_MAX];
    int len = o->conn.payload == GMUD_PAYLOAD_JSON ? app_clock_json(last, t, msg, sizeof msg)
                                                   : app_clock_text(last, t, msg, sizeof msg);
    if (len >= 0 && (size_t)len <= room)
        return NULL;
    snprintf(why, n, "the clock's messages take %d bytes, over the %zu a packet holds%s",
             len, room, o->conn.session.mode == GMUD_SESSION_ON ? " beside the session header"
                                                                 : "");
    return why;
}

/* Lecture mode: the replies the server will read must fit a packet too.
 * Checked as the clients check their own (the longest reply, at the largest
 * id and sequence), with the lecture's data. NULL if they fit. */
static const char *replies_unfit(const prog_options *o, char *why, size_t n)
{
    const gmud_frame_config *f = &o->conn.frame;
    size_t room = f->framing == GMUD_FRAMING_FIXED ? f->fixed_size : f->max_message;
    uint8_t reply[256];
    ptrdiff_t len = gmud_session_lecture_reply(
        GMUD_SESSION_ID_MAX, GMUD_SEQ_EXHAUSTED - 1, GMUD_SESSION_LECTURE_DATA,
        strlen(GMUD_SESSION_LECTURE_DATA), reply, sizeof reply, NULL);
    if (len >= 0 && (size_t)len <= room)
        return NULL;
    snprintf(why, n, "the lecture's replies take up to %td bytes, over the %zu a packet holds",
             len, room);
    return why;
}

static int check_session(prog_options *o)
{
    static char unfit[160];
    gmud_framing framing = o->conn.frame.framing;
    int json = o->conn.payload == GMUD_PAYLOAD_JSON;
    gmud_session_mode *mode = &o->conn.session.mode;
    if (!o->session_set)
        *mode = framing == GMUD_FRAMING_GMUD && json ? GMUD_SESSION_ON : GMUD_SESSION_OFF;
    const char *opt = "--session", *why = NULL;
    if (o->addr.new_per_sec != 0 && o->addr.new_burst == 0)
        opt = "--new-per-addr-burst", why = "must be positive while --new-per-addr is on";
    else if (o->kind == PROG_SERVER && o->interval_ms == 0 && *mode != GMUD_SESSION_LECTURE)
        opt = "--interval", why = "0 is for lecture mode only (--session lecture)";
    else if (*mode == GMUD_SESSION_LECTURE && !json)
        why = "lecture mode needs --payload json";
    else if (*mode == GMUD_SESSION_LECTURE && o->kind == PROG_SERVER && o->app != APP_CLOCK)
        why = "lecture mode needs --app clock (the client replies to every packet: echo "
              "or chat would answer each reply forever)";
    else if (*mode == GMUD_SESSION_ON && framing != GMUD_FRAMING_LENGTH &&
             framing != GMUD_FRAMING_GMUD && framing != GMUD_FRAMING_FIXED)
        why = "mode on needs length, gmud or fixed framing (or --session off)";
    else if (o->kind == PROG_SERVER && o->app == APP_CLOCK &&
             clock_unfit(o, unfit, sizeof unfit) != NULL)
        opt = framing == GMUD_FRAMING_FIXED ? "--framing" : "--max-message", why = unfit;
    else if (o->kind == PROG_SERVER && *mode == GMUD_SESSION_LECTURE &&
             replies_unfit(o, unfit, sizeof unfit) != NULL)
        opt = framing == GMUD_FRAMING_FIXED ? "--framing" : "--max-message", why = unfit;
    if (why == NULL)
        return 0;
    fprintf(stderr, "%s: %s: %s\n", o->prog, opt, why);
    return -1;
}

/* A server's reading pauses at the high-water mark of queued output, well
 * before the close at max_queued; keep that order when max_queued is
 * lowered. (A client never pauses: its mark is SIZE_MAX, gmud/client.h.) */
static void keep_water_marks(prog_options *o)
{
    gmud_limits *lim = &o->conn.limits;
    if (o->kind != PROG_SERVER || lim->read_high_water < lim->max_queued)
        return;
    lim->read_high_water = lim->max_queued / 2 > 0 ? lim->max_queued / 2 : 1;
    lim->read_low_water = lim->read_high_water / 4;
}

/* The checks of the whole, once every option is in; PROG_RUN, or
 * PROG_EXIT_USAGE after printing why. */
/* TLS options that go together. A server serves TLS once given a
 * certificate; a client's verification options imply --tls. The key log
 * (SSLKEYLOGFILE) is taken from the environment, with a warning. */
static int check_tls(prog_options *o)
{
    gmud_tls_config *tls = &o->conn.tls;
    if (o->kind == PROG_SERVER) {
        if ((tls->cert_file == NULL) != (tls->key_file == NULL)) {
            fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", o->prog);
            return -1;
        }
        if (o->tls_port >= 0 && tls->cert_file == NULL) {
            fprintf(stderr, "%s: --tls-port needs --tls-cert and --tls-key\n", o->prog);
            return -1;
        }
        size_t tls_listeners = 0;
        for (size_t i = 0; i < o->listen.n; i++)
            tls_listeners += o->listen.at[i].tls != 0;
        const char *why = NULL;
        if (o->listen.n > 0 && o->tls_port >= 0)
            why = "--tls-port goes with --port; with --listen give tls:ADDR:PORT";
        else if (tls_listeners > 0 && tls->cert_file == NULL)
            why = "--listen tls:... needs --tls-cert and --tls-key";
        else if (o->listen.n > 0 && tls_listeners == 0 && tls->cert_file != NULL)
            why = "--tls-cert with --listen: say which address serves TLS (tls:ADDR:PORT)";
        if (why != NULL) {
            fprintf(stderr, "%s: %s\n", o->prog, why);
            return -1;
        }
        tls->enabled = tls->cert_file != NULL;
    } else {
        tls->enabled |= tls->ca_file != NULL || tls->pin != NULL || tls->insecure ||
                        tls->server_name != NULL;
        if (tls->insecure && tls->pin != NULL) {
            fprintf(stderr, "%s: --insecure and --pin contradict each other\n", o->prog);
            return -1;
        }
        if (tls->insecure)
            fprintf(stderr, "%s: warning: --insecure: the server is not verified; anyone on "
                            "the path can read and change this connection\n", o->prog);
    }
    const char *keylog = getenv("SSLKEYLOGFILE");
    if (tls->enabled && keylog != NULL && keylog[0] != '\0') {
        tls->keylog_file = keylog;
        fprintf(stderr, "%s: warning: SSLKEYLOGFILE is set: TLS secrets are written to %s; "
                        "whoever reads it can decrypt this traffic\n", o->prog, keylog);
    }
    return 0;
}

static int finish(prog_options *o, const pending *p)
{
    if (prog_framing_apply(o->prog, &o->conn.frame, p) != 0 || check_session(o) != 0 ||
        check_tls(o) != 0)
        return PROG_EXIT_USAGE;
    keep_water_marks(o);
    gmud_error err = {0};
    if (gmud_limits_check(&o->conn.limits, &err) != GMUD_OK) {
        fprintf(stderr, "%s: limits: %s\n", o->prog, err.message);
        return PROG_EXIT_USAGE;
    }
    o->parsed = 1;
    log_writer_set_json(o->log_json);
    return PROG_RUN;
}

static const opt_spec *find_spec(prog_kind kind, const char *name, size_t len)
{
    for (size_t i = 0; i < N_SPECS; i++)
        if ((specs[i].who & kind) && strlen(specs[i].name) == len &&
            strncmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

/* An option's environment variable: --max-connections is
 * GMUD_MAX_CONNECTIONS. */
static void env_name(const opt_spec *s, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "GMUD_%s", s->name + 2);
    for (size_t i = 5; i < n && i < cap; i++)
        out[i] = out[i] == '-' ? '_' : (char)(out[i] >= 'a' && out[i] <= 'z' ? out[i] - 32 : out[i]);
}

/* An option not given on the command line, from its environment variable
 * if set: the same text as after "--name=", a flag's "1", "true", "yes" or
 * "on" (or "0", "false", "no", "off", "": not set). 0, or -1 after
 * printing why. */
static int take_env(opt_take *t, const opt_spec *s)
{
    char name[48];
    env_name(s, name, sizeof name);
    const char *val = getenv(name);
    if (val == NULL || s->type == &t_help)
        return 0;
    t->s = s;
    t->val = val;
    if (s->type->flag) {
        static const char *const on[] = {"1", "true", "yes", "on"},
                                 *const off[] = {"0", "false", "no", "off", ""};
        int yes = 0, no = 0;
        for (size_t i = 0; i < 4; i++)
            yes |= strcmp(val, on[i]) == 0;
        for (size_t i = 0; i < 5; i++)
            no |= strcmp(val, off[i]) == 0;
        if (no)
            return 0;
        if (!yes) {
            fprintf(stderr, "%s: %s=%s: a flag takes 1, true, yes or on (0, false, no, off: "
                            "not set)\n", t->o->prog, name, val);
            return -1;
        }
    }
    if (s->type->take(t) == 0)
        return 0;
    fprintf(stderr, "%s: %s (%s): %s\n", t->o->prog, name, s->name, t->why);
    return -1;
}

/* Takes argv[*i], "--name value" (moving *i on to the value) or
 * "--name=value"; 0, or -1 after printing why. */
static int take_arg(opt_take *t, int argc, char **argv, int *i)
{
    const char *arg = argv[*i], *prog = t->o->prog;
    const char *eq = strchr(arg, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    t->s = strncmp(arg, "--", 2) == 0 ? find_spec(t->o->kind, arg, name_len) : NULL;
    if (t->s == NULL) {
        fprintf(stderr, "%s: unknown option or argument '%s'; see --help\n", prog, arg);
        return -1;
    }
    if (t->s->type->flag)
        t->val = eq != NULL ? eq + 1 : ""; /* --flag, or --flag=no */
    else
        t->val = eq != NULL ? eq + 1 : *i + 1 < argc ? argv[++*i] : NULL;
    if (t->val == NULL) {
        fprintf(stderr, "%s: %s needs a value (%s); see --help\n", prog, t->s->name,
                t->s->metavar);
        return -1;
    }
    if (t->s->type->take(t) == 0)
        return 0;
    fprintf(stderr, "%s: %s: %s\n", prog, t->s->name, t->why);
    return -1;
}

int prog_options_parse(prog_options *o, prog_kind kind, int argc, char **argv)
{
    opt_take t = {.o = o};
    unsigned char given[N_SPECS] = {0};
    set_defaults(o, kind);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            prog_options_help(kind, stdout);
            return PROG_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", o->prog, gmud_version());
            return PROG_EXIT_OK;
        }
        if (take_arg(&t, argc, argv, &i) != 0)
            return PROG_EXIT_USAGE;
        given[t.s - specs] = 1;
    }
    /* Then the environment, for what the command line left out: the flag
     * wins over the variable. */
    for (size_t k = 0; k < N_SPECS; k++)
        if ((specs[k].who & kind) && !given[k] && take_env(&t, &specs[k]) != 0)
            return PROG_EXIT_USAGE;
    return finish(o, &t.p);
}

/* ---- Help --------------------------------------------------------------- */

/* Prints text after column `indent` (where the cursor is), each word after
 * a space, wrapped before column `width`; continuation lines are indented
 * the same. */
static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
    int col = indent;
    while (*text != '\0') {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + (int)word > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        }
        fprintf(out, " %.*s", (int)word, text);
        col += 1 + (int)word;
        text += word;
        text += strspn(text, " ");
    }
    fputc('\n', out);
}

/* One option's lines: "--name METAVAR", its help and its default. */
static void print_option(FILE *out, const prog_options *d, const opt_spec *s)
{
    opt_show w = {d, s, ""};
    char left[40], text[480], env[48] = "";
    snprintf(left, sizeof left, "%s%s%s", s->name, s->metavar ? " " : "",
             s->metavar ? s->metavar : "");
    s->type->show(&w);
    if (s->type != &t_help)
        env_name(s, env, sizeof env);
    snprintf(text, sizeof text, "%s%s%s%s%s%s", s->help, w.text[0] ? " [" : "", w.text,
             w.text[0] ? "]" : "", env[0] ? " $" : "", env);
    fprintf(out, "  %-26s", left);
    print_wrapped(out, text, 28, 79);
}

void prog_options_help(prog_kind kind, FILE *out)
{
    prog_options d;
    set_defaults(&d, kind);
    if (kind == PROG_SERVER)
        fprintf(out, "usage: gmud-server [options]\n"
                     "Serves gmud messages over TCP: the lecture's clock, an echo, or a chat.\n"
                     "SIGINT or SIGTERM: stop accepting, flush, close, exit 0. SIGHUP: read the\n"
                     "TLS certificate and key files again (open connections keep theirs).\n");
    else
        fprintf(out, "usage: gmud-client [options] < lines\n"
                     "Connects to a gmud server, sends each stdin line as one message (json\n"
                     "payload: each non-blank line must be a JSON object) and prints each\n"
                     "message received as one line (json: compact, one object a line).\n"
                     "Exit 0 on a clean close; 1 on an error; 2 on bad usage; 3 when the\n"
                     "server refused the connection; 4 on a protocol or session violation.\n");
    fprintf(out, "options [default] $ENVIRONMENT_VARIABLE (the option wins over it):\n");
    for (size_t i = 0; i < N_SPECS; i++)
        if (specs[i].who & kind)
            print_option(out, &d, &specs[i]);
}

/* ---- The effective configuration ---------------------------------------- */

/* Logs every option's value as the program runs with it ("config" lines of
 * at most about 400 bytes: "--host 127.0.0.1 --port 8222 ..."); text
 * options not set are left out. No option holds a secret: TLS keys are
 * named by their files, and SSLKEYLOGFILE, not an option, is not logged
 * here (its own warning names it). */
void prog_options_log(const prog_options *o)
{
    char line[480];
    size_t used = 0;
    for (size_t i = 0; i <= N_SPECS; i++) {
        char one[120] = "";
        if (i < N_SPECS && (specs[i].who & o->kind) && specs[i].type != &t_help) {
            opt_show w = {o, &specs[i], ""};
            specs[i].type->show(&w);
            if (w.text[0] != '\0')
                snprintf(one, sizeof one, "%s %s", specs[i].name, w.text);
        }
        size_t n = strlen(one);
        if (used > 0 && (i == N_SPECS || used + 1 + n > 400)) {
            prog_logf(o, GMUD_LOG_INFO, NULL, "config", "%s", line);
            used = 0;
        }
        if (n > 0)
            used += (size_t)snprintf(line + used, sizeof line - used, "%s%s", used ? " " : "", one);
    }
}
