#!/usr/bin/env bash
# bench/run.sh - wharfd side by side with the echo servers users would otherwise pick.
#
# Builds wharfd and wharf-load (out of tree), builds the reference servers with cc -O2
# (bench/ref_epoll_echo.c: a minimal single-threaded epoll TCP echo, the floor for CPU per
# message and memory per connection; bench/ref_udp_echo.c: a recvmmsg/sendmmsg UDP echo;
# and the io_uring ones, bench/ref_uring_echo.c for TCP, bench/ref_udp_uring_echo.c for UDP),
# runs the same wharf-load workloads against every server in one run, prints a table (rate,
# p50/p99 latency, server CPU per message and CPU use, RSS per connection, each figure's
# ratio to wharfd) and checks wharfd against its targets (docs/performance.md).
#
# Usage: bench/run.sh [OPTIONS]
#   --quick              short runs: warm-up 0.5 s, measurement 1.5 s, one repetition
#                        (about 2 minutes; the default run takes about 6.5)
#   --warmup S           warm-up per run, excluded from every figure (default 1)
#   --duration S         measurement per run (default 3)
#   --repeat N           runs per server and workload, interleaved; the table shows the
#                        least disturbed one (see below) (default 2)
#   --servers LIST       comma-separated subset of wharfd,ref,node,asyncio,threading
#                        (default all of these; wharfd always runs; one not installed
#                        shows "-"), plus ref-uring,ref-udp-uring,wharfd-epoll,wharfd-uring,
#                        ref-epoll,ref-epoll-busy (below)
#   --workloads LIST     comma-separated subset of echo50,echo1k,idle10k,churn,big,udp,
#                        plus udpoff (below; not in the default list)
#   --extra LIST         comparisons run after the table, each with its own script
#                        (default churn2,churn2rst,memcache; "" for none): churn2 =
#                        bench/churn.sh (2 workers vs a 2-thread SO_REUSEPORT epoll
#                        server; rate >= 0.90x at CPU/conn <= 1.25x), churn2rst = the same
#                        with clients that reset their connections (churn.sh --rst),
#                        memcache = bench/memcache.sh (the memcache handler vs memcached,
#                        memcaslap; ops/s >= 0.95x at CPU/op <= 1.00x); their targets are
#                        listed after theirs
#   --idle-conns N       connections in the idle workload (default 10000)
#   --build-dir DIR      where to configure and build (default build-bench/ in the repository)
#   --no-build           use the binaries already in the build directory
#   --out DIR            results: table.md, results.tsv (every run), wharf-load JSON and
#                        server logs (default BUILD-DIR/bench-results)
#   --server-cpu N, --load-cpu N
#                        CPUs the server and the generator are pinned to (default 0 and 1)
#   --no-wait-quiet      do not wait for an idle machine before each run
#   -h, --help
# Environment: CC (default cc), NODE (default node), PYTHON (default python3), JOBS (make -j).
#
# Servers (started fresh for every run, bound to 127.0.0.1 on ephemeral ports):
#   wharfd     this build, "workers": 1, handler echo or udp_echo: one acceptor thread and
#              one worker thread, both pinned to the server CPU and both counted
#   ref        bench/ref_epoll_echo (TCP) or bench/ref_udp_echo (UDP), one thread
#   node       Node.js net (TCP) or dgram (UDP): bench/peers/node_echo.js
#   asyncio    Python asyncio Protocol / DatagramProtocol: bench/peers/asyncio_echo.py
#   threading  Python socketserver.ThreadingTCPServer, TCP only: bench/peers/threading_echo.py
# and, named with --servers (not in the default list):
#   ref-uring       bench/ref_uring_echo, TCP: the io_uring reference (multishot accept,
#                   multishot recv into a provided buffer ring, sends batched per turn)
#   ref-udp-uring   bench/ref_udp_uring_echo, UDP: the io_uring reference (multishot recvmsg
#                   into a provided buffer ring, one sendmsg SQE per datagram from its buffer)
#   wharfd-epoll    wharfd as above with WHARF_IO=epoll ("wharfd" runs on "io": "auto",
#   wharfd-uring    io_uring where available) and with WHARF_IO=io_uring
# and, for diagnosis only (UDP; not in the default list, name them with --servers):
#   ref-epoll       ref_udp_echo -e: the UDP reference as an epoll event loop must run it
#   ref-epoll-busy  ref_udp_echo -E: the same, leaving the epoll set while busy
#                   (docs/performance.md, Findings)
#   wharfd-gso      wharfd with "udp_gso": true on its listener (UDP only)
#   wharfd-gro      wharfd with "udp_gso" and "udp_gro" (UDP only)
#
# Workloads (wharf-load, 64 B messages unless said, closed loop, one message in flight per
# connection unless said):
#   echo50     50 connections
#   echo1k     1,000 connections
#   idle10k    10,000 connections, open loop at 1,000 msg/s in all (one message per
#              connection every 10 s): mostly idle. The figure that matters is RSS/conn.
#   churn      64 connections, each closed after one echo and replaced at once; the server
#              listens on 8 ports and 8 generators (8 connections each, all on the load CPU)
#              share the load, because with one destination the client's connect() spends
#              most of its time looking for a reusable TIME_WAIT port (docs/performance.md)
#   big        10 connections, 64 KiB messages
#   udp        UDP, 4 flows x 16 datagrams in flight
#   udpoff     the same with wharf-load --udp-offload: the client sends each batch as one
#              GSO send and reads with UDP_GRO, as QUIC stacks do (not in the default list)
#
# Fairness: every server runs on the same one CPU (taskset --server-cpu), the generator on the
# other (--load-cpu), so no server can use more than one core whatever its thread count. The
# wharf-load arguments, message sizes, warm-up and duration are the same for every server,
# and the warm-up (connection set-up included) is excluded from every figure.
#
# How the figures are taken:
#   rate, p50, p99  wharf-load's JSON report ("corrected" latency; in closed loop it equals
#                   the plain one). churn: exchanges/s; each connection carries one exchange,
#                   so it is the accept rate.
#   CPU/msg         server utime+stime from /proc/PID/stat (all threads, clock ticks) over a
#                   window inside the measurement period that starts once the warm-up is over
#                   and every connection is open (counted in /proc/PID/fd), divided by
#                   (window x measured rate). churn: CPU per connection.
#   srv CPU         the same ticks as a share of one CPU: 100% means the server was the
#                   bottleneck, less means the generator (or the round trip) was.
#   load CPU        the same for the generator process(es) (wharf-load), on the other CPU.
#                   On loopback the sender's system call also runs the receiver's TCP/UDP
#                   input path, so each side pays part of the other's kernel work.
#   RSS/conn        (VmRSS with the connections open - VmRSS before the generator started),
#                   /proc/PID/status, divided by the connections open: user-space memory
#                   only (kernel socket buffers are not in RSS). TCP, not churn.
# Other processes: before each run the script waits (up to 60 s) until the machine is idle,
# and during the window it counts the CPU time used by every other process (from
# /proc/*/stat, reaped children included; "other" in results.tsv). With --repeat N the table shows, per server and
# workload, a complete run with the least other CPU, ties going to the higher rate. A figure
# taken with more than 10% of a CPU used by others is marked "!" with a note under the table
# (kernel threads count as others: a few % is the workload's own softirq work).
#
# Exit status: 0 when the run completed (whatever the targets say), 1 on a setup failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-bench
OUT=
WARMUP=1
DURATION=3
REPEAT=2
IDLE_CONNS=10000
SERVERS=wharfd,ref,node,asyncio,threading
WORKLOADS=echo50,echo1k,idle10k,churn,big,udp
EXTRA=churn2,churn2rst,memcache
NO_BUILD=0
WAIT_QUIET=1
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
	--quick) WARMUP=0.5 DURATION=1.5 REPEAT=1 ;;
	--warmup) WARMUP=${2:?--warmup needs a value}; shift ;;
	--duration) DURATION=${2:?--duration needs a value}; shift ;;
	--repeat) REPEAT=${2:?--repeat needs a value}; shift ;;
	--servers) SERVERS=${2:?--servers needs a value}; shift ;;
	--workloads) WORKLOADS=${2:?--workloads needs a value}; shift ;;
	--extra) EXTRA=${2-}; shift ;;
	--idle-conns) IDLE_CONNS=${2:?--idle-conns needs a value}; shift ;;
	--build-dir) BUILD=${2:?--build-dir needs a value}; shift ;;
	--no-build) NO_BUILD=1 ;;
	--no-wait-quiet) WAIT_QUIET=0 ;;
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
[[ $REPEAT =~ ^[0-9]+$ && $REPEAT -ge 1 ]] || die "--repeat takes a count"
[[ $SERVER_CPU =~ ^[0-9]+$ && $LOAD_CPU =~ ^[0-9]+$ ]] || die "--server-cpu and --load-cpu take a CPU number"
BUILD=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)

