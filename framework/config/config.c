/*
 * config.c - loads the server's JSON configuration (config.h) and validates
 * all of it before anything starts.
 *
 * The text is parsed with jansson (duplicate keys rejected), then walked once:
 * each object is first checked for unknown keys, then each known key is read
 * with a typed getter that knows the key's JSON path and its range.  The
 * first problem stops the walk and becomes one line in the caller's buffer:
 *
 *   FILE: PATH: expected WHAT, got VALUE
 *   FILE: PATH: missing, expected WHAT
 *   FILE: PATH: unknown key
 *   FILE:LINE:COLUMN: syntax error: JANSSON'S TEXT
 *
 * Defaults are filled in as the walk goes, so a config that loads is complete.
 * Only jansson and libc are used; docs/config.md lists every key.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cidr.h"
#include "proxy.h"
#include "wharf.h"
#include "wharf_server.h"

#define PATH_LEN 256     /* JSON paths in messages; longer ones are truncated */
#define GOT_LEN 40       /* at most this much of an offending value is shown */
#define MAX_MS 86400000  /* a listener timeout: 24 hours */
#define MAX_SOCKBUF 1073741824 /* recv_buffer / send_buffer: 1 GiB */
#define MAX_BUFFER 1073741824  /* any of "buffers": 1 GiB */
#define CONFIG_MAX_FILE (1 << 20) /* a config file: 1 MiB */
#define CONFIG_MAX_FILE_TEXT "1 MiB"

/* What one load needs to report an error. */
struct loader {
    const char *file; /* the name used in messages */
    char *err;
    size_t errlen;
};

/* ---- error reporting ----------------------------------------------------- */

/* Replaces control characters (from key names or jansson's text) with '?'
 * so that a message stays on one line. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/*
 * Writes "FILE: PATH: MESSAGE" (or "FILE: MESSAGE" when path is NULL) into
 * the caller's buffer and returns -1.
 */
static int fail(struct loader *ld, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct loader *ld, const char *path, const char *fmt, ...)
{
    if (!ld->err || ld->errlen == 0)
        return -1;
    int n = path ? snprintf(ld->err, ld->errlen, "%s: %s: ", ld->file, path)
                 : snprintf(ld->err, ld->errlen, "%s: ", ld->file);
    if (n >= 0 && (size_t)n < ld->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    one_line(ld->err);
    return -1;
}

/* Reports a jansson parse error: "FILE:LINE:COLUMN: syntax error: TEXT", or
 * without line and column when jansson has none. */
static int fail_syntax(struct loader *ld, const json_error_t *je)
{
    if (!ld->err || ld->errlen == 0)
        return -1;
    if (je->line > 0)
        snprintf(ld->err, ld->errlen, "%s:%d:%d: syntax error: %s", ld->file, je->line,
                 je->column, je->text);
    else
        snprintf(ld->err, ld->errlen, "%s: syntax error: %s", ld->file, je->text);
    one_line(ld->err);
    return -1;
}

/*
 * Describes a JSON value for "got ...": objects and arrays by their type,
 * anything else as compact JSON (ASCII-escaped, so it is one line), cut to
 * GOT_LEN characters with "..." when longer.
 */
static const char *describe(const json_t *v, char *buf, size_t len)
{
    if (json_is_object(v))
        return "an object";
    if (json_is_array(v))
        return json_array_size(v) ? "an array" : "an empty array";
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!text)
        return "a value";
    if (strlen(text) > GOT_LEN)
        snprintf(buf, len, "%.*s...", GOT_LEN - 3, text);
    else
        snprintf(buf, len, "%s", text);
    free(text);
    return buf;
}

/*
 * Builds "PARENT.KEY", or "KEY" at the top level (parent "").  Parents are
 * short ("listeners[12].buffers"); bounding them to half the buffer leaves
 * room for the key and keeps gcc's truncation warning quiet.  A longer path
 * is cut short.
 */
static void key_path(char *buf, size_t len, const char *parent, const char *key)
{
    if (*parent)
        snprintf(buf, len, "%.*s.%s", PATH_LEN / 2, parent, key);
    else
        snprintf(buf, len, "%s", key);
}

static int fail_got(struct loader *ld, const char *path, const char *expected, const json_t *v)
{
    char got[GOT_LEN + 8];
    return fail(ld, path, "expected %s, got %s", expected, describe(v, got, sizeof got));
}

static int fail_missing(struct loader *ld, const char *parent, const char *key,
                        const char *expected)
{
    char path[PATH_LEN];
    key_path(path, sizeof path, parent, key);
    return fail(ld, path, "missing, expected %s", expected);
}

/* ---- typed getters --------------------------------------------------------
 *
 * Each reads obj[key] (the object at JSON path `parent`).  It returns 1 and
 * stores the value when the key is present and valid, 0 when the key is
 * absent (*out is left as it was, holding the default), and -1 after writing
 * the error when the value is wrong.
 */

/* Rejects any key of obj not in the NULL-terminated `allowed`. */
static int check_keys(struct loader *ld, const json_t *obj, const char *parent,
                      const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        const char *const *a = allowed;
        while (*a && strcmp(*a, key) != 0)
            a++;
        if (!*a) {
            char path[PATH_LEN];
            key_path(path, sizeof path, parent, key);
            return fail(ld, path, "unknown key");
        }
    }
    return 0;
}

/* An integer lo..hi. */
static int get_int(struct loader *ld, const json_t *obj, const char *parent, const char *key,
                   long long lo, long long hi, long long *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char path[PATH_LEN], expected[64];
        key_path(path, sizeof path, parent, key);
        snprintf(expected, sizeof expected, "an integer %lld..%lld", lo, hi);
        return fail_got(ld, path, expected, v);
    }
    *out = json_integer_value(v);
    return 1;
}

