/*
 * udp.c - batched datagram I/O for UDP listeners (see udp.h) and the
 * wharf_dgram half of the handler API.
 *
 * One readiness event reads up to UDP_ROUNDS batches of UDP_BATCH datagrams.
 * Replies made during on_datagram are copied into a per-worker send arena and
 * go out with one sendmmsg per batch (or earlier when the arena fills).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "listener.h"
#include "log.h"
#include "udp.h"
#include "worker.h"

#define UDP_BATCH 32
#define UDP_ROUNDS 4
#define UDP_MAX_DATAGRAM 65535       /* receive buffer per datagram */
#define UDP_MAX_REPLY 65507          /* largest IPv4 UDP payload */
#define UDP_SEND_ARENA (256u * 1024) /* reply bytes held before a sendmmsg */

struct udp_sock {
    enum event_kind kind; /* EVENT_UDP; must be first (epoll tag) */
    int fd;
    struct listener *l;
    bool busy;            /* out of the epoll set, read every loop turn */
};

struct udp_worker {
    struct udp_sock *socks;
    unsigned nsocks;
    unsigned nbusy;             /* sockets read directly (see udp_set_busy) */
    /* receive side */
    char *rbuf;
    struct mmsghdr rmsg[UDP_BATCH];
    struct iovec riov[UDP_BATCH];
    union queue_addr raddr[UDP_BATCH];
    /* send side */
    char *sbuf;
    size_t sused;
    unsigned nsend;
    struct udp_sock *send_sock; /* replies in the arena go out of this socket */
    struct mmsghdr smsg[UDP_BATCH];
    struct iovec siov[UDP_BATCH];
    union queue_addr saddr[UDP_BATCH];
};

struct wharf_dgram {
    struct worker *w;
    struct udp_sock *us;
    const union queue_addr *peer;
    socklen_t peer_len;
};

int udp_worker_init(struct worker *w, char *err, size_t errlen)
{
    unsigned n = 0;
    for (unsigned i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].cfg->protocol == CONFIG_UDP)
            n += w->listeners[i].naddrs;
    if (n == 0)
        return 0;
    struct udp_worker *u = calloc(1, sizeof *u);
    if (!u || !(u->socks = calloc(n, sizeof *u->socks)) ||
        !(u->rbuf = malloc((size_t)UDP_BATCH * UDP_MAX_DATAGRAM)) ||
        !(u->sbuf = malloc(UDP_SEND_ARENA))) {
        snprintf(err, errlen, "worker %u: out of memory for UDP buffers", w->id);
        goto fail;
    }
    w->udp = u;
    for (unsigned i = 0; i < w->nlisteners; i++) {
        struct listener *l = &w->listeners[i];
        if (l->cfg->protocol != CONFIG_UDP)
            continue;
        for (unsigned a = 0; a < l->naddrs; a++) {
            struct udp_sock *s = &u->socks[u->nsocks++];
            s->kind = EVENT_UDP;
            s->fd = listener_fd(l, a, w->id);
            s->l = l;
            int rc = worker_watch(w, s->fd, EPOLLIN, s);
            if (rc < 0) {
                snprintf(err, errlen, "worker %u: epoll_ctl: %s", w->id, strerror(-rc));
                goto fail;
            }
        }
    }
    for (unsigned i = 0; i < UDP_BATCH; i++) {
        u->riov[i].iov_base = u->rbuf + (size_t)i * UDP_MAX_DATAGRAM;
        u->riov[i].iov_len = UDP_MAX_DATAGRAM;
        u->rmsg[i].msg_hdr.msg_iov = &u->riov[i];
        u->rmsg[i].msg_hdr.msg_iovlen = 1;
        u->rmsg[i].msg_hdr.msg_name = &u->raddr[i];
        u->smsg[i].msg_hdr.msg_iov = &u->siov[i];
        u->smsg[i].msg_hdr.msg_iovlen = 1;
        u->smsg[i].msg_hdr.msg_name = &u->saddr[i];
    }
    return 0;
fail:
    w->udp = u;
    udp_worker_free(w);
    return -1;
}

void udp_worker_stop(struct worker *w)
{
    struct udp_worker *u = w->udp;
    if (!u)
        return;
    for (unsigned i = 0; i < u->nsocks; i++)
        if (!u->socks[i].busy)
            epoll_ctl(w->epfd, EPOLL_CTL_DEL, u->socks[i].fd, NULL);
    u->nsocks = 0;
    u->nbusy = 0;
}

void udp_worker_free(struct worker *w)
{
    struct udp_worker *u = w->udp;
    if (!u)
        return;
    free(u->socks);
    free(u->rbuf);
    free(u->sbuf);
    free(u);
    w->udp = NULL;
}

/* Sends every queued reply.  Datagrams the socket refuses are dropped (UDP
 * gives no delivery promise) and logged at debug level. */
