#!/usr/bin/env bash
# valgrind.sh - runs every Check suite of a built tree under valgrind
# (memcheck, no fork so leaks in the tests themselves count) and fails on any
# error or definite leak.  Usage: tests/valgrind.sh BUILDDIR [SUITE...]
set -u
build=$(cd "${1:?usage: valgrind.sh BUILDDIR [SUITE...]}" && pwd)
shift
src=$(cd "$(dirname "$0")/.." && pwd)
# By default: every built Check suite (the executables tests/check_*, not the scripts).
[ $# -gt 0 ] || set -- $(cd "$build/tests" && find . -maxdepth 1 -name 'check_*' -type f -perm -u+x \
    ! -name '*.sh' | sed 's|^\./||' | sort)
export WHARF_MODULE_PATH="$build/handlers/.libs:$build/tests/.libs"
export WHARF_TEST_MODULES="$build/tests/.libs" WHARF_SRCDIR="$src" WHARF_BUILDDIR="$build"
# WHARF_VALGRIND: timing bounds in the suites allow for valgrind's pace.
export CK_FORK=no CK_DEFAULT_TIMEOUT=600 WHARF_VALGRIND=1
# VALGRIND_JOBS suites at a time (default: the number of CPUs): valgrind runs
# a program's threads one at a time, so one suite uses one CPU.
jobs=${VALGRIND_JOBS:-$(nproc 2>/dev/null || echo 1)}
one() { # SUITE: runs it; its verdict goes to tests/SUITE.valgrind.rc
    log="$build/tests/$1.valgrind.log"
    timeout 900 valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
        --error-exitcode=99 "$build/tests/$1" >"$log" 2>&1
    echo $? >"$build/tests/$1.valgrind.rc"
}
running=0
for t in "$@"; do
    rm -f "$build/tests/$t.valgrind.rc"
    one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
passed=0
failed=0
for t in "$@"; do
    if [ "$(cat "$build/tests/$t.valgrind.rc" 2>/dev/null)" = 0 ]; then
        passed=$((passed + 1)); echo "PASS: valgrind $t"
    else
        failed=$((failed + 1)); echo "FAIL: valgrind $t"; tail -n 40 "$build/tests/$t.valgrind.log"
    fi
    rm -f "$build/tests/$t.valgrind.rc"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
