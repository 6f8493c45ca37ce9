/* hist.c - the latency histogram of wharf-load: recording, merging, percentiles, spectrum
 * and the versioned text file format used to merge runs from several load machines.
 * See hist.h for the bucket layout and the precision it gives. */
#include "hist.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
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

struct reader {
    const char *path;
    unsigned line;
    char *err;
    size_t errlen;
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

int hist_file_read(const char *path, struct hist_file *hf, char *err, size_t errlen)
{
    struct reader r = {path, 0, err, errlen};
    char buf[512], *key, *val, *save;
    FILE *f;
    struct hist *cur = NULL;
    const char *curname = "";
    long last_idx = -1;
    unsigned have = 0; /* bit mask of header lines seen in the current section */
    int version_seen = 0, in_series = 0, rc = -1;

    memset(hf, 0, sizeof(*hf));
    f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(buf, sizeof(buf), f)) {
        size_t len = strlen(buf);
        uint64_t u;
        double d;

        r.line++;
        if (len == sizeof(buf) - 1 && buf[len - 1] != '\n') {
            rfail(&r, "line too long");
            goto out;
        }
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        if (len == 0 || buf[0] == '#')
            continue;
        key = strtok_r(buf, " \t", &save);
        val = strtok_r(NULL, " \t", &save);
        if (!version_seen) {
            if (strcmp(key, "wharf-load-hist") != 0 || !val) {
                rfail(&r, "not a wharf-load histogram file (expected 'wharf-load-hist %d')",
                      HIST_FILE_VERSION);
                goto out;
            }
            if (strcmp(val, "1") != 0) {
                rfail(&r, "unsupported histogram file version '%s' (this build reads %d)", val,
                      HIST_FILE_VERSION);
                goto out;
            }
            version_seen = 1;
            continue;
        }
        if (in_series) { /* a time series block (series.c reads it): skipped here */
            if (strcmp(key, "end") == 0)
                in_series = 0;
            continue;
        }
        if (!cur && strcmp(key, "series") == 0) {
            in_series = 1;
            continue;
        }
        if (!cur && strcmp(key, "meta") == 0) {
            char *v2 = strtok_r(NULL, " \t", &save);

            if (!val || !v2) {
                rfail(&r, "expected 'meta KEY VALUE'");
                goto out;
            }
            if (hist_parse_u64(v2, &u, NULL) != 0) {
                rfail(&r, "meta %s: expected a non-negative integer, got '%s'", val, v2);
                goto out;
            }
            if (strcmp(val, "messages") == 0)
                hf->messages = u;
            else if (strcmp(val, "duration_ns") == 0)
                hf->duration_ns = u;
            else if (strcmp(val, "errors") == 0)
                hf->errors = u;
            /* other meta keys are informational: ignored for forward compatibility */
            continue;
        }
        if (!cur && strcmp(key, "hist") == 0) {
            int k;

            if (!val || strlen(val) >= sizeof(hf->names[0])) {
                rfail(&r, "expected 'hist NAME' (name of at most 31 characters)");
                goto out;
            }
            for (k = 0; k < hf->nsections; k++)
                if (strcmp(hf->names[k], val) == 0) {
                    rfail(&r, "duplicate section '%s'", val);
                    goto out;
                }
            if (hf->nsections == HIST_FILE_MAX_SECTIONS) {
                rfail(&r, "too many sections (at most %d)", HIST_FILE_MAX_SECTIONS);
                goto out;
            }
            cur = hist_new();
            if (!cur) {
                rfail(&r, "out of memory");
                goto out;
            }
            snprintf(hf->names[hf->nsections], sizeof(hf->names[0]), "%s", val);
            hf->hists[hf->nsections++] = cur;
            curname = hf->names[hf->nsections - 1];
            last_idx = -1;
            have = 0;
            continue;
        }
        if (!cur) {
            rfail(&r, "unexpected '%s' (expected 'meta' or 'hist')", key);
            goto out;
        }
        if (strcmp(key, "end") == 0) {
            if ((have & 0x3f) != 0x3f) {
                rfail(&r, "section '%s' ends before total, min, max, saturated, sum and sumsq",
                      curname);
                goto out;
            }
            if (check_section(&r, cur, curname) != 0)
                goto out;
            if (cur->total == 0)
                cur->min = UINT64_MAX;
            cur = NULL;
            continue;
        }
        if (!val) {
            rfail(&r, "'%s' needs a value", key);
            goto out;
        }
        if (strcmp(key, "b") == 0) {
            char *cnt = strtok_r(NULL, " \t", &save);
            uint64_t idx;

            if (!cnt || hist_parse_u64(val, &idx, NULL) != 0 ||
                hist_parse_u64(cnt, &u, NULL) != 0) {
                rfail(&r, "expected 'b INDEX COUNT'");
                goto out;
            }
            if (idx >= HIST_NBUCKETS) {
                rfail(&r, "bucket index %" PRIu64 " out of range (0..%u)", idx,
                      (unsigned)HIST_NBUCKETS - 1);
                goto out;
            }
            if ((long)idx <= last_idx) {
                rfail(&r, "bucket index %" PRIu64 " not after %ld", idx, last_idx);
                goto out;
            }
            last_idx = (long)idx;
            cur->counts[idx] = u;
            continue;
        }
        if (strcmp(key, "unit") == 0) {
            if (strcmp(val, "ns") != 0) {
                rfail(&r, "unit '%s' not supported (expected ns)", val);
                goto out;
            }
        } else if (strcmp(key, "sub_bits") == 0) {
            if (hist_parse_u64(val, &u, NULL) != 0 || u != HIST_SUB_BITS) {
                rfail(&r, "sub_bits '%s' not supported (expected %d)", val, HIST_SUB_BITS);
                goto out;
            }
        } else if (strcmp(key, "sum") == 0 || strcmp(key, "sumsq") == 0) {
            if (parse_double(val, &d) != 0) {
                rfail(&r, "%s: expected a non-negative number, got '%s'", key, val);
                goto out;
            }
            if (key[3] == '\0') {
                cur->sum = d;
                have |= 0x10;
            } else {
                cur->sumsq = d;
                have |= 0x20;
            }
        } else {
            static const char *const names[] = {"total", "min", "max", "saturated"};
            _Atomic uint64_t *dst[] = {&cur->total, &cur->min, &cur->max, &cur->saturated};
            unsigned k;

            for (k = 0; k < 4; k++)
                if (strcmp(key, names[k]) == 0)
                    break;
            if (k == 4) {
                rfail(&r, "unknown directive '%s'", key);
                goto out;
            }
            if (hist_parse_u64(val, &u, NULL) != 0) {
                rfail(&r, "%s: expected a non-negative integer, got '%s'", key, val);
                goto out;
            }
            *dst[k] = u;
            have |= 1u << k;
        }
    }
    if (ferror(f)) {
        rfail(&r, "read error: %s", strerror(errno));
        goto out;
    }
    if (!version_seen) {
        r.line = 1;
        rfail(&r, "empty file (expected 'wharf-load-hist %d')", HIST_FILE_VERSION);
        goto out;
    }
    if (cur) {
        rfail(&r, "section '%s' is not closed by 'end' (truncated file?)", curname);
        goto out;
    }
    if (hf->nsections == 0) {
        rfail(&r, "no histogram section");
        goto out;
    }
    rc = 0;
out:
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
