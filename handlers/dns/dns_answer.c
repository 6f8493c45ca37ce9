/*
 * dns_answer.c - one DNS query in, one authoritative response out (RFC 1035,
 * RFC 2308 negative answers, RFC 6891 EDNS0, RFC 4592 wildcards, RFC 8482
 * minimal ANY).  No recursion: names outside the listener's zones are
 * REFUSED.
 *
 * The query is not trusted: a header shorter than 12 bytes or a message
 * with QR set (a response: answering it could start a loop) is dropped;
 * QDCOUNT other than 1, a compression pointer or a bad label in the
 * question, answer or authority records, more than one OPT, or records that
 * run past the end are FORMERR; an opcode other than QUERY is NOTIMP; an
 * EDNS version other than 0 is BADVERS.
 *
 * Size: a UDP answer fits 512 bytes, or the client's EDNS0 payload size
 * (at least 512) capped at the listener's udp_max.  When the answer or
 * authority section does not fit, the response is the question alone with
 * TC=1 (the client retries over TCP); additional records that do not fit
 * are left out.  So a UDP response is never larger than the client said it
 * can take, and ANY gets one RRset over UDP (all of them over TCP).
 */
#include <string.h>

#include "dns.h"

#define CHAIN_MAX 8 /* CNAMEs followed inside the zone */

static inline uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The response under construction, and what went in it. */
struct resp {
    struct dns_msg m;
    const struct dns_zone *z;
    size_t qend;           /* end of the question */
    uint16_t count[3];     /* answer, authority, additional */
    bool tc;
    bool aa;
    bool tcp;
};

/* Adds one record to section sec (0 answer, 1 authority, 2 additional).
 * A record of the first two that does not fit truncates the response. */
static bool add(struct resp *r, int sec, const uint8_t *owner, size_t ownerlen,
                const struct dns_rr *rr, uint32_t ttl)
{
    if (r->tc)
        return false;
    struct dns_rr copy = *rr;
    copy.ttl = ttl;
    if (dns_msg_rr(&r->m, owner, ownerlen, &copy)) {
        r->count[sec]++;
        return true;
    }
    if (sec < 2) {
        r->tc = true;
        r->m.len = r->qend;
        r->m.nslots = 0;
        r->count[0] = r->count[1] = r->count[2] = 0;
    }
    return false;
}

static void add_set(struct resp *r, int sec, const uint8_t *owner, size_t ownerlen,
                    const struct dns_node *n, uint16_t type)
{
    for (uint32_t i = 0; i < n->count; i++) {
        const struct dns_rr *rr = &r->z->rrs[n->first + i];
        if (rr->type == type && !add(r, sec, owner, ownerlen, rr, rr->ttl) && sec < 2)
            return;
    }
}

static bool has_type(const struct dns_zone *z, const struct dns_node *n, uint16_t type)
{
    for (uint32_t i = 0; i < n->count; i++)
        if (z->rrs[n->first + i].type == type)
            return true;
    return false;
}

