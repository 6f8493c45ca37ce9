/*
 * check_udp_send.c - integration suite for the wharf_udp_* calls (sends at
 * any time, kept reply handles, outbound sockets) on real servers and real
 * loopback sockets: a reply after a 200 ms blocking job, from a timer,
 * after a reload (from the socket the request came in on), the send guard
 * refusing privileged ports, broadcast and the server's own ports with the
 * errno named, malformed sends refused, rate_limit counting sends, handles
 * left open closed by the worker at shutdown (fini runs; valgrind finds no
 * leak), and a timer-flushed relay whose upstream answers the worker that
 * opened its socket.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"

#define SEND_JSON(workers, keys) \
    "{\"workers\": " #workers ", \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, " \
    "\"handler\": \"mod_udp_send\"" keys "}]}"

static void send_to(int fd, int port, const char *text)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t n = strlen(text);
    ck_assert_int_eq(sendto(fd, text, n, 0, (struct sockaddr *)&to, sizeof to), (ssize_t)n);
}

/* Receives one datagram as text (NUL-terminated) and its source port;
 * returns its length, or -1 on timeout. */
static ssize_t recv_text(int fd, char *buf, size_t size, int *from_port)
{
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, size - 1, 0, (struct sockaddr *)&from, &len);
    buf[n < 0 ? 0 : n] = '\0';
    if (from_port)
        *from_port = n < 0 ? -1 : ntohs(from.sin_port);
    return n;
}

/* Sends a command and returns its one answer (fails the test on timeout). */
static const char *ask(int fd, int port, const char *cmd)
{
    static char buf[256];
    send_to(fd, port, cmd);
    ssize_t n = recv_text(fd, buf, sizeof buf, NULL);
    ck_assert_msg(n >= 0, "no answer to \"%s\"", cmd);
    return buf;
}

static int finis(void)
{
    return __atomic_load_n((int *)test_module_symbol("mod_udp_send", "mod_udp_send_finis"),
                           __ATOMIC_SEQ_CST);
}

START_TEST(deferred_reply_after_job)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, "
        "\"handler\": \"mod_udp_defer\", \"options\": {\"work_ms\": 200}}]}");
    int fd = udp_socket("127.0.0.1", 0, 5000);
    uint64_t t0 = now_ms();
    send_to(fd, tserver_port(t, 0), "who is 10.0.0.1");
    char buf[256];
    int from = 0;
    ck_assert_int_eq(recv_text(fd, buf, sizeof buf, &from), 23);
    ck_assert_uint_ge(now_ms() - t0, 200);
    ck_assert_str_eq(buf, "answer: who is 10.0.0.1");
    ck_assert_int_eq(from, tserver_port(t, 0)); /* from the listener's socket */
    /* Many at once: each answered once, none lost while the jobs run. */
    for (int i = 0; i < 20; i++) {
        char q[32];
        snprintf(q, sizeof q, "q%d", i);
        send_to(fd, tserver_port(t, 0), q);
    }
    unsigned seen = 0;
    for (int i = 0; i < 20; i++) {
        ck_assert_int_gt(recv_text(fd, buf, sizeof buf, NULL), 0);
        int k = -1;
        ck_assert_int_eq(sscanf(buf, "answer: q%d", &k), 1);
        ck_assert(k >= 0 && k < 20 && !(seen & (1u << k)));
        seen |= 1u << k;
    }
    close(fd);
    tserver_stop(t);
}
END_TEST

static bool two_out(void *arg)
{
    return tserver_stats(arg, 0).datagrams_out == 2;
}

