# SPDX-License-Identifier: MIT
# The peer is libbloom (Debian libbloom-dev): measured in the same binary, on the same keys.
find_path(DISTKIT_LIBBLOOM_INCLUDE_DIR bloom.h)
find_library(DISTKIT_LIBBLOOM_LIBRARY bloom)
if(DISTKIT_LIBBLOOM_INCLUDE_DIR AND DISTKIT_LIBBLOOM_LIBRARY)
  distkit_add_benchmark(bloom_filter SOURCES bloom_filter_bench.cpp LIBS ${DISTKIT_LIBBLOOM_LIBRARY})
  target_include_directories(bloom_filter_bench PRIVATE ${DISTKIT_LIBBLOOM_INCLUDE_DIR})
  target_compile_definitions(bloom_filter_bench PRIVATE DISTKIT_BENCH_LIBBLOOM=1)
else()
  message(STATUS "libbloom not found (apt-get install libbloom-dev): bloom_filter_bench runs without its peer")
  distkit_add_benchmark(bloom_filter SOURCES bloom_filter_bench.cpp)
endif()