# one benchmark at a time on this machine: two would measure each other
exec 9>"${TMPDIR:-/tmp}/wharf-bench.lock"
if ! flock -n 9; then
	echo "bench/run.sh: another benchmark is running; waiting for it (up to 15 minutes)" >&2
	flock -w 900 9 || die "gave up waiting for the other benchmark"
fi

OUT=${OUT:-$BUILD/bench-results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/*.json "$OUT"/*.log "$OUT"/*.hist "$OUT"/results.tsv "$OUT"/table.md

# ---- process bookkeeping: everything started is killed by its PID on exit ---------------
PIDS=()

forget_pid() {
	local p keep=()
	for p in "${PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# stop_pid PID: SIGTERM, up to 5 s to go, then SIGKILL
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
fcalc() { awk "BEGIN { printf \"%.15g\", ($1) }"; }

# fsleep_until T: sleeps until the $EPOCHREALTIME value T (at once if it has passed)
fsleep_until() {
	local d
	d=$(awk -v u="$1" -v n="$EPOCHREALTIME" 'BEGIN { d = u - n; printf "%.3f", (d > 0 ? d : 0) }')
	[[ $d == 0.000 ]] || sleep "$d"
}

before() { [[ $(awk -v t="$1" -v n="$EPOCHREALTIME" 'BEGIN { print (n < t) }') == 1 ]]; }

# cpu_ticks PID...: utime + stime of the processes (all their threads), in clock ticks
cpu_ticks() {
	local pid s f sum=0
	for pid; do
		s=$(<"/proc/$pid/stat") || continue
		s=${s##*) }
		read -r -a f <<<"$s"
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}

# busy_ticks: non-idle time of all CPUs, in clock ticks (USER_HZ, like /proc/PID/stat)
busy_ticks() {
	local f
	read -r -a f </proc/stat # cpu user nice system idle iowait irq softirq steal ...
	echo $((f[1] + f[2] + f[3] + f[6] + f[7] + f[8]))
}

# others_ticks PID...: CPU time (ticks) of every process but the PIDs given and this script,
# children they reaped included (utime + stime + cutime + cstime), so that short-lived
# processes (a compiler run by make) count once their parent has waited for them
others_ticks() {
	# a process that exits between the glob and its read makes cat fail: not an error here
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v skip=" $* $$ " '
		{ pid = $1; sub(/^.*\) /, "")
		  if (index(skip, " " pid " ") == 0) sum += $12 + $13 + $14 + $15 }
		END { printf "%d\n", sum }'
}

# alive PID: the process runs (a child that exited stays a zombie until waited for)
alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s:0:1} != [ZX] ]]
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

fd_count() {
	local fds=("/proc/$1/fd/"*)
	echo "${#fds[@]}"
}

# wait_quiet: up to 60 s until the machine used < 10% of one CPU over half a second
wait_quiet() {
	local b0 b1 i
	((WAIT_QUIET)) || return 0
	for ((i = 0; i < 100; i++)); do
		b0=$(busy_ticks)
		sleep 0.5
		b1=$(busy_ticks)
		(((b1 - b0) * 200 / CLK_TCK < 10)) && return 0
		((i == 0)) && log "waiting for other processes to quiet down (machine busy)"
	done
	log "warning: the machine stayed busy; measuring anyway"
}

# json FILE EXPR: one value from a wharf-load report (jq, or python3 as a fallback)
json() {
	if command -v jq >/dev/null; then
		jq -r "$2 // \"\"" "$1"
	else
		"$PYTHON" - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].lstrip(".").replace('"', "").split("."):
    d = d.get(k, "") if isinstance(d, dict) else ""
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
	make -C "$BUILD" -j"$JOBS" wharfd wharf-load handlers/echo.la handlers/udp_echo.la handlers/memcache.la \
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
	"$CC" -O2 -Wall -pthread -o "$BUILD/bench/$ref" "$ROOT/bench/$ref.c" || die "cannot build $ref"
done
"$CC" -O2 -Wall -pthread -o "$BUILD/bench/ref_uring_echo" "$ROOT/bench/ref_uring_echo.c" -luring ||
	die "cannot build ref_uring_echo (liburing-dev)"
"$CC" -O2 -Wall -pthread -o "$BUILD/bench/ref_udp_uring_echo" "$ROOT/bench/ref_udp_uring_echo.c" \
	-luring || die "cannot build ref_udp_uring_echo (liburing-dev)"

# ---- environment -------------------------------------------------------------------------
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=65536
ulimit -n "$hard"
((hard >= IDLE_CONNS + 100)) ||
	log "warning: the descriptor limit ($hard) is below --idle-conns; idle10k will fall short"
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
PIN=1
if ! command -v taskset >/dev/null || ((NCPU < 2)) ||
	((SERVER_CPU >= NCPU || LOAD_CPU >= NCPU || SERVER_CPU == LOAD_CPU)); then
	PIN=0
	log "warning: not pinning (needs taskset and two distinct CPUs below $NCPU)"
fi
PY=
if command -v "$PYTHON" >/dev/null; then
	PY=$("$PYTHON" -c 'import sys; print(sys.executable)')
fi

have_server() {
	case $1 in
	wharfd | wharfd-epoll | wharfd-uring | wharfd-gso | wharfd-gro | ref | ref-uring | ref-udp-uring | \
		ref-epoll | ref-epoll-busy) return 0 ;;
	node) command -v "$NODE" >/dev/null ;;
	asyncio | threading) [[ -n $PY ]] ;;
	*) return 1 ;;
	esac
}

# pinned CPU CMD...: runs CMD on CPU; it execs, so in "(pinned ...) &" $! is CMD's PID
pinned() {
	local cpu=$1
	shift
	if ((PIN)); then
		exec taskset -c "$cpu" "$@"
	else
		exec "$@"
	fi
}

# write_wharfd_config PROTO LISTENERS FILE [KEYS]: KEYS (e.g. ', "udp_gso": true') go into
# every listener
write_wharfd_config() {
	local handler=echo i sep= keys=${4:-}
	[[ $1 == udp ]] && handler=udp_echo
	{
		printf '{\n    "workers": 1,\n    "max_connections": 100000,\n'
		printf '    "module_path": "%s",\n    "log": "info",\n' "$MODDIR"
		printf '    "shutdown_timeout_ms": 1000,\n    "listeners": ['
		for ((i = 0; i < $2; i++)); do
			printf '%s\n        { "name": "bench%d", "protocol": "%s", "address": "127.0.0.1",' \
				"$sep" "$i" "$1"
			printf ' "port": 0, "handler": "%s"%s }' "$handler" "$keys"
			sep=,
		done
		printf '\n    ]\n}\n'
	} >"$3"
}

# start_server NAME PROTO LISTENERS LOG: sets SRV_PID and SRV_PORTS (one per listener);
# returns 1 when NAME cannot serve PROTO
start_server() {
	local name=$1 proto=$2 nl=$3 logf=$4 cmd i
	case $name/$proto in
	wharfd/* | wharfd-epoll/* | wharfd-uring/* | wharfd-gso/udp | wharfd-gro/udp)
		local keys=
		[[ $name == wharfd-gso ]] && keys=', "udp_gso": true'
		[[ $name == wharfd-gro ]] && keys=', "udp_gso": true, "udp_gro": true'
		write_wharfd_config "$proto" "$nl" "$WORK/wharfd.json" "$keys"
		cmd=("$WHARFD" -c "$WORK/wharfd.json")
		[[ $name == wharfd-epoll ]] && cmd=(env WHARF_IO=epoll "${cmd[@]}")
		[[ $name == wharfd-uring ]] && cmd=(env WHARF_IO=io_uring "${cmd[@]}")
		;;
	ref-uring/tcp) cmd=("$BUILD/bench/ref_uring_echo" -n "$nl") ;;
	ref-udp-uring/udp) cmd=("$BUILD/bench/ref_udp_uring_echo" -n "$nl") ;;
	ref/tcp) cmd=("$BUILD/bench/ref_epoll_echo" -n "$nl") ;;
	ref/udp) cmd=("$BUILD/bench/ref_udp_echo") ;;
	ref-epoll/udp) cmd=("$BUILD/bench/ref_udp_echo" -e) ;;
	ref-epoll-busy/udp) cmd=("$BUILD/bench/ref_udp_echo" -E) ;;
	node/*) cmd=("$NODE" "$ROOT/bench/peers/node_echo.js" "$proto" 0 "$nl") ;;
	asyncio/*) cmd=("$PY" "$ROOT/bench/peers/asyncio_echo.py" "$proto" 0 "$nl") ;;
	threading/tcp) cmd=("$PY" "$ROOT/bench/peers/threading_echo.py" 0 "$nl") ;;
	*) return 1 ;;
	esac
	(pinned "$SERVER_CPU" "${cmd[@]}") </dev/null >"$logf" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	SRV_PORTS=()
	for ((i = 0; i < 200; i++)); do # up to 10 s
		mapfile -t SRV_PORTS < <(sed -n "s/.*listening on $proto 127\.0\.0\.1:\([0-9]*\).*/\1/p" "$logf")
		((${#SRV_PORTS[@]} >= nl)) && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	if ((${#SRV_PORTS[@]} < nl)); then
		tail -5 "$logf" >&2
		stop_pid "$SRV_PID"
		die "$name did not start (log: $logf)"
	fi
	sleep 0.2 # settle before the baseline RSS
}

# workload NAME: sets WL_PROTO, WL_CONNS (in all), WL_PORTS (listeners, one generator each),
# WL_WAIT_FDS (1: the window starts once all connections are open), WL_WARM, WL_DUR and
# WL_ARGS (wharf-load arguments but -c)
workload() {
	WL_PROTO=tcp WL_PORTS=1 WL_WAIT_FDS=1 WL_WARM=$WARMUP WL_DUR=$DURATION
	case $1 in
	echo50) WL_CONNS=50 WL_ARGS=(-s 64) ;;
	echo1k) # 1,000 connects at once overflow the 511 backlog of the slower servers; SYNs
		# are retried after 1 s and 3 s, so the warm-up leaves room for that
		WL_CONNS=1000 WL_WARM=$(fcalc "$WARMUP + 2") WL_ARGS=(-s 64) ;;
	idle10k)
		# connecting takes a while (seconds for the thread-per-connection server); the
		# window starts once all are open, so the warm-up leaves room for it
		WL_CONNS=$IDLE_CONNS WL_WARM=$(fcalc "$WARMUP + 5")
		WL_ARGS=(-s 64 -r 1000 --ramp 5000 --connect-timeout 5s) ;;
	churn) WL_CONNS=64 WL_PORTS=8 WL_WAIT_FDS=0 WL_ARGS=(-s 64 --churn 1) ;;
	big) WL_CONNS=10 WL_ARGS=(-s 65536) ;;
	udp) WL_PROTO=udp WL_CONNS=4 WL_WAIT_FDS=0 WL_ARGS=(-u -p 16 -s 64) ;;
	udpoff) WL_PROTO=udp WL_CONNS=4 WL_WAIT_FDS=0 WL_ARGS=(-u -p 16 -s 64 --udp-offload) ;;
	*) die "unknown workload: $1" ;;
	esac
}

