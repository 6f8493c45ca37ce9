/*
 * fuzz_dns.c - libFuzzer target for the DNS handler's packet parser, answer
 * path and zone parser (handlers/dns/dns_answer.c, dns_wire.c,
 * dns_zone.c), without the framework.
 *
 * The first byte picks what the rest is: even, a query, answered over UDP
 * (with a 512-byte and a 4096-byte buffer) and over TCP from a zone with
 * every record type, a delegation, a wildcard and CNAME chains; odd, a zone
 * file, parsed and, when it parses, asked a few questions.  Checked: the
 * response stays within its buffer, a UDP one within 512 bytes without
 * EDNS0 and within udp_max with it, it carries the query's ID with QR set,
 * and the same query gets the same bytes twice.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static const char zone_text[] =
    "$ORIGIN example.test.\n$TTL 1h\n"
    "@ SOA ns1 hostmaster ( 1 2h 15m 1w 300 )\n"
    "  NS ns1\n  NS ns2.example.test.\n  MX 10 mail\n  TXT \"v=spf1 -all\"\n"
    "ns1 A 192.0.2.1\nns1 AAAA 2001:db8::1\nns2 A 192.0.2.2\nmail A 192.0.2.25\n"
    "www A 192.0.2.80\nwww AAAA 2001:db8::80\nalias CNAME www\nchain CNAME alias\n"
    "loop1 CNAME loop2\nloop2 CNAME loop1\nout CNAME www.example.org.\n"
    "txt TXT \"a\" \"b\\\"c\" \\065\n_sip._tcp SRV 10 60 5060 www\n1.2 PTR www\n"
    "*.wild A 192.0.2.99\na.b.ent A 192.0.2.7\nsub NS ns.sub\nns.sub A 192.0.2.53\n"
    "big TXT \"0123456789012345678901234567890123456789012345678901234567890123456789\"\n"
    "big TXT \"1123456789012345678901234567890123456789012345678901234567890123456789\"\n"
    "big TXT \"2123456789012345678901234567890123456789012345678901234567890123456789\"\n"
    "big TXT \"3123456789012345678901234567890123456789012345678901234567890123456789\"\n"
    "big TXT \"4123456789012345678901234567890123456789012345678901234567890123456789\"\n"
    "big TXT \"5123456789012345678901234567890123456789012345678901234567890123456789\"\n"
    "big TXT \"6123456789012345678901234567890123456789012345678901234567890123456789\"\n"
    "big TXT \"7123456789012345678901234567890123456789012345678901234567890123456789\"\n";

static struct dns_zone *zone;
static uint8_t out1[65535], out2[65535];

static void answer_checked(struct dns_zone *z, const uint8_t *q, size_t len)
{
    struct dns_zones zs = {&z, 1, 1232};
    struct dns_answer_info info;
    static const size_t caps[] = {512, 4096};
    for (int i = 0; i < 2; i++) {
        size_t n = dns_answer(&zs, q, len, out1, caps[i], false, &info);
        CHECK(n <= caps[i]);
        if (n) {
            CHECK(n >= 12 && (out1[2] & 0x80) && memcmp(out1, q, 2) == 0);
            CHECK(n <= 1232);
            if (len >= 12 && q[10] == 0 && q[11] == 0)
                CHECK(n <= 512);
            size_t again = dns_answer(&zs, q, len, out2, caps[i], false, &info);
            CHECK(again == n && memcmp(out1, out2, n) == 0);
        } else {
            CHECK(info.rcode == -1);
        }
    }
    size_t n = dns_answer(&zs, q, len, out1, sizeof out1, true, &info);
    CHECK(n <= sizeof out1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!zone) {
        char err[512];
        zone = dns_zone_parse(zone_text, sizeof zone_text - 1, "fuzz.zone", NULL, err,
                              sizeof err);
        if (!zone) {
            fprintf(stderr, "fuzz_dns: %s\n", err);
            abort();
        }
    }
    if (size == 0)
        return 0;
    /* A copy of exactly the input, so ASan sees any read past its end. */
    uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
    memcpy(buf, data + 1, size - 1);
    if ((data[0] & 1) == 0) {
        answer_checked(zone, buf, size - 1);
    } else {
        char err[512] = "";
        struct dns_zone *z = dns_zone_parse((const char *)buf, size - 1, "in.zone",
                                            (data[0] & 2) ? "example.test." : NULL, err,
                                            sizeof err);
        if (z) {
            static const uint8_t q[] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w',
                                        7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e',
                                        's', 't', 0, 0, 255, 0, 1};
            answer_checked(z, q, sizeof q);
            uint8_t q2[sizeof q];
            memcpy(q2, q, sizeof q);
            q2[31] = 1;
            answer_checked(z, q2, sizeof q2);
            dns_zone_free(z);
        } else {
            CHECK(err[0] != '\0');
        }
    }
    free(buf);
    return 0;
}
