#!/bin/sh
# check_mc_ops_compare.sh - the memcache handler's protocol fixes and
# operators' commands against the real memcached 1.6, side by side: starts
# memcached and a wharfd whose config sets no buffers.max_input (the
# framework's default 1 MiB), checks that `wharfd -t` accepts that config and
# that a 1 MiB value is stored and read back whole through it, then runs
# tests/mc_ops_compare.py (same bytes in, same bytes out; stats by
# field names and formats).
#
# Debian packages no memcached Prometheus exporter (apt-cache search
# memcached exporter: nothing), so the formats exporters read are tested
# against memcached's own output here.
#
# Needs memcached and python3; skips (77) without.
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}
for tool in memcached python3; do
    command -v $tool >/dev/null 2>&1 || { echo "SKIP: no $tool"; exit 77; }
done

tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# A free port (bounded tries), for memcached, which cannot take port 0.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
mport=$(free_port)
user=
[ "$(id -u)" = 0 ] && user="-u nobody"
memcached $user -p "$mport" -l 127.0.0.1 -U 0 -t 4 >"$tmp/memcached.log" 2>&1 &
pids="$pids $!"

cat >"$tmp/minimal.json" <<JSON
{"workers": 4, "listeners": [
 {"name": "mc", "address": "127.0.0.1", "port": 0, "handler": "memcache"}]}
JSON
if ! "$wharfd" -t -c "$tmp/minimal.json" >"$tmp/t.out" 2>&1; then
    echo "FAIL: wharfd -t refuses the minimal config: $(cat "$tmp/t.out")"
    exit 1
fi
echo "ok: wharfd -t accepts a config without buffers"
"$wharfd" -c "$tmp/minimal.json" 2>"$tmp/wharfd.log" &
pids="$pids $!"
i=0
while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/wharfd.log"; do sleep 0.05; i=$((i + 1)); done
wport=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/wharfd.log" | head -n1)
[ -n "$wport" ] || { echo "FAIL: wharfd did not start: $(cat "$tmp/wharfd.log")"; exit 1; }
i=0
while [ $i -lt 100 ] && ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $mport), 1)" 2>/dev/null; do
    sleep 0.05; i=$((i + 1))
done

rc=0
# A 1 MiB value (item_size_max) through the default buffers.
if python3 - "$wport" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
v = bytes(range(256)) * 4096
s.sendall(b"set big 0 0 %d\r\n" % len(v) + v + b"\r\nget big\r\n")
want = b"STORED\r\nVALUE big 0 %d\r\n" % len(v) + v + b"\r\nEND\r\n"
got = b""
while len(got) < len(want):
    b = s.recv(1 << 20)
    if not b:
        break
    got += b
sys.exit(0 if got == want else 1)
PY
then
    echo "ok: a 1 MiB value with the default buffers"
else
    echo "FAIL: a 1 MiB value with the default buffers"
    rc=1
fi
# The same through a meta ms and a binary set (each on its own connection).
if python3 - "$wport" <<'PY'
import socket, struct, sys
def exchange(req, want):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(req)
    got = b""
    while len(got) < len(want):
        b = s.recv(1 << 20)
        if not b:
            break
        got += b
    return got == want
v = bytes(range(255, -1, -1)) * 4096
ok = exchange(b"ms bigm %d T0\r\n" % len(v) + v + b"\r\nmg bigm v\r\n",
              b"HD\r\nVA %d\r\n" % len(v) + v + b"\r\n")
ext = struct.pack(">II", 0, 0)
hdr = struct.pack(">BBHBBHIIQ", 0x80, 0x01, 4, len(ext), 0, 0, len(ext) + 4 + len(v), 0, 0)
get = struct.pack(">BBHBBHIIQ", 0x80, 0x00, 4, 0, 0, 0, 4, 0, 0) + b"bigb"
want_get_len = 24 + 4 + len(v)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(hdr + ext + b"bigb" + v + get)
got = b""
while len(got) < 24 + 24 + 4 + len(v):
    b = s.recv(1 << 20)
    if not b:
        break
    got += b
ok = ok and got[:2] == b"\x81\x01" and got[6:8] == b"\x00\x00"   # set: status 0
ok = ok and got[24:26] == b"\x81\x00" and got[30:32] == b"\x00\x00" and got[52:] == v
sys.exit(0 if ok else 1)
PY
then
    echo "ok: a 1 MiB value with the default buffers, meta and binary"
else
    echo "FAIL: a 1 MiB value with the default buffers, meta and binary"
    rc=1
fi
timeout 120 python3 "$src/tests/mc_ops_compare.py" "$mport" "$wport" "$src/docs/memcache.md" || rc=1
exit $rc
