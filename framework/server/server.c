/*
 * server.c - assembles and runs a server (see server.h and wharf_server.h):
 * generations, the admission counts, the worker pool and the acceptor, the
 * reload and the ordered graceful shutdown.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "acceptor.h"
#include "activation.h"
#include "admission.h"
#include "conn.h"
#include "callback.h"
#include "crash.h"
#include "generation.h"
#include "listener.h"
#include "log.h"
#include "log_syslog.h"
#include "loop.h"
#include "module.h"
#include "rendezvous.h"
#include "server.h"
#include "timer.h"
#include "worker.h"
#include "workpool.h"

/* How long a reload waits for the workers and the acceptor to take the new
 * generation before it gives up (server_set_reload_wait). */
#define RELOAD_WAIT_MS 10000
/* How long start-up waits for a started worker thread to run. */
#define START_WAIT_MS 10000
/* In-process handlers one server can register. */
#define SERVER_MAX_HANDLERS 64
/* Blocking jobs queued before wharf_queue_work says -EAGAIN. */
#define SERVER_WORK_QUEUE 4096

struct wharf_server {
    struct generation *gen;            /* current (a reference), or NULL */
    pthread_mutex_t gen_lock;          /* guards `gen` for stats readers */
    unsigned nworkers;
    size_t queue_depth;
    struct wharf_worker *workers;
    unsigned workers_inited;
    struct admission *admission;
    struct workpool *pool;
    struct acceptor *acceptor;
    bool started;
    int io;                            /* enum loop_io of the last check or start */
    bool log_file_from_config;         /* the log file is the config's log_file */
    time_t start_time;                 /* for metrics */
    uint64_t next_gen_id;
    uint64_t reload_wait_ms;           /* see RELOAD_WAIT_MS */
    _Atomic uint64_t reloads, reloads_failed;
    const struct wharf_handler *handlers[SERVER_MAX_HANDLERS];
    size_t nhandlers;
    struct state_registry *states;     /* named handler state across reloads */
    /* At stop the counters of the last generation are kept here. */
    struct wharf_listener_stats *final_stats;
    char **final_names;
    unsigned nfinal;
};

struct wharf_server *server_create(void)
{
    struct wharf_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->start_time = time(NULL);
    if (!(s->states = state_registry_new())) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->gen_lock, NULL);
    s->next_gen_id = 1;
    s->reload_wait_ms = RELOAD_WAIT_MS;
    return s;
}

int server_add_handler(struct wharf_server *s, const struct wharf_handler *h)
{
    if (!s || !h || !h->name || !*h->name || !module_abi_supported(h->abi_version))
        return -EINVAL;
    for (size_t i = 0; i < s->nhandlers; i++)
        if (strcmp(s->handlers[i]->name, h->name) == 0)
            return -EEXIST;
    if (s->nhandlers == SERVER_MAX_HANDLERS)
        return -ENOSPC;
    s->handlers[s->nhandlers++] = h;
    return 0;
}

/* Builds the next generation from cfg (taken over). */
static int server_build(struct wharf_server *s, struct config *cfg, struct generation **out,
                        char *err, size_t errlen)
{
    unsigned nworkers = s->nworkers ? s->nworkers : (cfg->workers > 0 ? (unsigned)cfg->workers : 1);
    return generation_new(cfg, s->next_gen_id, nworkers, s->handlers, s->nhandlers, s->states,
                          out, err, errlen);
}

int server_load(struct wharf_server *s, struct config *cfg, char *err, size_t errlen)
{
    if (s->gen) {
        config_free(cfg);
        snprintf(err, errlen, "server already configured");
        return -EALREADY;
    }
    s->queue_depth = (size_t)cfg->queue_depth;
    struct generation *g;
    int rc = server_build(s, cfg, &g, err, errlen);
    if (rc < 0)
        return rc;
    s->nworkers = g->nworkers;
    s->next_gen_id++;
    s->gen = g;
    return 0;
}

