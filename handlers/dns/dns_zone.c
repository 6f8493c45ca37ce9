/*
 * dns_zone.c - a zone in memory, read from an RFC 1035 master file
 * (section 5): $ORIGIN, $TTL (RFC 2308), "@", names relative to the origin,
 * an owner left blank meaning the previous one, records spread over lines by
 * parentheses, ";" comments, quoted strings with \X and \DDD escapes, class
 * IN only, TTLs as seconds or with units (1h30m, 2d, 1w).  Record types: SOA,
 * NS, A, AAAA, CNAME, MX, TXT (one or more strings), SRV, PTR; a "*" label
 * makes a wildcard (dns_answer.c answers from it).
 *
 * Every error names the file, the line and what was expected.  Sizes are
 * bounded: names 255 bytes in wire form, labels 63, TXT strings 255, a
 * record's rdata 65,535, the file ZONE_FILE_MAX.
 *
 * The result is immutable: nodes (every owner name, and every empty
 * non-terminal between an owner and the apex) sorted for a binary search,
 * each with its records sorted by type.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

#define ZONE_FILE_MAX (256u << 20) /* a larger master file is refused */
#define MAX_TOKENS 512             /* per record */
#define RDATA_MAX 65535

struct token {
    const char *s;
    size_t len;
    bool quoted;
    unsigned line;
};

/* A record as parsed, before the zone is indexed. */
struct prr {
    uint8_t owner[DNS_NAME_MAX];
    uint8_t ownerlen;
    uint16_t type;
    uint32_t ttl;
    uint16_t rdlen;
    uint8_t *rdata;
    unsigned line;
    size_t seq;
};

struct parser {
    const char *name; /* the file, for errors */
    const char *p, *end;
    unsigned line;
    char *err;
    size_t errlen;
    uint8_t origin[DNS_NAME_MAX]; /* the current $ORIGIN */
    size_t originlen;             /* 0: none yet */
    uint8_t owner[DNS_NAME_MAX];  /* the previous owner */
    size_t ownerlen;
    uint32_t default_ttl;
    bool have_ttl;
    struct token tok[MAX_TOKENS];
    size_t ntok;
    bool blank_owner;
    struct prr *rrs;
    size_t nrrs, caprrs;
};

static bool fail(struct parser *ps, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(struct parser *ps, unsigned line, const char *fmt, ...)
{
    int n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, line);
    if (n >= 0 && (size_t)n < ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return false;
}

static inline uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static bool tok_is(const struct token *t, const char *word)
{
    size_t n = strlen(word);
    if (t->quoted || t->len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((uint8_t)t->s[i]) != lower((uint8_t)word[i]))
            return false;
    return true;
}

/* A token as text for an error message (cut, never NUL-less). */
static const char *tok_show(const struct token *t, char *buf, size_t len)
{
    size_t n = t->len < len - 1 ? t->len : len - 1;
    memcpy(buf, t->s, n);
    buf[n] = '\0';
    return buf;
}

/*
 * Reads the tokens of the next record (one line, or several inside
 * parentheses) into ps->tok.  Returns 1 with ps->ntok > 0, 0 at the end of
 * the file, -1 on error.
 */
static int next_record(struct parser *ps)
{
    for (;;) {
        ps->ntok = 0;
        int depth = 0;
        unsigned open_line = 0;
        ps->blank_owner = ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t');
        while (ps->p < ps->end) {
            char c = *ps->p;
            if (c == '\n') {
                ps->line++;
                ps->p++;
                if (depth == 0)
                    break;
                continue;
            }
            if (c == ' ' || c == '\t' || c == '\r') {
                ps->p++;
                continue;
            }
            if (c == ';') {
                while (ps->p < ps->end && *ps->p != '\n')
                    ps->p++;
                continue;
            }
            if (c == '(') {
                if (depth++ == 0)
                    open_line = ps->line;
                if (depth > 1)
                    return fail(ps, ps->line, "expected \")\" before another \"(\""), -1;
                ps->p++;
                continue;
            }
            if (c == ')') {
                if (depth == 0)
                    return fail(ps, ps->line, "expected \"(\" before \")\""), -1;
                depth--;
                ps->p++;
                continue;
            }
            if (ps->ntok == MAX_TOKENS)
                return fail(ps, ps->line, "expected at most %d fields in a record", MAX_TOKENS),
                       -1;
            struct token *t = &ps->tok[ps->ntok++];
            t->line = ps->line;
            if (c == '"') {
                t->quoted = true;
                t->s = ++ps->p;
                while (ps->p < ps->end && *ps->p != '"') {
                    if (*ps->p == '\\' && ps->p + 1 < ps->end)
                        ps->p++;
                    if (*ps->p == '\n')
                        ps->line++;
                    ps->p++;
                }
                if (ps->p >= ps->end)
                    return fail(ps, t->line, "expected a closing '\"'"), -1;
                t->len = (size_t)(ps->p - t->s);
                ps->p++;
                continue;
            }
            t->quoted = false;
            t->s = ps->p;
            while (ps->p < ps->end) {
                c = *ps->p;
                if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '(' ||
                    c == ')' || c == '"')
                    break;
                if (c == '\\' && ps->p + 1 < ps->end && ps->p[1] != '\n')
                    ps->p++;
                ps->p++;
            }
            t->len = (size_t)(ps->p - t->s);
        }
        if (depth)
            return fail(ps, open_line, "expected \")\" to close the \"(\" of this line"), -1;
        if (ps->ntok)
            return 1;
        if (ps->p >= ps->end)
            return 0;
    }
}

