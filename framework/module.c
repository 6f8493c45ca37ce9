/*
 * module.c - the handler-module loader (see module.h) and the wharf_options_*
 * accessors that a handler's init uses to read its listener's "options".
 *
 * A listener's "handler" is either a path (it contains '/') or a bare name
 * that is resolved to NAME.so along the module path: the config's
 * module_path, then $WHARF_MODULE_PATH, then the installed module directory,
 * then the build tree's handlers/.libs when it exists.  The first existing
 * file wins; if it cannot be loaded the search stops there, so that a broken
 * module is reported instead of being silently shadowed by a later one.
 *
 * Modules are dlopen()ed RTLD_NOW (an unresolved wharf_* call fails here, at
 * start-up, rather than at the first connection) and RTLD_LOCAL (two modules
 * may define the same helper names).  Every failure writes one line into the
 * caller's buffer naming the file, or the places searched, and the reason;
 * server.c prefixes it with the config file and the listener's JSON path.
 *
 * Loading happens on the thread that starts the server, before any worker
 * runs, so dlerror()'s per-thread state needs no further care.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "module.h"

#ifndef WHARF_MODULEDIR
#define WHARF_MODULEDIR "/usr/local/lib/wharf"
#endif
#ifndef WHARF_BUILD_MODULEDIR
#define WHARF_BUILD_MODULEDIR ""
#endif

/* The handler-visible options handle: a borrowed reference to the listener's
 * "options" object, only alive for the duration of init. */
struct wharf_options {
    json_t *obj;
};

/* ---- error text -------------------------------------------------------- */

/* Writes a formatted line into err (if any).  Always returns -1. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/*
 * dlerror() usually starts with the file name ("/x/y.so: invalid ELF
 * header"); our message already names the file, so drop that prefix.
 */
static const char *dl_reason(const char *path)
{
    const char *e = dlerror();
    if (!e)
        return "unknown dlopen error";
    size_t n = strlen(path);
    if (strncmp(e, path, n) == 0 && e[n] == ':' && e[n + 1] == ' ')
        return e + n + 2;
    return e;
}

/* ---- loading one file -------------------------------------------------- */

/* A bare handler name: one or more of [A-Za-z0-9_.-]. */
static bool name_is_valid(const char *name)
{
    if (!*name)
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

static const char *protocol_name(enum config_protocol protocol)
{
    return protocol == CONFIG_UDP ? "udp" : "tcp";
}

/*
 * dlopen()s `path` and checks that it is a wharf module usable for
 * `protocol`.  Returns 0 with a new module in *out, or -1 with a message.
 */
static int load_file(const char *path, enum config_protocol protocol, struct module **out,
                     char *err, size_t errlen)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        return fail(err, errlen, "%s: not a wharf module: %s", path, dl_reason(path));

    dlerror();
    const struct wharf_handler *h = dlsym(dl, WHARF_HANDLER_SYMBOL);
    if (!h) {
        fail(err, errlen, "%s: not a wharf module: no \"%s\" symbol", path,
             WHARF_HANDLER_SYMBOL);
        goto err;
    }
    if (h->abi_version != WHARF_ABI_VERSION) {
        fail(err, errlen, "%s: ABI version %u, this wharfd needs %u", path,
             (unsigned)h->abi_version, (unsigned)WHARF_ABI_VERSION);
        goto err;
    }
    if (!h->name || !*h->name) {
        fail(err, errlen, "%s: not a wharf module: the handler has no name", path);
        goto err;
    }
    if (protocol == CONFIG_TCP && !h->on_data) {
        fail(err, errlen, "%s: handler \"%s\" has no on_data callback, needed for a %s listener",
             path, h->name, protocol_name(protocol));
        goto err;
    }
    if (protocol == CONFIG_UDP && !h->on_datagram) {
        fail(err, errlen,
             "%s: handler \"%s\" has no on_datagram callback, needed for a %s listener", path,
             h->name, protocol_name(protocol));
        goto err;
    }

    struct module *m = calloc(1, sizeof *m);
    char *copy = strdup(path);
    if (!m || !copy) {
        free(m);
        free(copy);
        fail(err, errlen, "%s: out of memory", path);
        goto err;
    }
    m->dl = dl;
    m->handler = h;
    m->path = copy;
    *out = m;
    return 0;

err:
    dlclose(dl);
    return -1;
}

