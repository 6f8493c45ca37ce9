/*
 * acceptor.c - the acceptor thread (see acceptor.h).
 *
 * It runs a loop (loop.h) of its own: one watcher per listening socket of its
 * generation, one on the admission's "room" eventfd, a timer for backoffs,
 * and its mailbox for reloads and the stop.  Only the acceptor hands
 * connections to workers, and it checks for room *before* accept(): a
 * connection it cannot place stays in the kernel backlog instead of in our
 * memory.  Other threads may post to a worker's mailbox too (reloads), so a
 * hand-off can still find it full; that connection is closed and released.
 *
 * At max_connections with evict_idle_ms set, a readable listening socket
 * (a connection waits) makes it ask the worker whose connection made no
 * progress for longest, and for at least evict_idle_ms, to close that one
 * (conn_evict.c): the worker closes it at the end of its loop turn, the
 * release wakes the acceptor, which then accepts the newcomer.  Only a
 * readiness report says that a connection waits: reaching the limit in
 * the middle of a batch of accepts evicts nothing until the next one.  One
 * eviction per waiting connection: the acceptor pauses (waiting for room)
 * after each request, as at any limit.
 *
 * The thread runs `acceptor_nice` below the nice value it was started with
 * (the workers'): on busy CPUs it gives way to the workers, is woken less
 * often and accepts more connections per wake-up (docs/performance.md).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "acceptor.h"
#include "admission.h"
#include "listener_attach.h"
#include "cidr.h"
#include "crash.h"
#include "generation.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "rendezvous.h"
#include "worker.h"

#define ACCEPT_BATCH 64          /* accepts per listening socket per wake-up */
#define ROOM_POLL_MS 50          /* re-check for room at least this often */

/* One listening socket. */
struct acceptor_sock {
    struct loop_watcher watcher; /* must be first */
    struct acceptor *a;
    struct listener *l;
};

/* The watched sockets of one generation; freed at the end of the loop turn
 * (a later event of the same batch may still point at them). */
struct acceptor_socks {
    struct loop_defer freed;
    unsigned n;
    struct acceptor_sock s[];
};

struct acceptor {
    struct loop loop;
    struct wharf_worker *ws;
    unsigned nws;
    struct admission *admission;
    struct generation *gen;      /* the generation accepted for (a reference) */
    struct acceptor_socks *socks; /* or NULL */
    struct loop_watcher room;    /* the admission's eventfd, while paused for room */
    struct timer backoff;        /* ends a pause */
    bool paused;
    atomic_bool paused_seen;     /* `paused` for other threads (acceptor_paused) */
    unsigned next;               /* round-robin start for ties */
    pthread_t thread;
    bool started;
    pid_t tid;                   /* the thread's id, for setpriority */
    int base_nice;               /* its nice value when it started */
    int nice;                    /* the acceptor_nice applied, or -1 */
    uint64_t last_full_log_ms;
    uint64_t last_source_log_ms;
    uint64_t last_resource_log_ms;
};

static void acceptor_on_listen(struct loop_watcher *w, uint32_t events);

/* ---- watching a generation's sockets ------------------------------------------- */

static void acceptor_socks_free(struct loop_defer *d)
{
    free(d); /* freed is the first member */
}

/* Whether the acceptor accepts for l (a TCP listener whose workers do not
 * accept themselves, worker_accept.h). */
static bool acceptor_serves(const struct listener *l)
{
    return l->cfg->protocol == CONFIG_TCP && l->cfg->accept_mode == CONFIG_ACCEPT_ACCEPTOR;
}

/* Stops watching the listening sockets; closes them when `close_them`:
 * its own, and with `all_tcp` (the generation is being replaced, every
 * worker has left it) the workers' own TCP sockets too. */
static void acceptor_unwatch_all(struct acceptor *a, bool close_them, bool all_tcp)
{
    if (a->socks) {
        for (unsigned i = 0; i < a->socks->n; i++)
            loop_unwatch(&a->loop, &a->socks->s[i].watcher);
        loop_defer(&a->loop, &a->socks->freed, acceptor_socks_free);
        a->socks = NULL;
    }
    for (unsigned i = 0; close_them && a->gen && i < a->gen->nlisteners; i++) {
        struct listener *l = &a->gen->listeners[i];
        if (acceptor_serves(l) || (all_tcp && l->cfg->protocol == CONFIG_TCP))
            listener_close(l);
    }
}

/* Watches every TCP listening socket of g that it serves.  Returns 0 or
 * -errno. */
