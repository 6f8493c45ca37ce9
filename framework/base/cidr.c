/*
 * cidr.c - address ranges (see cidr.h).  Everything is kept as 128-bit
 * IPv6; IPv4 as IPv4-mapped (::ffff:0:0/96), so one comparison serves both.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static void cidr_mapped(const struct in_addr *in, uint8_t out[16])
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &in->s_addr, 4);
}

int cidr_parse(const char *text, struct cidr *out)
{
    char host[64];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
    if (hlen == 0 || hlen >= sizeof host)
        return -1;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    struct in_addr in4;
    struct in6_addr in6;
    unsigned max, offset;
    if (inet_pton(AF_INET, host, &in4) == 1) {
        cidr_mapped(&in4, out->addr);
        max = 32;
        offset = 96;
    } else if (inet_pton(AF_INET6, host, &in6) == 1) {
        memcpy(out->addr, &in6, 16);
        max = 128;
        offset = 0;
    } else {
        return -1;
    }
    unsigned bits = max;
    if (slash) {
        char *end;
        unsigned long b = strtoul(slash + 1, &end, 10);
        if (end == slash + 1 || *end || b > max)
            return -1;
        bits = (unsigned)b;
    }
    out->bits = bits + offset;
    return 0;
}

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    uint8_t a[16];
    if (sa->sa_family == AF_INET)
        cidr_mapped(&((const struct sockaddr_in *)sa)->sin_addr, a);
    else if (sa->sa_family == AF_INET6)
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    else
        return false;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (c->addr[full] & mask);
}
