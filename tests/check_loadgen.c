/* check_loadgen.c - tests of wharf-load's engine against in-process loopback servers
 * (tests/loadgen_servers.c): a correct echo passes; corrupting, reordering, duplicating,
 * dropping, silent and resetting servers are caught and counted exactly; bad arguments get
 * messages that name the option. Every run is bounded by --count and a short --duration. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "../tools/wharf-load/cli.h"
#include "../tools/wharf-load/load.h"
#include "../tools/wharf-load/msg.h"
#include "../tools/wharf-load/opts.h"
#include "loadgen_servers.h"

#define MAX_ARGS 40

/* Splits `line` (after printf formatting) on spaces into argv; argv[0] = "wharf-load". */
static int split(char *line, char **argv)
{
    int argc = 0;
    char *save, *tok;

    argv[argc++] = (char *)"wharf-load";
    for (tok = strtok_r(line, " ", &save); tok && argc < MAX_ARGS - 1;
         tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    return argc;
}

static int run(struct load_config *cfg, struct load_result *res, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses the options, runs the engine and returns the verdict (0 pass, 1 fail). */
static int run(struct load_config *cfg, struct load_result *res, const char *fmt, ...)
{
    char line[512], err[512], why[512];
    char *argv[MAX_ARGS];
    va_list ap;
    int argc, v;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    argc = split(line, argv);
    ck_assert_msg(opts_parse(cfg, argc, argv, stdout, err, sizeof(err)) == 0, "opts: %s", err);
    cfg->progress = 0;
    ck_assert_msg(engine_run(cfg, res, err, sizeof(err)) == 0, "engine: %s", err);
    v = engine_verdict(cfg, res, why, sizeof(why));
    if (v)
        fprintf(stderr, "  (verdict: %s; first error: %s)\n", why, res->first_error);
    return v;
}

/* Runs cli_main on a formatted command line and returns its exit status. */
static int cli(const char *fmt, ...)
{
    char line[768];
    char *argv[MAX_ARGS];
    va_list ap;
    int argc;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    argc = split(line, argv);
    return cli_main(argc, argv);
}

static struct lg_server *start(enum lg_kind kind)
{
    struct lg_server *s = lg_server_start(kind, 0);

    ck_assert_ptr_nonnull(s);
    return s;
}

/* ---- message format -------------------------------------------------------------------------- */

START_TEST(test_crc32c_vector)
{
    ck_assert_uint_eq(msg_crc32c(0, "123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(msg_crc32c(msg_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}
END_TEST

START_TEST(test_msg_every_byte_flip_detected)
{
    struct msg_params mp = {.seed = 7, .size_min = 40, .size_max = 300};
    uint8_t buf[300];
    struct msg_hdr h;
    uint32_t len = msg_length(&mp, 3, 42), i;

    ck_assert_uint_ge(len, 40);
    ck_assert_uint_le(len, 300);
    msg_build(&mp, buf, len, 3, 42, 1000, 2000);
    ck_assert_int_eq(msg_parse_header(&mp, buf, &h), 0);
    ck_assert_int_eq(msg_verify(&mp, buf, &h, 3), MSG_OK);
    ck_assert_uint_eq(h.seq, 42);
    ck_assert_uint_eq(h.intended_ns, 1000);
    ck_assert_uint_eq(h.sent_ns, 2000);
    ck_assert_int_eq(msg_verify(&mp, buf, &h, 4), MSG_BAD_FLOW);
    for (i = 0; i < len; i++) {
        buf[i] ^= 0x01;
        if (msg_parse_header(&mp, buf, &h) == 0 && h.length == len)
            ck_assert_msg(msg_verify(&mp, buf, &h, 3) != MSG_OK, "flip at %u undetected", i);
        buf[i] ^= 0x01;
    }
}
END_TEST

START_TEST(test_msg_payload_not_constant)
{
    struct msg_params mp = {.seed = 1, .size_min = 64, .size_max = 64};
    uint8_t a[64], b[64];

    msg_build(&mp, a, 64, 0, 1, 0, 0);
    msg_build(&mp, b, 64, 0, 2, 0, 0);
    ck_assert_int_ne(memcmp(a + 40, b + 40, 24), 0);
}
END_TEST

/* ---- TCP ------------------------------------------------------------------------------------- */

START_TEST(test_tcp_echo_closed_loop_passes)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    int verdict;

    verdict = run(&cfg, &res, "-t 2 -c 4 -p 4 -n 4000 -d 30 -s 40-700 127.0.0.1:%u", port);
    ck_assert_int_eq(verdict, 0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 4000);
    ck_assert_uint_eq(res.st.c[ST_SENT], 4000);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
    ck_assert_uint_eq(res.raw->total, 4000);
    ck_assert_uint_eq(res.st.c[ST_CONNECTS], 4);
    ck_assert(res.cpu_s > 0.0);
    engine_result_free(&res);
    ck_assert_int_eq(cli("-q -c 2 -n 500 -d 30 127.0.0.1:%u", port), 0);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_tcp_open_loop_corrects_latency)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    int i;

    ck_assert_int_eq(run(&cfg, &res, "-t 1 -c 2 -r 20k -n 2000 -d 30 127.0.0.1:%u", port), 0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 2000);
    ck_assert_uint_eq(res.corrected->total, 2000);
    /* every message's corrected latency is at least its uncorrected one */
    for (i = 1; i <= 100; i++)
        ck_assert_uint_ge(hist_percentile(res.corrected, i), hist_percentile(res.raw, i));
    /* 2000 messages at 20k/s take about 0.1 s */
    ck_assert_uint_gt(res.measure_ns, 50000000u);
    ck_assert_uint_lt(res.measure_ns, 1000000000u);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_tcp_warmup_excluded)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(
        run(&cfg, &res, "-c 1 -r 2000 -w 200ms -d 300ms --drain 200ms 127.0.0.1:%u", port), 0);
    /* 0.5 s at 2000/s = 1000 sent; the first 400 are warm-up.  The lower
     * bounds leave room for a loaded machine (or valgrind) falling behind. */
    ck_assert_uint_ge(res.st.c[ST_SENT], 900);
    ck_assert_uint_le(res.st.c[ST_SENT], 1000);
    ck_assert_uint_ge(res.st.c[ST_MEASURED], 500);
    ck_assert_uint_le(res.st.c[ST_MEASURED], 600);
    ck_assert_uint_eq(res.raw->total, res.st.c[ST_MEASURED]);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_tcp_corruption_detected)
{
    struct lg_server *s = start(LG_CORRUPT);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    /* one connection, 1000 messages: the server flips a byte in messages 100, 200, ... */
    ck_assert_int_eq(run(&cfg, &res, "-c 1 -p 1 -n 1000 -d 30 127.0.0.1:%u", port), 1);
    ck_assert_uint_eq(res.st.c[ST_MISMATCH], 10);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 990);
    ck_assert_uint_eq(stat_errors(&res.st), 10);
    ck_assert_ptr_nonnull(strstr(res.first_error, "mismatch"));
    engine_result_free(&res);
    ck_assert_int_eq(cli("-q -c 1 -n 300 -d 30 127.0.0.1:%u", port), 1);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_tcp_reordering_detected)
{
    struct lg_server *s = start(LG_REORDER);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    /* messages 10 and 11 of each of the 2 connections come back swapped */
    ck_assert_int_eq(run(&cfg, &res, "-t 2 -c 2 -p 4 -n 200 -d 30 127.0.0.1:%u", port), 1);
    ck_assert_uint_eq(res.st.c[ST_REORDER], 2);
    ck_assert_uint_eq(res.st.c[ST_MISMATCH], 0);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 200);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_tcp_refused_counted)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    uint64_t t0;

    lg_server_stop(s); /* nothing listens on port now */
    t0 = load_now();
    ck_assert_int_eq(run(&cfg, &res, "-c 3 -d 300ms --drain 100ms 127.0.0.1:%u", port), 1);
    ck_assert_uint_gt(res.st.c[ST_REFUSED], 0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 0);
    ck_assert_uint_lt(load_now() - t0, 2000000000u);
    engine_result_free(&res);
    ck_assert_int_eq(cli("-q -c 1 -d 100ms --drain 50ms 127.0.0.1:%u", port), 1);
}
END_TEST

