/*
 * check_config.c - the JSON config loader (framework/config/config.c): the shipped
 * configs load with the expected fields, defaults are filled in, relative
 * module_path entries are resolved, and every kind of invalid config fails
 * with its exact one-line message (file, JSON path, what was expected).
 * Every test frees what it loads, so ASan and valgrind stay quiet.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "config.h"
#include "wharf.h"
#include "wharf_server.h"

/* Loads `text` as "x.json"; fails the test with the error if it is invalid. */
static struct config *load_ok(const char *text)
{
    char err[512] = "";
    struct config *cfg = NULL;
    if (config_load_string(text, "x.json", &cfg, err, sizeof err) != 0)
        ck_abort_msg("unexpected error: %s", err);
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

/* Asserts that `text` fails with exactly "x.json: " `msg`, or for syntax
 * errors "x.json:" `msg` (msg starts with LINE:COLUMN). */
#define ASSERT_ERR(text, msg) assert_err(text, "x.json: ", msg, __LINE__)
#define ASSERT_SYNTAX(text, msg) assert_err(text, "x.json:", msg, __LINE__)

static void assert_err(const char *text, const char *prefix, const char *msg, int line)
{
    char err[512] = "", want[512];
    struct config *cfg = (struct config *)1;
    int rc = config_load_string(text, "x.json", &cfg, err, sizeof err);
    ck_assert_msg(rc == -1, "line %d: loaded, expected error: %s", line, msg);
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof want, "%s%s", prefix, msg);
    ck_assert_msg(strcmp(err, want) == 0, "line %d:\n  got:  %s\n  want: %s", line, err, want);
}

/* Wraps one listener object's members: {"listeners":[{<members>}]}. */
#define ONE(members) "{\"listeners\": [{" members "}]}"
#define BASE "\"port\": 1, \"handler\": \"h\""
/* Listeners of one config need ports of their own. */
#define BASE2 "\"port\": 2, \"handler\": \"h\""
#define BASE3 "\"port\": 3, \"handler\": \"h\""

/* Path of a file in the source tree. */
static void src_path(char *buf, size_t len, const char *rel)
{
    const char *src = getenv("WHARF_SRCDIR");
    snprintf(buf, len, "%s/%s", src && *src ? src : ".", rel);
}

