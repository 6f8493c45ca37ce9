/*
 * conn_io.c - a connection's bytes: reading into the worker's shared
 * buffer, offering input to on_data (and kept input again), writing output,
 * the watermarks and on_drain, the epoll mask.
 *
 * The rhythm of one event: read -> on_data -> settle (write what the
 * callback queued, apply the watermarks, update the epoll mask, arm the
 * timer, or close a CLOSING connection whose output is out).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"
#include "admission.h"
#include "callback.h"
#include "listener.h"
#include "log.h"
#include "tls_ctx.h"
#include "worker.h"

/* Bytes read per recv() once a connection keeps unconsumed input. */
#define CONN_READ_CHUNK 16384
/* How often one event may call on_drain before yielding to other connections. */
#define CONN_MAX_DRAIN_ROUNDS 8
/* The scratch buffer is released past this size once flushed. */
#define SCRATCH_KEEP_MAX (1u << 20)
/* How often one event may offer kept input again before yielding. */
#define CONN_MAX_OFFERS 16
/* Most pieces (copied runs and referenced chunks) one sendmsg() takes. */
#define CONN_IOV_MAX 64

int conn_io_wants_input(const struct wharf_conn *c)
{
    if (c->flags & CONN_PEER_EOF)
        return 0;
    if (c->state == CONN_CLOSING)
        return 1; /* read and dropped: conn_io_discard */
    return c->state <= CONN_OPEN &&
           !(c->flags & (CONN_PAUSED_HANDLER | CONN_PAUSED_OUTPUT | CONN_HELD));
}

/* Whether c's bytes go through TLS now (not while a PROXY header before
 * the handshake is read in clear). */
static bool conn_io_tls(const struct wharf_conn *c)
{
    return c->ssl && !(c->flags & CONN_PROXY_WAIT);
}

uint32_t conn_io_recv_bit(const struct wharf_conn *c)
{
    return (c->ssl || c->l->tls) && tls_ctx_ktls() ? 0 : LOOP_RECV;
}

void conn_io_update_events(struct wharf_conn *c)
{
    uint32_t want = conn_io_recv_bit(c);
    if (conn_io_wants_input(c))
        want |= LOOP_IN;
    if (conn_out_len(c) > 0 || (c->flags & (CONN_PAUSED_OUTPUT | CONN_WANT_DRAIN)))
        want |= LOOP_OUT;
    if (conn_io_tls(c)) {
        if (c->flags & CONN_TLS_HANDSHAKE) {
            want = c->tls_want | conn_io_recv_bit(c); /* only what the handshake waits for */
        } else {
            want |= c->tls_want;
            /* Decrypted input the socket will not signal: read it this turn. */
            if ((want & LOOP_IN) && conn_tls_pending(c)) {
                c->flags |= CONN_TLS_MORE;
                conn_io_schedule_offer(c);
            }
        }
    }
    /* Recorded; the loop tells the kernel before it waits, if it still
     * differs then (a refusal comes back as LOOP_ERR: conn_on_io). */
    loop_modify(&c->w->loop, &c->watcher, want);
}

/* Bytes written to the socket that the peer has not yet taken (its kernel
 * send queue, SIOCOUTQ), or 0 when that cannot be told. */
static int conn_io_kernel_queued(const struct wharf_conn *c)
{
    int queued = 0;
    if (ioctl(c->watcher.fd, SIOCOUTQ, &queued) < 0)
        return 0;
    return queued;
}

/* Nothing in flight: no unconsumed input, no pending output, and nothing
 * still in the kernel's send queue (a slow reader of a busy stream). */
static bool conn_io_is_idle(const struct wharf_conn *c)
{
    return c->in.len == 0 && conn_pending(c) == 0 && conn_io_kernel_queued(c) == 0;
}

