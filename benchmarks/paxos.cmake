# SPDX-License-Identifier: MIT
distkit_add_benchmark(paxos SOURCES paxos_bench.cpp)
