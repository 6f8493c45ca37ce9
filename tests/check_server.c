/*
 * check_server.c - integration suite for the server as a whole: graceful
 * shutdown, admission (max_connections), bounded memory against a client
 * that never reads, the max_input limit against a hostile client, idle
 * connection memory, start-up errors that name the file and JSON path, a
 * worker thread that cannot start, a reload that times out and a ping
 * that times out.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "activation.h"
#include "check_main.h"
#include "modules/mod_probe.h"
#include "rendezvous.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#else
#define UNDER_SANITIZER 0
#endif

static bool all_open(void *arg)
{
    void **a = arg;
    return tserver_stats(a[0], 0).open == (uintptr_t)a[1];
}

START_TEST(graceful_shutdown_closes_lingering_clients_after_timeout)
{
    /* "hold": the handler keeps every byte unconsumed, so each connection
     * has work in flight and is given the whole shutdown_timeout_ms. */
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"shutdown_timeout_ms\": 300, "
        "\"listeners\": [{\"port\": 0, \"handler\": \"mod_probe\", "
        "\"options\": {\"hold\": true}}]}");
    int fds[10];
    for (int i = 0; i < 10; i++) {
        fds[i] = tcp_connect("127.0.0.1", tserver_port(t, 0));
        send_all(fds[i], "pending", 7);
    }
    void *arg[2] = {t, (void *)(uintptr_t)10};
    ck_assert(wait_for(all_open, arg, 3000));
    struct probe_counts before, after;
    usleep(100000); /* let the bytes reach the handler */
    probe_get(&before);
    uint64_t start = now_ms();
    server_stop(t->srv);
    uint64_t took = now_ms() - start;
    ck_assert_msg(took >= 280 && took < 2000, "stop took %llu ms", (unsigned long long)took);
    for (int i = 0; i < 10; i++) {
        ck_assert(wait_closed(fds[i], 1000));
        close(fds[i]);
    }
    probe_get(&after);
    ck_assert_uint_eq(after.closes[WHARF_CLOSE_SHUTDOWN] - before.closes[WHARF_CLOSE_SHUTDOWN], 10);
    ck_assert_uint_eq(after.finis - before.finis, 1);
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_SHUTDOWN], 10);
    tserver_stop(t);
}
END_TEST

START_TEST(shutdown_closes_idle_keepalive_clients_at_once)
{
    /* Five keep-alive clients that finished their exchange hold nothing in
     * flight: a stop closes them at once instead of waiting the 60 s
     * shutdown_timeout_ms (well under it even at valgrind's pace). */
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"shutdown_timeout_ms\": 60000, "
        "\"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}");
    int fds[5];
    unsigned char data[64];
    fill_pattern(data, sizeof data, 5);
    for (int i = 0; i < 5; i++) {
        fds[i] = tcp_connect("127.0.0.1", tserver_port(t, 0));
        ck_assert_uint_eq(echo_roundtrip(fds[i], data, sizeof data, 2000), sizeof data);
    }
    uint64_t start = now_ms();
    server_stop(t->srv);
    uint64_t took = now_ms() - start;
    ck_assert_msg(took < 15000, "stop took %llu ms", (unsigned long long)took);
    for (int i = 0; i < 5; i++) {
        ck_assert(wait_closed(fds[i], 1000));
        close(fds[i]);
    }
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_SHUTDOWN], 5);
    tserver_stop(t);
}
END_TEST

START_TEST(shutdown_without_connections_is_quick)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"shutdown_timeout_ms\": 5000, "
        "\"listeners\": [{\"port\": 0, \"handler\": \"echo\"}, "
        "{\"protocol\": \"udp\", \"port\": 0, \"handler\": \"udp_echo\"}]}");
    uint64_t start = now_ms();
    server_stop(t->srv);
    ck_assert_uint_lt(now_ms() - start, 500);
    tserver_stop(t);
}
END_TEST

struct closer {
    int fd;
    int delay_ms;
};

static void *close_later(void *arg)
{
    struct closer *c = arg;
    usleep((useconds_t)c->delay_ms * 1000);
    close(c->fd);
    return NULL;
}

START_TEST(shutdown_waits_for_connections_that_finish)
{
    /* A connection with input in flight (the handler holds it) is waited
     * for; it ends by itself when the client closes. */
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"shutdown_timeout_ms\": 5000, "
        "\"listeners\": [{\"port\": 0, \"handler\": \"mod_probe\", "
        "\"options\": {\"hold\": true}}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    send_all(fd, "in flight", 9);
    void *arg[2] = {t, (void *)(uintptr_t)1};
    ck_assert(wait_for(all_open, arg, 3000));
    usleep(50000); /* let the bytes reach the handler */
    struct closer c = {fd, 200};
    pthread_t th;
    pthread_create(&th, NULL, close_later, &c);
    uint64_t start = now_ms();
    server_stop(t->srv);
    uint64_t took = now_ms() - start;
    pthread_join(th, NULL);
    ck_assert_msg(took >= 150 && took < 2000, "stop took %llu ms", (unsigned long long)took);
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.closed[WHARF_CLOSE_EOF], 1);
    ck_assert_uint_eq(st.closed[WHARF_CLOSE_SHUTDOWN], 0);
    tserver_stop(t);
}
END_TEST

