# SPDX-License-Identifier: MIT
# The exposition test runs promtool (Debian package `prometheus`) on the text it writes. Without
# promtool the test fails (it never skips): scripts/install-deps installs it.
find_program(DISTKIT_PROMTOOL promtool)
if(NOT DISTKIT_PROMTOOL)
  set(DISTKIT_PROMTOOL "")
endif()

distkit_add_test(metrics SOURCES metrics_test.cpp)
if(TARGET metrics_test)
  target_compile_definitions(metrics_test PRIVATE DISTKIT_PROMTOOL="${DISTKIT_PROMTOOL}"
                                                  DISTKIT_TEST_OUTPUT_DIR="${CMAKE_CURRENT_BINARY_DIR}")
endif()

# The same accuracy harness, compiled with a deliberately wrong bucket index: it must report it.
distkit_add_test(metrics_mutation SOURCES metrics_test.cpp)
if(TARGET metrics_mutation_test)
  target_compile_definitions(metrics_mutation_test PRIVATE DISTKIT_METRICS_MUTATION_WRONG_BUCKET=1)
endif()

distkit_add_test(metrics_concurrent SOURCES metrics_concurrent_test.cpp CONCURRENT)

distkit_add_test(metrics_policy SOURCES metrics_policy_test.cpp)
if(TARGET metrics_policy_test)
  target_compile_definitions(metrics_policy_test PRIVATE DISTKIT_PROMTOOL="${DISTKIT_PROMTOOL}"
                                                         DISTKIT_TEST_OUTPUT_DIR="${CMAKE_CURRENT_BINARY_DIR}")
endif()

if(TARGET distkit::prometheus_cpp)
  distkit_add_test(metrics_prometheus_cpp SOURCES metrics_prometheus_cpp_test.cpp LIBS distkit::prometheus_cpp)
  if(TARGET metrics_prometheus_cpp_test)
    target_compile_definitions(metrics_prometheus_cpp_test PRIVATE DISTKIT_PROMTOOL="${DISTKIT_PROMTOOL}"
                                                                   DISTKIT_TEST_OUTPUT_DIR="${CMAKE_CURRENT_BINARY_DIR}")
  endif()
endif()
