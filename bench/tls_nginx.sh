#!/usr/bin/env bash
# bench/tls_nginx.sh - wharfd's TLS listeners side by side with nginx's stream ssl, in one
# run, as ratios (wharf / nginx; for a rate above 1 is better, for CPU below 1 is better).
#
# What is compared, exactly:
#   handshakes (ECDSA P-256, RSA-2048, resumed): wharfd's TLS listener with the echo
#     handler against nginx `stream { server { listen ... ssl; return "x"; } }` - the
#     client (wharf-load --tls --handshake-only -c C, and openssl s_time -new)
#     connects, handshakes, sends close_notify and closes; neither server sends data
#     before the client is gone (nginx's "x" goes out after the handshake; wharf's echo
#     sends nothing). Resumed: --tls-resume on (session tickets, on by default in both);
#     TLS 1.3 (PSK with an ECDHE key share, and a new ticket) and, on a second pair of
#     listeners limited to TLS 1.2, TLS 1.2's abbreviated handshake (no key exchange).
#     nginx is told `ssl_protocols TLSv1.2 TLSv1.3` (wharf's default): nginx 1.22's own
#     default has no TLSv1.3, and an nginx left at it does TLS 1.2 handshakes where
#     wharf does TLS 1.3 ones (a resumed TLS 1.2 handshake costs about a fifth of a TLS
#     1.3 one: docs/performance.md).
#   64 B echo at 50 connections and bulk 64 KiB echo (4 connections): the same plaintext
#     echo backend (a wharfd echo listener, its own process) behind each TLS front:
#     wharfd's TLS listener with the proxy handler, and nginx stream ssl with proxy_pass.
#     wharf-load --tls drives both; the messages are counted by the client.
# CPU is the TLS front's own (utime + stime from /proc/PID/stat, before and after each
# measurement), per handshake, per message or per byte; the backend and the client are
# not counted. Same certificates, TLS 1.3 suites and TLS 1.2 ciphers in the same server
# order (nginx is told wharf's defaults), one worker each (wharfd "workers": 1, nginx
# one process: master_process off). Each measurement alternates wharf, nginx, wharf, ...
# for --rounds rounds; the table shows the medians of the per-round ratios (as
# bench/memcache.sh's AB mode does), and the medians of the absolute numbers.
#
# Usage: bench/tls_nginx.sh [--rounds N (3)] [--duration S (5)] [--build-dir DIR]
#        [--rows LIST (ec,rsa,resume,resume12,echo,bulk,s_time): the measurements to make]
#        [--accept acceptor|workers (acceptor): wharfd's accept mode; "workers" accepts in
#        the worker, as nginx does]
# Needs a built tree, nginx with its stream module (nginx-light libnginx-mod-stream),
# openssl and python3. nginx runs as the current user, ended by its pid.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT
ROUNDS=3
DURATION=5
ROWS=ec,rsa,resume,resume12,echo,bulk,s_time
ACCEPT=acceptor
while (($#)); do
	case $1 in
	--rows) ROWS=$2; shift 2 ;;
	--accept) ACCEPT=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--build-dir) BUILD=$2; shift 2 ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
