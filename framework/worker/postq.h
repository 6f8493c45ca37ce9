/*
 * postq.h - the handlers' posts to one worker (wharf_post, wharf_post_all,
 * wharf_post_conn), apart from the mailbox that carries connection hand-offs,
 * so posts never starve hand-offs and a full hand-off queue never refuses a
 * post.
 *
 * A queue has a soft capacity (the config's "post_queue") and a hard one
 * (POSTQ_HARD_FACTOR times it).  A post is refused (-EAGAIN) only at the hard
 * capacity; above the soft one it is still queued, and a post made from a
 * connection's callback names its worker as a waiter: the worker holds that
 * connection (its reading pauses) until every queue it waits on has drained
 * to half the soft capacity, when the queue's owner sets the waiter's notice
 * and wakes it.  That is the back-pressure that makes the documented
 * broadcast lose nothing.
 *
 * The ring grows on demand (from a few slots up to the hard capacity), so an
 * idle worker holds little.  One eventfd wakes the owner for posts, for a
 * notice and for anything else that calls postq_wake (finished blocking
 * work).
 *
 * Barrier.  Every queue of the process is registered; postq_barrier(fn, arg)
 * runs fn(arg) once every queue has run (or cancelled) what it held when the
 * barrier was made.  A generation unloads its modules behind a barrier, so a
 * post made without an origin (from a handler's own thread, before its fini
 * joined that thread) never runs into an unmapped module.
 */
#ifndef WHARF_POSTQ_H
#define WHARF_POSTQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "callback.h"
#include "wharf.h"
#include "wharf_list.h"

/* The hard capacity is this many times the soft one. */
#define POSTQ_HARD_FACTOR 4
/* The default soft capacity per worker ("post_queue"). */
#define POSTQ_DEFAULT 4096

struct postq_barrier;

/* One queued post.  Exactly one of fn / conn_fn is set (barrier: neither). */
struct postq_item {
    void (*fn)(void *arg, bool cancelled);     /* wharf_post */
    void (*conn_fn)(wharf_conn *c, void *arg); /* wharf_post_conn */
    void *arg;
    uint64_t conn_id;
    struct callback_origin origin;             /* who posted (none: a foreign thread) */
    struct postq_barrier *barrier;             /* a barrier's marker */
};

struct postq {
    pthread_mutex_t lock;
    struct postq_item *ring;  /* cap slots */
    size_t head, count, cap;
    size_t soft, hard;
    bool closed;
    _Atomic size_t queued;    /* == count, readable without the lock */
    unsigned nwaiters;        /* bits in waiters */
    uint64_t *waiters;        /* workers holding a connection until this drains */
    bool any_waiter;
    atomic_bool notice;       /* a queue this worker waits on has drained */
    int efd;
    struct wharf_list reg;    /* in the process's queues (barriers) */
};

/* Prepares q for a server of `nworkers` workers with the default soft
 * capacity.  Returns 0 or -errno. */
int postq_init(struct postq *q, unsigned nworkers);
/* Sets the soft capacity (the hard one follows).  Before any post. */
void postq_set_capacity(struct postq *q, size_t soft);
/* Closes (cancelling what is queued, through `run`) and frees.  Owner. */
void postq_free(struct postq *q, void (*run)(void *ctx, struct postq_item *it, bool cancelled),
                void *ctx);

/*
 * Queues *it (its origin is taken over).  `waiter` is the index of the
 * worker whose connection's callback posts (it is recorded as a waiter when
 * the queue is then above its soft capacity), or -1.  Returns 1 (queued,
 * above the soft capacity), 0 (queued), -EAGAIN (at the hard capacity),
 * -ENOMEM or -EPIPE (closed); nothing is queued on an error.  Any thread.
 */
int postq_push(struct postq *q, const struct postq_item *it, int waiter);

/*
 * Runs up to `max` queued posts through run(ctx, item, false), oldest first.
 * When the queue falls to half its soft capacity, each waiter is told through
 * on_drained(ctx, index).  Clears the wake-up first.  Returns how many ran.
 * Owner thread.
 */
size_t postq_drain(struct postq *q, size_t max,
                   void (*run)(void *ctx, struct postq_item *it, bool cancelled),
                   void (*on_drained)(void *ctx, unsigned waiter), void *ctx);
/* Refuses further posts and cancels what is queued (run with cancelled ==
 * true); waiters are told.  Owner thread, or any once the owner is gone. */
void postq_close(struct postq *q, void (*run)(void *ctx, struct postq_item *it, bool cancelled),
                 void (*on_drained)(void *ctx, unsigned waiter), void *ctx);

/* Whether q is at or below half its soft capacity; if not, `waiter` is
 * (again) recorded, so it is told when it is.  Any thread. */
bool postq_drained_for(struct postq *q, unsigned waiter);
/* Sets q's notice (a queue its owner waits on drained) and wakes it. */
void postq_notify(struct postq *q);
/* Takes the notice (true once per postq_notify).  Owner thread. */
bool postq_take_notice(struct postq *q);

/* Wakes q's owner (its eventfd).  Any thread; cannot fail. */
void postq_wake(struct postq *q);
/* The eventfd to watch, and the posts queued now (a snapshot). */
int postq_fd(const struct postq *q);
size_t postq_len(struct postq *q);

/*
 * Runs fn(arg) once every queue of the process has run or cancelled what it
 * holds now: at once when none holds anything, else on the thread of the
 * last queue to get there.  Returns 0, or -ENOMEM (fn never runs: what it
 * would release is kept).
 */
int postq_barrier(void (*fn)(void *arg), void *arg);

#endif
