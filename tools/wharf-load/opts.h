/* opts.h - command-line parsing and validation for wharf-load. */
#ifndef WLOAD_OPTS_H
#define WLOAD_OPTS_H

#include <stddef.h>
#include <stdio.h>

#include "load.h"

/* Parses argv into cfg (which opts_parse first resets to the defaults). Every option is
 * checked and the target resolved. Returns 0 to go on, 1 when --help or --version was
 * printed on `out` (exit 0), -1 on a bad argument with a message naming the option and what
 * was expected in err (exit 2). cfg->files points into argv. */
int opts_parse(struct load_config *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen);

void opts_usage(FILE *f);

/* Parses a duration ("1.5", "250ms", "2us", "1m"; a bare number is seconds) into ns.
 * Returns 0 or -1. Exposed for tests. */
int opts_parse_time(const char *s, uint64_t *ns);

#endif
