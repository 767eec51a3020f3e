# SPDX-License-Identifier: MIT
distkit_add_test(work_queue SOURCES work_queue_test.cpp CONCURRENT TIMEOUT 120)
