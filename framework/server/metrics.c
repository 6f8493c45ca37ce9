/*
 * metrics.c - wharf_metrics_text: the server's counters in the Prometheus
 * text exposition format (the metrics handler serves it over HTTP).  Per
 * listener and worker: connections, bytes, datagrams, closes by reason,
 * refusals, datagram drops by reason, latency histograms (connection
 * duration, handler callback time, time to first byte; the workers' buckets
 * summed here, nothing locked on their side); per server: queue depths,
 * admission, reloads, generation, start time, version and the configured
 * limits; the process_* series.  It reads the server through server_view.
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
#include "process.h"
#include "server.h"
#include "tls_ctx.h"
#include "tls_ocsp.h"
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

/* A label value with \, " and newlines escaped (the exposition format).
 * A value too long for out is cut before the first character that does not
 * fit whole, never inside a UTF-8 sequence (config strings are valid UTF-8:
 * jansson checks), so the page stays valid UTF-8. */
static const char *metrics_label(const char *in, char *out, size_t outlen)
{
    size_t k = 0;
    while (*in) {
        unsigned char b = (unsigned char)*in;
        size_t n = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2; /* sequence length */
        bool esc = *in == '\\' || *in == '"' || *in == '\n';
        if (k + (esc ? 2 : n) + 1 > outlen)
            break;
        if (esc) {
            out[k++] = '\\';
            out[k++] = *in == '\n' ? 'n' : *in;
            in++;
            continue;
        }
        for (size_t i = 0; i < n && *in; i++)
            out[k++] = *in++;
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
    {"wharf_datagram_send_calls_total", "counter",
     "sendmmsg calls that UDP datagrams left in (batched: fewer than datagrams).",
     offsetof(struct listener_counters, datagram_send_calls), true},
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

/* TLS listeners: handshakes done by version (and resumed), failed by reason. */
static void metrics_tls(struct metrics_text *t, const struct generation *g)
{
    char name[256];
    metrics_head(t, "wharf_tls_handshakes_total", "counter",
                 "TLS handshakes done, by protocol version.");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (!l->tls || !l->stats)
            continue;
        metrics_label(l->cfg->name, name, sizeof name);
        for (int v = 0; v < 2; v++) {
            uint64_t n = 0;
            for (unsigned wi = 0; wi < l->stats->nworkers; wi++)
                n += atomic_load_explicit(&l->stats->workers[wi].tls_handshakes[v],
                                          memory_order_relaxed);
            metrics_printf(t, "wharf_tls_handshakes_total{listener=\"%s\",version=\"%s\"} %llu\n",
                           name, v ? "TLSv1.3" : "TLSv1.2", (unsigned long long)n);
        }
    }
    metrics_head(t, "wharf_tls_handshakes_by_cipher_total", "counter",
                 "TLS handshakes done, by protocol version and cipher (the ciphers the "
                 "listener allows, and any counted before a reload changed them).");
    unsigned nslots = tls_ctx_cipher_slots();
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (!l->tls || !l->stats)
            continue;
        metrics_label(l->cfg->name, name, sizeof name);
        for (unsigned s = 0; s < TLS_CTX_CIPHER_SLOTS; s++) {
            if (s >= nslots && s != TLS_CTX_CIPHER_OTHER)
                continue;
            uint64_t n = 0;
            for (unsigned wi = 0; wi < l->stats->nworkers; wi++)
                n += atomic_load_explicit(&l->stats->workers[wi].tls_cipher[s],
                                          memory_order_relaxed);
            if (n == 0 && !tls_ctx_cipher_allowed(l->tls, s))
                continue;
            metrics_printf(t, "wharf_tls_handshakes_by_cipher_total{listener=\"%s\","
                              "version=\"%s\",cipher=\"%s\"} %llu\n",
                           name, tls_ctx_cipher_version(s), tls_ctx_cipher_name(s),
                           (unsigned long long)n);
        }
    }
    metrics_head(t, "wharf_tls_sessions_resumed_total", "counter",
                 "TLS handshakes that resumed a session (a ticket or the session cache).");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (!l->tls || !l->stats)
            continue;
        uint64_t n = 0;
        for (unsigned wi = 0; wi < l->stats->nworkers; wi++)
            n += atomic_load_explicit(&l->stats->workers[wi].tls_resumed, memory_order_relaxed);
        metrics_printf(t, "wharf_tls_sessions_resumed_total{listener=\"%s\"} %llu\n",
                       metrics_label(l->cfg->name, name, sizeof name), (unsigned long long)n);
    }
    metrics_head(t, "wharf_tls_ocsp_next_update_seconds", "gauge",
                 "nextUpdate of the OCSP response stapled with a certificate (ocsp_file), "
                 "Unix time.");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        time_t when;
        if (!l->tls)
            continue;
        metrics_label(l->cfg->name, name, sizeof name);
        if (tls_ocsp_next_update(l->tls->ctx, &when))
            metrics_printf(t, "wharf_tls_ocsp_next_update_seconds{listener=\"%s\","
                              "certificate=\"cert\"} %lld\n", name, (long long)when);
        for (size_t j = 0; j < l->tls->nsni; j++)
            if (tls_ocsp_next_update(l->tls->sni[j], &when))
                metrics_printf(t, "wharf_tls_ocsp_next_update_seconds{listener=\"%s\","
                                  "certificate=\"sni[%zu]\"} %lld\n", name, j, (long long)when);
    }
    metrics_head(t, "wharf_tls_handshakes_failed_total", "counter",
                 "TLS handshakes that failed, by reason.");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (!l->tls || !l->stats)
            continue;
        metrics_label(l->cfg->name, name, sizeof name);
        for (int r = 0; r < LISTENER_TLS_FAILS; r++) {
            uint64_t n = 0;
            for (unsigned wi = 0; wi < l->stats->nworkers; wi++)
                n += atomic_load_explicit(&l->stats->workers[wi].tls_failed[r],
                                          memory_order_relaxed);
            metrics_printf(t, "wharf_tls_handshakes_failed_total{listener=\"%s\",reason=\"%s\"}"
                              " %llu\n", name, listener_tls_fail_name((enum listener_tls_fail)r),
                           (unsigned long long)n);
        }
    }
}

