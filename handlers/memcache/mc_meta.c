/*
 * mc_meta.c - memcached 1.6's meta commands (mg, ms, md, ma, mn, me) for the
 * memcache handler, answered as memcached 1.6.18's proto_text.c answers them,
 * byte for byte; docs/memcache.md ("Meta commands") names where they differ.
 *
 * A meta line is "<cm> <key> [<datalen>] <flag>*": flags are one character,
 * some with a token after it (T30, Oopaque).  Each command checks its line
 * in memcached's order (too few tokens, the key's length, too many flags),
 * then reads the flags in one pass with memcached's errors (meta_preparse,
 * its _meta_flag_preparse), then works on the item with a store callback
 * that writes the answer's flags in the order they were asked for, under the
 * item's shard lock, as memcached does under its item lock (mc_store.h, the
 * meta section).
 *
 * ms carries a data block: mc_meta_body_length gives the framing its length
 * (datalen + 2) when the line is one memcached would read the data for, and
 * -1 otherwise; the lines memcached refuses after reading datalen have their
 * data swallowed (mc_conn.swallow), as memcached's conn_swallow does.
 *
 * Quiet mode (q) hides only the nominal answers, as memcached does: mg's EN,
 * ms's HD, md's HD, ma's HD/VA on success; every error is always sent.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "memcache.h"

#define META_TOKENS 23     /* memcached's MAX_TOKENS - 1: the rest is left unread */
#define META_TOKENS_MAX 19 /* more tokens than this: "options flags too long" */
#define META_OPAQUE_MAX 32
#define META_LINE 1024     /* the longest answer line: a base64 key and 17 flags */

/* What the flags of one line asked for (memcached's struct _meta_flags). */
struct meta_flags {
    bool no_update, vivify, value, set_stale, no_reply, has_cas, has_cas_in, new_ttl;
    bool key_binary;
    char mode;
    int64_t exptime, autoviv_exptime, recache_time; /* absolute (mc_exptime) */
    uint32_t client_flags;
    uint64_t req_cas, cas_in, delta, initial;
};

/* One meta line, split and its key decoded. */
struct meta_line {
    struct mc_tok t[META_TOKENS];
    size_t n;
    char key[MC_KEY_MAX]; /* the key, base64-decoded under b */
    size_t nkey;
    struct meta_flags of;
};

/* An answer line being written. */
struct meta_out {
    char buf[META_LINE];
    size_t len;
};

static void out_add(struct meta_out *o, const void *p, size_t n)
{
    if (n > sizeof o->buf - o->len)
        n = sizeof o->buf - o->len; /* cannot happen: META_LINE covers the longest */
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void out_str(struct meta_out *o, const char *s)
{
    out_add(o, s, strlen(s));
}

static void out_u64(struct meta_out *o, uint64_t v)
{
    char tmp[24];
    out_add(o, tmp, (size_t)(mc_put_u64(tmp, v) - tmp));
}

/* " <flag><number>" */
static void out_flag_u64(struct meta_out *o, char flag, uint64_t v)
{
    char f[2] = {' ', flag};
    out_add(o, f, 2);
    out_u64(o, v);
}

static void meta_send(wharf_conn *c, const struct meta_out *o)
{
    mc_send(c, o->buf, o->len);
}

/* ---- base64, as memcached's base64.c reads and writes it ---------------- */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A character's value; '=' counts as 0, anything else outside the
 * alphabet is skipped (-1), as memcached's table has it. */
static int b64_value(unsigned char ch)
{
    if (ch == '=')
        return 0;
    const char *p = ch ? memchr(b64_chars, ch, 64) : NULL;
    return p ? (int)(p - b64_chars) : -1;
}

/* Decodes src[0..n) into out (at least n bytes); 0 when it is not base64
 * (no characters, not a multiple of 4, or bad padding). */
static size_t b64_decode(const char *src, size_t n, char *out)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (b64_value((unsigned char)src[i]) >= 0)
            count++;
    if (count == 0 || count % 4)
        return 0;
    unsigned char block[4];
    size_t pos = 0, k = 0;
    int pad = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)src[i]);
        if (v < 0)
            continue;
        if (src[i] == '=')
            pad++;
        block[k++] = (unsigned char)v;
        if (k < 4)
            continue;
        out[pos++] = (char)((block[0] << 2) | (block[1] >> 4));
        out[pos++] = (char)((block[1] << 4) | (block[2] >> 2));
        out[pos++] = (char)((block[2] << 6) | block[3]);
        k = 0;
        if (pad) {
            if (pad > 2)
                return 0;
            pos -= (size_t)pad;
            break;
        }
    }
    return pos;
}

