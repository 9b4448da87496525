/* fuzz/fuzz_tls.c: the TLS seam (src/core/tls.c) fed what a hostile peer
 * can send before and during a handshake, and the pin parser.
 *
 * Input: one byte of setup, then the peer's bytes. Setup bit 0: the seam is
 * a server's (with a P-256 certificate made at start) or a client's
 * (insecure, after its hello); bits 1-7: the size of the reads the bytes
 * arrive in, 1..128 (so that records straddle reads). Invariants:
 *   - input() returns 0, or GMUD_ERR_TLS / GMUD_ERR_NOMEM with a message,
 *     or, on a server, GMUD_ERR_TLS_REQUIRED for a first byte that begins
 *     no handshake record (and then it wrote nothing to the peer); after a
 *     refusal the seam is fed nothing more (the runtime closes);
 *   - no plaintext comes out before the handshake is done;
 *   - end() says clean only after a completed handshake (close_notify);
 *   - output() before the handshake refuses, never writes.
 * The same bytes, as text, go to tls_pin_parse(): it accepts exactly
 * "sha256:" and 64 hex digits (':' between bytes allowed), and what it
 * accepts formats back to the same value. Never a crash, a leak, or a read
 * past the input (it is copied into a block of its exact size).
 */
#include "fuzz_common.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tls.h"

static tls_ctx server_ctx, client_ctx;

/* A P-256 key and a self-signed certificate for the server context. */
static SSL_CTX *server_ssl(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *cert = X509_new();
    FUZZ_CHECK(key != NULL && cert != NULL, "cannot make a key");
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    FUZZ_CHECK(X509_sign(cert, key, EVP_sha256()) > 0, "cannot sign");
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    FUZZ_CHECK(ssl != NULL && SSL_CTX_use_certificate(ssl, cert) == 1 &&
                   SSL_CTX_use_PrivateKey(ssl, key) == 1,
               "cannot set up the server context");
    X509_free(cert);
    EVP_PKEY_free(key);
    return ssl;
}

static void setup(void)
{
    if (server_ctx.ssl != NULL)
        return;
    server_ctx.ssl = server_ssl();
    server_ctx.bio = tls_bio_methods();
    client_ctx.ssl = SSL_CTX_new(TLS_client_method());
    client_ctx.bio = tls_bio_methods();
    FUZZ_CHECK(client_ctx.ssl != NULL && server_ctx.bio != NULL && client_ctx.bio != NULL,
               "cannot set up the contexts");
    SSL_CTX_set_verify(client_ctx.ssl, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(server_ctx.ssl, TLS1_2_VERSION);
    SSL_CTX_set_mode(server_ctx.ssl, SSL_MODE_RELEASE_BUFFERS);
}

static void feed(int server, size_t step, const uint8_t *p, size_t n)
{
    gmud_error e;
    seam *s = tls_seam_create(server ? &server_ctx : &client_ctx, server, &e);
    FUZZ_CHECK(s != NULL, "no seam: %s", e.message);
    byte_buf plain = {0}, wire = {0};
    if (!server)
        FUZZ_CHECK(s->ops->start(s, &wire, &e) == GMUD_OK && wire.len > 0, "no hello");
    size_t before = wire.len;
    FUZZ_CHECK(s->ops->output(s, (const uint8_t *)"x", 1, &wire, &e) != GMUD_OK &&
                   wire.len == before,
               "data written before the handshake");
    int ok = 1;
    for (size_t off = 0; off < n && ok; off += step) {
        size_t k = n - off < step ? n - off : step;
        int ready = s->ops->ready(s);
        plain.len = 0;
        int rc = s->ops->input(s, p + off, k, &plain, &wire, &e);
        FUZZ_CHECK(rc == GMUD_OK || rc == GMUD_ERR_TLS || rc == GMUD_ERR_NOMEM ||
                       (rc == GMUD_ERR_TLS_REQUIRED && server && off == 0 && p[0] != 0x16 &&
                        wire.len == 0),
                   "input returned %d", rc);
        FUZZ_CHECK(rc == GMUD_OK || e.message[0] != '\0', "a refusal without a reason");
        FUZZ_CHECK(plain.len == 0 || ready || s->ops->ready(s),
                   "%zu plaintext bytes before the handshake", plain.len);
        ok = rc == GMUD_OK;
        wire.len = 0;
    }
    if (s->ops->end(s, &e) == GMUD_OK)
        FUZZ_CHECK(s->ops->ready(s), "a clean end without a handshake");
    s->ops->destroy(s);
    buf_free(&plain);
    buf_free(&wire);
}

static void pin(const uint8_t *p, size_t n)
{
    char *text = fuzz_alloc(n + 1);
    memcpy(text, p, n);
    text[n] = '\0';
    uint8_t bin[TLS_PIN_BYTES], again[TLS_PIN_BYTES];
    gmud_error e;
    if (tls_pin_parse(text, bin, &e) == GMUD_OK) {
        FUZZ_CHECK(strncmp(text, "sha256:", 7) == 0, "accepted %s", text);
        char out[GMUD_TLS_PIN_LEN + 1];
        tls_pin_format(bin, out, sizeof out);
        FUZZ_CHECK(strlen(out) == GMUD_TLS_PIN_LEN && tls_pin_parse(out, again, &e) == GMUD_OK &&
                       memcmp(bin, again, sizeof bin) == 0,
                   "%s formats back as %s", text, out);
    } else {
        FUZZ_CHECK(e.code == GMUD_ERR_INVALID && e.message[0] != '\0', "refused without why");
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size == 0)
        return 0;
    uint8_t *p = fuzz_dup(data + 1, size - 1);
    size_t step = (size_t)(data[0] >> 1) + 1;
    feed(data[0] & 1, step, p, size - 1);
    pin(p, size - 1);
    free(p);
    return 0;
}