row() { # the 13 columns of results.tsv, tab-separated
	local IFS=$'\t'
	echo "$*" >>"$OUT/results.tsv"
}

# measure WORKLOAD SERVER REP: one run; appends a line to results.tsv
measure() {
	local wl=$1 srv=$2 rep=$3 tag=$1-$2-$3 rss0 fd0 open t_launch t_start t_end c0 c1 g0 g1 b0 b1
	local rate p50 p99 errors cpu_us=- util=- gutil=- rss_b=- other=- note="" i rc=0 e win p rss1
	local lp=() gp=() hists=()
	workload "$wl"
	if ! have_server "$srv" || ! start_server "$srv" "$WL_PROTO" "$WL_PORTS" "$OUT/$tag.server.log"; then
		row "$wl" "$srv" "$rep" - - - - - - - - - "not applicable or not installed"
		return 0
	fi
	log "$wl: $srv, run $rep (pid $SRV_PID, port ${SRV_PORTS[*]})"
	rss0=$(rss_kb "$SRV_PID")
	fd0=$(fd_count "$SRV_PID")
	t_launch=$EPOCHREALTIME
	for ((i = 0; i < WL_PORTS; i++)); do
		local args=(-t 1 -c "$((WL_CONNS / WL_PORTS))" -w "$WL_WARM" -d "$WL_DUR" --json
			--no-progress "${WL_ARGS[@]}")
		((WL_PORTS > 1)) && args+=(-o "$OUT/$tag.$i.hist") && hists+=("$OUT/$tag.$i.hist")
		(pinned "$LOAD_CPU" timeout -k 5 "$(fcalc "$WL_WARM + $WL_DUR + 30")" "$WLOAD" \
			"${args[@]}" "127.0.0.1:${SRV_PORTS[i]}") >"$OUT/$tag.$i.json" 2>"$OUT/$tag.$i.load.log" &
		lp+=("$!")
		PIDS+=("$!")
	done

	# the window: from the end of the warm-up (and every connection open) to just before the
	# end of the measurement period
	fsleep_until "$(fcalc "$t_launch + $WL_WARM + 0.2")"
	if ((WL_WAIT_FDS)); then
		local give_up
		give_up=$(fcalc "$t_launch + $WL_WARM + $WL_DUR - 1")
		while (($(fd_count "$SRV_PID") < fd0 + WL_CONNS)) && before "$give_up"; do
			sleep 0.05
		done
	fi
	for p in "${lp[@]}"; do # timeout's child: the generator itself
		gp+=("$(pgrep -P "$p" || echo "$p")")
	done
	t_start=$EPOCHREALTIME
	b0=$(others_ticks "$SRV_PID" "${gp[@]}" "${lp[@]}")
	c0=$(cpu_ticks "$SRV_PID")
	g0=$(cpu_ticks "${gp[@]}")
	rss1=$(rss_kb "$SRV_PID")
	open=$(($(fd_count "$SRV_PID") - fd0))
	fsleep_until "$(fcalc "$t_launch + $WL_WARM + $WL_DUR - 0.2")"
	c1=$(cpu_ticks "$SRV_PID")
	g1=$(cpu_ticks "${gp[@]}")
	b1=$(others_ticks "$SRV_PID" "${gp[@]}" "${lp[@]}")
	t_end=$EPOCHREALTIME
	alive "$SRV_PID" || note+="the server exited during the run; "
	for p in "${lp[@]}"; do
		e=0
		wait "$p" || e=$?
		if ((e > rc)); then rc=$e; fi
		forget_pid "$p"
	done
	stop_pid "$SRV_PID"

	local report=$OUT/$tag.0.json
	if ((WL_PORTS > 1)) && ((rc < 2)); then
		report=$OUT/$tag.json
		"$WLOAD" --merge "${hists[@]}" --json >"$report" 2>"$OUT/$tag.merge.log" || rc=$?
		rm -f "${hists[@]}"
	fi
	if ((rc >= 2)) || [[ -z $(json "$report" .rate 2>/dev/null) || -n $note ]]; then
		note+="wharf-load exit $rc: $(tail -qn1 "$OUT/$tag".*.load.log 2>/dev/null | head -1)"
		row "$wl" "$srv" "$rep" - - - - - - - - - "$note"
		return 0
	fi
	rate=$(json "$report" .rate)
	p50=$(json "$report" .latency_ns.corrected.p50)
	p99=$(json "$report" .latency_ns.corrected.p99)
	errors=$(json "$report" .errors)
	if ((errors > 0)); then
		local what k v
		what=$(json "$OUT/$tag.0.json" .first_error)
		if [[ -z $what ]]; then # name the counters instead
			for k in unanswered lost mismatch short refused reset peer_closed connect_timeout \
				addrnotavail socket_error; do
				v=$(json "$OUT/$tag.0.json" ".counters.$k")
				[[ -n $v && $v != 0 ]] && what+="${what:+, }$k $v"
			done
		fi
		note+="$errors errors ($what); "
	fi
	win=$(fcalc "$t_end - $t_start")
	if [[ $(fcalc "$win >= 0.5 && $rate > 0") == 1 ]]; then
		cpu_us=$(fcalc "($c1 - $c0) / $CLK_TCK / $win / $rate * 1e6")
		util=$(fcalc "($c1 - $c0) / $CLK_TCK / $win * 100")
		gutil=$(fcalc "($g1 - $g0) / $CLK_TCK / $win * 100")
		other=$(fcalc "($b1 - $b0) / $CLK_TCK / $win * 100")
		[[ $(fcalc "$other > 10") == 1 ]] &&
			note+="other processes used $(printf '%.0f' "$other")% of a CPU; "
	else
		note+="no steady window for CPU; "
	fi
	if ((WL_WAIT_FDS)) && ((open < WL_CONNS)); then
		note+="only $open of $WL_CONNS connections were open; "
	fi
	if [[ $wl != churn && $WL_PROTO == tcp && -n $rss0 && -n $rss1 ]] && ((open > 0)); then
		rss_b=$(fcalc "($rss1 - $rss0) * 1024 / $open")
	fi
	row "$wl" "$srv" "$rep" "$rate" "$p50" "$p99" "$cpu_us" "$util" "$gutil" "$rss_b" "$errors" \
		"$other" "${note%; }"
}

