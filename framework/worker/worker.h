/*
 * worker.h - one worker thread: an event loop (loop.h) over the connections
 * it owns and the UDP sockets of its generation.
 *
 * A connection belongs to one worker for life; only that worker reads,
 * writes, times out or closes it.  A worker accepts connections itself on
 * its own listening sockets of listeners with "accept": "workers"
 * (worker_accept.h).  Other threads reach a worker only through
 * its mailbox: the acceptor hands it new connections (worker_post_conn), the
 * server posts phase changes (worker_drain, worker_close_all) and reloads
 * (worker_adopt).  Handlers' posts go to its post queue instead (postq.h),
 * and the pool hands finished blocking work to its list of finished jobs
 * (workpool.h); one eventfd wakes it for both.
 */
#ifndef WHARF_WORKER_H
#define WHARF_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "htimer.h"
#include "listener.h"
#include "loop.h"
#include "postq.h"
#include "worker_accept.h"
#include "workpool.h"

struct admission;
struct generation;
struct rendezvous;
struct udp_set;
struct udp_batch;
struct udp_rate;
struct workpool;

enum worker_phase {
    WORKER_RUNNING = 0,
    WORKER_DRAINING, /* no new work; idle connections close; exit when none is left */
    WORKER_CLOSING,  /* close every connection now, then exit */
};

struct wharf_worker {
    unsigned id;
    struct loop loop;
    struct admission *admission;
    struct conn_set conns;        /* the connections it owns (conn.c) */
    struct generation *udp_gen;   /* where its UDP sockets come from (a reference) */
    struct udp_set *udp;          /* its UDP sockets, or NULL */
    struct udp_rate *udp_rate;    /* rate_limit's buckets (udp.c), made on first use */
    uint64_t udp_guard_log_ms;    /* the send guard's last log line (udp.c) */
    struct udp_sink *udp_sink;    /* the test kit's network instead of sockets (udp.h), or NULL */
    struct wharf_list udp_handles; /* the handlers' wharf_udp handles (udp_handle.c) */
    size_t udp_nhandles;
    char *udp_rbuf;               /* outbound sockets' receive buffer, made on first use */
    struct udp_batch *udp_batch;  /* what its handlers sent, not yet out (udp_batch.c) */
    struct worker_accept accept;  /* its own listening sockets ("accept":
                                   * "workers"; worker_accept.h) */
    enum worker_phase phase;      /* owner thread only */
    pthread_t thread;
    bool started;
    struct rendezvous *ready;     /* the start-up rendezvous (a party's reference) */
    struct rendezvous *_Atomic finished; /* counted down when the thread ends, if set */
    atomic_bool ended;            /* set by the thread as it returns: joining it will not wait */
    struct wharf_worker *siblings; /* every worker of the server, [nworkers] */
    struct wharf_server *server;  /* the server it belongs to (metrics), or NULL */
    unsigned nworkers;
    struct workpool *pool;        /* blocking work (wharf_queue_work) */
    _Atomic size_t work_pending;  /* jobs submitted and not done yet */
    struct wharf_list timers;     /* the handlers' worker-level timers (htimer.c) */
    struct postq posts;           /* the handlers' posts to it (postq.h) */
    struct loop_watcher posts_watcher; /* posts, finished jobs, drain notices */
    struct workpool_finished jobs_done; /* jobs whose done is due here */
    uint64_t *held;               /* ids of connections held by post back-pressure */
    size_t nheld, held_cap;
    uint64_t *waiting_on;         /* workers whose post queue it waits on (bits) */
    bool waiting;                 /* any bit set in waiting_on */
};

/* Prepares worker `id` of `siblings` (nworkers of them) with a mailbox for
 * `queue_depth` connections.  Returns 0 or a negative errno with a message
 * in err. */
int worker_init(struct wharf_worker *w, unsigned id, struct wharf_worker *siblings,
                unsigned nworkers, size_t queue_depth, struct admission *admission,
                struct workpool *pool, char *err, size_t errlen);
/* Runs one turn of w's loop on the calling thread, as w (the test kit
 * drives a worker that has no thread of its own); returns loop_run_once's
 * result.  worker_enter / worker_leave make the calling thread act as w
 * (wharf_current_worker) around other calls. */
int worker_run_turn(struct wharf_worker *w);
struct wharf_worker *worker_enter(struct wharf_worker *w);
void worker_leave(struct wharf_worker *prev);
/* Sets the soft capacity of w's post queue ("post_queue"); before start. */
void worker_set_post_queue(struct wharf_worker *w, size_t soft);
/* Counts a blocking job out / back (any thread). */
void worker_work_begin(struct wharf_worker *w);
void worker_work_end(struct wharf_worker *w);
/* Takes the UDP sockets of g (a reference is taken) and starts the thread,
 * which counts `ready` down once running (that party's reference passes to
 * the thread).  Returns 0, or a negative errno (e.g. pthread_create's
 * -EAGAIN) with a message naming the worker and the cause: then no thread
 * runs and `ready`
 * was not counted down. */
int worker_start(struct wharf_worker *w, struct generation *g, struct rendezvous *ready,
                 char *err, size_t errlen);

/*
 * Hands an accepted socket of listener l to w (acceptor thread), with its
 * admission ticket and a new reference to l's generation (a conn_handoff):
 * w opens it, or drops it if it never does (stopping).  Returns 0, or
 * -EAGAIN (full) / -EPIPE (stopped) after dropping it here (the socket is
 * closed, the ticket given back).
 */
int worker_post_conn(struct wharf_worker *w, struct listener *l, int fd, const union sockaddr_any *peer,
                     socklen_t peer_len, int ticket);
/* Asks w to close its connection with the oldest progress if it made none
 * for idle_ms (max_connections reached and a connection waits:
 * conn_evict.c); its teardown releases the slot and wakes the acceptor.
 * The caller marked the request (admission_evict_ask); w clears the mark
 * as it takes it.  Returns 0 or -EAGAIN / -EPIPE (not asked: the caller
 * clears the mark).  Acceptor thread. */
int worker_post_evict(struct wharf_worker *w, uint64_t idle_ms);
/* Connections queued in w's mailbox and not yet opened (a snapshot). */
size_t worker_queued(struct wharf_worker *w);
size_t worker_queue_depth(const struct wharf_worker *w);

/* Switches w's UDP sockets and its own listening sockets to generation g
 * (takes a reference), as one
 * party of `done` (may be NULL): rendezvous_end once switched (or already
 * on g), rendezvous_done if it skipped (the waiter gave up, the worker is
 * stopping, the new sockets could not be watched).  Any thread. */
void worker_adopt(struct wharf_worker *w, struct generation *g, struct rendezvous *done);
/* Hands `finished` to w: the thread counts it down as it ends (one party's
 * reference).  Returns false, keeping the reference with the caller, if
 * the thread has already ended. */
bool worker_watch_end(struct wharf_worker *w, struct rendezvous *finished);
/* Moves w to `phase` (never backwards).  Any thread. */
void worker_set_phase(struct wharf_worker *w, enum worker_phase phase);
/* Joins the thread (if started). */
void worker_join(struct wharf_worker *w);
/* Frees what worker_init made; connections still queued are closed. */
void worker_destroy(struct wharf_worker *w);

#endif
