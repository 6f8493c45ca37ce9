/*
 * check_testkit_udp.c - the test kit's datagrams (wharf_test.h, "UDP"), as
 * a handler author uses them, with no socket anywhere: the shipped
 * udp_echo answering byte-exact to the source (IPv4, IPv6, IPv4-mapped,
 * 65,507 bytes); the DNS handler (compiled into this program) answering
 * check_dns's byte-exact query and truncating through the kit; a reply
 * deferred to a timer seen only after wharf_test_advance (mod_udp_send); a
 * kept handle answering after a blocking job (mod_udp_defer); a relay that
 * flushes to an outbound socket on a timer and gets its upstream's answer
 * (mod_udp_relay); the send guard refusing a privileged port and the
 * server's own port with the errno named and counted; the loop guard,
 * deny and rate_limit on what arrives, rate_limit refilled by the kit's
 * clock; a handler that sends nothing; many datagrams queued and handed
 * in by one pump; the output the kit holds bounded; and every error of the
 * kit's calls.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "dns.h"
#include "testutil.h"
#include "wharf_test.h"

/* handlers/dns/dns.c, compiled into this program. */
extern const struct wharf_handler wharf_handler;

#define UDP "\"protocol\": \"udp\""

static const struct wharf_handler *module_handler(const char *name)
{
    return test_module_symbol(name, "wharf_handler");
}

/* A shipped handler's module, loaded from the build tree. */
static const struct wharf_handler *shipped(const char *name)
{
    char path[4096];
    const char *dir = getenv("WHARF_BUILDDIR");
    snprintf(path, sizeof path, "%s/handlers/.libs/%s.so", dir ? dir : ".", name);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* kept: the handler's code */
    ck_assert_msg(h != NULL, "cannot load %s: %s", path, dlerror());
    const struct wharf_handler *hd = dlsym(h, WHARF_HANDLER_SYMBOL);
    ck_assert_ptr_nonnull(hd);
    return hd;
}

static wharf_test *kit(const struct wharf_handler *h, const char *json)
{
    char err[512] = "";
    wharf_test *t = wharf_test_new(h, json, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    return t;
}

/* Takes the next datagram the handler sent and checks where it went. */
static const struct wharf_test_dgram *next_out(wharf_test *t, unsigned socket, const char *to)
{
    const struct wharf_test_dgram *d = wharf_test_udp_output(t);
    ck_assert_msg(d != NULL, "no datagram sent (to %s expected)", to);
    ck_assert_uint_eq(d->socket, socket);
    ck_assert_str_eq(d->to, to);
    return d;
}

static void send_text(wharf_test *t, const char *from, const char *text)
{
    ck_assert_int_eq(wharf_test_udp_send(t, from, text, strlen(text)), 0);
}

/* ---- udp_echo ------------------------------------------------------------------- */

START_TEST(echo_reply_byte_exact_to_the_source)
{
    wharf_test *t = kit(shipped("udp_echo"), UDP);
    send_text(t, "127.0.0.1:40000", "hello, datagram");
    const struct wharf_test_dgram *d = next_out(t, 0, "127.0.0.1:40000");
    ck_assert_uint_eq(d->len, 15);
    ck_assert_str_eq(d->data, "hello, datagram");
    ck_assert_int_eq(d->to_addr->sa_family, AF_INET);
    ck_assert_uint_eq(d->to_len, sizeof(struct sockaddr_in));
    ck_assert_uint_eq(ntohs(((const struct sockaddr_in *)d->to_addr)->sin_port), 40000);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    /* Binary, with NULs, from a sockaddr. */
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(5353)};
    from.sin_addr.s_addr = htonl(0x0a000001);
    const char bin[] = {0, 1, 2, 0, (char)0xff};
    ck_assert_int_eq(wharf_test_udp_send_from(t, (struct sockaddr *)&from, sizeof from, bin,
                                              sizeof bin), 0);
    d = next_out(t, 0, "10.0.0.1:5353");
    ck_assert_uint_eq(d->len, sizeof bin);
    ck_assert_mem_eq(d->data, bin, sizeof bin);
    /* An empty datagram is one too. */
    ck_assert_int_eq(wharf_test_udp_send(t, "127.0.0.1:40001", "", 0), 0);
    d = next_out(t, 0, "127.0.0.1:40001");
    ck_assert_uint_eq(d->len, 0);
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 0);
    wharf_test_free(t);
}
END_TEST

