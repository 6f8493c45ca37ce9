/*
 * check_generation.c - generations and live reload, end to end on ephemeral
 * loopback ports: a reload gives new connections the new handler options
 * while open ones keep theirs; a handler's fini runs exactly once, after
 * the last connection of its generation closed; an invalid reload changes
 * nothing; kept listeners keep their port and counters, removed ones stop
 * accepting, added ones are bound; UDP keeps answering across reloads; a
 * module replaced on disk is loaded anew for new connections while old ones
 * run the old code; and a client echoing in a tight loop over many
 * connections sees no refused, reset or corrupted echo during 20 reloads.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "check_main.h"
#include "modules/mod_probe.h"
#include "testutil.h"

#define ECHO_CONFIG(prefix) \
    "{\"workers\": 2, \"listeners\": [{\"name\": \"e\", \"port\": %d, " \
    "\"handler\": \"echo\", \"options\": {\"prefix\": \"" prefix "\"}}]}"

/* Sends msg and checks the reply is exactly want. */
static void expect_reply(int fd, const char *msg, const char *want)
{
    char got[256] = "";
    send_all(fd, msg, strlen(msg));
    size_t n = recv_exact(fd, got, strlen(want), 3000);
    got[n] = '\0';
    ck_assert_str_eq(got, want);
}

START_TEST(reload_changes_options_for_new_connections_only)
{
    struct tserver *t = tserver_start(ECHO_CONFIG("old:"), 0);
    int port = tserver_port(t, 0);
    int before = tcp_connect("127.0.0.1", port);
    expect_reply(before, "a", "old:a");

    tserver_reload(t, ECHO_CONFIG("new:"), port);
    ck_assert_int_eq(tserver_port(t, 0), port);
    int after = tcp_connect("127.0.0.1", port);
    expect_reply(after, "b", "new:b");
    expect_reply(before, "c", "old:c"); /* the open one keeps its generation */

    struct wharf_server_info info;
    wharf_server_info(t->srv, &info);
    ck_assert_uint_eq(info.generation, 2);
    ck_assert_uint_eq(info.reloads, 1);
    /* The kept listener keeps counting. */
    ck_assert_uint_eq(tserver_stats(t, 0).accepted, 2);
    close(before);
    close(after);
    tserver_stop(t);
}
END_TEST

static bool finis_reach(void *arg)
{
    struct probe_counts pc;
    probe_get(&pc);
    return pc.finis >= *(uint64_t *)arg;
}

START_TEST(fini_runs_once_after_the_last_old_connection)
{
    const char *cfg = "{\"workers\": 2, \"listeners\": [{\"port\": %d, "
                      "\"handler\": \"mod_probe\"}]}";
    struct probe_counts pc0, pc;
    probe_get(&pc0);
    struct tserver *t = tserver_start(cfg, 0);
    int port = tserver_port(t, 0);
    int a = tcp_connect("127.0.0.1", port), b = tcp_connect("127.0.0.1", port);
    expect_reply(a, "x", "x");
    expect_reply(b, "y", "y");
    tserver_reload(t, cfg, port);
    probe_get(&pc);
    ck_assert_uint_eq(pc.inits - pc0.inits, 2);
    ck_assert_uint_eq(pc.finis - pc0.finis, 0); /* two old connections hold it */
    close(a);
    usleep(200000);
    probe_get(&pc);
    ck_assert_uint_eq(pc.finis - pc0.finis, 0);
    close(b);
    uint64_t want = pc0.finis + 1;
    ck_assert(wait_for(finis_reach, &want, 3000));
    usleep(100000);
    probe_get(&pc);
    ck_assert_uint_eq(pc.finis - pc0.finis, 1); /* exactly once */
    tserver_stop(t);
    probe_get(&pc);
    ck_assert_uint_eq(pc.finis - pc0.finis, 2);
}
END_TEST

