/* Per-address connection limits. See include/gmud/iplimit.h.
 *
 * Layout, all sized at create: `entries`, one per remembered address, with a
 * free list through the unused ones; `index`, an open-addressing table
 * (linear probing, at most half full) of entry numbers, keyed by a SipHash
 * of the address; `heap`, the idle entries (no connection held) in a
 * min-heap on the time their bucket is full again, so the entry that may be
 * forgotten first is always on top. Entries never move, so the index and
 * the heap can both name them by number.
 */
#include "gmud/iplimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "gmud/ratelimit.h"
#include "rand.h"
#include "siphash.h"

#define NONE UINT32_MAX /* no entry; an entry not in the heap */

typedef struct entry {
    uint8_t addr[16];   /* IPv6, or IPv4 as ::ffff:a.b.c.d */
    gmud_bucket bucket; /* new connections; unused when the rate is off */
    uint64_t full_at;   /* while idle: when the bucket is full again (ms) */
    uint32_t count;     /* connections held; stays 0 when max_per_addr is off */
    uint32_t home;      /* the index slot its hash picks */
    uint32_t link;      /* in use: position in the heap or NONE; free: next free */
} entry;

struct gmud_iplimit {
    gmud_iplimit_config cfg;
    uint64_t key[2];  /* SipHash key, from getrandom(2) */
    entry *entries;   /* cfg.max_tracked */
    uint32_t *index;  /* entry number + 1; 0 is an empty slot */
    uint32_t mask;    /* index slots - 1 (a power of two, minus one) */
    uint32_t *heap;   /* entry numbers of the idle entries */
    uint32_t n_idle;  /* entries in the heap */
    uint32_t used;    /* entries in use: addresses remembered */
    uint32_t free_head;
    cidr_list exempt; /* cfg.exempt, parsed */
};

/* ---- Keyed hash --------------------------------------------------------- */

/* SipHash-1-3 (siphash.h): the index is probed linearly, so an attacker
 * who could choose addresses that hash alike would turn every lookup into
 * a scan of one long run; with a secret key they cannot. On 16 bytes it
 * costs a few nanoseconds, nothing next to the accept(2) it guards. */

/* ---- Addresses ---------------------------------------------------------- */

/* Zeroes the bits of key past the first prefix. */
static void mask_prefix(uint8_t key[16], unsigned prefix)
{
    for (unsigned bit = prefix; bit < 128; bit = (bit | 7) + 1)
        key[bit / 8] &= (uint8_t)(0xff00 >> (bit % 8));
}

/* The 16-byte key of addr: IPv4 goes in as its mapped IPv6 form, so that
 * a.b.c.d and ::ffff:a.b.c.d are one key; other IPv6 addresses are cut to
 * their first prefix6 bits, so that one host's /64 is one key. Returns 0
 * for other families. memcpy rather than a cast: the caller's storage need
 * not be aligned. */
static int addr_key(const struct sockaddr *addr, unsigned prefix6, uint8_t out[16])
{
    sa_family_t family;
    memcpy(&family, (const char *)addr + offsetof(struct sockaddr, sa_family), sizeof family);
    if (family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, addr, sizeof sin);
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(out, mapped, sizeof mapped);
        memcpy(out + 12, &sin.sin_addr, 4);
        return 1;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, addr, sizeof sin6);
        memcpy(out, &sin6.sin6_addr, 16);
        if (!IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr))
            mask_prefix(out, prefix6);
        return 1;
    }
    return 0;
}

/* Mapped addresses are shown as IPv4, as the peer most likely knows them;
 * IPv6 ones with their prefix, when it is not /128. */
enum { ADDR_TEXT = INET6_ADDRSTRLEN + 4 };

static const char *addr_text(const gmud_iplimit *l, const uint8_t key[16], char buf[ADDR_TEXT])
{
    struct in6_addr a;
    memcpy(&a, key, 16);
    if (IN6_IS_ADDR_V4MAPPED(&a))
        return inet_ntop(AF_INET, key + 12, buf, ADDR_TEXT) ? buf : "?";
    if (inet_ntop(AF_INET6, key, buf, ADDR_TEXT) == NULL)
        return "?";
    if (l->cfg.prefix6 < 128)
        snprintf(buf + strlen(buf), 5, "/%u", (unsigned)l->cfg.prefix6);
    return buf;
}

