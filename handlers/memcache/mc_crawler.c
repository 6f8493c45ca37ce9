/*
 * mc_crawler.c - memcached's "lru_crawler" command for the memcache
 * handler, above all "lru_crawler metadump all|hash|<classes>": one line per
 * live item (key URL-encoded, exp, la, cas, fetch, cls, size) then "END",
 * as memcached 1.6 prints it.
 *
 * The dump never sits in memory whole: it walks the store (mc_store_walk)
 * MC_DUMP_BATCH items at a time, one shard lock at a time, and stops while
 * the connection has MC_DUMP_YIELD bytes of output pending; on_drain
 * (wharf_want_drain) brings it back.  Meanwhile the connection takes no
 * other command (memcached's connection also waits for its dump), so its
 * kept input waits until the dump has ended.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memcache.h"

#define MC_DUMP_BATCH 64
#define MC_DUMP_YIELD (64u * 1024u)

struct mc_dump {
    struct mc_walk walk;
    bool cls[MC_CLASSES];    /* the classes asked for */
    struct mc_walk_item items[MC_DUMP_BATCH];
};

/* memcached's uriencode: all but letters, digits and "-._~" as %XX. */
static size_t uriencode(const char *k, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return o;
}

/* memcached's class list: "all", or ids "1,2,..." (1..63, else BADCLASS);
 * ids beyond wharf's largest class select nothing. */
static bool parse_classes(const struct mc_tok *t, bool cls[MC_CLASSES])
{
    memset(cls, 0, sizeof(bool) * MC_CLASSES);
    if (mc_tok_is(t, "all") || mc_tok_is(t, "hash")) {
        memset(cls, 1, sizeof(bool) * MC_CLASSES);
        return true;
    }
    size_t i = 0;
    while (i <= t->n) {
        size_t j = i;
        while (j < t->n && t->p[j] != ',')
            j++;
        struct mc_tok id = {t->p + i, j - i};
        uint64_t v;
        if (!mc_tok_u64(&id, &v) || v < 1 || v > 63)
            return false;
        if (v < MC_CLASSES)
            cls[v] = true;
        i = j + 1;
    }
    return true;
}

void mc_crawler_command(wharf_conn *c, struct mc_conn *mc, const struct mc_tok *t, size_t n)
{
    struct mc_listener *l = wharf_listener_data(c);
    struct mc_ops *ops = l->sh->ops;
    uint64_t v;
    bool cls[MC_CLASSES];
    if (n == 3 && (mc_tok_is(&t[1], "crawl") || mc_tok_is(&t[1], "metadump"))) {
        if (atomic_load(&ops->crawler_off)) {
            REPLY(c, "CLIENT_ERROR lru crawler disabled\r\n");
        } else if (!parse_classes(&t[2], cls)) {
            REPLY(c, "BADCLASS invalid class id\r\n");
        } else if (mc_tok_is(&t[1], "crawl")) {
            /* The reclaimer walks the store on its own; a crawl asks it now. */
            mc_store_reclaim(l->store, l->reclaim_batch, (int64_t)time(NULL));
            REPLY(c, "OK\r\n");
        } else if ((mc->dump = calloc(1, sizeof *mc->dump)) == NULL) {
            REPLY(c, "ERROR an unknown error happened\r\n");
        } else {
            memcpy(mc->dump->cls, cls, sizeof cls);
            mc_crawler_continue(c, mc);
        }
    } else if (n == 3 && mc_tok_is(&t[1], "tocrawl")) {
        if (mc_tok_u64(&t[2], &v) && v <= UINT32_MAX)
            REPLY(c, "OK\r\n");
        else
            REPLY(c, "CLIENT_ERROR bad command line format\r\n");
    } else if (n == 3 && mc_tok_is(&t[1], "sleep")) {
        if (!mc_tok_u64(&t[2], &v) || v > UINT32_MAX)
            REPLY(c, "CLIENT_ERROR bad command line format\r\n");
        else if (v > 1000000)
            REPLY(c, "CLIENT_ERROR sleep must be one second or less\r\n");
        else
            REPLY(c, "OK\r\n");
    } else if (n == 2 && (mc_tok_is(&t[1], "enable") || mc_tok_is(&t[1], "disable"))) {
        atomic_store(&ops->crawler_off, mc_tok_is(&t[1], "disable"));
        REPLY(c, "OK\r\n");
    } else {
        REPLY(c, "ERROR\r\n");
    }
}

bool mc_crawler_continue(wharf_conn *c, struct mc_conn *mc)
{
    struct mc_listener *l = wharf_listener_data(c);
    struct mc_dump *d = mc->dump;
    if (!d)
        return false;
    int64_t now = (int64_t)time(NULL);
    char line[3 * MC_KEY_MAX + 160];
    while (wharf_output_pending(c) < MC_DUMP_YIELD) {
        size_t n = mc_store_walk(l->store, &d->walk, now, d->items, MC_DUMP_BATCH);
        for (size_t i = 0; i < n; i++) {
            const struct mc_walk_item *it = &d->items[i];
            unsigned cls = mc_store_class_of(it->nkey, it->nbytes);
            if (!d->cls[cls])
                continue;
            memcpy(line, "key=", 4);
            size_t k = 4;
            k += uriencode(it->key, it->nkey, line + k);
            k += (size_t)snprintf(line + k, sizeof line - k,
                                  " exp=%lld la=%lld cas=%llu fetch=%s cls=%u size=%zu\n",
                                  (long long)(it->exptime == 0 ? -1 : it->exptime),
                                  (long long)it->time, (unsigned long long)it->cas,
                                  it->fetched ? "yes" : "no", cls,
                                  mc_store_ntotal(it->nkey, it->nbytes));
            mc_send(c, line, k);
        }
        if (d->walk.done) {
            REPLY(c, "END\r\n");
            mc_crawler_free(mc);
            return false;
        }
    }
    wharf_want_drain(c);
    return true;
}

void mc_crawler_free(struct mc_conn *mc)
{
    free(mc->dump);
    mc->dump = NULL;
}
