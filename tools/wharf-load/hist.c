/* hist.c - the latency histogram of wharf-load: recording, merging, percentiles, spectrum
 * and the versioned text file format used to merge runs from several load machines.
 * See hist.h for the bucket layout and the precision it gives. */
#include "hist.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define RELAXED_LOAD(p) atomic_load_explicit((p), memory_order_relaxed)
#define RELAXED_STORE(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)

struct hist *hist_new(void)
{
    struct hist *h = calloc(1, sizeof(*h));

    if (h)
        h->min = UINT64_MAX;
    return h;
}

void hist_free(struct hist *h) { free(h); }

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

size_t hist_index(uint64_t v)
{
    unsigned msb, e;

    if (v > HIST_MAX_VALUE)
        v = HIST_MAX_VALUE;
    if (v < 2 * HIST_HALF)
        return (size_t)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    e = msb - (HIST_SUB_BITS - 1);
    return ((size_t)e << (HIST_SUB_BITS - 1)) + (size_t)(v >> e);
}

uint64_t hist_lowest(size_t idx)
{
    unsigned e;
    uint64_t m;

    if (idx < 2 * HIST_HALF)
        return idx;
    e = (unsigned)(idx >> (HIST_SUB_BITS - 1)) - 1;
    m = idx - ((size_t)e << (HIST_SUB_BITS - 1));
    return m << e;
}

uint64_t hist_highest(size_t idx)
{
    if (idx + 1 >= HIST_NBUCKETS)
        return HIST_MAX_VALUE;
    return hist_lowest(idx + 1) - 1;
}

