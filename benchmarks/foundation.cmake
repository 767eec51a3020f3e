# SPDX-License-Identifier: MIT
distkit_add_benchmark(hash SOURCES hash_bench.cpp LIBS distkit::openssl)
