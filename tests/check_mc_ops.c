/*
 * check_mc_ops.c - the memcache handler's protocol fixes and operators'
 * commands (handlers/memcache/, compiled into this program) through the
 * test kit: memcached 1.6.18's exact replies to the bugs of issue 15, a
 * 1 MiB value with the default buffers, stats detail and reset, the
 * max_connections refusal, a metadump that waits for a client that does
 * not read and then prints every key once, a watcher that does not read
 * told how many lines it lost, watch's expired and flushed statuses, and
 * the LRU's move counters.  tests/check_mc_ops_compare.sh compares the
 * same with the real memcached.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "mc_testutil.h"
#include "wharf_test.h"

START_TEST(protocol_fixes)
{
    wharf_test *t = mc_test_new_json(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "add dk 0 0 1\r\nx\r\n", "STORED\r\n");
    EXPECT(c, "delete dk 10 noreply\r\nadd dk 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    EXPECT(c, "delete dk 10\r\n",
           "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
    EXPECT(c, "set k 0 0 2147483647\r\nget dk\r\n",
           "CLIENT_ERROR bad command line format\r\nVALUE dk 0 1\r\nx\r\nEND\r\n");
    EXPECT(c, "verbosity invalid\r\nverbosity 1\r\nverbosity x noreply\r\nversion\r\n",
           "CLIENT_ERROR bad command line format\r\nOK\r\nVERSION 1.6.18-wharf\r\n");
    EXPECT(c, "set n 0 0 40\r\n0000000000000000000000000000000000000007\r\nincr n 5\r\n",
           "STORED\r\n12\r\n");
    EXPECT(c, "set n 0 0 21\r\n184467440737095516160\r\nincr n 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    EXPECT(c, "slabs automove invalid\r\nslabs automove 1\r\n",
           "CLIENT_ERROR bad command line format\r\nOK\r\n");
    wharf_test_conn *h = wharf_test_connect(t);
    EXPECT(h, "get x\r\nGET / HTTP/1.0\r\n", "END\r\n");
    ck_assert(wharf_test_closed(h, NULL));
    wharf_test_free(t);
}
END_TEST

/* append past item_size_max, and a 1 MiB value under the default 1 MiB
 * max_input, sent in pieces. */
START_TEST(large_values)
{
    wharf_test *t = mc_test_new_json(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    size_t n = 1u << 20;
    char *v = malloc(n + 64);
    memset(v, 'v', n);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "set big 0 0 %zu\r\n", n);
    wharf_test_send(c, hdr, strlen(hdr));
    for (size_t off = 0; off < n; off += 100000)
        wharf_test_send(c, v, n - off < 100000 ? n - off : 100000);
    EXPECT(c, "\r\n", "STORED\r\n");
    ck_assert(!wharf_test_closed(c, NULL));
    EXPECT(c, "append big 0 0 10\r\n0123456789\r\n", "NOT_STORED\r\n");
    const char *out = mc_test_rt(c, "get big\r\n");
    ck_assert_uint_eq(strlen(out), strlen("VALUE big 0 1048576\r\n") + n + 2 + 5);
    free(v);
    wharf_test_free(t);
}
END_TEST

