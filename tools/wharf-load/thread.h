/* thread.h - one wharf-load engine thread as engine_run sets it up and merges it: its
 * share of the connections, its event loop (framework/event/loop.h), its counters and
 * histograms; the merged result of a run; and the helpers both engines (tcp.c, udp.c)
 * use. thread.c implements the helpers.
 *
 * Ownership: engine_run owns every struct load_thread and its loop: it initialises the
 * loop before the thread starts, posts stop requests to the loop's mailbox while the
 * thread runs, and destroys the loop after joining the thread. The thread runs the loop
 * and is the only writer of everything else in it. */
#ifndef WLOAD_THREAD_H
#define WLOAD_THREAD_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "hist.h"
#include "loop.h"
#include "opts.h"
#include "series.h"
#include "stats.h"
#include "tls.h"

/* What a stop request asks (engine_request_stop, then the threads' mailboxes). */
enum load_stop {
    LOAD_RUN,       /* no request */
    LOAD_DRAIN,     /* stop sending, drain what is in flight */
    LOAD_STOP_NOW,  /* return at once */
};

/* One engine thread: its share of the connections, its counters and histograms. */
struct load_thread {
    const struct load_config *cfg;
    const struct load_clock *clk;
    unsigned index;
    unsigned first_conn, nconns; /* global connection numbers [first, first + n) */
    uint64_t quota;              /* --count share of this thread (0 = unlimited) */
    struct loop loop;            /* the thread's event loop (owned by engine_run) */
    bool loop_ready;             /* loop_init succeeded */
    enum load_stop stop;         /* the last stop request its mailbox delivered */
    struct load_stats st;
    struct hist *corrected, *raw, *connect;
    struct hist *handshake;  /* --tls: TCP established to handshake done */
    struct tls_tally tally;  /* --tls: what the handshakes negotiated */
    struct hist *cmd[TMPL_MAX]; /* templates: corrected latency per template (NULL: none) */
    struct series *series;
    struct target_counts tgt[LOAD_MAX_TARGETS]; /* several targets: counts per target */
    uint64_t last_rx_ns; /* last measured echo (for --count rates) */
    uint64_t drain_start_ns, drain_end_ns;
    atomic_bool done; /* set (release) when the thread has finished: load_thread_finish */
    sem_t *wake;      /* posted by load_thread_finish (engine.c sleeps on it) */
    char first_error[160];
};

struct load_result {
    struct load_stats st;
    struct hist *corrected; /* recv - intended (open loop); = raw in closed loop */
    struct hist *raw;       /* recv - actual send */
    struct hist *connect;   /* connect() to established */
    struct hist *handshake; /* --tls: established to TLS handshake done */
    struct tls_tally tally; /* --tls: handshakes by version, cipher and ALPN protocol */
    struct hist *cmd[TMPL_MAX]; /* templates: corrected latency per template (NULL: none) */
    struct series *series;  /* per interval: rate, errors, latency */
    struct target_counts tgt[LOAD_MAX_TARGETS]; /* counts per target */
    uint64_t measure_ns;    /* length of the measurement period used for rates */
    uint64_t drain_used_ns; /* how long the drain actually took */
    double wall_s;
    double cpu_s;                 /* CPU time of the whole process (CLOCK_PROCESS_CPUTIME_ID) */
    double cpu_user_s, cpu_sys_s; /* getrusage split (tick-sampled: coarse on short runs) */
    bool interrupted;             /* stopped early by SIGINT/SIGTERM */
    char first_error[160];        /* first error seen, in words (what, errno text) */
    /* --script: each thread's replies per second over each --interval wholly inside the
     * measured period (rounded, ascending; engine.c), for done()'s third argument */
    uint64_t *rates;
    size_t nrates;
};

/* The default number of engine threads: one per online CPU, at most one per connection. */
unsigned load_default_threads(unsigned connections);

/* Records the first error text of a thread (errno text added when err != 0). */
void load_note_error(struct load_thread *th, const char *what, int err);

/* The last thing an engine thread does: marks it done and wakes the engine. */
void load_thread_finish(struct load_thread *th);

/* Binds socket fd to source address i of cfg (port 0) with IP_BIND_ADDRESS_NO_PORT, so
 * that connect() picks the local port for the whole 4-tuple. Returns 0, or -1 with errno
 * set. */
int load_bind_source(int fd, const struct load_config *cfg, unsigned i);

/* Splits --count between threads exactly (shares sum to count). */
uint64_t load_quota_share(uint64_t count, unsigned first, unsigned n, unsigned total);

#endif
