/*
 * check_proxy_listener.c - the PROXY protocol on a listener, end to end: a
 * v1 or v2 header (whole, or split at every byte) is consumed exactly and
 * the handler's wharf_peer_addr is the client's address from it; what
 * follows the header is the handler's; a peer outside proxy_trusted, a
 * malformed header, a missing one (handshake timeout) are closed without the
 * handler ever hearing of them; with proxy_protocol off the bytes are data.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"

static struct tserver *start(const char *proxy, const char *extra)
{
    return tserver_start("{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": "
                         "\"mod_contract\", \"options\": {\"mode\": \"peer\"}, "
                         "\"proxy_protocol\": \"%s\"%s}]}",
                         proxy, extra ? extra : "");
}

/* Reads one reply line (bounded). */
static void reply_line(int fd, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        char ch;
        if (recv_exact(fd, &ch, 1, 2000) != 1)
            break;
        out[n++] = ch;
        if (ch == '\n')
            break;
    }
    out[n] = '\0';
}

static const char v1[] = "PROXY TCP4 192.0.2.1 198.51.100.2 40001 7007\r\n";

/* A v2 header: PROXY, TCP over IPv6, 2001:db8::7 port 40002 -> 2001:db8::1 port 7007,
 * with one TLV after the addresses. */
static size_t v2_header(unsigned char *out)
{
    static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                          0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    size_t n = 0;
    memcpy(out, sig, 12);
    n = 12;
    out[n++] = 0x21; /* version 2, PROXY */
    out[n++] = 0x21; /* TCP over IPv6 */
    unsigned len = 36 + 7;
    out[n++] = (unsigned char)(len >> 8);
    out[n++] = (unsigned char)len;
    inet_pton(AF_INET6, "2001:db8::7", out + n);
    inet_pton(AF_INET6, "2001:db8::1", out + n + 16);
    n += 32;
    out[n++] = 40002 >> 8;
    out[n++] = 40002 & 0xff;
    out[n++] = 7007 >> 8;
    out[n++] = 7007 & 0xff;
    out[n++] = 0x04; /* TLV: NOOP, 4 bytes */
    out[n++] = 0;
    out[n++] = 4;
    memcpy(out + n, "pad!", 4);
    n += 4;
    return n;
}

START_TEST(v1_header_gives_the_client_address)
{
    struct tserver *t = start("v1", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char req[256], got[128];
    snprintf(req, sizeof req, "%shello\n", v1);
    send_all(fd, req, strlen(req));
    reply_line(fd, got, sizeof got);
    ck_assert_str_eq(got, "peer 192.0.2.1:40001 hello\n");
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(v2_header_split_at_every_byte)
{
    struct tserver *t = start("any", NULL);
    unsigned char hdr[128];
    size_t hl = v2_header(hdr);
    memcpy(hdr + hl, "hi\n", 3);
    size_t total = hl + 3;
    for (size_t split = 1; split < total; split++) {
        int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
        send_all(fd, hdr, split);
        usleep(1000);
        send_all(fd, hdr + split, total - split);
        char got[128];
        reply_line(fd, got, sizeof got);
        ck_assert_msg(strcmp(got, "peer 2001:db8::7:40002 hi\n") == 0, "split %zu: %s", split, got);
        close(fd);
    }
    tserver_stop(t);
}
END_TEST

START_TEST(untrusted_malformed_and_missing_headers_are_closed)
{
    /* Only 10.0.0.0/8 may send headers: 127.0.0.1 is refused. */
    struct tserver *t = start("v1", ", \"proxy_trusted\": [\"10.0.0.0/8\"]");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, v1, strlen(v1));
    ck_assert(wait_closed(fd, 2000));
    close(fd);
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_ERROR], 1);
    tserver_stop(t);

    t = start("v1", ", \"timeouts\": {\"handshake_ms\": 200}");
    fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n", 34);
    ck_assert(wait_closed(fd, 2000));
    close(fd);
    /* A client that never sends its header: the handshake timeout. */
    fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "PROXY TCP4", 10);
    uint64_t start_ms = now_ms();
    ck_assert(wait_closed(fd, 3000));
    ck_assert_uint_ge(now_ms() - start_ms, 150);
    close(fd);
    /* A v2 header where only v1 is allowed. */
    fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    unsigned char hdr[128];
    send_all(fd, hdr, v2_header(hdr));
    ck_assert(wait_closed(fd, 2000));
    close(fd);
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.closed[WHARF_CLOSE_ERROR], 2);
    ck_assert_uint_eq(st.closed[WHARF_CLOSE_TIMEOUT], 1);
    tserver_stop(t);
}
END_TEST

