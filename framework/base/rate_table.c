/*
 * rate_table.c - token buckets per source address in a bounded table (see
 * rate_table.h).  Tokens are kept in thousandths so that a rate below one
 * per millisecond still refills between calls.
 */
#include "rate_table.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "addr_key.h"

struct rate_bucket {
    uint8_t key[ADDR_KEY_LEN];
    uint64_t last_ms;   /* last refill; 0: the bucket is empty of any source */
    uint64_t tokens;    /* thousandths */
};

struct rate_table {
    pthread_mutex_t lock;
    uint64_t rate;      /* tokens per second = thousandths per ms */
    uint64_t full;      /* burst, in thousandths */
    size_t mask;        /* slots - 1 */
    struct rate_bucket *b;
};

struct rate_table *rate_table_new(size_t slots, uint64_t rate, uint64_t burst)
{
    size_t n = RATE_TABLE_WAYS;
    while (n < slots && n < ((size_t)1 << 30))
        n <<= 1;
    struct rate_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (!(t->b = calloc(n, sizeof *t->b))) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->rate = rate ? rate : 1;
    t->full = (burst ? burst : 1) * 1000;
    t->mask = n - 1;
    return t;
}

void rate_table_free(struct rate_table *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->b);
    free(t);
}

/* The bucket of key in its set: the one holding it, else the one used
 * longest ago, reset to full.  Caller holds the lock. */
static struct rate_bucket *rate_table_find(struct rate_table *t, const uint8_t *key,
                                           uint64_t now_ms)
{
    size_t set = (size_t)addr_key_hash(key) & t->mask & ~(size_t)(RATE_TABLE_WAYS - 1);
    struct rate_bucket *oldest = &t->b[set];
    for (size_t i = 0; i < RATE_TABLE_WAYS; i++) {
        struct rate_bucket *b = &t->b[set + i];
        if (b->last_ms && memcmp(b->key, key, ADDR_KEY_LEN) == 0)
            return b;
        if (b->last_ms < oldest->last_ms)
            oldest = b;
    }
    memcpy(oldest->key, key, ADDR_KEY_LEN);
    oldest->tokens = t->full;
    oldest->last_ms = now_ms ? now_ms : 1;
    return oldest;
}

bool rate_table_take(struct rate_table *t, const struct sockaddr *sa, uint64_t now_ms)
{
    uint8_t key[ADDR_KEY_LEN];
    addr_key(sa, key);
    pthread_mutex_lock(&t->lock);
    struct rate_bucket *b = rate_table_find(t, key, now_ms);
    if (now_ms > b->last_ms) {
        uint64_t elapsed = now_ms - b->last_ms; /* capped: no overflow */
        uint64_t add = elapsed > t->full / t->rate ? t->full : elapsed * t->rate;
        b->tokens = b->tokens + add > t->full ? t->full : b->tokens + add;
        b->last_ms = now_ms;
    }
    bool ok = b->tokens >= 1000;
    if (ok)
        b->tokens -= 1000;
    pthread_mutex_unlock(&t->lock);
    return ok;
}

size_t rate_table_slots(const struct rate_table *t)
{
    return t->mask + 1;
}

size_t rate_table_slot_size(void)
{
    return sizeof(struct rate_bucket);
}
