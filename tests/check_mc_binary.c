/*
 * check_mc_binary.c - the memcache handler's binary protocol
 * (handlers/memcache/mc_binary.c, compiled into this program with the rest
 * of the handler) driven by the test kit: every opcode and its answer byte
 * for byte, quiet opcodes pipelined and flushed by a noop, a request
 * stream split at every byte, CAS on every opcode that takes one, the
 * errors memcached answers (unknown command, bad lengths, a key too long, a
 * value too large, bad magic) and which of them close, a header announcing
 * a huge body (answered at once, the body dropped as it comes), stat, the
 * counters, and output back-pressure.  Then, when /usr/bin/memcached is
 * installed, the same requests sent to memcached and to wharf on loopback
 * sockets give the same bytes back (cas ids renumbered, see cas_normalise).
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <pwd.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "check_main.h"
#include "mc_testutil.h"
#include "testutil.h"
#include "wharf_server.h"
#include "wharf_test.h"

#define CAS_ANY UINT64_MAX /* expect_pkt: any non-zero cas */

enum {
    B_GET = 0x00, B_SET = 0x01, B_ADD = 0x02, B_REPLACE = 0x03, B_DELETE = 0x04, B_INCR = 0x05,
    B_DECR = 0x06, B_QUIT = 0x07, B_FLUSH = 0x08, B_GETQ = 0x09, B_NOOP = 0x0a, B_VERSION = 0x0b,
    B_GETK = 0x0c, B_GETKQ = 0x0d, B_APPEND = 0x0e, B_PREPEND = 0x0f, B_STAT = 0x10, B_SETQ = 0x11,
    B_ADDQ = 0x12, B_REPLACEQ = 0x13, B_DELETEQ = 0x14, B_INCRQ = 0x15, B_DECRQ = 0x16, B_QUITQ = 0x17,
    B_FLUSHQ = 0x18, B_APPENDQ = 0x19, B_PREPENDQ = 0x1a, B_TOUCH = 0x1c, B_GAT = 0x1d, B_GATQ = 0x1e,
    B_SASL_LIST = 0x20, B_GATK = 0x23, B_GATKQ = 0x24,
};

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* A request growing in a buffer. */
struct req {
    unsigned char b[1 << 16];
    size_t n;
};

/* Appends one request (raw lengths: bodylen = extlen + keylen + vlen). */
static void add_raw(struct req *r, int magic, int op, const void *ext, size_t extlen,
                    const char *key, size_t keylen, const void *val, size_t vlen,
                    uint32_t opaque, uint64_t cas, uint32_t bodylen)
{
    unsigned char *h = r->b + r->n;
    ck_assert_uint_le(r->n + 24 + extlen + keylen + vlen, sizeof r->b);
    memset(h, 0, 24);
    h[0] = (unsigned char)magic;
    h[1] = (unsigned char)op;
    put_be(h + 2, keylen, 2);
    h[4] = (unsigned char)extlen;
    put_be(h + 8, bodylen, 4);
    put_be(h + 12, opaque, 4);
    put_be(h + 16, cas, 8);
    r->n += 24;
    if (extlen)
        memcpy(r->b + r->n, ext, extlen);
    r->n += extlen;
    if (keylen)
        memcpy(r->b + r->n, key, keylen);
    r->n += keylen;
    if (vlen)
        memcpy(r->b + r->n, val, vlen);
    r->n += vlen;
}

static void add(struct req *r, int op, const void *ext, size_t extlen, const char *key,
                const char *val, uint32_t opaque, uint64_t cas)
{
    size_t kl = key ? strlen(key) : 0, vl = val ? strlen(val) : 0;
    add_raw(r, 0x80, op, ext, extlen, key, kl, val, vl, opaque, cas,
            (uint32_t)(extlen + kl + vl));
}

static void add_set(struct req *r, int op, const char *key, const char *val, uint32_t flags,
                    uint32_t exp, uint32_t opaque, uint64_t cas)
{
    unsigned char ext[8];
    put_be(ext, flags, 4);
    put_be(ext + 4, exp, 4);
    add(r, op, ext, 8, key, val, opaque, cas);
}

static void add_delta(struct req *r, int op, const char *key, uint64_t delta, uint64_t initial,
                      uint32_t exp, uint32_t opaque, uint64_t cas)
{
    unsigned char ext[20];
    put_be(ext, delta, 8);
    put_be(ext + 8, initial, 8);
    put_be(ext + 16, exp, 4);
    add(r, op, ext, 20, key, NULL, opaque, cas);
}

static void add_touch(struct req *r, int op, const char *key, uint32_t exp, uint32_t opaque)
{
    unsigned char ext[4];
    put_be(ext, exp, 4);
    add(r, op, ext, 4, key, NULL, opaque, 0);
}

/* The handler's answer to r (all of it, r emptied). */
static const unsigned char *send_req(wharf_test_conn *c, struct req *r, size_t *len)
{
    wharf_test_send(c, r->b, r->n);
    r->n = 0;
    return (const unsigned char *)wharf_test_output(c, len);
}

/* Checks the packet at out[*off] byte for byte: header fields, extras
 * (flags when extlen is 4), key and value; advances *off.  Returns its cas. */
static uint64_t expect_pkt(const unsigned char *out, size_t len, size_t *off, int op, int status,
                           int extlen, const void *ext, const char *key, const void *val,
                           size_t vlen, uint32_t opaque, uint64_t cas)
{
    size_t kl = key ? strlen(key) : 0;
    ck_assert_msg(*off + 24 <= len, "no packet at %zu (op 0x%02x)", *off, op);
    const unsigned char *h = out + *off;
    ck_assert_uint_eq(h[0], 0x81);
    ck_assert_msg(h[1] == op, "opcode 0x%02x, want 0x%02x", h[1], op);
    ck_assert_msg(get_be(h + 6, 2) == (uint64_t)status, "op 0x%02x status 0x%02x, want 0x%02x",
                  op, (unsigned)get_be(h + 6, 2), status);
    ck_assert_uint_eq(get_be(h + 2, 2), kl);
    ck_assert_uint_eq(h[4], extlen);
    ck_assert_uint_eq(h[5], 0);
    ck_assert_uint_eq(get_be(h + 8, 4), extlen + kl + vlen);
    ck_assert_uint_eq(get_be(h + 12, 4), opaque);
    uint64_t got = get_be(h + 16, 8);
    if (cas == CAS_ANY)
        ck_assert_uint_ne(got, 0);
    else
        ck_assert_uint_eq(got, cas);
    ck_assert_uint_le(*off + 24 + extlen + kl + vlen, len);
    const unsigned char *b = h + 24;
    ck_assert(extlen == 0 || memcmp(b, ext, (size_t)extlen) == 0);
    ck_assert(kl == 0 || memcmp(b + extlen, key, kl) == 0);
    ck_assert_msg(vlen == 0 || memcmp(b + extlen + kl, val, vlen) == 0, "op 0x%02x value", op);
    *off += 24 + extlen + kl + vlen;
    return got;
}

