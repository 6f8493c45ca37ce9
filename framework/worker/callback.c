/*
 * callback.c - the bracket around handler code and request origins (see
 * callback.h).
 */
#include "callback.h"

#include <stdatomic.h>
#include <stddef.h>

#include "generation.h"
#include "listener.h"

struct listener *callback_current(void)
{
    const struct crash_frame *f = crash_current();
    return f ? f->l : NULL;
}

bool callback_origin_take(struct callback_origin *o)
{
    o->l = callback_current();
    if (!o->l)
        return true;
    /* No reference comes back to life: inside fini (its generation has no
     * reference left) the request gets no origin. */
    struct generation *g = o->l->gen;
    unsigned long n = atomic_load(&g->refs);
    while (n > 0 && !atomic_compare_exchange_weak(&g->refs, &n, n + 1))
        ;
    if (n == 0)
        o->l = NULL;
    return n > 0;
}

void callback_origin_drop(struct callback_origin *o)
{
    struct listener *l = o->l;
    o->l = NULL;
    if (l)
        generation_unref(l->gen);
}

void callback_frame(struct crash_frame *f, const char *what, struct listener *l, int worker,
                    uint64_t conn)
{
    *f = (struct crash_frame){
        .callback = what,
        .listener = l ? l->cfg->name : "-",
        .handler = l ? l->handler->name : "-",
        .worker = worker,
        .conn = conn,
        .l = l,
    };
}
