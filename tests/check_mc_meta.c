/*
 * check_mc_meta.c - the memcache handler's meta commands (mc_meta.c, with
 * the rest of handlers/memcache/ compiled into this program) driven by the
 * test kit, without a network: every flag of mg, ms, md, ma, mn and me byte
 * for byte (the answers are memcached 1.6.18's, as
 * check_mc_meta_exchange.sh shows against the real one), quiet mode, base64
 * keys, stale-while-revalidate, every error, the counters meta commands
 * bump, an ms data block framed and a refused one swallowed, and a
 * pipelined quiet burst ending in mn split at every byte.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../handlers/memcache/mc_store.h"
#include "check_main.h"
#include "mc_testutil.h"
#include "wharf_test.h"

START_TEST(mg_and_ms_flags)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "mn\r\nmn extra\r\n", "MN\r\nMN\r\n");
    EXPECT(c, "ms foo 2\r\nhi\r\n", "HD\r\n");
    EXPECT(c, "mg foo\r\nmg foo v\r\nmg foo s v\r\n", "HD\r\nVA 2\r\nhi\r\nVA 2 s2\r\nhi\r\n");
    /* (one offer: the same second for the store and the l0) */
    EXPECT(c, "ms bar 3 c k O1 F5 T0\r\nabc\r\nmg bar f s t v c k Oxyz h l q u\r\n",
           "HD c2 kbar O1\r\nVA 3 f5 s3 t-1 c2 kbar Oxyz h0 l0\r\nabc\r\n");
    EXPECT(c, "mg bar h\r\nmg bar h l\r\n", "HD h0\r\nHD h1 l0\r\n");
    EXPECT(c, "mg foo Lpath/ Pabc v\r\n", "VA 2\r\nhi\r\n");
    EXPECT(c, "mg nope\r\nmg nope v k O7 s t c f\r\nmg nope q\r\n", "EN\r\nEN knope O7\r\n");
    /* TTLs: T sets it (and counts as a touch), in the flags' order. */
    EXPECT(c, "ms t1 1 T100\r\nx\r\nmg t1 t\r\nmg t1 T50 t\r\n", "HD\r\nHD t100\r\nHD t50\r\n");
    EXPECT(c, "mg t1 T0 t\r\nms t1 1 T-1\r\nx\r\nmg t1 v\r\n", "HD t-1\r\nHD\r\nEN\r\n");
    /* u: no fetch mark; F is 32 bits, read as memcached reads it */
    EXPECT(c, "ms uh 1\r\nx\r\nmg uh u h\r\nmg uh h\r\nmg uh h\r\n",
           "HD\r\nHD h0\r\nHD h0\r\nHD h1\r\n");
    EXPECT(c, "ms fl 1 F4294967296\r\nx\r\nmg fl f\r\nms fl 1 F+7\r\nx\r\nmg fl f\r\n",
           "HD\r\nHD f0\r\nHD\r\nHD f7\r\n");
    EXPECT(c, "ms fl 1 F-1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\n");
    /* mixed with the ASCII commands */
    EXPECT(c, "set cl 0 0 2\r\nab\r\nmg cl v f\r\nms cl 2 F9\r\ncd\r\nget cl\r\n",
           "STORED\r\nVA 2 f0\r\nab\r\nHD\r\nVALUE cl 9 2\r\ncd\r\nEND\r\n");
    wharf_test_free(t);
}
END_TEST

