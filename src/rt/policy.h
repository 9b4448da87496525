/* Internal: the runtime's decisions about a connection's traffic (policy.c):
 * sessions, lecture replies, rate limits, error packets, config checks.
 * This is what the sans-I/O protocol engine is to take over (issue 9), for
 * the event runtime and the blocking client alike. The two checks every
 * message passes are inline here: they run once a message on the read path. */
#ifndef GMUD_RT_POLICY_H
#define GMUD_RT_POLICY_H

#include "conn.h"

/* Client, a session mode: the first packet, which must be the welcome (or
 * the server's refusal); then the application hears of the connection. */
void policy_take_welcome(gmud_conn *conn, gmud_slice msg);

/* A packet failed a session check: security event, on_reject, then (unless
 * the lecture's carry-on applies) error packet and close. */
void policy_session_reject(gmud_conn *conn, const gmud_error *e);

/* Mode on: the header at msg did not match the next packet: says why. */
void policy_header_refused(gmud_conn *conn, gmud_slice msg);

/* Server, lecture mode: the reply's fields against what was sent; 1 if it
 * may be delivered. */
int policy_check_reply(gmud_conn *conn, const json_t *json);

/* Client, lecture mode: the reply to the data packet just delivered. */
void policy_send_reply(gmud_conn *conn);

/* A message the buckets could not pay for: counted, a warning at most once
 * a period, the close once over the limit for long. */
void policy_rate_refused(gmud_conn *conn, uint64_t now);

/* Mode on: checks and strips the session header. 1 if msg may go on.
 * Accepted (committed) before the payload is parsed: a packet that passed
 * the check is the peer's next one whatever it holds, and the stream stays
 * in step if its JSON is then refused. */
static inline int policy_open_on(gmud_conn *conn, gmud_slice *msg)
{
    if (!gmud_session_header_accept(&conn->sess, msg->data, msg->len)) {
        policy_header_refused(conn, *msg);
        return 0;
    }
    msg->data += GMUD_SESSION_HEADER_SIZE;
    msg->len -= GMUD_SESSION_HEADER_SIZE;
    return 1;
}

/* 1 if the connection's buckets pay for a message of len bytes. In lecture
 * mode the server paces its client (one reply per packet it sent, and a
 * reply beyond those closes the connection), so dropping a reply would only
 * stall the exchange: no limits there. */
static inline int policy_rate_allows(gmud_conn *conn, size_t len)
{
    const gmud_limits *lim = &conn->rt->limits;
    if ((lim->msg_rate == 0 && lim->byte_rate == 0) ||
        conn->rt->session.mode == GMUD_SESSION_LECTURE)
        return 1;
    uint64_t now = uv_now(conn->rt->loop);
    int ok;
    if (lim->msg_rate != 0 && lim->byte_rate != 0)
        ok = gmud_bucket_take_both(&conn->msg_bucket, 1, &conn->byte_bucket, len, now);
    else if (lim->msg_rate != 0)
        ok = gmud_bucket_take(&conn->msg_bucket, 1, now);
    else
        ok = gmud_bucket_take(&conn->byte_bucket, len, now);
    if (!ok)
        policy_rate_refused(conn, now);
    return ok;
}

#endif