static void out_b64(struct meta_out *o, const char *src, size_t n)
{
    const unsigned char *in = (const unsigned char *)src;
    char q[4];
    for (; n >= 3; in += 3, n -= 3) {
        q[0] = b64_chars[in[0] >> 2];
        q[1] = b64_chars[((in[0] & 0x03) << 4) | (in[1] >> 4)];
        q[2] = b64_chars[((in[1] & 0x0f) << 2) | (in[2] >> 6)];
        q[3] = b64_chars[in[2] & 0x3f];
        out_add(o, q, 4);
    }
    if (n) {
        q[0] = b64_chars[in[0] >> 2];
        q[1] = b64_chars[((in[0] & 0x03) << 4) | (n == 2 ? in[1] >> 4 : 0)];
        q[2] = n == 2 ? b64_chars[(in[1] & 0x0f) << 2] : '=';
        q[3] = '=';
        out_add(o, q, 4);
    }
}

/* " k<key>", and " b" after a binary key sent in base64 (META_KEY). */
static void out_key(struct meta_out *o, const char *key, size_t nkey, bool binary)
{
    out_add(o, " k", 2);
    if (binary) {
        out_b64(o, key, nkey);
        out_add(o, " b", 2);
    } else {
        out_add(o, key, nkey);
    }
}

/* " O<opaque>"; false (nothing written) when it is longer than memcached takes. */
static bool out_opaque(struct meta_out *o, const struct mc_tok *t)
{
    if (t->n > META_OPAQUE_MAX)
        return false;
    out_add(o, " ", 1);
    out_add(o, t->p, t->n);
    return true;
}

/* ---- numbers, as memcached's safe_strto* read them ------------------------ */

/* The text after a flag's character as a C string (memcached's tokens are
 * NUL-terminated); calls fn on it.  buf is used when it fits. */
static bool meta_num(const struct mc_tok *t, size_t from, bool (*fn)(const char *s, void *out),
                     void *out)
{
    char buf[256];
    size_t n = t->n - from;
    char *s = n < sizeof buf ? buf : malloc(n + 1);
    if (!s)
        return false;
    memcpy(s, t->p + from, n);
    s[n] = '\0';
    bool ok = fn(s, out);
    if (s != buf)
        free(s);
    return ok;
}

/* Whether strto*'s end is one memcached accepts: a blank, or the end after
 * at least one character. */
static bool num_end(const char *s, const char *end)
{
    return isspace((unsigned char)*end) || (*end == '\0' && end != s);
}

/* safe_strtol: a long, kept in 32 bits as memcached keeps it. */
static bool num_i32(const char *s, void *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno == ERANGE || end == s || !num_end(s, end))
        return false;
    *(int32_t *)out = (int32_t)v;
    return true;
}

/* safe_strtoul: an unsigned long, kept in 32 bits as memcached keeps it. */
static bool num_u32(const char *s, void *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno == ERANGE || end == s || !num_end(s, end))
        return false;
    if ((long)v < 0 && strchr(s, '-'))
        return false;
    *(uint32_t *)out = (uint32_t)v;
    return true;
}

/* safe_strtoull */
static bool num_u64(const char *s, void *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || end == s || !num_end(s, end))
        return false;
    if ((long long)v < 0 && strchr(s, '-'))
        return false;
    *(uint64_t *)out = v;
    return true;
}

/* A flag's TTL token: memcached's realtime(EXPTIME_TO_POSITIVE_TIME(v)). */
static bool meta_ttl(const struct mc_tok *t, int64_t now, int64_t *out)
{
    int32_t v;
    if (!meta_num(t, 1, num_i32, &v))
        return false;
    *out = mc_exptime(v, now);
    return true;
}

/* ---- the line and its flags -------------------------------------------- */

#define E_FORMAT "CLIENT_ERROR bad command line format"
#define E_TOKEN "CLIENT_ERROR bad token in command line format"

/* Splits a meta line as memcached does (at most META_TOKENS tokens) and
 * takes its key as it is (meta_preparse decodes a base64 one). */
