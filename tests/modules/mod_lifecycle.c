/*
 * mod_lifecycle.c - a test handler that records every callback it gets
 * (kind, connection id, worker, thread) in a thread-safe log
 * (mod_lifecycle.h), and closes a connection from the place a test asks
 * for, so that tests/check_lifecycle.c can check that nothing of a
 * connection runs after its on_close, whoever closed it and from where.
 *
 * Options of a listener:
 *   "role"       "case" (default): connections follow the options below;
 *                "check": plain echo (the suite's "still serves" probe)
 *   "action"     what the trigger does to its victim: "none" (default),
 *                "close", "close_with" (reason error), "overflow" (one send
 *                of LC_OVERFLOW_BYTES, past max_output), "flood" (sends
 *                LC_FLOOD_BYTES, for output_budget, to a victim that got
 *                LC_PRIME_BYTES from its on_open, so that its output may
 *                already be stalled: see lc_primed), or "hold" (on_data
 *                consumes nothing: max_input, min_rate)
 *   "site"       where: "open", "data", "drain", "eof", "timeout",
 *                "shutdown", "close" (the trigger's on_close), or from a
 *                request the trigger makes in its first on_data: "post",
 *                "post_conn", "worker_timer", "conn_timer", "done"
 *   "target"     "self" (default): every connection is its own trigger and
 *                victim; "other": a connection opened while another one
 *                of this listener is open is the trigger, and the oldest
 *                open one is its victim (on another worker it is reached
 *                through wharf_post_conn)
 *   "inflight"   (bool) every connection keeps requests in flight: a 10 ms
 *                repeating and a 5 s connection timer, a job and a worker
 *                timer that post to it later, and at its first data a post
 *                and another job
 *   "timeout_ms" the trigger's idle timeout for site "timeout" (100)
 *
 * Every other byte received is echoed.  Requests use a fixed pool that is
 * never freed, so a request the framework drops (a timer stopped with its
 * connection or worker) leaks nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mod_lifecycle.h"
#include "wharf.h"

enum lc_site {
    SITE_OPEN = 0, SITE_DATA, SITE_DRAIN, SITE_EOF, SITE_TIMEOUT, SITE_SHUTDOWN, SITE_CLOSE,
    SITE_POST, SITE_POST_CONN, SITE_WORKER_TIMER, SITE_CONN_TIMER, SITE_DONE
};
static const char *const site_names[] = {
    "open", "data", "drain", "eof", "timeout", "shutdown", "close",
    "post", "post_conn", "worker_timer", "conn_timer", "done", NULL};
static const char *const action_names[] = {
    "none", "close", "close_with", "overflow", "flood", "hold", NULL};

struct lc_listener {
    bool check;              /* role "check" */
    enum lc_action action;
    enum lc_site site;
    bool other;              /* target "other" */
    bool inflight;
    long long timeout_ms;
};

/* Per connection (its worker only). */
struct lc_conn {
    uint64_t id;
    int worker;
    bool trigger, fired, drain_armed, data_seen;
    uint64_t victim;
    int victim_worker;
    const struct lc_listener *ls;
};

/* A request: what its callback is about and what it does. */
struct lc_req {
    uint32_t no;
    uint64_t about;          /* the connection it concerns */
    bool act;                /* act on victim (else: post to `about`) */
    uint64_t victim;
    int victim_worker;
    enum lc_action action;
    unsigned work_ms;        /* jobs: how long the work sleeps */
};

/* ---- the log ---------------------------------------------------------------- */

#define LC_LOG_MAX 65536
static struct lc_event events[LC_LOG_MAX];
static _Atomic uint8_t ready[LC_LOG_MAX];
static _Atomic uint32_t nevents;

static int lc_worker_index(void)
{
    wharf_worker *w = wharf_current_worker();
    return w ? (int)wharf_worker_index(w) : -1;
}

static void lc_log(enum lc_kind kind, uint32_t arg, uint64_t conn)
{
    uint32_t i = atomic_fetch_add(&nevents, 1);
    if (i >= LC_LOG_MAX)
        return;
    events[i] = (struct lc_event){.kind = kind, .arg = arg, .conn = conn,
                                  .worker = lc_worker_index(),
                                  .thread = (uint64_t)pthread_self()};
    atomic_store_explicit(&ready[i], 1, memory_order_release);
}

