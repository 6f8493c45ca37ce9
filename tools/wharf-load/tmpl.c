/* tmpl.c - request templates of wharf-load: parsing placeholders, the weighted mix and
 * per-message expansion (keys from keys.c, verifiable values from cache.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

size_t tmpl_unescape(const char *s, uint8_t *out)
{
    size_t n = 0;

    while (*s) {
        if (*s != '\\' || !s[1]) {
            out[n++] = (uint8_t)*s++;
            continue;
        }
        switch (s[1]) {
        case 'r': out[n++] = '\r'; s += 2; break;
        case 'n': out[n++] = '\n'; s += 2; break;
        case 't': out[n++] = '\t'; s += 2; break;
        case '0': out[n++] = '\0'; s += 2; break;
        case '\\': out[n++] = '\\'; s += 2; break;
        case 'x':
            if (hexval(s[2]) >= 0 && hexval(s[3]) >= 0) {
                out[n++] = (uint8_t)(hexval(s[2]) * 16 + hexval(s[3]));
                s += 4;
            } else {
                out[n++] = (uint8_t)*s++; /* not an escape */
            }
            break;
        default: out[n++] = (uint8_t)*s++; break;
        }
    }
    return n;
}

static int add_part(struct tmpl *t, enum tmpl_part_kind k, uint32_t off, uint32_t len)
{
    struct tmpl_part *p;

    if (k == TP_LIT && len == 0)
        return 0;
    if (k == TP_LIT && t->nparts && t->parts[t->nparts - 1].kind == TP_LIT &&
        t->parts[t->nparts - 1].off + t->parts[t->nparts - 1].len == off) {
        t->parts[t->nparts - 1].len += len;
        return 0;
    }
    p = realloc(t->parts, (t->nparts + 1) * sizeof(*p));
    if (!p)
        return -1;
    t->parts = p;
    p[t->nparts].kind = k;
    p[t->nparts].off = off;
    p[t->nparts].len = len;
    t->nparts++;
    return 0;
}

/* "template: WHAT '{NAME}' (HINT)" */
static int terr(char *err, size_t len, const char *what, const char *name, size_t nlen,
                const char *hint)
{
    snprintf(err, len, "template: %s '{%.*s}'%s%s%s", what, (int)(nlen > 40 ? 40 : nlen), name,
             hint ? " (" : "", hint ? hint : "", hint ? ")" : "");
    return -1;
}

/* What tmpl_parse counts over the placeholders of a template. */
struct tmpl_count {
    size_t max;     /* bytes the placeholders may add at most */
    unsigned nrand; /* {rand:...} seen */
    unsigned nsize; /* {size} seen */
    bool key_seen;  /* a {key} came before */
    unsigned nlen;  /* {len:...} seen */
};

/* The placeholders without an argument, and the most bytes each expands to. */
static const struct {
    const char *name;
    enum tmpl_part_kind kind;
    size_t max;
} simple_parts[] = {
    {"seq", TP_SEQ, 20}, {"conn", TP_CONN, 10}, {"key", TP_KEY, 128 + 20},
    {"size", TP_SIZE, 10}, {"ts", TP_TS, 20}, {"value", TP_VALUE, 0},
};

/* The message of a failed allocation. Returns -1. */
static int nomem(char *err, size_t errlen)
{
    snprintf(err, errlen, "template: out of memory");
    return -1;
}

/* Sets t up empty for tmpl_parse and checks the template's length. Returns 0, or -1 with a
 * message in err. */
static int tmpl_start(struct tmpl *t, size_t len, char *err, size_t errlen)
{
    t->text = malloc(len ? len : 1);
    if (!t->text)
        return nomem(err, errlen);
    t->text_len = 0;
    t->parts = NULL;
    t->nparts = 0;
    t->has_rand = false;
    t->rand_min = t->rand_max = 0;
    t->nkeys = t->nvalue = 0;
    if (len == 0) {
        snprintf(err, errlen, "template: empty request");
        return -1;
    }
    if (len > TMPL_MAX_LEN) {
        snprintf(err, errlen, "template: longer than %u bytes", TMPL_MAX_LEN);
        return -1;
    }
    return 0;
}

