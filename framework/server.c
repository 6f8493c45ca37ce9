/*
 * server.c - assembles and runs a server (see server.h): handler modules per
 * listener, bound sockets, the worker pool and the acceptor, and the ordered
 * graceful shutdown.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "acceptor.h"
#include "listener.h"
#include "log.h"
#include "module.h"
#include "server.h"
#include "worker.h"

struct server {
    const struct config *cfg;
    struct listener *listeners;
    unsigned nlisteners;
    struct worker *workers;
    unsigned nworkers;
    unsigned workers_inited;
    struct acceptor *acceptor;
    pthread_mutex_t ready_lock;
    pthread_cond_t ready_cond;
    unsigned ready_count;
    bool started;
    bool stats_frozen;                 /* workers are gone: use final_stats */
    struct server_stats *final_stats;  /* per listener, taken at stop */
};

static void server_fini_handlers(struct server *s)
{
    for (unsigned i = 0; i < s->nlisteners; i++) {
        struct listener *l = &s->listeners[i];
        if (l->inited && l->handler->fini)
            l->handler->fini(l->data);
        l->inited = false;
    }
}

int server_new(const struct config *cfg, struct server **out, char *err, size_t errlen)
{
    struct server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = cfg;
    s->nworkers = cfg->workers > 0 ? (unsigned)cfg->workers : 1;
    s->nlisteners = (unsigned)cfg->nlisteners;
    s->listeners = calloc(s->nlisteners, sizeof *s->listeners);
    pthread_mutex_init(&s->ready_lock, NULL);
    pthread_cond_init(&s->ready_cond, NULL);
    if (!s->listeners) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < s->nlisteners; i++) {
        struct listener *l = &s->listeners[i];
        const struct config_listener *lc = &cfg->listeners[i];
        char why[1024];
        l->index = i;
        l->cfg = lc;
        l->file = cfg->file;
        l->port = -1;
        if (module_load(lc->handler, cfg->module_path, lc->protocol, &l->module, why,
                        sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s.handler: %s", cfg->file, lc->path, why);
            goto fail;
        }
        l->handler = l->module->handler;
        if (module_init_listener(l->module, lc->options, &l->data, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s.options: %s", cfg->file, lc->path, why);
            goto fail;
        }
        l->inited = true;
    }
    *out = s;
    return 0;
fail:
    server_free(s);
    return -1;
}

/* Raises the soft open-file limit to the hard limit: each connection is a fd. */
static void server_raise_nofile(const struct server *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            log_info("raised the open file limit from %llu to %llu", (unsigned long long)before,
                     (unsigned long long)rl.rlim_cur);
        else
            rl.rlim_cur = before;
    }
    if (rl.rlim_cur != RLIM_INFINITY && (size_t)s->cfg->max_connections + 64 > rl.rlim_cur)
        log_warn("max_connections is %d but the open file limit is %llu: accepts will pause "
                 "with EMFILE before max_connections is reached",
                 s->cfg->max_connections, (unsigned long long)rl.rlim_cur);
}

/* Undoes a partial start: stops and frees threads, closes sockets. */
static void server_teardown(struct server *s)
{
    if (s->acceptor)
        acceptor_stop(s->acceptor);
    for (unsigned i = 0; i < s->nlisteners; i++)
        listener_close_tcp(&s->listeners[i]);
    for (unsigned i = 0; i < s->workers_inited; i++)
        worker_signal(&s->workers[i], WORKER_CLOSING);
    for (unsigned i = 0; i < s->workers_inited; i++)
        worker_join(&s->workers[i]);
    for (unsigned i = 0; i < s->workers_inited; i++)
        worker_destroy(&s->workers[i]);
    s->workers_inited = 0;
    free(s->workers);
    s->workers = NULL;
    acceptor_free(s->acceptor);
    s->acceptor = NULL;
    for (unsigned i = 0; i < s->nlisteners; i++)
        listener_close(&s->listeners[i]);
}

int server_start(struct server *s, char *err, size_t errlen)
{
    if (s->started) {
        snprintf(err, errlen, "server already started");
        return -1;
    }
    server_raise_nofile(s);
    for (unsigned i = 0; i < s->nlisteners; i++)
        if (listener_bind(&s->listeners[i], s->nworkers, err, errlen) < 0)
            goto fail;

    s->workers = calloc(s->nworkers, sizeof *s->workers);
    if (!s->workers) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->acceptor = acceptor_new(s->listeners, s->nlisteners, s->workers, s->nworkers,
                               (size_t)s->cfg->max_connections,
                               (size_t)s->cfg->max_connections_per_source);
    if (!s->acceptor) {
        snprintf(err, errlen, "cannot create the acceptor: %s", strerror(errno));
        goto fail;
    }
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        if (worker_init(w, i, s->listeners, s->nlisteners, (size_t)s->cfg->queue_depth,
                        s->acceptor, err, errlen) < 0)
            goto fail;
        s->workers_inited++;
        w->ready_lock = &s->ready_lock;
        w->ready_cond = &s->ready_cond;
        w->ready_count = &s->ready_count;
        int rc = worker_start(w);
        if (rc) {
            snprintf(err, errlen, "cannot start worker %u: %s", i, strerror(rc));
            goto fail;
        }
    }
    pthread_mutex_lock(&s->ready_lock);
    while (s->ready_count < s->nworkers)
        pthread_cond_wait(&s->ready_cond, &s->ready_lock);
    pthread_mutex_unlock(&s->ready_lock);

    int rc = acceptor_start(s->acceptor);
    if (rc) {
        snprintf(err, errlen, "cannot start the acceptor: %s", strerror(rc));
        goto fail;
    }
    s->started = true;
    log_info("started: %u workers, %u listeners", s->nworkers, s->nlisteners);
    return 0;
