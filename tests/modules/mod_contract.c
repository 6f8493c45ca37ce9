/*
 * mod_contract.c - a test handler whose "mode" option selects one behaviour
 * of the handler contract to exercise (tests/check_contract.c):
 *
 *   upper     the README example: consumes at most 4096 bytes per call,
 *             answering them upper-cased (kept input must be offered again)
 *   line      one line per call: "ok LINE\n" (pipelined requests)
 *   pausing   a line "p" pauses reading and resumes 30 ms later from a timer;
 *             other lines are answered "ok LINE\n"
 *   big       answers each line with 64 KiB of 'x' then "\n", but takes no
 *             new line while output is pending (waits for on_drain)
 *   eofkeep   answers nothing until the peer's EOF; on_eof keeps the
 *             connection, and a timer 50 ms later sends "late:" + what was
 *             received and closes
 *   goodbye   echoes; on_shutdown sends "bye\n"
 *   liar      on_data claims one byte more than it was given
 *   tick      a repeating 20 ms timer sends "t\n"; the third tick closes
 *   work      each line goes to the blocking pool (10 ms sleep, upper-case),
 *             and its done posts "done LINE\n" to the connection by id
 *   halfclose a line "bye" is answered "ok\n" and then our side is shut
 *             (wharf_shutdown_write); lines after it are still counted
 *   producer  sends 64 KiB in 8 KiB steps, each asked for by
 *             wharf_want_drain from on_drain, then closes
 *   closer    (one worker) a line "x" closes the previous client from this
 *             client's callback and then reads the other's data: the close
 *             must wait until the callback returned (counted in
 *             closes_inside)
 *   peer      each line is answered "peer ADDR:PORT\n" with wharf_peer_addr
 *             (after a PROXY header: the client's address from it)
 *   clock     each line is answered "now MS TIME\n" (wharf_now_ms, wharf_time)
 *   farewell  the first line is answered with 32 MiB of 'f' and "\n", then
 *             wharf_close: the close waits for that output while the peer
 *             may still be writing
 *   tlsinfo   each line is answered "tls VERSION CIPHER alpn=A sni=S subject=X
 *             verified=0|1 resumed=0|1\n" (wharf_conn_tls_info; "tls -ENOTSUP"
 *             on plain TCP); a request "GET ..." (an HTTP client: curl) is
 *             answered by an HTTP/1.0 response with that line as its body,
 *             then closed
 *   wrongthread  each line is answered "ok LINE\n", and a line "w" also
 *             starts a thread that calls wharf_send on the connection (a
 *             threading bug that debug mode must refuse); its result is
 *             counted in wrong_thread_rc
 *
 * Counters (contract_counts) let the suite see callbacks that leave no
 * bytes on the wire.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wharf.h"

struct contract_counts {
    uint64_t drains, eofs, shutdowns, stops, ticks, works_done, works_cancelled, posts_gone,
        closes;
};
static _Atomic uint64_t n_drains, n_eofs, n_shutdowns, n_stops, n_ticks, n_works_done,
    n_works_cancelled, n_posts_gone, n_closes;

__attribute__((visibility("default"))) void contract_counts(struct contract_counts *out);
void contract_counts(struct contract_counts *out)
{
    out->drains = n_drains;
    out->eofs = n_eofs;
    out->shutdowns = n_shutdowns;
    out->stops = n_stops;
    out->ticks = n_ticks;
    out->works_done = n_works_done;
    out->works_cancelled = n_works_cancelled;
    out->posts_gone = n_posts_gone;
    out->closes = n_closes;
}

enum mode {
    UPPER, LINE, PAUSING, BIG, EOFKEEP, GOODBYE, LIAR, TICK, WORK, WRONGTHREAD, HALFCLOSE,
    PRODUCER, CLOSER, PEER, CLOCK, FAREWELL, TLSINFO
};
static const char *const mode_names[] = {
    "upper", "line", "pausing", "big", "eofkeep", "goodbye", "liar", "tick", "work",
    "wrongthread", "halfclose", "producer", "closer", "peer", "clock", "farewell", "tlsinfo", NULL};

static _Atomic uint64_t n_after_shut, n_closes_inside, n_produced;
static wharf_conn *previous; /* closer: the client before this one (one worker) */

__attribute__((visibility("default"))) void contract_more(uint64_t out[3]);
void contract_more(uint64_t out[3])
{
    out[0] = n_after_shut;
    out[1] = n_closes_inside;
    out[2] = n_produced;
}

/* The result of the last wharf_send made from a foreign thread (1: none yet). */
static _Atomic int wrong_thread_rc = 1;
__attribute__((visibility("default"))) int contract_wrong_thread_rc(void);
int contract_wrong_thread_rc(void)
{
    return wrong_thread_rc;
}

