/*
 * check_timeouts.c - integration suite for per-connection timeouts: idle
 * closes an idle connection and not an active one, write closes a client that
 * stopped reading, lifetime closes even a busy one, handlers can override a
 * timeout per connection and get on_timeout (with a last word) first; the
 * handshake timeout closes a client that never says anything, and min_rate
 * one that trickles a message in; the idle kinds (all, reader, writer idle)
 * told apart on the test kit's clock, with a heartbeat kept going by
 * on_timeout setting write_idle again.
 */
#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "modules/mod_probe.h"
#include "testutil.h"
#include "wharf_test.h"

START_TEST(idle_timeout_closes_idle_connection_only)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"listeners\": [{\"port\": 0, \"handler\": \"echo\", "
        "\"timeouts\": {\"idle_ms\": 300}}]}");
    int port = tserver_port(t, 0);
    int idle = tcp_connect("127.0.0.1", port);
    int active = tcp_connect("127.0.0.1", port);
    uint64_t start = now_ms();
    /* Keep `active` busy for 900 ms, three idle periods. */
    while (now_ms() - start < 900) {
        unsigned char b = 'a', back = 0;
        send_all(active, &b, 1);
        ck_assert_uint_eq(recv_exact(active, &back, 1, 2000), 1);
        ck_assert_int_eq(back, 'a');
        usleep(50 * 1000);
    }
    /* By now `idle` is closed... */
    ck_assert(wait_closed(idle, 100));
    uint64_t elapsed = now_ms() - start;
    ck_assert_uint_ge(elapsed, 280);
    /* ...and `active` still echoes. */
    unsigned char data[10];
    fill_pattern(data, sizeof data, 1);
    echo_roundtrip(active, data, sizeof data, 2000);
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_TIMEOUT], 1);
    close(idle);
    close(active);
    tserver_stop(t);
}
END_TEST

START_TEST(idle_timeout_is_accurate)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"echo\", "
        "\"timeouts\": {\"idle_ms\": 100}}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    uint64_t start = now_ms();
    ck_assert(wait_closed(fd, 2000));
    uint64_t elapsed = now_ms() - start;
    ck_assert_msg(elapsed >= 90 && elapsed <= 250, "closed after %llu ms, wanted ~100",
                  (unsigned long long)elapsed);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(on_timeout_runs_and_last_word_arrives)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"mod_probe\", "
        "\"timeouts\": {\"idle_ms\": 200}, \"options\": {\"last_word\": \"bye\\n\"}}]}");
    struct probe_counts before, after;
    probe_get(&before);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char got[8] = {0};
    ck_assert_uint_eq(recv_exact(fd, got, 4, 3000), 4);
    ck_assert_str_eq(got, "bye\n");
    ck_assert(wait_closed(fd, 2000));
    close(fd);
    probe_get(&after);
    ck_assert_uint_eq(after.timeouts[WHARF_TIMEOUT_IDLE] - before.timeouts[WHARF_TIMEOUT_IDLE], 1);
    ck_assert_uint_eq(after.timeouts[WHARF_TIMEOUT_WRITE] - before.timeouts[WHARF_TIMEOUT_WRITE], 0);
    ck_assert_uint_eq(after.closes[WHARF_CLOSE_TIMEOUT] - before.closes[WHARF_CLOSE_TIMEOUT], 1);
    tserver_stop(t);
}
END_TEST

START_TEST(handler_overrides_idle_timeout_per_connection)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"mod_probe\", "
        "\"timeouts\": {\"idle_ms\": 60000}, \"options\": {\"idle_ms\": 150}}]}");
    struct probe_counts before, after;
    probe_get(&before);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    uint64_t start = now_ms();
    ck_assert(wait_closed(fd, 3000));
    uint64_t elapsed = now_ms() - start;
    ck_assert_msg(elapsed >= 130 && elapsed < 1000, "closed after %llu ms",
                  (unsigned long long)elapsed);
    close(fd);
    probe_get(&after);
    ck_assert_uint_eq(after.opens - before.opens, 1);
    ck_assert_uint_eq(after.timeouts[WHARF_TIMEOUT_IDLE] - before.timeouts[WHARF_TIMEOUT_IDLE], 1);
    ck_assert_uint_eq(after.closes[WHARF_CLOSE_TIMEOUT] - before.closes[WHARF_CLOSE_TIMEOUT], 1);
    tserver_stop(t);
}
END_TEST

static bool one_timeout_close(void *arg)
{
    struct tserver *t = arg;
    return tserver_stats(t, 0).closed[WHARF_CLOSE_TIMEOUT] == 1;
}

