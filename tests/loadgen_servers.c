/* loadgen_servers.c - the loopback test servers for tests/check_loadgen.c (see the header).
 * TCP servers run an accept thread and one thread per connection with blocking I/O and
 * short poll timeouts; message-aware ones frame the stream with the wharf-load header
 * (length at offset 4, little-endian). UDP servers run one thread. All stop within about
 * 50 ms of lg_server_stop. Every server counts what came from each peer address. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define MAX_PEERS 16 /* distinct peer addresses counted */
#define POLL_MS 50
#define LATE_LISTEN_MS 200 /* LG_LATE: listens this long after the start */

struct lg_peer {
    char addr[48];
    uint64_t n; /* connections (TCP) or datagrams (UDP) */
};

struct lg_conn {
    struct lg_server *srv;
    int fd;
    pthread_t tid;
    int done; /* set by the connection thread as it ends; the slot may then be reused */
};

struct lg_server {
    enum lg_kind kind;
    int fd;
    unsigned port;
    int stop;
    uint64_t received;
    pthread_t tid;
    struct lg_conn conns[MAX_CONNS];
    int nconns;
    pthread_mutex_t peers_lock;
    struct lg_peer peers[MAX_PEERS];
    int npeers;
};

static bool stopping(struct lg_server *s)
{
    return __atomic_load_n(&s->stop, __ATOMIC_RELAXED) != 0;
}

static void count(struct lg_server *s, uint64_t n)
{
    __atomic_fetch_add(&s->received, n, __ATOMIC_RELAXED);
}

/* Counts one connection or datagram from `sa` (beyond MAX_PEERS addresses: not counted). */
static void note_peer(struct lg_server *s, const struct sockaddr_storage *sa)
{
    char addr[48] = "";
    int i;

    if (sa->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof(addr));
    else if (sa->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof(addr));
    pthread_mutex_lock(&s->peers_lock);
    for (i = 0; i < s->npeers && strcmp(s->peers[i].addr, addr) != 0; i++)
        ;
    if (i == s->npeers && s->npeers < MAX_PEERS)
        snprintf(s->peers[s->npeers++].addr, sizeof(s->peers[0].addr), "%s", addr);
    if (i < s->npeers)
        s->peers[i].n++;
    pthread_mutex_unlock(&s->peers_lock);
}

