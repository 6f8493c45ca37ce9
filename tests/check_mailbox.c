/*
 * check_mailbox.c - tests for mailbox.c, the bounded MPSC message queue of a
 * loop: FIFO order and payload copies, the ordinary depth and the urgent
 * reserve, the eventfd wake-up, the batch limit, posts from inside a
 * message, cancellation at close and at free (nothing lost silently), and
 * four producers through a small mailbox delivering every message exactly
 * once in per-producer order.  Also run under ThreadSanitizer.
 */
#include "check_main.h"
#include "mailbox.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 0);
    ck_assert_int_ge(r, 0);
    return r == 1 && (p.revents & POLLIN);
}

/* A record of what ran. */
struct log {
    int ran[256];
    int cancelled[256];
    size_t nran, ncancelled;
};

static void record(void *arg, void *payload, bool cancelled)
{
    struct log *lg = arg;
    int v;
    memcpy(&v, payload, sizeof v);
    if (cancelled)
        lg->cancelled[lg->ncancelled++] = v;
    else
        lg->ran[lg->nran++] = v;
}

static int post_int(struct mailbox *mb, struct log *lg, int v)
{
    return mailbox_post(mb, record, lg, &v, sizeof v);
}

START_TEST(new_rejects_bad_depth)
{
    errno = 0;
    ck_assert_ptr_null(mailbox_new(0, 0));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(mailbox_new(SIZE_MAX, 4));
    ck_assert_int_eq(errno, ENOMEM);
    mailbox_free(NULL);
}
END_TEST

START_TEST(fifo_and_payload_copied)
{
    struct mailbox *mb = mailbox_new(8, 0);
    struct log lg = {0};
    ck_assert_uint_eq(mailbox_depth(mb), 8);
    for (int i = 0; i < 5; i++) {
        int v = 100 + i;
        ck_assert_int_eq(mailbox_post(mb, record, &lg, &v, sizeof v), 0);
        v = -1; /* the mailbox holds a copy */
        ck_assert_uint_eq(mailbox_len(mb), (size_t)i + 1);
    }
    ck_assert_uint_eq(mailbox_drain(mb, 100), 5);
    ck_assert_uint_eq(lg.nran, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(lg.ran[i], 100 + i);
    ck_assert_uint_eq(mailbox_len(mb), 0);
    char big[MAILBOX_PAYLOAD + 1] = {0};
    ck_assert_int_eq(mailbox_post(mb, record, &lg, big, sizeof big), -EINVAL);
    mailbox_free(mb);
}
END_TEST

START_TEST(depth_bounds_ordinary_posts_and_urgent_uses_reserve)
{
    struct mailbox *mb = mailbox_new(3, 2);
    struct log lg = {0};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(post_int(mb, &lg, i), 0);
    ck_assert_int_eq(post_int(mb, &lg, 3), -EAGAIN);
    int v = 50;
    ck_assert_int_eq(mailbox_post_urgent(mb, record, &lg, &v, sizeof v), 0);
    ck_assert_int_eq(mailbox_post_urgent(mb, record, &lg, &v, sizeof v), 0);
    ck_assert_int_eq(mailbox_post_urgent(mb, record, &lg, &v, sizeof v), -EAGAIN);
    ck_assert_uint_eq(mailbox_drain(mb, 100), 5);
    ck_assert_uint_eq(lg.nran, 5);
    ck_assert_int_eq(lg.ran[3], 50);
    mailbox_free(mb);
}
END_TEST

START_TEST(wakeup_only_on_empty_to_nonempty_and_cleared_by_drain)
{
    struct mailbox *mb = mailbox_new(8, 0);
    struct log lg = {0};
    int fd = mailbox_fd(mb);
    ck_assert(!readable(fd));
    post_int(mb, &lg, 1);
    ck_assert(readable(fd));
    post_int(mb, &lg, 2);
    mailbox_drain(mb, 100);
    ck_assert(!readable(fd));
    ck_assert_uint_eq(lg.nran, 2);
    mailbox_free(mb);
}
END_TEST

START_TEST(batch_limit_leaves_the_rest_readable)
{
    struct mailbox *mb = mailbox_new(64, 0);
    struct log lg = {0};
    for (int i = 0; i < 40; i++)
        post_int(mb, &lg, i);
    ck_assert_uint_eq(mailbox_drain(mb, 10), 10);
    ck_assert(readable(mailbox_fd(mb)));
    ck_assert_uint_eq(mailbox_drain(mb, 100), 30);
    ck_assert(!readable(mailbox_fd(mb)));
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(lg.ran[i], i);
    mailbox_free(mb);
}
END_TEST

static struct mailbox *self_mb;
static int self_count;

static void repost(void *arg, void *payload, bool cancelled)
{
    if (!cancelled && ++self_count < 3)
        ck_assert_int_eq(mailbox_post(self_mb, repost, NULL, NULL, 0), 0);
}

START_TEST(a_message_may_post_to_its_own_mailbox)
{
    self_mb = mailbox_new(4, 0);
    self_count = 0;
    mailbox_post(self_mb, repost, NULL, NULL, 0);
    for (int i = 0; i < 10 && readable(mailbox_fd(self_mb)); i++)
        mailbox_drain(self_mb, 100);
    ck_assert_int_eq(self_count, 3);
    mailbox_free(self_mb);
}
END_TEST

START_TEST(close_cancels_queued_and_refuses_new)
{
    struct mailbox *mb = mailbox_new(8, 4);
    struct log lg = {0};
    post_int(mb, &lg, 7);
    post_int(mb, &lg, 8);
    mailbox_close(mb);
    ck_assert_uint_eq(lg.nran, 0);
    ck_assert_uint_eq(lg.ncancelled, 2);
    ck_assert_int_eq(lg.cancelled[0], 7);
    ck_assert_int_eq(lg.cancelled[1], 8);
    ck_assert_int_eq(post_int(mb, &lg, 9), -EPIPE);
    int v = 10;
    ck_assert_int_eq(mailbox_post_urgent(mb, record, &lg, &v, sizeof v), -EPIPE);
    mailbox_free(mb);
    ck_assert_uint_eq(lg.ncancelled, 2);
}
END_TEST

START_TEST(free_cancels_what_is_left)
{
    struct mailbox *mb = mailbox_new(8, 0);
    struct log lg = {0};
    post_int(mb, &lg, 1);
    mailbox_free(mb);
    ck_assert_uint_eq(lg.ncancelled, 1);
}
END_TEST

/* ---- many producers ------------------------------------------------------------ */

#define PRODUCERS 4
#define PER_PRODUCER 20000

struct sink {
    int last[PRODUCERS];
    long got;
    bool order_ok;
};

static void count_msg(void *arg, void *payload, bool cancelled)
{
    struct sink *s = arg;
    int v[2];
    memcpy(v, payload, sizeof v);
    if (v[1] != s->last[v[0]] + 1)
        s->order_ok = false;
    s->last[v[0]] = v[1];
    s->got++;
}

struct producer {
    struct mailbox *mb;
    struct sink *sink;
    int id;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        int v[2] = {p->id, i};
        while (mailbox_post(p->mb, count_msg, p->sink, v, sizeof v) == -EAGAIN)
            sched_yield();
    }
    return NULL;
}

