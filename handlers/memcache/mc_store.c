/*
 * mc_store.c - the memcache handler's shared cache (mc_store.h).
 *
 * MC_SHARDS shards, chosen by the top bits of a key's hash.  Each shard has
 * a mutex, a chained hash table that doubles when it holds 1.5 items per
 * bucket, and three LRU lists (hot, warm, cold; head = newest).  No lock is
 * global: the shared writes on the store path are the `used` byte count and
 * the LRU clock, two atomics on one cache line touched once per store (and
 * `used` once per free), never by a get.
 *
 * Memory limit: every item costs mc_item_cost() bytes (its allocation plus a
 * fixed overhead for the allocator and its hash bucket), reserved with a
 * compare-and-swap that never lets `used` pass the limit.  When it would,
 * the store evicts, always through item_evict.
 *
 * LRU, one order across the shards: the store keeps a clock that counts
 * the bytes of every item ever linked (a relaxed atomic add, not a lock),
 * and an item's `stamp` is the clock when it entered its list, so stamps
 * compare across shards.  Each list is kept sorted by stamp (an item put at
 * a head never gets a stamp below the head's), and each shard publishes the
 * stamp of each list's tail in an atomic array.  An eviction reads that
 * array without locks, picks the shard whose tail is the oldest, takes that
 * shard's lock (trylock for a shard other than the caller's, so two
 * evicting writers cannot deadlock; a busy shard is skipped for the next
 * oldest), and evicts the tail.  With a single writer that is a strict
 * global LRU; with several it is within what they race over.
 *
 * Segments, as memcached 1.5+ (lru_segmented): a new item enters hot.  The
 * first get marks it fetched, the second active (no list moves on a get,
 * so a hit costs no relink, as memcached's ITEM_UPDATE_INTERVAL intends);
 * an active item in cold moves to warm at once.  An item leaves hot once
 * HOT_PCT % of the memory limit has been stored after it (an age counted
 * in bytes, so every shard's hot list holds the same span of the global
 * order): to warm if it is active, to cold if not.  Warm holds at most
 * WARM_PCT % of its shard's bytes; its tail, when over, goes back to warm's
 * head if it was read meanwhile and to cold if not.  Evictions take cold
 * first (and a hot tail past its span, which is cold in all but name), then
 * hot, then warm.  So a one-pass scan (items stored once, read at most
 * once) flows hot -> cold -> out, while items read twice sit in warm.
 * Those moves are lru_maintain, memcached's LRU maintainer, done a few
 * items at a time on the paths that change a shard (a store, an eviction)
 * and over every shard on each reclaim tick.  An expired item met at a
 * tail is reclaimed instead of evicted, as memcached's lru_pull_tail does.
 *
 * Expiry is lazy: an expired or flushed item is freed when a lookup finds
 * it, and mc_store_reclaim (driven by the handler's timers) visits every
 * shard on each call, walking its hash table a bounded number of items at a
 * time, to free the ones nobody asks for.  flush_all without a delay frees
 * everything at once; with a delay it records the time and the items stored
 * up to then die when it comes.
 *
 * References: an item carries a count, 1 for the store while it is linked
 * plus one per mc_store_get_ref (taken under the shard lock, dropped by
 * mc_item_release without it).  Unlinking (delete, replace, eviction,
 * expiry) drops the store's; the last reference frees the item, and only
 * then are its bytes given back to the limit, so memory held by values
 * still being written to clients stays inside the limit.  Nothing writes
 * what a holder reads (key, value, flags, cas) into an item others hold:
 * incr/decr and md I change an item in place only when unshared, and
 * otherwise put a copy in its place (item_copy, or a new item).

 * CAS ids come from one store-wide counter, taken as memcached takes them
 * (each item linked, each incr/decr in place, each flush_all without a
 * delay, each meta invalidate), so that a client sees the same ids from
 * wharf as from a fresh memcached.  It sits beside `used`, the other
 * shared word every store writes.
 */
#include "mc_store.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MC_SHARD_BITS 6
#define MC_SHARDS (1u << MC_SHARD_BITS)
#define MC_BUCKETS_MIN 256u
/* Allocator header and the item's share of its hash table. */
#define MC_ITEM_OVERHEAD 32u

/* The LRU lists of a shard (item->lru_seg), and the segments' sizes as
 * memcached's defaults (hot_lru_pct, warm_lru_pct). */
enum { LRU_HOT, LRU_WARM, LRU_COLD, LRU_LISTS };
#define HOT_PCT 20u
#define WARM_PCT 40u
/* The most items one lru_maintain call moves on a store or eviction path. */
#define MAINTAIN_STEP 4u
#define NO_STAMP UINT64_MAX

struct mc_shard {
    pthread_mutex_t lock;
    struct mc_item **buckets;
    size_t nbuckets; /* power of two */
    size_t nitems;
    struct wharf_list lists[LRU_LISTS]; /* hot, warm, cold; newest first */
    size_t list_bytes[LRU_LISTS];
    size_t reclaim_bucket;       /* where mc_store_reclaim goes on */
    struct mc_store_stats st;    /* curr_items and bytes kept here too */
    struct mc_class_stats cls[MC_CLASSES]; /* operators' section: per class */
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
    /* Each shard's list tails' stamps (NO_STAMP: empty), for evictors that
     * do not hold the shard's lock; written under it. */
    _Atomic uint64_t tails[LRU_LISTS][MC_SHARDS];
    struct mc_shard shards[MC_SHARDS];
    /* operators' section: called for every evicted item (watch) */
    _Atomic(mc_store_evict_fn) evict_fn;
    void *_Atomic evict_arg;
};

/* The operators' section (end of file): per-class counts kept by the paths
 * that link, free, evict and reclaim items. */
static void ops_linked(struct mc_shard *sh, const struct mc_item *it, int sign);
static void ops_evicted(struct mc_store *s, struct mc_shard *sh, const struct mc_item *it);
static void ops_reclaimed(struct mc_shard *sh, const struct mc_item *it, bool flushed);
static bool reserve(struct mc_store *s, struct mc_shard *own, const struct mc_item *keep,
                    size_t cost, int64_t now);

size_t mc_item_cost(size_t nkey, size_t nbytes)
{
    return sizeof(struct mc_item) + nkey + nbytes + 2 + MC_ITEM_OVERHEAD;
}

static size_t item_cost(const struct mc_item *it)
{
    return mc_item_cost(it->nkey, it->nbytes);
}

