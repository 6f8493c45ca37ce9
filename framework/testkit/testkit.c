/*
 * testkit.c - the handler author's test kit (wharf_test.h).
 *
 * A wharf_test is a generation of one listener for the handler under test,
 * an admission object and one worker with no thread: the kit runs the
 * worker's loop on the caller's thread, never sleeping (the loop is kept
 * "busy"), until a turn finds nothing to do.  Each client is a socketpair;
 * the framework's end goes through conn_open like an accepted socket, so
 * the handler meets the real connection code.  The loop's clock is the
 * test's own: it stands still until wharf_test_advance moves it.
 *
 * The handler is registered wrapped: on_open and on_close go through the
 * kit first, to tie each framework connection to its test client and to
 * record why it closed.  The kit is found from the connection's worker,
 * which it embeds, so any number of kits (with the same handler or
 * different ones) live side by side without a global.  A kit whose listener
 * is UDP has datagrams instead of clients: testkit_udp.c.
 */
#include "wharf_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admission.h"
#include "config.h"
#include "conn.h"
#include "generation.h"
#include "mailbox.h"
#include "module.h"
#include "testkit.h"
#include "timer.h"
#include "worker.h"
#include "workpool.h"

/* Turns without anything happening before the kit calls it quiet. */
#define KIT_QUIET_TURNS 2
/* Most turns one pump runs (a handler that keeps itself busy forever). */
#define KIT_MAX_TURNS 10000

struct wharf_test_conn {
    struct wharf_test *t;
    int fd;                  /* the client's end, or -1 once closed */
    struct wharf_conn *c;    /* NULL once closed, or until it opened */
    uint64_t waiting_id;     /* not opened yet (TLS handshake, PROXY header): its id */
    bool closed, paused;
    enum wharf_close_reason reason;
    char *out;               /* received, not taken yet (NUL-terminated) */
    size_t out_len, out_cap;
    struct wharf_test_conn *next;
};

/* The kit that owns c: each kit embeds the one worker its connections
 * belong to. */
static struct wharf_test *kit_of(const wharf_conn *c)
{
    return (struct wharf_test *)((char *)wharf_conn_worker(c) - offsetof(struct wharf_test, w));
}

static void kit_on_open(wharf_conn *c)
{
    struct wharf_test *t = kit_of(c);
    if (t->opening) {
        t->opening->c = c;
        t->opening = NULL;
    } else { /* one that waited for a TLS handshake or a PROXY header */
        for (struct wharf_test_conn *tc = t->conns; tc; tc = tc->next)
            if (tc->waiting_id == c->id) {
                tc->c = c;
                tc->waiting_id = 0;
            }
    }
    if (t->h->on_open)
        t->h->on_open(c);
}

static void kit_on_close(wharf_conn *c, enum wharf_close_reason reason)
{
    struct wharf_test *t = kit_of(c);
    for (struct wharf_test_conn *tc = t->conns; tc; tc = tc->next)
        if (tc->c == c) {
            tc->c = NULL;
            tc->closed = true;
            tc->reason = reason;
        }
    if (t->h->on_close)
        t->h->on_close(c, reason);
}

/* Reads what the handler sent to tc (unless the test paused reading).
 * Returns whether anything came. */
static bool kit_collect(struct wharf_test_conn *tc)
{
    bool got = false;
    while (tc->fd >= 0 && !tc->paused) {
        if (tc->out_cap - tc->out_len < 65537) {
            size_t cap = tc->out_cap ? tc->out_cap * 2 : 131072;
            char *p = realloc(tc->out, cap);
            if (!p)
                break;
            tc->out = p;
            tc->out_cap = cap;
        }
        ssize_t n = recv(tc->fd, tc->out + tc->out_len, tc->out_cap - tc->out_len - 1,
                         MSG_DONTWAIT);
        if (n <= 0)
            break;
        tc->out_len += (size_t)n;
        got = true;
    }
    if (tc->out)
        tc->out[tc->out_len] = '\0';
    return got;
}

/* A connection that was waiting to open (TLS handshake, PROXY header) and
 * is gone: the handler never heard of it, so no on_close told the kit why;
 * it reads as closed with WHARF_CLOSE_ERROR. */
