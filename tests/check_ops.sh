#!/bin/sh
# check_ops.sh - failures an operator meets with wharfd, each as it was found:
# every refused reload is counted in wharf_reloads_failed_total (syntax
# error, unknown key, missing file, a file unreadable after the privilege
# drop) and reported in STATUS=; a failed second start leaves the running
# instance's pid file alone; -t refuses a "user" or "group" that a start
# would refuse; a reload that needs root after the drop says so.
. "$(dirname "$0")/lib/common.sh"
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 is needed"
    exit 77
fi
chmod 755 "$tmp"

# ---- 1. every refused reload is counted and reported in STATUS= ----
notify_collect "$tmp/notify" "$tmp/messages" 60
mkdir "$tmp/etc"
echo '{"workers": 1, "listeners": [{"name": "m", "address": "127.0.0.1", "port": 0, "handler": "metrics"}]}' >"$tmp/etc/a.json"
NOTIFY_SOCKET="$tmp/notify" "$real" -c "$tmp/etc/a.json" 2>"$tmp/log" &
pid=$!
wait_file "$tmp/log" "started:"
mport=$(port_of)
good="{\"workers\": 1, \"listeners\": [{\"name\": \"m\", \"address\": \"127.0.0.1\", \"port\": $mport, \"handler\": \"metrics\"}]}"
# Refused reload number $1, after the config was changed to be refused.
refused() {
    kill -HUP "$pid"
    i=0
    while [ $i -lt 200 ] && [ "$(grep -c "reload failed" "$tmp/log")" -lt "$1" ]; do sleep 0.05; i=$((i + 1)); done
}
printf '{"listeners": [' >"$tmp/etc/a.json"
refused 1
echo '{"listeners": [], "no_such_key": 1}' >"$tmp/etc/a.json"
refused 2
mv "$tmp/etc/a.json" "$tmp/etc/gone.json"
refused 3
cat >"$tmp/etc/a.json" <<JSON
{"workers": 1, "listeners": [{"name": "m", "address": "127.0.0.1", "port": $mport, "handler": "metrics"},
 {"name": "e", "address": "127.0.0.1", "port": 0, "handler": "echo", "options": {"nonsense": 1}}]}
JSON
refused 4
n=$(metric "$mport" wharf_reloads_failed_total)
[ "$n" = 4 ] && ok "syntax error, unknown key, missing file, refused options: 4 reloads counted failed" ||
    fail "wharf_reloads_failed_total is '$n' after 4 refused reloads; $(grep 'reload failed' "$tmp/log")"
sleep 0.2
last=$(grep "STATUS=" "$tmp/messages" | tail -n1)
echo "$last" | grep -q "^READY=1 STATUS=reload failed" && echo "$last" | grep -q "nonsense" &&
    ok "STATUS= tells of the refused reload" || fail "STATUS after a refused reload: '$last'"
echo "$good" >"$tmp/etc/a.json"
kill -HUP "$pid"
wait_file "$tmp/log" "reloaded: generation 2"
sleep 0.2
last=$(grep "STATUS=" "$tmp/messages" | tail -n1)
echo "$last" | grep -q "^READY=1 STATUS=serving" && ok "STATUS= back to serving after a good reload" ||
    fail "STATUS after a good reload: '$last'"
stop_wharfd 50

# ---- 4. after the privilege drop: a root-only config, a new low port ----
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    cat >"$tmp/etc/u.json" <<JSON
{"workers": 1, "user": "nobody",
 "listeners": [{"name": "m", "address": "127.0.0.1", "port": 0, "handler": "metrics"}]}