/* A seeded 64-bit hash (8 bytes at a time, then a finaliser). */
static uint64_t mc_hash(uint64_t seed, const char *k, size_t n)
{
    uint64_t h = seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, k, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        k += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = 0;
        memcpy(&v, k, n);
        h = (h ^ v) * 0x94d049bb133111ebull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

struct mc_store *mc_store_new(size_t limit, size_t item_max)
{
    struct mc_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_init(&s->limit, limit);
    atomic_init(&s->item_max, item_max);
    if (getrandom(&s->seed, sizeof s->seed, GRND_NONBLOCK) != (ssize_t)sizeof s->seed)
        s->seed = (uint64_t)(uintptr_t)s ^ 0x5bd1e995u;
    for (unsigned i = 0; i < MC_SHARDS; i++) /* before any mc_store_free */
        for (int l = 0; l < LRU_LISTS; l++) {
            wharf_list_init(&s->shards[i].lists[l]);
            atomic_init(&s->tails[l][i], NO_STAMP);
        }
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[i];
        pthread_mutex_init(&sh->lock, NULL);
        sh->nbuckets = MC_BUCKETS_MIN;
        sh->buckets = calloc(sh->nbuckets, sizeof *sh->buckets);
        if (!sh->buckets) {
            mc_store_free(s);
            return NULL;
        }
    }
    return s;
}

void mc_store_free(struct mc_store *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[i];
        struct wharf_list *e, *next;
        for (int l = 0; l < LRU_LISTS; l++)
            wharf_list_foreach_safe(e, next, &sh->lists[l])
                free(wharf_list_entry(e, struct mc_item, lru));
        free(sh->buckets);
        pthread_mutex_destroy(&sh->lock);
    }
    free(s);
}

size_t mc_store_limit(const struct mc_store *s)
{
    return atomic_load_explicit(&((struct mc_store *)s)->limit, memory_order_relaxed);
}

size_t mc_store_item_max(const struct mc_store *s)
{
    return atomic_load_explicit(&((struct mc_store *)s)->item_max, memory_order_relaxed);
}

static struct mc_shard *shard_of(struct mc_store *s, uint64_t hash)
{
    return &s->shards[hash >> (64 - MC_SHARD_BITS)];
}

/* The next CAS id (memcached's get_cas_id: 1, 2, ...). */
static uint64_t next_cas(struct mc_store *s)
{
    return atomic_fetch_add_explicit(&s->cas_last, 1, memory_order_relaxed) + 1;
}

static unsigned shard_index(const struct mc_store *s, const struct mc_shard *sh)
{
    return (unsigned)(sh - s->shards);
}

/* ---- LRU lists (shard locked) ---- */

static uint64_t lru_clock(struct mc_store *s)
{
    return atomic_load_explicit(&s->clock, memory_order_relaxed);
}

/* How much the store stores after an item before it leaves hot. */
static uint64_t lru_hot_span(struct mc_store *s)
{
    return (uint64_t)mc_store_limit(s) / 100 * HOT_PCT;
}

static struct mc_item *lru_tail(struct mc_shard *sh, int l)
{
    struct wharf_list *e = wharf_list_last(&sh->lists[l]);
    return e ? wharf_list_entry(e, struct mc_item, lru) : NULL;
}

/* Tells evictors the stamp of sh's list l's tail. */
static void lru_publish(struct mc_store *s, struct mc_shard *sh, int l)
{
    struct mc_item *t = lru_tail(sh, l);
    uint64_t v = t ? t->stamp : NO_STAMP;
    _Atomic uint64_t *p = &s->tails[l][shard_index(s, sh)];
    if (atomic_load_explicit(p, memory_order_relaxed) != v) /* spare the line */
        atomic_store_explicit(p, v, memory_order_relaxed);
}

/* Puts it at the head of list l, stamped no older than the head. */
static void lru_link(struct mc_store *s, struct mc_shard *sh, struct mc_item *it, int l)
{
    struct wharf_list *e = wharf_list_first(&sh->lists[l]);
    if (e) {
        uint64_t head = wharf_list_entry(e, struct mc_item, lru)->stamp;
        if (it->stamp < head)
            it->stamp = head;
    }
    it->lru_seg = (uint8_t)l;
    wharf_list_insert_head(&sh->lists[l], &it->lru);
    sh->list_bytes[l] += item_cost(it);
    if (!e)
        lru_publish(s, sh, l);
}

static void lru_unlink(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    int l = it->lru_seg;
    bool tail = wharf_list_last(&sh->lists[l]) == &it->lru;
    wharf_list_remove(&it->lru);
    sh->list_bytes[l] -= item_cost(it);
    if (tail)
        lru_publish(s, sh, l);
}

/* Moves it to the head of warm, as read again (its active mark spent). */
static void lru_to_warm(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    lru_unlink(s, sh, it);
    it->active = 0;
    it->stamp = lru_clock(s);
    lru_link(s, sh, it, LRU_WARM);
}

static void lru_to_cold(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    lru_unlink(s, sh, it);
    lru_link(s, sh, it, LRU_COLD);
}

/*
 * memcached's LRU maintainer for one shard, at most `max` moves: hot's
 * tail items past the hot span go to warm if active, else to cold; while
 * warm holds more than WARM_PCT % of the shard's bytes its tail goes back
 * to warm's head if active, else to cold.
 */
static void lru_maintain(struct mc_store *s, struct mc_shard *sh, size_t max)
{
    uint64_t now = lru_clock(s), span = lru_hot_span(s);
    struct mc_item *it;
    while (max > 0 && (it = lru_tail(sh, LRU_HOT)) != NULL && now - it->stamp > span) {
        if (it->active)
            lru_to_warm(s, sh, it);
        else
            lru_to_cold(s, sh, it);
        max--;
    }
    /* Warm's share is of the shard's bytes, but never less than of its
     * share of the limit: a shard does not squeeze warm while the cache
     * is still filling, or for having fewer items than the average. */
    size_t base = mc_store_limit(s) / MC_SHARDS;
    if (base < sh->st.bytes)
        base = sh->st.bytes;
    while (max > 0 && sh->list_bytes[LRU_WARM] > base / 100 * WARM_PCT &&
           (it = lru_tail(sh, LRU_WARM)) != NULL) {
        if (it->active)
            lru_to_warm(s, sh, it);
        else
            lru_to_cold(s, sh, it);
        max--;
    }
}

/* A get or touch found it (memcached's do_item_bump): the first hit marks
 * it fetched, the next active; an active item in cold goes to warm now,
 * one elsewhere when the maintainer reaches it. */
static void lru_hit(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    if (it->active)
        return;
    if (!it->fetched) {
        it->fetched = 1;
        return;
    }
    if (it->lru_seg == LRU_COLD)
        lru_to_warm(s, sh, it);
    else
        it->active = 1;
}

static struct mc_item **bucket_of(struct mc_shard *sh, uint64_t hash)
{
    return &sh->buckets[hash & (sh->nbuckets - 1)];
}

