/*
 * udp_batch.c - the worker's send batch (see udp_batch.h): what handler code
 * sends on a worker is copied here and leaves with one sendmmsg per socket.
 *
 * When it is flushed.  udp.c flushes after each receive batch (a reply
 * leaves as soon as the datagrams read with its request are handled, as
 * before batching); the first datagram queued in a loop turn queues the
 * batch on the loop's closing phase, so what timers, posts, jobs' done and
 * outbound sockets' callbacks sent leaves at the end of that turn.  The
 * closing phase is a FIFO, and a handle can send only while it is open, so
 * the flush always comes before the end of every handle closed after it
 * sent (udp_handle_end flushes too, for a worker that leaves its loop):
 * a handle closed in the turn it sent still gets its datagrams out, and the
 * sockets and generation its datagrams need (the handle pins them) are
 * still there.  A datagram queued during the closing phase (a connection's
 * on_close) queues the batch again, and it runs in the same phase.
 *
 * Order: datagrams to one socket leave in the order they were queued;
 * different sockets go in turn (sendmmsg is per socket).  GSO ("udp_gso"):
 * among a socket's datagrams, a run of equal-size ones to one peer (the last
 * may be shorter; at most 64 segments and 65,507 bytes) becomes one message
 * with a UDP_SEGMENT control message, taken out of the order only ahead of
 * other peers' datagrams, so each peer still sees its own in order.  When
 * the kernel refuses a segmented send (EIO: a device without checksum
 * offload; EINVAL or EMSGSIZE: a segment over the path MTU, a socket
 * without UDP checksums) its datagrams are sent one by one, GSO is turned
 * off for that listener (until a reload) and it is logged once.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "listener.h"
#include "log.h"
#include "udp_batch.h"
#include "worker.h"

#define UDP_GSO_SEGMENTS 64    /* the kernel's UDP_MAX_SEGMENTS (older kernels) */
#define UDP_GSO_BYTES 65507    /* the largest IPv4 UDP payload: one skb */

struct udp_batch_item {
    int fd;
    struct listener *l;
    socklen_t tolen;          /* 0: a connected socket */
    union sockaddr_any to;
    size_t off, len;          /* in the arena */
};

struct udp_batch {
    struct wharf_worker *w;
    struct loop_closing flush; /* on the closing phase while queued */
    bool queued;
    unsigned n;
    size_t used;
    char *arena;
    struct udp_batch_item item[UDP_BATCH_MAX];
    bool sent[UDP_BATCH_MAX];
    /* a flush's messages: message m carries the datagrams order[first[m]
     * .. first[m] + count[m]) in iov[] at the same places */
    struct mmsghdr msg[UDP_BATCH_MAX];
    struct iovec iov[UDP_BATCH_MAX];
    unsigned order[UDP_BATCH_MAX], first[UDP_BATCH_MAX], count[UDP_BATCH_MAX];
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctrl[UDP_BATCH_MAX];
};

static void udp_batch_closing(struct loop_closing *h)
{
    struct udp_batch *b = (struct udp_batch *)((char *)h - offsetof(struct udp_batch, flush));
    b->queued = false;
    udp_batch_flush(b->w);
}

int udp_batch_reserve(struct wharf_worker *w)
{
    if (w->udp_batch)
        return 0;
    struct udp_batch *b = calloc(1, sizeof *b);
    if (!b || !(b->arena = malloc(UDP_BATCH_ARENA))) {
        free(b);
        return -ENOMEM;
    }
    b->w = w;
    w->udp_batch = b;
    return 0;
}

