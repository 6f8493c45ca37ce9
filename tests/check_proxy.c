/*
 * check_proxy.c - tests for proxy.c, the PROXY protocol header parser: one
 * test per rule of HAProxy's proxy-protocol.txt for versions 1 and 2, every
 * header cut at every byte (0 = need more, then the whole result), early
 * rejection of invalid prefixes, the length cap and the `allowed` versions.
 */
#include "check_main.h"
#include "proxy.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOTH (PROXY_V1 | PROXY_V2)

static const unsigned char sig[12] = {
    '\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'
};

/* ---- helpers --------------------------------------------------------------- */

/* Parses a C string. */
static int parse_str(const char *s, unsigned allowed, struct proxy_result *r)
{
    return proxy_parse(s, strlen(s), allowed, r);
}

/* Asserts that s is rejected with `code`, and with `reason` when not NULL. */
#define ck_reject(s, n, allowed, code, why) do {                          \
        struct proxy_result r_;                                           \
        int rc_ = proxy_parse((s), (n), (allowed), &r_);                  \
        ck_assert_msg(rc_ == (code), "%s: got %d (%s), want %d",          \
                      #s, rc_, r_.reason ? r_.reason : "-", (code));      \
        ck_assert_ptr_nonnull(r_.reason);                                 \
        if ((why) != NULL)                                                \
            ck_assert_str_eq(r_.reason, (const char *)(why));             \
    } while (0)

#define ck_reject_str(s, code, why) ck_reject((s), strlen(s), PROXY_V1, (code), (why))

/* Every proper prefix of buf[0..n) needs more; all n bytes, and n bytes
 * followed by client data, give n. */
static void check_every_cut(const void *buf, size_t n, unsigned allowed)
{
    struct proxy_result r;
    unsigned char *more = malloc(n + 64);
    ck_assert_ptr_nonnull(more);
    for (size_t k = 0; k < n; k++) {
        int rc = proxy_parse(buf, k, allowed, &r);
        ck_assert_msg(rc == 0, "cut at %zu of %zu: got %d (%s)", k, n, rc,
                      r.reason ? r.reason : "-");
        ck_assert_ptr_null(r.reason);
    }
    ck_assert_int_eq(proxy_parse(buf, n, allowed, &r), (int)n);
    memcpy(more, buf, n);
    memset(more + n, 'x', 64);
    ck_assert_int_eq(proxy_parse(more, n + 64, allowed, &r), (int)n);
    free(more);
}

static void ck_inet(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char text[INET_ADDRSTRLEN];
    ck_assert_int_eq(ss->ss_family, AF_INET);
    ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text));
    ck_assert_str_eq(text, addr);
    ck_assert_uint_eq(ntohs(sin->sin_port), port);
}

static void ck_inet6(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    struct in6_addr want;
    ck_assert_int_eq(ss->ss_family, AF_INET6);
    ck_assert_int_eq(inet_pton(AF_INET6, addr, &want), 1);
    ck_assert_mem_eq(&sin6->sin6_addr, &want, sizeof want);
    ck_assert_uint_eq(ntohs(sin6->sin6_port), port);
}

/* Writes a v2 fixed header; returns its length (16). */
static size_t v2_fixed(unsigned char *b, unsigned ver_cmd, unsigned fam, unsigned len)
{
    memcpy(b, sig, 12);
    b[12] = (unsigned char)ver_cmd;
    b[13] = (unsigned char)fam;
    b[14] = (unsigned char)(len >> 8);
    b[15] = (unsigned char)len;
    return 16;
}

/* A v2 PROXY TCP4 header 192.0.2.1:56324 -> 198.51.100.7:443 with `extra`
 * bytes of declared length after the address block (filled by the caller). */
static size_t v2_tcp4(unsigned char *b, unsigned fam, unsigned extra)
{
    size_t n = v2_fixed(b, 0x21, fam, 12 + extra);
    static const unsigned char a[12] = { 192, 0, 2, 1, 198, 51, 100, 7,
                                         0xdc, 0x04, 0x01, 0xbb };
    memcpy(b + n, a, sizeof a);
    return n + sizeof a;
}

/* A v2 PROXY TCP6 header [2001:db8::1]:1 -> [2001:db8::2]:65535. */
static size_t v2_tcp6(unsigned char *b, unsigned fam, unsigned extra)
{
    size_t n = v2_fixed(b, 0x21, fam, 36 + extra);
    memset(b + n, 0, 36);
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1", b + n), 1);
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::2", b + n + 16), 1);
    b[n + 32] = 0; b[n + 33] = 1;
    b[n + 34] = 0xff; b[n + 35] = 0xff;
    return n + 36;
}

/* ---- version 1: valid lines ---------------------------------------------- */

