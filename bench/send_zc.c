/*
 * send_zc.c - where IORING_OP_SEND_ZC pays against a copying send, for issue 19's "SEND_ZC
 * where it pays for large writes": one TCP connection streams N bytes in writes of a given
 * size, with io_uring `send` SQEs (the kernel copies the bytes) or `SEND_ZC` SQEs (the
 * kernel pins the pages and sends from them), and the sender's CPU time per GiB and the
 * throughput are reported per write size. bench/send_zc.sh runs it over loopback and over a
 * veth pair between two network namespaces (docs/performance.md, "SEND_ZC: the crossover").
 *
 *   send_zc recv [-a ADDR] [-p PORT] [-l SECONDS]
 *   send_zc send [-a ADDR] -p PORT [-n BYTES] [-s SIZES] [-m MODES] [-r ROUNDS] [-B POOL]
 *
 * recv: a sink. Prints "listening on tcp ADDR:PORT" on stderr, then per connection reads
 * everything until EOF (1 MiB reads), answers with the byte count (8 bytes) and closes; one
 * connection at a time, until SIGINT/SIGTERM or -l SECONDS (default 900).
 * send: for each round (-r, default 3), each write size (-s, comma-separated, K and M
 * suffixes; default 4K,16K,64K,256K,1M) and each mode (-m, default send,zc,zcf: the modes
 * alternate within a round), one connection sends -n BYTES (default 1 GiB; M and G
 * suffixes) and half-closes, and the time ends when the sink's count (checked) arrives.
 * Modes:
 *   send  IORING_OP_SEND, MSG_WAITALL: the buffer is free again at its completion;
 *   zc    IORING_OP_SEND_ZC, MSG_WAITALL, IORING_SEND_ZC_REPORT_USAGE: two completions, the
 *         result (IORING_CQE_F_MORE set when a notification follows) and the notification
 *         (IORING_CQE_F_NOTIF), after which the buffer may be written again; the
 *         notification's res has IORING_NOTIF_USAGE_ZC_COPIED when the kernel had to copy
 *         the pages after all (loopback and veth deliver locally: see the doc);
 *   zcf   as zc, from registered buffers (IORING_RECVSEND_FIXED_BUF: no page pinning per
 *         send), the best case for zero copy.
 * One send is in flight at a time (TCP byte order without links); POOL bytes of buffers
 * (-B, default 16M: POOL / size buffers, 8 to 4096) rotate so that a zero-copy send can go
 * out while earlier buffers wait for their notifications, which come only when TCP frees
 * the data, at its ACK (with 8 buffers of 4 KiB, zc crawls at a few MB/s on loopback: the
 * pool must cover the unacknowledged bytes). Each send is one io_uring_enter that also waits (SINGLE_ISSUER |
 * DEFER_TASKRUN ring), in every mode. Sender CPU is getrusage(RUSAGE_SELF) user + system
 * over the stream (io_uring's task work runs in this process); on loopback and veth it
 * includes the receive-side work the kernel does in the sender's context, for every mode.
 * One line per stream on stdout (mode, size, round, GiB/s, CPU s/GiB, notifications, of
 * them copied), then per size the medians and the medians of the per-round ratios to send.
 *
 * Build: cc -O2 -Wall -o send_zc send_zc.c -luring   (bench/send_zc.sh does this)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_SEND_ZC_REPORT_USAGE /* Linux 6.2, liburing 2.4 */
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

#define MAX_SIZES 16
#define MAX_ROUNDS 32
#define MAX_BUFS 4096 /* io_uring registers up to 16,384 buffers */
enum { M_SEND, M_ZC, M_ZCF, NMODES };
static const char *mode_name[NMODES] = {"send", "zc", "zcf"};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "send_zc: %s: %s\n", what, strerror(err));
    exit(1);
}

/* "64K", "1M", "2G" -> bytes; 0 when malformed. */
static unsigned long long parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);

    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    return *end == '\0' || *end == ',' ? v : 0;
}

