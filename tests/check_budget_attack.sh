#!/bin/sh
# check_budget_attack.sh - clients that never read, against the server-wide
# output budget (output_budget), on a real wharfd: the memcache attack (one
# client stores a 900 KB value, eight send "get k" fifty times and never
# read), the same against chargen (clients that never read its stream) and
# proxy (clients that never read what a chargen upstream sends through it),
# with a 4 MiB budget.  A fast reader of chargen holds up to 2 MiB for a
# moment (its 1 MiB fill); it is not the one closed: stalled output goes
# first.
# Each time the server keeps serving: wharfd stays up with no fatal signal,
# connections are closed with reason "limit" (the heaviest first), and a
# well-behaved client connected before the attack is answered after it.
#
# The output budget closes a connection from inside the write path of
# another (or of itself); before closes were deferred to the end of the loop
# turn this crashed wharfd (SEGV in on_data after on_close).
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }

tmp=$(mktemp -d)
[ -n "${KEEP_TMP:-}" ] && echo "logs in $tmp"
pids=
passed=0
failed=0
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }

# start NAME JSON: runs wharfd on config JSON; waits (bounded) until it
# listens; sets $pid.
start() {
    printf '%s\n' "$2" >"$tmp/$1.json"
    : >"$tmp/$1.log"
    "$wharfd" -c "$tmp/$1.json" 2>>"$tmp/$1.log" &
    pid=$!
    pids="$pids $pid"
    i=0
    while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/$1.log"; do sleep 0.05; i=$((i + 1)); done
    grep -q "started:" "$tmp/$1.log" || { fail "wharfd $1 did not start: $(cat "$tmp/$1.log")"; exit 1; }
}
# port NAME LISTENER: the port listener LISTENER of wharfd NAME bound.
port() {
    sed -n "s/.*\[$2\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p" "$tmp/$1.log" | head -n1
}

