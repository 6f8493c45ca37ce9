/*
 * conn.h - one TCP connection (the object behind the public wharf_conn), and
 * the set of connections one worker owns.
 *
 * Owned by one worker.  An idle connection holds no buffers: input is read
 * into the worker's shared read buffer and only what the handler leaves
 * unconsumed is copied into c->in; output written during a callback goes to
 * the worker's scratch buffer and only what the socket does not take at once
 * is kept in c->out.  Every way a connection ends goes through conn_close,
 * which only marks it DEAD and queues it; the teardown at the end of the
 * loop turn runs on_close once and releases its admission and generation.
 */
#ifndef WHARF_CONN_H
#define WHARF_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "histogram.h"
#include "htimer.h"
#include "listener.h"
#include "loop.h"
#include "refq.h"
#include "timer.h"
#include "wharf.h"
#include "wharf_list.h"

struct wharf_worker;
struct ssl_st;

/* Every value of enum wharf_timeout. */
#define CONN_TIMEOUT_KINDS (WHARF_TIMEOUT_WRITE_IDLE + 1)

/*
 * The life of a connection, one state at a time (conn.c keeps the table of
 * legal moves and checks every move against it):
 *
 *   PENDING --> OPEN --> CLOSING --> DEAD --(closing phase)--> freed
 *      |          |                   ^
 *      |          +-------------------+
 *      +----------------> CLOSING / DEAD
 *
 * PENDING: the handler has not heard of it yet (an outbound connect in
 * progress, or an inbound PROXY header being read).  OPEN: on_open ran (or
 * is running).  CLOSING: closes once pending output is written (wharf_close,
 * EOF).  DEAD: the close is queued on the loop (conn_close); no callback of
 * the connection runs any more, and the closing phase at the end of the
 * turn runs on_close, unregisters, releases and frees it.
 */
enum conn_state {
    CONN_PENDING = 0,
    CONN_OPEN,
    CONN_CLOSING,
    CONN_DEAD,
};

/* Conditions that hold alongside the state. */
enum conn_flags {
    CONN_PAUSED_HANDLER = 1u << 0, /* wharf_pause_read */
    CONN_PAUSED_OUTPUT = 1u << 1,  /* output above the high watermark */
    CONN_PEER_EOF = 1u << 2,       /* the peer shut its side */
    CONN_HELD = 1u << 3,           /* reading held by the framework (conn_hold) */
    CONN_OFFER_PENDING = 1u << 6,  /* in the worker's list of offers for this turn */
    CONN_EOF_STALLED = 1u << 7,    /* at EOF, the handler took nothing of what is kept */
    CONN_EOF_DONE = 1u << 8,       /* on_eof ran (or the EOF closed the connection) */
    CONN_SHUTDOWN_TOLD = 1u << 9,  /* on_shutdown ran */
    CONN_OUTBOUND = 1u << 10,      /* opened by wharf_connect */
    CONN_CONNECTING = 1u << 11,    /* outbound, connect() in progress */
    CONN_WAIT_WRITTEN = 1u << 12,  /* on_data took nothing while output was pending */
    CONN_WANT_DRAIN = 1u << 13,    /* wharf_want_drain: on_drain below the low watermark */
    CONN_SHUT_WRITE = 1u << 14,    /* wharf_shutdown_write: FIN once output is written */
    CONN_SHUT_DONE = 1u << 15,     /* ... and it was sent */
    CONN_OPENED = 1u << 16,        /* on_open ran (on_close is owed) */
    CONN_PROXY_WAIT = 1u << 17,    /* reading the PROXY header; the handler waits */
    CONN_TLS_HANDSHAKE = 1u << 18, /* TLS handshake in progress; the handler waits */
    CONN_TLS_MORE = 1u << 19,      /* TLS holds decrypted input the socket will not signal */
    CONN_FLUSH_ONLY = 1u << 20,    /* in the offers to be settled only (conn_io_schedule_flush) */
    CONN_TLS_STARVED = 1u << 21,   /* TLS's last read waited for the socket (conn_tls_pending) */
};

