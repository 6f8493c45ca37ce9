/*
 * mod_udp_batch.c - a test module sending bursts of datagrams from a timer
 * (tests/check_udp_batch.c: the worker's send batch, GSO).  Each datagram
 * is a command, answered "kept" at once:
 *   "burst MS N SIZE LAST"  after MS, one timer callback sends N datagrams
 *                           of SIZE bytes (datagram k: bytes (k + i) & 0xff,
 *                           k in its first two bytes, big-endian) and, when
 *                           LAST > 0, one more of LAST bytes (k = N) to the
 *                           command's source through a kept handle, then
 *                           closes the handle in the same callback
 *   "spray MS P1 P2"        after MS, one timer callback sends "a1" to
 *                           127.0.0.1:P1, "x" to 127.0.0.1:0 (which the
 *                           kernel refuses), "b1" to P2, "a2" to P1, "b2"
 *                           to P2 from the listener's socket, then closes
 *                           the handle (a send that fails at once is
 *                           logged as an error)
 * The listener needs allow_privileged_ports for spray's port 0.  A test
 * waits for its timers to fire before it stops the server (their memory is
 * freed by the timer).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

struct burst {
    wharf_udp *u;
    unsigned n, size, last;
    unsigned p1, p2;
};

static void burst_fire(wharf_timer *t, void *arg)
{
    (void)t;
    struct burst *b = arg;
    static unsigned char buf[65536];
    for (unsigned k = 0; k <= b->n; k++) {
        unsigned len = k < b->n ? b->size : b->last;
        if (k == b->n && len == 0)
            break;
        for (unsigned i = 0; i < len; i++)
            buf[i] = (unsigned char)(k + i);
        if (len >= 2) {
            buf[0] = (unsigned char)(k >> 8);
            buf[1] = (unsigned char)k;
        }
        wharf_udp_send(b->u, NULL, 0, buf, len);
    }
    wharf_udp_close(b->u);
    free(b);
}

static int send_to_port(wharf_udp *u, unsigned port, const char *text)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return wharf_udp_send(u, (struct sockaddr *)&to, sizeof to, text, strlen(text));
}

static void spray_fire(wharf_timer *t, void *arg)
{
    (void)t;
    struct burst *b = arg;
    int rc[5] = {send_to_port(b->u, b->p1, "a1"), send_to_port(b->u, 0, "x"),
                 send_to_port(b->u, b->p2, "b1"), send_to_port(b->u, b->p1, "a2"),
                 send_to_port(b->u, b->p2, "b2")};
    for (int i = 0; i < 5; i++)
        if (rc[i] != 0)
            wharf_log(WHARF_LOG_ERROR, "mod_udp_batch: spray send %d: %d", i, rc[i]);
    wharf_udp_close(b->u);
    free(b);
}

static void batch_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    char cmd[128];
    if (len >= sizeof cmd)
        return;
    memcpy(cmd, data, len);
    cmd[len] = '\0';
    unsigned ms;
    struct burst *b = calloc(1, sizeof *b);
    if (!b)
        return;
    void (*fire)(wharf_timer *, void *) = NULL;
    if (sscanf(cmd, "burst %u %u %u %u", &ms, &b->n, &b->size, &b->last) == 4 &&
        b->size <= 65507 && b->last <= 65507) {
        b->u = wharf_dgram_keep(d, NULL);
        fire = burst_fire;
    } else if (sscanf(cmd, "spray %u %u %u", &ms, &b->p1, &b->p2) == 3) {
        b->u = wharf_udp_listener(0, NULL);
        fire = spray_fire;
    }
    if (!fire || !b->u || !wharf_timer_start(NULL, ms, 0, fire, b)) {
        wharf_udp_close(b->u);
        free(b);
        return;
    }
    wharf_reply(d, "kept", 4);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "udp_batch",
    .on_datagram = batch_on_datagram,
};
