/*
 * conn.c - TCP connections: reading, writing, watermarks, timeouts, teardown,
 * and the wharf_conn half of the handler API.
 *
 * Everything here runs on the worker that owns the connection.  The rhythm of
 * one event is: read into the worker's shared buffer -> on_data -> "settle"
 * (write what the callback queued, apply watermarks, update the epoll mask,
 * arm the timer).  A close, from wherever it comes, only marks the
 * connection DEAD and queues it (conn_close); the loop's closing phase at the
 * end of the turn runs on_close and frees it (conn_teardown), so no code here
 * or in a handler ever holds a connection that was freed under it, and no
 * callback of a connection runs after its on_close.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admission.h"
#include "cidr.h"
#include "conn.h"
#include "callback.h"
#include "crash.h"
#include "generation.h"
#include "listener.h"
#include "log.h"
#include "proxy.h"
#include "worker.h"

/* Bytes read per recv() once a connection keeps unconsumed input. */
#define CONN_READ_CHUNK 16384
/* How often one event may call on_drain before yielding to other connections. */
#define CONN_MAX_DRAIN_ROUNDS 8
/* The scratch buffer is released past this size once flushed. */
#define SCRATCH_KEEP_MAX (1u << 20)
/* The worker's shared read buffer. */
#define CONN_READ_BUFFER (64 * 1024)
/* How often one event may offer kept input again before yielding. */
#define CONN_MAX_OFFERS 16
/* Output with no write progress for this long is "stalled": the output
 * budget closes only those, the longest-waiting first. */
#define CONN_STALL_MS 100
/* How long a PROXY header may take when handshake_ms is not set. */
#define CONN_PROXY_HANDSHAKE_MS 10000

/*
 * Brackets a handler callback on c: c is "current" meanwhile (its sends go
 * to the scratch buffer), and the crash report names the callback.
 */
#define CONN_CALL(c, what, call)                                                           \
    do {                                                                                   \
        struct conn_set *set_ = &(c)->w->conns;                                            \
        struct wharf_conn *prev_ = set_->current;                                          \
        set_->current = (c);                                                               \
        CALLBACK_RUN(what, (c)->l, (int)(c)->w->id, (c)->id, call);                        \
        set_->current = prev_;                                                             \
    } while (0)

/* The legal moves between states (conn.h has the picture). */
static const bool conn_moves[CONN_DEAD + 1][CONN_DEAD + 1] = {
    [CONN_PENDING] = {[CONN_OPEN] = true, [CONN_CLOSING] = true, [CONN_DEAD] = true},
    [CONN_OPEN] = {[CONN_CLOSING] = true, [CONN_DEAD] = true},
    [CONN_CLOSING] = {[CONN_DEAD] = true},
};

/* Moves c to state `to`; an illegal move is a bug in this file: logged,
 * and refused. */
static bool conn_move(struct wharf_conn *c, enum conn_state to)
{
    if (!conn_moves[c->state][to]) {
        log_write(WHARF_LOG_ERROR, c->l->cfg->name, (int)c->w->id, c->id,
                  "internal: illegal connection state change %d -> %d", (int)c->state, (int)to);
        return false;
    }
    c->state = to;
    return true;
}

static _Atomic uint64_t next_conn_id;

static const char *const close_reason_names[LISTENER_CLOSE_REASONS] = {
    [WHARF_CLOSE_EOF] = "eof",         [WHARF_CLOSE_ERROR] = "error",
    [WHARF_CLOSE_TIMEOUT] = "timeout", [WHARF_CLOSE_HANDLER] = "handler",
    [WHARF_CLOSE_LIMIT] = "limit",     [WHARF_CLOSE_SHUTDOWN] = "shutdown",
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
    }
    return "unknown";
}

_Static_assert(sizeof close_reason_names / sizeof close_reason_names[0] ==
                   LISTENER_CLOSE_REASONS,
               "a name for every enum wharf_close_reason value");

static struct listener_counters *conn_stats(const struct wharf_conn *c)
{
    return listener_counters(c->l, c->w->id);
}

static const char *conn_name(const struct wharf_conn *c)
{
    return c->l->cfg->name;
}

static size_t conn_pending(const struct wharf_conn *c)
{
    return c->out.len + (c->w->conns.scratch_conn == c ? c->w->conns.scratch.len : 0);
}

/* ---- timers ---------------------------------------------------------------- */

/* Idle time counts from the last byte received, or from the last write
 * progress if later: a long reply being written does not make the client idle. */
static uint64_t conn_idle_since(const struct wharf_conn *c)
{
    return c->last_read_ms > c->last_write_ms ? c->last_read_ms : c->last_write_ms;
}

/* The earliest deadline among the timers that apply now, or UINT64_MAX. */
static uint64_t conn_deadline(const struct wharf_conn *c)
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
    } else if (c->idle_ms && conn_idle_since(c) + c->idle_ms < d) {
        d = conn_idle_since(c) + c->idle_ms;
    }
    return d;
}

/*
 * Makes sure the timer fires no later than the current deadline.  A timer
 * that would fire early is left alone: it re-arms itself lazily when it
 * fires, so a read costs only a timestamp store, not a heap update.
 */
static void conn_arm_timer(struct wharf_conn *c)
{
    uint64_t d = conn_deadline(c);
    if (d == UINT64_MAX) {
        loop_timer_disarm(&c->w->loop, &c->timer);
        return;
    }
    if (!timer_armed(&c->timer) || d < c->timer.deadline_ms)
        if (loop_timer_arm(&c->w->loop, &c->timer, d) < 0)
            conn_close(c, WHARF_CLOSE_ERROR);
}

static int conn_flush(struct wharf_conn *c);
static void conn_schedule_offer(struct wharf_conn *c);
static void conn_over_budget(struct wharf_worker *w);
static int conn_offer(struct wharf_conn *c);
static int conn_proxy_header(struct wharf_conn *c);

static void conn_timer_fired(struct timer *t, uint64_t now)
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
    else if (c->out.len == 0 && c->idle_ms && now >= conn_idle_since(c) + c->idle_ms)
        kind = WHARF_TIMEOUT_IDLE;
    else {
        conn_arm_timer(c); /* activity since it was armed: sleep again */
        return;
    }
