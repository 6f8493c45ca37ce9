/*
 * config_schema.c - the config file's schema, written once as tables of keys
 * (config_schema.h), and the walks over them.
 *
 * Each key is one row: name, type, range, default (as JSON text), the field
 * it fills, and for a few keys a setter.  The same rows are walked to load
 * and validate a document (config_schema_load: unknown keys, types, ranges,
 * then defaults, which go through the same typed store as a given value),
 * to dump the effective config (config_schema_dump, what `wharfd -T`
 * prints), and to print the schema for tests/check_docs.sh, which checks
 * docs/config.md and docs/wharf.json.5 against it (config_schema_tsv).  So a
 * default, a range or a key is written here and nowhere else in the code.
 *
 * Rules that tie keys together (unique listener names and sockets, buffer
 * order, min_rate's window, user before group) are the tables' checks, run
 * after all of a table's keys were read.
 */
#include "config_schema.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h> /* the LOG_* facilities */
#include <unistd.h> /* sysconf */

#include "access_log.h"

#include "cidr.h"
#include "loop.h"
#include "proxy.h"
#include "wharf.h"

#define MAX_MS 86400000        /* a listener timeout: 24 hours */
#define MAX_WORKERS 1024       /* "workers" */
#define MAX_BYTES 1073741824   /* a socket buffer, any of "buffers", min_rate: 1 GiB */

_Static_assert(sizeof(int) == 4 && sizeof(uint64_t) == 8, "integer fields are 4 or 8 bytes");

/* The values of the choice keys (the rows are at the end of the file). */
static const struct config_choice protocol_choices[] = {
    {"tcp", CONFIG_TCP}, {"udp", CONFIG_UDP}, {NULL, 0},
};
static const struct config_choice log_choices[] = {
    {"error", WHARF_LOG_ERROR}, {"warn", WHARF_LOG_WARN}, {"info", WHARF_LOG_INFO},
    {"debug", WHARF_LOG_DEBUG}, {NULL, 0},
};
static const struct config_choice access_log_choices[] = {
    {"off", -1}, {"info", WHARF_LOG_INFO}, {"debug", WHARF_LOG_DEBUG}, {NULL, 0},
};
static const struct config_choice io_choices[] = {
    {"auto", LOOP_IO_AUTO}, {"epoll", LOOP_IO_EPOLL}, {"io_uring", LOOP_IO_URING}, {NULL, 0},
};
static const struct config_choice log_format_choices[] = {
    {"text", 0}, {"json", 1}, {NULL, 0},
};
static const struct config_choice syslog_choices[] = {
    {"off", -1}, {"daemon", LOG_DAEMON}, {"user", LOG_USER}, {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},
    {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},
    {"local7", LOG_LOCAL7}, {NULL, 0},
};
static const struct config_choice verify_choices[] = {
    {"none", CONFIG_VERIFY_NONE}, {"optional", CONFIG_VERIFY_OPTIONAL},
    {"require", CONFIG_VERIFY_REQUIRE}, {NULL, 0},
};
static const struct config_choice tls_version_choices[] = {
    {"1.2", 12}, {"1.3", 13}, {NULL, 0},
};
static const struct config_choice accept_choices[] = {
    {"acceptor", CONFIG_ACCEPT_ACCEPTOR}, {"workers", CONFIG_ACCEPT_WORKERS}, {NULL, 0},
};
static const struct config_choice proxy_choices[] = {
    {"off", 0}, {"v1", PROXY_V1}, {"v2", PROXY_V2}, {"any", PROXY_V1 | PROXY_V2}, {NULL, 0},
};

/* The field of key k in the struct at base. */
static void *field(void *base, const struct config_key *k)
{
    return (char *)base + k->offset;
}

static const void *cfield(const void *base, const struct config_key *k)
{
    return (const char *)base + k->offset;
}

/* Integer fields are int / unsigned (4 bytes) or size_t / uint64_t (8). */
static void put_int(void *p, size_t size, long long v)
{
    if (size == 4) {
        int32_t x = (int32_t)v;
        memcpy(p, &x, sizeof x);
    } else {
        int64_t x = (int64_t)v;
        memcpy(p, &x, sizeof x);
    }
}

static long long get_int(const void *p, size_t size)
{
    if (size == 4) {
        int32_t x;
        memcpy(&x, p, sizeof x);
        return x;
    }
    int64_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

/* ---- the typed store ------------------------------------------------------- */

/* What "expected ..." says for key k, written into buf when built. */
static const char *expected(const struct config_key *k, char *buf, size_t len)
{
    if (k->expect)
        return k->expect;
    size_t n = 0;
    switch (k->type) {
    case CONFIG_INT:
        snprintf(buf, len, "an integer %lld..%lld", k->min, k->max);
        return buf;
    case CONFIG_MS:
        return "a non-negative integer (milliseconds)";
    case CONFIG_BOOL:
        return "true or false";
    case CONFIG_STRING:
        return "a non-empty string";
    case CONFIG_CHOICE: /* "a", "b" or "c" */
        buf[0] = '\0';
        for (const struct config_choice *c = k->choices; c->name && n < len; c++)
            n += (size_t)snprintf(buf + n, len - n, "%s\"%s\"",
                                  c == k->choices ? "" : c[1].name ? ", " : " or ", c->name);
        return buf;
    case CONFIG_SECTION: /* an object {a, b, c} */
        n = (size_t)snprintf(buf, len, "an object {");
        for (const struct config_key *s = k->table->keys; s->name && n < len; s++)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", s == k->table->keys ? "" : ", ",
                                  s->name);
        if (n < len)
            snprintf(buf + n, len - n, "}");
        return buf;
    case CONFIG_OBJECT:
        return "an object";
    case CONFIG_ARRAY:
    case CONFIG_LIST:
        return "an array";
    }
    return "a value";
}

static int load_table(struct config_loader *ld, const struct config_table *t, const json_t *obj,
                      void *base, const char *path);

