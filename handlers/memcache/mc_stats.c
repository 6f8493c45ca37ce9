/*
 * mc_stats.c - the memcache handler's statistics and operators' view: the
 * per-worker counters summed, the "stats" command and its sub-commands
 * (settings, items, slabs, sizes, conns, detail, reset) in memcached 1.6's
 * format and field names, the connections list behind "stats conns", and
 * the connection limit (option max_connections: memcached's -c refusal).
 *
 * Counters are per worker (struct mc_worker, relaxed atomics written only by
 * their worker) and summed when asked; "stats reset" records a base that
 * later answers are reported above (the store's own counters are zeroed in
 * the store).  The connection list and the "stats detail" prefix table are
 * shared by every worker under mc_ops.lock, taken on open, close and while
 * detail is on, once per command.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "memcache.h"

#define MC_PREFIX_BUCKETS 256
#define MC_PREFIX_MAX 4096  /* "stats detail" keeps at most this many prefixes */
#define MC_PREFIX_LEN 250

/* One "stats detail" prefix. */
struct mc_prefix {
    struct mc_prefix *next;
    uint64_t get, hit, set, del;
    size_t n;
    char name[];
};

/* The sum of every worker's counter i (raw: "stats reset" not applied). */
uint64_t mc_stats_counter(const struct mc_shared *sh, enum mc_counter i)
{
    uint64_t sum = 0;
    for (unsigned k = 0; k < sh->nworkers; k++)
        sum += atomic_load_explicit(&sh->workers[k].cnt[i], memory_order_relaxed);
    return sum;
}

static uint64_t class_counter(const struct mc_shared *sh, unsigned cls, enum mc_class_counter i)
{
    uint64_t sum = 0;
    for (unsigned k = 0; k < sh->nworkers; k++)
        sum += atomic_load_explicit(&sh->workers[k].cls[cls][i], memory_order_relaxed);
    return sum - sh->ops->cls_base[cls][i];
}

void mc_stats_class(struct mc_conn *mc, enum mc_class_counter k, size_t nkey, size_t nbytes)
{
    wharf_counter_add(&mc->w->cls[mc_store_class_of(nkey, nbytes)][k], 1);
}

struct mc_ops *mc_stats_ops_new(void)
{
    struct mc_ops *ops = calloc(1, sizeof *ops);
    if (!ops)
        return NULL;
    ops->prefixes = calloc(MC_PREFIX_BUCKETS, sizeof *ops->prefixes);
    if (!ops->prefixes) {
        free(ops);
        return NULL;
    }
    pthread_mutex_init(&ops->lock, NULL);
    wharf_list_init(&ops->conns);
    return ops;
}

static void prefixes_clear(struct mc_ops *ops)
{
    for (size_t b = 0; b < MC_PREFIX_BUCKETS; b++) {
        while (ops->prefixes[b]) {
            struct mc_prefix *p = ops->prefixes[b];
            ops->prefixes[b] = p->next;
            free(p);
        }
    }
    ops->nprefixes = 0;
}

void mc_stats_ops_free(struct mc_ops *ops)
{
    if (!ops)
        return;
    prefixes_clear(ops);
    free(ops->prefixes);
    pthread_mutex_destroy(&ops->lock);
    free(ops);
}

/* ---- connections ------------------------------------------------------ */

/* An address as memcached's "stats conns" writes it: "tcp:IP:PORT". */
static void addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(buf, len, "tcp:%s:%u", ip, port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "tcp6:[%s]:%u", ip, port);
    } else if (sa && sa->sa_family == AF_UNIX) {
        snprintf(buf, len, "unix:%.50s", ((const struct sockaddr_un *)sa)->sun_path);
    } else {
        snprintf(buf, len, "unknown");
    }
}

bool mc_stats_conn_open(wharf_conn *c, struct mc_conn *mc)
{
    struct mc_listener *l = wharf_listener_data(c);
    struct mc_ops *ops = l->sh->ops;
    uint64_t n = atomic_fetch_add(&ops->open, 1) + 1;
    if (l->max_conns && n > l->max_conns) {
        atomic_fetch_sub(&ops->open, 1);
        wharf_counter_add(&mc->w->cnt[C_REJECTED_CONNS], 1);
        REPLY(c, "ERROR Too many open connections\r\n");
        wharf_close_with(c, WHARF_CLOSE_LIMIT);
        return false;
    }
    struct mc_conn_info *in = calloc(1, sizeof *in);
    if (in) {
        in->id = wharf_conn_id(c);
        addr_text(wharf_peer_addr(c, NULL), in->addr, sizeof in->addr);
        addr_text(wharf_local_addr(c, NULL), in->listen_addr, sizeof in->listen_addr);
        atomic_init(&in->last_cmd, (int64_t)time(NULL));
        pthread_mutex_lock(&ops->lock);
        wharf_list_insert_tail(&ops->conns, &in->link);
        pthread_mutex_unlock(&ops->lock);
    }
    mc->info = in;
    mc->ops = ops;
    wharf_counter_add(&mc->w->cnt[C_CONN_OPENED], 1);
    return true;
}

