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
 */
#include "check_main.h"
#include "loop.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* The backend's ABI stays in loop.c. */
#ifdef EPOLLIN
#error "loop.h brings in <sys/epoll.h>: the epoll ABI must stay private to loop.c"
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
    uint64_t start = timer_now_ms();
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
    return check_run(s);
}
