#!/usr/bin/env bash
# bench/run.sh - wharfd side by side with the echo servers users would otherwise pick.
#
# Builds wharfd and wharf-load (out of tree), builds two reference servers with cc -O2
# (bench/ref_epoll_echo.c: a minimal single-threaded epoll TCP echo, the floor for CPU per
# message and memory per connection; bench/ref_udp_echo.c: recvmmsg/sendmmsg UDP echo), then
# runs the same wharf-load workloads against each server in one run and prints a table:
# rate, p50/p99 latency, server CPU time per message, server RSS per connection, and each
# figure's ratio to wharfd. Finally it checks wharfd against the targets (docs/performance.md).
#
# Usage: bench/run.sh [OPTIONS]
#   --quick              shorter runs (warm-up 0.5 s, measurement 1.5 s), ~2 minutes in all
#   --warmup S           warm-up per run, excluded from every figure (default 1)
#   --duration S         measurement per run (default 4)
#   --servers LIST       comma-separated subset of: wharfd,ref,node,asyncio,threading
#                        (default all that are installed; wharfd is always run)
#   --workloads LIST     comma-separated subset of: echo50,echo1k,idle10k,churn,big,udp
#   --idle-conns N       connections in the idle workload (default 10000)
#   --build-dir DIR      where to configure and build (default build-bench/ in the repository)
#   --no-build           use the binaries already in the build directory
#   --out DIR            results: table.md, results.tsv, wharf-load JSON and server logs
#                        (default BUILD-DIR/bench-results)
#   --server-cpu N, --load-cpu N
#                        CPUs the server and the generator are pinned to (default 0 and 1)
#   -h, --help
#
# Environment: CC (default cc), NODE (default node), PYTHON (default python3), JOBS (make -j).
#
# Servers (each one fresh for every workload, each bound to 127.0.0.1 on an ephemeral port):
#   wharfd     this build, "workers": 1, handlers echo / udp_echo (one acceptor thread and one
#              worker thread; both are pinned to the server CPU and both are counted)
#   ref        bench/ref_epoll_echo (TCP) or bench/ref_udp_echo (UDP), single-threaded
#   node       Node.js: net (TCP) or dgram (UDP), bench/peers/node_echo.js
#   asyncio    Python asyncio Protocol / DatagramProtocol, bench/peers/asyncio_echo.py
#   threading  Python socketserver.ThreadingTCPServer (TCP only), bench/peers/threading_echo.py
#
# Workloads (wharf-load, one generator thread; messages 64 B unless said, closed loop,
# one message in flight per connection):
#   echo50     50 connections
#   echo1k     1,000 connections
#   idle10k    10,000 connections, open loop at 1,000 msg/s in all (one message per
#              connection every 10 s): mostly idle. The figure that matters is RSS/conn.
#   churn      50 connections, each closed after one echo and replaced: connections/s
#   big        10 connections, 64 KiB messages
#   udp        UDP, 4 flows x 16 datagrams in flight, 64 B
#
# Fairness: every server gets the same single CPU (taskset --server-cpu), the generator the
# other one (--load-cpu), so no server can use more than one core whatever its thread count.
# Same wharf-load arguments, message sizes, warm-up and duration for every server; the
# warm-up (connection set-up included) is excluded from all figures.
#
# How the figures are taken:
#   rate, p50, p99  wharf-load's JSON report (latency: wharf-load's "corrected" histogram,
#                   which in closed loop equals the plain one). churn: exchanges/s, and each
#                   connection carries one exchange, so it is the accept rate.
#   CPU/msg         server utime+stime from /proc/PID/stat (all threads, clock ticks) over a
#                   window inside the measurement period, which starts once the warm-up is
#                   over and every connection is open (counted in /proc/PID/fd), divided by
#                   (window length x measured rate). churn: CPU per connection.
#   RSS/conn        (VmRSS with the connections open - VmRSS before the generator started)
#                   / connections, from /proc/PID/status: user-space memory only (kernel
#                   socket buffers are not in RSS). TCP workloads other than churn.
# A server that cannot do a workload is shown as "-"; one whose run had errors is marked "!"
# (see the notes under the table and the JSON in --out).
#
# Exit status: 0 when the run completed (whatever the targets say), 1 on a setup failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-bench
OUT=
WARMUP=1
DURATION=4
IDLE_CONNS=10000
SERVERS=wharfd,ref,node,asyncio,threading
WORKLOADS=echo50,echo1k,idle10k,churn,big,udp
NO_BUILD=0
SERVER_CPU=0
LOAD_CPU=1
CC=${CC:-cc}
NODE=${NODE:-node}
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die() {
	echo "bench/run.sh: $*" >&2
	exit 1
}

