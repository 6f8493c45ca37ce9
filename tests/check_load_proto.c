/* check_load_proto.c - wharf-load's request templates end to end: memcache and http modes
 * and inline templates against the in-process servers of tests/loadgen_proto.c, a server
 * answering wrongly in each way (garbage, too much, too little, nothing, too long, a failed
 * check) counted per kind, the time series in JSON and histogram files, --merge of series,
 * --start-at, and the messages for bad template options. Every run is bounded by --count
 * and a short --duration. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "../tools/wharf-load/cli.h"
#include "../tools/wharf-load/engine.h"
#include "../tools/wharf-load/opts.h"
#include "../tools/wharf-load/preload.h"
#include "loadgen_proto.h"
#include "loadgen_servers.h"

#define MAX_ARGS 48

/* Splits `line` on spaces into argv (argv[0] = "wharf-load"); a word in single quotes may
 * hold spaces. */
static int split(char *line, char **argv)
{
    int argc = 0;
    char *p = line;

    argv[argc++] = (char *)"wharf-load";
    while (*p && argc < MAX_ARGS - 1) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (*p == '\'') {
            argv[argc++] = ++p;
            while (*p && *p != '\'')
                p++;
        } else {
            argv[argc++] = p;
            while (*p && *p != ' ')
                p++;
        }
        if (*p)
            *p++ = '\0';
    }
    argv[argc] = NULL;
    return argc;
}

static int run(struct load_config *cfg, struct load_result *res, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses, runs and returns the verdict; the caller frees res and cfg. */
static int run(struct load_config *cfg, struct load_result *res, const char *fmt, ...)
{
    char line[1024], err[512], why[512];
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

static void done(struct load_config *cfg, struct load_result *res)
{
    engine_result_free(res);
    load_config_free(cfg);
}

static int cli(const char *fmt, ...)
{
    char line[1024];
    char *argv[MAX_ARGS];
    va_list ap;
    int argc;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    argc = split(line, argv);
    return cli_main(argc, argv);
}

static struct lp_server *start(enum lp_kind kind)
{
    struct lp_server *s = lp_server_start(kind);

    ck_assert_ptr_nonnull(s);
    return s;
}

/* ---- correct servers ------------------------------------------------------------------------- */

START_TEST(test_memcache_mode)
{
    struct lp_server *s = start(LP_MEMCACHE);
    struct load_config cfg;
    struct load_result res;

    /* half sets over 50 keys: most gets find their key */
    ck_assert_int_eq(run(&cfg, &res,
                         "--proto memcache --set-ratio 0.5 --keys 50 --value-size 1-3000 -t 2 -c 4 "
                         "-p 4 -n 4000 -d 30 127.0.0.1:%u",
                         lp_server_port(s)),
                     0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 4000);
    ck_assert_uint_eq(res.st.c[ST_SENT], 4000);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
    ck_assert_uint_eq(lp_server_requests(s), 4000);
    ck_assert_uint_gt(lp_server_hits(s), 1000);
    ck_assert_str_eq(cfg.tmpls->proto, "memcache");
    done(&cfg, &res);
    /* zipf keys, open loop */
    ck_assert_int_eq(run(&cfg, &res,
                         "--proto memcache --key-dist zipf:1.1 -c 2 -r 20k -n 1000 -d 30 127.0.0.1:%u",
                         lp_server_port(s)),
                     0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 1000);
    ck_assert_uint_eq(res.corrected->total, 1000);
    done(&cfg, &res);
    lp_server_stop(s);
}
END_TEST

START_TEST(test_http_mode_pipelined)
{
    struct lp_server *s = start(LP_HTTP);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res, "--proto http -t 2 -c 4 -p 16 -n 8000 -d 30 127.0.0.1:%u",
                         lp_server_port(s)),
                     0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 8000);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
    ck_assert_uint_eq(lp_server_requests(s), 8000);
    done(&cfg, &res);
    ck_assert_int_eq(run(&cfg, &res, "--proto http --path /chunked -c 1 -n 200 -d 30 127.0.0.1:%u",
                         lp_server_port(s)),
                     0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 200);
    done(&cfg, &res);
    /* a 404 fails the status check */
    ck_assert_int_eq(run(&cfg, &res, "--proto http --path /missing -c 1 -n 50 -d 30 127.0.0.1:%u",
                         lp_server_port(s)),
                     1);
    ck_assert_uint_eq(res.st.c[ST_MISMATCH], 50);
    ck_assert_ptr_nonnull(strstr(res.first_error, "404"));
    done(&cfg, &res);
    /* ... unless the check says 404 is what we want */
    ck_assert_int_eq(run(&cfg, &res,
                         "--proto http --path /missing --expect status:404 -c 1 -n 50 -d 30 127.0.0.1:%u",
                         lp_server_port(s)),
                     0);
    done(&cfg, &res);
    lp_server_stop(s);
}
END_TEST

