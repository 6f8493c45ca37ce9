/*
 * mod_crash.c - a test handler that misbehaves on command, so the suites
 * can check the fatal-signal report (it names the handler, callback,
 * listener, worker, connection and fault address) and what a stuck worker
 * does to a reload or a ping.
 *
 * TCP input: "crash" writes through a null pointer in on_data; "overflow"
 * recurses until the stack runs out; "stall N" sleeps N ms in on_data (its
 * worker stops answering meanwhile).  Anything else is echoed.  UDP: a
 * datagram "crash" crashes in on_datagram; others are echoed.  TCP "post"
 * posts a function to its own worker that crashes there (a post).
 * Option "crash_in": "init" or "fini" crashes there; "init_overflow" runs
 * out of stack in init (on the thread that starts the server); "refuse"
 * makes init fail with a message full of control characters.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "wharf.h"

/* A store to an unmapped page near address 0: SIGSEGV, as a null pointer
 * gives, but one UBSan's null check does not report and exit on first. */
static void crash_null(void)
{
    volatile int *near_null = (volatile int *)(uintptr_t)16;
    *near_null = 1;
}

/* Recurses with a frame the compiler cannot drop or turn into a loop. */
static int crash_overflow(int depth)
{
    volatile char pad[512];
    pad[0] = (char)depth;
    if (depth == -1) /* never: the stack runs out first */
        return 0;
    return crash_overflow(depth + 1) + pad[0];
}

static int crash_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    static const char *const keys[] = {"crash_in", NULL};
    if (wharf_options_check_keys(opts, keys, err, errlen) < 0)
        return -1;
    const char *where = "";
    wharf_options_string(opts, "crash_in", &where);
    if (strcmp(where, "init") == 0)
        crash_null();
    if (strcmp(where, "init_overflow") == 0)
        crash_overflow(0);
    if (strcmp(where, "refuse") == 0) {
        snprintf(err, errlen, "refused\nforged line\x1b[2J\\x41");
        return -1;
    }
    *data = (void *)(strcmp(where, "fini") == 0 ? "fini" : "");
    return 0;
}

static void crash_fini(void *data)
{
    if (strcmp(data, "fini") == 0)
        crash_null();
}

static void crash_post(void *arg, bool cancelled)
{
    (void)arg;
    if (!cancelled)
        crash_null();
}

static size_t crash_data(wharf_conn *c, const void *data, size_t len)
{
    if (len >= 4 && memcmp(data, "post", 4) == 0)
        wharf_post(wharf_conn_worker(c), crash_post, NULL);
    if (len >= 5 && memcmp(data, "crash", 5) == 0)
        crash_null();
    if (len >= 8 && memcmp(data, "overflow", 8) == 0)
        crash_overflow(0);
    if (len >= 6 && memcmp(data, "stall ", 6) == 0) {
        char ms[16] = "";
        memcpy(ms, (const char *)data + 6, len - 6 < sizeof ms - 1 ? len - 6 : sizeof ms - 1);
        long n = atol(ms);
        nanosleep(&(struct timespec){n / 1000, (n % 1000) * 1000000L}, NULL);
    }
    wharf_send(c, data, len);
    return len;
}

static void crash_datagram(wharf_dgram *d, const void *data, size_t len)
{
    if (len >= 5 && memcmp(data, "crash", 5) == 0)
        crash_null();
    wharf_reply(d, data, len);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "crash",
    .init = crash_init,
    .fini = crash_fini,
    .on_data = crash_data,
    .on_datagram = crash_datagram,
};
