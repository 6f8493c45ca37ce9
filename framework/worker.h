/*
 * worker.h - one worker thread: an epoll loop over its connections, its
 * queue's wake-up fd, its control fd, its UDP sockets and its timers.
 *
 * A connection belongs to one worker for life; only that worker reads,
 * writes, times out or closes it.  Other threads talk to a worker only
 * through its queue (new connections) and worker_signal (shutdown phases).
 */
#ifndef WHARF_WORKER_H
#define WHARF_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "listener.h"
#include "queue.h"
#include "server.h"
#include "timer.h"

struct acceptor;
struct wharf_conn;
struct udp_worker;

/* What an epoll event's data.ptr points at starts with one of these. */
enum event_kind { EVENT_CONN = 1, EVENT_QUEUE, EVENT_CONTROL, EVENT_UDP };

/* Counters of one listener on one worker.  Written only by the owning
 * worker (relaxed atomics so other threads may read a snapshot). */
struct worker_stats {
    _Atomic uint64_t accepted, open;
    _Atomic uint64_t closed[SERVER_CLOSE_REASONS];
    _Atomic uint64_t bytes_in, bytes_out, output_buffered;
    _Atomic uint64_t datagrams_in, datagrams_out, datagrams_dropped;
};

/* Adds to a counter only its owner writes: a plain load and store, no bus lock. */
#define STAT_ADD(field, n) \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n), \
                          memory_order_relaxed)

enum worker_phase {
    WORKER_RUNNING = 0,
    WORKER_DRAINING, /* no new work; exit when the last connection closes */
    WORKER_CLOSING,  /* close every connection now, then exit */
};

struct worker {
    unsigned id;
    pthread_t thread;
    bool started;
    int epfd;
    enum event_kind queue_kind;   /* epoll tag for the queue's eventfd */
    enum event_kind control_kind; /* epoll tag for control_fd */
    int control_fd;               /* eventfd: phase changes */
    struct queue *queue;
    struct listener *listeners;
    unsigned nlisteners;
    struct acceptor *acceptor;

    struct timer_heap timers;
    uint64_t now_ms;             /* cached clock, updated once per loop turn */

    _Atomic size_t load;         /* connections owned + queued, for the acceptor */
    struct wharf_conn *conns;    /* every open connection (doubly linked) */
    struct wharf_conn *dead;     /* torn down this turn, freed at its end */
    size_t nconns;

    char *readbuf;               /* shared read buffer for all connections */
    size_t readbuf_size;
    struct buf scratch;          /* output of the connection in a callback */
    struct wharf_conn *scratch_conn;   /* whose output scratch holds, or NULL */
    struct wharf_conn *current;       /* the connection whose callback is running */

    struct worker_stats *stats;  /* one per listener */
    struct udp_worker *udp;      /* UDP batch buffers, NULL without UDP listeners */

    _Atomic int phase;           /* enum worker_phase */
    pthread_mutex_t *ready_lock; /* the server's start-up rendezvous */
    pthread_cond_t *ready_cond;
    unsigned *ready_count;
};

/*
 * Prepares worker `id` (epoll, queue of `queue_depth`, control eventfd, its
 * UDP sockets).  Returns 0 or -1 with a message in err.
 */
int worker_init(struct worker *w, unsigned id, struct listener *listeners, unsigned nlisteners,
                size_t queue_depth, struct acceptor *acceptor, char *err, size_t errlen);
/* Starts the thread.  Returns 0 or a positive errno. */
int worker_start(struct worker *w);
/* Moves the worker to `phase` (never backwards) and wakes it.  Any thread. */
void worker_signal(struct worker *w, enum worker_phase phase);
/* Joins the thread (if started). */
void worker_join(struct worker *w);
/* Frees what worker_init made; closes fds still queued. */
void worker_destroy(struct worker *w);

/* Adds/removes an epoll registration; returns 0 or -errno. */
int worker_watch(struct worker *w, int fd, uint32_t events, void *tag);

#endif
