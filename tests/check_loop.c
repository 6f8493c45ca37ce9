/*
 * check_loop.c - the event loop on its own (pipes and eventfds, no server):
 * watchers get their readiness (in the loop's own bits; loop.h does not
 * bring in epoll's), interest changes take effect, a watcher removed
 * earlier in a turn gets no callback, timers fire in deadline order
 * and set how long a turn sleeps, the per-turn checks and "busy" polling,
 * deferred functions run after every callback of the turn, and posts from
 * other threads run on the loop's thread (nothing lost, under TSan too),
 * while what is still queued at destroy is cancelled, not dropped.  Interest
 * changes are applied once before the wait (one undone within the turn
 * never reaches the kernel; a dropped watcher's pending change goes with
 * it, even when its descriptor number is reused at once; a change the kernel
 * refuses comes back as LOOP_ERR), and a running loop runs posts made
 * meanwhile in the same turn without being woken, while one that sleeps is
 * always woken (ping-pong with another thread, no lost wake-up).
 *
 * Every test runs on the backend WHARF_IO names (the suite is run once per
 * backend); the "backends" tests run each case on epoll and on io_uring
 * side by side (io_uring skipped, saying so, where no ring can be set up):
 * the choice of backend (WHARF_IO, the WHARF_IO_FORCE_FAIL hook), the
 * level-triggered contract (unread bytes reported again every turn), edge
 * triggering for LOOP_EDGE, a peer's half-close reported to nobody who did
 * not ask for it (and no turn spent on it), a descriptor number
 * reused within a turn never getting the old watcher's readiness, and
 * loop_wake_at's nanosecond wake-up (never early, the earliest asked for
 * counts, one-shot, the earlier of it and the next timer).
 */
#include "check_main.h"
#include "loop.h"
#include "loop_backend.h" /* loop_uring_probe */

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The backends' ABIs stay in framework/event. */
#ifdef EPOLLIN
#error "loop.h brings in <sys/epoll.h>: the epoll ABI must stay private to the loop"
#endif
#ifdef IORING_OP_POLL_ADD
#error "loop.h brings in io_uring's ABI: it must stay private to the loop"
#endif

struct pipe_w {
    struct loop_watcher w;
    int fds[2];
    int calls;
    uint32_t last;
    struct loop *lp;
    struct pipe_w *victim; /* unwatched by this one's callback */
};

static void on_pipe(struct loop_watcher *w, uint32_t events)
{
    struct pipe_w *p = (struct pipe_w *)w;
    p->calls++;
    p->last = events;
    if (events & LOOP_IN) {
        char buf[64];
        ck_assert_int_gt(read(p->fds[0], buf, sizeof buf), 0);
    }
    if (p->victim)
        loop_unwatch(p->lp, &p->victim->w);
}

static void pipe_open(struct pipe_w *p, struct loop *lp)
{
    memset(p, 0, sizeof *p);
    p->lp = lp;
    p->w.fd = -1;
    ck_assert_int_eq(pipe(p->fds), 0);
}

static void pipe_close(struct pipe_w *p)
{
    loop_unwatch(p->lp, &p->w);
    close(p->fds[0]);
    close(p->fds[1]);
}

START_TEST(watcher_gets_readiness_and_interest_changes)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    struct pipe_w p;
    pipe_open(&p, &lp);
    ck_assert_int_eq(loop_watch(&lp, &p.w, p.fds[0], LOOP_IN, on_pipe), 0);
    ck_assert_int_eq(write(p.fds[1], "x", 1), 1);
    loop_set_busy(&lp, 1); /* turns do not sleep */
    loop_run_once(&lp);
    ck_assert_int_eq(p.calls, 1);
    ck_assert(p.last & LOOP_IN);
    /* No interest: data waits. */
    ck_assert_int_eq(loop_modify(&lp, &p.w, 0), 0);
    ck_assert_int_eq(write(p.fds[1], "y", 1), 1);
    loop_run_once(&lp);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(loop_modify(&lp, &p.w, LOOP_IN), 0);
    loop_run_once(&lp);
    ck_assert_int_eq(p.calls, 2);
    /* Unwatched: nothing more, and a second unwatch is harmless. */
    loop_unwatch(&lp, &p.w);
    loop_unwatch(&lp, &p.w);
    ck_assert_int_eq(write(p.fds[1], "z", 1), 1);
    loop_run_once(&lp);
    ck_assert_int_eq(p.calls, 2);
    ck_assert_int_eq(loop_watch(&lp, &p.w, -1, LOOP_IN, on_pipe), -EBADF);
    pipe_close(&p);
    loop_destroy(&lp);
}
END_TEST

/* Records the bits without reading (on_pipe reads on LOOP_IN). */
static void on_bits(struct loop_watcher *w, uint32_t events)
{
    struct pipe_w *p = (struct pipe_w *)w;
    p->calls++;
    p->last = events;
}

/* The callbacks see the loop's own bits (loop.h), not the backend's: a
 * writable pipe is LOOP_OUT, a pipe whose writer closed is LOOP_HUP, one
 * whose reader closed is LOOP_ERR, and nothing else is ever set. */
START_TEST(readiness_bits_are_the_loops_own)
{
    const uint32_t all = LOOP_IN | LOOP_OUT | LOOP_HUP | LOOP_ERR;
    ck_assert_uint_eq(LOOP_IN & LOOP_OUT, 0);
    ck_assert_uint_eq((LOOP_IN | LOOP_OUT) & (LOOP_HUP | LOOP_ERR), 0);
    ck_assert_uint_eq(LOOP_HUP & LOOP_ERR, 0);
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    loop_set_busy(&lp, 1);
    struct pipe_w r, w;
    pipe_open(&r, &lp);
    w = r; /* the same pipe, its other end */
    ck_assert_int_eq(loop_watch(&lp, &w.w, w.fds[1], LOOP_OUT, on_bits), 0);
    loop_run_once(&lp);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_uint_eq(w.last, LOOP_OUT);
    loop_unwatch(&lp, &w.w);
    /* The writer goes: the reader sees the hang-up, without asking. */
    ck_assert_int_eq(loop_watch(&lp, &r.w, r.fds[0], 0, on_bits), 0);
    close(r.fds[1]);
    loop_run_once(&lp);
    ck_assert_int_eq(r.calls, 1);
    ck_assert(r.last & LOOP_HUP);
    ck_assert_uint_eq(r.last & ~all, 0);
    loop_unwatch(&lp, &r.w);
    close(r.fds[0]);
    /* The reader goes: the writer sees an error. */
    struct pipe_w e;
    pipe_open(&e, &lp);
    ck_assert_int_eq(loop_watch(&lp, &e.w, e.fds[1], LOOP_OUT, on_bits), 0);
    close(e.fds[0]);
    loop_run_once(&lp);
    ck_assert_int_eq(e.calls, 1);
    ck_assert(e.last & LOOP_ERR);
    ck_assert_uint_eq(e.last & ~all, 0);
    loop_unwatch(&lp, &e.w);
    close(e.fds[1]);
    loop_destroy(&lp);
}
END_TEST

