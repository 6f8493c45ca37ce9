/*
 * conn.c - a TCP connection's life: made (accepted or outbound), opened,
 * closed and torn down; the worker's set of connections and the map by id.
 *
 * Everything here runs on the worker that owns the connection.  A close,
 * from wherever it comes, only marks the connection DEAD and queues it
 * (conn_close); the loop's closing phase at the end of the turn runs
 * on_close and frees it (conn_teardown), so no code of wharf or of a handler
 * ever holds a connection that was freed under it, and no callback of a
 * connection runs after its on_close.  The states and their legal moves are
 * in conn.h; reading and writing are in conn_io.c, timeouts in
 * conn_deadline.c, the output budget in conn_budget.c, the PROXY header in
 * conn_proxy.c and the handler's calls in conn_api.c.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>

#include "conn.h"
#include "access_log.h"
#include "admission.h"
#include "callback.h"
#include "generation.h"
#include "htimer.h"
#include "listener.h"
#include "log.h"
#include "tls_client.h"
#include "worker.h"

/* The worker's shared read buffer. */
#define CONN_READ_BUFFER (64 * 1024)

static void conn_on_io(struct loop_watcher *watcher, uint32_t events);

struct listener_counters *conn_stats(const struct wharf_conn *c)
{
    return listener_counters(c->l, c->w->id);
}

const char *conn_name(const struct wharf_conn *c)
{
    return c->l->cfg->name;
}

size_t conn_pending(const struct wharf_conn *c)
{
    return conn_out_len(c) + (c->w->conns.scratch_conn == c ? c->w->conns.scratch.len : 0);
}

/* The legal moves between states (conn.h has the picture). */
static const bool conn_moves[CONN_DEAD + 1][CONN_DEAD + 1] = {
    [CONN_PENDING] = {[CONN_OPEN] = true, [CONN_CLOSING] = true, [CONN_DEAD] = true},
    [CONN_OPEN] = {[CONN_CLOSING] = true, [CONN_DEAD] = true},
    [CONN_CLOSING] = {[CONN_DEAD] = true},
};

/* Moves c to state `to`; an illegal move is a bug in this file: logged,
 * and refused. */
bool conn_move(struct wharf_conn *c, enum conn_state to)
{
    if (!conn_moves[c->state][to]) {
        log_write(WHARF_LOG_ERROR, c->l->cfg->name, (int)c->w->id, c->id,
                  "internal: illegal connection state change %d -> %d", (int)c->state, (int)to);
        return false;
    }
    c->state = to;
    return true;
}

static _Atomic uint64_t next_conn_id;

static size_t conn_bucket(const struct conn_set *set, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (set->map_size - 1);
}

/* Adds c to the id map, growing it (load factor 1).  Returns 0 or -ENOMEM. */
static int conn_map_add(struct conn_set *set, struct wharf_conn *c)
{
    if (set->n + 1 > set->map_size) {
        size_t size = set->map_size ? set->map_size * 2 : 64;
        struct wharf_conn **map = calloc(size, sizeof *map);
        if (!map)
            return -ENOMEM;
        struct wharf_conn **old = set->map;
        size_t old_size = set->map_size;
        set->map = map;
        set->map_size = size;
        for (size_t i = 0; i < old_size; i++)
            for (struct wharf_conn *e = old[i], *next; e; e = next) {
                next = e->map_next;
                size_t b = conn_bucket(set, e->id);
                e->map_next = map[b];
                map[b] = e;
            }
        free(old);
    }
    size_t b = conn_bucket(set, c->id);
    c->map_next = set->map[b];
    set->map[b] = c;
    return 0;
}

static void conn_map_remove(struct conn_set *set, struct wharf_conn *c)
{
    if (!set->map_size)
        return;
    for (struct wharf_conn **p = &set->map[conn_bucket(set, c->id)]; *p; p = &(*p)->map_next)
        if (*p == c) {
            *p = c->map_next;
            return;
        }
}

