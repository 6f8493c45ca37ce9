#!/bin/sh
# check_memcache_clients.sh - the memcache handler under clients nobody here
# wrote, against a real wharfd on ephemeral ports: libmemcached's protocol
# conformance tool (memccapable -a and -b, every ASCII and binary test),
# its load generator memcaslap (sets stored, gets hit),
# Python's pymemcache (set/get/gets/cas/incr/decr/touch/delete/expiry, a
# 1 MiB value, 10,000 keys), two instances used together by memccp/memccat (keys spread over
# both, every one read back), and 1,000 clients that send gets for a large
# value and never read (the server stays up, answers others, and its memory
# stays bounded).
#
# Needs memccapable, memccp, memccat, memcaslap (Debian: libmemcached-tools) and
# python3 with pymemcache (Debian: python3-pymemcache); skips (77) without.
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}

missing=
for tool in memccapable memccp memccat memcaslap python3; do
    command -v $tool >/dev/null 2>&1 || missing="$missing $tool"
done
# The Python that has pymemcache (Debian's lives in /usr/bin/python3).
py=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import pymemcache' 2>/dev/null; then
        py=$p
        break
    fi
done
[ -z "$missing" ] && [ -z "$py" ] && missing="$missing pymemcache"

if [ -n "$missing" ]; then
    echo "SKIP: missing$missing (Debian packages libmemcached-tools, python3-pymemcache)"
    exit 77
fi

tmp=$(mktemp -d)
pids=
passed=0
failed=0
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }

# Starts wharfd with the memcache handler ($1: name, $2: extra options JSON,
# $3: workers); waits (bounded, 30 s) for it; sets $pid and $port.
start() {
    name=$1
    cat >"$tmp/$name.json" <<JSON
{"workers": $3, "shutdown_timeout_ms": 2000, "listeners": [
 {"name": "mc", "address": "127.0.0.1", "port": 0, "handler": "memcache",
  "timeouts": {"idle_ms": 0},
  "buffers": {"max_input": 2097152},
  "options": {$2}}]}
JSON
    : >"$tmp/$name.log"
    "$wharfd" -c "$tmp/$name.json" 2>>"$tmp/$name.log" &
    pid=$!
    pids="$pids $pid"
    i=0
    while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/$name.log"; do sleep 0.05; i=$((i + 1)); done
    port=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/$name.log" | head -n1)
    if [ -z "$port" ]; then
        fail "wharfd $name did not start: $(cat "$tmp/$name.log")"
        echo "$passed passed, $failed failed"
        exit 1
    fi
}

start a '' 2
pid_a=$pid
port_a=$port

# 1. memccapable -a: every ASCII test.
timeout 120 memccapable -h 127.0.0.1 -p "$port_a" -a >"$tmp/capable.out" 2>&1
rc=$?
npass=$(grep -c '\[pass\]' "$tmp/capable.out")
if [ $rc -eq 0 ] && grep -q "All tests passed" "$tmp/capable.out" && ! grep -q '\[FAIL\]' "$tmp/capable.out"; then
    ok "memccapable -a: $npass ASCII tests passed"
else
    fail "memccapable -a (rc $rc): $(grep -v '\[pass\]' "$tmp/capable.out" | head -20)"
fi

# 1b. memccapable -b: every binary-protocol test, on the same listener (a
# connection whose first byte is 0x80 speaks memcached's binary protocol).
timeout 120 memccapable -h 127.0.0.1 -p "$port_a" -b >"$tmp/capable_b.out" 2>&1
rc=$?
npass=$(grep -c '\[pass\]' "$tmp/capable_b.out")
if [ $rc -eq 0 ] && grep -q "All tests passed" "$tmp/capable_b.out" && ! grep -q '\[FAIL\]' "$tmp/capable_b.out"; then
    ok "memccapable -b: $npass binary tests passed"
else
    fail "memccapable -b (rc $rc): $(grep -v '\[pass\]' "$tmp/capable_b.out" | head -20)"
fi

