/* Internal: TLS as a transport seam (seam.h), sans I/O.
 *
 * OpenSSL drives the handshake and the records; its only BIO is ours
 * (tls.c), which reads from the bytes the caller passes in and appends to
 * the caller's buffer: no socket, no blocking call, no copy kept between
 * calls, so an idle connection holds no I/O buffers of its own (with
 * SSL_MODE_RELEASE_BUFFERS, OpenSSL's record buffers go too).
 *
 * A tls_ctx is what all of one server's or one client's connections share:
 * the SSL_CTX (certificates, versions, verification), and for a client the
 * name or pin it verifies. src/rt/tls_ctx.c makes one from a
 * gmud_tls_config (that part reads files); this part only transforms
 * bytes. */
#ifndef GMUD_CORE_TLS_H
#define GMUD_CORE_TLS_H

#include <openssl/ssl.h>

#include "seam.h"
#include "gmud/tls.h"

enum { TLS_PIN_BYTES = 32 }; /* SHA-256 */

typedef struct tls_ctx {
    SSL_CTX *ssl;
    BIO_METHOD *bio;        /* our BIO's methods (tls.c) */
    char *server_name;      /* a client's: the name (or address) verified */
    int name_is_ip;
    int has_pin;
    uint8_t pin[TLS_PIN_BYTES];
} tls_ctx;

/* The BIO methods a tls_ctx needs; NULL if OpenSSL cannot make them. */
BIO_METHOD *tls_bio_methods(void);

/* A connection's seam; arg is a tls_ctx (a seam_factory's create). */
seam *tls_seam_create(void *arg, int server, gmud_error *err);

/* What the handshake settled: "TLSv1.3 TLS_AES_256_GCM_SHA384", into out. */
void tls_seam_describe(const seam *s, char *out, size_t cap);

/* The pin of a certificate: SHA-256 of its DER SubjectPublicKeyInfo. */
int tls_pin_of(X509 *cert, uint8_t out[TLS_PIN_BYTES]);
/* "sha256:<64 hex>" into out (GMUD_TLS_PIN_LEN + 1 bytes at least). */
void tls_pin_format(const uint8_t pin[TLS_PIN_BYTES], char *out, size_t cap);
/* Parses "sha256:<64 hex>" (hex either case, ':' between bytes allowed). */
int tls_pin_parse(const char *text, uint8_t out[TLS_PIN_BYTES], gmud_error *err);

/* OpenSSL's error queue as one sentence (emptied), or fallback. */
void tls_error_text(char *out, size_t cap, const char *fallback);

#endif
