#!/bin/sh
# check_trickle.sh - trickle clients from many sources against a real
# wharfd (docs/security.md, "many slow connections from many sources").
#
# An attacker with eight loopback addresses (127.0.0.2 ... 127.0.0.9) opens
# max_connections_per_source (8) connections from each: 64 connections,
# with the one busy good connection from 127.0.0.1 exactly max_connections
# (65).  Half of the attacker's connections trickle a byte every 3 s (each
# is echoed: a connection that is slow, not dead), the other half send
# nothing; a connection the server closes is opened again 50 ms later, as a
# real attacker would.  While that runs, 30 good clients from 127.0.0.1
# connect one after another, each sending one line: each must get its echo
# within 1 s of connecting.  Why 1 s is a fair bound: the attacker's
# connections made no progress for over evict_idle_ms (1 s, the default)
# before the first good client, and a good client that finds the server full
# evicts one of them, so it waits for one eviction (a round trip through a
# worker's mailbox, well under 100 ms here), not for a timeout.  Without the
# eviction every good client waits until the attack ends (the server is at
# max_connections, the newcomer stays in the kernel backlog).
#
# The busy good connection pings every 200 ms through the whole attack and
# must never be closed (the eviction takes the connection that made no
# progress for longest, never an active one while idle ones exist).  The
# evictions (each attacking connection the server closed) are counted in
# wharf_connections_closed_total{reason="evicted"}
# and logged at most once per 10 s.  With "evict_idle_ms": 0 the old
# behaviour comes back (the good client waits: accepting paused).
. "$(dirname "$0")/lib/common.sh"
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }

# attack.py PORT READY STOP: 8 sources x 8 connections until the file STOP
# appears (or 60 s pass); touches READY once all 64 are connecting and
# prints "opened=N closed=M" at the end.
cat >"$tmp/attack.py" <<'PY'
import selectors, socket, sys, time
import os
port, ready, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sel = selectors.DefaultSelector()
end = time.time() + 60
opened = closed = 0
slots = {}  # (source, k) -> [socket or None, next_byte_at, reopen_at]

def open_slot(key):
    global opened
    src, k = key
    s = socket.socket()
    s.setblocking(False)
    s.bind((src, 0))
    s.connect_ex(("127.0.0.1", port))
    sel.register(s, selectors.EVENT_READ, key)
    # Odd k trickles: one byte every 3 s, phases spread over the 3 s.
    first = time.time() + (k * 0.37 % 3.0) if k % 2 else None
    slots[key] = [s, first, None]
    opened += 1

for i in range(2, 10):
    for k in range(8):
        open_slot(("127.0.0.%d" % i, k))
time.sleep(0.5)
open(ready, "w").close()
while time.time() < end and opened < 64 + 2000 and not os.path.exists(stop):
    now = time.time()
    for key, (s, at, reopen) in list(slots.items()):
        if s is None and reopen is not None and now >= reopen:
            open_slot(key)
        elif s is not None and at is not None and now >= at:
            try:
                s.send(b"x")
            except OSError:
                pass
            slots[key][1] = now + 3.0
    for ev, _ in sel.select(timeout=0.05):
        s, key = ev.fileobj, ev.data
        try:
            data = s.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:  # closed by the server: again in 50 ms
            sel.unregister(s)
            s.close()
            closed += 1
            slots[key] = [None, None, time.time() + 0.05]
print("opened=%d closed=%d" % (opened, closed))
PY

# good.py PORT N BOUND READY STOP: a busy connection pinging every 200 ms,
# and once READY exists N good clients one after another, each given BOUND
# seconds for its echo (after 3 that were not answered in time the rest
# count as not answered); then touches STOP.  Prints "served=S slow=L
# worst_ms=W busy_ok=B".
cat >"$tmp/good.py" <<'PY'
import socket, sys, threading, time
port, n, bound = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
busy_ok = [True]
done = threading.Event()
busy = socket.create_connection(("127.0.0.1", port), timeout=5)

def echoed(s, msg):
    """Whether msg sent on s comes back whole (False on EOF or an error)."""
    try:
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            b = s.recv(64)
            if not b:
                break
            got += b
    except OSError:
        return False
    return got == msg

def pinger():
    seq = 0
    while not done.is_set():
        if not echoed(busy, b"busy %d\n" % seq):
            busy_ok[0] = False
            return
        seq += 1
        done.wait(0.2)

