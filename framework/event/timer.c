/*
 * timer.c - the per-worker deadline heap and the monotonic clock.
 *
 * The heap is a binary min-heap of struct timer pointers in h->items[0, len),
 * ordered by deadline_ms; every timer records its slot in t->index, so
 * disarming or re-arming one is O(log n) without a search.  Timers with equal
 * deadlines fire in no particular order.
 *
 * Expiry runs in two phases so that callbacks may arm, re-arm, disarm and
 * even free timers (their own or others'):
 *
 *  1. every timer due at entry is popped off the heap, earliest first, and
 *     parked in the free tail of the same array: the first at items[cap-1],
 *     the next at items[cap-2], and so on.  A parked timer is still armed and
 *     its index is its parking slot, which is always >= len.
 *  2. the parked timers are fired from items[cap-1] downwards.  Each slot is
 *     cleared and the timer's index set to TIMER_NONE before its callback.
 *
 * A callback that disarms a parked timer clears its slot, so the timer does
 * not fire and nothing refers to it any more (it may then be freed).  One
 * that re-arms a parked timer moves it back into the heap.  Timers armed
 * during timer_expire go into the heap, so one armed with a deadline <= now
 * fires on the next call, not this one: a timer that keeps re-arming itself
 * for "now" fires once per call instead of looping forever.
 *
 * Array invariant: a slot in [len, cap) is NULL unless it holds a parked
 * timer.  The heap only ever takes slot items[len], and only when it is NULL;
 * when it is not (or len == cap) the array doubles and the parked timers move
 * up by the growth, keeping their distance from the end of the array, which
 * is how phase 2 finds them again.
 */
#include "timer.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMER_MIN_CAP ((size_t)64)

/* Reads CLOCK_MONOTONIC in milliseconds; cannot fail on Linux. */
uint64_t timer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Makes h an empty heap that owns no memory. */
void timer_heap_init(struct timer_heap *h)
{
    h->items = NULL;
    h->len = 0;
    h->cap = 0;
}

/*
 * Frees the array, never touching the timers: they belong to their owners,
 * who disarm them first (a timer still armed may already be gone).  Must not
 * be called from a callback.
 */
void timer_heap_free(struct timer_heap *h)
{
    free(h->items);
    timer_heap_init(h);
}

/* Makes t a disarmed timer that will call cb when it fires. */
void timer_init(struct timer *t, timer_cb cb)
{
    t->deadline_ms = 0;
    t->index = TIMER_NONE;
    t->cb = cb;
}

static void timer_place(struct timer_heap *h, size_t i, struct timer *t)
{
    h->items[i] = t;
    t->index = i;
}

/* Moves the timer at slot i towards the root while it is earlier than its
 * parent. */
static void timer_sift_up(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->deadline_ms <= t->deadline_ms)
            break;
        timer_place(h, i, h->items[parent]);
        i = parent;
    }
    timer_place(h, i, t);
}

/* Moves the timer at slot i towards the leaves while a child is earlier. */
static void timer_sift_down(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len &&
            h->items[child + 1]->deadline_ms < h->items[child]->deadline_ms)
            child++;
        if (t->deadline_ms <= h->items[child]->deadline_ms)
            break;
        timer_place(h, i, h->items[child]);
        i = child;
    }
    timer_place(h, i, t);
}

/* Restores heap order around slot i after its timer's deadline changed. */
static void timer_fix(struct timer_heap *h, size_t i)
{
    if (i > 0 && h->items[i]->deadline_ms < h->items[(i - 1) / 2]->deadline_ms)
        timer_sift_up(h, i);
    else
        timer_sift_down(h, i);
}

/* Takes the timer at heap slot i out of the heap (its index is left for the
 * caller to set) and keeps the freed slot NULL. */
static void timer_heap_remove(struct timer_heap *h, size_t i)
{
    struct timer *last = h->items[--h->len];
    h->items[h->len] = NULL;
    if (i != h->len) {
        timer_place(h, i, last);
        timer_fix(h, i);
    }
}

/*
 * Doubles the array.  Parked timers move up by the growth so that their
 * distance from the end of the array is unchanged.  Returns 0 or -ENOMEM
 * (array unchanged).
 */
