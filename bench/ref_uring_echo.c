/*
 * ref_uring_echo.c - the io_uring reference for bench/run.sh, as ref_epoll_echo.c is the epoll
 * one: a minimal TCP echo server built the way io_uring is meant to be used for networking,
 * so that wharf's overhead over the best io_uring design is measured, not only its gain over
 * epoll.
 *
 *   ref_uring_echo [-a ADDR] [-p PORT] [-n LISTENERS] [-t THREADS] [-l SECONDS]
 *
 * Options, the "listening on tcp ADDR:PORT" lines and the lifetime are ref_epoll_echo's. Each
 * thread has its own ring (IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN where the kernel has
 * them, 6.1+) and its own SO_REUSEPORT listening socket per port, and does:
 *   - one multishot accept per listening socket (one submission accepts every connection);
 *   - one multishot recv per connection into a provided buffer ring (NBUFS buffers of BUFSZ
 *     shared by all its connections: no buffer is tied to an idle connection);
 *   - one send per received buffer, from that buffer (no copy), MSG_WAITALL so a short send
 *     is finished by the kernel; the buffer goes back to the ring when the send completes;
 *   - everything the turn queued submitted by the one io_uring_enter that also waits for the
 *     next completions; completions read from the ring in memory.
 * When the buffer ring runs dry a multishot recv ends with ENOBUFS and is re-armed once
 * sends have given buffers back: backpressure, nothing lost. Sends of one connection are not
 * ordered against each other if one of them has to wait for socket space: right for the
 * request/response echo it is measured with (64 B ping-pong), not a general relay.
 *
 * Build: cc -O2 -pthread -o ref_uring_echo ref_uring_echo.c -luring   (bench/run.sh does this)
 * With -DREF_DIRECT_SEND each reply is a send(2) made at once (a submission only for what
 * the socket did not take), as wharf's io_uring backend sends today: the measure of what
 * sends as submissions are worth (docs/performance.md, "Sends as submissions").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ref_main.h"

#define NBUFS 4096 /* a power of two */
#define BUFSZ 4096
#define BGID 1

/* user_data: the kind in the top byte, then a buffer id and a descriptor. */
enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CLOSE };
#define UD(op, bid, fd) ((uint64_t)(op) << 56 | (uint64_t)(uint16_t)(bid) << 32 | (uint32_t)(fd))
#define UD_OP(u) ((int)((u) >> 56))
#define UD_BID(u) ((unsigned)(((u) >> 32) & 0xffff))
#define UD_FD(u) ((int)(uint32_t)(u))


struct server_thread {
    struct ref_thread rt; /* first (ref_main.h): its thread and listening sockets */
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    char *bufs;
};

static void die(const char *what, int err)
{
    fprintf(stderr, "ref_uring_echo: %s: %s\n", what, strerror(err));
    exit(1);
}

static struct io_uring_sqe *sqe_get(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

    if (!sqe) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
        if (!sqe)
            die("io_uring_get_sqe", EBUSY);
    }
    return sqe;
}

static void arm_accept(struct server_thread *t, int lfd)
{
    struct io_uring_sqe *sqe = sqe_get(&t->ring);

    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, 0, lfd));
}

static void arm_recv(struct server_thread *t, int fd)
{
    struct io_uring_sqe *sqe = sqe_get(&t->ring);

    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, 0, fd));
}

static void give_back(struct server_thread *t, unsigned bid)
{
    io_uring_buf_ring_add(t->br, t->bufs + (size_t)bid * BUFSZ, BUFSZ, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(t->br, 1);
}

static void close_conn(struct server_thread *t, int fd)
{
    struct io_uring_sqe *sqe = sqe_get(&t->ring);

    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, UD(OP_CLOSE, 0, fd));
}

