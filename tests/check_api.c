/*
 * check_api.c - the public API's one style: every wharf_server_* and
 * wharf_log_* call that can fail returns 0 (or a port) or a negative errno
 * that tells one failure from another (a port in use from a bad key from a
 * missing handler), and still writes its line of text where it takes an err
 * buffer.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdbool.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "wharf.h"
#include "wharf_server.h"
#include "wharf_test.h"

static size_t api_data(wharf_conn *c, const void *data, size_t len)
{
    return len;
}

static const struct wharf_handler api_handler = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "api",
    .on_data = api_data,
};

/* A config from JSON text, or the test fails. */
static wharf_config *config(const char *json)
{
    char err[1024] = "";
    wharf_config *cfg = NULL;
    ck_assert_msg(wharf_config_from_json(json, "api.json", &cfg, err, sizeof err) == 0, "%s",
                  err);
    return cfg;
}

/* Starts a fresh server on json; returns its code, err holds the line. */
static int try_start(const char *json, char *err, size_t errlen)
{
    wharf_config *cfg = config(json);
    wharf_server *srv = wharf_server_new();
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(wharf_server_add_handler(srv, &api_handler), 0);
    err[0] = '\0';
    int rc = wharf_server_start(srv, cfg, err, errlen);
    wharf_server_free(srv);
    wharf_config_free(cfg);
    return rc;
}

