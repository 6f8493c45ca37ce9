/*
 * module.c - the handler-module loader (see module.h) and the wharf_options_*
 * accessors that a handler's init uses to read its listener's "options".
 *
 * A listener's "handler" is either a path (it contains '/') or a bare name
 * that is resolved to NAME.so along the module path: the config's
 * module_path, then $WHARF_MODULE_PATH, then the installed module directory,
 * then the build tree's handlers/.libs (only for a program running from the
 * build tree).  A bare name registered in-process (wharf_server.h) is used
 * before any file.  The first existing
 * file wins; if it cannot be loaded the search stops there, so that a broken
 * module is reported instead of being silently shadowed by a later one.
 *
 * Modules are dlopen()ed RTLD_NOW (an unresolved wharf_* call fails here, at
 * start-up, rather than at the first connection) and RTLD_LOCAL (two modules
 * may define the same helper names).  Every failure writes one line into the
 * caller's buffer naming the file, or the places searched, and the reason;
 * server.c prefixes it with the config file and the listener's JSON path.
 *
 * Loading happens on the thread that starts or reloads the server; the
 * table of loaded files has its own lock, and dlerror()'s state is per
 * thread.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "module.h"
#include "state.h"

#ifndef WHARF_MODULEDIR
#define WHARF_MODULEDIR "/usr/local/lib/wharf"
#endif
#ifndef WHARF_BUILDDIR
#define WHARF_BUILDDIR ""
#endif

/* The handler-visible options handle: a borrowed reference to the listener's
 * "options" object and the scope of its init, only alive for the duration
 * of init. */
struct wharf_options {
    json_t *obj;
    const struct module_scope *scope; /* or NULL */
    struct wharf_options *views;      /* wharf_options_object's, freed after init */
    struct wharf_options *next;       /* in the parent's views */
    struct wharf_options *root;       /* the one init was given */
};

/* ---- error text -------------------------------------------------------- */

/* Writes a formatted line into err (if any).  Always returns -1. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/*
 * dlerror() usually starts with the file name ("/x/y.so: invalid ELF
 * header"); our message already names the file, so drop that prefix.
 */
static const char *dl_reason(const char *path)
{
    const char *e = dlerror();
    if (!e)
        return "unknown dlopen error";
    size_t n = strlen(path);
    if (strncmp(e, path, n) == 0 && e[n] == ':' && e[n + 1] == ' ')
        return e + n + 2;
    return e;
}

/* ---- loading one file -------------------------------------------------- */

/* A bare handler name: one or more of [A-Za-z0-9_.-]. */
static bool name_is_valid(const char *name)
{
    if (!*name)
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

static const char *protocol_name(enum config_protocol protocol)
{
    return protocol == CONFIG_UDP ? "udp" : "tcp";
}

/* ---- loaded files -------------------------------------------------------
 *
 * dlopen() returns the object already loaded under the same name, even when
 * the file on disk has been replaced since.  A reload must run the new code
 * for new connections while old ones keep the old, so every file we load is
 * remembered with its identity (device, inode, size, modification time).  A
 * path loaded before and unchanged is dlopen()ed under the same name again
 * (one copy of the code); a path whose file changed is copied into a memfd
 * and dlopen()ed as /proc/self/fd/N, a name no other copy has (the memfd
 * stays open while the copy is loaded).
 */
struct module_file {
    char *path;                 /* as resolved from the config */
    char dlname[64];            /* the name dlopen()ed, when not `path` */
    int memfd;                  /* -1 unless loaded from a copy */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    unsigned refs;              /* modules loaded from it */
    struct module_file *next;
};

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static struct module_file *files;

static bool file_same(const struct module_file *f, const struct stat *st)
{
    return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
           f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Copies `path` into a new memfd.  Returns the fd or -1 (errno set). */
static int copy_to_memfd(const char *path)
{
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = memfd_create("wharf-module", MFD_CLOEXEC);
    if (out < 0)
        goto fail;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                goto fail;
            done += w;
        }
    }
    close(in);
    return out;
fail:;
    int saved = errno;
    close(in);
    if (out >= 0)
        close(out);
    errno = saved;
    return -1;
}

