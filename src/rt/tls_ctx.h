/* Internal: a tls_ctx made from a gmud_tls_config, with what the runtime
 * keeps beside it (tls_ctx.c). */
#ifndef GMUD_RT_TLS_CTX_H
#define GMUD_RT_TLS_CTX_H

#include <stdio.h>

#include "tls.h"

typedef struct tls_ctx_owned {
    tls_ctx ctx;                 /* first: &owned->ctx is the seam factory's arg */
    FILE *keylog;                /* NULL: no key log */
    uint32_t handshake_timeout_ms;
    uint32_t max_handshakes;
    char *cert_file;             /* a server's, kept for tls_ctx_reload */
    char *key_file;
} tls_ctx_owned;

/* server: 1 for a server's; host: a client's host, the name verified when
 * cfg->server_name is NULL. NULL with err filled if it cannot be made (a
 * file missing, a key that does not match, a bad pin). */
tls_ctx_owned *tls_ctx_create(const gmud_tls_config *cfg, int server, const char *host,
                              gmud_error *err);
void tls_ctx_destroy(tls_ctx_owned *c);

/* A server's: reads its certificate chain and key files again and, if
 * they load and match, makes them the ones new handshakes use. Handshakes
 * begun before keep what they began with (each SSL holds its own copy).
 * On failure nothing changes. */
int tls_ctx_reload(tls_ctx_owned *c, gmud_error *err);

#endif
