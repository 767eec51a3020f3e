# SPDX-License-Identifier: MIT
distkit_add_test(queue SOURCES queue_test.cpp CONCURRENT TIMEOUT 120)
