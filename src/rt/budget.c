/* The server's buffer budget (gmud_limits.max_buffered_total): the bytes
 * all its connections hold together, queued output and partial input
 * frames alike, kept as a running total (stats.buffered_total) where those
 * amounts change (input held for the rates too), and the pass that closes the connections holding the
 * most once the total is over it. Each connection alone is bounded by
 * max_queued; this bounds them together, so that many connections cannot
 * hold max_queued each. */
#include "conn.h"

/* Victims one pass may close: a pass is one walk over the connections
 * keeping the largest this many, so its cost is bounded whatever the
 * attack; a total still over the budget after them waits for a tenth of
 * the budget more, or the next sweep. */
enum { BUDGET_VICTIMS = 32 };

void conn_recount(gmud_conn *conn)
{
    size_t held = 0;
    if (conn->state != CONN_CLOSED)
        held = conn_queued_bytes(conn) + gmud_frame_decoder_pending(conn->dec) +
               conn_held_input(conn);
    conn_hold(conn, held);
}

/* Puts c among top[0..*n), largest first, if it holds more than the least
 * of them (or there is room). */
static void keep_largest(gmud_conn **top, size_t *n, gmud_conn *c)
{
    if (*n == BUDGET_VICTIMS && c->held <= top[BUDGET_VICTIMS - 1]->held)
        return;
    size_t i = *n < BUDGET_VICTIMS ? (*n)++ : BUDGET_VICTIMS - 1;
    for (; i > 0 && top[i - 1]->held < c->held; i--)
        top[i] = top[i - 1];
    top[i] = c;
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

void rt_budget_pass(rt_ctx *rt)
{
    size_t budget = rt->limits.max_buffered_total;
    uint64_t low = budget - budget / 10; /* not one close per message */
    gmud_conn *top[BUDGET_VICTIMS];
    size_t n = 0;
    /* Closed connections count nothing (held 0); closing ones still hold
     * what they are flushing, and may be chosen. */
    for (gmud_conn *c = rt->conns; c != NULL; c = c->next)
        if (c->held > 0)
            keep_largest(top, &n, c);
    for (size_t i = 0; i < n && rt->stats.buffered_total > low; i++)
        close_victim(top[i], budget);
    uint64_t total = rt->stats.buffered_total;
    rt->budget_trip = total <= budget ? budget : total + budget / 10;
}
