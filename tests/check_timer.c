/*
 * check_timer.c - tests for timer.c, the per-worker deadline heap: firing
 * order, re-arming, disarming, timer_next_ms, what callbacks may do during
 * timer_expire, a 100k-timer run and the monotonic clock.
 */
#include "check_main.h"
#include "log.h"
#include "timer.h"

#include <check.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define MANY 100000

/* A timer with an owner-side id, as a connection would embed it. */
struct tt {
    struct timer t;
    int id;
};

#define TT(tp) ((struct tt *)((char *)(tp) - offsetof(struct tt, t)))

/* What fired, in order, across callbacks. */
static struct {
    size_t n;
    int id[MANY];
    uint64_t deadline[MANY];
    uint64_t now[MANY];
} fired;

static struct tt many[MANY];
static struct timer_heap heap;

static void reset(void)
{
    fired.n = 0;
    timer_heap_init(&heap);
}

static void teardown(void)
{
    timer_heap_free(&heap);
}

static void record(struct timer *t, uint64_t now_ms)
{
    ck_assert(!timer_armed(t));
    ck_assert_uint_lt(fired.n, MANY);
    fired.id[fired.n] = TT(t)->id;
    fired.deadline[fired.n] = t->deadline_ms;
    fired.now[fired.n] = now_ms;
    fired.n++;
}

static void tt_init(struct tt *x, int id, timer_cb cb)
{
    timer_init(&x->t, cb);
    x->id = id;
}

/* xorshift64 with a fixed seed, so every run sees the same deadlines. */
static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Checks every heap slot: the timer knows its slot and is not earlier than
 * its parent. */
static void assert_heap_ok(const struct timer_heap *h)
{
    for (size_t i = 0; i < h->len; i++) {
        ck_assert_uint_eq(h->items[i]->index, i);
        if (i > 0)
            ck_assert_uint_le(h->items[(i - 1) / 2]->deadline_ms,
                              h->items[i]->deadline_ms);
    }
}

START_TEST(test_random_deadlines_fire_earliest_first)
{
    enum { N = 2000 };
    rng_state = 0x9e3779b97f4a7c15u;
    size_t due_at_half = 0;
    for (int i = 0; i < N; i++) {
        uint64_t d = 1 + rng() % 100000;
        tt_init(&many[i], i, record);
        ck_assert_int_eq(timer_arm(&heap, &many[i].t, d), 0);
        due_at_half += d <= 50000;
    }
    assert_heap_ok(&heap);

    /* First only what is due at 50000, then the rest. */
    ck_assert_uint_eq(timer_expire(&heap, 50000), due_at_half);
    ck_assert_uint_eq(fired.n, due_at_half);
    ck_assert_uint_eq(heap.len, N - due_at_half);
    ck_assert_uint_eq(timer_expire(&heap, 100000), N - due_at_half);
    ck_assert_uint_eq(fired.n, N);

    for (size_t i = 0; i < fired.n; i++) {
        ck_assert_uint_le(fired.deadline[i], fired.now[i]);
        if (i > 0)
            ck_assert_uint_le(fired.deadline[i - 1], fired.deadline[i]);
        if (i < due_at_half)
            ck_assert_uint_le(fired.deadline[i], 50000);
        else
            ck_assert_uint_gt(fired.deadline[i], 50000);
    }
    for (int i = 0; i < N; i++)
        ck_assert(!timer_armed(&many[i].t));
    ck_assert_int_eq(timer_next_ms(&heap, 100000), -1);
}
END_TEST

START_TEST(test_rearm_moves_earlier)
{
    struct tt a, b, c;
    tt_init(&a, 1, record);
    tt_init(&b, 2, record);
    tt_init(&c, 3, record);
    ck_assert_int_eq(timer_arm(&heap, &a.t, 100), 0);
    ck_assert_int_eq(timer_arm(&heap, &b.t, 200), 0);
    ck_assert_int_eq(timer_arm(&heap, &c.t, 300), 0);

    ck_assert_int_eq(timer_arm(&heap, &c.t, 50), 0);
    ck_assert_uint_eq(heap.len, 3);
    ck_assert_int_eq(timer_next_ms(&heap, 0), 50);
    assert_heap_ok(&heap);

    ck_assert_uint_eq(timer_expire(&heap, 60), 1);
    ck_assert_int_eq(fired.id[0], 3);
    ck_assert(timer_armed(&a.t));
    ck_assert(timer_armed(&b.t));
    ck_assert(!timer_armed(&c.t));
}
END_TEST