static const unsigned char F0[4] = {0, 0, 0, 0};
static const unsigned char FLAGS[4] = {0xde, 0xad, 0xbe, 0xef};

#define OK(op, opq, cas) expect_pkt(out, len, &off, op, 0, 0, NULL, NULL, NULL, 0, opq, cas)
#define ERR(op, st, text, opq) \
    expect_pkt(out, len, &off, op, st, 0, NULL, NULL, text, strlen(text), opq, 0)
#define HIT(op, flags, key, val, opq, cas) \
    expect_pkt(out, len, &off, op, 0, 4, flags, key, val, strlen(val), opq, cas)
#define NUM(op, v, opq, cas) \
    do { \
        unsigned char n8[8]; \
        put_be(n8, v, 8); \
        expect_pkt(out, len, &off, op, 0, 0, NULL, NULL, n8, 8, opq, cas); \
    } while (0)
#define DONE() ck_assert_uint_eq(off, len)

START_TEST(every_opcode)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    struct req *r = calloc(1, sizeof *r);
    size_t len, off = 0;
    add_set(r, B_SET, "k", "hello", 0xdeadbeef, 0, 1, 0);
    add(r, B_GET, NULL, 0, "k", NULL, 2, 0);
    add(r, B_GETK, NULL, 0, "k", NULL, 3, 0);
    add(r, B_GET, NULL, 0, "nope", NULL, 4, 0);
    add(r, B_GETK, NULL, 0, "nope", NULL, 5, 0);
    add_set(r, B_ADD, "k", "x", 0, 0, 6, 0);
    add_set(r, B_ADD, "k2", "v2", 0, 0, 7, 0);
    add_set(r, B_REPLACE, "nope", "x", 0, 0, 8, 0);
    add_set(r, B_REPLACE, "k2", "w2", 5, 0, 9, 0);
    add(r, B_APPEND, NULL, 0, "k", "!", 10, 0);
    add(r, B_PREPEND, NULL, 0, "k", "<", 11, 0);
    add(r, B_APPEND, NULL, 0, "nope", "!", 12, 0);
    add(r, B_GET, NULL, 0, "k", NULL, 13, 0);
    add(r, B_DELETE, NULL, 0, "k2", NULL, 14, 0);
    add(r, B_DELETE, NULL, 0, "k2", NULL, 15, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 16, 0);
    add(r, B_VERSION, NULL, 0, NULL, NULL, 17, 0);
    const unsigned char *out = send_req(c, r, &len);
    uint64_t c1 = OK(B_SET, 1, CAS_ANY);
    ck_assert_uint_eq(HIT(B_GET, FLAGS, NULL, "hello", 2, CAS_ANY), c1);
    HIT(B_GETK, FLAGS, "k", "hello", 3, c1);
    ERR(B_GET, 1, "Not found", 4);
    expect_pkt(out, len, &off, B_GETK, 1, 0, NULL, "nope", NULL, 0, 5, 0);
    ERR(B_ADD, 2, "Data exists for key.", 6);
    OK(B_ADD, 7, CAS_ANY);
    ERR(B_REPLACE, 1, "Not found", 8);
    OK(B_REPLACE, 9, CAS_ANY);
    OK(B_APPEND, 10, CAS_ANY);
    OK(B_PREPEND, 11, CAS_ANY);
    ERR(B_APPEND, 5, "Not stored.", 12);
    HIT(B_GET, FLAGS, NULL, "<hello!", 13, CAS_ANY);
    OK(B_DELETE, 14, 0);
    ERR(B_DELETE, 1, "Not found", 15);
    OK(B_NOOP, 16, 0);
    expect_pkt(out, len, &off, B_VERSION, 0, 0, NULL, NULL, "1.6.18-wharf", 12, 17, 0);
    DONE();

    /* incr/decr: initial value, 0xffffffff, wrap, floor, non-numeric. */
    off = 0;
    add_delta(r, B_INCR, "n", 1, 10, 0, 20, 0);
    add_delta(r, B_INCR, "n", 5, 0, 0, 21, 0);
    add_delta(r, B_DECR, "n", 100, 0, 0, 22, 0);
    add_delta(r, B_DECR, "m", 1, 7, 0xffffffffu, 23, 0);
    add_delta(r, B_INCR, "k", 1, 0, 0, 24, 0);
    add_set(r, B_SET, "w", "18446744073709551615", 0, 0, 25, 0);
    add_delta(r, B_INCR, "w", 2, 0, 0, 26, 0);
    add(r, B_GET, NULL, 0, "w", NULL, 27, 0);
    out = send_req(c, r, &len);
    NUM(B_INCR, 10, 20, CAS_ANY);
    NUM(B_INCR, 15, 21, CAS_ANY);
    NUM(B_DECR, 0, 22, CAS_ANY);
    ERR(B_DECR, 1, "Not found", 23);
    ERR(B_INCR, 6, "Non-numeric server-side value for incr or decr", 24);
    OK(B_SET, 25, CAS_ANY);
    NUM(B_INCR, 1, 26, CAS_ANY);
    char padded[21];
    memset(padded, ' ', 20);
    padded[0] = '1'; /* changed in place, padded with blanks as memcached does */
    padded[20] = '\0';
    HIT(B_GET, F0, NULL, padded, 27, CAS_ANY);
    DONE();

    /* touch, gat, gatk; flush; quit. */
    off = 0;
    add_touch(r, B_TOUCH, "k", 100, 30);
    add_touch(r, B_GAT, "k", 100, 31);
    add_touch(r, B_GATK, "k", 100, 32);
    add_touch(r, B_TOUCH, "nope", 100, 33);
    add_touch(r, B_GAT, "nope", 100, 34);
    add_touch(r, B_GATK, "nope", 100, 35);
    add(r, B_FLUSH, NULL, 0, NULL, NULL, 36, 0);
    add(r, B_GET, NULL, 0, "k", NULL, 37, 0);
    out = send_req(c, r, &len);
    HIT(B_TOUCH, FLAGS, NULL, "", 30, CAS_ANY);
    HIT(B_GAT, FLAGS, NULL, "<hello!", 31, CAS_ANY);
    HIT(B_GATK, FLAGS, "k", "<hello!", 32, CAS_ANY);
    ERR(B_TOUCH, 1, "Not found", 33);
    ERR(B_GAT, 1, "Not found", 34);
    expect_pkt(out, len, &off, B_GATK, 1, 0, NULL, "nope", NULL, 0, 35, 0);
    OK(B_FLUSH, 36, 0);
    ERR(B_GET, 1, "Not found", 37);
    DONE();
    off = 0;
    add(r, B_QUIT, NULL, 0, NULL, NULL, 40, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 41, 0);
    out = send_req(c, r, &len);
    OK(B_QUIT, 40, 0);
    DONE();
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_HANDLER);
    c = wharf_test_connect(t);
    add(r, B_QUITQ, NULL, 0, NULL, NULL, 42, 0);
    send_req(c, r, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert(wharf_test_closed(c, NULL));
    free(r);
    wharf_test_free(t);
}
END_TEST

