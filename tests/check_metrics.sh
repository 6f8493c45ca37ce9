#!/bin/sh
# check_metrics.sh - the metrics handler as Prometheus sees it: wharfd with an
# echo listener and a metrics listener on ephemeral ports; GET /metrics is
# valid exposition text (checked by promtool, Debian's prometheus package),
# its counters move with traffic, keep-alive and pipelined requests are
# answered in order, and other paths and methods get 404 and 405.  Then the
# health endpoints (/readyz 503 while mod_crash stalls a worker), the
# histograms under a known workload, process_open_fds, drops by reason, the
# limit gauges, and a real Prometheus scrape of it all.
set -u
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
tmp=$(mktemp -d)
pid=
passed=0
failed=0
prom_pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null
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

# ---- health endpoints, histograms, process_*, limits, drops by reason -----------
# A second server: mod_crash ("stall N" blocks its worker N ms), a UDP echo
# with a rate limit, and a metrics listener with a short ready_timeout_ms.
cat >"$tmp/h.json" <<JSON
{"workers": 2, "max_connections": 500, "listeners": [
  {"name": "echo", "port": 0, "handler": "echo"},
  {"name": "stall", "port": 0, "handler": "mod_crash"},
  {"name": "udp", "protocol": "udp", "port": 0, "handler": "udp_echo", "rate_limit": 5},
  {"name": "metrics", "port": 0, "handler": "metrics", "options": {"ready_timeout_ms": 300}}]}
JSON
"$wharfd" -c "$tmp/h.json" 2>"$tmp/hlog" &
pid=$!
i=0
while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/hlog"; do sleep 0.05; i=$((i + 1)); done
echo_port=$(sed -n 's/.*\[echo\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/hlog")
stall_port=$(sed -n 's/.*\[stall\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/hlog")
udp_port=$(sed -n 's/.*\[udp\] listening on udp [^ ]*:\([0-9]*\).*/\1/p' "$tmp/hlog" | head -n 1)
metrics_port=$(sed -n 's/.*\[metrics\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/hlog")
[ -n "$echo_port" ] && [ -n "$stall_port" ] && [ -n "$udp_port" ] && [ -n "$metrics_port" ] ||
    { echo "FAIL: wharfd (health) did not start"; cat "$tmp/hlog"; exit 1; }
# get PATH: prints "STATUS BODY" (body on one line).
get() {
    python3 - "$metrics_port" "$1" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("GET", sys.argv[2])
r = c.getresponse()
print(r.status, r.read().decode().strip())
PY
}
hv() { value "$1" "$2" | head -n 1; }

[ "$(get /healthz)" = "200 ok" ] && [ "$(get /readyz)" = "200 ready" ] &&
    ok "/healthz 200 ok, /readyz 200 ready" || fail "health: $(get /healthz) / $(get /readyz)"

# Histograms: a connection held 300 ms lands above le=0.25 and within le=1;
# its first byte written 150 ms after accept lands above le=0.1, within le=1.
sleep 0.3
scrape >"$tmp/h0"
python3 - "$echo_port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
time.sleep(0.15)
s.sendall(b"x")
s.recv(16)
time.sleep(0.15)
s.close()
PY
sleep 0.3
scrape >"$tmp/h1"
d() { echo $(( $(hv "$1" "$tmp/h1") - $(hv "$1" "$tmp/h0") )); }
dur='wharf_connection_duration_seconds_bucket{listener="echo",le='
ttfb='wharf_time_to_first_byte_seconds_bucket{listener="echo",le='
moved="$(d "$dur\"0.25\"}") $(d "$dur\"1\"}") $(d "$ttfb\"0.1\"}") $(d "$ttfb\"1\"}")"
moved="$moved $(d 'wharf_connection_duration_seconds_count{listener="echo"}')"
[ "$moved" = "0 1 0 1 1" ] && [ "$(d 'wharf_handler_duration_seconds_count{listener="echo"}')" -ge 1 ] &&
    ok "histograms: a 300 ms connection in (0.25, 1], its first byte at 150 ms in (0.1, 1], handler calls counted" ||
    fail "histogram deltas (dur<=0.25 dur<=1 ttfb<=0.1 ttfb<=1 count): $moved"

# process_open_fds follows open connections: 20 more while they are open.
python3 - "$echo_port" "$metrics_port" >"$tmp/fds" <<'PY'
import socket, sys, time
def fds():
    c = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5)
    c.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.close()
    time.sleep(0.3)
    for line in data.decode().splitlines():
        if line.startswith("process_open_fds "):
            return int(line.split()[1])
before = fds()
conns = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) for _ in range(20)]
for s in conns:
    s.sendall(b"x"); s.recv(4)
during = fds()
for s in conns:
    s.close()
time.sleep(0.3)
after = fds()
print(before, during, after)
PY
read f0 f1 f2 <"$tmp/fds"
[ -n "$f0" ] && [ $((f1 - f0)) -ge 20 ] && [ $((f1 - f0)) -le 22 ] && [ $((f2 - f0)) -le 2 ] &&
    ok "process_open_fds: $f0 -> $f1 with 20 connections open -> $f2 after they closed" ||
    fail "process_open_fds: $f0 -> $f1 -> $f2"

