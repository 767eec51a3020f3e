# SPDX-License-Identifier: MIT
distkit_add_example(circuit_breaker SOURCES circuit_breaker.cpp)
