/* report.c - everything wharf-load prints or writes after a run: the human summary, the
 * JSON report (configuration echoed), the percentile spectrum, histogram files for merging,
 * the merged report, and a latency-by-percentile plot as SVG or HTML. */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

const double report_pcts[REPORT_NPCT] = {50, 90, 99, 99.9, 99.99, 100};
static const char *const pct_names[REPORT_NPCT] = {"p50", "p90", "p99", "p99.9", "p99.99", "max"};

void report_fmt_ns(char *buf, size_t len, uint64_t ns)
{
    double v = (double)ns;
    const char *unit = "ns";

    if (ns < 1000) {
        snprintf(buf, len, "%" PRIu64 "ns", ns);
        return;
    }
    if (v < 1e6)
        v /= 1e3, unit = "us";
    else if (v < 1e9)
        v /= 1e6, unit = "ms";
    else
        v /= 1e9, unit = "s";
    snprintf(buf, len, v >= 100 ? "%.0f%s" : v >= 10 ? "%.1f%s" : "%.2f%s", v, unit);
}

static double rate_of(const struct load_result *res)
{
    return res->measure_ns ? res->st.c[ST_MEASURED] * 1e9 / (double)res->measure_ns : 0.0;
}

static double cpu_per_msg_us(const struct load_result *res)
{
    uint64_t n = res->st.c[ST_SENT] + res->st.c[ST_RECEIVED];

    /* per exchange: one send and one verified echo */
    return n ? res->cpu_s * 1e6 / ((double)n / 2.0) : 0.0;
}

static void latency_row(FILE *f, const char *label, const struct hist *h)
{
    char buf[32];
    int i;

    fprintf(f, "  %-11s", label);
    if (h->total == 0) {
        fprintf(f, " (no samples)\n");
        return;
    }
    for (i = 0; i < REPORT_NPCT; i++) {
        report_fmt_ns(buf, sizeof(buf), hist_percentile(h, report_pcts[i]));
        fprintf(f, " %9s", buf);
    }
    report_fmt_ns(buf, sizeof(buf), (uint64_t)hist_mean(h));
    fprintf(f, " %9s", buf);
    report_fmt_ns(buf, sizeof(buf), (uint64_t)hist_stddev(h));
    fprintf(f, " %9s\n", buf);
}

static void latency_header(FILE *f)
{
    int i;

    fprintf(f, "  %-11s", "latency");
    for (i = 0; i < REPORT_NPCT; i++)
        fprintf(f, " %9s", pct_names[i]);
    fprintf(f, " %9s %9s\n", "mean", "stdev");
}

