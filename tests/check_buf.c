/*
 * check_buf.c - tests for buf.c, the growable byte buffer: the empty state,
 * append/consume/reserve/commit, compaction in place of growth, growth
 * sizes, freeing, multi-MiB byte-exact round trips and size overflow.
 */
#include "check_main.h"
#include "buf.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The expected byte at stream offset i: not periodic in any power of two,
 * so a misplaced copy shows up. */
static char pattern(size_t i)
{
    return (char)((i * 7 + i / 251) & 0xff);
}

START_TEST(test_empty_has_no_memory)
{
    struct buf b = {0};
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
    ck_assert_uint_eq(b.len, 0);

    /* Appending nothing allocates nothing. */
    ck_assert_int_eq(buf_append(&b, NULL, 0), 0);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);

    /* Freeing an empty buffer is harmless and leaves it empty. */
    buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_append_consume)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_append(&b, "hello ", 6), 0);
    ck_assert_int_eq(buf_append(&b, "world", 5), 0);
    ck_assert_ptr_nonnull(b.data);
    ck_assert_uint_eq(b.cap, 4096);
    ck_assert_uint_eq(b.len, 11);
    ck_assert_int_eq(memcmp(buf_head(&b), "hello world", 11), 0);

    buf_consume(&b, 6);
    ck_assert_uint_eq(b.start, 6);
    ck_assert_uint_eq(b.len, 5);
    ck_assert_int_eq(memcmp(buf_head(&b), "world", 5), 0);

    /* Emptying resets start; the memory stays for the next append. */
    buf_consume(&b, 5);
    ck_assert_uint_eq(b.start, 0);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 4096);
    ck_assert_ptr_nonnull(b.data);

    ck_assert_int_eq(buf_append(&b, "x", 1), 0);
    ck_assert_uint_eq(b.start, 0);
    ck_assert_int_eq(buf_head(&b)[0], 'x');
    buf_free(&b);
}
END_TEST