START_TEST(test_v1_tcp4)
{
    const char *line = "PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n";
    char buf[128];
    struct proxy_result r;
    snprintf(buf, sizeof buf, "%sGET / HTTP/1.0\r\n\r\n", line);
    for (unsigned allowed = PROXY_V1; allowed <= BOTH; allowed += 2) {
        memset(&r, 0x5a, sizeof r);
        ck_assert_int_eq(parse_str(buf, allowed, &r), (int)strlen(line));
        ck_assert_int_eq(r.version, 1);
        ck_assert_int_eq(r.command, PROXY_CMD_PROXY);
        ck_assert_int_eq(r.socktype, SOCK_STREAM);
        ck_assert_ptr_null(r.reason);
        ck_assert_uint_eq(r.tlv_len, 0);
        ck_inet(&r.src, "192.168.0.1", 56324);
        ck_inet(&r.dst, "10.0.0.2", 443);
    }
    /* The extremes of addresses and ports. */
    ck_assert_int_gt(parse_str("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", PROXY_V1, &r), 0);
    ck_inet(&r.src, "0.0.0.0", 0);
    ck_inet(&r.dst, "255.255.255.255", 65535);
}
END_TEST

START_TEST(test_v1_tcp6)
{
    const char *line = "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.2 0 65535\r\n";
    struct proxy_result r;
    ck_assert_int_eq(parse_str(line, PROXY_V1, &r), (int)strlen(line));
    ck_assert_int_eq(r.version, 1);
    ck_assert_int_eq(r.command, PROXY_CMD_PROXY);
    ck_inet6(&r.src, "2001:db8::1", 0);
    ck_inet6(&r.dst, "::ffff:10.0.0.2", 65535);

    line = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
           "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 65535\r\n";
    ck_assert_int_eq(parse_str(line, PROXY_V1, &r), (int)strlen(line));
    ck_inet6(&r.dst, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    ck_assert_int_eq(parse_str("PROXY TCP6 :: ::1 1 2\r\n", PROXY_V1, &r), 23);
    ck_inet6(&r.src, "::", 1);
}
END_TEST

START_TEST(test_v1_unknown)
{
    struct proxy_result r;
    ck_assert_int_eq(parse_str("PROXY UNKNOWN\r\nabc", PROXY_V1, &r), 15);
    ck_assert_int_eq(r.version, 1);
    ck_assert_int_eq(r.command, PROXY_CMD_LOCAL);
    ck_assert_int_eq(r.socktype, 0);
    ck_assert_int_eq(r.src.ss_family, AF_UNSPEC);
    ck_assert_int_eq(r.dst.ss_family, AF_UNSPEC);

    /* Anything after UNKNOWN up to the CRLF is ignored, even nonsense. */
    const char *spec = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ck_assert_int_eq(parse_str(spec, PROXY_V1, &r), (int)strlen(spec));
    ck_assert_int_eq(r.command, PROXY_CMD_LOCAL);
    /* (found by fuzz_proxy: a whole line of 107 bytes came with the "too
     * long" reason set although it was accepted) */
    ck_assert_uint_eq(strlen(spec), PROXY_V1_MAX_LINE);
    ck_assert_ptr_null(r.reason);
    ck_assert_int_eq(parse_str("PROXY UNKNOWN  x\ty\r z 99999\r\n", PROXY_V1, &r), 29);
    ck_assert_int_eq(r.src.ss_family, AF_UNSPEC);
}
END_TEST

START_TEST(test_v1_line_limit)
{
    /* A valid 107-byte line is accepted; 108 bytes is too long. */
    char line[200];
    struct proxy_result r;
    memset(line, 0, sizeof line);
    strcpy(line, "PROXY UNKNOWN ");
    memset(line + 14, 'a', 107 - 2 - 14);
    strcpy(line + 105, "\r\n");
    ck_assert_uint_eq(strlen(line), 107);
    ck_assert_int_eq(parse_str(line, PROXY_V1, &r), 107);
    ck_assert_ptr_null(r.reason);
    check_every_cut(line, 107, PROXY_V1);

    memset(line + 14, 'a', 108 - 2 - 14);
    strcpy(line + 106, "\r\n");
    ck_reject(line, 108, PROXY_V1, -EMSGSIZE, "v1 line too long");
    ck_reject(line, 107, PROXY_V1, -EMSGSIZE, "v1 line too long");
    ck_assert_int_eq(proxy_parse(line, 106, PROXY_V1, &r), 0);

    /* A TCP6 line of valid but long address texts over 107 bytes. */
    const char *long6 = "PROXY TCP6 0000:0000:0000:0000:0000:0000:255.255.255.255 "
                        "0000:0000:0000:0000:0000:0000:255.255.255.255 65535 65535\r\n";
    ck_assert_uint_gt(strlen(long6), 107);
    ck_reject_str(long6, -EMSGSIZE, "v1 line too long");

    /* No CRLF within 107 bytes of otherwise valid text. */
    memset(line, 0, sizeof line);
    strcpy(line, "PROXY UNKNOWN ");
    memset(line + 14, 'b', 150);
    ck_reject_str(line, -EMSGSIZE, "v1 line too long");
}
END_TEST

/* ---- version 1: malformed lines ------------------------------------------ */

START_TEST(test_v1_bad_signature)
{
    ck_reject_str("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 signature");
    ck_reject_str("PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 signature");
    ck_reject_str("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 signature");
    ck_reject_str("PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 signature");
    ck_reject_str(" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 signature");
    ck_reject_str("GET / HTTP/1.1\r\n", -EINVAL, "bad v1 signature");
    /* Rejected as soon as the signature goes wrong. */
    ck_reject_str("PX", -EINVAL, "bad v1 signature");
    ck_reject_str("PROXY\r", -EINVAL, "bad v1 signature");
}
END_TEST

START_TEST(test_v1_bad_protocol)
{
    ck_reject_str("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 protocol");
    ck_reject_str("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 protocol");
    ck_reject_str("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 protocol");
    ck_reject_str("PROXY TCP44 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 protocol");
    ck_reject_str("PROXY UNKNOWNX\r\n", -EINVAL, "bad v1 protocol");
    ck_reject_str("PROXY UNKNOWN\t\r\n", -EINVAL, "bad v1 protocol");
    ck_reject_str("PROXY TCP4\r\n", -EINVAL, "bad v1 protocol");
    ck_reject_str("PROXY \r\n", -EINVAL, "bad v1 protocol");
    ck_reject_str("PROXY UNKNOWNUNKNOWN", -EINVAL, "bad v1 protocol");
    /* Early: "TCPX" cannot become a protocol. */
    ck_reject_str("PROXY TCPX", -EINVAL, "bad v1 protocol");
}
END_TEST

START_TEST(test_v1_double_space)
{
    ck_reject_str("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 protocol");
    ck_reject_str("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", -EINVAL, "bad v1 destination address");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", -EINVAL, "bad v1 source port");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", -EINVAL, "bad v1 destination port");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", -EINVAL, "bad v1 destination port");
    ck_reject_str("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 1\t2\r\n", -EINVAL, "bad v1 source port");
}
END_TEST

