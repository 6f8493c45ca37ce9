#!/bin/sh
# check_recipes.sh - every recipe of the handler pages (docs/guide.md,
# docs/cookbook.md, docs/testkit.md), taken from the pages themselves, builds
# and keeps what the pages promise in a real wharfd.
#
# Each recipe is marked in its page by "<!-- recipe: NAME -->" right before
# its code block; a marker without a block, two recipes of one name (in any
# of the pages), or a C block that looks like a whole module or program
# (WHARF_HANDLER_EXPORT, main) without a marker fails, and so does a recipe
# this suite has no test for.  Every module is built against the tree's
# wharf.h (framework/include/, or framework/ before the headers moved there)
# with -Wall -Wextra -Werror, run in ./wharfd on an ephemeral port, and
# driven by
# tests/recipe_client: pipelined bursts of 1, 49, 50, 300 and 1,000 requests
# followed by a half-close (every reply byte-exact, then EOF), three requests
# split at every byte and sent one byte per write, and the recipe's callback
# that closes.  Then: the broadcast recipe with 50 clients x 200 lines on 4
# workers (every line to every client exactly once, in per-sender order),
# the blocking-work recipe answering a 10 ms job within 50 ms while a 2 s job
# runs (work_threads 4; tests/recipe_resolver.c stands in for DNS), the test
# programs of docs/testkit.md built and run against cmd.c and (the kit's
# datagrams) udp_relay.c, and the C++ recipe
# the same as tests/modules/mod_cxx.cc (which the build compiles); the UDP
# recipes the same as tests/modules/mod_udp_*.c and run in wharfd by
# tests/udp_recipes.py.
#
# Skips (77) only when a tool it builds with is missing (cc, python3).
set -u
src=${WHARF_SRCDIR:-.}
build=$(cd "${WHARF_BUILDDIR:-.}" && pwd)
wharfd=$build/wharfd
client=$build/tests/recipe_client
cc=${CC:-cc}
for tool in "$cc" python3 pkg-config; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is needed to build the recipes"; exit 77; }
done
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
# Runs the client; its lines are the report, its status counts once.
drive() {
    if "$client" "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

# The sanitizer the tree was built with: modules and programs get its flags.
case ${WHARF_SANITIZER:-none} in
asan) sanflags="-fsanitize=address,undefined -fno-omit-frame-pointer"
      export ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" ;;
tsan) sanflags="-fsanitize=thread -fno-omit-frame-pointer" ;;
*) sanflags= ;;
esac

# The directory of the public headers (wharf.h, wharf_test.h).
if [ -e "$src/framework/include/wharf.h" ]; then
    incdir=$src/framework/include
else
    incdir=$src/framework
fi

# ---- extraction ------------------------------------------------------------
pages="docs/guide.md docs/cookbook.md docs/testkit.md"
mkdir "$tmp/r"
# shellcheck disable=SC2086
if ! (cd "$src" && python3 - "$tmp/r" $pages) >"$tmp/names" 2>"$tmp/extract.err" <<'PY'
import re, sys
out, docs = sys.argv[1], sys.argv[2:]
names, errors = [], []
for doc in docs:
    lines = open(doc).read().split("\n")
    i, pending = 0, None

    def err(text):
        errors.append(f"{doc}:{text}")

    while i < len(lines):
        m = re.fullmatch(r"<!-- recipe: ([A-Za-z0-9_.+-]+) -->", lines[i])
        if m:
            if pending:
                err(f"line {pending[1]}: marker {pending[0]} has no code block after it")
            pending = (m.group(1), i + 1)
            i += 1
            continue
        fence = re.fullmatch(r"```(\w*)", lines[i])
        if fence and fence.group(1):
            j = i + 1
            while j < len(lines) and lines[j] != "```":
                j += 1
            body = "\n".join(lines[i + 1:j]) + "\n"
            if pending and pending[1] == i:
                if pending[0] in names:
                    err(f"line {i}: a second recipe named {pending[0]}")
                names.append(pending[0])
                open(f"{out}/{pending[0]}", "w").write(body)
            elif pending:
                err(f"line {pending[1]}: marker {pending[0]} is not right before a code block")
            elif fence.group(1) in ("c", "cpp") and re.search(r"WHARF_HANDLER_EXPORT|\bint main\(", body):
                err(f"line {i + 1}: a whole module or program without a <!-- recipe: NAME --> marker")
            pending = None
            i = j + 1
            continue
        if pending and lines[i].strip():
            err(f"line {pending[1]}: marker {pending[0]} is not right before a code block")
            pending = None
        i += 1
    if pending:
        err(f"line {pending[1]}: marker {pending[0]} has no code block after it")
for e in errors:
    print(e, file=sys.stderr)
print(" ".join(names))
sys.exit(1 if errors else 0)
PY
then
    fail "extracting the recipes: $(cat "$tmp/extract.err")"
    extracted=bad