struct wharf_conn *conn_find(struct wharf_worker *w, uint64_t id)
{
    struct conn_set *set = &w->conns;
    if (!set->map_size)
        return NULL;
    for (struct wharf_conn *c = set->map[conn_bucket(set, id)]; c; c = c->map_next)
        if (c->id == id && !conn_dead(c))
            return c;
    return NULL;
}

void conn_call_post(struct wharf_worker *w, struct wharf_conn *c,
                    void (*fn)(wharf_conn *c, void *arg), void *arg)
{
    if (!c) {
        CALLBACK_RUN("wharf_post_conn", NULL, (int)w->id, 0, fn(NULL, arg));
        return;
    }
    CONN_CALL(c, "wharf_post_conn", fn(c, arg));
    conn_io_settle(c);
}

void conn_call_timer(struct wharf_conn *c, wharf_timer *t, void (*fn)(wharf_timer *t, void *arg),
                     void *arg)
{
    if (conn_dead(c))
        return; /* its timers stop with its teardown, before on_close */
    CONN_CALL(c, "timer", fn(t, arg));
    conn_io_settle(c);
}

int conn_set_init(struct conn_set *s, struct loop *lp)
{
    *s = (struct conn_set){.readbuf_size = CONN_READ_BUFFER, .loop = lp};
    wharf_list_init(&s->all);
    wharf_list_init(&s->by_progress);
    s->readbuf = malloc(s->readbuf_size);
    if (!s->readbuf)
        return -ENOMEM;
    s->check.fn = conn_io_run_offers;
    loop_add_check(lp, &s->check);
    timer_init(&s->budget_timer, conn_budget_on_timer);
    return 0;
}

void conn_set_free(struct conn_set *s)
{
    if (s->loop)
        loop_remove_check(s->loop, &s->check);
    if (s->offers_busy)
        loop_set_busy(s->loop, -1);
    s->offers_busy = false;
    s->loop = NULL;
    free(s->map);
    s->map = NULL;
    s->map_size = 0;
    free(s->readbuf);
    s->readbuf = NULL;
    buf_free(&s->scratch);
}

void conn_handoff_drop(struct wharf_worker *w, const struct conn_handoff *h)
{
    close(h->fd);
    if (h->ticket >= 0)
        admission_release(w->admission, &h->peer.sa, w->id, h->ticket);
    generation_unref(h->l->gen);
}

/* Calls on_open (once): from here on, on_close is owed. */
void conn_opened(struct wharf_conn *c)
{
    if (!conn_move(c, CONN_OPEN))
        return;
    c->flags |= CONN_OPENED;
    /* on_open comes first: every later failure (even arming the timer)
     * reaches on_close after it. */
    if (c->l->handler->on_open)
        CONN_CALL(c, "on_open", c->l->handler->on_open(c));
}

/*
 * Makes a connection object for fd on worker w and registers it (watcher
 * with `events`, id map, list, counters).  Returns it, or NULL after
 * logging (the caller still owns fd, ticket and reference).
 */
