#!/bin/sh
# compare-lua.sh - the client CPU per request of wharf-load's Lua hooks (--script), for the
# table in docs/wharf-load.md: nginx serving a 64-byte file, one generator thread,
# loopback, the same connections, every run bounded (DURATION seconds; nginx is stopped by
# its PID at the end).
#   open loop at RATE requests/s:  wharf-load --proto http, without and with the script
#   closed loop:                   the same two, and wrk without and with the same script
# The script is bench/peers/http-check.lua (request() returns a prepared GET, response()
# checks the status): the same file runs in both generators.
#
#   bench/peers/compare-lua.sh BUILDDIR [DURATION] [CONNECTIONS] [RATE] [REPEAT]
#
# Prints per run kind the median CPU us per request (user + sys from /usr/bin/time, over
# the requests answered) and the median rate over REPEAT rounds (default 3); with two or
# more CPUs nginx is pinned to CPU 1 and the generators to CPU 0.
set -eu
build=$(cd "${1:?usage: compare-lua.sh BUILDDIR [DURATION] [CONNECTIONS] [RATE] [REPEAT]}" && pwd)
dur=${2:-5}
conns=${3:-16}
rate=${4:-5000}
rep=${5:-3}
here=$(cd "$(dirname "$0")" && pwd)
load="$build/wharf-load"
script="$here/http-check.lua"
[ -x "$load" ] || { echo "compare-lua.sh: $load not built" >&2; exit 2; }
for t in nginx wrk ss python3; do
    command -v $t >/dev/null || { echo "compare-lua.sh: $t not installed" >&2; exit 2; }
done
srv_cpu='' gen_cpu=''
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then srv_cpu="taskset -c 1"; gen_cpu="taskset -c 0"; fi
tmp=$(mktemp -d)
pids=''
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/nginx/html" "$tmp/nginx/logs"
printf '%064d' 0 >"$tmp/nginx/html/index.html"
cat >"$tmp/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 60s;
    server { listen 127.0.0.1:$port; root $tmp/nginx/html; }
}
CONF
$srv_cpu nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
pids="$pids $!"
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do
    ss -Hltn "sport = :$port" | grep -q . && break
    sleep 0.1
done
url="http://127.0.0.1:$port/index.html"

# timed NAME CMD...: runs CMD pinned; appends "NAME us_per_request rate" to $tmp/results
timed() {
    name=$1
    shift
    /usr/bin/time -f '%U %S' -o "$tmp/t" $gen_cpu "$@" >"$tmp/out" 2>"$tmp/err" || true
    case $name in
    wrk*) n=$(awk '/requests in/ {print $1}' "$tmp/out")
          r=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$tmp/out")
          ! grep -q 'Non-2xx\|Socket errors' "$tmp/out" || grep 'Non-2xx\|Socket errors' "$tmp/out" >&2 ;;
    *) set -- $(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["counters"]["received"], round(r["rate"]), r["errors"])' "$tmp/out")
       n=$1 r=$2
       [ "$3" = 0 ] || echo "compare-lua.sh: $name: $3 errors" >&2 ;;
    esac
    # the last line of time's output (a failed command adds one before it)
    echo "$name $(tail -n1 "$tmp/t" | awk -v n="$n" '{printf "%.2f", ($1 + $2) * 1e6 / n}') $r" >>"$tmp/results"
}
i=0
while [ $i -lt "$rep" ]; do
    timed wl-open "$load" -j -t 1 -c "$conns" -r "$rate" -d "$dur" "$url"
    timed wl-open-script "$load" -j -t 1 -c "$conns" -r "$rate" -d "$dur" --script "$script" "$url"
    timed wl-closed "$load" -j -t 1 -c "$conns" -d "$dur" "$url"
    timed wl-closed-script "$load" -j -t 1 -c "$conns" -d "$dur" --script "$script" "$url"
    timed wrk-closed wrk -t1 -c"$conns" -d"${dur}s" "$url"
    timed wrk-closed-script wrk -t1 -c"$conns" -d"${dur}s" -s "$script" "$url"
    i=$((i + 1))
done
echo "run                  CPU us/request (median)   rate/s (median)   all runs (us/request)"
for k in wl-open wl-open-script wl-closed wl-closed-script wrk-closed wrk-closed-script; do
    awk -v k="$k" '$1 == k {print $2, $3}' "$tmp/results" | sort -n | python3 -c '
import sys, statistics
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
cpu = statistics.median(r[0] for r in rows); rate = statistics.median(r[1] for r in rows)
print("%-20s %10.2f %22.0f   %s" % (sys.argv[1], cpu, rate, " ".join("%.2f" % r[0] for r in rows)))' "$k"
done
