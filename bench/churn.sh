#!/usr/bin/env bash
# bench/churn.sh - connection churn, wharfd against a minimal SO_REUSEPORT epoll server.
#
# Each exchange is: connect, one 64-byte echo, close.  Four generator threads, 64
# connections in all (one wharf-load process of 4 threads on one port; with --ports N,
# N processes on N listening ports share them) drive, in turn, wharfd with 2 workers (its
# acceptor thread hands connections to them) and bench/ref_epoll_echo -t 2 (two threads,
# each accepting on its own SO_REUSEPORT sockets).  The generators spread their
# connections over 4 local addresses (wharf-load --source): from one address to one
# destination, connect() can reuse a port only once its TIME_WAIT is a second old, which
# caps the rate near 14k connections/s whatever the server.
# Nothing is pinned: servers and generators share this machine's CPUs, as they would in
# production.  Runs alternate (ref, wharfd, ref, wharfd, ...) and the table shows the
# median of each; ratios are wharfd / ref, each wharfd run against the ref run before it,
# and the result is the median of those paired ratios.
#
# Each run has a network namespace of its own where it can (root: unshare -n), so that
# the TIME_WAIT sockets one run leaves behind do not slow the next one's connect()s.
#
# --rst: the clients reset their connections instead (SO_LINGER 0: no TIME_WAIT, so one
# source address does): bench/churn_rst.c, four blocking client threads in all, each
# connect, one 64-byte echo, RST, again.  The other clients real servers meet.
#
# --worker-accept: a third server in each round, wharfd with "accept": "workers" on its
# listeners (each worker accepts on a SO_REUSEPORT socket of its own, as the reference
# does), shown as `wharfd-wa`, with its own ratios against the same ref runs.
# --perf: also counts, with perf stat over the measuring window, each server's context
# switches, write() calls (wharfd: the mailbox eventfd writes; the echo sends with
# sendto) and epoll_wait calls per connection (columns ctxsw/conn, writes/conn, waits/conn).
#
# Usage: bench/churn.sh [--runs N] [--duration S] [--build-dir DIR] [--workers N]
#        [--ports N (1, 2 or 4)] [--defer-accept (wharfd's listeners use defer_accept)]
#        [--no-netns (all runs in this network namespace)]
#        [--sources N (the generators' local addresses, 127.0.0.1 to 127.0.0.N; default 4)]
#        [--acceptor-nice N (wharfd's acceptor_nice; default: wharfd's default)]
#        [--rst (the clients close with an RST: bench/churn_rst.c)]
#        [--worker-accept (also wharfd with "accept": "workers")] [--perf (perf stat counts)]
# Needs a built tree (./configure && make) in --build-dir (default: the repository).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT
RUNS=3
DURATION=5
WORKERS=2
PORTS=1
DEFER=
NETNS=auto
SOURCES=4
NICE=
SINGLE=
RST=
SERVERS=(ref wharfd)
PERF=
ARGS=("$@")
while (($#)); do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--build-dir) BUILD=$2; shift 2 ;;
	--workers) WORKERS=$2; shift 2 ;;
	--ports) PORTS=$2; shift 2 ;;
	--defer-accept) DEFER=', "defer_accept": true'; shift ;;
	--no-netns) NETNS=no; shift ;;
	--sources) SOURCES=$2; shift 2 ;;
	--acceptor-nice) NICE=", \"acceptor_nice\": $2"; shift 2 ;;
	--rst) RST=1; shift ;;
	--worker-accept) SERVERS=(ref wharfd wharfd-wa); shift ;;
	--perf) PERF=1; shift ;;
	--single) SINGLE=$2; shift 2 ;; # internal: one run, inside its own network namespace
	*) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
WHARFD=$BUILD/wharfd
WLOAD=$BUILD/wharf-load
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
if [[ -n ${CHURN_REF:-} ]]; then
	cp "$CHURN_REF" "$tmp/ref"
	cp "$CHURN_RST" "$tmp/rst"