fire:
    log_write(WHARF_LOG_DEBUG, conn_name(c), (int)c->w->id, c->id, "%s timeout",
              wharf_timeout_name(kind));
    if (c->l->handler->on_timeout && (c->flags & CONN_OPENED))
        CONN_CALL(c, "on_timeout", c->l->handler->on_timeout(c, kind));
    /* A last word from on_timeout gets one non-blocking try. */
    conn_flush(c);
    conn_close(c, WHARF_CLOSE_TIMEOUT);
}

/* ---- epoll mask -------------------------------------------------------------- */

static int conn_wants_input(const struct wharf_conn *c)
{
    return c->state <= CONN_OPEN &&
           !(c->flags & (CONN_PAUSED_HANDLER | CONN_PAUSED_OUTPUT | CONN_PEER_EOF | CONN_HELD));
}

static void conn_update_events(struct wharf_conn *c)
{
    uint32_t want = 0;
    if (conn_wants_input(c))
        want |= LOOP_IN;
    if (c->out.len > 0 || (c->flags & (CONN_PAUSED_OUTPUT | CONN_WANT_DRAIN)))
        want |= LOOP_OUT;
    int rc = loop_modify(&c->w->loop, &c->watcher, want);
    if (rc < 0) {
        log_write(WHARF_LOG_WARN, conn_name(c), (int)c->w->id, c->id, "epoll_ctl: %s",
                  strerror(-rc));
        conn_close(c, WHARF_CLOSE_ERROR);
    }
}

/* Nothing in flight: no unconsumed input, no pending output. */
static bool conn_is_idle(const struct wharf_conn *c)
{
    return c->in.len == 0 && conn_pending(c) == 0;
}

/* ---- output ------------------------------------------------------------------ */

/* Writes as much of p[0..len) as the socket takes.  Returns bytes written, or
 * -1 on a socket error (errno set; EAGAIN is not an error). */
