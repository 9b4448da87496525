/* bench/bench_tls.h: a throw-away P-256 certificate for the TLS benchmarks
 * (bench_tls_stream, bench_tls_memory), and the configs that use it.
 *
 *   bench_tls_make()     writes a key and a self-signed certificate for
 *                        localhost under /tmp with openssl(1) (what
 *                        gmud-keygen makes: ECDSA P-256) and reads its pin;
 *   bench_tls_remove()   deletes the two files;
 *   bench_tls_server()   a server's gmud_tls_config with them;
 *   bench_tls_client()   a client's, verifying by the pin.
 * Failures end the program (bench_fail).
 */
#ifndef GMUD_BENCH_TLS_H
#define GMUD_BENCH_TLS_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench_net.h"
#include "gmud/tls.h"

typedef struct bench_tls {
    char cert[64], key[64];
    char pin[GMUD_TLS_PIN_LEN + 1];
} bench_tls;

static inline void bench_tls_make(bench_tls *t)
{
    snprintf(t->cert, sizeof t->cert, "/tmp/gmud-bench-cert-%d.pem", (int)getpid());
    snprintf(t->key, sizeof t->key, "/tmp/gmud-bench-key-%d.pem", (int)getpid());
    char cmd[400];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-keyout %s -out %s -subj /CN=localhost 2>/dev/null",
             t->key, t->cert);
    gmud_error e;
    if (system(cmd) != 0 || gmud_tls_pin_file(t->cert, t->pin, sizeof t->pin, &e) != GMUD_OK)
        bench_fail("cannot make a certificate with openssl(1)");
}

static inline void bench_tls_remove(const bench_tls *t)
{
    unlink(t->cert);
    unlink(t->key);
}

static inline void bench_tls_server(const bench_tls *t, gmud_tls_config *c)
{
    c->enabled = 1;
    c->cert_file = t->cert;
    c->key_file = t->key;
}

static inline void bench_tls_client(const bench_tls *t, gmud_tls_config *c)
{
    c->enabled = 1;
    c->pin = t->pin;
}

#endif
