/*
 * mc_binary.c - memcached's binary protocol (requests with magic 0x80,
 * responses with 0x81), answered as memcached 1.6.18's proto_bin.c answers
 * it, for the connections whose first byte is 0x80: memcache.c's on_data
 * hands those here for their whole life (mc_binary_detect, memcache.h).
 *
 * A request is a 24-byte header (magic, opcode, key length, extras length,
 * data type, vbucket, body length, opaque, cas) and a body of extras, key
 * and value.  Framing, as memcached frames it:
 *  - a bad magic closes the connection without an answer;
 *  - nothing is done until the header, extras and key are in (at most
 *    24 + 255 + 65535 bytes); then a body shorter than key + extras is
 *    answered "Unknown command" and a key over 250 bytes "Invalid
 *    arguments", and both close the connection, as does a command whose
 *    extras, key or body lengths are wrong for it;
 *  - a storage command's value is waited for whole only when it fits
 *    item_size_max (gathered by mc_pending_start when it comes in several
 *    reads, whatever the listener's max_input); a larger one is answered "Too large." and its bytes are
 *    dropped as they arrive (bin_swallow), never buffered; an unknown
 *    opcode's body is dropped the same way;
 *  - stat, touch and gat read only their extras and key, as memcached does
 *    (a longer body is taken for the next request).
 * Quiet opcodes (getq, setq, ...) send nothing on success (a getq nothing
 * on a miss either); their errors are sent.  The opaque is echoed as it
 * came; the cas of a response is the item's after a store, get or incr.
 *
 * Back-pressure as on the ASCII side: no new request is taken while the
 * connection has MC_OUTPUT_YIELD bytes of output pending; what was consumed
 * is returned and the rest is offered again once output drains.
 *
 * "stat" reuses the ASCII "stats" of mc_stats.c: mc_send appends what it
 * would send to a capture buffer (struct mc_capture), whose "STAT name
 * value" lines become one packet each, then the empty packet that ends a
 * stat answer.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memcache.h"

#define BIN_HEADER 24
#define BIN_CLOSED ((size_t)-1)
#define BIN_STATS_MAX (4u << 20) /* a stat answer larger than this: out of memory */

enum bin_opcode {
    OP_GET = 0x00, OP_SET = 0x01, OP_ADD = 0x02, OP_REPLACE = 0x03, OP_DELETE = 0x04,
    OP_INCR = 0x05, OP_DECR = 0x06, OP_QUIT = 0x07, OP_FLUSH = 0x08, OP_GETQ = 0x09,
    OP_NOOP = 0x0a, OP_VERSION = 0x0b, OP_GETK = 0x0c, OP_GETKQ = 0x0d, OP_APPEND = 0x0e,
    OP_PREPEND = 0x0f, OP_STAT = 0x10, OP_SETQ = 0x11, OP_ADDQ = 0x12, OP_REPLACEQ = 0x13,
    OP_DELETEQ = 0x14, OP_INCRQ = 0x15, OP_DECRQ = 0x16, OP_QUITQ = 0x17, OP_FLUSHQ = 0x18,
    OP_APPENDQ = 0x19, OP_PREPENDQ = 0x1a, OP_TOUCH = 0x1c, OP_GAT = 0x1d, OP_GATQ = 0x1e,
    OP_SASL_LIST = 0x20, OP_SASL_AUTH = 0x21, OP_SASL_STEP = 0x22, OP_GATK = 0x23,
    OP_GATKQ = 0x24,
};

enum bin_status {
    ST_OK = 0x00, ST_ENOENT = 0x01, ST_EEXISTS = 0x02, ST_E2BIG = 0x03, ST_EINVAL = 0x04,
    ST_NOT_STORED = 0x05, ST_DELTA_BADVAL = 0x06, ST_UNKNOWN = 0x81, ST_ENOMEM = 0x82,
};

