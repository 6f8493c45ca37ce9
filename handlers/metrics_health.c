/*
 * metrics_health.c - the metrics handler's health endpoints, for load
 * balancers and orchestrators:
 *
 *   GET /healthz  200 "ok" whenever the process serves the request (liveness).
 *   GET /readyz   200 "ready" when the server accepts new connections
 *                 (wharf_health_accepting) and every worker answered a post
 *                 within ready_timeout_ms (option, default 1000); otherwise
 *                 503 "not ready: REASON" (stopping, accepting paused, worker
 *                 N did not answer, worker N's queue is full).
 *
 * A /readyz is answered asynchronously: a probe is posted to every worker
 * (this one included); each marks itself answered and the last posts back to
 * the asking connection, whose timer ends the wait at ready_timeout_ms.
 * Meanwhile the connection's reading is paused, so pipelined requests after
 * it are answered in order once it is.  The probe is reference-counted: a
 * worker that answers after the deadline (or after the connection closed)
 * drops the last reference and frees it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_health.h"

#define READY_TIMEOUT_DEFAULT 1000
#define READY_TIMEOUT_MAX 60000

struct health_cfg {
    long long ready_timeout_ms;
};

/* One /readyz in flight.  refs: the asking connection's, one per worker post
 * queued, one for the post back. */
struct health_probe {
    _Atomic unsigned refs;
    _Atomic unsigned pending;   /* workers yet to answer */
    wharf_worker *origin;       /* the asking connection's worker */
    uint64_t conn_id;
    wharf_conn *conn;           /* the asking connection: its timer's callback only */
    wharf_timer *timer;         /* origin thread only */
    bool head_only, close;
    unsigned nworkers;
    atomic_bool answered[];     /* [nworkers] */
};

static void health_unref(struct health_probe *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1)
        free(p);
}

bool health_path(const char *target, size_t tlen)
{
    return (tlen == 8 && memcmp(target, "/healthz", 8) == 0) ||
           (tlen == 7 && memcmp(target, "/readyz", 7) == 0);
}

static void health_reply(wharf_conn *c, int status, const char *body, bool head_only, bool close)
{
    char hdr[256];
    size_t blen = strlen(body);
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Cache-Control: no-store\r\nContent-Length: %zu\r\n%s\r\n",
                     status, status == 200 ? "OK" : "Service Unavailable", blen,
                     close ? "Connection: close\r\n" : "");
    wharf_send(c, hdr, (size_t)n);
    if (!head_only)
        wharf_send(c, body, blen);
    if (close)
        wharf_close(c);
}

bool health_pending(const wharf_conn *c)
{
    return wharf_get_data(c) != NULL;
}

/* Ends c's wait: answers, lets its reading go on, drops its reference. */
static void health_finish(wharf_conn *c, struct health_probe *p, int status, const char *body)
{
    wharf_set_data(c, NULL);
    if (p->timer)
        wharf_timer_stop(p->timer);
    p->timer = NULL;
    health_reply(c, status, body, p->head_only, p->close);
    if (!p->close)
        wharf_resume_read(c);
    health_unref(p);
}

/* On the asking connection: every worker answered in time. */
static void health_all_answered(wharf_conn *c, void *arg)
{
    struct health_probe *p = arg;
    if (c && wharf_get_data(c) == p)
        health_finish(c, p, 200, "ready\n");
    health_unref(p);
}

/* On each worker: the probe reached it and its loop turns. */
static void health_ping(void *arg, bool cancelled)
{
    struct health_probe *p = arg;
    if (!cancelled) {
        wharf_worker *w = wharf_current_worker();
        atomic_store(&p->answered[wharf_worker_index(w)], true);
        if (atomic_fetch_sub(&p->pending, 1) == 1) {
            atomic_fetch_add(&p->refs, 1);
            if (wharf_post_conn(p->origin, p->conn_id, health_all_answered, p) < 0)
                health_unref(p); /* the asking worker is gone or full: its timer answers */
        }
    }
    health_unref(p);
}

