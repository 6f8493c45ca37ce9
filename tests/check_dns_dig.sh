#!/bin/sh
# check_dns_dig.sh - the DNS handler (handlers/dns, docs/dns.md) under dig
# (bind9-dnsutils), against a real wharfd with the handler on a UDP and a
# TCP listener (ephemeral ports): every record type, NXDOMAIN, NODATA with
# the SOA, CNAME chains, referrals, flags (aa, no ra, rd echoed, +norec),
# EDNS0 sizes (+bufsize, +noedns), truncation then +tcp, pipelined queries
# on one TCP connection, malformed datagrams (the server stays up), queries
# from echo-like service ports dropped, a zone
# reload on SIGHUP while a client keeps asking (no query lost), a bad zone
# refused on reload with its file and line (the old zone keeps answering),
# a bad zone at start-up (file, line, JSON path; exit non-zero), and several
# zones on one listener ("zones") with their bad forms refused.
#
# Skips (77) without dig or python3.
. "$(dirname "$0")/lib/common.sh"
for tool in dig python3; do
    command -v $tool >/dev/null 2>&1 || { echo "SKIP: $tool not found (Debian: bind9-dnsutils)"; exit 77; }
done
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}

cp "$src/tests/dns/test.zone" "$tmp/zone"
cat >"$tmp/dns.json" <<JSON
{"workers": 2, "shutdown_timeout_ms": 2000, "listeners": [
 {"name": "udp", "protocol": "udp", "address": "127.0.0.1", "port": 0, "handler": "dns",
  "options": {"zone": "$tmp/zone", "origin": "example.test."}},
 {"name": "tcp", "protocol": "tcp", "address": "127.0.0.1", "port": 0, "handler": "dns",
  "options": {"zone": "$tmp/zone", "origin": "example.test."}}]}
JSON
if ! start_wharfd -c "$tmp/dns.json"; then
    fail "wharfd did not start: $(cat "$tmp/log")"
    finish
fi
U=$(port_of udp)
T=$(port_of tcp)

# d ARGS...: dig at the UDP listener, 5 s, one try.
d() { dig -p "$U" @127.0.0.1 +time=5 +tries=1 "$@" 2>&1; }
dt() { dig -p "$T" @127.0.0.1 +tcp +time=5 +tries=1 "$@" 2>&1; }

# expect_short NAME TYPE WANT: dig +short (lines sorted, joined by "|").
expect_short() {
    got=$(d +short "$1" "$2" | sort | tr '\n' '|')
    if [ "$got" = "$3" ]; then ok "$2 $1: $got"; else fail "$2 $1: got '$got', want '$3'"; fi
}

# 1. Every record type.
expect_short www.example.test A '192.0.2.80|'
expect_short www.example.test AAAA '2001:db8::80|'
expect_short example.test MX '10 mail.example.test.|'
expect_short example.test NS 'ns1.example.test.|ns2.example.test.|'
expect_short example.test SOA \
    'ns1.example.test. hostmaster.example.test. 2026120301 7200 900 604800 300|'
expect_short txt.example.test TXT '"hello world" "second \"quoted\" string" "semi;colon" "ABC"|'
expect_short _sip._tcp.example.test SRV '10 60 5060 sip.example.test.|'
expect_short 80.2.0.192.in-addr.example.test PTR 'www.example.test.|'
expect_short alias.example.test CNAME 'www.example.test.|'
expect_short chain.example.test A '192.0.2.80|alias.example.test.|www.example.test.|'
expect_short anything.wild.example.test A '192.0.2.99|'
expect_short MiXeDcAsE.EXAMPLE.test A '192.0.2.77|'
expect_short many.example.test A \
    '192.0.2.101|192.0.2.102|192.0.2.103|192.0.2.104|192.0.2.105|192.0.2.106|192.0.2.107|192.0.2.108|'

