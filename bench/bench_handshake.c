/* bench_handshake: what a full TLS 1.3 handshake costs with the key gmud-keygen
 * makes (ECDSA P-256) beside the usual alternative (RSA-2048), measured in
 * the same run and given as a ratio.
 *
 * A client and a server SSL in this process, joined by a BIO pair: no
 * sockets, no other thread, so every microsecond counted is OpenSSL's. Each
 * handshake makes both SSL objects afresh and runs them in turn until both
 * are done; the server issues no tickets and keeps no session cache, the
 * client offers no session, so every handshake is full (key exchange and
 * the server's signature every time). The key exchange group is OpenSSL's
 * first choice (X25519) in all cases, so the difference between the rows is
 * the certificate: the server signs the handshake with its key, the client
 * verifies that signature and the certificate against its trust store, and
 * checks the name "localhost".
 *
 * Keys and certificates are made in memory at start, two ways each:
 *   self-signed  the certificate itself is the client's trust anchor, as
 *                with gmud-keygen's (OpenSSL does not check an anchor's own
 *                signature, so the client verifies one signature);
 *   CA-signed    a CA of the same algorithm signs the certificate and is the
 *                trust anchor (the client verifies two signatures).
 *
 * Rounds run every case in turn, the order rotated each round; the figures
 * are medians over rounds, and the ratios P-256 / RSA-2048 are taken per
 * round, then their median. Everything is one thread doing nothing but
 * handshakes, so CPU time is the figure to compare: handshakes a second of
 * elapsed time are shown too, but fall when other jobs share the core
 * ("cpu/wall" below 1 says they did). "server" and "client" are the CPU
 * time inside each side's SSL_do_handshake calls; the rest of a handshake
 * (making and freeing the SSL objects and the BIO pair) is in "cpu us" only.
 *
 * Environment: GMUD_BENCH_ROUNDS (default 7), GMUD_BENCH_HANDSHAKES (per
 * case and round, default 200): about ten seconds on a quiet core.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bench_util.h"

enum {
    ALGS = 2,          /* P-256, RSA-2048 */
    TRUSTS = 2,        /* self-signed, CA-signed */
    CASES = ALGS * TRUSTS,
    MAX_ROUNDS = 101,
    MAX_TURNS = 16,    /* SSL_do_handshake calls per side: a TLS 1.3 handshake needs 2 */
    WARMUP = 20,       /* uncounted handshakes per case */
    DAYS = 30
};

static const char *const alg_names[ALGS] = {"ECDSA P-256", "RSA-2048"};
static const char *const trust_names[TRUSTS] = {"self-signed", "CA-signed"};

typedef struct bench_case {
    int alg, trust;
    SSL_CTX *server, *client;
} bench_case;

typedef struct round_figures {
    double per_s;       /* handshakes a second of elapsed time */
    double per_cpu_s;   /* handshakes a second of CPU time */
    double cpu_us;      /* CPU microseconds a handshake, all of it */
    double server_us;   /* CPU us in the server's SSL_do_handshake calls */
    double client_us;   /* in the client's */
    double cpu_wall;    /* CPU time / elapsed time */
} round_figures;

static void die(const char *what)
{
    unsigned long e = ERR_get_error();
    char why[256] = "failed";
    if (e != 0)
        ERR_error_string_n(e, why, sizeof why);
    fprintf(stderr, "bench_handshake: %s: %s\n", what, why);
    exit(1);
}

/* This thread's CPU time: the only thread, and unlike elapsed time it does
 * not grow when other jobs take the core. A system call (no vDSO for CPU
 * clocks), a microsecond or less, against handshakes of a millisecond. */
static uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        perror("clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        exit(2);
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- Keys and certificates ----------------------------------------------- */

static EVP_PKEY *make_key(int alg)
{
    EVP_PKEY *k = alg == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                           : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (k == NULL)
        die("generating a key");
    return k;
}

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL || !X509_add_ext(x, ext, -1))
        die("adding an extension");
    X509_EXTENSION_free(ext);
}

/* A certificate for key named cn, signed by issuer_key (with issuer's name;
 * issuer NULL: self-signed). A CA gets CA:TRUE and keyCertSign; a server
 * certificate what gmud-keygen gives it. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int ca,
                       long serial)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    if (x == NULL || name == NULL || !X509_set_version(x, X509_VERSION_3) ||
        !ASN1_INTEGER_set(X509_get_serialNumber(x), serial) ||
        !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_subject_name(x, name) ||
        !X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), DAYS, 0, NULL) == NULL ||
        !X509_set_pubkey(x, key))
        die("making a certificate");
    X509_NAME_free(name);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    if (ca) {
        add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign");
    } else {
        add_ext(x, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature");
        add_ext(x, &ctx, NID_ext_key_usage, "serverAuth");
    }
    add_ext(x, &ctx, NID_subject_key_identifier, "hash");
    add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
    if (X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) <= 0)
        die("signing a certificate");
    return x;
}

/* ---- Contexts ---------------------------------------------------------- */

