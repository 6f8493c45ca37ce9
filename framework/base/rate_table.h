/*
 * rate_table.h - token buckets per source address in a fixed-size table:
 * the TCP connection-rate limit (conn_rate_limit, one table per listener).
 *
 * Each source has a bucket of `burst` tokens refilled at `rate` per second;
 * taking a token that is not there fails.  The table never grows: it has
 * `slots` buckets (a power of two) in sets of RATE_TABLE_WAYS, and a source
 * not in its set takes over the bucket of the set that was used longest
 * ago, starting full.  So memory is slots * 32 bytes whatever the number of
 * sources, and a source evicted by many others (more sources than slots,
 * all active) is forgotten and gets a new full bucket: the same story as
 * the UDP rate_limit table, less often, since a set keeps its most recent
 * sources.  IPv4 and IPv4-mapped IPv6 forms of one address are one source.
 */
#ifndef WHARF_RATE_TABLE_H
#define WHARF_RATE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RATE_TABLE_WAYS 4

struct rate_table;

/* A table of at least `slots` buckets (rounded up to a power of two, at
 * least RATE_TABLE_WAYS) for `rate` (>= 1) tokens a second and `burst`
 * (>= 1) tokens at most per source.  NULL on ENOMEM. */
struct rate_table *rate_table_new(size_t slots, uint64_t rate, uint64_t burst);
void rate_table_free(struct rate_table *t);

/* Takes one token of sa's bucket at now_ms (a monotonic clock in ms).
 * Returns whether there was one.  Thread-safe (a mutex). */
bool rate_table_take(struct rate_table *t, const struct sockaddr *sa, uint64_t now_ms);

/* The number of buckets (for tests and docs: memory is this times
 * rate_table_slot_size()). */
size_t rate_table_slots(const struct rate_table *t);
size_t rate_table_slot_size(void);

#endif
