/*
 * memcache.c - a memcached-compatible cache (memcached 1.6's ASCII protocol,
 * protocol.txt) as an ordinary wharf handler; see docs/memcache.md.
 *
 * Options:
 *   "memory_limit":        bytes, default 67108864 (64 MiB) - items and their
 *                          overhead never pass it; LRU items are evicted first
 *   "item_size_max":       bytes, default 1048576 - the largest value
 *   "reclaim_interval_ms": default 1000 (0: off) - how often each worker
 *                          frees expired items nobody asked for
 *   "reclaim_batch":       default 256 - at most this many per tick
 *
 * The listener's buffers need no setting: a storage command whose value has
 * not all arrived is gathered by the handler itself (mc_pending_start), so
 * max_input bounds only a command line (at least 2048 bytes).
 *
 * How it is built on wharf:
 *  - framing: on_data walks its bytes with wharf_frame_next under a
 *    HEADER_BODY framing whose body_length reads a storage command's
 *    <bytes> field (the body is <bytes> + 2: the handler checks the "\r\n"
 *    itself, to answer "bad data chunk" as memcached does rather than close).
 *    The loop is the handler's own, not wharf_frames, because memcached
 *    answers errors and goes on where wharf_frames closes.  Three states sit
 *    beside the framing: swallowing a refused value's bytes, a get line
 *    continued over several offers (a line past 2048 bytes, or output held
 *    back), and the end.
 *  - backpressure: before each command (and each key of a get) the handler
 *    stops when the connection has MC_OUTPUT_YIELD bytes of output pending
 *    and returns what it consumed; wharf offers the rest again once the
 *    output is written.  A client that sends gets and never reads so holds
 *    at most one value more than that.
 *  - shared state that survives reload: the cache (struct mc_shared: the
 *    store of mc_store.c with striped locks, and the statistics) is
 *    the listener's named state "cache" (wharf_state_get): a reload hands
 *    the same cache to the new generation, so old and new connections see
 *    the same items and memory is not doubled.  A reload's memory_limit and
 *    item_size_max are applied to it when the new generation starts serving
 *    (on_worker_start; a newer generation's settings win, and a reload that
 *    fails changes nothing), evicting as needed.  Statistics are per worker
 *    (struct mc_worker, one per worker index, sized by the worker count,
 *    written only by its worker, relaxed atomics) and summed by "stats".
 *  - timers: each worker runs one repeating timer per generation that
 *    reclaims expired items, started in on_worker_start and stopped in
 *    on_worker_stop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memrchr */
#endif
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "memcache.h"

#define MC_LINE_MAX 2048             /* a line longer than this (not get) closes */

/* ---- storage commands' header (shared by body_length and the command) ---- */

enum mc_parse { P_OK, P_NOT_STORAGE, P_ERROR, P_FORMAT, P_TOO_LARGE };

struct mc_storage {
    enum mc_store_mode mode;
    struct mc_tok key;
    uint32_t flags;
    int64_t exptime;
    uint64_t bytes;
    uint64_t cas;
    bool noreply;
};

static enum mc_parse parse_storage(const struct mc_listener *l, const struct mc_tok *t, size_t n,
                                   struct mc_storage *sc)
{
    if (n == 0)
        return P_NOT_STORAGE;
    if (mc_tok_is(&t[0], "set"))
        sc->mode = MC_SET;
    else if (mc_tok_is(&t[0], "add"))
        sc->mode = MC_ADD;
    else if (mc_tok_is(&t[0], "replace"))
        sc->mode = MC_REPLACE;
    else if (mc_tok_is(&t[0], "append"))
        sc->mode = MC_APPEND;
    else if (mc_tok_is(&t[0], "prepend"))
        sc->mode = MC_PREPEND;
    else if (mc_tok_is(&t[0], "cas"))
        sc->mode = MC_CAS;
    else
        return P_NOT_STORAGE;
    size_t need = sc->mode == MC_CAS ? 6 : 5;
    if (n != need && n != need + 1)
        return P_ERROR;
    sc->noreply = n == need + 1 && mc_tok_is(&t[n - 1], "noreply");
    sc->key = t[1];
    uint64_t flags;
    int64_t bytes;
    if (!mc_tok_key(&t[1]) || !mc_tok_u64(&t[2], &flags) || !mc_tok_i32(&t[3], &sc->exptime) ||
        !mc_tok_i32(&t[4], &bytes) || bytes < 0)
        return P_FORMAT;
    if (bytes > INT32_MAX - 2) /* memcached: vlen > INT_MAX - 2, no swallow */
        return P_FORMAT;
    sc->flags = (uint32_t)flags;
    sc->bytes = (uint64_t)bytes;
    sc->cas = 0;
    if (sc->mode == MC_CAS && !mc_tok_u64(&t[5], &sc->cas))
        return P_FORMAT;
    if (sc->bytes > l->item_max)
        return P_TOO_LARGE;
    return P_OK;
}

/* A command line ends at its first NUL, as memcached reads it (a C
 * string): "set k\0x 0 0 1" is "set k", a key may hold any other byte. */
static size_t mc_line_len(const char *line, size_t len)
{
    const char *nul = memchr(line, 0, len);
    return nul ? (size_t)(nul - line) : len;
}

/* The framing's body_length: <bytes> + 2 for a well-formed storage command,
 * -1 (the line alone) for everything else, errors included. */
static long long mc_body_length(const char *line, size_t len, void *arg)
{
    const struct mc_listener *l = arg;
    len = mc_line_len(line, len);
    if (mc_meta_is(line, len)) /* meta commands: mc_meta.c */
        return mc_meta_body_length(l, line, len);
    size_t i = 0; /* no storage command begins otherwise: no split needed */
    while (i < len && line[i] == ' ')
        i++;
    if (i == len || !strchr("sarpc", line[i]))
        return -1;
    struct mc_tok t[MC_TOKENS_MAX];
    size_t n = mc_tok_split(line, len, t, MC_TOKENS_MAX);
    struct mc_storage sc;
    if (n > MC_TOKENS_MAX || parse_storage(l, t, n, &sc) != P_OK)
        return -1;
    return (long long)sc.bytes + 2;
}