static void table_grow(struct mc_shard *sh)
{
    size_t n = sh->nbuckets * 2;
    struct mc_item **b = calloc(n, sizeof *b);
    if (!b)
        return; /* chains just get longer */
    for (size_t i = 0; i < sh->nbuckets; i++) {
        for (struct mc_item *it = sh->buckets[i], *next; it; it = next) {
            next = it->hnext;
            struct mc_item **slot = &b[it->hash & (n - 1)];
            it->hnext = *slot;
            *slot = it;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = n;
    sh->reclaim_bucket = 0;
}

/* Links a new item (its cost already reserved) at the head of hot, where
 * it is the newest item of the store. */
static void item_link(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    struct mc_item **slot = bucket_of(sh, it->hash);
    it->hnext = *slot;
    *slot = it;
    size_t cost = item_cost(it);
    it->active = 0;
    it->stamp = atomic_fetch_add_explicit(&s->clock, cost, memory_order_relaxed) + cost;
    lru_link(s, sh, it, LRU_HOT);
    sh->nitems++;
    sh->st.curr_items++;
    sh->st.total_items++;
    sh->st.bytes += cost;
    ops_linked(sh, it, 1);
    if (sh->nitems > sh->nbuckets + sh->nbuckets / 2)
        table_grow(sh);
    lru_maintain(s, sh, MAINTAIN_STEP);
}

/* ---- item references (mc_store_get_ref) ---- */

/* Drops one reference to an unlinked item whose `store` is set: the last
 * one frees it and gives its bytes back to the limit. */
void mc_item_release(struct mc_item *it)
{
    if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) != 1)
        return;
    atomic_fetch_sub_explicit(&it->store->used, item_cost(it), memory_order_relaxed);
    free(it);
}

static void item_take_ref(const struct mc_item *it, void *arg)
{
    struct mc_item *m = (struct mc_item *)it;
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    *(struct mc_item **)arg = m;
}

struct mc_item *mc_store_get_ref(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                                 bool touch, int64_t exptime)
{
    struct mc_item *it = NULL;
    mc_store_get(s, key, nkey, now, touch, exptime, item_take_ref, &it);
    return it;
}

/* Whether only the store holds it (shard locked: no reference can be
 * taken meanwhile), so that it may be changed in place. */
static bool item_unshared(struct mc_item *it)
{
    return atomic_load_explicit(&it->refs, memory_order_acquire) == 1;
}

/* Unlinks it from its chain and the LRU and drops the store's reference:
 * it is freed, and its bytes given back, when no mc_store_get_ref
 * reference is left (at once, mostly). */
static void item_free(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    struct mc_item **pp = bucket_of(sh, it->hash);
    while (*pp && *pp != it)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = it->hnext;
    lru_unlink(s, sh, it);
    sh->nitems--;
    sh->st.curr_items--;
    size_t cost = item_cost(it);
    sh->st.bytes -= cost;
    ops_linked(sh, it, -1);
    it->store = s; /* no longer in a chain: for the last release */
    mc_item_release(it);
}

/* A header and a value of nbytes for a copy of it: the fields up to the
 * reference count (never the count itself, which holders change without
 * the lock), the key, and a count of 1 (the store's).  Value and "\r\n"
 * are the caller's to write; NULL on ENOMEM. */
static struct mc_item *item_clone_header(const struct mc_item *it, size_t nbytes)
{
    struct mc_item *n = malloc(sizeof *n + it->nkey + nbytes + 2);
    if (!n)
        return NULL;
    memcpy(n, it, offsetof(struct mc_item, refs));
    atomic_init(&n->refs, 1);
    n->nbytes = (uint32_t)nbytes;
    memcpy(n->data, it->data, it->nkey);
    return n;
}

/*
 * Puts a copy of it (linked, its key's item) where it is: the same hash
 * chain, LRU list and place in it, counters unchanged, so that the caller
 * may change the copy's cas and marks while holders of references to it
 * read it unlocked.  The store's reference to it is dropped (the last
 * holder frees it).  Reserves the copy's bytes, evicting as any store
 * does; NULL, it untouched, when there is no memory for it.
 */
static struct mc_item *item_copy(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                                 int64_t now)
{
    size_t cost = item_cost(it);
    if (!reserve(s, sh, it, cost, now))
        return NULL;
    struct mc_item *n = item_clone_header(it, it->nbytes);
    if (!n) {
        atomic_fetch_sub_explicit(&s->used, cost, memory_order_relaxed);
        return NULL;
    }
    memcpy(n->data + it->nkey, mc_item_value(it), (size_t)it->nbytes + 2);
    struct mc_item **pp = bucket_of(sh, it->hash);
    while (*pp != it)
        pp = &(*pp)->hnext;
    *pp = n; /* n->hnext is it's */
    wharf_list_insert_after(&it->lru, &n->lru); /* same stamp: the tails stay */
    wharf_list_remove(&it->lru);
    it->store = s;
    mc_item_release(it);
    return n;
}

/* Whether it is dead at `now` (expired, or flushed). */
static bool item_dead(struct mc_store *s, const struct mc_item *it, int64_t now, bool *flushed)
{
    if (it->exptime != 0 && it->exptime <= now) {
        *flushed = false;
        return true;
    }
    int64_t f = atomic_load_explicit(&s->flush_at, memory_order_relaxed);
    if (f != 0 && f <= now && it->time < f) { /* memcached: time <= flush - 1 */
        *flushed = true;
        return true;
    }
    return false;
}

/* Frees a dead item (expired, or flushed), counting it as memcached does. */
static void item_reclaim(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                         bool flushed)
{
    if (!it->fetched && !flushed)
        sh->st.expired_unfetched++;
    sh->st.reclaimed++;
    ops_reclaimed(sh, it, flushed);
    item_free(s, sh, it);
}

/* The live item for key in sh, or NULL (a dead one found is freed). */
static struct mc_item *item_find(struct mc_store *s, struct mc_shard *sh, uint64_t hash,
                                 const char *key, size_t nkey, int64_t now, bool count)
{
    for (struct mc_item *it = *bucket_of(sh, hash); it; it = it->hnext) {
        if (it->hash != hash || it->nkey != nkey || memcmp(it->data, key, nkey) != 0)
            continue;
        bool flushed;
        if (item_dead(s, it, now, &flushed)) {
            if (count) {
                if (flushed)
                    sh->st.get_flushed++;
                else
                    sh->st.get_expired++;
            }
            item_reclaim(s, sh, it, flushed);
            return NULL;
        }
        return it;
    }
    return NULL;
}

/* ---- eviction ---- */

/* Every eviction goes through here: counts it, and frees it. */
static void item_evict(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    sh->st.evictions++;
    if (!it->fetched)
        sh->st.evicted_unfetched++;
    ops_evicted(s, sh, it); /* per-class counts and the watch hook: keep one call */
    item_free(s, sh, it);
}

