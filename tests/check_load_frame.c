/* check_load_frame.c - unit tests of wharf-load's request templates (tools/wharf-load/tmpl.c)
 * and reply framing and checks (frame.c): placeholder expansion, key distributions, the
 * weighted mix, every framing kind with the reply split at every byte boundary, errors for
 * garbage and too-long replies, reply checks, and the messages for bad templates and
 * framing specs. Pure functions: no sockets. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "../tools/wharf-load/cache.h"
#include "../tools/wharf-load/frame.h"
#include "../tools/wharf-load/keys.h"
#include "../tools/wharf-load/series.h"
#include "../tools/wharf-load/tmpl.h"

/* ---- templates -------------------------------------------------------------------------------- */

static void parse_ok(struct tmpl *t, const char *text)
{
    uint8_t buf[512];
    char err[256];
    size_t n = tmpl_unescape(text, buf);

    memset(t, 0, sizeof(*t));
    ck_assert_msg(tmpl_parse(t, buf, n, err, sizeof(err)) == 0, "'%s': %s", text, err);
}

static void parse_bad(const char *text, const char *want)
{
    struct tmpl t;
    uint8_t buf[512];
    char err[256] = "";
    size_t n = tmpl_unescape(text, buf);

    memset(&t, 0, sizeof(t));
    ck_assert_int_eq(tmpl_parse(&t, buf, n, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, want), "'%s' gave '%s', wanted '%s'", text, err, want);
    tmpl_free(&t);
}

START_TEST(test_unescape)
{
    uint8_t out[64];
    size_t n = tmpl_unescape("a\\r\\n\\t\\\\\\x41\\0\\q\\x4", out);

    ck_assert_uint_eq(n, 12);
    ck_assert_int_eq(memcmp(out, "a\r\n\t\\A\0\\q\\x4", 12), 0);
}
END_TEST

START_TEST(test_expand_placeholders)
{
    struct tmpl_set s;
    uint8_t out[600];
    uint64_t rng = 42, kctx;
    size_t n;
    char str[600];
    unsigned long seq, conn, key, size;
    char rand[64];

    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(keys_init(&s.keys, 1000, KP_UNIFORM, 0, 0, "k:"), 0);
    ck_assert_uint_eq(s.keys.width, 3);
    parse_ok(&s.t[0], "x {seq} {conn} {key} {rand:5-9} {size} {{lit}\\r\\n");
    s.n = 1;
    tmpl_set_finish(&s);
    ck_assert_uint_ge(s.max_len, 40);
    n = tmpl_expand(&s, &s.t[0], out, 12345, 7, &rng, &kctx);
    ck_assert_uint_le(n, s.t[0].max_len);
    memcpy(str, out, n);
    str[n] = '\0';
    ck_assert_int_eq(sscanf(str, "x %lu %lu k:%lu %63s %lu {lit}\r\n", &seq, &conn, &key, rand, &size), 5);
    ck_assert_uint_eq(seq, 12345);
    ck_assert_uint_eq(conn, 7);
    ck_assert_uint_lt(key, 1000);
    ck_assert_uint_eq(strlen(rand), size);
    ck_assert_uint_ge(size, 5);
    ck_assert_uint_le(size, 9);
    ck_assert_int_eq(memcmp(str + n - 7, "{lit}\r\n", 7), 0);
    ck_assert_ptr_nonnull(strstr(str, "k:"));
    /* keys are zero-padded to the width of the key space */
    ck_assert_int_eq(str[strchr(str, ':') - str + 4] == ' ', 1);
    /* {ts} is a plausible wall-clock time */
    tmpl_free(&s.t[0]);
    parse_ok(&s.t[0], "{ts}");
    tmpl_set_finish(&s);
    n = tmpl_expand(&s, &s.t[0], out, 0, 0, &rng, &kctx);
    ck_assert_uint_eq(n, 19);
    ck_assert_int_eq(out[0], '1');
    tmpl_free(&s.t[0]);
}
END_TEST

START_TEST(test_rand_sizes_cover_range)
{
    struct tmpl_set s;
    uint8_t out[200];
    uint64_t rng = 9, kctx;
    int seen[4] = {0}, i;

    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(keys_init(&s.keys, 10, KP_UNIFORM, 0, 0, ""), 0);
    parse_ok(&s.t[0], "{rand:10-13}");
    s.n = 1;
    tmpl_set_finish(&s);
    for (i = 0; i < 400; i++) {
        size_t n = tmpl_expand(&s, &s.t[0], out, 0, 0, &rng, &kctx), k;

        ck_assert_uint_ge(n, 10);
        ck_assert_uint_le(n, 13);
        seen[n - 10]++;
        for (k = 0; k < n; k++)
            ck_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", out[k]));
    }
    for (i = 0; i < 4; i++)
        ck_assert_int_gt(seen[i], 50);
    tmpl_free(&s.t[0]);
}
END_TEST

