#!/bin/sh
# check_exports.sh - the installed libraries export exactly their public API:
# libwharf every function declared in wharf.h (the handler API) and
# wharf_server.h (the embedding API), and no other symbol (internals stay
# hidden; handler modules resolve wharf_* against it); libwharf_test, the
# framework with the handler test kit that a test program links instead,
# those and the functions of wharf_test.h.  Their SONAMEs follow
# Makefile.am's LIBWHARF_VERSION.
set -eu
src=${WHARF_SRCDIR:-.}
libs=${WHARF_BUILDDIR:-.}/.libs
inc=$src/framework/include
passed=0
failed=0
declared_in() {
    cat "$@" | grep -o '\bwharf_[a-z_0-9]*(' | tr -d '(' | sort -u
}
exported_by() {
    nm -D --defined-only "$1" | awk '$2 ~ /^[TtWiDdBbRr]$/ {print $3}' |
        sed 's/@.*//' | grep -v '^_' | grep -v '^\(edata\|end\|etext\)$' | sort -u
}
# check LIBRARY HEADERS...: its exports are the functions the headers declare.
check() {
    lib=$libs/$1
    shift
    if [ ! -e "$lib" ]; then
        echo "FAIL: $lib not built"
        failed=$((failed + 1))
        return
    fi
    declared=$(declared_in "$@")
    exported=$(exported_by "$lib")
    if [ "$declared" != "$exported" ]; then
        echo "FAIL: $(basename "$lib") exports differ from $*"
        echo "declared only:"; echo "$declared" | grep -vxF "$exported" || true
        echo "exported only:"; echo "$exported" | grep -vxF "$declared" || true
        failed=$((failed + 1))
        return
    fi
    echo "ok: $(basename "$lib") exports the $(echo "$declared" | wc -l) functions of $* and nothing else"
    passed=$((passed + 1))
}
check libwharf.so "$inc/wharf.h" "$inc/wharf_server.h"
check libwharf_test.so "$inc/wharf.h" "$inc/wharf_server.h" "$inc/wharf_test.h"
# The SONAMEs follow Makefile.am's -version-info current:revision:age
# (lib<name>.so.<current - age>).
info=$(sed -n 's/^LIBWHARF_VERSION = \([0-9]*\):\([0-9]*\):\([0-9]*\)$/\1 \3/p' "$src/Makefile.am")
set -- $info
for name in libwharf libwharf_test; do
    soname=$(objdump -p "$libs/$name.so" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
    if [ $# -ne 2 ] || [ "$soname" != "$name.so.$(($1 - $2))" ]; then
        echo "FAIL: $name's SONAME $soname does not follow LIBWHARF_VERSION ($info) in Makefile.am"
        failed=$((failed + 1))
    else
        echo "ok: $name's SONAME is $soname (current $1, age $2)"
        passed=$((passed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
