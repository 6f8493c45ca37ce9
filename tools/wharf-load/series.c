/* series.c - the per-interval time series of a wharf-load run (see series.h): recording,
 * merging across threads and machines, percentiles per interval, and the "series" block of
 * histogram files. */
#include "series.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SERIES_MAX_VALUE ((UINT64_C(1) << 37) - 1)

size_t series_index(uint64_t v)
{
    unsigned e, shift;

    if (v > SERIES_MAX_VALUE)
        v = SERIES_MAX_VALUE;
    if (v < 2 * SERIES_HALF)
        return (size_t)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    shift = e - (SERIES_SUB_BITS - 1);
    return (size_t)(e - (SERIES_SUB_BITS - 1)) * SERIES_HALF + (size_t)(v >> shift);
}

uint64_t series_highest(size_t idx)
{
    unsigned e, shift;
    uint64_t m;

    if (idx < 2 * SERIES_HALF)
        return idx;
    e = (unsigned)(idx / SERIES_HALF) + (SERIES_SUB_BITS - 2);
    m = idx % SERIES_HALF + SERIES_HALF;
    shift = e - (SERIES_SUB_BITS - 1);
    return ((m + 1) << shift) - 1;
}

struct series *series_new(uint64_t t0, uint64_t start_unix_ns, uint64_t interval_ns)
{
    struct series *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->t0 = t0;
    s->start_unix_ns = start_unix_ns;
    s->interval_ns = interval_ns ? interval_ns : 1000000000u;
    return s;
}

void series_free(struct series *s)
{
    if (!s)
        return;
    free(s->p);
    free(s);
}

/* Makes interval idx exist (zeroed). Returns NULL when it cannot. */
static struct series_point *point(struct series *s, size_t idx)
{
    if (idx >= SERIES_MAX_POINTS)
        return NULL;
    if (idx >= s->cap) {
        size_t cap = s->cap ? s->cap : 16;
        struct series_point *p;

        while (cap <= idx)
            cap *= 2;
        p = realloc(s->p, cap * sizeof(*p));
        if (!p)
            return NULL;
        s->p = p;
        s->cap = cap;
    }
    if (idx >= s->n) {
        memset(s->p + s->n, 0, (idx + 1 - s->n) * sizeof(*s->p));
        s->n = idx + 1;
    }
    return &s->p[idx];
}

void series_record(struct series *s, uint64_t now, uint64_t lat_ns)
{
    struct series_point *p;

    if (!s || now < s->t0 || !(p = point(s, (size_t)((now - s->t0) / s->interval_ns))))
        return;
    p->replies++;
    p->b[series_index(lat_ns)]++;
    if (lat_ns > p->max)
        p->max = lat_ns;
}

void series_tick(struct series *s, uint64_t now, uint64_t sent_total, uint64_t errors_total)
{
    struct series_point *p;

    if (!s || now < s->t0)
        return;
    if (sent_total == s->last_sent && errors_total == s->last_errors)
        return;
    if (!(p = point(s, (size_t)((now - s->t0) / s->interval_ns))))
        return;
    p->sent += sent_total - s->last_sent;
    p->errors += errors_total - s->last_errors;
    s->last_sent = sent_total;
    s->last_errors = errors_total;
}

int series_merge(struct series *dst, const struct series *src)
{
    int64_t d = (int64_t)(src->start_unix_ns - dst->start_unix_ns);
    int64_t off;
    size_t i, k;

    if (src->interval_ns != dst->interval_ns)
        return -1;
    off = (d >= 0 ? d + (int64_t)dst->interval_ns / 2 : d - (int64_t)dst->interval_ns / 2) /
          (int64_t)dst->interval_ns;
    if (off < 0)
        off = 0; /* dst should start first; a later start is clamped to interval 0 */
    for (i = 0; i < src->n; i++) {
        const struct series_point *sp = &src->p[i];
        struct series_point *dp;

        if (!sp->sent && !sp->replies && !sp->errors)
            continue;
        if (!(dp = point(dst, i + (size_t)off)))
            return -1;
        dp->sent += sp->sent;
        dp->replies += sp->replies;
        dp->errors += sp->errors;
        if (sp->max > dp->max)
            dp->max = sp->max;
        for (k = 0; k < SERIES_NB; k++)
            dp->b[k] += sp->b[k];
    }
    if (src->span_ns + (uint64_t)off * dst->interval_ns > dst->span_ns)
        dst->span_ns = src->span_ns + (uint64_t)off * dst->interval_ns;
    return 0;
}