struct wharf_conn {
    struct loop_watcher watcher; /* its socket on the worker's loop */
    enum conn_state state;
    uint32_t flags;              /* enum conn_flags */
    int ticket;                  /* admission ticket (admission.h) */
    uint64_t id;
    struct wharf_worker *w;
    struct listener *l;          /* in the generation it holds a reference to */
    void *data;                  /* the handler's */
    struct buf in, out;
    struct refq refs;            /* referenced chunks of the output (wharf_send_ref) */
    struct timer timer;          /* fires at the earliest active deadline */
    uint64_t opened_ms, last_read_ms, last_write_ms;
    uint32_t timeout_ms[CONN_TIMEOUT_KINDS]; /* by enum wharf_timeout; 0 = off
                                              * (RATE: the listener's min_rate) */
    int8_t timeout_firing;                   /* the kind in on_timeout, or -1 */
    bool timeout_kept;                       /* on_timeout set it again: stay open */
    bool bytes_seen;                         /* the first byte arrived */
    uint64_t handshake_since_ms;             /* the handshake timer counts from here */
    uint64_t bytes_in, bytes_out;            /* for the connection log */
    uint64_t accepted_ns;                    /* accept time (histogram_now_ns); 0: outbound */
    uint64_t rate_since_ms, rate_bytes;      /* min_rate window: start, bytes since */
    enum wharf_close_reason close_reason;    /* for CLOSING and DEAD */
    struct wharf_list link;                  /* in the worker's list (conn_set.all) */
    struct wharf_conn *offer_next;           /* the worker's offers (CONN_OFFER_PENDING) */
    struct wharf_conn *map_next;             /* the worker's id map chain */
    struct wharf_list timers;                /* the handler's timers on this connection */
    struct wharf_list progress_link;         /* in conn_set.by_progress (conn_evict.c) */
    uint64_t progress_ms;                    /* its last progress (conn_evict.c) */
    struct loop_closing closing;             /* queued on the loop when DEAD */
    struct ssl_st *ssl;                      /* a TLS listener's connection (conn_tls.c) */
    struct buf tls_prefix;                   /* raw bytes read with the PROXY header */
    uint32_t tls_want;                       /* LOOP_IN/LOOP_OUT the TLS layer waits for */
    uint64_t tls_start_ns;                   /* when the handshake began */
    socklen_t peer_len, local_len;
    union sockaddr_any peer, local;          /* local is filled on first use */
};

/* The connections of one worker and what they share. */
struct conn_set {
    struct wharf_list all;       /* every open connection, newest first */
    size_t n;
    char *readbuf;               /* shared read buffer for all connections */
    size_t readbuf_size;
    struct buf scratch;          /* output of the connection in a callback */
    struct wharf_conn *scratch_conn; /* whose output scratch holds, or NULL */
    struct wharf_conn *current;  /* the connection whose callback is running */
    uint64_t last_budget_log_ms; /* output budget warnings are rate-limited */
    struct timer budget_timer;   /* looks again while the server is over budget */
    uint64_t last_proxy_log_ms;  /* so are refused PROXY headers */
    uint64_t last_tls_log_ms;    /* and failed TLS handshakes */
    struct wharf_conn *offers;   /* kept input to offer again this turn */
    bool offers_busy;            /* the loop polls while offers are pending */
    struct loop_check check;     /* runs the offers */
    struct loop *loop;
    struct wharf_conn **map;     /* by id (wharf_post_conn): chains in buckets */
    size_t map_size;             /* buckets, a power of two (0 before the first) */
    struct wharf_list by_progress; /* accepted ones, oldest progress first (conn_evict.c) */
    uint64_t evicted_unlogged, last_evict_log_ms; /* its rate-limited log line */
};

/* Prepares / frees a worker's set on its loop (the connections must be
 * gone before the free). */
int conn_set_init(struct conn_set *s, struct loop *lp);
void conn_set_free(struct conn_set *s);

/*
 * What a connection is made of before it exists: its socket, its admission
 * ticket (admission.h; -1 for an outbound one, never admitted) and one
 * reference to its listener's generation.  The acceptor hands one to a
 * worker through its mailbox; wharf_connect makes one for an outbound
 * connection.  Whoever holds it either opens it (conn_open) or drops it.
 */
struct conn_handoff {
    struct listener *l;
    int fd;
    int ticket;
    socklen_t peer_len;
    union sockaddr_any peer;
    uint64_t accepted_ns; /* when the acceptor took it (histogram_now_ns), or 0 */
};

