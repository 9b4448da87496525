/* bench_tls_stream: what TLS 1.3 costs gmud's throughput and latency,
 * beside the same traffic in plain TCP measured in the same run, and beside
 * the cipher's own speed.
 *
 *   floor    AES-256-GCM (TLS_AES_256_GCM_SHA384, what two OpenSSL 3 peers
 *            agree by default) sealing 16 KiB and 1 KiB buffers with EVP
 *            on one core, in this process: no TLS stack can stream faster
 *            than its sender seals (the receiver opens on the other core).
 *   stream   bench_pump's writer (gmud_client, one gmud_conn_send() per
 *            message) to its sink (a gmud_server counting messages), gmud
 *            framing, 64 B and 1 KiB payloads; each round runs the plain
 *            pair and the TLS pair (P-256 certificate, verified by pin) side
 *            by side, in alternating order. The ratio TLS / plain is taken
 *            per round; median and range. Payload GB/s is payload bytes over
 *            the time from the connection being up (after the handshake) to
 *            the sink's acknowledgement of the last message.
 *            Beside them in the same rounds: raw TCP, and OpenSSL alone
 *            over blocking sockets, moving the same bytes in 64 KiB
 *            writes: their ratio is the floor TLS itself sets.
 *   rtt      64-byte round trips, one at a time: gmud_sync (blocking) and
 *            gmud_client (event) against a gmud_server echo, plain and TLS,
 *            in blocks of GMUD_BENCH_BLOCK taking turns after a warm-up, in
 *            bench_rtt's three placements. p50 and p99, ratio TLS / plain.
 * Goals (issue 11): stream 64 B TLS / plain >= 0.6; 1 KiB >= 1 GB/s of
 * payload; RTT p50 within 1.2x.
 *
 * Environment: GMUD_BENCH_MB (stream MiB per case and round, default 256),
 * GMUD_BENCH_ROUNDS (default 7), GMUD_BENCH_SAMPLES (round trips per
 * client, default 20000), GMUD_BENCH_BLOCK (default 10).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "bench_echo.h"
#include "bench_net.h"
#include "bench_pump.h"
#include "bench_tls.h"
#include "bench_util.h"
#include "gmud/frame.h"
#include "gmud/sync.h"

enum {
    ROUND_SECONDS = 30, /* a child gives up after this (alarm) */
    IO_TIMEOUT_MS = 5000,
    RTT_PAYLOAD = 64,
    WARMUP = 500
};

static bench_tls g_tls;

/* ---- The floor: AES-256-GCM on one core --------------------------------- */

/* GB/s of plaintext sealed in `chunk`-byte buffers, each with its own IV
 * and tag as a TLS record has; the best of three half-second runs. */
static double gcm_seal_gbps(size_t chunk)
{
    static uint8_t key[32], iv[12], tag[16];
    uint8_t *in = bench_xmalloc(chunk), *out = bench_xmalloc(chunk + 16);
    memset(in, 'a', chunk);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) != 1)
        bench_fail("EVP AES-256-GCM");
    double best = 0;
    for (int run = 0; run < 3; run++) {
        uint64_t t0 = bench_now_ns(), t1;
        size_t bytes = 0;
        do {
            for (int i = 0; i < 64; i++) {
                int n = 0, f = 0;
                iv[11]++;
                if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1 ||
                    EVP_EncryptUpdate(ctx, NULL, &n, iv, 5) != 1 || /* the record header as AAD */
                    EVP_EncryptUpdate(ctx, out, &n, in, (int)chunk) != 1 ||
                    EVP_EncryptFinal_ex(ctx, out + n, &f) != 1 ||
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
                    bench_fail("EVP seal");
                bytes += chunk;
            }
            bench_escape(out);
            t1 = bench_now_ns();
        } while (t1 - t0 < 500000000ull);
        double gbps = (double)bytes / ((double)(t1 - t0) / 1e9) / 1e9;
        best = gbps > best ? gbps : best;
    }
    EVP_CIPHER_CTX_free(ctx);
    free(in);
    free(out);
    return best;
}

/* ---- Streaming ---------------------------------------------------------- */

