#!/bin/sh
# check_proxy_tls.sh - the proxy handler re-encrypting to a TLS backend
# ("backend_tls", wharf_connect_tls), with certificates made at test time
# (openssl: a CA, another CA, a leaf for localhost and 127.0.0.1) and a
# Python ssl backend (tests/tls_backend.py) that records the SNI name and
# the ALPN protocol it saw:
#   - wharfd -t refuses a bad backend_tls naming the file, the JSON path and
#     what was expected (a missing CA file, a non-PEM one, an unknown key, a
#     wrong type, a key without its certificate);
#   - plaintext client -> proxy -> TLS backend: 1 MiB byte-exact both ways
#     and a half-close carried through (the backend answers after our end
#     of stream, then closes); the backend saw SNI "localhost" and agreed
#     ALPN "x-wharf"; with no server_name the certificate's IP address is
#     checked (it names 127.0.0.1);
#   - a backend whose certificate is from another CA: the client is
#     closed, the reason is logged and counted
#     (wharf_tls_outbound_handshakes_failed_total{reason="certificate"}),
#     and a connection opened before keeps working; "verify": false
#     accepts it;
#   - a name the certificate does not carry: refused ("hostname mismatch");
#   - a backend that never answers the ClientHello: the client is closed
#     at handshake_ms, counted as reason "timeout".
. "$(dirname "$0")/lib/common.sh"
for tool in openssl python3; do
    if ! command -v $tool >/dev/null; then
        echo "SKIP: $tool is needed (Debian packages openssl, python3)"
        exit 77
    fi
done
cd "$tmp" || exit 1

# ---- certificates --------------------------------------------------------------------
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec ca.key
openssl req -x509 -new -key ca.key -subj "/CN=wharf test CA" -days 30 -out ca.crt 2>/dev/null
ec other.key
openssl req -x509 -new -key other.key -subj "/CN=other CA" -days 30 -out other.crt 2>/dev/null
ec leaf.key
openssl req -new -key leaf.key -subj "/CN=localhost" -out leaf.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >leaf.ext
openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -set_serial 4097 -days 30 \
    -extfile leaf.ext -out leaf.crt 2>/dev/null
