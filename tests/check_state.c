/*
 * check_state.c - named handler state across reloads (wharf_state_get) and
 * the per-worker hooks (on_worker_start / on_worker_stop), through the
 * embedding API with handlers registered in-process: the same object after
 * a reload, from old and new connections; a renamed listener, another
 * handler or another tag gets a new one; a failed reload drops only its
 * own references; destroy runs from a module still loaded; the hooks run
 * once per worker, on its thread, before its first connection callback and
 * after its last, with fini after every stop; ABI 2 handlers get no hooks.
 */
#include <errno.h>
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "testutil.h"
#include "wharf_server.h"

/* ---- a handler keeping one object ------------------------------------------ */

struct obj {
    int id;
};

static _Atomic int created, destroyed;

static int obj_create(void *arg, void **out)
{
    (void)arg;
    struct obj *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    o->id = atomic_fetch_add(&created, 1) + 1;
    *out = o;
    return 0;
}

static void obj_destroy(void *p)
{
    atomic_fetch_add(&destroyed, 1);
    free(p);
}

static const struct wharf_state_type obj_type = {"test.obj/1", obj_create, obj_destroy};
static const struct wharf_state_type obj_type2 = {"test.obj/2", obj_create, obj_destroy};

/* Options: "tag2" (another type tag), "fail" (refuse after getting it). */
static int keeper_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    bool tag2 = false, fail = false;
    wharf_options_bool(opts, "tag2", &tag2);
    wharf_options_bool(opts, "fail", &fail);
    int rc = wharf_state_get(opts, "cache", tag2 ? &obj_type2 : &obj_type, NULL, data, NULL);
    if (rc < 0 || fail) {
        snprintf(err, errlen, "refused (%d)", rc);
        return -1;
    }
    return 0;
}

/* Answers every line with the id of its listener's object. */
static size_t keeper_data(wharf_conn *c, const void *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    if (!nl)
        return 0;
    char out[32];
    int n = snprintf(out, sizeof out, "%d\n", ((struct obj *)wharf_listener_data(c))->id);
    wharf_send(c, out, (size_t)n);
    return (size_t)(nl - (const char *)data) + 1;
}

static const struct wharf_handler keeper = {
    .abi_version = WHARF_ABI_VERSION, .name = "keeper", .init = keeper_init,
    .on_data = keeper_data,
};
static const struct wharf_handler keeper2 = {
    .abi_version = WHARF_ABI_VERSION, .name = "keeper2", .init = keeper_init,
    .on_data = keeper_data,
};

/* ---- a handler recording its hooks ---------------------------------------- */

enum ev_kind { EV_START, EV_STOP, EV_OPEN, EV_CLOSE, EV_FINI };

struct ev {
    enum ev_kind kind;
    int gen;
    int worker;
};

#define MAX_EVENTS 4096
#define MAX_W 16
static struct ev events[MAX_EVENTS];
static _Atomic unsigned nevents;
static _Atomic int hook_wrong_thread, hook_workers, ticks;

/* events[] is written by the workers and read by the test: one lock. */
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;

static void record(enum ev_kind kind, int gen, int worker)
{
    pthread_mutex_lock(&events_lock);
    unsigned i = atomic_fetch_add(&nevents, 1);
    if (i < MAX_EVENTS)
        events[i] = (struct ev){kind, gen, worker};
    pthread_mutex_unlock(&events_lock);
}

struct hk {
    int gen;
    unsigned nworkers;
    wharf_timer *timers[MAX_W];
};

static void hk_tick(wharf_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    atomic_fetch_add(&ticks, 1);
}

static int hk_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct hk *h = calloc(1, sizeof *h);
    long long gen = 0;
    wharf_options_int(opts, "gen", &gen);
    h->gen = (int)gen;
    h->nworkers = wharf_options_worker_count(opts);
    atomic_store(&hook_workers, (int)h->nworkers);
    *data = h;
    return h ? 0 : -1;
}

static void hk_fini(void *data)
{
    struct hk *h = data;
    record(EV_FINI, h->gen, -1);
    free(h);
}