/* Reads the list of objects `v` into a new array of elements of k->size. */
static int store_list(struct config_loader *ld, const struct config_key *k, const json_t *v,
                      void *base, const char *path)
{
    char buf[256];
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_fail_got(ld, path, expected(k, buf, sizeof buf), v);
    size_t n = json_array_size(v);
    char *elems = calloc(n, k->size);
    if (!elems)
        return config_fail_oom(ld, path);
    /* Stored at once, so that config_free frees what a failure leaves. */
    memcpy(field(base, k), &elems, sizeof elems);
    memcpy((char *)base + k->count_offset, &n, sizeof n);
    for (size_t i = 0; i < n; i++) {
        char epath[CONFIG_PATH_LEN];
        snprintf(epath, sizeof epath, "%.*s[%zu]", CONFIG_PATH_LEN / 2, path, i);
        const json_t *e = json_array_get(v, i);
        if (!json_is_object(e))
            return config_fail_got(ld, epath, "an object", e);
        if (load_table(ld, k->table, e, elems + i * k->size, epath) < 0)
            return -1;
    }
    return 0;
}

/* Checks `v` against key k's type and range and stores it in its field. */
static int store(struct config_loader *ld, const struct config_key *k, const json_t *v,
                 void *base, const char *path)
{
    char buf[256];
    void *p = field(base, k);
    switch (k->type) {
    case CONFIG_INT:
        if (!json_is_integer(v) || json_integer_value(v) < k->min ||
            json_integer_value(v) > k->max)
            return config_fail_got(ld, path, expected(k, buf, sizeof buf), v);
        put_int(p, k->size, json_integer_value(v));
        return 0;
    case CONFIG_MS:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return config_fail_got(ld, path, expected(k, buf, sizeof buf), v);
        if (json_integer_value(v) > k->max) {
            snprintf(buf, sizeof buf, "at most %lld (milliseconds)", k->max);
            return config_fail_got(ld, path, buf, v);
        }
        put_int(p, k->size, json_integer_value(v));
        return 0;
    case CONFIG_BOOL: {
        if (!json_is_boolean(v))
            return config_fail_got(ld, path, expected(k, buf, sizeof buf), v);
        bool b = json_is_true(v);
        memcpy(p, &b, sizeof b);
        return 0;
    }
    case CONFIG_STRING: {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return config_fail_got(ld, path, expected(k, buf, sizeof buf), v);
        char *s = strdup(json_string_value(v));
        if (!s)
            return config_fail_oom(ld, path);
        memcpy(p, &s, sizeof s);
        return 0;
    }
    case CONFIG_CHOICE:
        for (const struct config_choice *c = k->choices; json_is_string(v) && c->name; c++) {
            if (strcmp(c->name, json_string_value(v)) == 0) {
                put_int(p, k->size, c->value);
                return 0;
            }
        }
        return config_fail_got(ld, path, expected(k, buf, sizeof buf), v);
    case CONFIG_OBJECT:
    case CONFIG_ARRAY: {
        if (k->type == CONFIG_OBJECT ? !json_is_object(v) : !json_is_array(v))
            return config_fail_got(ld, path, expected(k, buf, sizeof buf), v);
        json_t *ref = json_incref((json_t *)v);
        memcpy(p, &ref, sizeof ref);
        return 0;
    }
    case CONFIG_SECTION:
        if (!json_is_object(v))
            return config_fail_got(ld, path, expected(k, buf, sizeof buf), v);
        return load_table(ld, k->table, v, base, path);
    case CONFIG_LIST:
        return store_list(ld, k, v, base, path);
    }
    return config_fail(ld, path, "unknown type");
}

/*
 * Reads key k of `obj` (NULL: an absent section, every key defaulted):
 * a given value, else the default, goes through the setter or the typed
 * store; a required key without a value is an error.
 */
static int load_key(struct config_loader *ld, const struct config_key *k, const json_t *obj,
                    void *base, const char *parent)
{
    char path[CONFIG_PATH_LEN], buf[256];
    config_key_path(path, sizeof path, parent, k->name);
    const json_t *v = obj ? json_object_get(obj, k->name) : NULL;
    if (!v && k->type == CONFIG_SECTION)
        return load_table(ld, k->table, NULL, base, path);
    json_t *def = NULL;
    if (!v) {
        if (k->flags & CONFIG_REQUIRED)
            return config_fail(ld, path, "missing, expected %s%s%s%s",
                               expected(k, buf, sizeof buf), k->hint ? " (" : "",
                               k->hint ? k->hint : "", k->hint ? ")" : "");
        if (!k->def)
            return 0;
        if (!(def = json_loads(k->def, JSON_DECODE_ANY, NULL)))
            return config_fail_oom(ld, path);
        v = def;
    }
    int rc = k->set ? k->set(ld, k, v, base, path) : store(ld, k, v, base, path);
    json_decref(def);
    return rc;
}

/* Rejects keys of obj that t does not have, then reads every key of t. */
static int load_table(struct config_loader *ld, const struct config_table *t, const json_t *obj,
                      void *base, const char *path)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v) { /* none when obj is NULL */
        const struct config_key *k = t->keys;
        while (k->name && strcmp(k->name, name) != 0)
            k++;
        if (!k->name) {
            char kpath[CONFIG_PATH_LEN];
            config_key_path(kpath, sizeof kpath, path, name);
            return config_fail(ld, kpath, "unknown key");
        }
    }
    for (const struct config_key *k = t->keys; k->name; k++)
        if (load_key(ld, k, obj, base, path) < 0)
            return -1;
    return t->check ? t->check(ld, obj, base, path) : 0;
}

/* ---- setters ------------------------------------------------------------------ */

/* "module_path": colon-separated directories, each made absolute. */
static int set_module_path(struct config_loader *ld, const struct config_key *k, const json_t *v,
                           void *base, const char *path)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return config_fail_got(ld, path, "a non-empty string", v);
    return config_path_dirs(ld, v, path, field(base, k));
}

/* "log_file": one file name, made absolute like module_path. */
static int set_log_file(struct config_loader *ld, const struct config_key *k, const json_t *v,
                        void *base, const char *path)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || strchr(json_string_value(v), ':'))
        return config_fail_got(ld, path, k->expect, v);
    return config_path_dirs(ld, v, path, field(base, k));
}