static void kit_check_waiting(struct wharf_test *t, struct wharf_test_conn *tc)
{
    if (tc->waiting_id && !conn_find(&t->w, tc->waiting_id)) {
        tc->waiting_id = 0;
        tc->closed = true;
        tc->reason = WHARF_CLOSE_ERROR;
    }
}

void testkit_pump(struct wharf_test *t)
{
    testkit_udp_deliver(t);
    int quiet = 0;
    for (int i = 0; i < KIT_MAX_TURNS && quiet < KIT_QUIET_TURNS; i++) {
        int n = worker_run_turn(&t->w);
        bool moved = false;
        for (struct wharf_test_conn *tc = t->conns; tc; tc = tc->next) {
            moved |= kit_collect(tc);
            kit_check_waiting(t, tc);
        }
        bool pending = n > 0 || moved || t->w.conns.offers || mailbox_len(t->w.loop.mailbox);
        quiet = pending ? 0 : quiet + 1;
    }
}

static void kit_free_conns(struct wharf_test *t)
{
    while (t->conns) {
        struct wharf_test_conn *tc = t->conns;
        t->conns = tc->next;
        if (tc->fd >= 0)
            close(tc->fd);
        free(tc->out);
        free(tc);
    }
}

/* Whether h is a handler this wharf can run (else the reason in err). */
static bool kit_handler_ok(const struct wharf_handler *h, char *err, size_t errlen)
{
    if (!h || !h->name) {
        snprintf(err, errlen, "no handler");
        return false;
    }
    if (!module_abi_supported(h->abi_version)) {
        snprintf(err, errlen, "handler \"%s\": ABI version %u, this wharf needs %u (or 1 to %u)",
                 h->name, (unsigned)h->abi_version, (unsigned)WHARF_ABI_VERSION,
                 (unsigned)WHARF_ABI_VERSION - 1);
        return false;
    }
    return true;
}

