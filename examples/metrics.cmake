# SPDX-License-Identifier: MIT
distkit_add_example(metrics SOURCES metrics.cpp)
# What the example prints is what a Prometheus server would scrape: promtool must accept it.
find_program(DISTKIT_PROMTOOL promtool)
if(DISTKIT_BUILD_TESTS AND DISTKIT_PROMTOOL)
  add_test(NAME "example: metrics output passes promtool check metrics"
           COMMAND sh -c "\"$<TARGET_FILE:metrics>\" | \"${DISTKIT_PROMTOOL}\" check metrics")
  set_tests_properties("example: metrics output passes promtool check metrics" PROPERTIES LABELS "example" TIMEOUT 60)
endif()