while (($#)); do
	case $1 in
	--quick) WARMUP=0.5 DURATION=1.5 ;;
	--warmup) WARMUP=${2:?--warmup needs a value}; shift ;;
	--duration) DURATION=${2:?--duration needs a value}; shift ;;
	--servers) SERVERS=${2:?--servers needs a value}; shift ;;
	--workloads) WORKLOADS=${2:?--workloads needs a value}; shift ;;
	--idle-conns) IDLE_CONNS=${2:?--idle-conns needs a value}; shift ;;
	--build-dir) BUILD=${2:?--build-dir needs a value}; shift ;;
	--no-build) NO_BUILD=1 ;;
	--out) OUT=${2:?--out needs a value}; shift ;;
	--server-cpu) SERVER_CPU=${2:?--server-cpu needs a value}; shift ;;
	--load-cpu) LOAD_CPU=${2:?--load-cpu needs a value}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option: $1 (try --help)" ;;
	esac
	shift
done
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ && $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
	die "--warmup and --duration take seconds"
[[ $IDLE_CONNS =~ ^[0-9]+$ && $IDLE_CONNS -ge 1 ]] || die "--idle-conns takes a count"
BUILD=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)
OUT=${OUT:-$BUILD/bench-results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/*.json "$OUT"/*.log "$OUT"/results.tsv "$OUT"/table.md

# ---- process bookkeeping: everything started is killed by its PID on exit ---------------
PIDS=()

forget_pid() {
	local p keep=()
	for p in "${PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# Stops one process: SIGTERM, up to 5 s to go, then SIGKILL.
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget_pid "$pid"
}

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	PIDS=()
	[[ -n ${WORK:-} ]] && rm -rf "$WORK"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wharf-bench.XXXXXX")

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---- helpers ----------------------------------------------------------------------------
now() { echo "$EPOCHREALTIME"; }

# fsleep UNTIL: sleeps until the EPOCHREALTIME value UNTIL (no-op if it has passed)
fsleep_until() {
	local d
	d=$(awk -v u="$1" -v n="$EPOCHREALTIME" 'BEGIN { d = u - n; printf "%.3f", (d > 0 ? d : 0) }')
	[[ $d == 0.000 ]] || sleep "$d"
}

# utime + stime of the whole process (all threads), in clock ticks
cpu_ticks() {
	local s f
	s=$(<"/proc/$1/stat")
	s=${s##*) }
	read -r -a f <<<"$s"
	echo $((f[11] + f[12]))
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

fd_count() {
	local fds=("/proc/$1/fd/"*)
	echo "${#fds[@]}"
}

fcalc() { awk "BEGIN { printf \"%.15g\", $1 }"; }

# json FILE EXPR: one value from a wharf-load report (jq, or python3 as a fallback)
json() {
	if command -v jq >/dev/null; then
		jq -r "$2" "$1"
	else
		"$PYTHON" - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].lstrip(".").replace('"', "").split("."):
    d = d[k]
print(d)
EOF
	fi
}

# ---- build -----------------------------------------------------------------------------
if ((NO_BUILD == 0)); then
	log "building wharfd and wharf-load in $BUILD"
	if [[ ! -x $ROOT/configure ]]; then
		(cd "$ROOT" && ./autogen.sh) >"$OUT/build.log" 2>&1 || {
			tail -20 "$OUT/build.log" >&2
			die "autogen.sh failed (log: $OUT/build.log)"
		}
	fi
	if [[ ! -f $BUILD/Makefile ]]; then
		(cd "$BUILD" && "$ROOT/configure" --quiet) >>"$OUT/build.log" 2>&1 || {
			tail -20 "$OUT/build.log" >&2
			die "configure failed (log: $OUT/build.log)"
		}
	fi
	make -C "$BUILD" -j"$JOBS" wharfd wharf-load handlers/echo.la handlers/udp_echo.la \
		>>"$OUT/build.log" 2>&1 || {
		tail -20 "$OUT/build.log" >&2
		die "make failed (log: $OUT/build.log)"
	}
fi
WHARFD=$BUILD/wharfd
WLOAD=$BUILD/wharf-load
MODDIR=$BUILD/handlers/.libs
[[ -x $WHARFD && -x $WLOAD ]] || die "no wharfd or wharf-load in $BUILD (drop --no-build)"
[[ -e $MODDIR/echo.so && -e $MODDIR/udp_echo.so ]] || die "no handler modules in $MODDIR"
mkdir -p "$BUILD/bench"
for ref in ref_epoll_echo ref_udp_echo; do
	"$CC" -O2 -Wall -o "$BUILD/bench/$ref" "$ROOT/bench/$ref.c" || die "cannot build $ref"
done

# ---- environment -------------------------------------------------------------------------
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=65536
ulimit -n "$hard"
NCPU=$(nproc)
PIN=1
if ! command -v taskset >/dev/null || ((NCPU < 2)) ||
	((SERVER_CPU >= NCPU || LOAD_CPU >= NCPU || SERVER_CPU == LOAD_CPU)); then
	PIN=0
	log "warning: not pinning (need taskset and two distinct CPUs < $NCPU)"
fi
PY=
if command -v "$PYTHON" >/dev/null; then
	PY=$("$PYTHON" -c 'import sys; print(sys.executable)')
fi
have_server() {
	case $1 in
	wharfd | ref) return 0 ;;
	node) command -v "$NODE" >/dev/null ;;
	asyncio | threading) [[ -n $PY ]] ;;
	*) return 1 ;;
	esac
}

pinned() { # pinned CPU CMD...: runs CMD on CPU (exec, so $! is CMD's PID)
	local cpu=$1
	shift
	if ((PIN)); then
		exec taskset -c "$cpu" "$@"
	else
		exec "$@"
	fi
}

write_wharfd_config() { # PROTO FILE
	local handler=echo
	[[ $1 == udp ]] && handler=udp_echo
	cat >"$2" <<EOF
{
    "workers": 1,
    "max_connections": 100000,
    "module_path": "$MODDIR",
    "log": "info",
    "shutdown_timeout_ms": 1000,
    "listeners": [
        { "name": "bench", "protocol": "$1", "address": "127.0.0.1", "port": 0,
          "handler": "$handler" }
    ]
}
EOF
}

# start_server NAME PROTO LOG: sets SRV_PID and SRV_PORT; returns 1 if NAME cannot do PROTO
start_server() {
	local name=$1 proto=$2 logf=$3 cmd i
	case $name/$proto in
	wharfd/*)
		write_wharfd_config "$proto" "$WORK/wharfd-$proto.json"
		cmd=("$WHARFD" -c "$WORK/wharfd-$proto.json") ;;
	ref/tcp) cmd=("$BUILD/bench/ref_epoll_echo") ;;
	ref/udp) cmd=("$BUILD/bench/ref_udp_echo") ;;
	node/*) cmd=("$NODE" "$ROOT/bench/peers/node_echo.js" "$proto" 0) ;;
	asyncio/*) cmd=("$PY" "$ROOT/bench/peers/asyncio_echo.py" "$proto" 0) ;;
	threading/tcp) cmd=("$PY" "$ROOT/bench/peers/threading_echo.py" 0) ;;
	*) return 1 ;;
	esac
	(pinned "$SERVER_CPU" "${cmd[@]}") </dev/null >"$logf" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	SRV_PORT=
	for ((i = 0; i < 200; i++)); do # up to 10 s
		SRV_PORT=$(sed -n "s/.*listening on $proto 127\.0\.0\.1:\([0-9]*\).*/\1/p" "$logf" | head -1)
		[[ -n $SRV_PORT ]] && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	if [[ -z $SRV_PORT ]]; then
		tail -5 "$logf" >&2
		stop_pid "$SRV_PID"
		die "$name did not start (log: $logf)"
	fi
	sleep 0.2 # let it settle before the baseline RSS
}

