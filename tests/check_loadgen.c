/* check_loadgen.c - tests of wharf-load's engine against in-process loopback servers
 * (tests/loadgen_servers.c): a correct echo passes; corrupting, reordering, duplicating,
 * dropping, silent and resetting servers are caught and counted exactly; --source spreads
 * connections and flows over local addresses (as the servers see them); bad arguments get
 * messages that name the option. Every run is bounded by --count and a short --duration. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <check.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "../tools/wharf-load/cli.h"
#include "../tools/wharf-load/engine.h"
#include "../tools/wharf-load/msg.h"
#include "../tools/wharf-load/opts.h"
#include "../tools/wharf-load/phase.h"
#include "../tools/wharf-load/report.h"
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

/* --batch: the schedule's message k goes to connection (k / batch) % n, and that
 * connection's own count of messages maps back to k's due time (the send paths stamp each
 * message with sched_conn_at): for every batch and connection count, walking the schedule
 * in order gives each connection its messages in order of due time, none twice. */
START_TEST(test_open_loop_batch_schedule)
{
    static const unsigned batches[] = {1, 2, 4, 7}, conns[] = {1, 3, 50};
    uint64_t count[50];
    size_t i, j;
    uint64_t k;

    for (i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
        for (j = 0; j < sizeof(conns) / sizeof(conns[0]); j++) {
            struct load_phase ph;

            memset(&ph, 0, sizeof(ph));
            memset(count, 0, sizeof(count));
            ph.sched.t0 = 1000;
            ph.sched.interval_ns = 10.0;
            ph.sched.n = conns[j];
            ph.sched.batch = batches[i];
            for (k = 0; k < 1000; k++) {
                unsigned c;

                ph.sched.k = k;
                c = phase_slot(&ph);
                ck_assert_uint_eq(c, (unsigned)(k / batches[i] % conns[j]));
                ck_assert_uint_eq(sched_conn_at(&ph.sched, c, count[c]), sched_at(&ph.sched, k));
                count[c]++;
            }
        }
    }
}
END_TEST

/* --batch 4 end to end: exact counts, nothing lost, every message verified. */
START_TEST(test_tcp_open_loop_batch)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    int i;

    ck_assert_int_eq(run(&cfg, &res, "-t 1 -c 3 -r 20k --batch 4 -n 3000 -d 30 127.0.0.1:%u", port),
                     0);
    ck_assert_uint_eq(cfg.batch, 4);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 3000);
    ck_assert_uint_eq(res.st.c[ST_SENT], 3000);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 3000);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
    for (i = 1; i <= 100; i++)
        ck_assert_uint_ge(hist_percentile(res.corrected, i), hist_percentile(res.raw, i));
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

/* Open loop: messages due while the first connect is still failing are sent late once the
 * connection is up (the corrected latency shows the wait), never dropped. */
START_TEST(test_tcp_open_loop_keeps_slots_until_connected)
{
    struct lg_server *s = start(LG_LATE);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res, "-c 1 -r 1000 -d 500ms --drain 5 --max-errors 100 127.0.0.1:%u",
                         port),
                     0);
    ck_assert_uint_ge(res.st.c[ST_REFUSED], 1);
    ck_assert_uint_eq(res.st.c[ST_SENT], 500);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 500);
    ck_assert_uint_eq(res.st.c[ST_BACKLOG_END], 0);
    /* the first messages waited for the server to listen (200 ms) */
    ck_assert_uint_ge(hist_percentile(res.corrected, 100), 150000000u);
    ck_assert_uint_lt(hist_percentile(res.raw, 50), 100000000u);
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

/* A server that never answers the handshake (its listen backlog full, so
 * SYNs are dropped): each connection attempt ends at --connect-timeout,
 * counted, and is tried again; the run ends on time.  (The scan that times
 * them out runs only while a connection is not open: it must be asked for
 * when a connection starts connecting.) */
START_TEST(test_tcp_connect_timeout_counted)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(lfd, 0), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    int fill[4];
    for (int i = 0; i < 4; i++) { /* the backlog takes one or two; the rest wait in SYN_SENT */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(50000);
    struct load_config cfg;
    struct load_result res;
    uint64_t t0 = load_now();
    ck_assert_int_eq(run(&cfg, &res, "-c 2 -d 700ms --drain 50ms --connect-timeout 150ms "
                         "127.0.0.1:%u", (unsigned)ntohs(a.sin_port)), 1);
    ck_assert_uint_ge(res.st.c[ST_CONNECT_TIMEOUT], 2);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 0);
    ck_assert_uint_lt(load_now() - t0, 2000000000u);
    engine_result_free(&res);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
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

