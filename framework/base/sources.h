/*
 * sources.h - open TCP connections counted per source IP address, for the
 * max_connections_per_source admission limit.
 *
 * admission.c adds a connection when the acceptor admits it and removes it
 * when its owner closes it.  One mutex guards the table; it exists only
 * once a limit is configured, so without it nothing is paid.
 * IPv4 sources and their IPv4-mapped IPv6 form count as one source.
 */
#ifndef WHARF_SOURCES_H
#define WHARF_SOURCES_H

#include <stddef.h>
#include <sys/socket.h>

struct sources;

/* A table allowing `limit` (>= 1) connections per source.  NULL on ENOMEM. */
struct sources *sources_new(size_t limit);
void sources_free(struct sources *s);

/* Counts one more connection from sa.  Returns 0, -EBUSY when the source
 * already has `limit` open (nothing counted), or -ENOMEM.  Thread-safe. */
int sources_add(struct sources *s, const struct sockaddr *sa);
/* Counts one connection from sa fewer.  Thread-safe. */
void sources_remove(struct sources *s, const struct sockaddr *sa);
/* Changes the limit; sources already above it keep what they have.
 * Thread-safe. */
void sources_set_limit(struct sources *s, size_t limit);
/* Connections open from sa now.  Thread-safe. */
size_t sources_count(struct sources *s, const struct sockaddr *sa);
/* Distinct sources with connections open now.  Thread-safe. */
size_t sources_distinct(struct sources *s);

#endif
