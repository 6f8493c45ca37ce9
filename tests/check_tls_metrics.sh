#!/bin/sh
# check_tls_metrics.sh - what /metrics says about TLS handshakes, and the
# record reading that read-ahead changed, with real clients:
#   - wharf_tls_handshakes_by_cipher_total{listener,version,cipher}: after
#     openssl s_client handshakes with TLS 1.2 (two ciphers) and TLS 1.3 (two
#     suites), each series counts exactly its handshakes; the ciphers the
#     listener allows have a series (0 until used), others none; per version
#     the ciphers sum to wharf_tls_handshakes_total; a suite the listener
#     does not allow fails (reason no_shared) and gets no series; the text is
#     valid (promtool check metrics);
#   - a reload that allows another suite keeps the counts and adds its series;
#   - records read ahead: many small records and the close_notify in one
#     TCP segment are all echoed, then the close; the start of a record held
#     back for a second costs the server no CPU (no busy loop) and the rest
#     completes it.
set -u
build=${WHARF_BUILDDIR:-.}
src=${WHARF_SRCDIR:-.}
wharfd=${WHARFD:-$build/wharfd} # WHARFD: a wrapper to run instead (valgrind)
tmp=$(mktemp -d)
pid=
passed=0
failed=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
for tool in openssl python3 curl promtool; do
    if ! command -v $tool >/dev/null; then
        echo "SKIP: $tool is needed (Debian packages openssl, python3, curl, prometheus)"
        exit 77
    fi
done
cd "$tmp" || exit 1

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout ec.key -out ec.crt -subj /CN=localhost 2>/dev/null
chmod 600 ec.key
set -- $(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
p_tls=$1 p_metrics=$2
# config SUITES: the config file, with these TLS 1.3 suites allowed
config() {
    cat >w.json <<JSON
{"workers": 2, "listeners": [
 {"name": "t", "port": $p_tls, "handler": "echo", "timeouts": {"handshake_ms": 2000},
  "tls": {"cert": "ec.crt", "key": "ec.key",
          "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
          "ciphersuites": "$1"}},
 {"name": "metrics", "port": $p_metrics, "handler": "metrics"}
]}
JSON
}
config "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
"$wharfd" -c w.json 2>server.log &
pid=$!
i=0
while [ $i -lt 200 ] && ! grep -q "started:" server.log; do sleep 0.05; i=$((i + 1)); done
if ! grep -q "started:" server.log; then
    fail "wharfd did not start: $(tail -5 server.log)"
    echo "$passed passed, $failed failed"
    exit 1
fi

# hs ARGS...: one s_client handshake (and an echoed line); prints what it negotiated
hs() {
    echo ping | timeout 10 openssl s_client -connect 127.0.0.1:$p_tls -servername localhost \
        -ign_eof "$@" 2>&1 | sed -n 's/^ *\(Protocol\|Cipher\) *: *//p; s/^New, \(TLSv[0-9.]*\), Cipher is \(.*\)/\1 \2/p' |
        tr '\n' ' '
}
shaked=0
for args in "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256" "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256" \
    "-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305" \
    "-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384" "-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384" \
    "-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384" "-tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256"; do
    # shellcheck disable=SC2086
    out=$(hs $args)
    case $out in *TLSv1.[23]*) shaked=$((shaked + 1)) ;; *) fail "s_client $args: $out" ;; esac
done
[ $shaked = 7 ] && ok "7 handshakes: TLS 1.2 with two ciphers, TLS 1.3 with two suites"
out=$(hs -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256)
case $out in *TLS_AES_128_GCM_SHA256*) fail "a suite the listener does not allow was negotiated: $out" ;;
*) ok "a suite the listener does not allow is refused" ;; esac

scrape() { curl -sS --max-time 5 "http://127.0.0.1:$p_metrics/metrics" >"$1"; }
# val FILE SERIES: the value of one series (empty when absent)
val() { grep -v '^#' "$1" | grep -F "$2 " | awk '{print $2}' | head -1; }
by() { echo "wharf_tls_handshakes_by_cipher_total{listener=\"t\",version=\"$1\",cipher=\"$2\"}"; }
# The counters are updated by the workers after the handshake; the scrape may come first.
i=0
while [ $i -lt 100 ]; do
    scrape m1
    [ "$(val m1 "$(by TLSv1.3 TLS_CHACHA20_POLY1305_SHA256)")" = 1 ] && break
    sleep 0.05; i=$((i + 1))