/* Sends from fd (non-blocking) until the server stops taking data for
 * 300 ms (bounded: 8 MiB, 5 s).  Returns the bytes sent. */
static size_t stuff(int fd)
{
    static unsigned char data[65536];
    size_t sent = 0;
    uint64_t start = now_ms(), last = now_ms();
    while (sent < (8u << 20) && now_ms() - last < 300 && now_ms() - start < 5000) {
        ssize_t w = send(fd, data, sizeof data, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            sent += (size_t)w;
            last = now_ms();
        } else if (w < 0 && errno != EAGAIN) {
            break; /* closed by the server */
        } else {
            usleep(5000);
        }
    }
    return sent;
}

/* Whether the server's buffered output is back near its 1 MiB budget. */
static bool near_budget(void *arg)
{
    return tserver_stats(arg, 0).output_buffered <= 1048576 + 4 * 65536;
}

START_TEST(output_budget_closes_the_worst_offenders_only)
{
    /* 1 MiB for the whole server; 24 clients that never read would hold
     * about 24 x 128 KiB.  The stalled holders are closed ("limit"), the
     * longest waiting first, once stalled for 100 ms: the total comes back
     * near the budget; a client that reads is not touched. */
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"output_budget\": 1048576, \"listeners\": [{\"port\": 0, "
        "\"handler\": \"echo\", \"timeouts\": {\"idle_ms\": 0, \"write_ms\": 0}}]}");
    int port = tserver_port(t, 0);
    int good = tcp_connect("127.0.0.1", port);
    int fds[24];
    for (int i = 0; i < 24; i++) {
        fds[i] = tcp_connect("127.0.0.1", port);
        int small = 4096;
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        stuff(fds[i]);
    }
    bool near = wait_for(near_budget, t, 3000);
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_msg(near, "server holds %llu bytes", (unsigned long long)st.output_buffered);
    ck_assert_uint_ge(st.closed[WHARF_CLOSE_LIMIT], 1);
    unsigned char msg[100], back[100];
    fill_pattern(msg, sizeof msg, 3);
    ck_assert_uint_eq(echo_roundtrip(good, msg, sizeof msg, 3000), sizeof msg);
    (void)back;
    for (int i = 0; i < 24; i++)
        close(fds[i]);
    close(good);
    tserver_stop(t);
}
END_TEST

/* Many clients that send and never read: their output stops at the high
 * watermark, then their input is left unread (on io_uring each may hold
 * receive buffers of the worker's ring, and together they can hold more
 * than the ring has: the ring runs dry and the worker reads by polls).  A
 * client that reads is still answered at once, byte for byte, and when the
 * others read at last each gets back every byte it sent, in order. */
START_TEST(many_clients_that_never_read_lose_nothing_and_starve_no_one)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"echo\", "
        "\"timeouts\": {\"idle_ms\": 0, \"write_ms\": 0}, "
        "\"send_buffer\": 65536, \"recv_buffer\": 131072, "
        "\"buffers\": {\"high_watermark\": 65536, \"low_watermark\": 16384}}]}");
    int port = tserver_port(t, 0);
    enum { N = 120, EACH = 1 << 20 };
    static unsigned char data[EACH], back[EACH];
    fill_pattern(data, EACH, 5);
    static int fds[N];
    static size_t sent[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect("127.0.0.1", port);
        ck_assert_int_ge(fds[i], 0);
        /* Fixed socket buffers on both sides, so that the server pauses
         * well before a client's 1 MiB is out.  (No small SO_RCVBUF: a
         * receive window far below loopback's 64 KiB MSS opens again only
         * by the sender's zero-window probes, whose backoff would stall
         * the read-back for seconds.) */
        int snd = 65536;
        setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
        sent[i] = 0;
        /* What the sockets take now, and once more after a moment. */
        for (int round = 0; round < 2 && sent[i] < EACH; round++) {
            ssize_t w;
            while (sent[i] < EACH &&
                   (w = send(fds[i], data + sent[i], EACH - sent[i],
                             MSG_NOSIGNAL | MSG_DONTWAIT)) > 0)
                sent[i] += (size_t)w;
            usleep(2000);
        }
        ck_assert_uint_gt(sent[i], 65536); /* past the watermark */
        ck_assert_uint_lt(sent[i], EACH);  /* and the server paused */
    }
    int good = tcp_connect("127.0.0.1", port);
    uint64_t start = now_ms();
    for (int k = 0; k < 200; k++) {
        unsigned char msg[3000];
        size_t len = 1 + (size_t)k * 131 % sizeof msg;
        fill_pattern(msg, len, 100 + (unsigned)k);
        ck_assert_uint_eq(echo_roundtrip(good, msg, len, 3000), len);
    }
    ck_assert_msg(now_ms() - start < 5000, "200 echoes took %llu ms",
                  (unsigned long long)(now_ms() - start));
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(recv_exact(fds[i], back, sent[i], 10000), sent[i]);
        ck_assert_msg(memcmp(back, data, sent[i]) == 0, "client %d: bytes differ", i);
        close(fds[i]);
    }
    close(good);
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.closed[WHARF_CLOSE_LIMIT] + st.closed[WHARF_CLOSE_ERROR], 0);
    tserver_stop(t);
}
END_TEST

