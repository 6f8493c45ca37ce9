/*
 * conn_api.c - the wharf_conn half of the handler API (wharf.h): sending,
 * closing, pausing, timeouts, data and addresses, and debug mode's
 * wrong-thread check.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

static const char *const close_reason_names[LISTENER_CLOSE_REASONS] = {
    [WHARF_CLOSE_EOF] = "eof",         [WHARF_CLOSE_ERROR] = "error",
    [WHARF_CLOSE_TIMEOUT] = "timeout", [WHARF_CLOSE_HANDLER] = "handler",
    [WHARF_CLOSE_LIMIT] = "limit",     [WHARF_CLOSE_SHUTDOWN] = "shutdown",
    [WHARF_CLOSE_EVICTED] = "evicted",
};

const char *wharf_close_reason_name(enum wharf_close_reason reason)
{
    if ((unsigned)reason < sizeof close_reason_names / sizeof close_reason_names[0])
        return close_reason_names[reason];
    return "unknown";
}

const char *wharf_timeout_name(enum wharf_timeout kind)
{
    switch (kind) {
    case WHARF_TIMEOUT_IDLE: return "idle";
    case WHARF_TIMEOUT_WRITE: return "write";
    case WHARF_TIMEOUT_LIFETIME: return "lifetime";
    case WHARF_TIMEOUT_HANDSHAKE: return "handshake";
    case WHARF_TIMEOUT_RATE: return "rate";
    case WHARF_TIMEOUT_READ_IDLE: return "read_idle";
    case WHARF_TIMEOUT_WRITE_IDLE: return "write_idle";
    }
    return "unknown";
}

_Static_assert(sizeof close_reason_names / sizeof close_reason_names[0] ==
                   LISTENER_CLOSE_REASONS,
               "a name for every enum wharf_close_reason value");

wharf_worker *wharf_conn_worker(const wharf_conn *c)
{
    return c->w;
}

bool wharf_conn_outbound(const wharf_conn *c)
{
    return (c->flags & CONN_OUTBOUND) != 0;
}

/* Debug mode (the config's "debug", or WHARF_DEBUG=1 in the environment). */
static _Atomic bool conn_debug;

void conn_set_debug(bool on)
{
    const char *env = getenv("WHARF_DEBUG");
    atomic_store_explicit(&conn_debug, on || (env && strcmp(env, "1") == 0),
                          memory_order_relaxed);
}

/*
 * In debug mode, refuses (after logging who and where) a call on c made from
 * a thread other than its worker's: the handler has a threading bug that
 * would otherwise corrupt the connection silently.
 */
static bool conn_wrong_thread(const struct wharf_conn *c, const char *call)
{
    if (!atomic_load_explicit(&conn_debug, memory_order_relaxed) || wharf_current_worker() == c->w)
        return false;
    log_write(WHARF_LOG_ERROR, conn_name(c), (int)c->w->id, c->id,
              "debug: %s called from another thread (connection of worker %u, handler \"%s\"); "
              "refused", call, c->w->id, c->l->handler->name);
    return true;
}

/*
 * Whether len more bytes of output may be queued on c: 0, or the error
 * wharf_send returns (a connection over max_output is closed here).
 */
static int conn_send_check(wharf_conn *c, size_t len)
{
    if (c->state >= CONN_CLOSING || (c->flags & CONN_SHUT_WRITE))
        return -EPIPE;
    size_t pending = conn_pending(c);
    size_t max = c->l->cfg->max_output;
    if (pending > max || len > max - pending) {
        log_write(WHARF_LOG_INFO, conn_name(c), (int)c->w->id, c->id,
                  "output cap of %zu bytes reached", max);
        conn_close(c, WHARF_CLOSE_LIMIT);
        return -ENOBUFS;
    }
    return 0;
}

/* After output was queued on c outside the scratch buffer: the output
 * budget (which may close c), and, when c is not the connection whose
 * callback runs, the write at the end of this turn (in its offers check; a
 * send from a timer, after that check, goes out at the next turn's).
 * Returns 0 or -EPIPE (closed). */
static int conn_send_queued(wharf_conn *c, size_t old_held, size_t old_len)
{
    struct wharf_worker *w = c->w;
    conn_io_output_resized(c, old_held); /* may close c: the output budget */
    if (conn_dead(c))
        return -EPIPE;
    if (w->conns.current != c) {
        /* Sent from another connection's callback (or a post, a timer):
         * written at the end of the turn, EPOLLOUT armed only if the
         * socket does not take it all. */
        if (old_len == 0)
            c->last_write_ms = w->loop.now_ms;
        conn_io_schedule_flush(c);
        conn_deadline_arm(c);
    }
    return 0;
}

int wharf_send(wharf_conn *c, const void *data, size_t len)
{
    if (conn_wrong_thread(c, "wharf_send"))
        return -EPERM;
    struct conn_set *set = &c->w->conns;
    int rc = conn_send_check(c, len);
    if (rc < 0)
        return rc;
    if (len == 0)
        return 0;
    if (set->current == c && c->out.len == 0 && (!set->scratch_conn || set->scratch_conn == c)) {
        if (buf_append(&set->scratch, data, len) < 0)
            return -ENOMEM;
        set->scratch_conn = c;
        return 0;
    }
    size_t old_held = conn_out_held(c), old_len = conn_out_len(c);
    if (buf_append(&c->out, data, len) < 0)
        return -ENOMEM;
    return conn_send_queued(c, old_held, old_len);
}