/* Whether l's handlers opened outbound TLS connections (wharf_connect_tls):
 * its outbound series are shown from the first handshake on, done or not. */
static bool metrics_tls_outbound_used(const struct listener *l)
{
    for (unsigned wi = 0; wi < l->stats->nworkers; wi++) {
        const struct listener_counters *w = &l->stats->workers[wi];
        for (int v = 0; v < 2; v++)
            if (atomic_load_explicit(&w->tls_out_handshakes[v], memory_order_relaxed))
                return true;
        for (int r = 0; r < LISTENER_TLS_FAILS; r++)
            if (atomic_load_explicit(&w->tls_out_failed[r], memory_order_relaxed))
                return true;
    }
    return false;
}

/* Outbound TLS (wharf_connect_tls): handshakes done by version, failed by
 * reason, per listener whose handler made any. */
static void metrics_tls_outbound(struct metrics_text *t, const struct generation *g)
{
    char name[256];
    metrics_head(t, "wharf_tls_outbound_handshakes_total", "counter",
                 "Outbound TLS handshakes (wharf_connect_tls) done, by protocol version.");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (!l->stats || !metrics_tls_outbound_used(l))
            continue;
        metrics_label(l->cfg->name, name, sizeof name);
        for (int v = 0; v < 2; v++) {
            uint64_t n = 0;
            for (unsigned wi = 0; wi < l->stats->nworkers; wi++)
                n += atomic_load_explicit(&l->stats->workers[wi].tls_out_handshakes[v],
                                          memory_order_relaxed);
            metrics_printf(t,
                           "wharf_tls_outbound_handshakes_total{listener=\"%s\",version=\"%s\"}"
                           " %llu\n", name, v ? "TLSv1.3" : "TLSv1.2", (unsigned long long)n);
        }
    }
    metrics_head(t, "wharf_tls_outbound_handshakes_failed_total", "counter",
                 "Outbound TLS handshakes (wharf_connect_tls) that failed, by reason.");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (!l->stats || !metrics_tls_outbound_used(l))
            continue;
        metrics_label(l->cfg->name, name, sizeof name);
        for (int r = 0; r < LISTENER_TLS_FAILS; r++) {
            uint64_t n = 0;
            for (unsigned wi = 0; wi < l->stats->nworkers; wi++)
                n += atomic_load_explicit(&l->stats->workers[wi].tls_out_failed[r],
                                          memory_order_relaxed);
            metrics_printf(t,
                           "wharf_tls_outbound_handshakes_failed_total{listener=\"%s\","
                           "reason=\"%s\"} %llu\n",
                           name, listener_tls_fail_name((enum listener_tls_fail)r),
                           (unsigned long long)n);
        }
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