fi
names=$(cat "$tmp/names")
tested="upper.c cmd.c sum.c shout.c heartbeat.c lookup.c sort.c proxy.c test_cmd.c cxx.cc udp_defer.c udp_relay.c test_udp_relay.c"
for n in $names; do
    case " $tested " in *" $n "*) ;; *) fail "recipe $n of the handler pages has no test here"; extracted=bad ;; esac
done
for n in $tested; do
    case " $names " in *" $n "*) ;; *) fail "recipe $n is no longer in $pages (or lost its marker)"; extracted=bad ;; esac
done
[ "${extracted:-}" != bad ] && ok "$pages: every whole module is a marked recipe, each tested: $names"

# ---- building --------------------------------------------------------------
# Builds recipe $1 (a file in $tmp/r) into $tmp/NAME.so; true when it built.
build_module() {
    so=$tmp/${1%.c}.so
    # shellcheck disable=SC2086
    if $cc -std=gnu11 -shared -fPIC -Wall -Wextra -Werror $sanflags -I "$incdir" \
        -o "$so" "$tmp/r/$1" 2>"$tmp/cc.log"; then
        return 0
    fi
    fail "$1 does not build: $(cat "$tmp/cc.log")"
    return 1
}
[ -x "$client" ] || fail "$client is not built"
# shellcheck disable=SC2086
$cc -shared -fPIC -Wall -Wextra -Werror $sanflags -o "$tmp/resolver.so" \
    "$src/tests/recipe_resolver.c" -ldl 2>"$tmp/cc.log" || fail "recipe_resolver.c: $(cat "$tmp/cc.log")"

# ---- running ---------------------------------------------------------------
# Starts wharfd on module $1 with top-level keys $2 (default: 2 workers) and
# listener keys $3, after an optional wrapper command in $4 (e.g. "env
# LD_PRELOAD=..."); waits (bounded: 30 s) for its "started" line; sets $pid,
# $port and $log (a file per run).
runs=0
start() {
    runs=$((runs + 1))
    log=$tmp/log.$runs
    printf '{"shutdown_timeout_ms": 2000, %s, "listeners": [{"name": "r", "port": 0, "handler": "%s"%s}]}\n' \
        "${2:-\"workers\": 2}" "$1" "$3" >"$tmp/run$runs.json"
    : >"$log"
    ${4:-} "$wharfd" -c "$tmp/run$runs.json" 2>"$log" &
    pid=$!
    i=0
    while [ $i -lt 600 ] && ! grep -q "started:" "$log" && kill -0 "$pid" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
    done
    port=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$log" | head -n1)
    [ -n "$port" ] || { fail "wharfd did not start on $1: $(cat "$log")"; stop quiet; return 1; }
}
# Stops wharfd gracefully (bounded: 10 s); a crash, a sanitizer report or an
# unclean exit fails, unless $1 is "quiet".
stop() {
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    i=0
    while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$pid" 2>/dev/null
    wait "$pid"
    status=$?
    pid=
    [ "${1:-}" = quiet ] && return 0
    if [ "$status" != 0 ] || grep -q "fatal signal\|Sanitizer\|runtime error" "$log"; then
        fail "wharfd exit status $status: $(grep -m3 "fatal\|Sanitizer\|runtime error\|ERROR" "$log")"
    fi
}
# The cases every message-per-line recipe goes through: bursts, splits.
bursts_and_splits() {
    for n in 1 49 50 300 1000; do
        drive burst "$1" "$port" $n
    done
    drive split "$1" "$port"
}

# upper.c, cmd.c, sum.c, sort.c: one wharfd each, bursts, splits, closes.
for r in upper cmd sum sort; do
    build_module $r.c && start "$tmp/$r.so" "" "" || continue
    bursts_and_splits $r
    case $r in cmd|sum) drive closes $r "$port" ;; esac
    stop
done

# heartbeat.c as written (10 s period) for the echo, then built with a 100 ms
# period for the timer that closes a silent client.
if build_module heartbeat.c && start "$tmp/heartbeat.so" "" ""; then
    bursts_and_splits heartbeat
    stop
    sed 's/10000, 10000/100, 100/' "$tmp/r/heartbeat.c" >"$tmp/r/heartbeat_fast.c"
    if grep -q "100, 100, on_beat" "$tmp/r/heartbeat_fast.c" && build_module heartbeat_fast.c &&
        start "$tmp/heartbeat_fast.so" "" ""; then
        drive closes heartbeat_fast "$port"
        stop
    else
        fail "heartbeat.c: no \"10000, 10000\" period to shorten for the closing case"
    fi
fi

# proxy.c (the sketch) in front of upper.c, in a second wharfd.
if build_module proxy.c && [ -e "$tmp/upper.so" ] && start "$tmp/upper.so" "" ""; then
    backend_pid=$pid backend_log=$log
    pid=
    if start "$tmp/proxy.so" "" ", \"options\": {\"backend_port\": $port}"; then
        bursts_and_splits proxy
        stop
    fi
    pid=$backend_pid log=$backend_log
    stop
