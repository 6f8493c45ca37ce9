/*
 * udp.c - batched datagram I/O for UDP listeners (see udp.h) and the
 * wharf_dgram half of the handler API.
 *
 * One readiness event reads up to UDP_ROUNDS batches of UDP_BATCH datagrams.
 * Replies made during on_datagram are copied into the worker's send batch
 * (udp_batch.c), flushed after each receive batch: one sendmmsg per batch.
 * With "udp_gro" the sockets have UDP_GRO, and a receive the kernel
 * coalesced is split by its segment size into the datagrams it was made of.
 * On a worker with a datagram sink (the test kit; udp.h) the same path runs
 * from udp_deliver on (udp_inject), and what the handler sends goes to the
 * sink once the guards passed it (udp_sink_send).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr_key.h"
#include "callback.h"
#include "cidr.h"
#include "generation.h"
#include "listener.h"
#include "log.h"
#include "udp.h"
#include "udp_batch.h"
#include "worker.h"

#define UDP_BATCH 32
#define UDP_ROUNDS 4
#define UDP_MAX_DATAGRAM 65535       /* receive buffer per datagram */
#define UDP_MAX_REPLY 65507          /* largest IPv4 UDP payload */
#define UDP_MAX_REPLY6 65527         /* largest IPv6 UDP payload (no jumbograms) */
#define UDP_RATE_SLOTS 4096          /* sources the rate limit tracks per worker */

/* A token bucket of one source on one listener (rate_limit): tokens in
 * thousandths. */
struct udp_bucket {
    const struct listener *l; /* compared, never followed: a stale one just misses */
    uint8_t key[ADDR_KEY_LEN];
    uint64_t last_ms;
    uint64_t tokens;
};

/* The worker's rate table (wharf_worker.udp_rate), shared by its listener
 * sockets and its handles (udp_handle.c). */
struct udp_rate {
    uint64_t last_log_ms;
    struct udp_bucket buckets[UDP_RATE_SLOTS];
};

struct udp_sock {
    struct loop_watcher watcher; /* must be first */
    int fd;
    struct listener *l;
    struct udp_set *set;
    bool busy;            /* out of the epoll set, read every loop turn */
    bool gro;             /* UDP_GRO on: receives carry their segment size */
};

struct udp_set {
    struct wharf_worker *w;
    uint64_t own_ports[65536 / 64]; /* bit p: port p is one of this server's UDP ports */
    uint64_t last_loop_log_ms;
    struct udp_sock *socks;
    unsigned nsocks;
    unsigned nbusy;             /* sockets read directly (see udp_set_busy) */
    struct loop_check check;    /* reads the busy sockets every turn */
    struct loop_defer freed;
    /* receive side */
    char *rbuf;
    struct mmsghdr rmsg[UDP_BATCH];
    struct iovec riov[UDP_BATCH];
    union sockaddr_any raddr[UDP_BATCH];
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } rctl[UDP_BATCH];          /* UDP_GRO's segment size */
};

struct wharf_dgram {
    struct wharf_worker *w;
    struct udp_sock *us;
    const union sockaddr_any *peer;
    socklen_t peer_len;
};

static void udp_on_readable(struct loop_watcher *watcher, uint32_t events);
static void udp_poll_busy(struct loop_check *check);

static void udp_set_release(struct loop_defer *d)
{
    struct udp_set *u = (struct udp_set *)((char *)d - offsetof(struct udp_set, freed));
    free(u->socks);
    free(u->rbuf);
    free(u);
}

void udp_set_free(struct wharf_worker *w, struct udp_set *u)
{
    if (!u)
        return;
    for (unsigned i = 0; i < u->nsocks; i++)
        loop_unwatch(&w->loop, &u->socks[i].watcher);
    if (u->nbusy)
        loop_set_busy(&w->loop, -(int)u->nbusy);
    u->nbusy = 0;
    u->nsocks = 0;
    loop_remove_check(&w->loop, &u->check);
    loop_defer(&w->loop, &u->freed, udp_set_release);
}