/* Writes `text` into a new temporary file; its name goes into path. */
static void temp_file(char *path, size_t len, const char *text)
{
    snprintf(path, len, "/tmp/check_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(text);
    ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static char *cwd_join(const char *rel)
{
    char *cwd = getcwd(NULL, 0), *out;
    ck_assert_ptr_nonnull(cwd);
    ck_assert_int_ge(asprintf(&out, "%s%s", cwd, rel), 0);
    free(cwd);
    return out;
}

/* ---- shipped configs --------------------------------------------------------- */

START_TEST(shipped_default_config)
{
    char path[PATH_MAX], err[512] = "";
    src_path(path, sizeof path, "config/wharf.json");
    struct config *cfg = NULL;
    if (config_load_file(path, &cfg, err, sizeof err) != 0)
        ck_abort_msg("%s", err);
    ck_assert_str_eq(cfg->file, path);
    ck_assert_int_eq(cfg->log_level, WHARF_LOG_INFO);
    ck_assert_int_ge(cfg->workers, 1);
    ck_assert_ptr_null(cfg->module_path);
    ck_assert_uint_eq(cfg->nlisteners, 2);

    const struct config_listener *tcp = &cfg->listeners[0], *udp = &cfg->listeners[1];
    ck_assert_str_eq(tcp->name, "echo");
    ck_assert_int_eq(tcp->protocol, CONFIG_TCP);
    ck_assert_str_eq(tcp->address, "127.0.0.1");
    ck_assert_int_eq(tcp->port, 7007);
    ck_assert_str_eq(tcp->handler, "echo");
    ck_assert_str_eq(tcp->path, "listeners[0]");
    ck_assert_str_eq(udp->name, "udp-echo");
    ck_assert_int_eq(udp->protocol, CONFIG_UDP);
    ck_assert_str_eq(udp->address, "127.0.0.1");
    ck_assert_int_eq(udp->port, 7007);
    ck_assert_str_eq(udp->handler, "udp_echo");
    ck_assert_str_eq(udp->path, "listeners[1]");
    config_free(cfg);
}
END_TEST

START_TEST(shipped_seed_config)
{
    char path[PATH_MAX], err[512] = "";
    src_path(path, sizeof path, "config/seed.json");
    struct config *cfg = NULL;
    if (config_load_file(path, &cfg, err, sizeof err) != 0)
        ck_abort_msg("%s", err);
    ck_assert_uint_eq(cfg->nlisteners, 1);
    const struct config_listener *l = &cfg->listeners[0];
    ck_assert_int_eq(l->protocol, CONFIG_TCP);
    ck_assert_str_eq(l->name, "tcp-0");
    ck_assert_str_eq(l->address, "localhost");
    ck_assert_int_eq(l->port, 8080);
    ck_assert_str_eq(l->handler, "echo");
    ck_assert_uint_eq(json_object_size(l->options), 1);
    ck_assert_str_eq(json_string_value(json_object_get(l->options, "prefix")), "Echo: ");
    config_free(cfg);
}
END_TEST

/* ---- values and defaults ----------------------------------------------------- */

START_TEST(defaults_applied)
{
    struct config *cfg = load_ok(ONE("\"port\": 0, \"handler\": \"echo\""));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(cfg->workers, cpus < 1 ? 1 : cpus > 1024 ? 1024 : cpus);
    ck_assert_int_eq(cfg->queue_depth, 1024);
    ck_assert_int_eq(cfg->max_connections, 10000);
    ck_assert_int_eq(cfg->max_connections_per_source, 0);
    ck_assert_ptr_null(cfg->module_path);
    ck_assert_int_eq(cfg->log_level, WHARF_LOG_INFO);
    ck_assert_uint_eq(cfg->shutdown_timeout_ms, 5000);
    ck_assert_int_eq(cfg->acceptor_nice, 5);
    ck_assert_str_eq(cfg->file, "x.json");

    const struct config_listener *l = &cfg->listeners[0];
    ck_assert_str_eq(l->name, "tcp-0");
    ck_assert_str_eq(l->path, "listeners[0]");
    ck_assert_int_eq(l->protocol, CONFIG_TCP);
    ck_assert_str_eq(l->address, "127.0.0.1");
    ck_assert_int_eq(l->port, 0);
    ck_assert_int_eq(l->backlog, 511);
    ck_assert(!l->ipv6_only);
    ck_assert(l->reuse_address);
    ck_assert(!l->reuse_port);
    ck_assert(l->tcp_nodelay);
    ck_assert(!l->keepalive);
    ck_assert_int_eq(l->recv_buffer, 0);
    ck_assert_int_eq(l->send_buffer, 0);
    ck_assert_uint_eq(l->timeouts.idle_ms, 60000);
    ck_assert_uint_eq(l->timeouts.write_ms, 30000);
    ck_assert_uint_eq(l->timeouts.lifetime_ms, 0);
    ck_assert_uint_eq(l->high_watermark, 65536);
    ck_assert_uint_eq(l->low_watermark, 16384);
    ck_assert_uint_eq(l->max_input, 1048576);
    ck_assert_uint_eq(l->max_output, 16777216);
    ck_assert_str_eq(l->handler, "echo");
    ck_assert(json_is_object(l->options));
    ck_assert_uint_eq(json_object_size(l->options), 0);
    config_free(cfg);
}
END_TEST

START_TEST(every_key_set)
{
    struct config *cfg = load_ok(
        "{\"workers\": 3, \"queue_depth\": 7, \"max_connections\": 9, \"log\": \"debug\","
        " \"shutdown_timeout_ms\": 0, \"module_path\": \"/opt/a:/opt/b\", \"acceptor_nice\": 0,"
        " \"listeners\": [{\"name\": \"web\", \"protocol\": \"tcp\", \"address\": \"::\","
        "  \"port\": 65535, \"backlog\": 65535, \"ipv6_only\": true, \"reuse_address\": false,"
        "  \"reuse_port\": true, \"tcp_nodelay\": false, \"keepalive\": true,"
        "  \"recv_buffer\": 1073741824, \"send_buffer\": 4096,"
        "  \"timeouts\": {\"idle_ms\": 0, \"write_ms\": 86400000, \"lifetime_ms\": 5},"
        "  \"buffers\": {\"high_watermark\": 2000, \"low_watermark\": 1000,"
        "               \"max_input\": 1024, \"max_output\": 2000},"
        "  \"handler\": \"./x.so\", \"options\": {\"a\": [1, 2], \"b\": {}}}]}");
    ck_assert_int_eq(cfg->workers, 3);
    ck_assert_int_eq(cfg->queue_depth, 7);
    ck_assert_int_eq(cfg->max_connections, 9);
    ck_assert_int_eq(cfg->log_level, WHARF_LOG_DEBUG);
    ck_assert_uint_eq(cfg->shutdown_timeout_ms, 0);
    ck_assert_int_eq(cfg->acceptor_nice, 0);
    ck_assert_str_eq(cfg->module_path, "/opt/a:/opt/b");

    const struct config_listener *l = &cfg->listeners[0];
    ck_assert_str_eq(l->name, "web");
    ck_assert_str_eq(l->address, "::");
    ck_assert_int_eq(l->port, 65535);
    ck_assert_int_eq(l->backlog, 65535);
    ck_assert(l->ipv6_only);
    ck_assert(!l->reuse_address);
    ck_assert(l->reuse_port);
    ck_assert(!l->tcp_nodelay);
    ck_assert(l->keepalive);
    ck_assert_int_eq(l->recv_buffer, 1073741824);
    ck_assert_int_eq(l->send_buffer, 4096);
    ck_assert_uint_eq(l->timeouts.idle_ms, 0);
    ck_assert_uint_eq(l->timeouts.write_ms, 86400000);
    ck_assert_uint_eq(l->timeouts.lifetime_ms, 5);
    ck_assert_uint_eq(l->high_watermark, 2000);
    ck_assert_uint_eq(l->low_watermark, 1000);
    ck_assert_uint_eq(l->max_input, 1024);
    ck_assert_uint_eq(l->max_output, 2000);
    /* Relative to the current directory for config text from memory. */
    char cwd[4096], want[4200];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/x.so", cwd);
    ck_assert_str_eq(l->handler, want);
    ck_assert_uint_eq(json_object_size(l->options), 2);
    ck_assert_uint_eq(json_array_size(json_object_get(l->options, "a")), 2);
    config_free(cfg);
}
END_TEST

START_TEST(partial_nested_objects_keep_defaults)
{
    struct config *cfg = load_ok(ONE(BASE ", \"timeouts\": {\"idle_ms\": 5},"
                                     " \"buffers\": {\"max_input\": 4096}"));
    const struct config_listener *l = &cfg->listeners[0];
    ck_assert_uint_eq(l->timeouts.idle_ms, 5);
    ck_assert_uint_eq(l->timeouts.write_ms, 30000);
    ck_assert_uint_eq(l->timeouts.lifetime_ms, 0);
    ck_assert_uint_eq(l->max_input, 4096);
    ck_assert_uint_eq(l->high_watermark, 65536);
    ck_assert_uint_eq(l->low_watermark, 16384);
    ck_assert_uint_eq(l->max_output, 16777216);
    config_free(cfg);
}
END_TEST

START_TEST(default_names_and_paths)
{
    struct config *cfg = load_ok(
        "{\"listeners\": [{" BASE "}, {\"protocol\": \"udp\", " BASE "},"
        " {\"name\": \"x\", " BASE2 "}, {\"protocol\": \"tcp\", " BASE3 "}]}");
    ck_assert_uint_eq(cfg->nlisteners, 4);
    ck_assert_str_eq(cfg->listeners[0].name, "tcp-0");
    ck_assert_str_eq(cfg->listeners[1].name, "udp-1");
    ck_assert_int_eq(cfg->listeners[1].protocol, CONFIG_UDP);
    ck_assert_str_eq(cfg->listeners[2].name, "x");
    ck_assert_str_eq(cfg->listeners[3].name, "tcp-3");
    ck_assert_str_eq(cfg->listeners[3].path, "listeners[3]");
    config_free(cfg);
}
END_TEST

START_TEST(log_levels)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const int levels[] = {WHARF_LOG_ERROR, WHARF_LOG_WARN, WHARF_LOG_INFO,
                                 WHARF_LOG_DEBUG};
    for (int i = 0; i < 4; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"log\": \"%s\", \"listeners\": [{" BASE "}]}",
                 names[i]);
        struct config *cfg = load_ok(text);
        ck_assert_int_eq(cfg->log_level, levels[i]);
        config_free(cfg);
    }
}
END_TEST