START_TEST(test_inline_templates_mix)
{
    struct lg_server *e = lg_server_start(LG_ECHO, 0);
    struct load_config cfg;
    struct load_result res;

    ck_assert_ptr_nonnull(e);
    /* the echo server returns each request: two templates, each with its own framing and
     * check */
    ck_assert_int_eq(
        run(&cfg, &res,
            "-c 2 -p 8 -n 3000 -d 30 --request 'GET {key} {seq}\\r\\n' --weight 3 --frame delim:\\r\\n "
            "--expect 'regex:^GET key:[0-9]{4} [0-9]+\\r\\n$' --request 'SET {conn} {rand:1-40}|' "
            "--frame delim:| --expect prefix:SET 127.0.0.1:%u",
            lg_server_port(e)),
        0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 3000);
    ck_assert_uint_eq(cfg.tmpls->n, 2);
    ck_assert(cfg.tmpls->cum[0] > 0.74 && cfg.tmpls->cum[0] < 0.76);
    done(&cfg, &res);
    /* a check that never holds: every reply is a mismatch */
    ck_assert_int_eq(run(&cfg, &res, "-c 1 -n 100 -d 30 --request 'ping\\n' --expect literal:pong\\n "
                                     "127.0.0.1:%u",
                         lg_server_port(e)),
                     1);
    ck_assert_uint_eq(res.st.c[ST_MISMATCH], 100);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 0);
    done(&cfg, &res);
    lg_server_stop(e);
}
END_TEST

START_TEST(test_template_from_file)
{
    struct lg_server *e = lg_server_start(LG_ECHO, 0);
    char path[] = "/tmp/wload-tmpl-XXXXXX";
    int fd = mkstemp(path);
    struct load_config cfg;
    struct load_result res;

    ck_assert_ptr_nonnull(e);
    ck_assert_int_ge(fd, 0);
    /* a 4-byte big-endian length of what follows it, then 5 bytes: the echo carries the
     * same length, which frames it */
    ck_assert_int_eq(write(fd, "\0\0\0\x05" "ab{rand:3}", 14), 14);
    close(fd);
    ck_assert_int_eq(run(&cfg, &res, "-c 1 -n 10 -d 30 --request-file %s --frame len:0:4:be:+4 --expect prefix:\\0\\0\\0\\x05ab "
                                     "127.0.0.1:%u",
                         path, lg_server_port(e)),
                     0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 10);
    done(&cfg, &res);
    unlink(path);
    lg_server_stop(e);
}
END_TEST

/* ---- wrong answers, one way each ------------------------------------------------------------- */

/* Runs 100 requests, pipeline 1, against a faulty HTTP server (wrong at every 10th response of
 * a connection) and returns the verdict. */
static int faulty(enum lp_kind kind, struct load_config *cfg, struct load_result *res,
                  const char *extra)
{
    struct lp_server *s = start(kind);
    int v = run(cfg, res, "--proto http -c 1 -p 1 -n 100 -d 5 --drain 300ms %s 127.0.0.1:%u",
                extra, lp_server_port(s));

    lp_server_stop(s);
    return v;
}

