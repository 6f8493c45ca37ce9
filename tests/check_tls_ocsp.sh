#!/bin/sh
# check_tls_ocsp.sh - OCSP stapling from response files ("ocsp_file" of a
# "tls" object and of its "sni" certificates), with a CA, leaves and a
# delegated OCSP responder made by openssl at test time; responses made by
# `openssl ocsp -index ... -respout` (good, revoked, unknown, for another
# certificate, two statuses, a SHA-256 cert id), one fetched over HTTP from
# `openssl ocsp -port` at the URL the certificate names (as
# docs/operating.md fetches them), and by tests/ocsp_make (expired, not yet valid, tryLater, signed by
# another CA, signed by the CA itself, one expiring while the server runs):
#   - wharfd -t: a good response passes (a SHA-1 or SHA-256 cert id, signed
#     by the responder or by the CA) and its nextUpdate is logged; one
#     expiring within a day is warned about; a missing, empty or garbage
#     file, a response for another certificate, with two statuses, revoked,
#     unknown, expired, not yet valid, not successful, signed by a
#     stranger, a chain without the issuer, an empty file name are refused,
#     naming the JSON path, the file and the reason (in sni[] too); a start
#     with one fails; -T shows the key;
#   - openssl s_client -status, TLS 1.2 and 1.3: "OCSP Response Status:
#     successful" and "Cert Status: good"; the stapled bytes are the file's,
#     byte for byte (from -msg); without -status nothing is sent (no
#     CertificateStatus in TLS 1.2; in TLS 1.3 the Certificate message is
#     exactly the file's length + 8 bytes shorter); with SNI each
#     certificate gets its own response; a listener without ocsp_file sends
#     none (its sni[] certificate with one sends that, and an sni[]
#     certificate without one none); a response whose nextUpdate passes
#     while the server runs is no longer stapled, and that is logged once;
#   - wharf_tls_ocsp_next_update_seconds per listener and certificate is the
#     nextUpdate openssl reads in the file (promtool checks the scrape where
#     it is installed);
#   - SIGHUP takes a new response file (new connections get its bytes, the
#     gauge its nextUpdate); an expired one refuses the reload, naming the
#     file, and the previous response keeps being stapled.
. "$(dirname "$0")/lib/common.sh"
build=$(cd "$build" && pwd) # the suite works in $tmp
wharfd=${WHARFD:-$build/wharfd} # WHARFD: a wrapper to run instead (valgrind)
make_resp=$build/tests/ocsp_make
for tool in openssl python3; do
    if ! command -v $tool >/dev/null; then
        echo "SKIP: $tool is needed (Debian packages openssl, python3)"
        exit 77
    fi
done
cd "$tmp" || exit 1

