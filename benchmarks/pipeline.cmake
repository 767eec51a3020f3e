# SPDX-License-Identifier: MIT
# The peer is oneTBB's parallel_pipeline (Debian libtbb-dev); without it only distkit is measured.
find_package(TBB QUIET)
if(TBB_FOUND)
  distkit_add_benchmark(pipeline SOURCES pipeline_bench.cpp LIBS TBB::tbb)
  target_compile_definitions(pipeline_bench PRIVATE DISTKIT_BENCH_HAVE_TBB=1)
else()
  message(STATUS "distkit: oneTBB not found; pipeline_bench measures distkit alone")
  distkit_add_benchmark(pipeline SOURCES pipeline_bench.cpp)
endif()
