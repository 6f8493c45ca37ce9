#!/bin/sh
# bench/memcache.sh - wharfd's memcache handler against Debian's memcached,
# one run each, same machine, same load (memcaslap: 50 connections, its
# default 90 % get / 10 % set mix and sizes), both servers pinned alike.
# Prints ops/s and server CPU per operation for 1 worker vs "memcached -t 1"
# and 2 workers vs "-t 2", as ratios, then user-space memory per idle
# connection with 10,000 connections open.  A benchmark, not a test.
#
# Then (memcache v2, values sent by reference) at equal thread counts,
# T = 1 and 2: wharf-load's memcache mode (50 connections, 90/10, 100-byte
# values); 100 KB values (ops/s per CPU second of the server); a get of 100
# keys per request; and the resident memory of each server after 300 MB of
# 100 KB values went into a 64 MB cache (RSS / memory_limit).
#
#   bench/memcache.sh [seconds]      (from a build tree; default 10 s a run)
#   V2_ONLY=1 bench/memcache.sh 5    (only the memcache v2 part)
#   AB=9 bench/memcache.sh 2         (A/B: both servers up at once, 9 rounds of
#                                     2 s bursts alternating between them per
#                                     workload; medians of the per-round ratios)
#   AB=5 WORKLOADS="slap big" bench/memcache.sh 2   (A/B of some workloads only:
#                                     slap, small, big, mget)
#
# Environment: WHARF_BUILDDIR (default .), SERVER_CPUS (taskset list for the
# servers, default 0-1), LOAD_CPUS (for memcaslap, default: same),
# MEMCACHED (default memcached).
set -u
secs=${1:-10}
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}
server_cpus=${SERVER_CPUS:-0-1}
load_cpus=${LOAD_CPUS:-$server_cpus}
memcached=${MEMCACHED:-memcached}
wload=$build/wharf-load
for tool in "$memcached" memcaslap taskset python3 "$wload"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "needs $tool (libmemcached-tools, memcached)"; exit 1; }
done
tmp=$(mktemp -d)
pid=
m_pid=
w_pid=
trap 'for p in $pid $m_pid $w_pid; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
ulimit -n 20000 2>/dev/null

# Port a free port (the kernel's choice).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# CPU seconds (user + system) of process $1, in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}
rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}
wait_port() {
    i=0
    while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null &&
        ! python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; do
        sleep 0.1; i=$((i + 1))
    done
}
start_memcached() { # threads
    port=$(free_port)
    taskset -c "$server_cpus" "$memcached" -u daemon -l 127.0.0.1 -p "$port" -U 0 -t "$1" -c 12000 -m 64 &
    pid=$!
    wait_port "$port"
    started memcached
}
# started NAME [LOG]: stops the benchmark with the server's error when it is not up.
started() {
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "memcache.sh: $1 did not start${2:+:}" >&2
        [ -n "${2:-}" ] && cat "$2" >&2
        pid=
        exit 1
    fi
}
start_wharf() { # workers
    port=$(free_port)
    cat >"$tmp/w.json" <<JSON
{"workers": $1, "log": "warn", "max_connections": 12000, "max_connections_per_source": 12000,
 "listeners": [{"name": "mc", "address": "127.0.0.1", "port": $port, "handler": "memcache",
  "timeouts": {"idle_ms": 0}, "buffers": {"max_input": 2097152},
  "options": {"memory_limit": 67108864}}]}
JSON
    taskset -c "$server_cpus" "$wharfd" -c "$tmp/w.json" 2>"$tmp/w.log" &
    pid=$!
    wait_port "$port"
    started wharfd "$tmp/w.log"
}
stop() {
    kill "$pid"; wait "$pid" 2>/dev/null; pid=
}
# Runs memcaslap against $port; prints "ops/s cpu_us_per_op".
load() {
    t0=$(cpu_ticks "$pid")
    taskset -c "$load_cpus" memcaslap -s "127.0.0.1:$port" -T 1 -c 50 -t "${secs}s" >"$tmp/slap" 2>&1
    t1=$(cpu_ticks "$pid")
    tps=$(sed -n 's/.*TPS: *\([0-9]*\).*/\1/p' "$tmp/slap" | tail -n1)
    ops=$(sed -n 's/.*Ops: *\([0-9]*\).*/\1/p' "$tmp/slap" | tail -n1)
    hz=$(getconf CLK_TCK)
    awk -v tps="${tps:-0}" -v ops="${ops:-0}" -v d=$((t1 - t0)) -v hz="$hz" \
        'BEGIN { printf "%d %.2f\n", tps, ops ? d / hz * 1e6 / ops : 0 }'
}
# Opens 10,000 idle connections; prints user-space bytes per connection.
idle_mem() {
    before=$(rss_kb "$pid")
    python3 - "$port" "$pid" "$before" <<'PY'
import socket, sys, time
port, pid, before = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks = [socket.create_connection(('127.0.0.1', port)) for _ in range(10000)]
for s in socks[::100]:
    s.sendall(b'version\r\n'); s.recv(100)
time.sleep(1)
after = [int(l.split()[1]) for l in open('/proc/%s/status' % pid) if l.startswith('VmRSS:')][0]
print('%.0f' % ((after - before) * 1024 / len(socks)))
PY
}

