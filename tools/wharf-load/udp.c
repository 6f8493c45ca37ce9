/* udp.c - the UDP engine of wharf-load: flows of datagrams, one connected socket each.
 *
 * A flow sends numbered datagrams (closed loop: up to --pipeline unanswered; open loop: on
 * the thread's schedule, see load_sched) and accounts for every answer:
 *   - a bitmap over the last 65536 sequence numbers tells first answers from duplicates;
 *   - an answer older than the newest one seen so far is a reordering;
 *   - a ring of send times frees the pipeline slot of a datagram unanswered after
 *     --udp-timeout (presumed lost for pacing; if it still arrives it counts as received);
 *   - at the end, the drain waits until every datagram is answered or --drain has passed;
 *     then lost = sent - distinct answers.
 * Datagrams are read with recvmmsg and written with sendmmsg in batches. With --source, flow
 * k binds to source address k modulo their number. With --udp-offload a batch of equal-size
 * datagrams goes as one UDP_SEGMENT (GSO) send, and the sockets have UDP_GRO: a coalesced
 * receive is split by its segment size. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "engine.h"
#include "phase.h"

#include <errno.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
#define SEEN_BITS 65536u /* duplicate detection window per flow */

struct uflow {
    struct loop_watcher w; /* registered while the socket is open */
    struct uctx *x;        /* the thread's engine */
    int fd;
    uint32_t flow;
    unsigned local;
    uint64_t tx_seq, tail, outstanding, unique;
    uint64_t max_rx;
    bool any_rx;
    uint64_t *sent_at; /* ring: send time of seq (ring size), 0 = answered or expired */
    uint64_t *seen;    /* bitmap of SEEN_BITS: seq answered */
    uint64_t released, issued;
    uint64_t deferred_upto; /* open loop: released datagrams counted as deferred */
};

struct uctx {
    struct load_thread *th;
    const struct load_config *cfg;
    const struct load_clock *clk;
    struct loop *lp; /* the thread's event loop */
    struct uflow *f;
    unsigned n;
    uint32_t ring;
    struct load_phase ph;
    uint64_t outstanding;
    uint64_t sent, answered; /* thread totals: datagrams sent, distinct answers */
    /* batch buffers */
    uint8_t *txbuf, *rxbuf;
    uint32_t rxslot;
    struct mmsghdr tmsg[BATCH], rmsg[BATCH];
    struct iovec tiov[BATCH], riov[BATCH];
    uint64_t tintended[BATCH];
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } rctl[BATCH]; /* --udp-offload: UDP_GRO's segment size */
};

static inline bool seen_get(const uint64_t *b, uint64_t i)
{
    i &= SEEN_BITS - 1;
    return (b[i >> 6] >> (i & 63)) & 1;
}

static inline void seen_put(uint64_t *b, uint64_t i, bool v)
{
    i &= SEEN_BITS - 1;
    if (v)
        b[i >> 6] |= 1ull << (i & 63);
    else
        b[i >> 6] &= ~(1ull << (i & 63));
}

static void count_errno(struct uctx *x, int err)
{
    enum stat_id id = stat_errno(err);

    stat_add(&x->th->st, id, 1);
    load_note_error(x->th, stat_names[id], err);
}

/* Frees the slots of datagrams that were answered or have waited past --udp-timeout. */
static void expire(struct uctx *x, struct uflow *f, uint64_t now)
{
    uint64_t t;

    while (f->tail < f->tx_seq) {
        t = f->sent_at[f->tail & (x->ring - 1)];
        if (t != 0) {
            if (now - t < x->cfg->udp_timeout_ns)
                break;
            f->sent_at[f->tail & (x->ring - 1)] = 0;
            f->outstanding--;
            x->outstanding--;
        }
        f->tail++;
    }
}

/* --udp-offload: sends the n datagrams of iov in one UDP_SEGMENT send when they are all
 * the same size (and n > 1), else with sendmmsg. Returns how many went, or -1. */