START_TEST(expiry_and_delayed_flush)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    struct req *r = calloc(1, sizeof *r);
    size_t len, off = 0;
    add_set(r, B_SET, "e", "v", 0, 1, 1, 0);                 /* expires in 1 s */
    add_delta(r, B_INCR, "i", 1, 3, 1, 2, 0);                /* created, expires in 1 s */
    add_set(r, B_SET, "f", "v", 0, 0, 3, 0);
    unsigned char ext[4];
    put_be(ext, 2, 4);
    add(r, B_FLUSHQ, ext, 4, NULL, NULL, 4, 0);              /* flush in 2 s, quietly */
    add(r, B_GET, NULL, 0, "f", NULL, 5, 0);
    const unsigned char *out = send_req(c, r, &len);
    OK(B_SET, 1, CAS_ANY);
    NUM(B_INCR, 3, 2, CAS_ANY);
    OK(B_SET, 3, CAS_ANY);
    HIT(B_GET, F0, NULL, "v", 5, CAS_ANY);
    DONE();
    sleep(3);
    off = 0;
    add(r, B_GET, NULL, 0, "e", NULL, 6, 0);
    add(r, B_GET, NULL, 0, "i", NULL, 7, 0);
    add(r, B_GET, NULL, 0, "f", NULL, 8, 0);
    out = send_req(c, r, &len);
    ERR(B_GET, 1, "Not found", 6);
    ERR(B_GET, 1, "Not found", 7);
    ERR(B_GET, 1, "Not found", 8);
    DONE();
    free(r);
    wharf_test_free(t);
}
END_TEST

START_TEST(quiet_pipeline_then_noop)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    struct req *r = calloc(1, sizeof *r);
    size_t len, off = 0;
    add_set(r, B_SETQ, "a", "1", 0, 0, 1, 0);
    add_set(r, B_SETQ, "b", "2", 7, 0, 2, 0);
    add_set(r, B_ADDQ, "a", "x", 0, 0, 3, 0);         /* error: sent */
    add_set(r, B_REPLACEQ, "nope", "x", 0, 0, 4, 0);  /* error: sent */
    add_set(r, B_REPLACEQ, "b", "3", 7, 0, 5, 0);
    add(r, B_GETQ, NULL, 0, "a", NULL, 6, 0);         /* hit: sent */
    add(r, B_GETQ, NULL, 0, "nope", NULL, 7, 0);      /* miss: nothing */
    add(r, B_GETKQ, NULL, 0, "b", NULL, 8, 0);
    add(r, B_GETKQ, NULL, 0, "nope", NULL, 9, 0);
    add(r, B_DELETEQ, NULL, 0, "nope", NULL, 10, 0);  /* error: sent */
    add_delta(r, B_INCRQ, "c", 1, 5, 0, 11, 0);
    add_delta(r, B_DECRQ, "c", 2, 0, 0, 12, 0);
    add(r, B_APPENDQ, NULL, 0, "a", "z", 13, 0);
    add(r, B_PREPENDQ, NULL, 0, "a", "y", 14, 0);
    add_touch(r, B_GATQ, "a", 0, 15);
    add_touch(r, B_GATKQ, "nope", 0, 16);
    add(r, B_DELETEQ, NULL, 0, "b", NULL, 17, 0);
    add(r, B_GETQ, NULL, 0, "c", NULL, 18, 0);
    const unsigned char *out = send_req(c, r, &len);
    ERR(B_ADDQ, 2, "Data exists for key.", 3);
    ERR(B_REPLACEQ, 1, "Not found", 4);
    HIT(B_GETQ, F0, NULL, "1", 6, CAS_ANY);
    HIT(B_GETKQ, "\0\0\0\7", "b", "3", 8, CAS_ANY);
    ERR(B_DELETEQ, 1, "Not found", 10);
    HIT(B_GATQ, F0, NULL, "y1z", 15, CAS_ANY);
    HIT(B_GETQ, F0, NULL, "3", 18, CAS_ANY);
    DONE();
    off = 0;
    add(r, B_FLUSHQ, NULL, 0, NULL, NULL, 19, 0);
    add(r, B_GETQ, NULL, 0, "a", NULL, 20, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 21, 0);
    out = send_req(c, r, &len);
    OK(B_NOOP, 21, 0);
    DONE();
    free(r);
    wharf_test_free(t);
}
END_TEST

START_TEST(cas_on_every_opcode)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    struct req *r = calloc(1, sizeof *r);
    size_t len, off = 0;
    add_set(r, B_SET, "x", "orig", 0, 0, 1, 0);
    const unsigned char *out = send_req(c, r, &len);
    uint64_t c1 = OK(B_SET, 1, CAS_ANY);
    DONE();
    off = 0;
    add_set(r, B_SET, "x", "bad", 0, 0, 2, c1 + 1);
    add_set(r, B_REPLACE, "x", "bad", 0, 0, 3, c1 + 1);
    add_set(r, B_SET, "nope", "bad", 0, 0, 4, c1);
    add_set(r, B_ADD, "nope", "bad", 0, 0, 5, c1);      /* add with a cas: a cas */
    add(r, B_APPEND, NULL, 0, "x", "bad", 6, c1 + 1);
    add(r, B_PREPEND, NULL, 0, "x", "bad", 7, c1 + 1);
    add(r, B_DELETE, NULL, 0, "x", NULL, 8, c1 + 1);
    add(r, B_GET, NULL, 0, "x", NULL, 9, 0);
    out = send_req(c, r, &len);
    ERR(B_SET, 2, "Data exists for key.", 2);
    ERR(B_REPLACE, 2, "Data exists for key.", 3);
    ERR(B_SET, 1, "Not found", 4);
    ERR(B_ADD, 1, "Not found", 5);
    ERR(B_APPEND, 2, "Data exists for key.", 6);
    ERR(B_PREPEND, 2, "Data exists for key.", 7);
    ERR(B_DELETE, 2, "Data exists for key.", 8);
    HIT(B_GET, F0, NULL, "orig", 9, c1);
    DONE();
    off = 0;
    add(r, B_APPEND, NULL, 0, "x", "+", 10, c1);
    out = send_req(c, r, &len);
    uint64_t c2 = OK(B_APPEND, 10, CAS_ANY);
    ck_assert_uint_ne(c2, c1);
    DONE();
    off = 0;
    add_set(r, B_SET, "x", "new", 0, 0, 11, c1);        /* stale */
    add_set(r, B_SET, "x", "12", 0, 0, 12, c2);
    out = send_req(c, r, &len);
    ERR(B_SET, 2, "Data exists for key.", 11);
    uint64_t c3 = OK(B_SET, 12, CAS_ANY);
    DONE();
    off = 0;
    add_delta(r, B_INCR, "x", 1, 0, 0, 13, c2);
    add_delta(r, B_INCR, "x", 1, 0, 0, 14, c3);
    out = send_req(c, r, &len);
    ERR(B_INCR, 2, "Data exists for key.", 13);
    unsigned char n8[8];
    put_be(n8, 13, 8);
    uint64_t c4 = expect_pkt(out, len, &off, B_INCR, 0, 0, NULL, NULL, n8, 8, 14, CAS_ANY);
    DONE();
    off = 0;
    add(r, B_GET, NULL, 0, "x", NULL, 15, 0);
    add(r, B_DELETE, NULL, 0, "x", NULL, 16, c4);
    out = send_req(c, r, &len);
    HIT(B_GET, F0, NULL, "13", 15, c4);
    OK(B_DELETE, 16, 0);
    DONE();
    free(r);
    wharf_test_free(t);
}
END_TEST

