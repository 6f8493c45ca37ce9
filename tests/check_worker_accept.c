/*
 * check_worker_accept.c - "accept": "workers" (framework/worker/
 * worker_accept.c), end to end on real loopback sockets: connections spread
 * over the workers' own SO_REUSEPORT sockets, max_connections exact while
 * several workers accept at once, pause and resume by runtime command,
 * eviction, reloads that keep serving (and one that tries to change the
 * mode, refused), a reload that adds such a listener and one that removes
 * it, a stop midway, a PROXY listener whose per-source limit
 * counts the header's address, both modes under one limit, and the
 * refusals: config, binary upgrade, a socket passed by socket activation.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "config.h"
#include "server.h"
#include "testutil.h"
#include "wharf_server.h"

#define WA_LISTENER "{\"port\": 0, \"handler\": \"echo\", \"accept\": \"workers\""

static bool sees_echo(int fd, int timeout_ms)
{
    char b;
    send_all(fd, "q", 1);
    return recv_exact(fd, &b, 1, timeout_ms) == 1;
}

/* Connections open on each worker, from "show workers" (admission's load);
 * returns the number of workers. */
static unsigned per_worker(const struct tserver *t, size_t *open, unsigned max)
{
    char *reply = NULL;
    ck_assert_int_eq(wharf_server_command(t->srv, "show workers", &reply), 0);
    unsigned n = 0;
    for (char *line = strtok(reply, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned id;
        size_t conns, queued, depth;
        if (line[0] == '#' || sscanf(line, "%u %zu %zu %zu", &id, &conns, &queued, &depth) != 4)
            continue;
        ck_assert_uint_eq(queued, 0); /* nothing goes through a mailbox */
        if (id < max)
            open[id] = conns;
        n++;
    }
    free(reply);
    return n;
}

START_TEST(connections_spread_over_the_workers_own_sockets)
{
    struct tserver *t = tserver_start("{\"workers\": 4, \"listeners\": [" WA_LISTENER "}]}");
    int port = tserver_port(t, 0);
    enum { N = 64 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect("127.0.0.1", port);
        ck_assert(sees_echo(fds[i], 3000));
    }
    size_t open[4] = {0};
    ck_assert_uint_eq(per_worker(t, open, 4), 4);
    /* The kernel hashes each connection's addresses to one of the four
     * sockets: with 64 connections every worker has some (a worker left
     * empty has a chance of 4 * (3/4)^64, about 1e-8). */
    size_t sum = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(open[i] > 0, "worker %d accepted none of %d", i, N);
        sum += open[i];
    }
    ck_assert_uint_eq(sum, N);
    ck_assert_uint_eq(tserver_stats(t, 0).accepted, N);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    tserver_stop(t);
}
END_TEST

struct storm {
    int port;
    int fds[16];
};

static void *storm_thread(void *arg)
{
    struct storm *s = arg;
    for (int i = 0; i < 16; i++) {
        s->fds[i] = tcp_connect("127.0.0.1", s->port);
        send_all(s->fds[i], "q", 1);
    }
    return NULL;
}

/* Whether fd has its echo byte (read without waiting long). */
static bool got_echo(int fd, int timeout_ms)
{
    char b;
    return recv_exact(fd, &b, 1, timeout_ms) == 1;
}

/* Four workers accept at once from four queues: never more than
 * max_connections are open, and exactly that many are served. */