static void on_cqe(struct server_thread *t, uint64_t ud, int res, unsigned flags)
{
    int fd = UD_FD(ud), one = 1;

    switch (UD_OP(ud)) {
    case OP_ACCEPT:
        if (res >= 0) {
            (void)setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            arm_recv(t, res);
        } else if (res == -EMFILE || res == -ENFILE) {
            fprintf(stderr, "ref_uring_echo: accept: %s\n", strerror(-res));
        }
        if (!(flags & IORING_CQE_F_MORE))
            arm_accept(t, fd);
        break;
    case OP_RECV:
        if (res > 0) {
            unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
            char *p = t->bufs + (size_t)bid * BUFSZ;
            ssize_t done = 0;
#ifdef REF_DIRECT_SEND
            done = send(fd, p, (size_t)res, MSG_NOSIGNAL | MSG_DONTWAIT);
            done = done < 0 ? 0 : done;
#endif
            if (done == res) {
                give_back(t, bid);
            } else {
                struct io_uring_sqe *sqe = sqe_get(&t->ring);

                io_uring_prep_send(sqe, fd, p + done, (size_t)(res - done),
                                   MSG_NOSIGNAL | MSG_WAITALL);
                io_uring_sqe_set_data64(sqe, UD(OP_SEND, bid, fd));
            }
            if (!(flags & IORING_CQE_F_MORE))
                arm_recv(t, fd);
        } else if (res == -ENOBUFS) {
            arm_recv(t, fd); /* the sends in flight give buffers back first */
        } else if (!(flags & IORING_CQE_F_MORE)) {
            if (flags & IORING_CQE_F_BUFFER)
                give_back(t, flags >> IORING_CQE_BUFFER_SHIFT);
            close_conn(t, fd); /* EOF or an error */
        }
        break;
    case OP_SEND:
        give_back(t, UD_BID(ud));
        break;
    default:
        break;
    }
}

static void *serve(void *arg)
{
    struct server_thread *t = arg;
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                         IORING_SETUP_CQSIZE,
                                .cq_entries = 4 * NBUFS};
    int rc = io_uring_queue_init_params(NBUFS, &t->ring, &p);

    if (rc == -EINVAL) { /* before 6.1 */
        p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE, .cq_entries = 4 * NBUFS};
        rc = io_uring_queue_init_params(NBUFS, &t->ring, &p);
    }
    if (rc < 0)
        die("io_uring_queue_init", -rc);
    t->br = mmap(NULL, NBUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    t->bufs = malloc((size_t)NBUFS * BUFSZ);
    if (t->br == MAP_FAILED || !t->bufs)
        die("buffers", ENOMEM);
    io_uring_buf_ring_init(t->br);
    struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)t->br, .ring_entries = NBUFS,
                                   .bgid = BGID};
    if ((rc = io_uring_register_buf_ring(&t->ring, &reg, 0)) < 0)
        die("io_uring_register_buf_ring", -rc);
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(t->br, t->bufs + (size_t)i * BUFSZ, BUFSZ, (unsigned short)i,
                              io_uring_buf_ring_mask(NBUFS), (int)i);
    io_uring_buf_ring_advance(t->br, NBUFS);
    for (int i = 0; i < t->rt.nl; i++)
        arm_accept(t, t->rt.lfd[i]);
    while (!stop) {
        struct __kernel_timespec ts = {.tv_sec = 1};
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;

        rc = io_uring_submit_and_wait_timeout(&t->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR)
            die("io_uring_submit_and_wait_timeout", -rc);
        if (time(NULL) >= deadline) /* vDSO: no system call */
            break;
        io_uring_for_each_cqe(&t->ring, head, cqe) {
            on_cqe(t, cqe->user_data, cqe->res, cqe->flags);
            seen++;
        }
        io_uring_cq_advance(&t->ring, seen);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static struct server_thread threads[REF_MAX];

    return ref_main(argc, argv, "ref_uring_echo", SOCK_STREAM, 0, threads, sizeof threads[0], serve);
}
