/* cache.h - cache workloads (--proto memcache, --proto redis): values derived from a key and
 * a version, so that a get's reply is verified without remembering what was set, and the
 * check of get replies that counts hits and misses and catches a wrong value (bad_value).
 *
 * A value of key K is `len` bytes of the letters, digits, '-' and '_' (safe in text
 * protocols). When it is at least CACHE_VERSIONED bytes long, its first 10 bytes carry its
 * version V (60 bits, drawn per set) and the next 4 its length (24 bits); the rest is drawn
 * from (K, V, position). A shorter value has version 0 and is (K, 0)'s stream cut to its
 * length. The length of a new value is drawn in [min, max] from (K, V). So a reply is right
 * when its bytes are those of its key and the version and length it carries: a value of
 * another key, a truncated or a corrupted one fails, while any version a concurrent set
 * wrote passes, and so do values written by earlier runs with another --value-size. A
 * short value (under CACHE_VERSIONED bytes) cut shorter still is not noticed.
 */
#ifndef WLOAD_CACHE_H
#define WLOAD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#define CACHE_VERSIONED 16 /* values this long carry their version and length */

struct cache_values {
    uint32_t min, max; /* length range of new values (--value-size) */
};

/* How a template's replies are verified against the keys of its request. */
enum cache_verify {
    CV_NONE,
    CV_MEMCACHE, /* memcached get/gets: VALUE key flags bytes ... END */
    CV_REDIS,    /* RESP GET ($N / $-1) and MGET (*N of those) */
};

/* The length of key's value of this version (version 0 for short values, see above). The
 * version is adjusted (*version = 0) when the value is too short to carry it. */
uint32_t cache_value_len(const struct cache_values *v, uint64_t key, uint64_t *version);

/* Writes the value (len bytes, from cache_value_len) of key and version into out. */
void cache_value_put(const struct cache_values *v, uint64_t key, uint64_t version, uint32_t len,
                     uint8_t *out);

/* Whether p[0, len) is a value of key (any version). */
bool cache_value_ok(const struct cache_values *v, uint64_t key, const uint8_t *p, size_t len);

/* Checks a complete reply (framed and its status checked) to a get of `nkeys` keys whose
 * context is ctx (keys.h). Adds the keys found to *hits and those absent to *misses.
 * Returns 0, or -1 (bad_value) with the reason in why. */
int cache_check(const struct keys *k, const struct cache_values *v, enum cache_verify kind,
                unsigned nkeys, uint64_t ctx, const uint8_t *reply, size_t len, uint64_t *hits,
                uint64_t *misses, char *why, size_t whylen);

#endif