static ssize_t conn_write(struct wharf_conn *c, const char *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(c->watcher.fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    if (done > 0) {
        c->last_write_ms = c->w->loop.now_ms;
        c->bytes_out += done;
        STAT_ADD(conn_stats(c)->bytes_out, done);
    }
    return (ssize_t)done;
}

/* Adjusts the output_buffered gauge after c->out's allocation changed. */
static void conn_output_resized(struct wharf_conn *c, size_t old_cap)
{
    if (c->out.cap == old_cap)
        return;
    STAT_ADD(conn_stats(c)->output_buffered, (uint64_t)c->out.cap - (uint64_t)old_cap);
    if (admission_output_add(c->w->admission, (ptrdiff_t)c->out.cap - (ptrdiff_t)old_cap) &&
        c->out.cap > old_cap)
        conn_over_budget(c->w);
}

/* Whether a is a worse holder of output than b (NULL): output waiting
 * longest for any write progress first, then the most held. */
static bool conn_worse(const struct wharf_conn *a, const struct wharf_conn *b)
{
    if (!b)
        return true;
    bool a_waits = a->out.len > 0, b_waits = b->out.len > 0;
    if (a_waits != b_waits)
        return a_waits;
    if (a_waits && a->last_write_ms != b->last_write_ms)
        return a->last_write_ms < b->last_write_ms;
    return a->out.cap > b->out.cap;
}

static void conn_on_budget_post(void *arg, void *payload, bool cancelled);

/*
 * The server's output memory is over its budget (output_budget): closes
 * (reason "limit") this worker's connections whose output has waited
 * longest for any write progress, among those stalled for CONN_STALL_MS,
 * until the total would be back under the budget.  A reader that keeps up
 * is written to every turn and so is never chosen, however much it holds
 * for a moment.  When the total is still over (nothing here is stalled
 * yet, or the output is held on other workers), it looks again in
 * CONN_STALL_MS and asks the other workers to look too.  Runs when this
 * worker's output grows over the budget, on that timer, and on a sibling's
 * request.
 */
static void conn_over_budget(struct wharf_worker *w)
{
    struct conn_set *set = &w->conns;
    size_t budget = admission_output_budget(w->admission);
    size_t total = admission_output_total(w->admission), freed = 0;
    uint64_t now = w->loop.now_ms;
    if (w->phase >= WORKER_CLOSING)
        return; /* everything closes anyway */
    while (budget && total > budget + freed) {
        struct wharf_conn *worst = NULL;
        for (struct wharf_conn *c = set->head; c; c = c->next)
            if (!conn_dead(c) && c->out.len > 0 && now - c->last_write_ms >= CONN_STALL_MS &&
                conn_worse(c, worst))
                worst = c;
        if (!worst)
            break;
        if (log_due(&set->last_budget_log_ms, now, 10000))
            log_write(WHARF_LOG_WARN, conn_name(worst), (int)w->id, worst->id,
                      "output budget of %zu bytes exceeded: closing the connection whose output "
                      "waited longest (%zu bytes held, nothing written for %llu ms; logged at "
                      "most every 10 s)",
                      budget, worst->out.cap, (unsigned long long)(now - worst->last_write_ms));
        freed += worst->out.cap;
        conn_close(worst, WHARF_CLOSE_LIMIT);
    }
    if (!budget || total <= budget + freed || timer_armed(&set->budget_timer))
        return;
    if (loop_timer_arm(&w->loop, &set->budget_timer, now + CONN_STALL_MS) < 0)
        return;
    for (unsigned i = 0; w->siblings && i < w->nworkers; i++)
        if (&w->siblings[i] != w)
            loop_post(&w->siblings[i].loop, conn_on_budget_post, &w->siblings[i], NULL, 0);
}

static void conn_on_budget_timer(struct timer *t, uint64_t now)
{
    (void)now;
    struct conn_set *set = (struct conn_set *)((char *)t - offsetof(struct conn_set, budget_timer));
    conn_over_budget((struct wharf_worker *)((char *)set - offsetof(struct wharf_worker, conns)));
}

static void conn_on_budget_post(void *arg, void *payload, bool cancelled)
{
    (void)payload;
    if (!cancelled)
        conn_over_budget(arg);
}

/*
 * Writes pending output: first the scratch buffer (output of the current
 * callback, when c->out was empty), keeping what the socket refused in
 * c->out; then c->out.  Returns 0, or -1 when c is dead (a write error, or
 * the output budget chose it).
 */
static int conn_flush(struct wharf_conn *c)
{
    struct wharf_worker *w = c->w;
    struct conn_set *set = &w->conns;
    if (conn_dead(c))
        return -1;
    size_t old_cap = c->out.cap;
    int was_pending = c->out.len > 0;
    if (set->scratch_conn == c) {
        ssize_t n = conn_write(c, buf_head(&set->scratch), set->scratch.len);
        int failed = n < 0;
        if (!failed && (size_t)n < set->scratch.len &&
            buf_append(&c->out, buf_head(&set->scratch) + n, set->scratch.len - (size_t)n) < 0)
            failed = 1, errno = ENOMEM;
        set->scratch_conn = NULL;
        buf_consume(&set->scratch, set->scratch.len);
        if (set->scratch.cap > SCRATCH_KEEP_MAX)
            buf_free(&set->scratch);
        if (failed)
            goto error;
    } else if (c->out.len > 0) {
        ssize_t n = conn_write(c, buf_head(&c->out), c->out.len);
        if (n < 0)
            goto error;
        buf_consume(&c->out, (size_t)n);
    }
    if (c->out.len == 0) {
        buf_free(&c->out);
        if ((c->flags & CONN_WAIT_WRITTEN) && c->in.len > 0) {
            c->flags &= ~(uint32_t)CONN_WAIT_WRITTEN;
            conn_schedule_offer(c);
        }
    } else if (!was_pending)
        c->last_write_ms = w->loop.now_ms; /* the write timer starts now */
    conn_output_resized(c, old_cap); /* may close c (the output budget) */
    return conn_dead(c) ? -1 : 0;

error:
    log_write(WHARF_LOG_DEBUG, conn_name(c), (int)w->id, c->id, "write: %s", strerror(errno));
    conn_close(c, WHARF_CLOSE_ERROR);
    conn_output_resized(c, old_cap);
    return -1;
}

/*
 * After a callback or an event: writes output, closes a CLOSING connection
 * whose output is out, applies the watermarks (calling on_drain when output
 * falls below the low mark after having passed the high mark), updates the
 * epoll mask and the timer.  Returns 0, or -1 if c is dead.
 */
static int conn_settle(struct wharf_conn *c)
{
    const struct config_listener *cfg = c->l->cfg;
    bool drained_any = false;
    for (int round = 0;; round++) {
        if (conn_flush(c) < 0)
            return -1;
        if (c->state == CONN_CLOSING && c->out.len == 0 && !(c->flags & CONN_CONNECTING)) {
            conn_close(c, c->close_reason);
            return -1;
        }
        if ((c->flags & CONN_SHUT_WRITE) && c->out.len == 0 && !(c->flags & CONN_SHUT_DONE) &&
            !(c->flags & CONN_CONNECTING)) {
            c->flags |= CONN_SHUT_DONE;
            shutdown(c->watcher.fd, SHUT_WR); /* our side is done: the peer sees EOF */
        }
        int drained = 0;
        if (c->out.len > cfg->high_watermark) {
            c->flags |= CONN_PAUSED_OUTPUT;
        } else if ((c->flags & (CONN_PAUSED_OUTPUT | CONN_WANT_DRAIN)) &&
                   c->out.len < cfg->low_watermark && round < CONN_MAX_DRAIN_ROUNDS) {
            /* Past the round limit the connection stays paused; the epoll
             * mask asks for EPOLLOUT, so the drain comes next turn. */
            c->flags &= ~(uint32_t)(CONN_PAUSED_OUTPUT | CONN_WANT_DRAIN);
            drained_any = true;
            drained = c->l->handler->on_drain != NULL;
        }
        if (!drained)
            break;
        CONN_CALL(c, "on_drain", c->l->handler->on_drain(c));
        if (conn_dead(c))
            return -1;
    }
    if (drained_any && c->in.len > 0)
        conn_schedule_offer(c); /* kept input comes back after on_drain */
    if (c->w->phase >= WORKER_DRAINING && conn_is_idle(c)) {
        /* Shutting down and nothing in flight: no reason to wait. */
        conn_close(c, WHARF_CLOSE_SHUTDOWN);
        return -1;
    }
    conn_update_events(c);
    if (conn_dead(c))
        return -1;
    conn_arm_timer(c);
    return conn_dead(c) ? -1 : 0;
}

/* ---- input ------------------------------------------------------------------- */

/* Whether on_data (and on_eof) may be called now. */
static bool conn_can_deliver(const struct wharf_conn *c)
{
    return c->state == CONN_OPEN &&
           !(c->flags & (CONN_PAUSED_HANDLER | CONN_PAUSED_OUTPUT | CONN_HELD | CONN_PROXY_WAIT));
}

/*
 * Calls on_data.  Returns the bytes consumed, or CONN_BAD_RETURN (after
 * logging and closing) when the handler claimed more than it was given.
 */
#define CONN_BAD_RETURN ((size_t)-1)
static size_t conn_call_data(struct wharf_conn *c, const char *data, size_t len)
{
    size_t used;
    CONN_CALL(c, "on_data", used = c->l->handler->on_data(c, data, len));
    if (used > len) {
        log_write(WHARF_LOG_ERROR, conn_name(c), (int)c->w->id, c->id,
                  "handler \"%s\": on_data returned %zu for %zu bytes; closing",
                  c->l->handler->name, used, len);
        conn_close(c, WHARF_CLOSE_ERROR);
        return CONN_BAD_RETURN;
    }
    return used;
}

/* Asks for conn_offer on this loop turn's check (or the next turn's). */
static void conn_schedule_offer(struct wharf_conn *c)
{
    struct conn_set *set = &c->w->conns;
    if ((c->flags & CONN_OFFER_PENDING) || conn_dead(c))
        return;
    c->flags |= CONN_OFFER_PENDING;
    c->offer_next = set->offers;
    set->offers = c;
    if (!set->offers_busy) {
        set->offers_busy = true;
        loop_set_busy(&c->w->loop, 1);
    }
}

static void conn_unschedule_offer(struct wharf_conn *c)
{
    if (!(c->flags & CONN_OFFER_PENDING))
        return;
    c->flags &= ~(uint32_t)CONN_OFFER_PENDING;
    for (struct wharf_conn **p = &c->w->conns.offers; *p; p = &(*p)->offer_next)
        if (*p == c) {
            *p = c->offer_next;
            return;
        }
}

/*
 * Offers the kept input to on_data again while the handler consumes some of
 * it: at most CONN_MAX_OFFERS calls, then the rest waits for the next loop
 * turn (so one connection cannot starve the others).  After the peer's EOF
 * every kept byte is offered, over as many turns as it takes, and on_eof
 * comes once nothing is kept or the handler took nothing of what is (an
 * incomplete last message) with no output pending.  Ends with conn_settle.
 * Returns 0, or -1 if c is dead.
 */
static int conn_offer(struct wharf_conn *c)
{
    for (int round = 0; c->in.len > 0 && conn_can_deliver(c); round++) {
        if (round == CONN_MAX_OFFERS) {
            conn_schedule_offer(c);
            break;
        }
        /* What earlier calls sent goes out first, so wharf_output_pending
         * tells the handler what is really still pending. */
        if (conn_pending(c) > 0) {
            if (conn_flush(c) < 0)
                return -1;
            if (c->out.len > c->l->cfg->high_watermark) {
                c->flags |= CONN_PAUSED_OUTPUT; /* on_drain brings the input back */
                break;
            }
        }
        size_t used = conn_call_data(c, buf_head(&c->in), c->in.len);
        if (used == CONN_BAD_RETURN)
            break;
        buf_consume(&c->in, used);
        if (c->in.len == 0)
            buf_free(&c->in);
        if (used == 0) {
            if (conn_pending(c) > 0)
                c->flags |= CONN_WAIT_WRITTEN; /* offered again once the output is out */
            else if (c->flags & CONN_PEER_EOF)
                c->flags |= CONN_EOF_STALLED; /* nothing more will come: on_eof */
            break; /* otherwise it waits for more bytes */
        }
    }
    if ((c->flags & CONN_PEER_EOF) && !(c->flags & CONN_EOF_DONE) && conn_can_deliver(c) &&
        (c->in.len == 0 || (c->flags & CONN_EOF_STALLED))) {
        c->flags |= CONN_EOF_DONE;
        int keep = WHARF_EOF_CLOSE;
        if (c->l->handler->on_eof)
            CONN_CALL(c, "on_eof", keep = c->l->handler->on_eof(c));
        if (keep != WHARF_EOF_KEEP && c->state == CONN_OPEN) {
            /* The peer is done sending: finish writing, then close. */
            conn_move(c, CONN_CLOSING);
            c->close_reason = WHARF_CLOSE_EOF;
        }
    }
    return conn_settle(c);
}

/* The loop check that runs the offers scheduled for this turn. */
static void conn_run_offers(struct loop_check *check)
{
    struct conn_set *set = (struct conn_set *)((char *)check - offsetof(struct conn_set, check));
    struct wharf_conn *list = set->offers;
    set->offers = NULL;
    while (list) {
        struct wharf_conn *c = list;
        list = c->offer_next;
        c->flags &= ~(uint32_t)CONN_OFFER_PENDING;
        if (!conn_dead(c))
            conn_offer(c);
    }
    if (!set->offers && set->offers_busy) {
        set->offers_busy = false;
        loop_set_busy(set->loop, -1);
    }
}

/* Reads once and hands the bytes to on_data.  Returns 0, or -1 if c was torn down. */
static int conn_read(struct wharf_conn *c)
{
    struct wharf_worker *w = c->w;
    struct conn_set *set = &w->conns;
    const struct config_listener *cfg = c->l->cfg;
    /* Earlier input is kept (or a PROXY header is being read): read behind it. */
    int keep = c->in.len > 0 || (c->flags & CONN_PROXY_WAIT);
    char *p;
    size_t room;
    if (keep) {
        if (c->in.len >= cfg->max_input) {
            conn_close(c, WHARF_CLOSE_LIMIT);
            return -1;
        }
        room = cfg->max_input - c->in.len;
        if (room > CONN_READ_CHUNK)
            room = CONN_READ_CHUNK;
        p = buf_reserve(&c->in, room);
        if (!p) {
            conn_close(c, WHARF_CLOSE_ERROR);
            return -1;
        }
    } else {
        p = set->readbuf;
        room = set->readbuf_size;
    }

    ssize_t n = recv(c->watcher.fd, p, room, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)w->id, c->id, "read: %s", strerror(errno));
        conn_close(c, WHARF_CLOSE_ERROR);
        return -1;
    }
    if (n == 0) {
        /* The peer is done sending: kept bytes first, then on_eof. */
        c->flags |= CONN_PEER_EOF;
        return conn_offer(c);
    }

    STAT_ADD(conn_stats(c)->bytes_in, (uint64_t)n);
    c->last_read_ms = w->loop.now_ms;
    c->bytes_seen = true;
    c->bytes_in += (uint64_t)n;
    if (c->in.len == 0)
        c->rate_since_ms = w->loop.now_ms; /* a message may start here */
    c->rate_bytes += (uint64_t)n;
    const char *data = p;
    size_t len = (size_t)n;
    if (keep) {
        buf_commit(&c->in, len);
        data = buf_head(&c->in);
        len = c->in.len;
    }
    if (c->flags & CONN_PROXY_WAIT) {
        int rc = conn_proxy_header(c);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return conn_settle(c);
        /* The rest, if any, goes to the handler now. */
        return c->in.len > 0 ? conn_offer(c) : conn_settle(c);
    }

    size_t used = conn_call_data(c, data, len);
    if (used == CONN_BAD_RETURN)
        return conn_settle(c);
    if (keep) {
        buf_consume(&c->in, used);
        if (c->in.len == 0)
            buf_free(&c->in);
    } else if (used < len && !conn_dead(c)) {
        if (len - used > cfg->max_input) {
            conn_close(c, WHARF_CLOSE_LIMIT);
            return -1;
        }
        if (buf_append(&c->in, data + used, len - used) < 0) {
            conn_close(c, WHARF_CLOSE_ERROR);
            return -1;
        }
    }
    /* Consumed some and some is left: offer the rest again now. */
    if (used > 0 && c->in.len > 0)
        return conn_offer(c);
    return conn_settle(c);
}

