/*
 * mod_churn.c - the test handler of the reload stress suite
 * (tests/check_reload_stress.c), built twice: CHURN_PREFIX "A" and "B", so
 * the suite can rewrite the module file between reloads and every reload
 * loads a changed copy of the code.
 *
 * Each line "N" a client sends fans out into requests, every one made from
 * handler code and so pinning this generation (and this copy of the code):
 *
 *   a wharf_post to the next worker, a wharf_post_all (once per worker),
 *   a wharf_post_conn to the connection itself, a worker timer
 *   (c == NULL), a connection timer, and a wharf_queue_work job.
 *
 * The part that finishes last posts the reply "PREFIX N\n" to the
 * connection with wharf_post_conn (one more request), so a reply proves
 * that every part ran, and its prefix names the code that ran it.  A part
 * that could not be issued turns the reply into "PREFIX N lost\n".  Each
 * worker also runs a repeating worker timer from on_worker_start to
 * on_worker_stop.
 *
 * The line "?" is answered with "PREFIX ? INFLIGHT PEAK\n": the requests of
 * every generation in flight now and at most so far, counted in named
 * state shared by all generations (wharf_state_get).  fini logs
 * "mod_churn PREFIX fini: issued=I completed=C lost=L" with this
 * generation's counts (C < I would mean fini ran under a request); the
 * suite reads the log.  The listener data is freed by fini, so a request
 * that ran after it would be a use after free under ASan.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

#ifndef CHURN_PREFIX
#define CHURN_PREFIX "?"
#endif

/* Requests in flight over every generation (named state "counters"). */
struct churn_counters {
    _Atomic long inflight, peak;
};

/* One listener of one generation. */
struct churn {
    struct churn_counters *all;
    unsigned nworkers;
    wharf_timer **ticks;              /* per worker, on_worker_start..stop */
    _Atomic unsigned long issued, completed, lost, ticked;
};

/* One connection: the messages whose connection timer is pending. */
struct churn_conn {
    struct msg *timed;
};

/* One line in flight. */
struct msg {
    struct churn *ch;
    wharf_worker *w;                  /* the connection's worker */
    uint64_t conn;
    wharf_conn *c;                    /* while its connection timer is pending */
    unsigned long n;
    _Atomic unsigned parts;           /* requests not finished yet, + 1 while issuing */
    _Atomic bool lost;                /* a part could not be issued */
    struct msg *prev, *next;          /* in churn_conn.timed */
};

static int counters_create(void *arg, void **obj)
{
    (void)arg;
    *obj = calloc(1, sizeof(struct churn_counters));
    return *obj ? 0 : -ENOMEM;
}

static const struct wharf_state_type counters_type = {
    .tag = "churn.counters/1",
    .create = counters_create,
    .destroy = free,
};

static int churn_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    struct churn *ch = calloc(1, sizeof *ch);
    if (!ch) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ch->nworkers = wharf_options_worker_count(opts);
    ch->ticks = calloc(ch->nworkers, sizeof *ch->ticks);
    void *all = NULL;
    if (!ch->ticks || wharf_state_get(opts, "counters", &counters_type, NULL, &all, NULL) != 0) {
        snprintf(err, errlen, "cannot get the counters");
        free(ch->ticks);
        free(ch);
        return -1;
    }
    ch->all = all;
    *data = ch;
    return 0;
}

static void churn_fini(void *data)
{
    struct churn *ch = data;
    wharf_log(WHARF_LOG_INFO, "mod_churn %s fini: issued=%lu completed=%lu lost=%lu", CHURN_PREFIX,
              atomic_load(&ch->issued), atomic_load(&ch->completed), atomic_load(&ch->lost));
    free(ch->ticks);
    free(ch);
}

/* ---- per-worker timer ------------------------------------------------------ */

static void churn_tick(wharf_timer *t, void *arg)
{
    (void)t;
    struct churn *ch = arg;
    atomic_fetch_add(&ch->ticked, 1);
}

static void churn_worker_start(void *data, wharf_worker *w)
{
    struct churn *ch = data;
    ch->ticks[wharf_worker_index(w)] = wharf_timer_start(NULL, 2, 2, churn_tick, ch);
}