WLOAD=$BUILD/wharf-load
WHARFD=$BUILD/wharfd
export WHARF_MODULE_PATH=$BUILD/handlers/.libs
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
STREAM_SO=/usr/lib/nginx/modules/ngx_stream_module.so
[[ -x $WLOAD && -x $WHARFD ]] || { echo "no $WLOAD or $WHARFD: build first" >&2; exit 1; }
[[ -x $NGINX && -f $STREAM_SO ]] || { echo "needs nginx and $STREAM_SO (nginx-light libnginx-mod-stream)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "needs openssl" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$tmp/ec.key" -out "$tmp/ec.crt" -subj /CN=localhost 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
	-keyout "$tmp/rsa.key" -out "$tmp/rsa.crt" -subj /CN=localhost 2>/dev/null
chmod 600 "$tmp"/*.key
freeport() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
waitport() {
	for _ in $(seq 200); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), timeout=1).close()" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on $1" >&2; exit 1
}
# wharf's defaults (docs/config.md, tls), given to nginx too
CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305
SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

P_BACK=$(freeport); P_WEC=$(freeport); P_WRSA=$(freeport); P_WPX=$(freeport); P_WEC12=$(freeport)
P_NEC=$(freeport); P_NRSA=$(freeport); P_NPX=$(freeport); P_NEC12=$(freeport)
cat >"$tmp/back.json" <<JSON
{"workers": 2, "listeners": [{"name": "back", "address": "127.0.0.1", "port": $P_BACK, "handler": "echo",
  "timeouts": {"idle_ms": 0}}]}
JSON
cat >"$tmp/wharf.json" <<JSON
{"workers": 1, "log": "warn", "listeners": [
 {"name": "ec", "address": "127.0.0.1", "port": $P_WEC, "handler": "echo", "timeouts": {"idle_ms": 0}, "accept": "$ACCEPT",
  "tls": {"cert": "$tmp/ec.crt", "key": "$tmp/ec.key"}},
 {"name": "ec12", "address": "127.0.0.1", "port": $P_WEC12, "handler": "echo", "timeouts": {"idle_ms": 0}, "accept": "$ACCEPT",
  "tls": {"cert": "$tmp/ec.crt", "key": "$tmp/ec.key", "max_version": "1.2"}},
 {"name": "rsa", "address": "127.0.0.1", "port": $P_WRSA, "handler": "echo", "timeouts": {"idle_ms": 0}, "accept": "$ACCEPT",
  "tls": {"cert": "$tmp/rsa.crt", "key": "$tmp/rsa.key"}},
 {"name": "px", "address": "127.0.0.1", "port": $P_WPX, "handler": "proxy", "timeouts": {"idle_ms": 0}, "accept": "$ACCEPT",
  "tls": {"cert": "$tmp/ec.crt", "key": "$tmp/ec.key"},
  "options": {"upstream": "127.0.0.1:$P_BACK", "max_pending": 262144}}]}
JSON
mkdir -p "$tmp/ngx"
ngx_tls() { # CERT [PROTOCOLS]
	printf 'ssl_certificate %s/%s.crt; ssl_certificate_key %s/%s.key; ssl_protocols %s; ssl_ciphers %s; ssl_prefer_server_ciphers on; ssl_conf_command Ciphersuites %s; ssl_session_tickets on; ssl_session_cache shared:S%s:10m;' \
		"$tmp" "$1" "$tmp" "$1" "${2:-TLSv1.2 TLSv1.3}" "$CIPHERS" "$SUITES" "$1"
}
cat >"$tmp/ngx/nginx.conf" <<CONF
load_module $STREAM_SO;
daemon off;
master_process off;
worker_processes 1;
user $(id -un) $(id -gn);
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log error;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
stream {
    server { listen 127.0.0.1:$P_NEC ssl; $(ngx_tls ec) return "x"; }
    server { listen 127.0.0.1:$P_NEC12 ssl; $(ngx_tls ec TLSv1.2) return "x"; }
    server { listen 127.0.0.1:$P_NRSA ssl; $(ngx_tls rsa) return "x"; }
    server { listen 127.0.0.1:$P_NPX ssl; $(ngx_tls ec) proxy_pass 127.0.0.1:$P_BACK; }
}
CONF
"$WHARFD" -c "$tmp/back.json" 2>"$tmp/back.log" & pids+=($!)
"$WHARFD" -c "$tmp/wharf.json" 2>"$tmp/wharf.log" & WPID=$!; pids+=($WPID)
"$NGINX" -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" & NPID=$!; pids+=($NPID)
for p in $P_BACK $P_WEC $P_WRSA $P_WPX $P_WEC12 $P_NEC $P_NRSA $P_NPX $P_NEC12; do waitport "$p"; done

HZ=$(getconf CLK_TCK)
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# measure PID PORT KIND: "count cpu_seconds" of one wharf-load run (KIND: hs, resume, echo, bulk)
measure() {
	local pid=$1 port=$2 kind=$3 args
	case $kind in
	hs) args=(--handshake-only -c 4) ;;
	resume) args=(--handshake-only --tls-resume on -c 4) ;;
	echo) args=(-c 50 -s 64) ;;
	bulk) args=(-c 4 -s 65536) ;;
	esac
	local c0 c1
	c0=$(cpu_of "$pid")
	"$WLOAD" --tls "${args[@]}" -t 1 -d "$DURATION" --drain 1 -j 127.0.0.1:"$port" >"$tmp/wl.json" 2>"$tmp/wl.err" || true
	c1=$(cpu_of "$pid")
	python3 -c '
import json, sys
try:
    n = json.load(open(sys.argv[1]))["counters"]["received"]
except (OSError, ValueError, KeyError):
    n = 0  # wharf-load failed: its stderr is shown
print(n, (int(sys.argv[2]) - int(sys.argv[3])) / int(sys.argv[4]))' "$tmp/wl.json" "$c1" "$c0" "$HZ"
	[[ -s $tmp/wl.json ]] || sed 's/^/  wharf-load: /' "$tmp/wl.err" | head -3 >&2
}
# s_time PORT MODE (-new or -reuse): handshakes per second, client side
s_time() {
	openssl s_time -connect 127.0.0.1:"$1" "$2" -time "$DURATION" 2>&1 |
		sed -n 's/^\([0-9]*\) connections in \([0-9.]*\)s;.*/\1 \2/p' | head -1 |
		awk '{ printf "%.1f\n", ($2 > 0 ? $1 / $2 : 0) }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# row NAME KIND WPORT NPORT UNIT SCALE: rounds of wharf then nginx; per-round ratios
row() {
	local name=$1 kind=$2 wp=$3 np=$4 unit=$5 scale=$6
	: >"$tmp/r.rate"; : >"$tmp/r.cpu"; : >"$tmp/w.rate"; : >"$tmp/n.rate"; : >"$tmp/w.cpu"; : >"$tmp/n.cpu"
	for _ in $(seq "$ROUNDS"); do
		read -r wn wc < <(measure "$WPID" "$wp" "$kind")
		read -r nn nc < <(measure "$NPID" "$np" "$kind")
		awk -v n="$wn" -v d="$DURATION" 'BEGIN { printf "%.0f\n", n / d }' >>"$tmp/w.rate"
		awk -v n="$nn" -v d="$DURATION" 'BEGIN { printf "%.0f\n", n / d }' >>"$tmp/n.rate"
		awk -v n="$wn" -v c="$wc" -v s="$scale" 'BEGIN { printf "%.3f\n", (n > 0 ? c * 1e6 / (n * s) : 0) }' >>"$tmp/w.cpu"
		awk -v n="$nn" -v c="$nc" -v s="$scale" 'BEGIN { printf "%.3f\n", (n > 0 ? c * 1e6 / (n * s) : 0) }' >>"$tmp/n.cpu"
		awk -v a="$wn" -v b="$nn" 'BEGIN { printf "%.3f\n", (b > 0 ? a / b : 0) }' >>"$tmp/r.rate"
		awk -v a="$wn" -v b="$nn" -v x="$wc" -v y="$nc" 'BEGIN { printf "%.3f\n", ((a > 0 && y > 0) ? (x / a) / (y / b) : 0) }' >>"$tmp/r.cpu"
	done
	printf '%-34s %10s %10s %8s %12s %12s %8s\n' "$name" "$(median <"$tmp/w.rate")" \
		"$(median <"$tmp/n.rate")" "$(median <"$tmp/r.rate")" "$(median <"$tmp/w.cpu")" \
		"$(median <"$tmp/n.cpu")" "$(median <"$tmp/r.cpu")"
}

echo "wharfd (1 worker) vs nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') stream ssl (1 process), $ROUNDS rounds of ${DURATION}s, $(nproc) CPUs, $(openssl version | cut -d' ' -f1-2)"
printf '\n%-34s %10s %10s %8s %12s %12s %8s\n' "measurement (medians)" "wharf/s" "nginx/s" "ratio" "wharf CPU" "nginx CPU" "ratio"
want() { [[ ,$ROWS, == *,$1,* ]]; }
want ec && row "full handshakes, ECDSA P-256" hs "$P_WEC" "$P_NEC" "us/hs" 1
want rsa && row "full handshakes, RSA-2048" hs "$P_WRSA" "$P_NRSA" "us/hs" 1
want resume && row "resumed handshakes, TLS 1.3 (tickets)" resume "$P_WEC" "$P_NEC" "us/hs" 1
want resume12 && row "resumed handshakes, TLS 1.2 (tickets)" resume "$P_WEC12" "$P_NEC12" "us/hs" 1
want echo && row "64 B echo, 50 conns (msgs)" echo "$P_WPX" "$P_NPX" "us/msg" 1
want bulk && row "64 KiB echo, 4 conns (msgs; CPU/KiB)" bulk "$P_WPX" "$P_NPX" "us/KiB" 64
echo "(CPU: the TLS front's user+sys per handshake, per message, per KiB of messages, in us)"

want s_time || exit 0
printf '\n%-34s %10s %10s %8s\n' "openssl s_time (medians)" "wharf/s" "nginx/s" "ratio"
# (not -reuse: s_time never reads the TLS 1.3 ticket sent after the handshake unless the
# server sends data, as nginx's return does and wharf's echo does not, so against wharf it
# would time full handshakes)
for mode in -new; do
	: >"$tmp/sw"; : >"$tmp/sn"; : >"$tmp/sr"
	for _ in $(seq "$ROUNDS"); do
		a=$(s_time "$P_WEC" $mode); b=$(s_time "$P_NEC" $mode)
		echo "$a" >>"$tmp/sw"; echo "$b" >>"$tmp/sn"
		awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f\n", (b > 0 ? a / b : 0) }' >>"$tmp/sr"
	done
	printf '%-34s %10s %10s %8s\n' "s_time $mode, ECDSA P-256" "$(median <"$tmp/sw")" "$(median <"$tmp/sn")" "$(median <"$tmp/sr")"
done