/* ---- connections by id ------------------------------------------------------------ */

static size_t conn_bucket(const struct conn_set *set, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (set->map_size - 1);
}

/* Adds c to the id map, growing it (load factor 1).  Returns 0 or -ENOMEM. */
static int conn_map_add(struct conn_set *set, struct wharf_conn *c)
{
    if (set->n + 1 > set->map_size) {
        size_t size = set->map_size ? set->map_size * 2 : 64;
        struct wharf_conn **map = calloc(size, sizeof *map);
        if (!map)
            return -ENOMEM;
        struct wharf_conn **old = set->map;
        size_t old_size = set->map_size;
        set->map = map;
        set->map_size = size;
        for (size_t i = 0; i < old_size; i++)
            for (struct wharf_conn *e = old[i], *next; e; e = next) {
                next = e->map_next;
                size_t b = conn_bucket(set, e->id);
                e->map_next = map[b];
                map[b] = e;
            }
        free(old);
    }
    size_t b = conn_bucket(set, c->id);
    c->map_next = set->map[b];
    set->map[b] = c;
    return 0;
}

static void conn_map_remove(struct conn_set *set, struct wharf_conn *c)
{
    if (!set->map_size)
        return;
    for (struct wharf_conn **p = &set->map[conn_bucket(set, c->id)]; *p; p = &(*p)->map_next)
        if (*p == c) {
            *p = c->map_next;
            return;
        }
}

