/*
 * check_lifecycle.c - the lifecycle rule of wharf.h, shown case by case:
 * whoever closes a connection and from wherever (the handler, a limit, a
 * timeout, the output budget, the peer, shutdown, a reload drain, another
 * connection's callback, a post, a timer, a job's done), on_close comes
 * exactly once per on_open and nothing of that connection runs after it.
 *
 * Each case of the table starts a real server with the mod_lifecycle test
 * handler (tests/modules/mod_lifecycle.c), which logs every callback with
 * its connection id and thread, drives it through real client sockets, and
 * then asserts from the log: one on_open and one on_close per connection,
 * nothing of a connection after its on_close and all of it on one thread,
 * the close reason (and timeout kind) expected, every post and job run
 * exactly once, and a new client still served.  Every connection keeps
 * requests in flight (connection timers, a job, a worker timer, posts), so
 * each close also crosses whatever is pending on it.  The "other" cases
 * close one connection from a callback of a second one, on the same worker
 * (workers: 1) and on another worker (workers: 2, through wharf_post_conn).
 */
#include <check.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "modules/mod_lifecycle.h"
#include "testutil.h"

/* What the trigger's client does once both clients are open. */
enum lc_step {
    STEP_NONE = 0,  /* nothing (the close comes from on_open or a timer) */
    STEP_SEND,      /* sends "go\n" and reads nothing */
    STEP_SEND_BIG,  /* sends 4096 bytes (past max_input) */
    STEP_SHUT_WR,   /* shutdown(SHUT_WR): the peer's EOF */
    STEP_CLOSE,     /* close() */
    STEP_RESET,     /* sends "go\n", then closes with SO_LINGER 0 (RST) */
    STEP_STOP,      /* the server stops (after "go\n" when send_first) */
    STEP_RELOAD,    /* a reload removes the listener, then "go\n", then stop */
};

struct lc_case {
    char name[80];
    const char *action, *site;
    bool other;             /* the victim is another connection */
    int workers;
    const char *listener;   /* extra keys of the case listener */
    const char *top;        /* extra top-level keys */
    enum lc_step step;
    bool send_first;        /* STEP_STOP: send "go\n" first */
    int quiet_ms;           /* the victim's client waits this long after its open:
                             * its output counts as stalled when it comes */
    bool must_act;          /* the handler's act on the victim must be logged */
    int expect, alt;        /* the victim's close reason (alt: also right, or -1) */
    int timeout_kind;       /* the victim's on_timeout kind, or -1 */
};

#define LC_MAX_CASES 200
static struct lc_case cases[LC_MAX_CASES];
static int ncases;

static struct lc_case *lc_add(const char *name, const char *action, const char *site,
                              enum lc_step step, int expect)
{
    if (ncases == LC_MAX_CASES)
        abort(); /* (outside any test: no ck_assert) */
    struct lc_case *k = &cases[ncases++];
    *k = (struct lc_case){.action = action, .site = site, .workers = 1, .listener = "",
                          .top = "", .step = step, .expect = expect, .alt = -1,
                          .timeout_kind = -1};
    snprintf(k->name, sizeof k->name, "%s", name);
    return k;
}

/* A flooded connection: a small socket buffer, and a high watermark above
 * what it holds, so that it still reads (and so floods itself again). */
#define LC_FLOOD_LISTENER ", \"send_buffer\": 4096, \"buffers\": {\"high_watermark\": 8388608}"