int wharf_send_ref(wharf_conn *c, const void *data, size_t len, void (*release)(void *arg),
                   void *arg)
{
    if (!release)
        return -EINVAL;
    int rc = conn_wrong_thread(c, "wharf_send_ref") ? -EPERM : conn_send_check(c, len);
    if (rc == 0 && len > 0) {
        struct conn_set *set = &c->w->conns;
        size_t copied = c->out.len + (set->scratch_conn == c ? set->scratch.len : 0);
        size_t old_held = conn_out_held(c), old_len = conn_out_len(c);
        rc = refq_push(&c->refs, copied, data, len, release, arg);
        if (rc == 0) {
            rc = conn_send_queued(c, old_held, old_len);
            if (rc < 0) {
                /* Closed by the output budget: nothing of it was written,
                 * and a failed call has released it on return. */
                size_t held = conn_out_held(c);
                refq_drop_last(&c->refs);
                conn_io_output_resized(c, held);
            }
            return rc;
        }
    }
    release(arg);
    return rc;
}

void wharf_close_with(wharf_conn *c, enum wharf_close_reason reason)
{
    if (conn_wrong_thread(c, "wharf_close"))
        return;
    if (c->state >= CONN_CLOSING)
        return;
    if ((unsigned)reason >= LISTENER_CLOSE_REASONS)
        reason = WHARF_CLOSE_HANDLER;
    conn_move(c, CONN_CLOSING);
    c->close_reason = reason;
    if (c->w->conns.current != c)
        conn_io_schedule_offer(c); /* settled by this turn's offers (its own
                                 * callback settles it when it returns) */
}

void wharf_want_drain(wharf_conn *c)
{
    if (conn_wrong_thread(c, "wharf_want_drain") || conn_dead(c))
        return;
    c->flags |= CONN_WANT_DRAIN;
    if (c->w->conns.current != c)
        conn_io_update_events(c);
}

void wharf_shutdown_write(wharf_conn *c)
{
    if (conn_wrong_thread(c, "wharf_shutdown_write") ||
        conn_dead(c) || (c->flags & CONN_SHUT_WRITE))
        return;
    c->flags |= CONN_SHUT_WRITE;
    if (c->w->conns.current != c)
        conn_io_schedule_offer(c);
}

void wharf_close(wharf_conn *c)
{
    wharf_close_with(c, WHARF_CLOSE_HANDLER);
}

void wharf_pause_read(wharf_conn *c)
{
    if (conn_wrong_thread(c, "wharf_pause_read"))
        return;
    c->flags |= CONN_PAUSED_HANDLER;
    if (c->w->conns.current != c)
        conn_io_update_events(c);
}

void wharf_resume_read(wharf_conn *c)
{
    if (conn_wrong_thread(c, "wharf_resume_read") || conn_dead(c))
        return;
    bool was_paused = c->flags & CONN_PAUSED_HANDLER;
    c->flags &= ~(uint32_t)CONN_PAUSED_HANDLER;
    if (c->w->conns.current != c)
        conn_io_update_events(c);
    /* Kept input (and a pending EOF) comes back without waiting for bytes. */
    if (was_paused && (c->in.len > 0 || (c->flags & CONN_PEER_EOF)))
        conn_io_schedule_offer(c);
}

int wharf_set_timeout(wharf_conn *c, enum wharf_timeout kind, uint64_t ms)
{
    if (conn_wrong_thread(c, "wharf_set_timeout"))
        return -EPERM;
    if ((unsigned)kind >= CONN_TIMEOUT_KINDS || kind == WHARF_TIMEOUT_RATE || ms > UINT32_MAX)
        return -EINVAL;
    c->timeout_ms[kind] = (uint32_t)ms;
    if (kind == WHARF_TIMEOUT_IDLE || kind == WHARF_TIMEOUT_READ_IDLE)
        c->last_read_ms = c->w->loop.now_ms;
    else if (kind == WHARF_TIMEOUT_WRITE || kind == WHARF_TIMEOUT_WRITE_IDLE)
        c->last_write_ms = c->w->loop.now_ms;
    if (c->timeout_firing == (int)kind && ms > 0)
        c->timeout_kept = true; /* on_timeout keeps the connection */
    /* A longer timeout must not leave an early timer pending for nothing,
     * and a shorter one must fire on time: re-arm from scratch. */
    loop_timer_disarm(&c->w->loop, &c->timer);
    conn_deadline_arm(c);
    return 0;
}

void wharf_set_data(wharf_conn *c, void *data) { c->data = data; }

void *wharf_get_data(const wharf_conn *c) { return c->data; }

void *wharf_listener_data(const wharf_conn *c) { return c->l->data; }

uint64_t wharf_conn_id(const wharf_conn *c) { return c->id; }

unsigned wharf_conn_worker_index(const wharf_conn *c) { return c->w->id; }

/* The 0.1 name (deprecated in wharf.h), kept exported so that modules built
 * against it still load. */
unsigned wharf_worker_id(const wharf_conn *c) { return wharf_conn_worker_index(c); }

size_t wharf_output_pending(const wharf_conn *c) { return conn_pending(c); }

const struct sockaddr *wharf_peer_addr(const wharf_conn *c, socklen_t *len)
{
    if (len)
        *len = c->peer_len;
    return &c->peer.sa;
}

const struct sockaddr *wharf_local_addr(const wharf_conn *c, socklen_t *len)
{
    /* Looked up on first use: most handlers never ask, and accept() is hot. */
    struct wharf_conn *mc = (struct wharf_conn *)c;
    if (mc->local_len == 0) {
        socklen_t l = sizeof mc->local;
        if (getsockname(mc->watcher.fd, &mc->local.sa, &l) == 0)
            mc->local_len = l;
    }
    if (len)
        *len = mc->local_len;
    return &mc->local.sa;
}

void wharf_conn_log(const wharf_conn *c, enum wharf_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, conn_name(c), (int)c->w->id, c->id, fmt, ap);
    va_end(ap);
}