int udp_batch_add(struct wharf_worker *w, int fd, struct listener *l, const struct sockaddr *to,
                  socklen_t tolen, const void *data, size_t len)
{
    if (udp_batch_reserve(w) < 0)
        return -ENOMEM;
    struct udp_batch *b = w->udp_batch;
    if (b->n == UDP_BATCH_MAX || b->used + len > UDP_BATCH_ARENA)
        udp_batch_flush(w);
    struct udp_batch_item *it = &b->item[b->n++];
    it->fd = fd;
    it->l = l;
    it->tolen = to ? tolen : 0;
    memset(&it->to, 0, sizeof it->to);
    if (to)
        memcpy(&it->to, to, tolen);
    it->off = b->used;
    it->len = len;
    if (len)
        memcpy(b->arena + b->used, data, len);
    b->used += len;
    if (!b->queued) {
        b->queued = true;
        loop_close(&w->loop, &b->flush, udp_batch_closing);
    }
    return 0;
}

bool udp_batch_holds(const struct wharf_worker *w, int fd)
{
    const struct udp_batch *b = w->udp_batch;
    for (unsigned i = 0; b && i < b->n; i++)
        if (b->item[i].fd == fd)
            return true;
    return false;
}

static bool udp_batch_same_peer(const struct udp_batch_item *a, const struct udp_batch_item *b)
{
    return a->tolen == b->tolen && memcmp(&a->to, &b->to, a->tolen) == 0;
}

/* Whether l's datagrams may be segmented. */
static bool udp_batch_gso(const struct listener *l)
{
    return l->cfg->udp_gso && !atomic_load_explicit(&l->gso_refused, memory_order_relaxed);
}

/* Opens message m at datagram i (the next in the order, at slot k). */
static void udp_batch_open(struct udp_batch *b, unsigned m, unsigned k, unsigned i)
{
    struct udp_batch_item *it = &b->item[i];
    struct msghdr *h = &b->msg[m].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = it->tolen ? &it->to : NULL;
    h->msg_namelen = it->tolen;
    h->msg_iov = &b->iov[k];
    h->msg_iovlen = 0;
    b->first[m] = k;
    b->count[m] = 0;
}

/* Appends datagram i to message m at slot k. */
static void udp_batch_append(struct udp_batch *b, unsigned m, unsigned k, unsigned i)
{
    b->order[k] = i;
    b->iov[k].iov_base = b->arena + b->item[i].off;
    b->iov[k].iov_len = b->item[i].len;
    b->msg[m].msg_hdr.msg_iovlen++;
    b->count[m]++;
    b->sent[i] = true;
}

/*
 * Builds the messages for socket fd from the datagrams not yet sent: one
 * message per datagram, or per GSO run (gso_ok and the listener's
 * "udp_gso").  Returns how many.
 */
static unsigned udp_batch_build(struct udp_batch *b, int fd, bool gso_ok)
{
    unsigned m = 0, k = 0;
    for (unsigned i = 0; i < b->n; i++) {
        struct udp_batch_item *it = &b->item[i];
        if (b->sent[i] || it->fd != fd)
            continue;
        udp_batch_open(b, m, k, i);
        udp_batch_append(b, m, k++, i);
        size_t seg = it->len, total = it->len;
        if (gso_ok && seg > 0 && udp_batch_gso(it->l)) {
            for (unsigned j = i + 1; j < b->n && b->count[m] < UDP_GSO_SEGMENTS; j++) {
                struct udp_batch_item *o = &b->item[j];
                if (b->sent[j] || o->fd != fd || !udp_batch_same_peer(it, o))
                    continue;
                /* The peer's next datagram: in the run, or the run ends. */
                if (o->len == 0 || o->len > seg || total + o->len > UDP_GSO_BYTES)
                    break;
                udp_batch_append(b, m, k++, j);
                total += o->len;
                if (o->len < seg)
                    break;
            }
        }
        if (b->count[m] > 1) {
            struct msghdr *h = &b->msg[m].msg_hdr;
            h->msg_control = b->ctrl[m].buf;
            h->msg_controllen = sizeof b->ctrl[m].buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t size = (uint16_t)seg;
            memcpy(CMSG_DATA(c), &size, sizeof size);
        }
        m++;
    }
    return m;
}

