# SPDX-License-Identifier: MIT
# The peer is prometheus-cpp (Debian prometheus-cpp-dev), its core library, measured in the same
# binary. Without it the benchmark runs distkit's cases alone.
find_package(prometheus-cpp CONFIG QUIET)
if(TARGET prometheus-cpp::core)
  distkit_add_benchmark(metrics SOURCES metrics_bench.cpp LIBS prometheus-cpp::core)
  target_compile_definitions(metrics_bench PRIVATE DISTKIT_BENCH_PROMETHEUS_CPP=1)
else()
  message(STATUS "prometheus-cpp not found (apt-get install prometheus-cpp-dev): metrics_bench runs without its peer")
  distkit_add_benchmark(metrics SOURCES metrics_bench.cpp)
endif()
