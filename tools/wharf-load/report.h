/* report.h - wharf-load's outputs: human summary, JSON, percentile spectrum, SVG/HTML plot
 * and histogram files. */
#ifndef WLOAD_REPORT_H
#define WLOAD_REPORT_H

#include <stdio.h>

#include "engine.h"

/* The percentiles every report shows. */
#define REPORT_NPCT 6
extern const double report_pcts[REPORT_NPCT];

/* Summary of a run for people; `why` is the verdict text ("" when it passed). */
void report_human(FILE *f, const struct load_config *cfg, const struct load_result *res,
                  const char *why);
/* The same as one JSON object, configuration echoed, on one line per key group. */
void report_json(FILE *f, const struct load_config *cfg, const struct load_result *res,
                 const char *why);
/* One line: PASS/FAIL, rate, p99, errors. */
void report_quiet(FILE *f, const struct load_config *cfg, const struct load_result *res,
                  const char *why);

/* HdrHistogram-style percentile table. */
void report_spectrum(FILE *f, const char *title, const struct hist *h);
/* -P: the time series table (se may be NULL) and the spectrum of each of n histograms:
 * what -P writes to stderr or --percentiles=FILE, never into the summary. */
void report_distribution(FILE *f, struct hist *const *hists, const char *const *names, int n,
                         const struct series *se);
/* --csv: the time series, one line per interval (t_s, unix_s, interval_s, sent, replies,
 * errors, rate, p50_ns, p99_ns, max_ns). Returns 0, or -1 with a message in err. */
int report_csv(const char *path, const struct series *se, char *err, size_t errlen);

/* Writes a latency-by-percentile plot of n histograms to path (.svg, or .html with the SVG
 * and a percentile table); with a time series (se not NULL), the rate and the latency over
 * time below it. Returns 0, or -1 with a message in err. */
int report_plot(const char *path, const char *title, struct hist *const *hists,
                const char *const *names, int n, const struct series *se, char *err,
                size_t errlen);

/* Saves the run's histograms ("corrected", "raw", "connect") for wharf-load --merge.
 * Returns 0, or -1 with a message in err. */
int report_write_hist(const char *path, const struct load_result *res, char *err, size_t errlen);

/* Report on merged histogram files: rate is the sum of each file's rate. */
void report_merge(FILE *f, const struct load_config *cfg, const struct hist_file *merged,
                  int nfiles, double rate, const struct series *se, const char *why);

/* "memcache requests (get 90%, set 10%)" */
void report_mix(char *buf, size_t len, const struct tmpl_set *ts);
/* The time series as a table (human output with --percentiles) and as JSON ("series"). */
void report_series_table(FILE *f, const struct series *se);
void report_json_series(FILE *f, const struct series *se);

/* Formats a latency in ns with about three significant digits and a unit. */
void report_fmt_ns(char *buf, size_t len, uint64_t ns);

#endif