START_TEST(test_rearm_moves_later)
{
    struct tt a, b, c;
    tt_init(&a, 1, record);
    tt_init(&b, 2, record);
    tt_init(&c, 3, record);
    ck_assert_int_eq(timer_arm(&heap, &a.t, 100), 0);
    ck_assert_int_eq(timer_arm(&heap, &b.t, 200), 0);
    ck_assert_int_eq(timer_arm(&heap, &c.t, 300), 0);

    ck_assert_int_eq(timer_arm(&heap, &a.t, 400), 0);
    ck_assert_uint_eq(heap.len, 3);
    ck_assert_int_eq(timer_next_ms(&heap, 0), 200);
    assert_heap_ok(&heap);

    ck_assert_uint_eq(timer_expire(&heap, 350), 2);
    ck_assert_int_eq(fired.id[0], 2);
    ck_assert_int_eq(fired.id[1], 3);
    ck_assert(timer_armed(&a.t));
    ck_assert_uint_eq(timer_expire(&heap, 400), 1);
    ck_assert_int_eq(fired.id[2], 1);
}
END_TEST

START_TEST(test_disarm_from_middle)
{
    enum { N = 15 };
    struct tt x[N];
    for (int i = 0; i < N; i++) {
        tt_init(&x[i], i, record);
        ck_assert_int_eq(timer_arm(&heap, &x[i].t, 10 * (uint64_t)(N - i)), 0);
    }
    /* Pick one that is neither the root nor the last slot. */
    struct tt *mid = NULL;
    for (int i = 0; i < N && mid == NULL; i++)
        if (x[i].t.index == heap.len / 2)
            mid = &x[i];
    ck_assert_ptr_nonnull(mid);

    timer_disarm(&heap, &mid->t);
    ck_assert(!timer_armed(&mid->t));
    ck_assert_uint_eq(heap.len, N - 1);
    assert_heap_ok(&heap);
    timer_disarm(&heap, &mid->t); /* again: no effect */
    ck_assert_uint_eq(heap.len, N - 1);

    ck_assert_uint_eq(timer_expire(&heap, 1000), N - 1);
    for (size_t i = 0; i < fired.n; i++) {
        ck_assert_int_ne(fired.id[i], mid->id);
        if (i > 0)
            ck_assert_uint_lt(fired.deadline[i - 1], fired.deadline[i]);
    }
}
END_TEST

START_TEST(test_next_ms)
{
    struct tt a, far;
    tt_init(&a, 1, record);
    tt_init(&far, 2, record);

    ck_assert_int_eq(timer_next_ms(&heap, 0), -1);
    ck_assert_int_eq(timer_arm(&heap, &a.t, 1000), 0);
    ck_assert_int_eq(timer_next_ms(&heap, 900), 100);
    ck_assert_int_eq(timer_next_ms(&heap, 999), 1);
    ck_assert_int_eq(timer_next_ms(&heap, 1000), 0);
    ck_assert_int_eq(timer_next_ms(&heap, 5000), 0);

    /* A gap wider than an int is capped. */
    timer_disarm(&heap, &a.t);
    ck_assert_int_eq(timer_arm(&heap, &far.t, 7 + (uint64_t)INT_MAX + 10), 0);
    ck_assert_int_eq(timer_next_ms(&heap, 7), INT_MAX);
    ck_assert_int_eq(timer_next_ms(&heap, 17), INT_MAX);
    ck_assert_int_eq(timer_next_ms(&heap, 18), INT_MAX - 1);

    timer_disarm(&heap, &far.t);
    ck_assert_int_eq(timer_next_ms(&heap, 0), -1);
}
END_TEST

static void rearm_self(struct timer *t, uint64_t now_ms)
{
    record(t, now_ms);
    ck_assert_int_eq(timer_arm(&heap, t, now_ms), 0);
}

