#!/bin/sh
# compare-tcpkali.sh - wharf-load's open loop side by side with tcpkali's, for the table in
# docs/wharf-load.md: the client CPU per message at fixed rates, on the same echo server
# (bench/peers/wharf-echo-min), in one run, the generators taking turns.
#
#   bench/peers/compare-tcpkali.sh BUILDDIR [DURATION] [CONNECTIONS] [REPEAT] [RATES]
#
# DURATION: the measured window in seconds (default 5; each run lasts 3 s more before it
# and 2 s after), CONNECTIONS (default 50), REPEAT turns per rate (default 3), RATES
# messages per second in all (default "5000 20000 100000"). 64-byte messages, one
# generator thread each:
#   tcpkali      -w 1 -r R -m <64 bytes>      (counts bytes only)
#   tcpkali+lat  the same with --latency-marker (times every message, as wharf-load does)
#   wharf-load   -t 1 -r RATE -w 0            (times every message, compares every byte;
#                                             its default --batch auto)
# tcpkali's -r (per connection) does not give the rate asked for, so R is first found
# by trial for each RATE. Both are measured alike over the window, once the connections
# and any start-up burst are behind them: the generator's CPU (utime + stime of all its
# threads from /proc/PID/stat) over the messages the server received in that window
# (bytes_received of its sockets, from ss, / 64).
# LOAD_ARGS adds options to wharf-load's command line (e.g. LOAD_ARGS="--batch 4", or
# "--batch 1" for one message per connection per turn at every rate).
# tcpkali is not packaged in Debian 12; TCPKALI names the binary (default: tcpkali on
# PATH). docs/wharf-load.md says how it was built for the recorded figures. BUILDDIR
# holds wharf-load and bench/peers/wharf-echo-min (make check builds it).
# With two or more CPUs the server is pinned to CPU 1, the generators to CPU 0. Prints per
# rate and generator the median CPU us per message and every run's rate and CPU, then the
# medians (and ranges) of the ratios wharf-load / tcpkali over runs made one after the
# other (below 1: wharf-load cheaper).
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
for t in taskset ss getconf; do
    command -v $t >/dev/null || { echo "compare-tcpkali.sh: $t not installed" >&2; exit 2; }
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
warm=3                             # seconds before the window opens
# The server's bytes received from every client so far (ss, iproute2): counts the
# messages in the window for both generators alike.
server_bytes() {
    ss -Htin state established "( sport = :$port )" | grep -o 'bytes_received:[0-9]*' |
        awk -F: '{s += $2} END {print s + 0}'
}
# window WIN CMD...: runs CMD pinned for longer than warm + WIN seconds and measures over
# [warm, warm + WIN]: its CPU (utime + stime of all its threads, /proc/PID/stat) and the
# messages echoed; prints "rate us_per_message"
window() {
    win=$1
    shift
    # shellcheck disable=SC2086
    $gen_cpu "$@" >"$tmp/out" 2>&1 </dev/null &
    gpid=$!
    sleep "$warm"
    b1=$(server_bytes)
    c1=$(awk '{print $14 + $15}' "/proc/$gpid/stat" 2>/dev/null || true)
    sleep "$win"
    b2=$(server_bytes)
    c2=$(awk '{print $14 + $15}' "/proc/$gpid/stat" 2>/dev/null || true)
    wait "$gpid" || true
    if [ -z "$c1" ] || [ -z "$c2" ]; then
        echo "compare-tcpkali.sh: $1 ended before its window did:" >&2
        tail -n 5 "$tmp/out" >&2
        echo "0 0"
        return
    fi
    awk -v b=$((b2 - b1)) -v c=$((c2 - c1)) -v w="$win" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { m = b / 64; printf "%.0f %.2f\n", m / w, (m > 0 ? c / hz * 1e6 / m : 0) }'
}
kali() { # WIN PER_CONN_RATE MESSAGE [EXTRA...]
    kwin=$1 kper=$2 kmsg=$3
    shift 3
    window "$kwin" "$tcpkali" -w 1 -c "$conns" --connect-rate 100000 -r "$kper" -m "$kmsg" \
        -T "$((warm + kwin + 2))s" "$@" "127.0.0.1:$port"
}
wl() { # WIN RATE
    # shellcheck disable=SC2086
    window "$1" "$load" -q -t 1 -c "$conns" -r "$2" -w 0 -d "$(($warm + $1 + 2))" ${LOAD_ARGS:-} \
        "127.0.0.1:$port"
}
# tcpkali's -r is not the rate it keeps (on this machine more messages than asked for,
# and a different rate with --latency-marker): find the per-connection rate that gives
# TARGET, by three corrections from TARGET / CONNECTIONS.
kali_r_for() { # TARGET MESSAGE [EXTRA...]
    ktarget=$1 cper=$(($1 / conns))
    shift
    for _ in 1 2 3; do
        got=$(kali 3 "$cper" "$@" | awk '{print $1}')
        cper=$(awk -v r="$cper" -v t="$ktarget" -v g="$got" \
            'BEGIN { n = (g > 0 ? r * t / g : r); printf "%d", (n < 1 ? 1 : n + 0.5) }')
    done
    echo "$cper"
}
median() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%.2f", (NR ? a[int((NR+1)/2)] : 0)}'; }
ratio() { # A B: median (range) of A/B over the runs' pairs (column 2: us per message)
    paste -d ' ' "$1" "$2" | awk '{ print ($4 > 0 ? $2 / $4 : 0) }' | sort -n |
        awk '{a[NR]=$1} END {printf "x%.2f (%.2f-%.2f)", a[int((NR+1)/2)], a[1], a[NR]}'
}

