/* engine.h - runs a wharf-load measurement (engine.c): starts the TCP or UDP engine
 * threads (tcp.c, udp.c), each on its own event loop, follows them with the progress line,
 * merges their results, and gives the verdict.
 *
 * Flow of a run: opts_parse() -> engine_run() (threads running tcp_thread()/udp_thread())
 * -> report_*() -> engine_verdict() decides the exit status. */
#ifndef WLOAD_ENGINE_H
#define WLOAD_ENGINE_H

#include <stddef.h>

#include "opts.h"
#include "thread.h"

/* Runs the load described by cfg and fills res (which then owns three histograms: free
 * them with engine_result_free). Prints a progress line on stderr once a second when
 * cfg->progress says so. Returns 0, or -1 with a message in err when the run could not
 * start (threads, event loops, memory); counted errors never make it fail. */
int engine_run(const struct load_config *cfg, struct load_result *res, char *err, size_t errlen);
void engine_result_free(struct load_result *res);

/* Applies the thresholds and the verification rules: returns 0 when the run passes, 1 when
 * it fails, with the reasons ("; "-separated) in why. */
int engine_verdict(const struct load_config *cfg, const struct load_result *res, char *why,
                   size_t whylen);

/* Asks a running engine_run to stop early (async-signal-safe): the first call stops
 * sending and drains, a second one ends the run at once. */
void engine_request_stop(void);

/* Engine threads (tcp.c, udp.c): drive th->nconns connections on th->loop until the
 * clock says stop. */
void *tcp_thread(void *th);
void *udp_thread(void *th);

#endif
