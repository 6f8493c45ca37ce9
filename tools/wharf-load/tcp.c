/* tcp.c - the TCP engine of wharf-load: each thread drives its connections as watchers of
 * its event loop (framework/event/loop.h; the thread loop is phase_run).
 *
 * Closed loop: each connection keeps up to --pipeline messages in flight and sends a new one
 * for every echo. Open loop: a per-thread schedule (load_sched) releases messages at the
 * configured rate; a connection sends what is due as soon as its pipeline allows, stamping
 * each message with the time it was due, so latency is measured from there (coordinated
 * omission correction) as well as from the actual send. Churn: a connection closes after
 * --churn exchanges and is replaced at once. With --source, every new connection (reconnects
 * included) binds to the thread's next source address in turn.
 *
 * Echoes are parsed as a byte stream (servers may split or merge writes) and verified byte
 * for byte (msg_verify). A per-connection bitmap over the window of outstanding sequence
 * numbers tells in-order, reordered and duplicated echoes apart. A stream that cannot be
 * framed any more (bad magic or length) is counted as a mismatch and the connection is
 * replaced. Connection failures are counted by errno and retried with a backoff.
 *
 * Several targets (targets.h): each connection has its target for its whole life (its
 * address, and with --proto http its own GET template); what the engine does for one
 * connection is charged to its target as the difference of the thread's counters around it.
 *
 * HTTP/2 (--h2, h2.h): once a connection is open (and its TLS handshake done, ALPN h2) it
 * carries an HTTP/2 session; each request is a stream, up to --pipeline (--streams) at
 * once. The bytes read are fed to the session, which ends streams (responses, resets,
 * refusals); the bytes it has to write go through wbuf like any request. A GOAWAY lets the
 * streams below its last id finish, those above it are refused by the server and sent
 * again, and once none is left open the connection is replaced: a reconnect, as for an
 * HTTP/1.1 `Connection: close`.
 *
 * Templates (cfg->tmpls): each request is a template of the mix expanded in place; replies
 * come back in order on a connection, so a FIFO per connection keeps each request's due and
 * send times and template, and the template's framing (frame.h) finds where its reply ends.
 * A reply failing its check counts as a mismatch; one that cannot be framed (garbage, too
 * long) is counted by kind and the connection is replaced, bytes with nothing outstanding
 * are unsolicited.
 *
 * Scripts (--script, script.h): request() may make each request and response() check each
 * reply, in the template path. A script's delay() paces each connection in closed loop:
 * before each request the connection asks it and waits that long on a timer of the
 * thread's loop (delay_gate, conn_on_delay), one per connection.
 *
 * TLS (--tls, tls.h): once TCP is up a connection is in C_HANDSHAKE, where every socket
 * event steps the non-blocking handshake (bounded by --handshake-timeout); reads and writes
 * then go through the TLS layer, which may hold decrypted bytes the socket no longer
 * signals, so a read goes on until the layer says it would block. With --handshake-only
 * the exchange is the connection itself: counted sent at connect(), answered when the
 * handshake completes (latency from connect()), then closed with close_notify and
 * replaced. With --tls-resume on a TLS 1.3 ticket arrives after the handshake, so such a
 * connection waits for it (C_TICKET, bounded by the same timeout) before closing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "engine.h"
#include "h2.h"
#include "phase.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BACKOFF_MIN_NS 10000000ull /* reconnect backoff 10 ms .. 500 ms */
#define BACKOFF_MAX_NS 500000000ull

enum cstate {
    C_IDLE,
    C_CONNECTING,
    C_HANDSHAKE, /* --tls: TCP is up, the handshake is not done */
    C_OPEN,
    C_TICKET, /* --handshake-only --tls-resume on: handshake done, waiting for a ticket */
};

/* --script with delay(): a connection asks delay() before each request and sends it when
 * the wait is over. */
enum delay_gate {
    GATE_ASK,  /* delay() is asked before the next request */
    GATE_WAIT, /* its timer runs */
    GATE_OPEN, /* the wait is over: the next request may go */
};

struct tconn {
    struct loop_watcher w; /* registered while the socket is open */
    struct tctx *x;        /* the thread's engine */
    int fd;
    uint32_t flow;
    unsigned local;
    uint8_t tgt; /* its target (cfg->targets) */
    enum cstate state;
    bool ever_connected;
    uint64_t retry_at, connect_start, backoff;
    uint64_t hs_start;     /* --tls: when the handshake began */
    struct tls_conn tls;   /* --tls: this slot's TLS session and last ticket */
    uint64_t tx_seq, rx_base; /* seqs [rx_base, tx_seq) are in flight or acked out of order */
    uint32_t inflight;
    uint64_t *ack; /* bit (seq % window) set: answered, seq > rx_base */
    uint8_t *rbuf, *wbuf;
    uint32_t rlen, woff, wlen;
    uint64_t released, issued;         /* open loop: given by the schedule, sent (or skipped) */
    uint64_t deferred_upto;            /* open loop: released messages counted as deferred */
    uint64_t conn_sent, conn_answered; /* on the current connection (churn) */
    uint32_t rcap;                     /* size of rbuf */
    uint32_t wcap;                     /* size of wbuf (--script may grow it to a request) */
    /* templates: requests in flight, oldest first (ring of fifo_cap, a power of two) */
    struct rr_slot *fifo;
    uint32_t fifo_head, fifo_cap;
    struct frame_state fst; /* framing progress of the reply at the start of rbuf */
    struct h2_session *h2;  /* --h2: the connection's HTTP/2 session (NULL: none yet) */
    bool h2_error_seen;     /* --h2: a GOAWAY with an error code was counted */
    enum delay_gate gate;   /* --script with delay(): where the next request stands */
    struct timer delay_timer; /* --script with delay(): on the thread's loop while waiting */
};

struct rr_slot {
    uint64_t intended, sent;
    uint64_t kctx; /* the request's key context (keys.h), for cache_check and --expect */
    uint64_t seq;  /* the request's {seq} */
    uint32_t tmpl;
};

struct tctx {
    struct load_thread *th;
    const struct load_config *cfg;
    const struct load_clock *clk;
    struct loop *lp; /* the thread's event loop */
    struct tconn *c;
    unsigned n;
    uint32_t window, rcap, wcap;
    struct load_phase ph;
    uint64_t inflight; /* thread total */
    const struct tmpl_set *ts; /* templates, or NULL for echo */
    uint32_t rmax;             /* templates: rbuf may grow to this */
    uint64_t rng;              /* templates: choices and random bytes */
    unsigned next_source;      /* --source: the address the next connection binds to */
    const struct tls_client *tls; /* --tls: the run's client context, else NULL */
    bool hs_only;                 /* --handshake-only */
    bool multi;                   /* several targets: counts charged per target */
    bool tgt_tmpl;                /* several http targets: template k is target k's GET */
    bool h2;                      /* --h2 */
    struct h2_request *h2rq[LOAD_MAX_TARGETS]; /* --h2: each target's request */
    struct script *sc;            /* --script: this thread's Lua state, else NULL */
    bool sc_req;                  /* --script: its request() makes the requests */
    bool sc_stopped;              /* --script: wrk.thread:stop() was acted on */
    bool sc_delay;                /* --script: delay() paces each connection (closed loop) */
};

/* Several targets: what follows TARGET_BEGIN up to TARGET_END is done for connection c,
 * and its counts are charged to c's target. */
#define TARGET_BEGIN(x) \
    struct target_mark tmark_ = {{0}}; \
    if ((x)->multi) \
        target_mark(&(x)->th->st, &tmark_)
#define TARGET_END(x, c) \
    if ((x)->multi) \
        target_charge(&(x)->th->tgt[(c)->tgt], &(x)->th->st, &tmark_)