/* A duration in milliseconds, 0..max. */
static int get_ms(struct loader *ld, const json_t *obj, const char *parent, const char *key,
                  long long max, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char path[PATH_LEN];
    key_path(path, sizeof path, parent, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail_got(ld, path, "a non-negative integer (milliseconds)", v);
    if (json_integer_value(v) > max) {
        char expected[64];
        snprintf(expected, sizeof expected, "at most %lld (milliseconds)", max);
        return fail_got(ld, path, expected, v);
    }
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

static int get_bool(struct loader *ld, const json_t *obj, const char *parent, const char *key,
                    bool *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        char path[PATH_LEN];
        key_path(path, sizeof path, parent, key);
        return fail_got(ld, path, "true or false", v);
    }
    *out = json_is_true(v);
    return 1;
}

/* A non-empty string, copied into *out (which must be NULL: nothing to free). */
static int get_string(struct loader *ld, const json_t *obj, const char *parent, const char *key,
                      char **out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char path[PATH_LEN];
    key_path(path, sizeof path, parent, key);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail_got(ld, path, "a non-empty string", v);
    *out = strdup(json_string_value(v));
    if (!*out)
        return fail(ld, path, "out of memory");
    return 1;
}

/*
 * One of the NULL-terminated `names`; stores its index.  `expected` is the
 * human list used in the message, e.g. "\"tcp\" or \"udp\"".
 */
static int get_choice(struct loader *ld, const json_t *obj, const char *parent, const char *key,
                      const char *const *names, const char *expected, int *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (json_is_string(v)) {
        for (int i = 0; names[i]; i++) {
            if (strcmp(names[i], json_string_value(v)) == 0) {
                *out = i;
                return 1;
            }
        }
    }
    char path[PATH_LEN];
    key_path(path, sizeof path, parent, key);
    return fail_got(ld, path, expected, v);
}

/* ---- module_path ------------------------------------------------------------ */

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
 * Returns the absolute directory that relative module_path elements start
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

/*
 * Resolves each colon-separated element of module_path `v`: absolute ones
 * are kept, relative ones are joined to base_dir(file) (a leading "./" is
 * dropped and "." is the base itself).  Empty elements are errors.  Stores a
 * malloc'ed string in *out.
 */
static int resolve_module_path(struct loader *ld, const json_t *v, const char *file, char **out)
{
    const char *value = json_string_value(v);
    size_t nelem = 1;
    bool relative = false;
    for (const char *p = value, *end; ; p = end + 1) {
        end = strchr(p, ':');
        if (p == end || *p == '\0')
            return fail_got(ld, "module_path", "colon-separated non-empty directories", v);
        if (*p != '/')
            relative = true;
        if (!end)
            break;
        nelem++;
    }

    char *base = NULL;
    if (relative && !(base = base_dir(file)))
        return fail(ld, "module_path", "cannot resolve relative directories: %s",
                    strerror(errno));
    /* Each element grows by at most the base and a slash. */
    size_t size = strlen(value) + 1 + (base ? nelem * (strlen(base) + 1) : 0);
    char *res = malloc(size);
    if (!res) {
        free(base);
        return fail(ld, "module_path", "out of memory");
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

/* ---- listeners ------------------------------------------------------------ */

static const char *const listener_keys[] = {
    "name", "protocol", "address", "port", "backlog", "ipv6_only", "reuse_address",
    "reuse_port", "tcp_nodelay", "keepalive", "defer_accept", "loop_guard", "access_log", "recv_buffer",
    "send_buffer", "timeouts", "proxy_protocol", "proxy_trusted", "deny", "rate_limit",
    "buffers", "handler", "options", NULL,
};
static const char *const timeout_keys[] = {
    "idle_ms", "write_ms", "lifetime_ms", "handshake_ms", "read_idle_ms", "write_idle_ms",
    "min_rate", "min_rate_window_ms", NULL,
};
static const char *const buffer_keys[] = {
    "high_watermark", "low_watermark", "max_input", "max_output", NULL,
};
static const char *const protocol_names[] = { "tcp", "udp", NULL };

/* ---- defaults ---------------------------------------------------------------
 *
 * Every default is written here once.  The loader starts from these, `wharfd
 * -T` prints the effective config they produce, and tests/check_docs.sh checks
 * docs/config.md against that output.  (Two defaults are computed: "workers"
 * is the number of online CPUs, and a listener's "name" is
 * "<protocol>-<index>".)
 */
static const struct config_listener listener_defaults = {
    .protocol = CONFIG_TCP,
    .backlog = 511,
    .ipv6_only = false,
    .reuse_address = true,
    .reuse_port = false,
    .tcp_nodelay = true,
    .keepalive = false,
    .defer_accept = false,
    .loop_guard = true,
    .access_log = -1,
    .recv_buffer = 0,
    .send_buffer = 0,
    .timeouts = { .idle_ms = 60000, .write_ms = 30000, .lifetime_ms = 0, .handshake_ms = 0,
                  .min_rate = 0, .min_rate_window_ms = 10000 },
    .high_watermark = 65536,
    .low_watermark = 16384,
    .max_input = 1048576,
    .max_output = 16777216,
};
static const char default_address[] = "127.0.0.1";
static const struct config top_defaults = {
    .queue_depth = 1024,
    .post_queue = 4096,
    .max_connections = 10000,
    .max_connections_per_source = 0,
    .log_level = WHARF_LOG_INFO,
    .shutdown_timeout_ms = 5000,
    .acceptor_nice = 5,
    .work_threads = 4,
    .output_budget = 268435456,
    .debug = false,
    .insecure_modules = false,
};

/* "access_log": "off", "info" or "debug" (stored as -1 or a log level). */
static const char *const access_log_names[] = { "off", "info", "debug", NULL };

static int load_access_log(struct loader *ld, const json_t *obj, struct config_listener *l)
{
    int which = 0;
    int rc = get_choice(ld, obj, l->path, "access_log", access_log_names,
                        "\"off\", \"info\" or \"debug\"", &which);
    if (rc < 0)
        return -1;
    if (rc > 0)
        l->access_log = which == 0 ? -1 : which == 1 ? WHARF_LOG_INFO : WHARF_LOG_DEBUG;
    return 0;
}

/* "proxy_protocol" and "proxy_trusted" (TCP only). */
static const char *const proxy_names[] = { "off", "v1", "v2", "any", NULL };
static const char *const proxy_trusted_defaults[] = { "127.0.0.0/8", "::1" };

static int load_proxy(struct loader *ld, const json_t *obj, struct config_listener *l)
{
    int which = 0;
    int rc = get_choice(ld, obj, l->path, "proxy_protocol", proxy_names,
                        "\"off\", \"v1\", \"v2\" or \"any\"", &which);
    if (rc < 0)
        return -1;
    l->proxy_protocol = which == 1 ? PROXY_V1 : which == 2 ? PROXY_V2 : which == 3 ? PROXY_V1 | PROXY_V2 : 0;
    char path[PATH_LEN];
    if (l->proxy_protocol && l->protocol != CONFIG_TCP) {
        key_path(path, sizeof path, l->path, "proxy_protocol");
        return fail(ld, path, "expected \"off\" on a udp listener (PROXY headers come on TCP)");
    }
    const json_t *t = json_object_get(obj, "proxy_trusted");
    key_path(path, sizeof path, l->path, "proxy_trusted");
    const char *expected = "an array of addresses or CIDR ranges (\"10.0.0.0/8\", \"::1\")";
    if (t && !json_is_array(t))
        return fail_got(ld, path, expected, t);
    size_t n = t ? json_array_size(t) : sizeof proxy_trusted_defaults / sizeof proxy_trusted_defaults[0];
    if (t) {
        l->proxy_trusted_json = json_incref((json_t *)t);
    } else {
        l->proxy_trusted_json = json_array();
        for (size_t i = 0; l->proxy_trusted_json && i < n; i++)
            json_array_append_new(l->proxy_trusted_json, json_string(proxy_trusted_defaults[i]));
    }
    l->proxy_trusted = calloc(n ? n : 1, sizeof *l->proxy_trusted);
    if (!l->proxy_trusted)
        return fail(ld, path, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *v = t ? json_array_get(t, i) : NULL;
        const char *text = t ? json_string_value(v) : proxy_trusted_defaults[i];
        if (!text || cidr_parse(text, &l->proxy_trusted[i]) < 0) {
            char ipath[PATH_LEN];
            snprintf(ipath, sizeof ipath, "%.*s[%zu]", PATH_LEN / 2, path, i);
            return fail_got(ld, ipath, "an address or CIDR range", v);
        }
        l->nproxy_trusted++;
    }
    return 0;
}

/* Reads an array of addresses / CIDR ranges at obj[key] into *out. */
static int load_cidrs(struct loader *ld, const json_t *obj, const char *parent, const char *key,
                      struct cidr **out, size_t *n)
{
    const json_t *t = json_object_get(obj, key);
    if (!t)
        return 0;
    char path[PATH_LEN];
    key_path(path, sizeof path, parent, key);
    if (!json_is_array(t))
        return fail_got(ld, path, "an array of addresses or CIDR ranges (\"10.0.0.0/8\", \"::1\")", t);
    *out = calloc(json_array_size(t) ? json_array_size(t) : 1, sizeof **out);
    if (!*out)
        return fail(ld, path, "out of memory");
    for (size_t i = 0; i < json_array_size(t); i++) {
        const json_t *v = json_array_get(t, i);
        if (!json_is_string(v) || cidr_parse(json_string_value(v), &(*out)[i]) < 0) {
            char ipath[PATH_LEN];
            snprintf(ipath, sizeof ipath, "%.*s[%zu]", PATH_LEN / 2, path, i);
            return fail_got(ld, ipath, "an address or CIDR range", v);
        }
        (*n)++;
    }
    return 0;
}

static int load_deny(struct loader *ld, const json_t *obj, struct config_listener *l)
{
    if (load_cidrs(ld, obj, l->path, "deny", &l->deny, &l->ndeny) < 0)
        return -1;
    const json_t *d = json_object_get(obj, "deny");
    l->deny_json = d ? json_incref((json_t *)d) : json_array();
    long long rate = 0;
    int rc = get_int(ld, obj, l->path, "rate_limit", 0, 100000000, &rate);
    if (rc < 0)
        return -1;
    if (rc > 0 && rate && l->protocol != CONFIG_UDP) {
        char path[PATH_LEN];
        key_path(path, sizeof path, l->path, "rate_limit");
        return fail(ld, path, "expected 0 on a tcp listener (it limits UDP datagrams)");
    }
    l->rate_limit = (uint64_t)rate;
    return 0;
}

/* Reads a listener's optional "timeouts" object. */
static int load_timeouts(struct loader *ld, const json_t *obj, struct config_listener *l)
{
    const json_t *t = json_object_get(obj, "timeouts");
    if (!t)
        return 0;
    char path[PATH_LEN];
    key_path(path, sizeof path, l->path, "timeouts");
    if (!json_is_object(t))
        return fail_got(ld, path,
                        "an object {idle_ms, write_ms, lifetime_ms, handshake_ms, "
                        "read_idle_ms, write_idle_ms, min_rate, min_rate_window_ms}", t);
    long long min_rate = (long long)l->timeouts.min_rate;
    if (check_keys(ld, t, path, timeout_keys) < 0 ||
        get_ms(ld, t, path, "idle_ms", MAX_MS, &l->timeouts.idle_ms) < 0 ||
        get_ms(ld, t, path, "write_ms", MAX_MS, &l->timeouts.write_ms) < 0 ||
        get_ms(ld, t, path, "lifetime_ms", MAX_MS, &l->timeouts.lifetime_ms) < 0 ||
        get_ms(ld, t, path, "handshake_ms", MAX_MS, &l->timeouts.handshake_ms) < 0 ||
        get_ms(ld, t, path, "read_idle_ms", MAX_MS, &l->timeouts.read_idle_ms) < 0 ||
        get_ms(ld, t, path, "write_idle_ms", MAX_MS, &l->timeouts.write_idle_ms) < 0 ||
        get_int(ld, t, path, "min_rate", 0, MAX_BUFFER, &min_rate) < 0 ||
        get_ms(ld, t, path, "min_rate_window_ms", MAX_MS, &l->timeouts.min_rate_window_ms) < 0)
        return -1;
    l->timeouts.min_rate = (uint64_t)min_rate;
    if (l->timeouts.min_rate && l->timeouts.min_rate_window_ms < 100) {
        char kpath[PATH_LEN];
        key_path(kpath, sizeof kpath, path, "min_rate_window_ms");
        return fail(ld, kpath, "expected at least 100 with min_rate, got %llu",
                    (unsigned long long)l->timeouts.min_rate_window_ms);
    }
    return 0;
}

/*
 * Reads a listener's optional "buffers" object and checks
 * 0 < low_watermark < high_watermark <= max_output.  When a pair is out of
 * order the key the config set is blamed (the other may be a default).
 */
static int load_buffers(struct loader *ld, const json_t *obj, struct config_listener *l)
{
    const json_t *b = json_object_get(obj, "buffers");
    if (!b)
        return 0;
    char path[PATH_LEN], kpath[PATH_LEN];
    key_path(path, sizeof path, l->path, "buffers");
    if (!json_is_object(b))
        return fail_got(ld, path,
                        "an object {high_watermark, low_watermark, max_input, max_output}", b);
    if (check_keys(ld, b, path, buffer_keys) < 0)
        return -1;

    long long high = (long long)l->high_watermark, low = (long long)l->low_watermark;
    long long max_input = (long long)l->max_input, max_output = (long long)l->max_output;
    int has_high, has_low, has_output;
    if ((has_high = get_int(ld, b, path, "high_watermark", 1, MAX_BUFFER, &high)) < 0 ||
        (has_low = get_int(ld, b, path, "low_watermark", 1, MAX_BUFFER, &low)) < 0 ||
        get_int(ld, b, path, "max_input", 1024, MAX_BUFFER, &max_input) < 0 ||
        (has_output = get_int(ld, b, path, "max_output", 1, MAX_BUFFER, &max_output)) < 0)
        return -1;

    if (low >= high) {
        if (has_low) {
            key_path(kpath, sizeof kpath, path, "low_watermark");
            return fail(ld, kpath, "expected less than high_watermark (%lld), got %lld",
                        high, low);
        }
        key_path(kpath, sizeof kpath, path, "high_watermark");
        return fail(ld, kpath, "expected more than low_watermark (%lld), got %lld", low, high);
    }
    if (high > max_output) {
        if (has_high || !has_output) {
            key_path(kpath, sizeof kpath, path, "high_watermark");
            return fail(ld, kpath, "expected at most max_output (%lld), got %lld",
                        max_output, high);
        }
        key_path(kpath, sizeof kpath, path, "max_output");
        return fail(ld, kpath, "expected at least high_watermark (%lld), got %lld",
                    high, max_output);
    }
    l->high_watermark = (size_t)high;
    l->low_watermark = (size_t)low;
    l->max_input = (size_t)max_input;
    l->max_output = (size_t)max_output;
    return 0;
}

/*
 * Reads cfg->listeners[index] from `obj`.  Listeners before it are complete,
 * so its name is checked against theirs.  On failure the listener may be
 * partly filled; config_free frees whatever it holds.
 */
static int load_listener(struct loader *ld, const json_t *obj, struct config *cfg, size_t index)
{
    struct config_listener *l = &cfg->listeners[index];
    *l = listener_defaults;
    snprintf(l->path, sizeof l->path, "listeners[%zu]", index);
    const char *p = l->path;

    if (!json_is_object(obj))
        return fail_got(ld, p, "an object", obj);
    if (check_keys(ld, obj, p, listener_keys) < 0)
        return -1;

    int protocol = listener_defaults.protocol;
    if (get_choice(ld, obj, p, "protocol", protocol_names, "\"tcp\" or \"udp\"", &protocol) < 0)
        return -1;
    l->protocol = (enum config_protocol)protocol;

    int has_name = get_string(ld, obj, p, "name", &l->name);
    if (has_name < 0)
        return -1;
    if (!has_name) {
        char name[40];
        snprintf(name, sizeof name, "%s-%zu", protocol_names[protocol], index);
        if (!(l->name = strdup(name)))
            return fail(ld, p, "out of memory");
    }
    for (size_t i = 0; i < index; i++) {
        if (strcmp(cfg->listeners[i].name, l->name) != 0)
            continue;
        char path[PATH_LEN], got[GOT_LEN + 8];
        key_path(path, sizeof path, p, "name");
        if (has_name)
            describe(json_object_get(obj, "name"), got, sizeof got);
        else
            snprintf(got, sizeof got, "the default \"%s\"", l->name);
        return fail(ld, path, "expected a unique name, got %s (%s has it)", got,
                    cfg->listeners[i].path);
    }

    if (get_string(ld, obj, p, "address", &l->address) < 0)
        return -1;
    if (!l->address && !(l->address = strdup(default_address)))
        return fail(ld, p, "out of memory");

    long long port = 0, backlog = l->backlog, recv_buffer = 0, send_buffer = 0;
    int has_port = get_int(ld, obj, p, "port", 0, 65535, &port);
    if (has_port < 0)
        return -1;
    if (!has_port)
        return fail_missing(ld, p, "port", "an integer 0..65535");
    if (get_int(ld, obj, p, "backlog", 1, 65535, &backlog) < 0 ||
        get_bool(ld, obj, p, "ipv6_only", &l->ipv6_only) < 0 ||
        get_bool(ld, obj, p, "reuse_address", &l->reuse_address) < 0 ||
        get_bool(ld, obj, p, "reuse_port", &l->reuse_port) < 0 ||
        get_bool(ld, obj, p, "tcp_nodelay", &l->tcp_nodelay) < 0 ||
        get_bool(ld, obj, p, "keepalive", &l->keepalive) < 0 ||
        get_bool(ld, obj, p, "defer_accept", &l->defer_accept) < 0 ||
        get_bool(ld, obj, p, "loop_guard", &l->loop_guard) < 0 ||
        load_access_log(ld, obj, l) < 0 ||
        load_proxy(ld, obj, l) < 0 ||
        load_deny(ld, obj, l) < 0 ||
        get_int(ld, obj, p, "recv_buffer", 0, MAX_SOCKBUF, &recv_buffer) < 0 ||
        get_int(ld, obj, p, "send_buffer", 0, MAX_SOCKBUF, &send_buffer) < 0 ||
        load_timeouts(ld, obj, l) < 0 ||
        load_buffers(ld, obj, l) < 0)
        return -1;
    l->port = (int)port;
    l->backlog = (int)backlog;
    /* Two listeners on one socket would split its traffic silently. */
    for (size_t i = 0; port != 0 && i < index; i++) {
        const struct config_listener *o = &cfg->listeners[i];
        if (o->protocol == l->protocol && o->port == l->port && strcmp(o->address, l->address) == 0) {
            char path[PATH_LEN];
            key_path(path, sizeof path, p, "port");
            return fail(ld, path, "expected a listener of its own, got %s %s port %d again (%s has it)",
                        protocol_names[l->protocol], l->address, l->port, o->path);
        }
    }
    l->recv_buffer = (int)recv_buffer;
    l->send_buffer = (int)send_buffer;

    int has_handler = get_string(ld, obj, p, "handler", &l->handler);
    if (has_handler < 0)
        return -1;
    if (!has_handler)
        return fail_missing(ld, p, "handler", "a non-empty string (module name or path)");

    json_t *options = json_object_get(obj, "options");
    if (options && !json_is_object(options)) {
        char path[PATH_LEN];
        key_path(path, sizeof path, p, "options");
        return fail_got(ld, path, "an object", options);
    }
    l->options = options ? json_incref(options) : json_object();
    if (!l->options)
        return fail(ld, p, "out of memory");
    return 0;
}

/* ---- the whole file --------------------------------------------------------- */

static const char *const top_keys[] = {
    "workers", "queue_depth", "post_queue", "max_connections", "max_connections_per_source",
    "module_path", "log", "log_file", "work_threads", "debug", "insecure_modules",
    "output_budget", "user", "group",
    "shutdown_timeout_ms", "acceptor_nice", "listeners", NULL,
};
static const char *const log_names[] = { "error", "warn", "info", "debug", NULL };

/* The number of online CPUs, kept within the "workers" range 1..1024. */
static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

/*
 * Validates the parsed document `root` into cfg (already holding `file`).
 * `base_file` is the config file for module_path resolution, or NULL for the
 * current directory.
 */
static int load_root(struct loader *ld, const json_t *root, const char *base_file,
                     struct config *cfg)
{
    if (!json_is_object(root))
        return fail_got(ld, "top level", "an object", root);
    if (check_keys(ld, root, "", top_keys) < 0)
        return -1;

    long long workers = online_cpus(), queue_depth = top_defaults.queue_depth;
    long long post_queue = top_defaults.post_queue;
    long long max_connections = top_defaults.max_connections;
    long long per_source = top_defaults.max_connections_per_source;
    long long work_threads = top_defaults.work_threads;
    long long output_budget = (long long)top_defaults.output_budget;
    long long acceptor_nice = top_defaults.acceptor_nice;
    int log_level = top_defaults.log_level;
    cfg->shutdown_timeout_ms = top_defaults.shutdown_timeout_ms;
    if (get_int(ld, root, "", "workers", 1, 1024, &workers) < 0 ||
        get_int(ld, root, "", "queue_depth", 1, 1000000, &queue_depth) < 0 ||
        get_int(ld, root, "", "post_queue", 1, 1000000, &post_queue) < 0 ||
        get_int(ld, root, "", "max_connections", 1, 10000000, &max_connections) < 0 ||
        get_int(ld, root, "", "max_connections_per_source", 0, 10000000, &per_source) < 0 ||
        get_int(ld, root, "", "work_threads", 1, 1024, &work_threads) < 0 ||
        get_int(ld, root, "", "output_budget", 0, 1099511627776LL, &output_budget) < 0 ||
        get_int(ld, root, "", "acceptor_nice", 0, 19, &acceptor_nice) < 0 ||
        get_choice(ld, root, "", "log", log_names,
                   "\"error\", \"warn\", \"info\" or \"debug\"", &log_level) < 0 ||
        get_ms(ld, root, "", "shutdown_timeout_ms", 3600000, &cfg->shutdown_timeout_ms) < 0)
        return -1;
    cfg->workers = (int)workers;
    cfg->queue_depth = (int)queue_depth;
    cfg->post_queue = (int)post_queue;
    cfg->max_connections = (int)max_connections;
    cfg->max_connections_per_source = (int)per_source;
    cfg->work_threads = (int)work_threads;
    cfg->output_budget = (size_t)output_budget;
    cfg->acceptor_nice = (int)acceptor_nice;
    cfg->debug = top_defaults.debug;
    cfg->insecure_modules = top_defaults.insecure_modules;
    if (get_bool(ld, root, "", "debug", &cfg->debug) < 0 ||
        get_bool(ld, root, "", "insecure_modules", &cfg->insecure_modules) < 0)
        return -1;
    cfg->log_level = log_level;

    const json_t *mp = json_object_get(root, "module_path");
    if (mp) {
        if (!json_is_string(mp) || json_string_length(mp) == 0)
            return fail_got(ld, "module_path", "a non-empty string", mp);
        if (resolve_module_path(ld, mp, base_file, &cfg->module_path) < 0)
            return -1;
    }

    if (get_string(ld, root, "", "user", &cfg->user) < 0 ||
        get_string(ld, root, "", "group", &cfg->group) < 0)
        return -1;
    if (cfg->group && !cfg->user)
        return fail(ld, "group", "expected together with \"user\"");

    const json_t *lf = json_object_get(root, "log_file");
    if (lf) {
        if (!json_is_string(lf) || json_string_length(lf) == 0 || strchr(json_string_value(lf), ':'))
            return fail_got(ld, "log_file", "a file name (a non-empty string)", lf);
        if (resolve_module_path(ld, lf, base_file, &cfg->log_file) < 0)
            return -1;
    }

    const char *expected = "a non-empty array of listener objects";
    const json_t *ls = json_object_get(root, "listeners");
    if (!ls)
        return fail_missing(ld, "", "listeners", expected);
    if (!json_is_array(ls) || json_array_size(ls) == 0)
        return fail_got(ld, "listeners", expected, ls);
    cfg->listeners = calloc(json_array_size(ls), sizeof *cfg->listeners);
    if (!cfg->listeners)
        return fail(ld, "listeners", "out of memory");
    cfg->nlisteners = json_array_size(ls);
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (load_listener(ld, json_array_get(ls, i), cfg, i) < 0)
            return -1;
    /* A relative handler path starts at the config file's directory, like
     * module_path (not at whatever directory wharfd was started in). */
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct config_listener *l = &cfg->listeners[i];
        if (!strchr(l->handler, '/') || l->handler[0] == '/')
            continue;
        char path[PATH_LEN];
        key_path(path, sizeof path, l->path, "handler");
        char *dir = base_dir(base_file);
        if (!dir)
            return fail(ld, path, "cannot resolve a relative path: %s", strerror(errno));
        const char *rel = l->handler;
        size_t rlen = strlen(rel);
        skip_dot_slash(&rel, &rlen);
        size_t size = strlen(dir) + 1 + rlen + 1;
        char *joined = malloc(size);
        if (!joined) {
            free(dir);
            return fail(ld, path, "out of memory");
        }
        snprintf(joined, size, "%s/%.*s", strcmp(dir, "/") == 0 ? "" : dir, (int)rlen, rel);
        free(dir);
        free(l->handler);
        l->handler = joined;
    }
    return 0;
}

/*
 * Parses `len` bytes of `text` and validates them.  `name` is the file name
 * for messages, `base_file` as for load_root.
 */
/* Validates a parsed document (see load_root). */
static int load_json(const json_t *root, const char *name, const char *base_file,
                     struct config **out, char *err, size_t errlen)
{
    struct loader ld = { .file = name, .err = err, .errlen = errlen };
    *out = NULL;
    struct config *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->file = strdup(name))) {
        free(cfg);
        return fail(&ld, NULL, "out of memory");
    }
    if (load_root(&ld, root, base_file, cfg) < 0) {
        config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

/* Parses JSON text, reporting syntax errors with line and column. */
static json_t *parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    struct loader ld = { .file = name, .err = err, .errlen = errlen };
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root)
        fail_syntax(&ld, &je);
    return root;
}

