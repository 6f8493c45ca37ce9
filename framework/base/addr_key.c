/*
 * addr_key.c - 16-byte address keys and their hash (see addr_key.h).
 */
#include "addr_key.h"

#include <netinet/in.h>
#include <string.h>

bool addr_key(const struct sockaddr *sa, uint8_t key[ADDR_KEY_LEN])
{
    memset(key, 0, ADDR_KEY_LEN);
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, ADDR_KEY_LEN);
        return true;
    }
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    return false;
}

uint64_t addr_key_hash(const uint8_t key[ADDR_KEY_LEN])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a offset basis */
    for (int i = 0; i < ADDR_KEY_LEN; i++)
        h = (h ^ key[i]) * 1099511628211ull; /* FNV-1a prime */
    return h ^ (h >> 32);
}