/* Open loop: every message of the schedule is accounted for. A silent server with -p 1:
 * each connection sends one message; the rest cannot go (window full), each is counted
 * once as deferred and, never sent, as backlog at the end. */
START_TEST(test_open_loop_deferred_counted)
{
    struct lg_server *s = start(LG_SILENT);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    const _Atomic uint64_t *c = res.st.c;

    /* one thread, 1000 msg/s for 300 ms: due at 0, 1, ... 299 ms */
    ck_assert_int_eq(run(&cfg, &res, "-c 2 -t 1 -p 1 -r 1000 -d 300ms --drain 100ms 127.0.0.1:%u",
                         port),
                     1);
    ck_assert_uint_eq(c[ST_SENT], 2);
    ck_assert_uint_eq(c[ST_SENT] + c[ST_BACKLOG_END], 300);
    ck_assert_uint_ge(c[ST_DEFERRED], c[ST_BACKLOG_END]);
    ck_assert_uint_le(c[ST_DEFERRED], 300);
    ck_assert_uint_eq(c[ST_SKIPPED], 0);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

/* Open loop with --ramp: the slots of connections not opened yet are skipped and counted;
 * measured + skipped + backlog (+ unanswered, should the server lag at the end, as under
 * valgrind) is the whole schedule: 500 messages. */
START_TEST(test_open_loop_ramp_skipped_counted)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    const _Atomic uint64_t *c = res.st.c;

    /* 10 connections, the last opened after 0.45 s; 500 msg/s for 1 s */
    (void)run(&cfg, &res, "-c 10 -t 2 -r 500 -d 1 --drain 2 --ramp 20 127.0.0.1:%u", port);
    ck_assert_uint_gt(c[ST_SKIPPED], 50);
    ck_assert_uint_eq(c[ST_MEASURED] + c[ST_SKIPPED] + c[ST_BACKLOG_END] + c[ST_UNANSWERED], 500);
    ck_assert_uint_eq(stat_errors(&res.st), c[ST_UNANSWERED]);
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
    /* It reconnected after every reset (10 ms backoff), also once every
     * connection had been open and the scan had stopped. */
    ck_assert_uint_ge(res.st.c[ST_CONNECTS], 3);
    ck_assert_uint_ge(res.st.c[ST_RECEIVED], 5);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

/* The same in open loop at a slow rate: each connection is open for tens of
 * milliseconds before its reset (no scan runs while every connection is
 * open), and still reconnects after each one. */
START_TEST(test_tcp_reset_slow_open_loop_reconnects)
{
    struct lg_server *s = start(LG_RESET);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res, "-c 1 -r 100 -d 700ms --drain 100ms 127.0.0.1:%u", port), 1);
    ck_assert_uint_ge(res.st.c[ST_CONNECTS], 4);
    ck_assert_uint_ge(res.st.c[ST_RECEIVED], 15);
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

/* --churn 1 with two source addresses: every connection does one exchange and the next one
 * binds to the other address, so the server sees half of them from each. */
START_TEST(test_tcp_source_churn)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    uint64_t a, b;
    char *out = NULL;
    size_t outlen = 0;
    FILE *f;

    ck_assert_int_eq(run(&cfg, &res,
                         "-t 1 -c 2 --churn 1 -n 400 -d 30 --source 127.0.0.1,127.0.0.2 "
                         "127.0.0.1:%u",
                         port),
                     0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 400);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], res.st.c[ST_SENT]);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
    ck_assert_uint_ge(res.st.c[ST_CONNECTS], 400);
    /* at least 400 binds, alternating; at most one connection per slot (2) went unused at
     * the end. Each used one was accepted before its echo came back */
    a = lg_server_peer_count(s, "127.0.0.1");
    b = lg_server_peer_count(s, "127.0.0.2");
    ck_assert_uint_ge(a, 198);
    ck_assert_uint_ge(b, 198);
    ck_assert_uint_le(a + b, res.st.c[ST_CONNECTS] + 2);

    /* the reports echo the sources */
    f = open_memstream(&out, &outlen);
    ck_assert_ptr_nonnull(f);
    report_json(f, &cfg, &res, "");
    report_human(f, &cfg, &res, "");
    fclose(f);
    ck_assert_ptr_nonnull(strstr(out, "\"sources\": [\"127.0.0.1\", \"127.0.0.2\"]}"));
    ck_assert_ptr_nonnull(strstr(out, "  sources     127.0.0.1, 127.0.0.2 (new connections"));
    free(out);
    engine_result_free(&res);
    lg_server_stop(s);

    s = lg_server_start(LG_ECHO, 1);
    if (!s)
        return; /* no IPv6 loopback here */
    ck_assert_int_eq(
        run(&cfg, &res, "-t 1 -c 2 --churn 1 -n 50 -d 30 --source ::1 [::1]:%u", lg_server_port(s)),
        0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 50);
    ck_assert_uint_ge(lg_server_peer_count(s, "::1"), 50);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

