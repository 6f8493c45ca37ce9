/*
 * rendezvous.c - bounded, reference-counted waits for other threads (see
 * rendezvous.h).  A mutex and a condition variable on CLOCK_MONOTONIC; the
 * counts live under the mutex, the reference count is atomic so the last
 * holder frees without taking the lock of a dying object.
 */
#include "rendezvous.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct rendezvous {
    pthread_mutex_t lock;
    pthread_cond_t cond;   /* CLOCK_MONOTONIC */
    unsigned parties;
    unsigned pending;      /* parties not done yet */
    unsigned busy;         /* parties between begin and end */
    unsigned performed;    /* parties that ended (did their part) */
    bool abandoned;        /* the waiter gave up: begin says no */
    atomic_uint refs;
};

static atomic_ulong live;

struct rendezvous *rendezvous_new(unsigned parties)
{
    struct rendezvous *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&r->lock, NULL);
    r->parties = r->pending = parties;
    atomic_init(&r->refs, parties + 1);
    atomic_fetch_add(&live, 1);
    return r;
}

void rendezvous_release(struct rendezvous *r)
{
    if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
    atomic_fetch_sub(&live, 1);
}

/* Counts one party down (and, when it ended, as performed), then drops its
 * reference: the broadcast happens under the lock, before the waiter can
 * free anything. */
static void rendezvous_count(struct rendezvous *r, bool ended, bool performed)
{
    pthread_mutex_lock(&r->lock);
    if (ended)
        r->busy--;
    if (performed)
        r->performed++;
    if (r->pending > 0)
        r->pending--;
    if (r->pending == 0 || (ended && r->busy == 0))
        pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    rendezvous_release(r);
}

void rendezvous_done(struct rendezvous *r)
{
    rendezvous_count(r, false, false);
}

bool rendezvous_begin(struct rendezvous *r)
{
    pthread_mutex_lock(&r->lock);
    bool go = !r->abandoned;
    if (go)
        r->busy++;
    pthread_mutex_unlock(&r->lock);
    return go;
}

void rendezvous_end(struct rendezvous *r, bool performed)
{
    rendezvous_count(r, true, performed);
}

/* The CLOCK_MONOTONIC time timeout_ms from now (saturating). */
static struct timespec rendezvous_deadline(uint64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t max_s = (uint64_t)1 << 40; /* far enough, and no time_t overflow */
    uint64_t s = timeout_ms / 1000;
    ts.tv_sec += (time_t)(s < max_s ? s : max_s);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Waits (lock held) until no party is pending or the deadline passes. */
static bool rendezvous_wait_locked(struct rendezvous *r, uint64_t timeout_ms)
{
    struct timespec deadline = rendezvous_deadline(timeout_ms);
    int rc = 0;
    while (r->pending > 0 && rc == 0)
        rc = pthread_cond_timedwait(&r->cond, &r->lock, &deadline);
    return r->pending == 0;
}

bool rendezvous_wait(struct rendezvous *r, uint64_t timeout_ms)
{
    pthread_mutex_lock(&r->lock);
    bool done = rendezvous_wait_locked(r, timeout_ms);
    pthread_mutex_unlock(&r->lock);
    return done;
}

bool rendezvous_settle(struct rendezvous *r, uint64_t timeout_ms)
{
    pthread_mutex_lock(&r->lock);
    if (!rendezvous_wait_locked(r, timeout_ms)) {
        r->abandoned = true;
        while (r->busy > 0)
            pthread_cond_wait(&r->cond, &r->lock);
    }
    bool all = r->performed == r->parties;
    pthread_mutex_unlock(&r->lock);
    return all;
}

unsigned long rendezvous_live(void)
{
    return atomic_load(&live);
}
