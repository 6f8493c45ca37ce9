/*
 * mc_store.c - the memcache handler's shared cache (mc_store.h): the store
 * and its shards, and the commands of the three protocols (get, the
 * storage modes, delete, incr/decr, flush), each through one code path
 * that the meta commands share (mc_store_put, mc_store_arith).
 * mc_store_private.h lists the store's other files: items and hash tables
 * (mc_item.c), the segmented LRU and eviction (mc_lru.c), the meta
 * additions (mc_store_meta.c), the reclaimer and crawler walks
 * (mc_store_walk.c), size classes (mc_store_class.c).
 *
 * MC_SHARDS shards, chosen by the top bits of a key's hash.  Each shard has
 * a mutex, a chained hash table and three LRU lists (hot, warm, cold).  No
 * lock is global: the shared writes on the store path are the `used` byte
 * count and the LRU clock, two atomics on one cache line touched once per
 * store (and `used` once per free), never by a get.
 *
 * flush_all without a delay frees everything at once; with a delay it
 * records the time, and the items stored up to then die when it comes
 * (found dead by a lookup or the reclaimer: mc_item_dead).
 *
 * CAS ids come from one store-wide counter, taken as memcached takes them
 * (each item linked, each incr/decr in place, each flush_all without a
 * delay, each meta invalidate), so that a client sees the same ids from
 * wharf as from a fresh memcached.  It sits beside `used`, the other
 * shared word every store writes.
 */