/* ---- searching the module path ----------------------------------------- */

/*
 * The list of candidates tried, for the "not found" message.  It is built
 * directly in the caller's buffer and ends with ", ...)" when it would not fit.
 */
struct tried {
    char *buf;
    size_t len, cap;
    size_t count;
    bool truncated;
};

static void tried_add(struct tried *t, const char *path)
{
    if (t->truncated || !t->buf)
        return;
    const char *sep = t->count++ ? ", " : "";
    static const char more[] = ", ...)";
    /* Leave room for ", ...)" or the closing ")" plus NUL. */
    size_t need = strlen(sep) + strlen(path);
    if (t->len + need + sizeof more > t->cap) {
        t->truncated = true;
        return;
    }
    t->len += (size_t)snprintf(t->buf + t->len, t->cap - t->len, "%s%s", sep, path);
}

static void tried_finish(struct tried *t)
{
    if (!t->buf || t->cap == 0)
        return;
    const char *tail = t->truncated ? ", ...)" : ")";
    if (t->count == 0)
        tail = t->truncated ? "...)" : "nowhere)";
    if (t->len + strlen(tail) + 1 <= t->cap)
        snprintf(t->buf + t->len, t->cap - t->len, "%s", tail);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Outcome of looking in one list of directories. */
enum search { SEARCH_NONE, SEARCH_LOADED, SEARCH_FAILED };

/*
 * Tries DIR/NAME.so for each directory of the colon-separated `dirs` (NULL
 * or empty components are skipped).  The first file that exists is loaded;
 * its result ends the search.
 */
static enum search search_dirs(const char *dirs, const char *name, enum config_protocol protocol,
                               struct tried *tried, struct module **out, char *err,
                               size_t errlen)
{
    if (!dirs)
        return SEARCH_NONE;
    const char *p = dirs;
    while (*p) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        if (dlen > 0) {
            /* Strip one trailing slash so messages read "/a/x.so", not "/a//x.so". */
            size_t keep = dlen > 1 && p[dlen - 1] == '/' ? dlen - 1 : dlen;
            size_t plen = keep + 1 + strlen(name) + sizeof ".so";
            char *path = malloc(plen);
            if (!path) {
                fail(err, errlen, "handler \"%s\": out of memory", name);
                return SEARCH_FAILED;
            }
            snprintf(path, plen, "%.*s/%s.so", (int)keep, p, name);
            struct stat st;
            if (stat(path, &st) == 0) {
                int rc = load_file(path, protocol, out, err, errlen);
                free(path);
                return rc == 0 ? SEARCH_LOADED : SEARCH_FAILED;
            }
            tried_add(tried, path);
            free(path);
        }
        if (!end)
            break;
        p = end + 1;
    }
    return SEARCH_NONE;
}

