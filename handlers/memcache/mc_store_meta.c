/*
 * mc_store_meta.c - what memcached's meta commands add to the memcache
 * store (mc_store.h's meta section, for mc_meta.c): a lookup that hands
 * the item to the command and may make an empty one on a miss (mg, me),
 * and invalidation (md I).  ms and ma are the store's own set and
 * incr/decr paths (mc_store_put, mc_store_arith in mc_store.c) with the
 * meta options; plain delete is md without them.
 */
#include "mc_store_private.h"

/* A fetch: marked fetched, accessed now, most recently used. */
static void meta_bump(struct mc_store *s, struct mc_shard *sh, struct mc_item *it,
                      int64_t now)
{
    mc_lru_hit(s, sh, it);
    it->fetched = 1;
    if (now > it->time)
        it->touched = (uint32_t)(now - it->time);
}

enum mc_result mc_store_meta_get(struct mc_store *s, const char *key, size_t nkey, int64_t now,
                                 const struct mc_meta_req *req, mc_meta_fn fn, void *arg)
{
    uint64_t h;
    struct mc_shard *sh = mc_store_lock(s, key, nkey, &h);
    enum mc_result rc = MC_FOUND;
    struct mc_item *it = mc_item_find(s, sh, h, key, nkey, now, true);
    if (!it && req->vivify) {
        it = mc_item_link_new(s, sh, h, key, nkey, "", 0, req->mflags, req->cas_in, now);
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

enum mc_result mc_store_meta_set(struct mc_store *s, const char *key, size_t nkey,
                                 const struct mc_meta_set *ms, const char *value, size_t nbytes,
                                 int64_t now, uint64_t *cas_out)
{
    return mc_store_put(s, key, nkey, ms, value, nbytes, now, true, cas_out);
}

enum mc_result mc_store_meta_delete(struct mc_store *s, const char *key, size_t nkey,
                                    bool has_cas, uint64_t cas, bool invalidate, bool new_ttl,
                                    int64_t exptime, uint64_t cas_in, int64_t now)
{
    uint64_t h;
    struct mc_shard *sh = mc_store_lock(s, key, nkey, &h);
    enum mc_result rc = MC_FOUND;
    struct mc_item *it = mc_item_find(s, sh, h, key, nkey, now, false);
    if (!it) {
        rc = MC_NOT_FOUND;
    } else if (has_cas && it->cas != cas) {
        rc = MC_EXISTS;
    } else if (invalidate) {
        /* A new cas: on a copy when someone holds the item (its cas must
         * not change under them); no memory for one drops the key. */
        struct mc_item *own = mc_item_unshared(it) ? it : mc_item_copy(s, sh, it, now);
        if (own) {
            if (new_ttl)
                own->exptime = exptime;
            own->mflags = (uint8_t)((own->mflags | MC_ITEM_STALE) & ~MC_ITEM_TOKEN_SENT);
            own->cas = cas_in ? cas_in : mc_store_next_cas(s);
        } else {
            mc_item_free(s, sh, it);
        }
    } else {
        mc_item_free(s, sh, it);
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

enum mc_result mc_store_meta_delta(struct mc_store *s, const char *key, size_t nkey, bool incr,
                                   uint64_t delta, uint64_t cas, uint64_t initial,
                                   const struct mc_meta_req *req, int64_t now, uint64_t *value,
                                   mc_meta_fn fn, void *arg)
{
    const struct mc_arith a = {incr, delta, cas, initial, req, fn, arg};
    return mc_store_arith(s, key, nkey, &a, now, value, NULL);
}