START_TEST(stats_detail_and_reset)
{
    wharf_test *t = mc_test_new_json(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "stats detail dump\r\n", "END\r\n");
    EXPECT(c, "stats detail on\r\n", "OK\r\n");
    EXPECT(c, "set foo:123 0 0 6\r\nfooval\r\n", "STORED\r\n");
    EXPECT(c, "get foo:123 foo:124\r\n", "VALUE foo:123 0 6\r\nfooval\r\nEND\r\n");
    EXPECT(c, "delete foo:125\r\n", "NOT_FOUND\r\n");
    EXPECT(c, "stats detail dump\r\n", "PREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n");
    EXPECT(c, "stats reset\r\n", "RESET\r\n");
    EXPECT(c, "stats detail dump\r\n", "END\r\n");
    ck_assert_ptr_nonnull(strstr(mc_test_rt(c, "stats\r\n"), "STAT total_items 0\r\n"));
    ck_assert_ptr_nonnull(strstr(mc_test_rt(c, "stats\r\n"), "STAT curr_items 1\r\n"));
    ck_assert_ptr_nonnull(strstr(mc_test_rt(c, "stats items\r\n"),
                                 "STAT items:1:number 1\r\nSTAT items:1:mem_requested 72\r\n"));
    /* The segmented LRU's moves (tests/check_mc_store counts them), where
     * memcached prints them, zeroed by the reset. */
    ck_assert_ptr_nonnull(strstr(mc_test_rt(c, "stats\r\n"),
                                 "STAT reclaimed 0\r\nSTAT moves_to_cold 0\r\n"
                                 "STAT moves_to_warm 0\r\nSTAT moves_within_lru 0\r\n"));
    ck_assert_ptr_nonnull(strstr(mc_test_rt(c, "stats items\r\n"),
                                 "STAT items:1:evicted_unfetched 0\r\n"
                                 "STAT items:1:moves_to_cold 0\r\nSTAT items:1:moves_to_warm 0\r\n"
                                 "STAT items:1:moves_within_lru 0\r\n"));
    EXPECT(c, "stats detail\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
    wharf_test_free(t);
}
END_TEST

START_TEST(connection_limit)
{
    wharf_test *t = mc_test_new_json("\"options\": {\"max_connections\": 1}");
    wharf_test_conn *a = wharf_test_connect(t);
    wharf_test_conn *b = wharf_test_connect(t);
    ck_assert_str_eq(wharf_test_output(b, NULL), "ERROR Too many open connections\r\n");
    ck_assert(wharf_test_closed(b, NULL));
    const char *st = mc_test_rt(a, "stats\r\n");
    ck_assert_ptr_nonnull(strstr(st, "STAT rejected_connections 1\r\n"));
    ck_assert_ptr_nonnull(strstr(st, "STAT curr_connections 1\r\n"));
    wharf_test_close(a);
    wharf_test_run(t, 100);
    wharf_test_conn *d = wharf_test_connect(t);
    EXPECT(d, "version\r\n", "VERSION 1.6.18-wharf\r\n");
    wharf_test_free(t);
}
END_TEST

/* 3000 keys dumped to a client that does not read: the handler holds back
 * (output stays bounded), then every key comes once, then END, then the
 * command sent behind the dump. */
START_TEST(metadump_waits_and_lists_every_key)
{
    wharf_test *t = mc_test_new_json(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    char line[128];
    for (int i = 0; i < 3000; i++) {
        snprintf(line, sizeof line, "set key:%04d 0 0 50 noreply\r\n%050d\r\n", i, i);
        wharf_test_send(c, line, strlen(line));
    }
    wharf_test_pause_reading(c, true);
    wharf_test_send(c, "lru_crawler metadump all\r\nversion\r\n", 35);
    wharf_test_pause_reading(c, false);
    wharf_test_run(t, 1000);
    size_t n;
    const char *out = wharf_test_output(c, &n);
    ck_assert_msg(n > 3000 * 60, "only %zu bytes", n);
    static char seen[3000];
    int count = 0;
    for (const char *p = strstr(out, "key=key%3A"); p; p = strstr(p + 1, "key=key%3A")) {
        int k = atoi(p + 10);
        ck_assert(k >= 0 && k < 3000 && !seen[k]);
        seen[k] = 1;
        count++;
        ck_assert_ptr_nonnull(strstr(p, " fetch=no cls=2 size=117\n"));
    }
    ck_assert_int_eq(count, 3000);
    ck_assert_ptr_nonnull(strstr(out, "\nEND\r\nVERSION 1.6.18-wharf\r\n"));
    wharf_test_free(t);
}
END_TEST

/* A watcher that does not read loses lines and is told how many. */
/* A kit with a watcher *w of `kinds` (its OK read) and a client *c. */
static wharf_test *watch_start(const char *kinds, wharf_test_conn **w, wharf_test_conn **c)
{
    wharf_test *t = mc_test_new_json(NULL);
    *w = wharf_test_connect(t);
    *c = wharf_test_connect(t);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "watch %s\r\n", kinds);
    EXPECT(*w, cmd, "OK\r\n");
    return t;
}

/*
 * watch's item_get says why a lookup missed where memcached's do_item_get
 * does: status=expired for an item found past its exptime (a get, and the
 * lookup a storage command makes first), status=flushed for one a delayed
 * flush_all invalidated, both with clsid=0 size=0 (the item is freed).
 */
START_TEST(watch_expired_and_flushed)
{
    wharf_test_conn *w, *c;
    wharf_test *t = watch_start("fetchers", &w, &c);
    EXPECT(c, "set neg 0 -1 1\r\nx\r\nget neg\r\n", "STORED\r\nEND\r\n");
    EXPECT(c, "set again 0 -1 1\r\nx\r\nset again 0 0 1\r\ny\r\n", "STORED\r\nSTORED\r\n");
    time_t t0 = time(NULL);
    EXPECT(c, "set fl 0 0 1\r\nx\r\nflush_all 1\r\n", "STORED\r\nOK\r\n");
    for (int i = 0; i < 40 && time(NULL) < t0 + 2; i++) /* the flush's second has come */
        usleep(100000);
    EXPECT(c, "gets fl\r\nget fl\r\n", "END\r\nEND\r\n");
    /* delete, incr/decr and touch look the key up first too, as memcached */
    EXPECT(c, "set d 0 -1 1\r\n1\r\ndelete d\r\nset n 0 0 1\r\n1\r\nincr n 1\r\n"
              "touch n 10\r\ndecr nope 1\r\n",
           "STORED\r\nNOT_FOUND\r\nSTORED\r\n2\r\nTOUCHED\r\nNOT_FOUND\r\n");
    wharf_test_run(t, 100);
    const char *out = wharf_test_output(w, NULL);
    static const char *const want[] = {
        " type=item_get key=neg status=not_found clsid=0 cfd=",
        " type=item_get key=neg status=expired clsid=0 cfd=",
        " type=item_get key=again status=expired clsid=0 cfd=",
        " type=item_get key=fl status=flushed clsid=0 cfd=",
        " type=item_get key=fl status=not_found clsid=0 cfd=",
        " type=item_get key=d status=expired clsid=0 cfd=",
        " type=item_get key=n status=found clsid=1 cfd=",
        " type=item_get key=n status=found clsid=1 cfd=",
        " type=item_get key=nope status=not_found clsid=0 cfd=",
    };
    const char *at = out;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *p = strstr(at, want[i]);
        ck_assert_msg(p != NULL, "no \"%s\" in order in:\n%s", want[i], out);
        ck_assert_ptr_nonnull(strstr(p, strstr(want[i], "found clsid=1") ? " size=1\n"
                                                                            : " size=0\n"));
        at = p + 1;
    }
    wharf_test_free(t);
}
END_TEST

