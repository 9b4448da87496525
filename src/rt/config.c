/* The defaults of the runtime's configs (from gmud/limits.h), and the
 * checks of gmud_limits. */
#include "gmud/server.h"

void gmud_limits_default_config(gmud_limits *lim)
{
    lim->max_queued = GMUD_MAX_QUEUED_DEFAULT;
    lim->read_high_water = GMUD_READ_HIGH_WATER_DEFAULT;
    lim->read_low_water = GMUD_READ_LOW_WATER_DEFAULT;
    lim->frame_timeout_ms = GMUD_FRAME_TIMEOUT_MS_DEFAULT;
    lim->idle_timeout_ms = GMUD_IDLE_TIMEOUT_MS_DEFAULT;
    lim->send_timeout_ms = GMUD_SEND_TIMEOUT_MS_DEFAULT;
    lim->linger_ms = GMUD_LINGER_MS_DEFAULT;
    lim->sweep_ms = GMUD_SWEEP_MS_DEFAULT;
    lim->max_bad_messages = GMUD_MAX_BAD_MESSAGES_DEFAULT;
    lim->max_connections = GMUD_MAX_CONNECTIONS_DEFAULT;
    lim->msg_rate = GMUD_RATE_MSGS_DEFAULT;
    lim->msg_burst = GMUD_RATE_MSGS_BURST_DEFAULT;
    lim->byte_rate = GMUD_RATE_BYTES_DEFAULT;
    lim->byte_burst = GMUD_RATE_BYTES_BURST_DEFAULT;
    lim->rate_close_ms = GMUD_RATE_CLOSE_AFTER_MS_DEFAULT;
    lim->max_buffered_total = GMUD_MAX_BUFFERED_TOTAL_DEFAULT;
}

void gmud_session_default_config(gmud_session_config *cfg)
{
    cfg->mode = GMUD_SESSION_DEFAULT;
    cfg->carry_on = 0;
    cfg->reply_data = NULL;
    cfg->welcome_timeout_ms = GMUD_WELCOME_TIMEOUT_MS_DEFAULT;
}

static int check_rate(uint32_t rate, uint32_t burst, const char *what, gmud_error *err)
{
    if (rate != 0 && burst == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "%s rate %u needs a positive burst", what, (unsigned)rate);
    return GMUD_OK;
}

int gmud_limits_check(const gmud_limits *lim, gmud_error *err)
{
    if (lim->max_queued == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "max queued bytes must be positive");
    if (lim->read_high_water == 0 || lim->read_low_water >= lim->read_high_water)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "read water marks must satisfy 0 <= low (%zu) < high (%zu)",
                              lim->read_low_water, lim->read_high_water);
    if (lim->frame_timeout_ms == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "frame timeout must be positive");
    if (lim->linger_ms == 0 || lim->sweep_ms == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0,
                              "linger and sweep periods must be positive");
    if (lim->max_bad_messages == 0 || lim->max_bad_messages > 255)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "max bad messages must be 1..255");
    if (lim->max_connections == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "max connections must be positive");
    if (check_rate(lim->msg_rate, lim->msg_burst, "message", err) != GMUD_OK ||
        check_rate(lim->byte_rate, lim->byte_burst, "byte", err) != GMUD_OK)
        return GMUD_ERR_INVALID;
    if (lim->rate_close_ms == 0)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "rate close period must be positive");
    if (lim->rate_policy != GMUD_RATE_SHAPE && lim->rate_policy != GMUD_RATE_DROP)
        return gmud_error_set(err, GMUD_ERR_INVALID, 0, "unknown rate policy %d",
                              (int)lim->rate_policy);
    /* max_buffered_total: any value (GMUD_OFF: no budget). Not tied to
     * max_queued: a client shares these limits and ignores the budget. */
    return GMUD_OK;
}