# workload NAME: sets WL_PROTO, WL_CONNS, WL_WAIT_FDS (1: window starts once all are open),
# WL_WARM, WL_DUR and WL_ARGS (wharf-load arguments)
workload() {
	WL_PROTO=tcp WL_WAIT_FDS=1 WL_WARM=$WARMUP WL_DUR=$DURATION
	case $1 in
	echo50) WL_CONNS=50 WL_ARGS=(-c 50 -s 64) ;;
	echo1k) WL_CONNS=1000 WL_ARGS=(-c 1000 -s 64) ;;
	idle10k)
		WL_CONNS=$IDLE_CONNS
		# connecting 10,000 takes a while (more for the thread-per-connection server): the
		# measurement window starts once all are open, so give the warm-up room for it
		WL_WARM=$(fcalc "$WARMUP + 3")
		WL_ARGS=(-c "$IDLE_CONNS" -s 64 -r 1000 --ramp 20000 --connect-timeout 5s) ;;
	churn) WL_CONNS=50 WL_WAIT_FDS=0 WL_ARGS=(-c 50 -s 64 --churn 1) ;;
	big) WL_CONNS=10 WL_ARGS=(-c 10 -s 65536) ;;
	udp) WL_PROTO=udp WL_CONNS=4 WL_WAIT_FDS=0 WL_ARGS=(-u -c 4 -p 16 -s 64) ;;
	*) die "unknown workload: $1" ;;
	esac
}