/* load_bind_source binds the address only: the port is left to connect() */
START_TEST(test_source_bind_leaves_port_to_connect)
{
    struct lg_server *s = start(LG_ECHO);
    struct load_config cfg;
    struct sockaddr_in local;
    socklen_t len, vlen = sizeof(int);
    char buf[128], err[512], *argv[MAX_ARGS];
    int argc, fd, v = 0;

    snprintf(buf, sizeof(buf), "--source 127.0.0.3 127.0.0.1:%u", lg_server_port(s));
    argc = split(buf, argv);
    ck_assert_msg(opts_parse(&cfg, argc, argv, stdout, err, sizeof(err)) == 0, "opts: %s", err);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(load_bind_source(fd, &cfg, 0), 0);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &v, &vlen), 0);
    ck_assert_int_eq(v, 1);
    len = sizeof(local);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&local, &len), 0);
    ck_assert_uint_eq(ntohl(local.sin_addr.s_addr), 0x7f000003u);
    ck_assert_uint_eq(local.sin_port, 0); /* no port reserved by bind() */
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&cfg.addr, cfg.addrlen), 0);
    len = sizeof(local);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&local, &len), 0);
    ck_assert_uint_eq(ntohl(local.sin_addr.s_addr), 0x7f000003u);
    ck_assert_uint_ne(local.sin_port, 0);
    close(fd);
    lg_server_stop(s);
}
END_TEST

/* Whether the kernel lets sockets bind to addresses that are not local. */
static bool nonlocal_bind(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_nonlocal_bind", "r");
    int v = 0;

    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v != 0;
}

START_TEST(test_tcp_source_not_local)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    uint64_t t0 = load_now();

    /* 192.0.2.1 (TEST-NET-1) is no address of this machine: bind fails, the connection is
     * counted as failed and retried, and the run ends on time */
    ck_assert_int_eq(
        run(&cfg, &res, "-c 2 -d 300ms --drain 100ms --source 192.0.2.1 127.0.0.1:%u", port), 1);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 0);
    ck_assert_uint_eq(res.st.c[ST_CONNECTS], 0);
    ck_assert_uint_eq(lg_server_peer_count(s, "192.0.2.1"), 0);
    if (!nonlocal_bind()) {
        ck_assert_uint_gt(res.st.c[ST_ADDRNOTAVAIL], 0);
        ck_assert_uint_eq(stat_errors(&res.st), res.st.c[ST_ADDRNOTAVAIL]);
        ck_assert_msg(strstr(res.first_error, "bind to --source 192.0.2.1: ") != NULL,
                      "first error: %s", res.first_error);
    }
    ck_assert_uint_lt(load_now() - t0, 2000000000u);
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

/* --batch auto (the default): what one connection has due in two ticks, rounded up, at
 * least 1, at most --pipeline; an explicit --batch N is kept (also 1: even spacing). */
START_TEST(test_open_loop_batch_auto)
{
    static const struct {
        const char *args;
        unsigned batch;
        bool is_auto;
    } cases[] = {
        {"-c 50 -r 100k", 4, true},  /* 2 per connection per tick: 4 per two ticks */
        {"-c 50 -r 5k", 1, true},    /* 0.2 per two ticks: evenly spaced */
        {"-c 50 -r 20k", 1, true},   /* 0.8 */
        {"-c 50 -r 30k", 2, true},   /* 1.2, rounded up */
        {"-c 10 -r 10k", 2, true},   /* exactly 2 */
        {"-c 10 -r 10k --tick 5ms", 10, true},
        {"-c 1 -r 200k -p 16", 16, true}, /* at most the pipeline */
        {"-c 3 -r 1M -p 1", 1, true},
        {"-c 2 -t 2 -r 100k", 100, true}, /* per connection, whatever the threads */
        {"-c 50 -r 100k --batch 1", 1, false},
        {"-c 50 -r 100k --batch 3", 3, false},
        {"-c 50 -r 100k --batch 3 --batch auto", 4, true},
        {"-c 50", 1, true}, /* closed loop: no schedule */
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[256], err[256];
        char *argv[MAX_ARGS];
        struct load_config cfg;
        int argc;

        snprintf(line, sizeof(line), "%s 127.0.0.1:7", cases[i].args);
        argc = split(line, argv);
        ck_assert_msg(opts_parse(&cfg, argc, argv, stdout, err, sizeof(err)) == 0, "%s: %s",
                      cases[i].args, err);
        ck_assert_msg(cfg.batch == cases[i].batch, "%s: batch %u, want %u", cases[i].args,
                      cfg.batch, cases[i].batch);
        ck_assert_msg(cfg.batch_auto == cases[i].is_auto, "%s: auto %d", cases[i].args,
                      cfg.batch_auto);
        load_config_free(&cfg);
    }
}
END_TEST

