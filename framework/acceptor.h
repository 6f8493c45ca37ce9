/*
 * acceptor.h - the acceptor thread: waits on every TCP listening socket,
 * accepts with accept4(SOCK_NONBLOCK|SOCK_CLOEXEC) and hands each connection
 * to the least-loaded worker whose queue has room.
 *
 * Admission: when max_connections are open or every queue is full it stops
 * accepting (the kernel backlog holds the rest) until a worker reports room;
 * EMFILE/ENFILE/ENOBUFS/ENOMEM pause accepting for a short backoff instead of
 * spinning; transient errors (ECONNABORTED, EPROTO, EINTR, ...) are skipped.
 */
#ifndef WHARF_ACCEPTOR_H
#define WHARF_ACCEPTOR_H

#include <stddef.h>
#include <sys/socket.h>

struct listener;
struct worker;
struct acceptor;

/* Makes an acceptor over the TCP listeners among ls[0..nls) feeding
 * ws[0..nws).  per_source > 0 limits open connections per source address
 * (more are accepted and closed at once, counted in the listener's
 * `rejected`).  Returns NULL on error (errno set). */
struct acceptor *acceptor_new(struct listener *ls, unsigned nls, struct worker *ws, unsigned nws,
                              size_t max_connections, size_t per_source);
/* Starts the thread.  Returns 0 or a positive errno. */
int acceptor_start(struct acceptor *a);
/* Stops accepting and joins the thread (idempotent). */
void acceptor_stop(struct acceptor *a);
void acceptor_free(struct acceptor *a);

/* A connection from `peer` ended (any thread): one fewer open, and wake the
 * acceptor if it was waiting for room. */
void acceptor_conn_closed(struct acceptor *a, const struct sockaddr *peer);
/* Worker w took items off its queue: wake the acceptor if it waits for room. */
void acceptor_room(struct acceptor *a);
/* Connections admitted and not yet closed. */
size_t acceptor_active(const struct acceptor *a);

#endif
