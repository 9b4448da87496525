/* Internal: SipHash (Aumasson and Bernstein), the keyed hash of every table
 * whose keys a peer chooses: addresses (iplimit.c), room and node names
 * (presence.c, and the chat app's rooms). With a secret random key the hash
 * is a PRF, so keys that collide cannot be chosen, nor learned from timing,
 * and no table can be made into one long chain. A seeded multiply-xorshift
 * would be faster but is not a PRF: seed-independent collisions are known
 * for hashes of that family (MurmurHash, CityHash), which is the SipHash
 * paper's motivation. Pure functions: no state, any thread. */
#ifndef GMUD_CORE_SIPHASH_H
#define GMUD_CORE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-1-3 of data[0..len) under key: the variant Python and Rust use
 * for their hash tables, a few nanoseconds on a short name. */
uint64_t sip13(const uint64_t key[2], const void *data, size_t len);

/* SipHash-2-4, the paper's reference variant (its test vectors check the
 * code both share). */
uint64_t sip24(const uint64_t key[2], const void *data, size_t len);

/* The key from 16 bytes, little-endian, as the paper reads it. */
void sip_key(uint64_t key[2], const uint8_t bytes[16]);

#endif
