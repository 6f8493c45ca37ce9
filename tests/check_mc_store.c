/*
 * check_mc_store.c - the memcache handler's store (handlers/memcache/
 * mc_store.c, compiled into this program) on its own: which items an
 * eviction takes across the shards (a fill ten times over the limit keeps
 * the newest, from one thread and from four), scan resistance (items read twice outlive a one-pass scan
 * that plain LRU would let push them out), the reclaimer freeing expired
 * items of every shard in one call with bounded work, the memory limit
 * under random sizes, and threads storing, reading, deleting, evicting and
 * reclaiming at once (bounded; CI runs it under ThreadSanitizer), the LRU's
 * moves counted as memcached counts them, and an
 * item handed out by reference never changing while it is held, from one
 * thread and from several invalidating and winning the key meanwhile.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../handlers/memcache/mc_store.h"
#include "check_main.h"

#define NOW 1000000

static size_t key_of(char *buf, const char *prefix, int i)
{
    return (size_t)snprintf(buf, 32, "%s%d", prefix, i);
}

static void store_key(struct mc_store *s, const char *prefix, int i, const char *value,
                      size_t n)
{
    char k[32];
    size_t nk = key_of(k, prefix, i);
    ck_assert_int_eq(mc_store_store(s, MC_SET, k, nk, 0, 0, value, n, 0, NOW), MC_STORED);
}

static bool has_key(struct mc_store *s, const char *prefix, int i)
{
    char k[32];
    size_t nk = key_of(k, prefix, i);
    return mc_store_get(s, k, nk, NOW, false, 0, NULL, NULL) == MC_FOUND;
}

static uint64_t stat_bytes(struct mc_store *s)
{
    struct mc_store_stats st;
    mc_store_stats(s, &st);
    return st.bytes;
}

/* 16 MiB filled ten times over with 100 KB values: the survivors are the
 * newest keys (memcached: all of them), not a per-shard approximation. */
START_TEST(fill_keeps_the_newest)
{
    const size_t limit = 16u << 20, vlen = 100000;
    struct mc_store *s = mc_store_new(limit, 1u << 20);
    char *v = malloc(vlen);
    memset(v, 'v', vlen);
    int n = (int)(10 * limit / vlen);
    for (int i = 0; i < n; i++) {
        store_key(s, "fill", i, v, vlen);
        ck_assert_uint_le(stat_bytes(s), limit);
    }
    struct mc_store_stats st;
    mc_store_stats(s, &st);
    int survivors = (int)st.curr_items, newest = 0;
    ck_assert_int_gt(survivors, 100);
    ck_assert_uint_eq(st.evictions, (uint64_t)(n - survivors));
    for (int i = n - survivors; i < n; i++)
        newest += has_key(s, "fill", i);
    printf("fill: %d survivors, %d of them the newest\n", survivors, newest);
    ck_assert_int_ge(newest * 100, survivors * 95);
    /* Once there is room again the order holds too: the oldest goes. */
    ck_assert(!has_key(s, "fill", n - survivors - 1));
    free(v);
    mc_store_free(s);
}
END_TEST

/* The same with small items spread over every shard many times: the
 * evicted are exactly the oldest. */
START_TEST(small_items_evicted_oldest_first)
{
    const size_t limit = 1u << 20;
    struct mc_store *s = mc_store_new(limit, 4096);
    int n = 40000;
    for (int i = 0; i < n; i++)
        store_key(s, "s", i, "0123456789012345678901234567890123456789", 40);
    struct mc_store_stats st;
    mc_store_stats(s, &st);
    int survivors = (int)st.curr_items, newest = 0;
    for (int i = n - survivors; i < n; i++)
        newest += has_key(s, "s", i);
    printf("small fill: %d survivors, %d of them the newest\n", survivors, newest);
    ck_assert_int_ge(newest * 100, survivors * 99);
    mc_store_free(s);
}
END_TEST

/*
 * Scan resistance: a hot set read twice, then read again now and then (each
 * key once per 1.5 cache-fulls of scan, so under plain LRU every one of
 * them would be pushed out between two reads) survives a one-pass scan of
 * five cache-fulls of keys stored once.  A key read once only (fetched,
 * not active) is not protected.
 */
