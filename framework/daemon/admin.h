/*
 * admin.h - wharfd's admin socket: a unix socket ("admin": {"socket",
 * "mode"} in the config) speaking a line-based text protocol in the spirit
 * of HAProxy's runtime API, served by a thread of its own (never by a
 * worker), every command audited in the log with the caller's uid and pid.
 * And `wharfd -s status`, its client.  See admin.c and docs/operating.md.
 */
#ifndef WHARF_ADMIN_H
#define WHARF_ADMIN_H

#include "wharf_server.h"

/* Serialises the wharf_server_* calls of wharfd's main thread (reload,
 * ping, upgrade, stop) with the admin thread's. */
void admin_lock(void);
void admin_unlock(void);

/* Opens the admin socket cfg names (nothing when none) and starts its
 * thread; `file` is the config file a "reload" reads.  Returns 0, or -1
 * with the reason on stderr (wharfd then does not start). */
int admin_start(wharf_server *srv, const wharf_config *cfg, const char *file);

/* Stops the thread, closes and removes the socket (idempotent). */
void admin_stop(void);

/* `wharfd -s status`: asks the admin socket named in `file` for "show info"
 * and "show listeners" and prints the replies; without an admin socket,
 * says whether the process in pidfile runs.  Returns the exit status (0:
 * running). */
int admin_status(const char *file, const char *pidfile);

#endif
