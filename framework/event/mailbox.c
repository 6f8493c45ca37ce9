/*
 * mailbox.c - the bounded MPSC message queue of a loop (see mailbox.h), in
 * the memcached shape: a ring of messages under a mutex, plus an eventfd the
 * owner watches alongside its sockets.
 *
 * Locking: mb->lock guards head, count, closed and the ring slots; `queued`
 * mirrors count for lock-free snapshots (mailbox_len).  depth,
 * reserve and efd never change after mailbox_new, so they are read without it.
 * Messages are copied out of the ring under the lock in batches and run
 * after unlocking, so a message may post to its own mailbox.
 *
 * Wake-up protocol.  A producer writes 1 to the eventfd, after unlocking,
 * only when its post took the mailbox from empty to non-empty.  The owner,
 * when the eventfd is readable, reads it (counter to 0) and then pops until
 * it sees the mailbox empty (or its batch limit, after which it writes the
 * eventfd itself so the rest is not forgotten).
 *
 * No wake-up is lost, that is, the owner never waits on an unreadable
 * eventfd while a message is queued.  Take any message X still queued while
 * the owner waits, and let P be the post that last took the mailbox from
 * empty to non-empty at or before X's post.  The mailbox has been non-empty
 * from P until now, and the owner's last drain ended on seeing it empty, so
 * that drain, and the read before it, happened before P.  P's write happens
 * after P, hence after the owner's last read: the counter is non-zero and
 * the eventfd is readable.  (All of this is ordered by mb->lock: "empty" is
 * observed, and P counts as a transition, under the same lock.)
 *
 * The converse, a wake-up with nothing to pop, is possible and harmless.
 *
 * A running owner (mailbox_running) is not woken at all: a post that takes
 * the mailbox from empty to non-empty writes the eventfd only while
 * `running` is false.  The owner clears `running` in mailbox_idle and then
 * looks at `queued`; a producer stores `queued` and then looks at `running`,
 * with a sequentially consistent fence between the store and the load on
 * both sides (Dekker's pattern): either the owner sees the message and does
 * not sleep, or the producer sees the owner idle and writes the eventfd.
 * The argument above then holds for the posts made after the owner went
 * idle, and a message posted while it ran is found by its mailbox_idle (or
 * the mailbox_run before it).
 */
#include "mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Messages copied out per lock round while draining. */
#define MAILBOX_BATCH 32

struct mailbox_msg {
    mailbox_fn fn;
    void *arg;
    _Alignas(8) unsigned char payload[MAILBOX_PAYLOAD];
};

struct mailbox {
    pthread_mutex_t lock;
    size_t head;    /* slot of the oldest message */
    size_t count;   /* messages queued */
    size_t depth;   /* ordinary capacity */
    size_t size;    /* slots in ring: depth + reserve */
    bool closed;
    _Atomic size_t queued; /* == count, readable without the lock */
    _Atomic bool running;  /* the owner runs and will look before it sleeps */
    int efd;
    struct mailbox_msg ring[];
};

struct mailbox *mailbox_new(size_t depth, size_t reserve)
{
    if (depth == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (depth > SIZE_MAX / 2 / sizeof(struct mailbox_msg) - reserve) {
        errno = ENOMEM;
        return NULL;
    }
    size_t size = depth + reserve;
    struct mailbox *mb = malloc(sizeof(*mb) + size * sizeof(mb->ring[0]));
    if (mb == NULL)
        return NULL;
    mb->head = 0;
    mb->count = 0;
    mb->depth = depth;
    mb->size = size;
    mb->closed = false;
    atomic_init(&mb->queued, 0);
    atomic_init(&mb->running, false);
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0)
        goto err;
    int rc = pthread_mutex_init(&mb->lock, NULL);
    if (rc != 0) {
        close(mb->efd);
        errno = rc;
        goto err;
    }
    return mb;

err:;
    int saved = errno;
    free(mb);
    errno = saved;
    return NULL;
}

