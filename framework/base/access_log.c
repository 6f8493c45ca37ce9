/*
 * access_log.c - per-listener access-log files (see access_log.h).  Open
 * files are kept in one list by name, with a count of their users; the list
 * has a lock, the writes do not need it.
 */
#include "access_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log_json.h"

#define ACCESS_LINE_MAX 2048

enum access_var {
    AV_TIME, AV_MSEC, AV_REMOTE_ADDR, AV_REMOTE_PORT, AV_LOCAL_ADDR, AV_LOCAL_PORT,
    AV_LISTENER, AV_WORKER, AV_CONN_ID, AV_DURATION_MS, AV_BYTES_IN, AV_BYTES_OUT,
    AV_CLOSE_REASON, AV_DIRECTION, AV_TLS_VERSION, AV_TLS_SNI, AV_COUNT
};

/* Names, longest first where one is a prefix of another (none is today). */
static const char *const var_names[AV_COUNT] = {
    "time", "msec", "remote_addr", "remote_port", "local_addr", "local_port", "listener",
    "worker", "conn_id", "duration_ms", "bytes_in", "bytes_out", "close_reason", "direction",
    "tls_version", "tls_sni",
};

struct access_file {
    struct access_file *next;
    char *path;
    int fd;
    unsigned users;
};

struct access_log {
    struct access_file *file;
    char *fmt;
    bool json;
};

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static struct access_file *files;

/* The variable whose name starts at s (after '$'), its name's length in
 * *len; -1 when none. */
static int var_at(const char *s, size_t *len)
{
    size_t n = 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_')
        n++;
    for (int v = 0; v < AV_COUNT; v++)
        if (strlen(var_names[v]) == n && strncmp(s, var_names[v], n) == 0) {
            *len = n;
            return v;
        }
    return -1;
}

int access_log_check_format(const char *fmt, char *err, size_t errlen)
{
    for (const char *p = strchr(fmt, '$'); p; p = strchr(p, '$')) {
        size_t len;
        if (p[1] == '$') {
            p += 2;
            continue;
        }
        if (var_at(p + 1, &len) < 0) {
            size_t n = 0;
            while (p[1 + n] && n < 32 && p[1 + n] != ' ' && p[1 + n] != '$')
                n++;
            snprintf(err, errlen, "unknown variable $%.*s (known: $time, $msec, $remote_addr, "
                     "$remote_port, $local_addr, $local_port, $listener, $worker, $conn_id, "
                     "$duration_ms, $bytes_in, $bytes_out, $close_reason, $direction, "
                     "$tls_version, $tls_sni, $$)",
                     (int)n, p + 1);
            return -1;
        }
        p += 1 + len;
    }
    return 0;
}

/* ---- the files ------------------------------------------------------------- */

struct access_log *access_log_open(const char *path, const char *fmt, bool json, int *code)
{
    struct access_log *a = calloc(1, sizeof *a);
    if (!a || !(a->fmt = strdup(fmt))) {
        free(a);
        *code = -ENOMEM;
        return NULL;
    }
    a->json = json;
    pthread_mutex_lock(&files_lock);
    struct access_file *f = files;
    while (f && strcmp(f->path, path) != 0)
        f = f->next;
    if (!f && (f = calloc(1, sizeof *f)) != NULL) {
        f->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        *code = f->fd < 0 ? -errno : 0;
        if (f->fd < 0 || !(f->path = strdup(path))) {
            if (f->fd >= 0)
                close(f->fd), *code = -ENOMEM;
            free(f);
            f = NULL;
        } else {
            f->next = files;
            files = f;
        }
    } else if (!f) {
        *code = -ENOMEM;
    }
    if (f)
        f->users++;
    pthread_mutex_unlock(&files_lock);
    if (!f) {
        free(a->fmt);
        free(a);
        return NULL;
    }
    a->file = f;
    return a;
}

void access_log_close(struct access_log *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&files_lock);
    struct access_file *f = a->file;
    if (--f->users == 0) {
        struct access_file **pp = &files;
        while (*pp != f)
            pp = &(*pp)->next;
        *pp = f->next;
        close(f->fd);
        free(f->path);
        free(f);
    }
    pthread_mutex_unlock(&files_lock);
    free(a->fmt);
    free(a);
}

int access_log_reopen_all(void)
{
    int rc = 0;
    pthread_mutex_lock(&files_lock);
    for (struct access_file *f = files; f; f = f->next) {
        int fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0 || dup3(fd, f->fd, O_CLOEXEC) < 0) {
            if (rc == 0)
                rc = -errno;
        }
        if (fd >= 0)
            close(fd);
    }
    pthread_mutex_unlock(&files_lock);
    return rc;
}

/* ---- the lines ------------------------------------------------------------- */