__attribute__((visibility("default"))) size_t lifecycle_events(struct lc_event *out, size_t max);
__attribute__((visibility("default"))) void lifecycle_reset(void);

size_t lifecycle_events(struct lc_event *out, size_t max)
{
    size_t n = atomic_load(&nevents);
    if (n > LC_LOG_MAX)
        n = LC_LOG_MAX;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        /* A writer between its fetch_add and its store: wait a little. */
        for (int spin = 0; !atomic_load_explicit(&ready[i], memory_order_acquire); spin++) {
            if (spin == 100000)
                return i;
            sched_yield();
        }
        out[i] = events[i];
    }
    return n;
}

/* ---- connections by id, requests ------------------------------------------------ */

#define LC_MAX_CONNS 256
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t id;             /* 0: free */
    int worker;
    wharf_conn *c;           /* used only on its worker */
} reg[LC_MAX_CONNS];

static void reg_add(uint64_t id, int worker, wharf_conn *c)
{
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < LC_MAX_CONNS; i++)
        if (reg[i].id == 0) {
            reg[i].id = id;
            reg[i].worker = worker;
            reg[i].c = c;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
}

static void reg_remove(uint64_t id)
{
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < LC_MAX_CONNS; i++)
        if (reg[i].id == id)
            reg[i].id = 0;
    pthread_mutex_unlock(&reg_lock);
}

/* The open connection `id`, or NULL. */
static wharf_conn *reg_find(uint64_t id)
{
    wharf_conn *c = NULL;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < LC_MAX_CONNS && !c; i++)
        if (reg[i].id == id)
            c = reg[i].c;
    pthread_mutex_unlock(&reg_lock);
    return c;
}

/* The oldest open connection (lowest id): true with its id and worker. */
static bool reg_oldest(uint64_t *id, int *worker)
{
    bool found = false;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < LC_MAX_CONNS; i++)
        if (reg[i].id && (!found || reg[i].id < *id)) {
            *id = reg[i].id;
            *worker = reg[i].worker;
            found = true;
        }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

#define LC_MAX_REQS 8192
static struct lc_req reqs[LC_MAX_REQS];
static _Atomic uint32_t nreqs;

static struct lc_req *req_new(uint64_t about, bool act, const struct lc_conn *lc)
{
    uint32_t i = atomic_fetch_add(&nreqs, 1);
    if (i >= LC_MAX_REQS)
        return NULL;
    struct lc_req *r = &reqs[i];
    *r = (struct lc_req){.no = i, .about = about, .act = act, .work_ms = 10};
    if (act) {
        r->victim = lc->victim;
        r->victim_worker = lc->victim_worker;
        r->action = lc->ls->action;
    }
    return r;
}

void lifecycle_reset(void)
{
    pthread_mutex_lock(&reg_lock);
    memset(reg, 0, sizeof reg);
    pthread_mutex_unlock(&reg_lock);
    for (size_t i = 0; i < LC_LOG_MAX; i++)
        atomic_store(&ready[i], 0);
    atomic_store(&nevents, 0);
    atomic_store(&nreqs, 0);
}

/* ---- acting on the victim ----------------------------------------------------- */

static char zeros[LC_OVERFLOW_BYTES];

static void lc_send_zeros(wharf_conn *c, size_t bytes)
{
    for (size_t sent = 0; sent < bytes; sent += 65536)
        if (wharf_send(c, zeros, 65536) < 0)
            break;
}

/*
 * Whether a victim of action "flood" gets LC_PRIME_BYTES of output at its
 * open, which it never reads: the flood then finds its output stalled and
 * the budget closes it at once, inside the send (or the flush) that grew
 * it.  Not where pending output would keep the site from being reached:
 * on_drain (it needs the output gone) and its own idle timeout (it does
 * not count while output is pending).
 */
static bool lc_primed(const struct lc_listener *ls, const struct lc_conn *lc)
{
    return ls->action == LC_ACT_FLOOD && (!ls->other || !lc->trigger) &&
           ls->site != SITE_DRAIN && !(ls->site == SITE_TIMEOUT && !ls->other);
}

