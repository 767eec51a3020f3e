# SPDX-License-Identifier: MIT
# cmake -DPROGRAM=<exe> -DEXPECTED=<file> -P check_output.cmake
# Runs PROGRAM and fails unless it exits 0 and its standard output equals EXPECTED exactly.
if(NOT EXISTS "${EXPECTED}")
  message(FATAL_ERROR "check_output: no expected output file ${EXPECTED}")
endif()
execute_process(COMMAND "${PROGRAM}" OUTPUT_VARIABLE actual ERROR_VARIABLE errors RESULT_VARIABLE status)
file(READ "${EXPECTED}" expected)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "check_output: ${PROGRAM} exited with ${status}\n${errors}")
endif()
if(NOT actual STREQUAL expected)
  message(FATAL_ERROR "check_output: output of ${PROGRAM} differs from ${EXPECTED}\n"
                      "--- expected\n${expected}--- actual\n${actual}---")
endif()
message(STATUS "check_output: output matches ${EXPECTED}")
