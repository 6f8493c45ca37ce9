#!/bin/sh
# check_load_nginx.sh - wharf-load --proto http against stock nginx (started here: its own
# prefix and configuration, one process, a free loopback port, ended by its pid), with the
# keep-alive limits nginx is shipped with: after `keepalive_requests` requests (1000 by
# default; 100 here too) nginx answers with `Connection: close` and closes. wharf-load must
# reconnect and go on: 0 errors, the reconnects counted, and the requests it counts equal to
# the lines of nginx's access log (nothing lost, nothing counted twice), in closed loop with
# and without pipelining and in open loop. Every wait is bounded.
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

# Two servers: keepalive_requests 1000 (nginx's default, written out) and 100.
p1000=$(free_port)
p100=$(free_port)
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
}
CONF
"$nginx" -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" 2>>"$tmp/ngx/error.log" &
pids="$pids $!"
wait_port "$p1000"
wait_port "$p100"

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

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
