/*
 * loop.h - a per-thread event loop: a readiness backend (epoll or io_uring,
 * see "Backends" below), I/O watchers with callbacks, the timer heap, a
 * cached clock, a mailbox that other threads post to, per-turn checks, and
 * the deferred-free list.  framework/event/loop_epoll.c and loop_uring.c are
 * the only files that call epoll_* or io_uring_*; no type of either leaves
 * framework/event.
 *
 * A descriptor of any kind (connection, UDP socket, listening socket,
 * eventfd) is driven by embedding a struct loop_watcher and registering it
 * with a callback; nothing else needs to know what kinds exist.
 *
 * One turn (loop_run_once): apply the interest changes asked for since the
 * last wait, wait in the backend until the next timer deadline or the
 * wake-up asked for by loop_wake_at, whichever comes first (or not at all
 * while something is busy or a post is queued), refresh the clock, call
 * each ready watcher's callback, run what the mailbox holds, run the
 * per-turn checks, fire due timers, end the handles closed in the turn (the
 * closing phase), then run the deferred functions.  A watcher removed during
 * a turn gets no further callback in that turn; memory that a later event of
 * the same batch could still point at is released through loop_defer, which
 * runs at the end of the turn.
 *
 * Interest changes (HAProxy's fd update list, libuv's watcher queue).
 * loop_modify only records the interest wanted and queues the watcher; just
 * before the wait the loop tells the kernel about each queued watcher whose
 * wanted interest differs from what the kernel has (one epoll_ctl each on
 * epoll; a poll cancelled and one armed, in the wait's own submission, on
 * io_uring).  A change undone within the turn (LOOP_OUT armed and the output
 * written by the end of the turn, a pause and a resume) costs nothing.
 * loop_unwatch takes the watcher off the queue (and tells the kernel), so a
 * closed descriptor's pending change is dropped, and a descriptor number
 * reused within the turn by a new watcher starts from that watcher's own
 * interest.  A change the kernel refuses (ENOMEM; EBADF or ENOENT when a
 * descriptor was closed behind the loop's back) is reported in the next
 * dispatch as a callback with LOOP_ERR alone, and loop_watcher_error tells
 * it from a socket error.
 *
 * Readiness is level-triggered unless LOOP_EDGE is asked for (wharf-load's
 * engines ask).  The connection layer stays level-triggered: a connection
 * that leaves bytes unread (its read budget, a paused handler, a held read)
 * is simply reported again next turn, where edge triggering would need the
 * loop to remember readiness itself.  It costs no epoll_ctl per message:
 * LOOP_OUT is armed only while a send left bytes pending, and changes made
 * and undone within a turn never reach the kernel (0 epoll_ctl per message
 * for the echo, proxy and memcache handlers, docs/performance.md).
 *
 * Backends (enum loop_io, chosen per process by loop_io_choose: the config's
 * "io", or WHARF_IO).  epoll (loop_epoll.c): one epoll set, epoll_wait per
 * turn (epoll_pwait2 when a loop_wake_at deadline makes the timeout not
 * whole milliseconds).  io_uring (loop_uring.c): readiness by poll requests on one ring;
 * a level-triggered watcher has a one-shot IORING_OP_POLL_ADD in flight
 * while it is registered, re-armed after each report (so a watcher left
 * with unread bytes completes again at once: the level contract), a
 * LOOP_EDGE watcher a multishot one.  The turn's new polls, re-arms and
 * cancellations are queued on the submission ring and handed to the kernel
 * by the one io_uring_enter that also waits (the turn's timeout, in
 * nanoseconds); completions are reaped from the completion ring without a
 * system call.  Each poll carries a token (slot, generation): a watcher
 * removed, or its descriptor number reused, within the turn never gets the
 * old poll's completion.  A poll always reports the peer's half-close
 * (POLLRDHUP cannot be masked out of io_uring polls), so a level-triggered
 * watcher that did not ask for LOOP_RDHUP and sees it moves to a small
 * epoll set that the ring polls, where it gets exactly epoll's semantics
 * (else it would be reported, unasked, every turn).  On io_uring
 * loop_watch does not look at the descriptor: one that is not open is
 * reported in the first dispatch as LOOP_ERR with loop_watcher_error
 * -EBADF (epoll refuses it in loop_watch).
 *
 * Receives.  A watcher that asks for LOOP_RECV reads through loop_recv.
 * On epoll that is recv(2).  On io_uring LOOP_IN is then served by a
 * multishot receive into a ring of buffers the loop provides (one
 * submission arms every later read; the bytes come with the completion):
 * loop_recv copies them out, and the watcher is called with LOOP_IN while
 * it holds bytes, the end of the stream or an error, as it would be while
 * its socket had them.  A watcher holds at most a few buffers (its
 * receive stops until it reads); when the ring runs dry the watcher goes
 * back to a poll and recv(2) until buffers are back.  No byte is lost or
 * reordered either way.  Where no ring can be made (before Linux 5.19, or
 * out of memory; the test hook WHARF_URING_NO_BUFS makes it so) every
 * watcher polls and reads with recv(2).
 *
 * Hand-off wake-ups.  Posts (loop_post) wake the loop's thread through the
 * mailbox's eventfd only while that thread sleeps in the wait: before a
 * wait that may sleep the loop tells the mailbox it is idle and looks once
 * more for messages (mailbox_idle), and after it tells it it runs again
 * (mailbox_running).  A loop that is running drains its mailbox every turn,
 * after the I/O callbacks, without any system call.
 *
 * Threads: everything here except loop_post / loop_post_urgent and the
 * loop_io_* functions runs on the loop's own thread.
 */