START_TEST(test_tcp_silent_server_bounded)
{
    struct lg_server *s = start(LG_SILENT);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    uint64_t t0 = load_now();

    ck_assert_int_eq(run(&cfg, &res, "-c 2 -p 3 -d 300ms --drain 200ms 127.0.0.1:%u", port), 1);
    ck_assert_uint_eq(res.st.c[ST_UNANSWERED], 6);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 0);
    ck_assert_uint_lt(load_now() - t0, 1500000000u);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_tcp_reset_counted)
{
    struct lg_server *s = start(LG_RESET);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res, "-c 1 -p 2 -d 300ms --drain 100ms 127.0.0.1:%u", port), 1);
    ck_assert_uint_gt(res.st.c[ST_RESET] + res.st.c[ST_PEER_CLOSED], 0);
    ck_assert_uint_gt(res.st.c[ST_CONNECTS], 1); /* it reconnected */
    ck_assert_uint_ge(res.st.c[ST_RECEIVED], 5);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_tcp_churn)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res, "-t 1 -c 2 --churn 5 -n 200 -d 30 127.0.0.1:%u", port), 0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 200);
    ck_assert_uint_ge(res.st.c[ST_CONNECTS], 40);
    ck_assert_uint_ge(res.st.c[ST_CHURN_CLOSES], 38);
    ck_assert_uint_eq(res.connect->total, res.st.c[ST_CONNECTS]);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_tcp_ipv6)
{
    struct lg_server *s = lg_server_start(LG_ECHO, 1);
    struct load_config cfg;
    struct load_result res;

    if (!s)
        return; /* no IPv6 loopback here */
    ck_assert_int_eq(run(&cfg, &res, "-c 2 -n 300 -d 30 [::1]:%u", lg_server_port(s)), 0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 300);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

/* ---- UDP ------------------------------------------------------------------------------------- */

START_TEST(test_udp_echo_no_loss)
{
    struct lg_server *s = start(LG_UDP_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res, "-u -c 2 -p 4 -n 2000 -d 5 -s 40-1400 127.0.0.1:%u", port), 0);
    ck_assert_uint_eq(res.st.c[ST_SENT], 2000);
    ck_assert_uint_eq(res.st.c[ST_LOST], 0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 2000);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_udp_loss_exact)
{
    struct lg_server *s = start(LG_UDP_DROP);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    int verdict;

    /* the server drops its 10th, 20th, ... datagram: exactly 100 of 1000. Open loop, with
     * at most 16 in flight so no socket buffer can overflow even on a slow (valgrind) run */
    verdict = run(&cfg, &res,
                  "-u -c 1 -r 5k -p 16 -n 1000 -d 5 "
                  "--udp-timeout 50ms --drain 500ms 127.0.0.1:%u",
                  port);
    ck_assert_int_eq(verdict, 1);
    ck_assert_uint_eq(res.st.c[ST_SENT], 1000);
    ck_assert_uint_eq(lg_server_received(s), 1000);
    ck_assert_uint_eq(res.st.c[ST_LOST], 100);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 900);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
    engine_result_free(&res);
    /* the same loss passes when --max-loss allows it; closed loop with a pipeline too */
    verdict = run(&cfg, &res,
                  "-u -c 1 -p 8 -n 500 -d 5 "
                  "--udp-timeout 20ms --drain 300ms --max-loss 10 127.0.0.1:%u",
                  port);
    ck_assert_int_eq(verdict, 0);
    ck_assert_uint_eq(res.st.c[ST_LOST], 50);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