/* The address (no port) and port of sa; "-" and 0 when unknown. */
static void addr_parts(const struct sockaddr *sa, char *addr, size_t len, unsigned *port)
{
    *port = 0;
    snprintf(addr, len, "-");
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)len);
        *port = ntohs(in->sin_port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)len);
        *port = ntohs(in6->sin6_port);
    }
}

/* Variable v's value as text into buf; returns whether it is a number. */
static bool var_value(int v, const struct access_entry *e, char *buf, size_t len)
{
    unsigned port;
    struct timespec ts;
    struct tm tm;
    switch (v) {
    case AV_TIME:
    case AV_MSEC: {
        clock_gettime(CLOCK_REALTIME, &ts);
        if (v == AV_MSEC) {
            snprintf(buf, len, "%lld.%03ld", (long long)ts.tv_sec, ts.tv_nsec / 1000000L);
            return true;
        }
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
        return false;
    }
    case AV_REMOTE_ADDR:
    case AV_REMOTE_PORT:
    case AV_LOCAL_ADDR:
    case AV_LOCAL_PORT:
        addr_parts(v <= AV_REMOTE_PORT ? e->remote : e->local, buf, len, &port);
        if (v == AV_REMOTE_PORT || v == AV_LOCAL_PORT) {
            snprintf(buf, len, "%u", port);
            return true;
        }
        return false;
    case AV_LISTENER:
        snprintf(buf, len, "%s", e->listener ? e->listener : "-");
        return false;
    case AV_WORKER:
        snprintf(buf, len, "%d", e->worker);
        return true;
    case AV_CONN_ID:
    case AV_DURATION_MS:
    case AV_BYTES_IN:
    case AV_BYTES_OUT: {
        uint64_t n = v == AV_CONN_ID ? e->conn_id : v == AV_DURATION_MS ? e->duration_ms
                     : v == AV_BYTES_IN ? e->bytes_in : e->bytes_out;
        snprintf(buf, len, "%llu", (unsigned long long)n);
        return true;
    }
    case AV_CLOSE_REASON:
        snprintf(buf, len, "%s", e->close_reason ? e->close_reason : "-");
        return false;
    case AV_TLS_VERSION:
    case AV_TLS_SNI: {
        const char *t = v == AV_TLS_VERSION ? e->tls_version : e->tls_sni;
        snprintf(buf, len, "%s", t && *t ? t : "-");
        return false;
    }
    default:
        snprintf(buf, len, "%s", e->outbound ? "out" : "in");
        return false;
    }
}

/* Appends text to out, control characters and backslashes escaped as the
 * server log does (\xNN, \\), bounded by cap. */
static void put_text(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len && *n + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = '\\';
        } else if (ch < 0x20 || ch == 0x7f) {
            out[(*n)++] = '\\';
            out[(*n)++] = 'x';
            out[(*n)++] = hex[ch >> 4];
            out[(*n)++] = hex[ch & 15];
        } else {
            out[(*n)++] = (char)ch;
        }
    }
}

size_t access_log_format(const struct access_log *a, const struct access_entry *e, char *out,
                         size_t cap)
{
    size_t n = 0, len;
    char val[256];
    const size_t room = cap - 2; /* the closing brace (JSON) and the newline */
    if (a->json)
        out[n++] = '{';
    for (const char *p = a->fmt; *p;) {
        int v = p[0] == '$' && p[1] != '$' ? var_at(p + 1, &len) : -1;
        if (v < 0) {
            size_t lit = p[0] == '$' ? 1 : strcspn(p, "$");
            if (!a->json)
                put_text(out, room, &n, p, lit);
            p += lit + (p[0] == '$' ? 1 : 0); /* "$$" is one "$" */
            continue;
        }
        p += 1 + len;
        bool number = var_value(v, e, val, sizeof val);
        if (!a->json) {
            put_text(out, room, &n, val, strlen(val));
            continue;
        }
        /* "name":value, only when all of it fits */
        char field[sizeof val * 6 + 40];
        size_t f = (size_t)snprintf(field, sizeof field, "%s\"%s\":", n > 1 ? "," : "",
                                    var_names[v]);
        if (number)
            f += (size_t)snprintf(field + f, sizeof field - f, "%s", val);
        else
            log_json_string(field, sizeof field, &f, val, strlen(val));
        if (n + f < room) {
            memcpy(out + n, field, f);
            n += f;
        }
    }
    if (a->json)
        out[n++] = '}';
    out[n++] = '\n';
    return n;
}

void access_log_write(struct access_log *a, const struct access_entry *e)
{
    char line[ACCESS_LINE_MAX];
    size_t n = access_log_format(a, e, line, sizeof line);
    int saved = errno;
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(a->file->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    errno = saved;
}