/* A stream of requests and the answer it must get, sent split at every
 * byte. */
START_TEST(every_split)
{
    wharf_test *t = mc_test_new(NULL);
    struct req *r = calloc(1, sizeof *r);
    add_set(r, B_SETQ, "k", "value", 3, 0, 1, 0);
    add(r, B_GETK, NULL, 0, "k", NULL, 2, 0);
    add(r, B_GETQ, NULL, 0, "miss", NULL, 3, 0);
    add_delta(r, B_INCR, "n", 1, 9, 0, 4, 0);
    add(r, 0x50, NULL, 0, "key", "body", 5, 0); /* unknown: body dropped */
    add(r, B_APPEND, NULL, 0, "k", "+", 6, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 7, 0);
    struct req *whole = calloc(1, sizeof *whole);
    memcpy(whole, r, sizeof *r);
    wharf_test_conn *c = wharf_test_connect(t);
    size_t wlen;
    const unsigned char *w = send_req(c, r, &wlen);
    unsigned char *want = malloc(wlen);
    memcpy(want, w, wlen);
    ck_assert_uint_gt(wlen, 100);
    wharf_test_close(c);
    for (size_t split = 0; split <= whole->n; split++) {
        c = wharf_test_connect(t);
        unsigned char fl[24] = {0x80, B_FLUSH};
        wharf_test_send(c, fl, 24);
        wharf_test_output(c, NULL);
        wharf_test_send(c, whole->b, split);
        wharf_test_send(c, whole->b + split, whole->n - split);
        size_t len;
        const unsigned char *out = (const unsigned char *)wharf_test_output(c, &len);
        ck_assert_msg(len == wlen, "split %zu: %zu bytes, want %zu", split, len, wlen);
        /* cas ids differ from run to run: compare all else */
        for (size_t off = 0; off < len;) {
            size_t n = 24 + (size_t)get_be(out + off + 8, 4);
            ck_assert(memcmp(out + off, want + off, 16) == 0);
            ck_assert(memcmp(out + off + 24, want + off + 24, n - 24) == 0);
            off += n;
        }
        wharf_test_close(c);
    }
    free(want);
    free(whole);
    free(r);
    wharf_test_free(t);
}
END_TEST

START_TEST(errors_that_close)
{
    wharf_test *t = mc_test_new(NULL);
    struct req *r = calloc(1, sizeof *r);
    size_t len, off;
    const unsigned char *out;
    char key[300];
    memset(key, 'k', sizeof key);
    /* A key over 250 bytes. */
    wharf_test_conn *c = wharf_test_connect(t);
    add_raw(r, 0x80, B_GET, NULL, 0, key, 251, NULL, 0, 1, 0, 251);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 2, 0);
    out = send_req(c, r, &len);
    off = 0;
    ERR(B_GET, 4, "Invalid arguments", 1);
    DONE();
    ck_assert(wharf_test_closed(c, NULL));
    /* Extras of the wrong length for the opcode. */
    static const struct { int op; size_t extlen; } bad[] = {
        {B_GET, 4}, {B_SET, 0}, {B_SET, 4}, {B_INCR, 8}, {B_DELETE, 1}, {B_TOUCH, 0}, {B_FLUSH, 8},
        {B_NOOP, 4}, {B_VERSION, 1}, {B_QUIT, 4}, {B_APPEND, 8}, {B_STAT, 4}, {B_SASL_LIST, 4},
    };
    unsigned char ext[20] = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = wharf_test_connect(t);
        add(r, bad[i].op, ext, bad[i].extlen, "k", NULL, 3, 0);
        add(r, B_NOOP, NULL, 0, NULL, NULL, 4, 0);
        out = send_req(c, r, &len);
        off = 0;
        ERR(bad[i].op, 4, "Invalid arguments", 3);
        DONE();
        ck_assert_msg(wharf_test_closed(c, NULL), "op 0x%02x", bad[i].op);
    }
    /* A body shorter than its key and extras. */
    c = wharf_test_connect(t);
    add_raw(r, 0x80, B_GET, NULL, 0, "key", 3, NULL, 0, 5, 0, 2);
    out = send_req(c, r, &len);
    off = 0;
    ERR(B_GET, 0x81, "Unknown command", 5);
    DONE();
    ck_assert(wharf_test_closed(c, NULL));
    /* A get whose body announces 4 GiB: a protocol error at once. */
    c = wharf_test_connect(t);
    add_raw(r, 0x80, B_GET, NULL, 0, "key", 3, NULL, 0, 6, 0, 0xffffffffu);
    out = send_req(c, r, &len);
    off = 0;
    ERR(B_GET, 4, "Invalid arguments", 6);
    DONE();
    ck_assert(wharf_test_closed(c, NULL));
    /* Bad magic after a good request: closed without a word. */
    c = wharf_test_connect(t);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 7, 0);
    add_raw(r, 0x81, B_NOOP, NULL, 0, NULL, 0, NULL, 0, 8, 0, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 9, 0);
    out = send_req(c, r, &len);
    off = 0;
    OK(B_NOOP, 7, 0);
    DONE();
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_ERROR);
    /* A connection whose first byte is not 0x80 speaks ASCII. */
    c = wharf_test_connect(t);
    wharf_test_send(c, "version\r\n", 9);
    ck_assert_str_eq(wharf_test_output(c, NULL), "VERSION 1.6.18-wharf\r\n");
    free(r);
    wharf_test_free(t);
}
END_TEST