/* One request: its header (host order) and where its body lies. */
struct bin_req {
    uint8_t opcode;       /* as sent (echoed in the answer) */
    uint8_t cmd;          /* the opcode with quiet forms mapped to loud ones */
    bool quiet;
    uint8_t extlen;
    uint16_t keylen;
    uint32_t bodylen;
    unsigned char opaque[4]; /* echoed byte for byte */
    uint64_t cas;
    const unsigned char *ext, *key, *value;
    uint32_t vlen;        /* bodylen - extlen - keylen */
};

/* What mc_send collects while a stat runs (mc->capture). */
struct mc_capture {
    char *p;
    size_t n, cap;
    bool failed;
};

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

/* Writes a response header for rq at h. */
static void put_header(unsigned char *h, uint8_t opcode, const unsigned char opaque[4],
                       uint16_t status, uint8_t extlen, uint16_t keylen, uint32_t bodylen,
                       uint64_t cas)
{
    h[0] = 0x81;
    h[1] = opcode;
    put_be(h + 2, keylen, 2);
    h[4] = extlen;
    h[5] = 0; /* raw bytes */
    put_be(h + 6, status, 2);
    put_be(h + 8, bodylen, 4);
    memcpy(h + 12, opaque, 4);
    put_be(h + 16, cas, 8);
}

/* Sends one response: header, extras, key, value (one send when small). */
static void respond(wharf_conn *c, const struct bin_req *rq, uint16_t status, uint64_t cas,
                    const void *ext, uint8_t extlen, const void *key, uint16_t keylen,
                    const void *val, uint32_t vlen)
{
    unsigned char buf[1024];
    put_header(buf, rq->opcode, rq->opaque, status, extlen, keylen,
               (uint32_t)extlen + keylen + vlen, cas);
    size_t n = BIN_HEADER;
    if (extlen) { /* at most 4 bytes (flags) */
        memcpy(buf + n, ext, extlen);
        n += extlen;
    }
    if (keylen && n + keylen + vlen > sizeof buf) { /* a long stat name */
        mc_send(c, buf, n);
        mc_send(c, key, keylen);
        n = 0;
    } else if (keylen) {
        memcpy(buf + n, key, keylen);
        n += keylen;
    }
    if (vlen && n + vlen <= sizeof buf) {
        memcpy(buf + n, val, vlen);
        n += vlen;
        vlen = 0;
    }
    if (n)
        mc_send(c, buf, n);
    if (vlen)
        mc_send(c, val, vlen);
}

/* An error answer: status and text (memcached's text for it when NULL).
 * Sent for quiet opcodes too. */
static void bin_error(wharf_conn *c, const struct bin_req *rq, uint16_t status, const char *text)
{
    if (!text) {
        switch (status) {
        case ST_ENOENT: text = "Not found"; break;
        case ST_EEXISTS: text = "Data exists for key."; break;
        case ST_E2BIG: text = "Too large."; break;
        case ST_EINVAL: text = "Invalid arguments"; break;
        case ST_NOT_STORED: text = "Not stored."; break;
        case ST_DELTA_BADVAL: text = "Non-numeric server-side value for incr or decr"; break;
        case ST_UNKNOWN: text = "Unknown command"; break;
        default: text = "Out of memory"; break;
        }
    }
    respond(c, rq, status, 0, NULL, 0, NULL, 0, text, (uint32_t)strlen(text));
}

/* A success answer, unless the opcode is quiet. */
static void bin_ok(wharf_conn *c, const struct bin_req *rq, uint64_t cas, const void *val,
                   uint32_t vlen)
{
    if (!rq->quiet)
        respond(c, rq, ST_OK, cas, NULL, 0, NULL, 0, val, vlen);
}

/* "Invalid arguments", then the connection closes (memcached's protocol
 * error). */
static size_t bin_protocol_error(wharf_conn *c, const struct bin_req *rq)
{
    bin_error(c, rq, ST_EINVAL, NULL);
    wharf_close(c);
    return BIN_CLOSED;
}

