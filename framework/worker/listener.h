/*
 * listener.h - one configured listener of one generation: its config, its
 * handler module and the handler's listener data, its sockets, and its
 * counters.  A host name is bound on every address it resolves to
 * ("localhost" on 127.0.0.1 and ::1), like nginx does: for TCP one listening
 * socket per address (watched by the acceptor thread), or with "accept":
 * "workers" one SO_REUSEPORT listening socket per address per worker (each
 * worker accepts on its own, worker_accept.h); for UDP one socket per
 * address (read by worker 0), or with reuse_port one SO_REUSEPORT socket per
 * address per worker.
 *
 * A listener whose protocol, address and port are unchanged by a reload
 * keeps its sockets (the new generation's listener holds duplicates of the
 * old descriptors, so no connection is refused) and its counters.
 */
#ifndef WHARF_LISTENER_H
#define WHARF_LISTENER_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "histogram.h"
#include "module.h"
#include "tls_ctx.h"
#include "wharf.h"
#include "wharf_counter.h"

struct generation;
struct rate_table;
struct access_log;
struct tls_ctx;

/* Every value of enum wharf_close_reason. */
#define LISTENER_CLOSE_REASONS (WHARF_CLOSE_EVICTED + 1)

/* Why a datagram was dropped (wharf_datagrams_dropped_by_reason_total). */
enum listener_drop_reason {
    LISTENER_DROP_LOOP_GUARD = 0, /* its source port is one of this server's UDP ports */
    LISTENER_DROP_DENY,           /* the listener's deny list */
    LISTENER_DROP_RATE_LIMIT,     /* the listener's rate_limit */
    LISTENER_DROP_HANDLER,        /* the handler's own guard (wharf_dgram_count_dropped) */
    LISTENER_DROP_TOO_LARGE,      /* a reply over the largest datagram */
    LISTENER_DROP_SEND_FAILED,    /* the socket refused the reply */
    LISTENER_DROP_SEND_GUARD,     /* a send to a privileged port, a broadcast or
                                   * multicast address (the send guard, udp.c) */
    LISTENER_DROP_REASONS
};
const char *listener_drop_reason_name(enum listener_drop_reason r);

/* Why a TLS handshake failed (wharf_tls_handshakes_failed_total). */
enum listener_tls_fail {
    LISTENER_TLS_FAIL_PROTOCOL = 0, /* not TLS, or a protocol error or alert */
    LISTENER_TLS_FAIL_NO_SHARED,    /* no common version, cipher, group or signature */
    LISTENER_TLS_FAIL_CERTIFICATE,  /* the peer's certificate was missing or did not verify
                                     * (outbound: the server's, or its name did not match) */
    LISTENER_TLS_FAIL_TIMEOUT,      /* handshake_ms ran out */
    LISTENER_TLS_FAIL_EOF,          /* the peer closed or reset mid-handshake */
    LISTENER_TLS_FAILS
};
const char *listener_tls_fail_name(enum listener_tls_fail r);

/* A socket address of any family we serve. */
union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* Counters of one listener on one worker.  Written only by that worker,
 * with wharf_counter_add (wharf_counter.h: relaxed atomics, so other threads
 * may read a snapshot); each worker's block is on its own cache lines. */
struct listener_counters {
    _Alignas(64) _Atomic uint64_t accepted, open;
    _Atomic uint64_t closed[LISTENER_CLOSE_REASONS];
    _Atomic uint64_t bytes_in, bytes_out, output_buffered;
    _Atomic uint64_t datagrams_in, datagrams_out, datagrams_dropped;
    _Atomic uint64_t datagram_send_calls;            /* sendmmsg calls (udp_batch.c) */
    _Atomic uint64_t dropped[LISTENER_DROP_REASONS]; /* datagrams_dropped by reason */
    _Atomic uint64_t tls_handshakes[2];              /* TLS: done, [0] 1.2, [1] 1.3 */
    _Atomic uint64_t tls_resumed;                    /* ... of them resumed sessions */
    _Atomic uint64_t tls_cipher[TLS_CTX_CIPHER_SLOTS]; /* ... by cipher slot (tls_ctx.h) */
    _Atomic uint64_t tls_failed[LISTENER_TLS_FAILS]; /* TLS handshakes failed, by reason */
    _Atomic uint64_t tls_out_handshakes[2];          /* outbound (wharf_connect_tls): done */
    _Atomic uint64_t tls_out_failed[LISTENER_TLS_FAILS]; /* ... and failed, by reason */
    struct histogram hist[HISTOGRAM_KINDS];          /* latency histograms (histogram.h) */
};


/* What the runtime commands (pause, drain, resume listener) made of a
 * listener: the acceptor watches its sockets only while ACCEPTING. */
enum listener_admin { LISTENER_ACCEPTING = 0, LISTENER_PAUSED, LISTENER_DRAINING };