/* Frees sh's oldest item other than `keep` (sh locked by the caller):
 * cold's tail, else hot's (an active one is moved to warm instead and the
 * next looked at), else warm's; reclaimed rather than evicted if it is dead
 * at `now` (0: not looked at).  False if sh has none. */
static bool evict_from(struct mc_store *s, struct mc_shard *sh, const struct mc_item *keep,
                       int64_t now)
{
    lru_maintain(s, sh, MAINTAIN_STEP);
    struct mc_item *it = NULL;
    static const int order[] = {LRU_COLD, LRU_HOT, LRU_WARM};
    for (int i = 0; i < LRU_LISTS && !it; i++) {
        struct wharf_list *l = &sh->lists[order[i]];
        for (struct wharf_list *e = l->prev; e != l && !it;) {
            struct mc_item *c = wharf_list_entry(e, struct mc_item, lru);
            e = e->prev;
            if (c == keep)
                continue;
            if (order[i] == LRU_HOT && c->active)
                lru_to_warm(s, sh, c); /* each item at most once: warm is after hot */
            else
                it = c;
        }
    }
    if (!it)
        return false;
    bool flushed;
    if (now != 0 && item_dead(s, it, now, &flushed))
        item_reclaim(s, sh, it, flushed);
    else
        item_evict(s, sh, it);
    return true;
}

/* The shard, not in `skip`, whose oldest item goes first (MC_SHARDS if
 * none has one): the oldest cold tail, or hot tail past the hot span; if no
 * shard has either, the oldest hot tail, then the oldest warm tail.  Reads
 * the published tails, no lock. */
static unsigned evict_pick(struct mc_store *s, uint64_t skip)
{
    uint64_t now = lru_clock(s), span = lru_hot_span(s), best = NO_STAMP;
    unsigned at = MC_SHARDS;
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        uint64_t c = atomic_load_explicit(&s->tails[LRU_COLD][i], memory_order_relaxed);
        uint64_t h = atomic_load_explicit(&s->tails[LRU_HOT][i], memory_order_relaxed);
        if (h < c && h <= now && now - h > span)
            c = h;
        if (c < best && !(skip >> i & 1)) {
            best = c;
            at = i;
        }
    }
    for (int l = LRU_HOT; l <= LRU_WARM && at == MC_SHARDS; l++)
        for (unsigned i = 0; i < MC_SHARDS; i++) {
            uint64_t t = atomic_load_explicit(&s->tails[l][i], memory_order_relaxed);
            if (t < best && !(skip >> i & 1)) {
                best = t;
                at = i;
            }
        }
    return at;
}

/*
 * Evicts the oldest item of the whole store (see the top comment), `own`
 * being the shard the caller holds (or NULL: then other shards are waited
 * for, not tried) and `keep` an item of it not to evict.  False when no
 * shard had one to give; *busy counts the shards skipped as locked.
 */
static bool evict_oldest(struct mc_store *s, struct mc_shard *own, const struct mc_item *keep,
                         int64_t now, unsigned *busy)
{
    _Static_assert(MC_SHARDS <= 64, "one bit per shard in `tried`");
    uint64_t tried = 0;
    for (unsigned n = 0; n < MC_SHARDS; n++) {
        unsigned best = evict_pick(s, tried);
        if (best == MC_SHARDS)
            return false;
        tried |= 1ull << best;
        struct mc_shard *sh = &s->shards[best];
        if (sh == own) {
            if (evict_from(s, sh, keep, now))
                return true;
            continue;
        }
        if (own == NULL)
            pthread_mutex_lock(&sh->lock);
        else if (pthread_mutex_trylock(&sh->lock) != 0) {
            (*busy)++;
            continue;
        }
        bool done = evict_from(s, sh, NULL, now);
        pthread_mutex_unlock(&sh->lock);
        if (done)
            return true;
    }
    return false;
}

/*
 * Reserves cost bytes against the limit, evicting as needed; `own` is the
 * shard the caller holds and `keep` an item of it not to evict.  Never lets
 * `used` pass the limit.  False when nothing more can be evicted.
 */