static void count(struct mc_conn *mc, enum mc_counter i)
{
    wharf_counter_add(&mc->w->cnt[i], 1);
}

/* ---- retrieval: get, getk, touch, gat, gatk and their quiet forms ---- */

struct bin_get {
    wharf_conn *c;
    const struct bin_req *rq;
    bool with_key, with_value;
    uint32_t nbytes; /* the hit's value length */
};

/* Sends a hit: flags in the extras, the key for getk/gatk, the value but
 * for touch (the item's shard locked). */
static void bin_emit_item(const struct mc_item *it, void *arg)
{
    struct bin_get *g = arg;
    g->nbytes = it->nbytes;
    unsigned char flags[4];
    put_be(flags, it->flags, 4);
    respond(g->c, g->rq, ST_OK, it->cas, flags, 4, mc_item_key(it),
            g->with_key ? it->nkey : 0, mc_item_value(it), g->with_value ? it->nbytes : 0);
}

static void bin_get(wharf_conn *c, struct mc_conn *mc, const struct bin_req *rq, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    bool touch = rq->cmd == OP_TOUCH || rq->cmd == OP_GAT || rq->cmd == OP_GATK;
    struct bin_get g = {c, rq, rq->cmd == OP_GETK || rq->cmd == OP_GATK, rq->cmd != OP_TOUCH, 0};
    int64_t exptime = touch ? mc_exptime(get_be32(rq->ext), now) : 0;
    enum mc_result r = mc_store_get(l->store, (const char *)rq->key, rq->keylen, now, touch,
                                    exptime, bin_emit_item, &g);
    mc_ops_fetched(c, mc, (const char *)rq->key, rq->keylen, r, g.nbytes, touch);
    count(mc, touch ? C_CMD_TOUCH : C_CMD_GET);
    if (r == MC_FOUND) {
        count(mc, touch ? C_TOUCH_HITS : C_GET_HITS);
        return;
    }
    count(mc, touch ? C_TOUCH_MISSES : C_GET_MISSES);
    if (rq->quiet)
        return;
    if (g.with_key) /* the key alone as the body */
        respond(c, rq, ST_ENOENT, 0, NULL, 0, rq->key, rq->keylen, NULL, 0);
    else
        bin_error(c, rq, ST_ENOENT, NULL);
}

/* ---- storage: set, add, replace (extras: flags, exptime), append, prepend ---- */

static void bin_store(wharf_conn *c, struct mc_conn *mc, const struct bin_req *rq, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    bool concat = rq->cmd == OP_APPEND || rq->cmd == OP_PREPEND;
    enum mc_store_mode mode = rq->cmd == OP_APPEND    ? MC_APPEND
                              : rq->cmd == OP_PREPEND ? MC_PREPEND
                              : rq->cas               ? MC_CAS /* any of set/add/replace */
                              : rq->cmd == OP_ADD     ? MC_ADD
                              : rq->cmd == OP_REPLACE ? MC_REPLACE
                                                      : MC_SET;
    uint32_t flags = concat ? 0 : get_be32(rq->ext);
    int64_t exptime = concat ? 0 : mc_exptime(get_be32(rq->ext + 4), now);
    uint64_t cas = 0;
    const char *key = (const char *)rq->key;
    mc_stats_class(mc, SC_CMD_SET, rq->keylen, rq->vlen);
    mc_ops_storing(c, key, rq->keylen, now);
    enum mc_result r = mc_store_store_cas(l->store, mode, key, rq->keylen, flags, exptime,
                                          (const char *)rq->value, rq->vlen, rq->cas, now, &cas);
    mc_ops_stored(c, mc, key, rq->keylen, mode, exptime, rq->vlen, r, now);
    count(mc, C_CMD_SET);
    if (mode == MC_CAS)
        count(mc, r == MC_STORED ? C_CAS_HITS : r == MC_EXISTS ? C_CAS_BADVAL : C_CAS_MISSES);
    if (r == MC_NO_MEMORY)
        count(mc, C_STORE_NO_MEMORY);
    switch (r) {
    case MC_STORED: bin_ok(c, rq, cas, NULL, 0); return;
    case MC_EXISTS: bin_error(c, rq, ST_EEXISTS, NULL); return;
    case MC_NOT_FOUND: bin_error(c, rq, ST_ENOENT, NULL); return;
    case MC_NO_MEMORY:
        if (!concat) { /* where memcached fails to allocate the item */
            bin_error(c, rq, ST_ENOMEM, "Out of memory allocating item");
            return;
        }
        break;
    default: break;
    }
    bin_error(c, rq, mode == MC_ADD ? ST_EEXISTS : mode == MC_REPLACE ? ST_ENOENT : ST_NOT_STORED,
              NULL);
}

