/*
 * dns.c - the authoritative DNS handler (docs/dns.md): the wharf side of
 * handlers/dns/.  On a UDP listener each datagram is one query answered with
 * wharf_reply inside on_datagram; on a TCP listener queries come with a
 * 2-byte length prefix (RFC 1035 4.2.2, through wharf_frames), any number
 * pipelined on one connection, answered in order.
 *
 * The zone is read in init, so each generation has its own, immutable and
 * shared by every worker without locks.  A reload (SIGHUP) reads the file
 * again: when it parses, new queries get the new zone the moment the
 * generation switches (queries already read finish on the old one, so none
 * is dropped); when it does not, init fails with the file and line, the
 * reload is refused and the old zone keeps answering.
 *
 * A datagram from a source that cannot be a resolver is dropped before it is
 * parsed: port 0, the ports of services that answer anything (7 echo, 13
 * daytime, 17 qotd, 19 chargen, 37 time: a FORMERR to chargen would start a
 * loop, since it answers with a line that is not a DNS response), and
 * unspecified, broadcast or multicast addresses.  A response (QR set) is
 * never answered either (dns_answer), so two DNS servers cannot bounce a
 * spoofed datagram between them.
 *
 * Per-query counters (by RCODE, by type, truncated, dropped) are per
 * worker, kept across reloads as named state ("dns.counters/1"), and
 * logged when a generation ends (a reload, or shutdown).
 *
 * Options ("zone" or "zones", not both):
 *   "zone":            path of the master file
 *   "origin":          its name; default: the $ORIGIN in force at the
 *                      file's first record, else that record's owner
 *                      (absolute: the SOA's)
 *   "zones":           several master files (at most DNS_MAX_ZONES), each
 *                      named by its own $ORIGIN/SOA as above; a query goes to
 *                      the zone with the longest origin it falls under
 *   "udp_max_payload": the most a UDP answer carries when the client's
 *                      EDNS0 allows more, 512..4096, default 1232
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "wharf.h"
#include "wharf_counter.h"

enum {
    C_QUERIES, C_DROPPED, C_TRUNCATED, C_TCP,
    C_NOERROR, C_FORMERR, C_SERVFAIL, C_NXDOMAIN, C_NOTIMP, C_REFUSED, C_BADVERS,
    C_T_A, C_T_NS, C_T_CNAME, C_T_SOA, C_T_PTR, C_T_MX, C_T_TXT, C_T_AAAA, C_T_SRV,
    C_T_ANY, C_T_OTHER,
    C_COUNT
};

static const char *const counter_name[C_COUNT] = {
    "queries", "dropped", "truncated", "tcp",
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS",
    "A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV", "ANY", "other",
};

/* The counters of every worker, [nworkers][C_COUNT]: named state. */
struct dns_counters {
    unsigned nworkers;
    _Atomic uint64_t c[];
};

#define DNS_MAX_ZONES 64

struct dns_listener {
    struct dns_zones zones;
    struct dns_zone *zone[DNS_MAX_ZONES];
    struct dns_counters *counters;
    char name[1024]; /* the first zone's name, and how many more (for the log) */
};

static int counters_create(void *arg, void **obj)
{
    unsigned n = *(unsigned *)arg;
    struct dns_counters *c = calloc(1, sizeof *c + (size_t)n * C_COUNT * sizeof c->c[0]);
    if (!c)
        return -ENOMEM;
    c->nworkers = n;
    *obj = c;
    return 0;
}

static void counters_destroy(void *obj)
{
    free(obj);
}

static const struct wharf_state_type counters_type = {
    .tag = "dns.counters/1",
    .create = counters_create,
    .destroy = counters_destroy,
};

static int rcode_counter(int rcode)
{
    switch (rcode) {
    case DNS_R_NOERROR: return C_NOERROR;
    case DNS_R_FORMERR: return C_FORMERR;
    case DNS_R_SERVFAIL: return C_SERVFAIL;
    case DNS_R_NXDOMAIN: return C_NXDOMAIN;
    case DNS_R_NOTIMP: return C_NOTIMP;
    case DNS_R_REFUSED: return C_REFUSED;
    default: return C_BADVERS;
    }
}

static int type_counter(uint16_t t)
{
    switch (t) {
    case DNS_T_A: return C_T_A;
    case DNS_T_NS: return C_T_NS;
    case DNS_T_CNAME: return C_T_CNAME;
    case DNS_T_SOA: return C_T_SOA;
    case DNS_T_PTR: return C_T_PTR;
    case DNS_T_MX: return C_T_MX;
    case DNS_T_TXT: return C_T_TXT;
    case DNS_T_AAAA: return C_T_AAAA;
    case DNS_T_SRV: return C_T_SRV;
    case DNS_T_ANY: return C_T_ANY;
    default: return C_T_OTHER;
    }
}