/* "admin.mode": permission bits in octal, "0600". */
static int set_admin_mode(struct config_loader *ld, const struct config_key *k, const json_t *v,
                          void *base, const char *path)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    size_t n = strspn(s, "01234567");
    if (n < 3 || n > 4 || s[n] || (n == 4 && s[0] != '0'))
        return config_fail_got(ld, path, k->expect, v);
    return store(ld, k, v, base, path);
}

/* Keeps the array (the typed store) and parses each address / CIDR range. */
static int set_cidrs(struct config_loader *ld, const struct config_key *k, const json_t *v,
                     void *base, const char *path, struct cidr **out, size_t *n)
{
    if (store(ld, k, v, base, path) < 0)
        return -1;
    *out = calloc(json_array_size(v) ? json_array_size(v) : 1, sizeof **out);
    if (!*out)
        return config_fail_oom(ld, path);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_string(e) || cidr_parse(json_string_value(e), &(*out)[i]) < 0) {
            char ipath[CONFIG_PATH_LEN];
            snprintf(ipath, sizeof ipath, "%.*s[%zu]", CONFIG_PATH_LEN / 2, path, i);
            return config_fail_got(ld, ipath, "an address or CIDR range", e);
        }
        (*n)++;
    }
    return 0;
}

static int set_deny(struct config_loader *ld, const struct config_key *k, const json_t *v,
                    void *base, const char *path)
{
    struct config_listener *l = base;
    return set_cidrs(ld, k, v, base, path, &l->deny, &l->ndeny);
}

static int set_proxy_trusted(struct config_loader *ld, const struct config_key *k,
                             const json_t *v, void *base, const char *path)
{
    struct config_listener *l = base;
    return set_cidrs(ld, k, v, base, path, &l->proxy_trusted, &l->nproxy_trusted);
}

/* "proxy_protocol": TCP only ("protocol" is read before it). */
static int set_proxy_protocol(struct config_loader *ld, const struct config_key *k,
                              const json_t *v, void *base, const char *path)
{
    struct config_listener *l = base;
    if (store(ld, k, v, base, path) < 0)
        return -1;
    if (l->proxy_protocol && l->protocol != CONFIG_TCP)
        return config_fail(ld, path,
                           "expected \"off\" on a udp listener (PROXY headers come on TCP)");
    return 0;
}

/* "rate_limit": UDP only. */
static int set_rate_limit(struct config_loader *ld, const struct config_key *k, const json_t *v,
                          void *base, const char *path)
{
    struct config_listener *l = base;
    if (store(ld, k, v, base, path) < 0)
        return -1;
    if (l->rate_limit && l->protocol != CONFIG_UDP)
        return config_fail(ld, path, "expected 0 on a tcp listener (it limits UDP datagrams)");
    return 0;
}

/* "udp_gso", "udp_gro": UDP only. */
static int set_udp_offload(struct config_loader *ld, const struct config_key *k,
                           const json_t *v, void *base, const char *path)
{
    struct config_listener *l = base;
    if (store(ld, k, v, base, path) < 0)
        return -1;
    if ((l->udp_gso || l->udp_gro) && l->protocol != CONFIG_UDP)
        return config_fail(ld, path, "expected false on a tcp listener (a UDP offload)");
    return 0;
}

/* "conn_rate_limit": TCP only. */
static int set_conn_rate(struct config_loader *ld, const struct config_key *k, const json_t *v,
                         void *base, const char *path)
{
    struct config_listener *l = base;
    if (store(ld, k, v, base, path) < 0)
        return -1;
    if (l->conn_rate_limit && l->protocol != CONFIG_TCP)
        return config_fail(ld, path, "expected 0 on a udp listener (it limits TCP connections;"
                                     " see rate_limit)");
    return 0;
}

/* "access_log_file": TCP only, a file name made absolute like log_file. */
static int set_access_log_file(struct config_loader *ld, const struct config_key *k,
                               const json_t *v, void *base, const char *path)
{
    struct config_listener *l = base;
    if (l->protocol != CONFIG_TCP)
        return config_fail(ld, path, "expected only on a tcp listener (one line per "
                                     "connection)");
    return set_log_file(ld, k, v, base, path);
}

/* "access_log_format": every $variable known. */
static int set_access_log_format(struct config_loader *ld, const struct config_key *k,
                                 const json_t *v, void *base, const char *path)
{
    if (store(ld, k, v, base, path) < 0)
        return -1;
    char err[512];
    if (access_log_check_format(json_string_value(v), err, sizeof err) < 0)
        return config_fail(ld, path, "%s", err);
    return 0;
}

/*
 * "handler": a relative path (one with a '/') starts at the config file's
 * directory, like module_path, not at wharfd's current directory.
 */
static int set_handler(struct config_loader *ld, const struct config_key *k, const json_t *v,
                       void *base, const char *path)
{
    struct config_listener *l = base;
    if (store(ld, k, v, base, path) < 0)
        return -1;
    return config_path_file(ld, path, &l->handler);
}

/* A file of "tls" (cert, key, ca, ocsp_file): made absolute like log_file. */
static int set_tls_file(struct config_loader *ld, const struct config_key *k, const json_t *v,
                        void *base, const char *path)
{
    return set_log_file(ld, k, v, base, path);
}

/* "tls.alpn": protocol names of 1..255 bytes, at most 16 of them. */
static int set_alpn(struct config_loader *ld, const struct config_key *k, const json_t *v,
                    void *base, const char *path)
{
    if (!json_is_array(v) || json_array_size(v) > 16)
        return config_fail_got(ld, path, k->expect, v);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 255) {
            char ipath[CONFIG_PATH_LEN];
            snprintf(ipath, sizeof ipath, "%.*s[%zu]", CONFIG_PATH_LEN / 2, path, i);
            return config_fail_got(ld, ipath, "a protocol name of 1 to 255 bytes", e);
        }
    }
    return store(ld, k, v, base, path);
}

/* ---- checks that tie keys together ---------------------------------------------- */

/*
 * "tls": present means TLS; then cert and key are required, verify other
 * than "none" needs ca, min_version <= max_version, and the listener is TCP.
 */
