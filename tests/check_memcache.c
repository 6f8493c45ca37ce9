/*
 * check_memcache.c - the memcache handler (handlers/memcache/ and its
 * store, compiled into this program) driven by the test kit, without a
 * network: memcached's replies byte for byte, input in every split, the
 * error replies where memcached gives them, expiry and the reclaim timer,
 * the memory limit under hostile sets, a 10,000-key get, a client that
 * stops reading, one that leaves in the middle of a value, and the store
 * under several threads at once.  Then across reloads, on real sockets:
 * through the embedding API and through wharfd and SIGHUP, 10,000 keys set
 * before a reload are hits after it from old and new connections, a
 * changed memory_limit applies to the same cache, and memory does not
 * double.  Values of 4 KiB and more go out by reference (no copy), pinned
 * while a client does not read and given back when it reads or leaves.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../handlers/memcache/mc_store.h"
#include "check_main.h"
#include "mc_testutil.h"
#include "testutil.h"
#include "wharf_server.h"
#include "wharf_test.h"

/* The kit freed with a client holding half a command: the connection is
 * torn down (and on_worker_stop stops the reclaim timer) before the kit
 * frees the worker's timers (under ASan or valgrind, the other order is a
 * use after free; fuzz/known/kit-free-partial found it). */
START_TEST(kit_free_with_a_partial_command)
{
    wharf_test *t = mc_test_new("\"reclaim_interval_ms\": 1000");
    wharf_test_conn *c = wharf_test_connect(t);
    wharf_test_send(c, "get k", 5);
    wharf_test_conn *d = wharf_test_connect(t);
    wharf_test_send(d, "set k 0 0 10\r\nhal", 17);
    wharf_test_free(t);
}
END_TEST