START_TEST(errors_that_go_on)
{
    wharf_test *t = mc_test_new("\"item_size_max\": 1000");
    wharf_test_conn *c = wharf_test_connect(t);
    struct req *r = calloc(1, sizeof *r);
    size_t len, off = 0;
    char big[1002];
    memset(big, 'v', 1001);
    big[1001] = '\0';
    add_set(r, B_SET, "k", "old", 0, 0, 1, 0);
    add_set(r, B_SET, "k", big, 0, 0, 2, 0);          /* too large: the old value goes */
    add(r, B_GET, NULL, 0, "k", NULL, 3, 0);
    add_set(r, B_ADD, "k", big, 0, 0, 4, 0);
    add(r, B_APPEND, NULL, 0, "k", big, 5, 0);
    add(r, 0x1b, "\0\0\0\1", 4, NULL, NULL, 6, 0);  /* verbosity: unknown here */
    add(r, 0x50, NULL, 0, "key", "body", 7, 0);
    add(r, B_SASL_LIST, NULL, 0, NULL, NULL, 8, 0);
    add(r, 0x21, NULL, 0, "PLAIN", "secret", 9, 0);  /* sasl auth: unknown */
    add_set(r, B_SET, "a", big + 1, 0, 0, 10, 0);      /* 1000 bytes: fits */
    add(r, B_APPEND, NULL, 0, "a", "!", 11, 0);        /* would pass the limit */
    add(r, B_NOOP, NULL, 0, NULL, NULL, 12, 0);
    const unsigned char *out = send_req(c, r, &len);
    OK(B_SET, 1, CAS_ANY);
    ERR(B_SET, 3, "Too large.", 2);
    ERR(B_GET, 1, "Not found", 3);
    ERR(B_ADD, 3, "Too large.", 4);
    ERR(B_APPEND, 3, "Too large.", 5);
    ERR(0x1b, 0x81, "Unknown command", 6);
    ERR(0x50, 0x81, "Unknown command", 7);
    ERR(B_SASL_LIST, 0x81, "Unknown command", 8);
    ERR(0x21, 0x81, "Unknown command", 9);
    OK(B_SET, 10, CAS_ANY);
    ERR(B_APPEND, 5, "Not stored.", 11);
    OK(B_NOOP, 12, 0);
    DONE();
    ck_assert(!wharf_test_closed(c, NULL));
    free(r);
    wharf_test_free(t);
}
END_TEST

/* A set announcing a value far past item_size_max is answered after its
 * header, extras and key, and its bytes are dropped as they arrive: the
 * connection keeps no input, and goes on after them. */
START_TEST(huge_body_is_swallowed)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    struct req *r = calloc(1, sizeof *r);
    size_t len, off = 0;
    const uint32_t vlen = 8u << 20; /* 8 MiB: past max_input (2 MiB) too */
    unsigned char ext[8] = {0};
    add_raw(r, 0x80, B_SET, ext, 8, "big", 3, NULL, 0, 1, 0, 8 + 3 + vlen);
    const unsigned char *out = send_req(c, r, &len);
    ERR(B_SET, 3, "Too large.", 1);
    DONE();
    char *chunk = malloc(1 << 20);
    memset(chunk, 0x80, 1 << 20); /* looks like headers: must not be read as such */
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(wharf_test_send(c, chunk, 1 << 20), 0);
        ck_assert_uint_eq(wharf_test_output(c, NULL)[0], 0);
    }
    free(chunk);
    off = 0;
    add(r, B_NOOP, NULL, 0, NULL, NULL, 2, 0);
    out = send_req(c, r, &len);
    OK(B_NOOP, 2, 0);
    DONE();
    ck_assert(!wharf_test_closed(c, NULL));
    free(r);
    wharf_test_free(t);
}
END_TEST

/* The value of stat `name` in a stat answer, or -1; also checks the
 * answer's framing (opaque, status) and its empty last packet. */
static long long stat_value(const unsigned char *out, size_t len, const char *name, int *npkt)
{
    long long v = -1;
    size_t off = 0;
    int n = 0;
    while (off + 24 <= len) {
        const unsigned char *h = out + off;
        size_t kl = get_be(h + 2, 2), bl = get_be(h + 8, 4);
        ck_assert_uint_eq(h[0], 0x81);
        ck_assert_uint_eq(h[1], B_STAT);
        ck_assert_uint_eq(get_be(h + 6, 2), 0);
        ck_assert_uint_eq(get_be(h + 12, 4), 77);
        ck_assert_uint_eq(get_be(h + 16, 8), 0);
        n++;
        off += 24 + bl;
        if (kl == 0) {
            ck_assert_uint_eq(bl, 0);
            ck_assert_uint_eq(off, len);
            break;
        }
        if (kl == strlen(name) && !memcmp(h + 24, name, kl))
            v = strtoll((const char *)h + 24 + kl, NULL, 10); /* followed by the next header */
    }
    ck_assert_uint_eq(off, len);
    *npkt = n;
    return v;
}

static long long bin_stat(wharf_test_conn *c, const char *sub, const char *name, int *npkt)
{
    struct req r;
    r.n = 0;
    add(&r, B_STAT, NULL, 0, sub, NULL, 77, 0);
    size_t len;
    const unsigned char *out = send_req(c, &r, &len);
    unsigned char *copy = malloc(len + 1);
    memcpy(copy, out, len);
    copy[len] = 0;
    long long v = stat_value(copy, len, name, npkt);
    free(copy);
    return v;
}

START_TEST(stat_and_counters)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    struct req *r = calloc(1, sizeof *r);
    size_t len, off = 0;
    int n;
    long long get0 = bin_stat(c, NULL, "cmd_get", &n);
    ck_assert_int_eq(get0, 0);
    ck_assert_int_gt(n, 20);
    ck_assert_int_eq(bin_stat(c, NULL, "curr_connections", &n), 1);
    ck_assert_int_eq(bin_stat(c, "settings", "item_size_max", &n), 1048576);
    add_set(r, B_SET, "a", "1", 0, 0, 1, 0);
    add(r, B_GET, NULL, 0, "a", NULL, 2, 0);
    add(r, B_GETQ, NULL, 0, "b", NULL, 3, 0);
    add_touch(r, B_TOUCH, "a", 0, 4);
    add_touch(r, B_GAT, "b", 0, 5);
    add(r, B_DELETE, NULL, 0, "b", NULL, 6, 0);
    add_delta(r, B_INCR, "a", 1, 0, 0, 7, 0);
    add_delta(r, B_DECR, "z", 1, 0, 0xffffffffu, 8, 0);
    add(r, B_FLUSH, NULL, 0, NULL, NULL, 9, 0);
    add_set(r, B_SET, "x", "1", 0, 0, 10, 12345);
    send_req(c, r, &len);
    ck_assert_int_eq(bin_stat(c, NULL, "cmd_get", &n), 2);
    ck_assert_int_eq(bin_stat(c, NULL, "get_hits", &n), 1);
    ck_assert_int_eq(bin_stat(c, NULL, "get_misses", &n), 1);
    ck_assert_int_eq(bin_stat(c, NULL, "cmd_touch", &n), 2);
    ck_assert_int_eq(bin_stat(c, NULL, "touch_hits", &n), 1);
    ck_assert_int_eq(bin_stat(c, NULL, "touch_misses", &n), 1);
    ck_assert_int_eq(bin_stat(c, NULL, "delete_misses", &n), 1);
    ck_assert_int_eq(bin_stat(c, NULL, "incr_hits", &n), 1);
    ck_assert_int_eq(bin_stat(c, NULL, "decr_misses", &n), 1);
    ck_assert_int_eq(bin_stat(c, NULL, "cmd_flush", &n), 1);
    ck_assert_int_eq(bin_stat(c, NULL, "cmd_set", &n), 2);
    ck_assert_int_eq(bin_stat(c, NULL, "cas_misses", &n), 1);
    ck_assert_int_gt(bin_stat(c, NULL, "bytes_read", &n), 300);
    ck_assert_int_gt(bin_stat(c, NULL, "bytes_written", &n), 1000);
    /* reset: the end packet alone; an unknown group: "Not found". */
    ck_assert_int_eq(bin_stat(c, "reset", "x", &n), -1);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(bin_stat(c, NULL, "cmd_get", &n), 0);
    add(r, B_STAT, NULL, 0, "bogus", NULL, 78, 0);
    add(r, B_STAT, NULL, 0, "a b c d", NULL, 79, 0);
    const unsigned char *out = send_req(c, r, &len);
    ERR(B_STAT, 1, "Not found", 78);
    ERR(B_STAT, 1, "Not found", 79);
    DONE();
    free(r);
    wharf_test_free(t);
}
END_TEST

