/*
 * chargen.c - the character generator service (RFC 864), TCP and UDP.
 *
 * The pattern: the 95 printable ASCII characters (' ' .. '~') in a ring;
 * line i is the 72 characters starting at ring position i % 95, then "\r\n".
 * After 95 lines (7,030 bytes) the stream repeats.
 *
 * TCP - what it shows: a producer that never stops, without unbounded
 * memory.  The handler queues about "fill" bytes (wharf_output_pending),
 * asks for on_drain with wharf_want_drain and stops; wharf writes them and
 * calls on_drain once what is pending falls below the listener's low
 * watermark, and the handler tops the queue up again.  A fast reader and a
 * slow one get the same code path; a client that never reads holds "fill"
 * bytes and no more.
 * Input is read and ignored.  A client that never reads holds at most about
 * "fill" bytes until the listener's write timeout closes it.
 *
 * UDP - each datagram is answered with ONE line of the pattern (74 bytes),
 * the next line of a rotation shared by the listener.  (RFC 864 says "a
 * random number between 0 and 512" characters; one line is simpler to check
 * and bounds the reply size.)  Like udp_echo, it does not answer sources that
 * could turn it into a reflector (see udp_answerable below); each refusal is
 * counted with wharf_dgram_count_dropped.
 *
 * Options:
 *   "fill":        integer 1024..1073741824, default 1048576 (1 MiB): bytes
 *                  queued per connection at a time
 *   "block_ports": array of source ports never answered over UDP, default
 *                  [7, 13, 17, 19, 37] (echo, daytime, qotd, chargen, time)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

#define LINE_CHARS 72
#define LINE_LEN (LINE_CHARS + 2)             /* with "\r\n" */
#define PATTERN_LINES 95                       /* printable ASCII characters */
#define PATTERN_LEN (PATTERN_LINES * LINE_LEN) /* one full period: 7,030 bytes */
#define MAX_BLOCK_PORTS 1024

static const long long default_block_ports[] = {7, 13, 17, 19, 37};

struct chargen_listener {
    size_t fill;
    atomic_uint next_line;      /* UDP: the line the next reply carries */
    uint8_t blocked[65536 / 8]; /* bit p set: UDP source port p is not answered */
    char pattern[PATTERN_LEN];  /* one period of the stream */
};

/* Per TCP connection: where in the pattern the next byte comes from. */
struct chargen_conn {
    size_t off;
};