fi

# lookup.c with the resolver stand-in, work_threads 4: first, on a fresh
# server (pool threads start as work arrives), the 10 ms job beside the 2 s one.
if build_module lookup.c &&
    start "$tmp/lookup.so" '"workers": 2, "work_threads": 4' "" "env LD_PRELOAD=$tmp/resolver.so"; then
    drive work "$port"
    bursts_and_splits lookup
    stop
fi

# shout.c: a burst from one client reaches another; then, as its own step,
# the broadcast of 50 clients x 200 lines on 4 workers.
if build_module shout.c && start "$tmp/shout.so" "" ""; then
    for n in 1 49 50 300 1000; do
        drive relay "$port" $n
    done
    stop
fi
echo "-- step: broadcast, 50 clients x 200 lines on 4 workers --"
if [ -e "$tmp/shout.so" ] && start "$tmp/shout.so" '"workers": 4' ""; then
    drive broadcast "$port" 50 200
    stop
fi

# The test program of docs/testkit.md, against cmd.c, with the tree's
# libwharf_test (as the page says to build it before installing).
cp "$tmp/r/cmd.c" "$tmp/r/test_cmd.c" "$tmp/" 2>/dev/null
# shellcheck disable=SC2086
if $cc -std=gnu11 -Wall -Wextra -Werror $sanflags -I "$incdir" -o "$tmp/test_cmd" \
    "$tmp/test_cmd.c" "$tmp/cmd.c" -L "$build/.libs" -lwharf_test $(pkg-config --cflags --libs check) \
    2>"$tmp/cc.log"; then
    if out=$(cd "$tmp" && LD_LIBRARY_PATH="$build/.libs" timeout 60 ./test_cmd 2>&1); then
        ok "test_cmd.c builds against cmd.c and passes: $(echo "$out" | grep -o '[0-9]*%.*' | head -n1)"
    else
        fail "test_cmd.c fails: $out"
    fi
else
    fail "test_cmd.c does not build: $(cat "$tmp/cc.log")"
fi
# Its UDP example, against the relay recipe: the kit's datagrams.
cp "$tmp/r/udp_relay.c" "$tmp/r/test_udp_relay.c" "$tmp/" 2>/dev/null
# shellcheck disable=SC2086
if $cc -std=gnu11 -Wall -Wextra -Werror $sanflags -I "$incdir" -o "$tmp/test_udp_relay" \
    "$tmp/test_udp_relay.c" "$tmp/udp_relay.c" -L "$build/.libs" -lwharf_test \
    $(pkg-config --cflags --libs check) 2>"$tmp/cc.log"; then
    if out=$(cd "$tmp" && LD_LIBRARY_PATH="$build/.libs" timeout 60 ./test_udp_relay 2>&1); then
        ok "test_udp_relay.c builds against udp_relay.c and passes: $(echo "$out" | grep -o '[0-9]*%.*' | head -n1)"
    else
        fail "test_udp_relay.c fails: $out"
    fi
else
    fail "test_udp_relay.c does not build: $(cat "$tmp/cc.log")"
fi

# The C++ recipe is tests/modules/mod_cxx.cc, which the build compiles and
# tests/check_module.c loads.
if [ -e "$tmp/r/cxx.cc" ] && cmp -s "$tmp/r/cxx.cc" "$src/tests/modules/mod_cxx.cc"; then
    ok "cxx.cc is tests/modules/mod_cxx.cc, byte for byte"
else
    fail "cxx.cc differs from tests/modules/mod_cxx.cc: $(diff "$tmp/r/cxx.cc" "$src/tests/modules/mod_cxx.cc" 2>&1 | head -n 5)"
fi

# The UDP recipes are tests/modules/mod_udp_defer.c and mod_udp_relay.c
# (tests/check_udp_send.c runs those); here the page's copies run in wharfd,
# driven by Python sockets (tests/udp_recipes.py: the deferred reply after a
# 200 ms job, the timer-flushed relay, the send guard refusing port 1000).
for r in udp_defer udp_relay; do
    if [ -e "$tmp/r/$r.c" ] && cmp -s "$tmp/r/$r.c" "$src/tests/modules/mod_$r.c"; then
        ok "$r.c is tests/modules/mod_$r.c, byte for byte"
    else
        fail "$r.c differs from tests/modules/mod_$r.c: $(diff "$tmp/r/$r.c" "$src/tests/modules/mod_$r.c" 2>&1 | head -n 5)"
    fi
done
if build_module udp_defer.c && build_module udp_relay.c; then
    if out=$(timeout 120 python3 "$src/tests/udp_recipes.py" "$wharfd" "$tmp/udp_defer.so" \
        "$tmp/udp_relay.so" "$tmp" 2>&1); then
        ok "udp_defer.c and udp_relay.c in wharfd: $(echo "$out" | grep -c '^ok ') checks"
    else
        fail "the UDP recipes: $(echo "$out" | grep -v '^ok ' | head -n 8)"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
