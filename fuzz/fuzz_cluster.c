/* fuzz/fuzz_cluster.c: the cluster bus envelope decoder (cw_decode), fed by
 * anyone who can publish on the cluster's Redis.
 *
 * Input: the first byte picks with or without a secret; the rest is an
 * envelope. Checked:
 *   - the result is one of the refusals, with a message, or CW_OK;
 *   - an envelope that decodes has names within bounds, and encoding what
 *     it says gives back exactly the same bytes (decoding is a function
 *     of the bytes, and nothing is accepted that the encoder would not
 *     write);
 *   - input over CW_MAX is CW_OVERSIZE;
 *   - what decodes has nonzero counters, an 8-byte heartbeat payload and
 *     the size cw_size gives.
 */
#include "fuzz_common.h"

#include "cluster_wire.h"

static const uint8_t key[] = "fuzzing-secret-0123";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *secret = (data[0] & 1) ? key : NULL;
    size_t klen = sizeof key - 1;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    cw_msg m;
    gmud_error e;
    e.message[0] = '\0';
    cw_refusal r = cw_decode(in, n, secret, klen, &m, &e);
    if (n > CW_MAX)
        FUZZ_CHECK(r == CW_OVERSIZE, "%zu bytes not oversize", n);
    if (r != CW_OK) {
        FUZZ_CHECK(r == CW_MALFORMED || r == CW_OVERSIZE || r == CW_BAD_MAC, "refusal %d", r);
        FUZZ_CHECK(e.message[0] != '\0', "a refusal without a message");
        return 0;
    }
    FUZZ_CHECK(cw_name_ok(m.node, m.node_len), "a bad node name accepted");
    FUZZ_CHECK(m.room_len == 0 || cw_name_ok(m.room, m.room_len), "a bad room accepted");
    FUZZ_CHECK(m.incarnation != 0 && m.seq != 0, "a zero counter accepted");
    FUZZ_CHECK(m.kind != CW_HEARTBEAT || m.payload_len == 8, "a heartbeat of %zu", m.payload_len);
    FUZZ_CHECK(cw_size(&m, secret != NULL) == n, "size %zu for %zu bytes",
               cw_size(&m, secret != NULL), n);
    static uint8_t out[CW_MAX];
    ptrdiff_t k = cw_encode(&m, secret, klen, out, sizeof out, &e);
    FUZZ_CHECK(k == (ptrdiff_t)n && memcmp(out, in, n) == 0,
               "re-encoding gives %td bytes for %zu", k, n);
    return 0;
}
