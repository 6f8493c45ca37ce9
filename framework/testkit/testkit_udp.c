/*
 * testkit_udp.c - the test kit's datagrams (wharf_test.h, "UDP"): a kit
 * whose listener is UDP has no socket at all.  Its worker has a datagram
 * sink (udp.h) in place of the network: what the handler sends (wharf_reply,
 * a kept or listener handle, an outbound wharf_udp_open socket) is recorded
 * here once the framework's own checks passed it (size, send guard,
 * rate_limit), and what the test sends goes in through udp_inject and
 * udp_handle_inject, the path recvmmsg and recvfrom feed, guards included.
 *
 * Addresses are made up: the listener is at its "address" (when an IP
 * literal; else 127.0.0.1), port WHARF_TEST_UDP_PORT; outbound socket n
 * (numbered from 1 in the order they open) is at the loopback address of
 * its family, port 50000 + n - 1.  Datagrams the test queues wait in an
 * inbox until the next pump, which hands them in as one read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "generation.h"
#include "listener.h"
#include "testkit.h"
#include "udp.h"

/* The most bytes of sent datagrams the kit holds untaken: past it a send
 * fails with -ENOBUFS, as on a socket whose buffer is full. */
#define KIT_UDP_OUT_MAX (64u * 1024 * 1024)
#define KIT_UDP_MAX_DATAGRAM 65507  /* IPv4 */
#define KIT_UDP_MAX_DATAGRAM6 65527 /* IPv6, no jumbograms */
#define KIT_UDP_FIRST_LOCAL_PORT 50000

/* A datagram the test sent to the listener, waiting for the next pump. */
struct kit_in {
    struct kit_in *next;
    union sockaddr_any from;
    socklen_t fromlen;
    size_t len;
    char data[];
};

/* A datagram the handler sent, not taken yet. */
struct kit_out {
    struct kit_out *next;
    struct wharf_test_dgram d;
    union sockaddr_any to;
    char to_text[64];
    char data[]; /* len bytes, then a NUL */
};

/* An outbound socket the handler opened (kept after it closes, so its
 * number stays its own). */
struct kit_sock {
    struct wharf_udp *u; /* NULL once closed */
    union sockaddr_any peer, local;
    socklen_t peer_len, local_len;
    bool connected;
    char peer_text[64];
};

struct testkit_udp {
    struct udp_sink sink; /* must be first: the worker's */
    struct wharf_test *t;
    struct listener *l;
    bool stopped;
    union sockaddr_any local; /* the listener's made-up address */
    socklen_t local_len;
    struct kit_in *in, **in_tail;
    size_t nin;
    struct kit_out *out, **out_tail, *taken;
    size_t nout, out_bytes;
    struct kit_sock *socks;
    unsigned nsocks, socks_cap;
};

static struct testkit_udp *kit_udp_of(struct udp_sink *sink)
{
    return (struct testkit_udp *)sink;
}

/* The number of outbound socket u (from 1), or 0 when it is not one. */
static unsigned kit_udp_sock_number(const struct testkit_udp *k, const struct wharf_udp *u)
{
    for (unsigned i = 0; u && i < k->nsocks; i++)
        if (k->socks[i].u == u)
            return i + 1;
    return 0;
}

/* The loopback address of `family`, port `port`. */
static socklen_t kit_udp_loopback(int family, unsigned port, union sockaddr_any *a)
{
    memset(a, 0, sizeof *a);
    if (family == AF_INET6) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_addr = in6addr_loopback;
        a->in6.sin6_port = htons((uint16_t)port);
        return sizeof a->in6;
    }
    a->in.sin_family = AF_INET;
    a->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->in.sin_port = htons((uint16_t)port);
    return sizeof a->in;
}

/* ---- the sink: the worker's network --------------------------------------- */

