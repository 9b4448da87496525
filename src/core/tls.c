/* TLS as a transport seam: OpenSSL over a BIO of our own (see tls.h).
 *
 * Each call points the BIO at the caller's bytes (in) and buffer (out),
 * runs OpenSSL until it wants more input, and points it nowhere again.
 * OpenSSL never blocks on it: a read with nothing left says "retry", a
 * write always succeeds (it appends). */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

enum {
    READ_CHUNK = 16 * 1024, /* plaintext room made per SSL_read: one record */
    TLS_RECORD_ALERT = 0x15, /* record content types (RFC 8446 5.1) */
    TLS_RECORD_HANDSHAKE = 0x16
};

typedef struct tls_seam {
    seam base;
    SSL *ssl;
    const tls_ctx *ctx;
    const uint8_t *in;      /* during a call: the bytes still to give OpenSSL */
    size_t in_len;
    byte_buf *out;          /* during a call: where OpenSSL's bytes go */
    uint8_t done;           /* the handshake completed (and the pin matched) */
    uint8_t peer_closed;    /* close_notify received */
    uint8_t sent_close;     /* close_notify sent */
    uint8_t server;         /* the accepting side */
    uint8_t heard;          /* the peer's first byte has been checked */
} tls_seam;

/* ---- The BIO ------------------------------------------------------------ */

static int bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    tls_seam *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->out == NULL || buf_append(t->out, data, len) != 0)
        return 0;
    *written = len;
    return 1;
}

static int bio_read(BIO *b, char *data, size_t len, size_t *got)
{
    tls_seam *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->in_len == 0) {
        BIO_set_retry_read(b);
        *got = 0;
        return 0;
    }
    size_t n = len < t->in_len ? len : t->in_len;
    memcpy(data, t->in, n);
    t->in += n;
    t->in_len -= n;
    *got = n;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    const tls_seam *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t != NULL ? (long)t->in_len : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