/*
 * Decodes the escapes of a token (\X: X itself; \DDD: the byte DDD) into
 * out (at most max bytes).  Returns the length, or -1 (bad escape, or too
 * long: *toolong set).
 */
static long unescape(const struct token *t, uint8_t *out, size_t max, bool *toolong)
{
    size_t n = 0;
    *toolong = false;
    for (size_t i = 0; i < t->len; i++) {
        uint8_t c = (uint8_t)t->s[i];
        if (c == '\\') {
            if (i + 1 >= t->len)
                return -1;
            if (t->s[i + 1] >= '0' && t->s[i + 1] <= '9') {
                if (i + 3 >= t->len)
                    return -1;
                unsigned v = 0;
                for (int k = 1; k <= 3; k++) {
                    char d = t->s[i + (size_t)k];
                    if (d < '0' || d > '9')
                        return -1;
                    v = v * 10 + (unsigned)(d - '0');
                }
                if (v > 255)
                    return -1;
                c = (uint8_t)v;
                i += 3;
            } else {
                c = (uint8_t)t->s[++i];
            }
        }
        if (n == max) {
            *toolong = true;
            return -1;
        }
        out[n++] = c;
    }
    return (long)n;
}

/*
 * A domain name token: "@" (the origin), absolute ("a.example."), or
 * relative (the origin appended).  Writes the wire form (lower case when
 * lower) and its length.  what names the field for errors.
 */