/* Counts n bytes written: statistics and the write timestamp. */
static void conn_io_count_write(struct wharf_conn *c, size_t n)
{
    if (n == 0)
        return;
    if (c->bytes_out == 0 && c->accepted_ns) /* the first byte out */
        histogram_observe(&conn_stats(c)->hist[HISTOGRAM_TTFB], HISTOGRAM_TTFB,
                          histogram_now_ns() - c->accepted_ns);
    c->last_write_ms = c->w->loop.now_ms;
    conn_evict_progress(c);
    c->bytes_out += n;
    wharf_counter_add(&conn_stats(c)->bytes_out, n);
}

/* recv() of c's plaintext: from the socket, or through TLS. */
static ssize_t conn_io_recv(struct wharf_conn *c, void *p, size_t len)
{
    if (conn_io_tls(c))
        return conn_tls_recv(c, p, len);
    return loop_recv(&c->w->loop, &c->watcher, p, len);
}

/* send() of c's plaintext. */
static ssize_t conn_io_send1(struct wharf_conn *c, const void *p, size_t len)
{
    if (conn_io_tls(c))
        return conn_tls_send(c, p, len);
    return send(c->watcher.fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Most plaintext one TLS record carries. */
#define CONN_TLS_RECORD 16384

/* Writes the run p[0..len) through TLS, adding what went to *done.
 * Returns 1 when all of it went, 0 when part did, -1 on an error or a
 * retry with nothing written (errno set). */
static int conn_io_tls_put(struct wharf_conn *c, const void *p, size_t len, size_t *done)
{
    ssize_t n = conn_tls_send(c, p, len);
    if (n < 0)
        return -1;
    *done += (size_t)n;
    return (size_t)n == len;
}

/* sendmsg() of c's plaintext pieces.  Through TLS, pieces are gathered into
 * full records first (a run of 16 KiB or more at a record's start goes
 * straight from its piece), so that a header, a referenced value and its
 * trailer go out as one record and one send(), not three; a short write
 * stops there, as sendmsg's would.  (A retry after EAGAIN gathers the same
 * bytes again, at least as many: what SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
 * and partial writes allow.) */
static ssize_t conn_io_sendv(struct wharf_conn *c, struct iovec *iov, int k)
{
    if (!conn_io_tls(c)) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)k};
        return sendmsg(c->watcher.fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    char rec[CONN_TLS_RECORD];
    size_t fill = 0, done = 0;
    int rc = 1;
    for (int i = 0; i < k && rc == 1; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len > 0 && rc == 1) {
            if (fill == 0 && len >= sizeof rec) { /* whole records straight from it */
                rc = conn_io_tls_put(c, p, len, &done);
                break;
            }
            size_t take = len < sizeof rec - fill ? len : sizeof rec - fill;
            memcpy(rec + fill, p, take);
            fill += take, p += take, len -= take;
            if (fill == sizeof rec) {
                rc = conn_io_tls_put(c, rec, fill, &done);
                fill = 0;
            }
        }
    }
    if (rc == 1 && fill > 0)
        rc = conn_io_tls_put(c, rec, fill, &done);
    /* Bytes written count even when an error followed: the next call sees it. */
    return rc < 0 && done == 0 ? -1 : (ssize_t)done;
}

/* Writes as much of p[0..len) as the socket takes.  Returns bytes written, or
 * -1 on a socket error (errno set; EAGAIN is not an error). */
