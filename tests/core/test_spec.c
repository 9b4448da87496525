/* Checks docs/PROTOCOL.md mechanically:
 *  - every `gmud-example` block: the payload encodes to exactly the listed
 *    bytes, and the bytes decode (whole and one byte at a time) to the payload
 *    or to the listed error;
 *  - every `gmud-session-example` block: the packet built from its keys with
 *    the session functions and framed is exactly the listed bytes, and the
 *    bytes, decoded and checked by a receiver in the listed state, give the
 *    listed verdict and deliver the listed payload;
 *  - every error-table row `| -N | `name` |` names the code error.h gives. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hex_util.h"
#include "gmud/frame.h"
#include "gmud/json.h"
#include "gmud/session.h"

typedef struct example {
    int line; /* where the block starts, for messages */
    gmud_frame_config cfg;
    char payload[512];
    int has_payload;
    uint8_t wire[512];
    size_t wire_len;
    char error[32];
    char encode_error[32];
} example;

static const char *error_name_of(int code)
{
    return code == 0 ? "ok" : gmud_err_name(code);
}

/* Decodes ex->wire whole, then byte by byte; both must agree with ex. */
static void check_decode(const example *ex, size_t step)
{
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&ex->cfg, NULL);
    gmud_error err = {0};
    int rc = 0, got_msg = 0;
    for (size_t at = 0; at < ex->wire_len && rc == 0;) {
        size_t n = step && step < ex->wire_len - at ? step : ex->wire_len - at;
        gmud_slice msg;
        ptrdiff_t used = gmud_frame_decode(dec, ex->wire + at, n, &msg, &err);
        if (used < 0) {
            rc = (int)used;
            break;
        }
        at += used ? (size_t)used : n;
        if (used > 0) {
            got_msg++;
            if (ex->cfg.framing == GMUD_FRAMING_FIXED)
                msg = gmud_frame_trim_padding(msg);
            if (ex->has_payload)
                CHECK_MEM(msg.data, msg.len, ex->payload, strlen(ex->payload));
        }
    }
    if (rc == 0)
        rc = gmud_frame_decoder_finish(dec, &err);
    const char *want = ex->error[0] ? ex->error : "ok";
    if (strcmp(error_name_of(rc), want) != 0) {
        fprintf(stderr, "PROTOCOL.md:%d: decoding (step %zu) gave %s (%s), example says %s\n",
                ex->line, step, error_name_of(rc), err.message, want);
        CHECK(0);
    }
    if (ex->has_payload)
        CHECK_EQ_INT(got_msg, 1);
    gmud_frame_decoder_destroy(dec);
}

static void check_example(const example *ex)
{
    uint8_t out[1024];
    gmud_error err = {0};
    if (ex->has_payload) {
        ptrdiff_t n = gmud_frame_encode(&ex->cfg, ex->payload, strlen(ex->payload), out,
                                        sizeof out, &err);
        if (ex->encode_error[0]) {
            CHECK(n < 0 && strcmp(error_name_of((int)n), ex->encode_error) == 0);
        } else if (n < 0 || (size_t)n != ex->wire_len || memcmp(out, ex->wire, ex->wire_len) != 0) {
            fprintf(stderr, "PROTOCOL.md:%d: encoding does not give the listed bytes (%s)\n",
                    ex->line, n < 0 ? err.message : "bytes differ");
            CHECK(0);
        }
    }
    if (ex->wire_len > 0) {
        check_decode(ex, 0);
        check_decode(ex, 1);
    }
}

/* Applies one "key: value" line of a block. */
static void apply(example *ex, const char *key, const char *val)
{
    gmud_error err;
    int rc = 0;
    if (strcmp(key, "framing") == 0) {
        rc = gmud_frame_config_parse(&ex->cfg, val, &err);
    } else if (strcmp(key, "label") == 0) {
        rc = gmud_frame_config_set_label(&ex->cfg, val, &err);
    } else if (strcmp(key, "delim") == 0) {
        rc = gmud_frame_config_set_delim(&ex->cfg, val, &err);
    } else if (strcmp(key, "max") == 0) {
        ex->cfg.max_message = (size_t)strtoul(val, NULL, 10);
    } else if (strcmp(key, "payload") == 0) {
        snprintf(ex->payload, sizeof ex->payload, "%s", val);
        ex->has_payload = 1;
    } else if (strcmp(key, "error") == 0) {
        snprintf(ex->error, sizeof ex->error, "%s", val);
    } else if (strcmp(key, "encode-error") == 0) {
        snprintf(ex->encode_error, sizeof ex->encode_error, "%s", val);
    } else if (strcmp(key, "wire") != 0) {
        fprintf(stderr, "PROTOCOL.md:%d: unknown key '%s'\n", ex->line, key);
        CHECK(0);
    }
    if (rc != 0) {
        fprintf(stderr, "PROTOCOL.md:%d: %s\n", ex->line, err.message);
        CHECK(0);
    }
}