static bool reserve(struct mc_store *s, struct mc_shard *own, const struct mc_item *keep,
                    size_t cost, int64_t now)
{
    size_t limit = mc_store_limit(s);
    if (cost > limit)
        return false;
    for (int pass = 0;;) {
        size_t u = atomic_load_explicit(&s->used, memory_order_relaxed);
        if (u + cost <= limit) {
            if (atomic_compare_exchange_weak_explicit(&s->used, &u, u + cost,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
                return true;
            continue;
        }
        unsigned busy = 0;
        if (evict_oldest(s, own, keep, now, &busy))
            continue;
        if (busy == 0 || ++pass > 1000)
            return false;
        sched_yield();
    }
}

enum mc_result mc_store_get(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                            bool touch, int64_t exptime,
                            void (*fn)(const struct mc_item *it, void *arg), void *arg)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    pthread_mutex_lock(&sh->lock);
    struct mc_item *it = item_find(s, sh, h, key, nkey, now, true);
    if (it) {
        lru_hit(s, sh, it);
        if (touch)
            it->exptime = exptime;
        if (fn)
            fn(it, arg);
    }
    pthread_mutex_unlock(&sh->lock);
    return it ? MC_FOUND : MC_NOT_FOUND;
}

/* Whether a store of `mode` may go ahead given the item found (old, or
 * NULL): MC_STORED, or why not.  A failed add moves nothing in the LRU
 * (memcached's segmented LRU only updates the item's time). */
static enum mc_result store_allowed(enum mc_store_mode mode, struct mc_item *old,
                                    uint64_t cas)
{
    switch (mode) {
    case MC_SET:
        return MC_STORED;
    case MC_ADD:
        return old ? MC_NOT_STORED : MC_STORED;
    case MC_REPLACE:
        return old ? MC_STORED : MC_NOT_STORED;
    case MC_APPEND:
    case MC_PREPEND: /* a cas id given (binary protocol) must match */
        return !old ? MC_NOT_STORED : cas && old->cas != cas ? MC_EXISTS : MC_STORED;
    case MC_CAS:
        return !old ? MC_NOT_FOUND : old->cas != cas ? MC_EXISTS : MC_STORED;
    }
    return MC_NOT_STORED;
}

/* A new item of key and a value of `total` bytes: the given value, or for
 * append/prepend the old value with it at the end/start. */
static struct mc_item *item_build(struct mc_store *s, struct mc_shard *sh, uint64_t h,
                                  const char *key, size_t nkey, enum mc_store_mode mode,
                                  const struct mc_item *old, const char *value, size_t nbytes,
                                  size_t total)
{
    struct mc_item *it = malloc(sizeof *it + nkey + total + 2);
    if (!it)
        return NULL;
    memset(it, 0, sizeof *it);
    atomic_init(&it->refs, 1); /* the store's */
    it->hash = h;
    it->cas = next_cas(s);
    it->nbytes = (uint32_t)total;
    it->nkey = (uint8_t)nkey;
    memcpy(it->data, key, nkey);
    char *v = it->data + nkey;
    if (mode == MC_APPEND) {
        memcpy(v, mc_item_value(old), old->nbytes);
        memcpy(v + old->nbytes, value, nbytes);
    } else if (mode == MC_PREPEND) {
        memcpy(v, value, nbytes);
        memcpy(v + nbytes, mc_item_value(old), old->nbytes);
    } else {
        memcpy(v, value, nbytes);
    }
    memcpy(v + total, "\r\n", 2);
    return it;
}

enum mc_result mc_store_store_cas(struct mc_store *s, enum mc_store_mode mode, const char *key,
                                  size_t nkey, uint32_t flags, int64_t exptime,
                                  const char *value, size_t nbytes, uint64_t cas, int64_t now,
                                  uint64_t *new_cas)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    pthread_mutex_lock(&sh->lock);
    struct mc_item *old = item_find(s, sh, h, key, nkey, now, false);
    enum mc_result rc = store_allowed(mode, old, cas);
    if (rc != MC_STORED)
        goto out;
    size_t total = nbytes;
    if (mode == MC_APPEND || mode == MC_PREPEND) {
        total += old->nbytes;
        flags = old->flags;
        exptime = old->exptime;
    }
    if (total > mc_store_item_max(s) || total > UINT32_MAX) {
        rc = MC_TOO_LARGE;
        goto out;
    }
    size_t cost = mc_item_cost(nkey, total);
    if (!reserve(s, sh, old, cost, now)) {
        rc = MC_NO_MEMORY;
        goto out;
    }
    struct mc_item *it = item_build(s, sh, h, key, nkey, mode, old, value, nbytes, total);
    if (!it) {
        atomic_fetch_sub_explicit(&s->used, cost, memory_order_relaxed);
        rc = MC_NO_MEMORY;
        goto out;
    }
    it->exptime = exptime;
    it->time = now;
    it->flags = flags;
    if (old)
        item_free(s, sh, old);
    item_link(s, sh, it);
    if (new_cas)
        *new_cas = it->cas;
out:
    if (rc == MC_TOO_LARGE || rc == MC_NO_MEMORY) {
        /* As memcached: a failed set must not leave the stale value behind. */
        if (mode == MC_SET && old)
            item_free(s, sh, old);
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

enum mc_result mc_store_delete(struct mc_store *s, const char *key, size_t nkey, int64_t now)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    pthread_mutex_lock(&sh->lock);
    struct mc_item *it = item_find(s, sh, h, key, nkey, now, false);
    if (it)
        item_free(s, sh, it);
    pthread_mutex_unlock(&sh->lock);
    return it ? MC_FOUND : MC_NOT_FOUND;
}

/* memcached's safe_strtoull over a value p[0..n) (which "\r\n" follows):
 * strtoull's blanks and sign, then the end or a blank; no overflow, no
 * negative number.  Any length, as memcached (zeros may pad it). */
static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
    size_t i = 0;
    while (i < n && isspace((unsigned char)p[i]))
        i++;
    bool neg = i < n && p[i] == '-';
    if (i < n && (p[i] == '-' || p[i] == '+'))
        i++;
    size_t digits = i;
    uint64_t v = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false; /* ERANGE */
        v = v * 10 + d;
    }
    if (i == digits || (i < n && !isspace((unsigned char)p[i])))
        return false;
    if (neg)
        v = -v;
    if ((int64_t)v < 0 && memchr(p, '-', n))
        return false;
    *out = v;
    return true;
}

enum mc_result mc_store_delta_cas(struct mc_store *s, const char *key, size_t nkey, bool incr,
                                  uint64_t delta, int64_t now, uint64_t *value, uint64_t *cas)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    enum mc_result rc = MC_FOUND;
    pthread_mutex_lock(&sh->lock);
    struct mc_item *it = item_find(s, sh, h, key, nkey, now, false);
    uint64_t v;
    if (!it) {
        rc = MC_NOT_FOUND;
    } else if (it->nbytes && cas && *cas && it->cas != *cas) {
        rc = MC_EXISTS;
    } else if (!parse_u64(mc_item_value(it), it->nbytes, &v)) {
        rc = MC_NON_NUMERIC;
    } else {
        if (incr)
            v += delta; /* wraps, as memcached */
        else
            v = delta > v ? 0 : v - delta;
        *value = v;
        char num[24];
        int len = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
        if ((size_t)len <= it->nbytes && item_unshared(it)) {
            /* In place, padded with blanks to the old length (as memcached;
             * like its do_item_update, nothing moves in the LRU). */
            char *d = it->data + it->nkey;
            memcpy(d, num, (size_t)len);
            memset(d + len, ' ', it->nbytes - (size_t)len);
            it->cas = next_cas(s);
        } else {
            size_t cost = mc_item_cost(nkey, (size_t)len);
            struct mc_item *n = NULL;
            if (reserve(s, sh, it, cost, now)) {
                n = item_clone_header(it, (size_t)len);
                if (!n)
                    atomic_fetch_sub_explicit(&s->used, cost, memory_order_relaxed);
            }
            if (!n) {
                rc = MC_NO_MEMORY;
            } else {
                n->time = now;
                n->cas = next_cas(s);
                memcpy(n->data + nkey, num, (size_t)len);
                memcpy(n->data + nkey + len, "\r\n", 2);
                item_free(s, sh, it);
                item_link(s, sh, n);
                sh->st.total_items--; /* a replacement, not a new item */
                it = n;
            }
        }
        if (rc == MC_FOUND && cas)
            *cas = it->cas;
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

void mc_store_flush(struct mc_store *s, int64_t at, int64_t now)
{
    if (at > now) {
        atomic_store(&s->flush_at, at);
        return;
    }
    atomic_store(&s->flush_at, 0);
    next_cas(s); /* memcached takes one here too */
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[i];
        pthread_mutex_lock(&sh->lock);
        struct wharf_list *e;
        for (int l = 0; l < LRU_LISTS; l++)
            while ((e = wharf_list_first(&sh->lists[l])) != NULL)
                item_free(s, sh, wharf_list_entry(e, struct mc_item, lru));
        pthread_mutex_unlock(&sh->lock);
    }
}

/* Frees up to `max` dead items of sh (locked), looking at no more than
 * `look` items and 4 * look + 256 buckets, from where the last call
 * stopped.  Returns how many it freed. */
