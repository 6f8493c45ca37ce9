/* engine.c - runs a wharf-load measurement: sets up the timeline, splits connections and
 * --count between threads, starts the TCP or UDP engine threads, prints the live progress
 * line, then merges the threads' counters and histograms into one result and measures the
 * generator's own CPU use. Also the pass/fail verdict, and what the engines share: the
 * thread loop and its phases (phase_run: sending, stop requests, drain, wake-ups) and
 * helpers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "load.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

const char *const stat_names[ST__COUNT] = {
    [ST_SENT] = "sent",
    [ST_RECEIVED] = "received",
    [ST_MEASURED] = "measured",
    [ST_BYTES_SENT] = "bytes_sent",
    [ST_BYTES_RECEIVED] = "bytes_received",
    [ST_CONNECTS] = "connects",
    [ST_CHURN_CLOSES] = "churn_closes",
    [ST_BACKLOG_END] = "backlog_at_end",
    [ST_LOST] = "lost",
    [ST_LATE] = "late",
    [ST_MISMATCH] = "mismatch",
    [ST_SHORT] = "short",
    [ST_REORDER] = "reorder",
    [ST_DUPLICATE] = "duplicate",
    [ST_BAD_REPLY] = "bad_reply",
    [ST_TOO_LONG] = "too_long",
    [ST_UNSOLICITED] = "unsolicited",
    [ST_UNANSWERED] = "unanswered",
    [ST_REFUSED] = "refused",
    [ST_RESET] = "reset",
    [ST_PEER_CLOSED] = "peer_closed",
    [ST_ADDRNOTAVAIL] = "addrnotavail",
    [ST_CONNECT_TIMEOUT] = "connect_timeout",
    [ST_SOCKET_ERROR] = "socket_error",
};

#define PHASE_SCAN_NS 10000000ull /* engine timers (connect timeouts, retries) every 10 ms */
#define PHASE_MAX_EVENTS 256

static int g_stop;

void engine_request_stop(void) { __atomic_fetch_add(&g_stop, 1, __ATOMIC_RELAXED); }

void load_config_defaults(struct load_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->threads = 0; /* 0 = min(connections, online CPUs) */
    cfg->connections = 1;
    cfg->pipeline = 1;
    cfg->msg.seed = 1;
    cfg->msg.size_min = cfg->msg.size_max = 64;
    cfg->duration_ns = 10ull * 1000000000u;
    cfg->drain_ns = 1000000000u;
    cfg->connect_timeout_ns = 2ull * 1000000000u;
    cfg->udp_timeout_ns = 200000000u;
    cfg->progress = -1;
    cfg->max_reply = FRAME_DEFAULT_MAX_REPLY;
    cfg->interval_ns = 1000000000u;
}

void load_config_free(struct load_config *cfg)
{
    if (cfg->tmpls) {
        tmpl_set_free(cfg->tmpls);
        free(cfg->tmpls);
        cfg->tmpls = NULL;
    }
}

void load_note_error(struct load_thread *th, const char *what, int err)
{
    if (th->first_error[0])
        return;
    if (err)
        snprintf(th->first_error, sizeof(th->first_error), "%s: %s", what, strerror(err));
    else
        snprintf(th->first_error, sizeof(th->first_error), "%s", what);
}

unsigned load_default_threads(unsigned connections)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = ncpu < 1 ? 1 : (unsigned)(ncpu > LOAD_MAX_THREADS ? LOAD_MAX_THREADS : ncpu);

    return n > connections ? connections : n;
}

enum stat_id engine_errno_stat(int err)
{
    switch (err) {
    case ECONNREFUSED: return ST_REFUSED;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED: return ST_RESET;
    case EADDRNOTAVAIL: return ST_ADDRNOTAVAIL;
    case ETIMEDOUT: return ST_CONNECT_TIMEOUT;
    default: return ST_SOCKET_ERROR;
    }
}

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* Linux 4.2; older C libraries lack the name */
#endif