static struct wharf_conn *conn_new(struct wharf_worker *w, const struct conn_handoff *h,
                                   uint32_t flags, uint32_t events)
{
    struct listener *l = h->l;
    struct wharf_conn *c = calloc(1, sizeof *c);
    if (!c) {
        log_write(WHARF_LOG_ERROR, l->cfg->name, (int)w->id, 0, "out of memory for a connection");
        return NULL;
    }
    c->watcher.fd = -1;
    c->flags = flags;
    c->id = atomic_fetch_add_explicit(&next_conn_id, 1, memory_order_relaxed) + 1;
    c->w = w;
    c->l = l;
    c->ticket = h->ticket;
    c->peer = h->peer;
    c->peer_len = h->peer_len;
    if (!(flags & CONN_OUTBOUND))
        c->accepted_ns = h->accepted_ns ? h->accepted_ns : histogram_now_ns();
    c->opened_ms = c->last_read_ms = c->last_write_ms = c->handshake_since_ms = w->loop.now_ms;
    const struct config_timeouts *to = &l->cfg->timeouts;
    c->timeout_ms[WHARF_TIMEOUT_IDLE] = (uint32_t)to->idle_ms;
    c->timeout_ms[WHARF_TIMEOUT_WRITE] = (uint32_t)to->write_ms;
    c->timeout_ms[WHARF_TIMEOUT_LIFETIME] = (uint32_t)to->lifetime_ms;
    c->timeout_ms[WHARF_TIMEOUT_HANDSHAKE] = (uint32_t)to->handshake_ms;
    c->timeout_ms[WHARF_TIMEOUT_READ_IDLE] = (uint32_t)to->read_idle_ms;
    c->timeout_ms[WHARF_TIMEOUT_WRITE_IDLE] = (uint32_t)to->write_idle_ms;
    c->timeout_firing = -1;
    timer_init(&c->timer, conn_deadline_fired);
    wharf_list_init(&c->timers);
    wharf_list_init(&c->progress_link);

    struct conn_set *set = &w->conns;
    int rc = loop_watch(&w->loop, &c->watcher, h->fd, events | conn_io_recv_bit(c), conn_on_io);
    if (rc < 0 || conn_map_add(set, c) < 0) {
        log_write(WHARF_LOG_ERROR, l->cfg->name, (int)w->id, c->id, "cannot register: %s",
                  strerror(rc < 0 ? -rc : ENOMEM));
        loop_unwatch(&w->loop, &c->watcher);
        free(c);
        return NULL;
    }
    wharf_list_insert_head(&set->all, &c->link);
    set->n++;
    /* Its generation's on_worker_start, if this worker did not serve it yet. */
    generation_worker_hold(l->gen, w);
    if (!(flags & CONN_OUTBOUND)) {
        wharf_counter_add(&conn_stats(c)->accepted, 1);
        conn_evict_track(c);
    }
    wharf_counter_add(&conn_stats(c)->open, 1);
    if (log_get_level() >= WHARF_LOG_DEBUG) {
        char addr[64];
        listener_format_addr(&c->peer.sa, addr, sizeof addr);
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)w->id, c->id, "%s %s",
                  (flags & CONN_OUTBOUND) ? "connecting to" : "open from", addr);
    }
    return c;
}

/* The connection is up: on_open, settle, and read what may already be there.
 * With proxy_protocol, the handler hears of it only once the header has
 * been read (so wharf_peer_addr is the client's from the start). */
static void conn_start(struct wharf_conn *c)
{
    /* TLS: the handler hears of it once the handshake is done.  (An
     * outbound one of wharf_connect_tls has its SSL object already.) */
    if ((c->ssl || (c->l->tls && !(c->flags & CONN_OUTBOUND))) && !conn_tls_start(c))
        return;
    if ((c->flags & (CONN_OUTBOUND | CONN_TLS_HANDSHAKE)) == (CONN_OUTBOUND | CONN_TLS_HANDSHAKE)) {
        conn_tls_handshake(c); /* the client speaks first: the ClientHello now */
        return;
    }
    if (c->l->cfg->proxy_protocol && !(c->flags & CONN_OUTBOUND)) {
        if (!conn_proxy_start(c))
            return;
    } else if (c->state == CONN_PENDING && !(c->flags & CONN_TLS_HANDSHAKE)) {
        conn_opened(c); /* (an outbound one closed while connecting never opens) */
    }
    if (conn_io_settle(c) < 0)
        return;
    /* The first bytes often arrive with the connection (or soon after the
     * hand-off): read now rather than after an epoll round trip. */
    if (conn_io_wants_input(c))
        conn_io_read(c);
}

void conn_open(struct wharf_worker *w, const struct conn_handoff *h)
{
    struct wharf_conn *c = conn_new(w, h, 0, LOOP_IN);
    if (!c) {
        conn_handoff_drop(w, h);
        return;
    }
    conn_start(c);
}

/* An outbound connect() finished (events on a CONN_CONNECTING socket). */
static void conn_connected(struct wharf_conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(c->watcher.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr) {
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)c->w->id, c->id, "connect: %s",
                  strerror(soerr));
        conn_close(c, WHARF_CLOSE_ERROR);
        return;
    }
    c->flags &= ~(uint32_t)CONN_CONNECTING;
    c->last_read_ms = c->last_write_ms = c->w->loop.now_ms;
    conn_start(c);
}

