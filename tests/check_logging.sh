#!/bin/sh
# check_logging.sh - the log outputs through wharfd:
#   - log_format "json": every line of the log file is one JSON object
#     (python3's json parses it) with time, level and msg, a listener name
#     with a quote, a backslash, a control character and non-ASCII kept
#     exactly; the access_log_file lines are JSON objects of the format's
#     variables;
#   - a text access_log_file per listener: one line per connection in that
#     listener's access_log_format, each listener in its own file;
#   - SIGUSR1 (and wharfd -s reopen) after a rename: the new file is
#     created and later lines go there, the renamed one gets no more;
#   - syslog_facility + syslog_socket: the lines reach a unix datagram
#     socket this test reads, as "<PRI>Mmm dd hh:mm:ss wharfd[PID]: ...".
set -u
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
tmp=$(mktemp -d)
pid=
reader=
passed=0
failed=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "$reader" ] && kill "$reader" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }

# start CONFIG LOG: runs wharfd, waits (bounded) for "started:" in LOG.
start() {
    "$wharfd" -c "$1" -p "$tmp/pid" 2>"$tmp/stderr" &
    pid=$!
    i=0
    while [ $i -lt 600 ] && ! grep -q "started:" "$2" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
}
stop() {
    kill "$pid"
    wait "$pid"
    pid=
}
# port LOG NAME: the port listener NAME logged (text or JSON lines).
port() { sed -n "s/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p" "$1" | sed -n "${2}p"; }
# talk PORT N [HOST]: N connections, each sends "hello\n" and reads the echo.
talk() {
    python3 - "$1" "$2" "${3:-127.0.0.1}" <<'PY'
import socket, sys
for i in range(int(sys.argv[2])):
    s = socket.create_connection((sys.argv[3], int(sys.argv[1])), timeout=10)
    s.sendall(b"hello\n")
    got = b""
    while len(got) < 6:
        got += s.recv(16)
    s.close()
PY
}
# wait_lines FILE N: waits (bounded) until FILE has N lines.
wait_lines() {
    i=0
    while [ $i -lt 100 ] && [ "$(cat "$1" 2>/dev/null | wc -l)" -lt "$2" ]; do
        sleep 0.05; i=$((i + 1)); done
}

# ---- JSON ---------------------------------------------------------------------
cat >"$tmp/json.json" <<JSON
{"workers": 2, "log_format": "json", "log_file": "$tmp/wharf.log", "listeners": [
  {"name": "a\"b\\\\c\u0001d\u00e9", "port": 0, "handler": "echo",
   "access_log_file": "$tmp/a.log",
   "access_log_format": "\$remote_addr \$duration_ms \$bytes_in \$bytes_out \$close_reason"}]}
JSON
start "$tmp/json.json" "$tmp/wharf.log"
p=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)["msg"]
    if m.startswith("listening on tcp"):
        print(m.split()[3].rsplit(":", 1)[1]); break' "$tmp/wharf.log")
[ -n "$p" ] || { echo "FAIL: wharfd did not start"; cat "$tmp/stderr" "$tmp/wharf.log"; exit 1; }
talk "$p" 3
wait_lines "$tmp/a.log" 3
out=$(python3 - "$tmp/wharf.log" "$tmp/a.log" <<'PY'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
objs = [json.loads(l) for l in lines]
assert all({"time", "level", "msg"} <= set(o) for o in objs), objs
assert any(o.get("listener") == 'a"b\\c\x01d\u00e9' for o in objs), objs
acc = [json.loads(l) for l in open(sys.argv[2]).read().splitlines()]
assert len(acc) == 3, acc
for a in acc:
    assert list(a) == ["remote_addr", "duration_ms", "bytes_in", "bytes_out", "close_reason"], a
    assert a["remote_addr"] == "127.0.0.1" and a["bytes_in"] == 6 and a["bytes_out"] == 6, a
    assert a["close_reason"] == "eof" and isinstance(a["duration_ms"], int), a
print(len(lines))
PY
) && ok "log_format json: $out log lines and 3 access lines parse as JSON, the odd name kept" ||
    fail "json lines: $out"
stop

# ---- text access logs per listener, SIGUSR1 and -s reopen ----------------------
cat >"$tmp/text.json" <<JSON
{"workers": 2, "log_file": "$tmp/wharf.log", "listeners": [
  {"name": "one", "port": 0, "handler": "echo", "access_log_file": "$tmp/one.log",
   "access_log_format": "\$remote_addr \$duration_ms \$bytes_in \$bytes_out \$close_reason"},
  {"name": "two", "address": "127.0.0.3", "port": 0, "handler": "echo",
   "access_log_file": "$tmp/two.log",
   "access_log_format": "[\$listener] \$direction \$bytes_in/\$bytes_out \$\$"}]}
JSON
: >"$tmp/wharf.log"
start "$tmp/text.json" "$tmp/wharf.log"
p1=$(port "$tmp/wharf.log" 1) p2=$(port "$tmp/wharf.log" 2)
talk "$p1" 4
talk "$p2" 2 127.0.0.3
wait_lines "$tmp/one.log" 4
wait_lines "$tmp/two.log" 2
n1=$(grep -cE '^127\.0\.0\.1 [0-9]+ 6 6 eof$' "$tmp/one.log")
n2=$(grep -cxF '[two] in 6/6 $' "$tmp/two.log")
[ "$n1" = 4 ] && [ "$(wc -l <"$tmp/one.log")" -eq 4 ] && [ "$n2" = 2 ] &&
    [ "$(wc -l <"$tmp/two.log")" -eq 2 ] &&
    ok "one line per connection in each listener's file and format" ||
    fail "access lines: one.log: $(cat "$tmp/one.log") two.log: $(cat "$tmp/two.log")"