static int check_tls(struct config_loader *ld, const json_t *obj, void *base, const char *path)
{
    struct config_listener *l = base;
    struct config_tls *t = &l->tls;
    char kpath[CONFIG_PATH_LEN];
    t->on = obj != NULL;
    if (!t->on)
        return 0;
    if (l->protocol != CONFIG_TCP)
        return config_fail(ld, path, "expected only on a tcp listener (TLS runs over TCP)");
    if (!t->cert || !t->key) {
        config_key_path(kpath, sizeof kpath, path, t->cert ? "key" : "cert");
        return config_fail(ld, kpath, "missing, expected a file name (a PEM %s)",
                           t->cert ? "private key" : "certificate chain");
    }
    if (t->verify != CONFIG_VERIFY_NONE && !t->ca) {
        config_key_path(kpath, sizeof kpath, path, "ca");
        return config_fail(ld, kpath, "missing, expected a file name (the CA certificates "
                                      "client certificates are verified against, as verify "
                                      "is not \"none\")");
    }
    if (t->min_version > t->max_version) {
        config_key_path(kpath, sizeof kpath, path, "min_version");
        return config_fail(ld, kpath, "expected at most max_version (\"1.%d\"), got \"1.%d\"",
                           t->max_version - 10, t->min_version - 10);
    }
    return 0;
}

/* One "tls.sni" entry: both files. */
static int check_sni(struct config_loader *ld, const json_t *obj, void *base, const char *path)
{
    const struct config_tls_sni *s = base;
    (void)obj;
    if (!s->cert || !s->key) {
        char kpath[CONFIG_PATH_LEN];
        config_key_path(kpath, sizeof kpath, path, s->cert ? "key" : "cert");
        return config_fail(ld, kpath, "missing, expected a file name");
    }
    return 0;
}

/* min_rate needs a window it can be measured over. */
static int check_timeouts(struct config_loader *ld, const json_t *obj, void *base,
                          const char *path)
{
    (void)obj;
    const struct config_timeouts *t = &((struct config_listener *)base)->timeouts;
    if (t->min_rate && t->min_rate_window_ms < 100) {
        char kpath[CONFIG_PATH_LEN];
        config_key_path(kpath, sizeof kpath, path, "min_rate_window_ms");
        return config_fail(ld, kpath, "expected at least 100 with min_rate, got %llu",
                           (unsigned long long)t->min_rate_window_ms);
    }
    return 0;
}

/*
 * 0 < low_watermark < high_watermark <= max_output.  When a pair is out of
 * order the key the config set is blamed (the other may be a default).
 */
static int check_buffers(struct config_loader *ld, const json_t *obj, void *base,
                         const char *path)
{
    const struct config_listener *l = base;
    long long high = (long long)l->high_watermark, low = (long long)l->low_watermark;
    long long max_output = (long long)l->max_output;
    bool has_high = json_object_get(obj, "high_watermark") != NULL;
    bool has_low = json_object_get(obj, "low_watermark") != NULL;
    bool has_output = json_object_get(obj, "max_output") != NULL;
    char kpath[CONFIG_PATH_LEN];
    if (low >= high) {
        if (has_low) {
            config_key_path(kpath, sizeof kpath, path, "low_watermark");
            return config_fail(ld, kpath, "expected less than high_watermark (%lld), got %lld",
                               high, low);
        }
        config_key_path(kpath, sizeof kpath, path, "high_watermark");
        return config_fail(ld, kpath, "expected more than low_watermark (%lld), got %lld", low,
                           high);
    }
    if (high > max_output) {
        if (has_high || !has_output) {
            config_key_path(kpath, sizeof kpath, path, "high_watermark");
            return config_fail(ld, kpath, "expected at most max_output (%lld), got %lld",
                               max_output, high);
        }
        config_key_path(kpath, sizeof kpath, path, "max_output");
        return config_fail(ld, kpath, "expected at least high_watermark (%lld), got %lld",
                           high, max_output);
    }
    return 0;
}

/*
 * A listener, once its keys are read: its path for later messages, its
 * default name "<protocol>-<index>", and no name or socket (protocol,
 * address, port other than 0) of a listener before it.
 */
static int check_listener(struct config_loader *ld, const json_t *obj, void *base,
                          const char *p)
{
    struct config_listener *l = base;
    const struct config *cfg = ld->cfg;
    size_t index = (size_t)(l - cfg->listeners);
    snprintf(l->path, sizeof l->path, "%s", p);
    char path[CONFIG_PATH_LEN], got[CONFIG_GOT_LEN];
    const json_t *name = json_object_get(obj, "name");
    if (!name) {
        char def[40];
        snprintf(def, sizeof def, "%s-%zu", protocol_choices[l->protocol].name, index);
        if (!(l->name = strdup(def)))
            return config_fail_oom(ld, p);
    }
    for (size_t i = 0; i < index; i++) {
        if (strcmp(cfg->listeners[i].name, l->name) != 0)
            continue;
        config_key_path(path, sizeof path, p, "name");
        if (name)
            config_describe(name, got, sizeof got);
        else
            snprintf(got, sizeof got, "the default \"%.20s\"", l->name);
        return config_fail(ld, path, "expected a unique name, got %s (%s has it)", got,
                           cfg->listeners[i].path);
    }
    if (l->protocol == CONFIG_UDP && l->accept_mode == CONFIG_ACCEPT_WORKERS) {
        config_key_path(path, sizeof path, p, "accept");
        return config_fail(ld, path, "expected \"acceptor\" or no \"accept\" on a UDP "
                                     "listener, got \"workers\" (UDP: \"reuse_port\" gives "
                                     "each worker a socket of its own)");
    }
    /* Two listeners on one socket would split its traffic silently. */
    for (size_t i = 0; l->port != 0 && i < index; i++) {
        const struct config_listener *o = &cfg->listeners[i];
        if (o->protocol == l->protocol && o->port == l->port &&
            strcmp(o->address, l->address) == 0) {
            config_key_path(path, sizeof path, p, "port");
            return config_fail(ld, path,
                               "expected a listener of its own, got %s %s port %d again"
                               " (%s has it)", protocol_choices[l->protocol].name,
                               l->address, l->port, o->path);
        }
    }
    return 0;
}

