/*
 * mc_store_private.h - the insides of the memcache store, for its own
 * files only (the protocol files include mc_store.h):
 *
 *   mc_store.c        the store: shards, lookups, and the commands
 *                     (get, set and its modes, delete, incr/decr, flush)
 *   mc_store_meta.c   what the meta commands add (mg, ms, md, ma)
 *   mc_item.c         items and the shards' hash tables: build, copy, link,
 *                     unlink, find, the last release
 *   mc_lru.c          the segmented LRU, its maintainer, and eviction under
 *                     the memory limit
 *   mc_store_walk.c   walks over the hash tables: the reclaimer and the
 *                     crawler's metadump
 *   mc_store_class.c  memcached's size classes and the per-class counters
 *                     (the operators' view)
 *
 * Locking: a function taking a `struct mc_shard *sh` expects sh locked by
 * its caller, unless it says otherwise.
 */
#ifndef MC_STORE_PRIVATE_H
#define MC_STORE_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "mc_store.h"

#define MC_SHARD_BITS 6
#define MC_SHARDS (1u << MC_SHARD_BITS)
#define MC_BUCKETS_MIN 256u
/* Allocator header and the item's share of its hash table. */
#define MC_ITEM_OVERHEAD 32u

/* The LRU lists of a shard (item->lru_seg). */
enum { MC_LRU_HOT, MC_LRU_WARM, MC_LRU_COLD, MC_LRU_LISTS };
/* A published tail stamp of an empty list. */
#define MC_LRU_NO_STAMP UINT64_MAX
/* The most items one mc_lru_maintain call moves on a store or eviction
 * path. */
#define MC_LRU_STEP 4u

struct mc_shard {
    pthread_mutex_t lock;
    struct mc_item **buckets;
    size_t nbuckets; /* power of two */
    size_t nitems;
    struct wharf_list lists[MC_LRU_LISTS]; /* hot, warm, cold; newest first */
    size_t list_bytes[MC_LRU_LISTS];
    size_t reclaim_bucket;       /* where mc_store_reclaim goes on */
    struct mc_store_stats st;    /* curr_items and bytes kept here too */
    struct mc_class_stats cls[MC_CLASSES]; /* operators' view: per class */
    char pad[64];                /* keep shards' locks on separate lines */
};

struct mc_store {
    _Atomic size_t limit, item_max; /* changed by mc_store_set_limits */
    uint64_t seed;
    _Atomic size_t used;
    _Atomic uint64_t cas_last;  /* the last CAS id handed out */
    _Atomic uint64_t clock;   /* bytes of every item ever linked: LRU time */
    _Atomic int64_t flush_at; /* items stored up to it are invalid once it passed */
    _Atomic unsigned reclaim_next;
    /* Each shard's list tails' stamps (MC_LRU_NO_STAMP: empty), for
     * evictors that do not hold the shard's lock; written under it. */
    _Atomic uint64_t tails[MC_LRU_LISTS][MC_SHARDS];
    struct mc_shard shards[MC_SHARDS];
    /* operators' view: called for every evicted item (watch) */
    _Atomic(mc_store_evict_fn) evict_fn;
    void *_Atomic evict_arg;
};

/* ---- mc_store.c ---- */

/* Finds key's shard and locks it; *hash is the key's hash. */
struct mc_shard *mc_store_lock(struct mc_store *s, const char *key, size_t nkey,
                               uint64_t *hash);
/* The next CAS id (memcached's get_cas_id: 1, 2, ...). */
uint64_t mc_store_next_cas(struct mc_store *s);

/* A store of value[0..nbytes) as `set` describes, the key's shard locked
 * by this function: the one code path of the ASCII, binary and meta
 * storage commands.  `meta` gives ms's answers where they differ: a too
 * large or out-of-memory append/prepend is MC_NOT_STORED, and a failed
 * store of any other mode unlinks the old value (a plain store does that
 * for MC_SET only, as memcached's).  On MC_STORED *cas_out (if not NULL)
 * is the new item's cas. */
enum mc_result mc_store_put(struct mc_store *s, const char *key, size_t nkey,
                            const struct mc_meta_set *set, const char *value, size_t nbytes,
                            int64_t now, bool meta, uint64_t *cas_out);

/* How incr/decr is asked for: the one code path of the three protocols. */
struct mc_arith {
    bool incr;
    uint64_t delta;
    uint64_t cas;                   /* must match when non-zero */
    uint64_t initial;               /* an item made on a miss (req->vivify) */
    const struct mc_meta_req *req;  /* vivify and cas_in */
    mc_meta_fn fn;                  /* called on the item changed or made, or NULL */
    void *arg;
};
/* incr/decr as mc_store_meta_delta describes; *cas_out (if not NULL) is
 * the item's new cas on MC_FOUND or MC_STORED. */
enum mc_result mc_store_arith(struct mc_store *s, const char *key, size_t nkey,
                              const struct mc_arith *a, int64_t now, uint64_t *value,
                              uint64_t *cas_out);

/* ---- mc_item.c: items and the hash tables (sh locked) ---- */

static inline size_t mc_item_bytes(const struct mc_item *it)
{
    return mc_item_cost(it->nkey, it->nbytes);
}