done
check() { # FILE VERSION CIPHER WANT
    got=$(val "$1" "$(by "$2" "$3")")
    [ "$got" = "$4" ] && ok "$2 $3: $got" || fail "$2 $3: '$got', expected $4"
}
check m1 TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256 2
check m1 TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305 1
check m1 TLSv1.3 TLS_AES_256_GCM_SHA384 3
check m1 TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 1
n=$(grep -c '^wharf_tls_handshakes_by_cipher_total{listener="t"' m1)
[ "$n" = 4 ] && ok "only the allowed ciphers have series ($n)" ||
    fail "series: $(grep '^wharf_tls_handshakes_by_cipher_total' m1)"
for v in TLSv1.2 TLSv1.3; do
    sum=$(grep "^wharf_tls_handshakes_by_cipher_total{listener=\"t\",version=\"$v\"" m1 |
        awk '{s += $2} END {print s + 0}')
    tot=$(val m1 "wharf_tls_handshakes_total{listener=\"t\",version=\"$v\"}")
    [ "$sum" = "$tot" ] && ok "$v: the ciphers sum to wharf_tls_handshakes_total ($tot)" ||
        fail "$v: ciphers sum to $sum, wharf_tls_handshakes_total $tot"
done
n=$(val m1 'wharf_tls_handshakes_failed_total{listener="t",reason="no_shared"}')
[ "${n:-0}" -ge 1 ] && ok "the refused suite counted as no_shared ($n)" || fail "no_shared: '$n'"
n=$(val m1 'wharf_tls_handshake_duration_seconds_count{listener="t"}')
[ "$n" = 7 ] && ok "handshake latency histogram counts the 7 handshakes" || fail "histogram count: '$n'"
promtool check metrics <m1 >promtool.out 2>&1 && ok "promtool check metrics: clean" ||
    fail "promtool: $(tail -5 promtool.out)"

# ---- reload: another suite allowed ------------------------------------------------
config "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
kill -HUP "$pid"
i=0
while [ $i -lt 100 ] && ! grep -q "reloaded" server.log; do sleep 0.05; i=$((i + 1)); done
scrape m2
check m2 TLSv1.3 TLS_AES_128_GCM_SHA256 0
check m2 TLSv1.3 TLS_AES_256_GCM_SHA384 3
out=$(hs -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256)
i=0
while [ $i -lt 100 ]; do
    scrape m3
    [ "$(val m3 "$(by TLSv1.3 TLS_AES_128_GCM_SHA256)")" = 1 ] && break
    sleep 0.05; i=$((i + 1))
done
check m3 TLSv1.3 TLS_AES_128_GCM_SHA256 1
promtool check metrics <m3 >promtool.out 2>&1 && ok "promtool after the reload: clean" ||
    fail "promtool: $(tail -5 promtool.out)"

# ---- records read ahead ------------------------------------------------------------
cat >ra.py <<'PY'
import os, socket, ssl, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
def client():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = ctx.wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            o.do_handshake(); break
        except ssl.SSLWantReadError:
            s.sendall(out.read()); inc.write(s.recv(65536))
    s.sendall(out.read())
    return s, inc, out, o
def read_all(s, inc, o, n):
    got = bytearray()
    while len(got) < n:
        try:
            got += o.read(65536)
        except ssl.SSLWantReadError:
            d = s.recv(65536)
            if not d:
                break
            inc.write(d)
        except ssl.SSLZeroReturnError:
            break
    return bytes(got)
def cpu():
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
# 200 records of 7 bytes each and the close_notify: one sendall of the lot.
s, inc, out, o = client()
want = b"".join(b"rec%03d\n" % i for i in range(200))
for i in range(200):
    o.write(want[i * 7:(i + 1) * 7])
try:
    o.unwrap()
except ssl.SSLWantReadError:
    pass
s.sendall(out.read())
got = read_all(s, inc, o, len(want) + 1)
print("ok: 200 records and close_notify in one segment echoed" if got == want
      else f"FAIL: one segment: {len(got)} of {len(want)} bytes")
# The start of a record, held back for a second, then the rest.
s, inc, out, o = client()
o.write(b"a" * 1000)
rec = out.read()
c0 = cpu()
s.sendall(rec[:300])
time.sleep(1)
c1 = cpu()
s.sendall(rec[300:])
got = read_all(s, inc, o, 1000)
spent = c1 - c0
print(f"ok: a record held back half-way cost {spent:.2f} s of CPU and then completed"
      if got == b"a" * 1000 and spent < 0.3
      else f"FAIL: held-back record: {len(got)} bytes, {spent:.2f} s of CPU while it waited")
PY
python3 ra.py "$p_tls" "$pid" >ra.out 2>&1
while read -r line; do
    case $line in ok:*) ok "${line#ok: }" ;; *) fail "$line" ;; esac
done <ra.out

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] && ok "wharfd stopped cleanly" || fail "wharfd exit status $rc"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
