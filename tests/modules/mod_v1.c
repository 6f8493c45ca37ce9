/*
 * mod_v1.c - a module built against ABI version 1: its descriptor ends after
 * on_datagram (no on_eof, on_shutdown, on_stop).  The loader must accept it
 * and treat the newer callbacks as absent.
 */
#include <stddef.h>

#include "wharf.h"

/* The version 1 layout of struct wharf_handler. */
struct wharf_handler_v1 {
    uint32_t abi_version;
    const char *name;
    int (*init)(const wharf_options *opts, void **listener_data, char *err, size_t errlen);
    void (*fini)(void *listener_data);
    void (*on_open)(wharf_conn *c);
    size_t (*on_data)(wharf_conn *c, const void *data, size_t len);
    void (*on_drain)(wharf_conn *c);
    void (*on_timeout)(wharf_conn *c, enum wharf_timeout kind);
    void (*on_close)(wharf_conn *c, enum wharf_close_reason reason);
    void (*on_datagram)(wharf_dgram *d, const void *data, size_t len);
};

static size_t v1_on_data(wharf_conn *c, const void *data, size_t len)
{
    wharf_send(c, data, len);
    return len;
}

__attribute__((visibility("default"))) const struct wharf_handler_v1 wharf_handler = {
    .abi_version = 1,
    .name = "v1",
    .on_data = v1_on_data,
};