/* Opens a connection on worker w from h (calls on_open), taking over all
 * h holds; when it cannot, h is dropped at once. */
void conn_open(struct wharf_worker *w, const struct conn_handoff *h);
/* Releases all h holds: closes the socket, gives the admission ticket back
 * and drops the generation reference.  The one place each is released: for
 * a hand-off never opened (a stopping worker) and at the end of every
 * connection's teardown. */
void conn_handoff_drop(struct wharf_worker *w, const struct conn_handoff *h);

/*
 * Ends c: marks it DEAD and queues it for the closing phase at the end of
 * this loop turn, which runs on_close(reason) once (if on_open ran, or for an
 * outbound connection), closes the socket and releases everything.  Used for
 * EOF, errors, timeouts, limits, the output budget and shutdown alike, from
 * anywhere on the worker (inside any callback too): nothing is torn down
 * under running code, and no callback of c runs after this call.  The first
 * call's reason wins; later calls do nothing.
 */
void conn_close(struct wharf_conn *c, enum wharf_close_reason reason);

/* Whether c is DEAD (closed, its teardown queued). */
static inline bool conn_dead(const struct wharf_conn *c)
{
    return c->state == CONN_DEAD;
}

/* Holds (on) or releases c's reading for the framework (post back-pressure),
 * apart from the handler's wharf_pause_read.  On release, kept input (and a
 * pending EOF) is offered again.  c's worker thread. */
void conn_hold(struct wharf_conn *c, bool on);

/* Debug mode: handler calls on a connection from the wrong thread are
 * logged and refused.  on, or WHARF_DEBUG=1 in the environment. */
void conn_set_debug(bool on);

/* The open connection of w with this id, or NULL. */
struct wharf_conn *conn_find(struct wharf_worker *w, uint64_t id);
/* Runs a post for connection c (NULL: gone) as one of its callbacks. */
void conn_call_post(struct wharf_worker *w, struct wharf_conn *c,
                    void (*fn)(wharf_conn *c, void *arg), void *arg);
/* Runs a timer of connection c as one of its callbacks. */
void conn_call_timer(struct wharf_conn *c, wharf_timer *t, void (*fn)(wharf_timer *t, void *arg),
                     void *arg);

/* Whether c is held (wharf_frames stops at a message boundary then). */
bool conn_held(const wharf_conn *c);

/* Shutdown: tells every connection of w (on_shutdown), then closes (reason
 * "shutdown") those with nothing in flight; with `all`, closes every one at
 * once.  Returns how many it closed (their teardown runs in the loop's
 * closing phase: loop_run_closing when not inside a turn). */
size_t conn_shutdown(struct wharf_worker *w, bool all);

/* ---- between the conn_*.c files ------------------------------------------- */

/*
 * Brackets a handler callback on c: c is "current" meanwhile (its sends go
 * to the scratch buffer), the crash report names the callback, and its time
 * goes into the listener's handler histogram (a callback run inside another
 * counts in both).
 */
#define CONN_CALL(c, what, call)                                                           \
    do {                                                                                   \
        struct conn_set *set_ = &(c)->w->conns;                                            \
        struct wharf_conn *prev_ = set_->current;                                          \
        uint64_t t0_ = histogram_now_ns();                                                 \
        set_->current = (c);                                                               \
        CALLBACK_RUN(what, (c)->l, (int)(c)->w->id, (c)->id, call);                        \
        set_->current = prev_;                                                             \
        histogram_observe(&conn_stats(c)->hist[HISTOGRAM_HANDLER], HISTOGRAM_HANDLER,      \
                          histogram_now_ns() - t0_);                                       \
    } while (0)

/* conn.c: the connection's counters, its listener's name, its output
 * not yet written (c->out and, during its callback, the scratch buffer). */
struct listener_counters *conn_stats(const struct wharf_conn *c);
const char *conn_name(const struct wharf_conn *c);
size_t conn_pending(const struct wharf_conn *c);
/* Output kept past its callback, copied (c->out) and referenced: what the
 * watermarks, the write timeouts and the epoll mask look at. */
static inline size_t conn_out_len(const struct wharf_conn *c)
{
    return c->out.len + c->refs.bytes;
}
/* Memory that output holds (the output budget and output_buffered count
 * it): c->out's allocation and the referenced bytes not yet written. */