void hist_record(struct hist *h, uint64_t v)
{
    size_t i;

    if (v > HIST_MAX_VALUE) {
        RELAXED_STORE(&h->saturated, RELAXED_LOAD(&h->saturated) + 1);
        v = HIST_MAX_VALUE;
    }
    i = hist_index(v);
    RELAXED_STORE(&h->counts[i], RELAXED_LOAD(&h->counts[i]) + 1);
    RELAXED_STORE(&h->total, RELAXED_LOAD(&h->total) + 1);
    if (v < RELAXED_LOAD(&h->min))
        RELAXED_STORE(&h->min, v);
    if (v > RELAXED_LOAD(&h->max))
        RELAXED_STORE(&h->max, v);
    h->sum += (double)v;
    h->sumsq += (double)v * (double)v;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    size_t i;

    if (src->total == 0)
        return;
    for (i = 0; i < HIST_NBUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->saturated += src->saturated;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->sum += src->sum;
    dst->sumsq += src->sumsq;
}

void hist_merge_live(struct hist *dst, const struct hist *src)
{
    size_t i;
    uint64_t total = 0, c, mx;

    for (i = 0; i < HIST_NBUCKETS; i++) {
        c = RELAXED_LOAD(&src->counts[i]);
        dst->counts[i] += c;
        total += c;
    }
    dst->total += total; /* consistent with the counts we saw */
    mx = RELAXED_LOAD(&src->max);
    if (mx > dst->max)
        dst->max = mx;
    dst->min = 0; /* unknown in a live view; percentiles clamp only to max */
}

void hist_delta(struct hist *dst, const struct hist *a, const struct hist *b)
{
    uint64_t total = 0, c;
    size_t i, lo = HIST_NBUCKETS, hi = 0;

    for (i = 0; i < HIST_NBUCKETS; i++) {
        uint64_t ca = RELAXED_LOAD(&a->counts[i]), cb = RELAXED_LOAD(&b->counts[i]);

        c = ca > cb ? ca - cb : 0;
        RELAXED_STORE(&dst->counts[i], c);
        total += c;
        if (c) {
            if (lo == HIST_NBUCKETS)
                lo = i;
            hi = i;
        }
    }
    dst->total = total;
    dst->min = total ? hist_lowest(lo) : UINT64_MAX;
    dst->max = total ? hist_highest(hi) : 0;
    dst->saturated = 0;
    dst->sum = dst->sumsq = 0;
}

/* The rank (1-based) of the value at percentile p. */
static uint64_t rank_at(const struct hist *h, double p)
{
    double x = p / 100.0 * (double)h->total;
    uint64_t r = (uint64_t)x;

    if ((double)r < x * (1.0 - 1e-12))
        r++;
    if (r < 1)
        r = 1;
    if (r > h->total)
        r = h->total;
    return r;
}

static uint64_t clamp_value(const struct hist *h, uint64_t v)
{
    if (v > h->max)
        v = h->max;
    if (v < h->min)
        v = h->min;
    return v;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    uint64_t want, seen = 0;
    size_t i;

    if (h->total == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    if (p <= 0)
        return h->min;
    want = rank_at(h, p);
    for (i = 0; i < HIST_NBUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want)
            return clamp_value(h, hist_highest(i));
    }
    return h->max;
}

double hist_mean(const struct hist *h) { return h->total ? h->sum / (double)h->total : 0.0; }

double hist_stddev(const struct hist *h)
{
    double m, var;

    if (h->total < 2)
        return 0.0;
    m = hist_mean(h);
    var = h->sumsq / (double)h->total - m * m;
    return var > 0 ? sqrt(var) : 0.0;
}

size_t hist_spectrum(const struct hist *h, unsigned ticks, struct hist_point *out, size_t max)
{
    double level = 0.0;
    size_t n = 0, i = 0;
    uint64_t seen = 0, want;

    if (h->total == 0 || max == 0)
        return 0;
    if (ticks == 0)
        ticks = 5;
    while (n + 1 < max) {
        want = rank_at(h, level);
        while (i < HIST_NBUCKETS && seen + h->counts[i] < want)
            seen += h->counts[i++];
        if (i >= HIST_NBUCKETS)
            break;
        out[n].value = clamp_value(h, hist_highest(i));
        out[n].percentile = level;
        out[n].count_at = seen + h->counts[i];
        n++;
        if (seen + h->counts[i] >= h->total)
            break;
        /* HdrHistogram: halve the remaining distance every `ticks` steps */
        {
            double half = floor(log2(100.0 / (100.0 - level))) + 1.0;
            level += 100.0 / ((double)ticks * pow(2.0, half));
        }
    }
    out[n].value = h->max;
    out[n].percentile = 100.0;
    out[n].count_at = h->total;
    return n + 1;
}

/* ---- files ----------------------------------------------------------------------------------- */

int hist_file_write_header(FILE *f, uint64_t messages, uint64_t duration_ns, uint64_t errors)
{
    if (fprintf(f,
                "wharf-load-hist %d\n"
                "# latency histogram written by wharf-load;"
                " merge with: wharf-load --merge FILE...\n"
                "meta messages %" PRIu64 "\n"
                "meta duration_ns %" PRIu64 "\n"
                "meta errors %" PRIu64 "\n",
                HIST_FILE_VERSION, messages, duration_ns, errors) < 0)
        return -1;
    return 0;
}

int hist_file_write_section(FILE *f, const char *name, const struct hist *h)
{
    uint64_t min = h->total ? h->min : 0;
    size_t i;

    if (fprintf(f, "hist %s\nunit ns\nsub_bits %d\n", name, HIST_SUB_BITS) < 0 ||
        fprintf(f, "total %" PRIu64 "\nmin %" PRIu64 "\nmax %" PRIu64 "\nsaturated %" PRIu64 "\n",
                h->total, min, h->max, h->saturated) < 0 ||
        fprintf(f, "sum %.17g\nsumsq %.17g\n", h->sum, h->sumsq) < 0)
        return -1;
    for (i = 0; i < HIST_NBUCKETS; i++)
        if (h->counts[i] && fprintf(f, "b %zu %" PRIu64 "\n", i, h->counts[i]) < 0)
            return -1;
    if (fprintf(f, "end\n") < 0)
        return -1;
    return 0;
}

/* Where hist_file_read stands in the file it reads. */
struct reader {
    const char *path;
    unsigned line; /* of the line being read, for messages */
    char *err;
    size_t errlen;
    struct hist_file *hf;  /* being filled */
    bool version_seen;     /* the 'wharf-load-hist 1' line was read */
    bool in_series;        /* inside a 'series' block (skipped) */
    struct hist *cur;      /* the open section, NULL between sections */
    const char *curname;   /* its name */
    long last_idx;         /* its last bucket index read (-1: none) */
    unsigned have;         /* its header lines seen (HAVE_* bits) */
};

static int rfail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int rfail(struct reader *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(r->err, r->errlen, "%s:%u: ", r->path, r->line);
    if (n < 0 || (size_t)n >= r->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int hist_parse_u64(const char *s, uint64_t *out, const char **rest)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || (!rest && *end != '\0'))
        return -1;
    if (rest)
        *rest = end;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(*out) || *out < 0)
        return -1;
    return 0;
}

/* Checks a finished section: counts add up, extremes match the buckets. */
static int check_section(struct reader *r, const struct hist *h, const char *name)
{
    uint64_t sum = 0;
    size_t i, first = HIST_NBUCKETS, last = 0;

    for (i = 0; i < HIST_NBUCKETS; i++) {
        if (!h->counts[i])
            continue;
        if (sum + h->counts[i] < sum)
            return rfail(r, "section '%s': bucket counts overflow", name);
        sum += h->counts[i];
        if (first == HIST_NBUCKETS)
            first = i;
        last = i;
    }
    if (sum != h->total)
        return rfail(r, "section '%s': buckets add up to %" PRIu64 " but total is %" PRIu64, name,
                     sum, h->total);
    if (h->total && (h->min > h->max || hist_index(h->min) != first || hist_index(h->max) != last))
        return rfail(r, "section '%s': min/max do not match the buckets", name);
    if (h->saturated > h->total)
        return rfail(r, "section '%s': saturated exceeds total", name);
    return 0;
}