mv "$tmp/one.log" "$tmp/one.log.1"
mv "$tmp/wharf.log" "$tmp/wharf.log.1"
kill -USR1 "$pid"
i=0
while [ $i -lt 100 ] && ! [ -f "$tmp/one.log" ]; do sleep 0.05; i=$((i + 1)); done
talk "$p1" 2
wait_lines "$tmp/one.log" 2
[ -f "$tmp/wharf.log" ] && [ "$(wc -l <"$tmp/one.log")" -eq 2 ] &&
    [ "$(wc -l <"$tmp/one.log.1")" -eq 4 ] &&
    ok "SIGUSR1 after a rename: new files created, later lines go there" ||
    fail "reopen: one.log $(wc -l <"$tmp/one.log" 2>&1), one.log.1 $(wc -l <"$tmp/one.log.1")"
mv "$tmp/two.log" "$tmp/two.log.1"
"$wharfd" -s reopen -p "$tmp/pid" || fail "wharfd -s reopen"
i=0
while [ $i -lt 100 ] && ! [ -f "$tmp/two.log" ]; do sleep 0.05; i=$((i + 1)); done
talk "$p2" 1 127.0.0.3
wait_lines "$tmp/two.log" 1
[ "$(wc -l <"$tmp/two.log")" -eq 1 ] && [ "$(wc -l <"$tmp/two.log.1")" -eq 2 ] &&
    ok "wharfd -s reopen does the same" || fail "-s reopen: two.log missing or wrong"

# A reload that moves listener one's access log and switches to JSON.
# (The listeners are on different addresses: a reload matches a port-0
# listener to the first old one with the same address.)
sed -e "s|$tmp/one.log|$tmp/one-b.log|" -e 's|"workers": 2,|"workers": 2, "log_format": "json",|' \
    "$tmp/text.json" >"$tmp/text2.json"
cp "$tmp/text2.json" "$tmp/text.json"
kill -HUP "$pid"
i=0
while [ $i -lt 200 ] && ! grep -q 'reloaded: generation' "$tmp/wharf.log"; do sleep 0.05; i=$((i + 1)); done
talk "$p1" 1
wait_lines "$tmp/one-b.log" 1
python3 - "$tmp/one-b.log" <<'PY' && [ "$(wc -l <"$tmp/one.log")" -eq 2 ] &&
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
assert len(a) == 1 and a[0]["bytes_in"] == 6 and a[0]["close_reason"] == "eof", a
PY
    ok "a reload moves the access log to its new file, as JSON" ||
    fail "reload: one-b.log: $(cat "$tmp/one-b.log" 2>&1); log: $(tail -3 "$tmp/wharf.log")"
stop

# An access_log_file that cannot be opened refuses the start, naming it.
printf '{"listeners": [{"port": 0, "handler": "echo", "access_log_file": "%s"}]}' \
    "$tmp/no/such/dir/one.log" >"$tmp/bad.json"
out=$(timeout 30 "$wharfd" -c "$tmp/bad.json" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "listeners\[0\].access_log_file: cannot open .*no/such/dir/one.log" &&
    ok "an access_log_file that cannot be opened is a start error" || fail "bad access log: rc=$rc $out"
printf '{"listeners": [{"protocol": "udp", "port": 0, "handler": "udp_echo", "access_log_file": "x.log"}]}' >"$tmp/udp.json"
out=$("$wharfd" -t -c "$tmp/udp.json" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q 'listeners\[0\].access_log_file: expected only on a tcp listener' &&
    ok "-t refuses access_log_file on a udp listener" || fail "udp access log: rc=$rc $out"
printf '{"listeners": [{"port": 0, "handler": "echo", "access_log_format": "$remote_addr $nope"}]}' >"$tmp/badfmt.json"
out=$("$wharfd" -t -c "$tmp/badfmt.json" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q 'listeners\[0\].access_log_format: unknown variable \$nope' &&
    ok "-t names an unknown \$variable" || fail "bad format: rc=$rc $out"

# ---- syslog --------------------------------------------------------------------
python3 - "$tmp/syslog.sock" "$tmp/syslog.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")
PY
reader=$!
i=0
while [ $i -lt 100 ] && ! [ -S "$tmp/syslog.sock" ]; do sleep 0.05; i=$((i + 1)); done
cat >"$tmp/syslog.json" <<JSON
{"workers": 1, "syslog_facility": "local3", "syslog_socket": "$tmp/syslog.sock",
 "listeners": [{"name": "s", "port": 0, "handler": "echo"}]}
JSON
start "$tmp/syslog.json" "$tmp/syslog.out"
# local3 (19) * 8 + info (6) = 158
grep -qE "^<158>[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} wharfd\[$pid\]: .*INFO  .*started:" "$tmp/syslog.out" &&
    ok "syslog: lines reach the socket as <158>... wharfd[$pid]: ..." ||
    fail "syslog: $(head -3 "$tmp/syslog.out")"
grep -q "started:" "$tmp/stderr" && fail "syslog: lines also went to stderr" ||
    ok "syslog: not also to stderr"
stop
kill "$reader" 2>/dev/null
wait "$reader" 2>/dev/null
reader=

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