# measure WORKLOAD SERVER: one run; appends a line to results.tsv
measure() {
	local wl=$1 srv=$2 tag=$1-$2 rss0 fd0 t_launch t_start t_end c0 c1 rss1 load_pid
	local rate p50 p99 errors cpu_us=- rss_b=- note="" i rc=0 win
	local tsv=$OUT/results.tsv
	workload "$wl"
	if ! have_server "$srv" || ! start_server "$srv" "$WL_PROTO" "$OUT/$tag.server.log"; then
		printf '%s\t%s\t-\t-\t-\t-\t-\t-\tnot applicable or not installed\n' "$wl" "$srv" >>"$tsv"
		return 0
	fi
	log "$wl: $srv (pid $SRV_PID, port $SRV_PORT)"
	rss0=$(rss_kb "$SRV_PID")
	fd0=$(fd_count "$SRV_PID")
	t_launch=$(now)
	(pinned "$LOAD_CPU" timeout -k 5 "$(fcalc "$WL_WARM + $WL_DUR + 30")" "$WLOAD" -t 1 \
		-w "$WL_WARM" -d "$WL_DUR" --json --no-progress "${WL_ARGS[@]}" \
		"127.0.0.1:$SRV_PORT") >"$OUT/$tag.json" 2>"$OUT/$tag.load.log" &
	load_pid=$!
	PIDS+=("$load_pid")

	# the CPU window: from the end of the warm-up (and all connections open) to just before
	# the end of the measurement period
	fsleep_until "$(fcalc "$t_launch + $WL_WARM + 0.2")"
	if ((WL_WAIT_FDS)); then
		for ((i = 0; i < 400; i++)); do # bounded by the measurement period
			(($(fd_count "$SRV_PID") >= fd0 + WL_CONNS)) && break
			[[ $(awk -v n="$EPOCHREALTIME" -v e="$(fcalc "$t_launch + $WL_WARM + $WL_DUR - 1")" \
				'BEGIN { print (n > e) }') == 1 ]] && break
			sleep 0.05
		done
	fi
	t_start=$(now)
	c0=$(cpu_ticks "$SRV_PID")
	rss1=$(rss_kb "$SRV_PID")
	if ((WL_WAIT_FDS)) && (($(fd_count "$SRV_PID") < fd0 + WL_CONNS)); then
		note="only $(($(fd_count "$SRV_PID") - fd0)) of $WL_CONNS connections open;"
		rss1=
	fi
	fsleep_until "$(fcalc "$t_launch + $WL_WARM + $WL_DUR - 0.2")"
	t_end=$(now)
	c1=$(cpu_ticks "$SRV_PID")
	wait "$load_pid" || rc=$?
	forget_pid "$load_pid"
	stop_pid "$SRV_PID"

	if ((rc >= 2)) || ! json "$OUT/$tag.json" .rate >/dev/null 2>&1; then
		note+=" wharf-load exit $rc: $(tail -1 "$OUT/$tag.load.log")"
		printf '%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n' "$wl" "$srv" "$note" >>"$tsv"
		return 0
	fi
	rate=$(json "$OUT/$tag.json" .rate)
	p50=$(json "$OUT/$tag.json" .latency_ns.corrected.p50)
	p99=$(json "$OUT/$tag.json" .latency_ns.corrected.p99)
	errors=$(json "$OUT/$tag.json" .errors)
	((errors == 0)) || note+=" $errors errors: $(json "$OUT/$tag.json" .first_error);"
	win=$(fcalc "$t_end - $t_start")
	if [[ $(fcalc "$win >= 0.5 && $rate > 0") == 1 ]]; then
		cpu_us=$(fcalc "($c1 - $c0) / $(getconf CLK_TCK) / $win / $rate * 1e6")
	else
		note+=" no steady window for CPU;"
	fi
	if [[ $wl != churn && $WL_PROTO == tcp && -n $rss1 ]]; then
		rss_b=$(fcalc "($rss1 - $rss0) * 1024 / $WL_CONNS")
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$wl" "$srv" "$rate" "$p50" "$p99" "$cpu_us" \
		"$rss_b" "$errors" "${note# }" >>"$tsv"
}

# ---- run ---------------------------------------------------------------------------------
IFS=, read -r -a WL_LIST <<<"$WORKLOADS"
IFS=, read -r -a SRV_LIST <<<"$SERVERS"
[[ " ${SRV_LIST[*]} " == *" wharfd "* ]] || SRV_LIST=(wharfd "${SRV_LIST[@]}")
for s in "${SRV_LIST[@]}"; do
	case $s in wharfd | ref | node | asyncio | threading) ;; *) die "unknown server: $s" ;; esac
	have_server "$s" || log "$s: not installed, shown as -"