/* ---- a message over several reads --------------------------------------- */

/*
 * A message whose length is known but which has not all arrived (an ASCII
 * or meta storage command once its header line is in, a binary request
 * once its header, extras and key are) is gathered here, not in the
 * framework's kept input: so a value up to item_size_max is taken whatever
 * the listener's buffers.max_input (the default 1 MiB would otherwise close
 * the connection on a 1 MiB value).  The buffer is at most a header line
 * (or a binary header, extras and key) plus item_size_max + 2: one per
 * connection, the size memcached allocates for the item it reads into.
 * Once whole, the message is run without the output check (its bytes are
 * consumed already, so nothing would offer them again).
 */

static size_t mc_command(wharf_conn *c, struct mc_conn *mc, const struct wharf_frame *fr,
                         size_t len, int64_t now);

size_t mc_pending_start(wharf_conn *c, struct mc_conn *mc, const void *p, size_t rem,
                        size_t need)
{
    struct mc_pending *pd = malloc(sizeof *pd + need);
    if (!pd) {
        REPLY(c, "SERVER_ERROR out of memory storing object\r\n");
        wharf_close_with(c, WHARF_CLOSE_ERROR);
        return rem;
    }
    memcpy(pd->buf, p, rem);
    pd->text = pd->line = 0;
    pd->have = rem;
    pd->need = need;
    mc->pend = pd;
    return rem;
}

/* Takes an ASCII or meta storage command line p[0..rem) whose body has not
 * all arrived: returns the bytes consumed (all of rem), or 0 when p does
 * not start with a whole line of a command that has a body. */
static size_t mc_pending_begin(wharf_conn *c, struct mc_conn *mc, const char *p, size_t rem)
{
    const char *lf = memchr(p, '\n', rem < MC_LINE_MAX + 1 ? rem : MC_LINE_MAX + 1);
    if (!lf)
        return 0;
    size_t text = (size_t)(lf - p), line = text + 1;
    if (text && p[text - 1] == '\r')
        text--;
    long long body = mc_body_length(p, text, wharf_listener_data(c));
    if (body <= 0)
        return 0;
    size_t k = mc_pending_start(c, mc, p, rem, line + (size_t)body);
    if (mc->pend) {
        mc->pend->text = text;
        mc->pend->line = line;
    }
    return k;
}

/* Adds p[0..rem) to the pending message; runs it once it is whole.
 * Returns the bytes consumed. */
static size_t mc_pending_fill(wharf_conn *c, struct mc_conn *mc, const char *p, size_t rem,
                              int64_t now)
{
    struct mc_pending *pd = mc->pend;
    size_t k = pd->need - pd->have < rem ? pd->need - pd->have : rem;
    memcpy(pd->buf + pd->have, p, k);
    pd->have += k;
    if (pd->have == pd->need) {
        mc->pend = NULL;
        if (mc->proto == MC_PROTO_BINARY) {
            mc_binary_request(c, mc, pd->buf, pd->need, now);
        } else {
            struct wharf_frame fr = {
                .data = pd->buf, .len = pd->need,
                .header = pd->buf, .header_len = pd->text,
                .payload = pd->buf + pd->line, .payload_len = pd->need - pd->line,
            };
            mc_command(c, mc, &fr, pd->need, now);
        }
        free(pd);
    }
    return k;
}

/* ---- workers and connections ------------------------------------------ */

static void mc_tick(wharf_timer *t, void *arg)
{
    (void)t;
    struct mc_listener *l = arg;
    mc_store_reclaim(l->store, l->reclaim_batch, (int64_t)time(NULL));
}

/* Applies l's memory_limit and item_size_max to the shared cache unless a
 * newer generation's already were (any worker, once per generation). */
static void mc_apply_settings(struct mc_listener *l)
{
    struct mc_shared *sh = l->sh;
    pthread_mutex_lock(&sh->lock);
    if (l->ticket > sh->applied) {
        sh->applied = l->ticket;
        mc_store_set_limits(sh->store, l->limit, l->item_max);
    }
    pthread_mutex_unlock(&sh->lock);
}

static void mc_on_worker_start(void *listener_data, wharf_worker *w)
{
    struct mc_listener *l = listener_data;
    unsigned idx = wharf_worker_index(w);
    mc_apply_settings(l);
    if (l->reclaim_ms && idx < l->nworkers)
        l->ticks[idx] = wharf_timer_start(NULL, l->reclaim_ms, l->reclaim_ms, mc_tick, l);
}

static void mc_on_worker_stop(void *listener_data, wharf_worker *w)
{
    struct mc_listener *l = listener_data;
    unsigned idx = wharf_worker_index(w);
    if (idx < l->nworkers && l->ticks[idx]) {
        wharf_timer_stop(l->ticks[idx]);
        l->ticks[idx] = NULL;
    }
}

static void mc_on_open(wharf_conn *c)
{
    struct mc_listener *l = wharf_listener_data(c);
    unsigned idx = wharf_conn_worker_index(c);
    struct mc_conn *mc = calloc(1, sizeof *mc);
    if (!mc) {
        wharf_close_with(c, WHARF_CLOSE_ERROR);
        return;
    }
    mc->c = c;
    mc->w = &l->sh->workers[idx < l->sh->nworkers ? idx : l->sh->nworkers - 1];
    wharf_set_data(c, mc);
    mc_stats_conn_open(c, mc); /* counts it, or refuses it over max_connections */
}

static void mc_on_close(wharf_conn *c, enum wharf_close_reason reason)
{
    (void)reason;
    struct mc_conn *mc = wharf_get_data(c);
    if (!mc)
        return;
    mc_watch_close(mc);
    mc_crawler_free(mc);
    mc_stats_conn_close(mc);
    free(mc->pend);
    free(mc);
    wharf_set_data(c, NULL);
}

/* ---- what the operators' commands see of each command ------------------- */

