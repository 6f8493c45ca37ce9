/*
 * upgrade.h - wharfd's binary upgrade (SIGUSR2), as nginx does it: the
 * running wharfd starts the binary at the path it was started from with
 * the same arguments, handing it the listening sockets as socket
 * activation does; the new one reports readiness over a pipe; the old one
 * then stops accepting, drains and exits.  A new binary that fails to start
 * leaves the old one serving.  See upgrade.c and docs/operating.md.
 */
#ifndef WHARF_UPGRADE_H
#define WHARF_UPGRADE_H

#include <stdbool.h>

#include "wharf_server.h"

/* Remembers how this wharfd was started (its binary's path, made absolute,
 * and argv) and, in a wharfd started by an upgrade, takes the readiness
 * pipe (WHARF_UPGRADE_FD) out of the environment.  Call first in main,
 * before anything reads or clears NOTIFY_SOCKET. */
void upgrade_init(int argc, char **argv);

/* In a wharfd started by an upgrade: tells the old one this one serves
 * (once; later calls and other processes do nothing). */
void upgrade_ready(void);

/*
 * SIGUSR2 in the old wharfd: starts the new binary with srv's listening
 * sockets and waits (at most UPGRADE_WAIT_MS) until it reports that it
 * serves.  Returns true once it does (this process should then hand over
 * and stop: upgrade_hand_over); false, with the reason logged, when it
 * could not start, exited or took too long (it is killed): this one keeps
 * serving, and its pid file (pidfile, may be NULL) is written again.
 */
bool upgrade_run(wharf_server *srv, const char *pidfile);

/* After upgrade_run succeeded: stops accepting on every listener and lets
 * the connections handed to the workers meanwhile get their first request
 * in, before the graceful stop. */
void upgrade_hand_over(wharf_server *srv);

/* Whether this wharfd was started by an upgrade and has not reported
 * ready yet (it may take over the old one's admin socket). */
bool upgrade_starting(void);

/* The old wharfd's pid file descriptor (open, locked), for the new one to
 * keep: passed at exec as WHARF_PIDFILE_FD.  -1 when there is none. */
void upgrade_set_pidfile(int fd);
/* In a wharfd started by an upgrade: the pid file descriptor the old one
 * passed (close-on-exec now), or -1. */
int upgrade_pidfile_fd(void);

/* Whether this process handed its sockets over (its pid file is the new
 * one's now: leave it). */
bool upgrade_handed_over(void);

#endif