START_TEST(test_keys_uniform_and_zipf)
{
    struct keys k;
    uint64_t rng = 1, c0 = 0, c_last = 0, i, v;
    static uint64_t hist[100];

    uint64_t out_of_range = 0; /* (one assert after the loop: Check marks a point per assert) */
    keys_init(&k, 100, KP_UNIFORM, 0, 0, "");
    for (i = 0; i < 100000; i++) {
        v = keys_draw(&k, &rng);
        if (v >= 100) {
            out_of_range++;
            continue;
        }
        hist[v]++;
    }
    ck_assert_uint_eq(out_of_range, 0);
    for (i = 0; i < 100; i++) /* 1000 expected each */
        ck_assert_msg(hist[i] > 800 && hist[i] < 1200, "uniform key %lu: %lu", (unsigned long)i,
                      (unsigned long)hist[i]);
    keys_init(&k, 1000, KP_ZIPF, 0.99, 0, "");
    for (i = 0; i < 100000; i++) {
        v = keys_draw(&k, &rng);
        out_of_range += v >= 1000;
        c0 += v == 0;
        c_last += v >= 500;
    }
    ck_assert_uint_eq(out_of_range, 0);
    /* Zipf 0.99 over 1000: P(rank 1) is about 1/H(1000) = 13 %; the upper half is ~9 % */
    ck_assert_msg(c0 > 10000 && c0 < 17000, "zipf rank 1: %lu", (unsigned long)c0);
    ck_assert_msg(c_last > 5000 && c_last < 14000, "zipf upper half: %lu", (unsigned long)c_last);
}
END_TEST

START_TEST(test_mix_weights)
{
    struct tmpl_set s;
    uint64_t rng = 5;
    int n[2] = {0, 0}, i;

    memset(&s, 0, sizeof(s));
    parse_ok(&s.t[0], "get\\n");
    parse_ok(&s.t[1], "set\\n");
    s.t[0].weight = 9;
    s.t[1].weight = 1;
    s.n = 2;
    tmpl_set_finish(&s);
    for (i = 0; i < 10000; i++)
        n[tmpl_pick(&s, &rng)]++;
    ck_assert_msg(n[1] > 850 && n[1] < 1150, "10 %% of 10000: %d", n[1]);
    tmpl_set_free(&s);
}
END_TEST

START_TEST(test_bad_templates_named)
{
    parse_bad("", "empty");
    parse_bad("get {key", "never closed");
    parse_bad("get {bogus}", "unknown placeholder '{bogus}'");
    parse_bad("{rand:0}", "bad size");
    parse_bad("{rand:9-3}", "bad size");
    parse_bad("{rand:x}", "bad size");
    parse_bad("{rand:5} {rand:6}", "same size");
    parse_bad("{size}", "{size} needs a {rand");
    parse_bad("{rand:2000000}", "bad size");
    parse_bad("{rand:1048576}{seq}", "expands to up to 1048596 bytes");
    parse_bad("{rand:0123456789012345678901234567890123456789012345678901}", "bad size");
    parse_bad("get {Key}", "unknown placeholder '{Key}'");
}
END_TEST

/* A template longer than TMPL_MAX_LEN is refused before it is scanned. */
START_TEST(test_template_too_long)
{
    struct tmpl t;
    uint8_t *big = malloc(TMPL_MAX_LEN + 1);
    char err[256] = "";

    ck_assert_ptr_nonnull(big);
    memset(big, 'x', TMPL_MAX_LEN + 1);
    memset(&t, 0, sizeof(t));
    ck_assert_int_eq(tmpl_parse(&t, big, TMPL_MAX_LEN + 1, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "longer than 1048576 bytes"), "%s", err);
    tmpl_free(&t);
    free(big);
}
END_TEST

/* ---- key patterns and cache values ------------------------------------------------------------ */

