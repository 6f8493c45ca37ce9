/*
 * histogram.c - the bucket bounds of each histogram kind and the reader's
 * sum (see histogram.h).  The bounds follow the Prometheus client
 * libraries' habit of 1-2.5-5 steps, spread over the range each kind lives
 * in.
 */
#include "histogram.h"

#define US 1000ull
#define MS 1000000ull
#define S 1000000000ull

static const uint64_t histogram_table[HISTOGRAM_KINDS][HISTOGRAM_BOUNDS] = {
    [HISTOGRAM_CONN_DURATION] = {1 * MS, 5 * MS, 10 * MS, 50 * MS, 100 * MS, 250 * MS, 500 * MS,
                                 1 * S, 2500 * MS, 5 * S, 10 * S, 30 * S, 60 * S, 300 * S,
                                 1800 * S, 3600 * S},
    [HISTOGRAM_HANDLER] = {1 * US, 2500, 5 * US, 10 * US, 25 * US, 50 * US, 100 * US, 250 * US,
                           500 * US, 1 * MS, 2500 * US, 5 * MS, 10 * MS, 50 * MS, 250 * MS, 1 * S},
    [HISTOGRAM_TTFB] = {100 * US, 250 * US, 500 * US, 1 * MS, 2500 * US, 5 * MS, 10 * MS, 25 * MS,
                        50 * MS, 100 * MS, 250 * MS, 500 * MS, 1 * S, 2500 * MS, 5 * S, 10 * S},
    [HISTOGRAM_TLS_HANDSHAKE] = {100 * US, 250 * US, 500 * US, 1 * MS, 2500 * US, 5 * MS, 10 * MS,
                                 25 * MS, 50 * MS, 100 * MS, 250 * MS, 500 * MS, 1 * S,
                                 2500 * MS, 5 * S, 10 * S},
};

const uint64_t *histogram_bounds(enum histogram_kind k)
{
    return histogram_table[k];
}

void histogram_read(const struct histogram *h, struct histogram_snapshot *s)
{
    for (unsigned i = 0; i <= HISTOGRAM_BOUNDS; i++) {
        uint64_t v = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        s->bucket[i] += v;
        s->count += v;
    }
    s->sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}