# 2. Header and sections, from dig's comments.
out=$(d www.example.test A)
case $out in
*"status: NOERROR"*"flags: qr aa rd;"*"ANSWER: 1, AUTHORITY: 0"*) ok "flags qr aa rd, no ra" ;;
*) fail "flags for www A: $out" ;;
esac
out=$(d +norec www.example.test A)
case $out in
*"flags: qr aa;"*) ok "+norec: rd not echoed" ;;
*) fail "+norec: $out" ;;
esac
out=$(d nothere.example.test A)
case $out in
*"status: NXDOMAIN"*"flags: qr aa rd;"*"ANSWER: 0, AUTHORITY: 1"*"AUTHORITY SECTION:"*"example.test."*"300"*"SOA"*)
    ok "NXDOMAIN with the SOA (negative TTL 300)" ;;
*) fail "NXDOMAIN: $out" ;;
esac
out=$(d www.example.test MX)
case $out in
*"status: NOERROR"*"ANSWER: 0, AUTHORITY: 1"*"SOA"*) ok "NODATA with the SOA" ;;
*) fail "NODATA: $out" ;;
esac
out=$(d www.example.org A)
case $out in
*"status: REFUSED"*"flags: qr rd;"*) ok "out of zone: REFUSED, not authoritative" ;;
*) fail "out of zone: $out" ;;
esac
out=$(d host.sub.example.test A)
case $out in
*"status: NOERROR"*"flags: qr rd;"*"AUTHORITY SECTION:"*"sub.example.test."*"NS"*"ADDITIONAL SECTION:"*"ns.sub.example.test."*"192.0.2.53"*)
    ok "referral: NS in authority, glue in additional, no aa" ;;
*) fail "referral: $out" ;;
esac
out=$(d dangling.example.test A)
case $out in
*"status: NXDOMAIN"*"ANSWER: 1, AUTHORITY: 1"*) ok "CNAME to a missing name: NXDOMAIN with the CNAME" ;;
*) fail "dangling CNAME: $out" ;;
esac
out=$(d example.test MX)
case $out in
*"ADDITIONAL SECTION:"*"mail.example.test."*"192.0.2.25"*) ok "MX target in additional" ;;
*) fail "MX additional: $out" ;;
esac

# 3. EDNS0 and truncation: big.example.test TXT is about 700 bytes.
out=$(d +noedns +ignore big.example.test TXT)
case $out in
*"flags: qr aa tc rd;"*"ANSWER: 0"*"MSG SIZE  rcvd: 34"*) ok "no EDNS0: 512 bytes, TC=1 and the question alone" ;;
*) fail "no EDNS0: $out" ;;
esac
out=$(d +bufsize=512 +ignore big.example.test TXT)
case $out in
*"flags: qr aa tc rd;"*"udp: 1232"*) ok "+bufsize=512: TC=1, our OPT says 1232" ;;
*) fail "+bufsize=512: $out" ;;
esac
out=$(d +bufsize=100 +ignore big.example.test TXT)
case $out in
*"flags: qr aa tc rd;"*) ok "+bufsize=100 counts as 512: TC=1" ;;
*) fail "+bufsize=100: $out" ;;
esac
out=$(d +bufsize=1232 big.example.test TXT)
case $out in
*"flags: qr aa rd;"*"ANSWER: 6"*) ok "+bufsize=1232: the whole answer over UDP" ;;
*) fail "+bufsize=1232: $out" ;;
esac
out=$(d +bufsize=4096 big.example.test TXT)
size=$(printf '%s\n' "$out" | sed -n 's/.*MSG SIZE  rcvd: \([0-9]*\).*/\1/p')
if [ -n "$size" ] && [ "$size" -le 1232 ]; then ok "+bufsize=4096: $size bytes (capped at 1232)"; else fail "+bufsize=4096: $out"; fi
out=$(dt +noedns big.example.test TXT)
case $out in
*"flags: qr aa rd;"*"ANSWER: 6"*) ok "then +tcp: the whole answer" ;;
*) fail "+tcp: $out" ;;
esac
out=$(dt huge.example.test TXT)
size=$(printf '%s\n' "$out" | sed -n 's/.*MSG SIZE  rcvd: \([0-9]*\).*/\1/p')
case $out in
*"ANSWER: 20,"*) ok "TCP: an answer of $size bytes (over 4096)" ;;
*) fail "TCP huge: $out" ;;
esac
out=$(d +bufsize=4096 +ignore huge.example.test TXT)
case $out in
*"flags: qr aa tc rd;"*) ok "the same over UDP with +bufsize=4096: TC=1" ;;
*) fail "UDP huge: $out" ;;
esac
out=$(d +edns=1 +noednsneg www.example.test A)
case $out in
*"status: BADVERS"*) ok "EDNS version 1: BADVERS" ;;
*) fail "EDNS version 1: $out" ;;
esac
out=$(d +notcp example.test ANY)
case $out in
*"ANSWER: 2,"*"NS"*) ok "ANY over UDP: one RRset (RFC 8482)" ;;
*) fail "ANY over UDP: $out" ;;
esac
out=$(dt example.test ANY)
case $out in
*"ANSWER: 5,"*) ok "ANY over TCP: every RRset" ;;
*) fail "ANY over TCP: $out" ;;
esac
out=$(dt example.test AXFR)
case $out in
*"Transfer failed"*|*"REFUSED"*) ok "AXFR refused" ;;
*) fail "AXFR: $out" ;;
esac

