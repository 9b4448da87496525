/* bench_session: what sessions cost (mode on, docs/PROTOCOL.md section 6:
 * a welcome, then a 16-byte header in front of every packet, checked by the
 * receiver), each figure beside session mode off, or beside jansson alone,
 * measured in the same run and given as a ratio.
 *
 * 1. Streaming, gmud framing, 64-byte text payloads: an event client
 *    (gmud_client, one gmud_conn_send() per message, the queue topped up to
 *    GMUD_BENCH_BACKLOG bytes per loop turn as in bench_stream) to a
 *    gmud_server sink counting in on_message, the sink in a forked child.
 *    Mode off and mode on (both ends) take turns, in alternating order; the
 *    ratio on/off of messages/s is taken per round (goal >= 0.80). The clock
 *    runs from on_connect (with mode on: after the welcome) to the sink's
 *    acknowledgement of the last message. Each side's CPU time per message
 *    (user + system, getrusage / wait4) says which side pays; the ratio of
 *    messages per CPU second of both sides together is the steadier figure
 *    when other jobs share the machine's cores. A control, mode off with
 *    80-byte payloads (mode on's 86 bytes a message on the wire), splits
 *    mode on's cost between its 16 extra bytes and the session code.
 * 2. Round trip, 64-byte payloads, one message in flight: an event client
 *    sending the next request from on_message of the previous answer, to a
 *    gmud_server echo in a forked child; one client and one server per mode,
 *    the two clients taking turns in blocks of GMUD_BENCH_BLOCK round trips
 *    after a warm-up. Placements as bench_rtt's, the same for both modes:
 *    pinned (everything on CPU 0) and split (clients on CPU 0, servers on
 *    CPU 1). p50, p99, messages/s (1 / mean round trip), ratios on/off.
 * 3. JSON end to end: the lecture's 89-byte object streamed (as in 1) to a
 *    sink with payload type json, which parses every message with gmud's
 *    bounded parser and hands the json_t to on_message. The figure is
 *    messages per CPU second of the sink process (its rusage from wait4):
 *    read syscalls, framing, session check, bounds pass, jansson's parse and
 *    delivery, all on one core. Baseline in the same run, in this process:
 *    json_loadb() with the flags gmud_json_parse() passes
 *    (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) on the same bytes, then
 *    json_decref(), in a loop, per CPU second. gmud_json_parse() alone is
 *    shown between the two. Goal for mode on: >= 0.70 of jansson alone.
 *
 * Environment: GMUD_BENCH_ROUNDS (default 15: on this 2-core virtual
 * machine single rounds of case 1 range from 0.3 to 2 times each other, and
 * the median of 5 per-round ratios moved by 0.1 from run to run; of 15, by
 * 0.05), GMUD_BENCH_MESSAGES (case 1,
 * per round and mode, default 4000000), GMUD_BENCH_BACKLOG (bytes the writer
 * keeps queued, default 262144), GMUD_BENCH_SAMPLES (case 2, round trips
 * per mode and placement, default 20000), GMUD_BENCH_BLOCK (default 10),
 * GMUD_BENCH_JSON_MESSAGES (case 3, per round and measure, default 300000),
 * GMUD_BENCH_ONLY (one case: stream, rtt or json).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench_echo.h"
#include "bench_net.h"
#include "bench_pump.h"
#include "bench_util.h"
#include "gmud/client.h"
#include "gmud/frame.h"
#include "gmud/json.h"
#include "gmud/server.h"
#include "gmud/session.h"

enum {
    SMALL = 64,         /* payload bytes of cases 1 and 2 */
    SMALL_MAX = SMALL + GMUD_SESSION_HEADER_SIZE, /* case 1's control */
    CHILD_SECONDS = 40, /* a child gives up after this (alarm) */
    IO_TIMEOUT_MS = 5000,
    WAIT_MS = 20000,    /* for a streaming sink to finish */
    WARMUP = 500,       /* uncounted round trips per client */
    MODES = 2,
    OFF = 0,
    ON = 1
};

static const gmud_session_mode modes[MODES] = {GMUD_SESSION_OFF, GMUD_SESSION_ON};
static const char *const mode_names[MODES] = {"off", "on"};

