/*
 * mod_udp_relay.c - the timer-flushed relay recipe of docs/cookbook.md: a
 * statsd-style UDP listener that buffers the lines it receives, per worker,
 * and every "flush_ms" sends what it buffered as one datagram to an
 * upstream through an outbound socket of the worker's own (wharf_udp_open).
 * The upstream's answers come back to the same worker: each is passed on,
 * prefixed with that worker's index, to "report_port" (when set) on
 * 127.0.0.1, from the listener's socket (wharf_udp_listener).
 *
 * Options: "upstream_port" (required), "flush_ms" (default 100),
 * "report_port" (default none).  A worker's buffer holds up to 1,400 bytes
 * (one Ethernet-sized datagram): a line that does not fit flushes first; a
 * line longer than that is dropped (counted).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

#define RELAY_MAX 1400

struct relay_listener {
    long long upstream_port, flush_ms, report_port;
    struct relay_worker *workers; /* [worker count] */
};

struct relay_worker {
    wharf_udp *upstream;  /* outbound socket to the upstream */
    wharf_udp *report;    /* the listener's socket, for reports */
    struct sockaddr_in report_to;
    wharf_timer *flush;
    unsigned index;
    size_t len;
    char buf[RELAY_MAX];
};

static int relay_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    static const char *const keys[] = {"upstream_port", "flush_ms", "report_port", NULL};
    if (wharf_options_check_keys(opts, keys, err, errlen) < 0)
        return -1;
    struct relay_listener *r = calloc(1, sizeof *r);
    if (!r || !(r->workers = calloc(wharf_options_worker_count(opts), sizeof *r->workers))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->flush_ms = 100;
    if (wharf_options_int(opts, "upstream_port", &r->upstream_port) < 0 ||
        r->upstream_port < 1 || r->upstream_port > 65535) {
        snprintf(err, errlen, "upstream_port: expected a port number (1..65535)");
        free(r->workers);
        free(r);
        return -1;
    }
    wharf_options_int(opts, "flush_ms", &r->flush_ms);
    wharf_options_int(opts, "report_port", &r->report_port);
    *data = r;
    return 0;
}

static void relay_fini(void *data)
{
    struct relay_listener *r = data;
    free(r->workers);
    free(r);
}

/* Sends what the worker buffered, if anything, to the upstream. */
static void relay_flush(struct relay_worker *rw)
{
    if (rw->len == 0)
        return;
    int rc = wharf_udp_send(rw->upstream, NULL, 0, rw->buf, rw->len);
    if (rc < 0)
        wharf_log(WHARF_LOG_DEBUG, "udp_relay: flush: %s", strerror(-rc));
    rw->len = 0;
}

static void relay_tick(wharf_timer *t, void *arg)
{
    (void)t;
    relay_flush(arg);
}

/* An answer from the upstream, on the worker that owns the socket. */
static void relay_answer(wharf_udp *u, const struct sockaddr *from, socklen_t fromlen,
                         const void *data, size_t len)
{
    (void)from, (void)fromlen;
    struct relay_worker *rw = wharf_udp_data(u);
    if (!rw->report || len > 1000)
        return;
    char out[1100];
    int n = snprintf(out, sizeof out, "worker %u (on %u): %.*s", rw->index,
                     wharf_worker_index(wharf_current_worker()), (int)len, (const char *)data);
    wharf_udp_send(rw->report, (struct sockaddr *)&rw->report_to, sizeof rw->report_to, out,
                   (size_t)n);
}

static void relay_worker_start(void *data, wharf_worker *w)
{
    struct relay_listener *r = data;
    struct relay_worker *rw = &r->workers[wharf_worker_index(w)];
    rw->index = wharf_worker_index(w);
    struct sockaddr_in up = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->upstream_port)};
    up.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int err = 0;
    rw->upstream = wharf_udp_open((struct sockaddr *)&up, sizeof up, WHARF_UDP_CONNECT,
                                  relay_answer, rw, &err);
    if (!rw->upstream) {
        wharf_log(WHARF_LOG_ERROR, "udp_relay: cannot open the upstream socket: %s",
                  strerror(-err));
        return;
    }
    if (r->report_port) {
        rw->report = wharf_udp_listener(0, &err);
        rw->report_to.sin_family = AF_INET;
        rw->report_to.sin_port = htons((uint16_t)r->report_port);
        rw->report_to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    rw->flush = wharf_timer_start(NULL, (uint64_t)r->flush_ms, (uint64_t)r->flush_ms, relay_tick,
                                  rw);
}

static void relay_worker_stop(void *data, wharf_worker *w)
{
    struct relay_listener *r = data;
    struct relay_worker *rw = &r->workers[wharf_worker_index(w)];
    if (rw->flush)
        wharf_timer_stop(rw->flush);
    relay_flush(rw); /* nothing buffered is lost on a reload or a stop */
    wharf_udp_close(rw->upstream);
    wharf_udp_close(rw->report);
    memset(rw, 0, sizeof *rw);
}

static void relay_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    struct relay_listener *r = wharf_dgram_listener_data(d);
    struct relay_worker *rw = &r->workers[wharf_dgram_worker_index(d)];
    if (len == 0)
        return;
    if (!rw->upstream || len + 1 > RELAY_MAX) {
        wharf_dgram_count_dropped(d);
        return;
    }
    if (rw->len + len + 1 > RELAY_MAX)
        relay_flush(rw);
    memcpy(rw->buf + rw->len, data, len);
    rw->len += len;
    if (rw->buf[rw->len - 1] != '\n')
        rw->buf[rw->len++] = '\n';
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "udp_relay",
    .init = relay_init,
    .fini = relay_fini,
    .on_datagram = relay_on_datagram,
    .on_worker_start = relay_worker_start,
    .on_worker_stop = relay_worker_stop,
};