wharf_test *wharf_test_new(const struct wharf_handler *h, const char *listener_json, char *err,
                           size_t errlen)
{
    if (!kit_handler_ok(h, err, errlen))
        return NULL;
    struct wharf_test *t = calloc(1, sizeof *t);
    size_t jlen = 256 + strlen(h->name) + (listener_json ? strlen(listener_json) : 0);
    char *json = malloc(jlen);
    if (!t || !json) {
        free(t);
        free(json);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->h = h;
    /* Only what h's ABI version has; the newer callbacks stay NULL. */
    memcpy(&t->wrapped, h, module_abi_size(h->abi_version));
    t->wrapped.abi_version = WHARF_ABI_VERSION;
    t->wrapped.on_open = kit_on_open;
    t->wrapped.on_close = kit_on_close;
    snprintf(json, jlen,
             "{\"workers\": 1, \"listeners\": [{\"name\": \"test\", \"port\": 0, "
             "\"handler\": \"%s\"%s%s}]}",
             h->name, listener_json && *listener_json ? ", " : "",
             listener_json ? listener_json : "");
    struct config *cfg = NULL;
    int rc = config_load_string(json, "wharf_test", &cfg, err, errlen);
    free(json);
    if (rc < 0) {
        free(t);
        return NULL;
    }
    int work_threads = cfg->work_threads, max = cfg->max_connections;
    const struct wharf_handler *builtins[1] = {&t->wrapped};
    if (generation_new(cfg, 1, 1, builtins, 1, NULL, &t->gen, err, errlen) < 0) {
        free(t);
        return NULL;
    }
    struct listener *l = &t->gen->listeners[0];
    l->stats = listener_stats_new(1);
    t->admission = admission_new(1, (size_t)max, 0);
    t->pool = workpool_new((unsigned)work_threads, 4096);
    if (!l->stats || !t->admission || !t->pool ||
        worker_init(&t->w, 0, &t->w, 1, 1024, t->admission, t->pool, err, errlen) < 0) {
        if (!err[0])
            snprintf(err, errlen, "out of memory");
        workpool_free(t->pool);
        admission_free(t->admission);
        generation_unref(t->gen);
        free(t);
        return NULL;
    }
    t->worker_ready = true;
    if (l->cfg->protocol == CONFIG_UDP && testkit_udp_new(t, err, errlen) < 0) {
        worker_destroy(&t->w);
        testkit_udp_free(t);
        workpool_free(t->pool);
        admission_free(t->admission);
        generation_unref(t->gen);
        free(t);
        return NULL;
    }
    loop_set_busy(&t->w.loop, 1); /* the kit's turns never sleep */
    t->w.loop.manual_clock = true; /* and time is the test's */
    /* The kit's worker serves the generation from now on, as a started
     * worker does: on_worker_start. */
    struct wharf_worker *was = worker_enter(&t->w);
    generation_worker_hold(t->gen, &t->w);
    worker_leave(was);
    return t;
}

void wharf_test_free(wharf_test *t)
{
    if (!t)
        return;
    testkit_udp_stop(t);
    struct wharf_worker *was = worker_enter(&t->w);
    t->w.phase = WORKER_DRAINING;
    conn_shutdown(&t->w, false);
    worker_leave(was);
    testkit_pump(t);
    was = worker_enter(&t->w);
    t->w.phase = WORKER_CLOSING;
    conn_shutdown(&t->w, true);
    /* The connections go (their teardown, as at the end of a worker's
     * turn), then on_worker_stop, while the handlers' worker timers still
     * exist to be stopped; then the timers. */
    loop_run_closing(&t->w.loop);
    loop_run_deferred(&t->w.loop);
    generation_worker_release(t->gen, &t->w);
    htimer_stop_all(&t->w.timers);
    worker_leave(was);
    workpool_free(t->pool); /* finished work posts its done; the rest is cancelled */
    testkit_pump(t);
    loop_set_busy(&t->w.loop, -1);
    worker_destroy(&t->w);
    testkit_udp_free(t);
    kit_free_conns(t);
    generation_unref(t->gen); /* fini */
    admission_free(t->admission);
    free(t);
}

wharf_test_conn *wharf_test_connect(wharf_test *t)
{
    int sv[2];
    if (t->udp) /* a UDP listener has no connections */
        return NULL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return NULL;
    struct wharf_test_conn *tc = calloc(1, sizeof *tc);
    if (!tc) {
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }
    tc->t = t;
    tc->fd = sv[1];
    tc->next = t->conns;
    t->conns = tc;
    /* A made-up peer: 127.0.0.1, one port per client. */
    union sockaddr_any peer = {0};
    peer.in.sin_family = AF_INET;
    peer.in.sin_addr.s_addr = htonl(0x7f000001);
    peer.in.sin_port = htons((uint16_t)(40000 + t->nconns++ % 20000));
    struct listener *l = &t->gen->listeners[0];
    int ticket = admission_acquire(t->admission, &peer.sa, 0);
    if (ticket < 0) {
        close(sv[0]);
        tc->closed = true;
        tc->reason = WHARF_CLOSE_LIMIT;
        return tc;
    }
    generation_ref(t->gen); /* the connection's */
    t->opening = tc;
    struct wharf_worker *was = worker_enter(&t->w);
    struct conn_handoff h = {.l = l, .fd = sv[0], .ticket = ticket, .peer_len = sizeof peer.in,
                             .peer = peer};
    conn_open(&t->w, &h);
    worker_leave(was);
    if (t->opening == tc) { /* waiting to open, opened and closed at once, or never opened */
        t->opening = NULL;
        /* The newest connection, if it is this one and alive, waits for
         * its TLS handshake or PROXY header: kit_on_open finds it by id. */
        struct wharf_list *first = t->w.conns.all.next;
        struct wharf_conn *c = first != &t->w.conns.all
                                   ? (struct wharf_conn *)((char *)first -
                                                           offsetof(struct wharf_conn, link))
                                   : NULL;
        if (c && c->watcher.fd == sv[0] && c->state == CONN_PENDING &&
            (c->flags & (CONN_TLS_HANDSHAKE | CONN_PROXY_WAIT)))
            tc->waiting_id = c->id;
        else if (!tc->closed) {
            tc->closed = true;
            tc->reason = WHARF_CLOSE_ERROR;
        }
    }
    testkit_pump(t);
    return tc;
}

/* Puts len bytes into the client's socket, letting the handler read only
 * when the socket is full.  Returns 0, -EPIPE once closed, or -errno. */
static int kit_write(struct wharf_test_conn *tc, const void *data, size_t len)
{
    if (tc->fd < 0 || tc->closed)
        return -EPIPE;
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(tc->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN) {
            testkit_pump(tc->t); /* let the handler read */
            if (tc->closed)
                return -EPIPE;
            continue;
        }
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int wharf_test_send(wharf_test_conn *tc, const void *data, size_t len)
{
    int rc = kit_write(tc, data, len);
    testkit_pump(tc->t);
    return rc;
}

int wharf_test_send_eof(wharf_test_conn *tc, const void *data, size_t len)
{
    int rc = kit_write(tc, data, len);
    if (rc == 0 && shutdown(tc->fd, SHUT_WR) < 0)
        rc = -errno;
    testkit_pump(tc->t);
    return rc;
}

void wharf_test_shutdown(wharf_test_conn *tc)
{
    if (tc->fd >= 0)
        shutdown(tc->fd, SHUT_WR);
    testkit_pump(tc->t);
}

void wharf_test_close(wharf_test_conn *tc)
{
    if (tc->fd >= 0) {
        kit_collect(tc);
        close(tc->fd);
        tc->fd = -1;
    }
    testkit_pump(tc->t);
}

void wharf_test_pause_reading(wharf_test_conn *tc, bool paused)
{
    tc->paused = paused;
    testkit_pump(tc->t);
}

const char *wharf_test_output(wharf_test_conn *tc, size_t *len)
{
    kit_collect(tc);
    static const char empty[1] = "";
    const char *p = tc->out ? tc->out : empty;
    if (len)
        *len = tc->out_len;
    /* Taken: the next call starts empty, but this buffer stays valid
     * until then. */
    tc->out_len = 0;
    return p;
}

size_t wharf_test_refs_pending(const wharf_test_conn *tc)
{
    size_t n = 0;
    for (const struct refq_chunk *k = tc->c ? tc->c->refs.head : NULL; k; k = k->next)
        n++;
    return n;
}

bool wharf_test_closed(const wharf_test_conn *tc, enum wharf_close_reason *reason)
{
    if (tc->closed && reason)
        *reason = tc->reason;
    return tc->closed;
}

wharf_conn *wharf_test_handle(const wharf_test_conn *tc)
{
    return tc->c;
}

void wharf_test_advance(wharf_test *t, uint64_t ms)
{
    t->w.loop.now_ms += ms;
    testkit_pump(t);
}

bool wharf_test_run(wharf_test *t, uint64_t timeout_ms)
{
    uint64_t end = timer_now_ms() + timeout_ms;
    testkit_pump(t);
    while (atomic_load(&t->w.work_pending) > 0) {
        if (timer_now_ms() >= end)
            return false;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
        testkit_pump(t);
    }
    return true;
}

wharf_server *wharf_test_serve(const struct wharf_handler *h, unsigned workers,
                               const char *listener_json, int *port, char *err,
                               size_t errlen)
{
    if (!kit_handler_ok(h, err, errlen))
        return NULL;
    size_t jlen = 256 + strlen(h->name) + (listener_json ? strlen(listener_json) : 0);
    char *json = malloc(jlen);
    if (!json) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(json, jlen,
             "{\"workers\": %u, \"listeners\": [{\"name\": \"test\", \"address\": \"127.0.0.1\", "
             "\"port\": 0, \"handler\": \"%s\"%s%s}]}",
             workers ? workers : 1, h->name, listener_json && *listener_json ? ", " : "",
             listener_json ? listener_json : "");
    wharf_config *cfg = NULL;
    wharf_server *srv = NULL;
    wharf_error e;
    if (wharf_config_load_json(json, "wharf_test_serve", &cfg, &e) < 0) {
        snprintf(err, errlen, "%s", e.text);
    } else if (!(srv = wharf_server_new())) {
        snprintf(err, errlen, "out of memory");
    } else {
        int rc = wharf_server_add_handler(srv, h);
        if (rc < 0) {
            snprintf(err, errlen, "handler \"%s\": %s", h->name, strerror(-rc));
            wharf_server_free(srv);
            srv = NULL;
        } else if (wharf_server_start(srv, cfg, err, errlen) < 0) {
            wharf_server_free(srv);
            srv = NULL;
        }
    }
    free(json);
    wharf_config_free(cfg);
    if (srv && port)
        *port = wharf_server_port(srv, "test");
    return srv;
}
