#!/bin/sh
# check_metrics.sh - the metrics handler as Prometheus sees it: wharfd with an
# echo listener and a metrics listener on ephemeral ports; GET /metrics is
# valid exposition text (checked by promtool, Debian's prometheus package),
# its counters move with traffic, keep-alive and pipelined requests are
# answered in order, and other paths and methods get 404 and 405.
set -u
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
tmp=$(mktemp -d)
pid=
passed=0
failed=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
if ! command -v promtool >/dev/null || ! command -v python3 >/dev/null; then
    echo "SKIP: promtool (Debian package prometheus) and python3 are needed"
    exit 77
fi

# A listener name past the label buffer, in two-byte UTF-8 characters (with
# a quote and a backslash to escape): cut at a character boundary.
long=$(python3 -c 'import json; print(json.dumps("q\\\"x" + "\u00e9" * 150, ensure_ascii=False))')
cat >"$tmp/m.json" <<JSON
{"workers": 2, "listeners": [
  {"name": "echo", "port": 0, "handler": "echo"},
  {"name": $long, "address": "127.0.0.1", "port": 0, "handler": "echo"},
  {"name": "udp", "protocol": "udp", "port": 0, "handler": "udp_echo"},
  {"name": "metrics", "port": 0, "handler": "metrics"}]}
JSON
"$wharfd" -c "$tmp/m.json" 2>"$tmp/log" &
pid=$!
i=0
while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/log"; do sleep 0.05; i=$((i + 1)); done
echo_port=$(sed -n 's/.*\[echo\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/log")
metrics_port=$(sed -n 's/.*\[metrics\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/log")
[ -n "$echo_port" ] && [ -n "$metrics_port" ] || { echo "FAIL: wharfd did not start"; cat "$tmp/log"; exit 1; }

scrape() {
    python3 - "$metrics_port" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("GET", "/metrics")
r = c.getresponse()
assert r.status == 200, r.status
assert r.getheader("Content-Type").startswith("text/plain; version=0.0.4"), r.getheader("Content-Type")
sys.stdout.write(r.read().decode())
PY
}
value() { grep "^$1 " "$2" | awk '{print $2}'; }

scrape >"$tmp/before" 2>"$tmp/err" && promtool check metrics <"$tmp/before" >"$tmp/promtool" 2>&1 &&
    ok "GET /metrics is valid exposition text (promtool check metrics)" ||
    fail "promtool: $(cat "$tmp/err" "$tmp/promtool" | tail -n 5)"

python3 - "$echo_port" <<'PY'
import socket, sys
for i in range(5):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(b"hello")
    s.recv(16)
    s.close()
PY
sleep 0.3
scrape >"$tmp/after"
a0=$(value 'wharf_connections_accepted_total{listener="echo",worker="0"}' "$tmp/before")
a1=$(value 'wharf_connections_accepted_total{listener="echo",worker="1"}' "$tmp/before")
b0=$(value 'wharf_connections_accepted_total{listener="echo",worker="0"}' "$tmp/after")
b1=$(value 'wharf_connections_accepted_total{listener="echo",worker="1"}' "$tmp/after")
bytes_before=$(grep '^wharf_bytes_received_total{listener="echo"' "$tmp/before" | awk '{s += $2} END {print s + 0}')
bytes_after=$(grep '^wharf_bytes_received_total{listener="echo"' "$tmp/after" | awk '{s += $2} END {print s + 0}')
[ $((b0 + b1 - a0 - a1)) -eq 5 ] && [ $((bytes_after - bytes_before)) -eq 25 ] &&
    grep -q '^wharf_build_info{version="' "$tmp/after" && grep -q '^wharf_generation 1$' "$tmp/after" &&
    ok "the counters move with traffic (5 connections, 25 bytes)" ||
    fail "counters: accepted $a0+$a1 -> $b0+$b1, bytes $bytes_before -> $bytes_after"

reply=$(python3 - "$metrics_port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
# Two pipelined requests on one keep-alive connection, then a 404 and a 405.
s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"
          b"GET /nope HTTP/1.1\r\n\r\nPOST /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
import re
print(" ".join(m.group(1).decode() for m in re.finditer(rb"HTTP/1\.1 (\d{3}) ", data)))
PY
)
[ "$reply" = "200 200 404 405" ] && ok "keep-alive, pipelining, 404 and 405 (then the close asked for)" ||
    fail "pipelined statuses: '$reply'"

kill -TERM "$pid"
wait "$pid" 2>/dev/null
pid=
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
