/*
 * mc_store.h - the memcache handler's cache: one store shared by every
 * worker of a listener, split into shards that each have their own lock,
 * hash table and LRU lists, so that workers touching different keys never
 * wait on each other.  A memory limit covers every item's bytes and its
 * bookkeeping; a store that would pass it evicts the least recently used
 * item of the whole store first, with memcached's segmented LRU (hot, warm,
 * cold) keeping items that are read again out of reach of a one-pass scan
 * (mc_lru.c says how).  Times are Unix seconds; callers pass "now" in.
 * mc_store_private.h lists the files that make it.
 *
 * Everything here is thread-safe.  Functions that hand an item to a
 * callback call it with the item's shard locked: the callback copies what it
 * needs (wharf_send copies) and must not call back into the store.
 * mc_store_get_ref instead hands out a reference: the item's key, value,
 * nkey, nbytes, flags and cas stay valid and unchanged, without a lock,
 * until mc_item_release.  Those fields never change once an item is linked
 * while anyone holds a reference to it: a command that would change them
 * (incr/decr, md I's new cas) changes the item in place only when the store
 * alone holds it, and otherwise puts a copy in its place.  The other fields
 * (LRU links and marks, exptime, mflags, touched) change under the shard
 * lock and are read only under it.
 */
#ifndef MC_STORE_H
#define MC_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wharf_list.h"

#define MC_KEY_MAX 250

/* An item as the protocol sees it (read-only, valid during a callback).
 * Fixed while referenced: hash, cas, flags, nbytes, nkey, data; the rest
 * only under the shard lock (see the top comment). */
struct mc_item {
    union {
        struct mc_item *hnext;   /* hash chain (while linked) */
        struct mc_store *store;  /* its store (once unlinked, for the last release) */
    };
    struct wharf_list lru;       /* in its shard's hot, warm or cold list, first = newest */
    uint64_t stamp;              /* LRU age: the store's byte clock when it entered its list */
    uint64_t hash;
    uint64_t cas;
    int64_t exptime;             /* absolute Unix time, 0 = never */
    int64_t time;                /* when it was stored */
    uint32_t flags;
    uint32_t nbytes;             /* value length, without the trailing "\r\n" */
    uint8_t nkey;
    uint8_t fetched;             /* read since stored (memcached's ITEM_FETCHED) */
    uint8_t lru_seg;             /* which list of its shard: hot, warm or cold */
    uint8_t active;              /* read again since it entered its list (ITEM_ACTIVE) */
    /* The meta protocol's (mc_meta.c), zeroed by a store; they fill what
     * was padding, so an item costs no more: */
    uint8_t mflags;              /* MC_ITEM_STALE, MC_ITEM_TOKEN_SENT, MC_ITEM_KEY_BINARY */
    uint32_t touched;            /* last fetched, in seconds after `time` */
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
    /* Why a lookup missed, where the caller asks (mc_store_get_ref's *miss,
     * mc_store_peek): the item it found had expired, or was flushed (it is
     * freed now); memcached's watch shows these as status=expired/flushed. */
    MC_EXPIRED,
    MC_FLUSHED,
};

/* Counters kept per shard (under its lock) and summed by mc_store_stats. */
struct mc_store_stats {
    uint64_t curr_items, total_items, bytes, evictions, expired_unfetched,
        evicted_unfetched, reclaimed, get_expired, get_flushed;
    /* the segmented LRU's moves, as memcached counts them: hot or warm to
     * cold, hot or cold to warm (read twice), warm's tail back to its head */
    uint64_t moves_to_cold, moves_to_warm, moves_within_lru;
};

struct mc_store;

/* A store of at most limit bytes (items and their overhead) whose values
 * are at most item_max bytes.  NULL on ENOMEM. */
struct mc_store *mc_store_new(size_t limit, size_t item_max);
void mc_store_free(struct mc_store *s);

/* What one item of nkey and nbytes (value) bytes counts against the limit. */
size_t mc_item_cost(size_t nkey, size_t nbytes);

/*
 * Looks key up: on a live item, counts the hit in the LRU, when touch is true sets
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
 * before mc_store_free.  On a miss, *miss (when not NULL) says why:
 * MC_NOT_FOUND, MC_EXPIRED or MC_FLUSHED.
 */
struct mc_item *mc_store_get_ref(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                                 bool touch, int64_t exptime, enum mc_result *miss);
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

/* The background work of the store, for a repeating timer: visits every
 * shard, frees up to `max` expired or flushed items in all, looking at no
 * more than about 4 * max items (a share of it per shard, walking each
 * shard's hash table from where the last call stopped), and moves items
 * between the hot, warm and cold lists as memcached's LRU maintainer does.
 * Returns how many it freed. */
size_t mc_store_reclaim(struct mc_store *s, size_t max, int64_t now);

