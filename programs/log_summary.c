/* programs/log_summary.c: repeated log lines summarised. A pair (event,
 * address) writes at most --log-repeat lines in a window of
 * LOG_KEY_WINDOW_MS from its first; the rest are counted, and once the
 * window is over one line says how many. The table is fixed: a new pair
 * takes a free slot or the one seen longest ago. No clock, no lock: the
 * caller passes the time in and holds the writer's lock.
 */
#include "log_writer.h"

#include <string.h>

/* The address part of a peer: "1.2.3.4:5678" -> "1.2.3.4", "[::1]:5678"
 * -> "[::1]"; anything else ("-") whole. */
static size_t host_len(const char *peer)
{
    if (peer[0] == '[') {
        const char *end = strchr(peer, ']');
        return end != NULL ? (size_t)(end - peer) + 1 : strlen(peer);
    }
    const char *colon = strchr(peer, ':');
    if (colon == NULL || strchr(colon + 1, ':') != NULL)
        return strlen(peer);
    return (size_t)(colon - peer);
}

/* Copies src[0..len) into dst[cap], cut to fit. */
static void copy_cut(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* FNV-1a over both names, with a separator so "ab"+"c" is not "a"+"bc". */
static uint32_t key_hash(const log_key *k)
{
    uint32_t h = 2166136261u;
    for (const char *p = k->event; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *p = k->host; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

static void key_set(log_key *k, const char *peer, const char *event)
{
    memset(k, 0, sizeof *k);
    copy_cut(k->event, sizeof k->event, event, strlen(event));
    copy_cut(k->host, sizeof k->host, peer, host_len(peer));
    k->hash = key_hash(k);
    k->used = 1;
}

/* The pair want names, or NULL with *room the slot to give it: a free one,
 * else the one seen longest ago. */
static log_key *key_find(log_summary *s, const log_key *want, log_key **room)
{
    *room = NULL;
    for (size_t i = 0; i < LOG_KEYS; i++) {
        log_key *k = &s->keys[i];
        if (k->used && k->hash == want->hash && strcmp(k->event, want->event) == 0 &&
            strcmp(k->host, want->host) == 0)
            return k;
        if (*room == NULL || ((*room)->used && (!k->used || k->last_ms < (*room)->last_ms)))
            *room = k;
    }
    return NULL;
}

/* k's held-back count, into due (which holds none otherwise). */
static void take_held(log_summary *s, log_key *k, log_due *due)
{
    if (!k->used || k->held == 0)
        return;
    due->level = k->level;
    due->held = k->held;
    memcpy(due->event, k->event, sizeof due->event);
    memcpy(due->host, k->host, sizeof due->host);
    k->held = 0;
    s->pending--;
}

int log_summary_admit(log_summary *s, gmud_log_level level, const char *peer, const char *event,
                      unsigned lines, uint64_t now_ms, log_due *due)
{
    due->held = 0;
    if (level == GMUD_LOG_ERROR || lines == 0)
        return 1;
    log_key want, *room;
    key_set(&want, peer, event);
    log_key *k = key_find(s, &want, &room);
    if (k == NULL) {
        k = room;
        take_held(s, k, due);
        *k = want;
        k->start_ms = now_ms;
    } else if (now_ms - k->start_ms >= LOG_KEY_WINDOW_MS) {
        take_held(s, k, due);
        k->start_ms = now_ms;
        k->shown = 0;
    }
    k->last_ms = now_ms;
    if (k->shown < lines) {
        k->shown++;
        return 1;
    }
    if (k->held++ == 0) {
        s->pending++;
        k->level = level;
    } else if (level < k->level) {
        k->level = level;
    }
    return 0;
}

int log_summary_take(log_summary *s, size_t i, uint64_t now_ms, log_due *due)
{
    log_key *k = &s->keys[i];
    due->held = 0;
    if (k->held == 0 || now_ms - k->start_ms < LOG_KEY_WINDOW_MS)
        return 0;
    take_held(s, k, due);
    return 1;
}
