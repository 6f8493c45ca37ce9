#!/bin/sh
# check_load_tls.sh - wharf-load --tls against real TLS servers started here:
# socat (OPENSSL-LISTEN ... PIPE: a TLS echo) and nginx (stream ssl proxying to
# a plain socat echo with an access log of SNI, ALPN and resumption; stream ssl
# `return`; http ssl), with a self-signed ECDSA P-256 certificate made at test
# time. Echo is byte-exact with exact counts, templates and http work over TLS,
# --tls-verify passes with the right CA and fails, named, with a wrong one or a
# wrong name, the server sees --sni and negotiates --alpn, --tls-resume on
# resumes and off does not, --churn 1 makes one handshake per connection,
# --handshake-only counts handshakes, and a garbage or stalling server ends the
# run on time with the errors counted, and memcache mode runs against memcached -Z.
# Bad TLS options are refused.
# Every server is ended by its pid; every wait is bounded.
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
    [ -n "${KEEP:-}" ] && cp -r "$tmp" /tmp/check_load_tls.keep
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
for prog in socat openssl python3; do
    command -v $prog >/dev/null || { echo "SKIP: $prog is needed (Debian packages socat openssl python3)"; exit 77; }
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
stream_so=/usr/lib/nginx/modules/ngx_stream_module.so
have_nginx=yes
{ [ -x "$nginx" ] && [ -f "$stream_so" ]; } || have_nginx=

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 5 s)
wait_port() {
    i=0
    while [ $i -lt 100 ] && ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), timeout=1).close()" 2>/dev/null; do
        sleep 0.05; i=$((i + 1))
    done
}
# jget FILE EXPR: a value of the JSON report in FILE (EXPR in Python over `r`)
jget() { python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, and an unrelated CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null || { echo "FAIL: openssl req"; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$tmp/other.key" -out "$tmp/other.pem" -subj /CN=other 2>/dev/null
cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/both.pem"

# socat TLS echo
ps=$(free_port)
socat OPENSSL-LISTEN:$ps,bind=127.0.0.1,reuseaddr,fork,cert="$tmp/both.pem",verify=0 PIPE 2>"$tmp/socat.log" &
pids="$pids $!"
wait_port "$ps"

# 1. echo over TLS, byte-exact, exact counts
"$load" --tls -c 4 -n 2000 -j 127.0.0.1:$ps >"$tmp/r1.json" 2>"$tmp/r1.err"
rc=$?
v=$(jget "$tmp/r1.json" '"%d %d %d %d %d %d %s" % (r["counters"]["measured"], r["counters"]["sent"], r["counters"]["received"], r["errors"], r["counters"]["bytes_sent"] - r["counters"]["bytes_received"], r["tls"]["handshakes"] - r["counters"]["connects"], r["tls"]["negotiated"][0]["version"])')
[ $rc -eq 0 ] && [ "$v" = "2000 2000 2000 0 0 0 TLSv1.3" ] && ok "echo over TLS: 2000 echoes byte-exact, one handshake per connection" ||
    fail "echo over TLS: rc $rc, got '$v' (measured sent received errors byte-diff hs-conn version)"

# 2. templates over TLS (line protocol against the echo)
"$load" --tls -c 2 -n 500 --request 'hello {seq} {rand:20}\n' --expect 'prefix:hello ' -q 127.0.0.1:$ps >"$tmp/r2.txt" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "errors 0" "$tmp/r2.txt" && ok "request templates over TLS" || fail "templates over TLS: rc $rc: $(cat "$tmp/r2.txt")"

# 3. --tls-verify: the right CA (name localhost checked) passes, a wrong CA or name fails, named
"$load" --tls --tls-verify="$tmp/cert.pem" -c 1 -n 100 -q localhost:$ps >"$tmp/r3.txt" 2>&1
rc=$?
[ $rc -eq 0 ] && ok "--tls-verify with the right CA passes" || fail "--tls-verify right CA: rc $rc: $(cat "$tmp/r3.txt")"
"$load" --tls --tls-verify="$tmp/other.pem" -c 1 -d 0.5 -j 127.0.0.1:$ps >"$tmp/r4.json" 2>&1
rc=$?
v=$(jget "$tmp/r4.json" '"%d %d" % (r["tls"]["failed_by_reason"]["tls_verify"] > 0, r["tls"]["handshakes"])')
e=$(jget "$tmp/r4.json" 'r["first_error"]')
[ $rc -eq 1 ] && [ "$v" = "1 0" ] && case "$e" in *"certificate verify failed"*) true ;; *) false ;; esac &&
    ok "--tls-verify with a wrong CA: tls_verify counted, '$e'" || fail "--tls-verify wrong CA: rc $rc, '$v', '$e'"
