/*
 * memcache.h - what the memcache handler's files share (not installed):
 * the cache kept across reloads (struct mc_shared), one generation's
 * listener (struct mc_listener), one connection (struct mc_conn), the
 * per-worker statistics, and the helpers every protocol uses to read a
 * command line (mc_tok.c) and to answer (mc_send, REPLY).
 *
 * The files: memcache.c (the handler: init, connections, the ASCII
 * protocol), mc_tok.c (tokens of a command line), mc_stats.c (the
 * counters and "stats"), mc_store.c (the cache itself), mc_meta.c (the
 * meta commands).
 */
#ifndef MEMCACHE_H
#define MEMCACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    C_COUNT
};

/* One worker's counters, written only by that worker's thread. */
struct mc_worker {
    _Atomic uint64_t cnt[C_COUNT];
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
};

/* One generation's listener. */
struct mc_listener {
    struct mc_shared *sh;
    struct mc_store *store;       /* sh->store */
    size_t limit, item_max;
    uint64_t ticket;              /* orders this generation's settings */
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

/* Sends p[0..n) on c and counts it in bytes_written. */
static inline void mc_send(wharf_conn *c, const void *p, size_t n)
{
    struct mc_conn *mc = wharf_get_data(c);
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

/* mc_tok.c */
size_t mc_tok_split(const char *s, size_t n, struct mc_tok *t, size_t max);
bool mc_tok_is(const struct mc_tok *t, const char *lit);
bool mc_tok_u64(const struct mc_tok *t, uint64_t *out);
bool mc_tok_i32(const struct mc_tok *t, int64_t *out);
bool mc_tok_key(const struct mc_tok *t);

/* mc_stats.c */
uint64_t mc_stats_counter(const struct mc_shared *sh, enum mc_counter i);
void mc_stats_command(wharf_conn *c, const struct mc_tok *t, size_t n);

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
