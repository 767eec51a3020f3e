# SPDX-License-Identifier: MIT
distkit_add_example(worker_pool SOURCES worker_pool.cpp)
