/*
 * ref_udp_echo.c - the UDP reference limit for bench/run.sh: a single-threaded UDP echo
 * server that reads datagrams in batches with recvmmsg and answers each batch with one
 * sendmmsg, and does nothing else (no epoll: recvmmsg blocks until one datagram is there,
 * MSG_WAITFORONE then takes what else is queued, up to the batch size). Every datagram up
 * to 65,507 bytes is echoed whole to its sender.
 *
 *   ref_udp_echo [-e|-E] [-a ADDR] [-p PORT] [-b BATCH] [-l SECONDS]
 *
 * ADDR defaults to 127.0.0.1, PORT to 0 (ephemeral), BATCH to 32 (wharfd's batch).
 * -e: event-loop mode, for diagnosis: the socket stays registered in an epoll set and each
 * readiness event reads up to 4 batches with recvmmsg(MSG_DONTWAIT), as an event-driven
 * server (wharfd) must; the difference to the default mode is the cost of being an epoll
 * server (docs/performance.md, Findings). -E: as -e, but while the socket keeps returning
 * batches at least half full it is taken out of the epoll set and read directly each turn
 * (with a non-blocking epoll_wait for the other descriptors an event loop would have), and
 * put back once a read finds it empty: the fix proposed for wharfd's UDP path.
 * Once bound it prints "listening on udp ADDR:PORT" on stderr and serves until
 * SIGINT/SIGTERM or until -l SECONDS have passed (default 900).
 *
 * Build: cc -O2 -o ref_udp_echo ref_udp_echo.c   (bench/run.sh does this)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define DGRAM 65536

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "ref_udp_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv)
{
    static struct mmsghdr rm[MAX_BATCH], sm[MAX_BATCH];
    static struct iovec riov[MAX_BATCH], siov[MAX_BATCH];
    static struct sockaddr_storage from[MAX_BATCH];
    const char *addr = "127.0.0.1";
    int port = 0, lifetime = 900, batch = 32, opt, fd, ep = -1, use_epoll = 0;
    struct epoll_event ev = {.events = EPOLLIN};
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t slen = sizeof(sin);
    struct timeval tv = {1, 0};
    struct sigaction sa;
    char *bufs;
    time_t deadline;

    while ((opt = getopt(argc, argv, "eEa:p:b:l:")) != -1) {
        switch (opt) {
        case 'e': use_epoll = 1; break;
        case 'E': use_epoll = 2; break;
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'l': lifetime = atoi(optarg); break;
        default:
            fprintf(stderr,
                    "usage: ref_udp_echo [-e|-E] [-a ADDR] [-p PORT] [-b BATCH] [-l SECONDS]\n");
            return 2;
        }
    }
    if (batch < 1 || batch > MAX_BATCH) {
        fprintf(stderr, "ref_udp_echo: -b must be 1..%d\n", MAX_BATCH);
        return 2;
    }
    memset(&sa, 0, sizeof(sa)); /* no SA_RESTART: a signal ends the blocking recvmmsg */
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        fprintf(stderr, "ref_udp_echo: not an IPv4 address: %s\n", addr);
        return 2;
    }
    sin.sin_port = htons((uint16_t)port);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        die("bind");
    if (getsockname(fd, (struct sockaddr *)&sin, &slen) != 0)
        die("getsockname");
    /* wake up once a second when idle, to notice the lifetime */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bufs = malloc((size_t)batch * DGRAM);
    if (!bufs)
        die("malloc");
    for (int i = 0; i < batch; i++) {
        riov[i].iov_base = bufs + (size_t)i * DGRAM;
        riov[i].iov_len = DGRAM;
        rm[i].msg_hdr.msg_iov = &riov[i];
        rm[i].msg_hdr.msg_iovlen = 1;
        rm[i].msg_hdr.msg_name = &from[i];
        sm[i].msg_hdr.msg_iov = &siov[i];
        sm[i].msg_hdr.msg_iovlen = 1;
        sm[i].msg_hdr.msg_name = &from[i];
    }
    if (use_epoll) {
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            die("epoll");
    }
    fprintf(stderr, "listening on udp %s:%u\n", addr, ntohs(sin.sin_port));

    deadline = time(NULL) + lifetime;
    int round = 0, busy = 0;

    while (!stop && time(NULL) < deadline) {
        int n, done = 0;

        if (use_epoll == 1 && round == 0 && epoll_wait(ep, &ev, 1, 1000) <= 0)
            continue;
        if (use_epoll == 2) {
            if (!busy && epoll_wait(ep, &ev, 1, 1000) <= 0)
                continue;
            if (busy) /* an event loop would serve its other descriptors here */
                (void)epoll_wait(ep, &ev, 1, 0);
        }
        for (int i = 0; i < batch; i++)
            rm[i].msg_hdr.msg_namelen = sizeof(from[i]);
        n = recvmmsg(fd, rm, (unsigned)batch, use_epoll ? MSG_DONTWAIT : MSG_WAITFORONE, NULL);
        /* -e: another batch (at most 4 per event) only while batches come full */
        round = use_epoll == 1 && n == batch && round < 3 ? round + 1 : 0;
        /* -E: out of the epoll set while busy, back in once the socket is empty */
        if (use_epoll == 2 && !busy && n >= batch / 2) {
            if (epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL) != 0)
                die("epoll_ctl");
            busy = 1;
        } else if (use_epoll == 2 && busy && n <= 0) {
            ev.events = EPOLLIN;
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
                die("epoll_ctl");
            busy = 0;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            die("recvmmsg");
        }
        for (int i = 0; i < n; i++) {
            siov[i].iov_base = riov[i].iov_base;
            siov[i].iov_len = rm[i].msg_len;
            sm[i].msg_hdr.msg_namelen = rm[i].msg_hdr.msg_namelen;
        }
        while (done < n) {
            int r = sendmmsg(fd, sm + done, (unsigned)(n - done), 0);

            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) { /* drop the datagram that failed, like any UDP server */
                done++;
                continue;
            }
            done += r;
        }
    }
    return 0;
}