int server_new(struct config *cfg, struct wharf_server **out, char *err, size_t errlen)
{
    struct wharf_server *s = server_create();
    if (!s) {
        config_free(cfg);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = server_load(s, cfg, err, errlen);
    if (rc < 0) {
        server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Raises the soft open-file limit to the hard limit: each connection is a fd. */
static void server_raise_nofile(const struct wharf_server *s)
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
    int max = s->gen->cfg->max_connections;
    if (rl.rlim_cur != RLIM_INFINITY && (size_t)max + 64 > rl.rlim_cur)
        log_warn("max_connections is %d but the open file limit is %llu: accepts will pause "
                 "with EMFILE before max_connections is reached",
                 max, (unsigned long long)rl.rlim_cur);
}

/*
 * "user"/"group": looks both up and checks that this process may become
 * them, as the start will (and -t does).  Returns 0 with the ids (*uid is
 * (uid_t)-1 when there is nothing to switch: no "user", or already that
 * user), or -ENOENT (no such user or group) / -EPERM (not root) with a
 * line in err.
 */
static int server_check_user(const struct config *cfg, uid_t *uid, gid_t *gid, char *err,
                             size_t errlen)
{
    *uid = (uid_t)-1;
    if (!cfg->user)
        return 0;
    struct passwd *pw = getpwnam(cfg->user);
    if (!pw) {
        snprintf(err, errlen, "%s: user: no user \"%s\"", cfg->file, cfg->user);
        return -ENOENT;
    }
    *gid = pw->pw_gid;
    if (cfg->group) {
        struct group *gr = getgrnam(cfg->group);
        if (!gr) {
            snprintf(err, errlen, "%s: group: no group \"%s\"", cfg->file, cfg->group);
            return -ENOENT;
        }
        *gid = gr->gr_gid;
    }
    if (geteuid() != 0) {
        if (getuid() == pw->pw_uid && getgid() == *gid)
            return 0; /* already that user */
        snprintf(err, errlen, "%s: user: cannot become \"%s\" without running as root",
                 cfg->file, cfg->user);
        return -EPERM;
    }
    *uid = pw->pw_uid;
    return 0;
}

/*
 * "user"/"group": once every socket is bound (privileged ports included),
 * the process gives up root for good: supplementary groups, group, then
 * user.  Done before any worker thread exists.  The process stays dumpable
 * (PR_SET_DUMPABLE), so a crash still leaves a core.  Returns 0, or
 * -ENOENT (no such user or group), -EPERM or setuid's errno, with a line in
 * err.
 */
static int server_drop_privileges(const struct config *cfg, char *err, size_t errlen)
{
    uid_t uid;
    gid_t gid;
    int rc = server_check_user(cfg, &uid, &gid, err, errlen);
    if (rc < 0 || uid == (uid_t)-1)
        return rc;
    if (initgroups(cfg->user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        int code = errno;
        snprintf(err, errlen, "%s: user: cannot become \"%s\": %s", cfg->file, cfg->user,
                 strerror(code));
        return -code;
    }
    if (setuid(0) == 0) { /* must fail now */
        snprintf(err, errlen, "%s: user: root could be regained after the switch", cfg->file);
        return -EPERM;
    }
    /* setuid cleared the dumpable flag: without it a crash leaves no core
     * (and /proc/PID stays root's). */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        log_warn("user: cannot stay dumpable after the switch (no core on a crash): %s",
                 strerror(errno));
    log_info("running as user %s (uid %u, gid %u)", cfg->user, (unsigned)uid, (unsigned)gid);
    return 0;
}

/*
 * "io": the backend of this start's event loops (WHARF_IO in its place when
 * set).  io_uring asked for by name and unavailable refuses with the
 * reason; auto falls back to epoll and says why.  With `apply` the choice
 * is made the process's (loop_io_set) and logged, once per start.  Returns
 * 0 or -errno with a line in err.
 */
static int server_choose_io(struct wharf_server *s, const struct config *cfg, bool apply,
                            char *err, size_t errlen)
{
    enum loop_io got;
    bool named;
    char why[256];
    int rc = loop_io_choose((enum loop_io)cfg->io, &got, &named, why, sizeof why);
    if (rc < 0) {
        snprintf(err, errlen, "%s: io: %s", cfg->file, why);
        return rc;
    }
    s->io = (int)got;
    if (apply) {
        loop_io_set(got, named);
        if (why[0])
            log_warn("io: %s", why);
        log_info("io: event loops on %s", loop_io_name(got));
    }
    return 0;
}

/* Undoes a start, or finishes a stop: threads joined, everything freed. */
static void server_teardown(struct wharf_server *s)
{
    if (s->acceptor)
        acceptor_stop(s->acceptor);
    for (unsigned i = 0; i < s->workers_inited; i++)
        if (s->workers[i].started)
            worker_set_phase(&s->workers[i], WORKER_CLOSING);
    for (unsigned i = 0; i < s->workers_inited; i++)
        worker_join(&s->workers[i]);
    /* Blocking work not started is cancelled now, while its workers'
     * memory still exists. */
    workpool_free(s->pool);
    s->pool = NULL;
    for (unsigned i = 0; i < s->workers_inited; i++)
        worker_destroy(&s->workers[i]);
    s->workers_inited = 0;
    free(s->workers);
    s->workers = NULL;
    acceptor_free(s->acceptor);
    s->acceptor = NULL;
    admission_free(s->admission);
    s->admission = NULL;
}

/*
 * Prepares and starts every worker thread, then waits (bounded) until each
 * runs.  A worker that cannot start (pthread_create's EAGAIN under a limit
 * on threads, a UDP socket that cannot be watched) fails the start at once
 * with its reason; the rendezvous is reference-counted, so the threads
 * already started may count it down after this returns.  Returns 0 or a
 * negative errno with a line in err; the caller tears down what was started.
 */
static int server_start_workers(struct wharf_server *s, char *err, size_t errlen)
{
    struct rendezvous *ready = rendezvous_new(s->nworkers);
    if (!ready) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    unsigned handed = 0; /* parties of `ready` passed to a running thread */
    int rc = 0;
    for (unsigned i = 0; i < s->nworkers && rc == 0; i++) {
        struct wharf_worker *w = &s->workers[i];
        rc = worker_init(w, i, s->workers, s->nworkers, s->queue_depth, s->admission, s->pool,
                         err, errlen);
        if (rc < 0)
            break;
        w->server = s;
        worker_set_post_queue(w, (size_t)s->gen->cfg->post_queue);
        s->workers_inited++;
        rc = worker_start(w, s->gen, ready, err, errlen);
        handed += rc == 0;
    }
    for (unsigned i = handed; i < s->nworkers; i++)
        rendezvous_done(ready); /* the parties no thread will count down */
    if (rc == 0 && !rendezvous_wait(ready, START_WAIT_MS)) {
        snprintf(err, errlen, "a worker thread did not start running in %d ms", START_WAIT_MS);
        rc = -ETIMEDOUT;
    }
    rendezvous_release(ready);
    return rc;
}

int server_start(struct wharf_server *s, char *err, size_t errlen)
{
    if (!s->gen) {
        snprintf(err, errlen, "server has no configuration");
        return -EINVAL;
    }
    if (s->started || s->workers) {
        snprintf(err, errlen, "server already started");
        return -EALREADY;
    }
    const struct config *cfg = s->gen->cfg;
    int rc = server_choose_io(s, cfg, true, err, errlen);
    if (rc < 0)
        return rc;
    server_raise_nofile(s);
    activation_load(); /* sockets from systemd, if any */
    rc = generation_bind(s->gen, NULL, err, errlen);
    if (rc < 0)
        return rc;
    if (activation_unused() > 0)
        log_warn("socket activation: %d passed sockets match no listener (by name or "
                 "address); they stay unused", activation_unused());
    if ((rc = server_drop_privileges(cfg, err, errlen)) < 0) {
        for (unsigned i = 0; i < s->gen->nlisteners; i++)
            listener_close(&s->gen->listeners[i]);
        return rc;
    }

    s->workers = calloc(s->nworkers, sizeof *s->workers);
    s->admission = admission_new(s->nworkers, (size_t)cfg->max_connections,
                                 (size_t)cfg->max_connections_per_source);
    s->pool = workpool_new((unsigned)cfg->work_threads, SERVER_WORK_QUEUE);
    if (s->admission) {
        admission_set_output_budget(s->admission, cfg->output_budget);
        /* Workers that accept themselves wait for room through it. */
        admission_set_room_waker(s->admission, worker_accept_wake, s->workers);
    }
    if (!s->workers || !s->admission || !s->pool) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    s->acceptor = acceptor_new(s->workers, s->nworkers, s->admission);
    if (!s->acceptor) {
        rc = errno ? -errno : -ENOMEM;
        snprintf(err, errlen, "cannot create the acceptor: %s", strerror(-rc));
        goto fail;
    }
    if ((rc = server_start_workers(s, err, errlen)) < 0)
        goto fail;
    if ((rc = acceptor_start(s->acceptor, s->gen)) != 0) {
        snprintf(err, errlen, "cannot start the acceptor thread: %s", strerror(rc));
        rc = -rc;
        goto fail;
    }
    s->started = true;
    conn_set_debug(cfg->debug);
    log_info("started: %u workers, %u listeners", s->nworkers, s->gen->nlisteners);
    return 0;
fail:
    /* Threads started so far are told to close and joined: nothing waits
     * for one that never ran. */
    server_teardown(s);
    for (unsigned i = 0; i < s->gen->nlisteners; i++)
        listener_close(&s->gen->listeners[i]);
    return rc;
}

/* Appends "WHAT name" or ", name" to out. */
static size_t server_describe_one(char *out, size_t len, size_t n, bool *first, const char *what,
                                  const char *name)
{
    if (n >= len)
        return n;
    int k = *first ? snprintf(out + n, len - n, "%s%s %s", n ? "; " : "", what, name)
                   : snprintf(out + n, len - n, ", %s", name);
    *first = false;
    return k > 0 ? n + (size_t)k : n;
}

/* Describes what a reload changes, e.g. "added b; removed c; kept a". */
static void server_describe_reload(const struct generation *old, const struct generation *g,
                                   char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    bool first = true;
    for (unsigned i = 0; i < g->nlisteners; i++)
        if (!generation_match(old, g->listeners[i].cfg))
            n = server_describe_one(out, len, n, &first, "added", g->listeners[i].cfg->name);
    first = true;
    for (unsigned i = 0; i < old->nlisteners; i++) {
        bool kept = false;
        for (unsigned k = 0; k < g->nlisteners && !kept; k++)
            kept = generation_match(old, g->listeners[k].cfg) == &old->listeners[i];
        if (!kept)
            n = server_describe_one(out, len, n, &first, "removed", old->listeners[i].cfg->name);
    }
    first = true;
    for (unsigned i = 0; i < g->nlisteners; i++)
        if (generation_match(old, g->listeners[i].cfg))
            n = server_describe_one(out, len, n, &first, "kept", g->listeners[i].cfg->name);
}

/*
 * Moves the workers' UDP sockets, then the acceptor, to g.  Each step waits
 * up to reload_wait_ms; one that does not finish in time is given up (a
 * late worker or acceptor skips it, see rendezvous_begin) and the workers
 * that switched go back to the current generation, so the old generation
 * keeps serving everything.  The acceptor goes last because it closes the
 * old generation's listening sockets, which cannot be undone.  Returns 0,
 * or -ENOMEM or -ETIMEDOUT with a line in err.
 */
static int server_switch(struct wharf_server *s, struct generation *g, char *err, size_t errlen)
{
    struct rendezvous *adopted = rendezvous_new(s->nworkers);
    if (!adopted) {
        snprintf(err, errlen, "reload: out of memory");
        return -ENOMEM;
    }
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_adopt(&s->workers[i], g, adopted);
    bool ok = rendezvous_settle(adopted, s->reload_wait_ms);
    rendezvous_release(adopted);
    if (!ok)
        snprintf(err, errlen, "reload: a worker did not take the new generation within %llu ms "
                 "(busy in a callback, or its UDP sockets could not be watched); the old "
                 "generation keeps serving", (unsigned long long)s->reload_wait_ms);
    else if (!(ok = acceptor_switch(s->acceptor, g, s->reload_wait_ms)))
        snprintf(err, errlen, "reload: the acceptor did not take the new generation within "
                 "%llu ms; the old generation keeps serving",
                 (unsigned long long)s->reload_wait_ms);
    if (ok)
        return 0;
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_adopt(&s->workers[i], s->gen, NULL);
    return -ETIMEDOUT;
}

void server_set_reload_wait(struct wharf_server *s, uint64_t ms)
{
    s->reload_wait_ms = ms;
}

int server_reload(struct wharf_server *s, struct config *cfg, char *err, size_t errlen)
{
    if (!s->started) {
        config_free(cfg);
        snprintf(err, errlen, "server not running");
        atomic_fetch_add(&s->reloads_failed, 1);
        return -ESRCH;
    }
    if (cfg->workers != (int)s->nworkers)
        log_warn("reload: workers stays %u (a change needs a restart)", s->nworkers);
    const char *was_user = s->gen->cfg->user;
    if ((cfg->user || was_user) && (!cfg->user || !was_user || strcmp(cfg->user, was_user) != 0))
        log_warn("reload: user stays %s (a change needs a restart)", was_user ? was_user : "as started");
    if ((size_t)cfg->queue_depth != s->queue_depth)
        log_warn("reload: queue_depth stays %zu (a change needs a restart)", s->queue_depth);
    if ((size_t)cfg->post_queue != s->workers[0].posts.soft)
        log_warn("reload: post_queue stays %zu (a change needs a restart)",
                 s->workers[0].posts.soft);
    if (cfg->work_threads != s->gen->cfg->work_threads)
        log_warn("reload: work_threads stays %d (a change needs a restart)",
                 s->gen->cfg->work_threads);
    if (cfg->io != s->gen->cfg->io)
        log_warn("reload: io stays %s (a change needs a restart)",
                 loop_io_name((enum loop_io)s->io));

    struct generation *g;
    int rc = server_build(s, cfg, &g, err, errlen);
    if (rc < 0)
        goto refused;
    if ((rc = generation_bind(g, s->gen, err, errlen)) < 0) {
        generation_unref(g);
        goto refused;
    }
    if (admission_set_limits(s->admission, (size_t)g->cfg->max_connections,
                             (size_t)g->cfg->max_connections_per_source) < 0) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        generation_unref(g);
        goto refused;
    }
    admission_set_output_budget(s->admission, g->cfg->output_budget);
    char what[512];
    server_describe_reload(s->gen, g, what, sizeof what);
    if ((rc = server_switch(s, g, err, errlen)) < 0) {
        const struct config *was = s->gen->cfg;
        admission_set_limits(s->admission, (size_t)was->max_connections,
                             (size_t)was->max_connections_per_source);
        admission_set_output_budget(s->admission, was->output_budget);
        generation_unref(g);
        goto refused;
    }
    s->next_gen_id++;
    pthread_mutex_lock(&s->gen_lock);
    struct generation *old = s->gen;
    s->gen = g;
    pthread_mutex_unlock(&s->gen_lock);
    log_write(WHARF_LOG_DEBUG, NULL, -1, 0, "generation %llu retires when its last connection closes",
              (unsigned long long)old->id);
    generation_unref(old);
    atomic_fetch_add(&s->reloads, 1);
    conn_set_debug(g->cfg->debug);
    log_info("reloaded: generation %llu (%s)", (unsigned long long)g->id, what);
    return 0;

refused:
    atomic_fetch_add(&s->reloads_failed, 1);
    return rc;
}

int server_port(const struct wharf_server *s, size_t listener)
{
    if (!s->gen || !s->started || listener >= s->gen->nlisteners)
        return -1;
    return s->gen->listeners[listener].port;
}

int server_find(const struct wharf_server *s, const char *name)
{
    for (unsigned i = 0; s->gen && name && i < s->gen->nlisteners; i++)
        if (strcmp(s->gen->listeners[i].cfg->name, name) == 0)
            return (int)i;
    /* Stopped: the last generation's names, for its final counters. */
    for (unsigned i = 0; !s->gen && name && i < s->nfinal; i++)
        if (s->final_names[i] && strcmp(s->final_names[i], name) == 0)
            return (int)i;
    return -1;
}

unsigned server_workers(const struct wharf_server *s)
{
    return s->nworkers;
}

_Static_assert(LISTENER_CLOSE_REASONS <= WHARF_CLOSE_REASON_SLOTS,
               "enum wharf_close_reason outgrew wharf_listener_stats.closed: a new "
               "WHARF_CLOSE_REASON_SLOTS means a new libwharf interface (Makefile.am)");

/* Sums the counters of one listener (every field written, reserved ones 0). */
static void server_sum(const struct listener *l, struct wharf_listener_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!l->stats)
        return;
    out->rejected = atomic_load_explicit(&l->stats->rejected, memory_order_relaxed) +
                    atomic_load_explicit(&l->stats->denied, memory_order_relaxed);
    for (unsigned i = 0; i < l->stats->nworkers; i++) {
        const struct listener_counters *w = &l->stats->workers[i];
#define SUM(f) out->f += atomic_load_explicit(&w->f, memory_order_relaxed)
        SUM(accepted);
        SUM(open);
        SUM(bytes_in);
        SUM(bytes_out);
        SUM(output_buffered);
        SUM(datagrams_in);
        SUM(datagrams_out);
        SUM(datagrams_dropped);
        SUM(datagram_send_calls);
        for (int r = 0; r < LISTENER_CLOSE_REASONS; r++)
            SUM(closed[r]);
#undef SUM
    }
}

/* Step 2 of server_stop: the workers drain, each joined as soon as it has
 * ended (so none is left finished but unjoined while another still works),
 * for up to shutdown_timeout_ms.  A worker that has ended is only
 * returning, so joining it waits no longer than that; the rendezvous
 * sleeps until one ends, never spins. */
static void server_stop_drain(struct wharf_server *s, struct rendezvous *finished)
{
    uint64_t ms = s->gen->cfg->shutdown_timeout_ms;
    size_t open = admission_open(s->admission);
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (finished && !worker_watch_end(&s->workers[i], finished))
            rendezvous_done(finished); /* that one has ended already */
        worker_set_phase(&s->workers[i], WORKER_DRAINING);
    }
    if (open)
        log_info("stopping: up to %llu ms for the connections with work in flight",
                 (unsigned long long)ms);
    uint64_t deadline = timer_now_ms() + ms;
    unsigned running = s->nworkers;
    while (running > 0) {
        running = 0;
        for (unsigned i = 0; i < s->nworkers; i++) {
            struct wharf_worker *w = &s->workers[i];
            if (w->started && atomic_load(&w->ended))
                worker_join(w);
            running += w->started;
        }
        uint64_t now = timer_now_ms();
        if (running == 0 || now >= deadline)
            break;
        uint64_t nap = deadline - now < 20 ? deadline - now : 20;
        if (finished)
            rendezvous_wait(finished, nap);
        else
            nanosleep(&(struct timespec){0, (long)nap * 1000000L}, NULL);
    }
}

