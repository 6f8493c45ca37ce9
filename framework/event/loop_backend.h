/*
 * loop_backend.h - what loop.c asks of a readiness backend (loop_epoll.c,
 * loop_uring.c), and the few things of loop.c a backend uses.  Private to
 * framework/event: nothing outside it includes this.
 *
 * loop.c owns the turn, the queue of interest changes (lp->changes) and the
 * list of refused changes (lp->refused); a backend owns its kernel objects
 * (lp->be) and what a watcher's `kernel`, `slot` and `state` mean.
 */
#ifndef WHARF_LOOP_BACKEND_H
#define WHARF_LOOP_BACKEND_H

#include "loop.h"

#include <sys/types.h>

/* Events taken from the kernel per turn. */
#define LOOP_EVENTS 256

struct loop_backend {
    enum loop_io io;
    /* Sets up lp->be.  Returns 0 or -errno. */
    int (*init)(struct loop *lp);
    /* Releases lp->be (any thread; the watchers are gone or abandoned). */
    void (*destroy)(struct loop *lp);
    /* Registers w (w->fd, w->events set by loop.c; w->kernel, slot and
     * state are the backend's to set).  Returns 0 or -errno. */
    int (*watch)(struct loop *lp, struct loop_watcher *w);
    /* Unregisters w (still has its fd; loop.c took it off every list). */
    void (*unwatch)(struct loop *lp, struct loop_watcher *w);
    /* Takes every watcher off lp->changes and tells the kernel what
     * differs; refusals go on lp->refused with w->error set. */
    void (*apply)(struct loop *lp);
    /* Waits up to timeout_ns nanoseconds (-1: no limit, 0: not at all) for
     * readiness, never returning early because of the timeout (a backend
     * that cannot wait in nanoseconds rounds up).  Returns 0 or -errno
     * (EINTR and a timeout are 0). */
    int (*wait)(struct loop *lp, int64_t timeout_ns);
    /* Calls the callbacks of what the wait found; returns how many. */
    int (*dispatch)(struct loop *lp);
    /* The loop's thread leaves it (loop_run_deferred): let go of what the
     * kernel still holds for it.  NULL: nothing to do. */
    void (*settle)(struct loop *lp);
    /* loop_recv of a watcher of lp.  NULL: recv(2). */
    ssize_t (*recv)(struct loop *lp, struct loop_watcher *w, void *p, size_t len);
};

extern const struct loop_backend loop_epoll_backend;
extern const struct loop_backend loop_uring_backend;

/* Whether the process's backend was asked for by name (loop_io.c): a loop
 * then never falls back to epoll. */
bool loop_io_explicit(void);
/* Sets up a small ring and drops it (loop_uring.c): 0, or -errno with the
 * reason in why. */
int loop_uring_probe(char *why, size_t whylen);

/* Puts w at the head of the list *head (lp->changes or lp->refused). */
void loop_link(struct loop_watcher **head, struct loop_watcher *w);
/* Takes w off whichever list it is on (if any). */
void loop_unlink(struct loop_watcher *w);

/*
 * An epoll set of watchers (loop_epoll.c): the epoll backend is one, and
 * the io_uring backend keeps one for the watchers a poll request cannot
 * serve (loop.h, "Backends").  Each returns 0 or -errno.
 */
struct loop_epoll_set;
int loop_epoll_set_new(struct loop_epoll_set **out);
void loop_epoll_set_free(struct loop_epoll_set *es);
int loop_epoll_set_fd(const struct loop_epoll_set *es);
/* Adds w with w->events (w->kernel becomes them), changes it to w->events,
 * or removes it. */
int loop_epoll_set_add(struct loop_epoll_set *es, struct loop_watcher *w);
int loop_epoll_set_mod(struct loop_epoll_set *es, struct loop_watcher *w);
void loop_epoll_set_del(struct loop_epoll_set *es, struct loop_watcher *w);
/* Waits for readiness up to timeout_ns (as the backend's wait: -1 no limit,
 * 0 not at all; epoll_pwait2 for a timeout that is not whole milliseconds,
 * else epoll_wait); then the callbacks of what it found (returns how many
 * were ready). */
int loop_epoll_set_wait(struct loop_epoll_set *es, int64_t timeout_ns);
int loop_epoll_set_dispatch(struct loop_epoll_set *es);

#endif
