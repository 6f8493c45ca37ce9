/* phase.c - the thread loop both wharf-load engines run (see phase.h) on the framework's
 * event loop: the engine's sockets are watchers of th->loop; a per-turn check applies the
 * clock (stop requests, end of sending, open-loop releases, end of the drain) and asks the
 * loop, with loop_wake_at, to wake at the next instant due (the next open-loop tick, the
 * end of sending, the hard end) with nanosecond precision (the loop's own timers count in
 * milliseconds, too coarse for an open-loop schedule): the turn's own wait ends then, so a
 * wake-up costs no system call besides that wait; a loop timer runs the engine's scan
 * every PHASE_SCAN_MS; stop requests arrive through the loop's mailbox. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "phase.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

void sched_init(struct load_sched *s, const struct load_thread *th)
{
    const struct load_config *cfg = th->cfg;
    double per_conn_ns = 1e9 * cfg->connections / cfg->rate; /* between two of one conn */

    s->t0 = th->clk->t0;
    s->n = th->nconns;
    s->batch = cfg->batch ? cfg->batch : 1;
    s->interval_ns = per_conn_ns / th->nconns;
    s->k = 0;
}

bool phase_begin(struct load_phase *ph, struct load_thread *th, int setup_rc)
{
    int err = errno;

    memset(ph, 0, sizeof(*ph));
    ph->open = th->cfg->rate > 0;
    ph->counted = th->cfg->count > 0;
    ph->quota = th->quota;
    ph->hard_end = th->clk->hard_end;
    if (setup_rc == 0 && ph->open) {
        sched_init(&ph->sched, th);
        ph->tick_ns = th->cfg->tick_ns ? th->cfg->tick_ns : 1;
        ph->pending = calloc(th->nconns, sizeof(*ph->pending));
        ph->queued = calloc(th->nconns, sizeof(*ph->queued));
        if (!ph->pending || !ph->queued) {
            setup_rc = -1;
            err = errno;
        }
    }
    if (setup_rc != 0) {
        load_note_error(th, "cannot set up the thread (out of memory or descriptors)", err);
        stat_add(&th->st, ST_SOCKET_ERROR, 1);
        return false;
    }
    /* wake up on time for the open-loop schedule (the default slack is 50 us) */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    return !(ph->counted && ph->quota == 0); /* a zero share: nothing to do */
}

void phase_free(struct load_phase *ph)
{
    free(ph->pending);
    free(ph->queued);
    ph->pending = NULL;
    ph->queued = NULL;
}

/* Nothing is sent any more: what was released but not sent is the backlog at the end. */
static void phase_stop_sending(struct load_phase *ph, struct load_thread *th)
{
    ph->sending_over = ph->release_over = true;
    stat_add(&th->st, ST_BACKLOG_END, ph->backlog);
}

/* Once per loop turn: applies a stop request and the end of sending. Returns false when the
 * thread must return now: hard end, or asked to stop at once. */
static bool phase_step(struct load_phase *ph, struct load_thread *th, uint64_t now)
{
    const struct load_clock *clk = th->clk;

    if (now >= ph->hard_end || th->stop == LOAD_STOP_NOW)
        return false;
    if (!ph->sending_over && th->stop == LOAD_DRAIN) {
        /* asked to stop: send nothing more, drain what is in flight */
        phase_stop_sending(ph, th);
        if (now + th->cfg->drain_ns < ph->hard_end)
            ph->hard_end = now + th->cfg->drain_ns;
    }
    if (!ph->sending_over && now >= clk->send_end)
        phase_stop_sending(ph, th);
    return true;
}

/* Whether the thread has nothing more to send and is draining; notes when the drain began. */
static bool phase_draining(const struct load_phase *ph, struct load_thread *th, uint64_t now)
{
    if (!ph->sending_over && !(ph->release_over && ph->backlog == 0))
        return false;
    if (!th->drain_start_ns)
        th->drain_start_ns = now;
    return true;
}

/* Open loop: the first tick of the grid at or after `at`, and the first one after `at`. */
static uint64_t tick_ceil(const struct load_phase *ph, uint64_t at)
{
    uint64_t t0 = ph->sched.t0, d = at > t0 ? at - t0 : 0;

    return t0 + (d + ph->tick_ns - 1) / ph->tick_ns * ph->tick_ns;
}

static uint64_t tick_after(const struct load_phase *ph, uint64_t at)
{
    uint64_t t0 = ph->sched.t0, d = at > t0 ? at - t0 : 0;

    return t0 + (d / ph->tick_ns + 1) * ph->tick_ns;
}

/* When the thread must wake up at the latest (the scan has its own loop timer): end of
 * sending, the tick of the next open-loop message (never before the next tick: with more
 * than one message per tick that is the next tick), hard end. */
