#!/bin/sh
# check_load_outputs.sh - wharf-load's outputs and the coordinated-omission test, against
# wharf-echo-min (bench/peers/echo-min.c, built by make check) started here and ended by
# its pid:
# - --hlog: the HdrHistogram interval log is read back by an independent decoder written
#   here in Python (base64, zlib, the V2 encoding: cookies, header, ZigZag LEB128 counts,
#   zero runs), which checks the header lines, that the intervals add up to the run's
#   counts, and that the percentiles computed from the decoded counts equal the summary's
#   (no HdrHistogram reader is packaged in Debian: `apt-cache search hdrhistogram` finds
#   none);
# - --csv: one line per interval, replies adding up to the run's;
# - -P: the distribution goes to stderr or --percentiles=FILE, never into the summary on
#   stdout;
# - wharf-load(1): its OPTIONS list is what --help prints, line for line;
# - coordinated omission: the server is stopped (SIGSTOP) for 200 ms during a fixed-rate
#   run; the corrected p99.9 must show at least 0.75 x the freeze. With -p 1 the
#   uncorrected figure hides it (reported, and checked to be below the corrected one);
# - Ctrl-C: SIGINT stops sending and drains, a second one ends the drain at once; either
#   way the run reports what it has, interrupted, and exits 1, within 0.9 s of the signal.
# Every run is bounded by --duration; every wait is bounded.
set -u
build=${WHARF_BUILDDIR:-.}
load=$build/wharf-load
echo_min=$build/bench/peers/wharf-echo-min
tmp=$(mktemp -d)
pids=
passed=0
failed=0
cleanup() {
    for p in $pids; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] && cp -r "$tmp" /tmp/check_load_outputs.keep
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
[ -x "$echo_min" ] || { echo "SKIP: $echo_min not built (make check builds it)"; exit 77; }

"$echo_min" -t 1 -a 127.0.0.1 -p 0 -l 60 >"$tmp/echo.out" 2>&1 &
epid=$!
pids="$pids $epid"
i=0
while [ $i -lt 100 ] && ! grep -q '^port ' "$tmp/echo.out"; do sleep 0.05; i=$((i + 1)); done
port=$(sed -n 's/^port //p' "$tmp/echo.out" | head -1)
[ -n "$port" ] || { echo "FAIL: wharf-echo-min did not start: $(cat "$tmp/echo.out")"; exit 1; }

# The independent .hlog reader: prints "ok ..." or "bad ...".
cat >"$tmp/hlog_check.py" <<'PY'
import base64, json, math, re, sys, zlib

hlog, report = sys.argv[1], json.load(open(sys.argv[2]))

def zigzag_counts(buf):
    """HdrHistogram's ZigZag LEB128 varints (at most 9 bytes, the 9th with 8 bits)."""
    i, out = 0, []
    while i < len(buf):
        v, shift = 0, 0
        for k in range(9):
            b = buf[i]; i += 1
            if k == 8:
                v |= b << 56
                break
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append((v >> 1) ^ -(v & 1))
    return out

def decode(text):
    raw = base64.b64decode(text)
    cookie, length = int.from_bytes(raw[0:4], 'big'), int.from_bytes(raw[4:8], 'big')
    assert cookie == 0x1c849314, 'compressed cookie %x' % cookie
    assert length == len(raw) - 8, 'compressed length'
    p = zlib.decompress(raw[8:])
    cookie, plen = int.from_bytes(p[0:4], 'big'), int.from_bytes(p[4:8], 'big')
    assert cookie == 0x1c849313, 'encoding cookie %x' % cookie
    assert plen == len(p) - 40, 'payload length'
    offset, digits = int.from_bytes(p[8:12], 'big'), int.from_bytes(p[12:16], 'big')
    lowest, highest = int.from_bytes(p[16:24], 'big'), int.from_bytes(p[24:32], 'big')
    assert (offset, digits, lowest) == (0, 3, 1), 'header %r' % ((offset, digits, lowest),)
    counts = {}
    idx = 0
    for c in zigzag_counts(p[40:]):
        if c < 0:
            idx += -c
        else:
            if c:
                counts[idx] = counts.get(idx, 0) + c
            idx += 1
    return digits, lowest, highest, counts

