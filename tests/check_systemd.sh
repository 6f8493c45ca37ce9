#!/bin/sh
# check_systemd.sh - wharfd under a service manager, with the real tools:
# systemd-socket-activate (Debian's systemd package) passes it a bound
# listening socket, which the listener of that name takes instead of
# binding; the notify socket hears READY=1, RELOADING=1 (and READY=1 again)
# on SIGHUP, WATCHDOG=1 when WATCHDOG_USEC asks for it, and STOPPING=1; and,
# run as root, "user" drops privileges once the sockets are bound.
set -u
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
tmp=$(mktemp -d)
pid=
col=
passed=0
failed=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "$col" ] && kill "$col" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
if ! command -v systemd-socket-activate >/dev/null || ! command -v python3 >/dev/null; then
    echo "SKIP: systemd-socket-activate (Debian package systemd) and python3 are needed"
    exit 77
fi
# Run the real binary, as a service manager would (the build tree's wharfd
# may be libtool's wrapper script around it).
real=$build/.libs/wharfd
[ -x "$real" ] && [ -e "$build/.libs/libwharf.so" ] && export LD_LIBRARY_PATH="$build/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" || real=$wharfd

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/sd.json" <<JSON
{"workers": 2, "listeners": [{"name": "echo", "port": $port, "handler": "echo"}]}
JSON

# The notify socket: every message received goes to a file, one per line.
python3 - "$tmp/notify" "$tmp/messages" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
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
while [ $i -lt 100 ] && [ ! -S "$tmp/notify" ]; do sleep 0.05; i=$((i + 1)); done

systemd-socket-activate -l "127.0.0.1:$port" --fdname=echo -E NOTIFY_SOCKET="$tmp/notify" \
    -E WATCHDOG_USEC=200000 -E LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}" \
    "$real" -c "$tmp/sd.json" 2>"$tmp/log" &
pid=$!
sleep 0.3
# The first connection makes systemd-socket-activate start wharfd.
reply=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"activated")
print(s.recv(64).decode())
PY
)
i=0
while [ $i -lt 100 ] && ! grep -q "READY=1" "$tmp/messages" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
[ "$reply" = "activated" ] && grep -q "socket from the service manager" "$tmp/log" &&
    grep -q "socket activation: 1 sockets passed" "$tmp/log" &&
    ok "socket activation: the listener takes the passed socket by name" ||
    fail "activation: reply '$reply'; $(tail -n 5 "$tmp/log")"
grep -q "^READY=1 MAINPID=$pid " "$tmp/messages" &&
    ok "READY=1 with MAINPID once serving" || fail "no READY=1: $(cat "$tmp/messages" 2>/dev/null)"
sleep 0.5
[ "$(grep -c '^WATCHDOG=1' "$tmp/messages")" -ge 2 ] && ok "WATCHDOG=1 every half WATCHDOG_USEC" ||
    fail "watchdog: $(cat "$tmp/messages")"
kill -HUP "$pid"
i=0
while [ $i -lt 100 ] && ! grep -q "reloaded: generation 2" "$tmp/log"; do sleep 0.05; i=$((i + 1)); done
sleep 0.2
grep -q "^RELOADING=1 MONOTONIC_USEC=[0-9]*$" "$tmp/messages" && [ "$(grep -c '^READY=1' "$tmp/messages")" -ge 2 ] &&
    grep -q "kept echo" "$tmp/log" &&
    ok "SIGHUP: RELOADING=1, then READY=1; the passed socket is kept" ||
    fail "reload notify: $(cat "$tmp/messages")"
kill -TERM "$pid"
i=0
while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
wait "$pid" 2>/dev/null
pid=
grep -q "^STOPPING=1" "$tmp/messages" && ok "STOPPING=1 on SIGTERM" || fail "no STOPPING=1: $(cat "$tmp/messages")"

# "user": root binds, then runs as nobody.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    cat >"$tmp/user.json" <<JSON
{"workers": 1, "user": "nobody", "listeners": [{"port": 0, "handler": "echo"}]}
JSON
    "$real" -c "$tmp/user.json" 2>"$tmp/ulog" &
    pid=$!
    i=0
    while [ $i -lt 100 ] && ! grep -q "started:" "$tmp/ulog"; do sleep 0.05; i=$((i + 1)); done
    uid=$(awk '/^Uid:/ {print $2 $3 $4 $5}' "/proc/$pid/status" 2>/dev/null)
    want=$(id -u nobody)
    [ "$uid" = "$want$want$want$want" ] && grep -q "running as user nobody" "$tmp/ulog" &&
        ok "user: bound as root, runs as nobody (every uid)" || fail "user: uids '$uid'; $(cat "$tmp/ulog")"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    pid=
else
    ok "user: skipped (not root)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