# ---- run ---------------------------------------------------------------------------------
IFS=, read -r -a WL_LIST <<<"$WORKLOADS"
IFS=, read -r -a SRV_LIST <<<"$SERVERS"
[[ " ${SRV_LIST[*]} " == *" wharfd "* ]] || SRV_LIST=(wharfd "${SRV_LIST[@]}")
for s in "${SRV_LIST[@]}"; do
	case $s in
	wharfd | wharfd-epoll | wharfd-uring | wharfd-gso | wharfd-gro | ref | ref-uring | ref-udp-uring | \
		ref-epoll | ref-epoll-busy | node | \
		asyncio | threading) ;;
	*) die "unknown server: $s" ;;
	esac
	have_server "$s" || log "$s: not installed, shown as -"
done
for w in "${WL_LIST[@]}"; do workload "$w"; done # checks the names

row workload server run rate p50_ns p99_ns cpu_us_per_msg server_cpu_pct load_cpu_pct \
	rss_b_per_conn errors other_cpu_pct note
T0=$SECONDS
for w in "${WL_LIST[@]}"; do
	for ((r = 1; r <= REPEAT; r++)); do
		for s in "${SRV_LIST[@]}"; do
			have_server "$s" && wait_quiet
			measure "$w" "$s" "$r"
		done
	done
