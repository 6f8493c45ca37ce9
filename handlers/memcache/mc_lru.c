/*
 * mc_lru.c - the memcache store's segmented LRU, its maintainer, and
 * eviction under the memory limit (mc_store_private.h).
 *
 * Memory limit: an item's cost is reserved with a compare-and-swap on the
 * store's `used` that never lets it pass the limit.  When it would, the
 * store evicts, always through lru_evict.
 *
 * One order across the shards: the store keeps a clock that counts the
 * bytes of every item ever linked (a relaxed atomic add, not a lock), and
 * an item's `stamp` is the clock when it entered its list, so stamps
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
 * Those moves are mc_lru_maintain, memcached's LRU maintainer, done a few
 * items at a time on the paths that change a shard (a store, an eviction)
 * and over every shard on each reclaim tick.  An expired item met at a
 * tail is reclaimed instead of evicted, as memcached's lru_pull_tail does.
 */
#include "mc_store_private.h"

#include <sched.h>

/* The segments' sizes, as memcached's defaults (hot_lru_pct, warm_lru_pct). */
#define HOT_PCT 20u
#define WARM_PCT 40u

static unsigned shard_index(const struct mc_store *s, const struct mc_shard *sh)
{
    return (unsigned)(sh - s->shards);
}

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
    uint64_t v = t ? t->stamp : MC_LRU_NO_STAMP;
    _Atomic uint64_t *p = &s->tails[l][shard_index(s, sh)];
    if (atomic_load_explicit(p, memory_order_relaxed) != v) /* spare the line */
        atomic_store_explicit(p, v, memory_order_relaxed);
}

void mc_lru_link(struct mc_store *s, struct mc_shard *sh, struct mc_item *it, int l)
{
    struct wharf_list *e = wharf_list_first(&sh->lists[l]);
    if (e) {
        uint64_t head = wharf_list_entry(e, struct mc_item, lru)->stamp;
        if (it->stamp < head)
            it->stamp = head;
    }
    it->lru_seg = (uint8_t)l;
    wharf_list_insert_head(&sh->lists[l], &it->lru);
    sh->list_bytes[l] += mc_item_bytes(it);
    if (!e)
        lru_publish(s, sh, l);
}

void mc_lru_unlink(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    int l = it->lru_seg;
    bool tail = wharf_list_last(&sh->lists[l]) == &it->lru;
    wharf_list_remove(&it->lru);
    sh->list_bytes[l] -= mc_item_bytes(it);
    if (tail)
        lru_publish(s, sh, l);
}

/* Moves it to the head of warm, as read again (its active mark spent). */
static void lru_to_warm(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    mc_store_class_moved(sh, it, MC_LRU_WARM);
    mc_lru_unlink(s, sh, it);
    it->active = 0;
    it->stamp = lru_clock(s);
    mc_lru_link(s, sh, it, MC_LRU_WARM);
}

static void lru_to_cold(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    mc_store_class_moved(sh, it, MC_LRU_COLD);
    mc_lru_unlink(s, sh, it);
    mc_lru_link(s, sh, it, MC_LRU_COLD);
}

/*
 * Hot's tail items past the hot span go to warm if active, else to cold;
 * while warm holds more than WARM_PCT % of the shard's bytes its tail goes
 * back to warm's head if active, else to cold.
 */
