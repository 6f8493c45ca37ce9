/* echo-cmin.c - a minimal single-threaded epoll echo client, the reference a load generator
 * is compared with: the least a client can do. Not part of wharf itself.
 *
 *   wharf-echo-cmin [-c CONNECTIONS] [-d SECONDS] [-s SIZE] [-p PIPELINE] HOST PORT
 *
 * Each connection writes PIPELINE messages of SIZE bytes (a fixed pattern) and writes one
 * more for every SIZE bytes that come back; nothing is checked, no time is taken per
 * message. At the end it prints "messages N seconds T rate R". */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct cc {
    int fd;
    size_t got; /* bytes of the current answer received */
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int nc = 1, size = 64, pipeline = 1, opt, ep, i, one = 1;
    double dur = 5, t0, end;
    unsigned long long msgs = 0;
    struct sockaddr_in a;
    struct cc *c;
    char *msg, rbuf[65536];
    struct epoll_event ev[256];

    while ((opt = getopt(argc, argv, "c:d:s:p:")) != -1) {
        if (opt == 'c')
            nc = atoi(optarg);
        else if (opt == 'd')
            dur = atof(optarg);
        else if (opt == 's')
            size = atoi(optarg);
        else if (opt == 'p')
            pipeline = atoi(optarg);
        else
            return 2;
    }
    if (argc - optind != 2 || nc < 1 || size < 1 || size > 65536 || pipeline < 1 || dur <= 0 ||
        dur > 3600) {
        fprintf(stderr,
                "usage: wharf-echo-cmin [-c N] [-d SECONDS] [-s SIZE] [-p PIPELINE] HOST PORT\n");
        return 2;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
    if (inet_pton(AF_INET, argv[optind], &a.sin_addr) != 1) {
        fprintf(stderr, "wharf-echo-cmin: bad IPv4 address\n");
        return 2;
    }
    msg = malloc((size_t)size * pipeline);
    c = calloc((size_t)nc, sizeof(*c));
    ep = epoll_create1(0);
    if (!msg || !c || ep < 0)
        return 3;
    memset(msg, 'x', (size_t)size * pipeline);
    for (i = 0; i < nc; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};

        c[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c[i].fd < 0 || connect(c[i].fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            perror("wharf-echo-cmin: connect");
            return 1;
        }
        setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &e);
    }
    t0 = now_s();
    end = t0 + dur;
    for (i = 0; i < nc; i++)
        if (send(c[i].fd, msg, (size_t)size * pipeline, MSG_NOSIGNAL) != (ssize_t)size * pipeline)
            return 1;
    while (now_s() < end) {
        int n = epoll_wait(ep, ev, 256, 100), k;

        for (k = 0; k < n; k++) {
            struct cc *x = &c[ev[k].data.u32];
            ssize_t r = recv(x->fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);
            size_t answers;

            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                fprintf(stderr, "wharf-echo-cmin: connection lost\n");
                return 1;
            }
            x->got += (size_t)r;
            answers = x->got / (size_t)size;
            x->got %= (size_t)size;
            msgs += answers;
            while (answers) {
                size_t b = answers > (size_t)pipeline ? (size_t)pipeline : answers;

                if (send(x->fd, msg, b * (size_t)size, MSG_NOSIGNAL) != (ssize_t)(b * (size_t)size))
                    return 1;
                answers -= b;
            }
        }
    }
    printf("messages %llu seconds %.3f rate %.0f\n", msgs, now_s() - t0, msgs / (now_s() - t0));
    return 0;
}