START_TEST(watcher_removed_earlier_in_the_turn_gets_no_callback)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    struct pipe_w a, b;
    pipe_open(&a, &lp);
    pipe_open(&b, &lp);
    a.victim = &b;
    b.victim = &a;
    loop_watch(&lp, &a.w, a.fds[0], LOOP_IN, on_pipe);
    loop_watch(&lp, &b.w, b.fds[0], LOOP_IN, on_pipe);
    ck_assert_int_eq(write(a.fds[1], "x", 1), 1);
    ck_assert_int_eq(write(b.fds[1], "x", 1), 1);
    loop_set_busy(&lp, 1);
    loop_run_once(&lp);
    /* Both were ready in one batch; whichever ran first removed the other. */
    ck_assert_int_eq(a.calls + b.calls, 1);
    pipe_close(&a);
    pipe_close(&b);
    loop_destroy(&lp);
}
END_TEST

struct tick {
    struct timer t;
    int order;
};
static int fired_order;

static void on_tick(struct timer *t, uint64_t now)
{
    struct tick *k = (struct tick *)t;
    k->order = ++fired_order;
}

START_TEST(timers_fire_in_order_and_bound_the_sleep)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    struct tick a, b;
    timer_init(&a.t, on_tick);
    timer_init(&b.t, on_tick);
    fired_order = 0;
    uint64_t start = lp.now_ms; /* what the deadlines count from */
    loop_timer_arm(&lp, &b.t, lp.now_ms + 60);
    loop_timer_arm(&lp, &a.t, lp.now_ms + 30);
    for (int i = 0; i < 50 && fired_order < 2; i++)
        loop_run_once(&lp);
    uint64_t took = timer_now_ms() - start;
    ck_assert_int_eq(a.order, 1);
    ck_assert_int_eq(b.order, 2);
    ck_assert_msg(took >= 55 && took < 1000, "took %llu ms", (unsigned long long)took);
    ck_assert_uint_ge(lp.now_ms, start + 55); /* the cached clock moved */
    /* A disarmed timer never fires. */
    loop_timer_arm(&lp, &a.t, lp.now_ms + 10);
    loop_timer_disarm(&lp, &a.t);
    loop_set_busy(&lp, 1);
    usleep(20000);
    loop_run_once(&lp);
    ck_assert_int_eq(fired_order, 2);
    loop_destroy(&lp);
}
END_TEST

static int checks_run;
static void on_check(struct loop_check *c) { checks_run++; }

START_TEST(checks_run_every_turn_and_busy_means_no_sleep)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    struct loop_check c = {.fn = on_check};
    struct tick far;
    timer_init(&far.t, on_tick);
    loop_timer_arm(&lp, &far.t, lp.now_ms + 60000);
    loop_add_check(&lp, &c);
    loop_set_busy(&lp, 1);
    uint64_t start = timer_now_ms();
    for (int i = 0; i < 100; i++)
        loop_run_once(&lp);
    ck_assert_uint_lt(timer_now_ms() - start, 1000);
    ck_assert_int_eq(checks_run, 100);
    loop_remove_check(&lp, &c);
    loop_run_once(&lp);
    ck_assert_int_eq(checks_run, 100);
    loop_timer_disarm(&lp, &far.t);
    loop_destroy(&lp);
}
END_TEST

struct deferred {
    struct loop_defer d;
    int *log;
    int *n;
};
static struct pipe_w *seen_by_callback;

static void on_deferred(struct loop_defer *d)
{
    struct deferred *x = (struct deferred *)d;
    x->log[(*x->n)++] = 2;
}

static struct deferred dfr;
static int dlog[4], dn;

static void on_pipe_defer(struct loop_watcher *w, uint32_t events)
{
    struct pipe_w *p = (struct pipe_w *)w;
    char buf[8];
    ck_assert_int_gt(read(p->fds[0], buf, sizeof buf), 0);
    dlog[dn++] = 1;
    if (!seen_by_callback) {
        seen_by_callback = p;
        loop_defer(p->lp, &dfr.d, on_deferred);
    }
}

START_TEST(deferred_runs_after_every_callback_of_the_turn)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    struct pipe_w a, b;
    pipe_open(&a, &lp);
    pipe_open(&b, &lp);
    dfr.log = dlog;
    dfr.n = &dn;
    loop_watch(&lp, &a.w, a.fds[0], LOOP_IN, on_pipe_defer);
    loop_watch(&lp, &b.w, b.fds[0], LOOP_IN, on_pipe_defer);
    ck_assert_int_eq(write(a.fds[1], "x", 1), 1);
    ck_assert_int_eq(write(b.fds[1], "x", 1), 1);
    loop_set_busy(&lp, 1);
    loop_run_once(&lp);
    ck_assert_int_eq(dn, 3);
    ck_assert_int_eq(dlog[0], 1);
    ck_assert_int_eq(dlog[1], 1);
    ck_assert_int_eq(dlog[2], 2);
    pipe_close(&a);
    pipe_close(&b);
    loop_destroy(&lp);
}
END_TEST

/* ---- posts from other threads ------------------------------------------------ */

#define POSTERS 4
#define POSTS 5000

static pthread_t loop_thread;
static _Atomic long ran_on_loop, ran_elsewhere, cancelled_posts;

static void on_post(void *arg, void *payload, bool cancelled)
{
    if (cancelled) {
        atomic_fetch_add(&cancelled_posts, 1);
        return;
    }
    if (pthread_equal(pthread_self(), loop_thread))
        atomic_fetch_add(&ran_on_loop, 1);
    else
        atomic_fetch_add(&ran_elsewhere, 1);
}

static void *poster(void *arg)
{
    struct loop *lp = arg;
    for (int i = 0; i < POSTS; i++)
        while (loop_post(lp, on_post, NULL, &i, sizeof i) == -EAGAIN)
            usleep(100);
    return NULL;
}

static void on_stop(void *arg, void *payload, bool cancelled)
{
    loop_stop(arg);
}

static void *runner(void *arg)
{
    loop_run(arg);
    return NULL;
}

START_TEST(posts_from_other_threads_run_on_the_loop_thread)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 64, 4), 0);
    pthread_create(&loop_thread, NULL, runner, &lp);
    pthread_t t[POSTERS];
    for (int i = 0; i < POSTERS; i++)
        pthread_create(&t[i], NULL, poster, &lp);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(loop_post_urgent(&lp, on_stop, &lp, NULL, 0), 0);
    pthread_join(loop_thread, NULL);
    ck_assert_int_eq(atomic_load(&ran_on_loop), POSTERS * POSTS);
    ck_assert_int_eq(atomic_load(&ran_elsewhere), 0);
    loop_destroy(&lp);
}
END_TEST

