/*
 * churn_rst.c - a connection-churn client that resets its connections, for
 * bench/churn.sh --rst: each thread connects (blocking), sends one 64-byte
 * message, reads the 64-byte echo, and closes with SO_LINGER 0 (an RST, no
 * TIME_WAIT: what a client or load balancer that aborts its connections
 * does), then again.  Prints one JSON line {"rate": exchanges per second}
 * for the measurement period after the warm-up.  A benchmark helper, not a
 * test: an echo that fails or comes back short is counted as an error.
 *
 *   churn_rst [-t THREADS] [-w WARMUP_S] [-d DURATION_S] HOST PORT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in target;
static _Atomic int phase; /* 0 warm-up, 1 measuring, 2 stop */
static _Atomic long done, errors;

static int exchange(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = -1;
    char msg[64], back[64];
    memset(msg, 'x', sizeof msg);
    if (connect(fd, (struct sockaddr *)&target, sizeof target) == 0 &&
        send(fd, msg, sizeof msg, MSG_NOSIGNAL) == (ssize_t)sizeof msg) {
        size_t got = 0;
        while (got < sizeof back) {
            ssize_t n = recv(fd, back + got, sizeof back - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        rc = got == sizeof back && memcmp(msg, back, sizeof msg) == 0 ? 0 : -1;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return rc;
}

static void *client(void *arg)
{
    (void)arg;
    while (atomic_load(&phase) < 2) {
        int rc = exchange();
        if (atomic_load(&phase) == 1) {
            if (rc == 0)
                atomic_fetch_add(&done, 1);
            else
                atomic_fetch_add(&errors, 1);
        }
    }
    return NULL;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    int threads = 4;
    double warm = 1, dur = 4;
    int opt;
    while ((opt = getopt(argc, argv, "t:w:d:")) != -1) {
        switch (opt) {
        case 't': threads = atoi(optarg); break;
        case 'w': warm = atof(optarg); break;
        case 'd': dur = atof(optarg); break;
        default:
            fprintf(stderr, "usage: churn_rst [-t THREADS] [-w WARMUP_S] [-d DURATION_S] HOST PORT\n");
            return 2;
        }
    }
    if (argc - optind != 2 || threads < 1 || threads > 256) {
        fprintf(stderr, "usage: churn_rst [-t THREADS] [-w WARMUP_S] [-d DURATION_S] HOST PORT\n");
        return 2;
    }
    target.sin_family = AF_INET;
    target.sin_port = htons((unsigned short)atoi(argv[optind + 1]));
    if (inet_pton(AF_INET, argv[optind], &target.sin_addr) != 1) {
        fprintf(stderr, "churn_rst: %s: not an IPv4 address\n", argv[optind]);
        return 2;
    }
    pthread_t t[256];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, client, NULL);
    sleep_s(warm);
    atomic_store(&phase, 1);
    sleep_s(dur);
    atomic_store(&phase, 2);
    long n = atomic_load(&done), e = atomic_load(&errors);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("{\"rate\": %.1f, \"errors\": %ld}\n", (double)n / dur, e);
    return 0;
}