START_TEST(test_v1_bad_address)
{
    static const char *const bad4[] = {
        "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "01.2.3.4", "1.2.3.04",
        "1.2.3.4x", "x1.2.3.4", "localhost", "1..2.3", "-1.2.3.4", "0x1.2.3.4",
        "1.2.3.4.", ".1.2.3.4", "1.2.3.4/24", "1000.2.3.4",
    };
    char line[128];
    for (size_t i = 0; i < sizeof bad4 / sizeof bad4[0]; i++) {
        snprintf(line, sizeof line, "PROXY TCP4 %s 5.6.7.8 1 2\r\n", bad4[i]);
        ck_reject_str(line, -EINVAL, "bad v1 source address");
        snprintf(line, sizeof line, "PROXY TCP4 5.6.7.8 %s 1 2\r\n", bad4[i]);
        ck_reject_str(line, -EINVAL, "bad v1 destination address");
    }
    static const char *const bad6[] = {
        "1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "1:2:3:4:5:6:7",
        ":1::", "::1%eth0", "[::1]", "::ffff:1.2.3", "::ffff:01.2.3.4", "1::2:3:4:5:6:7:8",
    };
    for (size_t i = 0; i < sizeof bad6 / sizeof bad6[0]; i++) {
        snprintf(line, sizeof line, "PROXY TCP6 %s ::1 1 2\r\n", bad6[i]);
        ck_reject_str(line, -EINVAL, "bad v1 source address");
        snprintf(line, sizeof line, "PROXY TCP6 ::1 %s 1 2\r\n", bad6[i]);
        ck_reject_str(line, -EINVAL, "bad v1 destination address");
    }
    /* A NUL inside an address does not end it early. */
    static const char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
    ck_reject(nul, sizeof nul - 1, PROXY_V1, -EINVAL, "bad v1 source address");
    static const char nul2[] = "PROXY TCP4 1.2.3.4 5.6.7.8\0001 2\r\n";
    ck_reject(nul2, sizeof nul2 - 1, PROXY_V1, -EINVAL, "bad v1 destination address");
}
END_TEST

START_TEST(test_v1_family_mismatch)
{
    ck_reject_str("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP4 1.2.3.4 ::1 1 2\r\n", -EINVAL, "bad v1 destination address");
    ck_reject_str("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP6 ::1 1.2.3.4 1 2\r\n", -EINVAL, "bad v1 destination address");
    ck_reject_str("PROXY TCP4 ::ffff:1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL, "bad v1 source address");
}
END_TEST

START_TEST(test_v1_bad_port)
{
    static const char *const bad[] = {
        "65536", "99999", "100000", "-1", "+80", "080", "00", "0x50", "1a", "8 0", "",
        "655350", "4294967376",
    };
    char line[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, "PROXY TCP4 1.2.3.4 5.6.7.8 %s 2\r\n", bad[i]);
        ck_reject_str(line, -EINVAL, NULL);
        snprintf(line, sizeof line, "PROXY TCP4 1.2.3.4 5.6.7.8 2 %s\r\n", bad[i]);
        ck_reject_str(line, -EINVAL, NULL);
    }
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", -EINVAL, "bad v1 source port");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 2 65536\r\n", -EINVAL, "bad v1 destination port");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 2 01\r\n", -EINVAL, "bad v1 destination port");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 2\r\n", -EINVAL, "bad v1 destination port");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8\r\n", -EINVAL, "bad v1 source port");
    ck_reject_str("PROXY TCP4 1.2.3.4\r\n", -EINVAL, "bad v1 destination address");
}
END_TEST