/* The baselines move the case's encoded stream (frames back to back) in
 * 64 KiB writes to a reader doing 64 KiB reads that only counts bytes and
 * answers the last with one byte: raw TCP (write/read), and OpenSSL alone
 * over the same blocking sockets (SSL_write/SSL_read, the same certificate
 * and TLS 1.3 defaults as gmud, no gmud code): the most any program using
 * OpenSSL can move, which gmud's TLS figure is to be read against. */
enum { RAW_CHUNK = 64 * 1024 };

static SSL_CTX *raw_tls_ctx(int server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION))
        bench_fail("SSL_CTX_new");
    if (server && (SSL_CTX_use_certificate_chain_file(ctx, g_tls.cert) != 1 ||
                   SSL_CTX_use_PrivateKey_file(ctx, g_tls.key, SSL_FILETYPE_PEM) != 1))
        bench_fail("raw TLS server: the certificate");
    return ctx;
}

/* Blocking I/O on fd, through ssl when it is not NULL. */
static int raw_io(int fd, SSL *ssl, void *buf, size_t n, int wr)
{
    if (ssl != NULL)
        return wr ? SSL_write(ssl, buf, (int)n) : SSL_read(ssl, buf, (int)n);
    return (int)(wr ? write(fd, buf, n) : read(fd, buf, n));
}

static void raw_reader_main(int lfd, size_t total, int tls)
{
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        bench_fail("accept: %s", strerror(errno));
    bench_nodelay(fd); /* as gmud's sockets are */
    SSL_CTX *ctx = tls ? raw_tls_ctx(1) : NULL;
    SSL *ssl = NULL;
    if (tls) {
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1)
            bench_fail("raw TLS reader: handshake");
    }
    uint8_t *buf = bench_xmalloc(RAW_CHUNK);
    size_t got = 0;
    while (got < total) {
        int r = raw_io(fd, ssl, buf, RAW_CHUNK, 0);
        if (r <= 0)
            bench_fail("raw reader: stream ended after %zu of %zu bytes", got, total);
        got += (size_t)r;
    }
    uint8_t ack = 'k';
    if (raw_io(fd, ssl, &ack, 1, 1) != 1)
        bench_fail("raw reader: ack");
    while (raw_io(fd, ssl, buf, RAW_CHUNK, 0) > 0) /* until the writer closes */
        ;
    _exit(0);
}

/* The raw writer: wall seconds from the connection (and handshake) being
 * up to the ack. wire[] holds RAW_CHUNK + one frame of back-to-back frames. */
static double raw_round(const uint8_t *wire, size_t frame, size_t total, int tls,
                        double *tx_cpu, double *rx_cpu)
{
    uint16_t port = 0;
    int lfd = bench_listen(16, &port);
    pid_t pid = bench_fork(ROUND_SECONDS);
    if (pid == 0)
        raw_reader_main(lfd, total, tls);
    close(lfd);
    int fd = bench_connect(port, 1);
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    if (tls) {
        ctx = raw_tls_ctx(0);
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1)
            bench_fail("raw TLS writer: handshake");
    }
    double cpu0 = bench_cpu_seconds();
    uint64_t t0 = bench_now_ns();
    size_t sent = 0;
    while (sent < total) {
        size_t n = total - sent < RAW_CHUNK ? total - sent : RAW_CHUNK;
        int w = raw_io(fd, ssl, (void *)(wire + sent % frame), n, 1);
        if (w <= 0)
            bench_fail("raw writer: write failed");
        sent += (size_t)w;
    }
    uint8_t ack;
    if (raw_io(fd, ssl, &ack, 1, 0) != 1 || ack != 'k')
        bench_fail("raw writer: no ack");
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    *tx_cpu = bench_cpu_seconds() - cpu0;
    if (ssl != NULL) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
        SSL_CTX_free(ctx);
    }
    close(fd);
    if (bench_wait_cpu(pid, IO_TIMEOUT_MS, rx_cpu) != 0)
        bench_fail("raw %sreader failed", tls ? "TLS " : "");
    return wall;
}

typedef struct stream_case {
    size_t payload;
    size_t messages;
    uint8_t *msg;
    uint8_t *wire; /* for the raw sides */
    bench_pump plain, tls;
} stream_case;

