/*
 * loop.c - the per-thread event loop (see loop.h), whatever its backend: the
 * turn, the queue of interest changes, timers, the cached clock, the
 * mailbox, the checks, the closing phase and the deferred list.  The kernel
 * is reached only through the backend (loop_backend.h: loop_epoll.c,
 * loop_uring.c).
 */
#include "loop_backend.h"

#include <errno.h>
#include <sys/socket.h>
#include <time.h>

/* Mailbox messages run per wake-up. */
#define LOOP_MAILBOX_BATCH 256

static void loop_on_mailbox(struct loop_watcher *w, uint32_t events)
{
    (void)events;
    struct loop *lp = (struct loop *)((char *)w - offsetof(struct loop, mailbox_watcher));
    mailbox_drain(lp->mailbox, LOOP_MAILBOX_BATCH);
}

void loop_link(struct loop_watcher **head, struct loop_watcher *w)
{
    w->change_next = *head;
    if (*head)
        (*head)->change_pprev = &w->change_next;
    *head = w;
    w->change_pprev = head;
}

void loop_unlink(struct loop_watcher *w)
{
    if (!w->change_pprev)
        return;
    *w->change_pprev = w->change_next;
    if (w->change_next)
        w->change_next->change_pprev = w->change_pprev;
    w->change_next = NULL;
    w->change_pprev = NULL;
}

/* Reports the refused changes: a callback with LOOP_ERR alone each. */
static int loop_report_refused(struct loop *lp)
{
    int n = 0;
    while (lp->refused) {
        struct loop_watcher *w = lp->refused;
        loop_unlink(w);
        w->fn(w, LOOP_ERR);
        n++;
    }
    return n;
}

int loop_init(struct loop *lp, size_t depth, size_t reserve)
{
    return loop_init_io(lp, depth, reserve, LOOP_IO_AUTO);
}

int loop_init_io(struct loop *lp, size_t depth, size_t reserve, enum loop_io io)
{
    *lp = (struct loop){.mailbox_watcher = {.fd = -1}, .wake_ns = UINT64_MAX};
    lp->closing_tail = &lp->closing;
    timer_heap_init(&lp->timers);
    lp->now_ms = timer_now_ms();
    bool fallback = io == LOOP_IO_AUTO && !loop_io_explicit();
    if (io == LOOP_IO_AUTO)
        io = loop_io_current();
    lp->backend = io == LOOP_IO_URING ? &loop_uring_backend : &loop_epoll_backend;
    int rc = lp->backend->init(lp);
    if (rc < 0 && io == LOOP_IO_URING && fallback) {
        lp->backend = &loop_epoll_backend; /* a ring could not be set up now */
        rc = lp->backend->init(lp);
    }
    if (rc < 0) {
        lp->backend = NULL;
        return rc;
    }
    lp->mailbox = mailbox_new(depth, reserve);
    if (!lp->mailbox) {
        rc = -errno;
        goto fail;
    }
    rc = loop_watch(lp, &lp->mailbox_watcher, mailbox_fd(lp->mailbox), LOOP_IN, loop_on_mailbox);
    if (rc < 0)
        goto fail;
    return 0;
fail:
    loop_destroy(lp);
    return rc;
}

void loop_close(struct loop *lp, struct loop_closing *h, void (*fn)(struct loop_closing *h))
{
    h->fn = fn;
    h->next = NULL;
    if (!lp->closing_tail)
        lp->closing_tail = &lp->closing;
    *lp->closing_tail = h;
    lp->closing_tail = &h->next;
}

size_t loop_run_closing(struct loop *lp)
{
    size_t n = 0;
    while (lp->closing) {
        struct loop_closing *h = lp->closing;
        lp->closing = h->next;
        if (!lp->closing)
            lp->closing_tail = &lp->closing;
        h->fn(h);
        n++;
    }
    return n;
}

static void loop_deferred(struct loop *lp)
{
    while (lp->deferred) {
        struct loop_defer *d = lp->deferred;
        lp->deferred = d->next;
        d->fn(d);
    }
}

void loop_run_deferred(struct loop *lp)
{
    loop_deferred(lp);
    if (lp->backend && lp->backend->settle)
        lp->backend->settle(lp);
}

void loop_destroy(struct loop *lp)
{
    if (lp->mailbox) {
        loop_unwatch(lp, &lp->mailbox_watcher);
        mailbox_free(lp->mailbox); /* cancels what is queued */
        lp->mailbox = NULL;
    }
    loop_run_closing(lp);
    loop_deferred(lp);
    if (lp->backend)
        lp->backend->destroy(lp);
    lp->backend = NULL;
    timer_heap_free(&lp->timers);
}

enum loop_io loop_backend_io(const struct loop *lp)
{
    return lp->backend->io;
}

