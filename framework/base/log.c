/*
 * log.c - the server log (see log.h).  Each line is formatted into a stack
 * buffer and written with one write(2) (to stderr, or to the log file), so
 * concurrent threads never interleave within a line, or handed to the
 * program's callback (wharf_server.h).  Control characters are escaped
 * (\xNN, and a backslash as \\), so nothing logged can start a line of its
 * own or pass for an escape.  Also implements the handler-facing
 * wharf_log.
 *
 * log_format "json" makes each line one JSON object (log_json.c); with
 * syslog_facility set, lines go to syslog (log_syslog.c) and to the file or
 * stderr only while syslog cannot be reached.
 *
 * The log file keeps one descriptor number for the life of the process:
 * opening or re-opening (log rotation, SIGUSR1 in wharfd) dup2()s the new
 * file onto it, so a thread writing meanwhile writes to the old file or the
 * new one, never to a closed or reused descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "access_log.h"
#include "log.h"
#include "log_json.h"
#include "log_syslog.h"
#include "wharf_server.h"

static _Atomic int log_level = WHARF_LOG_INFO;
static _Atomic int log_fd = STDERR_FILENO;   /* where lines go */
static int file_fd = -1;                     /* our file's descriptor, once opened */
static char *file_path;                      /* its name, for re-opening */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER; /* file_fd, file_path */

typedef void (*log_callback)(void *arg, enum wharf_log_level level, const char *line);
struct log_sink {
    log_callback fn;
    void *arg;
};
static struct log_sink *_Atomic sink; /* set once per change; old ones are kept */

