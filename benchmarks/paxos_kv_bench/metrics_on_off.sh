#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# benchmarks/paxos_kv_bench/metrics_on_off.sh SERVER CLIENT on|off SECONDS: a 3-member paxos_kv
# cluster on loopback (fsync on), 64 clients putting 100-byte values for SECONDS; with `on`,
# every member runs --metrics-listen and is scraped once a second meanwhile (not with NO_SCRAPE=1). Prints the client's
# JSON line (ops_per_s) with two fields added: server_cpu_s, the CPU seconds (user + system) the
# three members used during the measured run, and server_cpu_us_per_op. On a shared machine the
# throughput swings with the host; CPU per put is the steadier figure of what metrics cost.
# Alternate on and off runs to compare them.
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
if [[ "$mode" == on && -z "${NO_SCRAPE:-}" ]]; then
  # One long-lived scraper, as a Prometheus server is (not a process per scrape).
  python3 - "${mp[1]}" "${mp[2]}" "${mp[3]}" <<'PY' & pids+=($!)
import sys, time, urllib.request
while True:
    for port in sys.argv[1:]:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        except OSError:
            pass
    time.sleep(1)
PY
fi
# START_AT=<unix seconds>: wait until then to start the clients, so that an `on` and an `off`
# cluster run side by side over the same seconds share whatever else the host does.
if [[ -n "${START_AT:-}" ]]; then
  while (($(date +%s) < START_AT)); do sleep 0.05; done
fi
cpu() { local t=0 p; for p in "${pids[@]:0:3}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
before=$(cpu)
out=$("$client" --servers "$servers" bench --clients 64 --seconds "$seconds" --value-size 100 --json)
after=$(cpu)
python3 - "$out" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
line, before, after, tck = sys.argv[1].strip().splitlines()[-1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
d = json.loads(line)
d["server_cpu_s"] = round((after - before) / tck, 2)
d["server_cpu_us_per_op"] = round(d["server_cpu_s"] * 1e6 / max(1, d["ops"]), 2)
print(json.dumps(d))
PY