START_TEST(write_timeout_closes_client_that_stopped_reading)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"mod_probe\", "
        "\"timeouts\": {\"idle_ms\": 0, \"write_ms\": 300}, "
        "\"options\": {\"greeting_bytes\": 8388608}}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    /* Never read: the 8 MiB greeting cannot drain, progress stops. */
    uint64_t start = now_ms();
    ck_assert(wait_for(one_timeout_close, t, 5000));
    ck_assert_uint_ge(now_ms() - start, 250);
    struct probe_counts pc;
    probe_get(&pc);
    ck_assert_uint_ge(pc.timeouts[WHARF_TIMEOUT_WRITE], 1);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(lifetime_closes_even_active_connection)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"echo\", "
        "\"timeouts\": {\"idle_ms\": 0, \"lifetime_ms\": 300}}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    uint64_t start = now_ms();
    bool closed = false;
    while (!closed && now_ms() - start < 3000) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
            break;
        char b;
        closed = recv_exact(fd, &b, 1, 1000) != 1;
        usleep(20 * 1000);
    }
    uint64_t elapsed = now_ms() - start;
    ck_assert_msg(elapsed >= 280 && elapsed < 1500, "lifetime ended after %llu ms",
                  (unsigned long long)elapsed);
    ck_assert(wait_for(one_timeout_close, t, 2000));
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(handshake_timeout_closes_a_silent_client_only)
{
    struct probe_counts before, after;
    probe_get(&before);
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"mod_probe\", "
        "\"timeouts\": {\"handshake_ms\": 200}}]}");
    int port = tserver_port(t, 0);
    int silent = tcp_connect("127.0.0.1", port), talker = tcp_connect("127.0.0.1", port);
    send_all(talker, "x", 1);
    char x;
    ck_assert_uint_eq(recv_exact(talker, &x, 1, 2000), 1);
    uint64_t start = now_ms();
    ck_assert(wait_closed(silent, 3000));
    ck_assert_uint_ge(now_ms() - start, 150);
    unsigned char data[4];
    fill_pattern(data, sizeof data, 2);
    usleep(300000); /* well past the handshake time: the talker stays */
    ck_assert_uint_ge(echo_roundtrip(talker, data, sizeof data, 2000), sizeof data);
    probe_get(&after);
    ck_assert_uint_eq(after.timeouts[WHARF_TIMEOUT_HANDSHAKE] - before.timeouts[WHARF_TIMEOUT_HANDSHAKE], 1);
    close(silent);
    close(talker);
    tserver_stop(t);
}
END_TEST

START_TEST(min_rate_closes_a_trickling_client_only)
{
    /* The handler holds every byte (a message in progress); 100 bytes/s over
     * 300 ms windows means 30 bytes per window. */
    struct probe_counts before, after;
    probe_get(&before);
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"mod_probe\", "
        "\"options\": {\"hold\": true}, "
        "\"timeouts\": {\"min_rate\": 100, \"min_rate_window_ms\": 300}}]}");
    int port = tserver_port(t, 0);
    int slow = tcp_connect("127.0.0.1", port), fast = tcp_connect("127.0.0.1", port);
    bool slow_closed = false;
    uint64_t start = now_ms();
    char chunk[20];
    memset(chunk, 'f', sizeof chunk);
    while (now_ms() - start < 1500) {
        if (!slow_closed && send(slow, "s", 1, MSG_NOSIGNAL) < 0)
            slow_closed = true;
        send_all(fast, chunk, sizeof chunk); /* 200 bytes/s */
        usleep(100000);
    }
    ck_assert(wait_closed(slow, 1000));
    /* The fast one is still open. */
    ck_assert_int_eq(send(fast, "f", 1, MSG_NOSIGNAL), 1);
    struct pollfd p = {.fd = fast, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 100), 0);
    probe_get(&after);
    ck_assert_uint_eq(after.timeouts[WHARF_TIMEOUT_RATE] - before.timeouts[WHARF_TIMEOUT_RATE], 1);
    close(slow);
    close(fast);
    tserver_stop(t);
}
END_TEST

/* ---- the idle kinds, on the test kit's clock --------------------------------- */

/* A heartbeat server: echoes, and on writer idle sends "PING\n" and keeps
 * the connection (by setting write_idle again).  Counts each kind fired. */
static unsigned hb_fired[WHARF_TIMEOUT_WRITE_IDLE + 1];

static size_t hb_data(wharf_conn *c, const void *data, size_t len)
{
    wharf_send(c, data, len);
    return len;
}

static void hb_timeout(wharf_conn *c, enum wharf_timeout kind)
{
    hb_fired[kind]++;
    if (kind == WHARF_TIMEOUT_WRITE_IDLE) {
        wharf_send(c, "PING\n", 5);
        ck_assert_int_eq(wharf_set_timeout(c, WHARF_TIMEOUT_WRITE_IDLE, 100), 0);
    }
}

static const struct wharf_handler hb_handler = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "heartbeat",
    .on_data = hb_data,
    .on_timeout = hb_timeout,
};

