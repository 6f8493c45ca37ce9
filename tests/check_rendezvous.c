/*
 * check_rendezvous.c - unit tests of the reference-counted rendezvous
 * (rendezvous.c): a waiter that times out leaks nothing and a late party
 * touches no freed memory (ASan), a waiter that gives up makes late parties
 * skip their part, a party already under way is waited for, and a wait is
 * bounded.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "rendezvous.h"
#include "testutil.h"

struct party {
    struct rendezvous *r;
    int delay_ms;       /* before it answers */
    int work_ms;        /* between begin and end (with begin) */
    bool use_begin;
    atomic_int did;     /* 1: did its part, 0: skipped */
};

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

static void *party_main(void *arg)
{
    struct party *p = arg;
    sleep_ms(p->delay_ms);
    if (!p->use_begin) {
        rendezvous_done(p->r);
    } else if (rendezvous_begin(p->r)) {
        sleep_ms(p->work_ms);
        atomic_store(&p->did, 1);
        rendezvous_end(p->r, true);
    } else {
        rendezvous_done(p->r);
    }
    return NULL;
}

START_TEST(wait_returns_when_every_party_is_done)
{
    unsigned long live = rendezvous_live();
    struct rendezvous *r = rendezvous_new(3);
    struct party p[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        p[i] = (struct party){.r = r, .delay_ms = 10 * i};
        pthread_create(&t[i], NULL, party_main, &p[i]);
    }
    ck_assert(rendezvous_wait(r, 5000));
    rendezvous_release(r);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(rendezvous_live(), live);
}
END_TEST

START_TEST(timed_out_wait_is_bounded_and_a_late_party_frees_it)
{
    unsigned long live = rendezvous_live();
    struct rendezvous *r = rendezvous_new(1);
    struct party p = {.r = r, .delay_ms = 300};
    pthread_t t;
    pthread_create(&t, NULL, party_main, &p);
    uint64_t start = now_ms();
    ck_assert(!rendezvous_wait(r, 50));
    uint64_t took = now_ms() - start;
    ck_assert_msg(took >= 45 && took < 250, "waited %llu ms", (unsigned long long)took);
    rendezvous_release(r); /* the waiter goes; the late party still counts down */
    ck_assert_uint_eq(rendezvous_live(), live + 1);
    pthread_join(t, NULL);
    ck_assert_uint_eq(rendezvous_live(), live); /* freed by the party */
}
END_TEST

START_TEST(settle_makes_a_late_party_skip_its_part)
{
    struct rendezvous *r = rendezvous_new(2);
    struct party on_time = {.r = r, .use_begin = true};
    struct party late = {.r = r, .delay_ms = 300, .use_begin = true};
    pthread_t t[2];
    pthread_create(&t[0], NULL, party_main, &on_time);
    pthread_create(&t[1], NULL, party_main, &late);
    ck_assert(!rendezvous_settle(r, 100));
    rendezvous_release(r);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    ck_assert_int_eq(atomic_load(&on_time.did), 1);
    ck_assert_int_eq(atomic_load(&late.did), 0);
}
END_TEST

START_TEST(settle_waits_for_a_party_under_way)
{
    /* Begins in time, finishes after the timeout: its part is done, and
     * settle says so. */
    struct rendezvous *r = rendezvous_new(1);
    struct party p = {.r = r, .delay_ms = 10, .work_ms = 200, .use_begin = true};
    pthread_t t;
    pthread_create(&t, NULL, party_main, &p);
    ck_assert(rendezvous_settle(r, 100));
    ck_assert_int_eq(atomic_load(&p.did), 1);
    rendezvous_release(r);
    pthread_join(t, NULL);
}
END_TEST

START_TEST(settle_counts_a_party_that_failed_or_was_cancelled)
{
    struct rendezvous *r = rendezvous_new(2);
    ck_assert(rendezvous_begin(r));
    rendezvous_end(r, false); /* tried and failed */
    rendezvous_done(r);       /* cancelled */
    ck_assert(rendezvous_wait(r, 0));
    ck_assert(!rendezvous_settle(r, 0));
    rendezvous_release(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rendezvous");
    TCase *tc = tcase_create("rendezvous");
    tcase_add_test(tc, wait_returns_when_every_party_is_done);
    tcase_add_test(tc, timed_out_wait_is_bounded_and_a_late_party_frees_it);
    tcase_add_test(tc, settle_makes_a_late_party_skip_its_part);
    tcase_add_test(tc, settle_waits_for_a_party_under_way);
    tcase_add_test(tc, settle_counts_a_party_that_failed_or_was_cancelled);
    suite_add_tcase(s, tc);
    return check_run(s);
}