static inline size_t conn_out_held(const struct wharf_conn *c)
{
    return c->out.cap + c->refs.bytes;
}
/* conn.c: moves c to state `to` if the table allows it (else logs, false). */
bool conn_move(struct wharf_conn *c, enum conn_state to);
/* conn.c: calls on_open (once); from then on on_close is owed. */
void conn_opened(struct wharf_conn *c);

/* conn_io.c (see its top comment).  The int-returning calls return 0, or
 * -1 when c is dead. */
int conn_io_wants_input(const struct wharf_conn *c);
void conn_io_update_events(struct wharf_conn *c);
/* LOOP_RECV (c reads only through loop_recv), or 0 when kernel TLS may read
 * c's socket itself. */
uint32_t conn_io_recv_bit(const struct wharf_conn *c);
void conn_io_output_resized(struct wharf_conn *c, size_t old_held);
int conn_io_flush(struct wharf_conn *c);
int conn_io_settle(struct wharf_conn *c);
void conn_io_schedule_offer(struct wharf_conn *c);
void conn_io_schedule_flush(struct wharf_conn *c);
void conn_io_unschedule_offer(struct wharf_conn *c);
int conn_io_offer(struct wharf_conn *c);
int conn_io_read(struct wharf_conn *c);
void conn_io_run_offers(struct loop_check *check);

/* conn_budget.c: the server is over its output budget (see there). */
void conn_budget_check(struct wharf_worker *w);
void conn_budget_on_timer(struct timer *t, uint64_t now);

/* conn_deadline.c: arms c's timer for its earliest deadline; the timer's
 * callback. */
void conn_deadline_arm(struct wharf_conn *c);
void conn_deadline_fired(struct timer *t, uint64_t now);

/* conn_evict.c: c (accepted) joins the eviction order; c made progress
 * (the handler consumed input, output was written); c leaves the order
 * (closed).  conn_evict_one closes w's connection with the oldest
 * progress, reason "evicted", if it made none for idle_ms (> 0); returns
 * whether it did.  O(1) each. */
void conn_evict_track(struct wharf_conn *c);
void conn_evict_progress(struct wharf_conn *c);
void conn_evict_untrack(struct wharf_conn *c);
bool conn_evict_one(struct wharf_worker *w, uint64_t idle_ms);

/* conn_proxy.c: an accepted connection of a proxy_protocol listener waits
 * for its header (false: refused, closed); reads the header from the kept
 * input (1: done, the handler opened; 0: more needed; -1: refused). */
bool conn_proxy_start(struct wharf_conn *c);
int conn_proxy_read(struct wharf_conn *c);

/*
 * conn_tls.c: the TLS layer of a TLS listener's connections and of
 * wharf_connect_tls's (see there).  conn_tls_start makes the SSL object at
 * the open, or takes the outbound one's (false: closed);
 * conn_tls_handshake drives the handshake (0, or -1 when c is dead) and
 * opens the connection to the handler when it completes; conn_tls_recv and
 * conn_tls_send are recv/send of plaintext (-1 with errno EAGAIN when the
 * TLS layer waits for the socket; c->tls_want says for which event);
 * conn_tls_shutdown sends close_notify once; conn_tls_free frees the SSL
 * object (the teardown's).
 */
bool conn_tls_start(struct wharf_conn *c);
/* The counter of c's failed handshakes for `why`: the listener's own, or
 * its outbound ones'. */
static inline _Atomic uint64_t *conn_tls_failed_counter(const struct wharf_conn *c,
                                                        enum listener_tls_fail why)
{
    struct listener_counters *st = conn_stats(c);
    return (c->flags & CONN_OUTBOUND) ? &st->tls_out_failed[why] : &st->tls_failed[why];
}
int conn_tls_handshake(struct wharf_conn *c);
ssize_t conn_tls_recv(struct wharf_conn *c, void *p, size_t len);
ssize_t conn_tls_send(struct wharf_conn *c, const void *p, size_t len);
bool conn_tls_pending(const struct wharf_conn *c);
void conn_tls_shutdown(struct wharf_conn *c);
void conn_tls_free(struct wharf_conn *c);

#endif
