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
# The SONAME follows Makefile.am's -version-info current:revision:age
# (libwharf.so.<current - age>).
info=$(sed -n 's/^LIBWHARF_VERSION = \([0-9]*\):\([0-9]*\):\([0-9]*\)$/\1 \3/p' "$src/Makefile.am")
set -- $info
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
if [ $# -ne 2 ] || [ "$soname" != "libwharf.so.$(($1 - $2))" ]; then
    echo "FAIL: SONAME $soname does not follow LIBWHARF_VERSION ($info) in Makefile.am"
    echo "1 passed, 1 failed"
    exit 1
fi
echo "libwharf's SONAME is $soname (current $1, age $2)"
echo "2 passed, 0 failed"
