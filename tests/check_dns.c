/*
 * check_dns.c - the DNS handler's zone parser and answer path
 * (handlers/dns/dns_zone.c, dns_wire.c, dns_answer.c) without a server:
 * zone files with every record type and every error a file can have (file,
 * line, what was expected), byte-exact responses (header flags, name
 * compression, CNAME chains, referrals with glue, wildcards, NODATA and
 * NXDOMAIN with the SOA, EDNS0, truncation), and malformed queries (each
 * FORMERR, NOTIMP, BADVERS or dropped, never a read or write out of bounds).
 * tests/check_dns_dig.sh runs the same handler under dig.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "dns.h"

static char zone_path[4096];

static struct dns_zone *test_zone(void)
{
    char err[1024] = "";
    struct dns_zone *z = dns_zone_load(zone_path, NULL, err, sizeof err);
    ck_assert_msg(z != NULL, "%s", err);
    return z;
}

/* A zone from text; NULL with the error in err. */
static struct dns_zone *zone_text(const char *text, char *err, size_t errlen)
{
    err[0] = '\0';
    return dns_zone_parse(text, strlen(text), "t.zone", "example.test.", err, errlen);
}

/* Text name -> wire name; returns the length. */
static size_t wire(const char *text, uint8_t *out)
{
    size_t n = 0;
    const char *p = text;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        out[n++] = (uint8_t)l;
        memcpy(out + n, p, l);
        n += l;
        p += l;
        if (*p == '.')
            p++;
    }
    out[n++] = 0;
    return n;
}

/* A query: id, flags byte 2, name, type; EDNS0 OPT with payload `edns`
 * (0: none) and version `ver`. */
static size_t query(uint8_t *q, uint16_t id, uint8_t flags, const char *name, uint16_t type,
                    uint16_t edns, uint8_t ver)
{
    memset(q, 0, 12);
    q[0] = (uint8_t)(id >> 8);
    q[1] = (uint8_t)id;
    q[2] = flags;
    q[5] = 1;
    size_t n = 12 + wire(name, q + 12);
    q[n++] = (uint8_t)(type >> 8);
    q[n++] = (uint8_t)type;
    q[n++] = 0;
    q[n++] = 1;
    if (edns) {
        q[11] = 1;
        uint8_t opt[11] = {0, 0, 41, (uint8_t)(edns >> 8), (uint8_t)edns, 0, ver, 0, 0, 0, 0};
        memcpy(q + n, opt, sizeof opt);
        n += sizeof opt;
    }
    return n;
}

static uint16_t u16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

struct ans {
    uint8_t buf[65535];
    size_t len;
    struct dns_answer_info info;
};

static struct ans *ask(const struct dns_zone *z, const uint8_t *q, size_t qlen, bool tcp)
{
    static struct ans a;
    struct dns_zone *zz = (struct dns_zone *)z;
    struct dns_zones zs = {&zz, 1, 1232};
    a.len = dns_answer(&zs, q, qlen, a.buf, tcp ? sizeof a.buf : 4096, tcp, &a.info);
    return &a;
}

#define RCODE(a) ((a)->buf[3] & 0xf)
#define AA(a) (((a)->buf[2] & 0x04) != 0)
#define TC(a) (((a)->buf[2] & 0x02) != 0)
#define AN(a) u16((a)->buf + 6)
#define NS(a) u16((a)->buf + 8)
#define AR(a) u16((a)->buf + 10)

/* ---- the zone parser -------------------------------------------------------- */

