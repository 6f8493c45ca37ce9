/*
 * worker.c - the worker thread (see worker.h): its loop, and the messages
 * other threads post to it.
 *
 * Every message arrives through the loop's mailbox and runs on the worker's
 * own thread: a new connection (opened, or closed and released when the
 * worker is closing or the message is cancelled), a generation to adopt for
 * UDP, a phase change.  The thread leaves its loop when it is draining and
 * owns no connection any more, or at once when closing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admission.h"
#include "conn.h"
#include "callback.h"
#include "crash.h"
#include "generation.h"
#include "log.h"
#include "rendezvous.h"
#include "udp.h"
#include "udp_batch.h"
#include "worker.h"
#include "workpool.h"

/* Mailbox slots beyond queue_depth, for phase changes and reloads. */
#define WORKER_URGENT_SLOTS 64
/* How long a post of a phase change or reload retries a full mailbox. */
#define WORKER_POST_RETRY_MS 5000

_Static_assert(sizeof(struct conn_handoff) <= MAILBOX_PAYLOAD, "a hand-off fits a message");

static __thread struct wharf_worker *current_worker;

/* w->finished once the thread has ended (no rendezvous is handed to it then). */
static char worker_ended_mark;
#define WORKER_ENDED ((struct rendezvous *)&worker_ended_mark)
static int worker_posts_init(struct wharf_worker *w, char *err, size_t errlen);
static void worker_posts_close(struct wharf_worker *w);
static void worker_posts_free(struct wharf_worker *w);

int worker_init(struct wharf_worker *w, unsigned id, struct wharf_worker *siblings,
                unsigned nworkers, size_t queue_depth, struct admission *admission,
                struct workpool *pool, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->admission = admission;
    w->siblings = siblings;
    w->nworkers = nworkers;
    w->pool = pool;
    wharf_list_init(&w->timers);
    wharf_list_init(&w->udp_handles);
    worker_accept_init(w);
    int rc = loop_init(&w->loop, queue_depth, WORKER_URGENT_SLOTS);
    if (rc < 0) {
        snprintf(err, errlen, "worker %u: cannot start: %s", id, strerror(-rc));
        return rc;
    }
    if (conn_set_init(&w->conns, &w->loop) < 0) {
        snprintf(err, errlen, "worker %u: out of memory", id);
        loop_destroy(&w->loop);
        return -ENOMEM;
    }
    if ((rc = worker_posts_init(w, err, errlen)) < 0) {
        conn_set_free(&w->conns);
        loop_destroy(&w->loop);
        return rc;
    }
    return 0;
}

static void worker_on_conn(void *arg, void *payload, bool cancelled)
{
    struct wharf_worker *w = arg;
    struct conn_handoff *h = payload;
    if (cancelled || w->phase >= WORKER_CLOSING) {
        conn_handoff_drop(w, h);
        return;
    }
    conn_open(w, h);
    admission_wake(w->admission); /* a slot of the mailbox is free */
}

int worker_post_conn(struct wharf_worker *w, struct listener *l, int fd, const union sockaddr_any *peer,
                     socklen_t peer_len, int ticket)
{
    struct conn_handoff h = {.l = l, .fd = fd, .ticket = ticket, .peer_len = peer_len,
                             .accepted_ns = histogram_now_ns()};
    memcpy(&h.peer, peer, peer_len <= sizeof h.peer ? peer_len : sizeof h.peer);
    generation_ref(l->gen);
    int rc = loop_post(&w->loop, worker_on_conn, w, &h, sizeof h);
    if (rc < 0)
        conn_handoff_drop(w, &h);
    return rc;
}

static void worker_on_evict(void *arg, void *payload, bool cancelled)
{
    struct wharf_worker *w = arg;
    admission_evict_done(w->admission, w->id);
    if (!cancelled)
        conn_evict_one(w, *(uint64_t *)payload);
}

int worker_post_evict(struct wharf_worker *w, uint64_t idle_ms)
{
    return loop_post_urgent(&w->loop, worker_on_evict, w, &idle_ms, sizeof idle_ms);
}

size_t worker_queued(struct wharf_worker *w)
{
    return mailbox_len(w->loop.mailbox);
}

size_t worker_queue_depth(const struct wharf_worker *w)
{
    return mailbox_depth(w->loop.mailbox);
}

