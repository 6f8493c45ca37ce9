#!/bin/sh
# check_upgrade.sh - wharfd's binary upgrade (SIGUSR2) under load: 50
# connections pinging and 200 new connections a second through 10
# upgrades in a row, with 0 connections refused, 0 errors and every reply
# byte-exact; the pid file and the admin socket follow the new process; the
# service manager hears MAINPID= of the new one (a fake NOTIFY_SOCKET); and
# a new binary that exits at start (the config made bad before the
# upgrade) leaves the old one serving and accepting, with its pid file; and
# with "accept": "workers" the upgrade is refused with the reason while the
# server keeps serving.
#
# A ping whose kept-alive connection the old process closed (idle, as it
# drains) before the ping reached it is sent again on a new connection, as
# HTTP clients do: counted as "reconnects", not as errors.  An error is a
# refused connect, a wrong or partial reply, or a new connection closed
# before its reply.
. "$(dirname "$0")/lib/common.sh"
# At exit the process the pid file names goes too (an upgrade's new one).
upgrade_cleanup() {
    [ -s "$tmp/run.pid" ] && kill "$(cat "$tmp/run.pid")" 2>/dev/null
    common_cleanup
}
trap upgrade_cleanup EXIT
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
command -v socat >/dev/null || { echo "SKIP: socat is needed"; exit 77; }

# Whether process $1 runs (a zombie does not).
alive() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/good.json" <<EOF
{"workers": 2, "shutdown_timeout_ms": 3000, "module_path": "$build/handlers/.libs",
 "admin": {"socket": "$tmp/admin.sock"},
 "listeners": [{"name": "echo", "address": "127.0.0.1", "port": $port, "handler": "echo"}]}
EOF
cp "$tmp/good.json" "$tmp/wharf.json"

# The service manager's side of sd_notify: every datagram, one per line.
notify_collect "$tmp/notify.sock" "$tmp/notify.log" 120

NOTIFY_SOCKET=$tmp/notify.sock "$wharfd" -c "$tmp/wharf.json" -p "$tmp/run.pid" 2>"$tmp/log" &
pid=$!
wait_file "$tmp/log" "admin socket on"
first=$pid

# The load: 50 kept-alive connections pinging every 50 ms, and new
# connections at 200/s until $tmp/stop appears (or 120 s).  The new ones
# keep to a schedule, not to a sleep after each: connection i is due at
# start + i/200 s, and 16 threads take the next due one each, so a slow
# connect (a process draining) delays only its own thread and the others
# keep the pace; one that starts late is counted (max_late_ms).  Connections
# due after the stop are not made: the rate is the replies received over
# the time from the start to the stop (new_per_s), at most one due
# connection more than 200/s when every one was answered.
cat >"$tmp/load.py" <<'PY'
import os, socket, sys, threading, time
port, stop, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
n = {"pings": 0, "news": 0, "refused": 0, "errors": 0, "reconnects": 0}
first_error = []
deadline = time.time() + 120
RATE, NEWERS = 200.0, 16
stop_at = []             # when the stop was seen
schedule = {"next": 0, "max_late": 0.0}

def count(k, why=None):
    with lock:
        n[k] += 1
        if why and not first_error:
            first_error.append(why)

def connect():
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=10)
    except ConnectionRefusedError:
        count("refused", "connect refused")
    except OSError as e:
        count("errors", "connect: %s" % e)
    return None

def ask(s, msg):
    """The reply to msg on s: bytes, b"" when closed before any byte."""
    s.sendall(msg)
    got = b""
    while not got.endswith(b"\n"):
        d = s.recv(4096)
        if not d:
            break
        got += d
    return got

