/*
 * loop_uring.c - the io_uring backend of the event loop (loop_backend.h;
 * the contract is loop.h's "Backends"): readiness by poll requests on one
 * ring per loop.
 *
 * A registered watcher always has one poll in flight, or is queued on
 * lp->changes to get one before the wait: a one-shot IORING_OP_POLL_ADD for
 * a level-triggered watcher, re-armed after each report (a watcher left
 * with unread bytes completes again at once, in the same io_uring_enter
 * that submits the re-arm), a multishot one for LOOP_EDGE.  An interest
 * change cancels the poll in flight and arms one with the new mask (both in
 * the turn's one submission).  Every poll's user_data is a token, the
 * watcher's slot in this loop's table and the slot's generation, which goes
 * up at each arm and at unwatch: a completion whose token is not the slot's
 * current one (a cancelled poll, a removed watcher, a slot reused by a new
 * watcher on the same descriptor number) is dropped.
 *
 * io_uring polls always include POLLRDHUP (and POLLERR, POLLHUP): a
 * level-triggered watcher that did not ask for LOOP_RDHUP and whose peer
 * has shut its side would complete, unasked, on every arm.  Such a watcher
 * moves, for the rest of its registration, to an epoll set aside
 * (loop_epoll.c) whose descriptor the ring polls: epoll's exact semantics
 * for the few half-closed connections, polls for everything else.
 *
 * Receives (LOOP_RECV, loop_recv).  A level-triggered watcher that reads
 * through loop_recv has no poll for LOOP_IN: a multishot IORING_OP_RECV
 * reads its socket into the loop's ring of provided buffers (one
 * submission for every later read; the bytes arrive with the completion,
 * no recv system call).  The buffers a completion filled are held by the
 * watcher, in order, until loop_recv copies them out and gives them back
 * to the ring.  A watcher is "ready" while it holds bytes, or its recv
 * found the end of the stream or an error: every dispatch calls it with
 * LOOP_IN while it wants LOOP_IN (the level contract), and the wait does
 * not sleep then.  Bounds: a watcher holding URING_HELD_MAX buffers has
 * its recv cancelled until it reads (a client that sends faster than its
 * handler reads stops at the kernel's socket buffer, as without the
 * ring); when the ring runs dry (ENOBUFS) the recv ends and the watcher
 * goes back to a poll and recv() system calls until buffers are back:
 * backpressure, no byte lost.  While a recv is in flight loop_recv never
 * reads the socket itself (bytes could overtake those in the ring); a
 * recv cancelled (interest dropped, the watcher moved aside, its
 * registration ended) still hands its last bytes to the watcher until its
 * final completion.  The ring's buffers are made on the first recv.
 */
#include "loop_backend.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>

/* Submission and completion ring sizes.  A full submission ring is
 * submitted early (one more io_uring_enter); completions beyond the ring
 * wait in the kernel's overflow list (IORING_FEAT_NODROP). */
#define URING_SQ 1024
#define URING_CQ 4096

/* w->state */
#define URING_ARMED 0x1u   /* a poll of w's is in flight with the slot's token */
#define URING_ASIDE 0x2u   /* w is in the epoll set aside */
#define URING_RECV 0x4u    /* a recv of w's is in flight, until its final completion */
#define URING_RCANCEL 0x8u /* ... and its cancellation was asked for */
#define URING_EOF 0x10u    /* w's recv found the end of the stream */
#define URING_NOBUF 0x20u  /* the ring ran dry under w's recv: polls until buffers are back */

/* The provided-buffer ring (one per loop, made on the first recv). */
#define URING_BGID 1
#define URING_BUFS 256 /* a power of two */
#define URING_BUF_SIZE 16384
/* Buffers a watcher may hold unread before its recv is cancelled. */
#define URING_HELD_MAX 4

#define TOKEN_IGNORE UINT64_MAX     /* a cancellation: its completion says nothing */
#define TOKEN_ASIDE (UINT64_MAX - 1) /* the poll on the epoll set aside */
#define TOKEN_RECV (1u << 31) /* in a token's low word: w's recv, not its poll */
#define SLOT_NONE UINT32_MAX
#define SLOT_MAX (1u << 30)