START_TEST(max_connections_is_exact_under_a_connect_storm)
{
    struct tserver *t = tserver_start("{\"workers\": 4, \"max_connections\": 10, "
                                      "\"evict_idle_ms\": 0, \"listeners\": [" WA_LISTENER "}]}");
    enum { THREADS = 4, EACH = 16, ALL = THREADS * EACH };
    struct storm st[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        st[i].port = tserver_port(t, 0);
        ck_assert_int_eq(pthread_create(&th[i], NULL, storm_thread, &st[i]), 0);
    }
    size_t most = 0;
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    /* Watch the count for a while: it reaches the limit and stays there. */
    uint64_t until = now_ms() + 600;
    while (now_ms() < until) {
        size_t open = tserver_stats(t, 0).open;
        most = open > most ? open : most;
        usleep(5000);
    }
    ck_assert_uint_eq(most, 10);
    int served[ALL], nserved = 0, waiting[ALL], nwaiting = 0;
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < EACH; k++) {
            int fd = st[i].fds[k];
            if (got_echo(fd, 20))
                served[nserved++] = fd;
            else
                waiting[nwaiting++] = fd;
        }
    ck_assert_int_eq(nserved, 10);
    ck_assert_uint_eq(tserver_stats(t, 0).accepted, 10);
    /* Closing the served ones lets the others in, ten at a time. */
    for (int i = 0; i < nserved; i++)
        close(served[i]);
    int done = 0;
    while (nwaiting > 0) {
        int left = 0;
        for (int i = 0; i < nwaiting; i++) {
            if (got_echo(waiting[i], 20)) {
                close(waiting[i]);
                done++;
            } else {
                waiting[left++] = waiting[i];
            }
        }
        ck_assert_msg(left < nwaiting, "no waiting connection got in (%d left)", left);
        ck_assert_uint_le(tserver_stats(t, 0).open, 10);
        nwaiting = left;
    }
    ck_assert_int_eq(done, ALL - 10);
    ck_assert_uint_eq(tserver_stats(t, 0).accepted, ALL);
    tserver_stop(t);
}
END_TEST

/* At max_connections a waiting connection evicts the longest-idle one,
 * whichever worker holds it. */
START_TEST(max_connections_evicts_across_workers)
{
    struct tserver *t = tserver_start("{\"workers\": 2, \"max_connections\": 2, "
                                      "\"evict_idle_ms\": 300, \"listeners\": [" WA_LISTENER "}]}");
    int port = tserver_port(t, 0);
    int idle = tcp_connect("127.0.0.1", port);
    ck_assert(sees_echo(idle, 2000));
    int busy = tcp_connect("127.0.0.1", port);
    ck_assert(sees_echo(busy, 2000));
    /* Newcomers until one lands on each socket (the kernel's hash picks). */
    int first = tcp_connect("127.0.0.1", port);
    send_all(first, "q", 1);
    uint64_t until = now_ms() + 800;
    while (now_ms() < until) {
        ck_assert(sees_echo(busy, 2000));
        usleep(50 * 1000);
    }
    ck_assert(got_echo(first, 3000));
    ck_assert(wait_closed(idle, 3000));
    ck_assert(sees_echo(busy, 2000));
    struct wharf_listener_stats s = tserver_stats(t, 0);
    ck_assert_uint_eq(s.closed[WHARF_CLOSE_EVICTED], 1);
    ck_assert_uint_eq(s.accepted, 3);
    close(first);
    close(busy);
    close(idle);
    tserver_stop(t);
}
END_TEST

START_TEST(pause_and_resume_by_runtime_command)
{
    struct tserver *t = tserver_start("{\"workers\": 3, \"listeners\": [" WA_LISTENER "}]}");
    int port = tserver_port(t, 0);
    char *reply = NULL;
    ck_assert_int_eq(wharf_server_command(t->srv, "pause listener *", &reply), 0);
    free(reply);
    usleep(100 * 1000); /* the workers have their message */
    enum { N = 12 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect("127.0.0.1", port); /* into a backlog */
        send_all(fds[i], "q", 1);
    }
    for (int i = 0; i < N; i++)
        ck_assert(!got_echo(fds[i], i == 0 ? 300 : 10));
    ck_assert_uint_eq(tserver_stats(t, 0).accepted, 0);
    ck_assert_int_eq(wharf_server_command(t->srv, "resume listener *", &reply), 0);
    free(reply);
    for (int i = 0; i < N; i++) {
        ck_assert(got_echo(fds[i], 3000));
        close(fds[i]);
    }
    ck_assert_uint_eq(tserver_stats(t, 0).accepted, N);
    tserver_stop(t);
}
END_TEST