/* The default batch end to end: 10 connections at 10 000/s have one message each due per
 * tick, so --batch 1 writes about one message per send; auto takes turns of two, so a
 * connection writes about every other tick, two messages at once. Counted by the
 * generator's own `sends` (a slow run only sends fuller, never emptier, batches). */
START_TEST(test_tcp_open_loop_batch_auto_halves_sends)
{
    struct lg_server *s = start(LG_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res, "-t 1 -c 10 -r 10k -n 4000 -d 30 127.0.0.1:%u", port), 0);
    ck_assert(cfg.batch_auto);
    ck_assert_uint_eq(cfg.batch, 2);
    ck_assert_uint_eq(res.st.c[ST_SENT], 4000);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 4000);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
    ck_assert_uint_ge(res.st.c[ST_SENDS], 1);
    ck_assert_msg(res.st.c[ST_SENDS] <= 4000 * 3 / 4, "%" PRIu64 " sends for 4000 messages",
                  res.st.c[ST_SENDS]);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

/* --batch over UDP flows: open loop in turns of 4 datagrams per flow, each answered and
 * verified, none lost, with and without --udp-offload. */
START_TEST(test_udp_open_loop_batch)
{
    struct lg_server *s = start(LG_UDP_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    int off, i;

    for (off = 0; off < 2; off++) {
        ck_assert_int_eq(run(&cfg, &res,
                             "-u -c 2 -r 2k -p 16 --batch 4 -n 1000 -d 10 --udp-timeout 2s%s "
                             "127.0.0.1:%u",
                             off ? " --udp-offload" : "", port),
                         0);
        ck_assert_uint_eq(cfg.batch, 4);
        ck_assert_uint_eq(res.st.c[ST_SENT], 1000);
        ck_assert_uint_eq(res.st.c[ST_LOST], 0);
        ck_assert_uint_eq(res.st.c[ST_MEASURED], 1000);
        ck_assert_uint_eq(stat_errors(&res.st), 0);
        for (i = 1; i <= 100; i++) /* (the mapping itself: test_open_loop_batch_schedule) */
            ck_assert_uint_ge(hist_percentile(res.corrected, i), hist_percentile(res.raw, i));
        engine_result_free(&res);
    }
    lg_server_stop(s);
}
END_TEST

/* --udp-offload: each batch of a flow leaves as one UDP_SEGMENT send (the server, without
 * UDP_GRO, gets the datagrams one by one) and the sockets read with UDP_GRO: every datagram
 * is answered and verified, none lost. */
START_TEST(test_udp_offload_echo_no_loss)
{
    struct lg_server *s = start(LG_UDP_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res, "-u -c 2 -p 8 -n 2000 -d 5 -s 64 --udp-offload 127.0.0.1:%u", port),
                     0);
    ck_assert(cfg.udp_offload);
    ck_assert_uint_eq(res.st.c[ST_SENT], 2000);
    ck_assert_uint_eq(res.st.c[ST_LOST], 0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 2000);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
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

START_TEST(test_udp_source_flows)
{
    struct lg_server *s = start(LG_UDP_ECHO);
    unsigned port = lg_server_port(s);
    struct load_config cfg;
    struct load_result res;
    uint64_t a, b;

    /* flows 0 and 2 bind to the first address, 1 and 3 to the second */
    ck_assert_int_eq(run(&cfg, &res,
                         "-u -t 2 -c 4 -p 4 -n 400 -d 5 --source 127.0.0.1,127.0.0.2 "
                         "127.0.0.1:%u",
                         port),
                     0);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 400);
    ck_assert_uint_eq(res.st.c[ST_LOST], 0);
    a = lg_server_peer_count(s, "127.0.0.1");
    b = lg_server_peer_count(s, "127.0.0.2");
    ck_assert_uint_gt(a, 0);
    ck_assert_uint_gt(b, 0);
    ck_assert_uint_eq(a + b, 400);
    engine_result_free(&res);
    lg_server_stop(s);
}
END_TEST

/* ---- files and the command line -------------------------------------------------------------- */

/* Writes a histogram file with the given meta figures and one 3-value section per name. */
static void write_hist(const char *path, unsigned messages, unsigned errors, const char *n1,
                       const char *n2)
{
    FILE *f = fopen(path, "w");
    const char *names[] = {n1, n2};
    int i;

    ck_assert_ptr_nonnull(f);
    fprintf(f, "wharf-load-hist 1\nmeta messages %u\nmeta duration_ns 1000000000\n"
               "meta errors %u\n",
            messages, errors);
    for (i = 0; i < 2; i++)
        fprintf(f, "hist %s\nunit ns\nsub_bits 11\ntotal 3\nmin 5\nmax 9\nsaturated 0\n"
                   "sum 19\nsumsq 131\nb 5 1\nb 9 2\nend\n",
                names[i]);
    fclose(f);
}