static void meta_split(struct meta_line *ml, const char *line, size_t len)
{
    ml->n = mc_tok_split(line, len, ml->t, META_TOKENS);
    if (ml->n > META_TOKENS)
        ml->n = META_TOKENS;
    memset(&ml->of, 0, sizeof ml->of);
    ml->nkey = 0;
    if (ml->n >= 2 && ml->t[1].n <= MC_KEY_MAX) {
        memcpy(ml->key, ml->t[1].p, ml->t[1].n);
        ml->nkey = ml->t[1].n;
    }
}

/*
 * memcached's _meta_flag_preparse over tokens [start, n): fills ml->of,
 * decodes a base64 key (b).  Returns NULL, or the error to answer: a repeated
 * or unknown flag stops at once; the other errors are noted and the last one
 * noted is answered ("bad command line format" when none had a text: F).
 */
static const char *meta_preparse(struct meta_line *ml, size_t start, int64_t now)
{
    struct meta_flags *of = &ml->of;
    const char *err = NULL;
    bool failed = false;
    uint8_t seen[127] = {0};
    for (size_t i = start; i < ml->n; i++) {
        const struct mc_tok *t = &ml->t[i];
        uint8_t o = (uint8_t)t->p[0];
        if (o >= 127 || seen[o])
            return "CLIENT_ERROR duplicate flag";
        seen[o] = 1;
        bool ok = true;
        switch (o) {
        case 'b':
            ml->nkey = b64_decode(ml->t[1].p, ml->t[1].n, ml->key);
            if (ml->nkey == 0) {
                err = "CLIENT_ERROR error decoding key";
                failed = true;
            }
            of->key_binary = true;
            break;
        case 'N':
            of->vivify = true;
            if (!(ok = meta_ttl(t, now, &of->autoviv_exptime)))
                err = E_TOKEN;
            break;
        case 'T':
            if (!(ok = meta_ttl(t, now, &of->exptime)))
                err = E_TOKEN;
            of->new_ttl = ok;
            break;
        case 'R':
            if (!(ok = meta_ttl(t, now, &of->recache_time)))
                err = E_TOKEN;
            break;
        case 'l': case 'h': case 'O': case 'P': case 'L':
        case 'k': case 's': case 't': case 'c': case 'f':
            break;
        case 'v': of->value = true; break;
        case 'u': of->no_update = true; break;
        case 'q': of->no_reply = true; break;
        case 'I': of->set_stale = true; break;
        case 'F':
            ok = meta_num(t, 1, num_u32, &of->client_flags); /* error text unchanged */
            break;
        case 'C':
            if (!(ok = meta_num(t, 1, num_u64, &of->req_cas)))
                err = E_TOKEN;
            of->has_cas = ok;
            break;
        case 'E': /* memcached 1.6.24's: the cas an item made or changed takes */
            if (!(ok = meta_num(t, 1, num_u64, &of->cas_in)))
                err = E_TOKEN;
            of->has_cas_in = ok;
            break;
        case 'M':
            if (t->n != 2) {
                err = "CLIENT_ERROR incorrect length for M token";
                ok = false;
            } else {
                of->mode = t->p[1];
            }
            break;
        case 'J':
            if (!(ok = meta_num(t, 1, num_u64, &of->initial)))
                err = "CLIENT_ERROR invalid numeric initial value";
            break;
        case 'D':
            if (!(ok = meta_num(t, 1, num_u64, &of->delta)))
                err = "CLIENT_ERROR invalid numeric delta value";
            break;
        default:
            return "CLIENT_ERROR invalid flag";
        }
        failed |= !ok;
    }
    return failed ? (err ? err : E_FORMAT) : NULL;
}

/* The checks every keyed meta command starts with; the error, or NULL.
 * too_long is the command's wording of the flag limit. */
static const char *meta_head(const struct meta_line *ml, const char *too_long)
{
    if (ml->n < 2)
        return "ERROR";
    if (ml->t[1].n > MC_KEY_MAX)
        return E_FORMAT;
    if (ml->n > META_TOKENS_MAX)
        return too_long;
    return NULL;
}

static void meta_error(wharf_conn *c, const char *err)
{
    mc_send(c, err, strlen(err));
    REPLY(c, "\r\n");
}

