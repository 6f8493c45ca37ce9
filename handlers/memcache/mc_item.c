/*
 * mc_item.c - the memcache store's items and its shards' hash tables
 * (mc_store_private.h): how an item is built, linked into its shard's
 * chained hash table (which doubles when it holds 1.5 items a bucket) and
 * LRU, copied, unlinked, found, and freed by its last reference.
 *
 * Memory: every item costs mc_item_cost() bytes (its allocation plus a
 * fixed overhead for the allocator and its hash bucket), reserved against
 * the limit before it is built (mc_lru_reserve) and given back when its
 * last reference goes, so memory held by values still being written to
 * clients stays inside the limit.
 *
 * References: an item carries a count, 1 for the store while it is linked
 * plus one per mc_store_get_ref (taken under the shard lock, dropped by
 * mc_item_release without it).  Unlinking (delete, replace, eviction,
 * expiry) drops the store's.  Nothing writes what a holder reads (key,
 * value, flags, cas) into an item others hold: incr/decr and md I change
 * an item in place only when it is unshared, and otherwise put a copy or a
 * new item in its place (mc_item_copy, mc_item_set_number).
 */
#include "mc_store_private.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t mc_item_cost(size_t nkey, size_t nbytes)
{
    return sizeof(struct mc_item) + nkey + nbytes + 2 + MC_ITEM_OVERHEAD;
}

/* Drops one reference to an unlinked item whose `store` is set: the last
 * one frees it and gives its bytes back to the limit. */
void mc_item_release(struct mc_item *it)
{
    if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) != 1)
        return;
    mc_lru_unreserve(it->store, mc_item_bytes(it));
    free(it);
}

bool mc_item_unshared(struct mc_item *it)
{
    return atomic_load_explicit(&it->refs, memory_order_acquire) == 1;
}

/* ---- the hash table ---- */

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

/* The slot in its chain that points at it (it is linked). */
static struct mc_item **chain_slot(struct mc_shard *sh, struct mc_item *it)
{
    struct mc_item **pp = bucket_of(sh, it->hash);
    while (*pp && *pp != it)
        pp = &(*pp)->hnext;
    return pp;
}

struct mc_item *mc_item_find(struct mc_store *s, struct mc_shard *sh, uint64_t hash,
                             const char *key, size_t nkey, int64_t now, bool count)
{
    enum mc_result miss;
    return mc_item_lookup(s, sh, hash, key, nkey, now, count, &miss);
}

struct mc_item *mc_item_lookup(struct mc_store *s, struct mc_shard *sh, uint64_t hash,
                               const char *key, size_t nkey, int64_t now, bool count,
                               enum mc_result *miss)
{
    *miss = MC_NOT_FOUND;
    for (struct mc_item *it = *bucket_of(sh, hash); it; it = it->hnext) {
        if (it->hash != hash || it->nkey != nkey || memcmp(it->data, key, nkey) != 0)
            continue;
        bool flushed;
        if (mc_item_dead(s, it, now, &flushed)) {
            if (count) {
                if (flushed)
                    sh->st.get_flushed++;
                else
                    sh->st.get_expired++;
            }
            mc_item_reclaim(s, sh, it, flushed);
            *miss = flushed ? MC_FLUSHED : MC_EXPIRED;
            return NULL;
        }
        return it;
    }
    return NULL;
}

/* ---- building ---- */

