/*
 * check_seed.c - the tutorial wharf grew from, for real: config/seed.json
 * (echo with prefix "Echo: " on localhost) answers the tutorial client's
 * exchange: sendall(b'Hello, server!') then one recv(1024) gives
 * b'Echo: Hello, server!'.  The port is switched to an ephemeral one so the
 * suite never collides with a running server on 8080.
 */
#include <check.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"

static struct tserver *start_seed(void)
{
    char path[4096], err[2048];
    const char *src = getenv("WHARF_SRCDIR");
    snprintf(path, sizeof path, "%s/config/seed.json", src ? src : ".");
    struct config *cfg = NULL;
    if (config_load_file(path, &cfg, err, sizeof err) < 0)
        ck_abort_msg("%s", err);
    ck_assert_uint_eq(cfg->nlisteners, 1);
    ck_assert_int_eq(cfg->listeners[0].port, 8080);
    ck_assert_str_eq(cfg->listeners[0].address, "localhost");
    cfg->listeners[0].port = 0;
    return tserver_start_config(cfg);
}

START_TEST(seed_client_exchange)
{
    struct tserver *t = start_seed();
    /* socket.AF_INET + connect(('localhost', port)), as the tutorial does,
     * whatever order the resolver lists localhost's addresses in. */
    int fd = tcp_connect_family("localhost", tserver_port(t, 0), AF_INET);
    send_all(fd, "Hello, server!", strlen("Hello, server!"));
    char data[1024];
    ssize_t n = recv(fd, data, sizeof data, 0); /* the client's single recv(1024) */
    ck_assert_int_eq(n, 20);
    ck_assert_mem_eq(data, "Echo: Hello, server!", 20);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(seed_server_loop_answers_every_chunk)
{
    /* The tutorial server loops: each recv'd chunk gets its own "Echo: ". */
    struct tserver *t = start_seed();
    int fd = tcp_connect("localhost", tserver_port(t, 0));
    for (int i = 0; i < 3; i++) {
        char msg[32], want[64], got[64] = {0};
        int len = snprintf(msg, sizeof msg, "message %d", i);
        int wlen = snprintf(want, sizeof want, "Echo: %s", msg);
        send_all(fd, msg, (size_t)len);
        ck_assert_uint_eq(recv_exact(fd, got, (size_t)wlen, 5000), (size_t)wlen);
        ck_assert_str_eq(got, want);
    }
    /* The client closes; the server side ends with it (reason eof). */
    close(fd);
    tserver_stop(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("seed");
    TCase *tc = tcase_create("seed");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, seed_client_exchange);
    tcase_add_test(tc, seed_server_loop_answers_every_chunk);
    suite_add_tcase(s, tc);
    return check_run(s);
}