static SSL_CTX *tls13_ctx(const SSL_METHOD *method)
{
    SSL_CTX *c = SSL_CTX_new(method);
    if (c == NULL || !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION))
        die("making an SSL_CTX");
    /* Full handshakes only: nothing to resume from, on either side. */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    return c;
}

static void make_case(bench_case *k, int alg, int trust)
{
    static long serial = 1;
    EVP_PKEY *key = make_key(alg);
    EVP_PKEY *ca_key = NULL;
    X509 *ca = NULL, *cert;
    if (trust == 0) {
        cert = make_cert(key, "localhost", NULL, NULL, 0, serial++);
    } else {
        ca_key = make_key(alg);
        ca = make_cert(ca_key, "bench CA", NULL, NULL, 1, serial++);
        cert = make_cert(key, "localhost", ca, ca_key, 0, serial++);
    }
    k->alg = alg;
    k->trust = trust;
    k->server = tls13_ctx(TLS_server_method());
    if (!SSL_CTX_set_num_tickets(k->server, 0) || !SSL_CTX_use_certificate(k->server, cert) ||
        !SSL_CTX_use_PrivateKey(k->server, key) || !SSL_CTX_check_private_key(k->server))
        die("setting the server's certificate");
    k->client = tls13_ctx(TLS_client_method());
    SSL_CTX_set_verify(k->client, SSL_VERIFY_PEER, NULL);
    if (!X509_STORE_add_cert(SSL_CTX_get_cert_store(k->client), ca != NULL ? ca : cert))
        die("setting the client's trust anchor");
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
}

/* ---- One handshake --------------------------------------------------------- */

/* Runs one side's SSL_do_handshake, adding its time to *ns. Returns 1 once
 * that side is done, 0 while it waits for the other. */
static int step(SSL *ssl, uint64_t *ns, const char *side)
{
    uint64_t t0 = cpu_now_ns();
    int rc = SSL_do_handshake(ssl);
    *ns += cpu_now_ns() - t0;
    if (rc == 1)
        return 1;
    int e = SSL_get_error(ssl, rc);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            fprintf(stderr, "bench_handshake: %s: verify: %s\n", side,
                    X509_verify_cert_error_string(v));
        die(side);
    }
    return 0;
}

/* One full handshake; the time in each side's calls is added. With info,
 * what was negotiated is printed (once, for the header). */
static void handshake(const bench_case *k, uint64_t *server_ns, uint64_t *client_ns, int info)
{
    SSL *c = SSL_new(k->client), *s = SSL_new(k->server);
    BIO *cb = NULL, *sb = NULL;
    if (c == NULL || s == NULL || !BIO_new_bio_pair(&cb, 0, &sb, 0))
        die("making SSL objects");
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    /* Server name indication and the name check, as a client would. */
    if (!SSL_set_tlsext_host_name(c, "localhost") || !SSL_set1_host(c, "localhost"))
        die("setting the server name");
    int c_done = 0, s_done = 0;
    for (int turn = 0; !(c_done && s_done); turn++) {
        if (turn == MAX_TURNS) {
            fprintf(stderr, "bench_handshake: no handshake after %d turns\n", MAX_TURNS);
            exit(1);
        }
        if (!c_done)
            c_done = step(c, client_ns, "client");
        if (!s_done)
            s_done = step(s, server_ns, "server");
    }
    if (SSL_get_verify_result(c) != X509_V_OK || SSL_session_reused(c) ||
        SSL_version(c) != TLS1_3_VERSION) {
        fprintf(stderr, "bench_handshake: handshake not verified, resumed or not TLS 1.3\n");
        exit(1);
    }
    if (info) {
        int type = NID_undef, hash = NID_undef;
        SSL_get_peer_signature_type_nid(c, &type);
        SSL_get_peer_signature_nid(c, &hash);
        const char *how = type == EVP_PKEY_EC          ? "ECDSA"
                          : type == EVP_PKEY_RSA_PSS ? "RSA-PSS"
                          : type == EVP_PKEY_RSA     ? "RSA"
                                                     : OBJ_nid2sn(type);
        printf("  %-12s %-12s %s, %s, group %s, server signature %s with %s\n",
               alg_names[k->alg], trust_names[k->trust], SSL_get_version(c),
               SSL_get_cipher_name(c), SSL_group_to_name(c, SSL_get_negotiated_group(c)), how,
               OBJ_nid2sn(hash));
    }
    SSL_free(c);
    SSL_free(s);
}

