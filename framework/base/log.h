/*
 * log.h - the server log: one line per call to stderr, written with a single
 * write(2) so lines from different threads never interleave.
 *
 * Format: 2026-11-24T11:45:14.123Z INFO  [listener w1 c42] message
 */
#ifndef WHARF_LOG_H
#define WHARF_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include "wharf.h"

/* Sets the most verbose level written (default WHARF_LOG_INFO). */
void log_set_level(enum wharf_log_level level);
enum wharf_log_level log_get_level(void);
/* log_format: false writes the text line below, true one JSON object a
 * line (log_json.h). */
void log_set_format(bool json);

/* Writes one line.  listener may be NULL; worker < 0 and conn == 0 are omitted. */
void log_write(enum wharf_log_level level, const char *listener, int worker, uint64_t conn,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void log_vwrite(enum wharf_log_level level, const char *listener, int worker, uint64_t conn,
                const char *fmt, va_list ap);

/* Copies in[0..len) to out (at most cap bytes) with control characters as
 * \xNN and a backslash as \\ (what every log line gets); stops before an
 * escape that would not fit.  Returns the bytes written. */
size_t log_escape_n(char *out, size_t cap, const char *in, size_t len);
/* The same for a string, NUL-terminated in out[cap]; returns out. */
const char *log_escape(char *out, size_t cap, const char *in);

/* Rate-limits a repeated warning: whether one is due at now_ms when the last
 * was written at *last_ms (0: never) and at most one goes out per every_ms;
 * when it is, records now_ms in *last_ms. */
bool log_due(uint64_t *last_ms, uint64_t now_ms, uint64_t every_ms);

/* The every_ms of log_due.  A condition that lasts (accepting paused, out
 * of descriptors, the output budget, the UDP loop guard and rate limit) is
 * told at most every LOG_RATE_LIMIT_MS; a refused peer (its source at
 * max_connections_per_source, a bad PROXY header) at most every
 * LOG_RATE_LIMIT_PEER_MS, so that a new offender shows soon.  Messages that
 * state the period print it from these. */
#define LOG_RATE_LIMIT_MS 10000
#define LOG_RATE_LIMIT_PEER_MS 1000

/* The log file's name (malloc'ed), or NULL when the log goes to stderr. */
char *log_file_name(void);
/* The descriptor lines are written to now (async-signal-safe: an atomic read). */
int log_current_fd(void);

#define log_error(...) log_write(WHARF_LOG_ERROR, NULL, -1, 0, __VA_ARGS__)
#define log_warn(...)  log_write(WHARF_LOG_WARN, NULL, -1, 0, __VA_ARGS__)
#define log_info(...)  log_write(WHARF_LOG_INFO, NULL, -1, 0, __VA_ARGS__)
#define log_debug(...) log_write(WHARF_LOG_DEBUG, NULL, -1, 0, __VA_ARGS__)

#endif