/* Whether [off, off + count * size) lies inside a file of `file_size` bytes. */
static bool elf_range_fits(uint64_t off, uint64_t count, uint64_t size, uint64_t file_size)
{
    if (count && size > UINT64_MAX / count)
        return false;
    uint64_t len = count * size;
    return off <= file_size && len <= file_size - off;
}

/*
 * Checks that the ELF file open on fd holds every byte its headers point at
 * (program headers, loaded segments, section headers): dlopen() maps the
 * segments without looking, and touching a page past the end of the file
 * raises SIGBUS (a half-written module renamed into place).  Returns NULL,
 * or why not; a file that is not 64-bit ELF is left to dlopen to refuse.
 */
static const char *elf_check(int fd)
{
    struct stat st;
    ElfW(Ehdr) eh;
    if (fstat(fd, &st) != 0)
        return "cannot stat it";
    uint64_t size = (uint64_t)st.st_size;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32))
        return NULL;
    if (eh.e_phentsize != sizeof(ElfW(Phdr)) ||
        !elf_range_fits(eh.e_phoff, eh.e_phnum, eh.e_phentsize, size))
        return "truncated (its program headers lie past the end of the file)";
    if (eh.e_shoff && !elf_range_fits(eh.e_shoff, eh.e_shnum, eh.e_shentsize, size))
        return "truncated (its section headers lie past the end of the file)";
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        ElfW(Phdr) ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) !=
            (ssize_t)sizeof ph)
            return "cannot read its program headers";
        if (ph.p_type == PT_LOAD && !elf_range_fits(ph.p_offset, 1, ph.p_filesz, size))
            return "truncated (a loadable segment lies past the end of the file)";
    }
    return NULL;
}

/* elf_check on the file at `path`: 0, or -1 with a message naming it. */
static int elf_check_path(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    const char *why = elf_check(fd);
    close(fd);
    return why ? fail(err, errlen, "%s: not a wharf module: %s", path, why) : 0;
}

/*
 * Finds or makes the record for `path` (whose current identity is *st) and
 * dlopen()s it.  Returns the handle and the record (refs counted), or NULL
 * with a message.  Caller holds files_lock.
 */