START_TEST(test_keys_seq_gauss_and_replay)
{
    struct keys k;
    struct keys_it it;
    uint64_t rng = 3, ctx, i, v, near = 0, keys[8];
    uint8_t buf[64];
    enum keys_pattern p;
    double p1, p2;

    /* seq: every key once per pass, in order, across requests of several keys */
    ck_assert_int_eq(keys_init(&k, 10, KP_SEQ, 0, 0, "k"), 0);
    for (i = 0; i < 7; i++) {
        ctx = keys_ctx(&k, &rng, 3);
        ck_assert_uint_eq(ctx, i * 3);
        keys_it_init(&it, ctx);
        for (v = 0; v < 3; v++)
            ck_assert_uint_eq(keys_next(&k, &it), (i * 3 + v) % 10);
    }
    ck_assert_uint_eq(keys_format(&k, 7, buf), 2);
    ck_assert_int_eq(memcmp(buf, "k7", 2), 0);
    keys_free(&k);
    /* gauss: around the mean, inside the key space */
    ck_assert_int_eq(keys_init(&k, 1000, KP_GAUSS, 500, 50, ""), 0);
    uint64_t outside = 0;
    for (i = 0; i < 20000; i++) {
        v = keys_draw(&k, &rng);
        outside += v >= 1000;
        near += v >= 450 && v <= 550; /* one deviation: 68 % */
    }
    ck_assert_uint_eq(outside, 0);
    ck_assert_msg(near > 12800 && near < 14400, "gauss within 1 sd: %lu", (unsigned long)near);
    keys_free(&k);
    /* random patterns replay from the context */
    ck_assert_int_eq(keys_init(&k, 100000, KP_ZIPF, 1.2, 0, "key:"), 0);
    ctx = keys_ctx(&k, &rng, 8);
    keys_it_init(&it, ctx);
    for (i = 0; i < 8; i++)
        keys[i] = keys_next(&k, &it);
    keys_it_init(&it, ctx);
    for (i = 0; i < 8; i++)
        ck_assert_uint_eq(keys_next(&k, &it), keys[i]);
    ck_assert_uint_eq(keys_format(&k, 42, buf), 9);
    ck_assert_int_eq(memcmp(buf, "key:00042", 9), 0);
    keys_free(&k);
    /* the --key-pattern syntax */
    ck_assert_int_eq(keys_parse("seq", &p, &p1, &p2), 0);
    ck_assert_int_eq(p, KP_SEQ);
    ck_assert_int_eq(keys_parse("zipf:1.5", &p, &p1, &p2), 0);
    ck_assert(p == KP_ZIPF && p1 == 1.5);
    ck_assert_int_eq(keys_parse("gauss:10,2", &p, &p1, &p2), 0);
    ck_assert(p == KP_GAUSS && p1 == 10 && p2 == 2);
    ck_assert_int_eq(keys_parse("gauss:10", &p, &p1, &p2), -1);
    ck_assert_int_eq(keys_parse("zipf:0", &p, &p1, &p2), -1);
    ck_assert_int_eq(keys_parse("normal", &p, &p1, &p2), -1);
}
END_TEST

START_TEST(test_cache_values)
{
    struct cache_values cv = {1, 300};
    uint8_t val[400];
    uint64_t key, ver, v2;
    uint32_t len;
    int i, versioned = 0, shortv = 0;

    for (i = 0; i < 2000; i++) {
        key = (uint64_t)i % 97;
        ver = ((uint64_t)i * 0x9e3779b97f4a7c15ull) >> 4;
        v2 = ver;
        len = cache_value_len(&cv, key, &v2);
        ck_assert_uint_ge(len, 1);
        ck_assert_uint_le(len, 300);
        cache_value_put(&cv, key, v2, len, val);
        ck_assert(cache_value_ok(&cv, key, val, len));
        versioned += len >= CACHE_VERSIONED;
        shortv += len < CACHE_VERSIONED;
        if (len >= 4) /* (shorter ones of two keys may agree by chance) */
            ck_assert(!cache_value_ok(&cv, key + 1, val, len)); /* another key's value */
        if (len >= CACHE_VERSIONED) /* a short value cut shorter is not noticed */
            ck_assert(!cache_value_ok(&cv, key, val, len - 1)); /* cut short */
        if (len >= CACHE_VERSIONED) { /* another --value-size wrote it: still right */
            struct cache_values other = {1000, 2000};

            ck_assert(cache_value_ok(&other, key, val, len));
        }
        val[len / 2] ^= 1;
        ck_assert(!cache_value_ok(&cv, key, val, len)); /* one bit flipped */
    }
    ck_assert_int_gt(versioned, 1000);
    ck_assert_int_gt(shortv, 3);
}
END_TEST

/* One reply to a get of the keys of ctx, every key present except those in `absent`. */
static size_t mc_reply(const struct keys *k, const struct cache_values *cv, uint64_t ctx,
                       unsigned n, unsigned absent, uint8_t *out)
{
    struct keys_it it;
    size_t len = 0;
    unsigned i;

    keys_it_init(&it, ctx);
    for (i = 0; i < n; i++) {
        uint64_t key = keys_next(k, &it), ver = 12345;
        uint8_t kb[64];
        size_t kl = keys_format(k, key, kb);
        uint32_t vl = cache_value_len(cv, key, &ver);

        if (absent & (1u << i))
            continue;
        len += (size_t)sprintf((char *)out + len, "VALUE %.*s 0 %u\r\n", (int)kl, (char *)kb, vl);
        cache_value_put(cv, key, ver, vl, out + len);
        len += vl;
        memcpy(out + len, "\r\n", 2);
        len += 2;
    }
    memcpy(out + len, "END\r\n", 5);
    return len + 5;
}

