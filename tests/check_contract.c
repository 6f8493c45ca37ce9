/*
 * check_contract.c - the handler contract of wharf.h, one test per promise,
 * through real sockets (tests/modules/mod_contract.c): kept input is offered
 * again after a partial consume (the README's handler returns a 20,000-byte
 * send and a half-close whole), after wharf_resume_read and after on_drain;
 * at EOF every kept byte comes first; on_eof may keep the connection to
 * answer later; pipelined requests are all answered at once; on_data
 * claiming too much is caught; on_shutdown can say goodbye and on_stop runs
 * once; connection timers repeat and stop at close; blocking work's done
 * runs on the worker, also when its connection is gone.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"

struct contract_counts {
    uint64_t drains, eofs, shutdowns, stops, ticks, works_done, works_cancelled, posts_gone,
        closes;
};

static void counts(struct contract_counts *out)
{
    void (*fn)(struct contract_counts *) = (void (*)(struct contract_counts *))(uintptr_t)
        test_module_symbol("mod_contract", "contract_counts");
    fn(out);
}

static struct tserver *start_mode(const char *mode, const char *extra)
{
    return tserver_start("{\"workers\": 2, \"shutdown_timeout_ms\": 2000, \"listeners\": [{"
                         "\"port\": 0, \"handler\": \"mod_contract\", \"options\": "
                         "{\"mode\": \"%s\"}%s}]}",
                         mode, extra ? extra : "");
}

/* Reads until EOF, or until nothing has come for timeout_ms (and at most
 * 6 * timeout_ms in all: a server slowed by valgrind on a busy machine still
 * delivers a long reply, only later); returns a malloc'ed buffer and its
 * length. */
static char *read_all(int fd, size_t *len, int timeout_ms)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    uint64_t cap_at = now_ms() + 6 * (uint64_t)timeout_ms;
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end > now_ms() ? end - now_ms() : 0);
        if (left == 0 || poll(&p, 1, left) <= 0)
            break;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        end = now_ms() + (uint64_t)timeout_ms;
        if (end > cap_at)
            end = cap_at;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

