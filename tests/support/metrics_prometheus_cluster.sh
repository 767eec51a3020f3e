#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/support/metrics_prometheus_cluster.sh SERVER CLIENT PROMETHEUS: a real Prometheus server
# (Debian `prometheus`, started here on loopback with a generated config, stopped on exit)
# scrapes a 3-member paxos_kv cluster (every member with --metrics-listen) while clients put
# values; then PromQL through Prometheus's HTTP API must return the chosen index each member
# reports itself, a non-zero p99 of the persist+fdatasync latency, and the leader's commit-latency
# exemplars (a `slot` label per bucket) through the exemplar API. Prometheus's scraper asks
# for OpenMetrics, so its strict OpenMetrics parser reads distkit's output (a page it cannot
# parse leaves `up` at 0 and fails the test). Every wait is bounded.
set -euo pipefail
server="$1" client="$2" prometheus="$3"
dir="$(mktemp -d "${TMPDIR:-/tmp}/distkit-metrics-prom.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

declare -A peer_port client_port metrics_port
peers="" servers="" targets=""
for i in 1 2 3; do
  peer_port[$i]="$(free_port)" client_port[$i]="$(free_port)" metrics_port[$i]="$(free_port)"
  peers+="${peers:+,}$i=127.0.0.1:${peer_port[$i]}:${client_port[$i]}"
  servers+="${servers:+,}127.0.0.1:${client_port[$i]}"
  targets+="${targets:+, }'127.0.0.1:${metrics_port[$i]}'"
done
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/cluster.key"
for i in 1 2 3; do
  "$server" --id "$i" --peers "$peers" --data-dir "$dir/node$i" --cluster-key-file "$dir/cluster.key" \
    --metrics-listen "127.0.0.1:${metrics_port[$i]}" \
    --quiet >"$dir/node$i.log" 2>&1 &
  pids+=($!)
done

prom_port="$(free_port)"
cat >"$dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: paxos_kv
    static_configs:
      - targets: [${targets}]
YML
"$prometheus" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
  --web.listen-address="127.0.0.1:${prom_port}" --enable-feature=exemplar-storage \
  --log.level=warn >"$dir/prometheus.log" 2>&1 &
pids+=($!)

# PromQL instant query -> the first result's value ("" when there is none).
query() {
  curl -sf --max-time 5 --data-urlencode "query=$1" "http://127.0.0.1:${prom_port}/api/v1/query" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}

# Load: 64 clients for 3 seconds, once a leader answers and Prometheus scrapes all three members
# (so that it samples the counters before, during and after the load).
for _ in $(seq 100); do "$client" --servers "$servers" --timeout-ms 2000 put warm up >/dev/null 2>&1 && break; sleep 0.1; done
up=""
for _ in $(seq 60); do
  up="$(query 'count(up == 1)' || true)"
  [[ "$up" == "3" ]] && break
  sleep 0.5
done
[[ "$up" == "3" ]] || { echo "Prometheus does not scrape the 3 members within 30 s"; cat "$dir/prometheus.log"; exit 1; }
"$client" --servers "$servers" bench --clients 64 --seconds 3 --value-size 100 --json

# What the members report now (no more writes): the highest chosen index.
expected=0
for i in 1 2 3; do
  v="$(curl -sf --max-time 5 "http://127.0.0.1:${metrics_port[$i]}/metrics" | awk '$1 == "distkit_paxos_chosen_index" { print $2 }')"
  ((v > expected)) && expected=$v
done
echo "members report chosen index ${expected}"
((expected > 0)) || { echo "no slot chosen"; exit 1; }

# Bounded wait (30 s) until Prometheus has scraped every member after the load.
got="" p99=""
for _ in $(seq 60); do
  got="$(query 'max(distkit_paxos_chosen_index)' || true)"
  up="$(query 'count(up == 1)' || true)"
  if [[ "$got" == "$expected" && "$up" == "3" ]]; then break; fi
  sleep 0.5
done
p99="$(query 'max(histogram_quantile(0.99, rate(distkit_paxos_persist_sync_duration_seconds_bucket[1m])))' || true)"
commits="$(query "sum(distkit_paxos_fsyncs_total)" || true)"
echo "PromQL: max(distkit_paxos_chosen_index) = ${got}, up = ${up}, p99 persist+fsync = ${p99} s, fsyncs = ${commits}"
[[ "$got" == "$expected" ]] || { echo "Prometheus saw chosen index '${got}', the members report ${expected}"; cat "$dir/prometheus.log"; exit 1; }
python3 -c "import sys; v=float(sys.argv[1] or 'nan'); sys.exit(0 if v > 0 else 1)" "$p99" ||
  { echo "no positive fsync latency quantile"; exit 1; }
# Exemplars: the leader puts a `slot` exemplar on its commit-latency histogram every 32nd commit;
# Prometheus keeps them only if it parsed them from the OpenMetrics page.
now="$(date +%s)"
exemplars="$(curl -sf --max-time 5 --data-urlencode 'query=distkit_paxos_commit_duration_seconds_bucket' \
  --data-urlencode "start=$((now - 300))" --data-urlencode "end=$((now + 60))" \
  "http://127.0.0.1:${prom_port}/api/v1/query_exemplars" |
  python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(sum(1 for s in d for e in s["exemplars"] if e["labels"].get("slot","").isdigit()))' || true)"
echo "exemplars with a slot label: ${exemplars}"
[[ -n "$exemplars" && "$exemplars" -gt 0 ]] || { echo "Prometheus stored no commit-latency exemplar"; cat "$dir/prometheus.log"; exit 1; }
echo "prometheus scrape ok"
