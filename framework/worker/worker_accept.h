/*
 * worker_accept.h - a worker accepting on listening sockets of its own
 * ("accept": "workers", nginx's `reuseport`): each TCP listener in that mode
 * has one SO_REUSEPORT listening socket per address per worker
 * (listener.h), the kernel spreads new connections over them, and each
 * worker watches its own on its loop and opens what it accepts at once, with
 * no acceptor thread and no hand-off.
 *
 * Admission is the same object as the acceptor's (admission.h) and is
 * applied the same way, in the same order: a slot under max_connections is
 * taken atomically before the accept (exact whichever threads accept), then
 * the deny list, conn_rate_limit and max_connections_per_source (the last
 * two after the PROXY header on a PROXY listener, conn_proxy.c).  At
 * max_connections the worker stops watching its sockets (the kernel queues
 * the rest in that socket's backlog) until a release wakes it
 * (admission_room_wait) or a 50 ms re-check finds room; with evict_idle_ms
 * a waiting connection asks the worker with the longest-stalled connection
 * to evict it, as the acceptor does; EMFILE and the like pause its
 * accepting for 100 ms.  The difference from the acceptor: a connection
 * waits in the backlog of the socket the kernel chose for it, so while its
 * worker is busy it is not taken by an idle one (the kernel's choice is a
 * hash of the addresses, not the workers' load).
 *
 * Everything here runs on the worker's own thread, except
 * worker_accept_wake and worker_accept_post_refresh.
 */
#ifndef WHARF_WORKER_ACCEPT_H
#define WHARF_WORKER_ACCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "timer.h"

struct generation;
struct wharf_worker;
struct worker_accept_socks;

/* A worker's accepting state (a member of struct wharf_worker). */
struct worker_accept {
    struct worker_accept_socks *socks; /* its sockets of its generation, or NULL */
    struct timer backoff;              /* ends a pause, re-checks for room */
    bool paused;                       /* no room, or out of descriptors */
    uint64_t last_full_log_ms, last_source_log_ms, last_resource_log_ms;
};

/* Prepares w->accept (worker_init). */
void worker_accept_init(struct wharf_worker *w);
/*
 * Watches w's own listening sockets of generation g (its listeners with
 * "accept": "workers") instead of those it watched before (a reload; the
 * old generation's sockets stay open, they are the generation's).  Returns
 * 0, or a negative errno with a line in err and the old sockets still
 * watched.
 */
int worker_accept_watch(struct wharf_worker *w, struct generation *g, char *err, size_t errlen);
/* Stops accepting: unwatches w's sockets, and closes them when
 * `close_them` (a stop: new connections are refused by the kernel at once
 * rather than queued for nobody).  Idempotent. */
void worker_accept_stop(struct wharf_worker *w, bool close_them);
/* Watches again exactly the sockets whose listener is accepting (after a
 * runtime pause, drain or resume), unless paused for room.  Worker thread;
 * worker_accept_post_refresh asks it from any thread (0 or -errno). */
void worker_accept_refresh(struct wharf_worker *w);
int worker_accept_post_refresh(struct wharf_worker *w);
/* The admission's room waker (admission_set_room_waker): ctx is the
 * workers' array; wakes worker `index` to look for room.  Any thread. */
void worker_accept_wake(void *ctx, unsigned index);
/* Whether w watches any socket of its own (its generation has a listener
 * with "accept": "workers"). */
bool worker_accept_active(const struct wharf_worker *w);

#endif
