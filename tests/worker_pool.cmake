# SPDX-License-Identifier: MIT
distkit_add_test(worker_pool SOURCES worker_pool_test.cpp CONCURRENT TIMEOUT 120)
