/*
 * memcache.h - what the memcache handler's files share (not installed):
 * the cache kept across reloads (struct mc_shared), one generation's
 * listener (struct mc_listener), one connection (struct mc_conn), the
 * per-worker statistics, and the helpers every protocol uses to read a
 * command line (mc_tok.c) and to answer (mc_send, REPLY).
 *
 * The files: memcache.c (the handler: init, connections, the ASCII
 * protocol), mc_binary.c (the binary protocol), mc_meta.c (the meta
 * commands), mc_tok.c (tokens of a command line), mc_stats.c (the counters
 * and "stats"), mc_crawler.c (lru_crawler), mc_watch.c (watch), mc_store.c
 * (the cache itself).
 */
#ifndef MEMCACHE_H
#define MEMCACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mc_store.h"
#include "wharf.h"
#include "wharf_counter.h"

#define MC_VERSION "1.6.18-wharf"
#define MC_TOKENS_MAX 8
#define MC_REALTIME_MAXDELTA (60 * 60 * 24 * 30)

/* Per-worker counters, in "stats" order. */
enum mc_counter {
    C_CONN_OPENED, C_CONN_CLOSED, C_CMD_GET, C_CMD_SET, C_CMD_FLUSH, C_CMD_TOUCH,
    C_GET_HITS, C_GET_MISSES, C_DELETE_MISSES, C_DELETE_HITS, C_INCR_MISSES, C_INCR_HITS,
    C_DECR_MISSES, C_DECR_HITS, C_CAS_MISSES, C_CAS_HITS, C_CAS_BADVAL, C_TOUCH_HITS,
    C_TOUCH_MISSES, C_STORE_TOO_LARGE, C_STORE_NO_MEMORY, C_BYTES_READ, C_BYTES_WRITTEN,
    C_REJECTED_CONNS, /* mc_stats.c: refused over max_connections */
    C_COUNT
};

/* mc_stats.c: per size class counters ("stats slabs", "stats items"). */
enum mc_class_counter {
    SC_GET_HITS, SC_CMD_SET, SC_DELETE_HITS, SC_INCR_HITS, SC_DECR_HITS, SC_CAS_HITS,
    SC_CAS_BADVAL, SC_TOUCH_HITS, SC_OUTOFMEMORY, SC_COUNT
};

/* One worker's counters, written only by that worker's thread. */
struct mc_worker {
    _Atomic uint64_t cnt[C_COUNT];
    _Atomic uint64_t cls[MC_CLASSES][SC_COUNT]; /* mc_stats.c: per size class */
    char pad[64];
};

/* The cache, kept across reloads as the listener's state "cache". */
struct mc_shared {
    struct mc_store *store;
    unsigned nworkers;
    struct mc_worker *workers;    /* [nworkers] */
    int64_t started;
    pthread_mutex_t lock;         /* the two below, and applying settings */
    uint64_t reset_base[C_COUNT]; /* "stats reset": counters are reported above it */
    uint64_t applied;             /* the settings ticket applied last */
    _Atomic uint64_t tickets;     /* handed to each init, in order */
    struct mc_ops *ops;           /* mc_stats.c: the operators' view */
};

/* One generation's listener. */
struct mc_listener {
    struct mc_shared *sh;
    struct mc_store *store;       /* sh->store */
    size_t limit, item_max;
    uint64_t ticket;              /* orders this generation's settings */
    uint64_t max_conns;           /* mc_stats.c: "max_connections", 0 = no limit */
    uint64_t reclaim_ms;
    size_t reclaim_batch;
    struct wharf_framing framing;
    unsigned nworkers;
    wharf_timer **ticks;          /* [nworkers]: each worker's reclaim timer */
};

enum mc_mget { MG_NONE = 0, MG_GET, MG_GETS, MG_GAT, MG_GATS };

struct mc_conn {
    wharf_conn *c;
    struct mc_worker *w;
    uint64_t swallow;      /* bytes of a refused value still to drop */
    int64_t mget_exptime;  /* gat/gats: the new exptime */
    uint8_t mget;          /* enum mc_mget: a get line being continued */
    bool mget_skip;        /* ... after an error: drop the rest of the line */
    /* mc_binary.c: the protocol, chosen by the first byte as memcached does. */
    uint8_t proto;             /* enum mc_proto */
    uint64_t bin_swallow;      /* bytes of a refused binary body still to drop */
    struct mc_capture *capture; /* set: mc_send appends here instead (binary stat) */
    /* memcache.c (protocol fixes): a storage command whose body is being
     * gathered over several reads, or NULL. */
    struct mc_pending *pend;
    /* mc_stats.c: this connection in "stats conns" (NULL if refused) */
    struct mc_conn_info *info;
    struct mc_watcher *watcher;   /* mc_watch.c: set once it watches */
    struct mc_dump *dump;         /* mc_crawler.c: a metadump under way */
    struct mc_ops *ops;           /* mc_stats.c: where it was counted (NULL if refused) */
};

struct tok {
    const char *p;
    size_t n;
};

