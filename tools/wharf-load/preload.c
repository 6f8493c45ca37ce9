/* preload.c - the --preload run: the main run's configuration with the preload's set-only
 * mix, --count = the key space, closed loop, no warm-up and no outputs; the engine's own
 * progress line shows while it runs and one line on stderr says how long it took. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "preload.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "stats.h"

/* Pipeline depth of the preload when -p was not given: enough to fill fast. */
#define PRELOAD_PIPELINE 32

int preload_run(struct load_config *cfg, char *err, size_t errlen)
{
    struct load_config pc = *cfg;
    struct load_result res;
    uint64_t n = cfg->preload_tmpls->keys.n;
    int rc;

    pc.tmpls = cfg->preload_tmpls;
    pc.preload_tmpls = NULL;
    pc.scripts = NULL; /* the preload's sets are its own, never a script's */
    pc.count = n;
    pc.rate = 0;
    pc.ramp = 0;
    pc.churn = 0;
    pc.warmup_ns = 0;
    pc.duration_ns = cfg->duration_ns > 60ull * 1000000000u ? cfg->duration_ns
                                                            : 60ull * 1000000000u;
    pc.start_at_ns = 0;
    pc.json = pc.percentiles = false;
    pc.quiet = true;
    pc.hist_out = pc.plot = NULL;
    pc.max_p99_ns = 0;
    pc.min_rate = 0;
    pc.max_errors = 0;
    if (!cfg->pipeline_set)
        pc.pipeline = PRELOAD_PIPELINE;
    if (pc.connections > n)
        pc.connections = (unsigned)n;
    if (pc.threads > pc.connections)
        pc.threads = pc.connections;
    if (engine_run(&pc, &res, err, errlen) != 0)
        return -1;
    cfg->preloaded = true;
    cfg->preload_sets = res.st.c[ST_RECEIVED];
    cfg->preload_errors = stat_errors(&res.st);
    cfg->preload_ns = (uint64_t)(res.wall_s * 1e9);
    if (!cfg->quiet || cfg->preload_errors)
        fprintf(stderr, "wharf-load: preload: %" PRIu64 " of %" PRIu64 " keys set in %.3f s "
                        "(%.0f sets/s), %" PRIu64 " errors\n",
                cfg->preload_sets, n, res.wall_s,
                res.wall_s > 0 ? (double)cfg->preload_sets / res.wall_s : 0.0,
                cfg->preload_errors);
    rc = cfg->preload_sets == n && cfg->preload_errors == 0 ? 0 : 1;
    if (rc)
        snprintf(err, errlen, "preload: %" PRIu64 " of %" PRIu64 " keys set, %" PRIu64
                              " errors (first: %s)",
                 cfg->preload_sets, n, cfg->preload_errors,
                 res.first_error[0] ? res.first_error : "none");
    engine_result_free(&res);
    return rc;
}