/* ---- interest changes, applied before the wait -------------------------- */

START_TEST(interest_change_undone_within_the_turn_is_never_applied)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    loop_set_busy(&lp, 1);
    struct pipe_w p;
    pipe_open(&p, &lp);
    /* The write end is always writable: LOOP_OUT reports at once if armed. */
    ck_assert_int_eq(loop_watch(&lp, &p.w, p.fds[1], 0, on_bits), 0);
    ck_assert_int_eq(loop_modify(&lp, &p.w, LOOP_OUT), 0);
    ck_assert_int_eq(loop_modify(&lp, &p.w, 0), 0); /* undone before the wait */
    loop_run_once(&lp);
    ck_assert_int_eq(p.calls, 0);
    ck_assert_uint_eq(p.w.events, 0);
    /* Asked for and kept until the wait: reported. */
    ck_assert_int_eq(loop_modify(&lp, &p.w, LOOP_OUT), 0);
    ck_assert_uint_eq(p.w.events, LOOP_OUT);
    loop_run_once(&lp);
    ck_assert_int_eq(p.calls, 1);
    ck_assert(p.last & LOOP_OUT);
    /* Taken away again: nothing more. */
    ck_assert_int_eq(loop_modify(&lp, &p.w, 0), 0);
    loop_run_once(&lp);
    ck_assert_int_eq(p.calls, 1);
    pipe_close(&p);
    loop_destroy(&lp);
}
END_TEST

START_TEST(dropped_watcher_loses_its_pending_change_even_on_a_reused_fd)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    loop_set_busy(&lp, 1);
    struct pipe_w a, b;
    pipe_open(&a, &lp);
    int fd = a.fds[1];
    ck_assert_int_eq(loop_watch(&lp, &a.w, fd, 0, on_bits), 0);
    ck_assert_int_eq(loop_modify(&lp, &a.w, LOOP_OUT), 0); /* pending */
    /* Dropped and closed in the same turn; the number comes back at once. */
    pipe_close(&a);
    pipe_open(&b, &lp);
    int again = b.fds[0] == fd ? 0 : 1;
    ck_assert_int_eq(b.fds[again], fd);
    /* b's interest is none: a's stale LOOP_OUT must not reach the kernel
     * for this descriptor (it would report to a, or to b). */
    ck_assert_int_eq(loop_watch(&lp, &b.w, fd, 0, on_bits), 0);
    loop_run_once(&lp);
    loop_run_once(&lp);
    ck_assert_int_eq(a.calls, 0);
    ck_assert_int_eq(b.calls, 0);
    pipe_close(&b);
    loop_destroy(&lp);
}
END_TEST

static void on_refused(struct loop_watcher *w, uint32_t events)
{
    struct pipe_w *p = (struct pipe_w *)w;
    p->calls++;
    p->last = events;
    ck_assert_int_eq(events, LOOP_ERR);
    ck_assert_int_eq(loop_watcher_error(w), -EBADF);
    loop_unwatch(p->lp, w);
}

START_TEST(refused_interest_change_is_reported_as_an_error)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    loop_set_busy(&lp, 1);
    struct pipe_w p;
    pipe_open(&p, &lp);
    ck_assert_int_eq(loop_watch(&lp, &p.w, p.fds[0], LOOP_IN, on_refused), 0);
    loop_run_once(&lp); /* a turn first: io_uring sets its ring up in it (a new
                         * descriptor, which must not take the number closed next) */
    /* Closed behind the loop's back: the kernel forgets it, and the change
     * asked for afterwards cannot be applied. */
    close(p.fds[0]);
    ck_assert_int_eq(loop_modify(&lp, &p.w, LOOP_IN | LOOP_OUT), 0);
    ck_assert_int_eq(p.calls, 0);
    ck_assert_int_gt(loop_run_once(&lp), 0);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.w.fd, -1);
    close(p.fds[1]);
    loop_destroy(&lp);
}
END_TEST

/* ---- posts and wake-ups ------------------------------------------------------ */

struct self_post {
    struct pipe_w p;
    int ran;
};

static void on_self_post(void *arg, void *payload, bool cancelled)
{
    struct self_post *sp = arg;
    if (!cancelled)
        sp->ran++;
}

static void on_pipe_posts(struct loop_watcher *w, uint32_t events)
{
    struct self_post *sp = (struct self_post *)w;
    on_pipe(w, events);
    ck_assert_int_eq(loop_post(sp->p.lp, on_self_post, sp, NULL, 0), 0);
}

static bool fd_readable(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, 0) == 1;
}

START_TEST(running_loop_runs_posts_in_the_turn_without_a_wake_up)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 2), 0);
    struct self_post sp = {0};
    pipe_open(&sp.p, &lp);
    ck_assert_int_eq(loop_watch(&lp, &sp.p.w, sp.p.fds[0], LOOP_IN, on_pipe_posts), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(write(sp.p.fds[1], "x", 1), 1);
        loop_run_once(&lp); /* no timer, not busy: it may sleep, and is woken by the pipe */
        ck_assert_int_eq(sp.p.calls, i + 1);
        ck_assert_int_eq(sp.ran, i + 1);                     /* run in the same turn */
        ck_assert(!fd_readable(mailbox_fd(lp.mailbox)));     /* and never woke the loop */
    }
    /* Idle again: a post from outside a turn wakes it. */
    ck_assert(mailbox_idle(lp.mailbox));
    ck_assert_int_eq(loop_post(&lp, on_self_post, &sp, NULL, 0), 0);
    ck_assert(fd_readable(mailbox_fd(lp.mailbox)));
    mailbox_running(lp.mailbox);
    loop_run_once(&lp);
    ck_assert_int_eq(sp.ran, 4);
    pipe_close(&sp.p);
    loop_destroy(&lp);
}
END_TEST

#define PINGS 20000

static _Atomic int pongs;

static void on_ping(void *arg, void *payload, bool cancelled)
{
    if (!cancelled)
        atomic_fetch_add(&pongs, 1);
}

static void *pinger(void *arg)
{
    struct loop *lp = arg;
    for (int i = 1; i <= PINGS; i++) {
        while (loop_post(lp, on_ping, NULL, NULL, 0) == -EAGAIN)
            usleep(10);
        /* One at a time: every post finds the loop going to sleep, asleep
         * or just woken.  A lost wake-up hangs here (the test times out). */
        for (int spins = 0; atomic_load(&pongs) < i; spins++)
            if (spins >= 16) /* then sleep: a pure spin starves the loop thread under
                              * valgrind, which runs one thread at a time */
                usleep(1);
    }
    loop_post_urgent(lp, on_stop, lp, NULL, 0);
    return NULL;
}