static size_t lower_copy(const uint8_t *name, uint8_t *out)
{
    size_t i = 0;
    for (;;) {
        uint8_t l = name[i];
        out[i++] = l;
        if (!l)
            return i;
        for (uint8_t k = 0; k < l; k++, i++)
            out[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (uint8_t)(name[i] + 32) : name[i];
    }
}

/* The A and AAAA records of a target name in the zone, as additional data. */
static void add_glue(struct resp *r, const uint8_t *target)
{
    uint8_t low[DNS_NAME_MAX];
    size_t len = lower_copy(target, low);
    const struct dns_node *n = dns_zone_find(r->z, low, len);
    if (!n)
        return;
    add_set(r, 2, target, len, n, DNS_T_A);
    add_set(r, 2, target, len, n, DNS_T_AAAA);
}

/* Additional data for the records of type `type` at n (NS, MX, SRV targets). */
static void additional_for(struct resp *r, const struct dns_node *n, uint16_t type)
{
    for (uint32_t i = 0; i < n->count; i++) {
        const struct dns_rr *rr = &r->z->rrs[n->first + i];
        if (rr->type != type)
            continue;
        if (type == DNS_T_NS)
            add_glue(r, rr->rdata);
        else if (type == DNS_T_MX)
            add_glue(r, rr->rdata + 2);
        else if (type == DNS_T_SRV)
            add_glue(r, rr->rdata + 6);
    }
}

static void add_soa(struct resp *r)
{
    add(r, 1, r->z->origin, r->z->originlen, r->z->soa, r->z->minimum);
}

/* The highest delegation (a node with NS below the apex) at or above name. */
static const struct dns_node *find_cut(const struct dns_zone *z, const uint8_t *name,
                                       size_t len)
{
    const struct dns_node *cut = NULL;
    size_t off = 0;
    while (len - off > z->originlen) {
        const struct dns_node *n = dns_zone_find(z, name + off, len - off);
        if (n && n->cut)
            cut = n;
        off += 1 + name[off];
    }
    return cut;
}

/*
 * Answers qtype for `name` (owner as written, `low` lower case) in r->z,
 * following CNAMEs inside the zone.  Returns the RCODE.
 */
static int lookup(struct resp *r, const uint8_t *name, size_t len, uint16_t qtype)
{
    uint8_t cur[DNS_NAME_MAX], low[DNS_NAME_MAX];
    memcpy(cur, name, len);
    lower_copy(name, low);
    const struct dns_zone *z = r->z;

    for (int hop = 0; hop <= CHAIN_MAX; hop++) {
        const struct dns_node *cut = find_cut(z, low, len);
        if (cut) {
            /* a referral: not ours to answer */
            if (r->count[0] == 0)
                r->aa = false;
            add_set(r, 1, cut->name, cut->namelen, cut, DNS_T_NS);
            additional_for(r, cut, DNS_T_NS);
            return DNS_R_NOERROR;
        }
        const struct dns_node *n = dns_zone_find(z, low, len);
        if (!n) {
            /* the closest encloser, then its wildcard */
            size_t off = 0;
            const struct dns_node *ce = NULL;
            while (!ce && len - off > z->originlen) {
                off += 1 + low[off];
                ce = dns_zone_find(z, low + off, len - off);
            }
            if (!ce)
                ce = z->apex;
            uint8_t wild[DNS_NAME_MAX];
            size_t wlen = 2 + ce->namelen;
            if (wlen <= DNS_NAME_MAX) {
                wild[0] = 1;
                wild[1] = '*';
                memcpy(wild + 2, ce->name, ce->namelen);
                n = dns_zone_find(z, wild, wlen);
            }
            if (!n) {
                add_soa(r);
                return DNS_R_NXDOMAIN;
            }
        }
        if (n->count == 0) {
            add_soa(r); /* an empty non-terminal: NODATA */
            return DNS_R_NOERROR;
        }
        if (qtype != DNS_T_CNAME && qtype != DNS_T_ANY && has_type(z, n, DNS_T_CNAME)) {
            const struct dns_rr *c = NULL;
            for (uint32_t i = 0; i < n->count; i++)
                if (z->rrs[n->first + i].type == DNS_T_CNAME)
                    c = &z->rrs[n->first + i];
            if (!add(r, 0, cur, len, c, c->ttl))
                return DNS_R_NOERROR;
            len = c->rdlen;
            memcpy(cur, c->rdata, len);
            lower_copy(cur, low);
            if (!dns_name_under(low, len, z->origin, z->originlen))
                return DNS_R_NOERROR; /* the client follows it elsewhere */
            continue;
        }
        if (qtype == DNS_T_ANY) {
            /* RFC 8482: one RRset over UDP; everything over TCP */
            uint16_t first = z->rrs[n->first].type;
            for (uint32_t i = 0; i < n->count; i++) {
                const struct dns_rr *rr = &z->rrs[n->first + i];
                if (!r->tcp && rr->type != first)
                    break;
                if (!add(r, 0, cur, len, rr, rr->ttl))
                    break;
            }
            return DNS_R_NOERROR;
        }
        if (!has_type(z, n, qtype)) {
            add_soa(r);
            return DNS_R_NOERROR;
        }
        add_set(r, 0, cur, len, n, qtype);
        if (qtype == DNS_T_NS || qtype == DNS_T_MX || qtype == DNS_T_SRV)
            additional_for(r, n, qtype);
        return DNS_R_NOERROR;
    }
    return DNS_R_NOERROR; /* a chain longer than CHAIN_MAX: what we have */
}

/* Skips one resource record at q[*off]; false when it is malformed. */
static bool skip_rr(const uint8_t *q, size_t qlen, size_t *off, uint8_t *name, int *namelen,
                    uint16_t *type, uint16_t *class, uint32_t *ttl, uint16_t *rdlen)
{
    *namelen = dns_name_read(q, qlen, off, name, true, true);
    if (*namelen < 0 || *off + 10 > qlen)
        return false;
    *type = get16(q + *off);
    *class = get16(q + *off + 2);
    *ttl = (uint32_t)get16(q + *off + 4) << 16 | get16(q + *off + 6);
    *rdlen = get16(q + *off + 8);
    *off += 10;
    if (*off + *rdlen > qlen)
        return false;
    *off += *rdlen;
    return true;
}

size_t dns_answer(const struct dns_zones *zs, const uint8_t *q, size_t qlen, uint8_t *out,
                  size_t outcap, bool tcp, struct dns_answer_info *info)
{
    info->rcode = -1;
    info->qtype = 0;
    info->truncated = false;
    if (qlen < DNS_HEADER || outcap < 512 || (q[2] & 0x80))
        return 0;

    unsigned opcode = (q[2] >> 3) & 0xf;
    uint16_t qd = get16(q + 4), an = get16(q + 6), ns = get16(q + 8), ar = get16(q + 10);
    struct resp r;
    memset(&r, 0, sizeof r);
    r.tcp = tcp;
    size_t limit = outcap < 65535 ? outcap : 65535;
    if (!tcp && limit > 512)
        limit = 512;
    dns_msg_init(&r.m, out, limit);
    memcpy(out, q, 2);                             /* ID */
    out[2] = (uint8_t)(0x80 | (q[2] & 0x79));      /* QR, opcode, RD */
    out[3] = 0;
    memset(out + 4, 0, 8);
    r.m.len = DNS_HEADER;
    int rcode = DNS_R_NOERROR;
    uint16_t qtype = 0, qclass = 0;
    uint8_t qname[DNS_NAME_MAX];
    int qnamelen = -1;
    size_t off = DNS_HEADER;
    bool edns = false;
    uint16_t edns_size = 512;
    uint8_t edns_version = 0;

    if (opcode != 0) {
        rcode = DNS_R_NOTIMP;
        goto finish;
    }
    if (qd != 1) {
        rcode = DNS_R_FORMERR;
        goto finish;
    }
    qnamelen = dns_name_read(q, qlen, &off, qname, false, true);
    if (qnamelen < 0 || off + 4 > qlen) {
        qnamelen = -1;
        rcode = DNS_R_FORMERR;
        goto finish;
    }
    size_t qname_at = off - (size_t)qnamelen;
    qtype = get16(q + off);
    qclass = get16(q + off + 2);
    off += 4;
    info->qtype = qtype;
    /* The question as asked (the client's case). */
    dns_msg_name(&r.m, q + qname_at, (size_t)qnamelen, true);
    dns_msg_u16(&r.m, qtype);
    dns_msg_u16(&r.m, qclass);
    r.qend = r.m.len;
    put16(out + 4, 1);

    if (an || ns) {
        rcode = DNS_R_FORMERR; /* a query carries no answer or authority */
        goto finish;
    }
    for (unsigned i = 0; i < ar; i++) {
        uint8_t name[DNS_NAME_MAX];
        int namelen;
        uint16_t type, class, rdlen;
        uint32_t ttl;
        if (!skip_rr(q, qlen, &off, name, &namelen, &type, &class, &ttl, &rdlen)) {
            rcode = DNS_R_FORMERR;
            goto finish;
        }
        if (type == DNS_T_OPT) {
            if (edns || namelen != 1) {
                rcode = DNS_R_FORMERR; /* RFC 6891 6.1.1: one OPT, owner root */
                goto finish;
            }
            edns = true;
            edns_size = class;
            edns_version = (uint8_t)(ttl >> 16);
        }
    }
    if (edns) {
        if (!tcp) {
            size_t want = edns_size < 512 ? 512 : edns_size;
            if (want > zs->udp_max)
                want = zs->udp_max;
            if (want > outcap)
                want = outcap;
            r.m.cap = want;
        }
        r.m.cap -= 11; /* room for our OPT */
        if (edns_version != 0) {
            rcode = DNS_R_BADVERS;
            goto finish;
        }
    }
    if (qtype == DNS_T_OPT || (qtype >= 128 && qtype <= 250 && qtype != 0)) {
        rcode = DNS_R_FORMERR; /* meta types are not questions (RFC 6895) */
        goto finish;
    }
    if (qclass != DNS_C_IN && qclass != DNS_C_ANY) {
        rcode = DNS_R_REFUSED;
        goto finish;
    }
    if (qtype == DNS_T_AXFR || qtype == DNS_T_IXFR) {
        rcode = DNS_R_REFUSED; /* no zone transfers */
        goto finish;
    }
    const struct dns_zone *best = NULL;
    for (size_t i = 0; i < zs->n; i++) {
        const struct dns_zone *z = zs->zone[i];
        if (dns_name_under(qname, (size_t)qnamelen, z->origin, z->originlen) &&
            (!best || z->originlen > best->originlen))
            best = z;
    }
    if (!best) {
        rcode = DNS_R_REFUSED;
        goto finish;
    }
    r.z = best;
    r.aa = true;
    rcode = lookup(&r, q + qname_at, (size_t)qnamelen, qtype);

finish:
    if (rcode == DNS_R_FORMERR || rcode == DNS_R_NOTIMP) {
        if (qnamelen < 0 || rcode == DNS_R_NOTIMP) {
            r.m.len = DNS_HEADER;
            put16(out + 4, 0);
        }
        r.count[0] = r.count[1] = r.count[2] = 0;
        r.tc = false;
        r.aa = false;
    }
    if (r.tc)
        r.aa = r.aa; /* TC=1: the question alone, AA kept */
    out[2] = (uint8_t)(out[2] | (r.aa ? 0x04 : 0) | (r.tc ? 0x02 : 0));
    out[3] = (uint8_t)(rcode & 0xf);
    put16(out + 6, r.count[0]);
    put16(out + 8, r.count[1]);
    uint16_t arcount = r.count[2];
    if (edns) {
        /* our OPT: root, type 41, our payload size, extended rcode */
        uint16_t size = tcp ? 65535 : zs->udp_max;
        uint8_t opt[11] = {0, 0, DNS_T_OPT, (uint8_t)(size >> 8), (uint8_t)size,
                           (uint8_t)(rcode >> 4), 0, 0, 0, 0, 0};
        r.m.cap += 11;
        if (dns_msg_bytes(&r.m, opt, sizeof opt))
            arcount++;
    }
    put16(out + 10, arcount);
    info->rcode = rcode;
    info->truncated = r.tc;
    return r.m.len;
}