START_TEST(watch_bounded_and_skipped)
{
    wharf_test_conn *w, *c;
    wharf_test *t = watch_start("mutations", &w, &c);
    EXPECT(c, "set wk 0 0 1\r\nx\r\n", "STORED\r\n");
    wharf_test_run(t, 100);
    const char *out = wharf_test_output(w, NULL);
    ck_assert_msg(strstr(out, " type=item_store key=wk status=stored cmd=set ttl=0 clsid=1 cfd=")
                  != NULL, "%s", out);
    wharf_test_pause_reading(w, true);
    char line[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(line, sizeof line, "set k%d 0 0 1 noreply\r\nx\r\n", i);
        wharf_test_send(c, line, strlen(line));
        if (i % 500 == 0)
            wharf_test_run(t, 10);
    }
    wharf_test_run(t, 100);
    wharf_test_pause_reading(w, false);
    wharf_test_run(t, 100);
    EXPECT(c, "set last 0 0 1\r\nx\r\n", "STORED\r\n");
    wharf_test_run(t, 100);
    size_t n;
    out = wharf_test_output(w, &n);
    ck_assert_msg(strstr(out, "skipped=") != NULL, "no skipped= in %zu bytes", n);
    ck_assert_ptr_nonnull(strstr(out, "key=last status=stored"));
    ck_assert_ptr_nonnull(strstr(mc_test_rt(c, "stats\r\n"), "STAT log_watchers 1\r\n"));
    wharf_test_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mc_ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, protocol_fixes);
    tcase_add_test(tc, large_values);
    tcase_add_test(tc, stats_detail_and_reset);
    tcase_add_test(tc, connection_limit);
    tcase_add_test(tc, metadump_waits_and_lists_every_key);
    tcase_add_test(tc, watch_bounded_and_skipped);
    tcase_add_test(tc, watch_expired_and_flushed);
    suite_add_tcase(s, tc);
    return check_run(s);
}
