/* cli.c - wharf-load's program flow: parse the options, run the engine (or merge histogram
 * files), write the reports and files asked for, and turn the verdict into an exit status.
 * Signals: the first SIGINT/SIGTERM stops the run early and still reports. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>

#include "engine.h"
#include "opts.h"
#include "preload.h"
#include "report.h"

/* Set by the SIGINT/SIGTERM handler cli_main installs; read while waiting for --start-at. */
static atomic_bool interrupted;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store_explicit(&interrupted, true, memory_order_relaxed);
    engine_request_stop();
}

/* Reads the time series of every file and merges them aligned on the wall clock. *out is
 * NULL when no file has one. Returns 0, or -1 with a message printed. */
static int merge_series(const struct load_config *cfg, struct series **out)
{
    struct series **all = calloc((size_t)cfg->nfiles, sizeof(*all)), *m = NULL;
    char err[512];
    uint64_t start = UINT64_MAX, interval = 0;
    int i, rc = -1;

    *out = NULL;
    if (!all)
        return -1;
    for (i = 0; i < cfg->nfiles; i++) {
        if (series_read(cfg->files[i], &all[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "wharf-load: %s\n", err);
            goto out;
        }
        if (!all[i])
            continue;
        if (interval && all[i]->interval_ns != interval) {
            fprintf(stderr, "wharf-load: %s: time series interval %.3f s differs from %.3f s\n",
                    cfg->files[i], all[i]->interval_ns / 1e9, interval / 1e9);
            goto out;
        }
        interval = all[i]->interval_ns;
        if (all[i]->start_unix_ns < start)
            start = all[i]->start_unix_ns;
    }
    if (interval) {
        if (!(m = series_new(0, start, interval)))
            goto out;
        for (i = 0; i < cfg->nfiles; i++)
            if (all[i] && series_merge(m, all[i]) != 0) {
                fprintf(stderr, "wharf-load: %s: cannot merge the time series\n", cfg->files[i]);
                goto out;
            }
    }
    *out = m;
    m = NULL;
    rc = 0;
out:
    series_free(m);
    for (i = 0; i < cfg->nfiles; i++)
        series_free(all[i]);
    free(all);
    return rc;
}

/* Adds the histogram file `path` to m (sections by name; a name new to m adds a section)
 * and its rate to *rate. Returns 0, or -1 after printing why on stderr. */
static int merge_add_file(const char *path, struct hist_file *m, double *rate)
{
    struct hist_file one;
    char err[512];
    int k, rc = 0;

    if (hist_file_read(path, &one, err, sizeof(err)) != 0) {
        fprintf(stderr, "wharf-load: %s\n", err);
        return -1;
    }
    m->messages += one.messages;
    m->errors += one.errors;
    if (one.duration_ns)
        *rate += one.messages * 1e9 / (double)one.duration_ns;
    for (k = 0; k < one.nsections && rc == 0; k++) {
        struct hist *h = hist_file_get(m, one.names[k]);

        if (!h) {
            if (m->nsections == HIST_FILE_MAX_SECTIONS || !(h = hist_new())) {
                fprintf(stderr, "wharf-load: %s: too many sections\n", path);
                rc = -1;
                break;
            }
            snprintf(m->names[m->nsections], sizeof(m->names[0]), "%s", one.names[k]);
            m->hists[m->nsections++] = h;
        }
        hist_merge(h, one.hists[k]);
    }
    hist_file_free(&one);
    return rc;
}

/* The thresholds applied to the merged figures: the reasons to fail, "; "-separated, in why
 * (empty when the merge passes). */
static void merge_verdict(const struct load_config *cfg, const struct hist_file *m, double rate,
                          char *why, size_t len)
{
    struct hist *c = hist_file_get(m, "corrected");
    size_t n = 0;

    why[0] = '\0';
    if (m->errors > cfg->max_errors)
        n = (size_t)snprintf(why, len, "%" PRIu64 " errors > --max-errors %" PRIu64, m->errors,
                             cfg->max_errors);
    if (cfg->max_p99_ns && c && hist_percentile(c, 99) > cfg->max_p99_ns && n < len)
        n += (size_t)snprintf(why + n, len - n, "%sp99 above --max-p99", n ? "; " : "");
    if (cfg->min_rate > 0 && rate < cfg->min_rate && n < len)
        snprintf(why + n, len - n, "%srate %.0f < --min-rate %.0f", n ? "; " : "", rate,
                 cfg->min_rate);
}

/* --hist-out with --merge: writes the merged histograms (and series) to cfg->hist_out.
 * Returns 0, or -1 after printing why on stderr. */
static int merge_write(const struct load_config *cfg, const struct hist_file *m, double rate,
                       const struct series *se)
{
    FILE *f = fopen(cfg->hist_out, "w");
    int bad = !f, k;

    if (f) {
        uint64_t dur = rate > 0 ? (uint64_t)(m->messages * 1e9 / rate) : 0;

        bad = hist_file_write_header(f, m->messages, dur, m->errors) != 0;
        for (k = 0; k < m->nsections && !bad; k++)
            bad = hist_file_write_section(f, m->names[k], m->hists[k]) != 0;
        if (se && !bad)
            bad = series_write(f, se) != 0;
        bad |= fclose(f) != 0;
    }
    if (bad) {
        fprintf(stderr, "wharf-load: --hist-out %s: cannot write\n", cfg->hist_out);
        return -1;
    }
    return 0;
}

/* --plot with --merge: the latency sections (not "connect"; "raw" named "uncorrected").
 * Returns 0, or -1 after printing why on stderr. */
static int merge_plot(const struct load_config *cfg, const struct hist_file *m,
                      const struct series *se)
{
    const char *names[HIST_FILE_MAX_SECTIONS];
    struct hist *hs[HIST_FILE_MAX_SECTIONS];
    char err[512];
    int k, n = 0;

    for (k = 0; k < m->nsections; k++)
        if (strcmp(m->names[k], "connect") != 0) {
            names[n] = strcmp(m->names[k], "raw") == 0 ? "uncorrected" : m->names[k];
            hs[n++] = m->hists[k];
        }
    if (report_plot(cfg->plot, "wharf-load: merged histograms", hs, names, n, se, err,
                    sizeof(err)) != 0) {
        fprintf(stderr, "wharf-load: %s\n", err);
        return -1;
    }
    return 0;
}

/* --merge: reads the histogram files, reports on their sum, applies the thresholds, and
 * writes --hist-out and --plot. Returns the exit status (0 pass, 1 fail, 3 could not). */
/* -P (not with --json unless --percentiles=FILE, the JSON holding the spectrum) and --csv:
 * the distribution on stderr or into the file, the time series as CSV. Returns 0, or 3
 * when a file could not be written. */
static int write_outputs(const struct load_config *cfg, struct hist *const *hists,
                         const char *const *names, int n, const struct series *se)
{
    char err[512];
    int rc = 0;

    if (cfg->percentiles && (!cfg->json || cfg->percentiles_out)) {
        FILE *f = cfg->percentiles_out ? fopen(cfg->percentiles_out, "w") : stderr;

        if (!f) {
            fprintf(stderr, "wharf-load: --percentiles=%s: cannot create: %s\n",
                    cfg->percentiles_out, strerror(errno));
            rc = 3;
        } else {
            report_distribution(f, hists, names, n, se);
            if (f != stderr && fclose(f) != 0) {
                fprintf(stderr, "wharf-load: --percentiles=%s: write failed\n",
                        cfg->percentiles_out);
                rc = 3;
            }
        }
    }
    if (cfg->csv && report_csv(cfg->csv, se, err, sizeof(err)) != 0) {
        fprintf(stderr, "wharf-load: %s\n", err);
        rc = 3;
    }
    return rc;
}

static int merge_main(const struct load_config *cfg)
{
    struct hist_file m;
    struct series *se = NULL;
    char why[512];
    double rate = 0;
    int i, rc = 3;

    memset(&m, 0, sizeof(m));
    if (merge_series(cfg, &se) != 0)
        return 3;
    for (i = 0; i < cfg->nfiles; i++)
        if (merge_add_file(cfg->files[i], &m, &rate) != 0)
            goto out;
    merge_verdict(cfg, &m, rate, why, sizeof(why));
    report_merge(stdout, cfg, &m, cfg->nfiles, rate, se, why);
    fflush(stdout);
    {
        const char *names[HIST_FILE_MAX_SECTIONS];

        for (i = 0; i < m.nsections; i++)
            names[i] = m.names[i];
        if (write_outputs(cfg, m.hists, names, m.nsections, se) != 0)
            goto out;
    }
    if (cfg->hist_out && merge_write(cfg, &m, rate, se) != 0)
        goto out;
    if (cfg->plot && merge_plot(cfg, &m, se) != 0)
        goto out;
    rc = why[0] ? 1 : 0;
out:
    hist_file_free(&m);
    series_free(se);
    return rc;
}

/* --start-at: sleeps until the wall-clock time (bounded by opts to 24 h). Returns -1 when
 * interrupted. */
static int wait_start(uint64_t at_ns)
{
    struct timespec ts = {(time_t)(at_ns / 1000000000u), (long)(at_ns % 1000000000u)};
    int e;

    while ((e = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL)) == EINTR)
        if (atomic_load_explicit(&interrupted, memory_order_relaxed))
            return -1;
    return 0;
}