/* Posts an urgent message, retrying (bounded) while the mailbox is full. */
static int worker_post_urgent(struct wharf_worker *w, mailbox_fn fn, void *arg, const void *payload,
                              size_t len)
{
    uint64_t start = timer_now_ms();
    for (;;) {
        int rc = loop_post_urgent(&w->loop, fn, arg, payload, len);
        if (rc != -EAGAIN || timer_now_ms() - start > WORKER_POST_RETRY_MS)
            return rc;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

/* ---- reload ------------------------------------------------------------------- */

struct worker_adoption {
    struct generation *gen;
    struct rendezvous *done;
};

/* Switches w's UDP sockets and its own listening sockets to a->gen; false
 * if they could not be watched (then it keeps the old ones). */
static bool worker_switch_udp(struct wharf_worker *w, struct worker_adoption *a)
{
    char err[256];
    struct udp_set *set;
    if (udp_set_new(w, a->gen, &set, err, sizeof err) < 0) {
        log_write(WHARF_LOG_ERROR, NULL, (int)w->id, 0, "reload: keeping the old UDP sockets: %s",
                  err);
        return false;
    }
    if (worker_accept_watch(w, a->gen, err, sizeof err) < 0) {
        log_write(WHARF_LOG_ERROR, NULL, (int)w->id, 0, "reload: keeping the old listening "
                  "sockets: %s", err);
        udp_set_free(w, set);
        return false;
    }
    /* The new generation's on_worker_start runs before the old one's
     * on_worker_stop (if no connection of it is left). */
    generation_worker_hold(a->gen, w);
    udp_set_free(w, w->udp);
    w->udp = set;
    struct generation *old = w->udp_gen;
    w->udp_gen = a->gen;
    a->gen = old;
    generation_worker_release(old, w);
    return true;
}

static void worker_on_adopt(void *arg, void *payload, bool cancelled)
{
    struct wharf_worker *w = arg;
    struct worker_adoption *a = payload;
    bool go = !cancelled && w->phase == WORKER_RUNNING && (!a->done || rendezvous_begin(a->done));
    bool performed = go && (a->gen == w->udp_gen || worker_switch_udp(w, a));
    if (a->done && go)
        rendezvous_end(a->done, performed);
    else if (a->done)
        rendezvous_done(a->done);
    generation_unref(a->gen);
}

void worker_adopt(struct wharf_worker *w, struct generation *g, struct rendezvous *done)
{
    struct worker_adoption a = {.gen = g, .done = done};
    generation_ref(g);
    if (worker_post_urgent(w, worker_on_adopt, w, &a, sizeof a) < 0) {
        generation_unref(g);
        if (done)
            rendezvous_done(done);
    }
}

/* ---- phases ------------------------------------------------------------------- */

static void worker_on_phase(void *arg, void *payload, bool cancelled)
{
    struct wharf_worker *w = arg;
    enum worker_phase phase = *(enum worker_phase *)payload;
    if (cancelled || phase <= w->phase)
        return;
    w->phase = phase;
    /* No more datagrams: the UDP sockets close with the generation.  Its
     * own listening sockets close now: the kernel refuses what comes. */
    udp_set_free(w, w->udp);
    w->udp = NULL;
    worker_accept_stop(w, true);
    size_t n = conn_shutdown(w, phase == WORKER_CLOSING);
    if (n)
        log_write(WHARF_LOG_INFO, NULL, (int)w->id, 0, "closed %zu %sconnections at shutdown", n,
                  phase == WORKER_CLOSING ? "" : "idle ");
}

void worker_set_phase(struct wharf_worker *w, enum worker_phase phase)
{
    if (worker_post_urgent(w, worker_on_phase, w, &phase, sizeof phase) < 0)
        log_write(WHARF_LOG_ERROR, NULL, (int)w->id, 0, "cannot tell the worker to stop");
}

/* ---- the thread --------------------------------------------------------------- */

/*
 * The worker leaves its loop: the connections closed by the shutdown are
 * torn down (each ends its generation's service on w when it was the last;
 * we are outside a turn, so the closing phase runs here), then the
 * generation it adopted lets go, so every on_worker_stop runs here, while
 * the handlers' worker timers still exist to be stopped.
 */
static void worker_stop_serving(struct wharf_worker *w)
{
    loop_run_closing(&w->loop);
    generation_worker_release(w->udp_gen, w);
}

static void *worker_main(void *arg)
{
    struct wharf_worker *w = arg;
    current_worker = w;
    crash_thread_init();
    /* The generation it starts with: on_worker_start before anything runs. */
    generation_worker_hold(w->udp_gen, w);
    struct rendezvous *ready = w->ready;
    w->ready = NULL;
    if (ready)
        rendezvous_done(ready);
    while (w->phase < WORKER_CLOSING) {
        int rc = loop_run_once(&w->loop);
        if (rc < 0) {
            log_write(WHARF_LOG_ERROR, NULL, (int)w->id, 0, "event loop wait: %s", strerror(-rc));
            break;
        }
        if (w->phase == WORKER_DRAINING && w->conns.n == 0 && atomic_load(&w->work_pending) == 0)
            break;
    }
    /* Closing (or the loop failed): close what is left, refuse what comes. */
    w->phase = WORKER_CLOSING;
    size_t n = conn_shutdown(w, true);
    if (n)
        log_write(WHARF_LOG_INFO, NULL, (int)w->id, 0, "closed %zu connections at shutdown", n);
    udp_set_free(w, w->udp);
    w->udp = NULL;
    worker_accept_stop(w, true);
    worker_stop_serving(w);
    htimer_stop_all(&w->timers);
    udp_handle_close_all(w);
    mailbox_close(w->loop.mailbox); /* cancels queued hand-offs */
    worker_posts_close(w);          /* and posts; finished jobs wait for the stop */
    loop_run_deferred(&w->loop);
    current_worker = NULL;
    atomic_store(&w->ended, true);
    struct rendezvous *finished = atomic_exchange(&w->finished, WORKER_ENDED);
    if (finished && finished != WORKER_ENDED)
        rendezvous_done(finished);
    return NULL;
}

int worker_start(struct wharf_worker *w, struct generation *g, struct rendezvous *ready,
                 char *err, size_t errlen)
{
    int rc = udp_set_new(w, g, &w->udp, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = worker_accept_watch(w, g, err, errlen)) < 0)
        return rc; /* the UDP set goes with worker_destroy */
    generation_ref(g);
    w->udp_gen = g;
    w->ready = ready;
    atomic_store(&w->ended, false);
    atomic_store(&w->finished, NULL);
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc) {
        w->ready = NULL;
        snprintf(err, errlen, "cannot start worker thread %u: pthread_create: %s%s", w->id,
                 strerror(rc),
                 rc == EAGAIN ? " (a limit on threads: ulimit -u, a pids cgroup, TasksMax)" : "");
        return -rc;
    }
    w->started = true;
    char name[16]; /* shown by top -H, ps -L and /proc/PID/task/TID/comm */
    snprintf(name, sizeof name, "wharf-w%u", w->id);
    pthread_setname_np(w->thread, name);
    return 0;
}