static ssize_t conn_io_write(struct wharf_conn *c, const char *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = conn_io_send1(c, p + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    conn_io_count_write(c, done);
    return (ssize_t)done;
}

/*
 * Writes the output stream whose copied bytes are in b (c->out, or the
 * scratch buffer) with c's referenced chunks between them, as far as the
 * socket takes it: one sendmsg() gathers up to CONN_IOV_MAX pieces.  Drops
 * what was written from b and releases the chunks written completely.
 * Returns 0, or -1 on a socket error (errno set).
 */
static int conn_io_send(struct wharf_conn *c, struct buf *b)
{
    /* An outbound connection still connecting, or in its TLS handshake:
     * its output waits (and goes through TLS once it is up). */
    if (c->flags & (CONN_CONNECTING | CONN_TLS_HANDSHAKE))
        return 0;
    while (c->refs.head) {
        struct iovec iov[CONN_IOV_MAX];
        size_t want;
        int k = refq_iov(&c->refs, b->data ? buf_head(b) : NULL, b->len, iov, CONN_IOV_MAX,
                         &want);
        ssize_t n = conn_io_sendv(c, iov, k);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        conn_io_count_write(c, (size_t)n);
        size_t old_refs = c->refs.bytes, copied;
        CALLBACK_RUN("release", c->l, (int)c->w->id, c->id,
                     copied = refq_consume(&c->refs, (size_t)n));
        buf_consume(b, copied);
        if (c->refs.bytes != old_refs) {
            wharf_counter_add(&conn_stats(c)->output_buffered,
                              -(uint64_t)(old_refs - c->refs.bytes));
            admission_output_add(c->w->admission, -(ptrdiff_t)(old_refs - c->refs.bytes));
        }
        if ((size_t)n < want)
            return 0; /* the socket is full */
    }
    ssize_t n = conn_io_write(c, buf_head(b), b->len);
    if (n < 0)
        return -1;
    buf_consume(b, (size_t)n);
    return 0;
}

/* Adjusts the output_buffered gauge after the output's held memory
 * (conn_out_held) changed from old_held. */
void conn_io_output_resized(struct wharf_conn *c, size_t old_held)
{
    size_t held = conn_out_held(c);
    if (held == old_held)
        return;
    wharf_counter_add(&conn_stats(c)->output_buffered, (uint64_t)held - (uint64_t)old_held);
    if (admission_output_add(c->w->admission, (ptrdiff_t)held - (ptrdiff_t)old_held) &&
        held > old_held)
        conn_budget_check(c->w);
}

/*
 * Writes pending output: first the scratch buffer (output of the current
 * callback, when c->out was empty), keeping what the socket refused in
 * c->out; then c->out; referenced chunks go out in their places between
 * them.  Returns 0, or -1 when c is dead (a write error, or the output
 * budget chose it).
 */
int conn_io_flush(struct wharf_conn *c)
{
    struct wharf_worker *w = c->w;
    struct conn_set *set = &w->conns;
    if (conn_dead(c))
        return -1;
    size_t old_held = c->out.cap; /* the chunks written are counted in conn_io_send */
    int was_pending = conn_out_len(c) > 0;
    if (set->scratch_conn == c) {
        int failed = conn_io_send(c, &set->scratch) < 0;
        if (!failed && set->scratch.len > 0 &&
            buf_append(&c->out, buf_head(&set->scratch), set->scratch.len) < 0)
            failed = 1, errno = ENOMEM;
        set->scratch_conn = NULL;
        buf_consume(&set->scratch, set->scratch.len);
        if (set->scratch.cap > SCRATCH_KEEP_MAX)
            buf_free(&set->scratch);
        if (failed)
            goto error;
    } else if (conn_out_len(c) > 0) {
        if (conn_io_send(c, &c->out) < 0)
            goto error;
    }
    old_held += c->refs.bytes;
    if (conn_out_len(c) == 0) {
        buf_free(&c->out);
        if ((c->flags & CONN_WAIT_WRITTEN) && c->in.len > 0) {
            c->flags &= ~(uint32_t)CONN_WAIT_WRITTEN;
            conn_io_schedule_offer(c);
        }
    } else if (!was_pending)
        c->last_write_ms = w->loop.now_ms; /* the write timer starts now */
    conn_io_output_resized(c, old_held); /* may close c (the output budget) */
    return conn_dead(c) ? -1 : 0;

error:
    log_write(WHARF_LOG_DEBUG, conn_name(c), (int)w->id, c->id, "write: %s", strerror(errno));
    conn_close(c, WHARF_CLOSE_ERROR);
    conn_io_output_resized(c, old_held + c->refs.bytes);
    return -1;
}

/*
 * After a callback or an event: writes output, closes a CLOSING connection
 * whose output is out, applies the watermarks (calling on_drain when output
 * falls below the low mark after having passed the high mark), updates the
 * epoll mask and the timer.  Returns 0, or -1 if c is dead.
 */
int conn_io_settle(struct wharf_conn *c)
{
    const struct config_listener *cfg = c->l->cfg;
    bool drained_any = false;
    for (int round = 0;; round++) {
        if (conn_io_flush(c) < 0)
            return -1;
        if (c->state == CONN_CLOSING && conn_out_len(c) == 0 && !(c->flags & CONN_CONNECTING)) {
            conn_close(c, c->close_reason);
            return -1;
        }
        if ((c->flags & CONN_SHUT_WRITE) && conn_out_len(c) == 0 && !(c->flags & CONN_SHUT_DONE) &&
            !(c->flags & (CONN_CONNECTING | CONN_TLS_HANDSHAKE))) {
            c->flags |= CONN_SHUT_DONE;
            conn_tls_shutdown(c); /* TLS: close_notify first */
            shutdown(c->watcher.fd, SHUT_WR); /* our side is done: the peer sees EOF */
        }
        int drained = 0;
        if (conn_out_len(c) > cfg->high_watermark) {
            c->flags |= CONN_PAUSED_OUTPUT;
        } else if ((c->flags & (CONN_PAUSED_OUTPUT | CONN_WANT_DRAIN)) &&
                   conn_out_len(c) < cfg->low_watermark && round < CONN_MAX_DRAIN_ROUNDS) {
            /* Past the round limit the connection stays paused; the epoll
             * mask asks for EPOLLOUT, so the drain comes next turn. */
            c->flags &= ~(uint32_t)(CONN_PAUSED_OUTPUT | CONN_WANT_DRAIN);
            drained_any = true;
            drained = c->l->handler->on_drain != NULL;
        }
        if (!drained)
            break;
        CONN_CALL(c, "on_drain", c->l->handler->on_drain(c));
        if (conn_dead(c))
            return -1;
    }
    if (drained_any && c->in.len > 0)
        conn_io_schedule_offer(c); /* kept input comes back after on_drain */
    if (c->w->phase >= WORKER_DRAINING && conn_io_is_idle(c)) {
        /* Shutting down and nothing in flight: no reason to wait. */
        conn_close(c, WHARF_CLOSE_SHUTDOWN);
        return -1;
    }
    conn_io_update_events(c);
    if (conn_dead(c))
        return -1;
    conn_deadline_arm(c);
    return conn_dead(c) ? -1 : 0;
}

/* Whether on_data (and on_eof) may be called now. */
static bool conn_io_can_deliver(const struct wharf_conn *c)
{
    return c->state == CONN_OPEN &&
           !(c->flags & (CONN_PAUSED_HANDLER | CONN_PAUSED_OUTPUT | CONN_HELD | CONN_PROXY_WAIT));
}

/*
 * Calls on_data.  Returns the bytes consumed, or CONN_BAD_RETURN (after
 * logging and closing) when the handler claimed more than it was given.
 */
#define CONN_BAD_RETURN ((size_t)-1)

static size_t conn_io_call_data(struct wharf_conn *c, const char *data, size_t len)
{
    size_t used;
    CONN_CALL(c, "on_data", used = c->l->handler->on_data(c, data, len));
    if (used > len) {
        log_write(WHARF_LOG_ERROR, conn_name(c), (int)c->w->id, c->id,
                  "handler \"%s\": on_data returned %zu for %zu bytes; closing",
                  c->l->handler->name, used, len);
        conn_close(c, WHARF_CLOSE_ERROR);
        return CONN_BAD_RETURN;
    }
    if (used > 0)
        conn_evict_progress(c);
    return used;
}

/* Asks for conn_io_offer on this loop turn's check (or the next turn's). */
void conn_io_schedule_offer(struct wharf_conn *c)
{
    struct conn_set *set = &c->w->conns;
    if (c->flags & CONN_OFFER_PENDING)
        c->flags &= ~(uint32_t)CONN_FLUSH_ONLY; /* a flush becomes an offer */
    if ((c->flags & CONN_OFFER_PENDING) || conn_dead(c))
        return;
    c->flags |= CONN_OFFER_PENDING;
    c->offer_next = set->offers;
    set->offers = c;
    if (!set->offers_busy) {
        set->offers_busy = true;
        loop_set_busy(&c->w->loop, 1);
    }
}

/* Asks for conn_io_settle (the output written, the mask and timers set)
 * on this loop turn's check, or the next turn's: output queued on c outside
 * its own callback goes out at the end of the turn, so that the socket's
 * EPOLLOUT is armed only when the send leaves bytes pending. */
void conn_io_schedule_flush(struct wharf_conn *c)
{
    if (c->flags & (CONN_CONNECTING | CONN_TLS_HANDSHAKE)) {
        conn_io_update_events(c); /* nothing can be written yet: as before */
        return;
    }
    if ((c->flags & CONN_OFFER_PENDING) || conn_dead(c))
        return; /* an offer settles too */
    conn_io_schedule_offer(c);
    c->flags |= CONN_FLUSH_ONLY;
}

void conn_io_unschedule_offer(struct wharf_conn *c)
{
    if (!(c->flags & CONN_OFFER_PENDING))
        return;
    c->flags &= ~(uint32_t)(CONN_OFFER_PENDING | CONN_FLUSH_ONLY);
    for (struct wharf_conn **p = &c->w->conns.offers; *p; p = &(*p)->offer_next)
        if (*p == c) {
            *p = c->offer_next;
            return;
        }
}

/*
 * Offers the kept input to on_data again while the handler consumes some of
 * it: at most CONN_MAX_OFFERS calls, then the rest waits for the next loop
 * turn (so one connection cannot starve the others).  After the peer's EOF
 * every kept byte is offered, over as many turns as it takes, and on_eof
 * comes once nothing is kept or the handler took nothing of what is (an
 * incomplete last message) with no output pending.  Ends with conn_io_settle.
 * Returns 0, or -1 if c is dead.
 */
int conn_io_offer(struct wharf_conn *c)
{
    for (int round = 0; c->in.len > 0 && conn_io_can_deliver(c); round++) {
        if (round == CONN_MAX_OFFERS) {
            conn_io_schedule_offer(c);
            break;
        }
        /* What earlier calls sent goes out first, so wharf_output_pending
         * tells the handler what is really still pending. */
        if (conn_pending(c) > 0) {
            if (conn_io_flush(c) < 0)
                return -1;
            if (conn_out_len(c) > c->l->cfg->high_watermark) {
                c->flags |= CONN_PAUSED_OUTPUT; /* on_drain brings the input back */
                break;
            }
        }
        size_t used = conn_io_call_data(c, buf_head(&c->in), c->in.len);
        if (used == CONN_BAD_RETURN)
            break;
        buf_consume(&c->in, used);
        if (c->in.len == 0)
            buf_free(&c->in);
        if (used == 0) {
            if (conn_pending(c) > 0)
                c->flags |= CONN_WAIT_WRITTEN; /* offered again once the output is out */
            else if (c->flags & CONN_PEER_EOF)
                c->flags |= CONN_EOF_STALLED; /* nothing more will come: on_eof */
            break; /* otherwise it waits for more bytes */
        }
    }
    if ((c->flags & CONN_PEER_EOF) && !(c->flags & CONN_EOF_DONE) && conn_io_can_deliver(c) &&
        (c->in.len == 0 || (c->flags & CONN_EOF_STALLED))) {
        c->flags |= CONN_EOF_DONE;
        int keep = WHARF_EOF_CLOSE;
        if (c->l->handler->on_eof)
            CONN_CALL(c, "on_eof", keep = c->l->handler->on_eof(c));
        if (keep != WHARF_EOF_KEEP && c->state == CONN_OPEN) {
            /* The peer is done sending: finish writing, then close. */
            conn_move(c, CONN_CLOSING);
            c->close_reason = WHARF_CLOSE_EOF;
        }
    }
    return conn_io_settle(c);
}

/* The loop check that runs the offers scheduled for this turn. */
void conn_io_run_offers(struct loop_check *check)
{
    struct conn_set *set = (struct conn_set *)((char *)check - offsetof(struct conn_set, check));
    struct wharf_conn *list = set->offers;
    set->offers = NULL;
    while (list) {
        struct wharf_conn *c = list;
        list = c->offer_next;
        bool flush_only = c->flags & CONN_FLUSH_ONLY;
        c->flags &= ~(uint32_t)(CONN_OFFER_PENDING | CONN_FLUSH_ONLY);
        if (conn_dead(c))
            continue;
        if (flush_only)
            conn_io_settle(c);
        else if ((c->flags & CONN_TLS_MORE) && conn_io_wants_input(c))
            conn_io_read(c); /* decrypted input waiting in the TLS layer */
        else
            conn_io_offer(c);
    }
    if (!set->offers && set->offers_busy) {
        set->offers_busy = false;
        loop_set_busy(set->loop, -1);
    }
}

/*
 * A closing connection goes on reading while its last output goes out, and
 * drops what it reads.  A peer blocked in writing to us (a pipelined burst;
 * an echo server behind a proxy) then gets to read that output instead of
 * both sides waiting for the write timeout, and the close sends no reset
 * for unread bytes that could destroy the reply at the peer.  The write
 * timeout still bounds how long this lasts.
 */
static int conn_io_discard(struct wharf_conn *c)
{
    struct conn_set *set = &c->w->conns;
    ssize_t n = conn_io_recv(c, set->readbuf, set->readbuf_size);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        conn_close(c, WHARF_CLOSE_ERROR);
        return -1;
    }
    if (n == 0) {
        c->flags |= CONN_PEER_EOF;
        return conn_io_settle(c);
    }
    wharf_counter_add(&conn_stats(c)->bytes_in, (uint64_t)n);
    c->bytes_in += (uint64_t)n;
    return 0;
}