static int acceptor_watch_all(struct acceptor *a, struct generation *g)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g->nlisteners; i++)
        if (acceptor_serves(&g->listeners[i]))
            n += g->listeners[i].naddrs;
    a->socks = calloc(1, sizeof *a->socks + n * sizeof a->socks->s[0]);
    if (!a->socks)
        return -ENOMEM;
    for (unsigned i = 0; i < g->nlisteners; i++) {
        struct listener *l = &g->listeners[i];
        if (!acceptor_serves(l))
            continue;
        for (unsigned k = 0; k < l->naddrs; k++) {
            struct acceptor_sock *s = &a->socks->s[a->socks->n];
            *s = (struct acceptor_sock){.watcher.fd = -1, .a = a, .l = l};
            uint32_t events = a->paused || !listener_accepting(l) ? 0 : LOOP_IN;
            int rc = loop_watch(&a->loop, &s->watcher, listener_fd(l, k, 0), events,
                                acceptor_on_listen);
            if (rc < 0)
                return rc;
            a->socks->n++;
        }
    }
    return 0;
}

/* ---- pausing ---------------------------------------------------------------- */

static void acceptor_set_listening(struct acceptor *a, bool on)
{
    for (unsigned i = 0; a->socks && i < a->socks->n; i++)
        loop_modify(&a->loop, &a->socks->s[i].watcher,
                    on && listener_accepting(a->socks->s[i].l) ? LOOP_IN : 0);
}

static void acceptor_resume(struct acceptor *a)
{
    if (!a->paused)
        return;
    a->paused = false;
    atomic_store_explicit(&a->paused_seen, false, memory_order_relaxed);
    loop_timer_disarm(&a->loop, &a->backoff);
    if (a->room.fd >= 0) {
        loop_unwatch(&a->loop, &a->room);
        admission_wait_end(a->admission);
    }
    acceptor_set_listening(a, true);
}

/* Stops watching the listening sockets for ms, or (wait_room) until a
 * release or a drained mailbox reports room, re-checking every ms.  Counted
 * as a pause (wharf's metrics) when `count`; a pause that only waits for an
 * eviction is not one an operator needs to hear of. */
static void acceptor_pause(struct acceptor *a, int ms, bool wait_room, bool count);

static bool acceptor_room(struct acceptor *a, struct wharf_worker **target);

/* Whether some worker has a connection to evict to make room. */
static bool acceptor_can_evict(struct acceptor *a)
{
    uint64_t idle = a->gen->cfg->evict_idle_ms;
    return idle && a->loop.now_ms >= idle &&
           admission_evict_pick(a->admission, a->loop.now_ms - idle) >= 0;
}

static void acceptor_recheck(struct acceptor *a)
{
    struct wharf_worker *w;
    /* Full, but a connection could be evicted: watch the listening sockets
     * again, so that a waiting connection asks for it (acceptor_evict). */
    if (acceptor_room(a, &w) || (!admission_has_room(a->admission) && acceptor_can_evict(a)))
        acceptor_resume(a);
    else
        loop_timer_arm(&a->loop, &a->backoff, a->loop.now_ms + ROOM_POLL_MS);
}

static void acceptor_on_room(struct loop_watcher *w, uint32_t events)
{
    struct acceptor *a = (struct acceptor *)((char *)w - offsetof(struct acceptor, room));
    admission_wait_end(a->admission);
    admission_wait_begin(a->admission);
    acceptor_recheck(a);
}

static void acceptor_on_backoff(struct timer *t, uint64_t now)
{
    struct acceptor *a = (struct acceptor *)((char *)t - offsetof(struct acceptor, backoff));
    acceptor_recheck(a);
}

static void acceptor_pause(struct acceptor *a, int ms, bool wait_room, bool count)
{
    if (!a->paused) {
        a->paused = true;
        atomic_store_explicit(&a->paused_seen, true, memory_order_relaxed);
        if (count)
            admission_count_pause(a->admission);
        acceptor_set_listening(a, false);
    }
    if (wait_room && a->room.fd < 0) {
        int fd = admission_wait_begin(a->admission);
        if (loop_watch(&a->loop, &a->room, fd, LOOP_IN, acceptor_on_room) < 0)
            admission_wait_end(a->admission); /* the timer still re-checks */
    }
    loop_timer_arm(&a->loop, &a->backoff, a->loop.now_ms + (uint64_t)ms);
}

/* ---- admission ---------------------------------------------------------------- */

/* The least-loaded worker whose mailbox has room, or NULL. */
static struct wharf_worker *acceptor_pick(struct acceptor *a)
{
    struct wharf_worker *best = NULL;
    size_t best_load = SIZE_MAX;
    for (unsigned k = 0; k < a->nws; k++) {
        unsigned i = (a->next + k) % a->nws;
        struct wharf_worker *w = &a->ws[i];
        size_t load = admission_load(a->admission, i);
        if (load < best_load && worker_queued(w) < worker_queue_depth(w)) {
            best_load = load;
            best = w;
        }
    }
    if (best)
        a->next = (best->id + 1) % a->nws;
    return best;
}