void mailbox_free(struct mailbox *mb)
{
    if (mb == NULL)
        return;
    mailbox_close(mb);
    close(mb->efd);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

static void mailbox_wake(struct mailbox *mb)
{
    /* Adds 1 to the counter.  It can only fail with EAGAIN when the counter
     * would pass 2^64 - 2, which takes that many wake-ups without a single
     * read, so the result needs no handling beyond EINTR. */
    uint64_t one = 1;
    while (write(mb->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

static int mailbox_push(struct mailbox *mb, size_t limit, mailbox_fn fn, void *arg,
                        const void *payload, size_t len)
{
    if (len > MAILBOX_PAYLOAD)
        return -EINVAL;
    pthread_mutex_lock(&mb->lock);
    if (mb->closed) {
        pthread_mutex_unlock(&mb->lock);
        return -EPIPE;
    }
    if (mb->count >= limit) {
        pthread_mutex_unlock(&mb->lock);
        return -EAGAIN;
    }
    size_t tail = mb->head + mb->count;
    if (tail >= mb->size)
        tail -= mb->size;
    struct mailbox_msg *m = &mb->ring[tail];
    m->fn = fn;
    m->arg = arg;
    if (len)
        memcpy(m->payload, payload, len);
    bool was_empty = mb->count++ == 0;
    atomic_store_explicit(&mb->queued, mb->count, memory_order_relaxed);
    pthread_mutex_unlock(&mb->lock);
    if (was_empty) {
        atomic_thread_fence(memory_order_seq_cst); /* queued, then running */
        if (!atomic_load_explicit(&mb->running, memory_order_relaxed))
            mailbox_wake(mb);
    }
    return 0;
}

int mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg, const void *payload, size_t len)
{
    return mailbox_push(mb, mb->depth, fn, arg, payload, len);
}

int mailbox_post_urgent(struct mailbox *mb, mailbox_fn fn, void *arg, const void *payload,
                        size_t len)
{
    return mailbox_push(mb, mb->size, fn, arg, payload, len);
}

/* Copies up to max messages out of the ring.  Returns how many. */
static size_t mailbox_take(struct mailbox *mb, struct mailbox_msg *out, size_t max)
{
    pthread_mutex_lock(&mb->lock);
    size_t n = 0;
    while (n < max && mb->count > 0) {
        out[n++] = mb->ring[mb->head];
        if (++mb->head == mb->size)
            mb->head = 0;
        mb->count--;
    }
    atomic_store_explicit(&mb->queued, mb->count, memory_order_relaxed);
    pthread_mutex_unlock(&mb->lock);
    return n;
}

size_t mailbox_drain(struct mailbox *mb, size_t max)
{
    uint64_t v;
    while (read(mb->efd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
    return mailbox_run(mb, max);
}

size_t mailbox_run(struct mailbox *mb, size_t max)
{
    struct mailbox_msg batch[MAILBOX_BATCH];
    size_t ran = 0;
    while (ran < max) {
        size_t want = max - ran < MAILBOX_BATCH ? max - ran : MAILBOX_BATCH;
        size_t n = mailbox_take(mb, batch, want);
        for (size_t i = 0; i < n; i++)
            batch[i].fn(batch[i].arg, batch[i].payload, false);
        ran += n;
        if (n < want)
            return ran; /* seen empty */
    }
    /* The batch limit was reached: make sure the rest wakes the owner (a
     * running one looks again before it sleeps). */
    if (mailbox_len(mb) > 0 && !atomic_load_explicit(&mb->running, memory_order_relaxed))
        mailbox_wake(mb);
    return ran;
}

bool mailbox_idle(struct mailbox *mb)
{
    atomic_store_explicit(&mb->running, false, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst); /* running, then queued */
    if (atomic_load_explicit(&mb->queued, memory_order_relaxed) == 0)
        return true;
    atomic_store_explicit(&mb->running, true, memory_order_relaxed);
    return false;
}

void mailbox_running(struct mailbox *mb)
{
    atomic_store_explicit(&mb->running, true, memory_order_relaxed);
}

void mailbox_close(struct mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    mb->closed = true;
    pthread_mutex_unlock(&mb->lock);
    struct mailbox_msg batch[MAILBOX_BATCH];
    size_t n;
    while ((n = mailbox_take(mb, batch, MAILBOX_BATCH)) > 0)
        for (size_t i = 0; i < n; i++)
            batch[i].fn(batch[i].arg, batch[i].payload, true);
}

int mailbox_fd(const struct mailbox *mb)
{
    return mb->efd;
}

size_t mailbox_len(struct mailbox *mb)
{
    /* A snapshot without the lock: the acceptor asks on every accept. */
    return atomic_load_explicit(&mb->queued, memory_order_relaxed);
}

size_t mailbox_depth(const struct mailbox *mb)
{
    return mb->depth;
}