"$load" --tls --tls-verify="$tmp/cert.pem" --sni wrong.example -c 1 -d 0.3 -j 127.0.0.1:$ps >"$tmp/r5.json" 2>&1
e=$(jget "$tmp/r5.json" 'r["first_error"]')
case "$e" in *"hostname mismatch"*) ok "--tls-verify checks the name: '$e'" ;; *) fail "--tls-verify name: '$e'" ;; esac

# 4. bad input is refused before anything starts (exit 2, the option named)
for args in "--sni x 127.0.0.1:$ps" "--tls -u 127.0.0.1:$ps" "--tls --alpn h2,,x 127.0.0.1:$ps" \
    "--tls --tls-resume maybe 127.0.0.1:$ps" "--tls --tls-verify=$tmp/none.pem 127.0.0.1:$ps" \
    "--tls --handshake-only -r 100 127.0.0.1:$ps"; do
    # shellcheck disable=SC2086
    "$load" $args >"$tmp/bad.txt" 2>&1
    rc=$?
    [ $rc -eq 2 ] && grep -q -- "--" "$tmp/bad.txt" && ok "refused ($args): $(head -1 "$tmp/bad.txt")" ||
        fail "not refused ($args): rc $rc"
done

# 5. a server that sends garbage, and one that never finishes the handshake: errors counted,
# the run ends on time
pg=$(free_port)
socat TCP-LISTEN:$pg,bind=127.0.0.1,reuseaddr,fork SYSTEM:'printf "garbage instead of a ServerHello\r\n"; sleep 1' 2>/dev/null &
pids="$pids $!"
pst=$(free_port)
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $pst)); s.listen(64); time.sleep(60)" &
pids="$pids $!"
wait_port "$pg"
wait_port "$pst"
start=$(date +%s)
"$load" --tls -c 2 -d 1 -j 127.0.0.1:$pg >"$tmp/r6.json" 2>&1
rc=$?
v=$(jget "$tmp/r6.json" 'r["tls"]["failed_by_reason"]["tls_handshake"] > 0')
e=$(jget "$tmp/r6.json" 'r["first_error"]')
[ $rc -eq 1 ] && [ "$v" = True ] && ok "garbage server: tls_handshake counted, '$e'" || fail "garbage server: rc $rc, '$v', '$e'"
"$load" --tls -c 2 -d 1 --handshake-timeout 300ms -j 127.0.0.1:$pst >"$tmp/r7.json" 2>&1
rc=$?
end=$(date +%s)
v=$(jget "$tmp/r7.json" 'r["tls"]["failed_by_reason"]["tls_handshake_timeout"] > 0')
[ $rc -eq 1 ] && [ "$v" = True ] && [ $((end - start)) -le 8 ] &&
    ok "stalling server: tls_handshake_timeout counted, both runs ended in $((end - start)) s" ||
    fail "stalling server: rc $rc, '$v', $((end - start)) s"

if [ -z "$have_nginx" ]; then
    echo "SKIP (the nginx part): nginx with $stream_so is needed (Debian packages nginx-light libnginx-mod-stream)"
else
    # nginx: stream ssl in front of a plain socat echo (access log: SNI, ALPN, reuse), stream
    # ssl `return`, and http ssl. One process (master_process off), ended by its pid.
    pe=$(free_port); pn=$(free_port); pr=$(free_port); ph=$(free_port)
    socat TCP-LISTEN:$pe,bind=127.0.0.1,reuseaddr,fork PIPE 2>/dev/null &
    pids="$pids $!"
    mkdir -p "$tmp/ngx/logs"
    cat >"$tmp/ngx/nginx.conf" <<CONF