struct uring_slot {
    struct loop_watcher *w; /* NULL: free */
    uint32_t gen;           /* of the poll in flight, if any */
    uint32_t next_free;
    uint32_t rgen;          /* of the watcher's recvs: up when the slot changes hands */
    uint32_t pbits;         /* the loop bits of the poll in flight */
    int32_t head, tail;     /* buffers received and not yet read (ids; -1: none) */
    uint32_t nheld;
    int rerr;               /* the recv's error (-errno), after the held bytes */
    uint32_t ready_prev, ready_next; /* on the ready list (on_ready) */
    uint32_t ready_turn;    /* the dispatch that last called it from the list */
    bool on_ready;
};

/* What a provided buffer holds while a watcher holds it. */
struct uring_buf {
    uint32_t len, off;
    int32_t next;
};

struct uring_cqe {
    uint64_t token;
    int32_t res;
    uint32_t flags;
};

struct loop_uring {
    struct io_uring ring;
    struct uring_slot *slots;
    uint32_t nslots, cap, free_head;
    struct loop_epoll_set *aside; /* made on first need */
    unsigned naside;              /* watchers in it */
    bool aside_armed;             /* a poll on its descriptor is in flight */
    unsigned inflight;            /* requests submitted or queued, not yet completed */
    pthread_t runner;             /* the thread that ran the last turn */
    bool ran;
    bool ring_ok;                 /* set up (by the loop's thread, first turn) */
    int ncqe;                     /* completions reaped by the last wait */
    struct uring_cqe cqes[LOOP_EVENTS];
    /* The provided buffers (URING_BUFS of URING_BUF_SIZE), made on the
     * first recv; br_failed: they could not be (every watcher polls). */
    struct io_uring_buf_ring *br;
    char *bufs;
    struct uring_buf *binfo;
    bool br_failed;
    unsigned nheld;               /* buffers held by watchers */
    uint32_t ready_head, ready_tail; /* watchers with bytes, EOF or an error */
    uint32_t turn;
};

/* The loop's interest bits as a poll mask, and a poll result as the loop's
 * bits. */
static unsigned uring_poll_mask(uint32_t events)
{
    return ((events & LOOP_IN) ? (unsigned)EPOLLIN : 0) |
           ((events & LOOP_OUT) ? (unsigned)EPOLLOUT : 0) |
           ((events & LOOP_RDHUP) ? (unsigned)EPOLLRDHUP : 0);
}

static uint32_t uring_poll_bits(uint32_t res)
{
    return ((res & EPOLLIN) ? LOOP_IN : 0) | ((res & EPOLLOUT) ? LOOP_OUT : 0) |
           ((res & EPOLLHUP) ? LOOP_HUP : 0) | ((res & (EPOLLERR | POLLNVAL)) ? LOOP_ERR : 0) |
           ((res & EPOLLRDHUP) ? LOOP_RDHUP : 0);
}

static uint64_t uring_token(const struct loop_uring *u, uint32_t slot)
{
    return (uint64_t)u->slots[slot].gen << 32 | slot;
}

static uint64_t uring_rtoken(const struct loop_uring *u, uint32_t slot)
{
    return (uint64_t)u->slots[slot].rgen << 32 | TOKEN_RECV | slot;
}

/* The thread that sets a ring up is told (task work, TWA_SIGNAL) when the
 * ring goes: a blocking call with a timeout it is in then fails with
 * EINTR.  So rings are set up by the threads that run them (uring_setup,
 * on the first turn), and the probe runs on a thread of its own. */
struct uring_probe {
    int rc;
    unsigned features;
};

static void *uring_probe_thread(void *arg)
{
    struct uring_probe *p = arg;
    struct io_uring ring;
    p->rc = io_uring_queue_init(4, &ring, 0);
    if (p->rc == 0) {
        p->features = ring.features;
        io_uring_queue_exit(&ring);
    }
    return NULL;
}

int loop_uring_probe(char *why, size_t whylen)
{
    if (getenv("WHARF_IO_FORCE_FAIL")) {
        snprintf(why, whylen, "io_uring_queue_init: %s (WHARF_IO_FORCE_FAIL is set)",
                 strerror(ENOSYS));
        return -ENOSYS;
    }
    struct uring_probe p = {0};
    pthread_t t;
    int rc = pthread_create(&t, NULL, uring_probe_thread, &p);
    if (rc) {
        snprintf(why, whylen, "cannot probe io_uring: pthread_create: %s", strerror(rc));
        return -rc;
    }
    pthread_join(t, NULL);
    if (p.rc < 0) {
        snprintf(why, whylen, "io_uring_queue_init: %s%s", strerror(-p.rc),
                 p.rc == -EPERM ? " (kernel.io_uring_disabled, or a seccomp filter)" : "");
        return p.rc;
    }
    /* Waits with a timeout in one call (5.11) and multishot polls (5.13,
     * the release of resource tags). */
    unsigned need = IORING_FEAT_EXT_ARG | IORING_FEAT_RSRC_TAGS;
    if ((p.features & need) != need) {
        snprintf(why, whylen, "the kernel's io_uring is older than Linux 5.13");
        return -ENOSYS;
    }
    return 0;
}

