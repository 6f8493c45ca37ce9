#!/bin/sh
# check_load_h2.sh - wharf-load against nginx started here (its own prefix, free loopback
# ports, one process ended by its pid): several weighted targets (two HTTP/1.1 servers, each
# target's counts equal to its own access log), and HTTP/2 (--h2): h2c with prior knowledge
# and 10 streams per connection, h2 over TLS with ALPN, POST with a body, nginx's
# keepalive_requests ending connections with GOAWAY (reconnects, 0 errors), stream resets
# counted by name, a server that never answers (the run ends on time), hostile servers
# whose response header block never ends (endless CONTINUATION frames, oversized headers:
# h2_error named, RSS bounded, the run on time), bad arguments refused by name, and h2load run side by side against the same server for the count check: every
# run's count equals the lines nginx logged. Every wait is bounded.
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
    [ -n "${KEEP:-}" ] && cp -r "$tmp" /tmp/check_load_h2.keep
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl is needed"; exit 77; }
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
lines() { wc -l <"$1" | tr -d ' '; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null || { echo "FAIL: openssl req"; exit 1; }

pa=$(free_port); pb=$(free_port); pc=$(free_port); pd=$(free_port); pe=$(free_port); pf=$(free_port)
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
    log_format n '\$server_port \$status \$request_method \$server_protocol \$content_length';
    root $tmp/ngx/html;
    server { listen 127.0.0.1:$pa; access_log $tmp/ngx/a.log n; }
    server { listen 127.0.0.1:$pb; access_log $tmp/ngx/b.log n; }
    server {
        listen 127.0.0.1:$pc http2;
        keepalive_requests 1000000;
        access_log $tmp/ngx/c.log n;
        location = /post { client_body_buffer_size 64k; return 200 "ok\n"; }
        location = /reset { return 444; }
    }
    server { listen 127.0.0.1:$pd http2; keepalive_requests 100; access_log $tmp/ngx/d.log n; }
    server { listen 127.0.0.1:$pf http2; http2_max_concurrent_streams 2; access_log $tmp/ngx/f.log n; }
    server {
        listen 127.0.0.1:$pe ssl http2;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        access_log $tmp/ngx/e.log n;
    }
}
CONF
"$nginx" -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" 2>>"$tmp/ngx/error.log" &
pids="$pids $!"
for p in $pa $pb $pc $pd $pe $pf; do wait_port $p; done

# ---- several targets with weights ----
: >"$tmp/ngx/a.log"; : >"$tmp/ngx/b.log"
"$load" -j -c 4 -n 4000 "http://127.0.0.1:$pa/index.html,weight=3" "http://127.0.0.1:$pb/,weight=1" \
    >"$tmp/t1.json" 2>"$tmp/t1.err"
rc=$?
v=$(jget "$tmp/t1.json" '"%d %d %d %d %d %d %s %s" % (r["errors"], r["counters"]["received"], r["targets"][0]["received"], r["targets"][1]["received"], r["targets"][0]["connections"], r["targets"][1]["connections"], r["targets"][0]["path"], r["targets"][1]["path"])')
la=$(lines "$tmp/ngx/a.log"); lb=$(lines "$tmp/ngx/b.log")
set -- $v
if [ $rc -eq 0 ] && [ "${1:-x}" = 0 ] && [ "${2:-x}" = 4000 ] && [ "${3:-x}" = "$la" ] && [ "${4:-x}" = "$lb" ] &&
   [ "${5:-x}" = 3 ] && [ "${6:-x}" = 1 ] && [ "${7:-x}" = /index.html ] && [ "${8:-x}" = / ]; then
    ok "two targets, weights 3:1, closed loop: connections 3 and 1, $3 + $4 requests = the servers' logs ($la, $lb)"
else
    fail "two targets closed loop: rc $rc, '$v', logs $la $lb; $(head -c 300 "$tmp/t1.err")"
fi
: >"$tmp/ngx/a.log"; : >"$tmp/ngx/b.log"
"$load" -j --proto http --path /index.html -c 8 -r 2000 -d 1 --drain 2 "127.0.0.1:$pa,weight=3" "127.0.0.1:$pb" \
    >"$tmp/t2.json" 2>"$tmp/t2.err"
rc=$?
v=$(jget "$tmp/t2.json" '"%d %d %d %d %d" % (r["errors"], r["targets"][0]["measured"], r["targets"][1]["measured"], r["targets"][0]["received"], r["targets"][1]["received"])')
la=$(lines "$tmp/ngx/a.log"); lb=$(lines "$tmp/ngx/b.log")
set -- $v
if [ $rc -eq 0 ] && [ "${1:-x}" = 0 ] && [ "${2:-x}" = 1500 ] && [ "${3:-x}" = 500 ] && [ "${4:-x}" = "$la" ] && [ "${5:-x}" = "$lb" ]; then
    ok "two targets, weights 3:1, open loop 2000/s for 1 s: exactly 1500 and 500 measured, logs $la and $lb"
