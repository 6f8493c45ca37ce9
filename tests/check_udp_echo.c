/*
 * check_udp_echo.c - integration suite for the UDP echo handler: datagrams
 * come back whole (up to 65,507 bytes), one reply per datagram, and the
 * reflection guard ignores blocked and privileged source ports and counts
 * what it drops.
 */
#include <arpa/inet.h>
#include <check.h>
#include <sys/time.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"

#define UDP_JSON(opts) \
    "{\"workers\": 2, \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, " \
    "\"handler\": \"udp_echo\"" opts "}]}"

static void send_to(int fd, int port, const void *p, size_t n)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ssize_t w = sendto(fd, p, n, 0, (struct sockaddr *)&to, sizeof to);
    ck_assert_msg(w == (ssize_t)n, "sendto %zu bytes: %s", n, strerror(errno));
}

static bool one_sent(void *arg)
{
    return tserver_stats(arg, 0).datagrams_out == 1;
}

static void udp_roundtrip(size_t len)
{
    struct tserver *t = tserver_start(UDP_JSON(""));
    int fd = udp_socket("127.0.0.1", 0, 2000);
    unsigned char *data = malloc(len), *back = malloc(65536);
    fill_pattern(data, len, (unsigned)len);
    send_to(fd, tserver_port(t, 0), data, len);
    ssize_t r = recv(fd, back, 65536, 0);
    ck_assert_int_eq(r, (ssize_t)len);
    ck_assert_mem_eq(data, back, len);
    /* The reply can arrive before the worker counts it. */
    ck_assert(wait_for(one_sent, t, 2000));
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.datagrams_in, 1);
    ck_assert_uint_eq(st.datagrams_out, 1);
    ck_assert_uint_eq(st.bytes_out, len);
    close(fd);
    free(data);
    free(back);
    tserver_stop(t);
}

/* t's dropped datagrams, once they reach `want` (or after 5 s: a slow
 * machine may read a datagram after the client stopped waiting for a
 * reply). */
static uint64_t dropped_reaching(struct tserver *t, uint64_t want)
{
    for (int i = 0; i < 100 && tserver_stats(t, 0).datagrams_dropped < want; i++)
        usleep(50000);
    return tserver_stats(t, 0).datagrams_dropped;
}

START_TEST(udp_sizes)
{
    static const size_t sizes[] = {1, 64, 1472, 1473, 9000, 65507};
    udp_roundtrip(sizes[_i]);
}
END_TEST

START_TEST(udp_ipv6_datagrams_up_to_65527_bytes)
{
    /* IPv6 carries 20 bytes more than IPv4 (no IPv4 header). */
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"protocol\": \"udp\", "
                                      "\"address\": \"::1\", \"port\": 0, \"handler\": \"udp_echo\"}]}");
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int big = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)tserver_port(t, 0))};
    inet_pton(AF_INET6, "::1", &to.sin6_addr);
    static const size_t sizes[] = {65508, 65520, 65527};
    unsigned char *data = malloc(65527), *back = malloc(65536);
    for (size_t k = 0; k < 3; k++) {
        fill_pattern(data, sizes[k], (unsigned)k);
        ck_assert_int_eq(sendto(fd, data, sizes[k], 0, (struct sockaddr *)&to, sizeof to),
                         (ssize_t)sizes[k]);
        ck_assert_int_eq(recv(fd, back, 65536, 0), (ssize_t)sizes[k]);
        ck_assert(memcmp(data, back, sizes[k]) == 0);
    }
    free(data);
    free(back);
    close(fd);
    /* Counted right after the send, which the client may beat. */
    struct wharf_listener_stats st = tserver_stats(t, 0);
    for (int i = 0; i < 200 && st.datagrams_out < 3; i++) {
        usleep(5000);
        st = tserver_stats(t, 0);
    }
    ck_assert_uint_eq(st.datagrams_out, 3);
    ck_assert_uint_eq(st.datagrams_dropped, 0);
    tserver_stop(t);
}
END_TEST

/* A datagram from another host's copy of this service (same port number),
 * played by a client bound to 127.0.0.2 on the server's own port. */
