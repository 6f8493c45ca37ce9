/*
 * listener_attach.h - what a listener holds besides its sockets and
 * handler, made from its config when its generation binds and dropped when
 * the generation's memory goes: the conn_rate_limit table (rate_table.h)
 * and the access_log_file (access_log.h).  A reload makes new ones for the
 * new generation: the rate buckets start full again, an access-log file
 * named before stays the same open file.
 */
#ifndef WHARF_LISTENER_ATTACH_H
#define WHARF_LISTENER_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct listener;

/* Makes l's rate table and opens its access log, as its config asks.
 * Returns 0, or a negative errno with "FILE: listeners[i].access_log_file:
 * cannot open PATH: reason" in err (nothing kept). */
int listener_attach(struct listener *l, char *err, size_t errlen);
/* Drops them; safe to call twice. */
void listener_detach(struct listener *l);

/* Whether a connection from `peer` fits l's conn_rate_limit at now_ms (a
 * token taken when it does); true when l has no limit.  Counts and logs
 * (at most every LOG_RATE_LIMIT_PEER_MS per listener) a refusal.  Any
 * thread. */
bool listener_rate_ok(struct listener *l, const struct sockaddr *peer, uint64_t now_ms);
struct admission;
/* The checks of a connection fd just accepted on l under a reservation of ad
 * (the acceptor's accepts and the workers' own alike): the deny list,
 * conn_rate_limit and the per-source count (the last two wait for the
 * header behind a PROXY balancer).  Returns the admission ticket for
 * `worker`, or -1 after closing fd, giving the reservation back and counting
 * why; *last_log_ms rate-limits the line about a source over its share,
 * logged as worker log_worker (-1: the acceptor). */
int listener_admit(struct listener *l, struct admission *ad, int fd,
                   const struct sockaddr *peer, unsigned worker, uint64_t now_ms,
                   uint64_t *last_log_ms, int log_worker);

/* How long accepting pauses after the system ran out of a resource. */
#define LISTENER_ACCEPT_BACKOFF_MS 100
/* What an accept loop does after accept4 on l failed with errno `code`. */
enum listener_accept_next {
    LISTENER_ACCEPT_NEXT,    /* this connection failed (ECONNABORTED, EPROTO,
                              * EINTR, EPERM, network errors): accept the next */
    LISTENER_ACCEPT_DRAINED, /* EAGAIN: nothing waits */
    LISTENER_ACCEPT_BACKOFF, /* EMFILE, ENFILE, ENOBUFS, ENOMEM: pause for
                              * LISTENER_ACCEPT_BACKOFF_MS (logged here, at most
                              * every LOG_RATE_LIMIT_MS by *last_log_ms, as
                              * worker log_worker) */
    LISTENER_ACCEPT_GONE,    /* EINVAL, EBADF, ENOTSOCK: the socket is gone (stopping) */
};
enum listener_accept_next listener_accept_failed(const struct listener *l, int code,
                                                 uint64_t now_ms, uint64_t *last_log_ms,
                                                 int log_worker);

#endif