t = threading.Thread(target=pinger)
t.start()
ready = sys.argv[4]
for _ in range(100):  # the attack is on (bounded: 10 s)
    try:
        open(ready).close()
        break
    except OSError:
        time.sleep(0.1)
time.sleep(1.5)  # every attacking connection is past evict_idle_ms
served = slow = 0
worst = 0.0
for i in range(n):
    t0 = time.time()
    s = socket.socket()
    s.settimeout(bound)
    try:
        s.connect(("127.0.0.1", port))
        ok = echoed(s, b"good %d\n" % i)
    except OSError:
        ok = False
    took = time.time() - t0
    s.close()
    worst = max(worst, took)
    if ok and took < bound:
        served += 1
    else:
        slow += 1
        if slow == 3:
            slow += n - i - 1
            break
    time.sleep(0.05)
open(sys.argv[5], "w").close()
done.set()
t.join()
busy.close()
print("served=%d slow=%d worst_ms=%d busy_ok=%d" % (served, slow, worst * 1000, busy_ok[0]))
PY

get() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# attack CONFIG N: wharfd on CONFIG, the attack, and N good clients; sets
# port, mport and res (good.py's line).
attack() {
    rm -f "$tmp/ready" "$tmp/stop"
    start_wharfd -c "$1"
    port=$(port_of echo)
    mport=$(port_of m)
    [ -n "$port" ] && [ -n "$mport" ] || { fail "wharfd did not start: $(cat "$tmp/log")"; finish; }
    python3 "$tmp/attack.py" "$port" "$tmp/ready" "$tmp/stop" >"$tmp/attack.out" 2>&1 &
    also_kill=$!
    res=$(python3 "$tmp/good.py" "$port" "$2" 1.0 "$tmp/ready" "$tmp/stop" 2>&1)
    wait "$also_kill"
    also_kill=
    echo "good clients: $res; attacker: $(cat "$tmp/attack.out")"
}

# ---- the attack against the defaults (evict_idle_ms 1000) ----
cat >"$tmp/wharf.json" <<JSON
{"workers": 2, "max_connections": 65, "max_connections_per_source": 8,
 "listeners": [{"name": "echo", "address": "127.0.0.1", "port": 0, "handler": "echo"},
               {"name": "m", "address": "127.0.0.1", "port": 0, "handler": "metrics"}]}
JSON
attack "$tmp/wharf.json" 30
[ "$(get "$res" served)" = 30 ] &&
    ok "under attack from 8 sources x 8 trickling/idle connections, 30 of 30 good clients answered within 1 s (worst $(get "$res" worst_ms) ms)" ||
    fail "good clients under attack: $res"
[ "$(get "$res" busy_ok)" = 1 ] &&
    ok "the busy connection was never evicted" || fail "the busy connection was closed: $res"
sleep 0.3
ev=$(scrape "$mport" |
    sed -n 's/^wharf_connections_closed_total{listener="echo",worker="[0-9]*",reason="evicted"} \([0-9]*\)$/\1/p' |
    awk '{s += $1} END {print s + 0}')
# Every attacking connection the server closed was evicted, and counted.  (A
# good client may also find the slot its predecessor left before the
# evicted attacker is back: fewer evictions than good clients is fine.)
closed=$(sed -n 's/.*closed=\([0-9]*\).*/\1/p' "$tmp/attack.out")
[ "$ev" -ge 1 ] && [ "$ev" = "$closed" ] &&
    ok "evictions counted: wharf_connections_closed_total{reason=\"evicted\"} = $ev = the attacker's connections closed" ||
    fail "evicted in /metrics: $ev; the attacker saw $closed closed"
lines=$(grep -c "evicted" "$tmp/log")
[ "$lines" -ge 1 ] && [ "$lines" -le 2 ] && ok "logged rate-limited: $lines line(s) for $ev evictions" ||
    { fail "eviction log lines: $lines"; grep evicted "$tmp/log" | head -5; }
stop_wharfd

# ---- evict_idle_ms 0: off, the server stays full (the old behaviour) ----
sed 's/"max_connections": 65,/"max_connections": 65, "evict_idle_ms": 0,/' "$tmp/wharf.json" >"$tmp/off.json"
attack "$tmp/off.json" 2
[ "$(get "$res" served)" = 0 ] && ok "with evict_idle_ms 0 nothing is evicted: good clients wait ($res)" ||
    fail "evict_idle_ms 0: $res"
stop_wharfd

finish
