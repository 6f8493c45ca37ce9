/* cli.c - wharf-load's program flow: parse the options, run the engine (or merge histogram
 * files), write the reports and files asked for, and turn the verdict into an exit status.
 * Signals: the first SIGINT/SIGTERM stops the run early and still reports. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cli.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "load.h"
#include "opts.h"
#include "report.h"

static void on_signal(int sig)
{
    (void)sig;
    engine_request_stop();
}

static int merge_main(const struct load_config *cfg)
{
    struct hist_file m, one;
    char err[512], why[512];
    double rate = 0;
    int i, k, rc = 3;

    memset(&m, 0, sizeof(m));
    for (i = 0; i < cfg->nfiles; i++) {
        if (hist_file_read(cfg->files[i], &one, err, sizeof(err)) != 0) {
            fprintf(stderr, "wharf-load: %s\n", err);
            goto out;
        }
        m.messages += one.messages;
        m.errors += one.errors;
        if (one.duration_ns)
            rate += one.messages * 1e9 / (double)one.duration_ns;
        for (k = 0; k < one.nsections; k++) {
            struct hist *h = hist_file_get(&m, one.names[k]);

            if (!h) {
                if (m.nsections == HIST_FILE_MAX_SECTIONS || !(h = hist_new())) {
                    fprintf(stderr, "wharf-load: %s: too many sections\n", cfg->files[i]);
                    hist_file_free(&one);
                    goto out;
                }
                snprintf(m.names[m.nsections], sizeof(m.names[0]), "%s", one.names[k]);
                m.hists[m.nsections++] = h;
            }
            hist_merge(h, one.hists[k]);
        }
        hist_file_free(&one);
    }
    why[0] = '\0';
    {
        struct hist *c = hist_file_get(&m, "corrected");
        size_t n = 0;

        if (m.errors > cfg->max_errors)
            n = (size_t)snprintf(why, sizeof(why), "%" PRIu64 " errors > --max-errors %" PRIu64,
                                 m.errors, cfg->max_errors);
        if (cfg->max_p99_ns && c && hist_percentile(c, 99) > cfg->max_p99_ns && n < sizeof(why))
            n += (size_t)snprintf(why + n, sizeof(why) - n, "%sp99 above --max-p99", n ? "; " : "");
        if (cfg->min_rate > 0 && rate < cfg->min_rate && n < sizeof(why))
            snprintf(why + n, sizeof(why) - n, "%srate %.0f < --min-rate %.0f", n ? "; " : "", rate,
                     cfg->min_rate);
    }
    report_merge(stdout, cfg, &m, cfg->nfiles, rate, why);
    if (cfg->hist_out) {
        FILE *f = fopen(cfg->hist_out, "w");
        int bad = !f;

        if (f) {
            uint64_t dur = rate > 0 ? (uint64_t)(m.messages * 1e9 / rate) : 0;

            bad = hist_file_write_header(f, m.messages, dur, m.errors) != 0;
            for (k = 0; k < m.nsections && !bad; k++)
                bad = hist_file_write_section(f, m.names[k], m.hists[k]) != 0;
            bad |= fclose(f) != 0;
        }
        if (bad) {
            fprintf(stderr, "wharf-load: --hist-out %s: cannot write\n", cfg->hist_out);
            goto out;
        }
    }
    if (cfg->plot) {
        const char *names[HIST_FILE_MAX_SECTIONS];
        struct hist *hs[HIST_FILE_MAX_SECTIONS];
        int n = 0;

        for (k = 0; k < m.nsections; k++)
            if (strcmp(m.names[k], "connect") != 0) {
                names[n] = strcmp(m.names[k], "raw") == 0 ? "uncorrected" : m.names[k];
                hs[n++] = m.hists[k];
            }
        if (report_plot(cfg->plot, "wharf-load: merged histograms", hs, names, n, err,
                        sizeof(err)) != 0) {
            fprintf(stderr, "wharf-load: %s\n", err);
            goto out;
        }
    }
    rc = why[0] ? 1 : 0;
out:
    hist_file_free(&m);
    return rc;
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

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    signal(SIGPIPE, SIG_IGN);
    r = engine_run(&cfg, &res, err, sizeof(err));
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (r != 0) {
        fprintf(stderr, "wharf-load: %s\n", err);
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
        if (report_plot(cfg.plot, title, hs, names, cfg.rate > 0 ? 2 : 1, err, sizeof(err)) != 0) {
            fprintf(stderr, "wharf-load: %s\n", err);
            rc = 3;
        }
    }
    engine_result_free(&res);
    return rc;
}
