/*
 * log.c - the server log (see log.h).  Each line is formatted into a stack
 * buffer and written to stderr with one write(2), so concurrent threads never
 * interleave within a line.  Also implements the handler-facing wharf_log.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static _Atomic int log_level = WHARF_LOG_INFO;

static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

void log_set_level(enum wharf_log_level level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum wharf_log_level log_get_level(void)
{
    return (enum wharf_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

void log_vwrite(enum wharf_log_level level, const char *listener, int worker, uint64_t conn,
                const char *fmt, va_list ap)
{
    if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    if ((unsigned)level > WHARF_LOG_DEBUG)
        level = WHARF_LOG_DEBUG;

    char line[2048];
    size_t n = 0;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n += strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
                          level_tags[level]);
    if (listener || worker >= 0 || conn) {
        n += (size_t)snprintf(line + n, sizeof line - n, "[%s", listener ? listener : "-");
        if (worker >= 0)
            n += (size_t)snprintf(line + n, sizeof line - n, " w%d", worker);
        if (conn)
            n += (size_t)snprintf(line + n, sizeof line - n, " c%llu", (unsigned long long)conn);
        n += (size_t)snprintf(line + n, sizeof line - n, "] ");
    }
    if (n < sizeof line) {
        int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (m > 0)
            n += (size_t)m;
    }
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';

    int saved = errno;
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
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