done
for w in "${WL_LIST[@]}"; do workload "$w"; done # validates the names

printf 'workload\tserver\trate\tp50_ns\tp99_ns\tcpu_us_per_msg\trss_b_per_conn\terrors\tnote\n' \
	>"$OUT/results.tsv"
T0=$SECONDS
for w in "${WL_LIST[@]}"; do
	for s in "${SRV_LIST[@]}"; do
		measure "$w" "$s"
	done
done

# ---- report ------------------------------------------------------------------------------
{
	echo "Machine: $NCPU CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
		"Linux $(uname -r); wharf $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
	echo "Run: warm-up ${WARMUP}s, measurement ${DURATION}s per server and workload;" \
		"server pinned to CPU $SERVER_CPU, wharf-load (1 thread) to CPU $LOAD_CPU$( ((PIN)) || echo ' (NOT pinned)')"
	echo
	awk -F'\t' '
	function num(x) { return x != "-" && x != "" }
	function frate(x) { return x >= 1e6 ? sprintf("%.2fM", x / 1e6) : x >= 1e3 ? sprintf("%.1fk", x / 1e3) : sprintf("%.0f", x) }
	function fns(x) { return x >= 1e6 ? sprintf("%.2f ms", x / 1e6) : sprintf("%.0f µs", x / 1e3) }
	function fus(x) { return sprintf("%.2f µs", x) }
	function fb(x) { return x >= 10240 ? sprintf("%.1f KiB", x / 1024) : sprintf("%.0f B", x) }
	function cell(v, base, kind,   s) {
		if (!num(v)) return "-"
		s = kind == "rate" ? frate(v) : kind == "ns" ? fns(v) : kind == "us" ? fus(v) : fb(v)
		if (num(base) && base != 0 && !isw) s = s sprintf(" (%.2f×)", v / base)
		return s
	}
	NR == 1 { next }
	{ n++; W[n] = $1; S[n] = $2; R[n] = $3; P5[n] = $4; P9[n] = $5; C[n] = $6; M[n] = $7; E[n] = $8; N[n] = $9
	  if ($2 == "wharfd") { bR[$1] = $3; bP5[$1] = $4; bP9[$1] = $5; bC[$1] = $6; bM[$1] = $7 } }
	END {
		label["echo50"] = "64 B echo, 50 conns"; label["echo1k"] = "64 B echo, 1,000 conns"
		label["idle10k"] = "idle, " IDLE " conns"; label["churn"] = "churn (conns/s)"
		label["big"] = "64 KiB echo, 10 conns"; label["udp"] = "UDP 64 B, 4×16"
		print "| workload | server | rate (msg/s) | p50 | p99 | server CPU/msg | RSS/conn |"
		print "|---|---|---:|---:|---:|---:|---:|"
		for (i = 1; i <= n; i++) {
			w = W[i]; isw = S[i] == "wharfd"
			mark = (num(E[i]) && E[i] > 0) || N[i] ~ /only/ ? " !" : ""
			printf "| %s | %s%s | %s | %s | %s | %s | %s |\n", (w == pw ? "" : label[w]), S[i], mark,
				cell(R[i], bR[w], "rate"), cell(P5[i], bP5[w], "ns"), cell(P9[i], bP9[w], "ns"),
				cell(C[i], bC[w], "us"), cell(M[i], bM[w], "b")
			pw = w
		}
		print ""
		print "Ratios in parentheses are to wharfd in the same workload."
		for (i = 1; i <= n; i++)
			if (N[i] != "" && N[i] !~ /not applicable/ && (E[i] > 0 || N[i] ~ /only|exit|steady/))
				printf "! %s / %s: %s\n", W[i], S[i], N[i]
	}' IDLE="$IDLE_CONNS" "$OUT/results.tsv"
	echo
	echo "Targets (wharfd against the references, from this run):"
	awk -F'\t' '
	NR > 1 { v[$1 "/" $2 "/rate"] = $3; v[$1 "/" $2 "/cpu"] = $6; v[$1 "/" $2 "/rss"] = $7 }
	function ok(x) { return x != "" && x != "-" }
	function ratio(what, wl, a, b, limit, ge,   r, verdict) {
		if (!ok(v[wl "/wharfd/" a]) || !ok(v[wl "/ref/" b]) || v[wl "/ref/" b] == 0) {
			printf "- %s: not measured\n", what; return
		}
		r = v[wl "/wharfd/" a] / v[wl "/ref/" b]
		verdict = ge ? (r >= limit ? "MET" : "MISSED") : (r <= limit ? "MET" : "MISSED")
		printf "- %s: %.3f× (target %s %.2f×): %s\n", what, r, ge ? ">=" : "<=", limit, verdict
	}
	END {
		ratio("TCP CPU/msg at 50 conns vs ref_epoll_echo", "echo50", "cpu", "cpu", 1.10, 0)
		ratio("TCP CPU/msg at 1,000 conns vs ref_epoll_echo", "echo1k", "cpu", "cpu", 1.10, 0)
		ratio("UDP rate vs ref_udp_echo (recvmmsg/sendmmsg)", "udp", "rate", "rate", 0.90, 1)
		if (ok(v["idle10k/wharfd/rss"]))
			printf "- RSS per idle connection at %d conns: %.0f B (target <= 1024 B): %s\n", IDLE,
				v["idle10k/wharfd/rss"], v["idle10k/wharfd/rss"] <= 1024 ? "MET" : "MISSED"
		else
			print "- RSS per idle connection: not measured"
		ratio("churn rate vs ref_epoll_echo", "churn", "rate", "rate", 0.90, 1)
	}' IDLE="$IDLE_CONNS" "$OUT/results.tsv"
} | tee "$OUT/table.md"
log "done in $((SECONDS - T0)) s; results in $OUT"
