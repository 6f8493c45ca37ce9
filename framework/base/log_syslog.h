/*
 * log_syslog.h - the server log sent to syslog (syslog_facility): one
 * datagram per line on a unix socket (syslog_socket, /dev/log by default,
 * where journald and rsyslog listen), in the traditional format
 * "<PRI>Mmm dd hh:mm:ss TAG[PID]: line".  syslog(3) is not used because it
 * cannot be pointed at another socket (tests, chroots) and reports nothing.
 *
 * The socket keeps one descriptor number for the life of the process (a
 * reconnect dup2()s the new socket onto it), so threads send without a lock.
 */
#ifndef WHARF_LOG_SYSLOG_H
#define WHARF_LOG_SYSLOG_H

#include <stdbool.h>
#include <stddef.h>

/* Sends to the unix datagram socket `path` with `facility` (a LOG_* value
 * of syslog.h); facility < 0 stops sending.  Returns 0, or a negative errno
 * when the socket cannot be reached (syslog stays on: each line tries again
 * at most once a second, and falls back to the file or stderr meanwhile). */
int log_syslog_set(const char *path, int facility);

/* Sends one line (no newline) at a syslog severity (LOG_ERR ... LOG_DEBUG).
 * Returns false when syslog is off or the line could not be sent. */
bool log_syslog_send(int severity, const char *line, size_t n);

/* Connects again (SIGUSR1: the syslog daemon restarted).  Returns 0 or a
 * negative errno; 0 when syslog is off. */
int log_syslog_reopen(void);

#endif
