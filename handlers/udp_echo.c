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
 * The loop guard: two echo services on ordinary high ports (two wharfd, or
 * wharfd and another echo) bounce one spoofed datagram between them forever,
 * and no port rule can tell that peer from a client.  What marks the loop is
 * that the peer sends back, at once, exactly what we just sent it.  Each
 * worker remembers, per peer (address and port, LOOP_SLOTS slots, a new peer
 * taking a colliding one's slot), a hash of the last reply and when it was
 * sent; a datagram equal to it arriving within LOOP_WINDOW_MS extends a
 * streak, anything else ends it.  After "loop_limit" such answers in a row
 * the next one is dropped (and the streak starts again), so a bounce stops
 * within loop_limit round trips.  A client that sends the same payload over
 * and over from one port loses one datagram in loop_limit + 1; one whose
 * payloads differ (a sequence number) is never affected.  A loop with a
 * service that changes what it sends back (chargen on a high port) is not
 * caught by this: the per-source "rate_limit" bounds that one.
 *
 * Options (all optional; unknown keys are refused):
 *   "guard":                  bool, default true; false turns all of the above off
 *   "block_ports":            array of ports 1..65535, default [7, 13, 17, 19, 37]
 *   "allow_privileged_ports": bool, default false
 *   "allow_broadcast":        bool, default false
 *   "loop_limit":             integer 0..1000000, default 64 (0: no loop guard)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

#define MAX_BLOCK_PORTS 1024
#define LOOP_SLOTS 1024        /* peers remembered per worker */
#define LOOP_WINDOW_MS 1000    /* an echo of our reply later than this is a client's */
#define LOOP_LOG_EVERY_MS 10000

static const long long default_block_ports[] = {7, 13, 17, 19, 37};

/* One peer's last reply, for the loop guard. */
struct loop_slot {
    unsigned char key[18]; /* the peer's address (16, IPv4 mapped) and port */
    uint64_t hash;         /* of the last reply (0: none) */
    uint64_t sent_ms;
    uint32_t streak;       /* echoes of our own reply in a row */
};

/* Per-listener settings, made by udp_echo_init, freed by udp_echo_fini. */
struct udp_echo_listener {
    uint32_t loop_limit;
    unsigned nworkers;
    struct loop_slot *slots; /* [nworkers][LOOP_SLOTS], each worker its own row */
    _Atomic uint64_t loop_logged_ms;
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

/* The 18-byte key of an IPv4 or IPv6 peer (IPv4 as IPv4-mapped); false for
 * anything else. */
static bool peer_key(const struct sockaddr *src, socklen_t len, unsigned char key[18])
{
    memset(key, 0, 18);
    if (src && src->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)src;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &sin->sin_addr, 4);
        memcpy(key + 16, &sin->sin_port, 2);
        return true;
    }
    if (src && src->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)src;
        memcpy(key, &sin6->sin6_addr, 16);
        memcpy(key + 16, &sin6->sin6_port, 2);
        return true;
    }
    return false;
}

/* FNV-1a, never 0 (0 marks "no reply yet"). */
static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

/*
 * The loop guard for one datagram (data, len) from src on worker `worker`:
 * true to answer it (and remember the answer as the last reply to src),
 * false when it is the loop_limit+1'th echo of our own reply in a row.
 */
static bool loop_allows(struct udp_echo_listener *l, unsigned worker, const struct sockaddr *src,
                        socklen_t alen, const void *data, size_t len, uint64_t now)
{
    unsigned char key[18];
    if (!l->loop_limit || worker >= l->nworkers || !peer_key(src, alen, key))
        return true;
    uint64_t kh = fnv1a(key, sizeof key, 0xcbf29ce484222325ull);
    struct loop_slot *s = &l->slots[(size_t)worker * LOOP_SLOTS + kh % LOOP_SLOTS];
    uint64_t h = fnv1a(data, len, fnv1a(&len, sizeof len, 0xcbf29ce484222325ull));
    if (memcmp(s->key, key, sizeof key) != 0) {
        memcpy(s->key, key, sizeof key); /* a new peer takes the slot */
        s->streak = 0;
    } else if (s->hash == h && now - s->sent_ms <= LOOP_WINDOW_MS) {
        if (++s->streak > l->loop_limit) {
            s->streak = 0;
            s->hash = 0;
            return false;
        }
    } else {
        s->streak = 0;
    }
    s->hash = h;
    s->sent_ms = now;
    return true;
}

/* Logs a stopped loop, at most once per LOOP_LOG_EVERY_MS per listener. */
static void loop_log(struct udp_echo_listener *l, const struct sockaddr *src, uint64_t now)
{
    uint64_t last = atomic_load(&l->loop_logged_ms);
    if ((last && now - last < LOOP_LOG_EVERY_MS) ||
        !atomic_compare_exchange_strong(&l->loop_logged_ms, &last, now ? now : 1))
        return;
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (src->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)src;
        inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof addr);
        port = ntohs(sin->sin_port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)src;
        inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof addr);
        port = ntohs(sin6->sin6_port);
    }
    wharf_log(WHARF_LOG_WARN, "udp_echo: %s port %u sent our reply back %u times in a row: "
              "dropped (an echo loop; loop_limit)", addr, port, l->loop_limit);
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
                                          "allow_broadcast", "loop_limit", NULL};
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

    long long limit = 64;
    if (wharf_options_int(opts, "loop_limit", &limit) == -EINVAL || limit < 0 ||
        limit > 1000000) {
        snprintf(err, errlen, "loop_limit: expected an integer 0..1000000");
        goto err;
    }
    l->loop_limit = (uint32_t)limit;
    l->nworkers = wharf_options_worker_count(opts);
    if (l->loop_limit && l->nworkers &&
        !(l->slots = calloc((size_t)l->nworkers * LOOP_SLOTS, sizeof *l->slots))) {
        snprintf(err, errlen, "out of memory");
        goto err;
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
    struct udp_echo_listener *l = listener_data;
    if (l)
        free(l->slots);
    free(l);
}

static void udp_echo_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    socklen_t alen = 0;
    const struct sockaddr *src = wharf_dgram_peer(d, &alen);
    struct udp_echo_listener *l = wharf_dgram_listener_data(d);
    if (!l || !guard_allows(l, src, alen)) {
        wharf_dgram_count_dropped(d);
        return;
    }
    uint64_t now = wharf_now_ms();
    if (l->guard && !loop_allows(l, wharf_dgram_worker_index(d), src, alen, data, len, now)) {
        loop_log(l, src, now);
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
