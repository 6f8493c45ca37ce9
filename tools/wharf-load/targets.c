/* targets.c - several weighted targets in one run: the argument syntax, the spread of the
 * connections over the targets, per-target counts and their report lines (targets.h). */
#include "targets.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, const char *arg, const char *what)
{
    snprintf(err, errlen, fmt, arg, what);
    return -1;
}

int targets_split(const char *arg, char *out, size_t outlen, unsigned *weight, char *err,
                  size_t errlen)
{
    const char *w = strstr(arg, ",weight=");
    const char *last = w;
    size_t len = strlen(arg);

    *weight = 1;
    while (last && (last = strstr(last + 1, ",weight=")))
        w = last;
    if (w) {
        const char *v = w + 8;
        char *end;
        unsigned long n;

        errno = 0;
        n = strtoul(v, &end, 10);
        if (*v < '0' || *v > '9' || *end || errno || n < 1 || n > LOAD_MAX_WEIGHT)
            return fail(err, errlen, "target '%s': %s", arg,
                        "expected TARGET,weight=N with N from 1 to 1000");
        *weight = (unsigned)n;
        len = (size_t)(w - arg);
    } else if (strchr(arg, ',') && !strchr(arg, '/')) {
        return fail(err, errlen, "target '%s': %s", arg,
                    "expected HOST:PORT or URL, optionally followed by ,weight=N");
    }
    if (len == 0)
        return fail(err, errlen, "target '%s': %s", arg, "missing HOST:PORT or URL before ,weight=");
    if (len >= outlen)
        return fail(err, errlen, "target '%s': %s", arg, "too long");
    memcpy(out, arg, len);
    out[len] = '\0';
    return 0;
}

void targets_assign(const struct load_target *t, unsigned nt, unsigned first, unsigned n,
                    uint8_t *out)
{
    long cur[LOAD_MAX_TARGETS] = {0}, total = 0;
    unsigned k, i;

    for (i = 0; i < nt; i++)
        total += t[i].weight;
    for (k = 0; k < first + n; k++) {
        unsigned best = 0;

        for (i = 0; i < nt; i++) {
            cur[i] += t[i].weight;
            if (cur[i] > cur[best])
                best = i;
        }
        cur[best] -= total;
        if (k >= first)
            out[k - first] = (uint8_t)best;
    }
}

void target_mark(const struct load_stats *st, struct target_mark *m)
{
    m->c[TG_SENT] = stat_get(st, ST_SENT);
    m->c[TG_RECEIVED] = stat_get(st, ST_RECEIVED);
    m->c[TG_MEASURED] = stat_get(st, ST_MEASURED);
    m->c[TG_RECONNECTS] = stat_get(st, ST_RECONNECTS);
    m->c[TG_ERRORS] = stat_errors(st);
}

void target_charge(struct target_counts *tc, const struct load_stats *st,
                   const struct target_mark *m)
{
    struct target_mark now;
    int i;

    target_mark(st, &now);
    for (i = 0; i < TG__COUNT; i++)
        tc->c[i] += now.c[i] - m->c[i];
}

void targets_report_human(FILE *f, const struct load_target *t, unsigned nt,
                          const struct target_counts *tc, double measure_s)
{
    unsigned i;

    if (nt < 2)
        return;
    for (i = 0; i < nt; i++) {
        const uint64_t *c = tc[i].c;

        fprintf(f, "  target %-4u %s%s weight %u, %u connections: %" PRIu64 " measured, %.1f/s; %"
                PRIu64 " sent, %" PRIu64 " correct in all, %" PRIu64 " errors, %" PRIu64
                " reconnects\n",
                i + 1, t[i].target, t[i].path, t[i].weight, t[i].connections,
                c[TG_MEASURED], measure_s > 0 ? c[TG_MEASURED] / measure_s : 0.0, c[TG_SENT],
                c[TG_RECEIVED], c[TG_ERRORS], c[TG_RECONNECTS]);
    }
}

void targets_report_json(FILE *f, const struct load_target *t, unsigned nt,
                         const struct target_counts *tc, double measure_s)
{
    unsigned i;

    fprintf(f, "  \"targets\": [");
    for (i = 0; i < nt; i++) {
        const uint64_t *c = tc[i].c;
        const char *p;

        fprintf(f, "%s{\"target\": \"", i ? ",\n    " : "");
        for (p = t[i].target; *p; p++) /* host names and ports: printable, no quotes */
            fputc(*p == '"' || *p == '\\' ? '_' : *p, f);
        fprintf(f, "\", \"address\": \"%s\", \"port\": %u, \"path\": ", t[i].host, t[i].port);
        if (t[i].path[0]) {
            fputc('"', f);
            for (p = t[i].path; *p; p++)
                fputc(*p == '"' || *p == '\\' || (unsigned char)*p < 32 ? '_' : *p, f);
            fputc('"', f);
        } else {
            fputs("null", f);
        }
        fprintf(f, ", \"weight\": %u, \"connections\": %u, \"sent\": %" PRIu64
                ", \"received\": %" PRIu64 ", \"measured\": %" PRIu64 ", \"rate\": %.3f"
                ", \"errors\": %" PRIu64 ", \"reconnects\": %" PRIu64 "}",
                t[i].weight, t[i].connections, c[TG_SENT], c[TG_RECEIVED], c[TG_MEASURED],
                measure_s > 0 ? c[TG_MEASURED] / measure_s : 0.0, c[TG_ERRORS],
                c[TG_RECONNECTS]);
    }
    fprintf(f, "],\n");
}
