#!/bin/sh
# check_mc_hostile.sh - hostile input to the memcache handler, compared with
# memcached 1.6 (tests/mc_hostile.py: the malformed lines of memcached's
# t/malicious-commands.t and t/strtol-testing.t, huge and negative numbers,
# NULs, over-long lines, binary headers, meta lines with 100 flags); every
# reply must be memcached's or the deviation tests/mc_hostile_expect.txt
# names, and the server must keep serving.  Needs python3 and memcached
# (Debian: python3, memcached); skips (77) without.
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
export WHARF_MODULE_PATH=${WHARF_MODULE_PATH:-$build/handlers/.libs}
for tool in python3 memcached; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "SKIP: $tool not found (Debian: python3, memcached)"
        exit 77
    fi
done
exec python3 "$src/tests/mc_hostile.py" "$build/wharfd" "$(command -v memcached)" \
    "$src/tests/mc_hostile_expect.txt" "$@"
