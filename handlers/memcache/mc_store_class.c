/*
 * mc_store_class.c - the operators' view of the memcache store: memcached's
 * size classes (wharf has no slabs; a class only sorts items by
 * memcached's item size, so that "stats items/slabs", metadump and watch
 * show the ids and sizes memcached would), the per-class counters the
 * store's paths keep as they link, evict and reclaim items, and the hook
 * that shows every eviction to `watch` (mc_store.h's last section).
 */
#include "mc_store_private.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* memcached's ITEM_ntotal: sizeof(item) 48, key + NUL, value + CRLF, CAS 8. */
size_t mc_store_ntotal(size_t nkey, size_t nbytes)
{
    return 48 + nkey + 1 + nbytes + 2 + 8;
}

/* memcached's slabs_init with its defaults (-n 48, -f 1.25, 8-byte
 * alignment, slab_chunk_max 524288): class i's chunk size. */
static size_t class_size[MC_CLASSES];

/* The class of every item size up to SMALL_MAX, by (size + 7) / 8 (chunk
 * sizes are multiples of 8): a get counts its hit in its class, and a
 * table read costs less than the binary search. */
#define SMALL_MAX 16384
static uint8_t small_class[SMALL_MAX / 8 + 1];
static atomic_bool classes_ready;

static unsigned class_search(size_t n)
{
    unsigned lo = 1, hi = MC_CLASS_MAX;
    if (n >= class_size[MC_CLASS_MAX])
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
    for (size_t k = 0; k <= SMALL_MAX / 8; k++)
        small_class[k] = (uint8_t)class_search(k * 8);
    atomic_store_explicit(&classes_ready, true, memory_order_release);
}

static void classes_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!atomic_load_explicit(&classes_ready, memory_order_acquire))
        pthread_once(&once, class_init);
}

size_t mc_store_class_size(unsigned id)
{
    classes_init();
    return id >= 1 && id <= MC_CLASS_MAX ? class_size[id] : 0;
}

unsigned mc_store_class_of(size_t nkey, size_t nbytes)
{
    classes_init();
    size_t n = mc_store_ntotal(nkey, nbytes);
    return n <= SMALL_MAX ? small_class[(n + 7) / 8] : class_search(n);
}

void mc_store_class_linked(struct mc_shard *sh, const struct mc_item *it, int sign)
{
    struct mc_class_stats *c = &sh->cls[mc_store_class_of(it->nkey, it->nbytes)];
    c->number += (uint64_t)(int64_t)sign;
    c->requested += (uint64_t)((int64_t)sign * (int64_t)mc_store_ntotal(it->nkey, it->nbytes));
}

void mc_store_class_evicted(struct mc_store *s, struct mc_shard *sh, const struct mc_item *it)
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

void mc_store_class_reclaimed(struct mc_shard *sh, const struct mc_item *it, bool flushed)
{
    struct mc_class_stats *c = &sh->cls[mc_store_class_of(it->nkey, it->nbytes)];
    c->reclaimed++;
    if (!it->fetched && !flushed)
        c->expired_unfetched++;
}

void mc_store_class_moved(struct mc_shard *sh, const struct mc_item *it, int to)
{
    struct mc_class_stats *c = &sh->cls[mc_store_class_of(it->nkey, it->nbytes)];
    if (to == MC_LRU_COLD) {
        c->moves_to_cold++;
        sh->st.moves_to_cold++;
    } else if (it->lru_seg == MC_LRU_WARM) {
        c->moves_within_lru++;
        sh->st.moves_within_lru++;
    } else {
        c->moves_to_warm++;
        sh->st.moves_to_warm++;
    }
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
            out[k].moves_to_cold += c->moves_to_cold;
            out[k].moves_to_warm += c->moves_to_warm;
            out[k].moves_within_lru += c->moves_within_lru;
        }
        pthread_mutex_unlock(&sh->lock);
    }
}

void mc_store_class_reset(struct mc_shard *sh)
{
    for (unsigned k = 0; k < MC_CLASSES; k++) {
        struct mc_class_stats *c = &sh->cls[k];
        uint64_t number = c->number, requested = c->requested;
        memset(c, 0, sizeof *c);
        c->number = number;
        c->requested = requested;
    }
}

void mc_store_set_evict_hook(struct mc_store *s, mc_store_evict_fn fn, void *arg)
{
    atomic_store_explicit(&s->evict_arg, arg, memory_order_relaxed);
    atomic_store_explicit(&s->evict_fn, fn, memory_order_release);
}
