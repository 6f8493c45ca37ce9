#!/usr/bin/env bash
# bench/tls_handshake.sh - wharf-load's TLS handshake rate against `openssl s_time -new`,
# both driving the same nginx `stream { listen ... ssl; return "x"; }` server in one run.
#
# Each handshake is a new TCP connection, a full TLS handshake (no resumption) and a close:
# `openssl s_time -new` does them one after the other on one connection at a time, and so
# does `wharf-load --tls --handshake-only -c 1 -t 1` (the same shape: one connection at a
# time); a last row shows wharf-load with --connections C for the rate it reaches when it
# keeps several handshakes in flight. The certificate is a self-signed ECDSA P-256 one
# made here (--rsa: RSA-2048); both clients and nginx negotiate their defaults (TLS 1.3,
# X25519). Runs alternate (s_time, wharf-load, s_time, ...); the table shows the median
# of each, and the ratios are the medians of each wharf-load run against the s_time run
# before it. Client CPU is user + sys of the client process (bash's `time`), per handshake.
# nginx runs as the current user (one worker, master_process off), ended by its pid.
# Nothing is pinned: on a small machine the server and the client share the CPUs, so the
# rate is the rate of this pair, not of either alone.
#
# Usage: bench/tls_handshake.sh [--runs N (3)] [--duration S (5)] [--connections C (4)]
#        [--rsa] [--build-dir DIR]
# Needs a built tree (./configure && make) in --build-dir (default: the repository),
# nginx with its stream module (nginx-light libnginx-mod-stream) and openssl.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT
RUNS=3
DURATION=5
CONNS=4
KEY=ec
while (($#)); do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--connections) CONNS=$2; shift 2 ;;
	--rsa) KEY=rsa; shift ;;
	--build-dir) BUILD=$2; shift 2 ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
WLOAD=$BUILD/wharf-load
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
STREAM_SO=/usr/lib/nginx/modules/ngx_stream_module.so
[[ -x $WLOAD ]] || { echo "no $WLOAD: build first (./configure && make)" >&2; exit 1; }
[[ -x $NGINX && -f $STREAM_SO ]] || { echo "needs nginx and $STREAM_SO (nginx-light libnginx-mod-stream)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "needs openssl" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

if [[ $KEY == ec ]]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost 2>/dev/null
	KEYNAME="ECDSA P-256"
else
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
		-keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost 2>/dev/null
	KEYNAME="RSA-2048"
fi
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/ngx"
cat >"$tmp/ngx/nginx.conf" <<CONF
load_module $STREAM_SO;
daemon off;
master_process off;
user $(id -un) $(id -gn);
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log error;
worker_rlimit_nofile 4096;
events { worker_connections 2048; }
stream {
    server {
        listen 127.0.0.1:$PORT ssl;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        return "x";
    }
}
CONF
"$NGINX" -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" &
pids+=($!)
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), timeout=1).close()" 2>/dev/null && break
	sleep 0.05
done

TIMEFORMAT='%R %U %S'
# s_time RUN: "handshakes wall user sys"
s_time() {
	{ time openssl s_time -connect 127.0.0.1:$PORT -new -time "$DURATION" >"$tmp/st.out" 2>&1; } 2>"$tmp/st.time"
	local n
	n=$(sed -n 's/^\([0-9]*\) connections in .* real seconds.*/\1/p' "$tmp/st.out" | head -1)
	echo "${n:-0} $(cat "$tmp/st.time")"
}
# wload C: "handshakes wall user sys" (measured handshakes; time of the whole process)
wload() {
	{ time "$WLOAD" --tls --handshake-only -c "$1" -t 1 -d "$DURATION" --drain 1 -j \
		127.0.0.1:$PORT >"$tmp/wl.json" 2>"$tmp/wl.err"; } 2>"$tmp/wl.time" || true
	local n
	n=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["counters"]["received"])' "$tmp/wl.json" 2>/dev/null)
	echo "${n:-0} $(cat "$tmp/wl.time")"
}
# Per row: handshakes/s and client CPU us per handshake.
rate() { awk '{ printf "%.1f", ($2 > 0 ? $1 / $2 : 0) }' <<<"$1"; }
cpu() { awk '{ printf "%.1f", ($1 > 0 ? ($3 + $4) * 1e6 / $1 : 0) }' <<<"$1"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "TLS full handshakes/s against nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') stream ssl (return), $KEYNAME, $RUNS runs of ${DURATION}s, $(nproc) CPUs"
: >"$tmp/st.rate"; : >"$tmp/st.cpu"; : >"$tmp/wl.rate"; : >"$tmp/wl.cpu"; : >"$tmp/wc.rate"; : >"$tmp/wc.cpu"
: >"$tmp/ratio.rate"; : >"$tmp/ratio.cpu"
for r in $(seq "$RUNS"); do
	a=$(s_time)
	b=$(wload 1)
	c=$(wload "$CONNS")
	printf 'run %d: s_time %s/s %s us/hs; wharf-load -c 1 %s/s %s us/hs; -c %d %s/s %s us/hs\n' "$r" \
		"$(rate "$a")" "$(cpu "$a")" "$(rate "$b")" "$(cpu "$b")" "$CONNS" "$(rate "$c")" "$(cpu "$c")"
	rate "$a" >>"$tmp/st.rate"; echo >>"$tmp/st.rate"; cpu "$a" >>"$tmp/st.cpu"; echo >>"$tmp/st.cpu"
	rate "$b" >>"$tmp/wl.rate"; echo >>"$tmp/wl.rate"; cpu "$b" >>"$tmp/wl.cpu"; echo >>"$tmp/wl.cpu"
	rate "$c" >>"$tmp/wc.rate"; echo >>"$tmp/wc.rate"; cpu "$c" >>"$tmp/wc.cpu"; echo >>"$tmp/wc.cpu"
	awk -v x="$(rate "$b")" -v y="$(rate "$a")" 'BEGIN { printf "%.3f\n", (y > 0 ? x / y : 0) }' >>"$tmp/ratio.rate"
	awk -v x="$(cpu "$b")" -v y="$(cpu "$a")" 'BEGIN { printf "%.3f\n", (y > 0 ? x / y : 0) }' >>"$tmp/ratio.cpu"
done
printf '\n%-34s %14s %18s\n' "client (median of $RUNS)" "handshakes/s" "client CPU us/hs"
printf '%-34s %14s %18s\n' "openssl s_time -new" "$(median <"$tmp/st.rate")" "$(median <"$tmp/st.cpu")"
printf '%-34s %14s %18s\n' "wharf-load --handshake-only -c 1" "$(median <"$tmp/wl.rate")" "$(median <"$tmp/wl.cpu")"
printf '%-34s %14s %18s\n' "wharf-load --handshake-only -c $CONNS" "$(median <"$tmp/wc.rate")" "$(median <"$tmp/wc.cpu")"
printf '\nwharf-load -c 1 / s_time (median of paired runs): rate %s, CPU per handshake %s\n' \
	"$(median <"$tmp/ratio.rate")" "$(median <"$tmp/ratio.cpu")"