START_TEST(ms_modes_and_cas)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "ms m1 1 ME\r\na\r\nms m1 1 ME\r\nb\r\nmg m1 v\r\n", "HD\r\nNS\r\nVA 1\r\na\r\n");
    EXPECT(c, "ms m2 2 MA\r\nzz\r\nms m2 1 F3\r\nb\r\nms m2 1 MA\r\nc\r\nms m2 1 MP\r\na\r\n"
              "mg m2 v f\r\n", "NS\r\nHD\r\nHD\r\nHD\r\nVA 3 f3\r\nabc\r\n");
    EXPECT(c, "ms m3 1 MR\r\nx\r\nms m3 1 MS c\r\ny\r\nms m3 1 MR c\r\nz\r\n",
           "NS\r\nHD c5\r\nHD c6\r\n");
    EXPECT(c, "ms m4 1 MX\r\nx\r\nms m4 1 MEE\r\nx\r\nmg m4\r\n",
           "CLIENT_ERROR invalid mode for ms M token\r\n"
           "CLIENT_ERROR incorrect length for M token\r\nEN\r\n");
    /* C: set/replace become cas; append/prepend check it; add ignores it */
    EXPECT(c, "ms c1 1 c\r\na\r\nms c1 1 C7 c\r\nb\r\nms c1 1 C999 c\r\nb\r\n",
           "HD c7\r\nHD c8\r\nEX c0\r\n");
    EXPECT(c, "ms c9 1 C5\r\nb\r\nms c1 1 C0\r\nb\r\nms c1 1 MA C1\r\nx\r\n"
              "ms c1 1 ME C1\r\nx\r\nms c9 1 MR C1\r\nx\r\nmg c1 v c\r\n",
           "NF\r\nEX\r\nEX\r\nNS\r\nNF\r\nVA 1 c8\r\nb\r\n");
    EXPECT(c, "ms c1 1 MA C8 c\r\n!\r\n", "HD c9\r\n");
    ck_assert_uint_eq(mc_test_stat(c, "cas_hits"), 1);
    ck_assert_uint_eq(mc_test_stat(c, "cas_badval"), 2);
    ck_assert_uint_eq(mc_test_stat(c, "cas_misses"), 2);
    /* E (memcached 1.6.24): the client picks the new cas */
    EXPECT(c, "ms e1 1 E500 c\r\na\r\nmg e1 c\r\nms e1 1 C500 E600 c\r\nb\r\n",
           "HD c500\r\nHD c500\r\nHD c600\r\n");
    EXPECT(c, "md e1 I E700\r\nmg e1 c\r\nma e2 N0 E800 c\r\nma e2 E900 c\r\n",
           "HD\r\nHD c700 X W\r\nHD c800\r\nHD c900\r\n");
    EXPECT(c, "mg e3 N0 E1000 c\r\nms e1 1 Ex\r\nx\r\n",
           "HD c1000 W\r\nCLIENT_ERROR bad token in command line format\r\n");
    wharf_test_free(t);
}
END_TEST

START_TEST(stale_while_revalidate)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    /* md I: stale, a new cas, T applies; the first reader wins (W). */
    EXPECT(c, "ms s1 3 T100\r\nold\r\nmd s1 I T30\r\nmg s1 v c t\r\n",
           "HD\r\nHD\r\nVA 3 c2 t30 X W\r\nold\r\n");
    EXPECT(c, "mg s1 v c\r\nmd s1 I q\r\nmg s1 c\r\n", "VA 3 c2 Z X\r\nold\r\nHD c3 X W\r\n");
    /* ms I with an older cas stores the value, still stale; a newer one fails */
    EXPECT(c, "ms s2 1 c\r\na\r\nmd s2 I\r\nmg s2 c\r\n", "HD c4\r\nHD\r\nHD c5 X W\r\n");
    EXPECT(c, "ms s2 3 I C4 c\r\nnew\r\nmg s2 v c\r\n", "HD c6\r\nVA 3 c6 Z X\r\nnew\r\n");
    EXPECT(c, "ms s2 1 I C999\r\nz\r\nms s2 1 I\r\nz\r\nmg s2 v c\r\n",
           "EX\r\nHD\r\nVA 1 c7\r\nz\r\n");
    /* N: vivify on a miss (W once, then Z); a real set clears it */
    EXPECT(c, "mg v1 N30 s t v c\r\nmg v1 N30 s t v c\r\nmg v1 v h\r\n",
           "VA 0 s0 t30 c8 W\r\n\r\nVA 0 s0 t30 c8 Z\r\n\r\nVA 0 h1 Z\r\n\r\n");
    EXPECT(c, "ms v1 3\r\nnew\r\nmg v1 N30 v\r\nmg v2 N0 t q\r\n",
           "HD\r\nVA 3\r\nnew\r\nHD t-1 W\r\n");
    /* R: a TTL below the token wins, once */
    EXPECT(c, "ms r1 1 T10\r\nx\r\nmg r1 R30 v\r\nmg r1 R30 v\r\nmg r1 R5\r\n",
           "HD\r\nVA 1 W\r\nx\r\nVA 1 Z\r\nx\r\nHD Z\r\n");
    EXPECT(c, "ms r2 1 T100\r\nx\r\nmg r2 R30\r\nms r3 1\r\nx\r\nmg r3 R30\r\nmg r3 R0\r\n",
           "HD\r\nHD\r\nHD\r\nHD\r\nHD\r\n");
    wharf_test_free(t);
}
END_TEST

