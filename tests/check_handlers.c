/*
 * check_handlers.c - integration suite for the teaching handlers (discard,
 * chargen, daytime, chat, proxy) on real in-process servers on ephemeral
 * loopback ports.  Every wait is bounded.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"

#define ONE_LISTENER(handler, extra) \
    "{\"workers\": 2, \"listeners\": [{\"port\": 0, \"handler\": \"" handler "\"" extra "}]}"

/* Nothing readable on fd within ms. */
static bool nothing_arrives(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 0;
}

/* ---- discard --------------------------------------------------------------- */

struct stat_wait {
    struct tserver *t;
    size_t listener;
    uint64_t value;
};

static bool bytes_in_reached(void *arg)
{
    struct stat_wait *s = arg;
    return tserver_stats(s->t, s->listener).bytes_in >= s->value;
}

static bool open_is(void *arg)
{
    struct stat_wait *s = arg;
    return tserver_stats(s->t, s->listener).open == s->value;
}

START_TEST(discard_drops_everything)
{
    struct tserver *t = tserver_start(ONE_LISTENER("discard", ""));
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    size_t len = 1 << 20;
    unsigned char *data = malloc(len);
    fill_pattern(data, len, 1);
    send_all(fd, data, len);
    struct stat_wait w = {t, 0, len};
    ck_assert(wait_for(bytes_in_reached, &w, 5000));
    ck_assert(nothing_arrives(fd, 200)); /* no reply, no EOF */
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.bytes_in, len);
    ck_assert_uint_eq(st.bytes_out, 0);
    ck_assert_uint_eq(st.open, 1);
    close(fd);
    free(data);
    tserver_stop(t);
}
END_TEST

/* ---- chargen --------------------------------------------------------------- */

/* The byte at stream position pos of the RFC 864 pattern. */
static char chargen_byte(size_t pos)
{
    size_t line = pos / 74, col = pos % 74;
    if (col == 72)
        return '\r';
    if (col == 73)
        return '\n';
    return (char)(' ' + (line + col) % 95);
}

START_TEST(chargen_tcp_pattern_exact)
{
    struct tserver *t = tserver_start(ONE_LISTENER("chargen", ""));
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    size_t len = 100 * 1000;
    char *buf = malloc(len);
    ck_assert_uint_eq(recv_exact(fd, buf, len, 5000), len);
    for (size_t i = 0; i < len; i++)
        if (buf[i] != chargen_byte(i))
            ck_abort_msg("byte %zu: got 0x%02x, expected 0x%02x", i, (unsigned char)buf[i],
                         (unsigned char)chargen_byte(i));
    /* Input is ignored and the stream goes on after it. */
    send_all(fd, "hello\r\n", 7);
    ck_assert_uint_eq(recv_exact(fd, buf, len, 5000), len);
    for (size_t i = 0; i < len; i++)
        ck_assert_int_eq(buf[i], chargen_byte(len + i));
    close(fd);
    free(buf);
    tserver_stop(t);
}
END_TEST

/* A fast reader gets a steady stream (on_drain and the self-posted check keep
 * the queue topped up): 16 MiB, byte-exact. */
START_TEST(chargen_tcp_fast_reader_streams)
{
    struct tserver *t = tserver_start(ONE_LISTENER("chargen", ""));
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    for (size_t i = 0; i < 16; i++) {
        ck_assert_uint_eq(recv_exact(fd, buf, chunk, 5000), chunk);
        for (size_t j = 0; j < chunk; j += 4099)
            ck_assert_int_eq(buf[j], chargen_byte(i * chunk + j));
    }
    close(fd);
    free(buf);
    tserver_stop(t);
}
END_TEST

START_TEST(chargen_tcp_client_that_never_reads_is_bounded)
{
    struct tserver *t = tserver_start(ONE_LISTENER("chargen", ""));
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    uint64_t max_seen = 0, start = now_ms();
    while (now_ms() - start < 1000) {
        struct wharf_listener_stats st = tserver_stats(t, 0);
        if (st.output_buffered > max_seen)
            max_seen = st.output_buffered;
        usleep(10 * 1000);
    }
    /* fill is 1 MiB; the buffer may be up to twice what it holds. */
    ck_assert_uint_gt(max_seen, 0);
    ck_assert_uint_le(max_seen, 3u << 20);
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.open, 1);
    ck_assert_uint_lt(st.bytes_out, 64u << 20); /* it did not keep writing */
    close(fd);
    tserver_stop(t);
}
END_TEST