START_TEST(zone_every_type)
{
    struct dns_zone *z = test_zone();
    uint8_t n[256];
    ck_assert_uint_eq(z->originlen, wire("example.test", n));
    ck_assert_mem_eq(z->origin, n, z->originlen);
    ck_assert_ptr_nonnull(z->soa);
    ck_assert_uint_eq(z->minimum, 300);
    ck_assert_uint_eq(z->soa->ttl, 3600);
    /* TXT: four strings, escapes decoded */
    const struct dns_node *t = dns_zone_find(z, n, wire("txt.example.test", n));
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->count, 1);
    const struct dns_rr *rr = &z->rrs[t->first];
    static const uint8_t txt[] = "\x0bhello world\x16second \"quoted\" string"
                                 "\x0asemi;colon\x03" "ABC";
    ck_assert_uint_eq(rr->rdlen, sizeof txt - 1);
    ck_assert_mem_eq(rr->rdata, txt, sizeof txt - 1);
    /* an explicit TTL, names stored in lower case, an empty non-terminal */
    t = dns_zone_find(z, n, wire("ns2.example.test", n));
    ck_assert_uint_eq(z->rrs[t->first].ttl, 60);
    ck_assert_ptr_nonnull(dns_zone_find(z, n, wire("mixedcase.example.test", n)));
    t = dns_zone_find(z, n, wire("b.ent.example.test", n));
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->count, 0);
    /* SRV and MX rdata */
    t = dns_zone_find(z, n, wire("_sip._tcp.example.test", n));
    rr = &z->rrs[t->first];
    ck_assert_uint_eq(rr->type, DNS_T_SRV);
    static const uint8_t srv[] = "\x00\x0a\x00\x3c\x13\xc4\x03sip\x07" "example\x04test";
    ck_assert_uint_eq(rr->rdlen, sizeof srv);
    ck_assert_mem_eq(rr->rdata, srv, sizeof srv);
    t = dns_zone_find(z, n, wire("sub.example.test", n));
    ck_assert(t->cut);
    dns_zone_free(z);
}
END_TEST

START_TEST(zone_syntax)
{
    char err[512];
    /* parentheses over lines, comments, a blank owner, class and TTL in
     * either order, $ORIGIN changing mid-file, duplicates dropped */
    struct dns_zone *z = zone_text("$TTL 60\n"
                                   "@ IN SOA ns hm ( 1 ; serial\n 2 3\n 4 5 )\n"
                                   "  NS ns\n"
                                   "ns 30 IN A 10.0.0.1\n"
                                   "ns IN 30 A 10.0.0.1\n"
                                   "$ORIGIN sub.example.test.\n"
                                   "x A 10.0.0.2 ; comment\n"
                                   "y.example.test. AAAA ::1\n",
                                   err, sizeof err);
    ck_assert_msg(z != NULL, "%s", err);
    uint8_t n[256];
    const struct dns_node *nd = dns_zone_find(z, n, wire("ns.example.test", n));
    ck_assert_uint_eq(nd->count, 1);
    ck_assert_uint_eq(z->rrs[nd->first].ttl, 30);
    ck_assert_ptr_nonnull(dns_zone_find(z, n, wire("x.sub.example.test", n)));
    ck_assert_ptr_nonnull(dns_zone_find(z, n, wire("y.example.test", n)));
    ck_assert_uint_eq(z->minimum, 5);
    dns_zone_free(z);
}
END_TEST

static const struct {
    const char *text;
    const char *error;
} bad_zones[] = {
    {"@ 60 IN SOA a b 1 2 3 4 5\nwww 60 IN A 1.2.3\n",
     "t.zone:2: expected an IPv4 address after A, found \"1.2.3\""},
    {"@ 60 IN SOA a b 1 2 3 4 5\nwww 60 IN AAAA 1.2.3.4\n", "t.zone:2: expected an IPv6"},
    {"@ 60 IN SOA a b 1 2 3 4 5\nwww 60 IN HINFO a b\n",
     "t.zone:2: expected a record type (SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, PTR), found "
     "\"HINFO\""},
    {"@ 60 CH SOA a b 1 2 3 4 5\n", "t.zone:1: expected class IN"},
    {"@ 60 IN SOA a b ( 1 2 3\n 4 5\n", "t.zone:1: expected \")\""},
    {"@ 60 IN SOA a b 1 2 3 4 5\nt 60 IN TXT \"open\n", "t.zone:2: expected a closing '\"'"},
    {"@ 60 IN SOA a b 1 2 3 4 5\n"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 60 IN A 1.2.3.4\n",
     "t.zone:2: expected labels of at most 63 bytes"},
    {"@ 60 IN SOA a b 1 2 3 4 5\nw 60 IN CNAME x\nw 60 IN A 1.2.3.4\n",
     "t.zone:3: expected no other data at w.example.test., which has a CNAME"},
    {"@ 60 IN SOA a b 1 2 3 4 5\nw.example.org. 60 IN A 1.2.3.4\n",
     "t.zone:2: expected a name in the zone example.test., found w.example.org."},
    {"@ 60 IN SOA a b 1 2 3 4 5\n@ 60 IN SOA a b 2 2 3 4 5\n", "t.zone:2: expected one SOA"},
    {"www 60 IN A 1.2.3.4\n", "expected a SOA record at the apex example.test."},
    {"$INCLUDE other.zone\n", "t.zone:1: expected $ORIGIN or $TTL, found \"$INCLUDE\""},
    {"@ IN SOA a b 1 2 3 4 5\n", "t.zone:1: expected a TTL on the record, or $TTL before it"},
    {"@ 60 IN SOA a b 1 2 3 4\n", "t.zone:1: expected mname, rname, serial, refresh, retry,"
                                  " expire and minimum after SOA (7 fields), found 6"},
    {"@ 60 IN SOA a b 1 2 3 4 5\nm 60 IN MX 70000 x\n",
     "t.zone:2: expected the MX preference (a number 0..65535), found \"70000\""},
    {"@ 60 IN SOA a b 1 2 3 4 5\nw 60 IN A 1.2.3.4 )\n", "t.zone:2: expected \"(\" before"},
    {"@ 60 IN SOA a b 1 2 3 4 5\na..b 60 IN A 1.2.3.4\n", "t.zone:2: expected a label between"},
    {"@ 60 IN SOA a b 1 2 3 4 5\n 60 IN TXT\n", "t.zone:2: expected at least one string"},
    {"@ 60 IN SOA a b 1 2 3 4 5\nw 60 IN A 1.2.3.4\nw 60 IN CNAME x\n",
     "t.zone:3: expected no other data at w.example.test., which has a CNAME (A on line 2)"},
};