/* wharf_connect and wharf_connect_tls: with tls, the connection's SSL
 * object is made here, and its handshake starts once connected. */
static wharf_conn *conn_connect(wharf_conn *from, const struct sockaddr *addr, socklen_t addrlen,
                                const wharf_tls_client *tls, const char *server_name,
                                void *data, int *err)
{
    int dummy;
    err = err ? err : &dummy;
    if (!from || conn_dead(from) || !addr || addrlen > sizeof(union sockaddr_any) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
        addrlen < (addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                              : sizeof(struct sockaddr_in6))) {
        *err = -EINVAL;
        return NULL;
    }
    struct ssl_st *ssl = NULL;
    if (tls && !(ssl = tls_client_ssl(tls, server_name, addr))) {
        *err = -ENOMEM;
        return NULL;
    }
    struct wharf_worker *w = from->w;
    struct listener *l = from->l;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        SSL_free(ssl);
        return NULL;
    }
    if (l->cfg->tcp_nodelay) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(fd, addr, addrlen) < 0 && errno != EINPROGRESS) {
        *err = -errno;
        close(fd);
        SSL_free(ssl);
        return NULL;
    }
    struct conn_handoff h = {.l = l, .fd = fd, .ticket = -1, .peer_len = addrlen};
    memcpy(&h.peer, addr, addrlen);
    struct wharf_conn *c = conn_new(w, &h, CONN_OUTBOUND | CONN_CONNECTING, LOOP_OUT);
    if (!c) {
        *err = -ENOMEM;
        close(fd);
        SSL_free(ssl);
        return NULL;
    }
    generation_ref(l->gen);
    c->data = data;
    c->ssl = ssl; /* freed by the teardown from here on */
    conn_deadline_arm(c); /* a connect that never finishes times out like an idle one */
    *err = 0;
    return c;
}

wharf_conn *wharf_connect(wharf_conn *from, const struct sockaddr *addr, socklen_t addrlen,
                          void *data, int *err)
{
    return conn_connect(from, addr, addrlen, NULL, NULL, data, err);
}

wharf_conn *wharf_connect_tls(wharf_conn *from, const struct sockaddr *addr, socklen_t addrlen,
                              wharf_tls_client *tls, const char *server_name, void *data,
                              int *err)
{
    if (!tls || (server_name && (!*server_name || strlen(server_name) > 255))) {
        if (err)
            *err = -EINVAL;
        return NULL;
    }
    return conn_connect(from, addr, addrlen, tls, server_name, data, err);
}

/* Writes the line of the listener's access_log_file. */
static void conn_log_access(const struct wharf_conn *c, enum wharf_close_reason reason)
{
    union sockaddr_any local = c->local;
    socklen_t len = sizeof local;
    if (c->local_len == 0 && getsockname(c->watcher.fd, &local.sa, &len) < 0)
        local.sa.sa_family = AF_UNSPEC;
    struct access_entry e = {
        .remote = &c->peer.sa, .local = &local.sa, .listener = conn_name(c),
        .worker = (int)c->w->id, .conn_id = c->id,
        .duration_ms = c->w->loop.now_ms - c->opened_ms, .bytes_in = c->bytes_in,
        .bytes_out = c->bytes_out, .close_reason = wharf_close_reason_name(reason),
        .outbound = (c->flags & CONN_OUTBOUND) != 0,
    };
    struct wharf_tls_info ti;
    if (wharf_conn_tls_info(c, &ti) == 0) {
        e.tls_version = ti.version;
        e.tls_sni = ti.sni;
    }
    access_log_write(c->l->access, &e);
}

/* Writes the connection log line (at the listener's access_log level), and
 * the access_log_file's. */
