/*
 * check_cidr.c - tests for cidr.c (address ranges: parsing, one match, the
 * list match that every deny and proxy_trusted check uses) and for the
 * 16-byte address keys of addr_key.c that it matches against: an IPv4
 * address and its IPv4-mapped IPv6 form are one key with one hash.
 */
#include "check_main.h"
#include "addr_key.h"
#include "cidr.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

static struct sockaddr_in v4(const char *text)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1234)};
    ck_assert_int_eq(inet_pton(AF_INET, text, &a.sin_addr), 1);
    return a;
}

static struct sockaddr_in6 v6(const char *text)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
    ck_assert_int_eq(inet_pton(AF_INET6, text, &a.sin6_addr), 1);
    return a;
}

static struct cidr range(const char *text)
{
    struct cidr c;
    ck_assert_msg(cidr_parse(text, &c) == 0, "%s", text);
    return c;
}

#define SA(x) ((const struct sockaddr *)&(x))

START_TEST(test_parse)
{
    struct cidr c;
    ck_assert_int_eq(cidr_parse("10.0.0.0/8", &c), 0);
    ck_assert_uint_eq(c.bits, 96 + 8);
    ck_assert_int_eq(cidr_parse("127.0.0.1", &c), 0);
    ck_assert_uint_eq(c.bits, 128);
    ck_assert_int_eq(cidr_parse("::1/128", &c), 0);
    ck_assert_int_eq(cidr_parse("2001:db8::/32", &c), 0);
    ck_assert_uint_eq(c.bits, 32);
    static const char *const bad[] = {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129",
                                      "10.0.0.0/8x", "example.com", "10.0.0.256"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(cidr_parse(bad[i], &c) == -1, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(test_match_one)
{
    struct cidr net = range("192.168.0.0/16");
    struct sockaddr_in in = v4("192.168.44.1"), out = v4("192.169.0.1");
    struct sockaddr_in6 mapped = v6("::ffff:192.168.1.2"), other6 = v6("2001:db8::1");
    ck_assert(cidr_match(&net, SA(in)));
    ck_assert(!cidr_match(&net, SA(out)));
    ck_assert(cidr_match(&net, SA(mapped))); /* the IPv4-mapped form is the same address */
    ck_assert(!cidr_match(&net, SA(other6)));
    /* A prefix that is not a whole number of bytes. */
    struct cidr odd = range("10.0.0.0/9");
    struct sockaddr_in lo = v4("10.127.255.255"), hi = v4("10.128.0.0");
    ck_assert(cidr_match(&odd, SA(lo)));
    ck_assert(!cidr_match(&odd, SA(hi)));
    /* /0 covers everything of its family's space. */
    struct cidr all6 = range("::/0");
    ck_assert(cidr_match(&all6, SA(other6)));
}
END_TEST

START_TEST(test_list_match)
{
    struct cidr list[3] = {range("10.0.0.0/8"), range("2001:db8::/32"), range("127.0.0.1")};
    struct sockaddr_in a = v4("10.1.2.3"), lo = v4("127.0.0.1"), lo2 = v4("127.0.0.2");
    struct sockaddr_in6 b = v6("2001:db8:ffff::7"), c = v6("2001:db9::1"),
                        mapped = v6("::ffff:10.9.9.9");
    ck_assert(cidr_list_match(list, 3, SA(a)));      /* the first */
    ck_assert(cidr_list_match(list, 3, SA(b)));      /* a middle one */
    ck_assert(cidr_list_match(list, 3, SA(lo)));     /* the last */
    ck_assert(cidr_list_match(list, 3, SA(mapped))); /* mapped form of the first */
    ck_assert(!cidr_list_match(list, 3, SA(lo2)));
    ck_assert(!cidr_list_match(list, 3, SA(c)));
    /* Only the first n count. */
    ck_assert(!cidr_list_match(list, 2, SA(lo)));
    /* An empty list matches nothing (NULL is fine then). */
    ck_assert(!cidr_list_match(NULL, 0, SA(a)));
    /* Neither IPv4 nor IPv6: no match, even against everything. */
    struct cidr all[2] = {range("0.0.0.0/0"), range("::/0")};
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    ck_assert(!cidr_list_match(all, 2, SA(un)));
    ck_assert(cidr_list_match(all, 2, SA(a)));
}
END_TEST

START_TEST(test_addr_key)
{
    uint8_t k4[ADDR_KEY_LEN], k6[ADDR_KEY_LEN], kother[ADDR_KEY_LEN];
    struct sockaddr_in a = v4("203.0.113.9");
    struct sockaddr_in6 mapped = v6("::ffff:203.0.113.9"), other = v6("::203.0.113.9");
    ck_assert(addr_key(SA(a), k4));
    ck_assert(addr_key(SA(mapped), k6));
    ck_assert(addr_key(SA(other), kother));
    ck_assert_mem_eq(k4, k6, ADDR_KEY_LEN);
    ck_assert_mem_eq(k4, &mapped.sin6_addr, ADDR_KEY_LEN);
    ck_assert_uint_eq(addr_key_hash(k4), addr_key_hash(k6));
    ck_assert(memcmp(k4, kother, ADDR_KEY_LEN) != 0);
    ck_assert_uint_ne(addr_key_hash(k4), addr_key_hash(kother));
    /* The port is not part of the key. */
    struct sockaddr_in a2 = a;
    a2.sin_port = htons(9);
    uint8_t k42[ADDR_KEY_LEN];
    addr_key(SA(a2), k42);
    ck_assert_mem_eq(k4, k42, ADDR_KEY_LEN);
    /* Another family: false, and a zero key. */
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    uint8_t zero[ADDR_KEY_LEN] = {0};
    ck_assert(!addr_key(SA(un), kother));
    ck_assert_mem_eq(kother, zero, ADDR_KEY_LEN);
    /* Neighbouring addresses spread over the low bits a table masks. */
    unsigned used[64] = {0}, distinct = 0;
    for (unsigned i = 0; i < 256; i++) {
        struct sockaddr_in x = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        uint8_t k[ADDR_KEY_LEN];
        addr_key(SA(x), k);
        unsigned b = (unsigned)(addr_key_hash(k) & 63);
        distinct += used[b]++ == 0;
    }
    ck_assert_uint_ge(distinct, 56);
}
END_TEST

static Suite *cidr_suite(void)
{
    Suite *s = suite_create("cidr");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_match_one);
    tcase_add_test(tc, test_list_match);
    tcase_add_test(tc, test_addr_key);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(cidr_suite());
}