/* ---- The idle heap ------------------------------------------------------ */

static int earlier(const gmud_iplimit *l, uint32_t i, uint32_t j)
{
    return l->entries[l->heap[i]].full_at < l->entries[l->heap[j]].full_at;
}

static void heap_swap(gmud_iplimit *l, uint32_t i, uint32_t j)
{
    uint32_t t = l->heap[i];
    l->heap[i] = l->heap[j];
    l->heap[j] = t;
    l->entries[l->heap[i]].link = i;
    l->entries[l->heap[j]].link = j;
}

/* Restores heap order around position i after its key changed, either way. */
static void heap_fix(gmud_iplimit *l, uint32_t i)
{
    while (i > 0 && earlier(l, i, (i - 1) / 2)) {
        heap_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        uint32_t c = 2 * i + 1, least = i;
        if (c < l->n_idle && earlier(l, c, least))
            least = c;
        if (c + 1 < l->n_idle && earlier(l, c + 1, least))
            least = c + 1;
        if (least == i)
            return;
        heap_swap(l, i, least);
        i = least;
    }
}

static void heap_push(gmud_iplimit *l, uint32_t e)
{
    uint32_t i = l->n_idle++;
    l->heap[i] = e;
    l->entries[e].link = i;
    heap_fix(l, i);
}

static void heap_remove(gmud_iplimit *l, uint32_t e)
{
    uint32_t i = l->entries[e].link, last = --l->n_idle;
    l->entries[e].link = NONE;
    if (i == last)
        return;
    l->heap[i] = l->heap[last];
    l->entries[l->heap[i]].link = i;
    heap_fix(l, i);
}

/* ---- The index ---------------------------------------------------------- */

static uint32_t home_of(const gmud_iplimit *l, const uint8_t key[16])
{
    return (uint32_t)sip13(l->key, key, 16) & l->mask;
}

/* The entry for key, or NONE. The index is never more than half full, so
 * the probe always meets an empty slot. */
static uint32_t find(const gmud_iplimit *l, const uint8_t key[16], uint32_t home)
{
    for (uint32_t s = home;; s = (s + 1) & l->mask) {
        uint32_t v = l->index[s];
        if (v == 0)
            return NONE;
        if (memcmp(l->entries[v - 1].addr, key, 16) == 0)
            return v - 1;
    }
}

/* Empties slot s by backward shift (no tombstones, so probes stay short
 * however many addresses come and go): each later entry of the run moves
 * into the hole unless its home lies cyclically in (hole, its slot]. */
static void index_delete(gmud_iplimit *l, uint32_t s)
{
    uint32_t hole = s;
    l->index[hole] = 0;
    for (uint32_t j = (hole + 1) & l->mask; l->index[j] != 0; j = (j + 1) & l->mask) {
        uint32_t h = l->entries[l->index[j] - 1].home;
        int stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
        if (stays)
            continue;
        l->index[hole] = l->index[j];
        l->index[j] = 0;
        hole = j;
    }
}

static uint32_t entry_new(gmud_iplimit *l, const uint8_t key[16], uint32_t home, uint64_t now_ms)
{
    uint32_t e = l->free_head;
    entry *p = &l->entries[e];
    l->free_head = p->link;
    memcpy(p->addr, key, 16);
    p->count = 0;
    p->home = home;
    p->link = NONE;
    p->full_at = 0;
    if (l->cfg.new_per_sec > 0) /* validated at create: cannot fail */
        (void)gmud_bucket_init(&p->bucket, l->cfg.new_per_sec, l->cfg.new_burst, now_ms);
    uint32_t s = home;
    while (l->index[s] != 0)
        s = (s + 1) & l->mask;
    l->index[s] = e + 1;
    l->used++;
    return e;
}

static void forget(gmud_iplimit *l, uint32_t e)
{
    entry *p = &l->entries[e];
    if (p->link != NONE)
        heap_remove(l, e);
    uint32_t s = p->home;
    while (l->index[s] != e + 1)
        s = (s + 1) & l->mask;
    index_delete(l, s);
    p->link = l->free_head;
    l->free_head = e;
    l->used--;
}

/* ---- Forgetting --------------------------------------------------------- */

