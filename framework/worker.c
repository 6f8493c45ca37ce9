/*
 * worker.c - the worker thread's event loop (see worker.h).
 *
 * One turn: epoll_wait until the next timer deadline, refresh the cached
 * clock, dispatch each event by its tag (connection, queue, control, UDP
 * socket), run expired timers, then free connections torn down this turn
 * (their memory outlives the turn so a stale event in the same batch is
 * recognised as closed instead of touching freed memory).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "acceptor.h"
#include "conn.h"
#include "log.h"
#include "udp.h"
#include "worker.h"

#define WORKER_READ_BUFFER (64 * 1024)
#define WORKER_EVENTS 256

int worker_watch(struct worker *w, int fd, uint32_t events, void *tag)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int worker_init(struct worker *w, unsigned id, struct listener *listeners, unsigned nlisteners,
                size_t queue_depth, struct acceptor *acceptor, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->listeners = listeners;
    w->nlisteners = nlisteners;
    w->acceptor = acceptor;
    w->queue_kind = EVENT_QUEUE;
    w->control_kind = EVENT_CONTROL;
    w->control_fd = -1;
    w->epfd = -1;
    timer_heap_init(&w->timers);
    w->now_ms = timer_now_ms();

    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        goto sys_fail;
    w->queue = queue_new(queue_depth);
    if (!w->queue)
        goto sys_fail;
    w->control_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->control_fd < 0)
        goto sys_fail;
    w->readbuf_size = WORKER_READ_BUFFER;
    w->readbuf = malloc(w->readbuf_size);
    w->stats = calloc(nlisteners, sizeof *w->stats);
    if (!w->readbuf || !w->stats)
        goto sys_fail;
    int rc;
    if ((rc = worker_watch(w, queue_fd(w->queue), EPOLLIN, &w->queue_kind)) < 0 ||
        (rc = worker_watch(w, w->control_fd, EPOLLIN, &w->control_kind)) < 0) {
        errno = -rc;
        goto sys_fail;
    }
    if (udp_worker_init(w, err, errlen) < 0) {
        worker_destroy(w);
        return -1;
    }
    return 0;

sys_fail:
    snprintf(err, errlen, "worker %u: cannot start: %s", id, strerror(errno));
    worker_destroy(w);
    return -1;
}

/* Closes a queued connection that will never be opened. */
static void worker_discard(struct worker *w, const struct queue_item *item)
{
    close(item->fd);
    atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
    acceptor_conn_closed(w->acceptor, &item->peer.sa);
}

/* Opens every connection waiting in the queue. */
static void worker_take_queue(struct worker *w)
{
    struct queue_item item;
    queue_wake_clear(w->queue);
    while (queue_pop(w->queue, &item) == 0) {
        if (item.kind != QUEUE_CONN)
            continue;
        if (atomic_load(&w->phase) >= WORKER_CLOSING)
            worker_discard(w, &item);
        else
            conn_open(w, &item);
    }
    acceptor_room(w->acceptor);
}

static void worker_on_control(struct worker *w)
{
    uint64_t v;
    while (read(w->control_fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    if (atomic_load(&w->phase) >= WORKER_DRAINING)
        udp_worker_stop(w);
}

static void worker_close_all(struct worker *w)
{
    size_t n = w->nconns;
    while (w->conns)
        conn_close(w->conns, WHARF_CLOSE_SHUTDOWN);
    if (n)
        log_write(WHARF_LOG_INFO, NULL, (int)w->id, 0, "closed %zu connections at shutdown", n);
    struct queue_item item;
    while (queue_pop(w->queue, &item) == 0)
        if (item.kind == QUEUE_CONN)
            worker_discard(w, &item);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event events[WORKER_EVENTS];

    pthread_mutex_lock(w->ready_lock);
    (*w->ready_count)++;
    pthread_cond_broadcast(w->ready_cond);
    pthread_mutex_unlock(w->ready_lock);

    for (;;) {
        int phase = atomic_load(&w->phase);
        if (phase >= WORKER_CLOSING) {
            worker_close_all(w);
            break;
        }
        if (phase == WORKER_DRAINING && w->nconns == 0 && queue_len(w->queue) == 0)
            break;

        int timeout = udp_worker_busy(w) ? 0 : timer_next_ms(&w->timers, w->now_ms);
        int n = epoll_wait(w->epfd, events, WORKER_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            log_write(WHARF_LOG_ERROR, NULL, (int)w->id, 0, "epoll_wait: %s", strerror(errno));
            break;
        }
        w->now_ms = timer_now_ms();
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            switch (*(enum event_kind *)tag) {
            case EVENT_CONN: {
                struct wharf_conn *c = tag;
                if (!(c->flags & CONN_CLOSED))
                    conn_on_event(c, events[i].events);
                break;
            }
            case EVENT_QUEUE: worker_take_queue(w); break;
            case EVENT_CONTROL: worker_on_control(w); break;
            case EVENT_UDP: udp_on_readable(w, tag); break;
            }
        }
        udp_poll_busy(w);
        timer_expire(&w->timers, w->now_ms);
        conn_free_closed(w);
    }
    conn_free_closed(w);
    return NULL;
}

int worker_start(struct worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc == 0)
        w->started = true;
    return rc;
}

void worker_signal(struct worker *w, enum worker_phase phase)
{
    int cur = atomic_load(&w->phase);
    while (cur < (int)phase && !atomic_compare_exchange_weak(&w->phase, &cur, (int)phase))
        ;
    uint64_t one = 1;
    if (w->control_fd >= 0 && write(w->control_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_write(WHARF_LOG_WARN, NULL, (int)w->id, 0, "cannot wake worker: %s", strerror(errno));
}

void worker_join(struct worker *w)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void worker_destroy(struct worker *w)
{
    if (w->queue) {
        struct queue_item item;
        while (queue_pop(w->queue, &item) == 0)
            if (item.kind == QUEUE_CONN)
                worker_discard(w, &item);
        queue_free(w->queue);
        w->queue = NULL;
    }
    udp_worker_free(w);
    if (w->control_fd >= 0)
        close(w->control_fd);
    w->control_fd = -1;
    if (w->epfd >= 0)
        close(w->epfd);
    w->epfd = -1;
    free(w->readbuf);
    w->readbuf = NULL;
    free(w->stats);
    w->stats = NULL;
    buf_free(&w->scratch);
    timer_heap_free(&w->timers);
}