START_TEST(test_cache_check_memcache_and_redis)
{
    struct keys k;
    struct cache_values cv = {20, 60};
    uint8_t r[4096], vb[64];
    char why[160];
    uint64_t rng = 5, ctx, hits = 0, misses = 0, key, ver = 99;
    size_t n, vl;
    struct keys_it it;

    ck_assert_int_eq(keys_init(&k, 1000, KP_UNIFORM, 0, 0, "k:"), 0);
    ctx = keys_ctx(&k, &rng, 4);
    n = mc_reply(&k, &cv, ctx, 4, 0, r);
    ck_assert_int_eq(cache_check(&k, &cv, CV_MEMCACHE, 4, ctx, r, n, &hits, &misses, why, sizeof(why)), 0);
    ck_assert_uint_eq(hits, 4);
    ck_assert_uint_eq(misses, 0);
    n = mc_reply(&k, &cv, ctx, 4, 0x5, r); /* the 1st and 3rd missing */
    ck_assert_int_eq(cache_check(&k, &cv, CV_MEMCACHE, 4, ctx, r, n, &hits, &misses, why, sizeof(why)), 0);
    ck_assert_uint_eq(hits, 6);
    ck_assert_uint_eq(misses, 2);
    ck_assert_int_eq(cache_check(&k, &cv, CV_MEMCACHE, 4, ctx, (const uint8_t *)"END\r\n", 5, &hits,
                                 &misses, why, sizeof(why)), 0);
    ck_assert_uint_eq(misses, 6);
    /* a wrong byte in a value */
    n = mc_reply(&k, &cv, ctx, 4, 0, r);
    r[n - 10] ^= 2;
    ck_assert_int_eq(cache_check(&k, &cv, CV_MEMCACHE, 4, ctx, r, n, &hits, &misses, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "wrong value"), "%s", why);
    /* the values of another request's keys */
    n = mc_reply(&k, &cv, keys_ctx(&k, &rng, 4), 4, 0, r);
    ck_assert_int_eq(cache_check(&k, &cv, CV_MEMCACHE, 4, ctx, r, n, &hits, &misses, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "not asked for"), "%s", why);
    /* RESP: GET hit, nil, wrong value */
    ctx = keys_ctx(&k, &rng, 1);
    keys_it_init(&it, ctx);
    key = keys_next(&k, &it);
    vl = cache_value_len(&cv, key, &ver);
    cache_value_put(&cv, key, ver, (uint32_t)vl, vb);
    n = (size_t)sprintf((char *)r, "$%zu\r\n%.*s\r\n", vl, (int)vl, (char *)vb);
    hits = misses = 0;
    ck_assert_int_eq(cache_check(&k, &cv, CV_REDIS, 1, ctx, r, n, &hits, &misses, why, sizeof(why)), 0);
    ck_assert_int_eq(cache_check(&k, &cv, CV_REDIS, 1, ctx, (const uint8_t *)"$-1\r\n", 5, &hits,
                                 &misses, why, sizeof(why)), 0);
    ck_assert(hits == 1 && misses == 1);
    r[6] ^= 1;
    ck_assert_int_eq(cache_check(&k, &cv, CV_REDIS, 1, ctx, r, n, &hits, &misses, why, sizeof(why)), -1);
    keys_free(&k);
}
END_TEST

START_TEST(test_len_and_expect_templates)
{
    struct tmpl_set s;
    uint8_t out[600], lit[128];
    uint64_t rng = 11, kctx;
    size_t n, ln;
    char str[600], err[256];

    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(keys_init(&s.keys, 100000, KP_UNIFORM, 0, 0, "user:"), 0);
    s.values = (struct cache_values){20, 20};
    parse_ok(&s.t[0], "*3\\r\\n$3\\r\\nSET\\r\\n${len:key}\\r\\n{key}\\r\\n${len:value}\\r\\n{value}\\r\\n"
                      "{len:seq}|{seq}|{len:conn}|{conn}|{len:rand}|{rand:7}");
    s.n = 1;
    tmpl_set_finish(&s);
    n = tmpl_expand(&s, &s.t[0], out, 123456, 42, &rng, &kctx);
    memcpy(str, out, n);
    str[n] = '\0';
    ck_assert_msg(!strncmp(str, "*3\r\n$3\r\nSET\r\n$10\r\nuser:", 22), "%s", str);
    ck_assert_msg(strstr(str, "\r\n$20\r\n"), "%s", str);
    ck_assert_msg(strstr(str, "6|123456|2|42|7|"), "%s", str);
    /* --expect with placeholders replays the request's */
    ln = tmpl_unescape("${len:key}\\r\\n{key}\\r\\n{seq}", lit);
    memset(&s.t[1], 0, sizeof(s.t[1]));
    parse_ok(&s.t[1], "GET {key}\\r\\n");
    ck_assert(tmpl_has_placeholders(lit, ln));
    ck_assert(!tmpl_has_placeholders((const uint8_t *)"a{{b", 4));
    s.t[1].check.kind = CK_LITERAL;
    ck_assert_int_eq(tmpl_set_expect(&s.t[1], lit, ln, err, sizeof(err)), 0);
    n = tmpl_expand(&s, &s.t[1], out, 9, 3, &rng, &kctx);
    ln = (size_t)sprintf(str, "$10\r\n%.*s\r\n9", 10, (const char *)out + 4);
    ck_assert(tmpl_reply_ok(&s, &s.t[1], 9, 3, kctx, (const uint8_t *)str, ln, 200));
    ck_assert(!tmpl_reply_ok(&s, &s.t[1], 8, 3, kctx, (const uint8_t *)str, ln, 200));
    ck_assert(!tmpl_reply_ok(&s, &s.t[1], 9, 3, kctx ^ 1, (const uint8_t *)str, ln, 200));
    ck_assert(!tmpl_reply_ok(&s, &s.t[1], 9, 3, kctx, (const uint8_t *)str, ln - 1, 200));
    s.t[1].check.kind = CK_PREFIX;
    ck_assert(tmpl_reply_ok(&s, &s.t[1], 9, 3, kctx, (const uint8_t *)str, ln, 200));
    tmpl_free(&s.t[1]);
    /* what cannot be replayed, or does not match the request, is refused */
    memset(&s.t[1], 0, sizeof(s.t[1]));
    parse_ok(&s.t[1], "GET {key}\\r\\n");
    ck_assert_int_eq(tmpl_set_expect(&s.t[1], (const uint8_t *)"{ts}", 4, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "cannot be tied"), "%s", err);
    tmpl_free(&s.t[1]);
    memset(&s.t[1], 0, sizeof(s.t[1]));
    parse_ok(&s.t[1], "GET {key}\\r\\n");
    ck_assert_int_eq(tmpl_set_expect(&s.t[1], (const uint8_t *)"{key}{key}", 10, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "in order"), "%s", err);
    tmpl_free(&s.t[1]);
    parse_bad("{len:key}", "none follows");
    parse_bad("{len:nope}{key}", "unknown length");
    tmpl_set_free(&s);
}
END_TEST

