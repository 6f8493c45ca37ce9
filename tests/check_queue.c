/*
 * check_queue.c - tests for queue.c, the bounded MPSC hand-off queue: FIFO
 * order and copying, the depth limit, the eventfd wake-up (written only on
 * empty -> non-empty, cleared by queue_wake_clear), and a 4-producer run
 * through a small queue that must deliver every item exactly once and in
 * per-producer order with no lost wake-up.  Also run under ThreadSanitizer.
 */
#include "check_main.h"
#include "queue.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Whether fd is readable right now (poll with a 0 ms timeout). */
static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 0);
    ck_assert_int_ge(r, 0);
    return r == 1 && (p.revents & POLLIN);
}

static struct queue_item conn_item(int fd, unsigned listener)
{
    struct queue_item it;
    memset(&it, 0, sizeof(it));
    it.kind = QUEUE_CONN;
    it.fd = fd;
    it.listener = listener;
    it.peer_len = sizeof(it.peer.in);
    it.peer.in.sin_family = AF_INET;
    it.peer.in.sin_port = htons((uint16_t)(1000 + fd));
    it.peer.in.sin_addr.s_addr = htonl(0x7f000001u);
    return it;
}

START_TEST(test_new_rejects_bad_depth)
{
    errno = 0;
    ck_assert_ptr_null(queue_new(0));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(queue_new(SIZE_MAX));
    ck_assert_int_eq(errno, ENOMEM);
    queue_free(NULL); /* harmless */
}
END_TEST

START_TEST(test_push_pop_fifo)
{
    struct queue *q = queue_new(8);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(queue_depth(q), 8);
    ck_assert_uint_eq(queue_len(q), 0);

    for (int i = 0; i < 5; i++) {
        struct queue_item it = conn_item(10 + i, (unsigned)i);
        ck_assert_int_eq(queue_push(q, &it), 0);
        ck_assert_uint_eq(queue_len(q), (size_t)i + 1);
    }
    struct queue_item stop = {.kind = QUEUE_CONN, .fd = -1};
    ck_assert_int_eq(queue_push(q, &stop), 0);

    for (int i = 0; i < 5; i++) {
        struct queue_item want = conn_item(10 + i, (unsigned)i), got;
        ck_assert_int_eq(queue_pop(q, &got), 0);
        ck_assert_int_eq(got.kind, QUEUE_CONN);
        ck_assert_int_eq(got.fd, want.fd);
        ck_assert_uint_eq(got.listener, want.listener);
        ck_assert_uint_eq(got.peer_len, want.peer_len);
        ck_assert_int_eq(memcmp(&got.peer.in, &want.peer.in, sizeof(want.peer.in)), 0);
    }
    struct queue_item got;
    ck_assert_int_eq(queue_pop(q, &got), 0);
    ck_assert_int_eq(got.kind, QUEUE_CONN);
    ck_assert_int_eq(got.fd, -1);
    ck_assert_int_eq(queue_pop(q, &got), -EAGAIN);
    ck_assert_uint_eq(queue_len(q), 0);
    queue_free(q);
}
END_TEST

START_TEST(test_full_returns_eagain)
{
    struct queue *q = queue_new(3);
    ck_assert_ptr_nonnull(q);
    struct queue_item it, got;
    for (int i = 0; i < 3; i++) {
        it = conn_item(i, 0);
        ck_assert_int_eq(queue_push(q, &it), 0);
    }
    it = conn_item(99, 0);
    ck_assert_int_eq(queue_push(q, &it), -EAGAIN);
    ck_assert_uint_eq(queue_len(q), 3);
    ck_assert_uint_eq(queue_depth(q), 3);

    /* One out makes room for exactly one in; the rejected item was not
     * queued.  Keep going around the ring to cross its end many times. */
    int next_in = 3, next_out = 0;
    for (int round = 0; round < 20; round++) {
        ck_assert_int_eq(queue_pop(q, &got), 0);
        ck_assert_int_eq(got.fd, next_out++);
        it = conn_item(next_in, 0);
        ck_assert_int_eq(queue_push(q, &it), 0);
        next_in++;
        ck_assert_int_eq(queue_push(q, &it), -EAGAIN);
        ck_assert_uint_eq(queue_len(q), 3);
    }
    while (queue_pop(q, &got) == 0)
        ck_assert_int_eq(got.fd, next_out++);
    ck_assert_int_eq(next_out, next_in);
    queue_free(q);
}
END_TEST