/* Step 4 of server_stop: every listener's final counters are kept (for
 * wharf_server_stats after the stop) and logged. */
static void server_keep_final_stats(struct wharf_server *s, struct generation *g)
{
    s->final_stats = calloc(g->nlisteners, sizeof *s->final_stats);
    s->final_names = calloc(g->nlisteners, sizeof *s->final_names);
    s->nfinal = s->final_stats && s->final_names ? g->nlisteners : 0;
    for (unsigned i = 0; i < s->nfinal; i++)
        s->final_names[i] = strdup(g->listeners[i].cfg->name);
    for (unsigned i = 0; i < s->nfinal; i++) {
        struct wharf_listener_stats *st = &s->final_stats[i];
        server_sum(&g->listeners[i], st);
        const struct config_listener *lc = g->listeners[i].cfg;
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
}

void server_stop(struct wharf_server *s)
{
    if (!s->started)
        return;
    s->started = false;

    /* 1. No new connections: the acceptor stops and closes the listening
     *    sockets.  Handlers hear of it (on_stop) before any connection does. */
    acceptor_stop(s->acceptor);
    for (unsigned i = 0; i < s->gen->nlisteners; i++) {
        struct listener *l = &s->gen->listeners[i];
        if (l->handler->on_stop)
            CALLBACK_RUN("on_stop", l, -1, 0, l->handler->on_stop(l->data));
    }
    /* 2. Idle connections close now; active ones get up to
     *    shutdown_timeout_ms.  Each worker counts `finished` down as its
     *    thread ends (NULL: then the drain polls every 20 ms instead of
     *    sleeping until one ends); the workers hold no reference to it, so
     *    it stays until every one is joined. */
    struct rendezvous *finished = rendezvous_new(s->nworkers);
    server_stop_drain(s, finished);
    /* 3. Time is up: close what is left with reason "shutdown". */
    for (unsigned i = 0; i < s->nworkers; i++)
        if (s->workers[i].started)
            worker_set_phase(&s->workers[i], WORKER_CLOSING);
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_join(&s->workers[i]);
    /* 4. Final counters, then the threads' resources; the generations go
     *    (and every fini runs) once nothing holds them. */
    struct generation *g = s->gen;
    server_keep_final_stats(s, g);
    server_teardown(s);
    rendezvous_release(finished);
    pthread_mutex_lock(&s->gen_lock);
    s->gen = NULL;
    pthread_mutex_unlock(&s->gen_lock);
    generation_unref(g); /* the last reference: every fini runs here */
    log_info("stopped");
}

int server_stats(const struct wharf_server *s, size_t listener, struct wharf_listener_stats *out)
{
    struct wharf_server *m = (struct wharf_server *)s;
    int rc = 0;
    pthread_mutex_lock(&m->gen_lock);
    if (m->gen && listener < m->gen->nlisteners)
        server_sum(&m->gen->listeners[listener], out);
    else if (!m->gen && listener < m->nfinal)
        *out = m->final_stats[listener];
    else
        rc = -EINVAL;
    pthread_mutex_unlock(&m->gen_lock);
    return rc;
}

void server_free(struct wharf_server *s)
{
    if (!s)
        return;
    server_stop(s);
    generation_unref(s->gen); /* configured but never started */
    for (unsigned i = 0; i < s->nfinal; i++)
        free(s->final_names[i]);
    free(s->final_names);
    free(s->final_stats);
    state_registry_unref(s->states);
    pthread_mutex_destroy(&s->gen_lock);
    free(s);
}

/* ---- the public API (wharf_server.h) ------------------------------------------ */

/*
 * The log settings of a configuration (level, file).  Checked first, then
 * applied only once the start or reload has succeeded, so a call that fails
 * leaves the log as it was.  A file the config named before and no longer
 * names gives the log back to stderr.
 */
static int server_check_log(const struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->log_file)
        return 0;
    int fd = open(cfg->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0) {
        int code = errno;
        snprintf(err, errlen, "%s: log_file: cannot open %s: %s", cfg->file, cfg->log_file,
                 strerror(code));
        return -code;
    }
    close(fd);
    return 0;
}