static void conn_fill(struct tctx *x, struct tconn *c, uint64_t now);
static void conn_on_io(struct loop_watcher *w, uint32_t events);
static void conn_read(struct tctx *x, struct tconn *c, bool hup);
static void conn_start(struct tctx *x, struct tconn *c, uint64_t now);
static void conn_count_sent(struct tctx *x, struct tconn *c, uint32_t len);

static inline bool bit_get(const uint64_t *b, uint64_t i, uint32_t w)
{
    i &= w - 1;
    return (b[i >> 6] >> (i & 63)) & 1;
}

static inline void bit_set(uint64_t *b, uint64_t i, uint32_t w)
{
    i &= w - 1;
    b[i >> 6] |= 1ull << (i & 63);
}

static inline void bit_clear(uint64_t *b, uint64_t i, uint32_t w)
{
    i &= w - 1;
    b[i >> 6] &= ~(1ull << (i & 63));
}

/* Ends the current connection of c, whatever the reason: counts `why` (ST__COUNT for
 * none), a partial echo as short, everything still in flight as unanswered, and schedules
 * a reconnect after `delay` (or after the backoff when delay is UINT64_MAX). */
static void conn_close(struct tctx *x, struct tconn *c, enum stat_id why, int err, uint64_t now,
                       uint64_t delay)
{
    struct load_stats *st = &x->th->st;

    if (why != ST__COUNT)
        stat_add(st, why, 1);
    if (err)
        load_note_error(x->th, stat_names[why], err);
    if (c->rlen) {
        stat_add(st, ST_SHORT, 1);
        load_note_error(x->th,
                        x->ts ? "short reply: connection ended inside a reply"
                              : "short reply: connection ended inside an echo",
                        0);
    }
    if (c->inflight) {
        stat_add(st, ST_UNANSWERED, c->inflight);
        x->inflight -= c->inflight;
    }
    if (c->fd >= 0) {
        /* close_notify when the engine itself ends a healthy connection */
        tls_conn_end(&c->tls, why == ST__COUNT && (c->state == C_OPEN || c->state == C_TICKET));
        loop_unwatch(x->lp, &c->w);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_IDLE;
    phase_want_scan(&x->ph); /* it reconnects, or the retry waits for the scan */
    h2_session_free(c->h2);
    c->h2 = NULL;
    c->h2_error_seen = false;
    c->inflight = 0;
    c->rx_base = c->tx_seq;
    memset(c->ack, 0, x->window / 8);
    c->rlen = c->woff = c->wlen = 0;
    c->conn_sent = c->conn_answered = 0;
    c->fifo_head = 0;
    frame_reset(&c->fst);
    if (x->sc)
        script_conn_closed(x->sc, c->flow);
    if (timer_armed(&c->delay_timer))
        loop_timer_disarm(x->lp, &c->delay_timer);
    c->gate = GATE_ASK; /* a new connection waits delay() before its first request, as wrk's */
    if (delay == UINT64_MAX) {
        delay = c->backoff;
        c->backoff = c->backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : c->backoff * 2;
    }
    c->retry_at = now + delay;
}

static void conn_fail(struct tctx *x, struct tconn *c, int err, uint64_t now)
{
    conn_close(x, c, stat_errno(err), err, now, UINT64_MAX);
}

/* Whether a complete HTTP reply (`len` bytes, headers included) says the server closes
 * the connection after it: `Connection: close` (HTTP/1.1), or HTTP/1.0 without
 * `Connection: keep-alive`. Header names and the tokens are case-insensitive. */
static bool http_reply_closes(const uint8_t *p, size_t len)
{
    static const char name[] = "connection:";
    bool v10 = len >= 8 && memcmp(p, "HTTP/1.0", 8) == 0, close_tok = false, keep = false;
    size_t i = 0, end;

    while (i < len && p[i] != '\n') /* skip the status line */
        i++;
    for (i++; i < len; i = end + 1) {
        for (end = i; end < len && p[end] != '\n'; end++)
            ;
        if (end - i <= 1) /* the empty line: end of the headers */
            break;
        if (end - i > sizeof(name) - 1 && strncasecmp((const char *)p + i, name, sizeof(name) - 1) == 0) {
            size_t j = i + sizeof(name) - 1;

            while (j < end) { /* comma-separated tokens */
                size_t k;

                while (j < end && (p[j] == ' ' || p[j] == '\t' || p[j] == ','))
                    j++;
                for (k = j; k < end && p[k] != ',' && p[k] != ' ' && p[k] != '\t' && p[k] != '\r'; k++)
                    ;
                if (k - j == 5 && strncasecmp((const char *)p + j, "close", 5) == 0)
                    close_tok = true;
                if (k - j == 10 && strncasecmp((const char *)p + j, "keep-alive", 10) == 0)
                    keep = true;
                j = k + (k < end);
                if (k < end && p[k] == '\r')
                    break;
            }
        }
    }
    return close_tok || (v10 && !keep);
}

/* Counts an HTTP response by its status class (1xx and odd codes are not counted). */
static void http_count_status(struct load_thread *th, int status)
{
    if (status >= 200 && status < 600)
        stat_add(&th->st, (enum stat_id)(ST_STATUS_2XX + status / 100 - 2), 1);
}

/* The server ended the connection cleanly between replies: an EOF after at least one reply
 * on it, or a reply saying it closes (HTTP). Not an error: counted as a reconnect, and a
 * new connection is opened at once. The requests still in flight (pipelined, or sent before
 * the EOF arrived) go again on the new connection (`resent`): in open loop with the due times
 * of the schedule they had, in closed loop timed afresh (their --count share given back).
 * When sending is over, or an echo stream had answers out of order, they count as
 * unanswered instead. */
static void conn_reconnect(struct tctx *x, struct tconn *c, uint64_t now)
{
    struct load_stats *st = &x->th->st;
    uint32_t n = c->inflight;

    stat_add(st, ST_RECONNECTS, 1);
    if (n && !x->hs_only && !x->ph.sending_over && (x->ph.open || now < x->clk->send_end) &&
        (x->ts || c->tx_seq - c->rx_base == n)) {
        if (x->ph.open) {
            c->issued -= n; /* the same slots of the schedule, due when they were */
            x->ph.backlog += n;
        } else if (x->ph.counted) {
            uint32_t i, m = 0;

            for (i = 0; i < n; i++)
                if (load_measured(x->clk, x->ts && !x->h2 ? c->fifo[(c->fifo_head + i) & (c->fifo_cap - 1)].intended
                                                : now))
                    m++;
            x->ph.quota += m;
            if (m)
                x->ph.release_over = false;
        }
        c->tx_seq -= n;
        c->inflight = 0;
        x->inflight -= n;
        stat_add(st, ST_RESENT, n);
    }
    c->rlen = 0;
    conn_close(x, c, ST__COUNT, 0, now, 0);
    if (!x->ph.sending_over && (!x->ph.release_over || c->released > c->issued))
        conn_start(x, c, now);
}

/* A TLS failure: counted by its kind, its sentence noted, the connection retried after
 * the backoff. */
static void conn_tls_fail(struct tctx *x, struct tconn *c, const struct tls_failure *f,
                          uint64_t now)
{
    load_note_error(x->th, f->text, 0);
    conn_close(x, c, f->kind, 0, now, UINT64_MAX);
}

/* --handshake-only: the connection has done its part; the next one starts at once. */
static void handshake_next(struct tctx *x, struct tconn *c, uint64_t now)
{
    c->state = C_OPEN; /* a healthy end: close_notify */
    conn_close(x, c, ST__COUNT, 0, now, 0);
    if (!x->ph.sending_over && !x->ph.release_over)
        conn_start(x, c, now);
}

/* --handshake-only --tls-resume on: reads (and drops) what the server sends until the
 * session ticket has come, then goes on to the next connection. At most 64 reads per
 * event, so a server that floods cannot hold the thread: the handshake timeout then ends
 * the wait (scan). */
static void conn_ticket(struct tctx *x, struct tconn *c, uint64_t now)
{
    struct tls_failure f;
    enum tls_io r;
    size_t got;
    int n = 0;

    do
        r = tls_conn_read(&c->tls, c->rbuf, c->rcap, &got, &f);
    while (r == TLS_IO_OK && !c->tls.ticket && ++n < 64);
    if (r == TLS_IO_FAIL) {
        conn_tls_fail(x, c, &f, now);
        return;
    }
    if (c->tls.ticket || r == TLS_IO_EOF)
        handshake_next(x, c, now);
}

/* --handshake-only: the handshake that just completed answers the connection's exchange,
 * timed from connect(). */
static void handshake_answered(struct tctx *x, struct tconn *c, uint64_t now)
{
    struct load_thread *th = x->th;
    uint64_t lat = now - c->connect_start;

    c->inflight--;
    x->inflight--;
    c->conn_answered++;
    c->rx_base++;
    stat_add(&th->st, ST_RECEIVED, 1);
    series_record(th->series, now, lat);
    if (load_measured(x->clk, c->connect_start)) {
        stat_add(&th->st, ST_MEASURED, 1);
        hist_record(th->corrected, lat);
        hist_record(th->raw, lat);
        th->last_rx_ns = now;
    }
    if (x->cfg->tls.resume && tls_conn_is_tls13(&c->tls) && !c->tls.ticket) {
        c->state = C_TICKET;
        phase_want_scan(&x->ph); /* the ticket's wait is bounded by the scan */
        conn_ticket(x, c, now);
        return;
    }
    handshake_next(x, c, now);
}

/* --tls: one step of the handshake; once done, counts it and goes on to the exchanges. */
static void conn_handshake(struct tctx *x, struct tconn *c, uint64_t now)
{
    struct load_thread *th = x->th;
    struct tls_failure f;
    enum tls_io r = tls_conn_handshake(&c->tls, &f);

    if (r == TLS_IO_WANT)
        return;
    if (r != TLS_IO_OK) {
        conn_tls_fail(x, c, &f, now);
        return;
    }
    now = load_now();
    stat_add(&th->st, ST_TLS_HANDSHAKES, 1);
    if (tls_conn_resumed(&c->tls))
        stat_add(&th->st, ST_TLS_RESUMED, 1);
    hist_record(th->handshake, now - c->hs_start);
    tls_tally_conn(&th->tally, &c->tls);
    c->backoff = BACKOFF_MIN_NS;
    if (x->hs_only) {
        handshake_answered(x, c, now);
        return;
    }
    c->state = C_OPEN;
    conn_fill(x, c, now);
    /* bytes that came with the end of the handshake raise no new edge */
    if (c->state == C_OPEN)
        conn_read(x, c, false);
}

static void conn_established(struct tctx *x, struct tconn *c, uint64_t now)
{
    struct tls_failure f;

    c->ever_connected = true;
    stat_add(&x->th->st, ST_CONNECTS, 1);
    hist_record(x->th->connect, now - c->connect_start);
    if (x->tls) {
        c->state = C_HANDSHAKE;
        c->hs_start = now;
        phase_want_scan(&x->ph); /* the handshake timeout */
        if (tls_conn_begin(x->tls, &c->tls, c->fd, &f) != 0) {
            conn_tls_fail(x, c, &f, now);
            return;
        }
        conn_handshake(x, c, now);
        return;
    }
    c->state = C_OPEN;
    conn_fill(x, c, now);
}

static void conn_start(struct tctx *x, struct tconn *c, uint64_t now)
{
    const struct load_config *cfg = x->cfg;
    const struct sockaddr *sa = (const struct sockaddr *)&cfg->targets[c->tgt].addr;
    socklen_t salen = cfg->targets[c->tgt].addrlen;
    int one = 1, fd, rc;

    if (x->sc)
        (void)script_addr(x->sc, &sa, &salen); /* thread.addr, when the script set it */
    if (x->hs_only) {
        /* the connection is the exchange: sent now, answered by its handshake */
        if (now >= x->clk->send_end || !phase_take(&x->ph, x->clk, now))
            return;
        conn_count_sent(x, c, 0);
    }
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->connect_start = now;
        conn_fail(x, c, errno, now);
        return;
    }
    c->fd = fd;
    c->connect_start = now;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->nsources) {
        unsigned i = x->next_source;

        x->next_source = (i + 1) % cfg->nsources;
        if (load_bind_source(fd, cfg, i) != 0) {
            int err = errno;
            char what[96];

            snprintf(what, sizeof(what), "bind to --source %s", cfg->sources[i].text);
            load_note_error(x->th, what, err);
            conn_fail(x, c, err, now);
            return;
        }
    }
    rc = loop_watch(x->lp, &c->w, fd, LOOP_IN | LOOP_OUT | LOOP_RDHUP | LOOP_EDGE, conn_on_io);
    if (rc < 0) {
        conn_fail(x, c, -rc, now);
        return;
    }
    if (connect(fd, sa, salen) == 0) {
        conn_established(x, c, now);
        return;
    }
    if (errno != EINPROGRESS) {
        conn_fail(x, c, errno, now);
        return;
    }
    c->state = C_CONNECTING;
    phase_want_scan(&x->ph); /* the connect timeout */
}