START_TEST(test_v1_line_end)
{
    /* LF alone, CR alone, CR then something else, something before CRLF. */
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", -EINVAL, "v1 line not ended by CRLF");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", -EINVAL, "v1 line not ended by CRLF");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", -EINVAL, "v1 line not ended by CRLF");
    ck_reject_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n", -EINVAL, "bad v1 destination port");
    ck_reject_str("PROXY UNKNOWN\n", -EINVAL, "v1 line not ended by CRLF");
    ck_reject_str("PROXY UNKNOWN foo\n", -EINVAL, "v1 line not ended by CRLF");
    ck_reject_str("PROXY TCP4\n", -EINVAL, "v1 line not ended by CRLF");
    /* CR alone at the end may still get its LF. */
    struct proxy_result r;
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", PROXY_V1, &r), 0);
    ck_assert_int_eq(parse_str("PROXY UNKNOWN\r", PROXY_V1, &r), 0);
    /* Without CRLF, valid text waits for more (until 107 bytes, above). */
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2", PROXY_V1, &r), 0);
}
END_TEST

START_TEST(test_v1_every_cut)
{
    static const char *const lines[] = {
        "PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n",
        "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
        "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.2 0 65535\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7:8 1:2:3:4:5:6:7:: 10 9\r\n",
        "PROXY TCP6 :: ::1 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:6:255.255.255.255 ::ABCD:0:1.2.3.4 1 2\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        check_every_cut(lines[i], strlen(lines[i]), PROXY_V1);
        check_every_cut(lines[i], strlen(lines[i]), BOTH);
    }
}
END_TEST

START_TEST(test_v1_early_reject)
{
    /* Invalid prefixes are rejected without waiting for the CRLF. */
    ck_reject_str("PROXY TCP4 1.2.3.4.5", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP4 1.2.3.256", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP4 01", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP4 ::", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP6 1:2:3:4:5:6:7:8:", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP6 1::2::", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP6 ffff:1.2", -EINVAL, "bad v1 source address");
    ck_reject_str("PROXY TCP6 ::1 ::2 070", -EINVAL, "bad v1 source port");
    ck_reject_str("PROXY TCP6 ::1 ::2 65536", -EINVAL, "bad v1 source port");
    /* ...while valid prefixes of each field wait for more. */
    struct proxy_result r;
    ck_assert_int_eq(parse_str("PROXY TCP6 ::1 ::2 6553", PROXY_V1, &r), 0);
    ck_assert_int_eq(parse_str("PROXY TCP6 ::1 ::2 0", PROXY_V1, &r), 0);
    ck_assert_int_eq(parse_str("PROXY TCP6 1:2:3:4:5:6:7", PROXY_V1, &r), 0);
    ck_assert_int_eq(parse_str("PROXY TCP6 ::ffff:1.2.", PROXY_V1, &r), 0);
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.", PROXY_V1, &r), 0);
    ck_assert_int_eq(parse_str("PROXY TCP4 25", PROXY_V1, &r), 0);
}
END_TEST

/* ---- version 2 --------------------------------------------------------------- */

START_TEST(test_v2_proxy_tcp4)
{
    unsigned char b[64];
    struct proxy_result r;
    size_t n = v2_tcp4(b, 0x11, 0);
    ck_assert_uint_eq(n, 28);
    memcpy(b + n, "GET /", 5);
    for (unsigned allowed = PROXY_V2; allowed <= BOTH; allowed++) {
        memset(&r, 0x5a, sizeof r);
        ck_assert_int_eq(proxy_parse(b, n + 5, allowed, &r), 28);
        ck_assert_int_eq(r.version, 2);
        ck_assert_int_eq(r.command, PROXY_CMD_PROXY);
        ck_assert_int_eq(r.socktype, SOCK_STREAM);
        ck_assert_ptr_null(r.reason);
        ck_assert_uint_eq(r.tlv_offset, 28);
        ck_assert_uint_eq(r.tlv_len, 0);
        ck_inet(&r.src, "192.0.2.1", 56324);
        ck_inet(&r.dst, "198.51.100.7", 443);
    }
    check_every_cut(b, n, PROXY_V2);
    check_every_cut(b, n, BOTH);
}
END_TEST