/* The framework's own close sources, each with requests in flight. */
static void lc_add_sources(void)
{
    struct lc_case *k;
    k = lc_add("max_input", "hold", "data", STEP_SEND_BIG, WHARF_CLOSE_LIMIT);
    k->listener = ", \"buffers\": {\"max_input\": 1024}";
    k = lc_add("idle timeout", "none", "data", STEP_NONE, WHARF_CLOSE_TIMEOUT);
    k->listener = ", \"timeouts\": {\"idle_ms\": 100}";
    k->timeout_kind = WHARF_TIMEOUT_IDLE;
    k = lc_add("write timeout", "flood", "data", STEP_SEND, WHARF_CLOSE_TIMEOUT);
    k->listener = LC_FLOOD_LISTENER ", \"timeouts\": {\"write_ms\": 100}";
    k->timeout_kind = WHARF_TIMEOUT_WRITE;
    k = lc_add("lifetime timeout", "none", "data", STEP_SEND, WHARF_CLOSE_TIMEOUT);
    k->listener = ", \"timeouts\": {\"lifetime_ms\": 150}";
    k->timeout_kind = WHARF_TIMEOUT_LIFETIME;
    k = lc_add("handshake timeout", "none", "data", STEP_NONE, WHARF_CLOSE_TIMEOUT);
    k->listener = ", \"timeouts\": {\"handshake_ms\": 100}";
    k->timeout_kind = WHARF_TIMEOUT_HANDSHAKE;
    k = lc_add("rate timeout", "hold", "data", STEP_SEND, WHARF_CLOSE_TIMEOUT);
    k->listener = ", \"timeouts\": {\"min_rate\": 100000, \"min_rate_window_ms\": 100}";
    k->timeout_kind = WHARF_TIMEOUT_RATE;
    k = lc_add("output budget", "flood", "data", STEP_SEND, WHARF_CLOSE_LIMIT);
    k->listener = LC_FLOOD_LISTENER;
    k->top = ", \"output_budget\": 1572864";
    k->quiet_ms = 150;
    lc_add("peer reset", "none", "data", STEP_RESET, WHARF_CLOSE_ERROR);
    k = lc_add("peer reset while writing", "flood", "data", STEP_RESET, WHARF_CLOSE_ERROR);
    k->listener = LC_FLOOD_LISTENER;
    lc_add("peer eof", "none", "data", STEP_SHUT_WR, WHARF_CLOSE_EOF);
    lc_add("peer close", "none", "data", STEP_CLOSE, WHARF_CLOSE_EOF);
    lc_add("shutdown", "none", "data", STEP_STOP, WHARF_CLOSE_SHUTDOWN);
    k = lc_add("shutdown with output pending", "flood", "data", STEP_STOP,
               WHARF_CLOSE_SHUTDOWN);
    k->listener = LC_FLOOD_LISTENER;
    k->send_first = true;
    lc_add("reload drain", "none", "data", STEP_RELOAD, WHARF_CLOSE_SHUTDOWN);
    lc_add("reload drain, then closed", "close", "data", STEP_RELOAD, WHARF_CLOSE_HANDLER);
}

static enum lc_step lc_site_step(const char *site)
{
    if (strcmp(site, "open") == 0 || strcmp(site, "timeout") == 0)
        return STEP_NONE;
    if (strcmp(site, "eof") == 0)
        return STEP_SHUT_WR;
    if (strcmp(site, "close") == 0)
        return STEP_CLOSE;
    if (strcmp(site, "shutdown") == 0)
        return STEP_STOP;
    return STEP_SEND;
}

/* Every close the handler asks for, from every place it can, on itself,
 * on another connection of its worker and on one of another worker. */
static void lc_add_actions(void)
{
    static const char *const actions[] = {"close", "close_with", "overflow", "flood"};
    static const int reasons[] = {WHARF_CLOSE_HANDLER, WHARF_CLOSE_ERROR, WHARF_CLOSE_LIMIT,
                                  WHARF_CLOSE_LIMIT};
    static const char *const sites[] = {"open", "data", "drain", "eof", "timeout",
                                        "shutdown", "close", "post", "post_conn",
                                        "worker_timer", "conn_timer", "done"};
    static const char *const where[] = {"self", "other on its worker", "other worker"};
    for (size_t a = 0; a < sizeof actions / sizeof *actions; a++)
        for (size_t s = 0; s < sizeof sites / sizeof *sites; s++)
            for (int t = 0; t < 3; t++) {
                bool self = t == 0, shut = strcmp(sites[s], "shutdown") == 0;
                bool flood = strcmp(actions[a], "flood") == 0;
                if ((self && strcmp(sites[s], "close") == 0) || (flood && shut))
                    continue;
                char name[80];
                snprintf(name, sizeof name, "%s in %s, %s", actions[a], sites[s], where[t]);
                struct lc_case *k = lc_add(name, actions[a], sites[s], lc_site_step(sites[s]),
                                           reasons[a]);
                k->other = !self;
                k->must_act = true;
                k->workers = t == 2 ? 2 : 1;
                if (self && strcmp(sites[s], "timeout") == 0 && !strstr(actions[a], "overflow"))
                    k->expect = WHARF_CLOSE_TIMEOUT; /* on_timeout's close comes first */
                if (t == 2 && shut)
                    k->alt = WHARF_CLOSE_SHUTDOWN; /* its own worker may stop first */
                if (flood) {
                    /* Flooded once stalled for the budget (100 ms): closed
                     * at once, inside the send or the flush that grew it. */
                    k->quiet_ms = 150;
                    k->listener = LC_FLOOD_LISTENER;
                    k->top = ", \"output_budget\": 1572864";
                } else if (strcmp(actions[a], "overflow") == 0) {
                    k->listener = ", \"buffers\": {\"max_output\": 65536}";
                }
            }
}