#ifndef WHARF_LOOP_H
#define WHARF_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mailbox.h"
#include "timer.h"

/*
 * Readiness bits: the loop's own, whatever its backend (each backend
 * translates them to and from the kernel's).  LOOP_IN and LOOP_OUT are interest and
 * readiness; LOOP_HUP (the peer hung up) and LOOP_ERR (an error is pending
 * on the descriptor) are always reported, asked for or not.  LOOP_RDHUP
 * (the peer shut its sending side), asked for, is reported too.  LOOP_EDGE
 * asks for edge-triggered readiness (reported once per change, as
 * wharf-load's engines want); it is interest only.  LOOP_RECV says that the
 * watcher reads its stream socket only through loop_recv (see "Receives");
 * it is interest only, and a level-triggered watcher's.  A callback gets no
 * other bits.
 */
#define LOOP_IN 0x1u
#define LOOP_OUT 0x2u
#define LOOP_HUP 0x4u
#define LOOP_ERR 0x8u
#define LOOP_RDHUP 0x10u
#define LOOP_EDGE 0x20u
#define LOOP_RECV 0x40u

struct loop;
struct loop_watcher;
typedef void (*loop_io_fn)(struct loop_watcher *w, uint32_t events);

/* Embed one per descriptor; recover the owner with container_of-style
 * arithmetic (or put it first). */
struct loop_watcher {
    loop_io_fn fn;
    int fd;          /* -1 when not registered */
    uint32_t events; /* the interest wanted (LOOP_IN, LOOP_OUT, ...) */
    uint32_t kernel; /* the interest the kernel has (the backend's) */
    int error;       /* -errno of the last change the kernel refused, or 0 */
    uint32_t slot;   /* the backend's: io_uring's token slot */
    uint32_t state;  /* the backend's: io_uring's poll state */
    struct loop_watcher *change_next, **change_pprev; /* queued: pprev != NULL */
};

/* Run once per turn after the I/O callbacks (see loop_add_check). */
struct loop_check {
    void (*fn)(struct loop_check *c);
    struct loop_check *next;
};

/* A handle closed this turn, ended by the closing phase (see loop_close). */
struct loop_closing {
    void (*fn)(struct loop_closing *h);
    struct loop_closing *next;
};

/* Deferred to the end of the turn (see loop_defer). */
struct loop_defer {
    void (*fn)(struct loop_defer *d);
    struct loop_defer *next;
};