START_TEST(test_v2_proxy_tcp6)
{
    unsigned char b[64];
    struct proxy_result r;
    size_t n = v2_tcp6(b, 0x21, 0);
    ck_assert_uint_eq(n, 52);
    ck_assert_int_eq(proxy_parse(b, n, PROXY_V2, &r), 52);
    ck_assert_int_eq(r.version, 2);
    ck_assert_int_eq(r.command, PROXY_CMD_PROXY);
    ck_assert_int_eq(r.socktype, SOCK_STREAM);
    ck_inet6(&r.src, "2001:db8::1", 1);
    ck_inet6(&r.dst, "2001:db8::2", 65535);
    check_every_cut(b, n, PROXY_V2);
}
END_TEST

START_TEST(test_v2_proxy_dgram)
{
    /* DGRAM transports are accepted and reported. */
    unsigned char b[64];
    struct proxy_result r;
    size_t n = v2_tcp4(b, 0x12, 0);
    ck_assert_int_eq(proxy_parse(b, n, PROXY_V2, &r), 28);
    ck_assert_int_eq(r.socktype, SOCK_DGRAM);
    ck_inet(&r.src, "192.0.2.1", 56324);
    n = v2_tcp6(b, 0x22, 0);
    ck_assert_int_eq(proxy_parse(b, n, PROXY_V2, &r), 52);
    ck_assert_int_eq(r.socktype, SOCK_DGRAM);
    ck_inet6(&r.src, "2001:db8::1", 1);
}
END_TEST

START_TEST(test_v2_proxy_unix)
{
    unsigned char b[300];
    struct proxy_result r;
    for (unsigned fam = 0x31; fam <= 0x32; fam++) {
        size_t n = v2_fixed(b, 0x21, fam, 216);
        memset(b + n, 0, 216);
        strcpy((char *)b + n, "/run/client.sock");
        strcpy((char *)b + n + 108, "/run/server.sock");
        n += 216;
        ck_assert_int_eq(proxy_parse(b, n, PROXY_V2, &r), 232);
        ck_assert_int_eq(r.version, 2);
        ck_assert_int_eq(r.command, PROXY_CMD_PROXY);
        ck_assert_int_eq(r.socktype, fam == 0x31 ? SOCK_STREAM : SOCK_DGRAM);
        ck_assert_int_eq(r.src.ss_family, AF_UNSPEC);
        ck_assert_int_eq(r.dst.ss_family, AF_UNSPEC);
        check_every_cut(b, n, PROXY_V2);
    }
}
END_TEST

START_TEST(test_v2_proxy_unspec)
{
    unsigned char b[64];
    struct proxy_result r;
    size_t n = v2_fixed(b, 0x21, 0x00, 0);
    ck_assert_int_eq(proxy_parse(b, n, PROXY_V2, &r), 16);
    ck_assert_int_eq(r.command, PROXY_CMD_PROXY);
    ck_assert_int_eq(r.socktype, 0);
    ck_assert_int_eq(r.src.ss_family, AF_UNSPEC);
    ck_assert_int_eq(r.dst.ss_family, AF_UNSPEC);
    check_every_cut(b, n, PROXY_V2);

    /* With TLVs only. */
    n = v2_fixed(b, 0x21, 0x00, 5);
    memcpy(b + n, "\x04\x00\x02zz", 5);
    ck_assert_int_eq(proxy_parse(b, n + 5, PROXY_V2, &r), 21);
    ck_assert_uint_eq(r.tlv_offset, 16);
    ck_assert_uint_eq(r.tlv_len, 5);
}
END_TEST

START_TEST(test_v2_local)
{
    /* LOCAL with each family: the whole declared length is consumed, the
     * addresses are not reported (the connection's own are to be used). */
    static const unsigned fams[] = { 0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32 };
    static const unsigned lens[] = { 0, 12, 12, 36, 36, 216, 216 };
    unsigned char b[300];
    struct proxy_result r;
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        size_t n = v2_fixed(b, 0x20, fams[i], lens[i]);
        memset(b + n, 0x7f, lens[i]);
        n += lens[i];
        memset(&r, 0x5a, sizeof r);
        ck_assert_int_eq(proxy_parse(b, n, PROXY_V2, &r), (int)n);
        ck_assert_int_eq(r.version, 2);
        ck_assert_int_eq(r.command, PROXY_CMD_LOCAL);
        ck_assert_int_eq(r.socktype, 0);
        ck_assert_int_eq(r.src.ss_family, AF_UNSPEC);
        ck_assert_int_eq(r.dst.ss_family, AF_UNSPEC);
        ck_assert_ptr_null(r.reason);
        check_every_cut(b, n, PROXY_V2);
    }
    /* LOCAL ignores the address block, so a short one is no error, and the
     * bytes after the fixed part need not be TLVs. */
    size_t n = v2_fixed(b, 0x20, 0x11, 0);
    ck_assert_int_eq(proxy_parse(b, n, PROXY_V2, &r), 16);
    n = v2_fixed(b, 0x20, 0x00, 2);
    b[16] = 0xff; b[17] = 0xff;
    ck_assert_int_eq(proxy_parse(b, n + 2, PROXY_V2, &r), 18);
}
END_TEST