static void case_build(stream_case *c, size_t payload, size_t target)
{
    memset(c, 0, sizeof *c);
    gmud_frame_config fc;
    gmud_frame_default_config(&fc, GMUD_FRAMING_GMUD);
    size_t frame = gmud_frame_encoded_size(&fc, payload);
    c->payload = payload;
    c->messages = target / frame;
    c->msg = bench_xmalloc(payload);
    for (size_t i = 0; i < payload; i++)
        c->msg[i] = (uint8_t)('a' + i % 26);
    size_t frames = RAW_CHUNK / frame + 2;
    c->wire = bench_xmalloc(frames * frame);
    gmud_error err;
    for (size_t i = 0; i < frames; i++)
        if (gmud_frame_encode(&fc, c->msg, payload, c->wire + i * frame, frame, &err) !=
            (ptrdiff_t)frame)
            bench_fail("gmud_frame_encode: %s", err.message);
    bench_pump *p = &c->plain;
    p->frame = fc;
    p->payload = GMUD_PAYLOAD_TEXT;
    p->mode = GMUD_SESSION_OFF;
    p->msg = c->msg;
    p->len = payload;
    p->frame_bytes = frame;
    p->messages = c->messages;
    p->backlog = 256 * 1024;
    c->tls = *p;
    c->tls.tls = &g_tls;
}

/* One stream: the sink forked, this process writes; wall seconds. */
static double stream_round(const bench_pump *p, double *tx_cpu, double *rx_cpu)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        bench_fail("pipe: %s", strerror(errno));
    pid_t pid = bench_fork(ROUND_SECONDS);
    if (pid == 0) {
        close(pfd[0]);
        bench_pump_sink_main(p, pfd[1]);
    }
    close(pfd[1]);
    uint16_t port = 0;
    if (bench_pipe_read(pfd[0], &port, sizeof port, IO_TIMEOUT_MS) != 0)
        bench_fail("sink server did not start");
    close(pfd[0]);
    double wall = 0;
    bench_pump_writer(p, port, &wall, tx_cpu);
    if (bench_wait_cpu(pid, IO_TIMEOUT_MS, rx_cpu) != 0)
        bench_fail("%s sink failed", p->tls ? "TLS" : "plain");
    return wall;
}

enum { SIDES = 4 }; /* raw, raw OpenSSL, gmud plain, gmud TLS */

static double side_round(const stream_case *c, int k, double *tx, double *rx)
{
    size_t frame = c->plain.frame_bytes;
    if (k < 2)
        return raw_round(c->wire, frame, c->messages * frame, k, tx, rx);
    return stream_round(k == 2 ? &c->plain : &c->tls, tx, rx);
}

static void stream_case_run(size_t payload, size_t target, int rounds)
{
    stream_case c;
    case_build(&c, payload, target);
    double *wall[SIDES], *ratio[2];
    for (int k = 0; k < SIDES; k++)
        wall[k] = bench_xmalloc((size_t)rounds * sizeof(double));
    for (int k = 0; k < 2; k++)
        ratio[k] = bench_xmalloc((size_t)rounds * sizeof(double));
    double cpu[SIDES][2]; /* tx, rx: least over the rounds */
    for (int k = 0; k < SIDES; k++)
        cpu[k][0] = cpu[k][1] = 1e30;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < SIDES; i++) {
            int k = r % 2 == 0 ? i : SIDES - 1 - i; /* alternate the order */
            double tx, rx;
            wall[k][r] = side_round(&c, k, &tx, &rx);
            cpu[k][0] = tx < cpu[k][0] ? tx : cpu[k][0];
            cpu[k][1] = rx < cpu[k][1] ? rx : cpu[k][1];
        }
        ratio[0][r] = wall[0][r] / wall[1][r]; /* OpenSSL alone / raw */
        ratio[1][r] = wall[2][r] / wall[3][r]; /* gmud TLS / gmud plain */
    }
    double med[SIDES], best[SIDES], rb[2], rm[2];
    for (int k = 0; k < SIDES; k++)
        bench_best_median(wall[k], (size_t)rounds, &best[k], &med[k]);
    for (int k = 0; k < 2; k++)
        bench_best_median(ratio[k], (size_t)rounds, &rb[k], &rm[k]);
    double n = (double)c.messages, bytes = n * (double)payload;
    printf("| gmud %4zu B | %8zu | %6.2f | %6.2f | %6.2f | %6.2f | %4.2f (%4.2f..%4.2f) | "
           "%4.2f (%4.2f..%4.2f) | %5.2f / %5.2f | %3.0f / %-3.0f | %3.0f / %-3.0f |\n",
           payload, c.messages, n / med[0] / 1e6, n / med[1] / 1e6, n / med[2] / 1e6,
           n / med[3] / 1e6, rm[0], rb[0], ratio[0][rounds - 1], rm[1], rb[1],
           ratio[1][rounds - 1], bytes / best[3] / 1e9, bytes / med[3] / 1e9,
           cpu[2][0] / n * 1e9, cpu[2][1] / n * 1e9, cpu[3][0] / n * 1e9, cpu[3][1] / n * 1e9);
    fflush(stdout);
    for (int k = 0; k < SIDES; k++)
        free(wall[k]);
    for (int k = 0; k < 2; k++)
        free(ratio[k]);
    free(c.msg);
    free(c.wire);
}