static int kit_udp_open(struct udp_sink *sink, struct wharf_udp *u, const struct sockaddr *to,
                        socklen_t tolen, bool connected)
{
    struct testkit_udp *k = kit_udp_of(sink);
    if (k->nsocks == k->socks_cap) {
        unsigned cap = k->socks_cap ? k->socks_cap * 2 : 8;
        struct kit_sock *p = realloc(k->socks, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        k->socks = p;
        k->socks_cap = cap;
    }
    struct kit_sock *s = &k->socks[k->nsocks];
    memset(s, 0, sizeof *s);
    s->u = u;
    s->connected = connected;
    memcpy(&s->peer, to, tolen);
    s->peer_len = tolen;
    listener_format_addr(to, s->peer_text, sizeof s->peer_text);
    s->local_len = kit_udp_loopback(to->sa_family,
                                    KIT_UDP_FIRST_LOCAL_PORT + k->nsocks % (65536 - 50000),
                                    &s->local);
    k->nsocks++;
    return 0;
}

static void kit_udp_close(struct udp_sink *sink, struct wharf_udp *u)
{
    struct testkit_udp *k = kit_udp_of(sink);
    unsigned n = kit_udp_sock_number(k, u);
    if (n)
        k->socks[n - 1].u = NULL;
}

static int kit_udp_send(struct udp_sink *sink, const struct listener *l, struct wharf_udp *out,
                        const struct sockaddr *to, socklen_t tolen, const void *data, size_t len)
{
    (void)l;
    struct testkit_udp *k = kit_udp_of(sink);
    if (k->out_bytes + len > KIT_UDP_OUT_MAX)
        return -ENOBUFS;
    if (tolen > sizeof(union sockaddr_any))
        return -EINVAL;
    struct kit_out *o = malloc(sizeof *o + len + 1);
    if (!o)
        return -ENOMEM;
    o->next = NULL;
    memset(&o->to, 0, sizeof o->to);
    memcpy(&o->to, to, tolen);
    listener_format_addr(to, o->to_text, sizeof o->to_text);
    if (len)
        memcpy(o->data, data, len);
    o->data[len] = '\0';
    o->d = (struct wharf_test_dgram){.socket = kit_udp_sock_number(k, out), .to = o->to_text,
                                     .to_addr = &o->to.sa, .to_len = tolen, .data = o->data,
                                     .len = len};
    *k->out_tail = o;
    k->out_tail = &o->next;
    k->nout++;
    k->out_bytes += len;
    return 0;
}

static int kit_udp_local_addr(struct udp_sink *sink, const struct listener *l,
                              const struct wharf_udp *out, struct sockaddr *addr, socklen_t *len)
{
    (void)l;
    struct testkit_udp *k = kit_udp_of(sink);
    unsigned n = kit_udp_sock_number(k, out);
    const union sockaddr_any *a = n ? &k->socks[n - 1].local : &k->local;
    socklen_t alen = n ? k->socks[n - 1].local_len : k->local_len;
    /* As getsockname(2): truncated to *len, *len set to the whole size. */
    memcpy(addr, a, *len < alen ? *len : alen);
    *len = alen;
    return 0;
}

/* ---- set-up and teardown ------------------------------------------------------- */

int testkit_udp_new(struct wharf_test *t, char *err, size_t errlen)
{
    struct listener *l = &t->gen->listeners[0];
    struct testkit_udp *k = calloc(1, sizeof *k);
    int *fds = malloc(sizeof *fds);
    if (!k || !fds) {
        free(k);
        free(fds);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    k->sink = (struct udp_sink){.open = kit_udp_open, .close = kit_udp_close,
                                .send = kit_udp_send, .local_addr = kit_udp_local_addr};
    k->t = t;
    k->l = l;
    k->in_tail = &k->in;
    k->out_tail = &k->out;
    t->udp = k;
    /* Its address: the configured one when it is an IP literal. */
    k->local_len = kit_udp_loopback(AF_INET, WHARF_TEST_UDP_PORT, &k->local);
    if (inet_pton(AF_INET6, l->cfg->address, &k->local.in6.sin6_addr) == 1) {
        k->local.in6.sin6_family = AF_INET6;
        k->local.in6.sin6_port = htons(WHARF_TEST_UDP_PORT);
        k->local_len = sizeof k->local.in6;
    } else {
        (void)inet_pton(AF_INET, l->cfg->address, &k->local.in.sin_addr);
    }
    /* One address, one "socket" that is none: the worker makes its UDP set
     * for it without watching anything, and its port is the loop guard's. */
    fds[0] = -1;
    l->fds = fds;
    l->nfds = 1;
    l->naddrs = 1;
    l->nworkers = 1;
    l->port = WHARF_TEST_UDP_PORT;
    t->w.udp_sink = &k->sink;
    int rc = udp_set_new(&t->w, t->gen, &t->w.udp, err, errlen);
    return rc < 0 ? rc : 0;
}

void testkit_udp_stop(struct wharf_test *t)
{
    if (!t->udp)
        return;
    t->udp->stopped = true;
    struct wharf_worker *was = worker_enter(&t->w);
    udp_set_free(&t->w, t->w.udp);
    t->w.udp = NULL;
    worker_leave(was);
}

static void kit_udp_free_in(struct testkit_udp *k)
{
    while (k->in) {
        struct kit_in *i = k->in;
        k->in = i->next;
        free(i);
    }
    k->in_tail = &k->in;
    k->nin = 0;
}

void testkit_udp_free(struct wharf_test *t)
{
    struct testkit_udp *k = t->udp;
    if (!k)
        return;
    kit_udp_free_in(k);
    while (k->out) {
        struct kit_out *o = k->out;
        k->out = o->next;
        free(o);
    }
    free(k->taken);
    free(k->socks);
    free(k);
    t->udp = NULL;
    t->w.udp_sink = NULL;
}

void testkit_udp_deliver(struct wharf_test *t)
{
    struct testkit_udp *k = t->udp;
    if (!k || !k->in)
        return;
    struct udp_datagram *d = k->stopped ? NULL : calloc(k->nin, sizeof *d);
    size_t n = 0;
    for (struct kit_in *i = d ? k->in : NULL; i; i = i->next)
        d[n++] = (struct udp_datagram){&i->from.sa, i->fromlen, i->data, i->len};
    if (n) {
        struct wharf_worker *was = worker_enter(&t->w);
        (void)udp_inject(&t->w, k->l, d, n);
        worker_leave(was);
    }
    free(d);
    kit_udp_free_in(k);
}

/* ---- addresses ----------------------------------------------------------------- */

/* "1.2.3.4:53" or "[::1]:53" into *a.  Returns 0 or -EINVAL. */
static int kit_udp_parse(const char *text, union sockaddr_any *a, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon || (size_t)(colon - text) >= sizeof host || colon == text)
        return -EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || port > 65535)
        return -EINVAL;
    memset(a, 0, sizeof *a);
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &a->in6.sin6_addr) != 1)
            return -EINVAL;
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons((uint16_t)port);
        *len = sizeof a->in6;
        return 0;
    }
    if (inet_pton(AF_INET, host, &a->in.sin_addr) != 1)
        return -EINVAL;
    a->in.sin_family = AF_INET;
    a->in.sin_port = htons((uint16_t)port);
    *len = sizeof a->in;
    return 0;
}