static bool parse_name(struct parser *ps, const struct token *t, uint8_t *out, size_t *outlen,
                       bool lower_case, const char *what)
{
    char show[80];
    if (t->quoted)
        return fail(ps, t->line, "expected %s (a domain name), not a quoted string", what);
    if (t->len == 1 && t->s[0] == '@') {
        if (!ps->originlen)
            return fail(ps, t->line, "expected $ORIGIN (or \"origin\" in the config) before \"@\"");
        memcpy(out, ps->origin, ps->originlen);
        *outlen = ps->originlen;
        return true;
    }
    if (t->len == 1 && t->s[0] == '.') {
        out[0] = 0;
        *outlen = 1;
        return true;
    }
    size_t n = 0;
    size_t i = 0;
    bool absolute = false;
    while (i < t->len) {
        uint8_t label[DNS_LABEL_MAX + 1];
        size_t ll = 0;
        while (i < t->len && t->s[i] != '.') {
            uint8_t c = (uint8_t)t->s[i];
            if (c == '\\') {
                if (i + 1 >= t->len)
                    return fail(ps, t->line, "expected a character after \"\\\" in %s \"%s\"",
                                what, tok_show(t, show, sizeof show));
                if (t->s[i + 1] >= '0' && t->s[i + 1] <= '9') {
                    unsigned v = 0;
                    if (i + 3 >= t->len)
                        return fail(ps, t->line, "expected \\DDD (three digits) in %s \"%s\"",
                                    what, tok_show(t, show, sizeof show));
                    for (int k = 1; k <= 3; k++) {
                        char d = t->s[i + (size_t)k];
                        if (d < '0' || d > '9')
                            return fail(ps, t->line,
                                        "expected \\DDD (three digits) in %s \"%s\"", what,
                                        tok_show(t, show, sizeof show));
                        v = v * 10 + (unsigned)(d - '0');
                    }
                    if (v > 255)
                        return fail(ps, t->line, "expected \\DDD at most \\255 in %s \"%s\"",
                                    what, tok_show(t, show, sizeof show));
                    c = (uint8_t)v;
                    i += 4;
                } else {
                    c = (uint8_t)t->s[i + 1];
                    i += 2;
                }
            } else {
                i++;
            }
            if (ll == DNS_LABEL_MAX)
                return fail(ps, t->line, "expected labels of at most 63 bytes in %s \"%s\"",
                            what, tok_show(t, show, sizeof show));
            label[ll++] = lower_case ? lower(c) : c;
        }
        if (ll == 0)
            return fail(ps, t->line, "expected a label between dots in %s \"%s\"", what,
                        tok_show(t, show, sizeof show));
        if (n + 1 + ll + 1 > DNS_NAME_MAX)
            return fail(ps, t->line, "expected a name of at most 255 bytes for %s \"%s\"",
                        what, tok_show(t, show, sizeof show));
        out[n++] = (uint8_t)ll;
        memcpy(out + n, label, ll);
        n += ll;
        if (i < t->len) {
            i++; /* the dot */
            if (i == t->len)
                absolute = true;
        }
    }
    if (absolute) {
        out[n++] = 0;
    } else {
        if (!ps->originlen)
            return fail(ps, t->line,
                        "expected an absolute name (ending in \".\") or $ORIGIN before \"%s\"",
                        tok_show(t, show, sizeof show));
        if (n + ps->originlen > DNS_NAME_MAX)
            return fail(ps, t->line, "expected a name of at most 255 bytes for %s \"%s\"",
                        what, tok_show(t, show, sizeof show));
        for (size_t k = 0; k < ps->originlen; k++)
            out[n + k] = lower_case ? lower(ps->origin[k]) : ps->origin[k];
        n += ps->originlen;
    }
    *outlen = n;
    return true;
}

/* An unsigned decimal number up to max. */
static bool parse_uint(const struct token *t, uint64_t max, uint64_t *out)
{
    if (t->quoted || t->len == 0 || t->len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < t->len; i++) {
        if (t->s[i] < '0' || t->s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(t->s[i] - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

/* A TTL: seconds, or numbers with units s, m, h, d, w ("1h30m"), at most
 * 2^31 - 1 (RFC 2181). */
static bool parse_ttl(const struct token *t, uint32_t *out)
{
    if (t->quoted || t->len == 0 || t->len > 32 || t->s[0] < '0' || t->s[0] > '9')
        return false;
    uint64_t total = 0, v = 0;
    bool digits = false, units = false;
    for (size_t i = 0; i < t->len; i++) {
        char c = t->s[i];
        if (c >= '0' && c <= '9') {
            v = v * 10 + (uint64_t)(c - '0');
            if (v > 0x7fffffff)
                return false;
            digits = true;
            continue;
        }
        uint64_t mult;
        switch (lower((uint8_t)c)) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        case 'w': mult = 604800; break;
        default: return false;
        }
        if (!digits)
            return false;
        total += v * mult;
        v = 0;
        digits = false;
        units = true;
        if (total > 0x7fffffff)
            return false;
    }
    if (digits) {
        if (units)
            return false; /* "1h30": a number after units needs its own unit */
        total += v;
    }
    if (total > 0x7fffffff)
        return false;
    *out = (uint32_t)total;
    return true;
}

static const struct {
    const char *name;
    uint16_t type;
} types[] = {
    {"A", DNS_T_A}, {"NS", DNS_T_NS}, {"CNAME", DNS_T_CNAME}, {"SOA", DNS_T_SOA},
    {"PTR", DNS_T_PTR}, {"MX", DNS_T_MX}, {"TXT", DNS_T_TXT}, {"AAAA", DNS_T_AAAA},
    {"SRV", DNS_T_SRV},
};

static uint16_t type_of(const struct token *t)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (tok_is(t, types[i].name))
            return types[i].type;
    return 0;
}

static const char *type_name(uint16_t type)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].type == type)
            return types[i].name;
    return "?";
}