/* ---- gmud-session-example blocks -------------------------------------- */

/* What the block's packet is (key "packet"). */
enum { PK_NONE, PK_WELCOME, PK_DATA, PK_REPLY, PK_BARE };
/* What the receiver does with it (key "check"; by default from the packet). */
enum { CK_DEFAULT, CK_WELCOME, CK_HEADER, CK_REPLY, CK_NONE };

typedef struct session_example {
    int line;
    gmud_frame_config cfg;
    unsigned modes;  /* bit (1u << mode) for each mode listed */
    int from;        /* 0 unset, 1 server, 2 client */
    int packet, check;
    uint64_t session, sequence, expect_session, expect_sequence, session_hex;
    int has_session, has_sequence, has_expect_session, has_expect_sequence, has_session_hex;
    char data[256];
    int has_data;
    char payload[512];
    int has_payload;
    uint8_t wire[1024];
    size_t wire_len;
    char error[32];
} session_example;

static void session_fail(const session_example *ex, const char *what)
{
    fprintf(stderr, "PROTOCOL.md:%d: %s\n", ex->line, what);
    CHECK(0);
}

static int parse_u64(const char *s, int base, uint64_t *out)
{
    char *end;
    if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    unsigned long long v = strtoull(s, &end, base);
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* A comment on a wire line that names a field checks it: "LENGTH n",
 * "SEQUENCE n", "SESSION_ID n" (optionally after "read as ") must be the
 * line's bytes read little-endian, and LABEL "XXXX" the bytes as text. */
static void check_wire_comment(const session_example *ex, const char *c, const uint8_t *b,
                               size_t n)
{
    static const char *const fields[] = {"LENGTH ", "SEQUENCE ", "SESSION_ID "};
    while (*c == ' ')
        c++;
    if (strncmp(c, "read as ", 8) == 0)
        c += 8;
    if (strncmp(c, "LABEL \"", 7) == 0) {
        if (strlen(c) != 7 + n + 1 || memcmp(c + 7, b, n) != 0 || c[7 + n] != '"')
            session_fail(ex, "a LABEL comment does not match its bytes");
        return;
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        size_t len = strlen(fields[i]);
        if (strncmp(c, fields[i], len) != 0)
            continue;
        uint64_t v = 0, want;
        for (size_t k = n; k-- > 0;)
            v = v << 8 | b[k];
        char num[32] = "";
        if (n == 0 || n > 8 || sscanf(c + len, "%31[0-9]", num) != 1 ||
            parse_u64(num, 10, &want) != 0 || v != want)
            session_fail(ex, "a field comment does not match its bytes");
        return;
    }
}

/* A wire line: two-digit hex bytes separated by spaces, then an optional
 * comment from '#'. Anything else is a mistake in the document. */
static void parse_wire_line(session_example *ex, const char *s)
{
    size_t start = ex->wire_len;
    while (*s != '\0' && *s != '#') {
        if (*s == ' ') {
            s++;
            continue;
        }
        unsigned v;
        int used = 0;
        if (sscanf(s, "%2x%n", &v, &used) != 1 || used != 2 ||
            (s[2] != ' ' && s[2] != '\0' && s[2] != '#') || ex->wire_len == sizeof ex->wire) {
            session_fail(ex, "wire line is not two-digit hex bytes");
            return;
        }
        ex->wire[ex->wire_len++] = (uint8_t)v;
        s += 2;
    }
    if (*s == '#')
        check_wire_comment(ex, s + 1, ex->wire + start, ex->wire_len - start);
}

static int lookup(const char *val, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(val, names[i]) == 0)
            return i;
    return -1;
}

