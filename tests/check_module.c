/*
 * check_module.c - tests for module.c, the handler-module loader, and for the
 * wharf_options_* accessors: one test per reason a load fails (not found,
 * not an ELF file, no descriptor, ABI mismatch, missing callback, refused
 * options, bad name), the search order (module_path, then
 * $WHARF_MODULE_PATH), loading by path, the options getters on real JSON,
 * and the shipped handlers' option checking and udp_echo's reflection guard.
 *
 * The test modules (mod_*.so) are found in $WHARF_TEST_MODULES and the
 * shipped handlers along $WHARF_MODULE_PATH, as Makefile.am's
 * AM_TESTS_ENVIRONMENT sets them.  Every test unloads what it loaded and
 * removes the files it made.
 */
#include "check_main.h"
#include "module.h"

#include <arpa/inet.h>
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ck_assert_err_has(err, needle) \
    ck_assert_msg(strstr((err), (needle)) != NULL, "error \"%s\" lacks \"%s\"", (err), (needle))

/* ---- helpers ------------------------------------------------------------- */

static const char *test_modules(void)
{
    const char *dir = getenv("WHARF_TEST_MODULES");
    ck_assert_msg(dir && *dir, "WHARF_TEST_MODULES is not set");
    return dir;
}

/* The first directory of $WHARF_MODULE_PATH that holds echo.so, in buf. */
static const char *handler_dir(char *buf, size_t len)
{
    const char *path = getenv("WHARF_MODULE_PATH");
    ck_assert_msg(path && *path, "WHARF_MODULE_PATH is not set");
    const char *p = path;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char probe[4096];
        snprintf(probe, sizeof probe, "%.*s/echo.so", (int)n, p);
        if (n > 0 && access(probe, F_OK) == 0) {
            snprintf(buf, len, "%.*s", (int)n, p);
            return buf;
        }
        if (!end)
            break;
        p = end + 1;
    }
    ck_abort_msg("no echo.so along WHARF_MODULE_PATH=%s", path);
    return NULL;
}

/* A scratch directory holding at most a few files, removed by tmp_remove. */
struct tmpdir {
    char path[64];
};