struct wharf_conn *conn_find(struct wharf_worker *w, uint64_t id)
{
    struct conn_set *set = &w->conns;
    if (!set->map_size)
        return NULL;
    for (struct wharf_conn *c = set->map[conn_bucket(set, id)]; c; c = c->map_next)
        if (c->id == id && !conn_dead(c))
            return c;
    return NULL;
}

void conn_call_post(struct wharf_worker *w, struct wharf_conn *c,
                    void (*fn)(wharf_conn *c, void *arg), void *arg)
{
    if (!c) {
        CALLBACK_RUN("wharf_post_conn", NULL, (int)w->id, 0, fn(NULL, arg));
        return;
    }
    CONN_CALL(c, "wharf_post_conn", fn(c, arg));
    conn_settle(c);
}

void conn_call_timer(struct wharf_conn *c, wharf_timer *t, void (*fn)(wharf_timer *t, void *arg),
                     void *arg)
{
    if (conn_dead(c))
        return; /* its timers stop with its teardown, before on_close */
    CONN_CALL(c, "timer", fn(t, arg));
    conn_settle(c);
}

/* ---- life cycle ------------------------------------------------------------------ */

static void conn_on_io(struct loop_watcher *watcher, uint32_t events);

int conn_set_init(struct conn_set *s, struct loop *lp)
{
    *s = (struct conn_set){.readbuf_size = CONN_READ_BUFFER, .loop = lp};
    s->readbuf = malloc(s->readbuf_size);
    if (!s->readbuf)
        return -ENOMEM;
    s->check.fn = conn_run_offers;
    loop_add_check(lp, &s->check);
    timer_init(&s->budget_timer, conn_on_budget_timer);
    return 0;
}

void conn_set_free(struct conn_set *s)
{
    if (s->loop)
        loop_remove_check(s->loop, &s->check);
    if (s->offers_busy)
        loop_set_busy(s->loop, -1);
    s->offers_busy = false;
    s->loop = NULL;
    free(s->map);
    s->map = NULL;
    s->map_size = 0;
    free(s->readbuf);
    s->readbuf = NULL;
    buf_free(&s->scratch);
}

void conn_abandon(struct wharf_worker *w, struct listener *l, int fd, const union sockaddr_any *peer,
                  int ticket)
{
    close(fd);
    admission_release(w->admission, &peer->sa, w->id, ticket);
    generation_unref(l->gen);
}

/* Calls on_open (once): from here on, on_close is owed. */
static void conn_opened(struct wharf_conn *c)
{
    if (!conn_move(c, CONN_OPEN))
        return;
    c->flags |= CONN_OPENED;
    /* on_open comes first: every later failure (even arming the timer)
     * reaches on_close after it. */
    if (c->l->handler->on_open)
        CONN_CALL(c, "on_open", c->l->handler->on_open(c));
}

/* A PROXY header that is missing, malformed or from an untrusted peer:
 * closed without a word to the handler (counted as an error close). */
static void conn_proxy_refuse(struct wharf_conn *c, const char *why)
{
    struct conn_set *set = &c->w->conns;
    if (log_due(&set->last_proxy_log_ms, c->w->loop.now_ms, 1000)) {
        char addr[64];
        listener_format_addr(&c->peer.sa, addr, sizeof addr);
        log_write(WHARF_LOG_WARN, conn_name(c), (int)c->w->id, c->id,
                  "PROXY header from %s refused: %s (logged at most once a second)", addr, why);
    }
    conn_close(c, WHARF_CLOSE_ERROR);
}

/*
 * Reads the PROXY header out of the kept input.  Returns 1 when it is
 * complete (consumed; the handler now opens), 0 when more bytes are needed,
 * -1 when the connection was refused.
 */
