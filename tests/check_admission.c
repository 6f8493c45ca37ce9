/*
 * check_admission.c - the admission counts (admission.c): max_connections
 * room, per-source refusal, per-worker load, limits changed while running
 * (a per-source limit turned on later never miscounts connections admitted
 * before it), the acceptor's wake-up on release, a waiting worker's wake-up
 * ("accept": "workers"), reservations exact from many threads at once, and
 * acquire/release staying balanced under churn from many threads (also
 * under TSan).
 */
#include "admission.h"
#include "check_main.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static struct sockaddr_in addr(const char *ip)
{
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &in.sin_addr);
    return in;
}

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

START_TEST(room_and_loads)
{
    struct admission *a = admission_new(2, 3, 0);
    struct sockaddr_in p = addr("10.0.0.1");
    ck_assert(admission_has_room(a));
    int t0 = admission_acquire(a, (struct sockaddr *)&p, 0);
    int t1 = admission_acquire(a, (struct sockaddr *)&p, 1);
    int t2 = admission_acquire(a, (struct sockaddr *)&p, 1);
    ck_assert_int_ge(t0, 0);
    ck_assert_uint_eq(admission_open(a), 3);
    ck_assert_uint_eq(admission_load(a, 0), 1);
    ck_assert_uint_eq(admission_load(a, 1), 2);
    ck_assert(!admission_has_room(a));
    admission_release(a, (struct sockaddr *)&p, 1, t1);
    ck_assert(admission_has_room(a));
    admission_release(a, (struct sockaddr *)&p, 1, t2);
    admission_release(a, (struct sockaddr *)&p, 0, t0);
    ck_assert_uint_eq(admission_open(a), 0);
    ck_assert_uint_eq(admission_load(a, 1), 0);
    admission_free(a);
}
END_TEST

START_TEST(per_source_limit_refuses_only_that_source)
{
    struct admission *a = admission_new(1, 100, 2);
    struct sockaddr_in x = addr("10.0.0.1"), y = addr("10.0.0.2");
    int t1 = admission_acquire(a, (struct sockaddr *)&x, 0);
    int t2 = admission_acquire(a, (struct sockaddr *)&x, 0);
    ck_assert_int_eq(t1 & ADMISSION_BY_SOURCE, ADMISSION_BY_SOURCE);
    ck_assert_int_eq(admission_acquire(a, (struct sockaddr *)&x, 0), -EBUSY);
    ck_assert_uint_eq(admission_open(a), 2); /* the refusal counted nothing */
    int t3 = admission_acquire(a, (struct sockaddr *)&y, 0);
    ck_assert_int_ge(t3, 0);
    admission_release(a, (struct sockaddr *)&x, 0, t1);
    int t4 = admission_acquire(a, (struct sockaddr *)&x, 0);
    ck_assert_int_ge(t4, 0);
    admission_release(a, (struct sockaddr *)&x, 0, t2);
    admission_release(a, (struct sockaddr *)&x, 0, t4);
    admission_release(a, (struct sockaddr *)&y, 0, t3);
    ck_assert_uint_eq(admission_open(a), 0);
    admission_free(a);
}
END_TEST

START_TEST(limits_change_while_running)
{
    struct admission *a = admission_new(1, 1, 0);
    struct sockaddr_in x = addr("10.0.0.1");
    int before = admission_acquire(a, (struct sockaddr *)&x, 0); /* not counted by source */
    ck_assert_int_eq(before, 0);
    ck_assert(!admission_has_room(a));
    ck_assert_int_eq(admission_set_limits(a, 10, 1), 0);
    ck_assert(admission_has_room(a));
    int after = admission_acquire(a, (struct sockaddr *)&x, 0);
    ck_assert_int_eq(after, ADMISSION_BY_SOURCE);
    ck_assert_int_eq(admission_acquire(a, (struct sockaddr *)&x, 0), -EBUSY);
    /* Releasing the old connection must not free the new one's share. */
    admission_release(a, (struct sockaddr *)&x, 0, before);
    ck_assert_int_eq(admission_acquire(a, (struct sockaddr *)&x, 0), -EBUSY);
    /* Off again: no refusals. */
    ck_assert_int_eq(admission_set_limits(a, 10, 0), 0);
    int more = admission_acquire(a, (struct sockaddr *)&x, 0);
    ck_assert_int_ge(more, 0);
    admission_release(a, (struct sockaddr *)&x, 0, after);
    admission_release(a, (struct sockaddr *)&x, 0, more);
    ck_assert_uint_eq(admission_open(a), 0);
    admission_free(a);
}
END_TEST