/* A v1 header for a client at 192.0.2.SRC. */
static void send_v1(int fd, int src)
{
    char h[128];
    int n = snprintf(h, sizeof h, "PROXY TCP4 192.0.2.%d 198.51.100.2 40001 7007\r\n", src);
    send_all(fd, h, (size_t)n);
}

START_TEST(limits_apply_to_the_client_from_the_header)
{
    /* One connection per client, deny 192.0.2.9: counted by the header's
     * address, not the balancer's (127.0.0.1, which all of them share). */
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"max_connections_per_source\": 1, \"listeners\": [{\"port\": 0, "
        "\"handler\": \"mod_contract\", \"options\": {\"mode\": \"peer\"}, "
        "\"proxy_protocol\": \"v1\", \"deny\": [\"192.0.2.9\"]}]}");
    int port = tserver_port(t, 0);
    int a = tcp_connect("127.0.0.1", port), b = tcp_connect("127.0.0.1", port);
    send_v1(a, 1);
    send_v1(b, 2);
    send_all(a, "x\n", 2);
    send_all(b, "y\n", 2);
    char got[128];
    reply_line(a, got, sizeof got);
    ck_assert_str_eq(got, "peer 192.0.2.1:40001 x\n");
    reply_line(b, got, sizeof got);
    ck_assert_str_eq(got, "peer 192.0.2.2:40001 y\n");
    /* Once a is in (not before: of connections whose headers are read in
     * one turn, which is served first is not promised), a second connection
     * of client .1, and one from the denied address. */
    int c = tcp_connect("127.0.0.1", port), d = tcp_connect("127.0.0.1", port);
    send_v1(c, 1);
    send_v1(d, 9);
    ck_assert(wait_closed(c, 2000));
    ck_assert(wait_closed(d, 2000));
    ck_assert_uint_eq(tserver_stats(t, 0).rejected, 2);
    close(a);
    close(b);
    close(c);
    close(d);
    tserver_stop(t);

    /* After the header, the handshake waits for the client's first bytes. */
    t = tserver_start("{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"echo\", "
                      "\"proxy_protocol\": \"v1\", \"timeouts\": {\"handshake_ms\": 300}}]}");
    int e = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_v1(e, 3);
    uint64_t start = now_ms();
    ck_assert(wait_closed(e, 3000));
    ck_assert_uint_ge(now_ms() - start, 250);
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_TIMEOUT], 1);
    close(e);
    tserver_stop(t);
}
END_TEST

START_TEST(off_means_a_header_is_just_data)
{
    struct tserver *t = start("off", NULL);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, v1, strlen(v1));
    char got[160];
    reply_line(fd, got, sizeof got);
    ck_assert_msg(strncmp(got, "peer 127.0.0.1:", 15) == 0 && strstr(got, "PROXY TCP4 192.0.2.1"),
                  "%s", got);
    close(fd);
    tserver_stop(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("proxy_listener");
    TCase *tc = tcase_create("proxy_listener");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, v1_header_gives_the_client_address);
    tcase_add_test(tc, v2_header_split_at_every_byte);
    tcase_add_test(tc, untrusted_malformed_and_missing_headers_are_closed);
    tcase_add_test(tc, off_means_a_header_is_just_data);
    tcase_add_test(tc, limits_apply_to_the_client_from_the_header);
    suite_add_tcase(s, tc);
    return check_run(s);
}