/* Appends to rdata (rd, *n) with the bound checked. */
static bool rd_put(uint8_t *rd, size_t *n, const void *p, size_t len)
{
    if (*n + len > RDATA_MAX)
        return false;
    memcpy(rd + *n, p, len);
    *n += len;
    return true;
}

static bool rd_u16(uint8_t *rd, size_t *n, uint64_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return rd_put(rd, n, b, 2);
}

static bool rd_u32(uint8_t *rd, size_t *n, uint64_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return rd_put(rd, n, b, 4);
}

/* Expects exactly `want` rdata fields from token `at` on. */
static bool want_fields(struct parser *ps, size_t at, size_t want, uint16_t type,
                        const char *fields, unsigned line)
{
    if (ps->ntok - at == want)
        return true;
    return fail(ps, line, "expected %s after %s (%zu field%s), found %zu", fields,
                type_name(type), want, want == 1 ? "" : "s", ps->ntok - at);
}

static bool name_field(struct parser *ps, size_t i, uint8_t *rd, size_t *n, const char *what)
{
    uint8_t name[DNS_NAME_MAX];
    size_t len;
    if (!parse_name(ps, &ps->tok[i], name, &len, false, what))
        return false;
    return rd_put(rd, n, name, len);
}

static bool num_field(struct parser *ps, size_t i, uint64_t max, uint64_t *v, const char *what)
{
    char show[40];
    if (!parse_uint(&ps->tok[i], max, v))
        return fail(ps, ps->tok[i].line, "expected %s (a number 0..%llu), found \"%s\"", what,
                    (unsigned long long)max, tok_show(&ps->tok[i], show, sizeof show));
    return true;
}

/* The rdata of one record from tokens at.. into rd; *n its length. */
static bool parse_rdata(struct parser *ps, uint16_t type, size_t at, uint8_t *rd, size_t *n,
                        unsigned line)
{
    char show[80];
    uint64_t v;
    *n = 0;
    switch (type) {
    case DNS_T_A:
    case DNS_T_AAAA: {
        if (!want_fields(ps, at, 1, type, "an address", line))
            return false;
        char addr[64];
        uint8_t bin[16];
        tok_show(&ps->tok[at], addr, sizeof addr);
        if (ps->tok[at].quoted || ps->tok[at].len >= sizeof addr ||
            inet_pton(type == DNS_T_A ? AF_INET : AF_INET6, addr, bin) != 1)
            return fail(ps, ps->tok[at].line, "expected an %s address after %s, found \"%s\"",
                        type == DNS_T_A ? "IPv4" : "IPv6", type_name(type), addr);
        return rd_put(rd, n, bin, type == DNS_T_A ? 4 : 16);
    }
    case DNS_T_NS:
    case DNS_T_CNAME:
    case DNS_T_PTR:
        if (!want_fields(ps, at, 1, type, "a domain name", line))
            return false;
        return name_field(ps, at, rd, n, "the target");
    case DNS_T_MX:
        if (!want_fields(ps, at, 2, type, "a preference and an exchange name", line) ||
            !num_field(ps, at, 65535, &v, "the MX preference"))
            return false;
        rd_u16(rd, n, v);
        return name_field(ps, at + 1, rd, n, "the MX exchange");
    case DNS_T_SRV:
        if (!want_fields(ps, at, 4, type, "priority, weight, port and target", line))
            return false;
        for (size_t k = 0; k < 3; k++) {
            static const char *const what[] = {"the SRV priority", "the SRV weight",
                                               "the SRV port"};
            if (!num_field(ps, at + k, 65535, &v, what[k]))
                return false;
            rd_u16(rd, n, v);
        }
        return name_field(ps, at + 3, rd, n, "the SRV target");
    case DNS_T_SOA:
        if (!want_fields(ps, at, 7, type,
                         "mname, rname, serial, refresh, retry, expire and minimum", line) ||
            !name_field(ps, at, rd, n, "the SOA mname") ||
            !name_field(ps, at + 1, rd, n, "the SOA rname") ||
            !num_field(ps, at + 2, 0xffffffffu, &v, "the SOA serial"))
            return false;
        rd_u32(rd, n, v);
        for (size_t k = 3; k < 7; k++) {
            uint32_t t;
            if (!parse_ttl(&ps->tok[at + k], &t))
                return fail(ps, ps->tok[at + k].line,
                            "expected a time (seconds, or with units like 1h) for the SOA %s, "
                            "found \"%s\"",
                            k == 3 ? "refresh" : k == 4 ? "retry" : k == 5 ? "expire" : "minimum",
                            tok_show(&ps->tok[at + k], show, sizeof show));
            rd_u32(rd, n, t);
        }
        return true;
    case DNS_T_TXT:
        if (at == ps->ntok)
            return fail(ps, line, "expected at least one string after TXT");
        for (size_t k = at; k < ps->ntok; k++) {
            uint8_t s[DNS_TXT_MAX];
            bool toolong;
            long len = unescape(&ps->tok[k], s, sizeof s, &toolong);
            if (len < 0)
                return fail(ps, ps->tok[k].line,
                            toolong ? "expected a TXT string of at most 255 bytes"
                                    : "expected \\X or \\DDD (0..255) escapes in a TXT string");
            uint8_t l = (uint8_t)len;
            if (!rd_put(rd, n, &l, 1) || !rd_put(rd, n, s, (size_t)len))
                return fail(ps, ps->tok[k].line, "expected TXT data of at most 65535 bytes");
        }
        return true;
    }
    return false;
}