static int send_segmented(int fd, struct iovec *iov, unsigned n)
{
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl;
    struct mmsghdr m[BATCH];
    unsigned k;

    for (k = 1; k < n && iov[k].iov_len == iov[0].iov_len; k++)
        ;
    if (n > 1 && k == n && iov[0].iov_len > 0 && n * iov[0].iov_len <= 65507) {
        struct msghdr h = {.msg_iov = iov, .msg_iovlen = n, .msg_control = ctl.buf,
                           .msg_controllen = sizeof(ctl.buf)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&h);
        uint16_t seg = (uint16_t)iov[0].iov_len;

        memset(&ctl, 0, sizeof(ctl));
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(seg));
        memcpy(CMSG_DATA(c), &seg, sizeof(seg));
        return sendmsg(fd, &h, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -1 : (int)n;
    }
    memset(m, 0, sizeof(m));
    for (k = 0; k < n; k++) {
        m[k].msg_hdr.msg_iov = &iov[k];
        m[k].msg_hdr.msg_iovlen = 1;
    }
    return sendmmsg(fd, m, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The segment size of a coalesced receive (UDP_GRO), or 0. */
static size_t gro_size(struct msghdr *h)
{
    struct cmsghdr *c;

    for (c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int size;

            memcpy(&size, CMSG_DATA(c), sizeof(size));
            return size > 0 ? (size_t)size : 0;
        }
    return 0;
}

/* Sends as many datagrams as the pipeline, schedule and quota allow (closed loop: nothing
 * more from send_end on; open loop: what the schedule released, until sending ends). */
static void flow_fill(struct uctx *x, struct uflow *f, uint64_t now)
{
    const struct load_config *cfg = x->cfg;
    struct load_stats *st = &x->th->st;
    uint64_t want, room;
    unsigned k, nb;
    int r;

    if (f->fd < 0 || x->ph.sending_over || (!x->ph.open && now >= x->clk->send_end))
        return;
    expire(x, f, now);
    for (;;) {
        want = cfg->pipeline > f->outstanding ? cfg->pipeline - f->outstanding : 0;
        room = x->ring - (f->tx_seq - f->tail);
        want = want < room ? want : room;
        if (x->ph.open)
            want = want < f->released - f->issued ? want : f->released - f->issued;
        if (want == 0)
            return;
        nb = want > BATCH ? BATCH : (unsigned)want;
        for (k = 0; k < nb; k++) {
            uint64_t seq = f->tx_seq + k;
            uint32_t len = msg_length(&cfg->msg, f->flow, seq);
            uint64_t intended;

            if (!x->ph.open && !phase_take(&x->ph, x->clk, now))
                break; /* the --count quota is spent */
            intended = x->ph.open ? sched_conn_at(&x->ph.sched, f->local, f->issued + k) : now;
            msg_build(&cfg->msg, x->tiov[k].iov_base, len, f->flow, seq, intended, now);
            x->tiov[k].iov_len = len;
            x->tintended[k] = intended;
        }
        if (k == 0)
            return;
        nb = k;
        r = cfg->udp_offload ? send_segmented(f->fd, x->tiov, nb)
                             : sendmmsg(f->fd, x->tmsg, nb, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0) {
            r = 0;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS && errno != EINTR)
                count_errno(x, errno);
        } else if (r > 0) {
            stat_add(&x->th->st, ST_SENDS, 1);
        }
        if (!x->ph.open && x->ph.counted)
            for (k = (unsigned)r; k < nb; k++)
                if (load_measured(x->clk, x->tintended[k]))
                    x->ph.quota++; /* not sent: give the quota back */
        for (k = 0; k < (unsigned)r; k++) {
            uint64_t seq = f->tx_seq++;

            f->sent_at[seq & (x->ring - 1)] = now ? now : 1;
            seen_put(f->seen, seq, false);
            f->outstanding++;
            x->outstanding++;
            x->sent++;
            stat_add(st, ST_SENT, 1);
            stat_add(st, ST_BYTES_SENT, x->tiov[k].iov_len);
        }
        if (x->ph.open) {
            f->issued += (unsigned)r;
            x->ph.backlog -= (unsigned)r;
        }
        if ((unsigned)r < nb || x->ph.release_over)
            return; /* socket full or quota done: retried on the next scan */
    }
}

static void handle_datagram(struct uctx *x, struct uflow *f, const uint8_t *p, size_t len,
                            int flags, uint64_t now)
{
    struct load_thread *th = x->th;
    const struct load_config *cfg = x->cfg;
    struct msg_hdr h;
    enum msg_verdict v;
    char what[96];

    stat_add(&th->st, ST_BYTES_RECEIVED, len);
    if (len < MSG_HDR_LEN) {
        stat_add(&th->st, ST_SHORT, 1);
        load_note_error(th, "short datagram (shorter than the header)", 0);
        return;
    }
    if (msg_parse_header(&cfg->msg, p, &h) != 0) {
        stat_add(&th->st, ST_MISMATCH, 1);
        load_note_error(th, "mismatch: datagram with a bad magic or length", 0);
        return;
    }
    if (len < h.length) {
        stat_add(&th->st, ST_SHORT, 1);
        load_note_error(th, "short datagram (truncated echo)", 0);
        return;
    }
    if (len > h.length || (flags & MSG_TRUNC)) {
        stat_add(&th->st, ST_MISMATCH, 1);
        load_note_error(th, "mismatch: datagram longer than the message it echoes", 0);
        return;
    }
    v = msg_verify(&cfg->msg, p, &h, f->flow);
    if (v != MSG_OK) {
        stat_add(&th->st, ST_MISMATCH, 1);
        snprintf(what, sizeof(what), "mismatch on flow %u: %s", f->flow, msg_verdict_name(v));
        load_note_error(th, what, 0);
        return;
    }
    if (h.seq >= f->tx_seq) {
        stat_add(&th->st, ST_DUPLICATE, 1);
        load_note_error(th, "echo of a datagram never sent", 0);
        return;
    }
    if (h.seq + SEEN_BITS < f->tx_seq) {
        stat_add(&th->st, ST_LATE, 1);
        return;
    }
    if (seen_get(f->seen, h.seq)) {
        stat_add(&th->st, ST_DUPLICATE, 1);
        load_note_error(th, "duplicate datagram", 0);
        return;
    }
    seen_put(f->seen, h.seq, true);
    f->unique++;
    x->answered++;
    if (f->any_rx && h.seq < f->max_rx) {
        stat_add(&th->st, ST_REORDER, 1);
        load_note_error(th, "datagram reordered within a flow", 0);
    }
    if (!f->any_rx || h.seq > f->max_rx)
        f->max_rx = h.seq;
    f->any_rx = true;
    if (h.seq >= f->tail && f->sent_at[h.seq & (x->ring - 1)] != 0) {
        f->sent_at[h.seq & (x->ring - 1)] = 0;
        f->outstanding--;
        x->outstanding--;
    }
    stat_add(&th->st, ST_RECEIVED, 1);
    series_record(th->series, now, now > h.intended_ns ? now - h.intended_ns : 0);
    if (load_measured(x->clk, h.intended_ns)) {
        stat_add(&th->st, ST_MEASURED, 1);
        hist_record(th->corrected, now > h.intended_ns ? now - h.intended_ns : 0);
        hist_record(th->raw, now > h.sent_ns ? now - h.sent_ns : 0);
        th->last_rx_ns = now;
    }
}

static void flow_read(struct uctx *x, struct uflow *f)
{
    uint64_t now;
    int r, k;

    for (;;) {
        for (k = 0; k < BATCH; k++) {
            x->riov[k].iov_len = x->rxslot;
            x->rmsg[k].msg_hdr.msg_flags = 0;
            if (x->cfg->udp_offload) {
                x->rmsg[k].msg_hdr.msg_control = x->rctl[k].buf;
                x->rmsg[k].msg_hdr.msg_controllen = sizeof(x->rctl[k].buf);
            }
        }
        r = recvmmsg(f->fd, x->rmsg, BATCH, MSG_DONTWAIT, NULL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                count_errno(x, errno);
            break;
        }
        now = load_now();
        for (k = 0; k < r; k++) {
            const uint8_t *p = x->riov[k].iov_base;
            size_t len = x->rmsg[k].msg_len, off;
            size_t seg = x->cfg->udp_offload ? gro_size(&x->rmsg[k].msg_hdr) : 0;

            if (seg == 0 || seg >= len) {
                handle_datagram(x, f, p, len, x->rmsg[k].msg_hdr.msg_flags, now);
                continue;
            }
            for (off = 0; off < len; off += seg)
                handle_datagram(x, f, p + off, len - off < seg ? len - off : seg,
                                x->rmsg[k].msg_hdr.msg_flags, now);
        }
        if (r < BATCH)
            break;
    }
    flow_fill(x, f, load_now());
}

/* Open loop: releases every datagram due by `now` to its flow and sends what can go. */
static void release_due(void *ctx, uint64_t now)
{
    struct uctx *x = ctx;
    struct load_phase *ph = &x->ph;
    uint64_t due;
    unsigned i, n;

    while (phase_due(ph, x->clk, now, &due)) {
        struct uflow *f = &x->f[phase_slot(ph)];

        if (!phase_take(ph, x->clk, due))
            break;
        f->released++;
        phase_release(ph, f->local);
    }
    n = phase_pending(ph);
    for (i = 0; i < n; i++) {
        struct uflow *f = &x->f[ph->pending[i]];

        flow_fill(x, f, now);
        /* what could not go in this tick (pipeline full) is deferred, each counted once */
        if (f->issued < f->released) {
            uint64_t from = f->issued > f->deferred_upto ? f->issued : f->deferred_upto;

            if (f->released > from)
                stat_add(&x->th->st, ST_DEFERRED, f->released - from);
            f->deferred_upto = f->released;
        }
    }
}

/* The loop's callback of a flow's socket (the watcher is the first member). */
static void flow_on_io(struct loop_watcher *w, uint32_t events)
{
    struct uflow *f = (struct uflow *)w;

    (void)events;
    flow_read(f->x, f);
}

static int flow_open(struct uctx *x, struct uflow *f)
{
    const struct load_config *cfg = x->cfg;
    int fd, rc;

    fd = socket(cfg->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        count_errno(x, errno);
        return -1;
    }
    if (cfg->nsources) {
        unsigned i = f->flow % cfg->nsources;

        if (load_bind_source(fd, cfg, i) != 0) {
            int err = errno;
            char what[96];

            snprintf(what, sizeof(what), "bind to --source %s", cfg->sources[i].text);
            load_note_error(x->th, what, err);
            count_errno(x, err);
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) != 0) {
        count_errno(x, errno);
        close(fd);
        return -1;
    }
    if (cfg->udp_offload) {
        int on = 1;

        if (setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on)) != 0)
            load_note_error(x->th, "--udp-offload: setsockopt UDP_GRO", errno);
    }
    rc = loop_watch(x->lp, &f->w, fd, LOOP_IN, flow_on_io);
    if (rc < 0) {
        count_errno(x, -rc);
        close(fd);
        return -1;
    }
    f->fd = fd;
    stat_add(&x->th->st, ST_CONNECTS, 1);
    return 0;
}