int udp_set_new(struct wharf_worker *w, struct generation *g, struct udp_set **out, char *err,
                size_t errlen)
{
    *out = NULL;
    unsigned n = 0;
    for (unsigned i = 0; i < g->nlisteners; i++)
        if (g->listeners[i].cfg->protocol == CONFIG_UDP && w->id < g->listeners[i].nworkers)
            n += g->listeners[i].naddrs;
    if (n == 0)
        return 0;
    struct udp_set *u = calloc(1, sizeof *u);
    if (!u || !(u->socks = calloc(n, sizeof *u->socks)) ||
        !(u->rbuf = malloc((size_t)UDP_BATCH * UDP_MAX_DATAGRAM)) || udp_batch_reserve(w) < 0) {
        snprintf(err, errlen, "worker %u: out of memory for UDP buffers", w->id);
        if (u) {
            free(u->socks);
            free(u->rbuf);
            free(u);
        }
        return -ENOMEM;
    }
    u->w = w;
    u->check.fn = udp_poll_busy;
    /* The loop guard's set: every UDP port of this generation, however many. */
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (l->cfg->protocol == CONFIG_UDP && l->port > 0 && l->port <= 65535)
            u->own_ports[l->port / 64] |= 1ull << (l->port % 64);
    }
    loop_add_check(&w->loop, &u->check);
    for (unsigned i = 0; i < g->nlisteners; i++) {
        struct listener *l = &g->listeners[i];
        if (l->cfg->protocol != CONFIG_UDP || w->id >= l->nworkers)
            continue;
        for (unsigned a = 0; a < l->naddrs; a++) {
            struct udp_sock *s = &u->socks[u->nsocks++];
            s->watcher.fd = -1;
            s->fd = listener_fd(l, a, w->id);
            s->l = l;
            s->set = u;
            if (s->fd < 0)
                continue; /* no socket: the worker's sink has its datagrams (udp.h) */
            /* The kernel refuses a broadcast destination without it. */
            int on = 1;
            if (l->cfg->allow_broadcast)
                (void)setsockopt(s->fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on);
            /* Set either way: a socket kept across a reload may have it. */
            int gro = l->cfg->udp_gro;
            s->gro = setsockopt(s->fd, SOL_UDP, UDP_GRO, &gro, sizeof gro) == 0 && gro;
            if (gro && !s->gro)
                log_write(WHARF_LOG_INFO, l->cfg->name, (int)w->id, 0,
                          "udp_gro: the kernel refused UDP_GRO (%s); reading datagrams one "
                          "by one", strerror(errno));
            int rc = loop_watch(&w->loop, &s->watcher, s->fd, LOOP_IN, udp_on_readable);
            if (rc < 0) {
                snprintf(err, errlen, "worker %u: epoll_ctl: %s", w->id, strerror(-rc));
                udp_set_free(w, u);
                return rc;
            }
        }
    }
    for (unsigned i = 0; i < UDP_BATCH; i++) {
        u->riov[i].iov_base = u->rbuf + (size_t)i * UDP_MAX_DATAGRAM;
        u->riov[i].iov_len = UDP_MAX_DATAGRAM;
        u->rmsg[i].msg_hdr.msg_iov = &u->riov[i];
        u->rmsg[i].msg_hdr.msg_iovlen = 1;
        u->rmsg[i].msg_hdr.msg_name = &u->raddr[i];
    }
    *out = u;
    return 0;
}

/*
 * The loop guard (FreeBSD inetd's check_loop, generalised): a datagram whose
 * source port is one of this server's own UDP ports comes from this server
 * itself (a spoofed source) or from a peer service of the same kind on
 * another host; answering it could bounce it between the two forever.
 */