static void send_to(int fd, int port, const void *p, size_t n)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(sendto(fd, p, n, 0, (struct sockaddr *)&to, sizeof to), (ssize_t)n);
}

/* One line of the pattern: 72 consecutive ring characters, then CRLF. */
static void check_line(const char *p)
{
    unsigned first = (unsigned char)p[0] - ' ';
    ck_assert_uint_lt(first, 95);
    for (size_t i = 0; i < 72; i++)
        ck_assert_int_eq(p[i], (char)(' ' + (first + i) % 95));
    ck_assert_int_eq(p[72], '\r');
    ck_assert_int_eq(p[73], '\n');
}

START_TEST(chargen_udp_answers_one_line)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, "
        "\"handler\": \"chargen\"}]}");
    int fd = udp_socket("127.0.0.1", 0, 2000);
    char line[200];
    for (int i = 0; i < 3; i++) {
        send_to(fd, tserver_port(t, 0), "?", 1);
        ck_assert_int_eq(recv(fd, line, sizeof line, 0), 74);
        check_line(line);
    }
    /* An empty datagram is answered too. */
    send_to(fd, tserver_port(t, 0), "", 0);
    ck_assert_int_eq(recv(fd, line, sizeof line, 0), 74);
    check_line(line);
    ck_assert_uint_eq(tserver_stats(t, 0).datagrams_dropped, 0);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(chargen_udp_guard_drops_blocked_port)
{
    int fd = udp_socket("127.0.0.1", 0, 300);
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"listeners\": [{\"protocol\": \"udp\", \"port\": 0, "
        "\"handler\": \"chargen\", \"options\": {\"block_ports\": [19, %d]}}]}",
        udp_local_port(fd));
    char line[200];
    send_to(fd, tserver_port(t, 0), "?", 1);
    ck_assert_int_lt(recv(fd, line, sizeof line, 0), 0); /* nothing within 300 ms */
    struct wharf_listener_stats st = tserver_stats(t, 0);
    ck_assert_uint_eq(st.datagrams_in, 1);
    ck_assert_uint_eq(st.datagrams_dropped, 1);
    ck_assert_uint_eq(st.datagrams_out, 0);
    /* Another port is answered. */
    int other = udp_socket("127.0.0.1", 0, 2000);
    send_to(other, tserver_port(t, 0), "?", 1);
    ck_assert_int_eq(recv(other, line, sizeof line, 0), 74);
    close(other);
    close(fd);
    tserver_stop(t);
}
END_TEST

/* ---- daytime --------------------------------------------------------------- */

