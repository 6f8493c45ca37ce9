/*
 * udp_handle.c - the handlers' UDP handles (wharf_udp in wharf.h): a
 * listener's socket kept to send from at any time (wharf_dgram_keep,
 * wharf_udp_listener) and the worker's own outbound sockets
 * (wharf_udp_open), whose datagrams come back to a callback on the worker.
 *
 * A handle belongs to the worker that made it and sits in its list
 * (wharf_worker.udp_handles).  It is a request in the sense of callback.h:
 * it references the generation of the listener whose code made it, so the
 * listener's sockets (closed only when their generation goes) and its
 * module outlive it.  Closing follows the loop's rule: wharf_udp_close
 * marks it and queues it on the closing phase, which unwatches, closes an
 * outbound socket, drops the generation and frees at the end of the turn;
 * when the worker leaves its loop, what is left is closed there.
 *
 * Sends are queued in the worker's send batch (udp_batch.c) and leave at
 * the end of the loop turn, with the turn's other datagrams for the same
 * socket in one sendmmsg.  A handle closed in the turn it sent still gets
 * its datagrams out: the batch is flushed before the handle ends.
 *
 * On a worker with a datagram sink (the test kit; udp.h) an outbound handle
 * has no socket: the sink is told it opens and ends, takes what it sends
 * (udp_sink_send), and hands in what arrives (udp_handle_inject).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "callback.h"
#include "cidr.h"
#include "generation.h"
#include "histogram.h"
#include "listener.h"
#include "log.h"
#include "udp.h"
#include "udp_batch.h"
#include "wharf_list.h"
#include "worker.h"

#define UDP_HANDLE_RBUF 65536     /* one datagram, whole */
#define UDP_HANDLE_READS 64       /* datagrams read per readiness event */
#define UDP_MAX_SEND 65507        /* largest IPv4 UDP payload */
#define UDP_MAX_SEND6 65527       /* largest IPv6 UDP payload (no jumbograms) */

struct wharf_udp {
    struct loop_watcher watcher;  /* outbound: its socket's; must be first */
    struct loop_closing closing;
    struct wharf_list link;       /* in its worker's udp_handles */
    struct wharf_worker *w;
    struct listener *l;           /* whose settings apply; its generation referenced */
    int fd;
    int family;                   /* the socket's */
    bool owns_fd;                 /* an outbound socket (closed with the handle) */
    bool connected;
    bool closed;
    union sockaddr_any peer;      /* the default destination */
    socklen_t peer_len;           /* 0: none */
    void (*on_datagram)(wharf_udp *u, const struct sockaddr *from, socklen_t fromlen,
                        const void *data, size_t len);
    void *data;
};

/* Sets *err (when not NULL) and returns NULL. */
static wharf_udp *udp_handle_fail(int *err, int rc)
{
    if (err)
        *err = rc;
    return NULL;
}

/* A new handle of worker w for listener l (its generation referenced), or
 * NULL with *rc set. */
static struct wharf_udp *udp_handle_new(struct wharf_worker *w, struct listener *l, int *rc)
{
    if (w->udp_nhandles >= WHARF_UDP_MAX_HANDLES) {
        *rc = -ENOBUFS;
        return NULL;
    }
    struct wharf_udp *u = calloc(1, sizeof *u);
    if (!u || udp_batch_reserve(w) < 0) {
        free(u);
        *rc = -ENOMEM;
        return NULL;
    }
    /* l's generation is alive (its code is running, or w serves it), but
     * it may be inside its fini: no reference comes back to life. */
    unsigned long n = atomic_load(&l->gen->refs);
    while (n > 0 && !atomic_compare_exchange_weak(&l->gen->refs, &n, n + 1))
        ;
    if (n == 0) {
        free(u);
        *rc = -EINVAL;
        return NULL;
    }
    u->w = w;
    u->l = l;
    u->fd = -1;
    u->watcher.fd = -1;
    wharf_list_insert_tail(&w->udp_handles, &u->link);
    w->udp_nhandles++;
    return u;
}

/* The end of a handle: unwatched, its socket closed if it owns one, its
 * generation let go (which may run fini: no handler code of it is
 * running), freed. */
