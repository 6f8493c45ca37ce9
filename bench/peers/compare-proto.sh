#!/bin/sh
# compare-proto.sh - wharf-load's request/response modes side by side with the generator
# people use for each protocol, on the same server in one run, for the table in
# docs/wharf-load.md:
#   memcache: wharf-load --proto memcache  vs memcaslap (libmemcached-tools), memcached 1.6
#   http:     wharf-load --proto http      vs wrk, nginx serving a static 64-byte file
#   echo:     wharf-load (echo mode)       vs wharf-echo-cmin (a minimal single-threaded
#             client) and wrk driving the echo server with echo64.lua, on wharf-echo-min
# One generator thread each, closed loop, the same connections, loopback only, every run
# bounded (DURATION seconds; the servers are stopped by PID at the end).
#
#   bench/peers/compare-proto.sh BUILDDIR [DURATION] [CONNECTIONS] [REPEAT]
#
# The generators of a protocol take turns REPEAT times (default 3) and the medians are
# reported: on a shared machine single runs vary by +-20 %.
# BUILDDIR holds wharf-load, bench/peers/wharf-echo-min and wharf-echo-cmin (make check
# builds the last two). Needs memcached, libmemcached-tools, nginx and wrk (Debian packages)
# and taskset: with two or more CPUs servers are pinned to CPU 1, generators to CPU 0.
# Prints per generator the median rate, the median CPU us per operation (user + sys from
# /usr/bin/time, over operations completed) and every run's rate, then per protocol the
# median (and range) of the ratios wharf-load / other over runs made one after the other
# (rate: above 1 is better; CPU per operation: below 1 is better).
set -eu
build=$(cd "${1:?usage: compare-proto.sh BUILDDIR [DURATION] [CONNECTIONS]}" && pwd)
dur=${2:-5}
conns=${3:-16}
rep=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
load="$build/wharf-load"
echo_min="$build/bench/peers/wharf-echo-min"
echo_cmin="$build/bench/peers/wharf-echo-cmin"
for f in "$load" "$echo_min" "$echo_cmin"; do
    [ -x "$f" ] || { echo "compare-proto.sh: $f not built (make check)" >&2; exit 2; }
done
for t in memcached memcaslap nginx wrk taskset ss; do
    command -v $t >/dev/null || { echo "compare-proto.sh: $t not installed" >&2; exit 2; }
done

srv_cpu='' gen_cpu=''
if [ "$(nproc)" -ge 2 ]; then srv_cpu="taskset -c 1"; gen_cpu="taskset -c 0"; fi
tmp=$(mktemp -d)
pids=''
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
# free_port FROM: the first TCP port from FROM that nothing listens on (ss, iproute2)
free_port() {
    p=$1
    while ss -Hltn "sport = :$p" | grep -q .; do p=$((p + 1)); done
    echo "$p"
}
# wait_listen PORT NAME: waits up to 3 s for a listener, or gives up
wait_listen() {
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    echo "compare-proto.sh: $2 is not listening on port $1" >&2
    exit 1
}

cpu_of() { tail -n 1 "$1" | awk '{printf "%.3f", $1 + $2}'; }
# wharf-load -j output: rate and replies
wl_rate() { sed -n 's/^  "rate": \([0-9.]*\),/\1/p' "$1" | awk '{printf "%.0f", $1}'; }
wl_n() { sed -n 's/.*"received": \([0-9]*\).*/\1/p' "$1"; }
# record TOOL RATE N CPU: appends "rate us_per_op" to $tmp/res.TOOL
record() {
    echo "$2 $3 $4" | awk '{ printf "%s %s\n", $1, ($2 > 0 ? $3 * 1e6 / $2 : 0) }' >>"$tmp/res.$1"
}
# median COLUMN TOOL
median() { awk -v c="$1" '{print $c}' "$tmp/res.$2" | sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }
report() { # PROTO TOOL NAME
    printf '%-9s %-28s %10.0f %9.2f   %s\n' "$1" "$3" "$(median 1 "$2")" "$(median 2 "$2")" \
        "$(awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $1}' "$tmp/res.$2")"
}
# ratio PROTO TOOL OTHER: medians of the ratios of runs made one after the other (the
# machine's load drifts less within a pair than over the whole script), with their range
ratio() {
    paste -d ' ' "$tmp/res.$2" "$tmp/res.$3" |
        awk '{ print ($3 > 0 ? $1 / $3 : 0), ($4 > 0 ? $2 / $4 : 0) }' >"$tmp/pairs"
    r=$(awk '{print $1}' "$tmp/pairs" | sort -n | awk '{a[NR]=$1} END {printf "x%.2f (%.2f-%.2f)", a[int((NR+1)/2)], a[1], a[NR]}')
    c=$(awk '{print $2}' "$tmp/pairs" | sort -n | awk '{a[NR]=$1} END {printf "x%.2f (%.2f-%.2f)", a[int((NR+1)/2)], a[1], a[NR]}')
    printf '%-9s wharf-load / %-16s rate %s, CPU per op %s\n' "$1" "$3:" "$r" "$c"
}
timed() { # OUT CMD...: runs CMD pinned, CPU time in $tmp/t
    out=$1
    shift
    # shellcheck disable=SC2086
    /usr/bin/time -f '%U %S' -o "$tmp/t" $gen_cpu "$@" >"$out" 2>&1 || true
}
run_wl() { # TOOLNAME ARGS...
    name=$1
    shift
    timed "$tmp/wl" "$load" -j -t 1 -c "$conns" -d "$dur" "$@"
    grep -q '"pass": true' "$tmp/wl" || { echo "wharf-load run failed:" >&2; cat "$tmp/wl" >&2; }
    record "$name" "$(wl_rate "$tmp/wl")" "$(wl_n "$tmp/wl")" "$(cpu_of "$tmp/t")"
}
run_wrk() { # TOOLNAME ARGS...
    name=$1
    shift
    timed "$tmp/wrk" wrk -t1 -c"$conns" -d"${dur}s" "$@"
    ! grep -q 'Non-2xx\|Socket errors' "$tmp/wrk" || grep 'Non-2xx\|Socket errors' "$tmp/wrk" >&2
    record "$name" "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$tmp/wrk")" \
        "$(awk '/requests in/ {print $1}' "$tmp/wrk")" "$(cpu_of "$tmp/t")"
}