def pinger(k):
    s, seq = None, 0
    while not os.path.exists(stop) and time.time() < deadline:
        s = s or connect()
        if not s:
            time.sleep(0.05)
            continue
        msg = b"ping %d %d\n" % (k, seq)
        try:
            got = ask(s, msg)
        except (ConnectionResetError, BrokenPipeError):
            got = b""
        except OSError as e:
            got, why = None, str(e)
        if got == b"":  # closed as it drained, before our ping: again, on a new one
            s.close(); s = None; count("reconnects")
            continue
        if got != msg:
            count("errors", "ping %d %d: got %r" % (k, seq, got))
            s.close(); s = None
            continue
        count("pings"); seq += 1
        time.sleep(0.05)
    if s:
        s.close()

def watch_stop():
    while not os.path.exists(stop) and time.time() < deadline:
        time.sleep(0.01)
    stop_at.append(time.time())

def newer():
    while True:
        with lock:  # the next connection due
            seq = schedule["next"]
            schedule["next"] += 1
        due = began + seq / RATE
        while not stop_at and time.time() < due:
            time.sleep(min(0.01, max(0, due - time.time())))
        if stop_at and due >= stop_at[0]:
            return
        late = time.time() - due
        with lock:
            schedule["max_late"] = max(schedule["max_late"], late)
        s = connect()
        if s:
            msg = b"new %d\n" % seq
            try:
                got = ask(s, msg)
            except OSError as e:
                got = ("%s" % e).encode()
            s.close()
            if got == msg:
                count("news")
            else:
                count("errors", "new %d: got %r" % (seq, got))

ts = [threading.Thread(target=pinger, args=(k,)) for k in range(50)]
ts += [threading.Thread(target=newer) for k in range(NEWERS)]
ts.append(threading.Thread(target=watch_stop))
began = time.time()
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(out, "w") as f:
    secs = stop_at[0] - began
    f.write(" ".join("%s=%d" % kv for kv in n.items()))
    f.write(" seconds=%.1f new_per_s=%.1f max_late_ms=%d\n"
            % (secs, n["news"] / secs, schedule["max_late"] * 1000))
    f.write("first_error=%s\n" % (first_error[0] if first_error else "-"))
PY
python3 "$tmp/load.py" "$port" "$tmp/stop" "$tmp/load.out" &
also_kill=$!
sleep 1

# 10 upgrades in a row: each time the pid file names a new process, the old
# one exits (it drains first), and the new one answers on the admin socket.
upgrades=0
for u in 1 2 3 4 5 6 7 8 9 10; do
    old=$(cat "$tmp/run.pid")
    kill -USR2 "$old"
    i=0
    while [ $i -lt 400 ] && { [ "$(cat "$tmp/run.pid" 2>/dev/null)" = "$old" ] || alive "$old"; }; do
        sleep 0.05; i=$((i + 1))
    done
    [ "$old" = "$first" ] && wait "$first" 2>/dev/null && pid=
    new=$(cat "$tmp/run.pid" 2>/dev/null)
    if [ -n "$new" ] && [ "$new" != "$old" ] && ! alive "$old" && alive "$new"; then
        upgrades=$((upgrades + 1))
    else
        echo "upgrade $u: old $old new ${new:-none}"; tail -5 "$tmp/log"
        break
    fi
    sleep 0.5
done
[ "$upgrades" = 10 ] && ok "10 upgrades in a row: each time a new pid in the pid file, the old process gone" ||
    fail "only $upgrades of 10 upgrades completed"