static size_t reclaim_shard(struct mc_store *s, struct mc_shard *sh, size_t max, size_t look,
                            int64_t now)
{
    size_t freed = 0, seen = 0, buckets = sh->nbuckets;
    if (buckets > 4 * look + 256)
        buckets = 4 * look + 256;
    for (size_t b = 0; b < buckets && freed < max && seen < look; b++) {
        size_t idx = sh->reclaim_bucket;
        struct mc_item *it = sh->buckets[idx], *next;
        for (; it && freed < max; it = next) {
            next = it->hnext;
            seen++;
            bool flushed;
            if (item_dead(s, it, now, &flushed)) {
                item_reclaim(s, sh, it, flushed);
                freed++;
            }
        }
        if (!it) /* the chain is done: the next call goes on after it */
            sh->reclaim_bucket = (idx + 1) & (sh->nbuckets - 1);
    }
    return freed;
}

size_t mc_store_reclaim(struct mc_store *s, size_t max, int64_t now)
{
    /* Every shard gets its share of the work; the first in turn. */
    size_t look = 4 * max / MC_SHARDS + 16, freed = 0;
    unsigned first = atomic_fetch_add_explicit(&s->reclaim_next, 1, memory_order_relaxed);
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[(first + i) % MC_SHARDS];
        pthread_mutex_lock(&sh->lock);
        if (freed < max)
            freed += reclaim_shard(s, sh, max - freed, look, now);
        lru_maintain(s, sh, look);
        pthread_mutex_unlock(&sh->lock);
    }
    return freed;
}

void mc_store_stats(struct mc_store *s, struct mc_store_stats *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[i];
        pthread_mutex_lock(&sh->lock);
        out->curr_items += sh->st.curr_items;
        out->total_items += sh->st.total_items;
        out->bytes += sh->st.bytes;
        out->evictions += sh->st.evictions;
        out->expired_unfetched += sh->st.expired_unfetched;
        out->evicted_unfetched += sh->st.evicted_unfetched;
        out->reclaimed += sh->st.reclaimed;
        out->get_expired += sh->st.get_expired;
        out->get_flushed += sh->st.get_flushed;
        pthread_mutex_unlock(&sh->lock);
    }
}

void mc_store_set_limits(struct mc_store *s, size_t limit, size_t item_max)
{
    atomic_store_explicit(&s->item_max, item_max, memory_order_relaxed);
    atomic_store_explicit(&s->limit, limit, memory_order_relaxed);
    /* The hot span shrinks with the limit: every shard's lists first, then
     * the oldest of the store out until it fits (or nothing is left). */
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[i];
        pthread_mutex_lock(&sh->lock);
        lru_maintain(s, sh, sh->nitems);
        pthread_mutex_unlock(&sh->lock);
    }
    unsigned busy = 0;
    while (atomic_load_explicit(&s->used, memory_order_relaxed) > limit &&
           evict_oldest(s, NULL, NULL, 0, &busy))
        ;
}

/* ---- the binary protocol's CAS variants (mc_binary.c) -------------------- */

enum mc_result mc_store_store(struct mc_store *s, enum mc_store_mode mode, const char *key,
                              size_t nkey, uint32_t flags, int64_t exptime, const char *value,
                              size_t nbytes, uint64_t cas, int64_t now)
{
    return mc_store_store_cas(s, mode, key, nkey, flags, exptime, value, nbytes, cas, now, NULL);
}

enum mc_result mc_store_delta(struct mc_store *s, const char *key, size_t nkey, bool incr,
                              uint64_t delta, int64_t now, uint64_t *value)
{
    return mc_store_delta_cas(s, key, nkey, incr, delta, now, value, NULL);
}

enum mc_result mc_store_delete_cas(struct mc_store *s, const char *key, size_t nkey,
                                   uint64_t cas, int64_t now)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    enum mc_result rc = MC_NOT_FOUND;
    pthread_mutex_lock(&sh->lock);
    struct mc_item *it = item_find(s, sh, h, key, nkey, now, false);
    if (it && cas && it->cas != cas) {
        rc = MC_EXISTS;
    } else if (it) {
        item_free(s, sh, it);
        rc = MC_FOUND;
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

/* ---- operators' view: size classes, per-class counts, walk, peek, hooks ----
 * (mc_store.h's last section; used by mc_stats.c, mc_crawler.c, mc_watch.c) */

/* memcached's ITEM_ntotal: sizeof(item) 48, key + NUL, value + CRLF, CAS 8. */
size_t mc_store_ntotal(size_t nkey, size_t nbytes)
{
    return 48 + nkey + 1 + nbytes + 2 + 8;
}

/* memcached's slabs_init with its defaults (-n 48, -f 1.25, 8-byte
 * alignment, slab_chunk_max 524288): class i's chunk size. */
static size_t class_size[MC_CLASSES];

static void class_init(void)
{
    size_t size = 48 + 48;
    unsigned i = 1;
    while (i < MC_CLASS_MAX && size <= 524288 / 1.25) {
        if (size % 8)
            size += 8 - size % 8;
        class_size[i++] = size;
        size = (size_t)((double)size * 1.25);
    }
    class_size[i] = 524288;
}

size_t mc_store_class_size(unsigned id)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, class_init);
    return id >= 1 && id <= MC_CLASS_MAX ? class_size[id] : 0;
}