START_TEST(send_from_timer)
{
    struct tserver *t = tserver_start(SEND_JSON(1, ""));
    int fd = udp_socket("127.0.0.1", 0, 5000);
    uint64_t t0 = now_ms();
    ck_assert_str_eq(ask(fd, tserver_port(t, 0), "later 150 tick"), "kept");
    char buf[64];
    int from = 0;
    ck_assert_int_eq(recv_text(fd, buf, sizeof buf, &from), 4);
    ck_assert_uint_ge(now_ms() - t0, 150);
    ck_assert_str_eq(buf, "tick");
    ck_assert_int_eq(from, tserver_port(t, 0));
    ck_assert(wait_for(two_out, t, 2000)); /* counted just after the send */
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(reply_after_reload_leaves_from_the_same_socket)
{
    int f0 = finis();
    struct tserver *t = tserver_start(SEND_JSON(2, ""));
    int port = tserver_port(t, 0);
    int fd = udp_socket("127.0.0.1", 0, 5000);
    ck_assert_str_eq(ask(fd, port, "later 1500 from generation 1"), "kept");
    /* The same listener (its socket moves over) and a new one. */
    tserver_reload(t,
                   "{\"workers\": 2, \"listeners\": [{\"protocol\": \"udp\", \"port\": %d, "
                   "\"handler\": \"mod_udp_send\"}, {\"protocol\": \"udp\", \"port\": 0, "
                   "\"handler\": \"mod_udp_send\"}]}",
                   port);
    /* Generation 1 is retired but pinned by the handle (and its timer). */
    usleep(100 * 1000);
    ck_assert_int_eq(finis(), f0);
    char buf[64];
    int from = 0;
    ck_assert_int_eq(recv_text(fd, buf, sizeof buf, &from), 17);
    ck_assert_str_eq(buf, "from generation 1");
    ck_assert_int_eq(from, port);
    /* Once it has sent and closed, generation 1 goes. */
    for (int i = 0; i < 200 && finis() == f0; i++)
        usleep(10 * 1000);
    ck_assert_int_eq(finis(), f0 + 1);
    /* The reloaded listener answers on the same port. */
    ck_assert_str_eq(ask(fd, port, "closed"), "rc -32"); /* -EPIPE */
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(guard_refuses_privileged_broadcast_and_own_ports)
{
    struct tserver *t = tserver_start(SEND_JSON(1, ""));
    int port = tserver_port(t, 0);
    int fd = udp_socket("127.0.0.1", 0, 5000);
    int peer = udp_socket("127.0.0.1", 0, 2000);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "to 127.0.0.1 %d hello", udp_local_port(peer));
    ck_assert_str_eq(ask(fd, port, cmd), "rc 0");
    char buf[64];
    int from = 0;
    ck_assert_int_eq(recv_text(peer, buf, sizeof buf, &from), 5);
    ck_assert_str_eq(buf, "hello");
    ck_assert_int_eq(from, port);

    /* EACCES (13): a privileged port, broadcast, multicast, IPv4-mapped
     * broadcast; ELOOP (40): the server's own port. */
    ck_assert_str_eq(ask(fd, port, "to 127.0.0.1 1000 x"), "rc -13");
    ck_assert_str_eq(ask(fd, port, "to 127.0.0.1 53 x"), "rc -13");
    ck_assert_str_eq(ask(fd, port, "to 255.255.255.255 9999 x"), "rc -13");
    ck_assert_str_eq(ask(fd, port, "to 224.0.0.1 9999 x"), "rc -13");
    ck_assert_str_eq(ask(fd, port, "to 0.0.0.0 9999 x"), "rc -13");
    /* IPv6 on an IPv4 socket: EAFNOSUPPORT (97), before any guard. */
    ck_assert_str_eq(ask(fd, port, "to ff02::1 9999 x"), "rc -97");
    snprintf(cmd, sizeof cmd, "to 127.0.0.1 %d x", port);
    ck_assert_str_eq(ask(fd, port, cmd), "rc -40");
    ck_assert_uint_eq(tserver_stats(t, 0).datagrams_dropped, 6);
    close(peer);
    close(fd);
    tserver_stop(t);

    /* The listener may allow them. */
    t = tserver_start(SEND_JSON(1, ", \"allow_privileged_ports\": true, \"loop_guard\": false"));
    port = tserver_port(t, 0);
    fd = udp_socket("127.0.0.1", 0, 5000);
    /* This one leaves: to a port no suite binds (check_udp_echo, which may
     * run at the same time, binds 19 and 1000 and expects nothing there). */
    ck_assert_str_eq(ask(fd, port, "to 127.0.0.1 1021 x"), "rc 0");
    ck_assert_str_eq(ask(fd, port, "to 255.255.255.255 9999 x"), "rc -13");
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(malformed_sends_are_refused)
{
    struct tserver *t = tserver_start(SEND_JSON(1, ""));
    int fd = udp_socket("127.0.0.1", 0, 5000);
    /* EAFNOSUPPORT (97), EINVAL (22) twice, EMSGSIZE (90). */
    ck_assert_str_eq(ask(fd, tserver_port(t, 0), "bad"), "rc -97 -22 -22 -90");
    ck_assert_str_eq(ask(fd, tserver_port(t, 0), "closed"), "rc -32");
    ck_assert_str_eq(ask(fd, tserver_port(t, 0), "to 127.0.0.1 0 x"), "rc -13");
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(rate_limit_counts_sends)
{
    /* 3 a second per address: the client and the peer are both 127.0.0.1,
     * so a command (in) and its send (out) take two of the three tokens. */
    struct tserver *t = tserver_start(SEND_JSON(1, ", \"rate_limit\": 3"));
    int fd = udp_socket("127.0.0.1", 0, 1000);
    int peer = udp_socket("127.0.0.1", 0, 1000);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "to 127.0.0.1 %d x", udp_local_port(peer));
    ck_assert_str_eq(ask(fd, tserver_port(t, 0), cmd), "rc 0");
    ck_assert_str_eq(ask(fd, tserver_port(t, 0), cmd), "rc -11"); /* EAGAIN */
    ck_assert_uint_ge(tserver_stats(t, 0).datagrams_dropped, 1);
    close(peer);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(kept_handles_are_closed_at_shutdown)
{
    int f0 = finis();
    struct tserver *t = tserver_start(SEND_JSON(2, ""));
    int fd = udp_socket("127.0.0.1", 0, 5000);
    for (int i = 0; i < 10; i++)
        ck_assert_str_eq(ask(fd, tserver_port(t, 0), "keep"), "kept");
    /* A timer's handle still pending at the stop goes too. */
    ck_assert_str_eq(ask(fd, tserver_port(t, 0), "later 60000 never"), "kept");
    tserver_stop(t);
    ck_assert_int_eq(finis(), f0 + 1);
    close(fd);
}
END_TEST

/* ---- outbound sockets: the relay ----------------------------------------- */

START_TEST(relay_flushes_on_a_timer_and_answers_come_back)
{
    int upstream = udp_socket("127.0.0.1", 0, 3000);
    int report = udp_socket("127.0.0.1", 0, 3000);
    int client = udp_socket("127.0.0.1", 0, 3000);
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, "
        "\"handler\": \"mod_udp_relay\", \"options\": {\"upstream_port\": %d, "
        "\"flush_ms\": 250, \"report_port\": %d}}]}",
        udp_local_port(upstream), udp_local_port(report));
    send_to(client, tserver_port(t, 0), "a.count:1|c");
    send_to(client, tserver_port(t, 0), "b.count:2|c\n");
    send_to(client, tserver_port(t, 0), "c.gauge:3|g");
    char buf[2048];
    struct sockaddr_in from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(upstream, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fromlen);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    /* One datagram, every line in order. */
    ck_assert_str_eq(buf, "a.count:1|c\nb.count:2|c\nc.gauge:3|g\n");
    /* The upstream answers the outbound socket: the worker that opened it
     * gets it and reports it from the listener's socket. */
    ck_assert_int_eq(sendto(upstream, "ok", 2, 0, (struct sockaddr *)&from, fromlen), 2);
    int rport = 0;
    ck_assert_int_gt(recv_text(report, buf, sizeof buf, &rport), 0);
    ck_assert_str_eq(buf, "worker 0 (on 0): ok");
    ck_assert_int_eq(rport, tserver_port(t, 0));
    /* Nothing buffered: nothing sent at the next flushes. */
    struct timeval tv = {.tv_sec = 0, .tv_usec = 400 * 1000};
    setsockopt(upstream, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_int_lt(recv(upstream, buf, sizeof buf, 0), 0);
    /* A line buffered at the stop is flushed by on_worker_stop. */
    send_to(client, tserver_port(t, 0), "d.last:4|c");
    usleep(20 * 1000);
    tserver_stop(t);
    tv.tv_sec = 2;
    setsockopt(upstream, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    n = recv(upstream, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "d.last:4|c\n");
    close(client);
    close(report);
    close(upstream);
}
END_TEST

START_TEST(relay_with_several_workers_answers_each_worker)
{
    int upstream = udp_socket("127.0.0.1", 0, 3000);
    int report = udp_socket("127.0.0.1", 0, 3000);
    struct tserver *t = tserver_start(
        "{\"workers\": 3, \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, "
        "\"reuse_port\": true, \"handler\": \"mod_udp_relay\", \"options\": "
        "{\"upstream_port\": %d, \"flush_ms\": 50, \"report_port\": %d}}]}",
        udp_local_port(upstream), udp_local_port(report));
    /* Clients from many source ports spread over the workers. */
    int got[3] = {0};
    for (int i = 0; i < 30; i++) {
        int c = udp_socket("127.0.0.1", 0, 1000);
        send_to(c, tserver_port(t, 0), "x:1|c");
        close(c);
    }
    /* Every flush is answered; every answer reaches the worker that sent
     * it (the report says which worker's socket got it, and on which
     * worker the callback ran). */
    char buf[2048];
    for (int k = 0; k < 3; k++) {
        struct sockaddr_in from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(upstream, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0)
            break;
        sendto(upstream, "ack", 3, 0, (struct sockaddr *)&from, fromlen);
        ck_assert_int_gt(recv_text(report, buf, sizeof buf, NULL), 0);
        unsigned a = 9, b = 8;
        ck_assert_int_eq(sscanf(buf, "worker %u (on %u): ack", &a, &b), 2);
        ck_assert_uint_eq(a, b);
        ck_assert_uint_lt(a, 3);
        got[a]++;
    }
    ck_assert_int_ge(got[0] + got[1] + got[2], 1);
    tserver_stop(t);
    close(report);
    close(upstream);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("udp_send");
    TCase *tc = tcase_create("udp_send");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, deferred_reply_after_job);
    tcase_add_test(tc, send_from_timer);
    tcase_add_test(tc, reply_after_reload_leaves_from_the_same_socket);
    tcase_add_test(tc, guard_refuses_privileged_broadcast_and_own_ports);
    tcase_add_test(tc, malformed_sends_are_refused);
    tcase_add_test(tc, rate_limit_counts_sends);
    tcase_add_test(tc, kept_handles_are_closed_at_shutdown);
    tcase_add_test(tc, relay_flushes_on_a_timer_and_answers_come_back);
    tcase_add_test(tc, relay_with_several_workers_answers_each_worker);
    suite_add_tcase(s, tc);
    return check_run(s);
}
