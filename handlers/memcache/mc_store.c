/*
 * mc_store.c - the memcache handler's shared cache (mc_store.h).
 *
 * MC_SHARDS shards, chosen by the top bits of a key's hash.  Each shard has
 * a mutex, a chained hash table that doubles when it holds 1.5 items per
 * bucket, and an LRU list (head = most recently used).  No lock is global:
 * the only shared write on the store path is the `used` byte count, an
 * atomic touched once per store and once per free (never by a get).
 *
 * Memory limit: every item costs mc_item_cost() bytes (its allocation plus a
 * fixed overhead for the allocator and its hash bucket), reserved with a
 * compare-and-swap that never lets `used` pass the limit.  When it would,
 * the store evicts: first the LRU tail of the shard it holds, then the
 * tails of the others (trylock only, so two writers evicting from each
 * other's shards cannot deadlock).  LRU order is per shard; with keys spread
 * evenly by the hash that approximates a global LRU.
 *
 * Expiry is lazy: an expired or flushed item is freed when a lookup finds
 * it, and mc_store_reclaim (driven by the handler's timers) walks the hash
 * tables a bounded number of items at a time to free the ones nobody asks
 * for.  flush_all without a delay frees everything at once; with a delay it
 * records the time and the items stored up to then die when it comes.
 *
 * References: an item carries a count, 1 for the store while it is linked
 * plus one per mc_store_get_ref (taken under the shard lock, dropped by
 * mc_item_release without it).  Unlinking (delete, replace, eviction,
 * expiry) drops the store's; the last reference frees the item, and only
 * then are its bytes given back to the limit, so memory held by values
 * still being written to clients stays inside the limit.  Nothing writes
 * into an item others hold (incr/decr in place only when unshared).

 * CAS ids are per shard sequences with the shard index in the low bits, so
 * they are unique across the store without a shared counter.
 */
#include "mc_store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MC_SHARD_BITS 6
#define MC_SHARDS (1u << MC_SHARD_BITS)
#define MC_BUCKETS_MIN 256u
/* Allocator header and the item's share of its hash table. */
#define MC_ITEM_OVERHEAD 32u

struct mc_shard {
    pthread_mutex_t lock;
    struct mc_item **buckets;
    size_t nbuckets; /* power of two */
    size_t nitems;
    struct wharf_list lru;       /* most recently used first */
    uint64_t cas_seq;
    size_t reclaim_bucket;       /* where mc_store_reclaim goes on */
    struct mc_store_stats st;    /* curr_items and bytes kept here too */
    char pad[64];                /* keep shards' locks on separate lines */
};

struct mc_store {
    _Atomic size_t limit, item_max; /* changed by mc_store_set_limits */
    uint64_t seed;
    _Atomic size_t used;
    _Atomic int64_t flush_at; /* items stored up to it are invalid once it passed */
    _Atomic unsigned reclaim_next;
    _Atomic unsigned evict_next;
    struct mc_shard shards[MC_SHARDS];
};

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
    for (unsigned i = 0; i < MC_SHARDS; i++)
        wharf_list_init(&s->shards[i].lru); /* before any mc_store_free */
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
        wharf_list_foreach_safe(e, next, &sh->lru)
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

static unsigned shard_index(const struct mc_store *s, const struct mc_shard *sh)
{
    return (unsigned)(sh - s->shards);
}

/* ---- per-shard lists (shard locked) ---- */