static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int syslog_severity[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
static _Atomic int log_json; /* log_format "json" */

#define LOG_LINE_MAX 2048
_Static_assert(sizeof level_tags / sizeof level_tags[0] == WHARF_LOG_DEBUG + 1,
               "a tag for every enum wharf_log_level value");

void log_set_level(enum wharf_log_level level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

void log_set_format(bool json)
{
    atomic_store_explicit(&log_json, json, memory_order_relaxed);
}

enum wharf_log_level log_get_level(void)
{
    return (enum wharf_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

size_t log_escape_n(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        size_t need = ch == '\\' ? 2 : ch < 0x20 || ch == 0x7f ? 4 : 1;
        if (k + need > cap)
            break;
        if (ch == '\\') {
            out[k++] = '\\';
            out[k++] = '\\';
        } else if (need == 4) {
            out[k++] = '\\';
            out[k++] = 'x';
            out[k++] = hex[ch >> 4];
            out[k++] = hex[ch & 15];
        } else {
            out[k++] = (char)ch;
        }
    }
    return k;
}

const char *log_escape(char *out, size_t cap, const char *in)
{
    if (!cap)
        return "";
    size_t k = log_escape_n(out, cap - 1, in ? in : "", in ? strlen(in) : 0);
    out[k] = '\0';
    return out;
}

/* The text line: time, level, [listener worker conn], message; control
 * characters escaped.  Returns its length (< cap - 1). */
static size_t log_text_line(char *line, size_t cap, const char *stamp,
                            enum wharf_log_level level, const char *listener, int worker,
                            uint64_t conn, const char *msg)
{
    size_t n = (size_t)snprintf(line, cap, "%s %s ", stamp, level_tags[level]);
    if (listener || worker >= 0 || conn) {
        n += (size_t)snprintf(line + n, cap - n, "[%s", listener ? listener : "-");
        if (worker >= 0)
            n += (size_t)snprintf(line + n, cap - n, " w%d", worker);
        if (conn)
            n += (size_t)snprintf(line + n, cap - n, " c%llu", (unsigned long long)conn);
        n += (size_t)snprintf(line + n, cap - n, "] ");
    }
    if (n < cap)
        n += (size_t)snprintf(line + n, cap - n, "%s", msg);
    if (n > cap - 2)
        n = cap - 2;
    /* Control characters (a newline in a listener name, a handler's message
     * or a client's bytes) would forge or break log lines: escaped. */
    char safe[LOG_LINE_MAX * 4];
    size_t k = log_escape_n(safe, cap - 2, line, n);
    memcpy(line, safe, k);
    return k;
}

void log_vwrite(enum wharf_log_level level, const char *listener, int worker, uint64_t conn,
                const char *fmt, va_list ap)
{
    if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    if ((unsigned)level > WHARF_LOG_DEBUG)
        level = WHARF_LOG_DEBUG;
    int saved = errno;

    char stamp[40], msg[LOG_LINE_MAX], line[LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    msg[mlen] = '\0';
    if (atomic_load_explicit(&log_json, memory_order_relaxed))
        n = log_json_line(line, sizeof line - 1, stamp, level_names[level], listener, worker,
                          conn, msg, mlen);
    else
        n = log_text_line(line, sizeof line, stamp, level, listener, worker, conn, msg);

    struct log_sink *cb = atomic_load_explicit(&sink, memory_order_acquire);
    if (cb && cb->fn) {
        line[n] = '\0';
        cb->fn(cb->arg, level, line);
        errno = saved;
        return;
    }
    if (log_syslog_send(syslog_severity[level], line, n)) {
        errno = saved;
        return;
    }
    line[n++] = '\n';

    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    errno = saved;
}

void log_write(enum wharf_log_level level, const char *listener, int worker, uint64_t conn,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, listener, worker, conn, fmt, ap);
    va_end(ap);
}

void wharf_log(enum wharf_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, NULL, -1, 0, fmt, ap);
    va_end(ap);
}

char *log_file_name(void)
{
    pthread_mutex_lock(&file_lock);
    char *copy = file_path ? strdup(file_path) : NULL;
    pthread_mutex_unlock(&file_lock);
    return copy;
}

int log_current_fd(void)
{
    return atomic_load_explicit(&log_fd, memory_order_relaxed);
}

/* Sinks are never freed (a thread may still hold the one it loaded): each
 * change takes the next slot of a small static ring instead, so a slot is
 * reused only after LOG_SINKS - 1 further changes. */
#define LOG_SINKS 32
static struct log_sink sinks[LOG_SINKS];
static unsigned sinks_next;

void wharf_log_set_callback(void (*fn)(void *arg, enum wharf_log_level level, const char *line),
                            void *arg)
{
    struct log_sink *next = NULL;
    if (fn) {
        pthread_mutex_lock(&file_lock);
        next = &sinks[sinks_next++ % LOG_SINKS];
        next->fn = fn;
        next->arg = arg;
        pthread_mutex_unlock(&file_lock);
    }
    atomic_store_explicit(&sink, next, memory_order_release);
}

/* Opens path and puts it behind the log descriptor.  Caller holds file_lock.
 * Returns 0 or a negative errno. */
static int log_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return -errno;
    if (file_fd < 0) {
        file_fd = fd;
    } else {
        if (dup3(fd, file_fd, O_CLOEXEC) < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        close(fd);
    }
    atomic_store(&log_fd, file_fd);
    return 0;
}

int wharf_log_set_file(const char *path)
{
    pthread_mutex_lock(&file_lock);
    int rc = 0;
    if (!path) {
        atomic_store(&log_fd, STDERR_FILENO);
        free(file_path);
        file_path = NULL;
    } else if (file_path && strcmp(file_path, path) == 0) {
        rc = 0; /* already there */
    } else {
        char *copy = strdup(path);
        rc = copy ? log_open(path) : -ENOMEM;
        if (rc < 0) {
            free(copy);
        } else {
            free(file_path);
            file_path = copy;
        }
    }
    pthread_mutex_unlock(&file_lock);
    return rc;
}

int wharf_log_reopen(void)
{
    pthread_mutex_lock(&file_lock);
    int rc = file_path ? log_open(file_path) : 0;
    pthread_mutex_unlock(&file_lock);
    /* The listeners' access-log files and the syslog socket too: every
     * one is tried, the first failure is returned. */
    int more = access_log_reopen_all();
    if (rc == 0)
        rc = more;
    more = log_syslog_reopen();
    if (rc == 0)
        rc = more;
    return rc;
}

void wharf_log_set_level(enum wharf_log_level level)
{
    log_set_level(level);
}

bool log_due(uint64_t *last_ms, uint64_t now_ms, uint64_t every_ms)
{
    if (*last_ms != 0 && now_ms - *last_ms < every_ms)
        return false;
    *last_ms = now_ms;
    return true;
}
