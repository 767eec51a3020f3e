# SPDX-License-Identifier: MIT
distkit_add_benchmark(circuit_breaker SOURCES circuit_breaker_bench.cpp)