/* Writes what is buffered; on a hard error closes the connection (returns -1). */
static int conn_flush(struct tctx *x, struct tconn *c, uint64_t now)
{
    ssize_t r;

    while (c->woff < c->wlen && c->tls.ssl) {
        struct tls_failure f;
        size_t done;

        switch (tls_conn_write(&c->tls, c->wbuf + c->woff, c->wlen - c->woff, &done, &f)) {
        case TLS_IO_OK:
            c->woff += (uint32_t)done;
            stat_add(&x->th->st, ST_SENDS, 1);
            continue;
        case TLS_IO_WANT: return 0;
        case TLS_IO_EOF: conn_fail(x, c, EPIPE, now); return -1;
        case TLS_IO_FAIL: conn_tls_fail(x, c, &f, now); return -1;
        }
    }
    while (c->woff < c->wlen) {
        r = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r > 0) {
            c->woff += (uint32_t)r;
            stat_add(&x->th->st, ST_SENDS, 1);
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0; /* LOOP_OUT (edge-triggered) tells us when to go on */
        conn_fail(x, c, r < 0 ? errno : EPIPE, now);
        return -1;
    }
    c->woff = c->wlen = 0;
    return 0;
}

/* Makes room for one more request in c's FIFO. Returns -1 when out of memory. */
static int fifo_grow(struct tconn *c)
{
    uint32_t cap = c->fifo_cap ? c->fifo_cap * 2 : 16, i;
    struct rr_slot *f;

    if (c->inflight < c->fifo_cap)
        return 0;
    f = malloc(cap * sizeof(*f));
    if (!f)
        return -1;
    for (i = 0; i < c->inflight; i++)
        f[i] = c->fifo[(c->fifo_head + i) & (c->fifo_cap - 1)];
    free(c->fifo);
    c->fifo = f;
    c->fifo_cap = cap;
    c->fifo_head = 0;
    return 0;
}

/* Counts one message of `len` bytes just built into wbuf as sent. */
static void conn_count_sent(struct tctx *x, struct tconn *c, uint32_t len)
{
    c->tx_seq++;
    c->inflight++;
    c->conn_sent++;
    x->inflight++;
    if (x->ph.open) {
        c->issued++;
        x->ph.backlog--;
    }
    stat_add(&x->th->st, ST_SENT, 1);
    stat_add(&x->th->st, ST_BYTES_SENT, len);
}

/* --script: the thread's script called wrk.thread:stop() (in the hook that just ran, or
 * in init()): the thread sends nothing more and drains, once. */
