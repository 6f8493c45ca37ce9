/*
 * loop.h - a per-thread event loop: one epoll descriptor, I/O watchers with
 * callbacks, the timer heap, a cached clock, a mailbox that other threads
 * post to, per-turn checks, and the deferred-free list.  loop.c is the only
 * file that calls epoll_*.
 *
 * A descriptor of any kind (connection, UDP socket, listening socket,
 * eventfd) is driven by embedding a struct loop_watcher and registering it
 * with a callback; nothing else needs to know what kinds exist.
 *
 * One turn (loop_run_once): apply the interest changes asked for since the
 * last wait, wait in epoll until the next timer deadline (or not at all
 * while something is busy or a post is queued), refresh the clock, call each
 * ready watcher's callback, run what the mailbox holds, run the per-turn
 * checks, fire due timers, end the handles closed in the turn (the closing
 * phase), then run the deferred functions.  A watcher removed during a turn gets no further
 * callback in that turn; memory that a later event of the same batch could
 * still point at is released through loop_defer, which runs at the end of
 * the turn.
 *
 * Interest changes (HAProxy's fd update list, libuv's watcher queue).
 * loop_modify only records the interest wanted and queues the watcher; just
 * before epoll_wait the loop tells the kernel about each queued watcher
 * whose wanted interest differs from what the kernel has, one epoll_ctl
 * each.  A change undone within the turn (EPOLLOUT armed and the output
 * written by the end of the turn, a pause and a resume) costs no system
 * call.  loop_unwatch takes the watcher off the queue (and tells the kernel
 * at once), so a closed descriptor's pending change is dropped, and a
 * descriptor number reused within the turn by a new watcher starts from
 * that watcher's own interest.  A change the kernel refuses (ENOMEM; EBADF
 * or ENOENT when a descriptor was closed behind the loop's back) is reported
 * in the next dispatch as a callback with LOOP_ERR alone, and
 * loop_watcher_error tells it from a socket error.
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
 * Hand-off wake-ups.  Posts (loop_post) wake the loop's thread through the
 * mailbox's eventfd only while that thread sleeps in epoll_wait: before a
 * wait that may sleep the loop tells the mailbox it is idle and looks once
 * more for messages (mailbox_idle), and after it tells it it runs again
 * (mailbox_running).  A loop that is running drains its mailbox every turn,
 * after the I/O callbacks, without any system call.
 *
 * Threads: everything here except loop_post / loop_post_urgent runs on the
 * loop's own thread.
 */
#ifndef WHARF_LOOP_H
#define WHARF_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailbox.h"
#include "timer.h"

/*
 * Readiness bits: the loop's own, whatever its backend (loop.c translates
 * them to and from epoll's).  LOOP_IN and LOOP_OUT are interest and
 * readiness; LOOP_HUP (the peer hung up) and LOOP_ERR (an error is pending
 * on the descriptor) are always reported, asked for or not.  LOOP_RDHUP
 * (the peer shut its sending side), asked for, is reported too.  LOOP_EDGE
 * asks for edge-triggered readiness (reported once per change, as
 * wharf-load's engines want); it is interest only.  A callback gets no other
 * bits.
 */
#define LOOP_IN 0x1u
#define LOOP_OUT 0x2u
#define LOOP_HUP 0x4u
#define LOOP_ERR 0x8u
#define LOOP_RDHUP 0x10u
#define LOOP_EDGE 0x20u

struct loop;
struct loop_watcher;
typedef void (*loop_io_fn)(struct loop_watcher *w, uint32_t events);

/* Embed one per descriptor; recover the owner with container_of-style
 * arithmetic (or put it first). */
struct loop_watcher {
    loop_io_fn fn;
    int fd;          /* -1 when not registered */
    uint32_t events; /* the interest wanted (LOOP_IN, LOOP_OUT, ...) */
    uint32_t kernel; /* the interest the kernel has (loop.c's) */
    int error;       /* -errno of the last change the kernel refused, or 0 */
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

struct loop {
    int epfd;
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
    unsigned busy;               /* > 0: poll without sleeping (loop_set_busy) */
    bool stop;                   /* loop_run returns after this turn */
};

/* Prepares lp with a mailbox of `depth` ordinary and `reserve` urgent slots.
 * Returns 0 or -errno. */
int loop_init(struct loop *lp, size_t depth, size_t reserve);
/* Cancels what is left in the mailbox, runs what is deferred, closes the
 * epoll descriptor.  Watchers and timers still registered are the owners'
 * to release first. */
void loop_destroy(struct loop *lp);

/* Registers fd with interest `events`; fn is called with the ready bits.
 * Returns 0 or -errno (then w is untouched). */
int loop_watch(struct loop *lp, struct loop_watcher *w, int fd, uint32_t events, loop_io_fn fn);
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
/* Runs what is deferred now (a thread leaving its loop). */
void loop_run_deferred(struct loop *lp);

/* Posts fn(arg, payload) to this loop's thread; see mailbox_post.  Any
 * thread. */
int loop_post(struct loop *lp, mailbox_fn fn, void *arg, const void *payload, size_t len);
int loop_post_urgent(struct loop *lp, mailbox_fn fn, void *arg, const void *payload,
                     size_t len);

/* One turn.  Returns how many descriptors were ready and timers fired
 * (0: nothing happened), or -errno when epoll_wait failed (not EINTR). */
int loop_run_once(struct loop *lp);
/* Turns until loop_stop is called from a callback.  Returns 0 or -errno. */
int loop_run(struct loop *lp);
void loop_stop(struct loop *lp);

#endif