START_TEST(storage_commands)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "set a 5 0 5\r\nhello\r\n", "STORED\r\n");
    EXPECT(c, "get a\r\n", "VALUE a 5 5\r\nhello\r\nEND\r\n");
    EXPECT(c, "get a b a\r\n", "VALUE a 5 5\r\nhello\r\nVALUE a 5 5\r\nhello\r\nEND\r\n");
    EXPECT(c, "add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    EXPECT(c, "add b 0 0 1\r\nx\r\n", "STORED\r\n");
    EXPECT(c, "replace nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    EXPECT(c, "replace b 7 0 2\r\nyy\r\n", "STORED\r\n");
    EXPECT(c, "append b 0 0 1\r\n!\r\nprepend b 0 0 1\r\n<\r\n", "STORED\r\nSTORED\r\n");
    EXPECT(c, "get b\r\n", "VALUE b 7 4\r\n<yy!\r\nEND\r\n");
    EXPECT(c, "append nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    const char *g = mc_test_rt(c, "gets a\r\n");
    unsigned long long cas;
    ck_assert_int_eq(sscanf(g, "VALUE a 5 5 %llu\r\n", &cas), 1);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "cas a 1 0 3 %llu\r\nnew\r\n", cas);
    EXPECT(c, cmd, "STORED\r\n");
    EXPECT(c, cmd, "EXISTS\r\n");
    EXPECT(c, "cas nope 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
    EXPECT(c, "get a\r\n", "VALUE a 1 3\r\nnew\r\nEND\r\n");
    EXPECT(c, "set a 0 0 1 noreply\r\nz\r\nadd a 0 0 1 noreply\r\nq\r\nget a\r\n",
           "VALUE a 0 1\r\nz\r\nEND\r\n");
    EXPECT(c, "set e 0 0 0\r\n\r\nget e\r\n", "STORED\r\nVALUE e 0 0\r\n\r\nEND\r\n");
    wharf_test_send(c, "set bin 0 0 4\r\n\r\n\0\n\r\n", 21); /* any bytes in a value */
    ck_assert_str_eq(wharf_test_output(c, NULL), "STORED\r\n");
    wharf_test_send(c, "get bin\r\n", 9);
    size_t blen;
    const char *bout = wharf_test_output(c, &blen);
    ck_assert_uint_eq(blen, 26);
    ck_assert(memcmp(bout, "VALUE bin 0 4\r\n\r\n\0\n\r\nEND\r\n", 26) == 0);
    EXPECT(c, "delete a\r\ndelete a\r\ndelete b noreply\r\nget b\r\n",
           "DELETED\r\nNOT_FOUND\r\nEND\r\n");
    EXPECT(c, "delete e 0\r\n", "DELETED\r\n");
    EXPECT(c, "version\r\n", "VERSION 1.6.18-wharf\r\n");
    EXPECT(c, "verbosity 1\r\nverbosity 1 noreply\r\n", "OK\r\n");
    EXPECT(c, "set k 0 0 1\nx\r\nget k\n", "STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n");
    EXPECT(c, "quit\r\nget k\r\n", "");
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_HANDLER);
    wharf_test_free(t);
}
END_TEST

START_TEST(every_split)
{
    wharf_test *t = mc_test_new(NULL);
    const char *in = "set k 1 0 10\r\n0123456789\r\nget k x\r\nincr n 1\r\nset n 0 0 1\r\n9\r\n"
                     "incr n 1\r\ngets nope\r\nbogus\r\ndelete k\r\n";
    const char *want = "STORED\r\nVALUE k 1 10\r\n0123456789\r\nEND\r\nNOT_FOUND\r\nSTORED\r\n"
                       "10\r\nEND\r\nERROR\r\nDELETED\r\n";
    size_t n = strlen(in);
    for (size_t split = 0; split <= n; split++) {
        wharf_test_conn *c = wharf_test_connect(t);
        mc_test_rt(c, "flush_all\r\n");
        wharf_test_send(c, in, split);
        wharf_test_send(c, in + split, n - split);
        ck_assert_msg(strcmp(wharf_test_output(c, NULL), want) == 0, "split %zu", split);
        wharf_test_close(c);
    }
    wharf_test_free(t);
}
END_TEST

START_TEST(errors_as_memcached)
{
    wharf_test *t = mc_test_new("\"item_size_max\": 1000");
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "bogus\r\n", "ERROR\r\n");
    EXPECT(c, "\r\n", "ERROR\r\n");
    EXPECT(c, "GET a\r\n", "ERROR\r\n");
    EXPECT(c, "get\r\n", "ERROR\r\n");
    EXPECT(c, "set a 0 0 1 2 3\r\nx\r\n", "ERROR\r\nERROR\r\n");
    EXPECT(c, "cas a 0 0 1\r\nx\r\n", "ERROR\r\nERROR\r\n");
    /* The data block's length does not match. */
    EXPECT(c, "set a 0 0 5\r\nhelloX\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
    EXPECT(c, "set a 0 0 5 noreply\r\nhelloXY\r\nget a\r\n", "ERROR\r\nEND\r\n");
    /* Negative, huge or non-numeric lengths and fields. */
    EXPECT(c, "set a 0 0 -1\r\nhello\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    EXPECT(c, "set a 0 0 99999999999999999999\r\n", "CLIENT_ERROR bad command line format\r\n");
    EXPECT(c, "set a -1 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    EXPECT(c, "set a abc 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    EXPECT(c, "cas a 0 0 1 abc\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    /* Too large: refused, and its bytes swallowed (in pieces here). */
    mc_test_rt(c, "set big 0 0 1\r\nx\r\n");
    EXPECT(c, "set big 0 0 5000\r\n", "SERVER_ERROR object too large for cache\r\n");
    char *blob = malloc(5002);
    memset(blob, 'v', 5000);
    memcpy(blob + 5000, "\r\n", 2);
    wharf_test_send(c, blob, 2000);
    wharf_test_send(c, blob + 2000, 3002);
    free(blob);
    EXPECT(c, "get big\r\n", "END\r\n"); /* the stale value went too */
    /* Keys. */
    char line[600];
    memset(line, 'k', sizeof line);
    memcpy(line, "set ", 4);
    memcpy(line + 4 + 251, " 0 0 1\r\nx\r\n", 12);
    EXPECT(c, line, "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    memcpy(line + 4 + 250, " 0 0 1\r\nx\r\n", 12); /* 250 is fine */
    EXPECT(c, line, "STORED\r\n");
    /* Control characters are key bytes, as in memcached (memcaslap's keys
     * begin with 0x10 bytes). */
    EXPECT(c, "set a\x01\x10\x7f 0 0 1\r\nx\r\n", "STORED\r\n");
    EXPECT(c, "get a\x01\x10\x7f\r\n", "VALUE a\x01\x10\x7f 0 1\r\nx\r\nEND\r\n");
    EXPECT(c, "get a\x01\r\n", "END\r\n");
    memcpy(line, "get ", 4);
    memset(line + 4, 'k', 251);
    memcpy(line + 4 + 251, "\r\n", 3);
    EXPECT(c, line, "CLIENT_ERROR bad command line format\r\n");
    /* Other commands' errors. */
    EXPECT(c, "delete a 5\r\n",
           "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
    EXPECT(c, "incr a x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
    EXPECT(c, "incr a -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
    EXPECT(c, "touch a abc\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    EXPECT(c, "gat a b\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    EXPECT(c, "flush_all abc\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    EXPECT(c, "touch a\r\nverbosity\r\nstats nonsense\r\n", "ERROR\r\nERROR\r\nERROR\r\n");
    ck_assert(!wharf_test_closed(c, NULL));
    /* A line past 2048 bytes with no end in sight: an error, then closed. */
    char longline[3000];
    memset(longline, 'x', sizeof longline);
    wharf_test_send(c, longline, sizeof longline);
    ck_assert_str_eq(wharf_test_output(c, NULL), "CLIENT_ERROR line too long\r\n");
    ck_assert(wharf_test_closed(c, NULL));
    wharf_test_free(t);
}
END_TEST

START_TEST(incr_decr)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "incr n 1\r\ndecr n 1\r\n", "NOT_FOUND\r\nNOT_FOUND\r\n");
    EXPECT(c, "set n 0 0 2\r\n10\r\ndecr n 1\r\nget n\r\n",
           "STORED\r\n9\r\nVALUE n 0 2\r\n9 \r\nEND\r\n"); /* memcached pads in place */
    EXPECT(c, "decr n 100\r\n", "0\r\n");
    EXPECT(c, "set n 0 0 20\r\n18446744073709551615\r\nincr n 2\r\n", "STORED\r\n1\r\n");
    EXPECT(c, "set n 0 0 1\r\n9\r\nincr n 18446744073709551615\r\nget n\r\n",
           "STORED\r\n8\r\nVALUE n 0 1\r\n8\r\nEND\r\n");
    EXPECT(c, "set n 0 0 1\r\n9\r\nincr n 1\r\nget n\r\n",
           "STORED\r\n10\r\nVALUE n 0 2\r\n10\r\nEND\r\n");
    EXPECT(c, "set s 0 0 2\r\nab\r\nincr s 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    EXPECT(c, "set s 0 0 20\r\n18446744073709551616\r\nincr s 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    EXPECT(c, "set s 0 0 0\r\n\r\nincr s 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    EXPECT(c, "incr n 5 noreply\r\nget n\r\n", "VALUE n 0 2\r\n15\r\nEND\r\n");
    ck_assert_uint_eq(mc_test_stat(c, "incr_hits"), 4);
    ck_assert_uint_eq(mc_test_stat(c, "decr_hits"), 2);
    ck_assert_uint_eq(mc_test_stat(c, "incr_misses"), 1);
    wharf_test_free(t);
}
END_TEST

START_TEST(expiry)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    char cmd[256];
    long now = (long)time(NULL);
    EXPECT(c, "set neg 0 -1 1\r\nx\r\nget neg\r\n", "STORED\r\nEND\r\n");
    snprintf(cmd, sizeof cmd, "set past 0 %ld 1\r\nx\r\nget past\r\n", now - 10);
    EXPECT(c, cmd, "STORED\r\nEND\r\n"); /* an absolute time already gone */
    snprintf(cmd, sizeof cmd, "set abs 0 %ld 1\r\nx\r\nget abs\r\n", now + 3600);
    EXPECT(c, cmd, "STORED\r\nVALUE abs 0 1\r\nx\r\nEND\r\n");
    EXPECT(c, "set rel 0 2592000 1\r\nx\r\nget rel\r\n", "STORED\r\nVALUE rel 0 1\r\nx\r\nEND\r\n");
    EXPECT(c, "set one 0 1 1\r\nx\r\nset t 0 100 1\r\nx\r\nset g 0 100 1\r\nx\r\n",
           "STORED\r\nSTORED\r\nSTORED\r\n");
    EXPECT(c, "touch t 1\r\ntouch nope 1\r\n", "TOUCHED\r\nNOT_FOUND\r\n");
    EXPECT(c, "gat 1 g nope\r\n", "VALUE g 0 1\r\nx\r\nEND\r\n");
    EXPECT(c, "gats 0 nope\r\ngat 10\r\n", "END\r\nEND\r\n");
    EXPECT(c, "set fl 0 0 1\r\nx\r\nflush_all 2\r\nget fl\r\n", "STORED\r\nOK\r\nVALUE fl 0 1\r\nx\r\nEND\r\n");
    sleep(2) ;
    usleep(200000);
    EXPECT(c, "get one t g fl abs\r\n", "END\r\n"); /* the flush took abs too */
    EXPECT(c, "set fl 0 0 1\r\ny\r\nget fl\r\n", "STORED\r\nVALUE fl 0 1\r\ny\r\nEND\r\n");
    ck_assert_uint_ge(mc_test_stat(c, "get_expired"), 3);
    ck_assert_uint_eq(mc_test_stat(c, "touch_hits"), 2);
    ck_assert_uint_eq(mc_test_stat(c, "cmd_touch"), 5);
    wharf_test_free(t);
}
END_TEST

START_TEST(reclaim_timer)
{
    wharf_test *t = mc_test_new("\"reclaim_interval_ms\": 100, \"reclaim_batch\": 1000");
    wharf_test_conn *c = wharf_test_connect(t);
    char cmd[64];
    for (int i = 0; i < 500; i++) {
        snprintf(cmd, sizeof cmd, "set k%d 0 1 1 noreply\r\nx\r\n", i);
        mc_test_rt(c, cmd);
    }
    mc_test_rt(c, "set keep 0 0 1 noreply\r\nx\r\n");
    sleep(2);
    usleep(200000);
    /* No lookups: only the timer can free them, and one tick visits every
     * shard. */
    wharf_test_advance(t, 100);
    ck_assert_uint_eq(mc_test_stat(c, "curr_items"), 1);
    ck_assert_uint_eq(mc_test_stat(c, "expired_unfetched"), 500);
    ck_assert_uint_eq(mc_test_stat(c, "reclaimed"), 500);
    /* The timer is the worker's (on_worker_start), not a connection's: it
     * goes on while no connection is open. */
    mc_test_rt(c, "set z 0 1 1 noreply\r\nx\r\n");
    wharf_test_close(c);
    sleep(2);
    usleep(200000);
    wharf_test_advance(t, 100);
    wharf_test_conn *d = wharf_test_connect(t);
    ck_assert_uint_eq(mc_test_stat(d, "curr_items"), 1);
    ck_assert_uint_eq(mc_test_stat(d, "expired_unfetched"), 501);
    wharf_test_free(t);
}
END_TEST

START_TEST(memory_limit_holds)
{
    /* 256 KiB for everything, values up to 16 KiB: sets of every size from
     * one client, the total never passes the limit, and the newest stay. */
    wharf_test *t = mc_test_new("\"memory_limit\": 262144, \"item_size_max\": 16384");
    wharf_test_conn *c = wharf_test_connect(t);
    char *buf = malloc(20000);
    unsigned seed = 1;
    for (int i = 0; i < 3000; i++) {
        size_t n = (size_t)(rand_r(&seed) % 16384);
        int h = sprintf(buf, "set key%d 0 0 %zu\r\n", i, n);
        memset(buf + h, 'a' + i % 26, n);
        memcpy(buf + h + n, "\r\n", 2);
        wharf_test_send(c, buf, (size_t)h + n + 2);
        ck_assert_str_eq(wharf_test_output(c, NULL), "STORED\r\n");
        if (i % 100 == 0)
            ck_assert_uint_le(mc_test_stat(c, "bytes"), 262144);
    }
    ck_assert_uint_le(mc_test_stat(c, "bytes"), 262144);
    ck_assert_uint_gt(mc_test_stat(c, "evictions"), 2000);
    const char *out = mc_test_rt(c, "get key2999\r\n");
    ck_assert(strncmp(out, "VALUE key2999 0 ", 16) == 0);
    EXPECT(c, "get key0\r\n", "END\r\n");
    /* An item at the size limit still fits; one byte more does not. */
    size_t n = 16384;
    int h = sprintf(buf, "set max 0 0 %zu\r\n", n);
    memset(buf + h, 'm', n);
    memcpy(buf + h + n, "\r\n", 2);
    wharf_test_send(c, buf, (size_t)h + n + 2);
    ck_assert_str_eq(wharf_test_output(c, NULL), "STORED\r\n");
    EXPECT(c, "append max 0 0 1\r\nx\r\n", "NOT_STORED\r\n"); /* as memcached 1.6 */
    free(buf);
    wharf_test_free(t);
}
END_TEST

START_TEST(ten_thousand_key_get)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    mc_test_rt(c, "set key77 0 0 2\r\nhi\r\nset key9999 0 0 2\r\nyo\r\n");
    /* 10,000 keys of 200 bytes each (about 2 MB, past max_input), sent in
     * 64 KiB pieces. */
    size_t cap = 10000 * 210 + 16, len = 0;
    char *line = malloc(cap);
    len += (size_t)sprintf(line, "get");
    for (int i = 0; i < 10000; i++) {
        line[len++] = ' ';
        int k = sprintf(line + len, "key%d", i);
        if (i != 77 && i != 9999) { /* pad the misses to 200 bytes */
            memset(line + len + k, '_', 200 - (size_t)k);
            k = 200;
        }
        len += (size_t)k;
    }
    memcpy(line + len, "\r\n", 2);
    len += 2;
    for (size_t off = 0; off < len; off += 65536)
        wharf_test_send(c, line + off, len - off < 65536 ? len - off : 65536);
    ck_assert_str_eq(wharf_test_output(c, NULL),
                     "VALUE key77 0 2\r\nhi\r\nVALUE key9999 0 2\r\nyo\r\nEND\r\n");
    ck_assert(!wharf_test_closed(c, NULL));
    ck_assert_uint_eq(mc_test_stat(c, "cmd_get"), 10000);
    EXPECT(c, "get key77\r\n", "VALUE key77 0 2\r\nhi\r\nEND\r\n");
    free(line);
    wharf_test_free(t);
}
END_TEST

START_TEST(client_that_does_not_read)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    char *set = malloc(110000);
    int h = sprintf(set, "set big 0 0 100000\r\n");
    memset(set + h, 'b', 100000);
    memcpy(set + h + 100000, "\r\n", 2);
    wharf_test_send(c, set, (size_t)h + 100002);
    ck_assert_str_eq(wharf_test_output(c, NULL), "STORED\r\n");
    free(set);
    wharf_test_pause_reading(c, true);
    /* 200 gets of 100 KB (20 MB of answers, past max_output): the handler
     * stops taking them while output is pending, so the connection lives. */
    char gets[2000];
    for (int i = 0; i < 200; i++)
        memcpy(gets + i * 9, "get big\r\n", 9);
    wharf_test_send(c, gets, 1800);
    wharf_conn *wc = wharf_test_handle(c);
    ck_assert_ptr_nonnull(wc);
    ck_assert_uint_lt(wharf_output_pending(wc), 64 * 1024 + 100100);
    wharf_test_pause_reading(c, false);
    size_t total = 0;
    for (int i = 0; i < 2000 && total < 200 * 100025; i++) {
        size_t n;
        wharf_test_output(c, &n);
        total += n;
        wharf_test_run(t, 10);
    }
    ck_assert_uint_eq(total, 200 * (size_t)(20 + 100000 + 2 + 5));
    ck_assert(!wharf_test_closed(c, NULL));
    wharf_test_free(t);
}
END_TEST

START_TEST(close_in_the_middle_of_a_value)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    wharf_test_send(c, "set half 0 0 100\r\n0123456789", 28);
    wharf_test_close(c);
    c = wharf_test_connect(t);
    wharf_test_send(c, "get ha", 6); /* half a line, then EOF */
    wharf_test_shutdown(c);
    ck_assert(wharf_test_closed(c, NULL));
    c = wharf_test_connect(t);
    EXPECT(c, "get half\r\n", "END\r\n");
    ck_assert_uint_eq(mc_test_stat(c, "curr_connections"), 1);
    ck_assert_uint_eq(mc_test_stat(c, "total_connections"), 3);
    wharf_test_free(t);
}
END_TEST

START_TEST(stats_fields)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    mc_test_rt(c, "set a 0 0 1\r\nx\r\nget a b\r\ndelete b\r\n");
    const char *names[] = {"pid", "uptime", "time", "version", "curr_connections",
                           "total_connections", "curr_items", "total_items", "bytes",
                           "limit_maxbytes", "threads", "cmd_get", "cmd_set", "cmd_touch",
                           "get_hits", "get_misses", "delete_hits", "delete_misses",
                           "incr_hits", "incr_misses", "decr_hits", "decr_misses", "cas_hits",
                           "cas_misses", "cas_badval", "evictions", "expired_unfetched"};
    const char *out = mc_test_rt(c, "stats\r\n");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\r\nSTAT %s ", names[i]);
        ck_assert_msg(strstr(out, pat) || strncmp(out, pat + 2, strlen(pat) - 2) == 0,
                      "no %s", names[i]);
    }
    ck_assert(strstr(out, "END\r\n") == out + strlen(out) - 5);
    ck_assert_uint_eq(mc_test_stat(c, "limit_maxbytes"), 64u << 20);
    ck_assert_uint_eq(mc_test_stat(c, "get_hits"), 1);
    ck_assert_uint_eq(mc_test_stat(c, "get_misses"), 1);
    ck_assert_uint_eq(mc_test_stat(c, "delete_misses"), 1);
    EXPECT(c, "stats reset\r\n", "RESET\r\n");
    ck_assert_uint_eq(mc_test_stat(c, "get_hits"), 0);
    ck_assert_uint_eq(mc_test_stat(c, "curr_items"), 1);
    wharf_test_free(t);
}
END_TEST

START_TEST(options_refused)
{
    char err[512];
    ck_assert_ptr_null(wharf_test_new(&wharf_handler, "\"options\": {\"nope\": 1}", err, sizeof err));
    ck_assert_ptr_null(wharf_test_new(&wharf_handler, "\"options\": {\"memory_limit\": 10}", err,
                                      sizeof err));
    ck_assert_msg(strstr(err, "memory_limit"), "%s", err);
    ck_assert_ptr_null(wharf_test_new(&wharf_handler,
                                      "\"options\": {\"memory_limit\": 100000, "
                                      "\"item_size_max\": 200000}",
                                      err, sizeof err));
    ck_assert_msg(strstr(err, "item_size_max"), "%s", err);
}
END_TEST

/* ---- the store under threads ---- */

#define STORE_LIMIT (512u * 1024u)
static struct mc_store *shared_store;

static void *hammer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char key[32], val[4096];
    memset(val, '7', sizeof val);
    for (int i = 0; i < 20000; i++) {
        int k = snprintf(key, sizeof key, "k%u", rand_r(&seed) % 2000);
        switch (rand_r(&seed) % 6) {
        case 0:
        case 1:
            mc_store_store(shared_store, MC_SET, key, (size_t)k, 0, 0, val,
                           (size_t)(rand_r(&seed) % sizeof val), 0, 1000);
            break;
        case 2:
            mc_store_store(shared_store, MC_APPEND, key, (size_t)k, 0, 0, "1", 1, 0, 1000);
            break;
        case 3: {
            uint64_t v;
            mc_store_delta(shared_store, key, (size_t)k, true, 1, 1000, &v);
            break;
        }
        case 4:
            mc_store_delete(shared_store, key, (size_t)k, 1000);
            break;
        default:
            mc_store_get(shared_store, key, (size_t)k, 1000, false, 0, NULL, NULL);
        }
    }
    return NULL;
}

START_TEST(store_under_threads)
{
    shared_store = mc_store_new(STORE_LIMIT, 4096);
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, (void *)(i + 1));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct mc_store_stats st;
    mc_store_stats(shared_store, &st);
    ck_assert_uint_le(st.bytes, STORE_LIMIT);
    ck_assert_uint_gt(st.curr_items, 0);
    ck_assert_uint_gt(st.evictions, 0);
    mc_store_free(shared_store);
}
END_TEST


/* ---- across reloads (real sockets) ------------------------------------------ */

#define RELOAD_KEYS 10000
#define RELOAD_VALUE 2000

static void value_of(int i, char *v)
{
    for (int k = 0; k < RELOAD_VALUE; k++)
        v[k] = (char)('a' + (i + k) % 26);
}

/* Reads until the reply ends with `end`; returns the bytes read into buf. */
static size_t read_until(int fd, char *buf, size_t cap, const char *end)
{
    size_t n = 0, elen = strlen(end);
    while (n < elen || memcmp(buf + n - elen, end, elen) != 0) {
        ck_assert_uint_lt(n, cap);
        ssize_t r = read(fd, buf + n, cap - n);
        ck_assert_msg(r > 0, "connection ended after %zu bytes", n);
        n += (size_t)r;
    }
    return n;
}

/* Sets keys [0, n) with their values, 100 per round trip. */
static void mc_fill(int fd, int n)
{
    static char cmd[100 * (RELOAD_VALUE + 64)], reply[100 * 8 + 64];
    char v[RELOAD_VALUE];
    for (int i = 0; i < n; i += 100) {
        size_t len = 0;
        for (int k = i; k < i + 100 && k < n; k++) {
            value_of(k, v);
            len += (size_t)sprintf(cmd + len, "set key%d 0 0 %d\r\n", k, RELOAD_VALUE);
            memcpy(cmd + len, v, RELOAD_VALUE);
            len += RELOAD_VALUE;
            memcpy(cmd + len, "\r\n", 2);
            len += 2;
        }
        len += (size_t)sprintf(cmd + len, "version\r\n");
        send_all(fd, cmd, len);
        size_t got = read_until(fd, reply, sizeof reply - 1, "-wharf\r\n");
        reply[got] = '\0';
        ck_assert_msg(strstr(reply, "STORED") && !strstr(reply, "ERROR"), "%s", reply);
    }
}

/* How many of keys [0, n) are hits with the right value, 100 per get. */
static int mc_hits(int fd, int n)
{
    static char cmd[100 * 16], reply[100 * (RELOAD_VALUE + 64)];
    char v[RELOAD_VALUE];
    int hits = 0;
    for (int i = 0; i < n; i += 100) {
        size_t len = (size_t)sprintf(cmd, "get");
        for (int k = i; k < i + 100 && k < n; k++)
            len += (size_t)sprintf(cmd + len, " key%d", k);
        len += (size_t)sprintf(cmd + len, "\r\n");
        send_all(fd, cmd, len);
        size_t got = read_until(fd, reply, sizeof reply - 1, "END\r\n");
        reply[got] = '\0';
        for (char *p = reply; (p = strstr(p, "VALUE key")) != NULL;) {
            int k, bytes;
            ck_assert_int_eq(sscanf(p, "VALUE key%d 0 %d", &k, &bytes), 2);
            ck_assert_int_eq(bytes, RELOAD_VALUE);
            p = strstr(p, "\r\n") + 2;
            value_of(k, v);
            ck_assert(memcmp(p, v, RELOAD_VALUE) == 0);
            p += RELOAD_VALUE + 2;
            hits++;
        }
    }
    return hits;
}

/* The value of "STAT name" from `stats` or `stats settings` (args). */
static unsigned long long mc_stat(int fd, const char *args, const char *name)
{
    static char reply[16384];
    char cmd[64];
    int len = snprintf(cmd, sizeof cmd, "stats%s\r\n", args);
    send_all(fd, cmd, (size_t)len);
    size_t got = read_until(fd, reply, sizeof reply - 1, "END\r\n");
    reply[got] = '\0';
    char pat[128];
    snprintf(pat, sizeof pat, "STAT %s ", name);
    const char *p = strstr(reply, pat);
    ck_assert_msg(p != NULL, "no %s in %s", name, reply);
    return strtoull(p + strlen(pat), NULL, 10);
}

#define MC_JSON(limit) \
    "{\"workers\": 4, \"listeners\": [{\"name\": \"mc\", \"port\": 0, " \
    "\"handler\": \"memcache\", \"timeouts\": {\"idle_ms\": 0}, " \
    "\"buffers\": {\"max_input\": 2097152}, \"options\": {\"memory_limit\": " limit "}}]}"

static wharf_server *mc_server(const char *json)
{
    char err[1024];
    wharf_config *cfg = NULL;
    ck_assert_msg(wharf_config_from_json(json, "mc.json", &cfg, err, sizeof err) == 0, "%s", err);
    wharf_server *srv = wharf_server_new();
    ck_assert_int_eq(wharf_server_add_handler(srv, &wharf_handler), 0);
    ck_assert_msg(wharf_server_start(srv, cfg, err, sizeof err) == 0, "%s", err);
    wharf_config_free(cfg);
    return srv;
}

static void mc_reload(wharf_server *srv, const char *json)
{
    char err[1024];
    wharf_config *cfg = NULL;
    ck_assert_msg(wharf_config_from_json(json, "mc.json", &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(wharf_server_reload(srv, cfg, err, sizeof err) == 0, "%s", err);
    wharf_config_free(cfg);
}

/* ---- values sent by reference (mc_store_get_ref, wharf_send_ref) ---- */

/* A referenced item stays whole while the key is replaced, incremented
 * and deleted; the new values are seen by the store meanwhile. */
START_TEST(referenced_item_is_never_changed)
{
    struct mc_store *s = mc_store_new(1 << 20, 1 << 20);
    ck_assert_int_eq(mc_store_store(s, MC_SET, "n", 1, 0, 0, "10", 2, 0, 1), MC_STORED);
    struct mc_item *a = mc_store_get_ref(s, "n", 1, 1, false, 0, NULL);
    ck_assert_ptr_nonnull(a);
    uint64_t v;
    ck_assert_int_eq(mc_store_delta(s, "n", 1, true, 5, 1, &v), MC_FOUND); /* not in place */
    ck_assert_uint_eq(v, 15);
    ck_assert_int_eq(memcmp(mc_item_value(a), "10\r\n", 4), 0);
    struct mc_item *b = mc_store_get_ref(s, "n", 1, 1, false, 0, NULL);
    ck_assert_int_eq(memcmp(mc_item_value(b), "15\r\n", 4), 0);
    mc_item_release(b);
    ck_assert_int_eq(mc_store_store(s, MC_SET, "n", 1, 0, 0, "xyz", 3, 0, 1), MC_STORED);
    ck_assert_int_eq(mc_store_delete(s, "n", 1, 1), MC_FOUND);
    ck_assert_int_eq(memcmp(mc_item_value(a), "10\r\n", 4), 0);
    mc_item_release(a); /* the last reference: freed (ASan, valgrind) */
    /* Unshared again: incr in place, as memcached (padded). */
    ck_assert_int_eq(mc_store_store(s, MC_SET, "m", 1, 0, 0, "99", 2, 0, 1), MC_STORED);
    ck_assert_int_eq(mc_store_delta(s, "m", 1, false, 90, 1, &v), MC_FOUND);
    b = mc_store_get_ref(s, "m", 1, 1, false, 0, NULL);
    ck_assert_int_eq(memcmp(mc_item_value(b), "9 \r\n", 4), 0);
    mc_item_release(b);
    mc_store_free(s);
}
END_TEST

/* An unlinked item still referenced counts against the limit until its
 * last release: memory stays bounded by memory_limit. */
START_TEST(referenced_item_counts_until_released)
{
    size_t cost = mc_item_cost(1, 1000);
    struct mc_store *s = mc_store_new(3 * cost, 1 << 20);
    char v[1000];
    memset(v, 'v', sizeof v);
    ck_assert_int_eq(mc_store_store(s, MC_SET, "a", 1, 0, 0, v, 1000, 0, 1), MC_STORED);
    ck_assert_int_eq(mc_store_store(s, MC_SET, "b", 1, 0, 0, v, 1000, 0, 1), MC_STORED);
    struct mc_item *a = mc_store_get_ref(s, "a", 1, 1, false, 0, NULL);
    ck_assert_int_eq(mc_store_delete(s, "a", 1, 1), MC_FOUND);
    /* a still holds its bytes: c fits, d must evict b. */
    ck_assert_int_eq(mc_store_store(s, MC_SET, "c", 1, 0, 0, v, 1000, 0, 1), MC_STORED);
    ck_assert_int_eq(mc_store_store(s, MC_SET, "d", 1, 0, 0, v, 1000, 0, 1), MC_STORED);
    int live = 0;
    for (const char *k = "bcd"; *k; k++)
        live += mc_store_get(s, k, 1, 1, false, 0, NULL, NULL) == MC_FOUND;
    ck_assert_int_eq(live, 2);
    struct mc_store_stats st;
    mc_store_stats(s, &st);
    ck_assert_uint_eq(st.evictions, 1);
    mc_item_release(a);
    /* Its bytes are back: e fits with c and d, nothing evicted. */
    ck_assert_int_eq(mc_store_store(s, MC_SET, "e", 1, 0, 0, v, 1000, 0, 1), MC_STORED);
    mc_store_stats(s, &st);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert_uint_eq(st.curr_items, 3); /* two of b, c, d, and e */
    mc_store_free(s);
}
END_TEST

/* A large value goes out by reference: pinned while the client does not
 * read, byte-exact after the key was deleted meanwhile, released after. */
START_TEST(large_value_sent_by_reference)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t), *other = wharf_test_connect(t);
    size_t n = 900000; /* past what the socket pair holds */
    char *set = malloc(n + 64);
    int h = sprintf(set, "set big 7 0 %zu\r\n", n);
    for (size_t i = 0; i < n; i++)
        set[h + i] = (char)('A' + i % 26);
    memcpy(set + h + n, "\r\n", 2);
    wharf_test_send(c, set, (size_t)h + n + 2);
    ck_assert_str_eq(wharf_test_output(c, NULL), "STORED\r\n");
    wharf_test_pause_reading(c, true);
    /* Two gets (and a small value copied between them) while not reading. */
    EXPECT(other, "set s 0 0 1\r\nx\r\n", "STORED\r\n");
    const char *gets = "get big\r\nget s\r\ngets big s\r\n";
    wharf_test_send(c, gets, strlen(gets));
    ck_assert_uint_ge(wharf_test_refs_pending(c), 1);
    EXPECT(other, "delete big\r\n", "DELETED\r\n");
    EXPECT(other, "get big\r\n", "END\r\n");
    wharf_test_pause_reading(c, false);
    char *all = malloc(3 * n + 1000);
    size_t got = 0;
    for (int i = 0; i < 2000 && got < 2 * n + 100; i++) {
        size_t k;
        const char *o = wharf_test_output(c, &k);
        memcpy(all + got, o, k);
        got += k;
        wharf_test_run(t, 10);
    }
    size_t k;
    const char *o = wharf_test_output(c, &k);
    memcpy(all + got, o, k);
    got += k;
    /* Expected: VALUE big ... END, VALUE s ... END, VALUE s (cas) END. */
    char *exp = malloc(3 * n + 1000);
    size_t e = 0;
    e += (size_t)sprintf(exp + e, "VALUE big 7 %zu\r\n", n);
    memcpy(exp + e, set + h, n + 2), e += n + 2;
    e += (size_t)sprintf(exp + e, "END\r\nVALUE s 0 1\r\nx\r\nEND\r\n");
    ck_assert_uint_gt(got, e);
    ck_assert_int_eq(memcmp(all, exp, e), 0);
    /* The third command was held back while output was pending: by then
     * big is deleted. */
    ck_assert_int_eq(memcmp(all + e, "VALUE s 0 1 ", 12), 0);
    ck_assert_int_eq(memcmp(all + got - 8, "x\r\nEND\r\n", 8), 0);
    ck_assert_uint_eq(wharf_test_refs_pending(c), 0);
    free(all), free(exp), free(set);
    wharf_test_free(t);
}
END_TEST

/* A client that leaves with referenced values pending gives them back. */
START_TEST(referenced_values_released_on_close)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t), *other = wharf_test_connect(t);
    size_t n = 200000;
    char *set = malloc(n + 64);
    int h = sprintf(set, "set big 0 0 %zu\r\n", n);
    memset(set + h, 'q', n);
    memcpy(set + h + n, "\r\n", 2);
    wharf_test_send(other, set, (size_t)h + n + 2);
    ck_assert_str_eq(wharf_test_output(other, NULL), "STORED\r\n");
    free(set);
    wharf_test_pause_reading(c, true);
    wharf_test_send(c, "get big big big\r\n", 17);
    ck_assert_uint_ge(wharf_test_refs_pending(c), 1);
    wharf_test_close(c);
    wharf_test_run(t, 10);
    ck_assert(wharf_test_closed(c, NULL));
    /* The item, deleted now, is freed by the teardown's releases: the
     * memory is back (a set of the same size needs no eviction). */
    EXPECT(other, "delete big\r\n", "DELETED\r\n");
    ck_assert_uint_eq(mc_test_stat(other, "evictions"), 0);
    wharf_test_free(t); /* ASan / valgrind: nothing leaked */
}
END_TEST