void report_mix(char *buf, size_t len, const struct tmpl_set *ts)
{
    size_t n;
    unsigned i;

    n = (size_t)snprintf(buf, len, "%s requests", ts->proto);
    for (i = 0; i < ts->n && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s %.0f%%", i ? ", " : " (", ts->t[i].name,
                              100.0 * (ts->cum[i] - (i ? ts->cum[i - 1] : 0)));
    if (n < len)
        snprintf(buf + n, len - n, ")");
}

void report_series_table(FILE *f, const struct series *se)
{
    char a[32], b[32], c[32];
    size_t i;

    fprintf(f, "\nover time (interval %.3g s)\n%9s %12s %10s %8s %9s %9s %9s\n",
            se->interval_ns / 1e9, "t (s)", "rate", "sent", "errors", "p50", "p99", "max");
    for (i = 0; i < se->n; i++) {
        const struct series_point *p = &se->p[i];

        report_fmt_ns(a, sizeof(a), series_percentile(p, 50));
        report_fmt_ns(b, sizeof(b), series_percentile(p, 99));
        report_fmt_ns(c, sizeof(c), p->max);
        fprintf(f, "%9.3f %12.1f %10" PRIu64 " %8" PRIu64 " %9s %9s %9s\n",
                i * se->interval_ns / 1e9, series_rate(se, i), p->sent, p->errors,
                p->replies ? a : "-", p->replies ? b : "-", p->replies ? c : "-");
    }
}

static const char *mode_name(const struct load_config *cfg)
{
    return cfg->rate > 0 ? "open loop" : "closed loop";
}

/* The human report's first lines: what ran (target, mode, threads, messages), for how
 * long, and from which source addresses. */
static void human_setup(FILE *f, const struct load_config *cfg, const struct load_result *res)
{
    char size[200];
    unsigned i;

    if (cfg->h2.on) /* --h2: the mix is one request per target; say what goes */
        snprintf(size, sizeof(size), "HTTP/2 %s%s, %u streams per connection", cfg->http.method,
                 cfg->tls.on ? " over TLS" : " (h2c)", cfg->pipeline);
    else if (cfg->tmpls)
        report_mix(size, sizeof(size), cfg->tmpls);
    else if (cfg->msg.size_min == cfg->msg.size_max)
        snprintf(size, sizeof(size), "%u B messages", cfg->msg.size_min);
    else
        snprintf(size, sizeof(size), "%u-%u B messages", cfg->msg.size_min, cfg->msg.size_max);
    if (cfg->http.data_file) { /* --data: the body every request carries */
        size_t n = strlen(size);

        snprintf(size + n, sizeof(size) - n, ", body %zu B", cfg->http.body_len);
    }
    fprintf(f, "wharf-load %s: %s %s, %s", LOAD_VERSION, cfg->udp ? "udp" : "tcp", cfg->target,
            mode_name(cfg));
    if (cfg->rate > 0)
        fprintf(f, " at %.0f msg/s", cfg->rate);
    fprintf(f, ", %u threads, %u %s, pipeline %u, %s", cfg->threads, cfg->connections,
            cfg->udp ? "flows" : "connections", cfg->pipeline, size);
    if (cfg->churn)
        fprintf(f, ", churn every %" PRIu64 " exchanges", cfg->churn);
    fprintf(f, "\n  %-11s %.3f s measured", "run", res->measure_ns / 1e9);
    if (cfg->warmup_ns)
        fprintf(f, " after %.3f s warm-up (excluded)", cfg->warmup_ns / 1e9);
    fprintf(f, ", drain %.3f s, wall %.3f s%s\n", res->drain_used_ns / 1e9, res->wall_s,
            res->interrupted ? " (interrupted)" : "");
    if (cfg->nsources) {
        fprintf(f, "  %-11s", "sources");
        for (i = 0; i < cfg->nsources; i++)
            fprintf(f, "%s%s", i ? ", " : " ", cfg->sources[i].text);
        fprintf(f, " (%s bind to each in turn)\n", cfg->udp ? "flows" : "new connections");
    }
    if (cfg->script) {
        const char *sep = "; thread.addr";

        fprintf(f, "  %-11s %s (%s)", "script", cfg->script,
                cfg->scripts && script_set_has_request(cfg->scripts)
                    ? "it makes the requests; the templates frame the replies"
                    : "the templates make the requests");
        if (cfg->scripts && script_set_has_delay(cfg->scripts))
            fprintf(f, "; delay() before each request");
        if (res->st.c[ST_SCRIPT_STOPS])
            fprintf(f, "; %" PRIu64 " of %u threads stopped by wrk.thread:stop()",
                    (uint64_t)res->st.c[ST_SCRIPT_STOPS], cfg->threads);
        for (i = 0; cfg->scripts && i < cfg->threads; i++) {
            const char *a = script_addr_text(cfg->scripts, i);

            if (a) {
                fprintf(f, "%s thread %u %s", sep, i, a);
                sep = ",";
            }
        }
        fputc('\n', f);
    }
}

/* The human report's messages line, backlog and latency table. */
/* Templates: latency per command (template) when there are several, and for cache
 * workloads the hits, misses and the preload. */
static void human_commands(FILE *f, const struct load_config *cfg, const struct load_result *res)
{
    const _Atomic uint64_t *c = res->st.c;
    char label[40], pattern[64];
    unsigned k;

    if (!cfg->tmpls)
        return;
    for (k = 0; cfg->tmpls->n > 1 && k < cfg->tmpls->n; k++) {
        snprintf(label, sizeof(label), "  %.9s", cfg->tmpls->t[k].name);
        if (res->cmd[k])
            latency_row(f, label, res->cmd[k]);
    }
    if (strcmp(cfg->tmpls->proto, "memcache") && strcmp(cfg->tmpls->proto, "redis"))
        return;
    keys_describe(&cfg->tmpls->keys, pattern, sizeof(pattern));
    fprintf(f, "  %-11s %" PRIu64 " hits, %" PRIu64 " misses (%.2f%% hits), %" PRIu64
            " bad values; keys %" PRIu64 " %s",
            "cache", c[ST_HITS], c[ST_MISSES],
            c[ST_HITS] + c[ST_MISSES] ? 100.0 * c[ST_HITS] / (double)(c[ST_HITS] + c[ST_MISSES]) : 0.0,
            c[ST_BAD_VALUE], cfg->tmpls->keys.n, pattern);
    if (cfg->preloaded)
        fprintf(f, "; preload %" PRIu64 " sets in %.3f s", cfg->preload_sets, cfg->preload_ns / 1e9);
    fprintf(f, "\n");
}

static void human_messages(FILE *f, const struct load_config *cfg, const struct load_result *res)
{
    const _Atomic uint64_t *c = res->st.c;
    double rate = rate_of(res), mbit = 0;

    if (cfg->tls.on && cfg->tls.handshake_only) {
        fprintf(f, "  %-11s %" PRIu64 " measured, %.1f handshakes/s; %" PRIu64 " started, %" PRIu64
                " done in all (each a new connection: connect, TLS handshake, close)\n",
                "handshakes", c[ST_MEASURED], rate, c[ST_SENT], c[ST_RECEIVED]);
        latency_header(f);
        latency_row(f, "setup", res->raw);
        return;
    }
    if (c[ST_RECEIVED])
        mbit = rate * ((double)c[ST_BYTES_RECEIVED] / (double)c[ST_RECEIVED]) * 8 / 1e6;
    fprintf(f, "  %-11s %" PRIu64 " measured, %.1f msg/s", "messages", c[ST_MEASURED], rate);
    if (cfg->rate > 0)
        fprintf(f, " (target %.0f)", cfg->rate);
    fprintf(f, "; %" PRIu64 " sent, %" PRIu64 " verified in all, %.1f Mbit/s %s\n", c[ST_SENT],
            c[ST_RECEIVED], mbit, cfg->tmpls ? "received" : "echoed");
    if (cfg->rate > 0) {
        /* every message of the schedule not answered on time is accounted for here */
        char tick[32];

        report_fmt_ns(tick, sizeof(tick), cfg->tick_ns);
        fprintf(f, "  %-11s tick %s, batch %u%s, %.1f messages per send; %" PRIu64 " deferred "
                "(sent after the tick they fell due in: connection opening, window or buffer "
                "full), %" PRIu64 " skipped (--ramp), %" PRIu64 " due but never sent (backlog "
                "at end)\n", "schedule", tick, cfg->batch, cfg->batch_auto ? " (auto)" : "",
                c[ST_SENDS] ? (double)c[ST_SENT] / (double)c[ST_SENDS] : 0.0, c[ST_DEFERRED],
                c[ST_SKIPPED], c[ST_BACKLOG_END]);
    } else if (c[ST_BACKLOG_END]) {
        fprintf(f, "  %-11s %" PRIu64 " messages were due but not sent when sending stopped\n",
                "backlog", c[ST_BACKLOG_END]);
    }
    latency_header(f);
    if (cfg->rate > 0) {
        latency_row(f, "corrected", res->corrected);
        latency_row(f, "uncorrected", res->raw);
    } else {
        latency_row(f, "round trip", res->raw);
    }
    human_commands(f, cfg, res);
}

/* The human report's connects line (TCP, or UDP flows that counted connects). */
static void human_connects(FILE *f, const struct load_config *cfg, const struct load_result *res)
{
    const _Atomic uint64_t *c = res->st.c;
    char buf[32];

    if (cfg->udp && !res->connect->total)
        return;
    fprintf(f, "  %-11s %" PRIu64 " established", "connects", c[ST_CONNECTS]);
    if (!cfg->udp && res->connect->total) {
        report_fmt_ns(buf, sizeof(buf), hist_percentile(res->connect, 50));
        fprintf(f, ", connect p50 %s", buf);
        report_fmt_ns(buf, sizeof(buf), hist_percentile(res->connect, 99));
        fprintf(f, " p99 %s", buf);
        report_fmt_ns(buf, sizeof(buf), res->connect->max);
        fprintf(f, " max %s", buf);
    }
    if (cfg->churn && res->wall_s > 0)
        fprintf(f, "; %" PRIu64 " churn closes, %.1f connects/s", c[ST_CHURN_CLOSES],
                c[ST_CONNECTS] / res->wall_s);
    if (c[ST_RECONNECTS])
        fprintf(f, "; reconnects %" PRIu64 " (the server closed between replies), %" PRIu64
                " resent", c[ST_RECONNECTS], c[ST_RESENT]);
    fprintf(f, "\n");
}

/* The TLS failures of the handshake: verify, handshake, timeout. */
static uint64_t tls_failed(const struct load_result *res)
{
    return res->st.c[ST_TLS_VERIFY] + res->st.c[ST_TLS_HANDSHAKE] +
           res->st.c[ST_TLS_HANDSHAKE_TIMEOUT];
}

/* The human report's TLS lines (--tls): settings, handshakes done, resumed and failed by
 * reason, handshake latency, and what the handshakes negotiated. */
static void human_tls(FILE *f, const struct load_config *cfg, const struct load_result *res)
{
    static const enum stat_id why[] = {ST_TLS_VERIFY, ST_TLS_HANDSHAKE, ST_TLS_HANDSHAKE_TIMEOUT};
    const struct tls_opts *o = &cfg->tls;
    const _Atomic uint64_t *c = res->st.c;
    uint64_t failed = tls_failed(res);
    const char *sep = " (";
    char buf[32];
    unsigned i;

    if (!o->on || !res->handshake)
        return;
    fprintf(f, "  %-11s verify %s, sni %s, alpn %s, resume %s%s\n", "tls",
            o->verify ? (o->ca_file ? o->ca_file : "system store") : "off",
            o->sni[0] ? o->sni : "(none)", o->alpn_len ? o->alpn_text : "(none)",
            o->resume ? "on" : "off", o->handshake_only ? ", handshakes only" : "");
    fprintf(f, "  %-11s %" PRIu64 " done (%" PRIu64 " full, %" PRIu64 " resumed), %" PRIu64
            " failed", "tls hs", c[ST_TLS_HANDSHAKES], c[ST_TLS_HANDSHAKES] - c[ST_TLS_RESUMED],
            c[ST_TLS_RESUMED], failed);
    for (i = 0; failed && i < sizeof(why) / sizeof(why[0]); i++)
        if (c[why[i]]) {
            fprintf(f, "%s%s %" PRIu64, sep, stat_names[why[i]], c[why[i]]);
            sep = ", ";
        }
    fprintf(f, "%s", failed ? ")" : "");
    if (res->handshake && res->handshake->total) {
        report_fmt_ns(buf, sizeof(buf), hist_percentile(res->handshake, 50));
        fprintf(f, "; handshake p50 %s", buf);
        report_fmt_ns(buf, sizeof(buf), hist_percentile(res->handshake, 99));
        fprintf(f, " p99 %s", buf);
        report_fmt_ns(buf, sizeof(buf), res->handshake->max);
        fprintf(f, " max %s", buf);
    }
    fprintf(f, "\n");
    for (i = 0; i < res->tally.n; i++)
        fprintf(f, "  %-11s %s %s%s%s: %" PRIu64 "\n", i ? "" : "negotiated", res->tally.e[i].version,
                res->tally.e[i].cipher, res->tally.e[i].alpn[0] ? ", alpn " : "",
                res->tally.e[i].alpn, res->tally.e[i].count);
    if (res->tally.other)
        fprintf(f, "  %-11s other combinations: %" PRIu64 "\n", "", res->tally.other);
}

/* The human report's datagram losses (UDP), errors by kind and the first error. */
static void human_errors(FILE *f, const struct load_config *cfg, const struct load_result *res)
{
    const _Atomic uint64_t *c = res->st.c;
    uint64_t errors = stat_errors(&res->st);
    const char *sep = " (";
    int i;

    if (cfg->udp)
        fprintf(f,
                "  %-11s lost %" PRIu64 " of %" PRIu64 " (%.3f%%), late %" PRIu64
                ", reordered %" PRIu64 ", duplicates %" PRIu64 "\n",
                "datagrams", c[ST_LOST], c[ST_SENT],
                c[ST_SENT] ? 100.0 * c[ST_LOST] / (double)c[ST_SENT] : 0.0, c[ST_LATE],
                c[ST_REORDER], c[ST_DUPLICATE]);
    fprintf(f, "  %-11s %" PRIu64, "errors", errors);
    for (i = ST_FIRST_ERROR; errors && i < ST__COUNT; i++)
        if (c[i]) {
            fprintf(f, "%s%s %" PRIu64, sep, stat_names[i], c[i]);
            sep = ", ";
        }
    fprintf(f, "%s\n", errors ? ")" : "");
    if (res->first_error[0])
        fprintf(f, "  %-11s %s\n", "first error", res->first_error);
}

/* The HTTP responses counted by status class (0 for other protocols). */
static uint64_t c_status(const struct load_result *res)
{
    return stat_get(&res->st, ST_STATUS_2XX) + stat_get(&res->st, ST_STATUS_3XX) +
           stat_get(&res->st, ST_STATUS_4XX) + stat_get(&res->st, ST_STATUS_5XX);
}

void report_human(FILE *f, const struct load_config *cfg, const struct load_result *res,
                  const char *why)
{
    human_setup(f, cfg, res);
    human_messages(f, cfg, res);
    human_connects(f, cfg, res);
    if (c_status(res))
        fprintf(f, "  %-11s 2xx %" PRIu64 ", 3xx %" PRIu64 ", 4xx %" PRIu64 ", 5xx %" PRIu64 "\n",
                "status", stat_get(&res->st, ST_STATUS_2XX), stat_get(&res->st, ST_STATUS_3XX),
                stat_get(&res->st, ST_STATUS_4XX), stat_get(&res->st, ST_STATUS_5XX));
    targets_report_human(f, cfg->targets, cfg->ntargets, res->tgt, res->measure_ns / 1e9);
    human_tls(f, cfg, res);
    human_errors(f, cfg, res);
    fprintf(f,
            "  %-11s %.3f s (user %.2f s, sys %.2f s) = %.1f%% of one CPU, %.2f us per exchange\n",
            "cpu", res->cpu_s, res->cpu_user_s, res->cpu_sys_s,
            res->wall_s > 0 ? 100.0 * res->cpu_s / res->wall_s : 0.0, cpu_per_msg_us(res));
    fprintf(f, "  %-11s %s%s%s\n", "result", why[0] ? "FAIL" : "PASS", why[0] ? ": " : "", why);
}

void report_distribution(FILE *f, struct hist *const *hists, const char *const *names, int n,
                         const struct series *se)
{
    int i;

    if (se)
        report_series_table(f, se);
    for (i = 0; i < n; i++)
        report_spectrum(f, names[i], hists[i]);
}

int report_csv(const char *path, const struct series *se, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    size_t i;
    int bad;

    if (!f) {
        snprintf(err, errlen, "--csv %s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "t_s,unix_s,interval_s,sent,replies,errors,rate,p50_ns,p99_ns,max_ns\n");
    for (i = 0; se && i < se->n; i++) {
        const struct series_point *p = &se->p[i];
        uint64_t off = i * se->interval_ns;

        fprintf(f, "%.3f,%.3f,%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.1f,%" PRIu64 ",%" PRIu64
                   ",%" PRIu64 "\n",
                off / 1e9, (se->start_unix_ns + off) / 1e9, se->interval_ns / 1e9, p->sent,
                p->replies, p->errors, series_rate(se, i), p->replies ? series_percentile(p, 50) : 0,
                p->replies ? series_percentile(p, 99) : 0, p->replies ? p->max : 0);
    }
    bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(err, errlen, "--csv %s: write failed: %s", path, strerror(errno ? errno : EIO));
        return -1;
    }
    return 0;
}

void report_quiet(FILE *f, const struct load_config *cfg, const struct load_result *res,
                  const char *why)
{
    char p99[32];

    report_fmt_ns(p99, sizeof(p99), hist_percentile(res->corrected, 99));
    fprintf(f, "%s: %.1f msg/s, p99 %s, errors %" PRIu64, why[0] ? "FAIL" : "PASS", rate_of(res),
            p99, stat_errors(&res->st));
    if (cfg->udp)
        fprintf(f, ", loss %.3f%%",
                res->st.c[ST_SENT] ? 100.0 * res->st.c[ST_LOST] / (double)res->st.c[ST_SENT] : 0.0);
    fprintf(f, "%s%s\n", why[0] ? " - " : "", why);
}

void report_spectrum(FILE *f, const char *title, const struct hist *h)
{
    struct hist_point pts[1024];
    size_t n = hist_spectrum(h, 5, pts, 1024), i;

    fprintf(f, "\n%s (us)\n%15s %14s %12s %18s\n\n", title, "Value", "Percentile", "TotalCount",
            "1/(1-Percentile)");
    for (i = 0; i < n; i++) {
        double p = pts[i].percentile / 100.0;

        if (p < 1.0)
            fprintf(f, "%15.3f %14.12f %12" PRIu64 " %18.2f\n", pts[i].value / 1e3, p,
                    pts[i].count_at, 1.0 / (1.0 - p));
        else
            fprintf(f, "%15.3f %14.12f %12" PRIu64 "\n", pts[i].value / 1e3, p, pts[i].count_at);
    }
    fprintf(f, "#[Mean = %.3f, StdDeviation = %.3f]\n#[Max = %.3f, Total count = %" PRIu64 "]\n",
            hist_mean(h) / 1e3, hist_stddev(h) / 1e3, h->max / 1e3, h->total);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_hist(FILE *f, const struct hist *h, bool spectrum)
{
    int i;

    fprintf(f, "{\"count\": %" PRIu64, h->total);
    for (i = 0; i < REPORT_NPCT; i++)
        fprintf(f, ", \"%s\": %" PRIu64, pct_names[i], hist_percentile(h, report_pcts[i]));
    fprintf(f, ", \"min\": %" PRIu64 ", \"mean\": %.1f, \"stdev\": %.1f", h->total ? h->min : 0,
            hist_mean(h), hist_stddev(h));
    if (spectrum) {
        struct hist_point pts[1024];
        size_t n = hist_spectrum(h, 5, pts, 1024), k;

        fprintf(f, ", \"spectrum\": [");
        for (k = 0; k < n; k++)
            fprintf(f, "%s{\"percentile\": %.12g, \"value\": %" PRIu64 ", \"count\": %" PRIu64 "}",
                    k ? ", " : "", pts[k].percentile, pts[k].value, pts[k].count_at);
        fprintf(f, "]");
    }
    fprintf(f, "}");
}

/* The "tls" member of the JSON report: null without --tls. */
static void report_json_tls(FILE *f, const struct load_config *cfg, const struct load_result *res)
{
    const struct tls_opts *o = &cfg->tls;
    const _Atomic uint64_t *c = res->st.c;
    unsigned i;

    if (!o->on || !res->handshake) {
        fprintf(f, "  \"tls\": null,\n");
        return;
    }
    fprintf(f, "  \"tls\": {\"verify\": %s, \"ca_file\": ", o->verify ? "true" : "false");
    if (o->ca_file)
        json_str(f, o->ca_file);
    else
        fprintf(f, "null");
    fprintf(f, ", \"sni\": ");
    json_str(f, o->sni);
    fprintf(f, ", \"alpn\": ");
    json_str(f, o->alpn_text);
    fprintf(f,
            ", \"resume\": %s, \"handshake_only\": %s, \"handshake_timeout_ns\": %" PRIu64
            ",\n    \"handshakes\": %" PRIu64 ", \"full\": %" PRIu64 ", \"resumed\": %" PRIu64
            ", \"failed\": %" PRIu64 ", \"failed_by_reason\": {\"tls_verify\": %" PRIu64
            ", \"tls_handshake\": %" PRIu64 ", \"tls_handshake_timeout\": %" PRIu64 "}"
            ", \"tls_error\": %" PRIu64 ",\n    \"handshake_ns\": ",
            o->resume ? "true" : "false", o->handshake_only ? "true" : "false",
            o->handshake_timeout_ns, c[ST_TLS_HANDSHAKES], c[ST_TLS_HANDSHAKES] - c[ST_TLS_RESUMED],
            c[ST_TLS_RESUMED], tls_failed(res), c[ST_TLS_VERIFY], c[ST_TLS_HANDSHAKE],
            c[ST_TLS_HANDSHAKE_TIMEOUT], c[ST_TLS_ERROR]);
    json_hist(f, res->handshake, false);
    fprintf(f, ",\n    \"negotiated\": [");
    for (i = 0; i < res->tally.n; i++) {
        fprintf(f, "%s{\"version\": ", i ? ", " : "");
        json_str(f, res->tally.e[i].version);
        fprintf(f, ", \"cipher\": ");
        json_str(f, res->tally.e[i].cipher);
        fprintf(f, ", \"alpn\": ");
        json_str(f, res->tally.e[i].alpn);
        fprintf(f, ", \"count\": %" PRIu64 "}", res->tally.e[i].count);
    }
    fprintf(f, "], \"negotiated_other\": %" PRIu64 "},\n", res->tally.other);
}

void report_json(FILE *f, const struct load_config *cfg, const struct load_result *res,
                 const char *why)
{
    const _Atomic uint64_t *c = res->st.c;
    int i;

    fprintf(f, "{\n  \"tool\": \"wharf-load\", \"version\": \"%s\",\n  \"config\": {\"target\": ",
            LOAD_VERSION);
    json_str(f, cfg->target);
    fprintf(f, ", \"address\": ");
    json_str(f, cfg->host);
    fprintf(f,
            ", \"port\": %u, \"protocol\": \"%s\", \"mode\": \"%s\", \"rate\": %.17g"
            ", \"threads\": %u, \"connections\": %u, \"pipeline\": %u, \"size_min\": %u"
            ", \"size_max\": %u, \"duration_ns\": %" PRIu64 ", \"count\": %" PRIu64
            ", \"warmup_ns\": %" PRIu64 ", \"drain_ns\": %" PRIu64 ", \"ramp\": %.17g"
            ", \"churn\": %" PRIu64 ", \"connect_timeout_ns\": %" PRIu64
            ", \"udp_timeout_ns\": %" PRIu64 ", \"seed\": %" PRIu64 ", \"max_p99_ns\": %" PRIu64
            ", \"min_rate\": %.17g, \"max_errors\": %" PRIu64 ", \"max_loss_pct\": %.17g",
            cfg->port, cfg->udp ? "udp" : "tcp", cfg->rate > 0 ? "open" : "closed", cfg->rate,
            cfg->threads, cfg->connections, cfg->pipeline, cfg->msg.size_min, cfg->msg.size_max,
            cfg->duration_ns, cfg->count, cfg->warmup_ns, cfg->drain_ns, cfg->ramp, cfg->churn,
            cfg->connect_timeout_ns, cfg->udp_timeout_ns, cfg->msg.seed, cfg->max_p99_ns,
            cfg->min_rate, cfg->max_errors, cfg->max_loss_pct);
    fprintf(f, ", \"tick_ns\": %" PRIu64 ", \"batch\": %u, \"batch_auto\": %s",
            cfg->rate > 0 ? cfg->tick_ns : 0, cfg->rate > 0 ? cfg->batch : 0,
            cfg->rate > 0 && cfg->batch_auto ? "true" : "false");
    fprintf(f, ", \"sources\": [");
    for (i = 0; i < (int)cfg->nsources; i++) {
        fprintf(f, "%s", i ? ", " : "");
        json_str(f, cfg->sources[i].text);
    }
    fprintf(f, "]");
    if (cfg->script) {
        fprintf(f, ", \"script\": ");
        json_str(f, cfg->script);
        fprintf(f, ", \"script_requests\": %s, \"script_delay\": %s, \"max_request\": %u, "
                "\"thread_addrs\": [",
                cfg->scripts && script_set_has_request(cfg->scripts) ? "true" : "false",
                cfg->scripts && script_set_has_delay(cfg->scripts) ? "true" : "false",
                cfg->max_request);
        for (i = 0; cfg->scripts && i < (int)cfg->threads; i++) {
            const char *a = script_addr_text(cfg->scripts, (unsigned)i);

            fprintf(f, "%s", i ? ", " : "");
            if (a)
                json_str(f, a);
            else
                fprintf(f, "null");
        }
        fprintf(f, "]");
    }
    fprintf(f, "},\n");
    fprintf(f, "  \"requests\": {\"proto\": \"%s\"", cfg->tmpls ? cfg->tmpls->proto : "echo");
    if (cfg->http.method) { /* --proto http: the method and the --data body */
        fprintf(f, ", \"method\": ");
        json_str(f, cfg->http.method);
        fprintf(f, ", \"data_file\": ");
        if (cfg->http.data_file)
            json_str(f, cfg->http.data_file);
        else
            fprintf(f, "null");
        fprintf(f, ", \"body_bytes\": %zu", cfg->http.body_len);
    }
    if (cfg->tmpls) {
        unsigned k;

        char pattern[64];

        keys_describe(&cfg->tmpls->keys, pattern, sizeof(pattern));
        fprintf(f, ", \"max_reply\": %u, \"keys\": %" PRIu64 ", \"zipf_s\": %.6g"
                ", \"key_pattern\": \"%s\", \"value_size_min\": %u, \"value_size_max\": %u"
                ", \"templates\": [",
                cfg->max_reply, cfg->tmpls->keys.n, cfg->tmpls->keys.zipf_s, pattern,
                cfg->tmpls->values.min, cfg->tmpls->values.max);
        for (k = 0; k < cfg->tmpls->n; k++) {
            fprintf(f, "%s{\"name\": ", k ? ", " : "");
            json_str(f, cfg->tmpls->t[k].name);
            fprintf(f, ", \"share\": %.6f, \"max_len\": %zu, \"keys_per_request\": %u"
                    ", \"latency_ns\": ",
                    cfg->tmpls->cum[k] - (k ? cfg->tmpls->cum[k - 1] : 0), cfg->tmpls->t[k].max_len,
                    cfg->tmpls->t[k].nkeys);
            if (res->cmd[k])
                json_hist(f, res->cmd[k], false);
            else
                fprintf(f, "null");
            fprintf(f, "}");
        }
        fprintf(f, "], \"preload\": ");
        if (cfg->preloaded)
            fprintf(f, "{\"keys\": %" PRIu64 ", \"sets\": %" PRIu64 ", \"errors\": %" PRIu64
                    ", \"ns\": %" PRIu64 "}", cfg->tmpls->keys.n, cfg->preload_sets,
                    cfg->preload_errors, cfg->preload_ns);
        else
            fprintf(f, "null");
    }
    fprintf(f, "},\n");
    report_json_tls(f, cfg, res);
    targets_report_json(f, cfg->targets, cfg->ntargets, res->tgt, res->measure_ns / 1e9);
    fprintf(f,
            "  \"measure_ns\": %" PRIu64 ", \"drain_ns\": %" PRIu64 ", \"wall_s\": %.6f"
            ", \"interrupted\": %s,\n",
            res->measure_ns, res->drain_used_ns, res->wall_s, res->interrupted ? "true" : "false");
    fprintf(f, "  \"rate\": %.3f,\n  \"counters\": {", rate_of(res));
    for (i = 0; i < ST__COUNT; i++)
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", stat_names[i], c[i]);
    fprintf(f, "},\n  \"errors\": %" PRIu64 ",\n", stat_errors(&res->st));
    if (cfg->udp)
        fprintf(f, "  \"loss_pct\": %.6f,\n",
                c[ST_SENT] ? 100.0 * c[ST_LOST] / (double)c[ST_SENT] : 0.0);
    fprintf(f, "  \"latency_ns\": {\n    \"corrected\": ");
    json_hist(f, res->corrected, cfg->percentiles);
    fprintf(f, ",\n    \"uncorrected\": ");
    json_hist(f, res->raw, cfg->percentiles);
    fprintf(f, ",\n    \"connect\": ");
    json_hist(f, res->connect, false);
    fprintf(f,
            "\n  },\n  \"cpu\": {\"total_s\": %.6f, \"user_s\": %.6f, \"sys_s\": %.6f"
            ", \"percent_of_one_cpu\": %.2f, \"us_per_exchange\": %.4f},\n",
            res->cpu_s, res->cpu_user_s, res->cpu_sys_s,
            res->wall_s > 0 ? 100.0 * res->cpu_s / res->wall_s : 0.0, cpu_per_msg_us(res));
    if (res->series)
        report_json_series(f, res->series);
    fprintf(f, "  \"first_error\": ");
    json_str(f, res->first_error);
    fprintf(f, ",\n  \"pass\": %s, \"fail_reasons\": ", why[0] ? "false" : "true");
    json_str(f, why);
    fprintf(f, "\n}\n");
}

void report_json_series(FILE *f, const struct series *se)
{
    size_t i;

    fprintf(f,
            "  \"series\": {\"interval_ns\": %" PRIu64 ", \"start_unix_ns\": %" PRIu64
            ", \"span_ns\": %" PRIu64 ", \"points\": [",
            se->interval_ns, se->start_unix_ns, se->span_ns);
    for (i = 0; i < se->n; i++) {
        const struct series_point *p = &se->p[i];

        fprintf(f,
                "%s\n    {\"t\": %.3f, \"rate\": %.1f, \"sent\": %" PRIu64 ", \"replies\": %" PRIu64
                ", \"errors\": %" PRIu64 ", \"p50\": %" PRIu64 ", \"p99\": %" PRIu64
                ", \"max\": %" PRIu64 "}",
                i ? "," : "", i * se->interval_ns / 1e9, series_rate(se, i), p->sent, p->replies,
                p->errors, series_percentile(p, 50), series_percentile(p, 99), p->max);
    }
    fprintf(f, "]},\n");
}

/* ---- merged files ---------------------------------------------------------------------------- */

void report_merge(FILE *f, const struct load_config *cfg, const struct hist_file *m, int nfiles,
                  double rate, const struct series *se, const char *why)
{
    int i;

    if (cfg->json) {
        fprintf(f,
                "{\n  \"tool\": \"wharf-load\", \"version\": \"%s\", \"merged_files\": %d,\n"
                "  \"messages\": %" PRIu64 ", \"rate\": %.3f, \"errors\": %" PRIu64
                ",\n  \"latency_ns\": {",
                LOAD_VERSION, nfiles, m->messages, rate, m->errors);
        for (i = 0; i < m->nsections; i++) {
            fprintf(f, "%s\n    ", i ? "," : "");
            json_str(f, strcmp(m->names[i], "raw") == 0 ? "uncorrected" : m->names[i]);
            fprintf(f, ": ");
            json_hist(f, m->hists[i], cfg->percentiles);
        }
        fprintf(f, "\n  },\n");
        if (se)
            report_json_series(f, se);
        fprintf(f, "  \"pass\": %s, \"fail_reasons\": ", why[0] ? "false" : "true");
        json_str(f, why);
        fprintf(f, "\n}\n");
        return;
    }
    if (cfg->quiet) {
        char p99[32];
        struct hist *h = hist_file_get(m, "corrected");

        report_fmt_ns(p99, sizeof(p99), h ? hist_percentile(h, 99) : 0);
        fprintf(f, "%s: %.1f msg/s, p99 %s, errors %" PRIu64 "%s%s\n", why[0] ? "FAIL" : "PASS",
                rate, p99, m->errors, why[0] ? " - " : "", why);
        return;
    }
    fprintf(f, "wharf-load %s: %d histogram files merged\n", LOAD_VERSION, nfiles);
    fprintf(f, "  %-11s %" PRIu64 " measured, %.1f msg/s (sum of the runs' rates)", "messages",
            m->messages, rate);
    fprintf(f, ", errors %" PRIu64 "\n", m->errors);
    latency_header(f);
    for (i = 0; i < m->nsections; i++)
        latency_row(f, strcmp(m->names[i], "raw") == 0 ? "uncorrected" : m->names[i], m->hists[i]);
    fprintf(f, "  %-11s %s%s%s\n", "result", why[0] ? "FAIL" : "PASS", why[0] ? ": " : "", why);
}

/* ---- histogram files ------------------------------------------------------------------------- */

int report_write_hist(const char *path, const struct load_result *res, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    uint64_t errors = stat_errors(&res->st);
    int bad;

    if (!f) {
        snprintf(err, errlen, "--hist-out %s: %s", path, strerror(errno));
        return -1;
    }
    bad = hist_file_write_header(f, res->st.c[ST_MEASURED], res->measure_ns, errors) ||
          hist_file_write_section(f, "corrected", res->corrected) ||
          hist_file_write_section(f, "raw", res->raw) ||
          hist_file_write_section(f, "connect", res->connect) ||
          (res->series && series_write(f, res->series));
    if (fclose(f) != 0 || bad) {
        snprintf(err, errlen, "--hist-out %s: write failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- plot ------------------------------------------------------------------------------------ */

#define PW 900
#define PH 480
#define ML 90
#define MR 30
#define MT 50
#define MB 60

static double plot_x(double pct, double xmax)
{
    double p = pct / 100.0, x;

    if (p >= 1.0)
        x = xmax;
    else
        x = log10(1.0 / (1.0 - p));
    if (x > xmax)
        x = xmax;
    return ML + x / xmax * (PW - ML - MR);
}

static double plot_y(double v, double ymax) { return PH - MB - v / ymax * (PH - MT - MB); }

static void svg_text(FILE *f, const char *t)
{
    for (; *t; t++) /* XML-escape */
        if (*t == '<')
            fputs("&lt;", f);
        else if (*t == '&')
            fputs("&amp;", f);
        else
            fputc(*t, f);
}

#define TH 260 /* height of a time panel */

/* One time panel at y offset y0: k lines over the series' intervals (values from get()),
 * y axis from 0, labels formatted as latencies (ns) or plain numbers. */
static void svg_time_panel(FILE *f, int y0, const char *title, const struct series *se, int k,
                           double (*get)(const struct series *, size_t, int),
                           const char *const *names, bool ns)
{
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
    double xmax = se->span_ns / 1e9, ymax = 1, step, mag, v;
    int top = y0 + 40, bottom = y0 + TH - 40, i, j;
    size_t p;
    char buf[32];

    if (xmax < se->interval_ns / 1e9)
        xmax = se->interval_ns / 1e9;
    for (j = 0; j < k; j++)
        for (p = 0; p < se->n; p++)
            if ((v = get(se, p, j)) > ymax)
                ymax = v;
    mag = pow(10, floor(log10(ymax / 5)));
    step = mag;
    if (ymax / step > 10)
        step = 2 * mag;
    if (ymax / step > 10)
        step = 5 * mag;
    ymax = ceil(ymax / step) * step;
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"14\">", ML, y0 + 25);
    svg_text(f, title);
    fprintf(f, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
               "stroke=\"#444\"/>\n",
            ML, top, PW - ML - MR, bottom - top);
    for (i = 0; i * step <= ymax + step / 2; i++) {
        double y = bottom - i * step / ymax * (bottom - top);

        if (ns)
            report_fmt_ns(buf, sizeof(buf), (uint64_t)(i * step));
        else
            snprintf(buf, sizeof(buf), "%.0f", i * step);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                ML, y, PW - MR, y, ML - 6, y + 4, buf);
    }
    { /* time ticks on a 1-2-5 grid, about 5 of them */
        double xs, xm = pow(10, floor(log10(xmax / 5)));

        xs = xmax / xm > 10 ? (xmax / (2 * xm) > 10 ? 5 * xm : 2 * xm) : xm;
        for (i = 0; i * xs <= xmax * 1.0001; i++) {
            double x = ML + i * xs / xmax * (PW - ML - MR);

            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
                    "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%gs</text>\n",
                    x, top, x, bottom, x, bottom + 18, i * xs);
        }
    }
    for (j = 0; j < k; j++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                colors[j % 4]);
        for (p = 0; p < se->n; p++) {
            double tm = (p + 0.5) * se->interval_ns / 1e9;

            if (tm > xmax)
                tm = xmax;
            fprintf(f, " %.1f,%.1f", ML + tm / xmax * (PW - ML - MR),
                    bottom - get(se, p, j) / ymax * (bottom - top));
        }
        fprintf(f,
                "\"/>\n<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>"
                "<text x=\"%d\" y=\"%d\">%s</text>\n",
                ML + 12 + 110 * j, top + 12, colors[j % 4], ML + 30 + 110 * j, top + 17, names[j]);
    }
}

static double get_rate(const struct series *se, size_t p, int j)
{
    return j == 0 ? series_rate(se, p) : se->p[p].errors * 1e9 / (double)se->interval_ns;
}

static double get_lat(const struct series *se, size_t p, int j)
{
    return (double)(j == 0   ? series_percentile(&se->p[p], 50)
                    : j == 1 ? series_percentile(&se->p[p], 99)
                             : se->p[p].max);
}

/* The rate and latency over time, below the percentile plot (y offset y0). */
static void svg_time(FILE *f, int y0, const struct series *se)
{
    static const char *const rn[] = {"replies/s", "errors/s"};
    static const char *const ln[] = {"p50", "p99", "max"};

    svg_time_panel(f, y0, "rate over time", se, 2, get_rate, rn, false);
    svg_time_panel(f, y0 + TH, "latency over time (corrected)", se, 3, get_lat, ln, true);
}

/* The axes of the percentile plot: x spans 10^xmax (one decade per "nine"), y from 0 to
 * ymax on steps of `step` ns. */
struct svg_scale {
    double xmax, ymax, step;
};

/* Picks the plot's axes from the histograms: enough nines for the largest count, y ticks
 * on a 1-2-5 grid, about 5 of them, up to the largest value. */
static struct svg_scale svg_scale_of(struct hist *const *hists, int n)
{
    struct svg_scale s = {2, 1, 1};
    uint64_t total = 0;
    double mag;
    int i;

    for (i = 0; i < n; i++) {
        if (hists[i]->max > s.ymax)
            s.ymax = (double)hists[i]->max;
        if (hists[i]->total > total)
            total = hists[i]->total;
    }
    while (s.xmax < 6 && pow(10, s.xmax) < (double)total)
        s.xmax++;
    mag = pow(10, floor(log10(s.ymax / 5)));
    s.step = mag;
    if (s.ymax / s.step > 10)
        s.step = 2 * mag;
    if (s.ymax / s.step > 10)
        s.step = 5 * mag;
    s.ymax = ceil(s.ymax / s.step) * s.step;
    return s;
}

/* The percentile plot's grid, tick labels, axis titles and frame. */
static void svg_axes(FILE *f, const struct svg_scale *s)
{
    static const char *const xlabels[] = {"0%",     "90%",     "99%",     "99.9%",
                                          "99.99%", "99.999%", "99.9999%"};
    char buf[32];
    int k;

    for (k = 0; k <= (int)s->xmax; k++) {
        double x = ML + (double)k / s->xmax * (PW - ML - MR);

        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
                "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                x, MT, x, PH - MB, x, PH - MB + 18, xlabels[k]);
    }
    for (k = 0; k * s->step <= s->ymax + s->step / 2; k++) {
        double y = plot_y(k * s->step, s->ymax);

        report_fmt_ns(buf, sizeof(buf), (uint64_t)(k * s->step));
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                ML, y, PW - MR, y, ML - 6, y + 4, buf);
    }
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">percentile</text>\n"
            "<text x=\"20\" y=\"%d\" transform=\"rotate(-90 20 %d)\" text-anchor=\"middle\">"
            "latency</text>\n"
            "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n",
            (PW + ML - MR) / 2, PH - 15, (PH - MB + MT) / 2, (PH - MB + MT) / 2, ML, MT,
            PW - ML - MR, PH - MT - MB);
}