static const char LECTURE[] = "{\"time\": \"Sat Mar 30 11:40:50 2019\", "
                              "\"message\": \"2:Sat Mar 30 11:40:50 2019\", \"value\": 2}";
#define LECTURE_LEN (sizeof LECTURE - 1)

static uint8_t g_small[SMALL_MAX];

/* ---- Streaming: a sink server (child) and an event-client writer -------- */

/* The sink and the writer are bench_stream's (bench_pump.h). */
typedef bench_pump stream_spec;

/* One streaming run: wall time, and CPU time of each side. */
typedef struct run_fig {
    double wall_s, tx_cpu_s, rx_cpu_s;
} run_fig;

/* One streaming run: the sink forked, the writer here. */
static run_fig stream_run(const stream_spec *s)
{
    run_fig f;
    uint16_t port = 0;
    int pfd[2];
    if (pipe(pfd) != 0)
        bench_fail("pipe: %s", strerror(errno));
    pid_t pid = bench_fork(CHILD_SECONDS);
    if (pid == 0) {
        close(pfd[0]);
        bench_pump_sink_main(s, pfd[1]);
    }
    close(pfd[1]);
    if (bench_pipe_read(pfd[0], &port, sizeof port, IO_TIMEOUT_MS) != 0)
        bench_fail("sink server did not start");
    close(pfd[0]);
    bench_pump_writer(s, port, &f.wall_s, &f.tx_cpu_s);
    if (bench_wait_cpu(pid, WAIT_MS, &f.rx_cpu_s) != 0)
        bench_fail("sink (session %s) failed", gmud_session_mode_name(s->mode));
    return f;
}

static void stream_spec_init(stream_spec *s, gmud_session_mode mode, gmud_payload payload,
                             const void *msg, size_t len, size_t messages, size_t backlog)
{
    memset(s, 0, sizeof *s);
    gmud_frame_default_config(&s->frame, GMUD_FRAMING_GMUD);
    s->mode = mode;
    s->payload = payload;
    s->msg = msg;
    s->len = len;
    size_t hdr = mode == GMUD_SESSION_ON ? GMUD_SESSION_HEADER_SIZE : 0;
    s->frame_bytes = gmud_frame_encoded_size(&s->frame, len + hdr);
    s->messages = messages;
    s->backlog = backlog;
}

