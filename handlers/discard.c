/*
 * discard.c - the discard service (RFC 863): every byte received is dropped.
 *
 * What it shows: the smallest useful TCP handler.  on_data is the only
 * callback a TCP handler must have; returning `len` tells wharf that every
 * byte was consumed, so nothing is kept and the input buffer stays empty.
 * Nothing is ever sent, so the connection lives until the client closes it
 * (reason "eof") or the listener's idle timeout fires.  The bytes still show
 * in the listener's bytes_in counter.
 *
 * Options: none (any key is refused).
 */
#include "wharf.h"

static int discard_init(const wharf_options *opts, void **listener_data, char *err,
                        size_t errlen)
{
    static const char *const allowed[] = {NULL};
    *listener_data = NULL;
    return wharf_options_check_keys(opts, allowed, err, errlen) == 0 ? 0 : -1;
}

/* Consumes everything: the bytes are gone once this returns. */
static size_t discard_on_data(wharf_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    return len;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "discard",
    .init = discard_init,
    .on_data = discard_on_data,
};