/* --merge sums messages, errors and sections by name, applies the thresholds to the sums,
 * writes the sum with --hist-out, and refuses more sections than a file holds. */
START_TEST(test_cli_merge_sums_and_limits)
{
    char dir[] = "/tmp/wload-merge-XXXXXX", a[96], b[96], c[96], out[96], err[256];
    struct hist_file hf;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(a, sizeof(a), "%s/a.hist", dir);
    snprintf(b, sizeof(b), "%s/b.hist", dir);
    snprintf(c, sizeof(c), "%s/c.hist", dir);
    snprintf(out, sizeof(out), "%s/out.hist", dir);
    write_hist(a, 30, 0, "corrected", "raw");
    write_hist(b, 20, 2, "raw", "connect");
    write_hist(c, 10, 0, "x", "y");
    ck_assert_int_eq(cli("--merge -q %s %s --max-errors 2 -o %s", a, b, out), 0);
    ck_assert_msg(hist_file_read(out, &hf, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(hf.messages, 50);
    ck_assert_uint_eq(hf.errors, 2);
    ck_assert_uint_eq(hf.duration_ns, 1000000000u); /* 50 messages at 50 msg/s */
    ck_assert_int_eq(hf.nsections, 3);
    ck_assert_uint_eq(hist_file_get(&hf, "raw")->total, 6);
    ck_assert_uint_eq(hist_file_get(&hf, "connect")->total, 3);
    hist_file_free(&hf);
    ck_assert_int_eq(cli("--merge -q %s %s", a, b), 1);                  /* 2 errors > 0 */
    ck_assert_int_eq(cli("--merge -q %s %s --max-errors 5 --min-rate 60", a, b), 1);
    ck_assert_int_eq(cli("--merge -q %s %s --max-errors 5 --min-rate 40", a, b), 0);
    ck_assert_int_eq(cli("--merge -q %s %s %s --max-errors 5", a, b, c), 3); /* 5 sections */
    unlink(a);
    unlink(b);
    unlink(c);
    unlink(out);
    rmdir(dir);
}
END_TEST

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

/* Several targets: connections spread by smooth weighted round robin, the same whether
 * computed at once or thread by thread, and each target's share exactly its weight's. */
START_TEST(test_targets_spread)
{
    struct load_target t[3];
    uint8_t all[60], part[60];
    unsigned n[3] = {0, 0, 0}, i;

    memset(t, 0, sizeof(t));
    t[0].weight = 3, t[1].weight = 1, t[2].weight = 2;
    targets_assign(t, 3, 0, 60, all);
    for (i = 0; i < 60; i++)
        n[all[i]]++;
    ck_assert_uint_eq(n[0], 30);
    ck_assert_uint_eq(n[1], 10);
    ck_assert_uint_eq(n[2], 20);
    for (i = 0; i < 60; i += 6) { /* interleaved: every run of 6 has 3, 1 and 2 of them */
        unsigned k, m[3] = {0, 0, 0};

        for (k = 0; k < 6; k++)
            m[all[i + k]]++;
        ck_assert(m[0] == 3 && m[1] == 1 && m[2] == 2);
    }
    targets_assign(t, 3, 0, 7, part);
    targets_assign(t, 3, 7, 53, part + 7);
    ck_assert(memcmp(all, part, sizeof(all)) == 0);
}
END_TEST

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
    expect_bad("-c 2 127.0.0.1:7 127.0.0.1:8,weight=0", "target '127.0.0.1:8,weight=0'", "1 to 1000");
    expect_bad("127.0.0.1:7 127.0.0.1:8", "--connections 1", "2 targets");
    expect_bad("-c 3 127.0.0.1:7,weight=1 127.0.0.1:8,weight=9", "too few for the weights",
               "'127.0.0.1:7'");
    expect_bad("--merge", "--merge", "histogram files");
    expect_bad("--batch 4 127.0.0.1:7", "--batch", "open loop");
    expect_bad("-r 1k -p 2 --batch 4 127.0.0.1:7", "--batch 4", "--pipeline 2");
    expect_bad("-r 1k --batch 0 127.0.0.1:7", "--batch", "from 1");
    expect_bad("-r 1k --batch most 127.0.0.1:7", "--batch", "'most'");
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

/* Parses a command line that must be accepted. */
static void parse_good(struct load_config *cfg, int argc, char **argv)
{
    char err[512];

    ck_assert_msg(opts_parse(cfg, argc, argv, stdout, err, sizeof(err)) == 0, "opts: %s", err);
}

/* --tls and its options: parsed, defaults (SNI from a host name, none for an address), the
 * client context made; every misuse refused naming the option. */
START_TEST(test_tls_arguments)
{
    static const struct {
        const char *args, *want;
    } bad[] = {
        {"--sni a.example 127.0.0.1:7", "go with --tls"},
        {"--tls-resume on 127.0.0.1:7", "go with --tls"},
        {"--tls -u 127.0.0.1:7", "--tls: applies to TCP only"},
        {"--tls --alpn h2,,x 127.0.0.1:7", "--alpn: expected protocol names"},
        {"--tls --alpn h2, 127.0.0.1:7", "--alpn: a protocol name is empty"},
        {"--tls --tls-resume yes 127.0.0.1:7", "--tls-resume: expected on or off, got 'yes'"},
        {"--tls --tls-verify=/nonexistent/ca.pem 127.0.0.1:7",
         "--tls-verify: cannot read CA file '/nonexistent/ca.pem'"},
        {"--tls --handshake-timeout 0 127.0.0.1:7", "--handshake-timeout"},
        {"--tls --handshake-only --churn 2 127.0.0.1:7", "--handshake-only: every connection"},
        {"--tls --handshake-only -r 100 127.0.0.1:7", "--handshake-only: closed loop only"},
        {"--tls --handshake-only --proto memcache 127.0.0.1:7", "--handshake-only: sends no"},
        {"--tls --sni a/b 127.0.0.1:7", "--sni: expected a host name"},
    };
    static const unsigned char wire[] = "\x02h2\x08http/1.1";
    struct load_config cfg;
    char buf[256], err[512];
    char *argv[MAX_ARGS];
    int argc;
    size_t i;

    snprintf(buf, sizeof(buf),
             "--tls --sni a.example --alpn h2,http/1.1 --tls-resume on --handshake-timeout 500ms "
             "127.0.0.1:7");
    argc = split(buf, argv);
    parse_good(&cfg, argc, argv);
    ck_assert(cfg.tls.on && cfg.tls.resume && !cfg.tls.verify && !cfg.tls.handshake_only);
    ck_assert_str_eq(cfg.tls.sni, "a.example");
    ck_assert_uint_eq(cfg.tls.alpn_len, sizeof(wire) - 1);
    ck_assert_mem_eq(cfg.tls.alpn, wire, sizeof(wire) - 1);
    ck_assert_str_eq(cfg.tls.alpn_text, "h2,http/1.1");
    ck_assert_uint_eq(cfg.tls.handshake_timeout_ns, 500000000u);
    ck_assert_ptr_nonnull(cfg.tls_client);
    load_config_free(&cfg);
    ck_assert_ptr_null(cfg.tls_client);

    /* SNI: the target's host name by default, none for an address; defaults */
    snprintf(buf, sizeof(buf), "--tls localhost:7");
    argc = split(buf, argv);
    parse_good(&cfg, argc, argv);
    ck_assert_str_eq(cfg.tls.sni, "localhost");
    ck_assert(!cfg.tls.resume && cfg.tls.alpn_len == 0);
    ck_assert_uint_eq(cfg.tls.handshake_timeout_ns, 2000000000u);
    load_config_free(&cfg);
    snprintf(buf, sizeof(buf), "--tls --handshake-only -c 4 127.0.0.1:7");
    argc = split(buf, argv);
    parse_good(&cfg, argc, argv);
    ck_assert_str_eq(cfg.tls.sni, "");
    ck_assert(cfg.tls.handshake_only);
    load_config_free(&cfg);
    snprintf(buf, sizeof(buf), "--tls --tls-verify [::1]:7");
    argc = split(buf, argv);
    parse_good(&cfg, argc, argv);
    ck_assert(cfg.tls.verify && cfg.tls.ca_file == NULL);
    ck_assert_str_eq(cfg.tls.sni, "");
    load_config_free(&cfg);
    /* without --tls there is no context */
    snprintf(buf, sizeof(buf), "127.0.0.1:7");
    argc = split(buf, argv);
    parse_good(&cfg, argc, argv);
    ck_assert(!cfg.tls.on);
    ck_assert_ptr_null(cfg.tls_client);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "%s", bad[i].args);
        argc = split(buf, argv);
        err[0] = '\0';
        ck_assert_msg(opts_parse(&cfg, argc, argv, stdout, err, sizeof(err)) == -1,
                      "accepted: %s", bad[i].args);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "%s: got '%s', want '%s'", bad[i].args,
                      err, bad[i].want);
        ck_assert_ptr_null(cfg.tls_client);
    }
}
END_TEST

