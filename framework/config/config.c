/*
 * config.c - loads the server's JSON configuration (config.h) and validates
 * all of it before anything starts; the embedding API's configuration
 * object (wharf_config_*, wharf_server.h).
 *
 * A file is read whole (at most 1 MiB, regular files only), parsed with
 * jansson (duplicate keys rejected) and handed to config_schema_load, which
 * walks the schema table (config_schema.c): unknown keys, types, ranges,
 * defaults.  The first problem stops the load and becomes a wharf_error:
 * a code (a negative errno), the file, the JSON path and one line of text:
 *
 *   FILE: PATH: expected WHAT, got VALUE
 *   FILE: PATH: missing, expected WHAT
 *   FILE: PATH: unknown key
 *   FILE:LINE:COLUMN: syntax error: JANSSON'S TEXT
 *   FILE: cannot read: REASON
 *
 * All of these come from one formatter, report(); the functions that take a
 * char buffer copy its text.  docs/config.md lists every key.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_include.h"
#include "config_schema.h"
#include "wharf_server.h"

#define GOT_LEN 40                /* at most this much of an offending value is shown */
#define CONFIG_MAX_FILE (1 << 20) /* a config file: 1 MiB */
#define CONFIG_MAX_FILE_TEXT "1 MiB"

_Static_assert(GOT_LEN + 8 <= CONFIG_GOT_LEN, "room for a described value");

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
 * The one formatter: fills ld->err with `code`, the file, the path (NULL:
 * none) and the text "FILE[:WHERE]: [PATH: ]MESSAGE", where WHERE is a
 * syntax error's "LINE:COLUMN".  Returns -1.
 */
static int vreport(struct config_loader *ld, int code, const char *where, const char *path,
                   const char *fmt, va_list ap)
{
    wharf_error *e = ld->err;
    e->code = code;
    snprintf(e->file, sizeof e->file, "%s", ld->file);
    snprintf(e->path, sizeof e->path, "%s", path ? path : "");
    int n = snprintf(e->text, sizeof e->text, "%s%s%s: %s%s", ld->file, where ? ":" : "",
                     where ? where : "", path ? path : "", path ? ": " : "");
    if (n >= 0 && (size_t)n < sizeof e->text)
        vsnprintf(e->text + n, sizeof e->text - (size_t)n, fmt, ap);
    one_line(e->file);
    one_line(e->path);
    one_line(e->text);
    return -1;
}

static int report(struct config_loader *ld, int code, const char *where, const char *path,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int report(struct config_loader *ld, int code, const char *where, const char *path,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(ld, code, where, path, fmt, ap);
    va_end(ap);
    return -1;
}

int config_fail(struct config_loader *ld, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(ld, -EINVAL, NULL, path, fmt, ap);
    va_end(ap);
    return -1;
}

int config_fail_oom(struct config_loader *ld, const char *path)
{
    return report(ld, -ENOMEM, NULL, path, "out of memory");
}

/*
 * Describes a JSON value for "got ...": objects and arrays by their type,
 * anything else as compact JSON (ASCII-escaped, so it is one line), cut to
 * GOT_LEN characters with "..." when longer.
 */
const char *config_describe(const json_t *v, char *buf, size_t len)
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

int config_fail_got(struct config_loader *ld, const char *path, const char *expected,
                    const json_t *v)
{
    char got[CONFIG_GOT_LEN];
    return config_fail(ld, path, "expected %s, got %s", expected,
                       config_describe(v, got, sizeof got));
}

/*
 * Builds "PARENT.KEY", or "KEY" at the top level (parent "").  Parents are
 * short ("listeners[12].buffers"); bounding them to half the buffer leaves
 * room for the key and keeps gcc's truncation warning quiet.  A longer path
 * is cut short.
 */
void config_key_path(char *buf, size_t len, const char *parent, const char *key)
{
    if (*parent)
        snprintf(buf, len, "%.*s.%s", CONFIG_PATH_LEN / 2, parent, key);
    else
        snprintf(buf, len, "%s", key);
}

/* Copies the message into a caller's buffer (the char *err API); err may be
 * NULL.  Returns -1. */
static int copy_text(const wharf_error *e, char *err, size_t errlen)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", e->text);
    return -1;
}

/* ---- loading ------------------------------------------------------------------ */

/*
 * Validates the parsed document `root` into a new config in *out.  `name`
 * is the file name for messages, `base_file` the file relative paths start
 * from (NULL: the current directory).  Returns 0, or -1 with *err filled in.
 */
static int validate(const json_t *root, const char *name, const char *base_file,
                    struct config **out, wharf_error *err)
{
    struct config_loader ld = { .file = name, .base_file = base_file, .err = err };
    *out = NULL;
    struct config *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->file = strdup(name))) {
        free(cfg);
        return config_fail_oom(&ld, NULL);
    }
    if (config_schema_load(&ld, root, cfg) < 0) {
        config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

/* Parses JSON text; NULL after reporting a syntax error with line and column. */
static json_t *parse(const char *text, size_t len, const char *name, wharf_error *err)
{
    struct config_loader ld = { .file = name, .err = err };
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        char where[32];
        snprintf(where, sizeof where, "%d:%d", je.line, je.column);
        report(&ld, -EINVAL, je.line > 0 ? where : NULL, NULL, "syntax error: %s", je.text);
    }
    return root;
}