START_TEST(test_eventfd_flags)
{
    struct queue *q = queue_new(1);
    ck_assert_ptr_nonnull(q);
    int fd = queue_fd(q);
    ck_assert_int_ge(fd, 0);
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ne(fl, -1);
    ck_assert(fl & O_NONBLOCK);
    int fdfl = fcntl(fd, F_GETFD);
    ck_assert_int_ne(fdfl, -1);
    ck_assert(fdfl & FD_CLOEXEC);
    queue_free(q);
}
END_TEST

START_TEST(test_wake_only_on_first_push)
{
    struct queue *q = queue_new(4);
    ck_assert_ptr_nonnull(q);
    int fd = queue_fd(q);
    struct queue_item it = conn_item(1, 0), got;

    ck_assert(!readable(fd));
    ck_assert_int_eq(queue_push(q, &it), 0);
    ck_assert(readable(fd));
    ck_assert_int_eq(queue_push(q, &it), 0);
    ck_assert(readable(fd));

    queue_wake_clear(q);
    ck_assert(!readable(fd));
    /* Not empty -> non-empty: no new wake-up. */
    ck_assert_int_eq(queue_push(q, &it), 0);
    ck_assert(!readable(fd));
    /* Clearing twice is harmless. */
    queue_wake_clear(q);
    ck_assert(!readable(fd));

    while (queue_pop(q, &got) == 0)
        ;
    ck_assert(!readable(fd));
    ck_assert_int_eq(queue_push(q, &it), 0);
    ck_assert(readable(fd));
    queue_wake_clear(q);
    ck_assert(!readable(fd));
    queue_free(q);
}
END_TEST

START_TEST(test_free_closes_eventfd)
{
    struct queue *q = queue_new(2);
    ck_assert_ptr_nonnull(q);
    int fd = queue_fd(q);
    queue_free(q);
    errno = 0;
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
}
END_TEST

/* ---- concurrent producers ---------------------------------------------- */

enum { PRODUCERS = 4, PER_PRODUCER = 100000, DEPTH = 64 };
#define RUN_LIMIT_MS 20000u

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct run {
    struct queue *q;
    uint64_t deadline_ms;
    atomic_int stop; /* set by the consumer when it gives up or finishes */
};

struct producer {
    struct run *run;
    int id;
    int pushed;   /* items pushed */
    int bad_rc;   /* a push result other than 0 or -EAGAIN */
};

struct consumer {
    struct run *run;
    unsigned next[PRODUCERS]; /* next expected sequence per producer */
    long got;
    long wakeups;
    int timed_out;
    char error[160];          /* first problem seen, or "" */
};

/* Pushes PER_PRODUCER items tagged (fd = producer id, listener = sequence),
 * retrying with sched_yield while the queue is full.  Bounded: gives up when
 * the consumer sets run->stop. */
static void *produce(void *arg)
{
    struct producer *p = arg;
    for (unsigned seq = 0; seq < PER_PRODUCER; seq++) {
        struct queue_item it = conn_item(p->id, seq);
        int rc;
        while ((rc = queue_push(p->run->q, &it)) == -EAGAIN) {
            if (atomic_load(&p->run->stop))
                return NULL;
            sched_yield();
        }
        if (rc != 0) {
            p->bad_rc = rc;
            return NULL;
        }
        p->pushed++;
    }
    return NULL;
}

