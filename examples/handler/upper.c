/*
 * upper.c - the README's handler, built out of tree against an installed
 * wharf:  cc -shared -fPIC $(pkg-config --cflags wharf) -o upper.so upper.c
 * It answers every byte upper-cased, taking at most 4096 bytes per call:
 * the framework offers the rest again (examples/check-install.sh sends it
 * 20,000 bytes and a half-close).
 */
#include <wharf.h>

static size_t upper_data(wharf_conn *c, const void *data, size_t len)
{
    char out[4096];
    size_t n = len < sizeof out ? len : sizeof out;
    for (size_t i = 0; i < n; i++) {
        char ch = ((const char *)data)[i];
        out[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
    wharf_send(c, out, n);   /* copied; written when the callback returns */
    return n;                /* bytes consumed; the rest is offered again */
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "upper",
    .on_data = upper_data,
};