/* {rand:N} or {rand:MIN-MAX} (name, nlen: the text between the braces): every {rand} of a
 * template has the same size range. Returns 0, or -1 with a message in err. */
static int parse_rand(struct tmpl *t, const char *name, size_t nlen, struct tmpl_count *n,
                      char *err, size_t errlen)
{
    char buf[48], *end, *end2;
    unsigned long a, b;

    if (nlen - 5 >= sizeof(buf))
        return terr(err, errlen, "bad size in", name, nlen, NULL);
    memcpy(buf, name + 5, nlen - 5);
    buf[nlen - 5] = '\0';
    a = strtoul(buf, &end, 10);
    b = a;
    if (*end == '-')
        b = strtoul(end + 1, &end2, 10), end = end2;
    if (end == buf || *end || buf[0] < '0' || buf[0] > '9' || a > b || b > TMPL_MAX_LEN || b == 0)
        return terr(err, errlen, "bad size in", name, nlen,
                    "expected {rand:N} or {rand:MIN-MAX}, 1 .. 1048576");
    if (t->has_rand && (t->rand_min != a || t->rand_max != b))
        return terr(err, errlen, "different size in", name, nlen,
                    "every {rand} of a template must have the same size: one size is drawn per "
                    "message");
    t->has_rand = true;
    t->rand_min = (uint32_t)a;
    t->rand_max = (uint32_t)b;
    if (add_part(t, TP_RAND, 0, 0))
        return nomem(err, errlen);
    n->nrand++;
    n->max += b;
    return 0;
}

/* One placeholder (name, nlen: the text between the braces) becomes a part of t. Returns
 * 0, or -1 with a message in err. */
static int parse_placeholder(struct tmpl *t, const char *name, size_t nlen, struct tmpl_count *n,
                             char *err, size_t errlen)
{
    size_t k;

    for (k = 0; k < sizeof(simple_parts) / sizeof(simple_parts[0]); k++) {
        if (nlen != strlen(simple_parts[k].name) || memcmp(name, simple_parts[k].name, nlen))
            continue;
        if (add_part(t, simple_parts[k].kind, 0, 0))
            return nomem(err, errlen);
        n->max += simple_parts[k].max;
        if (simple_parts[k].kind == TP_SIZE)
            n->nsize++;
        if (simple_parts[k].kind == TP_KEY) {
            t->nkeys++;
            n->key_seen = true;
        }
        if (simple_parts[k].kind == TP_VALUE) {
            if (!n->key_seen)
                return terr(err, errlen, "no key before", name, nlen,
                            "{value} is the value of the last {key} before it");
            t->nvalue++;
        }
        return 0;
    }
    if (nlen > 5 && !memcmp(name, "rand:", 5))
        return parse_rand(t, name, nlen, n, err, errlen);
    if (nlen > 4 && !memcmp(name, "len:", 4)) {
        static const char *const names[] = {"seq", "conn", "key", "rand", "size", "ts", "value"};
        static const enum tmpl_part_kind kinds[] = {TP_SEQ, TP_CONN, TP_KEY, TP_RAND,
                                                    TP_SIZE, TP_TS, TP_VALUE};

        for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (nlen - 4 == strlen(names[k]) && !memcmp(name + 4, names[k], nlen - 4)) {
                if (add_part(t, TP_LEN, (uint32_t)kinds[k], 0))
                    return nomem(err, errlen);
                n->max += 10;
                n->nlen++;
                return 0;
            }
        return terr(err, errlen, "unknown length in", name, nlen,
                    "expected {len:key}, {len:value}, {len:rand}, {len:seq}, {len:conn}, "
                    "{len:size} or {len:ts}");
    }
    return terr(err, errlen, "unknown placeholder", name, nlen,
                "expected {seq}, {conn}, {key}, {value}, {rand:N}, {rand:MIN-MAX}, {size}, {ts} or "
                "{len:NAME}; write {{ for a literal brace");
}

