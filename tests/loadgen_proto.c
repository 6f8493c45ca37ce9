/* loadgen_proto.c - the request/response test servers of tests/loadgen_proto.h: an accept
 * thread and one thread per connection (blocking I/O, 50 ms poll timeouts), parsing
 * memcached text commands or HTTP/1.1 requests and answering every request of a batch with
 * one send. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "loadgen_proto.h"
#include "loadgen_servers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define POLL_MS 50
#define NBUCKETS 4096
#define BUF_CAP (1u << 20)

struct kv {
    struct kv *next;
    char key[251];
    uint8_t *val;
    size_t len;
};

struct lp_conn {
    struct lp_server *srv;
    int fd;
    pthread_t tid;
    int done;
};

struct lp_server {
    enum lp_kind kind;
    int fd;
    unsigned port;
    int stop;
    uint64_t requests, hits;
    pthread_t tid;
    struct lp_conn conns[MAX_CONNS];
    int nconns;
    pthread_mutex_t lock; /* the key-value store, last */
    char last[1024];      /* http: the head of the last request (without its last \n) */
    struct kv *b[NBUCKETS];
};

static bool stopping(struct lp_server *s) { return __atomic_load_n(&s->stop, __ATOMIC_RELAXED) != 0; }

static unsigned hash(const char *k)
{
    unsigned h = 2166136261u;

    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 16777619u;
    return h % NBUCKETS;
}

/* Output buffer of one batch of responses. */
struct out {
    uint8_t *p;
    size_t len;
};