static void lc_apply(wharf_conn *v, enum lc_action action)
{
    switch (action) {
    case LC_ACT_CLOSE:
        wharf_close(v);
        break;
    case LC_ACT_CLOSE_WITH:
        wharf_close_with(v, WHARF_CLOSE_ERROR);
        break;
    case LC_ACT_OVERFLOW:
        wharf_send(v, zeros, LC_OVERFLOW_BYTES);
        break;
    case LC_ACT_FLOOD:
        lc_send_zeros(v, LC_FLOOD_BYTES);
        break;
    default:
        break;
    }
}

static void lc_on_post_conn(wharf_conn *c, void *arg);

/* Does `action` to connection `victim` of worker `vworker`: at once on its
 * own worker (if it is still open), else through wharf_post_conn. */
static void lc_act(uint64_t victim, int vworker, enum lc_action action)
{
    wharf_worker *w = wharf_current_worker();
    if (!w)
        return;
    if ((int)wharf_worker_index(w) == vworker) {
        wharf_conn *v = reg_find(victim);
        if (!v)
            return; /* gone already */
        lc_log(LC_ACT, action, victim);
        lc_apply(v, action);
        return;
    }
    struct lc_req *r = req_new(victim, false, NULL);
    wharf_worker *to = wharf_worker_sibling(w, (unsigned)vworker);
    if (!r || !to)
        return;
    r->act = true;
    r->victim = victim;
    r->victim_worker = vworker;
    r->action = action;
    if (wharf_post_conn(to, victim, lc_on_post_conn, r) == 0)
        lc_log(LC_QUEUED, r->no, victim);
}

/* Logs a callback of c and checks it is the connection its data names,
 * on its own worker.  Returns its data. */
static struct lc_conn *lc_enter(wharf_conn *c, enum lc_kind kind, uint32_t arg)
{
    struct lc_conn *lc = wharf_get_data(c);
    uint64_t id = wharf_conn_id(c);
    lc_log(kind, arg, id);
    if (!lc || lc->id != id)
        lc_log(LC_BAD, LC_BAD_ID, id);
    else if (lc->worker != lc_worker_index())
        lc_log(LC_BAD, LC_BAD_THREAD, id);
    return lc;
}

/* ---- requests ------------------------------------------------------------------- */

static void lc_post_to(struct lc_req *r)
{
    wharf_worker *w = wharf_current_worker();
    struct lc_req *p = req_new(r->about, false, NULL);
    if (w && p && wharf_post_conn(w, r->about, lc_on_post_conn, p) == 0)
        lc_log(LC_QUEUED, p->no, p->about);
}

static void lc_on_post_conn(wharf_conn *c, void *arg)
{
    struct lc_req *r = arg;
    lc_log(LC_RAN, r->no, r->about);
    if (!c) {
        lc_log(LC_POST_GONE, 0, r->about);
        return;
    }
    lc_enter(c, LC_POST_CONN, 0);
    if (r->act)
        lc_act(r->victim, r->victim_worker, r->action);
}

static void lc_on_post(void *arg, bool cancelled)
{
    struct lc_req *r = arg;
    lc_log(LC_RAN, r->no, r->about);
    lc_log(LC_POST, cancelled, r->about);
    if (!cancelled && r->act)
        lc_act(r->victim, r->victim_worker, r->action);
}

static void lc_on_worker_timer(wharf_timer *t, void *arg)
{
    struct lc_req *r = arg;
    lc_log(LC_WORKER_TIMER, 0, r->about);
    if (r->act)
        lc_act(r->victim, r->victim_worker, r->action);
    else
        lc_post_to(r);
}

/* A connection's timer: logged as one of its callbacks (it must never
 * come after its on_close). */
static void lc_on_conn_timer(wharf_timer *t, void *arg)
{
    struct lc_req *r = arg;
    lc_log(LC_CONN_TIMER, 0, r->about);
    if (r->act)
        lc_act(r->victim, r->victim_worker, r->action);
}