done

# ---- report ------------------------------------------------------------------------------
# best.tsv: per workload and server, a complete run (every connection open, no errors) with
# the least other CPU (in 2% steps), ties going to the higher rate
awk -F'\t' -v OFS='\t' '
	NR == 1 { next }
	{ k = $1 SUBSEP $2
	  bad = ($13 ~ /only|exit|error/) ? 1 : 0 # incomplete runs last
	  o = ($12 == "-" || $12 == "") ? 1e9 : ($12 < 0 ? 0 : $12); o = int(o / 2) # 2% steps
	  r = $4 == "-" ? -1 : $4
	  if (!(k in best) || bad < bb[k] || (bad == bb[k] && (o < bo[k] || (o == bo[k] && r > br[k])))) {
		best[k] = $0; bb[k] = bad; bo[k] = o; br[k] = r
	  }
	  if (!(k in order)) { order[k] = ++n; key[n] = k } }
	END { for (i = 1; i <= n; i++) print best[key[i]] }' "$OUT/results.tsv" >"$WORK/best.tsv"

{
	echo "Machine: $NCPU CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
		"Linux $(uname -r); wharf $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
	echo "Run: warm-up ${WARMUP}s, measurement ${DURATION}s, best of $REPEAT per server and" \
		"workload; server pinned to CPU $SERVER_CPU, wharf-load (1 thread per generator) to CPU" \
		"$LOAD_CPU$( ((PIN)) || echo ' (NOT pinned)')"
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
	{ n++; W[n] = $1; S[n] = $2; R[n] = $4; P5[n] = $5; P9[n] = $6; C[n] = $7; U[n] = $8; G[n] = $9
	  M[n] = $10; E[n] = $11; N[n] = $13
	  if ($2 == "wharfd") { bR[$1] = $4; bP5[$1] = $5; bP9[$1] = $6; bC[$1] = $7; bM[$1] = $10 } }
	END {
		label["echo50"] = "64 B echo, 50 conns"; label["echo1k"] = "64 B echo, 1,000 conns"
		label["idle10k"] = "idle, " IDLE " conns, 1k msg/s"; label["churn"] = "churn, 64 conns (conns/s)"
		label["big"] = "64 KiB echo, 10 conns"; label["udp"] = "UDP 64 B, 4 flows × 16"
		label["udpoff"] = "UDP 64 B, 4 flows × 16, GSO/GRO client"
		print "| workload | server | rate (msg/s) | p50 | p99 | server CPU/msg | srv CPU | load CPU | RSS/conn |"
		print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
		for (i = 1; i <= n; i++) {
			w = W[i]; isw = S[i] == "wharfd"
			mark = N[i] != "" && N[i] !~ /not applicable/ ? " !" : ""
			printf "| %s | %s%s | %s | %s | %s | %s | %s | %s | %s |\n", (w == pw ? "" : label[w]), S[i], mark,
				cell(R[i], bR[w], "rate"), cell(P5[i], bP5[w], "ns"), cell(P9[i], bP9[w], "ns"),
				cell(C[i], bC[w], "us"), (num(U[i]) ? sprintf("%.0f%%", U[i]) : "-"),
				(num(G[i]) ? sprintf("%.0f%%", G[i]) : "-"), cell(M[i], bM[w], "b")
			pw = w
		}
		print ""
		print "Ratios in parentheses are to wharfd in the same workload; \"-\": the server cannot do it."
		for (i = 1; i <= n; i++)
			if (N[i] != "" && N[i] !~ /not applicable/)
				printf "! %s / %s: %s\n", W[i], S[i], N[i]
	}' IDLE="$IDLE_CONNS" "$WORK/best.tsv"
	echo
	echo "Targets (wharfd against the references, from this run):"
	awk -F'\t' '
	{ v[$1 "/" $2 "/rate"] = $4; v[$1 "/" $2 "/cpu"] = $7; v[$1 "/" $2 "/rss"] = $10 }
	function ok(x) { return x != "" && x != "-" }
	function ratio(what, wl, a, b, limit, ge,   r, verdict) {
		if (!ok(v[wl "/wharfd/" a]) || !ok(v[wl "/ref/" b]) || v[wl "/ref/" b] == 0) {
			printf "- %s: not measured\n", what; return
		}
		r = v[wl "/wharfd/" a] / v[wl "/ref/" b]
		verdict = ge ? (r >= limit ? "MET" : "MISSED") : (r <= limit ? "MET" : "MISSED")
		printf "- %s: %.3f× (target %s %.2f×): %s\n", what, r, (ge ? ">=" : "<="), limit, verdict
	}
	END {
		ratio("TCP CPU/msg at 50 conns, wharfd / ref_epoll_echo", "echo50", "cpu", "cpu", 1.05, 0)
		ratio("TCP CPU/msg at 1,000 conns, wharfd / ref_epoll_echo", "echo1k", "cpu", "cpu", 1.05, 0)
		ratio("UDP rate, wharfd / ref_udp_echo (recvmmsg/sendmmsg)", "udp", "rate", "rate", 0.95, 1)
		if (ok(v["idle10k/wharfd/rss"]))
			printf "- RSS per idle connection at %d conns: %.0f B (target <= 1024 B): %s\n", IDLE,
				v["idle10k/wharfd/rss"], (v["idle10k/wharfd/rss"] <= 1024 ? "MET" : "MISSED")
		else
			print "- RSS per idle connection: not measured"
		ratio("churn rate, wharfd / ref_epoll_echo", "churn", "rate", "rate", 0.90, 1)
	}' IDLE="$IDLE_CONNS" "$WORK/best.tsv"
} | tee "$OUT/table.md"
# The two comparisons that need their own setup run after the table, each in one go:
# connection churn against a two-thread SO_REUSEPORT server (bench/churn.sh), and the
# memcache handler against memcached with memcaslap (bench/memcache.sh).
# Each prints its own ratios; the targets they measure are checked below, with the table's.
# A comparison whose server does not start stops the run with that server's error.
XSECS=${DURATION%.*}
((XSECS >= 2)) || XSECS=2 # churn.sh measures for its duration less 1 s
: >"$WORK/extra-targets"
# extra_target WHAT VALUE LIMIT GE: a target line for a figure printed by an extra script
extra_target() {
	awk -v what="$1" -v r="$2" -v limit="$3" -v ge="$4" 'BEGIN {
		if (r == "") { printf "- %s: not measured\n", what; exit }
		verdict = ge ? (r >= limit ? "MET" : "MISSED") : (r <= limit ? "MET" : "MISSED")
		printf "- %s: %.3f× (target %s %.2f×): %s\n", what, r, (ge ? ">=" : "<="), limit, verdict
	}' >>"$WORK/extra-targets"
}
for mode in churn2 churn2rst; do
	[[ ,$EXTRA, == *,$mode,* ]] || continue
	flag=() close=FIN
	[[ $mode == churn2rst ]] && flag=(--rst) close=RST
	log "churn ($close closes): wharfd (2 workers) against ref_epoll_echo -t 2 (bench/churn.sh)"
	"$ROOT/bench/churn.sh" --build-dir "$BUILD" --duration "$XSECS" "${flag[@]}" >"$WORK/$mode.txt" 2>&1 ||
		{ cat "$WORK/$mode.txt" >&2; die "bench/churn.sh ${flag[*]} failed"; }
	tee -a "$OUT/table.md" <"$WORK/$mode.txt"
	extra_target "churn rate ($close closes, 2 workers), wharfd / ref_epoll_echo -t 2" \
		"$(sed -n 's/^rate ratio .*: \([0-9.]*\) .*/\1/p' "$WORK/$mode.txt")" 0.90 1
	extra_target "churn CPU/conn ($close closes, 2 workers), wharfd / ref_epoll_echo -t 2" \
		"$(sed -n 's/^CPU\/conn ratio .*: \([0-9.]*\) .*/\1/p' "$WORK/$mode.txt")" 1.25 0