/* Where the next read goes: behind the kept input (capped by max_input), or
 * the worker's shared read buffer.  Returns 0, or -1 if c was closed. */
static int conn_io_read_room(struct wharf_conn *c, bool keep, char **p, size_t *room)
{
    const struct config_listener *cfg = c->l->cfg;
    if (!keep) {
        *p = c->w->conns.readbuf;
        *room = c->w->conns.readbuf_size;
        return 0;
    }
    if (c->in.len >= cfg->max_input) {
        conn_close(c, WHARF_CLOSE_LIMIT);
        return -1;
    }
    *room = cfg->max_input - c->in.len;
    if (*room > CONN_READ_CHUNK)
        *room = CONN_READ_CHUNK;
    *p = buf_reserve(&c->in, *room);
    if (!*p) {
        conn_close(c, WHARF_CLOSE_ERROR);
        return -1;
    }
    return 0;
}

/* Counts n bytes read: statistics, timestamps, the rate window. */
static void conn_io_count_read(struct wharf_conn *c, size_t n)
{
    uint64_t now = c->w->loop.now_ms;
    wharf_counter_add(&conn_stats(c)->bytes_in, (uint64_t)n);
    c->last_read_ms = now;
    c->bytes_seen = true;
    c->bytes_in += (uint64_t)n;
    if (c->in.len == 0)
        c->rate_since_ms = now; /* a message may start here */
    c->rate_bytes += (uint64_t)n;
}