touch "$tmp/stop"
wait "$also_kill"
also_kill=
res=$(cat "$tmp/load.out" 2>/dev/null)
echo "load: $res" | tr '\n' ' '; echo
get() { echo "$res" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# The issue's bar: 200 new connections/s through the upgrades (not valgrind).
if [ "$(get refused)" = 0 ] && [ "$(get errors)" = 0 ] && [ "${res:+x}" = x ] &&
    [ "$(get pings)" -gt 1000 ] && [ "$(get news)" -gt 500 ] &&
    awk -v r="$(get new_per_s)" 'BEGIN { exit !(r >= 200) }'; then
    ok "under load: 0 refused, 0 errors, every reply exact ($(get pings) pings, $(get news) new connections at $(get new_per_s)/s, at most $(get max_late_ms) ms behind schedule, $(get reconnects) reconnects)"
else
    fail "under load: $res"
fi

cur=$(cat "$tmp/run.pid")
printf 'show info\n' | socat -t 5 - "UNIX-CONNECT:$tmp/admin.sock" | grep -qx "pid $cur" &&
    ok "the admin socket is the new process's" || fail "the admin socket does not answer as pid $cur"
grep -q "MAINPID=$cur READY=1" "$tmp/notify.log" &&
    ok "the service manager was told MAINPID=$cur" || fail "no MAINPID=$cur in $(cat "$tmp/notify.log")"
grep -q "STOPPING=1" "$tmp/notify.log" && fail "an old process sent STOPPING=1 while handing over" ||
    ok "no STOPPING=1 while handing over"

# A new binary that exits at start: the config is bad by the time it reads it.
printf '{"listeners": [{"port": "http", "handler": "echo"}]}' >"$tmp/wharf.json"
kill -USR2 "$cur"
i=0
while [ $i -lt 400 ] && ! grep -q "upgrade failed" "$tmp/log"; do sleep 0.05; i=$((i + 1)); done
line=$(grep "upgrade failed" "$tmp/log")
echo "$line" | grep -q "did not start: exited with status 1; this one (pid $cur) keeps serving and accepting" &&
    ok "a failed upgrade says so: $(echo "$line" | sed 's/.*upgrade failed/upgrade failed/')" ||
    fail "no clear log line for the failed upgrade: $line"
reply=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"still here\n")
print(s.recv(100).decode().strip())
PY
)
if alive "$cur" && [ "$(cat "$tmp/run.pid")" = "$cur" ] && [ "$reply" = "still here" ]; then
    ok "after it the old process serves and accepts, and the pid file names it"
else
    fail "after a failed upgrade: alive $(alive "$cur" && echo yes), pid file $(cat "$tmp/run.pid"), reply '$reply'"
fi
cp "$tmp/good.json" "$tmp/wharf.json"
"$wharfd" -s stop -p "$tmp/run.pid"
i=0
while [ $i -lt 200 ] && alive "$cur"; do sleep 0.05; i=$((i + 1)); done
alive "$cur" && fail "the last wharfd does not stop" || ok "the last wharfd stops on -s stop"
[ -e "$tmp/run.pid" ] && fail "its pid file is left" || ok "and removes its pid file"

# "accept": "workers": the per-worker SO_REUSEPORT sockets cannot be handed over; the
# upgrade is refused with the reason and the server keeps serving, as it was.
printf '{"workers": 2, "module_path": "%s", "listeners": [{"name": "echo", "address": "127.0.0.1", "port": %s, "handler": "echo", "accept": "workers"}]}' \
    "$build/handlers/.libs" "$port" >"$tmp/wa.json"
"$wharfd" -c "$tmp/wa.json" -p "$tmp/wa.pid" 2>"$tmp/wa.log" &
wa=$!
i=0
while [ $i -lt 200 ] && ! grep -q "started:" "$tmp/wa.log"; do sleep 0.05; i=$((i + 1)); done
kill -USR2 "$wa"
i=0
while [ $i -lt 200 ] && ! grep -q "upgrade refused" "$tmp/wa.log"; do sleep 0.05; i=$((i + 1)); done
grep -q 'upgrade refused: a listener has "accept": "workers", whose per-worker SO_REUSEPORT sockets cannot be handed over.*still serving' "$tmp/wa.log" &&
    ok "an upgrade with accept workers is refused with the reason" ||
    fail "no refusal line: $(grep -i upgrade "$tmp/wa.log")"
reply=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"still here\n")
print(s.recv(100).decode().strip())
PY
)
if alive "$wa" && [ "$reply" = "still here" ]; then
    ok "and the server keeps serving"
else
    fail "after the refused upgrade: alive $(alive "$wa" && echo yes), reply '$reply'"
fi
kill "$wa"
wait "$wa" 2>/dev/null
finish