static int load(const char *text, size_t len, const char *name, const char *base_file,
                struct config **out, char *err, size_t errlen)
{
    *out = NULL;
    json_t *root = parse(text, len, name, err, errlen);
    if (!root)
        return -1;
    int rc = load_json(root, name, base_file, out, err, errlen);
    json_decref(root);
    return rc;
}

/* ---- public ------------------------------------------------------------------ */

/*
 * Reads all of `file`, a regular file of at most CONFIG_MAX_FILE bytes, into
 * a malloc'ed buffer (*len bytes).  Returns NULL with errno set and *why
 * naming the problem when the file cannot be opened or read, is not a
 * regular file (a directory, a FIFO, a device such as /dev/zero: opened
 * without blocking and refused before anything is read) or is too large.
 */
static char *read_all(const char *file, size_t *len, const char **why)
{
    *why = NULL;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) < 0)
        goto out;
    if (!S_ISREG(st.st_mode)) {
        *why = S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file";
        errno = EINVAL;
        goto out;
    }
    if (st.st_size > CONFIG_MAX_FILE) {
        *why = "larger than " CONFIG_MAX_FILE_TEXT;
        errno = EFBIG;
        goto out;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    buf = malloc(cap);
    if (!buf)
        goto out;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            buf = NULL;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) { /* it grew while we read it */
            free(buf);
            buf = NULL;
            *why = "larger than " CONFIG_MAX_FILE_TEXT;
            errno = EFBIG;
            goto out;
        }
    }
    *len = n;