/* ---- framing ----------------------------------------------------------------------------------- */

static void spec(struct frame_spec *fs, const char *arg)
{
    char err[256];

    ck_assert_msg(frame_parse(fs, arg, err, sizeof(err)) == 0, "'%s': %s", arg, err);
}

/* Feeds `reply` (n bytes, followed by `next` as a pipelined reply would be) split at every
 * byte boundary: first all prefixes one byte at a time with one state, then every two-chunk
 * split. Each must be NEED until the whole reply is there, then DONE with exactly n bytes
 * (and `status` when >= 0). */
static void every_split(const struct frame_spec *fs, const char *reply, size_t n, const char *next,
                        int status)
{
    uint8_t buf[4096];
    size_t nn = strlen(next), k, rl = 0;
    struct frame_state st;
    enum frame_rc rc;
    const char *why;

    ck_assert_uint_le(n + nn, sizeof(buf));
    memcpy(buf, reply, n);
    memcpy(buf + n, next, nn);
    frame_reset(&st);
    for (k = 1; k <= n; k++) {
        rc = frame_feed(fs, &st, buf, k, &rl, &why);
        if (k < n)
            ck_assert_msg(rc == FRAME_NEED, "prefix %zu of %zu: rc %d (%s)", k, n, rc, why);
        else
            ck_assert_msg(rc == FRAME_DONE && rl == n, "whole reply %zu: rc %d len %zu (%s)", n,
                          rc, rl, why);
    }
    if (status >= 0)
        ck_assert_int_eq(st.status, status);
    for (k = 0; k <= n; k++) {
        frame_reset(&st);
        if (k) {
            rc = frame_feed(fs, &st, buf, k, &rl, &why);
            ck_assert_msg(k == n ? rc == FRAME_DONE : rc == FRAME_NEED, "split %zu: rc %d", k, rc);
            if (k == n)
                continue; /* done: the state is reset before the next reply */
        }
        rc = frame_feed(fs, &st, buf, n + nn, &rl, &why);
        ck_assert_msg(rc == FRAME_DONE && rl == n, "split %zu then all: rc %d len %zu (%s)", k, rc,
                      rl, why);
    }
}

#define FEED(fs, lit, why) feed_all(fs, lit, sizeof(lit) - 1, why)

static enum frame_rc feed_all(const struct frame_spec *fs, const char *s, size_t n, const char **why)
{
    struct frame_state st;
    size_t rl;

    frame_reset(&st);
    return frame_feed(fs, &st, (const uint8_t *)s, n, &rl, why);
}

START_TEST(test_frame_delim)
{
    struct frame_spec fs;

    spec(&fs, "delim:\\r\\n");
    every_split(&fs, "+OK\r\n", 5, "+NEXT\r\n", -1);
    every_split(&fs, "a\rb\r\r\n", 6, "", -1);
    spec(&fs, "delim:END\\r\\n");
    every_split(&fs, "VALUE x\r\nEN\r\nEND\r\n", 18, "END\r\n", -1);
}
END_TEST

START_TEST(test_frame_fixed)
{
    struct frame_spec fs;

    spec(&fs, "fixed:7");
    every_split(&fs, "1234567", 7, "89", -1);
}
END_TEST

START_TEST(test_frame_len)
{
    struct frame_spec fs;
    const char *why;

    spec(&fs, "len:0:4:be");
    every_split(&fs, "\0\0\0\x0a" "abcdef", 10, "\0\0\0\x05x", -1);
    spec(&fs, "len:2:2:le:after");
    every_split(&fs, "hd\x03\0xyz", 7, "hd", -1);
    spec(&fs, "len:1:1:be:+3");
    every_split(&fs, "T\x02" "ab", 5, "", -1);
    spec(&fs, "len:0:8:le");
    every_split(&fs, "\x0b\0\0\0\0\0\0\0abc", 11, "", -1);
    /* a length smaller than its own header is garbage; one above --max-reply too long */
    spec(&fs, "len:0:4:be");
    ck_assert_int_eq(FEED(&fs, "\0\0\0\x02zz", &why), FRAME_GARBAGE);
    ck_assert_ptr_nonnull(strstr(why, "smaller"));
    fs.max_reply = 100;
    ck_assert_int_eq(FEED(&fs, "\0\0\x10\0", &why), FRAME_TOO_LONG);
}
END_TEST