load_module $stream_so;
daemon off;
master_process off;
user $(id -un) $(id -gn);
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log info;
events { worker_connections 1024; }
stream {
    log_format t '\$ssl_server_name|\$ssl_alpn_protocol|\$ssl_session_reused|\$ssl_protocol';
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    server {
        listen 127.0.0.1:$pn ssl;
        ssl_alpn h2 http/1.1;
        access_log $tmp/ngx/stream.log t;
        proxy_pass 127.0.0.1:$pe;
    }
    server {
        listen 127.0.0.1:$pr ssl;
        return "x";
    }
}
http {
    access_log off;
    client_body_temp_path $tmp/ngx/body;
    proxy_temp_path $tmp/ngx/proxy;
    fastcgi_temp_path $tmp/ngx/fastcgi;
    uwsgi_temp_path $tmp/ngx/uwsgi;
    scgi_temp_path $tmp/ngx/scgi;
    server {
        listen 127.0.0.1:$ph ssl;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        location / { return 200 "hello over tls\n"; }
    }
}
CONF
    "$nginx" -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" 2>>"$tmp/ngx/error.log" &
    pids="$pids $!"
    wait_port "$pe"
    wait_port "$pn"
    wait_port "$ph"

    # 6. SNI seen by the server, ALPN negotiated
    : >"$tmp/ngx/stream.log"
    "$load" --tls --sni sni.wharf.test --alpn h2,http/1.1 -c 2 -n 200 -j 127.0.0.1:$pn >"$tmp/r8.json" 2>&1
    rc=$?
    v=$(jget "$tmp/r8.json" '"%s %s %d" % (r["tls"]["negotiated"][0]["alpn"], r["tls"]["sni"], r["errors"])')
    [ $rc -eq 0 ] && [ "$v" = "h2 sni.wharf.test 0" ] && ok "--alpn h2 negotiated (report: $v)" || fail "--alpn: rc $rc, '$v'"
    i=0
    while [ $i -lt 40 ] && [ "$(grep -c . "$tmp/ngx/stream.log")" -lt 2 ]; do sleep 0.05; i=$((i + 1)); done
    [ "$(grep -c '^sni.wharf.test|h2|' "$tmp/ngx/stream.log")" -eq 2 ] && ok "--sni seen by nginx (\$ssl_server_name), alpn h2 in its log" ||
        fail "--sni/--alpn in nginx's log: $(cat "$tmp/ngx/stream.log")"

    # 7. resumption on and off; --churn 1: one handshake per connection
    "$load" --tls --tls-resume on --churn 1 -c 2 -d 1 -j 127.0.0.1:$pn >"$tmp/r9.json" 2>&1
    rc=$?
    # (a connection may be cut by the end of the run inside its handshake: connects counts
    # it, handshakes not, so each of the 2 slots may have one connect more)
    v=$(jget "$tmp/r9.json" '"%d %d %d" % (r["tls"]["resumed"] > 0, 0 <= r["counters"]["connects"] - r["tls"]["handshakes"] <= 2 and r["tls"]["handshakes"] <= r["counters"]["churn_closes"] + 2, r["errors"])')
    n=$(jget "$tmp/r9.json" 'r["tls"]["resumed"]')
    [ $rc -eq 0 ] && [ "$v" = "1 1 0" ] && ok "--tls-resume on: $n handshakes resumed; --churn 1: one handshake per connection" ||
        fail "--tls-resume on: rc $rc, '$v': $(jget "$tmp/r9.json" 'r["tls"], r["counters"]')"
    grep -q '|r|' "$tmp/ngx/stream.log" && ok "nginx logged resumed sessions" || fail "nginx saw no resumed session"
    "$load" --tls --tls-resume off --churn 1 -c 2 -d 1 -j 127.0.0.1:$pn >"$tmp/r10.json" 2>&1
    rc=$?
    v=$(jget "$tmp/r10.json" '"%d %d %d" % (r["tls"]["resumed"], 0 <= r["counters"]["connects"] - r["tls"]["handshakes"] <= 2 and r["tls"]["handshakes"] > 10, r["errors"])')
    [ $rc -eq 0 ] && [ "$v" = "0 1 0" ] && ok "--tls-resume off: 0 resumed, one full handshake per connection" ||
        fail "--tls-resume off: rc $rc, '$v': $(jget "$tmp/r10.json" 'r["tls"], r["counters"]')"

    # 8. --handshake-only: connect, handshake, close; resumed too (waiting for the TLS 1.3 ticket)
    "$load" --tls --handshake-only -c 2 -d 1 -j 127.0.0.1:$pr >"$tmp/r11.json" 2>&1
    rc=$?
    v=$(jget "$tmp/r11.json" '"%d %d %d %d" % (r["tls"]["handshakes"] == r["counters"]["received"], r["counters"]["measured"] > 10, r["tls"]["resumed"], r["errors"])')
    hs=$(jget "$tmp/r11.json" 'round(r["rate"])')
    [ $rc -eq 0 ] && [ "$v" = "1 1 0 0" ] && ok "--handshake-only: $hs full handshakes/s, each counted once" ||
        fail "--handshake-only: rc $rc, '$v': $(jget "$tmp/r11.json" 'r["tls"], r["counters"]')"
    "$load" --tls --handshake-only --tls-resume on -c 2 -d 1 -j 127.0.0.1:$pr >"$tmp/r12.json" 2>&1
    rc=$?
    v=$(jget "$tmp/r12.json" '"%d %d" % (r["tls"]["resumed"] >= r["tls"]["handshakes"] - 2 and r["tls"]["handshakes"] > 10, r["errors"])')
    hs=$(jget "$tmp/r12.json" 'round(r["rate"])')
    [ $rc -eq 0 ] && [ "$v" = "1 0" ] && ok "--handshake-only --tls-resume on: all but the first per connection resumed ($hs/s)" ||
        fail "--handshake-only resume: rc $rc, '$v': $(jget "$tmp/r12.json" 'r["tls"], r["counters"]')"

    # 9. http over TLS
    "$load" --tls --proto http --path / --expect status:200 -c 2 -p 2 -n 300 -q 127.0.0.1:$ph >"$tmp/r13.txt" 2>&1
    rc=$?
    [ $rc -eq 0 ] && ok "--proto http over TLS: $(cat "$tmp/r13.txt")" || fail "http over TLS: rc $rc: $(cat "$tmp/r13.txt")"