/* Copies from into *a as a socket of `family` receives it: an IPv4 source
 * on an IPv6 socket in its IPv4-mapped form.  Returns 0, -EINVAL (not an
 * IPv4 or IPv6 address of its length) or -EAFNOSUPPORT (IPv6 on IPv4). */
static int kit_udp_source(const struct sockaddr *from, socklen_t fromlen, int family,
                          union sockaddr_any *a, socklen_t *len)
{
    if (!from)
        return -EINVAL;
    memset(a, 0, sizeof *a);
    if (from->sa_family == AF_INET && fromlen >= (socklen_t)sizeof a->in) {
        memcpy(&a->in, from, sizeof a->in);
        *len = sizeof a->in;
        if (family == AF_INET6) {
            struct sockaddr_in in = a->in;
            memset(a, 0, sizeof *a);
            a->in6.sin6_family = AF_INET6;
            a->in6.sin6_port = in.sin_port;
            a->in6.sin6_addr.s6_addr[10] = a->in6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&a->in6.sin6_addr.s6_addr[12], &in.sin_addr, 4);
            *len = sizeof a->in6;
        }
        return 0;
    }
    if (from->sa_family == AF_INET6 && fromlen >= (socklen_t)sizeof a->in6) {
        if (family != AF_INET6)
            return -EAFNOSUPPORT;
        memcpy(&a->in6, from, sizeof a->in6);
        *len = sizeof a->in6;
        return 0;
    }
    return -EINVAL;
}

/* Whether len bytes fit in one UDP datagram from an address of `family`
 * (before any IPv4 mapping: an IPv4 packet is what limits it). */
static bool kit_udp_fits(int family, size_t len)
{
    return len <= (family == AF_INET6 ? KIT_UDP_MAX_DATAGRAM6 : KIT_UDP_MAX_DATAGRAM);
}

/* ---- the calls ----------------------------------------------------------------- */

/* Queues a datagram from `from` for the next pump (wharf_test_udp_queue). */
static int kit_udp_queue(wharf_test *t, const struct sockaddr *from, socklen_t fromlen,
                         const void *data, size_t len)
{
    struct testkit_udp *k = t->udp;
    if (!k)
        return -EPROTOTYPE;
    if (!data && len)
        return -EINVAL;
    union sockaddr_any a;
    socklen_t alen;
    int rc = kit_udp_source(from, fromlen, k->local.sa.sa_family, &a, &alen);
    if (rc < 0)
        return rc;
    if (!kit_udp_fits(from->sa_family, len))
        return -EMSGSIZE;
    struct kit_in *i = malloc(sizeof *i + len);
    if (!i)
        return -ENOMEM;
    i->next = NULL;
    i->from = a;
    i->fromlen = alen;
    i->len = len;
    if (len)
        memcpy(i->data, data, len);
    *k->in_tail = i;
    k->in_tail = &i->next;
    k->nin++;
    return 0;
}