START_TEST(free_null)
{
    config_free(NULL);
}
END_TEST

/* ---- module_path ----------------------------------------------------------- */

START_TEST(module_path_relative_to_cwd_for_strings)
{
    struct config *cfg = load_ok("{\"module_path\": \"mods:./more:/abs:.\","
                                 " \"listeners\": [{" BASE "}]}");
    char *cwd = cwd_join("");
    char *want;
    ck_assert_int_ge(asprintf(&want, "%s/mods:%s/more:/abs:%s", cwd, cwd, cwd), 0);
    ck_assert_str_eq(cfg->module_path, want);
    free(want);
    free(cwd);
    config_free(cfg);
}
END_TEST

START_TEST(module_path_relative_to_config_file)
{
    char path[64], err[512] = "";
    temp_file(path, sizeof path,
              "{\"module_path\": \"handlers:/usr/lib/wharf\", \"listeners\": [{" BASE "}]}");
    struct config *cfg = NULL;
    int rc = config_load_file(path, &cfg, err, sizeof err);
    unlink(path);
    if (rc != 0)
        ck_abort_msg("%s", err);
    ck_assert_str_eq(cfg->module_path, "/tmp/handlers:/usr/lib/wharf");
    config_free(cfg);
}
END_TEST

START_TEST(handler_path_relative_to_config_file)
{
    char path[64], err[512] = "";
    temp_file(path, sizeof path,
              "{\"listeners\": [{\"port\": 1, \"handler\": \"./mods/x.so\"},"
              " {\"port\": 2, \"handler\": \"mods/y.so\"}, {\"port\": 3, \"handler\": \"/abs/z.so\"},"
              " {\"port\": 4, \"handler\": \"echo\"}]}");
    struct config *cfg = NULL;
    int rc = config_load_file(path, &cfg, err, sizeof err);
    unlink(path);
    if (rc != 0)
        ck_abort_msg("%s", err);
    ck_assert_str_eq(cfg->listeners[0].handler, "/tmp/mods/x.so");
    ck_assert_str_eq(cfg->listeners[1].handler, "/tmp/mods/y.so");
    ck_assert_str_eq(cfg->listeners[2].handler, "/abs/z.so");
    ck_assert_str_eq(cfg->listeners[3].handler, "echo");
    config_free(cfg);
}
END_TEST

START_TEST(module_path_relative_file_name)
{
    /* A config named by a relative path: its directory is taken from the cwd. */
    char dir[] = "/tmp/check_config_dir_XXXXXX", file[128], err[512] = "";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/c.json", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"module_path\": \"m\", \"listeners\": [{" BASE "}]}", f);
    fclose(f);

    char *old = getcwd(NULL, 0), dotted[160];
    snprintf(dotted, sizeof dotted, "./%s", file + strlen("/tmp/"));
    ck_assert_int_eq(chdir("/tmp"), 0);
    struct config *cfg = NULL, *cfg2 = NULL;
    int rc = config_load_file(file + strlen("/tmp/"), &cfg, err, sizeof err);
    int rc2 = config_load_file(dotted, &cfg2, err, sizeof err);
    ck_assert_int_eq(chdir(old), 0);
    free(old);
    unlink(file);
    rmdir(dir);
    if (rc != 0 || rc2 != 0)
        ck_abort_msg("%s", err);
    char want[160];
    snprintf(want, sizeof want, "%s/m", dir);
    ck_assert_str_eq(cfg->module_path, want);
    ck_assert_str_eq(cfg->file, file + strlen("/tmp/"));
    ck_assert_str_eq(cfg2->module_path, want);
    config_free(cfg);
    config_free(cfg2);
}
END_TEST

START_TEST(module_path_invalid)
{
    ASSERT_ERR("{\"module_path\": \"a::b\", \"listeners\": [{" BASE "}]}",
               "module_path: expected colon-separated non-empty directories, got \"a::b\"");
    ASSERT_ERR("{\"module_path\": \"\", \"listeners\": [{" BASE "}]}",
               "module_path: expected a non-empty string, got \"\"");
    ASSERT_ERR("{\"module_path\": [\"a\"], \"listeners\": [{" BASE "}]}",
               "module_path: expected a non-empty string, got an array");
}
END_TEST

/* ---- invalid values -------------------------------------------------------- */