out:;
    int e = errno;
    close(fd);
    errno = e;
    return buf;
}

/* Reports why read_all failed.  Returns -1. */
static int fail_read(const char *file, const char *why, char *err, size_t errlen)
{
    struct loader ld = { .file = file, .err = err, .errlen = errlen };
    if (why)
        return fail(&ld, NULL, "cannot read: %s", why);
    return fail(&ld, NULL, "cannot read: %s", strerror(errno));
}

int config_load_file(const char *file, struct config **out, char *err, size_t errlen)
{
    size_t len = 0;
    const char *why;
    char *text = read_all(file, &len, &why);
    if (!text) {
        *out = NULL;
        return fail_read(file, why, err, errlen);
    }
    int rc = load(text, len, file, file, out, err, errlen);
    free(text);
    return rc;
}

int config_load_string(const char *text, const char *name, struct config **out,
                       char *err, size_t errlen)
{
    return load(text, strlen(text), name ? name : "<string>", NULL, out, err, errlen);
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct config_listener *l = &cfg->listeners[i];
        free(l->name);
        free(l->address);
        free(l->handler);
        free(l->proxy_trusted);
        free(l->deny);
        json_decref(l->deny_json);
        json_decref(l->proxy_trusted_json);
        json_decref(l->options);
    }
    free(cfg->listeners);
    free(cfg->module_path);
    free(cfg->log_file);
    free(cfg->user);
    free(cfg->group);
    free(cfg->file);
    free(cfg);
}