# HdrHistogram's index arithmetic for (lowest, digits)
def layout(digits, lowest):
    sub_count = 1 << math.ceil(math.log2(2 * 10 ** digits))
    return sub_count // 2, (sub_count // 2).bit_length() - 1, int(math.floor(math.log2(lowest)))

def value_from_index(i, half, half_mag, unit):
    bucket = (i >> half_mag) - 1
    sub = (i & (half - 1)) + half
    if bucket < 0:
        sub -= half
        bucket = 0
    return sub << (bucket + unit)

text = open(hlog).read()
start = re.search(r'^#\[StartTime: ([0-9.]+) \(seconds since epoch\), .+\]$', text, re.M)
base = re.search(r'^#\[BaseTime: ([0-9.]+) \(seconds since epoch\)\]$', text, re.M)
assert re.search(r'^#\[Histogram log format version 1\.3\]$', text, re.M), 'version line'
assert start and base, 'StartTime/BaseTime lines'
assert '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"' in text
sums, lines, last_end = {}, 0, {}
for line in text.splitlines():
    if not line or line[0] in '#"':
        continue
    tag = None
    if line.startswith('Tag='):
        tag, line = line[4:].split(',', 1)
    ts, length, mx, b64 = line.split(',')
    digits, lowest, highest, counts = decode(b64)
    half, half_mag, unit = layout(digits, lowest)
    top = max(counts) if counts else None
    top_value = value_from_index(top + 1, half, half_mag, unit) - 1 if counts else 0
    assert abs(float(mx) - top_value / 1e6) < 0.0015, 'interval max %s vs %d' % (mx, top_value)
    assert float(ts) >= last_end.get(tag, 0) - 0.0015, 'intervals in order'
    last_end[tag] = float(ts) + float(length)
    acc = sums.setdefault(tag, {})
    for i, c in counts.items():
        acc[i] = acc.get(i, 0) + c
    lines += 1

kinds = {None: 'corrected', 'uncorrected': 'uncorrected'} if report['config']['mode'] == 'open' \
    else {None: 'corrected'}
for tag, name in kinds.items():
    h, want = sums.get(tag, {}), report['latency_ns'][name]
    total = sum(h.values())
    assert total == want['count'], '%s: %d values in the log, %d in the summary' % (name, total, want['count'])
    for p in (50, 90, 99, 99.9):
        # wharf-load's definition: the bucket where the cumulative count reaches
        # ceil(p/100 * total), its highest value, clamped to [min, max]
        rank = max(1, math.ceil(p / 100 * total - 1e-9))
        cum = 0
        for i in sorted(h):
            cum += h[i]
            if cum >= rank:
                v = value_from_index(i + 1, half, half_mag, unit) - 1
                break
        v = min(max(v, want['min']), want['max'])
        key = 'p%g' % p
        assert v == want[key], '%s %s: %d from the log, %d in the summary' % (name, key, v, want[key])
print('ok %d lines, %s values, p99 %d ns' % (lines, sum(sum(h.values()) for h in sums.values()),
                                              report['latency_ns']['corrected']['p99']))
PY

# 1. --hlog, --csv, -P on stderr: open loop (two kinds) and closed loop (one)
for mode in open closed; do
    args="-c 4 -r 4000 -w 500ms -d 2 --interval 250ms"
    [ $mode = closed ] && args="-c 4 -p 2 -d 1 --interval 200ms"
    "$load" $args -j --hlog "$tmp/$mode.hlog" --csv "$tmp/$mode.csv" 127.0.0.1:$port \
        >"$tmp/$mode.json" 2>"$tmp/$mode.err"
    rc=$?
    v=$(python3 "$tmp/hlog_check.py" "$tmp/$mode.hlog" "$tmp/$mode.json" 2>&1 | tail -1)
    case "$rc $v" in
        "0 ok"*) ok "--hlog $mode loop read back by the independent decoder: $v" ;;
        *) fail "--hlog $mode loop: rc $rc, $v" ;;
    esac
    v=$(python3 - "$tmp/$mode.csv" "$tmp/$mode.json" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
r = json.load(open(sys.argv[2]))
replies = sum(int(x['replies']) for x in rows)
want = r['counters']['received']
print('ok' if replies == want and len(rows) == len(r['series']['points']) else 'bad',
      len(rows), 'rows,', replies, 'replies, report', want)
PY
)
    case "$v" in
        ok*) ok "--csv $mode loop: $v" ;;
        *) fail "--csv $mode loop: $v" ;;
    esac