/* validate() after the environment and the includes are merged into root
 * (config_include.c); an error in an included listener names its file. */
static int expand_validate(json_t *root, const char *name, const char *base_file,
                           struct config **out, wharf_error *err)
{
    struct config_origins origins;
    *out = NULL;
    int rc = config_include_expand(root, name, base_file, &origins, err);
    if (rc == 0 && (rc = validate(root, name, base_file, out, err)) < 0)
        config_include_blame(&origins, err);
    config_origins_free(&origins);
    return rc;
}

static int load(const char *text, size_t len, const char *name, const char *base_file,
                struct config **out, wharf_error *err)
{
    *out = NULL;
    json_t *root = parse(text, len, name, err);
    if (!root)
        return -1;
    int rc = expand_validate(root, name, base_file, out, err);
    json_decref(root);
    return rc;
}

/* ---- files ------------------------------------------------------------------ */
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


/* Reads all of `file` into *text (*len bytes; free() it).  Returns 0, or -1
 * with "FILE: cannot read: WHY" in *err and the errno as its code. */
static int read_file(const char *file, char **text, size_t *len, wharf_error *err)
{
    struct config_loader ld = { .file = file, .err = err };
    const char *why;
    *text = read_all(file, len, &why);
    if (*text)
        return 0;
    int code = errno ? -errno : -EIO;
    return report(&ld, code, NULL, NULL, "cannot read: %s", why ? why : strerror(-code));
}

int config_load_file(const char *file, struct config **out, char *err, size_t errlen)
{
    wharf_error e;
    size_t len = 0;
    char *text;
    *out = NULL;
    if (read_file(file, &text, &len, &e) < 0)
        return copy_text(&e, err, errlen);
    int rc = load(text, len, file, file, out, &e);
    free(text);
    return rc < 0 ? copy_text(&e, err, errlen) : 0;
}

int config_load_string(const char *text, const char *name, struct config **out,
                       char *err, size_t errlen)
{
    wharf_error e;
    if (load(text, strlen(text), name ? name : "<string>", NULL, out, &e) < 0)
        return copy_text(&e, err, errlen);
    return 0;
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
        free(l->access_log_file);
        free(l->access_log_format);
        free(l->proxy_trusted);
        free(l->deny);
        json_decref(l->deny_json);
        json_decref(l->proxy_trusted_json);
        json_decref(l->options);
        free(l->tls.cert);
        free(l->tls.key);
        free(l->tls.ca);
        free(l->tls.ocsp_file);
        free(l->tls.ciphers);
        free(l->tls.ciphersuites);
        json_decref(l->tls.alpn_json);
        for (size_t j = 0; j < l->tls.nsni; j++) {
            free(l->tls.sni[j].cert);
            free(l->tls.sni[j].key);
            free(l->tls.sni[j].ocsp_file);
        }
        free(l->tls.sni);
    }
    free(cfg->listeners);
    free(cfg->module_path);
    free(cfg->log_file);
    free(cfg->syslog_socket);
    free(cfg->user);
    free(cfg->group);
    free(cfg->admin_socket);
    free(cfg->admin_mode);
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
    wharf_error e;
    if (validate(wc->root, wc->name, wc->base_file, out, &e) < 0)
        return copy_text(&e, err, errlen);
    return 0;
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
        free(c->base_file);
        free(c);
        return NULL;
    }
    return c;
}

/* Parses, validates, and wraps; takes nothing over.  Returns 0 or the
 * negative errno of *err. */
static int wharf_config_load(const char *text, size_t len, const char *name,
                             const char *base_file, wharf_config **out, wharf_error *err)
{
    *out = NULL;
    json_t *root = parse(text, len, name, err);
    if (!root)
        return err->code;
    struct config *cfg;
    if (expand_validate(root, name, base_file, &cfg, err) < 0) {
        json_decref(root);
        return err->code;
    }
    config_free(cfg);
    if (!(*out = wharf_config_make(root, name, base_file))) {
        json_decref(root);
        struct config_loader ld = { .file = name, .err = err };
        config_fail_oom(&ld, NULL);
        return err->code;
    }
    return 0;
}

/* An error struct for callers that passed none, cleared for those that did. */
static wharf_error *clear_error(wharf_error *err, wharf_error *spare)
{
    err = err ? err : spare;
    memset(err, 0, sizeof *err);
    return err;
}

int wharf_config_load_file(const char *file, wharf_config **out, wharf_error *err)
{
    wharf_error spare;
    err = clear_error(err, &spare);
    size_t len = 0;
    char *text;
    *out = NULL;
    if (read_file(file, &text, &len, err) < 0)
        return err->code;
    int rc = wharf_config_load(text, len, file, file, out, err);
    free(text);
    return rc;
}

int wharf_config_load_json(const char *text, const char *name, wharf_config **out,
                           wharf_error *err)
{
    wharf_error spare;
    err = clear_error(err, &spare);
    return wharf_config_load(text, strlen(text), name ? name : "<string>", NULL, out, err);
}

