#!/bin/sh
# compare-tcpkali.sh - wharf-load's open loop side by side with tcpkali's, for the table in
# docs/wharf-load.md: the client CPU per message at fixed rates, on the same echo server
# (bench/peers/wharf-echo-min), in one run, the generators taking turns.
#
#   bench/peers/compare-tcpkali.sh BUILDDIR [DURATION] [CONNECTIONS] [REPEAT] [RATES]
#
# DURATION seconds per run (default 5), CONNECTIONS (default 50), REPEAT turns per rate
# (default 3), RATES messages per second in all (default "5000 20000 100000"; each is
# split evenly over the connections, as tcpkali's -r is per connection). 64-byte messages,
# one generator thread each:
#   tcpkali      -w 1 -r RATE/CONNECTIONS -m <64 bytes>           (counts bytes only)
#   tcpkali+lat  the same with --latency-marker (times every message, as wharf-load does)
#   wharf-load   -t 1 -r RATE -w 0 (times every message and compares every byte)
# tcpkali is not packaged in Debian 12; TCPKALI names the binary (default: tcpkali on
# PATH). docs/wharf-load.md says how it was built for the recorded figures. BUILDDIR
# holds wharf-load and bench/peers/wharf-echo-min (make check builds it).
# With two or more CPUs the server is pinned to CPU 1, the generators to CPU 0. Prints per
# rate and generator the median CPU us per message (user + sys from /usr/bin/time, over
# the messages answered) and every run's, then the medians (and ranges) of the ratios
# wharf-load / tcpkali over runs made one after the other (below 1: wharf-load cheaper).
# Loopback only; every run bounded; the server is stopped by PID at the end.
set -eu
build=$(cd "${1:?usage: compare-tcpkali.sh BUILDDIR [DURATION] [CONNECTIONS] [REPEAT] [RATES]}" && pwd)
dur=${2:-5}
conns=${3:-50}
rep=${4:-3}
rates=${5:-5000 20000 100000}
tcpkali=${TCPKALI:-tcpkali}
load="$build/wharf-load"
echo_min="$build/bench/peers/wharf-echo-min"
for f in "$load" "$echo_min"; do
    [ -x "$f" ] || { echo "compare-tcpkali.sh: $f not built (make check)" >&2; exit 2; }
done
command -v "$tcpkali" >/dev/null ||
    { echo "compare-tcpkali.sh: $tcpkali not found (set TCPKALI; see docs/wharf-load.md)" >&2; exit 2; }

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

# shellcheck disable=SC2086
$srv_cpu "$echo_min" -l 3600 >"$tmp/port" &
pids="$pids $!"
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(awk '{print $2}' "$tmp/port")
[ -n "$port" ] || { echo "compare-tcpkali.sh: the echo server did not start" >&2; exit 1; }

msg=$(printf '%064d' 0)
marked="$(printf '%060d' 0)MARK" # 64 bytes, the marker at the end of each message
timed() { # OUT CMD...: runs CMD pinned, its CPU time (user + sys) in $tmp/t
    out=$1
    shift
    # shellcheck disable=SC2086
    /usr/bin/time -f '%U %S' -o "$tmp/t" $gen_cpu "$@" >"$out" 2>&1 || true
}
cpu_of() { tail -n 1 "$tmp/t" | awk '{printf "%.3f", $1 + $2}'; }
# record NAME MESSAGES: appends the run's CPU us per message to $tmp/res.NAME
record() {
    c=$(cpu_of)
    [ "${2:-0}" -gt 0 ] || { echo "compare-tcpkali.sh: $1 answered no message:" >&2; cat "$tmp/out" >&2; }
    echo "$2 $c" | awk '{ printf "%.2f\n", ($1 > 0 ? $2 * 1e6 / $1 : 0) }' >>"$tmp/res.$1"
}
kali_msgs() { # messages answered: bytes received / 64
    sed -n 's/^Total data received: .*(\([0-9]*\) bytes).*/\1/p' "$tmp/out" | awk '{print int($1 / 64)}'
}
run_kali() { # NAME RATE [EXTRA...]
    name=$1 r=$2
    shift 2
    timed "$tmp/out" "$tcpkali" -w 1 -c "$conns" --connect-rate 100000 -r "$((r / conns))" \
        -T "${dur}s" "$@" "127.0.0.1:$port"
    record "$name" "$(kali_msgs)"
}
run_wl() { # NAME RATE
    timed "$tmp/out" "$load" -j -t 1 -c "$conns" -r "$2" -w 0 -d "$dur" "127.0.0.1:$port"
    grep -q '"pass": true' "$tmp/out" || { echo "wharf-load run failed:" >&2; cat "$tmp/out" >&2; }
    record "$1" "$(sed -n 's/.*"counters": {"sent": [0-9]*, "received": \([0-9]*\).*/\1/p' "$tmp/out")"
}
median() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%.2f", (NR ? a[int((NR+1)/2)] : 0)}'; }
ratio() { # A B: median (range) of A/B over the runs' pairs
    paste -d ' ' "$1" "$2" | awk '{ print ($2 > 0 ? $1 / $2 : 0) }' | sort -n |
        awk '{a[NR]=$1} END {printf "x%.2f (%.2f-%.2f)", a[int((NR+1)/2)], a[1], a[NR]}'
}

echo "echo server wharf-echo-min, ${dur}s per run, $conns connections, 64-byte messages,"
echo "one generator thread each, $rep turns per rate; CPU us per message answered"
for r in $rates; do
    i=0
    while [ $i -lt "$rep" ]; do
        if [ $((i % 2)) -eq 0 ]; then
            run_kali kali.$r "$r" -m "$msg"
            run_kali kalilat.$r "$r" -m "$marked" --latency-marker MARK
            run_wl wl.$r "$r"
        else
            run_wl wl.$r "$r"
            run_kali kalilat.$r "$r" -m "$marked" --latency-marker MARK
            run_kali kali.$r "$r" -m "$msg"
        fi
        i=$((i + 1))
    done
    for g in kali kalilat wl; do
        printf '%7s/s %-12s median %7s us/msg   runs: %s\n' "$r" \
            "$(case $g in kali) echo tcpkali ;; kalilat) echo tcpkali+lat ;; *) echo wharf-load ;; esac)" \
            "$(median "$tmp/res.$g.$r")" "$(tr '\n' ' ' <"$tmp/res.$g.$r")"
    done
    printf '%7s/s wharf-load / tcpkali %s, / tcpkali+lat %s\n' "$r" \
        "$(ratio "$tmp/res.wl.$r" "$tmp/res.kali.$r")" "$(ratio "$tmp/res.wl.$r" "$tmp/res.kalilat.$r")"
done
