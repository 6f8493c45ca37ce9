/*
 * generation.c - building, binding and releasing generations (see
 * generation.h).
 */
#include "generation.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callback.h"
#include "listener_attach.h"
#include "log.h"
#include "module.h"
#include "worker.h"
#include "postq.h"
#include "tls_ctx.h"

int generation_new(struct config *cfg, uint64_t id, unsigned nworkers,
                   const struct wharf_handler *const *builtins, size_t nbuiltins,
                   struct state_registry *states, struct generation **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    struct generation *g = calloc(1, sizeof *g);
    if (!g) {
        config_free(cfg);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int code = -ENOMEM;
    atomic_init(&g->refs, 1);
    g->id = id;
    g->cfg = cfg;
    g->nworkers = nworkers;
    g->nlisteners = (unsigned)cfg->nlisteners;
    g->listeners = calloc(g->nlisteners, sizeof *g->listeners);
    g->worker_pins = calloc(nworkers ? nworkers : 1, sizeof *g->worker_pins);
    module_set_insecure(cfg->insecure_modules);
    if (!g->listeners || !g->worker_pins || state_set_init(&g->states, states) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < g->nlisteners; i++) {
        struct listener *l = &g->listeners[i];
        const struct config_listener *lc = &cfg->listeners[i];
        char why[1024];
        l->index = i;
        l->gen = g;
        l->cfg = lc;
        l->file = cfg->file;
        l->port = -1;
        code = module_load(lc->handler, cfg->module_path, lc->protocol, builtins, nbuiltins,
                           &l->module, why, sizeof why);
        if (code < 0) {
            snprintf(err, errlen, "%s: %s.handler: %s", cfg->file, lc->path, why);
            goto fail;
        }
        l->handler = l->module->handler;
        /* Certificates and keys are read here: -t, a start and a reload
         * all refuse a bad one before anything changes. */
        if (lc->tls.on && !(l->tls = tls_ctx_new(lc, cfg->file, err, errlen))) {
            code = -EINVAL;
            goto fail;
        }
        struct module_scope scope = {.l = l, .states = &g->states, .nworkers = nworkers};
        int rc;
        CALLBACK_RUN("init", l, -1, 0,
                     rc = module_init_listener(l->module, lc->options, &scope, &l->data, why,
                                               sizeof why));
        if (rc < 0) {
            char safe[sizeof why]; /* the handler's text: no control characters */
            snprintf(err, errlen, "%s: %s.options: %s", cfg->file, lc->path,
                     log_escape(safe, sizeof safe, why));
            code = -EINVAL;
            goto fail;
        }
        l->inited = true;
    }
    *out = g;
    return 0;
fail:
    generation_unref(g);
    return code;
}

const struct listener *generation_match(const struct generation *prev,
                                        const struct config_listener *cfg)
{
    for (unsigned i = 0; prev && i < prev->nlisteners; i++) {
        const struct listener *p = &prev->listeners[i];
        if (p->nfds > 0 && listener_same_socket(p, cfg))
            return p;
    }
    return NULL;
}

int generation_bind(struct generation *g, const struct generation *prev, char *err,
                    size_t errlen)
{
    int code;
    for (unsigned i = 0; i < g->nlisteners; i++) {
        struct listener *l = &g->listeners[i];
        const struct listener *keep = generation_match(prev, l->cfg);
        if (keep && l->cfg->protocol == CONFIG_TCP &&
            keep->cfg->accept_mode != l->cfg->accept_mode) {
            /* The kept sockets are one per worker or one in all: the other
             * kind cannot be bound beside them on the same port. */
            snprintf(err, errlen, "%s: %s.accept: cannot change from \"%s\" to \"%s\" on a "
                     "reload (the listening sockets are kept); restart the server", l->file,
                     l->cfg->path, keep->cfg->accept_mode ? "workers" : "acceptor",
                     l->cfg->accept_mode ? "workers" : "acceptor");
            code = -EINVAL;
            goto fail;
        }
        if ((code = listener_bind(l, keep, g->nworkers, err, errlen)) < 0)
            goto fail;
        if (keep) {
            l->stats = keep->stats;
            atomic_fetch_add(&l->stats->refs, 1);
        } else if (!(l->stats = listener_stats_new(g->nworkers))) {
            snprintf(err, errlen, "out of memory");
            code = -ENOMEM;
            goto fail;
        }
        if ((code = listener_attach(l, err, errlen)) < 0)
            goto fail;
    }
    return 0;
fail:
    for (unsigned i = 0; i < g->nlisteners; i++) {
        listener_close(&g->listeners[i]);
        listener_detach(&g->listeners[i]);
    }
    return code;
}

/* The end of a generation once no post queued before its fini can run:
 * its modules unload and its memory goes. */
static void generation_unload(void *arg)
{
    struct generation *g = arg;
    for (unsigned i = 0; g->listeners && i < g->nlisteners; i++) {
        listener_detach(&g->listeners[i]);
        tls_ctx_free(g->listeners[i].tls);
        module_unload(g->listeners[i].module);
    }
    if (g->id > 1)
        log_debug("generation %llu released", (unsigned long long)g->id);
    free(g->listeners);
    free(g->worker_pins);
    config_free(g->cfg);
    free(g);
}

void generation_ref(struct generation *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void generation_unref(struct generation *g)
{
    if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (unsigned i = 0; g->listeners && i < g->nlisteners; i++) {
        struct listener *l = &g->listeners[i];
        if (l->inited && l->handler->fini)
            CALLBACK_RUN("fini", l, -1, 0, l->handler->fini(l->data));
        l->inited = false;
    }
    /* After every fini, before any module unloads: a state's destroy runs
     * from this generation's module. */
    state_set_release(&g->states);
    for (unsigned i = 0; g->listeners && i < g->nlisteners; i++) {
        struct listener *l = &g->listeners[i];
        listener_close(l);
        listener_stats_unref(l->stats);
        l->stats = NULL;
    }
    /* Posts made without an origin (a handler's own threads, joined by
     * fini) may still be queued: the modules unload behind them. */
    if (postq_barrier(generation_unload, g) < 0)
        log_warn("generation %llu: out of memory: its modules stay loaded",
                 (unsigned long long)g->id);
}

/* Runs every listener's on_worker_start (or, in reverse, on_worker_stop) on w. */
static void generation_worker_hooks(struct generation *g, struct wharf_worker *w, bool start)
{
    for (unsigned k = 0; k < g->nlisteners; k++) {
        struct listener *l = &g->listeners[start ? k : g->nlisteners - 1 - k];
        if (!l->inited)
            continue;
        if (start && l->handler->on_worker_start)
            CALLBACK_RUN("on_worker_start", l, (int)w->id, 0,
                         l->handler->on_worker_start(l->data, w));
        else if (!start && l->handler->on_worker_stop)
            CALLBACK_RUN("on_worker_stop", l, (int)w->id, 0,
                         l->handler->on_worker_stop(l->data, w));
    }
}

void generation_worker_hold(struct generation *g, struct wharf_worker *w)
{
    if (!g || w->id >= g->nworkers)
        return;
    if (g->worker_pins[w->id]++ > 0)
        return;
    generation_ref(g);
    generation_worker_hooks(g, w, true);
}

void generation_worker_release(struct generation *g, struct wharf_worker *w)
{
    if (!g || w->id >= g->nworkers || g->worker_pins[w->id] == 0)
        return;
    if (--g->worker_pins[w->id] > 0)
        return;
    generation_worker_hooks(g, w, false);
    generation_unref(g);
}
