/*
 * generation.h - an immutable, reference-counted snapshot of what a server
 * runs: the configuration, the listeners with their sockets, the loaded
 * handler modules and each listener's init data (the idea of nginx's cycle).
 *
 * A reload builds a new generation completely (modules loaded, inits run,
 * sockets bound or taken over) before anything switches; on any error the
 * new one is dropped and the old one keeps serving untouched.  Every
 * connection holds a reference to the generation it was accepted in, each
 * worker to the one its UDP sockets come from, the acceptor to the one it
 * accepts for and the server to the current one.  When the last reference
 * goes, every handler's fini runs (on the thread that dropped it: the
 * server's at stop, or the worker that closed the generation's last
 * connection or ran its last request after a reload), then the sockets
 * close, and the modules unload once every worker has run the posts queued
 * before then (postq_barrier; at once when no worker runs).  Requests
 * (posts, worker timers, jobs) hold a reference through their origin
 * (callback.h).
 * Nothing reads the config file's structures after a generation is built.
 */
#ifndef WHARF_GENERATION_H
#define WHARF_GENERATION_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "listener.h"
#include "state.h"
#include "wharf.h"

struct wharf_worker;

struct generation {
    _Atomic unsigned long refs;
    uint64_t id;                         /* 1 for the first, +1 per reload */
    struct config *cfg;                  /* owned */
    struct listener *listeners;          /* [nlisteners], in config order */
    unsigned nlisteners;
    unsigned nworkers;
    struct state_set states;             /* the named state its inits got */
    unsigned *worker_pins;               /* [nworkers]: why worker i serves it
                                          * (generation_worker_hold); slot i is
                                          * touched by worker i's thread only */
};

/*
 * Builds generation `id` from cfg (taken over, even on failure): loads each
 * listener's handler (one of `builtins` by name, else a module file) and
 * runs its init, which finds its named state in `states` (the server's
 * registry; NULL: a private one, for a generation that only checks a
 * config).  Binds nothing.  Returns 0 and the generation (one reference)
 * in *out, or a negative errno (-ENOENT: a handler not found; -EINVAL: a
 * module refused or an init that failed; -ENOMEM) with one line in err, e.g.
 *   config/x.json: listeners[0].handler: cannot load "nope": not found in ...
 */
int generation_new(struct config *cfg, uint64_t id, unsigned nworkers,
                   const struct wharf_handler *const *builtins, size_t nbuiltins,
                   struct state_registry *states, struct generation **out, char *err,
                   size_t errlen);

/*
 * Gives every listener its sockets: a listener that `prev` (may be NULL) has
 * with the same protocol, address and port keeps prev's sockets and
 * counters; the others are bound anew.  Returns 0, or listener_bind's
 * negative errno with a line in err (then no socket of g is left open, and
 * prev is untouched).
 */
int generation_bind(struct generation *g, const struct generation *prev, char *err,
                    size_t errlen);

/* The listener of prev that l keeps, or NULL. */
const struct listener *generation_match(const struct generation *prev,
                                        const struct config_listener *cfg);

/* Reference counting; the last unref runs fini, releases the named state
 * (destroying what no other generation holds) and frees (see above). */
void generation_ref(struct generation *g);
void generation_unref(struct generation *g);

/*
 * Worker w serves g for one more reason (g is the generation it adopted, or
 * a connection of g opened on w): with the first, every listener's
 * on_worker_start runs on w and w takes a reference to g.  Release drops a
 * reason: with the last, every on_worker_stop runs (listeners in reverse
 * order) and the reference goes, so fini always follows every
 * on_worker_stop.  Worker w's thread only (acting as w).
 */
void generation_worker_hold(struct generation *g, struct wharf_worker *w);
void generation_worker_release(struct generation *g, struct wharf_worker *w);

#endif