START_TEST(test_wrong_garbage)
{
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(faulty(LP_HTTP_GARBAGE, &cfg, &res, ""), 1);
    ck_assert_uint_eq(res.st.c[ST_BAD_REPLY], 10);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 90);
    ck_assert_uint_eq(stat_errors(&res.st), 10);
    ck_assert_ptr_nonnull(strstr(res.first_error, "bad reply"));
    done(&cfg, &res);
}
END_TEST

START_TEST(test_wrong_too_much)
{
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(faulty(LP_HTTP_EXTRA, &cfg, &res, ""), 1);
    ck_assert_uint_eq(res.st.c[ST_UNSOLICITED], 10);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 100);
    done(&cfg, &res);
}
END_TEST

START_TEST(test_wrong_too_little)
{
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(faulty(LP_HTTP_SHORT, &cfg, &res, ""), 1);
    /* each connection: 9 answers, then the 10th cut short and the connection closed */
    ck_assert_uint_eq(res.st.c[ST_SHORT], 10);
    ck_assert_uint_eq(res.st.c[ST_EOF_MID_REPLY], 10);
    ck_assert_uint_eq(res.st.c[ST_PEER_CLOSED], 0);
    ck_assert_uint_eq(res.st.c[ST_RECONNECTS], 0);
    ck_assert_ptr_nonnull(strstr(res.first_error, "in the middle of a reply"));
    ck_assert_uint_eq(res.st.c[ST_UNANSWERED], 10);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 90);
    done(&cfg, &res);
}
END_TEST

/* A server ending connections cleanly: every request answered once, none an error; the
 * server parsed exactly the requests answered (nothing lost, nothing sent twice that it
 * answered). */
static void closing(enum lp_kind kind, const char *extra, uint64_t reconnects_min)
{
    struct lp_server *s = start(kind);
    struct load_config cfg;
    struct load_result res;
    uint64_t requests;

    ck_assert_int_eq(run(&cfg, &res, "--proto http -n 400 -d 10 --drain 1 %s 127.0.0.1:%u", extra,
                         lp_server_port(s)),
                     0);
    requests = lp_server_requests(s);
    lp_server_stop(s);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 400);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 400);
    ck_assert_uint_eq(requests, 400);
    ck_assert_uint_ge(res.st.c[ST_RECONNECTS], reconnects_min);
    /* the connections ended after the last reply are not replaced */
    ck_assert_uint_ge(res.st.c[ST_CONNECTS], res.st.c[ST_RECONNECTS]);
    ck_assert_uint_le(res.st.c[ST_CONNECTS], res.st.c[ST_RECONNECTS] + cfg.connections);
    ck_assert_uint_eq(res.st.c[ST_SENT], 400 + res.st.c[ST_RESENT]);
    done(&cfg, &res);
}

START_TEST(test_reconnect_connection_close)
{
    /* -p 1: the close is seen before the next request; -p 4: three requests in flight go
     * again on the next connection */
    closing(LP_HTTP_CLOSE, "-c 2 -p 1", 40);
    closing(LP_HTTP_CLOSE, "-c 2 -p 4", 40);
}
END_TEST

START_TEST(test_reconnect_http10)
{
    closing(LP_HTTP_10, "-c 2 -p 1", 400);
}
END_TEST

START_TEST(test_reconnect_eof_between_replies)
{
    /* the request sent after the 10th reply meets the EOF: it goes again */
    closing(LP_HTTP_EOF, "-c 2 -p 1", 38); /* the last EOFs may come after the end */
    closing(LP_HTTP_EOF, "-c 1 -r 2000 -w 0", 38);
}
END_TEST

START_TEST(test_wrong_nothing)
{
    struct lp_server *s = start(LP_HTTP_SILENT);
    struct load_config cfg;
    struct load_result res;
    uint64_t t0 = load_now();

    ck_assert_int_eq(run(&cfg, &res, "--proto http -c 2 -p 4 -d 300ms --drain 200ms 127.0.0.1:%u",
                         lp_server_port(s)),
                     1);
    ck_assert_uint_eq(res.st.c[ST_UNANSWERED], 8);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 0);
    ck_assert_uint_lt(load_now() - t0, 2000000000u); /* bounded: duration + drain */
    done(&cfg, &res);
    lp_server_stop(s);
}
END_TEST

