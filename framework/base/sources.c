/*
 * sources.c - per-source connection counts (see sources.h): a chained hash
 * table keyed by the 16-byte (IPv4-mapped) source address.  An entry exists
 * only while its source has connections open, so memory follows the number
 * of distinct clients, not their history.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sources.h"

#define SOURCES_BUCKETS 4096 /* power of two */

struct source {
    unsigned char addr[16];
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

/* The 16-byte key of an address: IPv6 as is, IPv4 in its mapped form. */
static void sources_key(const struct sockaddr *sa, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
}

static size_t sources_hash(const unsigned char key[16])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 32)) & (SOURCES_BUCKETS - 1);
}

/* The entry's link for key (the slot holding it, or the empty end of the
 * chain).  Caller holds the lock. */
static struct source **sources_find(struct sources *s, const unsigned char key[16])
{
    struct source **p = &s->buckets[sources_hash(key)];
    while (*p && memcmp((*p)->addr, key, 16) != 0)
        p = &(*p)->next;
    return p;
}

int sources_add(struct sources *s, const struct sockaddr *sa)
{
    unsigned char key[16];
    sources_key(sa, key);
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
            memcpy(e->addr, key, 16);
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
    unsigned char key[16];
    sources_key(sa, key);
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
    unsigned char key[16];
    sources_key(sa, key);
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
