#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# benchmarks/paxos_kv_bench/metrics_side_by_side.sh SERVER CLIENT ROUNDS SECONDS: what
# --metrics-listen costs paxos_kv, measured so that the host's own swings cancel. Each round
# starts two 3-member clusters at once (metrics_on_off.sh: one with every member serving
# /metrics and scraped once a second, one without) and their clients run over the same SECONDS,
# so a slow phase of the machine lands on both; which one starts first alternates by round.
# Prints each round and the median and range of on ÷ off (puts/s, and server CPU per put).
set -euo pipefail
server="$1" client="$2" rounds="$3" seconds="$4"
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(mktemp -d "${TMPDIR:-/tmp}/paxos-kv-side.XXXXXX")"
trap 'rm -rf "$dir"' EXIT
for r in $(seq "$rounds"); do
  start=$(($(date +%s) + 9))  # both clusters up and warmed by then
  order=(off on)
  if ((r % 2 == 0)); then order=(on off); fi
  for m in "${order[@]}"; do
    START_AT=$start "$here/metrics_on_off.sh" "$server" "$client" "$m" "$seconds" >"$dir/$r.$m" 2>/dev/null &
  done
  wait || true
done
python3 - "$dir" "$rounds" <<'PY'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
thr, cpu = [], []
for r in range(1, rounds + 1):
    try:
        off = json.loads(open(f"{d}/{r}.off").read())
        on = json.loads(open(f"{d}/{r}.on").read())
    except (OSError, ValueError):
        print(f"round {r}: a cluster did not finish; round left out")
        continue
    thr.append(on["ops_per_s"] / off["ops_per_s"])
    cpu.append(on["server_cpu_us_per_op"] / off["server_cpu_us_per_op"])
    print(f"round {r}: off {off['ops_per_s']:.0f} puts/s, {off['server_cpu_us_per_op']:.1f} us CPU/put; "
          f"on {on['ops_per_s']:.0f} puts/s, {on['server_cpu_us_per_op']:.1f} us CPU/put; on/off {thr[-1]:.3f}")
if thr:
    print(f"{len(thr)} rounds: puts/s on/off median {statistics.median(thr):.3f} [{min(thr):.3f}-{max(thr):.3f}]; "
          f"server CPU per put on/off median {statistics.median(cpu):.3f} [{min(cpu):.3f}-{max(cpu):.3f}]")
PY
