#!/bin/sh
# bench/load_cache.sh - wharf-load's cache modes side by side with the clients their users
# know, against the same server, same machine, one run each: client CPU per request of
# `wharf-load --proto redis` vs redis-benchmark (GET, and SET, 50 connections, pipeline 1
# and 16, 100-byte values, 10 000 keys), and of `wharf-load --proto memcache` vs memcaslap
# (its default 90 % get / 10 % set mix), with the rate each reached. wharf-load verifies
# every value it gets; the others do not. A benchmark, not a test.
#
#   bench/load_cache.sh [requests]     (from a build tree; default 500000 per run)
#
# Environment: WHARF_BUILDDIR (default .), SERVER_CPUS (taskset list for the servers,
# default 0), LOAD_CPUS (for the clients, default 1).
set -u
n=${1:-500000}
build=${WHARF_BUILDDIR:-.}
wload=$build/wharf-load
server_cpus=${SERVER_CPUS:-0}
load_cpus=${LOAD_CPUS:-1}
for tool in redis-server redis-benchmark memcached taskset python3 "$wload"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "needs $tool (redis-server, memcached)"; exit 1; }
done
memcaslap=$(command -v memcaslap || command -v memaslap || true)
tmp=$(mktemp -d)
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    i=0
    while [ $i -lt 100 ] && ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), timeout=1).close()" 2>/dev/null; do
        sleep 0.05; i=$((i + 1))
    done
}
# cpu CMD...: runs CMD pinned to LOAD_CPUS, its output to $tmp/out; prints its CPU seconds
# (user + system of the process and its children) and wall seconds
cpu() {
    python3 - "$load_cpus" "$@" >"$tmp/cpu" <<'PY'
import os, resource, subprocess, sys, time
t = time.monotonic()
with open(os.environ.get("OUT", "/dev/null"), "w") as out:
    subprocess.run(["taskset", "-c", sys.argv[1]] + sys.argv[2:], stdout=out, stderr=subprocess.STDOUT)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.3f %.3f" % (r.ru_utime + r.ru_stime, time.monotonic() - t))
PY
    cat "$tmp/cpu"
}
row() { # name requests cpu wall
    python3 -c "import sys; n, c, w = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]); print('%-44s %9.0f req/s %7.2f us CPU/request' % (sys.argv[1], n / w, c * 1e6 / n))" "$@"
}

rport=$(free_port)
taskset -c "$server_cpus" redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids="$pids $!"
wait_port "$rport"
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $n requests a run"
for p in 1 16; do
    export OUT=$tmp/rb
    set -- $(cpu redis-benchmark -p "$rport" -c 50 -P $p -n "$n" -r 10000 -d 100 -t set -q)
    row "redis-benchmark SET -P $p" "$n" "$1" "$2"
    set -- $(cpu redis-benchmark -p "$rport" -c 50 -P $p -n "$n" -r 10000 -d 100 -t get -q)
    row "redis-benchmark GET -P $p" "$n" "$1" "$2"
    export OUT=$tmp/wl
    set -- $(cpu "$wload" --proto redis --ratio 1:0 --keys 10000 --value-size 100 -t 1 -c 50 -p $p -n "$n" -d 600 -q 127.0.0.1:$rport)
    row "wharf-load --proto redis SET -p $p" "$n" "$1" "$2"
    set -- $(cpu "$wload" --proto redis --ratio 0:1 --keys 10000 --value-size 100 -t 1 -c 50 -p $p -n "$n" -d 600 -q 127.0.0.1:$rport)
    row "wharf-load --proto redis GET -p $p (verified)" "$n" "$1" "$2"
done

if [ -n "$memcaslap" ]; then
    mport=$(free_port)
    muser=
    [ "$(id -u)" = 0 ] && muser="-u daemon"
    taskset -c "$server_cpus" memcached $muser -l 127.0.0.1 -p "$mport" -t 1 -m 256 &
    pids="$pids $!"
    wait_port "$mport"
    export OUT=$tmp/ms
    set -- $(cpu "$memcaslap" -s 127.0.0.1:$mport -c 50 -T 1 -x "$n")
    row "memcaslap 90/10 (its defaults)" "$n" "$1" "$2"
    export OUT=$tmp/wl
    set -- $(cpu "$wload" --proto memcache --preload --ratio 1:9 --keys 10000 --value-size 100 -t 1 -c 50 -n "$n" -d 600 -q 127.0.0.1:$mport)
    row "wharf-load --proto memcache 1:9 (+preload)" "$n" "$1" "$2"
else
    echo "(memcaslap not installed: Debian package libmemcached-tools)"
fi
