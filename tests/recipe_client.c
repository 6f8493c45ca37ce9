/*
 * recipe_client.c - the client side of tests/check_recipes.sh: drives one
 * recipe of the handler pages (docs/cookbook.md, docs/guide.md), built from
 * the page and running in wharfd on 127.0.0.1:PORT, through the awkward
 * cases, and prints one line per case, "ok: ..." or "FAIL: ..." with exact
 * counts.  Exit status 0 when every case passed.
 *
 *   recipe_client burst PROTO PORT N        N pipelined requests in one write,
 *                                           then shutdown(SHUT_WR): every reply
 *                                           byte-exact, then EOF
 *   recipe_client split PROTO PORT          three small requests split at every
 *                                           byte (one connection per split
 *                                           point), then one byte per write
 *   recipe_client closes PROTO PORT         the recipe's callback that closes
 *   recipe_client relay PORT N              shout: N lines from one client
 *                                           reach another, in order
 *   recipe_client broadcast PORT CLIENTS LINES
 *                                           shout: every line of every client
 *                                           reaches every client exactly once,
 *                                           in per-sender order
 *   recipe_client work PORT                 lookup: a 10 ms job answered within
 *                                           50 ms while a 2 s job runs
 *
 * PROTO is the recipe: upper, cmd, sum, heartbeat, lookup, sort, proxy (the
 * proxy sketch in front of the upper recipe), heartbeat_fast (heartbeat
 * built with a 100 ms period, for "closes").  lookup needs the resolver
 * shim of check_recipes.sh preloaded into wharfd: NAME.test resolves to
 * 127.0.0.1, after MS milliseconds for a name starting "sleepMS.".
 *
 * Every wait is bounded (a deadline per case); nothing here uses wharf.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How long one exchange may take before it counts as stuck. */
#define DEADLINE_MS 5000

struct buf {
    char *p;
    size_t len, cap;
};

static int port;
/* Print only the failures of `same` (the split case makes many). */
static bool quiet_ok;

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void buf_add(struct buf *b, const void *data, size_t len)
{
    if (b->cap - b->len < len + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < len + 1)
            cap *= 2;
        if (!(b->p = realloc(b->p, cap)))
            die("realloc");
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_add(b, tmp, (size_t)n);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000}, NULL);
}

static unsigned count_lines(const char *p, size_t len)
{
    unsigned n = 0;
    for (size_t i = 0; i < len; i++)
        n += p[i] == '\n';
    return n;
}

/* ---- the recipes' protocols ------------------------------------------------ */

/* Request i of a burst of n, and the reply the recipe owes it. */
struct proto {
    const char *name;
    void (*request)(struct buf *b, unsigned i, unsigned n);
    void (*reply)(struct buf *b, unsigned i, unsigned n);
    bool unordered; /* replies come in any order: compare sorted lines */
};

static void upper_request(struct buf *b, unsigned i, unsigned n)
{
    buf_printf(b, "line %u of %u, in Mixed case\n", i, n);
}

static void upper_reply(struct buf *b, unsigned i, unsigned n)
{
    size_t at = b->len;
    upper_request(b, i, n);
    for (size_t k = at; k < b->len; k++)
        b->p[k] = (char)toupper((unsigned char)b->p[k]);
}

static void echo_request(struct buf *b, unsigned i, unsigned n)
{
    buf_printf(b, "beat %u/%u\n", i, n);
}

static void cmd_request(struct buf *b, unsigned i, unsigned n)
{
    (void)n;
    static const char *const forms[] = {"PING\r\n", "ECHO hi %u\r\n", "NOPE %u\n", "ECHO\n"};
    buf_printf(b, forms[i % 4], i);
}

static void cmd_reply(struct buf *b, unsigned i, unsigned n)
{
    (void)n;
    static const char *const forms[] = {"PONG\r\n", "hi %u\r\n", "ERR unknown command\r\n",
                                        "\r\n"};
    buf_printf(b, forms[i % 4], i);
}