# ---- certificates and responses ------------------------------------------------------
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# sign NAME SUBJECT EXT SERIAL [CA]: NAME.key, and NAME.crt signed by the CA
sign() {
    ec "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "${5:-ca}.crt" -CAkey "${5:-ca}.key" -set_serial "$4" \
        -days 30 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
ec ca.key
openssl req -x509 -new -key ca.key -subj "/CN=wharf OCSP test CA" -days 30 -out ca.crt 2>/dev/null
ec other.key
openssl req -x509 -new -key other.key -subj "/CN=other CA" -days 30 -out other.crt 2>/dev/null
# The port of an `openssl ocsp` responder: the leaf names it (-ocsp_uri).
p_resp=$(python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
sign leaf "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
authorityInfoAccess=OCSP;URI:http://127.0.0.1:$p_resp" 4097                      # 0x1001
sign second "/CN=second.test" "subjectAltName=DNS:second.test" 4098              # 0x1002
sign revoked "/CN=revoked.test" "subjectAltName=DNS:revoked.test" 4099           # 0x1003
sign unknown "/CN=unknown.test" "subjectAltName=DNS:unknown.test" 4100           # 0x1004
sign responder "/CN=wharf OCSP responder" "extendedKeyUsage=OCSPSigning" 8193
sign stranger "/CN=stranger responder" "extendedKeyUsage=OCSPSigning" 8194 other
chmod 600 ./*.key
for c in leaf second revoked unknown; do cat $c.crt ca.crt >$c.chain; done
# The responder's database: 1001 and 1002 valid, 1003 revoked, 1004 absent.
now=$(date -u +%y%m%d%H%M%SZ)
printf 'V\t300101000000Z\t\t1001\tunknown\t/CN=localhost\n' >index.txt
printf 'V\t300101000000Z\t\t1002\tunknown\t/CN=second.test\n' >>index.txt
printf 'R\t300101000000Z\t%s,keyCompromise\t1003\tunknown\t/CN=revoked.test\n' "$now" >>index.txt
# respond NAME CERT DAYS: NAME.der from openssl ocsp, as a responder answers
respond() {
    openssl ocsp -issuer ca.crt -cert "$2.crt" -no_nonce -reqout "$1.req" 2>/dev/null &&
        openssl ocsp -index index.txt -rsigner responder.crt -rkey responder.key -CA ca.crt \
            -reqin "$1.req" -respout "$1.der" -ndays "$3" 2>/dev/null
}
respond good leaf 2
respond good2 second 2
respond soon leaf 1
respond later leaf 3
respond revoked revoked 2
respond unknown unknown 2
openssl ocsp -sha256 -issuer ca.crt -cert leaf.crt -no_nonce -reqout sha256.req 2>/dev/null &&
    openssl ocsp -index index.txt -rsigner responder.crt -rkey responder.key -CA ca.crt \
        -reqin sha256.req -respout sha256.der -ndays 2 2>/dev/null
openssl ocsp -issuer ca.crt -cert leaf.crt -cert second.crt -no_nonce -reqout two.req \
    2>/dev/null && openssl ocsp -index index.txt -rsigner responder.crt -rkey responder.key \
    -CA ca.crt -reqin two.req -respout two.der -ndays 2 2>/dev/null
"$make_resp" expired.der ca.crt leaf.crt responder.crt responder.key good -7200 -3600
"$make_resp" future.der ca.crt leaf.crt responder.crt responder.key good 3600 200000
"$make_resp" trylater.der trylater
"$make_resp" stranger.der ca.crt leaf.crt stranger.crt stranger.key good -60 200000
"$make_resp" byca.der ca.crt leaf.crt ca.crt ca.key good -60 200000
for f in good good2 soon later revoked unknown two sha256 expired future trylater stranger byca; do
    if [ ! -s $f.der ]; then
        echo "FAIL: could not make the test response $f.der"
        exit 1
    fi
done
echo "garbage, not DER" >garbage.der
: >empty.der
cp good.der serve.der

# ---- wharfd -t -----------------------------------------------------------------------
# tconf FILE TLS-OBJECT
tconf() {
    printf '{"workers": 1, "listeners": [{"port": 0, "handler": "echo", "tls": %s}]}\n' "$2" >"$1"
}
# ocsp FILE RESPONSE [CHAIN]: a config of leaf (or CHAIN) with that ocsp_file
ocsp() { tconf "$1" "{\"cert\": \"${3:-leaf.chain}\", \"key\": \"leaf.key\", \"ocsp_file\": \"$2\"}"; }
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
ocsp good.json good.der
# tok NAME CONFIG TEXT: wharfd -t accepts the config and logs TEXT
tok() {
    out=$("$wharfd" -t -c "$2" 2>&1) || { fail "$1: -t refused it: $out"; return; }
    case $out in
    *"configuration OK"*) case $out in *"$3"*) ok "$1" ;; *) fail "$1: no \"$3\": $out" ;; esac ;;
    *) fail "$1: $out" ;;
    esac
}
tok "-t: a good response, its nextUpdate logged" good.json \
    "listeners[0].tls.ocsp_file: $tmp/good.der: OCSP response (good) stapled until its nextUpdate, 20"
ocsp byca.json byca.der
tok "-t: a response signed by the CA itself" byca.json "$tmp/byca.der: OCSP response (good) stapled"
ocsp sha256.json sha256.der
tok "-t: a response whose cert id is hashed with SHA-256" sha256.json \
    "$tmp/sha256.der: OCSP response (good) stapled"
ocsp soon.json soon.der
tok "-t: a response expiring within a day is warned about" soon.json \
    "WARN  soon.json: listeners[0].tls.ocsp_file: $tmp/soon.der: the OCSP response expires within a day (nextUpdate 20"
P=listeners[0].tls.ocsp_file
ocsp missing.json nonesuch.der
refused "-t: missing file" missing.json "$P: $tmp/nonesuch.der: cannot read: No such file or directory"
ocsp empty.json empty.der
refused "-t: empty file" empty.json "$P: $tmp/empty.der: empty, expected a DER OCSP response"
ocsp garbage.json garbage.der
refused "-t: garbage" garbage.json "$P: $tmp/garbage.der: not a DER OCSP response"
ocsp wrong.json good2.der
refused "-t: response for another certificate" wrong.json \
    "$P: $tmp/good2.der: not for this certificate"
tconf revoked.json '{"cert": "revoked.chain", "key": "revoked.key", "ocsp_file": "revoked.der"}'
refused "-t: revoked" revoked.json "$P: $tmp/revoked.der: the certificate is revoked (since 20" \
    "reason keyCompromise)"
tconf unknown.json '{"cert": "unknown.chain", "key": "unknown.key", "ocsp_file": "unknown.der"}'
refused "-t: status unknown" unknown.json \
    "$P: $tmp/unknown.der: certificate status is \"unknown\", expected \"good\""
ocsp two.json two.der
refused "-t: two statuses in one response" two.json \
    "$P: $tmp/two.der: holds 2 certificate statuses, expected one"
ocsp expired.json expired.der
refused "-t: expired" expired.json "$P: $tmp/expired.der: the response has expired (nextUpdate 20"
ocsp future.json future.der
refused "-t: not yet valid" future.json "$P: $tmp/future.der: the response is not yet valid (thisUpdate 20"
ocsp trylater.json trylater.der
refused "-t: not successful" trylater.json \
    "$P: $tmp/trylater.der: response status is \"trylater\", expected \"successful\""
ocsp stranger.json stranger.der
refused "-t: signed by another CA's responder" stranger.json \
    "$P: $tmp/stranger.der: not signed by the certificate's issuer or its OCSP responder"
ocsp nochain.json good.der leaf.crt
refused "-t: the issuer not in the chain" nochain.json \
    "$P: $tmp/good.der: the certificate's issuer is not in its chain file"
tconf sni.json '{"cert": "leaf.chain", "key": "leaf.key", "ocsp_file": "good.der",
  "sni": [{"cert": "second.chain", "key": "second.key", "ocsp_file": "good.der"}]}'
refused "-t: sni[0] with the wrong response" sni.json \
    "listeners[0].tls.sni[0].ocsp_file: $tmp/good.der: not for this certificate"
tconf empty_name.json '{"cert": "leaf.chain", "key": "leaf.key", "ocsp_file": ""}'
refused "-t: empty file name" empty_name.json "$P: expected a file name"
# Fetched from a responder as docs/operating.md does it (the URL from the
# certificate), then accepted.
timeout 20 openssl ocsp -index index.txt -port "$p_resp" -rsigner responder.crt \
    -rkey responder.key -CA ca.crt -nrequest 1 -ndays 7 >responder.log 2>&1 &
rpid=$!
i=0
while [ $i -lt 100 ] && ! grep -q "waiting for OCSP client" responder.log; do sleep 0.05; i=$((i + 1)); done
url=$(openssl x509 -in leaf.crt -noout -ocsp_uri)
openssl ocsp -issuer ca.crt -cert leaf.crt -url "$url" -no_nonce -CAfile ca.crt \
    -verify_other ca.crt -timeout 5 -respout fetched.tmp >fetch.out 2>&1 &&
    mv fetched.tmp fetched.der
kill "$rpid" 2>/dev/null
wait "$rpid" 2>/dev/null
ocsp fetched.json fetched.der
if [ "$url" = "http://127.0.0.1:$p_resp" ] && grep -q "leaf.crt: good" fetch.out; then
    tok "-t: a response fetched from the certificate's responder URL" fetched.json \
        "$tmp/fetched.der: OCSP response (good) stapled until its nextUpdate"
else
    fail "fetching from $url: $(cat fetch.out responder.log)"
fi
out=$("$wharfd" -c revoked.json 2>&1) && fail "a start with a revoked response" ||
    case $out in *"the certificate is revoked"*) ok "a start with a revoked response fails" ;;
    *) fail "start: $out" ;; esac
"$wharfd" -T -c good.json >dump.json 2>/dev/null
if python3 -c '
import json
t = json.load(open("dump.json"))["listeners"][0]["tls"]
assert t["ocsp_file"].endswith("/good.der"), t
'; then ok "-T: ocsp_file, made absolute"; else fail "-T: $(cat dump.json)"; fi

# ---- the server ----------------------------------------------------------------------
ports=$(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
p_ocsp=$1 p_plain=$2 p_short=$3 p_metrics=$4
# short.der expires 10 s from now, while the server runs.
"$make_resp" short.der ca.crt leaf.crt responder.crt responder.key good -60 10
short_made=$(date +%s)
cat >w.json <<JSON
{"workers": 2, "listeners": [
 {"name": "ocsp", "port": $p_ocsp, "handler": "echo",
  "tls": {"cert": "leaf.chain", "key": "leaf.key", "ocsp_file": "serve.der",
          "sni": [{"cert": "second.chain", "key": "second.key", "ocsp_file": "good2.der"},
                  {"cert": "unknown.chain", "key": "unknown.key"}]}},
 {"name": "plain", "port": $p_plain, "handler": "echo",
  "tls": {"cert": "leaf.chain", "key": "leaf.key",
          "sni": [{"cert": "second.chain", "key": "second.key", "ocsp_file": "good2.der"}]}},
 {"name": "short", "port": $p_short, "handler": "echo",
  "tls": {"cert": "leaf.chain", "key": "leaf.key", "ocsp_file": "short.der"}},
 {"name": "metrics", "port": $p_metrics, "handler": "metrics"}
]}
JSON
"$wharfd" -c w.json 2>server.log &
pid=$!
if ! wait_file server.log "started:"; then
    fail "wharfd did not start: $(cat server.log)"
    finish
fi

# nextupd DER-FILE: the response's nextUpdate as openssl prints it, in Unix time
nextupd() {
    openssl ocsp -respin "$1" -resp_text -noverify 2>/dev/null | python3 -c '
import calendar, re, sys, time
m = re.search(r"Next Update: (\w+ +\d+ [\d:]+ \d+) GMT", sys.stdin.read())
print(calendar.timegm(time.strptime(" ".join(m.group(1).split()), "%b %d %H:%M:%S %Y")) if m else "")'
}
# gauge LISTENER CERTIFICATE: wharf_tls_ocsp_next_update_seconds of that pair ("" if none)
gauge() {
    want="wharf_tls_ocsp_next_update_seconds{listener=\"$1\",certificate=\"$2\"} "
    scrape "$p_metrics" | while IFS= read -r l; do
        case $l in "$want"*) printf '%s' "${l#"$want"}" ;; esac
    done
    echo
}
# sc PORT ARGS...: one line through openssl s_client -msg, its whole output
sc() {
    p=$1
    shift
    (printf 'hello\n'; sleep 0.3) | timeout 10 openssl s_client -connect 127.0.0.1:"$p" \
        -CAfile ca.crt -verify_return_error -msg "$@" 2>&1
}
# stapled OUTPUT-FILE DER-FILE: whether a message the server sent holds the
# DER file's bytes (s_client -msg prints each handshake message in hex)
stapled() {
    python3 - "$1" "$2" <<'PY'
import re, sys
der = open(sys.argv[2], "rb").read()
blocks, cur = [], None
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("<<<") or line.startswith(">>>"):
        cur = bytearray() if line.startswith("<<<") else None
        if cur is not None:
            blocks.append(cur)
    elif cur is not None and re.fullmatch(r"\s+([0-9a-f]{2} ?)+\s*", line):
        cur += bytes.fromhex(line.replace(" ", "").strip())
    elif cur is not None:
        cur = None
sys.exit(0 if any(der in b for b in blocks) else 1)
PY
}
# certlen OUTPUT-FILE: the length of the TLS 1.3 Certificate message
certlen() { sed -n 's/^<<< TLS 1.3, Handshake \[length \([0-9a-f]*\)\], Certificate$/\1/p' "$1" | head -1; }

sc "$p_short" -status -servername localhost >short1.out
stapled short1.out short.der && ok "short.der stapled while it is valid" ||
    fail "short.der, $(($(date +%s) - short_made)) s after it was made: $(cat short1.out)"
g1=$(gauge ocsp cert) g2=$(gauge ocsp "sni[0]") g3=$(gauge plain cert) g4=$(gauge plain "sni[0]")
if [ -n "$g1" ] && [ "$g1" = "$(nextupd good.der)" ] && [ "$g2" = "$(nextupd good2.der)" ] &&
    [ -z "$g3" ] && [ "$g4" = "$(nextupd good2.der)" ]; then
    ok "wharf_tls_ocsp_next_update_seconds: each certificate's nextUpdate ($g1, $g2; none without ocsp_file)"
else
    fail "wharf_tls_ocsp_next_update_seconds: $g1 $g2 '$g3' $g4, want $(nextupd good.der) $(nextupd good2.der)"
fi
if command -v promtool >/dev/null; then
    python3 -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode())' \
        "$p_metrics" >scrape.txt
    promtool check metrics <scrape.txt >promtool.out 2>&1 &&
        ok "promtool check metrics: the scrape with the gauge is valid" ||
        fail "promtool: $(tail -n 5 promtool.out)"
fi
for v in 1_2 1_3; do
    tv=TLS1.${v#1_}
    sc "$p_ocsp" -tls$v -status -servername localhost >s$v.out
    out=$(cat s$v.out)
    case $out in
    *"OCSP Response Status: successful (0x0)"*"Cert Status: good"*"Verify return code: 0 (ok)"*"hello"*)
        ok "s_client -tls$v -status: successful, good, echo" ;;
    *) fail "s_client -tls$v -status: $out" ;;
    esac
    stapled s$v.out good.der && ok "$tv: the stapled bytes are good.der's" ||
        fail "$tv: good.der's bytes not in what the server sent"
    sc "$p_ocsp" -tls$v -servername localhost >n$v.out
    out=$(cat n$v.out)
    case $out in
    *"OCSP response"* | *"OCSP Response"*) fail "s_client -tls$v without -status: a response" ;;
    *"hello"*) ok "s_client -tls$v without -status: echo, no OCSP" ;;
    *) fail "s_client -tls$v without -status: $out" ;;
    esac
    stapled n$v.out good.der && fail "$tv without -status: the response was sent"
done
grep -q "CertificateStatus" s1_2.out && ! grep -q "CertificateStatus" n1_2.out &&
    ok "TLS 1.2: CertificateStatus only when asked for" || fail "TLS 1.2 CertificateStatus"
with=$(certlen s1_3.out) without=$(certlen n1_3.out) size=$(wc -c <good.der)
if [ -n "$with" ] && [ -n "$without" ] && [ $((0x$with - 0x$without)) = $((size + 8)) ]; then
    ok "TLS 1.3: the Certificate message is $((size + 8)) bytes longer when asked (the response + 8)"
else
    fail "TLS 1.3 Certificate lengths: with $with, without $without, response $size"
fi
for v in 1_2 1_3; do
    tv=TLS1.${v#1_}
    sc "$p_ocsp" -tls$v -status -servername second.test >sni$v.out
    out=$(cat sni$v.out)
    case $out in
    *"Cert Status: good"*"subject=CN = second.test"*"hello"*) ;;
    *) fail "SNI second.test -tls$v: $out"; continue ;;
    esac
    stapled sni$v.out good2.der && ! stapled sni$v.out good.der &&
        ok "SNI second.test, $tv: its own response (good2.der)" ||
        fail "SNI second.test, $tv: not good2.der's bytes"
done
out=$(sc "$p_ocsp" -status -servername unknown.test)
case $out in *"OCSP response: no response sent"*"subject=CN = unknown.test"*"hello"*)
    ok "an sni certificate without ocsp_file: no response (not the listener's)" ;;
*) fail "sni[1] without ocsp_file: $out" ;; esac
out=$(sc "$p_plain" -status -servername localhost)
case $out in *"OCSP response: no response sent"*"hello"*) ok "no ocsp_file: no response sent" ;;
*) fail "no ocsp_file: $out" ;; esac
sc "$p_plain" -status -servername second.test >plainsni.out
stapled plainsni.out good2.der &&
    ok "no ocsp_file on the listener, one on its sni[0]: that certificate's response" ||
    fail "sni[0] of a listener without ocsp_file: $(cat plainsni.out)"
# Past its nextUpdate (bounded: 11 s after it was made).
while [ "$(date +%s)" -le $((short_made + 11)) ]; do sleep 0.2; done
for i in 1 2; do
    out=$(sc "$p_short" -status -servername localhost)
    case $out in *"OCSP response: no response sent"*"hello"*) ;;
    *) fail "short.der past its nextUpdate, handshake $i: $out" ;; esac
done
n=$(grep -c "listeners\[2\].tls.ocsp_file: $tmp/short.der: the OCSP response has expired (nextUpdate passed): it is no longer stapled" server.log)
[ "$n" = 1 ] && ok "past its nextUpdate a response is no longer stapled, warned once" ||
    fail "expiry at run time: $n warnings: $(grep -i ocsp server.log)"

# ---- reload -------------------------------------------------------------------------
cp later.der serve.der
cp good.der short.der
kill -HUP "$pid"
i=0
while [ $i -lt 100 ] && [ "$(grep -c "reloaded" server.log)" -lt 1 ]; do sleep 0.05; i=$((i + 1)); done
sc "$p_ocsp" -tls1_3 -status -servername localhost >r1.out
if grep -q "Cert Status: good" r1.out && stapled r1.out later.der; then
    ok "SIGHUP: a new connection gets the new response (later.der)"
    g=$(gauge ocsp cert)
    [ "$g" = "$(nextupd later.der)" ] && ok "after SIGHUP the gauge is later.der's nextUpdate" ||
        fail "gauge after SIGHUP: $g, want $(nextupd later.der)"
else
    fail "after SIGHUP: $(grep -i reload server.log) $(cat r1.out)"
fi
cp expired.der serve.der
kill -HUP "$pid"
i=0
while [ $i -lt 100 ] && ! grep -q "the response has expired" server.log; do sleep 0.05; i=$((i + 1)); done
if grep "reload failed" server.log |
    grep -q "listeners\[0\].tls.ocsp_file: $tmp/serve.der: the response has expired"; then
    ok "an expired response refuses the reload, naming the file"
else
    fail "revoked response at reload: $(grep -i reload server.log)"
fi
sc "$p_ocsp" -tls1_2 -status -servername localhost >r2.out
stapled r2.out later.der && ok "after the refused reload the previous response is stapled" ||
    fail "after the refused reload: $(cat r2.out)"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] && ok "wharfd stopped cleanly" || fail "wharfd exit status $rc"
finish