/* One token of a command line: bytes p[0..n), no blanks. */
struct mc_tok {
    const char *p;
    size_t n;
};

/* ---- mc_binary.c: memcached's binary protocol ---- */

#define MC_OUTPUT_YIELD (64u * 1024u) /* stop taking commands past this output */

enum mc_proto { MC_PROTO_NONE = 0, MC_PROTO_ASCII, MC_PROTO_BINARY };

/* Whether the connection speaks binary (decided on its first byte). */
static inline bool mc_binary_detect(struct mc_conn *mc, const void *data, size_t len)
{
    if (mc->proto == MC_PROTO_NONE && len)
        mc->proto = *(const unsigned char *)data == 0x80 ? MC_PROTO_BINARY : MC_PROTO_ASCII;
    return mc->proto == MC_PROTO_BINARY;
}
size_t mc_binary_on_data(wharf_conn *c, const void *data, size_t len);
/* Runs one whole request req[0..len) (gathered by mc_pending_start). */
void mc_binary_request(wharf_conn *c, struct mc_conn *mc, const void *req, size_t len,
                       int64_t now);
void mc_binary_capture(struct mc_conn *mc, const void *p, size_t n);

/* ---- end of mc_binary.c's block ---- */

/* Sends p[0..n) on c and counts it in bytes_written. */
static inline void mc_send(wharf_conn *c, const void *p, size_t n)
{
    struct mc_conn *mc = wharf_get_data(c);
    if (mc->capture) { /* mc_binary.c: an ASCII answer to turn into packets */
        mc_binary_capture(mc, p, n);
        return;
    }
    wharf_counter_add(&mc->w->cnt[C_BYTES_WRITTEN], n);
    wharf_send(c, p, n);
}

#define REPLY(c, lit) mc_send(c, lit, sizeof(lit) - 1)

/* Writes v in decimal at p; returns the end. */
static inline char *mc_put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* memcached's expiry: 0 never, negative already, up to 30 days relative,
 * beyond that an absolute Unix time. */
static inline int64_t mc_exptime(int64_t e, int64_t now)
{
    if (e == 0)
        return 0;
    if (e < 0)
        return 1;
    if (e <= MC_REALTIME_MAXDELTA)
        return now + e;
    return e;
}

/* memcache.c: a message (an ASCII or meta storage command, a binary
 * request) gathered over several reads once its length is known. */
struct mc_pending {
    size_t text;        /* ASCII: the header line's length without its end */
    size_t line;        /* ASCII: where the body starts (after the line's LF) */
    size_t have, need;  /* bytes of buf[] filled, and the whole message's */
    char buf[];
};
/* Starts gathering a message of `need` bytes whose first rem (< need) are
 * at p; returns rem (all consumed; on ENOMEM the connection is closed). */
size_t mc_pending_start(wharf_conn *c, struct mc_conn *mc, const void *p, size_t rem,
                        size_t need);

/* What the operators' commands (stats detail, stats items/slabs, watch)
 * see of a command, whichever protocol it came in (text, meta, binary): a
 * get-family key looked up (r: MC_FOUND or why it missed; nbytes of the
 * hit); the lookup of a key a command will change, made only for a
 * fetchers watcher (as memcached's do_item_get); a store about to happen;
 * and its outcome (exptime absolute, 0 never). */
void mc_ops_fetched(wharf_conn *c, struct mc_conn *mc, const char *key, size_t nkey,
                    enum mc_result r, uint32_t nbytes, bool touch);
void mc_ops_watch_lookup(wharf_conn *c, const char *key, size_t nkey, int64_t now);
void mc_ops_storing(wharf_conn *c, const char *key, size_t nkey, int64_t now);
void mc_ops_stored(wharf_conn *c, struct mc_conn *mc, const char *key, size_t nkey,
                   enum mc_store_mode mode, int64_t exptime, size_t nbytes, enum mc_result r,
                   int64_t now);

/* mc_tok.c */
size_t mc_tok_split(const char *s, size_t n, struct mc_tok *t, size_t max);
/* t is the literal lit (inline: strlen of a literal is folded, and most
 * comparisons stop at the length). */
static inline bool mc_tok_is(const struct mc_tok *t, const char *lit)
{
    size_t n = strlen(lit);
    return t->n == n && memcmp(t->p, lit, n) == 0;
}
bool mc_tok_u64(const struct mc_tok *t, uint64_t *out);
bool mc_tok_i32(const struct mc_tok *t, int64_t *out);
bool mc_tok_key(const struct mc_tok *t);

/* ---- mc_stats.c: counters, "stats", connections, the connection limit ---- */

/* memcached's connection states as "stats conns" names them. */
enum mc_conn_state { MS_PARSE_CMD, MS_NREAD, MS_SWALLOW, MS_WATCH };

/* One connection as "stats conns" shows it, in mc_ops.conns. */
struct mc_conn_info {
    struct wharf_list link;
    uint64_t id;
    char addr[64], listen_addr[64];
    _Atomic int64_t last_cmd;
    _Atomic int state;            /* enum mc_conn_state */
};