/* ---- the public configuration object (wharf_server.h) ------------------------ */

struct wharf_config {
    json_t *root;      /* the document as given or built */
    char *name;        /* the file name used in messages */
    char *base_file;   /* relative paths start from its directory; NULL: cwd */
};

int config_from_public(const struct wharf_config *wc, struct config **out, char *err,
                       size_t errlen)
{
    return load_json(wc->root, wc->name, wc->base_file, out, err, errlen);
}

static wharf_config *wharf_config_make(json_t *root, const char *name, const char *base_file)
{
    wharf_config *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->root = root;
    c->name = strdup(name);
    c->base_file = base_file ? strdup(base_file) : NULL;
    if (!c->name || (base_file && !c->base_file)) {
        free(c->name);
        free(c);
        return NULL;
    }
    return c;
}

/* Parses, validates, and wraps; takes nothing over. */
static int wharf_config_load(const char *text, size_t len, const char *name,
                             const char *base_file, wharf_config **out, char *err,
                             size_t errlen)
{
    *out = NULL;
    json_t *root = parse(text, len, name, err, errlen);
    if (!root)
        return -1;
    struct config *cfg;
    if (load_json(root, name, base_file, &cfg, err, errlen) < 0) {
        json_decref(root);
        return -1;
    }
    config_free(cfg);
    if (!(*out = wharf_config_make(root, name, base_file))) {
        json_decref(root);
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    return 0;
}

int wharf_config_from_file(const char *file, wharf_config **out, char *err, size_t errlen)
{
    size_t len = 0;
    const char *why;
    char *text = read_all(file, &len, &why);
    if (!text) {
        *out = NULL;
        return fail_read(file, why, err, errlen);
    }
    int rc = wharf_config_load(text, len, file, file, out, err, errlen);
    free(text);
    return rc;
}

int wharf_config_from_json(const char *text, const char *name, wharf_config **out, char *err,
                           size_t errlen)
{
    name = name ? name : "<string>";
    return wharf_config_load(text, strlen(text), name, NULL, out, err, errlen);
}

wharf_config *wharf_config_new(void)
{
    json_t *root = json_pack("{s:[]}", "listeners");
    if (!root)
        return NULL;
    wharf_config *c = wharf_config_make(root, "<code>", NULL);
    if (!c)
        json_decref(root);
    return c;
}

/*
 * Walks the path one step ("key" or "key[N]") at a time, creating objects
 * (and an object appended at index == size) on the way, and stores the
 * value at the last step.
 */
int wharf_config_set(wharf_config *cfg, const char *path, const char *json, char *err,
                     size_t errlen)
{
    struct loader ld = { .file = cfg->name, .err = err, .errlen = errlen };
    json_error_t je;
    json_t *value = json_loads(json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!value)
        return fail(&ld, path, "not a JSON value: %s", je.text);

    /* Changes a copy, kept only when the whole path worked. */
    json_t *copy = json_deep_copy(cfg->root);
    if (!copy) {
        json_decref(value);
        return fail(&ld, path, "out of memory");
    }
    json_t *cur = copy;
    const char *p = path;
    int rc = -1;
    while (*p) {
        size_t klen = strcspn(p, ".[");
        if (klen == 0 || klen >= PATH_LEN) {
            fail(&ld, path, "malformed path");
            goto out;
        }
        char key[PATH_LEN];
        memcpy(key, p, klen);
        key[klen] = '\0';
        p += klen;
        if (!json_is_object(cur)) {
            fail(&ld, path, "\"%s\" is not inside an object", key);
            goto out;
        }
        if (*p == '\0') {
            rc = json_object_set(cur, key, value) == 0 ? 0 : fail(&ld, path, "out of memory");
            goto out;
        }
        json_t *next = json_object_get(cur, key);
        if (*p == '[') {
            char *end;
            unsigned long idx = strtoul(p + 1, &end, 10);
            if (end == p + 1 || *end != ']') {
                fail(&ld, path, "malformed array index");
                goto out;
            }
            p = end + 1;
            if (!next) {
                next = json_array();
                if (!next || json_object_set_new(cur, key, next) < 0) {
                    fail(&ld, path, "out of memory");
                    goto out;
                }
            }
            if (!json_is_array(next)) {
                fail(&ld, path, "\"%s\" is not an array", key);
                goto out;
            }
            size_t size = json_array_size(next);
            if (idx > size) {
                fail(&ld, path, "index %lu past the end (%zu elements)", idx, size);
                goto out;
            }
            if (*p == '\0') {
                int r = idx == size ? json_array_append(next, value)
                                    : json_array_set(next, idx, value);
                rc = r == 0 ? 0 : fail(&ld, path, "out of memory");
                goto out;
            }
            if (idx == size) {
                json_t *obj = json_object();
                if (!obj || json_array_append_new(next, obj) < 0) {
                    fail(&ld, path, "out of memory");
                    goto out;
                }
            }
            next = json_array_get(next, idx);
        } else if (!next) {
            next = json_object();
            if (!next || json_object_set_new(cur, key, next) < 0) {
                fail(&ld, path, "out of memory");
                goto out;
            }
        }
        if (*p == '.')
            p++;
        else if (*p) {
            fail(&ld, path, "malformed path");
            goto out;
        }
        cur = next;
    }
    fail(&ld, path, "malformed path");
out:
    json_decref(value);
    if (rc == 0) {
        json_decref(cfg->root);
        cfg->root = copy;
    } else {
        json_decref(copy);
    }
    return rc;
}

int wharf_config_check(const wharf_config *cfg, char *err, size_t errlen)
{
    struct config *c;
    if (config_from_public(cfg, &c, err, errlen) < 0)
        return -1;
    config_free(c);
    return 0;
}

void wharf_config_free(wharf_config *cfg)
{
    if (!cfg)
        return;
    json_decref(cfg->root);
    free(cfg->name);
    free(cfg->base_file);
    free(cfg);
}

json_t *config_to_json(const struct config *cfg)
{
    static const char *const log_levels[] = {"error", "warn", "info", "debug"};
    json_t *ls = json_array();
    for (size_t i = 0; ls && i < cfg->nlisteners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:i, s:i, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:s, s:s, s:i, s:i,"
            " s:I, s:O, s:O, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}, s:s,"
            " s:O}",
            "name", l->name, "protocol", protocol_names[l->protocol], "address", l->address,
            "port", l->port, "backlog", l->backlog, "ipv6_only", l->ipv6_only,
            "reuse_address", l->reuse_address, "reuse_port", l->reuse_port,
            "tcp_nodelay", l->tcp_nodelay, "keepalive", l->keepalive,
            "defer_accept", l->defer_accept, "loop_guard", l->loop_guard,
            "access_log", l->access_log < 0 ? "off" : l->access_log == WHARF_LOG_INFO ? "info" : "debug",
            "proxy_protocol", proxy_names[l->proxy_protocol == (PROXY_V1 | PROXY_V2) ? 3 : l->proxy_protocol == PROXY_V2 ? 2 : l->proxy_protocol == PROXY_V1 ? 1 : 0],
            "recv_buffer", l->recv_buffer, "send_buffer", l->send_buffer,
            "rate_limit", (json_int_t)l->rate_limit,
            "deny", l->deny_json ? l->deny_json : json_array(),
            "proxy_trusted", l->proxy_trusted_json ? l->proxy_trusted_json : json_array(),
            "timeouts", "idle_ms", (json_int_t)l->timeouts.idle_ms,
            "write_ms", (json_int_t)l->timeouts.write_ms,
            "lifetime_ms", (json_int_t)l->timeouts.lifetime_ms,
            "handshake_ms", (json_int_t)l->timeouts.handshake_ms,
            "read_idle_ms", (json_int_t)l->timeouts.read_idle_ms,
            "write_idle_ms", (json_int_t)l->timeouts.write_idle_ms,
            "min_rate", (json_int_t)l->timeouts.min_rate,
            "min_rate_window_ms", (json_int_t)l->timeouts.min_rate_window_ms,
            "buffers", "high_watermark", (json_int_t)l->high_watermark,
            "low_watermark", (json_int_t)l->low_watermark,
            "max_input", (json_int_t)l->max_input, "max_output", (json_int_t)l->max_output,
            "handler", l->handler, "options", l->options);
        if (!o || json_array_append_new(ls, o) < 0) {
            json_decref(ls);
            return NULL;
        }
    }
    if (!ls)
        return NULL;
    json_t *root = json_pack("{s:i, s:i, s:i, s:i, s:i, s:I, s:i, s:b, s:b, s:s, s:I, s:i, s:o}",
                             "workers", cfg->workers, "queue_depth", cfg->queue_depth,
                             "post_queue", cfg->post_queue,
                             "max_connections", cfg->max_connections,
                             "max_connections_per_source", cfg->max_connections_per_source,
                             "output_budget", (json_int_t)cfg->output_budget,
                             "work_threads", cfg->work_threads, "debug", cfg->debug,
                             "insecure_modules", cfg->insecure_modules,
                             "log", log_levels[cfg->log_level],
                             "shutdown_timeout_ms", (json_int_t)cfg->shutdown_timeout_ms,
                             "acceptor_nice", cfg->acceptor_nice, "listeners", ls);
    if (root && cfg->module_path)
        json_object_set_new(root, "module_path", json_string(cfg->module_path));
    if (root && cfg->log_file)
        json_object_set_new(root, "log_file", json_string(cfg->log_file));
    if (root && cfg->user)
        json_object_set_new(root, "user", json_string(cfg->user));
    if (root && cfg->group)
        json_object_set_new(root, "group", json_string(cfg->group));
    return root;
}

char *wharf_config_dump(const wharf_config *wc, char *err, size_t errlen)
{
    struct config *cfg;
    if (config_from_public(wc, &cfg, err, errlen) < 0)
        return NULL;
    json_t *j = config_to_json(cfg);
    config_free(cfg);
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!text)
        snprintf(err, errlen, "out of memory");
    return text;
}
