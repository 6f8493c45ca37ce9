/*
 * check_reload_stress.c - issue 13's reload test: a module's .so is
 * swapped for a changed build 50 times while clients keep talking and
 * thousands of posts, timers and jobs are in flight.
 *
 * The handler is tests/modules/mod_churn.c, built twice (reply prefix "A"
 * and "B").  The suite installs one build at the path the config names,
 * starts an in-process server through the embedding API, and per reload
 * installs the other build (copy and rename, as an install does) and
 * reloads, so every reload loads a new copy of the code (the log says so).
 * Meanwhile client threads send pipelined batches of lines, each of which
 * fans out into a post, a post to every worker, a post to its connection,
 * a worker timer, a connection timer and a job; the reply comes once all
 * of them ran.  One client keeps its connection across every reload; the
 * others reconnect every few batches, so connections are accepted during
 * every reload, and every other connection leaves with a
 * batch in flight, so requests outlive their connection (and now and
 * then the last connection of their generation).  Each reload waits until the
 * requests in flight reach a target (10,000 in a plain build).
 *
 * What must hold: no connection refused, every reply arrives byte-exact
 * (and from the code of the generation that accepted the connection: the
 * prefix the install before the connect put there), every old generation
 * ends (its fini logs that every request it issued had finished), every
 * old copy of the module is unmapped, and the process's fd count and RSS
 * are back to their level after a warm-up.  A call into unloaded code
 * faults (and ASan names it).  Under a sanitizer or valgrind the traffic is
 * scaled down (WHARF_SANITIZER, as tests/check_memcache_clients.sh reads
 * it), not the number of reloads.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"
#include "wharf_server.h"

/* ---- how much traffic ----------------------------------------------------------- */

#define WINDOW_MAX 1024

struct scale {
    const char *name;
    int reloads;       /* in the measured phase (the warm-up adds 2) */
    int clients;       /* client threads */
    int window;        /* lines per batch (all in flight at once) */
    int batches;       /* batches per connection before it reconnects */
    int interval_ms;   /* traffic between two reloads, at least (at most 4 times) */
    long min_inflight; /* requests in flight to wait for before a reload (half
                        * of the reloads must get there) */
    bool rss;          /* whether RSS is meaningful (no sanitizer, no valgrind) */
};

static struct scale scale_get(void)
{
    const char *kind = test_build_kind();
    if (strcmp(kind, "valgrind") == 0)
        return (struct scale){"valgrind", 50, 3, 32, 2, 80, 200, false};
    if (strcmp(kind, "asan") == 0)
        return (struct scale){"asan", 50, 6, 384, 3, 80, 5000, false};
    if (strcmp(kind, "tsan") == 0)
        return (struct scale){"tsan", 50, 4, 128, 3, 80, 1500, false};
    return (struct scale){"plain", 50, 8, 768, 4, 100, 10000, true};
}

/* ---- the log: fini lines, new copies, errors -------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned finis, finis_bad, copies, errors;
static char bad_line[512], error_line[512];

static void on_log(void *arg, enum wharf_log_level level, const char *line)
{
    (void)arg;
    pthread_mutex_lock(&log_lock);
    const char *fini = strstr(line, "mod_churn ");
    unsigned long issued, completed, lost;
    char prefix[4];
    if (fini && sscanf(fini, "mod_churn %3s fini: issued=%lu completed=%lu lost=%lu", prefix,
                       &issued, &completed, &lost) == 4) {
        finis++;
        if (completed != issued || lost != 0) {
            finis_bad++;
            snprintf(bad_line, sizeof bad_line, "%s", line);
        }
    }
    if (strstr(line, "churn.so changed on disk: loaded a new copy of it"))
        copies++;
    if (level == WHARF_LOG_ERROR) {
        errors++;
        snprintf(error_line, sizeof error_line, "%s", line);
    }
    pthread_mutex_unlock(&log_lock);
}

static unsigned log_count(unsigned *what)
{
    pthread_mutex_lock(&log_lock);
    unsigned n = *what;
    pthread_mutex_unlock(&log_lock);
    return n;
}

/* ---- the module file and the server ------------------------------------------------ */

struct rig {
    char dir[64], path[128], json[1024];
    wharf_server *srv;
    int port;
    unsigned installs; /* builds installed so far: even ones are A */
};

/* Copies build A or B of mod_churn over r->path through a temporary name
 * and rename(), as an install does (the old file stays whole for whoever
 * maps it). */