START_TEST(cache_kept_across_reload)
{
    size_t rss0 = test_rss_bytes();
    wharf_server *srv = mc_server(MC_JSON("268435456"));
    int old = tcp_connect("127.0.0.1", wharf_server_port(srv, "mc"));
    mc_fill(old, RELOAD_KEYS);
    size_t grown = test_rss_bytes() - rss0;
    mc_reload(srv, MC_JSON("268435456"));
    int fresh = tcp_connect("127.0.0.1", wharf_server_port(srv, "mc"));
    ck_assert_int_eq(mc_hits(fresh, RELOAD_KEYS), RELOAD_KEYS);
    ck_assert_int_eq(mc_hits(old, RELOAD_KEYS), RELOAD_KEYS);
    ck_assert_uint_eq(mc_stat(fresh, "", "curr_items"), RELOAD_KEYS);
    /* The new generation's sets land in the same cache: memory does not
     * double (with a cache per generation it would). */
    mc_fill(fresh, RELOAD_KEYS);
    ck_assert_uint_eq(mc_stat(old, "", "curr_items"), RELOAD_KEYS);
    size_t after = test_rss_bytes() - rss0;
    /* (Valgrind and ASan keep freed blocks in quarantine: the old values
     * count in their RSS, so the bound holds for a plain build only.) */
    if (strcmp(test_build_kind(), "plain") == 0)
        ck_assert_msg(after < grown + grown / 2, "RSS grew from %zu to %zu", grown, after);
    /* A larger limit keeps everything, from both generations' connections. */
    mc_reload(srv, MC_JSON("536870912"));
    ck_assert_uint_eq(mc_stat(old, " settings", "maxbytes"), 536870912u);
    int third = tcp_connect("127.0.0.1", wharf_server_port(srv, "mc"));
    ck_assert_int_eq(mc_hits(third, RELOAD_KEYS), RELOAD_KEYS);
    close(old);
    close(fresh);
    close(third);
    wharf_server_free(srv);
}
END_TEST