static void udp_handle_end(struct loop_closing *h)
{
    struct wharf_udp *u = (struct wharf_udp *)((char *)h - offsetof(struct wharf_udp, closing));
    struct wharf_worker *w = u->w;
    if (u->watcher.fd >= 0)
        loop_unwatch(&w->loop, &u->watcher);
    /* Its datagrams leave before its socket closes or its generation goes
     * (the end of the turn's flush normally came first: this is for a
     * worker leaving its loop). */
    if (u->fd >= 0 && udp_batch_holds(w, u->fd))
        udp_batch_flush(w);
    if (u->owns_fd && u->fd >= 0)
        close(u->fd);
    if (u->owns_fd && w->udp_sink)
        w->udp_sink->close(w->udp_sink, u);
    wharf_list_remove(&u->link);
    w->udp_nhandles--;
    struct listener *l = u->l;
    free(u);
    generation_unref(l->gen);
}

void wharf_udp_close(wharf_udp *u)
{
    if (!u || u->closed || wharf_current_worker() != u->w)
        return;
    u->closed = true;
    if (u->watcher.fd >= 0)
        loop_unwatch(&u->w->loop, &u->watcher);
    loop_close(&u->w->loop, &u->closing, udp_handle_end);
}

void udp_handle_close_all(struct wharf_worker *w)
{
    if (!w->udp_handles.next)
        return; /* never initialised */
    /* Those closed in on_worker_stop end first, then the ones left open. */
    loop_run_closing(&w->loop);
    while (!wharf_list_empty(&w->udp_handles)) {
        struct wharf_udp *u = wharf_list_entry(w->udp_handles.next, struct wharf_udp, link);
        u->closed = true;
        udp_handle_end(&u->closing);
    }
}

/* The family of u's socket, or AF_UNSPEC. */
static int udp_handle_family(const struct wharf_udp *u)
{
    union sockaddr_any a;
    socklen_t len = sizeof a;
    if (wharf_udp_local_addr(u, &a.sa, &len) < 0)
        return AF_UNSPEC;
    return a.sa.sa_family;
}

wharf_udp *wharf_dgram_keep(wharf_dgram *d, int *err)
{
    socklen_t len;
    const struct sockaddr *peer = wharf_dgram_peer(d, &len);
    int rc = 0;
    struct wharf_udp *u = udp_handle_new(udp_dgram_worker(d), udp_dgram_listener(d), &rc);
    if (!u)
        return udp_handle_fail(err, rc);
    u->fd = udp_dgram_fd(d);
    u->family = peer->sa_family;
    memcpy(&u->peer, peer, len);
    u->peer_len = len;
    return u;
}

wharf_udp *wharf_udp_listener(unsigned address, int *err)
{
    struct wharf_worker *w = wharf_current_worker();
    struct listener *l = callback_current();
    if (!w || !l || l->cfg->protocol != CONFIG_UDP || address >= l->naddrs || !l->fds)
        return udp_handle_fail(err, -EINVAL);
    int rc = 0;
    struct wharf_udp *u = udp_handle_new(w, l, &rc);
    if (!u)
        return udp_handle_fail(err, rc);
    u->fd = listener_fd(l, address, w->id < l->nworkers ? w->id : 0);
    u->family = udp_handle_family(u);
    return u;
}

/* One datagram that arrived at outbound handle u: counted, then, if it
 * passes the listener's guards, handed to the handler. */
static void udp_handle_dispatch(struct wharf_udp *u, const union sockaddr_any *from,
                                socklen_t fromlen, const void *data, size_t n)
{
    struct wharf_worker *w = u->w;
    struct listener *l = u->l;
    struct listener_counters *st = listener_counters(l, w->id);
    wharf_counter_add(&st->datagrams_in, 1);
    wharf_counter_add(&st->bytes_in, (uint64_t)n);
    unsigned port = ntohs(from->sa.sa_family == AF_INET6 ? from->in6.sin6_port : from->in.sin_port);
    if (l->cfg->loop_guard && (port == 0 || udp_own_port(w, l, port))) {
        listener_count_drop(l, w->id, LISTENER_DROP_LOOP_GUARD);
        return;
    }
    if (cidr_list_match(l->cfg->deny, l->cfg->ndeny, &from->sa)) {
        listener_count_drop(l, w->id, LISTENER_DROP_DENY);
        return;
    }
    if (l->cfg->rate_limit && !udp_rate_take(w, l, &from->sa)) {
        listener_count_drop(l, w->id, LISTENER_DROP_RATE_LIMIT);
        return;
    }
    if (!u->on_datagram)
        return;
    uint64_t t0 = histogram_now_ns();
    CALLBACK_RUN("udp on_datagram", l, (int)w->id, 0,
                 u->on_datagram(u, &from->sa, fromlen, data, n));
    histogram_observe(&st->hist[HISTOGRAM_HANDLER], HISTOGRAM_HANDLER, histogram_now_ns() - t0);
}

