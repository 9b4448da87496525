/* src/core/siphash.c: SipHash-c-d over any length. See siphash.h. */
#include "siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = ROTL(v[2], 32);
}

/* n (at most 8) bytes from p[at], little-endian; p is not touched for n 0. */
static uint64_t load_le(const uint8_t *p, size_t at, size_t n)
{
    uint64_t x = 0;
    for (size_t i = n; i > 0; i--)
        x = x << 8 | p[at + i - 1];
    return x;
}

void sip_key(uint64_t key[2], const uint8_t bytes[16])
{
    key[0] = load_le(bytes, 0, 8);
    key[1] = load_le(bytes, 8, 8);
}

static void absorb(uint64_t v[4], uint64_t m, int rounds)
{
    v[3] ^= m;
    for (int r = 0; r < rounds; r++)
        sipround(v);
    v[0] ^= m;
}

static uint64_t siphash(const uint64_t key[2], const uint8_t *p, size_t len, int c, int d)
{
    uint64_t v[4] = {key[0] ^ UINT64_C(0x736f6d6570736575), key[1] ^ UINT64_C(0x646f72616e646f6d),
                     key[0] ^ UINT64_C(0x6c7967656e657261), key[1] ^ UINT64_C(0x7465646279746573)};
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8)
        absorb(v, load_le(p, i, 8), c);
    /* The last word: the tail bytes, and the length's low byte on top. */
    absorb(v, load_le(p, whole, len % 8) | (uint64_t)(len & 0xff) << 56, c);
    v[2] ^= 0xff;
    for (int r = 0; r < d; r++)
        sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t sip13(const uint64_t key[2], const void *data, size_t len)
{
    return siphash(key, data, len, 1, 3);
}

uint64_t sip24(const uint64_t key[2], const void *data, size_t len)
{
    return siphash(key, data, len, 2, 4);
}