static int read_full(int fd, void *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, (char *)p + got, n - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* ---- the sink ---------------------------------------------------------------------- */

static int run_recv(const char *addr, int port, int lifetime)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t slen = sizeof(sin);
    struct timeval tv = {1, 0};
    int lfd, one = 1;
    char *buf = malloc(1 << 20);
    time_t deadline = time(NULL) + lifetime;

    if (!buf || inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
        die("recv: address or memory", EINVAL);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket", errno);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &slen) != 0)
        die("bind/listen", errno);
    setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* accept wakes each second */
    fprintf(stderr, "listening on tcp %s:%u\n", addr, ntohs(sin.sin_port));
    while (!stop && time(NULL) < deadline) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        uint64_t total = 0;
        ssize_t r;

        if (fd < 0)
            continue; /* timeout, signal */
        while ((r = read(fd, buf, 1 << 20)) > 0 || (r < 0 && errno == EINTR))
            if (r > 0)
                total += (uint64_t)r;
        if (write(fd, &total, sizeof(total)) != (ssize_t)sizeof(total))
            fprintf(stderr, "send_zc: recv: cannot answer the count\n");
        close(fd);
    }
    close(lfd);
    free(buf);
    return 0;
}

/* ---- the sender -------------------------------------------------------------------- */

struct result {
    double wall, cpu;          /* seconds */
    unsigned long notifs, copied;
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* One stream of `total` bytes in writes of `size` over a new connection to sin, in mode
 * `mode`, from nbufs buffers at bufs (size bytes apart, registered as buffers 0.. when
 * mode is M_ZCF). Fills *res; exits on any error (a benchmark, not a server). */
static void stream(struct io_uring *ring, const struct sockaddr_in *sin, int mode, char *bufs,
                   int nbufs, size_t size, unsigned long long total, struct result *res)
{
    int busy[MAX_BUFS] = {0}; /* per buffer: completions still owed (result, notification) */
    unsigned long long sent = 0, queued = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), next = 0, inflight = 0;
    size_t len = 0; /* of the send in flight */
    uint64_t echo = 0;
    double t0, c0;