START_TEST(sleeping_loop_is_always_woken)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 4, 2), 0);
    atomic_store(&pongs, 0);
    loop_thread = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, pinger, &lp);
    ck_assert_int_eq(loop_run(&lp), 0); /* no timers: each wait is unbounded */
    pthread_join(t, NULL);
    ck_assert_int_eq(atomic_load(&pongs), PINGS);
    loop_destroy(&lp);
}
END_TEST

START_TEST(destroy_cancels_what_is_still_queued)
{
    struct loop lp;
    ck_assert_int_eq(loop_init(&lp, 8, 0), 0);
    atomic_store(&cancelled_posts, 0);
    int v = 1;
    loop_post(&lp, on_post, NULL, &v, sizeof v);
    loop_post(&lp, on_post, NULL, &v, sizeof v);
    loop_destroy(&lp);
    ck_assert_int_eq(atomic_load(&cancelled_posts), 2);
}
END_TEST

/* ---- both backends ------------------------------------------------------------ */

/* The backends a loop can be set up on here: epoll, and io_uring unless
 * this kernel (or a seccomp filter) refuses rings.  Returns how many. */
static int backends(enum loop_io out[2])
{
    int n = 0;
    out[n++] = LOOP_IO_EPOLL;
    char why[256];
    if (loop_uring_probe(why, sizeof why) == 0) {
        struct loop lp;
        ck_assert_int_eq(loop_init_io(&lp, 4, 1, LOOP_IO_URING), 0);
        ck_assert_int_eq(loop_backend_io(&lp), LOOP_IO_URING);
        loop_destroy(&lp);
        out[n++] = LOOP_IO_URING;
    } else {
        fprintf(stderr, "check_loop: %s: the io_uring cases are skipped\n", why);
    }
    return n;
}

static char *env_save(const char *name)
{
    const char *v = getenv(name);
    return v ? strdup(v) : NULL;
}

static void env_restore(const char *name, char *saved)
{
    if (saved)
        setenv(name, saved, 1);
    else
        unsetenv(name);
    free(saved);
}

START_TEST(backend_is_chosen_by_name_by_wharf_io_and_by_the_probe)
{
    char *io = env_save("WHARF_IO"), *fail = env_save("WHARF_IO_FORCE_FAIL");
    enum loop_io got;
    bool named;
    char why[256];
    unsetenv("WHARF_IO");
    unsetenv("WHARF_IO_FORCE_FAIL");
    ck_assert_int_eq(loop_io_choose(LOOP_IO_EPOLL, &got, &named, why, sizeof why), 0);
    ck_assert_int_eq(got, LOOP_IO_EPOLL);
    ck_assert(!named);
    ck_assert_str_eq(why, "");
    struct loop lp;
    ck_assert_int_eq(loop_init_io(&lp, 4, 1, LOOP_IO_EPOLL), 0);
    ck_assert_int_eq(loop_backend_io(&lp), LOOP_IO_EPOLL);
    loop_destroy(&lp);
    /* A kernel without io_uring, as the hook makes it look: auto falls back
     * and says why, io_uring by name refuses with the reason, and a ring
     * asked for by name is not set up. */
    setenv("WHARF_IO_FORCE_FAIL", "1", 1);
    ck_assert_int_eq(loop_io_choose(LOOP_IO_AUTO, &got, &named, why, sizeof why), 0);
    ck_assert_int_eq(got, LOOP_IO_EPOLL);
    ck_assert_ptr_nonnull(strstr(why, "io_uring unavailable"));
    ck_assert_ptr_nonnull(strstr(why, "using epoll"));
    ck_assert_int_eq(loop_io_choose(LOOP_IO_URING, &got, &named, why, sizeof why), -ENOSYS);
    ck_assert(named);
    ck_assert_ptr_nonnull(strstr(why, "WHARF_IO_FORCE_FAIL"));
    ck_assert_int_eq(loop_init_io(&lp, 4, 1, LOOP_IO_URING), -ENOSYS);
    /* WHARF_IO takes the config's place. */
    setenv("WHARF_IO", "io_uring", 1);
    ck_assert_int_lt(loop_io_choose(LOOP_IO_EPOLL, &got, &named, why, sizeof why), 0);
    unsetenv("WHARF_IO_FORCE_FAIL");
    setenv("WHARF_IO", "epoll", 1);
    ck_assert_int_eq(loop_io_choose(LOOP_IO_URING, &got, &named, why, sizeof why), 0);
    ck_assert_int_eq(got, LOOP_IO_EPOLL);
    setenv("WHARF_IO", "uring", 1);
    ck_assert_int_eq(loop_io_choose(LOOP_IO_AUTO, &got, &named, why, sizeof why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "WHARF_IO=\"uring\""));
    ck_assert_str_eq(loop_io_name(LOOP_IO_URING), "io_uring");
    ck_assert_str_eq(loop_io_name(LOOP_IO_EPOLL), "epoll");
    env_restore("WHARF_IO", io);
    env_restore("WHARF_IO_FORCE_FAIL", fail);
    /* A loop made without a backend named runs on the process's choice. */
    ck_assert_int_eq(loop_init(&lp, 4, 1), 0);
    ck_assert_int_eq(loop_backend_io(&lp), loop_io_current());
    const char *want = getenv("WHARF_IO");
    if (want && strcmp(want, "epoll") == 0)
        ck_assert_int_eq(loop_backend_io(&lp), LOOP_IO_EPOLL);
    if (want && strcmp(want, "io_uring") == 0)
        ck_assert_int_eq(loop_backend_io(&lp), LOOP_IO_URING);
    loop_destroy(&lp);
}
END_TEST

struct sock_w {
    struct loop_watcher w;
    int fd, peer;
    int calls, bytes;
    uint32_t last, seen;
    size_t take; /* bytes read per callback on LOOP_IN (0: none) */
};

static void on_sock(struct loop_watcher *w, uint32_t events)
{
    struct sock_w *s = (struct sock_w *)w;
    s->calls++;
    s->last = events;
    s->seen |= events;
    if ((events & LOOP_IN) && s->take) {
        char buf[64];
        ssize_t n = recv(s->fd, buf, s->take, MSG_DONTWAIT);
        if (n > 0)
            s->bytes += (int)n;
    }
}

static void sock_open(struct sock_w *s)
{
    memset(s, 0, sizeof *s);
    s->w.fd = -1;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    s->fd = sv[0];
    s->peer = sv[1];
}

static void sock_close(struct loop *lp, struct sock_w *s)
{
    loop_unwatch(lp, &s->w);
    close(s->fd);
    if (s->peer >= 0)
        close(s->peer);
}

/* Level-triggered: a watcher that leaves bytes unread is reported again on
 * every turn until it has read them all; then never again. */