/* A get-family key looked up (r: MC_FOUND, or why it missed): per-class
 * hits, stats detail, watch. */
void mc_ops_fetched(wharf_conn *c, struct mc_conn *mc, const char *key, size_t nkey,
                    enum mc_result r, uint32_t nbytes, bool touch)
{
    struct mc_listener *l = wharf_listener_data(c);
    bool found = r == MC_FOUND;
    if (found)
        mc_stats_class(mc, touch ? SC_TOUCH_HITS : SC_GET_HITS, nkey, nbytes);
    mc_stats_detail(l->sh, key, nkey, found ? MD_HIT : MD_GET);
    if (mc_watch_wants(l->sh->ops->watch, MW_FETCHERS))
        mc_watch_get(l->sh->ops->watch, key, nkey, r,
                     found ? mc_store_class_of(nkey, nbytes) : 0, nbytes, wharf_conn_id(c));
}

/*
 * The lookup memcached's commands make before they act (do_item_get: a
 * storage command's old item, delete, incr/decr, touch), which watch shows
 * as an item_get: looks key up without bumping it (mc_store_peek: MC_FOUND
 * with *cls and *nbytes, or why it missed) and logs it when a watcher
 * wants fetchers.
 */
static enum mc_result mc_ops_lookup(wharf_conn *c, const char *key, size_t nkey, int64_t now,
                                    unsigned *cls, uint32_t *nbytes)
{
    struct mc_listener *l = wharf_listener_data(c);
    *cls = 0;
    *nbytes = 0;
    enum mc_result r = mc_store_peek(l->store, key, nkey, now, cls, nbytes);
    if (mc_watch_wants(l->sh->ops->watch, MW_FETCHERS))
        mc_watch_get(l->sh->ops->watch, key, nkey, r, *cls, *nbytes, wharf_conn_id(c));
    return r;
}

/* mc_ops_lookup only for a watcher (the command looks key up itself). */
void mc_ops_watch_lookup(wharf_conn *c, const char *key, size_t nkey, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    unsigned cls;
    uint32_t nbytes;
    if (mc_watch_wants(l->sh->ops->watch, MW_FETCHERS))
        mc_ops_lookup(c, key, nkey, now, &cls, &nbytes);
}

/* A storage command about to store: stats detail, and the lookup of the
 * old item for watch. */
void mc_ops_storing(wharf_conn *c, const char *key, size_t nkey, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    mc_stats_detail(l->sh, key, nkey, MD_SET);
    mc_ops_watch_lookup(c, key, nkey, now);
}

/* A storage command's outcome (exptime absolute, 0 never): per-class
 * counters and watch's item_store. */
void mc_ops_stored(wharf_conn *c, struct mc_conn *mc, const char *key, size_t nkey,
                   enum mc_store_mode mode, int64_t exptime, size_t nbytes, enum mc_result r,
                   int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    if (mode == MC_CAS && (r == MC_STORED || r == MC_EXISTS))
        mc_stats_class(mc, r == MC_STORED ? SC_CAS_HITS : SC_CAS_BADVAL, nkey, nbytes);
    if (r == MC_NO_MEMORY)
        mc_stats_class(mc, SC_OUTOFMEMORY, nkey, nbytes);
    if (!mc_watch_wants(l->sh->ops->watch, MW_MUTATIONS))
        return;
    /* memcached's store_item_type and NREAD_* numbers */
    int status = r == MC_STORED ? 1 : r == MC_EXISTS ? 2 : r == MC_NOT_FOUND ? 3
               : r == MC_TOO_LARGE ? 4 : r == MC_NO_MEMORY ? 5 : 0;
    static const int cmd[] = {[MC_SET] = 2, [MC_ADD] = 1, [MC_REPLACE] = 3,
                              [MC_APPEND] = 4, [MC_PREPEND] = 5, [MC_CAS] = 6};
    if ((mode == MC_APPEND || mode == MC_PREPEND) && r == MC_STORED) {
        unsigned cls; /* memcached shows the joined item's size */
        uint32_t joined;
        if (mc_store_peek(l->store, key, nkey, now, &cls, &joined) == MC_FOUND)
            nbytes = joined;
    }
    mc_watch_store(l->sh->ops->watch, key, nkey, status, cmd[mode],
                   exptime > now ? exptime - now : 0, mc_store_class_of(nkey, nbytes),
                   (uint32_t)nbytes, wharf_conn_id(c));
}

/* ---- retrieval -------------------------------------------------------- */

/* Values at least this long go out by reference (wharf_send_ref, no
 * copy); shorter ones are copied behind their header in one wharf_send,
 * which costs less than a reference (docs/performance.md measured it). */
#define MC_REF_MIN 4096u

static void mc_value_release(void *arg)
{
    mc_item_release(arg);
}

/*
 * Sends "VALUE key flags bytes [cas]\r\n" + value + "\r\n" of an item
 * the caller holds a reference to (mc_store_get_ref), and hands that
 * reference over: a long value is written straight from the item, which
 * the connection releases once written; otherwise it is released here.
 * No lock is held.
 */
static void mc_emit_value(wharf_conn *c, struct mc_item *it, bool cas)
{
    char buf[MC_REF_MIN + 512];
    char *p = buf;
    memcpy(p, "VALUE ", 6);
    p += 6;
    memcpy(p, mc_item_key(it), it->nkey);
    p += it->nkey;
    *p++ = ' ';
    p = mc_put_u64(p, it->flags);
    *p++ = ' ';
    p = mc_put_u64(p, it->nbytes);
    if (cas) {
        *p++ = ' ';
        p = mc_put_u64(p, it->cas);
    }
    *p++ = '\r';
    *p++ = '\n';
    size_t hl = (size_t)(p - buf), vl = (size_t)it->nbytes + 2;
    if (vl < MC_REF_MIN) {
        memcpy(p, mc_item_value(it), vl);
        mc_send(c, buf, hl + vl);
        mc_item_release(it);
        return;
    }
    mc_send(c, buf, hl);
    struct mc_conn *mc = wharf_get_data(c);
    wharf_counter_add(&mc->w->cnt[C_BYTES_WRITTEN], vl);
    wharf_send_ref(c, mc_item_value(it), vl, mc_value_release, it);
}