static void install(struct rig *r)
{
    const char *mods = getenv("WHARF_TEST_MODULES");
    char src[4096], tmp[160];
    snprintf(src, sizeof src, "%s/mod_churn_%s.so", mods ? mods : "tests/.libs",
             r->installs % 2 ? "b" : "a");
    snprintf(tmp, sizeof tmp, "%s.tmp", r->path);
    FILE *in = fopen(src, "rb"), *out = fopen(tmp, "wb");
    ck_assert_msg(in && out, "cannot copy %s to %s", src, tmp);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_int_eq(rename(tmp, r->path), 0);
    r->installs++;
}

static wharf_config *rig_config(struct rig *r)
{
    char err[1024];
    wharf_config *cfg = NULL;
    ck_assert_msg(wharf_config_from_json(r->json, "stress.json", &cfg, err, sizeof err) == 0,
                  "%s", err);
    return cfg;
}

static void rig_start(struct rig *r)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/wharf-stress-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(r->dir));
    snprintf(r->path, sizeof r->path, "%s/churn.so", r->dir);
    install(r);
    wharf_log_set_callback(on_log, NULL);
    snprintf(r->json, sizeof r->json,
             "{\"workers\": 2, \"work_threads\": 2, \"post_queue\": 65536, \"listeners\": [{\"name\": \"churn\", "
             "\"port\": 0, \"backlog\": 1024, \"handler\": \"%s\"}]}", r->path);
    wharf_config *cfg = rig_config(r);
    char err[1024];
    ck_assert_ptr_nonnull(r->srv = wharf_server_new());
    ck_assert_msg(wharf_server_start(r->srv, cfg, err, sizeof err) == 0, "%s", err);
    wharf_config_free(cfg);
    r->port = wharf_server_port(r->srv, "churn");
    ck_assert_int_gt(r->port, 0);
    /* Later reloads name the port, so the listener keeps its socket. */
    snprintf(r->json, sizeof r->json,
             "{\"workers\": 2, \"work_threads\": 2, \"post_queue\": 65536, \"listeners\": [{\"name\": \"churn\", "
             "\"port\": %d, \"backlog\": 1024, \"handler\": \"%s\"}]}", r->port, r->path);
}

/* Installs the other build and reloads. */
static void rig_reload(struct rig *r)
{
    install(r);
    wharf_config *cfg = rig_config(r);
    char err[1024];
    ck_assert_msg(wharf_server_reload(r->srv, cfg, err, sizeof err) == 0, "reload %u: %s",
                  r->installs - 1, err);
    wharf_config_free(cfg);
}

static void rig_stop(struct rig *r)
{
    wharf_server_free(r->srv);
    wharf_log_set_callback(NULL, NULL);
    unlink(r->path);
    rmdir(r->dir);
}

/* The prefix of the code a connection accepted after `reloads` reloads runs. */
static char prefix_after(unsigned reloads)
{
    return reloads % 2 ? 'B' : 'A';
}

/* Requests in flight now over every generation (the module's "?" line),
 * asked on connection fd; the most so far in *peak. */
static long query(int fd, long *peak)
{
    send_all(fd, "?\n", 2);
    char line[96] = "";
    size_t n = 0;
    while (n < sizeof line - 1 && (n == 0 || line[n - 1] != '\n'))
        if (recv_exact(fd, line + n, 1, 5000) != 1)
            break;
        else
            n++;
    char p;
    long now;
    ck_assert_msg(sscanf(line, "%c ? %ld %ld", &p, &now, peak) == 3, "query: \"%s\"", line);
    return now;
}

/* The same on a connection of its own. */
static long inflight(struct rig *r, long *peak)
{
    int fd = tcp_try_connect("127.0.0.1", r->port);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    long now = query(fd, peak);
    close(fd);
    return now;
}

/* ---- the clients ----------------------------------------------------------------- */

struct traffic {
    const struct scale *sc;
    int port;
    _Atomic bool stop;
    _Atomic unsigned begun, done;   /* reloads begun / returned */
    _Atomic unsigned long replies, conns, refused, lost, wrong, abandoned;
    _Atomic unsigned long fresh;    /* connections whose code was checked to be the newest */
    _Atomic unsigned long spanned;  /* connections that talked across a reload */
    _Atomic int ids;                /* client threads started */
    pthread_mutex_t lock;
    char first_error[256];
};