void mc_lru_maintain(struct mc_store *s, struct mc_shard *sh, size_t max)
{
    uint64_t now = lru_clock(s), span = lru_hot_span(s);
    struct mc_item *it;
    while (max > 0 && (it = lru_tail(sh, MC_LRU_HOT)) != NULL && now - it->stamp > span) {
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
    while (max > 0 && sh->list_bytes[MC_LRU_WARM] > base / 100 * WARM_PCT &&
           (it = lru_tail(sh, MC_LRU_WARM)) != NULL) {
        if (it->active)
            lru_to_warm(s, sh, it);
        else
            lru_to_cold(s, sh, it);
        max--;
    }
}

/* The first hit marks it fetched, the next active; an active item in cold
 * goes to warm now, one elsewhere when the maintainer reaches it. */
void mc_lru_hit(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    if (it->active)
        return;
    if (!it->fetched) {
        it->fetched = 1;
        return;
    }
    if (it->lru_seg == MC_LRU_COLD)
        lru_to_warm(s, sh, it);
    else
        it->active = 1;
}

/* ---- eviction ---- */

/* Every eviction goes through here: counts it, and frees it. */
static void lru_evict(struct mc_store *s, struct mc_shard *sh, struct mc_item *it)
{
    sh->st.evictions++;
    if (!it->fetched)
        sh->st.evicted_unfetched++;
    mc_store_class_evicted(s, sh, it); /* per-class counts and the watch hook: keep one call */
    mc_item_free(s, sh, it);
}

/* Frees sh's oldest item other than `keep` (sh locked by the caller):
 * cold's tail, else hot's (an active one is moved to warm instead and the
 * next looked at), else warm's; reclaimed rather than evicted if it is dead
 * at `now` (0: not looked at).  False if sh has none. */
static bool evict_from(struct mc_store *s, struct mc_shard *sh, const struct mc_item *keep,
                       int64_t now)
{
    mc_lru_maintain(s, sh, MC_LRU_STEP);
    struct mc_item *it = NULL;
    static const int order[] = {MC_LRU_COLD, MC_LRU_HOT, MC_LRU_WARM};
    for (int i = 0; i < MC_LRU_LISTS && !it; i++) {
        struct wharf_list *l = &sh->lists[order[i]];
        for (struct wharf_list *e = l->prev; e != l && !it;) {
            struct mc_item *c = wharf_list_entry(e, struct mc_item, lru);
            e = e->prev;
            if (c == keep)
                continue;
            if (order[i] == MC_LRU_HOT && c->active)
                lru_to_warm(s, sh, c); /* each item at most once: warm is after hot */
            else
                it = c;
        }
    }
    if (!it)
        return false;
    bool flushed;
    if (now != 0 && mc_item_dead(s, it, now, &flushed))
        mc_item_reclaim(s, sh, it, flushed);
    else
        lru_evict(s, sh, it);
    return true;
}

/* The shard, not in `skip`, whose oldest item goes first (MC_SHARDS if
 * none has one): the oldest cold tail, or hot tail past the hot span; if no
 * shard has either, the oldest hot tail, then the oldest warm tail.  Reads
 * the published tails, no lock. */
static unsigned evict_pick(struct mc_store *s, uint64_t skip)
{
    uint64_t now = lru_clock(s), span = lru_hot_span(s), best = MC_LRU_NO_STAMP;
    unsigned at = MC_SHARDS;
    for (unsigned i = 0; i < MC_SHARDS; i++) {
        uint64_t c = atomic_load_explicit(&s->tails[MC_LRU_COLD][i], memory_order_relaxed);
        uint64_t h = atomic_load_explicit(&s->tails[MC_LRU_HOT][i], memory_order_relaxed);
        if (h < c && h <= now && now - h > span)
            c = h;
        if (c < best && !(skip >> i & 1)) {
            best = c;
            at = i;
        }
    }
    for (int l = MC_LRU_HOT; l <= MC_LRU_WARM && at == MC_SHARDS; l++)
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

bool mc_lru_reserve(struct mc_store *s, struct mc_shard *own, const struct mc_item *keep,
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

void mc_lru_unreserve(struct mc_store *s, size_t cost)
{
    atomic_fetch_sub_explicit(&s->used, cost, memory_order_relaxed);
}

void mc_lru_shrink(struct mc_store *s)
{
    unsigned busy = 0;
    while (atomic_load_explicit(&s->used, memory_order_relaxed) > mc_store_limit(s) &&
           evict_oldest(s, NULL, NULL, 0, &busy))
        ;
}
