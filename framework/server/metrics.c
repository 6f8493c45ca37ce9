/*
 * metrics.c - wharf_metrics_text: the server's counters in the Prometheus
 * text exposition format (the metrics handler serves it over HTTP).  Per
 * listener and worker: connections, bytes, datagrams, closes by reason,
 * refusals; per server: queue depths, admission, reloads, generation, start
 * time and version.  It reads the server through server_view.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "generation.h"
#include "listener.h"
#include "server.h"
#include "worker.h"

/* A growable text buffer; on ENOMEM it stays NULL and the rest is skipped. */
struct metrics_text {
    char *p;
    size_t len, cap;
};

static void metrics_printf(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2; tries++) {
        if (!t->p && t->cap)
            return; /* an earlier failure */
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            free(t->p);
            t->p = NULL;
            t->cap = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

/* A label value with \, " and newlines escaped (the exposition format). */
static const char *metrics_label(const char *in, char *out, size_t outlen)
{
    size_t k = 0;
    for (; *in && k + 3 < outlen; in++) {
        if (*in == '\\' || *in == '"') {
            out[k++] = '\\';
            out[k++] = *in;
        } else if (*in == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *in;
        }
    }
    out[k] = '\0';
    return out;
}

static void metrics_head(struct metrics_text *t, const char *name, const char *type,
                         const char *help)
{
    metrics_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One per-listener, per-worker series (name, type, help, the counter's
 * offset in struct listener_counters, whether it is a UDP one). */
static const struct metrics_series {
    const char *name, *type, *help;
    size_t offset;
    bool udp;
} metrics_series[] = {
    {"wharf_connections_accepted_total", "counter", "TCP connections accepted.",
     offsetof(struct listener_counters, accepted), false},
    {"wharf_connections_open", "gauge", "TCP connections open now.",
     offsetof(struct listener_counters, open), false},
    {"wharf_bytes_received_total", "counter", "Bytes received.",
     offsetof(struct listener_counters, bytes_in), false},
    {"wharf_bytes_sent_total", "counter", "Bytes sent.",
     offsetof(struct listener_counters, bytes_out), false},
    {"wharf_output_buffered_bytes", "gauge", "Output buffer memory held now.",
     offsetof(struct listener_counters, output_buffered), false},
    {"wharf_datagrams_received_total", "counter", "UDP datagrams received.",
     offsetof(struct listener_counters, datagrams_in), true},
    {"wharf_datagrams_sent_total", "counter", "UDP datagrams sent.",
     offsetof(struct listener_counters, datagrams_out), true},
    {"wharf_datagrams_dropped_total", "counter",
     "UDP datagrams dropped (loop guard, the handler's guard, failed replies).",
     offsetof(struct listener_counters, datagrams_dropped), true},
};

/* The per-listener, per-worker series of the table above. */
static void metrics_listeners(struct metrics_text *t, const struct generation *g)
{
    char name[256];
    for (size_t k = 0; k < sizeof metrics_series / sizeof metrics_series[0]; k++) {
        const struct metrics_series *ms = &metrics_series[k];
        metrics_head(t, ms->name, ms->type, ms->help);
        for (unsigned i = 0; i < g->nlisteners; i++) {
            const struct listener *l = &g->listeners[i];
            if ((l->cfg->protocol == CONFIG_UDP) != ms->udp || !l->stats)
                continue;
            metrics_label(l->cfg->name, name, sizeof name);
            for (unsigned wi = 0; wi < l->stats->nworkers; wi++) {
                const _Atomic uint64_t *v =
                    (const _Atomic uint64_t *)((const char *)&l->stats->workers[wi] +
                                               ms->offset);
                metrics_printf(t, "%s{listener=\"%s\",worker=\"%u\"} %llu\n", ms->name, name,
                               wi, (unsigned long long)atomic_load_explicit(
                                       v, memory_order_relaxed));
            }
        }
    }
}

/* TCP closes by reason, and refused connections by reason. */
static void metrics_closes(struct metrics_text *t, const struct generation *g)
{
    char name[256];
    metrics_head(t, "wharf_connections_closed_total", "counter",
                 "TCP connections closed, by reason.");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (l->cfg->protocol != CONFIG_TCP || !l->stats)
            continue;
        metrics_label(l->cfg->name, name, sizeof name);
        for (unsigned wi = 0; wi < l->stats->nworkers; wi++)
            for (int r = 0; r < LISTENER_CLOSE_REASONS; r++)
                metrics_printf(t, "wharf_connections_closed_total{listener=\"%s\",worker=\"%u\","
                                  "reason=\"%s\"} %llu\n",
                               name, wi, wharf_close_reason_name((enum wharf_close_reason)r),
                               (unsigned long long)atomic_load_explicit(
                                   &l->stats->workers[wi].closed[r], memory_order_relaxed));
    }
    metrics_head(t, "wharf_connections_rejected_total", "counter",
                 "TCP connections refused (max_connections_per_source, deny, conn_rate_limit).");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (l->cfg->protocol != CONFIG_TCP || !l->stats)
            continue;
        metrics_label(l->cfg->name, name, sizeof name);
        metrics_printf(t, "wharf_connections_rejected_total{listener=\"%s\",reason=\"per_source\"}"
                          " %llu\n", name, (unsigned long long)atomic_load(&l->stats->rejected));
        metrics_printf(t, "wharf_connections_rejected_total{listener=\"%s\",reason=\"deny\"} %llu\n",
                       name, (unsigned long long)atomic_load(&l->stats->denied));
        metrics_printf(t, "wharf_connections_rejected_total{listener=\"%s\",reason=\"rate\"} %llu\n",
                       name, (unsigned long long)atomic_load(&l->stats->rate_refused));
    }
}