START_TEST(test_udp_duplicates_and_reorder)
{
    struct lg_server *s = start(LG_UDP_DUP);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    /* every 5th datagram comes back twice: 19 duplicates among 98 */
    ck_assert_int_eq(run(&cfg, &res, "-u -c 1 -p 1 -n 98 -d 5 127.0.0.1:%u", port), 1);
    ck_assert_uint_eq(res.st.c[ST_DUPLICATE], 19);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 98);
    ck_assert_uint_eq(res.st.c[ST_LOST], 0);
    engine_result_free(&res);
    lg_server_stop(s);

    s = start(LG_UDP_SWAP);
    port = lg_server_port(s);
    ck_assert_int_eq(run(&cfg, &res, "-u -c 1 -p 4 -n 100 -d 5 127.0.0.1:%u", port), 1);
    ck_assert_uint_eq(res.st.c[ST_REORDER], 1);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 100);
    ck_assert_uint_eq(res.st.c[ST_LOST], 0);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

/* ---- files and the command line -------------------------------------------------------------- */

START_TEST(test_cli_hist_out_merge_plot)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    char dir[] = "/tmp/wload-test-XXXXXX", a[96], b[96], svg[96], html[96];
    struct stat stt;
    int verdict;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(a, sizeof(a), "%s/a.hist", dir);
    snprintf(b, sizeof(b), "%s/b.hist", dir);
    snprintf(svg, sizeof(svg), "%s/p.svg", dir);
    snprintf(html, sizeof(html), "%s/p.html", dir);
    ck_assert_int_eq(cli("-q -c 1 -n 300 -d 30 -o %s 127.0.0.1:%u", a, port), 0);
    verdict = cli("-j -P -c 1 -r 5k -n 300 -d 30 -o %s --plot %s 127.0.0.1:%u", b, svg, port);
    ck_assert_int_eq(verdict, 0);
    ck_assert_int_eq(cli("--merge -q %s %s --plot %s", a, b, html), 0);
    ck_assert_int_eq(cli("--merge -j %s %s --max-p99 1ns", a, b), 1);
    ck_assert_int_eq(stat(svg, &stt), 0);
    ck_assert_int_gt(stt.st_size, 500);
    ck_assert_int_eq(stat(html, &stt), 0);
    ck_assert_int_gt(stt.st_size, 500);
    ck_assert_int_eq(cli("--merge %s/missing.hist", dir), 3);
    unlink(a);
    unlink(b);
    unlink(svg);
    unlink(html);
    rmdir(dir);
    lg_server_stop(s);
}
END_TEST

