/*
 * conn_proxy.c - the PROXY protocol header on an accepted connection: who
 * may send it, reading it before the handler hears of the connection, and
 * the client's limits applied to the address it names.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>

#include "conn.h"
#include "admission.h"
#include "cidr.h"
#include "listener.h"
#include "listener_attach.h"
#include "log.h"
#include "proxy.h"
#include "worker.h"

/* How long a PROXY header may take when handshake_ms is not set. */
#define CONN_PROXY_HANDSHAKE_MS 10000

/* A PROXY header that is missing, malformed or from an untrusted peer:
 * closed without a word to the handler (counted as an error close). */
static void conn_proxy_refuse(struct wharf_conn *c, const char *why)
{
    struct conn_set *set = &c->w->conns;
    if (log_due(&set->last_proxy_log_ms, c->w->loop.now_ms, LOG_RATE_LIMIT_PEER_MS)) {
        char addr[64];
        listener_format_addr(&c->peer.sa, addr, sizeof addr);
        log_write(WHARF_LOG_WARN, conn_name(c), (int)c->w->id, c->id,
                  "PROXY header from %s refused: %s (logged at most every %d ms)", addr, why,
                  LOG_RATE_LIMIT_PEER_MS);
    }
    conn_close(c, WHARF_CLOSE_ERROR);
}

/*
 * Reads the PROXY header out of the kept input.  Returns 1 when it is
 * complete (consumed; the handler now opens), 0 when more bytes are needed,
 * -1 when the connection was refused.
 */
int conn_proxy_read(struct wharf_conn *c)
{
    struct proxy_result r;
    int n = proxy_parse(buf_head(&c->in), c->in.len, c->l->cfg->proxy_protocol, &r);
    if (n == 0)
        return 0;
    if (n < 0) {
        conn_proxy_refuse(c, r.reason ? r.reason : "malformed");
        return -1;
    }
    buf_consume(&c->in, (size_t)n);
    if (c->in.len == 0)
        buf_free(&c->in);
    if (r.command == PROXY_CMD_PROXY &&
        (r.src.ss_family == AF_INET || r.src.ss_family == AF_INET6)) {
        socklen_t len = r.src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                   : sizeof(struct sockaddr_in6);
        memcpy(&c->peer, &r.src, len);
        c->peer_len = len;
        if (r.dst.ss_family == r.src.ss_family) {
            memcpy(&c->local, &r.dst, len);
            c->local_len = len;
        }
    }
    c->flags &= ~(uint32_t)CONN_PROXY_WAIT;
    /* The client's own limits, now that its address is known. */
    const struct config_listener *cfg = c->l->cfg;
    if (cidr_list_match(cfg->deny, cfg->ndeny, &c->peer.sa)) {
        atomic_fetch_add_explicit(&c->l->stats->denied, 1, memory_order_relaxed);
        conn_close(c, WHARF_CLOSE_ERROR);
        return -1;
    }
    if (!listener_rate_ok(c->l, &c->peer.sa, c->w->loop.now_ms)) {
        conn_close(c, WHARF_CLOSE_LIMIT);
        return -1;
    }
    int ticket = admission_acquire_source(c->w->admission, &c->peer.sa);
    if (ticket < 0) {
        atomic_fetch_add_explicit(&c->l->stats->rejected, 1, memory_order_relaxed);
        conn_close(c, WHARF_CLOSE_LIMIT);
        return -1;
    }
    c->ticket |= ticket;
    /* The handshake now waits for the client's first bytes. */
    c->timeout_ms[WHARF_TIMEOUT_HANDSHAKE] = (uint32_t)cfg->timeouts.handshake_ms;
    c->handshake_since_ms = c->w->loop.now_ms;
    c->bytes_seen = c->in.len > 0;
    c->rate_since_ms = c->w->loop.now_ms;
    c->rate_bytes = c->in.len;
    if (c->flags & CONN_TLS_HANDSHAKE) {
        /* TLS follows: what came behind the header is the start of the
         * handshake, read by the TLS layer before the socket. */
        c->tls_prefix = c->in;
        c->in = (struct buf){0};
        c->bytes_seen = false;
        c->rate_bytes = 0;
        return 1;
    }
    conn_opened(c);
    return 1;
}

bool conn_proxy_start(struct wharf_conn *c)
{
    const struct config_listener *cfg = c->l->cfg;
    if (!cidr_list_match(cfg->proxy_trusted, cfg->nproxy_trusted, &c->peer.sa)) {
        conn_proxy_refuse(c, "not in proxy_trusted");
        return false;
    }
    c->flags |= CONN_PROXY_WAIT;
    if (!c->timeout_ms[WHARF_TIMEOUT_HANDSHAKE])
        c->timeout_ms[WHARF_TIMEOUT_HANDSHAKE] = CONN_PROXY_HANDSHAKE_MS;
    return true;
}
