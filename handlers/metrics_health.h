/*
 * metrics_health.h - the metrics handler's health endpoints (see
 * metrics_health.c), as metrics.c calls them.
 */
#ifndef WHARF_METRICS_HEALTH_H
#define WHARF_METRICS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "wharf.h"

/* Whether target[0..tlen) is /healthz or /readyz. */
bool health_path(const char *target, size_t tlen);
/* Answers a GET or HEAD of a health path.  Returns false when the answer
 * is pending (a /readyz waiting for the workers): the connection's reading
 * is paused, and metrics.c consumes nothing more until it is sent. */
bool health_serve(wharf_conn *c, const char *target, size_t tlen, bool head_only, bool close);
/* Whether c waits for a /readyz answer (on_data takes nothing then). */
bool health_pending(const wharf_conn *c);

/* The handler's init ("ready_timeout_ms"), fini and on_close. */
int health_init(const wharf_options *opts, void **listener_data, char *err, size_t errlen);
void health_fini(void *listener_data);
void health_on_close(wharf_conn *c, enum wharf_close_reason reason);

#endif