static bool loop_guard_answers(bool guard, uint64_t *dropped)
{
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"protocol\": \"udp\", "
                                      "\"port\": 0, \"handler\": \"udp_echo\", \"loop_guard\": %s}]}",
                                      guard ? "true" : "false");
    int port = tserver_port(t, 0);
    int fd = udp_socket("127.0.0.2", port, 300);
    send_to(fd, port, "ping", 4);
    char back[16];
    bool answered = recv(fd, back, sizeof back, 0) == 4;
    close(fd);
    *dropped = tserver_stats(t, 0).datagrams_dropped;
    tserver_stop(t);
    return answered;
}

START_TEST(udp_loop_guard_drops_datagrams_from_own_port)
{
    uint64_t dropped;
    ck_assert(!loop_guard_answers(true, &dropped));
    ck_assert_uint_eq(dropped, 1);
    ck_assert(loop_guard_answers(false, &dropped));
    ck_assert_uint_eq(dropped, 0);
}
END_TEST

/* The loop guard knows every UDP port of the server, however many: a
 * datagram whose source port is the 70th listener's is dropped too. */
START_TEST(udp_loop_guard_covers_every_port)
{
    enum { NLISTENERS = 70 };
    char json[NLISTENERS * 80 + 64];
    size_t n = (size_t)snprintf(json, sizeof json, "{\"workers\": 1, \"listeners\": [");
    for (int i = 0; i < NLISTENERS; i++)
        n += (size_t)snprintf(json + n, sizeof json - n,
                              "%s{\"protocol\": \"udp\", \"port\": 0, \"handler\": \"udp_echo\"}",
                              i ? ", " : "");
    snprintf(json + n, sizeof json - n, "]}");
    ck_assert_uint_lt(n + 2, sizeof json);
    struct tserver *t = tserver_start("%s", json);
    char back[16];
    /* From the last listener's port (on another address): dropped. */
    int fd = udp_socket("127.0.0.2", tserver_port(t, NLISTENERS - 1), 300);
    send_to(fd, tserver_port(t, 0), "ping", 4);
    ck_assert_int_lt(recv(fd, back, sizeof back, 0), 0);
    ck_assert_uint_eq(dropped_reaching(t, 1), 1);
    close(fd);
    /* From a port that is not the server's: answered. */
    fd = udp_socket("127.0.0.2", 0, 2000);
    send_to(fd, tserver_port(t, 0), "ping", 4);
    ck_assert_int_eq(recv(fd, back, sizeof back, 0), 4);
    ck_assert_uint_eq(tserver_stats(t, 0).datagrams_dropped, 1);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(udp_port_cannot_be_taken_over)
{
    /* Another socket asking for SO_REUSEADDR (or SO_REUSEPORT) must not be
     * able to bind the server's UDP port and take its datagrams. */
    struct tserver *t = tserver_start(UDP_JSON(""));
    int port = tserver_port(t, 0);
    for (int opt = 0; opt < 2; opt++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, opt ? SO_REUSEPORT : SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        in.sin_addr.s_addr = htonl(0x7f000001);
        ck_assert_int_lt(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
        ck_assert_int_eq(errno, EADDRINUSE);
        close(fd);
    }
    /* A second server on the same UDP port fails to start, instead of
     * quietly taking part of the traffic. */
    char json[256], err[1024];
    snprintf(json, sizeof json,
             "{\"listeners\": [{\"protocol\": \"udp\", \"port\": %d, \"handler\": \"udp_echo\"}]}",
             port);
    struct config *cfg = NULL;
    ck_assert_int_eq(config_load_string(json, "second.json", &cfg, err, sizeof err), 0);
    struct wharf_server *second = NULL;
    ck_assert_int_eq(server_new(cfg, &second, err, sizeof err), 0);
    ck_assert_int_eq(server_start(second, err, sizeof err), -EADDRINUSE);
    ck_assert_msg(strstr(err, "Address already in use"), "%s", err);
    server_free(second);
    tserver_stop(t);
}
END_TEST

START_TEST(udp_deny_and_rate_limit)
{
    /* deny: nothing from 127.0.0.0/8 reaches the handler. */
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"protocol\": \"udp\", "
                                      "\"port\": 0, \"handler\": \"udp_echo\", \"deny\": [\"127.0.0.0/8\"]}]}");
    int fd = udp_socket("127.0.0.1", 0, 300);
    send_to(fd, tserver_port(t, 0), "ping", 4);
    char back[16];
    ck_assert_int_lt(recv(fd, back, sizeof back, 0), 0);
    ck_assert_uint_eq(dropped_reaching(t, 1), 1);
    close(fd);
    tserver_stop(t);

    /* rate_limit 10/s: a burst of 50 gets about one second's worth through. */
    t = tserver_start("{\"workers\": 1, \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, "
                      "\"handler\": \"udp_echo\", \"rate_limit\": 10}]}");
    fd = udp_socket("127.0.0.1", 0, 300);
    uint64_t start = now_ms();
    for (int i = 0; i < 50; i++)
        send_to(fd, tserver_port(t, 0), "ping", 4);
    int answered = 0;
    while (recv(fd, back, sizeof back, 0) == 4)
        answered++;
    /* One second's worth at once, plus what refilled meanwhile (a slow run,
     * e.g. under valgrind, refills more). */
    int refill = (int)((now_ms() - start) * 10 / 1000) + 2;
    ck_assert_msg(answered >= 10 && answered <= 10 + refill, "%d answered", answered);
    ck_assert_uint_eq(tserver_stats(t, 0).datagrams_dropped, (uint64_t)(50 - answered));
    close(fd);
    tserver_stop(t);
}
END_TEST

/* rate_limit buckets belong to (listener, source): a source at its limit on
 * one listener is still answered by another listener on the same worker. */
START_TEST(udp_rate_limit_is_per_listener)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": ["
        "{\"name\": \"a\", \"protocol\": \"udp\", \"port\": 0, \"handler\": \"udp_echo\", "
        "\"rate_limit\": 10},"
        "{\"name\": \"b\", \"protocol\": \"udp\", \"port\": 0, \"handler\": \"udp_echo\", "
        "\"rate_limit\": 10}]}");
    int fd = udp_socket("127.0.0.1", 0, 300);
    char back[16];
    int answered[2] = {0, 0};
    for (int l = 0; l < 2; l++) {
        for (int i = 0; i < 10; i++)
            send_to(fd, tserver_port(t, (size_t)l), "ping", 4);
        while (recv(fd, back, sizeof back, 0) == 4)
            answered[l]++;
    }
    ck_assert_msg(answered[0] >= 10 && answered[1] >= 10, "a answered %d, b answered %d",
                  answered[0], answered[1]);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(udp_many_datagrams_each_answered_once)
{
    struct tserver *t = tserver_start(UDP_JSON(""));
    int fd = udp_socket("127.0.0.1", 0, 2000);
    int port = tserver_port(t, 0);
    /* Lock-step so no datagram is lost to a full socket buffer. */
    for (unsigned i = 0; i < 500; i++) {
        unsigned char msg[100], back[200];
        fill_pattern(msg, sizeof msg, i);
        send_to(fd, port, msg, sizeof msg);
        ck_assert_int_eq(recv(fd, back, sizeof back, 0), (ssize_t)sizeof msg);
        ck_assert_mem_eq(msg, back, sizeof msg);
    }
    char extra[8];
    ck_assert_int_lt(recv(fd, extra, sizeof extra, MSG_DONTWAIT), 0); /* no duplicates */
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(udp_guard_blocks_listed_source_port)
{
    /* Bind the client first so its port can be named in the guard. */
    int fd = udp_socket("127.0.0.1", 0, 300);
    int client_port = udp_local_port(fd);
    char json[512];
    snprintf(json, sizeof json,
             UDP_JSON(", \"options\": {\"block_ports\": [%d], \"allow_privileged_ports\": false}"),
             client_port);
    struct tserver *t = tserver_start("%s", json);
    send_to(fd, tserver_port(t, 0), "ping", 4);
    char back[16];
    ck_assert_int_lt(recv(fd, back, sizeof back, 0), 0); /* no answer within 300 ms */

    ck_assert_uint_eq(dropped_reaching(t, 1), 1);
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.datagrams_in, 1);
    ck_assert_uint_eq(st.datagrams_dropped, 1);
    ck_assert_uint_eq(st.datagrams_out, 0);

    /* Another source port is still answered. */
    int other = udp_socket("127.0.0.1", 0, 2000);
    send_to(other, tserver_port(t, 0), "ping", 4);
    ck_assert_int_eq(recv(other, back, sizeof back, 0), 4);
    close(other);
    close(fd);
    tserver_stop(t);
}
END_TEST