static int chargen_init(const wharf_options *opts, void **listener_data, char *err,
                        size_t errlen)
{
    static const char *const allowed[] = {"fill", "block_ports", NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -1;
    struct chargen_listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    long long fill = 1 << 20, ports[MAX_BLOCK_PORTS];
    size_t n = sizeof default_block_ports / sizeof default_block_ports[0];
    memcpy(ports, default_block_ports, sizeof default_block_ports);
    int rc = wharf_options_int(opts, "fill", &fill);
    if (rc == -EINVAL || fill < 1024 || fill > (1ll << 30)) {
        snprintf(err, errlen, "fill: expected an integer 1024..1073741824");
        goto fail;
    }
    if (wharf_options_int_array(opts, "block_ports", ports, MAX_BLOCK_PORTS, &n) == -EINVAL) {
        snprintf(err, errlen, "block_ports: expected an array of port numbers");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (ports[i] < 1 || ports[i] > 65535) {
            snprintf(err, errlen, "block_ports[%zu]: %lld is not a port number", i, ports[i]);
            goto fail;
        }
        l->blocked[ports[i] / 8] |= (uint8_t)(1u << (ports[i] % 8));
    }
    l->fill = (size_t)fill;
    for (size_t line = 0; line < PATTERN_LINES; line++) {
        char *p = l->pattern + line * LINE_LEN;
        for (size_t i = 0; i < LINE_CHARS; i++)
            p[i] = (char)(' ' + (line + i) % PATTERN_LINES);
        p[LINE_CHARS] = '\r';
        p[LINE_CHARS + 1] = '\n';
    }
    *listener_data = l;
    return 0;
fail:
    free(l);
    return -1;
}

static void chargen_fini(void *listener_data)
{
    free(listener_data);
}

/* ---- TCP ---------------------------------------------------------------- */

/* Queues pattern bytes until about `fill` are pending, then asks to be
 * called (on_drain) when most of it has been written. */
static void chargen_pump(wharf_conn *c)
{
    const struct chargen_listener *l = wharf_listener_data(c);
    struct chargen_conn *st = wharf_get_data(c);
    while (wharf_output_pending(c) < l->fill) {
        size_t n = PATTERN_LEN - st->off;
        if (n > l->fill)
            n = l->fill;
        if (wharf_send(c, l->pattern + st->off, n) != 0)
            return; /* closing, or past max_output: wharf closes it */
        st->off = (st->off + n) % PATTERN_LEN;
    }
    wharf_want_drain(c);
}

static void chargen_on_open(wharf_conn *c)
{
    struct chargen_conn *st = calloc(1, sizeof *st);
    if (!st) {
        wharf_close_with(c, WHARF_CLOSE_ERROR);
        return;
    }
    wharf_set_data(c, st);
    chargen_pump(c);
}

static void chargen_on_drain(wharf_conn *c)
{
    chargen_pump(c);
}

/* Input is consumed and ignored. */
static size_t chargen_on_data(wharf_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    return len;
}

/* The stream never ends by itself: at shutdown, stop it (after what is
 * already queued). */
static void chargen_on_shutdown(wharf_conn *c)
{
    wharf_close_with(c, WHARF_CLOSE_SHUTDOWN);
}

static void chargen_on_close(wharf_conn *c, enum wharf_close_reason reason)
{
    (void)reason;
    free(wharf_get_data(c));
}

/* ---- UDP ---------------------------------------------------------------- */

/*
 * The reflection guard, the minimal part of udp_echo's: a reply goes to
 * whatever address the datagram claims, so do not answer
 *   - port 0, listed ports (other echo-like services: a reply starts a loop)
 *     and any other port below 1024 (system services do not ask for chargen);
 *   - unspecified, broadcast and multicast sources (0.0.0.0/8,
 *     255.255.255.255, 224.0.0.0/4, ::, ff00::/8, and IPv4-mapped forms).
 */
static bool ipv4_broadcast_like(uint32_t a)
{
    return (a >> 24) == 0 || a == 0xffffffffu || (a >> 28) == 0xe;
}

static bool udp_answerable(const struct chargen_listener *l, const struct sockaddr *src,
                           socklen_t len)
{
    unsigned port;
    bool bad_addr;
    if (src && src->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)src;
        port = ntohs(sin->sin_port);
        bad_addr = ipv4_broadcast_like(ntohl(sin->sin_addr.s_addr));
    } else if (src && src->sa_family == AF_INET6 &&
               len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)src)->sin6_addr;
        port = ntohs(((const struct sockaddr_in6 *)src)->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            uint32_t v4;
            memcpy(&v4, &a->s6_addr[12], sizeof v4);
            bad_addr = ipv4_broadcast_like(ntohl(v4));
        } else {
            bad_addr = IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_MULTICAST(a);
        }
    } else {
        return false;
    }
    bool blocked = l->blocked[port / 8] & (1u << (port % 8));
    return port >= 1024 && !blocked && !bad_addr;
}

static void chargen_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    (void)data;
    (void)len;
    struct chargen_listener *l = wharf_dgram_listener_data(d);
    socklen_t alen = 0;
    const struct sockaddr *src = wharf_dgram_peer(d, &alen);
    if (!udp_answerable(l, src, alen)) {
        wharf_dgram_count_dropped(d);
        return;
    }
    unsigned line = atomic_fetch_add_explicit(&l->next_line, 1, memory_order_relaxed);
    wharf_reply(d, l->pattern + (line % PATTERN_LINES) * LINE_LEN, LINE_LEN);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "chargen",
    .init = chargen_init,
    .fini = chargen_fini,
    .on_open = chargen_on_open,
    .on_data = chargen_on_data,
    .on_drain = chargen_on_drain,
    .on_close = chargen_on_close,
    .on_datagram = chargen_on_datagram,
    .on_shutdown = chargen_on_shutdown,
};