static void sum_request(struct buf *b, unsigned i, unsigned n)
{
    (void)n;
    if (i % 50 == 7)
        buf_printf(b, "x %u\n", i);
    else if (i % 97 == 5)
        buf_printf(b, "9223372036854775807 %u\n", i + 1); /* overflows */
    else
        buf_printf(b, "%u -%u\n", i * 3, i);
}

static void sum_reply(struct buf *b, unsigned i, unsigned n)
{
    (void)n;
    if (i % 50 == 7 || i % 97 == 5)
        buf_printf(b, "ERR\n");
    else
        buf_printf(b, "%u\n", i * 2);
}

/* sort: keys in a scrambled order (7919 is prime, so i -> 7919 i mod n is
 * a permutation for n < 7919); the reply is the keys in order. */
static void sort_request(struct buf *b, unsigned i, unsigned n)
{
    buf_printf(b, "k%05u\n", (unsigned)((i * 7919ull + 13) % n));
}

static void sort_reply(struct buf *b, unsigned i, unsigned n)
{
    (void)n;
    buf_printf(b, "k%05u\n", i);
}

static void lookup_request(struct buf *b, unsigned i, unsigned n)
{
    (void)n;
    buf_printf(b, "h%u.test\n", i);
}

static void lookup_reply(struct buf *b, unsigned i, unsigned n)
{
    (void)n;
    buf_printf(b, "h%u.test: 127.0.0.1\r\n", i);
}

static const struct proto protos[] = {
    {"upper", upper_request, upper_reply, false},
    {"proxy", upper_request, upper_reply, false}, /* the sketch in front of upper */
    {"cmd", cmd_request, cmd_reply, false},
    {"sum", sum_request, sum_reply, false},
    {"heartbeat", echo_request, echo_request, false},
    {"sort", sort_request, sort_reply, false},
    {"lookup", lookup_request, lookup_reply, true},
};

static const struct proto *proto_find(const char *name)
{
    for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
        if (strcmp(protos[i].name, name) == 0)
            return &protos[i];
    fprintf(stderr, "recipe_client: no protocol \"%s\"\n", name);
    exit(2);
}

/* ---- sockets --------------------------------------------------------------- */

static int conn_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect");
    return fd;
}

/* Reads what is there into got without blocking.  Returns 1 at EOF, 0 when
 * it would block, -errno on an error (a reset). */