static bool udp_from_own_port(const struct udp_set *u, const union sockaddr_any *src)
{
    unsigned port = ntohs(src->sa.sa_family == AF_INET6 ? src->in6.sin6_port : src->in.sin_port);
    return (u->own_ports[port / 64] >> (port % 64)) & 1;
}

static void udp_refuse_loop(struct udp_set *u, struct udp_sock *s, const union sockaddr_any *src)
{
    listener_count_drop(s->l, u->w->id, LISTENER_DROP_LOOP_GUARD);
    if (log_due(&u->last_loop_log_ms, u->w->loop.now_ms, LOG_RATE_LIMIT_MS)) {
        char addr[64];
        listener_format_addr(&src->sa, addr, sizeof addr);
        log_write(WHARF_LOG_WARN, s->l->cfg->name, (int)u->w->id, 0,
                  "dropped a datagram from %s: its source port is one of this server's UDP "
                  "ports (loop guard; logged at most every %d s)", addr, LOG_RATE_LIMIT_MS / 1000);
    }
}

/* Whether IPv4 address a (host order) is unspecified, broadcast or
 * multicast: 0.0.0.0/8, 224.0.0.0/4 (multicast), 240.0.0.0/4 (reserved)
 * and 255.255.255.255. */
static bool udp_ipv4_broadcast_like(uint32_t a)
{
    return (a >> 24) == 0 || (a >> 28) == 0xe || (a >> 28) == 0xf;
}

/* Whether port p is a UDP port of one of g's listeners. */
static bool udp_gen_has_port(const struct generation *g, unsigned p)
{
    for (unsigned i = 0; g && i < g->nlisteners; i++)
        if (g->listeners[i].cfg->protocol == CONFIG_UDP && g->listeners[i].port == (int)p)
            return true;
    return false;
}

/*
 * The send guard (see udp.h): the reflection guard of udp_echo, applied by
 * the framework to what handler code sends, so that no handler can be made
 * to aim traffic at a service that answers anything, at a whole network, or
 * back at this server.
 */
int udp_send_guard(struct wharf_worker *w, const struct listener *l, const struct sockaddr *to,
                   socklen_t len, bool own_ports)
{
    unsigned port;
    bool broadcast;
    if (!to)
        return -EINVAL;
    if (to->sa_family == AF_INET) {
        if (len < (socklen_t)sizeof(struct sockaddr_in))
            return -EINVAL;
        const struct sockaddr_in *in = (const struct sockaddr_in *)to;
        port = ntohs(in->sin_port);
        broadcast = udp_ipv4_broadcast_like(ntohl(in->sin_addr.s_addr));
    } else if (to->sa_family == AF_INET6) {
        if (len < (socklen_t)sizeof(struct sockaddr_in6))
            return -EINVAL;
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)to;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        port = ntohs(in6->sin6_port);
        broadcast = b[0] == 0xff || IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            broadcast = udp_ipv4_broadcast_like((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
                                                (uint32_t)b[14] << 8 | b[15]);
    } else {
        return -EAFNOSUPPORT;
    }
    if (port < 1024 && !l->cfg->allow_privileged_ports)
        return -EACCES;
    if (broadcast && !l->cfg->allow_broadcast)
        return -EACCES;
    if (own_ports && l->cfg->loop_guard && udp_own_port(w, l, port))
        return -ELOOP;
    return 0;
}

bool udp_own_port(const struct wharf_worker *w, const struct listener *l, unsigned port)
{
    return udp_gen_has_port(l->gen, port) ||
           (w->udp_gen != l->gen && udp_gen_has_port(w->udp_gen, port));
}