done
if [[ ,$EXTRA, == *,memcache,* ]]; then
	log "memcache: wharfd's memcache handler against memcached (bench/memcache.sh)"
	WHARF_BUILDDIR=$BUILD sh "$ROOT/bench/memcache.sh" "$XSECS" >"$WORK/memcache.txt" 2>&1 ||
		{ cat "$WORK/memcache.txt" >&2; die "bench/memcache.sh failed"; }
	tee -a "$OUT/table.md" <"$WORK/memcache.txt"
	for n in 1 2; do
		line=$(grep "^ratio (wharf/memcached), $n:" "$WORK/memcache.txt" || true)
		extra_target "memcache ops/s, wharfd $n worker(s) / memcached -t $n" \
			"$(echo "$line" | sed -n 's/.*ops\/s \([0-9.]*\)x.*/\1/p')" 0.95 1
		extra_target "memcache CPU/op, wharfd $n worker(s) / memcached -t $n" \
			"$(echo "$line" | sed -n 's/.*cpu\/op \([0-9.]*\)x.*/\1/p')" 1.00 0
	done
fi
if [[ -s $WORK/extra-targets ]]; then
	{ echo; echo "Targets (the comparisons above):"; cat "$WORK/extra-targets"; } | tee -a "$OUT/table.md"
fi
log "done in $((SECONDS - T0)) s; results in $OUT"
