/* load.h - what the parts of wharf-load share: the run configuration (filled by opts.c),
 * the counters every engine thread keeps, the merged result, and the engine entry points.
 *
 * Flow of a run: opts_parse() -> engine_run() (threads running tcp_thread()/udp_thread())
 * -> report_*() -> engine_verdict() decides the exit status. */
#ifndef WLOAD_LOAD_H
#define WLOAD_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "hist.h"
#include "msg.h"
#include "series.h"
#include "tmpl.h"

#define LOAD_VERSION "2.0"
#define LOAD_MAX_THREADS 256
#define LOAD_MAX_CONNECTIONS 1000000
#define LOAD_MAX_PIPELINE 4096 /* messages in flight per connection (and open-loop default) */
#define LOAD_MAX_UDP_SIZE 65507u
#define LOAD_MAX_SOURCES 64 /* --source addresses */

/* A local address connections are bound to (--source). */
struct load_source {
    struct sockaddr_storage addr; /* port 0 */
    socklen_t addrlen;
    char text[48]; /* numeric, as printed in reports */
};

struct load_config {
    /* target */
    char target[300]; /* as given: HOST:PORT */
    char host[256];   /* numeric address it resolved to */
    unsigned port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool udp;
    /* local addresses, taken in turn by each new connection (UDP: flow); 0 = any */
    struct load_source sources[LOAD_MAX_SOURCES];
    unsigned nsources;

    /* what is sent: echo messages (tmpls NULL) or request templates with reply framing */
    struct tmpl_set *tmpls; /* owned: load_config_free releases it */
    uint32_t max_reply;     /* templates: longest reply accepted (--max-reply) */

    /* shape of the load */
    unsigned threads, connections, pipeline;
    bool pipeline_set;
    struct msg_params msg; /* seed and size range */
    double rate;           /* total messages/s; 0 = closed loop */
    double ramp;           /* new connections/s at start; 0 = all at once */
    uint64_t churn;        /* exchanges per connection before closing it; 0 = keep */
    uint64_t count;        /* total measured messages; 0 = run for duration */
    uint64_t duration_ns;  /* measurement period (cap on the run with --count) */
    bool duration_set;
    uint64_t warmup_ns, drain_ns, connect_timeout_ns, udp_timeout_ns;

    /* output */
    bool json, percentiles, quiet;
    int progress; /* -1 auto (stderr is a terminal), 0 off, 1 on */
    const char *hist_out, *plot;

    /* thresholds */
    uint64_t max_p99_ns; /* 0 = none */
    double min_rate;     /* 0 = none */
    uint64_t max_errors;
    double max_loss_pct;

    /* time series and runs on several machines */
    uint64_t interval_ns;   /* time series interval (--interval) */
    uint64_t start_at_ns;   /* --start-at: wall-clock start (CLOCK_REALTIME ns); 0 = now */

    /* --merge FILE...: report on histogram files instead of running */
    bool merge;
    char **files;
    int nfiles;
};

