#!/bin/sh
# check_load_lua.sh - wharf-load --script (Lua 5.4) against real servers started here: the
# echo handler in wharfd and nginx (its own prefix, one process, free loopback ports, both
# ended by their pids). What it shows:
#   - request() makes distinct requests that come back byte for byte: the echo returns
#     them and response() compares each with the ctx value its request() returned; in closed
#     and open loop, with pipelining, several threads
#   - response() returning false counts script_rejected, exactly (seq % 10 == 7 of 100)
#   - done(summary, latency) sees the counts the JSON report shows
#   - a syntax error, a runtime error at load and in init() exit 2 before any connection,
#     naming the file, the line and the hook; a runtime error in request() is counted
#     (script_error, file:line and hook in the first error), the run ends normally
#   - a request longer than --max-request is request_too_long; an endless loop in a hook
#     becomes a script_error, the run still ends in time
#   - HTTP: response(status, headers, body) with the chunked coding taken off the body
#   - wrk's examples rewritten: a POST with a body (wrk.method/body/headers only, nginx
#     logs every body) and a counter path /path/N (nginx logs each path once)
#   - wrk's thread API with wrk's own setup.lua and stop.lua, unchanged: setup(thread) in
#     the main state, thread:set/get copying values, each thread stopping itself after 100
#     responses; thread.addr sending one thread to another server
#   - hostile scripts: error() in every hook, coroutine.yield at the top of a hook,
#     os.exit, a binary chunk, an endless loop in setup(), response() and done(): named,
#     exit 2 before the run and 1 during or after it, no crash, the run ends on time
#   - wrk.lookup (127.0.0.1 by port and service name, localhost, ::1 where there is IPv6
#     loopback) giving address objects that print ADDR:PORT and go into thread.addr; a
#     failing lookup named; wrk.connect true to the echo, false to a closed port and to a
#     full backlog within --connect-timeout; both refused during the run (lookup of names);
#     wrk's addr.lua unchanged
#   - delay(): wrk's delay.lua unchanged and a constant 50 ms (-p 1 and -p 4), the counts
#     the waits allow; refused with --rate; bad returns named script_errors
#   - done()'s third argument: per-thread rates per --interval adding up to the requests,
#     #obj and obj(i) as wrk's
# Every wait is bounded.
set -u
build=${WHARF_BUILDDIR:-.}
load=$build/wharf-load
wharfd=$build/wharfd
tmp=$(mktemp -d)
pids=
passed=0
failed=0
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] && cp -r "$tmp" /tmp/check_load_lua.keep
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    i=0
    while [ $i -lt 100 ] && ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), timeout=1).close()" 2>/dev/null; do
        sleep 0.05; i=$((i + 1))
    done
}
jget() { python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# ---- the echo handler in wharfd
printf '{"workers": 2, "listeners": [{"name": "echo", "port": 0, "handler": "echo"}]}' >"$tmp/echo.json"
"$wharfd" -c "$tmp/echo.json" 2>"$tmp/wharfd.log" &
pids="$pids $!"
i=0
while [ $i -lt 600 ] && ! grep -q "started:" "$tmp/wharfd.log"; do sleep 0.05; i=$((i + 1)); done
ep=$(sed -n 's/.*\[echo\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/wharfd.log" | head -n1)
[ -n "$ep" ] || { echo "FAIL: wharfd did not start"; cat "$tmp/wharfd.log"; echo "0 passed, 1 failed"; exit 1; }

# distinct requests, each checked against what its request() made (ctx); done() on stderr
cat >"$tmp/echo.lua" <<'LUA'
local n = 0
function setup(thread) thread:set("tid", thread.id) end
function init(args) tag = args[1] or "none" end
function request(conn, seq)
  n = n + 1
  local r = string.format("%s t%d c%d s%d n%d %s\n", tag, tid, conn, seq, n, string.rep("x", n % 50))
  return r, r
end
function response(reply, ctx)
  if reply ~= ctx then return false, "echo differs from its request" end
end
function done(summary, latency)
  io.stderr:write(string.format("done: requests=%d sent=%d received=%d errors=%d rejected=%d count=%d p50=%.3f\n",
    summary.requests, summary.sent, summary.received, summary.errors,
    summary.counters.script_rejected, latency.count, latency:percentile(50)))
end
LUA
# echo NAME ARGS...: 0 errors, requests verified, done() = the JSON report
echo_run() {
    name=$1
    shift
    "$load" --script "$tmp/echo.lua" --script-arg tagged -j "$@" 127.0.0.1:$ep \
        >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    want=$(jget "$tmp/$name.json" '"requests=%d sent=%d received=%d errors=%d rejected=%d count=%d" % (r["counters"]["measured"], r["counters"]["sent"], r["counters"]["received"], r["errors"], r["counters"]["script_rejected"], r["counters"]["measured"])')
    got=$(sed -n 's/^done: \(.*\) p50=.*/\1/p' "$tmp/$name.err")
    meas=$(jget "$tmp/$name.json" 'r["counters"]["measured"]')
    if [ $rc -eq 0 ] && [ -n "$want" ] && [ "$got" = "$want" ] && [ "${meas:-0}" -gt 100 ]; then
        ok "$name: exit 0, $meas requests verified against their ctx; done() saw '$got'"
    else
        fail "$name: rc $rc, done() '$got', report '$want'; $(head -c 400 "$tmp/$name.err")"
    fi
}
echo_run echo-closed -c 4 -t 2 -p 1 -d 1
echo_run echo-pipelined -c 4 -t 2 -p 16 -d 1
echo_run echo-open -c 4 -t 2 -r 3000 -d 1

# the requests reached the server as made: the echo of a request built from its own seq
# is checked in response() with no ctx (the bytes alone tie a reply to its request)
cat >"$tmp/seq.lua" <<'LUA'
local expect = {}
function request(conn, seq) return "seq " .. conn .. " " .. seq .. "\n" end
function response(reply)
  local conn, seq = reply:match("^seq (%d+) (%d+)\n$")
  if not conn then return false, "not an echo: " .. reply end
  local k = tonumber(conn)
  local want = expect[k] or 0
  if tonumber(seq) ~= want then return false, "seq " .. seq .. " where " .. want .. " was due" end
  expect[k] = want + 1
end
LUA
"$load" --script "$tmp/seq.lua" -c 3 -t 1 -p 8 -d 1 -j 127.0.0.1:$ep >"$tmp/seq.json" 2>"$tmp/seq.err"
rc=$?
v=$(jget "$tmp/seq.json" '"%d %d" % (r["errors"], r["counters"]["measured"])')
[ $rc -eq 0 ] && [ "${v%% *}" = 0 ] && [ "${v##* }" -gt 100 ] &&
    ok "echoes come back in order, byte for byte ($v: errors, requests)" ||
    fail "seq: rc $rc, '$v'; $(head -c 300 "$tmp/seq.err")"

# response() returning false: script_rejected, exactly 10 of 100
cat >"$tmp/reject.lua" <<'LUA'
function request(conn, seq) return "r " .. seq .. "\n" end
function response(reply)
  if tonumber(reply:match("%d+")) % 10 == 7 then return false, "seq ends in 7" end
end
LUA
"$load" --script "$tmp/reject.lua" -c 1 -n 100 -j 127.0.0.1:$ep >"$tmp/reject.json" 2>"$tmp/reject.err"
rc=$?
v=$(jget "$tmp/reject.json" '"%d %d %d %s" % (r["counters"]["script_rejected"], r["errors"], r["counters"]["received"], "seq ends in 7" in r["first_error"])')
[ $rc -eq 1 ] && [ "$v" = "10 10 90 True" ] &&
    ok "response() false: exit 1, script_rejected 10 of 100, its reason in the first error" ||
    fail "reject: rc $rc, rejected/errors/received/reason '$v'"

# load errors: exit 2, nothing run, file + line + hook named
printf 'function request(\n  return "a"\nend\n' >"$tmp/syntax.lua"
printf 'local t = nil\nlocal x = t.field\n' >"$tmp/toplevel.lua"
printf 'function init(args)\n  error("needs an argument, got " .. #args)\nend\n' >"$tmp/init.lua"
printf 'request = 5\n' >"$tmp/notfn.lua"
printf 'function response(r) end\n' >"$tmp/noreq.lua"
load_error() {
    name=$1 pattern=$2
    shift 2
    "$load" "$@" 127.0.0.1:$ep >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
    if [ $rc -eq 2 ] && [ ! -s "$tmp/$name.out" ] && grep -q "$pattern" "$tmp/$name.err"; then
        ok "$name: exit 2 before the run: $(head -n1 "$tmp/$name.err")"
    else
        fail "$name: rc $rc, '$(cat "$tmp/$name.err")', stdout $(wc -c <"$tmp/$name.out") bytes"
    fi
}
load_error syntax "syntax.lua:2: .*expected near 'return'" --script "$tmp/syntax.lua"
load_error toplevel "toplevel.lua:2: attempt to index a nil value" --script "$tmp/toplevel.lua"
load_error init "in init(): .*init.lua:2: needs an argument, got 0" --script "$tmp/init.lua"
load_error not-a-function "'request' is a number, expected a function" --script "$tmp/notfn.lua"
load_error no-request "defines no request()" --script "$tmp/noreq.lua"
load_error missing "cannot open $tmp/missing.lua" --script "$tmp/missing.lua"
load_error udp "not --udp" --script "$tmp/seq.lua" --udp
load_error h2 "not --h2" --script "$tmp/seq.lua" --proto http --h2
load_error targets "one target only" --script "$tmp/seq.lua" -c 2 127.0.0.1:$ep

# a runtime error in request(): counted, named, the run goes on and ends
cat >"$tmp/rterr.lua" <<'LUA'
function request(conn, seq)
  if seq == 20 then local t = nil; return t.x end
  return "ok\n"
end
LUA
"$load" --script "$tmp/rterr.lua" -c 2 -d 1 -j 127.0.0.1:$ep >"$tmp/rterr.json" 2>"$tmp/rterr.err"
rc=$?
v=$(jget "$tmp/rterr.json" '"%d %d %s" % (r["counters"]["script_error"], r["counters"]["received"], r["first_error"].startswith("script_error in request(): " ) and "rterr.lua:2: attempt to index a nil value" in r["first_error"])')
set -- $v
[ $rc -eq 1 ] && [ "${1:-0}" -ge 2 ] && [ "${2:-0}" -eq 40 ] && [ "${3:-}" = True ] &&
    ok "runtime error in request(): exit 1, script_error $1 (retried after a backoff), 40 replies before it, named" ||
    fail "rterr: rc $rc, '$v'; $(head -c 300 "$tmp/rterr.err")"

# a response() that errors, a request over --max-request, an endless loop
printf 'function request() return "e\\n" end\nfunction response(r)\n  return r.nofield.x\nend\n' >"$tmp/resperr.lua"
printf 'function request() return string.rep("z", 2000) .. "\\n" end\n' >"$tmp/big.lua"
printf 'function request(conn, seq)\n  if seq == 3 then while true do end end\n  return "l\\n"\nend\n' >"$tmp/loop.lua"
limit_run() {
    name=$1 counter=$2 text=$3
    shift 3
    start=$(date +%s)
    "$load" -d 500ms -c 1 -j "$@" 127.0.0.1:$ep >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    took=$(($(date +%s) - start))
    v=$(jget "$tmp/$name.json" "'%d %s' % (r['counters']['$counter'], '''$text''' in r['first_error'])")
    [ $rc -eq 1 ] && [ "${v%% *}" -ge 1 ] && [ "${v##* }" = True ] && [ $took -lt 30 ] &&
        ok "$name: exit 1, $counter ${v%% *}, in ${took}s: $(jget "$tmp/$name.json" 'r["first_error"]')" ||
        fail "$name: rc $rc, '$v', ${took}s; $(head -c 300 "$tmp/$name.err")"
}
limit_run response-error script_error "in response(): $tmp/resperr.lua:3: attempt to index a nil value" --script "$tmp/resperr.lua"
limit_run too-long request_too_long "returned 2001 bytes, more than --max-request 1024" --script "$tmp/big.lua" --max-request 1k
limit_run endless-loop script_error "an endless loop" --script "$tmp/loop.lua"

# HTTP replies: status, headers, body without the chunked coding. The echo handler sends
# back a chunked response that request() made; --proto http frames it.
cat >"$tmp/chunked.lua" <<'LUA'
function request(conn, seq)
  local body = "hello " .. seq
  return string.format("HTTP/1.1 200 OK\r\nX-Seq: %d\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n%x\r\n%s\r\n0\r\n\r\n",
    seq, #tostring(seq), tostring(seq)), body
end
function response(status, headers, body, ctx)
  if status ~= 200 then return false, "status " .. status end
  if headers["Transfer-Encoding"] ~= "chunked" then return false, "no chunked header" end
  if body ~= ctx then return false, "body '" .. body .. "' where '" .. ctx .. "' was due" end
  if tonumber(headers["X-Seq"]) .. "" ~= ctx:sub(7) then return false, "X-Seq " .. headers["X-Seq"] end
end
LUA
"$load" --proto http --script "$tmp/chunked.lua" -c 2 -d 1 -j 127.0.0.1:$ep >"$tmp/chunked.json" 2>"$tmp/chunked.err"
rc=$?
v=$(jget "$tmp/chunked.json" '"%d %d" % (r["errors"], r["counters"]["measured"])')
[ $rc -eq 0 ] && [ "${v%% *}" = 0 ] && [ "${v##* }" -gt 100 ] &&
    ok "http: response(status, headers, body) with the chunks joined ($v: errors, replies)" ||
    fail "chunked: rc $rc, '$v'; $(head -c 300 "$tmp/chunked.err")"

# ---- hostile scripts: every hook failing, yielding, exiting or looping. Exit status 2
# when it happens before the run (at load, in setup() or init()), 1 when it happens during
# the run (script_error, named, the run ends on time) or in done(); never a crash, never
# the script's own exit status.
hook_fail() {
    name=$1 rc_want=$2 text=$3
    shift 3
    start=$(date +%s)
    "$load" -c 2 -d 500ms --drain 500ms -j --script "$tmp/$name.lua" "$@" 127.0.0.1:$ep >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    took=$(($(date +%s) - start))
    if [ $rc -eq 2 ]; then
        where=$(head -n1 "$tmp/$name.err")
    elif [ -s "$tmp/$name.json" ]; then
        where=$(jget "$tmp/$name.json" 'r["first_error"]')
        [ $rc_want = done ] && where=$(grep -F "in done()" "$tmp/$name.err" | head -n1) && rc_want=1
    else
        where="no report: $(head -c 300 "$tmp/$name.err")"
    fi
    if [ $rc -eq $rc_want ] && echo "$where" | grep -qF -- "$text" && [ $took -lt 15 ]; then
        ok "$name: exit $rc in ${took}s: $where"
    else
        fail "$name: rc $rc (want $rc_want) in ${took}s, '$where' lacks '$text'"
    fi
}
for hook in setup init request response delay done; do
    printf 'function request() return "h\\n" end\nfunction %s()\n  error("failing in %s")\nend\n' "$hook" "$hook" >"$tmp/error-$hook.lua"
done
# request() is defined twice in error-request.lua: the second one (which fails) wins
hook_fail error-setup 2 "in setup(): $tmp/error-setup.lua:3: failing in setup"
hook_fail error-init 2 "in init(): $tmp/error-init.lua:3: failing in init"
hook_fail error-request 1 "script_error in request(): $tmp/error-request.lua:3: failing in request"
hook_fail error-response 1 "script_error in response(): $tmp/error-response.lua:3: failing in response"
hook_fail error-delay 1 "script_error in delay(): $tmp/error-delay.lua:3: failing in delay"
hook_fail error-done done "in done(): $tmp/error-done.lua:3: failing in done"
printf 'function request() coroutine.yield("x") end\n' >"$tmp/yield.lua"
hook_fail yield 1 "script_error in request(): attempt to yield from outside a coroutine"
printf 'function request() return "y\\n" end\nfunction response() os.exit(7) end\n' >"$tmp/exit.lua"
hook_fail exit 1 "os.exit(): a script cannot end wharf-load"
printf 'os.exit(0)\n' >"$tmp/exit-top.lua"
hook_fail exit-top 2 "os.exit(): a script cannot end wharf-load"
printf 'function setup() while true do end end\n' >"$tmp/loop-setup.lua"
hook_fail loop-setup 2 "in setup(): $tmp/loop-setup.lua:1: more than 200 million instructions in one call"
printf 'function request() return "z\\n" end\nfunction response() local i = 0; while true do i = i + 1 end end\n' >"$tmp/loop-response.lua"
hook_fail loop-response 1 "script_error in response(): $tmp/loop-response.lua:2: more than 200 million instructions"
printf 'function request() return "d\\n" end\nfunction done() while true do end end\n' >"$tmp/loop-done.lua"
hook_fail loop-done done "in done(): $tmp/loop-done.lua:2: more than 200 million instructions"
printf 'function request()\n  local f, e = load(string.dump(function() return "b\\n" end))\n  if not f then error(e) end\n  return f()\nend\n' >"$tmp/binary.lua"
hook_fail binary 1 "script_error in request(): $tmp/binary.lua:3: attempt to load a binary chunk (mode is 't')"

# ---- wrk.lookup, wrk.connect, address objects, thread.addr set to one
cp_port=$(free_port) # nothing listens there
v6=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0)); print("yes")' 2>/dev/null)
cat >"$tmp/lookup.lua" <<'LUA'
local function show(host, service)
  local t, out = wrk.lookup(host, service), {}
  for i, a in ipairs(t) do out[i] = tostring(a) end
  io.stderr:write(string.format("lookup %s %s: %d [%s]\n", host, service, #t, table.concat(out, " ")))
  return t
end
function setup(thread)
  if thread.id > 0 then return end
  local a = show("127.0.0.1", wrk.port)
  if args_services then show("127.0.0.1", "http") end
  if args_v6 then show("::1", "8080") end
  local l = show("localhost", tostring(wrk.port))
  io.stderr:write("same: ", tostring(a[1] == l[1] or a[1] == l[2]), "\n")
  thread.addr = a[1]
end
function request() return "l\n" end
LUA
[ "$v6" = yes ] && sed -i '1i args_v6 = true' "$tmp/lookup.lua"
# a service name is looked up in /etc/services (Debian's netbase)
services=$(grep -qs '^http[[:space:]]*80/tcp' /etc/services && echo yes)
[ "$services" = yes ] && sed -i '1i args_services = true' "$tmp/lookup.lua"
"$load" --script "$tmp/lookup.lua" -t 2 -c 2 -d 500ms -j 127.0.0.1:$ep >"$tmp/lookup.json" 2>"$tmp/lookup.err"
rc=$?
addrs=$(jget "$tmp/lookup.json" '" ".join(a or "-" for a in r["config"]["thread_addrs"])')
if [ $rc -eq 0 ] && grep -qx "lookup 127.0.0.1 $ep: 1 \[127.0.0.1:$ep\]" "$tmp/lookup.err" &&
    { [ "$services" != yes ] || grep -qx "lookup 127.0.0.1 http: 1 \[127.0.0.1:80\]" "$tmp/lookup.err"; } &&
    grep -q "^lookup localhost $ep: [1-9].*127.0.0.1:$ep" "$tmp/lookup.err" && grep -qx "same: true" "$tmp/lookup.err" &&
    [ "$addrs" = "127.0.0.1:$ep -" ] &&
    { [ "$v6" != yes ] || grep -qx "lookup ::1 8080: 1 \[\[::1\]:8080\]" "$tmp/lookup.err"; }; then
    ok "wrk.lookup: 127.0.0.1 (a port$([ "$services" = yes ] && echo " and 'http'")), localhost$([ "$v6" = yes ] && echo ', ::1 as [::1]:8080'), printed ADDR:PORT; thread.addr = an address object: $addrs"
else
    fail "lookup: rc $rc, thread_addrs '$addrs', v6 '$v6': $(head -c 600 "$tmp/lookup.err")"
fi
[ "$v6" = yes ] || echo "SKIP (part): ::1 lookup, the machine has no IPv6 loopback"
[ "$services" = yes ] || echo "SKIP (part): lookup of the service 'http', /etc/services lacks it (Debian package netbase)"

# a lookup that fails names the host and the service; exit 2 before the run (in setup());
# an address of the other family is refused for thread.addr
printf 'function setup() wrk.lookup("127.0.0.1", "nosuchservice") end\nfunction request() return "x\\n" end\n' >"$tmp/lookup-bad.lua"
load_error lookup-fails "in setup(): $tmp/lookup-bad.lua:1: wrk.lookup('127.0.0.1', 'nosuchservice'): cannot resolve: " --script "$tmp/lookup-bad.lua"
printf 'function setup(t) t.addr = wrk.lookup("::1", "80")[1] end\nfunction request() return "x\\n" end\n' >"$tmp/lookup-family.lua"
load_error lookup-family "thread.addr: '\[::1\]:80' is not of the target's address family (IPv4)" --script "$tmp/lookup-family.lua"

# wrk.connect: true to a listening port, false to a closed one and to a listener whose
# backlog is full (no SYN is answered: it waits --connect-timeout, 300 ms here); an address
# object and the string form; refused during the run, where a lookup is numeric only
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
held = []
for i in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(s.getsockname())
    except BlockingIOError: pass
    held.append(c)
print(s.getsockname()[1], flush=True)
time.sleep(30)
' >"$tmp/full.port" &
pids="$pids $!"
i=0
while [ $i -lt 100 ] && [ ! -s "$tmp/full.port" ]; do sleep 0.05; i=$((i + 1)); done
fp=$(cat "$tmp/full.port")
sleep 0.2
printf 'CP, FP = %s, %s\n' "$cp_port" "$fp" >"$tmp/connect.lua"
cat >>"$tmp/connect.lua" <<'LUA'
function setup(thread)
  local open = wrk.lookup("127.0.0.1", wrk.port)[1]
  io.stderr:write(string.format("connect: %s %s %s %s\n", tostring(wrk.connect(open)),
    tostring(wrk.connect("127.0.0.1:" .. wrk.port)), tostring(wrk.connect(wrk.lookup("127.0.0.1", CP)[1])),
    tostring(wrk.connect("127.0.0.1:" .. FP))))
end
function request(conn, seq)
  if seq == 1 then return tostring(wrk.lookup("127.0.0.1", "9")[1]) .. "\n" end
  if seq == 2 then local ok, e = pcall(wrk.lookup, "localhost", "9"); return tostring(ok) .. " " .. e .. "\n" end
  if seq == 3 then local ok, e = pcall(wrk.connect, "127.0.0.1:9"); return tostring(ok) .. " " .. e .. "\n" end
  return "c\n"
end
function response(reply) io.stderr:write("run: ", reply) end
LUA
start=$(date +%s)
"$load" --script "$tmp/connect.lua" --connect-timeout 300ms -c 1 -n 5 -j 127.0.0.1:$ep >"$tmp/connect.json" 2>"$tmp/connect.err"
rc=$?
took=$(($(date +%s) - start))
if [ $rc -eq 0 ] && grep -qx "connect: true true false false" "$tmp/connect.err" && [ $took -lt 5 ] &&
    grep -qx "run: 127.0.0.1:9" "$tmp/connect.err" &&
    grep -qx "run: false .*wrk.lookup('localhost', '9'): during the run only numeric addresses and ports are looked up (names in setup() or init())" "$tmp/connect.err" &&
    grep -qx "run: false .*wrk.connect(127.0.0.1:9): in setup(), init() or done() only (during the run it would stall the thread's connections)" "$tmp/connect.err"; then
    ok "wrk.connect: true to the echo (object and string), false to a closed port and to a full backlog (--connect-timeout 300ms), run ${took}s; during the run connect refused, lookup numeric only"
else
    fail "connect: rc $rc, ${took}s: $(head -c 800 "$tmp/connect.err")"
fi

# wrk's scripts/addr.lua, unchanged: each thread gets an address that connects (here the
# only one, the echo's), init() prints it
cat >"$tmp/addr-wrk.lua" <<'LUA'
-- example script that demonstrates use of setup() to pass
-- a random server address to each thread

local addrs = nil

function setup(thread)
   if not addrs then
      addrs = wrk.lookup(wrk.host, wrk.port or "http")
      for i = #addrs, 1, -1 do
         if not wrk.connect(addrs[i]) then
            table.remove(addrs, i)
         end
      end
   end

   thread.addr = addrs[math.random(#addrs)]
end

function init(args)
   local msg = "thread addr: %s"
   print(msg:format(wrk.thread.addr))
end
LUA
"$load" --script "$tmp/addr-wrk.lua" --request 'addr {seq}\n' --expect prefix:addr -t 2 -c 2 -d 500ms 127.0.0.1:$ep >"$tmp/addr-wrk.out" 2>&1
rc=$?
n=$(grep -cx "thread addr: 127.0.0.1:$ep" "$tmp/addr-wrk.out")
[ $rc -eq 0 ] && [ "$n" = 2 ] && grep -q "thread.addr thread 0 127.0.0.1:$ep, thread 1 127.0.0.1:$ep" "$tmp/addr-wrk.out" &&
    grep -q "errors      0" "$tmp/addr-wrk.out" &&
    ok "wrk's addr.lua: both threads print 'thread addr: 127.0.0.1:$ep' and run there, 0 errors" ||
    fail "addr.lua: rc $rc, $n lines: $(head -c 600 "$tmp/addr-wrk.out")"

# ---- delay(): the connection waits that long before its next request (closed loop)
printf 'function request() return "d\\n" end\nfunction delay() return 50 end\n' >"$tmp/delay50.lua"
delay_run() {
    name=$1 lo=$2 hi=$3
    shift 3
    "$load" -c 2 -d 2 -j "$@" 127.0.0.1:$ep >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    v=$(jget "$tmp/$name.json" '"%d %d %d %s" % (r["errors"], r["counters"]["measured"], r["latency_ns"]["uncorrected"]["p50"] // 1000000, r["config"]["script_delay"])')
    set -- $v
    # the wait is not in the latency: p50 far below the shortest wait (10 ms)
    if [ $rc -eq 0 ] && [ "${1:-}" = 0 ] && [ "$2" -ge $lo ] && [ "$2" -le $hi ] && [ "$3" -lt 5 ] &&
        [ "$4" = True ]; then
        ok "$name: $2 requests in 2 s on 2 connections (expected $lo..$hi), latency p50 under 5 ms"
    else
        fail "$name: rc $rc, errors/requests/p50 ms '$v' (expected $lo..$hi, p50 < 5); $(head -c 300 "$tmp/$name.err")"
    fi
}
# 50 ms before each request, the first one included: requests at 50, 100, ... 1950 ms at
# the earliest, so 2 x 39 = 78 at most (80 if the first one did not wait or a wait were
# short), fewer on a busy machine
delay_run delay-50ms 40 78 --script "$tmp/delay50.lua"
# a deeper pipeline: still one request per delay() per connection
delay_run delay-50ms-pipelined 40 78 --script "$tmp/delay50.lua" -p 4
# wrk's scripts/delay.lua, unchanged: 10..50 ms, 30 on average: about 2 x 2000 / 30 = 133
cat >"$tmp/delay.lua" <<'LUA'
-- example script that demonstrates adding a random
-- 10-50ms delay before each request

function delay()
   return math.random(10, 50)
end
LUA
delay_run delay-wrk 70 175 --script "$tmp/delay.lua" --request 'delay {seq}\n' --expect prefix:delay
"$load" --script "$tmp/delay50.lua" -c 1 -d 300ms 127.0.0.1:$ep >"$tmp/delay-human.txt" 2>&1
grep -q "^  script .*delay50.lua (it makes the requests; the templates frame the replies); delay() before each request$" "$tmp/delay-human.txt" &&
    [ "$(jget "$tmp/lookup.json" 'r["config"]["script_delay"]')" = False ] &&
    ok "the report's script line says 'delay() before each request' (JSON config.script_delay true; false without delay())" ||
    fail "delay in the report: $(grep script "$tmp/delay-human.txt")"
load_error delay-open-loop "delay() paces the closed loop (each connection waits before its next request); with --rate the schedule says when requests go: drop --rate or delay()" --script "$tmp/delay50.lua" -r 100
for v in -5 0/0 1e12 '"50"' nil; do
    printf 'function request() return "b\\n" end\nfunction delay() return %s end\n' "$v" >"$tmp/delay-bad.lua"
    case $v in
    '"50"') want="returned a string, expected milliseconds (a number from 0 to 3600000)" ;;
    nil) want="returned nil, expected milliseconds (a number from 0 to 3600000)" ;;
    0/0) want="nan, expected milliseconds from 0 to 3600000" ;; # "-nan" or "nan"
    1e12) want="returned 1000000000000.0, expected milliseconds from 0 to 3600000" ;;
    *) want="returned $v, expected milliseconds from 0 to 3600000" ;;
    esac
    start=$(date +%s)
    "$load" --script "$tmp/delay-bad.lua" -c 2 -d 500ms -j 127.0.0.1:$ep >"$tmp/delay-bad.json" 2>"$tmp/delay-bad.err"
    rc=$?
    took=$(($(date +%s) - start))
    e=$(jget "$tmp/delay-bad.json" 'r["first_error"]')
    n=$(jget "$tmp/delay-bad.json" '"%d %d" % (r["counters"]["script_error"], r["counters"]["sent"])')
    case "$e" in
    "script_error in delay(): "*"$want ($tmp/delay-bad.lua)") good=1 ;;
    *) good=0 ;;
    esac
    [ $rc -eq 1 ] && [ $good = 1 ] && [ "${n%% *}" -ge 2 ] && [ "${n##* }" = 0 ] && [ $took -lt 10 ] &&
        ok "delay() returning $v: exit 1, script_error ${n%% *}, nothing sent, in ${took}s: $e" ||
        fail "delay() returning $v: rc $rc, '$e' lacks '$want', script_error/sent '$n', ${took}s"