echo "echo server wharf-echo-min, ${dur}s windows after ${warm}s, $conns connections,"
echo "64-byte messages, one generator thread each, $rep turns per rate; CPU us per message"
[ -z "${LOAD_ARGS:-}" ] || echo "wharf-load with $LOAD_ARGS"
for rate in $rates; do
    kr=$(kali_r_for "$rate" "$msg")
    klr=$(kali_r_for "$rate" "$marked" --latency-marker MARK)
    : >"$tmp/kali.$rate"; : >"$tmp/kalilat.$rate"; : >"$tmp/wl.$rate"
    i=0
    while [ $i -lt "$rep" ]; do
        if [ $((i % 2)) -eq 0 ]; then
            kali "$dur" "$kr" "$msg" >>"$tmp/kali.$rate"
            kali "$dur" "$klr" "$marked" --latency-marker MARK >>"$tmp/kalilat.$rate"
            wl "$dur" "$rate" >>"$tmp/wl.$rate"
        else
            wl "$dur" "$rate" >>"$tmp/wl.$rate"
            kali "$dur" "$klr" "$marked" --latency-marker MARK >>"$tmp/kalilat.$rate"
            kali "$dur" "$kr" "$msg" >>"$tmp/kali.$rate"
        fi
        i=$((i + 1))
    done
    for g in kali kalilat wl; do
        awk '{print $2}' "$tmp/$g.$rate" >"$tmp/us"
        printf '%7s/s %-12s median %6s us/msg   runs (rate us): %s\n' "$rate" \
            "$(case $g in kali) echo tcpkali ;; kalilat) echo tcpkali+lat ;; *) echo wharf-load ;; esac)" \
            "$(median "$tmp/us")" "$(awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}' "$tmp/$g.$rate")"
    done
    printf '%7s/s (tcpkali -r %s, with the marker -r %s) wharf-load / tcpkali %s, / tcpkali+lat %s\n' \
        "$rate" "$kr" "$klr" "$(ratio "$tmp/wl.$rate" "$tmp/kali.$rate")" \
        "$(ratio "$tmp/wl.$rate" "$tmp/kalilat.$rate")"
done
