/*
 * crash.c - the fatal-signal report (see crash.h).  The signal handler uses
 * only write(2), sigaction(2), raise(3) and glibc's backtrace functions
 * (primed at install time), formats numbers itself, and reads thread-local
 * state set before each handler callback and at thread start: enough to say
 * which listener, worker, connection, handler and callback were running, at
 * which address, and whether the thread ran out of stack, in the log (its
 * file, or stderr; not a log callback), before the process dies as it would
 * have.
 */
#include "crash.h"
#include "log.h"

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The alternate signal stack wharf gives a thread. */
#define CRASH_ALT_STACK (64 * 1024)
/* A fault this far below the stack guard still counts as an overflow (a
 * large frame can step over the guard). */
#define CRASH_OVERFLOW_SLACK (256 * 1024)
/* Frames in the backtrace. */
#define CRASH_FRAMES 64

/* What crash_thread_init learnt about this thread. */
struct crash_thread {
    bool inited;
    uintptr_t stack_lo;   /* lowest address of the stack mapping, guard included */
    size_t guard;         /* the guard's size at stack_lo (0: unknown) */
    void *alt;            /* our alternate stack mapping (guard page first), or NULL */
    size_t alt_len;
};

static __thread const struct crash_frame *crash_top __attribute__((tls_model("initial-exec")));
static __thread struct crash_thread crash_self __attribute__((tls_model("initial-exec")));
static atomic_flag installed = ATOMIC_FLAG_INIT;
static pthread_key_t crash_key;
static pthread_once_t crash_key_once = PTHREAD_ONCE_INIT;

void crash_enter(struct crash_frame *f)
{
    f->prev = crash_top;
    crash_top = f;
}

void crash_leave(struct crash_frame *f)
{
    crash_top = f->prev;
}

const struct crash_frame *crash_current(void)
{
    return crash_top;
}

/* ---- threads: stack bounds and the alternate stack ------------------------------ */

/* Key destructor (the thread is ending): takes its alternate stack down. */
static void crash_thread_end(void *unused)
{
    struct crash_thread *t = &crash_self;
    if (!t->alt)
        return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == (char *)t->alt + getpagesize()) {
        stack_t off = {.ss_flags = SS_DISABLE};
        sigaltstack(&off, NULL);
    }
    munmap(t->alt, t->alt_len);
    t->alt = NULL;
}

static void crash_key_make(void)
{
    pthread_key_create(&crash_key, crash_thread_end);
}

/* Gives the thread an alternate stack with a guard page below it, unless it
 * has one (a sanitizer's, or the program's). */
static int crash_alt_stack(struct crash_thread *t)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0;
    size_t page = (size_t)getpagesize();
    size_t size = CRASH_ALT_STACK;
    if ((size_t)SIGSTKSZ * 4 > size)
        size = ((size_t)SIGSTKSZ * 4 + page - 1) / page * page;
    void *p = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    mprotect(p, page, PROT_NONE);
    stack_t ss = {.ss_sp = (char *)p + page, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) < 0) {
        int e = errno;
        munmap(p, size + page);
        return -e;
    }
    t->alt = p;
    t->alt_len = size + page;
    return 0;
}

int crash_thread_init(void)
{
    struct crash_thread *t = &crash_self;
    if (t->inited)
        return 0;
    t->inited = true;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size, guard = 0;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0)
            t->stack_lo = (uintptr_t)addr;
        if (pthread_attr_getguardsize(&attr, &guard) == 0)
            t->guard = guard;
        pthread_attr_destroy(&attr);
    }
    pthread_once(&crash_key_once, crash_key_make);
    int rc = crash_alt_stack(t);
    if (t->alt)
        pthread_setspecific(crash_key, t); /* any non-NULL value runs the destructor */
    return rc;
}

/* ---- the report ------------------------------------------------------------------ */

/* Appends s to buf[*n..cap). */
static void put(char *buf, size_t *n, size_t cap, const char *s)
{
    while (s && *s && *n < cap)
        buf[(*n)++] = *s++;
}

/* put, with control characters as \\xNN and a backslash doubled (a
 * listener's or handler's name must not forge or break the line). */
static void put_escaped(char *buf, size_t *n, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; s && *s && *n < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != 0x7f && ch != '\\') {
            buf[(*n)++] = (char)ch;
        } else if (ch == '\\' && *n + 2 <= cap) {
            buf[(*n)++] = '\\';
            buf[(*n)++] = '\\';
        } else if (*n + 4 <= cap) {
            char esc[4] = {'\\', 'x', hex[ch >> 4], hex[ch & 15]};
            for (int i = 0; i < 4; i++)
                buf[(*n)++] = esc[i];
        } else {
            return;
        }
    }
}