START_TEST(test_reserve_commit)
{
    struct buf b = {0};
    char *p = buf_reserve(&b, 100);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(b.cap - b.start - b.len, 100);
    ck_assert_uint_eq(b.len, 0);

    memcpy(p, "0123456789", 10);
    buf_commit(&b, 10);
    ck_assert_uint_eq(b.len, 10);
    ck_assert_int_eq(memcmp(buf_head(&b), "0123456789", 10), 0);

    /* The next reserve points just past the committed bytes. */
    p = buf_reserve(&b, 5);
    ck_assert_ptr_eq(p, buf_head(&b) + 10);
    memcpy(p, "abcde", 5);
    buf_commit(&b, 3);
    ck_assert_uint_eq(b.len, 13);
    ck_assert_int_eq(memcmp(buf_head(&b), "0123456789abc", 13), 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_reserve_zero_allocates)
{
    /* reserve(0) on a buffer with no memory still returns a usable pointer,
     * so NULL always means ENOMEM. */
    struct buf b = {0};
    ck_assert_ptr_nonnull(buf_reserve(&b, 0));
    ck_assert_uint_eq(b.cap, 4096);
    buf_free(&b);
}
END_TEST

START_TEST(test_compacts_instead_of_growing)
{
    struct buf b = {0};
    char chunk[3000];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = pattern(i);
    ck_assert_int_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
    buf_consume(&b, 2000);
    ck_assert_uint_eq(b.start, 2000);
    char *before = b.data;

    /* 1096 bytes free at the end, 3096 after compaction: enough. */
    char *p = buf_reserve(&b, 3000);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_eq(b.data, before);
    ck_assert_uint_eq(b.cap, 4096);
    ck_assert_uint_eq(b.start, 0);
    ck_assert_uint_eq(b.len, 1000);
    ck_assert_ptr_eq(p, b.data + 1000);
    ck_assert_int_eq(memcmp(buf_head(&b), chunk + 2000, 1000), 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_grows_when_compaction_is_not_enough)
{
    struct buf b = {0};
    char chunk[3000];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = pattern(i);
    ck_assert_int_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
    buf_consume(&b, 1000);

    /* 2000 held + 3000 wanted > 4096: the capacity doubles. */
    ck_assert_int_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
    ck_assert_uint_eq(b.cap, 8192);
    ck_assert_uint_eq(b.start, 0);
    ck_assert_uint_eq(b.len, 5000);
    ck_assert_int_eq(memcmp(buf_head(&b), chunk + 1000, 2000), 0);
    ck_assert_int_eq(memcmp(buf_head(&b) + 2000, chunk, 3000), 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_free_when_empty)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
    buf_consume(&b, 3);
    buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.start, 0);

    /* The buffer is reusable after buf_free. */
    ck_assert_int_eq(buf_append(&b, "de", 2), 0);
    ck_assert_int_eq(memcmp(buf_head(&b), "de", 2), 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_free_drops_held_bytes)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
    buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_large_single_append)
{
    const size_t n = 5u << 20; /* 5 MiB */
    char *src = malloc(n);
    ck_assert_ptr_nonnull(src);
    for (size_t i = 0; i < n; i++)
        src[i] = pattern(i);

    struct buf b = {0};
    ck_assert_int_eq(buf_append(&b, src, n), 0);
    ck_assert_uint_eq(b.cap, 8u << 20); /* 4096 doubled to the next fit */
    ck_assert_uint_eq(b.len, n);
    ck_assert_int_eq(memcmp(buf_head(&b), src, n), 0);
    buf_free(&b);
    free(src);
}
END_TEST

START_TEST(test_large_streaming_byte_exact)
{
    /* Interleave odd-sized appends and consumes over 8 MiB, checking every
     * byte that comes out and that the capacity stays a power of two. */
    const size_t total = 8u << 20;
    char chunk[7919];
    struct buf b = {0};
    size_t in = 0, out = 0;

    while (out < total) {
        size_t n = sizeof(chunk);
        if (n > total - in)
            n = total - in;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(in + i);
        if (n > 0) {
            /* Alternate between the two ways of adding bytes. */
            if ((in / sizeof(chunk)) % 2 == 0) {
                ck_assert_int_eq(buf_append(&b, chunk, n), 0);
            } else {
                char *p = buf_reserve(&b, n);
                ck_assert_ptr_nonnull(p);
                memcpy(p, chunk, n);
                buf_commit(&b, n);
            }
            in += n;
        }
        ck_assert_uint_eq(b.cap & (b.cap - 1), 0);

        /* Consume a little less than was added, unless all is in. */
        size_t take = n > 0 ? n - n / 3 : b.len;
        if (take > b.len)
            take = b.len;
        const char *h = buf_head(&b);
        for (size_t i = 0; i < take; i++)
            if (h[i] != pattern(out + i))
                ck_abort_msg("byte %zu differs", out + i);
        buf_consume(&b, take);
        out += take;
    }
    ck_assert_uint_eq(in, total);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.start, 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_size_overflow)
{
    struct buf b = {0};
    /* Too large on its own (above PTRDIFF_MAX): refused, nothing allocated. */
    ck_assert_ptr_null(buf_reserve(&b, SIZE_MAX));
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);

    ck_assert_int_eq(buf_append(&b, "0123456789", 10), 0);
    buf_consume(&b, 4);
    char *data = b.data;

    /* len + n would wrap: refused, the buffer is unchanged. */
    ck_assert_ptr_null(buf_reserve(&b, SIZE_MAX - 3));
    ck_assert_int_eq(buf_append(&b, "x", SIZE_MAX - 5), -ENOMEM);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.start, 4);
    ck_assert_uint_eq(b.len, 6);
    ck_assert_uint_eq(b.cap, 4096);
    ck_assert_int_eq(memcmp(buf_head(&b), "456789", 6), 0);
    buf_free(&b);
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_empty_has_no_memory);
    tcase_add_test(tc, test_append_consume);
    tcase_add_test(tc, test_reserve_commit);
    tcase_add_test(tc, test_reserve_zero_allocates);
    tcase_add_test(tc, test_compacts_instead_of_growing);
    tcase_add_test(tc, test_grows_when_compaction_is_not_enough);
    tcase_add_test(tc, test_free_when_empty);
    tcase_add_test(tc, test_free_drops_held_bytes);
    tcase_add_test(tc, test_large_single_append);
    tcase_add_test(tc, test_large_streaming_byte_exact);
    tcase_add_test(tc, test_size_overflow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(buf_suite());
}