/* The number of online CPUs, kept within the "workers" range 1..MAX_WORKERS. */
static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

/* The computed default of "workers", and "group" only with "user". */
static int check_top(struct config_loader *ld, const json_t *obj, void *base, const char *path)
{
    (void)path;
    struct config *cfg = base;
    if (!json_object_get(obj, "workers"))
        cfg->workers = online_cpus();
    if (cfg->group && !cfg->user)
        return config_fail(ld, "group", "expected together with \"user\"");
    if (cfg->syslog_socket && strlen(cfg->syslog_socket) >= 108)
        return config_fail(ld, "syslog_socket", "expected a path shorter than 108 bytes "
                                                "(a unix socket's limit)");
    return 0;
}

/* ---- the tables ------------------------------------------------------------------ */

#define FIELD(type, member) \
    .offset = offsetof(type, member), .size = sizeof(((type *)0)->member)
#define TOP(member) FIELD(struct config, member)
#define LIS(member) FIELD(struct config_listener, member)


#define CIDRS "an array of addresses or CIDR ranges (\"10.0.0.0/8\", \"::1\")"

static const struct config_key timeout_keys[] = {
    {.name = "idle_ms", .type = CONFIG_MS, .max = MAX_MS, .def = "60000",
     LIS(timeouts.idle_ms), .doc = "all idle: nothing received and nothing sent"},
    {.name = "write_ms", .type = CONFIG_MS, .max = MAX_MS, .def = "30000",
     LIS(timeouts.write_ms), .doc = "output pending and none of it written"},
    {.name = "lifetime_ms", .type = CONFIG_MS, .max = MAX_MS, .def = "0",
     LIS(timeouts.lifetime_ms), .doc = "the connection has been open this long"},
    {.name = "handshake_ms", .type = CONFIG_MS, .max = MAX_MS, .def = "0",
     LIS(timeouts.handshake_ms), .doc = "no byte at all arrived since the open"},
    {.name = "read_idle_ms", .type = CONFIG_MS, .max = MAX_MS, .def = "0",
     LIS(timeouts.read_idle_ms), .doc = "reader idle: nothing received"},
    {.name = "write_idle_ms", .type = CONFIG_MS, .max = MAX_MS, .def = "0",
     LIS(timeouts.write_idle_ms), .doc = "writer idle: nothing sent"},
    {.name = "min_rate", .type = CONFIG_INT, .min = 0, .max = MAX_BYTES, .def = "0",
     LIS(timeouts.min_rate), .doc = "bytes/s while a message is in progress; 0 = off"},
    {.name = "min_rate_window_ms", .type = CONFIG_MS, .max = MAX_MS, .def = "10000",
     LIS(timeouts.min_rate_window_ms), .doc = "the window min_rate is measured over"},
    {.name = NULL},
};
static const struct config_table timeout_table = {timeout_keys, check_timeouts};

static const struct config_key admin_keys[] = {
    {.name = "socket", .type = CONFIG_STRING, TOP(admin_socket), .set = set_log_file,
     .expect = "a file name (a non-empty string)",
     .doc = "wharfd's admin socket (unix); relative: to the config's directory"},
    {.name = "mode", .type = CONFIG_STRING, .def = "\"0600\"", TOP(admin_mode),
     .set = set_admin_mode, .expect = "permission bits in octal, as \"0600\"",
     .doc = "the admin socket's permission bits"},
    {.name = NULL},
};
static const struct config_table admin_table = {admin_keys, NULL};

static const struct config_key buffer_keys[] = {
    {.name = "high_watermark", .type = CONFIG_INT, .min = 1, .max = MAX_BYTES, .def = "65536",
     LIS(high_watermark), .doc = "stop reading above this much queued output"},
    {.name = "low_watermark", .type = CONFIG_INT, .min = 1, .max = MAX_BYTES, .def = "16384",
     LIS(low_watermark), .doc = "resume reading (and on_drain) below this"},
    {.name = "max_input", .type = CONFIG_INT, .min = 1024, .max = MAX_BYTES, .def = "1048576",
     LIS(max_input), .doc = "most unconsumed input kept for a handler"},
    {.name = "max_output", .type = CONFIG_INT, .min = 1, .max = MAX_BYTES, .def = "16777216",
     LIS(max_output), .doc = "hard cap on queued output"},
    {.name = NULL},
};
static const struct config_table buffer_table = {buffer_keys, check_buffers};

#define SNI(member) FIELD(struct config_tls_sni, member)
#define TLS(member) LIS(tls.member)
#define TLS_FILE "a file name (a non-empty string)"

static const struct config_key sni_keys[] = {
    {.name = "cert", .type = CONFIG_STRING, SNI(cert), .set = set_tls_file, .expect = TLS_FILE,
     .doc = "certificate chain (PEM), picked by the names it holds"},
    {.name = "key", .type = CONFIG_STRING, SNI(key), .set = set_tls_file, .expect = TLS_FILE,
     .doc = "its private key (PEM)"},
    {.name = "ocsp_file", .type = CONFIG_STRING, SNI(ocsp_file), .set = set_tls_file,
     .expect = TLS_FILE, .doc = "OCSP response (DER) stapled with this certificate"},
    {.name = NULL},
};
static const struct config_table sni_table = {sni_keys, check_sni};