START_TEST(release_wakes_a_waiting_acceptor_only)
{
    struct admission *a = admission_new(1, 1, 0);
    struct sockaddr_in x = addr("10.0.0.1");
    int t = admission_acquire(a, (struct sockaddr *)&x, 0);
    int fd = admission_wait_begin(a);
    ck_assert(!readable(fd));
    admission_release(a, (struct sockaddr *)&x, 0, t);
    ck_assert(readable(fd));
    admission_wait_end(a);
    ck_assert(!readable(fd));
    t = admission_acquire(a, (struct sockaddr *)&x, 0);
    admission_release(a, (struct sockaddr *)&x, 0, t); /* nobody waits */
    ck_assert(!readable(fd));
    admission_free(a);
}
END_TEST

#define CHURNERS 4
#define ROUNDS 20000

static struct admission *shared;

static void *churn(void *arg)
{
    unsigned worker = (unsigned)(uintptr_t)arg;
    char ip[32];
    snprintf(ip, sizeof ip, "10.0.1.%u", worker);
    struct sockaddr_in x = addr(ip);
    for (int i = 0; i < ROUNDS; i++) {
        int t = admission_acquire(shared, (struct sockaddr *)&x, worker);
        ck_assert_int_ge(t, 0);
        admission_release(shared, (struct sockaddr *)&x, worker, t);
    }
    return NULL;
}

START_TEST(evict_pick_takes_the_oldest_past_the_cutoff)
{
    struct admission *a = admission_new(3, 10, 0);
    ck_assert_int_eq(admission_evict_pick(a, 1000), -1); /* nobody has a connection */
    admission_set_stalled(a, 0, 900);
    admission_set_stalled(a, 1, 500);
    admission_set_stalled(a, 2, 700);
    ck_assert_int_eq(admission_evict_pick(a, 1000), 1);
    ck_assert_int_eq(admission_evict_pick(a, 500), 1);    /* at the cutoff counts */
    ck_assert_int_eq(admission_evict_pick(a, 499), -1);   /* all made progress since */
    admission_set_stalled(a, 1, UINT64_MAX);             /* worker 1 has none left */
    ck_assert_int_eq(admission_evict_pick(a, 1000), 2);
    ck_assert_int_eq(admission_evict_pick(a, UINT64_MAX - 1), 2);
    /* One request per worker at a time. */
    ck_assert(admission_evict_ask(a, 2));
    ck_assert(!admission_evict_ask(a, 2));
    ck_assert(admission_evict_ask(a, 0)); /* another worker's is apart */
    admission_evict_done(a, 2);
    ck_assert(admission_evict_ask(a, 2));
    admission_free(a);
}
END_TEST

START_TEST(balanced_under_churn)
{
    shared = admission_new(CHURNERS, 1000, 5);
    pthread_t t[CHURNERS];
    for (unsigned i = 0; i < CHURNERS; i++)
        pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < CHURNERS; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(admission_open(shared), 0);
    for (unsigned i = 0; i < CHURNERS; i++)
        ck_assert_uint_eq(admission_load(shared, i), 0);
    admission_free(shared);
}
END_TEST

struct reserver {
    struct admission *a;
    pthread_barrier_t *go;
    int got;
};