static void expect_bad(const char *line, const char *want1, const char *want2)
{
    struct load_config cfg;
    char buf[256], err[512];
    char *argv[MAX_ARGS];
    int argc;

    snprintf(buf, sizeof(buf), "%s", line);
    argc = split(buf, argv);
    ck_assert_int_eq(opts_parse(&cfg, argc, argv, stdout, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, want1) && strstr(err, want2), "'%s' gave '%s'", line, err);
}

START_TEST(test_bad_arguments_named)
{
    expect_bad("-c abc 127.0.0.1:7", "--connections", "expected an integer");
    expect_bad("-c 0 127.0.0.1:7", "--connections", "from 1");
    expect_bad("--size 10 127.0.0.1:7", "--size", "at least 40");
    expect_bad("--size 100-50 127.0.0.1:7", "--size", "above maximum");
    expect_bad("--size 2M 127.0.0.1:7", "--size", "at most");
    expect_bad("-u --size 65508 127.0.0.1:7", "--size", "UDP");
    expect_bad("--rate -5 127.0.0.1:7", "--rate", "expected");
    expect_bad("-d 10parsecs 127.0.0.1:7", "--duration", "expected a duration");
    expect_bad("--plot x.png 127.0.0.1:7", "--plot", ".svg or .html");
    expect_bad("--max-loss 200 127.0.0.1:7", "--max-loss", "0 to 100");
    expect_bad("-p 5000 127.0.0.1:7", "--pipeline", "4096");
    expect_bad("-u --churn 5 127.0.0.1:7", "--churn", "TCP only");
    expect_bad("-t 4 -c 2 127.0.0.1:7", "--threads", "--connections");
    expect_bad("", "missing target", "HOST:PORT");
    expect_bad("localhost", "target", "HOST:PORT");
    expect_bad("127.0.0.1:0", "target", "port");
    expect_bad("127.0.0.1:99999", "target", "port");
    expect_bad("::1:7000", "target", "[ADDR]:PORT");
    expect_bad("[::1]7000", "target", "[IPV6-ADDRESS]:PORT");
    expect_bad("--bogus 127.0.0.1:7", "unknown option", "--bogus");
    expect_bad("127.0.0.1:7 -c", "-c", "needs a value");
    expect_bad("a:1 b:2", "one target", "b:2");
    expect_bad("--merge", "--merge", "histogram files");
    ck_assert_int_eq(cli("-c nope 127.0.0.1:7"), 2);
    ck_assert_int_eq(cli("--version"), 0);
}
END_TEST