/* Counts one query on worker w (the owner of that row). */
static void count(struct dns_listener *l, unsigned w, const struct dns_answer_info *info,
                  bool tcp)
{
    if (!l->counters || w >= l->counters->nworkers)
        return;
    _Atomic uint64_t *c = &l->counters->c[(size_t)w * C_COUNT];
    wharf_counter_add(&c[C_QUERIES], 1);
    if (tcp)
        wharf_counter_add(&c[C_TCP], 1);
    if (info->rcode < 0) {
        wharf_counter_add(&c[C_DROPPED], 1);
        return;
    }
    wharf_counter_add(&c[rcode_counter(info->rcode)], 1);
    wharf_counter_add(&c[type_counter(info->qtype)], 1);
    if (info->truncated)
        wharf_counter_add(&c[C_TRUNCATED], 1);
}

/* Reads the zone or zones of opts into l (see the top); 0, or -1 with err. */
static int dns_load_zones(struct dns_listener *l, const wharf_options *opts, char *err,
                          size_t errlen)
{
    const char *paths[DNS_MAX_ZONES], *origin = NULL;
    size_t n = 0;
    int rc = wharf_options_string(opts, "zone", &paths[0]);
    int rcs = wharf_options_string_array(opts, "zones", paths, DNS_MAX_ZONES, &n);
    if (rc == 0 && rcs != -ENOENT) {
        snprintf(err, errlen, "zones: expected either \"zone\" or \"zones\", not both");
        return -1;
    }
    if (rc == -ENOENT && rcs == -ENOENT) {
        snprintf(err, errlen, "zone: expected the path of a zone file (required)");
        return -1;
    }
    if (rc == -EINVAL) {
        snprintf(err, errlen, "zone: expected a string (the path of a zone file)");
        return -1;
    }
    if (rcs == -EINVAL || (rcs == 0 && n == 0)) {
        snprintf(err, errlen, "zones: expected an array of 1 to %d zone file paths",
                 DNS_MAX_ZONES);
        return -1;
    }
    if (rc == 0)
        n = 1;
    if (wharf_options_string(opts, "origin", &origin) == -EINVAL) {
        snprintf(err, errlen, "origin: expected a string (a domain name)");
        return -1;
    }
    if (origin && rc != 0) {
        snprintf(err, errlen, "origin: goes with \"zone\"; each of \"zones\" is named by its "
                              "own $ORIGIN or SOA");
        return -1;
    }
    char zerr[900];
    for (size_t i = 0; i < n; i++) {
        struct dns_zone *z = dns_zone_load(paths[i], origin, zerr, sizeof zerr);
        if (!z) {
            if (rc == 0)
                snprintf(err, errlen, "zone: %s", zerr);
            else
                snprintf(err, errlen, "zones[%zu]: %s", i, zerr);
            return -1;
        }
        l->zone[l->zones.n++] = z;
        for (size_t j = 0; j < i; j++)
            if (l->zone[j]->originlen == z->originlen &&
                memcmp(l->zone[j]->origin, z->origin, z->originlen) == 0) {
                char name[1024];
                dns_name_text(z->origin, name, sizeof name);
                snprintf(err, errlen, "zones[%zu]: %s: zone %s is also zones[%zu]", i, paths[i],
                         name, j);
                return -1;
            }
        dns_name_text(z->origin, l->name, sizeof l->name);
        wharf_log(WHARF_LOG_INFO, "dns: zone %s from %s: %zu names, %zu records", l->name,
                  paths[i], z->nnodes, z->nrrs);
    }
    dns_name_text(l->zone[0]->origin, l->name, sizeof l->name);
    if (n > 1) {
        size_t len = strlen(l->name);
        snprintf(l->name + len, sizeof l->name - len, " (and %zu more)", n - 1);
    }
    return 0;
}

static void dns_listener_free(struct dns_listener *l)
{
    for (size_t i = 0; i < l->zones.n; i++)
        dns_zone_free(l->zone[i]);
    free(l);
}