echo "duration ${dur}s, $conns connections, one generator thread, median of $rep runs each"
printf '%-9s %-28s %10s %9s   %s\n' proto generator rate us/op "rate of each run"

# ---- memcache ---------------------------------------------------------------------------------
mport=$(free_port 21211)
# shellcheck disable=SC2086
$srv_cpu memcached -u "$(id -un)" -l 127.0.0.1 -p "$mport" -U 0 -t 1 -m 512 -c 4096 &
pids="$pids $!"
wait_listen "$mport" memcached
prefix=$(printf 'k%058d' 0) # 59 bytes + 5 digits: 64-byte keys like memcaslap's
i=0
while [ $i -lt "$rep" ]; do
    # memcaslap: ASCII protocol, set:get 1:9, 64-byte keys, 100-byte values
    timed "$tmp/ms" memcaslap -s "127.0.0.1:$mport" -T 1 -c "$conns" -t "${dur}s" -X 100
    record memcaslap "$(sed -n 's/.*TPS: \([0-9]*\).*/\1/p' "$tmp/ms" | tail -n 1)" \
        "$(sed -n 's/.*Ops: \([0-9]*\) TPS.*/\1/p' "$tmp/ms" | tail -n 1)" "$(cpu_of "$tmp/t")"
    run_wl wl_mc --proto memcache --set-ratio 0.1 --value-size 100 --keys 100000 \
        --key-prefix "$prefix" "127.0.0.1:$mport"
    i=$((i + 1))
done
report memcache memcaslap memcaslap
report memcache wl_mc "wharf-load --proto memcache"

# ---- http -------------------------------------------------------------------------------------
hport=$(free_port 28080)
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
    server { listen 127.0.0.1:$hport; root $tmp/nginx/html; }
}
CONF
# shellcheck disable=SC2086
$srv_cpu nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
pids="$pids $!"
wait_listen "$hport" nginx
i=0
while [ $i -lt "$rep" ]; do
    run_wrk wrk_http "http://127.0.0.1:$hport/index.html"
    run_wl wl_http --proto http --path /index.html "127.0.0.1:$hport"
    i=$((i + 1))
done
report http wrk_http wrk
report http wl_http "wharf-load --proto http"

# ---- echo -------------------------------------------------------------------------------------
# shellcheck disable=SC2086
$srv_cpu "$echo_min" -l 900 >"$tmp/port" &
pids="$pids $!"
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$tmp/port" ] && break; sleep 0.1; done
eport=$(awk '{print $2}' "$tmp/port")
i=0
while [ $i -lt "$rep" ]; do
    timed "$tmp/cm" "$echo_cmin" -c "$conns" -d "$dur" -s 64 127.0.0.1 "$eport"
    record cmin "$(awk '/^messages/ {print $6}' "$tmp/cm")" "$(awk '/^messages/ {print $2}' "$tmp/cm")" \
        "$(cpu_of "$tmp/t")"
    run_wrk wrk_echo -s "$here/echo64.lua" "http://127.0.0.1:$eport/"
    run_wl wl_echo "127.0.0.1:$eport"
    i=$((i + 1))
done
report echo cmin "wharf-echo-cmin (no checks)"
report echo wrk_echo "wrk echo64.lua"
report echo wl_echo "wharf-load (echo)"
echo
ratio memcache wl_mc memcaslap
ratio http wl_http wrk_http
ratio echo wl_echo cmin
ratio echo wl_echo wrk_echo