START_TEST(scan_does_not_evict_the_hot_set)
{
    const size_t limit = 4u << 20, vlen = 1000;
    struct mc_store *s = mc_store_new(limit, 4096);
    char v[1000];
    memset(v, 'h', sizeof v);
    const int hot = 200;
    for (int i = 0; i < hot; i++)
        store_key(s, "hot", i, v, vlen);
    store_key(s, "once", 0, v, vlen);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < hot; i++)
            ck_assert(has_key(s, "hot", i));
    ck_assert(has_key(s, "once", 0));
    int fits = (int)(limit / mc_item_cost(8, vlen));
    int scan = 5 * fits, every = (3 * fits / 2) / hot, h = 0;
    for (int i = 0; i < scan; i++) {
        store_key(s, "scan", i, v, vlen);
        if (i % every == 0)
            has_key(s, "hot", h++ % hot);
        ck_assert_uint_le(stat_bytes(s), limit);
    }
    int kept = 0;
    for (int i = 0; i < hot; i++)
        kept += has_key(s, "hot", i);
    printf("scan: %d of %d hot keys kept\n", kept, hot);
    ck_assert_int_eq(kept, hot);
    ck_assert(!has_key(s, "once", 0));
    ck_assert(!has_key(s, "scan", 0));
    ck_assert(has_key(s, "scan", scan - 1));
    mc_store_free(s);
}
END_TEST

/* One reclaim call frees the expired items of every shard, not of one. */
START_TEST(reclaim_covers_every_shard_in_one_call)
{
    struct mc_store *s = mc_store_new(64u << 20, 4096);
    char k[32];
    for (int i = 0; i < 10; i++) {
        size_t nk = key_of(k, "exp", i);
        ck_assert_int_eq(mc_store_store(s, MC_SET, k, nk, 0, NOW + 1, "x", 1, 0, NOW),
                         MC_STORED);
    }
    for (int i = 0; i < 1000; i++)
        store_key(s, "live", i, "y", 1);
    ck_assert_uint_eq(mc_store_reclaim(s, 256, NOW + 2), 10);
    struct mc_store_stats st;
    mc_store_stats(s, &st);
    ck_assert_uint_eq(st.curr_items, 1000);
    ck_assert_uint_eq(st.reclaimed, 10);
    ck_assert_uint_eq(st.expired_unfetched, 10);
    /* Bounded work: 5,000 expired items, at most 256 a call, all gone
     * within a few calls more than that takes. */
    for (int i = 0; i < 5000; i++) {
        size_t nk = key_of(k, "many", i);
        mc_store_store(s, MC_SET, k, nk, 0, NOW + 3, "x", 1, 0, NOW);
    }
    size_t total = 0, calls = 0;
    for (; calls < 40 && total < 5000; calls++) {
        size_t f = mc_store_reclaim(s, 256, NOW + 4);
        ck_assert_uint_le(f, 256);
        total += f;
    }
    ck_assert_uint_eq(total, 5000);
    ck_assert_uint_le(calls, 30);
    mc_store_stats(s, &st);
    ck_assert_uint_eq(st.curr_items, 1000);
    mc_store_free(s);
}
END_TEST

/* An expired item at the tail is reclaimed, not counted as an eviction. */
START_TEST(eviction_reclaims_expired_tails_first)
{
    const size_t vlen = 1000;
    size_t limit = 100 * mc_item_cost(8, vlen);
    struct mc_store *s = mc_store_new(limit, 4096);
    char v[1000], k[32];
    memset(v, 'e', sizeof v);
    for (int i = 0; i < 50; i++) {
        size_t nk = key_of(k, "old", i);
        ck_assert_int_eq(mc_store_store(s, MC_SET, k, nk, 0, NOW + 1, v, vlen, 0, NOW),
                         MC_STORED);
    }
    for (int i = 0; i < 100; i++) {
        size_t nk = key_of(k, "new", i);
        ck_assert_int_eq(mc_store_store(s, MC_SET, k, nk, 0, 0, v, vlen, 0, NOW + 2),
                         MC_STORED);
    }
    struct mc_store_stats st;
    mc_store_stats(s, &st);
    ck_assert_uint_eq(st.reclaimed, 50);
    ck_assert_uint_eq(st.evictions, 0);
    mc_store_free(s);
}
END_TEST