common='"workers": 2, "output_budget": 4194304, "shutdown_timeout_ms": 1000'
lopts='"access_log": "info", "timeouts": {"idle_ms": 0}, "buffers": {"max_input": 2097152}'
start up "{$common, \"listeners\": [
 {\"name\": \"chargen\", \"address\": \"127.0.0.1\", \"port\": 0, \"handler\": \"chargen\", $lopts}]}"
pid_up=$pid
cg_port=$(port up chargen)
start mid "{$common, \"listeners\": [
 {\"name\": \"memcache\", \"address\": \"127.0.0.1\", \"port\": 0, \"handler\": \"memcache\", $lopts},
 {\"name\": \"proxy\", \"address\": \"127.0.0.1\", \"port\": 0, \"handler\": \"proxy\", $lopts,
  \"options\": {\"upstream\": \"127.0.0.1:$cg_port\"}}]}"
pid_mid=$pid
mc_port=$(port mid memcache)
px_port=$(port mid proxy)

# attack KIND PORT: runs the attack; prints "ok ..." or "FAIL ..." lines.
attack() {
    timeout 60 python3 -u - "$1" "$2" "${WHARF_SANITIZER:-none}" <<'PY'
import socket, sys, time
kind, port, sanitizer = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def connect(small_rcvbuf=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if small_rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s

def read_until(s, end):
    data = b""
    while not data.endswith(end):
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed after %r" % data[-80:])
        data += chunk
    return data

def mc_check(s):
    s.sendall(b"get small\r\n")
    return read_until(s, b"END\r\n") == b"VALUE small 0 2\r\nhi\r\nEND\r\n"

stat = {"bytes": 0, "eof": False}
def start_reader():
    """A well-behaved client of the stream: reads all the time."""
    import threading
    sock = connect()
    def read_all():
        sock.settimeout(30)
        try:
            while not stat.get("stop"):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                stat["bytes"] += len(chunk)
        except OSError:
            pass
        stat["eof"] = not stat.get("stop")
    t = threading.Thread(target=read_all)
    t.start()
    return t

if kind == "memcache":
    # The well-behaved client is connected before the attack.
    good = connect()
    good.sendall(b"set small 0 0 2\r\nhi\r\n")
    assert read_until(good, b"\r\n") == b"STORED\r\n"
    setter = connect()
    setter.sendall(b"set k 0 0 900000\r\n" + b"x" * 900000 + b"\r\n")
    assert read_until(setter, b"\r\n") == b"STORED\r\n"
    attackers = [connect(True) for _ in range(8)]
    for a in attackers:
        a.sendall(b"get k\r\n" * 50)
    time.sleep(3.0)
else:
    # The stream's reader comes while the attackers hold their output: a
    # fast reader holds as much as they do for a moment, but its output
    # is written every turn, theirs waits.
    attackers = [connect(True) for _ in range(30)]
    time.sleep(3.0)
    reader = start_reader()
    time.sleep(1.0)

# The well-behaved client is still served (checked before the attackers
# are read below: then they read too).
try:
    if kind == "memcache":
        good_ok = mc_check(good)
    else:
        before = stat["bytes"]
        # Served = more bytes arrive; up to 5 s for them on a loaded host.
        for _ in range(50):
            time.sleep(0.1)
            if stat["bytes"] > before or stat["eof"]:
                break
        good_ok = not stat["eof"] and stat["bytes"] > before
        print("  (reader: %d bytes before, %d after, eof %s)" % (before, stat["bytes"], stat["eof"]))
        stat["stop"] = True
        reader.join(30)
except Exception as e:
    good_ok = False
    print("  (good client: %r)" % e)
if not good_ok and kind != "memcache" and sanitizer == "tsan":
    # ThreadSanitizer runs the servers 5-15 times slower: a reader of a
    # stream cannot keep up enough to tell it from a stalled one there.
    print("ok %s: (the stream's reader was closed too: not judged under tsan)" % kind)
else:
    print(("ok" if good_ok else "FAIL") + " %s: the well-behaved client is still served" % kind)
# The attackers never read.  After a while, read each one to find those the
# server closed: a closed one reads to EOF (or a reset) after what the
# kernels still held (a few MiB); one still open keeps streaming (chargen,
# proxy) or waits (memcache), so each read is capped in bytes and time.
closed = set()
for i, a in enumerate(attackers):
    a.settimeout(0.5)
    got = 0
    try:
        while got < (32 << 20):
            chunk = a.recv(1 << 20)
            if not chunk:
                closed.add(i)
                break
            got += len(chunk)
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed.add(i)
print(("ok" if closed else "FAIL") + " %s: %d of %d never-reading clients closed"
      % (kind, len(closed), len(attackers)))

# And a new one.
n = connect()
if kind == "memcache":
    new_ok = mc_check(n)
else:
    new_ok = len(n.recv(1 << 16)) > 0
print(("ok" if new_ok else "FAIL") + " %s: a new client is served" % kind)
PY
}

for kind in memcache chargen proxy; do
    case $kind in
    memcache) p=$mc_port ;;
    chargen) p=$cg_port ;;
    proxy) p=$px_port ;;
    esac
    attack $kind "$p" >"$tmp/attack.out" 2>&1
    while IFS= read -r line; do
        case $line in
        ok*) ok "${line#ok }" ;;
        FAIL*) fail "${line#FAIL }" ;;
        *) echo "$line" ;;
        esac
    done <"$tmp/attack.out"
    grep -q "^ok\|^FAIL" "$tmp/attack.out" || fail "$kind: the attack script failed: $(cat "$tmp/attack.out")"
done

for name in up mid; do
    eval "p=\$pid_$name"
    if kill -0 "$p" 2>/dev/null && ! grep -q "fatal signal" "$tmp/$name.log"; then
        ok "wharfd $name is still running, no fatal signal"
    else
        fail "wharfd $name died: $(tail -n 5 "$tmp/$name.log")"
    fi
done
grep -q "closed (limit)" "$tmp/mid.log" && ok "memcache/proxy: connections closed with reason limit" ||
    fail "no connection of wharfd mid closed with reason limit"
grep -q "closed (limit)" "$tmp/up.log" && ok "chargen: connections closed with reason limit" ||
    fail "no connection of wharfd up closed with reason limit"
grep -q "output budget of 4194304 bytes exceeded" "$tmp/mid.log" && ok "the budget warning is logged" ||
    fail "no budget warning in the log"

if [ "$failed" -gt 0 ]; then
    echo "---- the servers' logs (closes with output):"
    grep -h "closed (\|WARN" "$tmp"/*.log | grep -v " 0 bytes out" | tail -n 30
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