static bool add_rr(struct parser *ps, const uint8_t *owner, size_t ownerlen, uint16_t type,
                   uint32_t ttl, const uint8_t *rd, size_t rdlen, unsigned line)
{
    if (ps->nrrs == ps->caprrs) {
        size_t cap = ps->caprrs ? ps->caprrs * 2 : 64;
        struct prr *r = realloc(ps->rrs, cap * sizeof *r);
        if (!r)
            return fail(ps, line, "out of memory");
        ps->rrs = r;
        ps->caprrs = cap;
    }
    struct prr *r = &ps->rrs[ps->nrrs];
    r->rdata = malloc(rdlen ? rdlen : 1);
    if (!r->rdata)
        return fail(ps, line, "out of memory");
    memcpy(r->rdata, rd, rdlen);
    memcpy(r->owner, owner, ownerlen);
    r->ownerlen = (uint8_t)ownerlen;
    r->type = type;
    r->ttl = ttl;
    r->rdlen = (uint16_t)rdlen;
    r->line = line;
    r->seq = ps->nrrs++;
    return true;
}

/* One record or directive from ps->tok. */
static bool parse_record(struct parser *ps, uint8_t *rd)
{
    char show[80];
    struct token *t = ps->tok;
    unsigned line = t[0].line;
    if (!ps->blank_owner && !t[0].quoted && t[0].len && t[0].s[0] == '$') {
        if (tok_is(&t[0], "$ORIGIN")) {
            if (ps->ntok != 2)
                return fail(ps, line, "expected one name after $ORIGIN");
            uint8_t o[DNS_NAME_MAX];
            size_t len;
            if (!parse_name(ps, &t[1], o, &len, true, "$ORIGIN"))
                return false;
            memcpy(ps->origin, o, len);
            ps->originlen = len;
            return true;
        }
        if (tok_is(&t[0], "$TTL")) {
            if (ps->ntok != 2 || !parse_ttl(&t[1], &ps->default_ttl))
                return fail(ps, line, "expected one TTL (seconds, or with units like 1h) "
                                      "after $TTL");
            ps->have_ttl = true;
            return true;
        }
        return fail(ps, line, "expected $ORIGIN or $TTL, found \"%s\" (not supported)",
                    tok_show(&t[0], show, sizeof show));
    }

    size_t i = 0;
    if (!ps->blank_owner) {
        size_t len;
        if (!parse_name(ps, &t[0], ps->owner, &len, true, "the owner name"))
            return false;
        ps->ownerlen = len;
        if (!ps->originlen) {
            /* no origin given and no $ORIGIN: the first owner (the SOA's) */
            memcpy(ps->origin, ps->owner, len);
            ps->originlen = len;
        }
        i = 1;
    } else if (!ps->ownerlen) {
        return fail(ps, line, "expected an owner name (the first record cannot start "
                              "with a blank)");
    }
    uint32_t ttl = 0;
    bool have_ttl = false, have_class = false;
    while (i < ps->ntok && (!have_ttl || !have_class)) {
        if (!have_class && tok_is(&t[i], "IN")) {
            have_class = true;
        } else if (!have_class && (tok_is(&t[i], "CH") || tok_is(&t[i], "HS") ||
                                   tok_is(&t[i], "CS"))) {
            return fail(ps, t[i].line, "expected class IN (the only class served), found \"%s\"",
                        tok_show(&t[i], show, sizeof show));
        } else if (!have_ttl && parse_ttl(&t[i], &ttl)) {
            have_ttl = true;
        } else {
            break;
        }
        i++;
    }
    if (i == ps->ntok)
        return fail(ps, line, "expected a record type (SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, "
                              "PTR)");
    uint16_t type = type_of(&t[i]);
    if (!type)
        return fail(ps, t[i].line, "expected a record type (SOA, NS, A, AAAA, CNAME, MX, TXT, "
                                   "SRV, PTR), found \"%s\"",
                    tok_show(&t[i], show, sizeof show));
    i++;
    if (!have_ttl) {
        if (ps->have_ttl) {
            ttl = ps->default_ttl;
        } else {
            return fail(ps, line, "expected a TTL on the record, or $TTL before it");
        }
    } else if (!ps->have_ttl) {
        /* RFC 1035: an omitted TTL is the last one stated */
        ps->default_ttl = ttl;
        ps->have_ttl = true;
    }
    size_t rdlen;
    if (!parse_rdata(ps, type, i, rd, &rdlen, line))
        return false;
    return add_rr(ps, ps->owner, ps->ownerlen, type, ttl, rd, rdlen, line);
}

