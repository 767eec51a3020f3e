# SPDX-License-Identifier: MIT
# cmake -DREADME=<README.md> -DEXPECTED=<file> -P check_readme_example.cmake
# The README's first program prints what its first ```text block says: that block must equal
# the checked output of docs/examples/quick_start.cpp (EXPECTED), which is the same program.
file(READ "${README}" readme)
string(FIND "${readme}" "```text\n" start)
if(start EQUAL -1)
  message(FATAL_ERROR "check_readme_example: no ```text block in ${README}")
endif()
math(EXPR start "${start} + 8")
string(SUBSTRING "${readme}" ${start} -1 rest)
string(FIND "${rest}" "```" end)
string(SUBSTRING "${rest}" 0 ${end} shown)
file(READ "${EXPECTED}" expected)
if(NOT shown STREQUAL expected)
  message(FATAL_ERROR "check_readme_example: the README shows\n${shown}but the program prints\n${expected}")
endif()
message(STATUS "check_readme_example: the README shows the program's output")