/* The backends (see "Backends" above). */
enum loop_io {
    LOOP_IO_AUTO,  /* io_uring where it works, else epoll */
    LOOP_IO_EPOLL, /* the default */
    LOOP_IO_URING,
};

struct loop_backend; /* loop_backend.h */

struct loop {
    const struct loop_backend *backend;
    void *be;                    /* the backend's state */
    uint64_t now_ms;             /* the cached clock, refreshed once per turn */
    bool manual_clock;           /* now_ms is set by its owner, not read (the test kit) */
    struct timer_heap timers;
    struct mailbox *mailbox;
    struct loop_watcher mailbox_watcher;
    struct loop_check *checks;
    struct loop_closing *closing, **closing_tail; /* FIFO, ended by loop_run_closing */
    struct loop_defer *deferred;
    struct loop_watcher *changes; /* watchers whose interest changed, to apply */
    struct loop_watcher *refused; /* changes the kernel refused, to report */
    uint64_t kernel_changes;      /* interest changes told to the kernel (tests) */
    uint64_t recv_dry;            /* receives ended by a dry buffer ring (tests) */
    uint64_t wake_ns;            /* loop_wake_at's earliest since the last wait
                                  * (CLOCK_MONOTONIC ns); UINT64_MAX: none */
    unsigned busy;               /* > 0: poll without sleeping (loop_set_busy) */
    bool stop;                   /* loop_run returns after this turn */
};

/* Prepares lp with a mailbox of `depth` ordinary and `reserve` urgent slots,
 * on the process's backend (loop_io_current).  Returns 0 or -errno; a ring
 * that cannot be set up falls back to epoll unless io_uring was asked for
 * by name. */
int loop_init(struct loop *lp, size_t depth, size_t reserve);
/* The same on a given backend (LOOP_IO_AUTO: as loop_init). */
int loop_init_io(struct loop *lp, size_t depth, size_t reserve, enum loop_io io);
/* Cancels what is left in the mailbox, runs what is deferred, closes the
 * backend's descriptors.  Watchers and timers still registered are the
 * owners' to release first.  May run on another thread than the loop's. */
void loop_destroy(struct loop *lp);
/* The backend lp runs on: LOOP_IO_EPOLL or LOOP_IO_URING. */
enum loop_io loop_backend_io(const struct loop *lp);

/*
 * The process's choice of backend (loop_io.c).  loop_io_choose resolves
 * `want` (the config's "io"; the environment variable WHARF_IO, when set,
 * takes its place): epoll as it is; io_uring if a ring can be set up
 * (probed now), else -errno with the reason in why (-EINVAL for a WHARF_IO
 * that is none of auto, epoll, io_uring); auto io_uring if it can be, else
 * epoll with the reason in why.  *got says which, *named whether io_uring
 * was asked for by name; why gets "" when there is nothing to say.  It sets
 * nothing: loop_io_set(got, named) makes the choice what later loop_init
 * calls use (a loop whose ring cannot be set up then falls back to epoll
 * unless named).  Until then loop_init uses WHARF_IO, or epoll.  The test hook WHARF_IO_FORCE_FAIL (any value) makes the probe
 * and every ring fail as a kernel without io_uring would (ENOSYS).  Any
 * thread.
 */
int loop_io_choose(enum loop_io want, enum loop_io *got, bool *named, char *why,
                   size_t whylen);
void loop_io_set(enum loop_io io, bool named);
enum loop_io loop_io_current(void);
/* "auto", "epoll", "io_uring". */
const char *loop_io_name(enum loop_io io);

/* Registers fd with interest `events`; fn is called with the ready bits.
 * Returns 0 or -errno (then w is untouched). */
int loop_watch(struct loop *lp, struct loop_watcher *w, int fd, uint32_t events, loop_io_fn fn);
/*
 * Reads from w's stream socket as recv(w->fd, p, len, 0) does (returns the
 * bytes read, 0 at the end of the stream, or -1 with errno: EAGAIN when
 * nothing is there).  A watcher that asks for LOOP_RECV in its interest
 * reads only through loop_recv: the backend may then receive ahead (see
 * "Receives"), and bytes it holds make the watcher ready for LOOP_IN as
 * unread bytes in the socket do.  Any registered watcher may use it; one
 * that is not gets -1 with EBADF.
 */