static void *file_open(const char *path, const struct stat *st, struct module_file **out,
                       char *err, size_t errlen)
{
    bool seen = false;
    for (struct module_file *f = files; f; f = f->next) {
        if (strcmp(f->path, path) != 0)
            continue;
        seen = true;
        if (!file_same(f, st))
            continue;
        void *dl = dlopen(f->dlname[0] ? f->dlname : f->path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
            fail(err, errlen, "%s: not a wharf module: %s", path, dl_reason(path));
            return NULL;
        }
        f->refs++;
        *out = f;
        return dl;
    }
    struct module_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        fail(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    f->memfd = -1;
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->size = st->st_size;
    f->mtime = st->st_mtim;
    if (seen) {
        /* Changed on disk since an earlier copy was loaded: load it afresh. */
        f->memfd = copy_to_memfd(path);
        if (f->memfd < 0) {
            fail(err, errlen, "%s: cannot copy the changed module: %s", path, strerror(errno));
            goto fail;
        }
        snprintf(f->dlname, sizeof f->dlname, "/proc/self/fd/%d", f->memfd);
    }
    const char *why = f->memfd >= 0 ? elf_check(f->memfd) : NULL;
    if (why) {
        fail(err, errlen, "%s: not a wharf module: %s", path, why);
        goto fail;
    }
    if (f->memfd < 0 && elf_check_path(path, err, errlen) < 0)
        goto fail;
    void *dl = dlopen(f->dlname[0] ? f->dlname : path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fail(err, errlen, "%s: not a wharf module: %s", path,
             dl_reason(f->dlname[0] ? f->dlname : path));
        goto fail;
    }
    if (f->memfd >= 0)
        log_info("%s changed on disk: loaded a new copy of it", path);
    f->refs = 1;
    f->next = files;
    files = f;
    *out = f;
    return dl;
fail:
    if (f->memfd >= 0)
        close(f->memfd);
    free(f->path);
    free(f);
    return NULL;
}

/* Drops one reference to f (and its record with the last).  Caller holds
 * files_lock. */
static void file_close(struct module_file *f)
{
    if (--f->refs > 0)
        return;
    for (struct module_file **p = &files; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    if (f->memfd >= 0)
        close(f->memfd);
    free(f->path);
    free(f);
}

bool module_abi_supported(uint32_t version)
{
    return version >= 1 && version <= WHARF_ABI_VERSION;
}

/* Version 1 ends before on_eof, version 2 before on_worker_start. */
size_t module_abi_size(uint32_t version)
{
    switch (version) {
    case 1:
        return offsetof(struct wharf_handler, on_eof);
    case 2:
        return offsetof(struct wharf_handler, on_worker_start);
    default:
        return sizeof(struct wharf_handler);
    }
}

/*
 * Copies the descriptor at h (`size` bytes are readable there) into *out,
 * zero-filling what its ABI version does not have.  Returns 0 or -1 with a
 * message naming the version.
 */
static int copy_handler(const char *path, const void *h, size_t size, struct wharf_handler *out,
                        char *err, size_t errlen)
{
    uint32_t version;
    if (size < sizeof version)
        return fail(err, errlen, "%s: not a wharf module: \"%s\" is %zu bytes", path,
                    WHARF_HANDLER_SYMBOL, size);
    memcpy(&version, h, sizeof version);
    size_t need = module_abi_size(version);
    if (!module_abi_supported(version))
        return fail(err, errlen, "%s: ABI version %u, this wharfd needs %u (or 1 to %u)", path,
                    (unsigned)version, (unsigned)WHARF_ABI_VERSION,
                    (unsigned)WHARF_ABI_VERSION - 1);
    if (size < need)
        return fail(err, errlen,
                    "%s: not a wharf module: \"%s\" is %zu bytes, a version %u descriptor is %zu",
                    path, WHARF_HANDLER_SYMBOL, size, (unsigned)version, need);
    memset(out, 0, sizeof *out);
    memcpy(out, h, need);
    return 0;
}

/* Checks that h is usable for `protocol`.  Returns 0 or -1 with a message. */
static int check_handler(const char *path, const struct wharf_handler *h,
                         enum config_protocol protocol, char *err, size_t errlen)
{
    if (!h->name || !*h->name)
        return fail(err, errlen, "%s: not a wharf module: the handler has no name", path);
    char name[256]; /* the module's text: no control characters */
    log_escape(name, sizeof name, h->name);
    if (protocol == CONFIG_TCP && !h->on_data)
        return fail(err, errlen,
                    "%s: handler \"%s\" has no on_data callback, needed for a %s listener",
                    path, name, protocol_name(protocol));
    if (protocol == CONFIG_UDP && !h->on_datagram)
        return fail(err, errlen,
                    "%s: handler \"%s\" has no on_datagram callback, needed for a %s listener",
                    path, name, protocol_name(protocol));
    return 0;
}

/*
 * dlopen()s `path` and checks that it is a wharf module usable for
 * `protocol`.  Returns 0 with a new module in *out, or -1 with a message.
 */
/* module_set_insecure: load modules others could have written, warning. */
static _Atomic bool insecure_ok;

void module_set_insecure(bool allow)
{
    atomic_store(&insecure_ok, allow);
}

/* Whether the directory holding `file` may be written by a user other than
 * root (a sticky directory only by the owners of its entries). */
static bool dir_unsafe(const char *file)
{
    char dir[4096];
    const char *slash = strrchr(file, '/');
    if (slash && slash != file)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - file), file);
    else
        snprintf(dir, sizeof dir, "%s", slash ? "/" : ".");
    struct stat dst;
    return stat(dir, &dst) == 0 &&
           (((dst.st_mode & (S_IWGRP | S_IWOTH)) && !(dst.st_mode & S_ISVTX)) || dst.st_uid != 0);
}

