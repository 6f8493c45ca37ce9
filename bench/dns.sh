#!/bin/sh
# bench/dns.sh - wharfd's dns handler side by side with NSD and Knot DNS
# (Debian packages nsd, knot; not running as services: this script starts
# each with its own config under a temporary directory, on ephemeral ports,
# as the current user, and ends it by pid), serving the same zone with the
# same number of threads, under the same dnsperf load (UDP, 90 % names that
# exist, 10 % NXDOMAIN, A and AAAA).  One run of each, one after the other;
# prints queries/s, the server's CPU seconds (utime + stime from /proc) and
# queries per CPU second, then the ratios wharf / NSD and wharf / Knot.
# A benchmark, not a test.
#
#   bench/dns.sh [seconds] [threads]     (from a build tree; default 10 s, 2)
#   AB=9 bench/dns.sh 2 1                (A/B: the three servers up at once, 9
#                                         rounds of 2 s bursts, the order turning
#                                         each round; medians of the per-round
#                                         ratios of queries per CPU second)
#
# Environment: WHARF_BUILDDIR (default .), SERVER_CPUS (taskset list for the
# servers, default 0-1), LOAD_CPUS (for dnsperf, default: same), NAMES
# (names in the zone, default 10000), CLIENTS (dnsperf -c, default 20).
set -u
secs=${1:-10}
threads=${2:-2}
build=${WHARF_BUILDDIR:-.}
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}
server_cpus=${SERVER_CPUS:-0-1}
load_cpus=${LOAD_CPUS:-$server_cpus}
names=${NAMES:-10000}
clients=${CLIENTS:-20}
real=$build/.libs/wharfd
if [ -x "$real" ] && [ -e "$build/.libs/libwharf.so" ]; then
    export LD_LIBRARY_PATH="$build/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
    real=$build/wharfd
fi
PATH=$PATH:/usr/sbin
for tool in dnsperf nsd knotd dig taskset python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "needs $tool (Debian: dnsperf nsd knot bind9-dnsutils)"; exit 1; }
done
tmp=$(mktemp -d /tmp/dns-bench.XXXXXX)
chmod 755 "$tmp"
spid=
trap 'for p in $spid; do kill "$p" 2>/dev/null; done; for p in $spid; do wait "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

# The zone and the queries.
python3 - "$tmp" "$names" <<'PY'
import random, sys
tmp, n = sys.argv[1], int(sys.argv[2])
with open(tmp + "/bench.zone", "w") as z:
    z.write("$ORIGIN bench.test.\n$TTL 3600\n"
            "@ IN SOA ns1 hostmaster 1 7200 900 604800 300\n  IN NS ns1\nns1 IN A 192.0.2.1\n")
    for i in range(n):
        z.write("host%d IN A 10.%d.%d.%d\n" % (i, i >> 16 & 255, i >> 8 & 255, i & 255))
        if i % 4 == 0:
            z.write("host%d IN AAAA 2001:db8::%x\n" % (i, i))
random.seed(1)
with open(tmp + "/queries", "w") as q:
    for k in range(100000):
        i = random.randrange(n)
        if k % 10 == 9:
            q.write("missing%d.bench.test A\n" % i)
        elif k % 10 == 8:
            q.write("host%d.bench.test AAAA\n" % (i - i % 4))
        else:
            q.write("host%d.bench.test A\n" % i)
PY

free_port() {
    python3 -c 'import socket
for _ in range(100):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
    p = u.getsockname()[1]; t = socket.socket()
    try:
        t.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        t.close(); u.close()'
}

# cpu PID: utime + stime of the process and all its descendants (NSD
# serves from processes forked two levels down), in clock ticks.
cpu() {
    t=0
    todo=$1
    while [ -n "$todo" ]; do
        next=
        for p in $todo; do
            # fields after the name, which may hold spaces ("nsd: main")
            t=$((t + $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)))
            next="$next $(pgrep -P "$p" | tr '\n' ' ')"
        done
        todo=$(echo $next)
    done
    echo "$t"
}

