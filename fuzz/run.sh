#!/bin/sh
# fuzz/run.sh - builds the libFuzzer targets with clang (ASan + UBSan) outside
# the autotools build and runs each for SECONDS (default 60) from its seed
# corpus under fuzz/corpus/: the PROXY protocol parser, the config loader,
# the memcache handler (ASCII, meta and binary) through the test kit, the
# server side of a TLS connection (handshake and records, PROXY before TLS)
# through the test kit, the DNS handler's packet parser, answer path and
# zone parser, and wharf-load's reply framing and HTTP/2 client session.
# Exits non-zero when a target fails to build or finds a crash (its input
# is kept, and the path printed); exits 0 with "skipped" when clang or
# libFuzzer (Debian: libclang-rt-14-dev) is missing.
#
#   fuzz/run.sh [SECONDS]        FUZZ_DIR=DIR keeps the build and the grown
#                                corpora in DIR (default: a temporary one);
#                                FUZZ_ONLY="fuzz_tls ..." runs only those
set -u
secs=${1:-60}
case $secs in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
CC=${FUZZ_CC:-clang}

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz: skipped: $CC not found (Debian: apt-get install clang libclang-rt-14-dev)"
    exit 0
fi
if [ -n "${FUZZ_DIR:-}" ]; then
    work=$FUZZ_DIR
    mkdir -p "$work" || exit 1
    keep=1
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/wharf-fuzz.XXXXXX") || exit 1
    keep=0
fi
# libFuzzer present? (the runtime ships apart from clang on Debian)
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' \
    >"$work/probe.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$work/probe.c" -o "$work/probe" >/dev/null 2>&1; then
    echo "fuzz: skipped: $CC cannot link -fsanitize=fuzzer (Debian: apt-get install libclang-rt-14-dev)"
    [ "$keep" = 1 ] || rm -rf "$work"
    exit 0
fi

CFLAGS="-std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer -Wall -Wextra -I$src/framework/include -I$src/framework/base -I$src/framework/config"
jansson=$(pkg-config --cflags --libs jansson 2>/dev/null || echo -ljansson)
openssl=$(pkg-config --cflags --libs libssl libcrypto 2>/dev/null || echo -lssl -lcrypto)
uring=$(pkg-config --cflags --libs liburing 2>/dev/null || echo -luring)

status=0
run() { # NAME SOURCES... [-- LIBS...]
    name=$1; shift
    case " ${FUZZ_ONLY:-$name} " in *" $name "*) ;; *) return ;; esac
    echo "== fuzz $name: build"
    # shellcheck disable=SC2086
    if ! "$CC" $CFLAGS "$@" -o "$work/$name"; then
        echo "FAIL: fuzz $name: build"; status=1; return
    fi
    mkdir -p "$work/corpus-$name" "$work/artifacts-$name"
    echo "== fuzz $name: $secs s from fuzz/corpus/${name#fuzz_}"
    if ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "$work/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts-$name/" \
        "$work/corpus-$name" "$src/fuzz/corpus/${name#fuzz_}" >"$work/$name.log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$work/$name.log"
        echo "PASS: fuzz $name ($(ls "$work/corpus-$name" | wc -l) new corpus entries)"
    else
        tail -n 60 "$work/$name.log"
        echo "FAIL: fuzz $name: crash input(s) kept in $work/artifacts-$name:"
        ls "$work/artifacts-$name"
        status=1; keep=1
    fi
}

# shellcheck disable=SC2086
run fuzz_proxy "$src/fuzz/fuzz_proxy.c" "$src/framework/base/proxy.c"
# shellcheck disable=SC2086
run fuzz_config -I"$src/framework/event" "$src/fuzz/fuzz_config.c" "$src/framework/config/config.c" \
    "$src/framework/config/config_schema.c" "$src/framework/config/config_path.c" \
    "$src/framework/config/config_include.c" \
    "$src/framework/base/cidr.c" "$src/framework/base/addr_key.c" \
    "$src/framework/base/access_log.c" "$src/framework/base/log_json.c" $jansson

# The memcache handler through the test kit: the framework (every layer
# but the daemon), the kit and every file of handlers/memcache/, so a new
# file there is fuzzed without touching this line.
fw=$src/framework
version=$(sed -n 's/^AC_INIT(\[wharf\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
# shellcheck disable=SC2086
run fuzz_memcache -D_GNU_SOURCE -Wno-unused-parameter -I"$fw/event" -I"$fw/worker" -I"$fw/conn" -I"$fw/server" -I"$fw/testkit" \
    -DPACKAGE_VERSION="\"${version:-0}\"" "$src/fuzz/fuzz_memcache.c" \
    "$fw"/base/*.c "$fw"/event/*.c "$fw"/config/*.c "$fw"/worker/*.c "$fw"/conn/*.c \
    "$fw"/server/*.c "$fw"/testkit/*.c "$src"/handlers/memcache/*.c $jansson $openssl $uring -lpthread -ldl

# A TLS listener's connections through the test kit: the same framework,
# the echo handler as the one behind it.
# shellcheck disable=SC2086
run fuzz_tls -D_GNU_SOURCE -Wno-unused-parameter -I"$fw/event" -I"$fw/worker" -I"$fw/conn" -I"$fw/server" -I"$fw/testkit" \
    -DPACKAGE_VERSION="\"${version:-0}\"" "$src/fuzz/fuzz_tls.c" \
    "$fw"/base/*.c "$fw"/event/*.c "$fw"/config/*.c "$fw"/worker/*.c "$fw"/conn/*.c \
    "$fw"/server/*.c "$fw"/testkit/*.c "$src"/handlers/echo.c $jansson $openssl $uring -lpthread -ldl
# The DNS handler's wire and zone code alone (no framework): every file of
# handlers/dns/ but dns.c, the part that speaks to wharf.
# shellcheck disable=SC2086
run fuzz_dns -I"$src/handlers/dns" "$src/fuzz/fuzz_dns.c" "$src/handlers/dns/dns_zone.c" \
    "$src/handlers/dns/dns_wire.c" "$src/handlers/dns/dns_answer.c"
# wharf-load's reply framing and --expect checks (frame.c, with the template
# helpers it uses to decode escapes).
wl=$src/tools/wharf-load
run fuzz_load_frame -I"$wl" "$src/fuzz/fuzz_load_frame.c" "$wl/frame.c" "$wl/tmpl.c" "$wl/keys.c" \
    "$wl/cache.c" -lm
# wharf-load's HTTP/2 client session (h2.c over libnghttp2) fed a server's bytes.
nghttp2=$(pkg-config --cflags --libs libnghttp2 2>/dev/null || echo -lnghttp2)
# shellcheck disable=SC2086
run fuzz_load_h2 -I"$wl" "$src/fuzz/fuzz_load_h2.c" "$wl/h2.c" $nghttp2

if [ "$keep" = 1 ]; then echo "fuzz: build and corpora kept in $work"; else rm -rf "$work"; fi
exit $status