/* Random sizes and commands: the bytes never pass the limit, and they are
 * the sum of what the items left cost. */
static void add_cost(const struct mc_item *it, void *arg)
{
    *(uint64_t *)arg += mc_item_cost(it->nkey, it->nbytes);
}

START_TEST(memory_never_over_the_limit)
{
    const size_t limit = 512u << 10;
    struct mc_store *s = mc_store_new(limit, 32768);
    static char v[32768];
    memset(v, '7', sizeof v);
    unsigned seed = 7;
    char k[32];
    for (int i = 0; i < 20000; i++) {
        int key = rand_r(&seed) % 2000;
        size_t nk = key_of(k, "m", key);
        size_t n = (size_t)(rand_r(&seed) % 32768);
        switch (rand_r(&seed) % 6) {
        case 0:
            mc_store_store(s, MC_APPEND, k, nk, 0, 0, v, n / 8, 0, NOW);
            break;
        case 1:
            mc_store_delete(s, k, nk, NOW);
            break;
        case 2:
            mc_store_get(s, k, nk, NOW, false, 0, NULL, NULL);
            break;
        default:
            mc_store_store(s, MC_SET, k, nk, 0, 0, v, n, 0, NOW);
        }
        ck_assert_uint_le(stat_bytes(s), limit);
    }
    uint64_t sum = 0;
    for (int key = 0; key < 2000; key++) {
        size_t nk = key_of(k, "m", key);
        mc_store_get(s, k, nk, NOW, false, 0, add_cost, &sum);
    }
    ck_assert_uint_eq(sum, stat_bytes(s));
    /* A lower limit evicts down to it at once. */
    mc_store_set_limits(s, limit / 4, 32768);
    ck_assert_uint_le(stat_bytes(s), limit / 4);
    mc_store_free(s);
}
END_TEST

/* ---- threads ---- */

#define THREAD_KEYS 3000
#define THREAD_OPS 30000
#define THREAD_LIMIT (256u << 10)

static struct mc_store *shared;

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    static const char v[2048];
    char k[32];
    for (int i = 0; i < THREAD_OPS; i++) {
        /* A small hot range read often, the rest a scan-like spread. */
        int key = rand_r(&seed) % 4 == 0 ? rand_r(&seed) % 50 : rand_r(&seed) % THREAD_KEYS;
        size_t nk = key_of(k, "t", key);
        int op = rand_r(&seed) % 10;
        if (op < 3)
            mc_store_store(shared, MC_SET, k, nk, 0, rand_r(&seed) % 8 ? 0 : NOW + 1, v,
                           (size_t)(rand_r(&seed) % (int)sizeof v), 0, NOW + i / 10000);
        else if (op == 3)
            mc_store_delete(shared, k, nk, NOW);
        else if (op == 4) {
            uint64_t out;
            mc_store_delta(shared, k, nk, true, 1, NOW, &out);
        } else
            mc_store_get(shared, k, nk, NOW + i / 10000, false, 0, NULL, NULL);
    }
    return NULL;
}

static _Atomic int stop_background;

static void *background(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !stop_background; i++) {
        mc_store_reclaim(shared, 64, NOW + 2);
        if (i % 16 == 0)
            mc_store_set_limits(shared, i % 32 ? THREAD_LIMIT : THREAD_LIMIT / 2, 4096);
    }
    return NULL;
}

