/*
 * mod_refuse.c - a test module whose init refuses every options object with
 * "mod_refuse says no", so that the server's start-up error path can be
 * checked (the message must reach the operator with the config location).
 */
#include <stdio.h>

#include "wharf.h"

static int refuse_init(const wharf_options *opts, void **listener_data, char *err,
                       size_t errlen)
{
    (void)opts;
    (void)listener_data;
    snprintf(err, errlen, "mod_refuse says no");
    return -1;
}

static size_t refuse_on_data(wharf_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    return len;
}

static void refuse_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    (void)d;
    (void)data;
    (void)len;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "refuse",
    .init = refuse_init,
    .on_data = refuse_on_data,
    .on_datagram = refuse_on_datagram,
};