START_TEST(test_wrong_too_long)
{
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(faulty(LP_HTTP_HUGE, &cfg, &res, "--max-reply 64k"), 1);
    ck_assert_uint_eq(res.st.c[ST_TOO_LONG], 10);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 90);
    ck_assert_ptr_nonnull(strstr(res.first_error, "too long"));
    done(&cfg, &res);
}
END_TEST

START_TEST(test_wrong_status)
{
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(faulty(LP_HTTP_500, &cfg, &res, ""), 1);
    ck_assert_uint_eq(res.st.c[ST_MISMATCH], 10);
    ck_assert_uint_eq(res.st.c[ST_RECEIVED], 90);
    ck_assert_uint_eq(res.st.c[ST_CONNECTS], 1); /* a failed check keeps the connection */
    done(&cfg, &res);
}
END_TEST

/* ---- time series, files, several machines ------------------------------------------------------ */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *b = calloc(1, 1 << 20);

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_gt(fread(b, 1, (1 << 20) - 1, f), 0);
    fclose(f);
    return b;
}

START_TEST(test_series_json_and_merge)
{
    struct lp_server *s = start(LP_HTTP);
    unsigned port = lp_server_port(s);
    char dir[] = "/tmp/wload-series-XXXXXX", a[96], b[96], js[96], html[96], *txt;
    struct load_config cfg;
    struct load_result res;
    struct timespec now;
    int saved = dup(1), fd;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(a, sizeof(a), "%s/a.hist", dir);
    snprintf(b, sizeof(b), "%s/b.hist", dir);
    snprintf(js, sizeof(js), "%s/m.json", dir);
    snprintf(html, sizeof(html), "%s/m.html", dir);
    /* engine: 0.6 s in 200 ms intervals at 2000/s */
    ck_assert_int_eq(run(&cfg, &res, "--proto http -c 1 -r 2000 -d 600ms --interval 200ms 127.0.0.1:%u", port), 0);
    ck_assert_uint_ge(res.series->n, 3);
    ck_assert_uint_le(res.series->n, 5);
    ck_assert_uint_ge(res.series->p[1].replies, 300);
    ck_assert_uint_le(res.series->p[1].replies, 500);
    ck_assert_uint_gt(series_percentile(&res.series->p[1], 99), 0);
    done(&cfg, &res);
    /* two "machines" started together at a wall-clock time, then merged */
    clock_gettime(CLOCK_REALTIME, &now);
    ck_assert_int_eq(cli("--proto http -q -c 1 -r 1000 -d 500ms --drain 5 --interval 100ms --start-at @%ld.%09ld -o %s 127.0.0.1:%u",
                         (long)now.tv_sec + 1, now.tv_nsec, a, port),
                     0);
    ck_assert_int_eq(cli("--proto http -q -c 1 -r 1000 -d 500ms --drain 5 --interval 100ms -o %s 127.0.0.1:%u", b, port), 0);
    fflush(stdout);
    fd = open(js, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 1);
    close(fd);
    ck_assert_int_eq(cli("--merge -j %s %s --plot %s", a, b, html), 0);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    txt = slurp(js);
    ck_assert_ptr_nonnull(strstr(txt, "\"series\": {\"interval_ns\": 100000000"));
    ck_assert_ptr_nonnull(strstr(txt, "\"p99\": "));
    /* every message of the two schedules is sent, late if the generator or the connection
     * was slow (the drain ends once all are answered) */
    ck_assert_msg(strstr(txt, "\"messages\": 1000,"), "%s", txt);
    free(txt);
    txt = slurp(html);
    ck_assert_ptr_nonnull(strstr(txt, "latency over time"));
    free(txt);
    /* intervals that differ cannot be merged */
    ck_assert_int_eq(cli("--proto http -q -c 1 -n 100 -d 5 --interval 50ms -o %s 127.0.0.1:%u", b, port), 0);
    ck_assert_int_eq(cli("--merge -q %s %s", a, b), 3);
    unlink(a);
    unlink(b);
    unlink(js);
    unlink(html);
    rmdir(dir);
    lp_server_stop(s);
}
END_TEST