/* On the asking connection: the deadline passed; name who did not answer. */
static void health_timeout(wharf_timer *t, void *arg)
{
    struct health_probe *p = arg;
    (void)t;
    p->timer = NULL; /* a one-shot timer is freed after this returns */
    const struct health_cfg *cfg = wharf_listener_data(p->conn);
    char body[256];
    int n = snprintf(body, sizeof body, "not ready: worker");
    unsigned late = 0;
    for (unsigned i = 0; i < p->nworkers && n < (int)sizeof body - 32; i++)
        if (!atomic_load(&p->answered[i])) {
            n += snprintf(body + n, sizeof body - (size_t)n, "%s %u", late ? "," : "", i);
            late++;
        }
    snprintf(body + n, sizeof body - (size_t)n, " did not answer within %lld ms\n",
             cfg->ready_timeout_ms);
    health_finish(p->conn, p, 503, late ? body : "not ready: no answer in time\n");
}

/* Starts a /readyz: posts the probe to every worker and waits.  Returns
 * false (pending), or true when it answered at once. */
static bool health_ready(wharf_conn *c, bool head_only, bool close)
{
    char why[200], body[256];
    wharf_worker *w = wharf_conn_worker(c);
    if (!wharf_health_accepting(w, why, sizeof why)) {
        snprintf(body, sizeof body, "not ready: %s\n", why);
        health_reply(c, 503, body, head_only, close);
        return true;
    }
    const struct health_cfg *cfg = wharf_listener_data(c);
    unsigned nw = wharf_worker_count(w);
    struct health_probe *p = calloc(1, sizeof *p + nw * sizeof p->answered[0]);
    if (!p) {
        health_reply(c, 503, "not ready: out of memory\n", head_only, true);
        return true;
    }
    p->origin = w;
    p->conn = c;
    p->conn_id = wharf_conn_id(c);
    p->head_only = head_only;
    p->close = close;
    p->nworkers = nw;
    atomic_init(&p->refs, 1);
    atomic_init(&p->pending, nw);
    if (!(p->timer = wharf_timer_start(c, (uint64_t)cfg->ready_timeout_ms, 0, health_timeout, p))) {
        free(p);
        health_reply(c, 503, "not ready: out of memory\n", head_only, true);
        return true;
    }
    wharf_set_data(c, p);
    wharf_pause_read(c);
    for (unsigned i = 0; i < nw; i++) {
        atomic_fetch_add(&p->refs, 1);
        int rc = wharf_post(wharf_worker_sibling(w, i), health_ping, p);
        if (rc < 0) {
            health_unref(p);
            snprintf(body, sizeof body, "not ready: worker %u: cannot post to it (%s)\n", i,
                     rc == -EAGAIN ? "its queue is full" : strerror(-rc));
            health_finish(c, p, 503, body);
            return true;
        }
    }
    return false;
}

bool health_serve(wharf_conn *c, const char *target, size_t tlen, bool head_only, bool close)
{
    (void)tlen;
    if (target[1] == 'h') {
        health_reply(c, 200, "ok\n", head_only, close);
        return true;
    }
    return health_ready(c, head_only, close);
}

void health_on_close(wharf_conn *c, enum wharf_close_reason reason)
{
    (void)reason;
    struct health_probe *p = wharf_get_data(c);
    if (!p)
        return;
    wharf_set_data(c, NULL);
    p->timer = NULL; /* the connection's timers stop with it */
    health_unref(p);
}

int health_init(const wharf_options *opts, void **listener_data, char *err, size_t errlen)
{
    static const char *const allowed[] = {"ready_timeout_ms", NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -EINVAL;
    struct health_cfg *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    cfg->ready_timeout_ms = READY_TIMEOUT_DEFAULT;
    int rc = wharf_options_int(opts, "ready_timeout_ms", &cfg->ready_timeout_ms);
    if (rc == -EINVAL || cfg->ready_timeout_ms < 1 || cfg->ready_timeout_ms > READY_TIMEOUT_MAX) {
        snprintf(err, errlen, "options.ready_timeout_ms: an integer from 1 to %d", READY_TIMEOUT_MAX);
        free(cfg);
        return -EINVAL;
    }
    *listener_data = cfg;
    return 0;
}

void health_fini(void *listener_data)
{
    free(listener_data);
}
