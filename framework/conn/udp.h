/*
 * udp.h - the UDP sockets of one worker: for each UDP listener of a
 * generation, the worker's own SO_REUSEPORT socket per address (with
 * reuse_port; without it worker 0 reads the listener's one socket), read in
 * batches with recvmmsg, each datagram handed to the handler's on_datagram,
 * replies sent in batches with sendmmsg.  Datagrams up to 65,507 bytes pass
 * whole.
 */
#ifndef WHARF_UDP_H
#define WHARF_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct generation;
struct listener;
struct wharf_worker;
struct udp_set;

/* Watches worker w's sockets of generation g on w's loop and allocates the
 * batch buffers.  Returns 0 with the set in *out (NULL when g has no UDP
 * listener), or a negative errno with a message in err. */
int udp_set_new(struct wharf_worker *w, struct generation *g, struct udp_set **out, char *err,
                size_t errlen);
/* Stops watching the set's sockets now and frees it at the end of the loop
 * turn (the sockets belong to the generation's listeners).  NULL is fine. */
void udp_set_free(struct wharf_worker *w, struct udp_set *set);


/*
 * The send guard, applied to every datagram handler code sends (wharf_reply
 * and the wharf_udp_* calls): refuses a destination port below 1024 unless
 * l's "allow_privileged_ports", an unspecified, broadcast or multicast
 * address unless l's "allow_broadcast", and, with own_ports and l's
 * "loop_guard", a port that is one of this server's UDP ports (those of l's
 * generation and of w's current one).  Returns 0, -EACCES, -ELOOP, -EINVAL
 * (to is NULL or len too short for its family) or -EAFNOSUPPORT (not IPv4
 * or IPv6).  Cost: a few comparisons, plus one per listener with own_ports.
 */
int udp_send_guard(struct wharf_worker *w, const struct listener *l, const struct sockaddr *to,
                   socklen_t len, bool own_ports);
/* Whether port is one of this server's UDP ports (those of l's generation
 * and of w's current one). */
bool udp_own_port(const struct wharf_worker *w, const struct listener *l, unsigned port);
/* Counts a datagram the guard refused (rc: its result) in l's dropped
 * datagrams and logs it, at most every 10 s per worker. */
void udp_send_refused(struct wharf_worker *w, const struct listener *l, const struct sockaddr *to,
                      int rc);
/* Takes one token of l's rate_limit (l->cfg->rate_limit > 0) for address
 * addr from w's rate table: false when that address is over the rate
 * (logged, at most every 10 s).  Datagrams received from an address and
 * those sent to it share its bucket.  Worker w's thread only. */
bool udp_rate_take(struct wharf_worker *w, const struct listener *l, const struct sockaddr *addr);
/* Frees w's rate table (worker_destroy). */
void udp_rate_free(struct wharf_worker *w);

/* What a wharf_dgram is: its worker, listener and socket (udp_handle.c). */
struct wharf_dgram;
struct wharf_worker *udp_dgram_worker(const struct wharf_dgram *d);
struct listener *udp_dgram_listener(const struct wharf_dgram *d);
int udp_dgram_fd(const struct wharf_dgram *d);

/* Closes every wharf_udp handle w still has (its thread leaves its loop,
 * after every on_worker_stop; see udp_handle.c). */
void udp_handle_close_all(struct wharf_worker *w);

/* ---- the datagram sink: the test kit's network -------------------------- */

struct wharf_udp;

/*
 * A worker's datagram sink (the test kit's network, testkit_udp.c).  On a
 * worker that has one (wharf_worker.udp_sink, set before its UDP set is
 * made) no datagram goes to or comes from a socket: its UDP listeners have
 * none (listener_fd reads -1, never watched); a datagram handler code sends
 * (wharf_reply, wharf_udp_send) reaches `send` at once, in place of the
 * send path, once it has passed every check a socket's passes (size, send
 * guard, rate_limit), and is counted as sent (udp_sink_send);
 * wharf_udp_open makes no socket and asks `open`; and datagrams arrive
 * through udp_inject and udp_handle_inject, down the same path as those
 * recvmmsg and recvfrom read.  Every call comes on the worker's thread.
 */
struct udp_sink {
    /* Outbound handle u opens, to `to` (its default destination), connected
     * or not: 0, or a negative errno for wharf_udp_open to return. */
    int (*open)(struct udp_sink *sink, struct wharf_udp *u, const struct sockaddr *to,
                socklen_t tolen, bool connected);
    /* Outbound handle u, opened, ends (freed when this returns). */
    void (*close)(struct udp_sink *sink, struct wharf_udp *u);
    /* A datagram leaves listener l's socket (out NULL: a reply, a kept or
     * listener handle) or outbound socket `out`, for `to`: 0, or a negative
     * errno as sendto(2) would give. */
    int (*send)(struct udp_sink *sink, const struct listener *l, struct wharf_udp *out,
                const struct sockaddr *to, socklen_t tolen, const void *data, size_t len);
    /* getsockname(2) of l's socket (out NULL) or of outbound socket out:
     * 0 or a negative errno. */
    int (*local_addr)(struct udp_sink *sink, const struct listener *l, const struct wharf_udp *out,
                      struct sockaddr *addr, socklen_t *len);
};

/* One datagram handed in (udp_inject). */
struct udp_datagram {
    const struct sockaddr *from;
    socklen_t fromlen;
    const void *data;
    size_t len;
};

/* n datagrams arrive at worker w's socket of listener l (its first
 * address), as one read would bring them: each goes through the loop
 * guard, deny and rate_limit to on_datagram.  On w's thread.  Returns 0,
 * or -ENOENT when w has no socket of l. */
int udp_inject(struct wharf_worker *w, const struct listener *l, const struct udp_datagram *d,
               size_t n);
/* Hands a datagram that passed the guards to w's sink, from l's socket
 * (out NULL) or outbound handle out; counts it sent, or dropped (reason
 * send_failed) when the sink refuses it.  Returns 0 or the sink's error. */
int udp_sink_send(struct wharf_worker *w, const struct listener *l, struct wharf_udp *out,
                  const struct sockaddr *to, socklen_t tolen, const void *data, size_t len);
/* One datagram arrives at outbound handle u: the listener's guards, then
 * u's callback.  On u's worker's thread.  Returns 0, -EPIPE (u closed) or
 * -EINVAL (u is not an outbound handle, or from too long). */
int udp_handle_inject(struct wharf_udp *u, const struct sockaddr *from, socklen_t fromlen,
                      const void *data, size_t len);

#endif