chmod 600 ./*.key
if [ ! -s leaf.crt ]; then
    echo "FAIL: openssl could not make the test certificates"
    exit 1
fi
echo "garbage, not PEM" >garbage.pem

# ---- wharfd -t -------------------------------------------------------------------------
# conf FILE BACKEND_TLS: a proxy listener with that backend_tls value
conf() {
    printf '{"workers": 1, "listeners": [{"port": 0, "handler": "proxy", "options": {"upstream": "127.0.0.1:9", "backend_tls": %s}}]}\n' \
        "$2" >"$1"
}
# refused NAME BACKEND_TLS TEXT...: wharfd -t fails, its message has every TEXT
refused() {
    name=$1
    conf bad.json "$2"
    shift 2
    out=$("$wharfd" -t -c bad.json 2>&1) && { fail "$name: -t accepted it"; return; }
    for want in bad.json "listeners[0].options" "$@"; do
        case $out in
        *"$want"*) ;;
        *) fail "$name: message lacks \"$want\": $out"; return ;;
        esac
    done
    ok "$name: $(echo "$out" | tail -1)"
}
refused "missing CA file" '{"ca": "nope.pem"}' "backend_tls.ca: nope.pem: cannot read"
refused "non-PEM CA file" '{"ca": "garbage.pem"}' "backend_tls.ca: garbage.pem"
refused "unknown key" '{"ca": "ca.crt", "sni": "x"}' 'backend_tls: unknown option "sni"'
refused "not an object" '"ca.crt"' "backend_tls: expected an object"
refused "verify not a boolean" '{"verify": "yes"}' "backend_tls.verify: expected true or false"
refused "alpn not strings" '{"alpn": [1]}' "backend_tls.alpn: expected an array"
refused "empty server_name" '{"server_name": ""}' "backend_tls.server_name: expected a non-empty string"
refused "key without cert" '{"key": "leaf.key"}' "backend_tls.cert" "needs both"
refused "key not matching" '{"cert": "leaf.crt", "key": "other.key"}' "backend_tls.key: other.key" "mismatch"
conf good.json '{"ca": "ca.crt", "server_name": "localhost", "alpn": ["x-wharf"]}'
out=$("$wharfd" -t -c good.json 2>&1) && ok "-t: a good backend_tls passes" ||
    fail "-t: a good backend_tls refused: $out"

# ---- the backends ------------------------------------------------------------------------
python3 "$src/tests/tls_backend.py" echo leaf.crt leaf.key be.port be.log "x-wharf,other" &
also_kill="$!"
python3 "$src/tests/tls_backend.py" stall stall.port &
also_kill="$also_kill $!"
i=0
while [ $i -lt 200 ] && { [ ! -s be.port ] || [ ! -s stall.port ]; }; do sleep 0.05; i=$((i + 1)); done
bp=$(cat be.port)
sp=$(cat stall.port)
[ -n "$bp" ] && [ -n "$sp" ] || { fail "the backends did not start"; finish; }

# proxy NAME BACKEND_TLS [UPSTREAM_PORT]
proxy() {
    printf '{"name": "%s", "address": "127.0.0.1", "port": 0, "handler": "proxy", "timeouts": {"handshake_ms": 800}, "options": {"upstream": "127.0.0.1:%s", "backend_tls": %s}}' \
        "$1" "${3:-$bp}" "$2"
}
cat >wharf.json <<EOF2
{"workers": 2, "listeners": [
 $(proxy good '{"ca": "ca.crt", "server_name": "localhost", "alpn": ["h2", "x-wharf"]}'),
 $(proxy byip '{"ca": "ca.crt"}'),
 $(proxy badca '{"ca": "other.crt", "server_name": "localhost"}'),
 $(proxy noverify '{"ca": "other.crt", "server_name": "localhost", "verify": false}'),
 $(proxy badname '{"ca": "ca.crt", "server_name": "wrong.test"}'),
 $(proxy stall '{"ca": "ca.crt", "server_name": "localhost"}' "$sp"),
 {"name": "m", "address": "127.0.0.1", "port": 0, "handler": "metrics"}]}
EOF2
start_wharfd -c wharf.json || { fail "wharfd did not start: $(cat "$tmp/log")"; finish; }
for l in good byip badca noverify badname stall m; do
    eval "p_$l=\$(port_of $l)"
done

# ---- clients -------------------------------------------------------------------------------
# client PORT SIZE: sends SIZE random bytes, shuts its side, reads to EOF;
# prints "ok" when the answer is the bytes and "BYE SIZE\n", "closed" when
# the connection ended with nothing, or what went wrong.
client() {
    python3 - "$1" "$2" <<'PY'
import os, socket, sys, threading
port, size = int(sys.argv[1]), int(sys.argv[2])
data = os.urandom(size)
s = socket.create_connection(("127.0.0.1", port), timeout=20)
def send():
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
t = threading.Thread(target=send)
t.start()
got = bytearray()
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except OSError as e:
    print("error %s after %d bytes" % (e, len(got)))
    sys.exit(0)
t.join()
want = data + b"BYE %d\n" % size
if bytes(got) == want:
    print("ok")
elif not got:
    print("closed")
else:
    print("different: %d bytes, wanted %d" % (len(got), len(want)))
PY
}

r=$(client "$p_good" 1048576)
[ "$r" = ok ] && ok "1 MiB through the TLS backend, byte-exact both ways, half-close carried" ||
    fail "1 MiB through the TLS backend: $r"
grep -q "^sni localhost alpn x-wharf$" be.log && ok "the backend saw SNI localhost and agreed ALPN x-wharf" ||
    fail "SNI/ALPN at the backend: $(cat be.log)"
r=$(client "$p_good" 1)
[ "$r" = ok ] && ok "one byte, then the half-close" || fail "one byte: $r"
r=$(client "$p_byip" 5000)
[ "$r" = ok ] && ok "no server_name: the certificate's IP address verified" || fail "by IP: $r"
grep -q "^sni None alpn None$" be.log && ok "no server_name: no SNI sent, no ALPN offered" ||
    fail "by IP at the backend: $(cat be.log)"

# A connection held open through the good listener while others fail.
python3 - "$p_good" >held.out 2>&1 <<'PY' &
import socket, sys, time, os
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"first\n")
assert s.recv(100) == b"first\n"
print("holding", flush=True)
for _ in range(200):
    if os.path.exists("release.flag"):
        break
    time.sleep(0.05)
s.sendall(b"second\n")
print("ok" if s.recv(100) == b"second\n" else "FAIL", flush=True)
PY
held=$!
wait_file held.out holding || fail "the held connection did not open: $(cat held.out)"

r=$(client "$p_badca" 100)
[ "$r" = closed ] && ok "a backend certificate from another CA: the client is closed" ||
    fail "other CA: $r"
wait_file "$tmp/log" "outbound TLS handshake with 127.0.0.1:$bp failed: server certificate:" &&
    ok "logged: $(grep -o 'server certificate: [^(]*' "$tmp/log" | head -1)" ||
    fail "no log line for the refused certificate: $(tail -5 "$tmp/log")"
sleep 1.1 # (failed handshakes are logged at most once a second per worker)
r=$(client "$p_badname" 100)
[ "$r" = closed ] && ok "a name the certificate lacks: the client is closed" || fail "bad name: $r"
wait_file "$tmp/log" "server certificate: hostname mismatch" && ok "logged: hostname mismatch" ||
    fail "no hostname mismatch line: $(grep outbound "$tmp/log" | tail -3)"
r=$(client "$p_noverify" 3000)
[ "$r" = ok ] && ok "verify false: another CA's certificate accepted" || fail "verify false: $r"
sleep 1.1
t1=$(date +%s)
r=$(client "$p_stall" 100)
t2=$(date +%s)
wait_file "$tmp/log" "outbound TLS handshake with 127.0.0.1:$sp failed: no answer within handshake_ms" ||
    fail "no log line for the stalled handshake"
[ "$r" = closed ] && [ $((t2 - t1)) -le 5 ] &&
    ok "a backend that stalls the handshake: the client is closed at handshake_ms ($((t2 - t1)) s)" ||
    fail "stalled backend: $r after $((t2 - t1)) s"
touch release.flag
wait "$held"
[ "$(tail -1 held.out)" = ok ] && ok "a connection opened before the failures kept working" ||
    fail "the held connection: $(cat held.out)"

m=$(scrape "$p_m")
val() { echo "$m" | sed -n "s/^$1 \\([0-9]*\\)\$/\\1/p"; }
n=$(val 'wharf_tls_outbound_handshakes_failed_total{listener="badca",reason="certificate"}')
[ "${n:-0}" -ge 1 ] && ok "failed{listener=badca,reason=certificate} = $n" || fail "badca metric: $n"
n=$(val 'wharf_tls_outbound_handshakes_failed_total{listener="badname",reason="certificate"}')
[ "${n:-0}" -ge 1 ] && ok "failed{listener=badname,reason=certificate} = $n" || fail "badname metric: $n"
n=$(val 'wharf_tls_outbound_handshakes_failed_total{listener="stall",reason="timeout"}')
[ "${n:-0}" -ge 1 ] && ok "failed{listener=stall,reason=timeout} = $n" || fail "stall metric: $n"
n=$(val 'wharf_tls_outbound_handshakes_total{listener="good",version="TLSv1.3"}')
[ "${n:-0}" -ge 3 ] && ok "handshakes{listener=good,version=TLSv1.3} = $n" || fail "good metric: $n"
echo "$m" | grep -q 'wharf_tls_handshakes_total{listener="good"' &&
    fail "the outbound handshakes show as the listener's own" ||
    ok "outbound handshakes are not counted as the listener's own"

stop_wharfd
[ "$status" = 0 ] && ok "wharfd stopped cleanly" || fail "wharfd stop: $status"
finish
