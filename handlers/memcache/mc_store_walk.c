/*
 * mc_store_walk.c - the walks over the memcache store's hash tables: the
 * reclaimer and the crawler.
 *
 * Expiry is lazy: an expired or flushed item is freed when a lookup finds
 * it, and mc_store_reclaim (driven by the handler's repeating timers)
 * visits every shard on each call, walking its hash table a bounded number
 * of items at a time from where it stopped, to free the ones nobody asks
 * for; the same call does the LRU maintainer's work in every shard.
 * mc_store_walk copies items' metadata out a bounded batch at a time, for
 * lru_crawler metadump (mc_crawler.c).  Each holds one shard's lock at a
 * time.
 */
#include "mc_store_private.h"

#include <string.h>

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
            if (mc_item_dead(s, it, now, &flushed)) {
                mc_item_reclaim(s, sh, it, flushed);
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
        mc_lru_maintain(s, sh, look);
        pthread_mutex_unlock(&sh->lock);
    }
    return freed;
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
                if (k < w->skip || mc_item_dead(s, it, now, &flushed))
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
