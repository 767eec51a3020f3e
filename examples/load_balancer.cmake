# SPDX-License-Identifier: MIT
distkit_add_example(load_balancer SOURCES load_balancer.cpp)