# 4. Pipelined TCP, split at every byte, and malformed datagrams.
python3 - "$U" "$T" >"$tmp/py.out" 2>&1 <<'PY'
import socket, struct, sys, time
U, T = int(sys.argv[1]), int(sys.argv[2])

def q(qid, name, qtype=1):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + wire + struct.pack(">HH", qtype, 1)

def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b

names = ["www.example.test", "nothere.example.test", "big.example.test", "chain.example.test"]
stream = b"".join(struct.pack(">H", len(m)) + m for m in (q(i + 1, n, 16 if "big" in n else 1) for i, n in enumerate(names)))
for mode in ("one write", "byte by byte"):
    s = socket.create_connection(("127.0.0.1", T), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "one write":
        s.sendall(stream)
    else:
        for i in range(len(stream)):
            s.send(stream[i:i + 1])
            time.sleep(0.001)
    ids, rcodes = [], []
    for _ in names:
        n = struct.unpack(">H", recv_exact(s, 2))[0]
        m = recv_exact(s, n)
        ids.append(struct.unpack(">H", m[:2])[0])
        rcodes.append(m[3] & 15)
    s.close()
    print("ok" if ids == [1, 2, 3, 4] and rcodes == [0, 3, 0, 0] else "FAIL",
          "pipelined TCP, %s: ids %s rcodes %s" % (mode, ids, rcodes))

# a message that is not a query (QR set) after a good one: answered, then closed
s = socket.create_connection(("127.0.0.1", T), timeout=5)
good = q(1, "www.example.test")
resp = bytearray(q(2, "www.example.test"))
resp[2] |= 0x80
s.sendall(struct.pack(">H", len(good)) + good + struct.pack(">H", len(resp)) + bytes(resp))
n = struct.unpack(">H", recv_exact(s, 2))[0]
first = recv_exact(s, n)
rest = s.recv(100)
s.close()
print("ok" if first[:2] == b"\x00\x01" and rest == b"" else "FAIL",
      "TCP: a response in the stream closes the connection after the answers before it")

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
bad = [b"", b"\x00", b"\x12\x34\x01\x00\x00\x01", bytes(12),
       q(9, "www.example.test")[:20],
       bytes.fromhex("00090000000100000000000003777777c00c00010001"),
       bytes.fromhex("000a0000000100000000000001") + b"\xff" * 400,
       b"\x00\x0b\x80" + bytes(30)]
answered = 0
for b in bad:
    u.sendto(b, ("127.0.0.1", U))
    try:
        m = u.recv(4096)
        answered += 1
        if len(m) < 12 or not (m[2] & 0x80):
            print("FAIL malformed %r got %r" % (b[:16], m[:16]))
    except socket.timeout:
        pass
# a source on chargen's port (19) or echo's (7) is never answered, nor one
# on port 0 (a datagram cannot come from there, so that one is left out)
for port in (19, 7):
    g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        g.bind(("127.0.0.1", port))
    except OSError as e:
        print("ok", "source port %d: skipped (cannot bind: %s)" % (port, e.strerror))
        continue
    g.settimeout(0.5)
    g.sendto(q(5, "www.example.test"), ("127.0.0.1", U))
    try:
        g.recv(4096)
        print("FAIL", "a query from port %d was answered" % port)
    except socket.timeout:
        print("ok", "a query from port %d (an echo-like service) is dropped" % port)
    g.close()
u.sendto(q(77, "www.example.test"), ("127.0.0.1", U))
m = u.recv(4096)
print("ok" if m[:2] == b"\x00\x4d" and (m[3] & 15) == 0 else "FAIL",
      "malformed datagrams: %d of %d answered (FORMERR), the rest dropped; still answering" % (answered, len(bad)))
PY
while read -r verdict rest; do
    if [ "$verdict" = ok ]; then ok "$rest"; else fail "$verdict $rest"; fi
done <"$tmp/py.out"

# 5. Reload: a new zone while a client keeps asking; none is lost, and the
# answers change from the old zone's to the new one's.
python3 - "$U" "$tmp/stop" >"$tmp/loop.out" 2>&1 <<'PY' &
import os, socket, struct, sys, time
U, stop = int(sys.argv[1]), sys.argv[2]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
wire = b"\x03www\x07example\x04test\x00"
sent = lost = 0
seen = set()
end = time.time() + 30
while time.time() < end and not os.path.exists(stop):
    sent += 1
    u.sendto(struct.pack(">HHHHHH", sent & 0xffff, 0, 1, 0, 0, 0) + wire + b"\x00\x01\x00\x01", ("127.0.0.1", U))
    try:
        while True:
            m = u.recv(4096)
            if struct.unpack(">H", m[:2])[0] == sent & 0xffff:
                seen.add(".".join(str(b) for b in m[-4:]))
                break
    except socket.timeout:
        lost += 1
    if sent == 200:
        print("running", flush=True)
print("done", sent, lost, " ".join(sorted(seen)), flush=True)
PY
loop=$!
also_kill=$loop
wait_file "$tmp/loop.out" running >/dev/null
sed 's/^www .*192.0.2.80$/www IN A 192.0.2.81/' "$src/tests/dns/test.zone" >"$tmp/zone.new"
printf 'added IN A 192.0.2.200\n' >>"$tmp/zone.new"
mv "$tmp/zone.new" "$tmp/zone"
sleep 0.3
kill -HUP "$pid"
wait_file "$tmp/log" "reloaded: generation 2" >/dev/null
sleep 0.5
touch "$tmp/stop"
wait "$loop"
also_kill=
read -r word sent lost seen <<EOF
$(grep done "$tmp/loop.out")
EOF
if [ "${lost:-x}" = 0 ] && [ "${sent:-0}" -gt 200 ] && [ "$seen" = "192.0.2.80 192.0.2.81" ]; then
    ok "reload under load: $sent queries, none lost, answers from the old zone then the new"
else
    fail "reload under load: $(cat "$tmp/loop.out")"
fi
expect_short added.example.test A '192.0.2.200|'
expect_short www.example.test A '192.0.2.81|'

# 6. A bad zone on reload: refused with the file and line; the old zone answers.
cp "$tmp/zone" "$tmp/zone.good"
printf 'broken IN A 300.1.2.3\n' >>"$tmp/zone"
line=$(wc -l <"$tmp/zone")
kill -HUP "$pid"
if wait_file "$tmp/log" "reload failed.*$tmp/zone:$line: expected an IPv4 address after A"; then
    ok "bad zone on reload refused: $(grep "$tmp/zone:$line" "$tmp/log" | head -n1 | cut -c1-200)"
else
    fail "bad zone on reload: $(tail -n 5 "$tmp/log")"
fi
expect_short added.example.test A '192.0.2.200|'
expect_short broken.example.test A ''

out=$(d www.example.test A)
stop_wharfd
case $status in
0) ok "stopped cleanly" ;;
*) fail "wharfd exit status $status" ;;
esac
if grep -q "dns: zone example.test.: counters since start: queries=[1-9]" "$tmp/log"; then
    ok "counters logged: $(grep -m1 'counters since start' "$tmp/log" | sed 's/.*counters since start://' | cut -c1-150)"