START_TEST(client_that_never_reads_holds_about_the_watermark)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"echo\", "
        "\"timeouts\": {\"idle_ms\": 0, \"write_ms\": 0}, "
        "\"buffers\": {\"high_watermark\": 65536, \"low_watermark\": 16384}}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    size_t cap = 32u << 20, sent = 0;
    unsigned char *data = malloc(cap);
    fill_pattern(data, cap, 9);
    /* Send until the server stops taking data for 500 ms (bounded: 32 MiB, 10 s). */
    uint64_t start = now_ms(), last_progress = now_ms();
    while (sent < cap && now_ms() - last_progress < 500 && now_ms() - start < 10000) {
        ssize_t w = send(fd, data + sent, cap - sent < 65536 ? cap - sent : 65536, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            last_progress = now_ms();
        } else {
            usleep(10 * 1000);
        }
    }
    ck_assert_msg(sent < cap, "server kept reading %zu bytes from a client that never reads", sent);
    struct wharf_listener_stats st = tserver_stats(t, 0);
    /* Output held: the high watermark plus at most one read of 64 KiB,
     * rounded up to the buffer's power-of-two allocation. */
    ck_assert_msg(st.output_buffered <= 4 * 65536, "server holds %llu bytes of output",
                  (unsigned long long)st.output_buffered);
    ck_assert_uint_gt(st.output_buffered, 0);
    /* Now read everything back: nothing was lost. */
    fcntl(fd, F_SETFL, flags);
    unsigned char *back = malloc(sent);
    ck_assert_uint_eq(recv_exact(fd, back, sent, 10000), sent);
    ck_assert(memcmp(back, data, sent) == 0);
    free(back);
    free(data);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(max_input_cuts_off_hostile_client_only)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": ["
        "{\"port\": 0, \"handler\": \"mod_probe\", \"options\": {\"hold\": true}, "
        " \"buffers\": {\"max_input\": 4096}}, "
        "{\"port\": 0, \"handler\": \"echo\"}]}");
    int hostile = tcp_connect("127.0.0.1", tserver_port(t, 0));
    int good = tcp_connect("127.0.0.1", tserver_port(t, 1));
    unsigned char junk[20000];
    fill_pattern(junk, sizeof junk, 4);
    send(hostile, junk, sizeof junk, MSG_NOSIGNAL);
    ck_assert(wait_closed(hostile, 3000));
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_LIMIT], 1);
    unsigned char data[1000];
    fill_pattern(data, sizeof data, 5);
    echo_roundtrip(good, data, sizeof data, 3000);
    close(hostile);
    close(good);
    tserver_stop(t);
}
END_TEST

static bool sees_echo(int fd, int timeout_ms)
{
    char b;
    send_all(fd, "q", 1);
    return recv_exact(fd, &b, 1, timeout_ms) == 1;
}

/* Opens n connections to port, each served (its byte echoed). */
static void connect_served(int port, int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = tcp_connect("127.0.0.1", port);
        ck_assert(sees_echo(fds[i], 2000));
    }
}

START_TEST(max_connections_pauses_accepting_until_room)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"max_connections\": 3, \"evict_idle_ms\": 0, "
        "\"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}");
    int port = tserver_port(t, 0);
    int fds[3];
    connect_served(port, fds, 3);
    /* The 4th completes the TCP handshake in the kernel backlog... */
    int extra = tcp_connect("127.0.0.1", port);
    /* ...but is not served while 3 are open. */
    ck_assert(!sees_echo(extra, 300));
    ck_assert_uint_eq(tserver_stats(t, 0).accepted, 3);
    close(fds[0]);
    char b;
    ck_assert_uint_eq(recv_exact(extra, &b, 1, 3000), 1); /* served once there is room */
    ck_assert_uint_eq(tserver_stats(t, 0).accepted, 4);
    close(extra);
    close(fds[1]);
    close(fds[2]);
    tserver_stop(t);
}
END_TEST

/* At max_connections a waiting connection evicts the one that made no
 * progress for longest (past evict_idle_ms): the idle one, not the two that
 * keep pinging; while all made progress within evict_idle_ms, it waits. */
START_TEST(max_connections_evicts_the_longest_idle_connection)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"max_connections\": 3, \"evict_idle_ms\": 400, "
        "\"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}");
    int fds[3]; /* fds[0] goes idle, the other two keep pinging */
    connect_served(tserver_port(t, 0), fds, 3);
    int idle = fds[0], *busy = fds + 1;
    int port = tserver_port(t, 0);
    /* Everyone made progress just now: a newcomer waits. */
    int first = tcp_connect("127.0.0.1", port);
    ck_assert(!sees_echo(first, 150));
    /* The busy two keep pinging past evict_idle_ms; the idle one does not. */
    uint64_t until = now_ms() + 1000;
    while (now_ms() < until) {
        for (int i = 0; i < 2; i++)
            ck_assert(sees_echo(busy[i], 2000));
        usleep(50 * 1000);
    }
    /* The newcomer got the idle one's place (its byte is echoed now). */
    char b;
    ck_assert_uint_eq(recv_exact(first, &b, 1, 3000), 1);
    ck_assert(wait_closed(idle, 3000));
    for (int i = 0; i < 2; i++)
        ck_assert(sees_echo(busy[i], 2000));
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.closed[WHARF_CLOSE_EVICTED], 1);
    ck_assert_uint_eq(st.accepted, 4);
    ck_assert_str_eq(wharf_close_reason_name(WHARF_CLOSE_EVICTED), "evicted");
    close(first);
    close(idle);
    close(busy[0]);
    close(busy[1]);
    tserver_stop(t);
}
END_TEST