START_TEST(zone_errors)
{
    char err[512];
    struct dns_zone *z = zone_text(bad_zones[_i].text, err, sizeof err);
    ck_assert_msg(z == NULL, "zone %d parsed", _i);
    ck_assert_msg(strstr(err, bad_zones[_i].error) != NULL, "zone %d: got \"%s\", want \"%s\"",
                  _i, err, bad_zones[_i].error);
}
END_TEST

START_TEST(zone_limits)
{
    char text[2048], err[512];
    /* a name of 255 bytes is fine, 257 is not; a TXT string of 255 is fine,
     * 256 is not */
    char name[300] = "";
    for (int i = 0; i < 4; i++)
        strcat(name, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."); /* 60 */
    strcat(name, "a.");
    snprintf(text, sizeof text, "@ 60 IN SOA a b 1 2 3 4 5\n%s 60 IN A 1.2.3.4\n", name);
    struct dns_zone *z = dns_zone_parse(text, strlen(text), "t.zone", ".", err, sizeof err);
    ck_assert_msg(z != NULL, "%s", err); /* 4*61 + 2 + 1 = 247 */
    dns_zone_free(z);
    snprintf(text, sizeof text, "@ 60 IN SOA a b 1 2 3 4 5\naaaaaaaaaa.%s 60 IN A 1.2.3.4\n",
             name);
    z = dns_zone_parse(text, strlen(text), "t.zone", ".", err, sizeof err);
    ck_assert_ptr_null(z);
    ck_assert_msg(strstr(err, "t.zone:2: expected a name of at most 255 bytes"), "%s", err);

    char s[300];
    memset(s, 'x', 255);
    s[255] = '\0';
    snprintf(text, sizeof text, "@ 60 IN SOA a b 1 2 3 4 5\nt 60 IN TXT \"%s\"\n", s);
    z = zone_text(text, err, sizeof err);
    ck_assert_msg(z != NULL, "%s", err);
    dns_zone_free(z);
    snprintf(text, sizeof text, "@ 60 IN SOA a b 1 2 3 4 5\nt 60 IN TXT \"%sx\"\n", s);
    z = zone_text(text, err, sizeof err);
    ck_assert_ptr_null(z);
    ck_assert_msg(strstr(err, "t.zone:2: expected a TXT string of at most 255 bytes"), "%s",
                  err);
}
END_TEST

START_TEST(zone_origin)
{
    char err[512];
    static const char text[] = "$TTL 60\n@ SOA a b 1 2 3 4 5\nw A 10.0.0.1\n";
    /* the final dot may be left out; without an origin, the SOA's owner
     * (here relative to nothing: an error naming the line) */
    struct dns_zone *z = dns_zone_parse(text, sizeof text - 1, "t.zone", "Example.TEST", err,
                                        sizeof err);
    ck_assert_msg(z != NULL, "%s", err);
    uint8_t n[256];
    ck_assert_ptr_nonnull(dns_zone_find(z, n, wire("w.example.test", n)));
    dns_zone_free(z);
    ck_assert_ptr_null(dns_zone_parse(text, sizeof text - 1, "t.zone", "a..b", err, sizeof err));
    ck_assert_str_eq(err, "origin: expected a domain name (\"example.com.\"), found \"a..b\"");
    ck_assert_ptr_null(dns_zone_parse(text, sizeof text - 1, "t.zone", NULL, err, sizeof err));
    ck_assert_str_eq(err, "t.zone:2: expected $ORIGIN (or \"origin\" in the config) before \"@\"");
    static const char abs_text[] = "example.net. 60 SOA a b 1 2 3 4 5\nw.example.net. 60 A 10.0.0.1\n";
    z = dns_zone_parse(abs_text, sizeof abs_text - 1, "t.zone", NULL, err, sizeof err);
    ck_assert_msg(z != NULL, "%s", err);
    ck_assert_uint_eq(z->originlen, wire("example.net", n));
    dns_zone_free(z);
}
END_TEST

START_TEST(zone_file_missing)
{
    char err[512];
    ck_assert_ptr_null(dns_zone_load("/nonexistent/x.zone", NULL, err, sizeof err));
    ck_assert_str_eq(err, "/nonexistent/x.zone: cannot open: No such file or directory");
}
END_TEST

/* ---- answers -------------------------------------------------------------------- */

START_TEST(answer_a_exact)
{
    struct dns_zone *z = test_zone();
    uint8_t q[512];
    size_t n = query(q, 0x1234, 0x01, "www.example.test", DNS_T_A, 0, 0);
    struct ans *a = ask(z, q, n, false);
    static const uint8_t want[] = {
        0x12, 0x34, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0,                  /* QR AA RD */
        3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0,
        0, 1, 0, 1,                                                      /* question */
        0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 80,   /* answer */
    };
    ck_assert_uint_eq(a->len, sizeof want);
    ck_assert_mem_eq(a->buf, want, sizeof want);
    ck_assert_int_eq(a->info.rcode, 0);
    ck_assert_uint_eq(a->info.qtype, DNS_T_A);
    dns_zone_free(z);
}
END_TEST

START_TEST(answer_mx_compressed)
{
    struct dns_zone *z = test_zone();
    uint8_t q[512];
    size_t n = query(q, 7, 0, "example.test", DNS_T_MX, 0, 0);
    struct ans *a = ask(z, q, n, false);
    static const uint8_t want[] = {
        0, 7, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 1,
        7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0, 0, 15, 0, 1,
        /* example.test MX 10 mail.example.test (mail + pointer to 12) */
        0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 0x0e, 0x10, 0, 9, 0, 10, 4, 'm', 'a', 'i', 'l', 0xc0, 0x0c,
        /* additional: mail.example.test A, owner a pointer to offset 44 */
        0xc0, 44, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 25,
    };
    ck_assert_uint_eq(a->len, sizeof want);
    ck_assert_mem_eq(a->buf, want, sizeof want);
    dns_zone_free(z);
}
END_TEST

START_TEST(answer_case_kept)
{
    struct dns_zone *z = test_zone();
    uint8_t q[512];
    size_t n = query(q, 1, 0, "WwW.ExAmPlE.tEsT", DNS_T_AAAA, 0, 0);
    struct ans *a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), 0);
    ck_assert_uint_eq(AN(a), 1);
    ck_assert_mem_eq(a->buf + 12, q + 12, n - 12); /* the question as asked */
    ck_assert_uint_eq(a->buf[n], 0xc0);
    ck_assert_uint_eq(a->buf[n + 1], 0x0c);
    dns_zone_free(z);
}
END_TEST

