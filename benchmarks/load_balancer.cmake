# SPDX-License-Identifier: MIT
distkit_add_benchmark(load_balancer SOURCES load_balancer_bench.cpp)
