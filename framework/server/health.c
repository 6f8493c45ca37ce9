/*
 * health.c - wharf_health_accepting: whether the server takes new
 * connections now, the half of readiness the framework knows (the metrics
 * handler's /readyz adds the other half: every worker answers a post in
 * time).  Not accepting: the calling worker is stopping, there is no
 * configuration, or the acceptor has paused (max_connections reached, every
 * worker's queue full, or out of descriptors).
 */
#include <stdio.h>

#include "generation.h"
#include "server.h"
#include "worker.h"

bool wharf_health_accepting(const wharf_worker *w, char *why, size_t whylen)
{
    const char *reason = NULL;
    struct server_view v = {0};
    if (!w || !w->server)
        reason = "not a server's worker";
    else if (w->phase != WORKER_RUNNING) /* the owner's field: w is the caller's worker */
        reason = "stopping";
    else {
        server_view(w->server, &v);
        if (!v.gen || v.gen->nlisteners == 0)
            reason = "no configuration";
        else if (v.accept_paused)
            reason = "accepting paused (max_connections reached, every worker queue full, "
                     "or out of descriptors)";
        generation_unref(v.gen);
    }
    if (reason && why && whylen)
        snprintf(why, whylen, "%s", reason);
    return reason == NULL;
}