static const struct config_key tls_keys[] = {
    {.name = "cert", .type = CONFIG_STRING, TLS(cert), .set = set_tls_file, .expect = TLS_FILE,
     .doc = "certificate chain (PEM), leaf first; relative: to the config's directory"},
    {.name = "key", .type = CONFIG_STRING, TLS(key), .set = set_tls_file, .expect = TLS_FILE,
     .doc = "its private key (PEM); warned about when others may read it"},
    {.name = "ca", .type = CONFIG_STRING, TLS(ca), .set = set_tls_file, .expect = TLS_FILE,
     .doc = "CA certificates (PEM) that client certificates are verified against"},
    {.name = "ocsp_file", .type = CONFIG_STRING, TLS(ocsp_file), .set = set_tls_file,
     .expect = TLS_FILE, .doc = "OCSP response (DER) for cert, stapled to clients that ask"},
    {.name = "verify", .type = CONFIG_CHOICE, .def = "\"none\"", .choices = verify_choices,
     TLS(verify), .doc = "client certificates: not asked, verified if sent, required"},
    {.name = "min_version", .type = CONFIG_CHOICE, .def = "\"1.2\"",
     .choices = tls_version_choices, TLS(min_version), .doc = "oldest protocol version"},
    {.name = "max_version", .type = CONFIG_CHOICE, .def = "\"1.3\"",
     .choices = tls_version_choices, TLS(max_version), .doc = "newest protocol version"},
    {.name = "ciphers", .type = CONFIG_STRING,
     .def = "\"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305\"",
     TLS(ciphers), .doc = "TLS 1.2 cipher list (OpenSSL syntax), server's order"},
    {.name = "ciphersuites", .type = CONFIG_STRING,
     .def = "\"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\"",
     TLS(ciphersuites), .doc = "TLS 1.3 cipher suites, server's order"},
    {.name = "alpn", .type = CONFIG_ARRAY, .def = "[]", TLS(alpn_json), .set = set_alpn,
     .expect = "an array of at most 16 protocol names (\"h2\", \"http/1.1\")",
     .doc = "protocols offered, most preferred first; [] = no ALPN"},
    {.name = "session_tickets", .type = CONFIG_BOOL, .def = "true", TLS(session_tickets),
     .doc = "stateless resumption (the ticket key is new at each start and reload)"},
    {.name = "session_cache", .type = CONFIG_INT, .min = 0, .max = 1000000, .def = "20480",
     TLS(session_cache), .doc = "sessions kept for resumption by id; 0 = off"},
    {.name = "session_timeout_ms", .type = CONFIG_MS, .max = MAX_MS, .def = "300000",
     TLS(session_timeout_ms), .doc = "how long a session may be resumed (whole seconds, at least 1)"},
    {.name = "sni", .type = CONFIG_LIST, .offset = offsetof(struct config_listener, tls.sni),
     .size = sizeof(struct config_tls_sni),
     .count_offset = offsetof(struct config_listener, tls.nsni), .table = &sni_table,
     .expect = "a non-empty array of {cert, key, ocsp_file} objects",
     .doc = "more certificates, picked by the client's server name"},
    {.name = NULL},
};
static const struct config_table tls_table = {tls_keys, check_tls};

static const struct config_key listener_keys[] = {
    {.name = "name", .type = CONFIG_STRING, .flags = CONFIG_COMPUTED, LIS(name),
     .doc = "unique; default \"<protocol>-<index>\""},
    {.name = "protocol", .type = CONFIG_CHOICE, .def = "\"tcp\"", .choices = protocol_choices,
     LIS(protocol), .doc = "read before the keys that depend on it"},
    {.name = "address", .type = CONFIG_STRING, .def = "\"127.0.0.1\"", LIS(address),
     .doc = "IPv4, IPv6 or host name to bind"},
    {.name = "port", .type = CONFIG_INT, .min = 0, .max = 65535, .flags = CONFIG_REQUIRED,
     LIS(port), .doc = "0: the kernel picks"},
    {.name = "backlog", .type = CONFIG_INT, .min = 1, .max = 65535, .def = "511", LIS(backlog),
     .doc = "listen(2) backlog"},
    {.name = "ipv6_only", .type = CONFIG_BOOL, .def = "false", LIS(ipv6_only),
     .doc = "IPV6_V6ONLY"},
    {.name = "reuse_address", .type = CONFIG_BOOL, .def = "true", LIS(reuse_address),
     .doc = "SO_REUSEADDR (TCP)"},
    {.name = "reuse_port", .type = CONFIG_BOOL, .def = "false", LIS(reuse_port),
     .doc = "SO_REUSEPORT"},
    {.name = "tcp_nodelay", .type = CONFIG_BOOL, .def = "true", LIS(tcp_nodelay),
     .doc = "TCP_NODELAY on accepted connections"},
    {.name = "keepalive", .type = CONFIG_BOOL, .def = "false", LIS(keepalive),
     .doc = "SO_KEEPALIVE on accepted connections"},
    {.name = "defer_accept", .type = CONFIG_BOOL, .def = "false", LIS(defer_accept),
     .doc = "TCP_DEFER_ACCEPT"},
    {.name = "accept", .type = CONFIG_CHOICE, .def = "\"acceptor\"", .choices = accept_choices,
     LIS(accept_mode), .doc = "TCP: the acceptor thread, or each worker on its own SO_REUSEPORT socket"},
    {.name = "loop_guard", .type = CONFIG_BOOL, .def = "true", LIS(loop_guard),
     .doc = "UDP: drop datagrams from this server's own UDP ports"},
    {.name = "allow_privileged_ports", .type = CONFIG_BOOL, .def = "false",
     LIS(allow_privileged_ports), .doc = "UDP: send to ports below 1024"},
    {.name = "allow_broadcast", .type = CONFIG_BOOL, .def = "false", LIS(allow_broadcast),
     .doc = "UDP: send to broadcast and multicast addresses"},
    {.name = "udp_gso", .type = CONFIG_BOOL, .def = "false", LIS(udp_gso), .set = set_udp_offload,
     .doc = "UDP: segmentation offload (UDP_SEGMENT) for runs of equal-size datagrams"},
    {.name = "udp_gro", .type = CONFIG_BOOL, .def = "false", LIS(udp_gro), .set = set_udp_offload,
     .doc = "UDP: receive offload (UDP_GRO) on the listener's sockets"},
    {.name = "access_log", .type = CONFIG_CHOICE, .def = "\"off\"",
     .choices = access_log_choices, LIS(access_log), .doc = "log level of the connection log"},
    {.name = "proxy_protocol", .type = CONFIG_CHOICE, .def = "\"off\"", .choices = proxy_choices,
     LIS(proxy_protocol), .set = set_proxy_protocol, .doc = "TCP: PROXY header required"},
    {.name = "proxy_trusted", .type = CONFIG_ARRAY, .def = "[\"127.0.0.0/8\", \"::1\"]",
     LIS(proxy_trusted_json), .set = set_proxy_trusted, .expect = CIDRS,
     .doc = "who may send a PROXY header"},
    {.name = "deny", .type = CONFIG_ARRAY, .def = "[]", LIS(deny_json), .set = set_deny,
     .expect = CIDRS, .doc = "sources refused"},
    {.name = "rate_limit", .type = CONFIG_INT, .min = 0, .max = 100000000, .def = "0",
     LIS(rate_limit), .set = set_rate_limit, .doc = "UDP: datagrams/s per source; 0 = off"},
    {.name = "conn_rate_limit", .type = CONFIG_INT, .min = 0, .max = 100000000, .def = "0",
     LIS(conn_rate_limit), .set = set_conn_rate,
     .doc = "TCP: new connections/s per source; 0 = off"},
    {.name = "conn_rate_burst", .type = CONFIG_INT, .min = 0, .max = 100000000, .def = "0",
     LIS(conn_rate_burst), .doc = "connections a source may open at once; 0 = the rate"},
    {.name = "conn_rate_table", .type = CONFIG_INT, .min = 16, .max = 1048576, .def = "4096",
     LIS(conn_rate_table), .doc = "sources tracked (32 bytes each)"},
    {.name = "access_log_file", .type = CONFIG_STRING, LIS(access_log_file),
     .set = set_access_log_file, .expect = "a file name (a non-empty string)",
     .doc = "TCP: a line per connection; relative: to the config's directory"},
    {.name = "access_log_format", .type = CONFIG_STRING,
     .def = "\"$time $remote_addr $remote_port $duration_ms $bytes_in $bytes_out "
            "$close_reason\"",
     LIS(access_log_format), .set = set_access_log_format,
     .doc = "the access_log_file line, $variables"},
    {.name = "recv_buffer", .type = CONFIG_INT, .min = 0, .max = MAX_BYTES, .def = "0",
     LIS(recv_buffer), .doc = "SO_RCVBUF; 0 = system default"},
    {.name = "send_buffer", .type = CONFIG_INT, .min = 0, .max = MAX_BYTES, .def = "0",
     LIS(send_buffer), .doc = "SO_SNDBUF; 0 = system default"},
    {.name = "timeouts", .type = CONFIG_SECTION, .table = &timeout_table,
     .doc = "per-connection timers"},
    {.name = "buffers", .type = CONFIG_SECTION, .table = &buffer_table,
     .doc = "per-connection buffer limits"},
    {.name = "tls", .type = CONFIG_SECTION, .table = &tls_table,
     .doc = "TCP: TLS on this listener (docs/operating.md)"},
    {.name = "handler", .type = CONFIG_STRING, .flags = CONFIG_REQUIRED, LIS(handler),
     .set = set_handler, .hint = "module name or path", .doc = "module name or path"},
    {.name = "options", .type = CONFIG_OBJECT, .def = "{}", LIS(options),
     .doc = "passed whole to the handler's init"},
    {.name = NULL},
};
static const struct config_table listener_table = {listener_keys, check_listener};