START_TEST(threads_store_read_evict_and_reclaim)
{
    shared = mc_store_new(THREAD_LIMIT, 4096);
    pthread_t th[4], bg;
    stop_background = 0;
    pthread_create(&bg, NULL, background, NULL);
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, (void *)(i + 1));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    stop_background = 1;
    pthread_join(bg, NULL);
    mc_store_set_limits(shared, THREAD_LIMIT, 4096);
    struct mc_store_stats st;
    mc_store_stats(shared, &st);
    ck_assert_uint_le(st.bytes, THREAD_LIMIT);
    ck_assert_uint_gt(st.evictions, 0);
    /* What the counters say is what is there. */
    uint64_t sum = 0, found = 0;
    char k[32];
    for (int key = 0; key < THREAD_KEYS; key++) {
        size_t nk = key_of(k, "t", key);
        found += mc_store_get(shared, k, nk, NOW, false, 0, add_cost, &sum) == MC_FOUND;
    }
    ck_assert_uint_eq(found, st.curr_items);
    ck_assert_uint_eq(sum, st.bytes);
    mc_store_free(shared);
}
END_TEST

/* Four threads filling at once, keys numbered in the order they are taken:
 * the survivors are still (nearly all) the newest. */
#define FILL_LIMIT (4u << 20)
#define FILL_VALUE 20000
#define FILL_KEYS (int)(10 * FILL_LIMIT / FILL_VALUE)
static _Atomic int fill_next;

static void *filler(void *arg)
{
    (void)arg;
    static char v[FILL_VALUE];
    int i;
    while ((i = fill_next++) < FILL_KEYS)
        store_key(shared, "c", i, v, sizeof v);
    return NULL;
}

START_TEST(concurrent_fill_keeps_the_newest)
{
    shared = mc_store_new(FILL_LIMIT, 1u << 20);
    fill_next = 0;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, filler, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct mc_store_stats st;
    mc_store_stats(shared, &st);
    int survivors = (int)st.curr_items, newest = 0;
    for (int i = FILL_KEYS - survivors; i < FILL_KEYS; i++)
        newest += has_key(shared, "c", i);
    printf("concurrent fill: %d survivors, %d of them the newest\n", survivors, newest);
    ck_assert_int_gt(survivors, 100);
    ck_assert_int_ge(newest * 100, survivors * 95);
    mc_store_free(shared);
}
END_TEST

/*
 * The segmented LRU's moves, counted as memcached counts them: items read
 * twice leave hot for warm (moves_to_warm, one each), items never read
 * again leave hot (or warm) for cold (moves_to_cold), an item read again
 * at warm's tail goes back to its head (moves_within_lru); `stats items`
 * per class adds up to the totals, and "stats reset" zeroes them.
 */
START_TEST(lru_moves_are_counted)
{
    const size_t limit = 1u << 20, vlen = 1000;
    struct mc_store *s = mc_store_new(limit, 4096);
    static char v[1000];
    const int warm = 500, scan = 300;
    for (int i = 0; i < warm; i++)
        store_key(s, "w", i, v, vlen);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < warm; i++)
            ck_assert(has_key(s, "w", i));
    for (int i = 0; i < scan; i++)
        store_key(s, "s", i, v, vlen);
    for (int i = 0; i < 8; i++)
        mc_store_reclaim(s, 256, NOW);
    struct mc_store_stats st;
    mc_store_stats(s, &st);
    ck_assert_uint_eq(st.evictions, 0);
    ck_assert_uint_eq(st.moves_to_warm, (uint64_t)warm); /* every item read twice, once */
    ck_assert_uint_gt(st.moves_to_cold, 0);
    ck_assert_uint_eq(st.moves_within_lru, 0);
    uint64_t to_cold = st.moves_to_cold;
    /* Read again: warm items are active at warm's tail, and go back to its
     * head when warm is over its share; those in cold go to warm at once. */
    for (int i = 0; i < warm; i++)
        ck_assert(has_key(s, "w", i));
    for (int i = 0; i < 8; i++)
        mc_store_reclaim(s, 256, NOW);
    mc_store_stats(s, &st);
    printf("moves: %llu to cold, %llu to warm, %llu within\n",
           (unsigned long long)st.moves_to_cold, (unsigned long long)st.moves_to_warm,
           (unsigned long long)st.moves_within_lru);
    ck_assert_uint_gt(st.moves_within_lru, 0);
    ck_assert_uint_ge(st.moves_to_cold, to_cold);
    struct mc_class_stats cs[MC_CLASSES];
    mc_store_class_stats(s, cs);
    uint64_t sum[3] = {0, 0, 0};
    for (unsigned k = 1; k < MC_CLASSES; k++) {
        sum[0] += cs[k].moves_to_cold;
        sum[1] += cs[k].moves_to_warm;
        sum[2] += cs[k].moves_within_lru;
    }
    ck_assert_uint_eq(sum[0], st.moves_to_cold);
    ck_assert_uint_eq(sum[1], st.moves_to_warm);
    ck_assert_uint_eq(sum[2], st.moves_within_lru);
    mc_store_reset_stats(s);
    mc_store_stats(s, &st);
    ck_assert_uint_eq(st.moves_to_cold + st.moves_to_warm + st.moves_within_lru, 0);
    mc_store_class_stats(s, cs);
    ck_assert_uint_eq(cs[mc_store_class_of(2, vlen)].moves_to_warm, 0);
    mc_store_free(s);
}
END_TEST