static struct mc_meta_req meta_req(const struct meta_flags *of, bool bump)
{
    struct mc_meta_req r = {
        .vivify = of->vivify,
        .bump = bump,
        .cas_in = of->has_cas_in ? of->cas_in : 0,
        .mflags = of->key_binary ? MC_ITEM_KEY_BINARY : 0,
    };
    return r;
}

/* Appends " O.." and " k.." for the tokens from `from` that ask for them
 * (the answers without an item); false when an opaque is too long. */
static bool out_opaque_key(struct meta_out *o, const struct meta_line *ml, size_t from)
{
    for (size_t i = from; i < ml->n; i++) {
        if (ml->t[i].p[0] == 'O' && !out_opaque(o, &ml->t[i]))
            return false;
        if (ml->t[i].p[0] == 'k')
            out_key(o, ml->key, ml->nkey, ml->of.key_binary);
    }
    return true;
}

#define E_OPAQUE "CLIENT_ERROR opaque token too long"

/* ---- mg ------------------------------------------------------------------ */

struct mg_ctx {
    wharf_conn *c;
    const struct meta_line *ml;
    int64_t now;
    bool ttl_set;
    bool failed;     /* an opaque too long */
    uint32_t nbytes; /* the hit's value length */
};

static void out_ttl(struct meta_out *o, const struct mc_item *it, int64_t now)
{
    out_add(o, " t", 2);
    if (it->exptime == 0)
        out_add(o, "-1", 2);
    else
        out_u64(o, (uint32_t)(it->exptime - now));
}

/* The hit's answer, sent under the item's lock (the value is copied out). */
static bool mg_found(struct mc_item *it, bool created, void *arg)
{
    struct mg_ctx *g = arg;
    const struct meta_line *ml = g->ml;
    const struct meta_flags *of = &ml->of;
    struct meta_out o = {.len = 0};
    bool won = false;
    g->nbytes = it->nbytes;
    if (of->value) {
        out_str(&o, "VA ");
        out_u64(&o, it->nbytes);
    } else {
        out_str(&o, "HD");
    }
    for (size_t i = 2; i < ml->n; i++) {
        switch (ml->t[i].p[0]) {
        case 'T':
            g->ttl_set = true;
            it->exptime = of->exptime;
            break;
        case 'N':
            if (created) {
                it->exptime = of->autoviv_exptime;
                won = true;
            }
            break;
        case 'R':
            if (!(it->mflags & MC_ITEM_TOKEN_SENT) && !created && it->exptime != 0 &&
                it->exptime < of->recache_time)
                won = true;
            break;
        case 's': out_flag_u64(&o, 's', it->nbytes); break;
        case 't': out_ttl(&o, it, g->now); break;
        case 'c': out_flag_u64(&o, 'c', it->cas); break;
        case 'f': out_flag_u64(&o, 'f', it->flags); break;
        case 'l': out_flag_u64(&o, 'l', (uint32_t)mc_item_idle(it, g->now)); break;
        case 'h': out_flag_u64(&o, 'h', it->fetched ? 1 : 0); break;
        case 'O':
            if (!out_opaque(&o, &ml->t[i])) {
                g->failed = true;
                return false;
            }
            break;
        case 'k':
            out_key(&o, mc_item_key(it), it->nkey, it->mflags & MC_ITEM_KEY_BINARY);
            break;
        }
    }
    /* Z before W, never both: the order memcached writes them in. */
    if (it->mflags & MC_ITEM_TOKEN_SENT)
        out_str(&o, " Z");
    if (it->mflags & MC_ITEM_STALE) {
        out_str(&o, " X");
        if (!(it->mflags & MC_ITEM_TOKEN_SENT))
            won = true;
    }
    if (won) {
        out_str(&o, " W");
        it->mflags |= MC_ITEM_TOKEN_SENT;
    }
    out_add(&o, "\r\n", 2);
    meta_send(g->c, &o);
    if (of->value)
        mc_send(g->c, mc_item_value(it), (size_t)it->nbytes + 2);
    return true;
}