/* Counters. Every one is either informational or an error; errors sum into "errors". */
enum stat_id {
    ST_SENT,     /* messages written (warm-up included) */
    ST_RECEIVED, /* echoes that verified (warm-up included) */
    ST_MEASURED, /* verified echoes of messages due inside the measurement period */
    ST_BYTES_SENT,
    ST_BYTES_RECEIVED,
    ST_CONNECTS,     /* connections established */
    ST_CHURN_CLOSES, /* connections closed by churn after their exchanges */
    ST_BACKLOG_END,  /* open loop: messages due but not sent when sending stopped */
    ST_LOST,         /* UDP: datagrams never answered (after the drain) */
    ST_LATE,         /* UDP: answers too old to tell apart from duplicates (counted lost) */
    /* errors from here on */
    ST_MISMATCH,     /* echo differs from what was sent */
    ST_SHORT,        /* truncated echo: connection ended or datagram shorter */
    ST_REORDER,      /* echo came back before one sent earlier */
    ST_DUPLICATE,    /* same echo twice, or an echo of something never sent */
    ST_BAD_REPLY,    /* templates: a reply that cannot be framed (garbage) */
    ST_TOO_LONG,     /* templates: a reply longer than --max-reply */
    ST_UNSOLICITED,  /* templates: bytes received while no request was outstanding */
    ST_UNANSWERED,   /* TCP: no echo by the end of the drain, or the connection died */
    ST_REFUSED,      /* ECONNREFUSED (UDP: ICMP port unreachable) */
    ST_RESET,        /* ECONNRESET / EPIPE */
    ST_PEER_CLOSED,  /* server closed the connection (EOF) */
    ST_ADDRNOTAVAIL, /* EADDRNOTAVAIL: out of local ports (or a --source not local) */
    ST_CONNECT_TIMEOUT,
    ST_SOCKET_ERROR, /* any other socket error (EMFILE, ENETUNREACH, ...) */
    ST__COUNT
};
#define ST_FIRST_ERROR ST_MISMATCH

extern const char *const stat_names[ST__COUNT];

struct load_stats {
    uint64_t c[ST__COUNT];
};

/* Owner thread only: add with a relaxed store so the progress thread may read at any time. */
static inline void stat_add(struct load_stats *s, enum stat_id id, uint64_t n)
{
    __atomic_store_n(&s->c[id], s->c[id] + n, __ATOMIC_RELAXED);
}

static inline uint64_t stat_errors(const struct load_stats *s)
{
    uint64_t e = 0;
    int i;

    for (i = ST_FIRST_ERROR; i < ST__COUNT; i++)
        e += s->c[i];
    return e;
}

struct load_result {
    struct load_stats st;
    struct hist *corrected; /* recv - intended (open loop); = raw in closed loop */
    struct hist *raw;       /* recv - actual send */
    struct hist *connect;   /* connect() to established */
    struct series *series;  /* per interval: rate, errors, latency */
    uint64_t measure_ns;    /* length of the measurement period used for rates */
    uint64_t drain_used_ns; /* how long the drain actually took */
    double wall_s;
    double cpu_s;                 /* CPU time of the whole process (CLOCK_PROCESS_CPUTIME_ID) */
    double cpu_user_s, cpu_sys_s; /* getrusage split (tick-sampled: coarse on short runs) */
    bool interrupted;             /* stopped early by SIGINT/SIGTERM */
    char first_error[160];        /* first error seen, in words (what, errno text) */
};

/* Shared, read-only timeline and stop flag of one run. */
struct load_clock {
    uint64_t t0;       /* run start */
    uint64_t warm_end; /* messages due before this are not measured */
    uint64_t send_end; /* no message is sent at or after this */
    uint64_t hard_end; /* send_end + drain: the thread returns by then */
    int stop;          /* set atomically: 1 = stop sending and drain, 2 = stop now */
};

/* One engine thread: its share of the connections, its counters and histograms. */
struct load_thread {
    const struct load_config *cfg;
    struct load_clock *clk;
    unsigned index;
    unsigned first_conn, nconns; /* global connection numbers [first, first + n) */
    uint64_t quota;              /* --count share of this thread (0 = unlimited) */
    struct load_stats st;
    struct hist *corrected, *raw, *connect;
    struct series *series;
    uint64_t last_rx_ns; /* last measured echo (for --count rates) */
    uint64_t drain_start_ns, drain_end_ns;
    int done; /* set when the thread has finished */
    char first_error[160];
};

/* Monotonic time in nanoseconds. */
static inline uint64_t load_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Defaults for every option (target unset). */
void load_config_defaults(struct load_config *cfg);
/* Releases what opts_parse allocated in cfg (templates). */
void load_config_free(struct load_config *cfg);

/* The default number of engine threads: one per online CPU, at most one per connection. */
unsigned load_default_threads(unsigned connections);