/* ---- referenced items never change ---- */

/* What a reader holding a reference reads without the lock, as
 * mc_emit_value does: key, flags, length, cas and the value's bytes. */
struct ref_view {
    uint64_t cas;
    uint32_t flags, nbytes;
    unsigned sum;
};

static struct ref_view ref_read(const struct mc_item *it)
{
    struct ref_view v = {it->cas, it->flags, it->nbytes, 0};
    for (size_t i = 0; i < it->nkey; i++)
        v.sum += (unsigned char)mc_item_key(it)[i];
    for (size_t i = 0; i < (size_t)it->nbytes + 2; i += 512)
        v.sum += (unsigned char)mc_item_value(it)[i];
    return v;
}

/* mg's callback as mc_meta.c's: may change exptime and the win mark. */
static bool meta_touch_win(struct mc_item *it, bool created, void *arg)
{
    (void)created;
    (void)arg;
    it->exptime = 0;
    it->mflags |= MC_ITEM_TOKEN_SENT;
    return true;
}

static bool meta_cas_of(struct mc_item *it, bool created, void *arg)
{
    (void)created;
    *(uint64_t *)arg = it->cas;
    *((uint64_t *)arg + 1) = it->mflags;
    return true;
}

/*
 * An item handed out by mc_store_get_ref keeps its cas, flags and value
 * while the key is invalidated (md I, with and without a TTL), marked won
 * (mg) and touched: those give the key a new item (or change what only the
 * lock guards), never the referenced one.
 */
START_TEST(referenced_item_never_changes)
{
    struct mc_store *s = mc_store_new(1u << 20, 1u << 16);
    static char v[5000];
    memset(v, '4', sizeof v);
    ck_assert_int_eq(mc_store_store(s, MC_SET, "k", 1, 7, 0, v, sizeof v, 0, NOW), MC_STORED);
    struct mc_item *ref = mc_store_get_ref(s, "k", 1, NOW, false, 0, NULL);
    ck_assert_ptr_nonnull(ref);
    struct ref_view before = ref_read(ref);
    struct mc_meta_req req = {.bump = true};
    ck_assert_int_eq(mc_store_meta_delete(s, "k", 1, false, 0, true, false, 0, 0, NOW),
                     MC_FOUND);
    ck_assert_int_eq(mc_store_meta_delete(s, "k", 1, false, 0, true, true, NOW + 100, 0, NOW),
                     MC_FOUND);
    ck_assert_int_eq(mc_store_meta_get(s, "k", 1, NOW, &req, meta_touch_win, NULL), MC_FOUND);
    ck_assert(mc_store_get(s, "k", 1, NOW, true, NOW + 50, NULL, NULL) == MC_FOUND);
    struct ref_view after = ref_read(ref);
    ck_assert_uint_eq(after.cas, before.cas);
    ck_assert_uint_eq(after.flags, 7);
    ck_assert_uint_eq(after.nbytes, sizeof v);
    ck_assert_uint_eq(after.sum, before.sum);
    /* The key itself did change: a new cas (two invalidations later), stale and won. */
    uint64_t now_cas[2] = {0, 0};
    ck_assert_int_eq(mc_store_meta_get(s, "k", 1, NOW, &req, meta_cas_of, now_cas), MC_FOUND);
    ck_assert_uint_eq(now_cas[0], before.cas + 2);
    ck_assert_uint_eq(now_cas[1] & (MC_ITEM_STALE | MC_ITEM_TOKEN_SENT),
                      MC_ITEM_STALE | MC_ITEM_TOKEN_SENT);
    /* One item counts for the key in the store's accounting. */
    struct mc_store_stats st;
    mc_store_stats(s, &st);
    ck_assert_uint_eq(st.curr_items, 1);
    ck_assert_uint_eq(st.bytes, mc_item_cost(1, sizeof v));
    mc_item_release(ref); /* (incr on a held item: check_memcache) */
    mc_store_free(s);
}
END_TEST