static void meta_mg(wharf_conn *c, struct mc_conn *mc, struct meta_line *ml, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    const char *err = meta_head(ml, "CLIENT_ERROR options flags are too long");
    if (!err)
        err = meta_preparse(ml, 2, now);
    if (err) {
        meta_error(c, err);
        return;
    }
    struct mg_ctx g = {c, ml, now, false, false, 0};
    struct mc_meta_req req = meta_req(&ml->of, !ml->of.no_update);
    enum mc_result r = mc_store_meta_get(l->store, ml->key, ml->nkey, now, &req, mg_found, &g);
    mc_ops_fetched(c, mc, ml->key, ml->nkey, r == MC_NOT_FOUND ? r : MC_FOUND, g.nbytes,
                   g.ttl_set);
    if (g.failed) {
        meta_error(c, E_OPAQUE);
        return;
    }
    if (r != MC_NOT_FOUND) {
        if (g.ttl_set) {
            wharf_counter_add(&mc->w->cnt[C_CMD_TOUCH], 1);
            wharf_counter_add(&mc->w->cnt[C_TOUCH_HITS], 1);
        } else {
            wharf_counter_add(&mc->w->cnt[C_CMD_GET], 1);
            wharf_counter_add(&mc->w->cnt[C_GET_HITS], 1);
        }
        return;
    }
    wharf_counter_add(&mc->w->cnt[C_CMD_GET], 1);
    wharf_counter_add(&mc->w->cnt[C_GET_MISSES], 1);
    struct meta_out o = {.len = 0};
    out_str(&o, "EN");
    if (!out_opaque_key(&o, ml, 2)) {
        meta_error(c, E_OPAQUE);
        return;
    }
    out_add(&o, "\r\n", 2);
    if (!ml->of.no_reply)
        meta_send(c, &o);
}

/* ---- ms ------------------------------------------------------------------ */

enum ms_verdict {
    MSET_BODY,      /* read the data block and store it */
    MSET_ERROR,     /* answer err; the data (if any) is read as commands */
    MSET_SWALLOW,   /* answer err and drop the data block */
    MSET_TOO_LARGE, /* as MSET_SWALLOW, and unlink the key (memcached's failed alloc) */
};

/* The ms line's verdict; sets *vlen (datalen + 2), *mode and *err. */
static enum ms_verdict ms_parse(const struct mc_listener *l, struct meta_line *ml, int64_t now,
                                uint64_t *vlen, enum mc_store_mode *mode, const char **err)
{
    *err = meta_head(ml, "CLIENT_ERROR options flags too long");
    if (!*err && ml->n == 2)
        *err = E_FORMAT;
    if (*err)
        return MSET_ERROR;
    int32_t dl;
    if (!meta_num(&ml->t[2], 0, num_i32, &dl) || dl < 0 || dl > INT_MAX - 2) {
        *err = E_FORMAT;
        return MSET_ERROR;
    }
    *vlen = (uint64_t)dl + 2;
    if ((*err = meta_preparse(ml, 3, now)) != NULL)
        return MSET_SWALLOW;
    for (size_t i = 2; i < ml->n; i++)
        if (ml->t[i].p[0] == 'O' && ml->t[i].n > META_OPAQUE_MAX)
            *err = E_OPAQUE;
    switch (ml->of.mode) {
    case 0:
    case 'S': *mode = MC_SET; break;
    case 'E': *mode = MC_ADD; break;
    case 'A': *mode = MC_APPEND; break;
    case 'P': *mode = MC_PREPEND; break;
    case 'R': *mode = MC_REPLACE; break;
    default:
        *err = "CLIENT_ERROR invalid mode for ms M token";
        return MSET_SWALLOW;
    }
    if (ml->of.has_cas && (*mode == MC_SET || *mode == MC_REPLACE))
        *mode = MC_CAS;
    if (*err)
        return MSET_SWALLOW;
    if ((uint64_t)dl > l->item_max) {
        *err = "SERVER_ERROR object too large for cache";
        return MSET_TOO_LARGE;
    }
    return MSET_BODY;
}

long long mc_meta_body_length(const struct mc_listener *l, const char *line, size_t len)
{
    struct meta_line ml;
    meta_split(&ml, line, len);
    if (ml.n < 1 || !mc_tok_is(&ml.t[0], "ms"))
        return -1;
    uint64_t vlen;
    enum mc_store_mode mode;
    const char *err;
    /* The same clock as the command's own parse: only TTLs depend on it,
     * and they do not change the verdict. */
    if (ms_parse(l, &ml, 0, &vlen, &mode, &err) != MSET_BODY)
        return -1;
    return (long long)vlen;
}