/* ---- arguments ------------------------------------------------------------------------------- */

static void expect_bad(const char *line, const char *want1, const char *want2)
{
    struct load_config cfg;
    char buf[512], err[512];
    char *argv[MAX_ARGS];
    int argc;

    snprintf(buf, sizeof(buf), "%s", line);
    argc = split(buf, argv);
    ck_assert_int_eq(opts_parse(&cfg, argc, argv, stdout, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, want1) && strstr(err, want2), "'%s' gave '%s'", line, err);
}

START_TEST(test_bad_template_options_named)
{
    expect_bad("--proto bogus 127.0.0.1:7", "--proto", "echo, memcache, redis, http or h2");
    expect_bad("--proto redis --frame resp 127.0.0.1:7", "--frame", "--proto redis sets its own");
    expect_bad("--proto memcache --ratio 1:-1 127.0.0.1:7", "--ratio", "SET:GET");
    expect_bad("--proto redis --mget 0 127.0.0.1:7", "--mget", "1");
    expect_bad("--proto http --mget 2 127.0.0.1:7", "--mget", "memcache or redis");
    expect_bad("--proto redis --key-pattern gauss:1 127.0.0.1:7", "--key-pattern", "gauss:MEAN,SD");
    expect_bad("--name x --request y 127.0.0.1:7", "--name", "before it");
    expect_bad("--request y --name x --request z --name x 127.0.0.1:7", "--name 'x'", "two templates");
    expect_bad("--request y --expect 'literal:{ts}' 127.0.0.1:7", "--expect", "cannot be tied");
    expect_bad("--request y --expect 'prefix:{key}' 127.0.0.1:7", "--expect", "its request 0");
    expect_bad("--request '{len:key}' 127.0.0.1:7", "--request", "none follows");
    expect_bad("--proto http -H 'NoColon' 127.0.0.1:7", "-H", "'Name: value'");
    expect_bad("--proto http -H ': empty' 127.0.0.1:7", "-H", "'Name: value'");
    expect_bad("--path /a http://127.0.0.1:7/b", "--path", "gives the path");
    expect_bad("--proto memcache http://127.0.0.1:7/", "target", "a URL goes with --proto http");
    expect_bad("http:///x", "target", "http://HOST");
    expect_bad("--request 'get {nope}' 127.0.0.1:7", "--request", "unknown placeholder '{nope}'");
    expect_bad("--request 'get {key' 127.0.0.1:7", "--request", "never closed");
    expect_bad("--request x --frame len:0:3:be 127.0.0.1:7", "--frame", "1, 2, 4 or 8");
    expect_bad("--request x --frame 'regex:(' 127.0.0.1:7", "--frame", "bad regular expression");
    expect_bad("--request x --expect bogus:1 127.0.0.1:7", "--expect", "literal:STR");
    expect_bad("--request x --expect status:200 127.0.0.1:7", "--expect status", "--frame http");
    expect_bad("--request-file /nonexistent/x 127.0.0.1:7", "--request-file", "No such file");
    expect_bad("--proto memcache --request x 127.0.0.1:7", "--request", "--proto memcache");
    expect_bad("-u --proto memcache 127.0.0.1:7", "--udp", "TCP only");
    expect_bad("--proto http --frame fixed:3 127.0.0.1:7", "--frame", "http");
    expect_bad("--proto http --path nope 127.0.0.1:7", "--path", "starting with /");
    expect_bad("--proto memcache --size 100 127.0.0.1:7", "--size", "echo messages");
    expect_bad("--frame fixed:3 127.0.0.1:7", "--frame", "request templates");
    expect_bad("--key-dist zipf:0 --proto memcache 127.0.0.1:7", "--key-dist", "zipf:S");
    expect_bad("--value-size 0 --proto memcache 127.0.0.1:7", "--value-size", "1 to 1000000");
    expect_bad("--set-ratio 2 --proto memcache 127.0.0.1:7", "--set-ratio", "0 to 1");
    expect_bad("--max-reply 4 --proto http 127.0.0.1:7", "--max-reply", "16 bytes");
    expect_bad("--interval 1ms 127.0.0.1:7", "--interval", "at least 10 ms");
    expect_bad("--start-at yesterday 127.0.0.1:7", "--start-at", "@UNIX-SECONDS");
    expect_bad("--start-at @1000 127.0.0.1:7", "--start-at", "in the past");
    expect_bad("--start-at +2d 127.0.0.1:7", "--start-at", "expected");
    expect_bad("--start-at +25h 127.0.0.1:7", "--start-at", "expected");
    expect_bad("--start-at +1500m 127.0.0.1:7", "--start-at", "24 hours");
    expect_bad("--weight -1 --request x 127.0.0.1:7", "--weight", "at least 0");
    expect_bad("--request x --weight lots 127.0.0.1:7", "--weight", "'lots'");
    expect_bad("--key-prefix 'a b' --proto memcache 127.0.0.1:7", "--key-prefix", "without blanks");
    expect_bad("--value-size 5-3 --proto memcache 127.0.0.1:7", "--value-size", "MIN-MAX");
    expect_bad("--keys 0 --proto memcache 127.0.0.1:7", "--keys", "from 1");
    expect_bad("-x 127.0.0.1:7", "unknown option", "'-x'");
    expect_bad("--request a --request b --request c --request d --request e --request f "
               "--request g --request h --request i --request j --request k --request l "
               "--request m --request n --request o --request p --request-file q 127.0.0.1:7",
               "--request-file", "at most 16 templates");
}
END_TEST

