# SPDX-License-Identifier: MIT
# The checker on Porcupine's 50-client kv histories (tests/data) and on generated ones; "before"
# is the previous search, kept in tests/support/linearizability_v0.hpp.
distkit_add_benchmark(linearizability SOURCES linearizability_bench.cpp)
target_include_directories(linearizability_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests)
target_compile_definitions(linearizability_bench PRIVATE DISTKIT_REPO_TESTDATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