# Drops by reason: 40 datagrams at once against rate_limit 5/s; the reasons
# add up to the total.  And the configured limits.
python3 - "$udp_port" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(40):
    s.sendto(b"ping", ("127.0.0.1", int(sys.argv[1])))
PY
sleep 0.3
scrape >"$tmp/h2"
rl=$(hv 'wharf_datagrams_dropped_by_reason_total{listener="udp",reason="rate_limit"}' "$tmp/h2")
by=$(grep '^wharf_datagrams_dropped_by_reason_total{listener="udp"' "$tmp/h2" | awk '{s += $2} END {print s + 0}')
tot=$(grep '^wharf_datagrams_dropped_total{listener="udp"' "$tmp/h2" | awk '{s += $2} END {print s + 0}')
[ "${rl:-0}" -ge 30 ] && [ "$by" = "$tot" ] && [ "$(hv wharf_max_connections "$tmp/h2")" = 500 ] &&
    [ "$(hv 'wharf_listener_rate_limit{listener="udp"}' "$tmp/h2")" = 5 ] &&
    promtool check metrics <"$tmp/h2" >"$tmp/promtool" 2>&1 &&
    ok "drops by reason (rate_limit $rl of 40, reasons sum to the total $tot), limit gauges, promtool" ||
    fail "drops: rate_limit=$rl by_reason=$by total=$tot; $(tail -n 3 "$tmp/promtool")"

# /readyz goes 503 while a worker is stuck, naming it, and 200 once it is
# back.  The stalled connection's worker W is found from the metrics page;
# the next connections go to the other, less loaded, worker.
python3 - "$stall_port" "$metrics_port" >"$tmp/ready" <<'PY'
import http.client, socket, sys, time
def get(path):
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]), timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read().decode().strip()
    c.close()
    time.sleep(0.2)
    return r.status, body
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"hi"); s.recv(4)
time.sleep(0.2)
_, page = get("/metrics")
stuck = [l.split('worker="')[1].split('"')[0] for l in page.splitlines()
         if l.startswith('wharf_connections_open{listener="stall"') and l.endswith(" 1")]
s.sendall(b"stall 1500")
time.sleep(0.1)
t0 = time.time()
st, body = get("/readyz")
took = time.time() - t0
hs, _ = get("/healthz")
time.sleep(1.6)
st2, body2 = get("/readyz")
print("%s|%d|%s|%.2f|%d|%d|%s" % (stuck[0] if stuck else "?", st, body, took, hs, st2, body2))
PY
IFS='|' read w st body took hs st2 body2 <"$tmp/ready"
[ "$st" = 503 ] && [ "$body" = "not ready: worker $w did not answer within 300 ms" ] &&
    [ "$hs" = 200 ] && [ "$st2" = 200 ] && [ "$body2" = ready ] &&
    ok "/readyz 503 naming worker $w while it is stuck (answered in ${took}s; /healthz 200), 200 after" ||
    fail "readyz while stuck: $(cat "$tmp/ready")"

# A real Prometheus scrapes it (1 s interval): the target is up (the page
# parses), and the new series are stored and queryable.
if command -v prometheus >/dev/null; then
    prom_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$tmp/prom.yml" <<YML
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: wharf
    static_configs: [{targets: ["127.0.0.1:$metrics_port"]}]
YML
    prometheus --config.file="$tmp/prom.yml" --storage.tsdb.path="$tmp/tsdb" \
        --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prom.log" 2>&1 &
    prom_pid=$!
    python3 - "$prom_port" >"$tmp/promq" <<'PY'
import json, sys, time, urllib.parse, urllib.request
def q(expr):
    url = "http://127.0.0.1:%s/api/v1/query?query=%s" % (sys.argv[1], urllib.parse.quote(expr))
    try:
        r = json.load(urllib.request.urlopen(url, timeout=2))["data"]["result"]
        return float(r[0]["value"][1]) if r else None
    except Exception:
        return None
exprs = ['up{job="wharf"}', 'wharf_connection_duration_seconds_count{listener="echo"}',
         'process_open_fds', 'process_start_time_seconds',
         'histogram_quantile(0.5, wharf_time_to_first_byte_seconds_bucket{listener="echo"})',
         'sum(wharf_datagrams_dropped_by_reason_total{reason="rate_limit"})', 'wharf_max_connections']
deadline = time.time() + 40
while True:
    vals = [q(e) for e in exprs]
    if all(v is not None for v in vals) or time.time() > deadline:
        break
    time.sleep(0.5)
print(" ".join("-" if v is None else "%g" % v for v in vals))
PY
    kill "$prom_pid" 2>/dev/null
    wait "$prom_pid" 2>/dev/null
    prom_pid=
    read up conns fds start q50 rl maxc <"$tmp/promq"
    [ "$up" = 1 ] && [ "$conns" = 21 ] && [ "$fds" != - ] && [ "$start" != - ] && [ "$q50" != - ] &&
        [ "$rl" != - ] && [ "$maxc" = 500 ] &&
        ok "Prometheus scraped it: up, 21 echo connections in the duration histogram, process_open_fds $fds, median first byte ${q50}s" ||
        fail "Prometheus queries (up conns fds start q50 rate_limit max): $(cat "$tmp/promq"); $(tail -n 3 "$tmp/prom.log")"
else
    echo "SKIP: no prometheus binary: the real scrape is not checked"
fi

kill -TERM "$pid"
wait "$pid" 2>/dev/null
pid=
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