fi

# 10. memcached's own TLS (-Z, memcached 1.6), --proto memcache, resumed every 50 requests
if command -v memcached >/dev/null && memcached -h 2>/dev/null | grep -q -- '--enable-ssl'; then
    pm=$(free_port)
    muser=
    [ "$(id -u)" -eq 0 ] && muser="-u daemon"
    # shellcheck disable=SC2086
    memcached $muser -Z -o ssl_chain_cert="$tmp/cert.pem",ssl_key="$tmp/key.pem" -l 127.0.0.1 \
        -p "$pm" -U 0 -t 1 2>/dev/null &
    pids="$pids $!"
    wait_port "$pm"
    "$load" --tls --proto memcache --churn 50 --tls-resume on -c 2 -n 1000 -j 127.0.0.1:$pm >"$tmp/r14.json" 2>&1
    rc=$?
    v=$(jget "$tmp/r14.json" '"%d %d %d" % (r["counters"]["measured"], r["tls"]["resumed"] > 0, r["errors"])')
    [ $rc -eq 0 ] && [ "$v" = "1000 1 0" ] && ok "--proto memcache over memcached -Z, resumed every 50 requests" ||
        fail "memcached -Z: rc $rc, '$v'"
else
    echo "SKIP (the memcached part): memcached with TLS (-Z) is needed"
fi

echo "passed $passed, failed $failed"
[ $failed -eq 0 ]