/* Makes it the shard's most recently used item. */
static void lru_bump(struct mc_shard *sh, struct mc_item *it)
{
    if (sh->lru.next != &it->lru) {
        wharf_list_remove(&it->lru);
        wharf_list_insert_head(&sh->lru, &it->lru);
    }
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

/* Links a new item (its cost already reserved). */
static void item_link(struct mc_shard *sh, struct mc_item *it)
{
    struct mc_item **slot = bucket_of(sh, it->hash);
    it->hnext = *slot;
    *slot = it;
    wharf_list_insert_head(&sh->lru, &it->lru);
    sh->nitems++;
    sh->st.curr_items++;
    sh->st.total_items++;
    sh->st.bytes += item_cost(it);
    if (sh->nitems > sh->nbuckets + sh->nbuckets / 2)
        table_grow(sh);
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
    wharf_list_remove(&it->lru);
    sh->nitems--;
    sh->st.curr_items--;
    size_t cost = item_cost(it);
    sh->st.bytes -= cost;
    it->store = s; /* no longer in a chain: for the last release */
    mc_item_release(it);
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
            if (!it->fetched && !flushed)
                sh->st.expired_unfetched++;
            sh->st.reclaimed++;
            item_free(s, sh, it);
            return NULL;
        }
        return it;
    }
    return NULL;
}

/* Evicts sh's least recently used item other than `keep`; false if none. */
static bool evict_tail(struct mc_store *s, struct mc_shard *sh, const struct mc_item *keep)
{
    struct wharf_list *e = sh->lru.prev; /* the least recently used */
    if (keep && e == &keep->lru)
        e = e->prev;
    if (e == &sh->lru)
        return false;
    struct mc_item *it = wharf_list_entry(e, struct mc_item, lru);
    sh->st.evictions++;
    if (!it->fetched)
        sh->st.evicted_unfetched++;
    item_free(s, sh, it);
    return true;
}

/*
 * Reserves cost bytes against the limit, evicting as needed; `own` is the
 * shard the caller holds and `keep` an item of it not to evict.  Never lets
 * `used` pass the limit.  False when nothing more can be evicted.
 */
static bool reserve(struct mc_store *s, struct mc_shard *own, const struct mc_item *keep,
                    size_t cost)
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
        if (evict_tail(s, own, keep))
            continue;
        bool evicted = false;
        unsigned busy = 0;
        unsigned start = atomic_fetch_add_explicit(&s->evict_next, 1, memory_order_relaxed);
        for (unsigned i = 0; i < MC_SHARDS && !evicted; i++) {
            struct mc_shard *sh = &s->shards[(start + i) % MC_SHARDS];
            if (sh == own)
                continue;
            if (pthread_mutex_trylock(&sh->lock) != 0) {
                busy++;
                continue;
            }
            evicted = evict_tail(s, sh, NULL);
            pthread_mutex_unlock(&sh->lock);
        }
        if (evicted)
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
        lru_bump(sh, it);
        it->fetched = 1;
        if (touch)
            it->exptime = exptime;
        if (fn)
            fn(it, arg);
    }
    pthread_mutex_unlock(&sh->lock);
    return it ? MC_FOUND : MC_NOT_FOUND;
}

/* Whether a store of `mode` may go ahead given the item found (old, or
 * NULL): MC_STORED, or why not.  A failed add bumps the item it failed on,
 * as memcached does. */
