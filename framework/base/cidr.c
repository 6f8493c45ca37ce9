/*
 * cidr.c - address ranges (see cidr.h).  Everything is kept as 128-bit
 * IPv6; IPv4 as IPv4-mapped (::ffff:0:0/96, addr_key.h), so one comparison
 * serves both.
 */
#include "cidr.h"
#include "addr_key.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

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
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = in4};
        addr_key((const struct sockaddr *)&sin, out->addr);
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

/* Whether the 16-byte key a (addr_key.h) is inside c. */
static bool cidr_match_key(const struct cidr *c, const uint8_t a[ADDR_KEY_LEN])
{
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (c->addr[full] & mask);
}

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    uint8_t a[ADDR_KEY_LEN];
    return addr_key(sa, a) && cidr_match_key(c, a);
}

bool cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *sa)
{
    uint8_t a[ADDR_KEY_LEN];
    if (n == 0 || !addr_key(sa, a))
        return false;
    for (size_t i = 0; i < n; i++)
        if (cidr_match_key(&list[i], a))
            return true;
    return false;
}
