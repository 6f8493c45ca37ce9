#!/bin/sh
# check_memcached_t.sh - memcached's own test suite (its t/*.t files and
# t/lib/MemcachedTest.pm, from memcached 1.6.18, vendored in
# tests/memcached-t/) run against wharfd's memcache handler in the suite's
# daemon mode (T_MEMD_USE_DAEMON=127.0.0.1:PORT): a fresh wharfd, on an
# ephemeral loopback port, for every file.
#
# tests/memcached_t_expect.txt says what each file must do, one line a file:
#   FILE.t pass                      it must pass (a failure fails this script)
#   FILE.t skip REASON               not run: a memcached feature wharf does not
#                                    have, or a deviation docs/memcache.md names
#   FILE.t pending OWNER WHAT        run and reported, but a failure does not
#                                    fail the script (work in progress; flip it
#                                    to pass when it passes)
# Only the files listed there are run.  Every file prints one result line:
# PASS, FAIL (with its first failing assertion), SKIP, PENDING-FAIL or
# PENDING-PASS (listed pending, passes now).
#
#   tests/check_memcached_t.sh [FILE.t...]   only these files
#   MEMCACHED_T_SERVER=memcached             run against the real memcached
#                                            instead (memcached -l 127.0.0.1
#                                            -p PORT -U 0), for the baseline
#   MEMCACHED_T_ALL=1                        run every .t in the folder,
#                                            expectations ignored (baseline)
#   MEMCACHED_T_DIR=DIR                      the suite's folder (default:
#                                            tests/memcached-t; DIR/t/*.t)
#   MEMCACHED_T_TIMEOUT=S                    seconds a file may take (300)
#   MEMCACHED_T_PENDING_TIMEOUT=S            seconds a pending file may take
#                                            (60: one that waits for replies
#                                            that never come costs little)
#   MEMCACHED_T_KEEP=1                       keep every file's output
#
# Needs perl with Test::More, IO::Socket::INET, FindBin, Data::Dumper (Debian:
# perl); skips (77) without.
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
src=$(cd "$src" && pwd)
build=$(cd "$build" && pwd)
wharfd=$build/wharfd
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}
suite=${MEMCACHED_T_DIR:-$src/tests/memcached-t}
expect=$src/tests/memcached_t_expect.txt
target=${MEMCACHED_T_SERVER:-wharfd}
limit=${MEMCACHED_T_TIMEOUT:-300}
pending_limit=${MEMCACHED_T_PENDING_TIMEOUT:-60}

if ! command -v perl >/dev/null 2>&1; then
    echo "SKIP: perl not found (Debian: perl)"
    exit 77
fi
for m in Test::More IO::Socket::INET FindBin Data::Dumper POSIX Socket; do
    if ! perl -M"$m" -e 1 2>/dev/null; then
        echo "SKIP: perl module $m missing (Debian: perl)"
        exit 77
    fi
done
if [ "$target" = memcached ] && ! command -v memcached >/dev/null 2>&1; then
    echo "SKIP: memcached not found (Debian: memcached)"
    exit 77
fi
if [ ! -d "$suite/t/lib" ]; then
    echo "FAIL: no suite in $suite"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wharf-memcached-t.XXXXXX") || exit 1
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ "${MEMCACHED_T_KEEP:-0}" = 1 ] && echo "outputs kept in $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The suite finds itself through $Bin (t/lib) and the server through the
# current directory: MemcachedTest.pm asks "$cwd/memcached-debug -h" which
# features it has (sasl, extstore, proxy, tls, unix sockets), even in daemon
# mode.  One stand-in answers for either target, naming none of them (the
# server under test listens on TCP only), so memcached and wharfd are asked
# the same things; a test that starts a binary itself fails on both.
cp -R "$suite/t" "$tmp/t" && chmod -R u+w "$tmp/t" || exit 1
cat >"$tmp/memcached-debug" <<'EOF'
#!/bin/sh
echo "memcached 1.6.18 (a stand-in: the server under test runs apart)"
echo "-p, --port=<num>  -U, --udp-port=<num>  -c, --conn-limit=<num>"
exit 0
EOF
chmod +x "$tmp/memcached-debug"

# wharfd's config: memcached's defaults (-m 64, -I 1m, -c 1024).  The
# handler's max_connections option is given where this build has it
# (wharfd -t accepts the config), so the same runner serves before and after.
write_config() { # EXTRA_OPTIONS
    cat >"$tmp/wharfd.json" <<JSON
{"workers": 4, "shutdown_timeout_ms": 1000, "listeners": [
 {"name": "memcache", "address": "127.0.0.1", "port": 0, "handler": "memcache",
  "timeouts": {"idle_ms": 0},
  "buffers": {"max_input": 2097152},
  "options": {"memory_limit": 67108864, "item_size_max": 1048576$1}}]}
JSON
}
wharfd_options=
if [ "$target" = wharfd ]; then
    write_config ', "max_connections": 1024'
    "$wharfd" -t -c "$tmp/wharfd.json" >/dev/null 2>&1 && wharfd_options=', "max_connections": 1024'
fi

