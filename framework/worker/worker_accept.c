/*
 * worker_accept.c - a worker accepting on its own SO_REUSEPORT listening
 * sockets ("accept": "workers"; see worker_accept.h).
 *
 * The shape is the acceptor's (acceptor.c) on the worker's loop: one
 * watcher per socket of the worker's generation, a pause that stops
 * watching them while there is no room (woken by a release through
 * admission_room_wait, re-checked every ROOM_POLL_MS), and the same checks
 * in the same order for each connection.  What it accepts it opens at once
 * (conn_open), so a connection costs no mailbox message, no eventfd write
 * and no second thread's wake-up.
 */
#include "worker_accept.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admission.h"
#include "cidr.h"
#include "conn.h"
#include "generation.h"
#include "histogram.h"
#include "listener.h"
#include "listener_attach.h"
#include "log.h"
#include "loop.h"
#include "worker.h"

#define ACCEPT_BATCH 16          /* accepts per socket per readiness report */
#define ROOM_POLL_MS 50          /* re-check for room at least this often */

/* One listening socket of the worker. */
struct worker_accept_sock {
    struct loop_watcher watcher; /* must be first */
    struct wharf_worker *w;
    struct listener *l;
    unsigned slot;               /* its index in l->fds */
};

/* The watched sockets of one generation; freed at the end of the loop turn
 * (a later event of the same batch may still point at them). */
struct worker_accept_socks {
    struct loop_defer freed; /* must be first */
    unsigned n;
    struct worker_accept_sock s[];
};

static void worker_accept_on_listen(struct loop_watcher *watcher, uint32_t events);
static void worker_accept_on_backoff(struct timer *t, uint64_t now);

void worker_accept_init(struct wharf_worker *w)
{
    memset(&w->accept, 0, sizeof w->accept);
    timer_init(&w->accept.backoff, worker_accept_on_backoff);
}

bool worker_accept_active(const struct wharf_worker *w)
{
    return w->accept.socks && w->accept.socks->n > 0;
}

/* ---- watching a generation's sockets ------------------------------------------- */

static void worker_accept_socks_free(struct loop_defer *d)
{
    free(d); /* freed is the first member */
}

static uint32_t worker_accept_interest(const struct wharf_worker *w, const struct listener *l)
{
    return !w->accept.paused && w->phase == WORKER_RUNNING && listener_accepting(l) ? LOOP_IN
                                                                                    : 0;
}

static void worker_accept_unwatch(struct wharf_worker *w, struct worker_accept_socks *socks,
                                  bool close_them)
{
    if (!socks)
        return;
    for (unsigned i = 0; i < socks->n; i++) {
        struct worker_accept_sock *s = &socks->s[i];
        loop_unwatch(&w->loop, &s->watcher);
        if (close_them && s->l->fds[s->slot] >= 0) {
            /* Only this worker ever touches its slot. */
            close(s->l->fds[s->slot]);
            s->l->fds[s->slot] = -1;
        }
    }
    loop_defer(&w->loop, &socks->freed, worker_accept_socks_free);
}

int worker_accept_watch(struct wharf_worker *w, struct generation *g, char *err, size_t errlen)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (l->cfg->protocol == CONFIG_TCP && l->cfg->accept_mode == CONFIG_ACCEPT_WORKERS &&
            w->id < l->nworkers)
            n += l->naddrs;
    }
    struct worker_accept_socks *socks = NULL;
    if (n > 0) {
        socks = calloc(1, sizeof *socks + n * sizeof socks->s[0]);
        if (!socks) {
            snprintf(err, errlen, "worker %u: out of memory", w->id);
            return -ENOMEM;
        }
    }
    for (unsigned i = 0; socks && i < g->nlisteners; i++) {
        struct listener *l = &g->listeners[i];
        if (l->cfg->protocol != CONFIG_TCP || l->cfg->accept_mode != CONFIG_ACCEPT_WORKERS ||
            w->id >= l->nworkers)
            continue;
        for (unsigned a = 0; a < l->naddrs; a++) {
            struct worker_accept_sock *s = &socks->s[socks->n];
            *s = (struct worker_accept_sock){.watcher.fd = -1, .w = w, .l = l,
                                             .slot = a * l->nworkers + w->id};
            int rc = l->fds[s->slot] < 0 ? -EBADF
                                         : loop_watch(&w->loop, &s->watcher, l->fds[s->slot],
                                                      worker_accept_interest(w, l),
                                                      worker_accept_on_listen);
            if (rc < 0) {
                snprintf(err, errlen, "worker %u: cannot watch its listening socket of %s: %s",
                         w->id, l->cfg->name, strerror(-rc));
                for (unsigned k = 0; k < socks->n; k++)
                    loop_unwatch(&w->loop, &socks->s[k].watcher);
                free(socks);
                return rc;
            }
            socks->n++;
        }
    }
    worker_accept_unwatch(w, w->accept.socks, false);
    w->accept.socks = socks;
    return 0;
}