static void conn_log_close(const struct wharf_conn *c, enum wharf_close_reason reason)
{
    struct wharf_worker *w = c->w;
    if (c->l->access)
        conn_log_access(c, reason);
    int level = c->l->cfg->access_log;
    if (level >= 0 && level <= (int)log_get_level()) {
        char addr[64], tls[300] = "";
        listener_format_addr(&c->peer.sa, addr, sizeof addr);
        struct wharf_tls_info ti;
        if (wharf_conn_tls_info(c, &ti) == 0)
            snprintf(tls, sizeof tls, " (%s%s%.255s)", ti.version, ti.sni ? ", sni " : "",
                     ti.sni ? ti.sni : "");
        log_write((enum wharf_log_level)level, conn_name(c), (int)w->id, c->id,
                  "%s %s%s: %llu ms, %llu bytes in, %llu bytes out, closed (%s)",
                  (c->flags & CONN_OUTBOUND) ? "to" : "from", addr, tls,
                  (unsigned long long)(w->loop.now_ms - c->opened_ms),
                  (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
                  wharf_close_reason_name(reason));
    } else {
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)w->id, c->id, "closed (%s)",
                  wharf_close_reason_name(reason));
    }
}

/*
 * The one teardown, run by the loop's closing phase at the end of the turn
 * in which c was closed: on_close (once, if on_open ran or c is outbound),
 * its timers, the log line and counters, the socket, the lists, admission,
 * then c itself and its generation reference (which may run fini and unload
 * the module: nothing of it is on the stack here).
 */
static void conn_teardown(struct loop_closing *closing)
{
    struct wharf_conn *c = (struct wharf_conn *)((char *)closing - offsetof(struct wharf_conn, closing));
    struct wharf_worker *w = c->w;
    struct conn_set *set = &w->conns;
    enum wharf_close_reason reason = c->close_reason;

    if (c->refs.head) {
        /* Referenced output never written: released before on_close, so
         * on_close stays the connection's last call into the handler (and
         * its module is loaded: c holds its generation until below). */
        size_t held = c->refs.bytes;
        CALLBACK_RUN("release", c->l, (int)w->id, c->id, refq_drop(&c->refs));
        wharf_counter_add(&conn_stats(c)->output_buffered, -(uint64_t)held);
        admission_output_add(w->admission, -(ptrdiff_t)held);
    }
    if (c->l->handler->on_close && (c->flags & (CONN_OPENED | CONN_OUTBOUND)))
        CONN_CALL(c, "on_close", c->l->handler->on_close(c, reason));
    htimer_stop_all(&c->timers); /* none of its timers fires after on_close */
    if (set->scratch_conn == c) {
        buf_consume(&set->scratch, set->scratch.len);
        set->scratch_conn = NULL;
    }
    conn_io_unschedule_offer(c); /* on_close may have asked for one */
    conn_log_close(c, reason);
    /* Counted before the socket closes, so a peer that sees the close also
     * sees it counted. */
    struct listener_counters *st = conn_stats(c);
    wharf_counter_add(&st->closed[reason], 1);
    wharf_counter_add(&st->open, (uint64_t)-1);
    if (c->accepted_ns)
        histogram_observe(&st->hist[HISTOGRAM_CONN_DURATION], HISTOGRAM_CONN_DURATION,
                          histogram_now_ns() - c->accepted_ns);
    wharf_counter_add(&st->output_buffered, -(uint64_t)c->out.cap);
    admission_output_add(w->admission, -(ptrdiff_t)c->out.cap);
    if (c->ssl) {
        /* close_notify, unless the connection failed; then the SSL object
         * goes, here only. */
        if (reason != WHARF_CLOSE_ERROR)
            conn_tls_shutdown(c);
        conn_tls_free(c);
    }
    struct conn_handoff h = {.l = c->l, .fd = c->watcher.fd, .ticket = c->ticket,
                             .peer_len = c->peer_len, .peer = c->peer};
    loop_unwatch(&w->loop, &c->watcher);
    loop_timer_disarm(&w->loop, &c->timer); /* conn_close did, and nothing re-arms a dead one */

    wharf_list_remove(&c->link);
    set->n--;
    conn_map_remove(set, c);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
    generation_worker_release(h.l->gen, w); /* on_worker_stop after its last connection */
    conn_handoff_drop(w, &h);
}

