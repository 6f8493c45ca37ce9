/*
 * listener.h - one configured listener at run time: its handler module and
 * handler data, and its sockets (one listening socket for TCP; one
 * SO_REUSEPORT socket per worker for UDP).
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
    int fd;                              /* TCP listening socket, or -1 */
    int *udp_fds;                        /* UDP: one socket per worker, or NULL */
    unsigned nudp;
    int port;                            /* the bound port, or -1 */
    _Atomic uint64_t rejected;           /* refused by max_connections_per_source */
};

/*
 * Binds the listener's sockets: for TCP one listening socket (socket options
 * from the config, non-blocking); for UDP `nworkers` sockets sharing one port
 * with SO_REUSEPORT.  Port 0 binds an ephemeral port, stored in l->port.
 * Returns 0, or -1 with "FILE: listeners[i]: cannot bind ADDR:PORT: reason"
 * in err (nothing left open).
 */
int listener_bind(struct listener *l, unsigned nworkers, char *err, size_t errlen);

/* Closes the listening socket(s); safe to call twice. */
void listener_close_tcp(struct listener *l);
void listener_close(struct listener *l);

/* Formats an address as "1.2.3.4:80" or "[::1]:80". */
void listener_format_addr(const struct sockaddr *sa, char *out, size_t outlen);

#endif