/* One histogram as a step line over the percentiles, with its legend entry (the i-th). */
static void svg_curve(FILE *f, const struct svg_scale *s, const struct hist *h, const char *name,
                      int i)
{
    static const char *const colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd"};
    struct hist_point pts[1024];
    size_t np = hist_spectrum(h, 10, pts, 1024), j;
    double lasty = 0;

    if (!np)
        return;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colors[i % 4]);
    for (j = 0; j < np; j++) {
        double x = plot_x(pts[j].percentile, s->xmax), y = plot_y((double)pts[j].value, s->ymax);

        /* a step plot: the value holds until the next percentile */
        if (j)
            fprintf(f, " %.1f,%.1f", x, lasty);
        fprintf(f, " %.1f,%.1f", x, y);
        lasty = y;
    }
    fprintf(f,
            "\"/>\n<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>"
            "<text x=\"%d\" y=\"%d\">%s</text>\n",
            ML + 12, MT + 14 + 18 * i, colors[i % 4], ML + 32, MT + 19 + 18 * i, name);
}

/* The whole SVG: latency by percentile of the n histograms, and below it the time panels
 * of the series when there is one. */
static void svg(FILE *f, const char *title, struct hist *const *hists, const char *const *names,
                int n, const struct series *se)
{
    struct svg_scale s = svg_scale_of(hists, n);
    int i;

    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"25\" font-size=\"15\">",
            PW, PH + (se ? 2 * TH : 0), PW, PH + (se ? 2 * TH : 0), ML);
    svg_text(f, title);
    fprintf(f, "</text>\n");
    svg_axes(f, &s);
    for (i = 0; i < n; i++)
        svg_curve(f, &s, hists[i], names[i], i);
    if (se)
        svg_time(f, PH, se);
    fprintf(f, "</svg>\n");
}