unsigned mc_store_class_of(size_t nkey, size_t nbytes)
{
    size_t n = mc_store_ntotal(nkey, nbytes);
    unsigned lo = 1, hi = MC_CLASS_MAX;
    if (n >= mc_store_class_size(MC_CLASS_MAX))
        return MC_CLASS_MAX;
    while (lo < hi) { /* the first class whose chunk holds n */
        unsigned mid = (lo + hi) / 2;
        if (class_size[mid] >= n)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void ops_linked(struct mc_shard *sh, const struct mc_item *it, int sign)
{
    struct mc_class_stats *c = &sh->cls[mc_store_class_of(it->nkey, it->nbytes)];
    c->number += (uint64_t)(int64_t)sign;
    c->requested += (uint64_t)((int64_t)sign * (int64_t)mc_store_ntotal(it->nkey, it->nbytes));
}

static void ops_evicted(struct mc_store *s, struct mc_shard *sh, const struct mc_item *it)
{
    struct mc_class_stats *c = &sh->cls[mc_store_class_of(it->nkey, it->nbytes)];
    int64_t now = (int64_t)time(NULL);
    c->evicted++;
    if (it->exptime != 0)
        c->evicted_nonzero++;
    if (!it->fetched)
        c->evicted_unfetched++;
    c->evicted_time = (uint64_t)(now > it->time ? now - it->time : 0);
    mc_store_evict_fn fn = atomic_load_explicit(&s->evict_fn, memory_order_acquire);
    if (fn)
        fn(atomic_load_explicit(&s->evict_arg, memory_order_relaxed), it, now);
}

static void ops_reclaimed(struct mc_shard *sh, const struct mc_item *it, bool flushed)
{
    struct mc_class_stats *c = &sh->cls[mc_store_class_of(it->nkey, it->nbytes)];
    c->reclaimed++;
    if (!it->fetched && !flushed)
        c->expired_unfetched++;
}

void mc_store_class_stats(struct mc_store *s, struct mc_class_stats out[MC_CLASSES])
{
    memset(out, 0, sizeof(struct mc_class_stats) * MC_CLASSES);
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[i];
        pthread_mutex_lock(&sh->lock);
        for (unsigned k = 1; k < MC_CLASSES; k++) {
            const struct mc_class_stats *c = &sh->cls[k];
            out[k].number += c->number;
            out[k].requested += c->requested;
            out[k].evicted += c->evicted;
            out[k].evicted_nonzero += c->evicted_nonzero;
            if (c->evicted_time > out[k].evicted_time)
                out[k].evicted_time = c->evicted_time;
            out[k].reclaimed += c->reclaimed;
            out[k].expired_unfetched += c->expired_unfetched;
            out[k].evicted_unfetched += c->evicted_unfetched;
        }
        pthread_mutex_unlock(&sh->lock);
    }
}

void mc_store_reset_stats(struct mc_store *s)
{
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[i];
        pthread_mutex_lock(&sh->lock);
        struct mc_store_stats *st = &sh->st;
        st->total_items = st->evictions = st->expired_unfetched = st->evicted_unfetched = 0;
        st->reclaimed = st->get_expired = st->get_flushed = 0;
        for (unsigned k = 0; k < MC_CLASSES; k++) {
            struct mc_class_stats *c = &sh->cls[k];
            uint64_t number = c->number, requested = c->requested;
            memset(c, 0, sizeof *c);
            c->number = number;
            c->requested = requested;
        }
        pthread_mutex_unlock(&sh->lock);
    }
}

void mc_store_set_evict_hook(struct mc_store *s, mc_store_evict_fn fn, void *arg)
{
    atomic_store_explicit(&s->evict_arg, arg, memory_order_relaxed);
    atomic_store_explicit(&s->evict_fn, fn, memory_order_release);
}

bool mc_store_peek(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                   unsigned *cls, uint32_t *nbytes)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    pthread_mutex_lock(&sh->lock);
    struct mc_item *it = item_find(s, sh, h, key, nkey, now, false);
    if (it) {
        *cls = mc_store_class_of(it->nkey, it->nbytes);
        *nbytes = it->nbytes;
    }
    pthread_mutex_unlock(&sh->lock);
    return it != NULL;
}

size_t mc_store_walk(struct mc_store *s, struct mc_walk *w, int64_t now,
                     struct mc_walk_item *out, size_t max)
{
    size_t n = 0;
    while (n == 0 && !w->done) {
        struct mc_shard *sh = &s->shards[w->shard];
        pthread_mutex_lock(&sh->lock);
        while (n < max && w->bucket < sh->nbuckets) {
            size_t k = 0;
            struct mc_item *it = sh->buckets[w->bucket];
            for (; it && n < max; it = it->hnext, k++) {
                bool flushed;
                if (k < w->skip || item_dead(s, it, now, &flushed))
                    continue;
                struct mc_walk_item *o = &out[n++];
                o->exptime = it->exptime;
                o->time = it->time;
                o->cas = it->cas;
                o->nbytes = it->nbytes;
                o->nkey = it->nkey;
                o->fetched = it->fetched;
                memcpy(o->key, it->data, it->nkey);
            }
            if (it) { /* out is full in the middle of a chain */
                w->skip = k;
                break;
            }
            w->skip = 0;
            w->bucket++;
        }
        bool shard_done = w->bucket >= sh->nbuckets;
        pthread_mutex_unlock(&sh->lock);
        if (shard_done) {
            w->bucket = 0;
            w->skip = 0;
            if (++w->shard == MC_SHARDS)
                w->done = true;
        }
    }
    return n;
}

/* ---- the meta protocol's (mc_meta.c; mc_store.h says what each does) ---- */

/* A fetch: marked fetched, accessed now, most recently used. */
static void meta_bump(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                      int64_t now)
{
    lru_hit(s, sh, it);
    it->fetched = 1;
    if (now > it->time)
        it->touched = (uint32_t)(now - it->time);
}

/* Links a new never-expiring item of key and value[0..nbytes) with flags 0
 * (a vivify); NULL when memory is short. */
static struct mc_item *meta_link_new(struct mc_store *s, struct mc_shard *sh, uint64_t h,
                                     const char *key, size_t nkey, const char *value,
                                     size_t nbytes, const struct mc_meta_req *req, int64_t now)
{
    size_t cost = mc_item_cost(nkey, nbytes);
    if (!reserve(s, sh, NULL, cost, now))
        return NULL;
    struct mc_item *it = item_build(s, sh, h, key, nkey, MC_SET, NULL, value, nbytes, nbytes);
    if (!it) {
        atomic_fetch_sub_explicit(&s->used, cost, memory_order_relaxed);
        return NULL;
    }
    it->time = now;
    it->mflags = req->mflags;
    if (req->cas_in)
        it->cas = req->cas_in;
    item_link(s, sh, it);
    return it;
}

enum mc_result mc_store_meta_get(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                                 const struct mc_meta_req *req, mc_meta_fn fn, void *arg)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    enum mc_result rc = MC_FOUND;
    pthread_mutex_lock(&sh->lock);
    struct mc_item *it = item_find(s, sh, h, key, nkey, now, true);
    if (!it && req->vivify) {
        it = meta_link_new(s, sh, h, key, nkey, "", 0, req, now);
        rc = MC_STORED;
    }
    if (it) {
        bool ok = fn ? fn(it, rc == MC_STORED, arg) : true;
        if (ok && req->bump)
            meta_bump(s, sh, it, now);
    }
    pthread_mutex_unlock(&sh->lock);
    return it ? rc : MC_NOT_FOUND;
}

/* Whether ms may store over old (NULL: none), as memcached's do_store_item
 * decides; sets *stale when an older cas with I stores it stale. */
static enum mc_result meta_set_allowed(const struct mc_meta_set *ms, struct mc_item *old,
                                       bool *stale)
{
    *stale = false;
    if (!old) {
        switch (ms->mode) {
        case MC_SET:
        case MC_ADD: return MC_STORED;
        case MC_CAS: return MC_NOT_FOUND;
        default: return MC_NOT_STORED;
        }
    }
    switch (ms->mode) {
    case MC_ADD: /* as a failed ASCII add: nothing moves in the LRU */
        return MC_NOT_STORED;
    case MC_CAS:
        if (ms->cas != 0 && ms->cas == old->cas)
            return MC_STORED;
        if (ms->cas != 0 && ms->invalidate && ms->cas < old->cas) {
            *stale = true;
            return MC_STORED;
        }
        return MC_EXISTS;
    case MC_APPEND:
    case MC_PREPEND:
        return ms->cas != 0 && ms->cas != old->cas ? MC_EXISTS : MC_STORED;
    default:
        return MC_STORED;
    }
}

