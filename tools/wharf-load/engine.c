/* engine.c - runs a wharf-load measurement: sets up the timeline, splits connections and
 * --count between threads, gives each thread an event loop and starts the TCP or UDP
 * engine threads, passes stop requests to their mailboxes, prints the live progress line,
 * then merges the threads' counters and histograms into one result and measures the
 * generator's own CPU use. Also the pass/fail verdict. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "engine.h"
#include "hlog.h"
#include "phase.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The state of this file, for one run at a time. stop_requests: engine_request_stop (a
 * signal handler) adds, engine_run reads. wake: what engine_follow sleeps on, posted by
 * each stop request and by each engine thread when it has finished (load_thread_finish),
 * so the main thread wakes only for those and for its own progress and --hlog times. */
static atomic_int stop_requests;
static sem_t wake;
static atomic_bool wake_ready;

void engine_request_stop(void)
{
    atomic_fetch_add_explicit(&stop_requests, 1, memory_order_relaxed);
    if (atomic_load_explicit(&wake_ready, memory_order_acquire))
        sem_post(&wake); /* async-signal-safe */
}

static void wake_init(void)
{
    sem_init(&wake, 0, 0);
    atomic_store_explicit(&wake_ready, true, memory_order_release);
}

/* Makes `wake` ready (once per process) and takes back the posts of an earlier run. */
static void engine_wake_reset(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, wake_init);
    while (sem_trywait(&wake) == 0)
        ;
}

