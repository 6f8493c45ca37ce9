/*
 * sources.c - per-source connection counts (see sources.h): a chained hash
 * table keyed by the 16-byte (IPv4-mapped) source address of addr_key.h.  An
 * entry exists only while its source has connections open, so memory follows
 * the number of distinct clients, not their history.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr_key.h"
#include "sources.h"

#define SOURCES_BUCKETS 4096 /* power of two */

struct source {
    uint8_t addr[ADDR_KEY_LEN];
    size_t count;
    struct source *next;
};

struct sources {
    pthread_mutex_t lock;
    size_t limit;
    size_t distinct;
    struct source *buckets[SOURCES_BUCKETS];
};

struct sources *sources_new(size_t limit)
{
    struct sources *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->limit = limit ? limit : 1;
    return s;
}

void sources_free(struct sources *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < SOURCES_BUCKETS; i++) {
        while (s->buckets[i]) {
            struct source *e = s->buckets[i];
            s->buckets[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* The entry's link for key (the slot holding it, or the empty end of the
 * chain).  Caller holds the lock. */
static struct source **sources_find(struct sources *s, const uint8_t key[ADDR_KEY_LEN])
{
    struct source **p = &s->buckets[addr_key_hash(key) & (SOURCES_BUCKETS - 1)];
    while (*p && memcmp((*p)->addr, key, ADDR_KEY_LEN) != 0)
        p = &(*p)->next;
    return p;
}

int sources_add(struct sources *s, const struct sockaddr *sa)
{
    uint8_t key[ADDR_KEY_LEN];
    addr_key(sa, key);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    struct source **p = sources_find(s, key);
    if (*p) {
        if ((*p)->count >= s->limit)
            rc = -EBUSY;
        else
            (*p)->count++;
    } else {
        struct source *e = malloc(sizeof *e);
        if (!e) {
            rc = -ENOMEM;
        } else {
            memcpy(e->addr, key, ADDR_KEY_LEN);
            e->count = 1;
            e->next = NULL;
            *p = e;
            s->distinct++;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void sources_remove(struct sources *s, const struct sockaddr *sa)
{
    uint8_t key[ADDR_KEY_LEN];
    addr_key(sa, key);
    pthread_mutex_lock(&s->lock);
    struct source **p = sources_find(s, key);
    struct source *e = *p;
    if (e && --e->count == 0) {
        *p = e->next;
        free(e);
        s->distinct--;
    }
    pthread_mutex_unlock(&s->lock);
}

size_t sources_count(struct sources *s, const struct sockaddr *sa)
{
    uint8_t key[ADDR_KEY_LEN];
    addr_key(sa, key);
    pthread_mutex_lock(&s->lock);
    struct source *e = *sources_find(s, key);
    size_t n = e ? e->count : 0;
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t sources_distinct(struct sources *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->distinct;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void sources_set_limit(struct sources *s, size_t limit)
{
    pthread_mutex_lock(&s->lock);
    s->limit = limit ? limit : 1;
    pthread_mutex_unlock(&s->lock);
}