static void apply_session(session_example *ex, const char *key, const char *val)
{
    static const char *const packets[] = {"", "welcome", "data", "reply", "bare"};
    static const char *const checks[] = {"", "welcome", "header", "reply", "none"};
    static const char *const froms[] = {"", "server", "client"};
    gmud_error err = {0};
    int bad = 0;
    if (strcmp(key, "framing") == 0) {
        bad = gmud_frame_config_parse(&ex->cfg, val, &err) != 0;
    } else if (strcmp(key, "mode") == 0) {
        /* one or more of "on", "lecture", separated by ", " */
        char buf[64];
        snprintf(buf, sizeof buf, "%s", val);
        for (char *tok = strtok(buf, ", "); tok != NULL; tok = strtok(NULL, ", ")) {
            gmud_session_mode m;
            if (gmud_session_mode_parse(tok, &m, &err) != 0 || m == GMUD_SESSION_OFF)
                bad = 1;
            else
                ex->modes |= 1u << m;
        }
    } else if (strcmp(key, "from") == 0) {
        bad = (ex->from = lookup(val, froms, 3)) <= 0;
    } else if (strcmp(key, "packet") == 0) {
        bad = (ex->packet = lookup(val, packets, 5)) <= 0;
    } else if (strcmp(key, "check") == 0) {
        bad = (ex->check = lookup(val, checks, 5)) <= 0;
    } else if (strcmp(key, "session") == 0) {
        bad = parse_u64(val, 10, &ex->session) != 0;
        ex->has_session = 1;
    } else if (strcmp(key, "session-hex") == 0) {
        bad = parse_u64(val, 16, &ex->session_hex) != 0;
        ex->has_session_hex = 1;
    } else if (strcmp(key, "sequence") == 0) {
        bad = parse_u64(val, 10, &ex->sequence) != 0;
        ex->has_sequence = 1;
    } else if (strcmp(key, "expect-session") == 0) {
        bad = parse_u64(val, 10, &ex->expect_session) != 0;
        ex->has_expect_session = 1;
    } else if (strcmp(key, "expect-sequence") == 0) {
        bad = parse_u64(val, 10, &ex->expect_sequence) != 0;
        ex->has_expect_sequence = 1;
    } else if (strcmp(key, "data") == 0) {
        snprintf(ex->data, sizeof ex->data, "%s", val);
        ex->has_data = 1;
    } else if (strcmp(key, "payload") == 0) {
        snprintf(ex->payload, sizeof ex->payload, "%s", val);
        ex->has_payload = 1;
    } else if (strcmp(key, "error") == 0) {
        snprintf(ex->error, sizeof ex->error, "%s", val);
    } else if (strcmp(key, "wire") != 0) {
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "PROTOCOL.md:%d: bad key or value '%s: %s' %s\n", ex->line, key, val,
                err.message);
        CHECK(0);
    }
}

/* The rules of section 6 that every example must follow. */
static int session_example_valid(const session_example *ex)
{
    const char *why = NULL;
    if (ex->modes == 0 || ex->from == 0 || ex->packet == PK_NONE || !ex->has_payload ||
        ex->wire_len == 0)
        why = "needs mode, from, packet, payload and wire";
    else if (!ex->has_session && (ex->packet != PK_BARE || ex->check != CK_WELCOME))
        why = "needs a session (only a bare packet to a client awaiting its welcome has none)";
    else if (ex->has_session && (ex->session == 0 || ex->session > GMUD_SESSION_ID_MAX))
        why = "session id outside 1..2^53-1";
    else if (ex->has_session_hex && ex->session_hex != ex->session)
        why = "session-hex is not the session id";
    else if (ex->packet == PK_WELCOME && (ex->from != 1 || (ex->has_sequence && ex->sequence != 0)))
        why = "a welcome is the server's sequence 0";
    else if (ex->packet == PK_REPLY &&
             (ex->from != 2 || ex->modes != 1u << GMUD_SESSION_LECTURE || !ex->has_data ||
              !ex->has_sequence))
        why = "a reply is the client's, in mode lecture, with data and sequence";
    else if (ex->packet == PK_DATA && ex->modes != 1u << GMUD_SESSION_ON &&
             ex->modes != 1u << GMUD_SESSION_LECTURE)
        why = "a data packet is built for one mode";
    else if (ex->packet == PK_DATA && (ex->modes & 1u << GMUD_SESSION_ON) && !ex->has_sequence)
        why = "a data packet in mode on needs a sequence";
    else if (ex->packet == PK_DATA && (ex->modes & 1u << GMUD_SESSION_ON) && ex->from == 1 &&
             ex->sequence == 0)
        why = "the server's sequence 0 is the welcome: its data packets start at 1";
    else if (ex->packet == PK_DATA && (ex->modes & 1u << GMUD_SESSION_LECTURE) && ex->from != 1)
        why = "in mode lecture the client sends replies, not data packets";
    else if (ex->packet == PK_BARE && ex->check == CK_DEFAULT)
        why = "a bare packet needs a check";
    if (why != NULL)
        session_fail(ex, why);
    return why == NULL;
}

