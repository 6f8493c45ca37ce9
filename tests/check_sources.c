/*
 * check_sources.c - unit suite for per-source connection counting: the limit
 * per address, independence of addresses, IPv4 and IPv4-mapped IPv6 as one
 * source, entries freed when their count drops to zero, and concurrent use.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "sources.h"

static struct sockaddr_in v4(const char *ip, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    ck_assert_int_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

START_TEST(limit_per_source)
{
    struct sources *s = sources_new(3);
    struct sockaddr_in a = v4("10.0.0.1", 1000);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sources_add(s, (struct sockaddr *)&a), 0);
    ck_assert_int_eq(sources_add(s, (struct sockaddr *)&a), -EBUSY);
    ck_assert_uint_eq(sources_count(s, (struct sockaddr *)&a), 3);
    /* The port does not matter: the source is the address. */
    struct sockaddr_in other_port = v4("10.0.0.1", 2000);
    ck_assert_int_eq(sources_add(s, (struct sockaddr *)&other_port), -EBUSY);
    sources_remove(s, (struct sockaddr *)&a);
    ck_assert_int_eq(sources_add(s, (struct sockaddr *)&other_port), 0);
    sources_free(s);
}
END_TEST

START_TEST(sources_are_independent)
{
    struct sources *s = sources_new(1);
    struct sockaddr_in a = v4("10.0.0.1", 1), b = v4("10.0.0.2", 1);
    struct sockaddr_in6 c = v6("2001:db8::1");
    ck_assert_int_eq(sources_add(s, (struct sockaddr *)&a), 0);
    ck_assert_int_eq(sources_add(s, (struct sockaddr *)&b), 0);
    ck_assert_int_eq(sources_add(s, (struct sockaddr *)&c), 0);
    ck_assert_int_eq(sources_add(s, (struct sockaddr *)&c), -EBUSY);
    ck_assert_uint_eq(sources_distinct(s), 3);
    sources_free(s); /* frees entries still counted */
}
END_TEST

START_TEST(ipv4_and_mapped_ipv6_are_one_source)
{
    struct sources *s = sources_new(1);
    struct sockaddr_in a = v4("192.0.2.7", 5);
    struct sockaddr_in6 m = v6("::ffff:192.0.2.7");
    ck_assert_int_eq(sources_add(s, (struct sockaddr *)&a), 0);
    ck_assert_int_eq(sources_add(s, (struct sockaddr *)&m), -EBUSY);
    sources_remove(s, (struct sockaddr *)&m);
    ck_assert_uint_eq(sources_count(s, (struct sockaddr *)&a), 0);
    sources_free(s);
}
END_TEST

START_TEST(entries_go_away_at_zero)
{
    struct sources *s = sources_new(2);
    for (unsigned i = 0; i < 20000; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        ck_assert_int_eq(sources_add(s, (struct sockaddr *)&a), 0);
        ck_assert_int_eq(sources_add(s, (struct sockaddr *)&a), 0);
    }
    ck_assert_uint_eq(sources_distinct(s), 20000);
    for (unsigned i = 0; i < 20000; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        sources_remove(s, (struct sockaddr *)&a);
        ck_assert_uint_eq(sources_count(s, (struct sockaddr *)&a), 1);
        sources_remove(s, (struct sockaddr *)&a);
    }
    ck_assert_uint_eq(sources_distinct(s), 0);
    /* Removing an address that is not counted is harmless. */
    struct sockaddr_in x = v4("10.9.9.9", 1);
    sources_remove(s, (struct sockaddr *)&x);
    ck_assert_uint_eq(sources_distinct(s), 0);
    sources_free(s);
}
END_TEST

static struct sources *shared;

static void *churn(void *arg)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(uintptr_t)arg)};
    for (int i = 0; i < 50000; i++) {
        if (sources_add(shared, (struct sockaddr *)&a) == 0)
            sources_remove(shared, (struct sockaddr *)&a);
    }
    return NULL;
}

START_TEST(concurrent_add_remove_balances)
{
    shared = sources_new(4);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, (void *)(i % 2)); /* two threads per address */
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(sources_distinct(shared), 0);
    sources_free(shared);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sources");
    TCase *tc = tcase_create("sources");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, limit_per_source);
    tcase_add_test(tc, sources_are_independent);
    tcase_add_test(tc, ipv4_and_mapped_ipv6_are_one_source);
    tcase_add_test(tc, entries_go_away_at_zero);
    tcase_add_test(tc, concurrent_add_remove_balances);
    suite_add_tcase(s, tc);
    return check_run(s);
}