/* ---- Round trips -------------------------------------------------------- */

static uint8_t g_payload[RTT_PAYLOAD];

static pid_t start_echo(const bench_tls *tls, uint16_t *port)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        bench_fail("pipe: %s", strerror(errno));
    pid_t pid = bench_fork(ROUND_SECONDS * 2);
    if (pid == 0) {
        close(pfd[0]);
        bench_echo_main_tls(pfd[1], 2, GMUD_SESSION_OFF, tls); /* sync and event */
    }
    close(pfd[1]);
    if (bench_pipe_read(pfd[0], port, sizeof *port, IO_TIMEOUT_MS) != 0)
        bench_fail("echo server did not start");
    close(pfd[0]);
    return pid;
}

static gmud_sync *sync_open(uint16_t port, const bench_tls *tls)
{
    gmud_sync_config c;
    gmud_sync_default_config(&c);
    c.session = GMUD_SESSION_OFF;
    if (tls != NULL)
        bench_tls_client(tls, &c.tls);
    gmud_error e;
    gmud_sync *s = gmud_sync_create("127.0.0.1", port, &c, IO_TIMEOUT_MS, &e);
    if (s == NULL)
        bench_fail("gmud_sync_create: %s", e.message);
    return s;
}

static void sync_block(gmud_sync *s, size_t count, bench_samples *out)
{
    gmud_error err;
    gmud_slice msg;
    for (size_t i = 0; i < count; i++) {
        uint64_t t0 = bench_now_ns();
        if (gmud_sync_send(s, g_payload, RTT_PAYLOAD, &err) != 0)
            bench_fail("gmud_sync_send: %s", err.message);
        int r = gmud_sync_recv(s, IO_TIMEOUT_MS, &msg, &err);
        if (r != 1)
            bench_fail("gmud_sync_recv: %s", r == 0 ? "timed out" : err.message);
        uint64_t t1 = bench_now_ns();
        if (msg.len != RTT_PAYLOAD)
            bench_fail("gmud echo returned %zu bytes", msg.len);
        if (out != NULL)
            bench_samples_add(out, t1 - t0);
    }
}

/* The floor: a blocking echo without gmud, plain or OpenSSL alone (the
 * same certificate and defaults), serving one connection. */
static void raw_echo_main(int lfd, int tls)
{
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        bench_fail("accept: %s", strerror(errno));
    bench_nodelay(fd);
    SSL_CTX *ctx = tls ? raw_tls_ctx(1) : NULL;
    SSL *ssl = NULL;
    if (tls) {
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1)
            bench_fail("raw TLS echo: handshake");
    }
    uint8_t buf[4096];
    int n;
    while ((n = raw_io(fd, ssl, buf, sizeof buf, 0)) > 0)
        if (raw_io(fd, ssl, buf, (size_t)n, 1) != n)
            bench_fail("raw echo: write");
    _exit(0);
}

typedef struct raw_peer {
    pid_t pid;
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} raw_peer;

static void raw_peer_open(raw_peer *p, int tls)
{
    memset(p, 0, sizeof *p);
    uint16_t port = 0;
    int lfd = bench_listen(4, &port);
    p->pid = bench_fork(ROUND_SECONDS * 2);
    if (p->pid == 0)
        raw_echo_main(lfd, tls);
    close(lfd);
    p->fd = bench_connect(port, 1);
    if (tls) {
        p->ctx = raw_tls_ctx(0);
        p->ssl = SSL_new(p->ctx);
        SSL_set_fd(p->ssl, p->fd);
        if (SSL_connect(p->ssl) != 1)
            bench_fail("raw TLS client: handshake");
    }
}

