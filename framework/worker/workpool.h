/*
 * workpool.h - the bounded pool of threads for handlers' blocking work
 * (wharf_queue_work): up to a fixed number of threads, one more started
 * whenever a job arrives and no started thread is idle, a bounded queue of
 * jobs, and the "done" half of each job run back on the worker that asked.
 *
 * A job is allocated when it is submitted and carries its origin (the
 * listener whose code asked, its generation referenced).  A finished job is
 * appended to its worker's list of finished jobs (no allocation, so it cannot
 * fail) and the worker is woken when that list goes from empty to non-empty;
 * the worker runs each done inside the callback bracket.  A job whose worker
 * has stopped stays in the list until the worker is destroyed, on the thread
 * that stops the server, where done runs with cancelled == true.
 */
#ifndef WHARF_WORKPOOL_H
#define WHARF_WORKPOOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct workpool;
struct workpool_job;
struct wharf_worker;

/* A worker's finished jobs, waiting for their done (one per worker). */
struct workpool_finished {
    pthread_mutex_t lock;
    struct workpool_job *head, *tail;
};

/* A pool of up to `threads` threads queueing at most `depth` jobs not yet
 * started.  NULL on ENOMEM. */
struct workpool *workpool_new(unsigned threads, size_t depth);
/* Queues work(arg) for a pool thread, then done(arg, false) on worker w.
 * The job's origin is the running callback (callback_origin_take).
 * Returns 0, -EAGAIN (queue full, or no thread could start), -ENOMEM or
 * -EPIPE (stopping); nothing is queued then.  w's thread. */
int workpool_submit(struct workpool *p, struct wharf_worker *w, void (*work)(void *arg),
                    void (*done)(void *arg, bool cancelled), void *arg);
/* Stops the threads after the jobs they run; jobs not started run
 * done(arg, true) on the calling thread.  Then frees.  NULL is fine. */
void workpool_free(struct workpool *p);

/* Prepares / empties a worker's list of finished jobs. */
void workpool_finished_init(struct workpool_finished *f);
void workpool_finished_destroy(struct workpool_finished *f);
/* Runs the done of every finished job in f, oldest first, each inside the
 * callback bracket of its origin on worker `worker` (-1: not a worker),
 * with `cancelled`; then drops its origin and frees it.  Returns how many
 * ran.  f's worker thread, or the stopping thread once it is gone. */
size_t workpool_run_finished(struct workpool_finished *f, int worker, bool cancelled);

#endif