int udp_handle_inject(struct wharf_udp *u, const struct sockaddr *from, socklen_t fromlen,
                      const void *data, size_t len)
{
    if (!u->owns_fd || fromlen > sizeof(union sockaddr_any))
        return -EINVAL;
    if (u->closed)
        return -EPIPE;
    union sockaddr_any a = {0};
    memcpy(&a, from, fromlen);
    udp_handle_dispatch(u, &a, fromlen, data, len);
    return 0;
}

/* Reads up to UDP_HANDLE_READS datagrams from an outbound socket and hands
 * each to udp_handle_dispatch. */
static void udp_handle_readable(struct loop_watcher *watcher, uint32_t events)
{
    (void)events;
    struct wharf_udp *u = (struct wharf_udp *)watcher;
    struct wharf_worker *w = u->w;
    struct listener *l = u->l;
    if (!w->udp_rbuf && !(w->udp_rbuf = malloc(UDP_HANDLE_RBUF)))
        return; /* level-triggered: tried again next turn */
    for (int i = 0; i < UDP_HANDLE_READS && !u->closed; i++) {
        union sockaddr_any from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(u->fd, w->udp_rbuf, UDP_HANDLE_RBUF, MSG_DONTWAIT, &from.sa,
                             &fromlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* EAGAIN: all read.  ECONNREFUSED and the like: an ICMP error
             * for an earlier send, reported once; the socket goes on. */
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            log_write(WHARF_LOG_DEBUG, l->cfg->name, (int)w->id, 0, "outbound UDP: recvfrom: %s",
                      strerror(errno));
            continue;
        }
        udp_handle_dispatch(u, &from, fromlen, w->udp_rbuf, (size_t)n);
    }
}

wharf_udp *wharf_udp_open(const struct sockaddr *addr, socklen_t addrlen, unsigned flags,
                          void (*on_datagram)(wharf_udp *u, const struct sockaddr *from,
                                              socklen_t fromlen, const void *data, size_t len),
                          void *data, int *err)
{
    struct wharf_worker *w = wharf_current_worker();
    struct listener *l = callback_current();
    if (!w || !l || !addr || (flags & ~WHARF_UDP_CONNECT))
        return udp_handle_fail(err, -EINVAL);
    if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
        return udp_handle_fail(err, -EAFNOSUPPORT);
    if (addrlen < (addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                              : sizeof(struct sockaddr_in6)) ||
        addrlen > sizeof(union sockaddr_any))
        return udp_handle_fail(err, -EINVAL);
    int rc = 0;
    struct wharf_udp *u = udp_handle_new(w, l, &rc);
    if (!u)
        return udp_handle_fail(err, rc);
    u->family = addr->sa_family;
    memcpy(&u->peer, addr, addrlen);
    u->peer_len = addrlen;
    u->on_datagram = on_datagram;
    u->data = data;
    if (w->udp_sink) {
        /* The test kit's network: no socket (udp.h). */
        bool connected = flags & WHARF_UDP_CONNECT;
        if ((connected && (rc = udp_send_guard(w, l, addr, addrlen, true)) < 0) ||
            (rc = w->udp_sink->open(w->udp_sink, u, addr, addrlen, connected)) < 0)
            goto fail;
        u->owns_fd = true;
        u->connected = connected;
        return u;
    }
    u->owns_fd = true;
    u->fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((flags & WHARF_UDP_CONNECT)) {
        /* The guard first: a connected socket's sends go to addr only. */
        if ((rc = udp_send_guard(w, l, addr, addrlen, true)) < 0)
            goto fail;
        if (connect(u->fd, addr, addrlen) < 0) {
            rc = -errno;
            goto fail;
        }
        u->connected = true;
    } else {
        /* Bind now, so wharf_udp_local_addr has a port before the first send. */
        union sockaddr_any any = {0};
        any.sa.sa_family = addr->sa_family;
        socklen_t anylen = addr->sa_family == AF_INET ? sizeof any.in : sizeof any.in6;
        if (bind(u->fd, &any.sa, anylen) < 0) {
            rc = -errno;
            goto fail;
        }
    }
    if ((rc = loop_watch(&w->loop, &u->watcher, u->fd, LOOP_IN, udp_handle_readable)) < 0)
        goto fail;
    return u;
fail:
    u->closed = true;
    udp_handle_end(&u->closing);
    return udp_handle_fail(err, rc);
}