static void raw_peer_close(raw_peer *p)
{
    if (p->ssl != NULL) {
        SSL_shutdown(p->ssl);
        SSL_free(p->ssl);
        SSL_CTX_free(p->ctx);
    }
    close(p->fd);
    if (bench_wait(p->pid, IO_TIMEOUT_MS) != 0)
        bench_fail("a raw echo server failed");
}

static uint8_t g_frame[RTT_PAYLOAD + 16];
static size_t g_frame_len;

static void raw_block(raw_peer *p, size_t count, bench_samples *out)
{
    uint8_t back[sizeof g_frame];
    for (size_t i = 0; i < count; i++) {
        uint64_t t0 = bench_now_ns();
        if (raw_io(p->fd, p->ssl, g_frame, g_frame_len, 1) != (int)g_frame_len)
            bench_fail("raw client: write");
        for (size_t got = 0; got < g_frame_len;) {
            int r = raw_io(p->fd, p->ssl, back + got, g_frame_len - got, 0);
            if (r <= 0)
                bench_fail("raw echo closed");
            got += (size_t)r;
        }
        if (out != NULL)
            bench_samples_add(out, bench_now_ns() - t0);
    }
    if (memcmp(back, g_frame, g_frame_len) != 0)
        bench_fail("raw echo returned other bytes");
}

enum { RTT_PAIRS = 6 };
static const char *const rtt_names[RTT_PAIRS] = {
    "raw, plain",       "raw, OpenSSL",       "gmud_sync, plain",
    "gmud_sync, TLS",   "gmud_client, plain", "gmud_client, TLS"};

/* n round trips of pair k; out NULL for the warm-up. */
static void rtt_block(raw_peer *raw, gmud_sync **sy, bench_ev *ev, int k, size_t n,
                      bench_samples *out)
{
    if (k < 2)
        raw_block(&raw[k], n, out);
    else if (k < 4)
        sync_block(sy[k - 2], n, out);
    else
        bench_ev_block(&ev[k - 4], n, out);
}

/* cpu < 0: any. The servers are forked with the servers' placement (the
 * children inherit it), then this process takes the client's. */
static void rtt_run(const char *place, int client_cpu, int server_cpu, size_t total,
                    size_t block)
{
    uint16_t port[2];
    bench_pin(server_cpu);
    pid_t pid[2] = {start_echo(NULL, &port[0]), start_echo(&g_tls, &port[1])};
    raw_peer raw[2];
    raw_peer_open(&raw[0], 0);
    raw_peer_open(&raw[1], 1);
    bench_pin(client_cpu);
    gmud_sync *sy[2] = {sync_open(port[0], NULL), sync_open(port[1], &g_tls)};
    bench_ev ev[2];
    bench_ev_open_tls(&ev[0], GMUD_SESSION_OFF, port[0], g_payload, RTT_PAYLOAD, NULL);
    bench_ev_open_tls(&ev[1], GMUD_SESSION_OFF, port[1], g_payload, RTT_PAYLOAD, &g_tls);
    bench_samples sm[RTT_PAIRS];
    for (int k = 0; k < RTT_PAIRS; k++) {
        sm[k].us = bench_xmalloc(total * sizeof(double));
        sm[k].n = 0;
        sm[k].cap = total;
    }
    for (int k = 0; k < RTT_PAIRS; k++)
        rtt_block(raw, sy, ev, k, WARMUP, NULL);
    for (size_t done = 0; done < total; done += block) {
        size_t n = total - done < block ? total - done : block;
        for (int k = 0; k < RTT_PAIRS; k++)
            rtt_block(raw, sy, ev, k, n, &sm[k]);
    }
    /* The second raw echo was forked holding the first's client socket:
     * it must go first, or the first never sees its end of stream. */
    raw_peer_close(&raw[1]);
    raw_peer_close(&raw[0]);
    for (int i = 0; i < 2; i++) {
        gmud_sync_destroy(sy[i]);
        bench_ev_close(&ev[i]);
    }
    for (int i = 0; i < 2; i++)
        if (bench_wait(pid[i], IO_TIMEOUT_MS) != 0)
            bench_fail("an echo server failed");
    bench_rtt_stats st[RTT_PAIRS];
    for (int k = 0; k < RTT_PAIRS; k++)
        st[k] = bench_rtt_summarise(&sm[k]);
    for (int k = 0; k < RTT_PAIRS; k++) {
        const bench_rtt_stats *base = &st[k & ~1];
        printf("| %-8s | %-18s | %7.1f | %7.1f | %7.1f | %5.2f | %5.2f |\n", place, rtt_names[k],
               st[k].p50,
               st[k].p99, st[k].mean, st[k].p50 / base->p50, st[k].p99 / base->p99);
        free(sm[k].us);
    }
    fflush(stdout);
}