static void *foreign_send(void *arg)
{
    wrong_thread_rc = wharf_send(arg, "from a thread\n", 14);
    return NULL;
}

/* Per connection. */
struct state {
    int ticks;
    bool shut;
    size_t produced;
};

static void produce(wharf_conn *c)
{
    struct state *st = wharf_get_data(c);
    if (st->produced >= 65536) {
        wharf_close(c);
        return;
    }
    static char chunk[8192];
    memset(chunk, 'p', sizeof chunk);
    wharf_send(c, chunk, sizeof chunk);
    st->produced += sizeof chunk;
    n_produced += sizeof chunk;
    wharf_want_drain(c);
}

static int contract_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    static const char *const keys[] = {"mode", NULL};
    if (wharf_options_check_keys(opts, keys, err, errlen) < 0)
        return -1;
    const char *m = "line";
    wharf_options_string(opts, "mode", &m);
    for (int i = 0; mode_names[i]; i++)
        if (strcmp(mode_names[i], m) == 0) {
            *data = (void *)(intptr_t)(i + 1);
            return 0;
        }
    strncpy(err, "unknown mode", errlen);
    return -1;
}

static enum mode mode_of(wharf_conn *c)
{
    return (enum mode)((intptr_t)wharf_listener_data(c) - 1);
}

static void on_tick(wharf_timer *t, void *arg)
{
    wharf_conn *c = arg;
    struct state *st = wharf_get_data(c);
    n_ticks++;
    wharf_send(c, "t\n", 2);
    if (++st->ticks == 3)
        wharf_close(c);
}

static void contract_open(wharf_conn *c)
{
    struct state *st = calloc(1, sizeof *st);
    wharf_set_data(c, st);
    if (mode_of(c) == CLOSER && !previous)
        previous = c;
    if (mode_of(c) == TICK)
        wharf_timer_start(c, 20, 20, on_tick, c);
    if (mode_of(c) == PRODUCER)
        produce(c);
}

static void on_resume(wharf_timer *t, void *arg)
{
    wharf_resume_read(arg);
}

static void on_late(wharf_timer *t, void *arg)
{
    wharf_conn *c = arg;
    wharf_send(c, "late\n", 5);
    wharf_close(c);
}

/* Blocking work: a line, copied. */
struct job {
    wharf_worker *w;
    uint64_t conn;
    size_t len;
    char text[256];
};

static void job_work(void *arg)
{
    struct job *j = arg;
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    for (size_t i = 0; i < j->len; i++)
        j->text[i] = (char)toupper((unsigned char)j->text[i]);
}

static void job_reply(wharf_conn *c, void *arg)
{
    struct job *j = arg;
    if (!c) {
        n_posts_gone++;
    } else {
        wharf_send(c, "done ", 5);
        wharf_send(c, j->text, j->len);
        wharf_send(c, "\n", 1);
    }
    free(j);
}

static void job_done(void *arg, bool cancelled)
{
    struct job *j = arg;
    if (cancelled) {
        n_works_cancelled++;
        free(j);
        return;
    }
    n_works_done++;
    if (wharf_post_conn(j->w, j->conn, job_reply, j) < 0)
        free(j);
}

