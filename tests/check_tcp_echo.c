/*
 * check_tcp_echo.c - integration suite for the TCP echo handler on a real
 * in-process server: byte-exact echo from 1 byte to 4 MiB, the seed's prefix
 * option, half-close, IPv6, 1,000 concurrent connections on 2 workers, and the
 * listener counters.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"

#define ECHO_JSON(extra) \
    "{\"workers\": 2, \"listeners\": [{\"port\": 0, \"handler\": \"echo\"" extra "}]}"

static void roundtrip_size(size_t len)
{
    struct tserver *t = tserver_start(ECHO_JSON(""));
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    unsigned char *data = malloc(len);
    fill_pattern(data, len, (unsigned)len);
    ck_assert_uint_eq(echo_roundtrip(fd, data, len, 20000), len);
    close(fd);
    free(data);
    tserver_stop(t);
}

START_TEST(echo_sizes)
{
    static const size_t sizes[] = {1, 2, 100, 1460, 4096, 65535, 65536, 65537, 1 << 20, 4 << 20};
    roundtrip_size(sizes[_i]);
}
END_TEST

START_TEST(echo_many_messages_one_connection)
{
    struct tserver *t = tserver_start(ECHO_JSON(""));
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    unsigned char msg[37], back[37];
    for (unsigned i = 0; i < 2000; i++) {
        fill_pattern(msg, sizeof msg, i);
        send_all(fd, msg, sizeof msg);
        ck_assert_uint_eq(recv_exact(fd, back, sizeof back, 5000), sizeof back);
        ck_assert_mem_eq(msg, back, sizeof msg);
    }
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(echo_prefix)
{
    struct tserver *t = tserver_start(ECHO_JSON(", \"options\": {\"prefix\": \"Echo: \"}"));
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "Hello, server!", 14);
    char back[64] = {0};
    ck_assert_uint_eq(recv_exact(fd, back, 20, 5000), 20);
    ck_assert_str_eq(back, "Echo: Hello, server!");
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(echo_half_close_flushes_then_closes)
{
    struct tserver *t = tserver_start(ECHO_JSON(""));
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    size_t len = 200000;
    unsigned char *data = malloc(len), *back = malloc(len + 1);
    fill_pattern(data, len, 7);
    send_all(fd, data, len);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_uint_eq(recv_exact(fd, back, len, 10000), len);
    ck_assert_mem_eq(data, back, len);
    ck_assert(wait_closed(fd, 5000)); /* then EOF */
    close(fd);
    free(data);
    free(back);
    tserver_stop(t);
}
END_TEST

START_TEST(echo_ipv6_loopback)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0)
        return; /* no IPv6 in this environment */
    close(probe);
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"address\": \"::1\", "
                                      "\"port\": 0, \"handler\": \"echo\"}]}");
    int fd = tcp_connect("::1", tserver_port(t, 0));
    unsigned char data[1000];
    fill_pattern(data, sizeof data, 6);
    ck_assert_uint_eq(echo_roundtrip(fd, data, sizeof data, 5000), sizeof data);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(echo_dual_stack_and_ipv6_only)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0)
        return; /* no IPv6 in this environment */
    close(probe);
    /* "::" without ipv6_only takes IPv4 clients too. */
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"address\": \"::\", "
                                      "\"port\": 0, \"handler\": \"echo\"}]}");
    unsigned char data[100];
    fill_pattern(data, sizeof data, 8);
    int fd4 = tcp_connect("127.0.0.1", tserver_port(t, 0));
    int fd6 = tcp_connect("::1", tserver_port(t, 0));
    echo_roundtrip(fd4, data, sizeof data, 3000);
    echo_roundtrip(fd6, data, sizeof data, 3000);
    close(fd4);
    close(fd6);
    tserver_stop(t);

    /* With ipv6_only an IPv4 client is refused. */
    t = tserver_start("{\"workers\": 1, \"listeners\": [{\"address\": \"::\", \"port\": 0, "
                      "\"ipv6_only\": true, \"handler\": \"echo\"}]}");
    int s4 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tserver_port(t, 0))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ne(connect(s4, (struct sockaddr *)&a, sizeof a), 0);
    close(s4);
    tserver_stop(t);
}
END_TEST