START_TEST(partial_consumption_and_half_close_lose_nothing)
{
    /* The README's handler: 4,096 bytes per call. */
    struct tserver *t = start_mode("upper", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    size_t total = 20000;
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)('a' + i % 26);
    send_all(fd, data, total);
    shutdown(fd, SHUT_WR);
    size_t n;
    char *got = read_all(fd, &n, 5000);
    ck_assert_uint_eq(n, total);
    for (size_t i = 0; i < total; i++)
        ck_assert_int_eq(got[i], 'A' + (int)(i % 26));
    free(got);
    free(data);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(pipelined_requests_are_all_answered_at_once)
{
    struct tserver *t = start_mode("line", ", \"timeouts\": {\"idle_ms\": 60000}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char req[100 * 8], want[100 * 12];
    size_t rl = 0, wl = 0;
    for (int i = 0; i < 100; i++) {
        rl += (size_t)sprintf(req + rl, "r%03d\n", i);
        wl += (size_t)sprintf(want + wl, "ok r%03d\n", i);
    }
    uint64_t start = now_ms();
    send_all(fd, req, rl);
    char got[sizeof want];
    ck_assert_uint_eq(recv_exact(fd, got, wl, 3000), wl);
    ck_assert(memcmp(got, want, wl) == 0);
    ck_assert_uint_lt(now_ms() - start, 2000); /* not after an idle timeout */
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(requests_split_at_every_byte_are_answered)
{
    struct tserver *t = start_mode("line", NULL);
    const char *req = "alpha\nbeta\ngamma\n", *want = "ok alpha\nok beta\nok gamma\n";
    size_t rl = strlen(req);
    for (size_t split = 1; split < rl; split++) {
        int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
        send_all(fd, req, split);
        usleep(2000);
        send_all(fd, req + split, rl - split);
        char got[64] = "";
        ck_assert_uint_eq(recv_exact(fd, got, strlen(want), 3000), strlen(want));
        ck_assert_msg(memcmp(got, want, strlen(want)) == 0, "split %zu: %s", split, got);
        close(fd);
    }
    tserver_stop(t);
}
END_TEST

START_TEST(kept_input_comes_back_after_resume)
{
    struct tserver *t = start_mode("pausing", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "p\nA\nB\n", 6); /* nothing more is ever sent */
    char got[16] = "";
    ck_assert_uint_eq(recv_exact(fd, got, 10, 3000), 10);
    ck_assert(memcmp(got, "ok A\nok B\n", 10) == 0);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(kept_input_comes_back_after_on_drain)
{
    struct contract_counts before, after;
    counts(&before);
    struct tserver *t = start_mode(
        "big", ", \"send_buffer\": 4096, "
               "\"buffers\": {\"high_watermark\": 4096, \"low_watermark\": 1024}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    send_all(fd, "1\n2\n3\n", 6);
    usleep(100000); /* the output piles up above the high watermark */
    size_t want = 3 * 65537, n = 0;
    char *buf = malloc(want);
    /* 15 s: with a 4 KiB receive buffer the sender may wait on the
     * kernel's zero-window probes, whose backoff doubles (a loaded CI
     * machine once took more than 5 s here). */
    n = recv_exact(fd, buf, want, 15000);
    ck_assert_uint_eq(n, want);
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(buf[i * 65537 + 65536], '\n');
    free(buf);
    counts(&after);
    ck_assert_uint_ge(after.drains - before.drains, 1);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(on_eof_may_keep_the_connection_to_answer_later)
{
    struct tserver *t = start_mode("eofkeep", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "question", 8);
    shutdown(fd, SHUT_WR);
    size_t n;
    char *got = read_all(fd, &n, 3000);
    ck_assert_str_eq(got, "late\n");
    free(got);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(kept_bytes_are_offered_before_eof)
{
    /* "line" keeps a partial line; at EOF it is offered again (still no
     * newline, so still kept), then on_eof closes. */
    struct contract_counts before, after;
    counts(&before);
    struct tserver *t = start_mode("line", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "one\ntwo", 7);
    shutdown(fd, SHUT_WR);
    size_t n;
    char *got = read_all(fd, &n, 3000);
    ck_assert_str_eq(got, "ok one\n");
    free(got);
    close(fd);
    counts(&after);
    ck_assert_uint_eq(after.eofs - before.eofs, 1);
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_EOF], 1);
    tserver_stop(t);
}
END_TEST

START_TEST(on_data_claiming_too_much_is_caught)
{
    struct tserver *t = start_mode("liar", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "x", 1);
    ck_assert(wait_closed(fd, 3000));
    close(fd);
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_ERROR], 1);
    tserver_stop(t);
}
END_TEST

START_TEST(shutdown_notice_can_say_goodbye)
{
    struct contract_counts before, after;
    counts(&before);
    struct tserver *t = tserver_start("{\"workers\": 2, \"shutdown_timeout_ms\": 60000, "
                                      "\"listeners\": [{\"port\": 0, \"handler\": \"mod_contract\", "
                                      "\"options\": {\"mode\": \"goodbye\"}}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "hi", 2);
    char got[8] = "";
    ck_assert_uint_eq(recv_exact(fd, got, 2, 2000), 2);
    uint64_t start = now_ms();
    server_stop(t->srv);
    /* Closed once the goodbye is out, long before the 60 s timeout. */
    ck_assert_uint_lt(now_ms() - start, 15000);
    size_t n;
    char *rest = read_all(fd, &n, 2000);
    ck_assert_str_eq(rest, "bye\n");
    free(rest);
    close(fd);
    counts(&after);
    ck_assert_uint_eq(after.shutdowns - before.shutdowns, 1);
    ck_assert_uint_eq(after.stops - before.stops, 1);
    tserver_stop(t);
}
END_TEST

START_TEST(connection_timers_repeat_and_stop_at_close)
{
    struct contract_counts before, after;
    counts(&before);
    struct tserver *t = start_mode("tick", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    size_t n;
    char *got = read_all(fd, &n, 3000);
    ck_assert_str_eq(got, "t\nt\nt\n");
    free(got);
    close(fd);
    usleep(100000);
    counts(&after);
    ck_assert_uint_eq(after.ticks - before.ticks, 3);
    tserver_stop(t);
}
END_TEST

START_TEST(blocking_work_done_runs_even_when_the_connection_is_gone)
{
    struct contract_counts before, after;
    counts(&before);
    struct tserver *t = start_mode("work", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "abc\n", 4);
    char got[16] = "";
    ck_assert_uint_eq(recv_exact(fd, got, 9, 3000), 9);
    ck_assert_str_eq(got, "done ABC\n");
    /* Now one whose connection closes before the work is done. */
    send_all(fd, "def\n", 4);
    close(fd);
    usleep(200000);
    counts(&after);
    ck_assert_uint_eq(after.works_done - before.works_done, 2);
    ck_assert_uint_eq(after.posts_gone - before.posts_gone, 1);
    tserver_stop(t);
}
END_TEST

static void more(uint64_t out[3])
{
    void (*fn)(uint64_t *) =
        (void (*)(uint64_t *))(uintptr_t)test_module_symbol("mod_contract", "contract_more");
    fn(out);
}

START_TEST(shutdown_write_sends_eof_and_keeps_reading)
{
    uint64_t before[3], after[3];
    more(before);
    struct tserver *t = start_mode("halfclose", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "bye\n", 4);
    size_t n;
    char *got = read_all(fd, &n, 3000); /* ends at the server's FIN */
    ck_assert_str_eq(got, "ok\n");
    free(got);
    send_all(fd, "more\nand more\n", 14); /* the server still reads */
    usleep(100000);
    more(after);
    ck_assert_uint_eq(after[0] - before[0], 2);
    close(fd);
    tserver_stop(t);
}
END_TEST

/*
 * A connection closed with its reply still pending goes on reading (and
 * dropping) while the reply goes out.  The client here writes a long burst
 * before it reads anything, as a pipelining client does; were the closing
 * side to stop reading, both would wait on each other until the write
 * timeout.
 */
START_TEST(closing_connection_drains_a_peer_that_writes_before_reading)
{
    struct tserver *t = start_mode("farewell", ", \"timeouts\": {\"write_ms\": 60000}, "
                                               "\"buffers\": {\"max_output\": 67108864}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "hi\n", 3);
    usleep(100000); /* the reply is queued and the close is waiting for it */
    size_t len = 48u << 20, sent = 0;
    char *junk = malloc(1 << 16);
    memset(junk, 'j', 1 << 16);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uint64_t start = now_ms();
    while (sent < len && now_ms() - start < 10000) {
        ssize_t w = send(fd, junk, len - sent < (1 << 16) ? len - sent : (1 << 16), MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR)
            break;
        else
            usleep(1000);
    }
    free(junk);
    ck_assert_uint_eq(sent, len); /* the server kept reading */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    size_t n;
    char *got = read_all(fd, &n, 10000); /* ends at the server's FIN */
    ck_assert_uint_eq(n, (32u << 20) + 1); /* more than the sockets hold */
    for (size_t i = 0; i + 1 < n; i++)
        if (got[i] != 'f')
            ck_abort_msg("byte %zu is %d", i, got[i]);
    ck_assert_int_eq(got[n - 1], '\n');
    free(got);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(want_drain_paces_a_producer)
{
    struct tserver *t = start_mode("producer", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    size_t n;
    char *got = read_all(fd, &n, 5000);
    ck_assert_uint_eq(n, 65536); /* every step came, then the close */
    free(got);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(closing_another_connection_waits_for_the_callback)
{
    uint64_t before[3], after[3];
    more(before);
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"port\": 0, "
                                      "\"handler\": \"mod_contract\", \"options\": "
                                      "{\"mode\": \"closer\"}}]}");
    int a = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(a, "hi\n", 3);
    char got[4] = "";
    ck_assert_uint_eq(recv_exact(a, got, 3, 2000), 3);
    int b = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(b, "x\n", 2);
    ck_assert_uint_eq(recv_exact(b, got, 3, 2000), 3);
    ck_assert(wait_closed(a, 2000)); /* closed, after b's callback */
    more(after);
    ck_assert_uint_eq(after[1] - before[1], 0);
    close(a);
    close(b);
    tserver_stop(t);
}
END_TEST

static _Atomic int wrong_thread_logged;

static void catch_log(void *arg, enum wharf_log_level level, const char *line)
{
    if (strstr(line, "debug: wharf_send called from another thread"))
        wrong_thread_logged = 1;
    fprintf(stderr, "%s\n", line);
}

START_TEST(debug_mode_refuses_calls_from_the_wrong_thread)
{
    wharf_log_set_callback(catch_log, NULL);
    struct tserver *t = tserver_start("{\"workers\": 1, \"debug\": true, \"listeners\": [{"
                                      "\"port\": 0, \"handler\": \"mod_contract\", "
                                      "\"options\": {\"mode\": \"wrongthread\"}}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "w\n", 2);
    char got[8] = "";
    ck_assert_uint_eq(recv_exact(fd, got, 5, 3000), 5);
    ck_assert_str_eq(got, "ok w\n"); /* and nothing from the thread */
    int (*rc)(void) =
        (int (*)(void))(uintptr_t)test_module_symbol("mod_contract", "contract_wrong_thread_rc");
    ck_assert_int_eq(rc(), -EPERM);
    ck_assert(wrong_thread_logged);
    close(fd);
    tserver_stop(t);
    wharf_log_set_callback(NULL, NULL);
}
END_TEST

/* ---- a graceful stop and bytes still in the kernel -------------------------- */

/* An echo client: writes `rate` bytes every 10 ms (until `send_total`
 * bytes, 0 = no end) and reads at most `read_rate` every 10 ms, until EOF
 * or 8 s; notes when its last byte arrived. */
struct stream_client {
    int fd;
    size_t rate, read_rate, send_total;
    size_t sent, got;
    uint64_t last_byte_ms, eof_ms;
};

static void *stream_run(void *arg)
{
    struct stream_client *s = arg;
    static char out[1 << 16], in[1 << 16];
    fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
    uint64_t end = now_ms() + 8000;
    while (now_ms() < end) {
        size_t want = s->rate;
        if (s->send_total && s->send_total - s->sent < want)
            want = s->send_total - s->sent;
        ssize_t n = want ? send(s->fd, out, want, MSG_NOSIGNAL) : 0;
        if (n > 0)
            s->sent += (size_t)n;
        n = recv(s->fd, in, s->read_rate, 0);
        if (n > 0) {
            s->got += (size_t)n;
            s->last_byte_ms = now_ms();
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            s->eof_ms = now_ms();
            break;
        }
        usleep(10000);
    }
    return NULL;
}

/* A 2 MiB/s echo stream to a client that reads 1.6 MB/s: most of what is
 * in flight sits in the kernel's queues, not in wharf's buffers.  A stop
 * keeps it until shutdown_timeout_ms (1.5 s), not 0.16 s. */
START_TEST(stop_keeps_a_busy_stream_until_the_timeout)
{
    struct tserver *t = tserver_start("{\"workers\": 1, \"shutdown_timeout_ms\": 1500, "
                                      "\"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}");
    struct stream_client s = {.fd = tcp_connect("127.0.0.1", tserver_port(t, 0)),
                              .rate = 20971, .read_rate = 16000};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, stream_run, &s), 0);
    usleep(300000);
    uint64_t start = now_ms();
    server_stop(t->srv);
    uint64_t took = now_ms() - start;
    pthread_join(th, NULL);
    ck_assert_msg(took >= 1300 && took < 5000, "the stop took %llu ms",
                  (unsigned long long)took);
    ck_assert_msg(s.last_byte_ms >= start + 1000, "the stream ended %lld ms after the stop",
                  (long long)(s.last_byte_ms - start));
    close(s.fd);
    tserver_stop(t);
}
END_TEST

/* A stream that ends closes as soon as its last byte is read, long before
 * shutdown_timeout_ms (5 s). */
START_TEST(stop_closes_a_finished_stream_once_it_is_read)
{
    struct tserver *t = tserver_start("{\"workers\": 1, \"shutdown_timeout_ms\": 5000, "
                                      "\"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}");
    struct stream_client s = {.fd = tcp_connect("127.0.0.1", tserver_port(t, 0)),
                              .rate = 65536, .read_rate = 16000, .send_total = 300000};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, stream_run, &s), 0);
    usleep(100000);
    uint64_t start = now_ms();
    server_stop(t->srv);
    uint64_t took = now_ms() - start;
    pthread_join(th, NULL);
    ck_assert_uint_eq(s.got, 300000);
    ck_assert_msg(took < 2500, "the stop took %llu ms", (unsigned long long)took);
    ck_assert_msg(s.eof_ms && s.eof_ms - s.last_byte_ms < 1000, "EOF %lld ms after the last byte",
                  (long long)(s.eof_ms - s.last_byte_ms));
    close(s.fd);
    tserver_stop(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("contract");
    TCase *tc = tcase_create("contract");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, partial_consumption_and_half_close_lose_nothing);
    tcase_add_test(tc, pipelined_requests_are_all_answered_at_once);
    tcase_add_test(tc, requests_split_at_every_byte_are_answered);
    tcase_add_test(tc, kept_input_comes_back_after_resume);
    tcase_add_test(tc, kept_input_comes_back_after_on_drain);
    tcase_add_test(tc, on_eof_may_keep_the_connection_to_answer_later);
    tcase_add_test(tc, kept_bytes_are_offered_before_eof);
    tcase_add_test(tc, on_data_claiming_too_much_is_caught);
    tcase_add_test(tc, shutdown_notice_can_say_goodbye);
    tcase_add_test(tc, stop_keeps_a_busy_stream_until_the_timeout);
    tcase_add_test(tc, stop_closes_a_finished_stream_once_it_is_read);
    tcase_add_test(tc, connection_timers_repeat_and_stop_at_close);
    tcase_add_test(tc, blocking_work_done_runs_even_when_the_connection_is_gone);
    tcase_add_test(tc, debug_mode_refuses_calls_from_the_wrong_thread);
    tcase_add_test(tc, shutdown_write_sends_eof_and_keeps_reading);
    tcase_add_test(tc, closing_connection_drains_a_peer_that_writes_before_reading);
    tcase_add_test(tc, want_drain_paces_a_producer);
    tcase_add_test(tc, closing_another_connection_waits_for_the_callback);
    suite_add_tcase(s, tc);
    return check_run(s);
}
