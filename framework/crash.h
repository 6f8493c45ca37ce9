/*
 * crash.h - what a thread is running, for the fatal-signal report: each
 * handler callback is bracketed by crash_enter / crash_leave, which record
 * (in thread-local storage, no allocation) the callback's name, listener,
 * handler, worker and connection.  crash_install sets a handler for SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL and SIGABRT that writes one line naming them with
 * async-signal-safe calls, then re-raises the signal with the default action
 * (so a core dump and the exit status are as without it).
 */
#ifndef WHARF_CRASH_H
#define WHARF_CRASH_H

#include <stdint.h>

struct listener;

struct crash_frame {
    const char *callback;   /* "on_data", ... */
    const char *listener;
    const char *handler;
    int worker;             /* -1: not on a worker */
    uint64_t conn;          /* 0: no connection */
    struct listener *l;     /* whose handler code runs (callback.h), or NULL */
    const struct crash_frame *prev;
};

/* Records that `f` is running on this thread (f lives on the caller's stack). */
void crash_enter(struct crash_frame *f);
/* Undoes the matching crash_enter. */
void crash_leave(struct crash_frame *f);
/* The innermost frame of this thread, or NULL. */
const struct crash_frame *crash_current(void);
/* Installs the fatal-signal report (idempotent).  Returns 0 or -errno. */
int crash_install(void);

#endif
