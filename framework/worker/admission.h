/*
 * admission.h - who may open a TCP connection: one object owns the count of
 * open connections, the per-source counts (max_connections_per_source) and
 * each worker's load.  The thread that accepts (the acceptor, or the worker
 * itself for "accept": "workers") acquires once per accepted connection;
 * the connection's one teardown path (or the cancellation of a hand-off
 * that never opened) releases once.  A release wakes the acceptor when it
 * waits for room.
 */
#ifndef WHARF_ADMISSION_H
#define WHARF_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct admission;

/* For `nworkers` workers.  Returns NULL with errno set. */
struct admission *admission_new(unsigned nworkers, size_t max_connections, size_t per_source);
void admission_free(struct admission *a);

/* Changes the limits (a reload); per_source 0 turns the per-source limit
 * off.  Connections already open stay open.  Returns 0 or -ENOMEM. */
int admission_set_limits(struct admission *a, size_t max_connections, size_t per_source);

/* Counts a pause of the acceptor (no room, or out of descriptors), and reads
 * the count (for metrics). */
void admission_count_pause(struct admission *a);
uint64_t admission_pauses(const struct admission *a);
/* Output buffer bytes of every connection now. */
size_t admission_output_total(const struct admission *a);

/* The server-wide output memory budget (output_budget; 0: none). */
void admission_set_output_budget(struct admission *a, size_t bytes);
size_t admission_output_budget(const struct admission *a);
/* Counts delta bytes of output buffer memory (any thread).  Returns whether
 * the total is now over the budget. */
bool admission_output_add(struct admission *a, ptrdiff_t delta);

/* Whether another connection fits under max_connections now. */
bool admission_has_room(const struct admission *a);
/* A ticket bit: the connection is counted in the per-source table. */
#define ADMISSION_BY_SOURCE 1

/*
 * Counts one connection from `peer` owned by `worker`.  Returns a ticket
 * (>= 0) to hand back to admission_release, or -EBUSY when that source
 * already has its share open (nothing counted), or -ENOMEM.  Acceptor thread.
 */
int admission_acquire(struct admission *a, const struct sockaddr *peer, unsigned worker);
/* The same without the per-source count (by_source false): for a listener
 * whose real client is known only later (PROXY protocol). */
int admission_acquire_as(struct admission *a, const struct sockaddr *peer, unsigned worker,
                         bool by_source);
/* Adds the per-source count for a connection acquired without it.  Returns
 * the ticket bits to add (ADMISSION_BY_SOURCE or 0), or -EBUSY / -ENOMEM. */
int admission_acquire_source(struct admission *a, const struct sockaddr *peer);
/*
 * The same in two steps, for any thread that accepts (the acceptor, or a
 * worker on its own socket with "accept": "workers"): admission_reserve
 * takes one slot under max_connections atomically (false: none left, so
 * several threads accepting at once never pass the limit), before the
 * accept; admission_unreserve gives it back when nothing was accepted (or
 * the connection was refused before being counted), waking who waits for
 * room.  admission_acquire_reserved completes a reservation for `peer` on
 * `worker` as admission_acquire_as does: the ticket, or -EBUSY / -ENOMEM
 * with the reservation given back.
 */
bool admission_reserve(struct admission *a);
void admission_unreserve(struct admission *a);
int admission_acquire_reserved(struct admission *a, const struct sockaddr *peer, unsigned worker,
                               bool by_source);
/* Undoes one acquire.  Any thread (the owning worker). */
void admission_release(struct admission *a, const struct sockaddr *peer, unsigned worker,
                       int ticket);

/* Connections acquired and not released; one worker's share. */
size_t admission_open(const struct admission *a);
size_t admission_load(const struct admission *a, unsigned worker);

/*
 * Eviction (evict_idle_ms): each worker publishes when the connection it
 * would evict first (the one with the oldest progress) last made progress,
 * or UINT64_MAX when it has none (admission_set_stalled; its thread).
 * admission_evict_pick returns the worker whose published time is oldest
 * and at or before `before_ms`, or -1: the acceptor asks that worker to
 * evict.  O(workers), no lock.
 */
void admission_set_stalled(struct admission *a, unsigned worker, uint64_t since_ms);
int admission_evict_pick(const struct admission *a, uint64_t before_ms);
/* One eviction request per worker at a time, so that a worker slow to
 * answer (a handler blocking it) is not sent a pile of them: ask returns
 * false if one is already pending for that worker, else marks it; the
 * worker calls done as it takes the request (or the request was never
 * posted).  Any thread. */
bool admission_evict_ask(struct admission *a, unsigned worker);
void admission_evict_done(struct admission *a, unsigned worker);

/* The acceptor's side of "wait for room": admission_wait_begin announces it
 * and returns an eventfd that a release makes readable; admission_wait_end
 * withdraws the announcement (and clears the eventfd). */
int admission_wait_begin(struct admission *a);
void admission_wait_end(struct admission *a);
/* Wakes a waiting acceptor (e.g. a worker drained its mailbox) and every
 * worker waiting for room (admission_room_wait).  Any thread. */
void admission_wake(struct admission *a);

/*
 * A worker's side of "wait for room" ("accept": "workers"): after
 * admission_room_wait(a, w), the next release (or admission_wake) calls
 * fn(ctx, w) once, on the releasing thread, and withdraws the wait; the
 * worker must look for room once more after announcing the wait (a release
 * in between finds the announcement).  admission_room_wait_end withdraws
 * it.  The waker is set once, before any worker waits.
 */
void admission_set_room_waker(struct admission *a, void (*fn)(void *ctx, unsigned worker),
                              void *ctx);
void admission_room_wait(struct admission *a, unsigned worker);
void admission_room_wait_end(struct admission *a, unsigned worker);

#endif
