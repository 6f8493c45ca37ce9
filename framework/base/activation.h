/*
 * activation.h - sockets handed over by systemd (socket activation,
 * sd_listen_fds(3)'s protocol without libsystemd): LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES describe descriptors 3, 4, ... that are already bound (and,
 * for TCP, listening).  A listener takes the one named after it, or else
 * the one bound to its address and port, instead of binding its own.
 */
#ifndef WHARF_ACTIVATION_H
#define WHARF_ACTIVATION_H

#include <stdbool.h>
#include <sys/socket.h>

/* Reads the environment once (later calls do nothing) and clears it, so
 * children do not inherit it.  Returns how many sockets were passed. */
int activation_load(void);

/*
 * Takes the passed socket for a listener called `name` with this socket type
 * (SOCK_STREAM / SOCK_DGRAM): the one named `name` (name NULL: none), or
 * else one bound to `addr` (port included; addr NULL: none), whatever its
 * name (systemd names unnamed ones after their unit).  Returns the descriptor (now the
 * caller's), or -1 when there is none.
 */
int activation_take(const char *name, int type, const struct sockaddr *addr, socklen_t addrlen);

/* Passed sockets no listener took (logged once at start). */
int activation_unused(void);

#endif