struct pinger {
    int port;
    atomic_bool stop;
    _Atomic long ok, failed;
};

/* connect, one echo, close, again: counts what did not work. */
static void *pinger_thread(void *arg)
{
    struct pinger *p = arg;
    while (!atomic_load(&p->stop)) {
        int fd = tcp_try_connect("127.0.0.1", p->port);
        if (fd < 0) {
            atomic_fetch_add(&p->failed, 1);
            continue;
        }
        /* Not the test kit's helpers, which fail the test from this
         * thread: a stop may cut an exchange short on purpose. */
        unsigned char data[64], back[64];
        fill_pattern(data, sizeof data, (unsigned)p->ok);
        if (send(fd, data, sizeof data, MSG_NOSIGNAL) == (ssize_t)sizeof data &&
            recv_exact(fd, back, sizeof back, 5000) == sizeof back &&
            memcmp(data, back, sizeof data) == 0)
            atomic_fetch_add(&p->ok, 1);
        else
            atomic_fetch_add(&p->failed, 1);
        close(fd);
    }
    return NULL;
}

static const char *reload_config =
    "{\"workers\": 3, \"listeners\": [{\"port\": %d, \"handler\": \"echo\", "
    "\"accept\": \"workers\", \"timeouts\": {\"idle_ms\": %d}}]}";

START_TEST(reloads_keep_serving_without_a_refused_connection)
{
    struct tserver *t = tserver_start("{\"workers\": 3, \"listeners\": [" WA_LISTENER "}]}");
    int port = tserver_port(t, 0);
    tserver_reload(t, reload_config, port, 60000); /* the port, as a config names it */
    struct pinger p = {.port = port};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, pinger_thread, &p), 0);
    for (int i = 0; i < 8; i++) {
        usleep(60 * 1000);
        tserver_reload(t, reload_config, port, 30000 + i);
    }
    usleep(60 * 1000);
    /* Changing who accepts cannot be done on the kept sockets. */
    char err[512] = "";
    int rc = tserver_try_reload(t, err, sizeof err,
                                "{\"workers\": 3, \"listeners\": [{\"port\": %d, \"handler\": "
                                "\"echo\"}]}", port);
    ck_assert_int_lt(rc, 0);
    ck_assert_msg(strstr(err, "listeners[0].accept: cannot change from \"workers\" to "
                              "\"acceptor\" on a reload") != NULL, "%s", err);
    usleep(100 * 1000);
    atomic_store(&p.stop, true);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(atomic_load(&p.failed), 0);
    ck_assert_int_gt(atomic_load(&p.ok), 10);
    /* Still three sockets, one per worker, all served. */
    enum { N = 24 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect("127.0.0.1", port);
        ck_assert(sees_echo(fds[i], 3000));
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    tserver_stop(t);
}
END_TEST

/* A reload that adds a worker-accept listener serves it on every worker; one
 * that removes it closes its sockets (a connect is refused). */
START_TEST(reload_adds_and_removes_a_worker_accept_listener)
{
    struct tserver *t = tserver_start("{\"workers\": 2, \"listeners\": [{\"name\": \"a\", "
                                      "\"port\": 0, \"handler\": \"echo\"}]}");
    int pa = tserver_port(t, 0);
    tserver_reload(t, "{\"workers\": 2, \"listeners\": [{\"name\": \"a\", \"port\": %d, "
                      "\"handler\": \"echo\"}, {\"name\": \"w\", \"port\": 0, \"handler\": "
                      "\"echo\", \"accept\": \"workers\"}]}", pa);
    int pw = tserver_port(t, 1);
    enum { N = 16 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect("127.0.0.1", pw);
        ck_assert(sees_echo(fds[i], 3000));
    }
    size_t open[2] = {0};
    per_worker(t, open, 2);
    ck_assert_uint_eq(open[0] + open[1], N);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    tserver_reload(t, "{\"workers\": 2, \"listeners\": [{\"name\": \"a\", \"port\": %d, "
                      "\"handler\": \"echo\"}]}", pa);
    ck_assert_int_eq(tcp_try_connect("127.0.0.1", pw), -ECONNREFUSED);
    int a = tcp_connect("127.0.0.1", pa);
    ck_assert(sees_echo(a, 3000));
    close(a);
    tserver_stop(t);
}
END_TEST