void mc_stats_conn_close(struct mc_conn *mc)
{
    struct mc_ops *ops = mc->ops;
    if (!ops)
        return; /* refused */
    atomic_fetch_sub(&ops->open, 1);
    wharf_counter_add(&mc->w->cnt[C_CONN_CLOSED], 1);
    if (mc->info) {
        pthread_mutex_lock(&ops->lock);
        wharf_list_remove(&mc->info->link);
        pthread_mutex_unlock(&ops->lock);
        free(mc->info);
        mc->info = NULL;
    }
}

static const char *const state_names[] = {
    [MS_PARSE_CMD] = "conn_parse_cmd", [MS_NREAD] = "conn_nread",
    [MS_SWALLOW] = "conn_swallow", [MS_WATCH] = "conn_watch",
};

/* "stats conns": memcached prints one block per fd; wharf's connection id
 * stands for the fd (the same number watch prints as cfd). */
static void stats_conns(wharf_conn *c, struct mc_ops *ops)
{
    int64_t now = (int64_t)time(NULL);
    char line[512];
    pthread_mutex_lock(&ops->lock);
    struct wharf_list *e;
    wharf_list_foreach(e, &ops->conns) {
        struct mc_conn_info *in = wharf_list_entry(e, struct mc_conn_info, link);
        int64_t last = atomic_load_explicit(&in->last_cmd, memory_order_relaxed);
        int st = atomic_load_explicit(&in->state, memory_order_relaxed);
        unsigned long long id = (unsigned long long)in->id;
        int n = snprintf(line, sizeof line,
                         "STAT %llu:addr %s\r\nSTAT %llu:listen_addr %s\r\n"
                         "STAT %llu:state %s\r\nSTAT %llu:secs_since_last_cmd %lld\r\n",
                         id, in->addr, id, in->listen_addr, id, state_names[st], id,
                         (long long)(now > last ? now - last : 0));
        mc_send(c, line, (size_t)n);
    }
    pthread_mutex_unlock(&ops->lock);
    REPLY(c, "END\r\n");
}

/* ---- stats detail ------------------------------------------------------- */

void mc_stats_set_verbosity(struct mc_shared *sh, unsigned level)
{
    atomic_store(&sh->ops->verbosity, level > 2 ? 2 : level); /* MAX_VERBOSITY_LEVEL */
}

void mc_stats_detail(struct mc_shared *sh, const char *key, size_t nkey, enum mc_detail what)
{
    struct mc_ops *ops = sh->ops;
    if (!atomic_load_explicit(&ops->detail, memory_order_relaxed))
        return;
    const char *d = memchr(key, ':', nkey);
    if (!d)
        return; /* as memcached: a key without the delimiter has no prefix */
    size_t n = (size_t)(d - key);
    uint64_t h = 5381;
    for (size_t i = 0; i < n; i++)
        h = h * 33 + (unsigned char)key[i];
    pthread_mutex_lock(&ops->lock);
    struct mc_prefix **slot = &ops->prefixes[h % MC_PREFIX_BUCKETS], *p = *slot;
    while (p && !(p->n == n && memcmp(p->name, key, n) == 0))
        p = p->next;
    if (!p && ops->nprefixes < MC_PREFIX_MAX && (p = calloc(1, sizeof *p + n + 1)) != NULL) {
        memcpy(p->name, key, n);
        p->n = n;
        p->next = *slot;
        *slot = p;
        ops->nprefixes++;
    }
    if (p) {
        switch (what) {
        case MD_HIT: p->hit++; p->get++; break; /* a hit is a get */
        case MD_GET: p->get++; break;
        case MD_SET: p->set++; break;
        case MD_DEL: p->del++; break;
        }
    }
    pthread_mutex_unlock(&ops->lock);
}