# ---- memcache v2: wharf-load side by side ----------------------------------

# Sets keys key:0 .. key:N-1 to SIZE-byte values (pipelined): fill N SIZE.
fill() {
    python3 - "$port" "$1" "$2" <<'PY'
import socket, sys
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(('127.0.0.1', port))
v = b'v' * size
for base in range(0, n, 100):
    batch = b''.join(b'set key:%d 0 0 %d noreply\r\n%s\r\n' % (i, size, v)
                     for i in range(base, min(n, base + 100)))
    s.sendall(batch)
s.sendall(b'version\r\n')
buf = b''
while b'VERSION' not in buf:
    buf += s.recv(4096)
PY
}
# Sets the keys of wharf-load's memcache mode (N keys of SIZE bytes) the way
# its reads verify them (a value derived from the key): preload N SIZE.
# (Values written by fill would each be counted as a bad value, and not
# as an operation, by the verifying workloads.)
# The 100 KB workload has keys of its own (prefix big:), so that the two
# workloads never read each other's values.
preload() {
    taskset -c "$load_cpus" "$wload" -q -n 1 --preload --proto memcache -c 1 -t 1 --keys "$1" \
        --value-size "$2" --key-prefix "$(prefix "$2")" --max-reply 2M "127.0.0.1:$port" >/dev/null 2>&1
}
prefix() { if [ "$1" -gt 1000 ]; then echo big:; else echo key:; fi; }
# Runs wharf-load against $port with the given arguments; prints
# "ops/s cpu_us_per_op ops_per_cpu_s".
wl() {
    t0=$(cpu_ticks "$pid")
    taskset -c "$load_cpus" "$wload" -q -d "${secs}s" "$@" "127.0.0.1:$port" >"$tmp/wl" 2>&1
    t1=$(cpu_ticks "$pid")
    rate=$(sed -n 's/.*: \([0-9.]*\) msg\/s.*/\1/p' "$tmp/wl" | tail -n1)
    awk -v r="${rate:-0}" -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v s="$secs" \
        'BEGIN { ops = r * s; cpu = d / hz;
                 printf "%d %.2f %d\n", r, ops ? cpu * 1e6 / ops : 0, cpu ? ops / cpu : 0 }'
}
mget100() {
    req="get"
    i=0
    while [ $i -lt 100 ]; do req="$req key:{rand:0-9999}"; i=$((i + 1)); done
    wl -c 50 -t 1 --request "$req\r\n" --frame memcache --max-reply 4M
}
# Fills a 64 MB cache with 300 MB of 100 KB values; prints RSS in KB.
rss_after_fill() {
    fill 3000 102400
    rss_kb "$pid"
}
v2_row() { # label memcached-result wharf-result
    set -- "$1" $2 $3
    label=$1; m_ops=$2; m_cpu=$3; m_eff=$4; w_ops=$5; w_cpu=$6; w_eff=$7
    printf '%-34s %10s %10s %9s %9s %12s %12s' "$label" "$m_ops" "$w_ops" "$m_cpu" "$w_cpu" "$m_eff" "$w_eff"
    awk -v a="$w_ops" -v b="$m_ops" -v c="$w_cpu" -v d="$m_cpu" -v e="$w_eff" -v f="$m_eff" \
        'BEGIN { printf "   ops %.2fx  cpu/op %.2fx  ops/cpu %.2fx\n", b ? a / b : 0, d ? c / d : 0, f ? e / f : 0 }'
}
v2() {
    echo "memcache v2, ${secs}s runs; servers on CPUs $server_cpus, load on $load_cpus;"
    echo "columns: ops/s (memcached, wharf), server CPU us/op, ops per server CPU second; ratios wharf/memcached"
    for n in 1 2; do
        for what in slap small big mget; do
            for srv in memcached wharf; do
                if [ $srv = memcached ]; then start_memcached "$n"; else start_wharf "$n"; fi
                case $what in
                slap) r=$(load); r="$r $(echo "$r" | awk '{print $2 ? int(1e6 / $2) : 0}')" ;;
                small) preload 10000 100; r=$(wl --proto memcache -c 50 -t "$n" --keys 10000 --value-size 100) ;;
                big) preload 200 102400; r=$(wl --proto memcache -c 50 -t "$n" --keys 200 --value-size 102400 --key-prefix big: --max-reply 2M) ;;
                mget) fill 10000 100; r=$(mget100) ;;
                esac
                stop
                eval "r_$srv=\"\$r\""
            done
            case $what in
            slap) label="memcaslap 90/10, 50 conns" ;;
            small) label="wharf-load 90/10 100 B, 50 conns" ;;
            big) label="wharf-load 90/10 100 KB, 50 conns" ;;
            mget) label="wharf-load get of 100 keys" ;;
            esac
            v2_row "$label, T=$n" "$r_memcached" "$r_wharf"
        done
    done
    start_memcached 2; m_rss=$(rss_after_fill); stop
    start_wharf 2; w_rss=$(rss_after_fill); stop
    awk -v m="$m_rss" -v w="$w_rss" 'BEGIN { printf "RSS after 300 MB of 100 KB sets into 64 MB: memcached %.1f MB (%.2fx), wharf %.1f MB (%.2fx)\n", m / 1024, m / 65536, w / 1024, w / 65536 }'
}
# ---- A/B: both servers up at once, short bursts alternating ------------------
# On a shared, noisy host one run per server measures the neighbours as much
# as the servers.  Here memcached and wharfd (same thread count) run side by
# side, and each round gives each of them one burst of the same load, the
# order alternating by round; a round's ratios compare two bursts seconds
# apart, and the median over the rounds is reported.