START_TEST(test_frame_line)
{
    struct frame_spec fs;
    const char *why;

    spec(&fs, "line:1:2");
    every_split(&fs, "$5\r\nhello\r\n", 11, "$1\r\nx\r\n", -1);
    every_split(&fs, "$-1\r\n", 5, "", -1);
    every_split(&fs, "+OK\r\n", 5, "", -1);
    spec(&fs, "line:4:7");
    every_split(&fs, "VALUE k 0 5\r\nhello\r\nEND\r\n", 25, "", -1);
    every_split(&fs, "END\r\n", 5, "", -1);
    spec(&fs, "line:1");
    ck_assert_int_eq(FEED(&fs, "$5x\r\n", &why), FRAME_GARBAGE);
}
END_TEST

START_TEST(test_frame_regex)
{
    struct frame_spec fs;

    spec(&fs, "regex:(OK|ERR)[^\\n]*\\n");
    every_split(&fs, "junk OK done\n", 13, "ERR\n", -1);
    frame_spec_free(&fs);
    spec(&fs, "regex:\\}\\n");
    every_split(&fs, "{\"a\": {\"b\": 1}}\n", 16, "", -1);
    frame_spec_free(&fs);
}
END_TEST

START_TEST(test_frame_memcache)
{
    struct frame_spec fs;
    const char *why;
    static const char multi[] = "VALUE a 0 3\r\nabc\r\nVALUE b 5 0 77\r\n\r\nEND\r\n";

    spec(&fs, "memcache");
    every_split(&fs, "VALUE key:1 0 5\r\nhe\r\no\r\nEND\r\n", 29, "END\r\n", 200);
    every_split(&fs, "END\r\n", 5, "STORED\r\n", 200);
    every_split(&fs, "STORED\r\n", 8, "", 200);
    every_split(&fs, "SERVER_ERROR out of memory\r\n", 28, "", 500);
    every_split(&fs, "ERROR\r\n", 7, "", 500);
    every_split(&fs, "42\r\n", 4, "", 200);
    every_split(&fs, multi, sizeof(multi) - 1, "", 200);
    ck_assert_int_eq(FEED(&fs, "HELLO\r\n", &why), FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "VALUE k 0 2\r\nabXY", &why), FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "VALUE k 0 1\r\nx\r\nSTORED\r\n", &why), FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "VALUE k 0 zz\r\n", &why), FRAME_GARBAGE);
    ck_assert_ptr_nonnull(strstr(why, "without a byte count"));
    every_split(&fs, "CLIENT_ERROR bad data chunk\r\n", 29, "", 500);
    every_split(&fs, "NOT_FOUND\r\n", 11, "", 200);
}
END_TEST

START_TEST(test_frame_resp)
{
    struct frame_spec fs;
    const char *why;
    static const char arr[] = "*3\r\n$5\r\nhello\r\n$-1\r\n*2\r\n:1\r\n+OK\r\n";
    static const char err_in[] = "*2\r\n+OK\r\n-ERR wrong type\r\n";

    spec(&fs, "resp");
    every_split(&fs, "+OK\r\n", 5, "$3\r\n", 200);
    every_split(&fs, "-ERR unknown command 'X'\r\n", 26, "", 500);
    every_split(&fs, ":12345\r\n", 8, "", 200);
    every_split(&fs, "$5\r\nhe\r\no\r\n", 11, "+OK\r\n", 200); /* \r\n inside the data */
    every_split(&fs, "$0\r\n\r\n", 6, "", 200);
    every_split(&fs, "$-1\r\n", 5, "", 200);
    every_split(&fs, "*0\r\n", 4, "", 200);
    every_split(&fs, "*-1\r\n", 5, "", 200);
    every_split(&fs, arr, sizeof(arr) - 1, "+OK\r\n", 200);
    every_split(&fs, err_in, sizeof(err_in) - 1, "", 500);
    ck_assert_int_eq(FEED(&fs, "HELLO\r\n", &why), FRAME_GARBAGE);
    ck_assert_ptr_nonnull(strstr(why, "not a RESP value"));
    ck_assert_int_eq(FEED(&fs, "+OK\n", &why), FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "$x\r\n", &why), FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "$2\r\nabXY", &why), FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "*-2\r\n", &why), FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "$99999999\r\n", &why), FRAME_TOO_LONG);
    ck_assert_int_eq(FEED(&fs, "*99999999\r\n", &why), FRAME_TOO_LONG);
}
END_TEST

