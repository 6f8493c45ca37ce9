#!/bin/sh
# check_load_nginx.sh - wharf-load --proto http against stock nginx (started here: its own
# prefix and configuration, one process, a free loopback port, ended by its pid), with the
# keep-alive limits nginx is shipped with: after `keepalive_requests` requests (1000 by
# default; 100 here too) nginx answers with `Connection: close` and closes. wharf-load must
# reconnect and go on: 0 errors, the reconnects counted, and the requests it counts equal to
# the lines of nginx's access log (nothing lost, nothing counted twice), in closed loop with
# and without pipelining and in open loop. Then request bodies (--data, --method): nginx
# logs every request's method, length and Content-Length, and tests/load_http_body.py (a
# small server that checks each body byte for byte) counts the bodies that arrived intact,
# directly and behind nginx; HEAD responses are framed without a body; bad --data and
# --method arguments are refused by name. Every wait is bounded.
set -u
build=${WHARF_BUILDDIR:-.}
load=$build/wharf-load
tmp=$(mktemp -d)
pids=
passed=0
failed=0
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] && cp -r "$tmp" /tmp/check_load_nginx.keep
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "SKIP: nginx is needed (Debian package nginx-light)"; exit 77; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    i=0
    while [ $i -lt 100 ] && ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), timeout=1).close()" 2>/dev/null; do
        sleep 0.05; i=$((i + 1))
    done
}
# jget FILE EXPR: a value of the JSON report in FILE (EXPR in Python over `r`)
jget() { python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# The body checker (its port first: nginx proxies to it), with a body of random bytes and
# some that look like template syntax, which must go out as they are
(head -c 3000 /dev/urandom; printf '{seq}{{\\r\\n\0{key}') >"$tmp/body.bin"
python3 "${WHARF_SRCDIR:-.}/tests/load_http_body.py" "$tmp/body.bin" 120 >"$tmp/checker.port" 2>"$tmp/checker.err" &
pids="$pids $!"
i=0
while [ $i -lt 100 ] && ! grep -q '^port ' "$tmp/checker.port"; do sleep 0.05; i=$((i + 1)); done
cp=$(sed -n 's/^port //p' "$tmp/checker.port")
[ -n "$cp" ] || { echo "FAIL: load_http_body.py did not start: $(cat "$tmp/checker.err")"; exit 1; }

# Three servers: keepalive_requests 1000 (nginx's default, written out) and 100, and one
# (keepalive_requests 100) for request bodies that logs each request's method, length and
# Content-Length.
p1000=$(free_port)
p100=$(free_port)
pd=$(free_port)
mkdir -p "$tmp/ngx/html"
printf '%064d' 0 >"$tmp/ngx/html/index.html"
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
    log_format n '\$server_port \$status';
    log_format d '\$request_method \$request_uri \$request_length \$content_length \$status';
    root $tmp/ngx/html;
    server {
        listen 127.0.0.1:$p1000;
        keepalive_requests 1000;
        access_log $tmp/ngx/access1000.log n;
    }
    server {
        listen 127.0.0.1:$p100;
        keepalive_requests 100;
        access_log $tmp/ngx/access100.log n;
    }
    server {
        listen 127.0.0.1:$pd;
        keepalive_requests 100;
        access_log $tmp/ngx/data.log d;
        location = /post { return 200 "ok\\n"; }
        location = /checked { proxy_pass http://127.0.0.1:$cp/body; proxy_http_version 1.1; }
    }
}
CONF
"$nginx" -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" 2>>"$tmp/ngx/error.log" &
pids="$pids $!"
wait_port "$p1000"
wait_port "$p100"
wait_port "$pd"

# run NAME PORT ARGS...: one run; its access log must hold exactly the requests counted
run() {
    name=$1 port=$2
    shift 2
    log=$tmp/ngx/access$([ "$port" = "$p100" ] && echo 100 || echo 1000).log
    : >"$log"
    "$load" --proto http --path /index.html --expect status:200 -j "$@" 127.0.0.1:"$port" \
        >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    v=$(jget "$tmp/$name.json" '"%d %d %d %d" % (r["errors"], r["counters"]["received"], r["counters"]["reconnects"], r["counters"]["measured"])')
    set -- $v
    # nginx writes a request's log line after its reply has gone out, so the
    # last lines may come a moment after the client has its replies (2 s at most).
    i=0
    while lines=$(wc -l <"$log") && [ "$lines" -lt "${2:-0}" ] && [ $i -lt 40 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    if [ $rc -eq 0 ] && [ "${1:-x}" = 0 ] && [ "${2:-x}" = "$lines" ] && [ "${3:-0}" -ge "$min_reconnects" ]; then
        ok "$name: exit 0, 0 errors, $2 requests = $lines lines of nginx's log, $3 reconnects"
    else
        fail "$name: rc $rc, errors/received/reconnects/measured '$v', nginx logged $lines; $(head -c 300 "$tmp/$name.err")"
    fi
}

min_reconnects=4
run k1000-closed $p1000 -c 2 -p 1 -n 5000 -d 20
min_reconnects=48
run k100-closed $p100 -c 2 -p 1 -n 5000 -d 20
run k100-pipelined $p100 -c 2 -p 8 -n 5000 -d 20
min_reconnects=10
run k100-open $p100 -c 4 -r 2000 -d 1 --drain 2
min_reconnects=1
run k1000-open-count $p1000 -c 1 -r 5000 -n 2000 -d 5

# the human report names the reconnects
"$load" --proto http --path /index.html -c 1 -n 250 127.0.0.1:$p100 >"$tmp/human.txt" 2>&1
grep -q 'reconnects 2' "$tmp/human.txt" && ok "human report: $(grep reconnects "$tmp/human.txt" | head -1)" ||
    fail "human report without the reconnects: $(cat "$tmp/human.txt")"

# ---- request bodies: --data FILE, --method ----
blen=$(wc -c <"$tmp/body.bin" | tr -d ' ')
# checked KEY: how many requests the body checker counted as KEY ("POST /body ok", ...)
checked() { python3 -c "import json, sys, urllib.request; print(json.load(urllib.request.urlopen('http://127.0.0.1:$cp/count', timeout=5)).get(sys.argv[1], 0))" "$1"; }
# data NAME PATH WANT_LINE_REGEX ARGS...: a run against nginx's body server; exit 0, 0
# errors, and every line of its log (as many as the requests counted) matching the regex
data() {
    name=$1 path=$2 want=$3
    shift 3
    : >"$tmp/ngx/data.log"
    "$load" -j "$@" "http://127.0.0.1:$pd$path" >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    lines=$(wc -l <"$tmp/ngx/data.log" | tr -d ' ')
    good=$(grep -cE "$want" "$tmp/ngx/data.log")
    v=$(jget "$tmp/$name.json" '"%d %d %d %s %d" % (r["errors"], r["counters"]["received"], r["counters"]["reconnects"], r["requests"]["method"], r["requests"]["body_bytes"])')
    set -- $v
    if [ $rc -eq 0 ] && [ "${1:-x}" = 0 ] && [ "${2:-x}" = "$lines" ] && [ "$good" = "$lines" ] && [ "$lines" -gt 0 ]; then
        ok "$name: exit 0, 0 errors, $2 requests ($4, body $5 B, $3 reconnects) = $lines lines of nginx's log, each like '$(head -n1 "$tmp/ngx/data.log")'"
    else
        fail "$name: rc $rc, errors/received/reconnects/method/body '$v', nginx logged $lines ($good as wanted: $want): $(head -n2 "$tmp/ngx/data.log"); $(head -c 300 "$tmp/$name.err")"
    fi
}
# the length of the request line and headers wharf-load sends to PATH before a body of N bytes
head_len() { printf 'POST %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Length: %s\r\n\r\n' "$1" "$pd" "$2" | wc -c | tr -d ' '; }
h=$(head_len /post "$blen")
# pipelined POSTs on connections nginx ends every 100 requests: the bodies in flight then are
# sent again whole on the next connection (a wrong length would turn the next request into
# garbage, which nginx would answer with 400 and log)
data post-pipelined /post "^POST /post $h $blen 200\$" --data "$tmp/body.bin" -c 2 -p 8 -n 2000 -d 20
rec=$(jget "$tmp/post-pipelined.json" 'r["counters"]["reconnects"]')
[ "${rec:-0}" -ge 18 ] && ok "POST pipelined: $rec reconnects (keepalive_requests 100), the bodies in flight resent whole" ||
    fail "POST pipelined: $rec reconnects"
data post-open /post "^POST /post $h $blen 200\$" --data "$tmp/body.bin" -c 4 -r 2000 -d 1 --drain 2
# through nginx to the body checker: nginx reads each body (its length is in the log), the
# checker compares it byte for byte with the file
before=$(checked "POST /body ok")
h=$(head_len /checked "$blen")
data post-checked /checked "^POST /checked $((h + blen)) $blen 200\$" --data "$tmp/body.bin" -c 2 -p 4 -n 500 -d 20
after=$(checked "POST /body ok")
[ $((after - before)) = 500 ] && [ "$(checked "POST /body bad")" = 0 ] &&
    ok "behind nginx: the checker got 500 bodies of $blen bytes intact, none wrong" ||
    fail "behind nginx: the checker counted $((after - before)) intact of 500, $(checked "POST /body bad") wrong"
# HEAD: nginx says Content-Length: 64 and sends no body; pipelined, nothing waits for one
data head /index.html '^HEAD /index.html [0-9]+ - 200$' --method HEAD -c 2 -p 8 -n 1000 -d 20
# an empty file is a body of 0 bytes; PUT without --data says Content-Length: 0
: >"$tmp/empty.bin"
data post-empty /post '^POST /post [0-9]+ 0 200$' --data "$tmp/empty.bin" -c 1 -n 50 -d 20
data put-nobody /post '^PUT /post [0-9]+ 0 200$' --method PUT -c 1 -n 50 -d 20
# the largest body allowed, 1 MiB, goes whole (nginx's default client_max_body_size is 1m)
head -c 1048576 /dev/urandom >"$tmp/1m.bin"
h=$(head_len /post 1048576)
data post-1mib /post "^POST /post $h 1048576 200\$" --data "$tmp/1m.bin" -c 2 -p 2 -n 40 -d 20

# straight to the body checker: pipelined, several methods, and with a script
cat >"$tmp/check.lua" <<'LUA'
function response(status, headers, body)
  if status ~= 200 or body ~= "ok\n" then return false, "status " .. status .. ": " .. body end
end
function done() io.stderr:write("script: " .. wrk.method .. " with " .. #wrk.body .. " bytes\n") end
LUA
checker_run() {
    name=$1 key=$2 n=$3
    shift 3
    before=$(checked "$key")
    "$load" -j "$@" >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    after=$(checked "$key")
    v=$(jget "$tmp/$name.json" '"%d %d" % (r["errors"], r["counters"]["received"])')
    if [ $rc -eq 0 ] && [ "$v" = "0 $n" ] && [ $((after - before)) = "$n" ]; then
        ok "$name: $n requests, the checker counted $((after - before)) '$key'"
    else
        fail "$name: rc $rc, errors/received '$v', checker '$key' $((after - before)) of $n; $(head -c 300 "$tmp/$name.err")"
    fi
}
checker_run checker-post "POST /body ok" 3000 --data "$tmp/body.bin" -c 3 -p 16 -n 3000 -d 20 "http://127.0.0.1:$cp/body"
checker_run checker-put "PUT /body ok" 500 --method PUT --data "$tmp/body.bin" -c 2 -p 4 -n 500 -d 20 "http://127.0.0.1:$cp/body"
checker_run checker-put-empty "PUT /empty ok" 200 --method PUT -c 2 -n 200 -d 20 "http://127.0.0.1:$cp/empty"
checker_run checker-head "HEAD /head ok" 500 --method HEAD -c 2 -p 8 -n 500 -d 20 "http://127.0.0.1:$cp/head"
checker_run checker-script "POST /body ok" 300 --proto http --path /body --data "$tmp/body.bin" --script "$tmp/check.lua" -c 1 -n 300 -d 20 "127.0.0.1:$cp"
grep -q "^script: POST with $blen bytes$" "$tmp/checker-script.err" && ok "a script sees wrk.method POST and wrk.body of $blen bytes" ||
    fail "script defaults: $(cat "$tmp/checker-script.err")"
[ "$(checked "POST /body bad")" = 0 ] && [ "$(checked garbage)" = 0 ] && ok "the body checker saw no wrong body and no garbage" ||
    fail "the body checker: $(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$cp/count').read())")"

# bad --data and --method: exit 2 before the run, named
refuse() {
    want=$1
    shift
    "$load" "$@" >"$tmp/bad.out" 2>"$tmp/bad.err"
    rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$want" "$tmp/bad.err"; then ok "refused: $(head -n1 "$tmp/bad.err")"
    else fail "not refused as expected ($want): rc $rc: $*: $(cat "$tmp/bad.err")"; fi
}
head -c 1048577 /dev/zero >"$tmp/big.bin"
refuse "--data $tmp/missing.bin: cannot open it: No such file or directory" --data "$tmp/missing.bin" -n 1 "http://127.0.0.1:$pd/post"
refuse "--data $tmp: a directory, expected a file" --data "$tmp" -n 1 "http://127.0.0.1:$pd/post"
refuse "--data $tmp/big.bin: longer than 1048576 bytes (1 MiB)" --data "$tmp/big.bin" -n 1 "http://127.0.0.1:$pd/post"
refuse "--data: goes with --proto http (or a URL target), not memcache" --proto memcache --data "$tmp/body.bin" -n 1 "127.0.0.1:$pd"
refuse "--method: goes with --proto http (or a URL target), not templates" --request 'x\n' --method PUT -n 1 "127.0.0.1:$pd"
refuse "--method: expected an HTTP method" --method 'GE T' -n 1 "http://127.0.0.1:$pd/post"
refuse "--method CONNECT: makes a tunnel" --method CONNECT -n 1 "http://127.0.0.1:$pd/post"
refuse "-H 'Content-Length: 5': --data $tmp/body.bin sends its own Content-Length" --data "$tmp/body.bin" -H 'Content-Length: 5' -n 1 "http://127.0.0.1:$pd/post"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