else
    fail "no counters in the log"
fi

# 7. A bad zone at start-up: file, line, JSON path; exit status not 0.
printf '$TTL 60\n@ SOA a b 1 2 3 4 5\nx IN MX 10\n' >"$tmp/bad.zone"
sed "s|$tmp/zone|$tmp/bad.zone|" "$tmp/dns.json" >"$tmp/bad.json"
"$real" -c "$tmp/bad.json" 2>"$tmp/bad.log" &
bad=$!
also_kill=$bad
i=0
while [ $i -lt 100 ] && kill -0 "$bad" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
wait "$bad"
rc=$?
also_kill=
if [ "$rc" != 0 ] && grep -q "listeners\\[0\\].*$tmp/bad.zone:3: expected a preference and an exchange name after MX" "$tmp/bad.log"; then
    ok "bad zone at start: $(head -n1 "$tmp/bad.log" | cut -c1-200)"
else
    fail "bad zone at start (rc $rc): $(cat "$tmp/bad.log")"
fi

# 8. Several zones on one listener ("zones"): each answers for its own names
# (the longest origin wins: sub.other.test is a zone of its own below
# other.test); a name in neither is REFUSED; a zone given twice, "zone" with
# "zones", and "origin" with "zones" are refused by -t with the JSON path.
printf '$ORIGIN other.test.\n$TTL 60\n@ SOA ns1 host 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\nwww A 198.51.100.7\n' >"$tmp/other.zone"
printf '$ORIGIN sub.other.test.\n$TTL 60\n@ SOA ns1 host 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.2\nwww A 198.51.100.8\n' >"$tmp/sub.zone"
cat >"$tmp/zones.json" <<JSON
{"workers": 1, "listeners": [
 {"name": "udp", "protocol": "udp", "address": "127.0.0.1", "port": 0, "handler": "dns",
  "options": {"zones": ["$src/tests/dns/test.zone", "$tmp/other.zone", "$tmp/sub.zone"]}}]}
