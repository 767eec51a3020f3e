# SPDX-License-Identifier: MIT
distkit_add_example(bloom_filter SOURCES bloom_filter.cpp)