/* Runs the load described by cfg and fills res (which then owns three histograms: free
 * them with engine_result_free). Prints a progress line on stderr once a second when
 * cfg->progress says so. Returns 0, or -1 with a message in err when the run could not
 * start (threads, memory); counted errors never make it fail. */
int engine_run(const struct load_config *cfg, struct load_result *res, char *err, size_t errlen);
void engine_result_free(struct load_result *res);

/* Applies the thresholds and the verification rules: returns 0 when the run passes, 1 when
 * it fails, with the reasons ("; "-separated) in why. */
int engine_verdict(const struct load_config *cfg, const struct load_result *res, char *why,
                   size_t whylen);

/* Asks a running engine_run to stop early (async-signal-safe): the first call stops
 * sending and drains, a second one ends the run at once. */
void engine_request_stop(void);

/* Engine threads (tcp.c, udp.c): drive th->nconns connections until the clock says stop. */
void *tcp_thread(void *th);
void *udp_thread(void *th);

/* Records the first error text of a thread (errno text added when err != 0). */
void load_note_error(struct load_thread *th, const char *what, int err);

/* Waits for events up to timeout_ns (nanosecond resolution with epoll_pwait2, falling back
 * to epoll_wait rounded up to milliseconds). Returns what epoll_wait returns. */
struct epoll_event;
int engine_wait(int ep, struct epoll_event *ev, int max, uint64_t timeout_ns);

/* Binds socket fd to source address i of cfg (port 0) with IP_BIND_ADDRESS_NO_PORT, so
 * that connect() picks the local port for the whole 4-tuple. Returns 0, or -1 with errno
 * set. */
int load_bind_source(int fd, const struct load_config *cfg, unsigned i);

/* The counter a socket errno belongs to (ST_REFUSED, ST_RESET, ... ST_SOCKET_ERROR). */
enum stat_id engine_errno_stat(int err);

/* Whether a message due at `intended` belongs to the measurement period. */
static inline bool load_measured(const struct load_clock *clk, uint64_t intended)
{
    return intended >= clk->warm_end && intended < clk->send_end;
}

/* 0: run on; 1: stop sending and drain; 2: stop now. */
static inline int load_stop_level(const struct load_clock *clk)
{
    return __atomic_load_n(&clk->stop, __ATOMIC_RELAXED);
}

/* Open-loop schedule of one thread: its k-th message is due at t0 + k * interval and goes
 * to connection k % n, so connection c's j-th message is due at t0 + (j * n + c) * interval.
 * Every connection thus sends at total_rate / connections, evenly staggered. */
struct load_sched {
    uint64_t t0;
    double interval_ns; /* between two messages of the thread */
    unsigned n;         /* connections of the thread */
    uint64_t k;         /* next thread message to release */
};

static inline uint64_t sched_at(const struct load_sched *s, uint64_t k)
{
    return s->t0 + (uint64_t)((double)k * s->interval_ns);
}

static inline uint64_t sched_conn_at(const struct load_sched *s, unsigned c, uint64_t j)
{
    return sched_at(s, j * s->n + c);
}

/* Sets up th's schedule from the configured total rate. */
void sched_init(struct load_sched *s, const struct load_thread *th);

/* Where an engine thread stands in the timeline and what it may still send: the phase
 * control tcp_thread() and udp_thread() share (engine.c). An engine keeps one in its context
 * and hands its own steps to phase_run() (struct phase_ops); its send paths read the flags
 * and keep `backlog` and `quota` up to date with the phase_* helpers below. */
struct load_phase {
    bool open;               /* open loop: messages are released by `sched` */
    bool counted;            /* --count given: `quota` bounds the measured messages */
    bool release_over;       /* no more messages will be released (quota, send_end) */
    bool sending_over;       /* send_end passed or stop asked: nothing is sent any more */
    uint64_t quota;          /* measured messages this thread may still send */
    uint64_t backlog;        /* open loop: released but not sent yet (thread total) */
    uint64_t hard_end;       /* the thread returns by then (a stop request brings it closer) */
    uint64_t next_scan;      /* when the engine's timers are due again */
    struct load_sched sched; /* open loop */
    unsigned *pending;       /* open loop: connections given messages to send (phase_release) */
    unsigned npending;       /* entries in `pending` */
    bool *queued;            /* per connection: whether it is in `pending` */
};