/* Whether a connection can be admitted now, and to which worker. */
static bool acceptor_room(struct acceptor *a, struct wharf_worker **target)
{
    return admission_has_room(a->admission) && (*target = acceptor_pick(a)) != NULL;
}

/* At max_connections with a connection waiting: asks the worker whose
 * connection made no progress for longest (past evict_idle_ms) to evict
 * it.  Returns whether an eviction is on its way (asked now, or still
 * pending from before). */
static bool acceptor_evict(struct acceptor *a)
{
    uint64_t idle = a->gen->cfg->evict_idle_ms;
    if (!idle || admission_has_room(a->admission) || a->loop.now_ms < idle)
        return false;
    int wi = admission_evict_pick(a->admission, a->loop.now_ms - idle);
    if (wi < 0)
        return false;
    if (!admission_evict_ask(a->admission, (unsigned)wi))
        return true; /* asked before, not yet taken */
    if (worker_post_evict(&a->ws[wi], idle) < 0) {
        admission_evict_done(a->admission, (unsigned)wi);
        return false;
    }
    return true;
}

static void acceptor_log_full(struct acceptor *a)
{
    if (log_due(&a->last_full_log_ms, a->loop.now_ms, LOG_RATE_LIMIT_MS))
        log_warn("accepting paused: %zu connections open (max_connections) or all worker "
                 "mailboxes full", admission_open(a->admission));
}

/* ---- accepting ---------------------------------------------------------------- */

/* Accepts up to ACCEPT_BATCH connections from one listening socket. */
static void acceptor_on_listen(struct loop_watcher *watcher, uint32_t events)
{
    struct acceptor_sock *s = (struct acceptor_sock *)watcher;
    struct acceptor *a = s->a;
    struct listener *l = s->l;
    if (!listener_accepting(l)) { /* paused by a runtime command meanwhile */
        loop_modify(&a->loop, watcher, 0);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH && !a->paused; i++) {
        struct wharf_worker *w;
        /* The slot is taken before the accept (admission_reserve): workers
         * accepting on their own sockets count under the same limit. */
        if (!acceptor_room(a, &w) || !admission_reserve(a->admission)) {
            /* Evict only for a connection known to wait: the socket was
             * readable when this call began, not necessarily after the
             * accepts it made.  Whether another waits, the loop's next
             * readiness report tells (a call with i == 0). */
            if (i > 0 && acceptor_can_evict(a))
                return;
            bool evicting = acceptor_evict(a);
            if (!evicting)
                acceptor_log_full(a);
            acceptor_pause(a, ROOM_POLL_MS, true, !evicting);
            return;
        }
        union sockaddr_any peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept4(watcher->fd, &peer.sa, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int code = errno;
            admission_unreserve(a->admission);
            switch (listener_accept_failed(l, code, a->loop.now_ms, &a->last_resource_log_ms, -1)) {
            case LISTENER_ACCEPT_NEXT:
                continue;
            case LISTENER_ACCEPT_BACKOFF:
                acceptor_pause(a, LISTENER_ACCEPT_BACKOFF_MS, false, true);
                return;
            default:
                return; /* drained, or the listening socket is gone (stopping) */
            }
        }
        int ticket = listener_admit(l, a->admission, fd, &peer.sa, w->id, a->loop.now_ms, &a->last_source_log_ms, -1);
        if (ticket < 0)
            continue;
        int rc = worker_post_conn(w, l, fd, &peer, peer_len, ticket);
        if (rc < 0) /* filled by another thread since the check, or stopping */
            log_write(WHARF_LOG_WARN, l->cfg->name, (int)w->id, 0,
                      "cannot hand a connection to the worker: %s (closed)", strerror(-rc));
    }
}

/* ---- scheduling priority ------------------------------------------------------- */

/* Sets the thread's nice value to its starting one plus the generation's
 * acceptor_nice (called on the acceptor thread). */
static void acceptor_set_nice(struct acceptor *a)
{
    int want = a->gen->cfg->acceptor_nice;
    if (want == a->nice)
        return;
    int value = a->base_nice + want > 19 ? 19 : a->base_nice + want;
    if (setpriority(PRIO_PROCESS, (id_t)a->tid, value) < 0)
        log_warn("acceptor: cannot set its nice value to %d (acceptor_nice %d): %s", value,
                 want, strerror(errno));
    else
        a->nice = want;
}

/* ---- messages: switch and stop ------------------------------------------------ */