/* Reads until EOF (bounded); returns the length. */
static size_t read_to_eof(int fd, char *buf, size_t size)
{
    size_t n = 0;
    uint64_t start = now_ms();
    while (n + 1 < size && now_ms() - start < 5000) {
        ssize_t r = recv(fd, buf + n, size - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

static void daytime_matches(const char *options, const char *pattern)
{
    struct tserver *t = tserver_start(ONE_LISTENER("daytime", "%s"), options);
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char buf[256];
    read_to_eof(fd, buf, sizeof buf);
    regex_t re;
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    ck_assert_msg(regexec(&re, buf, 0, NULL, 0) == 0, "unexpected line \"%s\"", buf);
    regfree(&re);
    close(fd);
    tserver_stop(t);
}

START_TEST(daytime_rfc867_line_then_eof)
{
    daytime_matches("", "^(Sun|Mon|Tues|Wednes|Thurs|Fri|Satur)day, "
                        "(January|February|March|April|May|June|July|August|September|"
                        "October|November|December) [0-9]{1,2}, [0-9]{4} "
                        "[0-2][0-9]:[0-5][0-9]:[0-6][0-9]-UTC\r\n$");
}
END_TEST

START_TEST(daytime_rfc3339_line_then_eof)
{
    daytime_matches(", \"options\": {\"format\": \"rfc3339\"}",
                    "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]Z\r\n$");
}
END_TEST

/* ---- chat ------------------------------------------------------------------ */

#define CHAT_CLIENTS 4

/* Reads one line (without "\n") into buf; returns false on EOF/timeout. */
static bool read_line(int fd, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        char ch;
        if (recv(fd, &ch, 1, 0) != 1)
            break;
        if (ch == '\n') {
            buf[n] = '\0';
            return true;
        }
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return false;
}

static void expect_line(int fd, const char *want)
{
    char buf[512];
    ck_assert_msg(read_line(fd, buf, sizeof buf), "no line (wanted \"%s\")", want);
    ck_assert_str_eq(buf, want);
}

/* Connects CHAT_CLIENTS clients named c0..c3, each having seen every
 * notice up to the last rename. */
static void chat_join(struct tserver *t, int *fd)
{
    char buf[512], want[64];
    for (int i = 0; i < CHAT_CLIENTS; i++) {
        fd[i] = tcp_connect("127.0.0.1", tserver_port(t, 0));
        /* Everybody (the newcomer included) sees the join notice. */
        for (int j = 0; j <= i; j++) {
            ck_assert(read_line(fd[j], buf, sizeof buf));
            ck_assert_msg(strncmp(buf, "* guest", 7) == 0 && strstr(buf, " joined"), "%s", buf);
        }
        char cmd[32];
        snprintf(cmd, sizeof cmd, "/nick c%d\r\n", i);
        send_all(fd[i], cmd, strlen(cmd));
        for (int j = 0; j <= i; j++) {
            ck_assert(read_line(fd[j], buf, sizeof buf));
            snprintf(want, sizeof want, " is now c%d", i);
            ck_assert_msg(strstr(buf, want), "%s", buf);
        }
    }
}


START_TEST(chat_lines_reach_every_other_client_once_in_order)
{
    struct tserver *t = tserver_start(ONE_LISTENER("chat", ""));
    int fd[CHAT_CLIENTS];
    chat_join(t, fd);
    /* The acceptor spreads connections over the workers. */
    ck_assert_uint_eq(tserver_stats(t, 0).open, CHAT_CLIENTS);

    enum { LINES = 5 };
    for (int j = 0; j < LINES; j++)
        for (int i = 0; i < CHAT_CLIENTS; i++) {
            char msg[32];
            snprintf(msg, sizeof msg, "m%d-%d\n", i, j);
            send_all(fd[i], msg, strlen(msg));
        }
    for (int r = 0; r < CHAT_CLIENTS; r++) {
        int next[CHAT_CLIENTS] = {0};
        for (int k = 0; k < LINES * (CHAT_CLIENTS - 1); k++) {
            char buf[512];
            ck_assert_msg(read_line(fd[r], buf, sizeof buf), "client %d: line %d missing", r, k);
            int from, from2, seq;
            ck_assert_msg(sscanf(buf, "c%d: m%d-%d", &from, &from2, &seq) == 3, "%s", buf);
            ck_assert_int_eq(from, from2);
            ck_assert_int_ne(from, r); /* not echoed to its sender */
            ck_assert_int_eq(seq, next[from]); /* in order, exactly once */
            next[from]++;
        }
        ck_assert(nothing_arrives(fd[r], 100)); /* no duplicates */
    }
    for (int i = 0; i < CHAT_CLIENTS; i++)
        close(fd[i]);
    tserver_stop(t);
}
END_TEST

START_TEST(chat_too_long_line_closes_only_that_client)
{
    struct tserver *t = tserver_start(ONE_LISTENER("chat", ", \"options\": {\"max_line\": 100}"));
    int fd[CHAT_CLIENTS];
    chat_join(t, fd);
    char big[150];
    memset(big, 'x', sizeof big);
    send_all(fd[3], big, sizeof big); /* no newline yet: already too long */
    ck_assert(wait_closed(fd[3], 3000));
    for (int i = 0; i < 3; i++)
        expect_line(fd[i], "* c3 left");
    ck_assert_uint_eq(tserver_stats(t, 0).closed[WHARF_CLOSE_LIMIT], 1);
    /* Exactly 100 bytes is fine; the others still talk. */
    char line[102];
    memset(line, 'y', 100);
    line[100] = '\n';
    send_all(fd[0], line, 101);
    line[100] = '\0';
    char want[120];
    snprintf(want, sizeof want, "c0: %s", line);
    expect_line(fd[1], want);
    expect_line(fd[2], want);
    /* A bad nickname is refused, to its sender only. */
    send_all(fd[1], "/nick a b\n", 10);
    expect_line(fd[1], "* bad nickname");
    ck_assert(nothing_arrives(fd[0], 100));
    for (int i = 0; i < CHAT_CLIENTS; i++)
        close(fd[i]);
    tserver_stop(t);
}
END_TEST

/* ---- chat under a flood ---------------------------------------------------- */

/* One client writing `lines` lines "L<id>-<seq>\n" as fast as the server
 * takes them, reading (and dropping) what it is sent meanwhile. */
struct chat_flooder {
    int fd, id, lines;
};

static void *chat_flood(void *arg)
{
    struct chat_flooder *f = arg;
    size_t cap = (size_t)f->lines * 16, len = 0, off = 0;
    char *out = malloc(cap), sink[65536];
    for (int i = 0; i < f->lines; i++)
        len += (size_t)snprintf(out + len, cap - len, "L%d-%d\n", f->id, i);
    fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) | O_NONBLOCK);
    uint64_t deadline = now_ms() + 60000;
    while (off < len && now_ms() < deadline) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN | POLLOUT};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (p.revents & POLLIN)
            while (recv(f->fd, sink, sizeof sink, 0) > 0)
                ;
        if (p.revents & POLLOUT) {
            ssize_t n = send(f->fd, out + off, len - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
        }
    }
    free(out);
    return NULL;
}