static void server_apply_log(struct wharf_server *s, const struct config *cfg)
{
    if (cfg->log_file) {
        int rc = wharf_log_set_file(cfg->log_file);
        if (rc < 0)
            log_error("log_file: cannot open %s: %s", cfg->log_file, strerror(-rc));
        s->log_file_from_config = true;
    } else if (s->log_file_from_config) {
        wharf_log_set_file(NULL);
        s->log_file_from_config = false;
    }
    log_set_level((enum wharf_log_level)cfg->log_level);
    log_set_format(cfg->log_format == 1);
    int rc = log_syslog_set(cfg->syslog_socket, cfg->syslog_facility);
    if (rc < 0)
        log_error("syslog_socket: cannot reach %s: %s (lines go to the log file or stderr "
                  "until it can)", cfg->syslog_socket, strerror(-rc));
}

wharf_server *wharf_server_new(void)
{
    return server_create();
}

int wharf_server_add_handler(wharf_server *srv, const struct wharf_handler *h)
{
    return server_add_handler(srv, h);
}

/* A config handed in by the program, made internal.  Returns 0, or -EINVAL
 * (invalid; err says why) or -ENOMEM. */
static int server_take_config(const wharf_config *wc, struct config **cfg, char *err,
                              size_t errlen)
{
    if (!wc) {
        snprintf(err, errlen, "no configuration given");
        return -EINVAL;
    }
    return config_from_public(wc, cfg, err, errlen) < 0 ? -EINVAL : 0;
}

