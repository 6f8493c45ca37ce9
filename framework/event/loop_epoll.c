/*
 * loop_epoll.c - the epoll backend of the event loop (loop_backend.h): an
 * epoll set of watchers, level-triggered unless LOOP_EDGE, one epoll_ctl per
 * interest change that reaches the kernel, one wait per turn: epoll_wait, or
 * epoll_pwait2 when the turn's timeout is not whole milliseconds (a
 * loop_wake_at deadline).  The io_uring backend reuses the set for the
 * watchers its polls cannot serve.
 */
#include "loop_backend.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct loop_epoll_set {
    int epfd;
    int n; /* events from the last wait, not yet dispatched */
    struct epoll_event events[LOOP_EVENTS];
};

/* The loop's interest bits (loop.h) as epoll's. */
static uint32_t epoll_from_loop(uint32_t events)
{
    return ((events & LOOP_IN) ? (uint32_t)EPOLLIN : 0) |
           ((events & LOOP_OUT) ? (uint32_t)EPOLLOUT : 0) |
           ((events & LOOP_RDHUP) ? (uint32_t)EPOLLRDHUP : 0) |
           ((events & LOOP_EDGE) ? (uint32_t)EPOLLET : 0);
}

/* epoll's readiness bits as the loop's. */
static uint32_t epoll_to_loop(uint32_t ev)
{
    return ((ev & EPOLLIN) ? LOOP_IN : 0) | ((ev & EPOLLOUT) ? LOOP_OUT : 0) |
           ((ev & EPOLLHUP) ? LOOP_HUP : 0) | ((ev & EPOLLERR) ? LOOP_ERR : 0) |
           ((ev & EPOLLRDHUP) ? LOOP_RDHUP : 0);
}

int loop_epoll_set_new(struct loop_epoll_set **out)
{
    struct loop_epoll_set *es = malloc(sizeof *es);
    if (!es)
        return -ENOMEM;
    es->n = 0;
    es->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (es->epfd < 0) {
        int rc = -errno;
        free(es);
        return rc;
    }
    *out = es;
    return 0;
}

void loop_epoll_set_free(struct loop_epoll_set *es)
{
    if (!es)
        return;
    close(es->epfd);
    free(es);
}

int loop_epoll_set_fd(const struct loop_epoll_set *es)
{
    return es->epfd;
}

int loop_epoll_set_add(struct loop_epoll_set *es, struct loop_watcher *w)
{
    struct epoll_event ev = {.events = epoll_from_loop(w->events), .data.ptr = w};
    if (epoll_ctl(es->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0)
        return -errno;
    w->kernel = w->events;
    return 0;
}

int loop_epoll_set_mod(struct loop_epoll_set *es, struct loop_watcher *w)
{
    struct epoll_event ev = {.events = epoll_from_loop(w->events), .data.ptr = w};
    if (epoll_ctl(es->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
        return -errno;
    w->kernel = w->events;
    return 0;
}

void loop_epoll_set_del(struct loop_epoll_set *es, struct loop_watcher *w)
{
    /* At once, not at the next wait: the descriptor may be closed right
     * after, and a copy of it (a forked child's) would keep it in the set. */
    epoll_ctl(es->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

/* Set once epoll_pwait2 failed with ENOSYS (a kernel before 5.11, or a
 * filter that refuses it): from then on every wait is epoll_wait. */
static atomic_bool epoll_no_pwait2;

int loop_epoll_set_wait(struct loop_epoll_set *es, int64_t timeout_ns)
{
    es->n = -1;
    errno = ENOSYS;
    if (timeout_ns > 0 && timeout_ns % 1000000 != 0 &&
        !atomic_load_explicit(&epoll_no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000),
                              .tv_nsec = (long)(timeout_ns % 1000000000)};
        /* (The test hook WHARF_EPOLL_NO_PWAIT2 plays a kernel without it.) */
        es->n = getenv("WHARF_EPOLL_NO_PWAIT2") ? -1
                : epoll_pwait2(es->epfd, es->events, LOOP_EVENTS, &ts, NULL);
        if (es->n < 0 && errno == ENOSYS)
            atomic_store_explicit(&epoll_no_pwait2, true, memory_order_relaxed);
    }
    if (es->n < 0 && errno == ENOSYS) {
        /* Whole milliseconds, rounded up: a wait that ended before the
         * deadline would be asked for again at once, a spin until it came. */
        int ms = timeout_ns < 0 ? -1
                 : timeout_ns / 1000000 >= INT_MAX ? INT_MAX
                                                   : (int)((timeout_ns + 999999) / 1000000);
        es->n = epoll_wait(es->epfd, es->events, LOOP_EVENTS, ms);
    }
    if (es->n < 0) {
        int rc = errno == EINTR ? 0 : -errno;
        es->n = 0;
        return rc;
    }
    return 0;
}

int loop_epoll_set_dispatch(struct loop_epoll_set *es)
{
    int n = es->n;
    es->n = 0;
    for (int i = 0; i < n; i++) {
        struct loop_watcher *w = es->events[i].data.ptr;
        if (w->fd >= 0) /* not removed earlier in this turn */
            w->fn(w, epoll_to_loop(es->events[i].events));
    }
    return n;
}

/* ---- the backend: lp->be is the set ---------------------------------------- */

static int epoll_init(struct loop *lp)
{
    struct loop_epoll_set *es;
    int rc = loop_epoll_set_new(&es);
    if (rc == 0)
        lp->be = es;
    return rc;
}

static void epoll_destroy(struct loop *lp)
{
    loop_epoll_set_free(lp->be);
    lp->be = NULL;
}

static int epoll_watch(struct loop *lp, struct loop_watcher *w)
{
    return loop_epoll_set_add(lp->be, w);
}

static void epoll_unwatch(struct loop *lp, struct loop_watcher *w)
{
    loop_epoll_set_del(lp->be, w);
}

/* Tells the kernel the interest changes queued since the last wait, where
 * the wanted interest still differs from the kernel's. */
static void epoll_apply(struct loop *lp)
{
    while (lp->changes) {
        struct loop_watcher *w = lp->changes;
        loop_unlink(w);
        if (w->events == w->kernel)
            continue; /* undone within the turn */
        lp->kernel_changes++;
        int rc = loop_epoll_set_mod(lp->be, w);
        if (rc < 0) {
            w->error = rc;
            loop_link(&lp->refused, w); /* reported in this turn's dispatch */
        }
    }
}

static int epoll_wait_turn(struct loop *lp, int64_t timeout_ns)
{
    return loop_epoll_set_wait(lp->be, timeout_ns);
}

static int epoll_dispatch(struct loop *lp)
{
    return loop_epoll_set_dispatch(lp->be);
}

const struct loop_backend loop_epoll_backend = {
    .io = LOOP_IO_EPOLL,
    .init = epoll_init,
    .destroy = epoll_destroy,
    .watch = epoll_watch,
    .unwatch = epoll_unwatch,
    .apply = epoll_apply,
    .wait = epoll_wait_turn,
    .dispatch = epoll_dispatch,
};
