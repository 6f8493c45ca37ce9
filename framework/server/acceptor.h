/*
 * acceptor.h - the acceptor thread: its own event loop over the TCP
 * listening sockets of the current generation; accepts with
 * accept4(SOCK_NONBLOCK|SOCK_CLOEXEC) and hands each connection to the
 * least-loaded worker whose mailbox has room.
 *
 * Admission: when max_connections are open or every worker's mailbox is
 * full it stops watching the listening sockets (the kernel backlog holds the
 * rest) until a release or a drained mailbox reports room (or a short poll
 * finds it); EMFILE/ENFILE/ENOBUFS/ENOMEM pause accepting for a short
 * backoff instead of spinning; transient errors (ECONNABORTED, EPROTO,
 * EINTR, ...) are skipped.  A source over max_connections_per_source is
 * accepted and closed at once (counted in the listener's `rejected`).
 */
#ifndef WHARF_ACCEPTOR_H
#define WHARF_ACCEPTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acceptor;
struct admission;
struct generation;
struct wharf_worker;

/* Makes an acceptor feeding ws[0..nws) under `admission`.  Returns NULL
 * with errno set. */
struct acceptor *acceptor_new(struct wharf_worker *ws, unsigned nws, struct admission *admission);
/* Starts the thread accepting for generation g (a reference is taken).
 * Returns 0 or a positive errno. */
int acceptor_start(struct acceptor *a, struct generation *g);
/* Switches to generation g (reload): watches g's listening sockets instead
 * of the old generation's, then closes the old generation's listening
 * sockets, and returns true once done.  Listeners g keeps hold duplicates
 * of the same sockets, so nothing queued in their backlog is lost.  If the
 * thread has not begun the switch within timeout_ms, it never will and
 * false comes back (the old generation stays).  Any thread. */
bool acceptor_switch(struct acceptor *a, struct generation *g, uint64_t timeout_ms);
/* Posts fn(arg, NULL, cancelled) to the acceptor's thread (urgent).
 * Returns 0 or -errno. */
int acceptor_post(struct acceptor *a, void (*fn)(void *arg, void *payload, bool cancelled),
                  void *arg);
/* Watches again exactly the listening sockets whose listener is accepting
 * (listener_accepting: after a runtime pause, drain or resume).  Any
 * thread; returns 0 or -errno. */
int acceptor_refresh(struct acceptor *a);
/* Stops accepting, closes the listening sockets it watches, joins the
 * thread (idempotent). */
/* Whether accepting is paused now (no room, or out of descriptors); any
 * thread, a snapshot.  False for NULL. */
bool acceptor_paused(const struct acceptor *a);
void acceptor_stop(struct acceptor *a);
void acceptor_free(struct acceptor *a);

#endif