/* Reaching max_connections evicts nothing while no connection waits, even
 * with the others idle past evict_idle_ms (the last accept fills the
 * server in the middle of the acceptor's batch). */
START_TEST(max_connections_reached_evicts_nobody_while_none_waits)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"max_connections\": 3, \"evict_idle_ms\": 200, "
        "\"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}");
    int fds[3];
    connect_served(tserver_port(t, 0), fds, 2);
    usleep(400 * 1000); /* both idle past evict_idle_ms */
    connect_served(tserver_port(t, 0), fds + 2, 1);
    usleep(400 * 1000);
    for (int i = 0; i < 3; i++)
        ck_assert(sees_echo(fds[i], 2000));
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_EVICTED], 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    tserver_stop(t);
}
END_TEST

START_TEST(per_source_limit_refuses_extra_connections_only)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"max_connections_per_source\": 2, "
        "\"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}");
    int port = tserver_port(t, 0);
    int a = tcp_connect("127.0.0.1", port), b = tcp_connect("127.0.0.1", port);
    ck_assert(sees_echo(a, 2000));
    ck_assert(sees_echo(b, 2000));
    int c = tcp_connect("127.0.0.1", port); /* a third from the same address */
    ck_assert(wait_closed(c, 2000));
    ck_assert_uint_eq(tserver_stats(t, 0).rejected, 1);
    ck_assert(sees_echo(a, 2000)); /* the first two are unharmed */
    close(c);
    close(a);
    void *arg[2] = {t, (void *)(uintptr_t)1};
    ck_assert(wait_for(all_open, arg, 2000));
    int d = tcp_connect("127.0.0.1", port); /* room again */
    ck_assert(sees_echo(d, 2000));
    /* Another source address (127.0.0.2 is loopback too) has its own share. */
    int e = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    from.sin_addr.s_addr = htonl(0x7f000002);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((uint16_t)port);
    ck_assert_int_eq(bind(e, (struct sockaddr *)&from, sizeof from), 0);
    ck_assert_int_eq(connect(e, (struct sockaddr *)&to, sizeof to), 0);
    ck_assert(sees_echo(e, 2000));
    ck_assert_uint_eq(tserver_stats(t, 0).rejected, 1);
    close(e);
    close(b);
    close(d);
    tserver_stop(t);
}
END_TEST

#define IDLE_CONNS 1000

START_TEST(idle_connections_cost_under_1kib_each)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}");
    int port = tserver_port(t, 0);
    /* Warm up: one connection so per-worker buffers are already allocated. */
    int warm = tcp_connect("127.0.0.1", port);
    ck_assert(sees_echo(warm, 2000));
    struct mallinfo2 before = mallinfo2();
    static int fds[IDLE_CONNS];
    for (int i = 0; i < IDLE_CONNS; i++)
        fds[i] = tcp_connect("127.0.0.1", port);
    void *arg[2] = {t, (void *)(uintptr_t)(IDLE_CONNS + 1)};
    ck_assert(wait_for(all_open, arg, 5000));
    struct mallinfo2 after = mallinfo2();
    if (!UNDER_SANITIZER) {
        double per = ((double)after.uordblks - (double)before.uordblks) / IDLE_CONNS;
        fprintf(stderr, "idle connection: %.0f bytes of heap each\n", per);
        ck_assert_msg(per <= 1024, "idle connection holds %.0f bytes", per);
    }
    for (int i = 0; i < IDLE_CONNS; i++)
        close(fds[i]);
    close(warm);
    tserver_stop(t);
}
END_TEST

#define TEN_K 10000

static const char *self_path; /* argv[0]: the client re-executes this binary */

/* The client side of the 10,000-connection test, run as `check_server
 * --ten-k-client PORT` in a child process (exec'd, so it holds nothing of the
 * server) so neither side needs more than 10,000 descriptors.  Exit status 0
 * means every connection echoed its own message. */
static int ten_k_client(int port)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    static int fds[TEN_K];
    for (int i = 0; i < TEN_K; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        struct timeval tv = {10, 0};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0)
            return 10;
    }
    for (int i = 0; i < TEN_K; i++)
        if (send(fds[i], &i, sizeof i, MSG_NOSIGNAL) != sizeof i)
            return 11;
    for (int i = 0; i < TEN_K; i++) {
        int back = -1;
        if (recv(fds[i], &back, sizeof back, MSG_WAITALL) != sizeof back || back != i)
            return 12;
    }
    for (int i = 0; i < TEN_K; i++)
        close(fds[i]);
    return 0;
}