static void hk_start(void *data, wharf_worker *w)
{
    struct hk *h = data;
    unsigned i = wharf_worker_index(w);
    if (wharf_current_worker() != w || i >= h->nworkers || h->timers[i])
        atomic_fetch_add(&hook_wrong_thread, 1);
    h->timers[i] = wharf_timer_start(NULL, 5, 5, hk_tick, h);
    record(EV_START, h->gen, (int)i);
}

static void hk_stop(void *data, wharf_worker *w)
{
    struct hk *h = data;
    unsigned i = wharf_worker_index(w);
    if (wharf_current_worker() != w || !h->timers[i])
        atomic_fetch_add(&hook_wrong_thread, 1);
    wharf_timer_stop(h->timers[i]);
    h->timers[i] = NULL;
    record(EV_STOP, h->gen, (int)i);
}

static void hk_open(wharf_conn *c)
{
    record(EV_OPEN, ((struct hk *)wharf_listener_data(c))->gen, (int)wharf_conn_worker_index(c));
}

static void hk_close(wharf_conn *c, enum wharf_close_reason reason)
{
    (void)reason;
    record(EV_CLOSE, ((struct hk *)wharf_listener_data(c))->gen, (int)wharf_conn_worker_index(c));
}

/* Answers a line with the worker's index. */
static size_t hk_data(wharf_conn *c, const void *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    if (!nl)
        return 0;
    char out[16];
    int n = snprintf(out, sizeof out, "%u\n", wharf_conn_worker_index(c));
    wharf_send(c, out, (size_t)n);
    return (size_t)(nl - (const char *)data) + 1;
}

static const struct wharf_handler hooks = {
    .abi_version = WHARF_ABI_VERSION, .name = "hooks", .init = hk_init, .fini = hk_fini,
    .on_open = hk_open, .on_data = hk_data, .on_close = hk_close,
    .on_worker_start = hk_start, .on_worker_stop = hk_stop,
};
/* The same callbacks described as ABI 2: the hooks are not part of it. */
static const struct wharf_handler hooks_v2 = {
    .abi_version = 2, .name = "hooks_v2", .init = hk_init, .fini = hk_fini,
    .on_open = hk_open, .on_data = hk_data, .on_close = hk_close,
    .on_worker_start = hk_start, .on_worker_stop = hk_stop,
};

/* ---- helpers ----------------------------------------------------------------- */

static wharf_server *start(const char *json)
{
    char err[1024];
    wharf_config *cfg = NULL;
    ck_assert_msg(wharf_config_from_json(json, "test.json", &cfg, err, sizeof err) == 0, "%s",
                  err);
    wharf_server *srv = wharf_server_new();
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(wharf_server_add_handler(srv, &keeper), 0);
    ck_assert_int_eq(wharf_server_add_handler(srv, &keeper2), 0);
    ck_assert_int_eq(wharf_server_add_handler(srv, &hooks), 0);
    ck_assert_int_eq(wharf_server_add_handler(srv, &hooks_v2), 0);
    ck_assert_msg(wharf_server_start(srv, cfg, err, sizeof err) == 0, "%s", err);
    wharf_config_free(cfg);
    return srv;
}

static int reload(wharf_server *srv, const char *json, char *err, size_t errlen)
{
    wharf_config *cfg = NULL;
    ck_assert_msg(wharf_config_from_json(json, "reload.json", &cfg, err, errlen) == 0, "%s",
                  err);
    int rc = wharf_server_reload(srv, cfg, err, errlen);
    wharf_config_free(cfg);
    return rc;
}

static void must_reload(wharf_server *srv, const char *json)
{
    char err[1024];
    ck_assert_msg(reload(srv, json, err, sizeof err) == 0, "%s", err);
}

static int connect_to(wharf_server *srv, const char *listener)
{
    int port = wharf_server_port(srv, listener);
    ck_assert_int_gt(port, 0);
    return tcp_connect("127.0.0.1", port);
}

/* Sends a line and returns the number the server answers. */
static int ask(int fd)
{
    send_all(fd, "?\n", 2);
    char buf[32] = "";
    for (size_t n = 0; n < sizeof buf - 1;) {
        ck_assert_uint_eq(recv_exact(fd, buf + n, 1, 5000), 1);
        if (buf[n++] == '\n')
            break;
    }
    return atoi(buf);
}

