/* stats.h - the counters of a wharf-load run: one enum stat_id per thing counted, the
 * names reports print for them, and how an engine thread adds to them while the progress
 * line reads them from another thread. stats.c holds the names and the errno mapping. */
#ifndef WLOAD_STATS_H
#define WLOAD_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Counters. Every one is either informational or an error; errors sum into "errors". */
enum stat_id {
    ST_SENT,     /* messages written (warm-up included) */
    ST_RECEIVED, /* echoes that verified (warm-up included) */
    ST_MEASURED, /* verified echoes of messages due inside the measurement period */
    ST_BYTES_SENT,
    ST_BYTES_RECEIVED,
    ST_CONNECTS,     /* connections established */
    ST_CHURN_CLOSES, /* connections closed by churn after their exchanges */
    ST_BACKLOG_END,  /* open loop: messages due but not sent when sending stopped */
    ST_LOST,         /* UDP: datagrams never answered (after the drain) */
    ST_LATE,         /* UDP: answers too old to tell apart from duplicates (counted lost) */
    ST_TLS_HANDSHAKES, /* --tls: handshakes completed (resumed ones included) */
    ST_TLS_RESUMED,    /* --tls: handshakes that resumed a session */
    ST_RECONNECTS, /* TCP: the server ended a connection cleanly (Connection: close, EOF
                    * between replies) and a new one took over */
    ST_RESENT,     /* TCP: requests in flight on such a connection, sent again on the next */
    ST_DEFERRED,   /* open loop: messages sent after the tick they fell due in (the
                    * connection was opening, its window or buffer full) */
    ST_SKIPPED,    /* open loop, --ramp: slots of connections not opened yet (not sent) */
    ST_SENDS,      /* writes that moved bytes: send(2), a TLS write, a sendmmsg or GSO send */
    ST_HITS,           /* cache workloads: keys a get found (verified values) */
    ST_MISSES,         /* cache workloads: keys a get did not find */
    ST_STATUS_2XX,     /* http (HTTP/1 and --h2): responses by status class */
    ST_STATUS_3XX,
    ST_STATUS_4XX,
    ST_STATUS_5XX,
    ST_SCRIPT_STOPS,   /* --script: threads that wrk.thread:stop() stopped */
    /* errors from here on */
    ST_MISMATCH,     /* echo differs from what was sent */
    ST_BAD_VALUE,    /* cache workloads: a get returned a value that is not its key's */
    ST_SHORT,        /* truncated echo: connection ended or datagram shorter */
    ST_REORDER,      /* echo came back before one sent earlier */
    ST_DUPLICATE,    /* same echo twice, or an echo of something never sent */
    ST_BAD_REPLY,    /* templates: a reply that cannot be framed (garbage) */
    ST_TOO_LONG,     /* templates: a reply longer than --max-reply */
    ST_UNSOLICITED,  /* templates: bytes received while no request was outstanding */
    ST_UNANSWERED,   /* TCP: no echo by the end of the drain, or the connection died */
    ST_REFUSED,      /* ECONNREFUSED (UDP: ICMP port unreachable) */
    ST_RESET,        /* ECONNRESET / EPIPE */
    ST_PEER_CLOSED,  /* server closed the connection before answering anything on it */
    ST_EOF_MID_REPLY, /* server closed the connection in the middle of a reply */
    ST_ADDRNOTAVAIL, /* EADDRNOTAVAIL: out of local ports (or a --source not local) */
    ST_CONNECT_TIMEOUT,
    ST_SOCKET_ERROR, /* any other socket error (EMFILE, ENETUNREACH, ...) */
    ST_TLS_VERIFY,   /* --tls-verify: the server's certificate did not verify */
    ST_TLS_HANDSHAKE, /* TLS handshake failed: garbage, alert, closed or reset in it */
    ST_TLS_HANDSHAKE_TIMEOUT, /* TLS handshake not done within --handshake-timeout */
    ST_TLS_ERROR,    /* TLS error after the handshake (bad record, alert) */
    ST_STREAM_RESET, /* --h2: the server reset a stream (RST_STREAM other than REFUSED_STREAM),
                      * or ended one without a response */
    ST_H2_ERROR,     /* --h2: an HTTP/2 connection error (protocol error, GOAWAY with an
                      * error code) */
    ST_SCRIPT_ERROR,    /* --script: a runtime error in request() or response() */
    ST_SCRIPT_REJECTED, /* --script: response() returned false */
    ST_REQUEST_TOO_LONG, /* --script: request() returned more than --max-request bytes */
    ST__COUNT
};
#define ST_FIRST_ERROR ST_MISMATCH

extern const char *const stat_names[ST__COUNT];

/* One set of counters. C11 atomics: the owner thread adds with relaxed stores (plain
 * moves on x86) and the progress line reads them at any time with stat_get. */
struct load_stats {
    _Atomic uint64_t c[ST__COUNT];
};

/* Owner thread only. */
static inline void stat_add(struct load_stats *s, enum stat_id id, uint64_t n)
{
    uint64_t v = atomic_load_explicit(&s->c[id], memory_order_relaxed);

    atomic_store_explicit(&s->c[id], v + n, memory_order_relaxed);
}

/* Any thread: a counter's value now. */
static inline uint64_t stat_get(const struct load_stats *s, enum stat_id id)
{
    return atomic_load_explicit(&s->c[id], memory_order_relaxed);
}

/* Any thread: the sum of the error counters. */
static inline uint64_t stat_errors(const struct load_stats *s)
{
    uint64_t e = 0;
    int i;

    for (i = ST_FIRST_ERROR; i < ST__COUNT; i++)
        e += stat_get(s, (enum stat_id)i);
    return e;
}

/* The counter a socket errno belongs to (ST_REFUSED, ST_RESET, ... ST_SOCKET_ERROR). */
enum stat_id stat_errno(int err);

#endif