static void script_check_stop(struct tctx *x)
{
    if (!script_stopped(x->sc) || x->sc_stopped)
        return;
    x->sc_stopped = true;
    stat_add(&x->th->st, ST_SCRIPT_STOPS, 1);
    phase_drain_now(&x->ph, x->th, load_now());
}

/* --script: the next request from request() into wbuf (grown to it when it is empty and
 * the request longer than its size). Returns its length, 0 when it cannot go now (held for
 * the next fill: no room, or the --count quota spent), -1 when the script failed (counted:
 * script_error, request_too_long). */
static ssize_t script_fill(struct tctx *x, struct tconn *c, uint64_t now)
{
    const uint8_t *rq;
    size_t rl;
    char why[160];
    enum script_rc r = script_request(x->sc, c->flow, c->tx_seq, &rq, &rl, why, sizeof(why));

    script_check_stop(x);
    if (r != SCRIPT_OK) {
        stat_add(&x->th->st, r == SCRIPT_TOO_LONG ? ST_REQUEST_TOO_LONG : ST_SCRIPT_ERROR, 1);
        load_note_error(x->th, why, 0);
        return -1;
    }
    if (c->wlen + rl > c->wcap) {
        uint8_t *b;

        if (c->wlen > 0) {
            script_hold(x->sc, c->flow);
            return 0;
        }
        if (!(b = realloc(c->wbuf, rl))) {
            stat_add(&x->th->st, ST_SCRIPT_ERROR, 1);
            load_note_error(x->th, "script_error: out of memory for a request", 0);
            return -1;
        }
        c->wbuf = b;
        c->wcap = (uint32_t)rl;
    }
    if (x->ph.sending_over || (!x->ph.open && !phase_take(&x->ph, x->clk, now))) {
        script_hold(x->sc, c->flow);
        return 0; /* the --count quota is spent, or the script stopped the thread */
    }
    memcpy(c->wbuf + c->wlen, rq, rl);
    return (ssize_t)rl;
}

/* --script with delay(): whether c's next request may go now. Asks delay() once per
 * request; a wait arms the connection's timer on the thread's loop, whose callback
 * (conn_on_delay) opens the gate and fills. Returns 1 (go), 0 (wait), or -1 when delay()
 * failed (counted: script_error). */
static int delay_gate(struct tctx *x, struct tconn *c)
{
    uint64_t ms;
    char why[200];
    enum script_rc r;

    if (c->gate != GATE_ASK)
        return c->gate == GATE_OPEN;
    r = script_delay(x->sc, &ms, why, sizeof(why));
    script_check_stop(x);
    if (r != SCRIPT_OK) {
        stat_add(&x->th->st, ST_SCRIPT_ERROR, 1);
        load_note_error(x->th, why, 0);
        return -1;
    }
    if (x->ph.sending_over)
        return 0;
    /* +1: the loop's clock counts whole milliseconds, so the wait is never shorter */
    if (ms == 0 || loop_timer_arm(x->lp, &c->delay_timer, timer_now_ms() + ms + 1) != 0) {
        c->gate = GATE_OPEN; /* no wait (or no memory for the timer: no wait either) */
        return 1;
    }
    c->gate = GATE_WAIT;
    return 0;
}

/* The wait delay() asked for is over: the connection's next request may go. */
static void conn_on_delay(struct timer *t, uint64_t now_ms)
{
    struct tconn *c = (struct tconn *)((char *)t - offsetof(struct tconn, delay_timer));
    TARGET_BEGIN(c->x);

    (void)now_ms;
    c->gate = GATE_OPEN;
    conn_fill(c->x, c, load_now());
    TARGET_END(c->x, c);
}

/* Templates: expands up to `want` requests of the mix into wbuf, then writes. */
static void fill_templates(struct tctx *x, struct tconn *c, uint64_t want, uint64_t now)
{
    const struct tmpl_set *ts = x->ts;
    uint64_t intended;
    uint64_t kctx;
    unsigned k;
    size_t len;

    for (; want > 0; want--) {
        k = x->tgt_tmpl ? c->tgt : tmpl_pick(ts, &x->rng);
        if (!x->sc_req && c->wlen + ts->t[k].max_len > x->wcap && c->wlen > 0)
            break;
        if (fifo_grow(c) != 0)
            break;
        if (x->sc_delay) {
            int g = delay_gate(x, c);

            if (g < 0 && c->inflight == 0 && c->wlen == 0) {
                conn_close(x, c, ST__COUNT, 0, now, UINT64_MAX); /* as a failing request() */
                return;
            }
            if (g <= 0)
                break;
        }
        if (x->sc_req) {
            ssize_t n = script_fill(x, c, now);

            if (n <= 0) {
                if (n < 0 && c->inflight == 0 && c->wlen == 0) {
                    /* nothing will call again on this connection: retry it after the
                     * backoff, so a failing script neither stalls nor spins */
                    conn_close(x, c, ST__COUNT, 0, now, UINT64_MAX);
                    return;
                }
                break;
            }
            len = (size_t)n;
            kctx = 0;
        } else {
            if (!x->ph.open && !phase_take(&x->ph, x->clk, now))
                break; /* the --count quota is spent */
            len = tmpl_expand(ts, &ts->t[k], c->wbuf + c->wlen, c->tx_seq, c->flow, &x->rng, &kctx);
        }
        intended = x->ph.open ? sched_conn_at(&x->ph.sched, c->local, c->issued) : now;
        c->fifo[(c->fifo_head + c->inflight) & (c->fifo_cap - 1)] =
            (struct rr_slot){intended, now, kctx, c->tx_seq, k};
        c->gate = GATE_ASK; /* the next request waits its own delay() */
        c->wlen += (uint32_t)len;
        conn_count_sent(x, c, (uint32_t)len);
    }
    if (c->wlen > c->woff)
        conn_flush(x, c, now);
}

/* --h2: the session's writes go into wbuf; 0 when it is full (nghttp2 offers the rest
 * again). The front of wbuf already written is dropped first to make room. */
static size_t h2_write(void *user, const uint8_t *p, size_t len)
{
    struct tconn *c = user;
    struct tctx *x = c->x;
    uint32_t space;

    if (c->woff == c->wlen) {
        c->woff = c->wlen = 0;
    } else if (c->woff && c->wlen + len > x->wcap) {
        memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
    }
    space = x->wcap - c->wlen;
    if (len > space)
        len = space;
    memcpy(c->wbuf + c->wlen, p, len);
    c->wlen += (uint32_t)len;
    stat_add(&x->th->st, ST_BYTES_SENT, len);
    return len;
}

/* --h2: a request the server did not process (refused by a GOAWAY or REFUSED_STREAM)
 * goes again, as conn_reconnect sends again what was in flight: its slot of the
 * schedule (open loop) or its --count share (closed loop) is given back. */
static void h2_give_back(struct tctx *x, struct tconn *c, uint64_t intended, uint64_t now)
{
    if (x->ph.sending_over || (!x->ph.open && now >= x->clk->send_end)) {
        stat_add(&x->th->st, ST_UNANSWERED, 1);
        return;
    }
    if (x->ph.open) {
        c->issued--;
        x->ph.backlog++;
    } else if (x->ph.counted && load_measured(x->clk, intended)) {
        x->ph.quota++;
        x->ph.release_over = false;
    }
    stat_add(&x->th->st, ST_RESENT, 1);
}

/* --h2: a stream ended (h2.h's done hook): a response checked and timed like an HTTP/1
 * reply, a refused request given back, a reset counted as stream_reset. */