/* A client that sends gets for a 100 KB value and never reads: the handler
 * stops taking them while output is pending. */
START_TEST(client_that_does_not_read)
{
    wharf_test *t = mc_test_new(NULL);
    wharf_test_conn *c = wharf_test_connect(t);
    struct req *r = calloc(1, sizeof *r);
    char *val = malloc(100001);
    memset(val, 'b', 100000);
    val[100000] = '\0';
    unsigned char ext[8] = {0};
    add_raw(r, 0x80, B_SET, ext, 8, "big", 3, NULL, 0, 1, 0, 100011);
    wharf_test_send(c, r->b, r->n);
    wharf_test_send(c, val, 100000);
    size_t len;
    wharf_test_output(c, &len);
    ck_assert_uint_eq(len, 24);
    r->n = 0;
    for (int i = 0; i < 200; i++)
        add(r, B_GET, NULL, 0, "big", NULL, (uint32_t)i, 0);
    wharf_test_pause_reading(c, true);
    wharf_test_send(c, r->b, r->n);
    wharf_conn *wc = wharf_test_handle(c);
    ck_assert_ptr_nonnull(wc);
    ck_assert_uint_lt(wharf_output_pending(wc), 64 * 1024 + 100100);
    wharf_test_pause_reading(c, false);
    size_t total = 0, want = 200 * (size_t)(24 + 4 + 100000);
    for (int i = 0; i < 2000 && total < want; i++) {
        size_t n;
        wharf_test_output(c, &n);
        total += n;
        wharf_test_run(t, 10);
    }
    ck_assert_uint_eq(total, want);
    ck_assert(!wharf_test_closed(c, NULL));
    free(val);
    free(r);
    wharf_test_free(t);
}
END_TEST

/* Random requests (valid magic, any opcode, lengths and cas; bodies up to
 * a few hundred bytes, some lengths that lie) fed in random pieces: the
 * handler survives all of them (run it under valgrind or ASan to see that
 * it reads nothing it should not), and answers a noop afterwards. */
START_TEST(random_requests)
{
    wharf_test *t = mc_test_new("\"item_size_max\": 200");
    struct req *r = calloc(1, sizeof *r);
    unsigned seed = 12345;
    for (int round = 0; round < 300; round++) {
        wharf_test_conn *c = wharf_test_connect(t);
        r->n = 0;
        for (int k = 0; k < 8; k++) {
            seed = seed * 1103515245u + 12345u;
            int op = (int)(seed >> 16) % 0x28;
            size_t extlen = (seed >> 8) % 3 == 0 ? (seed >> 4) % 24 : 0;
            size_t keylen = (seed >> 12) % 12;
            size_t vlen = (seed >> 20) % 300;
            uint32_t body = (uint32_t)(extlen + keylen + vlen);
            if ((seed >> 28) == 0) /* sometimes a length that lies */
                body = (seed >> 3) % 4 ? body / 2 : 0xfffffff0u;
            unsigned char bytes[600];
            for (size_t i = 0; i < sizeof bytes; i++)
                bytes[i] = (unsigned char)(seed >> (i % 24));
            add_raw(r, 0x80, op, bytes, extlen, (const char *)bytes + 30, keylen, bytes + 50,
                    vlen, (uint32_t)k, (seed >> 2) % 5 ? 0 : seed, body);
        }
        size_t at = 0;
        while (at < r->n && !wharf_test_closed(c, NULL)) {
            seed = seed * 1103515245u + 12345u;
            size_t piece = 1 + (seed >> 16) % 97;
            if (piece > r->n - at)
                piece = r->n - at;
            wharf_test_send(c, r->b + at, piece);
            wharf_test_output(c, NULL);
            at += piece;
        }
        wharf_test_close(c);
    }
    wharf_test_conn *c = wharf_test_connect(t);
    r->n = 0;
    add(r, B_NOOP, NULL, 0, NULL, NULL, 9, 0);
    size_t len, off = 0;
    const unsigned char *out = send_req(c, r, &len);
    OK(B_NOOP, 9, 0);
    DONE();
    free(r);
    wharf_test_free(t);
}
END_TEST

/* ---- side by side with the installed memcached ---------------------------- */

/* Reads packets from fd until one with opcode `until` (or EOF/timeout) into
 * out; returns the bytes read. */
static size_t read_until(int fd, unsigned char *out, size_t cap, int until)
{
    size_t n = 0;
    while (n + 24 <= cap) {
        if (recv_exact(fd, out + n, 24, 3000) != 24)
            break;
        size_t bl = get_be(out + n + 8, 4);
        ck_assert_uint_le(n + 24 + bl, cap);
        ck_assert_uint_eq(recv_exact(fd, out + n + 24, bl, 3000), bl);
        int op = out[n + 1];
        n += 24 + bl;
        if (op == until)
            break;
    }
    return n;
}

/* memcached's cas ids count up from 1 for the whole server; wharf's are
 * per-shard sequences with the shard in the low bits.  Both are opaque to
 * clients, so each cas is replaced by its order of first appearance
 * (0 stays 0): equal ids stay equal, different ones different. */
static void cas_normalise(unsigned char *p, size_t n)
{
    uint64_t seen[256];
    size_t ns = 0;
    for (size_t off = 0; off + 24 <= n; off += 24 + get_be(p + off + 8, 4)) {
        uint64_t v = get_be(p + off + 16, 8), idx = 0;
        if (v) {
            size_t i = 0;
            while (i < ns && seen[i] != v)
                i++;
            if (i == ns && ns < 256)
                seen[ns++] = v;
            idx = i + 1;
        }
        put_be(p + off + 16, idx, 8);
    }
}