/*
 * Threads reading referenced items unlocked (as a `gets` of a value of 4
 * KiB or more does) while others invalidate the same key (md I), win it
 * (mg) and store it again (ms): bounded, run under ThreadSanitizer in CI,
 * which reports any item field written while a reference holder reads it.
 */
#define REF_OPS 20000
static _Atomic int ref_stop;

static void *ref_reader(void *arg)
{
    unsigned *sum = arg;
    for (int i = 0; i < REF_OPS; i++) {
        struct mc_item *it = mc_store_get_ref(shared, "hot", 3, NOW, false, 0, NULL);
        if (it) {
            struct ref_view v = ref_read(it);
            *sum += v.sum + (unsigned)v.cas + v.flags;
            mc_item_release(it);
        }
    }
    return NULL;
}

static void *ref_writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    static char v[6000];
    struct mc_meta_req req = {.bump = true};
    while (!ref_stop) {
        switch (rand_r(&seed) % 8) {
        case 0:
            mc_store_store(shared, MC_SET, "hot", 3, 1, 0, v, sizeof v, 0, NOW);
            break;
        case 1:
        case 2:
            mc_store_meta_get(shared, "hot", 3, NOW, &req, meta_touch_win, NULL);
            break;
        default:
            mc_store_meta_delete(shared, "hot", 3, false, 0, true, rand_r(&seed) % 2, NOW + 9,
                                 0, NOW);
        }
    }
    return NULL;
}

START_TEST(threads_invalidate_referenced_items)
{
    shared = mc_store_new(1u << 20, 1u << 16);
    static char v[6000];
    ck_assert_int_eq(mc_store_store(shared, MC_SET, "hot", 3, 1, 0, v, sizeof v, 0, NOW),
                     MC_STORED);
    ref_stop = 0;
    pthread_t rd[2], wr[2];
    unsigned sums[2] = {0, 0};
    for (uintptr_t i = 0; i < 2; i++) {
        pthread_create(&wr[i], NULL, ref_writer, (void *)(i + 1));
        pthread_create(&rd[i], NULL, ref_reader, &sums[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(rd[i], NULL);
    ref_stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(wr[i], NULL);
    struct mc_store_stats st;
    mc_store_stats(shared, &st);
    ck_assert_uint_eq(st.curr_items, 1);
    ck_assert_uint_eq(st.bytes, mc_item_cost(3, sizeof v));
    mc_store_free(shared);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mc_store");
    TCase *tc = tcase_create("lru");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fill_keeps_the_newest);
    tcase_add_test(tc, small_items_evicted_oldest_first);
    tcase_add_test(tc, scan_does_not_evict_the_hot_set);
    tcase_add_test(tc, reclaim_covers_every_shard_in_one_call);
    tcase_add_test(tc, eviction_reclaims_expired_tails_first);
    tcase_add_test(tc, memory_never_over_the_limit);
    tcase_add_test(tc, threads_store_read_evict_and_reclaim);
    tcase_add_test(tc, concurrent_fill_keeps_the_newest);
    tcase_add_test(tc, lru_moves_are_counted);
    tcase_add_test(tc, referenced_item_never_changes);
    tcase_add_test(tc, threads_invalidate_referenced_items);
    suite_add_tcase(s, tc);
    return check_run(s);
}