/* Opens the flows not open yet, frees expired pipeline slots and sends what they allow. */
static bool scan(void *ctx, uint64_t now)
{
    struct uctx *x = ctx;
    unsigned i;

    for (i = 0; i < x->n; i++) {
        struct uflow *f = &x->f[i];

        if (f->fd < 0 && !x->ph.sending_over && !x->ph.release_over)
            flow_open(x, f);
        expire(x, f, now);
        flow_fill(x, f, now);
    }
    return true; /* datagrams in flight may time out: always */
}

/* The drain is over when every datagram has been answered: one presumed lost for pacing
 * may still arrive and count, so the drain waits for it until the hard end. */
static bool all_answered(const void *ctx)
{
    const struct uctx *x = ctx;

    return x->answered == x->sent;
}

static const struct phase_ops udp_ops = {release_due, scan, all_answered};

static int ctx_init(struct uctx *x, struct load_thread *th)
{
    const struct load_config *cfg = th->cfg;
    unsigned i;

    memset(x, 0, sizeof(*x));
    x->th = th;
    x->cfg = cfg;
    x->clk = th->clk;
    x->n = th->nconns;
    for (x->ring = 64; x->ring < 2 * cfg->pipeline; x->ring *= 2)
        ;
    /* a coalesced receive (--udp-offload) holds up to 64 KiB */
    x->rxslot = cfg->udp_offload ? 65536 : cfg->msg.size_max + 64;
    x->lp = &th->loop;
    x->f = calloc(x->n, sizeof(*x->f));
    if (!x->f)
        return -1;
    for (i = 0; i < x->n; i++) {
        x->f[i].fd = -1;
        x->f[i].w.fd = -1;
        x->f[i].x = x;
    }
    x->txbuf = malloc((size_t)BATCH * cfg->msg.size_max);
    x->rxbuf = malloc((size_t)BATCH * x->rxslot);
    if (!x->txbuf || !x->rxbuf)
        return -1;
    for (i = 0; i < BATCH; i++) {
        x->tiov[i].iov_base = x->txbuf + (size_t)i * cfg->msg.size_max;
        x->tmsg[i].msg_hdr.msg_iov = &x->tiov[i];
        x->tmsg[i].msg_hdr.msg_iovlen = 1;
        x->riov[i].iov_base = x->rxbuf + (size_t)i * x->rxslot;
        x->rmsg[i].msg_hdr.msg_iov = &x->riov[i];
        x->rmsg[i].msg_hdr.msg_iovlen = 1;
    }
    for (i = 0; i < x->n; i++) {
        struct uflow *f = &x->f[i];

        f->local = i;
        f->flow = th->first_conn + i;
        f->sent_at = calloc(x->ring, sizeof(uint64_t));
        f->seen = calloc(SEEN_BITS / 64, sizeof(uint64_t));
        if (!f->sent_at || !f->seen)
            return -1;
    }
    return 0;
}

static void ctx_free(struct uctx *x)
{
    unsigned i;

    for (i = 0; x->f && i < x->n; i++) {
        if (x->f[i].fd >= 0) {
            loop_unwatch(x->lp, &x->f[i].w);
            close(x->f[i].fd);
        }
        free(x->f[i].sent_at);
        free(x->f[i].seen);
    }
    free(x->f);
    free(x->txbuf);
    free(x->rxbuf);
}

void *udp_thread(void *arg)
{
    struct load_thread *th = arg;
    struct uctx x;
    uint64_t lost = 0;
    unsigned i;
    int rc;

    rc = ctx_init(&x, th);
    if (phase_begin(&x.ph, th, rc)) {
        phase_run(&x.ph, th, &udp_ops, &x);
        for (i = 0; i < x.n; i++)
            lost += x.f[i].tx_seq - x.f[i].unique;
        stat_add(&th->st, ST_LOST, lost);
    }
    phase_free(&x.ph);
    ctx_free(&x);
    load_thread_finish(th);
    return NULL;
}