/* Counts a send the guard refused and logs it (rate-limited). */
void udp_send_refused(struct wharf_worker *w, const struct listener *l, const struct sockaddr *to,
                      int rc)
{
    listener_count_drop(l, w->id, rc == -ELOOP ? LISTENER_DROP_LOOP_GUARD
                                               : LISTENER_DROP_SEND_GUARD);
    if (log_due(&w->udp_guard_log_ms, w->loop.now_ms, LOG_RATE_LIMIT_MS)) {
        char addr[64];
        listener_format_addr(to, addr, sizeof addr);
        log_write(WHARF_LOG_WARN, l->cfg->name, (int)w->id, 0,
                  "refused a datagram to %s: %s (logged at most every %d s)", addr,
                  rc == -ELOOP ? "one of this server's UDP ports (loop_guard)"
                               : "a privileged port or a broadcast or multicast address "
                                 "(allow_privileged_ports, allow_broadcast)",
                  LOG_RATE_LIMIT_MS / 1000);
    }
}

/*
 * rate_limit: a token bucket per (listener, address) (up to one second's
 * worth of burst), in a fixed table per worker, so one listener's traffic
 * never spends another's allowance: an address that collides with another
 * takes its slot over with a full bucket, so memory stays bounded whatever
 * the number of addresses.  Datagrams received from an address and
 * datagrams a handle sends to it (udp_handle.c) draw on the same bucket.
 */
bool udp_rate_take(struct wharf_worker *w, const struct listener *l, const struct sockaddr *addr)
{
    if (!w->udp_rate && !(w->udp_rate = calloc(1, sizeof *w->udp_rate)))
        return true; /* no memory: no limit, rather than no service */
    /* IPv4 as IPv4-mapped IPv6, so both forms of one address share a bucket. */
    uint8_t key[ADDR_KEY_LEN];
    addr_key(addr, key);
    uint64_t h = addr_key_hash(key) ^ ((uint64_t)(uintptr_t)l * 0x9e3779b97f4a7c15ull);
    struct udp_bucket *b = &w->udp_rate->buckets[(h ^ (h >> 29)) & (UDP_RATE_SLOTS - 1)];
    uint64_t rate = l->cfg->rate_limit, now = w->loop.now_ms, full = rate * 1000;
    if (b->l != l || memcmp(b->key, key, ADDR_KEY_LEN) != 0 || b->last_ms == 0) {
        b->l = l;
        memcpy(b->key, key, ADDR_KEY_LEN);
        b->tokens = full;
        b->last_ms = now ? now : 1;
    } else if (now > b->last_ms) {
        uint64_t add = (now - b->last_ms) * rate;
        b->tokens = b->tokens + add > full ? full : b->tokens + add;
        b->last_ms = now;
    }
    if (b->tokens >= 1000) {
        b->tokens -= 1000;
        return true;
    }
    if (log_due(&w->udp_rate->last_log_ms, now, LOG_RATE_LIMIT_MS)) {
        char text[64];
        listener_format_addr(addr, text, sizeof text);
        log_write(WHARF_LOG_WARN, l->cfg->name, (int)w->id, 0,
                  "dropping datagrams from or to %s: over rate_limit (%llu/s; logged at most "
                  "every %d s)", text, (unsigned long long)rate, LOG_RATE_LIMIT_MS / 1000);
    }
    return false;
}

void udp_rate_free(struct wharf_worker *w)
{
    free(w->udp_rate);
    w->udp_rate = NULL;
}

/* Hands one datagram from src to the handler, after the loop guard, the
 * deny list and rate_limit. */