/* ---- the log ------------------------------------------------------------------ */

#define LC_EVENTS_MAX 65536
static struct lc_event evs[LC_EVENTS_MAX];

static size_t lc_read(void)
{
    lifecycle_events_fn fn = (lifecycle_events_fn)(uintptr_t)test_module_symbol(
        "mod_lifecycle", LIFECYCLE_EVENTS_SYMBOL);
    return fn(evs, LC_EVENTS_MAX);
}

static void lc_reset(void)
{
    lifecycle_reset_fn fn = (lifecycle_reset_fn)(uintptr_t)test_module_symbol(
        "mod_lifecycle", LIFECYCLE_RESET_SYMBOL);
    fn();
}

/* The n-th (0-based) open of the case listener in the log, or NULL. */
static const struct lc_event *lc_case_open(size_t n_events, int nth)
{
    for (size_t i = 0; i < n_events; i++)
        if (evs[i].kind == LC_OPEN && evs[i].arg == 0 && nth-- == 0)
            return &evs[i];
    return NULL;
}

static bool lc_opened(void *arg)
{
    return lc_case_open(lc_read(), *(int *)arg - 1) != NULL;
}

/* Whether the first connection of the case listener (the victim) closed. */
static bool lc_victim_closed(void *arg)
{
    (void)arg;
    size_t n = lc_read();
    const struct lc_event *o = lc_case_open(n, 0);
    for (size_t i = 0; o && i < n; i++)
        if (evs[i].kind == LC_CLOSE && evs[i].conn == o->conn)
            return true;
    return false;
}

static const char *const kind_names[LC_KINDS] = {
    "on_open", "on_data", "on_drain", "on_eof", "on_timeout", "on_shutdown", "on_close",
    "connection timer", "post_conn", "post_conn (gone)", "post", "worker timer", "done",
    "queued", "ran", "act", "bad"};

struct lc_conn_seen {
    uint64_t id, thread;
    bool closed_by_handler;  /* wharf_close(_with) or an overflowing send ran on it */
    int worker, closes, timeouts, eofs, shutdowns;
    uint32_t reason, timeout_kind;
};

static struct lc_conn_seen *lc_seen(struct lc_conn_seen *s, int *n, uint64_t id)
{
    for (int i = 0; i < *n; i++)
        if (s[i].id == id)
            return &s[i];
    return NULL;
}

/* One connection event, checked against what came before it. */
static void lc_check_conn_event(const struct lc_case *k, const struct lc_event *e,
                                struct lc_conn_seen *seen, int *nseen)
{
    struct lc_conn_seen *s = lc_seen(seen, nseen, e->conn);
    if (e->kind == LC_OPEN) {
        ck_assert_msg(!s, "%s: connection %llu opened twice", k->name,
                      (unsigned long long)e->conn);
        ck_assert_int_lt(*nseen, 64);
        s = &seen[(*nseen)++];
        *s = (struct lc_conn_seen){.id = e->conn, .thread = e->thread, .worker = e->worker};
        return;
    }
    ck_assert_msg(s, "%s: %s of connection %llu before its on_open", k->name,
                  kind_names[e->kind], (unsigned long long)e->conn);
    ck_assert_msg(s->closes == 0, "%s: %s of connection %llu after its on_close", k->name,
                  kind_names[e->kind], (unsigned long long)e->conn);
    ck_assert_msg(e->thread == s->thread && e->worker == s->worker,
                  "%s: %s of connection %llu on worker %d, opened on worker %d", k->name,
                  kind_names[e->kind], (unsigned long long)e->conn, e->worker, s->worker);
    ck_assert_msg(!s->closed_by_handler ||
                      (e->kind != LC_DATA && e->kind != LC_EOF && e->kind != LC_SHUTDOWN),
                  "%s: %s of connection %llu after the handler closed it", k->name,
                  kind_names[e->kind], (unsigned long long)e->conn);
    if (e->kind == LC_CLOSE) {
        s->closes++;
        s->reason = e->arg;
    } else if (e->kind == LC_TIMEOUT) {
        s->timeouts++;
        s->timeout_kind = e->arg;
    } else if (e->kind == LC_EOF) {
        s->eofs++;
    } else if (e->kind == LC_SHUTDOWN) {
        s->shutdowns++;
    }
}

