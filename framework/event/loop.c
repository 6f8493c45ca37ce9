/*
 * loop.c - the per-thread event loop (see loop.h): epoll, the queue of
 * interest changes, timers, the cached clock, the mailbox and the deferred
 * list.  The only file that calls epoll_*.
 */
#include "loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Events taken from epoll per turn, and mailbox messages run per wake-up. */
#define LOOP_EVENTS 256
#define LOOP_MAILBOX_BATCH 256

/* The loop's interest bits (loop.h) as epoll's. */
static uint32_t loop_to_epoll(uint32_t events)
{
    return ((events & LOOP_IN) ? (uint32_t)EPOLLIN : 0) |
           ((events & LOOP_OUT) ? (uint32_t)EPOLLOUT : 0) |
           ((events & LOOP_RDHUP) ? (uint32_t)EPOLLRDHUP : 0) |
           ((events & LOOP_EDGE) ? (uint32_t)EPOLLET : 0);
}

/* epoll's readiness bits as the loop's. */
static uint32_t loop_from_epoll(uint32_t ev)
{
    return ((ev & EPOLLIN) ? LOOP_IN : 0) | ((ev & EPOLLOUT) ? LOOP_OUT : 0) |
           ((ev & EPOLLHUP) ? LOOP_HUP : 0) | ((ev & EPOLLERR) ? LOOP_ERR : 0) |
           ((ev & EPOLLRDHUP) ? LOOP_RDHUP : 0);
}

static void loop_on_mailbox(struct loop_watcher *w, uint32_t events)
{
    (void)events;
    struct loop *lp = (struct loop *)((char *)w - offsetof(struct loop, mailbox_watcher));
    mailbox_drain(lp->mailbox, LOOP_MAILBOX_BATCH);
}

/* Puts w at the head of the list *head (the changes or the refused). */
static void loop_link(struct loop_watcher **head, struct loop_watcher *w)
{
    w->change_next = *head;
    if (*head)
        (*head)->change_pprev = &w->change_next;
    *head = w;
    w->change_pprev = head;
}

/* Takes w off whichever list it is on (if any). */
static void loop_unlink(struct loop_watcher *w)
{
    if (!w->change_pprev)
        return;
    *w->change_pprev = w->change_next;
    if (w->change_next)
        w->change_next->change_pprev = w->change_pprev;
    w->change_next = NULL;
    w->change_pprev = NULL;
}

/* Tells the kernel the interest changes queued since the last wait, where
 * the wanted interest still differs from the kernel's. */
static void loop_apply_changes(struct loop *lp)
{
    while (lp->changes) {
        struct loop_watcher *w = lp->changes;
        loop_unlink(w);
        if (w->events == w->kernel)
            continue; /* undone within the turn */
        struct epoll_event ev = {.events = loop_to_epoll(w->events), .data.ptr = w};
        lp->kernel_changes++;
        if (epoll_ctl(lp->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0) {
            w->error = -errno;
            loop_link(&lp->refused, w); /* reported in this turn's dispatch */
            continue;
        }
        w->kernel = w->events;
    }
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
    *lp = (struct loop){.epfd = -1, .mailbox_watcher = {.fd = -1}};
    lp->closing_tail = &lp->closing;
    timer_heap_init(&lp->timers);
    lp->now_ms = timer_now_ms();
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lp->epfd < 0)
        return -errno;
    lp->mailbox = mailbox_new(depth, reserve);
    int rc;
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

void loop_run_deferred(struct loop *lp)
{
    while (lp->deferred) {
        struct loop_defer *d = lp->deferred;
        lp->deferred = d->next;
        d->fn(d);
    }
}

void loop_destroy(struct loop *lp)
{
    if (lp->mailbox) {
        loop_unwatch(lp, &lp->mailbox_watcher);
        mailbox_free(lp->mailbox); /* cancels what is queued */
        lp->mailbox = NULL;
    }
    loop_run_closing(lp);
    loop_run_deferred(lp);
    if (lp->epfd >= 0)
        close(lp->epfd);
    lp->epfd = -1;
    timer_heap_free(&lp->timers);
}

int loop_watch(struct loop *lp, struct loop_watcher *w, int fd, uint32_t events, loop_io_fn fn)
{
    struct epoll_event ev = {.events = loop_to_epoll(events), .data.ptr = w};
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    w->fn = fn;
    w->fd = fd;
    w->events = w->kernel = events;
    w->error = 0;
    w->change_next = NULL;
    w->change_pprev = NULL;
    return 0;
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

int loop_watcher_error(const struct loop_watcher *w)
{
    return w->error;
}

void loop_unwatch(struct loop *lp, struct loop_watcher *w)
{
    if (w->fd < 0)
        return;
    loop_unlink(w); /* a pending change goes with it */
    /* At once, not at the next wait: the descriptor may be closed right
     * after, and a copy of it (a forked child's) would keep it in the set. */
    epoll_ctl(lp->epfd, EPOLL_CTL_DEL, w->fd, NULL);
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
    struct epoll_event events[LOOP_EVENTS];
    loop_apply_changes(lp);
    int timeout = lp->busy || lp->refused ? 0 : timer_next_ms(&lp->timers, lp->now_ms);
    /* About to sleep: from here on a post wakes us (mailbox.h). */
    if (timeout != 0 && !mailbox_idle(lp->mailbox))
        timeout = 0; /* a post came first: no sleep */
    int n = epoll_wait(lp->epfd, events, LOOP_EVENTS, timeout);
    if (timeout != 0)
        mailbox_running(lp->mailbox);
    int rc = 0;
    if (n < 0) {
        rc = errno == EINTR ? 0 : -errno;
        n = 0;
    }
    if (!lp->manual_clock)
        lp->now_ms = timer_now_ms();
    int reported = loop_report_refused(lp);
    for (int i = 0; i < n; i++) {
        struct loop_watcher *w = events[i].data.ptr;
        if (w->fd >= 0) /* not removed earlier in this turn */
            w->fn(w, loop_from_epoll(events[i].events));
    }
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
    loop_run_deferred(lp);
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