START_TEST(test_self_rearm_fires_once_per_call)
{
    struct tt a;
    tt_init(&a, 1, rearm_self);
    ck_assert_int_eq(timer_arm(&heap, &a.t, 10), 0);

    ck_assert_uint_eq(timer_expire(&heap, 100), 1);
    ck_assert_uint_eq(fired.n, 1);
    ck_assert(timer_armed(&a.t));
    ck_assert_int_eq(timer_next_ms(&heap, 100), 0);

    ck_assert_uint_eq(timer_expire(&heap, 100), 1);
    ck_assert_uint_eq(fired.n, 2);
    ck_assert_uint_eq(timer_expire(&heap, 150), 1);
    ck_assert_uint_eq(fired.n, 3);
    ck_assert_uint_eq(fired.deadline[2], 100);
    timer_disarm(&heap, &a.t);
}
END_TEST

/* The victim of disarm_other, allocated so that freeing it in the callback
 * lets ASan and valgrind catch any later use by timer_expire. */
static struct tt *victim;

static void disarm_other(struct timer *t, uint64_t now_ms)
{
    record(t, now_ms);
    ck_assert(timer_armed(&victim->t)); /* still pending in this call */
    timer_disarm(&heap, &victim->t);
    ck_assert(!timer_armed(&victim->t));
    free(victim);
    victim = NULL;
}

START_TEST(test_callback_disarms_due_timer)
{
    struct tt a, c;
    victim = malloc(sizeof(*victim));
    ck_assert_ptr_nonnull(victim);
    tt_init(&a, 1, disarm_other);
    tt_init(victim, 2, record);
    tt_init(&c, 3, record);
    ck_assert_int_eq(timer_arm(&heap, &a.t, 10), 0);
    ck_assert_int_eq(timer_arm(&heap, &victim->t, 20), 0);
    ck_assert_int_eq(timer_arm(&heap, &c.t, 30), 0);

    ck_assert_uint_eq(timer_expire(&heap, 100), 2);
    ck_assert_uint_eq(fired.n, 2);
    ck_assert_int_eq(fired.id[0], 1);
    ck_assert_int_eq(fired.id[1], 3);
    ck_assert_ptr_null(victim);
    ck_assert_uint_eq(heap.len, 0);
}
END_TEST

static struct tt *spawned;

static void arm_new_due(struct timer *t, uint64_t now_ms)
{
    record(t, now_ms);
    ck_assert_int_eq(timer_arm(&heap, &spawned->t, now_ms - 5), 0);
}

START_TEST(test_timer_armed_during_expire_fires_next_call)
{
    struct tt a, b;
    tt_init(&a, 1, arm_new_due);
    tt_init(&b, 2, record);
    spawned = &b;
    ck_assert_int_eq(timer_arm(&heap, &a.t, 10), 0);

    ck_assert_uint_eq(timer_expire(&heap, 100), 1);
    ck_assert_int_eq(fired.id[0], 1);
    ck_assert(timer_armed(&b.t));
    ck_assert_uint_eq(timer_expire(&heap, 100), 1);
    ck_assert_int_eq(fired.id[1], 2);
    ck_assert_uint_eq(fired.deadline[1], 95);
}
END_TEST

static void push_other_later(struct timer *t, uint64_t now_ms)
{
    record(t, now_ms);
    ck_assert_int_eq(timer_arm(&heap, &spawned->t, now_ms + 50), 0);
}

START_TEST(test_callback_rearms_due_timer_later)
{
    struct tt a, b;
    tt_init(&a, 1, push_other_later);
    tt_init(&b, 2, record);
    spawned = &b;
    ck_assert_int_eq(timer_arm(&heap, &a.t, 10), 0);
    ck_assert_int_eq(timer_arm(&heap, &b.t, 20), 0);

    ck_assert_uint_eq(timer_expire(&heap, 100), 1);
    ck_assert(timer_armed(&b.t));
    ck_assert_int_eq(timer_next_ms(&heap, 100), 50);
    ck_assert_uint_eq(timer_expire(&heap, 149), 0);
    ck_assert_uint_eq(timer_expire(&heap, 150), 1);
    ck_assert_int_eq(fired.id[1], 2);
}
END_TEST

