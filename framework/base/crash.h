/*
 * crash.h - what a thread is running, for the fatal-signal report: each
 * piece of handler code runs inside CALLBACK_RUN (callback.h), which
 * records (in thread-local storage, no allocation) the callback's name,
 * listener, handler, worker and connection.  crash_install sets a handler
 * for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT that writes one line
 * naming them and the faulting address (saying "stack overflow" when that
 * address is at the thread's stack guard), then a backtrace, with
 * async-signal-safe calls, and re-raises the signal with the default action
 * (so a core dump and the exit status are as without it).
 *
 * The handler runs on an alternate signal stack, so a thread that overflowed
 * its stack still reports: every thread wharf starts calls crash_thread_init
 * first (workers, the acceptor, work-pool threads), and crash_install does it
 * for the thread that calls it.  A thread's alternate stack is freed when the
 * thread ends.  Threads a program or a handler starts itself get no
 * alternate stack from wharf (they may call wharf_crash_report_install).
 *
 * The backtrace comes from glibc's backtrace(), primed at install time so
 * that the unwinder (libgcc_s) is loaded then and not from the signal
 * handler.  It is as safe as can be done there, not guaranteed: the
 * unwinder reads the crashed thread's stack and takes the dynamic loader's
 * lock, so a crash inside dlopen() or with a trashed stack can end the
 * backtrace early (the report line is always written first).  Frames show
 * as object(+offset)[address]; addr2line -e OBJECT OFFSET names the line.
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
/* Installs the fatal-signal report (idempotent) and prepares the calling
 * thread (crash_thread_init).  Returns 0 or -errno. */
int crash_install(void);
/* Prepares the calling thread for the report: notes where its stack and
 * stack guard are, and gives it an alternate signal stack unless it has
 * one already; both are undone when the thread ends.  Idempotent; call it
 * first thing in every thread wharf starts.  Returns 0 or -errno (the
 * thread runs on without an alternate stack). */
int crash_thread_init(void);

#endif