START_TEST(reload_lowers_memory_limit_of_the_same_cache)
{
    wharf_server *srv = mc_server(MC_JSON("268435456"));
    int old = tcp_connect("127.0.0.1", wharf_server_port(srv, "mc"));
    mc_fill(old, RELOAD_KEYS);
    /* 8 MiB holds about a third of the 10,000 values: the least recently
     * used go, at once, in the cache both generations use. */
    mc_reload(srv, MC_JSON("8388608"));
    int fresh = tcp_connect("127.0.0.1", wharf_server_port(srv, "mc"));
    ck_assert_uint_eq(mc_stat(fresh, " settings", "maxbytes"), 8388608u);
    ck_assert_uint_eq(mc_stat(old, " settings", "maxbytes"), 8388608u);
    ck_assert_uint_le(mc_stat(fresh, "", "bytes"), 8388608u);
    unsigned long long left = mc_stat(fresh, "", "curr_items");
    ck_assert_uint_gt(left, 1000);
    ck_assert_uint_lt(left, RELOAD_KEYS);
    ck_assert_uint_eq(mc_stat(fresh, "", "evictions"), RELOAD_KEYS - left);
    ck_assert_int_eq(mc_hits(fresh, RELOAD_KEYS), (int)left);
    ck_assert_int_eq(mc_hits(old, RELOAD_KEYS), (int)left);
    /* The most recently set are the ones kept. */
    ck_assert_int_eq(mc_hits(fresh, 1), 0);
    close(old);
    close(fresh);
    wharf_server_free(srv);
}
END_TEST