START_TEST(unread_bytes_are_reported_every_turn_on_both_backends)
{
    enum loop_io io[2];
    int nio = backends(io);
    for (int b = 0; b < nio; b++) {
        struct loop lp;
        ck_assert_int_eq(loop_init_io(&lp, 4, 1, io[b]), 0);
        loop_set_busy(&lp, 1);
        struct sock_w s;
        sock_open(&s);
        s.take = 1;
        ck_assert_int_eq(loop_watch(&lp, &s.w, s.fd, LOOP_IN, on_sock), 0);
        ck_assert_int_eq(write(s.peer, "0123456789", 10), 10);
        for (int i = 0; i < 10; i++)
            loop_run_once(&lp);
        ck_assert_int_eq(s.calls, 10);
        ck_assert_int_eq(s.bytes, 10);
        for (int i = 0; i < 5; i++)
            loop_run_once(&lp);
        ck_assert_int_eq(s.calls, 10);
        /* Steady state costs no interest change at all. */
        ck_assert_uint_eq(lp.kernel_changes, 0);
        sock_close(&lp, &s);
        loop_destroy(&lp);
    }
}
END_TEST

/* LOOP_EDGE: reported once per arrival, unread bytes or not. */
START_TEST(edge_watchers_are_reported_once_per_arrival_on_both_backends)
{
    enum loop_io io[2];
    int nio = backends(io);
    for (int b = 0; b < nio; b++) {
        struct loop lp;
        ck_assert_int_eq(loop_init_io(&lp, 4, 1, io[b]), 0);
        loop_set_busy(&lp, 1);
        struct sock_w s;
        sock_open(&s);
        s.take = 1;
        ck_assert_int_eq(loop_watch(&lp, &s.w, s.fd, LOOP_IN | LOOP_EDGE, on_sock), 0);
        ck_assert_int_eq(write(s.peer, "ab", 2), 2);
        for (int i = 0; i < 5; i++)
            loop_run_once(&lp);
        ck_assert_int_eq(s.calls, 1);
        ck_assert_int_eq(write(s.peer, "c", 1), 1);
        for (int i = 0; i < 5; i++)
            loop_run_once(&lp);
        ck_assert_int_eq(s.calls, 2);
        ck_assert_int_eq(s.bytes, 2);
        sock_close(&lp, &s);
        loop_destroy(&lp);
    }
}
END_TEST

/* The peer shuts its side while this side waits to write (its buffer
 * full): LOOP_RDHUP was not asked for, so nothing is reported and no turn
 * is spent on it, until the buffer drains (LOOP_OUT).  One that asks for
 * LOOP_RDHUP gets it; one reading gets LOOP_IN (the EOF) every turn. */
START_TEST(half_close_is_reported_only_to_who_asks_on_both_backends)
{
    enum loop_io io[2];
    int nio = backends(io);
    for (int b = 0; b < nio; b++) {
        struct loop lp;
        ck_assert_int_eq(loop_init_io(&lp, 4, 1, io[b]), 0);
        struct sock_w s;
        sock_open(&s);
        char fill[4096];
        memset(fill, 'x', sizeof fill);
        int filled = 0;
        while (send(s.fd, fill, sizeof fill, MSG_DONTWAIT) > 0)
            filled++;
        ck_assert_int_gt(filled, 0);
        ck_assert_int_eq(shutdown(s.peer, SHUT_WR), 0);
        ck_assert_int_eq(loop_watch(&lp, &s.w, s.fd, LOOP_OUT, on_sock), 0);
        /* Not busy: a turn with nothing to report sleeps its full timeout. */
        struct tick t;
        timer_init(&t.t, on_tick);
        for (int i = 0; i < 4; i++) {
            /* 20 ms from the real clock, not the loop's cached one: under
             * valgrind the cached one can be 10 ms old by now. */
            uint64_t start = timer_now_ms();
            loop_timer_arm(&lp, &t.t, start + 20);
            loop_run_once(&lp);
            uint64_t took = timer_now_ms() - start;
            /* The first turn may move it aside at once.  Under valgrind,
             * which runs one thread at a time at its own pace, how long a
             * turn sleeps says nothing: only the callback count below is
             * judged there. */
            if (i > 0 && !getenv("WHARF_VALGRIND"))
                ck_assert_msg(took >= 10, "%s: turn %d took %llu ms", loop_io_name(io[b]), i,
                              (unsigned long long)took);
        }
        ck_assert_int_eq(s.calls, 0);
        /* The peer reads: writable again. */
        char buf[65536];
        while (recv(s.peer, buf, sizeof buf, MSG_DONTWAIT) > 0)
            ;
        loop_set_busy(&lp, 1);
        for (int i = 0; i < 3 && s.calls == 0; i++)
            loop_run_once(&lp);
        ck_assert_int_ge(s.calls, 1);
        ck_assert(s.last & LOOP_OUT);
        ck_assert_uint_eq(s.seen & LOOP_RDHUP, 0);
        /* Asked for: reported. */
        ck_assert_int_eq(loop_modify(&lp, &s.w, LOOP_RDHUP), 0);
        s.calls = 0;
        loop_run_once(&lp);
        ck_assert_int_eq(s.calls, 1);
        ck_assert(s.last & LOOP_RDHUP);
        /* Reading: the EOF is readable every turn (level). */
        ck_assert_int_eq(loop_modify(&lp, &s.w, LOOP_IN), 0);
        s.calls = 0;
        for (int i = 0; i < 3; i++)
            loop_run_once(&lp);
        ck_assert_int_eq(s.calls, 3);
        ck_assert(s.last & LOOP_IN);
        ck_assert_uint_eq(s.last & LOOP_RDHUP, 0);
        loop_timer_disarm(&lp, &t.t);
        sock_close(&lp, &s);
        loop_destroy(&lp);
    }
}
END_TEST

/* Two readable watchers; whichever runs first removes the other, closes
 * its descriptor and watches a new socket that gets the same number: the
 * new watcher gets nothing of the old one's readiness in that turn. */
static struct sock_w reuse_a, reuse_b, reuse_c;
static struct loop *reuse_lp;
static int reuse_fd;

static void on_reuse(struct loop_watcher *w, uint32_t events)
{
    struct sock_w *self = (struct sock_w *)w;
    struct sock_w *other = self == &reuse_a ? &reuse_b : &reuse_a;
    on_sock(w, events);
    if (reuse_c.fd != 0 || other->fd < 0)
        return;
    loop_unwatch(reuse_lp, &other->w);
    reuse_fd = other->fd;
    close(other->fd);
    other->fd = -1;
    sock_open(&reuse_c);
    ck_assert_int_eq(reuse_c.fd, reuse_fd); /* the lowest number free */
    ck_assert_int_eq(loop_watch(reuse_lp, &reuse_c.w, reuse_c.fd, LOOP_IN, on_sock), 0);
}