/* The operators' state, one per cache (struct mc_shared.ops). */
struct mc_ops {
    pthread_mutex_t lock;         /* conns and the prefix table */
    struct wharf_list conns;      /* struct mc_conn_info, oldest first */
    _Atomic uint64_t open;        /* connections counted against max_connections */
    _Atomic bool detail;          /* "stats detail on" */
    struct mc_prefix **prefixes;  /* "stats detail": hash table, MC_PREFIX_BUCKETS */
    size_t nprefixes;
    uint64_t cls_base[MC_CLASSES][SC_COUNT]; /* "stats reset" (under sh->lock) */
    _Atomic unsigned verbosity;
    _Atomic bool crawler_off;     /* mc_crawler.c: "lru_crawler disable" */
    struct mc_watch *watch;       /* mc_watch.c */
};

uint64_t mc_stats_counter(const struct mc_shared *sh, enum mc_counter i);
void mc_stats_command(wharf_conn *c, const struct mc_tok *t, size_t n);
struct mc_ops *mc_stats_ops_new(void);
void mc_stats_ops_free(struct mc_ops *ops);
/* on_open: registers c, or refuses it over max_connections (false: c is
 * being closed with "ERROR Too many open connections"). */
bool mc_stats_conn_open(wharf_conn *c, struct mc_conn *mc);
void mc_stats_conn_close(struct mc_conn *mc);
/* Counts a per-class event for the item of nkey/nbytes. */
void mc_stats_class(struct mc_conn *mc, enum mc_class_counter k, size_t nkey, size_t nbytes);
/* "stats detail" recording (no-ops while off): a get (hit or miss), a
 * storage command, a delete. */
enum mc_detail { MD_GET, MD_HIT, MD_SET, MD_DEL };
void mc_stats_detail(struct mc_shared *sh, const char *key, size_t nkey, enum mc_detail what);
/* "verbosity <n>": the level "stats settings" shows. */
void mc_stats_set_verbosity(struct mc_shared *sh, unsigned level);

/* ---- mc_crawler.c: "lru_crawler" and its metadump ---- */
void mc_crawler_command(wharf_conn *c, struct mc_conn *mc, const struct mc_tok *t, size_t n);
/* Goes on with a metadump (more lines while output is below the mark);
 * false once it is over. */
bool mc_crawler_continue(wharf_conn *c, struct mc_conn *mc);
void mc_crawler_free(struct mc_conn *mc);

/* ---- mc_watch.c: "watch" ---- */
#define MC_WATCH_BUF 65536u  /* bytes of lines a watcher may have waiting */
#define MC_WATCH_MAX 20      /* watchers at once, memcached's WATCHER_LIMIT */
enum mc_watch_kind { MW_FETCHERS = 1, MW_MUTATIONS = 2, MW_EVICTIONS = 4 };
struct mc_watch *mc_watch_new(struct mc_store *store);
void mc_watch_free(struct mc_watch *wt);
void mc_watch_command(wharf_conn *c, struct mc_conn *mc, const struct mc_tok *t, size_t n);
/* Whether any watcher wants events of kind k (cheap; check before logging). */
bool mc_watch_wants(const struct mc_watch *wt, enum mc_watch_kind k);
/* An item_get: r MC_FOUND (status=found), MC_EXPIRED or MC_FLUSHED (the
 * lookup found the item dead and freed it: status=expired/flushed, as
 * memcached's do_item_get), else status=not_found; cls and size 0 unless
 * found. */
void mc_watch_get(struct mc_watch *wt, const char *key, size_t nkey, enum mc_result r,
                  unsigned cls, uint32_t nbytes, uint64_t cfd);
/* An item_store: status as memcached's store_item_type (0 not_stored, 1
 * stored, 2 exists, 3 not_found, 4 too_large, 5 no_memory); cmd 1..6 add,
 * set, replace, append, prepend, cas; ttl seconds left (0 never). */
void mc_watch_store(struct mc_watch *wt, const char *key, size_t nkey, int status, int cmd,
                    int64_t ttl, unsigned cls, uint32_t nbytes, uint64_t cfd);
void mc_watch_close(struct mc_conn *mc);
/* on_drain of a watcher: sends what waits. */
void mc_watch_drain(wharf_conn *c, struct mc_conn *mc);
/* "stats": log_watchers, log_watcher_sent, log_watcher_skipped. */
void mc_watch_stats(struct mc_watch *wt, uint64_t *watchers, uint64_t *sent, uint64_t *skipped);
void mc_watch_reset(struct mc_watch *wt);

/* mc_meta.c: the meta commands (mg, ms, md, ma, mn, me) */
/* Whether a line is a meta command (its first token: 'm' and one more). */
bool mc_meta_is(const char *line, size_t len);
/* The framing's body for a meta line: ms's <datalen> + 2 when memcached
 * would read its data block, -1 otherwise. */
long long mc_meta_body_length(const struct mc_listener *l, const char *line, size_t len);
/* Answers one meta command (fr: its line, and ms's data block). */
void mc_meta_command(wharf_conn *c, struct mc_conn *mc, const struct wharf_frame *fr,
                     int64_t now);

#endif
