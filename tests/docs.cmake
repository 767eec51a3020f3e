# SPDX-License-Identifier: MIT
# Every example in docs/examples/ is compiled, run, and its output compared with the
# <name>.expected file beside it: the pages show exactly this code and this output.
if(NOT DISTKIT_CONCURRENT_ONLY)
  file(GLOB distkit_doc_examples CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/docs/examples/*.cpp")
  foreach(source IN LISTS distkit_doc_examples)
    get_filename_component(name "${source}" NAME_WE)
    add_executable(docs_example_${name} "${source}")
    target_link_libraries(docs_example_${name} PRIVATE distkit::distkit distkit_warnings distkit_sanitize)
    add_test(NAME "docs example: ${name}"
             COMMAND ${CMAKE_COMMAND} "-DPROGRAM=$<TARGET_FILE:docs_example_${name}>"
                     "-DEXPECTED=${PROJECT_SOURCE_DIR}/docs/examples/${name}.expected"
                     -P "${CMAKE_CURRENT_SOURCE_DIR}/support/check_output.cmake")
    set_tests_properties("docs example: ${name}" PROPERTIES LABELS "docs" TIMEOUT 60)
  endforeach()
endif()

# The README's first program is docs/examples/quick_start.cpp; the output the README shows is its
# checked output.
if(NOT DISTKIT_CONCURRENT_ONLY)
  add_test(NAME "docs example: the README shows quick_start's output"
           COMMAND ${CMAKE_COMMAND} "-DREADME=${PROJECT_SOURCE_DIR}/README.md"
                   "-DEXPECTED=${PROJECT_SOURCE_DIR}/docs/examples/quick_start.expected"
                   -P "${CMAKE_CURRENT_SOURCE_DIR}/support/check_readme_example.cmake")
  set_tests_properties("docs example: the README shows quick_start's output" PROPERTIES LABELS "docs" TIMEOUT 60)
endif()