uint64_t series_percentile(const struct series_point *p, double pct)
{
    uint64_t rank, acc = 0;
    size_t k;

    if (!p->replies)
        return 0;
    if (pct >= 100)
        return p->max;
    rank = (uint64_t)(pct / 100.0 * (double)p->replies + 0.9999999);
    if (rank < 1)
        rank = 1;
    for (k = 0; k < SERIES_NB; k++) {
        acc += p->b[k];
        if (acc >= rank) {
            uint64_t v = series_highest(k);

            return v < p->max ? v : p->max;
        }
    }
    return p->max;
}

double series_rate(const struct series *s, size_t i)
{
    uint64_t len = s->interval_ns, begin = (uint64_t)i * s->interval_ns;

    if (s->span_ns > begin && s->span_ns - begin < len)
        len = s->span_ns - begin;
    return len ? s->p[i].replies * 1e9 / (double)len : 0.0;
}

int series_write(FILE *f, const struct series *s)
{
    size_t i, k;

    if (fprintf(f, "series %" PRIu64 " %" PRIu64 " %" PRIu64 " %zu\n", s->interval_ns,
                s->start_unix_ns, s->span_ns, s->n) < 0)
        return -1;
    for (i = 0; i < s->n; i++) {
        const struct series_point *p = &s->p[i];

        fprintf(f, "p %zu %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", i, p->sent,
                p->replies, p->errors, p->max);
        for (k = 0; k < SERIES_NB; k++)
            if (p->b[k])
                fprintf(f, "s %zu %" PRIu32 "\n", k, p->b[k]);
    }
    return fprintf(f, "end\n") < 0 ? -1 : 0;
}

static int rerr(char *err, size_t len, const char *path, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int rerr(char *err, size_t len, const char *path, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, len, "%s:%u: ", path, line);

    va_start(ap, fmt);
    if (n > 0 && (size_t)n < len)
        vsnprintf(err + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int series_read(const char *path, struct series **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char buf[512];
    unsigned line = 0;
    struct series *s = NULL;
    struct series_point *cur = NULL;
    uint64_t a, b, c, d, e;
    size_t idx;
    int rc = -1, done = 0;

    *out = NULL;
    if (!f)
        return rerr(err, errlen, path, 0, "cannot open");
    while (fgets(buf, sizeof(buf), f)) {
        line++;
        if (!s) {
            size_t n;

            if (strncmp(buf, "series ", 7) != 0)
                continue;
            if (sscanf(buf + 7, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %zu", &a, &b, &c, &n) != 4 ||
                a == 0 || n > SERIES_MAX_POINTS) {
                rerr(err, errlen, path, line, "expected 'series INTERVAL_NS START_NS SPAN_NS N'");
                goto out;
            }
            if (!(s = series_new(0, b, a))) {
                rerr(err, errlen, path, line, "out of memory");
                goto out;
            }
            s->span_ns = c;
            continue;
        }
        if (!strcmp(buf, "end\n") || !strcmp(buf, "end")) {
            done = 1;
            break;
        }
        if (buf[0] == 'p' && sscanf(buf, "p %zu %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
                                    &idx, &a, &b, &c, &d) == 5) {
            if (idx < s->n || !(cur = point(s, idx))) {
                rerr(err, errlen, path, line, "interval %zu out of order or out of range", idx);
                goto out;
            }
            cur->sent = a;
            cur->replies = b;
            cur->errors = c;
            cur->max = d;
            continue;
        }
        if (buf[0] == 's' && cur && sscanf(buf, "s %zu %" SCNu64, &idx, &e) == 2 &&
            idx < SERIES_NB && e <= UINT32_MAX) {
            cur->b[idx] = (uint32_t)e;
            continue;
        }
        rerr(err, errlen, path, line, "bad line in the series block");
        goto out;
    }
    if (s && !done) {
        rerr(err, errlen, path, line, "series block without 'end'");
        goto out;
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    series_free(s);
    fclose(f);
    return rc;
}