START_TEST(answer_nxdomain_nodata)
{
    struct dns_zone *z = test_zone();
    uint8_t q[512];
    size_t n = query(q, 1, 0, "nope.example.test", DNS_T_A, 0, 0);
    struct ans *a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), DNS_R_NXDOMAIN);
    ck_assert(AA(a));
    ck_assert_uint_eq(AN(a), 0);
    ck_assert_uint_eq(NS(a), 1);
    /* the SOA: owner pointer to example.test in the question, TTL 300 */
    ck_assert_uint_eq(a->buf[n], 0xc0);
    ck_assert_uint_eq(a->buf[n + 1], 12 + 5);
    ck_assert_uint_eq(u16(a->buf + n + 2), DNS_T_SOA);
    ck_assert_uint_eq(u16(a->buf + n + 8), 300);

    n = query(q, 1, 0, "www.example.test", DNS_T_TXT, 0, 0);
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), 0);
    ck_assert(AA(a));
    ck_assert_uint_eq(AN(a), 0);
    ck_assert_uint_eq(NS(a), 1);

    /* an empty non-terminal exists: NODATA, not NXDOMAIN */
    n = query(q, 1, 0, "ent.example.test", DNS_T_A, 0, 0);
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), 0);
    ck_assert_uint_eq(NS(a), 1);
    dns_zone_free(z);
}
END_TEST

