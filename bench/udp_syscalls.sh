#!/usr/bin/env bash
# bench/udp_syscalls.sh - system calls per datagram of the UDP echo servers under run.sh's
# udp workload (wharf-load -u -c 4 -p 16 -s 64: 4 flows x 16 in flight), for
# docs/performance.md "UDP on io_uring: the best case". Per server, started fresh and pinned
# to CPU 0 (wharf-load on CPU 1): after a 1 s warm-up, `perf stat -e raw_syscalls:sys_enter`
# counts its system calls (all threads) for SECONDS, then `strace -c -f` for SECONDS gives
# them by name; the datagrams it served in each window are half of the delta of Udp
# InDatagrams in /proc/net/snmp (each echo is received twice on loopback: by the server and
# by the client). strace stops the server at every call, so its window serves fewer
# datagrams (in bigger batches); the perf figure is the undisturbed one.
#
# Usage: bench/udp_syscalls.sh [BUILD_DIR [SECONDS]]   (default build-bench, 3)
#        Needs wharfd, wharf-load and handlers built in BUILD_DIR (bench/run.sh builds them),
#        perf, strace, taskset, liburing-dev.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-bench}
SECS=${2:-3}
WORK=$(mktemp -d)
SRV=
LOAD=

cleanup() {
	[[ -n $LOAD ]] && kill "$LOAD" 2>/dev/null
	[[ -n $SRV ]] && kill "$SRV" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

CC=${CC:-cc}
$CC -O2 -Wall -o "$WORK/ref_udp_echo" "$ROOT/bench/ref_udp_echo.c"
$CC -O2 -Wall -pthread -o "$WORK/ref_udp_uring_echo" "$ROOT/bench/ref_udp_uring_echo.c" -luring
cat >"$WORK/wharfd.json" <<EOF
{ "workers": 1, "module_path": "$BUILD/handlers/.libs", "log": "info",
  "shutdown_timeout_ms": 1000,
  "listeners": [ { "name": "u", "protocol": "udp", "address": "127.0.0.1", "port": 0,
                   "handler": "udp_echo" } ] }
EOF

in_datagrams() { awk '/^Udp:/ { if (h) { print $2; exit } h = 1 }' /proc/net/snmp; }

printf '%-16s %10s %12s %10s %12s   %s\n' server "dgrams/s" "calls/dgram" "strace dg/s" \
	"calls/dgram" "strace -c: calls by name (top 4)"
for name in ref ref-udp-uring wharfd-epoll wharfd-uring; do
	case $name in
	ref) cmd=("$WORK/ref_udp_echo") ;;
	ref-udp-uring) cmd=("$WORK/ref_udp_uring_echo") ;;
	wharfd-epoll) cmd=(env WHARF_IO=epoll "$BUILD/wharfd" -c "$WORK/wharfd.json") ;;
	wharfd-uring) cmd=(env WHARF_IO=io_uring "$BUILD/wharfd" -c "$WORK/wharfd.json") ;;
	esac
	taskset -c 0 "${cmd[@]}" 2>"$WORK/srv.log" &
	SRV=$!
	port=
	for ((i = 0; i < 100; i++)); do
		port=$(sed -n 's/.*listening on udp 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/srv.log" | head -1)
		[[ -n $port ]] && break
		sleep 0.05
	done
	[[ -n $port ]] || { cat "$WORK/srv.log" >&2; exit 1; }
	taskset -c 1 "$BUILD/wharf-load" -u -t 1 -c 4 -p 16 -s 64 -d "$((2 * SECS + 4))s" \
		--no-progress "127.0.0.1:$port" >/dev/null 2>&1 &
	LOAD=$!
	sleep 1
	d0=$(in_datagrams) t0=$EPOCHREALTIME
	calls=$(perf stat -x, -e raw_syscalls:sys_enter -p "$SRV" -- sleep "$SECS" 2>&1 |
		awk -F, '/raw_syscalls/ { print $1 }')
	d1=$(in_datagrams) t1=$EPOCHREALTIME
	timeout -s INT "$SECS" strace -c -f -p "$SRV" -o "$WORK/strace.txt" 2>/dev/null || true
	d2=$(in_datagrams) t2=$EPOCHREALTIME
	kill "$LOAD" 2>/dev/null || true
	wait "$LOAD" 2>/dev/null || true
	LOAD=
	kill "$SRV"
	wait "$SRV" 2>/dev/null || true
	SRV=
	stotal=$(awk '$NF == "total" { print $4 }' "$WORK/strace.txt")
	top=$(awk '/^[ 0-9.]+ +[0-9]/ && $NF != "total" { print $NF " " $4 }' \
		"$WORK/strace.txt" | sort -k2 -nr | head -4 | awk '{ printf "%s%s %s", s, $1, $2; s = ", " }')
	awk -v n="$name" -v c="$calls" -v a="$d0" -v b="$d1" -v z="$d2" -v t0="$t0" -v t1="$t1" \
		-v t2="$t2" -v st="$stotal" -v top="$top" 'BEGIN {
		g1 = (b - a) / 2; g2 = (z - b) / 2
		printf "%-16s %10.0f %12.3f %10.0f %12.3f   %s\n", n, g1 / (t1 - t0), c / g1,
			g2 / (t2 - t1), st / g2, top }'
done