/*
 * The keys of a get line in s[0..n) (blank separated): looks each up and
 * sends its value.  Returns how many bytes it got through: n, or less when
 * output piled up (the offset of the first key not done).  A bad key sends
 * the error and sets mget_skip (the rest of the line is dropped).
 */
static size_t mc_get_keys(wharf_conn *c, struct mc_conn *mc, const char *s, size_t n,
                          int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    bool cas = mc->mget == MG_GETS || mc->mget == MG_GATS;
    bool touch = mc->mget == MG_GAT || mc->mget == MG_GATS;
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        if (i == n)
            break;
        if (wharf_output_pending(c) >= MC_OUTPUT_YIELD)
            return i;
        size_t start = i;
        const char *sp = memchr(s + i, ' ', n - i);
        i = sp ? (size_t)(sp - s) : n;
        struct mc_tok k = {s + start, i - start};
        if (!mc_tok_key(&k)) {
            REPLY(c, "CLIENT_ERROR bad command line format\r\n");
            mc->mget_skip = true;
            return n;
        }
        enum mc_result r = MC_FOUND;
        struct mc_item *it = mc_store_get_ref(l->store, k.p, k.n, now, touch, mc->mget_exptime,
                                              &r);
        if (it)
            r = MC_FOUND;
        uint32_t nbytes = it ? it->nbytes : 0;
        if (it)
            mc_emit_value(c, it, cas);
        wharf_counter_add(&mc->w->cnt[C_CMD_GET], 1);
        if (touch) {
            wharf_counter_add(&mc->w->cnt[C_CMD_TOUCH], 1);
            wharf_counter_add(&mc->w->cnt[r == MC_FOUND ? C_TOUCH_HITS : C_TOUCH_MISSES], 1);
        } else {
            wharf_counter_add(&mc->w->cnt[r == MC_FOUND ? C_GET_HITS : C_GET_MISSES], 1);
        }
        mc_ops_fetched(c, mc, k.p, k.n, r, nbytes, touch);
    }
    return n;
}

/*
 * Starts a get-family command whose line begins at s[0..n) (n covers at
 * least the command and, for gat, the exptime).  Returns the offset of the
 * keys, or 0 when it answered an error itself (then *err is set).
 */
static size_t mc_get_begin(struct mc_conn *mc, const char *s, size_t n, bool *err)
{
    *err = false;
    struct mc_tok t[2];
    size_t nt = mc_tok_split(s, n, t, 2);
    if (nt == 0)
        return 0;
    if (mc_tok_is(&t[0], "get"))
        mc->mget = MG_GET;
    else if (mc_tok_is(&t[0], "gets"))
        mc->mget = MG_GETS;
    else if (mc_tok_is(&t[0], "gat"))
        mc->mget = MG_GAT;
    else if (mc_tok_is(&t[0], "gats"))
        mc->mget = MG_GATS;
    else
        return 0;
    mc->mget_skip = false;
    size_t keys = (size_t)(t[0].p + t[0].n - s);
    if (mc->mget == MG_GAT || mc->mget == MG_GATS) {
        int64_t e;
        if (nt < 2 || !mc_tok_i32(&t[1], &e)) {
            *err = true;
            mc->mget = MG_NONE;
            if (nt < 2)
                REPLY(mc->c, "ERROR\r\n");
            else
                REPLY(mc->c, "CLIENT_ERROR invalid exptime argument\r\n");
            return 0;
        }
        mc->mget_exptime = mc_exptime(e, (int64_t)time(NULL));
        keys = (size_t)(t[1].p + t[1].n - s);
    }
    return keys;
}

/* ---- other commands --------------------------------------------------- */

static void mc_reply_u64(wharf_conn *c, uint64_t v)
{
    char buf[24];
    char *p = mc_put_u64(buf, v);
    *p++ = '\r';
    *p++ = '\n';
    mc_send(c, buf, (size_t)(p - buf));
}

/* A storage command whose body[0..blen) (<bytes> + 2) is all here. */
static void mc_cmd_storage(wharf_conn *c, struct mc_conn *mc, const struct mc_storage *sc,
                           const char *body, size_t blen, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    wharf_counter_add(&mc->w->cnt[C_CMD_SET], 1); /* memcached counts before the check */
    mc_stats_class(mc, SC_CMD_SET, sc->key.n, (size_t)sc->bytes);
    if (body[blen - 2] != '\r' || body[blen - 1] != '\n') {
        if (!sc->noreply)
            REPLY(c, "CLIENT_ERROR bad data chunk\r\n");
        return;
    }
    mc_ops_storing(c, sc->key.p, sc->key.n, now);
    enum mc_result r = mc_store_store(l->store, sc->mode, sc->key.p, sc->key.n, sc->flags,
                                      mc_exptime(sc->exptime, now), body, blen - 2, sc->cas, now);
    if (sc->mode == MC_CAS)
        wharf_counter_add(&mc->w->cnt[r == MC_STORED   ? C_CAS_HITS
                                      : r == MC_EXISTS ? C_CAS_BADVAL
                                                       : C_CAS_MISSES],
                          1);
    if ((sc->mode == MC_APPEND || sc->mode == MC_PREPEND) &&
        (r == MC_TOO_LARGE || r == MC_NO_MEMORY))
        r = MC_NOT_STORED; /* memcached: the joined item could not be made */
    if (r == MC_TOO_LARGE)
        wharf_counter_add(&mc->w->cnt[C_STORE_TOO_LARGE], 1);
    if (r == MC_NO_MEMORY)
        wharf_counter_add(&mc->w->cnt[C_STORE_NO_MEMORY], 1);
    mc_ops_stored(c, mc, sc->key.p, sc->key.n, sc->mode, mc_exptime(sc->exptime, now),
                  (size_t)sc->bytes, r, now);
    if (sc->noreply)
        return;
    switch (r) {
    case MC_STORED: REPLY(c, "STORED\r\n"); break;
    case MC_NOT_STORED: REPLY(c, "NOT_STORED\r\n"); break;
    case MC_EXISTS: REPLY(c, "EXISTS\r\n"); break;
    case MC_NOT_FOUND: REPLY(c, "NOT_FOUND\r\n"); break;
    case MC_TOO_LARGE: REPLY(c, "SERVER_ERROR object too large for cache\r\n"); break;
    default: REPLY(c, "SERVER_ERROR out of memory storing object\r\n"); break;
    }
}

