#!/bin/sh
# check_load_cache.sh - wharf-load's cache workloads against a real memcached started here
# (ephemeral port on 127.0.0.1, ended by its pid): --preload fills the key space (cmd_set =
# keys), gets after it all hit (hits = memcached's get_hits, misses 0), a get/set mix with
# multi-gets counts hits and misses exactly as memcached does (get_hits, get_misses,
# cmd_set), every value verifies (bad_value 0), per-command latency is in the JSON, and the
# key patterns and --ratio are accepted or refused by name. Then --proto redis against a
# real redis-server (no persistence, ended by its pid): preload, GET and MGET, hits and
# misses equal redis's keyspace_hits/keyspace_misses and the SETs and GETs its INFO
# commandstats (that part is skipped without redis-server).
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
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
for prog in memcached python3; do
    command -v $prog >/dev/null || { echo "SKIP: $prog is needed (Debian packages memcached python3)"; exit 77; }
done
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    i=0
    while [ $i -lt 100 ] && ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), timeout=1).close()" 2>/dev/null; do
        sleep 0.05; i=$((i + 1))
    done
}
jget() { python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }
# mcstats PORT: memcached's counters as "get_hits get_misses cmd_set"
mcstats() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"stats\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
st = dict(l.split()[1:3] for l in buf.decode().splitlines() if l.startswith("STAT "))
print(st["get_hits"], st["get_misses"], st["cmd_set"])
PY
}
# start_mc: a fresh memcached; sets $port
start_mc() {
    port=$(free_port)
    muser=
    [ "$(id -u)" = 0 ] && muser="-u daemon"
    memcached $muser -l 127.0.0.1 -p "$port" -U 0 -t 2 -m 64 2>"$tmp/mc.log" &
    pids="$pids $!"
    mcpid=$!
    wait_port "$port"
}
stop_mc() { kill "$mcpid" 2>/dev/null; wait "$mcpid" 2>/dev/null; }

# 1. preload, then gets only: every get hits, counts equal memcached's
start_mc
"$load" --proto memcache --preload --keys 2000 --ratio 0:1 --key-pattern zipf:0.9 \
    -c 4 -p 4 -n 5000 -d 30 -j 127.0.0.1:$port >"$tmp/r1.json" 2>"$tmp/r1.err"
rc=$?
v=$(jget "$tmp/r1.json" '"%d %d %d %d %d" % (r["counters"]["measured"], r["counters"]["hits"], r["counters"]["misses"], r["counters"]["bad_value"], r["requests"]["preload"]["sets"])')
s=$(mcstats $port)
[ $rc -eq 0 ] && [ "$v" = "5000 5000 0 0 2000" ] && [ "$s" = "5000 0 2000" ] &&
    grep -q "preload: 2000 of 2000 keys set in" "$tmp/r1.err" &&
    ok "--preload: 2000 sets, then 5000 gets all hit (memcached: $s)" ||
    fail "preload: rc $rc, wharf-load '$v', memcached '$s' (get_hits get_misses cmd_set); $(cat "$tmp/r1.err")"
stop_mc

# 2. no preload, a 1:3 mix with gets of 5 keys (gauss pattern): hits and misses as memcached counts
start_mc
"$load" --proto memcache --keys 3000 --ratio 1:3 --mget 5 --key-pattern gauss \
    --value-size 10-500 -c 4 -p 8 -n 8000 -d 30 -j 127.0.0.1:$port >"$tmp/r2.json" 2>&1