int main(void)
{
    bench_prog = "bench_tls_stream";
    bench_ignore_sigpipe();
    long mib = bench_env_long("GMUD_BENCH_MB", 256, 1, 4096);
    int rounds = (int)bench_env_long("GMUD_BENCH_ROUNDS", 7, 1, 15);
    size_t total = (size_t)bench_env_long("GMUD_BENCH_SAMPLES", 20000, 100, 1000000);
    size_t block = (size_t)bench_env_long("GMUD_BENCH_BLOCK", 10, 1, 100000);
    bench_time_bound(170);
    for (size_t i = 0; i < RTT_PAYLOAD; i++)
        g_payload[i] = (uint8_t)('A' + i % 26);
    bench_tls_make(&g_tls);
    gmud_frame_config fc;
    gmud_frame_default_config(&fc, GMUD_FRAMING_GMUD);
    gmud_error ferr;
    ptrdiff_t fl = gmud_frame_encode(&fc, g_payload, RTT_PAYLOAD, g_frame, sizeof g_frame, &ferr);
    if (fl <= 0)
        bench_fail("gmud_frame_encode: %s", ferr.message);
    g_frame_len = (size_t)fl;

    double f16 = gcm_seal_gbps(16384), f1 = gcm_seal_gbps(1024);
    printf("bench_tls_stream: TLS 1.3 (TLS_AES_256_GCM_SHA384, P-256 certificate verified by "
           "pin) beside plain TCP, loopback, separate processes\n");
    printf("  floor: AES-256-GCM seal on one core (EVP, best of 3): %.2f GB/s in 16 KiB "
           "records, %.2f GB/s in 1 KiB buffers\n\n",
           f16, f1);
    printf("stream: %ld MiB per case and round, %d rounds; ratio = TLS / plain msg/s per round "
           "(goal >= 0.60 at 64 B; >= 1 GB/s payload at 1 KiB)\n",
           mib, rounds);
    printf("Mmsg/s are medians. raw = raw TCP, ossl = OpenSSL alone over the same blocking "
           "sockets (the floor for TLS); CPU ns/msg, least over the rounds\n");
    printf("| case        | messages | raw    | ossl   | gmud   | gmud   | ossl / raw        | "
           "gmud TLS / plain  | gmud TLS payload | gmud plain | gmud TLS  |\n");
    printf("|             |          |        |        | plain  | TLS    | med (range)       | "
           "med (range)       | GB/s best / med  | CPU tx/rx  | CPU tx/rx |\n");
    printf("|-------------|----------|--------|--------|--------|--------|-------------------|"
           "-------------------|------------------|------------|-----------|\n");
    size_t target = (size_t)mib * 1024 * 1024;
    stream_case_run(64, target, rounds);
    stream_case_run(1024, target, rounds);

    printf("\nrtt: %zu round trips of 64 B per client, blocks of %zu taking turns after %d "
           "warm-up round trips; ratio = TLS / plain of the same client (goal p50 <= 1.20)\n",
           total, block, WARMUP);
    printf("raw: write + read of the 70-byte frame against a blocking echo, plain or with "
           "OpenSSL alone (the floor TLS sets); ratio to the plain pair of the same client\n");
    printf("placements as in bench_rtt: unpinned; pinned = client and servers on CPU 0; split = "
           "client on CPU 0, servers on CPU 1\n");
    printf("| place    | client             | p50 us  | p99 us  | mean us | p50 x | p99 x |\n");
    printf("|----------|--------------------|---------|---------|---------|-------|-------|\n");
    rtt_run("unpinned", -1, -1, total, block);
    rtt_run("pinned", 0, 0, total, block);
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
        rtt_run("split", 0, 1, total, block);
    bench_tls_remove(&g_tls);
    return 0;
}
