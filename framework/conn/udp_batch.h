/*
 * udp_batch.h - the one place a worker's UDP datagrams leave from: every
 * datagram handler code sends (wharf_reply, wharf_udp_send, from any
 * callback) is copied into the worker's send batch and goes out with one
 * sendmmsg per socket when the batch is flushed: after each receive batch
 * of a listener socket, at the end of the loop turn (the closing phase,
 * before any handle closed in the turn ends), before a handle ends, and
 * earlier when the batch is full.  With a listener's "udp_gso", runs of
 * equal-size datagrams to one peer leave as one UDP_SEGMENT send.
 *
 * Memory: one batch per worker, made on first use: UDP_BATCH_MAX datagrams
 * and UDP_BATCH_ARENA bytes of payload (about 270 KiB in all), whatever
 * handler code sends.
 */
#ifndef WHARF_UDP_BATCH_H
#define WHARF_UDP_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define UDP_BATCH_MAX 64                /* datagrams held before a flush */
#define UDP_BATCH_ARENA (256u * 1024)   /* payload bytes held before a flush */

struct listener;
struct wharf_worker;

/* Makes w's batch if it has none.  Returns 0 or -ENOMEM. */
int udp_batch_reserve(struct wharf_worker *w);

/*
 * Queues a copy of data (len bytes, at most 65,527) for socket fd, to `to`
 * (NULL: fd is connected), counted on listener l (which, and whose
 * generation, must outlive the flush: see udp_batch.c).  The caller has
 * checked the guards.  Flushes first when the batch is full.  Returns 0 or
 * -ENOMEM (no batch could be made).  Worker w's thread only.
 */
int udp_batch_add(struct wharf_worker *w, int fd, struct listener *l, const struct sockaddr *to,
                  socklen_t tolen, const void *data, size_t len);

/*
 * Sends everything queued: one sendmmsg per socket (more when the kernel
 * takes part of a batch).  A datagram the kernel refuses (an unreachable
 * peer, a full send buffer) is dropped and counted (reason send_failed);
 * the others still go.  Every call is counted in the listener's
 * datagram_send_calls.  Worker w's thread only; cheap when empty.
 */
void udp_batch_flush(struct wharf_worker *w);

/* Whether w's batch holds datagrams for socket fd. */
bool udp_batch_holds(const struct wharf_worker *w, int fd);

/* Frees w's batch (worker_destroy, after its last loop turn: empty by
 * then). */
void udp_batch_free(struct wharf_worker *w);

#endif
