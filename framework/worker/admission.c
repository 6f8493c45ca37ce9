/*
 * admission.c - the connection admission counts (see admission.h).
 *
 * The totals are atomics: the acceptor (or a worker accepting on its own
 * socket, "accept": "workers") takes a slot under max_connections with one
 * compare-and-swap per accepted connection (admission_reserve), so the
 * limit holds exactly whichever threads accept, and workers give slots
 * back on every close, so no lock sits on that path.  Each
 * worker's load is on its own cache line.  The per-source table (sources.c)
 * exists only while a per-source limit is configured; it has its own lock.
 */
#include "admission.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sources.h"

struct admission_load {
    _Alignas(64) _Atomic size_t n;
    _Atomic uint64_t stalled_since_ms; /* admission_set_stalled */
    atomic_bool evict_asked;           /* admission_evict_ask */
    atomic_bool room_wait;             /* admission_room_wait: the worker waits */
};

struct admission {
    _Atomic size_t open;
    _Atomic size_t output_total;    /* output buffer bytes of every connection */
    _Atomic size_t output_budget;   /* 0: no budget */
    _Atomic uint64_t pauses;        /* the acceptor stopped accepting */
    _Atomic size_t max_connections;
    _Atomic int waiting;            /* the acceptor sleeps on room_fd */
    _Atomic unsigned worker_waits;  /* workers waiting for room (room_wait set) */
    void (*room_waker)(void *ctx, unsigned worker); /* wakes one of them */
    void *room_ctx;
    int room_fd;
    pthread_mutex_t sources_lock;   /* serialises creating `sources` */
    struct sources *_Atomic sources; /* per-source counts, or NULL */
    unsigned nworkers;
    struct admission_load *loads;
};

struct admission *admission_new(unsigned nworkers, size_t max_connections, size_t per_source)
{
    struct admission *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->nworkers = nworkers;
    a->room_fd = -1;
    pthread_mutex_init(&a->sources_lock, NULL);
    atomic_store(&a->max_connections, max_connections);
    a->loads = aligned_alloc(64, sizeof *a->loads * (nworkers ? nworkers : 1));
    a->room_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!a->loads || a->room_fd < 0)
        goto fail;
    for (unsigned i = 0; i < nworkers; i++) {
        atomic_init(&a->loads[i].n, 0);
        atomic_init(&a->loads[i].stalled_since_ms, UINT64_MAX);
        atomic_init(&a->loads[i].evict_asked, false);
        atomic_init(&a->loads[i].room_wait, false);
    }
    if (admission_set_limits(a, max_connections, per_source) < 0)
        goto fail;
    return a;
fail:;
    int saved = errno ? errno : ENOMEM;
    admission_free(a);
    errno = saved;
    return NULL;
}

void admission_free(struct admission *a)
{
    if (!a)
        return;
    sources_free(atomic_load(&a->sources));
    if (a->room_fd >= 0)
        close(a->room_fd);
    pthread_mutex_destroy(&a->sources_lock);
    free(a->loads);
    free(a);
}

int admission_set_limits(struct admission *a, size_t max_connections, size_t per_source)
{
    atomic_store(&a->max_connections, max_connections);
    pthread_mutex_lock(&a->sources_lock);
    struct sources *cur = atomic_load(&a->sources);
    int rc = 0;
    if (per_source == 0) {
        /* Off: keep counting in the old table (releases still find their
         * source there) but stop refusing. */
        if (cur)
            sources_set_limit(cur, SIZE_MAX);
    } else if (cur) {
        sources_set_limit(cur, per_source);
    } else {
        /* Turned on while running: connections already open are not in the
         * new table, and their tickets say so. */
        struct sources *s = sources_new(per_source);
        if (!s)
            rc = -ENOMEM;
        else
            atomic_store(&a->sources, s);
    }
    pthread_mutex_unlock(&a->sources_lock);
    admission_wake(a);
    return rc;
}

bool admission_has_room(const struct admission *a)
{
    struct admission *m = (struct admission *)a;
    return atomic_load_explicit(&m->open, memory_order_relaxed) <
           atomic_load_explicit(&m->max_connections, memory_order_relaxed);
}

int admission_acquire(struct admission *a, const struct sockaddr *peer, unsigned worker)
{
    return admission_acquire_as(a, peer, worker, true);
}

int admission_acquire_source(struct admission *a, const struct sockaddr *peer)
{
    struct sources *s = atomic_load_explicit(&a->sources, memory_order_acquire);
    if (!s)
        return 0;
    int rc = sources_add(s, peer);
    return rc < 0 ? rc : ADMISSION_BY_SOURCE;
}

int admission_acquire_as(struct admission *a, const struct sockaddr *peer, unsigned worker,
                         bool by_source)
{
    struct sources *s = by_source ? atomic_load_explicit(&a->sources, memory_order_acquire) : NULL;
    int ticket = 0;
    if (s) {
        int rc = sources_add(s, peer);
        if (rc < 0)
            return rc;
        ticket = ADMISSION_BY_SOURCE;
    }
    atomic_fetch_add_explicit(&a->open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->loads[worker].n, 1, memory_order_relaxed);
    return ticket;
}