/* wharfd itself: SIGHUP with the config file rewritten. */
static void write_config(const char *path, const char *limit)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\"workers\": 2, \"listeners\": [{\"name\": \"mc\", \"address\": \"127.0.0.1\", "
               "\"port\": 0, \"handler\": \"memcache\", \"timeouts\": {\"idle_ms\": 0}, "
               "\"buffers\": {\"max_input\": 2097152}, \"options\": {\"memory_limit\": %s}}]}\n",
            limit);
    fclose(f);
}

/* Waits (bounded) for `what` in the log; returns the line or NULL. */
static char *log_wait(const char *log, const char *what, int timeout_ms)
{
    static char line[4096];
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    do {
        FILE *f = fopen(log, "r");
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, what)) {
                fclose(f);
                return line;
            }
        if (f)
            fclose(f);
        usleep(20000);
    } while (now_ms() < end);
    return NULL;
}

static int count_in_log(const char *log, const char *what)
{
    char line[4096];
    int n = 0;
    FILE *f = fopen(log, "r");
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, what) != NULL;
    if (f)
        fclose(f);
    return n;
}

START_TEST(wharfd_sighup_keeps_the_cache)
{
    const char *build = getenv("WHARF_BUILDDIR");
    char dir[] = "/tmp/wharf-mc-XXXXXX", cfg[256], log[256], wharfd[4096];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cfg, sizeof cfg, "%s/mc.json", dir);
    snprintf(log, sizeof log, "%s/wharfd.log", dir);
    snprintf(wharfd, sizeof wharfd, "%s/wharfd", build ? build : ".");
    write_config(cfg, "268435456");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execl(wharfd, wharfd, "-c", cfg, (char *)NULL);
        _exit(127);
    }
    char *line = log_wait(log, "started:", 10000);
    ck_assert_msg(line != NULL, "wharfd did not start");
    line = log_wait(log, "listening on tcp 127.0.0.1:", 1000);
    ck_assert_ptr_nonnull(line);
    int port = atoi(strstr(line, "127.0.0.1:") + strlen("127.0.0.1:"));
    int old = tcp_connect("127.0.0.1", port);
    mc_fill(old, RELOAD_KEYS);
    /* Same settings, then a lower memory_limit. */
    kill(pid, SIGHUP);
    ck_assert_ptr_nonnull(log_wait(log, "reloaded:", 10000));
    int fresh = tcp_connect("127.0.0.1", port);
    ck_assert_int_eq(mc_hits(fresh, RELOAD_KEYS), RELOAD_KEYS);
    ck_assert_int_eq(mc_hits(old, RELOAD_KEYS), RELOAD_KEYS);
    write_config(cfg, "8388608");
    kill(pid, SIGHUP);
    for (int i = 0; i < 500 && count_in_log(log, "reloaded:") < 2; i++)
        usleep(20000);
    ck_assert_int_eq(count_in_log(log, "reloaded:"), 2);
    int third = tcp_connect("127.0.0.1", port);
    ck_assert_uint_eq(mc_stat(third, " settings", "maxbytes"), 8388608u);
    unsigned long long left = mc_stat(third, "", "curr_items");
    ck_assert_uint_gt(left, 1000);
    ck_assert_uint_lt(left, RELOAD_KEYS);
    ck_assert_int_eq(mc_hits(third, RELOAD_KEYS), (int)left);
    ck_assert_int_eq(mc_hits(fresh, RELOAD_KEYS), (int)left);
    ck_assert_int_eq(mc_hits(old, RELOAD_KEYS), (int)left);
    close(old);
    close(fresh);
    close(third);
    kill(pid, SIGTERM);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wharfd status %d", status);
    unlink(cfg);
    unlink(log);
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("memcache");
    TCase *tc = tcase_create("protocol");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, storage_commands);
    tcase_add_test(tc, every_split);
    tcase_add_test(tc, errors_as_memcached);
    tcase_add_test(tc, kit_free_with_a_partial_command);
    tcase_add_test(tc, incr_decr);
    tcase_add_test(tc, expiry);
    tcase_add_test(tc, reclaim_timer);
    tcase_add_test(tc, memory_limit_holds);
    tcase_add_test(tc, ten_thousand_key_get);
    tcase_add_test(tc, client_that_does_not_read);
    tcase_add_test(tc, close_in_the_middle_of_a_value);
    tcase_add_test(tc, stats_fields);
    tcase_add_test(tc, options_refused);
    tcase_add_test(tc, store_under_threads);
    tcase_add_test(tc, referenced_item_is_never_changed);
    tcase_add_test(tc, referenced_item_counts_until_released);
    tcase_add_test(tc, large_value_sent_by_reference);
    tcase_add_test(tc, referenced_values_released_on_close);
    suite_add_tcase(s, tc);
    TCase *rl = tcase_create("reload");
    tcase_set_timeout(rl, 120);
    tcase_add_test(rl, cache_kept_across_reload);
    tcase_add_test(rl, reload_lowers_memory_limit_of_the_same_cache);
    tcase_add_test(rl, wharfd_sighup_keeps_the_cache);
    suite_add_tcase(s, rl);
    return check_run(s);
}