else
    fail "two targets open loop: rc $rc, '$v', logs $la $lb; $(head -c 300 "$tmp/t2.err")"
fi
# one target: its entry in "targets" holds the run's counts (nothing is counted per
# target while there is only one)
: >"$tmp/ngx/a.log"
"$load" -j -c 2 -n 300 "http://127.0.0.1:$pa/index.html" >"$tmp/t0.json" 2>"$tmp/t0.err"
rc=$?
v=$(jget "$tmp/t0.json" '"%d %d %d %d %d %d" % (r["errors"], r["counters"]["received"], r["targets"][0]["received"], r["targets"][0]["sent"], r["targets"][0]["measured"], r["targets"][0]["errors"])')
la=$(lines "$tmp/ngx/a.log")
set -- $v
if [ $rc -eq 0 ] && [ "${1:-x}" = 0 ] && [ "${2:-x}" = 300 ] && [ "${3:-x}" = 300 ] && [ "${4:-x}" = 300 ] &&
   [ "${5:-x}" = 300 ] && [ "${6:-x}" = 0 ] && [ "$la" = 300 ]; then
    ok "one target: its JSON entry counts the run's 300 requests (sent, received, measured; log $la)"
else
    fail "one target's JSON entry: rc $rc, '$v', log $la; $(head -c 300 "$tmp/t0.err")"
fi
"$load" -c 8 -n 400 "127.0.0.1:$pa,weight=3" "127.0.0.1:$pb" --proto http >"$tmp/t3.txt" 2>&1
grep -q "^  target 1 .*weight 3, 6 connections" "$tmp/t3.txt" && grep -q "http requests (t1 75%, t2 25%)" "$tmp/t3.txt" && grep -q "^  target 2 .*weight 1, 2 connections" "$tmp/t3.txt" &&
    ok "human report: a line per target" || fail "human report per target: $(cat "$tmp/t3.txt")"

# bad target syntax: exit 2, the argument named
refuse() {
    want=$1
    shift
    "$load" "$@" >"$tmp/bad.out" 2>"$tmp/bad.err"
    rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$want" "$tmp/bad.err"; then ok "refused: $*: $(head -1 "$tmp/bad.err")"
    else fail "not refused as expected ($want): rc $rc: $*: $(cat "$tmp/bad.err")"; fi
}
refuse "target '127.0.0.1:$pa,weight=0': expected TARGET,weight=N with N from 1 to 1000" -n 1 "127.0.0.1:$pa,weight=0" "127.0.0.1:$pb"
refuse "target '127.0.0.1:$pa,weight=x'" -n 1 "127.0.0.1:$pa,weight=x"
refuse "target '127.0.0.1:$pa,w=2': expected HOST:PORT or URL" -n 1 "127.0.0.1:$pa,w=2"
refuse "--connections 1: fewer than the 2 targets" -n 1 "127.0.0.1:$pa" "127.0.0.1:$pb"
refuse "--preload: one target only" --proto memcache --preload -c 2 -n 1 "127.0.0.1:$pa" "127.0.0.1:$pb"
refuse "several targets: TCP only" -u -c 2 -n 1 "127.0.0.1:$pa" "127.0.0.1:$pb"
refuse "every URL target must have the same scheme" -c 2 -n 1 "http://127.0.0.1:$pa/" "https://127.0.0.1:$pb/"
refuse "--streams: goes with --h2" --streams 4 -n 1 "http://127.0.0.1:$pc/"
refuse "--h2: speaks HTTP/2 for --proto http" --h2 --proto memcache -n 1 "127.0.0.1:$pc"
refuse "-H 'Connection: close': a connection-specific header" --h2 -H 'Connection: close' -n 1 "http://127.0.0.1:$pc/"
refuse "--expect 'literal:x': --h2 checks the status only" --h2 --expect literal:x -n 1 "http://127.0.0.1:$pc/"
refuse "--data /nonexistent" --h2 --data /nonexistent -n 1 "http://127.0.0.1:$pc/post"

