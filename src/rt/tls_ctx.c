/* A tls_ctx (src/core/tls.h) from a gmud_tls_config: the part of TLS that
 * reads files (certificates, keys, the CA store) and appends to the key
 * log. Made once per server, client or blocking client. */
#include "tls_ctx.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "gmud/limits.h"

void gmud_tls_default_config(gmud_tls_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->handshake_timeout_ms = GMUD_TLS_HANDSHAKE_TIMEOUT_DEFAULT;
    cfg->max_handshakes = GMUD_TLS_MAX_HANDSHAKES_DEFAULT;
}

int gmud_tls_pin_file(const char *cert_file, char *out, size_t cap, gmud_error *err)
{
    FILE *f = fopen(cert_file, "r");
    if (f == NULL)
        return gmud_error_set(err, GMUD_ERR_IO, 0, "cannot open %s", cert_file);
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    uint8_t pin[TLS_PIN_BYTES];
    int ok = cert != NULL && tls_pin_of(cert, pin) == 0;
    X509_free(cert);
    if (!ok) {
        char why[160];
        tls_error_text(why, sizeof why, "no certificate");
        return gmud_error_set(err, GMUD_ERR_TLS, 0, "%s: no PEM certificate: %s", cert_file, why);
    }
    if (cap < GMUD_TLS_PIN_LEN + 1)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "pin buffer of %zu bytes is too small",
                              cap);
    tls_pin_format(pin, out, cap);
    return GMUD_OK;
}

/* The key log: one line per secret, appended. SSL_CTX's callback has no
 * user pointer, so the file is found through the SSL_CTX's ex data. */
static int keylog_index = -1;

static void keylog_line(const SSL *ssl, const char *line)
{
    FILE *f = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keylog_index);
    if (f != NULL) {
        fprintf(f, "%s\n", line);
        fflush(f);
    }
}

static int open_keylog(tls_ctx_owned *c, const char *path, gmud_error *err)
{
    if (keylog_index < 0)
        keylog_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    c->keylog = fopen(path, "a");
    if (c->keylog == NULL || keylog_index < 0)
        return gmud_error_set(err, GMUD_ERR_IO, 0, "cannot open the TLS key log %s", path);
    SSL_CTX_set_ex_data(c->ctx.ssl, keylog_index, c->keylog);
    SSL_CTX_set_keylog_callback(c->ctx.ssl, keylog_line);
    return GMUD_OK;
}

static int ssl_failed(gmud_error *err, const char *what, const char *file)
{
    char why[160];
    tls_error_text(why, sizeof why, "error");
    return gmud_error_set(err, GMUD_ERR_TLS, 0, "%s%s%s: %s", what, file ? " " : "",
                          file ? file : "", why);
}

static int setup_server(SSL_CTX *ssl, const gmud_tls_config *cfg, gmud_error *err)
{
    if (cfg->cert_file == NULL || cfg->key_file == NULL)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "a TLS server needs a certificate and a key file");
    if (SSL_CTX_use_certificate_chain_file(ssl, cfg->cert_file) != 1)
        return ssl_failed(err, "cannot load the TLS certificate", cfg->cert_file);
    if (SSL_CTX_use_PrivateKey_file(ssl, cfg->key_file, SSL_FILETYPE_PEM) != 1)
        return ssl_failed(err, "cannot load the TLS key", cfg->key_file);
    if (SSL_CTX_check_private_key(ssl) != 1)
        return ssl_failed(err, "the TLS key does not match the certificate", cfg->cert_file);
    return GMUD_OK;
}