static void h2_done(void *user, const struct h2_stream *st, uint32_t code)
{
    struct tconn *c = user;
    struct tctx *x = c->x;
    struct load_thread *th = x->th;
    unsigned k = x->tgt_tmpl ? c->tgt : 0;
    const struct tmpl *t = &x->ts->t[k];
    uint64_t now = load_now();
    char what[160];

    c->inflight--;
    x->inflight--;
    if (code == H2_REFUSED) {
        h2_give_back(x, c, st->intended, now);
        return;
    }
    c->conn_answered++;
    c->rx_base++;
    if (code != 0 || st->status == 0) {
        stat_add(&th->st, ST_STREAM_RESET, 1);
        snprintf(what, sizeof(what), "stream_reset on connection %u: request %" PRIu64 " %s (%s)",
                 c->flow, st->seq, code ? "reset (RST_STREAM)" : "ended without a response",
                 h2_error_name(code));
        load_note_error(th, what, 0);
        return;
    }
    http_count_status(th, st->status);
    if (!frame_check_ok(&t->check, (const uint8_t *)"", 0, st->status)) {
        stat_add(&th->st, ST_MISMATCH, 1);
        snprintf(what, sizeof(what), "mismatch on connection %u (request '%s'): status %d",
                 c->flow, t->name, st->status);
        load_note_error(th, what, 0);
        return;
    }
    stat_add(&th->st, ST_RECEIVED, 1);
    c->backoff = BACKOFF_MIN_NS;
    series_record(th->series, now, now > st->intended ? now - st->intended : 0);
    if (load_measured(x->clk, st->intended)) {
        stat_add(&th->st, ST_MEASURED, 1);
        hist_record(th->corrected, now > st->intended ? now - st->intended : 0);
        hist_record(th->raw, now > st->sent ? now - st->sent : 0);
        if (th->cmd[k])
            hist_record(th->cmd[k], now > st->intended ? now - st->intended : 0);
        th->last_rx_ns = now;
    }
}

static const struct h2_hooks h2_hooks = {h2_write, h2_done};

/* --h2: writes what the session has, as far as the socket takes it. Returns -1 when the
 * connection was closed. */
static int h2_pump(struct tctx *x, struct tconn *c, uint64_t now)
{
    char why[160];

    for (;;) {
        if (h2_session_send(c->h2, why, sizeof(why)) != 0) {
            stat_add(&x->th->st, ST_H2_ERROR, 1);
            load_note_error(x->th, why, 0);
            conn_close(x, c, ST__COUNT, 0, now, UINT64_MAX);
            return -1;
        }
        if (c->woff == c->wlen)
            return 0;
        if (conn_flush(x, c, now) != 0)
            return -1;
        if (c->woff < c->wlen || !h2_session_want_write(c->h2))
            return 0; /* the socket is full (LOOP_OUT resumes), or all is written */
    }
}

/* --h2: opens up to `want` streams (the session's room allowing), then writes. */
static void fill_h2(struct tctx *x, struct tconn *c, uint64_t want, uint64_t now)
{
    uint32_t room;

    if (!c->h2) {
        c->h2 = h2_session_new(x->h2rq[x->tgt_tmpl ? c->tgt : 0], x->cfg->pipeline, &h2_hooks, c);
        if (!c->h2) {
            load_note_error(x->th, "HTTP/2 session", ENOMEM);
            conn_close(x, c, ST_SOCKET_ERROR, 0, now, UINT64_MAX);
            return;
        }
    }
    room = h2_session_room(c->h2);
    if (want > room)
        want = room;
    for (; want > 0; want--) {
        uint64_t intended;

        if (!x->ph.open && !phase_take(&x->ph, x->clk, now))
            break; /* the --count quota is spent */
        intended = x->ph.open ? sched_conn_at(&x->ph.sched, c->local, c->issued) : now;
        if (h2_session_submit(c->h2, intended, now, c->tx_seq) != 0) {
            if (!x->ph.open && x->ph.counted && load_measured(x->clk, now))
                x->ph.quota++; /* not taken after all */
            break;
        }
        conn_count_sent(x, c, 0); /* the bytes are counted as the session writes them */
    }
    (void)h2_pump(x, c, now);
}

/* --h2: feeds what was read to the session and writes what it answers; replaces the
 * connection once a GOAWAY has let every stream end. Returns -1 when it closed. */
static int parse_h2(struct tctx *x, struct tconn *c, uint64_t now)
{
    char why[160];
    uint32_t code;

    stat_add(&x->th->st, ST_BYTES_RECEIVED, c->rlen);
    if (!c->h2) { /* nothing was ever sent on it */
        c->rlen = 0;
        return 0;
    }
    if (h2_session_recv(c->h2, c->rbuf, c->rlen, why, sizeof(why)) != 0) {
        c->rlen = 0;
        stat_add(&x->th->st, ST_H2_ERROR, 1);
        load_note_error(x->th, why, 0);
        conn_close(x, c, ST__COUNT, 0, now, UINT64_MAX);
        return -1;
    }
    c->rlen = 0;
    if (h2_pump(x, c, now) != 0)
        return -1;
    if (h2_session_goaway(c->h2, &code)) {
        if (code && !c->h2_error_seen) {
            c->h2_error_seen = true;
            stat_add(&x->th->st, ST_H2_ERROR, 1);
            snprintf(why, sizeof(why), "h2_error: GOAWAY from the server on connection %u: %s",
                     c->flow, h2_error_name(code));
            load_note_error(x->th, why, 0);
        }
        if (h2_session_open(c->h2) == 0) {
            conn_reconnect(x, c, now);
            return -1;
        }
    }
    if (h2_session_over(c->h2)) {
        stat_add(&x->th->st, ST_H2_ERROR, 1);
        load_note_error(x->th, "h2_error: the HTTP/2 session ended (connection error)", 0);
        conn_close(x, c, ST__COUNT, 0, now, UINT64_MAX);
        return -1;
    }
    return 0;
}

/* Builds as many messages as the pipeline, schedule, quota and churn allow, then writes.
 * Closed loop: nothing more from send_end on. Open loop: what the schedule released (all
 * due before send_end) may go until the phase ends sending. */
static void conn_fill(struct tctx *x, struct tconn *c, uint64_t now)
{
    const struct load_config *cfg = x->cfg;
    uint64_t want, intended;
    uint32_t len;

    if (c->state != C_OPEN || x->ph.sending_over || (!x->ph.open && now >= x->clk->send_end)) {
        if (c->state == C_OPEN && c->h2) /* --h2: frames may still wait (bodies, windows) */
            (void)h2_pump(x, c, now);
        return;
    }
    if (c->woff == c->wlen)
        c->woff = c->wlen = 0;
    want = cfg->pipeline - c->inflight;
    if (x->ph.open)
        want = want < c->released - c->issued ? want : c->released - c->issued;
    if (cfg->churn && want > cfg->churn - c->conn_sent)
        want = cfg->churn - c->conn_sent;
    if (x->h2) {
        fill_h2(x, c, want, now);
        return;
    }
    if (x->ts) {
        fill_templates(x, c, want, now);
        return;
    }
    for (; want > 0; want--) {
        len = msg_length(&cfg->msg, c->flow, c->tx_seq);
        if (c->wlen + len > x->wcap)
            break;
        if (!x->ph.open && !phase_take(&x->ph, x->clk, now))
            break; /* the --count quota is spent */
        intended = x->ph.open ? sched_conn_at(&x->ph.sched, c->local, c->issued) : now;
        msg_build(&cfg->msg, c->wbuf + c->wlen, len, c->flow, c->tx_seq, intended, now);
        c->wlen += len;
        conn_count_sent(x, c, len);
    }
    if (c->wlen > c->woff)
        conn_flush(x, c, now);
}

/* Marks message `seq` (outstanding, not answered yet) answered. */
static void ack(struct tctx *x, struct tconn *c, uint64_t seq)
{
    bit_set(c->ack, seq, x->window);
    c->inflight--;
    x->inflight--;
    c->conn_answered++;
    while (c->rx_base < c->tx_seq && bit_get(c->ack, c->rx_base, x->window)) {
        bit_clear(c->ack, c->rx_base, x->window);
        c->rx_base++;
    }
}

