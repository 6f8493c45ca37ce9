#!/bin/sh
# bench/mc_lru.sh - which items wharfd's memcache handler keeps, against
# Debian's memcached, side by side in one run with the same memory limit:
# a fill ten times over the limit (survivors that are the newest), a
# one-pass scan past a hot set (hot keys kept), Zipf(0.99) cache-aside and
# Zipf with one request in four a one-pass scan (hit ratios).  The
# workloads are bench/mc_lru.py's; each runs against a freshly started
# server.  A benchmark, not a test: about 30 s on an idle machine.
#
#   bench/mc_lru.sh [MiB]        (from a build tree; default 16 MiB)
#
# Equal limits: memcached's -m N is N pages of 1 MiB of slab memory, which
# holds items, their headers and the slack of rounding each item up to its
# slab class's chunk size (hash table and connections are outside it).
# wharf's memory_limit of N MiB counts each item's key, value, header and a
# fixed 32 bytes for the allocator and its hash bucket (mc_item_cost), and
# nothing else.  Both are "the bytes the cache may spend on items"; the
# script gives both N MiB.
#
# Environment: WHARF_BUILDDIR (default .), MEMCACHED (default memcached),
# PYTHON (default python3).
set -u
mib=${1:-16}
limit=$((mib * 1048576))
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}
memcached=${MEMCACHED:-memcached}
python=${PYTHON:-python3}
here=$(dirname "$0")
for tool in "$memcached" "$python" "$wharfd"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "needs $tool"; exit 1; }
done
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT

free_port() {
    "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
start() { # memcached | wharf
    port=$(free_port)
    if [ "$1" = memcached ]; then
        "$memcached" -u nobody -l 127.0.0.1 -p "$port" -U 0 -t 2 -m "$mib" &
    else
        cat >"$tmp/w.json" <<JSON
{"workers": 2, "log": "warn",
 "listeners": [{"name": "mc", "address": "127.0.0.1", "port": $port, "handler": "memcache",
  "timeouts": {"idle_ms": 0}, "buffers": {"max_input": 2097152},
  "options": {"memory_limit": $limit}}]}
JSON
        "$wharfd" -c "$tmp/w.json" &
    fi
    pid=$! # mc_lru.py waits for the port
}

start=$(date +%s)
for server in memcached wharf; do
    for workload in fill scan zipf zipf+scan; do
        start "$server"
        "$python" "$here/mc_lru.py" "$port" "$limit" "$workload" | sed "s/^/$server /" >>"$tmp/out"
        kill "$pid"
        wait "$pid" 2>/dev/null
        pid=
    done
done

echo "memory limit $mib MiB (memcached -m $mib, wharf memory_limit $limit)"
printf '%-22s %12s %12s\n' "" memcached wharf
for name in fill_survivors fill_newest fill_evictions scan_hot_kept zipf_hit \
    zipf+scan_hit zipf_evictions zipf+scan_evictions; do
    m=$(awk -v n="$name" '$1 == "memcached" && $2 == n {print $3}' "$tmp/out")
    w=$(awk -v n="$name" '$1 == "wharf" && $2 == n {print $3}' "$tmp/out")
    printf '%-22s %12s %12s\n' "$name" "$m" "$w"
done
echo "($(($(date +%s) - start)) s)"