/* One unlabelled series. */
static void metrics_one(struct metrics_text *t, const char *name, const char *type,
                        const char *help, unsigned long long value)
{
    metrics_head(t, name, type, help);
    metrics_printf(t, "%s %llu\n", name, value);
}

/* The server-wide series: queues, admission, reloads, generation, build. */
static void metrics_server(struct metrics_text *t, const struct server_view *v)
{
    metrics_head(t, "wharf_worker_queue_depth", "gauge",
                 "Connections and messages waiting in a worker's mailbox.");
    for (unsigned i = 0; i < v->nworkers; i++)
        metrics_printf(t, "wharf_worker_queue_depth{worker=\"%u\"} %zu\n", i,
                       worker_queued(&v->workers[i]));
    if (v->admission) {
        metrics_one(t, "wharf_accept_pauses_total", "counter",
                    "Times the acceptor stopped accepting (no room, or out of descriptors).",
                    admission_pauses(v->admission));
        metrics_one(t, "wharf_open_connections", "gauge",
                    "TCP connections open now over every listener and generation.",
                    admission_open(v->admission));
        metrics_one(t, "wharf_output_buffered_total_bytes", "gauge",
                    "Output buffer memory held now by every connection (see output_budget).",
                    admission_output_total(v->admission));
    }
    metrics_one(t, "wharf_reloads_total", "counter", "Successful reloads.", v->reloads);
    metrics_one(t, "wharf_reloads_failed_total", "counter", "Reloads refused (old config kept).",
                v->reloads_failed);
    metrics_one(t, "wharf_generation", "gauge", "The configuration generation serving now.",
                v->gen ? v->gen->id : 0);
    metrics_head(t, "wharf_start_time_seconds", "gauge",
                 "When the server was created (Unix time).");
    metrics_printf(t, "wharf_start_time_seconds %lld\n", (long long)v->start_time);
    metrics_head(t, "wharf_build_info", "gauge", "Always 1; the version is a label.");
    metrics_printf(t, "wharf_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
}

char *wharf_metrics_text(const wharf_worker *w, size_t *len)
{
    struct wharf_server *s = w ? w->server : NULL;
    if (!s)
        return NULL;
    struct server_view v;
    server_view(s, &v);
    struct metrics_text t = {0};
    if (v.gen) {
        metrics_listeners(&t, v.gen);
        metrics_closes(&t, v.gen);
    }
    metrics_server(&t, &v);
    generation_unref(v.gen);
    if (len && t.p)
        *len = t.len;
    return t.p;
}