static int prr_cmp(const void *a, const void *b)
{
    const struct prr *x = a, *y = b;
    int c = dns_name_cmp(x->owner, x->ownerlen, y->owner, y->ownerlen);
    if (c)
        return c;
    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct nname {
    uint8_t name[DNS_NAME_MAX];
    uint8_t len;
};

static int nname_cmp(const void *a, const void *b)
{
    const struct nname *x = a, *y = b;
    return dns_name_cmp(x->name, x->len, y->name, y->len);
}

void dns_zone_free(struct dns_zone *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->nrrs; i++)
        free(z->rrs[i].rdata);
    free(z->rrs);
    free(z->nodes);
    free(z);
}

const struct dns_node *dns_zone_find(const struct dns_zone *z, const uint8_t *name,
                                     size_t namelen)
{
    size_t lo = 0, hi = z->nnodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = dns_name_cmp(z->nodes[mid].name, z->nodes[mid].namelen, name, namelen);
        if (c == 0)
            return &z->nodes[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Indexes the parsed records into a zone (checks: every owner in the zone,
 * one SOA at the apex and none elsewhere, CNAME alone at its name). */
static struct dns_zone *build(struct parser *ps, const uint8_t *origin, size_t originlen)
{
    char nm[1024];
    struct dns_zone *z = calloc(1, sizeof *z);
    struct nname *names = NULL;
    if (!z) {
        fail(ps, ps->line, "out of memory");
        return NULL;
    }
    memcpy(z->origin, origin, originlen);
    z->originlen = (uint8_t)originlen;
    z->origin_labels = dns_name_labels(origin);

    if (ps->nrrs)
        qsort(ps->rrs, ps->nrrs, sizeof *ps->rrs, prr_cmp);
    /* Drop exact duplicates (RFC 2181 5.2: an RRset is a set). */
    size_t w = 0;
    for (size_t r = 0; r < ps->nrrs; r++) {
        struct prr *p = &ps->rrs[r];
        if (w && prr_cmp(&ps->rrs[w - 1], p) != 0 && ps->rrs[w - 1].type == p->type &&
            dns_name_cmp(ps->rrs[w - 1].owner, ps->rrs[w - 1].ownerlen, p->owner,
                         p->ownerlen) == 0 &&
            ps->rrs[w - 1].rdlen == p->rdlen) {
            /* same owner and type: compare rdata against the whole set so far */
            bool dup = false;
            for (size_t k = w; k-- > 0;) {
                struct prr *q = &ps->rrs[k];
                if (q->type != p->type || dns_name_cmp(q->owner, q->ownerlen, p->owner,
                                                       p->ownerlen) != 0)
                    break;
                if (q->rdlen == p->rdlen && memcmp(q->rdata, p->rdata, p->rdlen) == 0) {
                    dup = true;
                    break;
                }
            }
            if (dup) {
                free(p->rdata);
                continue;
            }
        }
        ps->rrs[w++] = *p;
    }
    ps->nrrs = w;

    /* Checks, and the names: owners and their ancestors down to the apex. */
    size_t nnames = 0, capnames = ps->nrrs * 2 + 1;
    names = malloc(capnames * sizeof *names);
    if (!names) {
        fail(ps, ps->line, "out of memory");
        goto err;
    }
    const struct prr *soa = NULL;
    for (size_t r = 0; r < ps->nrrs; r++) {
        struct prr *p = &ps->rrs[r];
        dns_name_text(p->owner, nm, sizeof nm);
        if (!dns_name_under(p->owner, p->ownerlen, origin, originlen)) {
            char on[1024];
            dns_name_text(origin, on, sizeof on);
            fail(ps, p->line, "expected a name in the zone %s, found %s", on, nm);
            goto err;
        }
        bool apex = p->ownerlen == originlen;
        if (p->type == DNS_T_SOA) {
            if (!apex) {
                fail(ps, p->line, "expected SOA at the zone's apex only, found it at %s", nm);
                goto err;
            }
            if (soa) {
                fail(ps, p->line, "expected one SOA record (another is on line %u)", soa->line);
                goto err;
            }
            soa = p;
        }
        if (r > 0 && dns_name_cmp(ps->rrs[r - 1].owner, ps->rrs[r - 1].ownerlen, p->owner,
                                  p->ownerlen) == 0 &&
            (p->type == DNS_T_CNAME || ps->rrs[r - 1].type == DNS_T_CNAME) &&
            !(p->type == DNS_T_CNAME && ps->rrs[r - 1].type == DNS_T_CNAME)) {
            const struct prr *other = p->type == DNS_T_CNAME ? &ps->rrs[r - 1] : p;
            const struct prr *later = ps->rrs[r - 1].line > p->line ? &ps->rrs[r - 1] : p;
            fail(ps, later->line, "expected no other data at %s, which has a CNAME (%s on "
                                  "line %u)", nm, type_name(other->type), other->line);
            goto err;
        }
        if (r > 0 && p->type == DNS_T_CNAME && ps->rrs[r - 1].type == DNS_T_CNAME &&
            dns_name_cmp(ps->rrs[r - 1].owner, ps->rrs[r - 1].ownerlen, p->owner,
                         p->ownerlen) == 0) {
            fail(ps, p->line, "expected one CNAME at %s (another is on line %u)", nm,
                 ps->rrs[r - 1].line);
            goto err;
        }
        if (r == 0 || dns_name_cmp(ps->rrs[r - 1].owner, ps->rrs[r - 1].ownerlen, p->owner,
                                   p->ownerlen) != 0) {
            /* the owner and its ancestors above the apex */
            size_t off = 0;
            while (p->ownerlen - off >= originlen) {
                if (nnames == capnames) {
                    capnames *= 2;
                    struct nname *nn = realloc(names, capnames * sizeof *names);
                    if (!nn) {
                        fail(ps, ps->line, "out of memory");
                        goto err;
                    }
                    names = nn;
                }
                names[nnames].len = (uint8_t)(p->ownerlen - off);
                memcpy(names[nnames].name, p->owner + off, p->ownerlen - off);
                nnames++;
                if (p->ownerlen - off == originlen)
                    break;
                off += 1 + p->owner[off];
            }
        }
    }
    if (!soa) {
        char on[1024];
        dns_name_text(origin, on, sizeof on);
        snprintf(ps->err, ps->errlen, "%s:%u: expected a SOA record at the apex %s", ps->name,
                 ps->line, on);
        goto err;
    }
    qsort(names, nnames, sizeof *names, nname_cmp);
    size_t u = 0;
    for (size_t k = 0; k < nnames; k++)
        if (u == 0 || nname_cmp(&names[u - 1], &names[k]) != 0)
            names[u++] = names[k];
    nnames = u;

    z->nodes = calloc(nnames, sizeof *z->nodes);
    z->rrs = calloc(ps->nrrs ? ps->nrrs : 1, sizeof *z->rrs);
    if (!z->nodes || !z->rrs) {
        fail(ps, ps->line, "out of memory");
        goto err;
    }
    z->nnodes = nnames;
    size_t r = 0;
    for (size_t k = 0; k < nnames; k++) {
        struct dns_node *n = &z->nodes[k];
        memcpy(n->name, names[k].name, names[k].len);
        n->namelen = names[k].len;
        n->first = (uint32_t)r;
        while (r < ps->nrrs &&
               dns_name_cmp(ps->rrs[r].owner, ps->rrs[r].ownerlen, n->name, n->namelen) == 0) {
            struct prr *p = &ps->rrs[r];
            struct dns_rr *rr = &z->rrs[r];
            rr->type = p->type;
            rr->ttl = p->ttl;
            rr->rdlen = p->rdlen;
            rr->rdata = p->rdata;
            p->rdata = NULL;
            if (p->type == DNS_T_NS && n->namelen != originlen)
                n->cut = true;
            if (p->type == DNS_T_SOA) {
                z->soa = rr;
                const uint8_t *e = rr->rdata + rr->rdlen - 4;
                z->minimum = (uint32_t)e[0] << 24 | (uint32_t)e[1] << 16 |
                             (uint32_t)e[2] << 8 | e[3];
                if (rr->ttl < z->minimum)
                    z->minimum = rr->ttl; /* RFC 2308: the lesser of the two */
            }
            r++;
        }
        n->count = (uint32_t)(r - n->first);
    }
    z->nrrs = r;
    z->apex = dns_zone_find(z, origin, originlen);
    free(names);
    return z;

err:
    free(names);
    dns_zone_free(z);
    return NULL;
}

struct dns_zone *dns_zone_parse(const char *text, size_t len, const char *name,
                                const char *origin, char *err, size_t errlen)
{
    struct parser ps;
    memset(&ps, 0, sizeof ps);
    ps.name = name;
    ps.p = text;
    ps.end = text + len;
    ps.line = 1;
    ps.err = err;
    ps.errlen = errlen;
    struct dns_zone *z = NULL;
    uint8_t *rd = malloc(RDATA_MAX);
    uint8_t apex[DNS_NAME_MAX];
    size_t apexlen = 0;
    if (!rd) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    if (origin) {
        char o[1100];
        size_t olen = strlen(origin);
        if (olen == 0 || olen > 1024) {
            snprintf(err, errlen, "origin: expected a domain name (\"example.com.\")");
            goto out;
        }
        snprintf(o, sizeof o, "%s%s", origin, origin[olen - 1] == '.' ? "" : ".");
        struct token t = {o, strlen(o), false, 0};
        if (!parse_name(&ps, &t, apex, &apexlen, true, "origin")) {
            snprintf(err, errlen, "origin: expected a domain name (\"example.com.\"), found "
                                  "\"%.100s\"", origin);
            goto out;
        }
        memcpy(ps.origin, apex, apexlen);
        ps.originlen = apexlen;
    }
    int got;
    while ((got = next_record(&ps)) == 1) {
        if (!parse_record(&ps, rd))
            goto out;
        if (!apexlen && ps.nrrs) {
            /* no origin given: the $ORIGIN in force at the first
             * record, else that record's owner (parse_record made it
             * the origin) */
            memcpy(apex, ps.origin, ps.originlen);
            apexlen = ps.originlen;
        }
    }
    if (got < 0)
        goto out;
    if (!apexlen) {
        snprintf(err, errlen, "%s:%u: expected a SOA record (the file has no records)", name,
                 ps.line);
        goto out;
    }
    z = build(&ps, apex, apexlen);
out:
    for (size_t i = 0; i < ps.nrrs; i++)
        free(ps.rrs[i].rdata);
    free(ps.rrs);
    free(rd);
    return z;
}

struct dns_zone *dns_zone_load(const char *path, const char *origin, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= ZONE_FILE_MAX) {
                snprintf(err, errlen, "%s: larger than %u MiB", path, ZONE_FILE_MAX >> 20);
                free(text);
                fclose(f);
                return NULL;
            }
            cap = cap ? cap * 2 : 65536;
            char *t = realloc(text, cap);
            if (!t) {
                snprintf(err, errlen, "%s: out of memory", path);
                free(text);
                fclose(f);
                return NULL;
            }
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        free(text);
        fclose(f);
        return NULL;
    }
    fclose(f);
    struct dns_zone *z = dns_zone_parse(text, len, path, origin, err, errlen);
    free(text);
    return z;
}
