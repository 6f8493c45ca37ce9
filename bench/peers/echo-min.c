/* echo-min.c - a minimal epoll echo server (TCP or UDP) used as the reference target when
 * comparing wharf-load with other load generators: the least a server can do, so the
 * generators' own costs show. Not part of wharf itself.
 *
 *   wharf-echo-min [-u] [-t THREADS] [-a ADDR] [-p PORT] [-l SECONDS]
 *
 * Each thread has its own SO_REUSEPORT socket and a level-triggered epoll loop. TCP: read up
 * to 64 KiB, write it back; what the socket does not take is kept and the connection stops
 * reading until it drains. UDP: recvmmsg/sendmmsg batches back to the sender. The server
 * prints "port N" once listening and exits after -l seconds (default 120), so a forgotten
 * one cannot linger. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define BATCH 32

struct pend {
    char *data;
    size_t off, len;
};

static int udp_mode;
static struct sockaddr_storage bind_addr;
static socklen_t bind_len;
static time_t deadline;

static int make_socket(void)
{
    int one = 1, fd;

    fd = socket(bind_addr.ss_family, (udp_mode ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&bind_addr, bind_len) != 0 ||
        (!udp_mode && listen(fd, 4096) != 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void udp_loop(int fd, int ep)
{
    static __thread char bufs[BATCH][BUF];
    struct mmsghdr m[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage from[BATCH];
    struct epoll_event ev;
    int i, n;

    while (time(NULL) < deadline) {
        if (epoll_wait(ep, &ev, 1, 200) <= 0)
            continue;
        for (;;) {
            for (i = 0; i < BATCH; i++) {
                iov[i] = (struct iovec){bufs[i], BUF};
                m[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                               .msg_namelen = sizeof(from[i]),
                                               .msg_iov = &iov[i],
                                               .msg_iovlen = 1};
            }
            n = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
            if (n <= 0)
                break;
            for (i = 0; i < n; i++)
                iov[i].iov_len = m[i].msg_len;
            sendmmsg(fd, m, (unsigned)n, 0);
        }
    }
}

static void tcp_loop(int lfd, int ep)
{
    static __thread char buf[BUF];
    struct epoll_event evs[256], ev;
    struct pend *p;
    int i, n, fd, one = 1;
    ssize_t r;

    while (time(NULL) < deadline) {
        n = epoll_wait(ep, evs, 256, 200);
        for (i = 0; i < n; i++) {
            p = evs[i].data.ptr;
            if (!p) { /* listener */
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    p = calloc(1, sizeof(*p) + sizeof(int));
                    if (!p) {
                        close(fd);
                        continue;
                    }
                    *(int *)(p + 1) = fd;
                    ev.events = EPOLLIN;
                    ev.data.ptr = p;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            fd = *(int *)(p + 1);
            if (p->len) { /* writable again: flush what was left */
                r = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
                if (r < 0 && errno != EAGAIN)
                    goto drop;
                if (r > 0)
                    p->off += (size_t)r;
                if (p->off == p->len) {
                    p->off = p->len = 0;
                    ev.events = EPOLLIN;
                    ev.data.ptr = p;
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                }
                continue;
            }
            r = recv(fd, buf, BUF, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN))
                goto drop;
            if (r < 0)
                continue;
            {
                ssize_t w = send(fd, buf, (size_t)r, MSG_NOSIGNAL);

                if (w < 0 && errno != EAGAIN)
                    goto drop;
                if (w < 0)
                    w = 0;
                if (w < r) {
                    char *d = realloc(p->data, (size_t)(r - w));

                    if (!d)
                        goto drop;
                    p->data = d;
                    memcpy(d, buf + w, (size_t)(r - w));
                    p->off = 0;
                    p->len = (size_t)(r - w);
                    ev.events = EPOLLOUT;
                    ev.data.ptr = p;
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                }
            }
            continue;
        drop:
            close(fd);
            free(p->data);
            free(p);
        }
    }
}

static void *worker(void *arg)
{
    int fd = (int)(long)arg, ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    if (udp_mode)
        udp_loop(fd, ep);
    else
        tcp_loop(fd, ep);
    close(ep);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, threads = 1, limit = 120, c, i, fd;
    pthread_t tid[64];
    struct sockaddr_in *a4 = (struct sockaddr_in *)&bind_addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&bind_addr;

    while ((c = getopt(argc, argv, "ut:a:p:l:")) != -1) {
        switch (c) {
        case 'u': udp_mode = 1; break;
        case 't': threads = atoi(optarg); break;
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'l': limit = atoi(optarg); break;
        default:
            fprintf(stderr,
                    "usage: wharf-echo-min [-u] [-t THREADS] [-a ADDR] [-p PORT] [-l SECONDS]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || port < 0 || port > 65535 || limit < 1) {
        fprintf(stderr, "wharf-echo-min: -t 1..64, -p 0..65535, -l >= 1\n");
        return 2;
    }
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((unsigned short)port);
        bind_len = sizeof(*a4);
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((unsigned short)port);
        bind_len = sizeof(*a6);
    } else {
        fprintf(stderr, "wharf-echo-min: -a: not a numeric address: %s\n", addr);
        return 2;
    }
    deadline = time(NULL) + limit;
    for (i = 0; i < threads; i++) {
        fd = make_socket();
        if (fd < 0) {
            perror("wharf-echo-min: socket/bind/listen");
            return 1;
        }
        if (i == 0 && port == 0) { /* the other threads share the port the first one got */
            socklen_t l = bind_len;

            getsockname(fd, (struct sockaddr *)&bind_addr, &l);
        }
        pthread_create(&tid[i], NULL, worker, (void *)(long)fd);
    }
    printf("port %d\n", ntohs(bind_addr.ss_family == AF_INET ? a4->sin_port : a6->sin6_port));
    fflush(stdout);
    for (i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    return 0;
}
