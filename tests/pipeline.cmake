# SPDX-License-Identifier: MIT
distkit_add_test(pipeline SOURCES pipeline_test.cpp CONCURRENT TIMEOUT 120)

# Typing errors are compile errors with the library's own message: compile a broken program and
# look for that message (the compiler's exit status is expected to be non-zero).
if(NOT DISTKIT_CONCURRENT_ONLY)
  foreach(case_and_message IN ITEMS
          "WRONG_INPUT|a stage cannot be called with the item type the previous stage produces"
          "NO_SINK|the last stage must be a sink"
          "SOURCE_NOT_OPTIONAL|the source must return std::optional")
    string(REPLACE "|" ";" parts "${case_and_message}")
    list(GET parts 0 case)
    list(GET parts 1 message)
    set(name "pipeline: a mistyped pipeline (${case}) fails to compile with a readable message")
    add_test(NAME "${name}"
             COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -DDISTKIT_CASE_${case}
                     -I${PROJECT_SOURCE_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/pipeline_mismatch.cpp)
    set_tests_properties("${name}" PROPERTIES PASS_REGULAR_EXPRESSION "${message}" LABELS "pipeline" TIMEOUT 120)
  endforeach()
endif()