START_TEST(echo_host_name_binds_every_address)
{
    /* "localhost" may resolve to 127.0.0.1, ::1 or both, in any order: each
     * address the resolver gives must be served. */
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"address\": "
                                      "\"localhost\", \"port\": 0, \"handler\": \"echo\"}]}");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    ck_assert_int_eq(getaddrinfo("localhost", NULL, &hints, &res), 0);
    int served = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = tcp_connect_family("localhost", tserver_port(t, 0), ai->ai_family);
        unsigned char data[64];
        fill_pattern(data, sizeof data, (unsigned)served);
        echo_roundtrip(fd, data, sizeof data, 3000);
        close(fd);
        served++;
    }
    freeaddrinfo(res);
    ck_assert_int_ge(served, 1);
    tserver_stop(t);
}
END_TEST

#define MANY 1000

START_TEST(echo_1000_concurrent_connections_on_2_workers)
{
    struct tserver *t = tserver_start(ECHO_JSON(""));
    ck_assert_uint_eq(server_workers(t->srv), 2);
    int port = tserver_port(t, 0);
    static int fds[MANY];
    for (int i = 0; i < MANY; i++)
        fds[i] = tcp_connect("127.0.0.1", port);
    /* Every connection is open at once: send on all, then read all. */
    for (int i = 0; i < MANY; i++) {
        unsigned char msg[48];
        fill_pattern(msg, sizeof msg, (unsigned)i);
        send_all(fds[i], msg, sizeof msg);
    }
    for (int i = 0; i < MANY; i++) {
        unsigned char msg[48], back[48];
        fill_pattern(msg, sizeof msg, (unsigned)i);
        ck_assert_uint_eq(recv_exact(fds[i], back, sizeof back, 5000), sizeof back);
        ck_assert_mem_eq(msg, back, sizeof msg);
    }
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.open, MANY);
    ck_assert_uint_eq(st.accepted, MANY);
    ck_assert_uint_eq(st.bytes_in, MANY * 48);
    for (int i = 0; i < MANY; i++)
        close(fds[i]);
    tserver_stop(t);
}
END_TEST

static bool all_closed(void *arg)
{
    struct tserver *t = arg;
    return tserver_stats(t, 0).open == 0;
}

START_TEST(counters_follow_traffic)
{
    struct tserver *t = tserver_start(ECHO_JSON(""));
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    unsigned char data[5000];
    fill_pattern(data, sizeof data, 3);
    echo_roundtrip(fd, data, sizeof data, 5000);
    close(fd);
    ck_assert(wait_for(all_closed, t, 3000));
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.bytes_in, sizeof data);
    ck_assert_uint_eq(st.bytes_out, sizeof data);
    ck_assert_uint_eq(st.closed[WHARF_CLOSE_EOF], 1);
    ck_assert_uint_eq(st.output_buffered, 0);
    tserver_stop(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tcp_echo");
    TCase *tc = tcase_create("echo");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, echo_sizes, 0, 10);
    tcase_add_test(tc, echo_many_messages_one_connection);
    tcase_add_test(tc, echo_prefix);
    tcase_add_test(tc, echo_half_close_flushes_then_closes);
    tcase_add_test(tc, echo_ipv6_loopback);
    tcase_add_test(tc, echo_dual_stack_and_ipv6_only);
    tcase_add_test(tc, echo_host_name_binds_every_address);
    tcase_add_test(tc, echo_1000_concurrent_connections_on_2_workers);
    tcase_add_test(tc, counters_follow_traffic);
    suite_add_tcase(s, tc);
    return check_run(s);
}
