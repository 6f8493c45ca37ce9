/*
 * check_udp_batch.c - integration suite for the worker's send batch
 * (framework/conn/udp_batch.c) and the listeners' "udp_gso" / "udp_gro" on
 * real servers and real loopback sockets: the sends of one timer callback
 * arrive in order and byte-exact in one sendmmsg (counted in
 * datagram_send_calls), a handle closed in the callback that sent still
 * gets its datagrams out, a run of equal-size datagrams sent segmented
 * (UDP_SEGMENT) arrives at a plain socket as separate datagrams of the
 * right sizes (and at a UDP_GRO socket as one coalesced receive, which
 * shows the run was segmented), a segmented burst from a client to a
 * "udp_gro" listener is answered datagram by datagram, a segmented send the
 * kernel refuses is sent again datagram by datagram (and GSO stays off for
 * the listener), and a datagram the kernel refuses in the middle of a batch
 * loses none of the others.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"

#define BATCH_JSON(keys) \
    "{\"workers\": 1, \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, " \
    "\"handler\": \"mod_udp_batch\"" keys "}]}"

static void send_to(int fd, int port, const void *data, size_t n)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(sendto(fd, data, n, 0, (struct sockaddr *)&to, sizeof to), (ssize_t)n);
}

static void command(int fd, int port, const char *cmd)
{
    char buf[64];
    send_to(fd, port, cmd, strlen(cmd));
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    ck_assert_msg(n == 4 && memcmp(buf, "kept", 4) == 0, "no \"kept\" for \"%s\"", cmd);
}

/* Checks datagram k of a burst (mod_udp_batch.c's pattern). */
static void check_burst_datagram(const unsigned char *p, size_t len, unsigned k)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char want = (unsigned char)(k + i);
        if (len >= 2 && i == 0)
            want = (unsigned char)(k >> 8);
        if (len >= 2 && i == 1)
            want = (unsigned char)k;
        ck_assert_msg(p[i] == want, "datagram %u byte %zu: %u, not %u", k, i, p[i], want);
    }
}

/* Receives the n + (last > 0) datagrams of a burst, in order. */
static void recv_burst(int fd, unsigned n, size_t size, size_t last)
{
    static unsigned char buf[65536];
    for (unsigned k = 0; k < n + (last > 0); k++) {
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        size_t want = k < n ? size : last;
        ck_assert_msg(got == (ssize_t)want, "datagram %u: %zd bytes, not %zu", k, got, want);
        check_burst_datagram(buf, want, k);
    }
}

struct want_out {
    struct tserver *t;
    uint64_t out;
};

static bool out_reached(void *arg)
{
    struct want_out *w = arg;
    return tserver_stats(w->t, 0).datagrams_out >= w->out;
}

/* Waits until the listener has counted `out` datagrams sent (they are
 * counted just after the sendmmsg that a client may already have read). */
static struct wharf_listener_stats stats_after(struct tserver *t, uint64_t out)
{
    struct want_out w = {t, out};
    ck_assert(wait_for(out_reached, &w, 2000));
    return tserver_stats(t, 0);
}

START_TEST(sends_of_one_timer_callback_leave_in_one_sendmmsg)
{
    struct tserver *t = tserver_start(BATCH_JSON(""));
    int port = tserver_port(t, 0);
    int fd = udp_socket("127.0.0.1", 0, 5000);
    /* 40 datagrams from one timer callback, which then closes its handle:
     * they leave at the end of that turn, before the handle ends. */
    command(fd, port, "burst 50 40 100 0");
    recv_burst(fd, 40, 100, 0);
    struct wharf_listener_stats st = stats_after(t, 41);
    ck_assert_uint_eq(st.datagrams_out, 41);
    ck_assert_uint_eq(st.datagram_send_calls, 2); /* "kept", then the 40 */
    ck_assert_uint_eq(st.datagrams_dropped, 0);
    /* More than a batch holds (64): a flush when it is full, then one at
     * the end of the turn; still in order. */
    command(fd, port, "burst 50 100 20 7");
    recv_burst(fd, 100, 20, 7);
    st = stats_after(t, 41 + 1 + 101);
    ck_assert_uint_eq(st.datagrams_out, 143);
    ck_assert_uint_eq(st.datagram_send_calls, 2 + 1 + 2);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(a_handle_closed_in_the_callback_that_sent_still_sends)
{
    struct tserver *t = tserver_start(BATCH_JSON(""));
    int fd = udp_socket("127.0.0.1", 0, 5000);
    command(fd, tserver_port(t, 0), "burst 10 1 300 0");
    recv_burst(fd, 1, 300, 0);
    /* A big last one: the arena holds datagrams up to 65,507 bytes. */
    command(fd, tserver_port(t, 0), "burst 10 2 65507 65507");
    recv_burst(fd, 2, 65507, 65507);
    ck_assert_uint_eq(stats_after(t, 6).datagrams_dropped, 0);
    close(fd);
    tserver_stop(t);
}
END_TEST

/* A socket with UDP_GRO: a segmented send reaches it as one receive. */
static int gro_socket(void)
{
    int fd = udp_socket("127.0.0.1", 0, 5000);
    int on = 1;
    ck_assert_int_eq(setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on), 0);
    return fd;
}