static int conn_proxy_header(struct wharf_conn *c)
{
    struct proxy_result r;
    int n = proxy_parse(buf_head(&c->in), c->in.len, c->l->cfg->proxy_protocol, &r);
    if (n == 0)
        return 0;
    if (n < 0) {
        conn_proxy_refuse(c, r.reason ? r.reason : "malformed");
        return -1;
    }
    buf_consume(&c->in, (size_t)n);
    if (c->in.len == 0)
        buf_free(&c->in);
    if (r.command == PROXY_CMD_PROXY &&
        (r.src.ss_family == AF_INET || r.src.ss_family == AF_INET6)) {
        socklen_t len = r.src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                   : sizeof(struct sockaddr_in6);
        memcpy(&c->peer, &r.src, len);
        c->peer_len = len;
        if (r.dst.ss_family == r.src.ss_family) {
            memcpy(&c->local, &r.dst, len);
            c->local_len = len;
        }
    }
    c->flags &= ~(uint32_t)CONN_PROXY_WAIT;
    /* The client's own limits, now that its address is known. */
    const struct config_listener *cfg = c->l->cfg;
    for (size_t i = 0; i < cfg->ndeny; i++)
        if (cidr_match(&cfg->deny[i], &c->peer.sa)) {
            atomic_fetch_add_explicit(&c->l->stats->denied, 1, memory_order_relaxed);
            conn_close(c, WHARF_CLOSE_ERROR);
            return -1;
        }
    int ticket = admission_acquire_source(c->w->admission, &c->peer.sa);
    if (ticket < 0) {
        atomic_fetch_add_explicit(&c->l->stats->rejected, 1, memory_order_relaxed);
        conn_close(c, WHARF_CLOSE_LIMIT);
        return -1;
    }
    c->ticket |= ticket;
    /* The handshake now waits for the client's first bytes. */
    c->handshake_ms = (uint32_t)cfg->timeouts.handshake_ms;
    c->handshake_since_ms = c->w->loop.now_ms;
    c->bytes_seen = c->in.len > 0;
    c->rate_since_ms = c->w->loop.now_ms;
    c->rate_bytes = c->in.len;
    conn_opened(c);
    return 1;
}

/*
 * Makes a connection object for fd on worker w and registers it (watcher
 * with `events`, id map, list, counters).  Returns it, or NULL after
 * logging (the caller still owns fd, ticket and reference).
 */
static struct wharf_conn *conn_new(struct wharf_worker *w, struct listener *l, int fd,
                                   const union sockaddr_any *peer, socklen_t peer_len,
                                   int ticket, uint32_t flags, uint32_t events)
{
    struct wharf_conn *c = calloc(1, sizeof *c);
    if (!c) {
        log_write(WHARF_LOG_ERROR, l->cfg->name, (int)w->id, 0, "out of memory for a connection");
        return NULL;
    }
    c->watcher.fd = -1;
    c->flags = flags;
    c->id = atomic_fetch_add_explicit(&next_conn_id, 1, memory_order_relaxed) + 1;
    c->w = w;
    c->l = l;
    c->ticket = ticket;
    memcpy(&c->peer, peer, peer_len <= sizeof c->peer ? peer_len : sizeof c->peer);
    c->peer_len = peer_len;
    c->opened_ms = c->last_read_ms = c->last_write_ms = c->handshake_since_ms = w->loop.now_ms;
    c->idle_ms = (uint32_t)l->cfg->timeouts.idle_ms;
    c->handshake_ms = (uint32_t)l->cfg->timeouts.handshake_ms;
    c->write_ms = (uint32_t)l->cfg->timeouts.write_ms;
    c->lifetime_ms = (uint32_t)l->cfg->timeouts.lifetime_ms;
    timer_init(&c->timer, conn_timer_fired);

    struct conn_set *set = &w->conns;
    int rc = loop_watch(&w->loop, &c->watcher, fd, events, conn_on_io);
    if (rc < 0 || conn_map_add(set, c) < 0) {
        log_write(WHARF_LOG_ERROR, l->cfg->name, (int)w->id, c->id, "cannot register: %s",
                  strerror(rc < 0 ? -rc : ENOMEM));
        loop_unwatch(&w->loop, &c->watcher);
        free(c);
        return NULL;
    }
    c->next = set->head;
    if (set->head)
        set->head->prev = c;
    set->head = c;
    set->n++;
    /* Its generation's on_worker_start, if this worker did not serve it yet. */
    generation_worker_hold(l->gen, w);
    if (!(flags & CONN_OUTBOUND))
        STAT_ADD(conn_stats(c)->accepted, 1);
    STAT_ADD(conn_stats(c)->open, 1);
    if (log_get_level() >= WHARF_LOG_DEBUG) {
        char addr[64];
        listener_format_addr(&c->peer.sa, addr, sizeof addr);
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)w->id, c->id, "%s %s",
                  (flags & CONN_OUTBOUND) ? "connecting to" : "open from", addr);
    }
    return c;
}

/* The connection is up: on_open, settle, and read what may already be there.
 * With proxy_protocol, the handler hears of it only once the header has
 * been read (so wharf_peer_addr is the client's from the start). */
static void conn_start(struct wharf_conn *c)
{
    const struct config_listener *cfg = c->l->cfg;
    if (cfg->proxy_protocol && !(c->flags & CONN_OUTBOUND)) {
        bool trusted = false;
        for (size_t i = 0; i < cfg->nproxy_trusted && !trusted; i++)
            trusted = cidr_match(&cfg->proxy_trusted[i], &c->peer.sa);
        if (!trusted) {
            conn_proxy_refuse(c, "not in proxy_trusted");
            return;
        }
        c->flags |= CONN_PROXY_WAIT;
        if (!c->handshake_ms)
            c->handshake_ms = CONN_PROXY_HANDSHAKE_MS;
    } else if (c->state == CONN_PENDING) {
        conn_opened(c); /* (an outbound one closed while connecting never opens) */
    }
    if (conn_settle(c) < 0)
        return;
    /* The first bytes often arrive with the connection (or soon after the
     * hand-off): read now rather than after an epoll round trip. */
    if (conn_wants_input(c))
        conn_read(c);
}

void conn_open(struct wharf_worker *w, struct listener *l, int fd, const union sockaddr_any *peer,
               socklen_t peer_len, int ticket)
{
    struct wharf_conn *c = conn_new(w, l, fd, peer, peer_len, ticket, 0, LOOP_IN);
    if (!c) {
        conn_abandon(w, l, fd, peer, ticket);
        return;
    }
    conn_start(c);
}

