/*
 * dns_wire.c - DNS names and messages on the wire (RFC 1035 section 4):
 * reading a name that may use compression pointers without trusting the
 * message (every pointer must point strictly backwards, so a loop cannot
 * be built; length and label limits are checked), and building a response
 * into a bounded buffer with name compression.
 *
 * The builder remembers where each name it wrote (and each of its
 * suffixes) starts, up to DNS_COMPRESS_SLOTS of them below offset 0x4000,
 * and writes a later name as its longest remembered suffix's pointer.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "dns.h"

static inline uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

int dns_name_read(const uint8_t *msg, size_t len, size_t *off, uint8_t *out, bool allow_ptr,
                  bool lower_case)
{
    size_t pos = *off, outlen = 0, end = 0;
    bool jumped = false;
    for (;;) {
        if (pos >= len)
            return -1;
        uint8_t l = msg[pos];
        if ((l & 0xc0) == 0xc0) {
            if (!allow_ptr || pos + 1 >= len)
                return -1;
            size_t target = ((size_t)(l & 0x3f) << 8) | msg[pos + 1];
            /* strictly backwards, to the start of something already read */
            if (target >= pos || target < DNS_HEADER)
                return -1;
            if (!jumped)
                end = pos + 2;
            jumped = true;
            pos = target;
            continue;
        }
        if (l & 0xc0)
            return -1; /* 0x40 / 0x80: extended label types, not used */
        if (outlen + 1 + l > DNS_NAME_MAX)
            return -1;
        if (pos + 1 + l > len)
            return -1;
        out[outlen++] = l;
        if (l == 0)
            break;
        for (size_t i = 0; i < l; i++)
            out[outlen++] = lower_case ? lower(msg[pos + 1 + i]) : msg[pos + 1 + i];
        pos += 1 + l;
    }
    *off = jumped ? end : pos + 1;
    return (int)outlen;
}

int dns_name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

unsigned dns_name_labels(const uint8_t *name)
{
    unsigned n = 0;
    while (*name) {
        name += 1 + *name;
        n++;
    }
    return n;
}

bool dns_name_under(const uint8_t *name, size_t len, const uint8_t *zone, size_t zonelen)
{
    if (len < zonelen)
        return false;
    size_t pos = 0;
    while (len - pos > zonelen) {
        pos += 1 + name[pos];
        if (pos >= len)
            return false;
    }
    if (len - pos != zonelen)
        return false;
    for (size_t i = 0; i < zonelen; i++)
        if (lower(name[pos + i]) != zone[i])
            return false;
    return true;
}

void dns_name_text(const uint8_t *name, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen)
        return;
    if (!*name) {
        snprintf(out, outlen, ".");
        return;
    }
    while (*name && o + 1 < outlen) {
        uint8_t l = *name++;
        for (uint8_t i = 0; i < l && o + 5 < outlen; i++, name++) {
            uint8_t c = *name;
            if (c == '.' || c == '\\')
                o += (size_t)snprintf(out + o, outlen - o, "\\%c", c);
            else if (c > 0x20 && c < 0x7f)
                out[o++] = (char)c;
            else
                o += (size_t)snprintf(out + o, outlen - o, "\\%03u", c);
        }
        if (o + 1 < outlen)
            out[o++] = '.';
    }
    out[o < outlen ? o : outlen - 1] = '\0';
}

void dns_msg_init(struct dns_msg *m, uint8_t *buf, size_t cap)
{
    m->buf = buf;
    m->cap = cap;
    m->len = 0;
    m->full = false;
    m->nslots = 0;
}

bool dns_msg_bytes(struct dns_msg *m, const void *p, size_t n)
{
    if (m->len + n > m->cap) {
        m->full = true;
        return false;
    }
    memcpy(m->buf + m->len, p, n);
    m->len += n;
    return true;
}

bool dns_msg_u16(struct dns_msg *m, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return dns_msg_bytes(m, b, 2);
}

bool dns_msg_u32(struct dns_msg *m, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return dns_msg_bytes(m, b, 4);
}

/* Whether the (possibly compressed) name at buf[off] equals the
 * uncompressed wire name `name`, ignoring case.  The buffer is our own
 * output, so its pointers are known good (each points backwards). */