START_TEST(four_producers_deliver_everything_in_order)
{
    struct mailbox *mb = mailbox_new(16, 0);
    struct sink sink = {.order_ok = true};
    for (int i = 0; i < PRODUCERS; i++)
        sink.last[i] = -1;
    pthread_t t[PRODUCERS];
    struct producer p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){mb, &sink, i};
        pthread_create(&t[i], NULL, produce, &p[i]);
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (sink.got < (long)PRODUCERS * PER_PRODUCER) {
        struct pollfd pf = {.fd = mailbox_fd(mb), .events = POLLIN};
        int r = poll(&pf, 1, 2000);
        ck_assert_msg(r == 1, "lost wake-up: %ld of %d delivered", sink.got,
                      PRODUCERS * PER_PRODUCER);
        mailbox_drain(mb, 64);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        ck_assert_int_lt(now.tv_sec - start.tv_sec, 60);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    ck_assert(sink.order_ok);
    ck_assert_int_eq(sink.got, (long)PRODUCERS * PER_PRODUCER);
    mailbox_free(mb);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mailbox");
    TCase *tc = tcase_create("mailbox");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, new_rejects_bad_depth);
    tcase_add_test(tc, fifo_and_payload_copied);
    tcase_add_test(tc, depth_bounds_ordinary_posts_and_urgent_uses_reserve);
    tcase_add_test(tc, wakeup_only_on_empty_to_nonempty_and_cleared_by_drain);
    tcase_add_test(tc, batch_limit_leaves_the_rest_readable);
    tcase_add_test(tc, a_message_may_post_to_its_own_mailbox);
    tcase_add_test(tc, close_cancels_queued_and_refuses_new);
    tcase_add_test(tc, free_cancels_what_is_left);
    tcase_add_test(tc, four_producers_deliver_everything_in_order);
    suite_add_tcase(s, tc);
    return check_run(s);
}