/* A free submission entry, submitting what is queued when the ring is full;
 * NULL only when even that fails. */
/* Whether this thread runs the loop.  Only that thread submits: a request's
 * completion work is queued to the thread that submitted it, and on any
 * other thread it would interrupt a blocking call with a timeout (EINTR). */
static bool uring_on_runner(const struct loop_uring *u)
{
    return !u->ran || pthread_equal(u->runner, pthread_self());
}

static struct io_uring_sqe *uring_sqe(struct loop_uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe && uring_on_runner(u)) {
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    u->inflight += sqe != NULL;
    return sqe;
}

/* A completion read from the ring: one request fewer in flight unless it
 * is a multishot one that goes on. */
static void uring_completed(struct loop_uring *u, uint32_t flags)
{
    if (!(flags & IORING_CQE_F_MORE) && u->inflight > 0)
        u->inflight--;
}

/* Cancels w's poll in flight; its completion, if any comes, is stale. */
static void uring_cancel(struct loop_uring *u, struct loop_watcher *w)
{
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (sqe) {
        io_uring_prep_poll_remove(sqe, uring_token(u, w->slot));
        io_uring_sqe_set_data64(sqe, TOKEN_IGNORE);
    }
    u->slots[w->slot].gen++;
    w->state &= ~URING_ARMED;
}

/* Arms a poll for the loop bits `bits` of w's interest.  Returns 0 or
 * -errno. */
static int uring_arm(struct loop_uring *u, struct loop_watcher *w, uint32_t bits)
{
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (!sqe)
        return -EBUSY;
    u->slots[w->slot].gen++;
    u->slots[w->slot].pbits = bits;
    unsigned mask = uring_poll_mask(bits);
    if (bits & LOOP_EDGE)
        io_uring_prep_poll_multishot(sqe, w->fd, mask);
    else
        io_uring_prep_poll_add(sqe, w->fd, mask);
    io_uring_sqe_set_data64(sqe, uring_token(u, w->slot));
    w->state |= URING_ARMED;
    return 0;
}

/* ---- receives into the provided buffers -------------------------------------- */

/* Makes the ring of provided buffers (on the loop's thread).  Returns
 * whether it is there. */
static bool uring_bufs(struct loop_uring *u)
{
    if (u->br)
        return true;
    if (u->br_failed || !u->ring_ok)
        return false;
    if (getenv("WHARF_URING_NO_BUFS")) { /* test hook: as a kernel before 5.19 */
        u->br_failed = true;
        return false;
    }
    void *br = mmap(NULL, URING_BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                    MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    /* Mapped, not allocated: pages are taken only as the kernel writes
     * them, and tools that track initialised memory (valgrind) see what
     * the kernel wrote as defined. */
    void *bufs = mmap(NULL, (size_t)URING_BUFS * URING_BUF_SIZE, PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    u->bufs = bufs == MAP_FAILED ? NULL : bufs;
    u->binfo = calloc(URING_BUFS, sizeof *u->binfo);
    if (br != MAP_FAILED && u->bufs && u->binfo) {
        io_uring_buf_ring_init(br);
        struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br,
                                       .ring_entries = URING_BUFS,
                                       .bgid = URING_BGID};
        if (io_uring_register_buf_ring(&u->ring, &reg, 0) == 0)
            u->br = br;
    }
    if (!u->br) { /* before 5.19, or out of memory: every watcher polls */
        if (br != MAP_FAILED)
            munmap(br, URING_BUFS * sizeof(struct io_uring_buf));
        if (u->bufs)
            munmap(u->bufs, (size_t)URING_BUFS * URING_BUF_SIZE);
        free(u->binfo);
        u->bufs = NULL;
        u->binfo = NULL;
        u->br_failed = true;
        return false;
    }
    for (unsigned i = 0; i < URING_BUFS; i++)
        io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * URING_BUF_SIZE, URING_BUF_SIZE,
                              (unsigned short)i, io_uring_buf_ring_mask(URING_BUFS), (int)i);
    io_uring_buf_ring_advance(u->br, URING_BUFS);
    return true;
}