bool admission_reserve(struct admission *a)
{
    size_t open = atomic_load_explicit(&a->open, memory_order_relaxed);
    for (;;) {
        if (open >= atomic_load_explicit(&a->max_connections, memory_order_relaxed))
            return false;
        if (atomic_compare_exchange_weak_explicit(&a->open, &open, open + 1,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

void admission_unreserve(struct admission *a)
{
    atomic_fetch_sub_explicit(&a->open, 1, memory_order_seq_cst);
    admission_wake(a);
}

int admission_acquire_reserved(struct admission *a, const struct sockaddr *peer, unsigned worker,
                               bool by_source)
{
    struct sources *s = by_source ? atomic_load_explicit(&a->sources, memory_order_acquire) : NULL;
    int ticket = 0;
    if (s) {
        int rc = sources_add(s, peer);
        if (rc < 0) {
            admission_unreserve(a);
            return rc;
        }
        ticket = ADMISSION_BY_SOURCE;
    }
    atomic_fetch_add_explicit(&a->loads[worker].n, 1, memory_order_relaxed);
    return ticket;
}

void admission_release(struct admission *a, const struct sockaddr *peer, unsigned worker,
                       int ticket)
{
    struct sources *s = atomic_load_explicit(&a->sources, memory_order_acquire);
    if (s && (ticket & ADMISSION_BY_SOURCE))
        sources_remove(s, peer);
    atomic_fetch_sub_explicit(&a->loads[worker].n, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&a->open, 1, memory_order_seq_cst);
    admission_wake(a);
}

size_t admission_open(const struct admission *a)
{
    return atomic_load(&((struct admission *)a)->open);
}

size_t admission_load(const struct admission *a, unsigned worker)
{
    return atomic_load_explicit(&((struct admission *)a)->loads[worker].n, memory_order_relaxed);
}

void admission_set_stalled(struct admission *a, unsigned worker, uint64_t since_ms)
{
    atomic_store_explicit(&a->loads[worker].stalled_since_ms, since_ms, memory_order_relaxed);
}

int admission_evict_pick(const struct admission *a, uint64_t before_ms)
{
    struct admission *m = (struct admission *)a;
    int best = -1;
    uint64_t oldest = UINT64_MAX;
    for (unsigned i = 0; i < m->nworkers; i++) {
        uint64_t t = atomic_load_explicit(&m->loads[i].stalled_since_ms, memory_order_relaxed);
        if (t <= before_ms && t < oldest) {
            oldest = t;
            best = (int)i;
        }
    }
    return best;
}

bool admission_evict_ask(struct admission *a, unsigned worker)
{
    return !atomic_exchange(&a->loads[worker].evict_asked, true);
}

void admission_evict_done(struct admission *a, unsigned worker)
{
    atomic_store(&a->loads[worker].evict_asked, false);
}

int admission_wait_begin(struct admission *a)
{
    atomic_store(&a->waiting, 1);
    return a->room_fd;
}

void admission_wait_end(struct admission *a)
{
    atomic_store(&a->waiting, 0);
    uint64_t v;
    while (read(a->room_fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

void admission_wake(struct admission *a)
{
    if (atomic_load(&a->waiting)) {
        uint64_t one = 1;
        while (write(a->room_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    /* Workers that accept on their own sockets and wait for room: each is
     * woken once per wait (the flag is taken here). */
    if (atomic_load(&a->worker_waits) && a->room_waker) {
        for (unsigned i = 0; i < a->nworkers; i++) {
            if (!atomic_load_explicit(&a->loads[i].room_wait, memory_order_relaxed) ||
                !atomic_exchange(&a->loads[i].room_wait, false))
                continue;
            atomic_fetch_sub(&a->worker_waits, 1);
            a->room_waker(a->room_ctx, i);
        }
    }
}

void admission_set_room_waker(struct admission *a, void (*fn)(void *ctx, unsigned worker),
                              void *ctx)
{
    a->room_waker = fn;
    a->room_ctx = ctx;
}

void admission_room_wait(struct admission *a, unsigned worker)
{
    if (!atomic_exchange(&a->loads[worker].room_wait, true))
        atomic_fetch_add(&a->worker_waits, 1);
    /* The caller's next look at the count comes after the announcement. */
    atomic_thread_fence(memory_order_seq_cst);
}

void admission_room_wait_end(struct admission *a, unsigned worker)
{
    if (atomic_exchange(&a->loads[worker].room_wait, false))
        atomic_fetch_sub(&a->worker_waits, 1);
}

void admission_set_output_budget(struct admission *a, size_t bytes)
{
    atomic_store(&a->output_budget, bytes);
}

size_t admission_output_budget(const struct admission *a)
{
    return atomic_load(&((struct admission *)a)->output_budget);
}

bool admission_output_add(struct admission *a, ptrdiff_t delta)
{
    size_t total = atomic_fetch_add_explicit(&a->output_total, (size_t)delta,
                                             memory_order_relaxed) + (size_t)delta;
    size_t budget = atomic_load_explicit(&a->output_budget, memory_order_relaxed);
    return budget && total > budget;
}

void admission_count_pause(struct admission *a)
{
    atomic_fetch_add_explicit(&a->pauses, 1, memory_order_relaxed);
}

uint64_t admission_pauses(const struct admission *a)
{
    return atomic_load_explicit(&((struct admission *)a)->pauses, memory_order_relaxed);
}

size_t admission_output_total(const struct admission *a)
{
    return atomic_load_explicit(&((struct admission *)a)->output_total, memory_order_relaxed);
}
