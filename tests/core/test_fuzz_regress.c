/* Inputs found by the fuzz targets (fuzz/), kept as plain tests so that the
 * regular build checks them without clang or libFuzzer.
 *
 * fuzz_json, 2026-11-25: jansson 2.14 silently drops a raw NUL byte that
 * directly follows a number or a literal (its reader uses 0 to mean "buffer
 * empty", so the byte it ungets after the token vanishes). gmud_json_parse
 * then accepted text that is not JSON, such as {"a":1<NUL>}, which the
 * lecture's Python peers refuse; and with a bad byte after the NUL the
 * reported offset named the NUL instead of the bad byte. Crash artifact
 * (limits byte 0x61, then the payload):
 *   61 2d 30 00 fd 04 04 04 04 2f 04 04 ... 04 5b   (66 bytes)
 * No JSON text holds a raw NUL, so each case below must be refused as
 * GMUD_ERR_BAD_JSON naming the NUL's offset.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "gmud/json.h"

static void refused_at_nul(const char *text, size_t n, int require_object)
{
    gmud_json_limits lim;
    gmud_json_default_config(&lim);
    lim.require_object = require_object;
    const char *nul = memchr(text, 0, n);
    json_t *v = NULL;
    gmud_error err;
    memset(&err, 0, sizeof err);
    int rc = gmud_json_parse((const uint8_t *)text, n, &lim, &v, &err);
    if (rc != GMUD_ERR_BAD_JSON || err.offset != (size_t)(nul - text))
        fprintf(stderr, "  input of %zu bytes, NUL at %zu: got %s at %zu (%s)\n", n,
                (size_t)(nul - text), gmud_err_name(rc), err.offset,
                rc == 0 ? "accepted" : err.message);
    CHECK_EQ_INT(rc, GMUD_ERR_BAD_JSON);
    CHECK_EQ_INT(err.offset, nul - text);
    CHECK(v == NULL);
    json_decref(v);
}

int main(void)
{
    /* sizeof - 1: the literals' own terminating NUL is not input. */
#define REFUSED(lit, obj) refused_at_nul(lit, sizeof lit - 1, obj)
    REFUSED("{\"a\":1\0}", 1);                 /* 7b 22 61 22 3a 31 00 7d */
    REFUSED("{\"a\":-1\0,\"b\":2}", 1);
    REFUSED("{\"a\":[true\0]}", 1);
    REFUSED("{\"a\":[null\0]}", 1);
    REFUSED("{\"a\":1.5\0}", 1);
    REFUSED("{\"a\":1}\0", 1);                 /* after the value: jansson refuses too */
    REFUSED("1\0", 0);                         /* 31 00 */
    REFUSED("-0\0", 0);                        /* 2d 30 00 */
    REFUSED("-0\0\xfd", 0);                    /* the artifact's start: 2d 30 00 fd */
    REFUSED("[1\0,2]", 0);
#undef REFUSED
    return check_report("test_fuzz_regress");
}