/* The tally of what handshakes negotiated: merged by (version, cipher, ALPN), with what does
 * not fit counted apart. */
START_TEST(test_tls_tally_merge)
{
    struct tls_tally a, b;
    unsigned i;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.n = 1;
    snprintf(a.e[0].version, sizeof(a.e[0].version), "TLSv1.3");
    snprintf(a.e[0].cipher, sizeof(a.e[0].cipher), "TLS_AES_128_GCM_SHA256");
    a.e[0].count = 5;
    snprintf(a.e[1].version, sizeof(a.e[1].version), "TLSv1.2");
    snprintf(a.e[1].cipher, sizeof(a.e[1].cipher), "ECDHE-ECDSA-AES128-GCM-SHA256");
    a.e[1].count = 7;
    a.n = 2;
    for (i = 0; i < TLS_TALLY_MAX; i++) {
        snprintf(b.e[i].version, sizeof(b.e[i].version), "TLSv1.3");
        snprintf(b.e[i].cipher, sizeof(b.e[i].cipher), "TLS_AES_128_GCM_SHA256");
        snprintf(b.e[i].alpn, sizeof(b.e[i].alpn), i ? "p%u" : "", i);
        b.e[i].count = 1 + i;
    }
    b.n = TLS_TALLY_MAX;
    b.other = 3;
    tls_tally_merge(&a, &b);
    ck_assert_uint_eq(a.n, TLS_TALLY_MAX);
    ck_assert_uint_eq(a.e[0].count, 6); /* same combination: added */
    ck_assert_uint_eq(a.e[1].count, 7);
    ck_assert_str_eq(a.e[2].alpn, "p1");
    ck_assert_uint_eq(a.e[2].count, 2);
    ck_assert_uint_eq(a.other, 3 + TLS_TALLY_MAX); /* b's last one did not fit, plus b's own */
}
END_TEST