bool worker_watch_end(struct wharf_worker *w, struct rendezvous *finished)
{
    struct rendezvous *none = NULL;
    return atomic_compare_exchange_strong(&w->finished, &none, finished);
}

void worker_join(struct wharf_worker *w)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void worker_destroy(struct wharf_worker *w)
{
    if (w->loop.mailbox)
        mailbox_close(w->loop.mailbox);
    worker_posts_free(w);
    udp_set_free(w, w->udp);
    w->udp = NULL;
    udp_handle_close_all(w);
    worker_accept_stop(w, false);
    loop_destroy(&w->loop); /* runs what is deferred */
    udp_rate_free(w);
    udp_batch_free(w);
    free(w->udp_rbuf);
    w->udp_rbuf = NULL;
    generation_unref(w->udp_gen);
    w->udp_gen = NULL;
    conn_set_free(&w->conns);
}

/* ---- the handler API: workers and posts ------------------------------------------ */

int worker_run_turn(struct wharf_worker *w)
{
    struct wharf_worker *prev = worker_enter(w);
    int n = loop_run_once(&w->loop);
    worker_leave(prev);
    return n;
}

struct wharf_worker *worker_enter(struct wharf_worker *w)
{
    struct wharf_worker *prev = current_worker;
    current_worker = w;
    return prev;
}