/* HD/NS/EX/NF and the flags ms asked for (memcached's _finalize_mset). */
static void ms_answer(wharf_conn *c, const struct meta_line *ml, enum mc_result r, uint64_t cas)
{
    struct meta_out o = {.len = 0};
    switch (r) {
    case MC_STORED:
        if (ml->of.no_reply)
            return;
        out_str(&o, "HD");
        break;
    case MC_EXISTS: out_str(&o, "EX"); break;
    case MC_NOT_FOUND: out_str(&o, "NF"); break;
    case MC_NOT_STORED: out_str(&o, "NS"); break;
    case MC_TOO_LARGE: meta_error(c, "SERVER_ERROR object too large for cache"); return;
    default: meta_error(c, "SERVER_ERROR out of memory storing object"); return;
    }
    for (size_t i = 2; i < ml->n; i++) {
        switch (ml->t[i].p[0]) {
        case 'O': out_opaque(&o, &ml->t[i]); break;
        case 'k': out_key(&o, ml->key, ml->nkey, ml->of.key_binary); break;
        case 'c': out_flag_u64(&o, 'c', r == MC_STORED ? cas : 0); break;
        }
    }
    out_add(&o, "\r\n", 2);
    meta_send(c, &o);
}

static void meta_ms(wharf_conn *c, struct mc_conn *mc, struct meta_line *ml,
                    const struct wharf_frame *fr, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    uint64_t vlen = 0;
    enum mc_store_mode mode = MC_SET;
    const char *err;
    enum ms_verdict v = ms_parse(l, ml, now, &vlen, &mode, &err);
    if (v == MSET_BODY && fr->payload_len != vlen)
        v = MSET_SWALLOW, err = E_FORMAT; /* cannot happen: the framing read vlen */
    if (v != MSET_BODY) {
        meta_error(c, err);
        if (v == MSET_TOO_LARGE) {
            wharf_counter_add(&mc->w->cnt[C_STORE_TOO_LARGE], 1);
            mc_store_delete(l->store, ml->key, ml->nkey, now);
        }
        if (v != MSET_ERROR)
            mc->swallow = vlen;
        return;
    }
    const char *body = fr->payload;
    wharf_counter_add(&mc->w->cnt[C_CMD_SET], 1);
    mc_stats_class(mc, SC_CMD_SET, ml->nkey, (size_t)(vlen - 2));
    mc_ops_storing(c, ml->key, ml->nkey, now);
    if (body[vlen - 2] != '\r' || body[vlen - 1] != '\n') {
        meta_error(c, "CLIENT_ERROR bad data chunk");
        return;
    }
    const struct meta_flags *of = &ml->of;
    struct mc_meta_set ms = {
        .mode = mode,
        .flags = of->client_flags,
        .exptime = of->exptime,
        .cas = of->has_cas ? of->req_cas : 0,
        .invalidate = of->set_stale,
        .cas_in = of->has_cas_in ? of->cas_in : 0,
        .mflags = of->key_binary ? MC_ITEM_KEY_BINARY : 0,
    };
    uint64_t cas = 0;
    enum mc_result r = mc_store_meta_set(l->store, ml->key, ml->nkey, &ms, body, vlen - 2, now,
                                         &cas);
    mc_ops_stored(c, mc, ml->key, ml->nkey, mode, of->exptime, (size_t)(vlen - 2), r, now);
    if (mode == MC_CAS && (r == MC_STORED || r == MC_EXISTS || r == MC_NOT_FOUND))
        wharf_counter_add(&mc->w->cnt[r == MC_STORED   ? C_CAS_HITS
                                      : r == MC_EXISTS ? C_CAS_BADVAL
                                                       : C_CAS_MISSES],
                          1);
    if (r == MC_NO_MEMORY)
        wharf_counter_add(&mc->w->cnt[C_STORE_NO_MEMORY], 1);
    if (r == MC_TOO_LARGE)
        wharf_counter_add(&mc->w->cnt[C_STORE_TOO_LARGE], 1);
    ms_answer(c, ml, r, cas);
}

/* ---- md ------------------------------------------------------------------ */

