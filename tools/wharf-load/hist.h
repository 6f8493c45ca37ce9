/* hist.h - fixed-memory latency histogram for wharf-load (HDR-style log-linear buckets).
 *
 * Values are unsigned 64-bit integers (wharf-load records nanoseconds). Values below 2048
 * are counted exactly; above that each power of two is split into 1024 linear sub-buckets,
 * so every recorded value is known to within 1/1024 of itself (three significant digits).
 * The range is 0 .. HIST_MAX_VALUE (about 137 s in ns); larger values are counted in the
 * top bucket and in `saturated`. One histogram is about 230 KB and never grows.
 *
 * Concurrency: one thread records; other threads may read a live snapshot with
 * hist_merge_live() (the fields are C11 atomics, which the recording thread stores with
 * relaxed order: they cost nothing on x86).
 * Everything else needs exclusive access.
 */
#ifndef WLOAD_HIST_H
#define WLOAD_HIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HIST_SUB_BITS 11                      /* 2048 sub-buckets in the first bucket */
#define HIST_HALF (1u << (HIST_SUB_BITS - 1)) /* 1024 */
#define HIST_MAX_BITS 37                      /* values < 2^37 ns (137 s) are resolved */
#define HIST_MAX_VALUE ((UINT64_C(1) << HIST_MAX_BITS) - 1)
#define HIST_NBUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 2) * HIST_HALF)
#define HIST_FILE_VERSION 1

struct hist {
    _Atomic uint64_t total;     /* values recorded */
    _Atomic uint64_t min, max;  /* exact extremes (min is UINT64_MAX when empty) */
    _Atomic uint64_t saturated; /* values above HIST_MAX_VALUE (clamped) */
    double sum, sumsq;  /* for mean and standard deviation (not read live) */
    _Atomic uint64_t counts[HIST_NBUCKETS];
};

/* One point of the percentile spectrum (see hist_spectrum). */
struct hist_point {
    uint64_t value;    /* highest value of the bucket, clamped to [min, max] */
    double percentile; /* 0..100: the level the iteration reached */
    uint64_t count_at; /* values <= value */
};

/* Allocates an empty histogram (calloc); NULL when out of memory. Free with hist_free. */
struct hist *hist_new(void);
void hist_free(struct hist *h);
void hist_reset(struct hist *h);

/* Records one value. O(1); safe against concurrent hist_merge_live readers. */
void hist_record(struct hist *h, uint64_t v);

/* Adds every count of src to dst (the result equals recording both sets into one). */
void hist_merge(struct hist *dst, const struct hist *src);

/* Like hist_merge but reads src with relaxed atomic loads while its owner keeps recording.
 * Only counts, total and max are taken; good enough for a progress line. */
void hist_merge_live(struct hist *dst, const struct hist *src);

/* dst = a - b, count by count (b an earlier view of the same histogram as a, e.g. two
 * hist_merge_live snapshots): what was recorded in between. total is set; min and max are
 * the extremes of the buckets left (highest/lowest equivalent values). */
void hist_delta(struct hist *dst, const struct hist *a, const struct hist *b);

/* The value at percentile p (0..100): the smallest bucket whose cumulative count reaches
 * ceil(p/100 * total) (at least 1), reported as that bucket's highest value and clamped to
 * the exact [min, max]. p >= 100 returns max. 0 when the histogram is empty. */
uint64_t hist_percentile(const struct hist *h, double p);

double hist_mean(const struct hist *h);
double hist_stddev(const struct hist *h);

/* Bucket arithmetic, exposed for tests and the file reader. */
size_t hist_index(uint64_t v);
uint64_t hist_lowest(size_t idx);
uint64_t hist_highest(size_t idx);

/* Fills out[] with the percentile spectrum in the HdrHistogram style: levels step by
 * 1/ticks of each remaining half distance to 100 % (ticks 5 gives the usual table), the
 * last point is 100 %. Returns the number of points written (at most max). */
size_t hist_spectrum(const struct hist *h, unsigned ticks, struct hist_point *out, size_t max);

/* ---- files --------------------------------------------------------------------------------------
 * A histogram file is text: a version line, `meta KEY VALUE` lines describing the run, then
 * one section per histogram:
 *     wharf-load-hist 1
 *     meta messages 123456
 *     hist corrected
 *     total 123456 / min .. / max .. / saturated .. / sum .. / sumsq ..
 *     b INDEX COUNT            (non-zero buckets only, increasing index)
 *     end
 * Readers reject other versions, unknown directives, out-of-range or unsorted buckets and
 * counts that do not add up to total. */

#define HIST_FILE_MAX_SECTIONS 4

struct hist_file {
    uint64_t messages;    /* meta: measured messages answered */
    uint64_t duration_ns; /* meta: measurement period */
    uint64_t errors;      /* meta: errors counted */
    int nsections;
    char names[HIST_FILE_MAX_SECTIONS][32];
    struct hist *hists[HIST_FILE_MAX_SECTIONS];
};

/* Writes the header and meta lines. Returns 0, or -1 with errno on a write error. */
int hist_file_write_header(FILE *f, uint64_t messages, uint64_t duration_ns, uint64_t errors);
/* Appends one section named `name` (letters, digits, '_'). Returns 0 or -1 with errno. */
int hist_file_write_section(FILE *f, const char *name, const struct hist *h);

/* Reads a whole file into hf (which owns the histograms it allocates; release them with
 * hist_file_free). Returns 0, or -1 with "PATH:LINE: reason" in err. */
int hist_file_read(const char *path, struct hist_file *hf, char *err, size_t errlen);
void hist_file_free(struct hist_file *hf);

/* Finds a section by name; NULL when absent. */
struct hist *hist_file_get(const struct hist_file *hf, const char *name);

/* Parses the unsigned decimal number that s starts with (digits only: no sign, no space).
 * With rest NULL the number must be all of s; otherwise *rest is set to what follows it.
 * Returns 0, or -1 (out untouched) when s does not start with a digit, the number does not
 * fit in 64 bits, or text follows where none may. The file reader and the command line
 * (opts.c) both use it. */
int hist_parse_u64(const char *s, uint64_t *out, const char **rest);

#endif