START_TEST(fd_reused_within_the_turn_never_gets_the_old_readiness_on_both_backends)
{
    enum loop_io io[2];
    int nio = backends(io);
    for (int b = 0; b < nio; b++) {
        struct loop lp;
        ck_assert_int_eq(loop_init_io(&lp, 4, 1, io[b]), 0);
        loop_set_busy(&lp, 1);
        reuse_lp = &lp;
        sock_open(&reuse_a);
        sock_open(&reuse_b);
        memset(&reuse_c, 0, sizeof reuse_c);
        ck_assert_int_eq(loop_watch(&lp, &reuse_a.w, reuse_a.fd, LOOP_IN, on_reuse), 0);
        ck_assert_int_eq(loop_watch(&lp, &reuse_b.w, reuse_b.fd, LOOP_IN, on_reuse), 0);
        ck_assert_int_eq(write(reuse_a.peer, "a", 1), 1);
        ck_assert_int_eq(write(reuse_b.peer, "b", 1), 1);
        loop_run_once(&lp);
        ck_assert_int_eq(reuse_a.calls + reuse_b.calls, 1);
        ck_assert_int_ne(reuse_c.fd, 0);
        loop_run_once(&lp);
        loop_run_once(&lp);
        ck_assert_int_eq(reuse_c.calls, 0); /* nothing was written to it */
        ck_assert_int_eq(write(reuse_c.peer, "c", 1), 1);
        loop_run_once(&lp);
        ck_assert_int_eq(reuse_c.calls, 1);
        struct sock_w *alive = reuse_a.fd >= 0 ? &reuse_a : &reuse_b;
        struct sock_w *gone = alive == &reuse_a ? &reuse_b : &reuse_a;
        sock_close(&lp, alive);
        close(gone->peer);
        sock_close(&lp, &reuse_c);
        loop_destroy(&lp);
    }
}
END_TEST

/* ---- loop_recv ------------------------------------------------------------------ */

/* A stream watcher that reads through loop_recv and checks every byte. */
struct recv_w {
    struct loop_watcher w;
    struct loop *lp;
    int fd, peer, k;
    size_t take;            /* bytes read per callback (0: none) */
    size_t got, sent, want; /* bytes checked, written by the peer, to write */
    int calls, eofs, bad;
};

static unsigned char pattern(int k, size_t i)
{
    return (unsigned char)(i * 31 + (size_t)k * 7 + (i >> 8));
}

static void on_recv_w(struct loop_watcher *w, uint32_t events)
{
    struct recv_w *r = (struct recv_w *)w;
    r->calls++;
    if (!(events & LOOP_IN) || r->take == 0)
        return;
    unsigned char buf[65536];
    ssize_t n = loop_recv(r->lp, w, buf, r->take < sizeof buf ? r->take : sizeof buf);
    if (n == 0) {
        r->eofs++;
        loop_modify(r->lp, w, LOOP_RECV); /* done reading */
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN)
            r->bad++;
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] != pattern(r->k, r->got + (size_t)i))
            r->bad++;
    r->got += (size_t)n;
}

static void recv_open(struct recv_w *r, struct loop *lp, int k, size_t want)
{
    memset(r, 0, sizeof *r);
    r->w.fd = -1;
    r->lp = lp;
    r->k = k;
    r->want = want;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    r->fd = sv[0];
    r->peer = sv[1];
    ck_assert_int_eq(loop_watch(lp, &r->w, r->fd, LOOP_IN | LOOP_RECV, on_recv_w), 0);
}

/* The peer writes what its socket takes of the rest of the stream (in
 * pieces of up to `piece` bytes); closes it when all is written and
 * `close_at_end`.  Returns whether all is written. */
static bool recv_feed(struct recv_w *r, size_t piece, bool close_at_end)
{
    unsigned char buf[8192];
    while (r->peer >= 0 && r->sent < r->want) {
        size_t n = r->want - r->sent;
        n = n < piece ? n : piece;
        n = n < sizeof buf ? n : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(r->k, r->sent + i);
        ssize_t w = write(r->peer, buf, n);
        if (w <= 0)
            break;
        r->sent += (size_t)w;
    }
    if (r->sent == r->want && close_at_end && r->peer >= 0) {
        close(r->peer);
        r->peer = -1;
    }
    return r->sent == r->want;
}

static void recv_close(struct recv_w *r)
{
    loop_unwatch(r->lp, &r->w);
    close(r->fd);
    if (r->peer >= 0)
        close(r->peer);
}

/* Turns lp (at most `turns` times) until every watcher of r[0..n) has seen
 * the end of its stream, the peers writing what their sockets take of the
 * rest each turn (pieces of varied sizes below `vary`, or of 8 KiB when 0);
 * then checks that each got every byte unchanged and one end of stream, and
 * closes it. */
static void recv_finish(struct loop *lp, struct recv_w *r, int n, int turns, size_t vary)
{
    for (int turn = 0; turn < turns; turn++) {
        bool done = true;
        for (int k = 0; k < n; k++) {
            recv_feed(&r[k], vary ? 1 + (size_t)(turn * 977 + k * 131) % vary : 8192, true);
            done &= r[k].eofs > 0;
        }
        if (done)
            break;
        loop_run_once(lp);
    }
    for (int k = 0; k < n; k++) {
        ck_assert_uint_eq(r[k].got, r[k].want);
        ck_assert_int_eq(r[k].bad, 0);
        ck_assert_int_eq(r[k].eofs, 1);
        recv_close(&r[k]);
    }
}

/* Every byte, in order, then the end of the stream once, whatever the
 * sizes of the writes and the reads, on both backends. */
START_TEST(loop_recv_reads_every_byte_in_order_on_both_backends)
{
    enum loop_io io[2];
    int nio = backends(io);
    static const size_t takes[] = {1, 7, 100, 4096, 20000, 65536};
    for (int b = 0; b < nio; b++) {
        struct loop lp;
        ck_assert_int_eq(loop_init_io(&lp, 4, 1, io[b]), 0);
        loop_set_busy(&lp, 1);
        enum { N = 6 };
        struct recv_w r[N];
        for (int k = 0; k < N; k++) {
            recv_open(&r[k], &lp, k, k == 0 ? 3000 : 300000);
            r[k].take = takes[k];
        }
        recv_finish(&lp, r, N, 200000, 5000);
        loop_destroy(&lp);
    }
}
END_TEST

/* Bytes a watcher holds make it ready as unread bytes in its socket do:
 * reported every turn while it wants LOOP_IN, never while it does not, and
 * again at once when it wants it back, with nothing new from the peer. */