void worker_accept_stop(struct wharf_worker *w, bool close_them)
{
    worker_accept_unwatch(w, w->accept.socks, close_them);
    w->accept.socks = NULL;
    loop_timer_disarm(&w->loop, &w->accept.backoff);
    if (w->admission)
        admission_room_wait_end(w->admission, w->id);
    w->accept.paused = false;
}

void worker_accept_refresh(struct wharf_worker *w)
{
    struct worker_accept_socks *socks = w->accept.socks;
    for (unsigned i = 0; socks && i < socks->n; i++)
        loop_modify(&w->loop, &socks->s[i].watcher, worker_accept_interest(w, socks->s[i].l));
}

static void worker_accept_on_refresh(void *arg, void *payload, bool cancelled)
{
    if (!cancelled)
        worker_accept_refresh(arg);
}

int worker_accept_post_refresh(struct wharf_worker *w)
{
    return loop_post_urgent(&w->loop, worker_accept_on_refresh, w, NULL, 0);
}

/* ---- pausing ---------------------------------------------------------------- */

/* Whether some worker has a connection to evict to make room. */
static bool worker_accept_can_evict(struct wharf_worker *w, const struct generation *g)
{
    uint64_t idle = g->cfg->evict_idle_ms;
    return idle && w->loop.now_ms >= idle &&
           admission_evict_pick(w->admission, w->loop.now_ms - idle) >= 0;
}

static void worker_accept_resume(struct wharf_worker *w)
{
    if (!w->accept.paused)
        return;
    w->accept.paused = false;
    loop_timer_disarm(&w->loop, &w->accept.backoff);
    admission_room_wait_end(w->admission, w->id);
    worker_accept_refresh(w);
}

/* Paused: resumes if there is room now (or, full, a waiting connection
 * could evict one); else waits for a release, re-checking every
 * ROOM_POLL_MS. */
static void worker_accept_recheck(struct wharf_worker *w)
{
    if (!w->accept.paused || !w->accept.socks)
        return;
    /* The generation of any watched socket has the config in force. */
    const struct generation *g = w->accept.socks->s[0].l->gen;
    if (admission_has_room(w->admission) || worker_accept_can_evict(w, g)) {
        worker_accept_resume(w);
        return;
    }
    admission_room_wait(w->admission, w->id);
    if (admission_has_room(w->admission)) /* a release before the announcement */
        worker_accept_resume(w);
    else
        loop_timer_arm(&w->loop, &w->accept.backoff, w->loop.now_ms + ROOM_POLL_MS);
}

static void worker_accept_on_backoff(struct timer *t, uint64_t now)
{
    struct wharf_worker *w =
        (struct wharf_worker *)((char *)t - offsetof(struct wharf_worker, accept.backoff));
    (void)now;
    worker_accept_recheck(w);
}

static void worker_accept_on_room(void *arg, void *payload, bool cancelled)
{
    (void)payload;
    if (!cancelled)
        worker_accept_recheck(arg);
}

void worker_accept_wake(void *ctx, unsigned index)
{
    struct wharf_worker *w = &((struct wharf_worker *)ctx)[index];
    /* If the mailbox is full the worker's re-check timer still runs. */
    (void)loop_post_urgent(&w->loop, worker_accept_on_room, w, NULL, 0);
}