# 1c. memcaslap (libmemcached-tools' load generator): its keys begin with
# eight 0x10 bytes, which wharf once refused with CLIENT_ERROR (memcaslap
# counts no errors, so only the server's counters show it).  After 2 s at 8
# connections the sets must have stored and the gets hit.
mc_stat() { # port names... -> "name value" lines of `stats`
    "$py" - "$@" <<'PY'
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
s.sendall(b'stats\r\n')
buf = b''
while not buf.endswith(b'END\r\n'):
    buf += s.recv(65536)
st = dict(l.split()[1:3] for l in buf.decode().splitlines() if l.startswith('STAT '))
print(' '.join(st.get(n, '0') for n in sys.argv[2:]))
PY
}
set -- $(mc_stat "$port_a" cmd_set get_hits curr_items)
set0=$1 hits0=$2
timeout 30 memcaslap -s "127.0.0.1:$port_a" -T 1 -c 8 -t 2s >"$tmp/slap.out" 2>&1
rc=$?
set -- $(mc_stat "$port_a" cmd_set get_hits curr_items)
sets=$(($1 - set0)) hits=$(($2 - hits0))
if [ $rc -eq 0 ] && [ "$sets" -ge 100 ] && [ "$hits" -ge 100 ]; then
    ok "memcaslap 2 s: $sets sets, $hits get hits, $3 items"
else
    fail "memcaslap (rc $rc): $sets sets, $hits get hits; $(tail -3 "$tmp/slap.out")"
fi

# 2. pymemcache.
if out=$(timeout 120 "$py" - "$port_a" <<'PY' 2>&1
import sys, time
from pymemcache.client.base import Client
c = Client(('127.0.0.1', int(sys.argv[1])), connect_timeout=5, timeout=10)
def check(cond, what):
    if not cond:
        raise SystemExit('failed: ' + what)
c.flush_all()
check(c.set('k', b'v1') is True, 'set')
check(c.get('k') == b'v1', 'get')
v, cas = c.gets('k')
check(v == b'v1' and cas is not None, 'gets')
check(c.cas('k', b'v2', cas) is True, 'cas with the right id')
check(c.cas('k', b'v3', cas) is False, 'cas with a stale id')
check(c.get('k') == b'v2', 'value after cas')
check(c.add('k', b'x', noreply=False) is False and c.replace('k', b'v4', noreply=False) is True, 'add/replace')
check(c.append('k', b'!', noreply=False) and c.prepend('k', b'<', noreply=False) and c.get('k') == b'<v4!', 'append/prepend')
c.set('n', b'10')
check(c.incr('n', 5) == 15, 'incr')
check(c.decr('n', 100) == 0, 'decr floors at 0')
c.set('n', b'18446744073709551615')
check(c.incr('n', 2) == 1, 'incr wraps at 2^64')
check(c.incr('absent', 1) is None, 'incr of a missing key')
check(c.touch('k', 1, noreply=False) is True and c.touch('absent', 1, noreply=False) is False, 'touch')
# Expiry times count whole seconds of the server's clock (as memcached's do), so
# "expire in 1 s" may end within the same second: 2 s leaves a slow build 1 s.
c.set('e', b'short-lived', expire=2)
check(c.get('e') == b'short-lived', 'before expiry')
time.sleep(3.1)
check(c.get('e') is None and c.get('k') is None, 'expired after touch 1 / expire 2')
check(c.delete('n') is True and c.get('n') is None, 'delete')
check(c.delete('n', noreply=False) is False, 'delete of a missing key')
big = bytes(range(256)) * 4096
check(len(big) == 1 << 20, 'size')
check(c.set('big', big) is True, 'set 1 MiB')
check(c.get('big') == big, 'get 1 MiB')
keys = {'key:%05d' % i: ('value-%d' % i).encode() for i in range(10000)}
failed = c.set_many(keys, noreply=False)
check(not failed, 'set_many 10,000 (%d failed)' % len(failed))
got = c.get_many(list(keys))
check(got == keys, 'get_many 10,000 (%d back)' % len(got))
st = c.stats()
check(st[b'curr_items'] >= 10000 and st[b'threads'] == 2, 'stats')
print('ok')
PY
) && [ "$out" = ok ]; then
    ok "pymemcache: set/get/gets/cas/incr/decr/touch/delete/expiry, 1 MiB, 10,000 keys"