    if (fd < 0 || connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) != 0)
        die("connect", errno);
    memset(res, 0, sizeof(*res));
    t0 = now();
    c0 = cpu_now();
    while (sent < total) {
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        int rc;

        /* one send in flight, from the next buffer no completion is owed on */
        if (!inflight && queued < total && !busy[next]) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            char *p = bufs + (size_t)next * size;

            if (!sqe)
                die("io_uring_get_sqe", EBUSY);
            len = total - queued < size ? (size_t)(total - queued) : size;
            if (mode == M_SEND)
                io_uring_prep_send(sqe, fd, p, len, MSG_WAITALL | MSG_NOSIGNAL);
            else if (mode == M_ZC)
                io_uring_prep_send_zc(sqe, fd, p, len, MSG_WAITALL | MSG_NOSIGNAL,
                                      IORING_SEND_ZC_REPORT_USAGE);
            else
                io_uring_prep_send_zc_fixed(sqe, fd, p, len, MSG_WAITALL | MSG_NOSIGNAL,
                                            IORING_SEND_ZC_REPORT_USAGE, (unsigned)next);
            io_uring_sqe_set_data64(sqe, (uint64_t)next);
            busy[next] = 1;
            inflight = 1;
            queued += len;
            next = (next + 1) % nbufs;
        }
        rc = io_uring_submit_and_wait(ring, 1);
        if (rc < 0 && rc != -EINTR)
            die("io_uring_submit_and_wait", -rc);
        io_uring_for_each_cqe(ring, head, cqe) {
            int b = (int)cqe->user_data;

            seen++;
            if (cqe->flags & IORING_CQE_F_NOTIF) { /* the buffer is ours again */
                res->notifs++;
                if ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
                    res->copied++;
                busy[b]--;
                continue;
            }
            if (cqe->res < 0)
                die(mode_name[mode], -cqe->res);
            if ((size_t)cqe->res != len) /* MSG_WAITALL: all or an error */
                die("short send", EIO);
            sent += (unsigned)cqe->res;
            inflight = 0;
            busy[b] += (cqe->flags & IORING_CQE_F_MORE) ? 1 : 0; /* a notification follows */
            busy[b]--;
        }
        io_uring_cq_advance(ring, seen);
    }
    if (sent != total)
        die("short stream", EIO);
    shutdown(fd, SHUT_WR);
    if (read_full(fd, &echo, sizeof(echo)) != 0 || echo != total) {
        fprintf(stderr, "send_zc: the sink counted %llu bytes of %llu\n",
                (unsigned long long)echo, total);
        exit(1);
    }
    res->wall = now() - t0;
    /* the notifications still owed: waited for (their CPU counts), outside the stream */
    for (int b = 0; b < nbufs; b++)
        while (busy[b] > 0) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(ring, &cqe);

            if (rc < 0)
                die("io_uring_wait_cqe", -rc);
            if (cqe->flags & IORING_CQE_F_NOTIF) {
                res->notifs++;
                if ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
                    res->copied++;
                busy[(int)cqe->user_data]--;
            }
            io_uring_cqe_seen(ring, cqe);
        }
    res->cpu = cpu_now() - c0;
    close(fd);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int run_send(const char *addr, int port, unsigned long long total, const char *sizes_arg,
                    const char *modes_arg, int rounds, unsigned long long pool)
{
    static struct result r[MAX_ROUNDS][MAX_SIZES][NMODES];
    size_t sizes[MAX_SIZES], maxsize = 0;
    int nsizes = 0, modes[NMODES], nmodes = 0;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    struct io_uring ring;
    static struct iovec iov[MAX_BUFS];
    int nbufs;
    const double gib = 1024.0 * 1024 * 1024;
    char *bufs;
    int rc;

    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1 || !port)
        die("send: -a ADDR and -p PORT", EINVAL);
    for (const char *s = sizes_arg; s && *s && nsizes < MAX_SIZES; s = strchr(s, ',')) {
        if (*s == ',')
            s++;
        sizes[nsizes] = (size_t)parse_size(s);
        if (!sizes[nsizes])
            die("-s: a size", EINVAL);
        maxsize = sizes[nsizes] > maxsize ? sizes[nsizes] : maxsize;
        nsizes++;
    }
    for (const char *s = modes_arg; s && *s && nmodes < NMODES; s = strchr(s, ',')) {
        int found = -1;

        if (*s == ',')
            s++;
        for (int m = 0; m < NMODES; m++)
            if (!strncmp(s, mode_name[m], strlen(mode_name[m])) &&
                (s[strlen(mode_name[m])] == ',' || s[strlen(mode_name[m])] == '\0'))
                found = m;
        if (found < 0)
            die("-m: send, zc or zcf", EINVAL);
        modes[nmodes++] = found;
    }
    if (!nsizes || !nmodes || rounds < 1 || rounds > MAX_ROUNDS || !pool || !total)
        die("send: arguments", EINVAL);
    rc = io_uring_queue_init_params(64, &ring, &p);
    if (rc < 0)
        die("io_uring_queue_init (Linux 6.1 or later)", -rc);
    if (pool < 8 * maxsize)
        pool = 8 * maxsize;
    bufs = mmap(NULL, (size_t)pool, PROT_READ | PROT_WRITE,
                MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (bufs == MAP_FAILED)
        die("mmap", errno);
    memset(bufs, 'z', (size_t)pool); /* pages present before any stream */
    printf("# %llu bytes per stream, %llu bytes of buffers, one send in flight; to %s:%d\n",
           total, pool, addr, port);
    printf("%-5s %8s %5s %9s %11s %9s %9s\n", "mode", "size", "round", "GiB/s", "CPU s/GiB",
           "notifs", "copied");
    for (int rd = 0; rd < rounds; rd++)
        for (int si = 0; si < nsizes; si++)
            for (int k = 0; k < nmodes; k++) {
                int m = modes[k];
                struct result *x = &r[rd][si][m];

                nbufs = pool / sizes[si] > MAX_BUFS ? MAX_BUFS : (int)(pool / sizes[si]);
                if (m == M_ZCF) { /* registered as nbufs buffers of this size */
                    for (int b = 0; b < nbufs; b++)
                        iov[b] = (struct iovec){bufs + (size_t)b * sizes[si], sizes[si]};
                    if ((rc = io_uring_register_buffers(&ring, iov, (unsigned)nbufs)) < 0)
                        die("io_uring_register_buffers", -rc);
                }
                stream(&ring, &sin, m, bufs, nbufs, sizes[si], total, x);
                if (m == M_ZCF)
                    io_uring_unregister_buffers(&ring);
                printf("%-5s %8zu %5d %9.3f %11.3f %9lu %9lu\n", mode_name[m], sizes[si], rd + 1,
                       total / gib / x->wall, x->cpu / (total / gib), x->notifs, x->copied);
                fflush(stdout);
                if (stop)
                    return 1;
            }
    printf("\n# medians over %d rounds; ratios: medians of the per-round ratios to send\n",
           rounds);
    printf("%8s %-5s %9s %11s %9s %11s %8s\n", "size", "mode", "GiB/s", "CPU s/GiB", "x rate",
           "x CPU/GiB", "copied");
    for (int si = 0; si < nsizes; si++)
        for (int k = 0; k < nmodes; k++) {
            int m = modes[k];
            double rate[MAX_ROUNDS], cpu[MAX_ROUNDS], rr[MAX_ROUNDS], rc_[MAX_ROUNDS];
            unsigned long notifs = 0, copied = 0;
            int have_send = 0;

            for (int j = 0; j < nmodes; j++)
                have_send |= modes[j] == M_SEND;
            for (int rd = 0; rd < rounds; rd++) {
                struct result *x = &r[rd][si][m], *s = &r[rd][si][M_SEND];

                rate[rd] = total / gib / x->wall;
                cpu[rd] = x->cpu / (total / gib);
                rr[rd] = have_send ? s->wall / x->wall : 0;
                rc_[rd] = have_send && s->cpu > 0 ? x->cpu / s->cpu : 0;
                notifs += x->notifs;
                copied += x->copied;
            }
            printf("%8zu %-5s %9.3f %11.3f %9.2f %11.2f %7.0f%%\n", sizes[si], mode_name[m],
                   median(rate, rounds), median(cpu, rounds), median(rr, rounds),
                   median(rc_, rounds), notifs ? 100.0 * copied / notifs : 0.0);
        }
    io_uring_queue_exit(&ring);
    munmap(bufs, (size_t)pool);
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *sizes = "4K,16K,64K,256K,1M", *modes = "send,zc,zcf";
    unsigned long long total = 1ULL << 30;
    unsigned long long pool = 16ULL << 20;
    int port = 0, lifetime = 900, rounds = 3, opt, is_recv;
    struct sigaction sa;

    if (argc < 2 || (strcmp(argv[1], "recv") && strcmp(argv[1], "send")))
        goto usage;
    is_recv = !strcmp(argv[1], "recv");
    optind = 2;
    while ((opt = getopt(argc, argv, "a:p:l:n:s:m:r:B:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'l': lifetime = atoi(optarg); break;
        case 'n': total = parse_size(optarg); break;
        case 's': sizes = optarg; break;
        case 'm': modes = optarg; break;
        case 'r': rounds = atoi(optarg); break;
        case 'B': pool = parse_size(optarg); break;
        default: goto usage;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return is_recv ? run_recv(addr, port, lifetime)
                   : run_send(addr, port, total, sizes, modes, rounds, pool);
usage:
    fprintf(stderr, "usage: send_zc recv [-a ADDR] [-p PORT] [-l SECONDS]\n"
                    "       send_zc send [-a ADDR] -p PORT [-n BYTES] [-s SIZES] [-m MODES] "
                    "[-r ROUNDS] [-B POOL]\n");
    return 2;
}
