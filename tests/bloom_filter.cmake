# SPDX-License-Identifier: MIT
distkit_add_test(bloom_filter SOURCES bloom_filter_test.cpp)
distkit_add_test(bloom_filter_concurrent SOURCES bloom_filter_concurrent_test.cpp CONCURRENT)

# The block layouts' kernels (portable, AVX2) are chosen at run time; the kernel test forces
# each in turn. It is built at the baseline instruction set and, on an AVX2 host, once more with
# -mavx2, where the AVX2 kernels are inlined rather than called.
if(NOT DISTKIT_CONCURRENT_ONLY)
  distkit_add_test(bloom_filter_simd SOURCES bloom_filter_simd_test.cpp)
  include(CheckCXXSourceRuns)
  check_cxx_source_runs("int main() { return __builtin_cpu_supports(\"avx2\") ? 0 : 1; }" DISTKIT_HOST_HAS_AVX2)
  if(DISTKIT_HOST_HAS_AVX2)
    distkit_add_test(bloom_filter_simd_avx2 SOURCES bloom_filter_simd_test.cpp)
    target_compile_options(bloom_filter_simd_avx2_test PRIVATE -mavx2)
  endif()
endif()