START_TEST(test_frame_http)
{
    struct frame_spec fs;
    const char *why;
    static const char cl[] = "HTTP/1.1 200 OK\r\nServer: x\r\ncontent-length: 5\r\n\r\nhello";
    static const char ch[] = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nTrailer: v\r\n\r\n";
    static const char nc[] = "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n";

    spec(&fs, "http");
    every_split(&fs, cl, sizeof(cl) - 1, "HTTP/1.1 200 OK\r\n", 200);
    every_split(&fs, ch, sizeof(ch) - 1, "HTTP", 201);
    every_split(&fs, nc, sizeof(nc) - 1, "", 304);
    /* a response to HEAD (--method HEAD): no body, whatever Content-Length or
     * Transfer-Encoding say; the next response follows the empty line */
    fs.http_no_body = true;
    every_split(&fs, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 38, "HTTP/1.1 200 OK\r\n", 200);
    every_split(&fs, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 47, "0\r\n", 200);
    fs.http_no_body = false;
    ck_assert_int_eq(FEED(&fs, "garbage\r\n\r\n", &why), FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "HTTP/1.1 200 OK\r\n\r\n", &why), FRAME_GARBAGE);
    ck_assert_ptr_nonnull(strstr(why, "Content-Length"));
    ck_assert_int_eq(FEED(&fs, "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n", &why),
                     FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &why),
                     FRAME_GARBAGE);
    ck_assert_int_eq(FEED(&fs, "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", &why),
                     FRAME_GARBAGE);
    ck_assert_ptr_nonnull(strstr(why, "bad Content-Length"));
    ck_assert_int_eq(FEED(&fs, "HTTP/1.1 2x0 OK\r\nContent-Length: 1\r\n\r\nx", &why),
                     FRAME_GARBAGE);
    ck_assert_ptr_nonnull(strstr(why, "status line"));
    ck_assert_int_eq(FEED(&fs, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "4\r\nWikiXY",
                          &why),
                     FRAME_GARBAGE);
    ck_assert_ptr_nonnull(strstr(why, "chunk not followed"));
    fs.max_reply = 1000;
    ck_assert_int_eq(
        FEED(&fs, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", &why),
        FRAME_TOO_LONG);
    ck_assert_int_eq(FEED(&fs, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "ffff\r\n",
                          &why),
                     FRAME_TOO_LONG);
}
END_TEST

START_TEST(test_frame_too_long_without_end)
{
    struct frame_spec fs;
    char big[300];
    const char *why;

    memset(big, 'a', sizeof(big));
    spec(&fs, "delim:\\n");
    fs.max_reply = 256;
    ck_assert_int_eq(feed_all(&fs, big, 255, &why), FRAME_NEED);
    ck_assert_int_eq(feed_all(&fs, big, 256, &why), FRAME_TOO_LONG);
    big[255] = '\n';
    ck_assert_int_eq(feed_all(&fs, big, 300, &why), FRAME_DONE); /* exactly max_reply */
    big[255] = 'a';
    big[256] = '\n';
    ck_assert_int_eq(feed_all(&fs, big, 300, &why), FRAME_TOO_LONG);
}
END_TEST

static void frame_bad(const char *arg, const char *want)
{
    struct frame_spec fs;
    char err[300] = "";

    ck_assert_int_eq(frame_parse(&fs, arg, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "--frame") && strstr(err, want), "'%s' gave '%s'", arg, err);
}

START_TEST(test_bad_framing_named)
{
    frame_bad("delim:", "delim:STR");
    frame_bad("fixed:0", "fixed:N");
    frame_bad("fixed:abc", "fixed:N");
    frame_bad("len:0:3:be", "width must be 1, 2, 4 or 8");
    frame_bad("len:0:4:middle", "be or le");
    frame_bad("len:0:4", "len:OFFSET:WIDTH");
    frame_bad("len:0:4:be:most", "all, after or +N");
    frame_bad("line:0", "FIELD from 1");
    frame_bad("regex:(", "bad regular expression");
    frame_bad("regex:x*", "matches the empty string");
    frame_bad("bogus", "unknown framing");
    frame_bad("delim:0123456789012345678901234567890123456789012345678901234567890123456789",
              "1 to 64 bytes");
    frame_bad("len:70000:4:be", "offset must be a number");
    frame_bad("len:0:4:be:all:x", "len:OFFSET:WIDTH");
    frame_bad("len:0:4:be:+x", "all, after or +N");
    frame_bad("line:1:x", "EXTRA must be a number");
    frame_bad("regex:", "expected regex:RE");
}
END_TEST