START_TEST(test_source_arguments)
{
    struct load_config cfg;
    char buf[256], list[1100], err[512];
    char *argv[MAX_ARGS];
    const struct sockaddr_in *v4;
    size_t n = 0;
    int argc, i;

    snprintf(buf, sizeof(buf), "--source 127.0.0.1,127.0.0.2 127.0.0.1:7");
    argc = split(buf, argv);
    parse_good(&cfg, argc, argv);
    ck_assert_uint_eq(cfg.nsources, 2);
    ck_assert_str_eq(cfg.sources[0].text, "127.0.0.1");
    ck_assert_str_eq(cfg.sources[1].text, "127.0.0.2");
    v4 = (const struct sockaddr_in *)&cfg.sources[1].addr;
    ck_assert_int_eq(v4->sin_family, AF_INET);
    ck_assert_uint_eq(ntohl(v4->sin_addr.s_addr), 0x7f000002u);
    ck_assert_uint_eq(v4->sin_port, 0);
    ck_assert_uint_eq(cfg.sources[1].addrlen, sizeof(struct sockaddr_in));

    /* repeated: the lists add up; UDP too */
    snprintf(buf, sizeof(buf), "-u --source 10.0.0.1 --source 10.0.0.2,10.0.0.3 127.0.0.1:7");
    argc = split(buf, argv);
    parse_good(&cfg, argc, argv);
    ck_assert_uint_eq(cfg.nsources, 3);
    ck_assert_str_eq(cfg.sources[2].text, "10.0.0.3");

    /* IPv6, printed in the usual short form */
    snprintf(buf, sizeof(buf), "--source 0:0:0:0:0:0:0:1,fe80::1 [::1]:7");
    argc = split(buf, argv);
    parse_good(&cfg, argc, argv);
    ck_assert_uint_eq(cfg.nsources, 2);
    ck_assert_str_eq(cfg.sources[0].text, "::1");
    ck_assert_str_eq(cfg.sources[1].text, "fe80::1");
    ck_assert_int_eq(cfg.sources[1].addr.ss_family, AF_INET6);
    ck_assert_uint_eq(cfg.sources[1].addrlen, sizeof(struct sockaddr_in6));

    snprintf(buf, sizeof(buf), "127.0.0.1:7");
    argc = split(buf, argv);
    parse_good(&cfg, argc, argv);
    ck_assert_uint_eq(cfg.nsources, 0);

    /* 64 addresses are accepted, a 65th is not */
    for (i = 1; i <= 64; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s127.0.0.%d", i > 1 ? "," : "", i);
    argv[0] = (char *)"wharf-load";
    argv[1] = (char *)"--source";
    argv[2] = list;
    argv[3] = (char *)"127.0.0.1:7";
    argv[4] = NULL;
    parse_good(&cfg, 4, argv);
    ck_assert_uint_eq(cfg.nsources, 64);
    ck_assert_str_eq(cfg.sources[63].text, "127.0.0.64");
    snprintf(list + n, sizeof(list) - n, ",127.0.0.65");
    ck_assert_int_eq(opts_parse(&cfg, 4, argv, stdout, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "--source: at most 64 addresses");
    argv[2] = (char *)"";
    ck_assert_int_eq(opts_parse(&cfg, 4, argv, stdout, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "--source: expected numeric addresses separated by commas, got an "
                          "empty one in ''");

    expect_bad("--source 127.0.0.1,,127.0.0.2 127.0.0.1:7", "--source: ",
               "got an empty one in '127.0.0.1,,127.0.0.2'");
    expect_bad("--source ,127.0.0.1 127.0.0.1:7", "--source: ", "empty one in ',127.0.0.1'");
    expect_bad("--source 127.0.0.1, 127.0.0.1:7", "--source: ", "empty one in '127.0.0.1,'");
    expect_bad("--source localhost 127.0.0.1:7", "--source: expected a numeric IPv4 or IPv6 address",
               "got 'localhost'");
    expect_bad("--source 127.0.0.1,127.1 127.0.0.1:7", "--source: expected", "got '127.1'");
    expect_bad("--source 256.0.0.1 127.0.0.1:7", "--source: expected", "got '256.0.0.1'");
    expect_bad("--source 127.0.0.1:80 127.0.0.1:7", "--source: expected", "got '127.0.0.1:80'");
    expect_bad("--source [::1] [::1]:7", "--source: expected", "got '[::1]'");
    expect_bad("--source 127.0.0.1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx "
               "127.0.0.1:7",
               "--source: expected", "got '127.0.0.1xxxxxxxxx");
    expect_bad("--source ::1 127.0.0.1:7", "--source: '::1' is an IPv6 address",
               "target 127.0.0.1:7 (127.0.0.1) is IPv4");
    expect_bad("--source ::1,127.0.0.1 [::1]:7", "--source: '127.0.0.1' is an IPv4 address",
               "target [::1]:7 (::1) is IPv6");
    expect_bad("-u --source 127.0.0.2 [::1]:7", "--source: '127.0.0.2'", "is IPv6");
    expect_bad("127.0.0.1:7 --source", "--source", "needs a value");
    ck_assert_int_eq(cli("--source ::1 127.0.0.1:7"), 2);
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
    tcase_add_test(tc, test_open_loop_batch_schedule);
    tcase_add_test(tc, test_tcp_open_loop_batch);
    tcase_add_test(tc, test_open_loop_batch_auto);
    tcase_add_test(tc, test_tcp_open_loop_batch_auto_halves_sends);
    tcase_add_test(tc, test_tcp_open_loop_keeps_slots_until_connected);
    tcase_add_test(tc, test_tcp_warmup_excluded);
    tcase_add_test(tc, test_tcp_corruption_detected);
    tcase_add_test(tc, test_tcp_reordering_detected);
    tcase_add_test(tc, test_tcp_refused_counted);
    tcase_add_test(tc, test_tcp_connect_timeout_counted);
    tcase_add_test(tc, test_tcp_silent_server_bounded);
    tcase_add_test(tc, test_open_loop_deferred_counted);
    tcase_add_test(tc, test_open_loop_ramp_skipped_counted);
    tcase_add_test(tc, test_tcp_reset_counted);
    tcase_add_test(tc, test_tcp_reset_slow_open_loop_reconnects);
    tcase_add_test(tc, test_tcp_churn);
    tcase_add_test(tc, test_tcp_ipv6);
    tcase_add_test(tc, test_source_bind_leaves_port_to_connect);
    tcase_add_test(tc, test_tcp_source_churn);
    tcase_add_test(tc, test_tcp_source_not_local);
    suite_add_tcase(s, tc);

    tc = tcase_create("udp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_udp_echo_no_loss);
    tcase_add_test(tc, test_udp_offload_echo_no_loss);
    tcase_add_test(tc, test_udp_open_loop_batch);
    tcase_add_test(tc, test_udp_loss_exact);
    tcase_add_test(tc, test_udp_duplicates_and_reorder);
    tcase_add_test(tc, test_udp_source_flows);
    suite_add_tcase(s, tc);

    tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cli_hist_out_merge_plot);
    tcase_add_test(tc, test_cli_merge_sums_and_limits);
    tcase_add_test(tc, test_bad_arguments_named);
    tcase_add_test(tc, test_targets_spread);
    tcase_add_test(tc, test_good_arguments);
    tcase_add_test(tc, test_source_arguments);
    tcase_add_test(tc, test_tls_arguments);
    tcase_add_test(tc, test_tls_tally_merge);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return check_run(loadgen_suite()); }
