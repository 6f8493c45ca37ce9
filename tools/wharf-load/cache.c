/* cache.c - values derived from key and version, and the verification of get replies
 * (memcached text protocol, RESP) for wharf-load's cache workloads. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmpl.h"

static const char vchars[65] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int vchar_val(uint8_t c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '-'             ? 62
           : c == '_'             ? 63
                                  : -1;
}

/* splitmix64 finalizer: a well-mixed 64-bit hash. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t value_state(uint64_t key, uint64_t version)
{
    uint64_t s = mix(mix(0x6361636865ull ^ key) ^ key) ^ mix(version + 0x51ed27);

    return s ? s : 1;
}

/* Bytes of a versioned value before its stream: version (10), length (4). */
#define VHEAD 14

static uint32_t len_of(const struct cache_values *v, uint64_t key, uint64_t version)
{
    if (v->max <= v->min)
        return v->min;
    return v->min + (uint32_t)(mix(value_state(key, version)) % (v->max - v->min + 1));
}

uint32_t cache_value_len(const struct cache_values *v, uint64_t key, uint64_t *version)
{
    uint32_t len = len_of(v, key, *version);

    if (len < CACHE_VERSIONED && *version) {
        *version = 0;
        len = len_of(v, key, 0);
    }
    return len;
}

void cache_value_put(const struct cache_values *v, uint64_t key, uint64_t version, uint32_t len,
                     uint8_t *out)
{
    uint64_t s = value_state(key, len >= CACHE_VERSIONED ? version : 0);
    uint32_t i = 0;
    int k;

    (void)v;
    if (len >= CACHE_VERSIONED) {
        for (; i < 10; i++)
            out[i] = (uint8_t)vchars[(version >> (6 * i)) & 63];
        for (; i < VHEAD; i++)
            out[i] = (uint8_t)vchars[(len >> (6 * (i - 10))) & 63];
    }
    while (i < len) {
        uint64_t w = tmpl_rand(&s);

        for (k = 0; k < 10 && i < len; k++, w >>= 6)
            out[i++] = (uint8_t)vchars[w & 63];
    }
}

bool cache_value_ok(const struct cache_values *v, uint64_t key, const uint8_t *p, size_t len)
{
    uint64_t version = 0, s, hlen = 0;
    size_t i = 0;
    int k, c;

    (void)v;
    if (len >= CACHE_VERSIONED) {
        for (; i < VHEAD; i++) {
            if ((c = vchar_val(p[i])) < 0)
                return false;
            if (i < 10)
                version |= (uint64_t)c << (6 * i);
            else
                hlen |= (uint64_t)c << (6 * (i - 10));
        }
        if (hlen != len)
            return false;
    }
    s = value_state(key, version);
    while (i < len) {
        uint64_t w = tmpl_rand(&s);

        for (k = 0; k < 10 && i < len; k++, w >>= 6)
            if (p[i++] != (uint8_t)vchars[w & 63])
                return false;
    }
    return true;
}

/* A reply's bytes as a short quoted string for error messages. */
static void quote(char *out, size_t outlen, const uint8_t *p, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < len && i < 24 && n + 5 < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, p[i] >= 32 && p[i] < 127 ? "%c" : "\\x%02x",
                              p[i]);
    if (i < len && n + 4 < outlen)
        n += (size_t)snprintf(out + n, outlen - n, "...");
    out[n] = '\0';
}

/* Steps the request's keys up to the one whose text is key[0, klen): those skipped are
 * misses. Returns the key number, or -1 when the request did not ask for it (next). */
static int64_t match_key(const struct keys *k, struct keys_it *it, unsigned *left,
                         const uint8_t *key, size_t klen, uint64_t *misses)
{
    uint8_t buf[160];

    while (*left > 0) {
        uint64_t n = keys_next(k, it);

        (*left)--;
        if (keys_format(k, n, buf) == klen && !memcmp(buf, key, klen))
            return (int64_t)n;
        (*misses)++;
    }
    return -1;
}

static const uint8_t *line_end(const uint8_t *p, const uint8_t *end)
{
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));

    return nl && nl > p && nl[-1] == '\r' ? nl - 1 : NULL;
}

static int bad(char *why, size_t whylen, const char *what, const uint8_t *p, size_t len)
{
    char q[128];

    quote(q, sizeof(q), p, len);
    snprintf(why, whylen, "%s: '%s'", what, q);
    return -1;
}