BIO_METHOD *tls_bio_methods(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gmud seam");
    if (m == NULL)
        return NULL;
    if (!BIO_meth_set_write_ex(m, bio_write) || !BIO_meth_set_read_ex(m, bio_read) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- Errors --------------------------------------------------------------- */

void tls_error_text(char *out, size_t cap, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(out, cap, "%s", fallback);
        return;
    }
    const char *reason = ERR_reason_error_string(e);
    snprintf(out, cap, "%s", reason != NULL ? reason : fallback);
    ERR_clear_error();
}

/* Why OpenSSL stopped, as err; the seam is then done for. */
static int failed(tls_seam *t, int rc, const char *doing, gmud_error *err)
{
    char why[160];
    int e = SSL_get_error(t->ssl, rc);
    long v = SSL_get_verify_result(t->ssl);
    if (e == SSL_ERROR_SSL && v != X509_V_OK) {
        snprintf(why, sizeof why, "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else {
        tls_error_text(why, sizeof why, e == SSL_ERROR_SYSCALL ? "the stream broke" : "error");
    }
    return gmud_error_set(err, GMUD_ERR_TLS, 0, "%s: %s", doing, why);
}

/* ---- Pins ---------------------------------------------------------------- */

int tls_pin_of(X509 *cert, uint8_t out[TLS_PIN_BYTES])
{
    unsigned char *der = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (n <= 0)
        return -1;
    unsigned len = 0;
    int ok = EVP_Digest(der, (size_t)n, out, &len, EVP_sha256(), NULL);
    OPENSSL_free(der);
    return ok && len == TLS_PIN_BYTES ? 0 : -1;
}

void tls_pin_format(const uint8_t pin[TLS_PIN_BYTES], char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    char s[7 + 2 * TLS_PIN_BYTES + 1] = "sha256:";
    for (size_t i = 0; i < TLS_PIN_BYTES; i++) {
        s[7 + 2 * i] = hex[pin[i] >> 4];
        s[8 + 2 * i] = hex[pin[i] & 15];
    }
    s[sizeof s - 1] = '\0';
    snprintf(out, cap, "%s", s);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tls_pin_parse(const char *text, uint8_t out[TLS_PIN_BYTES], gmud_error *err)
{
    if (strncmp(text, "sha256:", 7) != 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "pin \"%.80s\" does not start with sha256:", text);
    const char *p = text + 7;
    size_t i = 0;
    for (; *p != '\0' && i < 2 * TLS_PIN_BYTES; p++) {
        if (*p == ':' && i % 2 == 0 && i > 0)
            continue;
        int d = hex_digit(*p);
        if (d < 0)
            return gmud_error_set(err, GMUD_ERR_INVALID, (size_t)(p - text),
                                  "pin \"%.80s\": '%c' is not a hex digit", text, *p);
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(d << 4);
        else
            out[i / 2] |= (uint8_t)d;
        i++;
    }
    if (i != 2 * TLS_PIN_BYTES || *p != '\0')
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "pin \"%.80s\" is not 64 hex digits after sha256:", text);
    return GMUD_OK;
}

/* ---- The seam ------------------------------------------------------------ */

static void point(tls_seam *t, const uint8_t *in, size_t n, byte_buf *out)
{
    t->in = in;
    t->in_len = n;
    t->out = out;
}

/* A pinned client's check, once the handshake is done. */
static int check_pin(tls_seam *t, gmud_error *err)
{
    if (!t->ctx->has_pin || SSL_is_server(t->ssl))
        return GMUD_OK;
    X509 *cert = SSL_get1_peer_certificate(t->ssl);
    uint8_t got[TLS_PIN_BYTES];
    int ok = cert != NULL && tls_pin_of(cert, got) == 0;
    X509_free(cert);
    if (!ok)
        return gmud_error_set(err, GMUD_ERR_TLS, 0, "TLS handshake: no server certificate to pin");
    if (memcmp(got, t->ctx->pin, TLS_PIN_BYTES) != 0) {
        char have[GMUD_TLS_PIN_LEN + 1];
        tls_pin_format(got, have, sizeof have);
        return gmud_error_set(err, GMUD_ERR_TLS, 0,
                              "TLS handshake: the server's key %s is not the pinned one", have);
    }
    return GMUD_OK;
}

static int handshake(tls_seam *t, gmud_error *err)
{
    if (t->done)
        return GMUD_OK;
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        if (check_pin(t, err) != GMUD_OK)
            return GMUD_ERR_TLS;
        t->done = 1;
        return GMUD_OK;
    }
    if (SSL_get_error(t->ssl, rc) == SSL_ERROR_WANT_READ)
        return GMUD_OK;
    return failed(t, rc, "TLS handshake failed", err);
}

/* Every record in: plaintext onto *plain until OpenSSL wants more. */
static int read_records(tls_seam *t, byte_buf *plain, gmud_error *err)
{
    while (t->done && !t->peer_closed) {
        if (buf_reserve(plain, READ_CHUNK) != 0)
            return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for TLS plaintext");
        size_t got = 0;
        int rc = SSL_read_ex(t->ssl, plain->data + plain->len, plain->cap - plain->len, &got);
        if (rc == 1) {
            plain->len += got;
            continue;
        }
        int e = SSL_get_error(t->ssl, rc);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            t->peer_closed = 1; /* close_notify: what follows is not read */
            break;
        }
        return failed(t, rc, "TLS record refused", err);
    }
    return GMUD_OK;
}

/* A peer's first record is a handshake (a client's or a server's hello)
 * or, from a server, an alert. Anything else is not TLS at all: most
 * often plaintext sent to a TLS port, or TLS to a plaintext one. Said
 * before OpenSSL sees it, so that a server can answer in plaintext
 * (GMUD_ERR_TLS_REQUIRED: read.c) and a client can say what it met. */
static int check_first_byte(tls_seam *t, uint8_t first, gmud_error *err)
{
    t->heard = 1;
    if (first == TLS_RECORD_HANDSHAKE || (!t->server && first == TLS_RECORD_ALERT))
        return GMUD_OK;
    char what[8] = "";
    if (first >= 0x20 && first < 0x7f)
        snprintf(what, sizeof what, " '%c'", first);
    if (t->server)
        return gmud_error_set(err, GMUD_ERR_TLS_REQUIRED, 0,
                              "not TLS: the peer's first byte is 0x%02x%s, not a TLS "
                              "handshake record (plaintext sent to the TLS port?)",
                              first, what);
    return gmud_error_set(err, GMUD_ERR_TLS, 0,
                          "not TLS: the server's first byte is 0x%02x%s, not a TLS record "
                          "(is that port plaintext? then connect without --tls)",
                          first, what);
}