struct side {
    int port;
    int fd;
    unsigned char *got;
    size_t n;
};

/* The exchanges: each ends with a noop (or a closing error), the answers of
 * both servers compared byte for byte. */
static void exchange(struct side *s, const struct req *r, int until)
{
    send_all(s->fd, r->b, r->n);
    s->n = read_until(s->fd, s->got, 1 << 22, until);
}

static void compare(struct side *m, struct side *w, const char *what)
{
    cas_normalise(m->got, m->n);
    cas_normalise(w->got, w->n);
    ck_assert_msg(m->n > 0, "%s: memcached answered nothing", what);
    ck_assert_msg(m->n == w->n, "%s: memcached %zu bytes, wharf %zu", what, m->n, w->n);
    for (size_t i = 0; i < m->n; i++)
        ck_assert_msg(m->got[i] == w->got[i], "%s: byte %zu: memcached 0x%02x, wharf 0x%02x",
                      what, i, m->got[i], w->got[i]);
}

static void build_main(struct req *r)
{
    add(r, B_FLUSH, NULL, 0, NULL, NULL, 1, 0);
    add_set(r, B_SET, "k1", "hello", 0xdeadbeef, 0, 2, 0);
    add(r, B_GET, NULL, 0, "k1", NULL, 3, 0);
    add(r, B_GETK, NULL, 0, "k1", NULL, 4, 0);
    add(r, B_GET, NULL, 0, "missing", NULL, 5, 0);
    add(r, B_GETK, NULL, 0, "missing", NULL, 6, 0);
    add_set(r, B_ADD, "k1", "x", 0, 0, 7, 0);
    add_set(r, B_ADD, "k2", "v2", 1, 0, 8, 0);
    add_set(r, B_REPLACE, "missing", "x", 0, 0, 9, 0);
    add_set(r, B_REPLACE, "k2", "w2", 2, 0, 10, 0);
    add(r, B_APPEND, NULL, 0, "k1", "!", 11, 0);
    add(r, B_PREPEND, NULL, 0, "k1", "<", 12, 0);
    add(r, B_APPEND, NULL, 0, "missing", "!", 13, 0);
    add(r, B_GETK, NULL, 0, "k1", NULL, 14, 0);
    add(r, B_DELETE, NULL, 0, "k2", NULL, 15, 0);
    add(r, B_DELETE, NULL, 0, "k2", NULL, 16, 0);
    add_delta(r, B_INCR, "n", 1, 10, 0, 17, 0);
    add_delta(r, B_INCR, "n", 5, 0, 0, 18, 0);
    add_delta(r, B_DECR, "n", 100, 0, 0, 19, 0);
    add_delta(r, B_INCR, "none", 1, 0, 0xffffffffu, 20, 0);
    add_delta(r, B_INCR, "k1", 1, 0, 0, 21, 0);
    add_set(r, B_SET, "w", "18446744073709551615", 0, 0, 22, 0);
    add_delta(r, B_INCR, "w", 2, 0, 0, 23, 0);
    add(r, B_GET, NULL, 0, "w", NULL, 24, 0);
    add_touch(r, B_TOUCH, "k1", 1000, 25);
    add_touch(r, B_GAT, "k1", 1000, 26);
    add_touch(r, B_GATK, "k1", 1000, 27);
    add_touch(r, B_TOUCH, "missing", 1000, 28);
    add_touch(r, B_GAT, "missing", 1000, 29);
    add_touch(r, B_GATK, "missing", 1000, 30);
    add(r, 0x50, NULL, 0, NULL, NULL, 31, 0);
    add(r, B_SASL_LIST, NULL, 0, NULL, NULL, 32, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 33, 0);
}

static void build_quiet(struct req *r)
{
    add_set(r, B_SETQ, "a", "1", 0, 0, 1, 0);
    add_set(r, B_SETQ, "b", "2", 7, 0, 2, 0);
    add_set(r, B_ADDQ, "a", "x", 0, 0, 3, 0);
    add_set(r, B_REPLACEQ, "missing", "x", 0, 0, 4, 0);
    add_set(r, B_REPLACEQ, "b", "3", 7, 0, 5, 0);
    add(r, B_GETQ, NULL, 0, "a", NULL, 6, 0);
    add(r, B_GETQ, NULL, 0, "missing", NULL, 7, 0);
    add(r, B_GETKQ, NULL, 0, "b", NULL, 8, 0);
    add(r, B_GETKQ, NULL, 0, "missing", NULL, 9, 0);
    add(r, B_DELETEQ, NULL, 0, "missing", NULL, 10, 0);
    add_delta(r, B_INCRQ, "c", 1, 5, 0, 11, 0);
    add_delta(r, B_DECRQ, "c", 2, 0, 0, 12, 0);
    add_delta(r, B_INCRQ, "nonec", 2, 0, 0xffffffffu, 13, 0);
    add(r, B_APPENDQ, NULL, 0, "a", "z", 14, 0);
    add(r, B_PREPENDQ, NULL, 0, "a", "y", 15, 0);
    add(r, B_APPENDQ, NULL, 0, "missing", "y", 16, 0);
    add_touch(r, B_GATQ, "a", 0, 17);
    add_touch(r, B_GATKQ, "missing", 0, 18);
    add(r, B_DELETEQ, NULL, 0, "b", NULL, 19, 0);
    add(r, B_GETQ, NULL, 0, "c", NULL, 20, 0);
    add(r, B_FLUSHQ, NULL, 0, NULL, NULL, 21, 0);
    add(r, B_GETQ, NULL, 0, "a", NULL, 22, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 23, 0);
}

/* CAS on every opcode that takes one, with the ids this server gave. */
static void cas_exchange(struct side *s)
{
    struct req *r = calloc(1, sizeof *r);
    unsigned char *all = malloc(1 << 16);
    size_t na = 0;
    add_set(r, B_SET, "cx", "orig", 0, 0, 1, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 2, 0);
    exchange(s, r, B_NOOP);
    uint64_t c1 = get_be(s->got + 16, 8);
    memcpy(all, s->got, s->n);
    na += s->n;
    r->n = 0;
    add_set(r, B_SET, "cx", "bad", 0, 0, 3, c1 + 1000);
    add_set(r, B_REPLACE, "cx", "bad", 0, 0, 4, c1 + 1000);
    add_set(r, B_SET, "cmissing", "bad", 0, 0, 5, c1);
    add_set(r, B_ADD, "cmissing", "bad", 0, 0, 6, c1);
    add(r, B_APPEND, NULL, 0, "cx", "bad", 7, c1 + 1000);
    add(r, B_DELETE, NULL, 0, "cx", NULL, 8, c1 + 1000);
    add_delta(r, B_INCR, "cx", 1, 0, 0, 9, c1 + 1000);
    add(r, B_APPEND, NULL, 0, "cx", "+", 10, c1);
    add(r, B_GET, NULL, 0, "cx", NULL, 11, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 12, 0);
    exchange(s, r, B_NOOP);
    memcpy(all + na, s->got, s->n);
    na += s->n;
    memcpy(s->got, all, na);
    s->n = na;
    free(all);
    free(r);
}

