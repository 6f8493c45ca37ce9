/*
 * workpool.c - blocking work off the workers (see workpool.h).
 *
 * Jobs wait in a ring under one mutex; pool threads take them in order and
 * run work(arg) outside the lock, then post done(arg) to the submitting
 * worker's mailbox (an urgent post, retried briefly when full, so a finished
 * job is never dropped).  When that worker has stopped, done(arg, true) runs
 * on the pool thread instead, so its resources are still freed.  Each worker
 * counts the jobs it has out (worker_work_begin / worker_work_end) and does
 * not leave its loop while draining until they are done.
 */
#include "workpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "crash.h"
#include "loop.h"
#include "worker.h"

struct job {
    void (*work)(void *arg);
    void (*done)(void *arg, bool cancelled);
    void *arg;
    struct wharf_worker *w;
};

struct workpool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned nthreads, started;
    pthread_t *threads;
    bool stopping;
    size_t head, count, depth;
    struct job *ring;
};

struct workpool *workpool_new(unsigned threads, size_t depth)
{
    struct workpool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nthreads = threads ? threads : 1;
    p->depth = depth ? depth : 1;
    p->threads = calloc(p->nthreads, sizeof *p->threads);
    p->ring = calloc(p->depth, sizeof *p->ring);
    if (!p->threads || !p->ring) {
        free(p->threads);
        free(p->ring);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    return p;
}

/* Runs on the worker: the job's second half. */
static void workpool_on_done(void *arg, void *payload, bool cancelled)
{
    struct job *j = payload;
    j->done(j->arg, false);
    worker_work_end(j->w);
}

static void *workpool_main(void *arg)
{
    struct workpool *p = arg;
    crash_thread_init(); /* the fatal-signal report's alternate stack */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->count == 0 && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->count == 0)
            break; /* stopping, nothing left */
        struct job j = p->ring[p->head];
        p->head = (p->head + 1) % p->depth;
        p->count--;
        pthread_mutex_unlock(&p->lock);
        j.work(j.arg);
        int rc;
        for (int tries = 0; (rc = loop_post_urgent(&j.w->loop, workpool_on_done, NULL, &j,
                                                   sizeof j)) == -EAGAIN && tries < 5000;
             tries++)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        if (rc < 0) {
            /* The worker is gone: free what the job holds here. */
            j.done(j.arg, true);
            worker_work_end(j.w);
        }
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int workpool_submit(struct workpool *p, struct wharf_worker *w, void (*work)(void *arg),
                    void (*done)(void *arg, bool cancelled), void *arg)
{
    pthread_mutex_lock(&p->lock);
    int rc = 0;
    if (p->stopping)
        rc = -EPIPE;
    else if (p->count == p->depth)
        rc = -EAGAIN;
    if (rc == 0 && p->started < p->nthreads && p->started < p->count + 1) {
        /* One more thread, up to the pool size, while jobs wait. */
        if (pthread_create(&p->threads[p->started], NULL, workpool_main, p) == 0) {
            pthread_setname_np(p->threads[p->started], "wharf-work");
            p->started++;
        }
        else if (p->started == 0)
            rc = -EAGAIN;
    }
    if (rc == 0) {
        p->ring[(p->head + p->count) % p->depth] = (struct job){work, done, arg, w};
        p->count++;
        worker_work_begin(w);
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void workpool_free(struct workpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    /* Jobs not started: cancelled here. */
    while (p->count > 0) {
        struct job j = p->ring[p->head];
        p->head = (p->head + 1) % p->depth;
        p->count--;
        pthread_mutex_unlock(&p->lock);
        j.done(j.arg, true);
        worker_work_end(j.w);
        pthread_mutex_lock(&p->lock);
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p->ring);
    free(p);
}
