#!/bin/sh
# check_haproxy.sh - growing past one wharfd behind a real HAProxy (Debian's
# haproxy package): HAProxy on loopback balances round-robin over two wharfd
# instances with send-proxy-v2; clients bound to 127.0.0.2 talk through it;
# both instances get traffic, every echo is byte-exact, and each instance's
# connection log shows the client's own address (127.0.0.2), not HAProxy's.
. "$(dirname "$0")/lib/common.sh"
if ! command -v haproxy >/dev/null || ! command -v python3 >/dev/null; then
    echo "SKIP: haproxy (Debian package haproxy) and python3 are needed"
    exit 77
fi

# Two wharfd instances, each accepting PROXY v2 from loopback only.
for n in 1 2; do
    cat >"$tmp/w$n.json" <<JSON
{"workers": 1, "listeners": [{"name": "echo$n", "port": 0, "handler": "echo",
  "proxy_protocol": "v2", "proxy_trusted": ["127.0.0.1"], "access_log": "info"}]}
JSON
    "$wharfd" -c "$tmp/w$n.json" 2>"$tmp/w$n.log" &
    also_kill="$also_kill $!"
done
for n in 1 2; do
    i=0
    while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/w$n.log"; do sleep 0.05; i=$((i + 1)); done
done
p1=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/w1.log")
p2=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/w2.log")
front=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/haproxy.cfg" <<CFG
global
    maxconn 256
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend in
    bind 127.0.0.1:$front
    default_backend wharf
backend wharf
    balance roundrobin
    server w1 127.0.0.1:$p1 send-proxy-v2
    server w2 127.0.0.1:$p2 send-proxy-v2
CFG
haproxy -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.log" 2>&1 &
also_kill="$also_kill $!"
i=0
# (Ready once the front port accepts; the probe comes from 127.0.0.3, so it
# never looks like HAProxy's own 127.0.0.1 in the logs.)
while [ $i -lt 100 ] && ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $front), timeout=1, source_address=('127.0.0.3', 0)).close()" 2>/dev/null; do
    sleep 0.05; i=$((i + 1))
done

result=$(python3 - "$front" <<'PY'
import os, socket, sys
good = 0
for i in range(20):
    s = socket.socket()
    s.settimeout(5)
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", int(sys.argv[1])))
    data = os.urandom(1000 + i * 97)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    good += got == data
    s.close()
print(good)
PY
)
sleep 0.3
n1=$(grep -c "\] from 127.0.0.2:[0-9]*: .* closed (" "$tmp/w1.log")
n2=$(grep -c "\] from 127.0.0.2:[0-9]*: .* closed (" "$tmp/w2.log")
[ "$result" = 20 ] && ok "20 echoes through HAProxy, byte-exact" || fail "echoes: $result of 20; $(tail -n 3 "$tmp/haproxy.log")"
[ "$n1" -ge 9 ] && [ "$n2" -ge 9 ] && [ $((n1 + n2)) -ge 20 ] &&
    ok "both instances served ($n1 + $n2), each logging the client's own address 127.0.0.2" ||
    fail "instances: $n1 + $n2 lines from 127.0.0.2; $(grep closed "$tmp/w1.log" | head -n 2)"
grep -q "from 127.0.0.1:" "$tmp/w1.log" "$tmp/w2.log" &&
    fail "a connection logged HAProxy's address" || ok "no connection logged HAProxy's address"
for p in $also_kill; do kill "$p" 2>/dev/null; done
also_kill=

# Health checks are not errors: HAProxy's `check` on a send-proxy-v2 server
# sends a PROXY v2 LOCAL header and resets (with or without
# check-send-proxy); a plain TCP check connects and closes.  None of them
# counts as closed{reason="error"}, none is logged as a refused header.
cat >"$tmp/hc.json" <<JSON
{"workers": 1, "listeners": [
  {"name": "hc", "address": "127.0.0.1", "port": 0, "handler": "echo",
   "proxy_protocol": "v2", "proxy_trusted": ["127.0.0.1"]},
  {"name": "m", "address": "127.0.0.1", "port": 0, "handler": "metrics"}]}
JSON
"$wharfd" -c "$tmp/hc.json" 2>"$tmp/hc.log" &
also_kill="$!"
i=0
while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/hc.log"; do sleep 0.05; i=$((i + 1)); done
hp=$(sed -n 's/.*\[hc\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/hc.log")
mp=$(sed -n 's/.*\[m\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/hc.log")
cat >"$tmp/hc.cfg" <<CFG
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout check 2s
backend checked
    server a 127.0.0.1:$hp check inter 100 send-proxy-v2
    server b 127.0.0.1:$hp check inter 100 send-proxy-v2 check-send-proxy
listen front
    bind 127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    server c 127.0.0.1:$hp send-proxy-v2
CFG
haproxy -f "$tmp/hc.cfg" -db >"$tmp/hc-haproxy.log" 2>&1 &
also_kill="$also_kill $!"
# Plain connects without a header, closed (FIN) and reset (RST).
python3 - "$hp" <<'PY'
import socket, struct, sys
for linger in (False, True):
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        if linger:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
PY
sleep 1.5
closed=$(scrape "$mp" | awk '/^wharf_connections_closed_total\{listener="hc"/ {
        if (/reason="error"/) err += $NF; if (/reason="eof"/) eof += $NF }
    END { printf "%d %d\n", err, eof }')
[ "${closed%% *}" = 0 ] && [ "${closed#* }" -ge 20 ] && ! grep -q "PROXY header from .* refused" "$tmp/hc.log" &&
    ok "HAProxy health checks (LOCAL + reset) and bare connects close as eof, not error ($closed)" ||
    fail "health checks: error/eof closes '$closed'; $(grep -i "refused\|warn" "$tmp/hc.log" | head -n 3)"

finish