static void churn_worker_stop(void *data, wharf_worker *w)
{
    struct churn *ch = data;
    unsigned i = wharf_worker_index(w);
    if (ch->ticks[i])
        wharf_timer_stop(ch->ticks[i]);
    ch->ticks[i] = NULL;
}

/* ---- one message's requests ------------------------------------------------- */

/* A request was issued / finished (its callback or cancellation ran). */
static void request_begin(struct churn *ch)
{
    atomic_fetch_add(&ch->issued, 1);
    long now = atomic_fetch_add(&ch->all->inflight, 1) + 1;
    long peak = atomic_load(&ch->all->peak);
    while (now > peak && !atomic_compare_exchange_weak(&ch->all->peak, &peak, now))
        ;
}

static void request_end(struct churn *ch)
{
    atomic_fetch_sub(&ch->all->inflight, 1);
    atomic_fetch_add(&ch->completed, 1);
}

static void reply(wharf_conn *c, void *arg)
{
    struct msg *m = arg;
    if (c) {
        char line[64];
        int n = snprintf(line, sizeof line, "%s %lu%s\n", CHURN_PREFIX, m->n,
                         atomic_load(&m->lost) ? " lost" : "");
        wharf_send(c, line, (size_t)n);
    }
    request_end(m->ch);
    free(m);
}

/* One part of m finished; the last one posts the reply. */
static void part_done(struct msg *m)
{
    if (atomic_fetch_sub(&m->parts, 1) != 1)
        return;
    struct churn *ch = m->ch;
    request_begin(ch);
    if (wharf_post_conn(m->w, m->conn, reply, m) != 0) {
        atomic_fetch_add(&ch->lost, 1);
        request_end(ch);
        free(m);
    }
}

/* A request of m finished. */
static void request_done(struct msg *m)
{
    struct churn *ch = m->ch;
    part_done(m);
    request_end(ch);
}

/* The request could not be made: m will say so. */
static void request_failed(struct msg *m)
{
    atomic_fetch_add(&m->ch->lost, 1);
    atomic_store(&m->lost, true);
    request_end(m->ch);
    part_done(m);
}

static void on_post(void *arg, bool cancelled)
{
    (void)cancelled;
    request_done(arg);
}

static void on_post_conn(wharf_conn *c, void *arg)
{
    (void)c;
    request_done(arg);
}

static void on_worker_timer(wharf_timer *t, void *arg)
{
    (void)t;
    request_done(arg);
}

/* The connection timer: m leaves its connection's list. */
static void unlink_timed(struct churn_conn *cc, struct msg *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        cc->timed = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
}

static void on_conn_timer(wharf_timer *t, void *arg)
{
    (void)t;
    struct msg *m = arg;
    unlink_timed(wharf_get_data(m->c), m);
    m->c = NULL;
    request_done(m);
}

static void job_work(void *arg)
{
    struct msg *m = arg;
    volatile unsigned long x = m->n;
    for (int i = 0; i < 100; i++)
        x = x * 31 + (unsigned long)i;
}

static void job_done(void *arg, bool cancelled)
{
    (void)cancelled;
    request_done(arg);
}

/* Queues m's job; the pool's queue is bounded (-EAGAIN when full), so a
 * refused job is queued again from a worker timer 1 ms later, as a handler
 * under back-pressure would.  Returns 0 or a negative errno. */
static int queue_job(struct msg *m);

static void retry_job(wharf_timer *t, void *arg)
{
    (void)t;
    if (queue_job(arg) != 0)
        request_failed(arg);
}

static int queue_job(struct msg *m)
{
    int rc = wharf_queue_work(job_work, job_done, m);
    if (rc == -EAGAIN)
        rc = wharf_timer_start(NULL, 1, 0, retry_job, m) ? 0 : -ENOMEM;
    return rc;
}

/* Issues one request of m with `issue`, which returns 0 or a negative errno. */
#define REQUEST(m, issue)                    \
    do {                                     \
        request_begin((m)->ch);              \
        atomic_fetch_add(&(m)->parts, 1);    \
        if ((issue) != 0)                    \
            request_failed(m);               \
    } while (0)

