/*
 * check_requests.c - requests (posts, worker timers, blocking work): the
 * post queue's capacities, waiters and barriers (postq.h); the work pool
 * starts a thread when none is idle, and done runs on the worker that asked;
 * a job and a worker timer keep their module's generation until they have
 * run, across a reload; and the docs' broadcast recipe (docs/cookbook.md,
 * copied as tests/modules/mod_shout.c and checked against the page) loses
 * nothing, in per-sender order, while another listener keeps accepting.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "postq.h"
#include "testutil.h"

/* ---- the post queue ----------------------------------------------------------- */

static int ran_fn, ran_cancelled, told[4], barrier_ran;

static void count_fn(void *arg, bool cancelled)
{
    (void)arg;
    ran_fn++;
    ran_cancelled += cancelled;
}

static void run_item(void *ctx, struct postq_item *it, bool cancelled)
{
    (void)ctx;
    it->fn(it->arg, cancelled);
}

static void on_told(void *ctx, unsigned waiter)
{
    (void)ctx;
    told[waiter]++;
}

static void on_barrier(void *arg)
{
    (void)arg;
    barrier_ran++;
}

START_TEST(post_queue_refuses_only_at_the_hard_capacity_and_tells_waiters_at_half)
{
    struct postq q;
    ck_assert_int_eq(postq_init(&q, 4), 0);
    postq_set_capacity(&q, 8);
    struct postq_item it = {.fn = count_fn};
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(postq_push(&q, &it, 2), 0);
    /* Above the soft capacity: queued, and worker 2 waits. */
    for (int i = 8; i < 32; i++)
        ck_assert_int_eq(postq_push(&q, &it, 2), 1);
    ck_assert_int_eq(postq_push(&q, &it, 2), -EAGAIN);
    ck_assert_uint_eq(postq_len(&q), 32);
    ck_assert(!postq_drained_for(&q, 3)); /* worker 3 waits too now */
    memset(told, 0, sizeof told);
    ran_fn = 0;
    ck_assert_uint_eq(postq_drain(&q, 27, run_item, on_told, NULL), 27);
    ck_assert_int_eq(told[2] + told[3], 0); /* 5 left: above half of 8 */
    ck_assert_uint_eq(postq_drain(&q, 1, run_item, on_told, NULL), 1);
    ck_assert_int_eq(told[2], 1);
    ck_assert_int_eq(told[3], 1);
    ck_assert_int_eq(told[0] + told[1], 0);
    ck_assert(postq_drained_for(&q, 3));
    /* What is left is cancelled at close; nothing is accepted after. */
    ran_cancelled = 0;
    postq_close(&q, run_item, on_told, NULL);
    ck_assert_int_eq(ran_fn, 32);
    ck_assert_int_eq(ran_cancelled, 4);
    ck_assert_int_eq(postq_push(&q, &it, -1), -EPIPE);
    postq_free(&q, run_item, NULL);
}
END_TEST

START_TEST(a_barrier_passes_once_every_queue_has_run_what_it_held)
{
    struct postq a, b;
    ck_assert_int_eq(postq_init(&a, 1), 0);
    ck_assert_int_eq(postq_init(&b, 1), 0);
    struct postq_item it = {.fn = count_fn};
    ck_assert_int_eq(postq_push(&a, &it, -1), 0);
    ran_fn = barrier_ran = 0;
    ck_assert_int_eq(postq_barrier(on_barrier, NULL), 0);
    /* A post made after the barrier does not hold it up. */
    ck_assert_int_eq(postq_push(&b, &it, -1), 0);
    postq_drain(&b, 100, run_item, on_told, NULL);
    ck_assert_int_eq(barrier_ran, 0); /* a still holds an earlier post */
    postq_drain(&a, 100, run_item, on_told, NULL);
    ck_assert_int_eq(ran_fn, 2);
    ck_assert_int_eq(barrier_ran, 1);
    /* With nothing queued anywhere, the last queue to pass it runs it;
     * a closed queue passes at once. */
    postq_close(&b, run_item, on_told, NULL);
    ck_assert_int_eq(postq_barrier(on_barrier, NULL), 0);
    ck_assert_int_eq(barrier_ran, 1);
    postq_drain(&a, 100, run_item, on_told, NULL);
    ck_assert_int_eq(barrier_ran, 2);
    postq_free(&a, run_item, NULL);
    postq_free(&b, run_item, NULL);
}
END_TEST

/* ---- blocking work -------------------------------------------------------------- */

static void seqs(uint64_t out[4])
{
    void (*fn)(uint64_t *) =
        (void (*)(uint64_t *))(uintptr_t)test_module_symbol("mod_requests", "requests_seqs");
    fn(out);
}

/* Valgrind (tests/valgrind.sh) or a sanitizer build: timing bounds allow
 * for their pace. */
static bool slow_build(void)
{
    return strcmp(test_build_kind(), "plain") != 0;
}