static double least(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

/* Median of v[0..n) without disturbing v. */
static double median_of(const double *v, size_t n)
{
    double *tmp = bench_xmalloc(n * sizeof *tmp);
    memcpy(tmp, v, n * sizeof *tmp);
    double best, med;
    bench_best_median(tmp, n, &best, &med);
    free(tmp);
    return med;
}

static double max_of(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

/* ---- Case 1: streaming -------------------------------------------------- */

/* The configurations of case 1: the two modes, and a control that sends
 * mode on's wire bytes without sessions, which splits mode on's cost
 * between the 16 bytes the kernel moves and the session code. */
enum { S_OFF, S_ON, S_OFF16, S_COUNT };

static const char *const stream_names[S_COUNT] = {"off", "on", "off, 80 B"};

/* "median (least..most)" of v[0..n) into buf. */
static void fmt_ratio(char *buf, size_t cap, const double *v, size_t n)
{
    snprintf(buf, cap, "%.2f (%.2f..%.2f)", median_of(v, n), least(v, n), max_of(v, n));
}

static void case_stream(int rounds, size_t messages, size_t backlog)
{
    stream_spec spec[S_COUNT];
    stream_spec_init(&spec[S_OFF], GMUD_SESSION_OFF, GMUD_PAYLOAD_TEXT, g_small, SMALL,
                     messages, backlog);
    stream_spec_init(&spec[S_ON], GMUD_SESSION_ON, GMUD_PAYLOAD_TEXT, g_small, SMALL, messages,
                     backlog);
    stream_spec_init(&spec[S_OFF16], GMUD_SESSION_OFF, GMUD_PAYLOAD_TEXT, g_small,
                     SMALL + GMUD_SESSION_HEADER_SIZE, messages, backlog);
    size_t nr = (size_t)rounds;
    double *rate[S_COUNT], *tx[S_COUNT], *rx[S_COUNT], *ratio[S_COUNT], *cpu_ratio[S_COUNT];
    for (int k = 0; k < S_COUNT; k++) {
        rate[k] = bench_xmalloc(nr * sizeof(double));
        tx[k] = bench_xmalloc(nr * sizeof(double));
        rx[k] = bench_xmalloc(nr * sizeof(double));
        ratio[k] = bench_xmalloc(nr * sizeof(double));
        cpu_ratio[k] = bench_xmalloc(nr * sizeof(double));
    }
    double *on_ctl = bench_xmalloc(nr * sizeof(double));
    double n = (double)messages;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < S_COUNT; i++) {
            int k = r % 2 == 0 ? i : S_COUNT - 1 - i; /* alternate the order */
            run_fig f = stream_run(&spec[k]);
            rate[k][r] = n / f.wall_s;
            tx[k][r] = f.tx_cpu_s / n * 1e9;
            rx[k][r] = f.rx_cpu_s / n * 1e9;
        }
        /* Messages per CPU second of both sides together: on a machine
         * whose other jobs take turns on the cores, wall time measures the
         * scheduler as much as gmud, and on loopback the kernel's receive
         * work lands on either side's account from one round to the next;
         * the sum does not move with either. */
        for (int k = 0; k < S_COUNT; k++) {
            ratio[k][r] = rate[k][r] / rate[S_OFF][r];
            cpu_ratio[k][r] = (tx[S_OFF][r] + rx[S_OFF][r]) / (tx[k][r] + rx[k][r]);
        }
        on_ctl[r] = (tx[S_OFF16][r] + rx[S_OFF16][r]) / (tx[S_ON][r] + rx[S_ON][r]);
    }

    printf("### 1. Streaming, gmud framing, 64-byte text payloads, %zu messages per round, "
           "%d rounds\n\n",
           messages, rounds);
    printf("- mode: session mode of both ends; \"off, 80 B\" is a control: mode off with "
           "80-byte payloads, the same bytes on the wire as mode on\n");
    printf("- wire B/msg: bytes per message on the wire (gmud frame, with mode on the 16-byte "
           "header)\n");
    printf("- Mmsg/s best / median: messages per second over the rounds, on_connect to the "
           "sink's ack of the last message\n");
    printf("- msg/s vs off: per round, the row's msg/s over mode off's of the same round, "
           "median (range) (goal for on >= 0.80)\n");
    printf("- CPU ns/msg writer / sink: user+sys CPU per message of the writing process and "
           "the sink process, least over the rounds (median)\n");
    printf("- per CPU-s vs off: the same ratio for messages per CPU second of both processes "
           "together (steadier under load)\n");
    printf("- on vs control: per CPU-s, mode on over \"off, 80 B\": what the session code "
           "costs beyond its 16 bytes\n\n");
    printf("| mode      | wire B/msg | Mmsg/s best / median | msg/s vs off      | "
           "CPU ns/msg writer / sink      | per CPU-s vs off  | on vs control     |\n");
    printf("|-----------|------------|----------------------|-------------------|"
           "-------------------------------|-------------------|-------------------|\n");
    for (int k = 0; k < S_COUNT; k++) {
        char rbuf[48], cbuf[48], obuf[48];
        snprintf(rbuf, sizeof rbuf, "-");
        snprintf(cbuf, sizeof cbuf, "-");
        snprintf(obuf, sizeof obuf, "-");
        if (k != S_OFF) {
            fmt_ratio(rbuf, sizeof rbuf, ratio[k], nr);
            fmt_ratio(cbuf, sizeof cbuf, cpu_ratio[k], nr);
        }
        if (k == S_ON)
            fmt_ratio(obuf, sizeof obuf, on_ctl, nr);
        printf("| %-9s | %10zu | %8.2f / %-9.2f | %-17s | %5.1f (%5.1f) / %5.1f (%5.1f) | "
               "%-17s | %-17s |\n",
               stream_names[k], spec[k].frame_bytes, max_of(rate[k], nr) / 1e6,
               median_of(rate[k], nr) / 1e6, rbuf, least(tx[k], nr), median_of(tx[k], nr),
               least(rx[k], nr), median_of(rx[k], nr), cbuf, obuf);
    }
    printf("\n");
    fflush(stdout);
    for (int k = 0; k < S_COUNT; k++) {
        free(rate[k]);
        free(tx[k]);
        free(rx[k]);
        free(ratio[k]);
        free(cpu_ratio[k]);
    }
    free(on_ctl);
}