START_TEST(echo_on_ipv6_and_mapped_sources)
{
    wharf_test *t = kit(shipped("udp_echo"), UDP ", \"address\": \"::1\"");
    send_text(t, "[::1]:40000", "six");
    ck_assert_str_eq(next_out(t, 0, "[::1]:40000")->data, "six");
    /* The largest datagram: 65,527 bytes over IPv6, 65,507 over IPv4 (an
     * IPv4 source too, though the listener sees it IPv4-mapped). */
    static char big[65528];
    ck_assert_int_eq(wharf_test_udp_send(t, "[::1]:40000", big, 65527), 0);
    ck_assert_uint_eq(next_out(t, 0, "[::1]:40000")->len, 65527);
    ck_assert_int_eq(wharf_test_udp_send(t, "[::1]:40000", big, 65528), -EMSGSIZE);
    ck_assert_int_eq(wharf_test_udp_send(t, "127.0.0.1:40000", big, 65508), -EMSGSIZE);
    /* An IPv4 source reaches an IPv6 socket IPv4-mapped. */
    send_text(t, "127.0.0.1:40002", "four");
    ck_assert_str_eq(next_out(t, 0, "[::ffff:127.0.0.1]:40002")->data, "four");
    wharf_test_free(t);
    /* An IPv6 source cannot reach an IPv4 socket. */
    t = kit(shipped("udp_echo"), UDP);
    ck_assert_int_eq(wharf_test_udp_send(t, "[::1]:40000", "x", 1), -EAFNOSUPPORT);
    wharf_test_free(t);
}
END_TEST

START_TEST(large_datagram_whole)
{
    wharf_test *t = kit(shipped("udp_echo"), UDP);
    size_t max = 65507;
    char *big = malloc(max + 1);
    for (size_t i = 0; i <= max; i++)
        big[i] = (char)(i * 7 + i / 251);
    ck_assert_int_eq(wharf_test_udp_send(t, "127.0.0.1:40000", big, max), 0);
    const struct wharf_test_dgram *d = next_out(t, 0, "127.0.0.1:40000");
    ck_assert_uint_eq(d->len, max);
    ck_assert(memcmp(d->data, big, max) == 0);
    /* One byte more is no UDP datagram over IPv4. */
    ck_assert_int_eq(wharf_test_udp_send(t, "127.0.0.1:40000", big, max + 1), -EMSGSIZE);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    free(big);
    wharf_test_free(t);
}
END_TEST

START_TEST(output_held_is_bounded)
{
    /* 64 MiB untaken: 1,024 datagrams of 65,507 bytes; the next ones fail
     * as on a full socket buffer (counted send_failed), none is lost from
     * what was held, and taking one makes room. */
    wharf_test *t = kit(shipped("udp_echo"), UDP);
    size_t max = 65507;
    char *big = calloc(1, max);
    for (int i = 0; i < 1030; i++) {
        big[0] = (char)i;
        ck_assert_int_eq(wharf_test_udp_send(t, "127.0.0.1:40000", big, max), 0);
    }
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 1024);
    ck_assert_int_eq(wharf_test_udp_dropped(t, "send_failed"), 6);
    const struct wharf_test_dgram *d = next_out(t, 0, "127.0.0.1:40000");
    ck_assert_int_eq(d->data[0], 0);
    ck_assert_int_eq(wharf_test_udp_send(t, "127.0.0.1:40000", big, max), 0);
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 1024);
    ck_assert_int_eq(wharf_test_udp_dropped(t, "send_failed"), 6);
    free(big);
    wharf_test_free(t);
}
END_TEST

