/*
 * conn.h - one TCP connection (the object behind the public wharf_conn).
 *
 * Owned by one worker.  An idle connection holds no buffers: input is read
 * into the worker's shared read buffer and only what the handler leaves
 * unconsumed is copied into c->in; output written during a callback goes to
 * the worker's scratch buffer and only what the socket does not take at once
 * is kept in c->out.  Every way a connection ends goes through conn_close().
 */
#ifndef WHARF_CONN_H
#define WHARF_CONN_H

#include <stdint.h>

#include "buf.h"
#include "queue.h"
#include "timer.h"
#include "wharf.h"
#include "worker.h"

enum conn_flags {
    CONN_PAUSED_HANDLER = 1u << 0, /* wharf_pause_read */
    CONN_PAUSED_OUTPUT = 1u << 1,  /* output above the high watermark */
    CONN_PEER_EOF = 1u << 2,       /* the peer shut its side */
    CONN_CLOSING = 1u << 3,        /* close once output is written */
    CONN_CLOSED = 1u << 4,         /* torn down (only inside conn_close) */
    CONN_CLOSE_PENDING = 1u << 5,  /* conn_close called during a callback */
};

struct wharf_conn {
    enum event_kind kind;        /* EVENT_CONN; must be first (epoll tag) */
    int fd;
    uint32_t events;             /* epoll mask currently registered */
    uint32_t flags;              /* enum conn_flags */
    uint64_t id;
    struct worker *w;
    struct listener *l;
    void *data;                  /* the handler's */
    struct buf in, out;
    struct timer timer;          /* fires at the earliest active deadline */
    uint64_t opened_ms, last_read_ms, last_write_ms;
    uint32_t idle_ms, write_ms, lifetime_ms; /* 0 = off */
    enum wharf_close_reason close_reason;    /* for CLOSING / CLOSE_PENDING */
    struct wharf_conn *prev, *next;          /* the worker's list */
    socklen_t peer_len, local_len;
    union queue_addr peer, local;            /* local is filled on first use */
};

/* Takes ownership of the accepted socket in *item and opens a connection on
 * worker w (calls on_open).  On failure the fd is closed. */
void conn_open(struct worker *w, const struct queue_item *item);

/* Handles epoll events for c. */
void conn_on_event(struct wharf_conn *c, uint32_t events);

/* Tears c down: on_close(reason), close the socket, free everything.  Called
 * for EOF, errors, timeouts, limits and shutdown alike.  Inside one of c's
 * callbacks the teardown is deferred until the callback returns. */
void conn_close(struct wharf_conn *c, enum wharf_close_reason reason);

/* Frees the connections torn down during this loop turn (worker thread). */
void conn_free_closed(struct worker *w);

#endif
