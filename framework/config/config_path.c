/*
 * config_path.c - relative paths in the config file: each is taken from the
 * directory of the config file (or the current directory for config text
 * from memory), not from wherever wharfd was started, and stored absolute.
 * Used by the setters of module_path, log_file and a listener's handler.
 */
#include "config_schema.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Drops leading "./" parts (and the slashes after each) from the *len bytes
 * at *p.  Returns true when nothing but the directory itself is left ("" or
 * ".").
 */
static bool skip_dot_slash(const char **p, size_t *len)
{
    while (*len >= 2 && (*p)[0] == '.' && (*p)[1] == '/') {
        *p += 2;
        *len -= 2;
        while (*len > 0 && **p == '/') {
            (*p)++;
            (*len)--;
        }
    }
    return *len == 0 || (*len == 1 && **p == '.');
}

/*
 * Returns the absolute directory that relative paths in the config start
 * from: the directory of `file`, or the current directory when file is NULL.
 * The result is malloc'ed; NULL with errno set on failure.
 */
static char *base_dir(const char *file)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (slash && file[0] == '/')
        return slash == file ? strdup("/") : strndup(file, (size_t)(slash - file));
    char *cwd = getcwd(NULL, 0);
    if (!cwd || !slash)
        return cwd;
    const char *dir = file;
    size_t len = (size_t)(slash - file);
    if (skip_dot_slash(&dir, &len))
        return cwd;
    size_t size = strlen(cwd) + 1 + len + 1;
    char *joined = malloc(size);
    if (joined)
        snprintf(joined, size, "%s/%.*s", cwd, (int)len, dir);
    free(cwd);
    return joined;
}

int config_path_dirs(struct config_loader *ld, const json_t *v, const char *path, char **out)
{
    const char *value = json_string_value(v);
    size_t nelem = 1;
    bool relative = false;
    for (const char *p = value, *end; ; p = end + 1) {
        end = strchr(p, ':');
        if (p == end || *p == '\0')
            return config_fail_got(ld, path, "colon-separated non-empty directories", v);
        if (*p != '/')
            relative = true;
        if (!end)
            break;
        nelem++;
    }

    char *base = NULL;
    if (relative && !(base = base_dir(ld->base_file)))
        return config_fail(ld, path, "cannot resolve relative directories: %s", strerror(errno));
    /* Each element grows by at most the base and a slash. */
    size_t size = strlen(value) + 1 + (base ? nelem * (strlen(base) + 1) : 0);
    char *res = malloc(size);
    if (!res) {
        free(base);
        return config_fail_oom(ld, path);
    }

    size_t n = 0;
    for (const char *p = value, *end; ; p = end + 1) {
        end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *sep = n ? ":" : "";
        if (*p == '/')
            n += (size_t)snprintf(res + n, size - n, "%s%.*s", sep, (int)len, p);
        else if (skip_dot_slash(&p, &len))
            n += (size_t)snprintf(res + n, size - n, "%s%s", sep, base);
        else
            n += (size_t)snprintf(res + n, size - n, "%s%s%s%.*s", sep, base,
                                  strcmp(base, "/") == 0 ? "" : "/", (int)len, p);
        if (!end)
            break;
    }
    free(base);
    *out = res;
    return 0;
}

int config_path_file(struct config_loader *ld, const char *path, char **file)
{
    if (!strchr(*file, '/') || (*file)[0] == '/')
        return 0;
    char *dir = base_dir(ld->base_file);
    if (!dir)
        return config_fail(ld, path, "cannot resolve a relative path: %s", strerror(errno));
    const char *rel = *file;
    size_t rlen = strlen(rel);
    skip_dot_slash(&rel, &rlen);
    size_t size = strlen(dir) + 1 + rlen + 1;
    char *joined = malloc(size);
    if (!joined) {
        free(dir);
        return config_fail_oom(ld, path);
    }
    snprintf(joined, size, "%s/%.*s", strcmp(dir, "/") == 0 ? "" : dir, (int)rlen, rel);
    free(dir);
    free(*file);
    *file = joined;
    return 0;
}