/* Gives buffer `bid` back to the kernel. */
static void uring_buf_give(struct loop_uring *u, unsigned bid)
{
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * URING_BUF_SIZE, URING_BUF_SIZE,
                          (unsigned short)bid, io_uring_buf_ring_mask(URING_BUFS), 0);
    io_uring_buf_ring_advance(u->br, 1);
}

static void uring_ready_add(struct loop_uring *u, uint32_t i)
{
    struct uring_slot *s = &u->slots[i];
    if (s->on_ready)
        return;
    s->on_ready = true;
    s->ready_next = SLOT_NONE;
    s->ready_prev = u->ready_tail;
    if (u->ready_tail != SLOT_NONE)
        u->slots[u->ready_tail].ready_next = i;
    else
        u->ready_head = i;
    u->ready_tail = i;
}

static void uring_ready_del(struct loop_uring *u, uint32_t i)
{
    struct uring_slot *s = &u->slots[i];
    if (!s->on_ready)
        return;
    s->on_ready = false;
    if (s->ready_prev != SLOT_NONE)
        u->slots[s->ready_prev].ready_next = s->ready_next;
    else
        u->ready_head = s->ready_next;
    if (s->ready_next != SLOT_NONE)
        u->slots[s->ready_next].ready_prev = s->ready_prev;
    else
        u->ready_tail = s->ready_prev;
}

/* Whether w reads through a recv (else through polls and recv()). */
static bool uring_recv_mode(const struct loop_uring *u, const struct loop_watcher *w)
{
    return (w->events & LOOP_RECV) && !(w->events & LOOP_EDGE) &&
           !(w->state & (URING_ASIDE | URING_NOBUF)) && !u->br_failed;
}

/* Whether w should have a recv in flight. */
static bool uring_recv_wanted(const struct loop_uring *u, const struct loop_watcher *w)
{
    const struct uring_slot *s = &u->slots[w->slot];
    return uring_recv_mode(u, w) && (w->events & LOOP_IN) && !(w->state & URING_EOF) &&
           s->rerr == 0 && s->nheld < URING_HELD_MAX;
}

/* Arms w's multishot recv.  Returns 0 or -errno. */
static int uring_arm_recv(struct loop_uring *u, struct loop_watcher *w)
{
    if (!uring_bufs(u))
        return -ENOBUFS;
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_recv_multishot(sqe, w->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = URING_BGID;
    io_uring_sqe_set_data64(sqe, uring_rtoken(u, w->slot));
    w->state |= URING_RECV;
    return 0;
}

/* Asks for w's recv to end; its last completions still count. */
static void uring_cancel_recv(struct loop_uring *u, struct loop_watcher *w)
{
    if ((w->state & (URING_RECV | URING_RCANCEL)) != URING_RECV)
        return;
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, uring_rtoken(u, w->slot), 0);
    io_uring_sqe_set_data64(sqe, TOKEN_IGNORE);
    w->state |= URING_RCANCEL;
}

/* Gives back every buffer w holds. */
static void uring_drop_held(struct loop_uring *u, struct uring_slot *s)
{
    while (s->head >= 0) {
        int32_t bid = s->head;
        s->head = u->binfo[bid].next;
        uring_buf_give(u, (unsigned)bid);
        u->nheld--;
    }
    s->tail = -1;
    s->nheld = 0;
}

/* Takes a recv's completion (no callback): its bytes, end of stream or
 * error go to the watcher whose recv it was, if it still holds the slot;
 * a buffer nobody takes goes back to the ring. */
