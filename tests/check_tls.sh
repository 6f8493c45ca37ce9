#!/bin/sh
# check_tls.sh - TLS on TCP listeners, with certificates made at test time
# (openssl req / x509 into a temp dir: a CA, ECDSA P-256 and RSA-2048
# leaves, a wildcard, client certificates from the CA and from another CA,
# an expired certificate, a mismatched key) and real clients:
#   - wharfd -t: good files pass; a key others may read is warned about; an
#     expired certificate, a mismatched key, a missing or non-PEM file, a
#     bad cipher list, verify without ca, tls on UDP are refused naming the
#     file (or the JSON path) and the reason; a start with one fails too;
#   - openssl s_client: TLS 1.2 and 1.3 echo, ALPN, SNI picking the right
#     certificate (subject and key size checked; a wildcard covers one
#     label), client certificates with verify "require" (none: alert; one
#     from another CA: alert; a good one: echo), renegotiation refused;
#   - curl against the tlsinfo test handler (an HTTP answer);
#   - Python ssl (tls_client.py): 1 MiB echo byte-exact, the handler's view
#     (wharf_conn_tls_info), half-close both ways with close_notify, the
#     handler contract over TLS (splits at every byte, partial consumption,
#     back-pressure, a close from the handler, shutdown_write), PROXY v2
#     before the ClientHello, and hostile clients (garbage instead of a
#     ClientHello: closed, logged once a second; a stalled handshake:
#     closed at handshake_ms; a 16 KiB record byte by byte; a close without
#     close_notify) while other clients are served;
#   - SIGHUP rotates the certificate (a new connection sees the new serial,
#     an open one keeps echoing); a mismatched key refuses the reload
#     (wharf_reloads_failed_total, the message names the file) and the old
#     certificate keeps serving;
#   - metrics: handshakes by version, failures by reason, the latency
#     histogram; the access log's $tls_version and $tls_sni;
#   - a graceful stop tells the handler (on_shutdown) and ends with
#     close_notify.
set -u
build=${WHARF_BUILDDIR:-.}
src=${WHARF_SRCDIR:-.}
wharfd=${WHARFD:-$build/wharfd} # WHARFD: a wrapper to run instead (valgrind)
mods=${WHARF_TEST_MODULES:-$build/tests/.libs}
tmp=$(mktemp -d)
pid=
passed=0
failed=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] && cp -r "$tmp" /tmp/tls-keep
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
for tool in openssl python3 curl; do
    if ! command -v $tool >/dev/null; then
        echo "SKIP: $tool is needed (Debian packages openssl, python3, curl)"
        exit 77
    fi
done
cd "$tmp" || exit 1