START_TEST(echo_guard_and_loop_guard)
{
    wharf_test *t = kit(shipped("udp_echo"), UDP);
    /* udp_echo's own guard: a privileged source port (the handler drops). */
    send_text(t, "127.0.0.1:19", "chargen");
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 0);
    ck_assert_int_eq(wharf_test_udp_dropped(t, "handler"), 1);
    /* The framework's loop guard: the source port is the listener's own. */
    char from[32];
    snprintf(from, sizeof from, "127.0.0.1:%d", WHARF_TEST_UDP_PORT);
    send_text(t, from, "loop");
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 0);
    ck_assert_int_eq(wharf_test_udp_dropped(t, "loop_guard"), 1);
    ck_assert_int_eq(wharf_test_udp_dropped(t, NULL), 2);
    wharf_test_free(t);
}
END_TEST

START_TEST(deny_and_rate_limit_on_the_kits_clock)
{
    wharf_test *t = kit(shipped("udp_echo"), UDP ", \"deny\": [\"10.0.0.0/8\"], \"rate_limit\": 2");
    send_text(t, "10.1.2.3:40000", "denied");
    ck_assert_int_eq(wharf_test_udp_dropped(t, "deny"), 1);
    /* Two a second from one source (a burst of one second's worth). */
    send_text(t, "127.0.0.1:40000", "a");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "a");
    send_text(t, "127.0.0.1:40000", "b");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "b");
    send_text(t, "127.0.0.1:40000", "x");
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 0);
    ck_assert_int_eq(wharf_test_udp_dropped(t, "rate_limit"), 1);
    /* Time the test's clock moves refills the bucket. */
    wharf_test_advance(t, 1000);
    send_text(t, "127.0.0.1:40000", "c");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "c");
    wharf_test_free(t);
}
END_TEST

/* ---- a handler that sends nothing; many datagrams in one pump -------------------- */

static int quiet_calls, quiet_seen_by_post;
static size_t quiet_bytes;

static void quiet_post(void *arg, bool cancelled)
{
    (void)arg;
    if (!cancelled)
        quiet_seen_by_post = quiet_calls;
}

static void quiet_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    (void)d, (void)data;
    quiet_bytes += len;
    /* The first datagram of a read posts: the post runs once the read's
     * datagrams are all handled. */
    if (quiet_calls++ == 0)
        ck_assert_int_eq(wharf_post(wharf_current_worker(), quiet_post, NULL), 0);
}

static const struct wharf_handler quiet = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "quiet",
    .on_datagram = quiet_on_datagram,
};

START_TEST(a_handler_that_sends_nothing)
{
    quiet_calls = quiet_seen_by_post = 0;
    quiet_bytes = 0;
    wharf_test *t = kit(&quiet, UDP);
    send_text(t, "127.0.0.1:40000", "one");
    send_text(t, "127.0.0.1:40000", "two");
    ck_assert_int_eq(quiet_calls, 2);
    ck_assert_uint_eq(quiet_bytes, 6);
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 0);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    ck_assert_int_eq(wharf_test_udp_dropped(t, NULL), 0);
    wharf_test_free(t);
}
END_TEST

