#!/bin/sh
# check_admin.sh - wharfd's admin socket, with socat as the client: every
# command's reply (show info|listeners|workers|conns|generations|limits,
# pause|drain|resume listener, close conn, set log-level, reload, help,
# quit), bad commands and a line too long, a reload that fails and returns
# its exact error, the audit line of each command (uid, pid, command,
# result), the socket's mode 0600 refusing another user (as root, with
# setpriv), a stale socket replaced and a live one refused, and `wharfd -s
# status`.
. "$(dirname "$0")/lib/common.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
command -v socat >/dev/null || { echo "SKIP: socat is needed"; exit 77; }

sock=$tmp/admin.sock
cat >"$tmp/wharf.json" <<EOF
{"workers": 2, "module_path": "$build/handlers/.libs",
 "admin": {"socket": "admin.sock"},
 "listeners": [{"name": "echo", "address": "127.0.0.1", "port": 0, "handler": "echo"}]}
EOF
cp "$tmp/wharf.json" "$tmp/good.json"
"$wharfd" -c "$tmp/wharf.json" -p "$tmp/run.pid" 2>"$tmp/log" &
pid=$!
wait_file "$tmp/log" "admin socket on"
port=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/log" | head -n1)

# adm LINES...: sends the lines, prints the replies.
adm() { printf '%s\n' "$@" | socat -t 5 - "UNIX-CONNECT:$sock"; }
# expect NAME "$reply" "exact text": byte-exact reply.
# ($(...) drops the trailing newlines: the empty line that ends a reply.)
expect() {
    want=$(printf '%s' "$3")
    if [ "$2" = "$want" ]; then ok "$1"; else fail "$1: got '$2', expected '$want'"; fi
}
# Waits (bounded: 30 s) until the client has had its first reply.
client_ready() {
    i=0
    while [ $i -lt 600 ] && [ ! -e "$tmp/ready" ]; do sleep 0.05; i=$((i + 1)); done
    rm -f "$tmp/ready"
}

mode=$(stat -c '%a %U' "$sock")
expect "the socket is created with mode 0600, owned by wharfd's user" "$mode" "600 $(id -un)"

r=$(adm help)
echo "$r" | grep -q '^reload  *read the config file again' && echo "$r" | grep -q '^quit ' &&
    ok "help lists the commands" || fail "help: $r"
r=$(adm "show info")
echo "$r" | grep -qx "pid $pid" && echo "$r" | grep -qx "generation 1" &&
    echo "$r" | grep -qx "version $("$wharfd" -V | cut -d' ' -f2)" &&
    ok "show info: pid, version, generation" || fail "show info: $r"

# A client connection that stays open, for the connection commands.
python3 - "$port" "$tmp/client.out" "$tmp/ready" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(b"hi\n")
s.recv(10)
open(sys.argv[3], "w").close()
try:
    d = s.recv(10)
    open(sys.argv[2], "w").write("closed\n" if d == b"" else "data\n")
except OSError as e:
    open(sys.argv[2], "w").write("error %s\n" % e)
PY
also_kill=$!
client_ready

r=$(adm "show listeners")
expect "show listeners" "$r" "# name protocol address port handler state open accepted rejected bytes_in bytes_out datagrams_in
echo tcp 127.0.0.1 $port echo accepting 1 1 0 3 3 0
"
r=$(adm "show workers")
echo "$r" | head -n1 | grep -qx "# worker connections queued queue_depth" &&
    [ "$(echo "$r" | grep -c '^[01] [0-9]* 0 1024$')" = 2 ] && ok "show workers: one line per worker" ||
    fail "show workers: $r"
r=$(adm "show conns")
line=$(echo "$r" | grep -v '^#' | grep .)
id=${line%% *}
echo "$line" | grep -q "^[0-9][0-9]* echo [01] 1 idle 127.0.0.1:[0-9]* [0-9]* [0-9]* 3 3$" &&
    echo "$r" | grep -qx "# total 1" && ok "show conns: id listener worker generation state peer ..." ||
    fail "show conns: $r"
r=$(adm "show conns echo" | grep -c " echo ")
expect "show conns LISTENER" "$r" 1
r=$(adm "show conns nosuch")
expect "show conns of a listener that does not exist" "$r" 'error: no listener "nosuch"
'
r=$(adm "show generations")
expect "show generations" "$r" "# generation state connections listeners reloads reloads_failed
1 current 1 1 0 0
"
r=$(adm "show limits")
echo "$r" | grep -qx "max_connections 10000 (open 1)" && echo "$r" | grep -qx "workers 2" &&
    echo "$r" | grep -qx "evict_idle_ms 1000" &&
    echo "$r" | grep -q "^listener echo backlog 511 max_input 1048576 " && ok "show limits" ||
    fail "show limits: $r"

# echo_once: one new connection's reply to "x", or "none" within 1 s.
echo_once() {
    python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"x\n")
try:
    print(s.recv(10).decode().strip() or "closed")
except OSError:
    print("none")
PY
}
expect "pause listener" "$(adm "pause listener echo")" "1 listener(s) paused
"
expect "a paused listener leaves new connections in the backlog" "$(echo_once)" none
adm "show listeners" | grep -q "^echo tcp .* paused " && ok "show listeners says paused" ||
    fail "show listeners after pause"
