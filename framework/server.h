/*
 * server.h - a running wharf server: listeners, handler modules, the worker
 * pool and the acceptor thread.  wharfd and the test suites drive it.
 *
 * Life cycle:  server_new (load modules, call each handler's init; binds
 * nothing) -> server_start (bind, start workers and wait until every one is
 * ready, start the acceptor) -> server_stop (graceful) -> server_free.
 * These four calls are made from one thread.
 */
#ifndef WHARF_SERVER_H
#define WHARF_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "wharf.h"

struct server;

#define SERVER_CLOSE_REASONS 6 /* enum wharf_close_reason values */

/* Counters of one listener, summed over workers (a snapshot). */
struct server_stats {
    uint64_t accepted;          /* TCP connections handed to a worker */
    uint64_t rejected;          /* refused by max_connections_per_source */
    uint64_t open;              /* TCP connections open now */
    uint64_t closed[SERVER_CLOSE_REASONS]; /* by enum wharf_close_reason */
    uint64_t bytes_in, bytes_out;
    uint64_t output_buffered;   /* bytes of output buffer memory held now */
    uint64_t datagrams_in, datagrams_out, datagrams_dropped;
};

/*
 * Loads every listener's handler module and calls its init with the
 * listener's options.  `cfg` must outlive the server.  Returns 0 and the
 * server in *out, or -1 with one line in err, e.g.
 *   config/x.json: listeners[0].handler: cannot load "nope": not found in ...
 */
int server_new(const struct config *cfg, struct server **out, char *err, size_t errlen);

/*
 * Binds every listener (port 0 picks a free port; see server_port), raises
 * RLIMIT_NOFILE toward its hard limit, starts the workers and waits until each
 * is ready, then starts the acceptor.  Returns 0, or -1 with a line in err
 * (nothing is left running).
 */
int server_start(struct server *s, char *err, size_t errlen);

/* The port listener i is bound to (after server_start), or -1. */
int server_port(const struct server *s, size_t listener);

/*
 * Graceful stop: stops accepting and closes the listening sockets, lets open
 * connections finish for up to cfg->shutdown_timeout_ms, closes the rest with
 * reason "shutdown", joins every thread and calls every handler's fini.
 * Safe to call more than once, or without a start.
 */
void server_stop(struct server *s);

/* Stops if needed, unloads the modules and frees the server.  NULL is fine. */
void server_free(struct server *s);

/* Counters of listener i.  Returns 0, or -EINVAL for a bad index. */
int server_stats(const struct server *s, size_t listener, struct server_stats *out);

/* Number of worker threads. */
unsigned server_workers(const struct server *s);

#endif
