/*
 * dns.h - what the files of the authoritative DNS handler (handlers/dns/,
 * docs/dns.md) share: the zone held in memory (dns_zone.c builds it from an
 * RFC 1035 master file), the wire helpers (dns_wire.c: names with
 * compression pointers read safely, a message builder that compresses), and
 * the answer path (dns_answer.c: one query message in, one response out).
 *
 * None of this calls wharf: dns.c is the only file that speaks to the
 * framework, so the parser and the answer path are unit-tested
 * (tests/check_dns.c) and fuzzed (fuzz/fuzz_dns.c) alone.
 */
#ifndef DNS_H
#define DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 255  /* a name in wire form, root label included */
#define DNS_LABEL_MAX 63
#define DNS_TXT_MAX 255   /* one character-string */
#define DNS_HEADER 12

enum dns_type {
    DNS_T_A = 1, DNS_T_NS = 2, DNS_T_CNAME = 5, DNS_T_SOA = 6, DNS_T_PTR = 12,
    DNS_T_MX = 15, DNS_T_TXT = 16, DNS_T_AAAA = 28, DNS_T_SRV = 33, DNS_T_OPT = 41,
    DNS_T_IXFR = 251, DNS_T_AXFR = 252, DNS_T_ANY = 255,
};
enum dns_rcode {
    DNS_R_NOERROR = 0, DNS_R_FORMERR = 1, DNS_R_SERVFAIL = 2, DNS_R_NXDOMAIN = 3,
    DNS_R_NOTIMP = 4, DNS_R_REFUSED = 5, DNS_R_BADVERS = 16,
};
#define DNS_C_IN 1
#define DNS_C_ANY 255

/* ---- the zone (dns_zone.c) ------------------------------------------------ */

/* One resource record.  rdata is in wire form with its domain names
 * uncompressed (the builder compresses those of NS, CNAME, PTR, MX, SOA). */
struct dns_rr {
    uint16_t type;
    uint16_t rdlen;
    uint32_t ttl;
    uint8_t *rdata;
};

/* One owner name with its records sorted by type (none for an empty
 * non-terminal: a name that exists only because names below it do). */
struct dns_node {
    uint8_t name[DNS_NAME_MAX]; /* wire form, lower case */
    uint8_t namelen;
    bool cut;                   /* NS records below the apex: a delegation */
    uint32_t first, count;      /* rrs[first .. first+count) of the zone */
};

/* A zone: immutable once built, so any number of threads read it. */
struct dns_zone {
    uint8_t origin[DNS_NAME_MAX]; /* wire form, lower case */
    uint8_t originlen;
    unsigned origin_labels;
    struct dns_node *nodes;       /* sorted by dns_name_cmp of their names */
    size_t nnodes;
    struct dns_rr *rrs;
    size_t nrrs;
    const struct dns_node *apex;
    const struct dns_rr *soa;
    uint32_t minimum;             /* the SOA's negative-answer TTL (RFC 2308) */
};

/*
 * Parses the master file `path` for the zone `origin` (text, "example.com."
 * or "example.com"; NULL: the $ORIGIN in force at the first record, else that
 * record's owner, which must then be absolute).  Returns the
 * zone, or NULL after writing "PATH:LINE: what was expected" (or why the file
 * cannot be read) into err.  Free it with dns_zone_free.
 */
struct dns_zone *dns_zone_load(const char *path, const char *origin, char *err, size_t errlen);
/* The same from text in memory (name: what errors call it). */
struct dns_zone *dns_zone_parse(const char *text, size_t len, const char *name,
                                const char *origin, char *err, size_t errlen);
void dns_zone_free(struct dns_zone *z);
/* The node of a wire-form lower-case name, or NULL. */
const struct dns_node *dns_zone_find(const struct dns_zone *z, const uint8_t *name,
                                     size_t namelen);

/* ---- wire helpers (dns_wire.c) ------------------------------------------- */

/*
 * Reads the name at msg[*off] into out (wire form, uncompressed, at most
 * DNS_NAME_MAX bytes, lower-cased when lower), following compression
 * pointers only when allow_ptr, each strictly backwards (so there are no
 * loops).  Advances *off past the name as it stands in the message.
 * Returns the name's length, or -1 when it is malformed, too long or runs
 * past len.
 */
int dns_name_read(const uint8_t *msg, size_t len, size_t *off, uint8_t *out, bool allow_ptr,
                  bool lower);
/* memcmp-like order of two wire names (used for the node index). */
int dns_name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* The number of labels of a wire name, the root not counted. */
unsigned dns_name_labels(const uint8_t *name);
/* Whether wire name `name` equals `zone` or lies below it. */
bool dns_name_under(const uint8_t *name, size_t len, const uint8_t *zone, size_t zonelen);
/* Text form of a wire name ("www.example.com."), for messages. */
void dns_name_text(const uint8_t *name, char *out, size_t outlen);

#define DNS_COMPRESS_SLOTS 64

/* A response being built in a caller's buffer. */
struct dns_msg {
    uint8_t *buf;
    size_t cap;       /* how far it may grow (the client's payload size) */
    size_t len;
    bool full;        /* something did not fit */
    unsigned nslots;  /* names written, for compression */
    uint16_t slot[DNS_COMPRESS_SLOTS];
};

void dns_msg_init(struct dns_msg *m, uint8_t *buf, size_t cap);
/* Appends a name, compressed against the names already written when
 * compress.  False (m->full set, nothing appended) when it does not fit. */
bool dns_msg_name(struct dns_msg *m, const uint8_t *name, size_t namelen, bool compress);
bool dns_msg_bytes(struct dns_msg *m, const void *p, size_t n);
bool dns_msg_u16(struct dns_msg *m, uint16_t v);
bool dns_msg_u32(struct dns_msg *m, uint32_t v);
/* Appends a whole record: owner, type, class IN, ttl, rdata (names of NS,
 * CNAME, PTR, MX, SOA compressed).  All or nothing. */
bool dns_msg_rr(struct dns_msg *m, const uint8_t *owner, size_t ownerlen, const struct dns_rr *rr);

/* ---- the answer path (dns_answer.c) -------------------------------------- */

/* The zones of one listener, longest origin wins. */
struct dns_zones {
    struct dns_zone **zone;
    size_t n;
    uint16_t udp_max;   /* the most a UDP answer carries (EDNS0 cap, >= 512) */
};

/* What one query was, for the counters. */
struct dns_answer_info {
    int rcode;          /* -1: dropped */
    uint16_t qtype;
    bool truncated;
};

/*
 * Answers the query q[0..qlen): writes the response into out (outcap
 * bytes, at least 512) and returns its length, or 0 when the query is to be
 * dropped (shorter than a header, or a response itself).  tcp: no size limit
 * but outcap (and 65,535); otherwise the answer fits 512 bytes, or the
 * client's EDNS0 payload size capped at zs->udp_max, and is truncated
 * (TC=1, no records) when the answer or authority section does not fit.
 * Never reads past qlen or writes past outcap.  Thread-safe (reads zs only).
 */
size_t dns_answer(const struct dns_zones *zs, const uint8_t *q, size_t qlen, uint8_t *out,
                  size_t outcap, bool tcp, struct dns_answer_info *info);

#endif /* DNS_H */
