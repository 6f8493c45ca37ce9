/*
 * mod_counting.c - a test module for the integration suites: a TCP and UDP
 * echo that counts its callbacks.
 *
 * It echoes like handlers/echo.c (TCP) and handlers/udp_echo.c without the
 * guard (UDP).  Counts live in the listener data (atomics: every worker
 * updates them); each connection carries a malloc'd byte count in its
 * wharf_set_data slot, freed in on_close, so a missed or doubled on_close
 * shows up under valgrind/ASan.  Log lines (INFO), for tests to match:
 *   counting: close <reason> bytes=<n>         (one per on_close)
 *   counting: opens=<n> closes=<n> data_calls=<n> datagrams=<n>   (at fini)
 * It takes no options.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "wharf.h"

struct counting {
    atomic_ullong opens, closes, data_calls, datagrams;
};

static int counting_init(const wharf_options *opts, void **listener_data, char *err,
                         size_t errlen)
{
    static const char *const allowed[] = {NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -1;
    struct counting *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *listener_data = k;
    return 0;
}

static void counting_fini(void *listener_data)
{
    struct counting *k = listener_data;
    wharf_log(WHARF_LOG_INFO, "counting: opens=%llu closes=%llu data_calls=%llu datagrams=%llu",
              atomic_load(&k->opens), atomic_load(&k->closes), atomic_load(&k->data_calls),
              atomic_load(&k->datagrams));
    free(k);
}

static void counting_on_open(wharf_conn *c)
{
    struct counting *k = wharf_listener_data(c);
    atomic_fetch_add(&k->opens, 1);
    wharf_set_data(c, calloc(1, sizeof(unsigned long long)));
}

static size_t counting_on_data(wharf_conn *c, const void *data, size_t len)
{
    struct counting *k = wharf_listener_data(c);
    atomic_fetch_add(&k->data_calls, 1);
    unsigned long long *bytes = wharf_get_data(c);
    if (bytes)
        *bytes += len;
    wharf_send(c, data, len);
    return len;
}

static void counting_on_close(wharf_conn *c, enum wharf_close_reason reason)
{
    struct counting *k = wharf_listener_data(c);
    atomic_fetch_add(&k->closes, 1);
    unsigned long long *bytes = wharf_get_data(c);
    wharf_log(WHARF_LOG_INFO, "counting: close %s bytes=%llu", wharf_close_reason_name(reason),
              bytes ? *bytes : 0ULL);
    free(bytes);
    wharf_set_data(c, NULL);
}

static void counting_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    struct counting *k = wharf_dgram_listener_data(d);
    atomic_fetch_add(&k->datagrams, 1);
    wharf_reply(d, data, len);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "counting",
    .init = counting_init,
    .fini = counting_fini,
    .on_open = counting_on_open,
    .on_data = counting_on_data,
    .on_close = counting_on_close,
    .on_datagram = counting_on_datagram,
};
