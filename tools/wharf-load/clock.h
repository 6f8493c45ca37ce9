/* clock.h - the timeline of one wharf-load run: the monotonic nanosecond clock every part
 * reads, and the run's fixed instants (start, end of warm-up, end of sending, hard end),
 * which engine_run sets before the engine threads start and nobody changes after. */
#ifndef WLOAD_CLOCK_H
#define WLOAD_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Shared, read-only timeline of one run. */
struct load_clock {
    uint64_t t0;       /* run start */
    uint64_t warm_end; /* messages due before this are not measured */
    uint64_t send_end; /* no message is sent at or after this */
    uint64_t hard_end; /* send_end + drain: the thread returns by then */
};

/* Monotonic time (CLOCK_MONOTONIC) in nanoseconds. */
static inline uint64_t load_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether a message due at `intended` belongs to the measurement period. */
static inline bool load_measured(const struct load_clock *clk, uint64_t intended)
{
    return intended >= clk->warm_end && intended < clk->send_end;
}

#endif