static void traffic_fail(struct traffic *tr, _Atomic unsigned long *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void traffic_fail(struct traffic *tr, _Atomic unsigned long *counter, const char *fmt, ...)
{
    atomic_fetch_add(counter, 1);
    pthread_mutex_lock(&tr->lock);
    if (!tr->first_error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tr->first_error, sizeof tr->first_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&tr->lock);
}

/* One connection of a client. */
struct session {
    struct traffic *tr;
    int fd;
    unsigned reloads_before;  /* reloads returned before the connect */
    char prefix;              /* of the first reply; 0 before it */
    unsigned long next;       /* the next line number */
    char in[8192];
    size_t len;
};

/* Checks one reply line against the batch [base, base + window). */
static bool session_line(struct session *s, const char *line, size_t len, unsigned long base,
                         bool *seen)
{
    struct traffic *tr = s->tr;
    char p;
    unsigned long n;
    char want[64];
    if (sscanf(line, "%c %lu", &p, &n) != 2 || n < base || n >= base + (unsigned)tr->sc->window ||
        seen[n - base]) {
        traffic_fail(tr, &tr->wrong, "unexpected reply \"%.*s\"", (int)len - 1, line);
        return false;
    }
    if (!s->prefix) {
        /* No reload began between the connect and this reply: the
         * connection was accepted by the generation of the last install. */
        if (atomic_load(&tr->begun) == s->reloads_before) {
            if (p != prefix_after(s->reloads_before)) {
                traffic_fail(tr, &tr->wrong, "a connection made after %u reloads got \"%c\"",
                             s->reloads_before, p);
                return false;
            }
            atomic_fetch_add(&tr->fresh, 1);
        }
        s->prefix = p;
    }
    int w = snprintf(want, sizeof want, "%c %lu\n", s->prefix, n);
    if ((size_t)w != len || memcmp(want, line, len) != 0) {
        traffic_fail(tr, &tr->wrong, "reply \"%.*s\", expected \"%.*s\"", (int)len - 1, line,
                     w - 1, want);
        return false;
    }
    seen[n - base] = true;
    atomic_fetch_add(&tr->replies, 1);
    return true;
}

/* Sends one batch of lines. */
static bool session_send(struct session *s)
{
    struct traffic *tr = s->tr;
    static _Thread_local char out[WINDOW_MAX * 24];
    size_t olen = 0;
    for (int i = 0; i < tr->sc->window; i++)
        olen += (size_t)snprintf(out + olen, sizeof out - olen, "%lu\n", s->next++);
    for (size_t off = 0; off < olen;) {
        ssize_t w = send(s->fd, out + off, olen - off, MSG_NOSIGNAL);
        if (w <= 0) {
            traffic_fail(tr, &tr->lost, "send: %s", w < 0 ? strerror(errno) : "nothing sent");
            return false;
        }
        off += (size_t)w;
    }
    return true;
}

/* Sends one batch of lines and reads every reply (in any order). */
static bool session_batch(struct session *s)
{
    struct traffic *tr = s->tr;
    int window = tr->sc->window;
    unsigned long base = s->next;
    if (!session_send(s))
        return false;
    bool seen[WINDOW_MAX] = {false};
    for (int got = 0; got < window;) {
        char *nl = memchr(s->in, '\n', s->len);
        if (nl) {
            size_t len = (size_t)(nl - s->in) + 1;
            if (!session_line(s, s->in, len, base, seen))
                return false;
            memmove(s->in, s->in + len, s->len - len);
            s->len -= len;
            got++;
            continue;
        }
        ssize_t r = s->len < sizeof s->in ? recv(s->fd, s->in + s->len, sizeof s->in - s->len, 0)
                                          : -1;
        if (r <= 0) {
            traffic_fail(tr, &tr->lost, "%d of %d replies, then %s", got, window,
                         r == 0 ? "EOF" : strerror(errno));
            return false;
        }
        s->len += (size_t)r;
    }
    return true;
}

static void *client(void *arg)
{
    struct traffic *tr = arg;
    unsigned long next = 0;
    /* The first client keeps its connection for the whole phase, across
     * every reload; the others reconnect every few batches. */
    int batches = atomic_fetch_add(&tr->ids, 1) == 0 ? 1000000 : tr->sc->batches;
    for (int k = 0; k < 100000 && !atomic_load(&tr->stop); k++) {
        struct session s = {.tr = tr, .next = next};
        s.reloads_before = atomic_load(&tr->done);
        s.fd = tcp_try_connect("127.0.0.1", tr->port); /* 5 s send/receive timeouts */
        if (s.fd < 0) {
            traffic_fail(tr, &tr->refused, "connect: %s", strerror(-s.fd));
            usleep(1000);
            continue;
        }
        atomic_fetch_add(&tr->conns, 1);
        bool ok = true;
        for (int b = 0; b < batches && ok && !atomic_load(&tr->stop); b++)
            ok = session_batch(&s);
        /* Every other connection leaves with a batch in flight: its
         * requests outlive it (and may outlive its generation's last
         * connection), its pending connection timers are stopped. */
        if (ok && k % 2 == 1 && session_send(&s))
            atomic_fetch_add(&tr->abandoned, (unsigned long)tr->sc->window);
        next = s.next;
        if (ok && atomic_load(&tr->done) > s.reloads_before + 1)
            atomic_fetch_add(&tr->spanned, 1); /* and kept its prefix */
        close(s.fd);
    }
    return NULL;
}

static pthread_t threads[16]; /* clients */

static void traffic_start(struct traffic *tr)
{
    atomic_store(&tr->stop, false);
    atomic_store(&tr->ids, 0);
    for (int i = 0; i < tr->sc->clients; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, client, tr), 0);
}

