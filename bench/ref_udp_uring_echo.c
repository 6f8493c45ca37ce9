/*
 * ref_udp_uring_echo.c - the io_uring reference for UDP in bench/run.sh (server
 * "ref-udp-uring"), as ref_udp_echo.c is the recvmmsg/sendmmsg one: a minimal UDP echo
 * server built the way io_uring is meant to be used for datagrams, to measure whether the
 * best io_uring design beats recvmmsg/sendmmsg at all before wharf builds it.
 *
 *   ref_udp_uring_echo [-a ADDR] [-p PORT] [-n PORTS] [-t THREADS] [-l SECONDS]
 *
 * Options and lifetime are ref_main.h's; it prints "listening on udp ADDR:PORT" per port.
 * Each thread has its own ring (IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN) and its own
 * SO_REUSEPORT socket per port (the kernel spreads flows over the threads), and does:
 *   - one multishot IORING_OP_RECVMSG per socket into a provided buffer ring (NBUFS buffers
 *     of BUFSZ, each a struct io_uring_recvmsg_out, the source address and a datagram of up
 *     to 65,536 bytes: every datagram passes whole; pages are touched only where written);
 *   - one IORING_OP_SENDMSG per datagram, to its source, from the buffer it arrived in (no
 *     copy); the buffer goes back to the ring when the send completes;
 *   - everything the turn queued submitted by the one io_uring_enter that also waits for the
 *     next completions; completions read from the ring in memory.
 * When the buffer ring runs dry (every buffer waiting for its send), the multishot receive
 * ends with ENOBUFS; it is re-armed at the end of the first turn in which buffers have come
 * back, so the socket's receive queue holds the datagrams meanwhile (and drops what exceeds
 * it, as any UDP server under overload). On exit it prints its counters on stderr: datagrams
 * echoed, dropped as truncated (cannot happen with BUFSZ), send errors, and the times the
 * ring ran dry (ENOBUFS) and a receive was re-armed.
 *
 * Build: cc -O2 -pthread -o ref_udp_uring_echo ref_udp_uring_echo.c -luring
 *        (bench/run.sh does this; -DNBUFS=4 shows the ENOBUFS path under load)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
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

#ifndef NBUFS
#define NBUFS 256 /* a power of two; 4 flows x 16 in flight (run.sh's udp) use 64 at most */
#endif
/* header, the source address (IPv4) and the largest datagram */
#define BUFSZ (sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_in) + 65536)
#define BGID 1

/* user_data: the kind in the top byte, then a buffer id and a socket. */
enum { OP_RECV = 1, OP_SEND };
#define UD(op, bid, fd) ((uint64_t)(op) << 56 | (uint64_t)(uint16_t)(bid) << 32 | (uint32_t)(fd))
#define UD_OP(u) ((int)((u) >> 56))
#define UD_BID(u) ((unsigned)(((u) >> 32) & 0xffff))
#define UD_FD(u) ((int)(uint32_t)(u))

/* What a send needs until it completes: its header and vector, one per buffer. */
struct reply {
    struct msghdr msg;
    struct iovec iov;
};

struct server_thread {
    struct ref_thread rt; /* first (ref_main.h): its thread and sockets */
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    char *bufs;
    struct msghdr rmsg;        /* the receive's template: the source address, no control */
    struct reply reply[NBUFS]; /* by buffer id */
    int armed[REF_MAX];        /* per socket: a multishot receive is in flight */
    unsigned free;             /* buffers in the ring */
    unsigned long echoed, truncated, send_errors, enobufs, rearmed;
};

static void die(const char *what, int err)
{
    fprintf(stderr, "ref_udp_uring_echo: %s: %s\n", what, strerror(err));
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

static char *buf_of(struct server_thread *t, unsigned bid)
{
    return t->bufs + (size_t)bid * BUFSZ;
}

static void arm_recv(struct server_thread *t, int k)
{
    struct io_uring_sqe *sqe = sqe_get(&t->ring);

    io_uring_prep_recvmsg_multishot(sqe, t->rt.lfd[k], &t->rmsg, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, 0, k));
    t->armed[k] = 1;
}

