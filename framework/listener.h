/*
 * listener.h - one configured listener at run time: its handler module and
 * handler data, and its sockets.  A host name is bound on every address it
 * resolves to ("localhost" on 127.0.0.1 and ::1), like nginx does: for TCP one
 * listening socket per address; for UDP one SO_REUSEPORT socket per address
 * per worker.
 */
#ifndef WHARF_LISTENER_H
#define WHARF_LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "module.h"

struct listener {
    unsigned index;                      /* position in the config's listeners */
    const struct config_listener *cfg;
    const char *file;                    /* config file name, for messages */
    struct module *module;
    const struct wharf_handler *handler; /* module->handler */
    void *data;                          /* what the handler's init stored */
    bool inited;                         /* init succeeded, fini is owed */
    int *fds;                            /* sockets, see listener_udp_fd; or NULL */
    unsigned nfds;                       /* sockets open */
    unsigned naddrs;                     /* addresses bound */
    unsigned nworkers;                   /* UDP sockets per address */
    int port;                            /* the bound port, or -1 */
    _Atomic uint64_t rejected;           /* refused by max_connections_per_source */
};

/*
 * Binds the listener's sockets on every address its "address" resolves to:
 * for TCP one listening socket per address (socket options from the config,
 * non-blocking); for UDP `nworkers` sockets per address sharing the port with
 * SO_REUSEPORT.  Port 0 binds one ephemeral port (the same on every address),
 * stored in l->port.  Returns 0, or -1 with
 * "FILE: listeners[i]: cannot bind ADDR (tcp): reason" in err (nothing left open).
 */
int listener_bind(struct listener *l, unsigned nworkers, char *err, size_t errlen);

/* TCP: the listening socket of address a (a < naddrs).  UDP: the socket of
 * address a for worker w. */
static inline int listener_fd(const struct listener *l, unsigned a, unsigned w)
{
    return l->fds[a * (l->cfg->protocol == CONFIG_UDP ? l->nworkers : 1) + w];
}

/* Closes the listening socket(s); safe to call twice. */
void listener_close_tcp(struct listener *l);
void listener_close(struct listener *l);

/* Formats an address as "1.2.3.4:80" or "[::1]:80". */
void listener_format_addr(const struct sockaddr *sa, char *out, size_t outlen);

#endif