static void meta_md(wharf_conn *c, struct mc_conn *mc, struct meta_line *ml, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    const char *err = meta_head(ml, "CLIENT_ERROR options flags too long");
    if (!err && meta_preparse(ml, 2, now))
        err = "CLIENT_ERROR invalid or duplicate flag";
    if (err) {
        meta_error(c, err);
        return;
    }
    struct meta_out o = {.len = 2}; /* the code goes in front */
    if (!out_opaque_key(&o, ml, 2)) {
        meta_error(c, E_OPAQUE);
        return;
    }
    const struct meta_flags *of = &ml->of;
    mc_stats_detail(l->sh, ml->key, ml->nkey, MD_DEL);
    mc_ops_watch_lookup(c, ml->key, ml->nkey, now);
    enum mc_result r = mc_store_meta_delete(l->store, ml->key, ml->nkey, of->has_cas,
                                            of->req_cas, of->set_stale, of->new_ttl,
                                            of->exptime, of->has_cas_in ? of->cas_in : 0, now);
    if (r != MC_FOUND || !of->set_stale)
        wharf_counter_add(&mc->w->cnt[r == MC_FOUND ? C_DELETE_HITS : C_DELETE_MISSES], 1);
    if (r == MC_FOUND && of->no_reply)
        return;
    memcpy(o.buf, r == MC_FOUND ? "HD" : r == MC_EXISTS ? "EX" : "NF", 2);
    out_add(&o, "\r\n", 2);
    meta_send(c, &o);
}

/* ---- ma ------------------------------------------------------------------ */

struct ma_ctx {
    const struct meta_line *ml;
    struct meta_out o; /* from the first flag on */
    int64_t now;
    bool failed;       /* an opaque too long */
};

/* The flags of a hit (or an item made): c t T N O k, in their order. */
static bool ma_found(struct mc_item *it, bool created, void *arg)
{
    struct ma_ctx *a = arg;
    const struct meta_line *ml = a->ml;
    for (size_t i = 2; i < ml->n; i++) {
        switch (ml->t[i].p[0]) {
        case 'c': out_flag_u64(&a->o, 'c', it->cas); break;
        case 't': out_ttl(&a->o, it, a->now); break;
        case 'T': it->exptime = ml->of.exptime; break;
        case 'N':
            if (created)
                it->exptime = ml->of.autoviv_exptime;
            break;
        case 'O':
            if (!out_opaque(&a->o, &ml->t[i])) {
                a->failed = true;
                return false;
            }
            break;
        case 'k': out_key(&a->o, ml->key, ml->nkey, ml->of.key_binary); break;
        }
    }
    return true;
}

static void meta_ma(wharf_conn *c, struct mc_conn *mc, struct meta_line *ml, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    const char *err = meta_head(ml, "CLIENT_ERROR options flags too long");
    ml->of.delta = 1; /* without D */
    if (!err && meta_preparse(ml, 2, now))
        err = "CLIENT_ERROR invalid or duplicate flag";
    const struct meta_flags *of = &ml->of;
    bool incr = true;
    if (!err) {
        switch (of->mode) {
        case 0: case 'I': case '+': break;
        case 'D': case '-': incr = false; break;
        default: err = "CLIENT_ERROR invalid mode for ma M token"; break;
        }
    }
    if (err) {
        meta_error(c, err);
        return;
    }
    struct ma_ctx a = {.ml = ml, .o = {.len = 0}, .now = now, .failed = false};
    struct mc_meta_req req = meta_req(of, false);
    uint64_t v = 0;
    mc_ops_watch_lookup(c, ml->key, ml->nkey, now);
    enum mc_result r = mc_store_meta_delta(l->store, ml->key, ml->nkey, incr, of->delta,
                                           of->req_cas, of->initial, &req, now, &v, ma_found,
                                           &a);
    if (r == MC_FOUND || r == MC_NOT_FOUND)
        wharf_counter_add(&mc->w->cnt[incr ? (r == MC_FOUND ? C_INCR_HITS : C_INCR_MISSES)
                                           : (r == MC_FOUND ? C_DECR_HITS : C_DECR_MISSES)],
                          1);
    struct meta_out o = {.len = 0};
    switch (r) {
    case MC_FOUND:
    case MC_STORED: {
        if (a.failed) {
            meta_error(c, E_OPAQUE);
            return;
        }
        if (r == MC_FOUND && of->no_reply)
            return;
        char num[24];
        size_t nl = (size_t)(mc_put_u64(num, v) - num);
        if (of->value) {
            out_str(&o, "VA ");
            out_u64(&o, nl);
        } else {
            out_str(&o, "HD");
        }
        out_add(&o, a.o.buf, a.o.len);
        if (of->value) {
            out_add(&o, "\r\n", 2);
            out_add(&o, num, nl);
        }
        break;
    }
    case MC_NOT_FOUND:
    case MC_EXISTS:
        out_str(&o, r == MC_NOT_FOUND ? "NF" : "EX");
        if (!out_opaque_key(&o, ml, 2)) {
            meta_error(c, E_OPAQUE);
            return;
        }
        break;
    case MC_NON_NUMERIC:
        meta_error(c, "CLIENT_ERROR cannot increment or decrement non-numeric value");
        return;
    default:
        meta_error(c, of->vivify ? "SERVER_ERROR Out of memory allocating new item"
                                 : "SERVER_ERROR out of memory");
        return;
    }
    out_add(&o, "\r\n", 2);
    meta_send(c, &o);
}

