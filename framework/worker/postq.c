/*
 * postq.c - the handlers' post queue of one worker (see postq.h).
 *
 * Locking: q->lock guards the ring, count, closed and the waiter bits;
 * `queued` mirrors count for snapshots.  The registry lock guards the list
 * of queues and is taken before a queue's lock, never after.
 *
 * Wake-ups follow mailbox.c: a producer writes the eventfd when its post
 * took the queue from empty to non-empty; the owner reads it (counter to 0)
 * before popping until it sees the queue empty.  A notice is set before its
 * write, and taken after the owner's read, so neither is lost.
 *
 * Items are copied out under the lock in batches and run after unlocking.
 * A queue is marked closed only when a pass under its lock finds it empty,
 * so an item being cancelled still counts as queued for a barrier: the
 * barrier's marker lands behind it and passes only after it has run.
 */
#include "postq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Slots of a new ring, and items copied out per lock round. */
#define POSTQ_FIRST_CAP 64
#define POSTQ_BATCH 32

struct postq_barrier {
    _Atomic size_t pending; /* markers not yet passed, +1 while being made */
    void (*fn)(void *arg);
    void *arg;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wharf_list registry = WHARF_LIST_INIT(registry);

int postq_init(struct postq *q, unsigned nworkers)
{
    memset(q, 0, sizeof *q);
    q->soft = POSTQ_DEFAULT;
    q->hard = POSTQ_DEFAULT * POSTQ_HARD_FACTOR;
    q->nwaiters = nworkers;
    q->waiters = calloc((nworkers + 63) / 64 + 1, sizeof *q->waiters);
    if (!q->waiters)
        return -ENOMEM;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0) {
        int rc = -errno;
        free(q->waiters);
        q->waiters = NULL;
        return rc;
    }
    pthread_mutex_init(&q->lock, NULL);
    atomic_init(&q->queued, 0);
    atomic_init(&q->notice, false);
    pthread_mutex_lock(&registry_lock);
    wharf_list_insert_head(&registry, &q->reg);
    pthread_mutex_unlock(&registry_lock);
    return 0;
}

void postq_set_capacity(struct postq *q, size_t soft)
{
    q->soft = soft ? soft : 1;
    q->hard = q->soft * POSTQ_HARD_FACTOR;
}