/* ---- delete, incr/decr, flush -------------------------------------------- */

static void bin_delete(wharf_conn *c, struct mc_conn *mc, const struct bin_req *rq, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    mc_stats_detail(l->sh, (const char *)rq->key, rq->keylen, MD_DEL);
    mc_ops_watch_lookup(c, (const char *)rq->key, rq->keylen, now);
    enum mc_result r = mc_store_delete_cas(l->store, (const char *)rq->key, rq->keylen, rq->cas,
                                           now);
    if (r == MC_FOUND) {
        count(mc, C_DELETE_HITS);
        bin_ok(c, rq, 0, NULL, 0);
    } else if (r == MC_EXISTS) {
        bin_error(c, rq, ST_EEXISTS, NULL);
    } else {
        count(mc, C_DELETE_MISSES);
        bin_error(c, rq, ST_ENOENT, NULL);
    }
}

/* Extras: delta, initial value (both 64-bit), expiration; a miss creates
 * the initial value unless the expiration is 0xffffffff. */
static void bin_delta(wharf_conn *c, struct mc_conn *mc, const struct bin_req *rq, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    bool incr = rq->cmd == OP_INCR;
    uint64_t delta = get_be64(rq->ext), initial = get_be64(rq->ext + 8);
    uint32_t expiration = get_be32(rq->ext + 16);
    uint64_t v = 0, cas = rq->cas;
    unsigned char out[8];
    const char *key = (const char *)rq->key;
    mc_ops_watch_lookup(c, key, rq->keylen, now);
    enum mc_result r = mc_store_delta_cas(l->store, key, rq->keylen, incr, delta, now, &v, &cas);
    switch (r) {
    case MC_FOUND:
        count(mc, incr ? C_INCR_HITS : C_DECR_HITS);
        put_be(out, v, 8);
        bin_ok(c, rq, cas, out, 8);
        return;
    case MC_NON_NUMERIC: bin_error(c, rq, ST_DELTA_BADVAL, NULL); return;
    case MC_EXISTS: bin_error(c, rq, ST_EEXISTS, NULL); return;
    case MC_NOT_FOUND: break;
    default: bin_error(c, rq, ST_ENOMEM, "Out of memory incrementing value"); return;
    }
    if (expiration == 0xffffffffu) {
        count(mc, incr ? C_INCR_MISSES : C_DECR_MISSES);
        bin_error(c, rq, ST_ENOENT, NULL);
        return;
    }
    char num[24];
    size_t n = (size_t)(mc_put_u64(num, initial) - num);
    r = mc_store_store_cas(l->store, MC_ADD, key, rq->keylen, 0, mc_exptime(expiration, now),
                           num, n, 0, now, &cas);
    if (r == MC_STORED) {
        put_be(out, initial, 8);
        bin_ok(c, rq, cas, out, 8);
    } else if (r == MC_NOT_STORED) {
        bin_error(c, rq, ST_NOT_STORED, NULL);
    } else {
        bin_error(c, rq, ST_ENOMEM, "Out of memory allocating new item");
    }
}