enum { GROW_DUE = 100, GROW_NEW = 5000 };

static void arm_many(struct timer *t, uint64_t now_ms)
{
    record(t, now_ms);
    for (int i = 0; i < GROW_NEW; i++) {
        tt_init(&many[GROW_DUE + i], GROW_DUE + i, record);
        ck_assert_int_eq(timer_arm(&heap, &many[GROW_DUE + i].t,
                                   now_ms + 1 + (uint64_t)i), 0);
    }
}

START_TEST(test_heap_grows_during_expire)
{
    /* The first callback arms enough timers to grow the array while the
     * other due timers wait their turn; all of them must still fire, in
     * order, and the new ones only later. */
    for (int i = 0; i < GROW_DUE; i++) {
        tt_init(&many[i], i, i == 0 ? arm_many : record);
        ck_assert_int_eq(timer_arm(&heap, &many[i].t, 1 + (uint64_t)i), 0);
    }
    size_t cap_before = heap.cap;

    ck_assert_uint_eq(timer_expire(&heap, 1000), GROW_DUE);
    ck_assert_uint_gt(heap.cap, cap_before);
    ck_assert_uint_eq(heap.len, GROW_NEW);
    for (int i = 0; i < GROW_DUE; i++) {
        ck_assert_int_eq(fired.id[i], i);
        ck_assert(!timer_armed(&many[i].t));
    }
    assert_heap_ok(&heap);

    ck_assert_uint_eq(timer_expire(&heap, 1000 + GROW_NEW), GROW_NEW);
    for (int i = 0; i < GROW_NEW; i++)
        ck_assert_int_eq(fired.id[GROW_DUE + i], GROW_DUE + i);
}
END_TEST

static struct tt *last_due;

static void swap_last_for_new(struct timer *t, uint64_t now_ms)
{
    record(t, now_ms);
    timer_disarm(&heap, &last_due->t);
    ck_assert_int_eq(timer_arm(&heap, &spawned->t, now_ms + 10), 0);
}

START_TEST(test_new_timer_takes_disarmed_due_timers_place)
{
    /* Fill the array exactly with due timers.  The first callback disarms
     * the last one due and arms a new timer in the freed room; the new
     * timer must neither fire now nor be lost. */
    int n = 0;
    do {
        ck_assert_int_lt(n, MANY - 1);
        tt_init(&many[n], n, n == 0 ? swap_last_for_new : record);
        ck_assert_int_eq(timer_arm(&heap, &many[n].t, 1 + (uint64_t)n), 0);
        n++;
    } while (n < 2 || heap.len < heap.cap);
    last_due = &many[n - 1];
    spawned = &many[n];
    tt_init(spawned, n, record);

    ck_assert_uint_eq(timer_expire(&heap, 1000), (size_t)n - 1);
    for (int i = 0; i < n - 1; i++)
        ck_assert_int_eq(fired.id[i], i);
    ck_assert(!timer_armed(&last_due->t));
    ck_assert(timer_armed(&spawned->t));
    ck_assert_uint_eq(heap.len, 1);
    assert_heap_ok(&heap);

    ck_assert_uint_eq(timer_expire(&heap, 1010), 1);
    ck_assert_int_eq(fired.id[n - 1], n);
}
END_TEST

