#!/bin/sh
# check_mc_meta_exchange.sh - the meta commands (mg, ms, md, ma, mn, me) sent
# byte for byte to the installed memcached and to wharfd, each script on a
# fresh connection, both servers fresh: the replies must be the same bytes.
#
# The scripts (tests/mc_meta_exchange.py) cover every flag memcached 1.6.18
# has and every error it gives; the cas values line up because wharf counts
# CAS ids as memcached does (one counter, the same events).  What may
# legitimately differ is normalised there, and named: a TTL left (t) or a
# last-access age (l) read in a later second than the other server's, and
# nothing else.  E (explicit cas, memcached 1.6.24) and me's hit line are
# wharf's own and are checked in tests/check_mc_meta.c instead.
#
# Needs memcached and python3; skips (77) without.
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}

memcached=$(command -v memcached || true)
[ -x /usr/bin/memcached ] && memcached=/usr/bin/memcached
py=$(command -v python3 || true)
if [ -z "$memcached" ] || [ -z "$py" ]; then
    echo "SKIP: needs memcached and python3 (Debian packages memcached, python3)"
    exit 77
fi

tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# memcached: a free loopback port picked by the kernel, then handed over
# (a race with other programs is possible but short; the start is checked).
mport=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$memcached" -u "$(id -un)" -l 127.0.0.1 -p "$mport" -U 0 -t 1 -m 64 >"$tmp/memcached.log" 2>&1 &
pids="$pids $!"

cat >"$tmp/mc.json" <<JSON
{"workers": 1, "shutdown_timeout_ms": 2000, "listeners": [
 {"name": "mc", "address": "127.0.0.1", "port": 0, "handler": "memcache",
  "timeouts": {"idle_ms": 0},
  "buffers": {"max_input": 2097152},
  "options": {}}]}
JSON
"$wharfd" -c "$tmp/mc.json" 2>"$tmp/wharfd.log" &
pids="$pids $!"
i=0
while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/wharfd.log"; do sleep 0.05; i=$((i + 1)); done
wport=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/wharfd.log" | head -n1)
if [ -z "$wport" ]; then
    echo "FAIL: wharfd did not start: $(cat "$tmp/wharfd.log")"
    exit 1
fi

"$py" "$src/tests/mc_meta_exchange.py" ${MC_META_VERBOSE:+-v} 127.0.0.1 "$mport" "$wport"
exit $?