int wharf_config_from_file(const char *file, wharf_config **out, char *err, size_t errlen)
{
    wharf_error e;
    return wharf_config_load_file(file, out, &e) < 0 ? copy_text(&e, err, errlen) : 0;
}

int wharf_config_from_json(const char *text, const char *name, wharf_config **out, char *err,
                           size_t errlen)
{
    wharf_error e;
    return wharf_config_load_json(text, name, out, &e) < 0 ? copy_text(&e, err, errlen) : 0;
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

/* Steps into array `key` of cur at the index *pp points to ("[N]"), made if
 * missing; an object is appended at index == size.  At the end of the path
 * the value is stored there.  Returns 1 to go on from *next, 0 when
 * stored, -1 on failure (reported). */
static int config_set_index(struct config_loader *ld, const char *path, const char **pp,
                            json_t *cur, const char *key, json_t **next, json_t *value)
{
    char *end;
    unsigned long idx = strtoul(*pp + 1, &end, 10);
    if (end == *pp + 1 || *end != ']')
        return config_fail(ld, path, "malformed array index");
    *pp = end + 1;
    json_t *arr = *next;
    if (!arr) {
        arr = json_array();
        if (!arr || json_object_set_new(cur, key, arr) < 0)
            return config_fail_oom(ld, path);
    }
    if (!json_is_array(arr))
        return config_fail(ld, path, "\"%s\" is not an array", key);
    size_t size = json_array_size(arr);
    if (idx > size)
        return config_fail(ld, path, "index %lu past the end (%zu elements)", idx, size);
    if (**pp == '\0') {
        int r = idx == size ? json_array_append(arr, value) : json_array_set(arr, idx, value);
        return r == 0 ? 0 : config_fail_oom(ld, path);
    }
    if (idx == size) {
        json_t *obj = json_object();
        if (!obj || json_array_append_new(arr, obj) < 0)
            return config_fail_oom(ld, path);
    }
    *next = json_array_get(arr, idx);
    return 1;
}

/* One step of the path at *pp ("key" or "key[N]", then "." or the end)
 * from *cur.  Returns 1 to go on from the new *cur, 0 when the value was
 * stored, -1 on failure (reported). */
static int config_set_step(struct config_loader *ld, const char *path, const char **pp,
                           json_t **cur, json_t *value)
{
    const char *p = *pp;
    size_t klen = strcspn(p, ".[");
    if (klen == 0 || klen >= CONFIG_PATH_LEN)
        return config_fail(ld, path, "malformed path");
    char key[CONFIG_PATH_LEN];
    memcpy(key, p, klen);
    key[klen] = '\0';
    p += klen;
    if (!json_is_object(*cur))
        return config_fail(ld, path, "\"%s\" is not inside an object", key);
    if (*p == '\0')
        return json_object_set(*cur, key, value) == 0 ? 0 : config_fail_oom(ld, path);
    json_t *next = json_object_get(*cur, key);
    if (*p == '[') {
        int rc = config_set_index(ld, path, &p, *cur, key, &next, value);
        if (rc <= 0)
            return rc;
    } else if (!next) {
        next = json_object();
        if (!next || json_object_set_new(*cur, key, next) < 0)
            return config_fail_oom(ld, path);
    }
    if (*p == '.')
        p++;
    else if (*p)
        return config_fail(ld, path, "malformed path");
    *pp = p;
    *cur = next;
    return 1;
}

/*
 * Walks the path one step ("key" or "key[N]") at a time, creating objects
 * (and an object appended at index == size) on the way, and stores the
 * value at the last step.
 */
int wharf_config_set(wharf_config *cfg, const char *path, const char *json, char *err,
                     size_t errlen)
{
    wharf_error e;
    struct config_loader ld = { .file = cfg->name, .err = &e };
    json_error_t je;
    json_t *value = json_loads(json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!value) {
        config_fail(&ld, path, "not a JSON value: %s", je.text);
        return copy_text(&e, err, errlen);
    }
    /* Changes a copy, kept only when the whole path worked. */
    json_t *copy = json_deep_copy(cfg->root);
    if (!copy) {
        json_decref(value);
        config_fail_oom(&ld, path);
        return copy_text(&e, err, errlen);
    }
    json_t *cur = copy;
    const char *p = path;
    int rc = 1;
    while (rc == 1 && *p)
        rc = config_set_step(&ld, path, &p, &cur, value);
    if (rc == 1)
        rc = config_fail(&ld, path, "malformed path");
    json_decref(value);
    if (rc == 0) {
        json_decref(cfg->root);
        cfg->root = copy;
    } else {
        json_decref(copy);
        copy_text(&e, err, errlen);
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

char *wharf_config_dump(const wharf_config *wc, char *err, size_t errlen)
{
    struct config *cfg;
    if (config_from_public(wc, &cfg, err, errlen) < 0)
        return NULL;
    json_t *j = config_schema_dump(cfg);
    config_free(cfg);
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!text && err && errlen)
        snprintf(err, errlen, "%s: out of memory", wc->name);
    return text;
}