# Starts the server under test; sets $pid and $port, or returns 1.
start_wharfd() {
    write_config "$wharfd_options"
    : >"$tmp/server.log"
    "$wharfd" -c "$tmp/wharfd.json" 2>>"$tmp/server.log" </dev/null &
    pid=$!
    i=0
    while [ $i -lt 300 ] && ! grep -q "started:" "$tmp/server.log"; do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05; i=$((i + 1))
    done
    port=$(sed -n 's/.*listening on tcp [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/server.log" | head -n1)
    [ -n "$port" ]
}

free_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0,
                                      Proto => "tcp", Listen => 1) or exit 1;
        print $s->sockport, "\n";'
}

start_memcached() {
    for _try in 1 2 3; do
        port=$(free_port) || return 1
        : >"$tmp/server.log"
        memcached -l 127.0.0.1 -p "$port" -U 0 -u "$(id -un)" >>"$tmp/server.log" 2>&1 </dev/null &
        pid=$!
        i=0
        while [ $i -lt 100 ]; do
            kill -0 "$pid" 2>/dev/null || break
            if perl -MIO::Socket::INET -e \
                'exit !IO::Socket::INET->new(PeerAddr => "127.0.0.1:'"$port"'")' 2>/dev/null; then
                return 0
            fi
            sleep 0.05; i=$((i + 1))
        done
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
    done
    return 1
}

stop_server() {
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null
    i=0
    while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
}

# The first thing that failed in a file's output, on one line.
first_failure() {
    line=$(grep -m1 -E '^not ok' "$1")
    [ -n "$line" ] || line=$(grep -m1 -E '^# (Looks like|Tests were run)|died|^Failed|at .* line [0-9]+' "$1")
    [ -n "$line" ] || line=$(tail -n1 "$1")
    printf '%s' "$line" | cut -c1-160
}

# Runs one file against a fresh server within $2 seconds: 0 passed, 1
# failed (reason in $why).
run_file() {
    f=$1
    secs_max=$2
    out=$tmp/out.$f
    why=
    if [ "$target" = memcached ]; then start_memcached; else start_wharfd; fi || {
        why="the server did not start: $(tail -n2 "$tmp/server.log")"
        stop_server
        return 1
    }
    (cd "$tmp" && T_MEMD_USE_DAEMON=127.0.0.1:$port timeout -k 5 "$secs_max" perl "t/$f") \
        >"$out" 2>&1 </dev/null
    rc=$?
    alive=1
    kill -0 "$pid" 2>/dev/null || alive=0
    stop_server
    if [ $rc -eq 0 ] && [ $alive = 1 ]; then
        return 0
    fi
    why=$(first_failure "$out")
    [ $rc -ge 124 ] && [ $rc -le 137 ] && why="timed out after ${secs_max} s; $why"
    [ $alive = 0 ] && why="the server died; $why"
    return 1
}

# The files to run, each with its expectation: "FILE STATE REST".
plan=$tmp/plan
if [ "${MEMCACHED_T_ALL:-0}" = 1 ]; then
    (cd "$tmp/t" && ls -- *.t) | sed 's/$/ pass (all)/' >"$plan"
else
    grep -v -E '^[[:space:]]*(#|$)' "$expect" >"$plan"
fi
if [ $# -gt 0 ]; then
    for f in "$@"; do
        grep -E "^$f[[:space:]]" "$plan" || echo "$f pass (named)"
    done >"$plan.sel"
    mv "$plan.sel" "$plan"
fi

echo "memcached's t/ suite (1.6.18) against $target, a fresh server per file"
passed=0 failed=0 skipped=0 pending=0 flip=0
while read -r f state rest; do
    case $state in
    skip)
        skipped=$((skipped + 1))
        echo "SKIP: $f ($rest)"
        continue ;;
    pass|pending) ;;
    *)
        failed=$((failed + 1))
        echo "FAIL: $f: bad expectation '$state' in $expect"
        continue ;;
    esac
    if [ ! -f "$tmp/t/$f" ]; then
        failed=$((failed + 1))
        echo "FAIL: $f: not in $suite/t"
        continue
    fi
    t0=$(date +%s)
    secs_max=$limit
    [ "$state" = pending ] && secs_max=$pending_limit
    if run_file "$f" "$secs_max"; then
        secs=$(( $(date +%s) - t0 ))
        if [ "$state" = pending ]; then
            flip=$((flip + 1))
            echo "PENDING-PASS: $f (${secs} s) passes now: mark it pass ($rest)"
        else
            passed=$((passed + 1))
            # A file that asserted nothing ("1..0 # SKIP why") says so.
            note=$(sed -n 's/^1\.\.0 # SKIP \(.*\)/, but it skipped itself: \1/p' "$tmp/out.$f")
            echo "PASS: $f (${secs} s$note)"
        fi
    else
        secs=$(( $(date +%s) - t0 ))
        if [ "$state" = pending ]; then
            pending=$((pending + 1))
            echo "PENDING-FAIL: $f (${secs} s) [$rest]: $why"
        else
            failed=$((failed + 1))
            echo "FAIL: $f (${secs} s): $why"
            sed 's/^/    | /' "$tmp/out.$f" | grep -E '^    \| (not ok|#)' | head -n 20
        fi
    fi
done <"$plan"

echo "$passed passed, $failed failed, $pending pending (failing), $flip pending (passing), $skipped skipped"
[ $failed -eq 0 ]
