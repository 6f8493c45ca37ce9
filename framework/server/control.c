/*
 * control.c - the runtime commands (wharf_server_command, wharf_server.h),
 * in the spirit of HAProxy's runtime API: what a running server serves
 * (listeners, workers, connections, generations, limits) and the few
 * changes an operator makes without a reload (pause, drain or resume a
 * listener, close a connection).  wharfd serves them on its admin socket
 * (framework/daemon/admin.c), which adds reload, set log-level and quit.
 *
 * Listener-level reads come from the shared counters (as metrics.c reads
 * them, through server_view).  What only a worker may touch, its
 * connections, is asked of each worker through its mailbox: the command
 * waits (bounded, CONTROL_WAIT_MS) until every worker has answered with
 * its part of the reply; a worker that answers late skips its part
 * (rendezvous_begin), so nothing is written after the wait gave up.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "acceptor.h"
#include "admission.h"
#include "conn.h"
#include "generation.h"
#include "listener.h"
#include "log.h"
#include "rendezvous.h"
#include "server.h"
#include "worker.h"

#define CONTROL_WAIT_MS 2000   /* how long a command waits for the workers */
#define CONTROL_MAX_CONNS 10000 /* connections listed by one "show conns" */
#define CONTROL_MAX_WORKERS 1024

/* A growable reply; on ENOMEM it is marked failed and the rest skipped. */
struct control_text {
    char *p;
    size_t len, cap;
    bool failed;
};