START_TEST(answer_cname_chain)
{
    struct dns_zone *z = test_zone();
    uint8_t q[512];
    size_t n = query(q, 1, 0, "chain.example.test", DNS_T_A, 0, 0);
    struct ans *a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), 0);
    ck_assert_uint_eq(AN(a), 3); /* chain -> alias -> www A */
    n = query(q, 1, 0, "dangling.example.test", DNS_T_A, 0, 0);
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), DNS_R_NXDOMAIN); /* RFC 6604: the last name's */
    ck_assert_uint_eq(AN(a), 1);
    ck_assert_uint_eq(NS(a), 1);
    n = query(q, 1, 0, "outside.example.test", DNS_T_A, 0, 0);
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), 0);
    ck_assert_uint_eq(AN(a), 1);
    ck_assert_uint_eq(NS(a), 0);
    n = query(q, 1, 0, "alias.example.test", DNS_T_CNAME, 0, 0);
    a = ask(z, q, n, false);
    ck_assert_uint_eq(AN(a), 1);
    dns_zone_free(z);
}
END_TEST

START_TEST(answer_referral_wildcard_refused)
{
    struct dns_zone *z = test_zone();
    uint8_t q[512];
    size_t n = query(q, 1, 0, "host.sub.example.test", DNS_T_A, 0, 0);
    struct ans *a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), 0);
    ck_assert(!AA(a));
    ck_assert_uint_eq(AN(a), 0);
    ck_assert_uint_eq(NS(a), 1);
    ck_assert_uint_eq(AR(a), 1); /* the glue ns.sub A */

    n = query(q, 1, 0, "foo.wild.example.test", DNS_T_A, 0, 0);
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), 0);
    ck_assert_uint_eq(AN(a), 1);
    ck_assert_uint_eq(a->buf[n], 0xc0); /* owner: the name asked, not "*" */
    ck_assert_uint_eq(a->buf[n + 1], 12);
    ck_assert_mem_eq(a->buf + a->len - 4, "\xc0\x00\x02\x63", 4);

    n = query(q, 1, 0, "www.example.org", DNS_T_A, 0, 0);
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), DNS_R_REFUSED);
    ck_assert(!AA(a));
    ck_assert_uint_eq(AN(a) + NS(a) + AR(a), 0);

    n = query(q, 1, 0, "example.test", DNS_T_NS, 0, 0);
    a = ask(z, q, n, false);
    ck_assert_uint_eq(AN(a), 2);
    ck_assert_uint_eq(AR(a), 3); /* ns1 A + AAAA, ns2 A */
    dns_zone_free(z);
}
END_TEST

START_TEST(answer_edns_truncation)
{
    struct dns_zone *z = test_zone();
    uint8_t q[512];
    /* six 100-byte TXT strings: ~700 bytes, more than 512 */
    size_t n = query(q, 1, 0, "big.example.test", DNS_T_TXT, 0, 0);
    struct ans *a = ask(z, q, n, false);
    ck_assert(TC(a));
    ck_assert_uint_eq(AN(a), 0);
    ck_assert_uint_eq(a->len, n); /* the question alone */
    ck_assert(a->info.truncated);
    /* EDNS0 with 1232: it fits, and our OPT says 1232 */
    n = query(q, 1, 0, "big.example.test", DNS_T_TXT, 1232, 0);
    a = ask(z, q, n, false);
    ck_assert(!TC(a));
    ck_assert_uint_eq(AN(a), 6);
    ck_assert_uint_eq(AR(a), 1);
    ck_assert_uint_le(a->len, 1232);
    ck_assert_mem_eq(a->buf + a->len - 11, "\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", 11);
    /* a payload size under 512 counts as 512 */
    n = query(q, 1, 0, "big.example.test", DNS_T_TXT, 100, 0);
    a = ask(z, q, n, false);
    ck_assert(TC(a));
    ck_assert_uint_eq(a->len, n);
    /* over TCP everything */
    n = query(q, 1, 0, "big.example.test", DNS_T_TXT, 0, 0);
    a = ask(z, q, n, true);
    ck_assert(!TC(a));
    ck_assert_uint_eq(AN(a), 6);
    /* EDNS version 1: BADVERS (extended RCODE 1 in the OPT, 0 in the header) */
    n = query(q, 1, 0, "www.example.test", DNS_T_A, 1232, 1);
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), 0);
    ck_assert_int_eq(a->info.rcode, DNS_R_BADVERS);
    ck_assert_uint_eq(AN(a), 0);
    ck_assert_uint_eq(a->buf[a->len - 6], 1);
    dns_zone_free(z);
}
END_TEST