/* After the last literal: {size} needs a {rand}, and the expansion must fit. Returns 0, or
 * -1 with a message in err. */
static int tmpl_finish(struct tmpl *t, const struct tmpl_count *n, char *err, size_t errlen)
{
    if (n->nsize && !n->nrand && !t->nvalue) {
        snprintf(err, errlen, "template: {size} needs a {rand:...} or a {value} whose size it gives");
        return -1;
    }
    for (unsigned i = 0; n->nlen && i < t->nparts; i++) {
        unsigned j;

        if (t->parts[i].kind != TP_LEN)
            continue;
        for (j = i + 1; j < t->nparts && t->parts[j].kind != (enum tmpl_part_kind)t->parts[i].off;
             j++)
            ;
        if (j == t->nparts) {
            snprintf(err, errlen, "template: {len:...} gives the length of a placeholder after "
                                  "it, and none follows");
            return -1;
        }
    }
    t->max_len = t->text_len + n->max;
    if (t->max_len > TMPL_MAX_LEN) {
        snprintf(err, errlen, "template: expands to up to %zu bytes, more than %u", t->max_len,
                 TMPL_MAX_LEN);
        return -1;
    }
    return 0;
}

int tmpl_parse(struct tmpl *t, const uint8_t *text, size_t len, char *err, size_t errlen)
{
    struct tmpl_count n = {0, 0, 0, false, 0};
    size_t i = 0, lit_start = 0;
    const uint8_t *e;

    if (tmpl_start(t, len, err, errlen) != 0)
        return -1;
    /* literals are copied to t->text with {{ collapsed; placeholders become parts */
    while (i < len) {
        if (text[i] != '{') {
            t->text[t->text_len++] = text[i++];
            continue;
        }
        if (i + 1 < len && text[i + 1] == '{') {
            t->text[t->text_len++] = '{';
            i += 2;
            continue;
        }
        if (add_part(t, TP_LIT, (uint32_t)lit_start, (uint32_t)(t->text_len - lit_start)))
            return nomem(err, errlen);
        e = memchr(text + i, '}', len - i);
        if (!e) {
            snprintf(err, errlen, "template: '{' at byte %zu is never closed (write {{ for a "
                                  "literal brace)", i);
            return -1;
        }
        if (parse_placeholder(t, (const char *)text + i + 1, (size_t)(e - text) - i - 1, &n, err,
                              errlen) != 0)
            return -1;
        i = (size_t)(e - text) + 1;
        lit_start = t->text_len;
    }
    if (add_part(t, TP_LIT, (uint32_t)lit_start, (uint32_t)(t->text_len - lit_start)))
        return nomem(err, errlen);
    return tmpl_finish(t, &n, err, errlen);
}

int tmpl_append_literal(struct tmpl *t, const uint8_t *bytes, size_t len, char *err,
                        size_t errlen)
{
    uint8_t *text;

    if (len == 0)
        return 0;
    if (len > TMPL_MAX_BODY) {
        snprintf(err, errlen, "template: a literal of %zu bytes, more than %u", len, TMPL_MAX_BODY);
        return -1;
    }
    text = realloc(t->text, t->text_len + len);
    if (!text)
        return nomem(err, errlen);
    t->text = text;
    memcpy(t->text + t->text_len, bytes, len);
    if (add_part(t, TP_LIT, (uint32_t)t->text_len, (uint32_t)len))
        return nomem(err, errlen);
    t->text_len += len;
    t->max_len += len;
    return 0;
}

void tmpl_free(struct tmpl *t)
{
    if (t->expect) {
        tmpl_free(t->expect);
        free(t->expect);
        t->expect = NULL;
    }
    free(t->text);
    free(t->parts);
    t->text = NULL;
    t->parts = NULL;
    frame_spec_free(&t->frame);
    frame_check_free(&t->check);
}

/* ---- the mix --------------------------------------------------------------------------------- */

