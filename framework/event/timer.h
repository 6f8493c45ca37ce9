/*
 * timer.h - a per-worker min-heap of deadlines (O(log n) add/remove/update,
 * O(1) next deadline), plus the monotonic millisecond clock.
 *
 * Timers are intrusive: the owner embeds struct timer and the heap stores
 * pointers to it.  A worker sleeps in epoll_wait until timer_next_ms() and
 * then runs timer_expire().  Not thread-safe: one heap belongs to one thread.
 */
#ifndef WHARF_TIMER_H
#define WHARF_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct timer;
typedef void (*timer_cb)(struct timer *t, uint64_t now_ms);

struct timer {
    uint64_t deadline_ms;
    size_t index;       /* position in the heap; TIMER_NONE when not armed */
    timer_cb cb;
};

#define TIMER_NONE ((size_t)-1)

struct timer_heap {
    struct timer **items;
    size_t len, cap;
};

/* Monotonic clock in milliseconds. */
uint64_t timer_now_ms(void);

void timer_heap_init(struct timer_heap *h);
/* Frees the array, never touching the timers (owners disarm them first). */
void timer_heap_free(struct timer_heap *h);

/* Initialises a timer (not armed). */
void timer_init(struct timer *t, timer_cb cb);
static inline int timer_armed(const struct timer *t) { return t->index != TIMER_NONE; }
/* Arms (or re-arms) t for deadline_ms; O(log n).  Returns 0 or -ENOMEM
 * (t unchanged). */
int timer_arm(struct timer_heap *h, struct timer *t, uint64_t deadline_ms);
/* Disarms t if armed. */
void timer_disarm(struct timer_heap *h, struct timer *t);
/* Milliseconds from now_ms to the earliest deadline (0 if past, capped at
 * INT_MAX), or -1 when empty: an epoll_wait timeout. */
int timer_next_ms(const struct timer_heap *h, uint64_t now_ms);
/* Disarms and calls back every timer whose deadline <= now_ms, earliest first.
 * A callback may re-arm, disarm or free any timer (but must not call
 * timer_expire or timer_heap_free).  A timer disarmed by an earlier callback
 * does not fire; one armed or re-armed during the call fires on a later call
 * even if its deadline <= now_ms.  Returns how many fired. */
size_t timer_expire(struct timer_heap *h, uint64_t now_ms);

#endif
