/*
 * conn_evict.c - making room at max_connections (evict_idle_ms): which of a
 * worker's connections goes first, and closing it when asked.
 *
 * When the server is full, a waiting newcomer should not starve behind
 * connections that do nothing: a slowloris that never finishes a message,
 * a client that connected and went silent, a kept-alive client between
 * requests.  Each worker keeps its accepted connections in one list ordered
 * by their last progress (the handler consumed input, or bytes of output
 * were written; accepting counts as the first), oldest first: progress
 * moves a connection to the tail, so the list is ordered by construction
 * and every step is O(1).  The worker publishes the head's progress time in
 * the admission object; the acceptor, finding no room while a connection
 * waits, picks the worker whose head is oldest and past evict_idle_ms and
 * posts it an eviction (worker.c).  The worker closes its head (reason
 * "evicted") if it still qualifies; the teardown at the end of that loop
 * turn releases the admission slot, which wakes the acceptor.  So a
 * connection that made progress more recently than another is never
 * evicted before it, and one that made progress within evict_idle_ms is
 * never evicted at all.  Outbound connections (never admitted) are not
 * listed: closing one would free no slot.
 *
 * Everything here runs on the worker that owns the connections.
 */
#include <stdint.h>

#include "conn.h"
#include "admission.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

/* The connection that would be evicted first on w, or NULL. */
static struct wharf_conn *conn_evict_head(struct conn_set *set)
{
    if (wharf_list_empty(&set->by_progress))
        return NULL;
    return wharf_list_entry(set->by_progress.next, struct wharf_conn, progress_link);
}

/* Tells the acceptor when w's first candidate last made progress. */
static void conn_evict_publish(struct wharf_worker *w)
{
    struct wharf_conn *head = conn_evict_head(&w->conns);
    admission_set_stalled(w->admission, w->id, head ? head->progress_ms : UINT64_MAX);
}

void conn_evict_track(struct wharf_conn *c)
{
    struct conn_set *set = &c->w->conns;
    bool first = wharf_list_empty(&set->by_progress);
    c->progress_ms = c->w->loop.now_ms;
    wharf_list_insert_tail(&set->by_progress, &c->progress_link);
    if (first)
        conn_evict_publish(c->w);
}

void conn_evict_progress(struct wharf_conn *c)
{
    uint64_t now = c->w->loop.now_ms;
    if (c->progress_ms == now || !wharf_list_linked(&c->progress_link))
        return;
    struct conn_set *set = &c->w->conns;
    bool was_head = set->by_progress.next == &c->progress_link;
    c->progress_ms = now;
    wharf_list_remove(&c->progress_link);
    wharf_list_insert_tail(&set->by_progress, &c->progress_link);
    if (was_head)
        conn_evict_publish(c->w);
}

void conn_evict_untrack(struct wharf_conn *c)
{
    if (!wharf_list_linked(&c->progress_link))
        return;
    bool was_head = c->w->conns.by_progress.next == &c->progress_link;
    wharf_list_remove(&c->progress_link);
    if (was_head)
        conn_evict_publish(c->w);
}

bool conn_evict_one(struct wharf_worker *w, uint64_t idle_ms)
{
    struct conn_set *set = &w->conns;
    struct wharf_conn *c = conn_evict_head(set);
    uint64_t now = w->loop.now_ms;
    if (!c || idle_ms == 0 || now - c->progress_ms < idle_ms || w->phase != WORKER_RUNNING) {
        conn_evict_publish(w); /* the acceptor's view was stale: correct it */
        return false;
    }
    set->evicted_unlogged++;
    if (log_due(&set->last_evict_log_ms, now, LOG_RATE_LIMIT_MS)) {
        char addr[64];
        listener_format_addr(&c->peer.sa, addr, sizeof addr);
        log_write(WHARF_LOG_WARN, conn_name(c), (int)w->id, c->id,
                  "max_connections reached: evicted %s (no progress for %llu ms, "
                  "evict_idle_ms %llu) to admit a new connection; %llu evicted by this "
                  "worker since the last such line",
                  addr, (unsigned long long)(now - c->progress_ms),
                  (unsigned long long)idle_ms, (unsigned long long)set->evicted_unlogged);
        set->evicted_unlogged = 0;
    }
    conn_close(c, WHARF_CLOSE_EVICTED); /* untracks it: the next head is published */
    return true;
}