void worker_leave(struct wharf_worker *prev)
{
    current_worker = prev;
}

void worker_work_begin(struct wharf_worker *w)
{
    atomic_fetch_add(&w->work_pending, 1);
}

void worker_work_end(struct wharf_worker *w)
{
    atomic_fetch_sub(&w->work_pending, 1);
}

wharf_worker *wharf_current_worker(void)
{
    return current_worker;
}

/* Wall-clock milliseconds minus monotonic milliseconds, taken once. */
static int64_t wall_offset;
static pthread_once_t wall_once = PTHREAD_ONCE_INIT;

static void wall_take(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    wall_offset = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (int64_t)timer_now_ms();
}

static int64_t wall_offset_ms(void)
{
    pthread_once(&wall_once, wall_take);
    return wall_offset;
}

uint64_t wharf_now_ms(void)
{
    return current_worker ? current_worker->loop.now_ms : timer_now_ms();
}

int64_t wharf_time(void)
{
    return ((int64_t)wharf_now_ms() + wall_offset_ms()) / 1000;
}

unsigned wharf_worker_index(const wharf_worker *w)
{
    return w->id;
}

unsigned wharf_worker_count(const wharf_worker *w)
{
    return w->nworkers;
}

wharf_worker *wharf_worker_sibling(const wharf_worker *w, unsigned index)
{
    return index < w->nworkers ? &w->siblings[index] : NULL;
}

/* ---- the handlers' posts, finished jobs and back-pressure ------------------------- */

/* Posts run per wake-up before the loop turns again. */
#define WORKER_POST_BATCH 256

/* Runs (or cancels) one post as handler code of its origin, then drops the
 * origin: the callback has returned, so no code of its module is running. */
static void worker_run_post(void *ctx, struct postq_item *it, bool cancelled)
{
    struct wharf_worker *w = ctx;
    int id = current_worker == w ? (int)w->id : -1;
    if (it->conn_fn) {
        struct wharf_conn *c = cancelled ? NULL : conn_find(w, it->conn_id);
        if (c)
            conn_call_post(w, c, it->conn_fn, it->arg);
        else
            CALLBACK_RUN("wharf_post_conn", it->origin.l, id, 0, it->conn_fn(NULL, it->arg));
    } else {
        CALLBACK_RUN("wharf_post", it->origin.l, id, 0, it->fn(it->arg, cancelled));
    }
    callback_origin_drop(&it->origin);
}

/* w's post queue fell to half its soft capacity: tell worker `waiter`. */
static void worker_on_drained(void *ctx, unsigned waiter)
{
    struct wharf_worker *w = ctx;
    if (waiter < w->nworkers)
        postq_notify(&w->siblings[waiter].posts);
}

/* Holds c (its reading pauses) until the post queue of worker `target`
 * has drained to half its soft capacity. */
static void worker_hold(struct wharf_worker *w, struct wharf_conn *c, unsigned target)
{
    w->waiting_on[target / 64] |= 1ull << (target % 64);
    w->waiting = true;
    if (c->flags & CONN_HELD)
        return;
    if (w->nheld == w->held_cap) {
        size_t cap = w->held_cap ? w->held_cap * 2 : 16;
        uint64_t *held = realloc(w->held, cap * sizeof *held);
        if (!held)
            return; /* not held: the hard capacity still bounds the queue */
        w->held = held;
        w->held_cap = cap;
    }
    w->held[w->nheld++] = c->id;
    conn_hold(c, true);
}

/* A queue w waits on drained: once every one has, w's held connections
 * read again. */
static void worker_recheck_held(struct wharf_worker *w)
{
    if (!w->waiting)
        return;
    bool all = true;
    for (unsigned i = 0; i < w->nworkers; i++) {
        uint64_t bit = 1ull << (i % 64);
        if (!(w->waiting_on[i / 64] & bit))
            continue;
        if (postq_drained_for(&w->siblings[i].posts, w->id))
            w->waiting_on[i / 64] &= ~bit;
        else
            all = false;
    }
    if (!all)
        return;
    w->waiting = false;
    for (size_t i = 0; i < w->nheld; i++) {
        struct wharf_conn *c = conn_find(w, w->held[i]);
        if (c)
            conn_hold(c, false);
    }
    w->nheld = 0;
}