ssize_t loop_recv(struct loop *lp, struct loop_watcher *w, void *p, size_t len);
/* Changes the interest: recorded now, told to the kernel before the next
 * wait if it still differs then (see "Interest changes" above).  Returns 0. */
int loop_modify(struct loop *lp, struct loop_watcher *w, uint32_t events);
/* In a callback called with LOOP_ERR: -errno when the kernel refused an
 * interest change of w (w's interest is then unknown; the owner should
 * close it), 0 for a socket's own error. */
int loop_watcher_error(const struct loop_watcher *w);
/* Unregisters w (w->fd becomes -1); the descriptor is not closed.  Safe on
 * an unregistered watcher. */
void loop_unwatch(struct loop *lp, struct loop_watcher *w);

/* Timers on this loop's heap (see timer.h). */
int loop_timer_arm(struct loop *lp, struct timer *t, uint64_t deadline_ms);
void loop_timer_disarm(struct loop *lp, struct timer *t);

/*
 * Asks the next wait to end by deadline_ns (CLOCK_MONOTONIC nanoseconds, as
 * clock_gettime reads it), with nanosecond precision where the timers count
 * in milliseconds: the wait's timeout is the earlier of the next timer
 * deadline and the earliest deadline asked for since the last wait (a later
 * one asked for after it changes nothing).  One-shot: each wait clears it,
 * so an owner that wants to wake at a given instant asks again every turn
 * (a per-turn check is the place).  A deadline already past makes the wait
 * poll without sleeping.  The wait never ends before the deadline because
 * of it: it may end later (the kernel's timer slack; on a kernel without
 * epoll_pwait2 the timeout is rounded up to a millisecond), and a signal
 * ends it early as it ends any wait, so an owner asks again each turn until
 * the instant has come.  No system call.
 */
void loop_wake_at(struct loop *lp, uint64_t deadline_ns);

/* Runs every turn, after the I/O callbacks, until removed. */
void loop_add_check(struct loop *lp, struct loop_check *c);
void loop_remove_check(struct loop *lp, struct loop_check *c);
/* Counts something that needs the loop to poll instead of sleeping
 * (delta +1 / -1). */
void loop_set_busy(struct loop *lp, int delta);

/*
 * The closing phase (libuv's closing handles): queues h so h->fn(h) runs at
 * the end of this turn, after the I/O callbacks, the checks and the timers,
 * in the order closed.  A handle closed by another's fn joins the same
 * phase.  An owner marks its handle closed when it queues it, and runs none
 * of its callbacks after that; fn ends it (on_close, unregister, free).
 */
void loop_close(struct loop *lp, struct loop_closing *h, void (*fn)(struct loop_closing *h));
/* Runs the closing phase now (a thread leaving its loop); returns how many
 * handles it ended. */
size_t loop_run_closing(struct loop *lp);

/* Calls d->fn(d) at the end of this turn (after every callback of it). */
void loop_defer(struct loop *lp, struct loop_defer *d, void (*fn)(struct loop_defer *d));
/* Runs what is deferred now (a thread leaving its loop); on io_uring it
 * also cancels what the ring still holds for lp (a poll keeps its socket
 * open), on this thread, so that descriptors closed next are closed. */
void loop_run_deferred(struct loop *lp);

/* Posts fn(arg, payload) to this loop's thread; see mailbox_post.  Any
 * thread. */
int loop_post(struct loop *lp, mailbox_fn fn, void *arg, const void *payload, size_t len);
int loop_post_urgent(struct loop *lp, mailbox_fn fn, void *arg, const void *payload,
                     size_t len);

/* One turn.  Returns how many descriptors were ready and timers fired
 * (0: nothing happened), or -errno when the wait failed (not EINTR). */
int loop_run_once(struct loop *lp);
/* Turns until loop_stop is called from a callback.  Returns 0 or -errno. */
int loop_run(struct loop *lp);
void loop_stop(struct loop *lp);

#endif