START_TEST(test_v2_tlvs_skipped)
{
    unsigned char b[128];
    struct proxy_result r;
    /* ALPN "h2", AUTHORITY "example.com", NOOP of 0 bytes. */
    static const unsigned char tlvs[] = {
        0x01, 0x00, 0x02, 'h', '2',
        0x02, 0x00, 0x0b, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
        0x04, 0x00, 0x00,
    };
    size_t n = v2_tcp4(b, 0x11, sizeof tlvs);
    memcpy(b + n, tlvs, sizeof tlvs);
    n += sizeof tlvs;
    memcpy(b + n, "\r\n\r\n\0\r\nQUIT\n", 12); /* client data that looks like a header */
    ck_assert_int_eq(proxy_parse(b, n + 12, PROXY_V2, &r), (int)n);
    ck_assert_uint_eq(r.tlv_offset, 28);
    ck_assert_uint_eq(r.tlv_len, sizeof tlvs);
    ck_assert_mem_eq(b + r.tlv_offset, tlvs, sizeof tlvs);
    ck_inet(&r.src, "192.0.2.1", 56324);
    check_every_cut(b, n, PROXY_V2);

    n = v2_tcp6(b, 0x21, 5);
    memcpy(b + n, "\x05\x00\x02id", 5);
    ck_assert_int_eq(proxy_parse(b, n + 5, PROXY_V2, &r), 57);
    ck_assert_uint_eq(r.tlv_offset, 52);
    ck_assert_uint_eq(r.tlv_len, 5);
    ck_inet6(&r.dst, "2001:db8::2", 65535);
}
END_TEST