/* Whether an echo round trip on a new connection to port takes < ms. */
static bool echo_connect_within(int port, int ms)
{
    uint64_t t0 = now_ms();
    int fd = tcp_try_connect("127.0.0.1", port);
    if (fd < 0)
        return false;
    unsigned char b = 'x';
    bool ok = echo_roundtrip(fd, &b, 1, ms) == 1;
    close(fd);
    return ok && now_ms() - t0 < (uint64_t)ms;
}

/*
 * `senders` clients send `lines` lines each at once, as fast as they can; a
 * reader that keeps up gets every one of them, in order per sender (the
 * senders are held back instead of lines dropped), and the echo listener
 * next to chat accepts and answers meanwhile.  A small post_queue makes one
 * read of the burst (thousands of lines) more than the queues' hard capacity.
 */
static void chat_flood_check(int senders, int lines, int post_queue)
{
    struct tserver *t = tserver_start(
        "{\"workers\": 2, \"post_queue\": %d, \"listeners\": [{\"port\": 0, "
        "\"handler\": \"chat\"}, {\"port\": 0, \"handler\": \"echo\"}]}", post_queue);
    int reader = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char buf[512];
    ck_assert(read_line(reader, buf, sizeof buf)); /* its own join notice */
    struct chat_flooder f[8];
    pthread_t th[8];
    ck_assert_int_le(senders, 8);
    for (int i = 0; i < senders; i++) {
        f[i] = (struct chat_flooder){tcp_connect("127.0.0.1", tserver_port(t, 0)), i, lines};
        ck_assert(read_line(reader, buf, sizeof buf)); /* the join notice */
    }
    for (int i = 0; i < senders; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, chat_flood, &f[i]), 0);
    int next[8] = {0}, got = 0, echoes = 0, echo_fail = 0;
    uint64_t deadline = now_ms() + 60000, last_echo = 0;
    static char in[1 << 16];
    size_t have = 0;
    while (got < senders * lines && now_ms() < deadline) {
        struct pollfd p = {.fd = reader, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            ssize_t n = recv(reader, in + have, sizeof in - have, 0);
            ck_assert_msg(n > 0, "the reader was closed");
            have += (size_t)n;
            char *line = in, *nl;
            while ((nl = memchr(line, '\n', have - (size_t)(line - in))) != NULL) {
                *nl = '\0';
                int who, seq;
                if (sscanf(line, "guest%*u: L%d-%d", &who, &seq) == 2) {
                    ck_assert_msg(who >= 0 && who < senders && seq == next[who],
                                  "sender %d: line %d after %d", who, seq, next[who]);
                    next[who]++;
                    got++;
                }
                line = nl + 1;
            }
            have -= (size_t)(line - in);
            memmove(in, line, have);
        }
        if (now_ms() - last_echo >= 100) {
            last_echo = now_ms();
            echoes++;
            echo_fail += !echo_connect_within(tserver_port(t, 1), 2000);
        }
    }
    for (int i = 0; i < senders; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(got == senders * lines, "%d of %d lines arrived", got, senders * lines);
    ck_assert_msg(echo_fail == 0, "%d of %d echo connections failed or took > 2 s", echo_fail,
                  echoes);
    close(reader);
    for (int i = 0; i < senders; i++)
        close(f[i].fd);
    tserver_stop(t);
}