START_TEST(wrong_types)
{
    ASSERT_ERR("{\"listeners\": [{" BASE "}, {\"port\": \"http\", \"handler\": \"h\"}]}",
               "listeners[1].port: expected an integer 0..65535, got \"http\"");
    ASSERT_ERR(ONE("\"port\": 80.0, \"handler\": \"h\""),
               "listeners[0].port: expected an integer 0..65535, got 80.0");
    ASSERT_ERR("{\"workers\": \"4\", \"listeners\": [{" BASE "}]}",
               "workers: expected an integer 1..1024, got \"4\"");
    ASSERT_ERR("{\"queue_depth\": null, \"listeners\": [{" BASE "}]}",
               "queue_depth: expected an integer 1..1000000, got null");
    ASSERT_ERR(ONE(BASE ", \"tcp_nodelay\": 1"),
               "listeners[0].tcp_nodelay: expected true or false, got 1");
    ASSERT_ERR(ONE(BASE ", \"keepalive\": \"yes\""),
               "listeners[0].keepalive: expected true or false, got \"yes\"");
    ASSERT_ERR(ONE(BASE ", \"address\": 127"),
               "listeners[0].address: expected a non-empty string, got 127");
    ASSERT_ERR(ONE(BASE ", \"address\": \"\""),
               "listeners[0].address: expected a non-empty string, got \"\"");
    ASSERT_ERR(ONE("\"port\": 1, \"handler\": \"\""),
               "listeners[0].handler: expected a non-empty string, got \"\"");
    ASSERT_ERR(ONE("\"port\": 1, \"handler\": {\"x\": 1}"),
               "listeners[0].handler: expected a non-empty string, got an object");
    ASSERT_ERR(ONE(BASE ", \"name\": false"),
               "listeners[0].name: expected a non-empty string, got false");
    ASSERT_ERR(ONE(BASE ", \"options\": [1]"),
               "listeners[0].options: expected an object, got an array");
    ASSERT_ERR(ONE(BASE ", \"options\": \"prefix\""),
               "listeners[0].options: expected an object, got \"prefix\"");
    ASSERT_ERR(ONE(BASE ", \"timeouts\": 5"),
               "listeners[0].timeouts: expected an object {idle_ms, write_ms, lifetime_ms,"
               " handshake_ms, read_idle_ms, write_idle_ms, min_rate, min_rate_window_ms},"
               " got 5");
    ASSERT_ERR(ONE(BASE ", \"buffers\": []"),
               "listeners[0].buffers: expected an object {high_watermark, low_watermark,"
               " max_input, max_output}, got an empty array");
    ASSERT_ERR(ONE(BASE ", \"timeouts\": {\"write_ms\": \"1s\"}"),
               "listeners[0].timeouts.write_ms: expected a non-negative integer"
               " (milliseconds), got \"1s\"");
    ASSERT_ERR("{\"listeners\": [{" BASE "}, 7]}",
               "listeners[1]: expected an object, got 7");
}
END_TEST

START_TEST(out_of_range)
{
    ASSERT_ERR(ONE("\"port\": 65536, \"handler\": \"h\""),
               "listeners[0].port: expected an integer 0..65535, got 65536");
    ASSERT_ERR(ONE("\"port\": -1, \"handler\": \"h\""),
               "listeners[0].port: expected an integer 0..65535, got -1");
    ASSERT_ERR("{\"workers\": 0, \"listeners\": [{" BASE "}]}",
               "workers: expected an integer 1..1024, got 0");
    ASSERT_ERR("{\"workers\": 1025, \"listeners\": [{" BASE "}]}",
               "workers: expected an integer 1..1024, got 1025");
    ASSERT_ERR("{\"queue_depth\": 1000001, \"listeners\": [{" BASE "}]}",
               "queue_depth: expected an integer 1..1000000, got 1000001");
    ASSERT_ERR("{\"max_connections\": 0, \"listeners\": [{" BASE "}]}",
               "max_connections: expected an integer 1..10000000, got 0");
    ASSERT_ERR("{\"max_connections_per_source\": -1, \"listeners\": [{" BASE "}]}",
               "max_connections_per_source: expected an integer 0..10000000, got -1");
    ASSERT_ERR("{\"shutdown_timeout_ms\": 3600001, \"listeners\": [{" BASE "}]}",
               "shutdown_timeout_ms: expected at most 3600000 (milliseconds), got 3600001");
    ASSERT_ERR("{\"acceptor_nice\": 20, \"listeners\": [{" BASE "}]}",
               "acceptor_nice: expected an integer 0..19, got 20");
    ASSERT_ERR("{\"acceptor_nice\": -1, \"listeners\": [{" BASE "}]}",
               "acceptor_nice: expected an integer 0..19, got -1");
    ASSERT_ERR("{\"shutdown_timeout_ms\": -1, \"listeners\": [{" BASE "}]}",
               "shutdown_timeout_ms: expected a non-negative integer (milliseconds), got -1");
    ASSERT_ERR(ONE(BASE ", \"backlog\": 0"),
               "listeners[0].backlog: expected an integer 1..65535, got 0");
    ASSERT_ERR(ONE(BASE ", \"recv_buffer\": 1073741825"),
               "listeners[0].recv_buffer: expected an integer 0..1073741824, got 1073741825");
    ASSERT_ERR(ONE(BASE ", \"send_buffer\": -1"),
               "listeners[0].send_buffer: expected an integer 0..1073741824, got -1");
    ASSERT_ERR(ONE(BASE ", \"timeouts\": {\"idle_ms\": -5}"),
               "listeners[0].timeouts.idle_ms: expected a non-negative integer"
               " (milliseconds), got -5");
    ASSERT_ERR(ONE(BASE ", \"timeouts\": {\"lifetime_ms\": 86400001}"),
               "listeners[0].timeouts.lifetime_ms: expected at most 86400000 (milliseconds),"
               " got 86400001");
    ASSERT_ERR(ONE(BASE ", \"buffers\": {\"max_input\": 1023}"),
               "listeners[0].buffers.max_input: expected an integer 1024..1073741824,"
               " got 1023");
    ASSERT_ERR(ONE(BASE ", \"buffers\": {\"low_watermark\": 0}"),
               "listeners[0].buffers.low_watermark: expected an integer 1..1073741824,"
               " got 0");
}
END_TEST

