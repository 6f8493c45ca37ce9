/* phase.h - the timeline of one wharf-load engine thread, shared by the TCP and UDP
 * engines: the open-loop schedule (load_sched), and the phases of the thread loop
 * (sending, stop requests, drain) run on the thread's event loop (framework/event/loop.h)
 * by phase_run (phase.c). */
#ifndef WLOAD_PHASE_H
#define WLOAD_PHASE_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "thread.h"

#define PHASE_SCAN_MS 10 /* engine timers (connect timeouts, retries) every 10 ms */

struct phase_ops;

/* Open-loop schedule of one thread: its k-th message is due at t0 + k * interval and goes
 * to connection (k / batch) % n (--batch: the connections take turns of `batch`
 * consecutive messages, one send when they fall due in one tick; by default what one
 * connection has due in two ticks, opts_auto_batch), so with batch 1 connection c's j-th
 * message is due at t0 + (j * n + c) * interval. Every connection thus sends at
 * total_rate / connections, staggered: one message at a time with batch 1, `batch` at a
 * time otherwise. */
struct load_sched {
    uint64_t t0;
    double interval_ns; /* between two messages of the thread */
    unsigned n;         /* connections of the thread */
    unsigned batch;     /* consecutive messages of the schedule given to one connection */
    uint64_t k;         /* next thread message to release */
};

static inline uint64_t sched_at(const struct load_sched *s, uint64_t k)
{
    return s->t0 + (uint64_t)((double)k * s->interval_ns);
}

/* The connections take the thread's schedule in turns of `batch` consecutive messages:
 * message j of connection c is message ((j / batch) * n + c) * batch + j % batch. */
static inline uint64_t sched_conn_at(const struct load_sched *s, unsigned c, uint64_t j)
{
    return sched_at(s, ((j / s->batch) * s->n + c) * s->batch + j % s->batch);
}

/* Sets up th's schedule from the configured total rate. */
void sched_init(struct load_sched *s, const struct load_thread *th);

/* Where an engine thread stands in the timeline and what it may still send: the phase
 * control tcp_thread() and udp_thread() share. An engine keeps one in its context and hands
 * its own steps to phase_run() (struct phase_ops); its send paths read the flags and keep
 * `backlog` and `quota` up to date with the phase_* helpers below. */
struct load_phase {
    bool open;               /* open loop: messages are released by `sched` */
    bool counted;            /* --count given: `quota` bounds the measured messages */
    bool release_over;       /* no more messages will be released (quota, send_end) */
    bool sending_over;       /* send_end passed or stop asked: nothing is sent any more */
    uint64_t quota;          /* measured messages this thread may still send */
    uint64_t backlog;        /* open loop: released but not sent yet (thread total) */
    uint64_t hard_end;       /* the thread returns by then (a stop request brings it closer) */
    struct load_sched sched; /* open loop */
    unsigned *pending;       /* open loop: connections given messages to send (phase_release) */
    unsigned npending;       /* entries in `pending` */
    bool *queued;            /* per connection: whether it is in `pending` */
    /* on the thread's loop (phase_run) */
    struct load_thread *th;
    const struct phase_ops *ops;
    void *ctx;
    struct loop_check turn;    /* after each turn's I/O: clock, stop, releases, drain */
    struct timer scan_timer;   /* the engine's scan, every PHASE_SCAN_MS while it wants it */
    bool attached;             /* phase_run's loop is running it (the scan may be armed) */
    /* open loop: messages are released once per tick of the grid t0 + i * tick_ns (one
     * wake-up per tick at most, every message due for a connection in one send) */
    uint64_t tick_ns;
    uint64_t next_release;     /* the next tick: releases wait for it (or for send_end) */
};

