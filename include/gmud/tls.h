/* gmud/tls.h: TLS for gmud connections (OpenSSL 3).
 *
 * A server, an event client or a blocking client whose config has
 * tls.enabled runs every connection inside TLS: TLS 1.3 (1.2 only if
 * allow_tls12, and then without renegotiation). The server is
 * authenticated; the client is not (gmud sessions and the application do
 * that). Every framing and session mode runs unchanged inside it.
 *
 * A client verifies the server in one of three ways:
 *   - by CA and name (the default): the chain against ca_file, or the
 *     system's store when ca_file is NULL, and the certificate against
 *     server_name (a DNS name or an IP address; NULL: the host connected to);
 *   - by pin: pin is "sha256:" and the 64 hex digits of the SHA-256 of the
 *     certificate's public key (its DER SubjectPublicKeyInfo), as
 *     gmud-keygen and gmud_tls_pin_file print it; CA and name are not
 *     checked then;
 *   - not at all, with insecure (anyone on the path can then read and
 *     change everything: for tests only).
 *
 * No application data is written before the handshake completes: what is
 * sent earlier is queued (and counted against max_queued), then encrypted
 * together. The frames of one loop turn share records. A peer's end of
 * stream without close_notify is an unclean close (GMUD_CLOSE_PEER still,
 * logged at INFO); a failed handshake closes with GMUD_CLOSE_TLS and its
 * reason as detail. */
#ifndef GMUD_TLS_H
#define GMUD_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "gmud/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The length of a pin string, "sha256:" and 64 hex digits, without NUL. */
enum { GMUD_TLS_PIN_LEN = 7 + 64 };

enum {
    GMUD_TLS_HANDSHAKE_TIMEOUT_DEFAULT = 10000, /* ms */
    GMUD_TLS_MAX_HANDSHAKES_DEFAULT = 256       /* a server's, in progress at once */
};

typedef struct gmud_tls_config {
    int enabled;                 /* 0: plain TCP (the default) */
    /* A server's certificate chain and private key, PEM files. */
    const char *cert_file;
    const char *key_file;
    /* A client's verification (see the top). */
    const char *ca_file;         /* NULL: the system's store */
    const char *server_name;     /* NULL: the host connected to */
    const char *pin;             /* NULL, or "sha256:<hex>" */
    int insecure;                /* no verification at all */
    int allow_tls12;             /* also TLS 1.2 (never renegotiated) */
    /* A handshake not done this long after the connection opened is closed
     * (GMUD_CLOSE_TLS). GMUD_TLS_HANDSHAKE_TIMEOUT_DEFAULT; GMUD_OFF: none. */
    uint32_t handshake_timeout_ms;
    /* A server's handshakes in progress at once; a connection over it is
     * closed before any TLS state is made for it. 256. */
    uint32_t max_handshakes;
    /* NULL: none. Else each handshake's secrets are appended to this file
     * in the NSS key log format (what SSLKEYLOGFILE names), so that
     * Wireshark can decrypt a capture of one's own traffic. Anyone who
     * reads the file can read the traffic: a debugging aid only. */
    const char *keylog_file;
} gmud_tls_config;

/* Fills cfg: disabled, TLS 1.3 only, verification by the system's store
 * and the host's name, the defaults above. */
GMUD_API void gmud_tls_default_config(gmud_tls_config *cfg);

/* The pin of the first certificate in a PEM file, into out (at least
 * GMUD_TLS_PIN_LEN + 1 bytes): "sha256:<64 hex>". */
GMUD_API int gmud_tls_pin_file(const char *cert_file, char *out, size_t cap, gmud_error *err);

#ifdef __cplusplus
}
#endif

#endif