void conn_close(struct wharf_conn *c, enum wharf_close_reason reason)
{
    if (conn_dead(c) || !conn_move(c, CONN_DEAD))
        return;
    c->close_reason = (unsigned)reason < LISTENER_CLOSE_REASONS ? reason : WHARF_CLOSE_ERROR;
    loop_timer_disarm(&c->w->loop, &c->timer);
    conn_io_unschedule_offer(c);
    conn_evict_untrack(c);
    /* Its socket stays registered until the teardown; conn_on_io ignores a
     * dead connection's events meanwhile. */
    loop_close(&c->w->loop, &c->closing, conn_teardown);
}

void conn_hold(struct wharf_conn *c, bool on)
{
    if (conn_dead(c) || on == ((c->flags & CONN_HELD) != 0))
        return;
    if (on) {
        c->flags |= CONN_HELD;
    } else {
        c->flags &= ~(uint32_t)CONN_HELD;
        if (c->in.len > 0 || (c->flags & CONN_PEER_EOF))
            conn_io_schedule_offer(c); /* kept input comes back; settles the mask too */
    }
    if (c->w->conns.current != c)
        conn_io_update_events(c);
}

size_t conn_shutdown(struct wharf_worker *w, bool all)
{
    size_t n = 0;
    struct wharf_list *it;
    if (!all) {
        /* The notice first: a handler may say goodbye or close. */
        wharf_list_foreach(it, &w->conns.all) {
            struct wharf_conn *c = wharf_list_entry(it, struct wharf_conn, link);
            if (c->l->handler->on_shutdown && c->state == CONN_OPEN &&
                !(c->flags & CONN_SHUTDOWN_TOLD)) {
                CONN_CALL(c, "on_shutdown", c->l->handler->on_shutdown(c));
                c->flags |= CONN_SHUTDOWN_TOLD;
            }
        }
    }
    if (all)
        loop_timer_disarm(&w->loop, &w->conns.budget_timer);
    /* A connection settles (and an idle one closes) after its notice.  The
     * list stays as it is until the closing phase. */
    wharf_list_foreach(it, &w->conns.all) {
        struct wharf_conn *c = wharf_list_entry(it, struct wharf_conn, link);
        if (conn_dead(c))
            continue;
        if (all)
            conn_close(c, WHARF_CLOSE_SHUTDOWN);
        else
            conn_io_settle(c);
        n += conn_dead(c);
    }
    return n;
}

static void conn_on_io(struct loop_watcher *watcher, uint32_t events)
{
    struct wharf_conn *c = (struct wharf_conn *)watcher;
    if (conn_dead(c))
        return;
    if (events == LOOP_ERR && loop_watcher_error(watcher)) {
        /* The kernel refused an interest change (loop.h). */
        log_write(WHARF_LOG_WARN, conn_name(c), (int)c->w->id, c->id, "epoll_ctl: %s",
                  strerror(-loop_watcher_error(watcher)));
        conn_close(c, WHARF_CLOSE_ERROR);
        return;
    }
    if (c->flags & CONN_CONNECTING) {
        conn_connected(c);
        return;
    }
    if ((c->flags & (CONN_TLS_HANDSHAKE | CONN_PROXY_WAIT)) == CONN_TLS_HANDSHAKE) {
        conn_tls_handshake(c); /* whichever event it waited for */
        return;
    }
    if (c->ssl && c->tls_want && (events & (LOOP_IN | LOOP_OUT))) {
        /* The TLS layer waited for the other direction: both go on. */
        c->tls_want = 0;
        if (conn_io_settle(c) < 0)
            return;
        if (conn_io_wants_input(c))
            conn_io_read(c);
        return;
    }
    if ((events & LOOP_OUT) && conn_io_settle(c) < 0)
        return;
    if (conn_io_wants_input(c) && (events & (LOOP_IN | LOOP_HUP | LOOP_ERR))) {
        conn_io_read(c);
        return;
    }
    if (events & (LOOP_HUP | LOOP_ERR)) {
        /* Not reading (paused or closing), yet the socket is gone. */
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(c->watcher.fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        conn_close(c, soerr || conn_out_len(c) ? WHARF_CLOSE_ERROR : WHARF_CLOSE_EOF);
    }
}

bool conn_held(const wharf_conn *c)
{
    return c->flags & CONN_HELD;
}