START_TEST(test_v2_bad_tlv)
{
    unsigned char b[128];
    /* One or two stray bytes, a value running past the declared length. */
    static const struct { const char *tlv; size_t n; } bad[] = {
        { "\x01", 1 }, { "\x01\x00", 2 }, { "\x01\x00\x03zz", 5 },
        { "\x01\x00\x00\x02", 4 }, { "\x01\xff\xffzz", 5 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = v2_tcp4(b, 0x11, (unsigned)bad[i].n);
        memcpy(b + n, bad[i].tlv, bad[i].n);
        ck_reject(b, n + bad[i].n, PROXY_V2, -EINVAL, "bad v2 TLV");
    }
}
END_TEST

START_TEST(test_v2_declared_length)
{
    /* The declared length, not the family's address size, ends the header;
     * the client's bytes after it are not consumed. */
    unsigned char b[128];
    struct proxy_result r;
    size_t n = v2_tcp4(b, 0x11, 8);
    memcpy(b + n, "\xee\x00\x05" "abcde", 8);
    memcpy(b + n + 8, "client", 6);
    ck_assert_int_eq(proxy_parse(b, n + 8 + 6, PROXY_V2, &r), 36);
    ck_assert_int_eq(proxy_parse(b, 36, PROXY_V2, &r), 36);
    ck_assert_int_eq(proxy_parse(b, 35, PROXY_V2, &r), 0);
    ck_assert_int_eq(proxy_parse(b, 28, PROXY_V2, &r), 0);
}
END_TEST

START_TEST(test_v2_length_too_small)
{
    /* The address block must fit; rejected as soon as the length is read. */
    static const struct { unsigned fam, len; } bad[] = {
        { 0x11, 0 }, { 0x11, 11 }, { 0x12, 11 }, { 0x21, 12 }, { 0x21, 35 },
        { 0x22, 35 }, { 0x31, 108 }, { 0x31, 215 }, { 0x32, 215 },
    };
    unsigned char b[16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v2_fixed(b, 0x21, bad[i].fam, bad[i].len);
        ck_reject(b, 16, PROXY_V2, -EINVAL, "declared length too small for address family");
    }
}
END_TEST

START_TEST(test_v2_cap)
{
    /* Exactly PROXY_MAX_HEADER is fine, one more is rejected at 16 bytes. */
    unsigned char *b = calloc(1, PROXY_MAX_HEADER + 16);
    struct proxy_result r;
    ck_assert_ptr_nonnull(b);
    unsigned extra = PROXY_MAX_HEADER - 28;
    size_t n = v2_tcp4(b, 0x11, extra);
    b[n] = 0x04; /* one NOOP TLV filling the rest */
    b[n + 1] = (unsigned char)((extra - 3) >> 8);
    b[n + 2] = (unsigned char)(extra - 3);
    ck_assert_int_eq(proxy_parse(b, PROXY_MAX_HEADER + 16, PROXY_V2, &r), PROXY_MAX_HEADER);
    ck_assert_int_eq(proxy_parse(b, PROXY_MAX_HEADER - 1, PROXY_V2, &r), 0);

    v2_tcp4(b, 0x11, extra + 1);
    ck_reject(b, 16, PROXY_V2, -EMSGSIZE, "declared length too large");
    ck_reject(b, PROXY_MAX_HEADER + 16, PROXY_V2, -EMSGSIZE, "declared length too large");
    v2_fixed(b, 0x20, 0x00, 0xffff); /* LOCAL too */
    ck_reject(b, 16, PROXY_V2, -EMSGSIZE, "declared length too large");
    free(b);
}
END_TEST

START_TEST(test_v2_bad_signature)
{
    /* Each byte of the signature altered: rejected at that byte. */
    unsigned char b[64];
    size_t n = v2_tcp4(b, 0x11, 0);
    for (size_t i = 0; i < 12; i++) {
        unsigned char save = b[i];
        b[i] ^= 0x20;
        if (i == 0) {
            ck_reject(b, n, PROXY_V2, -EINVAL, "bad v2 signature");
        } else {
            ck_reject(b, n, PROXY_V2, -EINVAL, "bad v2 signature");
            ck_reject(b, i + 1, PROXY_V2, -EINVAL, "bad v2 signature");
            ck_reject(b, i + 1, BOTH, -EINVAL, "bad v2 signature");
        }
        b[i] = save;
    }
}
END_TEST

START_TEST(test_v2_bad_version)
{
    static const unsigned bad[] = { 0x01, 0x11, 0x31, 0xf1, 0x10, 0x00 };
    unsigned char b[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = v2_tcp4(b, 0x11, 0);
        b[12] = (unsigned char)bad[i];
        ck_reject(b, n, PROXY_V2, -EINVAL, "bad v2 version");
        ck_reject(b, 13, PROXY_V2, -EINVAL, "bad v2 version");
    }
}
END_TEST

START_TEST(test_v2_bad_command)
{
    unsigned char b[64];
    for (unsigned cmd = 2; cmd <= 0xf; cmd++) {
        size_t n = v2_tcp4(b, 0x11, 0);
        b[12] = (unsigned char)(0x20 | cmd);
        ck_reject(b, n, PROXY_V2, -EINVAL, "bad v2 command");
        ck_reject(b, 13, PROXY_V2, -EINVAL, "bad v2 command");
    }
}
END_TEST

START_TEST(test_v2_bad_family)
{
    /* Every byte but the seven of the spec, with both commands. */
    unsigned char b[300];
    for (unsigned fam = 0; fam <= 0xff; fam++) {
        if (fam == 0x00 || fam == 0x11 || fam == 0x12 || fam == 0x21 || fam == 0x22 ||
            fam == 0x31 || fam == 0x32)
            continue;
        for (unsigned cmd = 0x20; cmd <= 0x21; cmd++) {
            size_t n = v2_fixed(b, cmd, fam, 216);
            memset(b + n, 0, 216);
            ck_reject(b, n + 216, PROXY_V2, -EINVAL, "bad address family");
            ck_reject(b, 14, PROXY_V2, -EINVAL, "bad address family");
        }
    }
}
END_TEST

/* ---- detection and `allowed` --------------------------------------------- */

START_TEST(test_allowed)
{
    const char *v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    unsigned char v2[64];
    size_t n2 = v2_tcp4(v2, 0x11, 0);
    struct proxy_result r;

    ck_assert_int_gt(parse_str(v1, PROXY_V1, &r), 0);
    ck_assert_int_gt(parse_str(v1, BOTH, &r), 0);
    ck_reject(v1, strlen(v1), PROXY_V2, -EPROTONOSUPPORT, "v1 header where only v2 is allowed");
    ck_reject(v1, 1, PROXY_V2, -EPROTONOSUPPORT, "v1 header where only v2 is allowed");

    ck_assert_int_gt(proxy_parse(v2, n2, PROXY_V2, &r), 0);
    ck_assert_int_gt(proxy_parse(v2, n2, BOTH, &r), 0);
    ck_reject(v2, n2, PROXY_V1, -EPROTONOSUPPORT, "v2 header where only v1 is allowed");
    ck_reject(v2, 1, PROXY_V1, -EPROTONOSUPPORT, "v2 header where only v1 is allowed");

    /* Nothing allowed; unknown bits ignored. */
    ck_reject(v1, strlen(v1), 0, -EPROTONOSUPPORT, NULL);
    ck_reject(v2, n2, 4, -EPROTONOSUPPORT, NULL);
    ck_assert_int_gt(parse_str(v1, PROXY_V1 | 4, &r), 0);
    ck_reject("", 0, 0, -EPROTONOSUPPORT, NULL);

    /* Neither signature. */
    ck_reject_str("GET / HTTP/1.1\r\n", -EINVAL, "bad v1 signature");
    ck_reject("GET / HTTP/1.1\r\n", 16, PROXY_V2, -EINVAL, "bad v2 signature");
    ck_reject("GET / HTTP/1.1\r\n", 16, BOTH, -EINVAL, "no PROXY protocol signature");
    ck_reject("\0", 1, BOTH, -EINVAL, "no PROXY protocol signature");
    ck_reject("\n", 1, BOTH, -EINVAL, NULL);
}
END_TEST

START_TEST(test_detection)
{
    /* An empty buffer could be either; the first byte decides. */
    struct proxy_result r;
    for (unsigned allowed = 1; allowed <= BOTH; allowed++)
        ck_assert_int_eq(proxy_parse("", 0, allowed, &r), 0);
    ck_assert_int_eq(proxy_parse(NULL, 0, BOTH, &r), 0);
    ck_assert_int_eq(proxy_parse("P", 1, BOTH, &r), 0);
    ck_assert_int_eq(proxy_parse("PROXY", 5, BOTH, &r), 0);
    ck_assert_int_eq(proxy_parse("\r", 1, BOTH, &r), 0);
    ck_assert_int_eq(proxy_parse("\r\n\r\n\0", 5, BOTH, &r), 0);
    /* "\r\n\r\n" + anything but NUL is neither. */
    ck_reject("\r\n\r\nP", 5, BOTH, -EINVAL, "bad v2 signature");
    /* v1 text after a v2-looking start is no v1. */
    ck_reject("\rPROXY", 6, BOTH, -EINVAL, "bad v2 signature");
}
END_TEST

START_TEST(test_need_more_is_bounded)
{
    /* However the bytes go, 0 only comes before PROXY_MAX_HEADER bytes (v1
     * alone: PROXY_V1_MAX_LINE); checked on lines of growing valid text. */
    char *b = malloc(PROXY_MAX_HEADER + 1);
    struct proxy_result r;
    ck_assert_ptr_nonnull(b);
    memset(b, ' ', PROXY_MAX_HEADER);
    memcpy(b, "PROXY UNKNOWN", 13);
    ck_assert_int_eq(proxy_parse(b, PROXY_V1_MAX_LINE - 1, PROXY_V1, &r), 0);
    ck_assert_int_lt(proxy_parse(b, PROXY_V1_MAX_LINE, PROXY_V1, &r), 0);
    ck_assert_int_lt(proxy_parse(b, PROXY_MAX_HEADER, BOTH, &r), 0);
    free(b);
}
END_TEST

START_TEST(test_result_cleared)
{
    /* A failure after a success leaves nothing of the success behind. */
    struct proxy_result r;
    ck_assert_int_gt(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_V1, &r), 0);
    ck_assert_int_lt(parse_str("PROXY TCP5", PROXY_V1, &r), 0);
    ck_assert_int_eq(r.src.ss_family, AF_UNSPEC);
    ck_assert_int_eq(r.dst.ss_family, AF_UNSPEC);
    ck_assert_int_eq(r.socktype, 0);
    ck_assert_int_eq(r.command, PROXY_CMD_LOCAL);
    /* Need-more leaves no reason. */
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2", PROXY_V1, &r), 0);
    ck_assert_ptr_null(r.reason);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *v1 = tcase_create("v1");
    tcase_add_test(v1, test_v1_tcp4);
    tcase_add_test(v1, test_v1_tcp6);
    tcase_add_test(v1, test_v1_unknown);
    tcase_add_test(v1, test_v1_line_limit);
    tcase_add_test(v1, test_v1_bad_signature);
    tcase_add_test(v1, test_v1_bad_protocol);
    tcase_add_test(v1, test_v1_double_space);
    tcase_add_test(v1, test_v1_bad_address);
    tcase_add_test(v1, test_v1_family_mismatch);
    tcase_add_test(v1, test_v1_bad_port);
    tcase_add_test(v1, test_v1_line_end);
    tcase_add_test(v1, test_v1_every_cut);
    tcase_add_test(v1, test_v1_early_reject);
    suite_add_tcase(s, v1);

    TCase *v2 = tcase_create("v2");
    tcase_add_test(v2, test_v2_proxy_tcp4);
    tcase_add_test(v2, test_v2_proxy_tcp6);
    tcase_add_test(v2, test_v2_proxy_dgram);
    tcase_add_test(v2, test_v2_proxy_unix);
    tcase_add_test(v2, test_v2_proxy_unspec);
    tcase_add_test(v2, test_v2_local);
    tcase_add_test(v2, test_v2_tlvs_skipped);
    tcase_add_test(v2, test_v2_bad_tlv);
    tcase_add_test(v2, test_v2_declared_length);
    tcase_add_test(v2, test_v2_length_too_small);
    tcase_add_test(v2, test_v2_cap);
    tcase_add_test(v2, test_v2_bad_signature);
    tcase_add_test(v2, test_v2_bad_version);
    tcase_add_test(v2, test_v2_bad_command);
    tcase_add_test(v2, test_v2_bad_family);
    suite_add_tcase(s, v2);

    TCase *both = tcase_create("both");
    tcase_add_test(both, test_allowed);
    tcase_add_test(both, test_detection);
    tcase_add_test(both, test_need_more_is_bounded);
    tcase_add_test(both, test_result_cleared);
    suite_add_tcase(s, both);
    return s;
}

int main(void)
{
    return check_run(proxy_suite());
}