static const struct config_key top_keys[] = {
    {.name = "workers", .type = CONFIG_INT, .min = 1, .max = MAX_WORKERS, .flags = CONFIG_COMPUTED,
     TOP(workers), .doc = "worker threads; default the online CPUs"},
    {.name = "queue_depth", .type = CONFIG_INT, .min = 1, .max = 1000000, .def = "1024",
     TOP(queue_depth), .doc = "each worker's hand-off queue"},
    {.name = "post_queue", .type = CONFIG_INT, .min = 1, .max = 1000000, .def = "4096",
     TOP(post_queue), .doc = "soft capacity of each worker's queue of posts (hard: 4x)"},
    {.name = "max_connections", .type = CONFIG_INT, .min = 1, .max = 10000000, .def = "10000",
     TOP(max_connections), .doc = "TCP connections open at once"},
    {.name = "max_connections_per_source", .type = CONFIG_INT, .min = 0, .max = 10000000,
     .def = "0", TOP(max_connections_per_source), .doc = "per client address; 0 = no limit"},
    {.name = "evict_idle_ms", .type = CONFIG_MS, .max = MAX_MS, .def = "1000",
     TOP(evict_idle_ms),
     .doc = "at max_connections, close one idle this long to admit a new one; 0 = never"},
    {.name = "output_budget", .type = CONFIG_INT, .min = 0, .max = 1099511627776LL,
     .def = "268435456", TOP(output_budget), .doc = "output held by all connections; 0 = off"},
    {.name = "work_threads", .type = CONFIG_INT, .min = 1, .max = 1024, .def = "4",
     TOP(work_threads), .doc = "threads for handlers' blocking work"},
    {.name = "io", .type = CONFIG_CHOICE, .def = "\"epoll\"", .choices = io_choices, TOP(io),
     .doc = "event loop backend; auto: io_uring where it works, else epoll"},
    {.name = "acceptor_nice", .type = CONFIG_INT, .min = 0, .max = 19, .def = "5",
     TOP(acceptor_nice), .doc = "added to the acceptor thread's nice value"},
    {.name = "debug", .type = CONFIG_BOOL, .def = "false", TOP(debug),
     .doc = "catch handler API misuse"},
    {.name = "insecure_modules", .type = CONFIG_BOOL, .def = "false", TOP(insecure_modules),
     .doc = "as root, load modules others could have written"},
    {.name = "log", .type = CONFIG_CHOICE, .def = "\"info\"", .choices = log_choices,
     TOP(log_level), .doc = "most verbose level written"},
    {.name = "log_file", .type = CONFIG_STRING, TOP(log_file), .set = set_log_file,
     .expect = "a file name (a non-empty string)", .doc = "relative: to the config's directory"},
    {.name = "log_format", .type = CONFIG_CHOICE, .def = "\"text\"",
     .choices = log_format_choices, TOP(log_format), .doc = "the log's and access logs' lines"},
    {.name = "syslog_facility", .type = CONFIG_CHOICE, .def = "\"off\"",
     .choices = syslog_choices, TOP(syslog_facility), .doc = "send the log to syslog"},
    {.name = "syslog_socket", .type = CONFIG_STRING, .def = "\"/dev/log\"",
     TOP(syslog_socket), .doc = "the syslog daemon's unix datagram socket"},
    {.name = "module_path", .type = CONFIG_STRING, TOP(module_path), .set = set_module_path,
     .doc = "colon-separated directories, each made absolute"},
    {.name = "user", .type = CONFIG_STRING, TOP(user), .doc = "run as this user once bound"},
    {.name = "group", .type = CONFIG_STRING, TOP(group), .doc = "and this group"},
    {.name = "shutdown_timeout_ms", .type = CONFIG_MS, .max = 3600000, .def = "5000",
     TOP(shutdown_timeout_ms), .doc = "how long a graceful stop waits"},
    {.name = "admin", .type = CONFIG_SECTION, .table = &admin_table,
     .doc = "wharfd's admin socket (docs/operating.md)"},
    {.name = "listeners", .type = CONFIG_LIST, .flags = CONFIG_REQUIRED,
     .offset = offsetof(struct config, listeners), .size = sizeof(struct config_listener), .count_offset = offsetof(struct config, nlisteners),
     .table = &listener_table, .expect = "a non-empty array of listener objects",
     .doc = "at least one"},
    {.name = NULL},
};
const struct config_table config_schema = {top_keys, check_top};