void tmpl_set_finish(struct tmpl_set *s)
{
    double sum = 0, acc = 0;
    unsigned i;

    s->max_len = 0;
    for (i = 0; i < s->n; i++) {
        s->t[i].max_len += (size_t)s->t[i].nvalue * s->values.max;
        sum += s->t[i].weight;
        if (s->t[i].max_len > s->max_len)
            s->max_len = s->t[i].max_len;
    }
    for (i = 0; i < s->n; i++) {
        acc += s->t[i].weight;
        s->cum[i] = sum > 0 ? acc / sum : (double)(i + 1) / s->n;
    }
    if (s->n)
        s->cum[s->n - 1] = 1.0;
}

void tmpl_set_free(struct tmpl_set *s)
{
    unsigned i;

    for (i = 0; i < s->n; i++)
        tmpl_free(&s->t[i]);
    s->n = 0;
    keys_free(&s->keys);
}

unsigned tmpl_pick(const struct tmpl_set *s, uint64_t *rng)
{
    double u;
    unsigned i;

    if (s->n <= 1)
        return 0;
    u = tmpl_rand01(rng);
    for (i = 0; i + 1 < s->n && u >= s->cum[i]; i++)
        ;
    return i;
}

/* ---- expansion ------------------------------------------------------------------------------- */

static size_t put_dec(uint8_t *out, uint64_t v, unsigned width)
{
    char tmp[24];
    unsigned n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width && n < sizeof(tmp))
        tmp[n++] = '0';
    for (i = 0; i < n; i++)
        out[i] = (uint8_t)tmp[n - 1 - i];
    return n;
}

static const char rand_chars[65] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void put_rand(uint8_t *out, size_t n, uint64_t *rng)
{
    size_t i = 0;
    int k;

    while (i < n) {
        uint64_t w = tmpl_rand(rng);

        for (k = 0; k < 10 && i < n; k++, w >>= 6)
            out[i++] = (uint8_t)rand_chars[w & 63];
    }
}

/* The length of the value of key (computed once per key; the version may become 0 for a
 * short value, cache.h). */
static uint32_t value_len(const struct tmpl_set *s, uint64_t key, uint64_t *version,
                          uint32_t *vlen, bool *known)
{
    if (!*known) {
        *vlen = cache_value_len(&s->values, key, version);
        *known = true;
    }
    return *vlen;
}

/* The version of the values of a request: a function of (key context, seq, conn), so that
 * an --expect with {value} replays it. */
static uint64_t request_version(uint64_t kctx, uint64_t seq, uint32_t conn)
{
    uint64_t x = kctx * 0x9e3779b97f4a7c15ull ^ seq * 0xbf58476d1ce4e5b9ull ^ conn;

    x = (x ^ (x >> 31)) * 0x94d049bb133111ebull;
    return ((x ^ (x >> 29)) >> 4) | 1;
}

/* Expands t with the key context kctx (rng: {rand} only). */
static size_t expand(const struct tmpl_set *s, const struct tmpl *t, uint8_t *out, uint64_t seq,
                     uint32_t conn, uint64_t *rng, uint64_t kctx)
{
    size_t n = 0;
    uint32_t size = t->rand_min, vlen = 0;
    uint64_t key = 0, version = request_version(kctx, seq, conn);
    bool vlen_known = false;
    struct keys_it it;
    unsigned i;

    if (t->has_rand && t->rand_max > t->rand_min)
        size = t->rand_min + (uint32_t)(tmpl_rand(rng) % (t->rand_max - t->rand_min + 1));
    keys_it_init(&it, kctx);
    for (i = 0; i < t->nparts; i++) {
        const struct tmpl_part *p = &t->parts[i];

        switch (p->kind) {
        case TP_LIT:
            memcpy(out + n, t->text + p->off, p->len);
            n += p->len;
            break;
        case TP_SEQ: n += put_dec(out + n, seq, 1); break;
        case TP_CONN: n += put_dec(out + n, conn, 1); break;
        case TP_KEY:
            key = keys_next(&s->keys, &it);
            n += keys_format(&s->keys, key, out + n);
            vlen_known = false;
            break;
        case TP_RAND:
            put_rand(out + n, size, rng);
            n += size;
            break;
        case TP_SIZE:
        case TP_VALUE:
            if (p->kind == TP_SIZE && t->has_rand) {
                n += put_dec(out + n, size, 1);
                break;
            }
            value_len(s, key, &version, &vlen, &vlen_known);
            if (p->kind == TP_SIZE) {
                n += put_dec(out + n, vlen, 1);
            } else {
                cache_value_put(&s->values, key, version, vlen, out + n);
                n += vlen;
            }
            break;
        case TP_TS: {
            struct timespec ts;

            clock_gettime(CLOCK_REALTIME, &ts);
            n += put_dec(out + n, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, 1);
            break;
        }
        case TP_LEN: {
            uint8_t tmp[24];
            uint64_t len = 0;

            switch ((enum tmpl_part_kind)p->off) {
            case TP_KEY: len = keys_len(&s->keys); break;
            case TP_RAND: len = size; break;
            case TP_SEQ: len = put_dec(tmp, seq, 1); break;
            case TP_CONN: len = put_dec(tmp, conn, 1); break;
            case TP_TS: len = 19; break; /* until 2286 */
            case TP_SIZE:
                len = put_dec(tmp, t->has_rand ? size : value_len(s, key, &version, &vlen,
                                                                  &vlen_known), 1);
                break;
            case TP_VALUE: len = value_len(s, key, &version, &vlen, &vlen_known); break;
            default: break;
            }
            n += put_dec(out + n, len, 1);
            break;
        }
        }
    }
    return n;
}