# wait_udp PORT: until the server answers the SOA (30 s at most).
wait_udp() {
    i=0
    while [ $i -lt 300 ]; do
        if dig -p "$1" @127.0.0.1 +time=1 +tries=1 +short bench.test SOA 2>/dev/null | grep -q hostmaster; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# burst NAME PORT PID: dnsperf against the server PID on PORT; sets qps,
# lost, cpus and per_cpu and prints the result line.
hz=$(getconf CLK_TCK)
burst() {
    c0=$(cpu "$3")
    taskset -c "$load_cpus" dnsperf -s 127.0.0.1 -p "$2" -d "$tmp/queries" -l "$secs" \
        -c "$clients" -T 2 -q 500 -t 1 >"$tmp/$1.perf" 2>&1
    c1=$(cpu "$3")
    qps=$(sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p' "$tmp/$1.perf")
    lost=$(sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p' "$tmp/$1.perf")
    cpus=$(echo "$c0 $c1 $hz" | awk '{ printf "%.2f", ($2 - $1) / $3 }')
    per_cpu=$(echo "${qps:-0} $secs $cpus" | awk '{ if ($3 > 0) printf "%.0f", $1 * $2 / $3; else print 0 }')
    printf '%-6s %10s q/s  lost %-6s  server CPU %6s s  %9s q per CPU s\n' "$1" "${qps:-?}" \
        "${lost:-?}" "$cpus" "$per_cpu"
}

# run NAME PORT: one burst against the server $spid, which is then ended;
# sets qps and per_cpu.
run() {
    if ! wait_udp "$2"; then
        echo "$1: did not answer on port $2"
        kill "$spid" 2>/dev/null
        spid=
        qps=0
        per_cpu=0
        return
    fi
    burst "$1" "$2" "$spid"
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    spid=
}

echo "dns: $names names, dnsperf -c $clients -T 2 -q 500 -t 1 for $secs s, servers on CPUs $server_cpus with $threads threads, dnsperf on $load_cpus"

# start_wharf, start_nsd, start_knot: each starts its server on a free
# port; sets spid and port.
start_wharf() {
port=$(free_port)
cat >"$tmp/wharf.json" <<JSON
{"workers": $threads, "log": "warn", "listeners": [
 {"name": "dns", "protocol": "udp", "address": "127.0.0.1", "port": $port, "handler": "dns",
  "recv_buffer": 1048576, "options": {"zone": "$tmp/bench.zone", "origin": "bench.test."}}]}
JSON
taskset -c "$server_cpus" "$real" -c "$tmp/wharf.json" 2>"$tmp/wharf.log" &
spid=$!
}

# NSD: its own config, no chroot, no privilege drop, response rate limiting
# off (it is on by default; wharf and Knot have none here).
start_nsd() {
port=$(free_port)
mkdir -p "$tmp/nsd"
cat >"$tmp/nsd/nsd.conf" <<CONF
server:
    ip-address: 127.0.0.1@$port
    server-count: $threads
    username: ""
    chroot: ""
    zonesdir: "$tmp"
    database: ""
    zonelistfile: "$tmp/nsd/zone.list"
    xfrdfile: "$tmp/nsd/xfrd.state"
    xfrdir: "$tmp/nsd"
    pidfile: "$tmp/nsd/nsd.pid"
    logfile: "$tmp/nsd/nsd.log"
    verbosity: 1
    rrl-ratelimit: 0
    hide-version: yes
remote-control:
    control-enable: no
zone:
    name: bench.test
    zonefile: bench.zone
CONF
taskset -c "$server_cpus" nsd -d -c "$tmp/nsd/nsd.conf" >"$tmp/nsd/out" 2>&1 &
spid=$!
}

# Knot: its own config and storage, as the current user.
start_knot() {
port=$(free_port)
mkdir -p "$tmp/knot/db"
cat >"$tmp/knot/knot.conf" <<CONF
server:
    rundir: "$tmp/knot"
    listen: 127.0.0.1@$port
    udp-workers: $threads
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$tmp/knot/db"
log:
  - target: "$tmp/knot/knot.log"
    any: warning
template:
  - id: default
    storage: "$tmp"
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
zone:
  - domain: bench.test
    file: bench.zone
CONF
taskset -c "$server_cpus" knotd -c "$tmp/knot/knot.conf" >"$tmp/knot/out" 2>&1 &
spid=$!
}


median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

if [ -n "${AB:-}" ]; then
    # All three up at once; each round gives each server one burst, the
    # order turning by round, and records wharf's ratios to the others.
    start_wharf; w_pid=$spid; w_port=$port
    start_nsd; n_pid=$spid; n_port=$port
    start_knot; k_pid=$spid; k_port=$port
    spid="$w_pid $n_pid $k_pid"
    for p in "$w_port" "$n_port" "$k_port"; do
        wait_udp "$p" || { echo "a server did not answer on port $p"; exit 1; }
    done
    : >"$tmp/ratios"
    r=0
    while [ "$r" -lt "$AB" ]; do
        case $((r % 3)) in
        0) order="wharf nsd knot" ;;
        1) order="nsd knot wharf" ;;
        *) order="knot wharf nsd" ;;
        esac
        for srv in $order; do
            case $srv in
            wharf) burst wharf "$w_port" "$w_pid"; w_cpu=$per_cpu ;;
            nsd) burst nsd "$n_port" "$n_pid"; n_cpu=$per_cpu ;;
            knot) burst knot "$k_port" "$k_pid"; k_cpu=$per_cpu ;;
            esac
        done
        echo "$w_cpu $n_cpu $k_cpu" | awk '{ printf "%.3f %.3f\n", ($2 > 0 ? $1 / $2 : 0), ($3 > 0 ? $1 / $3 : 0) }' >>"$tmp/ratios"
        r=$((r + 1))
    done
    echo "medians over $AB rounds of queries per CPU second:"
    echo "wharf / nsd:  $(awk '{ print $1 }' "$tmp/ratios" | median) x"
    echo "wharf / knot: $(awk '{ print $2 }' "$tmp/ratios" | median) x"
    echo "per round (nsd, knot): $(tr '\n' ';' <"$tmp/ratios")"
    exit 0
fi

start_wharf
run wharf "$port"
w_qps=$qps
w_cpu=$per_cpu
start_nsd
run nsd "$port"
n_qps=$qps
n_cpu=$per_cpu
start_knot
run knot "$port"
k_qps=$qps
k_cpu=$per_cpu

echo "$w_qps $n_qps $k_qps $w_cpu $n_cpu $k_cpu" | awk '{
    printf "wharf / nsd:  %.2f x q/s, %.2f x q per CPU s\n", ($2 > 0 ? $1 / $2 : 0), ($5 > 0 ? $4 / $5 : 0)
    printf "wharf / knot: %.2f x q/s, %.2f x q per CPU s\n", ($3 > 0 ? $1 / $3 : 0), ($6 > 0 ? $4 / $6 : 0) }'