#include "mc_store_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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
        for (int l = 0; l < MC_LRU_LISTS; l++) {
            wharf_list_init(&s->shards[i].lists[l]);
            atomic_init(&s->tails[l][i], MC_LRU_NO_STAMP);
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
        for (int l = 0; l < MC_LRU_LISTS; l++)
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

struct mc_shard *mc_store_lock(struct mc_store *s, const char *key, size_t nkey,
                               uint64_t *hash)
{
    *hash = mc_hash(s->seed, key, nkey);
    struct mc_shard *sh = &s->shards[*hash >> (64 - MC_SHARD_BITS)];
    pthread_mutex_lock(&sh->lock);
    return sh;
}

uint64_t mc_store_next_cas(struct mc_store *s)
{
    return atomic_fetch_add_explicit(&s->cas_last, 1, memory_order_relaxed) + 1;
}

/* ---- get ---- */

/* mc_store_get, saying why it missed (*miss, see mc_store_get_ref). */
static enum mc_result store_get(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                                bool touch, int64_t exptime,
                                void (*fn)(const struct mc_item *it, void *arg), void *arg,
                                enum mc_result *miss)
{
    uint64_t h;
    struct mc_shard *sh = mc_store_lock(s, key, nkey, &h);
    struct mc_item *it = mc_item_lookup(s, sh, h, key, nkey, now, true, miss);
    if (it) {
        mc_lru_hit(s, sh, it);
        if (touch)
            it->exptime = exptime;
        if (fn)
            fn(it, arg);
    }
    pthread_mutex_unlock(&sh->lock);
    return it ? MC_FOUND : MC_NOT_FOUND;
}

enum mc_result mc_store_get(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                            bool touch, int64_t exptime,
                            void (*fn)(const struct mc_item *it, void *arg), void *arg)
{
    enum mc_result miss;
    return store_get(s, key, nkey, now, touch, exptime, fn, arg, &miss);
}

static void take_ref(const struct mc_item *it, void *arg)
{
    struct mc_item *m = (struct mc_item *)it;
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    *(struct mc_item **)arg = m;
}

struct mc_item *mc_store_get_ref(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                                 bool touch, int64_t exptime, enum mc_result *miss)
{
    struct mc_item *it = NULL;
    enum mc_result why;
    store_get(s, key, nkey, now, touch, exptime, take_ref, &it, miss ? miss : &why);
    return it;
}

enum mc_result mc_store_peek(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                             unsigned *cls, uint32_t *nbytes)
{
    uint64_t h;
    enum mc_result miss;
    struct mc_shard *sh = mc_store_lock(s, key, nkey, &h);
    struct mc_item *it = mc_item_lookup(s, sh, h, key, nkey, now, false, &miss);
    if (it) {
        *cls = mc_store_class_of(it->nkey, it->nbytes);
        *nbytes = it->nbytes;
    }
    pthread_mutex_unlock(&sh->lock);
    return it ? MC_FOUND : miss;
}

/* ---- set, add, replace, append, prepend, cas (and ms) ---- */

/* Whether a store may go ahead over old (NULL: none), as memcached's
 * do_store_item decides: MC_STORED, or why not.  Sets *stale when ms's I
 * with a cas older than the item's stores it stale.  A failed add moves
 * nothing in the LRU (memcached's segmented LRU only updates its time). */
static enum mc_result put_allowed(const struct mc_meta_set *set, const struct mc_item *old,
                                  bool *stale)
{
    *stale = false;
    switch (set->mode) {
    case MC_SET:
        return MC_STORED;
    case MC_ADD:
        return old ? MC_NOT_STORED : MC_STORED;
    case MC_REPLACE:
        return old ? MC_STORED : MC_NOT_STORED;
    case MC_APPEND:
    case MC_PREPEND: /* a cas given (binary, ms C) must match */
        return !old ? MC_NOT_STORED : set->cas && old->cas != set->cas ? MC_EXISTS : MC_STORED;
    case MC_CAS:
        if (!old)
            return MC_NOT_FOUND;
        if (old->cas == set->cas)
            return MC_STORED;
        if (set->invalidate && set->cas != 0 && set->cas < old->cas) {
            *stale = true;
            return MC_STORED;
        }
        return MC_EXISTS;
    }
    return MC_NOT_STORED;
}

enum mc_result mc_store_put(struct mc_store *s, const char *key, size_t nkey,
                            const struct mc_meta_set *set, const char *value, size_t nbytes,
                            int64_t now, bool meta, uint64_t *cas_out)
{
    uint64_t h;
    struct mc_shard *sh = mc_store_lock(s, key, nkey, &h);
    struct mc_item *old = mc_item_find(s, sh, h, key, nkey, now, false);
    bool stale, join = set->mode == MC_APPEND || set->mode == MC_PREPEND;
    enum mc_result rc = put_allowed(set, old, &stale);
    if (rc != MC_STORED)
        goto out;
    size_t total = nbytes + (join ? old->nbytes : 0);
    if (total > mc_store_item_max(s) || total > UINT32_MAX) {
        rc = MC_TOO_LARGE;
        goto out;
    }
    size_t cost = mc_item_cost(nkey, total);
    if (!mc_lru_reserve(s, sh, old, cost, now)) {
        rc = MC_NO_MEMORY;
        goto out;
    }
    struct mc_item *it = mc_item_build(s, h, key, nkey, set->mode, old, value, nbytes, total);
    if (!it) {
        mc_lru_unreserve(s, cost);
        rc = MC_NO_MEMORY;
        goto out;
    }
    it->time = now;
    it->flags = join ? old->flags : set->flags;
    it->exptime = join || stale ? old->exptime : set->exptime;
    it->mflags = set->mflags;
    if (stale)
        it->mflags |= MC_ITEM_STALE | (old->mflags & MC_ITEM_TOKEN_SENT);
    if (set->cas_in)
        it->cas = set->cas_in;
    if (cas_out)
        *cas_out = it->cas;
    if (old)
        mc_item_free(s, sh, old);
    mc_item_link(s, sh, it);
out:
    if ((rc == MC_TOO_LARGE || rc == MC_NO_MEMORY) && old &&
        (meta ? !join : set->mode == MC_SET))
        mc_item_free(s, sh, old); /* as memcached: no stale value stays behind */
    pthread_mutex_unlock(&sh->lock);
    if (meta && join && (rc == MC_TOO_LARGE || rc == MC_NO_MEMORY))
        rc = MC_NOT_STORED;
    return rc;
}

enum mc_result mc_store_store_cas(struct mc_store *s, enum mc_store_mode mode, const char *key,
                                  size_t nkey, uint32_t flags, int64_t exptime,
                                  const char *value, size_t nbytes, uint64_t cas, int64_t now,
                                  uint64_t *new_cas)
{
    const struct mc_meta_set set = {.mode = mode, .flags = flags, .exptime = exptime, .cas = cas};
    return mc_store_put(s, key, nkey, &set, value, nbytes, now, false, new_cas);
}

enum mc_result mc_store_store(struct mc_store *s, enum mc_store_mode mode, const char *key,
                              size_t nkey, uint32_t flags, int64_t exptime, const char *value,
                              size_t nbytes, uint64_t cas, int64_t now)
{
    return mc_store_store_cas(s, mode, key, nkey, flags, exptime, value, nbytes, cas, now, NULL);
}

/* ---- delete ---- */

enum mc_result mc_store_delete_cas(struct mc_store *s, const char *key, size_t nkey,
                                   uint64_t cas, int64_t now)
{
    return mc_store_meta_delete(s, key, nkey, cas != 0, cas, false, false, 0, 0, now);
}

enum mc_result mc_store_delete(struct mc_store *s, const char *key, size_t nkey, int64_t now)
{
    return mc_store_delete_cas(s, key, nkey, 0, now);
}

/* ---- incr, decr (and ma) ---- */

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

enum mc_result mc_store_arith(struct mc_store *s, const char *key, size_t nkey,
                              const struct mc_arith *a, int64_t now, uint64_t *value,
                              uint64_t *cas_out)
{
    static const struct mc_meta_req plain = {.vivify = false};
    const struct mc_meta_req *req = a->req ? a->req : &plain;
    uint64_t h, v;
    struct mc_shard *sh = mc_store_lock(s, key, nkey, &h);
    enum mc_result rc = MC_FOUND;
    struct mc_item *it = mc_item_find(s, sh, h, key, nkey, now, false);
    if (!it && !req->vivify) {
        rc = MC_NOT_FOUND;
    } else if (!it) {
        char num[24];
        int len = snprintf(num, sizeof num, "%llu", (unsigned long long)a->initial);
        it = mc_item_link_new(s, sh, h, key, nkey, num, (size_t)len, req->mflags, req->cas_in,
                              now);
        rc = it ? MC_STORED : MC_NO_MEMORY;
        *value = a->initial;
    } else if (it->nbytes == 0) {
        rc = MC_NON_NUMERIC;
        it = NULL;
    } else if (a->cas != 0 && it->cas != a->cas) {
        rc = MC_EXISTS; /* memcached checks the cas before the number */
        it = NULL;
    } else if (!parse_u64(mc_item_value(it), it->nbytes, &v)) {
        rc = MC_NON_NUMERIC;
        it = NULL;
    } else {
        v = a->incr ? v + a->delta /* wraps, as memcached */
                    : a->delta > v ? 0 : v - a->delta;
        *value = v;
        it = mc_item_set_number(s, sh, it, v, now);
        if (!it)
            rc = MC_NO_MEMORY;
        else if (req->cas_in)
            it->cas = req->cas_in; /* unshared: in place only then, or new */
    }
    if (it && cas_out)
        *cas_out = it->cas;
    if (it && a->fn)
        a->fn(it, rc == MC_STORED, a->arg);
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

enum mc_result mc_store_delta_cas(struct mc_store *s, const char *key, size_t nkey, bool incr,
                                  uint64_t delta, int64_t now, uint64_t *value, uint64_t *cas)
{
    const struct mc_arith a = {.incr = incr, .delta = delta, .cas = cas ? *cas : 0};
    return mc_store_arith(s, key, nkey, &a, now, value, cas);
}

enum mc_result mc_store_delta(struct mc_store *s, const char *key, size_t nkey, bool incr,
                              uint64_t delta, int64_t now, uint64_t *value)
{
    return mc_store_delta_cas(s, key, nkey, incr, delta, now, value, NULL);
}

/* ---- flush, limits, counters ---- */

void mc_store_flush(struct mc_store *s, int64_t at, int64_t now)
{
    if (at > now) {
        atomic_store(&s->flush_at, at);
        return;
    }
    atomic_store(&s->flush_at, 0);
    mc_store_next_cas(s); /* memcached takes one here too */
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        struct mc_shard *sh = &s->shards[i];
        pthread_mutex_lock(&sh->lock);
        struct wharf_list *e;
        for (int l = 0; l < MC_LRU_LISTS; l++)
            while ((e = wharf_list_first(&sh->lists[l])) != NULL)
                mc_item_free(s, sh, wharf_list_entry(e, struct mc_item, lru));
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
        mc_lru_maintain(s, sh, sh->nitems);
        pthread_mutex_unlock(&sh->lock);
    }
    mc_lru_shrink(s);
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
        out->moves_to_cold += sh->st.moves_to_cold;
        out->moves_to_warm += sh->st.moves_to_warm;
        out->moves_within_lru += sh->st.moves_within_lru;
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
        st->moves_to_cold = st->moves_to_warm = st->moves_within_lru = 0;
        mc_store_class_reset(sh);
        pthread_mutex_unlock(&sh->lock);
    }
}
