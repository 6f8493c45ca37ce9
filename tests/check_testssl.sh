#!/bin/sh
# check_testssl.sh - testssl.sh (Debian package testssl.sh) against wharfd
# TLS listeners with the shipped recommended settings (the tls object's
# defaults: no versions, ciphers or options set), one with an ECDSA P-256
# and one with an RSA-2048 certificate, both from a CA made here (given to
# testssl with --add-ca, so the chain is trusted and the only findings are
# the server's own).  No finding may be rated HIGH or CRITICAL; every finding
# from LOW up is printed.
#
# The listeners run the daytime handler: it answers and closes, so each of
# testssl's probes ends at once (a handler that waits for more, as discard
# does, makes every probe wait for testssl's read timeout).
#
# testssl is a shell script that forks a great deal: a full run takes 10 to
# 20 minutes on a loaded 2-core machine, and even the checks below took 446 s
# for one listener there with all the vulnerability checks.  So by default
# this runs, for both listeners at once, the checks that find HIGH and
# CRITICAL problems in a TLS server's own settings: the protocols offered
# (-p: SSLv2, SSLv3, TLS 1.0 and 1.1 must not be), the cipher categories
# (-s: NULL, export, RC4, 3DES, CBC and anonymous ciphers), Heartbleed, CCS
# injection, secure renegotiation, CRIME (TLS compression) and ROBOT.
# TESTSSL_FULL=1 runs testssl's default run (every check) instead;
# bench/testssl.sh does that.
#
# Needs testssl (Debian: testssl.sh) and openssl; skips (77) without.
set -u
src=$(cd "${WHARF_SRCDIR:-.}" && pwd)
build=$(cd "${WHARF_BUILDDIR:-.}" && pwd)
wharfd=${WHARFD:-$build/wharfd}
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}
testssl=$(command -v testssl || command -v testssl.sh || true)
if [ -z "$testssl" ] || ! command -v openssl >/dev/null 2>&1 || ! command -v python3 >/dev/null; then
    echo "SKIP: needs testssl, openssl and python3 (Debian: testssl.sh, openssl, python3)"
    exit 77
fi

# testssl judges the TLS settings, which a sanitizer build does not change:
# the plain build's run is the one that counts (2 to 7 minutes of forks).
if [ "${WHARF_SANITIZER:-none}" != none ]; then
    echo "SKIP: testssl runs in the plain build only (WHARF_SANITIZER=$WHARF_SANITIZER)"
    exit 77
fi

tmp=$(mktemp -d)
pid=
passed=0
failed=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] && cp -r "$tmp" /tmp/testssl-keep
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
cd "$tmp" || exit 1

# ---- a CA, and P-256 and RSA-2048 server certificates for localhost ---------------
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -subj "/CN=wharf testssl CA" -days 90 -out ca.crt 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext
for k in ec rsa; do
    openssl req -new -key $k.key -subj "/CN=localhost" -out $k.csr 2>/dev/null
    openssl x509 -req -in $k.csr -CA ca.crt -CAkey ca.key -set_serial 0x$(openssl rand -hex 8) \
        -days 90 -extfile ext -out $k.crt 2>/dev/null
done
chmod 600 ./*.key
if [ ! -s ec.crt ] || [ ! -s rsa.crt ]; then
    echo "FAIL: openssl could not make the test certificates"
    exit 1
fi

# ---- wharfd: the recommended settings (the defaults) --------------------------------
cat >wharf.json <<JSON
{"workers": 2, "shutdown_timeout_ms": 2000, "listeners": [
 {"name": "ec", "address": "127.0.0.1", "port": 0, "handler": "daytime",
  "tls": {"cert": "ec.crt", "key": "ec.key"}},
 {"name": "rsa", "address": "127.0.0.1", "port": 0, "handler": "daytime",
  "tls": {"cert": "rsa.crt", "key": "rsa.key"}}]}
JSON
"$wharfd" -c wharf.json 2>wharf.log &
pid=$!
i=0
while [ $i -lt 600 ] && ! grep -q "started:" wharf.log; do sleep 0.05; i=$((i + 1)); done
ec_port=$(sed -n 's/.*\[ec\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' wharf.log)
rsa_port=$(sed -n 's/.*\[rsa\] listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' wharf.log)
if [ -z "$ec_port" ] || [ -z "$rsa_port" ]; then
    echo "FAIL: wharfd did not start: $(cat wharf.log)"
    exit 1
fi

if [ -n "${TESTSSL_FULL:-}" ]; then
    checks=
    limit=1200
else
    checks="--protocols --std --heartbleed --ccs-injection --renegotiation --crime --robot"
    limit=600
fi
# testssl NAME PORT: runs it; the JSON findings in NAME.json.
run_testssl() {
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout $limit "$testssl" --quiet --color 0 --warnings off --add-ca "$tmp/ca.crt" \
        --connect-timeout 5 --openssl-timeout 5 --severity LOW --jsonfile "$1.json" \
        $checks "127.0.0.1:$2" >"$1.out" 2>&1
    rc=$?
    echo "testssl $1: exit $rc in $(($(date +%s) - start)) s"
    if [ ! -s "$1.json" ] || grep -q '"scanTime".*Scan interrupted' "$1.json"; then
        fail "testssl $1 did not finish (exit $rc): $(tail -5 "$1.out")"
        return
    fi
    python3 - "$1.json" "$1" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
bad = 0
for f in findings:
    sev = f.get("severity", "")
    if sev in ("LOW", "MEDIUM", "HIGH", "CRITICAL"):
        print("  %s: %s %s: %s" % (sys.argv[2], sev, f.get("id"), f.get("finding", "")[:120]))
    if sev in ("HIGH", "CRITICAL"):
        bad += 1
print("  %s: %d findings, %d HIGH or CRITICAL" % (sys.argv[2], len(findings), bad))
sys.exit(1 if bad else 0)
PY
    if [ $? -eq 0 ]; then
        ok "testssl ${TESTSSL_FULL:+(full) }against the $1 listener: nothing HIGH or CRITICAL"
    else
        fail "testssl against the $1 listener: HIGH or CRITICAL findings (above)"
    fi
}
run_testssl ecdsa-p256 "$ec_port" >ecdsa-p256.result &
ec_job=$!
run_testssl rsa-2048 "$rsa_port" >rsa-2048.result
wait $ec_job
cat ecdsa-p256.result rsa-2048.result
passed=$(grep -c '^ok:' ecdsa-p256.result rsa-2048.result | awk -F: '{ n += $2 } END { print n }')
failed=$(grep -c '^FAIL:' ecdsa-p256.result rsa-2048.result | awk -F: '{ n += $2 } END { print n }')

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
