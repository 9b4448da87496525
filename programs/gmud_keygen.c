/* gmud-keygen: a key and a self-signed certificate for a gmud TLS server.
 *
 *   gmud-keygen [--key FILE] [--cert FILE] [--name DNS]... [--ip ADDR]...
 *               [--days N] [--force]
 *
 * Makes an ECDSA P-256 key and an X.509 v3 server certificate for it, signed
 * by itself with SHA-256, and prints the certificate's pin on stdout (what a
 * client's gmud_tls_config.pin takes, gmud/tls.h); what it wrote goes to
 * stderr. The key file is PKCS#8 PEM, unencrypted, mode 0600 from the moment
 * it exists; the certificate PEM, mode 0644. An existing file is kept (exit
 * 1) unless --force, which replaces both through temporary files renamed
 * over them, so a reader sees the old file or the new one, never half.
 *
 * Exit status: 0 done, 1 failed (nothing half-written is left), 2 bad usage.
 *
 * The options are few and none is shared with the other programs, so this
 * uses getopt_long rather than options.c's table.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "gmud/tls.h"
#include "gmud/version.h"

#define PROG "gmud-keygen"

enum {
    KEYGEN_MAX_NAMES = 64,       /* --name and --ip, each */
    KEYGEN_DAYS_DEFAULT = 365,
    KEYGEN_DAYS_MAX = 36500,     /* a hundred years */
    KEYGEN_DNS_MAX = 253,        /* bytes of a DNS name (RFC 1035) */
    KEYGEN_CN_MAX = 64,          /* bytes of a commonName (RFC 5280 ub-common-name) */
    KEYGEN_SERIAL_BYTES = 16,    /* 128 random bits */
    KEYGEN_BACKDATE_S = 3600,    /* notBefore this long before now: clock skew */
    KEY_MODE = 0600,
    CERT_MODE = 0644
};

enum { EXIT_USAGE = 2 };

typedef struct keygen_options {
    const char *key_file;
    const char *cert_file;
    const char *names[KEYGEN_MAX_NAMES];
    size_t n_names;
    const char *ips[KEYGEN_MAX_NAMES];
    size_t n_ips;
    long days;
    int force;
} keygen_options;

/* ---- Options ------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [options]\n"
            "Makes an ECDSA P-256 key and a self-signed TLS server certificate for it,\n"
            "and prints the certificate's pin (sha256:<hex>) on stdout.\n"
            "options:\n"
            "  --key FILE     private key, PKCS#8 PEM, mode 0600 (default gmud-key.pem)\n"
            "  --cert FILE    certificate, PEM, mode 0644 (default gmud-cert.pem)\n"
            "  --name DNS     a DNS name the certificate is for; repeatable\n"
            "  --ip ADDR      an IPv4 or IPv6 address it is for; repeatable\n"
            "                 (neither given: localhost, 127.0.0.1 and ::1)\n"
            "  --days N       days the certificate is valid, 1..%d (default %d)\n"
            "  --force        replace an existing key or certificate\n"
            "  --help         this text\n"
            "  --version      the gmud library's version\n",
            KEYGEN_DAYS_MAX, KEYGEN_DAYS_DEFAULT);
}

/* A host name as a certificate carries it: labels of letters, digits and
 * hyphens, a leading "*." for a wildcard. Stricter than DNS itself, which
 * is what a SAN a client will match needs. */
