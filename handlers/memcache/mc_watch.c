/*
 * mc_watch.c - memcached's "watch" command for the memcache handler: a
 * connection that sends "watch [fetchers] [mutations] [evictions]" gets
 * "OK" and then one line per event of those kinds from every worker, in
 * memcached 1.6's log formats (logger.c): item_get, item_store, eviction.
 *
 * Events happen on any worker (and evictions inside the store, a shard
 * locked).  Each is formatted once and appended to the buffer of every
 * watcher that wants it (at most MC_WATCH_BUF bytes each, under the
 * registry's lock); the first line into an empty buffer posts one flush to
 * the watcher's own worker (wharf_post_conn), which sends the buffer.  A
 * watcher that does not read keeps at most MC_WATCH_BUF bytes pending in
 * its output and MC_WATCH_BUF in its buffer: further lines are dropped and
 * counted, and it is told "skipped=N" before the next lines it gets, as
 * memcached tells it.  At most MC_WATCH_MAX watchers at once.
 *
 * Lifetime: a watcher is removed from the registry when its connection
 * closes; one whose flush is still in flight is freed by that flush (which
 * runs with c == NULL for a closed connection).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "memcache.h"

struct mc_watcher {
    struct mc_watch *wt;
    wharf_worker *worker;
    uint64_t conn_id;
    unsigned kinds;
    bool posted;          /* a flush is in flight */
    bool gone;            /* its connection closed while posted */
    uint64_t skipped;     /* lines dropped since the last it was told */
    size_t len;
    char buf[MC_WATCH_BUF];
};

struct mc_watch {
    pthread_mutex_t lock; /* everything below and every watcher's fields */
    _Atomic unsigned kinds; /* what any watcher wants */
    struct mc_watcher *w[MC_WATCH_MAX];
    uint64_t gid, sent, skipped;
};

static void watch_evicted(void *arg, const struct mc_item *it, int64_t now);

struct mc_watch *mc_watch_new(struct mc_store *store)
{
    struct mc_watch *wt = calloc(1, sizeof *wt);
    if (!wt)
        return NULL;
    pthread_mutex_init(&wt->lock, NULL);
    mc_store_set_evict_hook(store, watch_evicted, wt);
    return wt;
}

/* The store is freed first (mc_shared_destroy): no hook can run after. */
void mc_watch_free(struct mc_watch *wt)
{
    if (!wt)
        return;
    for (unsigned i = 0; i < MC_WATCH_MAX; i++)
        free(wt->w[i]);
    pthread_mutex_destroy(&wt->lock);
    free(wt);
}

bool mc_watch_wants(const struct mc_watch *wt, enum mc_watch_kind k)
{
    return (atomic_load_explicit(&wt->kinds, memory_order_relaxed) & (unsigned)k) != 0;
}

static void kinds_update(struct mc_watch *wt)
{
    unsigned k = 0;
    for (unsigned i = 0; i < MC_WATCH_MAX; i++)
        if (wt->w[i])
            k |= wt->w[i]->kinds;
    atomic_store(&wt->kinds, k);
}

/* Sends what w holds, unless its output is already MC_WATCH_BUF behind
 * (then on_drain comes back).  wt->lock held. */
static void flush_locked(wharf_conn *c, struct mc_watcher *w)
{
    if (wharf_output_pending(c) >= MC_WATCH_BUF) {
        wharf_want_drain(c);
        return;
    }
    if (w->skipped) {
        char line[48];
        int n = snprintf(line, sizeof line, "skipped=%llu\n", (unsigned long long)w->skipped);
        mc_send(c, line, (size_t)n);
        w->skipped = 0;
    }
    if (w->len)
        mc_send(c, w->buf, w->len);
    w->len = 0;
}