START_TEST(held_bytes_follow_the_level_contract_on_both_backends)
{
    enum loop_io io[2];
    int nio = backends(io);
    for (int b = 0; b < nio; b++) {
        struct loop lp;
        ck_assert_int_eq(loop_init_io(&lp, 4, 1, io[b]), 0);
        loop_set_busy(&lp, 1);
        struct recv_w r;
        recv_open(&r, &lp, 3, 1000);
        ck_assert(recv_feed(&r, 1000, false));
        for (int i = 0; i < 5; i++)
            loop_run_once(&lp);
        ck_assert_int_eq(r.calls, 5); /* not read: every turn */
        loop_modify(&lp, &r.w, LOOP_RECV);
        for (int i = 0; i < 5; i++)
            loop_run_once(&lp);
        ck_assert_int_le(r.calls, 6); /* at most the turn the change was made in */
        int before = r.calls;
        r.take = 100;
        loop_modify(&lp, &r.w, LOOP_IN | LOOP_RECV);
        loop_run_once(&lp);
        ck_assert_int_eq(r.calls, before + 1);
        ck_assert_uint_eq(r.got, 100);
        for (int i = 0; i < 20 && r.got < 1000; i++)
            loop_run_once(&lp);
        ck_assert_uint_eq(r.got, 1000);
        ck_assert_int_eq(r.bad, 0);
        before = r.calls;
        for (int i = 0; i < 5; i++)
            loop_run_once(&lp);
        ck_assert_int_eq(r.calls, before); /* all read: quiet */
        recv_close(&r);
        char c;
        errno = 0;
        ck_assert_int_eq(loop_recv(&lp, &r.w, &c, 1), -1); /* unregistered */
        ck_assert_int_eq(errno, EBADF);
        loop_destroy(&lp);
    }
}
END_TEST

/* io_uring: more bytes arrive than the ring has buffers for, and nobody
 * reads for a while.  The ring runs dry (counted), the watchers it could not
 * serve go back to polls, and every byte still arrives, in order, once they
 * read. */