static void udp_deliver(struct udp_sock *s, const union sockaddr_any *src, socklen_t srclen,
                        char *data, size_t len)
{
    struct udp_set *u = s->set;
    struct wharf_worker *w = u->w;
    struct listener_counters *st = listener_counters(s->l, w->id);
    wharf_counter_add(&st->datagrams_in, 1);
    wharf_counter_add(&st->bytes_in, len);
    if (s->l->cfg->loop_guard && udp_from_own_port(u, src)) {
        udp_refuse_loop(u, s, src);
        return;
    }
    if (cidr_list_match(s->l->cfg->deny, s->l->cfg->ndeny, &src->sa)) {
        listener_count_drop(s->l, w->id, LISTENER_DROP_DENY);
        return;
    }
    if (s->l->cfg->rate_limit && !udp_rate_take(w, s->l, &src->sa)) {
        listener_count_drop(s->l, w->id, LISTENER_DROP_RATE_LIMIT);
        return;
    }
    struct wharf_dgram d = {w, s, src, srclen};
    uint64_t t0 = histogram_now_ns();
    CALLBACK_RUN("on_datagram", s->l, (int)w->id, 0, s->l->handler->on_datagram(&d, data, len));
    histogram_observe(&st->hist[HISTOGRAM_HANDLER], HISTOGRAM_HANDLER, histogram_now_ns() - t0);
}

int udp_inject(struct wharf_worker *w, const struct listener *l, const struct udp_datagram *d,
               size_t n)
{
    struct udp_set *u = w->udp;
    struct udp_sock *s = NULL;
    for (unsigned i = 0; u && i < u->nsocks && !s; i++)
        if (u->socks[i].l == l)
            s = &u->socks[i];
    if (!s)
        return -ENOENT;
    for (size_t i = 0; i < n; i++) {
        union sockaddr_any from = {0};
        socklen_t fromlen = d[i].fromlen < sizeof from ? d[i].fromlen : sizeof from;
        memcpy(&from, d[i].from, fromlen);
        udp_deliver(s, &from, fromlen, (char *)d[i].data, d[i].len);
    }
    return 0;
}

int udp_sink_send(struct wharf_worker *w, const struct listener *l, struct wharf_udp *out,
                  const struct sockaddr *to, socklen_t tolen, const void *data, size_t len)
{
    int rc = w->udp_sink->send(w->udp_sink, l, out, to, tolen, data, len);
    if (rc < 0) {
        listener_count_drop(l, w->id, LISTENER_DROP_SEND_FAILED);
        return rc;
    }
    struct listener_counters *st = listener_counters(l, w->id);
    wharf_counter_add(&st->datagrams_out, 1);
    wharf_counter_add(&st->bytes_out, len);
    return 0;
}

/* The segment size of a coalesced receive (UDP_GRO), or 0. */
static size_t udp_gro_size(struct msghdr *h)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int size;
            memcpy(&size, CMSG_DATA(c), sizeof size);
            return size > 0 ? (size_t)size : 0;
        }
    return 0;
}

/*
 * Reads up to UDP_ROUNDS batches from s and hands each datagram to the
 * handler (a coalesced receive as the datagrams it was made of: each
 * segment of its size, the last one possibly shorter), then flushes the
 * replies.  Returns the size of the last batch, or -1 when the socket had
 * nothing (EAGAIN) or failed.
 */