static int check_memcache(const struct keys *k, const struct cache_values *v, struct keys_it *it,
                          unsigned left, const uint8_t *p, const uint8_t *end, uint64_t *hits,
                          uint64_t *misses, char *why, size_t whylen)
{
    for (;;) {
        const uint8_t *le = line_end(p, end), *key, *sp, *data;
        unsigned long flags, bytes;
        char num[64], *e;
        int64_t kn;

        if (!le)
            return bad(why, whylen, "unterminated line in get reply", p, (size_t)(end - p));
        if (le - p == 3 && !memcmp(p, "END", 3))
            break;
        if (le - p < 6 || memcmp(p, "VALUE ", 6))
            return bad(why, whylen, "expected VALUE or END", p, (size_t)(end - p));
        key = p + 6;
        sp = memchr(key, ' ', (size_t)(le - key));
        if (!sp || (size_t)(le - sp) >= sizeof(num))
            return bad(why, whylen, "bad VALUE line", p, (size_t)(le - p));
        memcpy(num, sp + 1, (size_t)(le - sp - 1));
        num[le - sp - 1] = '\0';
        flags = strtoul(num, &e, 10);
        bytes = strtoul(e, &e, 10);
        (void)flags;
        data = le + 2;
        if ((size_t)(end - data) < bytes + 2)
            return bad(why, whylen, "VALUE longer than the reply", p, (size_t)(le - p));
        kn = match_key(k, it, &left, key, (size_t)(sp - key), misses);
        if (kn < 0)
            return bad(why, whylen, "VALUE of a key not asked for (or out of order)", p,
                       (size_t)(le - p));
        if (!cache_value_ok(v, (uint64_t)kn, data, bytes))
            return bad(why, whylen, "wrong value", p, (size_t)(le - p));
        (*hits)++;
        p = data + bytes + 2;
    }
    *misses += left;
    return 0;
}

/* One RESP bulk string at *pp: hit (verified) or nil. */
static int check_bulk(const struct keys *k, const struct cache_values *v, struct keys_it *it,
                      const uint8_t **pp, const uint8_t *end, uint64_t *hits, uint64_t *misses,
                      char *why, size_t whylen)
{
    const uint8_t *p = *pp, *le = line_end(p, end);
    uint64_t key = keys_next(k, it);
    char num[24], *e;
    long n;

    if (!le || *p != '$' || le - p < 2 || (size_t)(le - p) >= sizeof(num))
        return bad(why, whylen, "expected a bulk string", p, (size_t)(end - p));
    memcpy(num, p + 1, (size_t)(le - p - 1));
    num[le - p - 1] = '\0';
    n = strtol(num, &e, 10);
    if (*e || n < -1)
        return bad(why, whylen, "bad bulk string length", p, (size_t)(le - p));
    if (n == -1) {
        (*misses)++;
        *pp = le + 2;
        return 0;
    }
    if ((size_t)(end - (le + 2)) < (size_t)n + 2)
        return bad(why, whylen, "bulk string longer than the reply", p, (size_t)(le - p));
    if (!cache_value_ok(v, key, le + 2, (size_t)n)) {
        char w[64];
        uint8_t kb[160];
        size_t kl = keys_format(k, key, kb);

        snprintf(w, sizeof(w), "wrong value of %.*s", (int)(kl > 40 ? 40 : kl), (const char *)kb);
        return bad(why, whylen, w, le + 2, (size_t)n);
    }
    (*hits)++;
    *pp = le + 2 + n + 2;
    return 0;
}

int cache_check(const struct keys *k, const struct cache_values *v, enum cache_verify kind,
                unsigned nkeys, uint64_t ctx, const uint8_t *reply, size_t len, uint64_t *hits,
                uint64_t *misses, char *why, size_t whylen)
{
    const uint8_t *p = reply, *end = reply + len;
    struct keys_it it;
    unsigned i;

    keys_it_init(&it, ctx);
    if (kind == CV_MEMCACHE)
        return check_memcache(k, v, &it, nkeys, p, end, hits, misses, why, whylen);
    if (kind != CV_REDIS)
        return 0;
    if (nkeys > 1 || (len && *p == '*')) {
        const uint8_t *le = line_end(p, end);
        char num[24];

        if (!le || *p != '*' || (size_t)(le - p) >= sizeof(num))
            return bad(why, whylen, "expected an array", p, len);
        memcpy(num, p + 1, (size_t)(le - p - 1));
        num[le - p - 1] = '\0';
        if (strtoul(num, NULL, 10) != nkeys)
            return bad(why, whylen, "array of another length than the keys asked for", p,
                       (size_t)(le - p));
        p = le + 2;
    }
    for (i = 0; i < nkeys; i++)
        if (check_bulk(k, v, &it, &p, end, hits, misses, why, whylen) != 0)
            return -1;
    return 0;
}
