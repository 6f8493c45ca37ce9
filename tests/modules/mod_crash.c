/*
 * mod_crash.c - a test handler that crashes (a write through a null
 * pointer) when it receives "crash", so a suite can check wharfd's fatal
 * signal report names the handler, callback, listener, worker and
 * connection.  Anything else is echoed.
 */
#include <string.h>

#include "wharf.h"

static size_t crash_data(wharf_conn *c, const void *data, size_t len)
{
    if (len >= 5 && memcmp(data, "crash", 5) == 0) {
        volatile int *null = NULL;
        *null = 1;
    }
    wharf_send(c, data, len);
    return len;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "crash",
    .on_data = crash_data,
};
