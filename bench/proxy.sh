#!/usr/bin/env bash
# bench/proxy.sh - wharfd's proxy handler against HAProxy, and epoll_ctl per message.
#
# 1. epoll_ctl calls per message (perf stat, syscalls:sys_enter_epoll_ctl, over 2 s of the
#    measurement) of wharfd with 1 worker and the echo, proxy and memcache handlers under
#    wharf-load, 50 connections, one 64 B message (memcache: its get/set mix) in flight each.
# 2. The proxy handler (1 worker) against HAProxy (`mode tcp`, `nbthread 1`), both in front of
#    the same bench/ref_epoll_echo backend, 50 connections of 64 B ping-pong: rate and server
#    CPU per message (utime + stime from /proc/PID/stat over the same window), runs
#    alternating HAProxy / wharfd; the ratios are each wharfd run against the HAProxy run
#    before it, and the result is their median.
#
# The servers are pinned to CPU 0, the generator and the backend to CPU 1.
#
# Usage: bench/proxy.sh [--runs N (default 3)] [--duration S (default 4)] [--build-dir DIR]
# Needs a built tree (wharfd, wharf-load, handlers) in --build-dir (default: the repository),
# haproxy for part 2 and perf (with access to the syscalls tracepoints) for part 1; a part
# whose tool is missing is skipped with a note.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT
RUNS=3
DURATION=4
while (($#)); do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--build-dir) BUILD=$2; shift 2 ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
((DURATION >= 3)) || DURATION=3 # the window is 2 s inside the measurement
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
cc -O2 -Wall -pthread -o "$tmp/ref" "$ROOT/bench/ref_epoll_echo.c"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { local s; s=$(<"/proc/$1/stat"); s=${s##*) }; read -r -a f <<<"$s"; echo $((f[11] + f[12])); }
HZ=$(getconf CLK_TCK)

BACKEND=$(free_port)
taskset -c 1 "$tmp/ref" -p "$BACKEND" 2>/dev/null &
pids+=($!)

# server KIND PORT: starts wharfd (echo, proxy, memcache) or haproxy on PORT; sets SRV
server() {
	local kind=$1 port=$2 i
	if [[ $kind == haproxy ]]; then
		printf 'global\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nfrontend f\n  bind 127.0.0.1:%s\n  default_backend b\nbackend b\n  server s1 127.0.0.1:%s\n' \
			"$port" "$BACKEND" >"$tmp/h.cfg"
		taskset -c 0 haproxy -f "$tmp/h.cfg" -db >"$tmp/srv.log" 2>&1 &
	else
		local opt='{}'
		[[ $kind == proxy ]] && opt="{\"upstream\": \"127.0.0.1:$BACKEND\"}"
		printf '{"workers": 1, "log": "warn", "module_path": "%s", "max_connections": 10000,\n "listeners": [{"name": "b", "address": "127.0.0.1", "port": %s, "handler": "%s", "options": %s}]}\n' \
			"$BUILD/handlers/.libs" "$port" "$kind" "$opt" >"$tmp/w.json"
		taskset -c 0 "$BUILD/wharfd" -c "$tmp/w.json" >"$tmp/srv.log" 2>&1 &
	fi
	SRV=$!
	pids+=("$SRV")
	for ((i = 0; i < 100; i++)); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && return 0
		kill -0 "$SRV" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench/proxy.sh: $kind did not start:" >&2
	cat "$tmp/srv.log" >&2
	exit 1
}

# measure KIND [perf]: prints "rate cpu_us_per_msg epoll_ctl_per_msg"
measure() {
	local kind=$1 port load=(-s 64) t0 t1 ctl=- lp
	port=$(free_port)
	server "$kind" "$port"
	[[ $kind == memcache ]] && load=(--proto memcache)
	taskset -c 1 "$BUILD/wharf-load" -c 50 -t 1 -w 1 -d "$DURATION" -j "${load[@]}" "127.0.0.1:$port" \
		>"$tmp/load.json" 2>"$tmp/load.err" &
	lp=$!
	sleep 2 # the warm-up and 1 s of the measurement
	t0=$(cpu_ticks "$SRV")
	if [[ ${2:-} == perf ]]; then
		perf stat -x, -e syscalls:sys_enter_epoll_ctl -p "$SRV" -o "$tmp/perf.txt" -- sleep 2
		ctl=$(awk -F, '/epoll_ctl/ { print $1 }' "$tmp/perf.txt")
	else
		sleep 2
	fi
	t1=$(cpu_ticks "$SRV")
	wait "$lp" || { cat "$tmp/load.err" >&2; echo "bench/proxy.sh: wharf-load failed against $kind" >&2; exit 1; }
	kill "$SRV"
	wait "$SRV" 2>/dev/null || true
	python3 - "$tmp/load.json" "$((t1 - t0))" "$HZ" "$ctl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rate = r["results"]["rate"] if "results" in r else r["rate"]
ticks, hz, ctl = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
msgs = rate * 2.0
print(f"{rate:.0f} {ticks / hz * 1e6 / msgs:.2f} " + (f"{int(ctl) / msgs:.3f}" if ctl.isdigit() else "-"))
PY
}

echo "1. epoll_ctl per message, wharfd 1 worker, 50 connections"
if perf stat -e syscalls:sys_enter_epoll_ctl -- true >/dev/null 2>&1; then
	printf '%-9s %9s %12s %14s\n' handler msg/s cpu_us/msg epoll_ctl/msg
	for h in echo proxy memcache; do
		read -r rate cpu ctl < <(measure "$h" perf)
		printf '%-9s %9s %12s %14s\n' "$h" "$rate" "$cpu" "$ctl"
	done
else
	echo "(skipped: perf cannot count syscalls:sys_enter_epoll_ctl here)"
fi
echo
echo "2. proxy handler against HAProxy (mode tcp, nbthread 1), same ref_epoll_echo backend"
if ! command -v haproxy >/dev/null; then
	echo "(skipped: no haproxy)"
	exit 0
fi
printf 'run  %-8s %9s %12s\n' server msg/s cpu_us/msg
: >"$tmp/res"
for ((k = 1; k <= RUNS; k++)); do
	for s in haproxy proxy; do
		read -r rate cpu _ < <(measure "$s")
		printf '%-4s %-8s %9s %12s\n' "$k" "$s" "$rate" "$cpu"
		echo "$s $rate $cpu" >>"$tmp/res"
	done
done
python3 - "$tmp/res" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
h = [r for r in rows if r[0] == "haproxy"]
w = [r for r in rows if r[0] == "proxy"]
rate = statistics.median(float(b[1]) / float(a[1]) for a, b in zip(h, w))
cpu = statistics.median(float(b[2]) / float(a[2]) for a, b in zip(h, w))
print("rate ratios by pair: " + " ".join(f"{float(b[1]) / float(a[1]):.3f}" for a, b in zip(h, w)))
print("CPU ratios by pair:  " + " ".join(f"{float(b[2]) / float(a[2]):.3f}" for a, b in zip(h, w)))
print(f"rate ratio wharfd proxy / HAProxy (median of pairs): {rate:.3f} (target >= 1.00)")
print(f"CPU/msg ratio wharfd proxy / HAProxy (median of pairs): {cpu:.3f} (target <= 1.00)")
PY