int loop_watch(struct loop *lp, struct loop_watcher *w, int fd, uint32_t events, loop_io_fn fn)
{
    if (fd < 0)
        return -EBADF;
    struct loop_watcher old = *w;
    *w = (struct loop_watcher){.fn = fn, .fd = fd, .events = events};
    int rc = lp->backend->watch(lp, w);
    if (rc < 0)
        *w = old;
    return rc;
}

int loop_modify(struct loop *lp, struct loop_watcher *w, uint32_t events)
{
    if (w->events == events)
        return 0;
    w->events = events;
    if (!w->change_pprev)
        loop_link(&lp->changes, w);
    return 0;
}

ssize_t loop_recv(struct loop *lp, struct loop_watcher *w, void *p, size_t len)
{
    if (w->fd < 0) { /* not registered (any more) */
        errno = EBADF;
        return -1;
    }
    if (lp->backend->recv)
        return lp->backend->recv(lp, w, p, len);
    return recv(w->fd, p, len, 0);
}

int loop_watcher_error(const struct loop_watcher *w)
{
    return w->error;
}

void loop_unwatch(struct loop *lp, struct loop_watcher *w)
{
    if (w->fd < 0)
        return;
    loop_unlink(w); /* a pending change goes with it */
    lp->backend->unwatch(lp, w);
    w->fd = -1;
    w->events = w->kernel = 0;
    w->error = 0;
}

int loop_timer_arm(struct loop *lp, struct timer *t, uint64_t deadline_ms)
{
    return timer_arm(&lp->timers, t, deadline_ms);
}

void loop_timer_disarm(struct loop *lp, struct timer *t)
{
    timer_disarm(&lp->timers, t);
}

void loop_wake_at(struct loop *lp, uint64_t deadline_ns)
{
    if (deadline_ns < lp->wake_ns)
        lp->wake_ns = deadline_ns;
}

/* How long the turn's wait may sleep, in ns (-1: no limit): until the next
 * timer deadline or loop_wake_at's, whichever comes first.  Takes the
 * wake-up (the next turn's owner asks again). */
static int64_t loop_timeout_ns(struct loop *lp)
{
    uint64_t wake = lp->wake_ns;
    lp->wake_ns = UINT64_MAX;
    if (lp->busy || lp->refused)
        return 0;
    int ms = timer_next_ms(&lp->timers, lp->now_ms);
    int64_t timeout = ms < 0 ? -1 : (int64_t)ms * 1000000;
    if (wake != UINT64_MAX && timeout != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        uint64_t left = wake > now ? wake - now : 0;
        if (left > INT64_MAX)
            left = INT64_MAX;
        if (timeout < 0 || (int64_t)left < timeout)
            timeout = (int64_t)left;
    }
    return timeout;
}

void loop_add_check(struct loop *lp, struct loop_check *c)
{
    c->next = lp->checks;
    lp->checks = c;
}

void loop_remove_check(struct loop *lp, struct loop_check *c)
{
    for (struct loop_check **p = &lp->checks; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            return;
        }
}

void loop_set_busy(struct loop *lp, int delta)
{
    lp->busy += (unsigned)delta;
}

void loop_defer(struct loop *lp, struct loop_defer *d, void (*fn)(struct loop_defer *d))
{
    d->fn = fn;
    d->next = lp->deferred;
    lp->deferred = d;
}

int loop_post(struct loop *lp, mailbox_fn fn, void *arg, const void *payload, size_t len)
{
    return mailbox_post(lp->mailbox, fn, arg, payload, len);
}

int loop_post_urgent(struct loop *lp, mailbox_fn fn, void *arg, const void *payload,
                     size_t len)
{
    return mailbox_post_urgent(lp->mailbox, fn, arg, payload, len);
}

int loop_run_once(struct loop *lp)
{
    lp->backend->apply(lp);
    int64_t timeout = loop_timeout_ns(lp);
    /* About to sleep: from here on a post wakes us (mailbox.h). */
    if (timeout != 0 && !mailbox_idle(lp->mailbox))
        timeout = 0; /* a post came first: no sleep */
    int rc = lp->backend->wait(lp, timeout);
    if (timeout != 0)
        mailbox_running(lp->mailbox);
    if (!lp->manual_clock)
        lp->now_ms = timer_now_ms();
    int reported = loop_report_refused(lp);
    int n = lp->backend->dispatch(lp);
    /* Posts made while this thread ran: no wake-up was spent on them. */
    if (mailbox_len(lp->mailbox) > 0)
        n += (int)mailbox_run(lp->mailbox, LOOP_MAILBOX_BATCH) > 0;
    n += reported;
    for (struct loop_check *c = lp->checks, *next; c; c = next) {
        next = c->next;
        c->fn(c);
    }
    size_t fired = timer_expire(&lp->timers, lp->now_ms);
    loop_run_closing(lp);
    loop_deferred(lp);
    return rc < 0 ? rc : n + (int)fired;
}

int loop_run(struct loop *lp)
{
    lp->stop = false;
    while (!lp->stop) {
        int rc = loop_run_once(lp);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void loop_stop(struct loop *lp)
{
    lp->stop = true;
}
