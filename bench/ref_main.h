/*
 * ref_main.h - what the threaded reference servers (ref_epoll_echo.c, ref_uring_echo.c, TCP;
 * ref_udp_uring_echo.c, UDP) share: their command line, their sockets (one per port and
 * thread, SO_REUSEPORT when there are several threads; listening sockets for TCP, bound
 * datagram sockets for UDP), their threads and their lifetime (SIGINT, SIGTERM or -l
 * SECONDS). Included by each; each is built on its own (cc -O2 -pthread ref_X.c), so
 * everything here is static.
 *
 *   NAME [-a ADDR] [-p PORT] [-n LISTENERS] [-t THREADS] [-l SECONDS]
 */
#ifndef REF_MAIN_H
#define REF_MAIN_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REF_MAX 64 /* listeners, threads */

/* The start of each server's per-thread struct. */
struct ref_thread {
    pthread_t thread;
    int lfd[REF_MAX], nl; /* its listening (TCP) or bound (UDP) sockets */
};

static volatile sig_atomic_t stop;
static time_t deadline; /* serve() returns once time(NULL) reaches it */

static void ref_on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void ref_fail(const char *name, const char *what, int err)
{
    fprintf(stderr, "%s: %s: %s\n", name, what, strerror(err));
    exit(1);
}

/* Parses the command line, opens the sockets (type SOCK_STREAM, listening, or SOCK_DGRAM,
 * bound; socket(2) flags sock_flags) into the threads (an array of structs `stride` bytes
 * apart, each starting with a struct ref_thread), prints "listening on tcp ADDR:PORT" (or
 * udp) for each port, runs serve on every thread (the first on this one) and returns main's
 * exit status. */
static int ref_main(int argc, char **argv, const char *name, int type, int sock_flags,
                    void *threads, size_t stride, void *(*serve)(void *))
{
    const char *proto = type == SOCK_DGRAM ? "udp" : "tcp";
    const char *addr = "127.0.0.1";
    int port = 0, lifetime = 900, nl = 1, nt = 1, opt, one = 1;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t slen;
    struct sigaction sa;
#define REF_THREAD(k) ((struct ref_thread *)((char *)threads + (size_t)(k) * stride))

    while ((opt = getopt(argc, argv, "a:p:n:t:l:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'n': nl = atoi(optarg); break;
        case 't': nt = atoi(optarg); break;
        case 'p': port = atoi(optarg); break;
        case 'l': lifetime = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-a ADDR] [-p PORT] [-n LISTENERS] [-t THREADS] "
                            "[-l SECONDS]\n", name);
            return 2;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ref_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        fprintf(stderr, "%s: not an IPv4 address: %s\n", name, addr);
        return 2;
    }
    if (nl < 1 || nl > REF_MAX || nt < 1 || nt > REF_MAX) {
        fprintf(stderr, "%s: -n and -t must be 1..%d\n", name, REF_MAX);
        return 2;
    }
    for (int i = 0; i < nl; i++) {
        int bound = port ? port + i : 0;

        for (int k = 0; k < nt; k++) {
            int fd = socket(AF_INET, type | SOCK_CLOEXEC | sock_flags, 0);

            if (fd < 0)
                ref_fail(name, "socket", errno);
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (nt > 1)
                setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
            sin.sin_port = htons((uint16_t)bound);
            if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
                ref_fail(name, "bind", errno);
            if (type == SOCK_STREAM && listen(fd, 511) != 0) /* wharfd's default backlog */
                ref_fail(name, "listen", errno);
            slen = sizeof(sin);
            if (getsockname(fd, (struct sockaddr *)&sin, &slen) != 0)
                ref_fail(name, "getsockname", errno);
            bound = ntohs(sin.sin_port);
            REF_THREAD(k)->lfd[REF_THREAD(k)->nl++] = fd;
        }
        fprintf(stderr, "listening on %s %s:%u\n", proto, addr, (unsigned)bound);
    }

    deadline = time(NULL) + lifetime;
    for (int k = 1; k < nt; k++)
        if (pthread_create(&REF_THREAD(k)->thread, NULL, serve, REF_THREAD(k)) != 0)
            ref_fail(name, "pthread_create", errno);
    serve(REF_THREAD(0));
    stop = 1;
    for (int k = 1; k < nt; k++)
        pthread_join(REF_THREAD(k)->thread, NULL);
    return 0;
#undef REF_THREAD
}

#endif
