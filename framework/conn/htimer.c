/*
 * htimer.c - the handlers' timers (see htimer.h and wharf.h).
 *
 * A wharf_timer embeds a heap timer of its worker's loop.  While its
 * callback runs it is marked running, so a wharf_timer_stop from inside the
 * callback only marks it stopped and the free happens after the callback
 * returns; a one-shot timer is freed after its callback, a repeating one is
 * re-armed for one period after the time it was due (so it does not drift,
 * and a late turn does not make it fire in a burst: a deadline already
 * past is moved to now + period).
 *
 * A worker timer (no connection) is a request: it records its origin (the
 * listener whose code started it, its generation referenced) and drops it
 * when it is freed, after its last run or its stop, so the module it points
 * into stays loaded while it is armed.  A connection's timer runs as one of
 * the connection's callbacks, and the connection holds its generation.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "conn.h"
#include "callback.h"
#include "htimer.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

struct wharf_timer {
    struct timer t;                     /* must be first */
    struct wharf_worker *w;
    struct wharf_conn *c;               /* owner, or NULL (the worker) */
    struct wharf_list link;             /* in its owner's list of timers */
    void (*fn)(wharf_timer *t, void *arg);
    void *arg;
    uint64_t repeat_ms;
    bool running, stopped;
    struct callback_origin origin;      /* a worker timer's (callback.h) */
};

static void htimer_free(struct wharf_timer *t)
{
    loop_timer_disarm(&t->w->loop, &t->t);
    wharf_list_remove(&t->link); /* a no-op once htimer_stop_all took it out */
    callback_origin_drop(&t->origin);
    free(t);
}

static void htimer_fired(struct timer *heap_timer, uint64_t now)
{
    struct wharf_timer *t = (struct wharf_timer *)heap_timer;
    t->running = true;
    if (t->c) {
        conn_call_timer(t->c, t, t->fn, t->arg);
    } else {
        CALLBACK_RUN("timer", t->origin.l, (int)t->w->id, 0, t->fn(t, t->arg));
    }
    t->running = false;
    if (t->stopped || t->repeat_ms == 0) {
        htimer_free(t);
        return;
    }
    uint64_t next = t->t.deadline_ms + t->repeat_ms;
    if (next <= now)
        next = now + t->repeat_ms;
    if (loop_timer_arm(&t->w->loop, &t->t, next) < 0) {
        log_write(WHARF_LOG_ERROR, NULL, (int)t->w->id, 0, "out of memory re-arming a timer");
        htimer_free(t);
    }
}

wharf_timer *wharf_timer_start(wharf_conn *c, uint64_t ms, uint64_t repeat_ms,
                               void (*fn)(wharf_timer *t, void *arg), void *arg)
{
    struct wharf_worker *w = c ? c->w : wharf_current_worker();
    if (!w || !fn || (c && conn_dead(c)))
        return NULL;
    struct wharf_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (!c && !callback_origin_take(&t->origin)) {
        free(t); /* started from fini: its module is about to unload */
        return NULL;
    }
    timer_init(&t->t, htimer_fired);
    t->w = w;
    t->c = c;
    t->fn = fn;
    t->arg = arg;
    t->repeat_ms = repeat_ms;
    wharf_list_insert_head(c ? &c->timers : &w->timers, &t->link);
    if (loop_timer_arm(&w->loop, &t->t, w->loop.now_ms + ms) < 0) {
        wharf_list_remove(&t->link);
        callback_origin_drop(&t->origin);
        free(t);
        return NULL;
    }
    return t;
}

void wharf_timer_stop(wharf_timer *t)
{
    if (!t || t->stopped)
        return;
    if (t->running) {
        t->stopped = true; /* freed when its callback returns */
        return;
    }
    htimer_free(t);
}

void htimer_stop_all(struct wharf_list *timers)
{
    struct wharf_list *first;
    while ((first = wharf_list_first(timers)) != NULL) {
        struct wharf_timer *t = wharf_list_entry(first, struct wharf_timer, link);
        if (t->running) {
            /* Stopped from inside its own callback's owner teardown: the
             * callback's return frees it. */
            t->stopped = true;
            loop_timer_disarm(&t->w->loop, &t->t);
            wharf_list_remove(&t->link);
            continue;
        }
        htimer_free(t);
    }
}