#define ONE(name, handler, extra) \
    "{\"workers\": 2, \"listeners\": [{\"name\": \"" name "\", \"port\": 0, \"handler\": \"" \
    handler "\"" extra "}]}"

/* ---- named state --------------------------------------------------------------- */

/* Each test counts from zero, also when the tests share one process
 * (CK_FORK=no, as under valgrind). */
static void reset_counts(void)
{
    atomic_store(&created, 0);
    atomic_store(&destroyed, 0);
}

START_TEST(state_kept_across_reload)
{
    wharf_server *srv = start(ONE("a", "keeper", ""));
    int old = connect_to(srv, "a");
    int id = ask(old);
    must_reload(srv, ONE("a", "keeper", ""));
    must_reload(srv, ONE("a", "keeper", ""));
    int fresh = connect_to(srv, "a");
    ck_assert_int_eq(ask(fresh), id);
    ck_assert_int_eq(ask(old), id);
    ck_assert_int_eq(atomic_load(&created), 1);
    ck_assert_int_eq(atomic_load(&destroyed), 0);
    close(old);
    close(fresh);
    wharf_server_free(srv);
    ck_assert_int_eq(atomic_load(&destroyed), 1);
}
END_TEST

START_TEST(state_not_given_to_another_listener_handler_or_tag)
{
    wharf_server *srv = start("{\"workers\": 2, \"listeners\": ["
                              "{\"name\": \"a\", \"port\": 0, \"handler\": \"keeper\"},"
                              "{\"name\": \"b\", \"port\": 0, \"handler\": \"keeper\"}]}");
    int fa = connect_to(srv, "a"), fb = connect_to(srv, "b");
    int a = ask(fa), b = ask(fb);
    ck_assert_int_ne(a, b); /* two listeners, two objects under one name */
    /* Renamed: "a" becomes "c". */
    must_reload(srv, ONE("c", "keeper", ""));
    int fc = connect_to(srv, "c");
    int c = ask(fc);
    ck_assert_int_ne(c, a);
    ck_assert_int_ne(c, b);
    /* Another handler on a listener named "c". */
    must_reload(srv, ONE("c", "keeper2", ""));
    int f2 = connect_to(srv, "c");
    int k2 = ask(f2);
    ck_assert_int_ne(k2, c);
    /* The same handler asking under another tag. */
    must_reload(srv, ONE("c", "keeper2", ", \"options\": {\"tag2\": true}"));
    int ft = connect_to(srv, "c");
    ck_assert_int_ne(ask(ft), k2);
    ck_assert_int_eq(atomic_load(&created), 5);
    /* The old connections still see their own objects. */
    ck_assert_int_eq(ask(fa), a);
    ck_assert_int_eq(ask(fc), c);
    close(fa);
    close(fb);
    close(fc);
    close(f2);
    close(ft);
    wharf_server_free(srv);
    ck_assert_int_eq(atomic_load(&destroyed), 5);
}
END_TEST

START_TEST(failed_reload_drops_only_its_own)
{
    wharf_server *srv = start(ONE("a", "keeper", ""));
    int old = connect_to(srv, "a");
    int id = ask(old);
    char err[1024];
    ck_assert_int_eq(reload(srv,
                            "{\"workers\": 2, \"listeners\": ["
                            "{\"name\": \"a\", \"port\": 0, \"handler\": \"keeper\"},"
                            "{\"name\": \"n\", \"port\": 0, \"handler\": \"keeper\"},"
                            "{\"name\": \"x\", \"port\": 0, \"handler\": \"keeper\","
                            " \"options\": {\"fail\": true}}]}",
                            err, sizeof err),
                     -EINVAL);
    ck_assert_msg(strstr(err, "refused") != NULL, "%s", err);
    /* "n" and "x" made objects and dropped them; "a"'s is untouched. */
    ck_assert_int_eq(atomic_load(&created), 3);
    ck_assert_int_eq(atomic_load(&destroyed), 2);
    ck_assert_int_eq(ask(old), id);
    int fresh = connect_to(srv, "a");
    ck_assert_int_eq(ask(fresh), id);
    close(old);
    close(fresh);
    wharf_server_free(srv);
    ck_assert_int_eq(atomic_load(&destroyed), 3);
}
END_TEST