static void stats_detail(wharf_conn *c, struct mc_ops *ops, const struct mc_tok *t, size_t n)
{
    if (n == 3 && mc_tok_is(&t[2], "on")) {
        atomic_store(&ops->detail, true);
        REPLY(c, "OK\r\n");
    } else if (n == 3 && mc_tok_is(&t[2], "off")) {
        atomic_store(&ops->detail, false);
        REPLY(c, "OK\r\n");
    } else if (n == 3 && mc_tok_is(&t[2], "dump")) {
        char line[MC_PREFIX_LEN + 128];
        pthread_mutex_lock(&ops->lock);
        for (size_t b = 0; b < MC_PREFIX_BUCKETS; b++)
            for (struct mc_prefix *p = ops->prefixes[b]; p; p = p->next) {
                int k = snprintf(line, sizeof line, "PREFIX %.*s get %llu hit %llu set %llu "
                                 "del %llu\r\n", (int)p->n, p->name,
                                 (unsigned long long)p->get, (unsigned long long)p->hit,
                                 (unsigned long long)p->set, (unsigned long long)p->del);
                mc_send(c, line, (size_t)k);
            }
        pthread_mutex_unlock(&ops->lock);
        REPLY(c, "END\r\n");
    } else {
        REPLY(c, "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
    }
}

/* ---- stats reset ------------------------------------------------------- */

static void stats_reset(struct mc_listener *l)
{
    struct mc_shared *sh = l->sh;
    pthread_mutex_lock(&sh->lock);
    for (int i = 0; i < C_COUNT; i++)
        sh->reset_base[i] = mc_stats_counter(sh, (enum mc_counter)i);
    for (unsigned k = 0; k < MC_CLASSES; k++)
        for (int i = 0; i < SC_COUNT; i++) {
            sh->ops->cls_base[k][i] = 0;
            sh->ops->cls_base[k][i] = class_counter(sh, k, (enum mc_class_counter)i);
        }
    pthread_mutex_unlock(&sh->lock);
    mc_store_reset_stats(l->store);
    pthread_mutex_lock(&sh->ops->lock);
    prefixes_clear(sh->ops);
    pthread_mutex_unlock(&sh->ops->lock);
    mc_watch_reset(sh->ops->watch);
}

/* ---- the answers -------------------------------------------------------- */

/* An output buffer of STAT lines, sent when full and at the end. */
struct statbuf {
    wharf_conn *c;
    size_t len;
    char buf[4096];
};

static void put(struct statbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct statbuf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t k = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (b->len + k + 2 > sizeof b->buf) {
        mc_send(b->c, b->buf, b->len);
        b->len = 0;
    }
    memcpy(b->buf + b->len, "STAT ", 5);
    memcpy(b->buf + b->len + 5, line, k);
    memcpy(b->buf + b->len + 5 + k, "\r\n", 2);
    b->len += k + 7;
}

static void finish(struct statbuf *b)
{
    mc_send(b->c, b->buf, b->len);
    REPLY(b->c, "END\r\n");
}

#define U(v) ((unsigned long long)(v))

/* memcached's general "stats", in its order; fields with no meaning in
 * wharf are left out (docs/memcache.md lists them). */
static void stats_general(struct statbuf *b, struct mc_listener *l, wharf_conn *c)
{
    struct mc_shared *sh = l->sh;
    uint64_t raw[C_COUNT], v[C_COUNT];
    pthread_mutex_lock(&sh->lock);
    for (int i = 0; i < C_COUNT; i++) {
        raw[i] = mc_stats_counter(sh, (enum mc_counter)i);
        v[i] = raw[i] - sh->reset_base[i];
    }
    pthread_mutex_unlock(&sh->lock);
    struct mc_store_stats st;
    mc_store_stats(l->store, &st);
    int64_t now = (int64_t)time(NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t watchers, sent, skipped;
    mc_watch_stats(sh->ops->watch, &watchers, &sent, &skipped);
    put(b, "pid %ld", (long)getpid());
    put(b, "uptime %lld", (long long)(now - sh->started));
    put(b, "time %lld", (long long)now);
    put(b, "version %s", MC_VERSION);
    put(b, "pointer_size %zu", sizeof(void *) * 8);
    put(b, "rusage_user %ld.%06ld", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
    put(b, "rusage_system %ld.%06ld", (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
    put(b, "max_connections %llu", U(l->max_conns));
    put(b, "curr_connections %llu", U(raw[C_CONN_OPENED] - raw[C_CONN_CLOSED]));
    put(b, "total_connections %llu", U(v[C_CONN_OPENED]));
    put(b, "rejected_connections %llu", U(v[C_REJECTED_CONNS]));
    static const struct { const char *name; enum mc_counter i; } cmds[] = {
        {"cmd_get", C_CMD_GET}, {"cmd_set", C_CMD_SET}, {"cmd_flush", C_CMD_FLUSH},
        {"cmd_touch", C_CMD_TOUCH}, {"get_hits", C_GET_HITS}, {"get_misses", C_GET_MISSES},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        put(b, "%s %llu", cmds[i].name, U(v[cmds[i].i]));
    put(b, "get_expired %llu", U(st.get_expired));
    put(b, "get_flushed %llu", U(st.get_flushed));
    static const struct { const char *name; enum mc_counter i; } more[] = {
        {"delete_misses", C_DELETE_MISSES}, {"delete_hits", C_DELETE_HITS},
        {"incr_misses", C_INCR_MISSES}, {"incr_hits", C_INCR_HITS},
        {"decr_misses", C_DECR_MISSES}, {"decr_hits", C_DECR_HITS},
        {"cas_misses", C_CAS_MISSES}, {"cas_hits", C_CAS_HITS}, {"cas_badval", C_CAS_BADVAL},
        {"touch_hits", C_TOUCH_HITS}, {"touch_misses", C_TOUCH_MISSES},
        {"store_too_large", C_STORE_TOO_LARGE}, {"store_no_memory", C_STORE_NO_MEMORY},
        {"bytes_read", C_BYTES_READ}, {"bytes_written", C_BYTES_WRITTEN},
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        put(b, "%s %llu", more[i].name, U(v[more[i].i]));
    put(b, "limit_maxbytes %zu", mc_store_limit(l->store));
    put(b, "accepting_conns 1");
    put(b, "threads %u", wharf_worker_count(wharf_conn_worker(c)));
    put(b, "log_watcher_skipped %llu", U(skipped));
    put(b, "log_watcher_sent %llu", U(sent));
    put(b, "log_watchers %llu", U(watchers));
    put(b, "bytes %llu", U(st.bytes));
    put(b, "curr_items %llu", U(st.curr_items));
    put(b, "total_items %llu", U(st.total_items));
    put(b, "expired_unfetched %llu", U(st.expired_unfetched));
    put(b, "evicted_unfetched %llu", U(st.evicted_unfetched));
    put(b, "evictions %llu", U(st.evictions));
    put(b, "reclaimed %llu", U(st.reclaimed));
    put(b, "moves_to_cold %llu", U(st.moves_to_cold));
    put(b, "moves_to_warm %llu", U(st.moves_to_warm));
    put(b, "moves_within_lru %llu", U(st.moves_within_lru));
}

static void stats_settings(struct statbuf *b, struct mc_listener *l, wharf_conn *c)
{
    char addr[64];
    addr_text(wharf_local_addr(c, NULL), addr, sizeof addr);
    const char *port = strrchr(addr, ':');
    char inter[64];
    snprintf(inter, sizeof inter, "%.*s", port ? (int)(port - addr) : 0, addr);
    const char *ip = strchr(inter, ':') ? strchr(inter, ':') + 1 : inter;
    put(b, "maxbytes %zu", mc_store_limit(l->store));
    put(b, "maxconns %llu", U(l->max_conns));
    put(b, "tcpport %s", port ? port + 1 : "0");
    put(b, "udpport 0");
    put(b, "inter %s", ip);
    put(b, "domain_socket NULL"); /* wharf's memcache listens on TCP only */
    put(b, "verbosity %u", atomic_load(&l->sh->ops->verbosity));
    put(b, "oldest 0");
    put(b, "evictions on");
    put(b, "growth_factor 1.25");
    put(b, "chunk_size 48");
    put(b, "num_threads %u", wharf_worker_count(wharf_conn_worker(c)));
    put(b, "stat_key_prefix :");
    put(b, "detail_enabled %s", atomic_load(&l->sh->ops->detail) ? "yes" : "no");
    put(b, "cas_enabled yes");
    put(b, "item_size_max %zu", mc_store_item_max(l->store));
    put(b, "slab_chunk_max %zu", mc_store_class_size(MC_CLASS_MAX));
    put(b, "lru_crawler yes");
    put(b, "flush_enabled yes");
    put(b, "dump_enabled yes");
    put(b, "watcher_logbuf_size %u", MC_WATCH_BUF);
    put(b, "track_sizes no");
}

static void stats_items(struct statbuf *b, struct mc_listener *l)
{
    struct mc_class_stats cs[MC_CLASSES];
    mc_store_class_stats(l->store, cs);
    for (unsigned k = 1; k < MC_CLASSES; k++) {
        const struct mc_class_stats *s = &cs[k];
        if (s->number == 0)
            continue;
        put(b, "items:%u:number %llu", k, U(s->number));
        put(b, "items:%u:mem_requested %llu", k, U(s->requested));
        put(b, "items:%u:evicted %llu", k, U(s->evicted));
        put(b, "items:%u:evicted_nonzero %llu", k, U(s->evicted_nonzero));
        put(b, "items:%u:evicted_time %llu", k, U(s->evicted_time));
        put(b, "items:%u:outofmemory %llu", k, U(class_counter(l->sh, k, SC_OUTOFMEMORY)));
        put(b, "items:%u:reclaimed %llu", k, U(s->reclaimed));
        put(b, "items:%u:expired_unfetched %llu", k, U(s->expired_unfetched));
        put(b, "items:%u:evicted_unfetched %llu", k, U(s->evicted_unfetched));
        put(b, "items:%u:moves_to_cold %llu", k, U(s->moves_to_cold));
        put(b, "items:%u:moves_to_warm %llu", k, U(s->moves_to_warm));
        put(b, "items:%u:moves_within_lru %llu", k, U(s->moves_within_lru));
    }
}

/* "stats slabs": wharf allocates each item by itself, so a class has
 * exactly as many chunks as items (no free chunks), and its "pages" are
 * what those chunks would fill in memcached's 1 MiB pages. */
static void stats_slabs(struct statbuf *b, struct mc_listener *l)
{
    static const char *const names[SC_COUNT] = {
        [SC_GET_HITS] = "get_hits", [SC_CMD_SET] = "cmd_set",
        [SC_DELETE_HITS] = "delete_hits", [SC_INCR_HITS] = "incr_hits",
        [SC_DECR_HITS] = "decr_hits", [SC_CAS_HITS] = "cas_hits",
        [SC_CAS_BADVAL] = "cas_badval", [SC_TOUCH_HITS] = "touch_hits",
    };
    struct mc_class_stats cs[MC_CLASSES];
    mc_store_class_stats(l->store, cs);
    unsigned active = 0;
    uint64_t pages_total = 0;
    for (unsigned k = 1; k < MC_CLASSES; k++) {
        if (cs[k].number == 0)
            continue;
        size_t size = mc_store_class_size(k);
        uint64_t per_page = (1u << 20) / size, used = cs[k].number;
        uint64_t pages = (used + per_page - 1) / per_page;
        active++;
        pages_total += pages;
        put(b, "%u:chunk_size %zu", k, size);
        put(b, "%u:chunks_per_page %llu", k, U(per_page));
        put(b, "%u:total_pages %llu", k, U(pages));
        put(b, "%u:total_chunks %llu", k, U(used));
        put(b, "%u:used_chunks %llu", k, U(used));
        put(b, "%u:free_chunks 0", k);
        put(b, "%u:free_chunks_end 0", k);
        for (int i = 0; i < SC_COUNT; i++)
            if (names[i])
                put(b, "%u:%s %llu", k, names[i],
                    U(class_counter(l->sh, k, (enum mc_class_counter)i)));
    }
    put(b, "active_slabs %u", active);
    put(b, "total_malloced %llu", U(pages_total << 20));
}

void mc_stats_command(wharf_conn *c, const struct mc_tok *t, size_t n)
{
    struct mc_listener *l = wharf_listener_data(c);
    struct statbuf b = {.c = c};
    if (n == 1) {
        stats_general(&b, l, c);
    } else if (mc_tok_is(&t[1], "reset")) {
        stats_reset(l);
        REPLY(c, "RESET\r\n");
        return;
    } else if (mc_tok_is(&t[1], "detail")) {
        stats_detail(c, l->sh->ops, t, n);
        return;
    } else if (mc_tok_is(&t[1], "conns")) {
        stats_conns(c, l->sh->ops);
        return;
    } else if (mc_tok_is(&t[1], "settings")) {
        stats_settings(&b, l, c);
    } else if (mc_tok_is(&t[1], "items")) {
        stats_items(&b, l);
    } else if (mc_tok_is(&t[1], "slabs")) {
        stats_slabs(&b, l);
    } else if (mc_tok_is(&t[1], "sizes")) {
        put(&b, "sizes_status disabled");
    } else {
        REPLY(c, "ERROR\r\n");
        return;
    }
    finish(&b);
}
