/*
 * ref_epoll_echo.c - the reference limit for bench/run.sh: a minimal, single-threaded,
 * level-triggered epoll TCP echo server. It does the least an epoll echo server can do per
 * message (one recv, one send, its share of one epoll_wait) and keeps no per-connection
 * state at all while a connection has nothing pending, so its CPU time per message and its
 * memory per connection are the floor a framework is measured against.
 *
 *   ref_epoll_echo [-a ADDR] [-p PORT] [-n LISTENERS] [-t THREADS] [-l SECONDS]
 *
 * ADDR defaults to 127.0.0.1, PORT to 0 (ephemeral). -n opens that many listening sockets
 * (ports PORT, PORT+1, ..., or all ephemeral when PORT is 0), all in the one epoll set.
 * -t runs that many independent threads (default 1), each with its own epoll set and its
 * own SO_REUSEPORT listening socket on every port, so the kernel spreads connections over
 * them: the minimal multi-threaded accept design wharf's acceptor thread is measured
 * against.
 * For each it prints "listening on tcp ADDR:PORT" on stderr (the words wharfd logs) and serves
 * until SIGINT/SIGTERM or until -l SECONDS have passed (default 900), so a forgotten one cannot
 * linger.
 *
 * Per readable connection: recv up to 64 KiB into one shared buffer and send it straight
 * back (TCP_NODELAY, like wharfd's default). What the socket does not take is kept in a
 * heap block and the connection stops reading (EPOLLOUT only) until it has drained, so a
 * client that does not read cannot make it buffer without bound. Accepts are done inline
 * with accept4 until EAGAIN.
 *
 * Build: cc -O2 -pthread -o ref_epoll_echo ref_epoll_echo.c   (bench/run.sh does this)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ref_main.h"

#define BUFSZ 65536
#define MAX_EVENTS 256

struct pend {
    size_t off, len;
    char data[];
};

static __thread struct pend **pending; /* indexed by fd; NULL = nothing pending */
static __thread size_t npending;
static __thread char buf[BUFSZ];

static void die(const char *what)
{
    fprintf(stderr, "ref_epoll_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int set_events(int ep, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};

    return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void drop(int fd)
{
    if ((size_t)fd < npending && pending[fd]) {
        free(pending[fd]);
        pending[fd] = NULL;
    }
    close(fd); /* also removes it from the epoll set */
}

/* Keeps p[0..len) for later; the connection then waits for EPOLLOUT only. */
static int keep(int ep, int fd, const char *p, size_t len)
{
    struct pend *pd;

    if ((size_t)fd >= npending) {
        size_t n = npending ? npending : 1024;
        struct pend **np;

        while (n <= (size_t)fd)
            n *= 2;
        np = realloc(pending, n * sizeof(*np));
        if (!np)
            return -1;
        memset(np + npending, 0, (n - npending) * sizeof(*np));
        pending = np;
        npending = n;
    }
    pd = malloc(sizeof(*pd) + len);
    if (!pd)
        return -1;
    pd->off = 0;
    pd->len = len;
    memcpy(pd->data, p, len);
    pending[fd] = pd;
    return set_events(ep, fd, EPOLLOUT);
}

/* Writes what is pending; back to EPOLLIN once it is all out. */
static void on_writable(int ep, int fd)
{
    struct pend *pd = (size_t)fd < npending ? pending[fd] : NULL;
    ssize_t n;

    if (!pd) {
        set_events(ep, fd, EPOLLIN);
        return;
    }
    while (pd->off < pd->len) {
        n = send(fd, pd->data + pd->off, pd->len - pd->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            pd->off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        drop(fd);
        return;
    }
    free(pd);
    pending[fd] = NULL;
    if (set_events(ep, fd, EPOLLIN) != 0)
        drop(fd);
}

static void on_readable(int ep, int fd)
{
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    size_t off = 0;

    if (n == 0) {
        drop(fd);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            drop(fd);
        return;
    }
    while (off < (size_t)n) {
        ssize_t w = send(fd, buf + off, (size_t)n - off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (keep(ep, fd, buf + off, (size_t)n - off) != 0)
                drop(fd);
            return;
        }
        drop(fd);
        return;
    }
}

static void on_accept(int ep, int lfd)
{
    struct epoll_event ev = {.events = EPOLLIN};
    int one = 1, fd;

    for (;;) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                fprintf(stderr, "ref_epoll_echo: accept4: %s\n", strerror(errno));
            return; /* EAGAIN, or try again on the next event */
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ev.data.fd = fd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            close(fd);
    }
}

struct server_thread {
    struct ref_thread rt; /* first (ref_main.h): its thread and listening sockets */
};

static void *serve(void *arg)
{
    struct server_thread *t = arg;
    struct epoll_event ev = {.events = EPOLLIN}, events[MAX_EVENTS];
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0)
        die("epoll_create1");
    for (int i = 0; i < t->rt.nl; i++) {
        ev.data.u64 = (1ull << 32) | (uint32_t)t->rt.lfd[i]; /* bit 32: a listener */
        if (epoll_ctl(ep, EPOLL_CTL_ADD, t->rt.lfd[i], &ev) != 0)
            die("epoll_ctl");
    }
    while (!stop) {
        int n = epoll_wait(ep, events, MAX_EVENTS, 1000);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        if (time(NULL) >= deadline) /* vDSO: no system call */
            break;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;

            if (events[i].data.u64 >> 32)
                on_accept(ep, fd);
            else if (events[i].events & EPOLLOUT)
                on_writable(ep, fd);
            else
                on_readable(ep, fd);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static struct server_thread threads[REF_MAX];

    return ref_main(argc, argv, "ref_epoll_echo", SOCK_STREAM, SOCK_NONBLOCK, threads, sizeof threads[0], serve);
}