START_TEST(long_values_are_cut)
{
    ASSERT_ERR(ONE("\"port\": \"a very long port name that goes on and on and on\","
                   " \"handler\": \"h\""),
               "listeners[0].port: expected an integer 0..65535,"
               " got \"a very long port name that goes on a...");
    /* Control characters and non-ASCII text are escaped: one line, any terminal. */
    ASSERT_ERR(ONE("\"port\": \"a\\nb\\u00e9\", \"handler\": \"h\""),
               "listeners[0].port: expected an integer 0..65535, got \"a\\nb\\u00E9\"");
}
END_TEST

START_TEST(unknown_keys)
{
    ASSERT_ERR("{\"wrokers\": 4, \"listeners\": [{" BASE "}]}", "wrokers: unknown key");
    ASSERT_ERR(ONE(BASE ", \"colour\": \"red\""), "listeners[0].colour: unknown key");
    ASSERT_ERR(ONE(BASE ", \"timeouts\": {\"idle\": 5}"),
               "listeners[0].timeouts.idle: unknown key");
    ASSERT_ERR(ONE(BASE ", \"buffers\": {\"max_inptu\": 4096}"),
               "listeners[0].buffers.max_inptu: unknown key");
    /* A control character in a key cannot break the line. */
    ASSERT_ERR(ONE(BASE ", \"a\\nb\": 1"), "listeners[0].a?b: unknown key");
}
END_TEST

START_TEST(missing_required)
{
    ASSERT_ERR(ONE("\"handler\": \"h\""),
               "listeners[0].port: missing, expected an integer 0..65535");
    ASSERT_ERR(ONE("\"port\": 1"),
               "listeners[0].handler: missing, expected a non-empty string"
               " (module name or path)");
    ASSERT_ERR("{\"workers\": 2}",
               "listeners: missing, expected a non-empty array of listener objects");
    ASSERT_ERR("{}", "listeners: missing, expected a non-empty array of listener objects");
}
END_TEST

START_TEST(empty_listeners)
{
    ASSERT_ERR("{\"listeners\": []}",
               "listeners: expected a non-empty array of listener objects,"
               " got an empty array");
    ASSERT_ERR("{\"listeners\": {\"port\": 1}}",
               "listeners: expected a non-empty array of listener objects, got an object");
}
END_TEST

START_TEST(duplicate_names)
{
    ASSERT_ERR("{\"listeners\": [{\"name\": \"a\", " BASE "}, {\"name\": \"b\", " BASE2 "},"
               " {\"name\": \"a\", " BASE3 "}]}",
               "listeners[2].name: expected a unique name, got \"a\" (listeners[0] has it)");
    /* A default name can collide with an explicit one too. */
    ASSERT_ERR("{\"listeners\": [{\"name\": \"tcp-1\", " BASE "}, {" BASE2 "}]}",
               "listeners[1].name: expected a unique name, got the default"
               " \"tcp-1\" (listeners[0] has it)");
}
END_TEST

START_TEST(duplicate_listeners)
{
    ASSERT_ERR("{\"listeners\": [{\"port\": 7100, \"handler\": \"echo\"},"
               " {\"port\": 7100, \"handler\": \"echo\"}]}",
               "listeners[1].port: expected a listener of its own, got tcp 127.0.0.1 port 7100 "
               "again (listeners[0] has it)");
    ASSERT_ERR("{\"listeners\": [{\"protocol\": \"udp\", \"port\": 7100, \"handler\": \"x\"},"
               " {\"protocol\": \"udp\", \"port\": 7100, \"handler\": \"x\"}]}",
               "listeners[1].port: expected a listener of its own, got udp 127.0.0.1 port 7100 "
               "again (listeners[0] has it)");
    /* TCP and UDP on one port, two addresses, or ephemeral ports are fine. */
    char err[512];
    struct config *cfg = NULL;
    ck_assert_msg(config_load_string("{\"listeners\": [{\"port\": 7100, \"handler\": \"x\"},"
                                     " {\"protocol\": \"udp\", \"port\": 7100, \"handler\": \"x\"},"
                                     " {\"address\": \"::1\", \"port\": 7100, \"handler\": \"x\"},"
                                     " {\"port\": 0, \"handler\": \"x\"}, {\"port\": 0, \"handler\": \"x\"}]}",
                                     "t.json", &cfg, err, sizeof err) == 0, "%s", err);
    config_free(cfg);
}
END_TEST