/* An outbound connect() finished (events on a CONN_CONNECTING socket). */
static void conn_connected(struct wharf_conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(c->watcher.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr) {
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)c->w->id, c->id, "connect: %s",
                  strerror(soerr));
        conn_close(c, WHARF_CLOSE_ERROR);
        return;
    }
    c->flags &= ~(uint32_t)CONN_CONNECTING;
    c->last_read_ms = c->last_write_ms = c->w->loop.now_ms;
    conn_start(c);
}

wharf_conn *wharf_connect(wharf_conn *from, const struct sockaddr *addr, socklen_t addrlen,
                          void *data, int *err)
{
    int dummy;
    err = err ? err : &dummy;
    if (!from || conn_dead(from) || !addr || addrlen > sizeof(union sockaddr_any) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
        *err = -EINVAL;
        return NULL;
    }
    struct wharf_worker *w = from->w;
    struct listener *l = from->l;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    if (l->cfg->tcp_nodelay) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(fd, addr, addrlen) < 0 && errno != EINPROGRESS) {
        *err = -errno;
        close(fd);
        return NULL;
    }
    struct wharf_conn *c = conn_new(w, l, fd, (const union sockaddr_any *)addr, addrlen, -1,
                                    CONN_OUTBOUND | CONN_CONNECTING, LOOP_OUT);
    if (!c) {
        *err = -ENOMEM;
        close(fd);
        return NULL;
    }
    generation_ref(l->gen);
    c->data = data;
    conn_arm_timer(c); /* a connect that never finishes times out like an idle one */
    *err = 0;
    return c;
}

wharf_worker *wharf_conn_worker(const wharf_conn *c)
{
    return c->w;
}

bool wharf_conn_outbound(const wharf_conn *c)
{
    return (c->flags & CONN_OUTBOUND) != 0;
}

/* Writes the connection log line (at the listener's access_log level). */
static void conn_log_close(const struct wharf_conn *c, enum wharf_close_reason reason)
{
    struct wharf_worker *w = c->w;
    int level = c->l->cfg->access_log;
    if (level >= 0 && level <= (int)log_get_level()) {
        char addr[64];
        listener_format_addr(&c->peer.sa, addr, sizeof addr);
        log_write((enum wharf_log_level)level, conn_name(c), (int)w->id, c->id,
                  "%s %s: %llu ms, %llu bytes in, %llu bytes out, closed (%s)",
                  (c->flags & CONN_OUTBOUND) ? "to" : "from", addr,
                  (unsigned long long)(w->loop.now_ms - c->opened_ms),
                  (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
                  wharf_close_reason_name(reason));
    } else {
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)w->id, c->id, "closed (%s)",
                  wharf_close_reason_name(reason));
    }
}

/*
 * The one teardown, run by the loop's closing phase at the end of the turn
 * in which c was closed: on_close (once, if on_open ran or c is outbound),
 * its timers, the log line and counters, the socket, the lists, admission,
 * then c itself and its generation reference (which may run fini and unload
 * the module: nothing of it is on the stack here).
 */
static void conn_teardown(struct loop_closing *h)
{
    struct wharf_conn *c = (struct wharf_conn *)((char *)h - offsetof(struct wharf_conn, closing));
    struct wharf_worker *w = c->w;
    struct conn_set *set = &w->conns;
    enum wharf_close_reason reason = c->close_reason;

    if (c->l->handler->on_close && (c->flags & (CONN_OPENED | CONN_OUTBOUND)))
        CONN_CALL(c, "on_close", c->l->handler->on_close(c, reason));
    htimer_stop_all(&c->timers); /* none of its timers fires after on_close */
    if (set->scratch_conn == c) {
        buf_consume(&set->scratch, set->scratch.len);
        set->scratch_conn = NULL;
    }
    conn_unschedule_offer(c); /* on_close may have asked for one */
    conn_log_close(c, reason);
    /* Counted before the socket closes, so a peer that sees the close also
     * sees it counted. */
    struct listener_counters *st = conn_stats(c);
    STAT_ADD(st->closed[reason], 1);
    STAT_ADD(st->open, (uint64_t)-1);
    STAT_ADD(st->output_buffered, -(uint64_t)c->out.cap);
    admission_output_add(w->admission, -(ptrdiff_t)c->out.cap);
    int fd = c->watcher.fd;
    loop_unwatch(&w->loop, &c->watcher);
    close(fd);

    if (c->prev)
        c->prev->next = c->next;
    else
        set->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    set->n--;
    conn_map_remove(set, c);
    buf_free(&c->in);
    buf_free(&c->out);
    if (c->ticket >= 0) /* outbound connections were never admitted */
        admission_release(w->admission, &c->peer.sa, w->id, c->ticket);
    struct generation *g = c->l->gen;
    free(c);
    generation_worker_release(g, w); /* on_worker_stop after its last connection */
    generation_unref(g);
}

void conn_close(struct wharf_conn *c, enum wharf_close_reason reason)
{
    if (conn_dead(c) || !conn_move(c, CONN_DEAD))
        return;
    c->close_reason = (unsigned)reason < LISTENER_CLOSE_REASONS ? reason : WHARF_CLOSE_ERROR;
    loop_timer_disarm(&c->w->loop, &c->timer);
    conn_unschedule_offer(c);
    /* Its socket stays registered until the teardown; conn_on_io ignores a
     * dead connection's events meanwhile. */
    loop_close(&c->w->loop, &c->closing, conn_teardown);
}

void conn_hold(struct wharf_conn *c, bool on)
{
    if (conn_dead(c) || on == ((c->flags & CONN_HELD) != 0))
        return;
    if (on) {
        c->flags |= CONN_HELD;
    } else {
        c->flags &= ~(uint32_t)CONN_HELD;
        if (c->in.len > 0 || (c->flags & CONN_PEER_EOF))
            conn_schedule_offer(c); /* kept input comes back; settles the mask too */
    }
    if (c->w->conns.current != c)
        conn_update_events(c);
}