/* Follows the consumer protocol: poll the eventfd (1000 ms at a time), clear
 * it, pop until empty; checks each item against the per-producer sequence.
 * Never drains without a wake-up, so a lost wake-up stalls the run until
 * the deadline instead of being papered over. */
static void *consume(void *arg)
{
    struct consumer *c = arg;
    struct queue *q = c->run->q;
    const long total = (long)PRODUCERS * PER_PRODUCER;

    while (c->got < total && c->error[0] == '\0') {
        if (mono_ms() > c->run->deadline_ms) {
            c->timed_out = 1;
            break;
        }
        struct pollfd pfd = {.fd = queue_fd(q), .events = POLLIN};
        int r = poll(&pfd, 1, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(c->error, sizeof(c->error), "poll: %s", strerror(errno));
            break;
        }
        if (r == 0)
            continue;
        c->wakeups++;
        queue_wake_clear(q);
        struct queue_item it;
        while (queue_pop(q, &it) == 0) {
            if (it.kind != QUEUE_CONN || it.fd < 0 || it.fd >= PRODUCERS) {
                snprintf(c->error, sizeof(c->error), "bad item kind %d fd %d",
                         (int)it.kind, it.fd);
                break;
            }
            if (it.listener != c->next[it.fd]) {
                snprintf(c->error, sizeof(c->error),
                         "producer %d: got seq %u, expected %u", it.fd,
                         it.listener, c->next[it.fd]);
                break;
            }
            c->next[it.fd]++;
            c->got++;
        }
    }
    atomic_store(&c->run->stop, 1);
    return NULL;
}

START_TEST(test_concurrent_producers_exactly_once_in_order)
{
    struct run run = {.q = queue_new(DEPTH), .deadline_ms = mono_ms() + RUN_LIMIT_MS};
    ck_assert_ptr_nonnull(run.q);
    atomic_init(&run.stop, 0);

    struct consumer c;
    memset(&c, 0, sizeof(c));
    c.run = &run;
    struct producer p[PRODUCERS];
    pthread_t ct, pt[PRODUCERS];

    ck_assert_int_eq(pthread_create(&ct, NULL, consume, &c), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){.run = &run, .id = i};
        ck_assert_int_eq(pthread_create(&pt[i], NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(pthread_join(pt[i], NULL), 0);
    ck_assert_int_eq(pthread_join(ct, NULL), 0);

    ck_assert_msg(c.error[0] == '\0', "%s", c.error);
    ck_assert_msg(!c.timed_out, "stalled: %ld of %d items after %u ms (lost wake-up?)",
                  c.got, PRODUCERS * PER_PRODUCER, RUN_LIMIT_MS);
    for (int i = 0; i < PRODUCERS; i++) {
        ck_assert_int_eq(p[i].bad_rc, 0);
        ck_assert_int_eq(p[i].pushed, PER_PRODUCER);
        ck_assert_uint_eq(c.next[i], PER_PRODUCER);
    }
    ck_assert_int_eq(c.got, (long)PRODUCERS * PER_PRODUCER);
    ck_assert_int_ge(c.wakeups, 1);
    ck_assert_uint_eq(queue_len(run.q), 0);
    queue_free(run.q);
}
END_TEST

static Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_new_rejects_bad_depth);
    tcase_add_test(tc, test_push_pop_fifo);
    tcase_add_test(tc, test_full_returns_eagain);
    tcase_add_test(tc, test_eventfd_flags);
    tcase_add_test(tc, test_wake_only_on_first_push);
    tcase_add_test(tc, test_free_closes_eventfd);
    suite_add_tcase(s, tc);

    TCase *conc = tcase_create("concurrent");
    tcase_set_timeout(conc, 60); /* the test bounds itself at 20 s */
    tcase_add_test(conc, test_concurrent_producers_exactly_once_in_order);
    suite_add_tcase(s, conc);
    return s;
}

int main(void)
{
    return check_run(queue_suite());
}