static int dns_init(const wharf_options *opts, void **listener_data, char *err, size_t errlen)
{
    static const char *const allowed[] = {"zone", "zones", "origin", "udp_max_payload", NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -1;
    long long udp_max = 1232;
    if (wharf_options_int(opts, "udp_max_payload", &udp_max) == -EINVAL || udp_max < 512 ||
        udp_max > 4096) {
        snprintf(err, errlen, "udp_max_payload: expected an integer 512..4096");
        return -1;
    }
    struct dns_listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    l->zones.zone = l->zone;
    l->zones.udp_max = (uint16_t)udp_max;
    if (dns_load_zones(l, opts, err, errlen) != 0) {
        dns_listener_free(l);
        return -1;
    }

    unsigned nworkers = wharf_options_worker_count(opts);
    void *obj = NULL;
    if (nworkers && wharf_state_get(opts, "counters", &counters_type, &nworkers, &obj, NULL) == 0)
        l->counters = obj;
    if (l->counters && l->counters->nworkers != nworkers)
        l->counters = NULL; /* cannot happen: the worker count is fixed */
    *listener_data = l;
    return 0;
}

static void dns_fini(void *listener_data)
{
    struct dns_listener *l = listener_data;
    if (!l)
        return;
    if (l->counters) {
        uint64_t sum[C_COUNT] = {0};
        for (unsigned w = 0; w < l->counters->nworkers; w++)
            for (int i = 0; i < C_COUNT; i++)
                sum[i] += atomic_load_explicit(&l->counters->c[(size_t)w * C_COUNT + i],
                                               memory_order_relaxed);
        char line[1024];
        size_t o = 0;
        for (int i = 0; i < C_COUNT && o < sizeof line; i++)
            if (sum[i] || i == C_QUERIES)
                o += (size_t)snprintf(line + o, sizeof line - o, " %s=%llu", counter_name[i],
                                      (unsigned long long)sum[i]);
        wharf_log(WHARF_LOG_INFO, "dns: zone %s: counters since start:%s", l->name, line);
    }
    dns_listener_free(l);
}

/* Whether a datagram's source may be answered (see the top). */
static bool source_ok(const struct sockaddr *src, socklen_t len)
{
    unsigned port;
    if (src && src->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)src;
        uint32_t a = ntohl(sin->sin_addr.s_addr);
        if ((a >> 24) == 0 || a == 0xffffffffu || (a >> 28) == 0xe)
            return false;
        port = ntohs(sin->sin_port);
    } else if (src && src->sa_family == AF_INET6 &&
               len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)src;
        const struct in6_addr *a = &sin6->sin6_addr;
        if (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_MULTICAST(a))
            return false;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            uint32_t v4;
            memcpy(&v4, &a->s6_addr[12], sizeof v4);
            v4 = ntohl(v4);
            if ((v4 >> 24) == 0 || v4 == 0xffffffffu || (v4 >> 28) == 0xe)
                return false;
        }
        port = ntohs(sin6->sin6_port);
    } else {
        return false;
    }
    return port != 0 && port != 7 && port != 13 && port != 17 && port != 19 && port != 37;
}

static void dns_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    struct dns_listener *l = wharf_dgram_listener_data(d);
    socklen_t alen = 0;
    const struct sockaddr *src = wharf_dgram_peer(d, &alen);
    if (!source_ok(src, alen)) {
        struct dns_answer_info drop = {.rcode = -1};
        count(l, wharf_dgram_worker_index(d), &drop, false);
        wharf_dgram_count_dropped(d);
        return;
    }
    uint8_t out[4096];
    struct dns_answer_info info;
    size_t n = dns_answer(&l->zones, data, len, out, sizeof out, false, &info);
    count(l, wharf_dgram_worker_index(d), &info, false);
    if (!n) {
        wharf_dgram_count_dropped(d);
        return;
    }
    wharf_reply(d, out, n);
}

/* One query of a TCP stream: the answer with its 2-byte length, built on
 * the stack when it fits 4 KiB (nearly always), else in a 64 KiB buffer. */
static int on_query(wharf_conn *c, const struct wharf_frame *fr, void *arg)
{
    struct dns_listener *l = arg;
    uint8_t small[2 + 4096];
    uint8_t *out = small, *big = NULL;
    struct dns_answer_info info;
    const uint8_t *q = (const uint8_t *)fr->payload;
    size_t n = dns_answer(&l->zones, q, fr->payload_len, out + 2, sizeof small - 2, true, &info);
    if (info.truncated) {
        big = malloc(2 + 65535);
        if (!big) {
            wharf_close(c);
            return 1;
        }
        out = big;
        n = dns_answer(&l->zones, q, fr->payload_len, out + 2, 65535, true, &info);
    }
    count(l, wharf_conn_worker_index(c), &info, true);
    if (!n) {
        free(big);
        wharf_close(c); /* nothing to answer: the stream is not DNS */
        return 1;
    }
    out[0] = (uint8_t)(n >> 8);
    out[1] = (uint8_t)n;
    int rc = wharf_send(c, out, n + 2);
    free(big);
    return rc != 0;
}

static const struct wharf_framing tcp_framing = {
    .kind = WHARF_FRAME_LENGTH,
    .width = 2,
    .max_frame = 2 + 65535,
};

static size_t dns_on_data(wharf_conn *c, const void *data, size_t len)
{
    return wharf_frames(c, &tcp_framing, data, len, on_query, wharf_listener_data(c));
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "dns",
    .init = dns_init,
    .fini = dns_fini,
    .on_data = dns_on_data,
    .on_datagram = dns_on_datagram,
};