static void out_add(struct out *o, const void *p, size_t n)
{
    if (o->len + n > BUF_CAP * 2)
        return; /* never with the tests' pipelines */
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

static void out_str(struct out *o, const char *s) { out_add(o, s, strlen(s)); }

/* memcached: consumes complete commands of buf[0, len). Returns bytes consumed, or -1 to
 * close. */
static long memcache_batch(struct lp_server *s, uint8_t *buf, size_t len, struct out *o)
{
    size_t off = 0;

    for (;;) {
        uint8_t *nl = memchr(buf + off, '\n', len - off);
        char line[512], key[251];
        size_t ll;
        unsigned flags, exp, n;

        if (!nl)
            break;
        ll = (size_t)(nl - (buf + off)) + 1;
        if (ll >= sizeof(line))
            return -1;
        memcpy(line, buf + off, ll);
        line[ll] = '\0';
        if (!strncmp(line, "get ", 4)) {
            char *save = NULL, *k;

            __atomic_fetch_add(&s->requests, 1, __ATOMIC_RELAXED);
            pthread_mutex_lock(&s->lock);
            for (k = strtok_r(line + 4, " \r\n", &save); k; k = strtok_r(NULL, " \r\n", &save)) {
                struct kv *e;

                for (e = s->b[hash(k)]; e && strcmp(e->key, k); e = e->next)
                    ;
                if (e) {
                    char h[300];
                    uint64_t nh = __atomic_add_fetch(&s->hits, 1, __ATOMIC_RELAXED);

                    snprintf(h, sizeof(h), "VALUE %s 0 %zu\r\n", k, e->len);
                    out_str(o, h);
                    out_add(o, e->val, e->len);
                    /* LP_MEMCACHE_WRONG: every 10th hit has its last value byte changed */
                    if (s->kind == LP_MEMCACHE_WRONG && nh % 10 == 0 && e->len && o->len)
                        o->p[o->len - 1] ^= 1;
                    out_str(o, "\r\n");
                }
            }
            pthread_mutex_unlock(&s->lock);
            out_str(o, "END\r\n");
            off += ll;
        } else if (sscanf(line, "set %250s %u %u %u", key, &flags, &exp, &n) == 4) {
            struct kv *e;
            unsigned h = hash(key);

            if (len - off < ll + n + 2)
                break; /* the value has not arrived yet */
            __atomic_fetch_add(&s->requests, 1, __ATOMIC_RELAXED);
            pthread_mutex_lock(&s->lock);
            for (e = s->b[h]; e && strcmp(e->key, key); e = e->next)
                ;
            if (!e && (e = calloc(1, sizeof(*e)))) {
                snprintf(e->key, sizeof(e->key), "%s", key);
                e->next = s->b[h];
                s->b[h] = e;
            }
            if (e) {
                free(e->val);
                e->val = malloc(n ? n : 1);
                if (e->val)
                    memcpy(e->val, buf + off + ll, n);
                e->len = e->val ? n : 0;
            }
            pthread_mutex_unlock(&s->lock);
            out_str(o, "STORED\r\n");
            off += ll + n + 2;
        } else {
            __atomic_fetch_add(&s->requests, 1, __ATOMIC_RELAXED);
            out_str(o, "ERROR\r\n");
            off += ll;
        }
    }
    return (long)off;
}

static const char body64[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* HTTP: answers every complete request of buf[0, len). Returns bytes consumed, -1 to
 * close at once, or -2 to send what `o` holds and close cleanly (linger_close). */
static long http_batch(struct lp_server *s, uint8_t *buf, size_t len, struct out *o, uint64_t *n,
                       int fd)
{
    size_t off = 0;

    for (;;) {
        uint8_t *end = memmem(buf + off, len - off, "\r\n\r\n", 4);
        char path[256] = "/";
        size_t rl;
        bool tenth;

        if (!end)
            break;
        rl = (size_t)(end - (buf + off)) + 4;
        buf[off + rl - 1] = '\0';
        sscanf((char *)buf + off, "GET %255s", path);
        pthread_mutex_lock(&s->lock);
        snprintf(s->last, sizeof(s->last), "%s", (char *)buf + off);
        pthread_mutex_unlock(&s->lock);
        off += rl;
        (*n)++;
        __atomic_fetch_add(&s->requests, 1, __ATOMIC_RELAXED);
        tenth = *n % 10 == 0;
        if (s->kind == LP_HTTP_SILENT)
            continue;
        if (tenth && s->kind == LP_HTTP_GARBAGE) {
            out_str(o, "garbage, not an HTTP response\r\n\r\n");
            continue;
        }
        if (tenth && s->kind == LP_HTTP_HUGE) {
            out_str(o, "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n");
            continue;
        }
        if (tenth && s->kind == LP_HTTP_SHORT) {
            static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n";

            out_add(o, r, 20);
            lg_send_all(fd, o->p, o->len);
            o->len = 0;
            return -1;
        }
        if ((tenth && s->kind == LP_HTTP_CLOSE) || s->kind == LP_HTTP_10) {
            out_str(o, s->kind == LP_HTTP_10 ? "HTTP/1.0 200 OK\r\nContent-Length: 64\r\n\r\n"
                                             : "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                               "Content-Length: 64\r\n\r\n");
            out_str(o, body64);
            return -2;
        }
        if (!strcmp(path, "/missing") || (tenth && s->kind == LP_HTTP_500)) {
            out_str(o, !strcmp(path, "/missing")
                           ? "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
                           : "HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\noops");
            continue;
        }
        if (!strcmp(path, "/chunked")) {
            out_str(o, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "10\r\n0123456789abcdef\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n");
            continue;
        }
        out_str(o, "HTTP/1.1 200 OK\r\nServer: lp\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 64\r\n\r\n");
        out_str(o, body64);
        if (tenth && s->kind == LP_HTTP_EXTRA)
            out_str(o, "EXTRA");
        if (tenth && s->kind == LP_HTTP_EOF)
            return -2;
    }
    return (long)off;
}

/* Shuts the writing side down and reads (and drops) what the client still sends until it
 * closes, for at most 2 s: the client sees a clean EOF, never a reset. */
static void linger_close(struct lp_server *s, int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint8_t sink[4096];
    int i;

    shutdown(fd, SHUT_WR);
    for (i = 0; i < 2000 / POLL_MS && !stopping(s); i++) {
        if (poll(&pfd, 1, POLL_MS) <= 0)
            continue;
        if (recv(fd, sink, sizeof(sink), 0) <= 0)
            break;
    }
}

static void *conn_thread(void *arg)
{
    struct lp_conn *c = arg;
    struct lp_server *s = c->srv;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    uint8_t *buf = malloc(BUF_CAP);
    struct out o = {malloc(BUF_CAP * 2), 0};
    size_t len = 0;
    uint64_t n = 0;
    long used;
    ssize_t r;

    if (!buf || !o.p)
        goto out;
    while (!stopping(s)) {
        if (poll(&pfd, 1, POLL_MS) <= 0)
            continue;
        r = recv(c->fd, buf + len, BUF_CAP - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        o.len = 0;
        used = s->kind == LP_MEMCACHE || s->kind == LP_MEMCACHE_WRONG ? memcache_batch(s, buf, len, &o)
                                      : http_batch(s, buf, len, &o, &n, c->fd);
        if (used == -1)
            break;
        if (o.len && lg_send_all(c->fd, o.p, o.len) != 0)
            break;
        if (used == -2) {
            linger_close(s, c->fd);
            break;
        }
        memmove(buf, buf + used, len - (size_t)used);
        len -= (size_t)used;
        if (len == BUF_CAP)
            break;
    }
out:
    free(buf);
    free(o.p);
    close(c->fd);
    __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *accept_thread(void *arg)
{
    struct lp_server *s = arg;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    struct timeval tv = {1, 0};
    int fd, i;

    while (!stopping(s)) {
        struct lp_conn *c = NULL;

        if (poll(&pfd, 1, POLL_MS) <= 0)
            continue;
        fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        for (i = 0; i < s->nconns && !c; i++)
            if (__atomic_load_n(&s->conns[i].done, __ATOMIC_ACQUIRE)) {
                c = &s->conns[i];
                if (c->fd >= 0)
                    pthread_join(c->tid, NULL);
            }
        if (!c && s->nconns < MAX_CONNS)
            c = &s->conns[s->nconns++];
        if (!c) {
            close(fd);
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        c->srv = s;
        c->fd = fd;
        c->done = 0;
        if (pthread_create(&c->tid, NULL, conn_thread, c) != 0) {
            close(fd);
            c->done = 1;
            c->fd = -1;
        }
    }
    return NULL;
}

struct lp_server *lp_server_start(enum lp_kind kind)
{
    struct lp_server *s = calloc(1, sizeof(*s));
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int one = 1;

    if (!s)
        return NULL;
    s->kind = kind;
    pthread_mutex_init(&s->lock, NULL);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        goto fail;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s->fd, (struct sockaddr *)&a, len) != 0 || listen(s->fd, 128) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &len) != 0)
        goto fail;
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->tid, NULL, accept_thread, s) != 0)
        goto fail;
    return s;
fail:
    if (s->fd >= 0)
        close(s->fd);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
}

unsigned lp_server_port(const struct lp_server *s) { return s->port; }

uint64_t lp_server_requests(const struct lp_server *s)
{
    return __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
}

void lp_server_last_request(struct lp_server *s, char *out, size_t len)
{
    pthread_mutex_lock(&s->lock);
    snprintf(out, len, "%s", s->last);
    pthread_mutex_unlock(&s->lock);
}

uint64_t lp_server_hits(const struct lp_server *s) { return __atomic_load_n(&s->hits, __ATOMIC_RELAXED); }

void lp_server_stop(struct lp_server *s)
{
    struct kv *e, *next;
    int i;

    __atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
    pthread_join(s->tid, NULL);
    for (i = 0; i < s->nconns; i++)
        if (s->conns[i].fd >= 0)
            pthread_join(s->conns[i].tid, NULL);
    close(s->fd);
    for (i = 0; i < NBUCKETS; i++)
        for (e = s->b[i]; e; e = next) {
            next = e->next;
            free(e->val);
            free(e);
        }
    pthread_mutex_destroy(&s->lock);
    free(s);
}