START_TEST(ten_thousand_connections_on_4_workers)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 4, \"listeners\": [{\"port\": 0, \"handler\": \"echo\", "
        "\"backlog\": 4096}]}");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < TEN_K + 100) {
        /* server_start raised the soft limit to the hard one; too low here. */
        fprintf(stderr, "open file limit %llu: 10,000-connection test not possible\n",
                (unsigned long long)rl.rlim_cur);
        ck_assert_uint_lt(rl.rlim_max, TEN_K + 100);
        tserver_stop(t);
        return;
    }
    int port = tserver_port(t, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        execl(self_path, self_path, "--ten-k-client", ps, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    uint64_t start = now_ms();
    while (waitpid(pid, &status, WNOHANG) == 0 && now_ms() - start < 50000)
        usleep(10 * 1000);
    if (now_ms() - start >= 50000) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ck_abort_msg("10,000-connection client did not finish in 50 s");
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client failed with %d",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.accepted, TEN_K);
    ck_assert_uint_eq(st.bytes_in, TEN_K * sizeof(int));
    tserver_stop(t);
}
END_TEST

static bool drained_once(void *arg)
{
    struct probe_counts *before = arg, now;
    probe_get(&now);
    return now.drains > before->drains;
}

START_TEST(on_drain_follows_a_slow_reader)
{
    /* A 4 MiB greeting through a small socket buffer passes the 64 KiB high
     * watermark; once the client reads, output falls below the low mark and
     * on_drain runs (once: the greeting is all the output there is). */
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"mod_probe\", "
        "\"send_buffer\": 65536, \"options\": {\"greeting_bytes\": 4194304}, "
        "\"buffers\": {\"high_watermark\": 65536, \"low_watermark\": 16384}}]}");
    struct probe_counts before, after;
    probe_get(&before);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    usleep(200 * 1000);
    probe_get(&after);
    ck_assert_uint_eq(after.drains, before.drains); /* nobody read yet */
    unsigned char *buf = malloc(4 << 20);
    ck_assert_uint_eq(recv_exact(fd, buf, 4 << 20, 10000), 4 << 20);
    for (size_t i = 0; i < 4 << 20; i++)
        ck_assert_int_eq(buf[i], 'g');
    ck_assert(wait_for(drained_once, &before, 3000));
    probe_get(&after);
    ck_assert_uint_eq(after.drains - before.drains, 1);
    free(buf);
    close(fd);
    tserver_stop(t);
}
END_TEST

static void expect_start_error(const char *json, const char *want1, const char *want2)
{
    char err[2048] = "";
    struct config *cfg = NULL;
    ck_assert_msg(config_load_string(json, "test.json", &cfg, err, sizeof err) == 0, "%s", err);
    struct wharf_server *srv = NULL;
    int rc = server_new(cfg, &srv, err, sizeof err);
    if (rc == 0) {
        rc = server_start(srv, err, sizeof err);
        server_free(srv);
    }
    ck_assert_int_lt(rc, 0); /* a negative errno (tests/check_api.c checks which) */
    ck_assert_msg(strstr(err, want1) != NULL, "error \"%s\" lacks \"%s\"", err, want1);
    ck_assert_msg(strstr(err, want2) != NULL, "error \"%s\" lacks \"%s\"", err, want2);
    /* server_new took the config over, even when it failed. */
}

static char escaped_line[512];
static _Atomic int raw_newline;

static void capture_log(void *arg, enum wharf_log_level level, const char *line)
{
    if (strchr(line, '\n') || strchr(line, '\r'))
        raw_newline = 1;
    if (strstr(line, "evil"))
        snprintf(escaped_line, sizeof escaped_line, "%s", line);
}

START_TEST(log_lines_escape_control_characters)
{
    wharf_log_set_callback(capture_log, NULL);
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"name\": \"evil\\n2026-11-30T00:00:00.000Z ERROR forged\", "
        "\"port\": 0, \"handler\": \"echo\"}]}");
    tserver_stop(t);
    wharf_log_set_callback(NULL, NULL);
    ck_assert(!raw_newline);
    ck_assert_msg(strstr(escaped_line, "[evil\\x0a2026-11-30T00:00:00.000Z ERROR forged]"), "%s",
                  escaped_line);
}
END_TEST

static char access_line[512];

static void capture_access(void *arg, enum wharf_log_level level, const char *line)
{
    if (strstr(line, "bytes out, closed ("))
        snprintf(access_line, sizeof access_line, "%s", line);
}

START_TEST(connection_log_line_on_close)
{
    wharf_log_set_callback(capture_access, NULL);
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"name\": \"acc\", "
                                      "\"port\": 0, \"handler\": \"echo\", \"access_log\": \"info\"}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    unsigned char msg[5] = "hello";
    ck_assert_uint_eq(echo_roundtrip(fd, msg, 5, 2000), 5);
    shutdown(fd, SHUT_WR);
    ck_assert(wait_closed(fd, 2000));
    close(fd);
    tserver_stop(t);
    wharf_log_set_callback(NULL, NULL);
    ck_assert_msg(strstr(access_line, "INFO  [acc w0 c") && strstr(access_line, "] from 127.0.0.1:") &&
                      strstr(access_line, " ms, 5 bytes in, 5 bytes out, closed (eof)"),
                  "%s", access_line);
}
END_TEST

START_TEST(ping_answers_while_running)
{
    struct tserver *t = tserver_start("{\"workers\": 3, \"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}");
    ck_assert_int_eq(wharf_server_ping(t->srv, 2000), 0);
    server_stop(t->srv);
    ck_assert_int_eq(wharf_server_ping(t->srv, 100), -ESRCH);
    tserver_stop(t);
}
END_TEST

