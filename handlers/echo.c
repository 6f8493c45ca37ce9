/*
 * echo.c - the TCP echo handler (RFC 862): every byte received is sent back.
 *
 * Options:
 *   "prefix": string, default "" - when set, each chunk that on_data receives
 *             is answered with prefix + chunk (the seed server's
 *             b"Echo: " + data).  Chunk boundaries are whatever one read
 *             returned, so a prefix is meant for line-at-a-time interactive
 *             use; without a prefix the output is byte-exact, whatever the
 *             chunking.
 *
 * The handler keeps no per-connection state: it consumes all input at once
 * and relies on the framework's output cap (max_output) and watermarks to
 * stop a peer that sends faster than it reads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

/* Per-listener state, made by echo_init and freed by echo_fini. */
struct echo_listener {
    size_t prefix_len;
    char prefix[]; /* owned copy, NUL-terminated */
};

static int echo_init(const wharf_options *opts, void **listener_data, char *err, size_t errlen)
{
    static const char *const allowed[] = {"prefix", NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -1;

    const char *prefix = "";
    int rc = wharf_options_string(opts, "prefix", &prefix);
    if (rc == -EINVAL) {
        snprintf(err, errlen, "prefix: expected a string");
        return -1;
    }

    size_t len = strlen(prefix);
    struct echo_listener *l = malloc(sizeof *l + len + 1);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    l->prefix_len = len;
    memcpy(l->prefix, prefix, len + 1);
    *listener_data = l;
    return 0;
}

static void echo_fini(void *listener_data)
{
    free(listener_data);
}

/*
 * Echoes the chunk and consumes all of it.  wharf_send copies, and a failed
 * send (-ENOBUFS past max_output, -EPIPE while closing) already makes the
 * framework close the connection, so there is nothing more to do here.
 */
static size_t echo_on_data(wharf_conn *c, const void *data, size_t len)
{
    const struct echo_listener *l = wharf_listener_data(c);
    if (l && l->prefix_len > 0 && wharf_send(c, l->prefix, l->prefix_len) != 0)
        return len;
    wharf_send(c, data, len);
    return len;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "echo",
    .init = echo_init,
    .fini = echo_fini,
    .on_data = echo_on_data,
};