# ab_burst PID PORT WORKLOAD THREADS -> "ops/s cpu_us_per_op"
ab_burst() {
    pid=$1; port=$2
    case $3 in
    slap) r=$(load) ;;
    small) r=$(wl --proto memcache -c 50 -t "$4" --keys 10000 --value-size 100) ;;
    big) r=$(wl --proto memcache -c 50 -t "$4" --keys 200 --value-size 102400 --key-prefix big: --max-reply 2M) ;;
    mget) r=$(mget100) ;;
    esac
    echo "$r" | awk '{print $1, $2}'
}
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ab() {
    rounds=$1
    echo "A/B: memcached and wharfd up side by side, $rounds rounds of ${secs}s bursts per workload,"
    echo "order alternating; medians of per-round wharf/memcached ratios (ops/s, server CPU per op)"
    printf '%-34s %12s %12s %10s %10s %12s\n' workload "ops/s mc" "ops/s wharf" "ops ratio" "cpu/op" "ops/cpu"
    for n in 1 2; do
        start_memcached "$n"; m_pid=$pid; m_port=$port
        start_wharf "$n"; w_pid=$pid; w_port=$port
        pid=$m_pid; port=$m_port; fill 10000 100; preload 10000 100; preload 200 102400
        pid=$w_pid; port=$w_port; fill 10000 100; preload 10000 100; preload 200 102400
        for what in ${WORKLOADS:-slap small big mget}; do
            : >"$tmp/ab"
            i=0
            while [ "$i" -lt "$rounds" ]; do
                if [ $((i % 2)) = 0 ]; then
                    m=$(ab_burst "$m_pid" "$m_port" $what "$n"); w=$(ab_burst "$w_pid" "$w_port" $what "$n")
                else
                    w=$(ab_burst "$w_pid" "$w_port" $what "$n"); m=$(ab_burst "$m_pid" "$m_port" $what "$n")
                fi
                echo "$m $w" >>"$tmp/ab"
                i=$((i + 1))
            done
            mo=$(awk '{print $1}' "$tmp/ab" | median); wo=$(awk '{print $3}' "$tmp/ab" | median)
            ro=$(awk '$1 > 0 {print $3 / $1}' "$tmp/ab" | median)
            rc=$(awk '$2 > 0 {print $4 / $2}' "$tmp/ab" | median)
            re=$(awk '$4 > 0 {print $2 / $4}' "$tmp/ab" | median)
            printf '%-34s %12s %12s %9.2fx %9.2fx %11.2fx\n' "$what, T=$n" "$mo" "$wo" "$ro" "$rc" "$re"
        done
        kill "$m_pid" "$w_pid"; wait "$m_pid" "$w_pid" 2>/dev/null; pid=; m_pid=; w_pid=
    done
}
if [ -n "${AB:-}" ]; then
    ab "$AB"
    exit 0
fi
if [ "${V2_ONLY:-0}" = 1 ]; then
    v2
    exit 0
fi

echo "memcaslap -T 1 -c 50 -t ${secs}s (90% get / 10% set); servers on CPUs $server_cpus, load on $load_cpus"
printf '%-22s %10s %12s\n' server ops/s cpu_us/op
for n in 1 2; do
    start_memcached "$n"; m=$(load); [ "$n" = 1 ] && m_idle=$(idle_mem); stop
    start_wharf "$n"; w=$(load); [ "$n" = 1 ] && w_idle=$(idle_mem); stop
    set -- $m; m_ops=$1; m_cpu=$2
    set -- $w; w_ops=$1; w_cpu=$2
    printf '%-22s %10s %12s\n' "memcached -t $n" "$m_ops" "$m_cpu" "wharf $n worker(s)" "$w_ops" "$w_cpu"
    awk -v a="$w_ops" -v b="$m_ops" -v c="$w_cpu" -v d="$m_cpu" -v n="$n" \
        'BEGIN { printf "ratio (wharf/memcached), %d: ops/s %.2fx, cpu/op %.2fx\n", n, b ? a / b : 0, d ? c / d : 0 }'
done
echo "idle connection (10,000 open, RSS growth / connection): memcached $m_idle B, wharf $w_idle B"
v2
