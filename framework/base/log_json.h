/*
 * log_json.h - JSON text for log lines (log_format "json"): a string value
 * escaped so that any bytes make valid JSON (quotes, backslashes and
 * control characters escaped, invalid UTF-8 replaced by U+FFFD), and the
 * server log's line as one JSON object.
 */
#ifndef WHARF_LOG_JSON_H
#define WHARF_LOG_JSON_H

#include <stddef.h>
#include <stdint.h>

/*
 * Appends s[0..n) as a quoted JSON string at out[*len], never past cap - 1
 * bytes (a string cut short is cut between characters and still closed
 * with its quote).  cap must be >= 2.  *len is advanced.
 */
void log_json_string(char *out, size_t cap, size_t *len, const char *s, size_t n);

/*
 * Writes one server-log line as a JSON object into out (cap bytes, cap >=
 * 1024), no newline: {"time":..., "level":..., "listener":..., "worker":N,
 * "conn":N, "msg":...}; listener NULL, worker < 0 and conn 0 are left out.
 * Returns the length written.
 */
size_t log_json_line(char *out, size_t cap, const char *time, const char *level,
                     const char *listener, int worker, uint64_t conn, const char *msg,
                     size_t msglen);

#endif