/* A listener's counters, shared by the generations that keep it. */
struct listener_stats {
    _Atomic unsigned refs;
    _Atomic uint64_t rejected;  /* refused by max_connections_per_source */
    _Atomic uint64_t denied;    /* refused by the listener's deny list */
    _Atomic int admin;          /* enum listener_admin, set by the runtime
                                   commands (control.c), kept across reloads */
    _Atomic uint64_t rate_refused; /* refused by conn_rate_limit */
    unsigned nworkers;
    struct listener_counters *workers; /* [nworkers] */
};

struct listener {
    unsigned index;                      /* position in its generation */
    struct generation *gen;              /* the generation it belongs to */
    const struct config_listener *cfg;   /* in gen's config */
    const char *file;                    /* config file name, for messages */
    struct module *module;
    const struct wharf_handler *handler; /* module->handler */
    void *data;                          /* what the handler's init stored */
    bool inited;                         /* init succeeded, fini is owed */
    bool kept;                           /* sockets taken over from the previous generation */
    struct listener_stats *stats;
    int *fds;                            /* sockets, see listener_fd; or NULL */
    unsigned nfds;                       /* sockets open */
    unsigned naddrs;                     /* addresses bound */
    unsigned nworkers;                   /* sockets per address (1, or the
                                          * workers: UDP with reuse_port, TCP
                                          * with "accept": "workers") */
    int port;                            /* the bound port, or -1 */
    struct rate_table *conn_rate;        /* conn_rate_limit's buckets, or NULL
                                          * (listener_attach.c) */
    struct access_log *access;           /* access_log_file, or NULL */
    struct tls_ctx *tls;                 /* "tls": its contexts (tls_ctx.h), or NULL */
    _Atomic bool gso_refused;            /* UDP: the kernel refused a segmented send
                                          * (udp_batch.c): GSO off until a reload */
};

/*
 * Gives l its sockets: duplicates of `prev`'s when prev is non-NULL (a
 * reload that keeps the listener; prev's counters are shared too), or new
 * ones bound on every address its "address" resolves to: for TCP one
 * listening socket per address (socket options from the config,
 * non-blocking); for UDP one socket per address, or with reuse_port
 * `nworkers` sockets per address sharing the port with SO_REUSEPORT.  Port 0 binds one ephemeral port (the same on every
 * address), stored in l->port.  Returns 0, or a negative errno (the failing
 * call's, e.g. -EADDRINUSE; -EADDRNOTAVAIL when the address does not
 * resolve) with "FILE: listeners[i]: cannot bind ADDR (tcp): reason" in err
 * (nothing left open).
 */
int listener_bind(struct listener *l, const struct listener *prev, unsigned nworkers,
                  char *err, size_t errlen);

/* Checks that cfg's address resolves (wharfd -t), binding nothing.
 * Returns 0, or -1 with "FILE: listeners[i].address: cannot resolve ..." */
int listener_resolve(const struct config_listener *cfg, const char *file, char *err,
                     size_t errlen);

/* Whether a listener configured as `b` can keep l's sockets: the same
 * protocol and address, and b's port is l's configured or bound port. */
bool listener_same_socket(const struct listener *l, const struct config_listener *b);

/* The socket of address a (a < naddrs) for worker w (w < nworkers): TCP
 * with the acceptor and UDP without reuse_port have one per address (w 0). */
static inline int listener_fd(const struct listener *l, unsigned a, unsigned w)
{
    return l->fds[a * l->nworkers + w];
}

/* Closes the socket(s); safe to call twice. */
void listener_close(struct listener *l);

/* Counters for `nworkers` workers, one reference.  NULL on ENOMEM. */
struct listener_stats *listener_stats_new(unsigned nworkers);
void listener_stats_unref(struct listener_stats *st);
/* This worker's counters of l. */
static inline struct listener_counters *listener_counters(const struct listener *l,
                                                          unsigned worker)
{
    return &l->stats->workers[worker];
}

/* Whether the acceptor should watch l's sockets (not paused or drained). */
static inline bool listener_accepting(const struct listener *l)
{
    return !l->stats || atomic_load_explicit(&l->stats->admin, memory_order_relaxed) ==
                            LISTENER_ACCEPTING;
}

/* Counts a datagram of l dropped on worker w for reason r (the total and
 * the reason's counter); only worker w. */
static inline void listener_count_drop(const struct listener *l, unsigned w,
                                       enum listener_drop_reason r)
{
    struct listener_counters *st = listener_counters(l, w);
    wharf_counter_add(&st->datagrams_dropped, 1);
    wharf_counter_add(&st->dropped[r], 1);
}

/* Formats an address as "1.2.3.4:80" or "[::1]:80". */
void listener_format_addr(const struct sockaddr *sa, char *out, size_t outlen);

#endif