/* memcached's process_delete_command: "delete <key> [0] [noreply]"; every
 * answer, the usage error included, respects noreply. */
static void mc_cmd_delete(wharf_conn *c, struct mc_conn *mc, const struct mc_tok *t, size_t n,
                          int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    bool noreply = n > 2 && mc_tok_is(&t[n - 1], "noreply");
    if (n > 2) {
        bool zero = mc_tok_is(&t[2], "0");
        if (!((n == 3 && (zero || noreply)) || (n == 4 && zero && noreply))) {
            if (!noreply)
                REPLY(c, "CLIENT_ERROR bad command line format.  "
                         "Usage: delete <key> [noreply]\r\n");
            return;
        }
    }
    if (!mc_tok_key(&t[1])) {
        if (!noreply)
            REPLY(c, "CLIENT_ERROR bad command line format\r\n");
        return;
    }
    mc_stats_detail(l->sh, t[1].p, t[1].n, MD_DEL);
    unsigned cls;
    uint32_t nbytes;
    bool had = mc_ops_lookup(c, t[1].p, t[1].n, now, &cls, &nbytes) == MC_FOUND;
    enum mc_result r = mc_store_delete(l->store, t[1].p, t[1].n, now);
    wharf_counter_add(&mc->w->cnt[r == MC_FOUND ? C_DELETE_HITS : C_DELETE_MISSES], 1);
    if (r == MC_FOUND && had)
        mc_stats_class(mc, SC_DELETE_HITS, t[1].n, nbytes);
    if (!noreply) {
        if (r == MC_FOUND)
            REPLY(c, "DELETED\r\n");
        else
            REPLY(c, "NOT_FOUND\r\n");
    }
}