else
    fail "pymemcache: $out"
fi

# 3. Two instances used together by libmemcached's tools.
start b '' 1
port_b=$port
mkdir "$tmp/files" "$tmp/back"
i=0
while [ $i -lt 200 ]; do echo "file $i $(date +%N)" >"$tmp/files/f$i"; i=$((i + 1)); done
servers="127.0.0.1:$port_a,127.0.0.1:$port_b"
python3 - "$port_a" <<'PY'
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
s.sendall(b'flush_all\r\n'); s.recv(100)
PY
(cd "$tmp/files" && timeout 60 memccp --servers="$servers" f*) >"$tmp/memccp.out" 2>&1
rc=$?
items() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
s.sendall(b'stats\r\n')
buf = b''
while not buf.endswith(b'END\r\n'):
    buf += s.recv(65536)
print([l.split()[2] for l in buf.decode().splitlines() if l.startswith('STAT curr_items ')][0])
PY
}
na=$(items "$port_a")
nb=$(items "$port_b")
bad=0
i=0
while [ $i -lt 200 ]; do
    timeout 10 memccat --servers="$servers" "f$i" >"$tmp/back/f$i" 2>/dev/null || bad=$((bad + 1))
    { cat "$tmp/files/f$i"; echo; } >"$tmp/expect" # memccat ends each value with a newline
    cmp -s "$tmp/expect" "$tmp/back/f$i" || bad=$((bad + 1))
    i=$((i + 1))
done
if [ $rc -eq 0 ] && [ $bad -eq 0 ] && [ "$na" -gt 20 ] && [ "$nb" -gt 20 ] && [ $((na + nb)) -eq 200 ]; then
    ok "memccp/memccat over two servers: 200 files spread $na/$nb, all read back"
else
    fail "memccp/memccat: rc $rc, $bad bad, spread $na/$nb; $(head -5 "$tmp/memccp.out")"
fi

# 4. 1,000 clients that send gets of a 64 KiB value and never read: the
# server keeps answering others, and its resident memory stays bounded.
if out=$(timeout 120 "$py" - "$port_a" "$pid_a" "${WHARF_SANITIZER:-none}" <<'PY' 2>&1
import socket, sys, time
port, pid, sanitizer = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def rss():
    for l in open('/proc/%s/status' % pid):
        if l.startswith('VmRSS:'):
            return int(l.split()[1]) * 1024
c = socket.create_connection(('127.0.0.1', port), timeout=10)
c.sendall(b'set big 0 0 65536\r\n' + b'x' * 65536 + b'\r\n')
assert c.recv(100) == b'STORED\r\n'
before = rss()
socks = []
for i in range(1000):
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    try:
        s.send(b'get big\r\n' * 2000)
    except BlockingIOError:
        pass
    socks.append(s)
time.sleep(2)
c.sendall(b'get big\r\n')
buf = b''
while not buf.endswith(b'END\r\n'):
    buf += c.recv(1 << 20)
assert len(buf) > 65536, 'other client not served'
after = rss()
grown = (after - before) / (1 << 20)
# Each stuck connection holds at most MC_OUTPUT_YIELD (64 KiB) + one value
# of output plus its input (about 120 MiB in all in a plain build); without
# the yield it could be max_output (16 MiB) each.  A sanitizer's shadow memory
# and ASan's quarantine of freed blocks (256 MiB) count in the RSS too.
limit = 1000 * (0.25 if sanitizer == 'none' else 0.6)
print('grown %.0f MiB' % grown)
assert grown < limit, 'rss grew %.0f MiB' % grown
for s in socks:
    s.close()
PY
); then
    ok "1,000 clients that never read: others served, $out"
else
    fail "clients that never read: $out"
fi
kill -0 "$pid_a" 2>/dev/null && ok "server still up" || fail "server died: $(tail -5 "$tmp/a.log")"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