struct mc_item *mc_item_build(struct mc_store *s, uint64_t hash, const char *key, size_t nkey,
                              enum mc_store_mode mode, const struct mc_item *old,
                              const char *value, size_t nbytes, size_t total)
{
    struct mc_item *it = malloc(sizeof *it + nkey + total + 2);
    if (!it)
        return NULL;
    memset(it, 0, sizeof *it);
    atomic_init(&it->refs, 1); /* the store's */
    it->hash = hash;
    it->cas = mc_store_next_cas(s);
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

/* A header and room for a value of nbytes for a copy of it: the fields up
 * to the reference count (never the count itself, which holders change
 * without the lock), the key, and a count of 1 (the store's).  The value
 * and "\r\n" are the caller's to write; NULL on ENOMEM. */
static struct mc_item *clone_header(const struct mc_item *it, size_t nbytes)
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

/* ---- linking and unlinking ---- */

void mc_item_link(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    struct mc_item **slot = bucket_of(sh, it->hash);
    it->hnext = *slot;
    *slot = it;
    size_t cost = mc_item_bytes(it);
    it->active = 0;
    it->stamp = atomic_fetch_add_explicit(&s->clock, cost, memory_order_relaxed) + cost;
    mc_lru_link(s, sh, it, MC_LRU_HOT);
    sh->nitems++;
    sh->st.curr_items++;
    sh->st.total_items++;
    sh->st.bytes += cost;
    mc_store_class_linked(sh, it, 1);
    if (sh->nitems > sh->nbuckets + sh->nbuckets / 2)
        table_grow(sh);
    mc_lru_maintain(s, sh, MC_LRU_STEP);
}

struct mc_item *mc_item_link_new(struct mc_store *s, struct mc_shard *sh, uint64_t hash,
                                 const char *key, size_t nkey, const char *value,
                                 size_t nbytes, uint8_t mflags, uint64_t cas_in, int64_t now)
{
    size_t cost = mc_item_cost(nkey, nbytes);
    if (!mc_lru_reserve(s, sh, NULL, cost, now))
        return NULL;
    struct mc_item *it = mc_item_build(s, hash, key, nkey, MC_SET, NULL, value, nbytes, nbytes);
    if (!it) {
        mc_lru_unreserve(s, cost);
        return NULL;
    }
    it->time = now;
    it->mflags = mflags;
    if (cas_in)
        it->cas = cas_in;
    mc_item_link(s, sh, it);
    return it;
}

void mc_item_free(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    struct mc_item **pp = chain_slot(sh, it);
    if (*pp)
        *pp = it->hnext;
    mc_lru_unlink(s, sh, it);
    sh->nitems--;
    sh->st.curr_items--;
    sh->st.bytes -= mc_item_bytes(it);
    mc_store_class_linked(sh, it, -1);
    it->store = s; /* no longer in a chain: for the last release */
    mc_item_release(it);
}

struct mc_item *mc_item_copy(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                             int64_t now)
{
    size_t cost = mc_item_bytes(it);
    if (!mc_lru_reserve(s, sh, it, cost, now))
        return NULL;
    struct mc_item *n = clone_header(it, it->nbytes);
    if (!n) {
        mc_lru_unreserve(s, cost);
        return NULL;
    }
    memcpy(n->data + it->nkey, mc_item_value(it), (size_t)it->nbytes + 2);
    *chain_slot(sh, it) = n; /* n->hnext is it's */
    wharf_list_insert_after(&it->lru, &n->lru); /* the same stamp: the tails stay */
    wharf_list_remove(&it->lru);
    it->store = s;
    mc_item_release(it);
    return n;
}

struct mc_item *mc_item_set_number(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                                   uint64_t v, int64_t now)
{
    char num[24];
    size_t len = (size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    if (len <= it->nbytes && mc_item_unshared(it)) { /* nobody is sending it */
        char *d = it->data + it->nkey;
        memcpy(d, num, len);
        memset(d + len, ' ', it->nbytes - len);
        it->cas = mc_store_next_cas(s);
        return it;
    }
    size_t cost = mc_item_cost(it->nkey, len);
    if (!mc_lru_reserve(s, sh, it, cost, now))
        return NULL;
    struct mc_item *n = clone_header(it, len);
    if (!n) {
        mc_lru_unreserve(s, cost);
        return NULL;
    }
    n->time = now;
    n->touched = 0;
    n->cas = mc_store_next_cas(s);
    memcpy(n->data + it->nkey, num, len);
    memcpy(n->data + it->nkey + len, "\r\n", 2);
    mc_item_free(s, sh, it);
    mc_item_link(s, sh, n);
    sh->st.total_items--; /* a replacement, not a new item */
    return n;
}

/* ---- death ---- */

bool mc_item_dead(struct mc_store *s, const struct mc_item *it, int64_t now, bool *flushed)
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

void mc_item_reclaim(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                     bool flushed)
{
    if (!it->fetched && !flushed)
        sh->st.expired_unfetched++;
    sh->st.reclaimed++;
    mc_store_class_reclaimed(sh, it, flushed);
    mc_item_free(s, sh, it);
}