/* ---- histograms, drops by reason, limits, process_* ------------------------------ */

/* The histograms, one series set per listener (workers summed at the
 * scrape), name and help by kind; tcp_only: not for UDP listeners. */
static const struct metrics_hist {
    const char *name, *help;
    bool tcp_only;
    bool tls_only;
} metrics_hists[HISTOGRAM_KINDS] = {
    [HISTOGRAM_CONN_DURATION] = {"wharf_connection_duration_seconds",
                                 "TCP connections closed, by time from accept to close.", true,
                                 false},
    [HISTOGRAM_HANDLER] = {"wharf_handler_duration_seconds",
                           "Time spent in one handler callback (on_data, on_datagram, ...).",
                           false, false},
    [HISTOGRAM_TTFB] = {"wharf_time_to_first_byte_seconds",
                        "TCP connections by time from accept to the first byte written.", true,
                        false},
    [HISTOGRAM_TLS_HANDSHAKE] = {"wharf_tls_handshake_duration_seconds",
                                 "TLS handshakes done, by time from start to done.", true, true},
};

/* One listener's histogram of kind k, buckets cumulative as the format wants. */
static void metrics_hist_one(struct metrics_text *t, const char *name, const char *label,
                             const struct listener *l, enum histogram_kind k)
{
    struct histogram_snapshot snap = {0};
    for (unsigned wi = 0; wi < l->stats->nworkers; wi++)
        histogram_read(&l->stats->workers[wi].hist[k], &snap);
    const uint64_t *b = histogram_bounds(k);
    uint64_t cum = 0;
    for (unsigned i = 0; i < HISTOGRAM_BOUNDS; i++) {
        cum += snap.bucket[i];
        metrics_printf(t, "%s_bucket{listener=\"%s\",le=\"%g\"} %llu\n", name, label,
                       (double)b[i] / 1e9, (unsigned long long)cum);
    }
    metrics_printf(t, "%s_bucket{listener=\"%s\",le=\"+Inf\"} %llu\n", name, label,
                   (unsigned long long)snap.count);
    metrics_printf(t, "%s_sum{listener=\"%s\"} %.9f\n", name, label, (double)snap.sum_ns / 1e9);
    metrics_printf(t, "%s_count{listener=\"%s\"} %llu\n", name, label,
                   (unsigned long long)snap.count);
}

static void metrics_histograms(struct metrics_text *t, const struct generation *g)
{
    char label[256];
    for (int k = 0; k < HISTOGRAM_KINDS; k++) {
        const struct metrics_hist *mh = &metrics_hists[k];
        metrics_head(t, mh->name, "histogram", mh->help);
        for (unsigned i = 0; i < g->nlisteners; i++) {
            const struct listener *l = &g->listeners[i];
            if (!l->stats || (mh->tcp_only && l->cfg->protocol != CONFIG_TCP) ||
                (mh->tls_only && !l->tls))
                continue;
            metrics_label(l->cfg->name, label, sizeof label);
            metrics_hist_one(t, mh->name, label, l, (enum histogram_kind)k);
        }
    }
}

/* UDP datagrams dropped, by listener and reason (workers summed). */
static void metrics_drops(struct metrics_text *t, const struct generation *g)
{
    char label[256];
    metrics_head(t, "wharf_datagrams_dropped_by_reason_total", "counter",
                 "UDP datagrams dropped, by reason (their sum is wharf_datagrams_dropped_total).");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct listener *l = &g->listeners[i];
        if (l->cfg->protocol != CONFIG_UDP || !l->stats)
            continue;
        metrics_label(l->cfg->name, label, sizeof label);
        for (int r = 0; r < LISTENER_DROP_REASONS; r++) {
            uint64_t n = 0;
            for (unsigned wi = 0; wi < l->stats->nworkers; wi++)
                n += atomic_load_explicit(&l->stats->workers[wi].dropped[r], memory_order_relaxed);
            metrics_printf(t, "wharf_datagrams_dropped_by_reason_total{listener=\"%s\","
                              "reason=\"%s\"} %llu\n", label,
                           listener_drop_reason_name((enum listener_drop_reason)r),
                           (unsigned long long)n);
        }
    }
}