static void bin_flush(wharf_conn *c, struct mc_conn *mc, const struct bin_req *rq, int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    int64_t delay = rq->extlen == 4 ? get_be32(rq->ext) : 0;
    mc_store_flush(l->store, delay > 0 ? mc_exptime(delay, now) : now, now);
    count(mc, C_CMD_FLUSH);
    bin_ok(c, rq, 0, NULL, 0);
}

/* ---- stat ------------------------------------------------------------------ */

void mc_binary_capture(struct mc_conn *mc, const void *p, size_t n)
{
    struct mc_capture *cp = mc->capture;
    if (cp->failed)
        return;
    if (n > BIN_STATS_MAX - cp->n) {
        cp->failed = true;
        return;
    }
    if (cp->n + n > cp->cap) {
        size_t cap = cp->cap ? cp->cap : 4096;
        while (cap < cp->n + n)
            cap *= 2;
        char *q = realloc(cp->p, cap);
        if (!q) {
            cp->failed = true;
            return;
        }
        cp->p = q;
        cp->cap = cap;
    }
    memcpy(cp->p + cp->n, p, n);
    cp->n += n;
}

static bool starts(const char *s, size_t n, const char *lit)
{
    size_t ln = strlen(lit);
    return n >= ln && memcmp(s, lit, ln) == 0;
}

/* One stat packet (key and value; both empty: the end of the answer). */
static void stat_packet(wharf_conn *c, const struct bin_req *rq, const char *k, size_t kn,
                        const char *v, size_t vn)
{
    respond(c, rq, ST_OK, 0, NULL, 0, k, (uint16_t)kn, v, (uint32_t)vn);
}

/* Turns the ASCII answer in cp into packets: "STAT name value" lines one
 * each, "detail dump" text as one "detailed" stat; an ASCII error is
 * memcached's "Not found". */
static void stat_convert(wharf_conn *c, const struct bin_req *rq, const struct mc_capture *cp,
                         bool dump)
{
    const char *s = cp->p ? cp->p : "", *end = s + cp->n;
    if (starts(s, cp->n, "ERROR") || starts(s, cp->n, "CLIENT_ERROR") ||
        starts(s, cp->n, "SERVER_ERROR")) {
        bin_error(c, rq, ST_ENOENT, NULL);
        return;
    }
    if (dump) {
        stat_packet(c, rq, "detailed", 8, s, cp->n);
    } else {
        while (s < end) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            const char *le = nl ? nl : end;
            size_t ll = (size_t)(le - s) - (le > s && le[-1] == '\r');
            if (ll > 5 && !memcmp(s, "STAT ", 5)) {
                const char *k = s + 5, *sp = memchr(k, ' ', ll - 5);
                size_t kn = sp ? (size_t)(sp - k) : ll - 5;
                size_t vn = sp ? ll - 5 - kn - 1 : 0;
                if (kn > 0 && kn <= UINT16_MAX)
                    stat_packet(c, rq, k, kn, sp ? sp + 1 : NULL, vn);
            }
            s = nl ? nl + 1 : end;
        }
    }
    stat_packet(c, rq, NULL, 0, NULL, 0);
}

static void bin_stat(wharf_conn *c, struct mc_conn *mc, const struct bin_req *rq)
{
    struct mc_tok t[4] = {{"stats", 5}};
    size_t n = 1 + mc_tok_split((const char *)rq->key, rq->keylen, t + 1, 3);
    if (n > 3 || (n == 3 && !mc_tok_is(&t[1], "detail"))) {
        bin_error(c, rq, ST_ENOENT, NULL);
        return;
    }
    struct mc_capture cp = {0};
    mc->capture = &cp;
    mc_stats_command(c, t, n);
    mc->capture = NULL;
    if (cp.failed)
        bin_error(c, rq, ST_ENOMEM, "Out of memory generating stats");
    else
        stat_convert(c, rq, &cp, n == 3 && mc_tok_is(&t[2], "dump"));
    free(cp.p);
}