size_t conn_shutdown(struct wharf_worker *w, bool all)
{
    size_t n = 0;
    if (!all) {
        /* The notice first: a handler may say goodbye or close. */
        for (struct wharf_conn *c = w->conns.head; c; c = c->next)
            if (c->l->handler->on_shutdown && c->state == CONN_OPEN &&
                !(c->flags & CONN_SHUTDOWN_TOLD)) {
                CONN_CALL(c, "on_shutdown", c->l->handler->on_shutdown(c));
                c->flags |= CONN_SHUTDOWN_TOLD;
            }
    }
    if (all)
        loop_timer_disarm(&w->loop, &w->conns.budget_timer);
    /* A connection settles (and an idle one closes) after its notice.  The
     * list stays as it is until the closing phase. */
    for (struct wharf_conn *c = w->conns.head; c; c = c->next) {
        if (conn_dead(c))
            continue;
        if (all)
            conn_close(c, WHARF_CLOSE_SHUTDOWN);
        else
            conn_settle(c);
        n += conn_dead(c);
    }
    return n;
}

static void conn_on_io(struct loop_watcher *watcher, uint32_t events)
{
    struct wharf_conn *c = (struct wharf_conn *)watcher;
    if (conn_dead(c))
        return;
    if (c->flags & CONN_CONNECTING) {
        conn_connected(c);
        return;
    }
    if ((events & LOOP_OUT) && conn_settle(c) < 0)
        return;
    if (conn_wants_input(c) && (events & (LOOP_IN | LOOP_HUP | LOOP_ERR))) {
        conn_read(c);
        return;
    }
    if (events & (LOOP_HUP | LOOP_ERR)) {
        /* Not reading (paused or closing), yet the socket is gone. */
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(c->watcher.fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        conn_close(c, soerr || c->out.len ? WHARF_CLOSE_ERROR : WHARF_CLOSE_EOF);
    }
}

/* ---- the handler API ------------------------------------------------------------ */

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

int wharf_send(wharf_conn *c, const void *data, size_t len)
{
    if (conn_wrong_thread(c, "wharf_send"))
        return -EPERM;
    struct wharf_worker *w = c->w;
    struct conn_set *set = &w->conns;
    if (c->state >= CONN_CLOSING || (c->flags & CONN_SHUT_WRITE))
        return -EPIPE;
    size_t pending = conn_pending(c);
    size_t max = c->l->cfg->max_output;
    if (pending > max || len > max - pending) {
        log_write(WHARF_LOG_INFO, conn_name(c), (int)w->id, c->id,
                  "output cap of %zu bytes reached", max);
        conn_close(c, WHARF_CLOSE_LIMIT);
        return -ENOBUFS;
    }
    if (len == 0)
        return 0;
    if (set->current == c && c->out.len == 0 && (!set->scratch_conn || set->scratch_conn == c)) {
        if (buf_append(&set->scratch, data, len) < 0)
            return -ENOMEM;
        set->scratch_conn = c;
        return 0;
    }
    size_t old_cap = c->out.cap, old_len = c->out.len;
    if (buf_append(&c->out, data, len) < 0)
        return -ENOMEM;
    conn_output_resized(c, old_cap);
    if (set->current != c) {
        /* Sent from another connection's callback: write on the next turn. */
        if (old_len == 0)
            c->last_write_ms = w->loop.now_ms;
        conn_update_events(c);
        conn_arm_timer(c);
    }
    return 0;
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
        conn_schedule_offer(c); /* settled by this turn's offers (its own
                                 * callback settles it when it returns) */
}

void wharf_want_drain(wharf_conn *c)
{
    if (conn_wrong_thread(c, "wharf_want_drain") || conn_dead(c))
        return;
    c->flags |= CONN_WANT_DRAIN;
    if (c->w->conns.current != c)
        conn_update_events(c);
}

void wharf_shutdown_write(wharf_conn *c)
{
    if (conn_wrong_thread(c, "wharf_shutdown_write") ||
        conn_dead(c) || (c->flags & CONN_SHUT_WRITE))
        return;
    c->flags |= CONN_SHUT_WRITE;
    if (c->w->conns.current != c)
        conn_schedule_offer(c);
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
        conn_update_events(c);
}

void wharf_resume_read(wharf_conn *c)
{
    if (conn_wrong_thread(c, "wharf_resume_read") || conn_dead(c))
        return;
    bool was_paused = c->flags & CONN_PAUSED_HANDLER;
    c->flags &= ~(uint32_t)CONN_PAUSED_HANDLER;
    if (c->w->conns.current != c)
        conn_update_events(c);
    /* Kept input (and a pending EOF) comes back without waiting for bytes. */
    if (was_paused && (c->in.len > 0 || (c->flags & CONN_PEER_EOF)))
        conn_schedule_offer(c);
}

int wharf_set_timeout(wharf_conn *c, enum wharf_timeout kind, uint64_t ms)
{
    if (conn_wrong_thread(c, "wharf_set_timeout"))
        return -EPERM;
    if (ms > UINT32_MAX)
        return -EINVAL;
    switch (kind) {
    case WHARF_TIMEOUT_IDLE:
        c->idle_ms = (uint32_t)ms;
        c->last_read_ms = c->w->loop.now_ms;
        break;
    case WHARF_TIMEOUT_WRITE:
        c->write_ms = (uint32_t)ms;
        c->last_write_ms = c->w->loop.now_ms;
        break;
    case WHARF_TIMEOUT_LIFETIME:
        c->lifetime_ms = (uint32_t)ms;
        break;
    default:
        return -EINVAL;
    }
    /* A longer timeout must not leave an early timer pending for nothing,
     * and a shorter one must fire on time: re-arm from scratch. */
    loop_timer_disarm(&c->w->loop, &c->timer);
    conn_arm_timer(c);
    return 0;
}

void wharf_set_data(wharf_conn *c, void *data) { c->data = data; }
void *wharf_get_data(const wharf_conn *c) { return c->data; }
void *wharf_listener_data(const wharf_conn *c) { return c->l->data; }
uint64_t wharf_conn_id(const wharf_conn *c) { return c->id; }
unsigned wharf_worker_id(const wharf_conn *c) { return c->w->id; }
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

bool conn_held(const wharf_conn *c)
{
    return c->flags & CONN_HELD;
}