/* A stop while connections are open and more arrive: every open one is
 * closed, the sockets are gone (a connect is refused), nothing hangs. */
START_TEST(stop_midway_closes_everything)
{
    struct tserver *t = tserver_start("{\"workers\": 3, \"shutdown_timeout_ms\": 500, "
                                      "\"listeners\": [" WA_LISTENER "}]}");
    int port = tserver_port(t, 0);
    struct pinger p = {.port = port};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, pinger_thread, &p), 0);
    enum { N = 20 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect("127.0.0.1", port);
        ck_assert(sees_echo(fds[i], 3000));
    }
    usleep(100 * 1000);
    uint64_t t0 = now_ms();
    tserver_stop(t);
    ck_assert_uint_lt(now_ms() - t0, 3000);
    atomic_store(&p.stop, true);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    for (int i = 0; i < N; i++) {
        ck_assert(wait_closed(fds[i], 2000));
        close(fds[i]);
    }
    ck_assert_int_eq(tcp_try_connect("127.0.0.1", port), -ECONNREFUSED);
}
END_TEST

/* PROXY on a worker-accept listener: the handler's peer is the header's,
 * and max_connections_per_source counts that address. */
START_TEST(proxy_listener_counts_the_headers_source)
{
    struct tserver *t = tserver_start("{\"workers\": 2, \"max_connections_per_source\": 1, "
                                      "\"listeners\": [" WA_LISTENER ", \"proxy_protocol\": \"v1\"}]}");
    int port = tserver_port(t, 0);
    const char *hdr_a = "PROXY TCP4 192.0.2.1 192.0.2.100 1111 80\r\n";
    const char *hdr_b = "PROXY TCP4 192.0.2.2 192.0.2.100 2222 80\r\n";
    int a = tcp_connect("127.0.0.1", port);
    send_all(a, hdr_a, strlen(hdr_a));
    ck_assert(sees_echo(a, 3000));
    int b = tcp_connect("127.0.0.1", port);
    send_all(b, hdr_b, strlen(hdr_b));
    ck_assert(sees_echo(b, 3000));
    /* A second connection from 192.0.2.1 (through the same balancer). */
    int a2 = tcp_connect("127.0.0.1", port);
    send_all(a2, hdr_a, strlen(hdr_a));
    ck_assert(wait_closed(a2, 3000));
    ck_assert(sees_echo(a, 2000));
    ck_assert(sees_echo(b, 2000));
    close(a2);
    close(a);
    close(b);
    tserver_stop(t);
}
END_TEST

static void expect_load_error(const char *json, const char *want)
{
    char err[1024] = "";
    struct config *cfg = NULL;
    ck_assert_int_lt(config_load_string(json, "test.json", &cfg, err, sizeof err), 0);
    ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
}

START_TEST(config_refuses_what_it_cannot_do)
{
    expect_load_error("{\"listeners\": [{\"protocol\": \"udp\", \"port\": 0, \"handler\": "
                      "\"udp_echo\", \"accept\": \"workers\"}]}",
                      "test.json: listeners[0].accept: expected \"acceptor\" or no \"accept\" "
                      "on a UDP listener");
    expect_load_error("{\"listeners\": [{\"port\": 0, \"handler\": \"echo\", \"accept\": "
                      "\"threads\"}]}",
                      "test.json: listeners[0].accept: expected \"acceptor\" or \"workers\"");
    /* A binary upgrade cannot hand these sockets over. */
    struct tserver *t = tserver_start("{\"workers\": 2, \"listeners\": [" WA_LISTENER "}, "
                                      "{\"port\": 0, \"handler\": \"echo\"}]}");
    int fds[8];
    ck_assert_int_eq(wharf_server_sockets(t->srv, fds, 8), -EOPNOTSUPP);
    tserver_stop(t);
}
END_TEST