static void udp_flush(struct worker *w)
{
    struct udp_worker *u = w->udp;
    unsigned done = 0;
    struct udp_sock *s = u->send_sock;
    while (done < u->nsend) {
        int n = sendmmsg(s->fd, u->smsg + done, u->nsend - done, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* Skip the datagram that failed (e.g. an unreachable peer). */
            log_write(WHARF_LOG_DEBUG, s->l->cfg->name, (int)w->id, 0, "sendmmsg: %s",
                      strerror(errno));
            done++;
            continue;
        }
        struct worker_stats *st = &w->stats[s->l->index];
        STAT_ADD(st->datagrams_out, (uint64_t)n);
        for (int i = 0; i < n; i++)
            STAT_ADD(st->bytes_out, u->smsg[done + (unsigned)i].msg_len);
        done += (unsigned)n;
    }
    u->nsend = 0;
    u->sused = 0;
    u->send_sock = NULL;
}

/*
 * Reads up to UDP_ROUNDS batches from s and hands each datagram to the
 * handler.  Returns the size of the last batch, or -1 when the socket had
 * nothing (EAGAIN) or failed.
 */
static int udp_read(struct worker *w, struct udp_sock *s)
{
    struct udp_worker *u = w->udp;
    const struct wharf_handler *h = s->l->handler;
    struct worker_stats *st = &w->stats[s->l->index];
    int n = -1;

    for (int round = 0; round < UDP_ROUNDS; round++) {
        for (unsigned i = 0; i < UDP_BATCH; i++)
            u->rmsg[i].msg_hdr.msg_namelen = sizeof u->raddr[i];
        n = recvmmsg(s->fd, u->rmsg, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_write(WHARF_LOG_WARN, s->l->cfg->name, (int)w->id, 0, "recvmmsg: %s",
                          strerror(errno));
            return round == 0 ? -1 : 0;
        }
        STAT_ADD(st->datagrams_in, (uint64_t)n);
        for (int i = 0; i < n; i++) {
            struct mmsghdr *m = &u->rmsg[i];
            STAT_ADD(st->bytes_in, m->msg_len);
            struct wharf_dgram d = {w, s, &u->raddr[i], m->msg_hdr.msg_namelen};
            h->on_datagram(&d, u->riov[i].iov_base, m->msg_len);
        }
        if (u->nsend)
            udp_flush(w);
        if (n < UDP_BATCH)
            break;
    }
    return n;
}

/*
 * Busy sockets.  Every datagram sent from a socket wakes that socket's wait
 * queue, and while the socket sits in an epoll set each wake-up runs epoll's
 * callback under a lock: about 12% of the CPU per datagram under load
 * (docs/performance.md).  So while a socket keeps delivering batches at least
 * half full it leaves the epoll set and is read directly on every loop turn
 * (the worker then polls epoll without sleeping); the first read that finds
 * it empty puts it back.  That is two epoll_ctl calls per busy period and
 * nothing per datagram.
 */
static void udp_set_busy(struct worker *w, struct udp_sock *s, bool busy)
{
    struct udp_worker *u = w->udp;
    if (s->busy == busy)
        return;
    int rc = busy ? (epoll_ctl(w->epfd, EPOLL_CTL_DEL, s->fd, NULL) < 0 ? -errno : 0)
                  : worker_watch(w, s->fd, EPOLLIN, s);
    if (rc < 0) {
        log_write(WHARF_LOG_WARN, s->l->cfg->name, (int)w->id, 0, "epoll_ctl: %s",
                  strerror(-rc));
        return;
    }
    s->busy = busy;
    u->nbusy += busy ? 1 : -1;
}

void udp_on_readable(struct worker *w, void *tag)
{
    struct udp_sock *s = tag;
    if (udp_read(w, s) >= UDP_BATCH / 2)
        udp_set_busy(w, s, true);
}

bool udp_worker_busy(const struct worker *w)
{
    return w->udp && w->udp->nbusy > 0;
}

void udp_poll_busy(struct worker *w)
{
    struct udp_worker *u = w->udp;
    for (unsigned i = 0; u && u->nbusy && i < u->nsocks; i++) {
        struct udp_sock *s = &u->socks[i];
        if (s->busy && udp_read(w, s) < 0)
            udp_set_busy(w, s, false);
    }
}

int wharf_reply(wharf_dgram *d, const void *data, size_t len)
{
    struct udp_worker *u = d->w->udp;
    if (len > UDP_MAX_REPLY)
        return -EMSGSIZE;
    if (u->nsend == UDP_BATCH || u->sused + len > UDP_SEND_ARENA ||
        (u->send_sock && u->send_sock != d->us))
        udp_flush(d->w);
    unsigned i = u->nsend++;
    memcpy(u->sbuf + u->sused, data, len);
    u->siov[i].iov_base = u->sbuf + u->sused;
    u->siov[i].iov_len = len;
    u->sused += len;
    memcpy(&u->saddr[i], d->peer, d->peer_len);
    u->smsg[i].msg_hdr.msg_namelen = d->peer_len;
    u->send_sock = d->us;
    return 0;
}

const struct sockaddr *wharf_dgram_peer(const wharf_dgram *d, socklen_t *len)
{
    if (len)
        *len = d->peer_len;
    return &d->peer->sa;
}

void *wharf_dgram_listener_data(const wharf_dgram *d) { return d->us->l->data; }
unsigned wharf_dgram_worker_id(const wharf_dgram *d) { return d->w->id; }

void wharf_dgram_count_dropped(wharf_dgram *d)
{
    STAT_ADD(d->w->stats[d->us->l->index].datagrams_dropped, 1);
}