static void uring_take_recv(struct loop *lp, struct loop_uring *u, const struct uring_cqe *c)
{
    uint32_t i = (uint32_t)c->token & ~TOKEN_RECV;
    struct uring_slot *s = i < u->nslots ? &u->slots[i] : NULL;
    struct loop_watcher *w = s ? s->w : NULL;
    bool mine = w && s->rgen == (uint32_t)(c->token >> 32) && (w->state & URING_RECV);
    if (c->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = c->flags >> IORING_CQE_BUFFER_SHIFT;
        if (mine && c->res > 0 && bid < URING_BUFS) {
            u->binfo[bid] = (struct uring_buf){.len = (uint32_t)c->res, .next = -1};
            if (s->tail >= 0)
                u->binfo[s->tail].next = (int32_t)bid;
            else
                s->head = (int32_t)bid;
            s->tail = (int32_t)bid;
            s->nheld++;
            u->nheld++;
            uring_ready_add(u, i);
        } else if (bid < URING_BUFS && u->br) {
            uring_buf_give(u, bid);
        }
    }
    if (!mine)
        return;
    if (c->res == 0) {
        w->state |= URING_EOF;
        uring_ready_add(u, i);
    } else if (c->res == -ENOBUFS) {
        w->state |= URING_NOBUF;
        lp->recv_dry++;
    } else if (c->res == -EINVAL || c->res == -EOPNOTSUPP) {
        u->br_failed = true; /* no multishot recv in this kernel: polls */
    } else if (c->res < 0 && c->res != -ECANCELED) {
        s->rerr = c->res;
        uring_ready_add(u, i);
    }
    if (!(c->flags & IORING_CQE_F_MORE)) {
        w->state &= ~(URING_RECV | URING_RCANCEL);
        if (!w->change_pprev)
            loop_link(&lp->changes, w); /* what next: decided before the wait */
    } else if (s->nheld >= URING_HELD_MAX) {
        uring_cancel_recv(u, w); /* read ahead far enough */
    }
}

/* Whether a watcher on the ready list wants to be called (one that does
 * not is taken off the list by the next dispatch). */
static bool uring_any_ready(const struct loop_uring *u)
{
    for (uint32_t i = u->ready_head; i != SLOT_NONE; i = u->slots[i].ready_next)
        if (u->slots[i].w->events & LOOP_IN)
            return true;
    return false;
}

/* loop_recv: the bytes w holds, then its end of stream or error; recv()
 * itself only when no recv of w's is in flight. */
static ssize_t uring_recv(struct loop *lp, struct loop_watcher *w, void *p, size_t len)
{
    struct loop_uring *u = lp->be;
    if (w->slot >= u->nslots || u->slots[w->slot].w != w)
        return recv(w->fd, p, len, 0); /* not this loop's: no slot of its own */
    struct uring_slot *s = &u->slots[w->slot];
    if (s->nheld > 0) {
        size_t n = 0;
        while (s->head >= 0 && n < len) {
            int32_t bid = s->head;
            struct uring_buf *b = &u->binfo[bid];
            size_t k = b->len - b->off < len - n ? b->len - b->off : len - n;
            memcpy((char *)p + n, u->bufs + (size_t)bid * URING_BUF_SIZE + b->off, k);
            n += k;
            b->off += (uint32_t)k;
            if (b->off == b->len) {
                s->head = b->next;
                if (s->head < 0)
                    s->tail = -1;
                s->nheld--;
                u->nheld--;
                uring_buf_give(u, (unsigned)bid);
            }
        }
        if (s->nheld == 0 && !(w->state & URING_EOF) && s->rerr == 0)
            uring_ready_del(u, w->slot);
        if (!(w->state & URING_RECV) && uring_recv_wanted(u, w) && !w->change_pprev)
            loop_link(&lp->changes, w); /* its recv again, before the wait */
        return (ssize_t)n;
    }
    if (w->state & URING_EOF)
        return 0;
    if (s->rerr) {
        errno = -s->rerr;
        return -1;
    }
    if (w->state & URING_RECV) {
        errno = EAGAIN;
        return -1;
    }
    return recv(w->fd, p, len, 0);
}

static int uring_init(struct loop *lp)
{
    if (getenv("WHARF_IO_FORCE_FAIL"))
        return -ENOSYS; /* as loop_uring_probe */
    struct loop_uring *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    u->free_head = SLOT_NONE;
    u->ready_head = u->ready_tail = SLOT_NONE;
    lp->be = u;
    return 0;
}

/* Sets the ring up, on the loop's thread (see uring_probe).  Returns 0 or
 * -errno. */
static int uring_setup(struct loop_uring *u)
{
    if (u->ring_ok)
        return 0;
    /* The completions of requests woken by the network (polls, receives)
     * are done as task work, all at once, when this thread next waits in
     * io_uring_enter (DEFER_TASKRUN; only this thread submits), not at
     * the end of every other system call it makes (COOP_TASKRUN, before
     * 6.1), and never by interrupting it. */
    struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                                         IORING_SETUP_DEFER_TASKRUN,
                                .cq_entries = URING_CQ};
    int rc = getenv("WHARF_URING_COOP") ? -EINVAL : io_uring_queue_init_params(URING_SQ, &u->ring, &p);
    if (rc == -EINVAL) { /* before 6.1 */
        p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN |
                                              IORING_SETUP_TASKRUN_FLAG,
                                     .cq_entries = URING_CQ};
        rc = io_uring_queue_init_params(URING_SQ, &u->ring, &p);
    }
    if (rc == -EINVAL) { /* before 5.19 */
        p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE, .cq_entries = URING_CQ};
        rc = io_uring_queue_init_params(URING_SQ, &u->ring, &p);
    }
    if (rc < 0)
        return rc;
    u->ring_ok = true;
    u->runner = pthread_self();
    u->ran = true;
    return 0;
}