void postq_wake(struct postq *q)
{
    uint64_t one = 1; /* fails only past 2^64 - 2 unread wake-ups */
    while (write(q->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* Makes room for one more item (under the lock).  0 or -ENOMEM. */
static int postq_grow(struct postq *q)
{
    if (q->count < q->cap)
        return 0;
    size_t cap = q->cap ? q->cap * 2 : POSTQ_FIRST_CAP;
    struct postq_item *ring = malloc(cap * sizeof *ring);
    if (!ring)
        return -ENOMEM;
    for (size_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->head = 0;
    q->cap = cap;
    return 0;
}

/* Appends *it under the lock; `limit` caps the count.  Returns 0 (and
 * whether the queue was empty in *was_empty) or -errno. */
static int postq_append(struct postq *q, const struct postq_item *it, size_t limit,
                        bool *was_empty)
{
    if (q->closed)
        return -EPIPE;
    if (q->count >= limit)
        return -EAGAIN;
    if (postq_grow(q) < 0)
        return -ENOMEM;
    q->ring[(q->head + q->count) % q->cap] = *it;
    *was_empty = q->count++ == 0;
    atomic_store_explicit(&q->queued, q->count, memory_order_relaxed);
    return 0;
}

int postq_push(struct postq *q, const struct postq_item *it, int waiter)
{
    bool was_empty = false;
    pthread_mutex_lock(&q->lock);
    int rc = postq_append(q, it, q->hard, &was_empty);
    if (rc == 0 && q->count > q->soft) {
        rc = 1;
        if (waiter >= 0 && (unsigned)waiter < q->nwaiters) {
            q->waiters[waiter / 64] |= 1ull << (waiter % 64);
            q->any_waiter = true;
        }
    }
    pthread_mutex_unlock(&q->lock);
    if (was_empty)
        postq_wake(q);
    return rc;
}

/* Takes up to max items out; if the queue is then low with waiters, moves
 * the waiter bits into `told` (nwaiters bits) and returns them as set. */
static size_t postq_take(struct postq *q, struct postq_item *out, size_t max, uint64_t *told,
                         bool *any_told, bool closing)
{
    pthread_mutex_lock(&q->lock);
    size_t n = 0;
    while (n < max && q->count > 0) {
        out[n++] = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    atomic_store_explicit(&q->queued, q->count, memory_order_relaxed);
    if (q->any_waiter && (closing || q->count <= q->soft / 2)) {
        size_t words = (q->nwaiters + 63) / 64;
        memcpy(told, q->waiters, words * sizeof *told);
        memset(q->waiters, 0, words * sizeof *told);
        q->any_waiter = false;
        *any_told = true;
    }
    if (closing && n == 0)
        q->closed = true; /* seen empty under the lock: nothing is in hand */
    pthread_mutex_unlock(&q->lock);
    return n;
}

static void postq_barrier_pass(struct postq_barrier *b);

/* Runs one item taken out of the queue (a marker passes its barrier). */
static void postq_run(struct postq_item *it, bool cancelled,
                      void (*run)(void *ctx, struct postq_item *it, bool cancelled), void *ctx)
{
    if (it->barrier)
        postq_barrier_pass(it->barrier);
    else
        run(ctx, it, cancelled);
}

static void postq_tell(const struct postq *q, uint64_t *told,
                       void (*on_drained)(void *ctx, unsigned waiter), void *ctx)
{
    for (unsigned i = 0; i < q->nwaiters; i++)
        if (told[i / 64] & (1ull << (i % 64)))
            on_drained(ctx, i);
}

size_t postq_drain(struct postq *q, size_t max,
                   void (*run)(void *ctx, struct postq_item *it, bool cancelled),
                   void (*on_drained)(void *ctx, unsigned waiter), void *ctx)
{
    uint64_t v;
    while (read(q->efd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    struct postq_item batch[POSTQ_BATCH];
    uint64_t told[(q->nwaiters + 63) / 64 + 1];
    size_t ran = 0;
    while (ran < max) {
        size_t want = max - ran < POSTQ_BATCH ? max - ran : POSTQ_BATCH;
        bool any_told = false;
        size_t n = postq_take(q, batch, want, told, &any_told, false);
        for (size_t i = 0; i < n; i++)
            postq_run(&batch[i], false, run, ctx);
        if (any_told)
            postq_tell(q, told, on_drained, ctx);
        ran += n;
        if (n < want)
            return ran; /* seen empty */
    }
    if (postq_len(q) > 0)
        postq_wake(q); /* the batch limit: the rest is not forgotten */
    return ran;
}

void postq_close(struct postq *q, void (*run)(void *ctx, struct postq_item *it, bool cancelled),
                 void (*on_drained)(void *ctx, unsigned waiter), void *ctx)
{
    struct postq_item batch[POSTQ_BATCH];
    uint64_t told[(q->nwaiters + 63) / 64 + 1];
    for (;;) {
        bool any_told = false;
        size_t n = postq_take(q, batch, POSTQ_BATCH, told, &any_told, true);
        for (size_t i = 0; i < n; i++)
            postq_run(&batch[i], true, run, ctx);
        if (any_told && on_drained)
            postq_tell(q, told, on_drained, ctx);
        if (n == 0)
            return;
    }
}

void postq_free(struct postq *q, void (*run)(void *ctx, struct postq_item *it, bool cancelled),
                void *ctx)
{
    if (!q->waiters)
        return; /* never initialized */
    postq_close(q, run, NULL, ctx);
    pthread_mutex_lock(&registry_lock);
    wharf_list_remove(&q->reg);
    pthread_mutex_unlock(&registry_lock);
    close(q->efd);
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    free(q->waiters);
    memset(q, 0, sizeof *q);
    q->efd = -1;
}

bool postq_drained_for(struct postq *q, unsigned waiter)
{
    pthread_mutex_lock(&q->lock);
    bool low = q->closed || q->count <= q->soft / 2;
    if (!low && waiter < q->nwaiters) {
        q->waiters[waiter / 64] |= 1ull << (waiter % 64);
        q->any_waiter = true;
    }
    pthread_mutex_unlock(&q->lock);
    return low;
}

void postq_notify(struct postq *q)
{
    atomic_store(&q->notice, true);
    postq_wake(q);
}

bool postq_take_notice(struct postq *q)
{
    return atomic_exchange(&q->notice, false);
}

int postq_fd(const struct postq *q)
{
    return q->efd;
}

size_t postq_len(struct postq *q)
{
    return atomic_load_explicit(&q->queued, memory_order_relaxed);
}

/* ---- barriers ------------------------------------------------------------------ */

/* A marker ran (or was cancelled): the last one runs the barrier's fn. */
static void postq_barrier_pass(struct postq_barrier *b)
{
    if (atomic_fetch_sub(&b->pending, 1) != 1)
        return;
    b->fn(b->arg);
    free(b);
}

int postq_barrier(void (*fn)(void *arg), void *arg)
{
    struct postq_barrier *b = malloc(sizeof *b);
    if (!b)
        return -ENOMEM;
    *b = (struct postq_barrier){.fn = fn, .arg = arg};
    atomic_init(&b->pending, 1);
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    struct wharf_list *it;
    wharf_list_foreach(it, &registry) {
        if (rc != 0)
            break;
        struct postq *q = wharf_list_entry(it, struct postq, reg);
        struct postq_item marker = {.barrier = b};
        bool was_empty = false;
        atomic_fetch_add(&b->pending, 1);
        pthread_mutex_lock(&q->lock);
        int prc = postq_append(q, &marker, SIZE_MAX, &was_empty);
        pthread_mutex_unlock(&q->lock);
        if (prc == -EPIPE)
            atomic_fetch_sub(&b->pending, 1); /* closed: nothing left in it */
        else if (prc < 0)
            rc = prc; /* the barrier never completes: fn's memory is kept */
        else if (was_empty)
            postq_wake(q);
    }
    pthread_mutex_unlock(&registry_lock);
    if (rc == 0)
        postq_barrier_pass(b);
    return rc;
}