/*
 * Run as root, a module file (or the directory holding it) that someone
 * else may write is someone else's code running as root: refused (or, with
 * insecure_modules, loaded after a warning).  Returns 0 or -1 with a message.
 */
static int check_owner(const char *path, const struct stat *st, char *err, size_t errlen)
{
    if (geteuid() != 0)
        return 0;
    /* A symlink: both the link's directory and the target's count (either
     * lets someone else swap the code). */
    char *real = realpath(path, NULL);
    const char *what = NULL;
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) || st->st_uid != 0)
        what = "the file";
    else if (dir_unsafe(path) || (real && dir_unsafe(real)))
        what = "its directory";
    free(real);
    if (!what)
        return 0;
    if (atomic_load(&insecure_ok)) {
        log_warn("%s: %s is writable by a user other than root; loading it anyway "
                 "(insecure_modules)", path, what);
        return 0;
    }
    return fail(err, errlen,
                "%s: refused: %s is writable by a user other than root, and wharfd runs as "
                "root (fix the owner and mode, or set \"insecure_modules\": true)",
                path, what);
}

static int load_file(const char *path, enum config_protocol protocol, struct module **out,
                     char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        fail(err, errlen, "%s: not found: %s", path, strerror(e));
        return e == ENOENT ? -ENOENT : -1;
    }
    if (!S_ISREG(st.st_mode))
        return fail(err, errlen, "%s: not a wharf module: not a regular file", path);
    if (check_owner(path, &st, err, errlen) < 0)
        return -1;
    pthread_mutex_lock(&files_lock);
    struct module_file *file = NULL;
    void *dl = file_open(path, &st, &file, err, errlen);
    if (!dl) {
        pthread_mutex_unlock(&files_lock);
        return -1;
    }

    dlerror();
    const void *sym = dlsym(dl, WHARF_HANDLER_SYMBOL);
    if (!sym) {
        fail(err, errlen, "%s: not a wharf module: no \"%s\" symbol", path,
             WHARF_HANDLER_SYMBOL);
        goto err;
    }
    /* The symbol must be a data object big enough to read: a function or a
     * short object of that name is refused before anything reads it. */
    Dl_info info;
    const ElfW(Sym) *entry = NULL;
    if (!dladdr1(sym, &info, (void **)&entry, RTLD_DL_SYMENT) || !entry) {
        fail(err, errlen, "%s: cannot inspect the \"%s\" symbol", path, WHARF_HANDLER_SYMBOL);
        goto err;
    }
    if (ELF64_ST_TYPE(entry->st_info) != STT_OBJECT) {
        fail(err, errlen, "%s: not a wharf module: \"%s\" is not a data object (%s)", path,
             WHARF_HANDLER_SYMBOL,
             ELF64_ST_TYPE(entry->st_info) == STT_FUNC ? "a function" : "another kind");
        goto err;
    }
    struct module *m = calloc(1, sizeof *m);
    char *copy = strdup(path);
    if (!m || !copy) {
        free(m);
        free(copy);
        fail(err, errlen, "%s: out of memory", path);
        goto err;
    }
    if (copy_handler(path, sym, (size_t)entry->st_size, &m->desc, err, errlen) < 0 ||
        check_handler(path, &m->desc, protocol, err, errlen) < 0) {
        free(m);
        free(copy);
        goto err;
    }
    m->dl = dl;
    m->handler = &m->desc;
    m->path = copy;
    m->file = file;
    pthread_mutex_unlock(&files_lock);
    *out = m;
    return 0;

err:
    dlclose(dl);
    file_close(file);
    pthread_mutex_unlock(&files_lock);
    return -1;
}