START_TEST(files_that_are_not_regular_or_too_big)
{
    char err[512];
    struct config *cfg = NULL;
    ck_assert_int_eq(config_load_file("/dev/zero", &cfg, err, sizeof err), -1);
    ck_assert_str_eq(err, "/dev/zero: cannot read: not a regular file");
    ck_assert_int_eq(config_load_file("/", &cfg, err, sizeof err), -1);
    ck_assert_str_eq(err, "/: cannot read: is a directory");
    char dir[] = "/tmp/wharf-cfg-XXXXXX", path[4200];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/fifo.json", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(config_load_file(path, &cfg, err, sizeof err), -1); /* does not block */
    ck_assert_msg(strstr(err, "cannot read: not a regular file"), "%s", err);
    unlink(path);
    snprintf(path, sizeof path, "%s/big.json", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < (1 << 20) + 1; i++)
        fputc(' ', f);
    fclose(f);
    ck_assert_int_eq(config_load_file(path, &cfg, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "cannot read: larger than 1 MiB"), "%s", err);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(watermark_order)
{
    ASSERT_ERR(ONE(BASE ", \"buffers\": {\"high_watermark\": 100, \"low_watermark\": 100}"),
               "listeners[0].buffers.low_watermark: expected less than high_watermark"
               " (100), got 100");
    /* Only high set, below the default low: high is the key to fix. */
    ASSERT_ERR(ONE(BASE ", \"buffers\": {\"high_watermark\": 1000}"),
               "listeners[0].buffers.high_watermark: expected more than low_watermark"
               " (16384), got 1000");
    ASSERT_ERR(ONE(BASE ", \"buffers\": {\"high_watermark\": 5000, \"max_output\": 4000,"
                   " \"low_watermark\": 10}"),
               "listeners[0].buffers.high_watermark: expected at most max_output (4000),"
               " got 5000");
    /* Only max_output set, below the default high: max_output is the key to fix. */
    ASSERT_ERR(ONE(BASE ", \"buffers\": {\"max_output\": 10000}"),
               "listeners[0].buffers.max_output: expected at least high_watermark"
               " (65536), got 10000");
    /* high == max_output is allowed. */
    struct config *cfg = load_ok(ONE(BASE ", \"buffers\": {\"max_output\": 65536}"));
    ck_assert_uint_eq(cfg->listeners[0].max_output, 65536);
    config_free(cfg);
}
END_TEST

START_TEST(bad_protocol)
{
    ASSERT_ERR(ONE(BASE ", \"protocol\": \"sctp\""),
               "listeners[0].protocol: expected \"tcp\" or \"udp\", got \"sctp\"");
    ASSERT_ERR(ONE(BASE ", \"protocol\": \"TCP\""),
               "listeners[0].protocol: expected \"tcp\" or \"udp\", got \"TCP\"");
}
END_TEST

START_TEST(udp_only_settings_on_tcp)
{
    ASSERT_ERR(ONE(BASE ", \"udp_gso\": true"),
               "listeners[0].udp_gso: expected false on a tcp listener (a UDP offload)");
    ASSERT_ERR(ONE(BASE ", \"udp_gro\": true"),
               "listeners[0].udp_gro: expected false on a tcp listener (a UDP offload)");
    ASSERT_ERR(ONE(BASE ", \"rate_limit\": 5"),
               "listeners[0].rate_limit: expected 0 on a tcp listener (it limits UDP datagrams)");
}
END_TEST

START_TEST(bad_log_level)
{
    ASSERT_ERR("{\"log\": \"verbose\", \"listeners\": [{" BASE "}]}",
               "log: expected \"error\", \"warn\", \"info\" or \"debug\", got \"verbose\"");
    ASSERT_ERR("{\"log\": 3, \"listeners\": [{" BASE "}]}",
               "log: expected \"error\", \"warn\", \"info\" or \"debug\", got 3");
}
END_TEST

START_TEST(not_an_object)
{
    ASSERT_ERR("[{\"port\": 1}]", "top level: expected an object, got an array");
    ASSERT_ERR("42", "top level: expected an object, got 42");
    ASSERT_ERR("\"wharf\"", "top level: expected an object, got \"wharf\"");
}
END_TEST

/* ---- parse errors and files ---------------------------------------------------- */

START_TEST(syntax_error_line_column)
{
    ASSERT_SYNTAX("{\n  \"listeners\": [\n    {\"port\": 1,, \"handler\": \"h\"}\n  ]\n}",
                  "3:16: syntax error: string or '}' expected near ','");
    ASSERT_SYNTAX("{\"listeners\": [", "1:15: syntax error: ']' expected near end of file");
    ASSERT_SYNTAX("", "1:0: syntax error: unexpected token near end of file");
}
END_TEST

START_TEST(syntax_error_in_file)
{
    char path[64], err[512] = "", want[600];
    temp_file(path, sizeof path, "{\n  \"workers\": 4\n  \"listeners\": []\n}\n");
    struct config *cfg = (struct config *)1;
    int rc = config_load_file(path, &cfg, err, sizeof err);
    unlink(path);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof want, "%s:3:13: syntax error: '}' expected near '\"listeners\"'",
             path);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(duplicate_json_keys)
{
    ASSERT_SYNTAX("{\"listeners\": [{\"port\": 1,\n \"port\": 2, \"handler\": \"h\"}]}",
                  "2:7: syntax error: duplicate object key near '\"port\"'");
}
END_TEST

START_TEST(missing_file)
{
    char err[512] = "";
    struct config *cfg = (struct config *)1;
    ck_assert_int_eq(config_load_file("/nonexistent/wharf.json", &cfg, err, sizeof err), -1);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, "/nonexistent/wharf.json: cannot read: No such file or directory");

    ck_assert_int_eq(config_load_file("/tmp", &cfg, err, sizeof err), -1);
    ck_assert_str_eq(err, "/tmp: cannot read: is a directory");
}
END_TEST