static int tls_input(seam *s, const uint8_t *in, size_t n, byte_buf *plain, byte_buf *wire,
                     gmud_error *err)
{
    tls_seam *t = (tls_seam *)s;
    if (t->peer_closed)
        return GMUD_OK; /* bytes after close_notify mean nothing */
    if (!t->heard && n > 0 && check_first_byte(t, in[0], err) != GMUD_OK)
        return err->code;
    point(t, in, n, wire);
    int rc = handshake(t, err);
    if (rc == GMUD_OK)
        rc = read_records(t, plain, err);
    point(t, NULL, 0, NULL);
    return rc;
}

static int tls_output(seam *s, const uint8_t *p, size_t n, byte_buf *wire, gmud_error *err)
{
    tls_seam *t = (tls_seam *)s;
    if (!t->done)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "TLS: data before the handshake");
    if (t->sent_close || n == 0)
        return GMUD_OK;
    point(t, NULL, 0, wire);
    size_t put = 0;
    int rc = SSL_write_ex(t->ssl, p, n, &put);
    rc = rc == 1 && put == n ? GMUD_OK : failed(t, rc, "TLS write failed", err);
    point(t, NULL, 0, NULL);
    return rc;
}

static int tls_end(seam *s, gmud_error *err)
{
    const tls_seam *t = (const tls_seam *)s;
    if (t->peer_closed)
        return GMUD_OK;
    return gmud_error_set(err, GMUD_ERR_TLS, 0,
                          t->done ? "the peer ended the stream without TLS close_notify"
                                  : "the peer ended the stream during the TLS handshake");
}

static int tls_start(seam *s, byte_buf *wire, gmud_error *err)
{
    tls_seam *t = (tls_seam *)s;
    if (SSL_is_server(t->ssl))
        return GMUD_OK;
    point(t, NULL, 0, wire);
    int rc = handshake(t, err);
    point(t, NULL, 0, NULL);
    return rc;
}

static int tls_ready(const seam *s)
{
    return ((const tls_seam *)s)->done;
}

static int tls_close(seam *s, byte_buf *wire, gmud_error *err)
{
    (void)err;
    tls_seam *t = (tls_seam *)s;
    if (!t->done || t->sent_close)
        return GMUD_OK;
    t->sent_close = 1;
    point(t, NULL, 0, wire);
    SSL_shutdown(t->ssl); /* 0: our close_notify is out; theirs is not awaited */
    ERR_clear_error();
    point(t, NULL, 0, NULL);
    return GMUD_OK;
}

static void tls_destroy(seam *s)
{
    tls_seam *t = (tls_seam *)s;
    SSL_free(t->ssl); /* frees the BIO */
    free(t);
}

static const seam_ops tls_ops = {
    .name = "TLS",
    .input = tls_input,
    .output = tls_output,
    .end = tls_end,
    .destroy = tls_destroy,
    .start = tls_start,
    .ready = tls_ready,
    .close = tls_close,
};

/* A client's name to check and send (SNI); an address is checked, not
 * sent (RFC 6066 allows names only). */
static int set_name(SSL *ssl, const tls_ctx *ctx)
{
    if (ctx->server_name == NULL)
        return 1;
    if (ctx->name_is_ip)
        return SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE ||
               X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ctx->server_name);
    if (!SSL_set_tlsext_host_name(ssl, ctx->server_name))
        return 0;
    return SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE || SSL_set1_host(ssl, ctx->server_name);
}

seam *tls_seam_create(void *arg, int server, gmud_error *err)
{
    const tls_ctx *ctx = arg;
    tls_seam *t = calloc(1, sizeof *t);
    SSL *ssl = t != NULL ? SSL_new(ctx->ssl) : NULL;
    BIO *b = ssl != NULL ? BIO_new(ctx->bio) : NULL;
    if (b == NULL) {
        SSL_free(ssl);
        free(t);
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for a TLS connection");
        return NULL;
    }
    t->base.ops = &tls_ops;
    t->ssl = ssl;
    t->ctx = ctx;
    t->server = server != 0;
    BIO_set_data(b, t);
    SSL_set_bio(ssl, b, b);
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if (!set_name(ssl, ctx)) {
            tls_destroy(&t->base);
            gmud_error_set(err, GMUD_ERR_TLS, 0, "TLS: cannot set the server name to verify");
            return NULL;
        }
    }
    return &t->base;
}

void tls_seam_describe(const seam *s, char *out, size_t cap)
{
    const tls_seam *t = (const tls_seam *)s;
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    snprintf(out, cap, "%s %s", SSL_get_version(t->ssl), c != NULL ? SSL_CIPHER_get_name(c) : "-");
}