/* The application's bytes of the packet, built with gmud's own functions,
 * into out[0..cap). Returns the length or a negative code. */
static ptrdiff_t session_build(const session_example *ex, gmud_session_mode mode, uint8_t *out,
                               size_t cap, gmud_error *err)
{
    size_t plen = strlen(ex->payload);
    switch (ex->packet) {
    case PK_WELCOME:
        return gmud_session_lecture_welcome(ex->session, out, cap, err);
    case PK_REPLY:
        return gmud_session_lecture_reply(ex->session, ex->sequence, ex->data, strlen(ex->data),
                                          out, cap, err);
    case PK_DATA:
        if (mode == GMUD_SESSION_ON) {
            if (plen > cap - GMUD_SESSION_HEADER_SIZE)
                return GMUD_ERR_INVALID;
            gmud_session_header_put(out, ex->session, ex->sequence);
            memcpy(out + GMUD_SESSION_HEADER_SIZE, ex->payload, plen);
            return (ptrdiff_t)(GMUD_SESSION_HEADER_SIZE + plen);
        }
        break; /* lecture: the server's data is the application's, unchanged */
    default:
        break;
    }
    if (plen > cap)
        return GMUD_ERR_INVALID;
    memcpy(out, ex->payload, plen);
    return (ptrdiff_t)plen;
}

/* Decodes ex->wire (whole, or `step` bytes at a time) into exactly one
 * message, copied to out. Returns its length, or -1. */
static ptrdiff_t session_decode(const session_example *ex, size_t step, uint8_t *out, size_t cap)
{
    gmud_error err = {0};
    gmud_frame_decoder *dec = gmud_frame_decoder_create(&ex->cfg, &err);
    ptrdiff_t got = -1;
    int msgs = 0, bad = dec == NULL;
    for (size_t at = 0; !bad && at < ex->wire_len;) {
        size_t n = step && step < ex->wire_len - at ? step : ex->wire_len - at;
        gmud_slice msg;
        ptrdiff_t used = gmud_frame_decode(dec, ex->wire + at, n, &msg, &err);
        if (used < 0 || (used > 0 && (++msgs > 1 || msg.len > cap))) {
            bad = 1;
            break;
        }
        if (used > 0) {
            memcpy(out, msg.data, msg.len);
            got = (ptrdiff_t)msg.len;
        }
        at += used ? (size_t)used : n;
    }
    if (!bad && gmud_frame_decoder_finish(dec, &err) != 0)
        bad = 1;
    gmud_frame_decoder_destroy(dec);
    if (bad || msgs != 1) {
        fprintf(stderr, "PROTOCOL.md:%d: the wire is not exactly one frame (step %zu): %s\n",
                ex->line, step, err.message);
        CHECK(0);
        return -1;
    }
    return got;
}

static gmud_slice trimmed(const session_example *ex, gmud_slice s)
{
    return ex->cfg.framing == GMUD_FRAMING_FIXED ? gmud_frame_trim_padding(s) : s;
}

/* The receiver's verdict on the decoded payload p[0..n): "ok" once it has
 * delivered exactly ex->payload (a welcome is taken, not delivered), else the
 * name of the error it refuses the packet with. */
