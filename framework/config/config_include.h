/*
 * config_include.h - what a config document becomes before validation:
 * ${VAR} and ${VAR:-default} in string values taken from the environment,
 * and the files its "include" names (a path or glob, or a list of them,
 * relative to the including file) merged in, their listeners appended.
 * See config_include.c.
 */
#ifndef WHARF_CONFIG_INCLUDE_H
#define WHARF_CONFIG_INCLUDE_H

#include <jansson.h>
#include <stddef.h>

#include "wharf_server.h"

/* Where the merged listeners came from: listeners [first, first+count) of
 * the merged document are listeners [0, count) of `file`. */
struct config_origin {
    char *file;
    size_t first, count;
};
struct config_origins {
    struct config_origin *v;
    size_t n;
};

/*
 * Expands root (an object) in place: substitutes the environment in its
 * strings, then reads every file its "include" names (each substituted
 * too; includes nest up to 8 deep, 256 files in all), appends their
 * listeners and removes "include".  `name` is the file for messages and
 * `base_file` the one relative names start from (NULL: the current
 * directory).  Returns 0, or -1 with *err naming the file and JSON path
 * (an unset variable, a bad "include", a file that cannot be read or
 * parsed, a key other than "listeners" or "include" in an included file).
 */
int config_include_expand(json_t *root, const char *name, const char *base_file,
                          struct config_origins *origins, wharf_error *err);

/* Rewrites an error about merged listener i so that it names the file it
 * came from and its index there. */
void config_include_blame(const struct config_origins *origins, wharf_error *err);

void config_origins_free(struct config_origins *origins);

#endif