START_TEST(answer_additional_left_out)
{
    /* additional data that does not fit is left out, without TC: 20 NS
     * (about 400 bytes) fit 512, their 20 AAAA (560 bytes) do not */
    char text[8192], err[512];
    size_t o = (size_t)snprintf(text, sizeof text, "$TTL 60\n@ SOA a b 1 2 3 4 5\n");
    for (int i = 0; i < 20; i++)
        o += (size_t)snprintf(text + o, sizeof text - o,
                              "@ NS ns%02d\nns%02d AAAA 2001:db8::%d\n",
                              i, i, i);
    struct dns_zone *z = zone_text(text, err, sizeof err);
    ck_assert_msg(z != NULL, "%s", err);
    uint8_t q[512];
    size_t n = query(q, 1, 0, "example.test", DNS_T_NS, 0, 0);
    struct ans *a = ask(z, q, n, false);
    ck_assert(!TC(a));
    ck_assert_uint_eq(AN(a), 20);
    ck_assert_uint_lt(AR(a), 20);
    ck_assert_uint_le(a->len, 512);
    dns_zone_free(z);
}
END_TEST

START_TEST(answer_any)
{
    struct dns_zone *z = test_zone();
    uint8_t q[512];
    size_t n = query(q, 1, 0, "example.test", DNS_T_ANY, 1232, 0);
    struct ans *a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), 0);
    ck_assert_uint_eq(AN(a), 2); /* one RRset over UDP (RFC 8482): the 2 NS */
    ck_assert_uint_eq(u16(a->buf + n - 11 + 2), DNS_T_NS);
    a = ask(z, q, n, true);
    ck_assert_uint_eq(AN(a), 5); /* SOA, 2 NS, MX, TXT over TCP */
    dns_zone_free(z);
}
END_TEST

/* ---- malformed queries ---------------------------------------------------------- */

START_TEST(malformed)
{
    struct dns_zone *z = test_zone();
    uint8_t q[600];
    size_t n = query(q, 0xabcd, 0, "www.example.test", DNS_T_A, 0, 0);
    struct ans *a;

    /* shorter than a header, or a response: dropped */
    for (size_t len = 0; len < 12; len++) {
        a = ask(z, q, len, false);
        ck_assert_uint_eq(a->len, 0);
        ck_assert_int_eq(a->info.rcode, -1);
    }
    q[2] = 0x80;
    ck_assert_uint_eq(ask(z, q, n, false)->len, 0);
    q[2] = 0;

    /* every truncation of the question: FORMERR, header alone */
    for (size_t len = 12; len < n; len++) {
        a = ask(z, q, len, false);
        ck_assert_uint_eq(a->len, 12);
        ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
        ck_assert_uint_eq(u16(a->buf + 4), 0);
        ck_assert_uint_eq(u16(a->buf), 0xabcd);
    }
    /* QDCOUNT 0 and 2 */
    q[5] = 0;
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
    q[5] = 2;
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
    q[5] = 1;
    /* an opcode other than QUERY */
    q[2] = 2 << 3;
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), DNS_R_NOTIMP);
    ck_assert_uint_eq(a->len, 12);
    q[2] = 0;
    /* a compression pointer in the question */
    static const uint8_t ptrq[] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w',
                                   0xc0, 12, 0, 1, 0, 1};
    a = ask(z, ptrq, sizeof ptrq, false);
    ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
    /* an extended label type (0x40) */
    static const uint8_t extq[] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 'w', 0, 0, 1, 0, 1};
    a = ask(z, extq, sizeof extq, false);
    ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
    /* a pointer loop in an additional record: the name points at itself */
    memcpy(q + n, "\xc0\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00", 12);
    q[n + 1] = (uint8_t)n;
    q[11] = 1;
    a = ask(z, q, n + 12, false);
    ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
    /* and a pointer forwards */
    q[n + 1] = (uint8_t)(n + 4);
    a = ask(z, q, n + 12, false);
    ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
    /* two OPT records */
    q[11] = 2;
    memcpy(q + n, "\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
                  "\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", 22);
    a = ask(z, q, n + 22, false);
    ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
    /* ARCOUNT larger than what follows */
    q[11] = 3;
    a = ask(z, q, n + 22, false);
    ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
    q[11] = 0;
    /* an answer record in a query */
    q[7] = 1;
    a = ask(z, q, n, false);
    ck_assert_int_eq(RCODE(a), DNS_R_FORMERR);
    q[7] = 0;
    /* class CH: REFUSED; AXFR: REFUSED; OPT as a question: FORMERR */
    q[n - 1] = 3;
    ck_assert_int_eq(RCODE(ask(z, q, n, false)), DNS_R_REFUSED);
    q[n - 1] = 1;
    q[n - 3] = DNS_T_AXFR;
    ck_assert_int_eq(RCODE(ask(z, q, n, false)), DNS_R_REFUSED);
    q[n - 3] = DNS_T_OPT;
    ck_assert_int_eq(RCODE(ask(z, q, n, false)), DNS_R_FORMERR);
    dns_zone_free(z);
}
END_TEST