START_TEST(chat_flat_out_senders_lose_no_line)
{
    chat_flood_check(4, 10000, 4096);
}
END_TEST

START_TEST(chat_burst_of_20000_lines_loses_none)
{
    chat_flood_check(1, 20000, 256);
}
END_TEST

/* A post queue of 1 (hard capacity 4): broadcasts keep finding a queue
 * full, and wait on their sender instead of being dropped. */
START_TEST(chat_full_post_queue_holds_the_sender)
{
    chat_flood_check(3, 3000, 1);
}
END_TEST

START_TEST(chat_room_survives_reload)
{
    struct tserver *t = tserver_start(ONE_LISTENER("chat", ""));
    int fd[CHAT_CLIENTS];
    chat_join(t, fd);
    tserver_reload(t, ONE_LISTENER("chat", ", \"options\": {\"max_line\": 200}"));
    /* A client of the new generation joins the old generation's room. */
    int late = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char buf[512], joined[512];
    ck_assert(read_line(late, joined, sizeof joined));
    ck_assert_msg(strncmp(joined, "* guest", 7) == 0 && strstr(joined, " joined"), "%s", joined);
    for (int i = 0; i < CHAT_CLIENTS; i++)
        expect_line(fd[i], joined);
    send_all(late, "/nick late\n", 11);
    ck_assert(read_line(late, buf, sizeof buf));
    ck_assert_msg(strstr(buf, " is now late"), "%s", buf);
    for (int i = 0; i < CHAT_CLIENTS; i++)
        expect_line(fd[i], buf);
    send_all(late, "hello\n", 6);
    for (int i = 0; i < CHAT_CLIENTS; i++)
        expect_line(fd[i], "late: hello");
    send_all(fd[0], "hi\n", 3);
    expect_line(late, "c0: hi");
    for (int i = 0; i < CHAT_CLIENTS; i++)
        close(fd[i]);
    close(late);
    tserver_stop(t);
}
END_TEST

START_TEST(chat_shutdown_tells_every_client)
{
    struct tserver *t = tserver_start(ONE_LISTENER("chat", ""));
    int fd[CHAT_CLIENTS];
    chat_join(t, fd);
    tserver_stop(t);
    for (int i = 0; i < CHAT_CLIENTS; i++) {
        char buf[512];
        bool seen = false;
        /* "left" notices of the others may come first. */
        for (int k = 0; k < CHAT_CLIENTS + 1 && !seen; k++) {
            if (!read_line(fd[i], buf, sizeof buf))
                break;
            seen = strcmp(buf, "server shutting down") == 0;
        }
        ck_assert_msg(seen, "client %d was not told", i);
        ck_assert(wait_closed(fd[i], 3000));
        close(fd[i]);
    }
}
END_TEST

/* ---- proxy ----------------------------------------------------------------- */

#define ECHO_SERVER "{\"workers\": 2, \"listeners\": [{\"port\": 0, \"handler\": \"echo\"}]}"
#define PROXY_SERVER(opts, extra) \
    "{\"workers\": 2, \"listeners\": [{\"port\": 0, \"handler\": \"proxy\", " \
    "\"options\": {\"upstream\": \"127.0.0.1:%d\"" opts "}" extra "}]}"

/* Checks that the client's close emptied both servers (within 3 s), then
 * stops the proxy and the echo server behind it. */
static void proxy_pair_stop(struct tserver *proxy, struct tserver *echo)
{
    struct stat_wait we = {echo, 0, 0}, wp = {proxy, 0, 0};
    ck_assert(wait_for(open_is, &we, 3000));
    ck_assert(wait_for(open_is, &wp, 3000));
    tserver_stop(proxy);
    tserver_stop(echo);
}

START_TEST(proxy_1mib_roundtrip)
{
    struct tserver *echo = tserver_start(ECHO_SERVER);
    struct tserver *proxy = tserver_start(PROXY_SERVER("", ""), tserver_port(echo, 0));
    int fd = tcp_connect("127.0.0.1", tserver_port(proxy, 0));
    size_t len = 1 << 20;
    unsigned char *data = malloc(len);
    fill_pattern(data, len, 7);
    ck_assert_uint_eq(echo_roundtrip(fd, data, len, 20000), len);
    close(fd);
    free(data);
    proxy_pair_stop(proxy, echo);
}
END_TEST

/*
 * A client that sends without reading: backpressure stops the proxy from
 * buffering everything the echo sends back (both directions pause), and
 * once the client reads, everything arrives byte-exact (nothing stalls).
 */
