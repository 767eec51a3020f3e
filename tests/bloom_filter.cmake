# SPDX-License-Identifier: MIT
distkit_add_test(bloom_filter SOURCES bloom_filter_test.cpp)
distkit_add_test(bloom_filter_concurrent SOURCES bloom_filter_concurrent_test.cpp CONCURRENT)
