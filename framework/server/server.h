/*
 * server.h - a running wharf server (the object behind the public
 * wharf_server, see wharf_server.h): the current generation, the admission
 * counts, the worker pool and the acceptor thread, start, reload and the
 * ordered graceful stop.  The test suites use these internal calls; programs
 * use wharf_server.h.
 *
 * Life cycle:  server_new (build generation 1: load modules, run each
 * handler's init; binds nothing) -> server_start (bind, start workers and
 * wait until every one is ready, start the acceptor) -> server_reload* ->
 * server_stop (graceful) -> server_free.  These calls are made from one
 * thread (or serialised by the caller); the server's threads are the
 * acceptor and the workers.
 */
#ifndef WHARF_SERVER_INTERNAL_H
#define WHARF_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "wharf_server.h"

/* Creates a server with no configuration yet. */
struct wharf_server *server_create(void);
/* Registers an in-process handler (see wharf_server_add_handler). */
int server_add_handler(struct wharf_server *s, const struct wharf_handler *h);
/* Builds generation 1 from cfg (taken over, even on failure).  Returns 0 or
 * a negative errno (as wharf_server_start's) with one line in err. */
int server_load(struct wharf_server *s, struct config *cfg, char *err, size_t errlen);

/* server_create + server_load. */
int server_new(struct config *cfg, struct wharf_server **out, char *err, size_t errlen);

/*
 * Binds every listener (port 0 picks a free port; see server_port), raises
 * RLIMIT_NOFILE toward its hard limit, starts the workers and waits until each
 * is ready, then starts the acceptor.  Returns 0, or a negative errno (as
 * wharf_server_start's) with a line in err (nothing is left running).
 */
int server_start(struct wharf_server *s, char *err, size_t errlen);

/* Switches to a generation built from cfg (taken over); see
 * wharf_server_reload.  Returns 0 or a negative errno with a line in err. */
int server_reload(struct wharf_server *s, struct config *cfg, char *err, size_t errlen);

/* How long a reload waits for the workers, then the acceptor, to take the
 * new generation before it fails (default 10 s; tests shorten it). */
void server_set_reload_wait(struct wharf_server *s, uint64_t ms);

/* The port listener i of the current generation is bound to, or -1. */
int server_port(const struct wharf_server *s, size_t listener);
/* The index of listener `name` in the current generation, or -1. */
int server_find(const struct wharf_server *s, const char *name);

/* Graceful stop; see wharf_server_stop. */
void server_stop(struct wharf_server *s);
/* Stops if needed, releases the generation and frees.  NULL is fine. */
void server_free(struct wharf_server *s);

/* Counters of listener i of the current generation.  Returns 0, or -EINVAL
 * for a bad index. */
int server_stats(const struct wharf_server *s, size_t listener, struct wharf_listener_stats *out);

/* Number of worker threads. */
unsigned server_workers(const struct wharf_server *s);

/* What the metrics page (metrics.c) reads of a server at one moment. */
struct server_view {
    struct generation *gen;      /* the current one, referenced (the caller unrefs), or NULL */
    struct wharf_worker *workers;
    unsigned nworkers;
    struct admission *admission; /* NULL before the first start */
    struct acceptor *acceptor;   /* NULL before the first start */
    uint64_t reloads, reloads_failed;
    time_t start_time;
    bool accept_paused;          /* the acceptor waits for room or descriptors */
};
void server_view(struct wharf_server *s, struct server_view *out);
/* Whether the server is started (between start and stop). */
bool server_started(const struct wharf_server *s);

#endif