enum mc_result mc_store_meta_set(struct mc_store *s, const char *key, size_t nkey,
                                 const struct mc_meta_set *ms, const char *value, size_t nbytes,
                                 int64_t now, uint64_t *cas_out)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    pthread_mutex_lock(&sh->lock);
    struct mc_item *old = item_find(s, sh, h, key, nkey, now, false);
    bool stale, join = ms->mode == MC_APPEND || ms->mode == MC_PREPEND;
    enum mc_result rc = meta_set_allowed(ms, old, &stale);
    if (rc != MC_STORED)
        goto out;
    size_t total = nbytes + (join ? old->nbytes : 0);
    size_t cost = mc_item_cost(nkey, total);
    if (total > mc_store_item_max(s) || total > UINT32_MAX) {
        rc = join ? MC_NOT_STORED : MC_TOO_LARGE;
        goto out;
    }
    struct mc_item *it = NULL;
    if (reserve(s, sh, old, cost, now)) {
        it = item_build(s, sh, h, key, nkey, join ? ms->mode : MC_SET, old, value, nbytes,
                        total);
        if (!it)
            atomic_fetch_sub_explicit(&s->used, cost, memory_order_relaxed);
    }
    if (!it) {
        rc = join ? MC_NOT_STORED : MC_NO_MEMORY;
        goto out;
    }
    it->time = now;
    it->flags = join ? old->flags : ms->flags;
    it->exptime = join || stale ? old->exptime : ms->exptime;
    it->mflags = ms->mflags;
    if (stale)
        it->mflags |= MC_ITEM_STALE | (old->mflags & MC_ITEM_TOKEN_SENT);
    if (ms->cas_in)
        it->cas = ms->cas_in;
    *cas_out = it->cas;
    if (old)
        item_free(s, sh, old);
    item_link(s, sh, it);
out:
    if ((rc == MC_NO_MEMORY || rc == MC_TOO_LARGE) && old)
        item_free(s, sh, old); /* as memcached: no stale value stays behind */
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

enum mc_result mc_store_meta_delete(struct mc_store *s, const char *key, size_t nkey,
                                    bool has_cas, uint64_t cas, bool invalidate, bool new_ttl,
                                    int64_t exptime, uint64_t cas_in, int64_t now)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    enum mc_result rc = MC_FOUND;
    pthread_mutex_lock(&sh->lock);
    struct mc_item *it = item_find(s, sh, h, key, nkey, now, false);
    if (!it) {
        rc = MC_NOT_FOUND;
    } else if (has_cas && it->cas != cas) {
        rc = MC_EXISTS;
    } else if (invalidate) {
        /* A new cas: on a copy when someone holds the item (its cas must
         * not change under them); no memory for one drops the key. */
        struct mc_item *own = item_unshared(it) ? it : item_copy(s, sh, it, now);
        if (!own) {
            item_free(s, sh, it);
            goto out;
        }
        it = own;
        if (new_ttl)
            it->exptime = exptime;
        it->mflags = (uint8_t)((it->mflags | MC_ITEM_STALE) & ~MC_ITEM_TOKEN_SENT);
        it->cas = cas_in ? cas_in : next_cas(s);
    } else {
        item_free(s, sh, it);
    }
out:
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

/* Writes v at it's value in place, padded with blanks (it is long enough),
 * or replaces it with a new item; the item now holding the key, or NULL. */
static struct mc_item *meta_delta_write(struct mc_store *s, struct mc_shard *sh,
                                        struct mc_item *it, uint64_t v, int64_t now)
{
    char num[24];
    int len = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    if ((size_t)len <= it->nbytes && item_unshared(it)) { /* nobody is sending it */
        char *d = it->data + it->nkey;
        memcpy(d, num, (size_t)len);
        memset(d + len, ' ', it->nbytes - (size_t)len);
        it->cas = next_cas(s); /* in place: nothing moves in the LRU, as ASCII incr */
        return it;
    }
    size_t cost = mc_item_cost(it->nkey, (size_t)len);
    if (!reserve(s, sh, it, cost, now))
        return NULL;
    struct mc_item *n = item_clone_header(it, (size_t)len);
    if (!n) {
        atomic_fetch_sub_explicit(&s->used, cost, memory_order_relaxed);
        return NULL;
    }
    n->time = now;
    n->touched = 0;
    n->cas = next_cas(s);
    memcpy(n->data + it->nkey, num, (size_t)len);
    memcpy(n->data + it->nkey + len, "\r\n", 2);
    item_free(s, sh, it);
    item_link(s, sh, n);
    sh->st.total_items--; /* a replacement, not a new item */
    return n;
}

enum mc_result mc_store_meta_delta(struct mc_store *s, const char *key, size_t nkey, bool incr,
                                   uint64_t delta, uint64_t cas, uint64_t initial,
                                   const struct mc_meta_req *req, int64_t now, uint64_t *value,
                                   mc_meta_fn fn, void *arg)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    enum mc_result rc = MC_FOUND;
    pthread_mutex_lock(&sh->lock);
    struct mc_item *it = item_find(s, sh, h, key, nkey, now, false);
    uint64_t v;
    if (!it && !req->vivify) {
        rc = MC_NOT_FOUND;
    } else if (!it) {
        char num[24];
        int len = snprintf(num, sizeof num, "%llu", (unsigned long long)initial);
        it = meta_link_new(s, sh, h, key, nkey, num, (size_t)len, req, now);
        rc = it ? MC_STORED : MC_NO_MEMORY;
        *value = initial;
    } else if (it->nbytes == 0) {
        rc = MC_NON_NUMERIC;
        it = NULL;
    } else if (cas != 0 && it->cas != cas) {
        rc = MC_EXISTS; /* memcached checks the cas before the number */
        it = NULL;
    } else if (!parse_u64(mc_item_value(it), it->nbytes, &v)) {
        rc = MC_NON_NUMERIC;
        it = NULL;
    } else {
        v = incr ? v + delta : delta > v ? 0 : v - delta;
        *value = v;
        it = meta_delta_write(s, sh, it, v, now);
        if (!it)
            rc = MC_NO_MEMORY;
        else if (req->cas_in)
            it->cas = req->cas_in;
    }
    if (it && fn)
        fn(it, rc == MC_STORED, arg);
    pthread_mutex_unlock(&sh->lock);
    return rc;
}
