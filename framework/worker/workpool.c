/*
 * workpool.c - blocking work off the workers (see workpool.h).
 *
 * Jobs wait in a FIFO under one mutex; pool threads take them in order and
 * run work(arg) outside the lock (inside the callback bracket, so a crash in
 * it names the listener and handler), then append the job to its worker's
 * list of finished jobs and wake the worker (postq_wake) when that list was
 * empty.  A thread is started on submit whenever the jobs waiting are at
 * least as many as the idle threads (so a short job never waits behind a
 * long one while the pool has room).  Each worker counts the jobs it has out
 * (worker_work_begin / worker_work_end) and does not leave its loop while
 * draining until they are done.
 */
#include "workpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "crash.h"
#include "loop.h"
#include "callback.h"
#include "postq.h"
#include "worker.h"

struct workpool_job {
    void (*work)(void *arg);
    void (*done)(void *arg, bool cancelled);
    void *arg;
    struct wharf_worker *w;
    struct callback_origin origin;
    struct workpool_job *next;
};

struct workpool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned nthreads, started, idle; /* idle: threads waiting for a job */
    pthread_t *threads;
    bool stopping;
    size_t count, depth;              /* jobs waiting, and the most that may */
    struct workpool_job *head, *tail;
};

struct workpool *workpool_new(unsigned threads, size_t depth)
{
    struct workpool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nthreads = threads ? threads : 1;
    p->depth = depth ? depth : 1;
    p->threads = calloc(p->nthreads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    return p;
}

/* Runs j's done with `cancelled` as handler code of its origin, then drops
 * the origin (which may unload a module: no handler code is running then)
 * and frees j. */
static void workpool_finish(struct workpool_job *j, int worker, bool cancelled)
{
    struct wharf_worker *w = j->w;
    CALLBACK_RUN("done", j->origin.l, worker, 0, j->done(j->arg, cancelled));
    callback_origin_drop(&j->origin);
    free(j);
    worker_work_end(w);
}

/* A pool thread: the job's work is done; hand it back to its worker. */
static void workpool_complete(struct workpool_job *j)
{
    struct workpool_finished *f = &j->w->jobs_done;
    struct wharf_worker *w = j->w;
    j->next = NULL;
    pthread_mutex_lock(&f->lock);
    bool was_empty = f->head == NULL;
    if (f->tail)
        f->tail->next = j;
    else
        f->head = j;
    f->tail = j;
    pthread_mutex_unlock(&f->lock);
    if (was_empty)
        postq_wake(&w->posts);
}

static void *workpool_main(void *arg)
{
    struct workpool *p = arg;
    crash_thread_init(); /* the fatal-signal report's alternate stack */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->cond, &p->lock);
            p->idle--;
        }
        if (!p->head)
            break; /* stopping, nothing left */
        struct workpool_job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->count--;
        pthread_mutex_unlock(&p->lock);
        CALLBACK_RUN("work", j->origin.l, -1, 0, j->work(j->arg));
        workpool_complete(j);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Starts one more thread if every started one is busy (p->lock held).
 * Returns false only when none could start and none runs. */
static bool workpool_grow(struct workpool *p)
{
    if (p->started >= p->nthreads || p->count < p->idle)
        return true; /* an idle thread will take the job, or no room */
    if (pthread_create(&p->threads[p->started], NULL, workpool_main, p) != 0)
        return p->started > 0;
    pthread_setname_np(p->threads[p->started], "wharf-work");
    p->started++;
    return true;
}

int workpool_submit(struct workpool *p, struct wharf_worker *w, void (*work)(void *arg),
                    void (*done)(void *arg, bool cancelled), void *arg)
{
    struct workpool_job *j = malloc(sizeof *j);
    if (!j)
        return -ENOMEM;
    *j = (struct workpool_job){.work = work, .done = done, .arg = arg, .w = w};
    if (!callback_origin_take(&j->origin)) {
        free(j); /* asked from fini: its module is about to unload */
        return -EPIPE;
    }
    pthread_mutex_lock(&p->lock);
    int rc = 0;
    if (p->stopping)
        rc = -EPIPE;
    else if (p->count == p->depth)
        rc = -EAGAIN;
    else if (!workpool_grow(p))
        rc = -EAGAIN;
    if (rc == 0) {
        if (p->tail)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
        p->count++;
        worker_work_begin(w);
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc < 0) {
        callback_origin_drop(&j->origin);
        free(j);
    }
    return rc;
}

void workpool_free(struct workpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    /* Jobs not started: cancelled here. */
    struct workpool_job *left = p->head;
    p->head = p->tail = NULL;
    p->count = 0;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    while (left) {
        struct workpool_job *j = left;
        left = j->next;
        workpool_finish(j, -1, true);
    }
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p);
}

void workpool_finished_init(struct workpool_finished *f)
{
    pthread_mutex_init(&f->lock, NULL);
    f->head = f->tail = NULL;
}

void workpool_finished_destroy(struct workpool_finished *f)
{
    workpool_run_finished(f, -1, true);
    pthread_mutex_destroy(&f->lock);
}

size_t workpool_run_finished(struct workpool_finished *f, int worker, bool cancelled)
{
    pthread_mutex_lock(&f->lock);
    struct workpool_job *list = f->head;
    f->head = f->tail = NULL;
    pthread_mutex_unlock(&f->lock);
    size_t n = 0;
    while (list) {
        struct workpool_job *j = list;
        list = j->next;
        workpool_finish(j, worker, cancelled);
        n++;
    }
    return n;
}
