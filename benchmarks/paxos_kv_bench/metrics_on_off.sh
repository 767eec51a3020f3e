#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# benchmarks/paxos_kv_bench/metrics_on_off.sh SERVER CLIENT on|off SECONDS: a 3-member paxos_kv
# cluster on loopback (fsync on), 64 clients putting 100-byte values for SECONDS; with `on`,
# every member runs --metrics-listen and is scraped once a second meanwhile. Prints the client's
# JSON line (ops_per_s). Alternate on and off runs to compare them.
set -euo pipefail
server="$1" client="$2" mode="$3" seconds="$4"
dir="$(mktemp -d "${TMPDIR:-/tmp}/paxos-kv-metrics.XXXXXX")"
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
declare -A pp cp mp
peers=""
for i in 1 2 3; do pp[$i]=$(fp); cp[$i]=$(fp); mp[$i]=$(fp); peers+="${peers:+,}$i=127.0.0.1:${pp[$i]}:${cp[$i]}"; done
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/cluster.key"
for i in 1 2 3; do
  extra=(--cluster-key-file "$dir/cluster.key")
  if [[ "$mode" == on ]]; then extra+=(--metrics-listen "127.0.0.1:${mp[$i]}"); fi
  "$server" --id $i --peers "$peers" --data-dir "$dir/$i" --quiet "${extra[@]}" & pids+=($!)
done
servers="127.0.0.1:${cp[1]},127.0.0.1:${cp[2]},127.0.0.1:${cp[3]}"
for _ in $(seq 100); do "$client" --servers "$servers" --timeout-ms 2000 put warm up >/dev/null 2>&1 && break; sleep 0.1; done
if [[ "$mode" == on ]]; then
  ( while true; do for i in 1 2 3; do curl -sf "http://127.0.0.1:${mp[$i]}/metrics" -o /dev/null || true; done; sleep 1; done ) & pids+=($!)
fi
"$client" --servers "$servers" bench --clients 64 --seconds "$seconds" --value-size 100 --json