/* ---- me ------------------------------------------------------------------ */

struct me_ctx {
    wharf_conn *c;
    int64_t now;
};

/* memcached's debug line, with wharf's fields (docs/memcache.md): exp is
 * the TTL left (-1: none), la the seconds since the last fetch, cls 0 (no
 * slab classes here), size what the item counts against memory_limit. */
static bool me_found(struct mc_item *it, bool created, void *arg)
{
    (void)created;
    struct me_ctx *e = arg;
    struct meta_out o = {.len = 0};
    out_str(&o, "ME ");
    if (it->mflags & MC_ITEM_KEY_BINARY)
        out_b64(&o, mc_item_key(it), it->nkey);
    else
        out_add(&o, mc_item_key(it), it->nkey);
    out_str(&o, " exp=");
    if (it->exptime == 0) {
        out_str(&o, "-1");
    } else {
        int64_t left = it->exptime - e->now;
        if (left < 0) {
            out_str(&o, "-");
            left = -left;
        }
        out_u64(&o, (uint64_t)left);
    }
    out_str(&o, " la=");
    out_u64(&o, (uint64_t)mc_item_idle(it, e->now));
    out_str(&o, " cas=");
    out_u64(&o, it->cas);
    out_str(&o, it->fetched ? " fetch=yes" : " fetch=no");
    out_str(&o, " cls=0 size=");
    out_u64(&o, mc_item_cost(it->nkey, it->nbytes));
    out_add(&o, "\r\n", 2);
    meta_send(e->c, &o);
    return true;
}

static void meta_me(wharf_conn *c, struct meta_line *ml, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    if (ml->n < 2 || ml->t[1].n > MC_KEY_MAX) {
        meta_error(c, E_FORMAT);
        return;
    }
    if (ml->n >= 3 && mc_tok_is(&ml->t[2], "b")) {
        ml->nkey = b64_decode(ml->t[1].p, ml->t[1].n, ml->key);
        if (ml->nkey == 0) {
            meta_error(c, E_FORMAT);
            return;
        }
    }
    struct me_ctx e = {c, now};
    struct mc_meta_req req = {.bump = false};
    if (mc_store_meta_get(l->store, ml->key, ml->nkey, now, &req, me_found, &e) == MC_NOT_FOUND)
        REPLY(c, "EN\r\n");
}

/* ---- dispatch ------------------------------------------------------------ */

bool mc_meta_is(const char *line, size_t len)
{
    /* The first token is two bytes, the first 'm' (without splitting the
     * line: this runs for every command). */
    size_t i = 0;
    while (i < len && line[i] == ' ')
        i++;
    return len - i >= 2 && line[i] == 'm' && line[i + 1] != ' ' &&
           (len - i == 2 || line[i + 2] == ' ');
}

void mc_meta_command(wharf_conn *c, struct mc_conn *mc, const struct wharf_frame *fr,
                     int64_t now)
{
    struct meta_line ml;
    meta_split(&ml, fr->header, fr->header_len);
    switch (ml.t[0].p[1]) {
    case 'g': meta_mg(c, mc, &ml, now); break;
    case 's': meta_ms(c, mc, &ml, fr, now); break;
    case 'd': meta_md(c, mc, &ml, now); break;
    case 'a': meta_ma(c, mc, &ml, now); break;
    case 'e': meta_me(c, &ml, now); break;
    case 'n': REPLY(c, "MN\r\n"); break;
    default: REPLY(c, "ERROR\r\n"); break;
    }
}
