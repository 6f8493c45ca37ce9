/*
 * loop_io.c - which backend the process's loops run on (loop.h, "Backends"):
 * the config's "io" or WHARF_IO resolved once per start (auto: io_uring if
 * a ring can be set up, else epoll), kept for every loop_init that follows;
 * epoll until something chooses.
 */
#include "loop_backend.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int io_current = -1; /* an enum loop_io, or -1: not resolved */
static _Atomic bool io_explicit;

const char *loop_io_name(enum loop_io io)
{
    switch (io) {
    case LOOP_IO_EPOLL:
        return "epoll";
    case LOOP_IO_URING:
        return "io_uring";
    default:
        return "auto";
    }
}

int loop_io_choose(enum loop_io want, enum loop_io *got, bool *named, char *why, size_t whylen)
{
    if (whylen > 0)
        why[0] = '\0';
    const char *env = getenv("WHARF_IO");
    if (env && *env) {
        if (strcmp(env, "auto") == 0)
            want = LOOP_IO_AUTO;
        else if (strcmp(env, "epoll") == 0)
            want = LOOP_IO_EPOLL;
        else if (strcmp(env, "io_uring") == 0)
            want = LOOP_IO_URING;
        else {
            snprintf(why, whylen, "WHARF_IO=\"%s\": expected auto, epoll or io_uring", env);
            return -EINVAL;
        }
    }
    *named = want == LOOP_IO_URING;
    if (want == LOOP_IO_EPOLL) {
        *got = LOOP_IO_EPOLL;
        return 0;
    }
    char reason[200];
    int rc = loop_uring_probe(reason, sizeof reason);
    if (rc == 0) {
        *got = LOOP_IO_URING;
        return 0;
    }
    if (want == LOOP_IO_URING) {
        snprintf(why, whylen, "io_uring unavailable: %s", reason);
        return rc;
    }
    *got = LOOP_IO_EPOLL;
    snprintf(why, whylen, "io_uring unavailable (%s): using epoll", reason);
    return 0;
}

void loop_io_set(enum loop_io io, bool named)
{
    atomic_store(&io_explicit, named && io == LOOP_IO_URING);
    atomic_store(&io_current, (int)io);
}

enum loop_io loop_io_current(void)
{
    int v = atomic_load(&io_current);
    if (v >= 0)
        return (enum loop_io)v;
    /* Nothing chose yet (a program without a server, a test): the config's
     * default (epoll), or WHARF_IO.  io_uring named and unavailable stays
     * chosen, so that its loops fail with the ring's error rather than run
     * on epoll. */
    enum loop_io got;
    bool named = false;
    char why[256];
    if (loop_io_choose(LOOP_IO_EPOLL, &got, &named, why, sizeof why) < 0)
        got = named ? LOOP_IO_URING : LOOP_IO_EPOLL;
    loop_io_set(got, named);
    return got;
}

bool loop_io_explicit(void)
{
    loop_io_current();
    return atomic_load(&io_explicit);
}