/* The configured limits, as gauges (an alert compares a usage with them). */
static void metrics_limits(struct metrics_text *t, const struct generation *g)
{
    const struct config *cfg = g->cfg;
    char label[256];
    metrics_one(t, "wharf_max_connections", "gauge",
                "Configured max_connections (TCP connections open at once, every listener).",
                (unsigned long long)cfg->max_connections);
    metrics_one(t, "wharf_max_connections_per_source", "gauge",
                "Configured max_connections_per_source (0: no limit).",
                (unsigned long long)cfg->max_connections_per_source);
    metrics_one(t, "wharf_output_budget_bytes", "gauge",
                "Configured output_budget (0: no budget).", (unsigned long long)cfg->output_budget);
    static const struct {
        const char *name, *help;
        size_t offset;
        int protocol; /* -1: both */
    } rows[] = {
        {"wharf_listener_max_input_bytes", "Configured buffers.max_input per connection.",
         offsetof(struct config_listener, max_input), CONFIG_TCP},
        {"wharf_listener_max_output_bytes", "Configured buffers.max_output per connection.",
         offsetof(struct config_listener, max_output), CONFIG_TCP},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        metrics_head(t, rows[k].name, "gauge", rows[k].help);
        for (unsigned i = 0; i < g->nlisteners; i++) {
            const struct config_listener *c = g->listeners[i].cfg;
            if ((int)c->protocol != rows[k].protocol)
                continue;
            metrics_printf(t, "%s{listener=\"%s\"} %zu\n", rows[k].name,
                           metrics_label(c->name, label, sizeof label),
                           *(const size_t *)((const char *)c + rows[k].offset));
        }
    }
    metrics_head(t, "wharf_listener_rate_limit", "gauge",
                 "Configured rate_limit: datagrams per second per source (0: off).");
    for (unsigned i = 0; i < g->nlisteners; i++) {
        const struct config_listener *c = g->listeners[i].cfg;
        if (c->protocol == CONFIG_UDP)
            metrics_printf(t, "wharf_listener_rate_limit{listener=\"%s\"} %llu\n",
                           metrics_label(c->name, label, sizeof label),
                           (unsigned long long)c->rate_limit);
    }
}

/* The process_* series, named as the Prometheus client libraries name them. */
static void metrics_process(struct metrics_text *t)
{
    struct process_stats p;
    process_read(&p);
    metrics_head(t, "process_cpu_seconds_total", "counter",
                 "Total user and system CPU time spent in seconds.");
    metrics_printf(t, "process_cpu_seconds_total %.6f\n", p.cpu_seconds);
    if (p.have_memory) {
        metrics_one(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                    (unsigned long long)p.resident_bytes);
        metrics_one(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                    (unsigned long long)p.virtual_bytes);
    }
    if (p.have_fds)
        metrics_one(t, "process_open_fds", "gauge", "Number of open file descriptors.",
                    (unsigned long long)p.open_fds);
    if (p.max_fds)
        metrics_one(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                    (unsigned long long)p.max_fds);
    if (p.have_start) {
        metrics_head(t, "process_start_time_seconds", "gauge",
                     "Start time of the process since unix epoch in seconds.");
        metrics_printf(t, "process_start_time_seconds %.2f\n", p.start_time);
    }
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
        metrics_histograms(&t, v.gen);
        metrics_tls(&t, v.gen);
        metrics_tls_outbound(&t, v.gen);
        metrics_drops(&t, v.gen);
        metrics_limits(&t, v.gen);
    }
    metrics_process(&t);
    metrics_server(&t, &v);
    generation_unref(v.gen);
    if (len && t.p)
        *len = t.len;
    return t.p;
}