static void give_back(struct server_thread *t, unsigned bid)
{
    io_uring_buf_ring_add(t->br, buf_of(t, bid), BUFSZ, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(t->br, 1);
    t->free++;
}

/* A datagram in buffer bid (res bytes of it used): sent back to its source from there. */
static void on_datagram(struct server_thread *t, int k, unsigned bid, int res)
{
    struct io_uring_recvmsg_out *out = io_uring_recvmsg_validate(buf_of(t, bid), res, &t->rmsg);
    struct reply *r = &t->reply[bid];
    struct io_uring_sqe *sqe;

    if (!out || (out->flags & MSG_TRUNC)) {
        t->truncated++;
        give_back(t, bid);
        return;
    }
    r->iov.iov_base = io_uring_recvmsg_payload(out, &t->rmsg);
    r->iov.iov_len = io_uring_recvmsg_payload_length(out, res, &t->rmsg);
    r->msg = (struct msghdr){.msg_name = io_uring_recvmsg_name(out),
                             .msg_namelen = out->namelen < t->rmsg.msg_namelen
                                                ? out->namelen
                                                : t->rmsg.msg_namelen,
                             .msg_iov = &r->iov,
                             .msg_iovlen = 1};
    sqe = sqe_get(&t->ring);
    io_uring_prep_sendmsg(sqe, t->rt.lfd[k], &r->msg, 0);
    io_uring_sqe_set_data64(sqe, UD(OP_SEND, bid, k));
}

static void on_cqe(struct server_thread *t, uint64_t ud, int res, unsigned flags)
{
    int k = UD_FD(ud);

    switch (UD_OP(ud)) {
    case OP_RECV:
        if (flags & IORING_CQE_F_BUFFER) {
            t->free--;
            if (res > 0)
                on_datagram(t, k, flags >> IORING_CQE_BUFFER_SHIFT, res);
            else
                give_back(t, flags >> IORING_CQE_BUFFER_SHIFT);
        }
        if (res == -ENOBUFS)
            t->enobufs++;
        else if (res < 0 && res != -ECANCELED)
            fprintf(stderr, "ref_udp_uring_echo: recvmsg: %s\n", strerror(-res));
        if (!(flags & IORING_CQE_F_MORE))
            t->armed[k] = 0; /* re-armed at the end of the turn, once a buffer is free */
        break;
    case OP_SEND:
        if (res >= 0)
            t->echoed++;
        else
            t->send_errors++; /* dropped, like any UDP server */
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

    if (rc < 0) /* multishot recvmsg needs 6.0, DEFER_TASKRUN 6.1: no fallback */
        die("io_uring_queue_init (Linux 6.1 or later)", -rc);
    t->br = mmap(NULL, NBUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    t->bufs = mmap(NULL, (size_t)NBUFS * BUFSZ, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (t->br == MAP_FAILED || t->bufs == MAP_FAILED)
        die("buffers", ENOMEM);
    io_uring_buf_ring_init(t->br);
    struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)t->br, .ring_entries = NBUFS,
                                   .bgid = BGID};
    if ((rc = io_uring_register_buf_ring(&t->ring, &reg, 0)) < 0)
        die("io_uring_register_buf_ring", -rc);
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(t->br, buf_of(t, i), BUFSZ, (unsigned short)i,
                              io_uring_buf_ring_mask(NBUFS), (int)i);
    io_uring_buf_ring_advance(t->br, NBUFS);
    t->free = NBUFS;
    t->rmsg.msg_namelen = sizeof(struct sockaddr_in);
    for (int k = 0; k < t->rt.nl; k++)
        arm_recv(t, k);
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
        for (int k = 0; k < t->rt.nl; k++)
            if (!t->armed[k] && t->free > 0) {
                arm_recv(t, k);
                t->rearmed++;
            }
    }
    fprintf(stderr,
            "ref_udp_uring_echo: echoed %lu, truncated %lu, send errors %lu, ring dry (ENOBUFS) "
            "%lu, receives re-armed %lu\n",
            t->echoed, t->truncated, t->send_errors, t->enobufs, t->rearmed);
    return NULL;
}

int main(int argc, char **argv)
{
    static struct server_thread threads[REF_MAX];

    return ref_main(argc, argv, "ref_udp_uring_echo", SOCK_DGRAM, 0, threads, sizeof threads[0],
                    serve);
}
