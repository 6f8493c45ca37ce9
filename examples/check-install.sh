#!/bin/sh
# check-install.sh - the installed kit as a user gets it: configure with a
# temporary prefix, make install, then build examples/embed/embed_echo.c out
# of tree with nothing but `pkg-config --cflags --libs wharf`, run it and
# talk to it (echo, and a reload by SIGHUP); build an out-of-tree handler the
# same way and run it under the installed wharfd; and check that the
# installed wharfd finds its modules in the prefix and never searches the
# build tree.
# Usage: examples/check-install.sh [SRCDIR]   (run by .ci/run)
set -eu
src=$(cd "${1:-$(dirname "$0")/..}" && pwd)
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
prefix=$work/prefix
mkdir "$work/build"
(cd "$work/build" && "$src/configure" --quiet --prefix="$prefix" && make -j"$(nproc)" >/dev/null &&
    make install >/dev/null)
echo "installed into $prefix"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc -Wall -Wextra -o "$work/embed_echo" "$src/examples/embed/embed_echo.c" \
    $(pkg-config --cflags --libs wharf) -Wl,-rpath,"$(pkg-config --variable=libdir wharf)"
echo "built embed_echo with: pkg-config --cflags --libs wharf -> $(pkg-config --cflags --libs wharf)"

"$work/embed_echo" 0 >"$work/out" 2>&1 &
pid=$!
i=0
while [ $i -lt 200 ] && ! grep -q "^listening on" "$work/out"; do sleep 0.05; i=$((i + 1)); done
port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$work/out")
[ -n "$port" ] || { echo "FAIL: embed_echo did not start"; cat "$work/out"; exit 1; }
talk() {
    python3 - "$port" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode())
print(s.recv(64).decode())
PY
}
[ "$(talk hi)" = "embedded: hi" ] || { echo "FAIL: echo"; cat "$work/out"; exit 1; }
kill -HUP "$pid"
i=0
while [ $i -lt 100 ] && ! grep -q "reloaded: generation 2" "$work/out"; do sleep 0.05; i=$((i + 1)); done
[ "$(talk again)" = "reloaded: again" ] || { echo "FAIL: reload"; cat "$work/out"; exit 1; }
kill -TERM "$pid"
wait "$pid"
pid=
grep -q "served 2 connections" "$work/out" || { echo "FAIL: stats"; cat "$work/out"; exit 1; }
echo "ok: embed_echo serves, reloads, stops"

# An out-of-tree handler (the README's) built with pkg-config, loaded by the
# installed wharfd, and talked to: 20,000 bytes and a half-close come back
# upper-cased.
cc -shared -fPIC -Wall -Wextra -Wno-unused-parameter -o "$work/upper.so" \
    "$src/examples/handler/upper.c" $(pkg-config --cflags wharf)
cat >"$work/upper.json" <<JSON
{"workers": 2, "listeners": [{"name": "upper", "port": 0, "handler": "$work/upper.so"}]}
JSON
"$prefix/bin/wharfd" -c "$work/upper.json" 2>"$work/upper.log" &
pid=$!
i=0
while [ $i -lt 200 ] && ! grep -q "started:" "$work/upper.log"; do sleep 0.05; i=$((i + 1)); done
port=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$work/upper.log" | head -n1)
reply=$(python3 "$src/examples/handler/check_upper.py" "$port")
kill -TERM "$pid"
wait "$pid" || true
pid=
[ "$reply" = "20000 True" ] || { echo "FAIL: out-of-tree handler: $reply"; cat "$work/upper.log"; exit 1; }
echo "ok: an out-of-tree handler built with pkg-config runs under the installed wharfd"

# The installed wharfd: modules from the prefix, never from the build tree.
unset WHARF_MODULE_PATH || true
out=$("$prefix/bin/wharfd" -t -c "$prefix/etc/wharf/wharf.json")
echo "$out" | grep -q "configuration OK" || { echo "FAIL: installed wharfd -t: $out"; exit 1; }
printf '{"listeners": [{"port": 0, "handler": "no_such_handler"}]}' >"$work/x.json"
out=$("$prefix/bin/wharfd" -t -c "$work/x.json" 2>&1 || true)
case $out in
*"$prefix/lib/wharf/no_such_handler.so"*) ;;
*) echo "FAIL: installed wharfd searched: $out"; exit 1 ;;
esac
case $out in
*"$work/build"*|*handlers/.libs*) echo "FAIL: installed wharfd searched the build tree: $out"; exit 1 ;;
esac
echo "ok: installed wharfd loads modules from $prefix/lib/wharf only"
echo "3 passed, 0 failed"