int wharf_server_start(wharf_server *srv, const wharf_config *wc, char *err, size_t errlen)
{
    struct config *cfg;
    if (srv->started || srv->gen) {
        snprintf(err, errlen, "server already started");
        return -EALREADY;
    }
    int rc = server_take_config(wc, &cfg, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = server_check_log(cfg, err, errlen)) < 0) {
        config_free(cfg);
        return rc;
    }
    if ((rc = server_load(srv, cfg, err, errlen)) < 0)
        return rc;
    /* The start-up lines belong in the configured log already; a failed
     * start puts the log back as it was. */
    enum wharf_log_level level = log_get_level();
    char *file = log_file_name();
    bool from_config = srv->log_file_from_config;
    server_apply_log(srv, srv->gen->cfg);
    if ((rc = server_start(srv, err, errlen)) < 0) {
        generation_unref(srv->gen);
        srv->gen = NULL;
        srv->next_gen_id = 1;
        wharf_log_set_file(file);
        log_set_level(level);
        srv->log_file_from_config = from_config;
        free(file);
        return rc;
    }
    free(file);
    return 0;
}

int wharf_server_reload(wharf_server *srv, const wharf_config *wc, char *err, size_t errlen)
{
    struct config *cfg;
    int rc = server_take_config(wc, &cfg, err, errlen);
    if (rc < 0) {
        atomic_fetch_add(&srv->reloads_failed, 1);
        return rc;
    }
    if ((rc = server_check_log(cfg, err, errlen)) < 0) {
        config_free(cfg);
        atomic_fetch_add(&srv->reloads_failed, 1);
        return rc;
    }
    if ((rc = server_reload(srv, cfg, err, errlen)) < 0)
        return rc;
    server_apply_log(srv, srv->gen->cfg);
    return 0;
}