JSON
    chmod 644 "$tmp/etc/u.json"
    start_wharfd -c "$tmp/etc/u.json"
    mport=$(port_of)
    # Dumpable after setuid (PR_SET_DUMPABLE): a crash leaves a core, and
    # /proc/PID belongs to the user (it stays root's when not dumpable).
    owner=$(stat -c %U "/proc/$pid/environ" 2>&1)
    [ "$owner" = nobody ] && ok "still dumpable after the privilege drop (a crash leaves a core)" ||
        fail "not dumpable after the drop: /proc/$pid/environ belongs to '$owner'"
    chmod 600 "$tmp/etc/u.json"
    kill -HUP "$pid"
    wait_file "$tmp/log" "reload failed"
    n=$(metric "$mport" wharf_reloads_failed_total)
    [ "$n" = 1 ] && grep -q "reload failed.*u.json: cannot read: Permission denied.*runs as user \"nobody\"" "$tmp/log" &&
        ok "a config readable only by root: the reload is refused, counted and explained" ||
        fail "root-only config: failed=$n; $(grep 'reload failed' "$tmp/log")"
    chmod 644 "$tmp/etc/u.json"
    low=$(python3 -c 'import socket
for p in range(600, 1000):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass')
    cat >"$tmp/etc/u.json" <<JSON
{"workers": 1, "user": "nobody",
 "listeners": [{"name": "m", "address": "127.0.0.1", "port": $mport, "handler": "metrics"},
               {"name": "low", "address": "127.0.0.1", "port": $low, "handler": "echo"}]}
JSON
    kill -HUP "$pid"
    i=0
    while [ $i -lt 200 ] && [ "$(grep -c "reload failed" "$tmp/log")" -lt 2 ]; do sleep 0.05; i=$((i + 1)); done
    n=$(metric "$mport" wharf_reloads_failed_total)
    [ "$n" = 2 ] && grep -q "cannot bind 127.0.0.1:$low (tcp): Permission denied.*below 1024.*restart" "$tmp/log" &&
        ok "a new low port after the drop: refused, counted, and the log says a restart is needed" ||
        fail "low port: failed=$n; $(grep 'reload failed' "$tmp/log" | tail -n1)"
    stop_wharfd 50
else
    ok "privilege drop checks skipped (not root)"
fi

# ---- 2. a failed second start leaves the running instance's pid file ----
cat >"$tmp/run.json" <<JSON
{"workers": 1, "listeners": [{"name": "e", "address": "127.0.0.1", "port": 0, "handler": "echo"}]}
JSON
start_wharfd -c "$tmp/run.json" -p "$tmp/run.pid"
eport=$(port_of)
sed "s/\"port\": 0/\"port\": $eport/" "$tmp/run.json" >"$tmp/inuse.json"
sed 's/"echo"/"no_such_module"/' "$tmp/run.json" >"$tmp/nomod.json"
sed 's/"echo"}/"echo", "options": {"nonsense": 1}}/' "$tmp/run.json" >"$tmp/badopt.json"
for c in inuse nomod badopt; do
    "$real" -c "$tmp/$c.json" -p "$tmp/run.pid" 2>"$tmp/second.log"
    rc=$?
    [ $rc = 1 ] && [ "$(cat "$tmp/run.pid" 2>/dev/null)" = "$pid" ] &&
        ok "a second start that fails ($c) leaves the running one's pid file" ||
        fail "second start ($c): rc=$rc, pid file '$(cat "$tmp/run.pid" 2>/dev/null)', want $pid; $(cat "$tmp/second.log")"
done
"$real" -c "$tmp/nomod.json" -p "$tmp/other.pid" 2>/dev/null
[ ! -e "$tmp/other.pid" ] && ok "a start that fails leaves no pid file of its own" ||
    fail "a failed start left $tmp/other.pid"
"$real" -s reopen -p "$tmp/run.pid" && wait_file "$tmp/log" "SIGUSR1" &&
    grep -q "SIGUSR1" "$tmp/log" && ok "-s reopen -p still reaches the running wharfd" ||
    fail "-s reopen after failed starts: $(tail -n 2 "$tmp/log")"
stop_wharfd 50
[ "$status" = 0 ] && [ ! -e "$tmp/run.pid" ] && ok "the pid file goes with the process that wrote it" ||
    fail "stop: status $status, pid file left: $(ls "$tmp"/run.pid 2>&1)"

# ---- 3. -t refuses what start would ----
echo '{"user": "nosuchuser", "listeners": [{"port": 0, "handler": "echo"}]}' >"$tmp/nouser.json"
out=$("$real" -t -c "$tmp/nouser.json" 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q 'nouser.json: user: no user "nosuchuser"' &&
    ok "-t refuses an unknown user" || fail "-t unknown user: rc=$rc $out"
echo '{"user": "root", "group": "nosuchgroup", "listeners": [{"port": 0, "handler": "echo"}]}' >"$tmp/nogroup.json"
out=$("$real" -t -c "$tmp/nogroup.json" 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q 'nogroup.json: group: no group "nosuchgroup"' &&
    ok "-t refuses an unknown group" || fail "-t unknown group: rc=$rc $out"
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    echo '{"user": "root", "listeners": [{"port": 0, "handler": "echo"}]}' >"$tmp/asroot.json"
    chmod 644 "$tmp/asroot.json"
    out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$real" -t -c "$tmp/asroot.json" 2>&1); rc=$?
    [ $rc = 1 ] && echo "$out" | grep -q 'user: cannot become "root" without running as root' &&
        ok "-t run as another user refuses a user it cannot become" || fail "-t as nobody: rc=$rc $out"
fi

# ---- 13. a crash in a handler's init under -t is reported ----
crashmod=${WHARF_TEST_MODULES:-$build/tests/.libs}/mod_crash.so
if [ -e "$crashmod" ]; then
    cat >"$tmp/crash.json" <<JSON
{"listeners": [{"name": "c", "port": 0, "handler": "$crashmod", "options": {"crash_in": "init"}}]}
JSON
    out=$("$real" -t -c "$tmp/crash.json" 2>&1); rc=$?
    [ $rc -ne 0 ] && echo "$out" | grep -q '^wharf: fatal signal 11 (SEGV) in handler "crash" callback init \[listener c\]' &&
        ok "-t: a crash in init is reported, naming the callback" || fail "-t crash in init: rc=$rc $out"
    # A handler's error text is escaped: one line, no terminal control.
    sed 's/"init"/"refuse"/' "$tmp/crash.json" >"$tmp/refuse.json"
    out=$("$real" -t -c "$tmp/refuse.json" 2>&1); rc=$?
    [ $rc = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] &&
        printf '%s\n' "$out" | grep -qF 'refused\x0aforged line\x1b[2J\\x41' &&
        ok "-t: a handler's error text is escaped (one line)" || fail "-t escaped error: rc=$rc $out"
fi

# ---- 6. what -T prints is what the docs say ----
echo '{"user": "nobody", "listeners": [{"port": 0, "handler": "echo", "deny": ["10.0.0.0/8"]}]}' >"$tmp/dump.json"
"$real" -T -c "$tmp/dump.json" | python3 -c '
import json, sys
c = json.load(sys.stdin)
l = c["listeners"][0]
assert c["user"] == "nobody" and "group" not in c, c
assert l["deny"] == ["10.0.0.0/8"] and l["proxy_trusted"] == ["127.0.0.0/8", "::1"], l' &&
    ok "-T prints user as set, deny, and the default proxy_trusted (docs/operating.md)" ||
    fail "-T output differs from docs/operating.md"

finish
