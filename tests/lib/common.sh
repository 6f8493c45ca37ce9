# tests/lib/common.sh - what the shell suites that run a real wharfd share.
# Sourced first thing by a suite, next to which it lies in tests/lib:
#
#     . "$(dirname "$0")/lib/common.sh"
#
# It sets build and src (WHARF_BUILDDIR / WHARF_SRCDIR, as make check
# exports them), wharfd (the build's program) and real (the binary itself,
# with LD_LIBRARY_PATH pointing at the build's libwharf when wharfd is
# libtool's wrapper script: a service manager, setpriv or /proc look at the
# real process), tmp (a new directory, removed at exit; KEEP=1 keeps it and
# says where), and the pass/fail counters.  At exit every process named in
# $pid, $col and $also_kill (pids, space-separated) is killed: a suite ends
# only the processes it started, by pid.  Every wait below is bounded.
set -u
build=${WHARF_BUILDDIR:-.}
src=${WHARF_SRCDIR:-.}
wharfd=$build/wharfd
tmp=$(mktemp -d)
pid=
col=
also_kill=
passed=0
failed=0
common_cleanup() {
    for p in $pid $col $also_kill; do
        kill "$p" 2>/dev/null
    done
    if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap common_cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
# Prints the counts and exits: 0 when nothing failed.
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

real=$build/.libs/wharfd
if [ -x "$real" ] && [ -e "$build/.libs/libwharf.so" ]; then
    export LD_LIBRARY_PATH="$build/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
    real=$wharfd
fi

# wait_file FILE PATTERN: waits (30 s at most) until FILE has a line
# matching PATTERN; returns whether it has.
wait_file() {
    i=0
    while [ $i -lt 600 ] && ! grep -q "$2" "$1" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
    grep -q "$2" "$1" 2>/dev/null
}

# start_wharfd ARGS...: starts the real wharfd with ARGS (-c CONFIG ...),
# its log in $tmp/log; sets pid; waits (30 s at most) for "started:".
start_wharfd() {
    : >"$tmp/log" # emptied first: the background start truncates it only once it runs, and
    # an earlier wharfd's "started:" must not satisfy the wait below
    "$real" "$@" 2>"$tmp/log" &
    pid=$!
    wait_file "$tmp/log" "started:"
}

# stop_wharfd [TENTHS]: SIGTERM to $pid, then (after TENTHS tenths of a
# second, 10 s by default) SIGKILL; reaps it; sets status (its exit status,
# or "timeout") and empties pid.
stop_wharfd() {
    kill -TERM "$pid" 2>/dev/null
    i=0
    while [ $i -lt "${1:-100}" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        status=timeout
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
    else
        wait "$pid" 2>/dev/null
        status=$?
    fi
    pid=
}

# port_of [LISTENER] [LOG]: the port a listener (by default the first
# logged) says it listens on in LOG ($tmp/log).
port_of() {
    sed -n "s/.*\\[${1:-[^]]*}\\] listening on [a-z]* [^ ]*:\\([0-9]*\\) .*/\\1/p" \
        "${2:-$tmp/log}" | head -n1
}

# notify_collect SOCKET FILE SECONDS: a service manager's notify socket at
# SOCKET, every message written to FILE as one line, until SECONDS pass with
# none; sets col; returns once the socket exists (5 s at most).
notify_collect() {
    python3 - "$1" "$2" "$3" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(float(sys.argv[3]))
with open(sys.argv[2], "a") as out:
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            break
        out.write(msg.replace("\n", " ") + "\n")
        out.flush()
PY
    col=$!
    i=0
    while [ $i -lt 100 ] && [ ! -S "$1" ]; do sleep 0.05; i=$((i + 1)); done
}

# scrape PORT: the body of GET /metrics from the metrics listener on PORT.
scrape() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.decode().split("\r\n\r\n", 1)[-1])
PY
}

# metric PORT NAME: the value of the unlabelled series NAME in that scrape.
metric() {
    scrape "$1" | sed -n "s/^$2 \\([^ ]*\\)\$/\\1/p"
}
