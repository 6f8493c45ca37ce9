/* keys.c - the key space of wharf-load's templates: the key patterns (seq, uniform, Zipf by
 * rejection-inversion, Gaussian), per-request key contexts that replay, and key text. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "keys.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmpl.h"

/* Rejection-inversion sampling of a Zipf distribution over 1..n (W. Hörmann, G. Derflinger,
 * "Rejection-inversion to generate variates from monotone discrete distributions", 1996). */
static double helper1(double x) { return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x / 2 + x * x / 3; }
static double helper2(double x) { return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x / 2 + x * x / 6; }

static double h_integral(double x, double s)
{
    double lx = log(x);

    return helper2((1 - s) * lx) * lx;
}

static double h_fn(double x, double s) { return exp(-s * log(x)); }

static double h_integral_inv(double x, double s)
{
    double t = x * (1 - s);

    if (t < -1)
        t = -1;
    return exp(helper1(t) * x);
}

int keys_init(struct keys *k, uint64_t n, enum keys_pattern pattern, double p1, double p2,
              const char *prefix)
{
    uint64_t m;

    memset(k, 0, sizeof(*k));
    k->n = n ? n : 1;
    k->pattern = pattern;
    snprintf(k->prefix, sizeof(k->prefix), "%s", prefix);
    k->prefix_len = (unsigned)strlen(k->prefix);
    for (k->width = 1, m = k->n - 1; m >= 10; m /= 10)
        k->width++;
    if (pattern == KP_ZIPF) {
        k->zipf_s = p1 > 0 ? p1 : 0.99;
        k->hx1 = h_integral(1.5, k->zipf_s) - 1;
        k->hn = h_integral((double)k->n + 0.5, k->zipf_s);
        k->s2 = 2 - h_integral_inv(h_integral(2.5, k->zipf_s) - h_fn(2, k->zipf_s), k->zipf_s);
    } else if (pattern == KP_GAUSS) {
        k->mean = p2 > 0 ? p1 : (double)(k->n - 1) / 2;
        k->sd = p2 > 0 ? p2 : (double)k->n / 6;
    } else if (pattern == KP_SEQ) {
        k->next = malloc(sizeof(*k->next));
        if (!k->next)
            return -1;
        atomic_init(k->next, 0);
    }
    return 0;
}

void keys_free(struct keys *k)
{
    free(k->next);
    k->next = NULL;
}

int keys_parse(const char *a, enum keys_pattern *pattern, double *p1, double *p2)
{
    char *end;

    *p1 = *p2 = 0;
    if (!strcmp(a, "uniform") || !strcmp(a, "seq")) {
        *pattern = a[0] == 'u' ? KP_UNIFORM : KP_SEQ;
        return 0;
    }
    if (!strcmp(a, "zipf") || !strcmp(a, "gauss")) {
        *pattern = a[0] == 'z' ? KP_ZIPF : KP_GAUSS;
        *p1 = a[0] == 'z' ? 0.99 : 0;
        return 0;
    }
    errno = 0;
    if (!strncmp(a, "zipf:", 5)) {
        *pattern = KP_ZIPF;
        *p1 = strtod(a + 5, &end);
        return !errno && end != a + 5 && !*end && *p1 > 0 && *p1 <= 10 ? 0 : -1;
    }
    if (!strncmp(a, "gauss:", 6)) {
        *pattern = KP_GAUSS;
        *p1 = strtod(a + 6, &end);
        if (errno || end == a + 6 || *end != ',' || *p1 < 0)
            return -1;
        a = end + 1;
        *p2 = strtod(a, &end);
        return !errno && end != a && !*end && *p2 > 0 ? 0 : -1;
    }
    return -1;
}

void keys_describe(const struct keys *k, char *buf, size_t len)
{
    switch (k->pattern) {
    case KP_SEQ: snprintf(buf, len, "seq"); break;
    case KP_UNIFORM: snprintf(buf, len, "uniform"); break;
    case KP_ZIPF: snprintf(buf, len, "zipf:%g", k->zipf_s); break;
    case KP_GAUSS: snprintf(buf, len, "gauss:%g,%g", k->mean, k->sd); break;
    }
}

uint64_t keys_ctx(const struct keys *k, uint64_t *rng, unsigned count)
{
    uint64_t c;

    if (k->pattern == KP_SEQ)
        return atomic_fetch_add_explicit(k->next, count, memory_order_relaxed);
    c = tmpl_rand(rng);
    return c ? c : 1; /* the stream's state is never 0 */
}

static uint64_t zipf_draw(const struct keys *k, uint64_t *rng)
{
    double s = k->zipf_s, u, x;
    uint64_t r;
    int tries;

    for (tries = 0; tries < 1000; tries++) {
        u = k->hn + tmpl_rand01(rng) * (k->hx1 - k->hn);
        x = h_integral_inv(u, s);
        r = (uint64_t)(x + 0.5);
        if (r < 1)
            r = 1;
        else if (r > k->n)
            r = k->n;
        if ((double)r - x <= k->s2 || u >= h_integral((double)r + 0.5, s) - h_fn((double)r, s))
            return r - 1;
    }
    return 0;
}

/* Box-Muller; draws outside 0 .. n-1 are redrawn (at most 64 times, then the mean). */
static uint64_t gauss_draw(const struct keys *k, uint64_t *rng)
{
    int tries;

    for (tries = 0; tries < 64; tries++) {
        double u1 = tmpl_rand01(rng), u2 = tmpl_rand01(rng), z, v;

        if (u1 <= 0)
            continue;
        z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        v = floor(k->mean + z * k->sd + 0.5);
        if (v >= 0 && v < (double)k->n)
            return (uint64_t)v;
    }
    return (uint64_t)k->mean < k->n ? (uint64_t)k->mean : k->n - 1;
}

uint64_t keys_draw(const struct keys *k, uint64_t *rng)
{
    if (k->n == 1)
        return 0;
    switch (k->pattern) {
    case KP_ZIPF: return zipf_draw(k, rng);
    case KP_GAUSS: return gauss_draw(k, rng);
    default: return tmpl_rand(rng) % k->n;
    }
}

uint64_t keys_next(const struct keys *k, struct keys_it *it)
{
    if (k->pattern == KP_SEQ)
        return it->ctx++ % k->n;
    return keys_draw(k, &it->ctx);
}

size_t keys_format(const struct keys *k, uint64_t key, uint8_t *out)
{
    unsigned i;

    memcpy(out, k->prefix, k->prefix_len);
    for (i = k->width; i > 0; i--, key /= 10)
        out[k->prefix_len + i - 1] = (uint8_t)('0' + key % 10);
    return k->prefix_len + k->width;
}