/* ---- start-up, reload and ping that cannot hang or leak --------------------------- */

/*
 * In a child: lowers the limit on threads so that pthread_create fails with
 * EAGAIN for real (root is exempt from RLIMIT_NPROC, so root first becomes
 * "nobody": then 3 tasks are allowed, the main thread and two workers of
 * four; another user gets 1, so the first worker fails), starts a server of
 * four workers through the embedding API and writes what happened on fd:
 * "rc ms | err | threads left".
 */
/* The threads of this process. */
static int task_count(void)
{
    int threads = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));)
        threads += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return threads;
}

static void start_under_thread_limit(int fd)
{
    rlim_t n = 1;
    if (geteuid() == 0) {
        n = 3;
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(3);
    }
    struct rlimit rl = {n, n};
    if (setrlimit(RLIMIT_NPROC, &rl) < 0)
        _exit(4);
    int before = task_count(); /* (a sanitizer may have threads of its own) */
    char err[512] = "";
    wharf_config *cfg;
    if (wharf_config_from_json("{\"workers\": 4, \"listeners\": ["
                               "{\"name\": \"t\", \"port\": 0, \"handler\": \"echo\"},"
                               "{\"name\": \"u\", \"protocol\": \"udp\", \"port\": 0, "
                               "\"handler\": \"udp_echo\"}]}",
                               "limit.json", &cfg, err, sizeof err) < 0)
        _exit(5);
    wharf_server *srv = wharf_server_new();
    uint64_t start = now_ms();
    int rc = wharf_server_start(srv, cfg, err, sizeof err);
    uint64_t took = now_ms() - start;
    int port = wharf_server_port(srv, "t");
    wharf_server_free(srv);
    wharf_config_free(cfg);
    dprintf(fd, "%d %llu %d | %s | %d", rc, (unsigned long long)took, port, err,
            task_count() - before + 1);
    _exit(0);
}

START_TEST(start_fails_at_once_when_a_worker_thread_cannot_start)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        start_under_thread_limit(p[1]);
    }
    close(p[1]);
    char out[1024] = "";
    size_t n = 0;
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    uint64_t deadline = now_ms() + 10000;
    while (n < sizeof out - 1 && now_ms() < deadline && poll(&pfd, 1, 100) >= 0) {
        ssize_t k = pfd.revents ? read(p[0], out + n, sizeof out - 1 - n) : 0;
        if (pfd.revents && k <= 0)
            break;
        n += k > 0 ? (size_t)k : 0;
    }
    close(p[0]);
    int status;
    pid_t got = 0;
    for (int i = 0; i < 500 && (got = waitpid(pid, &status, WNOHANG)) == 0; i++)
        usleep(10000);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ck_abort_msg("start-up hung under a limit on threads");
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    int rc = 0, port = 0, threads = 0;
    unsigned long long took = 0;
    ck_assert_msg(sscanf(out, "%d %llu %d", &rc, &took, &port) == 3, "child wrote: %s", out);
    const char *bar = strrchr(out, '|');
    ck_assert_ptr_nonnull(bar);
    threads = atoi(bar + 1);
    ck_assert_msg(rc == -EAGAIN, "start did not fail with -EAGAIN under the limit: %s", out);
    ck_assert_msg(took < 1000, "start-up took %llu ms to fail", took);
    /* On io_uring (WHARF_IO, tests/check_backends.sh) the probe's own thread
     * may be the one refused: that reason is named too. */
    ck_assert_msg((strstr(out, "cannot start worker thread") ||
                   strstr(out, "cannot probe io_uring")) &&
                      strstr(out, "pthread_create: Resource temporarily unavailable"),
                  "the reason is not named: %s", out);
    ck_assert_int_eq(port, -ENOENT); /* nothing left listening, not even a config */
    /* Nothing left running but the calling thread (ThreadSanitizer starts a
     * thread of its own with the first pthread_create: not counted there). */
    if (strcmp(test_build_kind(), "tsan") != 0)
        ck_assert_int_eq(threads, 1);
}
END_TEST

/* A client of mod_crash's listener 0 that makes its worker sleep ms in
 * on_data (the echo comes once it wakes up). */
static int stall_worker(const struct tserver *t, int ms)
{
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char cmd[32];
    int n = snprintf(cmd, sizeof cmd, "stall %d", ms);
    send_all(fd, cmd, (size_t)n);
    usleep(50000); /* the worker is asleep in on_data now */
    return fd;
}

static void stall_end(int fd)
{
    char buf[32];
    ck_assert_uint_gt(recv_exact(fd, buf, 6, 5000), 0);
    close(fd);
}

/* No rendezvous left in the process (late parties release theirs after
 * the waiter has gone on, so this is waited for). */
static bool no_rendezvous_left(void *unused)
{
    return rendezvous_live() == 0;
}