static int udp_read(struct udp_sock *s)
{
    struct udp_set *u = s->set;
    struct wharf_worker *w = u->w;
    int n = -1;

    for (int round = 0; round < UDP_ROUNDS; round++) {
        for (unsigned i = 0; i < UDP_BATCH; i++) {
            struct msghdr *h = &u->rmsg[i].msg_hdr;
            h->msg_namelen = sizeof u->raddr[i];
            h->msg_control = s->gro ? u->rctl[i].buf : NULL;
            h->msg_controllen = s->gro ? sizeof u->rctl[i].buf : 0;
        }
        n = recvmmsg(s->fd, u->rmsg, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_write(WHARF_LOG_WARN, s->l->cfg->name, (int)w->id, 0, "recvmmsg: %s",
                          strerror(errno));
            return round == 0 ? -1 : 0;
        }
        for (int i = 0; i < n; i++) {
            struct mmsghdr *m = &u->rmsg[i];
            char *data = u->riov[i].iov_base;
            size_t len = m->msg_len;
            size_t seg = s->gro ? udp_gro_size(&m->msg_hdr) : 0;
            if (seg == 0 || seg >= len) {
                udp_deliver(s, &u->raddr[i], m->msg_hdr.msg_namelen, data, len);
                continue;
            }
            for (size_t off = 0; off < len; off += seg)
                udp_deliver(s, &u->raddr[i], m->msg_hdr.msg_namelen, data + off,
                            len - off < seg ? len - off : seg);
        }
        udp_batch_flush(w);
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
static void udp_set_busy(struct udp_sock *s, bool busy)
{
    struct udp_set *u = s->set;
    struct wharf_worker *w = u->w;
    if (s->busy == busy)
        return;
    int rc = 0;
    if (busy)
        loop_unwatch(&w->loop, &s->watcher);
    else
        rc = loop_watch(&w->loop, &s->watcher, s->fd, LOOP_IN, udp_on_readable);
    if (rc < 0) {
        log_write(WHARF_LOG_WARN, s->l->cfg->name, (int)w->id, 0, "epoll_ctl: %s",
                  strerror(-rc));
        return;
    }
    s->busy = busy;
    u->nbusy += busy ? 1 : -1;
    loop_set_busy(&w->loop, busy ? 1 : -1);
}

static void udp_on_readable(struct loop_watcher *watcher, uint32_t events)
{
    struct udp_sock *s = (struct udp_sock *)watcher;
    if (udp_read(s) >= UDP_BATCH / 2)
        udp_set_busy(s, true);
}

static void udp_poll_busy(struct loop_check *check)
{
    struct udp_set *u = (struct udp_set *)((char *)check - offsetof(struct udp_set, check));
    for (unsigned i = 0; u->nbusy && i < u->nsocks; i++) {
        struct udp_sock *s = &u->socks[i];
        if (s->busy && udp_read(s) < 0)
            udp_set_busy(s, false);
    }
}

int wharf_reply(wharf_dgram *d, const void *data, size_t len)
{
    if (len > (d->peer->sa.sa_family == AF_INET6 ? UDP_MAX_REPLY6 : UDP_MAX_REPLY)) {
        listener_count_drop(d->us->l, d->w->id, LISTENER_DROP_TOO_LARGE);
        return -EMSGSIZE;
    }
    /* Its source passed the loop guard on the way in. */
    int rc = udp_send_guard(d->w, d->us->l, &d->peer->sa, d->peer_len, false);
    if (rc < 0) {
        udp_send_refused(d->w, d->us->l, &d->peer->sa, rc);
        return rc;
    }
    if (d->w->udp_sink) /* the test kit's network (udp.h) */
        return udp_sink_send(d->w, d->us->l, NULL, &d->peer->sa, d->peer_len, data, len);
    /* The batch was made with the set: no -ENOMEM here. */
    return udp_batch_add(d->w, d->us->fd, d->us->l, &d->peer->sa, d->peer_len, data, len);
}

const struct sockaddr *wharf_dgram_peer(const wharf_dgram *d, socklen_t *len)
{
    if (len)
        *len = d->peer_len;
    return &d->peer->sa;
}

void *wharf_dgram_listener_data(const wharf_dgram *d) { return d->us->l->data; }
unsigned wharf_dgram_worker_index(const wharf_dgram *d) { return d->w->id; }
/* The 0.1 name (deprecated in wharf.h), kept exported for modules built
 * against it. */
unsigned wharf_dgram_worker_id(const wharf_dgram *d) { return wharf_dgram_worker_index(d); }

struct wharf_worker *udp_dgram_worker(const wharf_dgram *d) { return d->w; }
struct listener *udp_dgram_listener(const wharf_dgram *d) { return d->us->l; }
int udp_dgram_fd(const wharf_dgram *d) { return d->us->fd; }

void wharf_dgram_count_dropped(wharf_dgram *d)
{
    listener_count_drop(d->us->l, d->w->id, LISTENER_DROP_HANDLER);
}