/* ---- cache workloads ------------------------------------------------------------------------- */

/* --preload sets every key once; then multi-key gets all hit and every value verifies. */
START_TEST(test_memcache_preload_mget_hits)
{
    struct lp_server *s = start(LP_MEMCACHE);
    struct load_config cfg;
    struct load_result res;
    char err[512], line[512];
    char *argv[MAX_ARGS];
    int argc;

    snprintf(line, sizeof(line),
             "--proto memcache --preload --keys 500 --ratio 0:1 --mget 4 --key-pattern zipf:1.1 "
             "--value-size 10-200 -t 2 -c 4 -p 2 -n 2000 -d 30 127.0.0.1:%u", lp_server_port(s));
    argc = split(line, argv);
    ck_assert_msg(opts_parse(&cfg, argc, argv, stdout, err, sizeof(err)) == 0, "%s", err);
    cfg.progress = 0;
    ck_assert_ptr_nonnull(cfg.preload_tmpls);
    ck_assert_int_eq(preload_run(&cfg, err, sizeof(err)), 0);
    ck_assert(cfg.preloaded);
    ck_assert_uint_eq(cfg.preload_sets, 500);
    ck_assert_uint_eq(cfg.preload_errors, 0);
    ck_assert_uint_eq(lp_server_requests(s), 500); /* each key exactly once */
    ck_assert_int_eq(engine_run(&cfg, &res, err, sizeof(err)), 0);
    ck_assert_uint_eq(stat_errors(&res.st), 0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 2000);
    ck_assert_uint_eq(res.st.c[ST_HITS], 8000);
    ck_assert_uint_eq(res.st.c[ST_MISSES], 0);
    ck_assert_uint_eq(lp_server_hits(s), 8000);
    ck_assert_uint_eq(res.cmd[0]->total, 2000);
    ck_assert_str_eq(cfg.tmpls->t[0].name, "mget");
    done(&cfg, &res);
    lp_server_stop(s);
}
END_TEST