/* ---- Case 2: round trip -------------------------------------------------- */

static pid_t start_echo(gmud_session_mode mode, uint16_t *port)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        bench_fail("pipe: %s", strerror(errno));
    pid_t pid = bench_fork(CHILD_SECONDS);
    if (pid == 0) {
        close(pfd[0]);
        bench_echo_main(pfd[1], 1, mode);
    }
    close(pfd[1]);
    if (bench_pipe_read(pfd[0], port, sizeof *port, IO_TIMEOUT_MS) != 0)
        bench_fail("echo server (session %s) did not start", gmud_session_mode_name(mode));
    close(pfd[0]);
    return pid;
}

typedef struct rtt_stats {
    bench_rtt_stats rt;
    double server_cpu_us;
} rtt_stats;

/* cpu < 0: any CPU. The servers are forked with the servers' placement
 * (children inherit it), then this process takes the clients'. */
static void rtt_placement(const char *place, int client_cpu, int server_cpu, size_t total,
                          size_t block)
{
    bench_pin(server_cpu);
    uint16_t port[MODES];
    pid_t pid[MODES];
    for (int m = 0; m < MODES; m++)
        pid[m] = start_echo(modes[m], &port[m]);
    bench_pin(client_cpu);

    bench_ev ev[MODES];
    bench_samples sm[MODES];
    for (int m = 0; m < MODES; m++) {
        bench_ev_open(&ev[m], modes[m], port[m], g_small, SMALL);
        sm[m].us = bench_xmalloc(total * sizeof(double));
        sm[m].n = 0;
        sm[m].cap = total;
    }
    for (int m = 0; m < MODES; m++)
        bench_ev_block(&ev[m], WARMUP, NULL);
    /* Blocks take turns, in alternating order, so that a slow spell of a
     * shared machine hits both modes alike. */
    for (size_t done = 0, k = 0; done < total; done += block, k++) {
        size_t n = total - done < block ? total - done : block;
        for (int i = 0; i < MODES; i++) {
            int m = k % 2 == 0 ? i : MODES - 1 - i;
            bench_ev_block(&ev[m], n, &sm[m]);
        }
    }
    rtt_stats st[MODES];
    for (int m = 0; m < MODES; m++) {
        bench_ev_close(&ev[m]);
        double cpu = 0;
        if (bench_wait_cpu(pid[m], IO_TIMEOUT_MS, &cpu) != 0)
            bench_fail("echo server (session %s) failed", mode_names[m]);
        st[m].rt = bench_rtt_summarise(&sm[m]);
        st[m].server_cpu_us = cpu / (double)(total + WARMUP) * 1e6;
        free(sm[m].us);
    }
    for (int m = 0; m < MODES; m++) {
        const bench_rtt_stats *x = &st[m].rt;
        if (m == OFF)
            printf("| %-8s | %-4s | %6.1f | %6.1f | %6.1f | %8.0f | %13.2f |     -      |"
                   "     -      |        -        |\n",
                   place, mode_names[m], x->p50, x->p99, x->mean, 1e6 / x->mean,
                   st[m].server_cpu_us);
        else
            printf("| %-8s | %-4s | %6.1f | %6.1f | %6.1f | %8.0f | %13.2f | %10.2f | %10.2f "
                   "| %15.2f |\n",
                   place, mode_names[m], x->p50, x->p99, x->mean, 1e6 / x->mean,
                   st[m].server_cpu_us, x->p50 / st[OFF].rt.p50, x->p99 / st[OFF].rt.p99,
                   st[OFF].rt.mean / x->mean);
    }
    fflush(stdout);
}