START_TEST(state_get_outside_init_refused)
{
    void *obj = NULL;
    ck_assert_int_eq(wharf_state_get(NULL, "x", &obj_type, NULL, &obj, NULL), -EINVAL);
    ck_assert_ptr_null(obj);
    ck_assert_int_eq(atomic_load(&created), 0);
}
END_TEST

/* Whether /proc/self/maps names `what`. */
static bool mapped(const char *what)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, what) != NULL;
    fclose(f);
    return found;
}

static bool a_unmapped(void *arg)
{
    (void)arg;
    return !mapped("mod_state_a.so");
}

START_TEST(destroy_runs_from_a_loaded_module)
{
    static _Atomic int gone;
    const char *mods = getenv("WHARF_TEST_MODULES");
    char json[2048];
    const char *fmt = "{\"workers\": 1, \"listeners\": [{\"name\": \"s\", \"port\": 0, "
                      "\"handler\": \"%s/mod_state_%s.so\", \"options\": {\"destroyed\": %llu}}]}";
    snprintf(json, sizeof json, fmt, mods ? mods : "tests/.libs", "a",
             (unsigned long long)(uintptr_t)&gone);
    wharf_server *srv = start(json);
    int old = connect_to(srv, "s");
    send_all(old, "?\n", 2);
    char buf[16] = "";
    ck_assert_uint_eq(recv_exact(old, buf, 4, 5000), 4);
    ck_assert_str_eq(buf, "A 1\n");
    snprintf(json, sizeof json, fmt, mods ? mods : "tests/.libs", "b",
             (unsigned long long)(uintptr_t)&gone);
    must_reload(srv, json);
    int fresh = connect_to(srv, "s");
    send_all(fresh, "?\n", 2);
    memset(buf, 0, sizeof buf);
    ck_assert_uint_eq(recv_exact(fresh, buf, 4, 5000), 4);
    ck_assert_str_eq(buf, "B 1\n"); /* B's code, A's object */
    /* The first generation goes with its last connection, and module A
     * with it: only B's destroy can run now. */
    close(old);
    ck_assert(wait_for(a_unmapped, NULL, 5000));
    ck_assert_int_eq(atomic_load(&gone), 0);
    close(fresh);
    wharf_server_free(srv);
    ck_assert_int_eq(atomic_load(&gone), 1);
}
END_TEST

/* ---- per-worker hooks ---------------------------------------------------------- */

/* Events of `kind` for generation gen on worker w (-1: any worker). */
static unsigned count(enum ev_kind kind, int gen, int w)
{
    pthread_mutex_lock(&events_lock);
    unsigned n = 0, total = atomic_load(&nevents);
    for (unsigned i = 0; i < total && i < MAX_EVENTS; i++)
        n += events[i].kind == kind && events[i].gen == gen && (w < 0 || events[i].worker == w);
    pthread_mutex_unlock(&events_lock);
    return n;
}

/* The position of the first (or last) event of kind/gen/worker, or -1. */
static int find(enum ev_kind kind, int gen, int w, bool last)
{
    int at = -1;
    pthread_mutex_lock(&events_lock);
    unsigned total = atomic_load(&nevents);
    for (unsigned i = 0; i < total && i < MAX_EVENTS; i++)
        if (events[i].kind == kind && events[i].gen == gen && (w < 0 || events[i].worker == w)) {
            at = (int)i;
            if (!last)
                break;
        }
    pthread_mutex_unlock(&events_lock);
    return at;
}

struct want {
    enum ev_kind kind;
    int gen, w;
    unsigned n;
};

static bool has(void *arg)
{
    const struct want *x = arg;
    return count(x->kind, x->gen, x->w) >= x->n;
}

#define HOOKS(gen) \
    "{\"workers\": 4, \"listeners\": [{\"name\": \"h\", \"port\": 0, \"handler\": \"hooks\", " \
    "\"options\": {\"gen\": " #gen "}}]}"