/* ---- one request ------------------------------------------------------------ */

/* The loud opcode for a quiet one (and sets rq->quiet), as dispatch_bin_command. */
static void bin_unquiet(struct bin_req *rq)
{
    static const uint8_t loud[][2] = {
        {OP_SETQ, OP_SET},         {OP_ADDQ, OP_ADD},     {OP_REPLACEQ, OP_REPLACE},
        {OP_DELETEQ, OP_DELETE},   {OP_INCRQ, OP_INCR},   {OP_DECRQ, OP_DECR},
        {OP_QUITQ, OP_QUIT},       {OP_FLUSHQ, OP_FLUSH}, {OP_APPENDQ, OP_APPEND},
        {OP_PREPENDQ, OP_PREPEND}, {OP_GETQ, OP_GET},     {OP_GETKQ, OP_GETK},
        {OP_GATQ, OP_GAT},         {OP_GATKQ, OP_GATK},
    };
    rq->cmd = rq->opcode;
    rq->quiet = false;
    for (size_t i = 0; i < sizeof loud / sizeof loud[0]; i++) {
        if (loud[i][0] == rq->opcode) {
            rq->cmd = loud[i][1];
            rq->quiet = true;
        }
    }
}

/* Whether rq's extras, key and body lengths are what its opcode takes. */
static bool bin_well_formed(const struct bin_req *rq)
{
    uint8_t e = rq->extlen;
    uint16_t k = rq->keylen;
    uint32_t b = rq->bodylen;
    switch (rq->cmd) {
    case OP_VERSION:
    case OP_NOOP:
    case OP_QUIT:
    case OP_SASL_LIST: return e == 0 && k == 0 && b == 0;
    case OP_FLUSH: return k == 0 && b == e && (e == 0 || e == 4);
    case OP_SET:
    case OP_ADD:
    case OP_REPLACE: return e == 8 && k != 0 && b >= (uint32_t)k + 8;
    case OP_GET:
    case OP_GETK:
    case OP_DELETE: return e == 0 && k > 0 && b == k;
    case OP_INCR:
    case OP_DECR: return e == 20 && k > 0 && b == (uint32_t)k + 20;
    case OP_APPEND:
    case OP_PREPEND: return e == 0 && k > 0;
    case OP_STAT: return e == 0;
    case OP_SASL_AUTH:
    case OP_SASL_STEP: return e == 0 && k != 0;
    case OP_TOUCH:
    case OP_GAT:
    case OP_GATK: return e == 4 && k != 0;
    default: return true;
    }
}

/*
 * The request whose header, extras and key are at p[0..rem) (rem covers
 * them).  Returns the bytes consumed, 0 when the value is still to come,
 * or BIN_CLOSED once the connection is closing.
 */
