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
#include "wharf.h"

struct generation {
    _Atomic unsigned long refs;
    uint64_t id;                         /* 1 for the first, +1 per reload */
    struct config *cfg;                  /* owned */
    struct listener *listeners;          /* [nlisteners], in config order */
    unsigned nlisteners;
    unsigned nworkers;
};

/*
 * Builds generation `id` from cfg (taken over, even on failure): loads each
 * listener's handler (one of `builtins` by name, else a module file) and
 * runs its init.  Binds nothing.  Returns 0 and the generation (one
 * reference) in *out, or -1 with one line in err, e.g.
 *   config/x.json: listeners[0].handler: cannot load "nope": not found in ...
 */
int generation_new(struct config *cfg, uint64_t id, unsigned nworkers,
                   const struct wharf_handler *const *builtins, size_t nbuiltins,
                   struct generation **out, char *err, size_t errlen);

/*
 * Gives every listener its sockets: a listener that `prev` (may be NULL) has
 * with the same protocol, address and port keeps prev's sockets and
 * counters; the others are bound anew.  Returns 0, or -1 with a line in err
 * (then no socket of g is left open, and prev is untouched).
 */
int generation_bind(struct generation *g, const struct generation *prev, char *err,
                    size_t errlen);

/* The listener of prev that l keeps, or NULL. */
const struct listener *generation_match(const struct generation *prev,
                                        const struct config_listener *cfg);

/* Reference counting; the last unref runs fini and frees (see above). */
void generation_ref(struct generation *g);
void generation_unref(struct generation *g);

#endif
