/* check_hist.c - tests of wharf-load's latency histogram (tools/wharf-load/hist.c):
 * bucket precision, percentiles against exact values on known data, merging, the spectrum,
 * and the file format (round trip; damaged files rejected with a message). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "../tools/wharf-load/hist.h"

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Exact nearest-rank percentile of sorted v[0..n). */
static uint64_t exact_pct(const uint64_t *v, size_t n, double p)
{
    double x = p / 100.0 * (double)n;
    size_t r = (size_t)ceil(x - 1e-9);

    if (r < 1)
        r = 1;
    if (r > n)
        r = n;
    return v[r - 1];
}

/* hist_percentile must be within the stated precision of the exact value: never below it,
 * and above by at most 1/1024 of it (one sub-bucket). */
static void check_close(uint64_t got, uint64_t want, double p)
{
    ck_assert_msg(got >= want && (double)(got - want) <= (double)want / 1024.0 + 1.0,
                  "p%g: got %llu, exact %llu", p, (unsigned long long)got,
                  (unsigned long long)want);
}

static char *tmpname(char *buf, size_t len)
{
    int fd;

    snprintf(buf, len, "/tmp/check_hist-XXXXXX");
    fd = mkstemp(buf);
    ck_assert_int_ge(fd, 0);
    close(fd);
    return buf;
}

START_TEST(test_bucket_precision)
{
    uint64_t v;
    size_t i, idx;
    int k;

    for (v = 0; v < 5000; v++) {
        idx = hist_index(v);
        ck_assert_uint_le(hist_lowest(idx), v);
        ck_assert_uint_ge(hist_highest(idx), v);
    }
    for (v = 0; v < 2048; v++)
        ck_assert_uint_eq(hist_lowest(hist_index(v)), hist_highest(hist_index(v)));
    for (k = 0; k < 100000; k++) {
        v = rnd() & HIST_MAX_VALUE;
        idx = hist_index(v);
        ck_assert_uint_lt(idx, HIST_NBUCKETS);
        ck_assert_uint_le(hist_lowest(idx), v);
        ck_assert_uint_ge(hist_highest(idx), v);
        ck_assert(hist_highest(idx) - hist_lowest(idx) <= v / 1024);
    }
    /* buckets tile the range without gaps */
    for (i = 0; i + 1 < HIST_NBUCKETS; i++)
        ck_assert_uint_eq(hist_highest(i) + 1, hist_lowest(i + 1));
    ck_assert_uint_eq(hist_index(HIST_MAX_VALUE), HIST_NBUCKETS - 1);
}
END_TEST

