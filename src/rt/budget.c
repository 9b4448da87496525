/* The server's buffer budget (gmud_limits.max_buffered_total): the bytes
 * all its connections hold together, queued output and partial input
 * frames alike, kept as a running total (stats.buffered_total) where those
 * amounts change (input held for the rates too), and the pass that closes the connections holding the
 * most once the total is over it. Each connection alone is bounded by
 * max_queued; this bounds them together, so that many connections cannot
 * hold max_queued each. */
#include "conn.h"

/* A pass walks the connections twice, whatever the attack: once to
 * learn how the total is spread over size classes (powers of two), once to
 * close, largest class first, just enough to bring the total under 90% of
 * the budget. So one pass always gets under it, and the next one waits for
 * a tenth of the budget to be filled again: the walks' cost, O(connections),
 * is paid once per max_buffered_total / 10 bytes read or queued, not once
 * per message. Within a class (holders within a factor of two of each
 * other) the connections are closed in list order. */
enum { BUDGET_CLASSES = 33 };

static unsigned size_class(uint32_t held)
{
    return held == 0 ? 0 : 32u - (unsigned)__builtin_clz(held);
}

void conn_recount(gmud_conn *conn)
{
    size_t held = 0;
    if (conn->state != CONN_CLOSED)
        held = conn_queued_bytes(conn) + gmud_frame_decoder_pending(conn->dec) +
               conn_held_input(conn);
    conn_hold(conn, held);
}

/* Closed at once: what it holds is what the server cannot afford, and its
 * bytes leave the total now (conn_close_now). */
static void close_victim(gmud_conn *conn, size_t budget)
{
    rt_ctx *rt = conn->rt;
    gmud_error e;
    gmud_error_set(&e, GMUD_ERR_SLOW_CONSUMER, 0,
                   "server buffer budget of %zu bytes exceeded: this connection held %u",
                   budget, (unsigned)conn->held);
    rt_logf(rt, GMUD_LOG_WARN, conn->peer, "reject", "slow consumer: %s", e.message);
    rt->stats.budget_closes++;
    conn_close_now(conn, GMUD_CLOSE_SLOW_CONSUMER, &e);
}

/* The class that holders at and above it must give up to free need
 * bytes; *rest is what that class itself must give (the classes above it
 * give all). */
static unsigned victim_class(const uint64_t *sum, uint64_t need, uint64_t *rest)
{
    unsigned k = BUDGET_CLASSES - 1;
    for (; k > 1 && sum[k] < need; k--)
        need -= sum[k];
    *rest = need;
    return k;
}

void rt_budget_pass(rt_ctx *rt)
{
    size_t budget = rt->limits.max_buffered_total;
    uint64_t low = budget - budget / 10; /* not one close per message */
    if (rt->stats.buffered_total > low) {
        uint64_t sum[BUDGET_CLASSES] = {0};
        /* Closed connections count nothing (held 0); closing ones still
         * hold what they are flushing, and may be chosen. */
        for (gmud_conn *c = rt->conns; c != NULL; c = c->next)
            sum[size_class(c->held)] += c->held;
        uint64_t rest;
        unsigned k = victim_class(sum, rt->stats.buffered_total - low, &rest);
        for (gmud_conn *c = rt->conns; c != NULL; c = c->next) {
            unsigned ck = size_class(c->held);
            if (ck < k || (ck == k && rest == 0))
                continue;
            if (ck == k)
                rest -= rest < c->held ? rest : c->held;
            close_victim(c, budget);
        }
    }
    uint64_t total = rt->stats.buffered_total;
    rt->budget_trip = total <= budget ? budget : total + budget / 10;
}