START_TEST(reload_that_times_out_fails_and_keeps_the_old_generation)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": ["
        "{\"name\": \"a\", \"address\": \"127.0.0.1\", \"port\": 0, \"handler\": \"mod_crash\"},"
        "{\"name\": \"u\", \"protocol\": \"udp\", \"address\": \"127.0.0.1\", \"port\": 0, "
        "\"handler\": \"udp_echo\"}]}");
    int udp_port = tserver_port(t, 1);
    server_set_reload_wait(t->srv, 200);
    int fd = stall_worker(t, 800);
    char err[512] = "";
    uint64_t start = now_ms();
    int rc = tserver_try_reload(
        t, err, sizeof err,
        "{\"workers\": 1, \"listeners\": ["
        "{\"name\": \"a\", \"address\": \"127.0.0.1\", \"port\": %d, \"handler\": \"mod_crash\"},"
        "{\"name\": \"u2\", \"protocol\": \"udp\", \"address\": \"127.0.0.1\", \"port\": 0, "
        "\"handler\": \"udp_echo\"},"
        "{\"name\": \"b\", \"address\": \"127.0.0.1\", \"port\": 0, \"handler\": \"echo\"}]}",
        tserver_port(t, 0));
    uint64_t took = now_ms() - start;
    ck_assert_int_eq(rc, -ETIMEDOUT);
    ck_assert_msg(strstr(err, "did not take the new generation within 200 ms") &&
                      strstr(err, "the old generation keeps serving"), "err: %s", err);
    ck_assert_msg(took < 700, "the failed reload took %llu ms", (unsigned long long)took);
    struct wharf_server_info info;
    wharf_server_info(t->srv, &info);
    ck_assert_uint_eq(info.generation, 1);
    ck_assert_uint_eq(info.reloads_failed, 1);
    ck_assert_int_eq(server_find(t->srv, "b"), -1);
    ck_assert_int_eq(server_find(t->srv, "u"), 1);
    stall_end(fd); /* the late worker skips the switch it was too late for */
    /* The old generation serves TCP and UDP as before. */
    int c = tcp_connect("127.0.0.1", tserver_port(t, 0));
    unsigned char data[1000];
    fill_pattern(data, sizeof data, 7);
    ck_assert_uint_eq(echo_roundtrip(c, data, sizeof data, 5000), sizeof data);
    close(c);
    int u = udp_socket("127.0.0.1", 0, 2000);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)udp_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(sendto(u, "ping", 4, 0, (struct sockaddr *)&to, sizeof to), 4);
    char buf[16];
    ck_assert_int_eq(recv(u, buf, sizeof buf, 0), 4);
    close(u);
    ck_assert(wait_for(no_rendezvous_left, NULL, 2000)); /* the late worker freed it */
    /* Without the stall the same reload succeeds. */
    tserver_reload(t,
                   "{\"workers\": 1, \"listeners\": ["
                   "{\"name\": \"a\", \"address\": \"127.0.0.1\", \"port\": %d, "
                   "\"handler\": \"mod_crash\"},"
                   "{\"name\": \"b\", \"address\": \"127.0.0.1\", \"port\": 0, "
                   "\"handler\": \"echo\"}]}",
                   tserver_port(t, 0));
    wharf_server_info(t->srv, &info);
    ck_assert_uint_eq(info.generation, 2);
    c = tcp_connect("127.0.0.1", tserver_port(t, (size_t)server_find(t->srv, "b")));
    ck_assert_uint_eq(echo_roundtrip(c, data, sizeof data, 5000), sizeof data);
    close(c);
    tserver_stop(t);
}
END_TEST

START_TEST(ping_that_times_out_leaks_nothing)
{
    struct tserver *t = tserver_start("{\"workers\": 2, \"listeners\": [{\"address\": "
                                      "\"127.0.0.1\", \"port\": 0, \"handler\": \"mod_crash\"}]}");
    ck_assert(wait_for(no_rendezvous_left, NULL, 2000)); /* start-up's is gone */
    int fd = stall_worker(t, 400);
    uint64_t start = now_ms();
    ck_assert_int_eq(wharf_server_ping(t->srv, 50), -ETIMEDOUT);
    uint64_t took = now_ms() - start;
    ck_assert_msg(took >= 45 && took < 350, "ping took %llu ms", (unsigned long long)took);
    ck_assert_uint_eq(rendezvous_live(), 1); /* kept for the late answer */
    stall_end(fd);
    ck_assert(wait_for(no_rendezvous_left, NULL, 2000)); /* freed by it */
    ck_assert_int_eq(wharf_server_ping(t->srv, 2000), 0);
    ck_assert(wait_for(no_rendezvous_left, NULL, 2000));
    tserver_stop(t);
}
END_TEST

START_TEST(deny_list_refuses_tcp_sources)
{
    struct tserver *t = tserver_start("{\"workers\": 1, \"listeners\": [{\"port\": 0, "
                                      "\"handler\": \"echo\", \"deny\": [\"10.0.0.0/8\", \"127.0.0.1/32\"]}]}");
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    ck_assert(wait_closed(fd, 2000));
    close(fd);
    ck_assert_uint_eq(tserver_stats(t, 0).rejected, 1);
    ck_assert_uint_eq(tserver_stats(t, 0).accepted, 0);
    tserver_stop(t);
}
END_TEST

