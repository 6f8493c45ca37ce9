#!/bin/sh
# bench/testssl.sh - testssl.sh's full default run (every check) against wharfd TLS
# listeners with the shipped recommended settings, ECDSA P-256 and RSA-2048:
# tests/check_testssl.sh with TESTSSL_FULL=1 (make check runs its reduced mode).
# No finding may be rated HIGH or CRITICAL. Takes 5 to 20 minutes.
#
# Usage: bench/testssl.sh [BUILD-DIR (default: the repository)]
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root}
export TESTSSL_FULL=1 WHARF_SRCDIR="$root" WHARF_BUILDDIR="$build"
exec sh "$root/tests/check_testssl.sh"
