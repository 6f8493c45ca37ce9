/*
 * queue.c - the bounded MPSC hand-off queue between the acceptor (or any
 * other thread) and one worker, in the memcached shape: a ring of items
 * under a mutex, plus an eventfd the worker polls alongside its sockets.
 *
 * Locking: q->lock guards head and count (and the ring slots).  depth and
 * efd never change after queue_new, so they are read without it.
 *
 * Wake-up protocol.  A producer writes 1 to the eventfd, after unlocking,
 * only when its push took the queue from empty to non-empty.  The consumer,
 * when the eventfd is readable, calls queue_wake_clear() (read: counter to
 * 0) and then pops until queue_pop reports empty.
 *
 * No wake-up is lost, that is, the consumer never waits on an unreadable
 * eventfd while an item is queued.  Take any item X still queued while the
 * consumer waits, and let P be the push that last took the queue from empty
 * to non-empty at or before X's push (X's own push, or an earlier one if the
 * queue was not empty).  The queue has been non-empty from P until now, and
 * the consumer's last drain ended on seeing it empty, so that drain, and
 * the clear before it, happened before P.  P's write happens after P, hence
 * after the consumer's last read: the counter is non-zero and the eventfd is
 * readable.  (All of this is ordered by q->lock: "empty" is observed, and P
 * counts as a transition, under the same lock.)
 *
 * The converse, a wake-up with nothing to pop, is possible and harmless: a
 * drain that starts between P's unlock and P's write pops P's item, and the
 * late write then wakes the consumer to find the queue empty.
 */
#include "queue.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct queue {
    pthread_mutex_t lock;
    size_t head;  /* slot of the oldest item */
    size_t count; /* items queued */
    size_t depth; /* slots in ring */
    int efd;
    struct queue_item ring[];
};

/*
 * Creates an empty queue with room for depth items and a non-blocking,
 * close-on-exec eventfd.  Returns NULL with errno EINVAL (depth 0), ENOMEM,
 * or eventfd's error.  The caller frees it with queue_free.
 */
struct queue *queue_new(size_t depth)
{
    if (depth == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (depth > (SIZE_MAX - sizeof(struct queue)) / sizeof(struct queue_item)) {
        errno = ENOMEM;
        return NULL;
    }
    struct queue *q = malloc(sizeof(*q) + depth * sizeof(q->ring[0]));
    if (q == NULL)
        return NULL;
    q->head = 0;
    q->count = 0;
    q->depth = depth;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0)
        goto err;
    int rc = pthread_mutex_init(&q->lock, NULL);
    if (rc != 0) {
        close(q->efd);
        errno = rc;
        goto err;
    }
    return q;

err:;
    int saved = errno;
    free(q);
    errno = saved;
    return NULL;
}

/*
 * Closes the eventfd and frees the queue; NULL is ignored.  Items still
 * queued are dropped, so the consumer pops them first (closing their fds).
 * No other thread may be using the queue.
 */
void queue_free(struct queue *q)
{
    if (q == NULL)
        return;
    close(q->efd);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

/*
 * Copies *item to the tail.  Never blocks on the consumer: returns 0, or
 * -EAGAIN when the queue is full.  Wakes the consumer through the eventfd
 * when the queue was empty.  Thread-safe.
 */
int queue_push(struct queue *q, const struct queue_item *item)
{
    pthread_mutex_lock(&q->lock);
    if (q->count == q->depth) {
        pthread_mutex_unlock(&q->lock);
        return -EAGAIN;
    }
    size_t tail = q->head + q->count;
    if (tail >= q->depth)
        tail -= q->depth;
    q->ring[tail] = *item;
    int was_empty = q->count++ == 0;
    pthread_mutex_unlock(&q->lock);

    if (was_empty) {
        /* Adds 1 to the counter.  It can only fail with EAGAIN when the
         * counter would pass 2^64 - 2, which takes that many wake-ups
         * without a single read, so the result needs no handling beyond
         * EINTR. */
        uint64_t one = 1;
        while (write(q->efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
    return 0;
}

/* Copies the oldest item to *item.  Returns 0, or -EAGAIN when empty.
 * Consumer thread only. */
int queue_pop(struct queue *q, struct queue_item *item)
{
    pthread_mutex_lock(&q->lock);
    if (q->count == 0) {
        pthread_mutex_unlock(&q->lock);
        return -EAGAIN;
    }
    *item = q->ring[q->head];
    if (++q->head == q->depth)
        q->head = 0;
    q->count--;
    pthread_mutex_unlock(&q->lock);
    return 0;
}

/* The eventfd: readable when a push found the queue empty since the last
 * queue_wake_clear.  Owned by the queue; do not close it. */
int queue_fd(const struct queue *q)
{
    return q->efd;
}

/*
 * Resets the eventfd counter so it stops being readable.  Call it before
 * draining with queue_pop, never after (see the protocol above).  A read
 * that finds the counter already zero (EAGAIN) is fine.  Consumer only.
 */
void queue_wake_clear(struct queue *q)
{
    uint64_t v;
    while (read(q->efd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
}

/* Items queued at the moment of the call.  Thread-safe. */
size_t queue_len(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

/* The capacity given to queue_new. */
size_t queue_depth(const struct queue *q)
{
    return q->depth;
}