static round_figures run(const bench_case *k, long n)
{
    uint64_t server_ns = 0, client_ns = 0;
    uint64_t cpu0 = cpu_now_ns(), t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        handshake(k, &server_ns, &client_ns, 0);
    uint64_t wall = bench_now_ns() - t0, cpu = cpu_now_ns() - cpu0;
    round_figures f;
    f.per_s = (double)n * 1e9 / (double)wall;
    f.per_cpu_s = (double)n * 1e9 / (double)cpu;
    f.cpu_us = (double)cpu / 1e3 / (double)n;
    f.server_us = (double)server_ns / 1e3 / (double)n;
    f.client_us = (double)client_ns / 1e3 / (double)n;
    f.cpu_wall = (double)cpu / (double)wall;
    return f;
}

static double median(double *v, size_t n)
{
    double best, med;
    bench_best_median(v, n, &best, &med);
    return med;
}

int main(void)
{
    long rounds = bench_env_long("GMUD_BENCH_ROUNDS", 7, 1, MAX_ROUNDS);
    long n = bench_env_long("GMUD_BENCH_HANDSHAKES", 200, 1, 1000000);
    static bench_case cases[CASES];
    static round_figures fig[CASES][MAX_ROUNDS];

    printf("bench_handshake: full TLS 1.3 handshakes in memory (BIO pair, one thread), "
           "%ld per case and round, %ld rounds; %s\n",
           n, rounds, OpenSSL_version(OPENSSL_VERSION));
    bench_print_load();
    for (int i = 0; i < CASES; i++) {
        uint64_t ns = 0;
        make_case(&cases[i], i % ALGS, i / ALGS);
        handshake(&cases[i], &ns, &ns, 1);
        for (int w = 0; w < WARMUP; w++)
            handshake(&cases[i], &ns, &ns, 0);
    }
    for (long r = 0; r < rounds; r++)
        for (int j = 0; j < CASES; j++) {
            int i = (int)((j + r) % CASES);
            fig[i][r] = run(&cases[i], n);
        }

    printf("\n  %-12s %-12s %8s %8s %8s %8s %8s %8s\n", "certificate", "trust", "hs/s", "hs/cpu-s",
           "cpu us", "server", "client", "cpu/wall");
    for (int i = 0; i < CASES; i++) {
        double v[6][MAX_ROUNDS];
        for (long r = 0; r < rounds; r++) {
            v[0][r] = fig[i][r].per_s;
            v[1][r] = fig[i][r].per_cpu_s;
            v[2][r] = fig[i][r].cpu_us;
            v[3][r] = fig[i][r].server_us;
            v[4][r] = fig[i][r].client_us;
            v[5][r] = fig[i][r].cpu_wall;
        }
        printf("  %-12s %-12s %8.0f %8.0f %8.1f %8.1f %8.1f %8.2f\n", alg_names[cases[i].alg],
               trust_names[cases[i].trust], median(v[0], (size_t)rounds),
               median(v[1], (size_t)rounds), median(v[2], (size_t)rounds),
               median(v[3], (size_t)rounds), median(v[4], (size_t)rounds),
               median(v[5], (size_t)rounds));
    }
    printf("  (hs/s: handshakes a second of elapsed time; hs/cpu-s: of CPU time; cpu us: CPU\n"
           "   microseconds a handshake; server, client: CPU us in that side's "
           "SSL_do_handshake)\n");

    printf("\n  P-256 / RSA-2048, per-round ratios of CPU time, median (above 1: P-256 faster)\n");
    printf("  %-12s %10s %10s %10s\n", "trust", "handshake", "server", "client");
    for (int t = 0; t < TRUSTS; t++) {
        int p = t * ALGS, rsa = t * ALGS + 1;
        double v[3][MAX_ROUNDS];
        for (long r = 0; r < rounds; r++) {
            v[0][r] = fig[rsa][r].cpu_us / fig[p][r].cpu_us;
            v[1][r] = fig[rsa][r].server_us / fig[p][r].server_us;
            v[2][r] = fig[rsa][r].client_us / fig[p][r].client_us;
        }
        printf("  %-12s %9.2fx %9.2fx %9.2fx\n", trust_names[t], median(v[0], (size_t)rounds),
               median(v[1], (size_t)rounds), median(v[2], (size_t)rounds));
    }
    for (int i = 0; i < CASES; i++) {
        SSL_CTX_free(cases[i].server);
        SSL_CTX_free(cases[i].client);
    }
    return 0;
}