START_TEST(md_and_ma)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "ms d1 1\r\nx\r\nmd d1\r\nmd d1\r\nmd d1 q\r\nms d1 1\r\nx\r\nmd d1 q\r\nmg d1\r\n",
           "HD\r\nHD\r\nNF\r\nNF\r\nHD\r\nEN\r\n");
    EXPECT(c, "ms d2 1 c\r\nx\r\nmd d2 C1 O5 k\r\nmd d2 T30\r\nmg d2\r\nmd d3 O1 k q\r\n",
           "HD c3\r\nEX O5 kd2\r\nHD\r\nEN\r\nNF O1 kd3\r\n");
    ck_assert_uint_eq(mc_test_stat(c, "delete_hits"), 3);
    ck_assert_uint_eq(mc_test_stat(c, "delete_misses"), 4);
    EXPECT(c, "md d1 v\r\nmd d1 q q\r\nmd d1 O123456789012345678901234567890123\r\n",
           "NF\r\nCLIENT_ERROR invalid or duplicate flag\r\n"
           "CLIENT_ERROR opaque token too long\r\n");
    EXPECT(c, "ma n1\r\nma n1 q\r\nma n1 N0 J10 v\r\nma n1 v\r\nma n1 MD D5 v\r\n",
           "NF\r\nNF\r\nVA 2\r\n10\r\nVA 2\r\n11\r\nVA 1\r\n6\r\n");
    EXPECT(c, "ma n1 M- D100 v\r\nma n1 M+ v t c\r\nma n1 MI D18446744073709551615 v\r\n",
           "VA 1\r\n0\r\nVA 1 t-1 c8\r\n1\r\nVA 1\r\n0\r\n");
    EXPECT(c, "ma n1 q\r\nma n1 q v\r\nma n1 O9 k\r\nma nx O9 k\r\n", "HD O9 kn1\r\nNF O9 knx\r\n");
    ck_assert_uint_eq(mc_test_stat(c, "incr_hits"), 6);
    ck_assert_uint_eq(mc_test_stat(c, "decr_hits"), 2);
    ck_assert_uint_eq(mc_test_stat(c, "incr_misses"), 3);
    /* a longer number replaces the item; C and T; a vivified item's TTL */
    EXPECT(c, "ms n2 2\r\n99\r\nma n2 v c\r\nmg n2 v s\r\n", "HD\r\nVA 3 c14\r\n100\r\nVA 3 s3\r\n100\r\n");
    EXPECT(c, "ms n3 1\r\n5\r\nma n3 C1 v\r\nma n3 C0 v\r\nma n3 t T30 v\r\n",
           "HD\r\nEX\r\nVA 1\r\n6\r\nVA 1 t-1\r\n7\r\n");
    const char *ttl = mc_test_rt(c, "ma n3 t v\r\n"); /* a second may have passed */
    ck_assert_msg(!strcmp(ttl, "VA 1 t30\r\n8\r\n") || !strcmp(ttl, "VA 1 t29\r\n8\r\n"), "%s",
                  ttl);
    /* vivified: its TTL comes from N (t, before it, sees none) */
    EXPECT(c, "ma n4 t N50 J7 c v\r\n", "VA 1 t-1 c19\r\n7\r\n");
    ttl = mc_test_rt(c, "ma n4 t\r\n");
    ck_assert_msg(!strcmp(ttl, "HD t50\r\n") || !strcmp(ttl, "HD t49\r\n"), "%s", ttl);
    EXPECT(c, "ms n5 3\r\nabc\r\nma n5 q\r\nms n6 0\r\n\r\nma n6\r\nma n5 C1 v\r\n",
           "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nHD\r\n"
           "CLIENT_ERROR cannot increment or decrement non-numeric value\r\nEX\r\n");
    EXPECT(c, "ma n1 Mx\r\nma n1 D-1\r\nma n1 Jx\r\nma n1 v v\r\n",
           "CLIENT_ERROR invalid mode for ma M token\r\nCLIENT_ERROR invalid or duplicate flag\r\n"
           "CLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\n");
    wharf_test_free(t);
}
END_TEST