static void traffic_stop(struct traffic *tr)
{
    atomic_store(&tr->stop, true);
    for (int i = 0; i < tr->sc->clients; i++)
        pthread_join(threads[i], NULL);
}

/* ---- what the process holds -------------------------------------------------------- */

static unsigned fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* How many distinct copies of the module are mapped: the file the config
 * names (or an old one renamed over) and the memfd copies the loader made
 * of changed files (module.c). */
static unsigned copies_mapped(const struct rig *r)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    unsigned long inodes[256];
    unsigned n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long inode;
        if (!strstr(line, "wharf-module") && !strstr(line, r->path))
            continue;
        if (sscanf(line, "%*s %*s %*s %*s %lu", &inode) != 1)
            continue;
        bool known = false;
        for (unsigned i = 0; i < n && !known; i++)
            known = inodes[i] == inode;
        if (!known && n < 256)
            inodes[n++] = inode;
    }
    fclose(f);
    return n;
}

struct settled {
    struct rig *r;
    unsigned finis;
};

/* Every old generation has ended: its fini ran, its connections are gone,
 * and only the current copy of the module is mapped. */
static bool settled(void *arg)
{
    struct settled *s = arg;
    struct wharf_server_info info;
    wharf_server_info(s->r->srv, &info);
    return log_count(&finis) >= s->finis && info.connections_open == 0 &&
           copies_mapped(s->r) == 1;
}

static void wait_settled(struct rig *r, unsigned reloads)
{
    struct settled s = {r, reloads};
    bool ok = wait_for(settled, &s, 20000);
    struct wharf_server_info info;
    wharf_server_info(r->srv, &info);
    ck_assert_msg(ok, "after %u reloads: %u fini, %llu connections open, %u copies mapped",
                  reloads, log_count(&finis), (unsigned long long)info.connections_open,
                  copies_mapped(r));
}

static bool nothing_in_flight(void *arg)
{
    long peak;
    return inflight(arg, &peak) == 0;
}

static bool no_connection(void *arg)
{
    struct rig *r = arg;
    struct wharf_server_info info;
    wharf_server_info(r->srv, &info);
    return info.connections_open == 0;
}

/* Waits until every old generation has ended and the requests the last
 * connections left in flight (of the current one) have finished. */
static void quiesce(struct rig *r, unsigned reloads)
{
    wait_settled(r, reloads);
    long peak;
    ck_assert_msg(wait_for(nothing_in_flight, r, 20000), "%ld requests still in flight",
                  inflight(r, &peak));
    ck_assert(wait_for(no_connection, r, 5000)); /* the last query's */
}

/* ---- the test --------------------------------------------------------------------------- */

/* Lets traffic run for interval_ms, then up to 3 times that until
 * min_inflight requests are in flight.  Returns how many are. */
static long build_up(struct rig *r, const struct scale *sc)
{
    int fd = tcp_try_connect("127.0.0.1", r->port);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    usleep((useconds_t)sc->interval_ms * 1000);
    uint64_t end = now_ms() + 3 * (uint64_t)sc->interval_ms;
    long now, peak;
    while ((now = query(fd, &peak)) < sc->min_inflight && now_ms() < end)
        usleep(500);
    close(fd);
    return now;
}

/* Reloads `count` times with traffic in between; returns at how many
 * reloads min_inflight requests were in flight (just before). */
static int reload_under_traffic(struct rig *r, struct traffic *tr, int count)
{
    int busy = 0;
    traffic_start(tr);
    for (int i = 0; i < count; i++) {
        long now = build_up(r, tr->sc);
        busy += now >= tr->sc->min_inflight;
        atomic_fetch_add(&tr->begun, 1);
        rig_reload(r);
        atomic_fetch_add(&tr->done, 1);
    }
    usleep((useconds_t)tr->sc->interval_ms * 1000);
    traffic_stop(tr);
    return busy;
}