START_TEST(test_percentiles_uniform_exact)
{
    static const double ps[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100};
    struct hist *h = hist_new();
    uint64_t *v = malloc(100000 * sizeof(*v));
    size_t i, n = 100000;

    /* 1 us .. 100 ms in 1 us steps, shuffled order */
    for (i = 0; i < n; i++)
        v[i] = (i + 1) * 1000;
    for (i = 0; i < n; i++)
        hist_record(h, v[(i * 7919) % n]);
    for (i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
        check_close(hist_percentile(h, ps[i]), exact_pct(v, n, ps[i]), ps[i]);
    ck_assert_uint_eq(h->total, n);
    ck_assert_uint_eq(h->min, 1000);
    ck_assert_uint_eq(h->max, 100000000);
    ck_assert_uint_eq(hist_percentile(h, 100), 100000000);
    ck_assert(fabs(hist_mean(h) - 50000500.0) < 1.0);
    ck_assert(fabs(hist_stddev(h) - 28867513.0) < 100.0);
    free(v);
    hist_free(h);
}
END_TEST

START_TEST(test_percentiles_small_values_exact)
{
    struct hist *h = hist_new();
    uint64_t v;

    for (v = 1; v <= 1000; v++)
        hist_record(h, v);
    ck_assert_uint_eq(hist_percentile(h, 50), 500);
    ck_assert_uint_eq(hist_percentile(h, 99), 990);
    ck_assert_uint_eq(hist_percentile(h, 99.9), 999);
    ck_assert_uint_eq(hist_percentile(h, 100), 1000);
    ck_assert_uint_eq(hist_percentile(h, 0), 1);
    hist_free(h);
}
END_TEST

START_TEST(test_percentiles_random_data)
{
    struct hist *h = hist_new();
    size_t n = 50000, i;
    uint64_t *v = malloc(n * sizeof(*v));
    double p;

    /* log-uniform-ish: 100 ns .. ~10 s */
    for (i = 0; i < n; i++) {
        v[i] = 100 + (rnd() % 1000) * (1ull << (rnd() % 24));
        hist_record(h, v[i]);
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    for (p = 0.5; p < 100; p += 0.5)
        check_close(hist_percentile(h, p), exact_pct(v, n, p), p);
    check_close(hist_percentile(h, 99.99), exact_pct(v, n, 99.99), 99.99);
    ck_assert_uint_eq(hist_percentile(h, 100), v[n - 1]);
    free(v);
    hist_free(h);
}
END_TEST

START_TEST(test_percentiles_bimodal)
{
    struct hist *h = hist_new();
    int i;

    for (i = 0; i < 990; i++)
        hist_record(h, 100000); /* 100 us */
    for (i = 0; i < 10; i++)
        hist_record(h, 1000000000); /* 1 s */
    check_close(hist_percentile(h, 99), 100000, 99);
    check_close(hist_percentile(h, 99.1), 1000000000, 99.1);
    ck_assert_uint_eq(hist_percentile(h, 100), 1000000000);
    ck_assert_uint_eq(hist_percentile(h, 0), 100000);
    hist_free(h);
}
END_TEST

START_TEST(test_empty_and_saturated)
{
    struct hist *h = hist_new();

    ck_assert_uint_eq(hist_percentile(h, 99), 0);
    ck_assert(hist_mean(h) == 0.0);
    hist_record(h, HIST_MAX_VALUE + 12345);
    ck_assert_uint_eq(h->saturated, 1);
    ck_assert_uint_eq(h->max, HIST_MAX_VALUE);
    ck_assert_uint_eq(hist_percentile(h, 50), HIST_MAX_VALUE);
    hist_free(h);
}
END_TEST

START_TEST(test_merge_equals_combined)
{
    struct hist *a = hist_new(), *b = hist_new(), *all = hist_new(), *m = hist_new();
    int i;

    for (i = 0; i < 20000; i++) {
        uint64_t v = rnd() % 50000000;

        hist_record(i % 3 ? a : b, v);
        hist_record(all, v);
    }
    hist_record(b, 7); /* b holds the minimum */
    hist_record(all, 7);
    hist_merge(m, a);
    hist_merge(m, b);
    ck_assert_uint_eq(m->total, all->total);
    ck_assert_uint_eq(m->min, all->min);
    ck_assert_uint_eq(m->max, all->max);
    ck_assert_int_eq(memcmp(m->counts, all->counts, sizeof(m->counts)), 0);
    ck_assert(fabs(m->sum - all->sum) <= all->sum * 1e-12);
    ck_assert_uint_eq(hist_percentile(m, 99.9), hist_percentile(all, 99.9));
    /* merging an empty histogram changes nothing */
    hist_reset(a);
    hist_merge(m, a);
    ck_assert_uint_eq(m->total, all->total);
    ck_assert_uint_eq(m->min, 7);
    /* a live view sees the same counts */
    hist_reset(a);
    hist_merge_live(a, all);
    ck_assert_uint_eq(a->total, all->total);
    ck_assert_uint_eq(hist_percentile(a, 99), hist_percentile(all, 99));
    hist_free(a);
    hist_free(b);
    hist_free(all);
    hist_free(m);
}
END_TEST

START_TEST(test_spectrum)
{
    struct hist *h = hist_new();
    struct hist_point pts[1024];
    size_t n, i;

    for (i = 1; i <= 100000; i++)
        hist_record(h, i * 100);
    n = hist_spectrum(h, 5, pts, 1024);
    ck_assert_uint_gt(n, 50);
    ck_assert(pts[n - 1].percentile == 100.0);
    ck_assert_uint_eq(pts[n - 1].value, h->max);
    ck_assert_uint_eq(pts[n - 1].count_at, h->total);
    for (i = 1; i < n; i++) {
        ck_assert(pts[i].percentile >= pts[i - 1].percentile);
        ck_assert_uint_ge(pts[i].value, pts[i - 1].value);
        ck_assert_uint_ge(pts[i].count_at, pts[i - 1].count_at);
    }
    /* the table passes through 50 % and 90 % */
    for (i = 0; i < n && pts[i].percentile < 50; i++)
        ;
    ck_assert(fabs(pts[i].percentile - 50) < 1e-9);
    check_close(pts[i].value, 5000000, 50);
    ck_assert_uint_eq(hist_spectrum(h, 5, pts, 1), 1);
    hist_free(h);
}
END_TEST

START_TEST(test_file_round_trip)
{
    struct hist *h = hist_new(), *r = hist_new();
    struct hist_file hf;
    char path[64], err[256];
    FILE *f;
    int i;

    for (i = 0; i < 30000; i++)
        hist_record(h, rnd() % 3000000000ull);
    hist_record(r, 5);
    f = fopen(tmpname(path, sizeof(path)), "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(hist_file_write_header(f, 30000, 2000000000, 3), 0);
    ck_assert_int_eq(hist_file_write_section(f, "corrected", h), 0);
    ck_assert_int_eq(hist_file_write_section(f, "raw", r), 0);
    hist_reset(r);
    ck_assert_int_eq(hist_file_write_section(f, "empty", r), 0);
    ck_assert_int_eq(fclose(f), 0);

    ck_assert_msg(hist_file_read(path, &hf, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(hf.nsections, 3);
    ck_assert_uint_eq(hf.messages, 30000);
    ck_assert_uint_eq(hf.duration_ns, 2000000000);
    ck_assert_uint_eq(hf.errors, 3);
    ck_assert_ptr_nonnull(hist_file_get(&hf, "corrected"));
    ck_assert_ptr_null(hist_file_get(&hf, "nope"));
    {
        struct hist *c = hist_file_get(&hf, "corrected");

        ck_assert_uint_eq(c->total, h->total);
        ck_assert_uint_eq(c->min, h->min);
        ck_assert_uint_eq(c->max, h->max);
        ck_assert_int_eq(memcmp(c->counts, h->counts, sizeof(h->counts)), 0);
        ck_assert(c->sum == h->sum);
        ck_assert_uint_eq(hist_percentile(c, 99.99), hist_percentile(h, 99.99));
        ck_assert_uint_eq(hist_file_get(&hf, "raw")->min, 5);
        ck_assert_uint_eq(hist_file_get(&hf, "empty")->total, 0);
    }
    hist_file_free(&hf);
    unlink(path);
    hist_free(h);
    hist_free(r);
}
END_TEST

/* Writes `text` to a temporary file and expects hist_file_read to reject it with a message
 * that contains `want` (and names the file). */
static void expect_reject(const char *text, const char *want)
{
    struct hist_file hf;
    char path[64], err[256];
    FILE *f = fopen(tmpname(path, sizeof(path)), "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(hist_file_read(path, &hf, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, want) != NULL, "expected '%s' in '%s'", want, err);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "message does not name the file: %s", err);
    ck_assert_int_eq(hf.nsections, 0);
    unlink(path);
}

#define HDR "wharf-load-hist 1\nmeta messages 3\n"
#define SEC                                                                                        \
    "hist corrected\nunit ns\nsub_bits 11\ntotal 3\nmin 5\nmax 9\nsaturated 0\n"                   \
    "sum 19\nsumsq 131\n"
#define EMPTY(name)                                                                                \
    "hist " name "\nunit ns\nsub_bits 11\ntotal 0\nmin 0\nmax 0\nsaturated 0\nsum 0\nsumsq 0\nend\n"

START_TEST(test_file_corrupt_rejected)
{
    struct hist_file hf;
    char path[64], err[256];
    FILE *f = fopen(tmpname(path, sizeof(path)), "w");

    /* the well-formed base case reads */
    fputs(HDR SEC "b 5 1\nb 9 2\nend\n", f);
    fclose(f);
    ck_assert_msg(hist_file_read(path, &hf, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(hist_percentile(hf.hists[0], 50), 9);
    hist_file_free(&hf);
    unlink(path);

    expect_reject("", "empty file");
    expect_reject("hello world\n", "not a wharf-load histogram");
    expect_reject("wharf-load-hist 2\n", "version '2'");
    expect_reject(HDR, "no histogram section");
    expect_reject(HDR SEC "b 5 1\nb 9 2\n", "not closed by 'end'");
    expect_reject(HDR SEC "b 5 1\nb 9 1\nend\n", "add up");
    expect_reject(HDR SEC "b 9 2\nb 5 1\nend\n", "not after");
    expect_reject(HDR SEC "b 999999 3\nend\n", "out of range");
    expect_reject(HDR SEC "b 5 x\nend\n", "b INDEX COUNT");
    expect_reject(HDR SEC "b 6 1\nb 9 2\nend\n", "min/max");
    expect_reject(HDR SEC "colour blue\nend\n", "unknown directive 'colour'");
    expect_reject(HDR "hist corrected\nunit ms\n", "unit 'ms'");
    expect_reject(HDR "hist corrected\nsub_bits 12\n", "sub_bits");
    expect_reject(HDR "hist a\ntotal 0\nend\n", "ends before");
    expect_reject(HDR "meta messages lots\n", "non-negative integer");
    expect_reject(HDR "surprise 1\n", "unexpected 'surprise'");
    expect_reject(HDR "meta messages\n", "expected 'meta KEY VALUE'");
    expect_reject(HDR "hist a_name_of_more_than_31_characters\n", "hist NAME");
    expect_reject(HDR "hist\n", "hist NAME");
    expect_reject(HDR SEC "b 5 1\nb 9 2\nend\n" SEC, "duplicate section 'corrected'");
    expect_reject(HDR EMPTY("a") EMPTY("b") EMPTY("c") EMPTY("d") "hist e\n", "too many sections");
    expect_reject(HDR "hist a\ntotal\n", "'total' needs a value");
    expect_reject(HDR "hist a\nsum -1\n", "sum: expected a non-negative number");
    expect_reject(HDR "hist a\nsumsq x\n", "sumsq: expected a non-negative number");
    expect_reject(HDR "hist a\nmax 1.5\n", "max: expected a non-negative integer");
    ck_assert_int_eq(hist_file_read("/nonexistent/x.hist", &hf, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

/* Lines longer than the reader's buffer are rejected, not split into two lines. */
START_TEST(test_file_long_line_rejected)
{
    char text[1024];

    snprintf(text, sizeof(text), HDR "# %0900d\n", 0);
    expect_reject(text, ":3: line too long");
}
END_TEST

/* The meta lines fill the file's figures (unknown keys ignored), comments, blank lines and
 * series blocks are passed over, and a section with no bucket reads as empty. */
START_TEST(test_file_meta_series_and_empty_section)
{
    struct hist_file hf;
    char path[64], err[256];
    FILE *f = fopen(tmpname(path, sizeof(path)), "w");

    fputs("# saved by a test\n\nwharf-load-hist 1\r\nmeta messages 3\nmeta duration_ns 500\n"
          "meta errors 7\nmeta colour 1\nseries\ninterval_ns 100\nhist x\nend\n" SEC
          "b 5 1\nb 9 2\nend\n" EMPTY("empty"),
          f);
    fclose(f);
    ck_assert_msg(hist_file_read(path, &hf, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(hf.messages, 3);
    ck_assert_uint_eq(hf.duration_ns, 500);
    ck_assert_uint_eq(hf.errors, 7);
    ck_assert_int_eq(hf.nsections, 2);
    ck_assert_ptr_eq(hist_file_get(&hf, "corrected"), hf.hists[0]);
    ck_assert_uint_eq(hist_file_get(&hf, "empty")->total, 0);
    ck_assert_uint_eq(hist_file_get(&hf, "empty")->min, UINT64_MAX);
    ck_assert_ptr_null(hist_file_get(&hf, "x"));
    hist_file_free(&hf);
    unlink(path);
}
END_TEST

static Suite *hist_suite(void)
{
    Suite *s = suite_create("hist");
    TCase *tc = tcase_create("values");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bucket_precision);
    tcase_add_test(tc, test_percentiles_uniform_exact);
    tcase_add_test(tc, test_percentiles_small_values_exact);
    tcase_add_test(tc, test_percentiles_random_data);
    tcase_add_test(tc, test_percentiles_bimodal);
    tcase_add_test(tc, test_empty_and_saturated);
    tcase_add_test(tc, test_merge_equals_combined);
    tcase_add_test(tc, test_spectrum);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_test(tc, test_file_round_trip);
    tcase_add_test(tc, test_file_corrupt_rejected);
    tcase_add_test(tc, test_file_long_line_rejected);
    tcase_add_test(tc, test_file_meta_series_and_empty_section);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return check_run(hist_suite()); }
