/*
 * mod_bad_abi.c - a test module whose descriptor claims ABI version 99, so
 * the loader must refuse it with "ABI version 99, this wharfd needs 3 (or 1 to 2)".
 */
#include <stddef.h>

#include "wharf.h"

static size_t bad_abi_on_data(wharf_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    return len;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = 99,
    .name = "bad_abi",
    .on_data = bad_abi_on_data,
};
