/*
 * workpool.h - the bounded pool of threads for handlers' blocking work
 * (wharf_queue_work): a fixed number of threads started on first use, a
 * bounded queue of jobs, and the "done" half of each job posted back to the
 * worker that asked.
 */
#ifndef WHARF_WORKPOOL_H
#define WHARF_WORKPOOL_H

#include <stdbool.h>
#include <stddef.h>

struct workpool;
struct wharf_worker;

/* A pool of `threads` threads (started on the first job) queueing at most
 * `depth` jobs.  NULL on ENOMEM. */
struct workpool *workpool_new(unsigned threads, size_t depth);
/* Queues work(arg) for a pool thread, then done(arg, false) on worker w.
 * Returns 0, -EAGAIN (queue full) or -EPIPE (stopping).  Any thread. */
int workpool_submit(struct workpool *p, struct wharf_worker *w, void (*work)(void *arg),
                    void (*done)(void *arg, bool cancelled), void *arg);
/* Stops the threads after the jobs they run; jobs not started run
 * done(arg, true) on the calling thread.  Then frees.  NULL is fine. */
void workpool_free(struct workpool *p);

#endif