START_TEST(many_datagrams_in_one_pump)
{
    quiet_calls = quiet_seen_by_post = 0;
    wharf_test *t = kit(&quiet, UDP);
    char text[32];
    for (int i = 0; i < 100; i++) {
        snprintf(text, sizeof text, "d%d", i);
        ck_assert_int_eq(wharf_test_udp_queue(t, "127.0.0.1:40000", text, strlen(text)), 0);
    }
    ck_assert_int_eq(quiet_calls, 0); /* queued: nothing ran */
    ck_assert(wharf_test_run(t, 1000));
    ck_assert_int_eq(quiet_calls, 100);
    ck_assert_int_eq(quiet_seen_by_post, 100); /* all in one read */
    wharf_test_free(t);

    /* Replies to one read: every one, in order, each to
     * its own source. */
    t = kit(shipped("udp_echo"), UDP);
    for (int i = 0; i < 100; i++) {
        char from[32];
        snprintf(from, sizeof from, "127.0.0.1:%d", 40000 + i);
        snprintf(text, sizeof text, "d%d", i);
        ck_assert_int_eq(wharf_test_udp_queue(t, from, text, strlen(text)), 0);
    }
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 0);
    wharf_test_advance(t, 0); /* any call that runs the worker */
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 100);
    for (int i = 0; i < 100; i++) {
        char to[32];
        snprintf(to, sizeof to, "127.0.0.1:%d", 40000 + i);
        snprintf(text, sizeof text, "d%d", i);
        ck_assert_str_eq(next_out(t, 0, to)->data, text);
    }
    /* Queued and never pumped: freed with the kit. */
    ck_assert_int_eq(wharf_test_udp_queue(t, "127.0.0.1:40000", "late", 4), 0);
    wharf_test_free(t);
}
END_TEST

/* ---- sends at any time: timers, jobs, outbound sockets -------------------------- */

START_TEST(reply_deferred_to_a_timer)
{
    wharf_test *t = kit(module_handler("mod_udp_send"), UDP);
    send_text(t, "127.0.0.1:40000", "later 200 tick");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "kept");
    wharf_test_advance(t, 199);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    wharf_test_advance(t, 1);
    /* From the listener's socket, through the kept handle, to the source. */
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "tick");
    ck_assert_ptr_null(wharf_test_udp_output(t));
    /* One still pending when the kit goes: the worker closes its handle
     * (valgrind finds nothing left). */
    send_text(t, "127.0.0.1:40000", "later 60000 never");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "kept");
    wharf_test_free(t);
}
END_TEST

START_TEST(kept_handle_answers_after_a_job)
{
    wharf_test *t = kit(module_handler("mod_udp_defer"), UDP ", \"options\": {\"work_ms\": 200}");
    send_text(t, "127.0.0.1:40000", "who is 10.0.0.1");
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 0); /* the job runs */
    ck_assert(wharf_test_run(t, 5000));
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "answer: who is 10.0.0.1");
    wharf_test_free(t);
}
END_TEST

START_TEST(send_guard_refusals_are_named)
{
    wharf_test *t = kit(module_handler("mod_udp_send"), UDP);
    /* A send to an ordinary port leaves the listener's socket. */
    send_text(t, "127.0.0.1:40000", "to 127.0.0.1 9999 hello");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:9999")->data, "hello");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "rc 0");
    /* A privileged port: -EACCES (13), nothing sent, counted "send_guard". */
    send_text(t, "127.0.0.1:40000", "to 127.0.0.1 1000 x");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "rc -13");
    ck_assert_ptr_null(wharf_test_udp_output(t));
    ck_assert_int_eq(wharf_test_udp_dropped(t, "send_guard"), 1);
    /* Broadcast: -EACCES; the listener's own port: -ELOOP (40). */
    send_text(t, "127.0.0.1:40000", "to 255.255.255.255 9999 x");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "rc -13");
    char cmd[64];
    snprintf(cmd, sizeof cmd, "to 127.0.0.1 %d x", WHARF_TEST_UDP_PORT);
    send_text(t, "127.0.0.1:40000", cmd);
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "rc -40");
    ck_assert_int_eq(wharf_test_udp_dropped(t, "send_guard"), 2);
    ck_assert_int_eq(wharf_test_udp_dropped(t, "loop_guard"), 1);
    /* Malformed sends, as on a socket. */
    send_text(t, "127.0.0.1:40000", "bad");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "rc -97 -22 -22 -90");
    send_text(t, "127.0.0.1:40000", "closed");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "rc -32");
    wharf_test_free(t);

    /* The listener may allow privileged ports. */
    t = kit(module_handler("mod_udp_send"), UDP ", \"allow_privileged_ports\": true");
    send_text(t, "127.0.0.1:40000", "to 127.0.0.1 53 x");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:53")->data, "x");
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "rc 0");
    wharf_test_free(t);
}
END_TEST

