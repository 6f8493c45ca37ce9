/*
 * acceptor.c - the acceptor thread (see acceptor.h).
 *
 * Only the acceptor puts connections into worker queues, so "this queue has
 * room" stays true between the check and the push.  The acceptor checks for
 * room *before* accept(): a connection it cannot place stays in the kernel
 * backlog instead of in our memory.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "acceptor.h"
#include "listener.h"
#include "log.h"
#include "sources.h"
#include "worker.h"

#define ACCEPT_BATCH 64          /* accepts per listener per wake-up */
#define ROOM_POLL_MS 50          /* re-check for room at least this often */
#define RESOURCE_BACKOFF_MS 100  /* pause after EMFILE, ENFILE, ENOBUFS, ENOMEM */
#define ACCEPTOR_STOP_TAG UINT64_MAX

struct acceptor {
    struct listener *ls;
    unsigned nls;
    struct worker *ws;
    unsigned nws;
    size_t max_connections;
    struct sources *sources; /* per-source counts, or NULL without a limit */
    _Atomic size_t active;   /* admitted and not yet closed */
    _Atomic int waiting;     /* the thread sleeps until there is room */
    _Atomic int stopping;
    int epfd, stop_fd, room_fd;
    unsigned next;           /* round-robin start for ties */
    pthread_t thread;
    bool started;
    uint64_t last_full_log_ms;
    uint64_t last_source_log_ms;
    uint64_t last_resource_log_ms;
};

struct acceptor *acceptor_new(struct listener *ls, unsigned nls, struct worker *ws, unsigned nws,
                              size_t max_connections, size_t per_source)
{
    struct acceptor *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->ls = ls;
    a->nls = nls;
    a->ws = ws;
    a->nws = nws;
    a->max_connections = max_connections;
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    a->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->room_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->epfd < 0 || a->stop_fd < 0 || a->room_fd < 0)
        goto fail;
    if (per_source && !(a->sources = sources_new(per_source))) {
        errno = ENOMEM;
        goto fail;
    }
    /* Event data: the stop fd is ACCEPTOR_STOP_TAG; a listening socket is
     * (listener index << 32 | fd). */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ACCEPTOR_STOP_TAG};
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->stop_fd, &ev) < 0)
        goto fail;
    for (unsigned i = 0; i < nls; i++) {
        if (ls[i].cfg->protocol != CONFIG_TCP)
            continue;
        for (unsigned k = 0; k < ls[i].naddrs; k++) {
            int fd = listener_fd(&ls[i], k, 0);
            ev.data.u64 = (uint64_t)i << 32 | (uint32_t)fd;
            if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                goto fail;
        }
    }
    return a;
fail:;
    int saved = errno;
    acceptor_free(a);
    errno = saved;
    return NULL;
}

/* The least-loaded worker whose queue has room, or NULL. */
static struct worker *acceptor_pick(struct acceptor *a)
{
    uint64_t skipped = 0; /* workers found full (first 64 tracked) */
    for (unsigned tries = 0; tries < a->nws; tries++) {
        struct worker *best = NULL;
        size_t best_load = SIZE_MAX;
        for (unsigned k = 0; k < a->nws; k++) {
            unsigned i = (a->next + k) % a->nws;
            if (i < 64 && (skipped >> i & 1))
                continue;
            size_t load = atomic_load_explicit(&a->ws[i].load, memory_order_relaxed);
            if (load < best_load) {
                best_load = load;
                best = &a->ws[i];
            }
        }
        if (!best)
            return NULL;
        if (queue_len(best->queue) < queue_depth(best->queue)) {
            a->next = (best->id + 1) % a->nws;
            return best;
        }
        if (best->id >= 64)
            return NULL;
        skipped |= (uint64_t)1 << best->id;
    }
    return NULL;
}