int load_bind_source(int fd, const struct load_config *cfg, unsigned i)
{
    const struct load_source *src = &cfg->sources[i];
    int one = 1;

    /* without it bind() reserves a local port for the address whatever the destination
     * (TIME_WAIT included), so one source could not open more connections than its
     * ephemeral port range holds; a kernel without it (before 4.2) still binds that way */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return bind(fd, (const struct sockaddr *)&src->addr, src->addrlen);
}

int engine_wait(int ep, struct epoll_event *ev, int max, uint64_t timeout_ns)
{
    static int no_pwait2;
    uint64_t ms;

    if (!__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
        struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
        int r = epoll_pwait2(ep, ev, max, &ts, NULL);

        if (r >= 0 || errno != ENOSYS)
            return r;
        __atomic_store_n(&no_pwait2, 1, __ATOMIC_RELAXED);
    }
    ms = (timeout_ns + 999999u) / 1000000u;
    return epoll_wait(ep, ev, max, ms > 1000 ? 1000 : (int)ms);
}

void sched_init(struct load_sched *s, const struct load_thread *th)
{
    const struct load_config *cfg = th->cfg;
    double per_conn_ns = 1e9 * cfg->connections / cfg->rate; /* between two of one conn */

    s->t0 = th->clk->t0;
    s->n = th->nconns;
    s->interval_ns = per_conn_ns / th->nconns;
    s->k = 0;
}

bool phase_begin(struct load_phase *ph, struct load_thread *th, int setup_rc)
{
    int err = errno;

    memset(ph, 0, sizeof(*ph));
    ph->open = th->cfg->rate > 0;
    ph->counted = th->cfg->count > 0;
    ph->quota = th->quota;
    ph->hard_end = th->clk->hard_end;
    if (setup_rc == 0 && ph->open) {
        sched_init(&ph->sched, th);
        ph->pending = calloc(th->nconns, sizeof(*ph->pending));
        ph->queued = calloc(th->nconns, sizeof(*ph->queued));
        if (!ph->pending || !ph->queued) {
            setup_rc = -1;
            err = errno;
        }
    }
    if (setup_rc != 0) {
        load_note_error(th, "cannot set up the thread (out of memory or descriptors)", err);
        stat_add(&th->st, ST_SOCKET_ERROR, 1);
        return false;
    }
    /* wake up on time for the open-loop schedule (the default slack is 50 us) */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    return !(ph->counted && ph->quota == 0); /* a zero share: nothing to do */
}

void phase_free(struct load_phase *ph)
{
    free(ph->pending);
    free(ph->queued);
    ph->pending = NULL;
    ph->queued = NULL;
}

/* Nothing is sent any more: what was released but not sent is the backlog at the end. */
static void phase_stop_sending(struct load_phase *ph, struct load_thread *th)
{
    ph->sending_over = ph->release_over = true;
    stat_add(&th->st, ST_BACKLOG_END, ph->backlog);
}

/* Once per loop turn: applies a stop request and the end of sending. Returns false when the
 * thread must return now: hard end, or asked to stop at once. */
static bool phase_step(struct load_phase *ph, struct load_thread *th, uint64_t now)
{
    const struct load_clock *clk = th->clk;

    if (now >= ph->hard_end || load_stop_level(clk) >= 2)
        return false;
    if (!ph->sending_over && load_stop_level(clk) == 1) {
        /* asked to stop: send nothing more, drain what is in flight */
        phase_stop_sending(ph, th);
        if (now + th->cfg->drain_ns < ph->hard_end)
            ph->hard_end = now + th->cfg->drain_ns;
    }
    if (!ph->sending_over && now >= clk->send_end)
        phase_stop_sending(ph, th);
    return true;
}