START_TEST(relay_flushes_on_a_timer_and_gets_its_answer)
{
    wharf_test *t = kit(module_handler("mod_udp_relay"),
                        UDP ", \"options\": {\"upstream_port\": 8125, \"flush_ms\": 250, "
                        "\"report_port\": 9125}");
    /* on_worker_start opened the upstream socket, connected. */
    ck_assert_uint_eq(wharf_test_udp_sockets(t), 1);
    bool open = false;
    ck_assert_str_eq(wharf_test_udp_socket_peer(t, 1, &open), "127.0.0.1:8125");
    ck_assert(open);
    send_text(t, "127.0.0.1:40000", "a.count:1|c");
    send_text(t, "127.0.0.1:40001", "b.count:2|c\n");
    send_text(t, "127.0.0.1:40002", "c.gauge:3|g");
    wharf_test_advance(t, 249);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    wharf_test_advance(t, 1);
    /* One datagram, every line in order, from outbound socket 1. */
    ck_assert_str_eq(next_out(t, 1, "127.0.0.1:8125")->data,
                     "a.count:1|c\nb.count:2|c\nc.gauge:3|g\n");
    /* The upstream answers: the report leaves the listener's socket. */
    ck_assert_int_eq(wharf_test_udp_answer(t, 1, NULL, "ok", 2), 0);
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:9125")->data, "worker 0 (on 0): ok");
    /* A connected socket hears its peer only. */
    ck_assert_int_eq(wharf_test_udp_answer(t, 1, "127.0.0.1:8126", "no", 2), -EISCONN);
    ck_assert_int_eq(wharf_test_udp_answer(t, 1, "127.0.0.1:8125", "ok2", 3), 0);
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:9125")->data, "worker 0 (on 0): ok2");
    ck_assert_int_eq(wharf_test_udp_answer(t, 2, NULL, "x", 1), -ENOENT);
    /* Nothing buffered: nothing sent at the next flushes. */
    wharf_test_advance(t, 250);
    wharf_test_advance(t, 250);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    wharf_test_free(t);
}
END_TEST

/* An outbound socket opened per datagram, unconnected, closed by its
 * answer: the kit numbers each, knows which are open, and refuses an
 * answer to a closed one. */
struct ask_upstream {
    wharf_udp *reply;
};

static void ask_answer(wharf_udp *u, const struct sockaddr *from, socklen_t fromlen,
                       const void *data, size_t len)
{
    (void)from, (void)fromlen;
    struct ask_upstream *q = wharf_udp_data(u);
    wharf_udp_send(q->reply, NULL, 0, data, len);
    wharf_udp_close(q->reply);
    wharf_udp_close(u);
    free(q);
}

static void ask_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    struct sockaddr_in6 up = {.sin6_family = AF_INET6, .sin6_port = htons(5353)};
    up.sin6_addr = in6addr_loopback;
    struct ask_upstream *q = calloc(1, sizeof *q);
    q->reply = wharf_dgram_keep(d, NULL);
    wharf_udp *u = wharf_udp_open((struct sockaddr *)&up, sizeof up, 0, ask_answer, q, NULL);
    ck_assert_ptr_nonnull(u);
    struct sockaddr_in6 local;
    socklen_t llen = sizeof local;
    ck_assert_int_eq(wharf_udp_local_addr(u, (struct sockaddr *)&local, &llen), 0);
    ck_assert_uint_eq(llen, sizeof local);
    ck_assert_int_eq(local.sin6_family, AF_INET6);
    ck_assert_uint_ge(ntohs(local.sin6_port), 50000);
    ck_assert_int_eq(wharf_udp_send(u, NULL, 0, data, len), 0);
}

