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
function setup(thread) tid = thread.id end
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

# ---- nginx: wrk's examples rewritten
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx" ]; then
    echo "SKIP (part): nginx is needed for wrk's examples (Debian package nginx-light)"
else
    np=$(free_port)
    bp=$(free_port)
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
}
CONF
    "$nginx" -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" 2>>"$tmp/ngx/error.log" &
    pids="$pids $!"
    wait_port "$np"
    wait_port "$bp"

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
  local path = "/path/" .. wharf.thread .. "-" .. counter
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
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