static wharf_test *hb_start(const char *timeouts)
{
    char json[256], err[512] = "";
    snprintf(json, sizeof json, "\"timeouts\": {%s}", timeouts);
    memset(hb_fired, 0, sizeof hb_fired);
    wharf_test *t = wharf_test_new(&hb_handler, json, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    return t;
}

/* Counts "PING\n" in c's output. */
static unsigned hb_pings(wharf_test_conn *c)
{
    size_t len;
    const char *out = wharf_test_output(c, &len);
    unsigned n = 0;
    for (size_t i = 0; i + 5 <= len; i++)
        n += memcmp(out + i, "PING\n", 5) == 0;
    return n;
}

START_TEST(read_idle_closes_a_silent_client_despite_heartbeats)
{
    wharf_test *t = hb_start("\"idle_ms\": 0, \"write_idle_ms\": 100, \"read_idle_ms\": 350");
    wharf_test_conn *c = wharf_test_connect(t);
    enum wharf_close_reason why;
    for (int i = 0; i < 3; i++) {
        wharf_test_advance(t, 100);
        ck_assert(!wharf_test_closed(c, &why));
    }
    ck_assert_uint_eq(hb_pings(c), 3); /* writer idle kept it open, three times */
    wharf_test_advance(t, 60);
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_TIMEOUT);
    ck_assert_uint_eq(hb_fired[WHARF_TIMEOUT_READ_IDLE], 1);
    ck_assert_uint_eq(hb_fired[WHARF_TIMEOUT_IDLE], 0);
    wharf_test_free(t);
}
END_TEST

START_TEST(all_idle_counts_what_is_sent_reader_idle_does_not)
{
    /* The same heartbeat with idle_ms (all idle): each PING is write
     * progress, so the silent client is never all-idle. */
    wharf_test *t = hb_start("\"idle_ms\": 350, \"write_idle_ms\": 100");
    wharf_test_conn *c = wharf_test_connect(t);
    enum wharf_close_reason why;
    for (int i = 0; i < 20; i++)
        wharf_test_advance(t, 100);
    ck_assert(!wharf_test_closed(c, &why));
    ck_assert_uint_eq(hb_pings(c), 20);
    ck_assert_uint_eq(hb_fired[WHARF_TIMEOUT_IDLE], 0);
    /* A client that talks resets reader idle, not writer idle. */
    wharf_test_free(t);
    t = hb_start("\"idle_ms\": 0, \"read_idle_ms\": 250");
    c = wharf_test_connect(t);
    for (int i = 0; i < 10; i++) {
        wharf_test_send(c, "x", 1);
        wharf_test_advance(t, 100);
    }
    ck_assert(!wharf_test_closed(c, &why));
    wharf_test_advance(t, 260);
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_uint_eq(hb_fired[WHARF_TIMEOUT_READ_IDLE], 1);
    wharf_test_free(t);
}
END_TEST

START_TEST(write_idle_without_keeping_closes)
{
    /* A handler without on_timeout: writer idle closes like any timer. */
    static const struct wharf_handler plain = {
        .abi_version = WHARF_ABI_VERSION, .name = "plain", .on_data = hb_data};
    char err[512] = "";
    wharf_test *t = wharf_test_new(&plain, "\"timeouts\": {\"idle_ms\": 0, \"write_idle_ms\": 200}",
                                   err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    enum wharf_close_reason why;
    wharf_test_advance(t, 150);
    wharf_test_send(c, "abc", 3); /* received, not sent: does not reset writer idle... */
    ck_assert(!wharf_test_closed(c, &why));
    wharf_test_advance(t, 40);   /* ...but the echo it caused was sent at 150 ms */
    ck_assert(!wharf_test_closed(c, &why));
    wharf_test_advance(t, 170);
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_TIMEOUT);
    ck_assert_int_eq(wharf_set_timeout(wharf_test_handle(wharf_test_connect(t)),
                                       WHARF_TIMEOUT_RATE, 100), -EINVAL);
    wharf_test_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("timeouts");
    TCase *tc = tcase_create("timeouts");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, idle_timeout_closes_idle_connection_only);
    tcase_add_test(tc, idle_timeout_is_accurate);
    tcase_add_test(tc, on_timeout_runs_and_last_word_arrives);
    tcase_add_test(tc, handler_overrides_idle_timeout_per_connection);
    tcase_add_test(tc, write_timeout_closes_client_that_stopped_reading);
    tcase_add_test(tc, lifetime_closes_even_active_connection);
    tcase_add_test(tc, handshake_timeout_closes_a_silent_client_only);
    tcase_add_test(tc, min_rate_closes_a_trickling_client_only);
    tcase_add_test(tc, read_idle_closes_a_silent_client_despite_heartbeats);
    tcase_add_test(tc, all_idle_counts_what_is_sent_reader_idle_does_not);
    tcase_add_test(tc, write_idle_without_keeping_closes);
    suite_add_tcase(s, tc);
    return check_run(s);
}
