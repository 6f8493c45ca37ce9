/*
 * wharf_counter.h - a statistics counter that one thread writes and any
 * thread may read: per-worker counters that a "stats" request or a metrics
 * scrape sums while the workers go on counting.
 *
 * The owner adds with wharf_counter_add, a relaxed load and store: no bus
 * lock, since nobody else writes the counter; readers load it with
 * atomic_load_explicit(&c, memory_order_relaxed) and see a recent value,
 * never a torn one.  A counter that two threads write needs
 * atomic_fetch_add instead.  Adding (uint64_t)-n subtracts n (a gauge).
 *
 * Header only: nothing here is a symbol of libwharf.
 */
#ifndef WHARF_COUNTER_H
#define WHARF_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

/* Adds n to *c; only the thread that owns *c may call it. */
static inline void wharf_counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

#endif