static int setup_client(tls_ctx *c, const gmud_tls_config *cfg, const char *host,
                        gmud_error *err)
{
    SSL_CTX *ssl = c->ssl;
    const char *name = cfg->server_name != NULL ? cfg->server_name : host;
    if (name != NULL && (c->server_name = strdup(name)) == NULL)
        return gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory");
    unsigned char a[16];
    c->name_is_ip = name != NULL && (inet_pton(AF_INET, name, a) == 1 ||
                                     inet_pton(AF_INET6, name, a) == 1);
    if (cfg->pin != NULL) {
        if (tls_pin_parse(cfg->pin, c->pin, err) != GMUD_OK)
            return GMUD_ERR_INVALID;
        c->has_pin = 1;
    }
    if (cfg->insecure || c->has_pin) {
        SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL); /* the pin is checked after */
        return GMUD_OK;
    }
    SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    if (cfg->ca_file != NULL ? SSL_CTX_load_verify_locations(ssl, cfg->ca_file, NULL) != 1
                             : SSL_CTX_set_default_verify_paths(ssl) != 1)
        return ssl_failed(err, "cannot load the CA certificates", cfg->ca_file);
    if (name == NULL)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "TLS verification needs a server name (or a pin, or insecure)");
    return GMUD_OK;
}

tls_ctx_owned *tls_ctx_create(const gmud_tls_config *cfg, int server, const char *host,
                              gmud_error *err)
{
    tls_ctx_owned *c = calloc(1, sizeof *c);
    if (c == NULL) {
        gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for TLS");
        return NULL;
    }
    c->handshake_timeout_ms = cfg->handshake_timeout_ms;
    c->max_handshakes = cfg->max_handshakes;
    c->ctx.ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    c->ctx.bio = tls_bio_methods();
    int rc = GMUD_OK;
    if (c->ctx.ssl == NULL || c->ctx.bio == NULL) {
        rc = ssl_failed(err, "cannot set up TLS", NULL);
        goto done;
    }
    SSL_CTX *ssl = c->ctx.ssl;
    SSL_CTX_set_min_proto_version(ssl, cfg->allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* An idle connection gives its record buffers back. */
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    if (server && cfg->cert_file != NULL && cfg->key_file != NULL &&
        ((c->cert_file = strdup(cfg->cert_file)) == NULL ||
         (c->key_file = strdup(cfg->key_file)) == NULL)) {
        rc = gmud_error_set(err, GMUD_ERR_NOMEM, 0, "out of memory for TLS");
        goto done;
    }
    rc = server ? setup_server(ssl, cfg, err) : setup_client(&c->ctx, cfg, host, err);
    if (rc == GMUD_OK && cfg->keylog_file != NULL)
        rc = open_keylog(c, cfg->keylog_file, err);
done:
    if (rc != GMUD_OK) {
        tls_ctx_destroy(c);
        return NULL;
    }
    return c;
}

void tls_ctx_destroy(tls_ctx_owned *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ctx.ssl);
    BIO_meth_free(c->ctx.bio);
    free(c->ctx.server_name);
    free(c->cert_file);
    free(c->key_file);
    if (c->keylog != NULL)
        fclose(c->keylog);
    free(c);
}

int tls_ctx_reload(tls_ctx_owned *c, gmud_error *err)
{
    if (c->cert_file == NULL)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "no TLS certificate to reload");
    /* Loaded and checked in a context of their own first, so that a bad
     * file leaves the live one untouched. */
    SSL_CTX *fresh = SSL_CTX_new(TLS_server_method());
    if (fresh == NULL)
        return ssl_failed(err, "cannot set up TLS", NULL);
    gmud_tls_config files;
    gmud_tls_default_config(&files);
    files.cert_file = c->cert_file;
    files.key_file = c->key_file;
    int rc = setup_server(fresh, &files, err);
    STACK_OF(X509) *chain = NULL;
    if (rc == GMUD_OK && (SSL_CTX_get0_chain_certs(fresh, &chain) != 1 ||
                          SSL_CTX_use_cert_and_key(c->ctx.ssl, SSL_CTX_get0_certificate(fresh),
                                                   SSL_CTX_get0_privatekey(fresh), chain,
                                                   1) != 1))
        rc = ssl_failed(err, "cannot install the reloaded certificate", c->cert_file);
    SSL_CTX_free(fresh);
    return rc;
}