/* A handler registered in-process (no file). */
static int load_builtin(const struct wharf_handler *h, enum config_protocol protocol,
                        struct module **out, char *err, size_t errlen)
{
    char what[300];
    snprintf(what, sizeof what, "handler \"%s\" (built in)", h->name);
    struct module *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(what))) {
        free(m);
        return fail(err, errlen, "%s: out of memory", what);
    }
    if (copy_handler(what, h, module_abi_size(h->abi_version), &m->desc, err, errlen) < 0 ||
        check_handler(what, &m->desc, protocol, err, errlen) < 0) {
        free(m->path);
        free(m);
        return -1;
    }
    m->handler = &m->desc;
    *out = m;
    return 0;
}

/* ---- searching the module path ----------------------------------------- */

/*
 * The list of candidates tried, for the "not found" message.  It is built
 * directly in the caller's buffer and ends with ", ...)" when it would not fit.
 */
struct tried {
    char *buf;
    size_t len, cap;
    size_t count;
    bool truncated;
};

static void tried_add(struct tried *t, const char *path)
{
    if (t->truncated || !t->buf)
        return;
    const char *sep = t->count++ ? ", " : "";
    static const char more[] = ", ...)";
    /* Leave room for ", ...)" or the closing ")" plus NUL. */
    size_t need = strlen(sep) + strlen(path);
    if (t->len + need + sizeof more > t->cap) {
        t->truncated = true;
        return;
    }
    t->len += (size_t)snprintf(t->buf + t->len, t->cap - t->len, "%s%s", sep, path);
}

static void tried_finish(struct tried *t)
{
    if (!t->buf || t->cap == 0)
        return;
    const char *tail = t->truncated ? ", ...)" : ")";
    if (t->count == 0)
        tail = t->truncated ? "...)" : "nowhere)";
    if (t->len + strlen(tail) + 1 <= t->cap)
        snprintf(t->buf + t->len, t->cap - t->len, "%s", tail);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * The build tree's module directory, but only for a program that runs from
 * the build tree itself (an uninstalled wharfd, found through
 * /proc/self/exe in WHARF_BUILDDIR or its .libs): an installed program
 * never looks there.  NULL otherwise.
 */
static const char *build_tree_moduledir(void)
{
    static const char builddir[] = WHARF_BUILDDIR;
    static const char moduledir[] = WHARF_BUILDDIR "/handlers/.libs";
    if (!builddir[0] || !is_dir(moduledir))
        return NULL;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    size_t blen = strlen(builddir);
    if (strncmp(exe, builddir, blen) != 0)
        return NULL;
    const char *rest = exe + blen;
    return strcmp(rest, "") == 0 || strcmp(rest, "/.libs") == 0 ? moduledir : NULL;
}

/* Outcome of looking in one list of directories. */
enum search { SEARCH_NONE, SEARCH_LOADED, SEARCH_FAILED };

/*
 * Tries DIR/NAME.so for each directory of the colon-separated `dirs` (NULL
 * or empty components are skipped).  The first file that exists is loaded;
 * its result ends the search.
 */
static enum search search_dirs(const char *dirs, const char *name, enum config_protocol protocol,
                               struct tried *tried, struct module **out, char *err,
                               size_t errlen)
{
    if (!dirs)
        return SEARCH_NONE;
    const char *p = dirs;
    while (*p) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        if (dlen > 0) {
            /* Strip one trailing slash so messages read "/a/x.so", not "/a//x.so". */
            size_t keep = dlen > 1 && p[dlen - 1] == '/' ? dlen - 1 : dlen;
            size_t plen = keep + 1 + strlen(name) + sizeof ".so";
            char *path = malloc(plen);
            if (!path) {
                fail(err, errlen, "handler \"%s\": out of memory", name);
                return SEARCH_FAILED;
            }
            snprintf(path, plen, "%.*s/%s.so", (int)keep, p, name);
            struct stat st;
            if (stat(path, &st) == 0) {
                int rc = load_file(path, protocol, out, err, errlen);
                free(path);
                return rc == 0 ? SEARCH_LOADED : SEARCH_FAILED;
            }
            tried_add(tried, path);
            free(path);
        }
        if (!end)
            break;
        p = end + 1;
    }
    return SEARCH_NONE;
}