START_TEST(a_short_job_does_not_wait_behind_a_long_one)
{
    uint64_t s[4];
    seqs(s);
    uint64_t wrong = s[3];
    struct tserver *t = tserver_start("{\"workers\": 2, \"work_threads\": 4, \"listeners\": [{"
                                      "\"port\": 0, \"handler\": \"mod_requests\"}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "2000\n", 5);
    usleep(50000); /* the long job runs on the pool's only thread */
    uint64_t start = now_ms();
    send_all(fd, "10\n", 3);
    char got[8] = "";
    ck_assert_uint_eq(recv_exact(fd, got, 3, 3000), 3);
    uint64_t took = now_ms() - start;
    ck_assert_str_eq(got, "10\n");
    /* Under valgrind or a sanitizer: still long before the 2 s job ends. */
    ck_assert_msg(took < (slow_build() ? 1000 : 50),
                  "a 10 ms job took %llu ms behind a 2 s one", (unsigned long long)took);
    ck_assert_uint_eq(recv_exact(fd, got, 5, 3000), 5);
    seqs(s);
    ck_assert_uint_eq(s[3], wrong); /* every done ran on its own worker */
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(twenty_jobs_run_at_once_on_twenty_threads)
{
    struct tserver *t = tserver_start("{\"workers\": 2, \"work_threads\": 20, \"listeners\": [{"
                                      "\"port\": 0, \"handler\": \"mod_requests\"}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char req[20 * 4 + 1] = "";
    for (int i = 0; i < 20; i++)
        strcat(req, "200\n");
    uint64_t start = now_ms();
    send_all(fd, req, strlen(req));
    char got[20 * 4 + 1] = "";
    ck_assert_uint_eq(recv_exact(fd, got, 80, 5000), 80);
    uint64_t took = now_ms() - start;
    ck_assert_str_eq(got, req);
    /* Under valgrind or a sanitizer: still well under 20 x 200 ms in turn. */
    ck_assert_msg(took < (slow_build() ? 2000 : 350),
                  "20 jobs of 200 ms on 20 threads took %llu ms", (unsigned long long)took);
    close(fd);
    tserver_stop(t);
}
END_TEST

/* ---- requests keep their generation --------------------------------------------- */

static bool fini_ran(void *arg)
{
    uint64_t s[4];
    seqs(s);
    return s[2] > *(uint64_t *)arg;
}

START_TEST(a_job_and_a_worker_timer_keep_their_module_across_a_reload)
{
    uint64_t before[4], after[4];
    seqs(before);
    struct tserver *t = tserver_start("{\"workers\": 2, \"listeners\": [{\"name\": \"r\", "
                                      "\"port\": 0, \"handler\": \"mod_requests\", "
                                      "\"options\": {\"mode\": \"pin\"}}]}");
    int port = tserver_port(t, 0);
    int fd = tcp_connect("127.0.0.1", port);
    send_all(fd, "job\ntimer\n", 10);
    char got[8] = "";
    ck_assert_uint_eq(recv_exact(fd, got, 6, 3000), 6);
    close(fd);
    /* The listener now runs another handler: only the job and the timer
     * still hold the old generation. */
    tserver_reload(t, "{\"workers\": 2, \"listeners\": [{\"name\": \"r\", \"port\": %d, "
                      "\"handler\": \"echo\"}]}", port);
    uint64_t fini_before = before[2];
    ck_assert(wait_for(fini_ran, &fini_before, 3000));
    seqs(after);
    ck_assert_uint_gt(after[0], before[2]); /* the done ran, */
    ck_assert_uint_gt(after[1], before[2]); /* the timer ran, */
    ck_assert_uint_gt(after[2], after[0]);  /* and fini only after both */
    ck_assert_uint_gt(after[2], after[1]);
    tserver_stop(t);
}
END_TEST

/* ---- the broadcast recipe --------------------------------------------------------- */

#define CLIENTS 50
#define LINES 200

/* The recipe in docs/cookbook.md is the module this suite runs. */
START_TEST(the_shout_module_is_the_recipe_of_the_docs)
{
    const char *src = getenv("WHARF_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/cookbook.md", src ? src : ".");
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char doc[1 << 20], mod[1 << 16];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    snprintf(path, sizeof path, "%s/tests/modules/mod_shout.c", src ? src : ".");
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(mod, 1, sizeof mod - 1, f);
    fclose(f);
    mod[n] = '\0';
    const char *block = strstr(doc, "/* shout.c");
    ck_assert_ptr_nonnull(block);
    ck_assert_msg(strncmp(block, mod, n) == 0 && strncmp(block + n, "```", 3) == 0,
                  "tests/modules/mod_shout.c differs from the recipe in docs/cookbook.md");
}
END_TEST

struct client {
    int fd;
    char buf[256];
    size_t len;
    unsigned next[CLIENTS]; /* the next line expected from each sender */
    unsigned got;
};

/* Takes the whole lines of c's buffer: "S N" from sender S, N in order. */
static void client_lines(struct client *c, unsigned *disorder)
{
    char *p = c->buf, *end = c->buf + c->len, *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
        unsigned s, seq;
        *nl = '\0';
        if (sscanf(p, "%u %u", &s, &seq) == 2 && s < CLIENTS) {
            if (seq != c->next[s])
                (*disorder)++;
            c->next[s] = seq + 1;
            c->got++;
        }
        p = nl + 1;
    }
    c->len = (size_t)(end - p);
    memmove(c->buf, p, c->len);
}

/* One echo round trip on the second listener: it must accept meanwhile. */
static void second_listener_answers(int port)
{
    int fd = tcp_connect("127.0.0.1", port);
    send_all(fd, "x\n", 2);
    char got[4] = "";
    ck_assert_uint_eq(recv_exact(fd, got, 2, 2000), 2);
    close(fd);
}

static bool all_open(void *arg)
{
    struct tserver *t = arg;
    return tserver_stats(t, 0).open == CLIENTS;
}

static void broadcast(const char *post_queue)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 4, %s \"listeners\": [{\"port\": 0, \"handler\": \"mod_shout\"}, "
        "{\"port\": 0, \"handler\": \"echo\"}]}", post_queue);
    static struct client cl[CLIENTS];
    memset(cl, 0, sizeof cl);
    for (int i = 0; i < CLIENTS; i++) {
        cl[i].fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
        fcntl(cl[i].fd, F_SETFL, fcntl(cl[i].fd, F_GETFL) | O_NONBLOCK);
    }
    ck_assert(wait_for(all_open, t, 5000)); /* every client is a member */
    /* Every client sends its lines at once; all read as they go. */
    static char out[CLIENTS][LINES * 12];
    size_t out_len[CLIENTS], out_off[CLIENTS] = {0};
    for (int i = 0; i < CLIENTS; i++) {
        out_len[i] = 0;
        for (int k = 0; k < LINES; k++)
            out_len[i] += (size_t)sprintf(out[i] + out_len[i], "%d %d\n", i, k);
    }
    unsigned disorder = 0, want = CLIENTS * LINES; /* per client */
    uint64_t end = now_ms() + 60000, next_probe = now_ms();
    for (;;) {
        struct pollfd p[CLIENTS];
        unsigned done = 0;
        for (int i = 0; i < CLIENTS; i++) {
            p[i] = (struct pollfd){.fd = cl[i].fd, .events = POLLIN};
            if (out_off[i] < out_len[i])
                p[i].events |= POLLOUT;
            done += cl[i].got == want;
        }
        if (done == CLIENTS || now_ms() > end)
            break;
        if (now_ms() >= next_probe) {
            second_listener_answers(tserver_port(t, 1));
            next_probe = now_ms() + 100;
        }
        if (poll(p, CLIENTS, 100) < 0)
            break;
        for (int i = 0; i < CLIENTS; i++) {
            if (p[i].revents & POLLOUT) {
                ssize_t w = send(cl[i].fd, out[i] + out_off[i], out_len[i] - out_off[i],
                                 MSG_NOSIGNAL);
                if (w > 0)
                    out_off[i] += (size_t)w;
            }
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = recv(cl[i].fd, cl[i].buf + cl[i].len, sizeof cl[i].buf - cl[i].len, 0);
                ck_assert_msg(r > 0, "client %d lost its connection (%zd, %s)", i, r, strerror(errno));
                cl[i].len += (size_t)r;
                client_lines(&cl[i], &disorder);
            }
        }
    }
    /* Each client got every line of every other client (and its own),
     * exactly once and in each sender's order. */
    unsigned long total_others = 0;
    for (int i = 0; i < CLIENTS; i++)
        for (int s = 0; s < CLIENTS; s++) {
            ck_assert_msg(cl[i].next[s] == LINES, "client %d has %u of %d lines from %d", i,
                          cl[i].next[s], LINES, s);
            if (s != i)
                total_others += cl[i].next[s];
        }
    ck_assert_uint_eq(disorder, 0);
    ck_assert_uint_eq(total_others, (unsigned long)CLIENTS * (CLIENTS - 1) * LINES);
    for (int i = 0; i < CLIENTS; i++) {
        ck_assert_uint_eq(cl[i].got, want); /* none twice */
        close(cl[i].fd);
    }
    tserver_stop(t);
}

START_TEST(broadcast_delivers_every_line_once_in_order)
{
    broadcast("");
}
END_TEST

START_TEST(broadcast_loses_nothing_with_a_small_post_queue)
{
    /* 32 posts (hard: 128) per worker for 10,000 posts each: only the
     * back-pressure keeps every line. */
    broadcast("\"post_queue\": 32,");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("requests");
    TCase *tc = tcase_create("requests");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, post_queue_refuses_only_at_the_hard_capacity_and_tells_waiters_at_half);
    tcase_add_test(tc, a_barrier_passes_once_every_queue_has_run_what_it_held);
    tcase_add_test(tc, a_short_job_does_not_wait_behind_a_long_one);
    tcase_add_test(tc, twenty_jobs_run_at_once_on_twenty_threads);
    tcase_add_test(tc, a_job_and_a_worker_timer_keep_their_module_across_a_reload);
    tcase_add_test(tc, the_shout_module_is_the_recipe_of_the_docs);
    tcase_add_test(tc, broadcast_delivers_every_line_once_in_order);
    tcase_add_test(tc, broadcast_loses_nothing_with_a_small_post_queue);
    suite_add_tcase(s, tc);
    return check_run(s);
}