void mc_store_stats(struct mc_store *s, struct mc_store_stats *out);
size_t mc_store_limit(const struct mc_store *s);
size_t mc_store_item_max(const struct mc_store *s);

/* ---- the binary protocol's CAS variants (mc_binary.c) ---- */

/* mc_store_store that also gives the stored item's cas id in *new_cas
 * (when STORED and new_cas is not NULL).  For append/prepend a non-zero
 * cas must match the item's (else MC_EXISTS), as for memcached's binary
 * append. */
enum mc_result mc_store_store_cas(struct mc_store *s, enum mc_store_mode mode, const char *key,
                                  size_t nkey, uint32_t flags, int64_t exptime,
                                  const char *value, size_t nbytes, uint64_t cas, int64_t now,
                                  uint64_t *new_cas);

/* mc_store_delta with a cas id: *cas non-zero must match the item's (else
 * MC_EXISTS, checked after an empty value's MC_NON_NUMERIC, as memcached);
 * on MC_FOUND *cas is the item's new cas id.  cas may be NULL. */
enum mc_result mc_store_delta_cas(struct mc_store *s, const char *key, size_t nkey, bool incr,
                                  uint64_t delta, int64_t now, uint64_t *value, uint64_t *cas);

/* Unlinks key if cas is 0 or its cas id: MC_FOUND, MC_NOT_FOUND or
 * MC_EXISTS (another cas id). */
enum mc_result mc_store_delete_cas(struct mc_store *s, const char *key, size_t nkey,
                                   uint64_t cas, int64_t now);

/* Changes the memory limit and the largest value (a reload's new
 * settings); a lower limit evicts least recently used items until the
 * store fits.  Any thread, while others use the store. */
void mc_store_set_limits(struct mc_store *s, size_t limit, size_t item_max);

/* ---- operators' view: size classes, walk, hooks (mc_stats.c, mc_crawler.c,
 * mc_watch.c) ---- */

/* memcached 1.6's default size classes: 96 bytes growing by 1.25 (8-byte
 * aligned) up to 524288 (slab_chunk_max), ids 1..MC_CLASS_MAX.  wharf has
 * no slabs: a class only sorts items by memcached's item size for "stats
 * items/slabs", metadump and watch, so the numbers match memcached's. */
#define MC_CLASS_MAX 39
#define MC_CLASSES (MC_CLASS_MAX + 1)

/* memcached's ITEM_ntotal of such an item (header, key, NUL, value, CRLF, CAS). */
size_t mc_store_ntotal(size_t nkey, size_t nbytes);
/* The class id (1..MC_CLASS_MAX) of an item; larger than the largest chunk
 * is the largest class, as memcached's chunked items. */
unsigned mc_store_class_of(size_t nkey, size_t nbytes);
/* Chunk size of class id (1..MC_CLASS_MAX). */
size_t mc_store_class_size(unsigned id);

/* Per class, summed over shards: live items and their memcached size, and
 * the counters "stats items" prints. */
struct mc_class_stats {
    uint64_t number, requested, evicted, evicted_nonzero, evicted_time, reclaimed,
        expired_unfetched, evicted_unfetched, moves_to_cold, moves_to_warm, moves_within_lru;
};
void mc_store_class_stats(struct mc_store *s, struct mc_class_stats out[MC_CLASSES]);

/* "stats reset": zeroes the counters memcached zeroes (total_items,
 * evictions, reclaimed, expired/evicted_unfetched, get_expired/flushed, the
 * LRU's moves, and the per-class ones), not what is stored (curr_items,
 * bytes, number). */
void mc_store_reset_stats(struct mc_store *s);

/* Called for every evicted item, its shard locked (must not call the store). */
typedef void (*mc_store_evict_fn)(void *arg, const struct mc_item *it, int64_t now);
void mc_store_set_evict_hook(struct mc_store *s, mc_store_evict_fn fn, void *arg);

/* Whether key is live, without bumping it or marking it fetched: MC_FOUND,
 * with its class and value length, or MC_NOT_FOUND, MC_EXPIRED or
 * MC_FLUSHED (a dead item found is freed, as by any lookup). */
enum mc_result mc_store_peek(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                             unsigned *cls, uint32_t *nbytes);

/* A copy of one item's metadata, as a walk hands it out. */
struct mc_walk_item {
    int64_t exptime, time;
    uint64_t cas;
    uint32_t nbytes;
    uint8_t nkey;
    bool fetched;
    char key[MC_KEY_MAX];
};

/* Where a walk goes on; zero it to start. */
struct mc_walk {
    unsigned shard;
    size_t bucket, skip;
    bool done;
};

/*
 * Copies the metadata of up to max live items, going on from *w, into
 * out[] and returns how many; w->done once every shard was walked.  Holds
 * one shard's lock at a time, for at most max items.  An item present for
 * the whole walk is seen (a table that grows meanwhile may show one twice).
 */
