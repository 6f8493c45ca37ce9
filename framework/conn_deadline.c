/*
 * conn_deadline.c - a connection's timeouts: one table of kinds, used both
 * to arm the connection's one timer at the earliest deadline and to tell
 * which kind fired.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "callback.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

/* Idle time counts from the last byte received, or from the last write
 * progress if later: a long reply being written does not make the client idle. */
static uint64_t conn_deadline_idle_since(const struct wharf_conn *c)
{
    return c->last_read_ms > c->last_write_ms ? c->last_read_ms : c->last_write_ms;
}

/* The earliest deadline among the timers that apply now, or UINT64_MAX. */
static uint64_t conn_deadline_next(const struct wharf_conn *c)
{
    uint64_t d = UINT64_MAX;
    if (c->lifetime_ms)
        d = c->opened_ms + c->lifetime_ms;
    if (c->handshake_ms && (!c->bytes_seen || (c->flags & CONN_PROXY_WAIT)) &&
        c->handshake_since_ms + c->handshake_ms < d)
        d = c->handshake_since_ms + c->handshake_ms;
    if (c->l->cfg->timeouts.min_rate && c->in.len > 0 &&
        c->rate_since_ms + c->l->cfg->timeouts.min_rate_window_ms < d)
        d = c->rate_since_ms + c->l->cfg->timeouts.min_rate_window_ms;
    if (c->out.len > 0) {
        if (c->write_ms && c->last_write_ms + c->write_ms < d)
            d = c->last_write_ms + c->write_ms;
    } else if (c->idle_ms && conn_deadline_idle_since(c) + c->idle_ms < d) {
        d = conn_deadline_idle_since(c) + c->idle_ms;
    }
    return d;
}

/*
 * Makes sure the timer fires no later than the current deadline.  A timer
 * that would fire early is left alone: it re-arms itself lazily when it
 * fires, so a read costs only a timestamp store, not a heap update.
 */
void conn_deadline_arm(struct wharf_conn *c)
{
    uint64_t d = conn_deadline_next(c);
    if (d == UINT64_MAX) {
        loop_timer_disarm(&c->w->loop, &c->timer);
        return;
    }
    if (!timer_armed(&c->timer) || d < c->timer.deadline_ms)
        if (loop_timer_arm(&c->w->loop, &c->timer, d) < 0)
            conn_close(c, WHARF_CLOSE_ERROR);
}

void conn_deadline_fired(struct timer *t, uint64_t now)
{
    struct wharf_conn *c = (struct wharf_conn *)((char *)t - offsetof(struct wharf_conn, timer));
    enum wharf_timeout kind;
    const struct config_timeouts *to = &c->l->cfg->timeouts;
    if (conn_dead(c))
        return;
    if (to->min_rate && c->in.len > 0 && now >= c->rate_since_ms + to->min_rate_window_ms) {
        /* A window with a message in progress is over: fast enough? */
        uint64_t need = to->min_rate * to->min_rate_window_ms / 1000;
        if (c->rate_bytes < need) {
            kind = WHARF_TIMEOUT_RATE;
            goto fire;
        }
        c->rate_since_ms = now;
        c->rate_bytes = 0;
    }
    if (c->lifetime_ms && now >= c->opened_ms + c->lifetime_ms)
        kind = WHARF_TIMEOUT_LIFETIME;
    else if (c->handshake_ms && (!c->bytes_seen || (c->flags & CONN_PROXY_WAIT)) &&
             now >= c->handshake_since_ms + c->handshake_ms)
        kind = WHARF_TIMEOUT_HANDSHAKE;
    else if (c->out.len > 0 && c->write_ms && now >= c->last_write_ms + c->write_ms)
        kind = WHARF_TIMEOUT_WRITE;
    else if (c->out.len == 0 && c->idle_ms && now >= conn_deadline_idle_since(c) + c->idle_ms)
        kind = WHARF_TIMEOUT_IDLE;
    else {
        conn_deadline_arm(c); /* activity since it was armed: sleep again */
        return;
    }
fire:
    log_write(WHARF_LOG_DEBUG, conn_name(c), (int)c->w->id, c->id, "%s timeout",
              wharf_timeout_name(kind));
    if (c->l->handler->on_timeout && (c->flags & CONN_OPENED))
        CONN_CALL(c, "on_timeout", c->l->handler->on_timeout(c, kind));
    /* A last word from on_timeout gets one non-blocking try. */
    conn_io_flush(c);
    conn_close(c, WHARF_CLOSE_TIMEOUT);
}
