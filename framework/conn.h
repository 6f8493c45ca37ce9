/*
 * conn.h - one TCP connection (the object behind the public wharf_conn), and
 * the set of connections one worker owns.
 *
 * Owned by one worker.  An idle connection holds no buffers: input is read
 * into the worker's shared read buffer and only what the handler leaves
 * unconsumed is copied into c->in; output written during a callback goes to
 * the worker's scratch buffer and only what the socket does not take at once
 * is kept in c->out.  Every way a connection ends goes through one teardown
 * (conn_close), which also releases its admission and its generation.
 */
#ifndef WHARF_CONN_H
#define WHARF_CONN_H

#include <stdint.h>

#include "buf.h"
#include "listener.h"
#include "loop.h"
#include "timer.h"
#include "wharf.h"

struct worker;

enum conn_flags {
    CONN_PAUSED_HANDLER = 1u << 0, /* wharf_pause_read */
    CONN_PAUSED_OUTPUT = 1u << 1,  /* output above the high watermark */
    CONN_PEER_EOF = 1u << 2,       /* the peer shut its side */
    CONN_CLOSING = 1u << 3,        /* close once output is written */
    CONN_CLOSED = 1u << 4,         /* torn down (only inside the teardown) */
    CONN_CLOSE_PENDING = 1u << 5,  /* conn_close called during a callback */
};

struct wharf_conn {
    struct loop_watcher watcher; /* its socket on the worker's loop */
    uint32_t flags;              /* enum conn_flags */
    int ticket;                  /* admission ticket (admission.h) */
    uint64_t id;
    struct worker *w;
    struct listener *l;          /* in the generation it holds a reference to */
    void *data;                  /* the handler's */
    struct buf in, out;
    struct timer timer;          /* fires at the earliest active deadline */
    uint64_t opened_ms, last_read_ms, last_write_ms;
    uint32_t idle_ms, write_ms, lifetime_ms; /* 0 = off */
    enum wharf_close_reason close_reason;    /* for CLOSING / CLOSE_PENDING */
    struct wharf_conn *prev, *next;          /* the worker's list */
    struct loop_defer freed;                 /* freed at the end of the turn */
    socklen_t peer_len, local_len;
    union sockaddr_any peer, local;          /* local is filled on first use */
};

/* The connections of one worker and what they share. */
struct conn_set {
    struct wharf_conn *head;     /* every open connection (doubly linked) */
    size_t n;
    char *readbuf;               /* shared read buffer for all connections */
    size_t readbuf_size;
    struct buf scratch;          /* output of the connection in a callback */
    struct wharf_conn *scratch_conn; /* whose output scratch holds, or NULL */
    struct wharf_conn *current;  /* the connection whose callback is running */
};

/* Prepares / frees a worker's set (the connections must be gone). */
int conn_set_init(struct conn_set *s);
void conn_set_free(struct conn_set *s);

/*
 * Opens a connection on worker w for the accepted socket fd of listener l
 * (calls on_open).  Takes over the fd, the admission ticket and one
 * reference to l's generation; on failure they are released at once.
 */
void conn_open(struct worker *w, struct listener *l, int fd, const union sockaddr_any *peer,
               socklen_t peer_len, int ticket);
/* Releases what a hand-off carried when it is never opened (stopping). */
void conn_abandon(struct worker *w, struct listener *l, int fd, const union sockaddr_any *peer,
                  int ticket);

/* Tears c down: on_close(reason), close the socket, release everything.
 * Called for EOF, errors, timeouts, limits and shutdown alike.  Inside one
 * of c's callbacks the teardown is deferred until the callback returns. */
void conn_close(struct wharf_conn *c, enum wharf_close_reason reason);

/* Shutdown: closes (reason "shutdown") every connection of w with nothing
 * in flight, or every one when `all`.  Returns how many closed. */
size_t conn_close_idle(struct worker *w, bool all);

#endif