/* Without a preload, a get/set mix: hits + misses = keys asked for; per-command latency adds up. */
START_TEST(test_memcache_hits_misses_per_command)
{
    struct lp_server *s = start(LP_MEMCACHE);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res,
                         "--proto memcache --ratio 1:3 --keys 200 --key-pattern gauss:100,30 "
                         "-c 3 -p 4 -n 3000 -d 30 127.0.0.1:%u", lp_server_port(s)),
                     0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 3000);
    ck_assert_uint_eq(res.cmd[0]->total + res.cmd[1]->total, 3000);
    ck_assert_uint_eq(res.st.c[ST_HITS] + res.st.c[ST_MISSES], res.cmd[0]->total);
    ck_assert_uint_eq(res.st.c[ST_HITS], lp_server_hits(s));
    ck_assert_uint_gt(res.st.c[ST_HITS], 0);
    ck_assert_uint_gt(res.st.c[ST_MISSES], 0);
    done(&cfg, &res);
    lp_server_stop(s);
}
END_TEST

/* A server returning a wrong value is caught: bad_value, named in the first error. */
START_TEST(test_memcache_wrong_value)
{
    struct lp_server *s = start(LP_MEMCACHE_WRONG);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res,
                         "--proto memcache --set-ratio 0.5 --keys 20 -c 2 -n 1000 -d 30 127.0.0.1:%u",
                         lp_server_port(s)),
                     1);
    ck_assert_uint_gt(res.st.c[ST_BAD_VALUE], 0);
    /* every 10th value the server found was wrong, and only those */
    ck_assert_uint_eq(res.st.c[ST_BAD_VALUE], lp_server_hits(s) / 10);
    ck_assert_msg(strstr(res.first_error, "bad_value"), "%s", res.first_error);
    ck_assert_msg(strstr(res.first_error, "wrong value"), "%s", res.first_error);
    done(&cfg, &res);
    lp_server_stop(s);
}
END_TEST

/* A hand-written template with memcache framing and no --expect fails on ERROR. */
START_TEST(test_memcache_frame_error_line_fails)
{
    struct lp_server *s = start(LP_MEMCACHE);
    struct load_config cfg;
    struct load_result res;

    ck_assert_int_eq(run(&cfg, &res,
                         "--request bogus_{key}\\r\\n --frame memcache -c 1 -n 50 -d 30 127.0.0.1:%u",
                         lp_server_port(s)),
                     1);
    ck_assert_uint_eq(res.st.c[ST_MISMATCH], 50);
    ck_assert_msg(strstr(res.first_error, "ERROR"), "%s", res.first_error);
    done(&cfg, &res);
    lp_server_stop(s);
}
END_TEST

/* Templates tied to their request: --expect with placeholders, {len:...}, --name. */
START_TEST(test_expect_placeholders_len_names)
{
    struct lg_server *e = lg_server_start(LG_ECHO, 0);
    struct load_config cfg;
    struct load_result res;

    ck_assert_ptr_nonnull(e);
    /* an echo returns each request: the expected reply, expanded per request, matches */
    ck_assert_int_eq(
        run(&cfg, &res,
            "-c 2 -p 8 -n 2000 -d 30 --key-pattern zipf "
            "--request 'GET {key} {seq} {conn}\\n' --name plain --expect 'literal:GET {key} {seq} {conn}\\n' "
            "--request '*2\\r\\n$3\\r\\nGET\\r\\n${len:key}\\r\\n{key}\\r\\n' --name resp --frame resp "
            "--expect 'literal:*2\\r\\n$3\\r\\nGET\\r\\n${len:key}\\r\\n{key}\\r\\n' "
            "--request 'SET {key} {size} {value}\\n' --name setv --expect 'prefix:SET {key} {len:value} {value}' "
            "--value-size 5-50 127.0.0.1:%u",
            lg_server_port(e)),
        0);
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 2000);
    ck_assert_str_eq(cfg.tmpls->t[0].name, "plain");
    ck_assert_str_eq(cfg.tmpls->t[1].name, "resp");
    ck_assert_str_eq(cfg.tmpls->t[2].name, "setv");
    ck_assert_uint_eq(res.cmd[0]->total + res.cmd[1]->total + res.cmd[2]->total, 2000);
    done(&cfg, &res);
    /* a reply tied to another request's field fails: {seq} against {conn} (equal only for
     * seq 0 on connection 0 and seq 1 on connection 1) */
    ck_assert_int_eq(run(&cfg, &res, "-c 2 -n 100 -d 30 --request 'x {seq}\\n' --expect 'literal:x {conn}\\n' "
                                     "127.0.0.1:%u",
                         lg_server_port(e)),
                     1);
    ck_assert_uint_eq(res.st.c[ST_MISMATCH], 98);
    done(&cfg, &res);
    lg_server_stop(e);
}
END_TEST