START_TEST(hooks_per_worker_around_connections)
{
    wharf_server *srv = start(HOOKS(1));
    ck_assert_int_eq(atomic_load(&hook_workers), 4);
    for (int w = 0; w < 4; w++)
        ck_assert_uint_eq(count(EV_START, 1, w), 1); /* done before start returned */
    int fds[8], on[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = connect_to(srv, "h");
        on[i] = ask(fds[i]);
        ck_assert(find(EV_START, 1, on[i], false) < find(EV_OPEN, 1, on[i], false));
    }
    /* Keep connection 0 open across the reload; its worker keeps serving
     * generation 1 until it closes. */
    int keep = on[0];
    for (int i = 1; i < 8; i++)
        close(fds[i]);
    for (int i = 1; i < 8; i++)
        if (on[i] != keep) {
            struct want x = {EV_CLOSE, 1, on[i], 0};
            for (int k = 1; k < 8; k++)
                x.n += on[k] == on[i];
            ck_assert(wait_for(has, &x, 5000));
        }
    must_reload(srv, HOOKS(2));
    for (int w = 0; w < 4; w++) {
        ck_assert_uint_eq(count(EV_START, 2, w), 1);
        ck_assert_uint_eq(count(EV_STOP, 1, w), w == keep ? 0u : 1u);
    }
    ck_assert_uint_eq(count(EV_FINI, 1, -1), 0);
    ck_assert_int_eq(ask(fds[0]), keep);
    int n1 = (int)count(EV_CLOSE, 1, keep);
    close(fds[0]);
    struct want stop = {EV_STOP, 1, keep, 1}, fini = {EV_FINI, 1, -1, 1};
    ck_assert(wait_for(has, &stop, 5000));
    ck_assert(wait_for(has, &fini, 5000));
    ck_assert_uint_eq(count(EV_CLOSE, 1, keep), (unsigned)n1 + 1);
    ck_assert(find(EV_CLOSE, 1, keep, true) < find(EV_STOP, 1, keep, false));
    ck_assert(find(EV_STOP, 1, -1, true) < find(EV_FINI, 1, -1, false));
    ck_assert_int_gt(atomic_load(&ticks), 0); /* the hooks' timers ran */
    wharf_server_free(srv);
    for (int w = 0; w < 4; w++) {
        ck_assert_uint_eq(count(EV_START, 2, w), 1);
        ck_assert_uint_eq(count(EV_STOP, 2, w), 1);
        ck_assert_uint_eq(count(EV_START, 1, w), 1);
        ck_assert_uint_eq(count(EV_STOP, 1, w), 1);
    }
    ck_assert(find(EV_STOP, 2, -1, true) < find(EV_FINI, 2, -1, false));
    ck_assert_int_eq(atomic_load(&hook_wrong_thread), 0);
    int t = atomic_load(&ticks);
    usleep(30000);
    ck_assert_int_eq(atomic_load(&ticks), t); /* every timer stopped */
}
END_TEST

START_TEST(abi_2_handler_gets_no_hooks)
{
    wharf_server *srv = start("{\"workers\": 2, \"listeners\": [{\"name\": \"h\", \"port\": 0, "
                              "\"handler\": \"hooks_v2\", \"options\": {\"gen\": 7}}]}");
    int fd = connect_to(srv, "h");
    ask(fd);
    close(fd);
    wharf_server_free(srv);
    ck_assert_uint_eq(count(EV_OPEN, 7, -1), 1);
    ck_assert_uint_eq(count(EV_START, 7, -1), 0);
    ck_assert_uint_eq(count(EV_STOP, 7, -1), 0);
    ck_assert_uint_eq(count(EV_FINI, 7, -1), 1);
}
END_TEST

static Suite *state_suite(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("state");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, reset_counts, NULL);
    tcase_add_test(tc, state_kept_across_reload);
    tcase_add_test(tc, state_not_given_to_another_listener_handler_or_tag);
    tcase_add_test(tc, failed_reload_drops_only_its_own);
    tcase_add_test(tc, state_get_outside_init_refused);
    tcase_add_test(tc, destroy_runs_from_a_loaded_module);
    suite_add_tcase(s, tc);
    TCase *hk = tcase_create("hooks");
    tcase_set_timeout(hk, 30);
    tcase_add_test(hk, hooks_per_worker_around_connections);
    tcase_add_test(hk, abi_2_handler_gets_no_hooks);
    suite_add_tcase(s, hk);
    return s;
}

int main(void)
{
    return check_run(state_suite());
}