static size_t contract_data(wharf_conn *c, const void *data, size_t len)
{
    const char *p = data;
    enum mode m = mode_of(c);
    if (m == UPPER) {
        char out[4096];
        size_t n = len < sizeof out ? len : sizeof out;
        for (size_t i = 0; i < n; i++)
            out[i] = (char)toupper((unsigned char)p[i]);
        wharf_send(c, out, n);
        return n;
    }
    if (m == GOODBYE) {
        wharf_send(c, data, len);
        return len;
    }
    if (m == LIAR)
        return len + 1;
    if (m == EOFKEEP || m == TICK)
        return 0; /* kept until EOF */
    const char *nl = memchr(p, '\n', len);
    if (!nl)
        return 0;
    size_t line = (size_t)(nl - p);
    if (m == BIG) {
        if (wharf_output_pending(c) > 0)
            return 0; /* offered again after on_drain */
        static char big[65536];
        memset(big, 'x', sizeof big);
        wharf_send(c, big, sizeof big);
        wharf_send(c, "\n", 1);
        return line + 1;
    }
    if (m == PAUSING && line == 1 && p[0] == 'p') {
        wharf_pause_read(c);
        wharf_timer_start(c, 30, 0, on_resume, c);
        return line + 1;
    }
    if (m == WORK) {
        struct job *j = calloc(1, sizeof *j);
        j->w = wharf_conn_worker(c);
        j->conn = wharf_conn_id(c);
        j->len = line < sizeof j->text ? line : sizeof j->text;
        memcpy(j->text, p, j->len);
        if (wharf_queue_work(job_work, job_done, j) < 0)
            free(j);
        return line + 1;
    }
    if (m == HALFCLOSE) {
        struct state *st = wharf_get_data(c);
        if (st->shut) {
            n_after_shut++;
        } else if (line == 3 && memcmp(p, "bye", 3) == 0) {
            wharf_send(c, "ok\n", 3);
            wharf_shutdown_write(c);
            st->shut = true;
        }
        return line + 1;
    }
    if (m == FAREWELL) {
        static char f[1 << 16];
        memset(f, 'f', sizeof f);
        for (int i = 0; i < 512; i++)
            wharf_send(c, f, sizeof f);
        wharf_send(c, "\n", 1);
        wharf_close(c);
        return len;
    }
    if (m == CLOCK) {
        char out[64];
        int n = snprintf(out, sizeof out, "now %llu %lld\n", (unsigned long long)wharf_now_ms(),
                         (long long)wharf_time());
        wharf_send(c, out, (size_t)n);
        return line + 1;
    }
    if (m == TLSINFO) {
        struct wharf_tls_info ti;
        char out[1024], resp[1200];
        int rc = wharf_conn_tls_info(c, &ti), n;
        if (rc < 0)
            n = snprintf(out, sizeof out, "tls %s\n", rc == -ENOTSUP ? "-ENOTSUP" : "error");
        else
            n = snprintf(out, sizeof out,
                         "tls %s %s alpn=%s sni=%s subject=%s verified=%d resumed=%d\n",
                         ti.version, ti.cipher, ti.alpn, ti.sni ? ti.sni : "",
                         ti.peer_subject, ti.peer_verified, ti.resumed);
        if (line >= 4 && memcmp(p, "GET ", 4) == 0) {
            /* An HTTP client: wait for the end of its request head. */
            const char *end = memmem(p, len, "\r\n\r\n", 4);
            if (!end)
                return 0;
            int r = snprintf(resp, sizeof resp,
                             "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: %d\r\nConnection: close\r\n\r\n%s", n, out);
            wharf_send(c, resp, (size_t)r);
            wharf_close(c);
            return len;
        }
        wharf_send(c, out, (size_t)n);
        return line + 1;
    }
    if (m == PEER) {
        socklen_t alen;
        const struct sockaddr *sa = wharf_peer_addr(c, &alen);
        char host[64] = "?", out[128];
        int port = 0;
        if (sa->sa_family == AF_INET) {
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
            port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
        } else if (sa->sa_family == AF_INET6) {
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
            port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
        }
        int n = snprintf(out, sizeof out, "peer %s:%d %.*s\n", host, port, (int)line, p);
        wharf_send(c, out, (size_t)n);
        return line + 1;
    }
    if (m == CLOSER) {
        if (line == 1 && p[0] == 'x' && previous && previous != c) {
            wharf_conn *other = previous;
            uint64_t before = n_closes;
            wharf_close(other);
            struct state *ost = wharf_get_data(other); /* still there: closed later */
            ost->ticks++;
            if (n_closes != before)
                n_closes_inside++;
        }
        wharf_send(c, "ok\n", 3);
        return line + 1;
    }
    if (m == WRONGTHREAD && line == 1 && p[0] == 'w') {
        pthread_t t;
        if (pthread_create(&t, NULL, foreign_send, c) == 0)
            pthread_join(t, NULL); /* joined: only the thread differs */
    }
    wharf_send(c, "ok ", 3);
    wharf_send(c, p, line + 1);
    return line + 1;
}

static void contract_drain(wharf_conn *c)
{
    n_drains++;
    if (mode_of(c) == PRODUCER)
        produce(c);
}

static int contract_eof(wharf_conn *c)
{
    n_eofs++;
    if (mode_of(c) != EOFKEEP)
        return WHARF_EOF_CLOSE;
    wharf_timer_start(c, 50, 0, on_late, c);
    return WHARF_EOF_KEEP;
}

static void contract_shutdown(wharf_conn *c)
{
    n_shutdowns++;
    if (mode_of(c) == GOODBYE)
        wharf_send(c, "bye\n", 4);
}

static void contract_stop(void *data)
{
    n_stops++;
}

static void contract_close(wharf_conn *c, enum wharf_close_reason reason)
{
    n_closes++;
    if (previous == c)
        previous = NULL;
    free(wharf_get_data(c));
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "contract",
    .init = contract_init,
    .on_open = contract_open,
    .on_data = contract_data,
    .on_drain = contract_drain,
    .on_close = contract_close,
    .on_eof = contract_eof,
    .on_shutdown = contract_shutdown,
    .on_stop = contract_stop,
};
