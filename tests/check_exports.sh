#!/bin/sh
# check_exports.sh - wharfd exports exactly the handler API: every function
# declared in wharf.h, and no other symbol of ours (modules resolve wharf_*
# against the executable; internals stay hidden).
set -eu
src=${WHARF_SRCDIR:-.}
bin=${WHARF_BUILDDIR:-.}/wharfd
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
declared=$(grep -o '\bwharf_[a-z_]*(' "$src/framework/wharf.h" | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$bin" | awk '$2 ~ /^[TtWiDdBbRr]$/ && $3 !~ /@/ {print $3}' |
           grep -v '^_' | grep -v '^\(edata\|end\|etext\)$' | sort -u)
if [ "$declared" != "$exported" ]; then
    echo "FAIL: wharfd exports differ from wharf.h"
    echo "declared only:"; echo "$declared" | grep -vxF "$exported" || true
    echo "exported only:"; echo "$exported" | grep -vxF "$declared" || true
    echo "0 passed, 1 failed"
    exit 1
fi
echo "wharfd exports the $(echo "$declared" | wc -l) functions of wharf.h and nothing else"
echo "1 passed, 0 failed"
