# SPDX-License-Identifier: MIT
distkit_add_test(bloom_filter SOURCES bloom_filter_test.cpp)
distkit_add_test(bloom_filter_concurrent SOURCES bloom_filter_concurrent_test.cpp CONCURRENT)

# The block layouts have AVX2 paths that the portable builds above never compile; when the
# build host runs AVX2, a small executable built with -mavx2 checks it against the portable path.
if(NOT DISTKIT_CONCURRENT_ONLY)
  include(CheckCXXSourceRuns)
  check_cxx_source_runs("int main() { return __builtin_cpu_supports(\"avx2\") ? 0 : 1; }" DISTKIT_HOST_HAS_AVX2)
  if(DISTKIT_HOST_HAS_AVX2)
    distkit_add_test(bloom_filter_simd SOURCES bloom_filter_simd_test.cpp)
    target_compile_options(bloom_filter_simd_test PRIVATE -mavx2)
  endif()
endif()
