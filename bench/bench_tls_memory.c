/* bench_tls_memory: what TLS adds to a gmud server's memory per
 * connection, beside the same connections in plain TCP, in one run.
 *
 * The server (bench_load.h): a gmud echo server in a child process of its
 * own for each case, sessions off, JSON payload, per-address limits off
 * (every client comes from 127.0.0.1), default limits otherwise; with TLS,
 * a P-256 certificate made at start with openssl(1). It measures itself
 * when asked: heap (mallinfo2: what the allocator hands out) and RSS.
 * The clients are this process, so their memory is not in the figure.
 *
 *   plain idle   N blocking clients (gmud_sync), each one message and its
 *                echo, then silent; measured SETTLE_MS later (the idle
 *                sweep has given the output buffers back);
 *   TLS idle     the same over TLS 1.3 (verified by pin);
 *   TLS half-open  max_handshakes (256, the default) raw sockets each send
 *                a ClientHello and then nothing: the most memory that
 *                handshakes in progress can hold (one more is refused at
 *                accept, before any TLS state is made).
 * Figures: (heap at the measure - heap once listening) / N, and the
 * difference TLS - plain. Environment: GMUD_BENCH_CONNS (default 2000).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "bench_load.h"
#include "bench_net.h"
#include "bench_tls.h"
#include "bench_util.h"
#include "gmud/sync.h"
#include "gmud/tls.h"

enum { SETTLE_MS = 1500, HALF_OPEN = GMUD_TLS_MAX_HANDSHAKES_DEFAULT };

static bench_tls g_tls;

typedef struct tune_arg {
    int tls;
} tune_arg;

static void tune(gmud_server_config *cfg, void *arg)
{
    const tune_arg *t = arg;
    cfg->addr.max_per_addr = GMUD_OFF;
    cfg->addr.new_per_sec = GMUD_OFF;
    if (t->tls)
        bench_tls_server(&g_tls, &cfg->conn.tls);
}

/* N clients connected, each after one round trip. */
static gmud_sync **open_clients(uint16_t port, size_t n, int tls)
{
    gmud_sync **cl = bench_xmalloc(n * sizeof *cl);
    gmud_sync_config c;
    gmud_sync_default_config(&c);
    c.session = GMUD_SESSION_OFF;
    if (tls)
        bench_tls_client(&g_tls, &c.tls);
    for (size_t i = 0; i < n; i++) {
        gmud_error e;
        gmud_slice m;
        cl[i] = gmud_sync_create("127.0.0.1", port, &c, 5000, &e);
        if (cl[i] == NULL)
            bench_fail("client %zu: %s", i, e.message);
        if (gmud_sync_send(cl[i], "{\"hello\":1}", 11, &e) != 0 ||
            gmud_sync_recv(cl[i], 5000, &m, &e) != 1)
            bench_fail("client %zu: no echo: %s", i, e.message);
    }
    return cl;
}

/* A ClientHello, as a client made here sends it. */
static size_t client_hello(uint8_t *out, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    SSL_do_handshake(ssl);
    int n = BIO_read(wb, out, (int)cap);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (n <= 0)
        bench_fail("no ClientHello");
    return (size_t)n;
}

typedef struct row {
    const char *name;
    size_t n;
    double heap_per, rss_per;
    unsigned long long handshakes, busy;
} row;

static row measure(const char *name, int tls, size_t n, int half_open)
{
    tune_arg t = {tls};
    bench_load_handle h = bench_load_spawn(n + 16, 120, tune, &t);
    bench_load_report before = bench_load_get(&h);
    gmud_sync **cl = NULL;
    int *fds = NULL;
    if (half_open) {
        uint8_t hello[2048];
        size_t len = client_hello(hello, sizeof hello);
        fds = bench_xmalloc(n * sizeof *fds);
        for (size_t i = 0; i < n; i++) {
            fds[i] = bench_connect(h.port, 1);
            bench_write_all(fds[i], hello, len);
        }
    } else {
        cl = open_clients(h.port, n, tls);
    }
    usleep(SETTLE_MS * 1000);
    bench_load_report after = bench_load_get(&h);
    row r = {name, n, (double)(after.heap - before.heap) / (double)n,
             (double)(after.rss - before.rss) / (double)n, after.st.tls_handshakes,
             after.st.tls_busy};
    if (after.conns != n && !half_open)
        bench_fail("%s: %llu connections open, not %zu", name, after.conns, n);
    for (size_t i = 0; i < n; i++) {
        if (cl != NULL)
            gmud_sync_destroy(cl[i]);
        if (fds != NULL)
            close(fds[i]);
    }
    free(cl);
    free(fds);
    if (bench_load_stop(&h) != 0)
        bench_fail("%s: the server did not exit cleanly", name);
    return r;
}

int main(void)
{
    bench_ignore_sigpipe();
    bench_time_bound(300);
    long nofile = bench_raise_nofile();
    size_t n = (size_t)bench_env_long("GMUD_BENCH_CONNS", 2000, 10, 20000);
    if ((long)n * 2 + 64 > nofile)
        n = (size_t)(nofile - 64) / 2;
    bench_tls_make(&g_tls);
    row rows[3];
    rows[0] = measure("plain idle (baseline)", 0, n, 0);
    rows[1] = measure("TLS 1.3 idle", 1, n, 0);
    rows[2] = measure("TLS half-open handshakes", 1, HALF_OPEN, 1);
    bench_tls_remove(&g_tls);
    printf("bench_tls_memory: server heap and RSS per connection (mallinfo2, statm)\n");
    printf("%-28s %7s %12s %12s %14s %10s\n", "case", "conns", "heap B/conn", "RSS B/conn",
           "TLS - plain", "handshakes");
    for (int i = 0; i < 3; i++) {
        char diff[32] = "";
        if (i > 0)
            snprintf(diff, sizeof diff, "%+.0f B", rows[i].heap_per - rows[0].heap_per);
        printf("%-28s %7zu %12.0f %12.0f %14s %10llu\n", rows[i].name, rows[i].n,
               rows[i].heap_per, rows[i].rss_per, diff, rows[i].handshakes);
    }
    printf("half-open: %zu handshakes in progress hold %.1f MB of heap in all (the bound "
           "max_handshakes sets)\n",
           rows[2].n, rows[2].heap_per * (double)rows[2].n / 1e6);
    return 0;
}
