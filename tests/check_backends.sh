#!/bin/sh
# check_backends.sh - the Check suites once more, on the event-loop backend
# that the rest of `make check` did not use.  `make check` runs on the
# default, epoll (docs/config.md, "io"), unless WHARF_IO says otherwise;
# this runs the suites named in WHARF_BACKEND_SUITES (Makefile.am) with
# WHARF_IO set to the other one, so that every contract test passes on both.
# Where io_uring is unavailable (an old kernel, kernel.io_uring_disabled, a
# container's seccomp filter) the suites ran on epoll only: skipped (77),
# saying why.  WHARF_IO set by the caller (`make check-epoll`,
# `make check-io_uring`) means the whole `make check` runs on that one
# backend already: this runs the suites on the other one all the same.
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
wharfd=$build/wharfd
suites=${WHARF_BACKEND_SUITES:-}
if [ -z "$suites" ]; then
    echo "FAIL: WHARF_BACKEND_SUITES is empty (run through make check)"
    exit 1
fi
# What the rest of the run used: wharfd -t says ("configuration OK (io: X)").
out=$("$wharfd" -t -c "$src/config/wharf.json" 2>&1)
used=$(echo "$out" | sed -n 's/.*configuration OK (io: \([a-z_]*\)).*/\1/p')
case $used in
io_uring) other=epoll ;;
epoll) other=io_uring ;;
*)
    echo "FAIL: wharfd -t did not name its backend: $out"
    exit 1
    ;;
esac
if [ "$other" = io_uring ]; then
    why=$(WHARF_IO=io_uring "$wharfd" -t -c "$src/config/wharf.json" 2>&1) && why=
    if [ -n "$why" ]; then
        echo "SKIP: the suites ran on epoll only: $why"
        exit 77
    fi
fi
echo "the suites ran on $used; now on $other"
failed=0
passed=0
for t in $suites; do
    log=$build/$t.$other.log
    start=$(date +%s)
    if WHARF_IO=$other "$build/$t" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "ok: $t on $other ($(($(date +%s) - start)) s)"
    else
        failed=$((failed + 1))
        echo "FAIL: $t on $other ($log):"
        grep -E ':[FE]:' "$log" | head -n 20
        tail -n 5 "$log"
    fi
done
echo "$passed passed, $failed failed on $other"
[ "$failed" -eq 0 ]