static double cpu_seconds(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void fmt_ns(char *buf, size_t len, uint64_t ns)
{
    if (ns < 10000)
        snprintf(buf, len, "%" PRIu64 "ns", ns);
    else if (ns < 10000000)
        snprintf(buf, len, "%.1fus", ns / 1e3);
    else if (ns < 10000000000ull)
        snprintf(buf, len, "%.1fms", ns / 1e6);
    else
        snprintf(buf, len, "%.1fs", ns / 1e9);
}

/* One progress line (stderr, carriage return, no newline). */
static void progress_line(const struct load_config *cfg, struct load_thread *th, unsigned nt,
                          uint64_t t0, uint64_t now, uint64_t *last_rx, uint64_t *last_t,
                          struct hist *scratch)
{
    uint64_t rx = 0, err = 0, conns = 0;
    unsigned i;
    char p99[32];

    hist_reset(scratch);
    for (i = 0; i < nt; i++) {
        rx += stat_get(&th[i].st, ST_RECEIVED);
        conns += stat_get(&th[i].st, ST_CONNECTS);
        err += stat_errors(&th[i].st);
        hist_merge_live(scratch, th[i].corrected);
    }
    if (scratch->total)
        fmt_ns(p99, sizeof(p99), hist_percentile(scratch, 99.0));
    else
        snprintf(p99, sizeof(p99), "-");
    fprintf(stderr, "\r[%5.1fs] %10.0f msg/s  errors %-6" PRIu64 " p99 %-9s conns %" PRIu64 "%s   ",
            (now - t0) / 1e9, now > *last_t ? (rx - *last_rx) * 1e9 / (double)(now - *last_t) : 0.0,
            err, p99, conns, now < t0 + cfg->warmup_ns ? " (warm-up)" : "");
    fflush(stderr);
    *last_rx = rx;
    *last_t = now;
}

/* What engine_run holds while a run goes on. */
struct engine {
    const struct load_config *cfg;
    struct load_result *res;
    struct load_clock clk;
    struct load_thread *th;
    pthread_t *tid;
    unsigned nt, started;
    enum load_stop stop_sent; /* the last stop request posted to the threads */
    bool progress;
    struct hist *scratch; /* the progress line's merged view */
    struct rusage ru0;
    struct timespec cpu0;
    /* --hlog: the log, and per latency kind (corrected, uncorrected) the threads' merged
     * histograms at the end of the last interval written and now */
    struct hlog hlog;
    bool hlog_on;
    struct hist *hl_prev[2], *hl_cur[2], *hl_delta;
    uint64_t hl_last, hl_next; /* CLOCK_MONOTONIC: end of the last interval, next one due */
    uint64_t start_unix;       /* t0 on the wall clock */
};

/* Raises the descriptor limit to what the connections (and each thread's event loop:
 * epoll or a ring, mailbox eventfd, one to spare) need. Returns 0, or -1 with a message in err. */
static int engine_raise_fd_limit(const struct engine *en, char *err, size_t errlen)
{
    uint64_t need = (uint64_t)en->cfg->connections + 3 * en->nt + 32;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        snprintf(err, errlen,
                 "--connections %u needs about %" PRIu64 " file descriptors but the limit is %llu"
                 " (raise it with ulimit -n)",
                 en->cfg->connections, need, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(err, errlen, "cannot raise the descriptor limit to %" PRIu64 ": %s", need,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* Allocates the result's and the threads' histograms and series, and the threads' event
 * loops. Returns 0, or -1 with a message in err. */
static int engine_alloc_cmd(const struct load_config *cfg, struct hist **cmd);

static int engine_alloc(struct engine *en, char *err, size_t errlen)
{
    struct load_result *res = en->res;
    unsigned i;
    int rc;

    res->corrected = hist_new();
    res->raw = hist_new();
    res->connect = hist_new();
    res->handshake = hist_new();
    en->th = calloc(en->nt, sizeof(*en->th));
    en->tid = calloc(en->nt, sizeof(*en->tid));
    if (!res->corrected || !res->raw || !res->connect || !res->handshake || !en->th || !en->tid)
        goto nomem;
    if (engine_alloc_cmd(en->cfg, res->cmd) != 0)
        goto nomem;
    for (i = 0; i < en->nt; i++) {
        struct load_thread *th = &en->th[i];

        th->corrected = hist_new();
        th->raw = hist_new();
        th->connect = hist_new();
        th->handshake = hist_new();
        th->series = series_new(0, 0, en->cfg->interval_ns);
        if (!th->corrected || !th->raw || !th->connect || !th->handshake || !th->series ||
            engine_alloc_cmd(en->cfg, th->cmd) != 0)
            goto nomem;
        rc = loop_init(&th->loop, 4, 4);
        if (rc < 0) {
            snprintf(err, errlen, "cannot set up the event loop of thread %u: %s", i,
                     strerror(-rc));
            return -1;
        }
        th->loop_ready = true;
    }
    if (en->progress && !(en->scratch = hist_new()))
        goto nomem;
    if (en->cfg->hlog) {
        for (i = 0; i < 2; i++)
            if (!(en->hl_prev[i] = hist_new()) || !(en->hl_cur[i] = hist_new()))
                goto nomem;
        if (!(en->hl_delta = hist_new()))
            goto nomem;
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Templates: one histogram per template (per-command latency). Returns 0 or -1. */
static int engine_alloc_cmd(const struct load_config *cfg, struct hist **cmd)
{
    unsigned k;

    for (k = 0; cfg->tmpls && k < cfg->tmpls->n; k++)
        if (!(cmd[k] = hist_new()))
            return -1;
    return 0;
}

/* Sets the timeline of the run from now and gives each thread its share. Returns 0, or -1
 * when out of memory. */
static int engine_timeline(struct engine *en)
{
    const struct load_config *cfg = en->cfg;
    struct load_clock *clk = &en->clk;
    struct timespec rt;
    uint64_t start_unix;
    unsigned i;

    clk->t0 = load_now();
    clock_gettime(CLOCK_REALTIME, &rt);
    start_unix = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
    en->start_unix = start_unix;
    en->hl_last = clk->t0;
    en->hl_next = clk->t0 + cfg->interval_ns;
    en->res->series = series_new(clk->t0, start_unix, cfg->interval_ns);
    if (!en->res->series)
        return -1;
    clk->warm_end = clk->t0 + cfg->warmup_ns;
    clk->send_end = clk->warm_end + cfg->duration_ns;
    clk->hard_end = clk->send_end + cfg->drain_ns;
    for (i = 0; i < en->nt; i++) {
        struct load_thread *th = &en->th[i];

        th->series->t0 = clk->t0;
        th->series->start_unix_ns = start_unix;
        th->cfg = cfg;
        th->clk = clk;
        th->wake = &wake;
        th->index = i;
        th->first_conn = (unsigned)((uint64_t)cfg->connections * i / en->nt);
        th->nconns = (unsigned)((uint64_t)cfg->connections * (i + 1) / en->nt) - th->first_conn;
        th->quota = cfg->count ? load_quota_share(cfg->count, th->first_conn, th->nconns,
                                                  cfg->connections)
                               : 0;
    }
    return 0;
}

/* Posts a stop request to every started thread's mailbox, once per level. */
static void engine_post_stop(struct engine *en, enum load_stop level)
{
    unsigned i;

    if (level <= en->stop_sent)
        return;
    en->stop_sent = level;
    for (i = 0; i < en->started; i++)
        (void)loop_post_urgent(&en->th[i].loop, phase_on_stop, &en->th[i], &level,
                               sizeof(level));
}

/* Starts the engine threads (signals blocked in them: they are the main thread's). Returns
 * 0, or -1 with a message in err (the threads started are asked to stop at once). */
static int engine_start(struct engine *en, char *err, size_t errlen)
{
    sigset_t block, old;
    unsigned i;
    int e, rc = 0;

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (i = 0; i < en->nt; i++) {
        e = pthread_create(&en->tid[i], NULL, en->cfg->udp ? udp_thread : tcp_thread, &en->th[i]);
        if (e) {
            snprintf(err, errlen, "cannot start thread %u: %s", i, strerror(e));
            engine_post_stop(en, LOAD_STOP_NOW);
            rc = -1;
            break;
        }
        en->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* --hlog: writes the interval that ends now: per latency kind, what the threads recorded
 * since the last one (the difference of two live snapshots of their histograms, so each
 * value is in exactly one interval and the intervals add up to the run's histogram).
 * Open loop: corrected untagged, uncorrected as Tag=uncorrected; closed loop: the round
 * trip, untagged. */
static void engine_hlog_interval(struct engine *en, uint64_t now)
{
    static const char *const tags[2] = {NULL, "uncorrected"};
    unsigned k, i, kinds = en->cfg->rate > 0 ? 2 : 1;

    for (k = 0; k < kinds; k++) {
        struct hist *tmp;

        hist_reset(en->hl_cur[k]);
        for (i = 0; i < en->started; i++)
            hist_merge_live(en->hl_cur[k], en->cfg->rate > 0 && k == 0 ? en->th[i].corrected
                                                                       : en->th[i].raw);
        hist_delta(en->hl_delta, en->hl_cur[k], en->hl_prev[k]);
        (void)hlog_interval(&en->hlog, tags[k], en->start_unix + (en->hl_last - en->clk.t0),
                            en->start_unix + (now - en->clk.t0), en->hl_delta);
        tmp = en->hl_prev[k];
        en->hl_prev[k] = en->hl_cur[k];
        en->hl_cur[k] = tmp;
    }
    en->hl_last = now;
    while (en->hl_next <= now)
        en->hl_next += en->cfg->interval_ns;
}

/* Follows the threads until every one is done: passes stop requests on, prints the
 * progress line once a second and writes the --hlog intervals, sleeping on `wake` in
 * between (at most a second). Then joins them. */
static void engine_follow(struct engine *en)
{
    uint64_t now, until, next_progress = en->clk.t0 + 1000000000u, last_rx = 0,
                         last_t = en->clk.t0;
    struct timespec ts;
    unsigned i, done;
    int req;

    for (;;) {
        for (i = 0, done = 0; i < en->started; i++)
            done += atomic_load_explicit(&en->th[i].done, memory_order_acquire);
        if (done == en->started)
            break;
        req = atomic_load_explicit(&stop_requests, memory_order_relaxed);
        if (req) {
            engine_post_stop(en, req > 1 ? LOAD_STOP_NOW : LOAD_DRAIN);
            en->res->interrupted = true;
        }
        until = load_now() + 1000000000u;
        if (en->progress && next_progress < until)
            until = next_progress;
        if (en->hlog_on && en->hl_next < until)
            until = en->hl_next;
        ts.tv_sec = (time_t)(until / 1000000000u);
        ts.tv_nsec = (long)(until % 1000000000u);
        (void)sem_clockwait(&wake, CLOCK_MONOTONIC, &ts); /* posted, timed out or EINTR */
        now = load_now();
        if (en->hlog_on && now >= en->hl_next)
            engine_hlog_interval(en, now);
        if (en->progress && now >= next_progress) {
            progress_line(en->cfg, en->th, en->started, en->clk.t0, now, &last_rx, &last_t,
                          en->scratch);
            next_progress += 1000000000u;
        }
    }
    for (i = 0; i < en->started; i++)
        pthread_join(en->tid[i], NULL);
    if (en->hlog_on)
        engine_hlog_interval(en, load_now()); /* the last, partial interval */
    if (en->progress)
        fprintf(stderr, "\n");
}

/* Measures the CPU and wall time the run took. */
static void engine_account(struct engine *en, uint64_t wall0)
{
    struct load_result *res = en->res;
    struct rusage ru1;
    struct timespec cpu1;

    getrusage(RUSAGE_SELF, &ru1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    res->cpu_s = (double)(cpu1.tv_sec - en->cpu0.tv_sec) + (cpu1.tv_nsec - en->cpu0.tv_nsec) / 1e9;
    res->wall_s = (load_now() - wall0) / 1e9;
    res->cpu_user_s = cpu_seconds(&ru1.ru_utime) - cpu_seconds(&en->ru0.ru_utime);
    res->cpu_sys_s = cpu_seconds(&ru1.ru_stime) - cpu_seconds(&en->ru0.ru_stime);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* --script: done()'s third argument, wrk's per-thread request rates: each thread's replies
 * per second in each --interval of its series that lies wholly inside the measured period,
 * rounded (an interval with no reply is left out, as wrk leaves it out); a thread with no
 * such interval (a run shorter than one) gives its measured replies over the whole period.
 * Sorted ascending. Returns 0, or -1 when out of memory. */
static int engine_rates(struct engine *en)
{
    struct load_result *res = en->res;
    uint64_t from = en->clk.warm_end, to = from + res->measure_ns, iv = en->cfg->interval_ns;
    size_t cap = 0, k, got;
    unsigned i;

    for (i = 0; i < en->nt; i++)
        cap += en->th[i].series->n + 1;
    if (!(res->rates = malloc(cap * sizeof(*res->rates))))
        return -1;
    for (i = 0; i < en->nt; i++) {
        const struct load_thread *th = &en->th[i];
        const struct series *s = th->series;
        uint64_t measured = stat_get(&th->st, ST_MEASURED);

        for (k = 0, got = 0; k < s->n; k++) {
            uint64_t a = s->t0 + k * iv;

            if (a < from || a + iv > to || !s->p[k].replies)
                continue;
            res->rates[res->nrates++] = (uint64_t)(s->p[k].replies * 1e9 / (double)iv + 0.5);
            got++;
        }
        if (!got && measured && res->measure_ns)
            res->rates[res->nrates++] = (uint64_t)(measured * 1e9 / (double)res->measure_ns + 0.5);
    }
    qsort(res->rates, res->nrates, sizeof(*res->rates), cmp_u64);
    return 0;
}

/* Merges the threads' counters, histograms and series into the result. Returns 0, or -1
 * when out of memory. */
static int engine_merge(struct engine *en)
{
    struct load_result *res = en->res;
    uint64_t last_rx_ns = 0, ds = 0, de = 0;
    unsigned i;
    int s;

    for (i = 0; i < en->nt; i++) {
        struct load_thread *th = &en->th[i];

        for (s = 0; s < ST__COUNT; s++)
            stat_add(&res->st, (enum stat_id)s, stat_get(&th->st, (enum stat_id)s));
        hist_merge(res->corrected, th->corrected);
        hist_merge(res->raw, th->raw);
        hist_merge(res->connect, th->connect);
        hist_merge(res->handshake, th->handshake);
        for (s = 0; s < TMPL_MAX; s++)
            if (res->cmd[s] && th->cmd[s])
                hist_merge(res->cmd[s], th->cmd[s]);
        tls_tally_merge(&res->tally, &th->tally);
        for (s = 0; s < LOAD_MAX_TARGETS * TG__COUNT; s++)
            res->tgt[s / TG__COUNT].c[s % TG__COUNT] += th->tgt[s / TG__COUNT].c[s % TG__COUNT];
        th->series->span_ns = load_now() - en->clk.t0;
        if (series_merge(res->series, th->series) != 0)
            return -1;
        if (th->last_rx_ns > last_rx_ns)
            last_rx_ns = th->last_rx_ns;
        if (!ds || (th->drain_start_ns && th->drain_start_ns < ds))
            ds = th->drain_start_ns;
        if (th->drain_end_ns > de)
            de = th->drain_end_ns;
        if (!res->first_error[0] && th->first_error[0])
            memcpy(res->first_error, th->first_error, sizeof(res->first_error));
    }
    /* With one target nothing is counted per target (tcp.c charges only with several):
     * its counts are the run's. */
    if (en->cfg->ntargets < 2) {
        struct target_mark all;

        target_mark(&res->st, &all);
        memcpy(res->tgt[0].c, all.c, sizeof all.c);
    }
    /* duration mode: the measurement period; --count (or an early stop): from the end of
     * warm-up to the last measured echo */
    if (en->cfg->count || res->interrupted)
        res->measure_ns = last_rx_ns > en->clk.warm_end ? last_rx_ns - en->clk.warm_end : 0;
    else
        res->measure_ns = en->cfg->duration_ns;
    res->drain_used_ns = de > ds ? de - ds : 0;
    return en->cfg->scripts ? engine_rates(en) : 0;
}

/* Releases the threads' histograms, series and event loops. */
static void engine_free(struct engine *en)
{
    unsigned i, k;

    for (i = 0; en->th && i < en->nt; i++) {
        hist_free(en->th[i].corrected);
        hist_free(en->th[i].raw);
        hist_free(en->th[i].connect);
        hist_free(en->th[i].handshake);
        for (k = 0; k < TMPL_MAX; k++)
            hist_free(en->th[i].cmd[k]);
        series_free(en->th[i].series);
        if (en->th[i].loop_ready)
            loop_destroy(&en->th[i].loop);
    }
    free(en->th);
    free(en->tid);
    hist_free(en->scratch);
    for (i = 0; i < 2; i++) {
        hist_free(en->hl_prev[i]);
        hist_free(en->hl_cur[i]);
    }
    hist_free(en->hl_delta);
}

int engine_run(const struct load_config *cfg, struct load_result *res, char *err, size_t errlen)
{
    struct engine en = {.cfg = cfg, .res = res, .nt = cfg->threads};
    uint64_t wall0;
    int rc = -1;

    memset(res, 0, sizeof(*res));
    if (en.nt == 0)
        en.nt = load_default_threads(cfg->connections);
    if (en.nt > cfg->connections)
        en.nt = cfg->connections;
    en.progress = cfg->progress > 0 || (cfg->progress < 0 && !cfg->quiet && isatty(2));
    if (engine_raise_fd_limit(&en, err, errlen) != 0)
        return -1;
    if (engine_alloc(&en, err, errlen) != 0)
        goto out;
    atomic_store_explicit(&stop_requests, 0, memory_order_relaxed);
    engine_wake_reset();
    getrusage(RUSAGE_SELF, &en.ru0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &en.cpu0);
    if (engine_timeline(&en) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    wall0 = en.clk.t0;
    if (cfg->hlog) {
        if (hlog_open(&en.hlog, cfg->hlog, en.start_unix, err, errlen) != 0)
            goto out;
        en.hlog_on = true;
    }
    engine_start(&en, err, errlen);
    engine_follow(&en);
    if (en.hlog_on && hlog_close(&en.hlog, err, errlen) != 0)
        goto out; /* the threads are joined: the run could not be recorded (exit 3) */
    engine_account(&en, wall0);
    if (en.started < en.nt)
        goto out;
    if (engine_merge(&en) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    engine_free(&en);
    if (rc != 0)
        engine_result_free(res);
    return rc;
}

void engine_result_free(struct load_result *res)
{
    hist_free(res->corrected);
    hist_free(res->raw);
    hist_free(res->connect);
    hist_free(res->handshake);
    for (int k = 0; k < TMPL_MAX; k++) {
        hist_free(res->cmd[k]);
        res->cmd[k] = NULL;
    }
    series_free(res->series);
    res->series = NULL;
    free(res->rates);
    res->rates = NULL;
    res->nrates = 0;
    res->corrected = res->raw = res->connect = res->handshake = NULL;
}

static void why_add(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void why_add(char *why, size_t len, const char *fmt, ...)
{
    size_t used = strlen(why);
    va_list ap;

    if (used && used + 2 < len) {
        memcpy(why + used, "; ", 3);
        used += 2;
    }
    if (used >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(why + used, len - used, fmt, ap);
    va_end(ap);
}

int engine_verdict(const struct load_config *cfg, const struct load_result *res, char *why,
                   size_t whylen)
{
    uint64_t errors = stat_errors(&res->st), p99;
    double rate = res->measure_ns ? res->st.c[ST_MEASURED] * 1e9 / (double)res->measure_ns : 0;
    char a[32], b[32];

    why[0] = '\0';
    if (errors > cfg->max_errors)
        why_add(why, whylen, "%" PRIu64 " errors > --max-errors %" PRIu64, errors, cfg->max_errors);
    if (cfg->udp && res->st.c[ST_SENT]) {
        double loss = 100.0 * res->st.c[ST_LOST] / (double)res->st.c[ST_SENT];

        if (loss > cfg->max_loss_pct)
            why_add(why, whylen, "loss %.3f%% > --max-loss %g%%", loss, cfg->max_loss_pct);
    }
    if (res->st.c[ST_MEASURED] == 0)
        why_add(why, whylen, "no message was answered in the measurement period");
    if (cfg->max_p99_ns) {
        p99 = hist_percentile(res->corrected, 99.0);
        if (p99 > cfg->max_p99_ns) {
            fmt_ns(a, sizeof(a), p99);
            fmt_ns(b, sizeof(b), cfg->max_p99_ns);
            why_add(why, whylen, "p99 %s > --max-p99 %s", a, b);
        }
    }
    if (cfg->min_rate > 0 && rate < cfg->min_rate)
        why_add(why, whylen, "rate %.0f msg/s < --min-rate %.0f", rate, cfg->min_rate);
    if (res->interrupted)
        why_add(why, whylen, "interrupted");
    return why[0] ? 1 : 0;
}