START_TEST(test_many_timers_keep_heap_order)
{
    enum { SPAN = 1000000, STEP = 50000 };
    rng_state = 0x2545f4914f6cdd1du;
    for (int i = 0; i < MANY; i++) {
        tt_init(&many[i], i, record);
        ck_assert_int_eq(timer_arm(&heap, &many[i].t, rng() % SPAN), 0);
    }
    for (int i = 0; i < MANY / 2; i++) {
        struct tt *x = &many[rng() % MANY];
        ck_assert_int_eq(timer_arm(&heap, &x->t, rng() % SPAN), 0);
    }
    for (int i = 0; i < MANY / 3; i++)
        timer_disarm(&heap, &many[rng() % MANY].t);
    size_t armed = 0;
    for (int i = 0; i < MANY; i++)
        armed += timer_armed(&many[i].t);
    ck_assert_uint_eq(heap.len, armed);
    ck_assert_uint_lt(armed, MANY);
    assert_heap_ok(&heap);

    uint64_t prev = 0;
    for (uint64_t now = STEP; now <= SPAN; now += STEP) {
        size_t start = fired.n;
        timer_expire(&heap, now);
        for (size_t i = start; i < fired.n; i++) {
            ck_assert_uint_le(fired.deadline[i], now);
            if (now > STEP)
                ck_assert_uint_gt(fired.deadline[i], prev);
            if (i > start)
                ck_assert_uint_le(fired.deadline[i - 1], fired.deadline[i]);
        }
        prev = now;
    }
    ck_assert_uint_eq(fired.n, armed);
    ck_assert_uint_eq(heap.len, 0);
}
END_TEST

START_TEST(test_heap_free_after_disarm_leaves_empty_heap)
{
    struct tt a, b;
    tt_init(&a, 1, record);
    tt_init(&b, 2, record);
    ck_assert_int_eq(timer_arm(&heap, &a.t, 10), 0);
    ck_assert_int_eq(timer_arm(&heap, &b.t, 20), 0);
    timer_disarm(&heap, &a.t);
    timer_disarm(&heap, &b.t);
    timer_heap_free(&heap);
    ck_assert_ptr_null(heap.items);
    ck_assert_uint_eq(heap.len, 0);
    ck_assert_int_eq(timer_next_ms(&heap, 0), -1);
    ck_assert(!timer_armed(&a.t));
    ck_assert(!timer_armed(&b.t));
}
END_TEST

START_TEST(test_now_is_monotonic)
{
    uint64_t prev = timer_now_ms();
    for (int i = 0; i < 10000; i++) {
        uint64_t t = timer_now_ms();
        ck_assert_uint_ge(t, prev);
        prev = t;
    }
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
    uint64_t before = timer_now_ms();
    /* Bounded retry on EINTR. */
    for (int i = 0; i < 10 && nanosleep(&ts, &ts) != 0; i++)
        ;
    uint64_t gap = timer_now_ms() - before;
    ck_assert_uint_ge(gap, 15);
    ck_assert_uint_le(gap, 500);
}
END_TEST

/* log_due: the first warning goes out, then at most one per period, at the
 * clock the caller passes (the loop's cached now_ms). */
START_TEST(test_log_due_rate_limits)
{
    uint64_t last = 0;
    ck_assert(log_due(&last, 5000, 1000));
    ck_assert_uint_eq(last, 5000);
    ck_assert(!log_due(&last, 5000, 1000));
    ck_assert(!log_due(&last, 5999, 1000));
    ck_assert_uint_eq(last, 5000);
    ck_assert(log_due(&last, 6000, 1000));
    ck_assert_uint_eq(last, 6000);
    ck_assert(!log_due(&last, 6500, 1000));
    ck_assert(log_due(&last, 60000, 1000));
}
END_TEST

static Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_random_deadlines_fire_earliest_first);
    tcase_add_test(tc, test_rearm_moves_earlier);
    tcase_add_test(tc, test_rearm_moves_later);
    tcase_add_test(tc, test_disarm_from_middle);
    tcase_add_test(tc, test_next_ms);
    tcase_add_test(tc, test_self_rearm_fires_once_per_call);
    tcase_add_test(tc, test_callback_disarms_due_timer);
    tcase_add_test(tc, test_timer_armed_during_expire_fires_next_call);
    tcase_add_test(tc, test_callback_rearms_due_timer_later);
    tcase_add_test(tc, test_heap_grows_during_expire);
    tcase_add_test(tc, test_new_timer_takes_disarmed_due_timers_place);
    tcase_add_test(tc, test_many_timers_keep_heap_order);
    tcase_add_test(tc, test_heap_free_after_disarm_leaves_empty_heap);
    tcase_add_test(tc, test_now_is_monotonic);
    tcase_add_test(tc, test_log_due_rate_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(timer_suite());
}
