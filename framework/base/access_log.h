/*
 * access_log.h - per-listener access-log files (access_log_file): one line
 * per TCP connection, written when it closes, in the listener's
 * access_log_format, a text with nginx-like $variables:
 *
 *   $time         close time, UTC, ISO 8601 with ms (2026-12-02T17:40:33.123Z)
 *   $msec         close time, Unix seconds with ms (1796232033.123)
 *   $remote_addr  client address (the PROXY header's when there is one)
 *   $remote_port  client port
 *   $local_addr   address the client connected to
 *   $local_port   its port
 *   $listener     the listener's name
 *   $worker       the worker that served it
 *   $conn_id      the connection's id (as c42 in the server log)
 *   $duration_ms  open to close, ms
 *   $bytes_in     bytes received
 *   $bytes_out    bytes sent
 *   $close_reason eof, error, timeout, ... (wharf_close_reason_name)
 *   $direction    "in" (accepted) or "out" (wharf_connect)
 *   $tls_version  TLSv1.2 or TLSv1.3 on a TLS listener, else "-"
 *   $tls_sni      the server name the TLS client asked for, else "-"
 *   $$            a "$"
 *
 * With log_format "json" a line is instead one JSON object of the format's
 * variables, in order ({"remote_addr":"10.0.0.1","duration_ms":12,...});
 * the text between them is left out.
 *
 * A file is opened once however many listeners (and generations) name it,
 * and keeps one descriptor number for the life of the process: re-opening
 * (SIGUSR1) dup2()s the new file onto it, so writers take no lock.  Each
 * line is one write(2), so lines from different workers never interleave.
 */
#ifndef WHARF_ACCESS_LOG_H
#define WHARF_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* What one line may say about a connection. */
struct access_entry {
    const struct sockaddr *remote, *local; /* local may be NULL */
    const char *listener;
    int worker;
    uint64_t conn_id, duration_ms, bytes_in, bytes_out;
    const char *close_reason;
    const char *tls_version, *tls_sni; /* NULL: not TLS, no name */
    bool outbound;
};

struct access_log;

/* Whether fmt is a valid format (every $name is known).  Returns 0, or -1
 * with "unknown variable $x (known: ...)" in err. */
int access_log_check_format(const char *fmt, char *err, size_t errlen);

/* A log writing to path (appended, created 0640) in format fmt (checked
 * already), as JSON when json.  Returns NULL with a negative errno in *code
 * (open(2)'s, or -ENOMEM). */
struct access_log *access_log_open(const char *path, const char *fmt, bool json, int *code);
/* Drops the log; the file closes with its last user.  NULL is ignored. */
void access_log_close(struct access_log *a);

/* Writes e's line.  Any thread. */
void access_log_write(struct access_log *a, const struct access_entry *e);

/* Formats e's line into out (cap bytes, newline included).  Returns its
 * length. */
size_t access_log_format(const struct access_log *a, const struct access_entry *e, char *out,
                         size_t cap);

/* Re-opens every open file by its name (log rotation).  Returns 0, or the
 * first failure's negative errno (that file keeps the old one). */
int access_log_reopen_all(void);

#endif