static size_t bin_command(wharf_conn *c, struct mc_conn *mc, struct bin_req *rq, size_t rem,
                          int64_t now)
{
    struct mc_listener *l = wharf_listener_data(c);
    size_t head = BIN_HEADER + rq->extlen + rq->keylen;
    if ((uint32_t)rq->keylen + rq->extlen > rq->bodylen) {
        bin_error(c, rq, ST_UNKNOWN, NULL);
        wharf_close(c);
        return BIN_CLOSED;
    }
    if (rq->keylen > MC_KEY_MAX)
        return bin_protocol_error(c, rq);
    bin_unquiet(rq);
    if (!bin_well_formed(rq))
        return bin_protocol_error(c, rq);
    rq->vlen = rq->bodylen - rq->extlen - rq->keylen;
    switch (rq->cmd) {
    case OP_SET:
    case OP_ADD:
    case OP_REPLACE:
    case OP_APPEND:
    case OP_PREPEND:
        if (rq->vlen > mc_store_item_max(l->store)) {
            bin_error(c, rq, ST_E2BIG, NULL);
            if (rq->cmd == OP_SET) /* as memcached: no stale value stays behind */
                mc_store_delete(l->store, (const char *)rq->key, rq->keylen, now);
            mc->bin_swallow = rq->vlen;
            return head;
        }
        if (rem - BIN_HEADER < rq->bodylen) /* gathered in memcache.c */
            return mc_pending_start(c, mc, rq->ext - BIN_HEADER, rem, BIN_HEADER + rq->bodylen);
        bin_store(c, mc, rq, now);
        return head + rq->vlen;
    case OP_GET:
    case OP_GETK:
    case OP_TOUCH:
    case OP_GAT:
    case OP_GATK: bin_get(c, mc, rq, now); return head;
    case OP_DELETE: bin_delete(c, mc, rq, now); return head;
    case OP_INCR:
    case OP_DECR: bin_delta(c, mc, rq, now); return head;
    case OP_FLUSH: bin_flush(c, mc, rq, now); return head;
    case OP_STAT: bin_stat(c, mc, rq); return head;
    case OP_NOOP: bin_ok(c, rq, 0, NULL, 0); return head;
    case OP_VERSION: bin_ok(c, rq, 0, MC_VERSION, sizeof MC_VERSION - 1); return head;
    case OP_QUIT:
        bin_ok(c, rq, 0, NULL, 0);
        wharf_close(c);
        return BIN_CLOSED;
    default: /* SASL (not built in) and unknown opcodes: the body is dropped */
        bin_error(c, rq, ST_UNKNOWN, NULL);
        mc->bin_swallow = rq->vlen;
        return head;
    }
}

/* Reads the header at p (24 bytes) into rq. */
static void bin_parse_header(const unsigned char *p, struct bin_req *rq)
{
    rq->opcode = p[1];
    rq->keylen = (uint16_t)(p[2] << 8 | p[3]);
    rq->extlen = p[4];
    rq->bodylen = get_be32(p + 8);
    memcpy(rq->opaque, p + 12, 4);
    rq->cas = get_be64(p + 16);
    rq->ext = p + BIN_HEADER;
    rq->key = rq->ext + rq->extlen;
    rq->value = rq->key + rq->keylen;
}

void mc_binary_request(wharf_conn *c, struct mc_conn *mc, const void *req, size_t len,
                       int64_t now)
{
    struct bin_req rq;
    bin_parse_header(req, &rq);
    bin_command(c, mc, &rq, len, now);
}

size_t mc_binary_on_data(wharf_conn *c, const void *data, size_t len)
{
    struct mc_conn *mc = wharf_get_data(c);
    const unsigned char *base = data;
    size_t used = 0;
    int64_t now = (int64_t)time(NULL);
    while (used < len) {
        const unsigned char *p = base + used;
        size_t rem = len - used;
        if (mc->bin_swallow) {
            size_t k = rem < mc->bin_swallow ? rem : (size_t)mc->bin_swallow;
            mc->bin_swallow -= k;
            used += k;
            continue;
        }
        if (wharf_output_pending(c) >= MC_OUTPUT_YIELD || rem < BIN_HEADER)
            break;
        if (p[0] != 0x80) { /* memcached hangs up without a word */
            wharf_conn_log(c, WHARF_LOG_INFO, "binary protocol: bad magic 0x%02x", p[0]);
            wharf_close_with(c, WHARF_CLOSE_ERROR);
            used = len;
            break;
        }
        struct bin_req rq;
        bin_parse_header(p, &rq);
        if (rem < BIN_HEADER + (size_t)rq.extlen + rq.keylen)
            break;
        size_t k = bin_command(c, mc, &rq, rem, now);
        if (k == BIN_CLOSED) {
            used = len;
            break;
        }
        if (k == 0)
            break;
        used += k;
    }
    wharf_counter_add(&mc->w->cnt[C_BYTES_READ], used);
    return used;
}