int lg_send_all(int fd, const uint8_t *p, size_t len)
{
    ssize_t r;

    while (len) {
        r = send(fd, p, len, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static uint32_t msg_len_at(const uint8_t *p)
{
    return (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
}

static void *conn_thread(void *arg)
{
    struct lg_conn *c = arg;
    struct lg_server *s = c->srv;
    size_t cap = 2u << 20, len = 0, off;
    uint8_t *buf = malloc(cap), *held = NULL;
    uint32_t held_len = 0, mlen;
    uint64_t nmsg = 0;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    ssize_t r;

    if (!buf)
        goto out;
    while (!stopping(s)) {
        if (poll(&pfd, 1, POLL_MS) <= 0)
            continue;
        r = recv(c->fd, buf + len, cap - len, 0);
        if (r <= 0)
            break;
        if (s->kind == LG_ECHO || s->kind == LG_LATE) {
            count(s, 0);
            if (lg_send_all(c->fd, buf, (size_t)r) != 0)
                break;
            continue;
        }
        if (s->kind == LG_SILENT)
            continue;
        len += (size_t)r;
        off = 0;
        /* message-aware servers: frame the stream */
        while (len - off >= 40) {
            uint8_t *m = buf + off;

            mlen = msg_len_at(m);
            if (mlen < 40 || mlen > (1u << 20))
                goto out; /* not our protocol: give up on the connection */
            if (len - off < mlen)
                break;
            nmsg++;
            count(s, 1);
            if (s->kind == LG_CORRUPT && nmsg % 100 == 0)
                m[mlen > 40 ? 40 + (mlen - 40) / 2 : 20] ^= 0x20;
            if (s->kind == LG_REORDER && nmsg == 10) {
                held = malloc(mlen);
                if (!held)
                    goto out;
                memcpy(held, m, mlen);
                held_len = mlen;
                off += mlen;
                continue;
            }
            if (lg_send_all(c->fd, m, mlen) != 0)
                goto out;
            if (held) {
                if (lg_send_all(c->fd, held, held_len) != 0)
                    goto out;
                free(held);
                held = NULL;
            }
            off += mlen;
            if (s->kind == LG_RESET && nmsg == 5) {
                struct linger lg = {1, 0};

                setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
                goto out; /* close with linger 0 sends RST */
            }
        }
        memmove(buf, buf + off, len - off);
        len -= off;
    }
out:
    free(held);
    free(buf);
    close(c->fd); /* the connection thread owns its socket */
    __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *accept_thread(void *arg)
{
    struct lg_server *s = arg;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    struct timeval tv = {1, 0};
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd;

    if (s->kind == LG_LATE) {
        struct timespec late = {0, LATE_LISTEN_MS * 1000000L};

        nanosleep(&late, NULL);
        if (listen(s->fd, 128) != 0)
            return NULL;
    }
    while (!stopping(s)) {
        if (poll(&pfd, 1, POLL_MS) <= 0)
            continue;
        plen = sizeof(peer);
        fd = accept4(s->fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        note_peer(s, &peer);
        struct lg_conn *c = NULL;
        int i;

        /* a free slot: never used, or its connection has ended (join it first) */
        for (i = 0; i < s->nconns && !c; i++)
            if (__atomic_load_n(&s->conns[i].done, __ATOMIC_ACQUIRE)) {
                c = &s->conns[i];
                if (c->fd >= 0)
                    pthread_join(c->tid, NULL);
            }
        if (!c && s->nconns < MAX_CONNS)
            c = &s->conns[s->nconns++];
        if (!c) {
            close(fd); /* more than MAX_CONNS at once: refuse */
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

static void *udp_thread(void *arg)
{
    struct lg_server *s = arg;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    static __thread uint8_t buf[65536], held[65536];
    struct sockaddr_storage from, held_from;
    socklen_t fl, held_fl = 0;
    size_t held_len = 0;
    uint64_t n = 0;
    ssize_t r;

    while (!stopping(s)) {
        if (poll(&pfd, 1, POLL_MS) <= 0)
            continue;
        fl = sizeof(from);
        r = recvfrom(s->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (r < 0)
            continue;
        n++;
        count(s, 1);
        note_peer(s, &from);
        if (s->kind == LG_UDP_DROP && n % 10 == 0)
            continue;
        if (s->kind == LG_UDP_SWAP && n == 10) {
            memcpy(held, buf, (size_t)r);
            held_len = (size_t)r;
            held_from = from;
            held_fl = fl;
            continue;
        }
        sendto(s->fd, buf, (size_t)r, 0, (struct sockaddr *)&from, fl);
        if (s->kind == LG_UDP_DUP && n % 5 == 0)
            sendto(s->fd, buf, (size_t)r, 0, (struct sockaddr *)&from, fl);
        if (held_len) {
            sendto(s->fd, held, held_len, 0, (struct sockaddr *)&held_from, held_fl);
            held_len = 0;
        }
    }
    return NULL;
}

struct lg_server *lg_server_start(enum lg_kind kind, int ipv6)
{
    struct lg_server *s = calloc(1, sizeof(*s));
    struct sockaddr_storage ss;
    socklen_t len;
    bool udp = kind >= LG_UDP_ECHO;
    int one = 1;

    if (!s)
        return NULL;
    pthread_mutex_init(&s->peers_lock, NULL);
    s->kind = kind;
    memset(&ss, 0, sizeof(ss));
    if (ipv6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;

        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    }
    s->fd = socket(ss.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        goto fail;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s->fd, (struct sockaddr *)&ss, len) != 0 || (!udp && kind != LG_LATE && listen(s->fd, 128) != 0))
        goto fail;
    if (getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0)
        goto fail;
    s->port = ntohs(ipv6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                         : ((struct sockaddr_in *)&ss)->sin_port);
    if (pthread_create(&s->tid, NULL, udp ? udp_thread : accept_thread, s) != 0)
        goto fail;
    return s;
fail:
    if (s->fd >= 0)
        close(s->fd);
    pthread_mutex_destroy(&s->peers_lock);
    free(s);
    return NULL;
}

unsigned lg_server_port(const struct lg_server *s) { return s->port; }

uint64_t lg_server_received(const struct lg_server *s)
{
    return __atomic_load_n(&s->received, __ATOMIC_RELAXED);
}

uint64_t lg_server_peer_count(struct lg_server *s, const char *addr)
{
    uint64_t n = 0;
    int i;

    pthread_mutex_lock(&s->peers_lock);
    for (i = 0; i < s->npeers; i++)
        if (strcmp(s->peers[i].addr, addr) == 0)
            n = s->peers[i].n;
    pthread_mutex_unlock(&s->peers_lock);
    return n;
}

void lg_server_stop(struct lg_server *s)
{
    int i;

    __atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
    pthread_join(s->tid, NULL);
    for (i = 0; i < s->nconns; i++) {
        if (s->conns[i].fd < 0)
            continue; /* slot whose thread could not start */
        pthread_join(s->conns[i].tid, NULL);
    }
    close(s->fd);
    pthread_mutex_destroy(&s->peers_lock);
    free(s);
}