int report_plot(const char *path, const char *title, struct hist *const *hists,
                const char *const *names, int n, const struct series *se, char *err,
                size_t errlen)
{
    size_t len = strlen(path);
    bool html = len >= 5 && strcmp(path + len - 5, ".html") == 0;
    FILE *f = fopen(path, "w");
    char buf[32];
    int i, k;

    if (!f) {
        snprintf(err, errlen, "--plot %s: %s", path, strerror(errno));
        return -1;
    }
    if (html) {
        fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                   "<title>wharf-load latency</title>\n"
                   "<style>body{font-family:sans-serif;margin:2em}"
                   "td,th{padding:2px 10px;text-align:right}</style></head><body>\n"
                   "<h1>wharf-load latency</h1>\n");
    }
    if (se && se->n == 0)
        se = NULL;
    svg(f, title, hists, names, n, se);
    if (html) {
        fprintf(f, "<table><tr><th></th>");
        for (k = 0; k < REPORT_NPCT; k++)
            fprintf(f, "<th>%s</th>", pct_names[k]);
        fprintf(f, "<th>count</th></tr>\n");
        for (i = 0; i < n; i++) {
            fprintf(f, "<tr><th>%s</th>", names[i]);
            for (k = 0; k < REPORT_NPCT; k++) {
                report_fmt_ns(buf, sizeof(buf), hist_percentile(hists[i], report_pcts[k]));
                fprintf(f, "<td>%s</td>", buf);
            }
            fprintf(f, "<td>%" PRIu64 "</td></tr>\n", hists[i]->total);
        }
        fprintf(f, "</table>\n</body></html>\n");
    }
    if (fclose(f) != 0) {
        snprintf(err, errlen, "--plot %s: write failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