static uint64_t phase_wake(const struct load_phase *ph, const struct load_clock *clk)
{
    uint64_t wake = ph->hard_end, next;

    if (!ph->sending_over && clk->send_end < wake)
        wake = clk->send_end;
    if (ph->open && !ph->release_over) {
        next = tick_ceil(ph, sched_at(&ph->sched, ph->sched.k));
        if (next < ph->next_release)
            next = ph->next_release;
        if (next < wake)
            wake = next;
    }
    return wake;
}

/* Ends the phase: notes the end of the drain and the backlog not counted yet. */
static uint64_t phase_end(const struct load_phase *ph, struct load_thread *th)
{
    uint64_t now = load_now();

    if (!th->drain_start_ns)
        th->drain_start_ns = now;
    th->drain_end_ns = now;
    if (!ph->sending_over)
        stat_add(&th->st, ST_BACKLOG_END, ph->backlog);
    return now;
}

/* Once per turn, after the I/O callbacks (and once before the first turn). */
static void phase_on_turn(struct loop_check *c)
{
    struct load_phase *ph = container_of(c, struct load_phase, turn);
    struct load_thread *th = ph->th;
    uint64_t now = load_now();

    series_tick(th->series, now, stat_get(&th->st, ST_SENT), stat_errors(&th->st));
    /* open loop: what fell due before now goes out first, even when this turn comes after
     * the end of sending (a late wake-up sends the last messages late, it does not drop
     * them); what cannot go is the backlog phase_step counts */
    if (ph->open && th->stop == LOAD_RUN && !ph->release_over &&
        (now >= ph->next_release || now >= th->clk->send_end)) {
        /* once per tick: what fell due up to now goes out in one pass (turns woken by
         * replies in between release nothing) */
        ph->ops->release_due(ph->ctx, now);
        ph->next_release = tick_after(ph, now);
    }
    if (!phase_step(ph, th, now)) {
        loop_stop(&th->loop);
        return;
    }
    if (phase_draining(ph, th, now) && ph->ops->drained(ph->ctx)) {
        loop_stop(&th->loop);
        return;
    }
    loop_wake_at(&th->loop, phase_wake(ph, th->clk)); /* one-shot: asked every turn */
}

/* The engine's timers, every PHASE_SCAN_MS while the engine wants them. */
static void phase_on_scan(struct timer *t, uint64_t now_ms)
{
    struct load_phase *ph = container_of(t, struct load_phase, scan_timer);
    struct loop *lp = &ph->th->loop;

    if (lp->stop)
        return;
    if (ph->ops->scan(ph->ctx, load_now()))
        (void)loop_timer_arm(lp, t, now_ms + PHASE_SCAN_MS);
}

void phase_want_scan(struct load_phase *ph)
{
    struct loop *lp = ph->attached ? &ph->th->loop : NULL;

    if (lp && !lp->stop && !timer_armed(&ph->scan_timer))
        (void)loop_timer_arm(lp, &ph->scan_timer, lp->now_ms + PHASE_SCAN_MS);
}

void phase_drain_now(struct load_phase *ph, struct load_thread *th, uint64_t now)
{
    if (th->stop < LOAD_DRAIN)
        th->stop = LOAD_DRAIN;
    (void)phase_step(ph, th, now); /* the turn ends the thread if the hard end has come */
}

void phase_on_stop(void *arg, void *payload, bool cancelled)
{
    struct load_thread *th = arg;
    enum load_stop level;

    if (cancelled)
        return;
    memcpy(&level, payload, sizeof(level));
    if (level > th->stop)
        th->stop = level;
}

/* Registers the phase's check and scan timer on th's loop. */
static void phase_attach(struct load_phase *ph, struct load_thread *th)
{
    struct loop *lp = &th->loop;

    ph->turn.fn = phase_on_turn;
    loop_add_check(lp, &ph->turn);
    timer_init(&ph->scan_timer, phase_on_scan);
    ph->attached = true;
}

static void phase_detach(struct load_phase *ph, struct load_thread *th)
{
    struct loop *lp = &th->loop;

    loop_remove_check(lp, &ph->turn);
    ph->attached = false;
    loop_timer_disarm(lp, &ph->scan_timer);
}

uint64_t phase_run(struct load_phase *ph, struct load_thread *th, const struct phase_ops *ops,
                   void *ctx)
{
    struct loop *lp = &th->loop;
    uint64_t now;
    int rc;

    ph->th = th;
    ph->ops = ops;
    ph->ctx = ctx;
    lp->now_ms = timer_now_ms();
    phase_attach(ph, th);
    if (ops->scan(ctx, load_now()))
        phase_want_scan(ph);
    lp->stop = false;
    phase_on_turn(&ph->turn);
    rc = lp->stop ? 0 : loop_run(lp);
    if (rc < 0)
        load_note_error(th, "the event loop failed", -rc);
    phase_detach(ph, th);
    now = phase_end(ph, th);
    series_tick(th->series, now, stat_get(&th->st, ST_SENT), stat_errors(&th->st));
    return now;
}