/* ---- the walks --------------------------------------------------------------------- */

int config_schema_load(struct config_loader *ld, const json_t *root, struct config *cfg)
{
    char got[CONFIG_GOT_LEN];
    if (!json_is_object(root))
        return config_fail(ld, NULL, "top level: expected an object, got %s",
                           config_describe(root, got, sizeof got));
    ld->cfg = cfg;
    return load_table(ld, &config_schema, root, cfg, "");
}

static json_t *dump_table(const struct config_table *t, const void *base);

/* The value of key k as JSON (a new reference); NULL on ENOMEM. */
static json_t *dump_key(const struct config_key *k, const void *base)
{
    const void *p = cfield(base, k);
    switch (k->type) {
    case CONFIG_INT:
    case CONFIG_MS:
        return json_integer(get_int(p, k->size));
    case CONFIG_BOOL: {
        bool b;
        memcpy(&b, p, sizeof b);
        return json_boolean(b);
    }
    case CONFIG_STRING: {
        const char *s;
        memcpy(&s, p, sizeof s);
        return json_string(s);
    }
    case CONFIG_CHOICE: {
        long long value = get_int(p, k->size);
        for (const struct config_choice *c = k->choices; c->name; c++)
            if (c->value == value)
                return json_string(c->name);
        return json_null();
    }
    case CONFIG_OBJECT:
    case CONFIG_ARRAY: {
        json_t *j;
        memcpy(&j, p, sizeof j);
        return j ? json_incref(j) : k->type == CONFIG_OBJECT ? json_object() : json_array();
    }
    case CONFIG_SECTION:
        return dump_table(k->table, base);
    case CONFIG_LIST: {
        const char *elems;
        size_t n;
        memcpy(&elems, p, sizeof elems);
        memcpy(&n, (const char *)base + k->count_offset, sizeof n);
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++) {
            if (json_array_append_new(a, dump_table(k->table, elems + i * k->size)) < 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    }
    return json_null();
}

/* The keys of t as an object; strings that are not set are left out. */
static json_t *dump_table(const struct config_table *t, const void *base)
{
    json_t *o = json_object();
    for (const struct config_key *k = t->keys; o && k->name; k++) {
        /* An absent "tls" is plain TCP, and an absent list was not given. */
        if (k->table == &tls_table && !((const struct config_listener *)base)->tls.on)
            continue;
        if (k->type == CONFIG_LIST) {
            size_t n;
            memcpy(&n, (const char *)base + k->count_offset, sizeof n);
            if (n == 0)
                continue;
        }
        if (k->type == CONFIG_STRING) {
            const char *s;
            memcpy(&s, cfield(base, k), sizeof s);
            if (!s)
                continue;
        }
        if (json_object_set_new(o, k->name, dump_key(k, base)) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *config_schema_dump(const struct config *cfg)
{
    return dump_table(&config_schema, cfg);
}

static const char *const type_names[] = {
    [CONFIG_INT] = "int", [CONFIG_MS] = "ms", [CONFIG_BOOL] = "bool",
    [CONFIG_STRING] = "string", [CONFIG_CHOICE] = "choice", [CONFIG_OBJECT] = "object",
    [CONFIG_ARRAY] = "array", [CONFIG_SECTION] = "section", [CONFIG_LIST] = "list",
};

static void tsv_table(FILE *out, const struct config_table *t, const char *prefix)
{
    for (const struct config_key *k = t->keys; k->name; k++) {
        char path[CONFIG_PATH_LEN];
        snprintf(path, sizeof path, "%.*s%s", CONFIG_PATH_LEN / 2, prefix, k->name);
        fprintf(out, "%s\t%s\t", path, type_names[k->type]);
        if (k->type == CONFIG_INT || k->type == CONFIG_MS)
            fprintf(out, "%lld\t%lld\t", k->min, k->max);
        else
            fprintf(out, "\t\t");
        fprintf(out, "%s\t", k->def                         ? k->def
                             : k->flags & CONFIG_REQUIRED ? "required"
                             : k->flags & CONFIG_COMPUTED ? "computed"
                                                          : "-");
        for (const struct config_choice *c = k->choices; c && c->name; c++)
            fprintf(out, "%s%s", c == k->choices ? "" : ",", c->name);
        fprintf(out, "\n");
        if (k->table) {
            char sub[CONFIG_PATH_LEN];
            snprintf(sub, sizeof sub, "%.*s%s.", CONFIG_PATH_LEN / 2, path,
                     k->type == CONFIG_LIST ? "[]" : "");
            tsv_table(out, k->table, sub);
        }
    }
}

void config_schema_tsv(FILE *out)
{
    tsv_table(out, &config_schema, "");
}
