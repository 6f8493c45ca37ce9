#!/bin/sh
# check_exports.sh - the installed library libwharf exports exactly the
# public API: every function declared in wharf.h (the handler API),
# wharf_server.h (the embedding API) and wharf_test.h (the test kit), and no other symbol (internals stay
# hidden; handler modules resolve wharf_* against it).
set -eu
src=${WHARF_SRCDIR:-.}
lib=${WHARF_BUILDDIR:-.}/.libs/libwharf.so
[ -e "$lib" ] || { echo "FAIL: $lib not built"; echo "0 passed, 1 failed"; exit 1; }
declared=$(cat "$src/framework/include/wharf.h" "$src/framework/include/wharf_server.h" "$src/framework/include/wharf_test.h" |
           grep -o '\bwharf_[a-z_0-9]*(' | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWiDdBbRr]$/ {print $3}' |
           sed 's/@.*//' | grep -v '^_' | grep -v '^\(edata\|end\|etext\)$' | sort -u)
if [ "$declared" != "$exported" ]; then
    echo "FAIL: libwharf exports differ from wharf.h + wharf_server.h + wharf_test.h"
    echo "declared only:"; echo "$declared" | grep -vxF "$exported" || true
    echo "exported only:"; echo "$exported" | grep -vxF "$declared" || true
    echo "0 passed, 1 failed"
    exit 1
fi
echo "libwharf exports the $(echo "$declared" | wc -l) functions of wharf.h, wharf_server.h and wharf_test.h and nothing else"
echo "1 passed, 0 failed"
