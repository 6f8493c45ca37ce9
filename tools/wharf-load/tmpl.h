/* tmpl.h - request templates for wharf-load: text with placeholders filled per message, a
 * key space (keys.h) and a weighted mix of templates, each with its own reply
 * framing and check (frame.h).
 *
 * Placeholders (inline templates also take the escapes \r \n \t \\ \0 \xHH, and {{ for {):
 *   {seq}            per-connection sequence number, decimal, from 0
 *   {conn}           connection number, decimal
 *   {key}            a key drawn from the key space (keys.h): PREFIX + zero-padded number;
 *                    the keys of a request replay from its key context (tmpl_expand)
 *   {value}          the value of the last {key} (cache.h): its length from --value-size,
 *                    derived from the key and a version drawn per request, so gets verify
 *   {rand:N}         N random bytes (letters, digits, '-', '_': safe in text protocols)
 *   {rand:MIN-MAX}   a size drawn uniformly per message; every {rand} of a template shares it
 *   {size}           that size in decimal (e.g. for "set k 0 0 {size}\r\n{rand:10-100}\r\n"),
 *                    or in a template with {value} and no {rand}, the value's length
 *   {ts}             wall-clock time, nanoseconds since the epoch, decimal
 *   {len:NAME}       the length in bytes, decimal, of what the next {NAME} of the template
 *                    expands to (NAME: key, value, rand, seq, conn, size, ts), for
 *                    length-prefixed protocols: "$%{len:key}\r\n{key}\r\n" in RESP
 */
#ifndef WLOAD_TMPL_H
#define WLOAD_TMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "frame.h"
#include "keys.h"

#define TMPL_MAX 16          /* templates in a mix */
#define TMPL_MAX_HEADERS 32  /* -H headers of --proto http */
#define TMPL_MAX_LEN (1u << 20) /* largest expanded request (before a literal body) */
#define TMPL_MAX_BODY (1u << 20) /* largest literal tmpl_append_literal adds (--data) */

enum tmpl_part_kind { TP_LIT, TP_SEQ, TP_CONN, TP_KEY, TP_RAND, TP_SIZE, TP_TS, TP_VALUE, TP_LEN };

struct tmpl_part {
    enum tmpl_part_kind kind;
    uint32_t off, len; /* TP_LIT: bytes [off, off + len) of text; TP_LEN: off is the kind
                          whose length it gives */
};

struct tmpl {
    uint8_t *text;
    size_t text_len;
    struct tmpl_part *parts;
    unsigned nparts;
    uint32_t rand_min, rand_max; /* size of {rand} (0 when absent) */
    bool has_rand;
    unsigned nkeys;   /* {key}s: keys drawn per request */
    unsigned nvalue;  /* {value}s */
    enum cache_verify verify; /* replies checked against the request's keys (cache.h) */
    double weight;
    size_t max_len; /* longest expansion */
    struct frame_spec frame;
    struct frame_check check;
    struct tmpl *expect; /* --expect literal:/prefix: with placeholders: the reply expected,
                            expanded for each request (owned; NULL: check as given) */
    char name[32]; /* for reports: "get", "set", "request 1" ... */
};

struct tmpl_set {
    struct tmpl t[TMPL_MAX];
    unsigned n;
    double cum[TMPL_MAX]; /* cumulative weights normalized to 1 (tmpl_set_finish) */
    struct keys keys;
    struct cache_values values; /* {value}: the length range of new values */
    size_t max_len;
    char proto[16]; /* "templates", "memcache", "http" */
};

/* Decodes the escapes of an inline string (\r \n \t \\ \0 \xHH; other backslashes stay).
 * out must hold strlen(s) bytes. Returns the decoded length. */
size_t tmpl_unescape(const char *s, uint8_t *out);

/* Parses a template of len bytes (escapes already decoded) into t, whose framing is left
 * as set. Returns 0, or -1 with a message naming the problem in err. */
int tmpl_parse(struct tmpl *t, const uint8_t *text, size_t len, char *err, size_t errlen);
void tmpl_free(struct tmpl *t);

/* Appends len bytes to a parsed template as they are (no placeholders, no escapes: an HTTP
 * body from --data), at most TMPL_MAX_BODY. Returns 0, or -1 with a message in err. */
int tmpl_append_literal(struct tmpl *t, const uint8_t *bytes, size_t len, char *err,
                        size_t errlen);

/* Normalizes the weights and computes the longest expansion ({value}s at their longest). */
void tmpl_set_finish(struct tmpl_set *s);
void tmpl_set_free(struct tmpl_set *s);

/* Whether an --expect STR (escapes decoded) has placeholders (a '{' not doubled). */
bool tmpl_has_placeholders(const uint8_t *text, size_t len);

/* Sets t->expect from the STR of a literal: or prefix: check (escapes decoded): the
 * placeholders of a reply are those of its request, replayed ({seq}, {conn}, {key},
 * {value}, {size}, {len:...}); {rand} and {ts} cannot be replayed and are refused.
 * Returns 0, or -1 with a message in err. */
int tmpl_set_expect(struct tmpl *t, const uint8_t *text, size_t len, char *err, size_t errlen);

/* Whether a complete reply passes t's check; with t->expect, against the expansion for
 * the request (seq, conn, key context kctx). status: frame_state.status after FRAME_DONE. */
bool tmpl_reply_ok(const struct tmpl_set *s, const struct tmpl *t, uint64_t seq, uint32_t conn,
                   uint64_t kctx, const uint8_t *reply, size_t len, int status);

/* Picks a template of the mix by weight. */
unsigned tmpl_pick(const struct tmpl_set *s, uint64_t *rng);

/* Expands template t into out (which holds t->max_len bytes). *kctx receives the key
 * context of the request (keys.h: its {key}s replay from it). Returns the length. */
size_t tmpl_expand(const struct tmpl_set *s, const struct tmpl *t, uint8_t *out, uint64_t seq,
                   uint32_t conn, uint64_t *rng, uint64_t *kctx);

/* xorshift64*: the generator of every random choice (state never 0). */
static inline uint64_t tmpl_rand(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, 1). */
static inline double tmpl_rand01(uint64_t *s) { return (tmpl_rand(s) >> 11) * (1.0 / 9007199254740992.0); }

#endif