/* Stops watching the sockets for ms, or (wait_room) until a release wakes
 * it, re-checking every ms; counted as a pause (metrics) when `count`. */
static void worker_accept_pause(struct wharf_worker *w, int ms, bool wait_room, bool count)
{
    if (!w->accept.paused) {
        w->accept.paused = true;
        if (count)
            admission_count_pause(w->admission);
        worker_accept_refresh(w);
    }
    if (wait_room) {
        admission_room_wait(w->admission, w->id);
        if (admission_has_room(w->admission)) { /* released before the announcement */
            worker_accept_resume(w);
            return;
        }
    }
    loop_timer_arm(&w->loop, &w->accept.backoff, w->loop.now_ms + (uint64_t)ms);
}

/* At max_connections with a connection waiting: asks the worker whose
 * connection made no progress for longest (past evict_idle_ms) to evict
 * it (acceptor_evict's rule).  Returns whether an eviction is on its way. */
static bool worker_accept_evict(struct wharf_worker *w, const struct generation *g)
{
    uint64_t idle = g->cfg->evict_idle_ms;
    if (!idle || admission_has_room(w->admission) || w->loop.now_ms < idle)
        return false;
    int wi = admission_evict_pick(w->admission, w->loop.now_ms - idle);
    if (wi < 0)
        return false;
    if (!admission_evict_ask(w->admission, (unsigned)wi))
        return true; /* asked before, not yet taken */
    if (worker_post_evict(&w->siblings[wi], idle) < 0) {
        admission_evict_done(w->admission, (unsigned)wi);
        return false;
    }
    return true;
}

/* ---- accepting ---------------------------------------------------------------- */

/* Accepts up to ACCEPT_BATCH connections from one of the worker's sockets
 * and opens each on this worker. */
static void worker_accept_on_listen(struct loop_watcher *watcher, uint32_t events)
{
    struct worker_accept_sock *s = (struct worker_accept_sock *)watcher;
    struct wharf_worker *w = s->w;
    struct listener *l = s->l;
    (void)events;
    if (worker_accept_interest(w, l) == 0) { /* paused by a runtime command meanwhile */
        loop_modify(&w->loop, watcher, 0);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH && !w->accept.paused; i++) {
        if (!admission_reserve(w->admission)) {
            /* As the acceptor: evict only for a connection known to wait
             * (the socket was readable when this call began). */
            if (i > 0 && worker_accept_can_evict(w, l->gen))
                return;
            bool evicting = worker_accept_evict(w, l->gen);
            if (!evicting && log_due(&w->accept.last_full_log_ms, w->loop.now_ms,
                                     LOG_RATE_LIMIT_MS))
                log_write(WHARF_LOG_WARN, l->cfg->name, (int)w->id, 0,
                          "accepting paused: %zu connections open (max_connections)",
                          admission_open(w->admission));
            worker_accept_pause(w, ROOM_POLL_MS, true, !evicting);
            return;
        }
        union sockaddr_any peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept4(watcher->fd, &peer.sa, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int code = errno;
            admission_unreserve(w->admission);
            switch (listener_accept_failed(l, code, w->loop.now_ms,
                                           &w->accept.last_resource_log_ms, (int)w->id)) {
            case LISTENER_ACCEPT_NEXT:
                continue;
            case LISTENER_ACCEPT_BACKOFF:
                worker_accept_pause(w, LISTENER_ACCEPT_BACKOFF_MS, false, true);
                return;
            default:
                return; /* drained, or the listening socket is gone (stopping) */
            }
        }
        int ticket = listener_admit(l, w->admission, fd, &peer.sa, w->id, w->loop.now_ms, &w->accept.last_source_log_ms, (int)w->id);
        if (ticket < 0)
            continue;
        struct conn_handoff h = {.l = l, .fd = fd, .ticket = ticket, .peer_len = peer_len,
                                 .accepted_ns = histogram_now_ns()};
        memcpy(&h.peer, &peer, peer_len <= sizeof h.peer ? peer_len : sizeof h.peer);
        generation_ref(l->gen);
        conn_open(w, &h);
    }
}