int wharf_test_udp_queue(wharf_test *t, const char *from, const void *data, size_t len)
{
    if (!t->udp)
        return -EPROTOTYPE;
    union sockaddr_any a;
    socklen_t alen;
    int rc = kit_udp_parse(from, &a, &alen);
    return rc < 0 ? rc : kit_udp_queue(t, &a.sa, alen, data, len);
}

int wharf_test_udp_send_from(wharf_test *t, const struct sockaddr *from, socklen_t fromlen,
                             const void *data, size_t len)
{
    int rc = kit_udp_queue(t, from, fromlen, data, len);
    if (rc == 0)
        testkit_pump(t);
    return rc;
}

int wharf_test_udp_send(wharf_test *t, const char *from, const void *data, size_t len)
{
    int rc = wharf_test_udp_queue(t, from, data, len);
    if (rc == 0)
        testkit_pump(t);
    return rc;
}

int wharf_test_udp_answer(wharf_test *t, unsigned socket, const char *from, const void *data,
                          size_t len)
{
    struct testkit_udp *k = t->udp;
    if (!k)
        return -EPROTOTYPE;
    if (!data && len)
        return -EINVAL;
    testkit_pump(t); /* what was queued before it arrives first */
    if (socket == 0 || socket > k->nsocks)
        return -ENOENT;
    struct kit_sock *s = &k->socks[socket - 1];
    if (!s->u)
        return -EPIPE;
    union sockaddr_any text, a;
    socklen_t textlen, alen;
    int rc = 0;
    if (from && (rc = kit_udp_parse(from, &text, &textlen)) < 0)
        return rc;
    const struct sockaddr *src = from ? &text.sa : &s->peer.sa;
    rc = kit_udp_source(src, from ? textlen : s->peer_len, s->local.sa.sa_family, &a, &alen);
    if (rc < 0)
        return rc;
    if (!kit_udp_fits(src->sa_family, len))
        return -EMSGSIZE;
    if (s->connected) {
        /* The kernel passes a connected socket its peer's datagrams only. */
        union sockaddr_any peer;
        socklen_t peerlen;
        if (kit_udp_source(&s->peer.sa, s->peer_len, s->local.sa.sa_family, &peer, &peerlen) < 0 ||
            peerlen != alen || memcmp(&peer, &a, alen) != 0)
            return -EISCONN;
    }
    struct wharf_worker *was = worker_enter(&t->w);
    rc = udp_handle_inject(s->u, &a.sa, alen, data, len);
    worker_leave(was);
    testkit_pump(t);
    return rc;
}

const struct wharf_test_dgram *wharf_test_udp_output(wharf_test *t)
{
    struct testkit_udp *k = t->udp;
    if (!k)
        return NULL;
    free(k->taken);
    k->taken = k->out;
    if (!k->out)
        return NULL;
    k->out = k->out->next;
    if (!k->out)
        k->out_tail = &k->out;
    k->nout--;
    k->out_bytes -= k->taken->d.len;
    return &k->taken->d;
}

size_t wharf_test_udp_output_count(const wharf_test *t)
{
    return t->udp ? t->udp->nout : 0;
}

unsigned wharf_test_udp_sockets(const wharf_test *t)
{
    return t->udp ? t->udp->nsocks : 0;
}

const char *wharf_test_udp_socket_peer(const wharf_test *t, unsigned socket, bool *open)
{
    struct testkit_udp *k = t->udp;
    if (!k || socket == 0 || socket > k->nsocks)
        return NULL;
    if (open)
        *open = k->socks[socket - 1].u != NULL;
    return k->socks[socket - 1].peer_text;
}

long long wharf_test_udp_dropped(const wharf_test *t, const char *reason)
{
    struct testkit_udp *k = t->udp;
    if (!k)
        return -EPROTOTYPE;
    const struct listener_counters *st = listener_counters(k->l, 0);
    if (!reason)
        return (long long)atomic_load(&st->datagrams_dropped);
    for (int r = 0; r < LISTENER_DROP_REASONS; r++)
        if (strcmp(reason, listener_drop_reason_name((enum listener_drop_reason)r)) == 0)
            return (long long)atomic_load(&st->dropped[r]);
    return -EINVAL;
}