START_TEST(base64_keys)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "ms Zm9v 2 b k c\r\nhi\r\nmg Zm9v b k v\r\nget foo\r\n",
           "HD kZm9v b c1\r\nVA 2 kZm9v b\r\nhi\r\nVALUE foo 0 2\r\nhi\r\nEND\r\n");
    /* a binary key (00 01 02) goes back in base64 */
    char want[256]; /* size= is what the item costs against memory_limit */
    snprintf(want, sizeof want,
             "EN kAAEC b\r\nHD kAAEC b\r\nVA 1 kAAEC b s1\r\n!\r\n"
             "ME AAEC exp=-1 la=0 cas=2 fetch=yes cls=0 size=%zu\r\n", mc_item_cost(3, 1));
    EXPECT(c, "mg AAEC b k v\r\nms AAEC 1 b k\r\n!\r\nmg AAEC b k v s\r\nme AAEC b\r\n", want);
    EXPECT(c, "md AAEC b k\r\nmg AAEC b k\r\nma AAEC b N0 k v\r\n",
           "HD kAAEC b\r\nEN kAAEC b\r\nVA 1 kAAEC b\r\n0\r\n");
    /* not base64: an error; characters outside the alphabet are skipped */
    EXPECT(c, "mg Zm9 b\r\nmg ==== b\r\nms Zm9 1 b\r\nx\r\nmd Zm9 b\r\nme Zm9 b\r\n",
           "CLIENT_ERROR error decoding key\r\nCLIENT_ERROR error decoding key\r\n"
           "CLIENT_ERROR error decoding key\r\nCLIENT_ERROR invalid or duplicate flag\r\n"
           "CLIENT_ERROR bad command line format\r\n");
    EXPECT(c, "mg Zm*9v b v\r\n", "VA 2\r\nhi\r\n");
    wharf_test_free(t);
}
END_TEST

START_TEST(errors)
{
    wharf_test *t = mc_test_new("\"item_size_max\": 1000");
    wharf_test_conn *c = wharf_test_connect(t);
    EXPECT(c, "mz foo\r\nm\r\nmg\r\nms\r\nme\r\n",
           "ERROR\r\nERROR\r\nERROR\r\nERROR\r\nCLIENT_ERROR bad command line format\r\n");
    char line[600];
    snprintf(line, sizeof line, "mg %0251d v\r\nms %0251d 1\r\nx\r\n", 0, 0);
    EXPECT(c, line, "CLIENT_ERROR bad command line format\r\n"
                    "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    snprintf(line, sizeof line, "mg %0250d v\r\n", 0);
    EXPECT(c, line, "EN\r\n");
    EXPECT(c, "mg foo v s c t f h l k q u Oa Pb Lc T1 N1 R1 b\r\n",
           "CLIENT_ERROR error decoding key\r\n");
    EXPECT(c, "mg foo v s c t f h l k q u Oa Pb Lc T1 N1 R1 b x\r\n",
           "CLIENT_ERROR options flags are too long\r\n");
    EXPECT(c, "md foo v s c t f h l k q u Oa Pb Lc T1 N1 R1 b x\r\n",
           "CLIENT_ERROR options flags too long\r\n");
    EXPECT(c, "mg foo v v\r\nmg foo !\r\nmg foo Tx\r\nmg foo Tx !\r\nmg foo Fx\r\nmg foo S\r\n",
           "CLIENT_ERROR duplicate flag\r\nCLIENT_ERROR invalid flag\r\n"
           "CLIENT_ERROR bad token in command line format\r\nCLIENT_ERROR invalid flag\r\n"
           "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR invalid flag\r\n");
    EXPECT(c, "mg nope O123456789012345678901234567890123\r\n"
              "ms o1 1 O123456789012345678901234567890123\r\nx\r\nmg o1\r\n",
           "CLIENT_ERROR opaque token too long\r\nCLIENT_ERROR opaque token too long\r\nEN\r\n");
    /* datalen: refused before it is read means its data is read as commands */
    EXPECT(c, "ms k abc\r\nx\r\nms k -1\r\nms k 1x\r\nx\r\n",
           "CLIENT_ERROR bad command line format\r\nERROR\r\n"
           "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n"
           "ERROR\r\n");
    /* a flag error after datalen swallows the data */
    EXPECT(c, "ms sw 3 !\r\nabc\r\nms sw 3 Tx\r\nabc\r\nmg sw v\r\n",
           "CLIENT_ERROR invalid flag\r\nCLIENT_ERROR bad token in command line format\r\nEN\r\n");
    /* bad data chunk: not stored, what follows is read as commands */
    EXPECT(c, "ms bc 2\r\nhiX\r\nmg bc v\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEN\r\n");
    /* too large: answered, the older value unlinked, the data swallowed */
    EXPECT(c, "ms big 1\r\nx\r\n", "HD\r\n");
    char big[2100];
    memset(big, 'y', sizeof big);
    memcpy(big, "ms big 2000 MA\r\n", 16);
    memcpy(big + 16 + 2000, "\r\nmg big v\r\n", 13);
    EXPECT(c, big, "SERVER_ERROR object too large for cache\r\nEN\r\n");
    ck_assert_uint_eq(mc_test_stat(c, "store_too_large"), 1);
    wharf_test_free(t);
}
END_TEST

START_TEST(me_line)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    size_t cost = mc_item_cost(1, 5); /* size= is what the item costs against memory_limit */
    char want[256], want99[256];
    snprintf(want, sizeof want, "EN\r\nHD\r\nME k exp=-1 la=0 cas=1 fetch=no cls=0 size=%zu\r\n",
             cost);
    EXPECT(c, "me nope\r\nms k 5 T0\r\nhello\r\nme k\r\n", want);
    const char *out = mc_test_rt(c, "ms k 5 T100\r\nhello\r\nmg k\r\nme k\r\n");
    snprintf(want, sizeof want, "HD\r\nHD\r\nME k exp=100 la=0 cas=2 fetch=yes cls=0 size=%zu\r\n",
             cost);
    snprintf(want99, sizeof want99,
             "HD\r\nHD\r\nME k exp=99 la=0 cas=2 fetch=yes cls=0 size=%zu\r\n", cost);
    ck_assert_msg(!strcmp(out, want) || !strcmp(out, want99), "%s", out);
    wharf_test_free(t);
}
END_TEST

