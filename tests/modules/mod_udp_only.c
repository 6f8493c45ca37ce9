/*
 * mod_udp_only.c - a test module with only an on_datagram callback: it loads
 * for a UDP listener and must be refused for a TCP one (no on_data).
 */
#include "wharf.h"

static void udp_only_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    wharf_reply(d, data, len);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "udp_only",
    .on_datagram = udp_only_on_datagram,
};