/* Receives one datagram on a UDP_GRO socket: its length, and in *seg the
 * segment size of a coalesced receive (0: none). */
static ssize_t recv_gro(int fd, void *buf, size_t size, int *seg)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {buf, size};
    struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                       .msg_controllen = sizeof ctl.buf};
    ssize_t n = recvmsg(fd, &h, 0);
    *seg = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); n >= 0 && c; c = CMSG_NXTHDR(&h, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO)
            memcpy(seg, CMSG_DATA(c), sizeof *seg);
    return n;
}

START_TEST(gso_run_arrives_as_separate_datagrams)
{
    struct tserver *t = tserver_start(BATCH_JSON(", \"udp_gso\": true"));
    int port = tserver_port(t, 0);
    int fd = udp_socket("127.0.0.1", 0, 5000);
    /* 10 of 1000 bytes and a shorter last one of 300, to one peer. */
    command(fd, port, "burst 20 10 1000 300");
    recv_burst(fd, 10, 1000, 300);
    struct wharf_listener_stats st = stats_after(t, 12);
    ck_assert_uint_eq(st.datagrams_out, 12);
    ck_assert_uint_eq(st.datagram_send_calls, 2);
    ck_assert_uint_eq(st.datagrams_dropped, 0);

    /* At a UDP_GRO socket the run arrives coalesced, with its segment
     * size: it left as one segmented send. */
    int gro = gro_socket();
    command(gro, port, "burst 20 10 1000 300");
    static unsigned char buf[65536];
    int seg = -1;
    ck_assert_int_eq(recv_gro(gro, buf, sizeof buf, &seg), 10300);
    ck_assert_int_eq(seg, 1000);
    for (unsigned k = 0; k <= 10; k++)
        check_burst_datagram(buf + k * 1000, k < 10 ? 1000 : 300, k);
    close(gro);
    close(fd);
    tserver_stop(t);

    /* GSO off (the default): the same burst reaches the UDP_GRO socket
     * datagram by datagram. */
    t = tserver_start(BATCH_JSON(""));
    gro = gro_socket();
    command(gro, tserver_port(t, 0), "burst 20 3 1000 0");
    for (unsigned k = 0; k < 3; k++) {
        ck_assert_int_eq(recv_gro(gro, buf, sizeof buf, &seg), 1000);
        ck_assert_int_eq(seg, 0);
        check_burst_datagram(buf, 1000, k);
    }
    close(gro);
    tserver_stop(t);
}
END_TEST

/* The server's socket bound to UDP port `port` (the suite runs the server in
 * this process, so its descriptors are ours too), or -1. */
static int server_socket(int port)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int found = -1;
    for (struct dirent *e; found < 0 && (e = readdir(d));) {
        int fd = atoi(e->d_name);
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        int type = 0;
        socklen_t tlen = sizeof type;
        if (e->d_name[0] == '.' || fd == dirfd(d) ||
            getsockname(fd, (struct sockaddr *)&a, &len) < 0 || a.sin_family != AF_INET ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_DGRAM)
            continue;
        if (ntohs(a.sin_port) == port)
            found = fd;
    }
    closedir(d);
    return found;
}

START_TEST(gso_refused_by_the_kernel_falls_back_datagram_by_datagram)
{
    struct tserver *t = tserver_start(BATCH_JSON(", \"udp_gso\": true"));
    int port = tserver_port(t, 0);
    /* Without UDP checksums (SO_NO_CHECK) the kernel refuses a segmented
     * send (EINVAL), as it does on a device without checksum offload. */
    int sfd = server_socket(port);
    ck_assert_int_ge(sfd, 0);
    int on = 1;
    ck_assert_int_eq(setsockopt(sfd, SOL_SOCKET, SO_NO_CHECK, &on, sizeof on), 0);
    int gro = gro_socket();
    static unsigned char buf[65536];
    int seg = -1;
    for (int round = 0; round < 2; round++) {
        /* Round 0: refused, then sent one by one; round 1: GSO is off. */
        command(gro, port, "burst 20 4 1000 0");
        for (unsigned k = 0; k < 4; k++) {
            ck_assert_int_eq(recv_gro(gro, buf, sizeof buf, &seg), 1000);
            ck_assert_int_eq(seg, 0);
            check_burst_datagram(buf, 1000, k);
        }
    }
    struct wharf_listener_stats st = stats_after(t, 10);
    ck_assert_uint_eq(st.datagrams_out, 10);
    ck_assert_uint_eq(st.datagrams_dropped, 0);
    /* "kept" twice, the refused segmented send and the four again, then
     * the second burst in one call. */
    ck_assert_uint_eq(st.datagram_send_calls, 5);
    close(gro);
    tserver_stop(t);
}
END_TEST