/* After on_data took `used` of data[0..len): drops it from the kept input,
 * or keeps what the shared buffer held that was not taken.  Returns 0, or
 * -1 if c was closed. */
static int conn_io_keep_rest(struct wharf_conn *c, bool keep, const char *data, size_t len,
                             size_t used)
{
    if (keep) {
        buf_consume(&c->in, used);
        if (c->in.len == 0)
            buf_free(&c->in);
        return 0;
    }
    if (used == len || conn_dead(c))
        return 0;
    if (len - used > c->l->cfg->max_input) {
        conn_close(c, WHARF_CLOSE_LIMIT);
        return -1;
    }
    if (buf_append(&c->in, data + used, len - used) < 0) {
        conn_close(c, WHARF_CLOSE_ERROR);
        return -1;
    }
    return 0;
}

/* Whether a read error on c is a load balancer's health check ending: on
 * a PROXY listener, a reset before any byte past the PROXY header (HAProxy's
 * `check` connects, sends a LOCAL header with send-proxy-v2, and resets).
 * Such a connection closes as "eof", not "error". */
static bool conn_io_health_check(const struct wharf_conn *c, int code)
{
    return code == ECONNRESET && c->l->cfg->proxy_protocol &&
           ((c->flags & CONN_PROXY_WAIT) || !c->bytes_seen);
}

