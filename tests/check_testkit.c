/*
 * check_testkit.c - the handler test kit (wharf_test.h) as a handler author
 * uses it: the shipped echo handler compiled into the test, bytes fed in
 * every split, output seen exactly, EOF and the idle timeout driven by the
 * kit's clock; a module's handler (mod_contract) with its timers fired by
 * wharf_test_advance and its blocking work waited for by wharf_test_run;
 * backpressure with a client that stops reading; wharf_test_serve's real
 * server on an ephemeral port; the shipped teaching handlers (discard,
 * daytime, chat) driven through the kit; several kits with different
 * handlers alive at once in one program; and data and FIN arriving in one
 * step (wharf_test_send_eof).  And, looking inside at the worker's loop: a
 * relay (a proxy's shape: bytes sent from another connection's callback)
 * makes no epoll_ctl per message.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "conn.h"
#include "testutil.h"
#include "wharf_test.h"
#include "worker.h"

/* handlers/echo.c, compiled into this program. */
extern const struct wharf_handler wharf_handler;

static const struct wharf_handler *module_handler(const char *name)
{
    return test_module_symbol(name, "wharf_handler");
}

START_TEST(echo_in_every_split)
{
    char err[512] = "";
    wharf_test *t = wharf_test_new(&wharf_handler, NULL, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    const char *msg = "hello, wharf";
    size_t n = strlen(msg);
    for (size_t split = 0; split <= n; split++) {
        wharf_test_conn *c = wharf_test_connect(t);
        ck_assert_int_eq(wharf_test_send(c, msg, split), 0);
        ck_assert_int_eq(wharf_test_send(c, msg + split, n - split), 0);
        size_t len;
        const char *out = wharf_test_output(c, &len);
        ck_assert_uint_eq(len, n);
        ck_assert(memcmp(out, msg, n) == 0);
        wharf_test_shutdown(c);
        enum wharf_close_reason why;
        ck_assert(wharf_test_closed(c, &why));
        ck_assert_int_eq(why, WHARF_CLOSE_EOF);
    }
    wharf_test_free(t);
}
END_TEST

START_TEST(options_and_init_errors)
{
    char err[512] = "";
    wharf_test *t = wharf_test_new(&wharf_handler, "\"options\": {\"prefix\": \"> \"}", err,
                                   sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    wharf_test_send(c, "x", 1);
    ck_assert_str_eq(wharf_test_output(c, NULL), "> x");
    wharf_test_free(t);
    ck_assert_ptr_null(wharf_test_new(&wharf_handler, "\"options\": {\"nope\": 1}", err,
                                      sizeof err));
    ck_assert_msg(strstr(err, "unknown option \"nope\""), "%s", err);
    ck_assert_ptr_null(wharf_test_new(&wharf_handler, "\"colour\": 1", err, sizeof err));
    ck_assert_msg(strstr(err, "listeners[0].colour: unknown key"), "%s", err);
}
END_TEST

START_TEST(handler_clock_is_the_kits)
{
    /* Off a worker: the monotonic and wall clocks. */
    uint64_t mono = wharf_now_ms();
    ck_assert_int_gt(wharf_time(), 1700000000);
    ck_assert_uint_ge(wharf_now_ms(), mono);
    /* On the kit's worker: the kit's clock, which only advance moves. */
    char err[512];
    wharf_test *t = wharf_test_new(module_handler("mod_contract"), "\"options\": {\"mode\": \"clock\"}",
                                   err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    unsigned long long ms1, ms2;
    long long t1, t2;
    wharf_test_send(c, "?\n", 2);
    ck_assert_int_eq(sscanf(wharf_test_output(c, NULL), "now %llu %lld", &ms1, &t1), 2);
    usleep(50000);
    wharf_test_send(c, "?\n", 2);
    ck_assert_int_eq(sscanf(wharf_test_output(c, NULL), "now %llu %lld", &ms2, &t2), 2);
    ck_assert_uint_eq(ms2, ms1); /* real time passed, the kit's did not */
    wharf_test_advance(t, 5000);
    wharf_test_send(c, "?\n", 2);
    ck_assert_int_eq(sscanf(wharf_test_output(c, NULL), "now %llu %lld", &ms2, &t2), 2);
    ck_assert_uint_eq(ms2 - ms1, 5000);
    ck_assert(t2 - t1 >= 4 && t2 - t1 <= 6);
    wharf_test_free(t);
}
END_TEST

START_TEST(idle_timeout_on_the_kits_clock)
{
    char err[512];
    wharf_test *t = wharf_test_new(&wharf_handler, "\"timeouts\": {\"idle_ms\": 1000}", err,
                                   sizeof err);
    wharf_test_conn *c = wharf_test_connect(t);
    wharf_test_advance(t, 900);
    ck_assert(!wharf_test_closed(c, NULL));
    wharf_test_send(c, "a", 1); /* activity: the idle clock starts again */
    wharf_test_advance(t, 900);
    ck_assert(!wharf_test_closed(c, NULL));
    wharf_test_advance(t, 200);
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_TIMEOUT);
    ck_assert_int_eq(wharf_test_send(c, "b", 1), -EPIPE);
    wharf_test_free(t);
}
END_TEST

START_TEST(handler_timers_and_blocking_work)
{
    const struct wharf_handler *contract = module_handler("mod_contract");
    char err[512];
    wharf_test *t = wharf_test_new(contract, "\"options\": {\"mode\": \"tick\"}", err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    ck_assert_str_eq(wharf_test_output(c, NULL), "");
    wharf_test_advance(t, 19);
    ck_assert_str_eq(wharf_test_output(c, NULL), "");
    wharf_test_advance(t, 1);
    ck_assert_str_eq(wharf_test_output(c, NULL), "t\n");
    wharf_test_advance(t, 20);
    ck_assert_str_eq(wharf_test_output(c, NULL), "t\n");
    ck_assert(!wharf_test_closed(c, NULL));
    wharf_test_advance(t, 20); /* the third tick closes */
    ck_assert_str_eq(wharf_test_output(c, NULL), "t\n");
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_HANDLER);
    wharf_test_free(t);

    t = wharf_test_new(contract, "\"options\": {\"mode\": \"work\"}", err, sizeof err);
    c = wharf_test_connect(t);
    wharf_test_send(c, "abc\n", 4);
    ck_assert(wharf_test_run(t, 5000));
    ck_assert_str_eq(wharf_test_output(c, NULL), "done ABC\n");
    wharf_test_free(t);
}
END_TEST

START_TEST(backpressure_with_a_client_that_stops_reading)
{
    const struct wharf_handler *contract = module_handler("mod_contract");
    char err[512];
    wharf_test *t = wharf_test_new(
        contract, "\"options\": {\"mode\": \"big\"}, \"send_buffer\": 4096, "
                  "\"buffers\": {\"high_watermark\": 4096, \"low_watermark\": 1024}",
        err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    wharf_test_pause_reading(c, true);
    wharf_test_send(c, "1\n2\n", 4);
    struct wharf_listener_stats st;
    (void)st;
    wharf_test_pause_reading(c, false);
    size_t len;
    wharf_test_output(c, &len);
    ck_assert_uint_eq(len, 2 * 65537);
    wharf_test_free(t);
}
END_TEST

/* The shipped teaching handlers, tested through the kit (loaded from the
 * build tree's modules, as any module's handler can be). */
static const struct wharf_handler *shipped(const char *name)
{
    char path[4096];
    const char *src = getenv("WHARF_BUILDDIR");
    snprintf(path, sizeof path, "%s/handlers/.libs/%s.so", src ? src : ".", name);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(h != NULL, "%s", dlerror());
    const struct wharf_handler *hd = dlsym(h, "wharf_handler");
    ck_assert_ptr_nonnull(hd);
    return hd;
}

START_TEST(shipped_discard_and_daytime)
{
    char err[512];
    wharf_test *t = wharf_test_new(shipped("discard"), NULL, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    for (int i = 0; i < 100; i++)
        wharf_test_send(c, "0123456789", 10);
    size_t len;
    wharf_test_output(c, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert(!wharf_test_closed(c, NULL));
    wharf_test_free(t);

    t = wharf_test_new(shipped("daytime"), "\"options\": {\"format\": \"rfc3339\"}", err,
                       sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    c = wharf_test_connect(t);
    const char *line = wharf_test_output(c, &len);
    ck_assert_uint_eq(len, 22); /* 2026-11-30T01:23:45Z\r\n */
    ck_assert(line[4] == '-' && line[10] == 'T' && line[19] == 'Z' && line[20] == '\r');
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_HANDLER);
    wharf_test_free(t);
}
END_TEST

START_TEST(shipped_chat_room)
{
    char err[512];
    wharf_test *t = wharf_test_new(shipped("chat"), "\"options\": {\"max_line\": 16}", err,
                                   sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *a = wharf_test_connect(t), *b = wharf_test_connect(t);
    wharf_test_output(a, NULL);
    wharf_test_output(b, NULL);
    wharf_test_send(a, "/nick ann\n", 10);
    wharf_test_output(a, NULL);
    wharf_test_output(b, NULL);
    wharf_test_send(a, "hel", 3); /* a line in two pieces */
    wharf_test_send(a, "lo\n", 3);
    ck_assert_str_eq(wharf_test_output(b, NULL), "ann: hello\n");
    ck_assert_str_eq(wharf_test_output(a, NULL), ""); /* not echoed to the sender */
    wharf_test_send(b, "0123456789abcdefXYZ\n", 20); /* over max_line */
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(b, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_LIMIT);
    ck_assert(!wharf_test_closed(a, NULL));
    wharf_test_free(t); /* on_shutdown: a gets the goodbye */
}
END_TEST

START_TEST(serve_starts_a_real_server)
{
    char err[512];
    int port = 0;
    wharf_server *srv = wharf_test_serve(&wharf_handler, 2, "\"options\": {\"prefix\": \"+\"}",
                                         &port, err, sizeof err);
    ck_assert_msg(srv != NULL, "%s", err);
    ck_assert_int_gt(port, 0);
    int fd = tcp_connect("127.0.0.1", port);
    send_all(fd, "hi", 2);
    char got[4] = "";
    ck_assert_uint_eq(recv_exact(fd, got, 3, 2000), 3);
    ck_assert_str_eq(got, "+hi");
    close(fd);
    wharf_server_free(srv);
}
END_TEST

/* Four kits at once, interleaved: echo twice (other options), the timer
 * mode of mod_contract and the chat room.  Each call runs only its own
 * kit's callbacks, clocks are separate, and freeing one leaves the others
 * serving. */
START_TEST(several_kits_with_different_handlers)
{
    char err[512];
    wharf_test *a = wharf_test_new(&wharf_handler, "\"options\": {\"prefix\": \"A:\"}", err,
                                   sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    wharf_test *b = wharf_test_new(module_handler("mod_contract"),
                                   "\"options\": {\"mode\": \"tick\"}", err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    wharf_test *chat = wharf_test_new(shipped("chat"), NULL, err, sizeof err);
    ck_assert_msg(chat != NULL, "%s", err);
    wharf_test *d = wharf_test_new(&wharf_handler, "\"options\": {\"prefix\": \"D:\"}", err,
                                   sizeof err);
    ck_assert_msg(d != NULL, "%s", err);

    wharf_test_conn *ca = wharf_test_connect(a), *cb = wharf_test_connect(b);
    wharf_test_conn *c1 = wharf_test_connect(chat), *cd = wharf_test_connect(d);
    wharf_test_conn *c2 = wharf_test_connect(chat);
    ck_assert_ptr_nonnull(wharf_test_handle(ca));
    ck_assert_ptr_ne(wharf_conn_worker(wharf_test_handle(ca)),
                     wharf_conn_worker(wharf_test_handle(cd)));
    wharf_test_output(c1, NULL);
    wharf_test_output(c2, NULL);

    wharf_test_send(ca, "x", 1);
    wharf_test_send(cd, "y", 1);
    ck_assert_str_eq(wharf_test_output(ca, NULL), "A:x");
    ck_assert_str_eq(wharf_test_output(cd, NULL), "D:y");
    wharf_test_send(c1, "hello\n", 6);
    ck_assert_msg(strstr(wharf_test_output(c2, NULL), "hello\n") != NULL, "chat line lost");
    ck_assert_str_eq(wharf_test_output(ca, NULL), "");

    /* b's clock moves, nobody else's: the tick comes, a's idle timeout
     * (60 s) is still far. */
    wharf_test_advance(b, 20);
    ck_assert_str_eq(wharf_test_output(cb, NULL), "t\n");
    wharf_test_advance(a, 59999);
    ck_assert(!wharf_test_closed(ca, NULL));
    ck_assert(!wharf_test_closed(cd, NULL));
    wharf_test_advance(a, 1);
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(ca, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_TIMEOUT);
    ck_assert(!wharf_test_closed(cd, NULL) && !wharf_test_closed(cb, NULL));

    /* Freeing one in the middle: the others go on. */
    wharf_test_free(b);
    wharf_test_send(cd, "z", 1);
    ck_assert_str_eq(wharf_test_output(cd, NULL), "D:z");
    wharf_test_send(c2, "back\n", 5);
    ck_assert_msg(strstr(wharf_test_output(c1, NULL), "back\n") != NULL, "chat after free");
    wharf_test_conn *ca2 = wharf_test_connect(a);
    wharf_test_send(ca2, "again", 5);
    ck_assert_str_eq(wharf_test_output(ca2, NULL), "A:again");
    wharf_test_free(chat); /* and its clients c1, c2 with it */
    ck_assert(!wharf_test_closed(cd, NULL));
    wharf_test_send(cd, "!", 1);
    ck_assert_str_eq(wharf_test_output(cd, NULL), "D:!");
    wharf_test_free(d);
    wharf_test_free(a);
}
END_TEST

/* A handler that takes one line per on_data call and logs every callback,
 * for the data-and-FIN case. */
static char fin_log[8192];

static size_t fin_data(wharf_conn *c, const void *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    size_t n = strlen(fin_log);
    snprintf(fin_log + n, sizeof fin_log - n, "data(%zu) ", len);
    if (!nl)
        return 0;
    wharf_send(c, data, (size_t)(nl - (const char *)data) + 1);
    return (size_t)(nl - (const char *)data) + 1;
}

static int fin_eof(wharf_conn *c)
{
    (void)c;
    size_t n = strlen(fin_log);
    snprintf(fin_log + n, sizeof fin_log - n, "eof");
    return WHARF_EOF_CLOSE;
}

static const struct wharf_handler fin_handler = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "fin",
    .on_data = fin_data,
    .on_eof = fin_eof,
};

/* relay: what one connection receives goes to another (relay_to), sent
 * from the receiving connection's callback, as the proxy handler does. */
static wharf_conn *relay_to;

static size_t relay_data(wharf_conn *c, const void *data, size_t len)
{
    if (relay_to && relay_to != c)
        ck_assert_int_eq(wharf_send(relay_to, data, len), 0);
    return len;
}

static const struct wharf_handler relay_handler = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "relay",
    .on_data = relay_data,
};

/* Output sent to another connection is written at the end of the turn, and
 * EPOLLOUT is armed only when the socket refuses part of it: in steady
 * state no interest change reaches the kernel (the loop's count of them
 * stays put), and every byte arrives in order. */
START_TEST(relay_makes_no_epoll_ctl_per_message)
{
    char err[512] = "";
    wharf_test *t = wharf_test_new(&relay_handler, NULL, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *a = wharf_test_connect(t), *b = wharf_test_connect(t);
    relay_to = wharf_test_handle(b);
    struct loop *lp = &wharf_test_handle(a)->w->loop;
    ck_assert_int_eq(wharf_test_send(a, "<", 1), 0); /* the first message sets up */
    uint64_t before = lp->kernel_changes;
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(wharf_test_send(a, "0123456789", 10), 0);
    size_t len;
    const char *out = wharf_test_output(b, &len);
    ck_assert_uint_eq(len, 1001);
    ck_assert_int_eq(out[0], '<');
    for (size_t i = 1; i < len; i++)
        ck_assert_int_eq(out[i], '0' + (int)((i - 1) % 10));
    ck_assert_uint_eq(lp->kernel_changes, before);
    relay_to = NULL;
    wharf_test_free(t);
}
END_TEST

/* Data and FIN in one step: the worker reads both in one turn; every
 * line is offered before on_eof, the output is whole, the close is "eof". */
START_TEST(data_and_fin_arrive_together)
{
    char err[512];
    wharf_test *t = wharf_test_new(&fin_handler, NULL, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    fin_log[0] = '\0';
    ck_assert_int_eq(wharf_test_send_eof(c, "a\nbb\nccc\ntail", 13), 0);
    /* One read had all of it; the partial "tail" may be offered once more
     * at the EOF, and on_eof comes last. */
    const char *first = "data(13) data(11) data(8) data(4) ";
    ck_assert_msg(strncmp(fin_log, first, strlen(first)) == 0, "%s", fin_log);
    for (const char *p = fin_log + strlen(first); strcmp(p, "eof") != 0; p += 8)
        ck_assert_msg(strncmp(p, "data(4) ", 8) == 0, "%s", fin_log);
    ck_assert_str_eq(wharf_test_output(c, NULL), "a\nbb\nccc\n");
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_EOF);
    ck_assert_int_eq(wharf_test_send_eof(c, "x", 1), -EPIPE);

    /* The same as two steps: the bytes are taken before the FIN is sent. */
    c = wharf_test_connect(t);
    fin_log[0] = '\0';
    wharf_test_send(c, "a\nbb\n", 5);
    ck_assert_str_eq(fin_log, "data(5) data(3) ");
    wharf_test_shutdown(c);
    ck_assert_str_eq(fin_log, "data(5) data(3) eof");

    /* The echo handler: its answer is out before the close. */
    wharf_test *e = wharf_test_new(&wharf_handler, NULL, err, sizeof err);
    c = wharf_test_connect(e);
    ck_assert_int_eq(wharf_test_send_eof(c, "last words", 10), 0);
    ck_assert_str_eq(wharf_test_output(c, NULL), "last words");
    ck_assert(wharf_test_closed(c, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_EOF);
    wharf_test_free(e);
    wharf_test_free(t);
}
END_TEST

/* The contract under a pipelined burst: 300 lines and the FIN in one step,
 * one line per call: every line answered before on_eof (more rounds than
 * one event's 16 re-offers). */
START_TEST(a_burst_and_fin_every_line_before_eof)
{
    char err[512];
    wharf_test *t = wharf_test_new(&fin_handler, NULL, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    char burst[300 * 2];
    for (int i = 0; i < 300; i++)
        burst[2 * i] = (char)('a' + i % 26), burst[2 * i + 1] = '\n';
    fin_log[0] = '\0';
    ck_assert_int_eq(wharf_test_send_eof(c, burst, sizeof burst), 0);
    size_t len;
    wharf_test_output(c, &len);
    ck_assert_msg(len == sizeof burst, "%zu of %zu bytes answered before the close", len,
                  sizeof burst);
    ck_assert_msg(strstr(fin_log, "data(2) eof") != NULL, "on_eof before the last line");
    wharf_test_free(t);
}
END_TEST

/* A listener whose connections open only after a PROXY header (as after a
 * TLS handshake; fuzz/fuzz_tls.c drives TLS): the client talks to the
 * framework first, the handler hears of it once the header is in, and one
 * that never gets that far reads as closed with WHARF_CLOSE_ERROR, or at
 * the handshake timeout. */
START_TEST(connections_that_open_after_a_proxy_header)
{
    char err[512];
    wharf_test *t = wharf_test_new(&wharf_handler,
                                   "\"proxy_protocol\": \"v1\", "
                                   "\"timeouts\": {\"handshake_ms\": 1000}",
                                   err, sizeof err);
    ck_assert_msg(t, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    ck_assert_ptr_nonnull(c);
    ck_assert(!wharf_test_closed(c, NULL));
    ck_assert_ptr_null(wharf_test_handle(c)); /* not open yet */
    const char hdr[] = "PROXY TCP4 192.0.2.1 192.0.2.2 40000 7\r\n";
    for (size_t i = 0; i < sizeof hdr - 1; i++) { /* a byte at a time */
        ck_assert_ptr_null(wharf_test_handle(c));
        ck_assert_int_eq(wharf_test_send(c, hdr + i, 1), 0);
    }
    ck_assert_ptr_nonnull(wharf_test_handle(c)); /* opened: on_open ran */
    ck_assert_int_eq(wharf_test_send(c, "ping", 4), 0);
    size_t len;
    const char *out = wharf_test_output(c, &len);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(out, "ping", 4);

    wharf_test_conn *bad = wharf_test_connect(t); /* not a PROXY header */
    wharf_test_send(bad, "GET / HTTP/1.0\r\n\r\n", 18);
    enum wharf_close_reason why;
    ck_assert(wharf_test_closed(bad, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_ERROR);
    ck_assert_int_eq(wharf_test_send(bad, "x", 1), -EPIPE);

    wharf_test_conn *slow = wharf_test_connect(t); /* half a header, then nothing */
    ck_assert_int_eq(wharf_test_send(slow, "PROXY TCP4 ", 11), 0);
    wharf_test_advance(t, 900);
    ck_assert(!wharf_test_closed(slow, NULL));
    wharf_test_advance(t, 200);
    ck_assert(wharf_test_closed(slow, &why));
    ck_assert_int_eq(why, WHARF_CLOSE_ERROR);
    ck_assert(!wharf_test_closed(c, NULL)); /* the open one is untouched */
    wharf_test_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("testkit");
    TCase *tc = tcase_create("testkit");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, echo_in_every_split);
    tcase_add_test(tc, options_and_init_errors);
    tcase_add_test(tc, idle_timeout_on_the_kits_clock);
    tcase_add_test(tc, handler_clock_is_the_kits);
    tcase_add_test(tc, handler_timers_and_blocking_work);
    tcase_add_test(tc, backpressure_with_a_client_that_stops_reading);
    tcase_add_test(tc, serve_starts_a_real_server);
    tcase_add_test(tc, shipped_discard_and_daytime);
    tcase_add_test(tc, shipped_chat_room);
    tcase_add_test(tc, several_kits_with_different_handlers);
    tcase_add_test(tc, data_and_fin_arrive_together);
    tcase_add_test(tc, a_burst_and_fin_every_line_before_eof);
    tcase_add_test(tc, connections_that_open_after_a_proxy_header);
    tcase_add_test(tc, relay_makes_no_epoll_ctl_per_message);
    suite_add_tcase(s, tc);
    return check_run(s);
}