int wharf_server_check(wharf_server *srv, const wharf_config *wc, char *err, size_t errlen)
{
    struct config *cfg;
    int rc = server_take_config(wc, &cfg, err, errlen);
    if (rc < 0)
        return rc;
    uid_t uid;
    gid_t gid;
    if ((rc = server_check_user(cfg, &uid, &gid, err, errlen)) < 0 ||
        (rc = server_choose_io(srv, cfg, false, err, errlen)) < 0) {
        config_free(cfg);
        return rc;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (listener_resolve(&cfg->listeners[i], cfg->file, err, errlen) < 0) {
            config_free(cfg);
            return -EADDRNOTAVAIL;
        }
    struct generation *g;
    if ((rc = generation_new(cfg, 0, 1, srv->handlers, srv->nhandlers, NULL, &g, err,
                             errlen)) < 0)
        return rc;
    generation_unref(g); /* runs every fini */
    return 0;
}

void wharf_server_stop(wharf_server *srv)
{
    server_stop(srv);
}

void wharf_server_free(wharf_server *srv)
{
    server_free(srv);
}

const char *wharf_server_io(const wharf_server *srv)
{
    return srv->io == LOOP_IO_AUTO ? NULL : loop_io_name((enum loop_io)srv->io);
}

int wharf_server_port(const wharf_server *srv, const char *name)
{
    int i = server_find(srv, name);
    if (i < 0)
        return -ENOENT;
    int port = server_port(srv, (size_t)i);
    return port < 0 ? -ESRCH : port;
}

int wharf_server_stats(const wharf_server *srv, const char *name,
                       struct wharf_listener_stats *out)
{
    int i = server_find(srv, name);
    return i < 0 || server_stats(srv, (size_t)i, out) < 0 ? -ENOENT : 0;
}

void wharf_server_info(const wharf_server *srv, struct wharf_server_info *out)
{
    struct wharf_server *m = (struct wharf_server *)srv;
    memset(out, 0, sizeof *out);
    out->workers = m->nworkers;
    pthread_mutex_lock(&m->gen_lock);
    out->generation = m->gen ? m->gen->id : 0;
    pthread_mutex_unlock(&m->gen_lock);
    out->reloads = atomic_load(&m->reloads);
    out->reloads_failed = atomic_load(&m->reloads_failed);
    out->connections_open = m->admission ? admission_open(m->admission) : 0;
}

int wharf_crash_report_install(void)
{
    return crash_install();
}

/* ---- what the metrics page reads (metrics.c) -------------------------------------- */

void server_view(struct wharf_server *s, struct server_view *out)
{
    pthread_mutex_lock(&s->gen_lock);
    out->gen = s->gen;
    if (out->gen)
        generation_ref(out->gen);
    pthread_mutex_unlock(&s->gen_lock);
    out->workers = s->workers;
    out->nworkers = s->workers ? s->nworkers : 0;
    out->admission = s->admission;
    out->acceptor = s->acceptor;
    out->reloads = atomic_load(&s->reloads);
    out->reloads_failed = atomic_load(&s->reloads_failed);
    out->start_time = s->start_time;
    out->accept_paused = acceptor_paused(s->acceptor);
}

bool server_started(const struct wharf_server *s)
{
    return s->started;
}

/* ---- the sockets, for a binary upgrade (wharf_server_sockets) ------------------------ */

int wharf_server_sockets(const wharf_server *srv, int *fds, size_t max)
{
    struct wharf_server *s = (struct wharf_server *)srv;
    if (!s->started)
        return -ESRCH;
    size_t n = 0;
    pthread_mutex_lock(&s->gen_lock);
    for (unsigned i = 0; s->gen && i < s->gen->nlisteners; i++) {
        const struct listener *l = &s->gen->listeners[i];
        /* The workers' own sockets ("accept": "workers") cannot be handed
         * over: the connections queued on each would be reset when this
         * process closes it. */
        if (l->cfg->protocol == CONFIG_TCP && l->cfg->accept_mode == CONFIG_ACCEPT_WORKERS) {
            pthread_mutex_unlock(&s->gen_lock);
            return -EOPNOTSUPP;
        }
        /* What another process could not adopt by address stays out. */
        if (l->cfg->port == 0 || l->nworkers > 1)
            continue;
        for (unsigned k = 0; k < l->nfds; k++, n++)
            if (n < max)
                fds[n] = l->fds[k];
    }
    pthread_mutex_unlock(&s->gen_lock);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* ---- liveness (wharf_server_ping) ---------------------------------------------------- */

static void server_on_ping(void *arg, void *payload, bool cancelled)
{
    rendezvous_done(arg);
}

int wharf_server_ping(wharf_server *srv, uint64_t timeout_ms)
{
    if (!srv->started)
        return -ESRCH;
    /* Reference-counted: a thread that answers after the timeout drops the
     * last reference and frees it. */
    struct rendezvous *r = rendezvous_new(srv->nworkers + 1);
    if (!r)
        return -ENOMEM;
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (loop_post_urgent(&srv->workers[i].loop, server_on_ping, r, NULL, 0) < 0)
            rendezvous_done(r);
    if (acceptor_post(srv->acceptor, server_on_ping, r) < 0)
        rendezvous_done(r);
    bool answered = rendezvous_wait(r, timeout_ms);
    rendezvous_release(r);
    return answered ? 0 : -ETIMEDOUT;
}
