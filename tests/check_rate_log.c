/*
 * check_rate_log.c - tests for rate_table.c (the per-source token buckets
 * of conn_rate_limit: burst, refill, sources apart, a table that never
 * grows), log_json.c (any bytes make valid JSON: quotes, control
 * characters, invalid UTF-8, a cut that stays valid) and access_log.c's
 * formats (variables, "$$", unknown variables refused, JSON lines).
 */
#include "check_main.h"
#include "access_log.h"
#include "log_json.h"
#include "rate_table.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SA(x) ((const struct sockaddr *)&(x))

static struct sockaddr_in v4(uint32_t host_order)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1234)};
    a.sin_addr.s_addr = htonl(host_order);
    return a;
}

START_TEST(test_burst_and_refill)
{
    struct rate_table *t = rate_table_new(64, 2, 5); /* 2/s, burst 5 */
    ck_assert_ptr_nonnull(t);
    struct sockaddr_in a = v4(0x7f000001), b = v4(0x7f000002);
    uint64_t now = 1000;
    for (int i = 0; i < 5; i++)
        ck_assert(rate_table_take(t, SA(a), now));
    ck_assert(!rate_table_take(t, SA(a), now));     /* the burst is spent */
    ck_assert(rate_table_take(t, SA(b), now));      /* another source has its own */
    ck_assert(!rate_table_take(t, SA(a), now + 499)); /* 0.998 of a token */
    ck_assert(rate_table_take(t, SA(a), now + 500));  /* one token in 500 ms at 2/s */
    ck_assert(!rate_table_take(t, SA(a), now + 500));
    /* A long pause refills to the burst, not beyond (and does not overflow). */
    now += 1000000000000ull;
    for (int i = 0; i < 5; i++)
        ck_assert(rate_table_take(t, SA(a), now));
    ck_assert(!rate_table_take(t, SA(a), now));
    rate_table_free(t);
}
END_TEST

START_TEST(test_bounded)
{
    struct rate_table *t = rate_table_new(4096, 1, 1);
    ck_assert_uint_eq(rate_table_slots(t), 4096);
    ck_assert_uint_le(rate_table_slot_size(), 32);
    /* 10,000 sources, more than the slots: each new one starts full and
     * the table stays its size. */
    struct sockaddr_in victim = v4(0x0a000001);
    ck_assert(rate_table_take(t, SA(victim), 10));
    ck_assert(!rate_table_take(t, SA(victim), 10));
    for (uint32_t i = 0; i < 10000; i++) {
        struct sockaddr_in s = v4(0x0b000000 + i);
        ck_assert(rate_table_take(t, SA(s), 10)); /* each new source starts full */
    }
    ck_assert_uint_eq(rate_table_slots(t), 4096);
    rate_table_free(t);
    /* Sizes round up to a power of two, at least RATE_TABLE_WAYS. */
    t = rate_table_new(5000, 1, 1);
    ck_assert_uint_eq(rate_table_slots(t), 8192);
    rate_table_free(t);
    t = rate_table_new(1, 1, 1);
    ck_assert_uint_eq(rate_table_slots(t), RATE_TABLE_WAYS);
    rate_table_free(t);
}
END_TEST

START_TEST(test_ipv4_mapped_is_one_source)
{
    struct rate_table *t = rate_table_new(64, 1, 1);
    struct sockaddr_in a = v4(0x7f000001);
    struct sockaddr_in6 m = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &m.sin6_addr);
    ck_assert(rate_table_take(t, SA(a), 5));
    ck_assert(!rate_table_take(t, SA(m), 5));
    rate_table_free(t);
}
END_TEST