# ---- HTTP/2 ----
# h2 NAME LOG MIN_RECONNECTS ARGS...: one --h2 run; nginx's log must hold exactly the
# requests counted, all over HTTP/2.0
h2() {
    name=$1 log=$2 minrec=$3
    shift 3
    : >"$log"
    "$load" --h2 -j "$@" >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    n=$(lines "$log")
    n2=$(grep -c ' HTTP/2.0 ' "$log")
    v=$(jget "$tmp/$name.json" '"%d %d %d %d %d" % (r["errors"], r["counters"]["received"], r["counters"]["reconnects"], r["counters"]["status_2xx"], r["counters"]["resent"])')
    set -- $v
    if [ $rc -eq 0 ] && [ "${1:-x}" = 0 ] && [ "${2:-x}" = "$n" ] && [ "$n2" = "$n" ] && [ "${4:-x}" = "$n" ] &&
       [ "${3:-0}" -ge "$minrec" ]; then
        ok "$name: exit 0, 0 errors, $2 responses (2xx $4) = $n HTTP/2.0 lines of nginx's log, $3 reconnects, $5 resent"
    else
        fail "$name: rc $rc, errors/received/reconnects/2xx/resent '$v', nginx logged $n ($n2 HTTP/2.0); $(head -c 300 "$tmp/$name.err")"
    fi
}
h2 h2c-streams10 "$tmp/ngx/c.log" 0 --streams 10 -c 2 -n 5000 -d 20 "http://127.0.0.1:$pc/index.html"
h2 h2c-open "$tmp/ngx/c.log" 0 --streams 10 -c 4 -r 2000 -d 1 --drain 2 "http://127.0.0.1:$pc/index.html"
h2 h2c-goaway "$tmp/ngx/d.log" 48 --streams 10 -c 2 -n 5000 -d 20 "http://127.0.0.1:$pd/index.html"
h2 h2c-goaway-open "$tmp/ngx/d.log" 15 --streams 10 -c 4 -r 2000 -d 1 --drain 2 "http://127.0.0.1:$pd/index.html"
# the server allows 2 streams at once: more would be refused (counted as resent)
h2 h2c-max-streams-2 "$tmp/ngx/f.log" 0 --streams 10 -c 2 -n 2000 -d 20 "http://127.0.0.1:$pf/index.html"
rs=$(jget "$tmp/h2c-max-streams-2.json" 'r["counters"]["resent"]')
[ "$rs" = 0 ] && ok "SETTINGS_MAX_CONCURRENT_STREAMS 2 honoured: nothing refused" || fail "max streams 2: $rs resent"
h2 h2-tls "$tmp/ngx/e.log" 0 --streams 10 -c 2 -n 2000 -d 20 "https://127.0.0.1:$pe/index.html"
alpn=$(jget "$tmp/h2-tls.json" 'r["tls"]["negotiated"][0]["alpn"]')
[ "$alpn" = h2 ] && ok "h2 over TLS: ALPN h2 negotiated" || fail "h2 over TLS: ALPN '$alpn'"
head -c 3000 /dev/urandom >"$tmp/body.bin"
h2 h2c-post "$tmp/ngx/c.log" 0 --streams 4 -c 2 -n 1000 -d 20 --data "$tmp/body.bin" "http://127.0.0.1:$pc/post"
posts=$(awk '$3 == "POST" && $5 == 3000' "$tmp/ngx/c.log" | wc -l | tr -d ' ')
bs=$(jget "$tmp/h2c-post.json" 'r["counters"]["bytes_sent"]')
[ "$posts" = 1000 ] && [ "${bs:-0}" -ge 3000000 ] && ok "POST: nginx logged 1000 POSTs of Content-Length 3000; $bs bytes sent" ||
    fail "POST: nginx logged $posts POSTs of 3000 bytes, $bs bytes sent: $(head -3 "$tmp/ngx/c.log")"
"$load" --h2 -c 1 -n 20 "http://127.0.0.1:$pc/index.html" >"$tmp/human.txt" 2>&1
grep -q "HTTP/2 GET (h2c), 1 streams per connection" "$tmp/human.txt" && grep -q "^  status      2xx 20, 3xx 0, 4xx 0, 5xx 0" "$tmp/human.txt" &&
    ok "human report: HTTP/2 and the status classes" || fail "human report: $(cat "$tmp/human.txt")"

# a stream reset (nginx's return 444 over HTTP/2) is an error, named
"$load" --h2 -j -c 1 -n 10 -d 5 "http://127.0.0.1:$pc/reset" >"$tmp/reset.json" 2>"$tmp/reset.err"
rc=$?
v=$(jget "$tmp/reset.json" '"%d %d" % (r["counters"]["stream_reset"], r["errors"])')
fe=$(jget "$tmp/reset.json" 'r["first_error"]')
set -- $v
if [ $rc -eq 1 ] && [ "${1:-0}" = 10 ] && [ "${2:-0}" = 10 ] && echo "$fe" | grep -q "^stream_reset on connection 0: request 0 reset (RST_STREAM)"; then
    ok "stream resets: 10 stream_reset, exit 1, first error '$fe'"
