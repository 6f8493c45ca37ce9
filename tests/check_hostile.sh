#!/bin/sh
# check_hostile.sh - memory a hostile client can make a shipped handler
# hold, on a real wharfd (the numbers in docs/security.md's table): ten
# clients pipelining 67 KB of `GET /metrics` that never read must leave the
# server within a small bound (RSS and wharf_output_buffered_total_bytes).
. "$(dirname "$0")/lib/common.sh"
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }

# ---- metrics: pipelined requests from clients that never read ----
cat >"$tmp/metrics.json" <<JSON
{"workers": 2, "listeners": [{"name": "m", "address": "127.0.0.1", "port": 0, "handler": "metrics"}]}
JSON
start_wharfd -c "$tmp/metrics.json"
mport=$(port_of m)
result=$(python3 - "$mport" "$pid" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def rss_kb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
def gauge():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    for line in data.decode().splitlines():
        if line.startswith("wharf_output_buffered_total_bytes "):
            return int(float(line.split()[1]))
before = rss_kb()
req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
blob = req * (67000 // len(req))
conns = []
for _ in range(10):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    conns.append([s, blob])
end = time.time() + 3
while time.time() < end and any(c[1] for c in conns):
    for c in conns:
        if c[1]:
            try:
                n = c[0].send(c[1])
                c[1] = c[1][n:]
            except BlockingIOError:
                pass
    time.sleep(0.01)
time.sleep(1.0)
print(rss_kb() - before, gauge())
PY
)
grown=${result%% *}
held=${result#* }
# Each client may hold about 64 KiB of pending answers plus one page.
[ -n "$result" ] && [ "$held" -le $((10 * 160 * 1024)) ] && [ "$grown" -le 24000 ] &&
    ok "metrics: ten pipelining clients that never read: RSS +$grown kB, output held $held bytes" ||
    fail "metrics: RSS grew $grown kB, output held $held bytes"
# A client that pipelines as much and reads gets every answer.
got=$(python3 - "$mport" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
req = b"GET /metrics HTTP/1.1\r\n\r\n"
s.sendall(req * 499 + b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    data += b
print(data.count(b"HTTP/1.1 200 OK\r\n"))
PY
)
[ "$got" = 500 ] && ok "metrics: 500 pipelined requests from a client that reads: 500 answers" ||
    fail "metrics: a reading client got $got of 500 answers"
stop_wharfd

finish