/* Header lines a section must hold before its 'end' (bits of reader.have). */
#define HAVE_TOTAL 0x01
#define HAVE_MIN 0x02
#define HAVE_MAX 0x04
#define HAVE_SATURATED 0x08
#define HAVE_SUM 0x10
#define HAVE_SUMSQ 0x20
#define HAVE_ALL 0x3f

/* The version line, the first one that is not blank or a comment. */
static int read_version(struct reader *r, const char *key, const char *val)
{
    if (strcmp(key, "wharf-load-hist") != 0 || !val)
        return rfail(r, "not a wharf-load histogram file (expected 'wharf-load-hist %d')",
                     HIST_FILE_VERSION);
    if (strcmp(val, "1") != 0)
        return rfail(r, "unsupported histogram file version '%s' (this build reads %d)", val,
                     HIST_FILE_VERSION);
    r->version_seen = true;
    return 0;
}

/* 'meta KEY VALUE': the three known keys fill hf; others are informational and ignored
 * (forward compatibility). */
static int read_meta(struct reader *r, const char *key, const char *val)
{
    uint64_t u;

    if (!key || !val)
        return rfail(r, "expected 'meta KEY VALUE'");
    if (hist_parse_u64(val, &u, NULL) != 0)
        return rfail(r, "meta %s: expected a non-negative integer, got '%s'", key, val);
    if (strcmp(key, "messages") == 0)
        r->hf->messages = u;
    else if (strcmp(key, "duration_ns") == 0)
        r->hf->duration_ns = u;
    else if (strcmp(key, "errors") == 0)
        r->hf->errors = u;
    return 0;
}

/* 'hist NAME': opens a new section (a fresh histogram owned by hf). */
static int read_section_start(struct reader *r, const char *name)
{
    struct hist_file *hf = r->hf;
    int k;

    if (!name || strlen(name) >= sizeof(hf->names[0]))
        return rfail(r, "expected 'hist NAME' (name of at most 31 characters)");
    for (k = 0; k < hf->nsections; k++)
        if (strcmp(hf->names[k], name) == 0)
            return rfail(r, "duplicate section '%s'", name);
    if (hf->nsections == HIST_FILE_MAX_SECTIONS)
        return rfail(r, "too many sections (at most %d)", HIST_FILE_MAX_SECTIONS);
    r->cur = hist_new();
    if (!r->cur)
        return rfail(r, "out of memory");
    snprintf(hf->names[hf->nsections], sizeof(hf->names[0]), "%s", name);
    hf->hists[hf->nsections] = r->cur;
    r->curname = hf->names[hf->nsections++];
    r->last_idx = -1;
    r->have = 0;
    return 0;
}

/* 'end' of a section: every header line seen, and the section consistent. */
static int read_section_end(struct reader *r)
{
    if ((r->have & HAVE_ALL) != HAVE_ALL)
        return rfail(r, "section '%s' ends before total, min, max, saturated, sum and sumsq",
                     r->curname);
    if (check_section(r, r->cur, r->curname) != 0)
        return -1;
    if (r->cur->total == 0)
        r->cur->min = UINT64_MAX;
    r->cur = NULL;
    return 0;
}

/* 'b INDEX COUNT': one bucket, indexes strictly increasing. */
static int read_bucket(struct reader *r, const char *index, const char *count)
{
    uint64_t idx, u;

    if (!count || hist_parse_u64(index, &idx, NULL) != 0 || hist_parse_u64(count, &u, NULL) != 0)
        return rfail(r, "expected 'b INDEX COUNT'");
    if (idx >= HIST_NBUCKETS)
        return rfail(r, "bucket index %" PRIu64 " out of range (0..%u)", idx,
                     (unsigned)HIST_NBUCKETS - 1);
    if ((long)idx <= r->last_idx)
        return rfail(r, "bucket index %" PRIu64 " not after %ld", idx, r->last_idx);
    r->last_idx = (long)idx;
    r->cur->counts[idx] = u;
    return 0;
}

/* A section's header line 'KEY VALUE': unit, sub_bits, sum, sumsq, total, min, max or
 * saturated. */