START_TEST(start_errors_name_file_and_path)
{
    expect_start_error("{\"listeners\": [{\"port\": 0, \"handler\": \"nope\"}]}",
                       "test.json: listeners[0].handler: ", "not found");
    expect_start_error("{\"listeners\": [{\"port\": 0, \"handler\": \"echo\"}, "
                       "{\"port\": 0, \"handler\": \"echo\", \"options\": {\"prefix\": 5}}]}",
                       "test.json: listeners[1].options: ", "prefix");
    expect_start_error("{\"listeners\": [{\"port\": 0, \"handler\": \"mod_refuse\"}]}",
                       "test.json: listeners[0].options: ", "mod_refuse says no");
    expect_start_error("{\"listeners\": [{\"port\": 0, \"handler\": \"udp_echo\"}]}",
                       "test.json: listeners[0].handler: ", "on_data");
    expect_start_error("{\"listeners\": [{\"address\": \"192.0.2.1\", \"port\": 0, "
                       "\"handler\": \"echo\"}]}",
                       "test.json: listeners[0]: cannot bind", "192.0.2.1");
}
END_TEST

START_TEST(port_in_use_is_reported)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"echo\", "
        "\"reuse_address\": false}]}");
    char json[512];
    snprintf(json, sizeof json,
             "{\"listeners\": [{\"port\": %d, \"handler\": \"echo\"}]}", tserver_port(t, 0));
    expect_start_error(json, "test.json: listeners[0]: cannot bind", "Address already in use");
    tserver_stop(t);
}
END_TEST

/* ---- socket activation: names follow LISTEN_FDNAMES position by position ---- */

/* In a fresh process (activation state is loaded once per process, and under
 * CK_FORK=no an earlier test has loaded it): fd 3 a regular file, fds 4 and 5
 * listening sockets, named "file:web:other".  Exits 0 when "web" is fd 4 and
 * "other" fd 5. */
static int activation_child(void)
{
    if (activation_load() != 2)
        return 11;
    int web = activation_take("web", SOCK_STREAM, NULL, 0);
    int other = activation_take("other", SOCK_STREAM, NULL, 0);
    return web == 4 && other == 5 ? 0 : 20 + (web == 5);
}

START_TEST(activation_names_follow_positions_past_a_non_socket)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int file = open("/dev/null", O_RDONLY);
        int s1 = socket(AF_INET, SOCK_STREAM, 0), s2 = socket(AF_INET, SOCK_STREAM, 0);
        /* Out of the way first, so no dup2 below closes one of its own sources. */
        int hi[3] = { fcntl(file, F_DUPFD, 100), fcntl(s1, F_DUPFD, 100), fcntl(s2, F_DUPFD, 100) };
        if (file < 0 || s1 < 0 || s2 < 0 || hi[0] < 0 || hi[1] < 0 || hi[2] < 0 ||
            dup2(hi[0], 3) < 0 || dup2(hi[1], 4) < 0 || dup2(hi[2], 5) < 0)
            _exit(10);
        char pidstr[32];
        snprintf(pidstr, sizeof pidstr, "%ld", (long)getpid());
        setenv("LISTEN_PID", pidstr, 1);
        setenv("LISTEN_FDS", "3", 1);
        setenv("LISTEN_FDNAMES", "file:web:other", 1);
        execl(self_path, self_path, "--activation-child", (char *)NULL);
        _exit(12);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %#x (21: \"web\" was the socket named after it)", status);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--activation-child") == 0)
        return activation_child();
    if (argc == 3 && strcmp(argv[1], "--ten-k-client") == 0)
        return ten_k_client(atoi(argv[2]));
    self_path = argv[0];
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("server");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, graceful_shutdown_closes_lingering_clients_after_timeout);
    tcase_add_test(tc, shutdown_without_connections_is_quick);
    tcase_add_test(tc, activation_names_follow_positions_past_a_non_socket);
    tcase_add_test(tc, shutdown_closes_idle_keepalive_clients_at_once);
    tcase_add_test(tc, shutdown_waits_for_connections_that_finish);
    tcase_add_test(tc, client_that_never_reads_holds_about_the_watermark);
    tcase_add_test(tc, many_clients_that_never_read_lose_nothing_and_starve_no_one);
    tcase_add_test(tc, output_budget_closes_the_worst_offenders_only);
    tcase_add_test(tc, on_drain_follows_a_slow_reader);
    tcase_add_test(tc, max_input_cuts_off_hostile_client_only);
    tcase_add_test(tc, max_connections_pauses_accepting_until_room);
    tcase_add_test(tc, max_connections_evicts_the_longest_idle_connection);
    tcase_add_test(tc, max_connections_reached_evicts_nobody_while_none_waits);
    tcase_add_test(tc, per_source_limit_refuses_extra_connections_only);
    tcase_add_test(tc, idle_connections_cost_under_1kib_each);
    tcase_add_test(tc, ten_thousand_connections_on_4_workers);
    tcase_add_test(tc, start_errors_name_file_and_path);
    tcase_add_test(tc, log_lines_escape_control_characters);
    tcase_add_test(tc, connection_log_line_on_close);
    tcase_add_test(tc, deny_list_refuses_tcp_sources);
    tcase_add_test(tc, ping_answers_while_running);
    tcase_add_test(tc, port_in_use_is_reported);
    tcase_add_test(tc, start_fails_at_once_when_a_worker_thread_cannot_start);
    tcase_add_test(tc, reload_that_times_out_fails_and_keeps_the_old_generation);
    tcase_add_test(tc, ping_that_times_out_leaks_nothing);
    suite_add_tcase(s, tc);
    return check_run(s);
}
