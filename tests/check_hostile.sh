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
# The clients print how much RSS grew into $tmp/grown, then hold their
# connections until $tmp/done appears (30 s at most), while the gauge is read.
python3 - "$mport" "$pid" "$tmp/grown" "$tmp/done" <<'PY' &
import os, socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def rss_kb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
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
with open(sys.argv[3] + ".new", "w") as f:
    f.write("%d\n" % (rss_kb() - before))
os.rename(sys.argv[3] + ".new", sys.argv[3])
for _ in range(300):
    if os.path.exists(sys.argv[4]):
        break
    time.sleep(0.1)
PY
also_kill=$!
wait_file "$tmp/grown" "[0-9]"
grown=$(cat "$tmp/grown")
held=$(metric "$mport" wharf_output_buffered_total_bytes | awk '{printf "%d", $1}')
result=$grown$held
touch "$tmp/done"
wait "$also_kill"
also_kill=
# Each client may hold about 64 KiB of pending answers plus one page.
# (A sanitizer's allocator keeps up to 256 MiB of freed memory in quarantine:
# RSS says nothing there, and only the output wharf holds is judged.)
rss_bound=24000
[ "${WHARF_SANITIZER:-none}" != none ] && rss_bound=1000000
[ -n "$result" ] && [ "$held" -le $((10 * 160 * 1024)) ] && [ "$grown" -le $rss_bound ] &&
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