else
    fail "stream resets: rc $rc, stream_reset/errors '$v', first error '$fe'"
fi

# a server that sends its SETTINGS (empty: no stream limit) and then never answers: the run
# ends within duration + drain, with --streams requests in flight on each connection
sport=$(free_port)
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $sport)); s.listen(8); s.settimeout(0.2); c = []; end = time.time() + 20
while time.time() < end:
    try:
        k = s.accept()[0]; k.sendall(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])); c.append(k)
    except socket.timeout:
        pass" &
spid=$!
pids="$pids $spid"
wait_port $sport
t0=$(date +%s)
"$load" --h2 -j --streams 5 -c 2 -d 1 --drain 1 "http://127.0.0.1:$sport/" >"$tmp/silent.json" 2>"$tmp/silent.err"
rc=$?
t1=$(date +%s)
un=$(jget "$tmp/silent.json" 'r["counters"]["unanswered"]')
if [ $rc -eq 1 ] && [ $((t1 - t0)) -le 5 ] && [ "${un:-0}" = 10 ]; then
    ok "silent server: ended after $((t1 - t0)) s, 10 streams unanswered (5 per connection: the --streams limit)"
else
    fail "silent server: rc $rc after $((t1 - t0)) s, unanswered '$un'; $(head -c 300 "$tmp/silent.err")"
fi
kill $spid 2>/dev/null

# hostile HTTP/2 servers (tests/h2_hostile.py): a response whose header block never ends,
# as endless small CONTINUATION frames or as 16 KB frames of headers. wharf-load names the
# error (h2_error), keeps nothing of the block (its peak RSS, measured by the kernel,
# stays small), replaces the connection after its backoff and ends on time.
for mode in continuation bigheader; do
    : >"$tmp/hostile-$mode.port"
    python3 "${WHARF_SRCDIR:-.}/tests/h2_hostile.py" $mode 30 >"$tmp/hostile-$mode.port" 2>"$tmp/hostile-$mode.err" &
    hpid=$!
    pids="$pids $hpid"
    i=0
    while [ $i -lt 100 ] && ! grep -q '^port ' "$tmp/hostile-$mode.port"; do sleep 0.05; i=$((i + 1)); done
    hp=$(sed -n 's/^port //p' "$tmp/hostile-$mode.port")
    python3 -c "
import resource, subprocess, sys, time
t = time.time()
with open(sys.argv[1], 'w') as out:
    rc = subprocess.call(sys.argv[2:], stdout=out, stderr=subprocess.DEVNULL)
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, int(time.time() - t))" \
        "$tmp/hostile-$mode.json" "$load" --h2 -j --streams 4 -c 4 -d 2 --drain 1 "http://127.0.0.1:$hp/" \
        >"$tmp/hostile-$mode.rss"
    set -- $(cat "$tmp/hostile-$mode.rss")
    rc=${1:-x} rss=${2:-0} took=${3:-99}
    v=$(jget "$tmp/hostile-$mode.json" '"%d %d %d" % (r["counters"]["h2_error"], r["counters"]["received"], r["counters"]["bytes_received"])')
    fe=$(jget "$tmp/hostile-$mode.json" 'r["first_error"]')
    set -- $v
    if [ "$rc" = 1 ] && [ "${1:-0}" -ge 4 ] && [ "${2:-x}" = 0 ] && [ "$rss" -lt 65536 ] && [ "$took" -le 5 ] &&
       echo "$fe" | grep -q "^h2_error: .*CONTINUATION"; then
        ok "endless header block ($mode): exit 1 after ${took}s, $1 h2_error ($3 bytes read), peak RSS $((rss / 1024)) MiB, first error '$fe'"
    else
        fail "endless header block ($mode): rc $rc, ${took}s, h2_error/received/bytes '$v', RSS ${rss} KiB, first error '$fe'"
    fi
    kill $hpid 2>/dev/null
done

# h2load side by side against the same server: both counts equal nginx's log
if command -v h2load >/dev/null; then
    : >"$tmp/ngx/c.log"
    h2load -n 2000 -c 2 -m 10 "http://127.0.0.1:$pc/index.html" >"$tmp/h2load.txt" 2>&1
    hl=$(lines "$tmp/ngx/c.log")
    grep -q "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded" "$tmp/h2load.txt" && [ "$hl" = 2000 ] &&
        ok "h2load -n 2000 -c 2 -m 10: 2000 succeeded = $hl lines" || fail "h2load: $hl lines; $(grep requests: "$tmp/h2load.txt")"
    h2 h2c-as-h2load "$tmp/ngx/c.log" 0 --streams 10 -c 2 -n 2000 "http://127.0.0.1:$pc/index.html"
else
    echo "SKIP: h2load comparison (Debian package nghttp2-client)"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
