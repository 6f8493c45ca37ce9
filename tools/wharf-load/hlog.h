/* hlog.h - HdrHistogram interval logs (.hlog) for wharf-load (hlog.c): the text log format
 * of HdrHistogram's HistogramLogWriter (format version 1.3), which HistogramLogReader,
 * HistogramLogProcessor and the other HdrHistogram ports read back:
 *
 *     #[Logged with wharf-load 2.0]
 *     #[Histogram log format version 1.3]
 *     #[StartTime: 1796280000.123 (seconds since epoch), Thu Dec  3 06:40:00 UTC 2026]
 *     #[BaseTime: 1796280000.123 (seconds since epoch)]
 *     "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
 *     0.000,1.000,0.872,HISTFAAAA...          (untagged: corrected latency / round trip)
 *     Tag=uncorrected,0.000,1.000,0.700,HISTFAAAA...
 *
 * One line per interval and latency kind: start (seconds after BaseTime), length (s), the
 * interval's highest value in ms (values are ns; HdrHistogram's tools divide by 1e6 by
 * default as well), and the histogram in HdrHistogram's V2 compressed encoding, base64:
 * int32 cookie 0x1c849314, int32 length, then zlib-deflated: a 40-byte header (cookie
 * 0x1c849313, payload length, normalizing offset 0, 3 significant digits, lowest value 1,
 * highest trackable value, conversion ratio 1.0; big-endian) and the counts from index 0
 * to the highest non-zero one as ZigZag LEB128 varints, a run of N > 1 zero counts written
 * as -N. wharf-load's histograms (hist.h) have exactly HdrHistogram's bucket layout for 3
 * significant digits and a lowest value of 1, so nothing is approximated. */
#ifndef WLOAD_HLOG_H
#define WLOAD_HLOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"

#define HLOG_COOKIE 0x1c849313u            /* V2 encoding, 8-byte word size flag */
#define HLOG_COMPRESSED_COOKIE 0x1c849314u /* V2 compressed encoding */

struct hlog {
    FILE *f;
    const char *path;
    uint64_t base_unix_ns; /* BaseTime: line start times count from it */
    int failed;            /* a write failed */
};

/* Creates path and writes the header; start_unix_ns is the start of the run (StartTime and
 * BaseTime). Returns 0, or -1 with "--hlog PATH: reason" in err. */
int hlog_open(struct hlog *lg, const char *path, uint64_t start_unix_ns, char *err,
              size_t errlen);

/* Appends one interval: h's counts (total and max need not be set), tag NULL for an
 * untagged line, start and end on the wall clock (ns since the epoch). Returns 0, or -1
 * (out of memory or a write error; remembered for hlog_close). */
int hlog_interval(struct hlog *lg, const char *tag, uint64_t start_unix_ns, uint64_t end_unix_ns,
                  const struct hist *h);

/* Closes the file. Returns 0, or -1 with the reason in err when anything failed. */
int hlog_close(struct hlog *lg, char *err, size_t errlen);

/* The V2 compressed encoding of h's counts into a malloc'ed buffer (*out, *outlen).
 * Returns 0, or -1 when out of memory. */
int hlog_encode(const struct hist *h, uint8_t **out, size_t *outlen);

#endif