static int conn_read(int fd, struct buf *got)
{
    char tmp[65536];
    for (;;) {
        ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
            buf_add(got, tmp, (size_t)n);
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
}

/*
 * Sends len bytes of data (reading meanwhile, so neither side blocks), shuts
 * the write side when `shut`, then reads until EOF, or until `want` bytes
 * have come when want > 0, or the deadline.  Returns 1 at EOF, 0 when want
 * bytes came, -ETIMEDOUT, or -errno of a reset.
 */
static int conn_talk(int fd, const char *data, size_t len, bool shut, struct buf *got,
                     size_t want, uint64_t deadline)
{
    size_t sent = 0;
    if (len == 0 && shut)
        shutdown(fd, SHUT_WR);
    for (;;) {
        int r = conn_read(fd, got);
        if (r != 0)
            return r;
        if (sent == len && want > 0 && got->len >= want)
            return 0;
        uint64_t now = now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = {fd, POLLIN | (sent < len ? POLLOUT : 0), 0};
        poll(&p, 1, (int)(deadline - now));
        if (sent < len && (p.revents & POLLOUT)) {
            ssize_t n = send(fd, data + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return -errno;
            sent += n > 0 ? (size_t)n : 0;
            if (sent == len && shut)
                shutdown(fd, SHUT_WR);
        }
    }
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the lines of b in place (for replies that come in any order). */
static void sort_lines(struct buf *b)
{
    unsigned n = count_lines(b->p, b->len);
    char **line = calloc(n + 1, sizeof *line), *copy = malloc(b->len + 1);
    if (!line || !copy)
        die("malloc");
    memcpy(copy, b->p, b->len + 1);
    unsigned k = 0;
    for (char *s = copy, *e; k < n && (e = strchr(s, '\n')); s = e + 1) {
        *e = '\0';
        line[k++] = s;
    }
    qsort(line, k, sizeof *line, cmp_line);
    size_t at = 0;
    for (unsigned i = 0; i < k; i++) {
        size_t l = strlen(line[i]);
        memcpy(b->p + at, line[i], l);
        at += l;
        b->p[at++] = '\n';
    }
    free(line);
    free(copy);
}

/* Compares got with want; on a difference prints how many replies (lines)
 * and bytes matched.  Returns whether they are equal. */
static bool same(const struct proto *pr, struct buf *got, struct buf *want, const char *what,
                 int end)
{
    if (pr->unordered && got->len > 0) {
        sort_lines(got);
        sort_lines(want);
    }
    size_t k = 0;
    while (k < got->len && k < want->len && got->p[k] == want->p[k])
        k++;
    bool ok = got->len == want->len && k == got->len && end == 1;
    if (ok && quiet_ok)
        return true;
    printf("%s: %s %s: %u of %u replies, %zu of %zu bytes%s%s\n", ok ? "ok" : "FAIL", pr->name,
           what, count_lines(got->p, got->len), count_lines(want->p, want->len), got->len,
           want->len, k < got->len ? ", wrong from byte " : "",
           end == 1 ? "" : end == -ETIMEDOUT ? " (no EOF within 5 s)" : " (reset, not EOF)");
    if (k < got->len)
        printf("    at byte %zu: got \"%.40s\", want \"%.40s\"\n", k, got->p + k,
               k < want->len ? want->p + k : "");
    return ok;
}

/* ---- the cases ------------------------------------------------------------- */

static void build(const struct proto *pr, unsigned n, struct buf *req, struct buf *rep)
{
    for (unsigned i = 0; i < n; i++) {
        pr->request(req, i, n);
        pr->reply(rep, i, n);
    }
}

static bool case_burst(const struct proto *pr, unsigned n)
{
    struct buf req = {0}, rep = {0}, got = {0};
    build(pr, n, &req, &rep);
    int fd = conn_open();
    /* Corked, the burst waits in our socket and the FIN is tacked onto it:
     * the server reads the requests and the EOF together, every time. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
    int end = conn_talk(fd, req.p, req.len, true, &got, 0, now_ms() + DEADLINE_MS);
    close(fd);
    char what[64];
    snprintf(what, sizeof what, "burst of %u then half-close", n);
    bool ok = same(pr, &got, &rep, what, end);
    free(req.p), free(rep.p), free(got.p);
    return ok;
}

/* Three requests split in two at every byte, a connection per split point;
 * then the same sent one byte per write. */
static bool case_split(const struct proto *pr)
{
    struct buf req = {0}, rep = {0};
    build(pr, 3, &req, &rep);
    unsigned bad = 0, first_bad = 0;
    quiet_ok = true;
    for (size_t k = 1; k <= req.len; k++) {
        struct buf got = {0}, want = {0};
        buf_add(&want, rep.p, rep.len);
        int fd = conn_open();
        bool whole = k == req.len; /* the last round: one byte per write */
        size_t step = whole ? 1 : k;
        for (size_t i = 0; i < k; i += step) {
            if (send(fd, req.p + i, step, MSG_NOSIGNAL) != (ssize_t)step)
                die("send");
            sleep_ms(2); /* its own read on the server */
            conn_read(fd, &got);
        }
        int end = conn_talk(fd, req.p + k, whole ? 0 : req.len - k, true, &got, 0,
                            now_ms() + DEADLINE_MS);
        close(fd);
        char what[80];
        snprintf(what, sizeof what, whole ? "one byte per write" : "split at byte %zu", k);
        if (!same(pr, &got, &want, what, end) && bad++ == 0)
            first_bad = (unsigned)k;
        free(got.p), free(want.p);
    }
    quiet_ok = false;
    printf("%s: %s: %zu bytes split at every byte, and one byte per write: %u of %zu wrong",
           bad ? "FAIL" : "ok", pr->name, req.len, bad, req.len);
    printf(bad ? " (first: the split at byte %u)\n" : "\n", first_bad);
    free(req.p), free(rep.p);
    return bad == 0;
}

/* Sends req (no half-close) and expects exactly want, then EOF. */
static bool expect_close(const struct proto *pr, const char *req, const char *want,
                         const char *what)
{
    struct buf got = {0}, w = {0};
    buf_add(&w, want, strlen(want));
    int fd = conn_open();
    int end = conn_talk(fd, req, strlen(req), false, &got, 0, now_ms() + DEADLINE_MS);
    close(fd);
    if (end == -ECONNRESET && got.len == w.len)
        end = 1; /* a close with unread input resets; the bytes are what counts */
    bool ok = same(pr, &got, &w, what, end);
    free(got.p), free(w.p);
    return ok;
}

static bool case_closes(const char *name)
{
    static const struct proto fast = {"heartbeat_fast", echo_request, echo_request, false};
    if (strcmp(name, "cmd") == 0)
        return expect_close(proto_find(name), "PING\r\nQUIT\r\nPING\r\n", "PONG\r\nBYE\r\n",
                            "QUIT closes after BYE, the PING after it unanswered");
    if (strcmp(name, "sum") == 0) {
        char junk[101];
        memset(junk, '7', 100);
        junk[100] = '\0';
        return expect_close(proto_find(name), junk, "", "a 100-byte line without newline closes");
    }
    if (strcmp(name, "heartbeat_fast") == 0) /* period 100 ms: closes after ~400 ms */
        return expect_close(&fast, "", "PING\r\nPING\r\nPING\r\nbye: silent\r\n",
                            "a silent client: three PINGs, then the timer closes it");
    fprintf(stderr, "recipe_client: no closing case for \"%s\"\n", name);
    exit(2);
}

/* Reads into got until it contains `text` (true) or the deadline (false). */
static bool read_until(int fd, struct buf *got, const char *text, uint64_t deadline)
{
    while (!(got->len && strstr(got->p, text))) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, (int)(deadline - now));
        if (conn_read(fd, got) != 0)
            return got->len && strstr(got->p, text);
    }
    return true;
}

/* Drops the "p\n" probe lines from b. */
static void drop_probes(struct buf *b)
{
    size_t w = 0;
    for (size_t r = 0; r < b->len;) {
        char *e = memchr(b->p + r, '\n', b->len - r);
        size_t l = e ? (size_t)(e - (b->p + r)) + 1 : b->len - r;
        if (!(l == 2 && b->p[r] == 'p'))
            memmove(b->p + w, b->p + r, l), w += l;
        r += l;
    }
    b->len = w;
    if (b->p)
        b->p[w] = '\0';
}

/* shout: N lines from client S, which then half-closes, reach client R. */
static bool case_relay(unsigned n)
{
    static const struct proto relay = {"shout", echo_request, echo_request, false};
    int r = conn_open(), s = conn_open();
    struct buf got = {0}, junk = {0}, req = {0}, want = {0};
    uint64_t end = now_ms() + DEADLINE_MS;
    bool member = false; /* both are in the room once R hears S */
    while (!member && now_ms() < end) {
        if (send(s, "p\n", 2, MSG_NOSIGNAL) != 2)
            die("send");
        member = read_until(r, &got, "p\n", now_ms() + 20);
    }
    build(&relay, n, &req, &want);
    int sent = conn_talk(s, req.p, req.len, true, &junk, 0, now_ms() + DEADLINE_MS);
    (void)sent; /* S's own copies are not what this case counts */
    uint64_t deadline = now_ms() + DEADLINE_MS;
    for (;;) {
        drop_probes(&got);
        if (got.len >= want.len || now_ms() >= deadline)
            break;
        struct pollfd p = {r, POLLIN, 0};
        poll(&p, 1, 50);
        if (conn_read(r, &got) != 0)
            break;
    }
    drop_probes(&got);
    char what[96];
    snprintf(what, sizeof what, "relay: a burst of %u lines then half-close reaches another client", n);
    bool ok = same(&relay, &got, &want, what, got.len >= want.len ? 1 : -ETIMEDOUT);
    close(r), close(s);
    free(got.p), free(junk.p), free(req.p), free(want.p);
    return ok;
}

/* One client of the broadcast case. */
struct member {
    int fd;
    struct buf out, in; /* to send; received, not yet a whole line */
    size_t sent;
    unsigned *next;     /* per sender: the sequence number due next */
    unsigned long got;  /* lines from any sender in order, this one included */
    unsigned probes;
};

struct tally {
    unsigned long others, own, dups, lost;
};

/* Takes the whole lines "m SENDER SEQ" received by m; counts them. */
static void member_lines(struct member *m, unsigned self, unsigned clients, struct tally *t)
{
    size_t r = 0;
    char *e;
    if (!m->in.p)
        return;
    while ((e = memchr(m->in.p + r, '\n', m->in.len - r))) {
        unsigned from, seq;
        *e = '\0';
        if (m->in.p[r] == 'p') {
            m->probes++;
        } else if (sscanf(m->in.p + r, "m %u %u", &from, &seq) == 2 && from < clients) {
            if (seq < m->next[from]) {
                t->dups++;
            } else {
                t->lost += seq - m->next[from]; /* a gap: those never come in order */
                m->next[from] = seq + 1;
                m->got++;
                *(from == self ? &t->own : &t->others) += 1;
            }
        }
        r = (size_t)(e - m->in.p) + 1;
    }
    memmove(m->in.p, m->in.p + r, m->in.len - r);
    m->in.len -= r;
}

/* One poll round over every member: sends what is due, reads what came.
 * Returns whether anything moved. */
static bool members_turn(struct member *ms, unsigned clients, struct tally *t, int wait_ms)
{
    struct pollfd p[clients];
    for (unsigned i = 0; i < clients; i++)
        p[i] = (struct pollfd){ms[i].fd, POLLIN | (ms[i].sent < ms[i].out.len ? POLLOUT : 0), 0};
    if (poll(p, clients, wait_ms) <= 0)
        return false;
    bool moved = false;
    for (unsigned i = 0; i < clients; i++) {
        struct member *m = &ms[i];
        if ((p[i].revents & POLLOUT) && m->sent < m->out.len) {
            ssize_t n = send(m->fd, m->out.p + m->sent, m->out.len - m->sent,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            m->sent += n > 0 ? (size_t)n : 0;
            moved |= n > 0;
        }
        size_t before = m->in.len;
        if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
            conn_read(m->fd, &m->in);
        moved |= m->in.len != before;
        member_lines(m, i, clients, t);
    }
    return moved;
}

/* Every client sends `lines` lines at once; every line must reach every
 * client (its sender too) exactly once, in the order its sender sent them. */
static bool case_broadcast(unsigned clients, unsigned lines)
{
    struct member *ms = calloc(clients, sizeof *ms);
    struct tally t = {0};
    for (unsigned i = 0; i < clients; i++) {
        ms[i].fd = conn_open();
        if (!(ms[i].next = calloc(clients, sizeof *ms[i].next)))
            die("calloc");
    }
    /* Probes from client 0 until every client heard one: all are members. */
    uint64_t end = now_ms() + DEADLINE_MS;
    unsigned ready = 0;
    while (ready < clients && now_ms() < end) {
        buf_add(&ms[0].out, "p\n", 2);
        for (uint64_t until = now_ms() + 20; now_ms() < until;)
            members_turn(ms, clients, &t, 5);
        ready = 0;
        for (unsigned i = 0; i < clients; i++)
            ready += ms[i].probes > 0;
    }
    for (unsigned i = 0; i < clients; i++)
        for (unsigned q = 0; q < lines; q++)
            buf_printf(&ms[i].out, "m %u %u\n", i, q);
    unsigned long want = (unsigned long)clients * clients * lines, done = 0;
    uint64_t t0 = now_ms(), last = t0;
    while (done < want && now_ms() - last < DEADLINE_MS && now_ms() - t0 < 60000) {
        if (members_turn(ms, clients, &t, 100))
            last = now_ms();
        done = 0;
        for (unsigned i = 0; i < clients; i++)
            done += ms[i].got;
    }
    unsigned long others = want - (unsigned long)clients * lines;
    bool ok = ready == clients && t.others == others && t.own == want - others && !t.dups &&
              !t.lost;
    printf("%s: shout broadcast: %u clients x %u lines: %lu of %lu lines from other clients"
           " delivered in order, %lu of %lu of their own; %lu duplicates, %lu skipped over;"
           " %u of %u clients joined; %llu ms\n",
           ok ? "ok" : "FAIL", clients, lines, t.others, others, t.own, want - others, t.dups,
           t.lost, ready, clients, (unsigned long long)(now_ms() - t0));
    for (unsigned i = 0; i < clients; i++) {
        close(ms[i].fd);
        free(ms[i].out.p), free(ms[i].in.p), free(ms[i].next);
    }
    free(ms);
    return ok;
}

/* lookup: while a 2 s lookup runs, a 10 ms one is answered within 50 ms. */
static bool case_work(void)
{
    int fd = conn_open();
    struct buf got = {0};
    const char *slow = "sleep2000.test\n", *fast = "sleep10.test\n";
    if (send(fd, slow, strlen(slow), MSG_NOSIGNAL) < 0)
        die("send");
    sleep_ms(100); /* the slow job is running */
    uint64_t t0 = now_ms();
    if (send(fd, fast, strlen(fast), MSG_NOSIGNAL) < 0)
        die("send");
    bool quick = read_until(fd, &got, "sleep10.test: 127.0.0.1\r\n", t0 + 3000);
    uint64_t dt = now_ms() - t0;
    bool slow_ok = read_until(fd, &got, "sleep2000.test: 127.0.0.1\r\n", t0 + 4000);
    uint64_t dt_slow = now_ms() - t0 + 100;
    shutdown(fd, SHUT_WR);
    int end = conn_talk(fd, "", 0, false, &got, 0, now_ms() + DEADLINE_MS);
    close(fd);
    bool ok = quick && dt <= 50 && slow_ok && end == 1;
    printf("%s: lookup: a 10 ms job while a 2 s job runs (work_threads 4): answered %sin %llu ms"
           " (at most 50), the 2 s job %s after %llu ms%s\n",
           ok ? "ok" : "FAIL", quick ? "" : "NOT ", (unsigned long long)dt,
           slow_ok ? "answered" : "NOT answered", (unsigned long long)dt_slow,
           end == 1 ? "" : "; no EOF after half-close");
    free(got.p);
    return ok;
}

static __attribute__((noreturn)) void usage(void)
{
    fprintf(stderr, "usage: recipe_client burst PROTO PORT N | split PROTO PORT | closes PROTO "
                    "PORT | relay PORT N | broadcast PORT CLIENTS LINES | work PORT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    const char *cmd = argv[1];
    bool two = strcmp(cmd, "burst") == 0 || strcmp(cmd, "split") == 0 ||
               strcmp(cmd, "closes") == 0;
    if (argc < (two ? 4 : 3))
        usage();
    port = atoi(argv[two ? 3 : 2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    bool ok;
    if (strcmp(cmd, "burst") == 0 && argc == 5)
        ok = case_burst(proto_find(argv[2]), (unsigned)atoi(argv[4]));
    else if (strcmp(cmd, "split") == 0)
        ok = case_split(proto_find(argv[2]));
    else if (strcmp(cmd, "closes") == 0)
        ok = case_closes(argv[2]);
    else if (strcmp(cmd, "relay") == 0 && argc == 4)
        ok = case_relay((unsigned)atoi(argv[3]));
    else if (strcmp(cmd, "broadcast") == 0 && argc == 5)
        ok = case_broadcast((unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
    else if (strcmp(cmd, "work") == 0)
        ok = case_work();
    else
        usage();
    return ok ? 0 : 1;
}
