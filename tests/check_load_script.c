/* check_load_script.c - unit tests of wharf-load's Lua hooks (tools/wharf-load/script.c)
 * without sockets: scripts written to temporary files, loaded into a set of states, and
 * their hooks called as the TCP engine calls them. Shows: setup(thread) in the main state
 * and init per thread state as wrk runs them, no sharing between states but what
 * thread:set and thread:get copy (strings, numbers, booleans, tables of them; functions,
 * cycles refused by name), thread.addr, thread:stop(), what a script may not do to the
 * generator (os.exit, coroutine.yield outside a coroutine, binary chunks, debug.sethook), request() bytes and the ctx value handed to that request's
 * response(), a held request given again, a connection's end dropping its ctx values, the
 * HTTP response split into status, headers and body (chunked coding taken off, chunk
 * extensions, no space after the colon), response() false and errors named with file,
 * line and hook, load errors, --max-request, the memory and instruction limits, wrk-style
 * scripts (wrk.method/body) and done()'s summary. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "../tools/wharf-load/hist.h"
#include "../tools/wharf-load/script.h"
#include "../tools/wharf-load/stats.h"
#include "../tools/wharf-load/thread.h"

static char path[64];

/* Writes `text` to a new temporary .lua file (its name in path). */
static void write_script(const char *text)
{
    int fd;

    snprintf(path, sizeof(path), "/tmp/check_load_script_XXXXXX.lua");
    fd = mkstemps(path, 4);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static struct script_params params(unsigned threads, bool http)
{
    struct script_params p;

    memset(&p, 0, sizeof(p));
    p.path = path;
    p.threads = threads;
    p.http = http;
    p.target = "127.0.0.1:8080";
    p.host = "127.0.0.1";
    p.port = 8080;
    p.path_default = "/";
    p.max_request = SCRIPT_DEFAULT_MAX_REQUEST;
    p.max_mem = 4u << 20;    /* small limits: quick to reach, also under valgrind */
    p.max_steps = 5000000;
    return p;
}

static struct script_set *open_ok(const char *text, struct script_params *p)
{
    char err[512] = "";
    struct script_set *ss;

    write_script(text);
    p->path = path;
    ss = script_set_open(p, err, sizeof(err));
    unlink(path);
    ck_assert_msg(ss != NULL, "%s", err);
    return ss;
}

/* The load error of `text`, which must contain `want`. */
static void open_bad(const char *text, const char *want)
{
    struct script_params p = params(2, false);
    char err[512] = "";
    struct script_set *ss;

    write_script(text);
    ss = script_set_open(&p, err, sizeof(err));
    unlink(path);
    ck_assert_msg(ss == NULL, "loaded: %s", text);
    ck_assert_msg(strstr(err, want) && strstr(err, path), "'%s' lacks '%s' or the file", err, want);
}

static const char *request(struct script *s, uint32_t conn, uint64_t seq, size_t *len)
{
    const uint8_t *r = NULL;
    char why[256];
    enum script_rc rc = script_request(s, conn, seq, &r, len, why, sizeof(why));

    ck_assert_msg(rc == SCRIPT_OK, "%s", why);
    return (const char *)r;
}

START_TEST(test_threads_own_states)
{
    struct script_params p = params(3, false);
    struct script_set *ss;
    size_t n;
    unsigned i;

    p.args[0] = "alpha";
    p.args[1] = "beta";
    p.nargs = 2;
    ss = open_ok("local n = 0\n"
                 "function setup(t) t:set('id', t.id); t:set('total', t.threads) end\n"
                 "function init(args) tag = args[1] .. '+' .. args[2] .. '/' .. #args end\n"
                 "function request(conn, seq)\n"
                 "  n = n + 1\n"
                 "  return string.format('%s %d/%d %d %d %d %d', tag, id, total, conn, seq, n, wharf.thread.id)\n"
                 "end\n", &p);
    ck_assert(script_set_has_request(ss));
    for (i = 0; i < 3; i++) {
        char want[64];
        const char *r = request(script_thread(ss, i), 7, 41, &n);

        snprintf(want, sizeof(want), "alpha+beta/2 %u/3 7 41 1 %u", i, i);
        ck_assert_uint_eq(n, strlen(want));
        ck_assert(memcmp(r, want, n) == 0);
    }
    /* a state's globals are its own: thread 0 counts on, thread 1 is still at 1 */
    request(script_thread(ss, 0), 7, 42, &n);
    ck_assert(memcmp(request(script_thread(ss, 0), 7, 43, &n), "alpha+beta/2 0/3 7 43 3 0", n) == 0);
    ck_assert(memcmp(request(script_thread(ss, 1), 7, 42, &n), "alpha+beta/2 1/3 7 42 2 1", n) == 0);
    script_set_free(ss);
}
END_TEST

/* wrk's setup.lua: setup(thread) runs in the main state, once per thread and before that
 * thread's init(); thread:set hands each thread its values, copied (integers stay
 * integers, NUL bytes stay); done() reads them back with thread:get. Copies are deep and
 * separate: a table a thread changes is not changed in the main state or another thread. */
START_TEST(test_thread_set_get_copies)
{
    struct script_params p = params(3, true);
    struct script_set *ss = open_ok(
        "local counter, threads, order = 1, {}, ''\n"
        "shared = {v = 1}\n"
        "function setup(thread)\n"
        "  order = order .. 's' .. thread.id\n"
        "  thread:set('id', counter)\n"
        "  thread:set('shared', shared)\n"
        "  thread:set('conf', {name = 'n' .. counter, big = 1 << 53, half = 0.5, yes = true,\n"
        "    no = false, list = {10, 20, {deep = 'x\\0y'}}, [7] = 'seven', [1.5] = 'float key'})\n"
        "  if thread.id > 0 then order = order .. '<' .. threads[#threads]:get('inited') .. '>' end\n"
        "  table.insert(threads, thread)\n"
        "  counter = counter + 1\n"
        "end\n"
        "function init(args)\n"
        "  inited = 'i' .. wrk.thread.id\n"
        "  requests = 0\n"
        "end\n"
        "function request()\n"
        "  requests = requests + 1\n"
        "  shared.v = shared.v + 1\n"
        "  conf.list[3].deep = 'changed'\n"
        "  return string.format('%d %s %s %d %s %s %s %d %d %s %s', id, conf.name, math.type(conf.big),\n"
        "    conf.big, conf.half, tostring(conf.yes), tostring(conf.no), conf.list[2],\n"
        "    #conf.list[3].deep, conf[7], conf[1.5])\n"
        "end\n"
        "function done()\n"
        "  local got = order .. ' ' .. shared.v\n"
        "  for _, t in ipairs(threads) do\n"
        "    got = got .. ' ' .. t:get('id') .. ':' .. t:get('requests') .. ':' ..\n"
        "      #t:get('conf').list[3].deep .. ':' .. t:get('shared').v .. ':' .. tostring(t:get('nothing'))\n"
        "  end\n"
        "  if got ~= 's0s1<i0>s2<i1> 1 1:0:3:1:nil 2:2:7:3:nil 3:1:7:2:nil' then error(got) end\n"
        "end\n", &p);
    static const char want[] = "2 n2 integer 9007199254740992 0.5 true false 20 7 seven float key";
    struct load_result res;
    char err[256] = "";
    size_t n;
    const char *r;

    r = request(script_thread(ss, 1), 0, 0, &n);
    ck_assert_msg(n == strlen(want) && memcmp(r, want, n) == 0, "%.*s", (int)n, r);
    request(script_thread(ss, 1), 0, 1, &n);
    request(script_thread(ss, 2), 0, 0, &n);
    memset(&res, 0, sizeof(res));
    res.raw = hist_new();
    res.corrected = hist_new();
    ck_assert_msg(script_done(ss, &res, false, err, sizeof(err)) == 0, "%s", err);
    hist_free(res.raw);
    hist_free(res.corrected);
    script_set_free(ss);
}
END_TEST

/* What cannot cross, named: a function, a coroutine, a userdata, a table that contains
 * itself; and what a thread object refuses: stop() outside its own thread, unknown fields,
 * a bad thread.addr, thread.addr once the run has started. */
START_TEST(test_thread_copy_refused)
{
    struct script_params p = params(1, false);
    struct script_set *ss;
    struct load_result res;
    char err[256] = "";

    open_bad("function setup(t) t:set('f', print) end\n",
             "in setup(): ");
    open_bad("function setup(t) t:set('f', function() end) end\n",
             "thread:set('f'): a function cannot be copied to another state");
    open_bad("function setup(t) t:set('c', coroutine.create(print)) end\n",
             "thread:set('c'): a thread cannot be copied");
    open_bad("function setup(t) local a = {}; a.self = a; t:set('a', a) end\n",
             "thread:set('a'): tables nested deeper than 32 (a table that contains itself?)");
    open_bad("function setup(t) t:set('x', {t}) end\n",
             "thread:set('x'): a userdata cannot be copied");
    open_bad("function setup(t) t:stop() end\n",
             "thread:stop(): a thread stops itself, with wrk.thread:stop()");
    open_bad("function setup(t) t.colour = 'red' end\n",
             "thread.colour: cannot be set");
    open_bad("function setup(t) t.addr = 'localhost:80' end\n",
             "thread.addr: expected a numeric ADDR:PORT ([ADDR]:PORT for IPv6), got 'localhost:80'");
    open_bad("function setup(t) t.addr = '127.0.0.1:0' end\n", "got '127.0.0.1:0'");
    open_bad("function setup(t) t.addr = '[::1]:80' end\n",
             "thread.addr: '[::1]:80' is not of the target's address family (IPv4)");
    /* thread:get of a function in done(); thread.addr after the run began */
    ss = open_ok("threads = {}\n"
                 "function setup(t) table.insert(threads, t) end\n"
                 "function init() f = print end\n"
                 "function done(s) if s.requests == 1 then threads[1].addr = '127.0.0.1:1' end\n"
                 "  return threads[1]:get('f') end\n", &p);
    memset(&res, 0, sizeof(res));
    res.raw = hist_new();
    res.corrected = hist_new();
    ck_assert_int_eq(script_done(ss, &res, false, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "in done(): ") && strstr(err, "thread:get('f'): a function cannot be copied"),
                  "%s", err);
    res.st.c[ST_MEASURED] = 1;
    ck_assert_int_eq(script_done(ss, &res, false, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "thread.addr: can be set in setup() or init() only"), "%s", err);
    hist_free(res.raw);
    hist_free(res.corrected);
    script_set_free(ss);
}
END_TEST

/* thread.addr: readable everywhere (the target by default), settable in setup() or init();
 * the engine connects the thread's connections there (script_addr). */
START_TEST(test_thread_addr)
{
    struct script_params p = params(3, false);
    struct script_set *ss = open_ok("function setup(t)\n"
                                    "  t:set('before', t.addr)\n"
                                    "  if t.id == 1 then t.addr = '127.0.0.2:9090' end\n"
                                    "end\n"
                                    "function init() if wrk.thread.id == 2 then wrk.thread.addr = '127.0.0.3:7' end end\n"
                                    "function request() return before .. ' ' .. wrk.thread.addr end\n", &p);
    const struct sockaddr *sa;
    const struct sockaddr_in *in;
    socklen_t len;
    size_t n;
    const char *r;

    r = request(script_thread(ss, 0), 0, 0, &n);
    ck_assert(n == strlen("127.0.0.1:8080 127.0.0.1:8080") && memcmp(r, "127.0.0.1:8080 127.0.0.1:8080", n) == 0);
    r = request(script_thread(ss, 1), 0, 0, &n);
    ck_assert(n == strlen("127.0.0.1:8080 127.0.0.2:9090") && memcmp(r, "127.0.0.1:8080 127.0.0.2:9090", n) == 0);
    ck_assert(!script_addr(script_thread(ss, 0), &sa, &len));
    ck_assert(script_addr_text(ss, 0) == NULL);
    ck_assert(script_addr(script_thread(ss, 1), &sa, &len));
    in = (const struct sockaddr_in *)sa;
    ck_assert_uint_eq(len, sizeof(*in));
    ck_assert_uint_eq(in->sin_family, AF_INET);
    ck_assert_uint_eq(ntohs(in->sin_port), 9090);
    ck_assert_uint_eq(ntohl(in->sin_addr.s_addr), 0x7f000002);
    ck_assert_str_eq(script_addr_text(ss, 1), "127.0.0.2:9090");
    ck_assert_str_eq(script_addr_text(ss, 2), "127.0.0.3:7");
    script_set_free(ss);
    /* IPv6 targets take [ADDR]:PORT */
    p.host = "::1";
    p.threads = 1;
    ss = open_ok("function setup(t) t:set('was', t.addr); t.addr = '[::1]:81' end\n"
                 "function request() return was end\n", &p);
    r = request(script_thread(ss, 0), 0, 0, &n);
    ck_assert(n == strlen("[::1]:8080") && memcmp(r, "[::1]:8080", n) == 0);
    ck_assert(script_addr(script_thread(ss, 0), &sa, &len) && sa->sa_family == AF_INET6);
    script_set_free(ss);
}
END_TEST

/* wrk.thread:stop() (wrk's stop.lua): the thread asks to stop from its own hooks; the
 * engine sees script_stopped(). Other threads go on. */
START_TEST(test_thread_stop)
{
    struct script_params p = params(2, true);
    struct script_set *ss = open_ok("local counter = 1\n"
                                    "function request() return wrk.request() end\n"
                                    "function response()\n"
                                    "  if counter == 3 then wrk.thread:stop() end\n"
                                    "  counter = counter + 1\n"
                                    "end\n", &p);
    struct script *s = script_thread(ss, 0);
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    static const char want[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    char why[256];
    size_t n;
    unsigned i;
    const char *r;

    r = request(s, 0, 0, &n); /* wrk.request(): wrk.format() as it was after init() */
    ck_assert_msg(n == strlen(want) && memcmp(r, want, n) == 0, "%.*s", (int)n, r);
    for (i = 0; i < 3; i++) {
        ck_assert(!script_stopped(s));
        ck_assert_int_eq(script_response(s, 0, i, (const uint8_t *)ok, sizeof(ok) - 1, 200, why,
                                         sizeof(why)), SCRIPT_OK);
    }
    ck_assert(script_stopped(s));
    ck_assert(!script_stopped(script_thread(ss, 1)));
    script_set_free(ss);
    /* stopped in init(): before the run */
    ss = open_ok("function init() if wrk.thread.id == 1 then wrk.thread:stop() end end\n", &p);
    ck_assert(!script_stopped(script_thread(ss, 0)) && script_stopped(script_thread(ss, 1)));
    script_set_free(ss);
}
END_TEST

/* What a hook cannot do to the generator: end it (os.exit), yield at the top of a hook,
 * load a binary chunk, remove the instruction limit; error() with any value; an endless
 * loop inside a coroutine. Each is a named script_error and the state goes on. */
START_TEST(test_hostile_hooks)
{
    struct script_params p = params(1, false);
    struct script_set *ss = open_ok(
        "function request(conn, seq)\n"
        "  if seq == 0 then os.exit(3) end\n"
        "  if seq == 1 then coroutine.yield('x') end\n"
        "  if seq == 2 then local f, e = load(string.dump(function() end)); error(e) end\n"
        "  if seq == 3 then debug.sethook() end\n"
        "  if seq == 4 then error({}) end\n"
        "  if seq == 5 then error() end\n"
        "  if seq == 6 then coroutine.wrap(function() while true do end end)() end\n"
        "  if seq == 7 then error(setmetatable({}, {__tostring = function() error('again') end})) end\n"
        "  if seq == 8 then return (load('return \"text\"'))() end\n"
        "  return 'fine'\n"
        "end\n", &p);
    static const char *const want[] = {
        "os.exit(): a script cannot end wharf-load",
        "attempt to yield from outside a coroutine",
        "attempt to load a binary chunk",
        "debug.sethook(): not in wharf-load",
        "script_error in request(): table: ",
        "script_error in request(): nil",
        "more than 5 million instructions",
        "script_error in request(): ",
    };
    struct script *s = script_thread(ss, 0);
    const uint8_t *r;
    char why[256];
    size_t n;
    unsigned i;

    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_int_eq(script_request(s, 0, i, &r, &n, why, sizeof(why)), SCRIPT_ERROR);
        ck_assert_msg(strstr(why, want[i]), "seq %u: '%s' lacks '%s'", i, why, want[i]);
    }
    ck_assert_int_eq(script_request(s, 0, 8, &r, &n, why, sizeof(why)), SCRIPT_OK);
    ck_assert(n == 4 && memcmp(r, "text", 4) == 0);
    ck_assert_int_eq(script_request(s, 0, 9, &r, &n, why, sizeof(why)), SCRIPT_OK);
    ck_assert(n == 4 && memcmp(r, "fine", 4) == 0);
    script_set_free(ss);
    /* at load, in setup(), init() and done(): named, never the end of the process */
    open_bad("os.exit(0)\n", "os.exit(): a script cannot end wharf-load");
    open_bad("function setup() os.exit(1) end\n", "in setup(): ");
    open_bad("function init() coroutine.yield() end\n", "in init(): ");
    open_bad("function setup() while true do end end\n", "more than 5 million instructions");
    open_bad("function init() error() end\n", "in init(): nil");
}
END_TEST

START_TEST(test_ctx_hold_and_close)
{
    struct script_params p = params(1, false);
    struct script_set *ss = open_ok("function request(conn, seq) local r = 'q' .. conn .. ':' .. seq; return r, r end\n"
                                    "function response(reply, ctx)\n"
                                    "  if ctx == nil then return false, 'no ctx for ' .. reply end\n"
                                    "  if reply ~= ctx then return false, 'got ' .. reply .. ' for ' .. ctx end\n"
                                    "end\n", &p);
    struct script *s = script_thread(ss, 0);
    char why[256];
    size_t n;
    const char *r;

    /* pipelined: three requests in flight on conn 1, one on conn 2, answered in order */
    request(s, 1, 0, &n);
    request(s, 1, 1, &n);
    request(s, 2, 0, &n);
    request(s, 1, 2, &n);
    ck_assert_int_eq(script_response(s, 1, 0, (const uint8_t *)"q1:0", 4, 0, why, sizeof(why)), SCRIPT_OK);
    ck_assert_int_eq(script_response(s, 2, 0, (const uint8_t *)"q2:0", 4, 0, why, sizeof(why)), SCRIPT_OK);
    ck_assert_int_eq(script_response(s, 1, 1, (const uint8_t *)"q1:1", 4, 0, why, sizeof(why)), SCRIPT_OK);
    /* a wrong reply: rejected, the reason kept */
    ck_assert_int_eq(script_response(s, 1, 2, (const uint8_t *)"q1:9", 4, 0, why, sizeof(why)), SCRIPT_REJECTED);
    ck_assert_msg(strstr(why, "script_rejected on connection 1") && strstr(why, "got q1:9 for q1:2"), "%s", why);
    /* a ctx is taken out by its response: a second reply to the same request has none */
    ck_assert_int_eq(script_response(s, 1, 0, (const uint8_t *)"q1:0", 4, 0, why, sizeof(why)), SCRIPT_REJECTED);
    ck_assert_msg(strstr(why, "no ctx for q1:0"), "%s", why);

    /* a reply that failed an earlier check (no response() call) drops its ctx */
    request(s, 6, 0, &n);
    script_reply_dropped(s, 6, 0);
    ck_assert_int_eq(script_response(s, 6, 0, (const uint8_t *)"q6:0", 4, 0, why, sizeof(why)), SCRIPT_REJECTED);
    ck_assert_msg(strstr(why, "no ctx for q6:0"), "%s", why);

    /* held: the same bytes again, without calling request() (its seq would differ) */
    r = request(s, 3, 5, &n);
    ck_assert(n == 4 && memcmp(r, "q3:5", 4) == 0);
    script_hold(s, 3);
    r = request(s, 4, 0, &n); /* another connection is not given the held one */
    ck_assert(n == 4 && memcmp(r, "q4:0", 4) == 0);
    r = request(s, 3, 6, &n);
    ck_assert(n == 4 && memcmp(r, "q3:5", 4) == 0);
    r = request(s, 3, 6, &n);
    ck_assert(n == 4 && memcmp(r, "q3:6", 4) == 0);

    /* the end of a connection drops its ctx values and a request held for it */
    request(s, 5, 0, &n);
    script_hold(s, 5);
    script_conn_closed(s, 5);
    ck_assert_int_eq(script_response(s, 5, 0, (const uint8_t *)"q5:0", 4, 0, why, sizeof(why)), SCRIPT_REJECTED);
    r = request(s, 5, 1, &n);
    ck_assert(n == 4 && memcmp(r, "q5:1", 4) == 0);
    script_set_free(ss);
}
END_TEST

START_TEST(test_http_response)
{
    struct script_params p = params(1, true);
    struct script_set *ss = open_ok("function request() return 'GET / HTTP/1.1\\r\\n\\r\\n', 'ctx' end\n"
                                    "function response(status, headers, body, ctx)\n"
                                    "  seen = string.format('%d|%s|%s|%s|%s', status, headers['Content-Type'],\n"
                                    "    tostring(headers['X-Tight']), body, ctx)\n"
                                    "  if seen ~= want then error('saw ' .. seen) end\n"
                                    "end\n", &p);
    struct script *s = script_thread(ss, 0);
    static const char chunked[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Tight:v\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\n\r\n";
    static const char plain[] = "HTTP/1.1 404 Not Found\r\nContent-Type: x/y\r\nContent-Length: 3\r\n\r\na\0b";
    char why[256];
    size_t n;

    request(s, 0, 0, &n);
    request(s, 0, 1, &n);
    /* a script that knows what each reply must give */
    {
        struct script_params q = params(1, true);
        struct script_set *t = open_ok("want = '200|text/plain|v|hello, world!!!|ctx'\n"
                                       "function request() return 'x', 'ctx' end\n"
                                       "function response(status, headers, body, ctx)\n"
                                       "  local seen = string.format('%d|%s|%s|%s|%s', status, headers['Content-Type'],\n"
                                       "    tostring(headers['X-Tight']), body, ctx)\n"
                                       "  if seen ~= want then error('saw ' .. seen) end\n"
                                       "  want = '404|x/y|nil|a\\0b|ctx'\n"
                                       "end\n", &q);
        struct script *u = script_thread(t, 0);

        request(u, 0, 0, &n);
        request(u, 0, 1, &n);
        ck_assert_msg(script_response(u, 0, 0, (const uint8_t *)chunked, sizeof(chunked) - 1, 200, why,
                                      sizeof(why)) == SCRIPT_OK, "%s", why);
        ck_assert_msg(script_response(u, 0, 1, (const uint8_t *)plain, sizeof(plain) - 1, 404, why,
                                      sizeof(why)) == SCRIPT_OK, "%s", why);
        script_set_free(t);
    }
    /* the first script has no `want`: its response() errors, named with hook, file, line */
    ck_assert_int_eq(script_response(s, 0, 0, (const uint8_t *)plain, sizeof(plain) - 1, 404, why,
                                     sizeof(why)), SCRIPT_ERROR);
    ck_assert_msg(strstr(why, "script_error in response(): ") && strstr(why, ":5: saw 404|x/y|nil|a"),
                  "%s", why);
    script_set_free(ss);
}
END_TEST

START_TEST(test_response_only_status_costs_no_headers)
{
    struct script_params p = params(1, true);
    struct script_set *ss = open_ok("function response(status, headers)\n"
                                    "  if headers ~= nil then error('headers built') end\n"
                                    "  if status ~= 503 then return false end\n"
                                    "end\n", &p);
    struct script_set *s1 = open_ok("function response(status)\n"
                                    "  if select('#', status) ~= 1 or status ~= 503 then return false end\n"
                                    "end\n", &p);
    static const char r[] = "HTTP/1.1 503 x\r\nA: b\r\nContent-Length: 0\r\n\r\n";
    char why[256];

    ck_assert(!script_set_has_request(ss));
    /* response(status, headers): the headers are there */
    ck_assert_int_eq(script_response(script_thread(ss, 0), 0, 0, (const uint8_t *)r, sizeof(r) - 1, 503,
                                     why, sizeof(why)), SCRIPT_ERROR);
    ck_assert_int_eq(script_response(script_thread(s1, 0), 0, 0, (const uint8_t *)r, sizeof(r) - 1, 503,
                                     why, sizeof(why)), SCRIPT_OK);
    script_set_free(ss);
    script_set_free(s1);
}
END_TEST

START_TEST(test_wrk_style_fixed_request)
{
    struct script_params p = params(2, true);
    struct script_set *ss = open_ok("wrk.method = 'POST'\n"
                                    "wrk.body = 'foo=bar&baz=quux'\n"
                                    "wrk.headers['Content-Type'] = 'application/x-www-form-urlencoded'\n", &p);
    static const char want[] = "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                               "Host: 127.0.0.1:8080\r\nContent-Length: 16\r\n\r\nfoo=bar&baz=quux";
    size_t n;
    const char *r;

    ck_assert(script_set_has_request(ss));
    r = request(script_thread(ss, 1), 0, 0, &n);
    ck_assert_msg(n == sizeof(want) - 1 && memcmp(r, want, n) == 0, "%.*s", (int)n, r);
    script_set_free(ss);
    /* format() with a Host header of its own and no body; an untouched script sends the
     * template (no request) */
    ss = open_ok("function request() return wharf.format(nil, '/a', {Host = 'h'}) end\n", &p);
    r = request(script_thread(ss, 0), 0, 0, &n);
    ck_assert(n == strlen("GET /a HTTP/1.1\r\nHost: h\r\n\r\n") &&
              memcmp(r, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", n) == 0);
    script_set_free(ss);
    ss = open_ok("function response(s) end\n", &p);
    ck_assert(!script_set_has_request(ss));
    script_set_free(ss);
}
END_TEST

START_TEST(test_request_errors_and_limits)
{
    struct script_params p = params(1, false);
    struct script_set *ss;
    struct script *s;
    const uint8_t *r;
    char why[256];
    size_t n;

    p.max_request = 100;
    ss = open_ok("function request(conn, seq)\n"
                 "  if seq == 0 then return string.rep('a', 101) end\n"
                 "  if seq == 1 then return 5 end\n"
                 "  if seq == 2 then local t = nil; return t.x end\n"
                 "  if seq == 3 then while true do end end\n"
                 "  if seq == 4 then local t = {}; for i = 1, 1e9 do t[i] = string.rep('m', 64) .. i end end\n"
                 "  return string.rep('b', 100)\n"
                 "end\n", &p);
    s = script_thread(ss, 0);
    ck_assert_int_eq(script_request(s, 0, 0, &r, &n, why, sizeof(why)), SCRIPT_TOO_LONG);
    ck_assert_msg(strstr(why, "request_too_long: request() returned 101 bytes, more than --max-request 100"), "%s", why);
    ck_assert_int_eq(script_request(s, 0, 1, &r, &n, why, sizeof(why)), SCRIPT_ERROR);
    ck_assert_msg(strstr(why, "request(): returned a number, expected a string"), "%s", why);
    ck_assert_int_eq(script_request(s, 0, 2, &r, &n, why, sizeof(why)), SCRIPT_ERROR);
    ck_assert_msg(strstr(why, "script_error in request(): ") && strstr(why, ".lua:4: attempt to index a nil value"),
                  "%s", why);
    ck_assert_int_eq(script_request(s, 0, 3, &r, &n, why, sizeof(why)), SCRIPT_ERROR);
    ck_assert_msg(strstr(why, ".lua:5: more than 5 million instructions"), "%s", why);
    ck_assert_int_eq(script_request(s, 0, 4, &r, &n, why, sizeof(why)), SCRIPT_ERROR);
    ck_assert_msg(strstr(why, "not enough memory (a script state may use at most 4 MiB)"), "%s", why);
    /* the state goes on after every failure */
    ck_assert_int_eq(script_request(s, 0, 5, &r, &n, why, sizeof(why)), SCRIPT_OK);
    ck_assert_uint_eq(n, 100);
    script_set_free(ss);
}
END_TEST

START_TEST(test_load_errors_named)
{
    open_bad("function request(\n  return 'a'\nend\n", ":2: <name> or '...' expected near 'return'");
    open_bad("local t = nil\nlocal x = t.y\n", ":2: attempt to index a nil value");
    open_bad("function setup(t)\n  error('no ' .. t.id)\nend\n", "in setup(): ");
    open_bad("function init(a)\n  error('bad args')\nend\n", ":2: bad args");
    open_bad("response = {}\n", "'response' is a table, expected a function");
    open_bad("while true do end\n", "more than 5 million instructions");
    {
        struct script_params p = params(1, false);
        char err[256];

        p.path = "/nonexistent/x.lua";
        ck_assert(script_set_open(&p, err, sizeof(err)) == NULL);
        ck_assert_msg(strstr(err, "cannot open /nonexistent/x.lua"), "%s", err);
    }
}
END_TEST

START_TEST(test_done_summary)
{
    struct script_params p = params(1, false);
    struct script_set *ss = open_ok("function done(s, l)\n"
                                    "  got = string.format('%d %d %d %d %d %d %d %.0f %d %.0f %.0f %.0f',\n"
                                    "    s.duration, s.requests, s.sent, s.received, s.bytes, s.errors,\n"
                                    "    s.counters.script_rejected, s.rate, l.count, l.min, l.max, l:percentile(50))\n"
                                    "  if got ~= '2000000 100 110 105 4200 7 5 50 100 1 100 50' then error(got) end\n"
                                    "end\n", &p);
    struct load_result res;
    char err[256] = "";
    unsigned i;

    memset(&res, 0, sizeof(res));
    res.raw = hist_new();
    res.corrected = hist_new();
    for (i = 1; i <= 100; i++)
        hist_record(res.raw, i * 1000);
    res.measure_ns = 2000000000u;
    res.st.c[ST_MEASURED] = 100;
    res.st.c[ST_SENT] = 110;
    res.st.c[ST_RECEIVED] = 105;
    res.st.c[ST_BYTES_RECEIVED] = 4200;
    res.st.c[ST_SCRIPT_REJECTED] = 5;
    res.st.c[ST_MISMATCH] = 2;
    ck_assert_msg(script_done(ss, &res, false, err, sizeof(err)) == 0, "%s", err);
    /* open loop: the corrected histogram (empty here), an error in done() named */
    ck_assert_int_eq(script_done(ss, &res, true, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "in done(): ") && strstr(err, ":5: 2000000 100 110 105 4200 7 5 50 0 0 0 0"),
                  "%s", err);
    hist_free(res.raw);
    hist_free(res.corrected);
    script_set_free(ss);
}
END_TEST

static Suite *script_suite(void)
{
    Suite *s = suite_create("load_script");
    TCase *tc = tcase_create("script");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_threads_own_states);
    tcase_add_test(tc, test_thread_set_get_copies);
    tcase_add_test(tc, test_thread_copy_refused);
    tcase_add_test(tc, test_thread_addr);
    tcase_add_test(tc, test_thread_stop);
    tcase_add_test(tc, test_hostile_hooks);
    tcase_add_test(tc, test_ctx_hold_and_close);
    tcase_add_test(tc, test_http_response);
    tcase_add_test(tc, test_response_only_status_costs_no_headers);
    tcase_add_test(tc, test_wrk_style_fixed_request);
    tcase_add_test(tc, test_request_errors_and_limits);
    tcase_add_test(tc, test_load_errors_named);
    tcase_add_test(tc, test_done_summary);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return check_run(script_suite()); }
