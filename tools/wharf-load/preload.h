/* preload.h - --preload: before the measured run, a closed-loop run of sets that fills the
 * key space once, key 0 to key N-1 in order (as memaslap and memtier_benchmark do), with
 * its own progress line and time on stderr. */
#ifndef WLOAD_PRELOAD_H
#define WLOAD_PRELOAD_H

#include <stddef.h>

#include "opts.h"

/* Runs the preload of cfg (cfg->preload_tmpls) and records what it did in cfg
 * (preload_sets, preload_errors, preload_ns). Returns 0 when every key was stored, 1 when
 * some were not (errors; the first one is in err), -1 when it could not run (err). */
int preload_run(struct load_config *cfg, char *err, size_t errlen);

#endif