START_TEST(invalid_file_names_the_file)
{
    char path[64], err[512] = "", want[600];
    temp_file(path, sizeof path, "{\"listeners\": [{\"port\": 1, \"handler\": \"h\"},"
                                 " {\"port\": \"http\", \"handler\": \"h\"}]}");
    struct config *cfg = NULL;
    int rc = config_load_file(path, &cfg, err, sizeof err);
    unlink(path);
    ck_assert_int_eq(rc, -1);
    snprintf(want, sizeof want, "%s: listeners[1].port: expected an integer 0..65535,"
             " got \"http\"", path);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(small_error_buffer)
{
    char err[16];
    memset(err, 'z', sizeof err);
    struct config *cfg = NULL;
    ck_assert_int_eq(config_load_string("[]", "x.json", &cfg, err, 10), -1);
    ck_assert_str_eq(err, "x.json: t");
    ck_assert_int_eq(err[10], 'z');
    ck_assert_int_eq(config_load_string("[]", "x.json", &cfg, NULL, 0), -1);
}
END_TEST

/* ---- the structured error of wharf_config_load_* ----------------------------- */

/* Loads `text` as "x.json" through the public API, expecting it to fail with
 * `code`; returns the error. */
static wharf_error load_json_err(const char *text, int code)
{
    wharf_error e;
    memset(&e, 'z', sizeof e);
    wharf_config *cfg = (wharf_config *)1;
    int rc = wharf_config_load_json(text, "x.json", &cfg, &e);
    ck_assert_int_eq(rc, code);
    ck_assert_int_eq(e.code, code);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(e.file, "x.json");
    return e;
}

START_TEST(error_struct_bad_port)
{
    wharf_error e = load_json_err("{\"listeners\": [{" BASE "}, {\"port\": \"http\","
                                  " \"handler\": \"h\"}]}", -EINVAL);
    ck_assert_str_eq(e.path, "listeners[1].port");
    ck_assert_str_eq(e.text, "x.json: listeners[1].port: expected an integer 0..65535,"
                             " got \"http\"");
    e = load_json_err(ONE("\"handler\": \"h\""), -EINVAL);
    ck_assert_str_eq(e.path, "listeners[0].port");
    ck_assert_str_eq(e.text, "x.json: listeners[0].port: missing, expected an integer 0..65535");
    e = load_json_err(ONE(BASE ", \"buffers\": {\"max_output\": 10000}"), -EINVAL);
    ck_assert_str_eq(e.path, "listeners[0].buffers.max_output");
}
END_TEST

START_TEST(error_struct_unknown_key)
{
    wharf_error e = load_json_err(ONE(BASE ", \"timeouts\": {\"idle\": 5}"), -EINVAL);
    ck_assert_str_eq(e.path, "listeners[0].timeouts.idle");
    ck_assert_str_eq(e.text, "x.json: listeners[0].timeouts.idle: unknown key");
    e = load_json_err("{\"wrokers\": 4, \"listeners\": [{" BASE "}]}", -EINVAL);
    ck_assert_str_eq(e.path, "wrokers");
    /* Not a path: the top level itself. */
    e = load_json_err("[]", -EINVAL);
    ck_assert_str_eq(e.path, "");
    ck_assert_str_eq(e.text, "x.json: top level: expected an object, got an empty array");
}
END_TEST

START_TEST(error_struct_syntax)
{
    wharf_error e = load_json_err("{\n  \"listeners\": [\n    {\"port\": 1,, \"handler\": \"h\"}\n  ]\n}",
                                  -EINVAL);
    ck_assert_str_eq(e.path, "");
    ck_assert_str_eq(e.text, "x.json:3:16: syntax error: string or '}' expected near ','");
}
END_TEST

START_TEST(error_struct_files)
{
    wharf_error e;
    wharf_config *cfg = (wharf_config *)1;
    ck_assert_int_eq(wharf_config_load_file("/nonexistent/wharf.json", &cfg, &e), -ENOENT);
    ck_assert_ptr_null(cfg);
    ck_assert_int_eq(e.code, -ENOENT);
    ck_assert_str_eq(e.file, "/nonexistent/wharf.json");
    ck_assert_str_eq(e.path, "");
    ck_assert_str_eq(e.text, "/nonexistent/wharf.json: cannot read: No such file or directory");
    ck_assert_int_eq(wharf_config_load_file("/", &cfg, &e), -EINVAL);
    ck_assert_str_eq(e.text, "/: cannot read: is a directory");

    /* A bad value in a file names the file, and the deprecated call gives
     * the same text in the caller's buffer. */
    char path[64], err[512];
    temp_file(path, sizeof path, "{\"listeners\": [{\"port\": 1, \"handler\": \"h\","
                                 " \"colour\": 1}]}");
    ck_assert_int_eq(wharf_config_load_file(path, &cfg, &e), -EINVAL);
    ck_assert_str_eq(e.file, path);
    ck_assert_str_eq(e.path, "listeners[0].colour");
    ck_assert_int_eq(wharf_config_from_file(path, &cfg, err, sizeof err), -1);
    ck_assert_str_eq(err, e.text);
    unlink(path);
}
END_TEST

START_TEST(error_struct_success_and_null)
{
    wharf_error e;
    memset(&e, 'z', sizeof e);
    wharf_config *cfg = NULL;
    ck_assert_int_eq(wharf_config_load_json(ONE(BASE), NULL, &cfg, &e), 0);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(e.code, 0); /* cleared */
    ck_assert_str_eq(e.text, "");
    wharf_config_free(cfg);
    /* err may be NULL; the code still comes back. */
    ck_assert_int_eq(wharf_config_load_json("{", "y.json", &cfg, NULL), -EINVAL);
    ck_assert_ptr_null(cfg);
    char err[512];
    ck_assert_int_eq(wharf_config_from_json("{\"listeners\": 1}", "y.json", &cfg, err,
                                            sizeof err), -1);
    ck_assert_str_eq(err, "y.json: listeners: expected a non-empty array of listener objects,"
                          " got 1");
}
END_TEST

/* ---- ${ENV} substitution and "include" (config_include.c) ------------------------ */

START_TEST(env_substitution)
{
    setenv("WHARF_T_ADDR", "127.0.0.2", 1);
    unsetenv("WHARF_T_UNSET");
    struct config *cfg = load_ok("{\"listeners\": ["
                                 "{\"port\": 1, \"handler\": \"h\", \"address\": \"${WHARF_T_ADDR}\"},"
                                 "{\"port\": 2, \"handler\": \"h\", \"address\": \"${WHARF_T_UNSET:-::1}\","
                                 " \"name\": \"a${WHARF_T_ADDR}b$${X}\"}]}");
    ck_assert_str_eq(cfg->listeners[0].address, "127.0.0.2");
    ck_assert_str_eq(cfg->listeners[1].address, "::1");
    ck_assert_str_eq(cfg->listeners[1].name, "a127.0.0.2b${X}");
    config_free(cfg);
}
END_TEST

START_TEST(env_errors)
{
    unsetenv("WHARF_T_UNSET");
    ASSERT_ERR(ONE(BASE ", \"address\": \"${WHARF_T_UNSET}\""),
               "listeners[0].address: environment variable WHARF_T_UNSET is not set "
               "(${WHARF_T_UNSET:-default} gives a default)");
    ASSERT_ERR(ONE(BASE ", \"address\": \"x${\""),
               "listeners[0].address: expected ${NAME} or ${NAME:-default} at \"${\"");
    ASSERT_ERR(ONE(BASE ", \"address\": \"${A:b}\""),
               "listeners[0].address: expected ${NAME} or ${NAME:-default} at \"${A:b}\"");
}
END_TEST

/* A directory with main.json including conf.d/\*.json and extra.json. */
static void include_tree(char *dir, size_t len, const char *b_json)
{
    snprintf(dir, len, "/tmp/check_include_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof path, "%s/conf.d", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    const char *files[][2] = {
        {"main.json", "{\"workers\": 1, \"include\": [\"conf.d/*.json\", \"extra.json\"],"
                      " \"listeners\": [{\"name\": \"main\", \"port\": 1, \"handler\": \"h\"}]}"},
        {"conf.d/a.json", "{\"listeners\": [{\"name\": \"a\", \"port\": 2, \"handler\": \"h\"}]}"},
        {"conf.d/b.json", b_json},
        {"extra.json", "{\"include\": \"none.d/*.json\", \"listeners\": "
                       "[{\"name\": \"extra\", \"port\": 4, \"handler\": \"h\"}]}"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(files[i][1], f);
        fclose(f);
    }
}

static void include_tree_free(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(include_merges_listeners)
{
    char dir[256], main_file[300], err[512] = "";
    include_tree(dir, sizeof dir,
                 "{\"listeners\": [{\"name\": \"b\", \"port\": 3, \"handler\": \"h\"}]}");
    snprintf(main_file, sizeof main_file, "%s/main.json", dir);
    struct config *cfg = NULL;
    ck_assert_msg(config_load_file(main_file, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(cfg->nlisteners, 4);
    const char *names[] = {"main", "a", "b", "extra"};
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(cfg->listeners[i].name, names[i]);
    config_free(cfg);
    include_tree_free(dir);
}
END_TEST

/* main.json with conf.d/b.json as b_json fails with "<dir>/" want. */
static void include_fails(const char *b_json, const char *want_fmt)
{
    char dir[256], main_file[300], err[512] = "", want[600];
    include_tree(dir, sizeof dir, b_json);
    snprintf(main_file, sizeof main_file, "%s/main.json", dir);
    snprintf(want, sizeof want, want_fmt, dir, dir);
    struct config *cfg = NULL;
    ck_assert_int_eq(config_load_file(main_file, &cfg, err, sizeof err), -1);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, want);
    include_tree_free(dir);
}

START_TEST(include_errors_name_the_file)
{
    include_fails("{\"listeners\": [{\"name\": \"b\", \"port\": \"http\", \"handler\": \"h\"}]}",
                  "%s/conf.d/b.json: listeners[0].port: expected an integer 0..65535, got "
                  "\"http\"");
    include_fails("{\"workers\": 2}",
                  "%s/conf.d/b.json: workers: only \"listeners\" and \"include\" may be in an "
                  "included file");
    include_fails("{\"listeners\": [", "%s/conf.d/b.json:1:15: syntax error: "
                                       "']' expected near end of file");
    include_fails("{\"include\": 5}",
                  "%s/conf.d/b.json: include: expected a file name or glob pattern, got 5");
    include_fails("{\"include\": \"nope.json\"}",
                  "%s/conf.d/b.json: include: cannot read %s/conf.d/nope.json: No such file "
                  "or directory");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, shipped_default_config);
    tcase_add_test(tc, shipped_seed_config);
    tcase_add_test(tc, defaults_applied);
    tcase_add_test(tc, every_key_set);
    tcase_add_test(tc, partial_nested_objects_keep_defaults);
    tcase_add_test(tc, default_names_and_paths);
    tcase_add_test(tc, log_levels);
    tcase_add_test(tc, free_null);
    tcase_add_test(tc, module_path_relative_to_cwd_for_strings);
    tcase_add_test(tc, module_path_relative_to_config_file);
    tcase_add_test(tc, module_path_relative_file_name);
    tcase_add_test(tc, module_path_invalid);
    tcase_add_test(tc, wrong_types);
    tcase_add_test(tc, out_of_range);
    tcase_add_test(tc, long_values_are_cut);
    tcase_add_test(tc, unknown_keys);
    tcase_add_test(tc, missing_required);
    tcase_add_test(tc, empty_listeners);
    tcase_add_test(tc, duplicate_names);
    tcase_add_test(tc, duplicate_listeners);
    tcase_add_test(tc, handler_path_relative_to_config_file);
    tcase_add_test(tc, files_that_are_not_regular_or_too_big);
    tcase_add_test(tc, watermark_order);
    tcase_add_test(tc, bad_protocol);
    tcase_add_test(tc, udp_only_settings_on_tcp);
    tcase_add_test(tc, bad_log_level);
    tcase_add_test(tc, not_an_object);
    tcase_add_test(tc, syntax_error_line_column);
    tcase_add_test(tc, syntax_error_in_file);
    tcase_add_test(tc, duplicate_json_keys);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, invalid_file_names_the_file);
    tcase_add_test(tc, small_error_buffer);
    tcase_add_test(tc, error_struct_bad_port);
    tcase_add_test(tc, error_struct_unknown_key);
    tcase_add_test(tc, error_struct_syntax);
    tcase_add_test(tc, error_struct_files);
    tcase_add_test(tc, error_struct_success_and_null);
    tcase_add_test(tc, env_substitution);
    tcase_add_test(tc, env_errors);
    tcase_add_test(tc, include_merges_listeners);
    tcase_add_test(tc, include_errors_name_the_file);
    suite_add_tcase(s, tc);
    return check_run(s);
}