/* A listening TCP socket on 127.0.0.1 and its port. */
static int listen_somewhere(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

START_TEST(start_on_a_port_in_use_returns_eaddrinuse)
{
    int port, fd = listen_somewhere(&port);
    char json[256], err[1024];
    snprintf(json, sizeof json,
             "{\"listeners\": [{\"address\": \"127.0.0.1\", \"port\": %d, \"handler\": \"api\"}]}",
             port);
    ck_assert_int_eq(try_start(json, err, sizeof err), -EADDRINUSE);
    ck_assert_msg(strstr(err, "api.json: listeners[0]: cannot bind") &&
                      strstr(err, "Address already in use"), "err: %s", err);
    close(fd);
}
END_TEST

START_TEST(start_with_a_bad_key_returns_einval)
{
    char err[1024] = "";
    wharf_config *cfg = wharf_config_new();
    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(wharf_config_set(cfg, "listeners[0]",
                                      "{\"port\": 0, \"handler\": \"api\", \"bogus\": 1}", err,
                                      sizeof err), 0);
    wharf_server *srv = wharf_server_new();
    ck_assert_int_eq(wharf_server_add_handler(srv, &api_handler), 0);
    ck_assert_int_eq(wharf_server_check(srv, cfg, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "bogus"), "err: %s", err);
    err[0] = '\0';
    ck_assert_int_eq(wharf_server_start(srv, cfg, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "listeners[0].bogus"), "err: %s", err);
    ck_assert_int_eq(wharf_server_port(srv, "tcp-0"), -ENOENT); /* nothing started */
    wharf_server_free(srv);
    wharf_config_free(cfg);
}
END_TEST

START_TEST(start_tells_a_missing_handler_from_a_refusing_one)
{
    char err[1024];
    ck_assert_int_eq(try_start("{\"listeners\": [{\"port\": 0, \"handler\": \"no_such_handler\"}]}",
                               err, sizeof err), -ENOENT);
    ck_assert_msg(strstr(err, "no_such_handler") && strstr(err, "not found"), "err: %s", err);
    ck_assert_int_eq(try_start("{\"listeners\": [{\"port\": 0, \"handler\": \"/nonexistent/x.so\"}]}",
                               err, sizeof err), -ENOENT);
    ck_assert_int_eq(try_start("{\"listeners\": [{\"port\": 0, \"handler\": \"mod_refuse\"}]}",
                               err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "mod_refuse says no"), "err: %s", err);
    /* A module for the other protocol: found, but refused. */
    ck_assert_int_eq(try_start("{\"listeners\": [{\"port\": 0, \"handler\": \"udp_echo\"}]}",
                               err, sizeof err), -EINVAL);
    ck_assert_int_eq(try_start("{\"listeners\": [{\"address\": \"no.such.host.invalid\", "
                               "\"port\": 0, \"handler\": \"api\"}]}", err, sizeof err),
                     -EADDRNOTAVAIL);
}
END_TEST

START_TEST(add_handler_returns_negative_errno)
{
    wharf_server *srv = wharf_server_new();
    ck_assert_int_eq(wharf_server_add_handler(srv, NULL), -EINVAL);
    ck_assert_int_eq(wharf_server_add_handler(NULL, &api_handler), -EINVAL);
    struct wharf_handler nameless = api_handler;
    nameless.name = "";
    ck_assert_int_eq(wharf_server_add_handler(srv, &nameless), -EINVAL);
    struct wharf_handler future = api_handler;
    future.abi_version = WHARF_ABI_VERSION + 1;
    ck_assert_int_eq(wharf_server_add_handler(srv, &future), -EINVAL);
    ck_assert_int_eq(wharf_server_add_handler(srv, &api_handler), 0);
    ck_assert_int_eq(wharf_server_add_handler(srv, &api_handler), -EEXIST);
    static struct wharf_handler many[64];
    static char names[64][16];
    int rc = 0, added = 1;
    for (int i = 0; i < 64 && rc == 0; i++) {
        many[i] = api_handler;
        snprintf(names[i], sizeof names[i], "h%d", i);
        many[i].name = names[i];
        if ((rc = wharf_server_add_handler(srv, &many[i])) == 0)
            added++;
    }
    ck_assert_int_eq(rc, -ENOSPC);
    ck_assert_int_eq(added, 64);
    wharf_server_free(srv);
}
END_TEST

START_TEST(calls_on_a_server_that_is_not_running)
{
    char err[1024] = "";
    wharf_server *srv = wharf_server_new();
    wharf_config *cfg = config("{\"listeners\": [{\"name\": \"a\", \"address\": \"127.0.0.1\", "
                               "\"port\": 0, \"handler\": \"api\"}]}");
    ck_assert_int_eq(wharf_server_add_handler(srv, &api_handler), 0);
    ck_assert_int_eq(wharf_server_reload(srv, cfg, err, sizeof err), -ESRCH);
    ck_assert_str_eq(err, "server not running");
    ck_assert_int_eq(wharf_server_ping(srv, 100), -ESRCH);
    struct wharf_listener_stats st;
    ck_assert_int_eq(wharf_server_stats(srv, "a", &st), -ENOENT);

    ck_assert_int_eq(wharf_server_start(srv, cfg, err, sizeof err), 0);
    ck_assert_int_gt(wharf_server_port(srv, "a"), 0);
    ck_assert_int_eq(wharf_server_port(srv, "b"), -ENOENT);
    ck_assert_int_eq(wharf_server_stats(srv, "b", &st), -ENOENT);
    ck_assert_int_eq(wharf_server_start(srv, cfg, err, sizeof err), -EALREADY);
    ck_assert_str_eq(err, "server already started");
    ck_assert_int_eq(wharf_server_ping(srv, 2000), 0);
    ck_assert_int_eq(wharf_server_reload(srv, NULL, err, sizeof err), -EINVAL);

    wharf_server_stop(srv);
    ck_assert_int_eq(wharf_server_port(srv, "a"), -ESRCH); /* known, but nothing bound */
    ck_assert_int_eq(wharf_server_stats(srv, "a", &st), 0); /* the final counters */
    ck_assert_int_eq(wharf_server_ping(srv, 100), -ESRCH);
    wharf_server_free(srv);
    wharf_config_free(cfg);
}
END_TEST

START_TEST(log_file_calls_return_negative_errno)
{
    ck_assert_int_eq(wharf_log_set_file("/nonexistent/dir/wharf.log"), -ENOENT);
    ck_assert_int_eq(wharf_log_reopen(), 0); /* no file set: nothing to do */
    char path[] = "/tmp/wharf-api-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(wharf_log_set_file(path), 0);
    ck_assert_int_eq(wharf_log_reopen(), 0);
    ck_assert_int_eq(wharf_log_set_file(NULL), 0);
    unlink(path);
    /* log_file in a config: start says which open(2) error. */
    char err[1024];
    ck_assert_int_eq(try_start("{\"log_file\": \"/nonexistent/dir/wharf.log\", \"listeners\": "
                               "[{\"port\": 0, \"handler\": \"api\"}]}", err, sizeof err),
                     -ENOENT);
    ck_assert_msg(strstr(err, "log_file: cannot open"), "err: %s", err);
}
END_TEST

START_TEST(crash_report_install_returns_zero)
{
    ck_assert_int_eq(wharf_crash_report_install(), 0);
    ck_assert_int_eq(wharf_crash_report_install(), 0); /* idempotent */
}
END_TEST

/* ---- the version ------------------------------------------------------------ */

START_TEST(version_macros_follow_configure)
{
    char composed[64];
    snprintf(composed, sizeof composed, "%d.%d.%d", WHARF_VERSION_MAJOR, WHARF_VERSION_MINOR,
             WHARF_VERSION_PATCH);
    ck_assert_str_eq(composed, WHARF_VERSION_STRING);
    /* PACKAGE_VERSION is configure.ac's AC_INIT version. */
    ck_assert_str_eq(WHARF_VERSION_STRING, PACKAGE_VERSION);
    ck_assert_str_eq(wharf_version(), WHARF_VERSION_STRING);
}
END_TEST

/* ---- public structs keep their size ------------------------------------------ */

/* The sizes are part of the interface: a program built against 0.2.0's
 * headers passes these to every later library.  A change here is a new
 * libwharf interface (Makefile.am's LIBWHARF_VERSION, age 0). */
START_TEST(public_structs_keep_their_size)
{
    ck_assert_uint_eq(sizeof(struct wharf_listener_stats), 256);
    ck_assert_uint_eq(offsetof(struct wharf_listener_stats, datagram_send_calls), 200);
    ck_assert_uint_eq(offsetof(struct wharf_listener_stats, reserved), 208);
    ck_assert_uint_eq(sizeof(struct wharf_server_info), 104);
    ck_assert_uint_eq(offsetof(struct wharf_server_info, reserved), 40);
    ck_assert_uint_eq(sizeof(struct wharf_framing), 80);
    ck_assert_uint_eq(offsetof(struct wharf_framing, reserved), 48);
    ck_assert_int_le(WHARF_CLOSE_EVICTED + 1, WHARF_CLOSE_REASON_SLOTS);
}
END_TEST

static bool all_zero(const uint64_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (w[i] != 0)
            return false;
    return true;
}

START_TEST(the_library_writes_zeros_into_the_room)
{
    char err[1024] = "";
    wharf_server *srv = wharf_server_new();
    wharf_config *cfg = config("{\"workers\": 2, \"listeners\": [{\"name\": \"a\", "
                               "\"address\": \"127.0.0.1\", \"port\": 0, \"handler\": \"api\"}]}");
    ck_assert_int_eq(wharf_server_add_handler(srv, &api_handler), 0);
    ck_assert_msg(wharf_server_start(srv, cfg, err, sizeof err) == 0, "%s", err);
    struct wharf_listener_stats st;
    memset(&st, 0xa5, sizeof st);
    ck_assert_int_eq(wharf_server_stats(srv, "a", &st), 0);
    ck_assert(all_zero(st.reserved, sizeof st.reserved / sizeof st.reserved[0]));
    ck_assert(all_zero(&st.closed[WHARF_CLOSE_EVICTED + 1],
                       WHARF_CLOSE_REASON_SLOTS - (WHARF_CLOSE_EVICTED + 1)));
    ck_assert_uint_eq(st.accepted, 0);
    struct wharf_server_info info;
    memset(&info, 0xa5, sizeof info);
    wharf_server_info(srv, &info);
    ck_assert_uint_eq(info.workers, 2);
    ck_assert_uint_eq(info.generation, 1);
    ck_assert(all_zero(info.reserved, sizeof info.reserved / sizeof info.reserved[0]));
    wharf_server_stop(srv);
    memset(&st, 0xa5, sizeof st); /* the final counters, too */
    ck_assert_int_eq(wharf_server_stats(srv, "a", &st), 0);
    ck_assert(all_zero(st.reserved, sizeof st.reserved / sizeof st.reserved[0]));
    wharf_server_free(srv);
    wharf_config_free(cfg);
}
END_TEST

START_TEST(framing_with_reserved_words_set_is_refused)
{
    struct wharf_framing f = {.kind = WHARF_FRAME_LINE};
    struct wharf_frame fr;
    const char *why = NULL;
    ck_assert_int_eq(wharf_frame_next(&f, "hi\n", 3, &fr, &why, NULL), 3);
    f.reserved[3] = 1; /* as a caller built against a later wharf.h might */
    ck_assert_int_eq(wharf_frame_next(&f, "hi\n", 3, &fr, &why, NULL), -EINVAL);
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strstr(why, "reserved"), "%s", why);
}
END_TEST