/* Counts message m as sent. */
static void udp_batch_count_sent(struct udp_batch *b, unsigned m)
{
    for (unsigned k = b->first[m]; k < b->first[m] + b->count[m]; k++) {
        const struct udp_batch_item *it = &b->item[b->order[k]];
        struct listener_counters *st = listener_counters(it->l, b->w->id);
        wharf_counter_add(&st->datagrams_out, 1);
        wharf_counter_add(&st->bytes_out, it->len);
    }
}

/* Whether errno err, for a segmented message, is the kernel refusing GSO
 * (rather than the destination). */
static bool udp_batch_gso_refusal(int err)
{
    return err == EIO || err == EINVAL || err == EMSGSIZE;
}

/* The kernel refused message m (errno err): a segmented one is offered
 * again datagram by datagram, with GSO off for its listener; a single one
 * is dropped and counted. */
static void udp_batch_refused(struct udp_batch *b, unsigned m, int err)
{
    const struct udp_batch_item *it = &b->item[b->order[b->first[m]]];
    struct listener *l = it->l;
    if (b->count[m] > 1 && udp_batch_gso_refusal(err)) {
        bool was = atomic_exchange(&l->gso_refused, true);
        if (!was)
            log_write(WHARF_LOG_WARN, l->cfg->name, (int)b->w->id, 0,
                      "UDP GSO refused by the kernel (%s): sending datagrams one by one on "
                      "this listener until a reload", strerror(err));
        for (unsigned k = b->first[m]; k < b->first[m] + b->count[m]; k++)
            b->sent[b->order[k]] = false;
        return;
    }
    log_write(WHARF_LOG_DEBUG, l->cfg->name, (int)b->w->id, 0, "sendmmsg: %s", strerror(err));
    for (unsigned k = b->first[m]; k < b->first[m] + b->count[m]; k++)
        listener_count_drop(b->item[b->order[k]].l, b->w->id, LISTENER_DROP_SEND_FAILED);
}

/* Sends the datagrams of socket fd, in rounds while some come back for a
 * second try (GSO refused). */
static void udp_batch_send_fd(struct udp_batch *b, int fd)
{
    bool gso_ok = true;
    for (;;) {
        unsigned nm = udp_batch_build(b, fd, gso_ok);
        if (nm == 0)
            return;
        bool again = false;
        unsigned done = 0;
        while (done < nm) {
            int n = sendmmsg(fd, b->msg + done, nm - done, MSG_DONTWAIT | MSG_NOSIGNAL);
            int err = n < 0 ? errno : EAGAIN;
            if (n < 0 && err == EINTR)
                continue;
            struct listener *l = b->item[b->order[b->first[done]]].l;
            wharf_counter_add(&listener_counters(l, b->w->id)->datagram_send_calls, 1);
            if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)) {
                /* The socket's send buffer is full: so it is for the rest
                 * too, which are dropped with it (one system call, not one
                 * per datagram). */
                for (; done < nm; done++)
                    udp_batch_refused(b, done, err);
                break;
            }
            if (n <= 0) {
                /* The first message failed: skip it (dropped, or back for
                 * a datagram-by-datagram round), and go on with the rest. */
                if (b->count[done] > 1 && udp_batch_gso_refusal(err))
                    again = true;
                udp_batch_refused(b, done, err);
                done++;
                continue;
            }
            for (unsigned m = done; m < done + (unsigned)n; m++)
                udp_batch_count_sent(b, m);
            done += (unsigned)n;
        }
        if (!again)
            return;
        gso_ok = false;
    }
}

void udp_batch_flush(struct wharf_worker *w)
{
    struct udp_batch *b = w->udp_batch;
    if (!b || b->n == 0)
        return;
    memset(b->sent, 0, b->n * sizeof b->sent[0]);
    for (unsigned i = 0; i < b->n; i++)
        if (!b->sent[i])
            udp_batch_send_fd(b, b->item[i].fd);
    b->n = 0;
    b->used = 0;
}

void udp_batch_free(struct wharf_worker *w)
{
    struct udp_batch *b = w->udp_batch;
    if (!b)
        return;
    free(b->arena);
    free(b);
    w->udp_batch = NULL;
}
