/*
 * mod_version.c - a test handler built twice (MOD_VERSION "A" and "B") so a
 * suite can replace a module file on disk and reload: every chunk is
 * answered with MOD_VERSION followed by the chunk.
 */
#include "wharf.h"

#ifndef MOD_VERSION
#define MOD_VERSION "?"
#endif

static size_t version_data(wharf_conn *c, const void *data, size_t len)
{
    wharf_send(c, MOD_VERSION, 1);
    wharf_send(c, data, len);
    return len;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "version",
    .on_data = version_data,
};