/* Whether the thread has nothing more to send and is draining; notes when the drain began. */
static bool phase_draining(const struct load_phase *ph, struct load_thread *th, uint64_t now)
{
    if (!ph->sending_over && !(ph->release_over && ph->backlog == 0))
        return false;
    if (!th->drain_start_ns)
        th->drain_start_ns = now;
    return true;
}

/* When the thread must wake up at the latest: next timer scan, end of sending, next
 * open-loop message, hard end. */
static uint64_t phase_wake(const struct load_phase *ph, const struct load_clock *clk)
{
    uint64_t wake = ph->next_scan < ph->hard_end ? ph->next_scan : ph->hard_end;

    if (!ph->sending_over && clk->send_end < wake)
        wake = clk->send_end;
    if (ph->open && !ph->release_over && sched_at(&ph->sched, ph->sched.k) < wake)
        wake = sched_at(&ph->sched, ph->sched.k);
    return wake;
}

/* Waits for events until the next thing due. Returns the number of events (0 on timeout or
 * EINTR), or -1 when epoll failed (noted as the thread's error). */
static int phase_wait(const struct load_phase *ph, struct load_thread *th, int ep,
                      struct epoll_event *ev, int max, uint64_t now)
{
    uint64_t wake = phase_wake(ph, th->clk);
    int n = engine_wait(ep, ev, max, wake > now ? wake - now : 0);

    if (n >= 0)
        return n;
    if (errno == EINTR)
        return 0;
    load_note_error(th, "epoll_wait failed", errno);
    return -1;
}

/* Ends the phase: notes the end of the drain and the backlog not counted yet. */
static uint64_t phase_end(const struct load_phase *ph, struct load_thread *th)
{
    uint64_t now = load_now();

    if (!th->drain_start_ns)
        th->drain_start_ns = now;
    th->drain_end_ns = now;
    if (!ph->sending_over)
        stat_add(&th->st, ST_BACKLOG_END, ph->backlog);
    return now;
}

/* Lets the engine run its timers now; the next scan is due PHASE_SCAN_NS later. */
static void phase_scan(struct load_phase *ph, const struct phase_ops *ops, void *ctx, uint64_t now)
{
    ops->scan(ctx, now);
    ph->next_scan = now + PHASE_SCAN_NS;
}

uint64_t phase_run(struct load_phase *ph, struct load_thread *th, int ep,
                   const struct phase_ops *ops, void *ctx)
{
    struct epoll_event ev[PHASE_MAX_EVENTS];
    uint64_t now;
    int i, n;

    phase_scan(ph, ops, ctx, load_now());
    for (;;) {
        now = load_now();
        series_tick(th->series, now, th->st.c[ST_SENT], stat_errors(&th->st));
        if (!phase_step(ph, th, now))
            break;
        if (ph->open)
            ops->release_due(ctx, now);
        if (now >= ph->next_scan)
            phase_scan(ph, ops, ctx, now);
        if (phase_draining(ph, th, now) && ops->drained(ctx))
            break;
        n = phase_wait(ph, th, ep, ev, PHASE_MAX_EVENTS, now);
        if (n < 0)
            break;
        for (i = 0; i < n; i++)
            ops->event(ctx, ev[i].data.u32, ev[i].events);
    }
    now = phase_end(ph, th);
    series_tick(th->series, now, th->st.c[ST_SENT], stat_errors(&th->st));
    return now;
}

