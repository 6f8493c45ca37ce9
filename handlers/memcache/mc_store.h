/*
 * mc_store.h - the memcache handler's cache: one store shared by every
 * worker of a listener, split into shards that each have their own lock,
 * hash table and LRU list, so that workers touching different keys never
 * wait on each other.  A memory limit covers every item's bytes and its
 * bookkeeping; a store that would pass it evicts least recently used items
 * first.  Times are Unix seconds; callers pass "now" in.
 *
 * Everything here is thread-safe.  Functions that hand an item to a
 * callback call it with the item's shard locked: the callback copies what it
 * needs (wharf_send copies) and must not call back into the store.
 * mc_store_get_ref instead hands out a reference: the item's key and value
 * stay valid and unchanged, without a lock, until mc_item_release.
 */
#ifndef MC_STORE_H
#define MC_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wharf_list.h"

#define MC_KEY_MAX 250

/* An item as the protocol sees it (read-only, valid during a callback). */
struct mc_item {
    union {
        struct mc_item *hnext;   /* hash chain (while linked) */
        struct mc_store *store;  /* its store (once unlinked, for the last release) */
    };
    struct wharf_list lru;       /* in its shard's LRU list, first = most recent */
    uint64_t hash;
    uint64_t cas;
    int64_t exptime;             /* absolute Unix time, 0 = never */
    int64_t time;                /* when it was stored */
    uint32_t flags;
    uint32_t nbytes;             /* value length, without the trailing "\r\n" */
    uint8_t nkey;
    uint8_t fetched;
    _Atomic uint32_t refs;       /* the store's (while linked) + mc_store_get_ref's */
    char data[];                 /* key, then value, then "\r\n" */
};

static inline const char *mc_item_key(const struct mc_item *it)
{
    return it->data;
}
/* The value followed by "\r\n" (nbytes + 2 bytes). */
static inline const char *mc_item_value(const struct mc_item *it)
{
    return it->data + it->nkey;
}

enum mc_store_mode { MC_SET, MC_ADD, MC_REPLACE, MC_APPEND, MC_PREPEND, MC_CAS };

enum mc_result {
    MC_STORED,
    MC_NOT_STORED,
    MC_EXISTS,
    MC_NOT_FOUND,
    MC_FOUND,        /* get, delete, touch hits; delta done */
    MC_NON_NUMERIC,  /* delta on a value that is not a decimal number */
    MC_TOO_LARGE,
    MC_NO_MEMORY,
};

/* Counters kept per shard (under its lock) and summed by mc_store_stats. */
struct mc_store_stats {
    uint64_t curr_items, total_items, bytes, evictions, expired_unfetched,
        evicted_unfetched, reclaimed, get_expired, get_flushed;
};

struct mc_store;

/* A store of at most limit bytes (items and their overhead) whose values
 * are at most item_max bytes.  NULL on ENOMEM. */
struct mc_store *mc_store_new(size_t limit, size_t item_max);
void mc_store_free(struct mc_store *s);

/* What one item of nkey and nbytes (value) bytes counts against the limit. */
size_t mc_item_cost(size_t nkey, size_t nbytes);

/*
 * Looks key up: on a live item, bumps it in the LRU, when touch is true sets
 * its exptime to `exptime`, calls fn(item, arg) under the lock and returns
 * MC_FOUND; otherwise MC_NOT_FOUND (an expired or flushed item is freed).
 */
enum mc_result mc_store_get(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                            bool touch, int64_t exptime,
                            void (*fn)(const struct mc_item *it, void *arg), void *arg);

/*
 * mc_store_get, but instead of calling a function under the lock returns
 * the live item with a reference taken (NULL: not found).  Its key, value
 * and "\r\n" stay valid and unchanged until mc_item_release (a store,
 * delete, incr or eviction meanwhile replaces or unlinks it, and never
 * writes into a referenced item); the item keeps counting against the
 * memory limit until its last reference goes.  Release every reference
 * before mc_store_free.
 */
struct mc_item *mc_store_get_ref(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                                 bool touch, int64_t exptime);
/* Drops a reference taken by mc_store_get_ref; the last one of an unlinked
 * item frees it.  Any thread, no lock held (takes none). */
void mc_item_release(struct mc_item *it);

/* set/add/replace/append/prepend/cas of value[0..nbytes) (no "\r\n").
 * append/prepend keep the item's flags and exptime. */
enum mc_result mc_store_store(struct mc_store *s, enum mc_store_mode mode, const char *key,
                              size_t nkey, uint32_t flags, int64_t exptime, const char *value,
                              size_t nbytes, uint64_t cas, int64_t now);

/* Unlinks key; MC_FOUND or MC_NOT_FOUND. */
enum mc_result mc_store_delete(struct mc_store *s, const char *key, size_t nkey, int64_t now);

/* incr (incr = true) or decr by delta: incr wraps at 2^64, decr stops at 0.
 * MC_FOUND with *value set, MC_NOT_FOUND, MC_NON_NUMERIC or MC_NO_MEMORY. */
enum mc_result mc_store_delta(struct mc_store *s, const char *key, size_t nkey, bool incr,
                              uint64_t delta, int64_t now, uint64_t *value);

/* Invalidates every item stored up to `at` (<= now: every item, at once). */
void mc_store_flush(struct mc_store *s, int64_t at, int64_t now);

/* Frees up to `max` expired or flushed items, looking at no more than 4 *
 * max items, one shard per call (shards taken in turn).  Returns how many
 * it freed. */
size_t mc_store_reclaim(struct mc_store *s, size_t max, int64_t now);

void mc_store_stats(struct mc_store *s, struct mc_store_stats *out);
size_t mc_store_limit(const struct mc_store *s);
size_t mc_store_item_max(const struct mc_store *s);

/* Changes the memory limit and the largest value (a reload's new
 * settings); a lower limit evicts least recently used items until the
 * store fits.  Any thread, while others use the store. */
void mc_store_set_limits(struct mc_store *s, size_t limit, size_t item_max);

#endif