int module_load(const char *name, const char *module_path, enum config_protocol protocol,
                const struct wharf_handler *const *builtins, size_t nbuiltins,
                struct module **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!name) {
        fail(err, errlen, "handler: no name given");
        return -EINVAL;
    }

    if (strchr(name, '/')) {
        int rc = load_file(name, protocol, out, err, errlen);
        return rc == 0 || rc == -ENOENT ? rc : -EINVAL;
    }

    for (size_t i = 0; i < nbuiltins; i++)
        if (builtins[i]->name && strcmp(builtins[i]->name, name) == 0)
            return load_builtin(builtins[i], protocol, out, err, errlen) == 0 ? 0 : -EINVAL;

    if (!name_is_valid(name)) {
        fail(err, errlen,
             "handler \"%s\": invalid name (use letters, digits, '_', '.', '-', "
             "or a path containing '/')",
             name);
        return -EINVAL;
    }

    /* The "not found" message is assembled in err as candidates are tried;
     * a successful load or a load failure overwrites it. */
    struct tried tried = {.buf = err, .cap = errlen};
    if (err && errlen) {
        int n = snprintf(err, errlen, "handler \"%s\": not found (searched ", name);
        tried.len = n < 0 ? 0 : (size_t)n;
        if (tried.len >= errlen) {
            tried.len = errlen - 1;
            tried.truncated = true;
        }
    }

    const char *lists[] = {
        module_path,
        getenv("WHARF_MODULE_PATH"),
        WHARF_MODULEDIR,
        build_tree_moduledir(),
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        switch (search_dirs(lists[i], name, protocol, &tried, out, err, errlen)) {
        case SEARCH_LOADED:
            return 0;
        case SEARCH_FAILED:
            return -EINVAL;
        case SEARCH_NONE:
            break;
        }
    }
    tried_finish(&tried);
    return -ENOENT;
}

void module_unload(struct module *m)
{
    if (!m)
        return;
    if (m->dl) {
        pthread_mutex_lock(&files_lock);
        dlclose(m->dl);
        file_close(m->file);
        pthread_mutex_unlock(&files_lock);
    }
    free(m->path);
    free(m);
}

int module_init_listener(const struct module *m, json_t *options,
                         const struct module_scope *scope, void **listener_data, char *err,
                         size_t errlen)
{
    *listener_data = NULL;
    const struct wharf_handler *h = m->handler;
    if (!h->init)
        return 0;

    struct wharf_options opts = {.obj = options, .scope = scope};
    opts.root = &opts;
    char reason[512] = "";
    void *data = NULL;
    int rc = h->init(&opts, &data, reason, sizeof reason);
    for (struct wharf_options *v = opts.views, *next; v; v = next) {
        next = v->next;
        free(v);
    }
    if (rc != 0) {
        return fail(err, errlen, "handler \"%s\" refused its options: %s", h->name,
                    reason[0] ? reason : "(no reason given)");
    }
    *listener_data = data;
    return 0;
}

/* ---- wharf_options_* (handler API) ------------------------------------- */

/* The value for key, or NULL when opts is NULL, not an object, or lacks it. */
static json_t *option(const wharf_options *opts, const char *key)
{
    if (!opts || !json_is_object(opts->obj) || !key)
        return NULL;
    return json_object_get(opts->obj, key);
}

int wharf_options_string(const wharf_options *opts, const char *key, const char **out)
{
    json_t *v = option(opts, key);
    if (!v)
        return -ENOENT;
    if (!json_is_string(v))
        return -EINVAL;
    *out = json_string_value(v);
    return 0;
}