int wharf_udp_send(wharf_udp *u, const struct sockaddr *to, socklen_t tolen, const void *data,
                   size_t len)
{
    if (!u || (!data && len))
        return -EINVAL;
    struct wharf_worker *w = u->w;
    if (wharf_current_worker() != w)
        return -EPERM;
    if (u->closed)
        return -EPIPE;
    if (to && u->connected)
        return -EISCONN;
    if (!to) {
        if (!u->peer_len)
            return -EDESTADDRREQ;
        to = &u->peer.sa;
        tolen = u->peer_len;
    }
    union sockaddr_any dest;
    if (to->sa_family == AF_INET && u->family == AF_INET6) {
        /* IPv4 on an IPv6 socket: its IPv4-mapped form. */
        if (tolen < (socklen_t)sizeof(struct sockaddr_in))
            return -EINVAL;
        const struct sockaddr_in *in = (const struct sockaddr_in *)to;
        memset(&dest, 0, sizeof dest);
        dest.in6.sin6_family = AF_INET6;
        dest.in6.sin6_port = in->sin_port;
        dest.in6.sin6_addr.s6_addr[10] = dest.in6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&dest.in6.sin6_addr.s6_addr[12], &in->sin_addr, 4);
        to = &dest.sa;
        tolen = sizeof dest.in6;
    } else if (to->sa_family == AF_INET6 && u->family == AF_INET) {
        return -EAFNOSUPPORT;
    }
    struct listener *l = u->l;
    if (len > (to->sa_family == AF_INET6 ? UDP_MAX_SEND6 : UDP_MAX_SEND)) {
        listener_count_drop(l, w->id, LISTENER_DROP_TOO_LARGE);
        return -EMSGSIZE;
    }
    int rc = udp_send_guard(w, l, to, tolen, true);
    if (rc == -EACCES || rc == -ELOOP)
        udp_send_refused(w, l, to, rc);
    if (rc < 0)
        return rc;
    if (l->cfg->rate_limit && !udp_rate_take(w, l, to)) {
        listener_count_drop(l, w->id, LISTENER_DROP_RATE_LIMIT);
        return -EAGAIN;
    }
    if (w->udp_sink) /* the test kit's network (udp.h) */
        return udp_sink_send(w, l, u->owns_fd ? u : NULL, to, tolen, data, len);
    /* Out at the end of the loop turn (udp_batch.c); the handle made the
     * batch, so no -ENOMEM. */
    return udp_batch_add(w, u->fd, l, u->connected ? NULL : to, tolen, data, len);
}

const struct sockaddr *wharf_udp_peer(const wharf_udp *u, socklen_t *len)
{
    if (len)
        *len = u && u->peer_len ? u->peer_len : 0;
    return u && u->peer_len ? &u->peer.sa : NULL;
}

int wharf_udp_local_addr(const wharf_udp *u, struct sockaddr *addr, socklen_t *len)
{
    if (!u || !addr || !len)
        return -EINVAL;
    if (u->w->udp_sink)
        return u->w->udp_sink->local_addr(u->w->udp_sink, u->l, u->owns_fd ? u : NULL, addr, len);
    return getsockname(u->fd, addr, len) < 0 ? -errno : 0;
}

void *wharf_udp_data(const wharf_udp *u) { return u ? u->data : NULL; }