/* A new item of key and a value of `total` bytes, not linked, with the
 * next cas and a reference for the store: value[0..nbytes), or for
 * MC_APPEND/MC_PREPEND old's value with it at the end/start.  NULL on
 * ENOMEM. */
struct mc_item *mc_item_build(struct mc_store *s, uint64_t hash, const char *key, size_t nkey,
                              enum mc_store_mode mode, const struct mc_item *old,
                              const char *value, size_t nbytes, size_t total);
/* Links a new item (its cost already reserved) at the head of hot, where
 * it is the newest item of the store; counts it. */
void mc_item_link(struct mc_store *s, struct mc_shard *sh, struct mc_item *it);
/* Reserves, builds and links a never-expiring item of key and
 * value[0..nbytes) with flags 0, `mflags` and cas_in (0: the next), stored
 * now (a vivify); NULL when memory is short. */
struct mc_item *mc_item_link_new(struct mc_store *s, struct mc_shard *sh, uint64_t hash,
                                 const char *key, size_t nkey, const char *value,
                                 size_t nbytes, uint8_t mflags, uint64_t cas_in, int64_t now);
/* Unlinks it from its chain and the LRU, uncounts it and drops the store's
 * reference: it is freed, and its bytes given back, when no
 * mc_store_get_ref reference is left (at once, mostly). */
void mc_item_free(struct mc_store *s, struct mc_shard *sh, struct mc_item *it);
/* Whether only the store holds it (no reference can be taken meanwhile,
 * the shard being locked), so that it may be changed in place. */
bool mc_item_unshared(struct mc_item *it);
/* Puts a copy of it in its place (chain, LRU list and position, counters
 * unchanged) and drops the store's reference to it, so that the caller
 * may change the copy's cas and marks while holders of references read it
 * unlocked.  Reserves the copy's bytes, evicting as any store does; NULL,
 * it untouched, when there is no memory for it. */
struct mc_item *mc_item_copy(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                             int64_t now);
/* Gives key's item the number v: in place, blank-padded, when it is long
 * enough and unshared (a new cas, nothing moves in the LRU, as memcached's
 * incr), else a new item in its place (stored now).  The item now holding
 * the key, or NULL when memory is short (it untouched). */
struct mc_item *mc_item_set_number(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                                   uint64_t v, int64_t now);
/* Whether it is dead at `now` (expired, or flushed); *flushed says which. */
bool mc_item_dead(struct mc_store *s, const struct mc_item *it, int64_t now, bool *flushed);
/* Frees a dead item, counted as reclaimed as memcached counts it. */
void mc_item_reclaim(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                     bool flushed);
/* The live item for key in sh, or NULL (a dead one found is freed, and
 * with `count` counted in get_expired/get_flushed). */
struct mc_item *mc_item_find(struct mc_store *s, struct mc_shard *sh, uint64_t hash,
                             const char *key, size_t nkey, int64_t now, bool count);
/* mc_item_find that says why it missed: *miss MC_NOT_FOUND, MC_EXPIRED or
 * MC_FLUSHED (the item it found and freed). */
struct mc_item *mc_item_lookup(struct mc_store *s, struct mc_shard *sh, uint64_t hash,
                               const char *key, size_t nkey, int64_t now, bool count,
                               enum mc_result *miss);

/* ---- mc_lru.c: the segmented LRU and eviction (sh locked) ---- */

/* Puts it at the head of list l, stamped no older than the head. */
void mc_lru_link(struct mc_store *s, struct mc_shard *sh, struct mc_item *it, int l);
void mc_lru_unlink(struct mc_store *s, struct mc_shard *sh, struct mc_item *it);
/* A get or touch found it (memcached's do_item_bump). */
void mc_lru_hit(struct mc_store *s, struct mc_shard *sh, struct mc_item *it);
/* memcached's LRU maintainer for one shard, at most `max` moves. */
void mc_lru_maintain(struct mc_store *s, struct mc_shard *sh, size_t max);
/* Reserves cost bytes against the limit, evicting the oldest items of the
 * store as needed; `own` is the shard the caller holds (or NULL: none) and
 * `keep` an item of it not to evict.  Never lets `used` pass the limit.
 * False when nothing more can be evicted. */
bool mc_lru_reserve(struct mc_store *s, struct mc_shard *own, const struct mc_item *keep,
                    size_t cost, int64_t now);
/* Gives back what mc_lru_reserve took (an item that was not made). */
void mc_lru_unreserve(struct mc_store *s, size_t cost);
/* Evicts until `used` fits the limit, no shard locked by the caller. */
void mc_lru_shrink(struct mc_store *s);

/* ---- mc_store_class.c: per-class counts kept by the paths above ---- */

/* it linked (sign 1) or unlinked (-1). */
void mc_store_class_linked(struct mc_shard *sh, const struct mc_item *it, int sign);
/* it evicted: counted, and shown to the evict hook. */
void mc_store_class_evicted(struct mc_store *s, struct mc_shard *sh, const struct mc_item *it);
void mc_store_class_reclaimed(struct mc_shard *sh, const struct mc_item *it, bool flushed);
/* it about to move from its list to list `to` (the LRU's moves). */
void mc_store_class_moved(struct mc_shard *sh, const struct mc_item *it, int to);
/* Zeroes sh's per-class counters, not its items (number, requested). */
void mc_store_class_reset(struct mc_shard *sh);

#endif