done

# 2. -P: the distribution on stderr (or the file), the summary alone on stdout
"$load" -c 2 -n 2000 -P 127.0.0.1:$port >"$tmp/p.out" 2>"$tmp/p.err"
if grep -q 'Percentile' "$tmp/p.err" && ! grep -q 'Percentile' "$tmp/p.out" && grep -q '^  result' "$tmp/p.out" &&
    [ "$(tail -1 "$tmp/p.out" | cut -c3-8)" = "result" ]; then
    ok "-P: the spectrum on stderr, stdout ends with the summary"
else
    fail "-P: stdout $(wc -l <"$tmp/p.out") lines ending '$(tail -1 "$tmp/p.out")', stderr $(head -c 200 "$tmp/p.err")"
fi
"$load" -c 2 -n 2000 --percentiles="$tmp/spectrum.txt" 127.0.0.1:$port >"$tmp/pf.out" 2>"$tmp/pf.err"
if grep -q 'Percentile' "$tmp/spectrum.txt" && ! grep -q 'Percentile' "$tmp/pf.out" "$tmp/pf.err"; then
    ok "--percentiles=FILE: the spectrum in the file only"
else
    fail "--percentiles=FILE: $(head -c 300 "$tmp/spectrum.txt" 2>&1)"
fi

# files that cannot be written, and a tick out of range, are named
"$load" -c 1 -n 10 --hlog "$tmp/no/such/dir.hlog" 127.0.0.1:$port >/dev/null 2>"$tmp/bad1.err"
rc1=$?
"$load" -c 1 -n 10 --csv /dev/full 127.0.0.1:$port >/dev/null 2>"$tmp/bad2.err"
rc2=$?
"$load" -r 1k --tick 1s 127.0.0.1:$port >/dev/null 2>"$tmp/bad3.err"
rc3=$?
if [ "$rc1 $rc2 $rc3" = "3 3 2" ] && grep -q -- '--hlog .*cannot create' "$tmp/bad1.err" &&
    grep -q -- '--csv /dev/full: write failed' "$tmp/bad2.err" && grep -q -- '--tick: at most 100ms' "$tmp/bad3.err"; then
    ok "unwritable --hlog and --csv (exit 3), --tick 1s (exit 2), each named"
else
    fail "bad outputs: rc $rc1 $rc2 $rc3: $(cat "$tmp/bad1.err" "$tmp/bad2.err" "$tmp/bad3.err")"
fi

# 3. coordinated omission: freeze the server 200 ms during a fixed-rate run
co_run() { # NAME ARGS...: a 2000 msg/s run, the server stopped 200 ms after 1 s
    name=$1
    shift
    "$load" -c 4 -r 2000 -d 2500ms --drain 2 -j "$@" 127.0.0.1:$port >"$tmp/$name.json" 2>"$tmp/$name.err" &
    lpid=$!
    sleep 1
    kill -STOP "$epid"
    sleep 0.2
    kill -CONT "$epid"
    wait "$lpid"
}
# wharf-load(1) quotes --help between ".ft CR" and ".ft R", escaped for roff (\- and \e)
"$load" --help >"$tmp/help.txt" 2>&1
sed -n '/^\.ft CR$/,/^\.ft R$/p' "${WHARF_SRCDIR:-.}/docs/wharf-load.1" | sed '1d;$d' |
    sed 's/\\-/-/g; s/\\e/\\/g' >"$tmp/man.txt"
if [ -s "$tmp/help.txt" ] && cmp -s "$tmp/help.txt" "$tmp/man.txt"; then
    ok "wharf-load(1) lists the options as --help prints them ($(wc -l <"$tmp/help.txt") lines)"
else
    fail "wharf-load(1) and --help differ: $(diff "$tmp/man.txt" "$tmp/help.txt" | head -n 6)"
fi