static void tmp_make(struct tmpdir *t)
{
    snprintf(t->path, sizeof t->path, "/tmp/check_module.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->path));
}

static void tmp_file_path(const struct tmpdir *t, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", t->path, name);
}

static void tmp_write(const struct tmpdir *t, const char *name, const void *data, size_t len)
{
    char path[256];
    tmp_file_path(t, name, path, sizeof path);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void tmp_copy(const struct tmpdir *t, const char *name, const char *from)
{
    FILE *f = fopen(from, "rb");
    ck_assert_msg(f != NULL, "open %s: %s", from, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_gt(size, 0);
    rewind(f);
    char *data = malloc((size_t)size);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    tmp_write(t, name, data, (size_t)size);
    free(data);
}

static void tmp_remove(struct tmpdir *t, const char *const *names)
{
    for (; *names; names++) {
        char path[256];
        tmp_file_path(t, *names, path, sizeof path);
        unlink(path);
    }
    ck_assert_int_eq(rmdir(t->path), 0);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Loads `name` along the test modules and the handler directories. */
static struct module *load_ok(const char *name, enum config_protocol protocol)
{
    char hdir[2048], path[4096], err[1024] = "";
    snprintf(path, sizeof path, "%s:%s", test_modules(), handler_dir(hdir, sizeof hdir));
    struct module *m = NULL;
    ck_assert_msg(module_load(name, path, protocol, NULL, 0, &m, err, sizeof err) == 0,
                  "load %s: %s", name, err);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(m->dl);
    ck_assert_ptr_nonnull(m->handler);
    ck_assert_ptr_nonnull(m->path);
    return m;
}

/* Expects loading `name` along `path` to fail; returns the message in err. */
static void load_fails(const char *name, const char *path, enum config_protocol protocol,
                       char *err, size_t errlen)
{
    struct module *m = (struct module *)1;
    err[0] = '\0';
    int rc = module_load(name, path, protocol, NULL, 0, &m, err, errlen);
    /* -ENOENT when no file was there, -EINVAL for a file refused */
    ck_assert_msg(rc == -ENOENT || rc == -EINVAL, "%d: %s", rc, err);
    ck_assert_ptr_null(m);
    ck_assert_msg(err[0] != '\0', "empty error for %s", name);
    ck_assert_msg(strchr(err, '\n') == NULL, "error is not one line: %s", err);
}

/* Runs m's init on the JSON text `options`; returns module_init_listener's result. */
static int init_with(const struct module *m, const char *options, void **data, char *err,
                     size_t errlen)
{
    json_error_t jerr;
    json_t *o = json_loads(options, JSON_DECODE_ANY, &jerr);
    ck_assert_msg(o != NULL, "bad test JSON %s: %s", options, jerr.text);
    err[0] = '\0';
    int rc = module_init_listener(m, o, NULL, data, err, errlen);
    json_decref(o);
    return rc;
}

/* ---- load failures, one per reason ----------------------------------------- */

START_TEST(load_not_found_lists_searched_paths)
{
    struct tmpdir a, b;
    tmp_make(&a);
    tmp_make(&b);
    char path[256], err[1024], want[512];
    snprintf(path, sizeof path, "%s:%s/", a.path, b.path); /* trailing '/' is fine */
    load_fails("nope", path, CONFIG_TCP, err, sizeof err);
    snprintf(want, sizeof want, "handler \"nope\": not found (searched %s/nope.so, %s/nope.so",
             a.path, b.path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got: %s", err);
    ck_assert_msg(ends_with(err, ")"), "got: %s", err);
    static const char *const none[] = {NULL};
    tmp_remove(&a, none);
    tmp_remove(&b, none);
}
END_TEST

START_TEST(load_not_found_message_fits_small_buffer)
{
    /* Many long directories: the list is cut with ", ...)" within errlen. */
    char path[4096] = "";
    for (int i = 0; i < 40; i++) {
        char dir[80];
        snprintf(dir, sizeof dir, "%s/no/such/directory/number/%02d", i ? ":" : "", i);
        strcat(path, dir);
    }
    char err[200];
    memset(err, 'X', sizeof err);
    load_fails("nope", path, CONFIG_TCP, err, sizeof err);
    ck_assert_uint_lt(strlen(err), sizeof err);
    static const char head[] = "handler \"nope\": not found (searched /no/such/";
    ck_assert_msg(strncmp(err, head, strlen(head)) == 0, "got: %s", err);
    ck_assert_msg(ends_with(err, ", ...)"), "got: %s", err);

    /* A tiny buffer still gets a NUL-terminated prefix of the message. */
    char tiny[8];
    load_fails("nope", path, CONFIG_TCP, tiny, sizeof tiny);
    ck_assert_str_eq(tiny, "handler");
}
END_TEST

START_TEST(load_explicit_path_not_found)
{
    char err[512];
    load_fails("/nonexistent/dir/x.so", NULL, CONFIG_TCP, err, sizeof err);
    ck_assert_err_has(err, "/nonexistent/dir/x.so: not found");
}
END_TEST

START_TEST(load_not_elf_is_not_a_wharf_module)
{
    struct tmpdir t;
    tmp_make(&t);
    static const char junk[] = "this is not an ELF shared object\n";
    tmp_write(&t, "junk.so", junk, sizeof junk - 1);
    char err[1024], want[256];
    load_fails("junk", t.path, CONFIG_TCP, err, sizeof err);
    snprintf(want, sizeof want, "%s/junk.so: not a wharf module: ", t.path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got: %s", err);
    ck_assert_uint_gt(strlen(err), strlen(want)); /* dlopen's reason follows */
    static const char *const files[] = {"junk.so", NULL};
    tmp_remove(&t, files);
}
END_TEST

/* A truncated copy of a real handler (an installer's half-written file
 * renamed into place) is refused with a message naming the file, both as
 * a change of a loaded module (a reload) and as a first load; it never
 * reaches dlopen, where touching the missing pages raised SIGBUS. */
START_TEST(load_truncated_module_is_refused)
{
    struct tmpdir t;
    tmp_make(&t);
    char hdir[2048], from[4096], path[4096], err[1024], want[4200];
    snprintf(from, sizeof from, "%s/echo.so", handler_dir(hdir, sizeof hdir));
    tmp_copy(&t, "echo.so", from);
    tmp_file_path(&t, "echo.so", path, sizeof path);
    struct module *m = NULL;
    ck_assert_msg(module_load(path, NULL, CONFIG_TCP, NULL, 0, &m, err, sizeof err) == 0, "%s",
                  err);
    struct stat st;
    ck_assert_int_eq(stat(from, &st), 0);
    FILE *f = fopen(from, "rb");
    ck_assert_ptr_nonnull(f);
    char *data = malloc((size_t)st.st_size);
    ck_assert_uint_eq(fread(data, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    const size_t cuts[] = {(size_t)st.st_size / 3, (size_t)st.st_size / 2,
                           (size_t)st.st_size * 9 / 10, (size_t)st.st_size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char tmp[4096];
        tmp_write(&t, "echo.so.tmp", data, cuts[i]);
        tmp_file_path(&t, "echo.so.tmp", tmp, sizeof tmp);
        ck_assert_int_eq(rename(tmp, path), 0);
        struct module *bad = (struct module *)1;
        ck_assert_int_eq(module_load(path, NULL, CONFIG_TCP, NULL, 0, &bad, err, sizeof err),
                         -EINVAL);
        ck_assert_ptr_null(bad);
        snprintf(want, sizeof want, "%s: not a wharf module: truncated", path);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "cut at %zu: %s", cuts[i], err);
    }
    /* The module loaded before is still fine, and so is a whole copy. */
    ck_assert_str_eq(m->handler->name, "echo");
    module_unload(m);
    tmp_copy(&t, "echo.so", from);
    ck_assert_msg(module_load(path, NULL, CONFIG_TCP, NULL, 0, &m, err, sizeof err) == 0, "%s",
                  err);
    module_unload(m);
    free(data);
    static const char *const files[] = {"echo.so", NULL};
    tmp_remove(&t, files);
}
END_TEST

START_TEST(load_first_existing_file_decides)
{
    /* A broken echo.so earlier in the path is reported, not skipped over. */
    struct tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "echo.so", "junk", 4);
    char hdir[2048], path[4096], err[1024], want[256];
    snprintf(path, sizeof path, "%s:%s", t.path, handler_dir(hdir, sizeof hdir));
    load_fails("echo", path, CONFIG_TCP, err, sizeof err);
    snprintf(want, sizeof want, "%s/echo.so: not a wharf module: ", t.path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got: %s", err);
    static const char *const files[] = {"echo.so", NULL};
    tmp_remove(&t, files);
}
END_TEST

START_TEST(load_no_symbol)
{
    char err[1024], want[512];
    load_fails("mod_no_symbol", test_modules(), CONFIG_TCP, err, sizeof err);
    snprintf(want, sizeof want,
             "%s/mod_no_symbol.so: not a wharf module: no \"wharf_handler\" symbol",
             test_modules());
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(load_abi_mismatch)
{
    char err[1024], want[512];
    load_fails("mod_bad_abi", test_modules(), CONFIG_TCP, err, sizeof err);
    snprintf(want, sizeof want, "%s/mod_bad_abi.so: ABI version 99, this wharfd needs 3 (or 1 to 2)",
             test_modules());
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(load_refuses_symbols_that_are_not_descriptors)
{
    char err[1024], want[512];
    load_fails("mod_sym_func", test_modules(), CONFIG_TCP, err, sizeof err);
    snprintf(want, sizeof want,
             "%s/mod_sym_func.so: not a wharf module: \"wharf_handler\" is not a data object "
             "(a function)", test_modules());
    ck_assert_str_eq(err, want);
    load_fails("mod_sym_small", test_modules(), CONFIG_TCP, err, sizeof err);
    snprintf(want, sizeof want,
             "%s/mod_sym_small.so: not a wharf module: \"wharf_handler\" is 16 bytes, a "
             "version 2 descriptor is %zu", test_modules(),
             offsetof(struct wharf_handler, on_worker_start));
    ck_assert_str_eq(err, want);
    load_fails("mod_sym_int", test_modules(), CONFIG_TCP, err, sizeof err);
    snprintf(want, sizeof want,
             "%s/mod_sym_int.so: not a wharf module: \"wharf_handler\" is 4 bytes, a "
             "version 2 descriptor is %zu", test_modules(),
             offsetof(struct wharf_handler, on_worker_start));
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(load_abi_version_1_module)
{
    struct module *m = load_ok("mod_v1", CONFIG_TCP);
    ck_assert_uint_eq(m->handler->abi_version, 1);
    ck_assert_str_eq(m->handler->name, "v1");
    ck_assert_ptr_nonnull(m->handler->on_data);
    ck_assert_ptr_null(m->handler->on_eof);
    ck_assert_ptr_null(m->handler->on_shutdown);
    ck_assert_ptr_null(m->handler->on_stop);
    module_unload(m);
}
END_TEST

/* Copies src to dst with mode. */
static void copy_mode(const char *src, const char *dst, mode_t mode)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    ck_assert(in && out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    chmod(dst, mode);
}

START_TEST(root_refuses_modules_others_can_write)
{
    if (geteuid() != 0)
        return; /* the check only applies to root */
    char hdir[2048], src[4096], dir[] = "/tmp/wharf-insecure-XXXXXX", path[4200], err[1024];
    snprintf(src, sizeof src, "%s/echo.so", handler_dir(hdir, sizeof hdir));
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/echo.so", dir);
    struct module *m = NULL;
    copy_mode(src, path, 0666);
    ck_assert_int_eq(module_load(path, NULL, CONFIG_TCP, NULL, 0, &m, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "refused: the file is writable by a user other than root"), "%s", err);
    chmod(path, 0755);
    chmod(dir, 0777);
    ck_assert_int_eq(module_load(path, NULL, CONFIG_TCP, NULL, 0, &m, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "refused: its directory is writable"), "%s", err);
    module_set_insecure(true);
    ck_assert_msg(module_load(path, NULL, CONFIG_TCP, NULL, 0, &m, err, sizeof err) == 0, "%s", err);
    module_unload(m);
    module_set_insecure(false);
    chmod(dir, 0700);
    ck_assert_msg(module_load(path, NULL, CONFIG_TCP, NULL, 0, &m, err, sizeof err) == 0, "%s", err);
    module_unload(m);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* A symlink in a safe directory to a module in a directory anyone may
 * write: the target's directory is the one that counts. */
START_TEST(root_checks_the_directory_of_a_symlinks_target)
{
    if (geteuid() != 0)
        return; /* the check only applies to root */
    char hdir[2048], src[4096], open_dir[] = "/tmp/wharf-open-XXXXXX",
         safe[] = "/tmp/wharf-safe-XXXXXX", target[4200], link[4200], err[1024];
    snprintf(src, sizeof src, "%s/echo.so", handler_dir(hdir, sizeof hdir));
    ck_assert_ptr_nonnull(mkdtemp(open_dir));
    ck_assert_ptr_nonnull(mkdtemp(safe));
    snprintf(target, sizeof target, "%s/echo.so", open_dir);
    snprintf(link, sizeof link, "%s/echo.so", safe);
    copy_mode(src, target, 0644);
    chmod(open_dir, 0777);
    chmod(safe, 0755);
    ck_assert_int_eq(symlink(target, link), 0);
    struct module *m = NULL;
    ck_assert_int_eq(module_load(link, NULL, CONFIG_TCP, NULL, 0, &m, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "refused: its directory is writable"), "%s", err);
    chmod(open_dir, 0755);
    ck_assert_msg(module_load(link, NULL, CONFIG_TCP, NULL, 0, &m, err, sizeof err) == 0, "%s", err);
    module_unload(m);
    unlink(link);
    unlink(target);
    rmdir(safe);
    rmdir(open_dir);
}
END_TEST

START_TEST(load_handler_written_in_cxx)
{
    struct module *m = load_ok("mod_cxx", CONFIG_TCP);
    ck_assert_str_eq(m->handler->name, "cxx");
    ck_assert_ptr_nonnull(m->handler->on_data);
    module_unload(m);
}
END_TEST

START_TEST(load_no_callback_for_protocol)
{
    char err[1024], want[512];
    load_fails("mod_udp_only", test_modules(), CONFIG_TCP, err, sizeof err);
    snprintf(want, sizeof want,
             "%s/mod_udp_only.so: handler \"udp_only\" has no on_data callback, "
             "needed for a tcp listener",
             test_modules());
    ck_assert_str_eq(err, want);

    char hdir[2048];
    load_fails("echo", handler_dir(hdir, sizeof hdir), CONFIG_UDP, err, sizeof err);
    ck_assert_err_has(err, "/echo.so: handler \"echo\" has no on_datagram callback, "
                           "needed for a udp listener");

    load_fails("udp_echo", hdir, CONFIG_TCP, err, sizeof err);
    ck_assert_err_has(err, "/udp_echo.so: handler \"udp_echo\" has no on_data callback");
}
END_TEST

START_TEST(init_refused_names_handler_message)
{
    struct module *m = load_ok("mod_refuse", CONFIG_TCP);
    ck_assert_str_eq(m->handler->name, "refuse");
    void *data = (void *)1;
    char err[512];
    ck_assert_int_eq(init_with(m, "{}", &data, err, sizeof err), -1);
    ck_assert_str_eq(err, "handler \"refuse\" refused its options: mod_refuse says no");
    ck_assert_ptr_null(data);
    module_unload(m);
}
END_TEST

START_TEST(load_bad_name)
{
    static const char *const bad[] = {"", "ec ho", "a;b", "x$y", "tab\t", "*", "é"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512], want[128];
        load_fails(bad[i], test_modules(), CONFIG_TCP, err, sizeof err);
        snprintf(want, sizeof want, "handler \"%s\": invalid name", bad[i]);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got: %s", err);
    }
}
END_TEST

/* ---- successful loads and the search order --------------------------------- */

START_TEST(load_echo_by_name_for_tcp)
{
    struct module *m = load_ok("echo", CONFIG_TCP);
    ck_assert_str_eq(m->handler->name, "echo");
    ck_assert_uint_eq(m->handler->abi_version, WHARF_ABI_VERSION);
    ck_assert_msg(ends_with(m->path, "/echo.so"), "path %s", m->path);
    ck_assert_ptr_nonnull(m->handler->on_data);
    void *data = NULL;
    char err[512];
    ck_assert_int_eq(init_with(m, "{}", &data, err, sizeof err), 0);
    ck_assert_ptr_nonnull(data);
    m->handler->fini(data);
    module_unload(m);
}
END_TEST

START_TEST(load_udp_echo_by_name_for_udp)
{
    struct module *m = load_ok("udp_echo", CONFIG_UDP);
    ck_assert_str_eq(m->handler->name, "udp_echo");
    ck_assert_msg(ends_with(m->path, "/udp_echo.so"), "path %s", m->path);
    ck_assert_ptr_nonnull(m->handler->on_datagram);
    module_unload(m);
}
END_TEST

START_TEST(load_by_explicit_path)
{
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/mod_counting.so", test_modules());
    struct module *m = NULL;
    /* module_path plays no part when the name is a path. */
    ck_assert_msg(module_load(path, "/nowhere", CONFIG_TCP, NULL, 0, &m, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_str_eq(m->handler->name, "counting");
    ck_assert_str_eq(m->path, path);
    module_unload(m);

    /* The same module serves a UDP listener too. */
    ck_assert_msg(module_load(path, NULL, CONFIG_UDP, NULL, 0, &m, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(m->handler->name, "counting");
    module_unload(m);
}
END_TEST

START_TEST(module_path_earlier_dir_wins)
{
    /* A copy of mod_counting.so named echo.so, in a directory of its own. */
    struct tmpdir t;
    tmp_make(&t);
    char from[4096], hdir[2048], path[4096], err[1024];
    snprintf(from, sizeof from, "%s/mod_counting.so", test_modules());
    tmp_copy(&t, "echo.so", from);
    handler_dir(hdir, sizeof hdir);
    struct module *m = NULL;

    snprintf(path, sizeof path, "%s:%s", t.path, hdir);
    ck_assert_msg(module_load("echo", path, CONFIG_TCP, NULL, 0, &m, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(m->handler->name, "counting");
    module_unload(m);

    snprintf(path, sizeof path, "%s:%s", hdir, t.path);
    ck_assert_msg(module_load("echo", path, CONFIG_TCP, NULL, 0, &m, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(m->handler->name, "echo");
    module_unload(m);

    /* module_path comes before $WHARF_MODULE_PATH. */
    char *saved = getenv("WHARF_MODULE_PATH") ? strdup(getenv("WHARF_MODULE_PATH")) : NULL;
    ck_assert_int_eq(setenv("WHARF_MODULE_PATH", hdir, 1), 0);
    ck_assert_msg(module_load("echo", t.path, CONFIG_TCP, NULL, 0, &m, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(m->handler->name, "counting");
    module_unload(m);
    if (saved)
        setenv("WHARF_MODULE_PATH", saved, 1);
    else
        unsetenv("WHARF_MODULE_PATH");
    free(saved);

    static const char *const files[] = {"echo.so", NULL};
    tmp_remove(&t, files);
}
END_TEST

START_TEST(env_module_path_used_without_module_path)
{
    char *saved = getenv("WHARF_MODULE_PATH") ? strdup(getenv("WHARF_MODULE_PATH")) : NULL;
    char env[4096], want[4096], err[1024];
    snprintf(env, sizeof env, "/nowhere::%s", test_modules()); /* empty entries skipped */
    ck_assert_int_eq(setenv("WHARF_MODULE_PATH", env, 1), 0);

    struct module *m = NULL;
    ck_assert_msg(module_load("mod_udp_only", NULL, CONFIG_UDP, NULL, 0, &m, err, sizeof err) == 0, "%s",
                  err);
    snprintf(want, sizeof want, "%s/mod_udp_only.so", test_modules());
    ck_assert_str_eq(m->path, want);
    module_unload(m);

    /* An empty module_path is the same as none. */
    ck_assert_msg(module_load("mod_udp_only", "", CONFIG_UDP, NULL, 0, &m, err, sizeof err) == 0, "%s",
                  err);
    module_unload(m);

    /* A miss lists the environment's directories after module_path's. */
    load_fails("nope", "/first", CONFIG_UDP, err, sizeof err);
    ck_assert_err_has(err, "(searched /first/nope.so, /nowhere/nope.so, ");

    if (saved)
        setenv("WHARF_MODULE_PATH", saved, 1);
    else
        unsetenv("WHARF_MODULE_PATH");
    free(saved);
    module_unload(NULL); /* harmless */
}
END_TEST

START_TEST(init_without_init_callback)
{
    struct module *m = load_ok("mod_udp_only", CONFIG_UDP);
    void *data = (void *)1;
    char err[64];
    ck_assert_int_eq(module_init_listener(m, NULL, NULL, &data, err, sizeof err), 0);
    ck_assert_ptr_null(data);
    module_unload(m);
}
END_TEST

/* ---- wharf_options_* -------------------------------------------------------- */

/*
 * A handler that lives in this test program: its init runs `probe` on the
 * options it is given, so the getters see exactly what a module would.
 */
static void (*probe)(const wharf_options *opts);

static int probe_init(const wharf_options *opts, void **listener_data, char *err, size_t errlen)
{
    (void)listener_data;
    (void)err;
    (void)errlen;
    probe(opts);
    return 0;
}

static const struct wharf_handler probe_handler = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "probe",
    .init = probe_init,
};

static void run_probe(const char *options, void (*fn)(const wharf_options *))
{
    struct module m = {.handler = &probe_handler};
    void *data;
    char err[256];
    probe = fn;
    if (options) {
        ck_assert_int_eq(init_with(&m, options, &data, err, sizeof err), 0);
    } else {
        ck_assert_int_eq(module_init_listener(&m, NULL, NULL, &data, err, sizeof err), 0);
    }
}

static const char options_json[] =
    "{\"name\": \"x\", \"n\": 42, \"neg\": -7, \"big\": 9007199254740993, \"real\": 1.5,"
    " \"on\": true, \"off\": false, \"nul\": null, \"ports\": [7, 19, 65535],"
    " \"empty\": [], \"mixed\": [1, \"2\"], \"reals\": [1.0],"
    " \"obj\": {\"k\": \"v\", \"words\": [\"a\", \"bc\"], \"inner\": {\"deep\": 1}}}";

static void probe_string(const wharf_options *o)
{
    const char *s = "untouched";
    ck_assert_int_eq(wharf_options_string(o, "absent", &s), -ENOENT);
    ck_assert_str_eq(s, "untouched");
    ck_assert_int_eq(wharf_options_string(o, "n", &s), -EINVAL);
    ck_assert_int_eq(wharf_options_string(o, "nul", &s), -EINVAL);
    ck_assert_str_eq(s, "untouched");
    ck_assert_int_eq(wharf_options_string(o, "name", &s), 0);
    ck_assert_str_eq(s, "x");
}

static void probe_int(const wharf_options *o)
{
    long long v = 5;
    ck_assert_int_eq(wharf_options_int(o, "absent", &v), -ENOENT);
    ck_assert_int_eq(wharf_options_int(o, "real", &v), -EINVAL);
    ck_assert_int_eq(wharf_options_int(o, "name", &v), -EINVAL);
    ck_assert_int_eq(wharf_options_int(o, "on", &v), -EINVAL);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(wharf_options_int(o, "n", &v), 0);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(wharf_options_int(o, "neg", &v), 0);
    ck_assert_int_eq(v, -7);
    ck_assert_int_eq(wharf_options_int(o, "big", &v), 0);
    ck_assert_int_eq(v, 9007199254740993LL);
}

static void probe_bool(const wharf_options *o)
{
    bool b = true;
    ck_assert_int_eq(wharf_options_bool(o, "absent", &b), -ENOENT);
    ck_assert_int_eq(wharf_options_bool(o, "n", &b), -EINVAL);
    ck_assert_int_eq(wharf_options_bool(o, "nul", &b), -EINVAL);
    ck_assert(b);
    ck_assert_int_eq(wharf_options_bool(o, "off", &b), 0);
    ck_assert(!b);
    ck_assert_int_eq(wharf_options_bool(o, "on", &b), 0);
    ck_assert(b);
}

static void probe_int_array(const wharf_options *o)
{
    long long v[4] = {-1, -1, -1, -1};
    size_t n = 99;
    ck_assert_int_eq(wharf_options_int_array(o, "absent", v, 4, &n), -ENOENT);
    ck_assert_int_eq(wharf_options_int_array(o, "n", v, 4, &n), -EINVAL);
    ck_assert_int_eq(wharf_options_int_array(o, "mixed", v, 4, &n), -EINVAL);
    ck_assert_int_eq(wharf_options_int_array(o, "reals", v, 4, &n), -EINVAL);
    ck_assert_int_eq(wharf_options_int_array(o, "ports", v, 2, &n), -EINVAL); /* > max */
    /* A call that failed has no effect. */
    ck_assert_uint_eq(n, 99);
    ck_assert_int_eq(v[0], -1);
    ck_assert_int_eq(v[1], -1);

    ck_assert_int_eq(wharf_options_int_array(o, "ports", v, 3, &n), 0); /* exactly max */
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(v[0], 7);
    ck_assert_int_eq(v[1], 19);
    ck_assert_int_eq(v[2], 65535);
    ck_assert_int_eq(v[3], -1);

    ck_assert_int_eq(wharf_options_int_array(o, "empty", v, 4, &n), 0);
    ck_assert_uint_eq(n, 0);
}

/* wharf_options_object: a view read with the same calls (freed by wharf
 * after init: valgrind checks it); wharf_options_string_array. */
static void probe_object_and_string_array(const wharf_options *o)
{
    const wharf_options *sub = (const void *)1, *deeper = NULL;
    ck_assert_int_eq(wharf_options_object(o, "absent", &sub), -ENOENT);
    ck_assert_int_eq(wharf_options_object(o, "ports", &sub), -EINVAL);
    ck_assert_int_eq(wharf_options_object(o, "name", &sub), -EINVAL);
    ck_assert_ptr_eq(sub, (const void *)1);
    ck_assert_int_eq(wharf_options_object(o, "obj", &sub), 0);
    const char *s = NULL;
    ck_assert_int_eq(wharf_options_string(sub, "k", &s), 0);
    ck_assert_str_eq(s, "v");
    ck_assert_int_eq(wharf_options_string(sub, "name", &s), -ENOENT); /* not the parent's */
    ck_assert_int_eq(wharf_options_object(sub, "inner", &deeper), 0);
    long long v = 0;
    ck_assert_int_eq(wharf_options_int(deeper, "deep", &v), 0);
    ck_assert_int_eq(v, 1);
    static const char *const keys[] = {"k", "words", NULL};
    char err[64] = "";
    ck_assert_int_eq(wharf_options_check_keys(sub, keys, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "unknown option \"inner\"");

    const char *w[3] = {"x", "x", "x"};
    size_t n = 99;
    ck_assert_int_eq(wharf_options_string_array(sub, "absent", w, 3, &n), -ENOENT);
    ck_assert_int_eq(wharf_options_string_array(sub, "words", w, 1, &n), -EINVAL); /* > max */
    ck_assert_int_eq(wharf_options_string_array(o, "mixed", w, 3, &n), -EINVAL);
    ck_assert_int_eq(wharf_options_string_array(o, "ports", w, 3, &n), -EINVAL);
    ck_assert_int_eq(wharf_options_string_array(o, "name", w, 3, &n), -EINVAL);
    ck_assert_uint_eq(n, 99); /* a call that failed has no effect */
    ck_assert_str_eq(w[0], "x");
    ck_assert_int_eq(wharf_options_string_array(sub, "words", w, 2, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(w[0], "a");
    ck_assert_str_eq(w[1], "bc");
    ck_assert_str_eq(w[2], "x");
    ck_assert_int_eq(wharf_options_string_array(o, "empty", w, 2, &n), 0);
    ck_assert_uint_eq(n, 0);
}

static void probe_check_keys(const wharf_options *o)
{
    static const char *const all[] = {"name", "n", "neg", "big", "real", "on", "off", "nul",
                                      "ports", "empty", "mixed", "reals", "obj", NULL};
    static const char *const most[] = {"name", "n", "neg", "big", "real", "on", "off", "nul",
                                       "ports", "empty", "mixed", "reals", NULL};
    char err[64] = "";
    ck_assert_int_eq(wharf_options_check_keys(o, all, err, sizeof err), 0);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(wharf_options_check_keys(o, most, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "unknown option \"obj\"");
}

/* A NULL or non-object options value behaves as an empty object. */
static void probe_empty(const wharf_options *o)
{
    const char *s = "u";
    long long v = 1, arr[2];
    bool b = false;
    size_t n = 0;
    ck_assert_int_eq(wharf_options_string(o, "name", &s), -ENOENT);
    ck_assert_int_eq(wharf_options_int(o, "n", &v), -ENOENT);
    ck_assert_int_eq(wharf_options_bool(o, "on", &b), -ENOENT);
    ck_assert_int_eq(wharf_options_int_array(o, "ports", arr, 2, &n), -ENOENT);
    static const char *const none[] = {NULL};
    char err[64] = "";
    ck_assert_int_eq(wharf_options_check_keys(o, none, err, sizeof err), 0);
}

START_TEST(options_string)
{
    run_probe(options_json, probe_string);
}
END_TEST

START_TEST(options_int)
{
    run_probe(options_json, probe_int);
}
END_TEST

START_TEST(options_bool)
{
    run_probe(options_json, probe_bool);
}
END_TEST

START_TEST(options_int_array)
{
    run_probe(options_json, probe_int_array);
}
END_TEST

START_TEST(options_object_and_string_array)
{
    run_probe(options_json, probe_object_and_string_array);
}
END_TEST

START_TEST(options_check_keys)
{
    run_probe(options_json, probe_check_keys);
}
END_TEST

START_TEST(options_null_or_not_object_is_empty)
{
    run_probe(NULL, probe_empty);
    run_probe("{}", probe_empty);
    run_probe("[1, 2]", probe_empty);
    run_probe("\"text\"", probe_empty);
}
END_TEST

/* ---- the shipped handlers' options ----------------------------------------- */

START_TEST(echo_rejects_bad_options)
{
    struct module *m = load_ok("echo", CONFIG_TCP);
    void *data = (void *)1;
    char err[512];
    ck_assert_int_eq(init_with(m, "{\"prefix\": 5}", &data, err, sizeof err), -1);
    ck_assert_str_eq(err, "handler \"echo\" refused its options: prefix: expected a string");
    ck_assert_ptr_null(data);
    ck_assert_int_eq(init_with(m, "{\"bogus\": 1}", &data, err, sizeof err), -1);
    ck_assert_str_eq(err, "handler \"echo\" refused its options: unknown option \"bogus\"");
    ck_assert_ptr_null(data);

    ck_assert_int_eq(init_with(m, "{\"prefix\": \"Echo: \"}", &data, err, sizeof err), 0);
    ck_assert_ptr_nonnull(data);
    m->handler->fini(data);
    module_unload(m);
}
END_TEST

START_TEST(udp_echo_accepts_defaults_and_rejects_bad_options)
{
    struct module *m = load_ok("udp_echo", CONFIG_UDP);
    void *data = NULL;
    char err[512];
    ck_assert_int_eq(init_with(m, "{}", &data, err, sizeof err), 0);
    ck_assert_ptr_nonnull(data);
    m->handler->fini(data);
    ck_assert_int_eq(module_init_listener(m, NULL, NULL, &data, err, sizeof err), 0);
    m->handler->fini(data);
    ck_assert_int_eq(init_with(m,
                               "{\"guard\": true, \"block_ports\": [7, 65535],"
                               " \"allow_privileged_ports\": true, \"allow_broadcast\": false}",
                               &data, err, sizeof err),
                     0);
    m->handler->fini(data);

    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"nope\": true}", "unknown option \"nope\""},
        {"{\"guard\": 1}", "guard: expected true or false"},
        {"{\"allow_broadcast\": \"yes\"}", "allow_broadcast: expected true or false"},
        {"{\"allow_privileged_ports\": null}", "allow_privileged_ports: expected true or false"},
        {"{\"block_ports\": 7}", "block_ports: expected an array"},
        {"{\"block_ports\": [7, \"19\"]}", "block_ports: expected an array"},
        {"{\"block_ports\": [7, 70000]}", "block_ports[1]: 70000 is not a port number"},
        {"{\"block_ports\": [0]}", "block_ports[0]: 0 is not a port number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        data = (void *)1;
        ck_assert_int_eq(init_with(m, bad[i].json, &data, err, sizeof err), -1);
        ck_assert_msg(strncmp(err, "handler \"udp_echo\" refused its options: ", 40) == 0,
                      "%s: %s", bad[i].json, err);
        ck_assert_err_has(err, bad[i].msg);
        ck_assert_ptr_null(data);
    }
    module_unload(m);
}
END_TEST

/* ---- udp_echo's reflection guard --------------------------------------------- */

typedef bool (*guard_fn)(const void *, const struct sockaddr *, socklen_t);

static struct sockaddr_storage v4(const char *addr, unsigned port, socklen_t *len)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
    *len = sizeof *sin;
    return ss;
}

static struct sockaddr_storage v6(const char *addr, unsigned port, socklen_t *len)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET6, addr, &sin6->sin6_addr), 1);
    *len = sizeof *sin6;
    return ss;
}

/* Does the guard, configured by `options`, answer addr:port? */
static bool guard_answers(const char *options, const char *addr, unsigned port)
{
    struct module *m = load_ok("udp_echo", CONFIG_UDP);
    guard_fn allows = (guard_fn)dlsym(m->dl, "udp_echo_guard_allows");
    ck_assert_ptr_nonnull(allows);
    void *data = NULL;
    char err[512];
    ck_assert_msg(init_with(m, options, &data, err, sizeof err) == 0, "%s", err);
    socklen_t len;
    struct sockaddr_storage ss = strchr(addr, ':') ? v6(addr, port, &len) : v4(addr, port, &len);
    bool ok = allows(data, (const struct sockaddr *)&ss, len);
    m->handler->fini(data);
    module_unload(m);
    return ok;
}

START_TEST(udp_guard_defaults)
{
    /* Ordinary clients on ephemeral ports are answered. */
    ck_assert(guard_answers("{}", "127.0.0.1", 40000));
    ck_assert(guard_answers("{}", "192.0.2.1", 1024));
    ck_assert(guard_answers("{}", "::1", 40000));
    ck_assert(guard_answers("{}", "::ffff:127.0.0.1", 40000));
    /* Echo-like services and privileged ports are not. */
    static const unsigned blocked[] = {7, 13, 17, 19, 37, 53, 123, 1023, 0};
    for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++) {
        ck_assert_msg(!guard_answers("{}", "127.0.0.1", blocked[i]), "port %u", blocked[i]);
        ck_assert_msg(!guard_answers("{}", "::1", blocked[i]), "port %u", blocked[i]);
    }
    /* Nor broadcast, multicast or unspecified sources, in any spelling. */
    static const char *const bad[] = {
        "0.0.0.0",         "255.255.255.255",         "224.0.0.1",
        "239.255.255.250", "::",                      "ff02::1",
        "ff05::1:3",       "::ffff:255.255.255.255",  "::ffff:224.0.0.251",
        "::ffff:0.0.0.0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!guard_answers("{}", bad[i], 40000), "source %s", bad[i]);
}
END_TEST

START_TEST(udp_guard_options)
{
    /* allow_privileged_ports opens ports below 1024 but not the block list. */
    ck_assert(guard_answers("{\"allow_privileged_ports\": true}", "127.0.0.1", 1000));
    ck_assert(guard_answers("{\"allow_privileged_ports\": true}", "127.0.0.1", 53));
    ck_assert(!guard_answers("{\"allow_privileged_ports\": true}", "127.0.0.1", 19));
    ck_assert(!guard_answers("{\"allow_privileged_ports\": true}", "127.0.0.1", 0));
    /* An explicit block list replaces the default one. */
    ck_assert(guard_answers("{\"allow_privileged_ports\": true, \"block_ports\": []}",
                            "127.0.0.1", 7));
    ck_assert(!guard_answers("{\"block_ports\": [40000]}", "127.0.0.1", 40000));
    ck_assert(!guard_answers("{\"block_ports\": [40000]}", "::1", 40000));
    ck_assert(guard_answers("{\"block_ports\": [40000]}", "127.0.0.1", 40001));
    /* allow_broadcast opens broadcast and multicast sources. */
    ck_assert(guard_answers("{\"allow_broadcast\": true}", "255.255.255.255", 40000));
    ck_assert(guard_answers("{\"allow_broadcast\": true}", "ff02::1", 40000));
    ck_assert(!guard_answers("{\"allow_broadcast\": true}", "255.255.255.255", 19));
    /* guard: false answers everything. */
    ck_assert(guard_answers("{\"guard\": false}", "127.0.0.1", 7));
    ck_assert(guard_answers("{\"guard\": false}", "255.255.255.255", 19));
    ck_assert(guard_answers("{\"guard\": false, \"block_ports\": [40000]}", "::", 40000));
}
END_TEST

START_TEST(udp_guard_odd_addresses)
{
    struct module *m = load_ok("udp_echo", CONFIG_UDP);
    guard_fn allows = (guard_fn)dlsym(m->dl, "udp_echo_guard_allows");
    ck_assert_ptr_nonnull(allows);
    void *data = NULL;
    char err[256];
    ck_assert_int_eq(init_with(m, "{}", &data, err, sizeof err), 0);

    /* Unknown families and short addresses are dropped. */
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    ck_assert(!allows(data, (const struct sockaddr *)&un, sizeof un));
    socklen_t len;
    struct sockaddr_storage ss = v4("127.0.0.1", 40000, &len);
    ck_assert(allows(data, (const struct sockaddr *)&ss, len));
    ck_assert(!allows(data, (const struct sockaddr *)&ss, len - 1));
    ck_assert(!allows(data, NULL, 0));

    m->handler->fini(data);
    module_unload(m);
}
END_TEST

static Suite *module_suite(void)
{
    Suite *s = suite_create("module");

    TCase *tc = tcase_create("load failures");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, load_not_found_lists_searched_paths);
    tcase_add_test(tc, load_not_found_message_fits_small_buffer);
    tcase_add_test(tc, load_explicit_path_not_found);
    tcase_add_test(tc, load_not_elf_is_not_a_wharf_module);
    tcase_add_test(tc, load_first_existing_file_decides);
    tcase_add_test(tc, load_truncated_module_is_refused);
    tcase_add_test(tc, load_no_symbol);
    tcase_add_test(tc, load_abi_mismatch);
    tcase_add_test(tc, load_refuses_symbols_that_are_not_descriptors);
    tcase_add_test(tc, load_abi_version_1_module);
    tcase_add_test(tc, load_handler_written_in_cxx);
    tcase_add_test(tc, root_refuses_modules_others_can_write);
    tcase_add_test(tc, root_checks_the_directory_of_a_symlinks_target);
    tcase_add_test(tc, load_no_callback_for_protocol);
    tcase_add_test(tc, init_refused_names_handler_message);
    tcase_add_test(tc, load_bad_name);
    suite_add_tcase(s, tc);

    tc = tcase_create("loads");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, load_echo_by_name_for_tcp);
    tcase_add_test(tc, load_udp_echo_by_name_for_udp);
    tcase_add_test(tc, load_by_explicit_path);
    tcase_add_test(tc, module_path_earlier_dir_wins);
    tcase_add_test(tc, env_module_path_used_without_module_path);
    tcase_add_test(tc, init_without_init_callback);
    suite_add_tcase(s, tc);

    tc = tcase_create("options");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, options_string);
    tcase_add_test(tc, options_int);
    tcase_add_test(tc, options_bool);
    tcase_add_test(tc, options_int_array);
    tcase_add_test(tc, options_object_and_string_array);
    tcase_add_test(tc, options_check_keys);
    tcase_add_test(tc, options_null_or_not_object_is_empty);
    tcase_add_test(tc, echo_rejects_bad_options);
    tcase_add_test(tc, udp_echo_accepts_defaults_and_rejects_bad_options);
    suite_add_tcase(s, tc);

    tc = tcase_create("udp_echo guard");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, udp_guard_defaults);
    tcase_add_test(tc, udp_guard_options);
    tcase_add_test(tc, udp_guard_odd_addresses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(module_suite());
}