/* The handler acted on a connection: it must be open (not yet on_close);
 * after a close or an overflow nothing more is read from it. */
static void lc_check_act(const struct lc_case *k, const struct lc_event *e,
                         struct lc_conn_seen *seen, int nseen, const struct lc_event *victim,
                         bool *acted)
{
    struct lc_conn_seen *s = lc_seen(seen, &nseen, e->conn);
    ck_assert_msg(s && s->closes == 0, "%s: the handler acted on connection %llu after its "
                  "on_close", k->name, (unsigned long long)e->conn);
    if (e->arg != LC_ACT_FLOOD)
        s->closed_by_handler = true;
    if (e->conn == victim->conn)
        *acted = true;
}

#define LC_REQS 8192
static uint8_t queued[LC_REQS], ran[LC_REQS];

/*
 * The whole log of a case, once the server has stopped: every connection
 * opened once and closed once, nothing of it after on_close or off its
 * worker; every queued post and job ran once; the victim (the case
 * listener's first connection) closed for the expected reason.
 */
static void lc_verify(const struct lc_case *k)
{
    size_t n = lc_read();
    ck_assert_msg(n < LC_EVENTS_MAX, "%s: log full", k->name);
    struct lc_conn_seen seen[64];
    int nseen = 0;
    bool acted = false;
    memset(queued, 0, sizeof queued);
    memset(ran, 0, sizeof ran);
    const struct lc_event *victim = lc_case_open(n, 0), *trigger = lc_case_open(n, 1);
    ck_assert_msg(victim, "%s: no connection opened", k->name);
    for (size_t i = 0; i < n; i++) {
        const struct lc_event *e = &evs[i];
        ck_assert_msg(e->kind != LC_BAD, "%s: the handler saw bad state %u on connection %llu",
                      k->name, e->arg, (unsigned long long)e->conn);
        if (e->kind < LC_CONN_KINDS)
            lc_check_conn_event(k, e, seen, &nseen);
        else if (e->kind == LC_QUEUED && e->arg < LC_REQS)
            queued[e->arg]++;
        else if (e->kind == LC_RAN && e->arg < LC_REQS)
            ran[e->arg]++;
        else if (e->kind == LC_ACT)
            lc_check_act(k, e, seen, nseen, victim, &acted);
    }
    for (int i = 0; i < nseen; i++) {
        ck_assert_msg(seen[i].closes == 1, "%s: connection %llu got %d on_close", k->name,
                      (unsigned long long)seen[i].id, seen[i].closes);
        ck_assert_msg(seen[i].timeouts <= 1 && seen[i].eofs <= 1 && seen[i].shutdowns <= 1,
                      "%s: connection %llu: %d on_timeout, %d on_eof, %d on_shutdown", k->name,
                      (unsigned long long)seen[i].id, seen[i].timeouts, seen[i].eofs,
                      seen[i].shutdowns);
    }
    for (int i = 0; i < LC_REQS; i++)
        ck_assert_msg(queued[i] == ran[i], "%s: request %d queued %d times, ran %d times",
                      k->name, i, queued[i], ran[i]);
    const struct lc_conn_seen *v = lc_seen(seen, &nseen, victim->conn);
    ck_assert_msg((int)v->reason == k->expect || (int)v->reason == k->alt,
                  "%s: closed with reason %s, expected %s", k->name,
                  wharf_close_reason_name(v->reason), wharf_close_reason_name(k->expect));
    if (k->timeout_kind >= 0)
        ck_assert_msg(v->timeouts == 1 && (int)v->timeout_kind == k->timeout_kind,
                      "%s: %d on_timeout (kind %u), expected one %s", k->name, v->timeouts,
                      v->timeout_kind, wharf_timeout_name(k->timeout_kind));
    if (k->must_act && (int)v->reason != k->alt)
        ck_assert_msg(acted, "%s: the handler never acted on its victim", k->name);
    if (k->other) {
        ck_assert_msg(trigger, "%s: no second connection", k->name);
        ck_assert_msg((trigger->worker == victim->worker) == (k->workers == 1),
                      "%s: the two connections are on workers %d and %d", k->name,
                      victim->worker, trigger->worker);
    }
}

/* ---- driving a case ----------------------------------------------------------- */

/* A client with a small receive buffer, so that output piles up. */
static int lc_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&in, sizeof in), 0);
    return fd;
}