/* When b is full again, if nothing takes from it: its last refill plus the
 * missing milli-tokens at rate per ms, rounded up. An idle entry's bucket
 * is only ever refilled (a take means an admitted connection), and a refill
 * leaves this time unchanged, so it is computed once, when the entry goes
 * idle or takes a token. The fields are gmud_bucket's documented ones. */
static uint64_t full_at(const gmud_bucket *b)
{
    uint64_t missing = b->cap - b->level;
    uint64_t ms = missing / b->rate + (missing % b->rate != 0);
    return b->last_ms > UINT64_MAX - ms ? UINT64_MAX : b->last_ms + ms;
}

/* Puts entry e where its state says after its count or bucket changed:
 * holding a connection, out of the heap; idle with the rate on, in the heap
 * at its time; idle with the rate off, it carries nothing: forgotten. */
static void settle(gmud_iplimit *l, uint32_t e)
{
    entry *p = &l->entries[e];
    if (p->count > 0) {
        if (p->link != NONE)
            heap_remove(l, e);
        return;
    }
    if (l->cfg.new_per_sec == 0) {
        forget(l, e);
        return;
    }
    p->full_at = full_at(&p->bucket);
    if (p->link == NONE)
        heap_push(l, e);
    else
        heap_fix(l, p->link);
}

/* Forgets at most budget entries whose bucket is full again by now_ms. Two
 * per admit drain the table faster than one admit can fill it, and keep
 * each call's cost bounded. */
static void forget_full(gmud_iplimit *l, uint64_t now_ms, int budget)
{
    while (budget-- > 0 && l->n_idle > 0 && l->entries[l->heap[0]].full_at <= now_ms)
        forget(l, l->heap[0]);
}

/* ---- The API ------------------------------------------------------------ */

void gmud_iplimit_default_config(gmud_iplimit_config *cfg)
{
    *cfg = (gmud_iplimit_config){
        .max_per_addr = GMUD_IPLIMIT_MAX_PER_ADDR_DEFAULT,
        .new_per_sec = GMUD_IPLIMIT_NEW_PER_SEC_DEFAULT,
        .new_burst = GMUD_IPLIMIT_NEW_BURST_DEFAULT,
        .max_tracked = GMUD_IPLIMIT_MAX_TRACKED_DEFAULT,
        .prefix6 = GMUD_IPLIMIT_PREFIX6_DEFAULT,
    };
}

static int check_config(const gmud_iplimit_config *cfg, gmud_error *err)
{
    if (cfg == NULL)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "iplimit: no config");
    if (cfg->max_tracked == 0 || cfg->max_tracked > GMUD_IPLIMIT_MAX_TRACKED_CEILING)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "iplimit: max_tracked %u is not within 1..%u", cfg->max_tracked,
                              (unsigned)GMUD_IPLIMIT_MAX_TRACKED_CEILING);
    if (cfg->prefix6 == 0 || cfg->prefix6 > 128)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "iplimit: prefix6 %u is not within 1..128", cfg->prefix6);
    gmud_bucket probe; /* the bucket's own checks, for the numbers it will get */
    if (cfg->new_per_sec > 0 && gmud_bucket_init(&probe, cfg->new_per_sec, cfg->new_burst, 0) != 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "iplimit: new_per_sec %u needs a new_burst of at least 1 (got %u)",
                              cfg->new_per_sec, cfg->new_burst);
    return GMUD_OK;
}

gmud_iplimit *gmud_iplimit_create(const gmud_iplimit_config *cfg, gmud_error *err)
{
    if (check_config(cfg, err) != GMUD_OK)
        return NULL;
    gmud_iplimit *l = calloc(1, sizeof *l);
    if (l == NULL)
        goto nomem;
    l->cfg = *cfg;
    l->cfg.exempt = NULL; /* the caller's text: kept parsed, not by pointer */
    gmud_error why;
    if (cidr_list_parse(&l->exempt, cfg->exempt, &why) != GMUD_OK) {
        gmud_error_set(err, GMUD_ERR_INVALID, 0, "iplimit: exempt addresses: %s", why.message);
        goto fail;
    }
    uint32_t slots = 1;
    while (slots < 2 * cfg->max_tracked) /* at most half full; <= 2^23 */
        slots <<= 1;
    l->mask = slots - 1;
    l->entries = calloc(cfg->max_tracked, sizeof *l->entries);
    l->index = calloc(slots, sizeof *l->index);
    l->heap = calloc(cfg->max_tracked, sizeof *l->heap);
    if (l->entries == NULL || l->index == NULL || l->heap == NULL)
        goto nomem;
    for (uint32_t i = 0; i < cfg->max_tracked; i++)
        l->entries[i].link = i + 1 < cfg->max_tracked ? i + 1 : NONE;
    l->free_head = 0;
    uint8_t seed[16];
    if (rand_bytes(seed, sizeof seed, err) != GMUD_OK)
        goto fail;
    sip_key(l->key, seed);
    return l;
nomem:
    gmud_error_set(err, GMUD_ERR_NOMEM, 0, "iplimit: out of memory for %u addresses",
                   cfg->max_tracked);
fail:
    gmud_iplimit_destroy(l);
    return NULL;
}