int wharf_options_int(const wharf_options *opts, const char *key, long long *out)
{
    json_t *v = option(opts, key);
    if (!v)
        return -ENOENT;
    if (!json_is_integer(v))
        return -EINVAL;
    *out = (long long)json_integer_value(v);
    return 0;
}

int wharf_options_bool(const wharf_options *opts, const char *key, bool *out)
{
    json_t *v = option(opts, key);
    if (!v)
        return -ENOENT;
    if (!json_is_boolean(v))
        return -EINVAL;
    *out = json_is_true(v);
    return 0;
}

static bool option_is_integer(const json_t *v) { return json_is_integer(v); }
static bool option_is_string(const json_t *v) { return json_is_string(v); }

/* The array under key when it has at most max elements, each passing is();
 * else NULL with *rc -ENOENT or -EINVAL.  (Checked whole first: a getter
 * that fails has no effect.) */
static json_t *option_array(const wharf_options *opts, const char *key, size_t max,
                            bool (*is)(const json_t *), int *rc)
{
    json_t *v = option(opts, key), *el;
    *rc = v ? -EINVAL : -ENOENT;
    if (!v || !json_is_array(v) || json_array_size(v) > max)
        return NULL;
    size_t i;
    json_array_foreach(v, i, el) {
        if (!is(el))
            return NULL;
    }
    *rc = 0;
    return v;
}

int wharf_options_int_array(const wharf_options *opts, const char *key, long long *out,
                            size_t max, size_t *n)
{
    int rc;
    json_t *v = option_array(opts, key, max, option_is_integer, &rc), *el;
    if (!v)
        return rc;
    size_t i;
    json_array_foreach(v, i, el) {
        out[i] = (long long)json_integer_value(el);
    }
    if (n)
        *n = json_array_size(v);
    return 0;
}

int wharf_options_string_array(const wharf_options *opts, const char *key, const char **out,
                               size_t max, size_t *n)
{
    int rc;
    json_t *v = option_array(opts, key, max, option_is_string, &rc), *el;
    if (!v)
        return rc;
    size_t i;
    json_array_foreach(v, i, el) {
        out[i] = json_string_value(el);
    }
    if (n)
        *n = json_array_size(v);
    return 0;
}

int wharf_options_object(const wharf_options *opts, const char *key, const wharf_options **out)
{
    json_t *v = option(opts, key);
    if (!v)
        return -ENOENT;
    if (!json_is_object(v) || !out)
        return -EINVAL;
    struct wharf_options *root = opts->root;
    if (!root)
        return -EINVAL; /* (not inside init) */
    struct wharf_options *view = calloc(1, sizeof *view);
    if (!view)
        return -ENOMEM;
    *view = (struct wharf_options){.obj = v, .scope = opts->scope, .root = root,
                                   .next = root->views};
    root->views = view;
    *out = view;
    return 0;
}

unsigned wharf_options_worker_count(const wharf_options *opts)
{
    return opts && opts->scope && opts->scope->nworkers ? opts->scope->nworkers : 1;
}

int wharf_state_get(const wharf_options *opts, const char *name,
                    const struct wharf_state_type *type, void *arg, void **obj, bool *created)
{
    if (!opts || !opts->scope || !opts->scope->states || !opts->scope->l)
        return -EINVAL;
    return state_acquire(opts->scope->states, opts->scope->l, name, type, arg, obj, created);
}

int wharf_options_check_keys(const wharf_options *opts, const char *const *allowed, char *err,
                             size_t errlen)
{
    if (!opts || !json_is_object(opts->obj))
        return 0;
    const char *key;
    json_t *v;
    json_object_foreach(opts->obj, key, v) {
        bool known = false;
        for (const char *const *a = allowed; a && *a; a++) {
            if (strcmp(*a, key) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            fail(err, errlen, "unknown option \"%s\"", key);
            return -EINVAL;
        }
    }
    return 0;
}