uint64_t load_quota_share(uint64_t count, unsigned first, unsigned n, unsigned total)
{
    unsigned __int128 a = (unsigned __int128)count * first / total;
    unsigned __int128 b = (unsigned __int128)count * (first + n) / total;

    return (uint64_t)(b - a);
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
    int s;
    char p99[32];

    hist_reset(scratch);
    for (i = 0; i < nt; i++) {
        rx += __atomic_load_n(&th[i].st.c[ST_RECEIVED], __ATOMIC_RELAXED);
        conns += __atomic_load_n(&th[i].st.c[ST_CONNECTS], __ATOMIC_RELAXED);
        for (s = ST_FIRST_ERROR; s < ST__COUNT; s++)
            err += __atomic_load_n(&th[i].st.c[s], __ATOMIC_RELAXED);
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

int engine_run(const struct load_config *cfg, struct load_result *res, char *err, size_t errlen)
{
    struct load_clock clk;
    struct load_thread *th = NULL;
    pthread_t *tid = NULL;
    struct rusage ru0, ru1;
    struct timespec cpu0, cpu1;
    struct rlimit rl;
    struct hist *scratch = NULL;
    sigset_t block, old;
    unsigned nt = cfg->threads, i, started = 0;
    uint64_t now, next_progress, last_rx = 0, last_t, wall0, need_fds, start_unix;
    bool progress;
    int rc = -1, e;

    memset(res, 0, sizeof(*res));
    if (nt == 0)
        nt = load_default_threads(cfg->connections);
    if (nt > cfg->connections)
        nt = cfg->connections;
    need_fds = (uint64_t)cfg->connections + 2 * nt + 32;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need_fds) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need_fds) {
            snprintf(err, errlen,
                     "--connections %u needs about %" PRIu64
                     " file descriptors but the limit is %llu"
                     " (raise it with ulimit -n)",
                     cfg->connections, need_fds, (unsigned long long)rl.rlim_max);
            return -1;
        }
        rl.rlim_cur = need_fds;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            snprintf(err, errlen, "cannot raise the descriptor limit to %" PRIu64 ": %s", need_fds,
                     strerror(errno));
            return -1;
        }
    }
    res->corrected = hist_new();
    res->raw = hist_new();
    res->connect = hist_new();
    th = calloc(nt, sizeof(*th));
    tid = calloc(nt, sizeof(*tid));
    if (!res->corrected || !res->raw || !res->connect || !th || !tid)
        goto nomem;
    for (i = 0; i < nt; i++) {
        th[i].corrected = hist_new();
        th[i].raw = hist_new();
        th[i].connect = hist_new();
        th[i].series = series_new(0, 0, cfg->interval_ns);
        if (!th[i].corrected || !th[i].raw || !th[i].connect || !th[i].series)
            goto nomem;
    }
    progress = cfg->progress > 0 || (cfg->progress < 0 && !cfg->quiet && isatty(2));
    if (progress && !(scratch = hist_new()))
        goto nomem;

    __atomic_store_n(&g_stop, 0, __ATOMIC_RELAXED);
    memset(&clk, 0, sizeof(clk));
    getrusage(RUSAGE_SELF, &ru0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    wall0 = clk.t0 = load_now();
    {
        struct timespec rt;

        clock_gettime(CLOCK_REALTIME, &rt);
        start_unix = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
        res->series = series_new(clk.t0, start_unix, cfg->interval_ns);
        if (!res->series)
            goto nomem;
        for (i = 0; i < nt; i++) {
            th[i].series->t0 = clk.t0;
            th[i].series->start_unix_ns = start_unix;
        }
    }
    clk.warm_end = clk.t0 + cfg->warmup_ns;
    clk.send_end = clk.warm_end + cfg->duration_ns;
    clk.hard_end = clk.send_end + cfg->drain_ns;
    for (i = 0; i < nt; i++) {
        th[i].cfg = cfg;
        th[i].clk = &clk;
        th[i].index = i;
        th[i].first_conn = (unsigned)((uint64_t)cfg->connections * i / nt);
        th[i].nconns = (unsigned)((uint64_t)cfg->connections * (i + 1) / nt) - th[i].first_conn;
        th[i].quota = cfg->count ? load_quota_share(cfg->count, th[i].first_conn, th[i].nconns,
                                                    cfg->connections)
                                 : 0;
    }
    /* engine threads leave signals to the main thread */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (i = 0; i < nt; i++) {
        e = pthread_create(&tid[i], NULL, cfg->udp ? udp_thread : tcp_thread, &th[i]);
        if (e) {
            snprintf(err, errlen, "cannot start thread %u: %s", i, strerror(e));
            __atomic_store_n(&clk.stop, 2, __ATOMIC_RELAXED);
            break;
        }
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    last_t = clk.t0;
    next_progress = clk.t0 + 1000000000u;
    for (;;) {
        unsigned done = 0;
        struct timespec ts = {0, 20000000};

        for (i = 0; i < started; i++)
            done += (unsigned)__atomic_load_n(&th[i].done, __ATOMIC_ACQUIRE);
        if (done == started)
            break;
        if (__atomic_load_n(&g_stop, __ATOMIC_RELAXED)) {
            int lvl = __atomic_load_n(&g_stop, __ATOMIC_RELAXED) > 1 ? 2 : 1;

            __atomic_store_n(&clk.stop, lvl, __ATOMIC_RELAXED);
            res->interrupted = true;
        }
        nanosleep(&ts, NULL);
        now = load_now();
        if (progress && now >= next_progress) {
            progress_line(cfg, th, started, clk.t0, now, &last_rx, &last_t, scratch);
            next_progress += 1000000000u;
        }
    }
    for (i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    if (progress)
        fprintf(stderr, "\n");
    getrusage(RUSAGE_SELF, &ru1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    res->cpu_s = (double)(cpu1.tv_sec - cpu0.tv_sec) + (cpu1.tv_nsec - cpu0.tv_nsec) / 1e9;
    res->wall_s = (load_now() - wall0) / 1e9;
    res->cpu_user_s = cpu_seconds(&ru1.ru_utime) - cpu_seconds(&ru0.ru_utime);
    res->cpu_sys_s = cpu_seconds(&ru1.ru_stime) - cpu_seconds(&ru0.ru_stime);
    if (started < nt)
        goto out;

    {
        uint64_t last_rx_ns = 0, ds = 0, de = 0;
        int s;

        for (i = 0; i < nt; i++) {
            for (s = 0; s < ST__COUNT; s++)
                res->st.c[s] += th[i].st.c[s];
            hist_merge(res->corrected, th[i].corrected);
            hist_merge(res->raw, th[i].raw);
            hist_merge(res->connect, th[i].connect);
            th[i].series->span_ns = load_now() - clk.t0;
            if (series_merge(res->series, th[i].series) != 0)
                goto nomem;
            if (th[i].last_rx_ns > last_rx_ns)
                last_rx_ns = th[i].last_rx_ns;
            if (!ds || (th[i].drain_start_ns && th[i].drain_start_ns < ds))
                ds = th[i].drain_start_ns;
            if (th[i].drain_end_ns > de)
                de = th[i].drain_end_ns;
            if (!res->first_error[0] && th[i].first_error[0])
                memcpy(res->first_error, th[i].first_error, sizeof(res->first_error));
        }
        /* duration mode: the measurement period; --count (or an early stop): from the end of
         * warm-up to the last measured echo */
        if (cfg->count || res->interrupted)
            res->measure_ns = last_rx_ns > clk.warm_end ? last_rx_ns - clk.warm_end : 0;
        else
            res->measure_ns = cfg->duration_ns;
        res->drain_used_ns = de > ds ? de - ds : 0;
    }
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    for (i = 0; th && i < nt; i++) {
        hist_free(th[i].corrected);
        hist_free(th[i].raw);
        hist_free(th[i].connect);
        series_free(th[i].series);
    }
    free(th);
    free(tid);
    hist_free(scratch);
    if (rc != 0)
        engine_result_free(res);
    return rc;
}

void engine_result_free(struct load_result *res)
{
    hist_free(res->corrected);
    hist_free(res->raw);
    hist_free(res->connect);
    series_free(res->series);
    res->series = NULL;
    res->corrected = res->raw = res->connect = NULL;
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