/* -H headers (Host replaced, placeholders in values) and URL targets. */
START_TEST(test_http_headers_and_url)
{
    struct lp_server *s = start(LP_HTTP);
    struct load_config cfg;
    struct load_result res;
    char last[1024], want[256];

    ck_assert_int_eq(run(&cfg, &res,
                         "-c 1 -n 10 -d 30 -H 'X-Seq: {seq}' -H 'Accept: */*' "
                         "http://127.0.0.1:%u/chunked",
                         lp_server_port(s)),
                     0);
    ck_assert_str_eq(cfg.tmpls->proto, "http");
    ck_assert_uint_eq(res.st.c[ST_MEASURED], 10);
    lp_server_last_request(s, last, sizeof(last));
    snprintf(want, sizeof(want), "GET /chunked HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nX-Seq: 9\r\nAccept: */*\r\n\r",
             lp_server_port(s));
    ck_assert_str_eq(last, want);
    done(&cfg, &res);
    ck_assert_int_eq(run(&cfg, &res, "--proto http -c 1 -n 3 -d 30 -H 'host: example.org' 127.0.0.1:%u",
                         lp_server_port(s)),
                     0);
    lp_server_last_request(s, last, sizeof(last));
    ck_assert_str_eq(last, "GET / HTTP/1.1\r\nhost: example.org\r\n\r");
    done(&cfg, &res);
    /* a URL without a path is /, and the path of a 404 fails as usual */
    ck_assert_int_eq(run(&cfg, &res, "-c 1 -n 5 -d 30 http://127.0.0.1:%u", lp_server_port(s)), 0);
    done(&cfg, &res);
    ck_assert_int_eq(run(&cfg, &res, "-c 1 -n 5 -d 30 http://127.0.0.1:%u/missing", lp_server_port(s)), 1);
    ck_assert_uint_eq(res.st.c[ST_MISMATCH], 5);
    done(&cfg, &res);
    lp_server_stop(s);
}
END_TEST

static Suite *proto_suite(void)
{
    Suite *s = suite_create("load_proto");
    TCase *tc = tcase_create("modes");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_memcache_mode);
    tcase_add_test(tc, test_http_mode_pipelined);
    tcase_add_test(tc, test_inline_templates_mix);
    tcase_add_test(tc, test_template_from_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_memcache_preload_mget_hits);
    tcase_add_test(tc, test_memcache_hits_misses_per_command);
    tcase_add_test(tc, test_memcache_wrong_value);
    tcase_add_test(tc, test_memcache_frame_error_line_fails);
    tcase_add_test(tc, test_expect_placeholders_len_names);
    tcase_add_test(tc, test_http_headers_and_url);
    suite_add_tcase(s, tc);

    tc = tcase_create("wrong");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wrong_garbage);
    tcase_add_test(tc, test_wrong_too_much);
    tcase_add_test(tc, test_wrong_too_little);
    tcase_add_test(tc, test_reconnect_connection_close);
    tcase_add_test(tc, test_reconnect_http10);
    tcase_add_test(tc, test_reconnect_eof_between_replies);
    tcase_add_test(tc, test_wrong_nothing);
    tcase_add_test(tc, test_wrong_too_long);
    tcase_add_test(tc, test_wrong_status);
    suite_add_tcase(s, tc);

    tc = tcase_create("series");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_series_json_and_merge);
    tcase_add_test(tc, test_bad_template_options_named);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return check_run(proto_suite()); }