static void put_num(char *buf, size_t *n, size_t cap, uint64_t v)
{
    char tmp[24];
    int i = 0;
    do
        tmp[i++] = (char)('0' + v % 10);
    while ((v /= 10) && i < (int)sizeof tmp);
    while (i > 0 && *n < cap)
        buf[(*n)++] = tmp[--i];
}

static void put_hex(char *buf, size_t *n, size_t cap, uintptr_t v)
{
    char tmp[2 * sizeof v];
    int i = 0;
    do
        tmp[i++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) && i < (int)sizeof tmp);
    put(buf, n, cap, "0x");
    while (i > 0 && *n < cap)
        buf[(*n)++] = tmp[--i];
}

/* Whether a fault at addr is this thread running out of stack: the address
 * lies in its stack guard, or a little below or above it. */
static bool crash_is_overflow(int sig, uintptr_t addr)
{
    const struct crash_thread *t = &crash_self;
    if ((sig != SIGSEGV && sig != SIGBUS) || !t->stack_lo)
        return false;
    uintptr_t lo = t->stack_lo > CRASH_OVERFLOW_SLACK ? t->stack_lo - CRASH_OVERFLOW_SLACK : 0;
    uintptr_t hi = t->stack_lo + t->guard + (uintptr_t)getpagesize();
    return addr >= lo && addr < hi;
}

/* "in handler ... [listener ...]" or "outside any handler callback". */
static void crash_describe_frame(char *line, size_t *n, size_t cap)
{
    const struct crash_frame *f = crash_top;
    if (!f) {
        put(line, n, cap, " outside any handler callback");
        return;
    }
    put(line, n, cap, " in handler \"");
    put_escaped(line, n, cap, f->handler);
    put(line, n, cap, "\" callback ");
    put(line, n, cap, f->callback);
    put(line, n, cap, " [listener ");
    put_escaped(line, n, cap, f->listener);
    if (f->worker >= 0) {
        put(line, n, cap, " worker ");
        put_num(line, n, cap, (uint64_t)f->worker);
    }
    if (f->conn) {
        put(line, n, cap, " connection ");
        put_num(line, n, cap, f->conn);
    }
    put(line, n, cap, "]");
}

/* ", fault address 0x..." / ", stack overflow (fault address 0x...)" for a
 * fault; ", sent by process N" for a signal sent with kill/raise. */
static void crash_describe_cause(char *line, size_t *n, size_t cap, int sig, const siginfo_t *si)
{
    if (!si)
        return;
    if (si->si_code <= 0) {
        put(line, n, cap, ", sent by process ");
        put_num(line, n, cap, (uint64_t)si->si_pid);
        return;
    }
    uintptr_t addr = (uintptr_t)si->si_addr;
    bool overflow = crash_is_overflow(sig, addr);
    put(line, n, cap, overflow ? ", stack overflow (fault address " : ", fault address ");
    put_hex(line, n, cap, addr);
    if (overflow)
        put(line, n, cap, ")");
}

static void crash_signal(int sig, siginfo_t *si, void *uctx)
{
    int saved = errno;
    char line[512];
    size_t n = 0, cap = sizeof line - 1;
    put(line, &n, cap, "wharf: fatal signal ");
    put_num(line, &n, cap, (uint64_t)sig);
    put(line, &n, cap, " (");
    put(line, &n, cap, sigabbrev_np(sig));
    put(line, &n, cap, ")");
    crash_describe_frame(line, &n, cap);
    crash_describe_cause(line, &n, cap, sig, si);
    line[n++] = '\n';
    int fd = log_current_fd();
    ssize_t w = write(fd, line, n);
    void *frames[CRASH_FRAMES];
    int nframes = backtrace(frames, CRASH_FRAMES);
    if (nframes > 0) {
        static const char head[] = "wharf: backtrace (addr2line -e OBJECT +OFFSET names a line):\n";
        w = write(fd, head, sizeof head - 1);
        backtrace_symbols_fd(frames, nframes, fd);
    }
    (void)w;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    errno = saved;
    raise(sig);
}

int crash_install(void)
{
    if (atomic_flag_test_and_set(&installed))
        return crash_thread_init();
    /* The first backtrace() loads the unwinder (dlopen, malloc): do it now,
     * not in the signal handler. */
    void *prime[2];
    backtrace(prime, 2);
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = crash_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return -errno;
    return crash_thread_init();
}