START_TEST(test_json_string)
{
    char out[256];
    size_t n = 0;
    const char in[] = "a\"b\\c\n\x01\x7f" "\xc3\xa9" "\xff" "\xe2\x82" "z";
    log_json_string(out, sizeof out, &n, in, sizeof in - 1);
    ck_assert_str_eq(out, "\"a\\\"b\\\\c\\n\\u0001\\u007f\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd"
                          "\xef\xbf\xbdz\"");
    ck_assert_uint_eq(n, strlen(out));
    /* Overlong and surrogate encodings are invalid too. */
    n = 0;
    log_json_string(out, sizeof out, &n, "\xc0\xaf\xed\xa0\x80", 5);
    ck_assert_str_eq(out, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    /* Cut short: between characters, still closed. */
    char small[8];
    n = 0;
    log_json_string(small, sizeof small, &n, "\xc3\xa9\xc3\xa9\xc3\xa9", 6);
    ck_assert_str_eq(small, "\"\xc3\xa9\xc3\xa9\"");
}
END_TEST

START_TEST(test_json_line)
{
    char line[1024];
    size_t n = log_json_line(line, sizeof line, "T", "info", "l\"1", 2, 42, "m\n", 2);
    ck_assert_str_eq(line, "{\"time\":\"T\",\"level\":\"info\",\"listener\":\"l\\\"1\","
                           "\"worker\":2,\"conn\":42,\"msg\":\"m\\n\"}");
    ck_assert_uint_eq(n, strlen(line));
    n = log_json_line(line, sizeof line, "T", "warn", NULL, -1, 0, "x", 1);
    ck_assert_str_eq(line, "{\"time\":\"T\",\"level\":\"warn\",\"msg\":\"x\"}");
    /* A long message is cut and the object still closed. */
    char big[4000];
    memset(big, 'x', sizeof big);
    n = log_json_line(line, sizeof line, "T", "info", NULL, -1, 0, big, sizeof big);
    ck_assert_uint_lt(n, sizeof line);
    ck_assert_str_eq(line + n - 2, "\"}");
}
END_TEST

START_TEST(test_access_format)
{
    char err[512];
    ck_assert_int_eq(access_log_check_format("$remote_addr $$ $bytes_in", err, sizeof err), 0);
    ck_assert_int_eq(access_log_check_format("$remote_addr $nope x", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "unknown variable $nope") != NULL, "%s", err);
    char path[] = "/tmp/check_rate_log.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    int code = 1;
    struct access_log *a = access_log_open(path, "[$remote_addr:$remote_port] $$ $duration_ms "
                                                 "$bytes_in/$bytes_out $close_reason $direction "
                                                 "$listener", false, &code);
    ck_assert_ptr_nonnull(a);
    struct sockaddr_in peer = v4(0x7f000002);
    struct access_entry e = {.remote = SA(peer), .listener = "l\n1", .worker = 1, .conn_id = 7,
                             .duration_ms = 12, .bytes_in = 3, .bytes_out = 4,
                             .close_reason = "eof"};
    char line[512];
    size_t n = access_log_format(a, &e, line, sizeof line);
    line[n] = '\0';
    ck_assert_str_eq(line, "[127.0.0.2:1234] $ 12 3/4 eof in l\\x0a1\n");
    /* The same file again is the same open file. */
    struct access_log *b = access_log_open(path, "$remote_addr $bytes_in $close_reason", true,
                                           &code);
    ck_assert_ptr_nonnull(b);
    n = access_log_format(b, &e, line, sizeof line);
    line[n] = '\0';
    ck_assert_str_eq(line, "{\"remote_addr\":\"127.0.0.2\",\"bytes_in\":3,"
                           "\"close_reason\":\"eof\"}\n");
    access_log_write(a, &e);
    access_log_write(b, &e);
    access_log_close(a);
    access_log_close(b);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int lines = 0;
    while (fgets(line, sizeof line, f))
        lines++;
    fclose(f);
    ck_assert_int_eq(lines, 2);
    unlink(path);
    /* A file that cannot be opened: the errno. */
    ck_assert_ptr_null(access_log_open("/nonexistent/dir/x.log", "$time", false, &code));
    ck_assert_int_eq(code, -ENOENT);
}
END_TEST

static Suite *rate_log_suite(void)
{
    Suite *s = suite_create("rate_log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_burst_and_refill);
    tcase_add_test(tc, test_bounded);
    tcase_add_test(tc, test_ipv4_mapped_is_one_source);
    tcase_add_test(tc, test_json_string);
    tcase_add_test(tc, test_json_line);
    tcase_add_test(tc, test_access_format);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(rate_log_suite());
}