START_TEST(proxy_backpressure_bounds_memory_and_resumes)
{
    struct tserver *echo = tserver_start(ECHO_SERVER);
    struct tserver *proxy = tserver_start(PROXY_SERVER("", ""), tserver_port(echo, 0));
    int fd = tcp_connect("127.0.0.1", tserver_port(proxy, 0));
    size_t cap = 64u << 20, sent = 0;
    unsigned char *data = malloc(cap), *back = malloc(cap);
    fill_pattern(data, cap, 11);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uint64_t start = now_ms(), last_progress = now_ms(), max_buffered = 0;
    while (sent < cap && now_ms() - last_progress < 500 && now_ms() - start < 10000) {
        ssize_t w = send(fd, data + sent, cap - sent > 65536 ? 65536 : cap - sent, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            last_progress = now_ms();
        } else {
            ck_assert_int_eq(errno, EAGAIN);
            usleep(5000);
        }
        uint64_t b = tserver_stats(proxy, 0).output_buffered;
        max_buffered = b > max_buffered ? b : max_buffered;
    }
    ck_assert_uint_lt(sent, cap); /* the proxy stopped taking bytes */
    ck_assert_uint_le(max_buffered, 4u << 20);
    ck_assert_uint_eq(tserver_stats(proxy, 0).closed[WHARF_CLOSE_LIMIT], 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    ck_assert_uint_eq(recv_exact(fd, back, sent, 20000), sent);
    ck_assert(memcmp(data, back, sent) == 0);
    close(fd);
    free(data);
    free(back);
    tserver_stop(proxy);
    tserver_stop(echo);
}
END_TEST

START_TEST(proxy_refused_upstream_closes_client)
{
    /* A port nobody listens on: bound then closed. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    close(s);
    struct tserver *proxy = tserver_start(PROXY_SERVER("", ""), ntohs(a.sin_port));
    int fd = tcp_connect("127.0.0.1", tserver_port(proxy, 0));
    ck_assert(wait_closed(fd, 3000));
    struct stat_wait wp = {proxy, 0, 0};
    ck_assert(wait_for(open_is, &wp, 3000));
    close(fd);
    tserver_stop(proxy);
}
END_TEST

/* A proxy whose upstream is its own listening address: one client would
 * make it connect to itself until max_connections.  The first connection
 * is refused instead (closed, logged), and nothing else is accepted. */
START_TEST(proxy_upstream_that_is_itself_is_refused)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    close(s);
    int port = ntohs(a.sin_port);
    struct tserver *proxy = tserver_start(
        "{\"workers\": 2, \"max_connections\": 40, \"listeners\": [{\"address\": \"127.0.0.1\", "
        "\"port\": %d, \"handler\": \"proxy\", \"options\": {\"upstream\": \"127.0.0.1:%d\"}}]}",
        port, port);
    int fd = tcp_connect("127.0.0.1", port);
    ck_assert(wait_closed(fd, 3000));
    close(fd);
    usleep(300000);
    struct wharf_listener_stats st = tserver_stats(proxy, 0);
    ck_assert_msg(st.accepted == 1 && st.open == 0, "accepted %llu, open %llu",
                  (unsigned long long)st.accepted, (unsigned long long)st.open);
    tserver_stop(proxy);
}
END_TEST

START_TEST(proxy_client_close_closes_upstream)
{
    struct tserver *echo = tserver_start(ECHO_SERVER);
    struct tserver *proxy = tserver_start(PROXY_SERVER("", ""), tserver_port(echo, 0));
    int fd = tcp_connect("127.0.0.1", tserver_port(proxy, 0));
    char buf[5];
    send_all(fd, "hello", 5);
    ck_assert_uint_eq(recv_exact(fd, buf, 5, 3000), 5);
    ck_assert_mem_eq(buf, "hello", 5);
    ck_assert_uint_eq(tserver_stats(echo, 0).open, 1);
    ck_assert_uint_eq(tserver_stats(proxy, 0).open, 2); /* client + upstream */
    close(fd);
    proxy_pair_stop(proxy, echo);
}
END_TEST

/* The upstream closing first closes the client too. */
START_TEST(proxy_upstream_close_closes_client)
{
    struct tserver *echo = tserver_start(ECHO_SERVER);
    struct tserver *proxy = tserver_start(PROXY_SERVER("", ""), tserver_port(echo, 0));
    int fd = tcp_connect("127.0.0.1", tserver_port(proxy, 0));
    char buf[2];
    send_all(fd, "hi", 2);
    ck_assert_uint_eq(recv_exact(fd, buf, 2, 3000), 2);
    tserver_stop(echo);
    ck_assert(wait_closed(fd, 3000));
    close(fd);
    tserver_stop(proxy);
}
END_TEST

/*
 * Without backpressure (max_pending above max_output), a client that does not
 * read is closed for "limit" when a send towards it fails.  That close runs
 * the client's on_close inside the upstream's wharf_send; the upstream side
 * must notice it was unlinked (and not crash), then close too.
 */
START_TEST(proxy_peer_closed_inside_send)
{
    struct tserver *echo = tserver_start(ECHO_SERVER);
    struct tserver *proxy = tserver_start(
        PROXY_SERVER(", \"max_pending\": 1073741824", ", \"buffers\": {\"high_watermark\": 200000, \"low_watermark\": 50000, "
                     "\"max_output\": 200000}"),
        tserver_port(echo, 0));
    int fd = tcp_connect("127.0.0.1", tserver_port(proxy, 0));
    int rcv = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    size_t len = 8u << 20, sent = 0;
    unsigned char *data = malloc(len);
    fill_pattern(data, len, 5);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uint64_t start = now_ms();
    while (sent < len && now_ms() - start < 3000) {
        ssize_t w = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN)
            break; /* reset: closed */
        else
            usleep(2000);
        if (tserver_stats(proxy, 0).closed[WHARF_CLOSE_LIMIT] > 0)
            break;
    }
    /* high_watermark == max_output: neither side stops reading before its
     * output is full, so the bytes in flight always reach max_output (with
     * a lower high_watermark the client side paused first, and whether the
     * bytes already in flight reached max_output was up to the machine's
     * speed: CI once saw no side reach it).
     * Which side hits max_output first depends on the machine's speed: the
     * client side (it never reads), or the upstream side when the echo
     * server falls behind.  Either way the upstream connection closes while
     * the client is still connected (a closing side keeps reading, so the
     * echo server is never left blocked on it); the client's side, if it
     * is the one still flushing towards a client that never reads, goes
     * when the client does. */
    struct stat_wait we = {echo, 0, 0}, wp = {proxy, 0, 0};
    ck_assert(wait_for(open_is, &we, 3000));
    ck_assert_uint_ge(tserver_stats(proxy, 0).closed[WHARF_CLOSE_LIMIT], 1);
    close(fd);
    ck_assert(wait_for(open_is, &wp, 3000));
    free(data);
    tserver_stop(proxy);
    tserver_stop(echo);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("handlers");
    TCase *tc = tcase_create("handlers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, discard_drops_everything);
    tcase_add_test(tc, chargen_tcp_pattern_exact);
    tcase_add_test(tc, chargen_tcp_fast_reader_streams);
    tcase_add_test(tc, chargen_tcp_client_that_never_reads_is_bounded);
    tcase_add_test(tc, chargen_udp_answers_one_line);
    tcase_add_test(tc, chargen_udp_guard_drops_blocked_port);
    tcase_add_test(tc, daytime_rfc867_line_then_eof);
    tcase_add_test(tc, daytime_rfc3339_line_then_eof);
    tcase_add_test(tc, chat_lines_reach_every_other_client_once_in_order);
    tcase_add_test(tc, chat_too_long_line_closes_only_that_client);
    tcase_add_test(tc, chat_shutdown_tells_every_client);
    tcase_add_test(tc, chat_room_survives_reload);
    tcase_add_test(tc, chat_flat_out_senders_lose_no_line);
    tcase_add_test(tc, chat_burst_of_20000_lines_loses_none);
    tcase_add_test(tc, chat_full_post_queue_holds_the_sender);
    tcase_add_test(tc, proxy_1mib_roundtrip);
    tcase_add_test(tc, proxy_backpressure_bounds_memory_and_resumes);
    tcase_add_test(tc, proxy_refused_upstream_closes_client);
    tcase_add_test(tc, proxy_upstream_that_is_itself_is_refused);
    tcase_add_test(tc, proxy_client_close_closes_upstream);
    tcase_add_test(tc, proxy_upstream_close_closes_client);
    tcase_add_test(tc, proxy_peer_closed_inside_send);
    suite_add_tcase(s, tc);
    return check_run(s);
}