static const char *session_verdict(const session_example *ex, gmud_session_mode mode,
                                   const uint8_t *p, size_t n, gmud_error *err)
{
    int check = ex->check;
    if (check == CK_DEFAULT)
        check = ex->packet == PK_WELCOME ? CK_WELCOME
                : ex->packet == PK_REPLY ? CK_REPLY
                : mode == GMUD_SESSION_ON ? CK_HEADER
                                          : CK_NONE;
    uint64_t want_id = ex->has_expect_session ? ex->expect_session : ex->session;
    uint64_t want_seq = ex->has_expect_sequence ? ex->expect_sequence : ex->sequence;
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    gmud_slice app = trimmed(ex, (gmud_slice){p, n});
    gmud_session s;
    json_t *j = NULL;
    int rc;
    switch (check) {
    case CK_WELCOME: {
        static char code[32];
        gmud_session_init(&s);
        rc = gmud_json_parse(app.data, app.len, &lim, &j, err);
        if (rc == 0)
            rc = gmud_session_welcomed(&s, mode, j, err);
        /* an error packet in place of the welcome: the client reports the
         * server's code; any other first packet that fails is not_welcomed */
        const char *e = json_string_value(json_object_get(j, "error"));
        const char *c = json_string_value(json_object_get(j, "code"));
        snprintf(code, sizeof code, "%s", rc != 0 && e != NULL && c != NULL ? c : "");
        json_decref(j);
        if (rc != 0) {
            CHECK(s.id == 0);
            return code[0] ? code : "not_welcomed";
        }
        CHECK(s.id == ex->session);
        CHECK_EQ_INT(s.send_seq, mode == GMUD_SESSION_ON ? 0 : 1);
        CHECK_EQ_INT(s.recv_seq, 1);
        return "ok";
    }
    case CK_HEADER: {
        uint64_t seq = 0;
        gmud_session_start(&s, want_id, 0, want_seq);
        rc = gmud_session_header_check(&s, p, n, &seq, err);
        if (rc != 0) {
            CHECK(s.recv_seq == want_seq); /* a refused packet moves nothing */
            return gmud_err_name(rc);
        }
        CHECK(seq == ex->sequence);
        CHECK(gmud_session_commit_seq(&s, seq, err) == 0 && s.recv_seq == want_seq + 1);
        /* the header is read before the padding is removed from the rest */
        app = trimmed(ex, (gmud_slice){p + GMUD_SESSION_HEADER_SIZE, n - GMUD_SESSION_HEADER_SIZE});
        break;
    }
    case CK_REPLY:
        lim.require_object = 0; /* a reply that is not an object is the session's not_object */
        rc = gmud_json_parse(app.data, app.len, &lim, &j, err);
        if (rc == 0) {
            gmud_session_start(&s, want_id, 1, want_seq);
            rc = gmud_session_lecture_check(&s, j, err);
            if (rc == 0)
                CHECK(gmud_session_commit_seq(&s, want_seq, err) == 0);
        }
        json_decref(j);
        if (rc != 0)
            return gmud_err_name(rc);
        break; /* the reply is delivered whole */
    default:
        break;
    }
    CHECK_MEM(app.data, app.len, ex->payload, strlen(ex->payload));
    return "ok";
}

static void check_session_example(const session_example *ex)
{
    if (!session_example_valid(ex))
        return;
    for (int m = GMUD_SESSION_LECTURE; m <= GMUD_SESSION_ON; m++) {
        if (!(ex->modes & 1u << m))
            continue;
        gmud_session_mode mode = (gmud_session_mode)m;
        uint8_t app[1024], out[1100], got[1100], got1[1100];
        gmud_error err = {0};
        ptrdiff_t n = session_build(ex, mode, app, sizeof app, &err);
        if (n < 0) {
            session_fail(ex, err.message);
            continue;
        }
        /* the document shows a welcome or reply in full as its payload */
        if (ex->packet == PK_WELCOME || ex->packet == PK_REPLY)
            CHECK_MEM(app, (size_t)n, ex->payload, strlen(ex->payload));
        ptrdiff_t w = gmud_frame_encode(&ex->cfg, app, (size_t)n, out, sizeof out, &err);
        if (w < 0 || (size_t)w != ex->wire_len || memcmp(out, ex->wire, ex->wire_len) != 0) {
            fprintf(stderr, "PROTOCOL.md:%d: mode %s: the packet does not frame to the listed "
                            "bytes (%s)\n",
                    ex->line, gmud_session_mode_name(mode), w < 0 ? err.message : "bytes differ");
            CHECK(0);
        }
        ptrdiff_t g = session_decode(ex, 0, got, sizeof got);
        ptrdiff_t g1 = session_decode(ex, 1, got1, sizeof got1);
        if (g < 0 || g1 < 0)
            continue;
        CHECK_MEM(got, (size_t)g, got1, (size_t)g1);
        const char *verdict = session_verdict(ex, mode, got, (size_t)g, &err);
        const char *want = ex->error[0] ? ex->error : "ok";
        if (strcmp(verdict, want) != 0) {
            fprintf(stderr, "PROTOCOL.md:%d: mode %s: the receiver says %s (%s), example says %s\n",
                    ex->line, gmud_session_mode_name(mode), verdict, err.message, want);
            CHECK(0);
        }
    }
}