START_TEST(invalid_reload_keeps_the_old_generation_serving)
{
    struct tserver *t = tserver_start(ECHO_CONFIG("one:"), 0);
    int port = tserver_port(t, 0);
    char err[2048];
    ck_assert_int_eq(tserver_try_reload(t, err, sizeof err,
                                        "{\"listeners\": [{\"port\": %d, \"handler\": "
                                        "\"no_such_module\"}]}", port), -ENOENT);
    ck_assert_msg(strstr(err, "listeners[0].handler") && strstr(err, "not found"), "%s", err);
    ck_assert_int_eq(tserver_try_reload(t, err, sizeof err,
                                        "{\"listeners\": [{\"port\": %d, \"handler\": \"echo\", "
                                        "\"options\": {\"nope\": 1}}]}", port), -EINVAL);
    ck_assert_msg(strstr(err, "unknown option"), "%s", err);
    int fd = tcp_connect("127.0.0.1", port);
    expect_reply(fd, "z", "one:z");
    struct wharf_server_info info;
    wharf_server_info(t->srv, &info);
    ck_assert_uint_eq(info.generation, 1);
    ck_assert_uint_eq(info.reloads, 0);
    ck_assert_uint_eq(info.reloads_failed, 2);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(listeners_added_removed_and_kept)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": ["
        "{\"name\": \"keep\", \"port\": 0, \"handler\": \"echo\"},"
        "{\"name\": \"drop\", \"port\": 0, \"handler\": \"echo\"}]}");
    int keep = tserver_port(t, 0), drop = tserver_port(t, 1);
    int old = tcp_connect("127.0.0.1", drop);
    expect_reply(old, "1", "1");
    tserver_reload(t,
                   "{\"workers\": 1, \"listeners\": ["
                   "{\"name\": \"keep\", \"port\": %d, \"handler\": \"echo\"},"
                   "{\"name\": \"new\", \"port\": 0, \"handler\": \"echo\"}]}", keep);
    ck_assert_int_eq(tserver_port(t, 0), keep);
    int added = tserver_port(t, 1);
    ck_assert_int_ne(added, drop);
    ck_assert_int_ne(added, keep); /* a new port-0 listener gets its own socket */
    int fd = tcp_connect("127.0.0.1", added);
    expect_reply(fd, "2", "2");
    close(fd);
    fd = tcp_connect("127.0.0.1", keep);
    expect_reply(fd, "3", "3");
    close(fd);
    /* The removed listener stops accepting; its open connection still works. */
    ck_assert_int_eq(tcp_try_connect("127.0.0.1", drop), -ECONNREFUSED);
    expect_reply(old, "4", "4");
    close(old);
    tserver_stop(t);
}
END_TEST

/* Several "port": 0 listeners on one address: each keeps its own socket
 * (matched by name) across a reload, with its own handler options. */
START_TEST(port_zero_listeners_keep_their_own_sockets)
{
    const char *cfg = "{\"workers\": 1, \"listeners\": ["
                      "{\"name\": \"a\", \"port\": 0, \"handler\": \"echo\", "
                      "\"options\": {\"prefix\": \"%s\"}},"
                      "{\"name\": \"b\", \"port\": 0, \"handler\": \"echo\", "
                      "\"options\": {\"prefix\": \"%s\"}}]}";
    struct tserver *t = tserver_start(cfg, "a1:", "b1:");
    int a = tserver_port(t, 0), b = tserver_port(t, 1);
    ck_assert_int_ne(a, b);
    tserver_reload(t, cfg, "a2:", "b2:");
    ck_assert_int_eq(tserver_port(t, 0), a);
    ck_assert_int_eq(tserver_port(t, 1), b);
    int fa = tcp_connect("127.0.0.1", a), fb = tcp_connect("127.0.0.1", b);
    expect_reply(fa, "x", "a2:x");
    expect_reply(fb, "y", "b2:y");
    close(fa);
    close(fb);
    tserver_stop(t);
}
END_TEST

START_TEST(udp_keeps_answering_across_reloads)
{
    const char *cfg = "{\"workers\": 2, \"listeners\": [{\"protocol\": \"udp\", \"port\": %d, "
                      "\"handler\": \"udp_echo\"}]}";
    struct tserver *t = tserver_start(cfg, 0);
    int port = tserver_port(t, 0);
    int fd = udp_socket("127.0.0.1", 0, 2000);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(0x7f000001);
    for (int round = 0; round < 3; round++) {
        char msg[32], got[32];
        int n = snprintf(msg, sizeof msg, "round %d", round);
        ck_assert_int_eq(sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&to, sizeof to), n);
        ck_assert_int_eq(recv(fd, got, sizeof got, 0), n);
        ck_assert(memcmp(got, msg, (size_t)n) == 0);
        tserver_reload(t, cfg, port);
    }
    close(fd);
    ck_assert_uint_ge(tserver_stats(t, 0).datagrams_in, 3);
    tserver_stop(t);
}
END_TEST

/* Copies src to dst through a temporary name and rename(), as an install does. */
static void install_file(const char *src, const char *dst)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    FILE *in = fopen(src, "rb"), *out = fopen(tmp, "wb");
    ck_assert_msg(in && out, "cannot copy %s", src);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
    ck_assert_int_eq(rename(tmp, dst), 0);
}