struct acceptor_switch_msg {
    struct generation *gen;
    struct rendezvous *done;
};

static void acceptor_on_switch(void *arg, void *payload, bool cancelled)
{
    struct acceptor *a = arg;
    struct acceptor_switch_msg *m = payload;
    bool go = !cancelled && rendezvous_begin(m->done);
    if (go) {
        struct generation *old = a->gen;
        /* Every worker has moved to the new generation (server_switch), so
         * the old one's worker sockets are watched by nobody now. */
        acceptor_unwatch_all(a, true, true);
        a->gen = m->gen;
        m->gen = old;
        int rc = acceptor_watch_all(a, a->gen);
        if (rc < 0)
            log_error("reload: cannot watch the listening sockets: %s", strerror(-rc));
        acceptor_set_nice(a);
        rendezvous_end(m->done, true);
    } else {
        rendezvous_done(m->done);
    }
    generation_unref(m->gen);
}

static void acceptor_on_refresh(void *arg, void *payload, bool cancelled)
{
    struct acceptor *a = arg;
    if (!cancelled)
        acceptor_set_listening(a, !a->paused);
}

int acceptor_refresh(struct acceptor *a)
{
    return a->started ? loop_post_urgent(&a->loop, acceptor_on_refresh, a, NULL, 0) : 0;
}

static void acceptor_on_stop(void *arg, void *payload, bool cancelled)
{
    struct acceptor *a = arg;
    loop_stop(&a->loop);
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    crash_thread_init();
    a->tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    a->base_nice = getpriority(PRIO_PROCESS, (id_t)a->tid);
    if (a->base_nice == -1 && errno != 0)
        a->base_nice = 0;
    acceptor_set_nice(a);
    int rc = loop_run(&a->loop);
    if (rc < 0)
        log_error("acceptor: epoll_wait: %s", strerror(-rc));
    acceptor_unwatch_all(a, true, false);
    if (a->room.fd >= 0) {
        loop_unwatch(&a->loop, &a->room);
        admission_wait_end(a->admission);
    }
    loop_timer_disarm(&a->loop, &a->backoff);
    return NULL;
}

struct acceptor *acceptor_new(struct wharf_worker *ws, unsigned nws, struct admission *admission)
{
    struct acceptor *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->ws = ws;
    a->nws = nws;
    a->admission = admission;
    a->room.fd = -1;
    a->nice = -1;
    timer_init(&a->backoff, acceptor_on_backoff);
    int rc = loop_init(&a->loop, 16, 16);
    if (rc < 0) {
        free(a);
        errno = -rc;
        return NULL;
    }
    return a;
}

int acceptor_start(struct acceptor *a, struct generation *g)
{
    generation_ref(g);
    a->gen = g;
    int rc = acceptor_watch_all(a, g);
    if (rc < 0)
        return -rc;
    rc = pthread_create(&a->thread, NULL, acceptor_main, a);
    if (rc == 0) {
        a->started = true;
        pthread_setname_np(a->thread, "wharf-acceptor");
    }
    return rc;
}

bool acceptor_switch(struct acceptor *a, struct generation *g, uint64_t timeout_ms)
{
    struct rendezvous *done = rendezvous_new(1);
    if (!done)
        return false;
    struct acceptor_switch_msg m = {.gen = g, .done = done};
    generation_ref(g);
    if (loop_post_urgent(&a->loop, acceptor_on_switch, a, &m, sizeof m) < 0) {
        generation_unref(g);
        rendezvous_done(done);
        rendezvous_release(done);
        return false;
    }
    bool ok = rendezvous_settle(done, timeout_ms);
    rendezvous_release(done); /* a late message skips the switch and frees it */
    return ok;
}

int acceptor_post(struct acceptor *a, void (*fn)(void *arg, void *payload, bool cancelled),
                  void *arg)
{
    return loop_post_urgent(&a->loop, fn, arg, NULL, 0);
}

void acceptor_stop(struct acceptor *a)
{
    if (!a)
        return;
    if (a->started) {
        if (loop_post_urgent(&a->loop, acceptor_on_stop, a, NULL, 0) < 0)
            log_warn("acceptor: cannot post the stop");
        pthread_join(a->thread, NULL);
        a->started = false;
    } else {
        acceptor_unwatch_all(a, true, false);
    }
}

void acceptor_free(struct acceptor *a)
{
    if (!a)
        return;
    acceptor_stop(a);
    loop_destroy(&a->loop);
    generation_unref(a->gen);
    free(a);
}

bool acceptor_paused(const struct acceptor *a)
{
    return a && atomic_load_explicit(&a->paused_seen, memory_order_relaxed);
}
