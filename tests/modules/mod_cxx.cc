// mod_cxx.cc - a handler written in C++: WHARF_HANDLER_EXPORT must give the
// descriptor C linkage and export it (a namespace-scope const would
// otherwise have internal linkage and no "wharf_handler" symbol).
#include <cstring>

#include "wharf.h"

namespace {

size_t cxx_data(wharf_conn *c, const void *data, size_t len)
{
    wharf_send(c, "c++:", 4);
    wharf_send(c, data, len);
    return len;
}

} // namespace

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "cxx",
    .on_data = cxx_data,
};
