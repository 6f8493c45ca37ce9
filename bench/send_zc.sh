#!/usr/bin/env bash
# bench/send_zc.sh - the SEND_ZC crossover (docs/performance.md, "SEND_ZC: the crossover"):
# builds bench/send_zc.c and runs it over loopback and over a veth pair between two network
# namespaces it creates (receiver in one, sender in the other) and removes on exit. Each run:
# write sizes 4K..1M, modes send, zc, zcf alternating, ROUNDS rounds; the sink pinned to
# CPU 0, the sender to CPU 1. Needs root (ip netns), liburing-dev, taskset.
#
# Usage: bench/send_zc.sh [BYTES [ROUNDS]]     (default 1G 3)
#        SEND_ZC_WHERE=lo|veth|lo,veth (default both)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BYTES=${1:-1G}
ROUNDS=${2:-3}
WHERE=${SEND_ZC_WHERE:-lo,veth}
WORK=$(mktemp -d)
BIN=$WORK/send_zc
NS_A=wharf-zc-a.$$
NS_B=wharf-zc-b.$$
SINK=

cleanup() {
	[[ -n $SINK ]] && kill "$SINK" 2>/dev/null && wait "$SINK" 2>/dev/null
	ip netns del "$NS_A" 2>/dev/null || true
	ip netns del "$NS_B" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

${CC:-cc} -O2 -Wall -Wextra -o "$BIN" "$ROOT/bench/send_zc.c" -luring

# run_pair NAME SINK_PREFIX SENDER_PREFIX ADDR: one sink, one sender run, then the sink ends
run_pair() {
	local name=$1 sink_pre=$2 send_pre=$3 addr=$4 port i
	echo "## $name ($(cut -d' ' -f1-3 /proc/loadavg) load average before)"
	$sink_pre taskset -c 0 "$BIN" recv -a "$addr" -l 1800 2>"$WORK/sink.log" &
	SINK=$!
	for ((i = 0; i < 100; i++)); do
		port=$(sed -n 's/.*listening on tcp .*:\([0-9]*\)$/\1/p' "$WORK/sink.log")
		[[ -n $port ]] && break
		sleep 0.05
	done
	[[ -n $port ]] || { cat "$WORK/sink.log" >&2; exit 1; }
	$send_pre taskset -c 1 "$BIN" send -a "$addr" -p "$port" -n "$BYTES" -r "$ROUNDS"
	kill "$SINK"
	wait "$SINK" 2>/dev/null || true
	SINK=
	echo
}

if [[ ,$WHERE, == *,lo,* ]]; then
	run_pair "loopback, 127.0.0.1" "" "" 127.0.0.1
fi
if [[ ,$WHERE, == *,veth,* ]]; then
	ip netns add "$NS_A"
	ip netns add "$NS_B"
	ip link add wzc-a$$ netns "$NS_A" type veth peer name wzc-b$$ netns "$NS_B"
	ip -n "$NS_A" addr add 10.211.0.1/24 dev wzc-a$$
	ip -n "$NS_B" addr add 10.211.0.2/24 dev wzc-b$$
	for ns in "$NS_A" "$NS_B"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$NS_A" link set wzc-a$$ up
	ip -n "$NS_B" link set wzc-b$$ up
	echo "# veth: $(ip netns exec "$NS_A" ethtool -k wzc-a$$ 2>/dev/null |
		grep -E '^(tcp-segmentation-offload|scatter-gather|generic-receive-offload):' |
		tr -s ' \n' ' ' || echo 'ethtool not installed')"
	run_pair "veth between two namespaces, 10.211.0.1 -> 10.211.0.2" \
		"ip netns exec $NS_B" "ip netns exec $NS_A" 10.211.0.2
fi
