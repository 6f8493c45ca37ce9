#!/usr/bin/env bash
# bench/soak.sh - the soak: 10^7 verified echoes through wharfd on each event-loop backend
# (epoll and io_uring), none lost, the server's own byte counts equal to the client's.
#
# For each backend a fresh wharfd (2 workers, the echo handler, 127.0.0.1, a free port)
# takes three phases of wharf-load, which verifies every echo byte for byte (payload and
# CRC32c; counts: lost, mismatch, short, reorder, duplicate, ...):
#   pipelined   60 % of the messages, 50 connections, 4 in flight each, 40 B to 2 KiB
#   many        30 %, 1,000 connections, one in flight each, 64 B
#   churn       10 %, 50 connections closed and reopened every 100 echoes, 40 B to 16 KiB
# A phase passes when wharf-load passes, every message sent was received and measured, and
# every error counter is 0.  Then wharfd stops (SIGTERM) and the bytes in and out that it
# logs for the listener must both equal the bytes the phases sent; its peak RSS is shown.
# Exit status 0 when both backends pass (a backend the kernel does not offer is skipped,
# saying so), 1 otherwise.  Not part of make check (minutes of load).
#
# Usage: bench/soak.sh [--count N (total per backend; default 10000000)]
#        [--backends "epoll io_uring"] [--build-dir DIR (default: the repository)]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT
COUNT=10000000
BACKENDS="epoll io_uring"
while [ $# -gt 0 ]; do
	case $1 in
	--count) COUNT=$2; shift 2 ;;
	--backends) BACKENDS=$2; shift 2 ;;
	--build-dir) BUILD=$(cd "$2" && pwd); shift 2 ;;
	*) echo "usage: $0 [--count N] [--backends LIST] [--build-dir DIR]" >&2; exit 2 ;;
	esac
done
WHARFD=$BUILD/wharfd
LOAD=$BUILD/wharf-load
for f in "$WHARFD" "$LOAD" "$BUILD/handlers/.libs/echo.so"; do
	[ -e "$f" ] || { echo "soak: $f is missing: build first (./configure && make)" >&2; exit 2; }
done
export WHARF_MODULE_PATH=$BUILD/handlers/.libs
OUT=$(mktemp -d /tmp/wharf-soak.XXXXXX)
SRV=
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	rm -rf "$OUT"
}
trap cleanup EXIT
cat >"$OUT/echo.json" <<'EOF'
{ "workers": 2,
  "listeners": [ { "protocol": "tcp", "address": "127.0.0.1", "port": 0, "handler": "echo" } ] }
EOF

# json FILE EXPR: one value of a wharf-load --json report.
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$@"; }

# phase NAME N ARGS...: runs wharf-load for N verified echoes; adds its bytes to $sent_bytes.
phase() {
	local name=$1 n=$2
	shift 2
	local rep=$OUT/$io.$name.json t0=$SECONDS
	"$LOAD" -q --json -n "$n" -d 30m "$@" "127.0.0.1:$port" >"$rep" || true
	local bad
	bad=$(python3 - "$rep" "$n" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); n = int(sys.argv[2]); c = d["counters"]
why = []
if not d["pass"]: why.append("fail: " + d["fail_reasons"])
for k in ("sent", "received", "measured"):
    if c[k] != n: why.append("%s %d of %d" % (k, c[k], n))
if c["bytes_sent"] != c["bytes_received"]: why.append("bytes %d sent, %d back" % (c["bytes_sent"], c["bytes_received"]))
ok = {"sent", "received", "measured", "bytes_sent", "bytes_received", "connects", "churn_closes"}
for k, v in c.items():
    if k not in ok and v: why.append("%s %d" % (k, v))
if d["errors"]: why.append("errors %d (%s)" % (d["errors"], d["first_error"]))
print("; ".join(why))
PY
)
	local b rate
	b=$(json "$rep" "['counters']['bytes_sent']")
	rate=$(json "$rep" "['rate']")
	sent_bytes=$((sent_bytes + b))
	printf '  %-9s %9d echoes %12d bytes %9.0f msg/s %4d s  %s\n' "$name" "$n" "$b" "$rate" \
		$((SECONDS - t0)) "${bad:-ok}"
	[ -z "$bad" ] || failed=1
}

"$WHARFD" -t -c "$OUT/echo.json" >/dev/null || exit 1
failed=0 ran=0
for io in $BACKENDS; do
	if ! why=$(WHARF_IO=$io "$WHARFD" -t -c "$OUT/echo.json" 2>&1); then
		echo "$io: skipped (this kernel does not offer it): $why"
		continue
	fi
	ran=$((ran + 1))
	WHARF_IO=$io "$WHARFD" -c "$OUT/echo.json" >"$OUT/$io.log" 2>&1 &
	SRV=$!
	port=
	for _ in $(seq 100); do
		port=$(sed -n 's/.*listening on tcp 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$OUT/$io.log")
		[ -n "$port" ] && break
		kill -0 "$SRV" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$port" ]; then
		echo "$io: wharfd did not start:"; cat "$OUT/$io.log"; exit 1
	fi
	echo "$io (wharfd pid $SRV, port $port):"
	sent_bytes=0
	p1=$((COUNT * 6 / 10)) p2=$((COUNT * 3 / 10))
	p3=$((COUNT - p1 - p2))
	phase pipelined "$p1" -c 50 -t 2 -p 4 -s 40-2048 --seed 11
	phase many "$p2" -c 1000 -t 2 -s 64 --seed 12
	phase churn "$p3" -c 50 -t 2 --churn 100 -s 40-16384 --seed 13 \
		--source 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4
	rss=$(sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/$SRV/status")
	kill -TERM "$SRV"
	wait "$SRV" || true
	SRV=
	# "[tcp-0] N connections, IN bytes in, OUT bytes out": the listener's totals at exit
	line=$(grep -E '\[tcp-0\] [0-9]+ connections, [0-9]+ bytes in, [0-9]+ bytes out' \
		"$OUT/$io.log" | tail -1)
	bin=$(echo "$line" | sed -n 's/.* \([0-9]*\) bytes in.*/\1/p')
	bout=$(echo "$line" | sed -n 's/.* \([0-9]*\) bytes out.*/\1/p')
	if [ "$bin" = "$sent_bytes" ] && [ "$bout" = "$sent_bytes" ]; then
		echo "  server: $bin bytes in, $bout bytes out (= sent); peak RSS $rss"
	else
		echo "  server: '${line:-no totals logged}' but the client sent $sent_bytes bytes"
		failed=1
	fi
done
[ $ran -gt 0 ] || { echo "soak: no backend ran"; exit 1; }
[ $failed = 0 ] && echo "soak: passed" || echo "soak: FAILED"
exit $failed
