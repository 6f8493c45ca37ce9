/*
 * conn_deadline.c - a connection's timeouts: one table of kinds, used both
 * to arm the connection's one timer at the earliest deadline and to tell
 * which kind fired.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "callback.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

/* While stopping, how often a connection kept only by bytes in the kernel's
 * send queue is looked at again (it closes once they are taken). */
#define CONN_DRAIN_RECHECK_MS 20

/* When timer `kind` of c is due, or UINT64_MAX when it does not apply now. */
typedef uint64_t (*conn_deadline_due)(const struct wharf_conn *c, uint32_t ms);

static uint64_t conn_deadline_rate(const struct wharf_conn *c, uint32_t ms)
{
    (void)ms;
    const struct config_timeouts *to = &c->l->cfg->timeouts;
    return to->min_rate && c->in.len > 0 ? c->rate_since_ms + to->min_rate_window_ms
                                         : UINT64_MAX;
}

static uint64_t conn_deadline_lifetime(const struct wharf_conn *c, uint32_t ms)
{
    return c->opened_ms + ms;
}

static uint64_t conn_deadline_handshake(const struct wharf_conn *c, uint32_t ms)
{
    return !c->bytes_seen || (c->flags & (CONN_PROXY_WAIT | CONN_TLS_HANDSHAKE))
               ? c->handshake_since_ms + ms
               : UINT64_MAX;
}

static uint64_t conn_deadline_write(const struct wharf_conn *c, uint32_t ms)
{
    return conn_out_len(c) > 0 ? c->last_write_ms + ms : UINT64_MAX;
}

/* All idle: from the later of the last byte received and the last write
 * progress (a long reply being written does not make the client idle). */
static uint64_t conn_deadline_idle(const struct wharf_conn *c, uint32_t ms)
{
    if (conn_out_len(c) > 0)
        return UINT64_MAX;
    return (c->last_read_ms > c->last_write_ms ? c->last_read_ms : c->last_write_ms) + ms;
}

static uint64_t conn_deadline_read_idle(const struct wharf_conn *c, uint32_t ms)
{
    return c->last_read_ms + ms;
}

static uint64_t conn_deadline_write_idle(const struct wharf_conn *c, uint32_t ms)
{
    return conn_out_len(c) > 0 ? UINT64_MAX : c->last_write_ms + ms;
}

/* Every timer, in the order one is chosen when several are due. */
static const struct {
    enum wharf_timeout kind;
    conn_deadline_due due;
} conn_deadlines[] = {
    {WHARF_TIMEOUT_RATE, conn_deadline_rate},
    {WHARF_TIMEOUT_LIFETIME, conn_deadline_lifetime},
    {WHARF_TIMEOUT_HANDSHAKE, conn_deadline_handshake},
    {WHARF_TIMEOUT_WRITE, conn_deadline_write},
    {WHARF_TIMEOUT_IDLE, conn_deadline_idle},
    {WHARF_TIMEOUT_READ_IDLE, conn_deadline_read_idle},
    {WHARF_TIMEOUT_WRITE_IDLE, conn_deadline_write_idle},
};
_Static_assert(sizeof conn_deadlines / sizeof conn_deadlines[0] == CONN_TIMEOUT_KINDS,
               "a row for every enum wharf_timeout value");

/* When timer i of the table is due for c, or UINT64_MAX. */
static uint64_t conn_deadline_of(const struct wharf_conn *c, size_t i)
{
    enum wharf_timeout kind = conn_deadlines[i].kind;
    uint32_t ms = c->timeout_ms[kind];
    if (!ms && kind != WHARF_TIMEOUT_RATE)
        return UINT64_MAX;
    return conn_deadlines[i].due(c, ms);
}

/*
 * Makes sure the timer fires no later than the earliest deadline.  A timer
 * that would fire early is left alone: it re-arms itself lazily when it
 * fires, so a read costs only a timestamp store, not a heap update.  A dead
 * connection's timer stays disarmed (wharf_send to another connection gets
 * here after the output budget closed that one inside the send).
 */