/* A UDP socket on 127.0.0.1:port (below 1024), with udp_socket's 300 ms
 * receive timeout, or -1 when this process may not bind it.  The port may
 * be held for a moment by another run of this suite (check_backends.sh runs
 * it again on the other backend, beside this one under make -j): a busy
 * port is tried again for up to 5 s. */
static int privileged_udp_socket(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 100; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            return fd;
        }
        int err = errno;
        close(fd);
        if (err != EADDRINUSE)
            return -1;
        usleep(50000);
    }
    ck_abort_msg("127.0.0.1:%d stayed in use for 5 s", port);
    return -1;
}

START_TEST(udp_guard_blocks_privileged_source_port)
{
    /* Needs root to bind a port below 1024 (CI runs as root). */
    int fd = privileged_udp_socket(19); /* chargen: the classic loop partner */
    if (fd < 0) {
        ck_assert_int_ne(geteuid(), 0); /* only acceptable when not root */
        return;
    }
    struct tserver *t = tserver_start(UDP_JSON(""));
    send_to(fd, tserver_port(t, 0), "x", 1);
    char back[16];
    ck_assert_int_lt(recv(fd, back, sizeof back, 0), 0);
    ck_assert_uint_eq(dropped_reaching(t, 1), 1);
    close(fd);

    fd = privileged_udp_socket(1000); /* privileged, not in the list */
    ck_assert_int_ge(fd, 0);
    send_to(fd, tserver_port(t, 0), "x", 1);
    ck_assert_int_lt(recv(fd, back, sizeof back, 0), 0);
    ck_assert_uint_eq(dropped_reaching(t, 2), 2);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(udp_guard_can_be_disabled)
{
    int fd = udp_socket("127.0.0.1", 0, 2000);
    char json[512];
    snprintf(json, sizeof json, UDP_JSON(", \"options\": {\"guard\": false, \"block_ports\": [%d]}"),
             udp_local_port(fd));
    struct tserver *t = tserver_start("%s", json);
    send_to(fd, tserver_port(t, 0), "ping", 4);
    char back[16];
    ck_assert_int_eq(recv(fd, back, sizeof back, 0), 4);
    ck_assert_uint_eq(tserver_stats(t, 0).datagrams_dropped, 0);
    close(fd);
    tserver_stop(t);
}
END_TEST

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

START_TEST(udp_burst_answered_then_worker_sleeps)
{
    /* Bursts fill whole batches, so the socket is read directly while busy;
     * once traffic stops the worker must go back to sleeping in epoll. */
    struct tserver *t = tserver_start(UDP_JSON(""));
    int fd = udp_socket("127.0.0.1", 0, 2000);
    int port = tserver_port(t, 0);
    unsigned answered = 0;
    for (unsigned round = 0; round < 50; round++) {
        for (unsigned i = 0; i < 64; i++) {
            unsigned char msg[64];
            fill_pattern(msg, sizeof msg, round * 64 + i);
            send_to(fd, port, msg, sizeof msg);
        }
        for (unsigned i = 0; i < 64; i++) {
            unsigned char back[128];
            if (recv(fd, back, sizeof back, 0) == 64)
                answered++;
        }
    }
    ck_assert_uint_eq(answered, 50 * 64);
    usleep(100 * 1000);
    double before = cpu_seconds();
    usleep(500 * 1000);
    double spent = cpu_seconds() - before;
    ck_assert_msg(spent < 0.1, "idle server used %.3f s of CPU in 0.5 s", spent);
    /* And it still answers. */
    send_to(fd, port, "again", 5);
    char back[16];
    ck_assert_int_eq(recv(fd, back, sizeof back, 0), 5);
    close(fd);
    tserver_stop(t);
}
END_TEST

/* ---- two echo services bouncing one spoofed datagram ----------------------- */

/* Sends one UDP datagram to 127.0.0.1:to_port that claims to come from
 * 127.0.0.1:from_port (a raw socket: needs CAP_NET_RAW).  False if the
 * raw socket cannot be made. */
static bool send_spoofed(int from_port, int to_port, const char *payload)
{
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    if (fd < 0)
        return false;
    size_t n = strlen(payload);
    unsigned char pkt[512];
    ck_assert_uint_le(n + 8, sizeof pkt);
    uint16_t h[4] = {htons((uint16_t)from_port), htons((uint16_t)to_port),
                     htons((uint16_t)(n + 8)), 0}; /* checksum 0: none (IPv4) */
    memcpy(pkt, h, 8);
    memcpy(pkt + 8, payload, n);
    struct sockaddr_in to = {.sin_family = AF_INET};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ssize_t w = sendto(fd, pkt, n + 8, 0, (struct sockaddr *)&to, sizeof to);
    ck_assert_msg(w == (ssize_t)(n + 8), "sendto: %s", strerror(errno));
    close(fd);
    return true;
}

static uint64_t replies(struct tserver *a, struct tserver *b)
{
    return tserver_stats(a, 0).datagrams_out + tserver_stats(b, 0).datagrams_out;
}

/*
 * Two echo servers on ordinary high ports; one datagram to A claiming to
 * come from B.  Without a guard they answer each other forever (~167k
 * round trips in 10 s); the loop guard stops it within a few round trips,
 * and an ordinary client is still answered.
 */
START_TEST(udp_echo_pair_stops_a_spoofed_bounce)
{
    struct tserver *a = tserver_start(UDP_JSON(""));
    struct tserver *b = tserver_start(UDP_JSON(""));
    if (!send_spoofed(tserver_port(b, 0), tserver_port(a, 0), "bounce me")) {
        fprintf(stderr, "udp_echo_pair_stops_a_spoofed_bounce: skipped (no raw socket: %s)\n",
                strerror(errno));
        tserver_stop(a);
        tserver_stop(b);
        return;
    }
    /* Settled: the count stays the same over 300 ms (looked at for up to
     * 10 s: a slow machine, or valgrind, may take a while to get there; a
     * bounce that never stops never settles). */
    uint64_t first = replies(a, b), later = first;
    for (int i = 0; i < 33; i++) {
        usleep(300000);
        later = replies(a, b);
        if (later == first && first >= 2)
            break;
        first = later;
    }
    ck_assert_msg(first == later, "still bouncing: %llu replies, then %llu",
                  (unsigned long long)first, (unsigned long long)later);
    ck_assert_msg(first >= 2 && first <= 4 * 64, "%llu replies before the bounce stopped",
                  (unsigned long long)first);
    ck_assert_uint_ge(tserver_stats(a, 0).datagrams_dropped + tserver_stats(b, 0).datagrams_dropped,
                      1);
    /* The same payload from a real client, again and again, is answered. */
    int fd = udp_socket("127.0.0.1", 0, 2000);
    for (int i = 0; i < 5; i++) {
        char buf[32] = "";
        send_to(fd, tserver_port(a, 0), "bounce me", 9);
        ck_assert_int_eq(recv(fd, buf, sizeof buf, 0), 9);
    }
    close(fd);
    tserver_stop(a);
    tserver_stop(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("udp_echo");
    TCase *tc = tcase_create("udp");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, udp_sizes, 0, 6);
    tcase_add_test(tc, udp_many_datagrams_each_answered_once);
    tcase_add_test(tc, udp_ipv6_datagrams_up_to_65527_bytes);
    tcase_add_test(tc, udp_loop_guard_drops_datagrams_from_own_port);
    tcase_add_test(tc, udp_loop_guard_covers_every_port);
    tcase_add_test(tc, udp_deny_and_rate_limit);
    tcase_add_test(tc, udp_rate_limit_is_per_listener);
    tcase_add_test(tc, udp_port_cannot_be_taken_over);
    tcase_add_test(tc, udp_burst_answered_then_worker_sleeps);
    tcase_add_test(tc, udp_guard_blocks_listed_source_port);
    tcase_add_test(tc, udp_guard_blocks_privileged_source_port);
    tcase_add_test(tc, udp_guard_can_be_disabled);
    tcase_add_test(tc, udp_echo_pair_stops_a_spoofed_bounce);
    suite_add_tcase(s, tc);
    return check_run(s);
}