/* What differs between the engines in the thread loop of phase_run(); ctx is the engine's. */
struct phase_ops {
    /* open loop: sends what the schedule released up to now (phase_due, phase_release) */
    void (*release_due)(void *ctx, uint64_t now);
    /* timers (connects, retries, timeouts), every 10 ms and once at the start */
    void (*scan)(void *ctx, uint64_t now);
    /* whether everything sent so far has been answered: the drain is over */
    bool (*drained)(const void *ctx);
    /* an epoll event of the connection whose number (0 .. n-1 in the thread) is in its data */
    void (*event)(void *ctx, uint32_t conn, uint32_t events);
};

/* Starts the phase of th once its engine has set itself up (setup_rc: 0, or -1 with errno
 * set). Returns false when the thread has nothing to do: the set-up failed (counted as an
 * error) or its --count share is 0. Release with phase_free in any case. */
bool phase_begin(struct load_phase *ph, struct load_thread *th, int setup_rc);
void phase_free(struct load_phase *ph);

/* The thread loop: sends until the end of sending (or a stop request), drains until
 * ops->drained() or the hard end, handling the events of epoll instance ep. Notes the drain
 * in th and counts the backlog left. Returns the time it ended. */
uint64_t phase_run(struct load_phase *ph, struct load_thread *th, int ep,
                   const struct phase_ops *ops, void *ctx);

/* Takes a message due at `due` from the --count quota when it is measured. Returns false,
 * and ends the releases, when the quota is spent. */
static inline bool phase_take(struct load_phase *ph, const struct load_clock *clk, uint64_t due)
{
    if (!ph->counted || !load_measured(clk, due))
        return true;
    if (ph->quota == 0) {
        ph->release_over = true;
        return false;
    }
    ph->quota--;
    return true;
}

/* Open loop: whether the next message of the schedule is due by `now` (its due time in
 * *due). Once the schedule reaches the end of sending, the releases are over. */
static inline bool phase_due(struct load_phase *ph, const struct load_clock *clk, uint64_t now,
                             uint64_t *due)
{
    if (ph->release_over)
        return false;
    *due = sched_at(&ph->sched, ph->sched.k);
    if (*due > now)
        return false;
    if (*due >= clk->send_end) {
        ph->release_over = true;
        return false;
    }
    return true;
}

/* Open loop: the connection (0 .. n-1 in the thread) the next message of the schedule goes
 * to. */
static inline unsigned phase_slot(const struct load_phase *ph)
{
    return (unsigned)(ph->sched.k % ph->sched.n);
}

/* Open loop: passes over the next message of the schedule (its connection cannot take it):
 * it is neither sent nor counted. */
static inline void phase_skip(struct load_phase *ph) { ph->sched.k++; }

/* Open loop: gives the next message of the schedule to its connection `conn` (backlog until
 * sent) and queues the connection for sending. */
static inline void phase_release(struct load_phase *ph, unsigned conn)
{
    ph->sched.k++;
    ph->backlog++;
    if (!ph->queued[conn]) {
        ph->queued[conn] = true;
        ph->pending[ph->npending++] = conn;
    }
}

/* Empties the queue of phase_release: returns how many connections it held, listed in
 * ph->pending[] until the next phase_release. */
static inline unsigned phase_pending(struct load_phase *ph)
{
    unsigned i, n = ph->npending;

    for (i = 0; i < n; i++)
        ph->queued[ph->pending[i]] = false;
    ph->npending = 0;
    return n;
}

/* Splits --count between threads exactly (shares sum to count). */
uint64_t load_quota_share(uint64_t count, unsigned first, unsigned n, unsigned total);

#endif