START_TEST(test_checks)
{
    struct frame_check ck;
    char err[256];

    ck_assert_int_eq(frame_check_parse(&ck, "literal:STORED\\r\\n", err, sizeof(err)), 0);
    ck_assert(frame_check_ok(&ck, (const uint8_t *)"STORED\r\n", 8, 0));
    ck_assert(!frame_check_ok(&ck, (const uint8_t *)"STORED\r\nX", 9, 0));
    ck_assert(!frame_check_ok(&ck, (const uint8_t *)"NOT_STORED\r\n", 12, 0));
    frame_check_free(&ck);
    ck_assert_int_eq(frame_check_parse(&ck, "prefix:+OK", err, sizeof(err)), 0);
    ck_assert(frame_check_ok(&ck, (const uint8_t *)"+OK whatever", 12, 0));
    ck_assert(!frame_check_ok(&ck, (const uint8_t *)"+O", 2, 0));
    frame_check_free(&ck);
    ck_assert_int_eq(frame_check_parse(&ck, "regex:^VALUE [a-z:0-9]+ 0 [0-9]+\\r\\n", err, sizeof(err)), 0);
    ck_assert(frame_check_ok(&ck, (const uint8_t *)"VALUE key:1 0 5\r\nhello\r\nEND\r\n", 29, 0));
    ck_assert(!frame_check_ok(&ck, (const uint8_t *)"END\r\n", 5, 0));
    /* replies may hold NUL bytes: the match is bounded by the length, not a terminator */
    ck_assert(frame_check_ok(&ck, (const uint8_t *)"VALUE k 0 1\r\n\0\r\nEND\r\n", 21, 0));
    frame_check_free(&ck);
    ck_assert_int_eq(frame_check_parse(&ck, "status:200-299", err, sizeof(err)), 0);
    ck_assert(frame_check_ok(&ck, (const uint8_t *)"", 0, 204));
    ck_assert(!frame_check_ok(&ck, (const uint8_t *)"", 0, 404));
    frame_check_free(&ck);
    ck_assert_int_eq(frame_check_parse(&ck, "status:abc", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "status:CODE"));
    ck_assert_int_eq(frame_check_parse(&ck, "exact:x", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "literal:STR"));
    ck_assert_int_eq(frame_check_parse(&ck, "regex:[", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "bad regular expression"));
}
END_TEST

/* ---- time series ------------------------------------------------------------------------------- */

START_TEST(test_series_buckets_and_merge)
{
    struct series *a = series_new(1000, 5000000000ull, 1000000000u);
    struct series *b = series_new(0, 6000000000ull, 1000000000u); /* starts 1 s later */
    uint64_t v;
    int i;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    for (v = 0; v < (1ull << 36); v = v * 3 + 1) {
        size_t k = series_index(v);

        ck_assert_uint_ge(series_highest(k), v);
        ck_assert_uint_le(series_highest(k) - v, v / 32 + 1);
        ck_assert_uint_lt(k, SERIES_NB);
    }
    for (i = 1; i <= 100; i++)
        series_record(a, 1000 + 10, (uint64_t)i * 1000); /* interval 0: 1..100 us */
    series_record(a, 1000 + 2500000000ull, 7);          /* interval 2 */
    series_tick(a, 1000 + 10, 120, 3);
    ck_assert_uint_eq(a->n, 3);
    ck_assert_uint_eq(a->p[0].replies, 100);
    ck_assert_uint_eq(a->p[0].sent, 120);
    ck_assert_uint_eq(a->p[0].errors, 3);
    v = series_percentile(&a->p[0], 50);
    ck_assert_uint_ge(v, 50000);
    ck_assert_uint_le(v, 52000);
    ck_assert_uint_eq(series_percentile(&a->p[0], 100), 100000);
    series_record(b, 10, 1);
    b->span_ns = 500000000;
    ck_assert_int_eq(series_merge(a, b), 0);
    ck_assert_uint_eq(a->p[1].replies, 1); /* aligned on the wall clock: b's 0 is a's 1 */
    ck_assert_uint_eq(a->span_ns, 1500000000u);
    series_free(a);
    series_free(b);
}
END_TEST

static Suite *frame_suite(void)
{
    Suite *s = suite_create("load_frame");
    TCase *tc = tcase_create("tmpl");
    tcase_set_timeout(tc, 60); /* 10^5 draws per pattern: slow under sanitizers and valgrind */

    tcase_add_test(tc, test_unescape);
    tcase_add_test(tc, test_expand_placeholders);
    tcase_add_test(tc, test_rand_sizes_cover_range);
    tcase_add_test(tc, test_keys_uniform_and_zipf);
    tcase_add_test(tc, test_keys_seq_gauss_and_replay);
    tcase_add_test(tc, test_cache_values);
    tcase_add_test(tc, test_cache_check_memcache_and_redis);
    tcase_add_test(tc, test_len_and_expect_templates);
    tcase_add_test(tc, test_mix_weights);
    tcase_add_test(tc, test_bad_templates_named);
    tcase_add_test(tc, test_template_too_long);
    suite_add_tcase(s, tc);

    tc = tcase_create("frame");
    tcase_add_test(tc, test_frame_delim);
    tcase_add_test(tc, test_frame_fixed);
    tcase_add_test(tc, test_frame_len);
    tcase_add_test(tc, test_frame_line);
    tcase_add_test(tc, test_frame_regex);
    tcase_add_test(tc, test_frame_memcache);
    tcase_add_test(tc, test_frame_http);
    tcase_add_test(tc, test_frame_resp);
    tcase_add_test(tc, test_frame_too_long_without_end);
    tcase_add_test(tc, test_bad_framing_named);
    tcase_add_test(tc, test_checks);
    suite_add_tcase(s, tc);

    tc = tcase_create("series");
    tcase_add_test(tc, test_series_buckets_and_merge);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return check_run(frame_suite()); }
