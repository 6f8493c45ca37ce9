/*
 * cidr.h - address ranges ("10.0.0.0/8", "::1/128", "127.0.0.1"): parsing
 * and matching, for lists such as a listener's proxy_trusted.  An IPv4
 * address also matches its IPv4-mapped IPv6 form (::ffff:a.b.c.d).
 */
#ifndef WHARF_CIDR_H
#define WHARF_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    uint8_t addr[16]; /* IPv6, or IPv4-mapped IPv6 */
    unsigned bits;    /* prefix length over the 128 bits */
};

/* Parses "ADDR" or "ADDR/BITS".  Returns 0, or -1 (malformed). */
int cidr_parse(const char *text, struct cidr *out);
/* Whether sa (AF_INET or AF_INET6) is inside c. */
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);
/* Whether sa is inside any of list[0..n) (a listener's deny or
 * proxy_trusted list); false for an empty list or another family. */
bool cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *sa);

#endif
