/* gmud/iplimit.h: per-address connection limits, the sans-I/O core.
 *
 * The server asks at accept time whether a new connection from an address
 * may proceed: per address, at most max_per_addr concurrent connections, and
 * new connections at most new_per_sec a second with bursts of new_burst (a
 * gmud_bucket per address). The caller passes the time (milliseconds from
 * any monotonic origin); nothing here reads a clock or touches a socket.
 * The one system call is getrandom(2), at create, for the hash key.
 *
 * Addresses: AF_INET and AF_INET6. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, what a dual-stack socket reports) is the same address as
 * a.b.c.d. Each IPv6 address counts alone (a /128, not a /64). Any other
 * family (AF_UNIX, ...) is admitted and not tracked; so is every address
 * when both limits are off.
 *
 * Memory is bounded: a table of max_tracked addresses, allocated at create;
 * admitting and releasing never allocate. An address is remembered while it
 * carries information: while it holds a connection (if max_per_addr is on)
 * or while its bucket is not full again (if new_per_sec is on); after that
 * it is forgotten, which changes nothing, as a new entry starts full. If
 * every entry still carries information, a new address is refused with
 * GMUD_ERR_ADDR_LIMITED ("table full"): the limiter fails closed rather than
 * forget a limit in force. Keep max_tracked above the server's connection
 * limit, so that connections alone can never fill the table; then filling
 * it takes max_tracked new addresses within the time a bucket takes to
 * refill one token (1000 / new_per_sec ms).
 *
 * Threads: a gmud_iplimit belongs to one thread at a time (the server's
 * loop thread); default_config is pure and may be called from any thread.
 */
#ifndef GMUD_IPLIMIT_H
#define GMUD_IPLIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gmud/error.h"
#include "gmud/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    /* Concurrent connections from one address. Generous on purpose: players
     * behind one NAT (a campus, a LAN party, a mobile carrier's CGNAT) share
     * an address, and 64 players at one table is a lot for a MUD; one host
     * still cannot take the whole server (GMUD_MAX_CONNECTIONS_DEFAULT). */
    GMUD_IPLIMIT_MAX_PER_ADDR_DEFAULT = 64,

    /* New connections from one address (connections/s), and the burst one
     * quiet address may open at once (connections). The burst lets a whole
     * NAT'd group reconnect together after a server restart; the rate stops
     * one address from making the server accept in a tight loop. */
    GMUD_IPLIMIT_NEW_PER_SEC_DEFAULT = 20,
    GMUD_IPLIMIT_NEW_BURST_DEFAULT = 40,

    /* IPv6 addresses are counted by prefix (bits): a /64 is what an ISP
     * hands one customer, and a host holding one can take any of its 2^64
     * addresses, so counting by /128 would limit nothing. IPv4 (and
     * IPv4-mapped IPv6) is always counted per address. */
    GMUD_IPLIMIT_PREFIX6_DEFAULT = 64,

    /* Addresses remembered at once. Above GMUD_MAX_CONNECTIONS_DEFAULT, so
     * that connections alone cannot fill the table. 84 bytes each (entry,
     * index and heap), 1.3 MiB in all, allocated at create. */
    GMUD_IPLIMIT_MAX_TRACKED_DEFAULT = 16384,

    /* Hard ceiling for max_tracked (addresses), some 4 million (a 340 MiB
     * table): far beyond any one server's connections, and it keeps the
     * table's indexes comfortably within 32 bits. */
    GMUD_IPLIMIT_MAX_TRACKED_CEILING = 1 << 22
};

typedef struct gmud_iplimit_config {
    uint32_t max_per_addr; /* concurrent connections per address; GMUD_OFF */
    uint32_t new_per_sec;  /* new connections per address per second; GMUD_OFF */
    uint32_t new_burst;    /* ... at most this many at once; > 0 when the rate is on */
    uint32_t max_tracked;  /* addresses remembered at most; 1..CEILING, always */
    uint32_t prefix6;      /* IPv6: one "address" is this prefix (bits), 1..128. 64 */
    const char *exempt;    /* addresses the limits do not apply to (a monitoring
                              host, a test rig): "192.0.2.7,10.1.0.0/16,[::1]",
                              commas or spaces; copied. NULL: none */
} gmud_iplimit_config;

typedef struct gmud_iplimit gmud_iplimit;

/* Fills cfg with the defaults listed above. */
GMUD_API void gmud_iplimit_default_config(gmud_iplimit_config *cfg);

/* A limiter for cfg (copied), with its whole table allocated. Returns it, or
 * NULL with err filled: GMUD_ERR_INVALID (max_tracked 0 or over the
 * ceiling, prefix6 outside 1..128, or a rate without a burst),
 * GMUD_ERR_NOMEM, or GMUD_ERR_IO if
 * getrandom(2) fails (there is no weaker fallback). A zeroed config is
 * invalid (max_tracked 0), so it cannot switch the limits off by accident. */
GMUD_API gmud_iplimit *gmud_iplimit_create(const gmud_iplimit_config *cfg, gmud_error *err);

/* Frees l; NULL is a no-op. */
GMUD_API void gmud_iplimit_destroy(gmud_iplimit *l);

/* May a new connection from addr proceed at now_ms? Returns 0, and the
 * connection then counts as one of addr's concurrent connections until
 * gmud_iplimit_release(); or, with err saying which limit and the address:
 *   GMUD_ERR_ADDR_LIMITED   addr holds max_per_addr connections already, or
 *                           its new connections are over the rate, or addr
 *                           is new and the table is full (fail closed);
 *   GMUD_ERR_INVALID        addr is NULL.
 * A refused connection takes nothing: it uses up no new-connection token.
 * An address in cfg.exempt is always admitted and never counted. */
GMUD_API int gmud_iplimit_admit(gmud_iplimit *l, const struct sockaddr *addr, uint64_t now_ms,
                       gmud_error *err);

/* A connection admitted from addr has closed. Releasing an address that has
 * no counted connection (never admitted, other family, released already)
 * does nothing. */
GMUD_API void gmud_iplimit_release(gmud_iplimit *l, const struct sockaddr *addr);

/* Addresses remembered now (at most max_tracked): for tests and stats.
 * Forgetting is lazy (during admit), so this may count addresses that could
 * be forgotten already. */
GMUD_API size_t gmud_iplimit_tracked(const gmud_iplimit *l);

#ifdef __cplusplus
}
#endif

#endif