/* A poll holds its descriptor's file: a socket closed by its owner stays
 * open (bound, listening) until the poll is cancelled and completed.  A
 * running loop's next io_uring_enter does that; a thread leaving its loop
 * (loop_run_deferred) or destroying it does it here: everything in flight
 * cancelled, and up to a second's wait until it has completed.  Watchers
 * still registered are re-armed by a later turn, if any.  On another
 * thread the ring's close cancels them, shortly after. */
static void uring_quiesce(struct loop *lp, struct loop_uring *u)
{
    if (!u->ring_ok || !uring_on_runner(u) || u->inflight == 0)
        return;
    for (uint32_t i = 0; i < u->nslots; i++) {
        struct loop_watcher *w = u->slots[i].w;
        if (w && (w->state & URING_RECV))
            w->state |= URING_RCANCEL; /* by the cancellation below */
        if (w && (w->state & URING_ARMED)) {
            w->state &= ~URING_ARMED;
            u->slots[i].gen++;
            if (!w->change_pprev)
                loop_link(&lp->changes, w);
        }
    }
    u->aside_armed = false;
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (sqe) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(sqe, TOKEN_IGNORE);
    }
    io_uring_submit(&u->ring);
    for (int i = 0; i < 100 && u->inflight > 0; i++) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_nsec = 10 * 1000000};
        if (io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts) < 0)
            continue;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&u->ring, head, cqe) {
            struct uring_cqe c = {cqe->user_data, cqe->res, cqe->flags};
            if (c.token != TOKEN_IGNORE && c.token != TOKEN_ASIDE && ((uint32_t)c.token & TOKEN_RECV))
                uring_take_recv(lp, u, &c); /* bytes already read are kept */
            uring_completed(u, cqe->flags);
            seen++;
        }
        io_uring_cq_advance(&u->ring, seen);
    }
}

static void uring_destroy(struct loop *lp)
{
    struct loop_uring *u = lp->be;
    if (!u)
        return;
    uring_quiesce(lp, u);
    if (u->ring_ok)
        io_uring_queue_exit(&u->ring);
    if (u->br)
        munmap(u->br, URING_BUFS * sizeof(struct io_uring_buf));
    if (u->bufs)
        munmap(u->bufs, (size_t)URING_BUFS * URING_BUF_SIZE);
    free(u->binfo);
    loop_epoll_set_free(u->aside);
    free(u->slots);
    free(u);
    lp->be = NULL;
}

static int uring_watch(struct loop *lp, struct loop_watcher *w)
{
    struct loop_uring *u = lp->be;
    uint32_t i = u->free_head;
    if (i != SLOT_NONE) {
        u->free_head = u->slots[i].next_free;
    } else {
        if (u->nslots == u->cap) {
            uint32_t cap = u->cap ? u->cap * 2 : 64;
            if (cap > SLOT_MAX)
                return -ENOSPC;
            struct uring_slot *s = realloc(u->slots, cap * sizeof *s);
            if (!s)
                return -ENOMEM;
            u->slots = s;
            u->cap = cap;
        }
        i = u->nslots++;
        u->slots[i].gen = 0;
        u->slots[i].rgen = 0;
        u->slots[i].ready_turn = 0;
    }
    struct uring_slot *s = &u->slots[i];
    s->w = w;
    s->head = s->tail = -1;
    s->nheld = 0;
    s->rerr = 0;
    s->on_ready = false;
    w->slot = i;
    w->state = 0;
    w->kernel = w->events;
    loop_link(&lp->changes, w); /* armed before the wait */
    return 0;
}

static void uring_unwatch(struct loop *lp, struct loop_watcher *w)
{
    struct loop_uring *u = lp->be;
    if (w->state & URING_ARMED)
        uring_cancel(u, w);
    uring_cancel_recv(u, w);
    if (w->state & URING_ASIDE) {
        loop_epoll_set_del(u->aside, w);
        u->naside--;
    }
    struct uring_slot *s = &u->slots[w->slot];
    uring_ready_del(u, w->slot);
    uring_drop_held(u, s);
    s->w = NULL;
    s->gen++;
    s->rgen++; /* its recv's last completions give their buffers back */
    s->next_free = u->free_head;
    u->free_head = w->slot;
    w->state = 0;
}

