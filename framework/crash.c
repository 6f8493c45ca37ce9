/*
 * crash.c - the fatal-signal report (see crash.h).  The signal handler uses
 * only write(2), sigaction(2) and raise(3), formats numbers itself, and reads
 * a thread-local pointer set before each handler callback: enough to say
 * which listener, worker, connection, handler and callback were running when
 * a handler crashed, in the log (its file, or stderr; not a log callback),
 * before the process dies as it would have.
 */
#include "crash.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static __thread const struct crash_frame *crash_top __attribute__((tls_model("initial-exec")));
static atomic_flag installed = ATOMIC_FLAG_INIT;

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

/* Appends s to buf[*n..cap). */
static void put(char *buf, size_t *n, size_t cap, const char *s)
{
    while (s && *s && *n < cap)
        buf[(*n)++] = *s++;
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

static void crash_signal(int sig)
{
    char line[512];
    size_t n = 0, cap = sizeof line - 1;
    const struct crash_frame *f = crash_top;
    put(line, &n, cap, "wharf: fatal signal ");
    put_num(line, &n, cap, (uint64_t)sig);
    put(line, &n, cap, " (");
    put(line, &n, cap, sigabbrev_np(sig));
    put(line, &n, cap, ")");
    if (f) {
        put(line, &n, cap, " in handler \"");
        put(line, &n, cap, f->handler);
        put(line, &n, cap, "\" callback ");
        put(line, &n, cap, f->callback);
        put(line, &n, cap, " [listener ");
        put(line, &n, cap, f->listener);
        if (f->worker >= 0) {
            put(line, &n, cap, " worker ");
            put_num(line, &n, cap, (uint64_t)f->worker);
        }
        if (f->conn) {
            put(line, &n, cap, " connection ");
            put_num(line, &n, cap, f->conn);
        }
        put(line, &n, cap, "]");
    } else {
        put(line, &n, cap, " outside any handler callback");
    }
    line[n++] = '\n';
    ssize_t w = write(log_current_fd(), line, n);
    (void)w;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

int crash_install(void)
{
    if (atomic_flag_test_and_set(&installed))
        return 0;
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return -errno;
    return 0;
}