static void mc_cmd_delta(wharf_conn *c, struct mc_conn *mc, const struct mc_tok *t, size_t n,
                         bool incr, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    bool noreply = n == 4 && mc_tok_is(&t[3], "noreply");
    if (!mc_tok_key(&t[1])) {
        if (!noreply)
            REPLY(c, "CLIENT_ERROR bad command line format\r\n");
        return;
    }
    uint64_t delta, v = 0;
    if (!mc_tok_u64(&t[2], &delta)) {
        if (!noreply)
            REPLY(c, "CLIENT_ERROR invalid numeric delta argument\r\n");
        return;
    }
    mc_ops_watch_lookup(c, t[1].p, t[1].n, now);
    enum mc_result r = mc_store_delta(l->store, t[1].p, t[1].n, incr, delta, now, &v);
    if (r == MC_FOUND || r == MC_NOT_FOUND)
        wharf_counter_add(&mc->w->cnt[incr ? (r == MC_FOUND ? C_INCR_HITS : C_INCR_MISSES)
                            : (r == MC_FOUND ? C_DECR_HITS : C_DECR_MISSES)], 1);
    unsigned cls;
    uint32_t nbytes;
    if (r == MC_FOUND && mc_store_peek(l->store, t[1].p, t[1].n, now, &cls, &nbytes) == MC_FOUND)
        mc_stats_class(mc, incr ? SC_INCR_HITS : SC_DECR_HITS, t[1].n, nbytes);
    if (noreply)
        return;
    switch (r) {
    case MC_FOUND: mc_reply_u64(c, v); break;
    case MC_NOT_FOUND: REPLY(c, "NOT_FOUND\r\n"); break;
    case MC_NON_NUMERIC:
        REPLY(c, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
        break;
    default: REPLY(c, "SERVER_ERROR out of memory\r\n"); break;
    }
}

/* touch's callback: only the value's length (shard locked). */
static void mc_touched(const struct mc_item *it, void *arg)
{
    *(uint32_t *)arg = it->nbytes;
}

static void mc_cmd_touch(wharf_conn *c, struct mc_conn *mc, const struct mc_tok *t, size_t n,
                         int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    bool noreply = n == 4 && mc_tok_is(&t[3], "noreply");
    int64_t e;
    if (!mc_tok_key(&t[1])) {
        if (!noreply)
            REPLY(c, "CLIENT_ERROR bad command line format\r\n");
        return;
    }
    if (!mc_tok_i32(&t[2], &e)) {
        if (!noreply)
            REPLY(c, "CLIENT_ERROR invalid exptime argument\r\n");
        return;
    }
    wharf_counter_add(&mc->w->cnt[C_CMD_TOUCH], 1);
    mc_ops_watch_lookup(c, t[1].p, t[1].n, now);
    uint32_t nbytes = 0;
    enum mc_result r = mc_store_get(l->store, t[1].p, t[1].n, now, true, mc_exptime(e, now),
                                    mc_touched, &nbytes);
    wharf_counter_add(&mc->w->cnt[r == MC_FOUND ? C_TOUCH_HITS : C_TOUCH_MISSES], 1);
    if (r == MC_FOUND)
        mc_stats_class(mc, SC_TOUCH_HITS, t[1].n, nbytes);
    if (!noreply) {
        if (r == MC_FOUND)
            REPLY(c, "TOUCHED\r\n");
        else
            REPLY(c, "NOT_FOUND\r\n");
    }
}

static void mc_cmd_flush(wharf_conn *c, struct mc_conn *mc, const struct mc_tok *t, size_t n,
                         int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    bool noreply = n > 1 && mc_tok_is(&t[n - 1], "noreply");
    int64_t delay = 0;
    if (n > 1 && !(n == 2 && noreply) && !mc_tok_i32(&t[1], &delay)) {
        if (!noreply)
            REPLY(c, "CLIENT_ERROR invalid exptime argument\r\n");
        return;
    }
    wharf_counter_add(&mc->w->cnt[C_CMD_FLUSH], 1);
    mc_store_flush(l->store, delay > 0 ? mc_exptime(delay, now) : now, now);
    if (!noreply)
        REPLY(c, "OK\r\n");
}

/* "slabs automove <n>" and "slabs reassign <src> <dst>": wharf has no slab
 * pages to move, so automove's level is checked and accepted as memcached
 * checks it, and reassign is refused as memcached refuses it when slab
 * reassignment is off. */
static void mc_cmd_slabs(wharf_conn *c, const struct mc_tok *t, size_t n)
{
    uint64_t level;
    if (n >= 3 && mc_tok_is(&t[1], "automove")) {
        if (!mc_tok_u64(&t[2], &level))
            REPLY(c, "CLIENT_ERROR bad command line format\r\n");
        else if (level > 2)
            REPLY(c, "ERROR\r\n");
        else
            REPLY(c, "OK\r\n");
    } else if (n == 4 && mc_tok_is(&t[1], "reassign")) {
        REPLY(c, "CLIENT_ERROR slab reassignment disabled\r\n");
    } else {
        REPLY(c, "ERROR\r\n");
    }
}

/*
 * Whether an unknown command line looks like an HTTP request line, which
 * memcached answers by closing (a cross-protocol guard): its command word
 * starts with none of the letters memcached dispatches on and its last
 * token starts with "HTTP/" (t: the first tokens, n: their count, or
 * MC_TOKENS_MAX + 1 when there were more).
 */
static bool mc_http_line(const struct mc_tok *t, size_t n, const char *line, size_t ll)
{
    if (n < 2 || t[0].n < 2 || strchr("mgsacidt", t[0].p[0]))
        return false;
    size_t e = ll;
    while (e > 0 && line[e - 1] == ' ')
        e--;
    size_t b = e;
    while (b > 0 && line[b - 1] != ' ')
        b--;
    return e - b >= 5 && memcmp(line + b, "HTTP/", 5) == 0;
}

/*
 * One whole message: a command line (and a storage command's body).
 * Returns the bytes consumed: fr->len, or less for a get that stopped for
 * output; (size_t)-1 after quit.
 */
static size_t mc_command(wharf_conn *c, struct mc_conn *mc, const struct wharf_frame *fr,
                         size_t len, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    const char *line = fr->header;
    size_t ll = mc_line_len(line, fr->header_len);
    if (mc_meta_is(line, ll)) { /* meta commands: mc_meta.c */
        struct wharf_frame cut = *fr;
        cut.header_len = ll;
        mc_meta_command(c, mc, &cut, now);
        return len;
    }
    bool err;
    size_t keys = mc_get_begin(mc, line, ll, &err);
    if (err)
        return len;
    if (keys) {
        if (mc->mget == MG_GET || mc->mget == MG_GETS) {
            size_t i = keys;
            while (i < ll && line[i] == ' ')
                i++;
            if (i == ll) { /* no key */
                mc->mget = MG_NONE;
                REPLY(c, "ERROR\r\n");
                return len;
            }
        }
        size_t done = keys + mc_get_keys(c, mc, line + keys, ll - keys, now);
        if (done < ll)
            return done; /* the rest is continued (mc->mget stays set) */
        if (!mc->mget_skip)
            REPLY(c, "END\r\n");
        mc->mget = MG_NONE;
        mc->mget_skip = false;
        return len;
    }
    struct mc_tok t[MC_TOKENS_MAX];
    size_t n = mc_tok_split(line, ll, t, MC_TOKENS_MAX);
    struct mc_storage sc;
    switch (parse_storage(l, t, n, &sc)) { /* too many tokens: P_ERROR */
    case P_OK:
        mc_cmd_storage(c, mc, &sc, fr->payload, fr->payload_len, now);
        return len;
    case P_ERROR:
        REPLY(c, "ERROR\r\n");
        return len;
    case P_FORMAT:
        if (!sc.noreply)
            REPLY(c, "CLIENT_ERROR bad command line format\r\n");
        return len;
    case P_TOO_LARGE:
        wharf_counter_add(&mc->w->cnt[C_STORE_TOO_LARGE], 1);
        if (!sc.noreply)
            REPLY(c, "SERVER_ERROR object too large for cache\r\n");
        if (sc.mode == MC_SET) /* as memcached: no stale value stays behind */
            mc_store_delete(l->store, sc.key.p, sc.key.n, now);
        mc->swallow = sc.bytes + 2;
        return len;
    case P_NOT_STORAGE:
        break;
    }
    if (n == 0) {
        REPLY(c, "ERROR\r\n");
    } else if (mc_tok_is(&t[0], "delete") && n >= 2 && n <= 4) {
        mc_cmd_delete(c, mc, t, n, now);
    } else if ((mc_tok_is(&t[0], "incr") || mc_tok_is(&t[0], "decr")) && (n == 3 || n == 4)) {
        mc_cmd_delta(c, mc, t, n, t[0].p[0] == 'i', now);
    } else if (mc_tok_is(&t[0], "touch") && (n == 3 || n == 4)) {
        mc_cmd_touch(c, mc, t, n, now);
    } else if (mc_tok_is(&t[0], "flush_all") && n <= 3) {
        mc_cmd_flush(c, mc, t, n, now);
    } else if (mc_tok_is(&t[0], "version")) {
        REPLY(c, "VERSION " MC_VERSION "\r\n");
    } else if (mc_tok_is(&t[0], "verbosity") && (n == 2 || n == 3)) {
        uint64_t level; /* wharf logs by its own config: the level is checked only */
        bool valid = mc_tok_u64(&t[1], &level);
        if (valid)
            mc_stats_set_verbosity(l->sh, level > 2 ? 2 : (unsigned)level);
        if (mc_tok_is(&t[n - 1], "noreply"))
            ;
        else if (valid)
            REPLY(c, "OK\r\n");
        else
            REPLY(c, "CLIENT_ERROR bad command line format\r\n");
    } else if (mc_tok_is(&t[0], "slabs")) {
        mc_cmd_slabs(c, t, n);
    } else if (mc_tok_is(&t[0], "stats") && n <= 3) {
        mc_stats_command(c, t, n);
    } else if (mc_tok_is(&t[0], "lru_crawler")) {
        mc_crawler_command(c, mc, t, n);
        if (mc->dump)
            return len; /* dumping: on_data takes no command until it ends */
    } else if (mc_tok_is(&t[0], "watch")) {
        mc_watch_command(c, mc, t, n);
    } else if (mc_tok_is(&t[0], "quit") && n == 1) {
        wharf_close(c);
        return (size_t)-1;
    } else if (mc_http_line(t, n, line, ll)) {
        wharf_close(c); /* memcached hangs up without a word */
        return (size_t)-1;
    } else {
        REPLY(c, "ERROR\r\n");
    }
    return len;
}

/* Whether p (no LF in its first MC_LINE_MAX bytes) is a get-family line,
 * which memcached lets grow past the line limit. */
static bool mc_long_get(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && i <= 100 && p[i] == ' ')
        i++;
    if (i > 100)
        return false;
    p += i;
    n -= i;
    return (n >= 4 && (!memcmp(p, "get ", 4) || !memcmp(p, "gat ", 4))) ||
           (n >= 5 && (!memcmp(p, "gets ", 5) || !memcmp(p, "gats ", 5)));
}