/* An error-table row "| -N | `name` | ...": the name must be error.h's. */
static void check_error_row(const char *line, int lineno, unsigned char *seen)
{
    int code;
    char name[40];
    if (sscanf(line, "| -%d | `%39[a-z_]` |", &code, name) != 2)
        return;
    if (code <= 0 || code >= -GMUD_ERR_LAST_ || strcmp(gmud_err_name(-code), name) != 0) {
        fprintf(stderr, "PROTOCOL.md:%d: error table says -%d is %s, error.h says %s\n", lineno,
                code, name, gmud_err_name(-code));
        CHECK(0);
        return;
    }
    seen[code] = 1;
}

int main(void)
{
    const char *dir = getenv("GMUD_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/PROTOCOL.md", dir ? dir : ".");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    char line[1024];
    int lineno = 0, in_block = 0, examples = 0, session_examples = 0;
    unsigned char seen[-GMUD_ERR_LAST_] = {0};
    example ex;
    session_example sx;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (!in_block && strcmp(line, "```gmud-example") == 0) {
            memset(&ex, 0, sizeof ex);
            gmud_frame_default_config(&ex.cfg, GMUD_FRAMING_GMUD);
            ex.line = lineno;
            in_block = 1;
        } else if (!in_block && strcmp(line, "```gmud-session-example") == 0) {
            memset(&sx, 0, sizeof sx);
            gmud_frame_default_config(&sx.cfg, GMUD_FRAMING_GMUD);
            sx.line = lineno;
            in_block = 2;
        } else if (!in_block) {
            check_error_row(line, lineno, seen);
        } else if (strcmp(line, "```") == 0) {
            if (in_block == 1) {
                check_example(&ex);
                examples++;
            } else {
                check_session_example(&sx);
                session_examples++;
            }
            in_block = 0;
        } else if (line[0] == ' ') {
            if (in_block == 1)
                ex.wire_len = test_hex(line, ex.wire, sizeof ex.wire, ex.wire_len);
            else
                parse_wire_line(&sx, line);
        } else {
            char *colon = strchr(line, ':');
            CHECK(colon != NULL);
            if (colon == NULL)
                continue;
            *colon = '\0';
            const char *val = colon[1] == ' ' ? colon + 2 : colon + 1;
            if (in_block == 1)
                apply(&ex, line, val);
            else
                apply_session(&sx, line, val);
        }
    }
    fclose(f);
    CHECK(!in_block);
    CHECK(examples >= 10);
    CHECK(session_examples >= 10);
    /* every error a peer can be sent is in a table: framing (-3..-7) and the
     * rest (-19..-28); JSON errors have their own table without codes */
    for (int code = 3; code < -GMUD_ERR_LAST_; code++) {
        /* -30 tls: a local error (TLS has its own alerts), never a packet */
        if ((code >= 3 && code <= 7) || (code >= 19 && code != -GMUD_ERR_TLS)) {
            if (!seen[code])
                fprintf(stderr, "PROTOCOL.md: no error-table row for -%d (%s)\n", code,
                        gmud_err_name(-code));
            CHECK(seen[code]);
        }
    }
    printf("test_spec: %d examples and %d session examples from %s\n", examples,
           session_examples, path);
    return check_report("test_spec");
}