rc=$?
v=$(jget "$tmp/r2.json" '"%d %d %d" % (r["counters"]["hits"], r["counters"]["misses"], r["requests"]["templates"][1]["latency_ns"]["count"])')
g=$(jget "$tmp/r2.json" 'r["requests"]["templates"][0]["latency_ns"]["count"]')
s=$(mcstats $port)
[ $rc -eq 0 ] && [ "${v% *}" = "${s% *}" ] && [ "${v##* }" = "${s##* }" ] &&
    [ $((g + ${v##* })) -eq 8000 ] &&
    ok "mget 5, ratio 1:3: hits misses sets '$v' = memcached '$s'" ||
    fail "mix: rc $rc, wharf-load '$v' (gets $g), memcached '$s'"
stop_mc

# 3. seq pattern, open loop: values of every size verify
start_mc
"$load" --proto memcache --keys 500 --set-ratio 0.5 --key-pattern seq --value-size 1-2000 \
    -c 2 -r 5k -n 2000 -d 30 -q 127.0.0.1:$port >"$tmp/r3.out" 2>&1
rc=$?
[ $rc -eq 0 ] && ok "seq keys, open loop, values 1-2000 bytes verify" || fail "seq: rc $rc: $(cat "$tmp/r3.out")"
stop_mc

# 4. bad options are refused by name
for bad in "--key-pattern normal" "--key-pattern gauss:5" "--ratio 1" "--ratio 1:x" "--mget 0" "--mget 101"; do
    "$load" --proto memcache $bad 127.0.0.1:1 >"$tmp/bad.out" 2>&1
    rc=$?
    opt=${bad%% *}
    [ $rc -eq 2 ] && grep -q -- "$opt" "$tmp/bad.out" && ok "refused: $bad" || fail "$bad: rc $rc: $(cat "$tmp/bad.out")"
done
"$load" --preload --request 'x\n' 127.0.0.1:1 >"$tmp/bad.out" 2>&1
[ $? -eq 2 ] && grep -q -- "--preload: applies to --proto memcache" "$tmp/bad.out" && ok "refused: --preload without a cache mode" ||
    fail "--preload with templates: $(cat "$tmp/bad.out")"

# 5. --proto redis against redis-server: counts equal INFO's
if command -v redis-server >/dev/null; then
    # rstats PORT: "keyspace_hits keyspace_misses set_calls get_calls mget_calls"
    rstats() {
        python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n")
buf = b""
while True:
    d = s.recv(65536)
    buf += d
    if not d or (b"\r\n" in buf and len(buf) >= int(buf[1:buf.index(b"\r\n")]) + buf.index(b"\r\n") + 4):
        break
info = {}
for l in buf.decode().splitlines():
    if ":" in l:
        k, v = l.split(":", 1)
        info[k] = v
def calls(c):
    v = info.get("cmdstat_" + c)
    return int(v.split("calls=")[1].split(",")[0]) if v else 0
print(info["keyspace_hits"], info["keyspace_misses"], calls("set"), calls("get"), calls("mget"))
PY
    }
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$tmp" >"$tmp/redis.log" 2>&1 &
    rpid=$!
    pids="$pids $rpid"
    wait_port "$rport"
    "$load" --proto redis --preload --keys 1000 --ratio 0:1 -c 4 -p 4 -n 4000 -d 30 -j \
        127.0.0.1:$rport >"$tmp/r5.json" 2>"$tmp/r5.err"
    rc=$?
    v=$(jget "$tmp/r5.json" '"%d %d %d" % (r["counters"]["hits"], r["counters"]["misses"], r["counters"]["bad_value"])')
    s=$(rstats $rport)
    [ $rc -eq 0 ] && [ "$v" = "4000 0 0" ] && [ "$s" = "4000 0 1000 4000 0" ] &&
        ok "redis: --preload 1000 SETs, then 4000 GETs all hit (redis: $s)" ||
        fail "redis preload: rc $rc, wharf-load '$v', redis '$s'; $(cat "$tmp/r5.err")"
    "$load" --proto redis --keys 3000 --ratio 1:4 --mget 3 --key-pattern gauss --value-size 1-300 \
        -c 4 -p 8 -n 6000 -d 30 -j 127.0.0.1:$rport >"$tmp/r6.json" 2>&1
    rc=$?
    v=$(jget "$tmp/r6.json" '"%d %d %d %d" % (r["counters"]["hits"], r["counters"]["misses"], r["requests"]["templates"][1]["latency_ns"]["count"], r["requests"]["templates"][0]["latency_ns"]["count"])')
    s2=$(rstats $rport)
    # the totals since the start, less the first run's
    set -- $s2
    want="$(($1 - 4000)) $2 $(($3 - 1000)) $5"
    [ $rc -eq 0 ] && [ "$v" = "$want" ] &&
        ok "redis: MGET of 3, ratio 1:4: hits misses sets mgets '$v' as redis counts" ||
        fail "redis mix: rc $rc, wharf-load '$v', redis (less run 1) '$want'"
    kill "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null
else
    echo "SKIP (the redis part): redis-server is needed (Debian package redis-server)"
fi

echo "passed $passed, failed $failed"
[ $failed -eq 0 ]