/* The posted flush, on the watcher's worker. */
static void watch_flush(wharf_conn *c, void *arg)
{
    struct mc_watcher *w = arg;
    struct mc_watch *wt = w->wt;
    pthread_mutex_lock(&wt->lock);
    w->posted = false;
    if (w->gone) {
        pthread_mutex_unlock(&wt->lock);
        free(w);
        return;
    }
    if (c)
        flush_locked(c, w);
    pthread_mutex_unlock(&wt->lock);
}

void mc_watch_drain(wharf_conn *c, struct mc_conn *mc)
{
    struct mc_watch *wt = mc->watcher->wt;
    pthread_mutex_lock(&wt->lock);
    flush_locked(c, mc->watcher);
    pthread_mutex_unlock(&wt->lock);
}

/* Formats one event line (after "ts=... gid=... ") for every watcher of kind k. */
static void watch_log(struct mc_watch *wt, enum mc_watch_kind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void watch_log(struct mc_watch *wt, enum mc_watch_kind k, const char *fmt, ...)
{
    char body[4 * MC_KEY_MAX], line[sizeof body + 64];
    va_list ap;
    va_start(ap, fmt);
    int bn = vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (bn < 0 || (size_t)bn >= sizeof body)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    pthread_mutex_lock(&wt->lock);
    /* memcached: "ts=%lld.%d gid=%llu " (microseconds not zero-padded) */
    int n = snprintf(line, sizeof line, "ts=%lld.%d gid=%llu %s", (long long)tv.tv_sec,
                     (int)tv.tv_usec, (unsigned long long)++wt->gid, body);
    for (unsigned i = 0; i < MC_WATCH_MAX; i++) {
        struct mc_watcher *w = wt->w[i];
        if (!w || !(w->kinds & (unsigned)k))
            continue;
        if (w->len + (size_t)n > sizeof w->buf) {
            w->skipped++;
            wt->skipped++;
            continue;
        }
        memcpy(w->buf + w->len, line, (size_t)n);
        w->len += (size_t)n;
        wt->sent++;
        if (!w->posted) {
            w->posted = true;
            if (wharf_post_conn(w->worker, w->conn_id, watch_flush, w) != 0)
                w->posted = false; /* the next event tries again */
        }
    }
    pthread_mutex_unlock(&wt->lock);
}

/* memcached's uriencode (KEY_MAX_URI_ENCODED_LENGTH is 3 * 250 + 1). */
static void urienc(const char *k, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *out++ = (char)ch;
        } else {
            *out++ = '%';
            *out++ = hex[ch >> 4];
            *out++ = hex[ch & 15];
        }
    }
    *out = '\0';
}

void mc_watch_get(struct mc_watch *wt, const char *key, size_t nkey, enum mc_result r,
                  unsigned cls, uint32_t nbytes, uint64_t cfd)
{
    char k[3 * MC_KEY_MAX + 1];
    urienc(key, nkey, k);
    bool found = r == MC_FOUND;
    const char *status = found ? "found" : r == MC_EXPIRED ? "expired"
                       : r == MC_FLUSHED ? "flushed" : "not_found";
    watch_log(wt, MW_FETCHERS, "type=item_get key=%s status=%s clsid=%u cfd=%llu size=%u\n", k,
              status, found ? cls : 0, (unsigned long long)cfd, found ? nbytes : 0);
}

void mc_watch_store(struct mc_watch *wt, const char *key, size_t nkey, int status, int cmd,
                    int64_t ttl, unsigned cls, uint32_t nbytes, uint64_t cfd)
{
    static const char *const st[] = {"not_stored", "stored", "exists", "not_found",
                                     "too_large", "no_memory"};
    static const char *const cm[] = {"null", "add", "set", "replace", "append", "prepend",
                                     "cas"};
    char k[3 * MC_KEY_MAX + 1];
    urienc(key, nkey, k);
    watch_log(wt, MW_MUTATIONS,
              "type=item_store key=%s status=%s cmd=%s ttl=%u clsid=%u cfd=%llu size=%u\n", k,
              st[status], cmd >= 0 && cmd <= 6 ? cm[cmd] : "na", (unsigned)ttl, cls,
              (unsigned long long)cfd, nbytes);
}