int module_load(const char *name, const char *module_path, enum config_protocol protocol,
                struct module **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!name)
        return fail(err, errlen, "handler: no name given");

    if (strchr(name, '/')) {
        struct stat st;
        if (stat(name, &st) != 0)
            return fail(err, errlen, "%s: not found: %s", name, strerror(errno));
        return load_file(name, protocol, out, err, errlen);
    }

    if (!name_is_valid(name))
        return fail(err, errlen,
                    "handler \"%s\": invalid name (use letters, digits, '_', '.', '-', "
                    "or a path containing '/')",
                    name);

    /* The "not found" message is assembled in err as candidates are tried;
     * a successful load or a load failure overwrites it. */
    struct tried tried = {.buf = err, .cap = errlen};
    if (err && errlen) {
        int n = snprintf(err, errlen, "handler \"%s\": not found (searched ", name);
        tried.len = n < 0 ? 0 : (size_t)n;
        if (tried.len >= errlen) {
            tried.len = errlen - 1;
            tried.truncated = true;
        }
    }

    const char *build_dir = WHARF_BUILD_MODULEDIR;
    const char *lists[] = {
        module_path,
        getenv("WHARF_MODULE_PATH"),
        WHARF_MODULEDIR,
        *build_dir && is_dir(build_dir) ? build_dir : NULL,
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        switch (search_dirs(lists[i], name, protocol, &tried, out, err, errlen)) {
        case SEARCH_LOADED:
            return 0;
        case SEARCH_FAILED:
            return -1;
        case SEARCH_NONE:
            break;
        }
    }
    tried_finish(&tried);
    return -1;
}

void module_unload(struct module *m)
{
    if (!m)
        return;
    if (m->dl)
        dlclose(m->dl);
    free(m->path);
    free(m);
}

int module_init_listener(const struct module *m, json_t *options, void **listener_data,
                         char *err, size_t errlen)
{
    *listener_data = NULL;
    const struct wharf_handler *h = m->handler;
    if (!h->init)
        return 0;

    struct wharf_options opts = {.obj = options};
    char reason[512] = "";
    void *data = NULL;
    if (h->init(&opts, &data, reason, sizeof reason) != 0) {
        return fail(err, errlen, "handler \"%s\" refused its options: %s", h->name,
                    reason[0] ? reason : "(no reason given)");
    }
    *listener_data = data;
    return 0;
}

/* ---- wharf_options_* (handler API) ------------------------------------- */

/* The value for key, or NULL when opts is NULL, not an object, or lacks it. */
static json_t *option(const wharf_options *opts, const char *key)
{
    if (!opts || !json_is_object(opts->obj) || !key)
        return NULL;
    return json_object_get(opts->obj, key);
}

int wharf_options_string(const wharf_options *opts, const char *key, const char **out)
{
    json_t *v = option(opts, key);
    if (!v)
        return -ENOENT;
    if (!json_is_string(v))
        return -EINVAL;
    *out = json_string_value(v);
    return 0;
}

int wharf_options_int(const wharf_options *opts, const char *key, long long *out)
{
    json_t *v = option(opts, key);
    if (!v)
        return -ENOENT;
    if (!json_is_integer(v))
        return -EINVAL;
    *out = (long long)json_integer_value(v);
    return 0;
}

int wharf_options_bool(const wharf_options *opts, const char *key, bool *out)
{
    json_t *v = option(opts, key);
    if (!v)
        return -ENOENT;
    if (!json_is_boolean(v))
        return -EINVAL;
    *out = json_is_true(v);
    return 0;
}

int wharf_options_int_array(const wharf_options *opts, const char *key, long long *out,
                            size_t max, size_t *n)
{
    json_t *v = option(opts, key);
    if (!v)
        return -ENOENT;
    if (!json_is_array(v) || json_array_size(v) > max)
        return -EINVAL;
    size_t i;
    json_t *el;
    /* Check everything first: a call that fails has no effect. */
    json_array_foreach(v, i, el) {
        if (!json_is_integer(el))
            return -EINVAL;
    }
    json_array_foreach(v, i, el) {
        out[i] = (long long)json_integer_value(el);
    }
    if (n)
        *n = json_array_size(v);
    return 0;
}

int wharf_options_check_keys(const wharf_options *opts, const char *const *allowed, char *err,
                             size_t errlen)
{
    if (!opts || !json_is_object(opts->obj))
        return 0;
    const char *key;
    json_t *v;
    json_object_foreach(opts->obj, key, v) {
        bool known = false;
        for (const char *const *a = allowed; a && *a; a++) {
            if (strcmp(*a, key) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            fail(err, errlen, "unknown option \"%s\"", key);
            return -EINVAL;
        }
    }
    return 0;
}
