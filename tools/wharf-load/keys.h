/* keys.h - the key space of wharf-load's request templates ({key}): key numbers 0 .. n-1
 * printed as PREFIX + the number zero-padded to the width of n-1, drawn by a pattern:
 *   seq          0, 1, 2, ... in turn over the whole run (a counter shared by all threads),
 *                wrapping at n: a preload visits every key exactly once
 *   uniform      every key equally likely
 *   zipf[:S]     P(rank r) ~ 1/r^S (rank 1 = key 0), rejection-inversion sampling: O(1)
 *                set-up and memory, about one log and one exp per draw
 *   gauss[:M,SD] normal around key M with deviation SD (default n/2, n/6), redrawn outside
 *
 * The keys of one request are a function of one 64-bit "key context" the request keeps
 * (keys_ctx): the first number of the seq counter, or the start state of a private random
 * stream. Replaying the context (keys_it) gives the same keys again, so a reply can be
 * checked against the keys its request asked for without storing them. */
#ifndef WLOAD_KEYS_H
#define WLOAD_KEYS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>

enum keys_pattern { KP_UNIFORM, KP_SEQ, KP_ZIPF, KP_GAUSS };

struct keys {
    uint64_t n; /* keys 0 .. n-1 */
    enum keys_pattern pattern;
    double zipf_s;        /* KP_ZIPF: the exponent (0 for the other patterns) */
    double mean, sd;      /* KP_GAUSS */
    char prefix[128];
    unsigned width;       /* digits of n - 1 (keys are zero-padded to it) */
    unsigned prefix_len;
    _Atomic uint64_t *next; /* KP_SEQ: the shared counter (owned: keys_free) */
    /* rejection-inversion sampler constants (Hörmann & Derflinger) */
    double hx1, hn, s2;
};

/* Replays the keys of one request. */
struct keys_it {
    uint64_t ctx; /* KP_SEQ: the next ordinal; else the random stream's state */
};

/* Sets up the key space (n >= 1). p1, p2: zipf's S (> 0), gauss's mean and deviation
 * (p2 <= 0: the defaults n/2 and n/6). Returns 0, or -1 when out of memory. */
int keys_init(struct keys *k, uint64_t n, enum keys_pattern pattern, double p1, double p2,
              const char *prefix);
void keys_free(struct keys *k);

/* Parses a --key-pattern argument (seq, uniform, zipf[:S], gauss[:MEAN,SD]) into pattern,
 * p1, p2. Returns 0 or -1. */
int keys_parse(const char *arg, enum keys_pattern *pattern, double *p1, double *p2);

/* The pattern's name as keys_parse reads it back ("zipf:0.99"). */
void keys_describe(const struct keys *k, char *buf, size_t len);

/* A new key context for a request that draws `count` keys (rng: the caller's stream). */
uint64_t keys_ctx(const struct keys *k, uint64_t *rng, unsigned count);

static inline void keys_it_init(struct keys_it *it, uint64_t ctx) { it->ctx = ctx; }

/* The next key number of the request. */
uint64_t keys_next(const struct keys *k, struct keys_it *it);

/* Draws one key number with the pattern from rng (not KP_SEQ). */
uint64_t keys_draw(const struct keys *k, uint64_t *rng);

/* Writes key number `key` as text into out (prefix_len + width bytes). Returns the length. */
size_t keys_format(const struct keys *k, uint64_t key, uint8_t *out);

/* Key text length of this space (the same for every key). */
static inline size_t keys_len(const struct keys *k) { return k->prefix_len + k->width; }

#endif