static void lc_reset_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* A new client of the check listener is answered. */
static void lc_still_serves(const struct lc_case *k, struct tserver *t, size_t listener)
{
    int fd = tcp_connect("127.0.0.1", tserver_port(t, listener));
    char got[8] = "";
    send_all(fd, "ping\n", 5);
    ck_assert_msg(recv_exact(fd, got, 5, 3000) == 5 && memcmp(got, "ping\n", 5) == 0,
                  "%s: a new client is not served", k->name);
    close(fd);
}

static struct tserver *lc_start(const struct lc_case *k)
{
    return tserver_start(
        "{\"workers\": %d, \"shutdown_timeout_ms\": 300, \"log\": \"error\"%s, "
        "\"listeners\": [{\"name\": \"case\", \"port\": 0, \"handler\": \"mod_lifecycle\"%s, "
        "\"options\": {\"action\": \"%s\", \"site\": \"%s\", \"target\": \"%s\", "
        "\"inflight\": true}}, {\"name\": \"check\", \"port\": 0, "
        "\"handler\": \"mod_lifecycle\", \"options\": {\"role\": \"check\"}}]}",
        k->workers, k->top, k->listener, k->action, k->site, k->other ? "other" : "self");
}

/* The case listener goes; the check listener keeps its socket. */
static void lc_reload_drain(const struct lc_case *k, struct tserver *t, int a)
{
    tserver_reload(t,
                   "{\"workers\": %d, \"shutdown_timeout_ms\": 300, \"log\": \"error\"%s, "
                   "\"listeners\": [{\"name\": \"check\", \"port\": %d, "
                   "\"handler\": \"mod_lifecycle\", \"options\": {\"role\": \"check\"}}]}",
                   k->workers, k->top, tserver_port(t, 1));
    send_all(a, "go\n", 3);
    if (strcmp(k->action, "none") == 0) {
        char got[4] = "";
        ck_assert_msg(recv_exact(a, got, 3, 3000) == 3 && memcmp(got, "go\n", 3) == 0,
                      "%s: a connection of the removed listener is not served", k->name);
    }
}

/* What the trigger's client does; returns the server (NULL once stopped). */
static struct tserver *lc_drive(const struct lc_case *k, struct tserver *t, int *trig, int a)
{
    static char big[4096];
    switch (k->step) {
    case STEP_NONE:
        break;
    case STEP_SEND:
        send_all(*trig, "go\n", 3);
        break;
    case STEP_SEND_BIG:
        send_all(*trig, big, sizeof big);
        break;
    case STEP_SHUT_WR:
        shutdown(*trig, SHUT_WR);
        break;
    case STEP_CLOSE:
        close(*trig);
        *trig = -1;
        break;
    case STEP_RESET:
        send_all(*trig, "go\n", 3);
        usleep(30000);
        lc_reset_close(*trig);
        *trig = -1;
        break;
    case STEP_STOP:
        if (k->send_first) {
            send_all(*trig, "go\n", 3);
            usleep(50000);
        }
        lc_still_serves(k, t, 1);
        tserver_stop(t);
        return NULL;
    case STEP_RELOAD:
        lc_reload_drain(k, t, a);
        break;
    }
    return t;
}

START_TEST(lifecycle_case)
{
    const struct lc_case *k = &cases[_i];
    lc_reset();
    struct tserver *t = lc_start(k);
    int a = lc_connect(tserver_port(t, 0)), b = -1, want = 1;
    ck_assert_msg(wait_for(lc_opened, &want, 3000), "%s: no on_open", k->name);
    if (k->quiet_ms)
        usleep((useconds_t)k->quiet_ms * 1000);
    if (k->other) {
        b = lc_connect(tserver_port(t, 0));
        want = 2;
        ck_assert_msg(wait_for(lc_opened, &want, 3000), "%s: no second on_open", k->name);
    }
    int *trig = k->other ? &b : &a;
    t = lc_drive(k, t, trig, a);
    if (t) {
        bool drained = k->step == STEP_RELOAD && strcmp(k->action, "none") == 0;
        if (!drained)
            ck_assert_msg(wait_for(lc_victim_closed, NULL, 3000),
                          "%s: the connection was not closed", k->name);
        lc_still_serves(k, t, k->step == STEP_RELOAD ? 0 : 1);
        tserver_stop(t);
    }
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    lc_verify(k);
}
END_TEST

int main(void)
{
    lc_add_sources();
    lc_add_actions();
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("cases");
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, lifecycle_case, 0, ncases);
    suite_add_tcase(s, tc);
    return check_run(s);
}
