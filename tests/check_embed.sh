#!/bin/sh
# check_embed.sh - examples/embed/embed_echo, built against libwharf, serves;
# and when its start fails (the port is taken by another embed_echo) it says
# why, from the err buffer wharf_server_start wrote and the -EADDRINUSE it
# returned, and exits 1.
set -u
build=${WHARF_BUILDDIR:-.}
prog=$build/examples/embed/embed_echo
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $1"; echo "0 passed, 1 failed"; exit 1; }

"$prog" 0 >"$tmp/first" 2>&1 &
pid=$!
i=0
while [ $i -lt 200 ] && ! grep -q "^listening on" "$tmp/first"; do sleep 0.05; i=$((i + 1)); done
port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$tmp/first")
[ -n "$port" ] || { cat "$tmp/first"; fail "embed_echo did not start"; }

"$prog" "$port" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] || { cat "$tmp/err"; fail "a second embed_echo on port $port exited $rc, not 1"; }
grep -q "^embed_echo: <code>: listeners\[0\]: cannot bind .*:$port (tcp): Address already in use$" \
    "$tmp/err" || { cat "$tmp/err"; fail "the failure is not named"; }
grep -q "^embed_echo: port $port is taken" "$tmp/err" || { cat "$tmp/err"; fail "no -EADDRINUSE hint"; }
echo "ok: a failing start prints: $(head -n1 "$tmp/err")"

kill -TERM "$pid"
wait "$pid"
pid=
grep -q "served 0 connections" "$tmp/first" || { cat "$tmp/first"; fail "the first did not stop cleanly"; }
echo "1 passed, 0 failed"
