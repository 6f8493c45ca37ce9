#!/bin/sh
# check_wharfd.sh - wharfd as an operator runs it: -V, -h, -t and -T on good
# and bad configs, then real runs on ephemeral ports: the seed tutorial's
# Python client gets "Echo: Hello, server!", UDP echo answers, SIGTERM stops
# it gracefully (exit 0), a second signal exits at once, SIGHUP (and -s
# reload) reloads or keeps the old config, SIGUSR1 re-opens the log file,
# SIGQUIT stops, EMFILE pauses accepting without spinning, and a worker
# thread that cannot start makes wharfd exit 1 at once.
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
tmp=$(mktemp -d)
pid=
passed=0
failed=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
if ! command -v python3 >/dev/null; then
    echo "FAIL: python3 is needed for these checks (Debian package python3)"
    echo "0 passed, 1 failed"
    exit 1
fi
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }

# Starts wharfd on config $1 in the background (after an optional wrapper
# command, e.g. prlimit); waits (bounded: 30 s, for a loaded machine) for its
# "started" line; sets $pid and the ports it logged.
start() {
    config=$1
    shift
    : >"$tmp/log" # emptied here: the child's own truncation may come after our first look
    "$@" "$wharfd" -c "$config" 2>>"$tmp/log" &
    pid=$!
    i=0
    while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/log"; do sleep 0.05; i=$((i + 1)); done
    tcp_port=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/log" | head -n1)
    udp_port=$(sed -n 's/.*listening on udp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/log" | head -n1)
}
# Waits (bounded, $1 tenths of a second) for $pid to exit; sets $status.
wait_exit() {
    i=0
    while [ $i -lt "$1" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then status=timeout; kill -9 "$pid"; wait "$pid"; else wait "$pid"; status=$?; fi
    pid=
}

"$wharfd" -V | grep -q "^wharfd [0-9]" && ok "-V" || fail "-V"
"$wharfd" -h | grep -q "usage: wharfd" && ok "-h" || fail "-h"
out=$("$wharfd" -t -c "$src/config/wharf.json" 2>&1) && echo "$out" | grep -q "configuration OK" &&
    ok "-t accepts config/wharf.json" || fail "-t config/wharf.json: $out"
"$wharfd" -t -c "$src/config/seed.json" >/dev/null 2>&1 && ok "-t accepts config/seed.json" ||
    fail "-t config/seed.json"

printf '{"listeners": [{"port": "http", "handler": "echo"}]}' >"$tmp/bad.json"
out=$("$wharfd" -t -c "$tmp/bad.json" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "bad.json: listeners\[0\].port: expected an integer 0..65535" &&
    ok "-t rejects a bad port naming file and path" || fail "bad port: rc=$rc $out"
printf '{"listeners": [{"port": 0, "handler": "no_such_handler"}]}' >"$tmp/nomod.json"
out=$("$wharfd" -t -c "$tmp/nomod.json" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "nomod.json: listeners\[0\].handler: .*not found" &&
    ok "-t rejects a missing handler module" || fail "missing module: rc=$rc $out"
printf '{"listeners": [{"address": "999.1.2.3", "port": 7, "handler": "echo"}]}' >"$tmp/badaddr.json"
out=$("$wharfd" -t -c "$tmp/badaddr.json" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q 'badaddr.json: listeners\[0\].address: cannot resolve "999.1.2.3"' &&
    ok "-t resolves every listener address" || fail "bad address passed -t: rc=$rc $out"
out=$("$wharfd" -t -c /dev/zero 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "/dev/zero: cannot read: not a regular file" &&
    ok "-t refuses a config that is not a regular file (/dev/zero), at once" || fail "/dev/zero: rc=$rc $out"
out=$("$wharfd" -c "$tmp/absent.json" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "absent.json" && ok "missing config file" ||
    fail "missing config: rc=$rc $out"

cat >"$tmp/run.json" <<JSON
{
  "workers": 2,
  "shutdown_timeout_ms": 2000,
  "listeners": [
    {"name": "seed", "address": "localhost", "port": 0, "handler": "echo",
     "options": {"prefix": "Echo: "}},
    {"name": "udp", "protocol": "udp", "address": "127.0.0.1", "port": 0, "handler": "udp_echo"}
  ]
}
JSON
start "$tmp/run.json"
grep -q "\[seed\] listening on tcp .* (handler echo from /.*/echo.so)" "$tmp/log" &&
    ok "the log names the module file actually loaded" || fail "module path not logged: $(head -n 3 "$tmp/log")"
if [ -n "$tcp_port" ]; then
    # The seed tutorial's client, verbatim but for the port.
    reply=$(python3 - "$tcp_port" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(('localhost', int(sys.argv[1])))
s.sendall(b'Hello, server!')
data = s.recv(1024)
print(data.decode())
s.close()
PY
)
    [ "$reply" = "Echo: Hello, server!" ] && ok "seed client exchange" || fail "seed client got '$reply'"
    reply=$(python3 - "$udp_port" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b'x' * 65507, ('127.0.0.1', int(sys.argv[1])))
data, addr = s.recvfrom(70000)
print(len(data), data == b'x' * 65507)
PY
)
    [ "$reply" = "65507 True" ] && ok "udp echo of 65507 bytes" || fail "udp echo got '$reply'"
else
    fail "wharfd did not start: $(cat "$tmp/log")"
fi
kill -TERM "$pid"
wait_exit 50
[ "$status" = 0 ] && grep -q "stopped" "$tmp/log" && ok "SIGTERM stops gracefully, exit 0" ||
    fail "SIGTERM: status $status; $(tail -n 5 "$tmp/log")"

# A second signal exits at once, even with a connection holding shutdown up
# (a client that sends without reading keeps output in flight).
sed 's/"shutdown_timeout_ms": 2000/"shutdown_timeout_ms": 60000/' "$tmp/run.json" >"$tmp/slow.json"
start "$tmp/slow.json"
python3 - "$tcp_port" "$tmp/holding" <<'PY' &
import socket, sys, time
s = socket.create_connection(('localhost', int(sys.argv[1])), timeout=5)
s.setblocking(False)
end = time.time() + 1
while time.time() < end:
    try:
        s.send(b'x' * 65536)
    except BlockingIOError:
        time.sleep(0.01)
open(sys.argv[2], 'w').close()  # output is in flight now
time.sleep(8)
PY
client=$!
# Python itself may take seconds to start on a loaded machine: wait (bounded:
# 20 s) until the client says it holds the shutdown up.
i=0
while [ $i -lt 400 ] && [ ! -e "$tmp/holding" ]; do sleep 0.05; i=$((i + 1)); done
kill -TERM "$pid"
sleep 0.3
kill -TERM "$pid"
wait_exit 20
[ "$status" = 1 ] && grep -q "exiting now" "$tmp/log" && ok "second signal exits at once" ||
    fail "second signal: status $status; $(tail -n 5 "$tmp/log")"
kill "$client" 2>/dev/null
wait "$client" 2>/dev/null

# -T prints the effective config, every default filled in.
out=$("$wharfd" -T -c "$src/config/wharf.json" 2>&1)
echo "$out" | python3 -c 'import json,sys; c=json.load(sys.stdin); assert c["listeners"][0]["backlog"] == 511 and c["queue_depth"] == 1024' &&
    ok "-T prints the effective config with defaults" || fail "-T: $out"

# -v and --version print what -V does; -T shows a config with its includes
# merged and ${VAR} substituted; an unset variable is named.
v=$("$wharfd" -V)
[ "$("$wharfd" -v)" = "$v" ] && [ "$("$wharfd" --version)" = "$v" ] && ok "-v and --version" ||
    fail "-v / --version: $("$wharfd" -v 2>&1) / $("$wharfd" --version 2>&1), -V says $v"
mkdir -p "$tmp/inc.d"
printf '{"workers": 1, "include": "inc.d/*.json",\n "listeners": [{"name": "m", "port": ${WHARF_T_PORT}, "handler": "echo", "address": "${WHARF_T_UNSET:-127.0.0.1}"}]}' >"$tmp/inc.json"
printf '{"listeners": [{"name": "i", "port": 7, "handler": "${WHARF_T_HANDLER}"}]}' >"$tmp/inc.d/one.json"
out=$(WHARF_T_HANDLER=echo "$wharfd" -T -c "$tmp/inc.json" 2>&1)
case $out in *'${'*) fail "-T left a \${...} in: $out" ;; esac
fail_t=$(WHARF_T_HANDLER=echo "$wharfd" -T -c "$tmp/inc.json" 2>&1 >/dev/null)
echo "$fail_t" | grep -q "parse error\|syntax error" && ok "a \${VAR} outside a string is a syntax error" ||
    fail "port \${VAR} unquoted: $fail_t"
printf '{"workers": 1, "include": "inc.d/*.json",\n "listeners": [{"name": "m", "port": 0, "handler": "echo", "address": "${WHARF_T_UNSET:-127.0.0.1}"}]}' >"$tmp/inc.json"
out=$(WHARF_T_HANDLER=echo "$wharfd" -T -c "$tmp/inc.json" 2>&1)
echo "$out" | python3 -c 'import json,sys; c=json.load(sys.stdin); l=c["listeners"]; assert [x["name"] for x in l] == ["m", "i"] and l[0]["address"] == "127.0.0.1" and l[1]["handler"] == "echo" and "include" not in c' &&
    ok "-T shows the includes merged and the environment substituted" || fail "-T with include: $out"
out=$(env -u WHARF_T_HANDLER "$wharfd" -T -c "$tmp/inc.json" 2>&1); rc=$?
[ $rc = 1 ] && [ "$out" = "wharfd: $tmp/inc.d/one.json: listeners[0].handler: environment variable WHARF_T_HANDLER is not set (\${WHARF_T_HANDLER:-default} gives a default)" ] &&
    ok "an unset variable is an error naming the file, path and variable" || fail "unset variable: $rc $out"

# Signals: HUP reloads (new connections get the new prefix, an open one keeps
# the old; a bad config changes nothing), USR1 re-opens the log file, QUIT
# stops gracefully; -s sends them through the pid file.
write_reload_config() {
    cat >"$tmp/reload.json" <<JSON
{"workers": 2, "log_file": "wharfd.log", "acceptor_nice": ${3:-5},
 "listeners": [{"name": "r", "port": $1, "handler": "echo", "options": {"prefix": "$2"}}]}
JSON
}
write_reload_config 0 "one:"
: >"$tmp/wharfd.log"
"$wharfd" -c "$tmp/reload.json" -p "$tmp/wharfd.pid" 2>>"$tmp/log" &
pid=$!
i=0
while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/wharfd.log"; do sleep 0.05; i=$((i + 1)); done
rport=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/wharfd.log" | head -n1)
exchange() {
    python3 - "$rport" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode())
print(s.recv(64).decode())
PY
}
# An open connection across the reload: it answers before and after.
python3 - "$rport" "$tmp/go" >"$tmp/held.out" <<'PY' &
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"a"); print(s.recv(64).decode(), flush=True)
for _ in range(200):
    if os.path.exists(sys.argv[2]): break
    time.sleep(0.05)
s.sendall(b"c"); print(s.recv(64).decode(), flush=True)
PY
held=$!
[ "$(exchange x)" = "one:x" ] && ok "log_file: wharfd serves with its log in a file" ||
    fail "before reload: $(cat "$tmp/wharfd.log")"
# The nice value of wharfd's thread named $1 (field 19 of its stat).
thread_nice() {
    for d in /proc/"$pid"/task/*; do
        [ "$(cat "$d/comm" 2>/dev/null)" = "$1" ] && awk '{ print $19 }' "$d/stat"
    done
}
base_nice=$(awk '{ print $19 }' /proc/"$pid"/stat)
want=$((base_nice + 5 > 19 ? 19 : base_nice + 5))
[ "$(thread_nice wharf-acceptor)" = "$want" ] && [ "$(thread_nice wharf-w0)" = "$base_nice" ] &&
    ok "acceptor_nice 5: the acceptor thread runs at nice $want, the workers at $base_nice" ||
    fail "acceptor nice $(thread_nice wharf-acceptor), worker $(thread_nice wharf-w0), base $base_nice"
sleep 0.3
write_reload_config "$rport" "two:" 0
kill -HUP "$pid"
i=0
while [ $i -lt 100 ] && ! grep -q "reloaded: generation 2" "$tmp/wharfd.log"; do sleep 0.05; i=$((i + 1)); done
grep -q "SIGHUP: reloading" "$tmp/wharfd.log" && [ "$(exchange y)" = "two:y" ] &&
    ok "SIGHUP reloads: new connections get the new prefix" ||
    fail "SIGHUP: $(tail -n 5 "$tmp/wharfd.log")"
# Lowering a nice value takes CAP_SYS_NICE (or RLIMIT_NICE): without, a warning.
if [ "$(id -u)" = 0 ]; then
    [ "$(thread_nice wharf-acceptor)" = "$base_nice" ] &&
        ok "a reload to acceptor_nice 0 puts the acceptor back at nice $base_nice" ||
        fail "acceptor nice after reload: $(thread_nice wharf-acceptor), base $base_nice"
else
    grep -q "acceptor: cannot set its nice value to $base_nice" "$tmp/wharfd.log" &&
        ok "a reload to acceptor_nice 0 without CAP_SYS_NICE is logged" ||
        fail "no warning for acceptor_nice 0: $(tail -n 5 "$tmp/wharfd.log")"
fi
touch "$tmp/go"
wait "$held"
[ "$(cat "$tmp/held.out" | tr '\n' ' ')" = "one:a one:c " ] &&
    ok "an open connection keeps the old prefix across a reload" ||
    fail "held connection saw: $(cat "$tmp/held.out")"
printf '{"listeners": [' >"$tmp/reload.json"
"$wharfd" -s reload -p "$tmp/wharfd.pid" && sleep 0.5
grep -q "reload failed, still serving the previous config: .*reload.json:1:" "$tmp/wharfd.log" &&
    [ "$(exchange z)" = "two:z" ] && kill -0 "$pid" &&
    ok "a bad config on reload is logged and changes nothing (-s reload)" ||
    fail "bad reload: $(tail -n 3 "$tmp/wharfd.log")"
mv "$tmp/wharfd.log" "$tmp/wharfd.log.1"
kill -USR1 "$pid"
i=0
while [ $i -lt 100 ] && [ ! -s "$tmp/wharfd.log" ]; do sleep 0.05; i=$((i + 1)); done
write_reload_config "$rport" "two:"
kill -QUIT "$pid"
wait_exit 50
grep -q "SIGUSR1: re-opening the log file" "$tmp/wharfd.log.1" && grep -q "SIGQUIT: stopping" "$tmp/wharfd.log" &&
    [ "$status" = 0 ] && [ ! -e "$tmp/wharfd.pid" ] &&
    ok "SIGUSR1 re-opens the log file; SIGQUIT stops gracefully (exit 0, pid file removed)" ||
    fail "USR1/QUIT: status $status; new log: $(cat "$tmp/wharfd.log")"

# The README's handler, built from the README itself, answers a payload
# larger than any buffer in it (4096) and a half-close, byte for byte.
sed -n '/^## Writing a handler/,/^```sh/p' "$src/README.md" | sed -n '/^```c$/,/^```$/p' | sed '1d;$d' >"$tmp/upper.c"
if ${CC:-cc} -shared -fPIC -Wall -I "$src/framework/include" -o "$tmp/upper.so" "$tmp/upper.c" 2>"$tmp/cc.log"; then
    cat >"$tmp/upper.json" <<JSON
{"workers": 1, "listeners": [{"port": 0, "handler": "$tmp/upper.so"}]}
JSON
    start "$tmp/upper.json"
    reply=$(python3 "$src/examples/handler/check_upper.py" "$tcp_port")
    [ "$reply" = "20000 True" ] && ok "the README's handler answers 20,000 bytes and a half-close whole" ||
        fail "README handler: got '$reply'"
    kill -TERM "$pid"
    wait_exit 50
else
    fail "the README's handler does not build: $(cat "$tmp/cc.log")"
fi

# A handler that crashes: the fatal-signal report names it, then the process
# dies of the signal as it would have (exit status 128 + SIGSEGV).
cat >"$tmp/crash.json" <<JSON
{"workers": 1, "listeners": [{"name": "crashy", "port": 0, "handler": "mod_crash"}]}
JSON
# (In a sanitizer build the sanitizer reports the crash itself.)
start "$tmp/crash.json"
python3 - "$tcp_port" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"crash")
try:
    s.recv(16)
except OSError:
    pass
PY
wait_exit 50
if grep -q "Sanitizer\|runtime error" "$tmp/log"; then
    ok "a crashing handler: the sanitizer's own report comes instead (sanitizer build)"
else
    grep -q 'fatal signal 11 (SEGV) in handler "crash" callback on_data \[listener crashy worker 0 connection [0-9]*\]' "$tmp/log" &&
        [ "$status" = 139 ] && ok "a crashing handler is named in the log before the process dies (status 139)" ||
        fail "crash report: status $status; $(tail -n 3 "$tmp/log")"
fi

# A worker thread that cannot start (pthread_create fails with EAGAIN under a
# limit on threads): wharfd exits 1 at once, naming the cause.  Root is exempt
# from RLIMIT_NPROC, so as root it runs as nobody with 3 tasks allowed (the
# main thread and two of four workers); another user gets 1.  The real binary
# runs, not libtool's wrapper script (whose shell would wait to fork).
cat >"$tmp/threads.json" <<JSON
{"workers": 4, "listeners": [{"port": 0, "handler": "echo"}]}
JSON
chmod 755 "$tmp"
chmod 644 "$tmp/threads.json"
real=$wharfd
[ -x "$build/.libs/wharfd" ] && real=$build/.libs/wharfd
as_limited=
if [ "$(id -u)" = 0 ]; then
    command -v setpriv >/dev/null && command -v prlimit >/dev/null &&
        as_limited="setpriv --reuid=65534 --regid=65534 --clear-groups"
elif command -v prlimit >/dev/null; then
    as_limited="env"
fi
if [ -n "$as_limited" ] &&
    LD_LIBRARY_PATH="$build/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        $as_limited "$real" -t -c "$tmp/threads.json" >/dev/null 2>&1; then
    nproc=1
    [ "$(id -u)" = 0 ] && nproc=3
    t0=$(date +%s%N)
    out=$(LD_LIBRARY_PATH="$build/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        timeout 20 prlimit --nproc=$nproc:$nproc $as_limited "$real" -c "$tmp/threads.json" 2>&1)
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ $rc = 1 ] && [ $ms -lt 1000 ] &&
        echo "$out" | grep -q "cannot start worker thread [0-9]*: pthread_create: Resource temporarily unavailable" &&
        ok "a worker thread that cannot start: exit 1 in $ms ms, naming the cause" ||
        fail "worker thread limit: rc=$rc after $ms ms; $out"
else
    echo "skip: a limit on threads needs prlimit (and setpriv as root), and files nobody can read"
fi
chmod 700 "$tmp"

# Out of descriptors (EMFILE): accepting pauses with a backoff instead of
# spinning, and resumes once connections close; in both accept modes (the
# acceptor thread's accepts and a worker's own).
for mode in acceptor workers; do
cat >"$tmp/emfile.json" <<JSON
{"workers": 1, "listeners": [{"port": 0, "handler": "echo", "backlog": 128, "accept": "$mode"}]}
JSON
start "$tmp/emfile.json" prlimit --nofile=40:40
result=$(python3 - "$tcp_port" "$pid" <<'PY'
import os, socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def ticks():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(60)]
time.sleep(0.3)
t0 = ticks()
time.sleep(1.0)
spent = ticks() - t0                      # clock ticks (1/100 s) used in 1 s
for c in conns:
    c.close()
time.sleep(0.3)
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"after")
got = s.recv(16)
print(spent, got.decode())
PY
)
spent=${result%% *}
[ -n "$result" ] && [ "${result#* }" = "after" ] && [ "$spent" -le 20 ] &&
    grep -q "Too many open files; pausing accepts" "$tmp/log" &&
    ok "EMFILE ($mode) pauses accepting without spinning ($spent ticks in 1 s), then resumes" ||
    fail "EMFILE ($mode): result '$result'; log: $(cat "$tmp/log")"
[ "$(grep -c "Too many open files" "$tmp/log")" -le 2 ] && ok "EMFILE warning ($mode) is rate-limited" ||
    fail "EMFILE warning ($mode) repeated $(grep -c "Too many open files" "$tmp/log") times"
kill -TERM "$pid"
wait_exit 50
done
[ "$status" = 0 ] && ok "stops cleanly after EMFILE" || fail "after EMFILE: status $status"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