# ---- certificates ----------------------------------------------------------------
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
# sign NAME KEY SUBJECT SAN SERIAL DAYS [CA]: NAME.crt signed by the CA
sign() {
    ca=${7:-ca}
    openssl req -new -key "$2" -subj "$3" -out "$1.csr" 2>/dev/null
    if [ -n "$4" ]; then printf 'subjectAltName=%s\n' "$4" >"$1.ext"; else : >"$1.ext"; fi
    openssl x509 -req -in "$1.csr" -CA "$ca.crt" -CAkey "$ca.key" -set_serial "$5" \
        -days "$6" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
ec ca.key
openssl req -x509 -new -key ca.key -subj "/CN=wharf test CA" -days 30 -out ca.crt 2>/dev/null
ec other.key
openssl req -x509 -new -key other.key -subj "/CN=other CA" -days 30 -out other.crt 2>/dev/null
ec leaf.key
sign leaf leaf.key "/CN=localhost" "DNS:localhost,IP:127.0.0.1" 4097 30
sign leaf2 leaf.key "/CN=localhost" "DNS:localhost,IP:127.0.0.1" 4098 30
rsa rsa.key
sign rsa rsa.key "/CN=rsa.test" "DNS:rsa.test" 4099 30
ec wild.key
sign wild wild.key "/CN=wild" "DNS:*.wild.test" 4100 30
ec alice.key
sign alice alice.key "/CN=alice/O=wharf tests" "" 8193 30
ec mallory.key
sign mallory mallory.key "/CN=mallory" "" 8194 30 other
sign expired leaf.key "/CN=localhost" "DNS:localhost" 4101 -1
chmod 600 ./*.key
if [ ! -s leaf.crt ] || [ ! -s rsa.crt ] || [ ! -s expired.crt ] || [ ! -s mallory.crt ]; then
    echo "FAIL: openssl could not make the test certificates"
    exit 1
fi
cp leaf.crt serve.crt
cp leaf.key serve.key
echo "garbage, not PEM" >garbage.pem

# ---- wharfd -t ---------------------------------------------------------------------
# tconf FILE TLS-OBJECT [PROTOCOL]
tconf() {
    printf '{"workers": 1, "listeners": [{"port": 0, "protocol": "%s", "handler": "%s", "tls": %s}]}\n' \
        "${3:-tcp}" "${4:-echo}" "$2" >"$1"
}
# refused NAME CONFIG TEXT...: wharfd -t fails, and its message has every TEXT
refused() {
    name=$1 conf=$2
    shift 2
    out=$("$wharfd" -t -c "$conf" 2>&1) && { fail "$name: -t accepted it"; return; }
    for want in "$@"; do
        case $out in
        *"$want"*) ;;
        *) fail "$name: message lacks \"$want\": $out"; return ;;
        esac
    done
    ok "$name: $(echo "$out" | tail -1)"
}
tconf good.json '{"cert": "leaf.crt", "key": "leaf.key"}'
out=$("$wharfd" -t -c good.json 2>&1)
case $out in
*"configuration OK"*) case $out in *readable*) fail "-t: warned about a 0600 key: $out" ;;
                      *) ok "-t: good certificate and key" ;; esac ;;
*) fail "-t: good files refused: $out" ;;
esac
cp leaf.key open.key
chmod 644 open.key
tconf open.json '{"cert": "leaf.crt", "key": "open.key"}'
out=$("$wharfd" -t -c open.json 2>&1)
case $out in
*"open.key is readable by others (mode 0644)"*)
    case $out in *"configuration OK"*) ok "-t: a key others may read is warned about" ;;
    *) fail "-t: a 0644 key refused: $out" ;; esac ;;
*) fail "-t: no warning for a 0644 key: $out" ;;
esac
tconf expired.json '{"cert": "expired.crt", "key": "leaf.key"}'
refused "-t: expired certificate" expired.json "listeners[0].tls.cert" "$tmp/expired.crt" \
    "certificate has expired"
tconf mismatch.json '{"cert": "leaf.crt", "key": "rsa.key"}'
refused "-t: mismatched key" mismatch.json "listeners[0].tls.key" "$tmp/rsa.key" \
    "$tmp/leaf.crt"
tconf missing.json '{"cert": "nonesuch.crt", "key": "leaf.key"}'
refused "-t: missing certificate" missing.json "$tmp/nonesuch.crt" "No such file or directory"
chmod 000 open.key
if [ "$(id -u)" != 0 ]; then
    tconf unreadable.json '{"cert": "leaf.crt", "key": "open.key"}'
    refused "-t: unreadable key" unreadable.json "$tmp/open.key" "Permission denied"
fi
tconf garbage.json '{"cert": "garbage.pem", "key": "leaf.key"}'
refused "-t: not PEM" garbage.json "listeners[0].tls.cert" "$tmp/garbage.pem"
tconf sni.json '{"cert": "leaf.crt", "key": "leaf.key", "sni": [{"cert": "rsa.crt", "key": "leaf.key"}]}'
refused "-t: mismatched sni key" sni.json "listeners[0].tls.sni[0].key" "$tmp/leaf.key"
tconf ciphers.json '{"cert": "leaf.crt", "key": "leaf.key", "ciphers": "NOSUCHCIPHER"}'
refused "-t: unknown ciphers" ciphers.json "listeners[0].tls.ciphers"
tconf verify.json '{"cert": "leaf.crt", "key": "leaf.key", "verify": "require"}'
refused "-t: verify without ca" verify.json "listeners[0].tls.ca: missing"
tconf nokey.json '{"cert": "leaf.crt"}'
refused "-t: no key" nokey.json "listeners[0].tls.key: missing"
tconf version.json '{"cert": "leaf.crt", "key": "leaf.key", "min_version": "1.1"}'
refused "-t: TLS 1.1" version.json "listeners[0].tls.min_version: expected \"1.2\" or \"1.3\""
tconf udp.json '{"cert": "leaf.crt", "key": "leaf.key"}' udp udp_echo
refused "-t: tls on udp" udp.json "listeners[0].tls: expected only on a tcp listener"
tconf alpn.json '{"cert": "leaf.crt", "key": "leaf.key", "alpn": ["h2", ""]}'
refused "-t: empty ALPN name" alpn.json "listeners[0].tls.alpn[1]"
# -T shows the tls object with its defaults.
"$wharfd" -T -c good.json >dump.json 2>/dev/null
if python3 -c '
import json, sys
t = json.load(open("dump.json"))["listeners"][0]["tls"]
assert t["verify"] == "none" and t["min_version"] == "1.2" and t["session_tickets"] is True, t
assert t["cert"].endswith("/leaf.crt"), t
'; then ok "-T: the tls object with its defaults"; else fail "-T: $(cat dump.json)"; fi
out=$("$wharfd" -c expired.json 2>&1) && fail "start with an expired certificate" ||
    case $out in *"certificate has expired"*) ok "a start with an expired certificate fails" ;;
    *) fail "start: $out" ;; esac

# ---- the server --------------------------------------------------------------------
contract=$mods/mod_contract.so
tls='"cert": "serve.crt", "key": "serve.key"'
sni='"sni": [{"cert": "rsa.crt", "key": "rsa.key"}, {"cert": "wild.crt", "key": "wild.key"}]'
to='"timeouts": {"handshake_ms": 1000}'
# Fixed free ports (a reload matches listeners by port: several "port": 0
# listeners would all match the first).
ports=$(python3 -c '
import socket
ss = [socket.socket() for _ in range(13)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
for l in echo info mtls tls12 proxy line upper big halfclose eofkeep goodbye plain metrics; do
    eval "p_$l=$1"
    shift
done
cat >w.json <<JSON
{"workers": 2, "shutdown_timeout_ms": 3000, "listeners": [
 {"name": "echo", "port": $p_echo, "handler": "echo", $to, "access_log_file": "access.log",
  "access_log_format": "\$listener \$tls_version \$tls_sni \$close_reason",
  "tls": {$tls, $sni, "alpn": ["h2", "http/1.1"]}},
 {"name": "info", "port": $p_info, "handler": "$contract", "options": {"mode": "tlsinfo"},
  "tls": {$tls, $sni, "alpn": ["http/1.1", "h2"], "ca": "ca.crt", "verify": "optional"}},
 {"name": "mtls", "port": $p_mtls, "handler": "echo", $to,
  "tls": {$tls, "ca": "ca.crt", "verify": "require"}},
 {"name": "tls12", "port": $p_tls12, "handler": "echo", "tls": {$tls, "max_version": "1.2"}},
 {"name": "proxy", "port": $p_proxy, "handler": "$contract", "options": {"mode": "peer"},
  "proxy_protocol": "v2", "tls": {$tls}},
 {"name": "line", "port": $p_line, "handler": "$contract", "options": {"mode": "line"}, "tls": {$tls}},
 {"name": "upper", "port": $p_upper, "handler": "$contract", "options": {"mode": "upper"}, "tls": {$tls}},
 {"name": "big", "port": $p_big, "handler": "$contract", "options": {"mode": "big"}, "tls": {$tls}},
 {"name": "halfclose", "port": $p_halfclose, "handler": "$contract", "options": {"mode": "halfclose"},
  "tls": {$tls}},
 {"name": "eofkeep", "port": $p_eofkeep, "handler": "$contract", "options": {"mode": "eofkeep"},
  "tls": {$tls}},
 {"name": "goodbye", "port": $p_goodbye, "handler": "$contract", "options": {"mode": "goodbye"},
  "tls": {$tls}},
 {"name": "plain", "port": $p_plain, "handler": "$contract", "options": {"mode": "tlsinfo"}},
 {"name": "metrics", "port": $p_metrics, "handler": "metrics"}
]}
JSON
"$wharfd" -c w.json 2>server.log &
pid=$!
i=0
while [ $i -lt 200 ] && ! grep -q "started:" server.log; do sleep 0.05; i=$((i + 1)); done
if ! grep -q "started:" server.log; then
    fail "wharfd did not start: $(cat server.log)"
    echo "$passed passed, $failed failed"
    exit 1
fi
grep -q "kernel TLS" server.log && [ "$(grep -c 'kernel TLS' server.log)" = 1 ] &&
    ok "kernel TLS: said once at the start" || fail "kernel TLS line: $(grep -c 'kernel TLS' server.log)"

# sc PORT ARGS...: one line through openssl s_client, its whole output
sc() {
    p=$1
    shift
    (printf 'hello\n'; sleep 0.4) | timeout 10 openssl s_client -connect 127.0.0.1:"$p" \
        -CAfile ca.crt -verify_return_error "$@" 2>&1
}
out=$(sc "$p_echo" -tls1_2 -servername localhost)
case $out in *"Protocol  : TLSv1.2"*"hello"*) ok "s_client -tls1_2: echo" ;;
*) fail "s_client -tls1_2: $out" ;; esac
out=$(sc "$p_echo" -tls1_3 -servername localhost)
case $out in *"TLSv1.3"*"Verify return code: 0 (ok)"*"hello"*) ok "s_client -tls1_3: echo, verified" ;;
*) fail "s_client -tls1_3: $out" ;; esac
out=$(sc "$p_tls12" -tls1_3)
case $out in *"hello"*) fail "max_version 1.2 took a TLS 1.3 client" ;;
*) ok "max_version 1.2 refuses a TLS 1.3-only client" ;; esac
out=$(sc "$p_echo" -alpn "http/1.1,h2")
case $out in *"ALPN protocol: h2"*) ok "ALPN: the server's preference (h2)" ;;
*) fail "ALPN: $out" ;; esac
out=$(sc "$p_echo" -alpn "spdy/1")
case $out in *"No ALPN negotiated"*"hello"*) ok "ALPN: nothing in common goes on without" ;;
*) fail "ALPN none: $out" ;; esac
# SNI: the subject of the certificate the server sent.
subject() { echo "$1" | sed -n 's/^subject=\(.*\)/\1/p' | head -1; }
out=$(sc "$p_echo" -servername rsa.test)
case "$(subject "$out")" in *"CN = rsa.test"*)
    case $out in *"Server public key is 2048 bit"*"hello"*) ok "SNI rsa.test: the RSA-2048 certificate" ;;
    *) fail "SNI rsa.test: $out" ;; esac ;;
*) fail "SNI rsa.test: subject $(subject "$out")" ;; esac
out=$(sc "$p_echo" -servername a.wild.test)
case "$(subject "$out")" in *"CN = wild"*) ok "SNI a.wild.test: the wildcard certificate" ;;
*) fail "SNI a.wild.test: subject $(subject "$out")" ;; esac
out=$(timeout 10 openssl s_client -connect 127.0.0.1:"$p_echo" -servername a.b.wild.test </dev/null 2>&1)
case "$(subject "$out")" in *"CN = localhost"*) ok "SNI a.b.wild.test: a wildcard covers one label only (default)" ;;
*) fail "SNI a.b.wild.test: subject $(subject "$out")" ;; esac
out=$(sc "$p_echo" -noservername)
case "$(subject "$out")" in *"CN = localhost"*) ok "no SNI: the listener's certificate (ECDSA P-256)" ;;
*) fail "no SNI: subject $(subject "$out")" ;; esac
case $out in *"Server public key is 256 bit"*) ok "the listener's key is P-256" ;;
*) fail "no SNI: key size: $out" ;; esac
# Client certificates.
out=$(sc "$p_mtls" -tls1_3)
case $out in *"hello"*) fail "verify require: echo without a client certificate" ;;
*"alert certificate required"*) ok "verify require: no certificate gets an alert (certificate required)" ;;
*) fail "verify require without a certificate: $out" ;; esac
out=$(sc "$p_mtls" -tls1_2)
case $out in *"hello"*) fail "verify require (1.2): echo without a client certificate" ;;
*"alert handshake failure"*) ok "verify require (TLS 1.2): no certificate gets an alert" ;;
*) fail "verify require 1.2 without a certificate: $out" ;; esac
out=$(sc "$p_mtls" -cert mallory.crt -key mallory.key)
case $out in *"hello"*) fail "verify require: echo with another CA's certificate" ;;
*"alert unknown ca"*) ok "verify require: another CA's certificate gets an alert (unknown ca)" ;;
*) fail "verify require, wrong CA: $out" ;; esac
out=$(sc "$p_mtls" -cert alice.crt -key alice.key)
case $out in *"hello"*) ok "verify require: a good client certificate, echo" ;;
*) fail "verify require with a good certificate: $out" ;; esac
# Renegotiation (TLS 1.2; "R" asks s_client to renegotiate).
out=$( (printf 'one\n'; sleep 0.3; printf 'R\n'; sleep 0.5; printf 'two\n'; sleep 0.3) |
    timeout 10 openssl s_client -connect 127.0.0.1:"$p_echo" -tls1_2 -CAfile ca.crt 2>&1)
case $out in *"RENEGOTIATING"*"no renegotiation"*) ok "renegotiation refused (no_renegotiation alert)" ;;
*"RENEGOTIATING"*"two"*) fail "renegotiation went through: $out" ;;
*"RENEGOTIATING"*) ok "renegotiation refused ($(echo "$out" | grep -i -m1 'alert\|error'))" ;;
*) fail "renegotiation: $out" ;; esac
# curl against the HTTP-ish tlsinfo handler.
out=$(curl -sS --max-time 10 --cacert ca.crt --resolve "localhost:$p_info:127.0.0.1" \
    "https://localhost:$p_info/" 2>&1)
case $out in "tls TLSv1.3 "*"alpn=http/1.1 sni=localhost subject= verified=0"*) ok "curl: $out" ;;
*) fail "curl: $out" ;; esac
out=$(curl -sS --max-time 10 --tlsv1.2 --tls-max 1.2 --cacert ca.crt --cert alice.crt \
    --key alice.key --resolve "localhost:$p_info:127.0.0.1" "https://localhost:$p_info/" 2>&1)
case $out in "tls TLSv1.2 ECDHE-ECDSA-"*"sni=localhost subject=/CN=alice/O=wharf tests verified=1"*)
    ok "curl (TLS 1.2, client certificate): $out" ;;
*) fail "curl with a client certificate: $out" ;; esac

# ---- Python clients ----------------------------------------------------------------
python3 "$src/tests/tls_client.py" "$tmp" "$p_echo" "$p_info" "$p_proxy" "$p_line" \
    "$p_upper" "$p_big" "$p_halfclose" "$p_eofkeep" "$p_plain" >py.out 2>&1
while read -r line; do
    case $line in
    ok:*) ok "${line#ok: }" ;;
    FAIL:*) fail "${line#FAIL: }" ;;
    garbage_seconds*) ;;
    *) echo "$line" ;;
    esac
done <py.out
grep -q "^ok: .*all done" py.out || fail "tls_client.py did not finish: $(tail -5 py.out)"
# Garbage instead of a ClientHello (an HTTP request): at most a line a second
# per worker (two).
secs=$(sed -n 's/^garbage_seconds \([0-9]*\)$/\1/p' py.out)
n=$(grep -c "TLS handshake with .* failed: http request" server.log)
if [ "$n" -ge 1 ] && [ "$n" -le $((2 * ${secs:-1})) ]; then
    ok "garbage clients: $n rate-limited log lines for 20 clients in ${secs:-?} s"
else
    fail "garbage clients: $n log lines in ${secs:-?} s: $(grep 'TLS handshake' server.log | head -5)"
fi

# ---- reload: rotation, and a refused one ---------------------------------------------
serial() {
    timeout 10 openssl s_client -connect 127.0.0.1:"$1" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null
}
before=$(serial "$p_echo")
[ "$before" = "serial=1001" ] && ok "serial before the rotation: $before" || fail "serial before: $before"
python3 "$src/tests/tls_client.py" "$tmp" hold "$p_echo" >hold.out 2>&1 &
holder=$!
i=0
while [ $i -lt 100 ] && ! grep -q "holding" hold.out; do sleep 0.05; i=$((i + 1)); done
cp leaf2.crt serve.crt
kill -HUP "$pid"
i=0
while [ $i -lt 100 ] && ! grep -q "reloaded" server.log; do sleep 0.05; i=$((i + 1)); done
after=$(serial "$p_echo")
[ "$after" = "serial=1002" ] && ok "SIGHUP: a new connection gets the new certificate ($after)" ||
    fail "serial after the rotation: $after ($(grep -i reload server.log))"
cp rsa.key serve.key
kill -HUP "$pid"
i=0
while [ $i -lt 100 ] && ! grep -q "reload.*refused\|reload failed\|does not match" server.log; do
    sleep 0.05; i=$((i + 1))
done
if grep "does not match" server.log | grep -q "$tmp/serve.key"; then
    ok "a mismatched key refuses the reload, naming the file"
else
    fail "mismatched key at reload: $(grep -i reload server.log)"
fi
again=$(serial "$p_echo")
[ "$again" = "serial=1002" ] && ok "after the refused reload the old certificate serves" ||
    fail "serial after the refused reload: $again"
touch release.flag
wait "$holder"
case $(cat hold.out) in *"ok: open connection"*) ok "an open connection kept echoing across both reloads" ;;
*) fail "held connection: $(cat hold.out)" ;; esac
metrics=$(curl -sS --max-time 5 "http://127.0.0.1:$p_metrics/metrics")
m() { echo "$metrics" | grep -v '^#' | grep -F "$1" | awk '{print $2}' | head -1; }
[ "$(m 'wharf_reloads_failed_total ')" = 1 ] && ok "wharf_reloads_failed_total 1" ||
    fail "wharf_reloads_failed_total: $(m 'wharf_reloads_failed_total ')"
v13=$(m 'wharf_tls_handshakes_total{listener="echo",version="TLSv1.3"}')
v12=$(m 'wharf_tls_handshakes_total{listener="echo",version="TLSv1.2"}')
[ "${v13:-0}" -ge 5 ] && [ "${v12:-0}" -ge 2 ] && ok "handshakes by version: 1.3 $v13, 1.2 $v12" ||
    fail "handshakes by version: 1.3 $v13, 1.2 $v12"
for r in protocol timeout eof; do
    n=$(m "wharf_tls_handshakes_failed_total{listener=\"echo\",reason=\"$r\"}")
    [ "${n:-0}" -ge 1 ] && ok "failed handshakes, reason $r: $n" || fail "failed handshakes, reason $r: $n"
done
n=$(m 'wharf_tls_handshakes_failed_total{listener="mtls",reason="certificate"}')
[ "${n:-0}" -ge 3 ] && ok "failed handshakes, reason certificate (mtls): $n" ||
    fail "failed handshakes, certificate: $n"
n=$(m 'wharf_tls_handshake_duration_seconds_count{listener="echo"}')
[ "${n:-0}" -ge 5 ] && ok "handshake latency histogram: $n" || fail "handshake histogram: $n"
n=$(m 'wharf_tls_sessions_resumed_total{listener="info"}')
[ "${n:-0}" -ge 1 ] && ok "resumed sessions counted: $n" || fail "resumed: $n"
echo "$metrics" | grep -q 'wharf_tls_handshakes_total{listener="plain"' &&
    fail "a plain listener has TLS series" || ok "no TLS series for a plain listener"
if grep -q "^echo TLSv1.3 localhost eof" access.log && grep -q "^echo TLSv1.2 - " access.log &&
    grep -q "^echo TLSv1.3 rsa.test " access.log; then
    ok "access log: \$tls_version and \$tls_sni"
else
    fail "access log: $(head -5 access.log)"
fi

# ---- graceful stop -------------------------------------------------------------------
python3 "$src/tests/tls_client.py" "$tmp" goodbye "$p_goodbye" >bye.out 2>&1 &
byer=$!
i=0
while [ $i -lt 100 ] && ! grep -q "holding" bye.out; do sleep 0.05; i=$((i + 1)); done
kill -TERM "$pid"
wait "$byer"
case $(cat bye.out) in *"ok: stop"*) ok "graceful stop: on_shutdown's bye, then close_notify" ;;
*) fail "graceful stop: $(cat bye.out)" ;; esac
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] && ok "wharfd stopped cleanly" || fail "wharfd exit status $rc"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
