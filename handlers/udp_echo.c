/*
 * udp_echo.c - the UDP echo handler (RFC 862): each datagram goes back to its
 * sender whole (up to 65,507 bytes), with a reflection guard in front.
 *
 * A UDP echo answers whoever the source address claims to be, so without a
 * guard it can be aimed at a third party (spoofed source), or made to ping-pong
 * forever with another echo-like service.  The guard, on by default, does not
 * answer:
 *   - source ports in "block_ports" (default 7 echo, 13 daytime, 17 qotd,
 *     19 chargen, 37 time: each answers anything, so a reply starts a loop);
 *   - any other source port below 1024 (system services do not send echo
 *     requests; clients use ephemeral ports), unless "allow_privileged_ports";
 *   - source port 0, which cannot be answered at all;
 *   - unspecified, broadcast and multicast sources (0.0.0.0/8,
 *     255.255.255.255, 224.0.0.0/4, ::, ff00::/8, and the IPv4-mapped IPv6
 *     forms of the IPv4 ones), unless "allow_broadcast".
 * Each datagram it does not answer is counted with wharf_dgram_count_dropped.
 *
 * Options (all optional; unknown keys are refused):
 *   "guard":                  bool, default true; false turns all of the above off
 *   "block_ports":            array of ports 1..65535, default [7, 13, 17, 19, 37]
 *   "allow_privileged_ports": bool, default false
 *   "allow_broadcast":        bool, default false
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

#define MAX_BLOCK_PORTS 1024

static const long long default_block_ports[] = {7, 13, 17, 19, 37};

/* Per-listener settings, made by udp_echo_init, freed by udp_echo_fini. */
struct udp_echo_listener {
    bool guard;
    bool allow_privileged_ports;
    bool allow_broadcast;
    uint8_t blocked[65536 / 8]; /* bit p set: source port p is not answered */
};

static bool port_blocked(const struct udp_echo_listener *l, unsigned port)
{
    return l->blocked[port / 8] & (1u << (port % 8));
}

/* An IPv4 address (host byte order) that is not one host's unicast address. */
static bool ipv4_is_broadcast_like(uint32_t a)
{
    return (a >> 24) == 0             /* 0.0.0.0/8: unspecified, "this network" */
           || a == 0xffffffffu        /* 255.255.255.255: limited broadcast */
           || (a >> 28) == 0xe;       /* 224.0.0.0/4: multicast */
}

/*
 * The guard's decision for one datagram: true to answer the source `src`
 * (len bytes), false to drop it.  Pure: depends only on its arguments.
 * Anything that is not IPv4 or IPv6 is dropped while the guard is on.
 */
static bool guard_allows(const struct udp_echo_listener *l, const struct sockaddr *src,
                         socklen_t len)
{
    if (!l->guard)
        return true;
    if (!src)
        return false;

    unsigned port;
    bool bad_addr;
    if (src->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)src;
        port = ntohs(sin->sin_port);
        bad_addr = ipv4_is_broadcast_like(ntohl(sin->sin_addr.s_addr));
    } else if (src->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)src;
        const struct in6_addr *a = &sin6->sin6_addr;
        port = ntohs(sin6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            uint32_t v4;
            memcpy(&v4, &a->s6_addr[12], sizeof v4);
            bad_addr = ipv4_is_broadcast_like(ntohl(v4));
        } else {
            bad_addr = IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_MULTICAST(a);
        }
    } else {
        return false;
    }

    if (port == 0 || port_blocked(l, port))
        return false;
    if (port < 1024 && !l->allow_privileged_ports)
        return false;
    if (bad_addr && !l->allow_broadcast)
        return false;
    return true;
}

/*
 * The guard's decision for a listener's data as made by init.  Exported only
 * so that tests/check_module.c can check the guard through dlsym(); it is not
 * part of the handler API.
 */
bool udp_echo_guard_allows(const void *listener_data, const struct sockaddr *src,
                           socklen_t len);
bool udp_echo_guard_allows(const void *listener_data, const struct sockaddr *src,
                           socklen_t len)
{
    return guard_allows(listener_data, src, len);
}

/* Reads an optional bool option into *out (left alone when absent). */
static int bool_option(const wharf_options *opts, const char *key, bool *out, char *err,
                       size_t errlen)
{
    if (wharf_options_bool(opts, key, out) == -EINVAL) {
        snprintf(err, errlen, "%s: expected true or false", key);
        return -1;
    }
    return 0;
}

static int udp_echo_init(const wharf_options *opts, void **listener_data, char *err,
                         size_t errlen)
{
    static const char *const allowed[] = {"guard", "block_ports", "allow_privileged_ports",
                                          "allow_broadcast", NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -1;

    struct udp_echo_listener *l = calloc(1, sizeof *l);
    long long *ports = malloc(MAX_BLOCK_PORTS * sizeof *ports);
    if (!l || !ports) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    l->guard = true;
    if (bool_option(opts, "guard", &l->guard, err, errlen) != 0 ||
        bool_option(opts, "allow_privileged_ports", &l->allow_privileged_ports, err,
                    errlen) != 0 ||
        bool_option(opts, "allow_broadcast", &l->allow_broadcast, err, errlen) != 0)
        goto err;

    size_t n = sizeof default_block_ports / sizeof default_block_ports[0];
    memcpy(ports, default_block_ports, sizeof default_block_ports);
    if (wharf_options_int_array(opts, "block_ports", ports, MAX_BLOCK_PORTS, &n) == -EINVAL) {
        snprintf(err, errlen, "block_ports: expected an array of at most %d port numbers",
                 MAX_BLOCK_PORTS);
        goto err;
    }
    for (size_t i = 0; i < n; i++) {
        if (ports[i] < 1 || ports[i] > 65535) {
            snprintf(err, errlen, "block_ports[%zu]: %lld is not a port number (1..65535)", i,
                     ports[i]);
            goto err;
        }
        l->blocked[ports[i] / 8] |= (uint8_t)(1u << (ports[i] % 8));
    }

    free(ports);
    *listener_data = l;
    return 0;

err:
    free(ports);
    free(l);
    return -1;
}

static void udp_echo_fini(void *listener_data)
{
    free(listener_data);
}

static void udp_echo_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    socklen_t alen = 0;
    const struct sockaddr *src = wharf_dgram_peer(d, &alen);
    const struct udp_echo_listener *l = wharf_dgram_listener_data(d);
    if (!l || !guard_allows(l, src, alen)) {
        wharf_dgram_count_dropped(d);
        return;
    }
    /* A failed reply (the socket's send buffer is full, or the datagram is
     * an IPv6 one above 65,507 bytes) is not retried: UDP may lose it. */
    wharf_reply(d, data, len);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "udp_echo",
    .init = udp_echo_init,
    .fini = udp_echo_fini,
    .on_datagram = udp_echo_on_datagram,
};
