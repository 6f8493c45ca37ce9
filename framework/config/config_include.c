/*
 * config_include.c - a config document before validation (see
 * config_include.h): the environment substituted into its strings, then
 * the files of its "include" merged in.
 *
 * Substitution: in every string value (not in keys), "${NAME}" becomes the
 * variable's value and "${NAME:-default}" the value or, when unset or
 * empty, the default; "$${" is a literal "${".  An unset variable without
 * a default is an error naming the file and JSON path.
 *
 * "include": a string or an array of strings, each a file name or a glob
 * pattern (glob(3): *, ?, [...]) relative to the including file's
 * directory.  A plain name must exist; a pattern may match nothing.  Files
 * are merged in order (a pattern's matches sorted), each an object with
 * "listeners" (appended to the including document's) and optionally its
 * own "include".  Relative names inside listeners (handler paths) keep
 * starting from the main file's directory, as if written there.
 */
#include "config_include.h"

#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_schema.h"

#define INCLUDE_DEPTH 8
#define INCLUDE_FILES 256
#define INCLUDE_MAX_FILE (1 << 20)
#define SUBST_MAX (64 * 1024) /* a substituted string */

/* Fills *err: code, file, path and "FILE: PATH: TEXT".  Returns -1. */
static int include_fail(wharf_error *err, int code, const char *file, const char *path,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int include_fail(wharf_error *err, int code, const char *file, const char *path,
                        const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err->code = code;
    snprintf(err->file, sizeof err->file, "%s", file);
    snprintf(err->path, sizeof err->path, "%s", path ? path : "");
    snprintf(err->text, sizeof err->text, "%s: %s%s%s", file, path ? path : "", path ? ": " : "",
             msg);
    for (char *p = err->text; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = '?';
    return -1;
}

/* ---- ${VAR} ----------------------------------------------------------------- */

/* Substitutes in s; a new string in *out (free it).  Returns 0, or -1 with
 * the error filled in. */
static int subst_string(const char *s, char **out, const char *file, const char *path,
                        wharf_error *err)
{
    size_t cap = strlen(s) + 1, len = 0;
    char *r = malloc(cap);
    if (!r)
        return include_fail(err, -ENOMEM, file, path, "out of memory");
    while (*s) {
        const char *piece = s;
        size_t n = 1;
        char *name = NULL;
        if (strncmp(s, "$${", 3) == 0) {
            piece = "${", n = 2, s += 3;
        } else if (strncmp(s, "${", 2) == 0) {
            const char *end = strchr(s + 2, '}');
            size_t nl = end ? strcspn(s + 2, ":}") : 0;
            if (!end || nl == 0 || (s[2 + nl] == ':' && s[3 + nl] != '-')) {
                free(r);
                return include_fail(err, -EINVAL, file, path,
                                    "expected ${NAME} or ${NAME:-default} at \"%.20s\"", s);
            }
            name = strndup(s + 2, nl);
            const char *v = name ? getenv(name) : NULL;
            if (s[2 + nl] == ':' && (!v || !*v))
                v = s + 4 + nl, n = (size_t)(end - v);
            else if (v)
                n = strlen(v);
            if (!v) {
                include_fail(err, -EINVAL, file, path,
                             "environment variable %s is not set (${%s:-default} gives a default)",
                             name ? name : "?", name ? name : "?");
                free(name);
                free(r);
                return -1;
            }
            piece = v;
            s = end + 1;
        } else {
            s++;
        }
        if (len + n + 1 > SUBST_MAX) {
            free(name);
            free(r);
            return include_fail(err, -EINVAL, file, path, "longer than %d bytes once substituted",
                                SUBST_MAX);
        }
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *g = realloc(r, cap);
            if (!g) {
                free(name);
                free(r);
                return include_fail(err, -ENOMEM, file, path, "out of memory");
            }
            r = g;
        }
        memcpy(r + len, piece, n);
        len += n;
        free(name);
    }
    r[len] = '\0';
    *out = r;
    return 0;
}

/* Substitutes in every string of v (path: its JSON path).  Returns 0 or -1. */
static int subst(json_t *v, const char *file, const char *path, wharf_error *err)
{
    char sub[CONFIG_PATH_LEN];
    if (json_is_string(v)) {
        if (!strstr(json_string_value(v), "${"))
            return 0;
        char *s = NULL;
        if (subst_string(json_string_value(v), &s, file, path, err) < 0)
            return -1;
        int rc = json_string_set(v, s);
        free(s);
        return rc < 0 ? include_fail(err, -EINVAL, file, path, "not UTF-8 once substituted") : 0;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            snprintf(sub, sizeof sub, "%.*s[%zu]", CONFIG_PATH_LEN / 2, path, i);
            if (subst(json_array_get(v, i), file, sub, err) < 0)
                return -1;
        }
    }
    if (json_is_object(v)) {
        const char *key;
        json_t *e;
        json_object_foreach(v, key, e) {
            config_key_path(sub, sizeof sub, path, key);
            if (subst(e, file, sub, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* ---- include ------------------------------------------------------------------ */

struct include_walk {
    json_t *listeners;          /* the main document's, appended to */
    struct config_origins *origins;
    unsigned files;
    wharf_error *err;
};

static int include_document(struct include_walk *w, json_t *doc, const char *file,
                            const char *base_file, int depth);

/* Reads and merges one file. */
static int include_file(struct include_walk *w, const char *path, const char *from,
                        const char *jpath, int depth)
{
    struct stat st;
    if (++w->files > INCLUDE_FILES)
        return include_fail(w->err, -EINVAL, from, jpath, "more than %d included files",
                            INCLUDE_FILES);
    if (stat(path, &st) < 0)
        return include_fail(w->err, -errno, from, jpath, "cannot read %s: %s", path,
                            strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_size > INCLUDE_MAX_FILE)
        return include_fail(w->err, -EINVAL, from, jpath, "cannot read %s: %s", path,
                            S_ISREG(st.st_mode) ? "larger than 1 MiB" : "not a regular file");
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        char where[300];
        snprintf(where, sizeof where, "%s:%d:%d", path, je.line, je.column);
        return include_fail(w->err, je.line > 0 ? -EINVAL : -EACCES, where, NULL,
                            "syntax error: %s", je.text);
    }
    int rc = include_document(w, doc, path, path, depth);
    json_decref(doc);
    return rc;
}

/* Whether s has glob(3) magic. */
static bool include_is_pattern(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* One entry of "include" (jpath: its JSON path in `file`). */
static int include_entry(struct include_walk *w, const json_t *v, const char *file,
                         const char *base_file, const char *jpath, int depth)
{
    char got[CONFIG_GOT_LEN];
    if (!json_is_string(v) || json_string_length(v) == 0)
        return include_fail(w->err, -EINVAL, file, jpath,
                            "expected a file name or glob pattern, got %s",
                            config_describe(v, got, sizeof got));
    const char *name = json_string_value(v);
    char full[4096];
    if (name[0] == '/' || !base_file) {
        snprintf(full, sizeof full, "%s", name);
    } else {
        char *copy = strdup(base_file);
        if (!copy)
            return include_fail(w->err, -ENOMEM, file, jpath, "out of memory");
        snprintf(full, sizeof full, "%s/%s", dirname(copy), name);
        free(copy);
    }
    if (!include_is_pattern(name))
        return include_file(w, full, file, jpath, depth);
    glob_t g;
    int rc = glob(full, 0, NULL, &g);
    if (rc == GLOB_NOMATCH)
        return 0;
    if (rc != 0)
        return include_fail(w->err, -EINVAL, file, jpath, "cannot expand %s", full);
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
        rc = include_file(w, g.gl_pathv[i], file, jpath, depth);
    globfree(&g);
    return rc;
}

/* Merges doc (of file) into the walk: its listeners (unless it is the main
 * document), then its includes. */
static int include_document(struct include_walk *w, json_t *doc, const char *file,
                            const char *base_file, int depth)
{
    char got[CONFIG_GOT_LEN];
    if (!json_is_object(doc))
        return include_fail(w->err, -EINVAL, file, NULL, "top level: expected an object, got %s",
                            config_describe(doc, got, sizeof got));
    if (subst(doc, file, "", w->err) < 0)
        return -1;
    if (depth > 0) {
        const char *key;
        json_t *v;
        json_object_foreach(doc, key, v) {
            if (strcmp(key, "listeners") != 0 && strcmp(key, "include") != 0)
                return include_fail(w->err, -EINVAL, file, key,
                                    "only \"listeners\" and \"include\" may be in an included "
                                    "file");
        }
        json_t *ls = json_object_get(doc, "listeners");
        if (ls && !json_is_array(ls))
            return include_fail(w->err, -EINVAL, file, "listeners", "expected an array, got %s",
                                config_describe(ls, got, sizeof got));
        struct config_origin *o = realloc(w->origins->v, (w->origins->n + 1) * sizeof *o);
        if (!o || !(o[w->origins->n].file = strdup(file))) {
            if (o)
                w->origins->v = o;
            return include_fail(w->err, -ENOMEM, file, NULL, "out of memory");
        }
        w->origins->v = o;
        o[w->origins->n].first = json_array_size(w->listeners);
        o[w->origins->n].count = json_array_size(ls);
        w->origins->n++;
        if (ls && json_array_extend(w->listeners, ls) < 0)
            return include_fail(w->err, -ENOMEM, file, NULL, "out of memory");
    }
    json_t *inc = json_object_get(doc, "include");
    if (!inc)
        return 0;
    if (depth >= INCLUDE_DEPTH)
        return include_fail(w->err, -EINVAL, file, "include", "includes nest more than %d deep",
                            INCLUDE_DEPTH);
    if (!json_is_array(inc))
        return include_entry(w, inc, file, base_file, "include", depth + 1);
    for (size_t i = 0; i < json_array_size(inc); i++) {
        char jpath[32];
        snprintf(jpath, sizeof jpath, "include[%zu]", i);
        if (include_entry(w, json_array_get(inc, i), file, base_file, jpath, depth + 1) < 0)
            return -1;
    }
    return 0;
}

int config_include_expand(json_t *root, const char *name, const char *base_file,
                          struct config_origins *origins, wharf_error *err)
{
    origins->v = NULL;
    origins->n = 0;
    if (!json_is_object(root))
        return 0; /* validation says what is wrong */
    json_t *ls = json_object_get(root, "listeners");
    bool made = false;
    if (!ls && json_object_get(root, "include")) {
        ls = json_array();
        made = true;
    }
    struct include_walk w = {.listeners = ls, .origins = origins, .err = err};
    if (json_object_get(root, "include") && !json_is_array(ls))
        return include_fail(err, -EINVAL, name, "listeners",
                            "expected an array (to which included listeners are added)");
    int rc = include_document(&w, root, name, base_file, 0);
    if (rc == 0 && made && json_array_size(ls) > 0)
        rc = json_object_set(root, "listeners", ls);
    if (made)
        json_decref(ls);
    json_object_del(root, "include");
    return rc < 0 ? -1 : 0;
}

void config_include_blame(const struct config_origins *origins, wharf_error *err)
{
    size_t i;
    int used = 0;
    if (sscanf(err->path, "listeners[%zu]%n", &i, &used) != 1 || used == 0)
        return;
    for (size_t k = 0; k < origins->n; k++) {
        const struct config_origin *o = &origins->v[k];
        if (i < o->first || i >= o->first + o->count)
            continue;
        const char *rest = err->path + used;
        const char *msg = err->text;
        size_t skip = strlen(err->file) + 2 + strlen(err->path) + 2; /* "FILE: PATH: " */
        msg = strlen(msg) >= skip ? msg + skip : "";
        char path[sizeof err->path], text[sizeof err->text];
        snprintf(path, sizeof path, "listeners[%zu]%.100s", i - o->first, rest);
        snprintf(text, sizeof text, "%.200s: %s: %s", o->file, path, msg);
        snprintf(err->path, sizeof err->path, "%s", path);
        snprintf(err->file, sizeof err->file, "%s", o->file);
        snprintf(err->text, sizeof err->text, "%s", text);
        return;
    }
}

void config_origins_free(struct config_origins *origins)
{
    for (size_t i = 0; i < origins->n; i++)
        free(origins->v[i].file);
    free(origins->v);
    origins->v = NULL;
    origins->n = 0;
}