fail:
    server_teardown(s);
    return -1;
}

int server_port(const struct server *s, size_t listener)
{
    if (listener >= s->nlisteners)
        return -1;
    return s->listeners[listener].port;
}

unsigned server_workers(const struct server *s)
{
    return s->nworkers;
}

void server_stop(struct server *s)
{
    if (!s->started)
        return;
    s->started = false;

    /* 1. No new connections. */
    acceptor_stop(s->acceptor);
    for (unsigned i = 0; i < s->nlisteners; i++)
        listener_close_tcp(&s->listeners[i]);

    /* 2. Let open connections finish, up to shutdown_timeout_ms. */
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_signal(&s->workers[i], WORKER_DRAINING);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    uint64_t ms = s->cfg->shutdown_timeout_ms;
    deadline.tv_sec += (time_t)(ms / 1000);
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    size_t open = acceptor_active(s->acceptor);
    if (open)
        log_info("stopping: waiting up to %llu ms for %zu connections",
                 (unsigned long long)ms, open);
    bool late = false;
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        if (!late && pthread_timedjoin_np(w->thread, NULL, &deadline) == 0) {
            w->started = false;
            continue;
        }
        /* 3. Time is up: close what is left with reason "shutdown". */
        late = true;
        worker_signal(w, WORKER_CLOSING);
    }
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_join(&s->workers[i]);

    /* 4. Handlers' fini, then the rest of the resources. */
    server_fini_handlers(s);
    s->final_stats = calloc(s->nlisteners, sizeof *s->final_stats);
    for (unsigned i = 0; s->final_stats && i < s->nlisteners; i++) {
        struct server_stats *st = &s->final_stats[i];
        server_stats(s, i, st);
        const struct config_listener *lc = s->listeners[i].cfg;
        if (lc->protocol == CONFIG_TCP)
            log_write(WHARF_LOG_INFO, lc->name, -1, 0,
                      "%llu connections, %llu bytes in, %llu bytes out",
                      (unsigned long long)st->accepted, (unsigned long long)st->bytes_in,
                      (unsigned long long)st->bytes_out);
        else
            log_write(WHARF_LOG_INFO, lc->name, -1, 0,
                      "%llu datagrams in, %llu out, %llu dropped by the handler",
                      (unsigned long long)st->datagrams_in, (unsigned long long)st->datagrams_out,
                      (unsigned long long)st->datagrams_dropped);
    }
    s->stats_frozen = s->final_stats != NULL;
    server_teardown(s);
    log_info("stopped");
}

int server_stats(const struct server *s, size_t listener, struct server_stats *out)
{
    if (listener >= s->nlisteners)
        return -EINVAL;
    if (s->stats_frozen) {
        *out = s->final_stats[listener];
        return 0;
    }
    memset(out, 0, sizeof *out);
    out->rejected = atomic_load_explicit(&s->listeners[listener].rejected, memory_order_relaxed);
    for (unsigned i = 0; i < s->workers_inited; i++) {
        const struct worker_stats *w = &s->workers[i].stats[listener];
#define SUM(f) out->f += atomic_load_explicit(&w->f, memory_order_relaxed)
        SUM(accepted);
        SUM(open);
        SUM(bytes_in);
        SUM(bytes_out);
        SUM(output_buffered);
        SUM(datagrams_in);
        SUM(datagrams_out);
        SUM(datagrams_dropped);
        for (int r = 0; r < SERVER_CLOSE_REASONS; r++)
            SUM(closed[r]);
#undef SUM
    }
    return 0;
}

void server_free(struct server *s)
{
    if (!s)
        return;
    server_stop(s);
    server_fini_handlers(s);
    for (unsigned i = 0; i < s->nlisteners; i++) {
        listener_close(&s->listeners[i]);
        module_unload(s->listeners[i].module);
    }
    free(s->listeners);
    free(s->final_stats);
    pthread_mutex_destroy(&s->ready_lock);
    pthread_cond_destroy(&s->ready_cond);
    free(s);
}