static void handle_echo(struct tctx *x, struct tconn *c, const uint8_t *p, const struct msg_hdr *h,
                        uint64_t now)
{
    struct load_thread *th = x->th;
    enum msg_verdict v;
    uint64_t s = h->seq;

    stat_add(&th->st, ST_BYTES_RECEIVED, h->length);
    v = msg_verify(&x->cfg->msg, p, h, c->flow);
    if (v != MSG_OK) {
        char what[96];

        stat_add(&th->st, ST_MISMATCH, 1);
        snprintf(what, sizeof(what), "mismatch on connection %u: %s", c->flow, msg_verdict_name(v));
        load_note_error(th, what, 0);
        if (c->inflight)
            ack(x, c, c->rx_base); /* cannot be matched: taken as the oldest one's answer */
        return;
    }
    if (s < c->rx_base || s >= c->tx_seq || bit_get(c->ack, s, x->window)) {
        stat_add(&th->st, ST_DUPLICATE, 1);
        load_note_error(th, "duplicate echo (or echo of a message never sent)", 0);
        return;
    }
    if (s != c->rx_base) {
        stat_add(&th->st, ST_REORDER, 1);
        load_note_error(th, "echo reordered within a TCP connection", 0);
    }
    ack(x, c, s);
    stat_add(&th->st, ST_RECEIVED, 1);
    c->backoff = BACKOFF_MIN_NS;
    series_record(th->series, now, now > h->intended_ns ? now - h->intended_ns : 0);
    if (load_measured(x->clk, h->intended_ns)) {
        stat_add(&th->st, ST_MEASURED, 1);
        hist_record(th->corrected, now > h->intended_ns ? now - h->intended_ns : 0);
        hist_record(th->raw, now > h->sent_ns ? now - h->sent_ns : 0);
        th->last_rx_ns = now;
    }
}

/* Cache workloads: checks a get's reply against the keys of its request (cache.h), counts
 * hits and misses, or bad_value. Returns whether the reply was right. */
static bool reply_verified(struct tctx *x, struct tconn *c, const struct rr_slot *sl,
                           const struct tmpl *t, const uint8_t *reply, size_t len)
{
    uint64_t hits = 0, misses = 0;
    char why[128], what[200];

    if (cache_check(&x->ts->keys, &x->ts->values, t->verify, t->nkeys, sl->kctx, reply, len,
                    &hits, &misses, why, sizeof(why)) != 0) {
        stat_add(&x->th->st, ST_BAD_VALUE, 1);
        snprintf(what, sizeof(what), "bad_value on connection %u (request '%s'): %s", c->flow,
                 t->name, why);
        load_note_error(x->th, what, 0);
        return false;
    }
    stat_add(&x->th->st, ST_HITS, hits);
    stat_add(&x->th->st, ST_MISSES, misses);
    return true;
}

/* --script: hands a reply to response(); counts script_rejected or script_error. Returns
 * whether the reply passed. */
static bool script_reply_ok(struct tctx *x, struct tconn *c, const struct rr_slot *sl,
                            const uint8_t *reply, size_t len)
{
    char why[200];
    enum script_rc r = script_response(x->sc, c->flow, sl->seq, reply, len, c->fst.status, why,
                                       sizeof(why));

    script_check_stop(x);
    if (r == SCRIPT_OK)
        return true;
    stat_add(&x->th->st, r == SCRIPT_REJECTED ? ST_SCRIPT_REJECTED : ST_SCRIPT_ERROR, 1);
    load_note_error(x->th, why, 0);
    return false;
}

/* Templates: frames, checks and accounts for every complete reply in rbuf. Returns -1 when
 * the connection was closed (the stream cannot be framed any more). */
