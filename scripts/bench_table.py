#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turns a Google Benchmark JSON file into a Markdown table (time per operation and rates)."""
import json
import sys


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def to_ns(value, unit):
    return value * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]


def main(path):
    with open(path) as f:
        data = json.load(f)
    ctx = data["context"]
    print(f"Run {ctx.get('date', '?')} on {ctx.get('host_name', '?')}: {ctx.get('num_cpus', '?')} CPUs at "
          f"{ctx.get('mhz_per_cpu', '?')} MHz, library build {ctx.get('library_build_type', '?')}.\n")
    counters = []
    rows = [b for b in data["benchmarks"] if b.get("run_type") != "aggregate" or b.get("aggregate_name") == "median"]
    for b in rows:
        for k, v in b.items():
            if isinstance(v, (int, float)) and k not in {"real_time", "cpu_time", "iterations", "repetitions",
                                                          "repetition_index", "threads", "family_index",
                                                          "per_family_instance_index"} and k not in counters:
                counters.append(k)
    print("| benchmark | time/op | cpu/op | " + " | ".join(counters) + " |")
    print("|---|---:|---:|" + "---:|" * len(counters))
    for b in rows:
        unit = b.get("time_unit", "ns")
        cells = []
        for k in counters:
            v = b.get(k)
            if v is None:
                cells.append("")
            elif k.endswith("per_second"):
                cells.append(f"{v / 1e6:.2f} M/s")
            else:
                cells.append(f"{v:.4g}")
        print(f"| {b['name']} | {fmt_time(to_ns(b['real_time'], unit))} | {fmt_time(to_ns(b['cpu_time'], unit))} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