static void traffic_check(struct traffic *tr)
{
    ck_assert_msg(atomic_load(&tr->refused) + atomic_load(&tr->lost) + atomic_load(&tr->wrong) == 0,
                  "%lu refused, %lu lost, %lu wrong (first: %s) in %lu replies on %lu connections",
                  atomic_load(&tr->refused), atomic_load(&tr->lost), atomic_load(&tr->wrong),
                  tr->first_error, atomic_load(&tr->replies), atomic_load(&tr->conns));
}

START_TEST(fifty_module_swaps_under_load_lose_nothing_and_leak_nothing)
{
    const struct scale sc = scale_get();
    struct rig r = {0};
    rig_start(&r);
    struct traffic tr = {.sc = &sc, .port = r.port};
    pthread_mutex_init(&tr.lock, NULL);

    /* Warm-up: two reloads under the same traffic, so that allocator
     * arenas, thread stacks and the work pool reach their working size;
     * then the level to come back to. */
    reload_under_traffic(&r, &tr, 2);
    traffic_check(&tr);
    quiesce(&r, 2);
    unsigned fds_before = fd_count();
    size_t rss_before = test_rss_bytes();
    unsigned long replies_before = atomic_load(&tr.replies);

    uint64_t start = now_ms();
    int busy = reload_under_traffic(&r, &tr, sc.reloads);
    uint64_t took = now_ms() - start;
    traffic_check(&tr);
    unsigned reloads = 2 + (unsigned)sc.reloads;
    quiesce(&r, reloads);
    long peak;
    inflight(&r, &peak);
    ck_assert(wait_for(no_connection, &r, 5000));
    unsigned long replies = atomic_load(&tr.replies) - replies_before;
    unsigned fds_after = fd_count();
    size_t rss_after = test_rss_bytes();
    fprintf(stderr, "reload stress (%s): %d reloads in %llu ms, %lu replies on %lu connections "
            "(%lu across a reload; %lu lines left in flight by closing), %d reloads with %ld requests in flight or more "
            "(peak %ld), fds %u -> %u, RSS %zu -> %zu KiB\n", sc.name, sc.reloads,
            (unsigned long long)took, replies, atomic_load(&tr.conns), atomic_load(&tr.spanned),
            atomic_load(&tr.abandoned),
            busy, sc.min_inflight, peak, fds_before, fds_after, rss_before / 1024, rss_after / 1024);

    /* Every reload loaded a new copy, every old generation ended with
     * nothing of its own in flight, nothing went wrong. */
    struct wharf_server_info info;
    wharf_server_info(r.srv, &info);
    ck_assert_uint_eq(info.reloads, reloads);
    ck_assert_uint_eq(info.reloads_failed, 0);
    ck_assert_uint_eq(log_count(&copies), reloads);
    ck_assert_uint_eq(log_count(&finis), reloads);
    ck_assert_msg(log_count(&finis_bad) == 0, "%u generations ended with requests in flight: %s",
                  log_count(&finis_bad), bad_line);
    ck_assert_msg(log_count(&errors) == 0, "%u errors logged: %s", log_count(&errors), error_line);
    ck_assert_msg(busy >= sc.reloads / 2, "%d of %d reloads had %ld requests in flight",
                  busy, sc.reloads, sc.min_inflight);
    ck_assert_uint_ge(replies, (unsigned long)sc.reloads * (unsigned)sc.window);
    /* New connections ran the newest code, old ones kept theirs. */
    ck_assert_uint_gt(atomic_load(&tr.fresh), 0);
    ck_assert_uint_gt(atomic_load(&tr.spanned), 0);

    /* The process is back where it was. */
    ck_assert_msg(fds_after <= fds_before, "%u fds open, %u before", fds_after, fds_before);
    /* On io_uring each worker's loop also holds its ring of receive
     * buffers (256 of 16 KiB, made on the first connection: loop.h). */
    size_t rings = getenv("WHARF_IO") && strcmp(getenv("WHARF_IO"), "io_uring") == 0
                       ? 2 * (4u << 20) : 0;
    if (sc.rss)
        ck_assert_msg(rss_after <= rss_before + rss_before / 8 + (2u << 20) + rings,
                      "RSS %zu KiB, %zu KiB before", rss_after / 1024, rss_before / 1024);

    rig_stop(&r);
    ck_assert_uint_eq(log_count(&finis), reloads + 1);
    pthread_mutex_destroy(&tr.lock);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reload_stress");
    TCase *tc = tcase_create("reload_stress");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, fifty_module_swaps_under_load_lose_nothing_and_leak_nothing);
    suite_add_tcase(s, tc);
    return check_run(s);
}
