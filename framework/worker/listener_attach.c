/*
 * listener_attach.c - a listener's connection-rate table and access log
 * (see listener_attach.h).
 */
#include "listener_attach.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "access_log.h"
#include "admission.h"
#include "cidr.h"
#include "generation.h"
#include "listener.h"
#include "log.h"
#include "rate_table.h"

int listener_attach(struct listener *l, char *err, size_t errlen)
{
    const struct config_listener *cfg = l->cfg;
    if (cfg->protocol == CONFIG_TCP && cfg->conn_rate_limit) {
        uint64_t burst = cfg->conn_rate_burst ? cfg->conn_rate_burst : cfg->conn_rate_limit;
        if (!(l->conn_rate = rate_table_new(cfg->conn_rate_table, cfg->conn_rate_limit, burst))) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    if (cfg->access_log_file) {
        int code = 0;
        l->access = access_log_open(cfg->access_log_file, cfg->access_log_format,
                                    l->gen->cfg->log_format == 1, &code);
        if (!l->access) {
            snprintf(err, errlen, "%s: %s.access_log_file: cannot open %s: %s", l->file,
                     cfg->path, cfg->access_log_file, strerror(-code));
            listener_detach(l);
            return code;
        }
    }
    return 0;
}

void listener_detach(struct listener *l)
{
    rate_table_free(l->conn_rate);
    l->conn_rate = NULL;
    access_log_close(l->access);
    l->access = NULL;
}

bool listener_rate_ok(struct listener *l, const struct sockaddr *peer, uint64_t now_ms)
{
    if (!l->conn_rate || rate_table_take(l->conn_rate, peer, now_ms))
        return true;
    atomic_fetch_add_explicit(&l->stats->rate_refused, 1, memory_order_relaxed);
    /* One line per period (all listeners together), whichever thread sees
     * a refusal first. */
    static _Atomic uint64_t last_log_ms;
    uint64_t last = atomic_load_explicit(&last_log_ms, memory_order_relaxed);
    if ((last == 0 || now_ms - last >= LOG_RATE_LIMIT_PEER_MS) &&
        atomic_compare_exchange_strong(&last_log_ms, &last, now_ms)) {
        char addr[64];
        listener_format_addr(peer, addr, sizeof addr);
        log_write(WHARF_LOG_WARN, l->cfg->name, -1, 0,
                  "refused %s: over conn_rate_limit (%llu/s, burst %llu; logged at most every "
                  "%d ms)", addr, (unsigned long long)l->cfg->conn_rate_limit,
                  (unsigned long long)(l->cfg->conn_rate_burst ? l->cfg->conn_rate_burst
                                                               : l->cfg->conn_rate_limit),
                  LOG_RATE_LIMIT_PEER_MS);
    }
    return false;
}

int listener_admit(struct listener *l, struct admission *ad, int fd,
                   const struct sockaddr *peer, unsigned worker, uint64_t now_ms,
                   uint64_t *last_log_ms, int log_worker)
{
    if (cidr_list_match(l->cfg->deny, l->cfg->ndeny, peer)) {
        atomic_fetch_add_explicit(&l->stats->denied, 1, memory_order_relaxed);
        goto refused;
    }
    if (!l->cfg->proxy_protocol && !listener_rate_ok(l, peer, now_ms))
        goto refused;
    int ticket = admission_acquire_reserved(ad, peer, worker, l->cfg->proxy_protocol == 0);
    if (ticket >= 0)
        return ticket;
    /* This source has its share open (or no memory to count it): cut the
     * new one off now.  acquire_reserved gave the reservation back. */
    atomic_fetch_add_explicit(&l->stats->rejected, 1, memory_order_relaxed);
    close(fd);
    if (log_due(last_log_ms, now_ms, LOG_RATE_LIMIT_PEER_MS)) {
        char addr[64];
        listener_format_addr(peer, addr, sizeof addr);
        log_write(WHARF_LOG_WARN, l->cfg->name, log_worker, 0, "refused %s: %s", addr,
                  ticket == -EBUSY ? "max_connections_per_source reached" : "out of memory");
    }
    return -1;
refused:
    close(fd);
    admission_unreserve(ad);
    return -1;
}

enum listener_accept_next listener_accept_failed(const struct listener *l, int code,
                                                 uint64_t now_ms, uint64_t *last_log_ms,
                                                 int log_worker)
{
    switch (code) {
    case EAGAIN:
#if EAGAIN != EWOULDBLOCK
    case EWOULDBLOCK:
#endif
        return LISTENER_ACCEPT_DRAINED;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        if (log_due(last_log_ms, now_ms, LOG_RATE_LIMIT_MS))
            log_write(WHARF_LOG_WARN, l->cfg->name, log_worker, 0,
                      "accept: %s; pausing accepts for %d ms at a time until connections close",
                      strerror(code), LISTENER_ACCEPT_BACKOFF_MS);
        return LISTENER_ACCEPT_BACKOFF;
    case EINVAL:
    case EBADF:
    case ENOTSOCK:
        return LISTENER_ACCEPT_GONE;
    default:
        return LISTENER_ACCEPT_NEXT;
    }
}