START_TEST(counters)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    mc_test_rt(c, "ms a 1\r\nx\r\nms a 1\r\nxy\r\nmg a v\r\nmg b v\r\nmg a T10\r\nmg b T10 q\r\n");
    ck_assert_uint_eq(mc_test_stat(c, "cmd_set"), 2);
    ck_assert_uint_eq(mc_test_stat(c, "cmd_get"), 3);
    ck_assert_uint_eq(mc_test_stat(c, "get_hits"), 1);
    ck_assert_uint_eq(mc_test_stat(c, "get_misses"), 2);
    ck_assert_uint_eq(mc_test_stat(c, "cmd_touch"), 1);
    ck_assert_uint_eq(mc_test_stat(c, "touch_hits"), 1);
    wharf_test_free(t);
}
END_TEST

/* A pipelined quiet burst ending in mn, split at every byte. */
START_TEST(quiet_burst_every_split)
{
    wharf_test *t = mc_test_new(NULL);
    const char *in = "ms q1 1 q\r\na\r\nms q2 1 q O2 k\r\nb\r\nmg q1 q v k\r\nmg qx q v k\r\n"
                     "mg q2 q v O4\r\nmd qx q\r\nmd q1 q\r\nma qn q\r\nma qn q N0 J1\r\n"
                     "ma qn q\r\nmg qn q v\r\nms q2 1 q ME\r\nc\r\nmg q1 q\r\nmn\r\n";
    const char *want = "VA 1 kq1\r\na\r\nVA 1 O4\r\nb\r\nNF\r\nNF\r\nHD\r\nVA 1\r\n2\r\nNS\r\n"
                       "MN\r\n";
    size_t n = strlen(in);
    for (size_t split = 0; split <= n; split++) {
        wharf_test_conn *c = wharf_test_connect(t);
        mc_test_rt(c, "flush_all\r\n");
        wharf_test_send(c, in, split);
        wharf_test_send(c, in + split, n - split);
        ck_assert_msg(strcmp(wharf_test_output(c, NULL), want) == 0, "split %zu: %s", split,
                      wharf_test_output(c, NULL));
        wharf_test_close(c);
    }
    wharf_test_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mc_meta");
    TCase *tc = tcase_create("meta");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, mg_and_ms_flags);
    tcase_add_test(tc, ms_modes_and_cas);
    tcase_add_test(tc, stale_while_revalidate);
    tcase_add_test(tc, md_and_ma);
    tcase_add_test(tc, base64_keys);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, me_line);
    tcase_add_test(tc, counters);
    tcase_add_test(tc, quiet_burst_every_split);
    suite_add_tcase(s, tc);
    return check_run(s);
}
