#!/bin/sh
# check_systemd.sh - wharfd under a service manager, with the real tools:
# systemd-socket-activate (Debian's systemd package) passes it a bound
# listening socket, which the listener of that name takes instead of
# binding; the notify socket hears READY=1, RELOADING=1 (and READY=1 again)
# on SIGHUP, WATCHDOG=1 when WATCHDOG_USEC asks for it, and STOPPING=1; and,
# run as root, "user" drops privileges once the sockets are bound.
. "$(dirname "$0")/lib/common.sh"
if ! command -v systemd-socket-activate >/dev/null || ! command -v python3 >/dev/null; then
    echo "SKIP: systemd-socket-activate (Debian package systemd) and python3 are needed"
    exit 77
fi
# It runs $real, as a service manager would (lib/common.sh).

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/sd.json" <<JSON
{"workers": 2, "listeners": [{"name": "echo", "port": $port, "handler": "echo"}]}
JSON

# The notify socket: every message received goes to a file, one per line.
notify_collect "$tmp/notify" "$tmp/messages" 30

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
wait_file "$tmp/messages" "READY=1"
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
wait_file "$tmp/log" "reloaded: generation 2"
sleep 0.2
grep -q "^RELOADING=1 MONOTONIC_USEC=[0-9]*$" "$tmp/messages" && [ "$(grep -c '^READY=1' "$tmp/messages")" -ge 2 ] &&
    grep -q "kept echo" "$tmp/log" &&
    ok "SIGHUP: RELOADING=1, then READY=1; the passed socket is kept" ||
    fail "reload notify: $(cat "$tmp/messages")"
stop_wharfd 50
grep -q "^STOPPING=1" "$tmp/messages" && ok "STOPPING=1 on SIGTERM" || fail "no STOPPING=1: $(cat "$tmp/messages")"

# "user": root binds, then runs as nobody.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    cat >"$tmp/user.json" <<JSON
{"workers": 1, "user": "nobody", "listeners": [{"port": 0, "handler": "echo"}]}
JSON
    start_wharfd -c "$tmp/user.json"
    uid=$(awk '/^Uid:/ {print $2 $3 $4 $5}' "/proc/$pid/status" 2>/dev/null)
    want=$(id -u nobody)
    [ "$uid" = "$want$want$want$want" ] && grep -q "running as user nobody" "$tmp/log" &&
        ok "user: bound as root, runs as nobody (every uid)" || fail "user: uids '$uid'; $(cat "$tmp/log")"
    stop_wharfd
else
    ok "user: skipped (not root)"
fi
finish