JSON
if start_wharfd -c "$tmp/zones.json"; then
    U=$(port_of udp)
    expect_short www.example.test A '192.0.2.80|'
    expect_short www.other.test A '198.51.100.7|'
    expect_short www.sub.other.test A '198.51.100.8|'
    out=$(d www.example.org A)
    case $out in
    *"status: REFUSED"*) ok "zones: a name in none of them is REFUSED" ;;
    *) fail "zones, out of all zones: $out" ;;
    esac
    stop_wharfd
else
    fail "wharfd with three zones did not start: $(cat "$tmp/log")"
fi
# refused_t NAME OPTIONS WANT: wharfd -t with these options refuses with WANT
refused_t() {
    printf '{"listeners": [{"protocol": "udp", "address": "127.0.0.1", "port": 0, "handler": "dns", "options": %s}]}\n' "$2" >"$tmp/refuse.json"
    out=$("$real" -t -c "$tmp/refuse.json" 2>&1)
    case $out in
    *"listeners[0].options"*"$3"*) ok "$1 refused: $(echo "$out" | tail -n1 | sed 's/.*refused its options: //')" ;;
    *) fail "$1: $out" ;;
    esac
}
refused_t "a zone given twice" "{\"zones\": [\"$tmp/other.zone\", \"$tmp/other.zone\"]}" \
    "zones[1]: $tmp/other.zone: zone other.test. is also zones[0]"
refused_t "zone with zones" "{\"zone\": \"$tmp/other.zone\", \"zones\": [\"$tmp/other.zone\"]}" \
    'expected either "zone" or "zones", not both'
refused_t "origin with zones" "{\"zones\": [\"$tmp/other.zone\"], \"origin\": \"x.\"}" \
    'origin: goes with "zone"'
refused_t "an empty zones" '{"zones": []}' "zones: expected an array of 1 to 64 zone file paths"
refused_t "a bad file in zones" "{\"zones\": [\"$tmp/other.zone\", \"$tmp/bad.zone\"]}" \
    "zones[1]: $tmp/bad.zone:2: expected \$ORIGIN"
finish