size_t mc_store_walk(struct mc_store *s, struct mc_walk *w, int64_t now,
                     struct mc_walk_item *out, size_t max);

/* ---- the meta protocol's (mc_meta.c) ------------------------------------
 * memcached's meta commands see and change more of an item than the ASCII
 * ones: its stale and win marks, its last access, its cas chosen by the
 * client (E), an empty item made on a miss (vivify).  Callbacks get the
 * item writable, under its shard's lock, and may change only its exptime
 * and mflags (never its cas, which holders of references read unlocked);
 * they must not call back into the store.
 */

#define MC_ITEM_STALE 1u      /* invalidated (md I, ms I): mg answers X */
#define MC_ITEM_TOKEN_SENT 2u /* a client was told it won the recache (W) */
#define MC_ITEM_KEY_BINARY 4u /* stored with a base64 key (b): k answers base64 */

/* How a meta lookup treats the item. */
struct mc_meta_req {
    bool vivify;     /* on a miss, link an empty item (mg N) or `initial` (ma N) */
    bool bump;       /* after fn: mark fetched, last access now, LRU head (not mg u, me) */
    uint64_t cas_in; /* E: the cas an item made or changed takes; 0: the next */
    uint8_t mflags;  /* an item made here starts with these (MC_ITEM_KEY_BINARY) */
};

/* Returns false when the command failed after all (no bump then). */
typedef bool (*mc_meta_fn)(struct mc_item *it, bool created, void *arg);

/* The seconds since it was last fetched (or stored); 0 if the clock went back. */
static inline int64_t mc_item_idle(const struct mc_item *it, int64_t now)
{
    int64_t idle = now - (it->time + (int64_t)it->touched);
    return idle > 0 ? idle : 0;
}

/*
 * mg and me: looks key up and calls fn(it, false) on a live item (MC_FOUND);
 * on a miss with req->vivify links an empty item that never expires and
 * calls fn(it, true) (MC_STORED); otherwise MC_NOT_FOUND, with nothing
 * called (a vivify with no memory left is a miss too).  Then bumps the item
 * as req->bump says, unless fn returned false.
 */
enum mc_result mc_store_meta_get(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                                 const struct mc_meta_req *req, mc_meta_fn fn, void *arg);

/* What ms stores, besides the key and value (the ASCII and binary storage
 * commands go the same way with mode, flags, exptime and cas only). */
struct mc_meta_set {
    enum mc_store_mode mode; /* MC_CAS: set/replace with C */
    uint32_t flags;
    int64_t exptime;
    uint64_t cas;            /* MC_CAS: must match; append/prepend: if non-zero */
    bool invalidate;         /* I: a cas older than the item's stores it stale */
    uint64_t cas_in;         /* E, or 0 */
    uint8_t mflags;          /* MC_ITEM_KEY_BINARY */
};

/* ms as memcached's do_store_item: MC_STORED (*cas_out set), MC_NOT_STORED
 * (also an append past the size limit), MC_EXISTS, MC_NOT_FOUND or
 * MC_NO_MEMORY (then, as memcached, no older value stays behind). */
enum mc_result mc_store_meta_set(struct mc_store *s, const char *key, size_t nkey,
                                 const struct mc_meta_set *ms, const char *value, size_t nbytes,
                                 int64_t now, uint64_t *cas_out);

/* md: with a cas (has_cas) that differs, MC_EXISTS; invalidate marks the
 * item stale, takes a new cas (cas_in or the next), clears its win mark and,
 * when new_ttl, sets exptime (on a copy put in its place when a reference
 * to it is held; with no memory for the copy the key is unlinked instead);
 * otherwise unlinks it.  MC_FOUND, MC_EXISTS or MC_NOT_FOUND. */
enum mc_result mc_store_meta_delete(struct mc_store *s, const char *key, size_t nkey,
                                    bool has_cas, uint64_t cas, bool invalidate, bool new_ttl,
                                    int64_t exptime, uint64_t cas_in, int64_t now);

/* ma: incr/decr as mc_store_delta, with a cas to match (0: none), the new
 * cas taken from req->cas_in, and on a miss with req->vivify an item of
 * `initial` (never expiring) made.  fn(it, created) runs under the lock on
 * the item changed or made.  MC_FOUND (*value set), MC_STORED (made,
 * *value = initial), MC_NOT_FOUND, MC_EXISTS, MC_NON_NUMERIC, MC_NO_MEMORY. */
enum mc_result mc_store_meta_delta(struct mc_store *s, const char *key, size_t nkey, bool incr,
                                   uint64_t delta, uint64_t cas, uint64_t initial,
                                   const struct mc_meta_req *req, int64_t now, uint64_t *value,
                                   mc_meta_fn fn, void *arg);

#endif
