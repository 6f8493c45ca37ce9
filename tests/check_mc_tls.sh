#!/bin/sh
# check_mc_tls.sh - the memcache handler over TLS, as memcached 1.6 serves it
# with -Z (ssl_chain_cert, ssl_key): a wharfd memcache listener with a "tls"
# object, and the installed memcached -Z with the same certificate, side by
# side on ephemeral loopback ports (certificates made at test time).
#   - openssl s_client: a text exchange, the reply byte-exact, from both;
#   - tests/mc_tls.py: text, binary and meta exchanges over TLS
#     byte-identical to memcached -Z's replies; a 500 KB value in each
#     protocol (wharf alone: memcached 1.6.18 -Z stalls sending a value of
#     16 KB or more); pymemcache with tls_context (set/get/gets/cas/incr/
#     decr/add/delete, 2,001 keys by set_many/get_many: memcached's answers;
#     a 500 KB value from wharf); a text script with every byte in a TLS
#     record of its own;
#   - a plaintext client on the TLS port gets nothing stored and the
#     listener keeps serving TLS clients.
# Without memcached (or when it was built without TLS) the wharf half runs
# alone.  Needs openssl and python3 with pymemcache; skips (77) without.
set -u
src=$(cd "${WHARF_SRCDIR:-.}" && pwd)
build=$(cd "${WHARF_BUILDDIR:-.}" && pwd)
wharfd=${WHARFD:-$build/wharfd} # WHARFD: a wrapper to run instead (valgrind)
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}

py=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import pymemcache' 2>/dev/null; then
        py=$p
        break
    fi
done
if [ -z "$py" ] || ! command -v openssl >/dev/null 2>&1; then
    echo "SKIP: needs openssl and python3 with pymemcache (Debian: openssl, python3-pymemcache)"
    exit 77
fi
memcached=$(command -v memcached || true)
[ -x /usr/bin/memcached ] && memcached=/usr/bin/memcached

tmp=$(mktemp -d)
pids=
passed=0
failed=0
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
cd "$tmp" || exit 1

# ---- a CA and a P-256 server certificate for localhost ------------------------------
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -subj "/CN=wharf memcache test CA" -days 30 -out ca.crt 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key 2>/dev/null
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 7 -days 30 \
    -extfile server.ext -out server.crt 2>/dev/null
chmod 600 ./*.key
if [ ! -s server.crt ]; then
    echo "FAIL: openssl could not make the test certificate"
    exit 1
fi

# ---- wharfd: the memcache handler on a TLS listener --------------------------------
# config/memcache-tls.json, the shipped example, with this test's files and
# an ephemeral loopback port.
sed -e "s|/etc/wharf/tls/memcache|$tmp/server|" -e 's|"port": 11211|"port": 0|' \
    -e 's|"0.0.0.0"|"127.0.0.1"|' "$src/config/memcache-tls.json" >wharf.json
"$wharfd" -c wharf.json 2>wharf.log &
pids="$pids $!"
i=0
while [ $i -lt 600 ] && ! grep -q "started:" wharf.log; do sleep 0.05; i=$((i + 1)); done
wport=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' wharf.log | head -n1)
if [ -z "$wport" ]; then
    echo "FAIL: wharfd did not start: $(cat wharf.log)"
    exit 1
fi

# ---- memcached -Z with the same certificate -----------------------------------------
mport=
if [ -n "$memcached" ] && "$memcached" -h 2>/dev/null | grep -q -- '--enable-ssl'; then
    mport=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$memcached" -u "$(id -un)" -l 127.0.0.1 -p "$mport" -U 0 -t 1 -m 64 -Z \
        -o "ssl_chain_cert=$tmp/server.crt,ssl_key=$tmp/server.key" >memcached.log 2>&1 &
    pids="$pids $!"
    i=0
    while [ $i -lt 100 ] && ! "$py" -c "import socket; socket.create_connection(('127.0.0.1', $mport), 1)" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
    done
    if [ $i -ge 100 ]; then
        echo "note: memcached -Z did not start ($(cat memcached.log)); wharf alone"
        mport=
    fi
else
    echo "note: no memcached with TLS (-Z) here; wharf alone"
fi

# ---- openssl s_client: a text exchange, byte-exact ---------------------------------
# -quiet implies -ign_eof: s_client reads until the server closes (quit).
printf 'set greeting 5 0 11\r\nhello world\r\nget greeting nokey\r\nincr greeting 1\r\nbogus\r\nquit\r\n' >script
printf 'STORED\r\nVALUE greeting 5 11\r\nhello world\r\nEND\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nERROR\r\n' >want
for server in "wharf $wport" ${mport:+"memcached $mport"}; do
    name=${server% *}
    port=${server#* }
    for v in tls1_2 tls1_3; do
        timeout 20 openssl s_client -quiet -$v -connect "127.0.0.1:$port" -servername localhost \
            -CAfile ca.crt -verify_return_error <script >got 2>s_client.err
        if cmp -s got want; then
            ok "openssl s_client -$v to $name: the text exchange byte-exact"
        else
            fail "openssl s_client -$v to $name: got $(od -c got | head -5) ($(tail -2 s_client.err))"
        fi
    done
done

# ---- mc_tls.py: every protocol, pymemcache, side by side ---------------------------
# (memcached first served the s_client scripts too: the same on both.)
if timeout 300 "$py" "$src/tests/mc_tls.py" ca.crt "$wport" $mport >py.out 2>&1; then
    while IFS= read -r line; do ok "${line#ok: }"; done <py.out
else
    grep '^ok' py.out | while IFS= read -r line; do echo "$line"; done
    fail "mc_tls.py: $(grep -v '^ok' py.out | tail -15)"
fi

# ---- a plaintext client on the TLS port: refused, others unharmed ------------------
printf 'set plain 0 0 1\r\nx\r\n' | timeout 10 "$py" -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.sendall(sys.stdin.buffer.read())
s.settimeout(10)
try:
    while s.recv(4096): pass
except OSError:
    pass' "$wport"
printf 'get plain\r\nquit\r\n' | timeout 20 openssl s_client -quiet -connect "127.0.0.1:$wport" \
    -CAfile ca.crt >got 2>/dev/null
if [ "$(cat got)" = "$(printf 'END\r\n')" ]; then
    ok "a plaintext client on the TLS port stores nothing; TLS clients still served"
else
    fail "after a plaintext client: $(od -c got | head -3)"
fi
grep -q "TLS handshake with .* failed" wharf.log &&
    ok "the plaintext client's failed handshake is logged" ||
    fail "no log line for the plaintext client: $(tail -3 wharf.log)"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