/* What differs between the engines in the thread loop of phase_run(); ctx is the engine's. */
struct phase_ops {
    /* open loop: sends what the schedule released up to now (phase_due, phase_release);
     * called once per tick; counts as deferred what could not go in it */
    void (*release_due)(void *ctx, uint64_t now);
    /* timers (connects, retries, timeouts), once at the start and every PHASE_SCAN_MS
     * while it returns true; after it returned false the engine calls phase_want_scan
     * once something needs a scan again (a connection that connects, handshakes or waits
     * to reconnect), so a run whose connections are all open has no timer wake-ups */
    bool (*scan)(void *ctx, uint64_t now);
    /* whether everything sent so far has been answered: the drain is over */
    bool (*drained)(const void *ctx);
};

/* Starts the phase of th once its engine has set itself up (setup_rc: 0, or -1 with errno
 * set). Returns false when the thread has nothing to do: the set-up failed (counted as an
 * error) or its --count share is 0. Release with phase_free in any case. */
bool phase_begin(struct load_phase *ph, struct load_thread *th, int setup_rc);
void phase_free(struct load_phase *ph);

/* The thread loop: runs th->loop, where the engine has registered a watcher per socket,
 * until the end of sending (or a stop request), then drains until ops->drained() or the
 * hard end. Notes the drain in th and counts the backlog left. Returns the time it ended. */
uint64_t phase_run(struct load_phase *ph, struct load_thread *th, const struct phase_ops *ops,
                   void *ctx);

/* The engine has something for the scan again (see phase_ops.scan): the scan runs within
 * PHASE_SCAN_MS.  Does nothing outside phase_run or when it is due already. */
void phase_want_scan(struct load_phase *ph);

/* The thread itself asks to stop sending and drain now (a script's wrk.thread:stop()), as
 * a LOAD_DRAIN stop request would at the next turn. */
void phase_drain_now(struct load_phase *ph, struct load_thread *th, uint64_t now);

/* Delivers a stop request to a thread's loop (engine_run posts it to the mailbox; arg is
 * the struct load_thread, the payload an enum load_stop). */
void phase_on_stop(void *arg, void *payload, bool cancelled);

/* Takes a message due at `due` from the --count quota when it is measured. Returns false,
 * and ends the releases, when the quota is spent. */
static inline bool phase_take(struct load_phase *ph, const struct load_clock *clk, uint64_t due)
{
    if (!ph->counted || !load_measured(clk, due))
        return true;
    if (ph->quota == 0) {
        ph->release_over = true;
        return false;
    }
    ph->quota--;
    return true;
}

/* Open loop: whether the next message of the schedule is due by `now` (its due time in
 * *due). Once the schedule reaches the end of sending, the releases are over. */
static inline bool phase_due(struct load_phase *ph, const struct load_clock *clk, uint64_t now,
                             uint64_t *due)
{
    if (ph->release_over)
        return false;
    *due = sched_at(&ph->sched, ph->sched.k);
    if (*due > now)
        return false;
    if (*due >= clk->send_end) {
        ph->release_over = true;
        return false;
    }
    return true;
}

/* Open loop: the connection (0 .. n-1 in the thread) the next message of the schedule goes
 * to (in turns of sched.batch messages). */
static inline unsigned phase_slot(const struct load_phase *ph)
{
    return (unsigned)(ph->sched.k / ph->sched.batch % ph->sched.n);
}

/* Open loop: passes over the next message of the schedule (its connection cannot take it):
 * it is neither sent nor counted. */
static inline void phase_skip(struct load_phase *ph) { ph->sched.k++; }

/* Open loop: gives the next message of the schedule to its connection `conn` (backlog until
 * sent) and queues the connection for sending. */
static inline void phase_release(struct load_phase *ph, unsigned conn)
{
    ph->sched.k++;
    ph->backlog++;
    if (!ph->queued[conn]) {
        ph->queued[conn] = true;
        ph->pending[ph->npending++] = conn;
    }
}

/* Empties the queue of phase_release: returns how many connections it held, listed in
 * ph->pending[] until the next phase_release. */
static inline unsigned phase_pending(struct load_phase *ph)
{
    unsigned i, n = ph->npending;

    for (i = 0; i < n; i++)
        ph->queued[ph->pending[i]] = false;
    ph->npending = 0;
    return n;
}

#endif
