#!/bin/sh
# check_layers.sh - the framework's folders are layers, and no layer
# includes a higher one.  From the bottom:
#
#   include  the public, installed headers (wharf*.h)
#   base     buffers, addresses, PROXY parsing, logging, crash reports
#   event    the event loop, its timers and mailboxes (the only epoll and
#            io_uring user: only its loop_epoll.c and loop_uring.c include
#            <sys/epoll.h> or <liburing.h>, in framework/, handlers/ and tools/)
#   config   the JSON config and its schema
#   worker   workers, modules, generations, listeners (a worker owns its
#   conn     connections, so these two are one level and may include each other)
#   server   the acceptor and the server that starts and reloads it all
#   daemon   wharfd
#   testkit  the handler test kit
#
# Each '#include "x.h"' in framework/, handlers/ and tools/ is looked up in
# the framework's folders; a file may include its own level or lower.
# Handler modules see only the public headers; tools/ sees the public
# headers and the base and event layers.  A header of the same name in two
# folders, or an include that names a folder, fails too.
set -u
src=${WHARF_SRCDIR:-.}
cd "$src" || exit 1
fail=0
rank() {
    case $1 in
    include) echo 0 ;; base) echo 1 ;; event) echo 2 ;; config) echo 3 ;;
    worker | conn) echo 4 ;; server) echo 5 ;; daemon | testkit) echo 6 ;;
    *) echo 99 ;;
    esac
}
# Every folder of framework/ must be a known layer.
for d in framework/*/; do
    d=${d%/}; d=${d#framework/}
    if [ "$(rank "$d")" = 99 ]; then
        echo "framework/$d: not a known layer (add it to tests/check_layers.sh)"
        fail=1
    fi
done
# Where each header lives.
dups=$(ls framework/*/*.h | xargs -n1 basename | sort | uniq -d)
if [ -n "$dups" ]; then
    echo "headers with the same name in two layers: $dups"
    fail=1
fi
layer_of_header() {
    for f in framework/*/"$1"; do
        [ -f "$f" ] || continue
        f=${f#framework/}
        echo "${f%%/*}"
        return
    done
}
checked=0
check_file() { # file, its rank, the highest rank it may include
    file=$1 max=$2
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file"); do
        checked=$((checked + 1))
        case $inc in
        */*)
            echo "$file: includes \"$inc\" by path (the -I of its layer is enough)"
            fail=1
            continue
            ;;
        esac
        [ -f "$(dirname "$file")/$inc" ] && [ "${file#framework/}" = "$file" ] && continue
        l=$(layer_of_header "$inc")
        [ -z "$l" ] && continue # a header of the file's own folder outside framework/
        r=$(rank "$l")
        if [ "$r" -gt "$max" ]; then
            echo "$file: includes $inc of the $l layer, above what it may use"
            fail=1
        fi
    done
}
for f in framework/*/*.[ch]; do
    l=${f#framework/}
    l=${l%%/*}
    check_file "$f" "$(rank "$l")"
done
for f in handlers/*.[ch] examples/*/*.c; do
    [ -f "$f" ] && check_file "$f" 0
done
for f in $(find tools -name '*.[ch]'); do
    check_file "$f" 2
done
# The kernel's readiness ABIs stay in the loop's backends.
for f in $(grep -rlE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(sys/epoll\.h|liburing\.h|liburing/[a-z_]*\.h|linux/io_uring\.h)>' \
    framework handlers tools --include='*.[ch]'); do
    case $f in
    framework/event/loop_epoll.c | framework/event/loop_uring.c) ;;
    *)
        echo "$f: includes epoll's or io_uring's header (only framework/event/loop_epoll.c and loop_uring.c may)"
        fail=1
        ;;
    esac
done
[ "$checked" -gt 100 ] || { echo "only $checked includes seen: is WHARF_SRCDIR right?"; fail=1; }
[ $fail = 0 ] && echo "ok: $checked includes, every one at its own layer or below"
exit $fail