static void control_printf(struct control_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void control_printf(struct control_text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

/* ---- asking every worker ------------------------------------------------------- */

enum control_op { CONTROL_LIST, CONTROL_CLOSE, CONTROL_DRAIN, CONTROL_GENERATIONS };

#define CONTROL_MAX_GENS 64 /* generations counted by one "show generations" */

/* One command's question to the workers; each writes only its own part. */
struct control_job {
    enum control_op op;
    const char *listener;         /* CONTROL_LIST / DRAIN: only this one (NULL: all) */
    uint64_t id;                  /* CONTROL_CLOSE */
    struct control_text part[CONTROL_MAX_WORKERS];
    size_t found[CONTROL_MAX_WORKERS]; /* connections listed, closed or drained */
};

/* What travels in the mailbox: the rendezvous first, so that a late
 * worker never touches a job the waiter has freed. */
struct control_msg {
    struct rendezvous *done;
    struct control_job *job;
};

static const char *control_state(const struct wharf_conn *c)
{
    if (c->state == CONN_PENDING)
        return "pending";
    if (c->state != CONN_OPEN)
        return "closing";
    if (c->flags & CONN_PROXY_WAIT)
        return "proxy";
    if (c->flags & (CONN_PAUSED_HANDLER | CONN_PAUSED_OUTPUT | CONN_HELD))
        return "paused";
    if (c->in.len > 0 || conn_pending(c) > 0)
        return "busy";
    return "idle";
}

static void control_list_one(struct wharf_worker *w, struct wharf_conn *c,
                             struct control_text *t)
{
    char peer[80];
    listener_format_addr(&c->peer.sa, peer, sizeof peer);
    uint64_t now = w->loop.now_ms;
    uint64_t last = c->last_read_ms > c->last_write_ms ? c->last_read_ms : c->last_write_ms;
    if (last < c->opened_ms)
        last = c->opened_ms;
    control_printf(t, "%llu %s %u %llu %s %s %llu %llu %llu %llu\n",
                   (unsigned long long)c->id, c->l->cfg->name, w->id,
                   (unsigned long long)c->l->gen->id, control_state(c), peer,
                   (unsigned long long)(now - c->opened_ms), (unsigned long long)(now - last),
                   (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
}

/* Worker w's connections per generation, as "ID COUNT" lines. */
static void control_count_generations(struct wharf_worker *w, struct control_text *t)
{
    uint64_t ids[CONTROL_MAX_GENS], counts[CONTROL_MAX_GENS];
    unsigned n = 0;
    struct wharf_list *it;
    wharf_list_foreach(it, &w->conns.all) {
        struct wharf_conn *c = wharf_list_entry(it, struct wharf_conn, link);
        if (conn_dead(c))
            continue;
        unsigned k = 0;
        while (k < n && ids[k] != c->l->gen->id)
            k++;
        if (k == n && n < CONTROL_MAX_GENS)
            ids[n] = c->l->gen->id, counts[n++] = 0;
        if (k < n)
            counts[k]++;
    }
    for (unsigned k = 0; k < n; k++)
        control_printf(t, "%llu %llu\n", (unsigned long long)ids[k],
                       (unsigned long long)counts[k]);
}

/* Runs on worker w: its part of the job. */
static void control_on_worker(struct wharf_worker *w, struct control_job *job)
{
    struct control_text *t = &job->part[w->id];
    if (job->op == CONTROL_CLOSE) {
        struct wharf_conn *c = conn_find(w, job->id);
        if (c && !(c->flags & CONN_OUTBOUND)) {
            log_write(WHARF_LOG_INFO, c->l->cfg->name, (int)w->id, c->id,
                      "closed by the admin interface");
            conn_close(c, WHARF_CLOSE_SHUTDOWN);
            job->found[w->id]++;
        }
        return;
    }
    if (job->op == CONTROL_GENERATIONS) {
        control_count_generations(w, t);
        return;
    }
    struct wharf_list *it;
    wharf_list_foreach(it, &w->conns.all) {
        struct wharf_conn *c = wharf_list_entry(it, struct wharf_conn, link);
        if (conn_dead(c) || (c->flags & CONN_OUTBOUND) ||
            (job->listener && strcmp(job->listener, c->l->cfg->name) != 0))
            continue;
        if (job->op == CONTROL_DRAIN) {
            if (strcmp(control_state(c), "idle") == 0) {
                conn_close(c, WHARF_CLOSE_SHUTDOWN);
                job->found[w->id]++;
            }
        } else if (job->found[w->id]++ < CONTROL_MAX_CONNS) {
            control_list_one(w, c, t);
        }
    }
}

static void control_on_msg(void *arg, void *payload, bool cancelled)
{
    struct wharf_worker *w = arg;
    struct control_msg *m = payload;
    if (cancelled || !rendezvous_begin(m->done)) {
        rendezvous_done(m->done);
        return;
    }
    control_on_worker(w, m->job);
    rendezvous_end(m->done, true);
}

/* Asks every worker of v for its part of job.  Returns 0, -ETIMEDOUT or
 * -ENOMEM. */
static int control_ask(const struct server_view *v, struct control_job *job)
{
    struct rendezvous *r = rendezvous_new(v->nworkers);
    if (!r)
        return -ENOMEM;
    for (unsigned i = 0; i < v->nworkers; i++) {
        struct control_msg m = {r, job};
        if (loop_post_urgent(&v->workers[i].loop, control_on_msg, &v->workers[i], &m,
                             sizeof m) < 0)
            rendezvous_done(r);
    }
    bool ok = rendezvous_settle(r, CONTROL_WAIT_MS);
    rendezvous_release(r);
    return ok ? 0 : -ETIMEDOUT;
}

static struct control_job *control_job_new(enum control_op op)
{
    struct control_job *job = calloc(1, sizeof *job);
    if (job)
        job->op = op;
    return job;
}

static void control_job_free(struct control_job *job)
{
    for (unsigned i = 0; job && i < CONTROL_MAX_WORKERS; i++)
        free(job->part[i].p);
    free(job);
}

static size_t control_job_found(const struct control_job *job, unsigned nworkers)
{
    size_t n = 0;
    for (unsigned i = 0; i < nworkers; i++)
        n += job->found[i];
    return n;
}

/* ---- the commands ---------------------------------------------------------------- */

/* The listener called name in g, or NULL. */
static struct listener *control_listener(struct generation *g, const char *name)
{
    for (unsigned i = 0; name && i < g->nlisteners; i++)
        if (strcmp(g->listeners[i].cfg->name, name) == 0)
            return &g->listeners[i];
    return NULL;
}

static const char *const admin_names[] = {"accepting", "paused", "draining"};

static int control_show_listeners(const struct server_view *v, struct control_text *t)
{
    control_printf(t, "# name protocol address port handler state open accepted rejected "
                      "bytes_in bytes_out datagrams_in\n");
    for (unsigned i = 0; i < v->gen->nlisteners; i++) {
        struct listener *l = &v->gen->listeners[i];
        struct wharf_listener_stats st;
        memset(&st, 0, sizeof st);
        for (unsigned k = 0; l->stats && k < l->stats->nworkers; k++) {
            const struct listener_counters *c = &l->stats->workers[k];
            st.open += atomic_load_explicit(&c->open, memory_order_relaxed);
            st.accepted += atomic_load_explicit(&c->accepted, memory_order_relaxed);
            st.bytes_in += atomic_load_explicit(&c->bytes_in, memory_order_relaxed);
            st.bytes_out += atomic_load_explicit(&c->bytes_out, memory_order_relaxed);
            st.datagrams_in += atomic_load_explicit(&c->datagrams_in, memory_order_relaxed);
        }
        if (l->stats)
            st.rejected = atomic_load(&l->stats->rejected) + atomic_load(&l->stats->denied);
        int admin = l->stats ? atomic_load(&l->stats->admin) : 0;
        control_printf(t, "%s %s %s %d %s %s %llu %llu %llu %llu %llu %llu\n", l->cfg->name,
                       l->cfg->protocol == CONFIG_UDP ? "udp" : "tcp", l->cfg->address, l->port,
                       l->cfg->handler, l->cfg->protocol == CONFIG_UDP ? "-" : admin_names[admin],
                       (unsigned long long)st.open, (unsigned long long)st.accepted,
                       (unsigned long long)st.rejected, (unsigned long long)st.bytes_in,
                       (unsigned long long)st.bytes_out, (unsigned long long)st.datagrams_in);
    }
    return 0;
}

static int control_show_workers(const struct server_view *v, struct control_text *t)
{
    control_printf(t, "# worker connections queued queue_depth\n");
    for (unsigned i = 0; i < v->nworkers; i++) {
        struct wharf_worker *w = &v->workers[i];
        control_printf(t, "%u %zu %zu %zu\n", w->id, admission_load(v->admission, i),
                       worker_queued(w), worker_queue_depth(w));
    }
    return 0;
}

/* "show conns [LISTENER]": one line per connection, then the count per
 * listener and state. */
static int control_show_conns(const struct server_view *v, const char *name,
                              struct control_text *t)
{
    if (name && !control_listener(v->gen, name)) {
        control_printf(t, "no listener \"%s\"\n", name);
        return -ENOENT;
    }
    struct control_job *job = control_job_new(CONTROL_LIST);
    if (!job)
        return -ENOMEM;
    job->listener = name;
    int rc = control_ask(v, job);
    if (rc < 0) {
        control_job_free(job);
        control_printf(t, "a worker did not answer in %d ms\n", CONTROL_WAIT_MS);
        return rc;
    }
    control_printf(t, "# id listener worker generation state peer age_ms idle_ms bytes_in "
                      "bytes_out\n");
    for (unsigned i = 0; i < v->nworkers; i++)
        if (job->part[i].p)
            control_printf(t, "%s", job->part[i].p);
    size_t n = control_job_found(job, v->nworkers);
    if (n > CONTROL_MAX_CONNS * v->nworkers)
        control_printf(t, "# (more than %d per worker: the rest not listed)\n",
                       CONTROL_MAX_CONNS);
    control_printf(t, "# total %zu\n", n);
    control_job_free(job);
    return 0;
}

static int control_show_generations(const struct server_view *v, struct control_text *t)
{
    struct control_job *job = control_job_new(CONTROL_GENERATIONS);
    if (!job)
        return -ENOMEM;
    int rc = control_ask(v, job);
    if (rc < 0) {
        control_job_free(job);
        control_printf(t, "a worker did not answer in %d ms\n", CONTROL_WAIT_MS);
        return rc;
    }
    /* The workers' "ID COUNT" lines, summed. */
    uint64_t ids[CONTROL_MAX_GENS], counts[CONTROL_MAX_GENS];
    unsigned n = 0;
    for (unsigned i = 0; i < v->nworkers; i++) {
        for (char *line = job->part[i].p; line && *line; line = strchr(line, '\n') + 1) {
            unsigned long long gid, count;
            if (sscanf(line, "%llu %llu", &gid, &count) != 2)
                continue;
            unsigned k = 0;
            while (k < n && ids[k] != gid)
                k++;
            if (k == n && n < CONTROL_MAX_GENS)
                ids[n] = gid, counts[n++] = 0;
            if (k < n)
                counts[k] += count;
        }
    }
    control_printf(t, "# generation state connections listeners reloads reloads_failed\n");
    uint64_t cur_conns = 0;
    for (unsigned k = 0; k < n; k++)
        if (ids[k] == v->gen->id)
            cur_conns = counts[k];
    control_printf(t, "%llu current %llu %u %llu %llu\n", (unsigned long long)v->gen->id,
                   (unsigned long long)cur_conns, v->gen->nlisteners,
                   (unsigned long long)v->reloads, (unsigned long long)v->reloads_failed);
    for (unsigned k = 0; k < n; k++)
        if (ids[k] != v->gen->id)
            control_printf(t, "%llu old %llu - - -\n", (unsigned long long)ids[k],
                           (unsigned long long)counts[k]);
    control_job_free(job);
    return 0;
}

static int control_show_limits(const struct server_view *v, struct control_text *t)
{
    const struct config *cfg = v->gen->cfg;
    struct rlimit nofile = {0, 0};
    getrlimit(RLIMIT_NOFILE, &nofile);
    control_printf(t, "workers %u\n", v->nworkers);
    control_printf(t, "queue_depth %d\n", cfg->queue_depth);
    control_printf(t, "max_connections %d (open %zu)\n", cfg->max_connections,
                   admission_open(v->admission));
    control_printf(t, "max_connections_per_source %d\n", cfg->max_connections_per_source);
    control_printf(t, "evict_idle_ms %llu\n", (unsigned long long)cfg->evict_idle_ms);
    control_printf(t, "output_budget %zu (held %zu)\n", admission_output_budget(v->admission),
                   admission_output_total(v->admission));
    control_printf(t, "shutdown_timeout_ms %llu\n",
                   (unsigned long long)cfg->shutdown_timeout_ms);
    control_printf(t, "nofile %llu\n", (unsigned long long)nofile.rlim_cur);
    for (unsigned i = 0; i < v->gen->nlisteners; i++) {
        const struct config_listener *lc = v->gen->listeners[i].cfg;
        control_printf(t, "listener %s backlog %d max_input %zu max_output %zu "
                          "rate_limit %llu idle_ms %llu\n",
                       lc->name, lc->backlog, lc->max_input, lc->max_output,
                       (unsigned long long)lc->rate_limit,
                       (unsigned long long)lc->timeouts.idle_ms);
    }
    return 0;
}

/* pause / resume / drain listener NAME|*. */
static int control_set_listener(const struct server_view *v, enum listener_admin to,
                                const char *name, struct control_text *t)
{
    unsigned changed = 0;
    for (unsigned i = 0; i < v->gen->nlisteners; i++) {
        struct listener *l = &v->gen->listeners[i];
        if ((strcmp(name, "*") != 0 && strcmp(name, l->cfg->name) != 0) ||
            l->cfg->protocol != CONFIG_TCP || !l->stats)
            continue;
        atomic_store(&l->stats->admin, to);
        changed++;
    }
    if (!changed) {
        control_printf(t, "no TCP listener \"%s\"\n", name);
        return -ENOENT;
    }
    int rc = acceptor_refresh(v->acceptor);
    if (rc < 0) {
        control_printf(t, "cannot reach the acceptor: %s\n", strerror(-rc));
        return rc;
    }
    /* Listeners whose workers accept themselves ("accept": "workers"). */
    for (unsigned i = 0; i < v->nworkers && rc == 0; i++)
        rc = worker_accept_post_refresh(&v->workers[i]);
    if (rc < 0) {
        control_printf(t, "cannot reach a worker: %s\n", strerror(-rc));
        return rc;
    }
    size_t closed = 0;
    if (to == LISTENER_DRAINING) {
        struct control_job *job = control_job_new(CONTROL_DRAIN);
        if (!job)
            return -ENOMEM;
        job->listener = strcmp(name, "*") == 0 ? NULL : name;
        rc = control_ask(v, job);
        closed = control_job_found(job, v->nworkers);
        control_job_free(job);
        if (rc < 0) {
            control_printf(t, "a worker did not answer in %d ms\n", CONTROL_WAIT_MS);
            return rc;
        }
    }
    log_info("listener %s: %s (runtime command)", name, admin_names[to]);
    if (to == LISTENER_DRAINING)
        control_printf(t, "%u listener(s) draining, %zu idle connection(s) closed\n", changed,
                       closed);
    else
        control_printf(t, "%u listener(s) %s\n", changed, admin_names[to]);
    return 0;
}

static int control_close_conn(const struct server_view *v, const char *arg,
                              struct control_text *t)
{
    char *end;
    unsigned long long id = arg ? strtoull(arg, &end, 10) : 0;
    if (!arg || *end || id == 0) {
        control_printf(t, "close conn: expected a connection id (show conns), got \"%s\"\n",
                       arg ? arg : "");
        return -EINVAL;
    }
    struct control_job *job = control_job_new(CONTROL_CLOSE);
    if (!job)
        return -ENOMEM;
    job->id = id;
    int rc = control_ask(v, job);
    size_t found = control_job_found(job, v->nworkers);
    control_job_free(job);
    if (rc < 0)
        control_printf(t, "a worker did not answer in %d ms\n", CONTROL_WAIT_MS);
    else if (!found)
        control_printf(t, "no connection %llu\n", id), rc = -ENOENT;
    else
        control_printf(t, "connection %llu closed\n", id);
    return rc;
}

/* Splits line into at most 4 words (in place).  Returns how many, or -1
 * when there are more. */
static int control_words(char *line, char **w)
{
    int n = 0;
    for (char *save = NULL, *p = strtok_r(line, " \t\r\n", &save); p;
         p = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == 4)
            return -1;
        w[n++] = p;
    }
    return n;
}

static int control_run(const struct server_view *v, int n, char **w, struct control_text *t)
{
    bool show = n >= 2 && strcmp(w[0], "show") == 0;
    if (show && n == 2 && strcmp(w[1], "listeners") == 0)
        return control_show_listeners(v, t);
    if (show && n == 2 && strcmp(w[1], "workers") == 0)
        return control_show_workers(v, t);
    if (show && n <= 3 && strcmp(w[1], "conns") == 0)
        return control_show_conns(v, n == 3 ? w[2] : NULL, t);
    if (show && n == 2 && strcmp(w[1], "generations") == 0)
        return control_show_generations(v, t);
    if (show && n == 2 && strcmp(w[1], "limits") == 0)
        return control_show_limits(v, t);
    if (n == 3 && strcmp(w[1], "listener") == 0) {
        if (strcmp(w[0], "pause") == 0)
            return control_set_listener(v, LISTENER_PAUSED, w[2], t);
        if (strcmp(w[0], "resume") == 0)
            return control_set_listener(v, LISTENER_ACCEPTING, w[2], t);
        if (strcmp(w[0], "drain") == 0)
            return control_set_listener(v, LISTENER_DRAINING, w[2], t);
    }
    if (n >= 2 && n <= 3 && strcmp(w[0], "close") == 0 && strcmp(w[1], "conn") == 0)
        return control_close_conn(v, n == 3 ? w[2] : NULL, t);
    control_printf(t, "unknown command: try show listeners|workers|conns [LISTENER]|"
                      "generations|limits, pause|resume|drain listener NAME|*, "
                      "close conn ID\n");
    return -EINVAL;
}

int wharf_server_command(wharf_server *srv, const char *line, char **reply)
{
    struct control_text t = {0};
    char buf[512];
    char *w[4];
    int rc;
    *reply = NULL;
    if (!line || strlen(line) >= sizeof buf) {
        control_printf(&t, "command too long (at most %zu bytes)\n", sizeof buf - 1);
        rc = -EINVAL;
    } else if (!server_started(srv)) {
        control_printf(&t, "the server is not running\n");
        rc = -ESRCH;
    } else {
        strcpy(buf, line);
        int n = control_words(buf, w);
        struct server_view v;
        server_view(srv, &v);
        if (!v.gen || v.nworkers > CONTROL_MAX_WORKERS) {
            control_printf(&t, "the server is not running\n");
            rc = -ESRCH;
        } else {
            rc = control_run(&v, n < 0 ? 0 : n, w, &t);
        }
        generation_unref(v.gen);
    }
    if (t.failed) {
        free(t.p);
        return -ENOMEM;
    }
    *reply = t.p;
    return rc;
}
