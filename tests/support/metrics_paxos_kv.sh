#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/support/metrics_paxos_kv.sh SERVER CLIENT PROMTOOL: starts a one-member paxos_kv_server
# with --metrics-listen on loopback, scrapes /metrics before and after 20 puts, and checks that
# promtool accepts the page, that the chosen index and the fsync count grew, that the persist
# latency histogram counted the syncs, and that a scraper accepting OpenMetrics gets it. Every
# wait is bounded; the server is stopped on exit.
set -euo pipefail
server="$1" client="$2" promtool="$3"
dir="$(mktemp -d "${TMPDIR:-/tmp}/distkit-metrics-kv.XXXXXX")"
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
peer="$(free_port)" client_port="$(free_port)" metrics_port="$(free_port)"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/cluster.key"
"$server" --id 1 --peers "1=127.0.0.1:${peer}:${client_port}" --data-dir "$dir/data" \
  --cluster-key-file "$dir/cluster.key" --metrics-listen "127.0.0.1:${metrics_port}" --quiet &
pid=$!

scrape() { curl -sf --max-time 5 "http://127.0.0.1:${metrics_port}/metrics" -o "$1"; }
value() { awk -v s="$1" '$1 == s { print $2 }' "$2"; }

for _ in $(seq 100); do scrape "$dir/before" && break; sleep 0.1; done
[[ -s "$dir/before" ]] || { echo "no /metrics answer within 10 s"; exit 1; }
for i in $(seq 20); do
  "$client" --servers "127.0.0.1:${client_port}" --timeout-ms 5000 put "key$i" "value$i" >/dev/null
done
scrape "$dir/after"
"$promtool" check metrics <"$dir/after"
cat "$dir/after"

chosen_before="$(value distkit_paxos_chosen_index "$dir/before")"
chosen_after="$(value distkit_paxos_chosen_index "$dir/after")"
syncs="$(value distkit_paxos_fsyncs_total "$dir/after")"
observed="$(value distkit_paxos_persist_sync_duration_seconds_count "$dir/after")"
keys="$(value distkit_paxos_kv_keys "$dir/after")"
echo "chosen ${chosen_before} -> ${chosen_after}, fsyncs ${syncs}, persist latencies ${observed}, keys ${keys}"
(( chosen_after >= chosen_before + 20 )) || { echo "the chosen index did not grow by the 20 puts"; exit 1; }
(( syncs >= 20 && observed >= 20 && observed <= syncs )) || { echo "fsyncs or persist latencies missing"; exit 1; }
[[ "$keys" == "20" ]] || { echo "expected 20 keys"; exit 1; }
# Each put is one client command (plus the client's session registration): applied, and its
# commit latency observed on the leader.
applied="$(value distkit_paxos_commands_applied_total "$dir/after")"
commits="$(value distkit_paxos_commit_duration_seconds_count "$dir/after")"
elections="$(value distkit_paxos_elections_total "$dir/after")"
echo "commands applied ${applied}, commit latencies ${commits}, elections ${elections}"
(( applied >= 20 && commits >= 20 && commits <= applied )) || { echo "applied commands or commit latencies missing"; exit 1; }
(( elections >= 1 )) || { echo "a one-member cluster elected itself: at least one election"; exit 1; }
[[ "$(value 'distkit_paxos_is_leader' "$dir/after")" == "1" ]] || { echo "a one-member cluster leads"; exit 1; }
# A scraper that accepts OpenMetrics (as Prometheus's does) gets OpenMetrics.
curl -sf --max-time 5 -H 'Accept: application/openmetrics-text; version=1.0.0' \
  "http://127.0.0.1:${metrics_port}/metrics" -o "$dir/openmetrics"
[[ "$(tail -n 1 "$dir/openmetrics")" == "# EOF" ]] || { echo "OpenMetrics answer does not end in # EOF"; exit 1; }
grep -qx '# TYPE distkit_paxos_fsyncs counter' "$dir/openmetrics" || { echo "no OpenMetrics counter family"; exit 1; }
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${metrics_port}/other")"
[[ "$code" == "404" ]] || { echo "GET /other answered $code"; exit 1; }
echo "metrics endpoint ok"