static int read_field(struct reader *r, const char *key, const char *val)
{
    static const char *const names[] = {"total", "min", "max", "saturated"};
    struct hist *cur = r->cur;
    _Atomic uint64_t *dst[] = {&cur->total, &cur->min, &cur->max, &cur->saturated};
    uint64_t u;
    double d;
    unsigned k;

    if (strcmp(key, "unit") == 0)
        return strcmp(val, "ns") == 0 ? 0 : rfail(r, "unit '%s' not supported (expected ns)", val);
    if (strcmp(key, "sub_bits") == 0) {
        if (hist_parse_u64(val, &u, NULL) != 0 || u != HIST_SUB_BITS)
            return rfail(r, "sub_bits '%s' not supported (expected %d)", val, HIST_SUB_BITS);
        return 0;
    }
    if (strcmp(key, "sum") == 0 || strcmp(key, "sumsq") == 0) {
        if (parse_double(val, &d) != 0)
            return rfail(r, "%s: expected a non-negative number, got '%s'", key, val);
        if (key[3] == '\0') {
            cur->sum = d;
            r->have |= HAVE_SUM;
        } else {
            cur->sumsq = d;
            r->have |= HAVE_SUMSQ;
        }
        return 0;
    }
    for (k = 0; k < 4; k++)
        if (strcmp(key, names[k]) == 0)
            break;
    if (k == 4)
        return rfail(r, "unknown directive '%s'", key);
    if (hist_parse_u64(val, &u, NULL) != 0)
        return rfail(r, "%s: expected a non-negative integer, got '%s'", key, val);
    *dst[k] = u;
    r->have |= 1u << k; /* HAVE_TOTAL .. HAVE_SATURATED, in the order of names[] */
    return 0;
}

/* One line (newline stripped, not blank, not a comment): dispatches on its first word and
 * on where the reader stands (before the version, in a series block, between sections,
 * in a section). */
static int read_line(struct reader *r, char *line)
{
    char *save, *key, *val;

    key = strtok_r(line, " \t", &save);
    val = strtok_r(NULL, " \t", &save);
    if (!r->version_seen)
        return read_version(r, key, val);
    if (r->in_series) { /* a time series block (series.c reads it): skipped here */
        if (strcmp(key, "end") == 0)
            r->in_series = false;
        return 0;
    }
    if (!r->cur) {
        if (strcmp(key, "series") == 0) {
            r->in_series = true;
            return 0;
        }
        if (strcmp(key, "meta") == 0)
            return read_meta(r, val, strtok_r(NULL, " \t", &save));
        if (strcmp(key, "hist") == 0)
            return read_section_start(r, val);
        return rfail(r, "unexpected '%s' (expected 'meta' or 'hist')", key);
    }
    if (strcmp(key, "end") == 0)
        return read_section_end(r);
    if (!val)
        return rfail(r, "'%s' needs a value", key);
    if (strcmp(key, "b") == 0)
        return read_bucket(r, val, strtok_r(NULL, " \t", &save));
    return read_field(r, key, val);
}

/* After the last line: the file had a version, every section was closed, and one at least. */
static int read_finish(struct reader *r)
{
    if (!r->version_seen) {
        r->line = 1;
        return rfail(r, "empty file (expected 'wharf-load-hist %d')", HIST_FILE_VERSION);
    }
    if (r->cur)
        return rfail(r, "section '%s' is not closed by 'end' (truncated file?)", r->curname);
    if (r->hf->nsections == 0)
        return rfail(r, "no histogram section");
    return 0;
}

int hist_file_read(const char *path, struct hist_file *hf, char *err, size_t errlen)
{
    struct reader r = {.path = path, .err = err, .errlen = errlen, .hf = hf, .last_idx = -1};
    char buf[512];
    FILE *f;
    int rc = 0;

    memset(hf, 0, sizeof(*hf));
    f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && fgets(buf, sizeof(buf), f)) {
        size_t len = strlen(buf);

        r.line++;
        if (len == sizeof(buf) - 1 && buf[len - 1] != '\n') {
            rc = rfail(&r, "line too long");
            break;
        }
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        if (len > 0 && buf[0] != '#')
            rc = read_line(&r, buf);
    }
    if (rc == 0 && ferror(f))
        rc = rfail(&r, "read error: %s", strerror(errno));
    if (rc == 0)
        rc = read_finish(&r);
    fclose(f);
    if (rc != 0)
        hist_file_free(hf);
    return rc;
}

void hist_file_free(struct hist_file *hf)
{
    int i;

    for (i = 0; i < hf->nsections; i++)
        hist_free(hf->hists[i]);
    hf->nsections = 0;
}

struct hist *hist_file_get(const struct hist_file *hf, const char *name)
{
    int i;

    for (i = 0; i < hf->nsections; i++)
        if (strcmp(hf->names[i], name) == 0)
            return hf->hists[i];
    return NULL;
}
