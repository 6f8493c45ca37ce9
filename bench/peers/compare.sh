#!/bin/sh
# compare.sh - measures wharf-load against wrk on the same minimal epoll echo server
# (wharf-echo-min), closed loop, 64-byte messages, one generator thread, for the table in
# docs/wharf-load.md. Loopback only; every run is bounded (DURATION seconds each, and the
# server exits by itself after 15 minutes at most).
#
#   bench/peers/compare.sh BUILDDIR [DURATION] [CONNECTIONS...]
#
# BUILDDIR holds wharf-load and bench/peers/wharf-echo-min (make check builds the
# latter). Needs wrk (Debian package wrk) and taskset (util-linux). With two or more CPUs
# the server is pinned to CPU 1 and the generators to CPU 0, so each has one core.
# Prints one line per run: tool, connections, messages/s, CPU seconds, CPU us per message.
set -eu
build=$(cd "${1:?usage: compare.sh BUILDDIR [DURATION] [CONNECTIONS...]}" && pwd)
shift
dur=${1:-5}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- 1 16 64 256
here=$(cd "$(dirname "$0")" && pwd)
load="$build/wharf-load"
echo_min="$build/bench/peers/wharf-echo-min"
for f in "$load" "$echo_min"; do
    [ -x "$f" ] || { echo "compare.sh: $f not built" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "compare.sh: wrk not installed (apt-get install wrk)" >&2; exit 2; }

# srv_cpu/gen_cpu are empty or a taskset prefix, split into words on purpose below.
srv_cpu='' gen_cpu=''
if [ "$(nproc)" -ge 2 ]; then srv_cpu="taskset -c 1"; gen_cpu="taskset -c 0"; fi
out=$(mktemp -d)
# shellcheck disable=SC2086
$srv_cpu "$echo_min" -l 900 >"$out/port" &
srv=$!
trap 'kill $srv 2>/dev/null; rm -rf "$out"' EXIT INT TERM
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$out/port" ] && break; sleep 0.1; done
port=$(awk '{print $2}' "$out/port")
[ -n "$port" ] || { echo "compare.sh: echo server did not start" >&2; exit 1; }

# cpu_of FILE: user+sys seconds that /usr/bin/time -f '%U %S' wrote on the last line
cpu_of() { tail -n 1 "$1" | awk '{printf "%.2f", $1 + $2}'; }

printf '%-10s %6s %12s %8s %10s\n' tool conns msg/s cpu_s us/msg
for c in "$@"; do
    # shellcheck disable=SC2086
    /usr/bin/time -f '%U %S' -o "$out/t" $gen_cpu wrk -t1 -c"$c" -d"${dur}s" \
        -s "$here/echo64.lua" "http://127.0.0.1:$port/" >"$out/wrk" 2>&1
    n=$(awk '/requests in/ {print $1}' "$out/wrk")
    rate=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$out/wrk")
    cpu=$(cpu_of "$out/t")
    printf '%-10s %6s %12s %8s %10s\n' wrk "$c" "$rate" "$cpu" \
        "$(echo "$cpu $n" | awk '{printf "%.2f", $1 * 1e6 / $2}')"

    # shellcheck disable=SC2086
    /usr/bin/time -f '%U %S' -o "$out/t" $gen_cpu "$load" -j -t1 -c"$c" -d"$dur" \
        "127.0.0.1:$port" >"$out/wl" 2>&1 || true
    n=$(sed -n 's/.*"received": \([0-9]*\).*/\1/p' "$out/wl")
    rate=$(sed -n 's/^  "rate": \([0-9.]*\),/\1/p' "$out/wl" | awk '{printf "%.0f", $1}')
    cpu=$(cpu_of "$out/t")
    printf '%-10s %6s %12s %8s %10s\n' wharf-load "$c" "$rate" "$cpu" \
        "$(echo "$cpu $n" | awk '{printf "%.2f", $1 * 1e6 / $2}')"
done
