/*
 * conn_budget.c - the server-wide output budget (output_budget): which
 * connections close when output buffered by all of them passes it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "admission.h"
#include "log.h"
#include "worker.h"

/* Output with no write progress for this long is "stalled": the output
 * budget closes only those, the longest-waiting first. */
#define CONN_STALL_MS 100

static void conn_budget_on_post(void *arg, void *payload, bool cancelled);

/* Whether a is a worse holder of pending output than b (NULL): the one
 * waiting longest for any write progress, then the one holding most. */
static bool conn_budget_worse(const struct wharf_conn *a, const struct wharf_conn *b)
{
    if (!b)
        return true;
    if (a->last_write_ms != b->last_write_ms)
        return a->last_write_ms < b->last_write_ms;
    return conn_out_held(a) > conn_out_held(b);
}

/*
 * The server's output memory is over its budget (output_budget): closes
 * (reason "limit") this worker's connections whose output has waited
 * longest for any write progress, among those stalled for CONN_STALL_MS,
 * until the total would be back under the budget.  A reader that keeps up
 * is written to every turn and so is never chosen, however much it holds
 * for a moment.  When the total is still over (nothing here is stalled
 * yet, or the output is held on other workers), it looks again in
 * CONN_STALL_MS and asks the other workers to look too.  Runs when this
 * worker's output grows over the budget, on that timer, and on a sibling's
 * request.
 */
void conn_budget_check(struct wharf_worker *w)
{
    struct conn_set *set = &w->conns;
    size_t budget = admission_output_budget(w->admission);
    size_t total = admission_output_total(w->admission), freed = 0;
    uint64_t now = w->loop.now_ms;
    if (w->phase >= WORKER_CLOSING)
        return; /* everything closes anyway */
    while (budget && total > budget + freed) {
        struct wharf_conn *worst = NULL;
        struct wharf_list *it;
        wharf_list_foreach(it, &set->all) {
            struct wharf_conn *c = wharf_list_entry(it, struct wharf_conn, link);
            if (!conn_dead(c) && conn_out_len(c) > 0 && now - c->last_write_ms >= CONN_STALL_MS &&
                conn_budget_worse(c, worst))
                worst = c;
        }
        if (!worst)
            break;
        if (log_due(&set->last_budget_log_ms, now, LOG_RATE_LIMIT_MS))
            log_write(WHARF_LOG_WARN, conn_name(worst), (int)w->id, worst->id,
                      "output budget of %zu bytes exceeded: closing the connection whose output "
                      "waited longest (%zu bytes held, nothing written for %llu ms; logged at "
                      "most every %d s)",
                      budget, conn_out_held(worst), (unsigned long long)(now - worst->last_write_ms),
                      LOG_RATE_LIMIT_MS / 1000);
        freed += conn_out_held(worst);
        conn_close(worst, WHARF_CLOSE_LIMIT);
    }
    if (!budget || total <= budget + freed || timer_armed(&set->budget_timer))
        return;
    if (loop_timer_arm(&w->loop, &set->budget_timer, now + CONN_STALL_MS) < 0)
        return;
    for (unsigned i = 0; w->siblings && i < w->nworkers; i++)
        if (&w->siblings[i] != w)
            loop_post(&w->siblings[i].loop, conn_budget_on_post, &w->siblings[i], NULL, 0);
}

void conn_budget_on_timer(struct timer *t, uint64_t now)
{
    (void)now;
    struct conn_set *set = (struct conn_set *)((char *)t - offsetof(struct conn_set, budget_timer));
    conn_budget_check((struct wharf_worker *)((char *)set - offsetof(struct wharf_worker, conns)));
}

static void conn_budget_on_post(void *arg, void *payload, bool cancelled)
{
    (void)payload;
    if (!cancelled)
        conn_budget_check(arg);
}