/* Tells the kernel what w wants: a poll for what polls serve (and for
 * LOOP_IN unless a recv serves it), a recv, or neither.  Returns 0 or
 * -errno. */
static int uring_apply_one(struct loop *lp, struct loop_uring *u, struct loop_watcher *w)
{
    struct uring_slot *s = &u->slots[w->slot];
    if (w->events != w->kernel)
        lp->kernel_changes++; /* a change, not a re-arm */
    if ((w->events & LOOP_IN) && (s->nheld > 0 || (w->state & URING_EOF) || s->rerr))
        uring_ready_add(u, w->slot); /* held bytes, end or error to report */
    if (w->state & URING_ASIDE) {
        uring_cancel_recv(u, w); /* epoll reports, loop_recv reads */
        return w->events == w->kernel ? 0 : loop_epoll_set_mod(u->aside, w);
    }
    w->kernel = w->events;
    if ((w->state & URING_NOBUF) && u->nheld < URING_BUFS / 2)
        w->state &= ~URING_NOBUF; /* buffers are back */
    bool rmode = uring_recv_mode(u, w);
    bool rwant = uring_recv_wanted(u, w);
    uint32_t bits = w->events & (LOOP_IN | LOOP_OUT | LOOP_RDHUP | LOOP_EDGE);
    if (rmode)
        bits &= ~LOOP_IN;
    /* A recv serves LOOP_IN (with held bytes, end of stream or an error:
     * the ready list does); a poll the rest, and an empty interest (for
     * errors and hang-ups, as epoll's). */
    bool pwant = !rmode || (bits & (LOOP_OUT | LOOP_RDHUP)) || !(w->events & LOOP_IN);
    if ((w->state & URING_ARMED) && (!pwant || s->pbits != bits))
        uring_cancel(u, w);
    int rc = 0;
    if (pwant && !(w->state & URING_ARMED))
        rc = uring_arm(u, w, bits);
    if (rwant && !(w->state & URING_RECV)) {
        int rrc = uring_arm_recv(u, w);
        if (rrc == -ENOBUFS) { /* no ring could be made: a poll serves LOOP_IN after all */
            if (w->state & URING_ARMED)
                uring_cancel(u, w);
            rc = uring_arm(u, w, bits | LOOP_IN);
        } else if (rrc < 0) {
            rc = rrc;
        }
    } else if (!rwant) {
        uring_cancel_recv(u, w);
    }
    return rc;
}

static void uring_apply(struct loop *lp)
{
    struct loop_uring *u = lp->be;
    if (uring_setup(u) < 0)
        return; /* uring_wait says why */
    while (lp->changes) {
        struct loop_watcher *w = lp->changes;
        loop_unlink(w);
        int rc = uring_apply_one(lp, u, w);
        if (rc < 0) {
            w->error = rc;
            loop_link(&lp->refused, w); /* reported in this turn's dispatch */
        }
    }
    if (u->naside > 0 && !u->aside_armed) {
        struct io_uring_sqe *sqe = uring_sqe(u);
        if (sqe) {
            io_uring_prep_poll_add(sqe, loop_epoll_set_fd(u->aside), EPOLLIN);
            io_uring_sqe_set_data64(sqe, TOKEN_ASIDE);
            u->aside_armed = true;
        }
    }
}

static void uring_settle(struct loop *lp)
{
    uring_quiesce(lp, lp->be);
}

static int uring_wait(struct loop *lp, int64_t timeout_ns)
{
    struct loop_uring *u = lp->be;
    int rc = uring_setup(u);
    if (rc < 0)
        return rc;
    u->runner = pthread_self();
    u->ran = true;
    if (timeout_ns != 0 && uring_any_ready(u))
        timeout_ns = 0; /* held bytes to read: the level contract */
    struct io_uring_cqe *cqe;
    if (timeout_ns == 0) {
        rc = io_uring_submit_and_get_events(&u->ring);
    } else if (timeout_ns < 0) {
        rc = io_uring_submit_and_wait(&u->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                       .tv_nsec = timeout_ns % 1000000000};
        rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
    }
    if (rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY)
        rc = 0; /* EBUSY: completions to reap first */
    /* Reaped from the ring in memory, no system call. */
    unsigned head, seen = 0;
    u->ncqe = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        if (u->ncqe == LOOP_EVENTS)
            break;
        u->cqes[u->ncqe++] = (struct uring_cqe){cqe->user_data, cqe->res, cqe->flags};
        uring_completed(u, cqe->flags);
        seen++;
    }
    io_uring_cq_advance(&u->ring, seen);
    return rc < 0 ? rc : 0;
}