void gmud_iplimit_destroy(gmud_iplimit *l)
{
    if (l == NULL)
        return;
    free(l->entries);
    free(l->index);
    free(l->heap);
    free(l);
}

static int refuse_new(gmud_iplimit *l, const uint8_t key[16], gmud_error *err)
{
    char text[ADDR_TEXT];
    return gmud_error_set(err, GMUD_ERR_ADDR_LIMITED, 0,
                          "address table full: all %u addresses hold connections or connected "
                          "recently; refusing %s",
                          l->cfg.max_tracked, addr_text(l, key, text));
}

int gmud_iplimit_admit(gmud_iplimit *l, const struct sockaddr *addr, uint64_t now_ms,
                       gmud_error *err)
{
    uint8_t key[16];
    char text[ADDR_TEXT];
    if (addr == NULL)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "iplimit: no address");
    if (cidr_list_match(&l->exempt, addr))
        return GMUD_OK; /* exempt: not counted, so never released */
    if (!addr_key(addr, l->cfg.prefix6, key) ||
        (l->cfg.max_per_addr == 0 && l->cfg.new_per_sec == 0))
        return GMUD_OK;
    forget_full(l, now_ms, 2);
    uint32_t home = home_of(l, key), e = find(l, key, home);
    if (e == NONE) {
        /* Full after forget_full: it forgot nothing, so the heap's top (the
         * earliest) is not due and no entry may be forgotten: fail closed. */
        if (l->used == l->cfg.max_tracked)
            return refuse_new(l, key, err);
        /* A new entry's bucket is full and its count 0: both checks below
         * would pass, so it is admitted without them. */
        e = entry_new(l, key, home, now_ms);
        if (l->cfg.new_per_sec > 0)
            (void)gmud_bucket_take(&l->entries[e].bucket, 1, now_ms);
    } else {
        entry *p = &l->entries[e];
        /* Concurrency first: a connection refused for it takes no token. */
        if (l->cfg.max_per_addr > 0 && p->count >= l->cfg.max_per_addr)
            return gmud_error_set(err, GMUD_ERR_ADDR_LIMITED, 0,
                                  "%u connection%s from %s already (limit %u)", p->count,
                                  p->count == 1 ? "" : "s", addr_text(l, key, text),
                                  l->cfg.max_per_addr);
        if (l->cfg.new_per_sec > 0 && !gmud_bucket_take(&p->bucket, 1, now_ms))
            return gmud_error_set(err, GMUD_ERR_ADDR_LIMITED, 0,
                                  "new connections from %s over %u a second (burst %u)",
                                  addr_text(l, key, text), l->cfg.new_per_sec, l->cfg.new_burst);
    }
    if (l->cfg.max_per_addr > 0)
        l->entries[e].count++;
    settle(l, e);
    return GMUD_OK;
}

void gmud_iplimit_release(gmud_iplimit *l, const struct sockaddr *addr)
{
    uint8_t key[16];
    /* With max_per_addr off no count is kept: nothing to release. */
    if (addr == NULL || l->cfg.max_per_addr == 0 || cidr_list_match(&l->exempt, addr) ||
        !addr_key(addr, l->cfg.prefix6, key))
        return;
    uint32_t e = find(l, key, home_of(l, key));
    if (e == NONE || l->entries[e].count == 0)
        return;
    l->entries[e].count--;
    settle(l, e);
}

size_t gmud_iplimit_tracked(const gmud_iplimit *l)
{
    return l->used;
}