/* Reads once and hands the bytes to on_data.  Returns 0, or -1 if c was torn down. */
int conn_io_read(struct wharf_conn *c)
{
    if (c->state == CONN_CLOSING)
        return conn_io_discard(c);
    if ((c->flags & (CONN_TLS_HANDSHAKE | CONN_PROXY_WAIT)) == CONN_TLS_HANDSHAKE)
        return conn_tls_handshake(c);
    c->flags &= ~(uint32_t)CONN_TLS_MORE;
    /* Earlier input is kept (or a PROXY header is being read): read behind it. */
    bool keep = c->in.len > 0 || (c->flags & CONN_PROXY_WAIT);
    char *p;
    size_t room;
    if (conn_io_read_room(c, keep, &p, &room) < 0)
        return -1;

    ssize_t n = conn_io_recv(c, p, room);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (c->tls_want) /* TLS must write before it can read on */
                conn_io_update_events(c);
            return 0;
        }
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)c->w->id, c->id, "read: %s",
                  strerror(errno));
        conn_close(c, conn_io_health_check(c, errno) ? WHARF_CLOSE_EOF : WHARF_CLOSE_ERROR);
        return -1;
    }
    if (n == 0 && (c->flags & CONN_PROXY_WAIT)) {
        /* Closed before (or inside) the PROXY header: nothing to offer. */
        conn_close(c, WHARF_CLOSE_EOF);
        return -1;
    }
    if (n == 0) {
        /* The peer is done sending: kept bytes first, then on_eof. */
        c->flags |= CONN_PEER_EOF;
        return conn_io_offer(c);
    }
    conn_io_count_read(c, (size_t)n);
    const char *data = p;
    size_t len = (size_t)n;
    if (keep) {
        buf_commit(&c->in, len);
        data = buf_head(&c->in);
        len = c->in.len;
    }
    if (c->flags & CONN_PROXY_WAIT) {
        int rc = conn_proxy_read(c);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return conn_io_settle(c);
        if (c->flags & CONN_TLS_HANDSHAKE)
            return conn_tls_handshake(c); /* the rest is the start of it */
        /* The rest, if any, goes to the handler now. */
        return c->in.len > 0 ? conn_io_offer(c) : conn_io_settle(c);
    }

    size_t used = conn_io_call_data(c, data, len);
    if (used == CONN_BAD_RETURN)
        return conn_io_settle(c);
    if (conn_io_keep_rest(c, keep, data, len, used) < 0)
        return -1;
    /* Consumed some and some is left: offer the rest again now.  Took
     * nothing while output was pending: again once that output is out. */
    if (used > 0 && c->in.len > 0)
        return conn_io_offer(c);
    if (used == 0 && c->in.len > 0 && conn_pending(c) > 0)
        c->flags |= CONN_WAIT_WRITTEN;
    return conn_io_settle(c);
}
