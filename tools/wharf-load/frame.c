/* frame.c - reply framing (where a reply ends in a byte stream) and reply checks for
 * wharf-load's request/response templates. See frame.h for the kinds and the contract. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tmpl.h"

/* ---- parsing the --frame / --expect arguments -------------------------------------------------- */

static int ferr(char *err, size_t len, const char *arg, const char *what)
{
    snprintf(err, len, "--frame '%s': %s", arg, what);
    return -1;
}

/* A decimal number that must be all of s, in [min, max]. */
static int num(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!*s || *s < '0' || *s > '9')
        return -1;
    v = strtoull(s, &end, 10);
    if (*end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Regular expressions take \r \n \t (and nothing else: their own backslashes stay). */
static char *re_unescape(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;

    if (!out)
        return NULL;
    for (; *s; s++) {
        if (*s == '\\' && (s[1] == 'r' || s[1] == 'n' || s[1] == 't')) {
            *o++ = s[1] == 'r' ? '\r' : s[1] == 'n' ? '\n' : '\t';
            s++;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

static int compile_re(regex_t *re, const char *pat0, const char *opt, const char *arg, char *err,
                      size_t errlen)
{
    char *pat = re_unescape(pat0);
    char msg[160];
    regmatch_t m[1];
    int e;

    if (!pat) {
        snprintf(err, errlen, "%s '%s': out of memory", opt, arg);
        return -1;
    }
    e = regcomp(re, pat, REG_EXTENDED);
    free(pat);

    if (e != 0) {
        regerror(e, re, msg, sizeof(msg));
        snprintf(err, errlen, "%s '%s': bad regular expression: %s", opt, arg, msg);
        return -1;
    }
    m[0].rm_so = m[0].rm_eo = 0;
    if (regexec(re, "", 1, m, REG_STARTEND) == 0 && !strcmp(opt, "--frame")) {
        regfree(re);
        snprintf(err, errlen, "%s '%s': the regular expression matches the empty string, so it "
                              "cannot end a reply", opt, arg);
        return -1;
    }
    return 0;
}

/* delim:STR (escapes allowed), 1 to FRAME_MAX_DELIM bytes. */
static int parse_delim(struct frame_spec *fs, const char *arg, const char *rest, char *err,
                       size_t errlen)
{
    uint8_t tmp[256];

    if (!*rest || strlen(rest) >= sizeof(tmp))
        return ferr(err, errlen, arg, "expected delim:STR with 1 to 64 bytes (e.g. delim:\\r\\n)");
    fs->kind = FK_DELIM;
    fs->delim_len = (uint32_t)tmpl_unescape(rest, tmp);
    if (fs->delim_len == 0 || fs->delim_len > FRAME_MAX_DELIM)
        return ferr(err, errlen, arg, "the delimiter must have 1 to 64 bytes");
    memcpy(fs->delim, tmp, fs->delim_len);
    return 0;
}

/* fixed:N, N from 1 to TMPL_MAX_LEN bytes. */
static int parse_fixed(struct frame_spec *fs, const char *arg, const char *rest, char *err,
                       size_t errlen)
{
    uint64_t v;

    if (num(rest, 1, TMPL_MAX_LEN, &v) != 0)
        return ferr(err, errlen, arg, "expected fixed:N with N from 1 to 1048576");
    fs->kind = FK_FIXED;
    fs->fixed = (uint32_t)v;
    return 0;
}

/* The optional last field of len:...: what the length counts (all, after or +N). */
static int parse_len_counts(struct frame_spec *fs, const char *arg, const char *f, char *err,
                            size_t errlen)
{
    uint64_t v;

    if (!strcmp(f, "all"))
        fs->len_counts = FC_ALL;
    else if (!strcmp(f, "after"))
        fs->len_counts = FC_AFTER;
    else if (f[0] == '+' && num(f + 1, 0, TMPL_MAX_LEN, &v) == 0) {
        fs->len_counts = FC_PLUS;
        fs->len_plus = (uint32_t)v;
    } else
        return ferr(err, errlen, arg, "what the length counts must be all, after or +N (bytes added)");
    return 0;
}

/* len:OFFSET:WIDTH:be|le[:all|after|+N]: a length field in the reply's header. */
static int parse_len(struct frame_spec *fs, const char *arg, const char *rest, char *err,
                     size_t errlen)
{
    char buf[128], *f[5], *save = NULL, *tok;
    uint64_t v;
    int n = 0;

    snprintf(buf, sizeof(buf), "%s", rest);
    for (tok = strtok_r(buf, ":", &save); tok && n < 5; tok = strtok_r(NULL, ":", &save))
        f[n++] = tok;
    if (n < 3 || n > 4 || tok)
        return ferr(err, errlen, arg, "expected len:OFFSET:WIDTH:be|le[:all|after|+N]");
    fs->kind = FK_LEN;
    if (num(f[0], 0, 65536, &v) != 0)
        return ferr(err, errlen, arg, "the offset must be a number from 0 to 65536");
    fs->len_off = (uint32_t)v;
    if (num(f[1], 1, 8, &v) != 0 || (v != 1 && v != 2 && v != 4 && v != 8))
        return ferr(err, errlen, arg, "the width must be 1, 2, 4 or 8 bytes");
    fs->len_width = (uint32_t)v;
    if (strcmp(f[2], "be") && strcmp(f[2], "le"))
        return ferr(err, errlen, arg, "the endianness must be be or le");
    fs->len_be = !strcmp(f[2], "be");
    fs->len_counts = FC_ALL;
    return n == 4 ? parse_len_counts(fs, arg, f[3], err, errlen) : 0;
}

/* line:FIELD[:EXTRA]: a first line whose FIELD-th word gives the bytes that follow it. */
static int parse_line(struct frame_spec *fs, const char *arg, const char *rest, char *err,
                      size_t errlen)
{
    char buf[64], *c2;
    uint64_t v;

    snprintf(buf, sizeof(buf), "%s", rest);
    c2 = strchr(buf, ':');
    if (c2)
        *c2++ = '\0';
    fs->kind = FK_LINE;
    if (num(buf, 1, 64, &v) != 0)
        return ferr(err, errlen, arg, "expected line:FIELD[:EXTRA], FIELD from 1 to 64");
    fs->line_field = (unsigned)v;
    if (c2) {
        if (num(c2, 0, TMPL_MAX_LEN, &v) != 0)
            return ferr(err, errlen, arg, "EXTRA must be a number of bytes");
        fs->line_extra = (uint32_t)v;
    }
    return 0;
}

/* regex:RE: a reply ends where RE first matches. */
static int parse_regex(struct frame_spec *fs, const char *arg, const char *rest, char *err,
                       size_t errlen)
{
    if (!*rest)
        return ferr(err, errlen, arg, "expected regex:RE");
    fs->kind = FK_REGEX;
    if (compile_re(&fs->re, rest, "--frame", arg, err, errlen) != 0)
        return -1;
    fs->re_set = true;
    return 0;
}

int frame_parse(struct frame_spec *fs, const char *arg, char *err, size_t errlen)
{
    const char *colon = strchr(arg, ':');
    size_t klen = colon ? (size_t)(colon - arg) : strlen(arg);
    const char *rest = colon ? colon + 1 : "";

    memset(fs, 0, sizeof(*fs));
    fs->max_reply = FRAME_DEFAULT_MAX_REPLY;
    if (klen == 5 && !strncmp(arg, "delim", 5))
        return parse_delim(fs, arg, rest, err, errlen);
    if (klen == 5 && !strncmp(arg, "fixed", 5))
        return parse_fixed(fs, arg, rest, err, errlen);
    if (klen == 3 && !strncmp(arg, "len", 3))
        return parse_len(fs, arg, rest, err, errlen);
    if (klen == 4 && !strncmp(arg, "line", 4))
        return parse_line(fs, arg, rest, err, errlen);
    if (klen == 5 && !strncmp(arg, "regex", 5))
        return parse_regex(fs, arg, rest, err, errlen);
    if (!strcmp(arg, "memcache")) {
        fs->kind = FK_MEMCACHE;
        return 0;
    }
    if (!strcmp(arg, "http")) {
        fs->kind = FK_HTTP;
        return 0;
    }
    if (!strcmp(arg, "resp")) {
        fs->kind = FK_RESP;
        return 0;
    }
    return ferr(err, errlen, arg,
                "unknown framing: expected delim:STR, fixed:N, len:OFF:WIDTH:ENDIAN[:COUNTS], "
                "line:FIELD[:EXTRA], regex:RE, memcache, http or resp");
}

void frame_spec_free(struct frame_spec *fs)
{
    if (fs->re_set)
        regfree(&fs->re);
    fs->re_set = false;
}

int frame_check_parse(struct frame_check *ck, const char *arg, char *err, size_t errlen)
{
    const char *colon = strchr(arg, ':');
    const char *rest = colon ? colon + 1 : "";
    size_t klen = colon ? (size_t)(colon - arg) : strlen(arg);

    memset(ck, 0, sizeof(*ck));
    if ((klen == 7 && !strncmp(arg, "literal", 7)) || (klen == 6 && !strncmp(arg, "prefix", 6))) {
        ck->kind = klen == 7 ? CK_LITERAL : CK_PREFIX;
        ck->lit = malloc(strlen(rest) + 1);
        if (!ck->lit) {
            snprintf(err, errlen, "--expect: out of memory");
            return -1;
        }
        ck->lit_len = tmpl_unescape(rest, ck->lit);
        if (ck->kind == CK_PREFIX && ck->lit_len == 0) {
            frame_check_free(ck);
            snprintf(err, errlen, "--expect '%s': an empty prefix checks nothing", arg);
            return -1;
        }
        return 0;
    }
    if (klen == 5 && !strncmp(arg, "regex", 5)) {
        if (!*rest) {
            snprintf(err, errlen, "--expect '%s': expected regex:RE", arg);
            return -1;
        }
        if (compile_re(&ck->re, rest, "--expect", arg, err, errlen) != 0)
            return -1;
        ck->kind = CK_REGEX;
        return 0;
    }
    if (klen == 6 && !strncmp(arg, "status", 6)) {
        int lo, hi, n = 0;

        if (sscanf(rest, "%d-%d%n", &lo, &hi, &n) == 2 && !rest[n])
            ;
        else if (sscanf(rest, "%d%n", &lo, &n) == 1 && !rest[n])
            hi = lo;
        else
            lo = -1, hi = -2;
        if (lo < 0 || hi < lo || hi > 999) {
            snprintf(err, errlen, "--expect '%s': expected status:CODE or status:LO-HI", arg);
            return -1;
        }
        ck->kind = CK_STATUS;
        ck->lo = lo;
        ck->hi = hi;
        return 0;
    }
    snprintf(err, errlen,
             "--expect '%s': expected literal:STR, prefix:STR, regex:RE or status:LO-HI", arg);
    return -1;
}

void frame_check_free(struct frame_check *ck)
{
    if (ck->kind == CK_REGEX)
        regfree(&ck->re);
    free(ck->lit);
    ck->lit = NULL;
    ck->kind = CK_NONE;
}

bool frame_check_ok(const struct frame_check *ck, const uint8_t *reply, size_t len, int status)
{
    regmatch_t m[1];

    switch (ck->kind) {
    case CK_NONE: return true;
    case CK_LITERAL: return len == ck->lit_len && memcmp(reply, ck->lit, len) == 0;
    case CK_PREFIX: return len >= ck->lit_len && memcmp(reply, ck->lit, ck->lit_len) == 0;
    case CK_REGEX:
        m[0].rm_so = 0;
        m[0].rm_eo = (regoff_t)len;
        return regexec(&ck->re, (const char *)reply, 1, m, REG_STARTEND) == 0;
    case CK_STATUS: return status >= ck->lo && status <= ck->hi;
    }
    return false;
}

/* ---- the incremental parser -------------------------------------------------------------------- */

/* The first '\n' in buf[from, len), or -1. */
static long find_nl(const uint8_t *buf, size_t from, size_t len)
{
    const uint8_t *p = from < len ? memchr(buf + from, '\n', len - from) : NULL;

    return p ? (long)(p - buf) : -1;
}

/* Length of a line without its \r\n or \n. */
static size_t line_body(const uint8_t *line, size_t withnl)
{
    size_t n = withnl - 1;

    if (n && line[n - 1] == '\r')
        n--;
    return n;
}

static bool line_is(const uint8_t *l, size_t n, const char *w)
{
    size_t k = strlen(w);

    return n == k && memcmp(l, w, k) == 0;
}

static bool line_starts(const uint8_t *l, size_t n, const char *w)
{
    size_t k = strlen(w);

    return n >= k && memcmp(l, w, k) == 0;
}

static enum frame_rc feed_delim(const struct frame_spec *fs, struct frame_state *st,
                                const uint8_t *buf, size_t len, size_t *rl)
{
    size_t dl = fs->delim_len, from = st->scanned >= dl - 1 ? st->scanned - (dl - 1) : 0;
    const uint8_t *p = len > from ? memmem(buf + from, len - from, fs->delim, dl) : NULL;

    if (!p) {
        st->scanned = len;
        return FRAME_NEED;
    }
    *rl = (size_t)(p - buf) + dl;
    return FRAME_DONE;
}

static enum frame_rc feed_len(const struct frame_spec *fs, struct frame_state *st,
                              const uint8_t *buf, size_t len, size_t *rl, const char **why)
{
    size_t end = (size_t)fs->len_off + fs->len_width, i;
    uint64_t v = 0, total;

    if (!st->need) {
        if (len < end)
            return FRAME_NEED;
        for (i = 0; i < fs->len_width; i++) {
            size_t k = fs->len_be ? i : fs->len_width - 1 - i;

            v = v << 8 | buf[fs->len_off + k];
        }
        if (fs->len_counts == FC_AFTER)
            total = v > UINT32_MAX ? UINT64_MAX : end + v;
        else if (fs->len_counts == FC_PLUS)
            total = v > UINT32_MAX ? UINT64_MAX : v + fs->len_plus;
        else
            total = v;
        if (total < end) {
            *why = "length field smaller than the header it ends";
            return FRAME_GARBAGE;
        }
        if (total > fs->max_reply) {
            *why = "length field announces more than --max-reply";
            return FRAME_TOO_LONG;
        }
        st->need = (size_t)total;
    }
    if (len < st->need)
        return FRAME_NEED;
    *rl = st->need;
    return FRAME_DONE;
}

static enum frame_rc feed_line(const struct frame_spec *fs, struct frame_state *st,
                               const uint8_t *buf, size_t len, size_t *rl, const char **why)
{
    long nl;
    size_t n, i = 0, w = 0, ws, we;
    uint64_t v = 0;

    if (!st->need) {
        nl = find_nl(buf, st->scanned, len);
        if (nl < 0) {
            st->scanned = len;
            return FRAME_NEED;
        }
        n = line_body(buf, (size_t)nl + 1);
        for (;;) { /* find word number line_field */
            while (i < n && (buf[i] == ' ' || buf[i] == '\t'))
                i++;
            if (i >= n)
                break;
            ws = i;
            while (i < n && buf[i] != ' ' && buf[i] != '\t')
                i++;
            we = i;
            if (++w < fs->line_field)
                continue;
            while (ws < we && buf[ws] != '-' && (buf[ws] < '0' || buf[ws] > '9'))
                ws++;
            if (ws == we || buf[ws] == '-') /* no number, or a negative one: the line only */
                break;
            for (; ws < we; ws++) {
                if (buf[ws] < '0' || buf[ws] > '9') {
                    *why = "announced length is not a number";
                    return FRAME_GARBAGE;
                }
                v = v * 10 + (buf[ws] - '0');
                if (v > fs->max_reply) {
                    *why = "header line announces more than --max-reply";
                    return FRAME_TOO_LONG;
                }
            }
            st->need = (size_t)nl + 1 + v + fs->line_extra;
            break;
        }
        if (!st->need) {
            *rl = (size_t)nl + 1;
            return FRAME_DONE;
        }
    }
    if (len < st->need)
        return FRAME_NEED;
    *rl = st->need;
    return FRAME_DONE;
}

static enum frame_rc feed_regex(const struct frame_spec *fs, const uint8_t *buf, size_t len,
                                size_t *rl)
{
    regmatch_t m[1];

    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)len;
    /* REG_NOTEOL: the end of the bytes so far is not the end of the reply, so '$' must not
     * match there */
    if (len == 0 || regexec(&fs->re, (const char *)buf, 1, m, REG_STARTEND | REG_NOTEOL) != 0 ||
        m[0].rm_eo <= 0)
        return FRAME_NEED;
    *rl = (size_t)m[0].rm_eo;
    return FRAME_DONE;
}

/* A block of bytes that must end in \r\n (a memcache value, an HTTP chunk): whether it is
 * complete up to st->need; then the phase moves on to `next`. Returns true to go on, false
 * with *rc (FRAME_NEED, or FRAME_GARBAGE with *why = `bad`) otherwise. */
static bool block_done(struct frame_state *st, const uint8_t *buf, size_t len,
                       enum frame_phase next, const char *bad, enum frame_rc *rc,
                       const char **why)
{
    if (len < st->need) {
        *rc = FRAME_NEED;
        return false;
    }
    if (buf[st->need - 2] != '\r' || buf[st->need - 1] != '\n') {
        *why = bad;
        *rc = FRAME_GARBAGE;
        return false;
    }
    st->pos = st->scanned = st->need;
    st->need = 0;
    st->phase = next;
    return true;
}

/* memcache: a line 'VALUE <key> <flags> <bytes> [<cas>]' (l, n bytes without the end of
 * line, which is at nl): the value data follows. Returns 0, or -1 when no byte count. */
static int mc_value_line(struct frame_state *st, const uint8_t *l, size_t n, long nl,
                         const char **why)
{
    size_t i = 6, w = 1;
    uint64_t v = 0;
    bool digits = false;

    while (i < n && w < 3) {
        if (l[i] == ' ' && l[i - 1] != ' ')
            w++;
        i++;
    }
    while (i < n && l[i] == ' ')
        i++;
    for (; i < n && l[i] != ' '; i++) {
        if (l[i] < '0' || l[i] > '9' || v > UINT32_MAX) {
            digits = false;
            break;
        }
        v = v * 10 + (l[i] - '0');
        digits = true;
    }
    if (!digits) {
        *why = "memcache VALUE line without a byte count";
        return -1;
    }
    st->need = (size_t)nl + 1 + v + 2;
    st->phase = FP_MC_VALUE;
    st->status = 200;
    return 0;
}

/* memcache: a line that ends the reply: END, a storage or other one-word answer (status
 * 200), a number (incr/decr), or an error line (status 500). Anything else is garbage. */
static enum frame_rc mc_last_line(struct frame_state *st, const uint8_t *l, size_t n, long nl,
                                  size_t *rl, const char **why)
{
    static const char *const ok[] = {"END", "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND",
                                     "DELETED", "TOUCHED", "OK", "RESET"};
    size_t k, nok = sizeof(ok) / sizeof(ok[0]);

    if (st->phase == FP_MC_AFTER_VALUE && !line_is(l, n, "END")) {
        *why = "memcache: expected VALUE or END after a value";
        return FRAME_GARBAGE;
    }
    for (k = 0; k < nok; k++)
        if (line_is(l, n, ok[k]))
            break;
    if (k == nok && n > 0 && strspn((const char *)l, "0123456789") >= n)
        k = 0; /* incr/decr answer */
    if (k < nok)
        st->status = 200;
    else if (line_is(l, n, "ERROR") || line_starts(l, n, "CLIENT_ERROR") ||
             line_starts(l, n, "SERVER_ERROR"))
        st->status = 500;
    else {
        *why = "not a memcached reply line";
        return FRAME_GARBAGE;
    }
    *rl = (size_t)nl + 1;
    return FRAME_DONE;
}

/* memcache phases (enum frame_phase): FP_START the first line, FP_MC_VALUE value data up
 * to `need`, FP_MC_AFTER_VALUE the line after a value */
static enum frame_rc feed_memcache(struct frame_state *st, const uint8_t *buf, size_t len,
                                   size_t *rl, const char **why)
{
    enum frame_rc rc;
    const uint8_t *l;
    size_t n;
    long nl;

    for (;;) {
        if (st->phase == FP_MC_VALUE &&
            !block_done(st, buf, len, FP_MC_AFTER_VALUE, "memcache value not followed by \\r\\n",
                        &rc, why))
            return rc;
        nl = find_nl(buf, st->scanned > st->pos ? st->scanned : st->pos, len);
        if (nl < 0) {
            st->scanned = len;
            return FRAME_NEED;
        }
        l = buf + st->pos;
        n = line_body(l, (size_t)nl + 1 - st->pos);
        st->scanned = (size_t)nl + 1;
        if (!line_starts(l, n, "VALUE "))
            return mc_last_line(st, l, n, nl, rl, why);
        if (mc_value_line(st, l, n, nl, why) != 0)
            return FRAME_GARBAGE;
    }
}

/* The value of header `name` (lower case, with ':') in the header block, or NULL. */
static const uint8_t *http_header(const uint8_t *buf, size_t hend, const char *name, size_t *vlen)
{
    size_t k = strlen(name), i = 0;
    const uint8_t *p;

    for (;;) {
        p = memchr(buf + i, '\n', hend - i);
        if (!p)
            return NULL;
        i = (size_t)(p - buf) + 1;
        if (i + k < hend && (buf[i] | 0x20) == name[0] &&
            strncasecmp((const char *)buf + i, name, k) == 0) {
            const uint8_t *v = buf + i + k, *e = memchr(v, '\n', hend - (i + k));

            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            *vlen = (size_t)(e - v);
            while (*vlen && (v[*vlen - 1] == '\r' || v[*vlen - 1] == ' '))
                (*vlen)--;
            return v;
        }
    }
}

/* http: the Content-Length value (v, vl bytes) into *cl. Returns FRAME_DONE, or
 * FRAME_GARBAGE / FRAME_TOO_LONG with the reason in *why. */
static enum frame_rc http_content_length(const struct frame_spec *fs, const uint8_t *v,
                                         size_t vl, uint64_t *cl, const char **why)
{
    size_t i;

    *cl = 0;
    if (vl == 0) {
        *why = "bad Content-Length";
        return FRAME_GARBAGE;
    }
    for (i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9') {
            *why = "bad Content-Length";
            return FRAME_GARBAGE;
        }
        *cl = *cl * 10 + (uint64_t)(v[i] - '0');
        if (*cl > fs->max_reply) {
            *why = "Content-Length above --max-reply";
            return FRAME_TOO_LONG;
        }
    }
    return FRAME_DONE;
}

/* http, FP_START: waits for the whole header block, reads the status and picks how the
 * body ends: chunked (FP_HTTP_CHUNK_SIZE), Content-Length (FP_HTTP_BODY), or no body
 * (1xx, 204, 304, or any response to HEAD: FRAME_DONE). Returns the result while the
 * phase stays FP_START; once it moved on, the body is read next. */
static enum frame_rc http_head(const struct frame_spec *fs, struct frame_state *st,
                               const uint8_t *buf, size_t len, size_t *rl, const char **why)
{
    size_t from = st->scanned >= 3 ? st->scanned - 3 : 0, hend, vl;
    const uint8_t *p, *v;
    enum frame_rc rc;
    uint64_t cl;
    int status;

    if (memcmp(buf, "HTTP/1.", len < 7 ? len : 7) != 0) {
        *why = "not an HTTP/1.x status line";
        return FRAME_GARBAGE;
    }
    p = len > from ? memmem(buf + from, len - from, "\r\n\r\n", 4) : NULL;
    if (!p) {
        st->scanned = len;
        return FRAME_NEED;
    }
    hend = (size_t)(p - buf) + 4;
    if (hend < 12 || buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' ||
        buf[10] > '9' || buf[11] < '0' || buf[11] > '9') {
        *why = "not an HTTP/1.x status line";
        return FRAME_GARBAGE;
    }
    status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    st->status = status;
    if (fs->http_no_body) { /* a response to HEAD: its Content-Length is the GET's */
        *rl = hend;
        return FRAME_DONE;
    }
    if ((v = http_header(buf, hend, "transfer-encoding:", &vl)) && vl >= 7 &&
        memmem(v, vl, "chunked", 7)) {
        st->phase = FP_HTTP_CHUNK_SIZE;
        st->pos = st->scanned = hend;
        return FRAME_NEED;
    }
    if ((v = http_header(buf, hend, "content-length:", &vl))) {
        if ((rc = http_content_length(fs, v, vl, &cl, why)) != FRAME_DONE)
            return rc;
        st->need = hend + cl;
        st->phase = FP_HTTP_BODY;
        return FRAME_NEED;
    }
    if (status < 200 || status == 204 || status == 304) {
        *rl = hend;
        return FRAME_DONE;
    }
    *why = "HTTP response without Content-Length or chunked encoding";
    return FRAME_GARBAGE;
}

/* http, FP_HTTP_CHUNK_SIZE: the chunk-size line from st->pos to the newline at nl (hex
 * digits, then ';' extensions or the end of line). Size 0 leads to the trailers. Returns
 * true to go on, false with *rc (FRAME_GARBAGE, FRAME_TOO_LONG) otherwise. */
static bool http_chunk_size(const struct frame_spec *fs, struct frame_state *st,
                            const uint8_t *buf, long nl, enum frame_rc *rc, const char **why)
{
    uint64_t sz = 0;
    size_t i = st->pos;
    int digits = 0;

    for (; i < (size_t)nl; i++) {
        int d = buf[i] >= '0' && buf[i] <= '9'   ? buf[i] - '0'
                : buf[i] >= 'a' && buf[i] <= 'f' ? buf[i] - 'a' + 10
                : buf[i] >= 'A' && buf[i] <= 'F' ? buf[i] - 'A' + 10
                                                 : -1;
        if (d < 0)
            break;
        sz = sz * 16 + (uint64_t)d;
        digits++;
        if (sz > fs->max_reply) {
            *why = "HTTP chunk above --max-reply";
            *rc = FRAME_TOO_LONG;
            return false;
        }
    }
    if (!digits || (buf[i] != ';' && buf[i] != '\r' && buf[i] != '\n')) {
        *why = "bad HTTP chunk size line";
        *rc = FRAME_GARBAGE;
        return false;
    }
    st->pos = (size_t)nl + 1;
    if (sz == 0) {
        st->phase = FP_HTTP_TRAILERS;
    } else {
        st->need = st->pos + sz + 2;
        st->phase = FP_HTTP_CHUNK_DATA;
    }
    return true;
}

/* http phases (enum frame_phase): FP_START the headers, FP_HTTP_CHUNK_SIZE a chunk-size
 * line at pos, FP_HTTP_TRAILERS, FP_HTTP_CHUNK_DATA up to need, FP_HTTP_BODY up to need */
static enum frame_rc feed_http(const struct frame_spec *fs, struct frame_state *st,
                               const uint8_t *buf, size_t len, size_t *rl, const char **why)
{
    enum frame_rc rc;
    long nl;

    if (st->phase == FP_START) {
        rc = http_head(fs, st, buf, len, rl, why);
        if (st->phase == FP_START)
            return rc;
    }
    if (st->phase == FP_HTTP_BODY) {
        if (len < st->need)
            return FRAME_NEED;
        *rl = st->need;
        return FRAME_DONE;
    }
    for (;;) {
        if (st->phase == FP_HTTP_CHUNK_DATA &&
            !block_done(st, buf, len, FP_HTTP_CHUNK_SIZE, "HTTP chunk not followed by \\r\\n",
                        &rc, why))
            return rc;
        nl = find_nl(buf, st->scanned > st->pos ? st->scanned : st->pos, len);
        if (nl < 0) {
            st->scanned = len;
            return FRAME_NEED;
        }
        st->scanned = (size_t)nl + 1;
        if (st->phase == FP_HTTP_CHUNK_SIZE) {
            if (!http_chunk_size(fs, st, buf, nl, &rc, why))
                return rc;
            continue;
        }
        /* FP_HTTP_TRAILERS: trailers until an empty line */
        if (line_body(buf + st->pos, (size_t)nl + 1 - st->pos) == 0) {
            *rl = (size_t)nl + 1;
            return FRAME_DONE;
        }
        st->pos = (size_t)nl + 1;
    }
}

/* The signed decimal of a RESP header line l[1, n) (after the type byte). Returns 0 or -1. */
static int resp_int(const uint8_t *l, size_t n, long long *v)
{
    char tmp[24], *end;

    if (n < 2 || n - 1 >= sizeof(tmp))
        return -1;
    memcpy(tmp, l + 1, n - 1);
    tmp[n - 1] = '\0';
    errno = 0;
    *v = strtoll(tmp, &end, 10);
    return errno || *end || end == tmp ? -1 : 0;
}

/* One RESP value: header lines are parsed once each (st->pos: the next one), bulk data is
 * skipped by its length, st->items counts the values still to come. */
static enum frame_rc feed_resp(const struct frame_spec *fs, struct frame_state *st,
                               const uint8_t *buf, size_t len, size_t *rl, const char **why)
{
    if (st->phase == FP_START && st->items == 0)
        st->items = 1;
    while (st->items > 0) {
        const uint8_t *l;
        long long v;
        long nl;
        size_t n;

        if (st->phase == FP_RESP_BULK) {
            if (len < st->need)
                return FRAME_NEED;
            if (buf[st->need - 2] != '\r' || buf[st->need - 1] != '\n') {
                *why = "RESP bulk string not followed by \\r\\n";
                return FRAME_GARBAGE;
            }
            st->pos = st->scanned = st->need;
            st->need = 0;
            st->phase = FP_START;
            st->items--;
            continue;
        }
        nl = find_nl(buf, st->scanned > st->pos ? st->scanned : st->pos, len);
        if (nl < 0) {
            st->scanned = len;
            return FRAME_NEED;
        }
        l = buf + st->pos;
        n = (size_t)nl - st->pos; /* up to the \n */
        if (n < 1 || l[n - 1] != '\r') {
            *why = "RESP line not ended by \\r\\n";
            return FRAME_GARBAGE;
        }
        n--;
        st->scanned = (size_t)nl + 1;
        switch (n ? l[0] : 0) {
        case '-':
            st->status = 500;
            /* fall through */
        case '+':
        case ':':
        case '_':
        case ',':
        case '#':
            st->items--;
            break;
        case '$':
            if (resp_int(l, n, &v) != 0 || v < -1) {
                *why = "RESP bulk string with a bad length";
                return FRAME_GARBAGE;
            }
            if (v == -1) {
                st->items--;
                break;
            }
            if ((unsigned long long)v > fs->max_reply) {
                *why = "RESP bulk string longer than --max-reply";
                return FRAME_TOO_LONG;
            }
            st->need = (size_t)nl + 1 + (size_t)v + 2;
            st->phase = FP_RESP_BULK;
            break;
        case '*':
            if (resp_int(l, n, &v) != 0 || v < -1) {
                *why = "RESP array with a bad length";
                return FRAME_GARBAGE;
            }
            if ((unsigned long long)(v + 1) > fs->max_reply) {
                *why = "RESP array longer than --max-reply";
                return FRAME_TOO_LONG;
            }
            st->items += v > 0 ? (uint64_t)v - 1 : 0;
            if (v <= 0)
                st->items--;
            break;
        default:
            *why = "not a RESP value (expected + - : $ * _ , or #)";
            return FRAME_GARBAGE;
        }
        st->pos = (size_t)nl + 1;
    }
    if (!st->status)
        st->status = 200;
    *rl = st->pos;
    return FRAME_DONE;
}

enum frame_rc frame_feed(const struct frame_spec *fs, struct frame_state *st, const uint8_t *buf,
                         size_t len, size_t *reply_len, const char **why)
{
    enum frame_rc rc = FRAME_NEED;
    size_t rl = 0;

    *why = "";
    switch (fs->kind) {
    case FK_DELIM: rc = feed_delim(fs, st, buf, len, &rl); break;
    case FK_FIXED:
        if (len >= fs->fixed) {
            rl = fs->fixed;
            rc = FRAME_DONE;
        }
        break;
    case FK_LEN: rc = feed_len(fs, st, buf, len, &rl, why); break;
    case FK_LINE: rc = feed_line(fs, st, buf, len, &rl, why); break;
    case FK_REGEX: rc = feed_regex(fs, buf, len, &rl); break;
    case FK_MEMCACHE: rc = feed_memcache(st, buf, len, &rl, why); break;
    case FK_HTTP: rc = feed_http(fs, st, buf, len, &rl, why); break;
    case FK_RESP: rc = feed_resp(fs, st, buf, len, &rl, why); break;
    }
    if (rc == FRAME_DONE && rl > fs->max_reply)
        rc = FRAME_TOO_LONG;
    else if (rc == FRAME_NEED && (len >= fs->max_reply || st->need > fs->max_reply))
        rc = FRAME_TOO_LONG;
    if (rc == FRAME_TOO_LONG && !**why)
        *why = "reply longer than --max-reply";
    if (rc == FRAME_DONE)
        *reply_len = rl;
    return rc;
}