static void *reserve_many(void *arg)
{
    struct reserver *r = arg;
    pthread_barrier_wait(r->go);
    for (int i = 0; i < 20000; i++)
        r->got += admission_reserve(r->a);
    return NULL;
}

/* Several threads reserving at once ("accept": "workers"): exactly
 * max_connections succeed; each completes or gives back. */
START_TEST(reserve_is_exact_from_many_threads)
{
    struct admission *a = admission_new(4, 100, 1);
    enum { T = 4 };
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, T);
    struct reserver r[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        r[i] = (struct reserver){.a = a, .go = &go};
        ck_assert_int_eq(pthread_create(&th[i], NULL, reserve_many, &r[i]), 0);
    }
    int got = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        got += r[i].got;
    }
    pthread_barrier_destroy(&go);
    ck_assert_int_eq(got, 100);
    ck_assert_uint_eq(admission_open(a), 100);
    ck_assert(!admission_has_room(a));
    /* Completing one: per source (one allowed per source), the load. */
    struct sockaddr_in x = addr("192.0.2.1");
    int t = admission_acquire_reserved(a, (struct sockaddr *)&x, 2, true);
    ck_assert_int_eq(t, ADMISSION_BY_SOURCE);
    ck_assert_uint_eq(admission_load(a, 2), 1);
    /* A second from that source is refused and its reservation given back. */
    ck_assert_int_eq(admission_acquire_reserved(a, (struct sockaddr *)&x, 2, true), -EBUSY);
    ck_assert_uint_eq(admission_open(a), 99);
    admission_release(a, (struct sockaddr *)&x, 2, t);
    for (int i = 0; i < 98; i++)
        admission_unreserve(a);
    ck_assert_uint_eq(admission_open(a), 0);
    admission_free(a);
}
END_TEST

static unsigned woken[4];

static void count_wake(void *ctx, unsigned worker)
{
    ck_assert_ptr_eq(ctx, woken);
    woken[worker]++;
}

/* A worker waiting for room is woken once by the next release (or a
 * reservation given back), then no more until it waits again. */
START_TEST(room_wait_wakes_a_waiting_worker_once)
{
    struct admission *a = admission_new(4, 2, 0);
    admission_set_room_waker(a, count_wake, woken);
    memset(woken, 0, sizeof woken);
    struct sockaddr_in x = addr("192.0.2.1");
    ck_assert(admission_reserve(a));
    int t = admission_acquire_reserved(a, (struct sockaddr *)&x, 0, true);
    ck_assert(admission_reserve(a));
    ck_assert(!admission_reserve(a)); /* full */
    admission_room_wait(a, 1);
    admission_room_wait(a, 3);
    admission_unreserve(a); /* room again */
    ck_assert_uint_eq(woken[1], 1);
    ck_assert_uint_eq(woken[3], 1);
    ck_assert_uint_eq(woken[0] + woken[2], 0);
    admission_release(a, (struct sockaddr *)&x, 0, t);
    ck_assert_uint_eq(woken[1] + woken[3], 2); /* the waits were taken */
    admission_room_wait(a, 2);
    admission_room_wait_end(a, 2); /* withdrawn: nothing to wake */
    ck_assert(admission_reserve(a));
    admission_unreserve(a);
    ck_assert_uint_eq(woken[2], 0);
    admission_free(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admission");
    TCase *tc = tcase_create("admission");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, room_and_loads);
    tcase_add_test(tc, reserve_is_exact_from_many_threads);
    tcase_add_test(tc, room_wait_wakes_a_waiting_worker_once);
    tcase_add_test(tc, per_source_limit_refuses_only_that_source);
    tcase_add_test(tc, limits_change_while_running);
    tcase_add_test(tc, release_wakes_a_waiting_acceptor_only);
    tcase_add_test(tc, balanced_under_churn);
    tcase_add_test(tc, evict_pick_takes_the_oldest_past_the_cutoff);
    suite_add_tcase(s, tc);
    return check_run(s);
}
