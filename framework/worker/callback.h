/*
 * callback.h - the one bracket around handler code, and what an in-flight
 * request keeps alive.
 *
 * Every piece of handler code the framework runs (a connection's callback,
 * a post, a timer, a job's work or done, init, fini, on_datagram) runs
 * inside CALLBACK_RUN: the crash report names it (crash.h), and the thread
 * knows whose code is running (callback_current).
 *
 * A request (a post, a worker timer, a blocking job, an outbound connect)
 * made by handler code records its origin: the listener whose code made it,
 * holding a reference to that listener's generation, so the module it
 * points into stays loaded until the request's callback (or its
 * cancellation) has run and the origin is dropped.  A request made outside
 * any callback (a thread of the handler's own) has no origin: nothing is
 * pinned.
 */
#ifndef WHARF_CALLBACK_H
#define WHARF_CALLBACK_H

#include <stdbool.h>
#include <stdint.h>

#include "crash.h"

struct listener;

/* Who made a request: a listener (its generation referenced), or none. */
struct callback_origin {
    struct listener *l;
};

/* The listener whose handler code runs on this thread now, or NULL. */
struct listener *callback_current(void);

/* Records the running callback's listener as o's origin, referencing its
 * generation (o->l = NULL outside any callback).  Returns false, with no
 * origin, when that generation is ending (its fini is running): a request
 * that runs handler code later than its posts could (a timer, a job) must
 * then be refused, since the module unloads behind the posts only. */
bool callback_origin_take(struct callback_origin *o);
/* Drops o's reference (the request's callback or cancellation has run);
 * may run the generation's fini and unload its module.  Safe on none. */
void callback_origin_drop(struct callback_origin *o);

/* Fills a crash frame for `what` run on behalf of listener l (may be NULL)
 * on worker `worker` (-1: not a worker) for connection `conn` (0: none). */
void callback_frame(struct crash_frame *f, const char *what, struct listener *l, int worker,
                    uint64_t conn);

/* Runs `call` as handler code of listener l (may be NULL). */
#define CALLBACK_RUN(what, l, worker, conn, call)                                          \
    do {                                                                                   \
        struct crash_frame cb_frame_;                                                      \
        callback_frame(&cb_frame_, (what), (l), (worker), (conn));                        \
        crash_enter(&cb_frame_);                                                           \
        call;                                                                              \
        crash_leave(&cb_frame_);                                                           \
    } while (0)

#endif