/* w, level-triggered, saw only what polls cannot leave out (POLLRDHUP):
 * it goes to the epoll set aside.  Returns 0 or -errno. */
static int uring_move_aside(struct loop *lp, struct loop_uring *u, struct loop_watcher *w)
{
    int rc = u->aside ? 0 : loop_epoll_set_new(&u->aside);
    if (rc == 0)
        rc = loop_epoll_set_add(u->aside, w);
    if (rc < 0)
        return rc;
    lp->kernel_changes++;
    w->state |= URING_ASIDE;
    u->naside++;
    if ((w->state & URING_RECV) && !w->change_pprev)
        loop_link(&lp->changes, w); /* its recv is cancelled before the wait */
    return 0;
}

/* Calls, once each, the watchers on the ready list that want LOOP_IN: they
 * hold bytes, or their recv found the end of the stream or an error; takes
 * off it those that do not want LOOP_IN now.  Returns how many were
 * called. */
static int uring_dispatch_ready(struct loop_uring *u)
{
    int ready = 0;
    u->turn++;
    while (u->ready_head != SLOT_NONE) {
        uint32_t i = u->ready_head;
        struct uring_slot *s = &u->slots[i];
        if (s->ready_turn == u->turn)
            break; /* round the list once */
        s->ready_turn = u->turn;
        uring_ready_del(u, i);
        struct loop_watcher *w = s->w;
        if (!(w->events & LOOP_IN))
            continue; /* parked: uring_apply_one puts it back when it wants input */
        uring_ready_add(u, i); /* to the tail; loop_recv takes it off once read */
        ready++;
        w->fn(w, LOOP_IN);
    }
    return ready;
}

static int uring_dispatch(struct loop *lp)
{
    struct loop_uring *u = lp->be;
    int n = u->ncqe, ready = 0;
    u->ncqe = 0;
    for (int i = 0; i < n; i++) {
        const struct uring_cqe *c = &u->cqes[i];
        if (c->token == TOKEN_IGNORE)
            continue;
        if (c->token == TOKEN_ASIDE) {
            u->aside_armed = false;
            if (u->aside && loop_epoll_set_wait(u->aside, 0) == 0)
                ready += loop_epoll_set_dispatch(u->aside);
            continue;
        }
        if ((uint32_t)c->token & TOKEN_RECV) {
            uring_take_recv(lp, u, c);
            continue;
        }
        uint32_t slot = (uint32_t)c->token;
        if (slot >= u->nslots)
            continue;
        struct loop_watcher *w = u->slots[slot].w;
        if (!w || u->slots[slot].gen != (uint32_t)(c->token >> 32) || !(w->state & URING_ARMED))
            continue; /* removed, re-armed or cancelled since */
        if (!(c->flags & IORING_CQE_F_MORE))
            w->state &= ~URING_ARMED; /* this poll is over */
        if (c->res < 0) {
            /* The poll was refused (EBADF: closed behind the loop's back):
             * reported once, re-armed only by a change of interest. */
            w->error = c->res;
            ready++;
            w->fn(w, LOOP_ERR);
            continue;
        }
        uint32_t bits = uring_poll_bits((uint32_t)c->res) & (w->events | LOOP_HUP | LOOP_ERR);
        bool level = !(w->events & LOOP_EDGE);
        if (!bits && level) {
            int rc = uring_move_aside(lp, u, w);
            if (rc == 0)
                continue;
            w->error = rc;
            bits = LOOP_ERR;
        } else if (!(w->state & URING_ARMED) && !w->change_pprev) {
            loop_link(&lp->changes, w); /* re-armed before the next wait */
        }
        if (bits) {
            ready++;
            w->fn(w, bits);
        }
    }
    return ready + uring_dispatch_ready(u);
}

const struct loop_backend loop_uring_backend = {
    .io = LOOP_IO_URING,
    .init = uring_init,
    .destroy = uring_destroy,
    .watch = uring_watch,
    .unwatch = uring_unwatch,
    .apply = uring_apply,
    .wait = uring_wait,
    .dispatch = uring_dispatch,
    .settle = uring_settle,
    .recv = uring_recv,
};