static const struct wharf_handler asker = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "asker",
    .on_datagram = ask_on_datagram,
};

START_TEST(outbound_sockets_numbered_and_closed)
{
    wharf_test *t = kit(&asker, UDP);
    send_text(t, "127.0.0.1:40000", "q1");
    send_text(t, "127.0.0.1:40001", "q2");
    ck_assert_uint_eq(wharf_test_udp_sockets(t), 2);
    ck_assert_str_eq(next_out(t, 1, "[::1]:5353")->data, "q1");
    ck_assert_str_eq(next_out(t, 2, "[::1]:5353")->data, "q2");
    /* Unconnected: an answer from anywhere reaches it. */
    ck_assert_int_eq(wharf_test_udp_answer(t, 2, "[2001:db8::1]:5353", "a2", 2), 0);
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40001")->data, "a2");
    bool open = true;
    ck_assert_str_eq(wharf_test_udp_socket_peer(t, 2, &open), "[::1]:5353");
    ck_assert(!open);
    ck_assert_int_eq(wharf_test_udp_answer(t, 2, NULL, "late", 4), -EPIPE);
    /* An IPv4 answer on an IPv6 socket comes IPv4-mapped; from the loop
     * guard's port it is dropped. */
    char from[32];
    snprintf(from, sizeof from, "127.0.0.1:%d", WHARF_TEST_UDP_PORT);
    ck_assert_int_eq(wharf_test_udp_answer(t, 1, from, "loop", 4), 0);
    ck_assert_int_eq(wharf_test_udp_dropped(t, "loop_guard"), 1);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    ck_assert_int_eq(wharf_test_udp_answer(t, 1, "127.0.0.1:5353", "a1", 2), 0);
    ck_assert_str_eq(next_out(t, 0, "127.0.0.1:40000")->data, "a1");
    ck_assert_ptr_null(wharf_test_udp_socket_peer(t, 3, NULL));
    wharf_test_free(t);
}
END_TEST

/* ---- the DNS handler: check_dns's cases through the kit ------------------------- */

/* A query for name/type with id, flags byte 0x01 (RD); EDNS0 payload
 * `edns` (0: none). */
static size_t dns_query(uint8_t *q, uint16_t id, const char *name, uint16_t type, uint16_t edns)
{
    memset(q, 0, 12);
    q[0] = (uint8_t)(id >> 8);
    q[1] = (uint8_t)id;
    q[2] = 0x01;
    q[5] = 1;
    size_t n = 12;
    for (const char *p = name; *p;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        q[n++] = (uint8_t)l;
        memcpy(q + n, p, l);
        n += l;
        p += l + (dot ? 1 : 0);
    }
    q[n++] = 0;
    q[n++] = (uint8_t)(type >> 8);
    q[n++] = (uint8_t)type;
    q[n++] = 0;
    q[n++] = 1;
    if (edns) {
        q[11] = 1;
        uint8_t opt[11] = {0, 0, 41, (uint8_t)(edns >> 8), (uint8_t)edns, 0, 0, 0, 0, 0, 0};
        memcpy(q + n, opt, sizeof opt);
        n += sizeof opt;
    }
    return n;
}

static wharf_test *dns_kit(void)
{
    char json[4600];
    const char *src = getenv("WHARF_SRCDIR");
    snprintf(json, sizeof json, UDP ", \"options\": {\"zone\": \"%s/tests/dns/test.zone\"}",
             src ? src : ".");
    return kit(&wharf_handler, json);
}