START_TEST(module_replaced_on_disk_runs_new_code_for_new_connections)
{
    const char *mods = getenv("WHARF_TEST_MODULES");
    char dir[] = "/tmp/wharf-mod-XXXXXX", path[4200], a[4200], b[4200];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/version.so", dir);
    snprintf(a, sizeof a, "%s/mod_version_a.so", mods ? mods : "tests/.libs");
    snprintf(b, sizeof b, "%s/mod_version_b.so", mods ? mods : "tests/.libs");
    install_file(a, path);
    const char *cfg = "{\"workers\": 1, \"listeners\": [{\"port\": %d, \"handler\": \"%s\"}]}";
    struct tserver *t = tserver_start(cfg, 0, path);
    int port = tserver_port(t, 0);
    int old = tcp_connect("127.0.0.1", port);
    expect_reply(old, "x", "Ax");
    install_file(b, path);
    tserver_reload(t, cfg, port, path);
    int fresh = tcp_connect("127.0.0.1", port);
    expect_reply(fresh, "y", "By");
    expect_reply(old, "z", "Az");
    /* Unchanged on disk: the same code again. */
    tserver_reload(t, cfg, port, path);
    int third = tcp_connect("127.0.0.1", port);
    expect_reply(third, "w", "Bw");
    close(old);
    close(fresh);
    close(third);
    tserver_stop(t);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* ---- echo in a tight loop while reloading ---------------------------------- */

struct churn {
    int port;
    _Atomic int stop;
    _Atomic long exchanges, failures;
    char last_error[128];
};

static void *echo_loop(void *arg)
{
    struct churn *c = arg;
    unsigned char data[64], got[64];
    for (long i = 0; i < 200000 && !atomic_load(&c->stop); i++) {
        int fd = tcp_try_connect("127.0.0.1", c->port);
        if (fd < 0) {
            atomic_fetch_add(&c->failures, 1);
            snprintf(c->last_error, sizeof c->last_error, "connect: %s", strerror(-fd));
            continue;
        }
        for (int k = 0; k < 3; k++) {
            fill_pattern(data, sizeof data, (unsigned)(i * 3 + k));
            ssize_t w = send(fd, data, sizeof data, MSG_NOSIGNAL);
            size_t n = w == (ssize_t)sizeof data ? recv_exact(fd, got, sizeof got, 3000) : 0;
            if (n != sizeof got || memcmp(got, data, sizeof got) != 0) {
                atomic_fetch_add(&c->failures, 1);
                snprintf(c->last_error, sizeof c->last_error, "echo: %zu bytes, %s", n,
                         n == sizeof got ? "corrupted" : strerror(errno));
                break;
            }
            atomic_fetch_add(&c->exchanges, 1);
        }
        close(fd);
    }
    return NULL;
}

START_TEST(twenty_reloads_under_load_lose_nothing)
{
    const char *cfg = "{\"workers\": 2, \"listeners\": [{\"name\": \"e\", \"port\": %d, "
                      "\"handler\": \"echo\", \"backlog\": 1024}]}";
    struct tserver *t = tserver_start(cfg, 0);
    struct churn c = {.port = tserver_port(t, 0)};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, echo_loop, &c);
    for (int r = 0; r < 20; r++) {
        usleep(50000);
        tserver_reload(t, cfg, c.port);
    }
    usleep(50000);
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(atomic_load(&c.failures) == 0, "%ld failures (last: %s) in %ld exchanges",
                  atomic_load(&c.failures), c.last_error, atomic_load(&c.exchanges));
    ck_assert_int_gt(atomic_load(&c.exchanges), 100);
    struct wharf_server_info info;
    wharf_server_info(t->srv, &info);
    ck_assert_uint_eq(info.reloads, 20);
    tserver_stop(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("generation");
    TCase *tc = tcase_create("reload");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reload_changes_options_for_new_connections_only);
    tcase_add_test(tc, fini_runs_once_after_the_last_old_connection);
    tcase_add_test(tc, invalid_reload_keeps_the_old_generation_serving);
    tcase_add_test(tc, listeners_added_removed_and_kept);
    tcase_add_test(tc, port_zero_listeners_keep_their_own_sockets);
    tcase_add_test(tc, udp_keeps_answering_across_reloads);
    tcase_add_test(tc, module_replaced_on_disk_runs_new_code_for_new_connections);
    tcase_add_test(tc, twenty_reloads_under_load_lose_nothing);
    suite_add_tcase(s, tc);
    return check_run(s);
}
