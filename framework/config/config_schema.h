/*
 * config_schema.h - the config file's schema as data (private to config/).
 *
 * Every key of the config file is one row of a table, in the shape of
 * nginx's ngx_command_t: its name, type, range, default, where its value
 * lives in struct config (offset and size), a setter for the few keys that
 * need more than a typed store, and a one-line doc.  Nested objects
 * ("timeouts", "buffers") and the listeners are rows that point at a table
 * of their own.  config_schema.c holds the tables and walks them to load
 * and validate a document (defaults included), to dump the effective config
 * (`wharfd -T`), and to print the schema for the docs check.  The loader's
 * error reporting (config_fail and its wrappers) lives in config.c.
 */
#ifndef WHARF_CONFIG_SCHEMA_H
#define WHARF_CONFIG_SCHEMA_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "wharf_server.h"

#define CONFIG_PATH_LEN 256 /* JSON paths in messages; longer ones are cut short */

/* What one load needs: names for messages, where relative paths start, the
 * config being filled (a listener looks at those before it) and the error. */
struct config_loader {
    const char *file;      /* the name used in messages */
    const char *base_file; /* relative paths start at its directory; NULL: cwd */
    struct config *cfg;
    wharf_error *err;
};

enum config_type {
    CONFIG_INT,     /* an integer min..max (int, unsigned, size_t or uint64_t) */
    CONFIG_MS,      /* milliseconds 0..max, in a uint64_t */
    CONFIG_BOOL,    /* true or false, in a bool */
    CONFIG_STRING,  /* a non-empty string, strdup'ed into a char * */
    CONFIG_CHOICE,  /* one of `choices` by name, its value stored in an int */
    CONFIG_OBJECT,  /* any object, a json_t * reference kept */
    CONFIG_ARRAY,   /* an array (a setter parses it), a json_t * reference kept */
    CONFIG_SECTION, /* a nested object whose keys are `table` */
    CONFIG_LIST,    /* a non-empty array of objects whose keys are `table` */
};

enum {
    CONFIG_REQUIRED = 1, /* no default: a document without it is an error */
    CONFIG_COMPUTED = 2, /* the default is computed (see the row's doc) */
};

struct config_choice {
    const char *name;
    int value;
};

struct config_key;

/* Stores (and validates) the value `v` of key `k` at JSON path `path` into
 * the struct at `base`.  Returns 0, or -1 after config_fail. */
typedef int config_setter(struct config_loader *ld, const struct config_key *k,
                          const json_t *v, void *base, const char *path);

/* A table of keys, with a check run after all of them were read (or
 * defaulted): `obj` is the object as given, NULL when absent. */
struct config_table {
    const struct config_key *keys; /* ended by a row with a NULL name */
    int (*check)(struct config_loader *ld, const json_t *obj, void *base, const char *path);
};

struct config_key {
    const char *name;
    enum config_type type;
    long long min, max;        /* CONFIG_INT, CONFIG_MS */
    const char *def;           /* the default as JSON text; NULL: none or see flags */
    unsigned flags;            /* CONFIG_REQUIRED, CONFIG_COMPUTED */
    size_t offset, size;       /* the field in the struct at base */
    size_t count_offset;       /* CONFIG_LIST: where the element count goes */
    const struct config_choice *choices; /* CONFIG_CHOICE: ended by a NULL name */
    const struct config_table *table;    /* CONFIG_SECTION, CONFIG_LIST */
    config_setter *set;        /* instead of the typed store, for special keys */
    const char *expect;        /* what "expected ..." says, when the type's words are not it */
    const char *hint;          /* added to "missing, expected ..." in parentheses */
    const char *doc;           /* one line for the reader of this table */
};

/* The top level of the config file. */
extern const struct config_table config_schema;

/*
 * Validates the document `root` into cfg (already holding cfg->file), walking
 * config_schema: unknown keys, types, ranges, defaults, then the checks that
 * tie keys together.  Returns 0, or -1 with ld->err filled in.
 */
int config_schema_load(struct config_loader *ld, const json_t *root, struct config *cfg);

/* The effective config as JSON, keys in table order; NULL on ENOMEM. */
json_t *config_schema_dump(const struct config *cfg);

/*
 * Prints the schema, one key a line, as tab-separated columns: the key's
 * path ("listeners[].timeouts.idle_ms"), type, min, max (empty unless a
 * number), default (JSON text, "required", "computed" or "-" for none), and
 * the choices separated by commas (empty unless a choice).
 */
void config_schema_tsv(FILE *out);

/* ---- relative paths (config_path.c) -------------------------------------- */

/*
 * Resolves each colon-separated element of the string `v` (the value at
 * JSON path `path`): absolute ones are kept, relative ones are joined to the
 * directory of ld->base_file (the current directory when NULL); a leading
 * "./" is dropped and "." is that directory itself.  Empty elements are
 * errors.  Stores a malloc'ed string in *out.  Returns 0 or -1.
 */
int config_path_dirs(struct config_loader *ld, const json_t *v, const char *path, char **out);
/* Makes the malloc'ed *file absolute the same way when it is a relative
 * path with a '/' in it (a bare name is left alone).  Returns 0 or -1. */
int config_path_file(struct config_loader *ld, const char *path, char **file);

/* ---- the loader's error reporting (config.c) ----------------------------- */

/*
 * Fills ld->err with code -EINVAL and the message "FILE: PATH: MESSAGE" (or
 * "FILE: MESSAGE" when path is NULL), and returns -1.
 */
int config_fail(struct config_loader *ld, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "FILE: PATH: out of memory" with code -ENOMEM.  Returns -1. */
int config_fail_oom(struct config_loader *ld, const char *path);
/* "FILE: PATH: expected EXPECTED, got VALUE".  Returns -1. */
int config_fail_got(struct config_loader *ld, const char *path, const char *expected,
                    const json_t *v);
/* A JSON value as "got ..." shows it (see config.c); returns buf or a constant. */
const char *config_describe(const json_t *v, char *buf, size_t len);
#define CONFIG_GOT_LEN 48 /* a buffer for config_describe */
/* "PARENT.KEY", or "KEY" when parent is "". */
void config_key_path(char *buf, size_t len, const char *parent, const char *key);

#endif