static bool name_at_equals(const uint8_t *buf, size_t off, const uint8_t *name)
{
    for (unsigned guard = 0; guard < 128; guard++) {
        uint8_t l = buf[off];
        if ((l & 0xc0) == 0xc0) {
            off = ((size_t)(l & 0x3f) << 8) | buf[off + 1];
            continue;
        }
        if (l != *name)
            return false;
        if (l == 0)
            return true;
        for (uint8_t i = 1; i <= l; i++)
            if (lower(buf[off + i]) != lower(name[i]))
                return false;
        off += 1 + l;
        name += 1 + l;
    }
    return false;
}

bool dns_msg_name(struct dns_msg *m, const uint8_t *name, size_t namelen, bool compress)
{
    /* The longest suffix already in the message. */
    size_t pos = 0, match_at = namelen - 1, match_off = 0;
    bool found = false;
    if (compress) {
        while (name[pos]) {
            for (unsigned s = 0; s < m->nslots; s++) {
                if (name_at_equals(m->buf, m->slot[s], name + pos)) {
                    match_at = pos;
                    match_off = m->slot[s];
                    found = true;
                    break;
                }
            }
            if (found)
                break;
            pos += 1 + name[pos];
        }
    }
    size_t need = match_at + (found ? 2 : 1);
    if (m->len + need > m->cap) {
        m->full = true;
        return false;
    }
    size_t start = m->len;
    memcpy(m->buf + m->len, name, match_at);
    m->len += match_at;
    if (found) {
        m->buf[m->len++] = (uint8_t)(0xc0 | (match_off >> 8));
        m->buf[m->len++] = (uint8_t)match_off;
    } else {
        m->buf[m->len++] = 0;
    }
    /* Remember the suffixes written here in full. */
    for (size_t p = 0; p < match_at && m->nslots < DNS_COMPRESS_SLOTS; p += 1 + name[p])
        if (start + p < 0x4000)
            m->slot[m->nslots++] = (uint16_t)(start + p);
    return true;
}

/* The rdata of rr with its names compressed (NS, CNAME, PTR, MX, SOA: the
 * types RFC 3597 allows compression in) or copied. */
static bool msg_rdata(struct dns_msg *m, const struct dns_rr *rr)
{
    const uint8_t *r = rr->rdata;
    size_t n1, n2;
    switch (rr->type) {
    case DNS_T_NS:
    case DNS_T_CNAME:
    case DNS_T_PTR:
        return dns_msg_name(m, r, rr->rdlen, true);
    case DNS_T_MX:
        return dns_msg_bytes(m, r, 2) && dns_msg_name(m, r + 2, (size_t)rr->rdlen - 2, true);
    case DNS_T_SOA:
        n1 = 0;
        while (r[n1])
            n1 += 1 + r[n1];
        n1++;
        n2 = 0;
        while (r[n1 + n2])
            n2 += 1 + r[n1 + n2];
        n2++;
        return dns_msg_name(m, r, n1, true) && dns_msg_name(m, r + n1, n2, true) &&
               dns_msg_bytes(m, r + n1 + n2, 20);
    default:
        return dns_msg_bytes(m, r, rr->rdlen);
    }
}

bool dns_msg_rr(struct dns_msg *m, const uint8_t *owner, size_t ownerlen, const struct dns_rr *rr)
{
    size_t start = m->len;
    unsigned slots = m->nslots;
    if (!dns_msg_name(m, owner, ownerlen, true) || !dns_msg_u16(m, rr->type) ||
        !dns_msg_u16(m, DNS_C_IN) || !dns_msg_u32(m, rr->ttl) || !dns_msg_u16(m, 0))
        goto undo;
    size_t rdstart = m->len;
    if (!msg_rdata(m, rr))
        goto undo;
    size_t rdlen = m->len - rdstart;
    m->buf[rdstart - 2] = (uint8_t)(rdlen >> 8);
    m->buf[rdstart - 1] = (uint8_t)rdlen;
    return true;
undo:
    m->len = start;
    m->nslots = slots;
    m->full = true;
    return false;
}