START_TEST(dns_answers_through_the_kit)
{
    wharf_test *t = dns_kit();
    uint8_t q[512];
    size_t n = dns_query(q, 0x1234, "www.example.test", DNS_T_A, 0);
    ck_assert_int_eq(wharf_test_udp_send(t, "192.0.2.200:33333", q, n), 0);
    static const uint8_t want[] = {
        0x12, 0x34, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0,                  /* QR AA RD */
        3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0,
        0, 1, 0, 1,                                                      /* question */
        0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 80,   /* answer */
    };
    const struct wharf_test_dgram *d = next_out(t, 0, "192.0.2.200:33333");
    ck_assert_uint_eq(d->len, sizeof want);
    ck_assert_mem_eq(d->data, want, sizeof want);
    /* NXDOMAIN, authoritative. */
    n = dns_query(q, 7, "nope.example.test", DNS_T_A, 0);
    ck_assert_int_eq(wharf_test_udp_send(t, "192.0.2.200:33333", q, n), 0);
    d = next_out(t, 0, "192.0.2.200:33333");
    ck_assert_uint_eq((uint8_t)d->data[3] & 0xf, DNS_R_NXDOMAIN);
    ck_assert((uint8_t)d->data[2] & 0x04);
    /* Too large for 512 bytes: TC=1, the question alone; with EDNS0 1232
     * it fits. */
    n = dns_query(q, 8, "big.example.test", DNS_T_TXT, 0);
    ck_assert_int_eq(wharf_test_udp_send(t, "192.0.2.200:33333", q, n), 0);
    d = next_out(t, 0, "192.0.2.200:33333");
    ck_assert((uint8_t)d->data[2] & 0x02);
    ck_assert_uint_eq(d->len, n);
    n = dns_query(q, 9, "big.example.test", DNS_T_TXT, 1232);
    ck_assert_int_eq(wharf_test_udp_send(t, "192.0.2.200:33333", q, n), 0);
    d = next_out(t, 0, "192.0.2.200:33333");
    ck_assert(!((uint8_t)d->data[2] & 0x02));
    ck_assert_uint_gt(d->len, 512);
    ck_assert_uint_le(d->len, 1232);
    /* A source that cannot be a resolver (chargen's port) is dropped
     * unparsed, and so is a datagram that is no query. */
    ck_assert_int_eq(wharf_test_udp_send(t, "192.0.2.200:19", q, n), 0);
    ck_assert_int_eq(wharf_test_udp_send(t, "192.0.2.200:33333", "\x01\x02", 2), 0);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    ck_assert_int_eq(wharf_test_udp_dropped(t, "handler"), 2);
    wharf_test_free(t);
}
END_TEST

/* ---- the kit's own errors ------------------------------------------------------ */