expect "resume listener" "$(adm "resume listener *")" "1 listener(s) accepting
"
expect "a resumed listener serves" "$(echo_once)" x
expect "pause of a listener that does not exist" "$(adm "pause listener nosuch")" 'error: no TCP listener "nosuch"
'
expect "close conn of one that does not exist" "$(adm "close conn 999999")" "error: no connection 999999
"
expect "close conn without an id" "$(adm "close conn x")" 'error: close conn: expected a connection id (show conns), got "x"
'
expect "close conn ID" "$(adm "close conn $id")" "connection $id closed
"
wait "$also_kill"; also_kill=
expect "the client of the closed connection sees EOF" "$(cat "$tmp/client.out")" closed

# drain: stops accepting and closes the idle connections of the listener.
python3 - "$port" "$tmp/client.out" "$tmp/ready" <<'PY' &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(b"hi\n"); s.recv(10)
open(sys.argv[3], "w").close()
try:
    open(sys.argv[2], "w").write("closed\n" if s.recv(10) == b"" else "data\n")
except OSError as e:
    open(sys.argv[2], "w").write("error %s\n" % e)
PY
also_kill=$!
client_ready
expect "drain listener" "$(adm "drain listener echo")" "1 listener(s) draining, 1 idle connection(s) closed
"
wait "$also_kill"; also_kill=
expect "its idle connection is closed" "$(cat "$tmp/client.out")" closed
expect "a draining listener accepts nothing" "$(echo_once)" none
adm "resume listener echo" >/dev/null

expect "set log-level" "$(adm "set log-level debug")" "log level debug
"
expect "set log-level with a bad level" "$(adm "set log-level loud")" "error: set log-level: expected error, warn, info or debug
"
expect "an unknown command" "$(adm "bogus" 2>/dev/null | head -c 30)" "error: unknown command: try sh"
r=$(python3 -c 'print("show " + "x" * 100000 + "\nset log-level info")' | socat -t 5 - "UNIX-CONNECT:$sock")
expect "a line too long is refused and dropped; the next line is served" "$r" "error: line too long (at most 1023 bytes)

log level info
"
expect "several commands on one connection, quit ends it" "$(adm "set log-level info" quit "show info" 2>/dev/null)" "log level info
"

# A connection of generation 1 open across a reload: show generations lists both.
python3 - "$port" "$tmp/client.out" "$tmp/ready" <<'PY' &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(b"hi\n"); s.recv(10)
open(sys.argv[3], "w").close()
try:
    s.recv(10)
except OSError:
    pass
PY
also_kill=$!
client_ready
expect "reload" "$(adm reload)" "reload done (generation 2)
"
expect "show generations with an older one still in use" "$(adm "show generations")" "# generation state connections listeners reloads reloads_failed
2 current 0 1 1 0
1 old 1 - - -
"
kill "$also_kill" 2>/dev/null; wait "$also_kill" 2>/dev/null; also_kill=
printf '{"listeners": [{"port": "http", "handler": "echo"}]}' >"$tmp/wharf.json"
expect "a reload that fails returns its exact error" "$(adm reload)" "error: reload failed, still serving the previous config: $tmp/wharf.json: listeners[0].port: expected an integer 0..65535, got \"http\"
"
adm "show info" | grep -qx "reloads_failed 1" && ok "the failed reload is counted" ||
    fail "reloads_failed after a failed reload: $(adm "show info")"
cp "$tmp/good.json" "$tmp/wharf.json"
expect "the old config kept serving" "$(echo_once)" x

grep -q "admin: uid $(id -u) pid [0-9]*: \"show listeners\": ok$" "$tmp/log" &&
    grep -q "admin: uid $(id -u) pid [0-9]*: \"bogus\": error: unknown command" "$tmp/log" &&
    grep -q "admin: uid $(id -u) pid [0-9]*: \"reload\": error: reload failed, still serving" "$tmp/log" &&
    ok "every command is audited: uid, pid, command, result" ||
    fail "audit lines: $(grep admin: "$tmp/log" | head -5)"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    r=$(printf 'show info\n' | setpriv --reuid=65534 --regid=65534 --clear-groups \
        socat -t 5 - "UNIX-CONNECT:$sock" 2>&1)
    echo "$r" | grep -q "Permission denied" && ok "mode 0600 refuses another user" ||
        fail "another user reached the admin socket: $r"
else
    echo "skip: mode 0600 against another user (needs root and setpriv)"
fi

out=$("$wharfd" -s status -c "$tmp/wharf.json")
echo "$out" | grep -qx "pid $pid" && echo "$out" | grep -q "^echo tcp 127.0.0.1 $port " &&
    ok "-s status asks the admin socket" || fail "-s status: $out"

# A second wharfd on the same admin socket refuses; a stale one is replaced.
out=$("$wharfd" -c "$tmp/wharf.json" 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "admin.socket $sock: another process answers on it" &&
    ok "a second wharfd does not take a live admin socket" || fail "second wharfd: $rc $out"
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
[ -S "$sock" ] || fail "the killed wharfd's socket file is gone already"
out=$("$wharfd" -s status -c "$tmp/wharf.json"); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "^wharfd: not running" && ok "-s status of a dead wharfd: exit 1" ||
    fail "-s status, dead: $rc $out"
"$wharfd" -c "$tmp/wharf.json" 2>"$tmp/log2" &
pid=$!
i=0
while [ $i -lt 600 ] && ! grep -q "admin socket on" "$tmp/log2"; do sleep 0.05; i=$((i + 1)); done
adm "show info" | grep -qx "pid $pid" && ok "a stale socket file is replaced" || fail "stale socket: $(cat "$tmp/log2")"
kill "$pid"; wait "$pid"; pid=
[ -e "$sock" ] && fail "the socket file is left after a stop" || ok "a stop removes the socket file"
finish
