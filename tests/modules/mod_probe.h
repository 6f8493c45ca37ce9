/*
 * mod_probe.h - counters exported by the mod_probe test handler.  A suite
 * dlopen()s the already loaded module (RTLD_NOLOAD) and calls probe_counts()
 * to see how often each callback ran.
 */
#ifndef WHARF_MOD_PROBE_H
#define WHARF_MOD_PROBE_H

#include <stdint.h>

#include "wharf.h"

struct probe_counts {
    uint64_t opens, datas, drains, inits, finis;
    uint64_t timeouts[WHARF_TIMEOUT_RATE + 1]; /* by enum wharf_timeout */
    uint64_t closes[WHARF_CLOSE_EVICTED + 1]; /* by enum wharf_close_reason */
};

typedef void (*probe_counts_fn)(struct probe_counts *out);
#define PROBE_COUNTS_SYMBOL "probe_counts"

#endif
