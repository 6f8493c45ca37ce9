/*
 * mod_lifecycle.h - the log of the mod_lifecycle test handler
 * (tests/check_lifecycle.c): every callback it gets, in the order they ran,
 * with the connection it is about and the thread it ran on.  A suite reads
 * it through lifecycle_events() (see test_module_symbol in testutil.h).
 */
#ifndef WHARF_MOD_LIFECYCLE_H
#define WHARF_MOD_LIFECYCLE_H

#include <stddef.h>
#include <stdint.h>

/* What an event is.  The first group are callbacks of a connection (they
 * must all come between its on_open and its on_close, on one thread); the
 * second are requests and what the handler did, about a connection. */
enum lc_kind {
    LC_OPEN = 0,    /* on_open; arg: the listener's role (0 case, 1 check) */
    LC_DATA,        /* on_data */
    LC_DRAIN,       /* on_drain */
    LC_EOF,         /* on_eof */
    LC_TIMEOUT,     /* on_timeout; arg: enum wharf_timeout */
    LC_SHUTDOWN,    /* on_shutdown */
    LC_CLOSE,       /* on_close; arg: enum wharf_close_reason */
    LC_CONN_TIMER,  /* a timer of the connection fired (it may come from a
                     * timer that outlived it: then it is a violation) */
    LC_POST_CONN,   /* a wharf_post_conn ran with the connection */
    LC_CONN_KINDS,  /* (the number of connection kinds) */
    LC_POST_GONE = LC_CONN_KINDS, /* a wharf_post_conn ran with NULL */
    LC_POST,        /* a wharf_post ran; arg: 1 when cancelled */
    LC_WORKER_TIMER, /* a worker timer fired */
    LC_DONE,        /* a job's done ran; arg: 1 when cancelled */
    LC_QUEUED,      /* a request was accepted (post, post_conn or job:
                     * each must run exactly once); arg: its req number */
    LC_RAN,         /* that request ran (or was cancelled); arg: req number */
    LC_ACT,         /* the handler closed (or overflowed, flooded) conn;
                     * arg: the action (enum lc_action) */
    LC_BAD,         /* the handler saw something wrong; arg: what (LC_BAD_*) */
    LC_KINDS
};

/* The close actions of option "action". */
enum lc_action {
    LC_ACT_NONE = 0,
    LC_ACT_CLOSE,      /* wharf_close */
    LC_ACT_CLOSE_WITH, /* wharf_close_with(WHARF_CLOSE_ERROR) */
    LC_ACT_OVERFLOW,   /* wharf_send of LC_OVERFLOW_BYTES (past max_output) */
    LC_ACT_FLOOD,      /* wharf_send of LC_FLOOD_BYTES (for output_budget); a
                        * victim gets LC_PRIME_BYTES at its open already */
    LC_ACT_HOLD,       /* on_data consumes nothing (max_input, min_rate) */
};

/* LC_BAD reasons. */
#define LC_BAD_ID 1      /* a callback's connection is not the one its data names */
#define LC_BAD_SEND 2    /* wharf_send in on_close did not return -EPIPE */
#define LC_BAD_THREAD 3  /* a callback of a connection ran off its worker */

/* Bytes of one overflowing send, and of a flood.  Configs of the
 * "overflow" action set max_output below the first. */
#define LC_OVERFLOW_BYTES 70000
#define LC_FLOOD_BYTES (2u << 20)
#define LC_PRIME_BYTES (1u << 20)

struct lc_event {
    uint32_t kind;   /* enum lc_kind */
    uint32_t arg;
    uint64_t conn;   /* the connection it is about (0: none) */
    int worker;      /* the worker it ran on, -1: another thread */
    uint64_t thread; /* pthread_self() of where it ran */
};

/* Copies up to max events into out (in the order they happened); returns
 * how many.  lifecycle_reset empties the log. */
typedef size_t (*lifecycle_events_fn)(struct lc_event *out, size_t max);
typedef void (*lifecycle_reset_fn)(void);
#define LIFECYCLE_EVENTS_SYMBOL "lifecycle_events"
#define LIFECYCLE_RESET_SYMBOL "lifecycle_reset"

#endif