/*
 * A get line continued over several offers (mc->mget set): keys up to the
 * line's end, or up to the last blank of a long piece.  Returns the bytes
 * consumed; 0 when it needs more bytes or must wait for output.
 */
static size_t mc_get_continue(wharf_conn *c, struct mc_conn *mc, const char *p, size_t rem,
                              int64_t now)
{
    const char *lf = memchr(p, '\n', rem);
    size_t text;
    if (lf) {
        text = (size_t)(lf - p);
        if (text && p[text - 1] == '\r')
            text--;
    } else {
        if (rem <= MC_LINE_MAX)
            return 0;
        const char *sp = memrchr(p, ' ', rem);
        if (!sp) {
            if (!mc->mget_skip)
                REPLY(c, "CLIENT_ERROR bad command line format\r\n");
            mc->mget_skip = true;
            return rem;
        }
        text = (size_t)(sp - p) + 1;
    }
    size_t done = mc->mget_skip ? text : mc_get_keys(c, mc, p, text, now);
    if (done < text)
        return done;
    if (!lf)
        return text;
    if (!mc->mget_skip)
        REPLY(c, "END\r\n");
    mc->mget = MG_NONE;
    mc->mget_skip = false;
    return (size_t)(lf - p) + 1;
}

static size_t mc_on_data(wharf_conn *c, const void *data, size_t len)
{
    struct mc_conn *mc = wharf_get_data(c);
    struct mc_listener *l = wharf_listener_data(c);
    const char *base = data;
    size_t used = 0;
    int64_t now = (int64_t)time(NULL);
    if (mc->info)
        atomic_store_explicit(&mc->info->last_cmd, now, memory_order_relaxed);
    if (mc->pend) { /* a message being gathered, in either protocol */
        used = mc_pending_fill(c, mc, data, len, now);
        if (mc->pend || used == len) {
            wharf_counter_add(&mc->w->cnt[C_BYTES_READ], used);
            return used;
        }
    }
    if (mc_binary_detect(mc, base + used, len - used)) { /* first byte 0x80: mc_binary.c */
        wharf_counter_add(&mc->w->cnt[C_BYTES_READ], used);
        return used + mc_binary_on_data(c, base + used, len - used);
    }
    if (mc->watcher)
        return len; /* a watcher sends nothing more that counts, as memcached */
    if (mc->dump && mc_crawler_continue(c, mc))
        return 0;   /* the rest waits for the dump's end (on_drain) */
    while (used < len && !mc->dump && !mc->watcher) {
        const char *p = base + used;
        size_t rem = len - used;
        if (mc->swallow) {
            size_t k = rem < mc->swallow ? rem : (size_t)mc->swallow;
            mc->swallow -= k;
            used += k;
            continue;
        }
        if (mc->pend) {
            used += mc_pending_fill(c, mc, p, rem, now);
            continue;
        }
        if (mc->mget) {
            size_t k = mc_get_continue(c, mc, p, rem, now);
            if (k == 0)
                break;
            used += k;
            continue;
        }
        if (wharf_output_pending(c) >= MC_OUTPUT_YIELD)
            break;
        struct wharf_frame fr;
        const char *why = NULL;
        long long n = wharf_frame_next(&l->framing, p, rem, &fr, &why, l);
        if (n <= 0) {
            size_t scan = rem < MC_LINE_MAX + 1 ? rem : MC_LINE_MAX + 1;
            if (rem > MC_LINE_MAX && !memchr(p, '\n', scan)) {
                bool err;
                if (mc_long_get(p, rem)) {
                    size_t keys = mc_get_begin(mc, p, MC_LINE_MAX, &err);
                    if (err) { /* answered: drop the rest of the line */
                        mc->mget = MG_GET;
                        mc->mget_skip = true;
                    }
                    used += keys;
                    continue;
                }
                REPLY(c, "CLIENT_ERROR line too long\r\n");
                wharf_close(c);
                return len;
            }
            if (n == 0) {
                size_t k = mc_pending_begin(c, mc, p, rem);
                if (k == 0)
                    break;
                used += k;
                continue;
            }
            wharf_conn_log(c, WHARF_LOG_INFO, "unframed input: %s", why ? why : "?");
            REPLY(c, "CLIENT_ERROR line too long\r\n");
            wharf_close(c);
            return len;
        }
        size_t k = mc_command(c, mc, &fr, (size_t)n, now);
        if (k == (size_t)-1)
            return used + (size_t)n;
        used += k;
        if (k < (size_t)n)
            break; /* output piled up mid-get */
    }
    wharf_counter_add(&mc->w->cnt[C_BYTES_READ], used);
    if (mc->info)
        atomic_store_explicit(&mc->info->state, mc->watcher || mc->dump ? MS_WATCH
                              : mc->pend ? MS_NREAD : mc->swallow ? MS_SWALLOW : MS_PARSE_CMD,
                              memory_order_relaxed);
    return used;
}