static void acceptor_sleep(struct acceptor *a, int fd, int ms)
{
    struct pollfd p[2] = {{.fd = a->stop_fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    poll(p, fd >= 0 ? 2 : 1, ms);
    if (fd >= 0 && (p[1].revents & POLLIN)) {
        uint64_t v;
        while (read(fd, &v, sizeof v) < 0 && errno == EINTR)
            ;
    }
}

/* Whether a connection can be admitted now; if not, waits (bounded) for room. */
static bool acceptor_admit(struct acceptor *a, struct worker **target)
{
    if (atomic_load(&a->active) < a->max_connections && (*target = acceptor_pick(a)))
        return true;
    atomic_store(&a->waiting, 1);
    /* Re-check after announcing we wait, so a close in between is not missed. */
    if (atomic_load(&a->active) < a->max_connections && (*target = acceptor_pick(a))) {
        atomic_store(&a->waiting, 0);
        return true;
    }
    uint64_t now = timer_now_ms();
    if (now - a->last_full_log_ms > 10000) {
        a->last_full_log_ms = now;
        log_warn("accepting paused: %zu connections open (max_connections %zu) or all worker "
                 "queues full", atomic_load(&a->active), a->max_connections);
    }
    acceptor_sleep(a, a->room_fd, ROOM_POLL_MS);
    atomic_store(&a->waiting, 0);
    return false;
}

/* Accepts up to ACCEPT_BATCH connections from socket fd of listener l.
 * Returns false when the acceptor should go back to waiting (no room,
 * backlog empty, backoff). */
static bool acceptor_accept(struct acceptor *a, struct listener *l, int fd)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct worker *w;
        if (!acceptor_admit(a, &w))
            return false;
        struct queue_item item = {.kind = QUEUE_CONN, .listener = l->index};
        item.peer_len = sizeof item.peer;
        item.fd = accept4(fd, &item.peer.sa, &item.peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (item.fd < 0) {
            switch (errno) {
            case EAGAIN:
#if EAGAIN != EWOULDBLOCK
            case EWOULDBLOCK:
#endif
                return false;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                if (timer_now_ms() - a->last_resource_log_ms >= 10000) {
                    a->last_resource_log_ms = timer_now_ms();
                    log_write(WHARF_LOG_WARN, l->cfg->name, -1, 0,
                              "accept: %s; pausing accepts for %d ms at a time until "
                              "connections close", strerror(errno), RESOURCE_BACKOFF_MS);
                }
                acceptor_sleep(a, -1, RESOURCE_BACKOFF_MS);
                return false;
            case EINVAL:
            case EBADF:
            case ENOTSOCK:
                return false; /* the listening socket is gone: stopping */
            default:
                continue; /* ECONNABORTED, EPROTO, EINTR, EPERM, network errors */
            }
        }
        if (a->sources && sources_add(a->sources, &item.peer.sa) < 0) {
            /* This source has its share open: cut the new one off now. */
            atomic_fetch_add_explicit(&l->rejected, 1, memory_order_relaxed);
            close(item.fd);
            uint64_t now = timer_now_ms();
            if (now - a->last_source_log_ms >= 1000) {
                char addr[64];
                a->last_source_log_ms = now;
                listener_format_addr(&item.peer.sa, addr, sizeof addr);
                log_write(WHARF_LOG_WARN, l->cfg->name, -1, 0,
                          "refused %s: max_connections_per_source reached", addr);
            }
            continue;
        }
        atomic_fetch_add(&a->active, 1);
        atomic_fetch_add_explicit(&w->load, 1, memory_order_relaxed);
        if (queue_push(w->queue, &item) < 0) {
            /* Cannot happen: only this thread pushes, and it checked for room. */
            close(item.fd);
            atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
            acceptor_conn_closed(a, &item.peer.sa);
        }
    }
    return true;
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    struct epoll_event events[64];
    while (!atomic_load(&a->stopping)) {
        struct worker *w;
        if (!acceptor_admit(a, &w))
            continue;
        int n = epoll_wait(a->epfd, events, 64, -1);
        if (n < 0 && errno != EINTR) {
            log_error("acceptor: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n && !atomic_load(&a->stopping); i++) {
            uint64_t tag = events[i].data.u64;
            if (tag != ACCEPTOR_STOP_TAG)
                acceptor_accept(a, &a->ls[tag >> 32], (int)(uint32_t)tag);
        }
    }
    return NULL;
}

int acceptor_start(struct acceptor *a)
{
    int rc = pthread_create(&a->thread, NULL, acceptor_main, a);
    if (rc == 0)
        a->started = true;
    return rc;
}

void acceptor_stop(struct acceptor *a)
{
    if (!a || !a->started)
        return;
    atomic_store(&a->stopping, 1);
    uint64_t one = 1;
    if (write(a->stop_fd, &one, sizeof one) < 0)
        log_warn("acceptor: cannot wake: %s", strerror(errno));
    pthread_join(a->thread, NULL);
    a->started = false;
}

void acceptor_free(struct acceptor *a)
{
    if (!a)
        return;
    acceptor_stop(a);
    if (a->epfd >= 0)
        close(a->epfd);
    if (a->stop_fd >= 0)
        close(a->stop_fd);
    if (a->room_fd >= 0)
        close(a->room_fd);
    sources_free(a->sources);
    free(a);
}

static void acceptor_wake(struct acceptor *a)
{
    if (atomic_load(&a->waiting)) {
        uint64_t one = 1;
        if (write(a->room_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            log_warn("acceptor: cannot wake: %s", strerror(errno));
    }
}

void acceptor_conn_closed(struct acceptor *a, const struct sockaddr *peer)
{
    if (a->sources)
        sources_remove(a->sources, peer);
    atomic_fetch_sub(&a->active, 1);
    acceptor_wake(a);
}

void acceptor_room(struct acceptor *a)
{
    acceptor_wake(a);
}

size_t acceptor_active(const struct acceptor *a)
{
    return atomic_load(&((struct acceptor *)a)->active);
}
