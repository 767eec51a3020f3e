# SPDX-License-Identifier: MIT
distkit_add_test(pipeline SOURCES pipeline_test.cpp CONCURRENT TIMEOUT 120)