static pid_t start_memcached(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    close(fd); /* memcached binds it next (a small race with other programs) */
    char ps[16];
    snprintf(ps, sizeof ps, "%d", *port);
    /* As root memcached wants a user to run as: not nobody, whose process
     * count check_wharfd.sh limits while it runs. */
    const char *user = getpwnam("daemon") ? "daemon" : "nobody";
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (geteuid() == 0)
            execl("/usr/bin/memcached", "memcached", "-u", user, "-l", "127.0.0.1", "-p", ps,
                  "-U", "0", "-t", "1", (char *)NULL);
        else
            execl("/usr/bin/memcached", "memcached", "-l", "127.0.0.1", "-p", ps, "-U", "0",
                  "-t", "1", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        int c = tcp_try_connect("127.0.0.1", *port);
        if (c >= 0) {
            close(c);
            return pid;
        }
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("memcached did not start on port %d", *port);
    return -1;
}

START_TEST(same_bytes_as_memcached)
{
    if (access("/usr/bin/memcached", X_OK) != 0) {
        fprintf(stderr, "same_bytes_as_memcached: no /usr/bin/memcached, skipped\n");
        return;
    }
    struct side m = {0}, w = {0};
    pid_t mpid = start_memcached(&m.port);
    char err[512] = "";
    wharf_server *srv = wharf_test_serve(&wharf_handler, 1, MC_TEST_BUFFERS, &w.port, err, sizeof err);
    ck_assert_msg(srv != NULL, "%s", err);
    m.got = malloc(1 << 22);
    w.got = malloc(1 << 22);
    struct side *both[2] = {&m, &w};
    struct req *r = calloc(1, sizeof *r);
    for (int i = 0; i < 2; i++)
        both[i]->fd = tcp_connect("127.0.0.1", both[i]->port);

    build_main(r);
    for (int i = 0; i < 2; i++)
        exchange(both[i], r, B_NOOP);
    compare(&m, &w, "every opcode");

    r->n = 0;
    build_quiet(r);
    for (int i = 0; i < 2; i++)
        exchange(both[i], r, B_NOOP);
    compare(&m, &w, "quiet opcodes");

    for (int i = 0; i < 2; i++)
        cas_exchange(both[i]);
    compare(&m, &w, "cas");

    /* A value past item_size_max (1 MiB on both): answered, swallowed,
     * and the stale value gone. */
    r->n = 0;
    add_set(r, B_SET, "tb", "small", 0, 0, 1, 0);
    size_t vlen = (1 << 20) + 1;
    unsigned char ext[8] = {0};
    add_raw(r, 0x80, B_SET, ext, 8, "tb", 2, NULL, 0, 2, 0, (uint32_t)(10 + vlen));
    char *big = malloc(vlen);
    memset(big, 'x', vlen);
    for (int i = 0; i < 2; i++) {
        send_all(both[i]->fd, r->b, r->n);
        send_all(both[i]->fd, big, vlen);
    }
    free(big);
    r->n = 0;
    add(r, B_GET, NULL, 0, "tb", NULL, 3, 0);
    add(r, B_NOOP, NULL, 0, NULL, NULL, 4, 0);
    for (int i = 0; i < 2; i++)
        exchange(both[i], r, B_NOOP);
    compare(&m, &w, "too large");

    /* Errors that close, each on its own connection, read to EOF. */
    static const struct { int magic, op; size_t extlen, keylen; uint32_t bodylen; } closing[] = {
        {0x80, B_GET, 0, 251, 251},     /* key too long */
        {0x80, B_GET, 4, 1, 5},         /* extras on a get */
        {0x80, B_SET, 4, 1, 5},         /* short extras on a set */
        {0x80, B_INCR, 8, 1, 9},        /* short extras on an incr */
        {0x80, B_GET, 0, 3, 2},         /* body shorter than the key */
        {0x80, B_NOOP, 0, 0, 4},        /* a body on a noop */
        {0x80, B_QUIT, 0, 0, 0},
        {0x80, B_QUITQ, 0, 0, 0},
        {0x82, B_NOOP, 0, 0, 0},        /* bad magic (after a noop) */
    };
    char key[300];
    memset(key, 'k', sizeof key);
    unsigned char zeros[64] = {0};
    for (size_t k = 0; k < sizeof closing / sizeof closing[0]; k++) {
        r->n = 0;
        add(r, B_NOOP, NULL, 0, NULL, NULL, 100, 0);
        add_raw(r, closing[k].magic, closing[k].op, zeros, closing[k].extlen, key,
                closing[k].keylen, NULL, 0, 101, 0, closing[k].bodylen);
        size_t head = closing[k].extlen + closing[k].keylen;
        size_t blen = closing[k].bodylen > head ? closing[k].bodylen - head : 0;
        memcpy(r->b + r->n, zeros, blen); /* the body past extras and key */
        r->n += blen;
        add(r, B_NOOP, NULL, 0, NULL, NULL, 102, 0);
        for (int i = 0; i < 2; i++) {
            int fd = tcp_connect("127.0.0.1", both[i]->port);
            send_all(fd, r->b, r->n);
            both[i]->n = read_until(fd, both[i]->got, 1 << 22, -1);
            ck_assert_msg(wait_closed(fd, 3000), "case %zu: %s did not close", k,
                          i ? "wharf" : "memcached");
            close(fd);
        }
        char what[32];
        snprintf(what, sizeof what, "closing case %zu", k);
        compare(&m, &w, what);
    }

    for (int i = 0; i < 2; i++)
        close(both[i]->fd);
    free(r);
    free(m.got);
    free(w.got);
    wharf_server_free(srv);
    kill(mpid, SIGTERM);
    waitpid(mpid, NULL, 0);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("mc_binary");
    TCase *tc = tcase_create("binary");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_opcode);
    tcase_add_test(tc, expiry_and_delayed_flush);
    tcase_add_test(tc, quiet_pipeline_then_noop);
    tcase_add_test(tc, cas_on_every_opcode);
    tcase_add_test(tc, every_split);
    tcase_add_test(tc, errors_that_close);
    tcase_add_test(tc, errors_that_go_on);
    tcase_add_test(tc, huge_body_is_swallowed);
    tcase_add_test(tc, stat_and_counters);
    tcase_add_test(tc, client_that_does_not_read);
    tcase_add_test(tc, random_requests);
    tcase_add_test(tc, same_bytes_as_memcached);
    suite_add_tcase(s, tc);
    return check_run(s);
}