static int timer_heap_grow(struct timer_heap *h)
{
    size_t old = h->cap;
    size_t cap = old ? old : TIMER_MIN_CAP;
    if (old != 0) {
        if (old > SIZE_MAX / 2 / sizeof(*h->items))
            return -ENOMEM;
        cap = old * 2;
    }
    struct timer **items = realloc(h->items, cap * sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    memset(items + old, 0, (cap - old) * sizeof(*items));
    h->items = items;
    h->cap = cap;

    /* Only non-empty while timer_expire is firing parked timers. */
    size_t delta = cap - old;
    for (size_t i = old; i-- > h->len;) {
        if (items[i] != NULL) {
            timer_place(h, i + delta, items[i]);
            items[i] = NULL;
        }
    }
    return 0;
}

/*
 * Arms t to fire at deadline_ms, or moves it if already armed (O(log n)).
 * A timer armed from a callback during timer_expire fires on a later call,
 * even if its deadline has passed.  Returns 0, or -ENOMEM with t unchanged
 * (only possible when t was not in the heap and the array had to grow).
 */
int timer_arm(struct timer_heap *h, struct timer *t, uint64_t deadline_ms)
{
    assert(t->cb != NULL);
    if (t->index != TIMER_NONE && t->index < h->len) {
        assert(h->items[t->index] == t);
        t->deadline_ms = deadline_ms;
        timer_fix(h, t->index);
        return 0;
    }

    if ((h->len == h->cap || h->items[h->len] != NULL) && timer_heap_grow(h) < 0)
        return -ENOMEM;
    if (t->index != TIMER_NONE) {
        /* Parked by timer_expire and not fired yet: unpark it.  Done after
         * the growth, which may have moved it. */
        h->items[t->index] = NULL;
        t->index = TIMER_NONE;
    }
    t->deadline_ms = deadline_ms;
    timer_place(h, h->len++, t);
    timer_sift_up(h, t->index);
    return 0;
}

/* Disarms t if armed (O(log n)); afterwards the heap holds no reference to
 * it.  Disarming a timer that is not armed does nothing. */
void timer_disarm(struct timer_heap *h, struct timer *t)
{
    size_t i = t->index;
    if (i == TIMER_NONE)
        return;
    assert(i < h->cap && h->items[i] == t);
    if (i < h->len)
        timer_heap_remove(h, i);
    else
        h->items[i] = NULL; /* parked: it will not fire */
    t->index = TIMER_NONE;
}

/*
 * Returns the milliseconds from now_ms to the earliest deadline: 0 if it has
 * passed, capped at INT_MAX, or -1 when no timer is armed (the epoll_wait
 * timeout convention).  O(1).
 */
int timer_next_ms(const struct timer_heap *h, uint64_t now_ms)
{
    if (h->len == 0)
        return -1;
    uint64_t deadline = h->items[0]->deadline_ms;
    if (deadline <= now_ms)
        return 0;
    uint64_t gap = deadline - now_ms;
    return gap > (uint64_t)INT_MAX ? INT_MAX : (int)gap;
}

/*
 * Fires every timer that was armed with deadline <= now_ms when the call
 * began, earliest first, passing now_ms to each callback.  Each timer is
 * disarmed (index TIMER_NONE) before its callback runs.  Callbacks may arm,
 * re-arm, disarm or free any timer, but must not call timer_expire or
 * timer_heap_free on the same heap.  A timer disarmed by an earlier callback
 * does not fire; one armed or re-armed during the call fires on a later
 * call.  Returns how many fired.  O(k log n) for k due timers.
 */
size_t timer_expire(struct timer_heap *h, uint64_t now_ms)
{
    size_t parked = 0;
    while (h->len > 0 && h->items[0]->deadline_ms <= now_ms) {
        struct timer *t = h->items[0];
        timer_heap_remove(h, 0);
        /* len + parked <= cap held before the pop, so this slot is >= len,
         * and it is NULL: either free or the one the pop just vacated. */
        timer_place(h, h->cap - 1 - parked, t);
        parked++;
    }

    size_t fired = 0;
    for (size_t off = 1; off <= parked; off++) {
        size_t i = h->cap - off;
        struct timer *t = h->items[i];
        /* NULL: disarmed or re-armed by an earlier callback.  i < len: the
         * heap has since grown over that emptied slot. */
        if (t == NULL || i < h->len)
            continue;
        h->items[i] = NULL;
        t->index = TIMER_NONE;
        t->cb(t, now_ms);
        fired++;
    }
    return fired;
}
