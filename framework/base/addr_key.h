/*
 * addr_key.h - an IP address as a 16-byte key: IPv6 as is, IPv4 in its
 * IPv4-mapped IPv6 form (::ffff:a.b.c.d), so that both forms of one address
 * are one key; and the hash of such a key for tables indexed by source
 * address (sources.c's per-source counts, udp.c's rate-limit buckets).
 * cidr.c matches ranges against the same key.
 */
#ifndef WHARF_ADDR_KEY_H
#define WHARF_ADDR_KEY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_KEY_LEN 16

/* Fills key with sa's address.  Returns false (key all zero) when sa is
 * neither AF_INET nor AF_INET6. */
bool addr_key(const struct sockaddr *sa, uint8_t key[ADDR_KEY_LEN]);

/* A 64-bit hash of key (FNV-1a, its halves folded together so that the low
 * bits depend on every byte): mask its low bits for a bucket. */
uint64_t addr_key_hash(const uint8_t key[ADDR_KEY_LEN]);

#endif
