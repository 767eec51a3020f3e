# SPDX-License-Identifier: MIT
distkit_add_example(hash_ring SOURCES hash_ring.cpp)