void conn_deadline_arm(struct wharf_conn *c)
{
    if (conn_dead(c))
        return;
    uint64_t d = UINT64_MAX;
    for (size_t i = 0; i < CONN_TIMEOUT_KINDS; i++) {
        uint64_t due = conn_deadline_of(c, i);
        if (due < d)
            d = due;
    }
    /* Stopping with wharf's buffers empty: what keeps c open is bytes in the
     * kernel's send queue, whose leaving no event announces.  Look again. */
    if (c->w->phase >= WORKER_DRAINING && c->in.len == 0 && conn_pending(c) == 0 &&
        c->w->loop.now_ms + CONN_DRAIN_RECHECK_MS < d)
        d = c->w->loop.now_ms + CONN_DRAIN_RECHECK_MS;
    if (d == UINT64_MAX) {
        loop_timer_disarm(&c->w->loop, &c->timer);
        return;
    }
    if (!timer_armed(&c->timer) || d < c->timer.deadline_ms)
        if (loop_timer_arm(&c->w->loop, &c->timer, d) < 0)
            conn_close(c, WHARF_CLOSE_ERROR);
}

/* A message in progress met the rate over its window: a new window starts. */
static bool conn_deadline_rate_met(struct wharf_conn *c, uint64_t now)
{
    const struct config_timeouts *to = &c->l->cfg->timeouts;
    if (c->rate_bytes < to->min_rate * to->min_rate_window_ms / 1000)
        return false;
    c->rate_since_ms = now;
    c->rate_bytes = 0;
    return true;
}

/* Tells the handler (on_timeout), then closes c unless on_timeout set the
 * same timer again. */
static void conn_deadline_fire(struct wharf_conn *c, enum wharf_timeout kind)
{
    log_write(WHARF_LOG_DEBUG, conn_name(c), (int)c->w->id, c->id, "%s timeout",
              wharf_timeout_name(kind));
    if ((c->flags & (CONN_TLS_HANDSHAKE | CONN_PROXY_WAIT)) == CONN_TLS_HANDSHAKE) {
        wharf_counter_add(conn_tls_failed_counter(c, LISTENER_TLS_FAIL_TIMEOUT), 1);
        if ((c->flags & CONN_OUTBOUND) &&
            log_due(&c->w->conns.last_tls_log_ms, c->w->loop.now_ms, LOG_RATE_LIMIT_PEER_MS)) {
            char addr[64];
            listener_format_addr(&c->peer.sa, addr, sizeof addr);
            log_write(WHARF_LOG_WARN, conn_name(c), (int)c->w->id, c->id,
                      "outbound TLS handshake with %s failed: no answer within handshake_ms "
                      "(logged at most every %d ms)", addr, LOG_RATE_LIMIT_PEER_MS);
        }
    }
    c->timeout_firing = (int8_t)kind;
    c->timeout_kept = false;
    if (c->l->handler->on_timeout && (c->flags & CONN_OPENED))
        CONN_CALL(c, "on_timeout", c->l->handler->on_timeout(c, kind));
    c->timeout_firing = -1;
    if (c->timeout_kept && !conn_dead(c)) {
        conn_io_settle(c);
        return;
    }
    /* A last word from on_timeout gets one non-blocking try. */
    conn_io_flush(c);
    conn_close(c, WHARF_CLOSE_TIMEOUT);
}

void conn_deadline_fired(struct timer *t, uint64_t now)
{
    struct wharf_conn *c = (struct wharf_conn *)((char *)t - offsetof(struct wharf_conn, timer));
    if (conn_dead(c))
        return;
    /* Stopping: what kept c may have been only bytes in the kernel's send
     * queue, which no event announces leaving. */
    if (c->w->phase >= WORKER_DRAINING && conn_io_settle(c) < 0)
        return;
    for (size_t i = 0; i < CONN_TIMEOUT_KINDS; i++) {
        if (now < conn_deadline_of(c, i))
            continue;
        if (conn_deadlines[i].kind == WHARF_TIMEOUT_RATE && conn_deadline_rate_met(c, now))
            continue;
        conn_deadline_fire(c, conn_deadlines[i].kind);
        return;
    }
    conn_deadline_arm(c); /* activity since it was armed: sleep again */
}