START_TEST(gro_listener_answers_a_segmented_burst_datagram_by_datagram)
{
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"protocol\": \"udp\", "
                                      "\"port\": 0, \"handler\": \"udp_echo\", "
                                      "\"udp_gro\": true}]}");
    int port = tserver_port(t, 0);
    int fd = udp_socket("127.0.0.1", 0, 5000);
    /* One segmented send: 8 segments of 200 bytes and one of 50. */
    static unsigned char out[1650], buf[65536];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (unsigned char)(i * 7 + i / 200);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {out, sizeof out};
    struct msghdr h = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov,
                       .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t size = 200;
    memcpy(CMSG_DATA(c), &size, sizeof size);
    ck_assert_int_eq(sendmsg(fd, &h, 0), (ssize_t)sizeof out);
    for (unsigned k = 0; k < 9; k++) {
        size_t want = k < 8 ? 200 : 50;
        ck_assert_int_eq(recv(fd, buf, sizeof buf, 0), (ssize_t)want);
        ck_assert_mem_eq(buf, out + k * 200, want);
    }
    /* And a plain burst, each answered. */
    for (unsigned k = 0; k < 32; k++) {
        unsigned char d[64];
        memset(d, (int)k, sizeof d);
        send_to(fd, port, d, sizeof d);
    }
    for (unsigned k = 0; k < 32; k++) {
        ck_assert_int_eq(recv(fd, buf, sizeof buf, 0), 64);
        ck_assert_uint_eq(buf[0], k);
        ck_assert_uint_eq(buf[63], k);
    }
    struct wharf_listener_stats st = stats_after(t, 41);
    ck_assert_uint_eq(st.datagrams_in, 41);
    ck_assert_uint_eq(st.datagrams_out, 41);
    close(fd);
    tserver_stop(t);
}
END_TEST

/* Receives one datagram as text (NUL-terminated). */
static const char *recv_text(int fd)
{
    static char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

static void refused_in_the_middle(const char *keys_json)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, "
        "\"handler\": \"mod_udp_batch\", \"allow_privileged_ports\": true%s}]}",
        keys_json);
    int fd = udp_socket("127.0.0.1", 0, 5000);
    int p1 = udp_socket("127.0.0.1", 0, 5000), p2 = udp_socket("127.0.0.1", 0, 5000);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "spray 20 %d %d", udp_local_port(p1), udp_local_port(p2));
    command(fd, tserver_port(t, 0), cmd);
    /* a1 x b1 a2 b2 in one batch: the kernel refuses x (port 0, EINVAL),
     * the others arrive, each peer's in order. */
    ck_assert_str_eq(recv_text(p1), "a1");
    ck_assert_str_eq(recv_text(p1), "a2");
    ck_assert_str_eq(recv_text(p2), "b1");
    ck_assert_str_eq(recv_text(p2), "b2");
    struct wharf_listener_stats st = stats_after(t, 5);
    ck_assert_uint_eq(st.datagrams_out, 5);
    ck_assert_uint_eq(st.datagrams_dropped, 1);
    close(p2);
    close(p1);
    close(fd);
    tserver_stop(t);
}

START_TEST(a_refused_datagram_in_a_batch_loses_no_other)
{
    refused_in_the_middle("");
    refused_in_the_middle(", \"udp_gso\": true");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("udp_batch");
    TCase *tc = tcase_create("udp_batch");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sends_of_one_timer_callback_leave_in_one_sendmmsg);
    tcase_add_test(tc, a_handle_closed_in_the_callback_that_sent_still_sends);
    tcase_add_test(tc, gso_run_arrives_as_separate_datagrams);
    tcase_add_test(tc, gso_refused_by_the_kernel_falls_back_datagram_by_datagram);
    tcase_add_test(tc, gro_listener_answers_a_segmented_burst_datagram_by_datagram);
    tcase_add_test(tc, a_refused_datagram_in_a_batch_loses_no_other);
    suite_add_tcase(s, tc);
    return check_run(s);
}