/* ---- names ---------------------------------------------------------------------- */

/* Replies with the worker index under the new name and the old one. */
static size_t names_data(wharf_conn *c, const void *data, size_t len)
{
    char out[64];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    unsigned old = wharf_worker_id(c); /* as a module built against 0.1 calls it */
#pragma GCC diagnostic pop
    int n = snprintf(out, sizeof out, "%u %u %u", wharf_conn_worker_index(c), old,
                     wharf_worker_index(wharf_conn_worker(c)));
    wharf_send(c, out, (size_t)n);
    return len;
}

static const struct wharf_handler names_handler = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "names",
    .on_data = names_data,
};

START_TEST(renamed_calls_keep_their_old_names)
{
    char err[512] = "";
    wharf_test *t = wharf_test_new(&names_handler, NULL, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    ck_assert_int_eq(wharf_test_send(c, "x", 1), 0);
    size_t len;
    const char *out = wharf_test_output(c, &len);
    ck_assert_str_eq(out, "0 0 0");
    wharf_test_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, start_on_a_port_in_use_returns_eaddrinuse);
    tcase_add_test(tc, start_with_a_bad_key_returns_einval);
    tcase_add_test(tc, start_tells_a_missing_handler_from_a_refusing_one);
    tcase_add_test(tc, add_handler_returns_negative_errno);
    tcase_add_test(tc, calls_on_a_server_that_is_not_running);
    tcase_add_test(tc, log_file_calls_return_negative_errno);
    tcase_add_test(tc, crash_report_install_returns_zero);
    suite_add_tcase(s, tc);
    tc = tcase_create("version");
    tcase_add_test(tc, version_macros_follow_configure);
    suite_add_tcase(s, tc);
    tc = tcase_create("structs");
    tcase_add_test(tc, public_structs_keep_their_size);
    tcase_add_test(tc, the_library_writes_zeros_into_the_room);
    tcase_add_test(tc, framing_with_reserved_words_set_is_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("names");
    tcase_add_test(tc, renamed_calls_keep_their_old_names);
    suite_add_tcase(s, tc);
    return check_run(s);
}
