/*
 * recipe_resolver.c - a getaddrinfo() for tests/check_recipes.sh, preloaded
 * into wharfd (LD_PRELOAD) so that the lookup recipe of docs/cookbook.md
 * answers without a network and takes as long as the test says: a name
 * ending in ".test" resolves to 127.0.0.1 (one address), after MS
 * milliseconds when it starts with "sleepMS."; every other name goes to the
 * real getaddrinfo.  The result is one allocation, as glibc's own, so the
 * real freeaddrinfo frees it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    size_t n = node ? strlen(node) : 0;
    if (n < 5 || strcmp(node + n - 5, ".test") != 0) {
        gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
        return real ? real(node, service, hints, res) : EAI_FAIL;
    }
    unsigned long ms = strncmp(node, "sleep", 5) == 0 ? strtoul(node + 5, NULL, 10) : 0;
    if (ms)
        nanosleep(&(struct timespec){(time_t)(ms / 1000), (long)(ms % 1000) * 1000000}, NULL);
    struct {
        struct addrinfo ai;
        struct sockaddr_in sa;
    } *r = calloc(1, sizeof *r);
    if (!r)
        return EAI_MEMORY;
    r->sa.sin_family = AF_INET;
    r->sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->ai.ai_family = AF_INET;
    r->ai.ai_socktype = hints && hints->ai_socktype ? hints->ai_socktype : SOCK_STREAM;
    r->ai.ai_protocol = IPPROTO_TCP;
    r->ai.ai_addrlen = sizeof r->sa;
    r->ai.ai_addr = (struct sockaddr *)&r->sa;
    *res = &r->ai;
    return 0;
}