/* The delay of m's timers: 1 to 24 ms, so many are pending at once. */
static uint64_t delay(const struct msg *m, unsigned salt)
{
    return 1 + (m->n * 7 + salt) % 24;
}

static int start_conn_timer(wharf_conn *c, struct msg *m)
{
    struct churn_conn *cc = wharf_get_data(c);
    m->c = c;
    if (!wharf_timer_start(c, delay(m, 5), 0, on_conn_timer, m)) {
        m->c = NULL;
        return -ENOMEM;
    }
    m->next = cc->timed;
    if (cc->timed)
        cc->timed->prev = m;
    cc->timed = m;
    return 0;
}

/* The post to every worker: its parts are counted before any can run. */
static void post_all(struct msg *m)
{
    struct churn *ch = m->ch;
    for (unsigned i = 0; i < ch->nworkers; i++)
        request_begin(ch);
    atomic_fetch_add(&m->parts, ch->nworkers);
    unsigned posted = wharf_post_all(m->w, on_post, m);
    for (unsigned i = posted; i < ch->nworkers; i++)
        request_failed(m);
}

static void message(wharf_conn *c, unsigned long n)
{
    struct msg *m = calloc(1, sizeof *m);
    if (!m) {
        wharf_send(c, "oom\n", 4);
        return;
    }
    m->ch = wharf_listener_data(c);
    m->w = wharf_conn_worker(c);
    m->conn = wharf_conn_id(c);
    m->n = n;
    atomic_init(&m->parts, 1); /* held while issuing */
    unsigned next = (wharf_worker_index(m->w) + 1) % wharf_worker_count(m->w);
    REQUEST(m, wharf_post(wharf_worker_sibling(m->w, next), on_post, m));
    post_all(m);
    REQUEST(m, wharf_post_conn(m->w, m->conn, on_post_conn, m));
    REQUEST(m, wharf_timer_start(NULL, delay(m, 3), 0, on_worker_timer, m) ? 0 : -ENOMEM);
    REQUEST(m, start_conn_timer(c, m));
    REQUEST(m, queue_job(m));
    part_done(m);
}

/* ---- the connection ----------------------------------------------------------- */

static void churn_open(wharf_conn *c)
{
    wharf_set_data(c, calloc(1, sizeof(struct churn_conn)));
}

static void query(wharf_conn *c)
{
    struct churn *ch = wharf_listener_data(c);
    char line[96];
    int n = snprintf(line, sizeof line, "%s ? %ld %ld\n", CHURN_PREFIX,
                     atomic_load(&ch->all->inflight), atomic_load(&ch->all->peak));
    wharf_send(c, line, (size_t)n);
}

static int on_line(wharf_conn *c, const struct wharf_frame *fr, void *arg)
{
    (void)arg;
    if (!wharf_get_data(c)) {
        wharf_close_with(c, WHARF_CLOSE_ERROR);
        return 1;
    }
    if (fr->payload_len == 1 && fr->payload[0] == '?') {
        query(c);
        return 0;
    }
    char num[24];
    size_t len = fr->payload_len < sizeof num - 1 ? fr->payload_len : sizeof num - 1;
    memcpy(num, fr->payload, len);
    num[len] = '\0';
    message(c, strtoul(num, NULL, 10));
    return 0;
}

static const struct wharf_framing lines = {.kind = WHARF_FRAME_LINE, .max_frame = 32};

static size_t churn_data(wharf_conn *c, const void *data, size_t len)
{
    return wharf_frames(c, &lines, data, len, on_line, NULL);
}

/* Connection timers still pending were stopped with the connection: their
 * parts end here (the reply then finds the connection gone). */
static void churn_close(wharf_conn *c, enum wharf_close_reason reason)
{
    (void)reason;
    struct churn_conn *cc = wharf_get_data(c);
    while (cc && cc->timed) {
        struct msg *m = cc->timed;
        unlink_timed(cc, m);
        m->c = NULL;
        request_done(m);
    }
    free(cc);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "mod_churn",
    .init = churn_init,
    .fini = churn_fini,
    .on_open = churn_open,
    .on_data = churn_data,
    .on_close = churn_close,
    .on_worker_start = churn_worker_start,
    .on_worker_stop = churn_worker_stop,
};
