# SPDX-License-Identifier: MIT
# The Redis round-trip cases start their own redis-server (Debian package) and need hiredis.
if(TARGET distkit::redis)
  distkit_add_benchmark(rate_limiter SOURCES rate_limiter_bench.cpp LIBS distkit::redis)
  target_compile_definitions(rate_limiter_bench PRIVATE DISTKIT_BENCH_REDIS=1)
  target_include_directories(rate_limiter_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests)
else()
  distkit_add_benchmark(rate_limiter SOURCES rate_limiter_bench.cpp)
endif()