size_t tmpl_expand(const struct tmpl_set *s, const struct tmpl *t, uint8_t *out, uint64_t seq,
                   uint32_t conn, uint64_t *rng, uint64_t *kctx)
{
    *kctx = t->nkeys ? keys_ctx(&s->keys, rng, t->nkeys) : tmpl_rand(rng);
    return expand(s, t, out, seq, conn, rng, *kctx);
}

/* ---- replies tied to their request ----------------------------------------------------------- */

bool tmpl_has_placeholders(const uint8_t *text, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (text[i] != '{')
            continue;
        if (i + 1 < len && text[i + 1] == '{') {
            i++;
            continue;
        }
        return true;
    }
    return false;
}

int tmpl_set_expect(struct tmpl *t, const uint8_t *text, size_t len, char *err, size_t errlen)
{
    struct tmpl *e = calloc(1, sizeof(*e));
    unsigned i;

    if (!e)
        return nomem(err, errlen);
    t->expect = e;
    if (tmpl_parse(e, text, len, err, errlen) != 0)
        return -1;
    for (i = 0; i < e->nparts; i++)
        if (e->parts[i].kind == TP_RAND || e->parts[i].kind == TP_TS) {
            snprintf(err, errlen, "template: {%s} in --expect cannot be tied to the request "
                                  "(expected {seq}, {conn}, {key}, {value}, {size} or {len:...})",
                     e->parts[i].kind == TP_RAND ? "rand:..." : "ts");
            return -1;
        }
    if (e->nkeys != t->nkeys) {
        snprintf(err, errlen, "template: --expect has %u {key}, its request %u: the keys of a "
                              "reply are those of its request, in order", e->nkeys, t->nkeys);
        return -1;
    }
    return 0;
}

bool tmpl_reply_ok(const struct tmpl_set *s, const struct tmpl *t, uint64_t seq, uint32_t conn,
                   uint64_t kctx, const uint8_t *reply, size_t len, int status)
{
    uint8_t stack[2048], *buf = stack;
    uint64_t rng = 1;
    size_t n;
    bool ok;

    if (!t->expect)
        return frame_check_ok(&t->check, reply, len, status);
    if (t->expect->max_len + (size_t)t->expect->nvalue * s->values.max > sizeof(stack) &&
        !(buf = malloc(t->expect->max_len + (size_t)t->expect->nvalue * s->values.max)))
        return false;
    n = expand(s, t->expect, buf, seq, conn, &rng, kctx);
    ok = t->check.kind == CK_LITERAL ? len == n && !memcmp(reply, buf, n)
                                     : len >= n && !memcmp(reply, buf, n);
    if (buf != stack)
        free(buf);
    return ok;
}