static void lc_work(void *arg)
{
    struct lc_req *r = arg;
    struct timespec ts = {0, (long)r->work_ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void lc_on_done(void *arg, bool cancelled)
{
    struct lc_req *r = arg;
    lc_log(LC_RAN, r->no, r->about);
    lc_log(LC_DONE, cancelled, r->about);
    if (cancelled)
        return;
    if (r->act)
        lc_act(r->victim, r->victim_worker, r->action);
    else
        lc_post_to(r);
}

static void lc_queue_job(struct lc_req *r, unsigned ms)
{
    if (!r)
        return;
    r->work_ms = ms;
    if (wharf_queue_work(lc_work, lc_on_done, r) == 0)
        lc_log(LC_QUEUED, r->no, r->about);
}

/* Requests kept in flight from on_open ("inflight"). */
static void lc_inflight_open(wharf_conn *c, struct lc_conn *lc)
{
    wharf_timer_start(c, 10, 10, lc_on_conn_timer, req_new(lc->id, false, lc));
    wharf_timer_start(c, 5000, 0, lc_on_conn_timer, req_new(lc->id, false, lc));
    lc_queue_job(req_new(lc->id, false, lc), 30);
    struct lc_req *r = req_new(lc->id, false, lc);
    if (r)
        wharf_timer_start(NULL, 40, 0, lc_on_worker_timer, r);
}

/* ... and from the first on_data. */
static void lc_inflight_data(struct lc_conn *lc)
{
    struct lc_req *r = req_new(lc->id, false, lc);
    if (r)
        lc_post_to(r);
    lc_queue_job(req_new(lc->id, false, lc), 10);
}

/* The trigger's first data starts the request its site names. */
static void lc_schedule(wharf_conn *c, struct lc_conn *lc)
{
    enum lc_site site = lc->ls->site;
    struct lc_req *r = req_new(lc->id, true, lc);
    if (!r)
        return;
    switch (site) {
    case SITE_DRAIN:
        lc->drain_armed = true;
        wharf_want_drain(c);
        break;
    case SITE_POST:
        if (wharf_post(wharf_conn_worker(c), lc_on_post, r) == 0)
            lc_log(LC_QUEUED, r->no, r->about);
        break;
    case SITE_POST_CONN:
        if (wharf_post_conn(wharf_conn_worker(c), lc->id, lc_on_post_conn, r) == 0)
            lc_log(LC_QUEUED, r->no, r->about);
        break;
    case SITE_WORKER_TIMER:
        wharf_timer_start(NULL, 20, 0, lc_on_worker_timer, r);
        break;
    case SITE_CONN_TIMER:
        wharf_timer_start(c, 20, 0, lc_on_conn_timer, r);
        break;
    case SITE_DONE:
        lc_queue_job(r, 5);
        break;
    default:
        break;
    }
}

/* Called at each site: the trigger acts (once) where its site says. */
static void lc_trigger(wharf_conn *c, struct lc_conn *lc, enum lc_site now)
{
    if (!lc || !lc->trigger || lc->fired || lc->ls->action == LC_ACT_NONE ||
        lc->ls->action == LC_ACT_HOLD)
        return;
    enum lc_site site = lc->ls->site;
    if (site == now) {
        lc->fired = true;
        lc_act(lc->victim, lc->victim_worker, lc->ls->action);
    } else if (now == SITE_DATA && site >= SITE_POST) {
        lc->fired = true;
        lc_schedule(c, lc);
    } else if (now == SITE_DATA && site == SITE_DRAIN) {
        lc->fired = true;
        lc_schedule(c, lc);
    }
}

/* ---- the handler ------------------------------------------------------------------ */

static int lc_pick(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

static int lc_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    static const char *const keys[] = {"role", "action", "site", "target", "inflight",
                                       "timeout_ms", NULL};
    if (wharf_options_check_keys(opts, keys, err, errlen) < 0)
        return -1;
    struct lc_listener *ls = calloc(1, sizeof *ls);
    if (!ls)
        return -1;
    const char *role = "case", *action = "none", *site = "data", *target = "self";
    wharf_options_string(opts, "role", &role);
    wharf_options_string(opts, "action", &action);
    wharf_options_string(opts, "site", &site);
    wharf_options_string(opts, "target", &target);
    wharf_options_bool(opts, "inflight", &ls->inflight);
    ls->timeout_ms = 100;
    wharf_options_int(opts, "timeout_ms", &ls->timeout_ms);
    int a = lc_pick(action_names, action), s = lc_pick(site_names, site);
    if (a < 0 || s < 0) {
        strncpy(err, a < 0 ? "unknown action" : "unknown site", errlen - 1);
        free(ls);
        return -1;
    }
    ls->check = strcmp(role, "check") == 0;
    ls->action = (enum lc_action)a;
    ls->site = (enum lc_site)s;
    ls->other = strcmp(target, "other") == 0;
    *data = ls;
    return 0;
}

static void lc_fini(void *data)
{
    free(data);
}

static void lc_open(wharf_conn *c)
{
    const struct lc_listener *ls = wharf_listener_data(c);
    struct lc_conn *lc = calloc(1, sizeof *lc);
    uint64_t id = wharf_conn_id(c);
    lc_log(LC_OPEN, ls->check, id);
    if (!lc)
        abort();
    lc->id = id;
    lc->worker = (int)wharf_worker_index(wharf_conn_worker(c));
    lc->ls = ls;
    wharf_set_data(c, lc);
    if (ls->check)
        return;
    lc->victim = id;
    lc->victim_worker = lc->worker;
    lc->trigger = !ls->other || reg_oldest(&lc->victim, &lc->victim_worker);
    reg_add(id, lc->worker, c);
    if (lc_primed(ls, lc))
        lc_send_zeros(c, LC_PRIME_BYTES);
    if (ls->inflight)
        lc_inflight_open(c, lc);
    if (lc->trigger && ls->site == SITE_TIMEOUT)
        wharf_set_timeout(c, WHARF_TIMEOUT_IDLE, (uint64_t)ls->timeout_ms);
    lc_trigger(c, lc, SITE_OPEN);
}

static size_t lc_data(wharf_conn *c, const void *data, size_t len)
{
    struct lc_conn *lc = lc_enter(c, LC_DATA, 0);
    if (lc && !lc->ls->check) {
        if (lc->ls->action == LC_ACT_HOLD)
            return 0;
        if (lc->ls->inflight && !lc->data_seen)
            lc_inflight_data(lc);
        lc->data_seen = true;
        lc_trigger(c, lc, SITE_DATA);
    }
    wharf_send(c, data, len);
    return len;
}

static void lc_drain(wharf_conn *c)
{
    struct lc_conn *lc = lc_enter(c, LC_DRAIN, 0);
    if (lc && lc->drain_armed) {
        lc->drain_armed = false;
        lc_act(lc->victim, lc->victim_worker, lc->ls->action);
    }
}

static int lc_eof(wharf_conn *c)
{
    lc_trigger(c, lc_enter(c, LC_EOF, 0), SITE_EOF);
    return WHARF_EOF_CLOSE;
}

static void lc_timeout(wharf_conn *c, enum wharf_timeout kind)
{
    lc_trigger(c, lc_enter(c, LC_TIMEOUT, (uint32_t)kind), SITE_TIMEOUT);
}

static void lc_shutdown(wharf_conn *c)
{
    lc_trigger(c, lc_enter(c, LC_SHUTDOWN, 0), SITE_SHUTDOWN);
}

static void lc_close(wharf_conn *c, enum wharf_close_reason reason)
{
    struct lc_conn *lc = lc_enter(c, LC_CLOSE, (uint32_t)reason);
    reg_remove(wharf_conn_id(c));
    lc_trigger(c, lc, SITE_CLOSE);
    if (wharf_send(c, "x", 1) != -EPIPE)
        lc_log(LC_BAD, LC_BAD_SEND, wharf_conn_id(c));
    free(lc);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "lifecycle",
    .init = lc_init,
    .fini = lc_fini,
    .on_open = lc_open,
    .on_data = lc_data,
    .on_drain = lc_drain,
    .on_timeout = lc_timeout,
    .on_close = lc_close,
    .on_eof = lc_eof,
    .on_shutdown = lc_shutdown,
};