co_run co
co_run co1 -p 1
v=$(python3 - "$tmp/co.json" "$tmp/co1.json" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ca, ua = a['latency_ns']['corrected']['p99.9'], a['latency_ns']['uncorrected']['p99.9']
cb, ub = b['latency_ns']['corrected']['p99.9'], b['latency_ns']['uncorrected']['p99.9']
good = a['errors'] == 0 and b['errors'] == 0 and ca >= 150e6 and cb >= 150e6 and ub < cb
print('ok' if good else 'bad',
      'p99.9 pipeline 4096: corrected %.1f ms, uncorrected %.1f ms; -p 1: corrected %.1f ms, uncorrected %.1f ms; errors %d %d'
      % (ca / 1e6, ua / 1e6, cb / 1e6, ub / 1e6, a['errors'], b['errors']))
PY
)
case "$v" in
    ok*) ok "coordinated omission, 200 ms freeze: $v" ;;
    *) fail "coordinated omission, 200 ms freeze: $v" ;;
esac

# 4. Ctrl-C (SIGINT): the first stops sending and drains, a second ends at once
ms() { echo $(($(date +%s%N) / 1000000)); }
gone_within() { # PID MS: waits for PID to end, at most MS milliseconds; 0 if it did
    t=0
    while [ $t -lt "$2" ] && kill -0 "$1" 2>/dev/null; do sleep 0.05; t=$((t + 50)); done
    ! kill -0 "$1" 2>/dev/null
}
# (and a run ends as soon as its threads do: the main thread does not sleep past them)
t0=$(ms)
"$load" -c 1 -n 10 127.0.0.1:$port >"$tmp/short.out" 2>&1
rc=$?
t1=$(ms)
if [ $rc -eq 0 ] && [ $((t1 - t0)) -lt 900 ]; then
    ok "a 10-message run ends in $((t1 - t0)) ms"
else
    fail "a 10-message run: rc $rc after $((t1 - t0)) ms: $(head -c 300 "$tmp/short.out")"
fi
"$load" -c 2 -r 1000 -d 60 -w 0 -j 127.0.0.1:$port >"$tmp/int1.json" 2>"$tmp/int1.err" &
lpid=$!
sleep 1
t0=$(ms)
kill -INT "$lpid"
gone_within "$lpid" 5000
gone=$?
t1=$(ms)
wait "$lpid"
rc=$?
v=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
c = r["counters"]
print("ok" if r["interrupted"] and r["errors"] == 0 and c["received"] == c["sent"] and 500 <= c["sent"] <= 3000 else "bad",
      "interrupted", r["interrupted"], "sent", c["sent"], "received", c["received"], "errors", r["errors"])
' "$tmp/int1.json" 2>&1)
if [ $gone -eq 0 ] && [ $rc -eq 1 ] && [ $((t1 - t0)) -lt 900 ] && case "$v" in ok*) true ;; *) false ;; esac; then
    ok "SIGINT: drained and ended in $((t1 - t0)) ms, exit 1, $v"
else
    fail "SIGINT: gone $gone rc $rc after $((t1 - t0)) ms: $v $(head -c 300 "$tmp/int1.err")"
fi
# the server frozen with messages in flight, so the drain would wait until --drain
"$load" -c 2 -r 1000 -d 60 -w 0 --drain 30 -j 127.0.0.1:$port >"$tmp/int2.json" 2>"$tmp/int2.err" &
lpid=$!
sleep 1
kill -STOP "$epid"
sleep 0.2
kill -INT "$lpid"
sleep 0.5
alive=no
kill -0 "$lpid" 2>/dev/null && alive=yes
t0=$(ms)
kill -INT "$lpid"
gone_within "$lpid" 5000
gone=$?
t1=$(ms)
kill -CONT "$epid"
wait "$lpid"
rc=$?
v=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("ok" if r["interrupted"] else "bad", "interrupted", r["interrupted"], "sent", r["counters"]["sent"])
' "$tmp/int2.json" 2>&1)
if [ $alive = yes ] && [ $gone -eq 0 ] && [ $rc -eq 1 ] && [ $((t1 - t0)) -lt 900 ] &&
    case "$v" in ok*) true ;; *) false ;; esac; then
    ok "second SIGINT: the drain (still waiting after 0.5 s) ended in $((t1 - t0)) ms, exit 1, $v"
else
    fail "second SIGINT: draining $alive, gone $gone rc $rc after $((t1 - t0)) ms: $v $(head -c 300 "$tmp/int2.err")"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