START_TEST(dry_buffer_ring_is_backpressure_not_loss)
{
    enum loop_io io[2];
    if (backends(io) < 2)
        return;
    struct loop lp;
    ck_assert_int_eq(loop_init_io(&lp, 4, 1, LOOP_IO_URING), 0);
    loop_set_busy(&lp, 1);
    enum { N = 100 };
    static struct recv_w r[N];
    for (int k = 0; k < N; k++) {
        recv_open(&r[k], &lp, k, 100000);
        int big = 1 << 20;
        setsockopt(r[k].peer, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    }
    for (int turn = 0; turn < 50; turn++) {
        for (int k = 0; k < N; k++)
            recv_feed(&r[k], 8192, true);
        loop_run_once(&lp);
    }
    ck_assert_uint_gt(lp.recv_dry, 0);
    for (int k = 0; k < N; k++)
        r[k].take = 100 + (size_t)k * 997 % 30000;
    recv_finish(&lp, r, N, 100000, 0);
    loop_destroy(&lp);
}
END_TEST

/* io_uring: a watcher unregistered while it holds buffers gives them back:
 * a thousand such watchers in a row (four times the ring) never dry it. */
START_TEST(unwatched_watcher_gives_its_buffers_back)
{
    enum loop_io io[2];
    if (backends(io) < 2)
        return;
    struct loop lp;
    ck_assert_int_eq(loop_init_io(&lp, 4, 1, LOOP_IO_URING), 0);
    loop_set_busy(&lp, 1);
    for (int i = 0; i < 1000; i++) {
        struct recv_w r;
        recv_open(&r, &lp, i, 100);
        ck_assert(recv_feed(&r, 100, false));
        for (int t = 0; t < 50 && r.calls == 0; t++)
            loop_run_once(&lp);
        ck_assert_int_gt(r.calls, 0); /* held, not read */
        recv_close(&r);
    }
    ck_assert_uint_eq(lp.recv_dry, 0);
    loop_destroy(&lp);
}
END_TEST

/* io_uring where no buffer ring can be made (a kernel before 5.19, or no
 * memory for one; the test hook WHARF_URING_NO_BUFS makes it so): every
 * watcher reads through a poll and recv(2), every byte in order.  That
 * includes the watcher whose change is applied first (the change list is
 * LIFO: the last opened), which finds the ring missing after its poll was
 * armed for LOOP_OUT alone: the poll is armed again for both, or it would
 * wait for a writability that never comes. */
START_TEST(no_buffer_ring_means_polls_and_every_byte_still_arrives)
{
    enum loop_io io[2];
    if (backends(io) < 2)
        return;
    setenv("WHARF_URING_NO_BUFS", "1", 1);
    struct loop lp;
    ck_assert_int_eq(loop_init_io(&lp, 4, 1, LOOP_IO_URING), 0);
    loop_set_busy(&lp, 1);
    enum { N = 4 };
    struct recv_w r[N];
    for (int k = 0; k < N; k++) {
        static const size_t takes[N] = {7, 100, 4096, 65536};
        recv_open(&r[k], &lp, k, 200000);
        r[k].take = takes[k];
    }
    /* r[N - 1]'s own sending side is full (its peer never reads), so its
     * LOOP_OUT poll stays pending: only LOOP_IN can bring its bytes. */
    char fill[4096] = {0};
    while (write(r[N - 1].fd, fill, sizeof fill) > 0)
        ;
    loop_modify(&lp, &r[N - 1].w, LOOP_IN | LOOP_OUT | LOOP_RECV);
    for (int turn = 0; turn < 100000 && r[N - 1].got < r[N - 1].want; turn++) {
        for (int k = 0; k < N; k++)
            recv_feed(&r[k], 3000, false);
        loop_run_once(&lp);
    }
    ck_assert_uint_eq(r[N - 1].got, r[N - 1].want);
    /* Its peer takes the filler, so that its close is a clean end (a unix
     * socket closed with unread bytes resets its peer). */
    while (read(r[N - 1].peer, fill, sizeof fill) > 0)
        ;
    recv_finish(&lp, r, N, 100000, 3000);
    ck_assert_uint_eq(lp.recv_dry, 0);
    loop_destroy(&lp);
    unsetenv("WHARF_URING_NO_BUFS");
}
END_TEST

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One turn with nothing else to do; returns when it came back (ns). */
static uint64_t turn_ended(struct loop *lp)
{
    ck_assert_int_ge(loop_run_once(lp), 0);
    return mono_ns();
}

/* Turns until one comes back at or after `at` (the caller asked for the
 * first with loop_wake_at; each later one asks again, as a real owner
 * does); *end gets when the last came back. */
static int turns_until(struct loop *lp, uint64_t at, uint64_t *end)
{
    int turns = 0;
    do {
        if (turns > 0)
            loop_wake_at(lp, at);
        *end = turn_ended(lp);
        turns++;
    } while (*end < at && turns < 100);
    return turns;
}

/* How many turns reaching a deadline may take.  One: a wait never ends
 * before the deadline because of it.  A signal ends any wait early (EINTR),
 * and under valgrind, which signals its own threads, that happens: there a
 * second or third turn is allowed (a wait that rounded down would take
 * dozens, a poll hundreds). */
static int turns_allowed(void)
{
    return getenv("WHARF_VALGRIND") ? 3 : 1;
}

/* loop_wake_at: the next wait ends at the deadline, in nanoseconds where
 * the timers count milliseconds, and never before it (but for a signal); of two deadlines
 * asked for before a wait the earlier counts, whichever was asked first;
 * each wait takes it (the next sleeps until the next timer); a timer due
 * earlier still ends the wait first; a deadline already past is a poll. */
START_TEST(wake_at_ends_the_next_wait_on_time_on_both_backends)
{
    enum loop_io io[2];
    int nio = backends(io);
    for (int b = 0; b < nio; b++) {
        struct loop lp;
        ck_assert_int_eq(loop_init_io(&lp, 4, 1, io[b]), 0);
        loop_wake_at(&lp, 0); /* a first turn, a poll: it may set the backend up */
        (void)loop_run_once(&lp);
        for (int i = 0; i < 5; i++) {
            uint64_t start = mono_ns(), at = start + 300000; /* 300 us, no timer */
            loop_wake_at(&lp, at);
            uint64_t end;
            int turns = turns_until(&lp, at, &end);
            ck_assert_msg(turns <= turns_allowed(), "%s: %d turns for one wake-up (woke early)",
                          loop_io_name(io[b]), turns);
            ck_assert_msg(end - start < 50000000, "%s: took %llu ns", loop_io_name(io[b]),
                          (unsigned long long)(end - start));
        }
        /* The earlier of two deadlines, asked for in either order. */
        uint64_t start = mono_ns(), at = start + 1000000;
        loop_wake_at(&lp, start + 2000000000u);
        loop_wake_at(&lp, at);
        uint64_t end;
        ck_assert_int_le(turns_until(&lp, at, &end), turns_allowed());
        ck_assert_uint_lt(end - start, 50000000);
        start = mono_ns();
        at = start + 1000000;
        loop_wake_at(&lp, at);
        loop_wake_at(&lp, start + 2000000000u); /* later: changes nothing */
        ck_assert_int_le(turns_until(&lp, at, &end), turns_allowed());
        ck_assert_uint_lt(end - start, 50000000);
        /* One-shot: the wait after it sleeps until the next timer. */
        struct tick t;
        timer_init(&t.t, on_tick);
        fired_order = 0;
        loop_timer_arm(&lp, &t.t, timer_now_ms() + 40);
        start = mono_ns();
        loop_wake_at(&lp, start + 300000);
        end = turn_ended(&lp);
        ck_assert_uint_lt(end - start, 30000000);
        ck_assert_int_eq(fired_order, 0);
        for (int i = 0; i < 20 && fired_order == 0; i++)
            end = turn_ended(&lp);
        ck_assert_int_eq(fired_order, 1);
        ck_assert_uint_ge(end - start, 35000000);
        /* A timer due first ends the wait first; a past deadline polls. */
        loop_timer_arm(&lp, &t.t, timer_now_ms() + 5);
        start = mono_ns();
        loop_wake_at(&lp, start + 2000000000u);
        for (int i = 0; i < 20 && fired_order == 1; i++)
            end = turn_ended(&lp);
        ck_assert_int_eq(fired_order, 2);
        ck_assert_uint_lt(end - start, 500000000);
        loop_timer_arm(&lp, &t.t, timer_now_ms() + 2000);
        start = mono_ns();
        loop_wake_at(&lp, 1);
        end = turn_ended(&lp);
        ck_assert_uint_lt(end - start, 50000000);
        loop_timer_disarm(&lp, &t.t);
        loop_destroy(&lp);
    }
}
END_TEST

/* epoll on a kernel without epoll_pwait2 (the test hook
 * WHARF_EPOLL_NO_PWAIT2 plays one): a loop_wake_at deadline that is not
 * whole milliseconds away is rounded up, never down, so the wait never ends
 * early (a wait ended early would be asked for again at once: a spin). */
START_TEST(wake_at_without_epoll_pwait2_is_never_early)
{
    setenv("WHARF_EPOLL_NO_PWAIT2", "1", 1);
    struct loop lp;
    ck_assert_int_eq(loop_init_io(&lp, 4, 1, LOOP_IO_EPOLL), 0);
    for (int i = 0; i < 10; i++) {
        uint64_t start = mono_ns(), at = start + 300000 + (uint64_t)i * 150000;
        uint64_t end;
        loop_wake_at(&lp, at);
        int turns = turns_until(&lp, at, &end);
        ck_assert_msg(turns <= turns_allowed(), "%d turns for one wake-up (woke early)", turns);
        ck_assert_uint_lt(end - start, 50000000);
    }
    loop_destroy(&lp);
    unsetenv("WHARF_EPOLL_NO_PWAIT2");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("loop");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, watcher_gets_readiness_and_interest_changes);
    tcase_add_test(tc, readiness_bits_are_the_loops_own);
    tcase_add_test(tc, watcher_removed_earlier_in_the_turn_gets_no_callback);
    tcase_add_test(tc, timers_fire_in_order_and_bound_the_sleep);
    tcase_add_test(tc, checks_run_every_turn_and_busy_means_no_sleep);
    tcase_add_test(tc, deferred_runs_after_every_callback_of_the_turn);
    tcase_add_test(tc, posts_from_other_threads_run_on_the_loop_thread);
    tcase_add_test(tc, destroy_cancels_what_is_still_queued);
    tcase_add_test(tc, interest_change_undone_within_the_turn_is_never_applied);
    tcase_add_test(tc, dropped_watcher_loses_its_pending_change_even_on_a_reused_fd);
    tcase_add_test(tc, refused_interest_change_is_reported_as_an_error);
    tcase_add_test(tc, running_loop_runs_posts_in_the_turn_without_a_wake_up);
    tcase_add_test(tc, sleeping_loop_is_always_woken);
    suite_add_tcase(s, tc);
    TCase *be = tcase_create("backends");
    tcase_set_timeout(be, 60);
    tcase_add_test(be, backend_is_chosen_by_name_by_wharf_io_and_by_the_probe);
    tcase_add_test(be, unread_bytes_are_reported_every_turn_on_both_backends);
    tcase_add_test(be, edge_watchers_are_reported_once_per_arrival_on_both_backends);
    tcase_add_test(be, half_close_is_reported_only_to_who_asks_on_both_backends);
    tcase_add_test(be, fd_reused_within_the_turn_never_gets_the_old_readiness_on_both_backends);
    tcase_add_test(be, loop_recv_reads_every_byte_in_order_on_both_backends);
    tcase_add_test(be, held_bytes_follow_the_level_contract_on_both_backends);
    tcase_add_test(be, dry_buffer_ring_is_backpressure_not_loss);
    tcase_add_test(be, unwatched_watcher_gives_its_buffers_back);
    tcase_add_test(be, no_buffer_ring_means_polls_and_every_byte_still_arrives);
    tcase_add_test(be, wake_at_ends_the_next_wait_on_time_on_both_backends);
    tcase_add_test(be, wake_at_without_epoll_pwait2_is_never_early);
    suite_add_tcase(s, be);
    return check_run(s);
}
