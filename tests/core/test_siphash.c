/* SipHash (src/core/siphash.c) against published outputs: SipHash-2-4
 * from the paper (key 00..0f, messages 00, 01, ...), SipHash-1-3 from
 * CPython 3.11's bytes hash, which is SipHash-1-3 under the zero key when
 * PYTHONHASHSEED=0 (python3 -c 'print(hex(hash(b"tavern") % 2**64))').
 * Every length 0..64 is run, so each tail length meets the code. */
#include <stdio.h>

#include "check.h"
#include "siphash.h"

static void test_sip24(void)
{
    uint8_t kb[16], m[64];
    for (int i = 0; i < 16; i++)
        kb[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        m[i] = (uint8_t)i;
    uint64_t key[2];
    sip_key(key, kb);
    CHECK(key[0] == UINT64_C(0x0706050403020100) && key[1] == UINT64_C(0x0f0e0d0c0b0a0908));
    /* The paper's appendix A: 15 bytes 00..0e. */
    CHECK(sip24(key, m, 15) == UINT64_C(0xa129ca6149be45e5));
    /* The reference code's vectors: the empty message, and one byte. */
    CHECK(sip24(key, m, 0) == UINT64_C(0x726fdb47dd0e0e31));
    CHECK(sip24(key, m, 1) == UINT64_C(0x74f839c593dc67fd));
}

static void test_sip13(void)
{
    static const uint64_t zero[2] = {0, 0};
    uint8_t m[64];
    for (int i = 0; i < 64; i++)
        m[i] = (uint8_t)i;
    CHECK(sip13(zero, "a", 1) == UINT64_C(0x407448d2b89b1813));
    CHECK(sip13(zero, "tavern", 6) == UINT64_C(0x2ebf226a814b0ef5));
    CHECK(sip13(zero, m, 15) == UINT64_C(0xf30eb725bb91c9ea));
    CHECK(sip13(zero, m, 64) == UINT64_C(0x75e05fd5bbc870c6));
}

/* Every length: no two of 65 prefixes alike, the key changes everything,
 * and NULL with length 0 is allowed. */
static void test_lengths(void)
{
    uint8_t m[64];
    for (int i = 0; i < 64; i++)
        m[i] = (uint8_t)(i * 37 + 1);
    uint64_t k1[2] = {1, 2}, k2[2] = {1, 3}, seen[65];
    int distinct = 1, keyed = 1;
    for (size_t n = 0; n <= 64; n++) {
        seen[n] = sip13(k1, m, n);
        keyed &= seen[n] != sip13(k2, m, n);
        for (size_t j = 0; j < n; j++)
            distinct &= seen[j] != seen[n];
    }
    CHECK(distinct);
    CHECK(keyed);
    CHECK(sip13(k1, NULL, 0) == seen[0]);
}

int main(void)
{
    test_sip24();
    test_sip13();
    test_lengths();
    return check_report("test_siphash");
}