START_TEST(test_good_arguments)
{
    struct load_config cfg;
    char buf[256], err[512];
    char *argv[MAX_ARGS];
    uint64_t ns;
    int argc;

    snprintf(buf, sizeof(buf), "-c 8 -t 2 -s 1k -r 10k -d 1.5 -w 250ms --max-p99 2ms [::1]:9000");
    argc = split(buf, argv);
    ck_assert_int_eq(opts_parse(&cfg, argc, argv, stdout, err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.connections, 8);
    ck_assert_uint_eq(cfg.msg.size_min, 1024);
    ck_assert(cfg.rate == 10000.0);
    ck_assert_uint_eq(cfg.pipeline, LOAD_MAX_PIPELINE); /* open loop default */
    ck_assert_uint_eq(cfg.duration_ns, 1500000000u);
    ck_assert_uint_eq(cfg.warmup_ns, 250000000u);
    ck_assert_uint_eq(cfg.max_p99_ns, 2000000u);
    ck_assert_uint_eq(cfg.port, 9000);
    ck_assert_str_eq(cfg.host, "::1");
    ck_assert_int_eq(opts_parse_time("20us", &ns), 0);
    ck_assert_uint_eq(ns, 20000);
    ck_assert_int_eq(opts_parse_time("2m", &ns), 0);
    ck_assert_uint_eq(ns, 120000000000ull);
    ck_assert_int_eq(opts_parse_time("-1", &ns), -1);
}
END_TEST

static Suite *loadgen_suite(void)
{
    Suite *s = suite_create("loadgen");
    TCase *tc = tcase_create("msg");

    tcase_add_test(tc, test_crc32c_vector);
    tcase_add_test(tc, test_msg_every_byte_flip_detected);
    tcase_add_test(tc, test_msg_payload_not_constant);
    suite_add_tcase(s, tc);

    tc = tcase_create("tcp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tcp_echo_closed_loop_passes);
    tcase_add_test(tc, test_tcp_open_loop_corrects_latency);
    tcase_add_test(tc, test_tcp_warmup_excluded);
    tcase_add_test(tc, test_tcp_corruption_detected);
    tcase_add_test(tc, test_tcp_reordering_detected);
    tcase_add_test(tc, test_tcp_refused_counted);
    tcase_add_test(tc, test_tcp_silent_server_bounded);
    tcase_add_test(tc, test_tcp_reset_counted);
    tcase_add_test(tc, test_tcp_churn);
    tcase_add_test(tc, test_tcp_ipv6);
    suite_add_tcase(s, tc);

    tc = tcase_create("udp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_udp_echo_no_loss);
    tcase_add_test(tc, test_udp_loss_exact);
    tcase_add_test(tc, test_udp_duplicates_and_reorder);
    suite_add_tcase(s, tc);

    tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cli_hist_out_merge_plot);
    tcase_add_test(tc, test_bad_arguments_named);
    tcase_add_test(tc, test_good_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return check_run(loadgen_suite()); }