/* The child of socket_passed_by_name_is_refused (a process of its own, as
 * the passed sockets are read once per process): a socket passed under the
 * listener's name makes the start fail with the reason.  Exit 0 if so. */
static int activation_child(void)
{
    char err[1024] = "";
    struct config *cfg = NULL;
    if (config_load_string("{\"workers\": 2, \"listeners\": [{\"name\": \"web\", \"port\": 0, "
                           "\"handler\": \"echo\", \"accept\": \"workers\"}]}",
                           "test.json", &cfg, err, sizeof err) < 0)
        return 11;
    struct wharf_server *srv = NULL;
    int rc = server_new(cfg, &srv, err, sizeof err);
    if (rc == 0)
        rc = server_start(srv, err, sizeof err);
    server_free(srv);
    fprintf(stderr, "activation child: %s\n", err);
    return rc == -EINVAL && strstr(err, "test.json: listeners[0].accept: \"workers\" binds a "
                                        "SO_REUSEPORT socket for each worker itself") ? 0 : 20;
}

static const char *self_path;

START_TEST(socket_passed_by_name_is_refused)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int s1 = socket(AF_INET, SOCK_STREAM, 0);
        int hi = s1 < 0 ? -1 : fcntl(s1, F_DUPFD, 100);
        if (hi < 0 || dup2(hi, 3) < 0)
            _exit(10);
        char pidstr[32];
        snprintf(pidstr, sizeof pidstr, "%ld", (long)getpid());
        setenv("LISTEN_PID", pidstr, 1);
        setenv("LISTEN_FDS", "1", 1);
        setenv("LISTEN_FDNAMES", "web", 1);
        execl(self_path, self_path, "--activation-child", (char *)NULL);
        _exit(12);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
}
END_TEST

/* A listener per mode on one server: both under the one max_connections. */
START_TEST(both_modes_share_one_limit)
{
    struct tserver *t = tserver_start("{\"workers\": 2, \"max_connections\": 4, "
                                      "\"evict_idle_ms\": 0, \"listeners\": [" WA_LISTENER "}, "
                                      "{\"port\": 0, \"handler\": \"echo\"}]}");
    int pw = tserver_port(t, 0), pa = tserver_port(t, 1);
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = tcp_connect("127.0.0.1", i % 2 ? pa : pw);
        send_all(fds[i], "q", 1);
    }
    int served = 0;
    for (int i = 0; i < 6; i++)
        served += got_echo(fds[i], i == 0 ? 1000 : 300);
    ck_assert_int_eq(served, 4);
    ck_assert_uint_eq(tserver_stats(t, 0).open + tserver_stats(t, 1).open, 4);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    tserver_stop(t);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--activation-child") == 0)
        return activation_child();
    self_path = argv[0];
    Suite *s = suite_create("worker_accept");
    TCase *tc = tcase_create("worker_accept");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, connections_spread_over_the_workers_own_sockets);
    tcase_add_test(tc, max_connections_is_exact_under_a_connect_storm);
    tcase_add_test(tc, max_connections_evicts_across_workers);
    tcase_add_test(tc, pause_and_resume_by_runtime_command);
    tcase_add_test(tc, reloads_keep_serving_without_a_refused_connection);
    tcase_add_test(tc, reload_adds_and_removes_a_worker_accept_listener);
    tcase_add_test(tc, stop_midway_closes_everything);
    tcase_add_test(tc, proxy_listener_counts_the_headers_source);
    tcase_add_test(tc, config_refuses_what_it_cannot_do);
    tcase_add_test(tc, both_modes_share_one_limit);
    tcase_add_test(tc, socket_passed_by_name_is_refused);
    suite_add_tcase(s, tc);
    return check_run(s);
}