static void case_rtt(size_t total, size_t block)
{
    printf("### 2. Round trip, 64-byte payloads, one message in flight, %zu round trips per "
           "mode and placement\n\n",
           total);
    printf("- place: pinned = clients and echo servers all on CPU 0; split = clients on CPU 0, "
           "servers on CPU 1 (the same for both modes)\n");
    printf("- mode: session mode of client and server; p50 / p99 / mean us: round trip, "
           "send to on_message of the echo\n");
    printf("- msg/s: round trips per second, 1 / mean; server CPU us/rt: the echo process's "
           "user+sys CPU per round trip\n");
    printf("- p50, p99 on/off: mode on's latency over mode off's (lower is better); "
           "msg/s on/off: the goal's figure (>= 0.80)\n\n");
    printf("| place    | mode | p50 us | p99 us | mean us |  msg/s   | server CPU us | "
           "p50 on/off | p99 on/off | msg/s on/off    |\n");
    printf("|----------|------|--------|--------|---------|----------|---------------|"
           "------------|------------|-----------------|\n");
    rtt_placement("pinned", 0, 0, total, block);
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
        rtt_placement("split", 0, 1, total, block);
    bench_pin(-1);
    printf("\n");
}

/* ---- Case 3: JSON end to end -------------------------------------------- */

static gmud_json_limits g_limits;

/* n parses of the lecture's object by json_loadb with gmud's flags;
 * returns CPU seconds. */
static double jansson_alone(size_t n)
{
    double cpu0 = bench_cpu_seconds();
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *v = json_loadb(LECTURE, LECTURE_LEN, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                               &je);
        ok += json_is_object(v);
        json_decref(v);
    }
    double cpu = bench_cpu_seconds() - cpu0;
    if (ok != n)
        bench_fail("json_loadb failed %zu times", n - ok);
    return cpu;
}

/* The same through gmud_json_parse (bounds pass + json_loadb). */
static double gmud_parse_alone(size_t n)
{
    double cpu0 = bench_cpu_seconds();
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = NULL;
        gmud_error err;
        if (gmud_json_parse((const uint8_t *)LECTURE, LECTURE_LEN, &g_limits, &v, &err) == 0)
            ok++;
        json_decref(v);
    }
    double cpu = bench_cpu_seconds() - cpu0;
    if (ok != n)
        bench_fail("gmud_json_parse failed %zu times", n - ok);
    return cpu;
}

enum { J_JANSSON, J_GMUD, J_OFF, J_ON, J_COUNT };

static const char *const json_names[J_COUNT] = {
    "json_loadb alone (baseline)",
    "gmud_json_parse alone",
    "end to end, session off",
    "end to end, session on",
};