else
	cc -O2 -Wall -pthread -o "$tmp/ref" "$ROOT/bench/ref_epoll_echo.c"
	cc -O2 -Wall -pthread -o "$tmp/rst" "$ROOT/bench/churn_rst.c"
fi
# Each run gets a network namespace of its own (when this user may create one):
# it starts with no TIME_WAIT sockets, whatever the runs before it left behind.
if [[ $NETNS == auto ]]; then
	if unshare -n true 2>/dev/null && command -v ip >/dev/null; then NETNS=yes; else NETNS=no; fi
fi

cpu_ticks() { local s; s=$(<"/proc/$1/stat"); s=${s##*) }; read -r -a f <<<"$s"; echo $((f[11] + f[12])); }
# context switches of every thread of a process (voluntary + involuntary)
ctx_switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'; }

# run NAME: starts the server, drives it, prints "rate cpu_us_per_conn util ctxsw_per_conn
# writes_per_conn waits_per_conn" (the last two "-" without --perf)
run() {
	local name=$1 pid ports=() i accept=
	: >"$tmp/log"
	[[ $name == wharfd-wa ]] && accept=', "accept": "workers"'
	if [[ $name == ref ]]; then
		"$tmp/ref" -n $PORTS -t "$WORKERS" -l 120 2>"$tmp/log" &
	else
		{
			printf '{"workers": %d, "log": "warn"%s, "listeners": [' "$WORKERS" "$NICE"
			for ((i = 0; i < PORTS; i++)); do
				printf '%s{"name": "c%d", "port": 0, "handler": "echo"%s%s}' "$([[ $i -gt 0 ]] && echo ,)" $i "$DEFER" "$accept"
			done
			printf ']}\n'
		} >"$tmp/wharfd.json"
		sed -i 's/"log": "warn"/"log": "info"/' "$tmp/wharfd.json"
		"$WHARFD" -c "$tmp/wharfd.json" 2>"$tmp/log" &
	fi
	pid=$!
	pids+=("$pid")
	for ((i = 0; i < 100; i++)); do
		(($(grep -c "listening on tcp" "$tmp/log") >= PORTS)) && break
		sleep 0.05
	done
	mapfile -t ports < <(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\).*/\1/p' "$tmp/log")
	if ((${#ports[@]} < PORTS)); then
		echo "churn.sh: $name did not start:" >&2
		cat "$tmp/log" >&2
		exit 1
	fi
	local gens=() src=127.0.0.1
	for ((i = 2; i <= SOURCES; i++)); do src+=,127.0.0.$i; done
	for ((i = 0; i < PORTS; i++)); do
		if [[ -n $RST ]]; then
			"$tmp/rst" -t $((4 / PORTS)) -w 1 -d "$DURATION" 127.0.0.1 "${ports[i]}" \
				>"$tmp/out$i.json" 2>/dev/null &
			gens+=($!)
			continue
		fi
		"$WLOAD" -c $((64 / PORTS)) -t $((4 / PORTS)) -s 64 --churn 1 -w 1 -d "$DURATION" \
			--source "$src" -j "127.0.0.1:${ports[i]}" \
			>"$tmp/out$i.json" 2>/dev/null &
		gens+=($!)
	done
	sleep 1.2 # the warm-up
	local t0 c0 t1 c1 x0 x1
	t0=$EPOCHREALTIME
	c0=$(cpu_ticks "$pid")
	x0=$(ctx_switches "$pid")
	if [[ -n $PERF ]]; then
		perf stat -x, -o "$tmp/perf" -e context-switches,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait \
			-p "$pid" -- sleep "$((DURATION - 1))" 2>/dev/null || : >"$tmp/perf"
	else
		sleep "$((DURATION - 1))"
	fi
	c1=$(cpu_ticks "$pid")
	x1=$(ctx_switches "$pid")
	t1=$EPOCHREALTIME
	wait "${gens[@]}"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	local rate
	rate=$(python3 - "$tmp" $PORTS <<'PY'
import json, sys
total = 0.0
for i in range(int(sys.argv[2])):
    r = json.load(open(f"{sys.argv[1]}/out{i}.json"))
    total += r["results"]["rate"] if "results" in r else r["rate"]
print(f"{total:.0f}")
PY
)
	local pw=- pe=-
	if [[ -n $PERF && -s $tmp/perf ]]; then
		pw=$(awk -F, '/sys_enter_write/ { print $1 }' "$tmp/perf")
		pe=$(awk -F, '/sys_enter_epoll_wait/ { print $1 }' "$tmp/perf")
		x=$(awk -F, '/context-switches/ { print $1 }' "$tmp/perf")
		x0=0
		x1=$x
	fi
	awk -v r="$rate" -v c="$((c1 - c0))" -v x="$((x1 - x0))" -v t0="$t0" -v t1="$t1" \
		-v pw="$pw" -v pe="$pe" -v hz="$(getconf CLK_TCK)" 'BEGIN { secs = t1 - t0
		w = pw == "-" ? "-" : sprintf("%.2f", pw / (r * secs))
		e = pe == "-" ? "-" : sprintf("%.2f", pe / (r * secs))
		printf "%s %.2f %.0f %.2f %s %s\n", r, (c / hz) * 1e6 / (r * secs), 100 * c / hz / secs, x / (r * secs), w, e }'
}

if [[ -n $SINGLE ]]; then
	[[ $NETNS == yes ]] && ip link set lo up
	run "$SINGLE"
	exit 0
fi

# one NAME: a run, in a fresh network namespace when there is one
one() {
	if [[ $NETNS == yes ]]; then
		CHURN_REF=$tmp/ref CHURN_RST=$tmp/rst unshare -n "$0" "${ARGS[@]}" --single "$1"
	else
		run "$1"
	fi
}

echo "network namespace per run: $NETNS; closes: $([[ -n $RST ]] && echo RST || echo FIN)"
printf 'run  server     conns/s  cpu_us/conn  srv_cpu%%  ctxsw/conn  writes/conn  waits/conn\n'
: >"$tmp/res"
for ((k = 1; k <= RUNS; k++)); do
	for s in "${SERVERS[@]}"; do
		read -r rate cpu util ctx wr wt < <(one "$s") || true
		[[ -n ${wt:-} ]] || { echo "churn.sh: the $s run failed" >&2; exit 1; }
		printf '%-4s %-10s %8s %12s %9s %11s %12s %11s\n' "$k" "$s" "$rate" "$cpu" "$util" "$ctx" "$wr" "$wt"
		echo "$s $rate $cpu $ctx" >>"$tmp/res"
	done
done
python3 - "$tmp/res" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda s, i: statistics.median(float(r[i]) for r in rows if r[0] == s)
ref = [r for r in rows if r[0] == "ref"]
print(f"median  ref {med('ref', 1):.0f} conns/s {med('ref', 2):.2f} us/conn {med('ref', 3):.2f} ctxsw/conn")
# Runs alternate, so each wharfd run is compared with the ref run just before it
# (same moment of a shared, noisy machine); the medians of those ratios are the result.
for name in ("wharfd", "wharfd-wa"):
    wh = [r for r in rows if r[0] == name]
    if not wh:
        continue
    rate = statistics.median(float(w[1]) / float(r[1]) for r, w in zip(ref, wh))
    cpu = statistics.median(float(w[2]) / float(r[2]) for r, w in zip(ref, wh))
    print(f"median  {name} {med(name, 1):.0f} conns/s {med(name, 2):.2f} us/conn {med(name, 3):.2f} ctxsw/conn")
    print(f"{name}: rate ratios by pair: " + " ".join(f"{float(w[1]) / float(r[1]):.3f}" for r, w in zip(ref, wh)))
    print(f"{name}: CPU ratios by pair:  " + " ".join(f"{float(w[2]) / float(r[2]):.3f}" for r, w in zip(ref, wh)))
    print(f"rate ratio {name}/ref (median of pairs): {rate:.3f} (target >= 0.90)")
    print(f"CPU/conn ratio {name}/ref (median of pairs): {cpu:.3f} (target <= 1.25)")
PY
