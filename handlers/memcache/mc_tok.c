/*
 * mc_tok.c - the tokens of a memcache command line, read as memcached reads
 * them (its safe_strtoull and safe_strtol, its key rules).
 */
#include <string.h>

#include "memcache.h"

/* Splits s[0..n) on blanks; returns the count, or max + 1 when there are
 * more than max tokens (t[0..max) filled). */
size_t mc_tok_split(const char *s, size_t n, struct mc_tok *t, size_t max)
{
    size_t k = 0, i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        if (i == n)
            break;
        size_t start = i;
        /* memchr: a key is up to 250 bytes and every command line is split
         * more than once; a byte loop here was 14 % of the server's CPU
         * under memcaslap's 64-byte keys (docs/performance.md). */
        const char *sp = memchr(s + i, ' ', n - i);
        i = sp ? (size_t)(sp - s) : n;
        if (k == max)
            return max + 1;
        t[k].p = s + start;
        t[k].n = i - start;
        k++;
    }
    return k;
}

/* Unsigned decimal, memcached's safe_strtoull: no sign, no overflow. */
bool mc_tok_u64(const struct mc_tok *t, uint64_t *out)
{
    if (t->n == 0 || t->n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < t->n; i++) {
        unsigned d = (unsigned)(t->p[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Signed decimal within 32 bits, memcached's safe_strtol. */
bool mc_tok_i32(const struct mc_tok *t, int64_t *out)
{
    struct mc_tok u = *t;
    bool neg = u.n > 0 && u.p[0] == '-';
    if (neg) {
        u.p++;
        u.n--;
    }
    uint64_t v;
    if (!mc_tok_u64(&u, &v) || v > (neg ? 2147483648u : 2147483647u))
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/* A key: 1..250 bytes of any value but a blank (blanks end a token), as
 * memcached's text protocol takes them.  Control characters are allowed:
 * memcached stores them, and clients use them (memcaslap's keys begin with
 * eight 0x10 bytes); watch and metadump print keys URL-encoded. */
bool mc_tok_key(const struct mc_tok *t)
{
    return t->n > 0 && t->n <= MC_KEY_MAX;
}