int cli_main(int argc, char **argv)
{
    struct load_config cfg;
    struct load_result res;
    struct sigaction sa, old_int, old_term;
    char err[512], why[512];
    int r, rc;

    r = opts_parse(&cfg, argc, argv, stdout, err, sizeof(err));
    if (r > 0)
        return 0;
    if (r < 0) {
        fprintf(stderr, "wharf-load: %s\n(wharf-load --help lists the options)\n", err);
        return 2;
    }
    if (cfg.merge)
        return merge_main(&cfg);
    atomic_store_explicit(&interrupted, false, memory_order_relaxed);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    signal(SIGPIPE, SIG_IGN);
    if (cfg.preload_tmpls && (r = preload_run(&cfg, err, sizeof(err))) != 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        fprintf(stderr, "wharf-load: %s\n", err);
        load_config_free(&cfg);
        return r < 0 ? 3 : 1;
    }
    if (cfg.start_at_ns && wait_start(cfg.start_at_ns) != 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        fprintf(stderr, "wharf-load: interrupted while waiting for --start-at\n");
        load_config_free(&cfg);
        return 1;
    }
    r = engine_run(&cfg, &res, err, sizeof(err));
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (r != 0) {
        fprintf(stderr, "wharf-load: %s\n", err);
        load_config_free(&cfg);
        return 3;
    }
    rc = engine_verdict(&cfg, &res, why, sizeof(why));
    if (cfg.json)
        report_json(stdout, &cfg, &res, why);
    else if (cfg.quiet)
        report_quiet(stdout, &cfg, &res, why);
    else
        report_human(stdout, &cfg, &res, why);
    fflush(stdout);
    {
        struct hist *hs[2] = {res.corrected, res.raw};
        const char *names[2] = {"corrected latency", "uncorrected latency"};

        if (cfg.rate <= 0) {
            hs[0] = res.raw;
            names[0] = "round-trip latency";
        }
        if (write_outputs(&cfg, hs, names, cfg.rate > 0 ? 2 : 1, res.series) != 0)
            rc = 3;
    }
    if (cfg.hist_out && report_write_hist(cfg.hist_out, &res, err, sizeof(err)) != 0) {
        fprintf(stderr, "wharf-load: %s\n", err);
        rc = 3;
    }
    if (cfg.plot) {
        struct hist *hs[2] = {res.corrected, res.raw};
        const char *names[2] = {"corrected (from due time)", "uncorrected (from send)"};
        char title[400];

        snprintf(title, sizeof(title), "wharf-load %s %s, %u connections, %s",
                 cfg.udp ? "udp" : "tcp", cfg.target, cfg.connections,
                 cfg.rate > 0 ? "open loop" : "closed loop");
        if (cfg.rate <= 0)
            names[0] = "round trip";
        if (report_plot(cfg.plot, title, hs, names, cfg.rate > 0 ? 2 : 1, res.series, err,
                        sizeof(err)) != 0) {
            fprintf(stderr, "wharf-load: %s\n", err);
            rc = 3;
        }
    }
    if (cfg.scripts) {
        /* done(summary, latency), after the report as in wrk; an error in it fails the run */
        fflush(stdout);
        if (script_done(cfg.scripts, &res, cfg.rate > 0, err, sizeof(err)) != 0) {
            fprintf(stderr, "wharf-load: %s\n", err);
            if (rc == 0)
                rc = 1;
        }
        fflush(stdout);
    }
    engine_result_free(&res);
    load_config_free(&cfg);
    return rc;
}
