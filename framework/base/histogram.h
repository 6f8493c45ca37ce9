/*
 * histogram.h - a latency histogram that one thread writes and any thread
 * reads: the per-listener, per-worker histograms of the metrics page
 * (connection duration, handler callback time, time to first byte, TLS
 * handshake time).
 *
 * The owner records with histogram_observe: a short scan of fixed bucket
 * bounds and two relaxed load-and-stores (wharf_counter_add), no lock and
 * no bus lock.  A scrape sums the workers' buckets with relaxed loads
 * (histogram_read), so the hot path never waits for a reader.  Buckets are
 * kept non-cumulative, with the overflow bucket last; the count is the sum
 * of the buckets, so a snapshot's +Inf bucket always equals its _count.
 */
#ifndef WHARF_HISTOGRAM_H
#define WHARF_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "wharf_counter.h"

/* The histograms there are, each with its own bucket bounds. */
enum histogram_kind {
    HISTOGRAM_CONN_DURATION = 0, /* accept to close: 1 ms .. 1 h */
    HISTOGRAM_HANDLER,           /* one handler callback: 1 us .. 1 s */
    HISTOGRAM_TTFB,              /* accept to the first byte written: 100 us .. 10 s */
    HISTOGRAM_TLS_HANDSHAKE,     /* a TLS handshake, start to done: 100 us .. 10 s */
    HISTOGRAM_KINDS
};

/* Finite bucket bounds per kind; one more bucket holds what is above. */
#define HISTOGRAM_BOUNDS 16

struct histogram {
    _Atomic uint64_t bucket[HISTOGRAM_BOUNDS + 1]; /* bound[i-1] < v <= bound[i]; last: above */
    _Atomic uint64_t sum_ns;
};

/* The bounds of kind k in nanoseconds, ascending (HISTOGRAM_BOUNDS of them). */
const uint64_t *histogram_bounds(enum histogram_kind k);

/* Records one observation of `ns` nanoseconds; only the owner thread. */
static inline void histogram_observe(struct histogram *h, enum histogram_kind k, uint64_t ns)
{
    const uint64_t *b = histogram_bounds(k);
    unsigned i = 0;
    while (i < HISTOGRAM_BOUNDS && ns > b[i])
        i++;
    wharf_counter_add(&h->bucket[i], 1);
    wharf_counter_add(&h->sum_ns, ns);
}

/* The monotonic clock in nanoseconds (CLOCK_MONOTONIC: a vDSO call, about
 * 20 ns; the coarse clock's 1-4 ms steps would put every callback in the
 * first bucket). */
static inline uint64_t histogram_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A sum of histograms at one moment: buckets non-cumulative. */
struct histogram_snapshot {
    uint64_t bucket[HISTOGRAM_BOUNDS + 1];
    uint64_t count, sum_ns;
};

/* Adds h (read with relaxed loads; any thread) into *s. */
void histogram_read(const struct histogram *h, struct histogram_snapshot *s);

#endif