START_TEST(kit_errors_are_named)
{
    wharf_test *t = kit(shipped("udp_echo"), UDP);
    ck_assert_ptr_null(wharf_test_connect(t)); /* a UDP listener has no clients */
    const char *bad[] = {NULL, "", "127.0.0.1", "127.0.0.1:", ":53", "127.0.0.1:65536",
                         "127.0.0.1:-1", "127.0.0.1:5x", "127.0.0.1: 53", "127.0.0.1:+53",
                         "localhost:53", "::1:53", "[::1]",
                         "[::1:53", "[127.0.0.1]:53", "1.2.3.4.5:53"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(wharf_test_udp_send(t, bad[i], "x", 1) == -EINVAL, "from %s",
                      bad[i] ? bad[i] : "NULL");
    ck_assert_int_eq(wharf_test_udp_send(t, "127.0.0.1:53", NULL, 1), -EINVAL);
    struct sockaddr_in in = {.sin_family = AF_INET};
    ck_assert_int_eq(wharf_test_udp_send_from(t, (struct sockaddr *)&in, 4, "x", 1), -EINVAL);
    ck_assert_int_eq(wharf_test_udp_send_from(t, NULL, 0, "x", 1), -EINVAL);
    ck_assert_int_eq(wharf_test_udp_answer(t, 1, NULL, "x", 1), -ENOENT);
    ck_assert_int_eq(wharf_test_udp_answer(t, 0, NULL, "x", 1), -ENOENT);
    ck_assert_int_eq(wharf_test_udp_dropped(t, "nope"), -EINVAL);
    ck_assert_uint_eq(wharf_test_udp_sockets(t), 0);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    wharf_test_free(t);

    /* A TCP kit has no datagram side. */
    char err[256];
    t = wharf_test_new(shipped("echo"), NULL, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_int_eq(wharf_test_udp_send(t, "127.0.0.1:40000", "x", 1), -EPROTOTYPE);
    ck_assert_int_eq(wharf_test_udp_queue(t, "127.0.0.1:40000", "x", 1), -EPROTOTYPE);
    ck_assert_int_eq(wharf_test_udp_answer(t, 1, NULL, "x", 1), -EPROTOTYPE);
    ck_assert_int_eq(wharf_test_udp_dropped(t, NULL), -EPROTOTYPE);
    ck_assert_ptr_null(wharf_test_udp_output(t));
    ck_assert_uint_eq(wharf_test_udp_output_count(t), 0);
    ck_assert_uint_eq(wharf_test_udp_sockets(t), 0);
    ck_assert_ptr_null(wharf_test_udp_socket_peer(t, 1, NULL));
    wharf_test_free(t);

    /* A handler without on_datagram on a UDP listener, named. */
    ck_assert_ptr_null(wharf_test_new(shipped("echo"), UDP, err, sizeof err));
    ck_assert_msg(strstr(err, "on_datagram"), "%s", err);
}
END_TEST

START_TEST(udp_and_tcp_kits_side_by_side)
{
    wharf_test *u1 = kit(shipped("udp_echo"), UDP);
    wharf_test *u2 = kit(module_handler("mod_udp_send"), UDP);
    char err[256];
    wharf_test *tcp = wharf_test_new(shipped("echo"), NULL, err, sizeof err);
    ck_assert_msg(tcp != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(tcp);
    send_text(u2, "127.0.0.1:40000", "later 10 two");
    send_text(u1, "127.0.0.1:40000", "one");
    wharf_test_send(c, "tcp", 3);
    ck_assert_str_eq(wharf_test_output(c, NULL), "tcp");
    ck_assert_str_eq(next_out(u1, 0, "127.0.0.1:40000")->data, "one");
    ck_assert_str_eq(next_out(u2, 0, "127.0.0.1:40000")->data, "kept");
    wharf_test_advance(u1, 10); /* u1's clock: u2's timer waits */
    ck_assert_ptr_null(wharf_test_udp_output(u2));
    wharf_test_advance(u2, 10);
    ck_assert_str_eq(next_out(u2, 0, "127.0.0.1:40000")->data, "two");
    wharf_test_free(u1);
    wharf_test_free(tcp);
    wharf_test_free(u2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("testkit_udp");
    TCase *tc = tcase_create("testkit_udp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, echo_reply_byte_exact_to_the_source);
    tcase_add_test(tc, echo_on_ipv6_and_mapped_sources);
    tcase_add_test(tc, large_datagram_whole);
    tcase_add_test(tc, output_held_is_bounded);
    tcase_add_test(tc, echo_guard_and_loop_guard);
    tcase_add_test(tc, deny_and_rate_limit_on_the_kits_clock);
    tcase_add_test(tc, a_handler_that_sends_nothing);
    tcase_add_test(tc, many_datagrams_in_one_pump);
    tcase_add_test(tc, reply_deferred_to_a_timer);
    tcase_add_test(tc, kept_handle_answers_after_a_job);
    tcase_add_test(tc, send_guard_refusals_are_named);
    tcase_add_test(tc, relay_flushes_on_a_timer_and_gets_its_answer);
    tcase_add_test(tc, outbound_sockets_numbered_and_closed);
    tcase_add_test(tc, dns_answers_through_the_kit);
    tcase_add_test(tc, kit_errors_are_named);
    tcase_add_test(tc, udp_and_tcp_kits_side_by_side);
    suite_add_tcase(s, tc);
    return check_run(s);
}