done

# ---- done()'s third argument: each thread's replies per second over each --interval
cat >"$tmp/done3.lua" <<'LUA'
function request() return "r\n" end
function done(summary, latency, requests)
  local lat = 0
  for i = 1, #latency do local v, c = latency(i); lat = lat + c end
  local n, sum, prev = 0, 0, -1
  for i = 1, #requests do
    local v, c = requests(i)
    if v <= prev then error("distinct values not ascending") end
    prev, n, sum = v, n + c, sum + v * c
  end
  local ordered = requests.min <= requests:percentile(50) and requests:percentile(50) <= requests.max
    and requests.min <= requests.mean and requests.mean <= requests.max and requests.stdev >= 0
  io.stderr:write(string.format("done3: %d %d %d %d %d %d %d %s %s %s\n", summary.requests,
    latency.count, lat, requests.count, n, sum, requests.max, tostring(requests:percentile(100) == requests.max),
    tostring(ordered), tostring(requests(#requests + 1))))
end
LUA
done3() {
    name=$1 samples=$2 secs=$3
    shift 3
    "$load" --script "$tmp/done3.lua" -c 2 -t 2 -j "$@" 127.0.0.1:$ep >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    v=$(sed -n 's/^done3: //p' "$tmp/$name.err")
    # summary.requests = latency.count = the counts of latency(i) added up; requests.count =
    # the counts of requests(i) added up = the samples; the samples (replies per second over
    # intervals of `secs`) add up to the requests within 5 %
    if [ $rc -eq 0 ] && python3 -c "
import sys
r, lc, ls, rc, rn, rs, mx, p100, order, past = sys.argv[1].split()
ok = r == lc == ls and rc == rn == sys.argv[2] and (p100, order, past) == ('true', 'true', 'nil')
sys.exit(0 if ok and abs(float(rs) * float(sys.argv[3]) - int(r)) <= 0.05 * int(r) else 1)" "$v" $samples $secs; then
        set -- $v
        ok "$name: done(summary, latency, requests): $4 rate samples x ${secs}s = $(python3 -c "print(round($6 * $secs))") of $1 requests; the counts of latency(i) add up to $3"
    else
        fail "$name: rc $rc, '$v'; $(head -c 300 "$tmp/$name.err")"
    fi
}
done3 done3-intervals 4 1 -d 2
done3 done3-half-intervals 8 0.5 -d 2 --interval 500ms
# shorter than one --interval: one sample per thread, over the whole measured period
done3 done3-short 2 0.5 -d 500ms

# ---- nginx: wrk's examples rewritten
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx" ]; then
    echo "SKIP (part): nginx is needed for wrk's examples (Debian package nginx-light)"
else
    np=$(free_port)
    bp=$(free_port)
    op=$(free_port)
    mkdir -p "$tmp/ngx/html/path"
    printf 'hello from nginx\n' >"$tmp/ngx/html/index.html"
    cat >"$tmp/ngx/nginx.conf" <<CONF
daemon off;
master_process off;
user $(id -un) $(id -gn);
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log;
events { worker_connections 1024; }
http {
    client_body_temp_path $tmp/ngx/body;
    proxy_temp_path $tmp/ngx/proxy;
    fastcgi_temp_path $tmp/ngx/fastcgi;
    uwsgi_temp_path $tmp/ngx/uwsgi;
    scgi_temp_path $tmp/ngx/scgi;
    log_format b '\$request_method \$request_uri \$status [\$request_body] [\$http_content_type]';
    root $tmp/ngx/html;
    keepalive_requests 1000;
    server {
        listen 127.0.0.1:$np;
        access_log $tmp/ngx/access.log b;
        location /post { proxy_pass http://127.0.0.1:$bp; }
        location /path/ { return 200 "path \$request_uri\n"; }
    }
    server {
        listen 127.0.0.1:$bp;
        access_log off;
        location / { return 200 "posted\n"; }
    }
    server {
        listen 127.0.0.1:$op;
        access_log $tmp/ngx/other.log b;
        location /path/ { return 200 "other \$request_uri\n"; }
    }
}
CONF
    "$nginx" -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" 2>>"$tmp/ngx/error.log" &
    pids="$pids $!"
    wait_port "$np"
    wait_port "$bp"
    wait_port "$op"

    # wrk's scripts/post.lua, as it is: wrk.method, wrk.body, wrk.headers
    cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body   = "foo=bar&baz=quux"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
    : >"$tmp/ngx/access.log"
    "$load" --script "$tmp/post.lua" -c 2 -p 1 -n 3000 -d 20 -j http://127.0.0.1:$np/post \
        >"$tmp/post.json" 2>"$tmp/post.err"
    rc=$?
    v=$(jget "$tmp/post.json" '"%d %d" % (r["errors"], r["counters"]["received"])')
    lines=$(wc -l <"$tmp/ngx/access.log")
    good=$(grep -c '^POST /post 200 \[foo=bar&baz=quux\] \[application/x-www-form-urlencoded\]$' "$tmp/ngx/access.log")
    [ $rc -eq 0 ] && [ "$v" = "0 $lines" ] && [ "$good" = "$lines" ] && [ "$lines" -ge 3000 ] &&
        ok "wrk's post.lua: $lines POSTs, every body and Content-Type as sent in nginx's log" ||
        fail "post: rc $rc, errors/received '$v', nginx logged $lines ($good as sent): $(head -n2 "$tmp/ngx/access.log") $(head -c 300 "$tmp/post.err")"

    # wrk's counter example, rewritten: /path/THREAD-N, each path once, and the reply
    # names the path that was asked (ctx)
    cat >"$tmp/counter.lua" <<'LUA'
counter = 1
function request()
  local path = "/path/" .. wharf.thread.id .. "-" .. counter
  wrk.headers["X-Counter"] = counter
  counter = counter + 1
  return wrk.format(nil, path), path
end
function response(status, headers, body, path)
  if status ~= 200 or body ~= "path " .. path .. "\n" then
    return false, "status " .. status .. " body " .. body
  end
end
LUA
    : >"$tmp/ngx/access.log"
    "$load" --proto http --script "$tmp/counter.lua" -c 4 -t 2 -p 4 -d 1 -j 127.0.0.1:$np \
        >"$tmp/counter.json" 2>"$tmp/counter.err"
    rc=$?
    v=$(jget "$tmp/counter.json" '"%d %d" % (r["errors"], r["counters"]["received"])')
    lines=$(wc -l <"$tmp/ngx/access.log")
    distinct=$(grep '^GET /path/[01]-[0-9]* 200 ' "$tmp/ngx/access.log" | cut -d' ' -f2 | sort -u | wc -l)
    [ $rc -eq 0 ] && [ "$v" = "0 $lines" ] && [ "$distinct" = "$lines" ] && [ "$lines" -gt 100 ] &&
        ok "counter path: $lines requests, $distinct distinct /path/T-N in nginx's log, each reply tied to its path" ||
        fail "counter: rc $rc, errors/received '$v', nginx logged $lines ($distinct distinct); $(head -c 300 "$tmp/counter.err")"
    # wrk's scripts/setup.lua, unchanged: setup(thread) in the main state hands each thread
    # its id with thread:set, init() prints it, done() collects every thread's counts with
    # thread:get (print writes to stdout, so no -j here)
    cat >"$tmp/setup.lua" <<'LUA'
-- example script demonstrating use of setup() to pass
-- data to and from the threads

local counter = 1
local threads = {}

function setup(thread)
   thread:set("id", counter)
   table.insert(threads, thread)
   counter = counter + 1
end

function init(args)
   requests  = 0
   responses = 0

   local msg = "thread %d created"
   print(msg:format(id))
end

function request()
   requests = requests + 1
   return wrk.request()
end

function response(status, headers, body)
   responses = responses + 1
end

function done(summary, latency, requests)
   for index, thread in ipairs(threads) do
      local id        = thread:get("id")
      local requests  = thread:get("requests")
      local responses = thread:get("responses")
      local msg = "thread %d made %d requests and got %d responses"
      print(msg:format(id, requests, responses))
   end
end
LUA
    : >"$tmp/ngx/access.log"
    "$load" --script "$tmp/setup.lua" -t 3 -c 6 -p 2 -n 3000 -d 20 http://127.0.0.1:$np/ \
        >"$tmp/setup.out" 2>"$tmp/setup.err"
    rc=$?
    lines=$(wc -l <"$tmp/ngx/access.log" | tr -d ' ')
    created=$(grep -c '^thread [123] created$' "$tmp/setup.out")
    got=$(sed -n 's/^thread [123] made \([0-9]*\) requests and got \([0-9]*\) responses$/\1 \2/p' "$tmp/setup.out" |
        awk '{ n++; if ($1 < $2) bad++; r += $2 } END { print n, r, bad + 0 }')
    [ $rc -eq 0 ] && [ "$created" = 3 ] && [ "$got" = "3 $lines 0" ] && [ "$lines" = 3000 ] &&
        ok "wrk's setup.lua: 3 threads created with the ids setup() set, done() read back 3 threads' counts: $lines responses in all = nginx's log" ||
        fail "setup.lua: rc $rc, created $created, threads/responses/bad '$got', nginx logged $lines: $(cat "$tmp/setup.out" | head -c 600) $(head -c 300 "$tmp/setup.err")"

    # wrk's scripts/stop.lua, unchanged: each thread stops itself after its 100th response;
    # the run ends then, long before --duration, with exactly 100 requests per thread
    cat >"$tmp/stop.lua" <<'LUA'
-- example script that demonstrates use of thread:stop()

local counter = 1

function response()
   if counter == 100 then
      wrk.thread:stop()
   end
   counter = counter + 1
end
LUA
    : >"$tmp/ngx/access.log"
    start=$(date +%s)
    "$load" --script "$tmp/stop.lua" -t 2 -c 2 -p 1 -d 10 -j http://127.0.0.1:$np/ >"$tmp/stop.json" 2>"$tmp/stop.err"
    rc=$?
    took=$(($(date +%s) - start))
    lines=$(wc -l <"$tmp/ngx/access.log" | tr -d ' ')
    v=$(jget "$tmp/stop.json" '"%d %d %d" % (r["errors"], r["counters"]["received"], r["counters"]["script_stops"])')
    [ $rc -eq 0 ] && [ "$v" = "0 200 2" ] && [ "$lines" = 200 ] && [ $took -lt 5 ] &&
        ok "wrk's stop.lua: both threads stopped after 100 responses each (script_stops 2), 200 = nginx's log, ended after ${took}s of a 10 s run" ||
        fail "stop.lua: rc $rc, errors/received/script_stops '$v', nginx logged $lines, ${took}s; $(head -c 300 "$tmp/stop.err")"
    "$load" --script "$tmp/stop.lua" -t 2 -c 4 -p 2 -d 10 http://127.0.0.1:$np/ >"$tmp/stop.txt" 2>&1
    grep -q "script .*2 of 2 threads stopped by wrk.thread:stop()" "$tmp/stop.txt" &&
        ok "human report: $(grep -o '2 of 2 threads stopped.*' "$tmp/stop.txt")" || fail "stop report: $(cat "$tmp/stop.txt")"

    # thread.addr: thread 1's connections go to another server (set in init(), from an
    # argument); each server logs only its thread's requests
    cat >"$tmp/addr.lua" <<'LUA'
function setup(thread) thread:set("first", thread.addr) end
function init(args)
  if wrk.thread.id == 1 then wrk.thread.addr = args[1] end
  wrk.path = "/path/t" .. wrk.thread.id
end
LUA
    : >"$tmp/ngx/access.log"; : >"$tmp/ngx/other.log"
    "$load" --script "$tmp/addr.lua" --script-arg "127.0.0.1:$op" -t 2 -c 4 -n 2000 -d 20 http://127.0.0.1:$np/ \
        >"$tmp/addr.txt" 2>&1
    rc=$?
    a=$(grep -c '^GET /path/t0 200 ' "$tmp/ngx/access.log"); a_all=$(wc -l <"$tmp/ngx/access.log" | tr -d ' ')
    o=$(grep -c '^GET /path/t1 200 ' "$tmp/ngx/other.log"); o_all=$(wc -l <"$tmp/ngx/other.log" | tr -d ' ')
    [ $rc -eq 0 ] && [ "$a" = "$a_all" ] && [ "$o" = "$o_all" ] && [ $((a + o)) = 2000 ] && [ "$a" -gt 0 ] && [ "$o" -gt 0 ] &&
        grep -q "thread.addr thread 1 127.0.0.1:$op" "$tmp/addr.txt" &&
        ok "thread.addr: thread 0's $a requests reached the target, thread 1's $o the other server; named in the report" ||
        fail "thread.addr: rc $rc, target $a of $a_all, other $o of $o_all; $(head -c 600 "$tmp/addr.txt")"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