static void case_json(int rounds, size_t messages, size_t backlog)
{
    gmud_json_default_config(&g_limits);
    stream_spec spec[MODES];
    for (int m = 0; m < MODES; m++)
        stream_spec_init(&spec[m], modes[m], GMUD_PAYLOAD_JSON, LECTURE, LECTURE_LEN, messages,
                         backlog);
    size_t nr = (size_t)rounds;
    double *rate[J_COUNT], *ratio[J_COUNT], *tx[J_COUNT];
    for (int j = 0; j < J_COUNT; j++) {
        rate[j] = bench_xmalloc(nr * sizeof(double));
        ratio[j] = bench_xmalloc(nr * sizeof(double));
        tx[j] = bench_xmalloc(nr * sizeof(double));
    }
    double n = (double)messages;
    /* Warm jansson up (its hash seed, the allocator's free lists). */
    jansson_alone(messages / 10 + 1);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < J_COUNT; i++) {
            int j = r % 2 == 0 ? i : J_COUNT - 1 - i; /* alternate the order */
            double cpu;
            tx[j][r] = 0;
            if (j == J_JANSSON) {
                cpu = jansson_alone(messages);
            } else if (j == J_GMUD) {
                cpu = gmud_parse_alone(messages);
            } else {
                run_fig f = stream_run(&spec[j == J_ON ? ON : OFF]);
                cpu = f.rx_cpu_s;
                tx[j][r] = f.tx_cpu_s / n * 1e9;
            }
            rate[j][r] = n / cpu;
        }
        for (int j = 0; j < J_COUNT; j++)
            ratio[j][r] = rate[j][r] / rate[J_JANSSON][r];
    }

    printf("### 3. JSON end to end: the lecture's %zu-byte object, gmud framing, %zu messages "
           "per round and measure, %d rounds\n\n",
           (size_t)LECTURE_LEN, messages, rounds);
    printf("- json_loadb alone: json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, the flags "
           "gmud passes) + json_decref on the same bytes in a loop, this process\n");
    printf("- gmud_json_parse alone: the same through gmud's bounds pass + json_loadb; end to "
           "end: streamed (as case 1) to a json sink, each message\n  parsed and its json_t "
           "handed to on_message; the figure is the sink process's CPU (wait4), setup "
           "included\n");
    printf("- kmsg/s per core best / median: messages per CPU second (user+sys) of the "
           "parsing process\n");
    printf("- ratio median (range): per round, the row's msg/s per core over json_loadb "
           "alone's of the same round (goal for session on >= 0.70)\n");
    printf("- CPU ns/msg: the parsing process's CPU per message (median); writer ns/msg: the "
           "streaming writer's CPU per message (median)\n\n");
    printf("| measure                     | kmsg/s per core best / median | "
           "ratio median (range) | CPU ns/msg | writer ns/msg |\n");
    printf("|-----------------------------|-------------------------------|"
           "----------------------|------------|---------------|\n");
    for (int j = 0; j < J_COUNT; j++) {
        char rbuf[48], tbuf[24];
        if (j == J_JANSSON)
            snprintf(rbuf, sizeof rbuf, "1");
        else
            snprintf(rbuf, sizeof rbuf, "%.2f (%.2f..%.2f)", median_of(ratio[j], nr),
                     least(ratio[j], nr), max_of(ratio[j], nr));
        if (j == J_OFF || j == J_ON)
            snprintf(tbuf, sizeof tbuf, "%.0f", median_of(tx[j], nr));
        else
            snprintf(tbuf, sizeof tbuf, "-");
        double med = median_of(rate[j], nr);
        printf("| %-27s | %11.0f / %-15.0f | %-20s | %10.0f | %13s |\n", json_names[j],
               max_of(rate[j], nr) / 1e3, med / 1e3, rbuf, 1e9 / med, tbuf);
    }
    printf("\n");
    fflush(stdout);
    for (int j = 0; j < J_COUNT; j++) {
        free(rate[j]);
        free(ratio[j]);
        free(tx[j]);
    }
}

int main(void)
{
    bench_prog = "bench_session";
    bench_ignore_sigpipe();
    int rounds = (int)bench_env_long("GMUD_BENCH_ROUNDS", 15, 1, 31);
    size_t messages = (size_t)bench_env_long("GMUD_BENCH_MESSAGES", 4000000, 1000, 100000000);
    size_t backlog = (size_t)bench_env_long("GMUD_BENCH_BACKLOG", 256 * 1024, 1024, 64 << 20);
    size_t samples_n = (size_t)bench_env_long("GMUD_BENCH_SAMPLES", 20000, 100, 1000000);
    size_t block = (size_t)bench_env_long("GMUD_BENCH_BLOCK", 10, 1, 100000);
    size_t json_n = (size_t)bench_env_long("GMUD_BENCH_JSON_MESSAGES", 300000, 1000, 10000000);
    const char *only = getenv("GMUD_BENCH_ONLY");
    if (only != NULL && *only != '\0' && strcmp(only, "stream") != 0 &&
        strcmp(only, "rtt") != 0 && strcmp(only, "json") != 0) {
        fprintf(stderr, "GMUD_BENCH_ONLY=%s: expected stream, rtt or json\n", only);
        return 2;
    }
    if (only != NULL && *only == '\0')
        only = NULL;
    /* Every run is bounded by its children's alarms; this bounds the lot. */
    bench_time_bound(170);
    for (size_t i = 0; i < SMALL_MAX; i++)
        g_small[i] = (uint8_t)('a' + i % 26);

    printf("bench_session: the cost of session mode on (16-byte header per packet, checked "
           "by the receiver) beside mode off, same run;\n  loopback, peers in forked "
           "children, rate limits off, gmud framing\n");
    bench_print_load();
    printf("\n");
    if (only == NULL || strcmp(only, "stream") == 0)
        case_stream(rounds, messages, backlog);
    if (only == NULL || strcmp(only, "rtt") == 0)
        case_rtt(samples_n, block);
    if (only == NULL || strcmp(only, "json") == 0)
        case_json(rounds, json_n, backlog);
    return 0;
}