/* The eventfd of the post queue: posts, finished jobs, drain notices. */
static void worker_on_posts(struct loop_watcher *watcher, uint32_t events)
{
    struct wharf_worker *w =
        (struct wharf_worker *)((char *)watcher - offsetof(struct wharf_worker, posts_watcher));
    (void)events;
    postq_drain(&w->posts, WORKER_POST_BATCH, worker_run_post, worker_on_drained, w);
    workpool_run_finished(&w->jobs_done, (int)w->id, false);
    if (postq_take_notice(&w->posts))
        worker_recheck_held(w);
}

static int worker_posts_init(struct wharf_worker *w, char *err, size_t errlen)
{
    int rc = -ENOMEM;
    w->waiting_on = calloc((w->nworkers + 63) / 64 + 1, sizeof *w->waiting_on);
    if (w->waiting_on)
        rc = postq_init(&w->posts, w->nworkers);
    if (rc == 0) {
        rc = loop_watch(&w->loop, &w->posts_watcher, postq_fd(&w->posts), LOOP_IN,
                        worker_on_posts);
        if (rc < 0)
            postq_free(&w->posts, worker_run_post, w);
    }
    if (rc < 0) {
        free(w->waiting_on);
        w->waiting_on = NULL;
        snprintf(err, errlen, "worker %u: cannot start: %s", w->id, strerror(-rc));
        return rc;
    }
    workpool_finished_init(&w->jobs_done);
    return 0;
}

/* The thread is leaving: posts still queued are cancelled on it. */
static void worker_posts_close(struct wharf_worker *w)
{
    postq_close(&w->posts, worker_run_post, worker_on_drained, w);
}

/* On the thread that stops the server, after the pool's threads are
 * joined: what is left is cancelled here. */
static void worker_posts_free(struct wharf_worker *w)
{
    if (!w->waiting_on)
        return; /* never initialized */
    loop_unwatch(&w->loop, &w->posts_watcher);
    postq_free(&w->posts, worker_run_post, w);
    workpool_finished_destroy(&w->jobs_done);
    free(w->waiting_on);
    w->waiting_on = NULL;
    free(w->held);
    w->held = NULL;
    w->nheld = w->held_cap = 0;
}

void worker_set_post_queue(struct wharf_worker *w, size_t soft)
{
    postq_set_capacity(&w->posts, soft);
}

/*
 * Queues *it to target, its origin taken from the running callback.  A post
 * from a connection's callback that leaves the target above its soft
 * capacity holds that connection (worker_hold).
 */
static int worker_post_item(struct wharf_worker *target, struct postq_item *it)
{
    struct wharf_worker *self = current_worker;
    struct wharf_conn *sender = NULL;
    if (self && self->siblings == target->siblings)
        sender = self->conns.current;
    callback_origin_take(&it->origin);
    int rc = postq_push(&target->posts, it, sender ? (int)self->id : -1);
    if (rc < 0) {
        callback_origin_drop(&it->origin);
        return rc;
    }
    if (rc == 1 && sender)
        worker_hold(self, sender, target->id);
    return 0;
}

int wharf_post(wharf_worker *w, void (*fn)(void *arg, bool cancelled), void *arg)
{
    if (!w || !fn)
        return -EINVAL;
    struct postq_item it = {.fn = fn, .arg = arg};
    return worker_post_item(w, &it);
}

unsigned wharf_post_all(wharf_worker *w, void (*fn)(void *arg, bool cancelled), void *arg)
{
    unsigned n = 0;
    for (unsigned i = 0; w && i < w->nworkers; i++)
        n += wharf_post(&w->siblings[i], fn, arg) == 0;
    return n;
}

int wharf_post_conn(wharf_worker *w, uint64_t conn_id, void (*fn)(wharf_conn *c, void *arg),
                    void *arg)
{
    if (!w || !fn)
        return -EINVAL;
    struct postq_item it = {.conn_fn = fn, .arg = arg, .conn_id = conn_id};
    return worker_post_item(w, &it);
}

int wharf_queue_work(void (*work)(void *arg), void (*done)(void *arg, bool cancelled), void *arg)
{
    struct wharf_worker *w = current_worker;
    if (!w || !work || !done)
        return -EINVAL;
    return workpool_submit(w->pool, w, work, done, arg);
}