START_TEST(random_queries)
{
    /* mutated queries: the response never exceeds 512 (no EDNS0) or the
     * limit, and never reads past the query (valgrind/ASan watch that) */
    struct dns_zone *z = test_zone();
    struct dns_zone *zz = z;
    struct dns_zones zs = {&zz, 1, 1232};
    static const char *const names[] = {"www.example.test", "big.example.test",
                                        "example.test", "x.sub.example.test", "a.wild.example.test",
                                        "chain.example.test"};
    uint8_t base[600], q[600], out[1232];
    unsigned seed = 12345;
    for (int i = 0; i < 20000; i++) {
        size_t n = query(base, 1, 0, names[i % 6], (uint16_t)(1 + i % 40),
                         (i & 1) ? (uint16_t)(i % 5000) : 0, 0);
        memcpy(q, base, n);
        int flips = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4;
        for (int f = 0; f < flips; f++) {
            seed = seed * 1103515245u + 12345u;
            q[(seed >> 8) % n] = (uint8_t)(seed >> 20);
        }
        size_t len = ((seed >> 4) & 7) == 0 ? (seed >> 12) % (n + 1) : n;
        uint8_t *exact = malloc(len ? len : 1); /* so ASan sees a read past it */
        memcpy(exact, q, len);
        struct dns_answer_info info;
        size_t r = dns_answer(&zs, exact, len, out, sizeof out, false, &info);
        free(exact);
        ck_assert_uint_le(r, sizeof out);
        bool opt = len > 12 && q[11];
        if (!opt)
            ck_assert_uint_le(r, 512);
    }
    dns_zone_free(z);
}
END_TEST

int main(void)
{
    const char *srcdir = getenv("WHARF_SRCDIR");
    snprintf(zone_path, sizeof zone_path, "%s/tests/dns/test.zone", srcdir ? srcdir : ".");
    Suite *s = suite_create("dns");
    TCase *tc = tcase_create("zone");
    tcase_add_test(tc, zone_every_type);
    tcase_add_test(tc, zone_syntax);
    tcase_add_loop_test(tc, zone_errors, 0, (int)(sizeof bad_zones / sizeof bad_zones[0]));
    tcase_add_test(tc, zone_limits);
    tcase_add_test(tc, zone_origin);
    tcase_add_test(tc, zone_file_missing);
    suite_add_tcase(s, tc);
    tc = tcase_create("answer");
    tcase_add_test(tc, answer_a_exact);
    tcase_add_test(tc, answer_mx_compressed);
    tcase_add_test(tc, answer_case_kept);
    tcase_add_test(tc, answer_nxdomain_nodata);
    tcase_add_test(tc, answer_cname_chain);
    tcase_add_test(tc, answer_referral_wildcard_refused);
    tcase_add_test(tc, answer_edns_truncation);
    tcase_add_test(tc, answer_additional_left_out);
    tcase_add_test(tc, answer_any);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_add_test(tc, malformed);
    tcase_add_test(tc, random_queries);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return check_run(s);
}