/* Output fell below the low mark: a metadump goes on, then kept input. */
static void mc_on_drain(wharf_conn *c)
{
    struct mc_conn *mc = wharf_get_data(c);
    if (mc && mc->dump)
        mc_crawler_continue(c, mc);
    if (mc && mc->watcher)
        mc_watch_drain(c, mc);
}

/* ---- init / fini -------------------------------------------------------- */

static int opt_size(const wharf_options *opts, const char *key, long long min, long long max,
                    long long *v, char *err, size_t errlen)
{
    int rc = wharf_options_int(opts, key, v);
    if (rc == -EINVAL || (rc == 0 && (*v < min || *v > max))) {
        snprintf(err, errlen, "%s: expected an integer %lld..%lld", key, min, max);
        return -1;
    }
    return 0;
}

/* What the first generation's init makes the cache with. */
struct mc_shared_args {
    size_t limit, item_max;
    unsigned nworkers;
};

static void mc_shared_destroy(void *obj)
{
    struct mc_shared *sh = obj;
    if (sh->ops)
        mc_watch_free(sh->ops->watch);
    mc_stats_ops_free(sh->ops);
    mc_store_free(sh->store);
    pthread_mutex_destroy(&sh->lock);
    free(sh->workers);
    free(sh);
}

static int mc_shared_create(void *arg, void **obj)
{
    const struct mc_shared_args *a = arg;
    struct mc_shared *sh = calloc(1, sizeof *sh);
    if (!sh)
        return -ENOMEM;
    sh->nworkers = a->nworkers;
    sh->workers = calloc(a->nworkers, sizeof *sh->workers);
    sh->store = mc_store_new(a->limit, a->item_max);
    sh->started = (int64_t)time(NULL);
    pthread_mutex_init(&sh->lock, NULL);
    sh->ops = mc_stats_ops_new();
    if (sh->ops && sh->store)
        sh->ops->watch = mc_watch_new(sh->store);
    if (!sh->workers || !sh->store || !sh->ops || !sh->ops->watch) {
        mc_shared_destroy(sh);
        return -ENOMEM;
    }
    *obj = sh;
    return 0;
}

/* The cache's kind; change the tag when struct mc_shared changes. */
static const struct wharf_state_type mc_shared_type = {
    .tag = "memcache.cache/3", /* 3: hot/warm/cold lists and stamps, per-class counts */
    .create = mc_shared_create,
    .destroy = mc_shared_destroy,
};

static int mc_init(const wharf_options *opts, void **listener_data, char *err, size_t errlen)
{
    static const char *const allowed[] = {"memory_limit", "item_size_max",
                                          "reclaim_interval_ms", "reclaim_batch",
                                          "max_connections", NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -1;
    long long limit = 64ll << 20, item_max = 1ll << 20, reclaim_ms = 1000, batch = 256;
    long long max_conns = 0;
    if (opt_size(opts, "memory_limit", 65536, 1ll << 46, &limit, err, errlen) < 0 ||
        opt_size(opts, "item_size_max", 16, 1ll << 30, &item_max, err, errlen) < 0 ||
        opt_size(opts, "reclaim_interval_ms", 0, 3600000, &reclaim_ms, err, errlen) < 0 ||
        opt_size(opts, "reclaim_batch", 1, 1000000, &batch, err, errlen) < 0 ||
        opt_size(opts, "max_connections", 0, 1000000000, &max_conns, err, errlen) < 0)
        return -1;
    if ((size_t)mc_item_cost(MC_KEY_MAX, (size_t)item_max) > (size_t)limit) {
        snprintf(err, errlen, "item_size_max: an item that large would not fit memory_limit");
        return -1;
    }
    unsigned nworkers = wharf_options_worker_count(opts);
    struct mc_listener *l = calloc(1, sizeof *l);
    wharf_timer **ticks = calloc(nworkers, sizeof *ticks);
    struct mc_shared_args args = {(size_t)limit, (size_t)item_max, nworkers};
    void *obj = NULL;
    int rc = l && ticks ? wharf_state_get(opts, "cache", &mc_shared_type, &args, &obj, NULL)
                        : -ENOMEM;
    if (rc < 0) {
        free(l);
        free(ticks);
        snprintf(err, errlen, "cannot make the cache: %s", strerror(-rc));
        return -1;
    }
    l->sh = obj;
    l->store = l->sh->store;
    l->limit = (size_t)limit;
    l->item_max = (size_t)item_max;
    l->ticket = atomic_fetch_add(&l->sh->tickets, 1) + 1;
    l->nworkers = nworkers;
    l->ticks = ticks;
    l->reclaim_ms = (uint64_t)reclaim_ms;
    l->reclaim_batch = (size_t)batch;
    l->max_conns = (uint64_t)max_conns;
    l->framing.kind = WHARF_FRAME_HEADER_BODY;
    l->framing.max_frame = (size_t)item_max + 2 + 65536;
    l->framing.body_length = mc_body_length;
    l->framing.trailer = 0; /* the handler checks the "\r\n" (bad data chunk) */
    *listener_data = l;
    return 0;
}

/* The cache is not freed here: the framework destroys it once no
 * generation holds it. */
static void mc_fini(void *listener_data)
{
    struct mc_listener *l = listener_data;
    if (!l)
        return;
    free(l->ticks);
    free(l);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "memcache",
    .init = mc_init,
    .fini = mc_fini,
    .on_open = mc_on_open,
    .on_data = mc_on_data,
    .on_close = mc_on_close,
    .on_drain = mc_on_drain,
    .on_worker_start = mc_on_worker_start,
    .on_worker_stop = mc_on_worker_stop,
};