static enum mc_result store_allowed(struct mc_shard *sh, enum mc_store_mode mode,
                                    struct mc_item *old, uint64_t cas)
{
    switch (mode) {
    case MC_SET:
        return MC_STORED;
    case MC_ADD:
        if (!old)
            return MC_STORED;
        lru_bump(sh, old);
        return MC_NOT_STORED;
    case MC_REPLACE:
    case MC_APPEND:
    case MC_PREPEND:
        return old ? MC_STORED : MC_NOT_STORED;
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
    it->cas = (++sh->cas_seq << MC_SHARD_BITS) | shard_index(s, sh);
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

enum mc_result mc_store_store(struct mc_store *s, enum mc_store_mode mode, const char *key,
                              size_t nkey, uint32_t flags, int64_t exptime, const char *value,
                              size_t nbytes, uint64_t cas, int64_t now)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    pthread_mutex_lock(&sh->lock);
    struct mc_item *old = item_find(s, sh, h, key, nkey, now, false);
    enum mc_result rc = store_allowed(sh, mode, old, cas);
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
    if (!reserve(s, sh, old, cost)) {
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
    item_link(sh, it);
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

/* memcached's safe_strtoull: digits (leading blanks allowed), then the end
 * or a blank; no sign, no overflow. */
static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno == ERANGE || end == buf || memchr(buf, '-', (size_t)(end - buf)))
        return false;
    if (*end != '\0' && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n')
        return false;
    *out = v;
    return true;
}

enum mc_result mc_store_delta(struct mc_store *s, const char *key, size_t nkey, bool incr,
                              uint64_t delta, int64_t now, uint64_t *value)
{
    uint64_t h = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = shard_of(s, h);
    enum mc_result rc = MC_FOUND;
    pthread_mutex_lock(&sh->lock);
    struct mc_item *it = item_find(s, sh, h, key, nkey, now, false);
    uint64_t v;
    if (!it) {
        rc = MC_NOT_FOUND;
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
            /* In place, padded with blanks to the old length (as memcached). */
            char *d = it->data + it->nkey;
            memcpy(d, num, (size_t)len);
            memset(d + len, ' ', it->nbytes - (size_t)len);
            it->cas = (++sh->cas_seq << MC_SHARD_BITS) | shard_index(s, sh);
            lru_bump(sh, it);
        } else {
            size_t cost = mc_item_cost(nkey, (size_t)len);
            struct mc_item *n = NULL;
            if (reserve(s, sh, it, cost)) {
                n = malloc(sizeof *n + nkey + (size_t)len + 2);
                if (!n)
                    atomic_fetch_sub_explicit(&s->used, cost, memory_order_relaxed);
            }
            if (!n) {
                rc = MC_NO_MEMORY;
            } else {
                *n = *it;
                atomic_init(&n->refs, 1); /* the store's */
                n->nbytes = (uint32_t)len;
                n->time = now;
                n->cas = (++sh->cas_seq << MC_SHARD_BITS) | shard_index(s, sh);
                memcpy(n->data, key, nkey);
                memcpy(n->data + nkey, num, (size_t)len);
                memcpy(n->data + nkey + len, "\r\n", 2);
                item_free(s, sh, it);
                item_link(sh, n);
                sh->st.total_items--; /* a replacement, not a new item */
            }
        }
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
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[i];
        pthread_mutex_lock(&sh->lock);
        struct wharf_list *e;
        while ((e = wharf_list_first(&sh->lru)) != NULL)
            item_free(s, sh, wharf_list_entry(e, struct mc_item, lru));
        pthread_mutex_unlock(&sh->lock);
    }
}

size_t mc_store_reclaim(struct mc_store *s, size_t max, int64_t now)
{
    unsigned i = atomic_fetch_add_explicit(&s->reclaim_next, 1, memory_order_relaxed);
    struct mc_shard *sh = &s->shards[i % MC_SHARDS];
    size_t freed = 0, seen = 0;
    pthread_mutex_lock(&sh->lock);
    for (size_t b = 0; b < sh->nbuckets && freed < max && seen < 4 * max; b++) {
        size_t idx = sh->reclaim_bucket;
        sh->reclaim_bucket = (idx + 1) & (sh->nbuckets - 1);
        for (struct mc_item *it = sh->buckets[idx], *next; it; it = next) {
            next = it->hnext;
            seen++;
            bool flushed;
            if (item_dead(s, it, now, &flushed)) {
                if (!it->fetched && !flushed)
                    sh->st.expired_unfetched++;
                sh->st.reclaimed++;
                item_free(s, sh, it);
                freed++;
            }
        }
    }
    pthread_mutex_unlock(&sh->lock);
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
    /* Least recently used first, one item per shard in turn, until it fits
     * (or a whole round of shards had nothing left). */
    unsigned empty = 0;
    for (unsigned i = 0; empty < MC_SHARDS &&
                         atomic_load_explicit(&s->used, memory_order_relaxed) > limit; i++) {
        struct mc_shard *sh = &s->shards[i % MC_SHARDS];
        pthread_mutex_lock(&sh->lock);
        bool evicted = evict_tail(s, sh, NULL);
        pthread_mutex_unlock(&sh->lock);
        empty = evicted ? 0 : empty + 1;
    }
}