static int parse_replies(struct tctx *x, struct tconn *c, uint64_t now)
{
    struct load_thread *th = x->th;
    uint32_t off = 0;
    char what[160];

    while (off < c->rlen) {
        const struct rr_slot *sl;
        const struct tmpl *t;
        const char *why;
        enum frame_rc rc;
        size_t rl = 0;

        if (c->inflight == 0) {
            stat_add(&th->st, ST_UNSOLICITED, 1);
            snprintf(what, sizeof(what),
                     "unsolicited: %u bytes on connection %u with no request outstanding",
                     c->rlen - off, c->flow);
            load_note_error(th, what, 0);
            off = c->rlen;
            break;
        }
        sl = &c->fifo[c->fifo_head];
        t = &x->ts->t[sl->tmpl];
        rc = frame_feed(&t->frame, &c->fst, c->rbuf + off, c->rlen - off, &rl, &why);
        if (rc == FRAME_NEED)
            break;
        if (rc != FRAME_DONE) {
            stat_add(&th->st, rc == FRAME_TOO_LONG ? ST_TOO_LONG : ST_BAD_REPLY, 1);
            snprintf(what, sizeof(what), "%s on connection %u (request '%s'): %s",
                     rc == FRAME_TOO_LONG ? "reply too long" : "bad reply", c->flow, t->name, why);
            load_note_error(th, what, 0);
            /* the oldest request is taken as answered (wrongly); the rest is lost with the
             * connection */
            c->fifo_head = (c->fifo_head + 1) & (c->fifo_cap - 1);
            c->inflight--;
            x->inflight--;
            c->rlen = 0;
            conn_close(x, c, ST__COUNT, 0, now, 0);
            return -1;
        }
        stat_add(&th->st, ST_BYTES_RECEIVED, rl);
        if (t->frame.kind == FK_HTTP)
            http_count_status(th, c->fst.status);
        c->fifo_head = (c->fifo_head + 1) & (c->fifo_cap - 1);
        c->inflight--;
        x->inflight--;
        c->conn_answered++;
        c->rx_base++;
        if (!tmpl_reply_ok(x->ts, t, sl->seq, c->flow, sl->kctx, c->rbuf + off, rl,
                           c->fst.status)) {
            int n;

            stat_add(&th->st, ST_MISMATCH, 1);
            if (x->sc) /* response() is not called: the request's ctx goes */
                script_reply_dropped(x->sc, c->flow, sl->seq);
            n = snprintf(what, sizeof(what), "mismatch on connection %u (request '%s'): reply '",
                         c->flow, t->name);
            for (size_t i = 0; i < rl && i < 40 && n < (int)sizeof(what) - 8; i++)
                n += snprintf(what + n, sizeof(what) - (size_t)n,
                              c->rbuf[off + i] >= 32 && c->rbuf[off + i] < 127 ? "%c" : "\\x%02x",
                              c->rbuf[off + i]);
            snprintf(what + n, sizeof(what) - (size_t)n, "%s'", rl > 40 ? "..." : "");
            load_note_error(th, what, 0);
        } else if (t->verify && !reply_verified(x, c, sl, t, c->rbuf + off, rl)) {
            /* bad_value counted */
        } else if (x->sc && !script_reply_ok(x, c, sl, c->rbuf + off, rl)) {
            /* script_rejected or script_error counted */
        } else {
            stat_add(&th->st, ST_RECEIVED, 1);
            c->backoff = BACKOFF_MIN_NS;
            series_record(th->series, now, now > sl->intended ? now - sl->intended : 0);
            if (load_measured(x->clk, sl->intended)) {
                stat_add(&th->st, ST_MEASURED, 1);
                hist_record(th->corrected, now > sl->intended ? now - sl->intended : 0);
                hist_record(th->raw, now > sl->sent ? now - sl->sent : 0);
                if (th->cmd[sl->tmpl])
                    hist_record(th->cmd[sl->tmpl], now > sl->intended ? now - sl->intended : 0);
                th->last_rx_ns = now;
            }
        }
        frame_reset(&c->fst);
        if (t->frame.kind == FK_HTTP && http_reply_closes(c->rbuf + off, rl)) {
            /* the server closes after this reply: what follows on this connection is not
             * an answer; go on on a new one */
            conn_reconnect(x, c, now);
            return -1;
        }
        off += (uint32_t)rl;
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return 0;
}

/* Frames and handles every complete echo in rbuf. Returns -1 when the connection closed. */
static int conn_parse(struct tctx *x, struct tconn *c, uint64_t now)
{
    struct msg_hdr h;
    uint32_t off = 0;

    if (x->h2)
        return parse_h2(x, c, now);
    if (x->ts)
        return parse_replies(x, c, now);
    while (c->rlen - off >= MSG_HDR_LEN) {
        if (msg_parse_header(&x->cfg->msg, c->rbuf + off, &h) != 0) {
            char what[96];

            stat_add(&x->th->st, ST_MISMATCH, 1);
            snprintf(what, sizeof(what),
                     "mismatch on connection %u: stream cannot be framed (bad magic or length)",
                     c->flow);
            load_note_error(x->th, what, 0);
            c->rlen = 0;
            conn_close(x, c, ST__COUNT, 0, now, 0);
            return -1;
        }
        if (c->rlen - off < h.length)
            break;
        handle_echo(x, c, c->rbuf + off, &h, now);
        off += h.length;
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return 0;
}

/* Templates: the reply being received fills rbuf; grows it up to rmax, past which the
 * reply is too long (the connection is replaced). Returns -1 when the connection closed. */
static int grow_rbuf(struct tctx *x, struct tconn *c, uint64_t now)
{
    uint32_t cap = c->rcap * 2;
    uint8_t *b;

    if (cap > x->rmax)
        cap = x->rmax;
    if (!x->ts || cap <= c->rcap || !(b = realloc(c->rbuf, cap))) {
        stat_add(&x->th->st, ST_TOO_LONG, 1);
        load_note_error(x->th, "reply too long: longer than --max-reply", 0);
        if (c->inflight) {
            c->fifo_head = (c->fifo_head + 1) & (c->fifo_cap - 1);
            c->inflight--;
            x->inflight--;
        }
        c->rlen = 0;
        conn_close(x, c, ST__COUNT, 0, now, 0);
        return -1;
    }
    c->rbuf = b;
    c->rcap = cap;
    return 0;
}

/* Reads what the socket holds; `hup`: the event also said the peer closed or failed, so
 * reading goes on to the end of the stream. */
static void conn_read(struct tctx *x, struct tconn *c, bool hup)
{
    const struct load_config *cfg = x->cfg;
    uint64_t now = load_now();
    ssize_t r;

    for (;;) {
        if (c->rlen == c->rcap && grow_rbuf(x, c, now) != 0)
            return;
        size_t space = c->rcap - c->rlen;

        if (c->tls.ssl) {
            struct tls_failure f;
            size_t got;

            switch (tls_conn_read(&c->tls, c->rbuf + c->rlen, space, &got, &f)) {
            case TLS_IO_OK:
                now = load_now();
                c->rlen += (uint32_t)got;
                if (conn_parse(x, c, now) != 0)
                    return;
                continue; /* until the layer would block: it may hold more */
            case TLS_IO_WANT: break;
            case TLS_IO_EOF: r = 0; goto eof;
            case TLS_IO_FAIL: conn_tls_fail(x, c, &f, now); return;
            }
            break;
        }
        r = recv(c->fd, c->rbuf + c->rlen, space, MSG_DONTWAIT);
        if (r > 0) {
            now = load_now();
            c->rlen += (uint32_t)r;
            if (conn_parse(x, c, now) != 0)
                return;
            /* less than asked for: the socket was empty, and what arrives later raises a new
             * edge, so the recv that would only say EAGAIN is saved */
            if ((size_t)r < space && !hup)
                break;
            continue;
        }
        if (r == 0) {
        eof:
            if (c->rlen == 0 && c->conn_answered > 0) {
                conn_reconnect(x, c, now); /* between replies: like a keep-alive limit */
                return;
            }
            if (c->rlen) {
                load_note_error(x->th, "eof_mid_reply: the server closed the connection in the "
                                       "middle of a reply", 0);
                conn_close(x, c, ST_EOF_MID_REPLY, 0, now, UINT64_MAX);
                return;
            }
            conn_close(x, c, ST_PEER_CLOSED, 0, now, UINT64_MAX);
            load_note_error(x->th, "server closed the connection before answering on it", 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        conn_fail(x, c, errno, now);
        return;
    }
    if (cfg->churn && c->conn_answered >= cfg->churn && c->inflight == 0) {
        stat_add(&x->th->st, ST_CHURN_CLOSES, 1);
        conn_close(x, c, ST__COUNT, 0, now, 0);
        if (!x->ph.sending_over && !x->ph.release_over)
            conn_start(x, c, now);
        return;
    }
    conn_fill(x, c, now);
}

static void conn_event(struct tctx *x, struct tconn *c, uint32_t events)
{
    uint64_t now = load_now();
    int err = 0;
    socklen_t len = sizeof(err);

    if (c->state == C_CONNECTING) {
        if (!(events & (LOOP_OUT | LOOP_ERR | LOOP_HUP)))
            return;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == 0 && (events & (LOOP_ERR | LOOP_HUP)))
            err = ECONNREFUSED;
        if (err) {
            conn_fail(x, c, err, now);
            return;
        }
        conn_established(x, c, now);
        if (c->state != C_OPEN || x->tls)
            return; /* TLS: conn_established stepped the handshake (and read, once done) */
    }
    if (c->state == C_HANDSHAKE) {
        conn_handshake(x, c, now);
        return;
    }
    if (c->state == C_TICKET) {
        conn_ticket(x, c, now);
        return;
    }
    if (c->state != C_OPEN)
        return;
    if (events & (LOOP_IN | LOOP_RDHUP | LOOP_HUP | LOOP_ERR)) {
        conn_read(x, c, (events & (LOOP_RDHUP | LOOP_HUP | LOOP_ERR)) != 0);
        if (c->state != C_OPEN)
            return;
    }
    if (events & LOOP_OUT) {
        if (conn_flush(x, c, now) == 0)
            conn_fill(x, c, now);
    }
}

/* Open loop: releases every message due by `now` to its connection and sends what can go. */
static void release_due(void *ctx, uint64_t now)
{
    struct tctx *x = ctx;
    struct load_phase *ph = &x->ph;
    uint64_t due;
    unsigned i, n;

    while (phase_due(ph, x->clk, now, &due)) {
        struct tconn *c = &x->c[phase_slot(ph)];

        if (!c->ever_connected && x->cfg->ramp > 0) {
            /* --ramp: a connection not opened yet takes no part in the schedule, its slots
             * are skipped. Without --ramp every connection is part of it from t0: a slot due
             * while its connection is still connecting waits in the backlog and goes out,
             * late, once it is up (the corrected latency counts the wait). */
            phase_skip(ph);
            c->released++;
            c->issued++;
            stat_add(&x->th->st, ST_SKIPPED, 1);
            continue;
        }
        if (!phase_take(ph, x->clk, due))
            break;
        c->released++;
        phase_release(ph, c->local);
    }
    n = phase_pending(ph);
    for (i = 0; i < n; i++) {
        struct tconn *c = &x->c[ph->pending[i]];
        TARGET_BEGIN(x);

        conn_fill(x, c, now);
        TARGET_END(x, c);
        /* what could not go in this tick (connecting, window or buffer full) is deferred:
         * sent later, each message counted once */
        if (c->issued < c->released) {
            uint64_t from = c->issued > c->deferred_upto ? c->issued : c->deferred_upto;

            if (c->released > from)
                stat_add(&x->th->st, ST_DEFERRED, c->released - from);
            c->deferred_upto = c->released;
        }
    }
}

/* Connects what is due to (re)connect and times out connects pending too long. */
/* Returns whether a connection is not open (it connects, handshakes, waits for a ticket
 * or to reconnect): the scan must come again. */
static bool scan(void *ctx, uint64_t now)
{
    struct tctx *x = ctx;
    unsigned i;
    bool again = false;

    for (i = 0; i < x->n; i++) {
        struct tconn *c = &x->c[i];
        TARGET_BEGIN(x);

        if (c->state == C_IDLE && now >= c->retry_at && !x->ph.sending_over &&
            (!x->ph.release_over || c->released > c->issued))
            conn_start(x, c, now);
        else if (c->state == C_CONNECTING && now - c->connect_start >= x->cfg->connect_timeout_ns)
            conn_close(x, c, ST_CONNECT_TIMEOUT, 0, now, UINT64_MAX);
        else if (c->state == C_HANDSHAKE &&
                 now - c->hs_start >= x->cfg->tls.handshake_timeout_ns) {
            load_note_error(x->th, "TLS handshake timed out (--handshake-timeout)", 0);
            conn_close(x, c, ST_TLS_HANDSHAKE_TIMEOUT, 0, now, UINT64_MAX);
        } else if (c->state == C_TICKET &&
                   now - c->hs_start >= x->cfg->tls.handshake_timeout_ns)
            handshake_next(x, c, now); /* no ticket came: the next handshake is a full one */
        again |= c->state != C_OPEN;
        TARGET_END(x, c);
    }
    return again;
}

/* The drain is over when no message is in flight any more. */
static bool all_answered(const void *ctx)
{
    const struct tctx *x = ctx;

    return x->inflight == 0;
}

/* The loop's callback of a connection's socket (the watcher is the first member). */
static void conn_on_io(struct loop_watcher *w, uint32_t events)
{
    struct tconn *c = (struct tconn *)w;
    TARGET_BEGIN(c->x);

    if (c->fd >= 0)
        conn_event(c->x, c, events);
    TARGET_END(c->x, c);
}

static const struct phase_ops tcp_ops = {release_due, scan, all_answered};

static int ctx_init(struct tctx *x, struct load_thread *th)
{
    const struct load_config *cfg = th->cfg;
    uint32_t smax = cfg->tmpls ? (uint32_t)cfg->tmpls->max_len : cfg->msg.size_max;
    uint64_t rc, wc;
    unsigned i;
    double ramp_t = cfg->ramp > 0 ? cfg->ramp * th->nconns / cfg->connections : 0;

    memset(x, 0, sizeof(*x));
    x->th = th;
    x->cfg = cfg;
    x->clk = th->clk;
    x->n = th->nconns;
    /* the threads start at different sources: connection k binds first to source k mod n */
    x->next_source = cfg->nsources ? th->first_conn % cfg->nsources : 0;
    for (x->window = 64; x->window < cfg->pipeline; x->window *= 2)
        ;
    wc = (uint64_t)cfg->pipeline * smax;
    wc = wc > 65536 ? 65536 : wc;
    wc = wc < smax ? smax : wc;
    rc = wc < 2ull * smax ? 2ull * smax : wc;
    x->rcap = (uint32_t)(rc < 4096 ? 4096 : rc);
    x->wcap = (uint32_t)(wc < 4096 ? 4096 : wc);
    if (cfg->tmpls) {
        x->ts = cfg->tmpls;
        x->rmax = cfg->max_reply + 1; /* room to see that a reply is too long */
        x->rcap = x->rmax < 16384 ? x->rmax : 16384;
        x->rng = (cfg->msg.seed * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)th->index + 1) * 0xbf58476d1ce4e5b9ull;
        if (!x->rng)
            x->rng = 1;
    }
    x->lp = &th->loop;
    x->tls = cfg->tls.on ? cfg->tls_client : NULL;
    x->hs_only = x->tls && cfg->tls.handshake_only;
    if (cfg->h2.on) {
        unsigned k;
        char err[200];

        x->h2 = true;
        x->wcap = x->wcap < 32768 ? 32768 : x->wcap;
        for (k = 0; k < cfg->ntargets; k++) {
            const struct load_target *tg = &cfg->targets[k];

            x->h2rq[k] = h2_request_new(cfg->http.method, cfg->tls.on, tg->target,
                                        tg->path[0] ? tg->path : cfg->h2.path, cfg->h2.headers,
                                        cfg->h2.nheaders, cfg->http.body, cfg->http.body_len, err,
                                        sizeof(err));
            if (!x->h2rq[k])
                return -1; /* opts.c made the same requests once: only memory fails here */
        }
    }
    x->multi = cfg->ntargets > 1;
    x->tgt_tmpl = x->multi && x->ts && !strcmp(x->ts->proto, "http");
    x->sc = cfg->scripts ? script_thread(cfg->scripts, th->index) : NULL;
    x->sc_req = x->sc && script_has_request(x->sc);
    x->sc_delay = x->sc && script_has_delay(x->sc) && !(cfg->rate > 0);
    x->c = calloc(x->n, sizeof(*x->c));
    if (!x->c)
        return -1;
    for (i = 0; i < x->n; i++) /* first: ctx_free reads them whatever fails below */
        timer_init(&x->c[i].delay_timer, conn_on_delay);
    if (x->multi) {
        uint8_t *who = malloc(x->n);

        if (!who)
            return -1;
        targets_assign(cfg->targets, cfg->ntargets, th->first_conn, x->n, who);
        for (i = 0; i < x->n; i++)
            x->c[i].tgt = who[i];
        free(who);
    }
    for (i = 0; i < x->n; i++) {
        x->c[i].fd = -1;
        x->c[i].w.fd = -1;
        x->c[i].x = x;
    }
    for (i = 0; i < x->n; i++) {
        struct tconn *c = &x->c[i];

        c->local = i;
        c->flow = th->first_conn + i;
        c->backoff = BACKOFF_MIN_NS;
        c->retry_at = ramp_t > 0 ? x->clk->t0 + (uint64_t)(i * 1e9 / ramp_t) : 0;
        c->ack = calloc(x->window / 64, sizeof(uint64_t));
        c->rbuf = malloc(x->rcap);
        c->rcap = x->rcap;
        c->wbuf = malloc(x->wcap);
        c->wcap = x->wcap;
        if (!c->ack || !c->rbuf || !c->wbuf)
            return -1;
    }
    return 0;
}

static void ctx_free(struct tctx *x)
{
    unsigned i;

    for (i = 0; x->c && i < x->n; i++) {
        if (timer_armed(&x->c[i].delay_timer))
            loop_timer_disarm(x->lp, &x->c[i].delay_timer);
        tls_conn_free(&x->c[i].tls);
        if (x->c[i].fd >= 0) {
            loop_unwatch(x->lp, &x->c[i].w);
            close(x->c[i].fd);
        }
        free(x->c[i].ack);
        free(x->c[i].rbuf);
        free(x->c[i].wbuf);
        free(x->c[i].fifo);
        h2_session_free(x->c[i].h2);
    }
    free(x->c);
    for (i = 0; i < LOAD_MAX_TARGETS; i++)
        h2_request_free(x->h2rq[i]);
}

void *tcp_thread(void *arg)
{
    struct load_thread *th = arg;
    struct tctx x;
    uint64_t now;
    unsigned i;
    int rc;

    rc = ctx_init(&x, th);
    if (phase_begin(&x.ph, th, rc)) {
        if (x.sc) /* stopped in init(): the thread drains at once (nothing to drain) */
            script_check_stop(&x);
        now = phase_run(&x.ph, th, &tcp_ops, &x);
        /* what is still in flight now is unanswered */
        for (i = 0; i < x.n; i++)
            if (x.c[i].fd >= 0 || x.c[i].inflight) {
                TARGET_BEGIN(&x);

                conn_close(&x, &x.c[i], ST__COUNT, 0, now, 0);
                TARGET_END(&x, &x.c[i]);
            }
    }
    phase_free(&x.ph);
    ctx_free(&x);
    load_thread_finish(th);
    return NULL;
}
