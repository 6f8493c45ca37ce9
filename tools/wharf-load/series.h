/* series.h - wharf-load's time series: per interval (default 1 s) of the run, requests sent,
 * replies, errors and a compact latency histogram (p50/p99/max within about 3 %), so that a
 * reload, a pause or a ramp shows over time. Each engine thread keeps its own; they are
 * merged at the end, and series saved by runs on several machines are merged aligned on
 * the wall clock (runs started with --start-at line up exactly). */
#ifndef WLOAD_SERIES_H
#define WLOAD_SERIES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SERIES_SUB_BITS 6                          /* values below 64 ns exact, then 32 per octave */
#define SERIES_HALF (1u << (SERIES_SUB_BITS - 1))  /* 32 */
#define SERIES_NB ((37 - SERIES_SUB_BITS + 2) * SERIES_HALF)
#define SERIES_MAX_POINTS 100000u

struct series_point {
    uint64_t sent, replies, errors; /* replies: answered correctly (warm-up included) */
    uint64_t max;                   /* latency (corrected) */
    uint32_t b[SERIES_NB];
};

struct series {
    uint64_t t0;            /* CLOCK_MONOTONIC of the start of interval 0 */
    uint64_t start_unix_ns; /* the same instant on the wall clock */
    uint64_t interval_ns;
    uint64_t span_ns;       /* time covered (the last interval may be partial) */
    size_t n, cap;
    struct series_point *p;
    uint64_t last_sent, last_errors; /* counter totals at the last tick */
};

/* NULL when out of memory. */
struct series *series_new(uint64_t t0, uint64_t start_unix_ns, uint64_t interval_ns);
void series_free(struct series *s);

/* A correct reply received at `now` with latency lat_ns. */
void series_record(struct series *s, uint64_t now, uint64_t lat_ns);
/* Called often by the owner: the counter totals grown since the last call go to now's
 * interval. */
void series_tick(struct series *s, uint64_t now, uint64_t sent_total, uint64_t errors_total);

/* Adds src to dst, aligning their start times on dst's intervals. Returns 0, or -1 when
 * the intervals differ or memory runs out. */
int series_merge(struct series *dst, const struct series *src);

/* Latency at percentile pct (0..100) of one interval (highest value of its bucket, at most
 * the interval's max); 0 when empty. */
uint64_t series_percentile(const struct series_point *p, double pct);
/* Rate of replies per second in interval i (a partial last interval counts its length). */
double series_rate(const struct series *s, size_t i);

/* Writes the series as a block of a histogram file ("series ... end"). 0 or -1. */
int series_write(FILE *f, const struct series *s);
/* Reads the series block of a histogram file into *out (NULL when the file has none).
 * Returns 0, or -1 with "PATH:LINE: reason" in err. */
int series_read(const char *path, struct series **out, char *err, size_t errlen);

size_t series_index(uint64_t v);
uint64_t series_highest(size_t idx);

#endif
