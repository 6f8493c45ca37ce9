/* targets.h - several targets in one wharf-load run (targets.c): the servers named on the
 * command line, each with a weight (`HOST:PORT,weight=N` or `URL,weight=N`), how the
 * connections are spread over them (nginx's smooth weighted round robin over the
 * connection numbers, so every thread gets its share of every target), and each target's
 * own counts, taken by the TCP engine as the difference of the thread's counters around
 * everything it does for one connection (so the engine's counting code is not duplicated).
 *
 * Ownership: the targets live in struct load_config (opts.c fills them); the counts live
 * in each engine thread and in the merged result. */
#ifndef WLOAD_TARGETS_H
#define WLOAD_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "stats.h"

#define LOAD_MAX_TARGETS 16
#define LOAD_MAX_WEIGHT 1000

/* One server of the run. */
struct load_target {
    char target[300]; /* HOST:PORT (a URL's host part, with its default port) */
    char host[256];   /* numeric address it resolved to */
    unsigned port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned weight;      /* 1..LOAD_MAX_WEIGHT */
    char path[512];       /* --proto http: the URL's path ("": --path) */
    unsigned connections; /* connections given to it (targets_assign) */
};

/* What is counted per target. */
enum target_stat {
    TG_SENT,       /* ST_SENT */
    TG_RECEIVED,   /* ST_RECEIVED: correct replies */
    TG_MEASURED,   /* ST_MEASURED */
    TG_RECONNECTS, /* ST_RECONNECTS */
    TG_ERRORS,     /* every error counter */
    TG__COUNT
};

struct target_counts {
    uint64_t c[TG__COUNT];
};

/* The thread's counters before something done for one connection (target_charge adds the
 * difference to the connection's target). */
struct target_mark {
    uint64_t c[TG__COUNT];
};

/* Splits a `TARGET,weight=N` argument: the target into out (NUL-terminated), the weight
 * into *weight (1 when there is none). Returns 0, or -1 with a message naming the argument
 * in err. */
int targets_split(const char *arg, char *out, size_t outlen, unsigned *weight, char *err,
                  size_t errlen);

/* The target of each of `n` connections from number `first` on (out[i] for connection
 * first + i), by smooth weighted round robin over all connection numbers from 0. */
void targets_assign(const struct load_target *t, unsigned nt, unsigned first, unsigned n,
                    uint8_t *out);

void target_mark(const struct load_stats *st, struct target_mark *m);
void target_charge(struct target_counts *tc, const struct load_stats *st,
                   const struct target_mark *m);

/* Report parts: the per-target lines of the human report (nothing with one target) and
 * the JSON member "targets": [...] followed by ",\n" (always). */
void targets_report_human(FILE *f, const struct load_target *t, unsigned nt,
                          const struct target_counts *tc, double measure_s);
void targets_report_json(FILE *f, const struct load_target *t, unsigned nt,
                         const struct target_counts *tc, double measure_s);

#endif