static int valid_dns_name(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > KEYGEN_DNS_MAX)
        return 0;
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    for (; *s != '\0'; s++) {
        if (*s == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                   (*s >= '0' && *s <= '9') || *s == '-') {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0;
}

static int valid_ip(const char *s)
{
    ASN1_OCTET_STRING *a = a2i_IPADDRESS(s);
    ASN1_OCTET_STRING_free(a);
    ERR_clear_error();
    return a != NULL;
}

static int add_name(const char **list, size_t *n, const char *opt, const char *val)
{
    if (*n == KEYGEN_MAX_NAMES) {
        fprintf(stderr, PROG ": %s: at most %d of them\n", opt, KEYGEN_MAX_NAMES);
        return -1;
    }
    list[(*n)++] = val;
    return 0;
}

/* Returns -1 to run, else the exit status (after printing what was asked
 * for, or why the usage is refused). */
static int parse_options(keygen_options *o, int argc, char **argv)
{
    enum { O_KEY = 256, O_CERT, O_NAME, O_IP, O_DAYS, O_FORCE, O_HELP, O_VERSION };
    static const struct option longs[] = {
        {"key", required_argument, NULL, O_KEY},   {"cert", required_argument, NULL, O_CERT},
        {"name", required_argument, NULL, O_NAME}, {"ip", required_argument, NULL, O_IP},
        {"days", required_argument, NULL, O_DAYS}, {"force", no_argument, NULL, O_FORCE},
        {"help", no_argument, NULL, O_HELP},       {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->key_file = "gmud-key.pem";
    o->cert_file = "gmud-cert.pem";
    o->days = KEYGEN_DAYS_DEFAULT;
    opterr = 0; /* the messages below name the option and say what to do */
    int c;
    while ((c = getopt_long(argc, argv, ":", longs, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_KEY:
            o->key_file = optarg;
            break;
        case O_CERT:
            o->cert_file = optarg;
            break;
        case O_NAME:
            if (!valid_dns_name(optarg)) {
                fprintf(stderr, PROG ": --name %s: not a DNS name\n", optarg);
                return EXIT_USAGE;
            }
            if (add_name(o->names, &o->n_names, "--name", optarg) != 0)
                return EXIT_USAGE;
            break;
        case O_IP:
            if (!valid_ip(optarg)) {
                fprintf(stderr, PROG ": --ip %s: not an IPv4 or IPv6 address\n", optarg);
                return EXIT_USAGE;
            }
            if (add_name(o->ips, &o->n_ips, "--ip", optarg) != 0)
                return EXIT_USAGE;
            break;
        case O_DAYS:
            errno = 0;
            o->days = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || o->days < 1 ||
                o->days > KEYGEN_DAYS_MAX) {
                fprintf(stderr, PROG ": --days %s: expected a whole number of days, 1..%d\n",
                        optarg, KEYGEN_DAYS_MAX);
                return EXIT_USAGE;
            }
            break;
        case O_FORCE:
            o->force = 1;
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        case O_VERSION:
            printf(PROG " %s (%s)\n", gmud_version(), OpenSSL_version(OPENSSL_VERSION));
            return 0;
        case ':':
            fprintf(stderr, PROG ": %s needs a value; see --help\n", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            fprintf(stderr, PROG ": unknown option %s; see --help\n", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument %s; see --help\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (strcmp(o->key_file, o->cert_file) == 0) {
        fprintf(stderr, PROG ": --key and --cert name the same file, %s\n", o->key_file);
        return EXIT_USAGE;
    }
    if (o->n_names == 0 && o->n_ips == 0) {
        o->names[o->n_names++] = "localhost";
        o->ips[o->n_ips++] = "127.0.0.1";
        o->ips[o->n_ips++] = "::1";
    }
    const char *cn = o->n_names > 0 ? o->names[0] : o->ips[0];
    if (strlen(cn) > KEYGEN_CN_MAX) {
        fprintf(stderr, PROG ": %s: longer than %d bytes, it cannot be the subject's CN\n", cn,
                KEYGEN_CN_MAX);
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- The key and the certificate --------------------------------------- */

/* "<what>: <OpenSSL's reason>" on stderr; returns -1. */
static int ossl_fail(const char *what)
{
    unsigned long e = ERR_get_error();
    char why[256];
    if (e != 0)
        ERR_error_string_n(e, why, sizeof why);
    else
        snprintf(why, sizeof why, "failed");
    fprintf(stderr, PROG ": %s: %s\n", what, why);
    ERR_clear_error();
    return -1;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* The subjectAltName: every --name as a dNSName, every --ip as an
 * iPAddress (built directly: a name in a "DNS:a,IP:b" string could not hold
 * every byte safely, and an address is parsed once, here). */
static int add_san(X509 *x, const keygen_options *o)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int ok = gens != NULL;
    for (size_t i = 0; ok && i < o->n_names; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ok = g != NULL && s != NULL && ASN1_STRING_set(s, o->names[i], -1);
        if (ok) {
            GENERAL_NAME_set0_value(g, GEN_DNS, s);
            s = NULL;
            ok = sk_GENERAL_NAME_push(gens, g) > 0;
        }
        if (!ok) {
            ASN1_IA5STRING_free(s);
            GENERAL_NAME_free(g);
        }
    }
    for (size_t i = 0; ok && i < o->n_ips; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_OCTET_STRING *a = a2i_IPADDRESS(o->ips[i]);
        ok = g != NULL && a != NULL;
        if (ok) {
            GENERAL_NAME_set0_value(g, GEN_IPADD, a);
            a = NULL;
            ok = sk_GENERAL_NAME_push(gens, g) > 0;
        }
        if (!ok) {
            ASN1_OCTET_STRING_free(a);
            GENERAL_NAME_free(g);
        }
    }
    ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
    GENERAL_NAMES_free(gens);
    return ok ? 0 : -1;
}

/* A random positive 128-bit serial (RFC 5280 allows 20 octets; the DER
 * encoding adds a zero octet when the top bit is set, 17 at most). */
static int set_serial(X509 *x)
{
    unsigned char r[KEYGEN_SERIAL_BYTES];
    if (RAND_bytes(r, sizeof r) != 1)
        return -1;
    r[sizeof r - 1] |= 1; /* never zero, which RFC 5280 forbids */
    BIGNUM *bn = BN_bin2bn(r, sizeof r, NULL);
    ASN1_INTEGER *serial = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    int ok = serial != NULL && X509_set_serialNumber(x, serial);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return ok ? 0 : -1;
}

static X509 *make_cert(EVP_PKEY *key, const keygen_options *o)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    const char *cn = o->n_names > 0 ? o->names[0] : o->ips[0];
    X509V3_CTX ctx;
    int ok = x != NULL && name != NULL && X509_set_version(x, X509_VERSION_3) &&
             set_serial(x) == 0 &&
             X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                        (const unsigned char *)cn, -1, -1, 0) &&
             X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -KEYGEN_BACKDATE_S) != NULL &&
             X509_time_adj_ex(X509_getm_notAfter(x), (int)o->days, 0, NULL) != NULL &&
             X509_set_pubkey(x, key);
    if (ok) {
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        /* The subject key id goes first: the authority key id, which
         * strict verifiers want to find, is copied from it. */
        ok = add_san(x, o) == 0 &&
             add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
             add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") == 0 &&
             add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") == 0 &&
             add_ext(x, &ctx, NID_subject_key_identifier, "hash") == 0 &&
             add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") == 0 &&
             X509_sign(x, key, EVP_sha256()) > 0;
    }
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* The PEM text of the key (PKCS#8, unencrypted) or the certificate. The
 * key's goes through the secure heap, cleared when freed. */
static BIO *pem_key(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_secmem());
    if (b != NULL && !PEM_write_bio_PKCS8PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(b);
        return NULL;
    }
    return b;
}

static BIO *pem_cert(X509 *cert)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL && !PEM_write_bio_X509(b, cert)) {
        BIO_free(b);
        return NULL;
    }
    return b;
}

/* ---- Files ---------------------------------------------------------------- */

/* One file being written: at its final path (no --force: created there, so
 * an existing one makes it fail), or at a temporary path beside it. */
typedef struct out_file {
    const char *path;     /* where it ends up */
    char *tmp;            /* --force: the temporary file, NULL otherwise */
    mode_t mode;
    int created;          /* a file of ours exists at tmp (or path) */
} out_file;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Creates the file with its mode from the first moment (a key is never
 * readable by others, not even while being written), writes data, and
 * syncs it to disk. The mode is set exactly, whatever the umask. */
static int write_file(out_file *f, BIO *data, int force)
{
    char *p = NULL;
    long n = BIO_get_mem_data(data, &p);
    const char *at = f->path;
    int fd;
    if (force) {
        size_t len = strlen(f->path);
        f->tmp = malloc(len + sizeof ".tmp.XXXXXX");
        if (f->tmp == NULL) {
            fprintf(stderr, PROG ": out of memory\n");
            return -1;
        }
        memcpy(f->tmp, f->path, len);
        memcpy(f->tmp + len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
        at = f->tmp;
        fd = mkstemp(f->tmp); /* O_CREAT | O_EXCL, mode 0600 */
    } else {
        fd = open(f->path, O_CREAT | O_EXCL | O_WRONLY, f->mode);
    }
    if (fd < 0 && force) {
        fprintf(stderr, PROG ": %s: cannot make a temporary file beside it: %s\n", f->path,
                strerror(errno));
        return -1;
    }
    if (fd < 0) {
        fprintf(stderr, PROG ": %s: %s%s\n", f->path, strerror(errno),
                errno == EEXIST ? " (--force replaces it)" : "");
        return -1;
    }
    f->created = 1;
    int ok = n >= 0 && fchmod(fd, f->mode) == 0 && write_all(fd, p, (size_t)n) == 0 &&
             fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        fprintf(stderr, PROG ": writing %s: %s\n", at, strerror(saved));
        return -1;
    }
    return 0;
}

/* Syncs the directory holding path, so that a rename into it lasts. */
static void sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = slash == NULL ? strdup(".") : strndup(path, len);
    int fd = dir != NULL ? open(dir, O_RDONLY) : -1;
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: some file systems refuse it on a directory */
        close(fd);
    }
    free(dir);
}

/* Removes what a failed run made: temporary files, or the new files
 * themselves when they were created at their paths. */
static void discard(out_file *f)
{
    if (f->created)
        unlink(f->tmp != NULL ? f->tmp : f->path);
    f->created = 0;
}

/* 0 if nothing is at path (a dangling symbolic link counts as something),
 * else -1 after saying why. */
static int check_absent(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        fprintf(stderr, PROG ": %s exists; nothing written (--force replaces it)\n", path);
    else if (errno != ENOENT)
        fprintf(stderr, PROG ": %s: %s; nothing written\n", path, strerror(errno));
    else
        return 0;
    return -1;
}

/* Both files, or neither. Without --force, an existing file stops the run
 * before anything is written (O_EXCL still guards against one appearing in
 * between). With it, both are written beside their targets first and then
 * renamed over them. */
static int write_files(const keygen_options *o, BIO *key_pem, BIO *cert_pem)
{
    out_file key = {o->key_file, NULL, KEY_MODE, 0};
    out_file cert = {o->cert_file, NULL, CERT_MODE, 0};
    int rc = -1;
    if (!o->force) {
        if (check_absent(o->key_file) != 0 || check_absent(o->cert_file) != 0)
            return -1;
    }
    if (write_file(&key, key_pem, o->force) != 0 || write_file(&cert, cert_pem, o->force) != 0)
        goto done;
    if (o->force) {
        if (rename(key.tmp, key.path) != 0) {
            fprintf(stderr, PROG ": %s: %s\n", key.path, strerror(errno));
            goto done;
        }
        key.created = 0;
        if (rename(cert.tmp, cert.path) != 0) {
            /* The new key is in place without its certificate; say so
             * rather than pretend nothing changed. */
            fprintf(stderr, PROG ": %s: %s (%s was replaced already)\n", cert.path,
                    strerror(errno), key.path);
            goto done;
        }
        cert.created = 0;
        sync_dir_of(key.path);
        sync_dir_of(cert.path);
    }
    key.created = cert.created = 0;
    rc = 0;
done:
    discard(&cert);
    discard(&key);
    free(key.tmp);
    free(cert.tmp);
    return rc;
}

/* ---- Report ----------------------------------------------------------------- */

static void print_time(const char *label, const ASN1_TIME *t)
{
    struct tm tm;
    char s[32] = "?";
    if (ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, PROG ": %s %s\n", label, s);
}

static void report(const keygen_options *o, X509 *cert)
{
    fprintf(stderr, PROG ": wrote %s (ECDSA P-256 private key, PKCS#8 PEM, mode 0600)\n",
            o->key_file);
    fprintf(stderr, PROG ": wrote %s (self-signed X.509 v3 certificate, SHA-256, mode 0644)\n",
            o->cert_file);
    fprintf(stderr, PROG ": subject CN=%s; for", o->n_names > 0 ? o->names[0] : o->ips[0]);
    for (size_t i = 0; i < o->n_names; i++)
        fprintf(stderr, " DNS:%s", o->names[i]);
    for (size_t i = 0; i < o->n_ips; i++)
        fprintf(stderr, " IP:%s", o->ips[i]);
    fprintf(stderr, "\n");
    print_time("valid from", X509_get0_notBefore(cert));
    print_time("valid until", X509_get0_notAfter(cert));
}

int main(int argc, char **argv)
{
    keygen_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc >= 0)
        return rc;
    rc = 1;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    BIO *key_pem = NULL, *cert_pem = NULL;
    char pin[GMUD_TLS_PIN_LEN + 1];
    gmud_error err = {0};

    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (key == NULL) {
        ossl_fail("generating the key");
        goto done;
    }
    cert = make_cert(key, &o);
    if (cert == NULL) {
        ossl_fail("making the certificate");
        goto done;
    }
    key_pem = pem_key(key);
    cert_pem = pem_cert(cert);
    if (key_pem == NULL || cert_pem == NULL) {
        ossl_fail("encoding PEM");
        goto done;
    }
    if (write_files(&o, key_pem, cert_pem) != 0)
        goto done;
    /* The pin from the file as written, the way a client's operator would
     * get it: the library's own function, so the two cannot disagree. */
    if (gmud_tls_pin_file(o.cert_file, pin, sizeof pin, &err) != GMUD_OK) {
        fprintf(stderr, PROG ": %s\n", err.message);
        goto done;
    }
    report(&o, cert);
    printf("%s\n", pin);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    BIO_free(cert_pem);
    BIO_free(key_pem);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}