static void watch_evicted(void *arg, const struct mc_item *it, int64_t now)
{
    struct mc_watch *wt = arg;
    if (!mc_watch_wants(wt, MW_EVICTIONS))
        return;
    char k[3 * MC_KEY_MAX + 1];
    urienc(mc_item_key(it), it->nkey, k);
    watch_log(wt, MW_EVICTIONS,
              "type=eviction key=%s fetch=%s ttl=%lld la=%d clsid=%u size=%u\n", k,
              it->fetched ? "yes" : "no", (long long)(it->exptime > 0 ? it->exptime - now : -1),
              (int)(now - it->time), mc_store_class_of(it->nkey, it->nbytes), it->nbytes);
}

void mc_watch_command(wharf_conn *c, struct mc_conn *mc, const struct mc_tok *t, size_t n)
{
    struct mc_listener *l = wharf_listener_data(c);
    struct mc_watch *wt = l->sh->ops->watch;
    unsigned kinds = n == 1 ? MW_FETCHERS : 0;
    for (size_t i = 1; i < n; i++) {
        if (mc_tok_is(&t[i], "fetchers"))
            kinds |= MW_FETCHERS;
        else if (mc_tok_is(&t[i], "mutations"))
            kinds |= MW_MUTATIONS;
        else if (mc_tok_is(&t[i], "evictions"))
            kinds |= MW_EVICTIONS;
        else {
            REPLY(c, "ERROR\r\n"); /* and the kinds wharf does not log */
            return;
        }
    }
    struct mc_watcher *w = calloc(1, sizeof *w);
    if (!w) {
        REPLY(c, "WATCHER_FAILED failed to add log watcher\r\n");
        return;
    }
    w->wt = wt;
    w->worker = wharf_conn_worker(c);
    w->conn_id = wharf_conn_id(c);
    w->kinds = kinds;
    pthread_mutex_lock(&wt->lock);
    unsigned i = 0;
    while (i < MC_WATCH_MAX && wt->w[i])
        i++;
    if (i < MC_WATCH_MAX) {
        wt->w[i] = w;
        mc->watcher = w;
        kinds_update(wt);
    }
    pthread_mutex_unlock(&wt->lock);
    if (i == MC_WATCH_MAX) {
        free(w);
        REPLY(c, "WATCHER_TOO_MANY log watcher limit reached\r\n");
        return;
    }
    REPLY(c, "OK\r\n");
}

void mc_watch_close(struct mc_conn *mc)
{
    struct mc_watcher *w = mc->watcher;
    if (!w)
        return;
    struct mc_watch *wt = w->wt;
    pthread_mutex_lock(&wt->lock);
    for (unsigned i = 0; i < MC_WATCH_MAX; i++)
        if (wt->w[i] == w)
            wt->w[i] = NULL;
    kinds_update(wt);
    bool later = w->posted;
    w->gone = true;
    pthread_mutex_unlock(&wt->lock);
    if (!later)
        free(w);
    mc->watcher = NULL;
}

void mc_watch_stats(struct mc_watch *wt, uint64_t *watchers, uint64_t *sent, uint64_t *skipped)
{
    pthread_mutex_lock(&wt->lock);
    unsigned n = 0;
    for (unsigned i = 0; i < MC_WATCH_MAX; i++)
        n += wt->w[i] != NULL;
    *watchers = n;
    *sent = wt->sent;
    *skipped = wt->skipped;
    pthread_mutex_unlock(&wt->lock);
}

void mc_watch_reset(struct mc_watch *wt)
{
    pthread_mutex_lock(&wt->lock);
    wt->sent = wt->skipped = 0;
    pthread_mutex_unlock(&wt->lock);
}
